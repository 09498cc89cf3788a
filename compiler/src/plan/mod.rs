//! Memory planning: schedule, liveness, arena placement, and an independent checker.
//!
//! 1. [`schedule`] searches the execution orders for the least peak of live bytes;
//! 2. [`liveness`] gives every arena buffer its interval of steps;
//! 3. [`access`] tells, per operator, how far its output may overlap an input that dies
//!    there (in place for element-wise operators, trailing the input for windows);
//! 4. [`arena`] places the buffers with several strategies and keeps the smallest arena;
//! 5. [`check`] re-simulates the plan byte by byte, independently, and must approve it.

use crate::error::Result;
use crate::ir::{Graph, TensorId};
use petgraph::stable_graph::NodeIndex;
use serde::Serialize;

pub mod access;
pub mod arena;
pub mod check;
pub mod liveness;
pub mod lower_bound;
pub mod schedule;
pub mod svg;

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

/// An operator whose output shares arena bytes with one of its inputs.
#[derive(Debug, Clone, Serialize)]
pub struct Overlap {
    pub step: usize,
    /// The input (root tensor) written over; it dies at this step.
    pub input: TensorId,
    pub output: TensorId,
    /// `offset(output) - offset(input)`.
    pub shift: isize,
    /// Bytes shared.
    pub bytes: usize,
    /// The kernel runs its output positions backwards.
    pub reverse: bool,
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
    /// The least peak of live bytes over all schedules, overlaps allowed by the kernels'
    /// access orders deducted: no plan under these rules has a smaller arena.
    pub lower_bound: usize,
    /// `lower_bound` comes from an exhaustive search over schedules (else it is the weaker
    /// bound "every operator's operands at once").
    pub lower_bound_exact: bool,
    /// The same bound for the schedule used, and per step.
    pub schedule_peak: usize,
    pub step_bytes: Vec<usize>,
    /// Operators writing over a dying input.
    pub overlaps: Vec<Overlap>,
    /// The placement strategy that won.
    pub strategy: String,
    /// The arena of the classic planner (model order, greedy by size, no overlap).
    pub greedy_arena_bytes: usize,
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
    /// Whether the kernel at `step` runs backwards (output positions in decreasing order).
    pub fn reverse_at(&self, step: usize) -> bool {
        self.overlaps.iter().any(|o| o.step == step && o.reverse)
    }
    /// The overlaps at a step.
    pub fn overlaps_at(&self, step: usize) -> impl Iterator<Item = &Overlap> {
        self.overlaps.iter().filter(move |o| o.step == step)
    }
}

/// The overlap relations of a schedule: at each operator, its output and every input
/// that dies there, when the operator's kernel is one whose access order is modelled.
pub fn relations(g: &Graph, schedule: &[NodeIndex], root: &[TensorId], buffers: &[Buffer], align: usize) -> Vec<arena::Rel> {
    let buf_of = |r: TensorId| buffers.iter().position(|b| b.root == r);
    let mut rels = Vec::new();
    for (s, &n) in schedule.iter().enumerate() {
        let node = &g.nodes[n];
        if node.op.is_view() || node.outputs.len() != 1 {
            continue;
        }
        let Some(y) = buf_of(node.outputs[0]) else { continue };
        if buffers[y].first != s {
            continue;
        }
        for &x in node.inputs.iter().flatten() {
            let Some(xb) = buf_of(root[x]) else { continue };
            if buffers[xb].last != s || rels.iter().any(|r: &arena::Rel| r.x == xb && r.y == y) {
                continue;
            }
            if let Some(lim) = schedule::limits_of(g, n, x, align) {
                rels.push(arena::Rel { x: xb, y, lim });
            }
        }
    }
    rels
}

/// Plans a graph that has been through the passes.
/// Most bytes all activation tensors of a model may take together (checked before planning,
/// so that neither the planner nor the byte-by-byte checker allocates without bound).
pub const MAX_ACTIVATION_BYTES: usize = 64 << 20;

