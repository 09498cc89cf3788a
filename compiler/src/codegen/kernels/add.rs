//! ADD of two tensors of the same shape. int8 follows TFLM's reference arithmetic: both
//! inputs shifted left by 20, rescaled relative to twice the larger input scale, summed,
//! and rescaled to the output.

use super::super::{lit, Kernel, KernelCtx};
use super::quantize_multiplier;
use crate::error::Result;
use crate::ir::{Act, DType, Op};
use quote::quote;

/// Whether this same-shape emitter handles the node (both inputs as large as the output).
pub fn handles(ctx: &KernelCtx) -> bool {
    match (ctx.tensor(0), ctx.tensor(1), ctx.out(0)) {
        (Ok(a), Ok(b), Ok(y)) => a.elems() == y.elems() && b.elems() == y.elems(),
        _ => true,
    }
}

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let Op::Add { act } = ctx.node.op else { unreachable!() };
    let a = ctx.tensor(0)?;
    let b = ctx.tensor(1)?;
    let y = ctx.out(0)?;
    if a.elems() != y.elems() || b.elems() != y.elems() {
        return Err(ctx.unsupported(format!(
            "ADD with broadcasting ({:?} + {:?} -> {:?}) is not supported yet; only same-shape ADD",
            a.shape, b.shape, y.shape
        )));
    }
    let n = y.elems();
    let n_l = lit::usize(n);
    // Constant operands are read from flash.
    let mut statics = quote!();
    let mut const_bytes = 0;
    let mut k = 0;
    let mut operand = |t: &crate::ir::Tensor, name: &str| {
        if let Some(d) = &t.data {
            let id = ctx.ident(name);
            let nb = lit::usize(d.len());
            let lb = lit::bytes(d);
            statics.extend(quote!(static #id: [u8; #nb] = #lb;));
            const_bytes += d.len();
            quote!(#id[..])
        } else {
            let id = quote::format_ident!("x{}", k as usize);
            k += 1;
            quote!(#id[..])
        }
    };
    let ea = operand(a, "A");
    let eb = operand(b, "B");
    match (a.dtype, b.dtype, y.dtype) {
        (DType::I8, DType::I8, DType::I8) => {
            let (aq, bq, yq) = (
                a.q().ok_or_else(|| ctx.err("int8 input has no quantization"))?,
                b.q().ok_or_else(|| ctx.err("int8 input has no quantization"))?,
                y.q().ok_or_else(|| ctx.err("int8 output has no quantization"))?,
            );
            let left_shift = 20;
            let twice_max = 2.0 * (aq.scale().max(bq.scale())) as f64;
            let (m1, s1) = quantize_multiplier(aq.scale() as f64 / twice_max);
            let (m2, s2) = quantize_multiplier(bq.scale() as f64 / twice_max);
            let (mo, so) = quantize_multiplier(twice_max / ((1u64 << left_shift) as f64 * yq.scale() as f64));
            let (lo, hi) = act.range_q(yq.scale(), yq.zp(), -128, 127);
            let (o1, o2, oz) = (lit::i32(-aq.zp()), lit::i32(-bq.zp()), lit::i32(yq.zp()));
            let (m1, s1, m2, s2, mo, so) = (lit::i32(m1), lit::i32(s1), lit::i32(m2), lit::i32(s2), lit::i32(mo), lit::i32(so));
            let (lo, hi) = (lit::i32(lo), lit::i32(hi));
            let body = quote! {
                use ::microgen_rt::q::{clamp, mbqm};
                let a = &#ea;
                let b = &#eb;
                for i in 0..#n_l {
                    let va = (a.get_i8(i) as i32 + #o1) << 20;
                    let vb = (b.get_i8(i) as i32 + #o2) << 20;
                    let sum = mbqm(va, #m1, #s1).wrapping_add(mbqm(vb, #m2, #s2));
                    let v = mbqm(sum, #mo, #so) + #oz;
                    y0.set_i8(i, clamp(v, #lo, #hi) as i8);
                }
            };
            Ok(Kernel { statics, body, doc: format!("{n} elements, int8, activation {}", act.name()), macs: 0, const_bytes })
        }
        (DType::F32, DType::F32, DType::F32) => {
            let clamp = if act == Act::None {
                quote!(v)
            } else {
                let (lo, hi) = act.range_f32();
                let (lo, hi) = (lit::f32(lo), lit::f32(hi));
                quote!(v.max(#lo).min(#hi))
            };
            let body = quote! {
                let a = &#ea;
                let b = &#eb;
                for i in 0..#n_l {
                    let v = a.get_f32(i) + b.get_f32(i);
                    y0.set_f32(i, #clamp);
                }
            };
            Ok(Kernel { statics, body, doc: format!("{n} elements, float32, activation {}", act.name()), macs: 0, const_bytes })
        }
        (p, q, r) => Err(ctx.unsupported(format!("ADD of {p} and {q} to {r}; supported: int8, float32"))),
    }
}
