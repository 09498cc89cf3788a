//! The `speed` strategy of int8 CONV_2D and FULLY_CONNECTED: the layer as a matrix product
//! run by `microgen_rt::mac` (tiles of output channels x positions, `SMLAD` on Cortex-M4/M7,
//! portable Rust elsewhere), with the weights packed here at compile time in the order the
//! inner loop reads them: int16 pairs, sign-extended, doubled when the fast requantization
//! applies (see the runtime module's docs for the layout and the exactness argument).

use super::super::{lit, KernelCtx};
use super::strategy::{Est, Strategy};
use proc_macro2::TokenStream;
use quote::quote;

/// The output tile of the multiply-accumulate loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tile {
    /// 4 output channels x 2 positions (convolutions).
    C4P2,
    /// 8 output channels x 1 position (fully connected layers with one batch).
    C8P1,
}

impl Tile {
    pub fn channels(self) -> usize {
        match self {
            Tile::C4P2 => 4,
            Tile::C8P1 => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Tile::C4P2 => "4x2",
            Tile::C8P1 => "8x1",
        }
    }
}

/// A layer's constants, packed.
pub struct Packed {
    /// Pair words per row (a multiple of 4).
    pub steps: usize,
    pub tile: Tile,
    pub w: Vec<u8>,
    /// For x86-64 with AVX2 (4x2 tiles of at most `microgen_rt::mac::QUAD_CHANNELS` output
    /// channels, else empty): the same weights as int8 (not doubled), in groups of 8 channels
    /// (`[cout / 8][steps][8 channels][2 inputs]`, zero past `cout`), half the bytes the host
    /// streams from its caches; sign-extended on load.
    pub w8: Vec<u8>,
    /// For x86-64 with AVX-512 VNNI (same layers as `w8`): the weights as int8 (not
    /// doubled), per pass of the kernel's groups of 16 channels
    /// (`microgen_rt::mac::gemm_vnni_pass`), per 4 values of the row, the groups' 16
    /// channels' 4 (`[kq4][G][16][4]`, zero past `cout`), read by `VPDPBUSD`.
    pub w4: Vec<u8>,
    /// Words of a row in the VNNI layout ([`RowSource::vnni_order`]).
    pub kq4: usize,
    /// The bias for `w4`: `bias` minus `128 * sum(w)` (doubled with it), for inputs read
    /// as `x ^ 0x80 = x + 128`.
    pub bias4: Vec<i32>,
    pub bias: Vec<i32>,
    pub rq: Vec<[i32; 3]>,
    /// Requantization with the doubled accumulator (`rq_fast`) rather than `rq_exact`.
    pub fast: bool,
}

impl Packed {
    pub fn const_bytes(&self) -> usize {
        self.w.len() + 4 * self.bias.len() + 12 * self.rq.len()
    }
}

/// The exact range `[lo, hi]` of TFLM's accumulator `bias + sum((x + in_off) * w)` over
/// every int8 input.
pub fn acc_range(bias: i32, w: impl IntoIterator<Item = i8>, in_off: i32) -> (i64, i64) {
    let (a, b) = (-128 + in_off as i64, 127 + in_off as i64);
    w.into_iter().fold((bias as i64, bias as i64), |(lo, hi), v| {
        let (p, q) = (v as i64 * a, v as i64 * b);
        (lo + p.min(q), hi + p.max(q))
    })
}

/// The `rq_fast` constants of every output channel (`fast_rq` of its accumulator range,
/// channel `o`'s int8 weights given by `w(o)`), or `None` when one channel has none.
#[allow(clippy::too_many_arguments)]
pub fn fast_rqs<I: IntoIterator<Item = i8>>(cout: usize, w: impl Fn(usize) -> I, bias: &[i32], in_off: i32, mults: &[(i32, i32)], out_zp: i32, lo: i32, hi: i32) -> Option<Vec<[i32; 3]>> {
    (0..cout).map(|o| fast_rq(acc_range(bias[o], w(o), in_off), mults[o], out_zp, lo, hi)).collect()
}

