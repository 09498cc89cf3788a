//! Integer arithmetic exactly as TFLite's reference kernels (and gemmlowp) define it.
//!
//! TFLM's default build uses the double-rounding `MultiplyByQuantizedMultiplier`:
//! a saturating rounding doubling high multiply followed by a rounding division by a
//! power of two. All functions here are total (no panics) for every input.

/// gemmlowp `SaturatingRoundingDoublingHighMul`: `round(a * b / 2^31)` with the single
/// overflow case (`i32::MIN * i32::MIN`) saturated.
#[inline(always)]
pub fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    // gemmlowp adds 2^30 to a non-negative product, 1 - 2^30 to a negative one, and divides
    // by 2^31 truncating toward zero. Both cases equal floor((ab + 2^30) / 2^31): for ab < 0,
    // trunc((ab + 1 - 2^30) / 2^31) = -floor((2^30 - 1 - ab) / 2^31) = floor((ab + 2^30) / 2^31).
    // One add and an arithmetic shift instead of a sign-dependent nudge and a division
    // (`srdhm_is_gemmlowps` checks the identity).
    ((a as i64 * b as i64 + (1 << 30)) >> 31) as i32
}

/// gemmlowp `RoundingDivideByPOT`: `x / 2^exponent`, rounded half away from zero.
/// `exponent` must be in `0..=31`; it is clamped to that range.
#[inline(always)]
pub fn rdivpot(x: i32, exponent: i32) -> i32 {
    let e = if exponent < 0 { 0 } else if exponent > 31 { 31 } else { exponent } as u32;
    let mask: i32 = ((1i64 << e) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + if x < 0 { 1 } else { 0 };
    (x >> e) + if remainder > threshold { 1 } else { 0 }
}

/// TFLite `MultiplyByQuantizedMultiplier` (double rounding): `x * m * 2^shift / 2^31`.
#[inline(always)]
pub fn mbqm(x: i32, m: i32, shift: i32) -> i32 {
    if shift > 0 {
        srdhm(x.wrapping_mul(1i32.wrapping_shl(shift as u32)), m)
    } else {
        rdivpot(srdhm(x, m), -shift)
    }
}

/// [`mbqm`], the output zero point and the clamp to `[lo, hi]`, as one out-of-line
/// function: the loop kernels call it, so a model has one copy of the requantization
/// however many such layers it has (they are the forms chosen for flash).
///
/// `m` is a multiplier of `QuantizeMultiplier` for a positive scale (0 or in
/// `[2^30, 2^31)`; the compiler rejects other scales), never `i32::MIN`, so the one
/// saturating case of [`srdhm`] cannot occur and is not tested for (fewer bytes of flash).
#[inline(never)]
pub fn requant(acc: i32, m: i32, shift: i32, zp: i32, lo: i32, hi: i32) -> i8 {
    let x = if shift > 0 { acc.wrapping_mul(1i32.wrapping_shl(shift as u32)) } else { acc };
    let p = ((x as i64 * m as i64 + (1 << 30)) >> 31) as i32;
    let v = if shift > 0 { p } else { rdivpot(p, -shift) };
    clamp(v.wrapping_add(zp), lo, hi) as i8
}

/// [`crate::mac::rq_fast`] of the doubled accumulator `2 * acc`, out of line: what the
/// flash goals' loop kernels call where the compiler found that form exact for every channel
/// of the layer (`r` = multiplier, rounding constant, shift; see `microgen_rt::mac`). Half
/// the code of [`requant`].
#[inline(never)]
pub fn requant_fast(acc: i32, r: &[i32; 3], lo: i32, hi: i32) -> i8 {
    crate::mac::rq_fast(acc.wrapping_mul(2), r, lo, hi)
}

/// Requantize with a non-positive shift (the common case after a convolution):
/// `rdivpot(srdhm(x, m), right)`.
#[inline(always)]
pub fn mbqm_r(x: i32, m: i32, right: i32) -> i32 {
    rdivpot(srdhm(x, m), right)
}

/// Requantize with a positive shift: `srdhm(x << left, m)`.
#[inline(always)]
pub fn mbqm_l(x: i32, m: i32, left: u32) -> i32 {
    srdhm(x.wrapping_shl(left), m)
}

/// Clamp to `[lo, hi]`.
#[inline(always)]
pub fn clamp(x: i32, lo: i32, hi: i32) -> i32 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// gemmlowp `SaturatingRoundingMultiplyByPOT<exponent>` on a raw int32.
#[inline]
pub fn srmulpot(x: i32, exponent: i32) -> i32 {
    if exponent > 0 {
        let threshold: i32 = ((1i64 << (31 - exponent)) - 1) as i32;
        if x > threshold {
            i32::MAX
        } else if x < -threshold {
            i32::MIN
        } else {
            x.wrapping_shl(exponent as u32)
        }
    } else if exponent < 0 {
        rdivpot(x, -exponent)
    } else {
        x
    }
}

/// gemmlowp `RoundingHalfSum` for int32.
#[inline]
pub fn rounding_half_sum(a: i32, b: i32) -> i32 {
    // gemmlowp: (sum + sign(sum)) / 2, truncating. For sum < 0 that is floor(sum / 2), for
    // sum >= 0 floor((sum + 1) / 2): one conditional increment and an arithmetic shift.
    let sum = a as i64 + b as i64;
    ((sum + (sum >= 0) as i64) >> 1) as i32
}

/// Fixed-point `Rescale<dst>` from `src` integer bits.
#[inline]
pub fn rescale(x: i32, src_int_bits: i32, dst_int_bits: i32) -> i32 {
    srmulpot(x, src_int_bits - dst_int_bits)
}

const ONE_Q0: i32 = i32::MAX;

/// gemmlowp `exp_on_interval_between_negative_one_quarter_and_0_excl` (Q0.31 in, Q0.31 out).
fn exp_quarter(a: i32) -> i32 {
    let constant_term: i32 = 1895147668; // exp(-1/8)
    let constant_1_over_3 = 715827883;
    let x = a.wrapping_add(1 << 28);
    let x2 = srdhm(x, x);
    let x3 = srdhm(x2, x);
    let x4 = srdhm(x2, x2);
    let x4_over_4 = srmulpot(x4, -2);
    let t = srmulpot(
        srdhm(x4_over_4.wrapping_add(x3), constant_1_over_3).wrapping_add(x2),
        -1,
    );
    constant_term.wrapping_add(srdhm(constant_term, x.wrapping_add(t)))
}

/// gemmlowp `exp_on_negative_values` for a fixed-point input with `int_bits` integer bits;
/// returns Q0.31.
pub fn exp_on_negative_values(a: i32, int_bits: i32) -> i32 {
    let frac_bits = 31 - int_bits;
    let one_quarter: i32 = 1i32 << (frac_bits - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    let mut result = exp_quarter(rescale(a_mod_quarter_minus_one_quarter, int_bits, 0));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    const BARREL: [(i32, i32); 7] = [
        (-2, 1672461947),
        (-1, 1302514674),
        (0, 790015084),
        (1, 290630308),
        (2, 39332535),
        (3, 720401),
        (4, 242),
    ];
    for &(exponent, multiplier) in BARREL.iter() {
        if int_bits > exponent {
            let shift = frac_bits + exponent;
            if remainder & (1i32 << shift) != 0 {
                result = srdhm(result, multiplier);
            }
        }
    }
    if int_bits > 5 {
        let clamp_b = 36 - int_bits;
        let clamp = -(1i32 << clamp_b);
        if a < clamp {
            result = 0;
        }
    }
    if a == 0 {
        result = ONE_Q0;
    }
    result
}

/// gemmlowp `one_over_one_plus_x_for_x_in_0_1` (Q0.31 in and out).
pub fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    let half_denominator = rounding_half_sum(a, ONE_Q0);
    let c48_17: i32 = 1515870810; // Q2.29
    let cn32_17: i32 = -1010580540;
    let one_q2: i32 = 1 << 29;
    let mut x = c48_17.wrapping_add(srdhm(half_denominator, cn32_17));
    for _ in 0..3 {
        let hdx = srdhm(half_denominator, x);
        let one_minus = one_q2.wrapping_sub(hdx);
        x = x.wrapping_add(rescale(srdhm(x, one_minus), 4, 2));
    }
    // ExactMulByPot<-1> then Rescale<0> from 1 integer bit.
    rescale(x, 1, 0)
}

/// gemmlowp `one_minus_x_over_one_plus_x_for_x_in_0_1` (Q0.31 in and out).
pub fn one_minus_x_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    let half_denominator = rounding_half_sum(a, ONE_Q0);
    let c48_17: i32 = 1515870810;
    let cn32_17: i32 = -1010580540;
    let one_q2: i32 = 1 << 29;
    let mut x = c48_17.wrapping_add(srdhm(half_denominator, cn32_17));
    for _ in 0..3 {
        let hdx = srdhm(half_denominator, x);
        let one_minus = one_q2.wrapping_sub(hdx);
        x = x.wrapping_add(rescale(srdhm(x, one_minus), 4, 2));
    }
    rescale(x.wrapping_sub(one_q2), 2, 0)
}

