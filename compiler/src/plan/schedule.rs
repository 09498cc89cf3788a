//! Execution order. The live bytes at a step depend on the order in which a branching
//! graph's operators run (a residual block's skip tensor, a concatenation's inputs), so the
//! planner searches the topological orders for the one whose peak is least:
//!
//! * exactly, for graphs of up to 128 operators whose set of reachable "done" sets stays
//!   under a budget: dynamic programming over the sets of executed operators (the live
//!   buffers depend only on that set), minimising the peak, then the sum of the steps;
//! * otherwise greedily (the ready operator with the cheapest step), keeping the model's
//!   own order when that is better.
//!
//! The cost of a step is the bytes every valid placement must hold then: all live buffers,
//! less the bytes an output may share with inputs dying at that operator
//! ([`super::access`]). Its maximum over the schedule is the lower bound reported for it.

use super::access::{self, Limits};
use crate::ir::{Graph, TensorId};
use petgraph::stable_graph::NodeIndex;
use std::collections::BTreeMap;

/// Everything the order search needs, independent of any order.
pub struct Problem {
    /// Operators (views included), in the model's topological order.
    pub nodes: Vec<NodeIndex>,
    preds: Vec<Vec<usize>>,
    /// Arena bytes per root tensor (0 when not in the arena).
    bytes: Vec<usize>,
    /// Arena roots each operator produces.
    produces: Vec<Vec<TensorId>>,
    /// Operators reading each root (through any alias).
    consumers: Vec<Vec<usize>>,
    /// Producer of each arena root.
    producer: Vec<Option<usize>>,
    /// Roots that stay live to the end (outputs copied out).
    forever: Vec<bool>,
    /// Per operator: (input root, output root, most bytes they may share).
    rels: Vec<Vec<(TensorId, TensorId, usize)>>,
    align: usize,
}

/// What the order search found.
pub struct Found {
    pub order: Vec<NodeIndex>,
    /// Its peak step cost.
    pub peak: usize,
    /// The least peak over all orders (exact search), or a sound bound.
    pub bound: usize,
    pub exact: bool,
}

/// The overlap limits of operator `n` over its input `x` (`None` when its kernel's access
/// order is not modelled).
pub fn limits_of(g: &Graph, n: NodeIndex, x: TensorId, align: usize) -> Option<Limits> {
    let w = access::walk(g, &g.nodes[n], x)?;
    Some(access::limits(&w, align))
}

impl Problem {
    /// `root`, `arena` and `forever` come from liveness (which roots are arena buffers).
    pub fn new(g: &Graph, topo: &[NodeIndex], root: &[TensorId], arena: &[bool], forever: &[bool], align: usize) -> Problem {
        let nt = g.tensors.len();
        let mut bytes = vec![0usize; nt];
        for t in 0..nt {
            if arena[t] && root[t] == t {
                bytes[t] = g.t(t).bytes();
            }
        }
        let mut producer = vec![None; nt];
        let mut produces = vec![Vec::new(); topo.len()];
        let mut consumers = vec![Vec::new(); nt];
        let mut preds = vec![Vec::new(); topo.len()];
        let mut writer = vec![None; nt];
        for (i, &n) in topo.iter().enumerate() {
            for &o in &g.nodes[n].outputs {
                writer[o] = Some(i);
                if bytes[o] > 0 && !g.nodes[n].op.is_view() {
                    producer[o] = Some(i);
                    produces[i].push(o);
                }
            }
        }
        for (i, &n) in topo.iter().enumerate() {
            for &t in g.nodes[n].inputs.iter().flatten() {
                if let Some(w) = writer[t] {
                    if !preds[i].contains(&w) {
                        preds[i].push(w);
                    }
                }
                let r = root[t];
                if bytes[r] > 0 && !consumers[r].contains(&i) {
                    consumers[r].push(i);
                }
            }
        }
        let mut rels = vec![Vec::new(); topo.len()];
        for (i, &n) in topo.iter().enumerate() {
            let node = &g.nodes[n];
            if node.op.is_view() || node.outputs.len() != 1 || bytes[node.outputs[0]] == 0 {
                continue;
            }
            let y = node.outputs[0];
            let mut seen = Vec::new();
            for &x in node.inputs.iter().flatten() {
                let r = root[x];
                if bytes[r] == 0 || forever[r] || seen.contains(&r) {
                    continue;
                }
                seen.push(r);
                if let Some(lim) = limits_of(g, n, x, align) {
                    let ov = access::max_overlap(bytes[r], bytes[y], &lim, align);
                    if ov > 0 {
                        rels[i].push((r, y, ov));
                    }
                }
            }
        }
        Problem { nodes: topo.to_vec(), preds, bytes, produces, consumers, producer, forever: forever.to_vec(), rels, align }
    }

