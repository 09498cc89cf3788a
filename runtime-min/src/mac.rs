//! Fast int8 matrix kernels (the `speed` strategy): convolutions and fully connected layers
//! as a matrix product of int8 rows (one per output position) with weights the compiler
//! packed at compile time, bit-exact with TFLM's reference kernels.
//!
//! Data layout, shared by every target:
//! * A row of `K` int8 inputs is expanded to `steps` 32-bit words of two int16 values each
//!   (`steps * 2 >= K`, `steps` even, the rest zero). Inputs `4j..4j+4` give the
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

/// A value aligned to 64 bytes, a cache line: the x86-64 weight streams, read 32 or 64
/// bytes at a time. At the linker's 16- or 32-byte placement every 64-byte load of a stream
/// can straddle two lines: ad_autoencoder int8's weights at an offset of 32 ran 3.1 us per
/// inference where the same code with them on 64 ran 2.5.
#[repr(C, align(64))]
pub struct Align64<T: ?Sized>(pub T);

/// Weights that every target reads but x86-64 reads a vector at a time: [`Align64`] there,
/// their own alignment elsewhere (no padding in a microcontroller's flash).
#[cfg(target_arch = "x86_64")]
pub use Align64 as AlignV;
/// Weights that every target reads but x86-64 reads a vector at a time: [`Align64`] there,
/// their own alignment elsewhere (no padding in a microcontroller's flash).
#[cfg(not(target_arch = "x86_64"))]
#[repr(C)]
pub struct AlignV<T: ?Sized>(pub T);

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

/// Two positions' rows of int8 values (`r0`, `r1`, of one length; a last chunk of fewer than
/// 4 values is zero-filled) as [`Rows::expand2`] writes them: per chunk of 4 values, the
/// `SXTB16` pair words of position 0 and 1 interleaved (`A0 A1 B0 B1`), `o` holding 4 words
/// per chunk. On x86-64 with AVX2, 8 values of each row per step (`PSHUFB` into the pair
/// order, `PMOVSXBW`, `PUNPCKLDQ`/`PUNPCKHDQ`).
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[inline(always)]
#[allow(unsafe_code)]
fn expand2_runs<B: Byte>(r0: &[B], r1: &[B], o: &mut [u32]) {
    use core::arch::x86_64::*;
    let k = r0.len();
    let r1 = &r1[..k];
    let chunks = k.div_ceil(4);
    let o = &mut o[..4 * chunks];
    let full = k / 8;
    // SAFETY: each 8-byte load reads `r0`/`r1` at `8 * j` with `8 * j + 8 <= k`; each pair of
    // 16-byte stores writes words `8 * j..8 * j + 8` of `o`, within its `4 * chunks` words
    // (`8 * j + 8 <= k <= 4 * chunks`).
    unsafe {
        let order = _mm_setr_epi8(0, 2, 1, 3, 4, 6, 5, 7, -1, -1, -1, -1, -1, -1, -1, -1);
        for j in 0..full {
            let v0 = _mm_loadl_epi64(r0.as_ptr().add(8 * j) as *const __m128i);
            let v1 = _mm_loadl_epi64(r1.as_ptr().add(8 * j) as *const __m128i);
            let w0 = _mm_cvtepi8_epi16(_mm_shuffle_epi8(v0, order));
            let w1 = _mm_cvtepi8_epi16(_mm_shuffle_epi8(v1, order));
            let dst = o.as_mut_ptr().add(8 * j) as *mut __m128i;
            _mm_storeu_si128(dst, _mm_unpacklo_epi32(w0, w1));
            _mm_storeu_si128(dst.add(1), _mm_unpackhi_epi32(w0, w1));
        }
    }
    for j in 2 * full..chunks {
        let g = |r: &[B], t: usize| if t < k { r[t].byte() as i8 } else { 0 };
        let (a0, b0) = pairs4(g(r0, 4 * j), g(r0, 4 * j + 1), g(r0, 4 * j + 2), g(r0, 4 * j + 3));
        let (a1, b1) = pairs4(g(r1, 4 * j), g(r1, 4 * j + 1), g(r1, 4 * j + 2), g(r1, 4 * j + 3));
        o[4 * j..4 * j + 4].copy_from_slice(&[a0, a1, b0, b1]);
    }
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
    /// Rows `p0` and `p1` interleaved (`out[2 * s]` and `out[2 * s + 1]`), for the 4x2 tiles.
    #[inline(always)]
    fn expand2(&mut self, p0: usize, p1: usize, out: &mut [u32]) {
        self.expand::<2>(p0, out);
        self.expand::<2>(p1, &mut out[1..]);
    }
    /// The address of row `p` when it is `k` contiguous int8 values (checked in bounds),
    /// for the `asm!` kernels to expand themselves.
    fn dense(&self, _p: usize, _k: usize) -> Option<*const u8> {
        None
    }
    /// Whether [`Rows::bytes`] writes this source's rows (the x86-64 VNNI kernel's input).
    const BYTES: bool = false;
    /// Writes row `p` as bytes `x ^ 0x80` (the int8 values offset to uint8) in the order
    /// of the packed row, one byte per value: what `VPDPBUSD` reads four at a time. Bytes
    /// of the row's padding (zero weights) are left as they are.
    #[inline(always)]
    fn bytes(&mut self, _p: usize, _out: &mut [u8]) {}
    /// For convolution windows whose rows the VNNI kernel can read in place from a band of
    /// converted input rows (no dilation, window rows of whole words): the geometry.
    #[inline(always)]
    fn band(&self) -> Option<Band> {
        None
    }
    /// Writes input row `iy` of batch `b` (any row index: outside the input, all zero
    /// point) as bytes `x ^ 0x80` from column `-PAD_W`, the zero point outside the input,
    /// `out.len()` bytes.
    #[inline(always)]
    fn band_row(&mut self, _b: usize, _iy: isize, _out: &mut [u8]) {}
}

/// A convolution's geometry for the VNNI kernel's band of input rows ([`Rows::band`]).
pub struct Band {
    pub c: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub sh: usize,
    pub sw: usize,
    pub pad_h: usize,
}

impl Band {
    #[inline(always)]
    fn of<G: ConvGeom>() -> Band {
        Band { c: G::C, kw: G::KW, oh: G::OH, ow: G::OW, kh: G::KH, sh: G::SH, sw: G::SW, pad_h: G::PAD_H }
    }

    /// Words of a window in the VNNI layout of convolution windows: per kernel row
    /// `ceil(KW * C / 4)` words (the row's values, then zero weights).
    #[inline(always)]
    pub fn words(&self) -> usize {
        self.kh * (self.kw * self.c).div_ceil(4)
    }
}

/// `dst[i] = src[i] ^ 0x80` (int8 values offset to uint8), 16 and 4 bytes at a time.
#[inline(always)]
#[allow(unsafe_code)]
fn xor_copy<B: Byte>(src: &[B], dst: &mut [u8]) {
    let n = src.len().min(dst.len());
    const { assert!(core::mem::size_of::<B>() == 1) };
    let (s, d) = (src.as_ptr() as *const u8, dst.as_mut_ptr());
    let mut i = 0;
    // SAFETY: every access is below `n`, inside both slices; `B` is one byte (`u8`, `i8`
    // or `Cell<u8>`, which may be read through a shared reference), unaligned accesses.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        {
            use core::arch::x86_64::*;
            let k = _mm_set1_epi8(-128);
            while i + 16 <= n {
                _mm_storeu_si128(d.add(i) as *mut __m128i, _mm_xor_si128(_mm_loadu_si128(s.add(i) as *const __m128i), k));
                i += 16;
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        while i + 16 <= n {
            let v = (s.add(i) as *const u128).read_unaligned();
            (d.add(i) as *mut u128).write_unaligned(v ^ 0x8080_8080_8080_8080_8080_8080_8080_8080);
            i += 16;
        }
        while i + 4 <= n {
            let v = (s.add(i) as *const u32).read_unaligned();
            (d.add(i) as *mut u32).write_unaligned(v ^ 0x8080_8080);
            i += 4;
        }
        while i < n {
            *d.add(i) = *s.add(i) ^ 0x80;
            i += 1;
        }
    }
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

/// [`Rows::band_row`] of a convolution's input `x` (zero point `zp`).
#[inline(always)]
fn band_row<B: Byte, G: ConvGeom>(x: &[B], zp: i8, b: usize, iy: isize, out: &mut [u8]) {
    let (h, w, c) = (G::H, G::W, G::C);
    let zb = zp as u8 ^ 0x80;
    if iy < 0 || iy as usize >= h {
        out.fill(zb);
        return;
    }
    let left = (G::PAD_W * c).min(out.len());
    out[..left].fill(zb);
    let n = (w * c).min(out.len() - left);
    let s = (b * h + iy as usize) * w * c;
    xor_copy(&x[s..s + n], &mut out[left..left + n]);
    out[left + n..].fill(zb);
}

/// The window of position `p` as bytes `x ^ 0x80` ([`Rows::bytes`]): per kernel row `rw`
/// bytes, the window's row (`KW * C` values, taps outside the input the zero point `zp`)
/// then padding left as it is.
#[inline(always)]
fn window_bytes<B: Byte, G: ConvGeom>(x: &[B], zp: i8, p: usize, rw: usize, out: &mut [u8]) {
    let (h, w, c) = (G::H, G::W, G::C);
    let b = p / (G::OH * G::OW);
    let iy0 = (p / G::OW % G::OH * G::SH) as isize - G::PAD_H as isize;
    let ix0 = (p % G::OW * G::SW) as isize - G::PAD_W as isize;
    let span = G::KW * c;
    let inside_x = ix0 >= 0 && ix0 as usize + (G::KW - 1) * G::DW < w;
    let zb = zp as u8 ^ 0x80;
    for (ky, o) in out[..G::KH * rw].chunks_exact_mut(rw).enumerate() {
        let iy = iy0 + (ky * G::DH) as isize;
        if iy < 0 || iy as usize >= h {
            o[..span].fill(zb);
            continue;
        }
        let row = (b * h + iy as usize) * w;
        if inside_x && G::DW == 1 {
            let s = (row + ix0 as usize) * c;
            xor_copy(&x[s..s + span], &mut o[..span]);
            continue;
        }
        for (kx, o) in o[..span].chunks_exact_mut(c).enumerate() {
            let ix = ix0 + (kx * G::DW) as isize;
            if ix < 0 || ix as usize >= w {
                o.fill(zb);
            } else {
                xor_copy(&x[(row + ix as usize) * c..][..c], o);
            }
        }
    }
}

/// Rows stored one after the other: row `p` is `x[p * k..(p + 1) * k]` (a 1x1
/// convolution with stride 1, a fully connected layer).
pub struct Dense<'a, B> {
    pub x: &'a [B],
    pub k: usize,
}

impl<B: Byte> Rows for Dense<'_, B> {
    /// On x86-64 with AVX2: both rows 8 values at a time ([`expand2_runs`]).
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    #[inline(always)]
    fn expand2(&mut self, p0: usize, p1: usize, out: &mut [u32]) {
        let k = self.k;
        expand2_runs(&self.x[p0 * k..(p0 + 1) * k], &self.x[p1 * k..(p1 + 1) * k], out);
    }

    #[inline(always)]
    fn expand<const S: usize>(&mut self, p: usize, out: &mut [u32]) {
        expand_from::<B, S>(&self.x[p * self.k..(p + 1) * self.k], out);
    }
    #[inline(always)]
    fn dense(&self, p: usize, k: usize) -> Option<*const u8> {
        (k == self.k).then(|| self.x[p * k..(p + 1) * k].as_ptr() as *const u8)
    }
    const BYTES: bool = true;
    #[inline(always)]
    fn bytes(&mut self, p: usize, out: &mut [u8]) {
        let k = self.k;
        xor_copy(&self.x[p * k..(p + 1) * k], &mut out[..k]);
    }
}

/// A convolution's geometry as constants (the generated code declares one type per layer,
/// so that the window arithmetic of [`Im2col`] is compiled for its numbers).
pub trait ConvGeom {
    const H: usize;
    const W: usize;
    const C: usize;
    const OH: usize;
    const OW: usize;
    const KH: usize;
    const KW: usize;
    const SH: usize;
    const SW: usize;
    const DH: usize;
    const DW: usize;
    const PAD_H: usize;
    const PAD_W: usize;
}

/// The windows of a convolution over an NHWC input. A row holds, per kernel row `ky`, the
/// `KW * C` inputs of the window's row (`[kx][ic]`, the filter's order) padded to a
/// multiple of 4 (the padding multiplies zero weights). Taps outside the input are the
/// input zero point `zp`. A window row inside the input is read as words straight from the
/// input.
pub struct Im2col<'a, B, G> {
    pub x: &'a [B],
    pub zp: i8,
    pub g: core::marker::PhantomData<G>,
}

impl<B: Byte, G: ConvGeom> Im2col<'_, B, G> {
    /// Where window row `ky` of position `p` starts in the input, when that row is one
    /// contiguous run of `4 * ceil(KW * C / 4)` values inside the input (no dilation).
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    #[inline(always)]
    fn run(&self, p: usize, ky: usize) -> Option<usize> {
        let (h, w, c) = (G::H, G::W, G::C);
        let b = p / (G::OH * G::OW);
        let iy = (p / G::OW % G::OH * G::SH) as isize - G::PAD_H as isize + (ky * G::DH) as isize;
        let ix0 = (p % G::OW * G::SW) as isize - G::PAD_W as isize;
        let inside = iy >= 0 && (iy as usize) < h && ix0 >= 0 && ix0 as usize + (G::KW - 1) * G::DW < w;
        let s = ((b * h + iy.max(0) as usize) * w + ix0.max(0) as usize) * c;
        (inside && G::DW == 1 && s + 4 * (G::KW * c).div_ceil(4) <= self.x.len()).then_some(s)
    }
}

impl<B: Byte, G: ConvGeom> Rows for Im2col<'_, B, G> {
    /// On x86-64 with AVX2: the window rows both positions read as contiguous runs are
    /// expanded 8 values of each at a time (`PSHUFB` into the `SXTB16` pair order,
    /// `PMOVSXBW`, the two positions' words interleaved by `PUNPCKLDQ`/`PUNPCKHDQ`); the
    /// other rows as [`Rows::expand`] would.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    #[inline(always)]
    fn expand2(&mut self, p0: usize, p1: usize, out: &mut [u32]) {
        let chunks = (G::KW * G::C).div_ceil(4);
        let rows: [[Option<usize>; 2]; 64] = core::array::from_fn(|ky| if ky < G::KH { [self.run(p0, ky), self.run(p1, ky)] } else { [None, None] });
        if G::KH > 64 || rows[..G::KH].iter().any(|r| r[0].is_none() || r[1].is_none()) {
            self.expand::<2>(p0, out);
            self.expand::<2>(p1, &mut out[1..]);
            return;
        }
        let out = &mut out[..G::KH * chunks * 4];
        let x = &self.x[..];
        for (ky, o) in out.chunks_exact_mut(chunks * 4).enumerate() {
            let [Some(s0), Some(s1)] = rows[ky] else { unreachable!() };
            expand2_runs(&x[s0..s0 + 4 * chunks], &x[s1..s1 + 4 * chunks], o);
        }
    }

    const BYTES: bool = true;
    /// Per kernel row `4 * ceil(KW * C / 4)` bytes: the window's row, then padding.
    #[inline(always)]
    fn bytes(&mut self, p: usize, out: &mut [u8]) {
        window_bytes::<B, G>(self.x, self.zp, p, (G::KW * G::C).div_ceil(4) * 4, out);
    }
    #[inline(always)]
    fn band(&self) -> Option<Band> {
        (G::DH == 1 && G::DW == 1).then_some(Band::of::<G>())
    }
    #[inline(always)]
    fn band_row(&mut self, b: usize, iy: isize, out: &mut [u8]) {
        band_row::<B, G>(self.x, self.zp, b, iy, out);
    }

    #[inline(always)]
    fn expand<const S: usize>(&mut self, p: usize, out: &mut [u32]) {
        let (h, w, c) = (G::H, G::W, G::C);
        let b = p / (G::OH * G::OW);
        let oy = p / G::OW % G::OH;
        let ox = p % G::OW;
        let iy0 = (oy * G::SH) as isize - G::PAD_H as isize;
        let ix0 = (ox * G::SW) as isize - G::PAD_W as isize;
        let span = G::KW * c;
        let chunks = span.div_ceil(4);
        let inside_x = ix0 >= 0 && ix0 as usize + (G::KW - 1) * G::DW < w;
        let zp = self.zp;
        let zpw = pairs4(zp, zp, zp, zp).0;
        let out = &mut out[..G::KH * chunks * 2 * S];
        for (ky, o) in out.chunks_exact_mut(chunks * 2 * S).enumerate() {
            let iy = iy0 + (ky * G::DH) as isize;
            if iy < 0 || iy as usize >= h {
                for q in o.chunks_exact_mut(2 * S) {
                    q[0] = zpw;
                    q[S] = zpw;
                }
                continue;
            }
            let row = (b * h + iy as usize) * w;
            let s = (row + ix0.max(0) as usize) * c;
            if inside_x && G::DW == 1 && s + 4 * chunks <= self.x.len() {
                // The window's row is one contiguous run of the input.
                let src = &self.x[s..s + 4 * chunks];
                for (q, v) in o.chunks_exact_mut(2 * S).zip(src.chunks_exact(4)) {
                    let (a, b) = sxtb16x2(word4(v));
                    q[0] = a;
                    q[S] = b;
                }
                continue;
            }
            let at = |k: usize| -> i8 {
                if k >= span {
                    return 0;
                }
                let ix = ix0 + ((k / c) * G::DW) as isize;
                if ix < 0 || ix as usize >= w {
                    zp
                } else {
                    self.x[(row + ix as usize) * c + k % c].byte() as i8
                }
            };
            for (j, q) in o.chunks_exact_mut(2 * S).enumerate() {
                let (a, b) = pairs4(at(4 * j), at(4 * j + 1), at(4 * j + 2), at(4 * j + 3));
                q[0] = a;
                q[S] = b;
            }
        }
    }
}

/// The windows of a convolution whose window rows can be read as whole pair words: no
/// dilation, and an even step between neighbouring windows (`SW * C`), so that every window
/// row starts at the same parity in its input row. Each input row is converted once into
/// pair words `(v, v + 1)` (consecutive values, from `-PAD_W * C`, taps outside the input
/// the zero point `zp`) in a ring of `KH` rows (`ring`, `KH * ROW_WORDS` words); a window
/// row is then `ceil(KW * C / 2)` consecutive words of it (an odd last value multiplies a
/// zero weight). The compiler packs the weights in that order (`(v, v + 1)` pairs rather
/// than [`Im2col`]'s `SXTB16` order). Rows are converted when a window first needs them,
/// which is when [`Im2col`] would first read them, so in-place layers stay correct.
pub struct Paired<'a, B, G> {
    pub x: &'a [B],
    pub zp: i8,
    pub ring: &'a mut [u32],
    /// The rows (`batch * H + y`) held by the ring: `lo..hi`.
    pub lo: usize,
    pub hi: usize,
    pub g: core::marker::PhantomData<G>,
}

/// Words of one converted input row of [`Paired`]: enough for the last window.
pub const fn paired_row_words(ow: usize, sw: usize, c: usize, kw: usize) -> usize {
    (ow - 1) * sw * c / 2 + (kw * c).div_ceil(2)
}

impl<B: Byte, G: ConvGeom> Paired<'_, B, G> {
    const SPAN: usize = G::KW * G::C;
    const WN: usize = Self::SPAN.div_ceil(2);
    const RW: usize = paired_row_words(G::OW, G::SW, G::C, G::KW);

    /// Converts row `r` (`batch * H + y`) into its ring slot.
    #[inline(never)]
    fn convert(&mut self, r: usize) {
        let n = G::W * G::C;
        let src = &self.x[r * n..(r + 1) * n];
        let slot = r % G::KH;
        let dst = &mut self.ring[slot * Self::RW..(slot + 1) * Self::RW];
        let zp = self.zp;
        let at = |v: isize| -> i8 {
            if v >= 0 && (v as usize) < n {
                src[v as usize].byte() as i8
            } else {
                zp
            }
        };
        let v0 = -((G::PAD_W * G::C) as isize);
        for (m, d) in dst.iter_mut().enumerate() {
            let v = v0 + 2 * m as isize;
            *d = (at(v) as i16 as u16 as u32) | ((at(v + 1) as i16 as u16 as u32) << 16);
        }
    }

    /// Makes the ring hold the input rows of position `p`'s window; its first row
    /// (`oy * SH - PAD_H`, possibly outside the input), the ring slot of the first row
    /// inside, and the window's first word in a converted row.
    #[inline(always)]
    fn window(&mut self, p: usize) -> (isize, usize, usize) {
        let h = G::H;
        let b = p / (G::OH * G::OW);
        let oy = p / G::OW % G::OH;
        let ox = p % G::OW;
        let iy0 = (oy * G::SH) as isize - G::PAD_H as isize;
        let a = iy0.max(0) as usize;
        let e = ((iy0 + G::KH as isize).max(0) as usize).min(h).max(a);
        let (ga, ge) = (b * h + a, b * h + e);
        if ga < self.lo || ge > self.hi {
            for r in ga..ge {
                if r < self.lo || r >= self.hi {
                    self.convert(r);
                }
            }
            self.lo = ga;
            self.hi = ge;
        }
        (iy0, ga % G::KH, ox * G::SW * G::C / 2)
    }

    /// Writes position `p`'s window into `out`: with `PAIR`, interleaved with its right
    /// neighbour's (`copy_pair`; `S` is then 2), else at every `S`-th word
    /// (`copy_strided`). Rows outside the input are the zero point pair.
    #[inline(always)]
    fn gather<const S: usize, const PAIR: bool>(&mut self, p: usize, out: &mut [u32]) {
        let sh = if PAIR { G::SW * G::C / 2 } else { 0 };
        let (iy0, mut slot, off) = self.window(p);
        let zp = self.zp;
        let zpw = pairs4(zp, zp, zp, zp).0;
        let out = &mut out[..G::KH * Self::WN * S];
        for (ky, o) in out.chunks_exact_mut(Self::WN * S).enumerate() {
            let iy = iy0 + ky as isize;
            if iy < 0 || iy as usize >= G::H {
                if PAIR {
                    o.fill(zpw);
                } else {
                    for q in o.chunks_exact_mut(S) {
                        q[0] = zpw;
                    }
                }
                continue;
            }
            let at = slot * Self::RW + off;
            if PAIR {
                copy_pair(o, &self.ring[at..at + Self::WN + sh], sh);
            } else {
                copy_strided::<S>(o, &self.ring[at..at + Self::WN]);
            }
            slot = if slot + 1 == G::KH { 0 } else { slot + 1 };
        }
    }
}

