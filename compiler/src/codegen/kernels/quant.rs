//! QUANTIZE and DEQUANTIZE at run time (constant ones are folded by a pass).

use super::super::{lit, Kernel, KernelCtx};
use crate::error::Result;
use crate::ir::{DType, Op};
use quote::quote;

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let x = ctx.tensor(0)?;
    let y = ctx.out(0)?;
    if x.elems() != y.elems() {
        return Err(ctx.err(format!("input shape {:?} and output shape {:?} differ", x.shape, y.shape)));
    }
    let n = x.elems();
    let n_l = lit::usize(n);
    match (&ctx.node.op, x.dtype, y.dtype) {
        (Op::Quantize, DType::F32, DType::I8) => {
            let yq = y.q().ok_or_else(|| ctx.err("int8 output has no quantization"))?;
            if yq.per_channel() {
                return Err(ctx.unsupported("per-channel QUANTIZE of activations"));
            }
            let (s, z) = (lit::f32(yq.scale()), lit::i32(yq.zp()));
            let body = quote! {
                for i in 0..#n_l {
                    let q = ::microgen_rt::f::quantize(x0.get_f32(i), #s, #z, -128, 127);
                    y0.set_i8(i, q as i8);
                }
            };
            Ok(Kernel { statics: quote!(), body, doc: format!("{n} elements, float32 -> int8 (scale {}, zero point {})", yq.scale(), yq.zp()), macs: 0, const_bytes: 0 })
        }
        (Op::Quantize, DType::I8, DType::I8) => {
            let (xq, yq) = (x.q().ok_or_else(|| ctx.err("input has no quantization"))?, y.q().ok_or_else(|| ctx.err("output has no quantization"))?);
            let table = super::unary::int8_table(&ctx.node.op, xq, yq).ok_or_else(|| ctx.unsupported("requantization"))?;
            Ok(super::unary::lut_kernel(ctx, &table, n, &format!("{n} elements, int8 -> int8 requantization, 256-entry table")))
        }
        (Op::Quantize, DType::I8, DType::U8) => {
            // TFLM Requantize int8 -> uint8: MultiplyByQuantizedMultiplier(x - in_zp) + out_zp,
            // saturated to [0, 255]; one table for all 256 inputs.
            let (xq, yq) = (x.q().ok_or_else(|| ctx.err("input has no quantization"))?, y.q().ok_or_else(|| ctx.err("output has no quantization"))?);
            let (m, sh) = super::quantize_multiplier(xq.scale() as f64 / yq.scale() as f64);
            let table: Vec<u8> = (-128i32..=127)
                .map(|v| microgen_rt::q::clamp(microgen_rt::q::mbqm(v - xq.zp(), m, sh) + yq.zp(), 0, 255) as u8)
                .collect();
            // Reorder so that the table is indexed by the input byte.
            let mut by_byte = [0u8; 256];
            for (k, v) in (-128i32..=127).zip(table) {
                by_byte[k as i8 as u8 as usize] = v;
            }
            let t_id = ctx.ident("LUT");
            let tb = lit::bytes(&by_byte);
            let statics = quote!(static #t_id: [u8; 256] = #tb;);
            let body = quote! {
                for i in 0..#n_l {
                    y0.set_u8(i, #t_id[x0.get_i8(i) as u8 as usize]);
                }
            };
            Ok(Kernel { statics, body, doc: format!("{n} elements, int8 -> uint8 requantization, 256-entry table"), macs: 0, const_bytes: 256 })
        }
        (Op::Dequantize, DType::I8, DType::F32) => {
            let xq = x.q().ok_or_else(|| ctx.err("int8 input has no quantization"))?;
            if xq.per_channel() {
                return Err(ctx.unsupported("per-channel DEQUANTIZE of activations"));
            }
            // TFLM computes (double)scale * (q - zp) and rounds to float; with an 8-bit integer
            // factor the float product is exact before rounding, so f32 arithmetic is identical.
            let (s, z) = (lit::f32(xq.scale()), lit::i32(xq.zp()));
            let body = quote! {
                for i in 0..#n_l {
                    y0.set_f32(i, #s * (x0.get_i8(i) as i32 - #z) as f32);
                }
            };
            Ok(Kernel { statics: quote!(), body, doc: format!("{n} elements, int8 -> float32"), macs: 0, const_bytes: 0 })
        }
        (op, a, b) => Err(ctx.unsupported(format!("{} from {a} to {b}; supported: QUANTIZE float32->int8 and int8->int8, DEQUANTIZE int8->float32", op.name()))),
    }
}