/// The requantization of every output channel: `(true, fast_rqs)` when the doubled
/// accumulator form is exact for all of them, else `(false, TFLM's (multiplier, shift,
/// output zero point))`.
#[allow(clippy::too_many_arguments)]
pub fn channel_rqs<I: IntoIterator<Item = i8>>(cout: usize, w: impl Fn(usize) -> I, bias: &[i32], in_off: i32, mults: &[(i32, i32)], out_zp: i32, lo: i32, hi: i32) -> (bool, Vec<[i32; 3]>) {
    match fast_rqs(cout, w, bias, in_off, mults, out_zp, lo, hi) {
        Some(rq) => (true, rq),
        None => (false, mults.iter().map(|&(m, s)| [m, s, out_zp]).collect()),
    }
}

/// The constants `(m, k, e)` of the doubled-accumulator requantization
/// (`microgen_rt::mac::rq_fast`) for a channel whose accumulator lies in `acc` and whose
/// output is clamped to `lo..=hi`, when it is exact: a channel whose output is the same for
/// every input (TFLM's requantization is monotonic, so the ends of the range tell) gets
/// `(0, 2c + 1, 1)`, which computes that value `c`; otherwise a right shift of 1..=31, a
/// positive multiplier, every accumulator below 2^30 in magnitude and the rounding constant
/// `2^(e-1) + (zp << e)` with room in 32 bits. `None` otherwise.
pub fn fast_rq(acc: (i64, i64), mult: (i32, i32), out_zp: i32, lo: i32, hi: i32) -> Option<[i32; 3]> {
    let (m, shift) = mult;
    let out = |a: i64| microgen_rt::q::clamp(microgen_rt::q::mbqm(a as i32, m, shift).wrapping_add(out_zp), lo, hi);
    let fits = acc.0 >= i32::MIN as i64 && acc.1 <= i32::MAX as i64;
    if fits && out(acc.0) == out(acc.1) {
        let c = out(acc.0);
        return Some([0, 2 * c + 1, 1]);
    }
    let e = -shift as i64;
    let bound = acc.0.abs().max(acc.1.abs());
    if m <= 0 || !(1..=31).contains(&e) || bound >= 1 << 30 {
        return None;
    }
    // |SaturatingRoundingDoublingHighMul(acc, m)| at most.
    let vmax = (bound * m as i64 + (1 << 30)) >> 31;
    let kk = (1i64 << (e - 1)) + ((out_zp as i64) << e);
    if vmax + kk.abs() + 2 < 1 << 31 {
        Some([m, kk as i32, e as i32])
    } else {
        None
    }
}

/// Pair words per row of `k` values (whole chunks of 4 values; a multiple of 4 words for
/// 8x1 tiles, whose loop takes 4 at a time).
pub fn steps_for(k: usize, tile: Tile) -> usize {
    let s = k.div_ceil(4) * 2;
    match tile {
        Tile::C4P2 => s,
        Tile::C8P1 => s.div_ceil(4) * 4,
    }
}

