//! Fast int8 3x3 depthwise convolution (the `speed` strategy), bit-exact with TFLM.
//!
//! Per output row, the input rows its windows need are gathered (each input row once, into
//! a ring of 3 slots) as int16 channel planes, `ring[c][slot][col]`, with the input zero
//! point around the input (so no window is ever clipped: a tap on the zero point adds
//! nothing once the input offset is folded into the bias). Then every channel of the
//! output row is computed from its plane, two outputs per step: the pairs of horizontally
//! adjacent inputs are 32-bit loads (any alignment) multiplied by pairs of weights with
//! `SMLAD`, the third column with `SMLABB`/`SMLATB`/... All reads of an output row's
//! input rows happen before any of its writes, so an output overlapping its input (as the
//! memory plan allows for the one-position-at-a-time order) is safe, forwards and
//! backwards.
//!
//! Per channel, nine words the compiler computes: `[w01_0, w01_1, w01_2, w2_01, w2_2,
//! bias, m, k, e]`: the pairs `(w[r][0], w[r][1])` of kernel rows `r`, the third column
//! `(w[0][2], w[1][2])` and `w[2][2]` (all doubled), the accumulator start (bias with the
//! input offset folded in, doubled) and the `rq_fast` constants (see `mac`).

use crate::mac::{Byte, Out8};

/// Columns of a plane row for an output row of `ow` positions with stride `s` and `pad_w`
/// padding columns before the input's `w`.
pub const fn plane_width(w: usize, ow: usize, s: usize, pad_w: usize) -> usize {
    // Pairs read columns up to 2s*(pairs-1) + 2s + 1 (stride 1: +3; stride 2: +5); a last
    // single output at ox reads up to ox*s + 2 + 1.
    let pairs = ow / 2;
    let mut need = pad_w + w;
    if pairs > 0 {
        let last = 2 * s * (pairs - 1) + if s == 1 { 3 } else { 5 };
        if last + 1 > need {
            need = last + 1;
        }
    }
    if ow % 2 == 1 {
        let last = (ow - 1) * s + 3;
        if last + 1 > need {
            need = last + 1;
        }
    }
    need
}

#[inline(always)]
fn pair(p: &[i16], i: usize) -> u32 {
    (p[i] as u16 as u32) | ((p[i + 1] as u16 as u32) << 16)
}

#[inline(always)]
fn lo(v: u32) -> i32 {
    v as i16 as i32
}

#[inline(always)]
fn hi(v: u32) -> i32 {
    (v >> 16) as i16 as i32
}

/// One output row, every channel, in plain Rust (the same arithmetic as the `asm!`).
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn row_portable<Y: Out8, const S: usize>(ring: &[i16], pw: usize, c_n: usize, ow: usize, consts: &[[i32; 9]], rot: usize, y: &mut Y, ybase: usize, lo_hi: (i32, i32)) {
    for c in 0..c_n {
        let k = &consts[c];
        let plane = &ring[c * 3 * pw..(c + 1) * 3 * pw];
        let w01 = [k[0] as u32, k[1] as u32, k[2] as u32];
        let w2 = [lo(k[3] as u32), hi(k[3] as u32), lo(k[4] as u32)];
        for ox in 0..ow {
            let mut acc = k[5];
            for r in 0..3 {
                let row = &plane[((rot + r) % 3) * pw..];
                let col = ox * S;
                acc = crate::mac::smlad(acc, pair(row, col), w01[r]);
                acc = acc.wrapping_add((row[col + 2] as i32) * w2[r]);
            }
            let v = crate::mac::rq_fast(acc, &[k[6], k[7], k[8]], lo_hi.0, lo_hi.1);
            y.put(ybase + ox * c_n + c, v);
        }
    }
}

/// One output row on the host (x86-64): per channel, the `OW` accumulators as one array,
/// each of the 9 taps a multiply-add across the columns (contiguous for stride 1), which
/// the compiler vectorizes. Same arithmetic as [`row_portable`].
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn row_columns<Y: Out8, const S: usize, const OW: usize>(ring: &[i16], pw: usize, c_n: usize, consts: &[[i32; 9]], rot: usize, y: &mut Y, ybase: usize, lo_hi: (i32, i32)) {
    let span = (OW - 1) * S + 3;
    for c in 0..c_n {
        let k = &consts[c];
        let plane = &ring[c * 3 * pw..(c + 1) * 3 * pw];
        let third = [lo(k[3] as u32), hi(k[3] as u32), lo(k[4] as u32)];
        let mut acc = [k[5]; OW];
        for r in 0..3 {
            let row = &plane[((rot + r) % 3) * pw..][..span];
            let wr = [lo(k[r] as u32), hi(k[r] as u32), third[r]];
            for (t, &wv) in wr.iter().enumerate() {
                for (ox, a) in acc.iter_mut().enumerate() {
                    *a = a.wrapping_add(row[ox * S + t] as i32 * wv);
                }
            }
        }
        let rq = [k[6], k[7], k[8]];
        for (ox, &a) in acc.iter().enumerate() {
            y.put(ybase + ox * c_n + c, crate::mac::rq_fast(a, &rq, lo_hi.0, lo_hi.1));
        }
    }
}

