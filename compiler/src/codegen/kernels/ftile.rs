//! The `speed` form of float32 CONV_2D, DEPTHWISE_CONV_2D (depth multiplier 1) and
//! FULLY_CONNECTED: weights packed at compile time so that one input value meets a block of
//! output channels' weights (`microgen_rt::f::tile` / `gemv`), or, for depthwise, one tap
//! meets a block of channels. Every output is still summed tap after tap from 0 in the
//! reference's order through `microgen_rt::f::madd`: on a microcontroller every product is
//! rounded before its add (Rust never contracts them), so the results equal the loop form's
//! bit for bit; an x86-64 host with FMA fuses each product into its add (one rounding, as
//! XNNPACK does; `microgen_rt::f::FUSED`). The channel lanes become vector instructions on
//! the host and a run of register-held accumulators on a microcontroller FPU.

use super::super::{lit, Kernel, KernelCtx};
use super::conv::{clamp_f32, Geom};
use super::strategy::{Est, Strategy};
use crate::ir::Act;
use proc_macro2::TokenStream;
use quote::quote;

/// Channels per block: the smallest of 8, 16, 32, 64 (up to `max`) covering `cout`.
fn block(cout: usize, max: usize) -> usize {
    [8, 16, 32, 64].into_iter().find(|&b| b >= cout || b >= max).unwrap_or(max)
}