/// Packs a layer: `w` holds `cout` rows of `k` int8 weights (`[oc][k]`), `bias` the int32
/// bias, `in_off` TFLM's input offset (minus the input zero point), `mults` the per-channel
/// (multiplier, shift), `out_zp` the output zero point, `lo..=hi` the output range. A
/// packed row has `kp` values; `kmap` gives the weight index of each (`None`: a zero).
#[allow(clippy::too_many_arguments)]
/// `vnni` gives the words of the VNNI kernels' row and the packed index of each of its
/// bytes ([`RowSource::vnni_order`]).
pub fn pack(w: &[i8], k: usize, kp: usize, kmap: &dyn Fn(usize) -> Option<usize>, vnni: (usize, &dyn Fn(usize) -> Option<usize>), cout: usize, bias: &[i32], in_off: i32, mults: &[(i32, i32)], out_zp: i32, lo: i32, hi: i32, tile: Tile) -> Packed {
    let steps = steps_for(kp, tile);
    let (fast, rq) = channel_rqs(cout, |o| w[o * k..(o + 1) * k].iter().copied(), bias, in_off, mults, out_zp, lo, hi);
    let scale: i32 = if fast { 2 } else { 1 };
    let tc = tile.channels();
    let tiles = cout.div_ceil(tc);
    let mut words: Vec<u8> = Vec::with_capacity(tiles * steps * tc * 4);
    // Weight `i` of the packed row of channel `o` (0 past `cout` and where `kmap` has none).
    let raw = |o: usize, i: usize| -> i8 {
        match kmap(i) {
            Some(i) if o < cout && i < k => w[o * k + i],
            _ => 0,
        }
    };
    let get = |o: usize, i: usize| -> i16 { (raw(o, i) as i32 * scale) as i16 };
    // Step 2j pairs inputs (4j, 4j+2); step 2j+1 pairs (4j+1, 4j+3).
    let step_inputs = |s: usize| (s / 2 * 4 + s % 2, s / 2 * 4 + s % 2 + 2);
    for t in 0..tiles {
        for s in 0..steps {
            let (i0, i1) = step_inputs(s);
            for c in 0..tc {
                let o = t * tc + c;
                let v = (get(o, i0) as u16 as u32) | ((get(o, i1) as u16 as u32) << 16);
                words.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    let w8: Vec<u8> = if tile == Tile::C4P2 && cout <= microgen_rt::mac::QUAD_CHANNELS {
        let mut v = Vec::with_capacity(cout.div_ceil(8) * steps * 16);
        for g in 0..cout.div_ceil(8) {
            for s in 0..steps {
                let (i0, i1) = step_inputs(s);
                for c in 0..8 {
                    v.push(raw(8 * g + c, i0) as u8);
                    v.push(raw(8 * g + c, i1) as u8);
                }
            }
        }
        v
    } else {
        Vec::new()
    };
    let (kq4, order) = vnni;
    let w4: Vec<u8> = if w8.is_empty() { Vec::new() } else { vnni_layout(cout, kq4, &|left| microgen_rt::mac::gemm_vnni_pass(cout, left), &|o, i| order(i).map_or(0, |j| raw(o, j))) };
    let wsum = |o: usize| -> i32 { w[o * k..(o + 1) * k].iter().fold(0i32, |a, &v| a.wrapping_add(v as i32)) };
    let bias_p: Vec<i32> = (0..tiles * tc)
        .map(|o| if o >= cout { 0 } else { bias[o].wrapping_add(in_off.wrapping_mul(wsum(o))).wrapping_mul(scale) })
        .collect();
    let bias4: Vec<i32> = if w4.is_empty() {
        Vec::new()
    } else {
        bias_p.iter().enumerate().map(|(o, &b)| if o >= cout { 0 } else { b.wrapping_sub(wsum(o).wrapping_mul(128 * scale)) }).collect()
    };
    Packed { steps, tile, w: words, w8, w4, kq4, bias4, bias: bias_p, rq, fast }
}

/// Weights in the layout of the x86-64 VNNI kernels (`VPDPBUSD`): groups of 16 output
/// channels taken `pass(left)` at a time while `left` groups remain, each pass's groups
/// interleaved per 4 inputs (`[kq][groups of the pass][16][4]`: one sequential stream),
/// `weight(o, i)` the int8 weight of channel `o` for value `i` of the row (zero past `cout`).
pub fn vnni_layout(cout: usize, kq: usize, pass: &dyn Fn(usize) -> usize, weight: &dyn Fn(usize, usize) -> i8) -> Vec<u8> {
    let g16 = cout.div_ceil(16);
    let mut v = Vec::with_capacity(g16 * kq * 64);
    let mut g0 = 0;
    while g0 < g16 {
        let take = pass(g16 - g0).clamp(1, g16 - g0);
        for j in 0..kq {
            for g in g0..g0 + take {
                for c in 0..16 {
                    let o = 16 * g + c;
                    v.extend((0..4).map(|t| if o < cout { weight(o, 4 * j + t) as u8 } else { 0 }));
                }
            }
        }
        g0 += take;
    }
    v
}

/// How the rows of the matrix product are read.
pub enum RowSource {
    /// Row `p` is `x[p * k..(p + 1) * k]`.
    Dense { k: usize },
    /// Convolution windows: `[h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, pad_h, pad_w]`, taps
    /// outside the input read as the input zero point; each window row padded to a
    /// multiple of 4 values.
    Im2col { g: [usize; 13], zp: i32 },
    /// Convolution windows read from input rows converted once into pairs of consecutive
    /// values (`microgen_rt::mac::Paired`, same `g`): no dilation, an even step between
    /// windows, channels not a multiple of 4 (first layers: one or three channels).
    Paired { g: [usize; 13], zp: i32 },
}

/// Words of a row expanded at a time by `gemm_8x1_blocked` (long fully connected rows).
const BLOCK_WORDS: usize = 128;

/// Most stack the ring of converted rows of [`RowSource::Paired`] may take.
const PAIRED_RING_MAX: usize = 4096;

impl RowSource {
    /// The windows of a convolution, `g` as in [`RowSource::Im2col`]: [`RowSource::Paired`]
    /// where it applies (fewer multiply-accumulate steps for rows that are not whole
    /// chunks of 4 values, and words copied instead of bytes gathered), else
    /// [`RowSource::Im2col`].
    pub fn window(g: [usize; 13], zp: i32) -> RowSource {
        let [_, _, c, _, ow, kh, kw, _, sw, dh, dw, _, _] = g;
        let ring = 4 * kh * microgen_rt::mac::paired_row_words(ow, sw, c, kw);
        if dh == 1 && dw == 1 && (sw * c) % 2 == 0 && c % 4 != 0 && ring <= PAIRED_RING_MAX {
            RowSource::Paired { g, zp }
        } else {
            RowSource::Im2col { g, zp }
        }
    }

    /// Stack bytes of the row source's own scratch.
    pub fn scratch(&self) -> usize {
        match *self {
            RowSource::Paired { g, .. } => 4 * g[5] * microgen_rt::mac::paired_row_words(g[4], g[8], g[2], g[6]),
            _ => 0,
        }
    }

    /// Estimated Cortex-M4 instructions to write one row, and once per layer.
    fn expand_cost(&self, steps: u64) -> (u64, u64) {
        match *self {
            RowSource::Dense { .. } => (5 * steps / 2 + 20, 0),
            RowSource::Im2col { g, .. } => (g[5] as u64 * (18 + 7 * (g[6] * g[2]).div_ceil(4) as u64) + 50, 0),
            RowSource::Paired { g, .. } => {
                let wn = (g[6] * g[2]).div_ceil(2) as u64;
                let rw = microgen_rt::mac::paired_row_words(g[4], g[8], g[2], g[6]) as u64;
                (g[5] as u64 * (6 + 2 * wn) + 40, g[0] as u64 * rw * 10)
            }
        }
    }

    /// The row of the VNNI kernels (`microgen_rt::mac::Rows::bytes`, or a window read in
    /// place from a band of rows): its words, and for each of its bytes the index of that
    /// value in the packed row of [`RowSource::layout`] (`None`: a zero weight). The same
    /// row except for [`RowSource::Paired`]: the VNNI kernel reads its windows as
    /// [`RowSource::Im2col`]'s (each window row `ceil(KW * C / 4)` words, which a band of
    /// input rows holds in place), while its packed row has window rows of `ceil(KW * C /
    /// 2)` pairs, the middle two of every 4 values swapped.
    pub fn vnni_order(&self) -> (usize, Box<dyn Fn(usize) -> Option<usize>>) {
        let (kp, _) = self.layout();
        match *self {
            RowSource::Paired { g, .. } => {
                let (kh, span) = (g[5], g[6] * g[2]);
                let (rw4, rw2) = (span.div_ceil(4) * 4, span.div_ceil(2) * 2);
                (
                    kh * rw4 / 4,
                    Box::new(move |i| {
                        let (ky, j) = (i / rw4, i % rw4);
                        let l = ky * rw2 + j;
                        (ky < kh && j < span).then_some(l / 4 * 4 + [0, 2, 1, 3][l % 4])
                    }),
                )
            }
            _ => (kp.div_ceil(4), Box::new(move |i| (i < kp).then_some(i))),
        }
    }

    /// Values per packed row, and the weight index (`[ky][kx][ic]`) of each.
    pub fn layout(&self) -> (usize, Box<dyn Fn(usize) -> Option<usize>>) {
        match *self {
            RowSource::Dense { k } => (k, Box::new(move |i| (i < k).then_some(i))),
            RowSource::Im2col { g, .. } => {
                let (kh, span) = (g[5], g[6] * g[2]);
                let rw = span.div_ceil(4) * 4;
                (kh * rw, Box::new(move |i| (i % rw < span).then_some(i / rw * span + i % rw)))
            }
            RowSource::Paired { g, .. } => {
                let (kh, span) = (g[5], g[6] * g[2]);
                let rw = 2 * span.div_ceil(2);
                // `pack` puts values (4j, 4j+2) in step 2j and (4j+1, 4j+3) in step 2j+1;
                // here step s holds the window's values (2s, 2s+1).
                (
                    kh * rw,
                    Box::new(move |i| {
                        let l = i / 4 * 4 + [0, 2, 1, 3][i % 4];
                        (l % rw < span).then_some(l / rw * span + l % rw)
                    }),
                )
            }
        }
    }
}

/// The estimated cost of a packed layer on a Cortex-M4 (from the instruction counts of the
/// `asm!` loops; code bytes approximate).
fn estimate(ctx: &KernelCtx, p: &Packed, src: &RowSource, npos: usize, lo: i32, hi: i32) -> Est {
    let steps = p.steps as u64;
    let asm = p.fast && lo == -128 && hi == 127;
    let (npos, cout) = (npos as u64, p.rq.len() as u64);
    let u = if steps % 8 == 0 { 8 } else if steps % 4 == 0 { 4 } else { 2 };
    let (expand_row, once) = src.expand_cost(steps);
    match p.tile {
        Tile::C4P2 => {
            let tiles = cout.div_ceil(4);
            let mac = 11 * steps + if steps > 32 { 4 * steps / u } else { 0 };
            let per_tile = if asm { 69 + mac } else { 150 + mac };
            let per_pair = 40 + if asm && matches!(src, RowSource::Dense { .. }) { 9 * steps / 2 } else { 2 * expand_row };
            let mut shared = vec![(format!("gemm_4x2 steps {steps} {}", if matches!(src, RowSource::Dense { .. }) { "dense".to_string() } else { ctx.prefix.clone() }), 700)];
            if asm {
                let chunks = steps / 2;
                shared.push((format!("tiles_4x2_asm {steps}"), 320 + 44 * if steps <= 32 { steps } else { u } as usize + if chunks <= 16 { 28 * chunks } else { 40 } as usize));
            }
            Est { instructions: once + npos.div_ceil(2) * (per_pair + tiles * per_tile), code_bytes: 90, shared }
        }
        Tile::C8P1 => {
            let tiles = cout.div_ceil(8);
            let per_tile = 180 + 13 * steps;
            Est { instructions: once + npos * (expand_row + 30 + tiles * per_tile), code_bytes: 90, shared: vec![(format!("gemm_8x1 steps {steps}"), 900)] }
        }
    }
}

/// The statics and the body of a kernel running `p` over `npos` rows read from `x0` into
/// `y0`, and the bytes of stack scratch it uses.
pub fn emit(ctx: &KernelCtx, p: &Packed, src: &RowSource, npos: usize, lo: i32, hi: i32) -> (TokenStream, TokenStream, usize) {
    let (w_id, b_id, r_id) = (ctx.ident("WP"), ctx.ident("BP"), ctx.ident("RQ"));
    let wlen = lit::usize(p.w.len());
    let wbytes = lit::bytes(&p.w);
    let nb = lit::usize(p.bias.len());
    let bias = lit::i32s(&p.bias);
    let nr = lit::usize(p.rq.len());
    let rqs = p.rq.iter().map(|r| lit::i32s(r));
    let x86 = quote!(all(target_arch = "x86_64", target_feature = "avx2"));
    let vnni = quote!(all(target_arch = "x86_64", target_feature = "avx512vnni"));
    // The VNNI kernel reads rows as bytes (`Rows::bytes`).
    let use4 = !p.w4.is_empty();
    let wstatic = if use4 {
        let (w8len, w8bytes) = (lit::usize(p.w8.len()), lit::bytes(&p.w8));
        let (w4len, w4bytes) = (lit::usize(p.w4.len()), lit::bytes(&p.w4));
        let bias4 = lit::i32s(&p.bias4);
        quote! {
            /// Weights packed for `microgen_rt::mac`: int16 pairs, tile by tile.
            #[cfg(not(#x86))]
            static #w_id: ::microgen_rt::mac::Align4<[u8; #wlen]> = ::microgen_rt::mac::Align4(#wbytes);
            /// The weights for x86-64 with AVX2: int8 pairs, 8 channels at a time.
            #[cfg(all(#x86, not(#vnni)))]
            static #w_id: ::microgen_rt::mac::Align64<[u8; #w8len]> = ::microgen_rt::mac::Align64(#w8bytes);
            /// The weights for x86-64 with AVX-512 VNNI: 4 int8 values of 16 channels at a time.
            #[cfg(#vnni)]
            static #w_id: ::microgen_rt::mac::Align64<[u8; #w4len]> = ::microgen_rt::mac::Align64(#w4bytes);
            /// Accumulator start per channel for inputs read as `x ^ 0x80` (AVX-512 VNNI).
            #[cfg(#vnni)]
            static #b_id: [i32; #nb] = #bias4;
        }
    } else if p.w8.is_empty() {
        quote! {
            /// Weights packed for `microgen_rt::mac`: int16 pairs, tile by tile.
            static #w_id: ::microgen_rt::mac::Align4<[u8; #wlen]> = ::microgen_rt::mac::Align4(#wbytes);
        }
    } else {
        let w8len = lit::usize(p.w8.len());
        let w8bytes = lit::bytes(&p.w8);
        quote! {
            /// Weights packed for `microgen_rt::mac`: int16 pairs, tile by tile.
            #[cfg(not(#x86))]
            static #w_id: ::microgen_rt::mac::Align4<[u8; #wlen]> = ::microgen_rt::mac::Align4(#wbytes);
            /// The weights for x86-64 with AVX2: int8 pairs, 8 channels at a time.
            #[cfg(#x86)]
            static #w_id: ::microgen_rt::mac::Align64<[u8; #w8len]> = ::microgen_rt::mac::Align64(#w8bytes);
        }
    };
    let w_i8 = if p.w8.is_empty() { quote!(false) } else { quote!(cfg!(#x86)) };
    let (vnni_l, bias_cfg) = if use4 { (quote!(cfg!(#vnni)), quote!(#[cfg(not(#vnni))])) } else { (quote!(false), quote!()) };
    let statics = quote! {
        #wstatic
        /// Accumulator start per channel: bias with the input offset folded in.
        #bias_cfg
        static #b_id: [i32; #nb] = #bias;
        /// Requantization per channel.
        static #r_id: [[i32; 3]; #nr] = [#(#rqs),*];
    };
    let (steps, cout) = (lit::usize(p.steps), lit::usize(p.rq.len()));
    let (lo_l, hi_l, npos_l) = (lit::i32(lo), lit::i32(hi), lit::usize(npos));
    let rev = ctx.reverse;
    let fast = p.fast;
    // Long dense rows of 8x1 tiles are expanded a block at a time (bounded stack).
    let blocked = p.tile == Tile::C8P1 && p.steps > BLOCK_WORDS && matches!(src, RowSource::Dense { .. });
    let (func, xs_words) = match p.tile {
        // On x86-64 (`XS_GROUPS` = 2) also the VNNI kernel's 8 rows of `kq4` words.
        Tile::C4P2 => (quote!(::microgen_rt::mac::gemm_4x2), (2 * p.steps + 2).max(4 * p.kq4)),
        Tile::C8P1 if blocked => (quote!(::microgen_rt::mac::gemm_8x1_blocked), BLOCK_WORDS),
        Tile::C8P1 => (quote!(::microgen_rt::mac::gemm_8x1), p.steps),
    };
    let xs_l = lit::usize(xs_words);
    // The 4x2 tiles take two pairs of rows at once where `microgen_rt::mac::XS_GROUPS` says so (x86-64).
    let xs_len = if p.tile == Tile::C4P2 { quote!(#xs_l * ::microgen_rt::mac::XS_GROUPS) } else { quote!(#xs_l) };
    let tiles = p.rq.len().div_ceil(8);
    let scratch = 4 * xs_words + src.scratch() + if blocked { 32 * tiles } else { 0 };
    let (rows_decl, rows) = rows_tokens(src);
    ctx.report(Strategy::Packed, estimate(ctx, p, src, npos, lo, hi));
    let call = if blocked {
        let tiles_l = lit::usize(tiles);
        quote! {
            let mut acc = [[0i32; 8]; #tiles_l];
            #func::<_, _, #fast, #steps>(&l, &#rows, #npos_l, y0, #rev, &mut xs, &mut acc);
        }
    } else {
        quote!(#func::<_, _, #fast, #steps>(&l, &mut #rows, #npos_l, y0, #rev, &mut xs);)
    };
    let body = quote! {
        let l = ::microgen_rt::mac::Gemm { steps: #steps, cout: #cout, w: &#w_id.0, w_i8: #w_i8, vnni: #vnni_l, bias: &#b_id, rq: &#r_id, lo: #lo_l, hi: #hi_l };
        let mut xs = [0u32; #xs_len];
        #rows_decl
        #call
    };
    (statics, body, scratch)
}

/// A layer's constants in the sparse form (`microgen_rt::mac::Sparse`).
pub struct SparsePacked {
    pub steps: usize,
    pub data: Vec<i32>,
    /// Chunks (4 consecutive inputs of one output channel) kept, of all.
    pub kept: usize,
    pub chunks: usize,
    /// Kept chunks per output channel.
    pub per_channel: Vec<usize>,
}

/// Packs a layer in the sparse form: per output channel only the chunks of 4 inputs with a
/// non-zero weight (arguments as [`pack`]); `None` when the doubled-accumulator
/// requantization is not exact for every channel, or when fewer than a quarter of the
/// chunks are zero (the dense form is then as fast).
#[allow(clippy::too_many_arguments)]
pub fn pack_sparse(w: &[i8], k: usize, kp: usize, kmap: &dyn Fn(usize) -> Option<usize>, cout: usize, bias: &[i32], in_off: i32, mults: &[(i32, i32)], out_zp: i32, lo: i32, hi: i32) -> Option<SparsePacked> {
    let steps = steps_for(kp, Tile::C4P2);
    let rqs = fast_rqs(cout, |o| w[o * k..(o + 1) * k].iter().copied(), bias, in_off, mults, out_zp, lo, hi)?;
    let get = |o: usize, i: usize| -> i32 {
        match kmap(i) {
            Some(i) if i < k => 2 * w[o * k + i] as i32,
            _ => 0,
        }
    };
    let pair = |a: i32, b: i32| ((a as i16 as u16 as u32) | ((b as i16 as u16 as u32) << 16)) as i32;
    let nchunks = steps / 2;
    let mut data = Vec::new();
    let (mut kept, mut per_channel) = (0, Vec::with_capacity(cout));
    for o in 0..cout {
        let s: i32 = w[o * k..(o + 1) * k].iter().fold(0i32, |a, &v| a.wrapping_add(v as i32));
        data.push(bias[o].wrapping_add(in_off.wrapping_mul(s)).wrapping_mul(2));
        let at = data.len();
        data.push(0);
        let mut n = 0;
        for j in 0..nchunks {
            let v: Vec<i32> = (0..4).map(|t| get(o, 4 * j + t)).collect();
            if v.iter().all(|&x| x == 0) {
                continue;
            }
            // Step 2j pairs inputs (4j, 4j+2), step 2j+1 pairs (4j+1, 4j+3).
            data.extend([pair(v[0], v[2]), pair(v[1], v[3]), (32 * j) as i32]);
            n += 1;
        }
        data[at] = n as i32;
        data.extend(rqs[o]);
        kept += n;
        per_channel.push(n);
    }
    if kept * 4 > nchunks * cout * 3 {
        return None;
    }
    Some(SparsePacked { steps, data, kept, chunks: nchunks * cout, per_channel })
}

/// The statics and body of a sparse layer over `npos` rows (at least 4), and its stack
/// scratch bytes.
pub fn emit_sparse(ctx: &KernelCtx, p: &SparsePacked, src: &RowSource, npos: usize, cout: usize, lo: i32, hi: i32) -> (TokenStream, TokenStream, usize) {
    let d_id = ctx.ident("SP");
    let dn = lit::usize(p.data.len());
    let data = lit::i32s(&p.data);
    let statics = quote! {
        /// Per output channel: bias, the non-zero chunks (weight pairs, offset), requantization.
        static #d_id: [i32; #dn] = #data;
    };
    let (steps, co, npos_l, lo_l, hi_l) = (lit::usize(p.steps), lit::usize(cout), lit::usize(npos), lit::i32(lo), lit::i32(hi));
    let xs_words = 4 * p.steps + 8;
    let xs_l = lit::usize(xs_words);
    let (rows_decl, rows) = rows_tokens(src);
    let rev = ctx.reverse;
    let body = quote! {
        let l = ::microgen_rt::mac::Sparse { steps: #steps, cout: #co, data: &#d_id, lo: #lo_l, hi: #hi_l };
        let mut xs = [0u32; #xs_l];
        #rows_decl
        ::microgen_rt::mac::gemm_sparse::<_, _, #co>(&l, &mut #rows, #npos_l, y0, #rev, &mut xs);
    };
    let (expand_row, once) = src.expand_cost(p.steps as u64);
    let asm = lo == -128 && hi == 127;
    let per_group: u64 = 4 * expand_row + if asm { 34 * cout as u64 + 14 * p.kept as u64 } else { 60 * cout as u64 + 40 * p.kept as u64 };
    let tail = (npos % 4) as u64 * (expand_row + 60 * cout as u64 + 40 * p.kept as u64);
    ctx.report(
        Strategy::Sparse,
        Est { instructions: once + (npos / 4) as u64 * per_group + tail, code_bytes: 90, shared: vec![(format!("gemm_sparse c{cout}"), 1300)] },
    );
    (statics, body, 4 * xs_words + src.scratch())
}

/// Per-channel requantization constants as groups of 8 channels, each constant's 8 values
/// together (`[[[i32; 8]; 3]; groups]`, the last group filled with the last channel's), for
/// the vector kernels; and the number of groups.
pub fn rq_groups(rq: &[[i32; 3]]) -> (TokenStream, usize) {
    let groups = rq.len().div_ceil(8);
    let items = (0..groups).map(|g| {
        let rows = (0..3).map(|j| lit::i32s(&(0..8).map(|c| rq[(8 * g + c).min(rq.len() - 1)][j]).collect::<Vec<_>>()));
        quote!([#(#rows),*])
    });
    (quote!([#(#items),*]), groups)
}

/// `struct G` implementing `microgen_rt::mac::ConvGeom` for the geometry
/// `[h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, pad_h, pad_w]`.
pub fn geom_type(g: [usize; 13]) -> TokenStream {
    let [h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, ph, pw] = g.map(lit::usize);
    quote! {
        struct G;
        impl ::microgen_rt::mac::ConvGeom for G {
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
            const PAD_H: usize = #ph;
            const PAD_W: usize = #pw;
        }
    }
}

/// The row source's declarations and expression.
fn rows_tokens(src: &RowSource) -> (TokenStream, TokenStream) {
    match src {
        RowSource::Dense { k } => {
            let k = lit::usize(*k);
            (quote!(), quote!(::microgen_rt::mac::Dense { x: x0, k: #k }))
        }
        RowSource::Im2col { g, zp } | RowSource::Paired { g, zp } => {
            let zp = lit::i32(*zp);
            let (ring_decl, expr) = if let RowSource::Paired { .. } = src {
                let n = lit::usize(src.scratch() / 4);
                (
                    quote!(let mut ring = [0u32; #n];),
                    quote!(::microgen_rt::mac::Paired::<_, G> { x: x0, zp: #zp, ring: &mut ring, lo: 0, hi: 0, g: ::core::marker::PhantomData }),
                )
            } else {
                (quote!(), quote!(::microgen_rt::mac::Im2col::<_, G> { x: x0, zp: #zp, g: ::core::marker::PhantomData }))
            };
            let geom = geom_type(*g);
            (
                quote! {
                    #geom
                    #ring_decl
                },
                expr,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::kernels::quantize_multiplier;

    /// `rq_fast` with the constants of `fast_rq` gives TFLM's result for every accumulator
    /// inside the range, including channels found constant.
    #[test]
    fn fast_rq_is_exact() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut consts_seen, mut fast_seen) = (0, 0);
        for i in 0..4000 {
            let real = f64::powi(2.0, -((next() % 34) as i32)) * (0.5 + (next() % 1000) as f64 / 1000.0);
            let mult = if next() % 20 == 0 { (0, 0) } else { quantize_multiplier(real) };
            let zp = (next() % 256) as i32 - 128;
            let in_off = (next() % 256) as i32 - 127;
            let bias = if i % 4 == 0 { (next() % (1 << 31)) as i32 } else { (next() % 200_001) as i32 - 100_000 };
            let n = 1 + (next() % 200) as usize;
            let w: Vec<i8> = (0..n).map(|_| (next() % 255) as i8).collect();
            let (lo, hi) = if i % 3 == 0 { (zp.max(-128), 127) } else { (-128, 127) };
            let acc = acc_range(bias, w.iter().copied(), in_off);
            let Some(r) = fast_rq(acc, mult, zp, lo, hi) else { continue };
            if r[0] == 0 {
                consts_seen += 1;
            } else {
                fast_seen += 1;
            }
            for _ in 0..50 {
                let a = (acc.0 + (next() % ((acc.1 - acc.0) as u64 + 1)) as i64) as i32;
                let want = microgen_rt::q::clamp(microgen_rt::q::mbqm(a, mult.0, mult.1).wrapping_add(zp), lo, hi) as i8;
                assert_eq!(microgen_rt::mac::rq_fast(a.wrapping_mul(2), &r, lo, hi), want, "acc {a} mult {mult:?} zp {zp} consts {r:?}");
            }
        }
        assert!(consts_seen > 10 && fast_seen > 100, "{consts_seen} {fast_seen}");
    }
}