impl<B: Byte, G: ConvGeom> Rows for Paired<'_, B, G> {
    #[inline(always)]
    fn expand<const S: usize>(&mut self, p: usize, out: &mut [u32]) {
        self.gather::<S, false>(p, out);
    }

    const BYTES: bool = true;
    /// As [`Im2col`]'s (per kernel row `4 * ceil(KW * C / 4)` bytes: the VNNI weights are
    /// packed in that order, not in the pair words'), read from the input itself (the ring
    /// is for the pair words).
    #[inline(always)]
    fn bytes(&mut self, p: usize, out: &mut [u8]) {
        window_bytes::<B, G>(self.x, self.zp, p, (G::KW * G::C).div_ceil(4) * 4, out);
    }
    #[inline(always)]
    fn band(&self) -> Option<Band> {
        const { assert!(G::DH == 1 && G::DW == 1) };
        Some(Band::of::<G>())
    }
    #[inline(always)]
    fn band_row(&mut self, b: usize, iy: isize, out: &mut [u8]) {
        band_row::<B, G>(self.x, self.zp, b, iy, out);
    }

    /// Two neighbours on one output row read overlapping words of the same converted
    /// rows: each word is loaded once for both.
    #[inline(always)]
    fn expand2(&mut self, p0: usize, p1: usize, out: &mut [u32]) {
        const { assert!(G::SW * G::C % 2 == 0) };
        let sh = G::SW * G::C / 2;
        if p1 != p0 + 1 || p0 % G::OW + 1 >= G::OW || Self::WN + sh > 8 {
            self.expand::<2>(p0, out);
            self.expand::<2>(p1, &mut out[1..]);
            return;
        }
        self.gather::<2, true>(p0, out);
    }
}

/// `o[2 * j] = src[j]`, `o[2 * j + 1] = src[j + sh]` for `j < o.len() / 2`, every word of
/// `src` (at most 8) loaded once; written out as for [`copy_strided`].
#[inline(always)]
fn copy_pair(o: &mut [u32], src: &[u32], sh: usize) {
    let mut v = [0u32; 8];
    macro_rules! load {
        ($n:literal: $($j:literal)*) => {{
            let src = &src[..$n];
            $(v[$j] = src[$j];)*
        }};
    }
    match src.len() {
        2 => load!(2: 0 1),
        3 => load!(3: 0 1 2),
        4 => load!(4: 0 1 2 3),
        5 => load!(5: 0 1 2 3 4),
        6 => load!(6: 0 1 2 3 4 5),
        7 => load!(7: 0 1 2 3 4 5 6),
        8 => load!(8: 0 1 2 3 4 5 6 7),
        _ => unreachable!(),
    }
    macro_rules! store {
        ($n:literal: $($j:literal)*) => {{
            let o = &mut o[..2 * $n];
            $(o[2 * $j] = v[$j]; o[2 * $j + 1] = v[$j + sh];)*
        }};
    }
    match o.len() / 2 {
        1 => store!(1: 0),
        2 => store!(2: 0 1),
        3 => store!(3: 0 1 2),
        4 => store!(4: 0 1 2 3),
        5 => store!(5: 0 1 2 3 4),
        6 => store!(6: 0 1 2 3 4 5),
        7 => store!(7: 0 1 2 3 4 5 6),
        _ => unreachable!(),
    }
}

/// `o[j * S] = src[j]`, unrolled for the short rows of [`Paired`] (`src.len()` is a
/// constant where it is called).
#[inline(always)]
fn copy_strided<const S: usize>(o: &mut [u32], src: &[u32]) {
    // Statements written out: at opt-level "s" LLVM keeps a counted loop otherwise.
    macro_rules! unrolled {
        ($n:literal: $($j:literal)*) => {{
            let (o, src) = (&mut o[..($n - 1) * S + 1], &src[..$n]);
            $(o[$j * S] = src[$j];)*
        }};
    }
    match src.len() {
        1 => unrolled!(1: 0),
        2 => unrolled!(2: 0 1),
        3 => unrolled!(3: 0 1 2),
        4 => unrolled!(4: 0 1 2 3),
        5 => unrolled!(5: 0 1 2 3 4),
        6 => unrolled!(6: 0 1 2 3 4 5),
        7 => unrolled!(7: 0 1 2 3 4 5 6),
        8 => unrolled!(8: 0 1 2 3 4 5 6 7),
        _ => {
            for (q, &v) in o.chunks_mut(S).zip(src) {
                q[0] = v;
            }
        }
    }
}

/// One layer's packed constants.
pub struct Gemm<'a> {
    /// Pair words per row (even; a multiple of 4 for 8x1 tiles).
    pub steps: usize,
    /// Output channels (the output's innermost dimension).
    pub cout: usize,
    /// Packed weights, tile after tile (4-byte aligned).
    pub w: &'a [u8],
    /// `w` holds the x86-64 layout of int8 pairs in groups of 8 channels
    /// (`[cout / 8][steps][8][2]`, not doubled; only with AVX2, for at most
    /// [`QUAD_CHANNELS`] channels) instead of int16 pairs by tiles of 4.
    pub w_i8: bool,
    /// `w` holds the layout of the x86-64 kernel with AVX-512 VNNI instead (`VPDPBUSD`):
    /// per pass of `G` groups of 16 channels ([`gemm_vnni_pass`]), per 4 inputs, the groups'
    /// 16 channels' 4 int8 weights (`[steps / 2][G][16][4]`, not doubled), and `bias` has `-128 * sum(w)` (times
    /// 2 when doubled) folded in for the inputs read as `x ^ 0x80`. Rows come from
    /// [`Rows::bytes`].
    pub vnni: bool,
    /// Accumulator start per channel (padded to whole tiles).
    pub bias: &'a [i32],
    /// Requantization per channel: `(m, k, e)` for `rq_fast`, `(m, shift, zp)` otherwise.
    pub rq: &'a [[i32; 3]],
    /// Activation range (output zero point included).
    pub lo: i32,
    pub hi: i32,
}

/// Writes `v` at elements `i..i + v.len()` of `y`: runs of 32, 16 and 8 bytes as unaligned
/// stores of that constant size (never a call of `memcpy` for a few bytes), the rest byte
/// by byte.
#[inline(always)]
#[allow(unsafe_code)]
pub fn put_bytes<Y: Out8>(y: &mut Y, i: usize, v: &[i8]) {
    #[inline(always)]
    fn store<Y: Out8, const N: usize>(y: &mut Y, i: usize, v: &[i8]) {
        let a: [i8; N] = v.try_into().expect("N bytes");
        let dst = y.span(i, N);
        // SAFETY: `span` checked that `N` bytes from `dst` are in bounds and writable.
        unsafe { core::ptr::write_unaligned(dst as *mut [i8; N], a) };
    }
    let mut k = 0;
    while k + 32 <= v.len() {
        store::<Y, 32>(y, i + k, &v[k..k + 32]);
        k += 32;
    }
    if k + 16 <= v.len() {
        store::<Y, 16>(y, i + k, &v[k..k + 16]);
        k += 16;
    }
    if k + 8 <= v.len() {
        store::<Y, 8>(y, i + k, &v[k..k + 8]);
        k += 8;
    }
    for (j, &b) in v[k..].iter().enumerate() {
        y.put(i + k + j, b);
    }
}

/// The requantization of the accumulators `acc` of consecutive channels into `out`, the
/// constants in groups of 8 channels (channel `c` in lane `c % 8` of group `c / 8`): with
/// `FAST`, `rq_fast` of the doubled accumulators (`[m; 8], [k; 8], [e; 8]` per group, `e` in
/// 0..32; 8 lanes at a time on x86-64 with AVX2), else `rq_exact` (`(multiplier, shift, zp)`).
#[inline(always)]
pub fn rq_block<const FAST: bool>(acc: &[i32], rq: &[[[i32; 8]; 3]], lo: i32, hi: i32, out: &mut [i8]) {
    let n = acc.len();
    let out = &mut out[..n];
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    if FAST && n % 8 == 0 {
        for ((a, r), o) in acc.chunks_exact(8).zip(rq).zip(out.chunks_exact_mut(8)) {
            o.copy_from_slice(&x86::rq8_fast_doubled(a.try_into().expect("8"), r, lo, hi));
        }
        return;
    }
    // Group by group, lane by lane: constant offsets into each group's constants (indexing
    // channel by channel, `rq[c / 8][k][c % 8]`, cost Cortex-M4 7 more instructions per
    // channel: sww_ref_model_int8 1.142 M -> 1.186 M).
    for ((a, r), o) in acc.chunks(8).zip(rq).zip(out.chunks_mut(8)) {
        for l in 0..a.len() {
            let rc = [r[0][l], r[1][l], r[2][l]];
            o[l] = if FAST { rq_fast(a[l].wrapping_mul(2), &rc, lo, hi) } else { rq_exact(a[l], &rc, lo, hi) };
        }
    }
}

/// A fully connected layer with int8 weights, for [`fc_channels`].
pub struct FcI8<'a> {
    /// Inputs per row and output channels.
    pub k: usize,
    pub cout: usize,
    /// Weights `[cout / 8][steps][8 channels][2 inputs]`, int8 (zero past `k` and `cout`),
    /// `steps = ceil(k / 2)`.
    pub w: &'a [u8],
    /// Accumulator start per channel (whole tiles of 8): the bias with the input offset
    /// folded in.
    pub bias: &'a [i32],
    /// Per tile of 8 channels, the three constants of each channel (`[c0..c8]` each):
    /// `(m, k, e)` of `rq_fast`, applied to the doubled accumulator, when `FAST`; else
    /// `(multiplier, shift, output zero point)`.
    pub rq: &'a [[[i32; 8]; 3]],
    pub lo: i32,
    pub hi: i32,
    /// `w` holds the layout of the x86-64 kernel with AVX-512 VNNI instead: per pass of `G`
    /// groups of 16 channels ([`fc_vnni_pass`] groups), per 4 inputs, the `G` groups' 16
    /// channels' 4 int8 weights (`[ceil(k / 4)][G][16][4]`), and `bias` (whole groups of 16) has `-128 * sum(w)` folded in for the
    /// inputs read as `x ^ 0x80`.
    pub vnni: bool,
}

/// Groups of 16 channels the VNNI form of [`gemm_4x2`] takes in one pass when `left` remain
/// of a layer of `cout` channels (blocks of 8 positions up to 32 channels: 1 or 2 groups;
/// else 4 positions: up to 4 groups); the compiler packs the weights of each pass together.
pub const fn gemm_vnni_pass(cout: usize, left: usize) -> usize {
    if cout <= 32 {
        if left >= 2 {
            2
        } else {
            1
        }
    } else if left >= 4 {
        4
    } else if left == 0 {
        1
    } else {
        left
    }
}

/// Groups of 16 channels the VNNI form of [`fc_channels`] takes in one pass when `left`
/// remain (1, 2, 4 or 8; the compiler packs the weights of each pass together).
pub const fn fc_vnni_pass(left: usize) -> usize {
    match left {
        0 | 1 => 1,
        2 | 3 => 2,
        4..=7 => 4,
        _ => 8,
    }
}

/// Fully connected rows with int8 weights (half the bytes of the int16 pairs of
/// [`gemm_8x1`]: the host streams them from its caches at half the cost): each row is
/// expanded once into int16 pair words of consecutive inputs (`xs`, `ceil(k / 2)` words),
/// then on x86-64 with AVX2 four tiles of 8 channels at a time; elsewhere a plain loop.
pub fn fc_channels<B: Byte, Y: Out8, const FAST: bool>(l: &FcI8, x: &[B], batches: usize, mut y: Y, rev: bool, xs: &mut [u32]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512vnni"))]
    if l.vnni {
        vnni::fc::<B, Y, FAST>(l, x, batches, &mut y, rev, xs);
        return;
    }
    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx512vnni")))]
    assert!(!l.vnni, "the VNNI layout needs AVX-512 VNNI");
    let (k, cout) = (l.k, l.cout);
    let steps = k.div_ceil(2);
    let tiles = cout.div_ceil(8);
    let xs = &mut xs[..steps];
    let w = &l.w[..tiles * steps * 16];
    let (bias, rqs) = (&l.bias[..tiles * 8], &l.rq[..tiles]);
    let x = &x[..batches * k];
    for i in 0..batches {
        let b = if rev { batches - 1 - i } else { i };
        let row = &x[b * k..(b + 1) * k];
        for (s, o) in xs.iter_mut().enumerate() {
            let v = |j: usize| if j < k { row[j].byte() as i8 as i16 as u16 as u32 } else { 0 };
            *o = v(2 * s) | v(2 * s + 1) << 16;
        }
        let mut t = 0;
        while t < tiles {
            let mut acc = [[0i32; 8]; 4];
            let g = (tiles - t).min(4);
            for (j, a) in acc.iter_mut().take(g).enumerate() {
                a.copy_from_slice(&bias[8 * (t + j)..8 * (t + j + 1)]);
            }
            #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
            {
                if g == 4 {
                    x86::fc_tiles::<4>(xs, &w[t * steps * 16..], steps, &mut acc);
                } else {
                    for (j, a) in acc.iter_mut().take(g).enumerate() {
                        let mut one = [*a];
                        x86::fc_tiles::<1>(xs, &w[(t + j) * steps * 16..], steps, &mut one);
                        *a = one[0];
                    }
                }
            }
            #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
            for (j, a) in acc.iter_mut().take(g).enumerate() {
                let wt = &w[(t + j) * steps * 16..(t + j + 1) * steps * 16];
                for (s, &xv) in xs.iter().enumerate() {
                    let (x0, x1) = (xv as i16 as i32, (xv >> 16) as i16 as i32);
                    for (c, ac) in a.iter_mut().enumerate() {
                        let (w0, w1) = (wt[16 * s + 2 * c] as i8 as i32, wt[16 * s + 2 * c + 1] as i8 as i32);
                        *ac = ac.wrapping_add(x0 * w0).wrapping_add(x1 * w1);
                    }
                }
            }
            for (j, a) in acc.iter().take(g).enumerate() {
                let oc = 8 * (t + j);
                let mut out = [0i8; 8];
                rq_block::<FAST>(a, core::slice::from_ref(&rqs[t + j]), l.lo, l.hi, &mut out);
                let n = (cout - oc).min(8);
                put_bytes(&mut y, b * cout + oc, &out[..n]);
            }
            t += g;
        }
    }
}

/// An int8 ADD of two same-shape tensors, TFLM's reference arithmetic: both inputs plus
/// their offsets, shifted left by 20, rescaled by `(m1, s1)` / `(m2, s2)`, summed, rescaled
/// by `(mo, so)`, plus the output zero point, clamped.
pub struct AddI8 {
    pub off1: i32,
    pub off2: i32,
    pub m1: i32,
    pub s1: i32,
    pub m2: i32,
    pub s2: i32,
    pub mo: i32,
    pub so: i32,
    pub zp: i32,
    pub lo: i32,
    pub hi: i32,
    /// Per input, `[q, r, b, sh, x0, d]` with `mbqm((x + off) << 20, m, s) = x * q + c +
    /// ((x * r + b - (x < x0) * d) >> sh)` for every int8 `x`, and `c`, the two inputs'
    /// constants summed: see [`add_stage_split`] (called at compile time). The host's AVX-512
    /// loop then spends six instructions per input stage instead of ten.
    pub split: Option<([[i32; 6]; 2], i32)>,
    /// `[a, b, c, f]` with `clamp((x1 * a + x2 * b + c) >> f, lo, hi)` the exact output for
    /// every pair of int8 inputs: see [`add_linear`] (called at compile time). Where present,
    /// every target runs this form: two multiplies, two adds and a shift per element.
    pub lin: Option<[i32; 4]>,
}

/// An int8 ADD's input stage `f(x) = mbqm((x + off) << 20, m, s)` as `x * q + c + ((x * r +
/// b - (x < x0) * d) >> sh)` with every product and sum within int32: `([q, r, b, sh, x0, d],
/// c)`, or `None` for stages outside its domain (`m <= 0`, `s > 0`, `sh = 11 - s > 23`).
///
/// With `t = x + off` and `e = -s`: `srdhm(t << 20, m) = floor((t m + 2^10) / 2^11)`, and the
/// rounding division by `2^e` (half away from zero) of that is one floor, `floor((t m + K) /
/// 2^(11 + e))`, with `K = 2^10 + 2^(10 + e)` for `t >= 0` and `2^11` less for `t < 0` (`e >=
/// 1`). Splitting `m = q 2^sh + r` and `off m + K = c 2^sh + b` leaves `x * r + b` below
/// `2^(sh + 8)`. Checked on all 256 inputs before it is returned.
pub fn add_stage_split(off: i32, m: i32, s: i32) -> Option<([i32; 6], i32)> {
    if !(-256..=256).contains(&off) || m <= 0 || s > 0 || 11 - s > 23 {
        return None;
    }
    let (e, sh) = ((-s) as i64, (11 - s) as i64);
    let m64 = m as i64;
    let (q, r) = (m64 >> sh, m64 & ((1 << sh) - 1));
    let k = off as i64 * m64 + (1 << 10) + if e > 0 { 1 << (10 + e) } else { 0 };
    let (c, b) = (k >> sh, k & ((1 << sh) - 1));
    let d = if e > 0 { 1i64 << 11 } else { 0 };
    let x0 = -off as i64;
    let fits = |v: i64| v >= i32::MIN as i64 && v <= i32::MAX as i64;
    if !fits(c) {
        return None;
    }
    let ok = (-128..=127i64).all(|x| {
        let v = x * r + b - if x < x0 { d } else { 0 };
        fits(v) && x * q + c + (v >> sh) == crate::q::mbqm(((x + off as i64) << 20) as i32, m, s) as i64
    });
    ok.then_some(([q as i32, r as i32, b as i32, sh as i32, x0 as i32, d as i32], c as i32))
}

/// TFLM's int8 ADD of one pair of inputs: both stages, their sum rescaled, the zero point
/// and the clamp ([`add_i8`]'s reference and the tails of its vector loops).
#[inline(always)]
pub fn add_ref(p: &AddI8, va: i8, vb: i8) -> i8 {
    pair_ref(p, va, vb, false)
}

/// TFLM's int8 SUB of one pair of inputs: [`add_ref`] with the second stage subtracted
/// (TFLM's SUB has the ADD's constants: left shift 20, scales relative to twice the larger).
#[inline(always)]
pub fn sub_ref(p: &AddI8, va: i8, vb: i8) -> i8 {
    pair_ref(p, va, vb, true)
}

/// [`add_ref`] (`sub = false`) or [`sub_ref`].
#[inline(always)]
fn pair_ref(p: &AddI8, va: i8, vb: i8, sub: bool) -> i8 {
    let sa = crate::q::mbqm((va as i32 + p.off1).wrapping_shl(20), p.m1, p.s1);
    let sb = crate::q::mbqm((vb as i32 + p.off2).wrapping_shl(20), p.m2, p.s2);
    let s = if sub { sa.wrapping_sub(sb) } else { sa.wrapping_add(sb) };
    crate::q::clamp(crate::q::mbqm(s, p.mo, p.so).wrapping_add(p.zp), p.lo, p.hi) as i8
}

/// [`add_linear`] for a SUB ([`sub_ref`]): the same search with `β` negated.
pub fn sub_linear(p: &AddI8) -> Option<[i32; 4]> {
    pair_linear(p, true)
}

/// An int8 ADD as one linear form: `[a, b, c, f]` such that `clamp((x1 * a + x2 * b + c) >>
/// f, lo, hi)` is [`add_ref`] for every one of the 65,536 pairs of int8 inputs, checked
/// here on all of them, with every product and sum within int32; `None` if the search
/// below finds no such form (called at compile time).
///
/// Why one exists: TFLM's ADD is `round(y)` of the real `y = (x1 + off1) α + (x2 + off2) β +
/// zp` (`α = 2^20 m1 2^(s1 - 31) mo 2^(so - 31)`, `β` alike), except where its three
/// roundings (two input stages, one output stage), which move `y` by about `2^-(e - 1)` for
/// the output's right shift `e` (17 to 20 in real models), carry it across a half
/// integer. Among 65,536 pairs, few or none lie that close to one. The search takes `a`, `b`
/// as `α 2^f`, `β 2^f` rounded, at the largest `f` whose sums fit in int32, then their
/// neighbours and smaller `f`. For each candidate it takes `c` from the interval every pair
/// allows. The form is exact by construction where it is returned: the final loop compares
/// it with [`add_ref`] on every pair.
pub fn add_linear(p: &AddI8) -> Option<[i32; 4]> {
    pair_linear(p, false)
}

