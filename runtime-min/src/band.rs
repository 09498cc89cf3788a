//! Direct int8 convolution over a band of input rows (the `direct` strategy): for layers
//! with few input values per window row (first layers: one or three input channels), whose
//! windows the matrix kernels of [`crate::mac`] spend most of their time gathering.
//!
//! For each output row, the `KH` input rows its windows read are held as int16 values in a
//! band (`KH` rows of `RV` values, left and right padding included, taps outside the input
//! the input zero point, which adds nothing: the compiler folded `in_offset * sum(w)` into
//! the bias). Going down the output, rows still needed are moved up and only the `SH` new
//! ones converted. A window's row `ky` is then `WN = ceil(KW * C / 2)` consecutive words
//! of the band (pairs of consecutive values, read at any even byte address), so the
//! multiply-accumulate reads the band in place: no window is copied.
//!
//! Weights are packed by the compiler as int16 pairs in that order, doubled for the
//! doubled-accumulator requantization ([`crate::mac::rq_fast`], the only one taken here),
//! per tile of output channels: `[ky][j][channel of the tile]` words (an odd `KW * C`
//! leaves the last word's second value zero). Tiles hold `TN` channels, the last one
//! `TL` (both at most 6).
//!
//! On Cortex-M4/M7 (`dsp`) one `asm!` block runs a tile over a whole output row, registers
//! allocated by hand: per word one `LDR` of the band, one `LDM` of up to 5 weights (two for
//! 6), one `SMLAD` per channel; the accumulators stay in registers for the window. Elsewhere
//! the same arithmetic in plain Rust.

use crate::mac::{Byte, ConvGeom, Out8};

/// A layer's constants.
pub struct Direct<'a> {
    /// Packed weights, tile after tile (int16 pairs; 4-byte aligned).
    pub w: &'a [i16],
    /// Accumulator start per channel (bias with the input offset folded in, doubled).
    pub bias: &'a [i32],
    /// `rq_fast` constants `(m, k, e)` per channel.
    pub rq: &'a [[i32; 3]],
    /// Output channels.
    pub cout: usize,
    /// Activation range (output zero point included).
    pub lo: i32,
    pub hi: i32,
}

/// Values per band row for a layer: the columns its windows cover (`(OW - 1) * SW + KW`)
/// times `C`, plus one for the second value of an odd window row's last word, made even.
pub const fn band_row(ow: usize, sw: usize, kw: usize, c: usize) -> usize {
    (((ow - 1) * sw + kw) * c + 1).div_ceil(2) * 2
}

/// Band row `r` of length `RV`: input row `iy` (of batch `b`) from column `-PAD_W`, the zero
/// point outside the input.
#[inline(always)]
fn fill<B: Byte, G: ConvGeom>(x: &[B], b: usize, iy: isize, zp: i16, row: &mut [i16]) {
    if iy < 0 || iy as usize >= G::H {
        row.fill(zp);
        return;
    }
    let n = G::W * G::C;
    let src = &x[(b * G::H + iy as usize) * n..][..n];
    let lp = (G::PAD_W * G::C).min(row.len());
    row[..lp].fill(zp);
    let m = (row.len() - lp).min(n);
    // Four values an iteration (the loop's own instructions shared by four loads and stores).
    let (dst, src) = (&mut row[lp..lp + m], &src[..m]);
    let mut d4 = dst.chunks_exact_mut(4);
    let mut s4 = src.chunks_exact(4);
    for (d, s) in (&mut d4).zip(&mut s4) {
        d[0] = s[0].byte() as i8 as i16;
        d[1] = s[1].byte() as i8 as i16;
        d[2] = s[2].byte() as i8 as i16;
        d[3] = s[3].byte() as i8 as i16;
    }
    for (d, s) in d4.into_remainder().iter_mut().zip(s4.remainder()) {
        *d = s.byte() as i8 as i16;
    }
    row[lp + m..].fill(zp);
}

