//! Memory planning: schedule, liveness, arena placement, and an independent checker.

use crate::error::Result;
use crate::ir::{Graph, TensorId};
use petgraph::stable_graph::NodeIndex;
use serde::Serialize;

pub mod arena;
pub mod check;
pub mod liveness;
pub mod lower_bound;
pub mod schedule;

/// Where a tensor's bytes live while the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Loc {
    /// The caller's input number `k` (read in place, never copied).
    Input { k: usize },
    /// The caller's output number `k` (the producing kernel writes there directly).
    Output { k: usize },
    /// The arena at a byte offset.
    Arena { offset: usize },
    /// Constant data in flash.
    Const,
}

/// One arena buffer: a root tensor and everything that aliases it.
#[derive(Debug, Clone, Serialize)]
pub struct Buffer {
    pub root: TensorId,
    pub bytes: usize,
    /// First schedule step that writes it.
    pub first: usize,
    /// Last schedule step that reads it (inclusive).
    pub last: usize,
    pub offset: usize,
}

/// A complete memory plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Execution order (every node, views included).
    pub schedule: Vec<NodeIndex>,
    /// For each tensor, the tensor whose storage it uses (itself unless it is a view).
    pub root: Vec<TensorId>,
    /// For each tensor, its location (`None` for tensors no operator touches).
    pub loc: Vec<Option<Loc>>,
    /// Arena buffers with their placement.
    pub buffers: Vec<Buffer>,
    pub arena_bytes: usize,
    /// Model outputs that must be copied at the end: (source tensor, output number).
    pub copy_out: Vec<(TensorId, usize)>,
    /// Peak of live bytes over the schedule (a lower bound for any placement of it).
    pub lower_bound: usize,
    /// Alignment of every arena offset, in bytes.
    pub align: usize,
}

impl Plan {
    /// Byte range of a tensor in the arena, if it lives there.
    pub fn arena_range(&self, g: &Graph, t: TensorId) -> Option<(usize, usize)> {
        match self.loc[t] {
            Some(Loc::Arena { offset }) => Some((offset, offset + g.t(t).bytes())),
            _ => None,
        }
    }
    /// Position of a node in the schedule.
    pub fn step_of(&self, n: NodeIndex) -> Option<usize> {
        self.schedule.iter().position(|&x| x == n)
    }
}

/// Plans a graph that has been through the passes.
pub fn plan(g: &Graph) -> Result<Plan> {
    let schedule = schedule::schedule(g)?;
    let live = liveness::analyse(g, &schedule)?;
    let align = 4;
    let (buffers, arena_bytes) = arena::place_greedy_by_size(&live.buffers, align);
    let mut loc = live.loc.clone();
    for b in &buffers {
        for (t, r) in live.root.iter().enumerate() {
            if *r == b.root && loc[t].is_none() {
                loc[t] = Some(Loc::Arena { offset: b.offset });
            }
        }
    }
    let lower_bound = lower_bound::peak_live_bytes(&buffers, schedule.len());
    let plan = Plan { schedule, root: live.root, loc, buffers, arena_bytes, copy_out: live.copy_out, lower_bound, align };
    if cfg!(debug_assertions) {
        check::check(&plan).map_err(|e| crate::error::Error::new(crate::error::ErrorKind::Invalid, format!("internal error: invalid memory plan: {e}")))?;
    }
    Ok(plan)
}