/// 3x3 depthwise convolution, depth multiplier 1, dilation 1, stride `S` (1 or 2) in both
/// directions, `C` channels, `OW` output columns, planes of `PW` columns. `g` is
/// `[n, h, w, oh, pad_h, pad_w]`. `ring` is scratch of `3 * C * PW` int16 values, all the
/// input zero point `zp` on entry; `lo..=hi` the output range. With `rev` the output rows (and batches)
/// run backwards.
#[allow(clippy::too_many_arguments)]
pub fn dw3x3<B: Byte, Y: Out8, const S: usize, const PW: usize, const C: usize, const OW: usize>(
    x: &[B],
    mut y: Y,
    g: [usize; 6],
    consts: &[[i32; 9]],
    zp: i8,
    lo: i32,
    hi: i32,
    ring: &mut [i16],
    rev: bool,
) {
    let [n, h, w, oh, pad_h, pad_w] = g;
    assert!((S == 1 || S == 2) && C > 0 && OW > 0);
    assert!(PW >= plane_width(w, OW, S, pad_w) && consts.len() >= C);
    let ring = &mut ring[..3 * C * PW];
    let x = &x[..n * h * w * C];
    for bi in 0..n {
        let b = if rev { n - 1 - bi } else { bi };
        if bi > 0 {
            ring.fill(zp as i16);
        }
        // Input row held by each slot (`isize::MIN`: none yet), and whether the slot is
        // all zero point (the ring starts so).
        let mut held = [isize::MIN; 3];
        let mut clean = [true; 3];
        for oi in 0..oh {
            let oy = if rev { oh - 1 - oi } else { oi };
            let iy0 = (oy * S) as isize - pad_h as isize;
            for r in 0..3 {
                let iy = iy0 + r as isize;
                let slot = iy.rem_euclid(3) as usize;
                if held[slot] == iy {
                    continue;
                }
                held[slot] = iy;
                if iy < 0 || iy as usize >= h {
                    if !clean[slot] {
                        for c in 0..C {
                            let base = (c * 3 + slot) * PW + pad_w;
                            ring[base..base + w].fill(zp as i16);
                        }
                        clean[slot] = true;
                    }
                } else {
                    let row = (b * h + iy as usize) * w;
                    gather::<B, C, PW>(&x[row * C..(row + w) * C], ring, w, slot, pad_w);
                    clean[slot] = false;
                }
            }
            let rot = iy0.rem_euclid(3) as usize;
            let ybase = ((b * oh + oy) * OW) * C;
            #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
            if lo == -128 && hi == 127 {
                let yp = y.span(ybase, OW * C);
                match rot {
                    0 => asm_row::<S, PW, C, OW, 0>(ring, consts, yp),
                    1 => asm_row::<S, PW, C, OW, 1>(ring, consts, yp),
                    _ => asm_row::<S, PW, C, OW, 2>(ring, consts, yp),
                }
                continue;
            }
            #[cfg(target_arch = "x86_64")]
            row_columns::<Y, S, OW>(ring, PW, C, consts, rot, &mut y, ybase, (lo, hi));
            #[cfg(not(target_arch = "x86_64"))]
            row_portable::<Y, S>(ring, PW, C, OW, consts, rot, &mut y, ybase, (lo, hi));
        }
    }
}

/// 64-bit words as the int16 values they hold (`4 * w.len()` of them): the generated code
/// keeps the ring of [`dw3x3`] as such words, so that filling it with the zero point takes
/// one store per four values.
#[allow(unsafe_code)]
#[inline(always)]
pub fn halves(w: &mut [u64]) -> &mut [i16] {
    // SAFETY: `u64`'s alignment is a multiple of `i16`'s (2), the `4 * len` values cover
    // exactly the words' bytes, every bit pattern is a valid `i16`, and the result borrows
    // `w` mutably for its whole life.
    unsafe { core::slice::from_raw_parts_mut(w.as_mut_ptr() as *mut i16, 4 * w.len()) }
}

/// Copies one input row (`w` pixels of `C` channels) into column `pad_w..` of `slot` of
/// every channel's plane.
#[inline(never)]
fn gather<B: Byte, const C: usize, const PW: usize>(src: &[B], ring: &mut [i16], w: usize, slot: usize, pad_w: usize) {
    let src = &src[..w * C];
    let ring = &mut ring[..3 * C * PW];
    assert!(pad_w + w <= PW);
    // Channels copied so far (all pixels of each).
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    if C >= 4 && 2 * C <= 4095 && 3 * (3 * PW * 2) <= 4095 && w >= 2 {
        // Whole groups of 4 channels; the last `C % 4` channels below.
        let sp = src.as_ptr() as *const u8;
        let dp = ring[slot * PW + pad_w..].as_mut_ptr();
        gather_asm::<C, PW>(sp, dp, w / 2, w % 2);
        done = C / 4 * 4;
    }
    for c in done..C {
        let base = (c * 3 + slot) * PW + pad_w;
        let dst = &mut ring[base..base + w];
        for (d, px) in dst.iter_mut().zip(src.chunks_exact(C)) {
            *d = px[c].byte() as i8 as i16;
        }
    }
}