/// Runs the layer: `x` the NHWC input (`batches` of them), `y` the output
/// (`y[p * cout + c]`), `band` scratch of `KH * RV` values. With `rev` the output rows run
/// backwards. A window's inputs are all read (into the band) before any output of its row
/// is written, and rows are kept in the band only from earlier reads, so an output written
/// over its input is safe whenever it is for one position at a time in the same direction.
#[allow(clippy::too_many_arguments)]
pub fn conv<B: Byte, Y: Out8, G: ConvGeom, const TN: usize, const TL: usize, const WN: usize, const RV: usize, const CO: usize>(l: &Direct, x: &[B], zp: i8, batches: usize, mut y: Y, rev: bool, band: &mut [i16]) {
    let (kh, sh) = (G::KH, G::SH);
    assert!(l.cout == CO && TN >= 1 && TN <= 6 && TL >= 1 && TL <= TN && band.len() >= kh * RV && RV == band_row(G::OW, G::SW, G::KW, G::C));
    let tiles = (l.cout - TL) / TN + 1;
    assert!((tiles - 1) * TN + TL == l.cout && l.w.len() >= l.cout * kh * WN * 2 && l.bias.len() >= l.cout && l.rq.len() >= l.cout);
    assert!(WN == (G::KW * G::C).div_ceil(2) && G::DH == 1 && G::DW == 1);
    let band = &mut band[..kh * RV];
    let zp = zp as i16;
    for b in 0..batches {
        for i in 0..G::OH {
            let oy = if rev { G::OH - 1 - i } else { i };
            let iy0 = (oy * sh) as isize - G::PAD_H as isize;
            // Rows the previous output row already converted move up (forwards only).
            let keep = if !rev && i > 0 && sh < kh { kh - sh } else { 0 };
            if keep > 0 {
                band.copy_within(sh * RV.., 0);
            }
            for ky in keep..kh {
                fill::<B, G>(x, b, iy0 + ky as isize, zp, &mut band[ky * RV..(ky + 1) * RV]);
            }
            let p0 = (b * G::OH + oy) * G::OW;
            for t in 0..tiles {
                let c0 = t * TN;
                let n = if t + 1 == tiles { TL } else { TN };
                let w = &l.w[c0 * kh * WN * 2..(c0 + n) * kh * WN * 2];
                row::<Y, G, WN, RV, CO>(l, band, w, c0, n, &mut y, p0);
            }
        }
    }
}

/// One tile of `n` channels from `c0` over the output row starting at position `p0`.
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[inline(always)]
fn row<Y: Out8, G: ConvGeom, const WN: usize, const RV: usize, const CO: usize>(l: &Direct, band: &[i16], w: &[i16], c0: usize, n: usize, y: &mut Y, p0: usize) {
    let ys = y.span(p0 * l.cout, G::OW * l.cout);
    // `c0 + n <= cout`: the row's outputs `ys + ox * cout + c0 + i` stay in the span.
    let ys = ys.wrapping_add(c0);
    let clamp = l.lo != -128 || l.hi != 127;
    let (bias, rq) = (&l.bias[c0..c0 + n], &l.rq[c0..c0 + n]);
    macro_rules! go {
        ($($n:literal)*) => {
            match (n, clamp) {
                $(($n, false) => row_asm::<$n, 0, WN, RV, CO, G>(band, w, bias, rq, ys, l.lo, l.hi),
                  ($n, true) => row_asm::<$n, 1, WN, RV, CO, G>(band, w, bias, rq, ys, l.lo, l.hi),)*
                _ => unreachable!(),
            }
        };
    }
    go!(1 2 3 4 5 6);
}

