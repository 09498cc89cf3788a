//! The `direct` strategy of int8 convolutions with few input values per window row (first
//! layers: one or three input channels, and depthwise layers of one input channel): the
//! windows read in place from a band of input rows converted to int16
//! (`microgen_rt::band`), instead of being gathered into rows for the matrix kernels. The
//! weights are packed here in the order the inner loop reads them (int16 pairs along each
//! window row, per tile of at most 6 output channels, doubled for the doubled-accumulator
//! requantization, the only one this form takes).

use super::super::{lit, KernelCtx};
use super::gemm;
use super::strategy::{Est, Strategy};
use proc_macro2::TokenStream;
use quote::quote;

/// Most words of a window (`KH * ceil(KW * C / 2)`): the `asm!` loop is unrolled over them.
const MAX_WORDS: usize = 96;

/// Most stack bytes the band may take.
const MAX_BAND_BYTES: usize = 4096;

/// A layer's constants, packed.
pub struct DirectPacked {
    /// `[tile][ky][j][channel of the tile][2]` int16 weights.
    pub w: Vec<i16>,
    pub bias: Vec<i32>,
    pub rq: Vec<[i32; 3]>,
    /// Channels per tile, and in the last tile.
    pub tn: usize,
    pub tl: usize,
    /// Words per window row, values per band row.
    pub wn: usize,
    pub rv: usize,
}

impl DirectPacked {
    pub fn const_bytes(&self) -> usize {
        2 * self.w.len() + 4 * self.bias.len() + 12 * self.rq.len()
    }
}

/// Packs a convolution of geometry `g` (`[h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, pad_h,
/// pad_w]`) whose `cout` filters are `w` (`[oc][ky][kx][ic]`), or `None` where the form
/// does not apply: dilation, a window too large to unroll, a band larger than
/// [`MAX_BAND_BYTES`], a band row, a window step or an output pixel too wide for the
/// `asm!` block's immediate offsets, or a channel whose requantization has no exact
/// doubled-accumulator form.
#[allow(clippy::too_many_arguments)]
pub fn pack(w: &[i8], g: [usize; 13], cout: usize, bias: &[i32], in_off: i32, mults: &[(i32, i32)], out_zp: i32, lo: i32, hi: i32) -> Option<DirectPacked> {
    let [_, _, c, _, ow, kh, kw, _, sw, dh, dw, _, _] = g;
    let span = kw * c;
    let kn = kh * span;
    let wn = span.div_ceil(2);
    let rv = microgen_rt::band::band_row(ow, sw, kw, c);
    if dh != 1 || dw != 1 || kh * wn > MAX_WORDS || 2 * rv >= 4096 || 2 * sw * c >= 4096 || 2 * kh * rv > MAX_BAND_BYTES || cout >= 4096 || cout == 0 || w.len() != cout * kn {
        return None;
    }
    let (fast, rq) = gemm::channel_rqs(cout, |o| w[o * kn..(o + 1) * kn].iter().copied(), bias, in_off, mults, out_zp, lo, hi);
    if !fast {
        return None;
    }
    let tiles = cout.div_ceil(6);
    let tn = cout.div_ceil(tiles);
    let tl = cout - (tiles - 1) * tn;
    let mut wp = Vec::with_capacity(cout * kh * wn * 2);
    for t in 0..tiles {
        let (c0, n) = (t * tn, if t + 1 == tiles { tl } else { tn });
        for ky in 0..kh {
            for j in 0..wn {
                for o in c0..c0 + n {
                    for v in [2 * j, 2 * j + 1] {
                        wp.push(if v < span { 2 * w[o * kn + ky * span + v] as i16 } else { 0 });
                    }
                }
            }
        }
    }
    let bias_p = (0..cout)
        .map(|o| {
            let s: i32 = w[o * kn..(o + 1) * kn].iter().fold(0i32, |a, &v| a.wrapping_add(v as i32));
            bias[o].wrapping_add(in_off.wrapping_mul(s)).wrapping_mul(2)
        })
        .collect();
    Some(DirectPacked { w: wp, bias: bias_p, rq, tn, tl, wn, rv })
}