/// gemmlowp `logistic` on a fixed-point input with `int_bits` integer bits; Q0.31 out.
pub fn logistic(a: i32, int_bits: i32) -> i32 {
    if a == 0 {
        return 1 << 30;
    }
    let abs = if a > 0 { a } else { a.wrapping_neg() };
    let pos = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(abs.wrapping_neg(), int_bits));
    if a > 0 {
        pos
    } else {
        ONE_Q0.wrapping_sub(pos)
    }
}

/// gemmlowp `tanh` on a fixed-point input with `int_bits` integer bits; Q0.31 out.
pub fn tanh(a: i32, int_bits: i32) -> i32 {
    if a == 0 {
        return 0;
    }
    let neg = a < 0;
    let n = if neg { a } else { a.wrapping_neg() };
    // neg_tanh_on_negative_values: ExactMulByPot<1> keeps the raw value, one more integer bit.
    let t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, int_bits + 1));
    if neg {
        t.wrapping_neg()
    } else {
        t
    }
}

/// TFLite `GetReciprocal`: returns the Q0.31 reciprocal of `x` (with `x_integer_digits`
/// integer bits) and the number of bits over unit.
#[inline]
pub fn get_reciprocal(x: i32, x_integer_digits: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros() as i32;
    let num_bits_over_unit = x_integer_digits - headroom_plus_one;
    let shifted_sum_minus_one =
        ((x as u32).wrapping_shl(headroom_plus_one as u32)).wrapping_sub(1u32 << 31) as i32;
    (one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit)
}

