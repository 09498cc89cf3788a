//! FULLY_CONNECTED: int8 (TFLM reference arithmetic, per-tensor or per-channel
//! multipliers), float32, and hybrid (int8 weights dequantized at compile time).

use super::super::{lit, Kernel, KernelCtx};
use super::{const_f32, const_i32, quantize_multiplier};
use crate::error::Result;
use crate::ir::{Act, DType, Op};
use quote::quote;

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let Op::FullyConnected { act, .. } = ctx.node.op else { unreachable!() };
    let x = ctx.tensor(0)?;
    let w = ctx.tensor(1)?;
    let y = ctx.out(0)?;
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
    let bias = match ctx.node.input(2) {
        Some(b) => Some(ctx.g.t(b)),
        None => None,
    };
    if let Some(b) = bias {
        if b.elems() != out_n || !b.is_const() {
            return Err(ctx.err(format!("bias must be a constant with {} elements, got shape {:?}", out_n, b.shape)));
        }
    }
    let macs = (batches * out_n * depth) as u64;
    let (d_l, o_l, b_l) = (lit::usize(depth), lit::usize(out_n), lit::usize(batches));
    let w_id = ctx.ident("W");
    match (x.dtype, w.dtype, y.dtype) {
        (DType::I8, DType::I8, DType::I8) => {
            let (xq, wq, yq) = (
                x.q().ok_or_else(|| ctx.err("int8 input has no quantization"))?,
                w.q().ok_or_else(|| ctx.err("int8 weights have no quantization"))?,
                y.q().ok_or_else(|| ctx.err("int8 output has no quantization"))?,
            );
            if wq.zero_point.iter().any(|&z| z != 0) {
                return Err(ctx.unsupported("int8 weights with a non-zero zero point (TFLM requires symmetric weights)"));
            }
            if wq.per_channel() && wq.scale.len() != out_n {
                return Err(ctx.err(format!("per-channel weights have {} scales for {} outputs", wq.scale.len(), out_n)));
            }
            let in_offset = -xq.zp();
            let bias_v: Vec<i32> = match bias {
                Some(b) if b.dtype == DType::I32 => const_i32(b).unwrap_or_default(),
                Some(b) => return Err(ctx.unsupported(format!("int8 FULLY_CONNECTED with {} bias (expected int32)", b.dtype))),
                None => vec![0; out_n],
            };
            // acc = bias + sum((x + in_offset) * w) = (bias + in_offset * sum(w)) + sum(x * w),
            // exactly, in wrapping int32 arithmetic.
            let folded: Vec<i32> = (0..out_n)
                .map(|o| {
                    let s: i32 = wdata[o * depth..(o + 1) * depth].iter().map(|&v| v as i8 as i32).sum();
                    bias_v[o].wrapping_add(in_offset.wrapping_mul(s))
                })
                .collect();
            let mults: Vec<(i32, i32)> = (0..out_n)
                .map(|o| {
                    let ws = if wq.per_channel() { wq.scale[o] } else { wq.scale() };
                    quantize_multiplier(xq.scale() as f64 * ws as f64 / yq.scale() as f64)
                })
                .collect();
            let (amin, amax) = act.range_q(yq.scale(), yq.zp(), -128, 127);
            let out_zp = lit::i32(yq.zp());
            let (amin_l, amax_l) = (lit::i32(amin), lit::i32(amax));
            let b_id = ctx.ident("B");
            let bias_lit = lit::i32s(&folded);
            let wbytes = lit::bytes(&wdata[..out_n * depth]);
            let wn = lit::usize(out_n * depth);
            let uniform = mults.iter().all(|m| *m == mults[0]);
            let (mdecl, mexpr) = if uniform {
                let (m, s) = (lit::i32(mults[0].0), lit::i32(mults[0].1));
                (quote!(const MULT: i32 = #m; const SHIFT: i32 = #s;), quote!(::microgen_rt::q::mbqm(acc, MULT, SHIFT)))
            } else {
                let m = lit::i32s(&mults.iter().map(|m| m.0).collect::<Vec<_>>());
                let s = lit::i32s(&mults.iter().map(|m| m.1).collect::<Vec<_>>());
                (
                    quote!(const MULT: [i32; #o_l] = #m; const SHIFT: [i32; #o_l] = #s;),
                    quote!(::microgen_rt::q::mbqm(acc, MULT[o], SHIFT[o])),
                )
            };
            let statics = quote! {
                /// Weights, [outputs][depth], int8.
                static #w_id: [u8; #wn] = #wbytes;
                /// Bias with the input zero point folded in: bias + in_offset * sum(w).
                const #b_id: [i32; #o_l] = #bias_lit;
            };
            let body = quote! {
                const DEPTH: usize = #d_l;
                const OUT: usize = #o_l;
                const BATCHES: usize = #b_l;
                #mdecl
                let x = &x0[..BATCHES * DEPTH];
                let y = &mut y0[..BATCHES * OUT];
                for b in 0..BATCHES {
                    for o in 0..OUT {
                        let w = &#w_id[o * DEPTH..(o + 1) * DEPTH];
                        let mut acc: i32 = #b_id[o];
                        for d in 0..DEPTH {
                            acc = acc.wrapping_add(x.get_i8(b * DEPTH + d) as i32 * (w[d] as i8 as i32));
                        }
                        let v = #mexpr + #out_zp;
                        y.set_i8(b * OUT + o, ::microgen_rt::q::clamp(v, #amin_l, #amax_l) as i8);
                    }
                }
            };
            let doc = format!(
                "[{batches} x {depth}] -> [{batches} x {out_n}], int8, {} weights, activation {}, {macs} MACs",
                if wq.per_channel() { "per-channel" } else { "per-tensor" },
                act.name()
            );
            Ok(Kernel { statics, body, doc, macs, const_bytes: out_n * depth + 4 * out_n })
        }
        (DType::F32, DType::F32 | DType::I8, DType::F32) => {
            let wf: Vec<f32> = if w.dtype == DType::F32 {
                const_f32(w).unwrap_or_default()
            } else {
                // Hybrid model: dequantize the weights once, at compile time.
                let wq = w.q().ok_or_else(|| ctx.err("int8 weights have no quantization"))?;
                (0..out_n * depth)
                    .map(|i| {
                        let c = if wq.per_channel() { i / depth } else { 0 };
                        let z = wq.zero_point.get(c).copied().unwrap_or(0) as i32;
                        wq.scale[c.min(wq.scale.len() - 1)] * ((wdata[i] as i8 as i32) - z) as f32
                    })
                    .collect()
            };
            let bias_v: Vec<f32> = match bias {
                Some(b) if b.dtype == DType::F32 => const_f32(b).unwrap_or_default(),
                Some(b) => return Err(ctx.unsupported(format!("float FULLY_CONNECTED with {} bias", b.dtype))),
                None => vec![0.0; out_n],
            };
            let wb: Vec<u8> = wf.iter().flat_map(|v| v.to_le_bytes()).collect();
            let wn = lit::usize(wb.len());
            let wbytes = lit::bytes(&wb);
            let b_id = ctx.ident("B");
            let bias_items = bias_v.iter().map(|&v| lit::f32(v));
            let (lo, hi) = act.range_f32();
            let clamp = if act == Act::None {
                quote!(v)
            } else {
                let (lo, hi) = (lit::f32(lo), lit::f32(hi));
                quote!(v.max(#lo).min(#hi))
            };
            let statics = quote! {
                /// Weights, [outputs][depth], float32 little-endian.
                static #w_id: [u8; #wn] = #wbytes;
                const #b_id: [f32; #o_l] = [#(#bias_items),*];
            };
            let body = quote! {
                const DEPTH: usize = #d_l;
                const OUT: usize = #o_l;
                const BATCHES: usize = #b_l;
                let x = &x0[..];
                let y = &mut y0[..];
                for b in 0..BATCHES {
                    for o in 0..OUT {
                        let w = &#w_id[o * DEPTH * 4..(o + 1) * DEPTH * 4];
                        let mut acc = 0.0f32;
                        for d in 0..DEPTH {
                            acc += x.get_f32(b * DEPTH + d) * w.get_f32(d);
                        }
                        let v = acc + #b_id[o];
                        y.set_f32(b * OUT + o, #clamp);
                    }
                }
            };
            let doc = format!("[{batches} x {depth}] -> [{batches} x {out_n}], float32{}, activation {}, {macs} MACs",
                if w.dtype == DType::I8 { " (int8 weights dequantized at compile time)" } else { "" }, act.name());
            Ok(Kernel { statics, body, doc, macs, const_bytes: wb.len() + 4 * out_n })
        }
        (a, b, c) => Err(ctx.unsupported(format!(
            "FULLY_CONNECTED with input {a}, weights {b}, output {c}; supported: int8/int8/int8, float32/float32/float32, float32/int8/float32 (hybrid)"
        ))),
    }
}
