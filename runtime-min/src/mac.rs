//! Fast int8 matrix kernels (the `speed` strategy): convolutions and fully connected layers
//! as a matrix product of int8 rows (one per output position) with weights the compiler
//! packed at compile time, bit-exact with TFLM's reference kernels.
//!
//! Data layout, shared by every target:
//! * A row of `K` int8 inputs is expanded to `steps` 32-bit words of two int16 values each
//!   (`steps * 2 >= K`, `steps` a multiple of 4, the rest zero). Inputs `4j..4j+4` give the
//!   words `2j` = (x[4j], x[4j+2]) and `2j+1` = (x[4j+1], x[4j+3]): what `SXTB16` and
//!   `SXTB16 ..., ROR #8` make of one little-endian word of four int8 values.
//! * Weights are packed by the compiler in the same pairs, as int16 (sign-extended, and
//!   doubled when the `fast` requantization applies), tile by tile: for a tile of `T`
//!   output channels, `[step][T]` words, tiles one after the other.
//! * `bias[c]` is the accumulator's start: the bias with the input offset folded in
//!   (`bias + input_offset * sum(w)`; inputs outside a convolution's input are the input
//!   zero point, so they add nothing, as in TFLM where they are skipped), doubled with the
//!   weights.
//!
//! On Cortex-M4/M7 (`target_arch = "arm"` with the `dsp` feature) the multiply-accumulate
//! loops are `SMLAD` in one `asm!` block each, registers allocated by hand: a tile of 4
//! channels x 2 positions (11 instructions per 16 MACs) or 8 channels x 1 position (12 per
//! 16). Elsewhere the same arithmetic in plain Rust (which LLVM vectorizes on hosts).
//!
//! Requantization (`rq_fast`), exact when the compiler checked its conditions: with the
//! accumulator doubled (`a2 = 2 * acc`, `|acc| < 2^30`), TFLM's
//! `SaturatingRoundingDoublingHighMul(acc, m)` is `(a2 * m + 2^31) >> 32` (gemmlowp's
//! truncating division of `ab + nudge` by `2^31` equals `floor((ab + 2^30) / 2^31)` for
//! either sign), i.e. `SMMULR`; adding `k = 2^(e-1) + (zp << e)` minus one for a negative
//! accumulator inside the same instruction (`SMMLAR`) and shifting right by `e >= 1` gives
//! `RoundingDivideByPOT(.., e) + zp` (the sign of the accumulator stands in for the sign
//! of the product: they differ only when the product rounds to 0, where the result is 0
//! either way).

use core::cell::Cell;

/// A value aligned to 4 bytes (packed weights are read as 32-bit words).
#[repr(C, align(4))]
pub struct Align4<T: ?Sized>(pub T);

/// Where a kernel writes its int8 outputs: an arena slice, a caller's array, or shared
/// cells of the arena (an output overlapping its input).
pub trait Out8 {
    fn put(&mut self, i: usize, v: i8);
    /// The address of elements `i..i + n` (checked to be in bounds), for the `asm!`
    /// kernels to write through.
    fn span(&mut self, i: usize, n: usize) -> *mut u8;
}
impl Out8 for &mut [u8] {
    #[inline(always)]
    fn put(&mut self, i: usize, v: i8) {
        self[i] = v as u8;
    }
    #[inline(always)]
    fn span(&mut self, i: usize, n: usize) -> *mut u8 {
        self[i..i + n].as_mut_ptr()
    }
}
impl Out8 for &mut [i8] {
    #[inline(always)]
    fn put(&mut self, i: usize, v: i8) {
        self[i] = v;
    }
    #[inline(always)]
    fn span(&mut self, i: usize, n: usize) -> *mut u8 {
        self[i..i + n].as_mut_ptr() as *mut u8
    }
}
impl Out8 for &[Cell<u8>] {
    #[inline(always)]
    fn put(&mut self, i: usize, v: i8) {
        self[i].set(v as u8);
    }
    #[inline(always)]
    fn span(&mut self, i: usize, n: usize) -> *mut u8 {
        // `Cell` may be written through a shared reference; `as_ptr` gives that access.
        self[i..i + n].as_ptr() as *mut u8
    }
}

