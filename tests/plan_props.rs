//! Memory planner properties.
//!
//! * Random branching graphs of convolutions, depthwise convolutions, pools, element-wise
//!   operators, ADDs and fully connected layers: every plan passes the independent checker,
//!   is never larger than greedy-by-size without overlap, and never below its lower bound.
//! * Differential test of the overlap rules: for one operator between two arena tensors,
//!   every shift the planner's access model calls safe passes the checker's byte-by-byte
//!   simulation, and the first shift past the planner's limit fails it (the limits are
//!   tight).

use microgen::ir::{Act, DType, Graph, Node, Op, Padding, Tensor, TensorId, Window};
use microgen::plan::{self, access, check, Buffer, Loc, Overlap, Plan};
use proptest::prelude::*;

fn tensor(g: &mut Graph, dtype: DType, shape: Vec<usize>, data: bool) -> TensorId {
    let n: usize = shape.iter().product::<usize>() * dtype.size();
    let idx = g.tensors.len();
    g.tensors.push(Tensor {
        index: idx,
        name: format!("t{idx}"),
        dtype,
        shape,
        quant: None,
        data: data.then(|| vec![1u8; n]),
        is_variable: false,
    });
    idx
}

fn node(g: &mut Graph, op: Op, inputs: Vec<TensorId>, outputs: Vec<TensorId>) {
    let index = g.nodes.node_count();
    g.nodes.add_node(Node { index, op, inputs: inputs.into_iter().map(Some).collect(), outputs });
}

fn win(s: usize, d: usize, p: Padding) -> Window {
    Window { stride_h: s, stride_w: s, dilation_h: d, dilation_w: d, padding: p }
}

fn out_size(n: usize, k: usize, s: usize, d: usize, p: Padding) -> Option<usize> {
    let eff = (k - 1) * d + 1;
    match p {
        Padding::Same => Some(n.div_ceil(s)),
        Padding::Valid => (n >= eff).then(|| (n - eff) / s + 1),
    }
}

/// One window operator: (kind 0 conv / 1 depthwise / 2 avg pool / 3 max pool, kernel,
/// stride, dilation, padding, channel factor).
#[derive(Debug, Clone, Copy)]
struct WinOp {
    kind: u8,
    k: usize,
    s: usize,
    d: usize,
    same: bool,
    f: usize,
    /// With float32 activations: int8 weights (the hybrid kernels).
    hybrid: bool,
}

fn win_op() -> impl Strategy<Value = WinOp> {
    (0u8..4, 1usize..4, 1usize..3, 1usize..3, any::<bool>(), 1usize..3, any::<bool>())
        .prop_map(|(kind, k, s, d, same, f, hybrid)| WinOp { kind, k, s, d: if kind >= 2 { 1 } else { d }, same, f, hybrid })
}

/// Adds a window operator reading `x`; returns its output, or `None` when the shapes do
/// not allow it.
fn add_window(g: &mut Graph, x: TensorId, w: WinOp, dtype: DType) -> Option<TensorId> {
    let sh = g.t(x).shape.clone();
    let (nb, h, wd, c) = (sh[0], sh[1], sh[2], sh[3]);
    let p = if w.same { Padding::Same } else { Padding::Valid };
    let (oh, ow) = (out_size(h, w.k, w.s, w.d, p)?, out_size(wd, w.k, w.s, w.d, p)?);
    let fdt = if w.hybrid && dtype == DType::F32 { DType::I8 } else { dtype };
    match w.kind {
        0 => {
            let cout = (c * w.f).div_ceil(2).max(1) + w.f;
            let f = tensor(g, fdt, vec![cout, w.k, w.k, c], true);
            let y = tensor(g, dtype, vec![nb, oh, ow, cout], false);
            node(g, Op::Conv2d { win: win(w.s, w.d, p), act: Act::None }, vec![x, f], vec![y]);
            Some(y)
        }
        1 => {
            let cout = c * w.f;
            let f = tensor(g, fdt, vec![1, w.k, w.k, cout], true);
            let y = tensor(g, dtype, vec![nb, oh, ow, cout], false);
            node(g, Op::DepthwiseConv2d { win: win(w.s, w.d, p), depth_multiplier: w.f, act: Act::None }, vec![x, f], vec![y]);
            Some(y)
        }
        k => {
            let y = tensor(g, dtype, vec![nb, oh, ow, c], false);
            let op = if k == 2 {
                Op::AveragePool2d { win: win(w.s, 1, p), filter_h: w.k, filter_w: w.k, act: Act::None }
            } else {
                Op::MaxPool2d { win: win(w.s, 1, p), filter_h: w.k, filter_w: w.k, act: Act::None }
            };
            node(g, op, vec![x], vec![y]);
            Some(y)
        }
    }
}