/// [`add_linear`] (`sub = false`) or [`sub_linear`].
fn pair_linear(p: &AddI8, sub: bool) -> Option<[i32; 4]> {
    let shifts_ok = |s: i32| (-31..=31).contains(&s);
    if !(shifts_ok(p.s1) && shifts_ok(p.s2) && shifts_ok(p.so)) || !(-256..=256).contains(&p.off1) || !(-256..=256).contains(&p.off2) || p.lo > p.hi {
        return None;
    }
    // `v * 2^k`, rounded half up, or `None` out of range.
    let scaled = |v: i128, k: i32| -> Option<i128> {
        if k >= 0 {
            if k > 120 { None } else { v.checked_mul(1i128 << k) }
        } else if k < -120 {
            Some(0)
        } else {
            Some((v + (1i128 << (-k - 1))) >> -k)
        }
    };
    let (m1, mo) = (p.m1 as i128, p.mo as i128);
    let m2 = if sub { -(p.m2 as i128) } else { p.m2 as i128 };
    // The ideal coefficients at `f`: `x * m * mo * 2^k` with `k = 20 + s + so - 62 + f`.
    let ideal = |f: i32| -> Option<(i128, i128, i128)> {
        let (k1, k2) = (20 + p.s1 + p.so - 62 + f, 20 + p.s2 + p.so - 62 + f);
        let kmin = k1.min(k2).min(-1);
        let c = scaled(p.off1 as i128 * m1 * mo, k1 - kmin)?
            .checked_add(scaled(p.off2 as i128 * m2 * mo, k2 - kmin)?)?
            .checked_add(scaled(2 * p.zp as i128 + 1, f - 1 - kmin)?)?;
        Some((scaled(m1 * mo, k1)?, scaled(m2 * mo, k2)?, scaled(c, kmin)?))
    };
    let fits = |a: i128, b: i128, c: i128| {
        let ext = |x: i128| x.abs() * 128;
        ext(a) + ext(b) + c.abs() < 1i128 << 31
    };
    // The largest `f` at which the ideal form (with room for the neighbours) fits.
    let f0 = (0..=30).rev().find(|&f| matches!(ideal(f), Some((a, b, c)) if fits(a.abs() + 2, b.abs() + 2, c.abs() + 2)))?;
    let x = |i: usize| (i >> 8) as i32 - 128;
    let y = |i: usize| (i & 0xff) as i32 - 128;
    let exact: [i8; 65536] = core::array::from_fn(|i| pair_ref(p, x(i) as i8, y(i) as i8, sub));
    for f in (f0.saturating_sub(2)..=f0).rev() {
        let (ia, ib, ic) = ideal(f)?;
        for (da, db) in [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, 1), (-1, 1), (1, -1)] {
            let (a, b) = ((ia + da) as i64, (ib + db) as i64);
            // Every pair bounds `c`: the pair's output `o`, unless clamped, needs `x1 a + x2
            // b + c` in `[o 2^f, (o + 1) 2^f)`; a clamped output bounds one side only.
            let (mut lo, mut hi) = (i64::MIN, i64::MAX);
            for (i, &o) in exact.iter().enumerate() {
                let v = x(i) as i64 * a + y(i) as i64 * b;
                let o = o as i64;
                if o > p.lo as i64 {
                    lo = lo.max((o << f) - v);
                }
                if o < p.hi as i64 {
                    hi = hi.min(((o + 1) << f) - 1 - v);
                }
            }
            if lo > hi {
                continue;
            }
            let c = (ic as i64).clamp(lo, hi);
            if !fits(a as i128, b as i128, c as i128) {
                continue;
            }
            let (a, b, c) = (a as i32, b as i32, c as i32);
            let ok = exact.iter().enumerate().all(|(i, &o)| crate::q::clamp((x(i) * a + y(i) * b + c) >> f, p.lo, p.hi) as i8 == o);
            if ok {
                return Some([a, b, c, f]);
            }
        }
    }
    None
}

/// [`AddI8`] over `n` elements: by its linear form where the compiler found one
/// ([`add_lin`]); else on x86-64 with AVX2, 8 at a time (the multiplies must not be
/// `i32::MIN`, which `quantize_multiplier` never gives); elsewhere and for the rest, one by one.
#[allow(unsafe_code)]
pub fn add_i8<A: Byte, B: Byte, Y: Out8>(p: &AddI8, a: &[A], b: &[B], n: usize, mut y: Y) {
    let (a, b) = (&a[..n], &b[..n]);
    if let Some(l) = &p.lin {
        return add_lin(p, l, a, b, n, &mut y);
    }
    let one = |va: i8, vb: i8| add_ref(p, va, vb);
    #[allow(unused_mut)]
    let mut done = 0;
    // With AVX-512: 16 at a time.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    if p.m1 != i32::MIN && p.m2 != i32::MIN && p.mo != i32::MIN {
        // The usual case, inputs rescaled right (`s <= 0`) with non-negative multipliers,
        // takes the 32-bit input stages ([`x86::add_stage16`]); each case its own loop.
        let small = |s: i32| (-31..=0).contains(&s);
        if let (Some(split), true) = (p.split, (-30..0).contains(&p.so) && p.mo >= 0) {
            add16_split(p, &split, a, b, n, &mut y);
        } else if small(p.s1) && small(p.s2) && p.m1 >= 0 && p.m2 >= 0 && p.mo >= 0 {
            add16::<A, B, Y, true>(p, a, b, n, &mut y);
        } else {
            add16::<A, B, Y, false>(p, a, b, n, &mut y);
        }
        done = n / 16 * 16;
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2", not(target_feature = "avx512f")))]
    if p.m1 != i32::MIN && p.m2 != i32::MIN && p.mo != i32::MIN {
        use core::arch::x86_64::*;
        // SAFETY: register-only AVX2 arithmetic.
        unsafe {
            let (o1, o2, zp) = (_mm256_set1_epi32(p.off1), _mm256_set1_epi32(p.off2), _mm256_set1_epi32(p.zp));
            let (lo, hi) = (_mm256_set1_epi32(p.lo), _mm256_set1_epi32(p.hi));
            for (i, (ca, cb)) in a.chunks_exact(8).zip(b.chunks_exact(8)).enumerate() {
                let va = x86::widen8(core::array::from_fn(|j| ca[j].byte() as i8));
                let vb = x86::widen8(core::array::from_fn(|j| cb[j].byte() as i8));
                let sa = x86::mbqm8(_mm256_slli_epi32::<20>(_mm256_add_epi32(va, o1)), p.m1, p.s1);
                let sb = x86::mbqm8(_mm256_slli_epi32::<20>(_mm256_add_epi32(vb, o2)), p.m2, p.s2);
                let v = _mm256_add_epi32(x86::mbqm8(_mm256_add_epi32(sa, sb), p.mo, p.so), zp);
                put_bytes(&mut y, 8 * i, &x86::narrow8(_mm256_min_epi32(_mm256_max_epi32(v, lo), hi)));
            }
        }
        done = n / 8 * 8;
    }
    for i in done..n {
        y.put(i, one(a[i].byte() as i8, b[i].byte() as i8));
    }
}

/// [`add_i8`] by its linear form `l` ([`AddI8::lin`]): `clamp((x1 * l[0] + x2 * l[1] + l[2])
/// >> l[3], lo, hi)`, on x86-64 16 (AVX-512) or 8 (AVX2) elements at a time, elsewhere and
/// for the rest one by one. No sum leaves int32 ([`add_linear`] checked), so the wrapping
/// operations never wrap.
#[inline(always)]
#[allow(unsafe_code)]
fn add_lin<A: Byte, B: Byte, Y: Out8>(p: &AddI8, l: &[i32; 4], a: &[A], b: &[B], n: usize, y: &mut Y) {
    let (a, b) = (&a[..n], &b[..n]);
    let one = |va: i8, vb: i8| {
        let v = (va as i32).wrapping_mul(l[0]).wrapping_add((vb as i32).wrapping_mul(l[1])).wrapping_add(l[2]);
        crate::q::clamp(v >> (l[3] & 31), p.lo, p.hi) as i8
    };
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    {
        use core::arch::x86_64::*;
        const { assert!(core::mem::size_of::<A>() == 1 && core::mem::size_of::<B>() == 1) };
        // SAFETY: AVX-512 arithmetic; 16-byte loads at `i + 16 <= n` inside `a` and `b`
        // (one-byte elements, lengths checked above); `store16` stores at checked addresses.
        unsafe {
            let v = _mm512_set1_epi32;
            let (ka, kb, kc, lo, hi) = (v(l[0]), v(l[1]), v(l[2]), v(p.lo), v(p.hi));
            let f = _mm_cvtsi32_si128(l[3] & 31);
            let lanes = |i: usize| {
                let va = _mm512_cvtepi8_epi32(_mm_loadu_si128(a.as_ptr().add(i) as *const __m128i));
                let vb = _mm512_cvtepi8_epi32(_mm_loadu_si128(b.as_ptr().add(i) as *const __m128i));
                let s = _mm512_add_epi32(_mm512_add_epi32(_mm512_mullo_epi32(va, ka), kc), _mm512_mullo_epi32(vb, kb));
                _mm512_min_epi32(_mm512_max_epi32(_mm512_sra_epi32(s, f), lo), hi)
            };
            store16(n, y, lanes);
        }
        done = n / 16 * 16;
    }
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2", not(target_feature = "avx512f")))]
    {
        use core::arch::x86_64::*;
        // SAFETY: register-only AVX2 arithmetic on whole chunks of 8.
        unsafe {
            let v = _mm256_set1_epi32;
            let (ka, kb, kc, lo, hi) = (v(l[0]), v(l[1]), v(l[2]), v(p.lo), v(p.hi));
            let f = _mm_cvtsi32_si128(l[3] & 31);
            for (i, (ca, cb)) in a.chunks_exact(8).zip(b.chunks_exact(8)).enumerate() {
                let va = x86::widen8(core::array::from_fn(|j| ca[j].byte() as i8));
                let vb = x86::widen8(core::array::from_fn(|j| cb[j].byte() as i8));
                let s = _mm256_add_epi32(_mm256_add_epi32(_mm256_mullo_epi32(va, ka), kc), _mm256_mullo_epi32(vb, kb));
                put_bytes(y, 8 * i, &x86::narrow8(_mm256_min_epi32(_mm256_max_epi32(_mm256_sra_epi32(s, f), lo), hi)));
            }
        }
        done = n / 8 * 8;
    }
    for i in done..n {
        y.put(i, one(a[i].byte() as i8, b[i].byte() as i8));
    }
}

/// [`add_i8`] on 16 lanes (AVX-512), the whole chunks of 16 of `n`. With `SMALL` (inputs
/// rescaled right, non-negative multipliers): `t = v + off` has 9 bits, so `srdhm(t << 20,
/// m) = floor((t * m + 2^10) / 2^11)` (the module docs' form of srdhm) is `t * (m >> 11) +
/// ((t * (m & 0x7ff) + 2^10) >> 11)` in 32-bit lanes (each product below 2^29), and every
/// value after it is below 2^29 in magnitude, so TFLM's round-half-away division by `2^e`
/// is `(x + 2^(e-1) - (x < 0)) >> e` without overflow (the output stage's too, for a right
/// shift). Otherwise `mbqm` in full at every stage (multipliers not `i32::MIN`).
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
#[inline(always)]
#[allow(unsafe_code)]
fn add16<A: Byte, B: Byte, Y: Out8, const SMALL: bool>(p: &AddI8, a: &[A], b: &[B], n: usize, y: &mut Y) {
    use core::arch::x86_64::*;
    const { assert!(core::mem::size_of::<A>() == 1 && core::mem::size_of::<B>() == 1) };
    let (a, b) = (&a[..n], &b[..n]);
    // SAFETY: AVX-512 arithmetic; 16-byte loads inside `a` and `b` (`i + 16 <= n` one-byte
    // elements, bounds-checked slices) and stores of 64 or 16 bytes at addresses
    // `Out8::span` checked.
    unsafe {
        let (o1, o2, zp) = (_mm512_set1_epi32(p.off1), _mm512_set1_epi32(p.off2), _mm512_set1_epi32(p.zp));
        let (lo, hi) = (_mm512_set1_epi32(p.lo), _mm512_set1_epi32(p.hi));
        let stage = |t: __m512i, m: i32, s: i32| if SMALL { x86::add_stage16(t, m, s) } else { x86::mbqm16(_mm512_slli_epi32::<20>(t), m, s) };
        let out = |sum: __m512i| if SMALL && p.so <= 0 { x86::rdiv16(x86::srdhm16(sum, p.mo), (-p.so).min(31)) } else { x86::mbqm16(sum, p.mo, p.so) };
        // Elements `i..i + 16`, clamped, as int32 lanes.
        let lanes = |i: usize| {
            let va = _mm512_cvtepi8_epi32(_mm_loadu_si128(a[i..i + 16].as_ptr() as *const __m128i));
            let vb = _mm512_cvtepi8_epi32(_mm_loadu_si128(b[i..i + 16].as_ptr() as *const __m128i));
            let sum = _mm512_add_epi32(stage(_mm512_add_epi32(va, o1), p.m1, p.s1), stage(_mm512_add_epi32(vb, o2), p.m2, p.s2));
            _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(out(sum), zp), lo), hi)
        };
        store16(n, y, lanes);
    }
}

/// The int8 ADD's stores: `lanes(i)` is elements `i..i + 16`, clamped to int8, as int32
/// lanes; every whole 16 of the first `n` elements written to `y`. 64 at a time: two
/// saturating packs (exact: the values are int8 already) leave 128-bit lane `k` holding
/// elements `4k..4k + 4` of each of the four vectors; one dword permutation puts them in
/// order for one 64-byte store.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
#[inline(always)]
#[allow(unsafe_code)]
fn store16<Y: Out8>(n: usize, y: &mut Y, lanes: impl Fn(usize) -> core::arch::x86_64::__m512i) {
    use core::arch::x86_64::*;
    // SAFETY: AVX-512 packs and permutation; stores of 64 or 16 bytes at addresses
    // `Out8::span` checked.
    unsafe {
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        let mut i = 0;
        while i + 64 <= n {
            let (v0, v1, v2, v3) = (lanes(i), lanes(i + 16), lanes(i + 32), lanes(i + 48));
            let bytes = _mm512_packs_epi16(_mm512_packs_epi32(v0, v1), _mm512_packs_epi32(v2, v3));
            _mm512_storeu_si512(y.span(i, 64) as *mut __m512i, _mm512_permutexvar_epi32(order, bytes));
            i += 64;
        }
        while i + 16 <= n {
            _mm_storeu_si128(y.span(i, 16) as *mut __m128i, _mm512_cvtepi32_epi8(lanes(i)));
            i += 16;
        }
    }
}

/// [`add16`] with the input stages split ([`AddI8::split`]): per input `x * q + ((x * r + b
/// - (x < x0) * d) >> sh)`, both constants in one `c`; the output stage as [`add16`]'s
/// (`so` in `-30..=-1`, `mo >= 0`). The stages' constants in registers before the loop.
#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
#[inline(always)]
#[allow(unsafe_code)]
fn add16_split<A: Byte, B: Byte, Y: Out8>(p: &AddI8, split: &([[i32; 6]; 2], i32), a: &[A], b: &[B], n: usize, y: &mut Y) {
    use core::arch::x86_64::*;
    const { assert!(core::mem::size_of::<A>() == 1 && core::mem::size_of::<B>() == 1) };
    let (a, b) = (&a[..n], &b[..n]);
    let e = -p.so;
    assert!((1..=30).contains(&e) && p.mo >= 0);
    // SAFETY: AVX-512 arithmetic; 16-byte loads at `i + 16 <= n` inside `a` and `b` (one-byte
    // elements, lengths checked above) and stores of 64 or 16 bytes at addresses
    // `Out8::span` checked.
    unsafe {
        let v = _mm512_set1_epi32;
        let k: [[__m512i; 6]; 2] = core::array::from_fn(|j| core::array::from_fn(|i| v(split.0[j][i])));
        let c = v(split.1);
        let (zp, lo, hi) = (v(p.zp), v(p.lo), v(p.hi));
        let stage = |x: __m512i, k: &[__m512i; 6]| {
            let t = _mm512_add_epi32(_mm512_mullo_epi32(x, k[1]), k[2]);
            let t = _mm512_mask_sub_epi32(t, _mm512_cmplt_epi32_mask(x, k[4]), t, k[5]);
            (_mm512_mullo_epi32(x, k[0]), _mm512_srav_epi32(t, k[3]))
        };
        let lanes = |i: usize| {
            let va = _mm512_cvtepi8_epi32(_mm_loadu_si128(a.as_ptr().add(i) as *const __m128i));
            let vb = _mm512_cvtepi8_epi32(_mm_loadu_si128(b.as_ptr().add(i) as *const __m128i));
            let ((qa, ha), (qb, hb)) = (stage(va, &k[0]), stage(vb, &k[1]));
            let sum = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(qa, qb), c), _mm512_add_epi32(ha, hb));
            let r = x86::rdiv16(x86::srdhm16(sum, p.mo), e);
            _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(r, zp), lo), hi)
        };
        store16(n, y, lanes);
    }
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

/// `SMLAD`: `acc + lo(a) * lo(b) + hi(a) * hi(b)` (wrapping).
#[inline(always)]
pub fn smlad(acc: i32, a: u32, b: u32) -> i32 {
    let p = (a as i16 as i32) * (b as i16 as i32);
    let q = ((a >> 16) as i16 as i32) * ((b >> 16) as i16 as i32);
    acc.wrapping_add(p).wrapping_add(q)
}

#[cfg(not(any(all(target_arch = "arm", target_feature = "dsp"), target_arch = "x86_64")))]
#[inline(always)]
fn word(w: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]])
}

/// The 4 channels x 2 positions multiply-accumulate: `x` holds `steps` pairs of words
/// (position 0, position 1), `w` at least `steps * 4` words; `acc[2c + p]`.
#[cfg(not(any(all(target_arch = "arm", target_feature = "dsp"), target_arch = "x86_64")))]
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
#[cfg(not(any(all(target_arch = "arm", target_feature = "dsp"), target_arch = "x86_64")))]
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

/// x86-64 (host): the same products with `PMADDWD` (SSE2, part of every x86-64; 256-bit
/// `VPMADDWD`, two steps at a time, where the build enables AVX2): one instruction multiplies
/// a broadcast input pair by the 4 channels' weight pairs and sums each pair, which is SMLAD
/// on 4 lanes (int8-derived operands: no pair sum can overflow).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
pub(crate) mod x86 {
    use core::arch::x86_64::*;

    #[inline(always)]
    fn store(v: __m128i) -> [i32; 4] {
        let mut r = [0i32; 4];
        // SAFETY: `r` is 16 writable bytes; unaligned store.
        unsafe { _mm_storeu_si128(r.as_mut_ptr() as *mut __m128i, v) };
        r
    }

    /// 4 channels x 2 positions; see `mac_4x2`.
    #[inline(always)]
    pub fn mac_4x2(x: &[u32], w: &[u8], acc: &mut [i32; 8]) {
        let steps = x.len() / 2;
        let w = &w[..steps * 16];
        let x = &x[..steps * 2];
        // SAFETY: every load reads inside `w` (`steps * 16` bytes, checked above) or `x`;
        // SSE2/AVX2 are enabled by the cfg that selects each branch.
        unsafe {
            let wp = w.as_ptr();
            #[allow(unused_assignments)]
            let (mut a0, mut a1) = (_mm_setzero_si128(), _mm_setzero_si128());
            #[allow(unused_mut)]
            let mut s = 0;
            #[cfg(target_feature = "avx2")]
            {
                let (mut b0, mut b1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                let (i0, i1) = (_mm256_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2), _mm256_setr_epi32(1, 1, 1, 1, 3, 3, 3, 3));
                let xp = x.as_ptr();
                while s + 2 <= steps {
                    // x[2s..2s+4]: position 0 and 1 of step s, then of step s + 1.
                    let xv = _mm256_castsi128_si256(_mm_loadu_si128(xp.add(2 * s) as *const __m128i));
                    let wv = _mm256_loadu_si256(wp.add(16 * s) as *const __m256i);
                    b0 = _mm256_add_epi32(b0, _mm256_madd_epi16(_mm256_permutevar8x32_epi32(xv, i0), wv));
                    b1 = _mm256_add_epi32(b1, _mm256_madd_epi16(_mm256_permutevar8x32_epi32(xv, i1), wv));
                    s += 2;
                }
                a0 = _mm_add_epi32(_mm256_castsi256_si128(b0), _mm256_extracti128_si256::<1>(b0));
                a1 = _mm_add_epi32(_mm256_castsi256_si128(b1), _mm256_extracti128_si256::<1>(b1));
            }
            for (xs, s) in x[2 * s..].chunks_exact(2).zip(s..) {
                let wv = _mm_loadu_si128(wp.add(16 * s) as *const __m128i);
                a0 = _mm_add_epi32(a0, _mm_madd_epi16(_mm_set1_epi32(xs[0] as i32), wv));
                a1 = _mm_add_epi32(a1, _mm_madd_epi16(_mm_set1_epi32(xs[1] as i32), wv));
            }
            let (r0, r1) = (store(a0), store(a1));
            for c in 0..4 {
                acc[2 * c] = acc[2 * c].wrapping_add(r0[c]);
                acc[2 * c + 1] = acc[2 * c + 1].wrapping_add(r1[c]);
            }
        }
    }

