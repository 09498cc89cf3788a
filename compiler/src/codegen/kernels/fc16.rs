//! FULLY_CONNECTED with int16 activations and int8 weights ("16x8"), as TFLM's
//! `reference_integer_ops::FullyConnected` / `FullyConnectedPerChannel` for int16 compute it:
//! `acc = sum(x * w) + bias` (zero points 0), requantized per output (per-tensor weights give
//! one multiplier) with the arithmetic that goes with the bias type (see [`super::int16`]),
//! clamped to the fused activation's range.

use super::super::{lit, Kernel, KernelCtx};
use super::conv::requant;
use super::int16::{act_range, bias16, i64_bytes, requant64, requant64_bytes, sym_quant, weight_mults, Bias16};
use crate::error::Result;
use crate::ir::{DType, Op};
use quote::quote;

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let Op::FullyConnected { act, .. } = ctx.node.op else { unreachable!() };
    let x = ctx.tensor(0)?;
    let w = ctx.tensor(1)?;
    let y = ctx.out(0)?;
    if (x.dtype, w.dtype, y.dtype) != (DType::I16, DType::I8, DType::I16) {
        return Err(ctx.unsupported(format!(
            "FULLY_CONNECTED with input {}, weights {}, output {}; the int16 path supports int16 input and output with int8 weights",
            x.dtype, w.dtype, y.dtype
        )));
    }
    if w.shape.len() != 2 {
        return Err(ctx.err(format!("weights must be 2-D [outputs, depth], got shape {:?}", w.shape)));
    }
    let (out_n, depth) = (w.shape[0], w.shape[1]);
    if depth == 0 || out_n == 0 || x.elems() % depth != 0 {
        return Err(ctx.err(format!("input of {} elements is not a multiple of the weights' depth {}", x.elems(), depth)));
    }
    let batches = x.elems() / depth;
    if y.elems() != batches * out_n {
        return Err(ctx.err(format!("output has {} elements, expected {} x {}", y.elems(), batches, out_n)));
    }
    let Some(wdata) = w.data.as_ref() else {
        return Err(ctx.unsupported("non-constant weights are not supported; convert the model with constant weights"));
    };
    let Some(wdata) = wdata.get(..out_n * depth) else {
        return Err(ctx.err(format!("weight data has {} bytes, expected {}", wdata.len(), out_n * depth)));
    };
    let xq = sym_quant(ctx, x, "input")?;
    let yq = sym_quant(ctx, y, "output")?;
    let mults = weight_mults(ctx, xq, w, yq, out_n, 0)?;
    let bias = bias16(ctx, out_n, false, true)?;
    let (amin, amax) = act_range(act, yq);
    let (amin, amax) = (lit::i32(amin), lit::i32(amax));
    let (d_l, o_l, b_l) = (lit::usize(depth), lit::usize(out_n), lit::usize(batches));
    let (w_id, b_id) = (ctx.ident("W"), ctx.ident("B"));
    let wn = lit::usize(out_n * depth);
    let wbytes = lit::bytes(wdata);
    let mut statics = quote! {
        /// Weights, [outputs][depth], int8.
        static #w_id: [u8; #wn] = #wbytes;
    };
    let mut const_bytes = out_n * depth;
    let (acc_ty, bias_e, mdecl, mexpr, step) = match &bias {
        Bias16::I64(v) => {
            let bb = i64_bytes(v);
            let (bl, bbytes) = (lit::usize(bb.len()), lit::bytes(&bb));
            statics.extend(quote! {
                /// Bias, int64 little-endian.
                static #b_id: [u8; #bl] = #bbytes;
            });
            const_bytes += bb.len() + requant64_bytes(&mults);
            let (d, e) = requant64(ctx, &mults)?;
            (quote!(i64), quote!(#b_id.get_i64(oc)), d, e, quote!(acc += (x.get_i16(b * DEPTH + d) as i64) * (w[d] as i8 as i64);))
        }
        Bias16::I32(v) => {
            let bl = lit::i32s(v);
            statics.extend(quote! {
                /// Bias, int32.
                const #b_id: [i32; #o_l] = #bl;
            });
            const_bytes += 4 * out_n + super::conv::requant_bytes(&mults);
            let (d, e) = requant(&mults);
            (quote!(i32), quote!(#b_id[oc]), d, e, quote!(acc = acc.wrapping_add((x.get_i16(b * DEPTH + d) as i32).wrapping_mul(w[d] as i8 as i32));))
        }
    };
    let body = quote! {
        const DEPTH: usize = #d_l;
        const OUT: usize = #o_l;
        const BATCHES: usize = #b_l;
        #mdecl
        let x = &x0[..];
        let y = &mut y0[..];
        for b in 0..BATCHES {
            for oc in 0..OUT {
                let w = &#w_id[oc * DEPTH..(oc + 1) * DEPTH];
                let mut acc: #acc_ty = 0;
                for d in 0..DEPTH {
                    #step
                }
                let acc = acc.wrapping_add(#bias_e);
                let v = #mexpr;
                y.set_i16(b * OUT + oc, ::microgen_rt::q::clamp(v, #amin, #amax) as i16);
            }
        }
    };
    let macs = (batches * out_n * depth) as u64;
    let doc = format!(
        "[{batches} x {depth}] -> [{batches} x {out_n}], int16 activations, int8 {} weights, {} bias, activation {}, {macs} MACs",
        if mults.iter().all(|m| *m == mults[0]) { "per-tensor" } else { "per-channel" },
        if bias.wide() { "int64" } else { "int32" },
        act.name()
    );
    Ok(Kernel { statics, body, doc, macs, const_bytes })
}