/// `2 * pairs + odd` pixels of a row into the planes of channels `0..C / 4 * 4`, two pixels
/// of four channels per step: `LDR`, `SXTB16`, `PKHBT`/`PKHTB` give each channel's pair of
/// pixels as one word. `dp` is the slot's first column of channel 0. (A word read of a
/// pixel's four channels `4g..4g + 4` stays inside the pixel's `C` values.)
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[allow(unsafe_code)]
#[inline(never)]
fn gather_asm<const C: usize, const PW: usize>(sp: *const u8, dp: *mut i16, pairs: usize, odd: usize) {
    // SAFETY: the caller checked `src` holds `2 * pairs + odd` pixels of `C` channels at `sp`
    // and that `dp` + the `C` channels' planes (stride `3 * PW` int16) + those columns
    // stay inside the ring (`pad_w + w <= PW`). Unaligned word accesses are allowed on
    // Cortex-M4/M7 for LDR/STR.
    unsafe {
        core::arch::asm!(
            "str r3, [sp, #-8]!",
            "mov r8, {groups}",
            "3:",
            "mov r9, r0",
            "mov r10, r1",
            "mov r11, r2",
            "2:",
            "ldr r3, [r9]",
            "ldr r4, [r9, #{c}]",
            "add r9, r9, #{c2}",
            "sxtb16 r5, r3",
            "sxtb16 r12, r4",
            "pkhbt lr, r5, r12, lsl #16",
            "str lr, [r10]",
            "pkhtb lr, r12, r5, asr #16",
            "str lr, [r10, #{ps2}]",
            "sxtb16 r5, r3, ror #8",
            "sxtb16 r12, r4, ror #8",
            "pkhbt lr, r5, r12, lsl #16",
            "str lr, [r10, #{ps}]",
            "pkhtb lr, r12, r5, asr #16",
            "str lr, [r10, #{ps3}]",
            "add r10, r10, #4",
            "subs r11, r11, #1",
            "bne 2b",
            "ldr r3, [sp]",
            "cbz r3, 5f",
            "ldr r3, [r9]",
            "sxtb16 r5, r3",
            "sxtb16 r12, r3, ror #8",
            "strh r5, [r10]",
            "strh r12, [r10, #{ps}]",
            "lsr r5, r5, #16",
            "lsr r12, r12, #16",
            "strh r5, [r10, #{ps2}]",
            "strh r12, [r10, #{ps3}]",
            "5:",
            "add r0, r0, #4",
            "add r1, r1, #{ps4}",
            "subs r8, r8, #1",
            "bne 3b",
            "add sp, sp, #8",
            groups = const C / 4,
            c = const C,
            c2 = const 2 * C,
            ps = const 3 * PW * 2,
            ps2 = const 2 * 3 * PW * 2,
            ps3 = const 3 * 3 * PW * 2,
            ps4 = const 4 * 3 * PW * 2,
            inout("r0") sp => _, inout("r1") dp => _, inout("r2") pairs => _, inout("r3") odd => _, out("r4") _, out("r5") _, out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _, out("lr") _,
        );
    }
}

/// One step of two outputs of one channel (see `asm_row`).
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
macro_rules! dw_pair {
    () => {
        concat!(
            ".if {s} == 1\n",
            "ldr r12, [r11, #{o0}]\n",
            "smlad r9, r12, r0, r5\n",
            "ldr r12, [r11, #({o0} + 2)]\n",
            "smlad r10, r12, r0, r5\n",
            "ldr r12, [r11, #({o0} + 4)]\n",
            "smlabb r9, r12, r3, r9\n",
            "smlatb r10, r12, r3, r10\n",
            "ldr r12, [r11, #{o1}]\n",
            "smlad r9, r12, r1, r9\n",
            "ldr r12, [r11, #({o1} + 2)]\n",
            "smlad r10, r12, r1, r10\n",
            "ldr r12, [r11, #({o1} + 4)]\n",
            "smlabt r9, r12, r3, r9\n",
            "smlatt r10, r12, r3, r10\n",
            "ldr r12, [r11, #{o2}]\n",
            "smlad r9, r12, r2, r9\n",
            "ldr r12, [r11, #({o2} + 2)]\n",
            "smlad r10, r12, r2, r10\n",
            "ldr r12, [r11, #({o2} + 4)]\n",
            "smlabb r9, r12, r4, r9\n",
            "smlatb r10, r12, r4, r10\n",
            ".else\n",
            "ldr r12, [r11, #{o0}]\n",
            "smlad r9, r12, r0, r5\n",
            "ldr r12, [r11, #({o0} + 4)]\n",
            "smlad r10, r12, r0, r5\n",
            "smlabb r9, r12, r3, r9\n",
            "ldr r12, [r11, #({o0} + 8)]\n",
            "smlabb r10, r12, r3, r10\n",
            "ldr r12, [r11, #{o1}]\n",
            "smlad r9, r12, r1, r9\n",
            "ldr r12, [r11, #({o1} + 4)]\n",
            "smlad r10, r12, r1, r10\n",
            "smlabt r9, r12, r3, r9\n",
            "ldr r12, [r11, #({o1} + 8)]\n",
            "smlabt r10, r12, r3, r10\n",
            "ldr r12, [r11, #{o2}]\n",
            "smlad r9, r12, r2, r9\n",
            "ldr r12, [r11, #({o2} + 4)]\n",
            "smlad r10, r12, r2, r10\n",
            "smlabb r9, r12, r4, r9\n",
            "ldr r12, [r11, #({o2} + 8)]\n",
            "smlabb r10, r12, r4, r10\n",
            ".endif\n",
            // rq_fast: r6 = m, r7 = k, r8 = e
            "add r12, r7, r9, asr #31\n",
            "smmlar r9, r9, r6, r12\n",
            "asr r9, r9, r8\n",
            "ssat r9, #8, r9\n",
            "add r12, r7, r10, asr #31\n",
            "smmlar r10, r10, r6, r12\n",
            "asr r10, r10, r8\n",
            "ssat r10, #8, r10\n",
            "strb r9, [lr]\n",
            "strb r10, [lr, #{c}]\n",
            "add lr, lr, #{c2}\n",
            "add r11, r11, #{step}\n",
        )
    };
}