/// Estimated Cortex-M4 instructions (from the `asm!` block's structure: per window word one
/// load of the band, the weight loads and one `SMLAD` per channel; per position and tile
/// the bias, the requantization and the stores; per output row the band's new rows at
/// about 4 instructions a value and the rows kept moved by `memmove`), and code bytes.
fn estimate(p: &DirectPacked, g: [usize; 13], batches: usize, cout: usize, clamp: bool) -> Est {
    let [_, _, _, oh, ow, kh, _, sh, _, _, _, _, _] = g;
    let tiles = cout.div_ceil(p.tn);
    let per_tile = |n: usize| -> u64 {
        let loads = if n <= 5 { 1 } else { 2 };
        (14 + kh + kh * p.wn * (1 + loads + n) + n * if clamp { 12 } else { 6 }) as u64
    };
    let per_pos = (tiles - 1) as u64 * per_tile(p.tn) + per_tile(p.tl);
    let new_rows = if sh < kh { kh + (oh - 1) * sh } else { oh * kh };
    let once = batches as u64 * (new_rows as u64 * (4 * p.rv as u64 + 20) + oh as u64 * ((kh.saturating_sub(sh) * p.rv) as u64 / 2 + 30 + 40 * tiles as u64));
    let asm_bytes = |n: usize| 120 + 4 * kh * p.wn * (2 + n) + n * if clamp { 32 } else { 20 };
    let mut shared = vec![(format!("band conv {} {kh}x{}", p.rv, p.wn), 200)];
    for n in [p.tn, p.tl] {
        let key = format!("band row_asm n{n} kh{kh} wn{} rv{} ow{ow} sw{}", p.wn, p.rv, g[8]);
        if !shared.iter().any(|(k, _)| *k == key) {
            shared.push((key, asm_bytes(n)));
        }
    }
    Est { instructions: once + (batches * oh * ow) as u64 * per_pos, code_bytes: 90, shared }
}