/// An int8 input element: an arena byte, a caller's `i8`, or a shared cell of the arena.
pub trait Byte {
    fn byte(&self) -> u8;
}
impl Byte for u8 {
    #[inline(always)]
    fn byte(&self) -> u8 {
        *self
    }
}
impl Byte for i8 {
    #[inline(always)]
    fn byte(&self) -> u8 {
        *self as u8
    }
}
impl Byte for Cell<u8> {
    #[inline(always)]
    fn byte(&self) -> u8 {
        self.get()
    }
}

/// Four elements as a little-endian word.
#[inline(always)]
fn word4<B: Byte>(c: &[B]) -> u32 {
    u32::from_le_bytes([c[0].byte(), c[1].byte(), c[2].byte(), c[3].byte()])
}

/// The two pair words of one little-endian word of four int8 values:
/// `SXTB16 w` and `SXTB16 w, ROR #8`.
#[inline(always)]
pub fn sxtb16x2(w: u32) -> (u32, u32) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    {
        let (a, b): (u32, u32);
        // SAFETY: register-only arithmetic.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::asm!("sxtb16 {a}, {w}", "sxtb16 {b}, {w}, ror #8", w = in(reg) w, a = out(reg) a, b = out(reg) b, options(pure, nomem, nostack, preserves_flags));
        }
        (a, b)
    }
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    {
        let b = w.to_le_bytes();
        pairs4(b[0] as i8, b[1] as i8, b[2] as i8, b[3] as i8)
    }
}

/// The two pair words of four int8 values (see the module docs).
#[inline(always)]
pub fn pairs4(b0: i8, b1: i8, b2: i8, b3: i8) -> (u32, u32) {
    let p = |lo: i8, hi: i8| (lo as i16 as u16 as u32) | ((hi as i16 as u16 as u32) << 16);
    (p(b0, b2), p(b1, b3))
}

/// A source of input rows.
pub trait Rows {
    /// Writes row `p` as pair words at `out[s * S]` for the steps the row covers
    /// (`ceil(K / 4) * 2`); words past them are left as they are (zero).
    fn expand<const S: usize>(&mut self, p: usize, out: &mut [u32]);
}

/// Expands the int8 values of `x` (of any length) into pair words at `out[s * S]`.
#[inline(always)]
fn expand_from<B: Byte, const S: usize>(x: &[B], out: &mut [u32]) {
    let mut chunks = x.chunks_exact(4);
    let mut outs = out.chunks_exact_mut(2 * S);
    for (c, o) in (&mut chunks).zip(&mut outs) {
        let (a, b) = sxtb16x2(word4(c));
        o[0] = a;
        o[S] = b;
    }
    let r = chunks.remainder();
    if !r.is_empty() {
        let g = |t: usize| if t < r.len() { r[t].byte() as i8 } else { 0 };
        let (a, b) = pairs4(g(0), g(1), g(2), g(3));
        let j = x.len() / 4 * 2 * S;
        out[j] = a;
        out[j + S] = b;
    }
}

/// Rows stored one after the other: row `p` is `x[p * k..(p + 1) * k]` (a 1x1
/// convolution with stride 1, a fully connected layer).
pub struct Dense<'a, B> {
    pub x: &'a [B],
    pub k: usize,
}

impl<B: Byte> Rows for Dense<'_, B> {
    #[inline(always)]
    fn expand<const S: usize>(&mut self, p: usize, out: &mut [u32]) {
        expand_from::<B, S>(&self.x[p * self.k..(p + 1) * self.k], out);
    }
}

/// The windows of a convolution over an NHWC input, gathered into `buf` (`kh * kw * c`
/// values in the filter's `[ky][kx][ic]` order; taps outside the input are the input zero
/// point `zp`).
pub struct Im2col<'a, B> {
    pub x: &'a [B],
    /// `[h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, pad_h, pad_w]`.
    pub g: [usize; 13],
    pub zp: i8,
    pub buf: &'a mut [i8],
}