/// The `asm!` block of [`row`]: `N` channels over the `OW` positions of a band.
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[allow(unsafe_code, clippy::too_many_arguments)]
#[inline(never)]
fn row_asm<const N: usize, const CLAMP: usize, const WN: usize, const RV: usize, const CO: usize, G: ConvGeom>(band: &[i16], w: &[i16], bias: &[i32], rq: &[[i32; 3]], y: *mut u8, lo: i32, hi: i32) {
    let kh = G::KH;
    assert!((1..=6).contains(&N) && w.len() >= N * kh * WN * 2 && bias.len() >= N && rq.len() >= N);
    assert!((w.as_ptr() as usize) % 4 == 0 && N <= CO && CO < 4096 && 2 * RV < 4096 && 4 * WN <= 2 * RV);
    // The last position's window ends inside the band.
    assert!(band.len() >= (kh - 1) * RV + (G::OW - 1) * G::SW * G::C + 2 * WN);
    let state: [usize; 8] = [w.as_ptr() as usize, bias.as_ptr() as usize, rq.as_ptr() as usize, y as usize, G::OW, band.as_ptr() as usize, lo as usize, hi as usize];
    // SAFETY: reads `band` words at even byte offsets below the bound checked above (an
    // unaligned `LDR`, allowed on Cortex-M4/M7 for single words), `N * KH * WN` words of `w`
    // (word aligned, checked), `N` entries of `bias` and `rq`; writes `N` bytes per position
    // at `y + ox * CO`, inside the span the caller obtained from `Out8::span`. Uses the
    // stack below `sp` for its state, and saves and restores r6/r7 (reserved by Rust).
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "ldm r10, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
            "push {{r0, r1, r2, r3, r4, r5, r8, r9}}",
            // Frame: 0 w, 4 bias, 8 rq, 12 y, 16 positions left, 20 window, 24 lo, 28 hi.
            "1:",
            "ldr r10, [sp, #4]",
            ".if {n} == 1",
            "ldr r0, [r10]",
            ".endif",
            ".if {n} == 2",
            "ldm r10, {{r0, r1}}",
            ".endif",
            ".if {n} == 3",
            "ldm r10, {{r0, r1, r2}}",
            ".endif",
            ".if {n} == 4",
            "ldm r10, {{r0, r1, r2, r3}}",
            ".endif",
            ".if {n} == 5",
            "ldm r10, {{r0, r1, r2, r3, r4}}",
            ".endif",
            ".if {n} == 6",
            "ldm r10, {{r0, r1, r2, r3, r4, r5}}",
            ".endif",
            "ldr r10, [sp]",
            "ldr r8, [sp, #20]",
            ".rept {kh}",
            ".rept {wn}",
            "ldr r12, [r8], #4",
            ".if {n} == 1",
            "ldr r6, [r10], #4",
            "smlad r0, r12, r6, r0",
            ".endif",
            ".if {n} == 2",
            "ldm r10!, {{r6, r7}}",
            "smlad r0, r12, r6, r0",
            "smlad r1, r12, r7, r1",
            ".endif",
            ".if {n} == 3",
            "ldm r10!, {{r6, r7, r9}}",
            "smlad r0, r12, r6, r0",
            "smlad r1, r12, r7, r1",
            "smlad r2, r12, r9, r2",
            ".endif",
            ".if {n} == 4",
            "ldm r10!, {{r6, r7, r9, r11}}",
            "smlad r0, r12, r6, r0",
            "smlad r1, r12, r7, r1",
            "smlad r2, r12, r9, r2",
            "smlad r3, r12, r11, r3",
            ".endif",
            ".if {n} == 5",
            "ldm r10!, {{r6, r7, r9, r11, lr}}",
            "smlad r0, r12, r6, r0",
            "smlad r1, r12, r7, r1",
            "smlad r2, r12, r9, r2",
            "smlad r3, r12, r11, r3",
            "smlad r4, r12, lr, r4",
            ".endif",
            ".if {n} == 6",
            "ldm r10!, {{r6, r7, r9}}",
            "smlad r0, r12, r6, r0",
            "smlad r1, r12, r7, r1",
            "smlad r2, r12, r9, r2",
            "ldm r10!, {{r6, r7, r9}}",
            "smlad r3, r12, r6, r3",
            "smlad r4, r12, r7, r4",
            "smlad r5, r12, r9, r5",
            ".endif",
            ".endr",
            ".if {skip} > 0",
            "add r8, r8, #{skip}",
            ".endif",
            ".endr",
            // Requantization (`rq_fast`), then the stores.
            "ldr r10, [sp, #8]",
            "ldr r8, [sp, #12]",
            ".if {clamp}",
            "ldr r9, [sp, #24]",
            "ldr r11, [sp, #28]",
            ".endif",
            ".irp i, 0, 1, 2, 3, 4, 5",
            ".if \\i < {n}",
            "ldm r10!, {{r6, r7, r12}}",
            "add lr, r7, r\\i, asr #31",
            "smmlar r\\i, r\\i, r6, lr",
            "asr r\\i, r\\i, r12",
            "ssat r\\i, #8, r\\i",
            ".if {clamp}",
            "cmp r\\i, r9",
            "it lt",
            "movlt r\\i, r9",
            "cmp r\\i, r11",
            "it gt",
            "movgt r\\i, r11",
            ".endif",
            "strb r\\i, [r8, #\\i]",
            ".endif",
            ".endr",
            "add r8, r8, #{ys}",
            "str r8, [sp, #12]",
            "ldr r8, [sp, #20]",
            "add r8, r8, #{xs}",
            "str r8, [sp, #20]",
            "ldr r12, [sp, #16]",
            "subs r12, r12, #1",
            "str r12, [sp, #16]",
            "bne 1b",
            "add sp, sp, #32",
            "pop {{r6, r7}}",
            n = const N,
            clamp = const CLAMP,
            kh = const G::KH,
            wn = const WN,
            skip = const 2 * RV - 4 * WN,
            ys = const CO,
            xs = const 2 * G::SW * G::C,
            inout("r10") state.as_ptr() => _,
            out("r0") _, out("r1") _, out("r2") _, out("r3") _, out("r4") _, out("r5") _,
            out("r8") _, out("r9") _, out("r11") _, out("r12") _, out("lr") _,
        );
    }
}

/// One tile of `n` channels from `c0` over the output row starting at position `p0`.
#[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
#[inline(always)]
fn row<Y: Out8, G: ConvGeom, const WN: usize, const RV: usize, const CO: usize>(l: &Direct, band: &[i16], w: &[i16], c0: usize, n: usize, y: &mut Y, p0: usize) {
    let kh = G::KH;
    for ox in 0..G::OW {
        let base = ox * G::SW * G::C;
        let mut acc = [0i32; 6];
        acc[..n].copy_from_slice(&l.bias[c0..c0 + n]);
        let mut wi = 0;
        for ky in 0..kh {
            let r = &band[ky * RV + base..ky * RV + base + 2 * WN];
            for j in 0..WN {
                let (x0, x1) = (r[2 * j] as i32, r[2 * j + 1] as i32);
                for a in acc[..n].iter_mut() {
                    *a = a.wrapping_add(x0 * w[wi] as i32).wrapping_add(x1 * w[wi + 1] as i32);
                    wi += 2;
                }
            }
        }
        for (i, &a) in acc[..n].iter().enumerate() {
            y.put((p0 + ox) * l.cout + c0 + i, crate::mac::rq_fast(a, &l.rq[c0 + i], l.lo, l.hi));
        }
    }
}
