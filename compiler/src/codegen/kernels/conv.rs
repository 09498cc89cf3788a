//! CONV_2D: int8 (TFLM `reference_integer_ops::ConvPerChannel`), float32 (`ConvFloat`), and
//! hybrid (int8 weights dequantized at compile time, float32 activations). Also the window
//! geometry (TFLite `ComputePaddingHeightWidth`) shared with DEPTHWISE_CONV_2D and the pools.

use super::super::{lit, Kernel, KernelCtx};
use super::compact;
use super::gemm::{self, RowSource, Tile};
use super::strategy::Strategy;
use super::{const_f32, const_i32, quantize_multiplier};
use crate::error::Result;
use crate::ir::{Act, DType, Op, Padding, Tensor, Window};
use proc_macro2::TokenStream;
use quote::quote;

/// Geometry of a 2-D window operator on an NHWC input.
#[derive(Debug, Clone, Copy)]
pub struct Geom {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    /// Top / left padding (TFLM's loops use only these).
    pub pad_h: usize,
    pub pad_w: usize,
    /// Some output position has a window that is not entirely inside the input.
    pub partial: bool,
    /// Some output position has a window with no tap inside the input.
    pub empty: bool,
    /// Run the output positions (and channels, see [`Geom::chans`]) backwards: the memory
    /// plan placed the output above an input it overwrites (see `plan::access`).
    pub rev: bool,
}

/// Most stack bytes of the int16 input copy of the flash goals' clipped windows.
pub const PADDED_LOOP_MAX: usize = 1024;

/// TFLite `ComputeOutSize`.
fn out_size(p: Padding, n: usize, k: usize, s: usize, d: usize) -> i64 {
    let eff = (k as i64 - 1) * d as i64 + 1;
    match p {
        Padding::Same => (n as i64 + s as i64 - 1) / s as i64,
        Padding::Valid => (n as i64 + s as i64 - eff) / s as i64,
    }
}

/// TFLite `ComputePaddingWithOffset` (the leading padding).
fn pad(s: usize, d: usize, n: usize, k: usize, out: usize) -> usize {
    let eff = (k as i64 - 1) * d as i64 + 1;
    let total = (out as i64 - 1) * s as i64 + eff - n as i64;
    (total.max(0) / 2) as usize
}

/// The taps `k` in `0..kn` with `0 <= o + k * d < n`, as a range (TFLM's clipped window).
fn tap_range(o: i64, n: usize, kn: usize, d: usize) -> (usize, usize) {
    let d = d as i64;
    let lo = if o < 0 { (-o + d - 1) / d } else { 0 };
    let hi = if (n as i64) > o { ((n as i64 - o + d - 1) / d).min(kn as i64) } else { 0 };
    (lo as usize, hi.max(lo) as usize)
}

/// Validates the input/output shapes of a window operator with a `kh` x `kw` window and
/// computes its geometry. `cout` is the expected number of output channels.
pub fn geometry(ctx: &KernelCtx, x: &Tensor, y: &Tensor, kh: usize, kw: usize, win: &Window, cout: usize) -> Result<Geom> {
    if x.shape.len() != 4 {
        return Err(ctx.err(format!("input must be 4-D [batches, height, width, channels], got shape {:?}", x.shape)));
    }
    if y.shape.len() != 4 {
        return Err(ctx.err(format!("output must be 4-D [batches, height, width, channels], got shape {:?}", y.shape)));
    }
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    if n == 0 || h == 0 || w == 0 || c == 0 || kh == 0 || kw == 0 || cout == 0 {
        return Err(ctx.err(format!("empty input {:?} or window {kh}x{kw}", x.shape)));
    }
    let (sh, sw, dh, dw) = (win.stride_h, win.stride_w, win.dilation_h, win.dilation_w);
    if sh == 0 || sw == 0 || dh == 0 || dw == 0 {
        return Err(ctx.err("strides and dilations must be at least 1"));
    }
    let oh = out_size(win.padding, h, kh, sh, dh);
    let ow = out_size(win.padding, w, kw, sw, dw);
    if oh <= 0 || ow <= 0 {
        return Err(ctx.err(format!(
            "window {kh}x{kw} (dilation {dh}x{dw}) is larger than the input {h}x{w} with VALID padding"
        )));
    }
    let (oh, ow) = (oh as usize, ow as usize);
    let want = [n, oh, ow, cout];
    if y.shape[..] != want[..] {
        return Err(ctx.err(format!(
            "output shape {:?} does not match the computed shape {:?} (input {:?}, window {kh}x{kw}, stride {sh}x{sw}, dilation {dh}x{dw}, {:?} padding)",
            y.shape, want, x.shape, win.padding
        )));
    }
    let pad_h = pad(sh, dh, h, kh, oh);
    let pad_w = pad(sw, dw, w, kw, ow);
    let (mut partial, mut empty) = (false, false);
    let rows: Vec<(usize, usize)> = (0..oh).map(|o| tap_range((o * sh) as i64 - pad_h as i64, h, kh, dh)).collect();
    let cols: Vec<(usize, usize)> = (0..ow).map(|o| tap_range((o * sw) as i64 - pad_w as i64, w, kw, dw)).collect();
    for &(a, b) in rows.iter() {
        partial |= a != 0 || b != kh;
        empty |= a >= b;
    }
    for &(a, b) in cols.iter() {
        partial |= a != 0 || b != kw;
        empty |= a >= b;
    }
    Ok(Geom { n, h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, pad_h, pad_w, partial, empty, rev: ctx.reverse })
}

impl Geom {
    /// `const` declarations of the geometry for a kernel body.
    pub fn decls(&self) -> TokenStream {
        let (n, h, w, c) = (lit::usize(self.n), lit::usize(self.h), lit::usize(self.w), lit::usize(self.c));
        let (oh, ow, kh, kw) = (lit::usize(self.oh), lit::usize(self.ow), lit::usize(self.kh), lit::usize(self.kw));
        let (sh, sw, dh, dw) = (lit::usize(self.sh), lit::usize(self.sw), lit::usize(self.dh), lit::usize(self.dw));
        let (ph, pw) = (lit::usize(self.pad_h), lit::usize(self.pad_w));
        quote! {
            const N: usize = #n;
            const H: usize = #h;
            const W: usize = #w;
            const C: usize = #c;
            const OH: usize = #oh;
            const OW: usize = #ow;
            const KH: usize = #kh;
            const KW: usize = #kw;
            const SH: usize = #sh;
            const SW: usize = #sw;
            const DH: usize = #dh;
            const DW: usize = #dw;
            const PAD_H: isize = #ph;
            const PAD_W: isize = #pw;
        }
    }

