//! SOFTMAX int16 -> int16 over the last dimension, as TFLM's `SoftmaxInt16`: the input
//! difference to the row maximum is scaled so that [-65535, 0] covers [-10, 0], looked up in
//! a 513-entry exp table with linear interpolation; the sum's reciprocal comes from a
//! second table of 1/(1+x). Both tables are generated at compile time exactly as TFLM's
//! `gen_lut` generates them (float arithmetic, `expf`).

use super::super::{lit, Kernel, KernelCtx};
use super::int16::sym_quant;
use super::quantize_multiplier;
use crate::error::Result;
use crate::ir::{DType, Op};
use quote::quote;

/// TFLite `gen_lut<float, int16_t, int16_t>`: 512 interpolation steps over
/// `[input_min, input_max]` plus one end value, outputs scaled from `[output_min,
/// output_max]` to int16 with the midpoint-error correction.
pub fn gen_lut_16(func: impl Fn(f32) -> f32, input_min: f32, input_max: f32, output_min: f32, output_max: f32) -> Vec<i16> {
    let nb_steps = 512i32;
    let step = (input_max - input_min) / nb_steps as f32;
    let half_step = step / 2.0;
    let output_scaling_inv = 65536.0f32 / (output_max - output_min);
    let (table_min, table_max) = (-32768.0f32, 32767.0f32);
    let mut lut = Vec::with_capacity(513);
    for i in 0..nb_steps {
        let val = func(input_min + i as f32 * step);
        let val_midpoint = func(input_min + i as f32 * step + half_step);
        let val_next = func(input_min + (i + 1) as f32 * step);
        let sample_val = (val * output_scaling_inv).round();
        let midpoint_interp_val = ((val_next * output_scaling_inv + (val * output_scaling_inv).round()) / 2.0).round();
        let midpoint_val = (val_midpoint * output_scaling_inv).round();
        let midpoint_err = midpoint_interp_val - midpoint_val;
        let bias = (midpoint_err / 2.0).round();
        lut.push((sample_val - bias).max(table_min).min(table_max) as i16);
    }
    lut.push((func(input_max) * output_scaling_inv).round().max(table_min).min(table_max) as i16);
    lut
}

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let Op::Softmax { beta } = ctx.node.op else { unreachable!() };
    let x = ctx.tensor(0)?;
    let y = ctx.out(0)?;
    if (x.dtype, y.dtype) != (DType::I16, DType::I16) {
        return Err(ctx.unsupported(format!("SOFTMAX from {} to {}; the int16 path supports int16 -> int16", x.dtype, y.dtype)));
    }
    if x.shape.is_empty() || x.elems() != y.elems() {
        return Err(ctx.err(format!("input shape {:?} and output shape {:?} differ", x.shape, y.shape)));
    }
    let depth = *x.shape.last().unwrap_or(&1);
    if depth == 0 {
        return Err(ctx.err("softmax over an empty dimension"));
    }
    if depth > 65535 {
        return Err(ctx.unsupported(format!("int16 softmax over {depth} > 65535 values (the Q16.15 sum would overflow)")));
    }
    let rows = x.elems() / depth;
    let xq = super::int16::act_quant(ctx, x, "input")?;
    let yq = sym_quant(ctx, y, "output")?;
    let want = 1.0f32 / 32768.0;
    if (yq.scale() - want).abs() > 0.001 * want {
        return Err(ctx.unsupported(format!("int16 softmax output must have scale 1/32768 and zero point 0 (as TFLM requires), got {}", yq.scale())));
    }
    // Scale the input difference so that [-65535, 0] corresponds to [-10, 0].
    let (mult, shift) = quantize_multiplier(xq.scale() as f64 * beta as f64 / (10.0 / 65535.0));
    let exp_lut = gen_lut_16(|v| v.exp(), -10.0, 0.0, -1.0, 1.0);
    let inv_lut = gen_lut_16(|v| 1.0 / (1.0 + v), 0.0, 1.0, -1.0, 1.0);
    let (e_id, r_id) = (ctx.ident("EXP"), ctx.ident("INV"));
    let el = exp_lut.iter().map(|&v| lit::i32(v as i32));
    let rl = inv_lut.iter().map(|&v| lit::i32(v as i32));
    let statics = quote! {
        /// exp(v) for v in [-10, 0], 512 steps + 1, Q0.15 (TFLM gen_lut).
        static #e_id: [i16; 513] = [#(#el),*];
        /// 1 / (1 + v) for v in [0, 1], 512 steps + 1, Q0.15 (TFLM gen_lut).
        static #r_id: [i16; 513] = [#(#rl),*];
    };
    let (r_l, d_l, m_l, s_l) = (lit::usize(rows), lit::usize(depth), lit::i32(mult), lit::i32(shift));
    let body = quote! {
        const ROWS: usize = #r_l;
        const DEPTH: usize = #d_l;
        /// TFLite `LUTLookup` for int16: 9-bit index, 7-bit linear interpolation.
        #[inline(always)]
        fn lookup(value: i16, lut: &[i16; 513]) -> i16 {
            let index = (256 + (value >> 7) as i32) as usize;
            let offset = (value & 0x7f) as i32;
            let base = lut[index] as i32;
            let slope = lut[index + 1] as i32 - base;
            let delta = (slope * offset + 64) >> 7;
            (base + delta) as i16
        }
        let x = &x0[..];
        let y = &mut y0[..];
        for r in 0..ROWS {
            let row = r * DEPTH;
            let mut max = i16::MIN;
            for c in 0..DEPTH {
                let v = x.get_i16(row + c);
                if v > max { max = v; }
            }
            // exp(x - max), cached in the output, and their sum (Q16.15).
            let mut sum: i32 = 0;
            for c in 0..DEPTH {
                let diff = x.get_i16(row + c) as i32 - max as i32;
                let scaled = ::microgen_rt::q::mbqm(diff, #m_l, #s_l);
                let sym = ::microgen_rt::q::clamp(scaled.wrapping_add(32767), -32768, 32767) as i16;
                let e = lookup(sym, &#e_id);
                y.set_i16(row + c, e);
                sum = sum.wrapping_add(e as i32);
            }
            // 1 / sum through the 1/(1+x) table.
            let headroom_plus_one = (sum as u32).leading_zeros();
            let shifted = (((sum as i64) << (headroom_plus_one - 1)) + (1 << 13)) >> 14;
            let sym = ::microgen_rt::q::clamp((shifted as i32).wrapping_sub((1 << 15) + (1 << 16)), -32768, 32767) as i16;
            let recip = lookup(sym, &#r_id) as i64;
            let right_shift = 31 - headroom_plus_one;
            let round: i64 = 1 << (right_shift - 1);
            for c in 0..DEPTH {
                let e = y.get_i16(row + c) as i64;
                let v = ((e * recip + round) >> right_shift) as i32;
                y.set_i16(row + c, ::microgen_rt::q::clamp(v, 0, 32767) as i16);
            }
        }
    };
    let doc = format!("[{rows} x {depth}], int16, beta {beta}, exp and reciprocal tables of 513 entries");
    Ok(Kernel { statics, body, doc, macs: 0, const_bytes: 4 * 513 })
}