/// A random graph: each step applies an operator to a random earlier tensor (so tensors
/// branch), ADDs two earlier tensors of equal shape, or flattens and ends in a fully
/// connected layer.
fn build(seed_ops: &[(u8, usize, usize, WinOp)], h: usize, w: usize, c: usize, dtype: DType) -> Graph {
    let mut g = Graph::new("random");
    let x = tensor(&mut g, dtype, vec![1, h, w, c], false);
    g.inputs.push(x);
    let mut avail = vec![x];
    for &(kind, a, b, wo) in seed_ops {
        let xa = avail[a % avail.len()];
        match kind % 4 {
            0 | 1 => {
                if let Some(y) = add_window(&mut g, xa, wo, dtype) {
                    avail.push(y);
                }
            }
            2 => {
                let xb = avail[b % avail.len()];
                if g.t(xa).shape == g.t(xb).shape {
                    let shape = g.t(xa).shape.clone();
                    let y = tensor(&mut g, dtype, shape, false);
                    node(&mut g, Op::Add { act: Act::None }, vec![xa, xb], vec![y]);
                    avail.push(y);
                } else {
                    let shape = g.t(xa).shape.clone();
                    let y = tensor(&mut g, dtype, shape, false);
                    node(&mut g, if dtype == DType::I8 { Op::Logistic } else { Op::Relu }, vec![xa], vec![y]);
                    avail.push(y);
                }
            }
            _ => {
                let shape = g.t(xa).shape.clone();
                    let y = tensor(&mut g, dtype, shape, false);
                node(&mut g, Op::Relu6, vec![xa], vec![y]);
                avail.push(y);
            }
        }
    }
    // Flatten the last tensor and end in a fully connected layer (the model output).
    let last = *avail.last().unwrap();
    let n = g.t(last).elems();
    let v = tensor(&mut g, dtype, vec![1, n], false);
    node(&mut g, Op::View { kind: "RESHAPE" }, vec![last], vec![v]);
    let wt = tensor(&mut g, dtype, vec![3, n], true);
    let y = tensor(&mut g, dtype, vec![1, 3], false);
    node(&mut g, Op::FullyConnected { act: Act::None, keep_num_dims: false, asymmetric_inputs: false }, vec![v, wt], vec![y]);
    g.outputs.push(y);
    g.rebuild_edges();
    g
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_plan_validly(
        ops in prop::collection::vec((any::<u8>(), any::<usize>(), any::<usize>(), win_op()), 1..14),
        h in 2usize..9, w in 2usize..9, c in 1usize..5, float in any::<bool>(),
    ) {
        let dtype = if float { DType::F32 } else { DType::I8 };
        let g = build(&ops, h, w, c, dtype);
        let p = plan::plan(&g).expect("plan");
        check::check(&g, &p).expect("checker");
        prop_assert!(p.arena_bytes <= p.greedy_arena_bytes, "arena {} > greedy {}", p.arena_bytes, p.greedy_arena_bytes);
        prop_assert!(p.lower_bound <= p.schedule_peak);
        prop_assert!(p.schedule_peak <= p.arena_bytes, "peak {} > arena {}", p.schedule_peak, p.arena_bytes);
        if std::env::var_os("PLAN_PROPS_STATS").is_some() { eprintln!("stats nodes={} overlaps={} rev={} arena={} greedy={} bound={} exact={}", g.nodes.node_count(), p.overlaps.len(), p.overlaps.iter().filter(|o| o.reverse).count(), p.arena_bytes, p.greedy_arena_bytes, p.lower_bound, p.lower_bound_exact); }
        for ov in &p.overlaps {
            prop_assert!(ov.bytes > 0);
        }
    }
}

/// `Input -> RELU -> t1 -> op -> t2 -> RELU -> Output` with t1, t2 in the arena at
/// `offset(t2) = offset(t1) + shift`; the plan the checker is asked about.
fn single(g: &Graph, op_x: TensorId, op_y: TensorId, shift: isize, reverse: bool, align: usize) -> Plan {
    let (xb, yb) = (g.t(op_x).bytes(), g.t(op_y).bytes());
    let base = (yb + 8).div_ceil(4) * 4;
    let ox = base;
    let oy = (base as isize + shift) as usize;
    let mut loc = vec![None; g.tensors.len()];
    for (t, tt) in g.tensors.iter().enumerate() {
        if tt.is_const() {
            loc[t] = Some(Loc::Const);
        }
    }
    loc[g.inputs[0]] = Some(Loc::Input { k: 0 });
    loc[g.outputs[0]] = Some(Loc::Output { k: 0 });
    loc[op_x] = Some(Loc::Arena { offset: ox });
    loc[op_y] = Some(Loc::Arena { offset: oy });
    let buffers = vec![
        Buffer { root: op_x, bytes: xb, first: 0, last: 1, offset: ox },
        Buffer { root: op_y, bytes: yb, first: 1, last: 2, offset: oy },
    ];
    let arena_bytes = (ox + xb).max(oy + yb).div_ceil(4) * 4;
    let shared = access::overlap_at(xb, yb, shift);
    let overlaps = if shared > 0 { vec![Overlap { step: 1, input: op_x, output: op_y, shift, bytes: shared, reverse }] } else { vec![] };
    Plan {
        schedule: g.topo_order().unwrap(),
        root: (0..g.tensors.len()).collect(),
        loc,
        buffers,
        arena_bytes,
        copy_out: vec![],
        lower_bound: 0,
        lower_bound_exact: true,
        schedule_peak: 0,
        step_bytes: vec![],
        overlaps,
        strategy: String::new(),
        greedy_arena_bytes: 0,
        align,
    }
}