/// The normalisation step of TFLite's int8 softmax: given the sum of exponentials
/// (Q12.19, positive) returns `(shifted_scale, exponent)` for [`softmax_out`].
///
/// Equal to `get_reciprocal(sum_of_exps, 12)` (gemmlowp's Newton-Raphson reciprocal) for
/// every positive sum, in fewer instructions because its domain is known (the sum of a
/// softmax row is at least 2^19: the row's maximum contributes exp(0)):
/// - with `norm = sum << clz(sum)` in `[2^31, 2^32)`, the half denominator
///   `rounding_half_sum(norm - 2^31, i32::MAX)` is `norm / 2`;
/// - every doubling high multiply has an operand in `(0, 2^31)`, so none saturates;
/// - the Newton correction `x * (1 - hd * x)` stays far below the `Rescale<2>` limit (the
///   linear start `48/17 - 32/17 hd` is within 1/17 of `1/hd`), so it is a plain shift;
/// - `x` is positive, so the final doubling saturates only upward.
///
/// `softmax_scale_is_get_reciprocal` checks the equality.
#[inline]
pub fn softmax_scale(sum_of_exps: i32) -> (i32, i32) {
    let headroom = (sum_of_exps as u32).leading_zeros();
    let half_denominator = ((sum_of_exps as u32).wrapping_shl(headroom) >> 1) as i32;
    let mul = |a: i32, b: i32| ((a as i64 * b as i64 + (1 << 30)) >> 31) as i32;
    let mut x = 1515870810i32.wrapping_add(mul(half_denominator, -1010580540)); // 48/17 - 32/17 hd, Q2.29
    for _ in 0..3 {
        let one_minus = (1i32 << 29).wrapping_sub(mul(half_denominator, x));
        x = x.wrapping_add(mul(x, one_minus).wrapping_shl(2));
    }
    let scale = if x >= 1 << 30 { i32::MAX } else { x << 1 };
    (scale, 12 - headroom as i32 + 31 - 8)
}