/// Weights `w[o][k]` (`cout` rows of `k`) as `[o / n][k][o % n]` float32 little-endian bytes,
/// zero-filled to whole blocks.
pub fn pack(w: &[f32], cout: usize, k: usize, n: usize) -> Vec<u8> {
    let nb = cout.div_ceil(n);
    let mut out = Vec::with_capacity(nb * k * n * 4);
    for j in 0..nb {
        for kk in 0..k {
            for q in 0..n {
                let o = j * n + q;
                let v = if o < cout { w[o * k + kk] } else { 0.0 };
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    out
}

fn statics(ctx: &KernelCtx, wb: &[u8], bias: &[f32], layout: &str) -> TokenStream {
    let (w_id, b_id) = (ctx.ident("W"), ctx.ident("B"));
    let wlen = lit::usize(wb.len());
    let wbytes = lit::bytes(wb);
    let co = lit::usize(bias.len());
    let bias_items = bias.iter().map(|&v| lit::f32(v));
    let doc = format!(" Filter packed {layout}, float32 little-endian.");
    quote! {
        #[doc = #doc]
        static #w_id: ::microgen_rt::mac::AlignV<[u8; #wlen]> = ::microgen_rt::mac::AlignV(#wbytes);
        const #b_id: [f32; #co] = [#(#bias_items),*];
    }
}

/// Estimated Cortex-M4 cost, as measured (bench/results.json at 2901861, where these forms were
/// chosen on Cortex-M4: 17.6 instructions per MAC on ic_resnet8_float32, 21 on
/// vww_mobilenet_float32, against the loop form's 12): a block's 16-64 accumulators do not
/// fit the FPU's registers, so they live on the stack. Above the loop form's estimate, so a
/// microcontroller keeps the loops; these are the host's forms (`choose_host`).
fn estimate(padded_macs: u64, copied: u64, outs: u64, code_bytes: usize) -> Est {
    Est { instructions: 18 * padded_macs + 3 * copied + 8 * outs, code_bytes, shared: Vec::new() }
}

/// CONV_2D: per tile of `microgen_rt::f::tile_p(n)` output positions (at most 128 KiB of
/// windows), their windows are copied into a local buffer (zeros at padded taps: adding a
/// zero product leaves a sum unchanged), then each block of `n` output channels runs
/// `microgen_rt::f::tile` over the whole window (or `tile_at` reads them in place).
#[allow(clippy::too_many_arguments)]
pub fn conv(ctx: &KernelCtx, g: &Geom, w: &[f32], bias: &[f32], act: Act, doc: String, macs: u64) -> Kernel {
    let cout = bias.len();
    let k = g.kh * g.kw * g.c;
    // Blocks of 32 channels where they divide the channel count (two AVX-512 vectors per
    // position: fewer broadcasts per multiply-add), else the smallest block covering it.
    let n = if cout % 32 == 0 { 32 } else { block(cout, 16) };
    let nb = cout.div_ceil(n);
    let wb = pack(w, cout, k, n);
    let layout = format!("[{nb} blocks][{k} taps (ky, kx, ic)][{n} channels]");
    let statics = statics(ctx, &wb, bias, &layout);
    let (w_id, b_id) = (ctx.ident("W"), ctx.ident("B"));
    let decls = g.decls();
    let (co, kl, nl, nbl) = (lit::usize(cout), lit::usize(k), lit::usize(n), lit::usize(nb));
    let npos = g.n * g.oh * g.ow;
    let npos_l = lit::usize(npos);
    let clamp = clamp_f32(act);
    let dense = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && !g.partial && g.oh == g.h && g.ow == g.w;
    let gather = if dense {
        quote!(x0.read_f32s(pos * C, &mut win[p]);)
    } else {
        let inside = if g.partial {
            quote!(iy >= 0 && (iy as usize) < H && ix >= 0 && (ix as usize) < W)
        } else {
            quote!(true)
        };
        let taps = quote! {
            for ky in 0..KH {
                let iy = iy0 + (ky * DH) as isize;
                for kx in 0..KW {
                    let ix = ix0 + (kx * DW) as isize;
                    let dst = &mut win[p][(ky * KW + kx) * C..(ky * KW + kx + 1) * C];
                    if #inside {
                        x0.read_f32s(((b * H + iy as usize) * W + ix as usize) * C, dst);
                    } else {
                        dst.fill(0.0);
                    }
                }
            }
        };
        if g.dw == 1 && g.kw > 1 {
            // Undilated columns: a window row inside the input is one run of `KW * C` values.
            let full = if g.partial {
                quote!(iy0 >= 0 && ix0 >= 0 && (iy0 as usize) + (KH - 1) * DH < H && (ix0 as usize) + KW - 1 < W)
            } else {
                quote!(true)
            };
            quote! {
                let (b, oy, ox) = (pos / (OH * OW), (pos / OW) % OH, pos % OW);
                let (iy0, ix0) = ((oy * SH) as isize - PAD_H, (ox * SW) as isize - PAD_W);
                if #full {
                    for ky in 0..KH {
                        let iy = (iy0 + (ky * DH) as isize) as usize;
                        x0.read_f32s(((b * H + iy) * W + ix0 as usize) * C, &mut win[p][ky * KW * C..(ky + 1) * KW * C]);
                    }
                } else {
                    #taps
                }
            }
        } else {
            quote! {
                let (b, oy, ox) = (pos / (OH * OW), (pos / OW) % OH, pos % OW);
                let (iy0, ix0) = ((oy * SH) as isize - PAD_H, (ox * SW) as isize - PAD_W);
                #taps
            }
        }
    };
    let (tiles, blocks) = if g.rev { (quote!((0..TILES).rev()), quote!((0..NB).rev())) } else { (quote!(0..TILES), quote!(0..NB)) };
    // Windows read in place (`microgen_rt::f::tile_at`) where a tile's window rows all lie
    // inside the input: undilated columns, and, when the output overlaps the input, one
    // block only (a second block would read a window after the first wrote its outputs).
    let in_place = g.dw == 1 && (nb == 1 || !ctx.overlap);
    let epilogue = quote! {
        for (p, a) in acc.iter().enumerate() {
            let pos = t * P + p;
            if pos >= NPOS {
                break;
            }
            if (j + 1) * TN <= COUT {
                let bias = &#b_id[j * TN..(j + 1) * TN];
                let mut o = [0.0f32; TN];
                for q in 0..TN {
                    let v = a[q] + bias[q];
                    o[q] = #clamp;
                }
                y0.write_f32s(pos * COUT + j * TN, &o);
            } else {
                for (q, &acc) in a.iter().enumerate() {
                    let oc = j * TN + q;
                    if oc < COUT {
                        let v = acc + #b_id[oc];
                        y0.set_f32(pos * COUT + oc, #clamp);
                    }
                }
            }
        }
    };
    // The windows of tile `t` copied into `win` (positions past the end left as they are).
    let copy_windows = quote! {
        for p in 0..P {
            let pos = t * P + p;
            if pos < NPOS {
                #gather
            }
        }
    };
    let maxp = lit::usize((131072 / (4 * k)).max(1));
    let consts = quote! {
        #decls
        const COUT: usize = #co;
        const K: usize = #kl;
        const TN: usize = #nl;
        const NB: usize = #nbl;
        const NPOS: usize = #npos_l;
        // The host's tile, capped so that the tile's windows stay within 128 KiB of stack.
        const P: usize = if ::microgen_rt::f::tile_p(TN) > #maxp { #maxp } else { ::microgen_rt::f::tile_p(TN) };
        const TILES: usize = NPOS.div_ceil(P);
        let _ = (N, H, W, OH, SH, SW, DH, DW, PAD_H, PAD_W, KH, KW);
    };
    let body = if in_place && dense {
        // A position's window is its `C` input values; a tile's positions past the end
        // read the last one's (their sums are never stored).
        quote! {
            #consts
            for t in #tiles {
                let starts: [usize; P] = ::core::array::from_fn(|p| (t * P + p).min(NPOS - 1) * C);
                for j in #blocks {
                    let mut acc = [[0.0f32; TN]; P];
                    ::microgen_rt::f::tile_at(x0, starts, 1, K, 0, &#w_id.0[j * K * TN * 4..(j + 1) * K * TN * 4], &mut acc);
                    #epilogue
                }
            }
        }
    } else if in_place {
        let full = if g.partial {
            quote!(iy0 >= 0 && ix0 >= 0 && (iy0 as usize) + (KH - 1) * DH < H && (ix0 as usize) + KW - 1 < W)
        } else {
            quote!(true)
        };
        quote! {
            #consts
            let mut win = [[0.0f32; K]; P];
            for t in #tiles {
                // Where every window of the tile lies inside the input, its rows are read in
                // place (from `base`); otherwise the windows are copied, zeros at padded taps.
                let mut base = [0usize; P];
                let mut inside = true;
                for p in 0..P {
                    // Positions past the end read the last one's window (never stored).
                    let pos = (t * P + p).min(NPOS - 1);
                    let (b, oy, ox) = (pos / (OH * OW), (pos / OW) % OH, pos % OW);
                    let (iy0, ix0) = ((oy * SH) as isize - PAD_H, (ox * SW) as isize - PAD_W);
                    if #full {
                        base[p] = ((b * H + iy0 as usize) * W + ix0 as usize) * C;
                    } else {
                        inside = false;
                    }
                }
                if !inside {
                    #copy_windows
                }
                let xs: [&[f32]; P] = ::core::array::from_fn(|p| &win[p][..]);
                for j in #blocks {
                    let mut acc = [[0.0f32; TN]; P];
                    let wj = &#w_id.0[j * K * TN * 4..(j + 1) * K * TN * 4];
                    if inside {
                        ::microgen_rt::f::tile_at(x0, base, KH, KW * C, DH * W * C, wj, &mut acc);
                    } else {
                        ::microgen_rt::f::tile(xs, wj, &mut acc);
                    }
                    #epilogue
                }
            }
        }
    } else {
        quote! {
            #consts
            let mut win = [[0.0f32; K]; P];
            for t in #tiles {
                #copy_windows
                let xs: [&[f32]; P] = ::core::array::from_fn(|p| &win[p][..]);
                for j in #blocks {
                    let mut acc = [[0.0f32; TN]; P];
                    ::microgen_rt::f::tile(xs, &#w_id.0[j * K * TN * 4..(j + 1) * K * TN * 4], &mut acc);
                    #epilogue
                }
            }
        }
    };
    let padded = (npos * nb * n * k) as u64;
    ctx.report(Strategy::Packed, estimate(padded, (npos * k) as u64, (npos * cout) as u64, 520 + 24 * n));
    let doc = format!("{doc}; packed float tiles of {n} channels, {} B of stack scratch per position of a tile", 4 * k);
    Kernel { statics, body, doc, macs, const_bytes: wb.len() + 4 * cout }
}