    /// 8 channels x 1 position; see `mac_8x1`.
    #[inline(always)]
    pub fn mac_8x1(x: &[u32], w: &[u8], acc: &mut [i32; 8]) {
        let steps = x.len();
        let w = &w[..steps * 32];
        // SAFETY: every load reads inside `w` (`steps * 32` bytes, checked above).
        unsafe {
            let wp = w.as_ptr();
            #[cfg(target_feature = "avx2")]
            {
                let mut a = _mm256_setzero_si256();
                for (s, &xv) in x.iter().enumerate() {
                    let wv = _mm256_loadu_si256(wp.add(32 * s) as *const __m256i);
                    a = _mm256_add_epi32(a, _mm256_madd_epi16(_mm256_set1_epi32(xv as i32), wv));
                }
                let (r0, r1) = (store(_mm256_castsi256_si128(a)), store(_mm256_extracti128_si256::<1>(a)));
                for c in 0..4 {
                    acc[c] = acc[c].wrapping_add(r0[c]);
                    acc[4 + c] = acc[4 + c].wrapping_add(r1[c]);
                }
            }
            #[cfg(not(target_feature = "avx2"))]
            {
                let (mut a0, mut a1) = (_mm_setzero_si128(), _mm_setzero_si128());
                for (s, &xv) in x.iter().enumerate() {
                    let xb = _mm_set1_epi32(xv as i32);
                    a0 = _mm_add_epi32(a0, _mm_madd_epi16(xb, _mm_loadu_si128(wp.add(32 * s) as *const __m128i)));
                    a1 = _mm_add_epi32(a1, _mm_madd_epi16(xb, _mm_loadu_si128(wp.add(32 * s + 16) as *const __m128i)));
                }
                let (r0, r1) = (store(a0), store(a1));
                for c in 0..4 {
                    acc[c] = acc[c].wrapping_add(r0[c]);
                    acc[4 + c] = acc[4 + c].wrapping_add(r1[c]);
                }
            }
        }
    }

    /// `G` blocks of 8 channels x 1 position; see `dot_8xg`.
    #[cfg(target_feature = "avx2")]
    #[inline(always)]
    pub fn mac_8xg<const G: usize>(x: &[u32], w: &[u8], stride: usize, acc: &mut [[i32; 8]; G]) {
        let steps = x.len();
        assert!(G == 0 || w.len() >= (G - 1) * stride + steps * 32);
        // SAFETY: block `g`, step `s` reads 32 bytes at `g * stride + 32 * s`, inside `w`
        // (checked above).
        unsafe {
            let wp = w.as_ptr();
            let mut a = [_mm256_setzero_si256(); G];
            for (s, &xv) in x.iter().enumerate() {
                let xb = _mm256_set1_epi32(xv as i32);
                for (g, ag) in a.iter_mut().enumerate() {
                    let wv = _mm256_loadu_si256(wp.add(g * stride + 32 * s) as *const __m256i);
                    *ag = _mm256_add_epi32(*ag, _mm256_madd_epi16(xb, wv));
                }
            }
            for (g, ag) in a.iter().enumerate() {
                let (r0, r1) = (store(_mm256_castsi256_si128(*ag)), store(_mm256_extracti128_si256::<1>(*ag)));
                for c in 0..4 {
                    acc[g][c] = acc[g][c].wrapping_add(r0[c]);
                    acc[g][4 + c] = acc[g][4 + c].wrapping_add(r1[c]);
                }
            }
        }
    }

    /// Four positions (pair words interleaved two by two: `xa` positions 0 and 1, `xb`
    /// positions 2 and 3, as `expand2` writes them) by `G` groups of 8 channels, each group
    /// two 4-channel tiles (`ws[g]`: `steps * 16` bytes each; the same tile twice for a
    /// last odd one) or, with `I8`, one tile of 8 channels' int8 pairs (`ws[g].0`, `steps *
    /// 16` bytes, sign-extended on load; not doubled, so the sum is doubled at the end for
    /// `FAST`, from half the bias): per step the four broadcast inputs serve every group and
    /// each weight load the four positions. Then the bias, the doubled-accumulator
    /// requantization (`rq_fast`) on 8 lanes (or `rq_exact` per lane), and per position the
    /// `n` (at most `8 * G`) bytes from channel `oc0` on.
    #[cfg(target_feature = "avx2")]
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub fn quad<Y: super::Out8, const FAST: bool, const I8: bool, const G: usize>(
        xa: &[u32],
        xb: &[u32],
        ws: [(&[u8], &[u8]); G],
        steps: usize,
        bias: [&[i32; 8]; G],
        rq: [&[[i32; 8]; 3]; G],
        lo: i32,
        hi: i32,
        pos: [usize; 4],
        cout: usize,
        oc0: usize,
        n: usize,
        y: &mut Y,
    ) {
        let (xa, xb) = (&xa[..2 * steps], &xb[..2 * steps]);
        let ws: [(&[u8], &[u8]); G] = core::array::from_fn(|g| (&ws[g].0[..16 * steps], &ws[g].1[..16 * steps]));
        assert!(n <= 8 * G);
        // SAFETY: every load is inside `xa`, `xb` (2 * steps words) or a tile of `ws`
        // (16 * steps bytes), checked above; the stores write `n` bytes at an address
        // `Out8::span` checked for `n` bytes, from a buffer of `8 * G >= n` bytes.
        unsafe {
            let mut a: [[__m256i; G]; 4] = [core::array::from_fn(|g| _mm256_loadu_si256(bias[g].as_ptr() as *const __m256i)); 4];
            for s in 0..steps {
                let xv = [
                    _mm256_set1_epi32(*xa.get_unchecked(2 * s) as i32),
                    _mm256_set1_epi32(*xa.get_unchecked(2 * s + 1) as i32),
                    _mm256_set1_epi32(*xb.get_unchecked(2 * s) as i32),
                    _mm256_set1_epi32(*xb.get_unchecked(2 * s + 1) as i32),
                ];
                for g in 0..G {
                    let w = if I8 {
                        _mm256_cvtepi8_epi16(_mm_loadu_si128(ws[g].0.as_ptr().add(16 * s) as *const __m128i))
                    } else {
                        _mm256_loadu2_m128i(ws[g].1.as_ptr().add(16 * s) as *const __m128i, ws[g].0.as_ptr().add(16 * s) as *const __m128i)
                    };
                    for q in 0..4 {
                        a[q][g] = _mm256_add_epi32(a[q][g], _mm256_madd_epi16(xv[q], w));
                    }
                }
            }
            let mut out = [[0i8; 8]; G];
            for (q, aq) in a.iter().enumerate() {
                for g in 0..G {
                    let acc = if I8 && FAST { _mm256_add_epi32(aq[g], aq[g]) } else { aq[g] };
                    out[g] = rq8::<FAST>(acc, rq[g], lo, hi);
                }
                let bytes: &[i8] = out.as_flattened();
                super::put_bytes(y, pos[q] * cout + oc0, &bytes[..n]);
            }
        }
    }

    /// `G` tiles of 8 channels of [`super::fc_channels`] over the pair words `xs`: per step one
    /// broadcast input pair, per tile the 16 int8 weights sign-extended to int16 on load
    /// (`VPMOVSXBW`) and one `VPMADDWD`. `w` starts at the first tile (`steps * 16` bytes
    /// per tile). Returns the accumulators, which start at `acc`.
    #[cfg(target_feature = "avx2")]
    #[inline(always)]
    pub fn fc_tiles<const G: usize>(xs: &[u32], w: &[u8], steps: usize, acc: &mut [[i32; 8]; G]) {
        let xs = &xs[..steps];
        let w = &w[..G * steps * 16];
        // SAFETY: every load is inside `xs` (steps words) or `w` (G * steps * 16 bytes),
        // checked above; `acc` is G * 32 bytes, unaligned loads and stores.
        unsafe {
            let mut a: [__m256i; G] = core::array::from_fn(|g| _mm256_loadu_si256(acc[g].as_ptr() as *const __m256i));
            let wp = w.as_ptr();
            for (s, &xv) in xs.iter().enumerate() {
                let xb = _mm256_set1_epi32(xv as i32);
                for g in 0..G {
                    let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(wp.add((g * steps + s) * 16) as *const __m128i));
                    a[g] = _mm256_add_epi32(a[g], _mm256_madd_epi16(xb, wv));
                }
            }
            for g in 0..G {
                _mm256_storeu_si256(acc[g].as_mut_ptr() as *mut __m256i, a[g]);
            }
        }
    }

    /// [`crate::q::mbqm`] on 8 lanes with one multiplier `m` (not `i32::MIN`, so the
    /// saturating case cannot occur) and one shift: `srdhm(x << left, m)` for a positive
    /// shift, `rdivpot(srdhm(x, m), right)` otherwise. 64-bit products of the even and the
    /// odd lanes; the truncating division by 2^31 keeps bits 31..62, which a logical shift
    /// leaves in the low half of each 64-bit lane as an arithmetic one would.
    #[cfg(target_feature = "avx2")]
    #[inline(always)]
    #[cfg_attr(target_feature = "avx512f", allow(dead_code))]
    pub fn mbqm8(x: __m256i, m: i32, shift: i32) -> __m256i {
        // SAFETY: register-only AVX2 arithmetic (the cfg enables AVX2).
        unsafe {
            let x = if shift > 0 { _mm256_sllv_epi32(x, _mm256_set1_epi32(shift)) } else { x };
            let mv = _mm256_set1_epi32(m);
            let zero = _mm256_setzero_si256();
            let half = |p: __m256i| {
                // (p + nudge) / 2^31, truncated toward zero; the result in the low 32 bits.
                let nudge = _mm256_add_epi64(_mm256_set1_epi64x(1 << 30), _mm256_and_si256(_mm256_cmpgt_epi64(zero, p), _mm256_set1_epi64x(1 - (1i64 << 31))));
                let v = _mm256_add_epi64(p, nudge);
                let v = _mm256_add_epi64(v, _mm256_and_si256(_mm256_cmpgt_epi64(zero, v), _mm256_set1_epi64x((1i64 << 31) - 1)));
                _mm256_srli_epi64::<31>(v)
            };
            let even = half(_mm256_mul_epi32(x, mv));
            let odd = half(_mm256_mul_epi32(_mm256_srli_epi64::<32>(x), mv));
            let r = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
            if shift >= 0 {
                return r;
            }
            let e = (-shift).min(31);
            let mask = ((1i64 << e) - 1) as i32;
            let rem = _mm256_and_si256(r, _mm256_set1_epi32(mask));
            // threshold = (mask >> 1) + (r < 0); compare results are -1 for true.
            let thr = _mm256_sub_epi32(_mm256_set1_epi32(mask >> 1), _mm256_cmpgt_epi32(zero, r));
            _mm256_sub_epi32(_mm256_srav_epi32(r, _mm256_set1_epi32(e)), _mm256_cmpgt_epi32(rem, thr))
        }
    }

    /// gemmlowp's `SaturatingRoundingDoublingHighMul(x, m)` on 16 lanes (`m` not
    /// `i32::MIN`): `(p + nudge) / 2^31` truncated toward zero is `floor((p + 2^30) / 2^31)`
    /// for either sign (see the module docs), the high word of `2p + 2^31`: for the odd lanes
    /// where it stands; the even lanes' moved down.
    #[cfg(target_feature = "avx512f")]
    #[inline(always)]
    pub fn srdhm16(x: __m512i, m: i32) -> __m512i {
        // SAFETY: register-only AVX-512 arithmetic (the cfg enables AVX-512F).
        unsafe {
            let mv = _mm512_set1_epi32(m);
            let two31 = _mm512_set1_epi64(1 << 31);
            let high = |p: __m512i| _mm512_add_epi64(_mm512_add_epi64(p, p), two31);
            let even = _mm512_srli_epi64::<32>(high(_mm512_mul_epi32(x, mv)));
            let odd = high(_mm512_mul_epi32(_mm512_srli_epi64::<32>(x), mv));
            _mm512_mask_blend_epi32(0xAAAA, even, odd)
        }
    }

    /// [`mbqm8`] on 16 lanes (AVX-512).
    #[cfg(target_feature = "avx512f")]
    #[inline(always)]
    pub fn mbqm16(x: __m512i, m: i32, shift: i32) -> __m512i {
        // SAFETY: register-only AVX-512 arithmetic (the cfg enables AVX-512F).
        unsafe {
            let x = if shift > 0 { _mm512_sllv_epi32(x, _mm512_set1_epi32(shift)) } else { x };
            let zero = _mm512_setzero_si512();
            let r = srdhm16(x, m);
            if shift >= 0 {
                return r;
            }
            let e = (-shift).min(31);
            let mask = ((1i64 << e) - 1) as i32;
            let rem = _mm512_and_si512(r, _mm512_set1_epi32(mask));
            // threshold = (mask >> 1) + (r < 0).
            let thr = _mm512_mask_add_epi32(_mm512_set1_epi32(mask >> 1), _mm512_cmplt_epi32_mask(r, zero), _mm512_set1_epi32(mask >> 1), _mm512_set1_epi32(1));
            _mm512_mask_add_epi32(_mm512_srav_epi32(r, _mm512_set1_epi32(e)), _mm512_cmpgt_epi32_mask(rem, thr), _mm512_srav_epi32(r, _mm512_set1_epi32(e)), _mm512_set1_epi32(1))
        }
    }

    /// The requantization of 16 accumulators (undoubled) with one group's constants: with
    /// `FAST`, `rq_fast` of the doubled accumulators on 16 lanes (`hi32(a2 * m + 2^31) + k +
    /// (a2 >> 31)`, shifted right by `e`, clamped); else `rq_exact` lane by lane.
    #[cfg(target_feature = "avx512f")]
    #[inline(always)]
    pub fn rq16<const FAST: bool>(acc: __m512i, r: &[[i32; 16]; 3], lo: i32, hi: i32) -> __m128i {
        // SAFETY: AVX-512 arithmetic; the rows of `r` are 64 readable bytes, `v` 64
        // writable and `out` 16 readable (unaligned loads and stores).
        unsafe {
            if FAST {
                let ld = |v: &[i32; 16]| _mm512_loadu_si512(v.as_ptr() as *const __m512i);
                rq16_fast(acc, ld(&r[0]), ld(&r[1]), ld(&r[2]), lo, hi)
            } else {
                let mut v = [0i32; 16];
                _mm512_storeu_si512(v.as_mut_ptr() as *mut __m512i, acc);
                let out: [i8; 16] = core::array::from_fn(|c| super::rq_exact(v[c], &[r[0][c], r[1][c], r[2][c]], lo, hi));
                _mm_loadu_si128(out.as_ptr() as *const __m128i)
            }
        }
    }

    /// [`rq16`]'s `FAST` form with its constants in registers (`m`, `k`, `e` per lane; the
    /// accumulators undoubled).
    #[cfg(target_feature = "avx512f")]
    #[inline(always)]
    pub fn rq16_fast(acc: __m512i, m: __m512i, k: __m512i, e: __m512i, lo: i32, hi: i32) -> __m128i {
        // SAFETY: register-only AVX-512 arithmetic (the cfg enables AVX-512F).
        unsafe {
            let a = _mm512_add_epi32(acc, acc);
            let half = _mm512_set1_epi64(0x8000_0000);
            let pe = _mm512_add_epi64(_mm512_mul_epi32(a, m), half);
            let po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64::<32>(a), _mm512_srli_epi64::<32>(m)), half);
            let hi32 = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64::<32>(pe), po);
            let v = _mm512_add_epi32(_mm512_add_epi32(hi32, k), _mm512_srai_epi32::<31>(a));
            let v = _mm512_min_epi32(_mm512_max_epi32(_mm512_srav_epi32(v, e), _mm512_set1_epi32(lo)), _mm512_set1_epi32(hi));
            _mm512_cvtepi32_epi8(v)
        }
    }

    /// TFLM's `RoundingDivideByPOT(x, e)` (half away from zero) on 16 lanes as `(x + 2^(e-1)
    /// - (x < 0)) >> e`, for `|x| + 2^(e-1) < 2^31` (no overflow), `e` in 0..=31.
    #[cfg(target_feature = "avx512f")]
    #[inline(always)]
    pub fn rdiv16(x: __m512i, e: i32) -> __m512i {
        if e == 0 {
            return x;
        }
        // SAFETY: register-only AVX-512 arithmetic (the cfg enables AVX-512F).
        unsafe {
            let k = _mm512_add_epi32(_mm512_srai_epi32::<31>(x), _mm512_set1_epi32(1 << (e - 1)));
            _mm512_srav_epi32(_mm512_add_epi32(x, k), _mm512_set1_epi32(e))
        }
    }

    /// `mbqm(t << 20, m, s)` on 16 lanes for `|t| <= 256`, `m >= 0`, `s` in -31..=0 (an int8
    /// ADD's input stage): `srdhm(t << 20, m) = floor((t * m + 2^10) / 2^11) = t * (m >> 11)
    /// + ((t * (m & 0x7ff) + 2^10) >> 11)`, products below 2^29 in magnitude, then
    /// [`rdiv16`] by `-s`.
    #[cfg(target_feature = "avx512f")]
    #[inline(always)]
    pub fn add_stage16(t: __m512i, m: i32, s: i32) -> __m512i {
        // SAFETY: register-only AVX-512 arithmetic (the cfg enables AVX-512F).
        unsafe {
            let hi = _mm512_mullo_epi32(t, _mm512_set1_epi32(m >> 11));
            let lo = _mm512_srai_epi32::<11>(_mm512_add_epi32(_mm512_mullo_epi32(t, _mm512_set1_epi32(m & 0x7ff)), _mm512_set1_epi32(1 << 10)));
            rdiv16(_mm512_add_epi32(hi, lo), -s)
        }
    }

    /// 8 int8 values as int32 lanes.
    #[cfg(target_feature = "avx2")]
    #[inline(always)]
    #[cfg_attr(target_feature = "avx512f", allow(dead_code))]
    pub fn widen8(v: [i8; 8]) -> __m256i {
        // SAFETY: `v` is 8 readable bytes.
        unsafe { _mm256_cvtepi8_epi32(_mm_loadl_epi64(v.as_ptr() as *const __m128i)) }
    }

    /// int32 lanes (already within the int8 range) as 8 bytes.
    #[cfg(target_feature = "avx2")]
    #[inline(always)]
    #[cfg_attr(target_feature = "avx512f", allow(dead_code))]
    pub fn narrow8(v: __m256i) -> [i8; 8] {
        let mut out = [0i8; 8];
        // SAFETY: AVX2 packs and one 8-byte store into `out`.
        unsafe {
            let h = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            _mm_storel_epi64(out.as_mut_ptr() as *mut __m128i, _mm_packs_epi16(h, h));
        }
        out
    }

    /// [`super::rq_fast`] on 8 lanes with per-lane constants `m`, `k`, `e` (`e` in 0..32):
    /// `hi32(acc * m + 2^31) + k + (acc >> 31)`, shifted right by `e`, clamped to
    /// `lo..=hi`, as bytes.
    #[cfg(target_feature = "avx2")]
    #[inline(always)]
    pub fn rq8_fast(acc: __m256i, m: __m256i, k: __m256i, e: __m256i, lo: i32, hi: i32) -> [i8; 8] {
        let mut out = [0i8; 8];
        // SAFETY: AVX2 arithmetic (the cfg enables AVX2) and one 8-byte store into `out`.
        unsafe {
            let half = _mm256_set1_epi64x(0x8000_0000);
            let pe = _mm256_add_epi64(_mm256_mul_epi32(acc, m), half);
            let po = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64::<32>(acc), _mm256_srli_epi64::<32>(m)), half);
            let hi32 = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(pe), po);
            let v = _mm256_add_epi32(_mm256_add_epi32(hi32, k), _mm256_srai_epi32::<31>(acc));
            let v = _mm256_min_epi32(_mm256_max_epi32(_mm256_srav_epi32(v, e), _mm256_set1_epi32(lo)), _mm256_set1_epi32(hi));
            // Within the int8 range after the clamp: the saturating packs are exact.
            let h = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            _mm_storel_epi64(out.as_mut_ptr() as *mut __m128i, _mm_packs_epi16(h, h));
        }
        out
    }

    /// The requantization of the 8 accumulators of a group of 8 channels with the group's
    /// constants lane by lane: [`rq8_fast`] (`[m; 8], [k; 8], [e; 8]`; the accumulators
    /// already doubled) when `FAST`, else `rq_exact` per lane (`(multiplier, shift, zp)`).
    #[cfg(target_feature = "avx2")]
    #[inline(always)]
    pub fn rq8<const FAST: bool>(acc: __m256i, r: &[[i32; 8]; 3], lo: i32, hi: i32) -> [i8; 8] {
        // SAFETY: each row of `r` is 32 readable bytes (unaligned loads), `v` 32 writable.
        unsafe {
            if FAST {
                let ld = |v: &[i32; 8]| _mm256_loadu_si256(v.as_ptr() as *const __m256i);
                rq8_fast(acc, ld(&r[0]), ld(&r[1]), ld(&r[2]), lo, hi)
            } else {
                let mut v = [0i32; 8];
                _mm256_storeu_si256(v.as_mut_ptr() as *mut __m256i, acc);
                core::array::from_fn(|c| super::rq_exact(v[c], &[r[0][c], r[1][c], r[2][c]], lo, hi))
            }
        }
    }

    /// [`rq8_fast`] of 8 accumulators in memory, doubled first, with the constants of a group
    /// of 8 channels (`[m; 8], [k; 8], [e; 8]`).
    #[cfg(target_feature = "avx2")]
    #[inline(always)]
    pub fn rq8_fast_doubled(acc: &[i32; 8], r: &[[i32; 8]; 3], lo: i32, hi: i32) -> [i8; 8] {
        // SAFETY: `acc` is 32 readable bytes; unaligned load.
        let a = unsafe { _mm256_loadu_si256(acc.as_ptr() as *const __m256i) };
        // SAFETY: register-only AVX2 arithmetic (the cfg enables AVX2).
        rq8::<true>(unsafe { _mm256_add_epi32(a, a) }, r, lo, hi)
    }

    /// The chunks `(w_even, w_odd, offset)` of one sparse channel over 4 positions: per chunk
    /// the 4 lanes' pair words of the two steps, each `PMADDWD` with a broadcast weight pair.
    #[inline(always)]
    pub fn sparse_chunks(acc: [i32; 4], xs: &[u32], chunks: &[i32]) -> [i32; 4] {
        // SAFETY: each chunk's 8 words are bounds-checked before the unaligned loads.
        unsafe {
            let mut a = _mm_loadu_si128(acc.as_ptr() as *const __m128i);
            for c in chunks.chunks_exact(3) {
                let x = &xs[c[2] as usize / 4..][..8];
                let x0 = _mm_loadu_si128(x.as_ptr() as *const __m128i);
                let x1 = _mm_loadu_si128(x.as_ptr().add(4) as *const __m128i);
                a = _mm_add_epi32(a, _mm_madd_epi16(x0, _mm_set1_epi32(c[0])));
                a = _mm_add_epi32(a, _mm_madd_epi16(x1, _mm_set1_epi32(c[1])));
            }
            store(a)
        }
    }
}
#[cfg(target_arch = "x86_64")]
use x86::{mac_4x2, mac_8x1};

