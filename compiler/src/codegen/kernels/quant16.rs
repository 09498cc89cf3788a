//! QUANTIZE and DEQUANTIZE involving int16, as TFLM computes them:
//! float32 -> int16 (`AffineQuantize`: round half away from zero, add the zero point,
//! saturate), int16 -> float32 (`scale * (q - zero_point)`), and the requantizations
//! int16 -> int16, int16 -> int8 and int8 -> int16 (`Requantize`: 32-bit
//! `MultiplyByQuantizedMultiplier` by `input_scale / output_scale`).

use super::super::{lit, Kernel, KernelCtx};
use super::int16::act_quant;
use super::quantize_multiplier;
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
    let kernel = |body, doc: String| Kernel { statics: quote!(), body, doc, macs: 0, const_bytes: 0 };
    match (&ctx.node.op, x.dtype, y.dtype) {
        (Op::Quantize, DType::F32, DType::I16) => {
            let yq = act_quant(ctx, y, "output")?;
            let (s, z) = (lit::f32(yq.scale()), lit::i32(yq.zp()));
            let body = quote! {
                for i in 0..#n_l {
                    let q = ::microgen_rt::f::quantize(x0.get_f32(i), #s, #z, -32768, 32767);
                    y0.set_i16(i, q as i16);
                }
            };
            Ok(kernel(body, format!("{n} elements, float32 -> int16 (scale {}, zero point {})", yq.scale(), yq.zp())))
        }
        (Op::Dequantize, DType::I16, DType::F32) => {
            let xq = act_quant(ctx, x, "input")?;
            // TFLM computes (double)scale * (q - zp) and rounds to float; with a 17-bit integer
            // factor the product is exact in double, so one f32 multiply rounds identically.
            let (s, z) = (lit::f32(xq.scale()), lit::i32(xq.zp()));
            let body = quote! {
                for i in 0..#n_l {
                    y0.set_f32(i, #s * (x0.get_i16(i) as i32 - #z) as f32);
                }
            };
            Ok(kernel(body, format!("{n} elements, int16 -> float32")))
        }
        (Op::Quantize, DType::I16 | DType::I8, DType::I16 | DType::I8) => {
            let (xq, yq) = (act_quant(ctx, x, "input")?, act_quant(ctx, y, "output")?);
            let (m, s) = quantize_multiplier(xq.scale() as f64 / yq.scale() as f64);
            let get = if x.dtype == DType::I16 { quote!(get_i16) } else { quote!(get_i8) };
            let (set, ty, olo, ohi) = match y.dtype {
                DType::I16 => (quote!(set_i16), quote!(i16), -32768, 32767),
                _ => (quote!(set_i8), quote!(i8), -128, 127),
            };
            let (iz, oz, m, s, olo, ohi) = (lit::i32(xq.zp()), lit::i32(yq.zp()), lit::i32(m), lit::i32(s), lit::i32(olo), lit::i32(ohi));
            let body = quote! {
                for i in 0..#n_l {
                    let v = ::microgen_rt::q::mbqm(x0.#get(i) as i32 - #iz, #m, #s).wrapping_add(#oz);
                    y0.#set(i, ::microgen_rt::q::clamp(v, #olo, #ohi) as #ty);
                }
            };
            Ok(kernel(body, format!("{n} elements, {} -> {} requantization", x.dtype, y.dtype)))
        }
        (op, a, b) => Err(ctx.unsupported(format!(
            "{} from {a} to {b}; supported with int16: QUANTIZE float32->int16, int16->int16, int16->int8, int8->int16; DEQUANTIZE int16->float32",
            op.name()
        ))),
    }
}
