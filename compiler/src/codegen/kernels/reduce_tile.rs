//! REDUCE_MAX and TILE.
//!
//! REDUCE_MAX follows TFLM's `ReduceGeneric` with `max`: every output starts at the type's
//! lowest value and takes the maximum of the input elements that reduce into it; int8
//! compares the raw values (TFLM requires the input and output quantization to be equal). TILE repeats the input `multiples[d]` times along each dimension `d`; both are
//! index mappings fixed at compile time.

use super::super::{lit, Kernel, KernelCtx};
use crate::error::Result;
use crate::ir::{DType, Op, Tensor};
use proc_macro2::TokenStream;
use quote::quote;

/// Operators this file generates code for, as (name, data types).
pub const SUPPORTED: &[(&str, &str)] = &[
    ("REDUCE_MAX", "int8, float32 (constant axes)"),
    ("TILE", "int8, int16, int32, int64, float32 (constant multiples)"),
];

/// A constant integer tensor (int32 or int64) as i64 values.
fn const_ints(t: &Tensor) -> Option<Vec<i64>> {
    let d = t.data.as_ref()?;
    match t.dtype {
        DType::I32 => Some(d.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect()),
        DType::I64 => Some(d.chunks_exact(8).map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect()),
        _ => None,
    }
}

/// Element accessors for a data type.
fn access(ctx: &KernelCtx, d: DType) -> Result<(TokenStream, TokenStream, TokenStream)> {
    Ok(match d {
        DType::I8 => (quote!(get_i8), quote!(set_i8), quote!(i8)),
        DType::I16 => (quote!(get_i16), quote!(set_i16), quote!(i16)),
        DType::I32 => (quote!(get_i32), quote!(set_i32), quote!(i32)),
        DType::I64 => (quote!(get_i64), quote!(set_i64), quote!(i64)),
        DType::F32 => (quote!(get_f32), quote!(set_f32), quote!(f32)),
        other => return Err(ctx.unsupported(format!("{} of {other}", ctx.node.op.name()))),
    })
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    match ctx.node.op {
        Op::ReduceMax { .. } => reduce_max(ctx),
        Op::Tile => tile(ctx),
        _ => unreachable!(),
    }
}

fn reduce_max(ctx: &KernelCtx) -> Result<Kernel> {
    let x = ctx.tensor(0)?;
    let axes_t = ctx.tensor(1)?;
    let y = ctx.out(0)?;
    if x.dtype != y.dtype {
        return Err(ctx.unsupported(format!("REDUCE_MAX from {} to {}", x.dtype, y.dtype)));
    }
    let (get, set, ty) = access(ctx, x.dtype)?;
    if !matches!(x.dtype, DType::I8 | DType::F32) {
        return Err(ctx.unsupported(format!("REDUCE_MAX of {}; supported: int8, float32", x.dtype)));
    }
    if x.dtype == DType::I8 {
        match (x.q(), y.q()) {
            (Some(a), Some(b)) if a.same_as(b) => {}
            _ => return Err(ctx.unsupported("quantized REDUCE_MAX whose output quantization differs from its input's (TFLM requires them equal)")),
        }
    }
    let axes = const_ints(axes_t).ok_or_else(|| ctx.unsupported("REDUCE_MAX with non-constant axes"))?;
    let r = x.shape.len();
    let mut reduced = vec![false; r];
    for &a in &axes {
        let a = if a < 0 { a + r as i64 } else { a };
        if a < 0 || a >= r as i64 {
            return Err(ctx.err(format!("axis {a} is out of range for rank {r}")));
        }
        reduced[a as usize] = true;
    }
    let kept: Vec<usize> = (0..r).filter(|&d| !reduced[d]).map(|d| x.shape[d]).collect();
    let n_out: usize = kept.iter().product();
    if n_out != y.elems() {
        return Err(ctx.err(format!("output has {} elements; reducing {:?} over {:?} gives {n_out}", y.elems(), x.shape, axes)));
    }
    // Output stride of each input dimension (0 for reduced dimensions).
    let ks = strides(&kept);
    let mut os = vec![0usize; r];
    let mut k = 0;
    for d in 0..r {
        if !reduced[d] {
            os[d] = ks[k];
            k += 1;
        }
    }
    let lowest = if x.dtype == DType::I8 { quote!(i8::MIN) } else { quote!(f32::MIN) };
    let (xd_id, os_id) = (ctx.ident("XD"), ctx.ident("OS"));
    let rl = lit::usize(r.max(1));
    let xdv: Vec<TokenStream> = if r == 0 { vec![lit::usize(1)] } else { x.shape.iter().map(|&v| lit::usize(v)).collect() };
    let osv: Vec<TokenStream> = if r == 0 { vec![lit::usize(0)] } else { os.iter().map(|&v| lit::usize(v)).collect() };
    let statics = quote! {
        /// Input dimensions and the output stride of each (0: reduced).
        static #xd_id: [usize; #rl] = [#(#xdv),*];
        static #os_id: [usize; #rl] = [#(#osv),*];
    };
    let (nin, nout) = (lit::usize(x.elems()), lit::usize(n_out));
    let body = quote! {
        for o in 0..#nout {
            y0.#set(o, #lowest);
        }
        for i in 0..#nin {
            let (mut rem, mut o) = (i, 0usize);
            let mut d = #rl;
            while d > 0 {
                d -= 1;
                o += (rem % #xd_id[d]) * #os_id[d];
                rem /= #xd_id[d];
            }
            let v: #ty = x0.#get(i);
            if v > y0.#get(o) {
                y0.#set(o, v);
            }
        }
    };
    Ok(Kernel {
        statics,
        body,
        doc: format!("{:?} -> {:?} over axes {:?}, {}", x.shape, y.shape, axes, x.dtype),
        macs: 0,
        const_bytes: 16 * r,
    })
}