#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[allow(unsafe_code)]
#[inline(always)]
fn mac_4x2(x: &[u32], w: &[u8], acc: &mut [i32; 8]) {
    let iters = x.len() / 4;
    assert!(iters > 0 && x.len() == iters * 4 && w.len() >= iters * 32 && (w.as_ptr() as usize) % 4 == 0);
    let [mut a0, mut a1, mut a2, mut a3, mut a4, mut a5, mut a6, mut a7] = *acc;
    // SAFETY: reads `iters * 4` words from `x` and `iters * 8` words from `w`, both in
    // bounds and word aligned (checked above); writes only registers and the stack below
    // `sp` (the loop counter and r6/r7, which Rust reserves and which are restored).
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "str r12, [sp, #-4]!",
            "2:",
            ".rept 2",
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

/// The 8 channels x 1 position multiply-accumulate for callers outside this module (the
/// hybrid float kernels): `acc[c] += lo(x[s]) * lo(w[s][c]) + hi(x[s]) * hi(w[s][c])` over
/// the int16 pair words `x` (a multiple of 4 of them), weights packed `[s][c]` as words
/// (4-byte aligned, at least `x.len() * 32` bytes).
#[inline(always)]
pub fn dot_8x1(x: &[u32], w: &[u8], acc: &mut [i32; 8]) {
    mac_8x1(x, w, acc)
}

/// [`dot_8x1`] for `G` blocks of 8 channels at once, block `g`'s weights at `g * stride`
/// bytes of `w`: `acc[g][c] += lo(x[s]) * lo(w_g[s][c]) + hi(x[s]) * hi(w_g[s][c])`. On
/// x86-64 with AVX2 each input pair is broadcast once for all `G` blocks (`G` vector
/// accumulators; at most 8 keep them in registers); elsewhere block after block. The
/// same integer sums either way.
#[inline(always)]
pub fn dot_8xg<const G: usize>(x: &[u32], w: &[u8], stride: usize, acc: &mut [[i32; 8]; G]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    x86::mac_8xg(x, w, stride, acc);
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    for (g, a) in acc.iter_mut().enumerate() {
        mac_8x1(x, &w[g * stride..g * stride + x.len() * 32], a);
    }
}

/// x86-64 with AVX-512 VNNI: `G` groups of 16 channels over one row of bytes `x` (`4 *
/// kq` values offset to uint8), group `g`'s weights at `g * stride` bytes of `w` in the
/// VNNI layout (`[kq][16][4]` int8): `acc[g][c] += sum(x[i] * w_g[i][c])` with
/// `VPDPBUSD`, each 4-byte word broadcast once for all groups (even and odd words into
/// separate accumulators).
#[cfg(all(target_arch = "x86_64", target_feature = "avx512vnni"))]
#[inline(always)]
#[allow(unsafe_code)]
pub fn dot_u8x4<const G: usize>(x: &[u8], w: &[u8], stride: usize, acc: &mut [[i32; 16]; G]) {
    use core::arch::x86_64::*;
    let kq = x.len() / 4;
    let x = &x[..4 * kq];
    assert!(G == 0 || w.len() >= (G - 1) * stride + kq * 64);
    // SAFETY: word `s` of `x` is at `4 * s + 4 <= 4 * kq` bytes; group `g`'s weights of word
    // `s` at `g * stride + (s + 1) * 64 <= w.len()` (checked above); `acc` rows are 64 bytes.
    unsafe {
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        let mut a0: [__m512i; G] = core::array::from_fn(|g| _mm512_loadu_si512(acc[g].as_ptr() as *const __m512i));
        let mut a1: [__m512i; G] = [_mm512_setzero_si512(); G];
        let mut s = 0;
        while s + 2 <= kq {
            let x0 = _mm512_set1_epi32((xp.add(4 * s) as *const i32).read_unaligned());
            let x1 = _mm512_set1_epi32((xp.add(4 * s + 4) as *const i32).read_unaligned());
            for g in 0..G {
                a0[g] = _mm512_dpbusd_epi32(a0[g], x0, _mm512_loadu_si512(wp.add(g * stride + s * 64) as *const __m512i));
                a1[g] = _mm512_dpbusd_epi32(a1[g], x1, _mm512_loadu_si512(wp.add(g * stride + s * 64 + 64) as *const __m512i));
            }
            s += 2;
        }
        if s < kq {
            let x0 = _mm512_set1_epi32((xp.add(4 * s) as *const i32).read_unaligned());
            for g in 0..G {
                a0[g] = _mm512_dpbusd_epi32(a0[g], x0, _mm512_loadu_si512(wp.add(g * stride + s * 64) as *const __m512i));
            }
        }
        for g in 0..G {
            _mm512_storeu_si512(acc[g].as_mut_ptr() as *mut __m512i, _mm512_add_epi32(a0[g], a1[g]));
        }
    }
}

/// Every full tile of 4 channels for one pair of positions, in one `asm!` block: first,
/// when `x0` is not null, the expansion of the two rows at `x0` and `x1` (`2 * STEPS` int8
/// values each) into `xs`; then per tile the accumulators start at the bias, the
/// multiply-accumulate runs the `STEPS` pair words (fully unrolled up to 32, else a loop),
/// then `rq_fast` (`SMMLAR`, `ASR`, `SSAT`) and the stores of 4 bytes at `y0` and `y1`.
/// Only for the full int8 output range (no further clamp).
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[allow(unsafe_code, clippy::too_many_arguments)]
#[inline(never)]
fn tiles_4x2_asm<const STEPS: usize>(x0: *const u8, x1: *const u8, xs: &mut [u32], w: &[u8], bias: &[i32], rq: &[[i32; 3]], y0: *mut u8, y1: *mut u8, tiles: usize) {
    assert!(tiles > 0 && STEPS % 2 == 0 && STEPS > 0 && xs.len() >= 2 * STEPS);
    assert!(w.len() >= tiles * STEPS * 16 && (w.as_ptr() as usize) % 4 == 0);
    assert!(bias.len() >= 4 * tiles && rq.len() >= 4 * tiles);
    let state: [usize; 8] = [xs.as_mut_ptr() as usize, bias.as_ptr() as usize, rq.as_ptr() as usize, y0 as usize, y1 as usize, tiles, x0 as usize, x1 as usize];
    // SAFETY: reads the `2 * STEPS` bytes at `x0` and at `x1` when `x0` is not null (the
    // caller got them from `Rows::dense`), writes then reads `xs` (2 * STEPS words), reads
    // `w` (tiles * STEPS * 16 bytes), `bias` and `rq` (4 * tiles entries), all in bounds
    // and word aligned (checked above; `[i32]` and `[u32]` are aligned by type); writes
    // 4 * tiles bytes at `y0` and at `y1`, which the caller obtained from `Out8::span`.
    // Uses the stack below `sp` for its state and for r6/r7 (reserved by Rust, restored).
    unsafe {
        core::arch::asm!(
            "ldm r10, {{r0, r1, r2, r3, r4, r5, r8, r9}}",
            "push {{r6, r7}}",
            "push {{r0, r1, r2, r3, r4, r5, r8, r9}}",
            // Frame: 0 xs, 4 bias, 8 rq, 12 y0, 16 y1, 20 tiles, 24 x0 (then the loop
            // counter), 28 x1.
            "movs r0, r8",
            "beq 5f",
            "mov r1, r9",
            "ldr r10, [sp]",
            ".if {chunks} <= 16",
            ".rept {chunks}",
            "ldr r8, [r0], #4",
            "ldr r9, [r1], #4",
            "sxtb16 r2, r8",
            "sxtb16 r3, r9",
            "sxtb16 r4, r8, ror #8",
            "sxtb16 r5, r9, ror #8",
            "stm r10!, {{r2, r3, r4, r5}}",
            ".endr",
            ".else",
            "movw r12, #{chunks}",
            "6:",
            "ldr r8, [r0], #4",
            "ldr r9, [r1], #4",
            "sxtb16 r2, r8",
            "sxtb16 r3, r9",
            "sxtb16 r4, r8, ror #8",
            "sxtb16 r5, r9, ror #8",
            "stm r10!, {{r2, r3, r4, r5}}",
            "subs r12, r12, #1",
            "bne 6b",
            ".endif",
            "5:",
            "3:",
            "ldr r10, [sp, #4]",
            "ldm r10!, {{r0, r2, r4, r8}}",
            "str r10, [sp, #4]",
            "mov r1, r0",
            "mov r3, r2",
            "mov r5, r4",
            "mov r9, r8",
            "ldr r10, [sp]",
            ".if {steps} <= 32",
            ".rept {steps}",
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
            ".else",
            "movw r12, #{iters}",
            "str r12, [sp, #24]",
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
            "ldr r12, [sp, #24]",
            "subs r12, r12, #1",
            "str r12, [sp, #24]",
            "bne 2b",
            ".endif",
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
            chunks = const STEPS / 2,
            steps = const STEPS,
            u = const if STEPS % 8 == 0 { 8 } else if STEPS % 4 == 0 { 4 } else { 2 },
            iters = const STEPS / if STEPS % 8 == 0 { 8 } else if STEPS % 4 == 0 { 4 } else { 2 },
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
pub fn gemm_4x2<R: Rows, Y: Out8, const FAST: bool, const STEPS: usize>(l: &Gemm, rows: &mut R, npos: usize, mut y: Y, rev: bool, xs: &mut [u32]) {
    let steps = l.steps;
    assert!(steps == STEPS);
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512vnni"))]
    if l.vnni {
        vnni::gemm::<R, Y, FAST, STEPS>(l, rows, npos, &mut y, rev, xs);
        return;
    }
    // (Generated code sets `vnni` only where this build has VNNI; checked on the hosts
    // without, the only other builds that read the layouts it would change.)
    #[cfg(all(target_arch = "x86_64", not(target_feature = "avx512vnni")))]
    assert!(!l.vnni, "the VNNI layout needs AVX-512 VNNI");
    let tiles = l.cout.div_ceil(4);
    // On x86-64 with AVX2 (scratch for two pairs given, `XS_GROUPS`), whole groups of four
    // positions first (forwards) or last (backwards) through `quad`; the others by pairs.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    let mut groups_buf = [const { core::mem::MaybeUninit::<Group>::uninit() }; QUAD_GROUPS];
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    let pre = if xs.len() >= 2 * (2 * steps + 2) && (npos >= 4 || l.w_i8) { quad_groups(l, FAST && l.w_i8, &mut groups_buf) } else { None };
    // The int8 layout is only read 8 channels at a time, by `quad`.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    assert!(pre.is_some() || !l.w_i8, "int8 weights need the 4-position groups");
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    // The last group may be partial: its missing positions repeat the last one (computed
    // twice, written twice with the same bytes after all of the group's reads).
    let quads = if pre.is_some() { npos.div_ceil(4) } else { 0 };
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    let quads = 0;
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    if let (false, Some(pre)) = (rev, pre) {
        for i in 0..quads {
            quad::<R, Y, FAST, STEPS>(l, pre, rows, 4 * i, npos, false, xs, &mut y);
        }
    }
    let xs_all = xs;
    let xs = &mut xs_all[..2 * steps + 2];
    // (The int8 layout, only read by `quad`, which took every position above.)
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    let w = &l.w[..if l.w_i8 { 0 } else { tiles * steps * 16 }];
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
    let w = &l.w[..tiles * steps * 16];
    let (bias, rqs) = (&l.bias[..tiles * 4], &l.rq[..l.cout]);
    // Whole tiles of the full output range go through one `asm!` block on Cortex-M4/M7.
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    let asm_tiles = if FAST && l.lo == -128 && l.hi == 127 { l.cout / 4 } else { 0 };
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    let asm_tiles = 0;
    let mut tile = |p0: usize, p1: usize, y: &mut Y| {
        #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
        if asm_tiles > 0 {
            let (y0, y1) = (y.span(p0 * l.cout, 4 * asm_tiles), y.span(p1 * l.cout, 4 * asm_tiles));
            match (rows.dense(p0, 2 * STEPS), rows.dense(p1, 2 * STEPS)) {
                (Some(x0), Some(x1)) if asm_tiles == tiles => {
                    tiles_4x2_asm::<STEPS>(x0, x1, xs, w, bias, rqs, y0, y1, asm_tiles);
                    return;
                }
                _ => {
                    rows.expand2(p0, p1, xs);
                    tiles_4x2_asm::<STEPS>(core::ptr::null(), core::ptr::null(), xs, w, bias, rqs, y0, y1, asm_tiles);
                }
            }
        } else {
            rows.expand2(p0, p1, xs);
        }
        #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
        {
            rows.expand2(p0, p1, xs);
        }
        let xs = &xs[..2 * steps];
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
    let first_pair = 2 * quads;
    let odd = npos % 2 == 1 && 4 * quads < npos;
    if !rev {
        for i in first_pair..pairs {
            tile(2 * i, 2 * i + 1, &mut y);
        }
        if odd {
            tile(npos - 1, npos - 1, &mut y);
        }
    } else {
        if odd {
            tile(npos - 1, npos - 1, &mut y);
        }
        for i in (first_pair..pairs).rev() {
            tile(2 * i, 2 * i + 1, &mut y);
        }
        #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
        if let Some(pre) = pre {
            for i in (0..quads).rev() {
                quad::<R, Y, FAST, STEPS>(l, pre, rows, 4 * i, npos, true, xs_all, &mut y);
            }
        }
    }
}

/// Scratch words per unit of `xs_words` the generated code allocates for [`gemm_4x2`]: two
/// pairs of rows on x86-64 with AVX2 (groups of four positions), one pair elsewhere.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
pub const XS_GROUPS: usize = 2;
#[cfg(not(all(target_arch = "x86_64", target_feature = "avx2")))]
pub const XS_GROUPS: usize = 1;

/// Positions `p..p + 4` of [`gemm_4x2`] on x86-64 (those past `npos` repeat the last): the
/// four rows expanded (two pairs; the pair order of the one-position-at-a-time direction),
/// then every 8 channels at once.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn quad<R: Rows, Y: Out8, const FAST: bool, const STEPS: usize>(l: &Gemm, pre: &[Group], rows: &mut R, p: usize, npos: usize, rev: bool, xs: &mut [u32], y: &mut Y) {
    let steps = STEPS;
    let half = 2 * steps + 2;
    let (xa, xb) = xs[..2 * half].split_at_mut(half);
    let pos: [usize; 4] = core::array::from_fn(|q| (p + q).min(npos - 1));
    if rev {
        rows.expand2(pos[2], pos[3], xb);
        rows.expand2(pos[0], pos[1], xa);
    } else {
        rows.expand2(pos[0], pos[1], xa);
        rows.expand2(pos[2], pos[3], xb);
    }
    let tiles = l.cout.div_ceil(4);
    let tile = |t: usize| &l.w[t.min(tiles - 1) * steps * 16..];
    // Group `t / 2` of the int8 layout: channels `4t..4t + 8`.
    let group = |t: usize| &l.w[t / 2 * steps * 16..];
    let mut t = 0;
    // 16 channels at a time, then 8 (the last group possibly a lone 4-channel tile); group
    // `t / 2` of `pre` holds the bias and requantization of channels `4t..4t + 8`.
    while t + 4 <= tiles {
        let (g0, g1) = (&pre[t / 2], &pre[t / 2 + 1]);
        let n = (l.cout - 4 * t).min(16);
        if l.w_i8 {
            x86::quad::<Y, FAST, true, 2>(xa, xb, [(group(t), group(t)), (group(t + 2), group(t + 2))], steps, [&g0.0, &g1.0], [&g0.1, &g1.1], l.lo, l.hi, pos, l.cout, 4 * t, n, y);
        } else {
            x86::quad::<Y, FAST, false, 2>(xa, xb, [(tile(t), tile(t + 1)), (tile(t + 2), tile(t + 3))], steps, [&g0.0, &g1.0], [&g0.1, &g1.1], l.lo, l.hi, pos, l.cout, 4 * t, n, y);
        }
        t += 4;
    }
    while t < tiles {
        let g0 = &pre[t / 2];
        let n = (l.cout - 4 * t).min(8);
        if l.w_i8 {
            x86::quad::<Y, FAST, true, 1>(xa, xb, [(group(t), group(t))], steps, [&g0.0], [&g0.1], l.lo, l.hi, pos, l.cout, 4 * t, n, y);
        } else {
            x86::quad::<Y, FAST, false, 1>(xa, xb, [(tile(t), tile(t + 1))], steps, [&g0.0], [&g0.1], l.lo, l.hi, pos, l.cout, 4 * t, n, y);
        }
        t += 2;
    }
}

/// Output channels [`gemm_4x2`] takes with int8 weights on x86-64 (`Gemm::w_i8`): the
/// groups of 8 its 4-position kernel holds precomputed.
pub const QUAD_CHANNELS: usize = 512;

/// Groups of 8 channels [`quad`] can hold precomputed ([`QUAD_CHANNELS`]).
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
const QUAD_GROUPS: usize = QUAD_CHANNELS / 8;

/// The accumulator start and the requantization constants, lane by lane, of 8 channels.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
type Group = ([i32; 8], [[i32; 8]; 3]);

/// Per group of 8 channels of `l`, the accumulator start and the requantization constants
/// lane by lane (`[m; 8], [k; 8], [e; 8]`, or the exact form's), for [`quad`], written into
/// the first groups of `buf` (left uninitialized past them: no 8 KB clear or copy per call);
/// `None` past [`QUAD_GROUPS`] groups. With `half`, the start is half the (even, doubled)
/// bias: undoubled int8 weights accumulate from it and the sum is doubled at the end.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[inline(always)]
#[allow(unsafe_code)]
fn quad_groups<'b>(l: &Gemm, half: bool, buf: &'b mut [core::mem::MaybeUninit<Group>; QUAD_GROUPS]) -> Option<&'b [Group]> {
    let tiles = l.cout.div_ceil(4);
    let n = tiles.div_ceil(2);
    if n > QUAD_GROUPS {
        return None;
    }
    for (gi, slot) in buf.iter_mut().enumerate().take(n) {
        let t = 2 * gi;
        let mut g: Group = ([0; 8], [[0; 8]; 3]);
        for c in 0..8 {
            let b = l.bias[4 * (t + c / 4).min(tiles - 1) + c % 4];
            g.0[c] = if half { b >> 1 } else { b };
            let r = l.rq[(4 * t + c).min(l.cout - 1)];
            for j in 0..3 {
                g.1[j][c] = r[j];
            }
        }
        slot.write(g);
    }
    // SAFETY: the first `n` elements were all written just above; `MaybeUninit<T>` has the
    // layout of `T`.
    Some(unsafe { core::slice::from_raw_parts(buf.as_ptr() as *const Group, n) })
}

/// x86-64 with AVX-512 VNNI ([`Gemm::vnni`]): `VPDPBUSD` multiplies 4 uint8 inputs by 4
/// int8 weights and adds the 4 products to a 32-bit lane, 64 products per instruction
/// (four times `VPMADDWD`'s 16 with its add). The inputs are read as `x ^ 0x80 = x + 128`
/// (so the compiler folded `-128 * sum(w)` into the bias); products and their sums of four
/// fit in 32 bits, and the lanes wrap like the other kernels' accumulators (the compiler
/// checked that the exact accumulator fits).
#[cfg(all(target_arch = "x86_64", target_feature = "avx512vnni"))]
#[allow(unsafe_code)]
mod vnni {
    use super::{put_bytes, Gemm, Out8, Rows, QUAD_CHANNELS};
    use core::arch::x86_64::*;
    use core::mem::MaybeUninit;

    /// 16 channels' accumulator start and requantization constants, lane by lane.
    type Group16 = ([i32; 16], [[i32; 16]; 3]);

    /// Groups of 16 channels held precomputed.
    const GROUPS: usize = QUAD_CHANNELS / 16;

    /// Per 16 channels, the accumulator start (halved with `half`, for undoubled weights)
    /// and the requantization constants; channels past `cout` repeat the last (computed,
    /// never written). Written into the first groups of `buf` (no clear of the rest).
    #[inline(always)]
    fn groups<'b>(l: &Gemm, half: bool, buf: &'b mut [MaybeUninit<Group16>; GROUPS]) -> &'b [Group16] {
        let n = l.cout.div_ceil(16);
        assert!(n <= GROUPS);
        for (gi, slot) in buf.iter_mut().enumerate().take(n) {
            let mut g: Group16 = ([0; 16], [[0; 16]; 3]);
            for c in 0..16 {
                // At most 8 channels: the upper 8 lanes repeat the lower ones (a second
                // position's, [`tile_twin`]).
                let o = if l.cout <= 8 { (c % 8).min(l.cout - 1) } else { (16 * gi + c).min(l.cout - 1) };
                g.0[c] = if half { l.bias[o] >> 1 } else { l.bias[o] };
                for j in 0..3 {
                    g.1[j][c] = l.rq[o][j];
                }
            }
            slot.write(g);
        }
        // SAFETY: the first `n` elements were written above; `MaybeUninit<T>` has the
        // layout of `T`.
        unsafe { core::slice::from_raw_parts(buf.as_ptr() as *const Group16, n) }
    }

    /// [`super::gemm_4x2`] with the VNNI layout: blocks of `P` positions (16 for one group
    /// of channels over long window rows read in place, 8 for at most 32 channels, else 4;
    /// a last partial block repeats the last position), each block's rows written as bytes
    /// into `xs` before any of its outputs (or read in place from a band, see [`band`]), then
    /// per pass of up to 4 groups of 16 channels one [`tile`]. A row is `STEPS / 2` words,
    /// or for convolution windows ([`Rows::band`]) [`super::Band::words`].
    #[inline(always)]
    pub fn gemm<R: Rows, Y: Out8, const FAST: bool, const STEPS: usize>(l: &Gemm, rows: &mut R, npos: usize, y: &mut Y, rev: bool, xs: &mut [u32]) {
        assert!(R::BYTES && STEPS % 2 == 0);
        // On a cache line: each group's rows (64 bytes, loaded whole) then never straddle two.
        let mut buf = super::Align64([const { MaybeUninit::<Group16>::uninit() }; GROUPS]);
        let pre = groups(l, FAST, &mut buf.0);
        // SAFETY: the words of `xs` as bytes (same memory, any bit pattern valid).
        let xb = unsafe { core::slice::from_raw_parts_mut(xs.as_mut_ptr() as *mut u8, 4 * xs.len()) };
        // One group of 16 channels over long window rows read in place (kernel rows of at
        // least 8 words): blocks of 16 positions, whose broadcasts LLVM addresses from few
        // registers there (shorter rows, as a 3-channel first layer's, spill them).
        let in_place = rows.band().filter(|bd| band_layout(bd, bd.words()).is_some());
        let wide = in_place.as_ref().is_some_and(|bd| (bd.kw * bd.c).div_ceil(4) >= 8);
        // At most 8 channels over windows read in place: blocks of 16 positions, two per
        // register ([`tile_twin`]).
        let twin = l.cout <= 8 && in_place.is_some();
        if (l.cout <= 16 && wide) || twin {
            blocks::<R, Y, FAST, STEPS, 16>(l, pre, rows, npos, y, rev, xb);
        } else if l.cout <= 32 {
            blocks::<R, Y, FAST, STEPS, 8>(l, pre, rows, npos, y, rev, xb);
        } else {
            blocks::<R, Y, FAST, STEPS, 4>(l, pre, rows, npos, y, rev, xb);
        }
    }

    #[inline(always)]
    fn blocks<R: Rows, Y: Out8, const FAST: bool, const STEPS: usize, const P: usize>(l: &Gemm, pre: &[Group16], rows: &mut R, npos: usize, y: &mut Y, rev: bool, xb: &mut [u8]) {
        let band_geom = rows.band();
        let kq = band_geom.as_ref().map_or(STEPS / 2, |bd| bd.words());
        let kp = 4 * kq;
        if let Some(bd) = band_geom {
            if let Some((rw, row_len)) = band_layout(&bd, kq) {
                return band::<R, Y, FAST, P>(l, pre, rows, &bd, npos / (bd.oh * bd.ow), rw, row_len, kq, y, rev);
            }
        }
        assert!(P <= 8, "blocks of more than 8 positions read their rows from a band");
        let xb = &mut xb[..P * kp];
        let nb = npos.div_ceil(P);
        for i in 0..nb {
            let i = if rev { nb - 1 - i } else { i };
            let pos: [usize; P] = core::array::from_fn(|q| (P * i + q).min(npos - 1));
            for (q, o) in xb.chunks_exact_mut(kp).enumerate() {
                rows.bytes(pos[q], o);
            }
            let mut base = [core::ptr::null::<u8>(); MAX_KH];
            base[0] = xb.as_ptr();
            let off: [usize; P] = core::array::from_fn(|q| q * kp);
            // SAFETY: position `q`'s row starts `q * kp` bytes into `xb`, `kp >= 4 * kq` bytes
            // (`xb` is `P * kp` bytes).
            unsafe { passes::<Y, FAST, P>(l, pre, &base, &off, 1, kq, kq, &pos, y) };
        }
    }

    /// Where [`band`] takes a window of `kq` words (`kh` runs of whole words) over this
    /// geometry (few enough kernel rows, all of them within [`BAND_BYTES`]): the bytes of a
    /// window row and of a converted input row.
    #[inline(always)]
    fn band_layout(bd: &super::Band, kq: usize) -> Option<(usize, usize)> {
        let rw = 4 * kq / bd.kh.max(1);
        let row_len = (bd.ow - 1) * bd.sw * bd.c + rw;
        (bd.kh >= 1 && bd.kh <= MAX_KH && bd.kh * rw == 4 * kq && bd.kh * row_len <= BAND_BYTES).then_some((rw, row_len))
    }

    /// Kernel rows [`band`] handles, and the bytes of its rows.
    const MAX_KH: usize = 16;
    const BAND_BYTES: usize = 16384;

    /// The windows of a convolution read in place from a band of `KH` input rows converted
    /// once into bytes `x ^ 0x80` from column `-PAD_W` (zero point outside the input, and
    /// `row_len` bytes so that the last window's row, `rw` bytes, fits): no copy per
    /// position. Output rows one after the other (backwards with `rev`), each in blocks of
    /// `P` positions. An input row is converted when an output row first needs it (the rows
    /// kept are reused), before any output of that row is written, which is no later than
    /// [`Rows::bytes`] would read it, so in-place layers stay correct.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn band<R: Rows, Y: Out8, const FAST: bool, const P: usize>(l: &Gemm, pre: &[Group16], rows: &mut R, bd: &super::Band, n: usize, rw: usize, row_len: usize, kq: usize, y: &mut Y, rev: bool) {
        let kh = bd.kh;
        // Every position's window row (`rw` bytes from `ox * SW * C`) lies inside its slot.
        assert!(kh >= 1 && kh <= MAX_KH && (bd.ow - 1) * bd.sw * bd.c + rw <= row_len && rw * kh == 4 * kq);
        let mut buf = [MaybeUninit::<u8>::uninit(); BAND_BYTES];
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; every byte of a row is written
        // by `band_row` before its row is read (a row is read only after its key is set).
        let band = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, kh * row_len) };
        // The (batch, input row) each slot holds.
        let mut key = [(usize::MAX, 0isize); MAX_KH];
        let nrows = n * bd.oh;
        for r in 0..nrows {
            let r = if rev { nrows - 1 - r } else { r };
            let (b, oy) = (r / bd.oh, r % bd.oh);
            let iy0 = (oy * bd.sh) as isize - bd.pad_h as isize;
            let slot = |ky: usize| (iy0 + ky as isize).rem_euclid(kh as isize) as usize;
            for ky in 0..kh {
                let (iy, sl) = (iy0 + ky as isize, slot(ky));
                if key[sl] != (b, iy) {
                    rows.band_row(b, iy, &mut band[sl * row_len..(sl + 1) * row_len]);
                    key[sl] = (b, iy);
                }
            }
            // Kernel row `ky` of this output row: its slot's start.
            let mut base = [core::ptr::null::<u8>(); MAX_KH];
            let band_ptr = band.as_ptr();
            for (ky, bp) in base.iter_mut().enumerate().take(kh) {
                // SAFETY: `slot(ky) < kh`, so the slot's `row_len` bytes are inside `band`.
                *bp = unsafe { band_ptr.add(slot(ky) * row_len) };
            }
            let nb = bd.ow.div_ceil(P);
            for i in 0..nb {
                let i = if rev { nb - 1 - i } else { i };
                let ox: [usize; P] = core::array::from_fn(|q| (P * i + q).min(bd.ow - 1));
                let pos: [usize; P] = core::array::from_fn(|q| r * bd.ow + ox[q]);
                let off: [usize; P] = core::array::from_fn(|q| ox[q] * bd.sw * bd.c);
                // SAFETY: every slot is `row_len` bytes and `ox * SW * C + rw <= row_len` for
                // every position of the row, `rw = 4 * (kq / kh)`.
                unsafe { passes::<Y, FAST, P>(l, pre, &base, &off, kh, kq / kh, kq, &pos, y) };
            }
        }
    }

    /// One block of `P` positions over every channel, in passes of up to 4 (8 positions: 2)
    /// groups of 16. Position `q`'s row is `kh` runs of `kqr` words, run `ky` at
    /// `base[ky] + off[q]`.
    ///
    /// # Safety
    /// `base[ky] + off[q]` is valid for `4 * kqr` bytes for every `ky < kh` and position `q`,
    /// and `kh * kqr == kq`.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn passes<Y: Out8, const FAST: bool, const P: usize>(l: &Gemm, pre: &[Group16], base: &[*const u8; MAX_KH], off: &[usize; P], kh: usize, kqr: usize, kq: usize, pos: &[usize; P], y: &mut Y) {
        let g16 = l.cout.div_ceil(16);
        let w = &l.w[..g16 * kq * 64];
        let mut g = 0;
        while g < g16 {
            let (wg, pg, oc0) = (&w[g * kq * 64..], &pre[g..], 16 * g);
            let n = l.cout - oc0;
            let left = g16 - g;
            let take = super::gemm_vnni_pass(l.cout, left);
            debug_assert!((P == 16 && l.cout <= 16) || P == if l.cout <= 32 { 8 } else { 4 });
            if P == 16 && l.cout <= 8 {
                // SAFETY: as the caller guarantees.
                unsafe { tile_twin::<Y, FAST, 8>(base, off, kh, kqr, kq, wg, &pg[0], l.lo, l.hi, pos, l.cout, y) };
                return;
            }
            // SAFETY: as the caller guarantees.
            unsafe {
                match take {
                    1 => tile::<Y, FAST, P, 1>(base, off, kh, kqr, kq, wg, pg, l.lo, l.hi, pos, l.cout, oc0, n, y),
                    2 => tile::<Y, FAST, P, 2>(base, off, kh, kqr, kq, wg, pg, l.lo, l.hi, pos, l.cout, oc0, n, y),
                    3 => tile::<Y, FAST, P, 3>(base, off, kh, kqr, kq, wg, pg, l.lo, l.hi, pos, l.cout, oc0, n, y),
                    _ => tile::<Y, FAST, P, 4>(base, off, kh, kqr, kq, wg, pg, l.lo, l.hi, pos, l.cout, oc0, n, y),
                }
            }
            g += take;
        }
    }

    /// `2 * H` positions of at most 8 channels (`cout`), two per register: position `2h`'s
    /// channels in lanes 0-7 and position `2h + 1`'s in lanes 8-15 (each half broadcast
    /// from its own window word, the group's 8 channels' weights repeated in both halves
    /// by a 256-bit broadcast load, the accumulator starts and requantization constants
    /// repeated by [`groups`]): per 4 inputs `2 * H` broadcasts, one weight load and `H`
    /// `VPDPBUSD` where [`tile`] needs `2 * H`, and one requantization per two positions.
    ///
    /// # Safety
    /// As [`passes`], with `off` and `pos` of `2 * H` positions.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile_twin<Y: Out8, const FAST: bool, const H: usize>(base: &[*const u8; MAX_KH], off: &[usize], kh: usize, kqr: usize, kq: usize, w: &[u8], pre: &Group16, lo: i32, hi: i32, pos: &[usize], cout: usize, y: &mut Y) {
        let w = &w[..kq * 64];
        let (off, pos) = (&off[..2 * H], &pos[..2 * H]);
        assert!(kh * kqr == kq && kh <= MAX_KH && (1..=8).contains(&cout));
        // SAFETY: row run `ky` of every position, at `base[ky] + off[q]`, is `4 * kqr`
        // readable bytes (the caller's guarantee); the weights of step `t = ky * kqr + s`
        // are the first 32 of the 64 bytes at `t * 64 < kq * 64` bytes of `w` (checked
        // above); the stores write 16 bytes or `cout` bytes `Out8::span` checked.
        unsafe {
            let wp = w.as_ptr();
            let mut acc: [__m512i; H] = [_mm512_loadu_si512(pre.0.as_ptr() as *const __m512i); H];
            for ky in 0..kh {
                let xp: [(*const u8, *const u8); H] = core::array::from_fn(|h| (base[ky].add(off[2 * h]), base[ky].add(off[2 * h + 1])));
                let wk = wp.add(ky * kqr * 64);
                for s in 0..kqr {
                    let wv = _mm512_broadcast_i64x4(_mm256_loadu_si256(wk.add(s * 64) as *const __m256i));
                    for h in 0..H {
                        let (a, b) = xp[h];
                        // Two broadcast loads, the second merged into the upper lanes.
                        let xa = _mm512_broadcastd_epi32(_mm_loadu_si32(a.add(4 * s)));
                        let xv = _mm512_mask_broadcastd_epi32(xa, 0xFF00, _mm_loadu_si32(b.add(4 * s)));
                        acc[h] = _mm512_dpbusd_epi32(acc[h], xv, wv);
                    }
                }
            }
            let mut out = [0i8; 16];
            for h in 0..H {
                let r = super::x86::rq16::<FAST>(acc[h], &pre.1, lo, hi);
                let (p0, p1) = (pos[2 * h], pos[2 * h + 1]);
                if cout == 8 && p1 == p0 + 1 {
                    _mm_storeu_si128(y.span(p0 * 8, 16) as *mut __m128i, r);
                } else {
                    _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, r);
                    put_bytes(y, p0 * cout, &out[..cout]);
                    put_bytes(y, p1 * cout, &out[8..8 + cout]);
                }
            }
        }
    }

    /// `P` positions x `G` groups of 16 channels from `oc0` (`w` and `pre` start at the
    /// first group): per 4 inputs, `P` broadcast words and `G` weight loads feed `P * G`
    /// `VPDPBUSD`; then per position the requantization ([`super::x86::rq16`]) and the
    /// first `n` (at most `16 * G`) channels' bytes.
    ///
    /// # Safety
    /// As [`passes`].
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<Y: Out8, const FAST: bool, const P: usize, const G: usize>(base: &[*const u8; MAX_KH], off: &[usize; P], kh: usize, kqr: usize, kq: usize, w: &[u8], pre: &[Group16], lo: i32, hi: i32, pos: &[usize; P], cout: usize, oc0: usize, n: usize, y: &mut Y) {
        let w = &w[..G * kq * 64];
        let pre = &pre[..G];
        let n = n.min(16 * G);
        assert!(kh * kqr == kq && kh <= MAX_KH);
        // SAFETY: row run `ky` of position `q`, at `base[ky] + off[q]`, is `4 * kqr`
        // readable bytes (the caller's guarantee); group `g`'s weights of step `t = ky * kqr + s` are at `(t * G + g + 1)
        // * 64 <= G * kq * 64` bytes of `w` (checked above; unaligned loads); the rows
        // of `pre` are 64 bytes each; the stores write `n` bytes `Out8::span` checked, or
        // into `out` (`16 * G` bytes).
        unsafe {
            let wp = w.as_ptr();
            let ld = |v: &[i32; 16]| _mm512_loadu_si512(v.as_ptr() as *const __m512i);
            let bias: [__m512i; G] = core::array::from_fn(|g| ld(&pre[g].0));
            let mut acc: [[__m512i; G]; P] = [bias; P];
            for ky in 0..kh {
                let xp: [*const u8; P] = core::array::from_fn(|q| base[ky].add(off[q]));
                let wk = wp.add(ky * kqr * G * 64);
                for s in 0..kqr {
                    let xv: [__m512i; P] = core::array::from_fn(|q| _mm512_set1_epi32((xp[q].add(4 * s) as *const i32).read_unaligned()));
                    for g in 0..G {
                        let wv = _mm512_loadu_si512(wk.add((s * G + g) * 64) as *const __m512i);
                        for q in 0..P {
                            acc[q][g] = _mm512_dpbusd_epi32(acc[q][g], xv[q], wv);
                        }
                    }
                }
            }
            let mut out = [[0i8; 16]; G];
            for q in 0..P {
                if n == 16 * G {
                    // Whole groups: each group's 16 bytes stored from its register.
                    let dst = y.span(pos[q] * cout + oc0, n);
                    for g in 0..G {
                        _mm_storeu_si128(dst.add(16 * g) as *mut __m128i, super::x86::rq16::<FAST>(acc[q][g], &pre[g].1, lo, hi));
                    }
                    continue;
                }
                for g in 0..G {
                    _mm_storeu_si128(out[g].as_mut_ptr() as *mut __m128i, super::x86::rq16::<FAST>(acc[q][g], &pre[g].1, lo, hi));
                }
                put_bytes(y, pos[q] * cout + oc0, &out.as_flattened()[..n]);
            }
        }
    }

    /// [`super::fc_channels`] with the VNNI layout: each row copied once as bytes `x ^ 0x80`
    /// (into `xs`), then per pass of up to 8 groups of 16 channels one [`fc_pass`].
    #[inline(always)]
    pub fn fc<B: super::Byte, Y: Out8, const FAST: bool>(l: &super::FcI8, x: &[B], batches: usize, y: &mut Y, rev: bool, xs: &mut [u32]) {
        let (k, cout) = (l.k, l.cout);
        let kq = k.div_ceil(4);
        let g16 = cout.div_ceil(16);
        let w = &l.w[..g16 * kq * 64];
        let bias = &l.bias[..g16 * 16];
        let x = &x[..batches * k];
        let xs = &mut xs[..kq];
        // SAFETY: the words of `xs` as bytes (same memory, any bit pattern valid).
        let xb = unsafe { core::slice::from_raw_parts_mut(xs.as_mut_ptr() as *mut u8, 4 * kq) };
        for i in 0..batches {
            let b = if rev { batches - 1 - i } else { i };
            super::xor_copy(&x[b * k..(b + 1) * k], &mut xb[..k]);
            let mut g = 0;
            while g < g16 {
                let (wg, bg) = (&w[g * kq * 64..], &bias[16 * g..]);
                let take = super::fc_vnni_pass(g16 - g);
                match take {
                    1 => fc_pass::<Y, FAST, 1>(xb, kq, wg, bg, l, g, b, y),
                    2 => fc_pass::<Y, FAST, 2>(xb, kq, wg, bg, l, g, b, y),
                    4 => fc_pass::<Y, FAST, 4>(xb, kq, wg, bg, l, g, b, y),
                    _ => fc_pass::<Y, FAST, 8>(xb, kq, wg, bg, l, g, b, y),
                }
                g += take;
            }
        }
    }

    /// `G` groups of 16 channels from group `g0` of row `b` (their weights interleaved,
    /// `[kq][G][16][4]`: one sequential stream): per 4 inputs one broadcast word
    /// and `G` `VPDPBUSD` (even and odd steps into separate accumulators, two dependency
    /// chains per group), then the requantization of each group: with `FAST` on 16 lanes
    /// ([`super::x86::rq16_fast`], its two halves' constants of 8 channels joined in one
    /// register; 2.37 -> 2.22 us on ad_autoencoder int8), else per half group
    /// ([`super::x86::rq8`]), and the bytes.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn fc_pass<Y: Out8, const FAST: bool, const G: usize>(xb: &[u8], kq: usize, w: &[u8], bias: &[i32], l: &super::FcI8, g0: usize, b: usize, y: &mut Y) {
        let xb = &xb[..4 * kq];
        let w = &w[..G * kq * 64];
        let bias = &bias[..16 * G];
        let ng = l.rq.len();
        // SAFETY: word `s` of `xb` is at `4 * s + 4 <= 4 * kq` bytes, group `g`'s weights of
        // step `s` at `(s * G + g + 1) * 64 <= G * kq * 64` bytes of `w`, the bias of
        // group `g` at `16 * g + 16 <= 16 * G` values (all checked above; unaligned loads).
        unsafe {
            let (xp, wp) = (xb.as_ptr(), w.as_ptr());
            let mut a0: [__m512i; G] = core::array::from_fn(|g| _mm512_loadu_si512(bias.as_ptr().add(16 * g) as *const __m512i));
            let mut a1: [__m512i; G] = [_mm512_setzero_si512(); G];
            let mut s = 0;
            while s + 2 <= kq {
                let x0 = _mm512_set1_epi32((xp.add(4 * s) as *const i32).read_unaligned());
                let x1 = _mm512_set1_epi32((xp.add(4 * s + 4) as *const i32).read_unaligned());
                for g in 0..G {
                    a0[g] = _mm512_dpbusd_epi32(a0[g], x0, _mm512_loadu_si512(wp.add((s * G + g) * 64) as *const __m512i));
                    a1[g] = _mm512_dpbusd_epi32(a1[g], x1, _mm512_loadu_si512(wp.add(((s + 1) * G + g) * 64) as *const __m512i));
                }
                s += 2;
            }
            if s < kq {
                let x0 = _mm512_set1_epi32((xp.add(4 * s) as *const i32).read_unaligned());
                for g in 0..G {
                    a0[g] = _mm512_dpbusd_epi32(a0[g], x0, _mm512_loadu_si512(wp.add((s * G + g) * 64) as *const __m512i));
                }
            }
            for g in 0..G {
                let oc = 16 * (g0 + g);
                if oc >= l.cout {
                    break;
                }
                let a = _mm512_add_epi32(a0[g], a1[g]);
                let (r0, r1) = (&l.rq[(2 * (g0 + g)).min(ng - 1)], &l.rq[(2 * (g0 + g) + 1).min(ng - 1)]);
                if FAST {
                    // Both halves' constants in one register each: `rq_fast` on 16 lanes,
                    // a whole group stored straight from the register.
                    let c = |j: usize| _mm512_inserti64x4::<1>(_mm512_castsi256_si512(_mm256_loadu_si256(r0[j].as_ptr() as *const __m256i)), _mm256_loadu_si256(r1[j].as_ptr() as *const __m256i));
                    let v = super::x86::rq16_fast(a, c(0), c(1), c(2), l.lo, l.hi);
                    if oc + 16 <= l.cout {
                        _mm_storeu_si128(y.span(b * l.cout + oc, 16) as *mut __m128i, v);
                    } else {
                        let mut out = [0i8; 16];
                        _mm_storeu_si128(out.as_mut_ptr() as *mut __m128i, v);
                        put_bytes(y, b * l.cout + oc, &out[..l.cout - oc]);
                    }
                    continue;
                }
                let mut out = [0i8; 16];
                out[..8].copy_from_slice(&super::x86::rq8::<false>(_mm512_castsi512_si256(a), r0, l.lo, l.hi));
                out[8..].copy_from_slice(&super::x86::rq8::<false>(_mm512_extracti64x4_epi64::<1>(a), r1, l.lo, l.hi));
                put_bytes(y, b * l.cout + oc, &out[..(l.cout - oc).min(16)]);
            }
        }
    }
}