/// DEPTHWISE_CONV_2D with depth multiplier 1: per output position, blocks of channels (a
/// divisor of the channel count, up to 64) accumulate tap after tap in local arrays.
/// `None` for a depth multiplier other than 1 or a channel count without such a block.
#[allow(clippy::too_many_arguments)]
pub fn depthwise(ctx: &KernelCtx, g: &Geom, w: &[f32], bias: &[f32], act: Act, dm: usize, doc: String, macs: u64) -> Option<Kernel> {
    let cout = bias.len();
    if dm != 1 {
        return None;
    }
    let cb = [64, 32, 16, 8].into_iter().find(|b| cout % b == 0).or((cout <= 64).then_some(cout))?;
    let wb: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    let statics = statics(ctx, &wb, bias, "[height][width][channels] (the model's layout)");
    let (w_id, b_id) = (ctx.ident("W"), ctx.ident("B"));
    let decls = g.decls();
    let (co, cbl) = (lit::usize(cout), lit::usize(cb));
    let clamp = clamp_f32(act);
    let blocks = g.chans(&quote!(COUT / CB));
    let body = g.loops(
        &quote!(COUT),
        quote!(),
        quote! {
            for j in #blocks {
                let mut acc = [0.0f32; CB];
                #[inline(always)]
                fn tap(acc: &mut [f32; CB], x0: &(impl ::microgen_rt::buf::F32s + ?Sized), w: &[u8], xi: usize, wi: usize) {
                    let mut xv = [0.0f32; CB];
                    x0.read_f32s(xi, &mut xv);
                    let mut wv = [0.0f32; CB];
                    w.read_f32s(wi, &mut wv);
                    ::microgen_rt::f::madd_lanes(acc, &xv, &wv);
                }
                if full {
                    // The whole window: constant bounds, one bounds check.
                    let start = ((b * H + iy0 as usize) * W + ix0 as usize) * C + j * CB;
                    ::microgen_rt::f::dw_window::<CB, _>(x0, start, KH, KW, DH * W * C, DW * C, &#w_id.0[j * CB * 4..], COUT, &mut acc);
                } else {
                    for ky in ky0..ky1 {
                        let iy = (iy0 + (ky * DH) as isize) as usize;
                        for kx in kx0..kx1 {
                            let ix = (ix0 + (kx * DW) as isize) as usize;
                            tap(&mut acc, x0, &#w_id.0[..], ((b * H + iy) * W + ix) * C + j * CB, (ky * KW + kx) * COUT + j * CB);
                        }
                    }
                }
                let bias = &#b_id[j * CB..(j + 1) * CB];
                let mut o = [0.0f32; CB];
                for q in 0..CB {
                    let v = acc[q] + bias[q];
                    o[q] = #clamp;
                }
                y0.write_f32s(yb + j * CB, &o);
            }
        },
    );
    let body = quote! {
        #decls
        const COUT: usize = #co;
        const CB: usize = #cbl;
        let _ = (N, OH, OW, SH, SW);
        #body
    };
    let npos = (g.n * g.oh * g.ow) as u64;
    ctx.report(Strategy::Packed, estimate(macs, 0, npos * cout as u64, 360 + 24 * cb));
    let doc = format!("{doc}; float channel blocks of {cb}");
    Some(Kernel { statics, body, doc, macs, const_bytes: wb.len() + 4 * cout })
}

/// FULLY_CONNECTED: per batch row, `microgen_rt::f::gemv` over blocks of up to 16 output
/// channels (weights `w[o][depth]`).
pub fn fully_connected(ctx: &KernelCtx, w: &[f32], bias: &[f32], batches: usize, depth: usize, act: Act, doc: String, macs: u64) -> Kernel {
    let cout = bias.len();
    let n = block(cout, 16);
    let nb = cout.div_ceil(n);
    let wb = pack(w, cout, depth, n);
    let statics = statics(ctx, &wb, bias, &format!("[{nb} blocks][{depth} inputs][{n} outputs]"));
    let (w_id, b_id) = (ctx.ident("W"), ctx.ident("B"));
    let (co, dl, bl, nl) = (lit::usize(cout), lit::usize(depth), lit::usize(batches), lit::usize(n));
    let clamp = clamp_f32(act);
    let body = quote! {
        const DEPTH: usize = #dl;
        const OUT: usize = #co;
        const BATCHES: usize = #bl;
        let mut xr = [0.0f32; DEPTH];
        for b in 0..BATCHES {
            x0.read_f32s(b * DEPTH, &mut xr);
            ::microgen_rt::f::gemv::<#nl>(&xr, &#w_id.0, |o, acc| {
                if o < OUT {
                    let v = acc + #b_id[o];
                    y0.set_f32(b * OUT + o, #clamp);
                }
            });
        }
    };
    ctx.report(Strategy::Packed, estimate((batches * nb * n * depth) as u64, (batches * depth) as u64, (batches * cout) as u64, 300 + 24 * n));
    let doc = format!("{doc}; packed float blocks of {n} outputs");
    Kernel { statics, body, doc, macs, const_bytes: wb.len() + 4 * cout }
}