impl<B: Byte> Rows for Im2col<'_, B> {
    fn expand<const S: usize>(&mut self, p: usize, out: &mut [u32]) {
        let [h, w, c, oh, ow, kh, kw, sh, sw, dh, dw, pad_h, pad_w] = self.g;
        let b = p / (oh * ow);
        let oy = p / ow % oh;
        let ox = p % ow;
        let iy0 = (oy * sh) as isize - pad_h as isize;
        let ix0 = (ox * sw) as isize - pad_w as isize;
        let span = kw * c;
        let inside_x = ix0 >= 0 && ix0 as usize + (kw - 1) * dw < w;
        let buf = &mut self.buf[..kh * span];
        for (ky, dst) in buf.chunks_exact_mut(span).enumerate() {
            let iy = iy0 + (ky * dh) as isize;
            if iy < 0 || iy as usize >= h {
                dst.fill(self.zp);
                continue;
            }
            let row = (b * h + iy as usize) * w;
            if inside_x && dw == 1 {
                // The window's row is one contiguous run of the input.
                let s = (row + ix0 as usize) * c;
                for (d, v) in dst.iter_mut().zip(&self.x[s..s + span]) {
                    *d = v.byte() as i8;
                }
                continue;
            }
            for (kx, d) in dst.chunks_exact_mut(c).enumerate() {
                let ix = ix0 + (kx * dw) as isize;
                if ix < 0 || ix as usize >= w {
                    d.fill(self.zp);
                } else {
                    let s = (row + ix as usize) * c;
                    for (d, v) in d.iter_mut().zip(&self.x[s..s + c]) {
                        *d = v.byte() as i8;
                    }
                }
            }
        }
        expand_from::<i8, S>(buf, out);
    }
}

/// One layer's packed constants.
pub struct Gemm<'a> {
    /// Pair words per row (a multiple of 4).
    pub steps: usize,
    /// Output channels (the output's innermost dimension).
    pub cout: usize,
    /// Packed weights, tile after tile (4-byte aligned).
    pub w: &'a [u8],
    /// Accumulator start per channel (padded to whole tiles).
    pub bias: &'a [i32],
    /// Requantization per channel: `(m, k, e)` for `rq_fast`, `(m, shift, zp)` otherwise.
    pub rq: &'a [[i32; 3]],
    /// Activation range (output zero point included).
    pub lo: i32,
    pub hi: i32,
}

/// Requantization with the doubled accumulator (see the module docs).
#[inline(always)]
pub fn rq_fast(a2: i32, r: &[i32; 3], lo: i32, hi: i32) -> i8 {
    let s = r[1].wrapping_add(a2 >> 31);
    let v = ((a2 as i64 * r[0] as i64 + ((s as i64) << 32) + 0x8000_0000) >> 32) as i32;
    crate::q::clamp(v >> (r[2] & 31), lo, hi) as i8
}

/// TFLite's `MultiplyByQuantizedMultiplier` plus the zero point, then the clamp.
#[inline(always)]
pub fn rq_exact(acc: i32, r: &[i32; 3], lo: i32, hi: i32) -> i8 {
    crate::q::clamp(crate::q::mbqm(acc, r[0], r[1]).wrapping_add(r[2]), lo, hi) as i8
}

#[inline(always)]
fn rq<const FAST: bool>(acc: i32, r: &[i32; 3], lo: i32, hi: i32) -> i8 {
    if FAST {
        rq_fast(acc, r, lo, hi)
    } else {
        rq_exact(acc, r, lo, hi)
    }
}

#[inline(always)]
fn word(w: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]])
}