/// One output row, every channel, in one `asm!` block (see the module docs); kernel row
/// `r` is in slot `(R + r) % 3`. `yp` addresses the row's `OW * C` outputs.
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[allow(unsafe_code)]
#[inline(never)]
fn asm_row<const S: usize, const PW: usize, const C: usize, const OW: usize, const R: usize>(ring: &[i16], consts: &[[i32; 9]], yp: *mut u8) {
    assert!(ring.len() >= 3 * C * PW && consts.len() >= C && PW >= plane_width(0, OW, S, 0));
    assert!(3 * PW * 2 <= 4095 && (OW / 2) * 4 * S <= 4095 && 2 * C <= 4095);
    // SAFETY: reads `consts` (9 words per channel, C channels) and the planes (`3 * PW`
    // int16 per channel; every offset is inside a channel's planes because `PW` covers
    // the columns read, checked above); writes `OW * C` bytes at `yp`, which the caller
    // obtained from `Out8::span`. Uses the stack below `sp` (its frame, and r6/r7, which
    // Rust reserves, saved and restored).
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "sub sp, sp, #20",
            "stm sp, {{r0, r1, r2, r3}}",
            // Frame: 0 consts, 4 plane of the channel, 8 outputs of the channel,
            // 12 channels left, 16 end of the pairs.
            "4:",
            "ldr r12, [sp]",
            "ldm r12!, {{r0, r1, r2, r3, r4, r5, r6, r7, r8}}",
            "str r12, [sp]",
            "ldr r11, [sp, #4]",
            "add r12, r11, #{cs}",
            "str r12, [sp, #4]",
            "ldr lr, [sp, #8]",
            "add r12, lr, #1",
            "str r12, [sp, #8]",
            ".if {pairs} > 4",
            "add r12, r11, #{pend}",
            "str r12, [sp, #16]",
            "2:",
            dw_pair!(),
            "ldr r12, [sp, #16]",
            "cmp r11, r12",
            "bne 2b",
            ".else",
            ".rept {pairs}",
            dw_pair!(),
            ".endr",
            ".endif",
            ".if {single}",
            "ldr r12, [r11, #{o0}]",
            "smlad r9, r12, r0, r5",
            "ldr r12, [r11, #({o0} + 4)]",
            "smlabb r9, r12, r3, r9",
            "ldr r12, [r11, #{o1}]",
            "smlad r9, r12, r1, r9",
            "ldr r12, [r11, #({o1} + 4)]",
            "smlabt r9, r12, r3, r9",
            "ldr r12, [r11, #{o2}]",
            "smlad r9, r12, r2, r9",
            "ldr r12, [r11, #({o2} + 4)]",
            "smlabb r9, r12, r4, r9",
            "add r12, r7, r9, asr #31",
            "smmlar r9, r9, r6, r12",
            "asr r9, r9, r8",
            "ssat r9, #8, r9",
            "strb r9, [lr]",
            ".endif",
            "ldr r12, [sp, #12]",
            "subs r12, r12, #1",
            "str r12, [sp, #12]",
            "bne 4b",
            "add sp, sp, #20",
            "pop {{r6, r7}}",
            s = const S,
            cs = const 3 * PW * 2,
            pairs = const OW / 2,
            pend = const (OW / 2) * 4 * S,
            single = const OW % 2,
            o0 = const (R % 3) * PW * 2,
            o1 = const ((R + 1) % 3) * PW * 2,
            o2 = const ((R + 2) % 3) * PW * 2,
            c = const C,
            c2 = const 2 * C,
            step = const 4 * S,
            inout("r0") consts.as_ptr() => _,
            inout("r1") ring.as_ptr() => _,
            inout("r2") yp => _,
            inout("r3") C => _,
            out("r4") _, out("r5") _, out("r8") _, out("r9") _, out("r10") _, out("r11") _, out("r12") _, out("lr") _,
        );
    }
}

