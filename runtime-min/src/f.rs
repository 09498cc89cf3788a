//! Float helpers for `no_std` (core has no `exp`/`tanh`/`round` without `std`).
//! Accurate to a few ulp, which is what float conformance (1e-5 relative) needs.

/// Round half away from zero (C `roundf`), then convert with saturation.
#[inline]
pub fn round_to_i32(x: f32) -> i32 {
    // `as` saturates and maps NaN to 0. On x86-64 without branches (the same result), so that
    // loops of it vectorize; a microcontroller (no vectors) branches, which is fewer
    // instructions there (kws_ds_cnn_float32 on Cortex-M4: 25.87 M with the branchless form).
    let t = x as i32;
    let frac = x - t as f32;
    #[cfg(target_arch = "x86_64")]
    {
        t.saturating_add((frac >= 0.5) as i32).saturating_sub((frac <= -0.5) as i32)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        if frac >= 0.5 {
            t.saturating_add(1)
        } else if frac <= -0.5 {
            t.saturating_sub(1)
        } else {
            t
        }
    }
}

/// `clamp(round_to_i32(x), lo, hi)` for integral bounds `lo <= 0 <= hi` within +-2^24
/// (NaN gives `clamp(0)`, as there). On x86-64 the value is clamped in float first, so that
/// the conversion is a plain truncation, which vectorizes (the saturating `as` does not);
/// elsewhere (a saturating conversion instruction, no vectors) the plain form.
#[inline(always)]
#[allow(unsafe_code)]
pub fn round_clamp(x: f32, lo: i32, hi: i32) -> i32 {
    #[cfg(not(target_arch = "x86_64"))]
    {
        crate::q::clamp(round_to_i32(x), lo, hi)
    }
    #[cfg(target_arch = "x86_64")]
    {
        round_clamp_vec(x, lo, hi)
    }
}

/// [`round_clamp`]'s x86-64 form (a test compares it with the plain one on every target).
#[inline(always)]
#[allow(unsafe_code, dead_code)]
fn round_clamp_vec(x: f32, lo: i32, hi: i32) -> i32 {
    let c = if x.is_nan() { 0.0 } else { x.max(lo as f32).min(hi as f32) };
    // SAFETY: `c` is finite and within `lo..=hi`, which `i32` represents.
    let t = unsafe { c.to_int_unchecked::<i32>() };
    let frac = c - t as f32;
    t + (frac >= 0.5) as i32 - (frac <= -0.5) as i32
}

/// C `roundf` as a float (half away from zero).
#[inline]
pub fn round(x: f32) -> f32 {
    if !(x.abs() < 8_388_608.0) {
        return x; // already integral, infinite or NaN
    }
    round_to_i32(x) as f32
}

/// Quantize one float as TFLite's `AffineQuantize` does:
/// `round(x / scale) + zero_point`, clamped to `[lo, hi]`.
#[inline]
pub fn quantize(x: f32, scale: f32, zero_point: i32, lo: i32, hi: i32) -> i32 {
    let q = round_to_i32(x / scale).saturating_add(zero_point);
    crate::q::clamp(q, lo, hi)
}

