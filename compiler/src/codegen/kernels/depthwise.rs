//! DEPTHWISE_CONV_2D: int8 (TFLM `reference_integer_ops::DepthwiseConvPerChannel`), float32
//! (`reference_ops::DepthwiseConv`), and hybrid (int8 weights dequantized at compile time).
//! Output channel `oc = ic * depth_multiplier + m`.

use super::super::{lit, Kernel, KernelCtx};
use super::conv::{batch_minmax, bias, bias_f32, bias_i32, clamp_f32, conv_mults, f32_bytes, f32_values, geometry, hybrid_helpers, macs, product, requant_bytes, requant_out};
use super::gemm::{self, RowSource, Tile};
use super::strategy::{Est, Strategy};
use super::super::Kernel as K;
use crate::error::Result;
use crate::ir::{DType, Op};
use proc_macro2::TokenStream;
use quote::quote;

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let Op::DepthwiseConv2d { win, depth_multiplier, act } = ctx.node.op else { unreachable!() };
    let x = ctx.tensor(0)?;
    let w = ctx.tensor(1)?;
    let y = ctx.out(0)?;
    if w.shape.len() != 4 || w.shape[0] != 1 {
        return Err(ctx.err(format!("filter must be 4-D [1, height, width, out_channels], got shape {:?}", w.shape)));
    }
    let (kh, kw, cout) = (w.shape[1], w.shape[2], w.shape[3]);
    let g = geometry(ctx, x, y, kh, kw, &win, cout)?;
    if cout % g.c != 0 {
        return Err(ctx.err(format!("filter has {cout} output channels, not a multiple of the input's {} channels", g.c)));
    }
    // The depth multiplier follows from the shapes (the option is redundant and some
    // converters leave it wrong); reject an option that contradicts them.
    let dm = cout / g.c;
    if depth_multiplier != 0 && depth_multiplier != dm {
        return Err(ctx.err(format!(
            "depth_multiplier {depth_multiplier} does not match the shapes: {} input channels, {cout} output channels",
            g.c
        )));
    }
    if g.empty {
        return Err(ctx.err("some output position's window has no tap inside the input"));
    }
    let Some(wdata) = w.data.as_ref() else {
        return Err(ctx.unsupported("non-constant filters are not supported; convert the model with constant weights"));
    };
    let wn = product(ctx, &[kh, kw, cout])?;
    let Some(wdata) = wdata.get(..product(ctx, &[wn, w.dtype.size()])?) else {
        return Err(ctx.err(format!("filter data has {} bytes, expected {}", wdata.len(), wn * w.dtype.size())));
    };
    let b = bias(ctx, cout)?;
    let macs = macs(&[g.n, g.oh, g.ow, cout, kh, kw]);
    let decls = g.decls();
    let co = lit::usize(cout);
    let dm_l = lit::usize(dm);
    let w_id = ctx.ident("W");
    let b_id = ctx.ident("B");
    let shape_doc = format!(
        "{:?} -> {:?}, filter {kh}x{kw}, depth multiplier {dm}, stride {}x{}, dilation {}x{}, {:?} padding (top {}, left {})",
        x.shape, y.shape, g.sh, g.sw, g.dh, g.dw, win.padding, g.pad_h, g.pad_w
    );
    match (x.dtype, w.dtype, y.dtype) {
        (DType::I8, DType::I8, DType::I8) => {
            let (in_off, out_zp, mults) = conv_mults(ctx, x, w, y, cout, 3)?;
            let yq = y.q().ok_or_else(|| ctx.err("int8 output has no quantization"))?;
            let bias_v = bias_i32(ctx, b, cout, "DEPTHWISE_CONV_2D")?;
            // acc = bias + sum((x + in_offset) * w) over the taps inside the input
            //     = (bias + in_offset * sum(w)) + sum(x * w) for a window entirely inside.
            let folded: Vec<i32> = (0..cout)
                .map(|o| {
                    let s: i32 = (0..kh * kw).fold(0i32, |a, t| a.wrapping_add(wdata[t * cout + o] as i8 as i32));
                    bias_v[o].wrapping_add(in_off.wrapping_mul(s))
                })
                .collect();
            let (amin, amax) = act.range_q(yq.scale(), yq.zp(), -128, 127);
            if ctx.strategy == Strategy::Compact {
                let l = super::compact::Layer {
                    g: [g.n, g.h, g.w, g.c, g.oh, g.ow, cout, kh, kw, g.sh, g.sw, g.dh, g.dw, g.pad_h, g.pad_w, g.c],
                    depthwise: true,
                    w: wdata,
                    bias: &bias_v,
                    mults: &mults,
                    in_off,
                    out_zp: yq.zp(),
                    lo: amin,
                    hi: amax,
                };
                let doc = format!(
                    "{shape_doc}, int8, {} weights, activation {}, {macs} MACs",
                    if mults.iter().all(|m| *m == mults[0]) { "per-tensor" } else { "per-channel" },
                    act.name()
                );
                if let Some(k) = super::compact::emit(ctx, &l, doc, macs) {
                    return Ok(k);
                }
            }
            if ctx.strategy == Strategy::Vector && dm == 1 {
                return Ok(emit_channels(ctx, &g, wdata, &bias_v, &folded, in_off, &mults, yq.zp(), amin, amax, &shape_doc, macs));
            }
            if ctx.strategy == Strategy::Direct && g.c == 1 {
                // One input channel: a convolution of `cout` filters over the windows.
                let w: Vec<i8> = (0..cout).flat_map(|o| (0..kh * kw).map(move |t| wdata[t * cout + o] as i8)).collect();
                let g13 = [g.h, g.w, g.c, g.oh, g.ow, kh, kw, g.sh, g.sw, g.dh, g.dw, g.pad_h, g.pad_w];
                if let Some(p) = super::direct::pack(&w, g13, cout, &bias_v, in_off, &mults, yq.zp(), amin, amax) {
                    let (statics, body, scratch) = super::direct::emit(ctx, &p, g13, -in_off, g.n, amin, amax);
                    let doc = format!(
                        "{shape_doc}, int8, per-channel weights, {macs} MACs; one input channel, direct: windows read in place from a band of {kh} input rows as int16, tiles of {} output channels, doubled-accumulator requantization, {scratch} B of stack scratch",
                        p.tn
                    );
                    return Ok(K { statics, body, doc, macs, const_bytes: p.const_bytes() });
                }
            }
            if ctx.strategy == Strategy::Packed {
                if let Some(k) = emit_fast(ctx, &g, wdata, &bias_v, in_off, &mults, yq.zp(), amin, amax, dm, cout, &shape_doc, macs)? {
                    return Ok(k);
                }
            }
            let fast = if ctx.inline_requant { None } else { gemm::fast_rqs(cout, |o| (0..kh * kw).map(move |t| wdata[t * cout + o] as i8), &bias_v, in_off, &mults, out_zp, amin, amax) };
            let (out_zp, amin, amax, in_off_l) = (lit::i32(out_zp), lit::i32(amin), lit::i32(amax), lit::i32(in_off));
            let (mdecl, qexpr) = requant_out(ctx, &mults, fast.as_deref(), &out_zp, &amin, &amax);
            let f_id = ctx.ident("BF");
            let wlen = lit::usize(wn);
            let wbytes = lit::bytes(wdata);
            let folded_l = lit::i32s(&folded);
            let mut statics = quote! {
                /// Filter, [height][width][out_channels], int8.
                static #w_id: [u8; #wlen] = #wbytes;
                /// Bias with the input zero point folded in: bias + in_offset * sum(filter).
                const #f_id: [i32; #co] = #folded_l;
            };
            let mut const_bytes = wn + 4 * cout + requant_bytes(&mults);
            // For flash, windows clipped by the padding read the input zero point at the
            // taps outside (which add `(zp + in_offset) * w = 0`, as TFLM's skipped taps),
            // so that one accumulator start serves every window: less code than the sum
            // of the weights inside, one bounds test more per tap.
            let pad_zp = g.partial && !ctx.inline_requant;
            let base = if g.partial && !pad_zp {
                let bias_l = lit::i32s(&bias_v);
                statics.extend(quote! {
                    /// Bias, int32.
                    const #b_id: [i32; #co] = #bias_l;
                });
                const_bytes += 4 * cout;
                quote! {
                    if full {
                        #f_id[oc]
                    } else {
                        let mut s: i32 = 0;
                        for ky in ky0..ky1 {
                            for kx in kx0..kx1 {
                                s = s.wrapping_add(#w_id[(ky * KW + kx) * COUT + oc] as i8 as i32);
                            }
                        }
                        let off: i32 = #in_off_l;
                        #b_id[oc].wrapping_add(off.wrapping_mul(s))
                    }
                }
            } else {
                quote!(#f_id[oc])
            };
            let ocs = g.chans(&quote!(COUT));
            let taps = if pad_zp {
                let zp = lit::i32(-in_off);
                quote! {
                    // Input rows, [b * H + iy][ix * C + c]: indexed so that the tests of `iy`
                    // and `ix` also prove the reads in bounds (no bounds checks left).
                    let rows = x0.as_chunks::<{ W * C }>().0;
                    for ky in 0..KH {
                        let iy = iy0 + (ky * DH) as isize;
                        for kx in 0..KW {
                            let ix = ix0 + (kx * DW) as isize;
                            let xv = if iy >= 0 && iy < H as isize && ix >= 0 && ix < W as isize {
                                rows[b * H + iy as usize].get_i8(ix as usize * C + ic) as i32
                            } else {
                                #zp
                            };
                            acc = acc.wrapping_add(xv * (#w_id[(ky * KW + kx) * COUT + oc] as i8 as i32));
                        }
                    }
                }
            } else {
                quote! {
                    for ky in ky0..ky1 {
                        let iy = (iy0 + (ky * DH) as isize) as usize;
                        for kx in kx0..kx1 {
                            let ix = (ix0 + (kx * DW) as isize) as usize;
                            let xv = x0.get_i8(((b * H + iy) * W + ix) * C + ic) as i32;
                            acc = acc.wrapping_add(xv * (#w_id[(ky * KW + kx) * COUT + oc] as i8 as i32));
                        }
                    }
                }
            };
            // The zero-point taps, and for flash, windows of one input channel clipped by the
            // padding with undilated columns read a zero-bordered copy ([`super::conv::Geom::padded`]):
            // no test per tap. Measured on the M4: layer_dwc1 (1 channel, 6 filters) 336 -> 280
            // B of code; with 5 channels (dw_m1) the zero-point taps stay smaller (280 against
            // 288 B).
            let head = quote! {
                #decls
                const COUT: usize = #co;
                const DM: usize = #dm_l;
                #mdecl
            };
            let body = g.loops(
                &quote!(COUT),
                quote!(),
                quote! {
                    for oc in #ocs {
                        let ic = oc / DM;
                        let mut acc: i32 = #base;
                        #taps
                        y0.set_i8(yb + oc, #qexpr);
                    }
                },
            );
            let zp_taps = quote! {
                #head
                #body
            };
            let body = if pad_zp && g.dw == 1 && g.c == 1 && g.padded_bytes() <= super::conv::PADDED_LOOP_MAX {
                let head_base = quote! {
                    #decls
                    const COUT: usize = #co;
                    const DM: usize = #dm_l;
                };
                let (head, bias_expr, qexpr) = super::conv::padded_consts(ctx, &mut statics, head_base, &mdecl, fast.as_deref(), &bias_v, &b_id, &qexpr, &amin, &amax);
                const_bytes += 4 * cout;
                let taps = quote! {
                    let ic = oc / DM;
                    for ky in 0..KH {
                        let row = &xp[base + ky * DH * WP * C + ic..][..(KW - 1) * C + 1];
                        for kx in 0..KW {
                            acc = acc.wrapping_add(row[kx * C] as i32 * (#w_id[(ky * KW + kx) * COUT + oc] as i8 as i32));
                        }
                    }
                };
                g.padded(ctx.overlap, &head, -in_off, &bias_expr, taps, &qexpr, zp_taps)
            } else {
                zp_taps
            };
            let doc = format!(
                "{shape_doc}, int8, {} weights, activation {}, {macs} MACs",
                if mults.iter().all(|m| *m == mults[0]) { "per-tensor" } else { "per-channel" },
                act.name()
            );
            Ok(Kernel { statics, body, doc, macs, const_bytes })
        }
        (DType::F32, DType::I8, DType::F32) => {
            // Hybrid, as LiteRT's `EvalHybridPerChannel`: the input is quantized per batch at
            // run time (asymmetric), convolved in int32 and scaled back to float.
            let wq = w.q().ok_or_else(|| ctx.err("int8 weights have no quantization"))?;
            if wq.scale.is_empty() {
                return Err(ctx.err("int8 weights have no scale"));
            }
            if wq.zero_point.iter().any(|&z| z != 0) {
                return Err(ctx.unsupported("hybrid DEPTHWISE_CONV_2D with int8 weights with a non-zero zero point"));
            }
            if wq.per_channel() && (wq.scale.len() != cout || wq.axis != 3) {
                return Err(ctx.err(format!(
                    "per-channel weights have {} scales along dimension {}; expected {cout} along dimension 3",
                    wq.scale.len(),
                    wq.axis
                )));
            }
            let scales: Vec<f32> = (0..cout).map(|o| if wq.per_channel() { wq.scale[o] } else { wq.scale() }).collect();
            let bias_v = bias_f32(ctx, b, cout, "DEPTHWISE_CONV_2D")?;
            let s_id = ctx.ident("S");
            let wlen = lit::usize(wn);
            let wbytes = lit::bytes(wdata);
            let bias_items = bias_v.iter().map(|&v| lit::f32(v));
            let s_items = scales.iter().map(|&v| lit::f32(v));
            let clamp = clamp_f32(act);
            let statics = quote! {
                /// Filter, [height][width][out_channels], int8.
                static #w_id: [u8; #wlen] = #wbytes;
                const #b_id: [f32; #co] = [#(#bias_items),*];
                /// Per-channel filter scales.
                const #s_id: [f32; #co] = [#(#s_items),*];
            };
            let helpers = hybrid_helpers(true);
            let minmax = batch_minmax();
            let ocs = g.chans(&quote!(COUT));
            let body = g.loops(
                &quote!(COUT),
                quote! {
                    #minmax
                    let (inv, sf, zp) = asym(lo, hi);
                },
                quote! {
                    for oc in #ocs {
                        let ic = oc / DM;
                        let mut acc: i32 = 0;
                        for ky in ky0..ky1 {
                            let iy = (iy0 + (ky * DH) as isize) as usize;
                            for kx in kx0..kx1 {
                                let ix = (ix0 + (kx * DW) as isize) as usize;
                                let v = x0.get_f32(((b * H + iy) * W + ix) * C + ic);
                                let q = ::microgen_rt::f::round_clamp(zp as f32 + v * inv, -128, 127) - zp;
                                acc = acc.wrapping_add(q * (#w_id[(ky * KW + kx) * COUT + oc] as i8 as i32));
                            }
                        }
                        let v = acc as f32 * (#s_id[oc] * sf) + #b_id[oc];
                        y0.set_f32(yb + oc, #clamp);
                    }
                },
            );
            let body = quote! {
                #decls
                const COUT: usize = #co;
                const DM: usize = #dm_l;
                #helpers
                #body
            };
            let doc = format!(
                "{shape_doc}, float32 with int8 weights (hybrid: input quantized per batch at run time as LiteRT does), activation {}, {macs} MACs",
                act.name()
            );
            Ok(Kernel { statics, body, doc, macs, const_bytes: wn + 8 * cout })
        }
        (DType::F32, DType::F32, DType::F32) => {
            let wf: Vec<f32> = f32_values(wdata);
            let bias_v = bias_f32(ctx, b, cout, "DEPTHWISE_CONV_2D")?;
            if ctx.strategy == super::strategy::Strategy::Packed {
                let doc = format!("{shape_doc}, float32, activation {}, {macs} MACs", act.name());
                if let Some(k) = super::ftile::depthwise(ctx, &g, &wf, &bias_v, act, dm, doc, macs) {
                    return Ok(k);
                }
            }
            let wb = f32_bytes(&wf);
            let wlen = lit::usize(wb.len());
            let wbytes = lit::bytes(&wb);
            let bias_items = bias_v.iter().map(|&v| lit::f32(v));
            let clamp = clamp_f32(act);
            let statics = quote! {
                /// Filter, [height][width][out_channels], float32 little-endian.
                static #w_id: [u8; #wlen] = #wbytes;
                const #b_id: [f32; #co] = [#(#bias_items),*];
            };
            let ocs = g.chans(&quote!(COUT));
            let body = g.loops(
                &quote!(COUT),
                quote!(),
                quote! {
                    for oc in #ocs {
                        let ic = oc / DM;
                        let mut acc = 0.0f32;
                        for ky in ky0..ky1 {
                            let iy = (iy0 + (ky * DH) as isize) as usize;
                            for kx in kx0..kx1 {
                                let ix = (ix0 + (kx * DW) as isize) as usize;
                                acc += x0.get_f32(((b * H + iy) * W + ix) * C + ic) * #w_id[..].get_f32((ky * KW + kx) * COUT + oc);
                            }
                        }
                        let v = acc + #b_id[oc];
                        y0.set_f32(yb + oc, #clamp);
                    }
                },
            );
            let body = quote! {
                #decls
                const COUT: usize = #co;
                const DM: usize = #dm_l;
                #body
            };
            let doc = format!("{shape_doc}, float32, activation {}, {macs} MACs", act.name());
            Ok(Kernel { statics, body, doc, macs, const_bytes: wb.len() + 4 * cout })
        }
        (a, b, c) => Err(ctx.unsupported(format!(
            "DEPTHWISE_CONV_2D with input {a}, filter {b}, output {c}; supported: int8/int8/int8, float32/float32/float32, float32/int8/float32 (hybrid)"
        ))),
    }
}

/// The channel-vector form of an int8 depthwise convolution with depth multiplier 1 (any
/// window; `microgen_rt::dw::dw_channels`): per output position all channels accumulate
/// together, tap after tap, which vectorizes across channels on the host. The
/// doubled-accumulator requantization where it is exact for every channel, else TFLM's.
#[allow(clippy::too_many_arguments)]
fn emit_channels(
    ctx: &KernelCtx,
    g: &super::conv::Geom,
    wdata: &[u8],
    bias: &[i32],
    folded: &[i32],
    in_off: i32,
    mults: &[(i32, i32)],
    out_zp: i32,
    lo: i32,
    hi: i32,
    shape_doc: &str,
    macs: u64,
) -> K {
    let cout = g.c;
    let taps = g.kh * g.kw;
    let (is_fast, rq) = gemm::channel_rqs(cout, |c| (0..taps).map(move |t| wdata[t * cout + c] as i8), bias, in_off, mults, out_zp, lo, hi);
    let (w_id, b_id, r_id) = (ctx.ident("W"), ctx.ident("BF"), ctx.ident("RQ"));
    let (wlen, wbytes, co) = (lit::usize(taps * cout), lit::bytes(&wdata[..taps * cout]), lit::usize(cout));
    let folded_l = lit::i32s(folded);
    let (rqs, groups) = gemm::rq_groups(&rq);
    let groups = lit::usize(groups);
    let statics = quote! {
        /// Filter, [height][width][channels], int8.
        static #w_id: ::microgen_rt::mac::AlignV<[u8; #wlen]> = ::microgen_rt::mac::AlignV(#wbytes);
        /// Bias with the input zero point folded in: bias + in_offset * sum(filter).
        static #b_id: [i32; #co] = #folded_l;
        /// Requantization, per group of 8 channels.
        static #r_id: [[[i32; 8]; 3]; #groups] = #rqs;
    };
    let geom = gemm::geom_type([g.h, g.w, g.c, g.oh, g.ow, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pad_h, g.pad_w]);
    // Channels per block: all of them (blocks of 32 measured 2.3x slower on the host:
    // layer_dw_25x5x64_int8 9.0 -> 20.5 us).
    let kb = lit::usize(cout);
    let (zp, lo_l, hi_l, n_l) = (lit::i32(-in_off), lit::i32(lo), lit::i32(hi), lit::usize(g.n));
    let rev = ctx.reverse;
    let body = quote! {
        #geom
        let l = ::microgen_rt::dw::DwAny { n: #n_l, w: &#w_id.0, bias: &#b_id, rq: &#r_id, zp: #zp, lo: #lo_l, hi: #hi_l };
        ::microgen_rt::dw::dw_channels::<_, _, G, #co, #kb, #is_fast>(&l, x0, y0, #rev);
    };
    // Cortex-M4 estimate of the scalar form: two loads and a multiply-accumulate per MAC
    // plus the loop, the requantization per output.
    let npos = (g.n * g.oh * g.ow) as u64;
    ctx.report(Strategy::Vector, Est { instructions: macs * 7 + npos * cout as u64 * 20, code_bytes: 120, shared: vec![(format!("dw_channels c{cout}"), 600)] });
    let doc = format!(
        "{shape_doc}, int8, per-channel weights, {macs} MACs; channel vectors (every channel of a position at once), {} requantization, {} B of stack scratch",
        if is_fast { "doubled-accumulator" } else { "exact" },
        5 * cout
    );
    K { statics, body, doc, macs, const_bytes: taps * cout + 16 * cout }
}

/// The `speed` form of an int8 3x3 depthwise convolution (`microgen_rt::dw::dw3x3`), when
/// it applies: depth multiplier 1, no dilation, equal strides of 1 or 2, and the doubled-
/// accumulator requantization exact for every channel. `None` otherwise.
#[allow(clippy::too_many_arguments)]
fn emit_fast(
    ctx: &KernelCtx,
    g: &super::conv::Geom,
    wdata: &[u8],
    bias: &[i32],
    in_off: i32,
    mults: &[(i32, i32)],
    out_zp: i32,
    lo: i32,
    hi: i32,
    dm: usize,
    cout: usize,
    shape_doc: &str,
    macs: u64,
) -> Result<Option<K>> {
    if g.c == 1 {
        // One input channel: a convolution of `cout` filters, as a matrix product over
        // the windows.
        let kn = g.kh * g.kw;
        let w: Vec<i8> = (0..cout).flat_map(|o| (0..kn).map(move |t| wdata[t * cout + o] as i8)).collect();
        let src = RowSource::window([g.h, g.w, g.c, g.oh, g.ow, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pad_h, g.pad_w], -in_off);
        let (kp, kmap) = src.layout();
        let (kq4, order) = src.vnni_order();
        let p = gemm::pack(&w, kn, kp, &*kmap, (kq4, &*order), cout, bias, in_off, mults, out_zp, lo, hi, Tile::C4P2);
        let (statics, body, scratch) = gemm::emit(ctx, &p, &src, g.n * g.oh * g.ow, lo, hi);
        let doc = format!(
            "{shape_doc}, int8, per-channel weights, {macs} MACs; one input channel: packed 4x2 tiles over the windows, {} requantization, {scratch} B of stack scratch",
            if p.fast { "doubled-accumulator" } else { "exact" }
        );
        return Ok(Some(K { statics, body, doc, macs, const_bytes: p.const_bytes() }));
    }
    if g.kh != 3 || g.kw != 3 || g.dh != 1 || g.dw != 1 || dm != 1 || g.sh != g.sw || !(1..=2).contains(&g.sh) {
        return Ok(None);
    }
    let wv = |r: usize, k: usize, c: usize| wdata[(r * 3 + k) * cout + c] as i8 as i32;
    let rqs = gemm::fast_rqs(cout, |c| (0..9).map(move |t| wv(t / 3, t % 3, c) as i8), bias, in_off, mults, out_zp, lo, hi);
    let pw = microgen_rt::dw::plane_width(g.w, g.ow, g.sh, g.pad_w);
    let Some(rqs) = rqs else { return Ok(None) };
    if 3 * pw * 2 > 4095 || (g.ow / 2) * 4 * g.sh > 4095 || 2 * cout > 4095 {
        return Ok(None);
    }
    let pair = |a: i32, b: i32| ((a as i16 as u16 as u32) | ((b as i16 as u16 as u32) << 16)) as i32;
    let consts: Vec<TokenStream> = (0..cout)
        .map(|c| {
            let sum: i32 = (0..9).map(|t| wv(t / 3, t % 3, c)).sum();
            let b = bias[c].wrapping_add(in_off.wrapping_mul(sum)).wrapping_mul(2);
            let [m, k, e] = rqs[c];
            let v = [
                pair(2 * wv(0, 0, c), 2 * wv(0, 1, c)),
                pair(2 * wv(1, 0, c), 2 * wv(1, 1, c)),
                pair(2 * wv(2, 0, c), 2 * wv(2, 1, c)),
                pair(2 * wv(0, 2, c), 2 * wv(1, 2, c)),
                pair(2 * wv(2, 2, c), 0),
                b,
                m,
                k,
                e,
            ];
            lit::i32s(&v)
        })
        .collect();
    let id = ctx.ident("DW");
    let co = lit::usize(cout);
    let statics = quote! {
        /// Per channel: weight pairs of kernel rows 0..3, third column, bias, requantization.
        static #id: [[i32; 9]; #co] = [#(#consts),*];
    };
    let (s_l, pw_l, ow_l) = (lit::usize(g.sh), lit::usize(pw), lit::usize(g.ow));
    // The ring's int16 values all the zero point, written four per 64-bit store.
    let ring = lit::usize((3 * cout * pw).div_ceil(4));
    let pair = {
        let l = proc_macro2::Literal::u64_suffixed(((-in_off) as i16 as u16 as u64) * 0x0001_0001_0001_0001);
        quote!(#l)
    };
    let geo = [g.n, g.h, g.w, g.oh, g.pad_h, g.pad_w].map(lit::usize);
    let (zp, lo_l, hi_l) = (lit::i32(-in_off), lit::i32(lo), lit::i32(hi));
    let rev = ctx.reverse;
    let body = quote! {
        let mut ring = [#pair; #ring];
        ::microgen_rt::dw::dw3x3::<_, _, #s_l, #pw_l, #co, #ow_l>(x0, y0, [#(#geo),*], &#id, #zp, #lo_l, #hi_l, ::microgen_rt::dw::halves(&mut ring), #rev);
    };
    let scratch = 6 * cout * pw;
    let (pairs, single) = ((g.ow / 2) as u64, (g.ow % 2) as u64);
    let (c, rows) = (cout as u64, (g.n * g.oh) as u64);
    let per_rc = 15 + pairs * if pairs <= 4 { 33 } else { 36 } + 17 * single;
    let gather = (g.n * g.h * g.w * cout) as u64 * 13 / 5 + (g.n * g.h) as u64 * (20 + 10 * c / 4);
    let instructions = rows * (30 + c * per_rc) + gather + (3 * cout * pw / 2) as u64;
    let row_code = 120 + if pairs <= 4 { 144 * pairs as usize } else { 160 } + 72 * single as usize;
    ctx.report(
        Strategy::Packed,
        Est { instructions, code_bytes: 120, shared: vec![(format!("dw3x3 s{} pw{pw} c{cout} ow{}", g.sh, g.ow), 3 * row_code + 700)] },
    );
    let doc = format!(
        "{shape_doc}, int8, per-channel weights, {macs} MACs; packed 3x3 planes (two outputs per step), doubled-accumulator requantization, {scratch} B of stack scratch"
    );
    Ok(Some(K { statics, body, doc, macs, const_bytes: 36 * cout }))
}