/// Position `i` of `npos` in the order asked for (`rev`: backwards), with its batch, the input
/// row and column of its window's first tap, and whether the whole window lies inside the
/// input.
#[inline(always)]
fn window<G: crate::mac::ConvGeom>(npos: usize, i: usize, rev: bool) -> (usize, usize, isize, isize, bool) {
    let pos = if rev { npos - 1 - i } else { i };
    let (b, oy, ox) = (pos / (G::OH * G::OW), pos / G::OW % G::OH, pos % G::OW);
    let iy0 = (oy * G::SH) as isize - G::PAD_H as isize;
    let ix0 = (ox * G::SW) as isize - G::PAD_W as isize;
    let inside = iy0 >= 0 && ix0 >= 0 && iy0 as usize + (G::KH - 1) * G::DH < G::H && ix0 as usize + (G::KW - 1) * G::DW < G::W;
    (pos, b, iy0, ix0, inside)
}

/// A depthwise convolution with depth multiplier 1 and any window, for [`dw_channels`].
pub struct DwAny<'a> {
    /// Batches (the rest of the geometry is the kernel's `ConvGeom`).
    pub n: usize,
    /// Weights `[kh][kw][C]` (the model's layout), int8.
    pub w: &'a [u8],
    /// Accumulator start per channel: the bias with the input offset folded in
    /// (`bias + in_off * sum(w)`).
    pub bias: &'a [i32],
    /// Per group of 8 channels, the three constants of each channel (`[c0..c8]` each):
    /// `(m, k, e)` of `rq_fast` (applied to the doubled accumulator) when `FAST`, else
    /// `(multiplier, shift, output zero point)` of `rq_exact`.
    pub rq: &'a [[[i32; 8]; 3]],
    /// The input zero point (what a tap outside the input reads).
    pub zp: i8,
    pub lo: i32,
    pub hi: i32,
}

/// Depthwise convolution over channels: per output position, the `C` accumulators as one
/// array, each tap a multiply-add across the channels (contiguous in NHWC, so the compiler
/// vectorizes it on the host), taps outside the input reading the zero point (which adds
/// `(zp + in_off) * w = 0` to the folded bias, as TFLM's skipped tap adds nothing). A
/// position's inputs are all read before its outputs are written; with `rev` the positions
/// run backwards.
pub fn dw_channels<B: Byte, Y: Out8, G: crate::mac::ConvGeom, const C: usize, const K: usize, const FAST: bool>(l: &DwAny, x: &[B], mut y: Y, rev: bool) {
    assert!(G::C == C && K > 0 && C % K == 0 && (K % 8 == 0 || K == C));
    let (n, h, w, oh, ow, kh, kw) = (l.n, G::H, G::W, G::OH, G::OW, G::KH, G::KW);
    let (dh, dw) = (G::DH, G::DW);
    let x = &x[..n * h * w * C];
    let wt = &l.w[..kh * kw * C];
    let bias = &l.bias[..C];
    let rq = &l.rq[..C.div_ceil(8)];
    let zp = l.zp as i32;
    let npos = n * oh * ow;
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    if C % 8 == 0 && kh * kw <= MAX_TAPS && (kh * kw).div_ceil(2) * C <= MAX_PAIR_WORDS {
        return dw_tap_pairs::<B, Y, G, C, FAST>(l, x, y, rev);
    }
    let mut out = [0i8; C];
    for i in 0..npos {
        let (pos, b, iy0, ix0, inside) = window::<G>(npos, i, rev);
        // Blocks of `K` channels, their accumulators held in registers over all taps.
        for c0 in (0..C).step_by(K) {
            let mut acc: [i32; K] = bias[c0..c0 + K].try_into().expect("K biases");
            for ky in 0..kh {
                let iy = iy0 + (ky * dh) as isize;
                for kx in 0..kw {
                    let ix = ix0 + (kx * dw) as isize;
                    let ws: &[u8; K] = wt[(ky * kw + kx) * C + c0..][..K].try_into().expect("K weights");
                    if !inside && (iy < 0 || iy as usize >= h || ix < 0 || ix as usize >= w) {
                        for c in 0..K {
                            acc[c] = acc[c].wrapping_add(zp * ws[c] as i8 as i32);
                        }
                    } else {
                        let xs: &[B; K] = x[((b * h + iy as usize) * w + ix as usize) * C + c0..][..K].try_into().expect("K inputs");
                        for c in 0..K {
                            acc[c] = acc[c].wrapping_add(xs[c].byte() as i8 as i32 * ws[c] as i8 as i32);
                        }
                    }
                }
            }
            // `c0` is a multiple of 8 (`K` is, or `K == C` and `c0 == 0`).
            crate::mac::rq_block::<FAST>(&acc, &rq[c0 / 8..], l.lo, l.hi, &mut out[c0..c0 + K]);
        }
        crate::mac::put_bytes(&mut y, pos * C, &out);
    }
}

/// Taps and int16 weight pair words (`ceil(taps / 2) * C`) [`dw_tap_pairs`] handles.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
const MAX_TAPS: usize = 64;
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
const MAX_PAIR_WORDS: usize = 2560;