    /// The range of an output-channel loop: `0..n`, or backwards when the positions run
    /// backwards (so that the whole kernel runs in exactly the reverse order).
    pub fn chans(&self, n: &TokenStream) -> TokenStream {
        if self.rev {
            quote!((0..#n).rev())
        } else {
            quote!(0..#n)
        }
    }

    /// The loops over batches and output positions, with `iy0`/`ix0` (window origin) and,
    /// when some window is clipped, `ky0..ky1` / `kx0..kx1` (taps inside the input) and
    /// `full`; otherwise those are the whole window. `prologue` runs once per batch `b`;
    /// `body` runs per output position with `yb` = index of its first output element
    /// (`cout` channels per position). With `rev`, batches and positions run backwards.
    pub fn loops(&self, cout: &TokenStream, prologue: TokenStream, body: TokenStream) -> TokenStream {
        let ranges = if self.partial {
            quote! {
                /// Taps `k < kn` with `0 <= o + k * d < n`.
                #[inline(always)]
                fn taps(o: isize, n: usize, kn: usize, d: usize) -> (usize, usize) {
                    let d = d as isize;
                    let lo = if o < 0 { (-o + d - 1) / d } else { 0 };
                    let hi = if (n as isize) > o { ((n as isize - o + d - 1) / d).min(kn as isize) } else { 0 };
                    (lo as usize, if hi > lo { hi as usize } else { lo as usize })
                }
            }
        } else {
            quote!()
        };
        let (row, col, full) = if self.partial {
            (
                quote!(let (ky0, ky1) = taps(iy0, H, KH, DH);),
                quote!(let (kx0, kx1) = taps(ix0, W, KW, DW);),
                quote!(let full = ky0 == 0 && ky1 == KH && kx0 == 0 && kx1 == KW;),
            )
        } else {
            (quote!(let (ky0, ky1) = (0usize, KH);), quote!(let (kx0, kx1) = (0usize, KW);), quote!(let full = true;))
        };
        let (bs, oys, oxs) = if self.rev {
            (quote!((0..N).rev()), quote!((0..OH).rev()), quote!((0..OW).rev()))
        } else {
            (quote!(0..N), quote!(0..OH), quote!(0..OW))
        };
        quote! {
            #ranges
            for b in #bs {
                #prologue
                for oy in #oys {
                    let iy0 = (oy * SH) as isize - PAD_H;
                    #row
                    for ox in #oxs {
                        let ix0 = (ox * SW) as isize - PAD_W;
                        #col
                        #full
                        let yb = ((b * OH + oy) * OW + ox) * #cout;
                        #body
                    }
                }
            }
        }
    }
}

impl Geom {
    /// Stack bytes of the int16 input copy of [`Geom::padded`]: rows and columns enough for
    /// every window (undilated columns).
    pub fn padded_bytes(&self) -> usize {
        let (hp, wp) = ((self.oh - 1) * self.sh + (self.kh - 1) * self.dh + 1, (self.ow - 1) * self.sw + self.kw);
        2 * self.n * hp * wp * self.c
    }

