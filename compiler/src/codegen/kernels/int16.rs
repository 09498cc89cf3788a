//! Shared pieces of the int16-activation kernels ("16x8": int16 activations, int8 weights,
//! int64 or int32 bias), following TFLM's reference kernels:
//!
//! * with an int64 bias (what the converter emits) the accumulator is int64 and requantization
//!   uses the 64-bit `MultiplyByQuantizedMultiplier`: the multiplier is reduced to 16 bits,
//!   `(acc * reduced + round) >> (15 - shift)`, a single rounding;
//! * with an int32 bias (or none, for CONV_2D and FULLY_CONNECTED) the accumulator is int32
//!   and requantization is the usual 32-bit double-rounding `MultiplyByQuantizedMultiplier`.
//!
//! int16 activations are symmetric: TFLM requires zero points of 0 for CONV_2D,
//! DEPTHWISE_CONV_2D, FULLY_CONNECTED and SOFTMAX.

use super::super::{lit, KernelCtx};
use super::quantize_multiplier;
use crate::error::Result;
use crate::ir::{DType, Quant, Tensor};
use proc_macro2::TokenStream;
use quote::quote;

/// The int16 operators, as (name, data types), for the supported-operators list.
pub const SUPPORTED: &[(&str, &str)] = &[
    ("CONV_2D / DEPTHWISE_CONV_2D (int16)", "int16 activations with int8 weights (16x8), int64 (or int32 for CONV_2D) bias"),
    ("FULLY_CONNECTED (int16)", "int16 activations with int8 weights (16x8), int64 or int32 bias"),
    ("ADD (int16)", "int16 (with broadcasting)"),
    ("AVERAGE_POOL_2D / MAX_POOL_2D (int16)", "int16"),
    ("SOFTMAX (int16)", "int16 -> int16"),
    ("QUANTIZE / DEQUANTIZE (int16)", "float32 -> int16, int16 <-> int8, int16 -> int16, int16 -> float32"),
];

/// Whether the operator works on int16 activations (its first input or first output is int16).
pub fn is_int16(ctx: &KernelCtx) -> bool {
    let t16 = |t: Result<&Tensor>| t.map(|t| t.dtype == DType::I16).unwrap_or(false);
    t16(ctx.tensor(0)) || t16(ctx.out(0))
}

/// The per-tensor quantization of an int16 activation tensor.
pub fn act_quant<'a>(ctx: &KernelCtx, t: &'a Tensor, what: &str) -> Result<&'a Quant> {
    let q = t.q().ok_or_else(|| ctx.err(format!("int16 {what} (tensor {}) has no quantization", t.index)))?;
    if q.scale.is_empty() || !(q.scale() > 0.0 && q.scale().is_finite()) {
        return Err(ctx.err(format!("int16 {what} (tensor {}) has no valid quantization scale", t.index)));
    }
    if q.per_channel() {
        return Err(ctx.unsupported(format!("int16 {what} (tensor {}) quantized per channel; activations must be per tensor", t.index)));
    }
    Ok(q)
}

/// Like [`act_quant`], and the zero point must be 0 (as TFLM requires for the int16 paths of
/// CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and SOFTMAX).
pub fn sym_quant<'a>(ctx: &KernelCtx, t: &'a Tensor, what: &str) -> Result<&'a Quant> {
    let q = act_quant(ctx, t, what)?;
    if q.zero_point.iter().any(|&z| z != 0) {
        return Err(ctx.unsupported(format!(
            "int16 {what} (tensor {}) with zero point {}; TFLM's int16 {} requires zero point 0",
            t.index,
            q.zp(),
            ctx.node.op.name()
        )));
    }
    Ok(q)
}

/// The bias of an int16 kernel, which fixes the accumulator width.
pub enum Bias16 {
    /// int64 bias: int64 accumulator, 64-bit requantization.
    I64(Vec<i64>),
    /// int32 bias or no bias: int32 accumulator, 32-bit double-rounding requantization.
    I32(Vec<i32>),
}

impl Bias16 {
    pub fn wide(&self) -> bool {
        matches!(self, Bias16::I64(_))
    }
}

/// Reads the constant bias (operand 2) of an int16 kernel with `cout` outputs. `none_wide`
/// chooses the accumulator when there is no bias (TFLM: int32 for CONV_2D and
/// FULLY_CONNECTED, int64 for DEPTHWISE_CONV_2D); `allow_i32` whether an int32 bias is
/// accepted.
pub fn bias16(ctx: &KernelCtx, cout: usize, none_wide: bool, allow_i32: bool) -> Result<Bias16> {
    let Some(b) = ctx.node.input(2) else {
        return Ok(if none_wide { Bias16::I64(vec![0; cout]) } else { Bias16::I32(vec![0; cout]) });
    };
    let b = ctx.g.t(b);
    let Some(d) = b.data.as_ref() else {
        return Err(ctx.unsupported("non-constant bias; convert the model with constant weights"));
    };
    if b.elems() != cout || d.len() < b.bytes() {
        return Err(ctx.err(format!("bias must be a constant with {cout} elements, got shape {:?}", b.shape)));
    }
    match b.dtype {
        DType::I64 => Ok(Bias16::I64(
            d.chunks_exact(8).take(cout).map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect(),
        )),
        DType::I32 if allow_i32 => Ok(Bias16::I32(d.chunks_exact(4).take(cout).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())),
        other => Err(ctx.unsupported(format!(
            "int16 {} with {other} bias; supported: {}",
            ctx.node.op.name(),
            if allow_i32 { "int64 or int32" } else { "int64" }
        ))),
    }
}