pub fn plan(g: &Graph) -> Result<Plan> {
    let total: usize = g.tensors.iter().filter(|t| !t.is_const()).map(|t| t.bytes()).fold(0usize, |a, b| a.saturating_add(b));
    if total > MAX_ACTIVATION_BYTES {
        return Err(crate::error::Error::limit(format!(
            "the model's activation tensors take {total} bytes together; the limit is {MAX_ACTIVATION_BYTES} bytes"
        ))
        .with_hint("microcontroller models need far less; check the model's shapes"));
    }
    let align = 4;
    let topo = schedule::model_order(g)?;
    let base = liveness::analyse(g, &topo)?;
    let nt = g.tensors.len();
    let mut in_arena = vec![false; nt];
    for b in &base.buffers {
        in_arena[b.root] = true;
    }
    let mut forever = vec![false; nt];
    for &(t, _) in &base.copy_out {
        forever[base.root[t]] = true;
    }
    let problem = schedule::Problem::new(g, &topo, &base.root, &in_arena, &forever, align);
    let found = problem.search();
    let greedy_arena_bytes = arena::place_greedy_by_size(&base.buffers, align).1;

    let mut candidates = vec![topo.clone()];
    if found.order != topo {
        candidates.push(found.order.clone());
    }
    let mut best: Option<(Vec<NodeIndex>, liveness::Liveness, Vec<arena::Rel>, Vec<usize>, usize, String)> = None;
    for sched in candidates {
        let live = liveness::analyse(g, &sched)?;
        let rels = relations(g, &sched, &live.root, &live.buffers, align);
        let target = lower_bound::step_bytes(&live.buffers, &rels, sched.len(), align).into_iter().max().unwrap_or(0).div_ceil(align) * align;
        let first = arena::place_best(&live.buffers, &rels, align);
        let (offs, size, strategy) = arena::improve(&live.buffers, &rels, align, first, target);
        if best.as_ref().is_none_or(|b| size < b.4) {
            best = Some((sched, live, rels, offs, size, strategy));
        }
    }
    let (schedule, live, rels, offs, arena_bytes, strategy) = best.expect("one candidate schedule");
    let mut buffers = live.buffers.clone();
    for (b, &o) in buffers.iter_mut().zip(&offs) {
        b.offset = o;
    }
    let mut loc = live.loc.clone();
    for b in &buffers {
        for (t, r) in live.root.iter().enumerate() {
            if *r == b.root && loc[t].is_none() {
                loc[t] = Some(Loc::Arena { offset: b.offset });
            }
        }
    }
    // Which relations the placement used, and in which direction the kernel must run.
    let mut overlaps = Vec::new();
    for r in &rels {
        let (x, y) = (&buffers[r.x], &buffers[r.y]);
        let shift = y.offset as isize - x.offset as isize;
        let bytes = access::overlap_at(x.bytes, y.bytes, shift);
        if bytes == 0 {
            continue;
        }
        let reverse = if shift <= r.lim.fwd {
            false
        } else if r.lim.rev.is_some_and(|v| shift >= v) {
            true
        } else {
            return Err(crate::error::Error::invalid(format!("internal error: placement overlaps tensors {} and {} beyond the kernel's limits", x.root, y.root)));
        };
        overlaps.push(Overlap { step: y.first, input: x.root, output: y.root, shift, bytes, reverse });
    }
    let step_bytes = lower_bound::step_bytes(&buffers, &rels, schedule.len(), align);
    let schedule_peak = step_bytes.iter().copied().max().unwrap_or(0);
    let plan = Plan {
        schedule,
        root: live.root,
        loc,
        buffers,
        arena_bytes,
        copy_out: live.copy_out,
        lower_bound: found.bound.min(schedule_peak),
        lower_bound_exact: found.exact,
        schedule_peak,
        step_bytes,
        overlaps,
        strategy,
        greedy_arena_bytes,
        align,
    };
    check::check(g, &plan).map_err(|e| crate::error::Error::new(crate::error::ErrorKind::Invalid, format!("internal error: invalid memory plan: {e}")))?;
    Ok(plan)
}