    fn live(&self, done: &dyn Fn(usize) -> bool) -> usize {
        let mut s = 0;
        for (r, &b) in self.bytes.iter().enumerate() {
            if b == 0 {
                continue;
            }
            if let Some(p) = self.producer[r] {
                if done(p) && (self.forever[r] || self.consumers[r].iter().any(|&c| !done(c))) {
                    s += self.al(b);
                }
            }
        }
        s
    }

    fn al(&self, b: usize) -> usize {
        b.div_ceil(self.align) * self.align
    }

    /// The cost of running operator `v` after the operators in `done` (`live` = their live
    /// bytes). Every buffer starts at an aligned offset, so it holds its size rounded up to
    /// the alignment; an output and the dying inputs it may overlap hold their union,
    /// rounded up.
    fn step(&self, live: usize, done: &dyn Fn(usize) -> bool, v: usize) -> usize {
        let out: usize = self.produces[v].iter().map(|&r| self.al(self.bytes[r])).sum();
        let (mut red, mut raw, mut aligned, mut y) = (0, 0, 0, None);
        for &(x, yr, ov) in &self.rels[v] {
            if self.consumers[x].iter().all(|&c| c == v || done(c)) {
                red += ov;
                raw += self.bytes[x];
                aligned += self.al(self.bytes[x]);
                y = Some(yr);
            }
        }
        match y {
            None => live + out,
            Some(y) => {
                let red = red.min(self.bytes[y]);
                live + out - aligned - self.al(self.bytes[y]) + self.al(raw + self.bytes[y] - red)
            }
        }
    }

    /// Peak step cost of an order (indices into `nodes`).
    pub fn peak_of(&self, order: &[usize]) -> usize {
        let mut done = vec![false; self.nodes.len()];
        let mut peak = 0;
        for &v in order {
            let live = self.live(&|i| done[i]);
            peak = peak.max(self.step(live, &|i| done[i], v));
            done[v] = true;
        }
        peak
    }

    /// A bound valid for every order: an operator's operands are all live at its step.
    fn local_bound(&self) -> usize {
        let mut best = 0;
        for v in 0..self.nodes.len() {
            let ins: usize = (0..self.bytes.len()).filter(|&r| self.bytes[r] > 0 && self.consumers[r].contains(&v)).map(|r| self.al(self.bytes[r])).sum();
            let out: usize = self.produces[v].iter().map(|&r| self.al(self.bytes[r])).sum();
            let red: usize = self.rels[v].iter().map(|r| r.2).sum();
            let raw: usize = self.rels[v].iter().map(|r| self.bytes[r.0]).sum();
            let aligned: usize = self.rels[v].iter().map(|r| self.al(self.bytes[r.0])).sum();
            let cost = match self.rels[v].first() {
                None => ins + out,
                Some(r) => {
                    let y = self.bytes[r.1];
                    ins + out - aligned - self.al(y) + self.al(raw + y - red.min(y))
                }
            };
            best = best.max(cost);
        }
        best
    }