/// Tiles of 8 output channels x 1 position (few positions: fully connected layers).
/// `xs` is scratch of `steps` words.
pub fn gemm_8x1<R: Rows, Y: Out8, const FAST: bool, const STEPS: usize>(l: &Gemm, rows: &mut R, npos: usize, mut y: Y, rev: bool, xs: &mut [u32]) {
    let steps = l.steps;
    let tiles = l.cout.div_ceil(8);
    let xs = &mut xs[..steps];
    let w = &l.w[..tiles * steps * 32];
    let bias = &l.bias[..tiles * 8];
    for i in 0..npos {
        let p = if rev { npos - 1 - i } else { i };
        rows.expand::<1>(p, xs);
        for t in 0..tiles {
            let mut acc = [0i32; 8];
            acc.copy_from_slice(&bias[8 * t..8 * t + 8]);
            mac_8x1(xs, &w[t * steps * 32..], &mut acc);
            put_8::<FAST, Y>(l, p, t, &acc, &mut y);
        }
    }
}

/// The outputs of tile `t` (8 channels, fewer in the last tile) of position `p`.
#[inline(always)]
fn put_8<const FAST: bool, Y: Out8>(l: &Gemm, p: usize, t: usize, acc: &[i32; 8], y: &mut Y) {
    for (c, &a) in acc.iter().enumerate() {
        let oc = 8 * t + c;
        if oc >= l.cout {
            break;
        }
        y.put(p * l.cout + oc, rq::<FAST>(a, &l.rq[oc], l.lo, l.hi));
    }
}