/// `2^n` as f32 for `n` in the normal range.
#[inline]
fn pow2i(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

/// `e^x` (Cephes-style range reduction and minimax polynomial, f32 only).
pub fn exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x > 88.722_84 {
        return f32::INFINITY;
    }
    if x < -103.972_08 {
        return 0.0;
    }
    const LOG2E: f32 = 1.442_695_04;
    const C1: f32 = 0.693_359_375;
    const C2: f32 = -2.121_944_4e-4;
    let fx = round(x * LOG2E);
    let n = fx as i32;
    let r = x - fx * C1 - fx * C2;
    let z = r * r;
    let p = ((((1.987_569_15e-4 * r + 1.398_199_95e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let y = p * z + r + 1.0;
    // Scale by 2^n in two steps so that subnormal results and n = 128 are handled.
    if n > 127 {
        y * pow2i(127) * pow2i(n - 127)
    } else if n < -126 {
        y * pow2i(-126) * pow2i(n + 126)
    } else {
        y * pow2i(n)
    }
}

/// `tanh(x)`.
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    if a.is_nan() {
        return x;
    }
    if a < 0.625 {
        let z = x * x;
        let p = (((-5.704_988_7e-3 * z + 2.063_908_9e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1)
            * z
            - 3.333_328_2e-1;
        return p * z * x + x;
    }
    if a > 9.0 {
        return if x > 0.0 { 1.0 } else { -1.0 };
    }
    let e = exp(2.0 * a);
    let t = 1.0 - 2.0 / (e + 1.0);
    if x > 0.0 {
        t
    } else {
        -t
    }
}

/// TFLite's float `Logistic`, including its cut-offs.
pub fn logistic(x: f32) -> f32 {
    const UPPER: f32 = 16.619_047;
    const LOWER: f32 = -9.0;
    if x > UPPER {
        1.0
    } else if x < LOWER {
        exp(x)
    } else {
        1.0 / (1.0 + exp(-x))
    }
}

/// Output positions per float tile of `n` channels: enough independent accumulator chains to
/// hide the fused multiply-add latency of the host's vector unit while the accumulators, the
/// block's weight vectors and a broadcast stay in registers: with AVX-512 (32 registers of 16
/// lanes) 12 positions of up to 16 channels or 8 of 32 (16 accumulators); with AVX and FMA
/// (16 registers of 8 lanes) 6 of 16 or 3 of 32 (12 accumulators); without FMA 4 of 16 (each
/// product needs a register of its own); one position on the microcontrollers (16 channels
/// already fill an FPU's register file).
pub const fn tile_p(n: usize) -> usize {
    let lanes = if cfg!(all(target_arch = "x86_64", target_feature = "avx512f")) {
        16
    } else {
        8
    };
    let vectors = if n > lanes { n.div_ceil(lanes) } else { 1 };
    let budget = if cfg!(all(target_arch = "x86_64", target_feature = "avx512f")) {
        if vectors == 1 { 12 } else { 16 }
    } else if cfg!(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma")) {
        12
    } else if cfg!(target_arch = "x86_64") {
        8
    } else {
        return 1;
    };
    let p = budget / vectors;
    if p == 0 { 1 } else { p }
}

/// Blocks of channels [`gemv`] runs at a time: independent accumulator chains, 6 with FMA
/// on the host (more only add loads: the weights stream from memory once), 4 without, one
/// on the microcontrollers.
#[cfg(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma"))]
pub const TILE_P: usize = 6;
#[cfg(all(target_arch = "x86_64", not(all(target_feature = "avx", target_feature = "fma"))))]
pub const TILE_P: usize = 4;
#[cfg(not(target_arch = "x86_64"))]
pub const TILE_P: usize = 1;

/// Whether this build fuses the float multiply-adds of [`madd`] and [`madd_lanes`] (and so of
/// [`tile`], [`gemv`] and the generated packed float kernels): an x86-64 host with FMA (the
/// `microgen run` runner's `-C target-cpu=native`). A fused `a + x * w` is rounded once instead of twice, as
/// in XNNPACK's kernels, so such a build is not bit-identical with a microcontroller's (which
/// rounds each product before its add); `-C target-feature=-fma` gives the unfused results.
pub const FUSED: bool = cfg!(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma"));

/// `acc[n] += x * w[n]` for every lane `n` (fused where [`FUSED`]).
#[inline(always)]
pub fn madd<const N: usize>(acc: &mut [f32; N], x: f32, w: &[f32; N]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma"))]
    fused::madd(acc, x, w);
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma")))]
    for n in 0..N {
        acc[n] += x * w[n];
    }
}

/// `acc[n] += x[n] * w[n]` for every lane `n` (fused where [`FUSED`]).
#[inline(always)]
pub fn madd_lanes<const N: usize>(acc: &mut [f32; N], x: &[f32; N], w: &[f32; N]) {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma"))]
    fused::madd_lanes(acc, x, w);
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma")))]
    for n in 0..N {
        acc[n] += x[n] * w[n];
    }
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx", target_feature = "fma"))]
#[allow(unsafe_code)]
mod fused {
    use core::arch::x86_64::*;

    /// One lane: `a + x * w` rounded once.
    #[inline(always)]
    fn one(a: f32, x: f32, w: f32) -> f32 {
        // SAFETY: FMA is enabled by the cfg that compiles this module; register operands only.
        unsafe { _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(x), _mm_set_ss(w), _mm_set_ss(a))) }
    }

    #[inline(always)]
    pub fn madd<const N: usize>(acc: &mut [f32; N], x: f32, w: &[f32; N]) {
        let mut i = 0;
        // SAFETY: AVX and FMA (and AVX-512 where its cfg is on) are enabled by the cfgs;
        // every access reads or writes 16 or 8 lanes at `i + 16 <= N` or `i + 8 <= N` inside
        // `acc` or `w` (unaligned loads and stores).
        unsafe {
            #[cfg(target_feature = "avx512f")]
            {
                let xv = _mm512_set1_ps(x);
                while i + 16 <= N {
                    let a = _mm512_loadu_ps(acc.as_ptr().add(i));
                    let b = _mm512_loadu_ps(w.as_ptr().add(i));
                    _mm512_storeu_ps(acc.as_mut_ptr().add(i), _mm512_fmadd_ps(xv, b, a));
                    i += 16;
                }
            }
            let xv = _mm256_set1_ps(x);
            while i + 8 <= N {
                let a = _mm256_loadu_ps(acc.as_ptr().add(i));
                let b = _mm256_loadu_ps(w.as_ptr().add(i));
                _mm256_storeu_ps(acc.as_mut_ptr().add(i), _mm256_fmadd_ps(xv, b, a));
                i += 8;
            }
        }
        while i < N {
            acc[i] = one(acc[i], x, w[i]);
            i += 1;
        }
    }

    #[inline(always)]
    pub fn madd_lanes<const N: usize>(acc: &mut [f32; N], x: &[f32; N], w: &[f32; N]) {
        let mut i = 0;
        // SAFETY: as in `madd`, with `x` read like `w`.
        unsafe {
            #[cfg(target_feature = "avx512f")]
            while i + 16 <= N {
                let a = _mm512_loadu_ps(acc.as_ptr().add(i));
                let xv = _mm512_loadu_ps(x.as_ptr().add(i));
                let b = _mm512_loadu_ps(w.as_ptr().add(i));
                _mm512_storeu_ps(acc.as_mut_ptr().add(i), _mm512_fmadd_ps(xv, b, a));
                i += 16;
            }
            while i + 8 <= N {
                let a = _mm256_loadu_ps(acc.as_ptr().add(i));
                let xv = _mm256_loadu_ps(x.as_ptr().add(i));
                let b = _mm256_loadu_ps(w.as_ptr().add(i));
                _mm256_storeu_ps(acc.as_mut_ptr().add(i), _mm256_fmadd_ps(xv, b, a));
                i += 8;
            }
        }
        while i < N {
            acc[i] = one(acc[i], x[i], w[i]);
            i += 1;
        }
    }
}

/// The `N` float32 little-endian weights at the start of `wr` (one tap of a packed block).
#[inline(always)]
fn weights<const N: usize>(wr: &[u8]) -> [f32; N] {
    core::array::from_fn(|n| f32::from_le_bytes([wr[4 * n], wr[4 * n + 1], wr[4 * n + 2], wr[4 * n + 3]]))
}

/// The float tile multiply-accumulate: `acc[p][n] += xs[p][k] * w[k][n]` for `k` ascending,
/// `P` positions (their window values, `xs`, all of one length) by `N` channels (`w`: the
/// `N` weights of each `k`, float32 little-endian), through [`madd`]. Each output keeps the
/// reference's order of summation; unless [`FUSED`], every product is rounded before its add
/// (Rust never contracts them), so the result equals a scalar loop's, bit for bit. The `N`
/// lanes become vector operations.
#[inline(always)]
pub fn tile<const P: usize, const N: usize>(xs: [&[f32]; P], w: &[u8], acc: &mut [[f32; N]; P]) {
    let k = xs[0].len();
    let xs: [&[f32]; P] = core::array::from_fn(|p| &xs[p][..k]);
    for (kk, wr) in w[..k * 4 * N].chunks_exact(4 * N).enumerate() {
        let wv = weights::<N>(wr);
        for p in 0..P {
            madd(&mut acc[p], xs[p][kk], &wv);
        }
    }
}

/// [`tile`] reading the inputs in place: position `p`'s window is `rows` runs of `k`
/// values, `stride` elements apart, from element `starts[p]` of `x` (arena bytes, a float
/// slice or shared cells), so a window inside the input needs no copy. `w` holds the `N`
/// weights of each of the `rows * k` taps. The same sums, in the same order.
#[inline(always)]
pub fn tile_at<const P: usize, const N: usize, X: crate::buf::F32s + ?Sized>(x: &X, starts: [usize; P], rows: usize, k: usize, stride: usize, w: &[u8], acc: &mut [[f32; N]; P]) {
    let span = (rows - 1) * stride + k;
    let wins: [&X; P] = core::array::from_fn(|p| x.f32_run(starts[p], span));
    let w = &w[..rows * k * 4 * N];
    for r in 0..rows {
        for kk in 0..k {
            let wr = &w[(r * k + kk) * 4 * N..(r * k + kk + 1) * 4 * N];
            let wv = weights::<N>(wr);
            for p in 0..P {
                madd(&mut acc[p], wins[p].get_f32(r * stride + kk), &wv);
            }
        }
    }
}

/// A depthwise window inside the input, `acc[q] += x[tap][q] * w[tap][q]` over the `kh * kw`
/// taps in order (through [`madd_lanes`]): tap `(ky, kx)` reads `CB` values of `x` at
/// `start + ky * row + kx * col` and of `w` (float32 little-endian) at element
/// `(ky * kw + kx) * wrow`. The window is bounds-checked once, not tap by tap.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn dw_window<const CB: usize, X: crate::buf::F32s + ?Sized>(x: &X, start: usize, kh: usize, kw: usize, row: usize, col: usize, w: &[u8], wrow: usize, acc: &mut [f32; CB]) {
    use crate::buf::F32s;
    let win = x.f32_run(start, (kh - 1) * row + (kw - 1) * col + CB);
    let w = &w[..((kh * kw - 1) * wrow + CB) * 4];
    for ky in 0..kh {
        for kx in 0..kw {
            let mut xv = [0.0f32; CB];
            win.read_f32s(ky * row + kx * col, &mut xv);
            let mut wv = [0.0f32; CB];
            w.read_f32s((ky * kw + kx) * wrow, &mut wv);
            madd_lanes(acc, &xv, &wv);
        }
    }
}

/// A float fully connected row: `out(o, sum_k x[k] * w[o][k])` (`k` ascending, through
/// [`madd`]: a scalar loop's result, bit for bit, unless [`FUSED`]) for every channel `o` of the
/// weights packed `[o / N][k][o % N]` (float32 little-endian, whole blocks of `N`). On the
/// host, `TILE_P` blocks at a time (independent accumulator chains).
#[inline(always)]
pub fn gemv<const N: usize>(x: &[f32], w: &[u8], mut out: impl FnMut(usize, f32)) {
    let blk = x.len() * 4 * N;
    if blk == 0 {
        return;
    }
    let nb = w.len() / blk;
    let mut j = 0;
    while j + TILE_P <= nb {
        let mut acc = [[0.0f32; N]; TILE_P];
        let ws: [&[u8]; TILE_P] = core::array::from_fn(|q| &w[(j + q) * blk..(j + q + 1) * blk]);
        for (kk, &xv) in x.iter().enumerate() {
            for q in 0..TILE_P {
                let wr = &ws[q][kk * 4 * N..(kk + 1) * 4 * N];
                let wv = weights::<N>(wr);
                madd(&mut acc[q], xv, &wv);
            }
        }
        for (q, a) in acc.iter().enumerate() {
            for (n, &v) in a.iter().enumerate() {
                out((j + q) * N + n, v);
            }
        }
        j += TILE_P;
    }
    while j < nb {
        let mut acc = [[0.0f32; N]; 1];
        tile([x], &w[j * blk..(j + 1) * blk], &mut acc);
        for (n, &v) in acc[0].iter().enumerate() {
            out(j * N + n, v);
        }
        j += 1;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn round_clamp_vec_is_clamped_round() {
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN, 0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 126.5, 127.5, -127.5, -128.5, 128.0, -129.0, 2.5e9, -2.5e9, 0.49999997, -0.49999997];
        let mut s = 0x1234_5678u32;
        let mut vals: std::vec::Vec<f32> = specials.to_vec();
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            vals.push((s as i32) as f32 / 8_388_608.0 * 300.0);
            vals.push(f32::from_bits(s));
        }
        for &(lo, hi) in &[(-128, 127), (-127, 127), (0, 255), (-32768, 32767)] {
            for &x in &vals {
                assert_eq!(round_clamp_vec(x, lo, hi), crate::q::clamp(round_to_i32(x), lo, hi), "x {x} lo {lo} hi {hi}");
            }
        }
    }

    #[test]
    fn exp_is_accurate() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            assert!(((got - want) / want).abs() < 4e-7, "exp({x}) = {got}, want {want}");
            x += 0.0137;
        }
    }

    #[test]
    fn tanh_is_accurate() {
        let mut x = -12.0f32;
        while x < 12.0 {
            let want = (x as f64).tanh();
            let got = tanh(x) as f64;
            assert!((got - want).abs() <= 4e-7 * want.abs().max(1e-3), "tanh({x}) = {got}, want {want}");
            x += 0.00731;
        }
    }

    /// The reference step: fused (one rounding, std's `mul_add`) where this build fuses.
    fn step(a: f32, x: f32, w: f32) -> f32 {
        if FUSED {
            x.mul_add(w, a)
        } else {
            a + x * w
        }
    }

    #[test]
    fn madd_is_the_reference_step() {
        let mut s = 0x9e37_79b9u32;
        let mut r = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as i32) as f32 / 2_147_483_648.0 * 3.0
        };
        for _ in 0..2000 {
            let (a, x, w): ([f32; 13], [f32; 13], [f32; 13]) = (core::array::from_fn(|_| r()), core::array::from_fn(|_| r()), core::array::from_fn(|_| r()));
            let xs = r();
            let (mut b, mut l) = (a, a);
            madd(&mut b, xs, &w);
            madd_lanes(&mut l, &x, &w);
            for n in 0..13 {
                assert_eq!(b[n].to_bits(), step(a[n], xs, w[n]).to_bits());
                assert_eq!(l[n].to_bits(), step(a[n], x[n], w[n]).to_bits());
            }
        }
    }

    #[test]
    fn tile_sums_in_order() {
        let (x0, x1): ([f32; 3], [f32; 3]) = ([1.0, 1e8, -1e8], [0.5, 2.0, 0.0]);
        let w: [[f32; 2]; 3] = [[0.25, 1.0], [1.0, -1.0], [1.0, 3.0]];
        let wb: std::vec::Vec<u8> = w.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
        let mut acc = [[0.0f32; 2]; 2];
        tile([&x0[..], &x1[..]], &wb, &mut acc);
        for (p, x) in [x0, x1].iter().enumerate() {
            for n in 0..2 {
                let mut want = 0.0f32;
                for k in 0..3 {
                    want = step(want, x[k], w[k][n]);
                }
                assert_eq!(acc[p][n].to_bits(), want.to_bits());
            }
        }
        // 0.25 + 1e8 - 1e8 in order is 0 (the small term is absorbed), not 0.25.
        assert_eq!(acc[0][0], 0.0);
    }

    #[test]
    fn tile_at_reads_the_windows_in_place() {
        // 3 positions, windows of 2 rows of 3 values, 7 apart, inside 40 values held as
        // bytes: the same sums as `tile` over the windows copied out.
        let xs: std::vec::Vec<f32> = (0..40).map(|i| ((i * 37) % 11) as f32 * 0.3 - 1.4).collect();
        let xb: std::vec::Vec<u8> = xs.iter().flat_map(|v| v.to_le_bytes()).collect();
        let wb: std::vec::Vec<u8> = (0..6 * 8).flat_map(|i| (((i * 13) % 7) as f32 * 0.21 - 0.5).to_le_bytes()).collect();
        let starts = [0usize, 5, 30];
        let mut got = [[0.0f32; 8]; 3];
        tile_at(&xb[..], starts, 2, 3, 7, &wb, &mut got);
        let wins: std::vec::Vec<[f32; 6]> = starts.iter().map(|&s| core::array::from_fn(|i| xs[s + (i / 3) * 7 + i % 3])).collect();
        let mut want = [[0.0f32; 8]; 3];
        tile([&wins[0][..], &wins[1][..], &wins[2][..]], &wb, &mut want);
        assert_eq!(got.map(|r| r.map(f32::to_bits)), want.map(|r| r.map(f32::to_bits)));
        assert!(got[2].iter().any(|&v| v != 0.0));
    }

    #[test]
    fn gemv_covers_every_block() {
        // 7 blocks of 2 channels (more than one host group of TILE_P and a remainder).
        let (k, n, nb) = (5usize, 2usize, 7usize);
        let x: std::vec::Vec<f32> = (0..k).map(|i| i as f32 * 0.37 - 0.5).collect();
        let wt = |o: usize, kk: usize| ((o * 31 + kk * 7) % 13) as f32 * 0.11 - 0.6;
        let mut wb = std::vec::Vec::new();
        for j in 0..nb {
            for kk in 0..k {
                for q in 0..n {
                    wb.extend_from_slice(&wt(j * n + q, kk).to_le_bytes());
                }
            }
        }
        let mut got = [f32::NAN; 14];
        gemv::<2>(&x, &wb, |o, v| got[o] = v);
        for (o, g) in got.iter().enumerate() {
            let mut want = 0.0f32;
            for (kk, &xv) in x.iter().enumerate() {
                want = step(want, xv, wt(o, kk));
            }
            assert_eq!(g.to_bits(), want.to_bits(), "channel {o}");
        }
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_to_i32(0.5), 1);
        assert_eq!(round_to_i32(-0.5), -1);
        assert_eq!(round_to_i32(0.49999997), 0);
        assert_eq!(round_to_i32(2.5), 3);
        assert_eq!(round_to_i32(-2.4), -2);
        assert_eq!(round_to_i32(1e20), i32::MAX);
        assert_eq!(quantize(1e20, 0.1, 5, -128, 127), 127);
        assert_eq!(quantize(-0.25, 0.5, 0, -128, 127), -1);
    }
}