/// `SMLAD`: `acc + lo(a) * lo(b) + hi(a) * hi(b)` (wrapping).
#[inline(always)]
pub fn smlad(acc: i32, a: u32, b: u32) -> i32 {
    let p = (a as i16 as i32) * (b as i16 as i32);
    let q = ((a >> 16) as i16 as i32) * ((b >> 16) as i16 as i32);
    acc.wrapping_add(p).wrapping_add(q)
}

/// The 4 channels x 2 positions multiply-accumulate: `x` holds `steps` pairs of words
/// (position 0, position 1), `w` at least `steps * 4` words; `acc[2c + p]`.
#[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
#[inline(always)]
fn mac_4x2(x: &[u32], w: &[u8], acc: &mut [i32; 8]) {
    let steps = x.len() / 2;
    let w = &w[..steps * 16];
    for s in 0..steps {
        let (x0, x1) = (x[2 * s], x[2 * s + 1]);
        for c in 0..4 {
            let wv = word(w, 4 * s + c);
            acc[2 * c] = smlad(acc[2 * c], x0, wv);
            acc[2 * c + 1] = smlad(acc[2 * c + 1], x1, wv);
        }
    }
}

/// The 8 channels x 1 position multiply-accumulate: `x` holds `steps` words, `w` at least
/// `steps * 8` words.
#[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
#[inline(always)]
fn mac_8x1(x: &[u32], w: &[u8], acc: &mut [i32; 8]) {
    let steps = x.len();
    let w = &w[..steps * 32];
    for s in 0..steps {
        let xv = x[s];
        for c in 0..8 {
            acc[c] = smlad(acc[c], xv, word(w, 8 * s + c));
        }
    }
}

#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[allow(unsafe_code)]
#[inline(always)]
fn mac_4x2(x: &[u32], w: &[u8], acc: &mut [i32; 8]) {
    let iters = x.len() / 8;
    assert!(iters > 0 && x.len() == iters * 8 && w.len() >= iters * 64 && (w.as_ptr() as usize) % 4 == 0);
    let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7] = *acc;
    // SAFETY: reads `iters * 8` words from `x` and `iters * 16` words from `w`, both in
    // bounds and word aligned (checked above); writes only registers and the stack below
    // `sp` (the loop counter and r6/r7, which Rust reserves and which are restored).
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "str r12, [sp, #-4]!",
            "2:",
            ".rept 4",
            "ldm r10!, {{r12, lr}}",
            "ldm r11!, {{r6, r7}}",
            "smlad r0, r12, r6, r0",
            "smlad r1, lr, r6, r1",
            "smlad r2, r12, r7, r2",
            "smlad r3, lr, r7, r3",
            "ldm r11!, {{r6, r7}}",
            "smlad r4, r12, r6, r4",
            "smlad r5, lr, r6, r5",
            "smlad r8, r12, r7, r8",
            "smlad r9, lr, r7, r9",
            ".endr",
            "ldr r12, [sp]",
            "subs r12, r12, #1",
            "str r12, [sp]",
            "bne 2b",
            "add sp, sp, #4",
            "pop {{r6, r7}}",
            inout("r0") a0, inout("r1") a1, inout("r2") a2, inout("r3") a3,
            inout("r4") a4, inout("r5") a5, inout("r8") a6, inout("r9") a7,
            inout("r10") x.as_ptr() => _, inout("r11") w.as_ptr() => _,
            inout("r12") iters => _, out("lr") _,
        );
    }
    *acc = [a0, a1, a2, a3, a4, a5, a6, a7];
}