/// [`gemm_8x1`] over long dense rows (fully connected layers with a large input) with little
/// scratch: each row is expanded `xs.len()` words at a time (a multiple of 4), every tile
/// accumulating the block into `acc` (one `[i32; 8]` per tile), instead of the whole row at
/// once (`4 * steps` bytes of stack).
pub fn gemm_8x1_blocked<B: Byte, Y: Out8, const FAST: bool, const STEPS: usize>(l: &Gemm, rows: &Dense<B>, npos: usize, mut y: Y, rev: bool, xs: &mut [u32], acc: &mut [[i32; 8]]) {
    let steps = l.steps;
    assert!(steps == STEPS && steps % 4 == 0 && !xs.is_empty() && xs.len() % 4 == 0);
    let tiles = l.cout.div_ceil(8);
    let acc = &mut acc[..tiles];
    let w = &l.w[..tiles * steps * 32];
    let bias = &l.bias[..tiles * 8];
    let k = rows.k;
    for i in 0..npos {
        let p = if rev { npos - 1 - i } else { i };
        let row = &rows.x[p * k..(p + 1) * k];
        for (t, a) in acc.iter_mut().enumerate() {
            a.copy_from_slice(&bias[8 * t..8 * t + 8]);
        }
        let mut w0 = 0;
        while w0 < steps {
            let n = xs.len().min(steps - w0);
            // Words `w0..w0 + n` hold values `2 * w0..2 * (w0 + n)` (whole chunks of 4);
            // words past the row's end multiply zero weights.
            let v = &row[(2 * w0).min(k)..(2 * (w0 + n)).min(k)];
            expand_from::<B, 1>(v, &mut xs[..n]);
            for (t, a) in acc.iter_mut().enumerate() {
                mac_8x1(&xs[..n], &w[(t * steps + w0) * 32..], a);
            }
            w0 += n;
        }
        for (t, a) in acc.iter().enumerate() {
            put_8::<FAST, Y>(l, p, t, a, &mut y);
        }
    }
}

/// The sparse form of a layer (weights of pruned models): per output channel, only the
/// chunks (4 consecutive inputs, 2 pair words) with a non-zero weight, as
/// `[bias, n, (w_even, w_odd, offset) * n, m, k, e]` (`offset`: the chunk's byte offset
/// in a 4-position scratch row, `32 * chunk`), the doubled-accumulator requantization
/// (`rq_fast`) only. Channels follow one another in `data`.
pub struct Sparse<'a> {
    /// Pair words per row.
    pub steps: usize,
    pub cout: usize,
    pub data: &'a [i32],
    pub lo: i32,
    pub hi: i32,
}

/// Every channel of 4 positions from the expanded rows `xs` (`[step][4]` words) in plain
/// Rust: `n` lanes are stored (the first `n` positions from `p0`).
fn sparse_lanes<Y: Out8>(l: &Sparse, xs: &[u32], y: &mut Y, p0: usize, n: usize) {
    let mut d = 0;
    for oc in 0..l.cout {
        let mut acc = [l.data[d]; 4];
        let cnt = l.data[d + 1] as usize;
        d += 2;
        #[cfg(target_arch = "x86_64")]
        {
            acc = x86::sparse_chunks(acc, xs, &l.data[d..d + 3 * cnt]);
            d += 3 * cnt;
        }
        #[cfg(not(target_arch = "x86_64"))]
        for _ in 0..cnt {
            let (w0, w1, off) = (l.data[d] as u32, l.data[d + 1] as u32, l.data[d + 2] as usize / 4);
            d += 3;
            for (lane, a) in acc.iter_mut().enumerate() {
                *a = smlad(smlad(*a, xs[off + lane], w0), xs[off + 4 + lane], w1);
            }
        }
        let r = [l.data[d], l.data[d + 1], l.data[d + 2]];
        d += 3;
        for (lane, &a) in acc.iter().enumerate().take(n) {
            y.put((p0 + lane) * l.cout + oc, rq_fast(a, &r, l.lo, l.hi));
        }
    }
}

/// Every channel of one group of 4 positions, in one `asm!` block: per channel the
/// accumulators start at the bias, each listed chunk loads the 4 positions' pair words
/// twice (`LDM`) for 8 `SMLAD`s, then `rq_fast` and 4 stores at `yp + lane * C`.
/// Proof that a sparse layer's data describes `C` channels whose chunk offsets stay
/// inside a scratch row of `xs_len` words (checked once per call of the layer).
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
struct Checked;

#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
fn check_sparse<const C: usize>(data: &[i32], xs_len: usize) -> Option<Checked> {
    let mut d = 0;
    for _ in 0..C {
        let n = *data.get(d + 1)? as usize;
        if d + 5 + 3 * n > data.len() {
            return None;
        }
        for i in 0..n {
            let off = data[d + 2 + 3 * i + 2] as usize;
            if off % 4 != 0 || off / 4 + 8 > xs_len {
                return None;
            }
        }
        d += 5 + 3 * n;
    }
    Some(Checked)
}

/// Every channel of one group of 4 positions, in one `asm!` block: per channel the
/// accumulators start at the bias, each listed chunk loads the 4 positions' pair words
/// twice (`LDM`) for 8 `SMLAD`s, then `rq_fast` and 4 stores at `yp + lane * C`.
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[allow(unsafe_code)]
#[inline(never)]
fn sparse_asm<const C: usize>(_: &Checked, xs: &[u32], data: &[i32], yp: *mut u8) {
    assert!(C > 0 && 3 * C <= 4095);
    // SAFETY: reads `data` (`Checked`: it holds C channels), and `xs` at the listed
    // offsets (`Checked`: in bounds for `xs`, which the caller passes whole; `[u32]` is word aligned); writes `4 * C` bytes at `yp`
    // (positions 0..4 of C channels), which the caller obtained from `Out8::span`. Uses the
    // stack below `sp` (its frame, and r6/r7, reserved by Rust, saved and restored).
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "sub sp, sp, #8",
            "str r0, [sp]",
            "str r1, [sp, #4]",
            "4:",
            "ldm r11!, {{r0, lr}}",
            "mov r1, r0",
            "mov r2, r0",
            "mov r3, r0",
            "cmp lr, #0",
            "beq 5f",
            "2:",
            "ldm r11!, {{r6, r7, r12}}",
            "add r12, r10, r12",
            "ldm r12!, {{r4, r5, r8, r9}}",
            "smlad r0, r4, r6, r0",
            "smlad r1, r5, r6, r1",
            "smlad r2, r8, r6, r2",
            "smlad r3, r9, r6, r3",
            "ldm r12, {{r4, r5, r8, r9}}",
            "smlad r0, r4, r7, r0",
            "smlad r1, r5, r7, r1",
            "smlad r2, r8, r7, r2",
            "smlad r3, r9, r7, r3",
            "subs lr, lr, #1",
            "bne 2b",
            "5:",
            "ldm r11!, {{r6, r7, r12}}",
            "add lr, r7, r0, asr #31",
            "smmlar r0, r0, r6, lr",
            "asr r0, r0, r12",
            "ssat r0, #8, r0",
            "add lr, r7, r1, asr #31",
            "smmlar r1, r1, r6, lr",
            "asr r1, r1, r12",
            "ssat r1, #8, r1",
            "add lr, r7, r2, asr #31",
            "smmlar r2, r2, r6, lr",
            "asr r2, r2, r12",
            "ssat r2, #8, r2",
            "add lr, r7, r3, asr #31",
            "smmlar r3, r3, r6, lr",
            "asr r3, r3, r12",
            "ssat r3, #8, r3",
            "ldr lr, [sp]",
            "strb r0, [lr]",
            "strb r1, [lr, #{c}]",
            "strb r2, [lr, #{c2}]",
            "strb r3, [lr, #{c3}]",
            "add lr, lr, #1",
            "str lr, [sp]",
            "ldr lr, [sp, #4]",
            "subs lr, lr, #1",
            "str lr, [sp, #4]",
            "bne 4b",
            "add sp, sp, #8",
            "pop {{r6, r7}}",
            c = const C,
            c2 = const 2 * C,
            c3 = const 3 * C,
            inout("r10") xs.as_ptr() => _, inout("r11") data.as_ptr() => _,
            inout("r0") yp => _, inout("r1") C => _,
            out("r2") _, out("r3") _, out("r4") _, out("r5") _, out("r8") _, out("r9") _, out("r12") _, out("lr") _,
        );
    }
}

/// A sparse layer over `npos` rows, 4 positions at a time (the last `npos % 4` one at a
/// time), `C` output channels. `xs` is scratch of `4 * steps + 8` words. With `rev` the
/// positions run backwards; a group's inputs are all read before its outputs are written.
pub fn gemm_sparse<R: Rows, Y: Out8, const C: usize>(l: &Sparse, rows: &mut R, npos: usize, mut y: Y, rev: bool, xs: &mut [u32]) {
    assert!(l.cout == C);
    let xs = &mut xs[..4 * l.steps + 8];
    let groups = npos / 4;
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    let checked = if l.lo == -128 && l.hi == 127 { check_sparse::<C>(l.data, xs.len()) } else { None };
    let group = |rows: &mut R, xs: &mut [u32], y: &mut Y, g: usize| {
        let p0 = 4 * g;
        for lane in 0..4 {
            rows.expand::<4>(p0 + lane, &mut xs[lane..]);
        }
        #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
        if let Some(c) = &checked {
            let yp = y.span(p0 * C, 4 * C);
            sparse_asm::<C>(c, xs, l.data, yp);
            return;
        }
        sparse_lanes(l, xs, y, p0, 4);
    };
    let tail = |rows: &mut R, xs: &mut [u32], y: &mut Y, p: usize| {
        rows.expand::<4>(p, xs);
        sparse_lanes(l, xs, y, p, 1);
    };
    if rev {
        for p in (4 * groups..npos).rev() {
            tail(rows, xs, &mut y, p);
        }
        for g in (0..groups).rev() {
            group(rows, xs, &mut y, g);
        }
    } else {
        for g in 0..groups {
            group(rows, xs, &mut y, g);
        }
        for p in 4 * groups..npos {
            tail(rows, xs, &mut y, p);
        }
    }
}

