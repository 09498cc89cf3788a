//! SOFTMAX over the last dimension. int8 follows TFLM's reference kernel exactly: the
//! exponentials of every possible input difference are computed at compile time with the
//! same gemmlowp fixed-point code (a table of at most 256 entries); the reciprocal of
//! their sum and the final scaling run on the device with the same integer arithmetic.

use super::super::{lit, Kernel, KernelCtx};
use super::quantize_multiplier;
use crate::error::Result;
use crate::ir::{DType, Op};
use microgen_rt::q;
use quote::quote;

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let Op::Softmax { beta } = ctx.node.op else { unreachable!() };
    let x = ctx.tensor(0)?;
    let y = ctx.out(0)?;
    if x.shape.is_empty() || x.elems() != y.elems() {
        return Err(ctx.err(format!("input shape {:?} and output shape {:?} differ", x.shape, y.shape)));
    }
    let depth = *x.shape.last().unwrap_or(&1);
    if depth == 0 {
        return Err(ctx.err("softmax over an empty dimension"));
    }
    let rows = x.elems() / depth;
    let (r_l, d_l) = (lit::usize(rows), lit::usize(depth));
    match (x.dtype, y.dtype) {
        (DType::I8, DType::I8) => {
            let xq = x.q().ok_or_else(|| ctx.err("int8 input has no quantization"))?;
            let yq = y.q().ok_or_else(|| ctx.err("int8 output has no quantization"))?;
            if yq.zp() != -128 || yq.scale() != 1.0 / 256.0 {
                return Err(ctx.unsupported(format!(
                    "int8 softmax output must have scale 1/256 and zero point -128 (as TFLM requires), got {} and {}",
                    yq.scale(),
                    yq.zp()
                )));
            }
            // TFLite PreprocessSoftmaxScaling with 5 integer bits for the scaled difference.
            let real = (beta as f64 * xq.scale() as f64 * (1u64 << (31 - 5)) as f64).min((1u64 << 31) as f64 - 1.0);
            let (mult, left_shift) = quantize_multiplier(real);
            if left_shift < 0 {
                return Err(ctx.unsupported("softmax input scale too small (multiplier below one)"));
            }
            // CalculateInputRadius(5, left_shift, 31)
            let radius = (((1i64 << 5) - 1) as f64 * (1u64 << (31 - 5)) as f64 / (1u64 << left_shift) as f64).floor() as i64;
            let diff_min = -radius;
            let count = ((-diff_min + 1).max(0) as usize).min(256);
            // exp(diff) in Q0.31 for diff = 0, -1, -2, ..., as TFLM computes it.
            let table: Vec<i32> = (0..count)
                .map(|d| {
                    let diff = -(d as i32);
                    let rescaled = q::srdhm(diff.wrapping_mul(1 << left_shift), mult);
                    q::exp_on_negative_values(rescaled, 5)
                })
                .collect();
            let n_l = lit::usize(count);
            let t_id = ctx.ident("EXP");
            let tl = lit::i32s(&table);
            let statics = quote! {
                /// exp(beta * scale * -d) in Q0.31 for input differences d = 0, 1, ... (TFLM fixed point).
                static #t_id: [i32; #n_l] = #tl;
            };
            let body = quote! {
                const ROWS: usize = #r_l;
                const DEPTH: usize = #d_l;
                let x = &x0[..ROWS * DEPTH];
                let y = &mut y0[..ROWS * DEPTH];
                for r in 0..ROWS {
                    let base = r * DEPTH;
                    let mut max = -128i32;
                    for c in 0..DEPTH {
                        max = max.max(x.get_i8(base + c) as i32);
                    }
                    let mut sum = 0i32;
                    for c in 0..DEPTH {
                        let d = (max - x.get_i8(base + c) as i32) as usize;
                        if d < #n_l {
                            sum = sum.wrapping_add(::microgen_rt::q::rdivpot(#t_id[d], 12));
                        }
                    }
                    let (scale, exponent) = ::microgen_rt::q::softmax_scale(sum);
                    for c in 0..DEPTH {
                        let d = (max - x.get_i8(base + c) as i32) as usize;
                        let v = if d < #n_l { ::microgen_rt::q::softmax_out(#t_id[d], scale, exponent) } else { -128 };
                        y.set_i8(base + c, v);
                    }
                }
            };
            let doc = format!("[{rows} x {depth}], int8, beta {beta}, exp table of {count} entries");
            Ok(Kernel { statics, body, doc, macs: 0, const_bytes: 4 * count })
        }
        (DType::F32, DType::F32) => {
            let b = lit::f32(beta);
            let body = quote! {
                const ROWS: usize = #r_l;
                const DEPTH: usize = #d_l;
                let x = &x0[..];
                let y = &mut y0[..];
                for r in 0..ROWS {
                    let base = r * DEPTH;
                    let mut max = f32::MIN;
                    for c in 0..DEPTH {
                        max = max.max(x.get_f32(base + c));
                    }
                    let mut sum = 0.0f32;
                    for c in 0..DEPTH {
                        let e = ::microgen_rt::f::exp((x.get_f32(base + c) - max) * #b);
                        y.set_f32(base + c, e);
                        sum += e;
                    }
                    for c in 0..DEPTH {
                        let e = y.get_f32(base + c);
                        y.set_f32(base + c, e / sum);
                    }
                }
            };
            let doc = format!("[{rows} x {depth}], float32, beta {beta}");
            Ok(Kernel { statics: quote!(), body, doc, macs: 0, const_bytes: 0 })
        }
        (a, b) => Err(ctx.unsupported(format!("SOFTMAX from {a} to {b}; supported: int8 -> int8, float32 -> float32"))),
    }
}