#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[allow(unsafe_code)]
#[inline(always)]
fn mac_8x1(x: &[u32], w: &[u8], acc: &mut [i32; 8]) {
    let iters = x.len() / 4;
    assert!(iters > 0 && x.len() == iters * 4 && w.len() >= iters * 128 && (w.as_ptr() as usize) % 4 == 0);
    let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7] = *acc;
    // SAFETY: reads `iters * 4` words from `x` and `iters * 32` words from `w`, both in
    // bounds and word aligned (checked above); writes only registers and the stack below
    // `sp` (the loop counter and r6/r7, which Rust reserves and which are restored).
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "str r12, [sp, #-4]!",
            "2:",
            ".rept 4",
            "ldr r12, [r10], #4",
            "ldm r11!, {{r6, r7, lr}}",
            "smlad r0, r12, r6, r0",
            "smlad r1, r12, r7, r1",
            "smlad r2, r12, lr, r2",
            "ldm r11!, {{r6, r7, lr}}",
            "smlad r3, r12, r6, r3",
            "smlad r4, r12, r7, r4",
            "smlad r5, r12, lr, r5",
            "ldm r11!, {{r6, r7}}",
            "smlad r8, r12, r6, r8",
            "smlad r9, r12, r7, r9",
            ".endr",
            "ldr r12, [sp]",
            "subs r12, r12, #1",
            "str r12, [sp]",
            "bne 2b",
            "add sp, sp, #4",
            "pop {{r6, r7}}",
            inout("r0") a0, inout("r1") a1, inout("r2") a2, inout("r3") a3,
            inout("r4") a4, inout("r5") a5, inout("r8") a6, inout("r9") a7,
            inout("r10") x.as_ptr() => _, inout("r11") w.as_ptr() => _,
            inout("r12") iters => _, out("lr") _,
        );
    }
    *acc = [a0, a1, a2, a3, a4, a5, a6, a7];
}

