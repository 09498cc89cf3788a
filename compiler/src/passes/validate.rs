//! Semantic validation before anything is rewritten: quantization parameters present and
//! sane on every quantized tensor an operator touches, zero points inside their type's
//! range, operand types the operators accept, and a graph without cycles.

use super::Pass;
use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Op};

pub struct Validate;

fn zp_range(d: DType) -> Option<(i64, i64)> {
    match d {
        DType::I8 => Some((-128, 127)),
        DType::U8 => Some((0, 255)),
        DType::I16 => Some((-32768, 32767)),
        DType::I32 => Some((i32::MIN as i64, i32::MAX as i64)),
        _ => None,
    }
}

impl Pass for Validate {
    fn name(&self) -> &'static str {
        "validate"
    }
    fn run(&self, g: &mut Graph) -> Result<()> {
        g.topo_order()?;
        for n in g.nodes.node_indices() {
            let node = &g.nodes[n];
            let at = |e: Error| e.with_op(node.index, node.op.name());
            let operands = node.inputs.iter().flatten().chain(node.outputs.iter());
            for &t in operands {
                let tt = g.t(t);
                let te = |e: Error| at(e).with_tensor(tt.index, &tt.name);
                // Activations of quantized operators need quantization parameters.
                let quantized_activation = matches!(tt.dtype, DType::I8 | DType::I16) && !tt.is_const();
                let needs_quant = quantized_activation
                    && !matches!(node.op, Op::View { .. } | Op::ArgMax | Op::ArgMin | Op::Pack { .. } | Op::Unpack { .. } | Op::Split { .. } | Op::SplitV { .. } | Op::Transpose | Op::StridedSlice { .. } | Op::Pad | Op::ResizeNearestNeighbor { .. });
                match &tt.quant {
                    None if needs_quant => {
                        return Err(te(Error::invalid(format!("{} activation tensor has no quantization parameters", tt.dtype)))
                            .with_hint("re-convert the model with full-integer quantization (a representative dataset)"));
                    }
                    Some(q) => {
                        if let Some(s) = q.scale.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
                            if needs_quant || (tt.is_const() && tt.dtype == DType::I8) {
                                return Err(te(Error::invalid(format!("quantization scale {s} is not a positive finite number"))));
                            }
                        }
                        if let Some((lo, hi)) = zp_range(tt.dtype) {
                            if let Some(z) = q.zero_point.iter().find(|z| **z < lo || **z > hi) {
                                return Err(te(Error::invalid(format!("zero point {z} is outside the {} range [{lo}, {hi}]", tt.dtype))));
                            }
                        }
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }
}
