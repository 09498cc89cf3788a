//! Per-operator kernel emitters, one file per operator family. Each turns one IR node into
//! a kernel body with every shape, offset, multiplier and shift as a literal.

use super::{Kernel, KernelCtx};
use crate::error::Result;
use crate::ir::Op;

pub mod add;
pub mod add16;
pub mod compact;
pub mod conv;
pub mod conv16;
pub mod conv_grouped;
pub mod depthwise;
pub mod direct;
pub mod elementwise;
pub mod fc16;
pub mod ftile;
pub mod fully_connected;
pub mod gemm;
pub mod int16;
pub mod pool;
pub mod pool16;
pub mod quant;
pub mod quant16;
pub mod reduce_tile;
pub mod resize_bilinear;
pub mod shape;
pub mod softmax;
pub mod softmax16;
pub mod strategy;
pub mod transpose_conv;
pub mod unary;

/// The operators code can be generated for, as (name, data types).
pub const SUPPORTED: &[(&str, &str)] = &[
    ("FULLY_CONNECTED", "int8 (per-tensor or per-channel weights), float32, hybrid int8 weights with float32 activations"),
    ("CONV_2D", "int8 (per-tensor or per-channel weights), float32, hybrid int8 weights with float32 activations"),
    ("DEPTHWISE_CONV_2D", "int8 (per-tensor or per-channel weights), float32, hybrid int8 weights with float32 activations"),
    ("AVERAGE_POOL_2D / MAX_POOL_2D", "int8, float32"),
    ("SOFTMAX", "int8, float32"),
    ("RESHAPE / SQUEEZE / EXPAND_DIMS", "any (no code: views)"),
    ("QUANTIZE", "float32 -> int8, int8 -> int8"),
    ("DEQUANTIZE", "int8 -> float32 (constant float16/int8 folded at compile time)"),
    ("RELU / RELU6 / RELU_N1_TO_1", "int8, float32 (fused into the producer when exact)"),
    ("LOGISTIC / TANH", "int8, float32"),
    ("ADD", "int8, float32 (same shape)"),
];

/// TRANSPOSE_CONV (`transpose_conv.rs`).
const TRANSPOSE_CONV: &[(&str, &str)] = &[("TRANSPOSE_CONV", "int8 (per-tensor or per-channel weights), float32")];

/// Every supported operator: this table plus the ones declared by the data-movement
/// (`shape.rs`) and element-wise (`elementwise.rs`) emitters.
pub fn supported() -> Vec<(&'static str, &'static str)> {
    SUPPORTED.iter().chain(shape::SUPPORTED.iter()).chain(elementwise::SUPPORTED.iter()).chain(int16::SUPPORTED.iter()).chain(TRANSPOSE_CONV.iter()).chain(reduce_tile::SUPPORTED.iter()).chain(resize_bilinear::SUPPORTED.iter()).copied().collect()
}

pub fn supported_list() -> String {
    supported().iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    match &ctx.node.op {
        Op::FullyConnected { .. } if int16::is_int16(ctx) => fc16::emit(ctx),
        Op::Conv2d { .. } | Op::DepthwiseConv2d { .. } if int16::is_int16(ctx) => conv16::emit(ctx),
        Op::Add { .. } if int16::is_int16(ctx) => add16::emit(ctx),
        Op::Softmax { .. } if int16::is_int16(ctx) => softmax16::emit(ctx),
        Op::AveragePool2d { .. } | Op::MaxPool2d { .. } if int16::is_int16(ctx) => pool16::emit(ctx),
        Op::Quantize | Op::Dequantize if int16::is_int16(ctx) => quant16::emit(ctx),
        Op::Conv2d { .. } if conv_grouped::is_grouped(ctx) => conv_grouped::emit(ctx),
        Op::TransposeConv { .. } => transpose_conv::emit(ctx),
        Op::ResizeBilinear { .. } => resize_bilinear::emit(ctx),
        Op::ReduceMax { .. } | Op::Tile => reduce_tile::emit(ctx),
        Op::FullyConnected { .. } => fully_connected::emit(ctx),
        Op::Conv2d { .. } => conv::emit(ctx),
        Op::DepthwiseConv2d { .. } => depthwise::emit(ctx),
        Op::AveragePool2d { .. } | Op::MaxPool2d { .. } => pool::emit(ctx),
        Op::Softmax { .. } => softmax::emit(ctx),
        Op::Relu | Op::Relu6 | Op::ReluN1To1 | Op::Logistic | Op::Tanh => unary::emit(ctx),
        Op::Quantize | Op::Dequantize => quant::emit(ctx),
        Op::Add { .. } if add::handles(ctx) => add::emit(ctx),
        Op::Pad
        | Op::Concatenation { .. }
        | Op::StridedSlice { .. }
        | Op::Transpose
        | Op::ResizeNearestNeighbor { .. }
        | Op::Split { .. }
        | Op::SplitV { .. }
        | Op::Pack { .. }
        | Op::Unpack { .. } => shape::emit(ctx),
        Op::Add { .. }
        | Op::Sub { .. }
        | Op::Mul { .. }
        | Op::Minimum
        | Op::Maximum
        | Op::LeakyRelu { .. }
        | Op::HardSwish
        | Op::Prelu
        | Op::Mean { .. }
        | Op::ArgMax
        | Op::ArgMin
        | Op::LogSoftmax => elementwise::emit(ctx),
        other => Err(ctx.unsupported(format!(
            "operator {} is not supported yet; supported operators: {}",
            other.name(),
            supported_list()
        ))),
    }
}

/// Reads a constant tensor as i32 values.
pub fn const_i32(t: &crate::ir::Tensor) -> Option<Vec<i32>> {
    let d = t.data.as_ref()?;
    Some(d.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// Reads a constant tensor as f32 values.
pub fn const_f32(t: &crate::ir::Tensor) -> Option<Vec<f32>> {
    let d = t.data.as_ref()?;
    Some(d.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// TFLite `QuantizeMultiplier`: a real multiplier as (Q31 significand, shift), with the
/// carry case and the flush of tiny multipliers.
pub fn quantize_multiplier(m: f64) -> (i32, i32) {
    if m == 0.0 || !m.is_finite() {
        return (0, 0);
    }
    let (q, mut shift) = frexp(m);
    let mut q_fixed = (q * (1u64 << 31) as f64).round() as i64;
    if q_fixed == (1i64 << 31) {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        shift = 0;
        q_fixed = 0;
    }
    (q_fixed as i32, shift)
}

/// C `frexp`: `x = q * 2^e` with `0.5 <= |q| < 1`.
pub fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // subnormal: scale up first
        let (q, e) = frexp(x * (1u64 << 54) as f64);
        return (q, e - 54);
    }
    let e = exp - 1022;
    let q = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (q, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn frexp_matches_c() {
        assert_eq!(frexp(1.0), (0.5, 1));
        assert_eq!(frexp(0.75), (0.75, 0));
        assert_eq!(frexp(-3.0), (-0.75, 2));
        assert_eq!(frexp(1e-310).1, -1029);
    }
    #[test]
    fn quantize_multiplier_cases() {
        assert_eq!(quantize_multiplier(0.5), (1 << 30, 0));
        assert_eq!(quantize_multiplier(1.0), (1 << 30, 1));
        // rounds up to 2^31: carried into the shift
        let (q, s) = quantize_multiplier(0.999_999_999_9);
        assert_eq!((q, s), (1 << 30, 1));
        assert_eq!(quantize_multiplier(1e-12), (0, 0));
    }
}