/// Every full tile of 4 channels for one pair of positions, in one `asm!` block: the
/// accumulators start at the bias, the multiply-accumulate loop runs `steps` pair words
/// (`U` per iteration), then `rq_fast` (`SMMLAR`, `ASR`, `SSAT`) and the stores of 4
/// bytes at `y0` and `y1` per tile. Only for the full int8 output range (no further clamp).
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[allow(unsafe_code)]
#[inline(never)]
fn tiles_4x2_asm<const U: usize>(xs: &[u32], w: &[u8], bias: &[i32], rq: &[[i32; 3]], y0: *mut u8, y1: *mut u8, tiles: usize) {
    let steps = xs.len() / 2;
    let iters = steps / U;
    assert!(tiles > 0 && iters > 0 && xs.len() == 2 * U * iters);
    assert!(w.len() >= tiles * steps * 16 && (w.as_ptr() as usize) % 4 == 0);
    assert!(bias.len() >= 4 * tiles && rq.len() >= 4 * tiles);
    let state: [usize; 8] = [xs.as_ptr() as usize, bias.as_ptr() as usize, rq.as_ptr() as usize, y0 as usize, y1 as usize, tiles, iters, 0];
    // SAFETY: reads `xs` (2 * steps words), `w` (tiles * steps * 16 bytes), `bias` and `rq`
    // (4 * tiles entries), all in bounds and word aligned (checked above; `[i32]` and
    // `[u32]` are aligned by type); writes 4 * tiles bytes at `y0` and at `y1`, which the
    // caller obtained from `Out8::span` (in bounds, writable). Uses the stack below `sp`
    // for its state and for r6/r7 (reserved by Rust, restored before the end).
    unsafe {
        core::arch::asm!(
            "ldm r10, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
            "push {{r6, r7}}",
            "push {{r0, r1, r2, r3, r4, r5, r8, r9}}",
            "3:",
            "ldr r10, [sp, #4]",
            "ldm r10!, {{r0, r2, r4, r8}}",
            "str r10, [sp, #4]",
            "mov r1, r0",
            "mov r3, r2",
            "mov r5, r4",
            "mov r9, r8",
            "ldr r10, [sp]",
            "ldr r12, [sp, #24]",
            "str r12, [sp, #28]",
            "2:",
            ".rept {u}",
            "ldm r10!, {{r12, lr}}",
            "ldm r11!, {{r6, r7}}",
            "smlad r0, r12, r6, r0",
            "smlad r1, lr, r6, r1",
            "smlad r2, r12, r7, r2",
            "smlad r3, lr, r7, r3",
            "ldm r11!, {{r6, r7}}",
            "smlad r4, r12, r6, r4",
            "smlad r5, lr, r6, r5",
            "smlad r8, r12, r7, r8",
            "smlad r9, lr, r7, r9",
            ".endr",
            "ldr r12, [sp, #28]",
            "subs r12, r12, #1",
            "str r12, [sp, #28]",
            "bne 2b",
            "ldr r10, [sp, #8]",
            "ldm r10!, {{r6, r7, r12}}",
            "add lr, r7, r0, asr #31",
            "smmlar r0, r0, r6, lr",
            "asr r0, r0, r12",
            "ssat r0, #8, r0",
            "add lr, r7, r1, asr #31",
            "smmlar r1, r1, r6, lr",
            "asr r1, r1, r12",
            "ssat r1, #8, r1",
            "ldm r10!, {{r6, r7, r12}}",
            "add lr, r7, r2, asr #31",
            "smmlar r2, r2, r6, lr",
            "asr r2, r2, r12",
            "ssat r2, #8, r2",
            "add lr, r7, r3, asr #31",
            "smmlar r3, r3, r6, lr",
            "asr r3, r3, r12",
            "ssat r3, #8, r3",
            "ldm r10!, {{r6, r7, r12}}",
            "add lr, r7, r4, asr #31",
            "smmlar r4, r4, r6, lr",
            "asr r4, r4, r12",
            "ssat r4, #8, r4",
            "add lr, r7, r5, asr #31",
            "smmlar r5, r5, r6, lr",
            "asr r5, r5, r12",
            "ssat r5, #8, r5",
            "ldm r10!, {{r6, r7, r12}}",
            "add lr, r7, r8, asr #31",
            "smmlar r8, r8, r6, lr",
            "asr r8, r8, r12",
            "ssat r8, #8, r8",
            "add lr, r7, r9, asr #31",
            "smmlar r9, r9, r6, lr",
            "asr r9, r9, r12",
            "ssat r9, #8, r9",
            "str r10, [sp, #8]",
            "ldr r10, [sp, #12]",
            "strb r0, [r10], #4",
            "strb r2, [r10, #-3]",
            "strb r4, [r10, #-2]",
            "strb r8, [r10, #-1]",
            "str r10, [sp, #12]",
            "ldr r10, [sp, #16]",
            "strb r1, [r10], #4",
            "strb r3, [r10, #-3]",
            "strb r5, [r10, #-2]",
            "strb r9, [r10, #-1]",
            "str r10, [sp, #16]",
            "ldr r12, [sp, #20]",
            "subs r12, r12, #1",
            "str r12, [sp, #20]",
            "bne 3b",
            "add sp, sp, #32",
            "pop {{r6, r7}}",
            u = const U,
            inout("r10") state.as_ptr() => _, inout("r11") w.as_ptr() => _,
            out("r0") _, out("r1") _, out("r2") _, out("r3") _, out("r4") _, out("r5") _,
            out("r8") _, out("r9") _, out("r12") _, out("lr") _,
        );
    }
}