    fn greedy(&self) -> Vec<usize> {
        let m = self.nodes.len();
        let mut done = vec![false; m];
        let mut order = Vec::with_capacity(m);
        for _ in 0..m {
            let live = self.live(&|i| done[i]);
            let mut best: Option<(usize, usize, usize)> = None; // (cost, live after, v)
            for v in 0..m {
                if done[v] || !self.preds[v].iter().all(|&p| done[p]) {
                    continue;
                }
                let c = self.step(live, &|i| done[i], v);
                done[v] = true;
                let after = self.live(&|i| done[i]);
                done[v] = false;
                if best.is_none_or(|(bc, ba, _)| (c, after) < (bc, ba)) {
                    best = Some((c, after, v));
                }
            }
            let (_, _, v) = best.expect("a ready operator");
            done[v] = true;
            order.push(v);
        }
        order
    }

    /// Exact search over orders (sets of done operators), within a budget of states.
    fn exact(&self, budget: usize) -> Option<(Vec<usize>, usize)> {
        let m = self.nodes.len();
        if m > 128 {
            return None;
        }
        let pred_mask: Vec<u128> = self.preds.iter().map(|ps| ps.iter().fold(0u128, |a, &p| a | (1u128 << p))).collect();
        // layer k: done set -> (peak, sum of costs, parent set, last operator)
        let mut layers: Vec<BTreeMap<u128, (usize, usize, u128, usize)>> = Vec::with_capacity(m + 1);
        let mut first = BTreeMap::new();
        first.insert(0u128, (0usize, 0usize, 0u128, usize::MAX));
        layers.push(first);
        let mut states = 1usize;
        for _ in 0..m {
            let mut next: BTreeMap<u128, (usize, usize, u128, usize)> = BTreeMap::new();
            for (&s, &(peak, sum, _, _)) in layers.last().unwrap() {
                let done = |i: usize| s >> i & 1 == 1;
                let live = self.live(&done);
                for v in 0..m {
                    if done(v) || pred_mask[v] & !s != 0 {
                        continue;
                    }
                    let c = self.step(live, &done, v);
                    let cand = (peak.max(c), sum + c);
                    let ns = s | (1u128 << v);
                    match next.get(&ns) {
                        Some(&(p, q, _, _)) if (p, q) <= cand => {}
                        _ => {
                            next.insert(ns, (cand.0, cand.1, s, v));
                        }
                    }
                }
            }
            states += next.len();
            if states > budget {
                return None;
            }
            layers.push(next);
        }
        let full = if m == 128 { u128::MAX } else { (1u128 << m) - 1 };
        let &(peak, _, _, _) = layers[m].get(&full)?;
        let mut order = Vec::with_capacity(m);
        let mut s = full;
        for k in (1..=m).rev() {
            let &(_, _, parent, v) = layers[k].get(&s)?;
            order.push(v);
            s = parent;
        }
        order.reverse();
        Some((order, peak))
    }

    /// The best order found and the bound.
    pub fn search(&self) -> Found {
        let model: Vec<usize> = (0..self.nodes.len()).collect();
        let model_peak = self.peak_of(&model);
        let to_nodes = |o: &[usize]| o.iter().map(|&i| self.nodes[i]).collect::<Vec<_>>();
        if let Some((order, peak)) = self.exact(200_000) {
            // Keep the model's order when it is as good (fewer surprises in the docs).
            if model_peak <= peak {
                return Found { order: to_nodes(&model), peak: model_peak, bound: peak, exact: true };
            }
            return Found { order: to_nodes(&order), peak, bound: peak, exact: true };
        }
        let greedy = self.greedy();
        let gp = self.peak_of(&greedy);
        let (order, peak) = if gp < model_peak { (greedy, gp) } else { (model, model_peak) };
        Found { order: to_nodes(&order), peak, bound: self.local_bound().min(peak), exact: false }
    }
}

/// The model's own order when topological, else a topological sort.
pub fn model_order(g: &Graph) -> crate::error::Result<Vec<NodeIndex>> {
    g.topo_order()
}