/// [`dw_channels`] on x86-64 with AVX2 (`C` a multiple of 8): the weights of taps `2p` and
/// `2p + 1` of each channel as one int16 pair word (built once per call; the second half zero
/// for a last odd tap), and per position and 8 channels, per pair of taps, the two taps' 8
/// input bytes interleaved (`PUNPCKLBW`), sign-extended (`PMOVSXBW`) and multiplied by the
/// weight pairs with one `VPMADDWD`: two taps of 8 channels per multiply where the plain
/// loop needs one `VPMULLD` per tap. Taps outside the input read the zero point, as in
/// [`dw_channels`]; the requantization and the write order are the same.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[allow(unsafe_code)]
fn dw_tap_pairs<B: Byte, Y: Out8, G: crate::mac::ConvGeom, const C: usize, const FAST: bool>(l: &DwAny, x: &[B], mut y: Y, rev: bool) {
    use core::arch::x86_64::*;
    use core::mem::MaybeUninit;
    let (n, h, w, oh, ow, kh, kw) = (l.n, G::H, G::W, G::OH, G::OW, G::KH, G::KW);
    let (dh, dw) = (G::DH, G::DW);
    let taps = kh * kw;
    let pairs = taps.div_ceil(2);
    assert!(C % 8 == 0 && taps <= MAX_TAPS && pairs * C <= MAX_PAIR_WORDS);
    let x = &x[..n * h * w * C];
    let wt = &l.w[..taps * C];
    let bias = &l.bias[..C];
    let rq = &l.rq[..C / 8];
    let mut buf = [MaybeUninit::<u32>::uninit(); MAX_PAIR_WORDS];
    for p in 0..pairs {
        for c in 0..C {
            let w0 = wt[2 * p * C + c] as i8 as i16 as u16 as u32;
            let w1 = if 2 * p + 1 < taps { wt[(2 * p + 1) * C + c] as i8 as i16 as u16 as u32 } else { 0 };
            buf[p * C + c] = MaybeUninit::new(w0 | (w1 << 16));
        }
    }
    // SAFETY: the first `pairs * C` words were all written just above.
    let wp: &[u32] = unsafe { core::slice::from_raw_parts(buf.as_ptr() as *const u32, pairs * C) };
    const OUTSIDE: usize = usize::MAX;
    // Per tap, its input's offset from the window's first pixel, and per position (only those
    // whose window is clipped use it) the tap's input offset or `OUTSIDE`.
    let mut rel = [0usize; MAX_TAPS];
    for ky in 0..kh {
        for kx in 0..kw {
            rel[ky * kw + kx] = (ky * dh * w + kx * dw) * C;
        }
    }
    let mut off = [OUTSIDE; MAX_TAPS];
    let mut out = [0i8; C];
    /// One position's `C` outputs from the input offset of each tap (`addr`); with `CLIPPED`,
    /// `OUTSIDE` for a tap reading the zero point.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn position<const C: usize, const FAST: bool, const CLIPPED: bool>(l: &DwAny, xp: *const u8, wp: &[u32], bias: &[i32], rq: &[[[i32; 8]; 3]], rq16: &[[[i32; 16]; 3]], taps: usize, addr: impl Fn(usize) -> usize, out: &mut [i8; C]) {
        let pairs = taps.div_ceil(2);
        // SAFETY: the caller's `addr` gives, per tap, the start of an input pixel's `C` bytes
        // inside the input (or `OUTSIDE`), so each 8- or 16-byte load at `+ c0` (`c0 + 8 <=
        // C`, `c0 + 16 <= C`) is inside it; each weight load reads 8 or 16 words at `p * C +
        // c0` inside `wp` (`pairs * C` words, checked by the slice below); the bias loads
        // read inside `bias` (`C` values); AVX2 (AVX-512) is enabled by the cfg.
        unsafe {
            let wp = &wp[..pairs * C];
            let bias = &bias[..C];
            let zpv = _mm_set1_epi8(l.zp);
            #[allow(unused_mut, unused_assignments)]
            let mut first = 0;
            // With AVX-512: 16 channels at a time (the two taps' 16 bytes interleaved,
            // sign-extended to 32 int16 values, one `VPMADDWD` on 16 lanes), the
            // requantization on 16 lanes with the constants of `rq16`.
            #[cfg(target_feature = "avx512bw")]
            {
                let ld16 = |o: usize, c0: usize| if CLIPPED && o == OUTSIDE { zpv } else { _mm_loadu_si128(xp.add(o + c0) as *const __m128i) };
                let rq16 = &rq16[..C / 16];
                for c0 in (0..C / 16 * 16).step_by(16) {
                    let mut acc = _mm512_loadu_si512(bias.as_ptr().add(c0) as *const __m512i);
                    for p in 0..pairs {
                        let o0 = addr(2 * p);
                        let o1 = if 2 * p + 1 < taps { addr(2 * p + 1) } else { o0 };
                        let (a, b) = (ld16(o0, c0), ld16(o1, c0));
                        let ab = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(_mm_unpacklo_epi8(a, b)), _mm_unpackhi_epi8(a, b));
                        let wv = _mm512_loadu_si512(wp.as_ptr().add(p * C + c0) as *const __m512i);
                        #[cfg(target_feature = "avx512vnni")]
                        {
                            acc = _mm512_dpwssd_epi32(acc, _mm512_cvtepi8_epi16(ab), wv);
                        }
                        #[cfg(not(target_feature = "avx512vnni"))]
                        {
                            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_cvtepi8_epi16(ab), wv));
                        }
                    }
                    _mm_storeu_si128(out[c0..c0 + 16].as_mut_ptr() as *mut __m128i, crate::mac::x86::rq16::<FAST>(acc, &rq16[c0 / 16], l.lo, l.hi));
                }
                first = C / 16 * 16;
            }
            let _ = rq16;
            let ld = |o: usize, c0: usize| if CLIPPED && o == OUTSIDE { zpv } else { _mm_loadl_epi64(xp.add(o + c0) as *const __m128i) };
            for c0 in (first..C).step_by(8) {
                let mut acc = _mm256_loadu_si256(bias.as_ptr().add(c0) as *const __m256i);
                for p in 0..pairs {
                    let o0 = addr(2 * p);
                    let o1 = if 2 * p + 1 < taps { addr(2 * p + 1) } else { o0 };
                    let xv = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(ld(o0, c0), ld(o1, c0)));
                    let wv = _mm256_loadu_si256(wp.as_ptr().add(p * C + c0) as *const __m256i);
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(xv, wv));
                }
                let acc = if FAST { _mm256_add_epi32(acc, acc) } else { acc };
                out[c0..c0 + 8].copy_from_slice(&crate::mac::x86::rq8::<FAST>(acc, &rq[c0 / 8], l.lo, l.hi));
            }
        }
    }
    // The requantization constants of 16 channels at a time (AVX-512).
    #[cfg(target_feature = "avx512bw")]
    let mut rqbuf = [const { MaybeUninit::<[[i32; 16]; 3]>::uninit() }; MAX_PAIR_WORDS / 16];
    #[cfg(target_feature = "avx512bw")]
    let rq16: &[[[i32; 16]; 3]] = {
        for (g, slot) in rqbuf.iter_mut().enumerate().take(C / 16) {
            slot.write(core::array::from_fn(|j| core::array::from_fn(|c| rq[(16 * g + c) / 8][j][c % 8])));
        }
        // SAFETY: the first `C / 16` elements were written just above.
        unsafe { core::slice::from_raw_parts(rqbuf.as_ptr() as *const [[i32; 16]; 3], C / 16) }
    };
    #[cfg(not(target_feature = "avx512bw"))]
    let rq16: &[[[i32; 16]; 3]] = &[];
    let xp = x.as_ptr() as *const u8;
    // With AVX-512 and 8 channels at stride 1: two neighbouring positions of a row at a
    // time, one in each half of the 16 lanes (each tap's 16 bytes are the two positions'
    // 8 channels; the weight pairs, accumulator starts and requantization constants
    // repeated in both halves), their 16 outputs stored together.
    #[cfg(target_feature = "avx512bw")]
    let twin = C == 8 && G::SW == 1 && pairs <= MAX_PAIR_WORDS / 16;
    #[cfg(target_feature = "avx512bw")]
    let mut w2buf = [MaybeUninit::<u32>::uninit(); MAX_PAIR_WORDS];
    #[cfg(target_feature = "avx512bw")]
    let (w2, b2, rq2): (&[u32], [i32; 16], [[i32; 16]; 3]) = if twin {
        for (j, slot) in w2buf.iter_mut().enumerate().take(16 * pairs) {
            slot.write(wp[j / 16 * C + j % 8]);
        }
        // SAFETY: the first `16 * pairs` words were written just above.
        let w2 = unsafe { core::slice::from_raw_parts(w2buf.as_ptr() as *const u32, 16 * pairs) };
        (w2, core::array::from_fn(|c| bias[c % 8]), core::array::from_fn(|j| core::array::from_fn(|c| rq[0][j][c % 8])))
    } else {
        (&[], [0; 16], [[0; 16]; 3])
    };
    // Output rows one after the other, the columns of each in order (both backwards with
    // `rev`): the same order as position by position, without dividing positions back into
    // rows and columns.
    let nrows = n * oh;
    for ri in 0..nrows {
        let r = if rev { nrows - 1 - ri } else { ri };
        let b = r / oh;
        let iy0 = ((r % oh) * G::SH) as isize - G::PAD_H as isize;
        let rows_in = iy0 >= 0 && iy0 as usize + (kh - 1) * dh < h;
        let col = |j: usize| {
            let ox = if rev { ow - 1 - j } else { j };
            let ix0 = (ox * G::SW) as isize - G::PAD_W as isize;
            (ox, ix0, rows_in && ix0 >= 0 && ix0 as usize + (kw - 1) * dw < w)
        };
        let mut j = 0;
        while j < ow {
            let (ox, ix0, inside) = col(j);
            let pos = r * ow + ox;
            j += 1;
            #[cfg(target_feature = "avx512bw")]
            if twin && inside && j < ow {
                let (ox2, ix2, inside2) = col(j);
                if inside2 {
                    j += 1;
                    // The first of the two positions (the other is one column to its right).
                    let (first, fx) = if ox < ox2 { (pos, ix0) } else { (r * ow + ox2, ix2) };
                    let base = ((b * h + iy0 as usize) * w + fx as usize) * C;
                    let mut out2 = [0i8; 16];
                    // The pair as one position of 16 channels: each tap's 16 bytes from
                    // `base + rel[t]` are the first position's 8 channels, then its right
                    // neighbour's (both windows lie inside the input).
                    position::<16, FAST, false>(l, xp, w2, &b2, rq, &[rq2], taps, |t| base + rel[t], &mut out2);
                    crate::mac::put_bytes(&mut y, first * C, &out2);
                    continue;
                }
            }
            if inside {
                let base = ((b * h + iy0 as usize) * w + ix0 as usize) * C;
                position::<C, FAST, false>(l, xp, wp, bias, rq, rq16, taps, |t| base + rel[t], &mut out);
            } else {
                for ky in 0..kh {
                    let iy = iy0 + (ky * dh) as isize;
                    for kx in 0..kw {
                        let ix = ix0 + (kx * dw) as isize;
                        off[ky * kw + kx] = if iy < 0 || iy as usize >= h || ix < 0 || ix as usize >= w { OUTSIDE } else { ((b * h + iy as usize) * w + ix as usize) * C };
                    }
                }
                position::<C, FAST, true>(l, xp, wp, bias, rq, rq16, taps, |t| off[t], &mut out);
            }
            crate::mac::put_bytes(&mut y, pos * C, &out);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::mac::tests::{rng, rq_consts};
    use std::vec::Vec;

    struct G5;
    impl crate::mac::ConvGeom for G5 {
        const H: usize = 7;
        const W: usize = 6;
        const C: usize = 24;
        const OH: usize = 4;
        const OW: usize = 3;
        const KH: usize = 3;
        const KW: usize = 4;
        const SH: usize = 2;
        const SW: usize = 2;
        const DH: usize = 1;
        const DW: usize = 1;
        const PAD_H: usize = 1;
        const PAD_W: usize = 1;
    }

    /// 8 channels at stride 1 (the AVX-512 form pairing neighbouring positions), 3x3
    /// window, padding 1 on every side.
    type G8 = crate::mac::tests::Same3<5, 7, 8>;

    /// `dw_channels` over geometry `G` (2 batches) equals TFLM's clipped window (taps
    /// outside skipped) with the unfolded bias, both requantizations, forwards and backwards;
    /// `K` is the channel block of the exact requantization's run.
    fn check<G: crate::mac::ConvGeom, const C: usize, const K: usize>(seed: u64) {
        let (n, h, w, oh, ow, kh, kw) = (2usize, G::H, G::W, G::OH, G::OW, G::KH, G::KW);
        let mut next = rng(seed);
        let zp: i8 = -7;
        let x: Vec<i8> = (0..n * h * w * C).map(|_| next() as i8).collect();
        let wt: Vec<u8> = (0..kh * kw * C).map(|_| next() as u8).collect();
        let bias: Vec<i32> = (0..C).map(|_| (next() % 20001) as i32 - 10000).collect();
        let folded: Vec<i32> = (0..C).map(|c| bias[c].wrapping_add(-(zp as i32) * (0..kh * kw).map(|t| wt[t * C + c] as i8 as i32).sum::<i32>())).collect();
        for fast in [true, false] {
            for rev in [false, true] {
                let rq = rq_consts(&mut next, C.div_ceil(8), fast);
                let l = DwAny { n, w: &wt, bias: &folded, rq: &rq, zp, lo: -128, hi: 120 };
                let mut y = std::vec![0i8; n * oh * ow * C];
                if fast {
                    dw_channels::<i8, _, G, C, 8, true>(&l, &x, &mut y[..], rev);
                } else {
                    dw_channels::<i8, _, G, C, K, false>(&l, &x, &mut y[..], rev);
                }
                for b in 0..n {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            for c in 0..C {
                                let mut acc = bias[c];
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        let (iy, ix) = ((oy * G::SH + ky) as isize - G::PAD_H as isize, (ox * G::SW + kx) as isize - G::PAD_W as isize);
                                        if iy >= 0 && (iy as usize) < h && ix >= 0 && (ix as usize) < w {
                                            let xv = x[((b * h + iy as usize) * w + ix as usize) * C + c] as i32 - zp as i32;
                                            acc = acc.wrapping_add(xv * wt[(ky * kw + kx) * C + c] as i8 as i32);
                                        }
                                    }
                                }
                                let r = [rq[c / 8][0][c % 8], rq[c / 8][1][c % 8], rq[c / 8][2][c % 8]];
                                let want = if fast { crate::mac::rq_fast(acc.wrapping_mul(2), &r, -128, 120) } else { crate::mac::rq_exact(acc, &r, -128, 120) };
                                assert_eq!(y[((b * oh + oy) * ow + ox) * C + c], want, "fast {fast} rev {rev} at {b} {oy} {ox} {c}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// `dw_channels` (vector requantization on x86-64 with AVX2 when built with
    /// `-C target-cpu=native`) equals TFLM's clipped window: 24 channels, stride 2, a 3x4
    /// window; and 8 channels at stride 1 (with AVX-512, pairs of neighbouring positions).
    #[test]
    fn dw_channels_matches_clipped_windows() {
        check::<G5, 24, 24>(0xd00d_feed_0042_0007);
        check::<G8, 8, 8>(0xd00d_feed_0042_0008);
    }
}