/// Per-channel multipliers `input_scale * weight_scale[c] / output_scale` after checking the
/// int8 weights' quantization (symmetric; per tensor or per channel along `axis`).
pub fn weight_mults(ctx: &KernelCtx, xq: &Quant, w: &Tensor, yq: &Quant, cout: usize, axis: usize) -> Result<Vec<(i32, i32)>> {
    let wq = w.q().ok_or_else(|| ctx.err("int8 weights have no quantization"))?;
    if wq.scale.is_empty() {
        return Err(ctx.err("int8 weights have no quantization scale"));
    }
    if wq.zero_point.iter().any(|&z| z != 0) {
        return Err(ctx.unsupported("int8 weights with a non-zero zero point (TFLM requires symmetric weights)"));
    }
    if wq.per_channel() && (wq.scale.len() != cout || wq.axis != axis) {
        return Err(ctx.err(format!(
            "per-channel weights have {} scales along dimension {}; expected {cout} along dimension {axis}",
            wq.scale.len(),
            wq.axis
        )));
    }
    Ok((0..cout)
        .map(|o| {
            let ws = if wq.per_channel() { wq.scale[o] } else { wq.scale() };
            quantize_multiplier(xq.scale() as f64 * ws as f64 / yq.scale() as f64)
        })
        .collect())
}

/// 64-bit requantization constants (TFLite `MultiplyByQuantizedMultiplier(int64_t, ..)`):
/// per channel, the multiplier reduced to 16 bits and the total right shift `15 - shift`.
/// Returns the declarations and the expression applying them to `acc` (i64) for channel
/// `oc`. Errors when a shift is outside the function's domain (`-31..8`).
pub fn requant64(ctx: &KernelCtx, mults: &[(i32, i32)]) -> Result<(TokenStream, TokenStream)> {
    let mut red = Vec::with_capacity(mults.len());
    let mut ts = Vec::with_capacity(mults.len());
    for &(m, s) in mults {
        if !(-31..8).contains(&s) {
            return Err(ctx.unsupported(format!(
                "requantization multiplier 2^{s} out of the range TFLM's 64-bit requantization supports (shift -31..7)"
            )));
        }
        red.push(if m < 0x7FFF_0000 { (m + (1 << 15)) >> 16 } else { 0x7FFF });
        ts.push((15 - s) as usize);
    }
    let uniform = mults.iter().all(|m| *m == mults[0]);
    if uniform {
        let (r, t) = (lit::i32(red[0]), lit::usize(ts[0]));
        Ok((
            quote! {
                /// Multiplier reduced to 16 bits and total right shift (64-bit requantization).
                const RMULT: i64 = #r;
                const TSHIFT: u32 = #t;
            },
            quote!(((acc * RMULT + (1i64 << (TSHIFT - 1))) >> TSHIFT) as i32),
        ))
    } else {
        let n = lit::usize(mults.len());
        let r = lit::i32s(&red);
        let t = ts.iter().map(|&v| lit::usize(v));
        Ok((
            quote! {
                /// Multipliers reduced to 16 bits and total right shifts (64-bit requantization).
                const RMULT: [i32; #n] = #r;
                const TSHIFT: [u8; #n] = [#(#t),*];
            },
            quote!({
                let ts = TSHIFT[oc] as u32;
                ((acc * RMULT[oc] as i64 + (1i64 << (ts - 1))) >> ts) as i32
            }),
        ))
    }
}

/// Bytes of the 64-bit requantization constants.
pub fn requant64_bytes(mults: &[(i32, i32)]) -> usize {
    if mults.iter().all(|m| *m == mults[0]) {
        0
    } else {
        5 * mults.len()
    }
}

/// The int16 activation range of an output (`CalculateActivationRangeQuantized`).
pub fn act_range(act: crate::ir::Act, yq: &Quant) -> (i32, i32) {
    act.range_q(yq.scale(), yq.zp(), -32768, 32767)
}

/// Little-endian bytes of i64 values.
pub fn i64_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    /// TFLite's 64-bit `MultiplyByQuantizedMultiplier`, written as in the reference.
    fn mbqm64(x: i64, m: i32, shift: i32) -> i32 {
        let reduced: i32 = if m < 0x7FFF_0000 { (m + (1 << 15)) >> 16 } else { 0x7FFF };
        let total = 15 - shift as i64;
        let round = 1i64 << (total - 1);
        ((x * reduced as i64 + round) >> total) as i32
    }

    #[test]
    fn mbqm64_rounds_half_up() {
        // multiplier 0.5: 3 * 0.5 = 1.5 -> 2, -3 * 0.5 = -1.5 -> -1 (round half up)
        assert_eq!(mbqm64(3, 1 << 30, 0), 2);
        assert_eq!(mbqm64(-3, 1 << 30, 0), -1);
        assert_eq!(mbqm64(1 << 40, 1 << 30, -20), 1 << 19);
    }
}