    /// The flash goals' form of a window kernel clipped by padding (undilated columns): a
    /// copy `xp` of the input minus its zero point `zp`, zeros around it (int16 on the stack,
    /// taken before any output is written; a zero adds nothing, as TFLM's skipped taps), so
    /// that `taps` (adding to `acc` the window of channel `oc` whose origin in `xp` is
    /// `base`) needs no test per tap; `acc` starts at `bias[oc]` (the bias without the input
    /// offset folded in) and `qexpr` is stored, one output chunk per position (indexed when
    /// the output is shared cells over its input, `overlap`). `head` declares the geometry,
    /// `COUT` and the requantization constants. On RV32IMC, where the copy costs more code
    /// than it saves (measured: conv_s1_same 466 -> 510 B, zoo_autoencoder 1,724 -> 1,836
    /// B), `fallback` is compiled instead.
    #[allow(clippy::too_many_arguments)]
    pub fn padded(&self, overlap: bool, head: &TokenStream, zp: i32, bias: &TokenStream, taps: TokenStream, qexpr: &TokenStream, fallback: TokenStream) -> TokenStream {
        let (hp, wp) = ((self.oh - 1) * self.sh + (self.kh - 1) * self.dh + 1, (self.ow - 1) * self.sw + self.kw);
        let (hp, wp, zp) = (lit::usize(hp), lit::usize(wp), lit::i32(zp));
        let (positions, store) = if overlap {
            (quote!(for p in 0..N * OH * OW), quote!(y0.set_i8(p * COUT + oc, #qexpr);))
        } else {
            (quote!(for (p, ys) in y0[..N * OH * OW * COUT].chunks_exact_mut(COUT).enumerate()), quote!(ys.set_i8(oc, #qexpr);))
        };
        let base = if self.n == 1 {
            quote!(let base = (p / OW * SH * WP + p % OW * SW) * C;)
        } else {
            quote!(let base = (((p / (OH * OW)) * HP + p % (OH * OW) / OW * SH) * WP + p % OW * SW) * C;)
        };
        let ocs = self.chans(&quote!(COUT));
        quote! {
            #[cfg(not(target_arch = "riscv32"))]
            {
                #head
                const HP: usize = #hp;
                const WP: usize = #wp;
                let x0 = &x0[..N * H * W * C];
                let mut xp = [0i16; N * HP * WP * C];
                let (rows, cols) = (H.min(HP - PAD_H as usize), W.min(WP - PAD_W as usize) * C);
                for b in 0..N {
                    for iy in 0..rows {
                        let (src, dst) = ((b * H + iy) * W * C, ((b * HP + iy + PAD_H as usize) * WP + PAD_W as usize) * C);
                        let s = &x0[src..src + cols];
                        for (k, d) in xp[dst..dst + cols].iter_mut().enumerate() {
                            *d = s.get_i8(k) as i16 - #zp;
                        }
                    }
                }
                #positions {
                    #base
                    for oc in #ocs {
                        let mut acc: i32 = #bias;
                        #taps
                        #store
                    }
                }
            }
            #[cfg(target_arch = "riscv32")]
            {
                #fallback
            }
        }
    }
}

/// Per-channel requantization constants and the expression applying them to `acc` for
/// channel `oc` (TFLite `MultiplyByQuantizedMultiplier`; with only right shifts, the
/// shifts are stored as positive `u8` amounts for `mbqm_r`).
pub fn requant(mults: &[(i32, i32)]) -> (TokenStream, TokenStream) {
    let uniform = mults.iter().all(|m| *m == mults[0]);
    if uniform {
        let (m, s) = (lit::i32(mults[0].0), lit::i32(mults[0].1));
        (quote!(const MULT: i32 = #m; const SHIFT: i32 = #s;), quote!(::microgen_rt::q::mbqm(acc, MULT, SHIFT)))
    } else if mults.iter().all(|m| (-31..=0).contains(&m.1)) {
        let n = lit::usize(mults.len());
        let m = lit::i32s(&mults.iter().map(|m| m.0).collect::<Vec<_>>());
        let r = mults.iter().map(|m| lit::usize((-m.1) as usize));
        (
            quote!(const MULT: [i32; #n] = #m; const RSHIFT: [u8; #n] = [#(#r),*];),
            quote!(::microgen_rt::q::mbqm_r(acc, MULT[oc], RSHIFT[oc] as i32)),
        )
    } else {
        let n = lit::usize(mults.len());
        let m = lit::i32s(&mults.iter().map(|m| m.0).collect::<Vec<_>>());
        let s = lit::i32s(&mults.iter().map(|m| m.1).collect::<Vec<_>>());
        (
            quote!(const MULT: [i32; #n] = #m; const SHIFT: [i32; #n] = #s;),
            quote!(::microgen_rt::q::mbqm(acc, MULT[oc], SHIFT[oc])),
        )
    }
}

/// The requantization constants and the expression giving channel `oc`'s int8 output
/// from `acc`: [`requant`], the zero point and the clamp written out, or (without
/// `ctx.inline_requant`) one call of the shared `microgen_rt::q::requant`.
///
/// For flash, where the compiler found the doubled-accumulator form exact for every channel
/// (`fast`: `gemm::fast_rqs` of the layer), the shared call is `microgen_rt::q::requant_fast`
/// (half the code of `q::requant`).
pub fn requant_out(ctx: &KernelCtx, mults: &[(i32, i32)], fast: Option<&[[i32; 3]]>, out_zp: &impl quote::ToTokens, lo: &impl quote::ToTokens, hi: &impl quote::ToTokens) -> (TokenStream, TokenStream) {
    let (decl, mexpr) = requant(mults);
    if ctx.inline_requant {
        return (decl, quote!(::microgen_rt::q::clamp(#mexpr.wrapping_add(#out_zp), #lo, #hi) as i8));
    }
    if let Some(rq) = fast.filter(|rq| !rq.is_empty()) {
        if rq.iter().all(|r| *r == rq[0]) {
            let r = lit::i32s(&rq[0]);
            return (
                quote! {
                    /// Requantization of the doubled accumulator (`rq_fast`: multiplier, rounding constant, shift).
                    const RQ: [i32; 3] = #r;
                },
                quote!(::microgen_rt::q::requant_fast(acc, &RQ, #lo, #hi)),
            );
        }
        let n = lit::usize(rq.len());
        let items = rq.iter().map(|r| lit::i32s(r));
        return (
            quote! {
                /// Requantization of the doubled accumulator per channel (`rq_fast`: multiplier, rounding constant, shift).
                const RQ: [[i32; 3]; #n] = [#(#items),*];
            },
            quote!(::microgen_rt::q::requant_fast(acc, &RQ[oc], #lo, #hi)),
        );
    }
    let uniform = mults.iter().all(|m| *m == mults[0]);
    let (m, s) = if uniform {
        (quote!(MULT), quote!(SHIFT))
    } else if mults.iter().all(|m| (-31..=0).contains(&m.1)) {
        (quote!(MULT[oc]), quote!(-(RSHIFT[oc] as i32)))
    } else {
        (quote!(MULT[oc]), quote!(SHIFT[oc]))
    };
    (decl, quote!(::microgen_rt::q::requant(acc, #m, #s, #out_zp, #lo, #hi)))
}

/// The constants of the zero-bordered window form ([`Geom::padded`]): with per-channel
/// doubled-accumulator requantization, one table of `[m, k, e, bias]` per channel (one
/// address for the accumulator start and the requantization: 8 B less code on the M4 for
/// layer_dwc1); else a table of the bias beside the requantization `mdecl` declares.
/// Returns the head (`head_base`, plus `mdecl` when it is used), the accumulator start of
/// channel `oc` and the requantization expression.
#[allow(clippy::too_many_arguments)]
pub fn padded_consts(
    ctx: &KernelCtx,
    statics: &mut TokenStream,
    head_base: TokenStream,
    mdecl: &TokenStream,
    fast: Option<&[[i32; 3]]>,
    bias: &[i32],
    b_id: &proc_macro2::Ident,
    qexpr: &TokenStream,
    lo: &impl quote::ToTokens,
    hi: &impl quote::ToTokens,
) -> (TokenStream, TokenStream, TokenStream) {
    let co = lit::usize(bias.len());
    match fast.filter(|rq| !ctx.inline_requant && !rq.is_empty() && rq.iter().any(|r| *r != rq[0])) {
        Some(rq) => {
            let rows = rq.iter().zip(bias).map(|(r, &b)| lit::i32s(&[r[0], r[1], r[2], b]));
            let brq = ctx.ident("BRQ");
            statics.extend(quote! {
                /// Per channel: the doubled-accumulator requantization (`rq_fast`: multiplier, rounding constant, shift), then the bias.
                const #brq: [[i32; 4]; #co] = [#(#rows),*];
            });
            (head_base, quote!(#brq[oc][3]), quote!(::microgen_rt::q::requant_fast(acc, #brq[oc].first_chunk::<3>().unwrap(), #lo, #hi)))
        }
        None => {
            let bias_l = lit::i32s(bias);
            statics.extend(quote! {
                /// Bias, int32.
                const #b_id: [i32; #co] = #bias_l;
            });
            (quote!(#head_base #mdecl), quote!(#b_id[oc]), qexpr.clone())
        }
    }
}

/// Bytes of the requantization constants.
pub fn requant_bytes(mults: &[(i32, i32)]) -> usize {
    if mults.iter().all(|m| *m == mults[0]) {
        0
    } else if mults.iter().all(|m| (-31..=0).contains(&m.1)) {
        5 * mults.len()
    } else {
        8 * mults.len()
    }
}

/// The float activation clamp of `v`.
pub fn clamp_f32(act: Act) -> TokenStream {
    if act == Act::None {
        quote!(v)
    } else {
        let (lo, hi) = act.range_f32();
        let (lo, hi) = (lit::f32(lo), lit::f32(hi));
        quote!(v.max(#lo).min(#hi))
    }
}

/// The constant bias of a convolution: `None` when absent; an error when not constant or
/// of the wrong size.
pub fn bias<'a>(ctx: &'a KernelCtx, cout: usize) -> Result<Option<&'a Tensor>> {
    let Some(b) = ctx.node.input(2) else { return Ok(None) };
    let b = ctx.g.t(b);
    if b.elems() != cout || !b.is_const() {
        return Err(ctx.err(format!("bias must be a constant with {} elements, got shape {:?}", cout, b.shape)));
    }
    if b.data.as_ref().map_or(0, |d| d.len()) < b.bytes() {
        return Err(ctx.err("bias data is shorter than its shape"));
    }
    Ok(Some(b))
}

pub fn bias_i32(ctx: &KernelCtx, b: Option<&Tensor>, cout: usize, op: &str) -> Result<Vec<i32>> {
    match b {
        Some(b) if b.dtype == DType::I32 => {
            let v = const_i32(b).unwrap_or_default();
            if v.len() != cout {
                return Err(ctx.err(format!("bias has {} values for {} output channels", v.len(), cout)));
            }
            Ok(v)
        }
        Some(b) => Err(ctx.unsupported(format!("int8 {op} with {} bias (expected int32)", b.dtype))),
        None => Ok(vec![0; cout]),
    }
}

pub fn bias_f32(ctx: &KernelCtx, b: Option<&Tensor>, cout: usize, op: &str) -> Result<Vec<f32>> {
    match b {
        Some(b) if b.dtype == DType::F32 => {
            let v = const_f32(b).unwrap_or_default();
            if v.len() != cout {
                return Err(ctx.err(format!("bias has {} values for {} output channels", v.len(), cout)));
            }
            Ok(v)
        }
        Some(b) => Err(ctx.unsupported(format!("float {op} with {} bias (expected float32)", b.dtype))),
        None => Ok(vec![0.0; cout]),
    }
}

/// Per-channel requantization multipliers `input_scale * filter_scale[c] / output_scale`
/// (TFLite `PopulateConvolutionQuantizationParams`), after checking the weights'
/// quantization (symmetric, per-tensor or per-channel along `axis`).
pub fn conv_mults(ctx: &KernelCtx, x: &Tensor, w: &Tensor, y: &Tensor, cout: usize, axis: usize) -> Result<(i32, i32, Vec<(i32, i32)>)> {
    let (xq, wq, yq) = (
        x.q().ok_or_else(|| ctx.err("int8 input has no quantization"))?,
        w.q().ok_or_else(|| ctx.err("int8 weights have no quantization"))?,
        y.q().ok_or_else(|| ctx.err("int8 output has no quantization"))?,
    );
    if xq.scale.is_empty() || wq.scale.is_empty() || yq.scale.is_empty() {
        return Err(ctx.err("quantization without a scale"));
    }
    if wq.zero_point.iter().any(|&z| z != 0) {
        return Err(ctx.unsupported("int8 weights with a non-zero zero point (TFLM requires symmetric weights)"));
    }
    if wq.per_channel() && (wq.scale.len() != cout || wq.axis != axis) {
        return Err(ctx.err(format!(
            "per-channel weights have {} scales along dimension {}; expected {} along dimension {}",
            wq.scale.len(),
            wq.axis,
            cout,
            axis
        )));
    }
    let mults = (0..cout)
        .map(|o| {
            let ws = if wq.per_channel() { wq.scale[o] } else { wq.scale() };
            quantize_multiplier(xq.scale() as f64 * ws as f64 / yq.scale() as f64)
        })
        .collect();
    Ok((-xq.zp(), yq.zp(), mults))
}

pub fn f32_values(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let Op::Conv2d { win, act } = ctx.node.op else { unreachable!() };
    let x = ctx.tensor(0)?;
    let w = ctx.tensor(1)?;
    let y = ctx.out(0)?;
    if w.shape.len() != 4 {
        return Err(ctx.err(format!("filter must be 4-D [out_channels, height, width, in_channels], got shape {:?}", w.shape)));
    }
    let (cout, kh, kw, wcin) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let g = geometry(ctx, x, y, kh, kw, &win, cout)?;
    if wcin != g.c {
        return Err(ctx.unsupported(format!(
            "filter has {wcin} input channels but the input has {} (grouped convolution is not supported)",
            g.c
        )));
    }
    if g.empty {
        return Err(ctx.err("some output position's window has no tap inside the input"));
    }
    let Some(wdata) = w.data.as_ref() else {
        return Err(ctx.unsupported("non-constant filters are not supported; convert the model with constant weights"));
    };
    let wn = product(ctx, &[cout, kh, kw, g.c])?;
    let Some(wdata) = wdata.get(..product(ctx, &[wn, w.dtype.size()])?) else {
        return Err(ctx.err(format!("filter data has {} bytes, expected {}", wdata.len(), wn * w.dtype.size())));
    };
    let b = bias(ctx, cout)?;
    let macs = macs(&[g.n, g.oh, g.ow, cout, kh, kw, g.c]);
    let decls = g.decls();
    let co = lit::usize(cout);
    let w_id = ctx.ident("W");
    let b_id = ctx.ident("B");
    let shape_doc = format!(
        "{:?} -> {:?}, filter {kh}x{kw}, stride {}x{}, dilation {}x{}, {:?} padding (top {}, left {})",
        x.shape, y.shape, g.sh, g.sw, g.dh, g.dw, win.padding, g.pad_h, g.pad_w
    );
    match (x.dtype, w.dtype, y.dtype) {
        (DType::I8, DType::I8, DType::I8) => {
            let (in_off, out_zp, mults) = conv_mults(ctx, x, w, y, cout, 0)?;
            let yq = y.q().ok_or_else(|| ctx.err("int8 output has no quantization"))?;
            let bias_v = bias_i32(ctx, b, cout, "CONV_2D")?;
            let kn = kh * kw * g.c;
            // acc = bias + sum((x + in_offset) * w) over the taps inside the input
            //     = (bias + in_offset * sum(w)) + sum(x * w) for a window entirely inside,
            //       exactly, in wrapping int32 arithmetic.
            let folded: Vec<i32> = (0..cout)
                .map(|o| {
                    let s: i32 = wdata[o * kn..(o + 1) * kn].iter().fold(0i32, |a, &v| a.wrapping_add(v as i8 as i32));
                    bias_v[o].wrapping_add(in_off.wrapping_mul(s))
                })
                .collect();
            let (amin, amax) = act.range_q(yq.scale(), yq.zp(), -128, 127);
            let quant_doc = format!(
                "{shape_doc}, int8, {} weights, activation {}, {macs} MACs",
                if mults.iter().all(|m| *m == mults[0]) { "per-tensor" } else { "per-channel" },
                act.name()
            );
            if ctx.strategy == Strategy::Compact {
                let l = compact::Layer {
                    g: [g.n, g.h, g.w, g.c, g.oh, g.ow, cout, kh, kw, g.sh, g.sw, g.dh, g.dw, g.pad_h, g.pad_w, 1],
                    depthwise: false,
                    w: wdata,
                    bias: &bias_v,
                    mults: &mults,
                    in_off,
                    out_zp,
                    lo: amin,
                    hi: amax,
                };
                if let Some(k) = compact::emit(ctx, &l, quant_doc.clone(), macs) {
                    return Ok(k);
                }
            }
            if ctx.strategy == Strategy::Sparse && g.n * g.oh * g.ow >= 4 {
                let wi8: Vec<i8> = wdata.iter().map(|&v| v as i8).collect();
                let dense = kh == 1 && kw == 1 && g.sh == 1 && g.sw == 1 && !g.partial && g.oh == g.h && g.ow == g.w;
                let src = if dense {
                    RowSource::Dense { k: g.c }
                } else {
                    RowSource::window([g.h, g.w, g.c, g.oh, g.ow, kh, kw, g.sh, g.sw, g.dh, g.dw, g.pad_h, g.pad_w], -in_off)
                };
                let (kp, kmap) = src.layout();
                if let Some(p) = gemm::pack_sparse(&wi8, kn, kp, &*kmap, cout, &bias_v, in_off, &mults, out_zp, amin, amax) {
                    let (statics, body, scratch) = gemm::emit_sparse(ctx, &p, &src, g.n * g.oh * g.ow, cout, amin, amax);
                    let empty = p.per_channel.iter().filter(|&&n| n == 0).count();
                    let doc = format!(
                        "{quant_doc}; sparse: {} of {} chunks of 4 weights kept ({empty} output channels without any), 4 positions per step, {scratch} B of stack scratch",
                        p.kept, p.chunks
                    );
                    return Ok(Kernel { statics, body, doc, macs, const_bytes: 4 * p.data.len() });
                }
            }
            if ctx.strategy == Strategy::Direct && !(kh == 1 && kw == 1) {
                let wi8: Vec<i8> = wdata.iter().map(|&v| v as i8).collect();
                let g13 = [g.h, g.w, g.c, g.oh, g.ow, kh, kw, g.sh, g.sw, g.dh, g.dw, g.pad_h, g.pad_w];
                if let Some(p) = super::direct::pack(&wi8, g13, cout, &bias_v, in_off, &mults, out_zp, amin, amax) {
                    let (statics, body, scratch) = super::direct::emit(ctx, &p, g13, -in_off, g.n, amin, amax);
                    let doc = format!(
                        "{quant_doc}; direct: windows read in place from a band of {} input rows as int16, tiles of {} output channels, doubled-accumulator requantization, {scratch} B of stack scratch",
                        kh, p.tn
                    );
                    return Ok(Kernel { statics, body, doc, macs, const_bytes: p.const_bytes() });
                }
            }
            if ctx.strategy == Strategy::Packed {
                let wi8: Vec<i8> = wdata.iter().map(|&v| v as i8).collect();
                // A 1x1 window with stride 1 reads each position's channels as one row.
                let dense = kh == 1 && kw == 1 && g.sh == 1 && g.sw == 1 && !g.partial && g.oh == g.h && g.ow == g.w;
                let src = if dense {
                    RowSource::Dense { k: g.c }
                } else {
                    RowSource::window([g.h, g.w, g.c, g.oh, g.ow, kh, kw, g.sh, g.sw, g.dh, g.dw, g.pad_h, g.pad_w], -in_off)
                };
                let (kp, kmap) = src.layout();
                let (kq4, order) = src.vnni_order();
                let p = gemm::pack(&wi8, kn, kp, &*kmap, (kq4, &*order), cout, &bias_v, in_off, &mults, out_zp, amin, amax, Tile::C4P2);
                let (statics, body, scratch) = gemm::emit(ctx, &p, &src, g.n * g.oh * g.ow, amin, amax);
                let doc = format!(
                    "{shape_doc}, int8, {} weights, activation {}, {macs} MACs; packed {} tiles ({}), {} requantization, {scratch} B of stack scratch",
                    if mults.iter().all(|m| *m == mults[0]) { "per-tensor" } else { "per-channel" },
                    act.name(),
                    p.tile.name(),
                    if dense { "rows read in place" } else { "windows gathered" },
                    if p.fast { "doubled-accumulator" } else { "exact" }
                );
                return Ok(Kernel { statics, body, doc, macs, const_bytes: p.const_bytes() });
            }
            let fast = if ctx.inline_requant { None } else { gemm::fast_rqs(cout, |o| wdata[o * kn..(o + 1) * kn].iter().map(|&v| v as i8), &bias_v, in_off, &mults, out_zp, amin, amax) };
            let (out_zp, amin, amax, in_off_l) = (lit::i32(out_zp), lit::i32(amin), lit::i32(amax), lit::i32(in_off));
            let (mdecl, qexpr) = requant_out(ctx, &mults, fast.as_deref(), &out_zp, &amin, &amax);
            let f_id = ctx.ident("BF");
            let wlen = lit::usize(wn);
            let wbytes = lit::bytes(wdata);
            let folded_l = lit::i32s(&folded);
            let mut statics = quote! {
                /// Filter, [out_channels][height][width][in_channels], int8.
                static #w_id: [u8; #wlen] = #wbytes;
                /// Bias with the input zero point folded in: bias + in_offset * sum(filter).
                const #f_id: [i32; #co] = #folded_l;
            };
            let mut const_bytes = wn + 4 * cout + requant_bytes(&mults);
            // Windows clipped by the padding: only the taps inside the input count. For flash,
            // the taps outside read the input zero point instead (adding `(zp + in_offset) * w
            // = 0`, as TFLM's skipped taps), so that one accumulator start serves every
            // window: less code than the sum of the weights inside.
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
                                let wb = ((oc * KH + ky) * KW + kx) * C;
                                for ic in 0..C {
                                    s = s.wrapping_add(#w_id[wb + ic] as i8 as i32);
                                }
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
                            let inside = iy >= 0 && iy < H as isize && ix >= 0 && ix < W as isize;
                            let wb = ((oc * KH + ky) * KW + kx) * C;
                            let w = &#w_id[wb..wb + C];
                            for ic in 0..C {
                                let xv = if inside { rows[b * H + iy as usize].get_i8(ix as usize * C + ic) as i32 } else { #zp };
                                acc = acc.wrapping_add(xv * (w[ic] as i8 as i32));
                            }
                        }
                    }
                }
            } else {
                quote! {
                    for ky in ky0..ky1 {
                        let iy = (iy0 + (ky * DH) as isize) as usize;
                        for kx in kx0..kx1 {
                            let ix = (ix0 + (kx * DW) as isize) as usize;
                            let xb = ((b * H + iy) * W + ix) * C;
                            let wb = ((oc * KH + ky) * KW + kx) * C;
                            let w = &#w_id[wb..wb + C];
                            for ic in 0..C {
                                acc = acc.wrapping_add(x0.get_i8(xb + ic) as i32 * (w[ic] as i8 as i32));
                            }
                        }
                    }
                }
            };
            // The zero-point taps, and for flash, windows clipped by the padding with undilated
            // columns read a zero-bordered copy ([`Geom::padded`]): every window row is then one
            // run of `KW * C` taps (less code than the zero-point taps).
            let head = quote! {
                #decls
                const COUT: usize = #co;
                #mdecl
            };
            let body = g.loops(
                &quote!(COUT),
                quote!(),
                quote! {
                    for oc in #ocs {
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
            let body = if pad_zp && g.dw == 1 && g.padded_bytes() <= PADDED_LOOP_MAX {
                let head_base = quote! {
                    #decls
                    const COUT: usize = #co;
                };
                let (head, bias_expr, qexpr) = padded_consts(ctx, &mut statics, head_base, &mdecl, fast.as_deref(), &bias_v, &b_id, &qexpr, &amin, &amax);
                const_bytes += 4 * cout;
                let taps = quote! {
                    for ky in 0..KH {
                        let row = &xp[base + ky * DH * WP * C..][..KW * C];
                        let w = &#w_id[(oc * KH + ky) * KW * C..][..KW * C];
                        for t in 0..KW * C {
                            acc = acc.wrapping_add(row[t] as i32 * (w[t] as i8 as i32));
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
        (DType::F32, DType::I8, DType::F32) => emit_hybrid(ctx, &g, wdata, b, cout, act, &shape_doc, macs),
        (DType::F32, DType::F32, DType::F32) => {
            let wf: Vec<f32> = f32_values(wdata);
            let bias_v = bias_f32(ctx, b, cout, "CONV_2D")?;
            if ctx.strategy == Strategy::Packed {
                let doc = format!("{shape_doc}, float32, activation {}, {macs} MACs", act.name());
                return Ok(super::ftile::conv(ctx, &g, &wf, &bias_v, act, doc, macs));
            }
            let wb = f32_bytes(&wf);
            let wlen = lit::usize(wb.len());
            let wbytes = lit::bytes(&wb);
            let bias_items = bias_v.iter().map(|&v| lit::f32(v));
            let clamp = clamp_f32(act);
            let statics = quote! {
                /// Filter, [out_channels][height][width][in_channels], float32 little-endian.
                static #w_id: [u8; #wlen] = #wbytes;
                const #b_id: [f32; #co] = [#(#bias_items),*];
            };
            let ocs = g.chans(&quote!(COUT));
            let body = g.loops(
                &quote!(COUT),
                quote!(),
                quote! {
                    for oc in #ocs {
                        let mut acc = 0.0f32;
                        for ky in ky0..ky1 {
                            let iy = (iy0 + (ky * DH) as isize) as usize;
                            for kx in kx0..kx1 {
                                let ix = (ix0 + (kx * DW) as isize) as usize;
                                let xb = ((b * H + iy) * W + ix) * C;
                                let wb = ((oc * KH + ky) * KW + kx) * C;
                                let w = &#w_id[wb * 4..(wb + C) * 4];
                                for ic in 0..C {
                                    acc += x0.get_f32(xb + ic) * w.get_f32(ic);
                                }
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
                #body
            };
            let doc = format!("{shape_doc}, float32, activation {}, {macs} MACs", act.name());
            Ok(Kernel { statics, body, doc, macs, const_bytes: wb.len() + 4 * cout })
        }
        (a, b, c) => Err(ctx.unsupported(format!(
            "CONV_2D with input {a}, filter {b}, output {c}; supported: int8/int8/int8, float32/float32/float32, float32/int8/float32 (hybrid)"
        ))),
    }
}

/// The local helper of a hybrid kernel computing LiteRT's dynamic per-batch input
/// quantization with the same float and double arithmetic: `sym` (`SymmetricQuantizeFloats`)
/// or, when `asymmetric`, `asym` (`AsymmetricQuantizeFloats`).
pub fn hybrid_helpers(asymmetric: bool) -> TokenStream {
    if !asymmetric {
        return quote! {
            /// `SymmetricQuantizeFloats` parameters for values in `[lo, hi]`:
            /// (1 / scale, scale); values quantize to `clamp(round(v * inv), -127, 127)`.
            #[inline(always)]
            fn sym(lo: f32, hi: f32) -> (f32, f32) {
                let a = if lo < 0.0 { -lo } else { lo };
                let b = if hi < 0.0 { -hi } else { hi };
                let range = if a < b { b } else { a };
                if range == 0.0 { (0.0, 1.0) } else { (127.0 / range, range / 127.0) }
            }
        };
    }
    quote! {
        /// `AsymmetricQuantizeFloats` parameters for values in `[lo, hi]`:
        /// (1 / scale, scale, zero point); values quantize to
        /// `clamp(round(zp + v * inv), -128, 127)`.
        #[inline(always)]
        fn asym(lo: f32, hi: f32) -> (f32, f32, i32) {
            let rmin: f32 = if 0.0 < lo { 0.0 } else { lo };
            let rmax: f32 = if 0.0 > hi { 0.0 } else { hi };
            if rmin == rmax {
                return (0.0, 0.0, 0);
            }
            let scale = (rmax - rmin) as f64 / 255.0;
            let zmin = -128.0 - rmin as f64 / scale;
            let zmax = 127.0 - rmax as f64 / scale;
            let (a, b) = (rmin as f64 / scale, rmax as f64 / scale);
            let emin = 128.0 + if a < 0.0 { -a } else { a };
            let emax = 127.0 + if b < 0.0 { -b } else { b };
            let z = if emin < emax { zmin } else { zmax };
            let zp = if z < -128.0 {
                -128
            } else if z > 127.0 {
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
    }
}

/// The loop finding the smallest and largest input value of batch `b` (`H * W * C`
/// values), binding `lo` and `hi`. On x86-64 16 lanes at a time (vector compares and
/// selects), each lane starting from the first value and taking a value only when it is
/// strictly smaller (larger), as the sequential loop does: a NaN is never taken (unless it
/// is the first value, which then stays), the same result, except that of two zeros of
/// different sign either may be kept (the quantization parameters take their magnitude).
pub fn batch_minmax() -> TokenStream {
    quote! {
        let xb0 = b * (H * W * C);
        let (mut lo, mut hi) = (x0.get_f32(xb0), x0.get_f32(xb0));
        #[allow(unused_mut)]
        let mut i = 1;
        #[cfg(target_arch = "x86_64")]
        {
            let (mut lov, mut hiv, mut v) = ([lo; 16], [hi; 16], [0.0f32; 16]);
            while i + 16 <= H * W * C {
                x0.read_f32s(xb0 + i, &mut v);
                for l in 0..16 {
                    if v[l] < lov[l] { lov[l] = v[l]; }
                    if hiv[l] < v[l] { hiv[l] = v[l]; }
                }
                i += 16;
            }
            for l in 0..16 {
                if lov[l] < lo { lo = lov[l]; }
                if hi < hiv[l] { hi = hiv[l]; }
            }
        }
        for i in i..H * W * C {
            let v = x0.get_f32(xb0 + i);
            if v < lo { lo = v; }
            if hi < v { hi = v; }
        }
    }
}

/// Hybrid CONV_2D (float32 activations, int8 weights), as LiteRT computes it: the input is
/// quantized per batch at run time (symmetric for per-tensor weights, `EvalHybrid`;
/// asymmetric for per-channel weights, `EvalHybridPerChannel`), convolved in int32 and
/// scaled back to float.
#[allow(clippy::too_many_arguments)]
fn emit_hybrid(ctx: &KernelCtx, g: &Geom, wdata: &[u8], b: Option<&Tensor>, cout: usize, act: Act, shape_doc: &str, macs: u64) -> Result<Kernel> {
    let w = ctx.tensor(1)?;
    let wq = w.q().ok_or_else(|| ctx.err("int8 weights have no quantization"))?;
    if wq.scale.is_empty() {
        return Err(ctx.err("int8 weights have no scale"));
    }
    if wq.zero_point.iter().any(|&z| z != 0) {
        return Err(ctx.unsupported("hybrid CONV_2D with int8 weights with a non-zero zero point"));
    }
    if g.dh != 1 || g.dw != 1 {
        return Err(ctx.unsupported("hybrid CONV_2D (float32 input, int8 weights) with dilation"));
    }
    if wq.per_channel() && (wq.scale.len() != cout || wq.axis != 0) {
        return Err(ctx.err(format!("per-channel weights have {} scales along dimension {}; expected {cout} along dimension 0", wq.scale.len(), wq.axis)));
    }
    // LiteRT takes the per-channel path only when the scales differ.
    let per_channel = wq.per_channel() && wq.scale.iter().any(|&s| s != wq.scale[0]);
    let bias_v = bias_f32(ctx, b, cout, "CONV_2D")?;
    let kn = kh_kw_c(g);
    if kn > 16384 {
        return Err(ctx.unsupported(format!(
            "hybrid CONV_2D with a {}x{}x{} window: its quantized copy would need {} B of stack",
            g.kh,
            g.kw,
            g.c,
            2 * kn
        )));
    }
    let (w_id, b_id, s_id) = (ctx.ident("W"), ctx.ident("B"), ctx.ident("S"));
    let (co, kn_l, wlen) = (lit::usize(cout), lit::usize(kn), lit::usize(wdata.len()));
    let wbytes = lit::bytes(wdata);
    let bias_items = bias_v.iter().map(|&v| lit::f32(v));
    let mut statics = quote! {
        /// Filter, [out_channels][height][width][in_channels], int8.
        static #w_id: [u8; #wlen] = #wbytes;
        const #b_id: [f32; #co] = [#(#bias_items),*];
    };
    let mut const_bytes = wdata.len() + 4 * cout;
    let clamp = clamp_f32(act);
    let helpers = hybrid_helpers(per_channel);
    let minmax = batch_minmax();
    // Per batch: the quantization of the input and the output scale.
    let (qparams, qexpr, scale_expr) = if per_channel {
        let s_items = wq.scale.iter().map(|&v| lit::f32(v));
        statics.extend(quote! {
            /// Per-channel filter scales.
            const #s_id: [f32; #co] = [#(#s_items),*];
        });
        const_bytes += 4 * cout;
        (
            quote!(let (inv, sf, zp) = asym(lo, hi);),
            quote!(::microgen_rt::f::round_clamp(zp as f32 + v * inv, -128, 127) - zp),
            quote!(acc as f32 * #s_id[oc] * sf),
        )
    } else {
        let fs = lit::f32(wq.scale());
        (
            quote!(let (inv, sf) = sym(lo, hi); let scale = sf * #fs;),
            quote!(::microgen_rt::f::round_clamp(v * inv, -127, 127)),
            quote!(acc as f32 * scale),
        )
    };
    if ctx.strategy == Strategy::Packed {
        // The int32 sums of the loop form below, up to 8 blocks of 8 channels at a time over
        // int16 pair words (`microgen_rt::mac::dot_8xg`; integer sums do not depend on the
        // order), then the same float scaling.
        let steps = kn.div_ceil(8) * 4;
        let blocks = cout.div_ceil(8);
        let mut wb = Vec::with_capacity(blocks * steps * 32);
        for j in 0..blocks {
            for st in 0..steps {
                for c in 0..8 {
                    let o = j * 8 + c;
                    let wt = |k: usize| if o < cout && k < kn { wdata[o * kn + k] as i8 as i16 as u16 } else { 0 };
                    wb.extend_from_slice(&(wt(2 * st) as u32 | (wt(2 * st + 1) as u32) << 16).to_le_bytes());
                }
            }
        }
        let (wlen, wbytes, steps_l, blocks_l) = (lit::usize(wb.len()), lit::bytes(&wb), lit::usize(steps), lit::usize(blocks));
        // The packed copy replaces the model-order filter.
        let wp_id = ctx.ident("WP");
        let b_items = bias_v.iter().map(|&v| lit::f32(v));
        let mut statics = quote! {
            /// The filter as int16 pairs for `dot_8xg`: [8-channel block][pair of taps][channel].
            static #wp_id: ::microgen_rt::mac::Align4<[u8; #wlen]> = ::microgen_rt::mac::Align4(#wbytes);
            const #b_id: [f32; #co] = [#(#b_items),*];
        };
        // With AVX-512 VNNI and the symmetric quantization (values in -127..=127): the
        // values offset to uint8 (`q + 128`, taps outside the input 128) and `VPDPBUSD`
        // with the filter as `[16-channel group][4 taps][channel][4]` int8, the sums
        // starting at `-128 * sum(w)` (`microgen_rt::mac::dot_u8x4`).
        let vnni_form = !per_channel;
        let (kq, g16) = (kn.div_ceil(4), cout.div_ceil(16));
        let (w4_id, c4_id) = (ctx.ident("W4"), ctx.ident("C4"));
        let vnni = quote!(all(target_arch = "x86_64", target_feature = "avx512vnni"));
        if vnni_form {
            // One group per pass: `dot_u8x4` reads each group's `[kq][16][4]` at its stride.
            let w4 = super::gemm::vnni_layout(cout, kq, &|_| 1, &|o, k| if k < kn { wdata[o * kn + k] as i8 } else { 0 });
            let c4: Vec<i32> = (0..g16 * 16).map(|o| if o < cout { -128 * wdata[o * kn..(o + 1) * kn].iter().map(|&v| v as i8 as i32).sum::<i32>() } else { 0 }).collect();
            let (w4len, w4bytes, c4len, c4_l) = (lit::usize(w4.len()), lit::bytes(&w4), lit::usize(c4.len()), lit::i32s(&c4));
            statics.extend(quote! {
                /// The filter for `dot_u8x4` (AVX-512 VNNI): [16-channel group][4 taps][channel][4].
                #[cfg(#vnni)]
                static #w4_id: ::microgen_rt::mac::Align64<[u8; #w4len]> = ::microgen_rt::mac::Align64(#w4bytes);
                /// The sums' start for values offset by 128: -128 * sum(w) per channel.
                #[cfg(#vnni)]
                static #c4_id: [i32; #c4len] = #c4_l;
            });
        }
        if per_channel {
            let s_items = wq.scale.iter().map(|&v| lit::f32(v));
            statics.extend(quote! {
                /// Per-channel filter scales.
                const #s_id: [f32; #co] = [#(#s_items),*];
            });
        }
        let const_bytes = wb.len() + if per_channel { 8 } else { 4 } * cout;
        // The position's window, quantized, into `buf` (`[ky][kx][ic]`; taps outside the
        // input keep its initial value), each value as `conv(q)`.
        let fill = |buf: TokenStream, conv: TokenStream| {
            quote! {
                let mut row = [0.0f32; C];
                for ky in ky0..ky1 {
                    let iy = (iy0 + (ky * DH) as isize) as usize;
                    for kx in kx0..kx1 {
                        let ix = (ix0 + (kx * DW) as isize) as usize;
                        x0.read_f32s(((b * H + iy) * W + ix) * C, &mut row);
                        let dst = &mut #buf[(ky * KW + kx) * C..(ky * KW + kx + 1) * C];
                        for (d, &v) in dst.iter_mut().zip(&row) {
                            *d = #conv;
                        }
                    }
                }
            }
        };
        // With the whole batch quantized once into `qx` (below), the window's bytes are
        // copied from it, a kernel row's taps inside the input at a time.
        let qbuf = vnni_form && g.h * g.w * g.c <= 65536;
        let fill_bytes = if qbuf {
            quote! {
                for ky in ky0..ky1 {
                    let iy = (iy0 + (ky * DH) as isize) as usize;
                    let ix = (ix0 + kx0 as isize) as usize;
                    xb[(ky * KW + kx0) * C..(ky * KW + kx1) * C].copy_from_slice(&qx[(iy * W + ix) * C..(iy * W + ix + (kx1 - kx0)) * C]);
                }
            }
        } else {
            fill(quote!(xb), quote!(((#qexpr) + 128) as u8))
        };
        // The batch's values quantized once, as bytes `q + 128` (16 lanes at a time).
        let quantize_all = if qbuf {
            quote! {
                #[cfg(#vnni)]
                let qx = {
                    let mut qx = [0u8; H * W * C];
                    let mut v = [0.0f32; 16];
                    let mut i = 0;
                    while i + 16 <= H * W * C {
                        x0.read_f32s(xb0 + i, &mut v);
                        for l in 0..16 {
                            let v = v[l];
                            qx[i + l] = (#qexpr + 128) as u8;
                        }
                        i += 16;
                    }
                    for i in i..H * W * C {
                        let v = x0.get_f32(xb0 + i);
                        qx[i] = (#qexpr + 128) as u8;
                    }
                    qx
                };
            }
        } else {
            quote!()
        };
        let fill_patch = fill(quote!(patch), quote!((#qexpr) as i16));
        // The position's values as bytes, then the sums 16 channels at a time, each group's
        // two halves through `put` (below; defined before this block runs).
        let vnni_block = if vnni_form {
            let (kq_l, g16_l) = (lit::usize(kq), lit::usize(g16));
            quote! {
                #[cfg(#vnni)]
                {
                    const KQ: usize = #kq_l;
                    const G16: usize = #g16_l;
                    let mut xb = [0x80u8; KQ * 4];
                    #fill_bytes
                    let mut j = 0;
                    while j < G16 {
                        let mut accs = [[0i32; 16]; 4];
                        let n = if G16 - j >= 4 { 4 } else { G16 - j };
                        for (g, a) in accs.iter_mut().enumerate().take(n) {
                            a.copy_from_slice(&#c4_id[16 * (j + g)..16 * (j + g + 1)]);
                        }
                        let w = &#w4_id.0[j * KQ * 64..];
                        match n {
                            4 => ::microgen_rt::mac::dot_u8x4::<4>(&xb, w, KQ * 64, &mut accs),
                            3 => ::microgen_rt::mac::dot_u8x4::<3>(&xb, w, KQ * 64, (&mut accs[..3]).try_into().unwrap()),
                            2 => ::microgen_rt::mac::dot_u8x4::<2>(&xb, w, KQ * 64, (&mut accs[..2]).try_into().unwrap()),
                            _ => ::microgen_rt::mac::dot_u8x4::<1>(&xb, w, KQ * 64, (&mut accs[..1]).try_into().unwrap()),
                        }
                        for (g, a) in accs.iter().enumerate().take(n) {
                            let (lo8, hi8) = a.split_at(8);
                            put(2 * (j + g), lo8.try_into().unwrap());
                            if 2 * (j + g) + 1 < BLOCKS {
                                put(2 * (j + g) + 1, hi8.try_into().unwrap());
                            }
                        }
                        j += n;
                    }
                    continue;
                }
            }
        } else {
            quote!()
        };
        let body = g.loops(
            &quote!(COUT),
            quote! {
                #minmax
                #qparams
                #quantize_all
            },
            quote! {
                // The float scaling of block `j`'s 8 sums and their stores (`mut` for an
                // output slice of bytes; one of cells needs none).
                #[allow(unused_mut)]
                let mut put = |j: usize, accs: &[i32; 8]| {
                    if (j + 1) * 8 <= COUT {
                        // A whole block: the 8 outputs computed in a local array and
                        // stored by one write (vector operations on the host).
                        let mut o = [0.0f32; 8];
                        for (c, &acc) in accs.iter().enumerate() {
                            let oc = j * 8 + c;
                            let v = #scale_expr + #b_id[oc];
                            o[c] = #clamp;
                        }
                        y0.write_f32s(yb + j * 8, &o);
                    } else {
                        for (c, &acc) in accs.iter().enumerate() {
                            let oc = j * 8 + c;
                            if oc < COUT {
                                let v = #scale_expr + #b_id[oc];
                                y0.set_f32(yb + oc, #clamp);
                            }
                        }
                    }
                };
                #vnni_block
                let mut patch = [0i16; STEPS * 2];
                #fill_patch
                let mut words = [0u32; STEPS];
                for (s, w) in words.iter_mut().enumerate() {
                    *w = patch[2 * s] as u16 as u32 | (patch[2 * s + 1] as u16 as u32) << 16;
                }
                // `G` blocks per pass (each input pair broadcast once for all of them on
                // the host), then the remaining blocks one by one.
                let mut j = 0;
                while j + G <= BLOCKS {
                    let mut accs = [[0i32; 8]; G];
                    ::microgen_rt::mac::dot_8xg::<G>(&words, &#wp_id.0[j * STEPS * 32..], STEPS * 32, &mut accs);
                    for (g, a) in accs.iter().enumerate() {
                        put(j + g, a);
                    }
                    j += G;
                }
                while j < BLOCKS {
                    let mut accs = [[0i32; 8]; 1];
                    ::microgen_rt::mac::dot_8xg::<1>(&words, &#wp_id.0[j * STEPS * 32..], STEPS * 32, &mut accs);
                    put(j, &accs[0]);
                    j += 1;
                }
            },
        );
        let decls = g.decls();
        let body = quote! {
            #decls
            const COUT: usize = #co;
            const STEPS: usize = #steps_l;
            const BLOCKS: usize = #blocks_l;
            const G: usize = if BLOCKS < 8 { BLOCKS } else { 8 };
            #helpers
            #body
        };
        let npos = (g.n * g.oh * g.ow) as u64;
        // The host's form (`choose_host`): on Cortex-M4 it was not measured (its build of
        // kws_ds_cnn_float32 failed to link: "out of range pc-relative fixup value"), so it
        // is estimated above the loop form (9 per MAC) and a microcontroller keeps the loops.
        ctx.report(
            Strategy::Packed,
            super::strategy::Est { instructions: 12 * macs + npos * (12 * kn as u64 + 10 * cout as u64), code_bytes: 700, shared: Vec::new() },
        );
        let vnni_note = if qbuf {
            format!("; with AVX-512 VNNI the batch quantized once into {} B of stack", g.h * g.w * g.c)
        } else {
            String::new()
        };
        let doc = format!(
            "{shape_doc}, float32 with int8 {} weights (hybrid: input quantized per batch at run time as LiteRT does), int16-pair sums of up to 64 channels at a time{vnni_note}, activation {}, {macs} MACs",
            if per_channel { "per-channel" } else { "per-tensor" },
            act.name()
        );
        return Ok(Kernel { statics, body, doc, macs, const_bytes });
    }
    let body = g.loops(
        &quote!(COUT),
        quote! {
            #minmax
            #qparams
        },
        quote! {
            // The window, quantized, minus the zero point (0 for taps outside the input).
            let mut patch = [0i16; KN];
            for ky in ky0..ky1 {
                let iy = (iy0 + (ky * DH) as isize) as usize;
                for kx in kx0..kx1 {
                    let ix = (ix0 + (kx * DW) as isize) as usize;
                    let xb = ((b * H + iy) * W + ix) * C;
                    for ic in 0..C {
                        let v = x0.get_f32(xb + ic);
                        patch[(ky * KW + kx) * C + ic] = (#qexpr) as i16;
                    }
                }
            }
            for oc in 0..COUT {
                let w = &#w_id[oc * KN..(oc + 1) * KN];
                let mut acc: i32 = 0;
                for k in 0..KN {
                    acc = acc.wrapping_add(patch[k] as i32 * (w[k] as i8 as i32));
                }
                let v = #scale_expr + #b_id[oc];
                y0.set_f32(yb + oc, #clamp);
            }
        },
    );
    let decls = g.decls();
    let body = quote! {
        #decls
        const COUT: usize = #co;
        const KN: usize = #kn_l;
        #helpers
        #body
    };
    let doc = format!(
        "{shape_doc}, float32 with int8 {} weights (hybrid: input quantized per batch at run time as LiteRT does; {} B of stack), activation {}, {macs} MACs",
        if per_channel { "per-channel" } else { "per-tensor" },
        2 * kn,
        act.name()
    );
    Ok(Kernel { statics, body, doc, macs, const_bytes })
}

fn kh_kw_c(g: &Geom) -> usize {
    g.kh * g.kw * g.c
}

/// The product of sizes, or an error when it does not fit in `usize`.
pub fn product(ctx: &KernelCtx, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| ctx.err(format!("sizes {dims:?} overflow")))
}

/// Multiply-accumulates (saturating).
pub fn macs(dims: &[usize]) -> u64 {
    dims.iter().fold(1u64, |a, &d| a.saturating_mul(d as u64))
}