#[cfg(test)]
#[allow(unsafe_code)]
pub(crate) mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn rq_fast_matches_mbqm() {
        let mut next = rng(0x1234_5678_9abc_def0u64);
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

    /// `dot_8xg` sums each block as a plain scalar loop over the pair words does (and so as
    /// `dot_8x1`), whichever path the build takes.
    #[test]
    fn dot_8xg_is_the_scalar_sums() {
        let mut next = rng(0x0bad_cafe_1234_5678u64);
        let (steps, g, stride) = (12usize, 3usize, 12 * 32 + 32);
        let x: std::vec::Vec<u32> = (0..steps).map(|_| next() as u32).collect();
        // Int16 pairs of int8-range values, `g` blocks `stride` bytes apart.
        let words: std::vec::Vec<u32> = (0..(g * stride) / 4)
            .map(|_| {
                let v = next();
                ((v as i8 as i16 as u16) as u32) | (((v >> 8) as i8 as i16 as u16) as u32) << 16
            })
            .collect();
        // SAFETY: the words' bytes, read as bytes (word aligned, as the kernels need).
        let w: &[u8] = unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, 4 * words.len()) };
        let mut acc = [[7i32; 8]; 3];
        dot_8xg::<3>(&x, w, stride, &mut acc);
        for (b, a) in acc.iter().enumerate() {
            for c in 0..8 {
                let mut want = 7i32;
                for (s, &xv) in x.iter().enumerate() {
                    let wv = words[(b * stride + 32 * s + 4 * c) / 4];
                    want = want
                        .wrapping_add((xv as u16 as i16 as i32) * (wv as u16 as i16 as i32))
                        .wrapping_add(((xv >> 16) as u16 as i16 as i32) * ((wv >> 16) as u16 as i16 as i32));
                }
                assert_eq!(a[c], want, "block {b} channel {c}");
            }
        }
    }

    /// The 8-lane requantization of the host kernels equals `rq_fast` lane by lane (only
    /// built on x86-64 with AVX2: `-C target-cpu=native`).
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    #[test]
    fn rq8_matches_rq_fast() {
        let mut next = rng(0x0123_4567_89ab_cdef);
        for i in 0..50_000 {
            let g = rq_consts(&mut next, 1, true).remove(0);
            let acc: [i32; 8] = core::array::from_fn(|_| match i % 3 {
                0 => (next() % (1 << 31)) as i32 - (1 << 30),
                1 => (next() % 200_001) as i32 - 100_000,
                _ => (next() % 4001) as i32 - 2000,
            });
            let (lo, hi) = if i % 2 == 0 { (-128, 127) } else { (-20, 90) };
            let got = x86::rq8_fast_doubled(&acc, &g, lo, hi);
            for c in 0..8 {
                let want = rq_fast(acc[c].wrapping_mul(2), &[g[0][c], g[1][c], g[2][c]], lo, hi);
                assert_eq!(got[c], want, "lane {c} acc {} consts {:?}", acc[c], [g[0][c], g[1][c], g[2][c]]);
            }
        }
    }

    /// Checks a vector `mbqm` of `L` lanes (`f(x, m, shift)`) against `q::mbqm` lane by
    /// lane: random, mid-range, extreme and `t << 20` inputs, multipliers of every size and
    /// shifts from -31 to 8.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    fn mbqm_lanes_match<const L: usize>(seed: u64, f: impl Fn(&[i32; L], i32, i32) -> [i32; L]) {
        let mut next = rng(seed);
        for i in 0..100_000 {
            let m = if i % 7 == 0 { (next() % (1 << 31)) as i32 } else { (1 << 30) + (next() % (1 << 30)) as i32 };
            let shift = (next() % 40) as i32 - 31;
            let x: [i32; L] = core::array::from_fn(|c| match (i + c) % 4 {
                0 => next() as i32,
                1 => (next() % 2_000_001) as i32 - 1_000_000,
                2 => [i32::MIN, i32::MAX, -1, 0, 1][(next() % 5) as usize],
                _ => ((next() % 512) as i32 - 256) << 20,
            });
            let got = f(&x, m, shift);
            for c in 0..L {
                assert_eq!(got[c], crate::q::mbqm(x[c], m, shift), "x {} m {m} shift {shift}", x[c]);
            }
        }
    }

    /// The 8-lane `mbqm` of the host's int8 ADD equals `q::mbqm` lane by lane (only built on
    /// x86-64 with AVX2: `-C target-cpu=native`).
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    #[test]
    fn mbqm8_matches_mbqm() {
        use core::arch::x86_64::*;
        mbqm_lanes_match::<8>(0x3b9a_ca07_0000_0001, |x, m, shift| {
            let mut got = [0i32; 8];
            // SAFETY: 32-byte unaligned load and store of local arrays.
            unsafe { _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, x86::mbqm8(_mm256_loadu_si256(x.as_ptr() as *const __m256i), m, shift)) };
            got
        });
    }

    /// The 16-lane `mbqm` (AVX-512) equals `q::mbqm` lane by lane.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    #[test]
    fn mbqm16_matches_mbqm() {
        use core::arch::x86_64::*;
        mbqm_lanes_match::<16>(0x3b9a_ca07_0000_0002, |x, m, shift| {
            let mut got = [0i32; 16];
            // SAFETY: 64-byte unaligned load and store of local arrays.
            unsafe { _mm512_storeu_si512(got.as_mut_ptr() as *mut __m512i, x86::mbqm16(_mm512_loadu_si512(x.as_ptr() as *const __m512i), m, shift)) };
            got
        });
    }

    /// The 16-lane input stage of the int8 ADD equals `q::mbqm(t << 20, m, s)` for every
    /// 9-bit `t`, multipliers from 0 to `i32::MAX` and every right shift.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    #[test]
    fn add_stage16_matches_mbqm() {
        use core::arch::x86_64::*;
        let mut next = rng(0x5ca1_ab1e_0000_0016);
        for i in 0..4000 {
            let m = match i {
                0 => 0,
                1 => i32::MAX,
                2 => 1 << 30,
                _ => (next() % (1 << 31)) as i32,
            };
            let s = -((i % 32) as i32);
            for t0 in (-256..=256).step_by(16) {
                let t: [i32; 16] = core::array::from_fn(|c| (t0 + c as i32).min(256));
                let mut got = [0i32; 16];
                // SAFETY: 64-byte unaligned load and store of local arrays.
                unsafe {
                    let v = x86::add_stage16(_mm512_loadu_si512(t.as_ptr() as *const __m512i), m, s);
                    _mm512_storeu_si512(got.as_mut_ptr() as *mut __m512i, v);
                }
                for c in 0..16 {
                    assert_eq!(got[c], crate::q::mbqm(t[c] << 20, m, s), "t {} m {m} s {s}", t[c]);
                }
            }
        }
    }

    /// `add_i8` (8 lanes at a time on x86-64 with AVX2) equals the scalar reference formula
    /// for random scales, offsets and inputs, tails included.
    #[test]
    fn add_i8_matches_scalar() {
        let mut next = rng(0xadd0_add0_1234_5678);
        let mut lin = 0;
        for round in 0..300 {
            let n = 1 + (next() % 300) as usize;
            let a: std::vec::Vec<i8> = (0..n).map(|_| next() as i8).collect();
            let b: std::vec::Vec<i8> = (0..n).map(|_| next() as i8).collect();
            let m = |next: &mut dyn FnMut() -> u64| (1 << 30) + (next() % (1 << 30)) as i32;
            let p = AddI8 {
                off1: (next() % 256) as i32 - 127,
                off2: (next() % 256) as i32 - 127,
                m1: m(&mut next),
                s1: if round % 7 == 3 { 1 } else { -((next() % 3) as i32) },
                m2: m(&mut next),
                s2: -((next() % 3) as i32),
                mo: m(&mut next),
                so: if round % 5 == 0 { (next() % 3) as i32 } else { -18 - (next() % 6) as i32 },
                zp: (next() % 256) as i32 - 128,
                lo: -128,
                hi: if round % 2 == 0 { 127 } else { 60 },
                split: None,
                lin: None,
            };
            let mut p = p;
            if round % 3 != 0 {
                // The split input stages (two rounds in three) where both exist.
                if let (Some((k1, c1)), Some((k2, c2))) = (add_stage_split(p.off1, p.m1, p.s1), add_stage_split(p.off2, p.m2, p.s2)) {
                    p.split = Some(([k1, k2], c1.wrapping_add(c2)));
                }
            }
            if round % 4 == 1 {
                // The linear form (one round in four) where one is found.
                p.lin = add_linear(&p);
                lin += p.lin.is_some() as usize;
            }
            let mut y = std::vec![0i8; n];
            add_i8(&p, &a, &b, n, &mut y[..]);
            for i in 0..n {
                let sa = crate::q::mbqm((a[i] as i32 + p.off1) << 20, p.m1, p.s1);
                let sb = crate::q::mbqm((b[i] as i32 + p.off2) << 20, p.m2, p.s2);
                let want = crate::q::clamp(crate::q::mbqm(sa.wrapping_add(sb), p.mo, p.so).wrapping_add(p.zp), p.lo, p.hi) as i8;
                assert_eq!(y[i], want, "round {round} element {i}");
            }
        }
        assert!(lin > 30, "linear form in {lin} rounds");
    }

    /// `add_linear`'s (`sub_linear`'s) form, where found, equals `add_ref` (`sub_ref`) on
    /// every pair of int8 inputs (checked again here, independently of its own check); it
    /// is found for ADD-like constants (input multipliers at most 1/2, output shifts of -12
    /// and below, as TFLM's left shift of 20 gives), relu clamps included; and it is tight:
    /// `c` one unit of `2^f` off changes some output.
    #[test]
    fn add_linear_is_add_ref() {
        let mut next = rng(0x11ea_add0_0000_0001);
        let (mut found, rounds) = (0, 120);
        for round in 0..rounds {
            let m = |next: &mut dyn FnMut() -> u64| (1 << 30) + (next() % (1 << 30)) as i32;
            let zp = (next() % 256) as i32 - 128;
            let p = AddI8 {
                off1: (next() % 256) as i32 - 128,
                off2: (next() % 256) as i32 - 128,
                m1: if round % 2 == 0 { 1 << 30 } else { m(&mut next) },
                s1: -((next() % 3) as i32),
                m2: m(&mut next),
                s2: -((next() % 4) as i32),
                mo: m(&mut next),
                so: -12 - (next() % 10) as i32,
                zp,
                lo: if round % 3 == 0 { zp.min(90) } else { -128 },
                hi: if round % 5 == 0 { 100 } else { 127 },
                split: None,
                lin: None,
            };
            // SUB in half the rounds (both kinds of `m1`).
            let sub = round % 4 >= 2;
            let (lin, reference): (_, fn(&AddI8, i8, i8) -> i8) = if sub { (sub_linear(&p), sub_ref) } else { (add_linear(&p), add_ref) };
            let Some([a, b, c, f]) = lin else { continue };
            found += 1;
            let form = |c: i32, x1: i32, x2: i32| crate::q::clamp((x1 * a + x2 * b + c) >> f, p.lo, p.hi) as i8;
            let mut off = 0;
            for x1 in -128..=127i32 {
                for x2 in -128..=127i32 {
                    let want = reference(&p, x1 as i8, x2 as i8);
                    assert_eq!(form(c, x1, x2), want, "round {round} sub {sub} x1 {x1} x2 {x2}");
                    off += (form(c + (1 << f), x1, x2) != want) as usize;
                }
            }
            assert!(off > 0, "round {round}: c + 2^f changes no output");
        }
        assert_eq!(found, rounds, "linear form found for {found} of {rounds} ADDs and SUBs");
    }

    /// `add_stage_split`'s form equals the input stage on every int8 input, and exists for
    /// every stage TFLM's ADD gives (multipliers in `[2^30, 2^31)`, shifts 0 to -3).
    #[test]
    fn add_stage_split_is_the_stage() {
        let mut next = rng(0x5917_5917_0000_0001);
        let mut found = 0;
        for i in 0..2000 {
            let off = (next() % 256) as i32 - 127;
            let m = if i == 0 { 1 << 30 } else if i == 1 { i32::MAX } else { (1 << 30) + (next() % (1 << 30)) as i32 };
            let s = -((next() % 4) as i32);
            if let Some((k, c)) = add_stage_split(off, m, s) {
                found += 1;
                for x in -128..=127i32 {
                    let want = crate::q::mbqm((x + off) << 20, m, s);
                    let got = x.wrapping_mul(k[0]).wrapping_add(c).wrapping_add((x * k[1] + k[2] - if x < k[4] { k[5] } else { 0 }) >> k[3]);
                    assert_eq!(got, want, "off {off} m {m} s {s} x {x}");
                }
            }
        }
        assert_eq!(found, 2000, "split found for {found} of 2000 stages");
    }

    /// A 3x3 window at stride 1 with padding 1 on every side (output as large as the input)
    /// over an `H` x `W` x `C` input: the geometry of several runtime tests.
    pub(crate) struct Same3<const H: usize, const W: usize, const C: usize>;
    impl<const H: usize, const W: usize, const C: usize> ConvGeom for Same3<H, W, C> {
        const H: usize = H;
        const W: usize = W;
        const C: usize = C;
        const OH: usize = H;
        const OW: usize = W;
        const KH: usize = 3;
        const KW: usize = 3;
        const SH: usize = 1;
        const SW: usize = 1;
        const DH: usize = 1;
        const DW: usize = 1;
        const PAD_H: usize = 1;
        const PAD_W: usize = 1;
    }

    /// `Im2col::expand2` and `Dense::expand2` (on x86-64 with AVX2 their vector paths) write
    /// what two `expand::<2>` calls write, for every pair of positions, padded
    /// windows included (an odd number of 4-value chunks per window row: 18 values, 5 chunks).
    #[test]
    fn im2col_expand2_matches_expand() {
        let mut next = rng(0x1a2b_3c4d_5e6f_7081);
        let x: std::vec::Vec<i8> = (0..2 * 6 * 7 * 6).map(|_| next() as i8).collect();
        let words = 3 * 5 * 2 * 2 + 2;
        let npos = 2 * 6 * 7;
        for p0 in 0..npos {
            for p1 in [p0, (p0 + 1).min(npos - 1), (p0 + 9) % npos] {
                let mut a = Im2col::<i8, Same3<6, 7, 6>> { x: &x, zp: -3, g: core::marker::PhantomData };
                let mut got = std::vec![0u32; words];
                a.expand2(p0, p1, &mut got);
                let mut want = std::vec![0u32; words];
                a.expand::<2>(p0, &mut want);
                a.expand::<2>(p1, &mut want[1..]);
                assert_eq!(got, want, "positions {p0} {p1}");
            }
        }
        // Dense rows of lengths with whole, partial and no 8-value steps.
        for k in [3usize, 8, 13, 21, 40] {
            let x: std::vec::Vec<i8> = (0..5 * k).map(|_| next() as i8).collect();
            let w = 2 * k.div_ceil(4) * 2 + 2;
            for (p0, p1) in [(0, 1), (2, 4), (3, 3)] {
                let mut d = Dense { x: &x[..], k };
                let mut got = std::vec![0u32; w];
                d.expand2(p0, p1, &mut got);
                let mut want = std::vec![0u32; w];
                d.expand::<2>(p0, &mut want);
                d.expand::<2>(p1, &mut want[1..]);
                assert_eq!(got, want, "dense k {k} positions {p0} {p1}");
            }
        }
    }

    #[cfg(all(target_arch = "x86_64", target_feature = "avx512vnni"))]
    struct GV<const C: usize, const SH: usize, const DW: usize>;
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512vnni"))]
    impl<const C: usize, const SH: usize, const DW: usize> ConvGeom for GV<C, SH, DW> {
        const H: usize = 7;
        const W: usize = 6;
        const C: usize = C;
        const OH: usize = (7 + 2 - 3) / SH + 1;
        const OW: usize = (6 + 2 - (2 * DW + 1)) + 1;
        const KH: usize = 3;
        const KW: usize = 3;
        const SH: usize = SH;
        const SW: usize = 1;
        const DH: usize = 1;
        const DW: usize = DW;
        const PAD_H: usize = 1;
        const PAD_W: usize = 1;
    }

    /// 12 channels over rows 20 wide (stride 1): window rows of 9 words, so that one group
    /// of channels runs blocks of 16 positions (a whole one and a partial one per row).
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512vnni"))]
    type GW = Same3<5, 20, 12>;

    /// The AVX-512 VNNI form of `gemm_4x2` (weights `[16 ch][4]` per group, the bias with
    /// `-128 * sum(w)` folded in, rows as bytes `x ^ 0x80`) equals TFLM's convolution (taps
    /// outside the input skipped) with both requantizations, forwards and backwards: windows
    /// read in place from the band of input rows (stride 1 and 2), copied per position
    /// (dilation 2), dense rows of a length that is not a multiple of 4; 1, 2 and 3 groups of
    /// 16 channels (blocks of 16, 8 and 4 positions, a last partial group), at most 8
    /// channels two positions per register.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512vnni"))]
    #[test]
    fn vnni_gemm_matches_convolution() {
        fn run<G: ConvGeom, const STEPS: usize>(next: &mut impl FnMut() -> u64, cout: usize, dense: bool) {
            let n = 2;
            let (h, w, c, oh, ow, kh, kw) = (G::H, G::W, G::C, G::OH, G::OW, G::KH, G::KW);
            let span = kw * c;
            let rw = span.div_ceil(4) * 4;
            let (k, npos) = if dense { (span, n * oh * ow) } else { (kh * span, n * oh * ow) };
            let kp = if dense { k.div_ceil(4) * 4 } else { kh * rw };
            assert_eq!(STEPS, kp / 2);
            let zp = (next() % 256) as i32 - 128;
            let x: std::vec::Vec<i8> = (0..if dense { npos * k } else { n * h * w * c }).map(|_| next() as i8).collect();
            let wt: std::vec::Vec<i8> = (0..cout * k).map(|_| next() as i8).collect();
            let bias: std::vec::Vec<i32> = (0..cout).map(|_| (next() % 20001) as i32 - 10000).collect();
            // Packed row index -> weight index.
            let kmap = |i: usize| -> Option<usize> {
                if dense {
                    (i < k).then_some(i)
                } else {
                    (i % rw < span).then_some(i / rw * span + i % rw)
                }
            };
            let g16 = cout.div_ceil(16);
            let mut w4 = std::vec::Vec::new();
            let mut g0 = 0;
            while g0 < g16 {
                let take = gemm_vnni_pass(cout, g16 - g0);
                for j in 0..kp / 4 {
                    for g in g0..g0 + take {
                        for cc in 0..16 {
                            for t in 0..4 {
                                let o = 16 * g + cc;
                                w4.push(match kmap(4 * j + t) {
                                    Some(i) if o < cout => wt[o * k + i] as u8,
                                    _ => 0,
                                });
                            }
                        }
                    }
                }
                g0 += take;
            }
            for fast in [false, true] {
                let groups = rq_consts(next, cout.div_ceil(8), fast);
                let rq: std::vec::Vec<[i32; 3]> = (0..cout).map(|o| [groups[o / 8][0][o % 8], groups[o / 8][1][o % 8], groups[o / 8][2][o % 8]]).collect();
                let scale = if fast { 2 } else { 1 };
                let bias4: std::vec::Vec<i32> = (0..cout.div_ceil(4) * 4)
                    .map(|o| {
                        if o >= cout {
                            return 0;
                        }
                        let sw: i32 = wt[o * k..(o + 1) * k].iter().map(|&v| v as i32).sum();
                        (bias[o] - if dense { 0 } else { zp * sw } - 128 * sw) * scale
                    })
                    .collect();
                let l = Gemm { steps: STEPS, cout, w: &w4, w_i8: true, vnni: true, bias: &bias4, rq: &rq, lo: -110, hi: 127 };
                for rev in [false, true] {
                    let mut y = std::vec![0i8; npos * cout];
                    let mut xs = std::vec![0u32; (2 * STEPS + 2) * XS_GROUPS];
                    if dense {
                        gemm_4x2::<_, _, false, STEPS>(&l, &mut Dense { x: &x[..], k }, npos, &mut y[..], rev, &mut xs);
                    } else if fast {
                        gemm_4x2::<_, _, true, STEPS>(&l, &mut Im2col::<i8, G> { x: &x, zp: zp as i8, g: core::marker::PhantomData }, npos, &mut y[..], rev, &mut xs);
                    } else {
                        gemm_4x2::<_, _, false, STEPS>(&l, &mut Im2col::<i8, G> { x: &x, zp: zp as i8, g: core::marker::PhantomData }, npos, &mut y[..], rev, &mut xs);
                    }
                    if dense && fast {
                        continue;
                    }
                    for p in 0..npos {
                        let (b, oy, ox) = (p / (oh * ow), p / ow % oh, p % ow);
                        for o in 0..cout {
                            let mut acc = bias[o];
                            if dense {
                                for i in 0..k {
                                    acc += x[p * k + i] as i32 * wt[o * k + i] as i32;
                                }
                            } else {
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        let iy = (oy * G::SH + ky) as isize - G::PAD_H as isize;
                                        let ix = (ox * G::SW + kx * G::DW) as isize - G::PAD_W as isize;
                                        if iy < 0 || iy as usize >= h || ix < 0 || ix as usize >= w {
                                            continue;
                                        }
                                        for ic in 0..c {
                                            let xv = x[((b * h + iy as usize) * w + ix as usize) * c + ic] as i32 - zp;
                                            acc += xv * wt[o * k + (ky * kw + kx) * c + ic] as i32;
                                        }
                                    }
                                }
                            }
                            let want = if fast { rq_fast(acc * 2, &rq[o], -110, 127) } else { rq_exact(acc, &rq[o], -110, 127) };
                            assert_eq!(y[p * cout + o], want, "cout {cout} dense {dense} fast {fast} rev {rev} position {p} channel {o}");
                        }
                    }
                }
            }
        }
        let mut next = rng(0x7a11_d0c5_0000_0016);
        // Band (stride 1, 2); 8 input channels: window rows of 24 values.
        run::<GV<8, 1, 1>, 36>(&mut next, 20, false);
        run::<GV<8, 2, 1>, 36>(&mut next, 40, false);
        run::<GV<8, 1, 1>, 36>(&mut next, 9, false);
        // One group over window rows of 9 words: blocks of 16 positions.
        run::<GW, 54>(&mut next, 16, false);
        run::<GW, 54>(&mut next, 13, false);
        // At most 8 channels over windows read in place: two positions per register.
        run::<GW, 54>(&mut next, 8, false);
        run::<GW, 54>(&mut next, 5, false);
        run::<GV<8, 2, 1>, 36>(&mut next, 8, false);
        // Dilation 2: windows copied per position; 5 channels, rows of 15 values padded to 16.
        run::<GV<5, 1, 2>, 24>(&mut next, 33, false);
        // Dense rows of 24 values (KW * C of `GV<8, ..>`) and of 15 (padded to 16).
        run::<GV<8, 1, 1>, 12>(&mut next, 50, true);
        run::<GV<5, 1, 1>, 8>(&mut next, 16, true);
    }

    /// The AVX-512 VNNI form of `fc_channels` equals the plain sum, both requantizations,
    /// 1 to 9 groups of 16 channels, rows of lengths that are not multiples of 4.
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512vnni"))]
    #[test]
    fn vnni_fc_matches_sum() {
        let mut next = rng(0xfc00_0000_0000_0016);
        for (k, cout, batches) in [(13usize, 7usize, 3usize), (64, 130, 1), (37, 40, 2), (5, 150, 1)] {
            let x: std::vec::Vec<i8> = (0..batches * k).map(|_| next() as i8).collect();
            let wt: std::vec::Vec<i8> = (0..cout * k).map(|_| next() as i8).collect();
            let bias: std::vec::Vec<i32> = (0..cout).map(|_| (next() % 20001) as i32 - 10000).collect();
            let (g16, kq) = (cout.div_ceil(16), k.div_ceil(4));
            let mut w4 = std::vec::Vec::new();
            let mut g0 = 0;
            while g0 < g16 {
                let take = fc_vnni_pass(g16 - g0);
                for q in 0..kq {
                    for g in g0..g0 + take {
                        for c in 0..16 {
                            for j in 0..4 {
                                let (o, d) = (16 * g + c, 4 * q + j);
                                w4.push(if o < cout && d < k { wt[o * k + d] as u8 } else { 0 });
                            }
                        }
                    }
                }
                g0 += take;
            }
            let bias4: std::vec::Vec<i32> = (0..g16 * 16).map(|o| if o < cout { bias[o] - 128 * wt[o * k..(o + 1) * k].iter().map(|&v| v as i32).sum::<i32>() } else { 0 }).collect();
            for fast in [false, true] {
                let rq = rq_consts(&mut next, cout.div_ceil(8), fast);
                let l = FcI8 { k, cout, w: &w4, bias: &bias4, rq: &rq, lo: -128, hi: 100, vnni: true };
                for rev in [false, true] {
                    let mut y = std::vec![0i8; batches * cout];
                    let mut xs = std::vec![0u32; k.div_ceil(2)];
                    if fast {
                        fc_channels::<_, _, true>(&l, &x, batches, &mut y[..], rev, &mut xs);
                    } else {
                        fc_channels::<_, _, false>(&l, &x, batches, &mut y[..], rev, &mut xs);
                    }
                    for b in 0..batches {
                        for o in 0..cout {
                            let acc: i32 = bias[o] + (0..k).map(|i| x[b * k + i] as i32 * wt[o * k + i] as i32).sum::<i32>();
                            let r = [rq[o / 8][0][o % 8], rq[o / 8][1][o % 8], rq[o / 8][2][o % 8]];
                            let want = if fast { rq_fast(acc * 2, &r, -128, 100) } else { rq_exact(acc, &r, -128, 100) };
                            assert_eq!(y[b * cout + o], want, "k {k} cout {cout} fast {fast} rev {rev} batch {b} channel {o}");
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn rng(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// Random requantization constants for 8-channel groups: `rq_fast`'s `(m, k, e)` when
    /// `fast`, else `rq_exact`'s `(multiplier, shift, zero point)`.
    pub(crate) fn rq_consts(next: &mut impl FnMut() -> u64, groups: usize, fast: bool) -> std::vec::Vec<[[i32; 8]; 3]> {
        (0..groups)
            .map(|_| {
                let mut g = [[0i32; 8]; 3];
                for c in 0..8 {
                    let m = (1 << 30) + (next() % (1 << 30)) as i32;
                    let e = 1 + (next() % 14) as i32;
                    let zp = (next() % 256) as i32 - 128;
                    let v = if fast { [m, (1 << (e - 1)) + (zp << e), e] } else { [m, -e, zp] };
                    for j in 0..3 {
                        g[j][c] = v[j];
                    }
                }
                g
            })
            .collect()
    }

    /// `fc_channels` (on x86-64 with AVX2 its vector tiles; build with
    /// `-C target-cpu=native` to test them) equals a scalar dot product and requantization,
    /// for layers of whole and partial groups of tiles and both requantizations.
    #[test]
    fn fc_channels_matches_scalar() {
        use std::vec::Vec;
        let mut next = rng(0x5eed_1234_abcd_0001);
        for &(k, cout, batches) in &[(7usize, 5usize, 1usize), (64, 40, 2), (33, 8, 1), (128, 72, 3)] {
            for fast in [true, false] {
                let (steps, tiles) = (k.div_ceil(2), cout.div_ceil(8));
                let wt: Vec<Vec<i8>> = (0..cout).map(|_| (0..k).map(|_| next() as i8).collect()).collect();
                let x: Vec<i8> = (0..batches * k).map(|_| next() as i8).collect();
                let bias: Vec<i32> = (0..tiles * 8).map(|_| (next() % 20001) as i32 - 10000).collect();
                let rq = rq_consts(&mut next, tiles, fast);
                let mut w = Vec::new();
                for t in 0..tiles {
                    for st in 0..steps {
                        for c in 0..8 {
                            for j in 0..2 {
                                let (o, d) = (8 * t + c, 2 * st + j);
                                w.push(if o < cout && d < k { wt[o][d] as u8 } else { 0 });
                            }
                        }
                    }
                }
                let l = FcI8 { k, cout, w: &w, bias: &bias, rq: &rq, lo: -100, hi: 127, vnni: false };
                let mut y = std::vec![0i8; batches * cout];
                let mut xs = std::vec![0u32; steps];
                if fast {
                    fc_channels::<i8, _, true>(&l, &x, batches, &mut y[..], false, &mut xs);
                } else {
                    fc_channels::<i8, _, false>(&l, &x, batches, &mut y[..], false, &mut xs);
                }
                for b in 0..batches {
                    for o in 0..cout {
                        let acc = (0..k).fold(bias[o], |a, d| a.wrapping_add(x[b * k + d] as i32 * wt[o][d] as i32));
                        let r = [rq[o / 8][0][o % 8], rq[o / 8][1][o % 8], rq[o / 8][2][o % 8]];
                        let want = if fast { rq_fast(acc.wrapping_mul(2), &r, -100, 127) } else { rq_exact(acc, &r, -100, 127) };
                        assert_eq!(y[b * cout + o], want, "k {k} cout {cout} fast {fast} batch {b} channel {o}");
                    }
                }
            }
        }
    }
}
