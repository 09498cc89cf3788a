//! ADD of int16 tensors, with broadcasting, as TFLM computes it (`AddElementwise` /
//! `BroadcastAdd6DSlow` with `left_shift` 15, the general-scale path): both inputs offset by
//! their zero points and shifted left by 15, rescaled relative to twice the larger input
//! scale, summed, rescaled to the output, offset, clamped to the activation range.

use super::super::{lit, Kernel, KernelCtx};
use super::int16::{act_quant, act_range};
use super::quantize_multiplier;
use crate::error::Result;
use crate::ir::{DType, Op, Tensor};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// Element strides of `s` broadcast onto the output shape `o` (right-aligned); `None` when
/// `s` does not broadcast to `o`.
fn bcast_strides(s: &[usize], o: &[usize]) -> Option<Vec<usize>> {
    if s.len() > o.len() {
        let extra = s.len() - o.len();
        if s[..extra].iter().any(|&d| d != 1) {
            return None;
        }
        return bcast_strides(&s[extra..], o);
    }
    let mut full = vec![1usize; o.len() - s.len()];
    full.extend_from_slice(s);
    let mut strides = vec![0usize; o.len()];
    let mut acc = 1usize;
    for d in (0..o.len()).rev() {
        if full[d] == o[d] {
            strides[d] = if full[d] == 1 { 0 } else { acc };
        } else if full[d] == 1 {
            strides[d] = 0;
        } else {
            return None;
        }
        acc *= full[d];
    }
    Some(strides)
}

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let Op::Add { act } = ctx.node.op else { unreachable!() };
    let a = ctx.tensor(0)?;
    let b = ctx.tensor(1)?;
    let y = ctx.out(0)?;
    if (a.dtype, b.dtype, y.dtype) != (DType::I16, DType::I16, DType::I16) {
        return Err(ctx.unsupported(format!("ADD of {} and {} to {}; the int16 path supports int16 inputs and output", a.dtype, b.dtype, y.dtype)));
    }
    let (aq, bq, yq) = (act_quant(ctx, a, "input")?, act_quant(ctx, b, "input")?, act_quant(ctx, y, "output")?);
    // Broadcast shape check: every output dimension is the larger of the inputs' (extended).
    let r = a.shape.len().max(b.shape.len()).max(y.shape.len());
    let ext = |s: &[usize]| -> Vec<usize> {
        let mut v = vec![1usize; r - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (ea, eb, eo) = (ext(&a.shape), ext(&b.shape), ext(&y.shape));
    let bad = || ctx.err(format!("output shape {:?} is not the broadcast of {:?} and {:?}", y.shape, a.shape, b.shape));
    for d in 0..r {
        if eo[d] != ea[d].max(eb[d]) {
            return Err(bad());
        }
    }
    let sa = bcast_strides(&a.shape, &y.shape).ok_or_else(bad)?;
    let sb = bcast_strides(&b.shape, &y.shape).ok_or_else(bad)?;

    let left_shift = 15;
    let twice_max = 2.0 * (aq.scale().max(bq.scale())) as f64;
    let (m1, s1) = quantize_multiplier(aq.scale() as f64 / twice_max);
    let (m2, s2) = quantize_multiplier(bq.scale() as f64 / twice_max);
    let (mo, so) = quantize_multiplier(twice_max / ((1u64 << left_shift) as f64 * yq.scale() as f64));
    if s1 > 0 || s2 > 0 || so > 0 {
        return Err(ctx.unsupported("int16 ADD whose output scale makes the output multiplier 1 or more (TFLM requires it below one)"));
    }
    let (lo, hi) = act_range(act, yq);
    let (o1, o2, oz) = (lit::i32(-aq.zp()), lit::i32(-bq.zp()), lit::i32(yq.zp()));
    let (m1, s1, m2, s2, mo, so) = (lit::i32(m1), lit::i32(s1), lit::i32(m2), lit::i32(s2), lit::i32(mo), lit::i32(so));
    let (lo, hi) = (lit::i32(lo), lit::i32(hi));

    // Operands: constants from flash, the others the kernel's parameters in order.
    let mut statics = TokenStream::new();
    let mut const_bytes = 0;
    let mut k = 0usize;
    let mut operand = |t: &Tensor, name: &str| -> TokenStream {
        if let Some(d) = &t.data {
            let id = ctx.ident(name);
            let nb = lit::usize(d.len());
            let lb = lit::bytes(d);
            statics.extend(quote!(static #id: [u8; #nb] = #lb;));
            const_bytes += d.len();
            quote!(#id[..])
        } else {
            let id = format_ident!("x{}", k);
            k += 1;
            quote!(#id[..])
        }
    };
    let xa = operand(a, "A");
    let xb = operand(b, "B");
    let inner = quote! {
        let va = (a.get_i16(ia) as i32 + #o1).wrapping_mul(1 << 15);
        let vb = (b.get_i16(ib) as i32 + #o2).wrapping_mul(1 << 15);
        let sum = mbqm(va, #m1, #s1).wrapping_add(mbqm(vb, #m2, #s2));
        let v = mbqm(sum, #mo, #so).wrapping_add(#oz);
        y0.set_i16(i, clamp(v, #lo, #hi) as i16);
    };
    let n = y.elems();
    let n_l = lit::usize(n);
    let lp = if a.elems() == n && b.elems() == n {
        quote! { for i in 0..#n_l { let (ia, ib) = (i, i); #inner } }
    } else {
        let (od, sa_id, sb_id) = (ctx.ident("OD"), ctx.ident("SA"), ctx.ident("SB"));
        let rl = lit::usize(y.shape.len());
        let odv = y.shape.iter().map(|&v| lit::usize(v));
        let sav = sa.iter().map(|&v| lit::usize(v));
        let sbv = sb.iter().map(|&v| lit::usize(v));
        statics.extend(quote! {
            /// Output dimensions and the inputs' broadcast strides (elements).
            static #od: [usize; #rl] = [#(#odv),*];
            static #sa_id: [usize; #rl] = [#(#sav),*];
            static #sb_id: [usize; #rl] = [#(#sbv),*];
        });
        quote! {
            for i in 0..#n_l {
                let (mut rem, mut ia, mut ib) = (i, 0usize, 0usize);
                let mut d = #rl;
                while d > 0 {
                    d -= 1;
                    let c = rem % #od[d];
                    rem /= #od[d];
                    ia += c * #sa_id[d];
                    ib += c * #sb_id[d];
                }
                #inner
            }
        }
    };
    let body = quote! {
        use ::microgen_rt::q::{clamp, mbqm};
        let a = &#xa;
        let b = &#xb;
        #lp
    };
    Ok(Kernel {
        statics,
        body,
        doc: format!("{:?} + {:?} -> {:?}, int16, activation {}", a.shape, b.shape, y.shape, act.name()),
        macs: 0,
        const_bytes,
    })
}
