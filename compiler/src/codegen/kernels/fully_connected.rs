//! FULLY_CONNECTED: int8 (TFLM reference arithmetic, per-tensor or per-channel
//! multipliers), float32, and hybrid (int8 weights, float32 activations) computed as
//! LiteRT's `EvalHybrid` does: the input quantized per batch at run time, an int32 dot
//! product with the int8 weights, scaled back to float.

use super::super::{lit, Kernel, KernelCtx};
use super::gemm::{self, RowSource, Tile};
use super::strategy::{Est, Strategy};
use super::{const_f32, const_i32, quantize_multiplier};
use crate::error::Result;
use crate::ir::{Act, DType, Op};
use quote::quote;

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let Op::FullyConnected { act, asymmetric_inputs, .. } = ctx.node.op else { unreachable!() };
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
            if ctx.strategy == Strategy::Compact && bias_v.len() == out_n && wdata.len() >= out_n * depth {
                let l = super::compact::Layer {
                    g: [batches, 1, 1, depth, 1, 1, out_n, 1, 1, 1, 1, 1, 1, 0, 0, 1],
                    depthwise: false,
                    w: &wdata[..out_n * depth],
                    bias: &bias_v,
                    mults: &mults,
                    in_off: in_offset,
                    out_zp: yq.zp(),
                    lo: amin,
                    hi: amax,
                };
                let doc = format!(
                    "[{batches} x {depth}] -> [{batches} x {out_n}], int8, {} weights, activation {}, {macs} MACs",
                    if wq.per_channel() { "per-channel" } else { "per-tensor" },
                    act.name()
                );
                if let Some(k) = super::compact::emit(ctx, &l, doc, macs) {
                    return Ok(k);
                }
            }
            if ctx.strategy == Strategy::Sparse && batches >= 4 {
                let wi8: Vec<i8> = wdata[..out_n * depth].iter().map(|&v| v as i8).collect();
                let src = RowSource::Dense { k: depth };
                let (kp, kmap) = src.layout();
                if let Some(p) = gemm::pack_sparse(&wi8, depth, kp, &*kmap, out_n, &bias_v, in_offset, &mults, yq.zp(), amin, amax) {
                    let (statics, body, scratch) = gemm::emit_sparse(ctx, &p, &src, batches, out_n, amin, amax);
                    let doc = format!(
                        "[{batches} x {depth}] -> [{batches} x {out_n}], int8, activation {}, {macs} MACs; sparse: {} of {} chunks of 4 weights kept, {scratch} B of stack scratch",
                        act.name(),
                        p.kept,
                        p.chunks
                    );
                    return Ok(Kernel { statics, body, doc, macs, const_bytes: 4 * p.data.len() });
                }
            }
            if ctx.strategy == Strategy::Vector {
                return Ok(emit_channels(ctx, &wdata[..out_n * depth], &bias_v, &folded, in_offset, &mults, yq.zp(), amin, amax, batches, depth, macs, act));
            }
            if ctx.strategy == Strategy::Packed {
                let wi8: Vec<i8> = wdata[..out_n * depth].iter().map(|&v| v as i8).collect();
                let tile = if batches == 1 { Tile::C8P1 } else { Tile::C4P2 };
                let src = RowSource::Dense { k: depth };
                let (kp, kmap) = src.layout();
                let (kq4, order) = src.vnni_order();
                let p = gemm::pack(&wi8, depth, kp, &*kmap, (kq4, &*order), out_n, &bias_v, in_offset, &mults, yq.zp(), amin, amax, tile);
                let (statics, body, scratch) = gemm::emit(ctx, &p, &src, batches, amin, amax);
                let doc = format!(
                    "[{batches} x {depth}] -> [{batches} x {out_n}], int8, {} weights, activation {}, {macs} MACs; packed {} tiles, {} requantization, {scratch} B of stack scratch",
                    if wq.per_channel() { "per-channel" } else { "per-tensor" },
                    act.name(),
                    p.tile.name(),
                    if p.fast { "doubled-accumulator" } else { "exact" }
                );
                return Ok(Kernel { statics, body, doc, macs, const_bytes: p.const_bytes() });
            }
            let out_zp = lit::i32(yq.zp());
            let (amin_l, amax_l) = (lit::i32(amin), lit::i32(amax));
            let b_id = ctx.ident("B");
            let bias_lit = lit::i32s(&folded);
            let wbytes = lit::bytes(&wdata[..out_n * depth]);
            let wn = lit::usize(out_n * depth);
            let uniform = mults.iter().all(|m| *m == mults[0]);
            let (mdecl, mexpr) = if uniform {
                let (m, s) = (lit::i32(mults[0].0), lit::i32(mults[0].1));
                (quote!(const MULT: i32 = #m; const SHIFT: i32 = #s;), (quote!(MULT), quote!(SHIFT)))
            } else {
                let m = lit::i32s(&mults.iter().map(|m| m.0).collect::<Vec<_>>());
                let s = lit::i32s(&mults.iter().map(|m| m.1).collect::<Vec<_>>());
                (
                    quote!(const MULT: [i32; #o_l] = #m; const SHIFT: [i32; #o_l] = #s;),
                    (quote!(MULT[o]), quote!(SHIFT[o])),
                )
            };
            let (mm, ms) = mexpr;
            // Written out for speed; one shared out-of-line call for flash: of the doubled
            // accumulator where that form is exact for every output (`q::requant_fast`, half
            // the code), else `q::requant`.
            let fast = if ctx.inline_requant || wdata.len() < out_n * depth {
                None
            } else {
                gemm::fast_rqs(out_n, |o| wdata[o * depth..(o + 1) * depth].iter().map(|&v| v as i8), &bias_v, in_offset, &mults, yq.zp(), amin, amax)
            };
            let (mdecl, qexpr) = if ctx.inline_requant {
                (mdecl, quote!(::microgen_rt::q::clamp(::microgen_rt::q::mbqm(acc, #mm, #ms) + #out_zp, #amin_l, #amax_l) as i8))
            } else if let Some(rq) = fast {
                let items = rq.iter().map(|r| lit::i32s(r));
                (
                    quote! {
                        /// Requantization of the doubled accumulator per output (`rq_fast`: multiplier, rounding constant, shift).
                        const RQ: [[i32; 3]; #o_l] = [#(#items),*];
                    },
                    quote!(::microgen_rt::q::requant_fast(acc, &RQ[o], #amin_l, #amax_l)),
                )
            } else {
                (mdecl, quote!(::microgen_rt::q::requant(acc, #mm, #ms, #out_zp, #amin_l, #amax_l)))
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
                        y.set_i8(b * OUT + o, #qexpr);
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
        (DType::F32, DType::I8, DType::F32) => emit_hybrid(ctx, wdata, bias, batches, depth, out_n, act, asymmetric_inputs),
        (DType::F32, DType::F32, DType::F32) => {
            let wf: Vec<f32> = const_f32(w).unwrap_or_default();
            let bias_v: Vec<f32> = match bias {
                Some(b) if b.dtype == DType::F32 => const_f32(b).unwrap_or_default(),
                Some(b) => return Err(ctx.unsupported(format!("float FULLY_CONNECTED with {} bias", b.dtype))),
                None => vec![0.0; out_n],
            };
            if ctx.strategy == super::strategy::Strategy::Packed {
                let doc = format!("[{batches} x {depth}] -> [{batches} x {out_n}], float32, activation {}, {macs} MACs", act.name());
                return Ok(super::ftile::fully_connected(ctx, &wf, &bias_v, batches, depth, act, doc, macs));
            }
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
            let doc = format!("[{batches} x {depth}] -> [{batches} x {out_n}], float32, activation {}, {macs} MACs", act.name());
            Ok(Kernel { statics, body, doc, macs, const_bytes: wb.len() + 4 * out_n })
        }
        (a, b, c) => Err(ctx.unsupported(format!(
            "FULLY_CONNECTED with input {a}, weights {b}, output {c}; supported: int8/int8/int8, float32/float32/float32, float32/int8/float32 (hybrid)"
        ))),
    }
}

/// Hybrid FULLY_CONNECTED (float32 input and output, int8 weights) as LiteRT's `EvalHybrid`
/// computes it. Per batch: the input is quantized to int8 (`SymmetricQuantizeFloats`, or
/// `AsymmetricQuantizeFloats` when the operator asks for asymmetric inputs), the int32 dot
/// product with each weight row is taken (minus `row_sum * zero_point` when asymmetric),
/// and `output = bias + dot * (input_scale * weight_scale)`, then the fused activation.
/// An all-zero input gives the bias, as LiteRT's shortcut does.
#[allow(clippy::too_many_arguments)]
fn emit_hybrid(ctx: &KernelCtx, wdata: &[u8], bias: Option<&crate::ir::Tensor>, batches: usize, depth: usize, out_n: usize, act: Act, asymmetric: bool) -> Result<Kernel> {
    let w = ctx.tensor(1)?;
    let wq = w.q().ok_or_else(|| ctx.err("int8 weights have no quantization"))?;
    if wq.scale.is_empty() {
        return Err(ctx.err("int8 weights have no quantization scale"));
    }
    if wq.zero_point.iter().any(|&z| z != 0) {
        return Err(ctx.unsupported("hybrid FULLY_CONNECTED with int8 weights with a non-zero zero point"));
    }
    if wq.per_channel() && (wq.scale.len() != out_n || wq.axis != 0) {
        return Err(ctx.err(format!("per-channel weights have {} scales along dimension {}; expected {out_n} along dimension 0", wq.scale.len(), wq.axis)));
    }
    let per_channel = wq.per_channel();
    if per_channel && !asymmetric {
        // LiteRT's symmetric path ignores per-channel scales (the result would be unscaled).
        return Err(ctx.unsupported("hybrid FULLY_CONNECTED with per-channel weights and symmetric input quantization (asymmetric_quantize_inputs = false)"));
    }
    let bias_v: Vec<f32> = match bias {
        Some(b) if b.dtype == DType::F32 => const_f32(b).unwrap_or_default(),
        Some(b) => return Err(ctx.unsupported(format!("hybrid FULLY_CONNECTED with {} bias (expected float32)", b.dtype))),
        None => vec![0.0; out_n],
    };
    if bias_v.len() != out_n {
        return Err(ctx.err(format!("bias has {} values for {out_n} outputs", bias_v.len())));
    }
    if depth > 65536 {
        return Err(ctx.unsupported(format!("hybrid FULLY_CONNECTED with depth {depth} (its int32 dot products could overflow)")));
    }
    let (d_l, o_l, b_l) = (lit::usize(depth), lit::usize(out_n), lit::usize(batches));
    let (w_id, b_id, s_id, r_id) = (ctx.ident("W"), ctx.ident("B"), ctx.ident("S"), ctx.ident("ROWSUM"));
    let wn = lit::usize(out_n * depth);
    let wbytes = lit::bytes(&wdata[..out_n * depth]);
    let bias_items = bias_v.iter().map(|&v| lit::f32(v));
    let mut statics = quote! {
        /// Weights, [outputs][depth], int8.
        static #w_id: [u8; #wn] = #wbytes;
        const #b_id: [f32; #o_l] = [#(#bias_items),*];
    };
    let mut const_bytes = out_n * depth + 4 * out_n;
    let (lo, hi) = act.range_f32();
    let clamp = if act == Act::None {
        quote!(v)
    } else {
        let (lo, hi) = (lit::f32(lo), lit::f32(hi));
        quote!(v.max(#lo).min(#hi))
    };
    // Per batch: the quantization parameters (inverse scale, scale, zero point) and how a
    // value quantizes.
    let (helper, qparams, qexpr) = if asymmetric {
        (
            quote! {
                /// `AsymmetricQuantizeFloats` parameters for values in `[lo, hi]`:
                /// (1 / scale, scale, zero point).
                #[inline(always)]
                fn asym(lo: f32, hi: f32) -> (f32, f32, i32) {
                    let rmin = (if lo < 0.0 { lo } else { 0.0 }) as f64;
                    let rmax = (if hi > 0.0 { hi } else { 0.0 }) as f64;
                    if rmin == rmax {
                        return (0.0, 1.0, 0);
                    }
                    let scale = (rmax - rmin) / 255.0;
                    let zmin = -128.0 - rmin / scale;
                    let zmax = 127.0 - rmax / scale;
                    let (a, b) = (rmin / scale, rmax / scale);
                    let emin = 128.0 + if a < 0.0 { -a } else { a };
                    let emax = 127.0 + if b < 0.0 { -b } else { b };
                    let z = if emin < emax { zmin } else { zmax };
                    let zp = if z <= -128.0 {
                        -128
                    } else if z >= 127.0 {
                        127
                    } else {
                        // C `round` (half away from zero).
                        let t = z as i32;
                        let f = z - t as f64;
                        if f >= 0.5 { t + 1 } else if f <= -0.5 { t - 1 } else { t }
                    };
                    let s = scale as f32;
                    ((1.0 / s as f64) as f32, s, zp)
                }
            },
            quote!(let (inv, sf, zp) = asym(lo, hi);),
            quote!(::microgen_rt::f::round_clamp(zp as f32 + v * inv, -128, 127)),
        )
    } else {
        (
            quote! {
                /// `SymmetricQuantizeFloats` parameters for values in `[lo, hi]`:
                /// (1 / scale, scale, 0).
                #[inline(always)]
                fn sym(lo: f32, hi: f32) -> (f32, f32, i32) {
                    let a = if lo < 0.0 { -lo } else { lo };
                    let b = if hi < 0.0 { -hi } else { hi };
                    let range = if a < b { b } else { a };
                    if range == 0.0 { (0.0, 1.0, 0) } else { (127.0 / range, range / 127.0, 0) }
                }
            },
            quote!(let (inv, sf, zp) = sym(lo, hi);),
            quote!(::microgen_rt::f::round_clamp(v * inv, -127, 127)),
        )
    };
    // The scale of output `oc`: input scale times the weight scale (per channel, or folded
    // into the batch scale for per-tensor weights, in LiteRT's order of float operations).
    let scale_expr = if per_channel {
        let s_items = wq.scale.iter().map(|&v| lit::f32(v));
        statics.extend(quote! {
            /// Per-channel weight scales.
            const #s_id: [f32; #o_l] = [#(#s_items),*];
        });
        const_bytes += 4 * out_n;
        quote!(sf * #s_id[oc])
    } else {
        let ws = lit::f32(wq.scale());
        quote!(sf * #ws)
    };
    let offset_term = if asymmetric {
        // LiteRT subtracts row_sum * zero_point computed in float, converted back to int32.
        let sums: Vec<i32> = (0..out_n).map(|o| wdata[o * depth..(o + 1) * depth].iter().map(|&v| v as i8 as i32).sum()).collect();
        let sl = lit::i32s(&sums);
        statics.extend(quote! {
            /// Sum of each weight row.
            const #r_id: [i32; #o_l] = #sl;
        });
        const_bytes += 4 * out_n;
        quote!(let dot = (dot as f32 - #r_id[oc] as f32 * zp as f32) as i32;)
    } else {
        quote!()
    };
    let body = quote! {
        const DEPTH: usize = #d_l;
        const OUT: usize = #o_l;
        const BATCHES: usize = #b_l;
        #helper
        let x = &x0[..];
        let y = &mut y0[..];
        // LiteRT skips the product when the whole input is zero: the output is the bias.
        let mut all_zero = true;
        for i in 0..BATCHES * DEPTH {
            if x.get_f32(i) != 0.0 {
                all_zero = false;
                break;
            }
        }
        for b in 0..BATCHES {
            let xb = b * DEPTH;
            let (mut lo, mut hi) = (x.get_f32(xb), x.get_f32(xb));
            for d in 1..DEPTH {
                let v = x.get_f32(xb + d);
                if v < lo { lo = v; }
                if hi < v { hi = v; }
            }
            #qparams
            let mut q = [0i8; DEPTH];
            for d in 0..DEPTH {
                let v = x.get_f32(xb + d);
                q[d] = (#qexpr) as i8;
            }
            for oc in 0..OUT {
                let v = if all_zero {
                    #b_id[oc]
                } else {
                    let w = &#w_id[oc * DEPTH..(oc + 1) * DEPTH];
                    let mut dot: i32 = 0;
                    for d in 0..DEPTH {
                        dot = dot.wrapping_add(q[d] as i32 * (w[d] as i8 as i32));
                    }
                    #offset_term
                    let scale = #scale_expr;
                    #b_id[oc] + dot as f32 * scale
                };
                y.set_f32(b * OUT + oc, #clamp);
            }
        }
    };
    let macs = (batches * out_n * depth) as u64;
    let doc = format!(
        "[{batches} x {depth}] -> [{batches} x {out_n}], float32 with int8 {} weights (hybrid: input quantized {} per batch at run time as LiteRT does; {depth} B of stack), activation {}, {macs} MACs",
        if per_channel { "per-channel" } else { "per-tensor" },
        if asymmetric { "asymmetrically" } else { "symmetrically" },
        act.name()
    );
    Ok(Kernel { statics, body, doc, macs, const_bytes })
}

/// The int8-weight form (`microgen_rt::mac::fc_channels`): weights kept as int8 in tiles of
/// 8 channels by pairs of inputs, sign-extended as they are loaded, for hosts whose caches
/// are the limit (half the bytes of the int16 pairs). The doubled-accumulator
/// requantization where it is exact for every channel, else TFLM's.
#[allow(clippy::too_many_arguments)]
fn emit_channels(
    ctx: &KernelCtx,
    w: &[u8],
    bias: &[i32],
    folded: &[i32],
    in_off: i32,
    mults: &[(i32, i32)],
    out_zp: i32,
    lo: i32,
    hi: i32,
    batches: usize,
    depth: usize,
    macs: u64,
    act: Act,
) -> Kernel {
    let cout = bias.len();
    let (steps, tiles) = (depth.div_ceil(2), cout.div_ceil(8));
    let (is_fast, rq) = gemm::channel_rqs(cout, |o| w[o * depth..(o + 1) * depth].iter().map(|&v| v as i8), bias, in_off, mults, out_zp, lo, hi);
    let mut fb = folded.to_vec();
    fb.resize(tiles * 8, 0);
    let mut wp = Vec::with_capacity(tiles * steps * 16);
    for t in 0..tiles {
        for st in 0..steps {
            for c in 0..8 {
                for j in 0..2 {
                    let (o, d) = (8 * t + c, 2 * st + j);
                    wp.push(if o < cout && d < depth { w[o * depth + d] } else { 0 });
                }
            }
        }
    }
    let (w_id, b_id, r_id) = (ctx.ident("W8"), ctx.ident("BF"), ctx.ident("RQ"));
    let (wlen, wbytes, nb) = (lit::usize(wp.len()), lit::bytes(&wp), lit::usize(tiles * 8));
    let fb_l = lit::i32s(&fb);
    let (rqs, groups) = gemm::rq_groups(&rq);
    let groups = lit::usize(groups);
    // The layout of the x86-64 VNNI kernel: [16-channel group][4 inputs][channel][4], and
    // the bias for inputs read as `x ^ 0x80` (minus 128 * sum(w)).
    let (g16, kq) = (cout.div_ceil(16), depth.div_ceil(4));
    let w4 = gemm::vnni_layout(cout, kq, &microgen_rt::mac::fc_vnni_pass, &|o, d| if d < depth { w[o * depth + d] as i8 } else { 0 });
    let fb4: Vec<i32> = (0..g16 * 16)
        .map(|o| if o < cout { folded[o].wrapping_sub(128 * w[o * depth..(o + 1) * depth].iter().map(|&v| v as i8 as i32).sum::<i32>()) } else { 0 })
        .collect();
    let (w4len, w4bytes, nb4, fb4_l) = (lit::usize(w4.len()), lit::bytes(&w4), lit::usize(fb4.len()), lit::i32s(&fb4));
    let vnni = quote!(all(target_arch = "x86_64", target_feature = "avx512vnni"));
    let statics = quote! {
        /// Weights, [8-channel tile][pair of inputs][channel][2], int8.
        #[cfg(not(#vnni))]
        static #w_id: ::microgen_rt::mac::AlignV<[u8; #wlen]> = ::microgen_rt::mac::AlignV(#wbytes);
        /// Bias with the input zero point folded in: bias + in_offset * sum(w).
        #[cfg(not(#vnni))]
        static #b_id: [i32; #nb] = #fb_l;
        /// Weights for x86-64 with AVX-512 VNNI, per pass of groups of 16 channels [4 inputs][group][channel][4], int8.
        #[cfg(#vnni)]
        static #w_id: ::microgen_rt::mac::Align64<[u8; #w4len]> = ::microgen_rt::mac::Align64(#w4bytes);
        /// Bias for inputs read as `x ^ 0x80`: bias + in_offset * sum(w) - 128 * sum(w).
        #[cfg(#vnni)]
        static #b_id: [i32; #nb4] = #fb4_l;
        /// Requantization, per tile of 8 channels.
        static #r_id: [[[i32; 8]; 3]; #groups] = #rqs;
    };
    let (k_l, co, b_l, steps_l, lo_l, hi_l) = (lit::usize(depth), lit::usize(cout), lit::usize(batches), lit::usize(steps), lit::i32(lo), lit::i32(hi));
    let rev = ctx.reverse;
    let body = quote! {
        let l = ::microgen_rt::mac::FcI8 { k: #k_l, cout: #co, w: &#w_id.0, bias: &#b_id, rq: &#r_id, lo: #lo_l, hi: #hi_l, vnni: cfg!(#vnni) };
        let mut xs = [0u32; #steps_l];
        ::microgen_rt::mac::fc_channels::<_, _, #is_fast>(&l, x0, #b_l, y0, #rev, &mut xs);
    };
    // Cortex-M4 estimate of the plain loop this form is elsewhere (never below the loop
    // form's, which is as fast there and smaller).
    ctx.report(Strategy::Vector, Est { instructions: 7 * macs + 30 * (batches * cout) as u64, code_bytes: 90, shared: vec![("fc_channels".into(), 700)] });
    let doc = format!(
        "[{batches} x {depth}] -> [{batches} x {cout}], int8, activation {}, {macs} MACs; int8 weights in tiles of 8 channels by input pairs, {} requantization, {} B of stack scratch",
        act.name(),
        if is_fast { "doubled-accumulator" } else { "exact" },
        4 * steps
    );
    Kernel { statics, body, doc, macs, const_bytes: wp.len() + 16 * tiles * 8 }
}
