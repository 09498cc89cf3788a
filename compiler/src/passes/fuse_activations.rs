//! Fuses a standalone RELU / RELU6 / RELU_N1_TO_1 into the operator that produces its input,
//! when that is exact: the producer has no activation yet, its output feeds only the
//! activation, and (for quantized tensors) the activation does not change the quantization.
//! In TFLM a standalone int8 RELU requantizes with multiplier input_scale/output_scale and
//! then clamps; with equal scales and zero points that is the identity followed by the
//! clamp that the fused activation applies, so the outputs are bit-identical.

use super::Pass;
use crate::error::Result;
use crate::ir::{Act, Graph, Op};

pub struct FuseActivations;

impl Pass for FuseActivations {
    fn name(&self) -> &'static str {
        "fuse-activations"
    }
    fn run(&self, g: &mut Graph) -> Result<()> {
        loop {
            g.rebuild_edges();
            let mut fused = false;
            let nodes: Vec<_> = g.nodes.node_indices().collect();
            for n in nodes {
                let act = match g.nodes[n].op {
                    Op::Relu => Act::Relu,
                    Op::Relu6 => Act::Relu6,
                    Op::ReluN1To1 => Act::ReluN1To1,
                    _ => continue,
                };
                let (Some(x), Some(&y)) = (g.nodes[n].input(0), g.nodes[n].outputs.first()) else { continue };
                let Some(p) = g.producer(x) else { continue };
                if g.nodes[p].op.act() != Some(Act::None) || g.outputs.contains(&x) || g.consumers(x).len() != 1 {
                    continue;
                }
                // Pools with a fused activation exist, but keep the fusion to ops whose
                // quantized kernels clamp after requantization.
                if !matches!(
                    g.nodes[p].op,
                    Op::FullyConnected { .. } | Op::Conv2d { .. } | Op::DepthwiseConv2d { .. } | Op::Add { .. } | Op::Sub { .. } | Op::Mul { .. }
                ) {
                    continue;
                }
                let (tx, ty) = (g.t(x), g.t(y));
                if tx.dtype != ty.dtype || tx.shape != ty.shape {
                    continue;
                }
                match (&tx.quant, &ty.quant) {
                    (None, None) => {}
                    (Some(a), Some(b)) if a.same_as(b) => {}
                    _ => continue,
                }
                g.nodes[p].op.set_act(act);
                for o in g.nodes[p].outputs.iter_mut() {
                    if *o == x {
                        *o = y;
                    }
                }
                g.nodes.remove_node(n);
                fused = true;
                break;
            }
            if !fused {
                return Ok(());
            }
        }
    }
}