/// One int8 softmax output from its exponential (Q0.31), `(scale, exponent)` from
/// [`softmax_scale`].
#[inline]
pub fn softmax_out(exp_q0: i32, scale: i32, exponent: i32) -> i8 {
    let unsat = rdivpot(srdhm(scale, exp_q0), exponent);
    clamp(unsat - 128, -128, 127) as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `requant` (no saturation test in its product) equals `mbqm`, the zero point and the
    /// clamp for every multiplier `QuantizeMultiplier` gives (0 or in `[2^30, 2^31)`),
    /// shifts of either sign, accumulators over the whole int32 range, `i32::MIN` included.
    #[test]
    fn requant_is_mbqm_for_quantized_multipliers() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for i in 0..200_000 {
            let m = if i % 97 == 0 { 0 } else if i % 89 == 0 { i32::MAX } else if i % 83 == 0 { 1 << 30 } else { (1 << 30) + (next() % (1 << 30)) as i32 };
            let shift = (next() % 40) as i32 - 31;
            let acc = match i % 7 {
                0 => i32::MIN,
                1 => i32::MAX,
                2 => (next() % 2001) as i32 - 1000,
                _ => next() as i32,
            };
            let zp = (next() % 256) as i32 - 128;
            let (lo, hi) = if i % 3 == 0 { (zp.max(-128), 127) } else { (-128, 127) };
            assert_eq!(requant(acc, m, shift, zp, lo, hi), clamp(mbqm(acc, m, shift).wrapping_add(zp), lo, hi) as i8, "acc {acc} m {m} shift {shift}");
        }
    }

    /// The specialised `softmax_scale` against the general `get_reciprocal` on every
    /// normalised sum's neighbourhood of powers of two and a stride over the whole positive
    /// range (`softmax_scale_exhaustive`, ignored by default, checks all 2^31 - 1 sums).
    #[test]
    fn softmax_scale_is_get_reciprocal() {
        let check = |s: i32| {
            let (r, bits) = get_reciprocal(s, 12);
            assert_eq!(softmax_scale(s), (r, bits + 31 - 8), "sum {s}");
        };
        for k in 0..31 {
            for d in -3i64..=3 {
                let s = (1i64 << k) + d;
                if s >= 1 && s <= i32::MAX as i64 {
                    check(s as i32);
                }
            }
        }
        let mut s = 1i64;
        while s <= i32::MAX as i64 {
            check(s as i32);
            s += 7919;
        }
    }

    #[test]
    #[ignore]
    fn softmax_scale_exhaustive() {
        for s in 1..=i32::MAX {
            let (r, bits) = get_reciprocal(s, 12);
            assert_eq!(softmax_scale(s), (r, bits + 31 - 8), "sum {s}");
        }
    }

    #[test]
    fn rdivpot_rounds_half_away_from_zero() {
        assert_eq!(rdivpot(5, 1), 3);
        assert_eq!(rdivpot(-5, 1), -3);
        assert_eq!(rdivpot(4, 1), 2);
        assert_eq!(rdivpot(-4, 1), -2);
        assert_eq!(rdivpot(7, 2), 2);
        assert_eq!(rdivpot(-6, 2), -2);
        assert_eq!(rdivpot(i32::MIN, 31), -1);
    }

    #[test]
    fn srdhm_saturates_only_min_times_min() {
        assert_eq!(srdhm(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(srdhm(1 << 30, 1 << 30), 1 << 29);
        assert_eq!(srdhm(-(1 << 30), 1 << 30), -(1 << 29));
        assert_eq!(srdhm(3, 1 << 30), 2); // 1.5 rounds away from zero
        assert_eq!(srdhm(-3, 1 << 30), -1); // gemmlowp nudges negatives by 1 - 2^30
    }

    /// gemmlowp's own formulation, kept to check [`srdhm`] against.
    fn srdhm_gemmlowp(a: i32, b: i32) -> i32 {
        if a == i32::MIN && b == i32::MIN {
            return i32::MAX;
        }
        let ab = a as i64 * b as i64;
        let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
        ((ab + nudge) / (1i64 << 31)) as i32
    }

    #[test]
    fn rounding_half_sum_is_gemmlowps() {
        let reference = |a: i32, b: i32| {
            let sum = a as i64 + b as i64;
            let sign: i64 = if sum >= 0 { 1 } else { -1 };
            ((sum + sign) / 2) as i32
        };
        let edges = [i32::MIN, i32::MIN + 1, -3, -2, -1, 0, 1, 2, 3, i32::MAX - 1, i32::MAX];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(rounding_half_sum(a, b), reference(a, b), "{a} + {b}");
            }
        }
        let mut next = crate::mac::tests::rng(0x2545_F491_4F6C_DD1Du64);
        for _ in 0..100_000 {
            let s = next();
            let (a, b) = (s as i32, (s >> 32) as i32);
            assert_eq!(rounding_half_sum(a, b), reference(a, b), "{a} + {b}");
        }
    }

    #[test]
    fn srdhm_is_gemmlowps() {
        let edges = [
            i32::MIN, i32::MIN + 1, -(1 << 30) - 1, -(1 << 30), -(1 << 30) + 1, -3, -2, -1, 0, 1, 2,
            3, (1 << 30) - 1, 1 << 30, (1 << 30) + 1, i32::MAX - 1, i32::MAX,
        ];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(srdhm(a, b), srdhm_gemmlowp(a, b), "{a} * {b}");
            }
        }
        // Random pairs, and pairs whose product lies on a rounding boundary (ab = k * 2^30).
        let mut next = crate::mac::tests::rng(0x9E37_79B9_7F4A_7C15u64);
        for _ in 0..1_000_000 {
            let s = next();
            let (a, b) = (s as i32, (s >> 32) as i32);
            assert_eq!(srdhm(a, b), srdhm_gemmlowp(a, b), "{a} * {b}");
            // p * q = ±(b >> 15) * 2^30: every odd multiple is a tie.
            let (p, q) = (if a < 0 { -(1 << 15) } else { 1 << 15 }, (b >> 15) << 15);
            assert_eq!(srdhm(p, q), srdhm_gemmlowp(p, q), "{p} * {q}");
        }
    }

    #[test]
    fn exp_matches_float_closely() {
        for i in 0..200 {
            let x = -(i as f64) / 10.0; // Q5.26
            let raw = (x * (1u64 << 26) as f64) as i32;
            let e = exp_on_negative_values(raw, 5) as f64 / 2147483648.0;
            assert!((e - x.exp()).abs() < 1e-6, "{x}: {e}");
        }
    }

    #[test]
    fn logistic_and_tanh_match_float_closely() {
        for i in -100..100 {
            let x = i as f64 / 10.0;
            let raw = (x * (1u64 << 27) as f64) as i32; // Q4.27
            let l = logistic(raw, 4) as f64 / 2147483648.0;
            assert!((l - 1.0 / (1.0 + (-x).exp())).abs() < 1e-6, "logistic {x}: {l}");
            let t = tanh(raw, 4) as f64 / 2147483648.0;
            assert!((t - x.tanh()).abs() < 1e-6, "tanh {x}: {t}");
        }
    }

    #[test]
    fn reciprocal_is_close() {
        for s in [1.0f64, 1.5, 2.0, 3.7, 100.0, 4000.0] {
            let raw = (s * (1u64 << 19) as f64) as i32;
            let (r, bits) = get_reciprocal(raw, 12);
            let v = r as f64 / 2147483648.0 / (1u64 << bits) as f64;
            assert!((v - 1.0 / s).abs() < 1e-6 / s, "{s}: {v}");
        }
    }
}
