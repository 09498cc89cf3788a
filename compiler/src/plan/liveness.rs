//! Liveness: which tensors share storage (views), where model inputs and outputs live, and
//! the interval of schedule steps during which every arena buffer holds live data.

use super::{Buffer, Loc};
use crate::error::{Error, Result};
use crate::ir::{Graph, TensorId};
use petgraph::stable_graph::NodeIndex;

pub struct Liveness {
    pub root: Vec<TensorId>,
    /// Locations fixed before placement (inputs, outputs, constants).
    pub loc: Vec<Option<Loc>>,
    /// Arena buffers with intervals, offsets not yet assigned.
    pub buffers: Vec<Buffer>,
    pub copy_out: Vec<(TensorId, usize)>,
}

pub fn analyse(g: &Graph, schedule: &[NodeIndex]) -> Result<Liveness> {
    let nt = g.tensors.len();
    let mut root: Vec<TensorId> = (0..nt).collect();
    let mut def_step: Vec<Option<usize>> = vec![None; nt];
    // Views alias their input, in schedule order so chains resolve.
    for (s, &n) in schedule.iter().enumerate() {
        let node = &g.nodes[n];
        for &o in &node.outputs {
            if def_step[o].is_some() {
                return Err(Error::invalid("tensor is written by two operators").with_op(node.index, node.op.name()).with_tensor(g.t(o).index, &g.t(o).name));
            }
            def_step[o] = Some(s);
        }
        if node.op.is_view() {
            if let (Some(i), Some(&o)) = (node.input(0), node.outputs.first()) {
                root[o] = root[i];
            }
        }
    }
    let mut loc: Vec<Option<Loc>> = vec![None; nt];
    for (t, tensor) in g.tensors.iter().enumerate() {
        if tensor.is_const() {
            loc[t] = Some(Loc::Const);
        }
    }
    for (k, &t) in g.inputs.iter().enumerate() {
        loc[t] = Some(Loc::Input { k });
    }
    // Every tensor read must have been written (or be an input / constant) before.
    for (s, &n) in schedule.iter().enumerate() {
        let node = &g.nodes[n];
        for &i in node.inputs.iter().flatten() {
            let ok = g.t(i).is_const() || g.inputs.contains(&i) || def_step[i].is_some_and(|d| d < s);
            if !ok {
                return Err(Error::invalid("operator reads a tensor that no earlier operator writes and that is not a model input or constant")
                    .with_op(node.index, node.op.name())
                    .with_tensor(g.t(i).index, &g.t(i).name));
            }
        }
    }
    // Model outputs: the producing kernel writes straight into the caller's buffer when it
    // can; otherwise the output is copied at the end.
    let mut copy_out = Vec::new();
    let mut root_claimed: Vec<bool> = vec![false; nt];
    for (k, &t) in g.outputs.iter().enumerate() {
        let r = root[t];
        let producible = def_step[r].is_some() && !g.inputs.contains(&r) && !g.t(r).is_const();
        if producible && !root_claimed[r] {
            root_claimed[r] = true;
            loc[r] = Some(Loc::Output { k });
        } else {
            if !producible && !g.inputs.contains(&r) && !g.t(r).is_const() {
                return Err(Error::invalid(format!("model output {k} is never written")).with_tensor(g.t(t).index, &g.t(t).name));
            }
            copy_out.push((t, k));
        }
    }
    // Propagate root locations to aliases.
    for t in 0..nt {
        if root[t] != t && loc[t].is_none() {
            loc[t] = loc[root[t]];
        }
    }
    // Arena buffers: every other root written by an operator.
    let end = schedule.len();
    let mut buffers = Vec::new();
    let mut last_use: Vec<usize> = vec![0; nt];
    for (s, &n) in schedule.iter().enumerate() {
        for &i in g.nodes[n].inputs.iter().flatten() {
            let r = root[i];
            last_use[r] = last_use[r].max(s);
        }
    }
    for &(t, _) in &copy_out {
        last_use[root[t]] = end;
    }
    for r in 0..nt {
        if root[r] != r || loc[r].is_some() {
            continue;
        }
        let Some(first) = def_step[r] else { continue };
        let bytes = g.t(r).bytes();
        buffers.push(Buffer { root: r, bytes, first, last: last_use[r].max(first), offset: 0 });
    }
    Ok(Liveness { root, loc, buffers, copy_out })
}