/// Tiles of 4 output channels x 2 positions over `npos` rows (positions), `y[p * cout + c]`.
/// `xs` is scratch of `2 * steps + 2` words. With `rev` the positions run backwards (a tile's
/// inputs are all read before any of its outputs is written, so in either direction no
/// output byte is written before the kernel has read what it overwrites, as long as the
/// one-position-at-a-time order has that property).
pub fn gemm_4x2<R: Rows, Y: Out8, const FAST: bool>(l: &Gemm, rows: &mut R, npos: usize, mut y: Y, rev: bool, xs: &mut [u32]) {
    let steps = l.steps;
    let tiles = l.cout.div_ceil(4);
    let xs = &mut xs[..2 * steps + 2];
    let w = &l.w[..tiles * steps * 16];
    let (bias, rqs) = (&l.bias[..tiles * 4], &l.rq[..l.cout]);
    // Whole tiles of the full output range go through one `asm!` block on Cortex-M4/M7.
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    let asm_tiles = if FAST && l.lo == -128 && l.hi == 127 { l.cout / 4 } else { 0 };
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    let asm_tiles = 0;
    let mut tile = |p0: usize, p1: usize, y: &mut Y| {
        rows.expand::<2>(p0, xs);
        rows.expand::<2>(p1, &mut xs[1..]);
        let xs = &xs[..2 * steps];
        #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
        if asm_tiles > 0 {
            let (y0, y1) = (y.span(p0 * l.cout, 4 * asm_tiles), y.span(p1 * l.cout, 4 * asm_tiles));
            if steps % 8 == 0 {
                tiles_4x2_asm::<8>(xs, w, bias, rqs, y0, y1, asm_tiles);
            } else {
                tiles_4x2_asm::<4>(xs, w, bias, rqs, y0, y1, asm_tiles);
            }
        }
        for t in asm_tiles..tiles {
            let b = &bias[4 * t..4 * t + 4];
            let mut acc = [b[0], b[0], b[1], b[1], b[2], b[2], b[3], b[3]];
            mac_4x2(xs, &w[t * steps * 16..], &mut acc);
            for c in 0..4 {
                let oc = 4 * t + c;
                if oc >= l.cout {
                    break;
                }
                let r = &rqs[oc];
                y.put(p0 * l.cout + oc, rq::<FAST>(acc[2 * c], r, l.lo, l.hi));
                if p1 != p0 {
                    y.put(p1 * l.cout + oc, rq::<FAST>(acc[2 * c + 1], r, l.lo, l.hi));
                }
            }
        }
    };
    let pairs = npos / 2;
    if !rev {
        for i in 0..pairs {
            tile(2 * i, 2 * i + 1, &mut y);
        }
        if npos % 2 == 1 {
            tile(npos - 1, npos - 1, &mut y);
        }
    } else {
        if npos % 2 == 1 {
            tile(npos - 1, npos - 1, &mut y);
        }
        for i in (0..pairs).rev() {
            tile(2 * i, 2 * i + 1, &mut y);
        }
    }
}

/// Tiles of 8 output channels x 1 position (few positions: fully connected layers).
/// `xs` is scratch of `steps` words.
pub fn gemm_8x1<R: Rows, Y: Out8, const FAST: bool>(l: &Gemm, rows: &mut R, npos: usize, mut y: Y, rev: bool, xs: &mut [u32]) {
    let steps = l.steps;
    let tiles = l.cout.div_ceil(8);
    let xs = &mut xs[..steps];
    let w = &l.w[..tiles * steps * 32];
    let (bias, rqs) = (&l.bias[..tiles * 8], &l.rq[..l.cout]);
    for i in 0..npos {
        let p = if rev { npos - 1 - i } else { i };
        rows.expand::<1>(p, xs);
        for t in 0..tiles {
            let mut acc = [0i32; 8];
            acc.copy_from_slice(&bias[8 * t..8 * t + 8]);
            mac_8x1(xs, &w[t * steps * 32..], &mut acc);
            for c in 0..8 {
                let oc = 8 * t + c;
                if oc >= l.cout {
                    break;
                }
                y.put(p * l.cout + oc, rq::<FAST>(acc[c], &rqs[oc], l.lo, l.hi));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rq_fast_matches_mbqm() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for i in 0..200_000 {
            let m = (1 << 30) + (next() % (1 << 30)) as i32;
            let e = 1 + (next() % 20) as i32;
            let zp = (next() % 256) as i32 - 128;
            let acc = match i % 3 {
                0 => (next() % (1 << 31)) as i32 - (1 << 30),
                1 => (next() % 20001) as i32 - 10000,
                _ => ((next() % 64) as i32 - 32) << (e - 1),
            };
            let want = crate::q::clamp(crate::q::mbqm(acc, m, -e) + zp, -128, 127) as i8;
            let k = (1 << (e - 1)) + (zp << e);
            assert_eq!(rq_fast(2 * acc, &[m, k, e], -128, 127), want, "acc {acc} m {m} e {e} zp {zp}");
        }
    }
}