fn tile(ctx: &KernelCtx) -> Result<Kernel> {
    let x = ctx.tensor(0)?;
    let m_t = ctx.tensor(1)?;
    let y = ctx.out(0)?;
    if x.dtype != y.dtype {
        return Err(ctx.err(format!("TILE from {} to {}", x.dtype, y.dtype)));
    }
    let (get, set, _) = access(ctx, x.dtype)?;
    let mult = const_ints(m_t).ok_or_else(|| ctx.unsupported("TILE with non-constant multiples"))?;
    let r = x.shape.len();
    if mult.len() != r || mult.iter().any(|&m| m < 0) {
        return Err(ctx.err(format!("multiples {mult:?} do not fit the input shape {:?}", x.shape)));
    }
    let want: Vec<usize> = x.shape.iter().zip(&mult).map(|(&d, &m)| d * m as usize).collect();
    if want != y.shape {
        return Err(ctx.err(format!("output shape {:?} is not the input shape {:?} tiled {mult:?}", y.shape, x.shape)));
    }
    if x.dtype == DType::I8 || x.dtype == DType::I16 {
        if let (Some(a), Some(b)) = (x.q(), y.q()) {
            if !a.same_as(b) {
                return Err(ctx.unsupported("TILE whose output quantization differs from its input's"));
            }
        }
    }
    let (od_id, xd_id, xs_id) = (ctx.ident("OD"), ctx.ident("XD"), ctx.ident("XS"));
    let rl = lit::usize(r.max(1));
    let one = |v: Vec<usize>| -> Vec<TokenStream> { if r == 0 { vec![lit::usize(1)] } else { v.iter().map(|&d| lit::usize(d)).collect() } };
    let (odv, xdv, xsv) = (one(y.shape.clone()), one(x.shape.clone()), one(strides(&x.shape)));
    let statics = quote! {
        /// Output dimensions, input dimensions and input strides.
        static #od_id: [usize; #rl] = [#(#odv),*];
        static #xd_id: [usize; #rl] = [#(#xdv),*];
        static #xs_id: [usize; #rl] = [#(#xsv),*];
    };
    let n = lit::usize(y.elems());
    let body = quote! {
        for o in 0..#n {
            let (mut rem, mut i) = (o, 0usize);
            let mut d = #rl;
            while d > 0 {
                d -= 1;
                i += ((rem % #od_id[d]) % #xd_id[d]) * #xs_id[d];
                rem /= #od_id[d];
            }
            y0.#set(o, x0.#get(i));
        }
    };
    Ok(Kernel {
        statics,
        body,
        doc: format!("{:?} tiled {mult:?} -> {:?}, {}", x.shape, y.shape, x.dtype),
        macs: 0,
        const_bytes: 24 * r,
    })
}