/// The statics and body of the layer (input `x0`, output `y0`), and its stack scratch bytes.
pub fn emit(ctx: &KernelCtx, p: &DirectPacked, g: [usize; 13], zp: i32, batches: usize, lo: i32, hi: i32) -> (TokenStream, TokenStream, usize) {
    let (w_id, b_id, r_id) = (ctx.ident("WD"), ctx.ident("BD"), ctx.ident("RQ"));
    let cout = p.rq.len();
    let nw = lit::usize(p.w.len());
    let ws = p.w.iter().map(|&v| lit::i32(v as i32));
    let nb = lit::usize(cout);
    let bias = lit::i32s(&p.bias);
    let rqs = p.rq.iter().map(|r| lit::i32s(r));
    let statics = quote! {
        /// Weights packed for `microgen_rt::band`: int16 pairs along each window row, per
        /// tile of output channels, doubled.
        static #w_id: ::microgen_rt::mac::Align4<[i16; #nw]> = ::microgen_rt::mac::Align4([#(#ws),*]);
        /// Accumulator start per channel: bias with the input offset folded in, doubled.
        static #b_id: [i32; #nb] = #bias;
        /// Requantization per channel (`rq_fast`: multiplier, rounding constant, shift).
        static #r_id: [[i32; 3]; #nb] = [#(#rqs),*];
    };
    let geom = gemm::geom_type(g);
    let kh = g[5];
    let band_len = lit::usize(kh * p.rv);
    let (tn, tl, wn, rv, co) = (lit::usize(p.tn), lit::usize(p.tl), lit::usize(p.wn), lit::usize(p.rv), lit::usize(cout));
    let (lo_l, hi_l, zp_l, nb_l) = (lit::i32(lo), lit::i32(hi), lit::i32(zp), lit::usize(batches));
    let rev = ctx.reverse;
    let body = quote! {
        #geom
        let l = ::microgen_rt::band::Direct { w: &#w_id.0, bias: &#b_id, rq: &#r_id, cout: #co, lo: #lo_l, hi: #hi_l };
        let mut band = [0i16; #band_len];
        ::microgen_rt::band::conv::<_, _, G, #tn, #tl, #wn, #rv, #co>(&l, x0, #zp_l, #nb_l, y0, #rev, &mut band);
    };
    ctx.report(Strategy::Direct, estimate(p, g, batches, cout, lo != -128 || hi != 127));
    (statics, body, 2 * kh * p.rv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::kernels::quantize_multiplier;
    use microgen_rt::mac::ConvGeom;

    /// A geometry type per test case (the runtime takes the geometry as constants).
    macro_rules! geom {
        ($name:ident: $h:expr, $w:expr, $c:expr, $oh:expr, $ow:expr, $kh:expr, $kw:expr, $sh:expr, $sw:expr, $ph:expr, $pw:expr) => {
            struct $name;
            impl ConvGeom for $name {
                const H: usize = $h;
                const W: usize = $w;
                const C: usize = $c;
                const OH: usize = $oh;
                const OW: usize = $ow;
                const KH: usize = $kh;
                const KW: usize = $kw;
                const SH: usize = $sh;
                const SW: usize = $sw;
                const DH: usize = 1;
                const DW: usize = 1;
                const PAD_H: usize = $ph;
                const PAD_W: usize = $pw;
            }
        };
    }

    /// TFLM's reference convolution: taps outside the input skipped, `(x + in_off) * w`.
    #[allow(clippy::too_many_arguments)]
    fn reference<G: ConvGeom>(x: &[i8], batches: usize, w: &[i8], cout: usize, bias: &[i32], in_off: i32, mults: &[(i32, i32)], out_zp: i32, lo: i32, hi: i32) -> Vec<i8> {
        let mut y = Vec::new();
        for b in 0..batches {
            for oy in 0..G::OH {
                for ox in 0..G::OW {
                    for o in 0..cout {
                        let mut acc = bias[o];
                        for ky in 0..G::KH {
                            for kx in 0..G::KW {
                                let iy = (oy * G::SH + ky) as isize - G::PAD_H as isize;
                                let ix = (ox * G::SW + kx) as isize - G::PAD_W as isize;
                                if iy < 0 || ix < 0 || iy as usize >= G::H || ix as usize >= G::W {
                                    continue;
                                }
                                for ic in 0..G::C {
                                    let xv = x[((b * G::H + iy as usize) * G::W + ix as usize) * G::C + ic] as i32;
                                    acc = acc.wrapping_add((xv + in_off) * w[((o * G::KH + ky) * G::KW + kx) * G::C + ic] as i32);
                                }
                            }
                        }
                        y.push(microgen_rt::q::clamp(microgen_rt::q::mbqm(acc, mults[o].0, mults[o].1).wrapping_add(out_zp), lo, hi) as i8);
                    }
                }
            }
        }
        y
    }

    fn case<G: ConvGeom, const TN: usize, const TL: usize, const WN: usize, const RV: usize, const CO: usize>(seed: u64, batches: usize, clamp: bool, rev: bool) {
        let mut s = seed;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let kn = G::KH * G::KW * G::C;
        let x: Vec<i8> = (0..batches * G::H * G::W * G::C).map(|_| next() as i8).collect();
        let w: Vec<i8> = (0..CO * kn).map(|_| next() as i8).collect();
        let bias: Vec<i32> = (0..CO).map(|_| (next() % 20001) as i32 - 10000).collect();
        let mults: Vec<(i32, i32)> = (0..CO).map(|_| quantize_multiplier(0.0005 + (next() % 1000) as f64 * 1e-5)).collect();
        let (in_off, out_zp) = ((next() % 256) as i32 - 127, (next() % 200) as i32 - 100);
        let (lo, hi) = if clamp { (out_zp.max(-128), (out_zp + 60).min(127)) } else { (-128, 127) };
        let g = [G::H, G::W, G::C, G::OH, G::OW, G::KH, G::KW, G::SH, G::SW, 1, 1, G::PAD_H, G::PAD_W];
        let p = pack(&w, g, CO, &bias, in_off, &mults, out_zp, lo, hi).expect("direct form applies");
        assert_eq!((p.tn, p.tl, p.wn, p.rv), (TN, TL, WN, RV));
        let l = microgen_rt::band::Direct { w: &p.w, bias: &p.bias, rq: &p.rq, cout: CO, lo, hi };
        let mut y = vec![0i8; batches * G::OH * G::OW * CO];
        let mut band = vec![0i16; G::KH * RV];
        microgen_rt::band::conv::<i8, &mut [i8], G, TN, TL, WN, RV, CO>(&l, &x, (-in_off) as i8, batches, &mut y[..], rev, &mut band);
        assert_eq!(y, reference::<G>(&x, batches, &w, CO, &bias, in_off, &mults, out_zp, lo, hi));
    }

    /// The packed weights, the band (padding on every side, strides, odd window rows) and
    /// the tiles of the runtime's portable path give TFLM's outputs.
    #[test]
    fn direct_matches_reference_convolution() {
        // 3x3 SAME, stride 1, three input channels, five output channels (one tile).
        geom!(S1: 11, 9, 3, 11, 9, 3, 3, 1, 1, 1, 1);
        case::<S1, 5, 5, 5, 34, 5>(1, 1, false, false);
        case::<S1, 5, 5, 5, 34, 5>(2, 2, true, true);
        // 5x4 VALID-like window, stride 2, one input channel, six channels.
        geom!(D1: 21, 17, 1, 9, 7, 5, 4, 2, 2, 0, 0);
        case::<D1, 6, 6, 2, 18, 6>(3, 1, false, false);
        // Stride 2 with bottom/right padding, eight channels (tiles of 4), two batches.
        geom!(S2: 12, 10, 3, 6, 5, 3, 3, 2, 2, 0, 0);
        case::<S2, 4, 4, 5, 34, 8>(4, 2, false, false);
        geom!(S2P: 12, 10, 3, 6, 5, 3, 3, 2, 2, 1, 1);
        case::<S2P, 4, 4, 5, 34, 8>(5, 1, true, false);
        // Thirteen channels: tiles of 5, 5 and 3.
        geom!(K13: 7, 6, 2, 7, 6, 3, 2, 1, 1, 1, 0);
        case::<K13, 5, 3, 2, 16, 13>(6, 1, false, true);
    }
}