/// Builds the three-operator graph around one operator under test.
fn around(kind: u8, wo: WinOp, nb: usize, h: usize, w: usize, c: usize, dtype: DType) -> Option<(Graph, TensorId, TensorId)> {
    let mut g = Graph::new("single");
    let x = tensor(&mut g, dtype, vec![nb, h, w, c], false);
    g.inputs.push(x);
    let t1 = tensor(&mut g, dtype, vec![nb, h, w, c], false);
    node(&mut g, Op::Relu, vec![x], vec![t1]);
    let t2 = match kind {
        0 => add_window(&mut g, t1, wo, dtype)?,
        1 => {
            let y = tensor(&mut g, dtype, vec![nb, h, w, c], false);
            node(&mut g, Op::Tanh, vec![t1], vec![y]);
            y
        }
        _ => {
            // Dequantize widens: int8 -> float32.
            let y = tensor(&mut g, DType::F32, vec![nb, h, w, c], false);
            g.tensors[t1].dtype = DType::I8;
            node(&mut g, Op::Dequantize, vec![t1], vec![y]);
            y
        }
    };
    let (dt, shape) = (g.t(t2).dtype, g.t(t2).shape.clone());
    let out = tensor(&mut g, dt, shape, false);
    node(&mut g, Op::Relu, vec![t2], vec![out]);
    g.outputs.push(out);
    g.rebuild_edges();
    Some((g, t1, t2))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn overlap_limits_are_sound_and_tight(kind in 0u8..3, wo in win_op(), nb in 1usize..3, h in 1usize..8, w in 1usize..8, c in 1usize..4, float in any::<bool>()) {
        let dtype = if float { DType::F32 } else { DType::I8 };
        let Some((g, t1, t2)) = around(kind, wo, nb, h, w, c, dtype) else { return Ok(()) };
        let n = g.topo_order().unwrap()[1];
        let (xb, yb) = (g.t(t1).bytes() as isize, g.t(t2).bytes() as isize);
        // With the planner's alignment (4) and byte by byte (1, to see that the limits are
        // exact, not just safe).
        for align in [4usize, 1] {
            let a = align as isize;
            let lim = plan::schedule::limits_of(&g, n, t1, align).expect("modelled operator");
            let ok = |s: isize, rev: bool| check::check(&g, &single(&g, t1, t2, s, rev, align)).is_ok();
            // Sound: every safe shift passes.
            let mut s = (-yb).div_euclid(a) * a;
            while s <= lim.fwd {
                prop_assert!(ok(s, false), "forward shift {s} <= limit {} rejected (align {align})", lim.fwd);
                s += a;
            }
            if let Some(r) = lim.rev {
                let mut s = r;
                while s < xb + a {
                    prop_assert!(ok(s, true), "backward shift {s} >= limit {r} rejected (align {align})");
                    s += a;
                }
                // Tight: the next shift overlaps and fails.
                if align == 1 && r - 1 > -yb {
                    prop_assert!(!ok(r - 1, true), "backward shift {} below the limit {r} passes", r - 1);
                }
            }
            if align == 1 && lim.fwd + 1 < xb {
                prop_assert!(!ok(lim.fwd + 1, false), "forward shift {} above the limit {} passes", lim.fwd + 1, lim.fwd);
            }
        }
    }
}

#[test]
fn checker_rejects_an_output_placed_over_unread_input() {
    // In place is fine for TANH, one element further up is not.
    let (g, t1, t2) = around(1, WinOp { kind: 0, k: 1, s: 1, d: 1, same: true, f: 1, hybrid: false }, 1, 2, 2, 2, DType::I8).unwrap();
    assert!(check::check(&g, &single(&g, t1, t2, 0, false, 4)).is_ok());
    let e = check::check(&g, &single(&g, t1, t2, 4, false, 4)).unwrap_err();
    assert!(e.contains("reads byte"), "{e}");
    // A fully connected layer must never overlap (its kernel is not modelled).
    let mut g = Graph::new("fc");
    let x = tensor(&mut g, DType::I8, vec![1, 8], false);
    g.inputs.push(x);
    let t1 = tensor(&mut g, DType::I8, vec![1, 8], false);
    node(&mut g, Op::Relu, vec![x], vec![t1]);
    let wt = tensor(&mut g, DType::I8, vec![8, 8], true);
    let t2 = tensor(&mut g, DType::I8, vec![1, 8], false);
    node(&mut g, Op::FullyConnected { act: Act::None, keep_num_dims: false, asymmetric_inputs: false }, vec![t1, wt], vec![t2]);
    let out = tensor(&mut g, DType::I8, vec![1, 8], false);
    node(&mut g, Op::Relu, vec![t2], vec![out]);
    g.outputs.push(out);
    g.rebuild_edges();
    let e = check::check(&g, &single(&g, t1, t2, 0, false, 4)).unwrap_err();
    assert!(e.contains("not one the checker knows"), "{e}");
}
