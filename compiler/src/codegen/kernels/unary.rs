//! Element-wise unary activations. int8: the whole function is one 256-entry table built
//! at compile time by running TFLM's reference integer arithmetic on every possible input
//! (so the table is bit-exact by construction). float32: the function itself.

use super::super::{lit, Kernel, KernelCtx};
use super::quantize_multiplier;
use crate::error::Result;
use crate::ir::{Act, DType, Op, Quant};
use microgen_rt::q;
use quote::quote;

/// TFLite `CalculateInputRadius(int_bits, left_shift, 31)`.
fn input_radius(int_bits: i32, left_shift: i32) -> i32 {
    (((1i64 << int_bits) - 1) as f64 * (1u64 << (31 - int_bits)) as f64 / 2f64.powi(left_shift)).floor() as i32
}

/// The int8 -> int8 table of an operator, index = input byte (as u8).
pub fn int8_table(op: &Op, xq: &Quant, yq: &Quant) -> Option<[i8; 256]> {
    let mut t = [0i8; 256];
    let (xs, xz, ys, yz) = (xq.scale() as f64, xq.zp(), yq.scale(), yq.zp());
    match op {
        Op::Relu | Op::Relu6 | Op::ReluN1To1 => {
            // TFLM ReluQuantized / Relu6: requantize by input_scale/output_scale, then clamp.
            let (m, s) = quantize_multiplier((xq.scale() / yq.scale()) as f64);
            let act = match op {
                Op::Relu => Act::Relu,
                Op::Relu6 => Act::Relu6,
                _ => Act::ReluN1To1,
            };
            let (lo, hi) = act.range_q(ys, yz, -128, 127);
            for v in -128i32..=127 {
                let r = yz + q::mbqm(v - xz, m, s);
                t[v as u8 as usize] = q::clamp(r, lo, hi) as i8;
            }
        }
        Op::Logistic | Op::Tanh => {
            // TFLM: input_real_multiplier = scale * 2^(31-4), via frexp without the carry fix.
            let real = xs * (1u64 << (31 - 4)) as f64;
            let (qf, shift) = super::frexp(real);
            let mult = (qf * (1u64 << 31) as f64).round() as i64 as i32;
            let radius = input_radius(4, shift);
            for v in -128i32..=127 {
                let input = v - xz;
                let out = if input <= -radius {
                    -128
                } else if input >= radius {
                    127
                } else {
                    let in_q4 = q::mbqm(input, mult, shift);
                    if matches!(op, Op::Logistic) {
                        let o = q::rdivpot(q::logistic(in_q4, 4), 31 - 8);
                        q::clamp(o - 128, -128, 127)
                    } else {
                        let o = q::rdivpot(q::tanh(in_q4, 4), 31 - 7);
                        q::clamp(o, -128, 127)
                    }
                };
                t[v as u8 as usize] = out as i8;
            }
        }
        Op::Quantize => {
            // TFLM Requantize: MultiplyByQuantizedMultiplier(x - in_zp) + out_zp, saturate.
            let (m, s) = quantize_multiplier(xs / ys as f64);
            for v in -128i32..=127 {
                let r = q::mbqm(v - xz, m, s) + yz;
                t[v as u8 as usize] = q::clamp(r, -128, 127) as i8;
            }
        }
        _ => return None,
    }
    Some(t)
}

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let x = ctx.tensor(0)?;
    let y = ctx.out(0)?;
    if x.elems() != y.elems() {
        return Err(ctx.err(format!("input shape {:?} and output shape {:?} differ", x.shape, y.shape)));
    }
    let n = x.elems();
    let n_l = lit::usize(n);
    let op = &ctx.node.op;
    match (x.dtype, y.dtype) {
        (DType::I8, DType::I8) => {
            let xq = x.q().ok_or_else(|| ctx.err("int8 input has no quantization"))?;
            let yq = y.q().ok_or_else(|| ctx.err("int8 output has no quantization"))?;
            if matches!(op, Op::Logistic) && (yq.zp() != -128) {
                return Err(ctx.unsupported(format!("int8 LOGISTIC output zero point must be -128 (TFLM), got {}", yq.zp())));
            }
            if matches!(op, Op::Tanh) && (yq.zp() != 0) {
                return Err(ctx.unsupported(format!("int8 TANH output zero point must be 0 (TFLM), got {}", yq.zp())));
            }
            let table = int8_table(op, xq, yq).ok_or_else(|| ctx.unsupported("no int8 table for this operator"))?;
            Ok(lut_kernel(ctx, &table, n, &format!("{n} elements, int8, 256-entry table")))
        }
        (DType::F32, DType::F32) => {
            let f = match op {
                Op::Relu => quote!(v.max(0.0)),
                Op::Relu6 => quote!(v.max(0.0).min(6.0)),
                Op::ReluN1To1 => quote!(v.max(-1.0).min(1.0)),
                Op::Logistic => quote!(::microgen_rt::f::logistic(v)),
                Op::Tanh => quote!(::microgen_rt::f::tanh(v)),
                _ => return Err(ctx.unsupported("float32 variant")),
            };
            let body = quote! {
                for i in 0..#n_l {
                    let v = x0.get_f32(i);
                    y0.set_f32(i, #f);
                }
            };
            Ok(Kernel { statics: quote!(), body, doc: format!("{n} elements, float32"), macs: 0, const_bytes: 0 })
        }
        (a, b) => Err(ctx.unsupported(format!("{} from {a} to {b}; supported: int8, float32", op.name()))),
    }
}

/// A kernel that maps every int8 element through a 256-entry table.
pub fn lut_kernel(ctx: &KernelCtx, table: &[i8; 256], n: usize, doc: &str) -> Kernel {
    let bytes: Vec<u8> = table.iter().map(|&v| v as u8).collect();
    let t_id = ctx.ident("LUT");
    let tb = lit::bytes(&bytes);
    let n_l = lit::usize(n);
    let statics = quote! {
        /// Output for every input value, indexed by the input byte.
        static #t_id: [u8; 256] = #tb;
    };
    let body = quote! {
        for i in 0..#n_l {
            y0.set_i8(i, #t_id[x0.get_i8(i) as u8 as usize] as i8);
        }
    };
    Kernel { statics, body, doc: doc.to_string(), macs: 0, const_bytes: 256 }
}
