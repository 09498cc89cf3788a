//! ADD of two tensors of the same shape. int8 follows TFLM's reference arithmetic: both
//! inputs shifted left by 20, rescaled relative to twice the larger input scale, summed,
//! and rescaled to the output.

use super::super::{lit, Kernel, KernelCtx};
use super::quantize_multiplier;
use crate::error::Result;
use crate::ir::{Act, DType, Op, Quant};
use proc_macro2::TokenStream;
use quote::quote;

/// TFLM's constants for an int8 ADD or SUB of `a` and `b` to `y` (left shift 20, both inputs
/// rescaled relative to twice the larger scale), clamped to `[lo, hi]`: the parameters of
/// `microgen_rt::mac::add_ref` / `sub_ref`, without the host's split or linear forms.
pub fn params(aq: &Quant, bq: &Quant, yq: &Quant, lo: i32, hi: i32) -> microgen_rt::mac::AddI8 {
    let twice_max = 2.0 * (aq.scale().max(bq.scale())) as f64;
    let (m1, s1) = quantize_multiplier(aq.scale() as f64 / twice_max);
    let (m2, s2) = quantize_multiplier(bq.scale() as f64 / twice_max);
    let (mo, so) = quantize_multiplier(twice_max / ((1u64 << 20) as f64 * yq.scale() as f64));
    microgen_rt::mac::AddI8 { off1: -aq.zp(), off2: -bq.zp(), m1, s1, m2, s2, mo, so, zp: yq.zp(), lo, hi, split: None, lin: None }
}

/// A linear form `[a, b, c, f]` (`add_linear` / `sub_linear`) for the int8 inputs `va` and
/// `vb`: the statement computing the sum `v`, the int8 output (`v >> f` clamped to `[lo,
/// hi]`), and the kernel doc's words for it.
pub fn linear_out([a, b, c, f]: [i32; 4], va: TokenStream, vb: TokenStream, lo: i32, hi: i32) -> (TokenStream, TokenStream, String) {
    let doc = format!("TFLM's arithmetic as `(x1 * {a} + x2 * {b} + {c}) >> {f}`, equal on every input pair");
    let (a, b, c, f, lo, hi) = (lit::i32(a), lit::i32(b), lit::i32(c), lit::i32(f), lit::i32(lo), lit::i32(hi));
    let sum = quote!(let v = (#va as i32).wrapping_mul(#a).wrapping_add((#vb as i32).wrapping_mul(#b)).wrapping_add(#c););
    (sum, quote!(::microgen_rt::q::clamp(v >> #f, #lo, #hi) as i8), doc)
}

/// Whether this same-shape emitter handles the node (both inputs as large as the output).
pub fn handles(ctx: &KernelCtx) -> bool {
    match (ctx.tensor(0), ctx.tensor(1), ctx.out(0)) {
        (Ok(a), Ok(b), Ok(y)) => a.elems() == y.elems() && b.elems() == y.elems(),
        _ => true,
    }
}

/// Whether both inputs of an ADD node are as large as its output (the same-shape kernel).
pub fn handles_same_shape(g: &crate::ir::Graph, node: &crate::ir::Node) -> bool {
    match (node.input(0), node.input(1), node.outputs.first()) {
        (Some(a), Some(b), Some(&y)) => g.t(a).elems() == g.t(y).elems() && g.t(b).elems() == g.t(y).elems(),
        _ => false,
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
            let (lo, hi) = act.range_q(yq.scale(), yq.zp(), -128, 127);
            let params = params(aq, bq, yq, lo, hi);
            let microgen_rt::mac::AddI8 { m1, s1, m2, s2, mo, so, .. } = params;
            // The whole ADD as one linear form, where one is exact on all 65,536 input pairs
            // (`add_linear` checks every pair): two multiplies, two adds and a shift per
            // element instead of three requantizations.
            let lin = microgen_rt::mac::add_linear(&params);
            if ctx.strategy == super::strategy::Strategy::Vector {
                // The host's form (`microgen_rt::mac::add_i8`: 16 elements per step with
                // AVX-512, 8 with AVX2); never chosen for a microcontroller (its estimate is
                // above the loop's).
                let v = |x: i32| lit::i32(x);
                // The input stages as `x * q + c + ((x * r + b - (x < x0) * d) >> sh)`
                // (`add_stage_split`, checked on all 256 inputs): on AVX-512 six instructions
                // per stage instead of ten. `None` outside its domain (the other loops run).
                let split = match (microgen_rt::mac::add_stage_split(-aq.zp(), m1, s1), microgen_rt::mac::add_stage_split(-bq.zp(), m2, s2)) {
                    (Some((k1, c1)), Some((k2, c2))) => {
                        let (k1, k2, c) = (lit::i32s(&k1), lit::i32s(&k2), v(c1.wrapping_add(c2)));
                        quote!(Some(([#k1, #k2], #c)))
                    }
                    _ => quote!(None),
                };
                let lin_l = match lin {
                    Some(l) => {
                        let l = lit::i32s(&l);
                        quote!(Some(#l))
                    }
                    None => quote!(None),
                };
                let (o1, o2, zp) = (v(-aq.zp()), v(-bq.zp()), v(yq.zp()));
                let (m1, s1, m2, s2, mo, so, lo, hi) = (v(m1), v(s1), v(m2), v(s2), v(mo), v(so), v(lo), v(hi));
                let body = quote! {
                    let p = ::microgen_rt::mac::AddI8 { off1: #o1, off2: #o2, m1: #m1, s1: #s1, m2: #m2, s2: #s2, mo: #mo, so: #so, zp: #zp, lo: #lo, hi: #hi, split: #split, lin: #lin_l };
                    ::microgen_rt::mac::add_i8(&p, &#ea, &#eb, #n_l, y0);
                };
                ctx.report(super::strategy::Strategy::Vector, super::strategy::Est { instructions: 16 * n as u64, code_bytes: 60, shared: vec![("add_i8".into(), 600)] });
                let form = if lin.is_some() { "one linear form exact on every input pair" } else { "three requantizations per element" };
                return Ok(Kernel { statics, body, doc: format!("{n} elements, int8, activation {}; {form}, 16 elements per step", act.name()), macs: 0, const_bytes });
            }
            if let Some(l) = lin {
                // TFLM's arithmetic, proven equal on all 65,536 input pairs at compile time.
                let (sum, out, form) = linear_out(l, quote!(a.get_i8(i)), quote!(b.get_i8(i)), lo, hi);
                let body = quote! {
                    let a = &#ea;
                    let b = &#eb;
                    for i in 0..#n_l {
                        #sum
                        y0.set_i8(i, #out);
                    }
                };
                return Ok(Kernel { statics, body, doc: format!("{n} elements, int8, activation {}; {form}", act.name()), macs: 0, const_bytes });
            }
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
