//! Kernels run over overlapping operands compute exactly what they compute over separate
//! ones. For every kernel family the planner lets write over its input (int8 / float32 /
//! hybrid / int16 / grouped convolutions, depthwise convolutions, pools, element-wise
//! operators), one
//! operator between two arena tensors is compiled three times: output apart from the input,
//! output overlapping it at the planner's forward limit, and at its backward limit (kernel
//! run in reverse). The independent checker must accept each plan, and the three programs,
//! built and run on the same random inputs, must produce identical bytes.

use microgen::codegen;
use microgen::ir::{Act, DType, Graph, Node, Op, Padding, Quant, Tensor, TensorId, Window};
use microgen::plan::{self, access, check, Buffer, Loc, Overlap, Plan};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn q(scale: f32, zp: i64) -> Option<Quant> {
    Some(Quant { scale: vec![scale], zero_point: vec![zp], axis: 0 })
}

fn tensor(g: &mut Graph, dtype: DType, shape: Vec<usize>, quant: Option<Quant>, data: Option<Vec<u8>>) -> TensorId {
    let idx = g.tensors.len();
    g.tensors.push(Tensor { index: idx, name: format!("t{idx}"), dtype, shape, quant, data, is_variable: false });
    idx
}

fn node(g: &mut Graph, op: Op, inputs: Vec<TensorId>, outputs: Vec<TensorId>) {
    let index = g.nodes.node_count();
    g.nodes.add_node(Node { index, op, inputs: inputs.into_iter().map(Some).collect(), outputs });
}

fn weights(rng: &mut Rng, dtype: DType, n: usize) -> Vec<u8> {
    match dtype {
        DType::F32 => (0..n).flat_map(|_| ((rng.next() % 2001) as f32 / 1000.0 - 1.0).to_le_bytes()).collect(),
        _ => (0..n).map(|_| (rng.next() % 255) as u8).collect(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Conv { k: usize, s: usize, d: usize, same: bool, cout: usize, groups: usize },
    Dw { k: usize, s: usize, d: usize, same: bool, dm: usize },
    Pool { max: bool, k: usize, s: usize, same: bool },
    Tanh,
    Logistic,
    Dequantize,
    Quantize,
}

/// The operator around the one under test: RELU6, or for int16 (which has no RELU6) a
/// 1x1 convolution.
fn wrap(g: &mut Graph, x: TensorId, y: TensorId, rng: &mut Rng) {
    if g.t(x).dtype != DType::I16 {
        node(g, Op::Relu6, vec![x], vec![y]);
        return;
    }
    let c = g.t(x).shape[3];
    let f = tensor(g, DType::I8, vec![c, 1, 1, c], q(0.05, 0), Some(weights(rng, DType::I8, c * c)));
    let win = Window { stride_h: 1, stride_w: 1, dilation_h: 1, dilation_w: 1, padding: Padding::Same };
    node(g, Op::Conv2d { win, act: Act::None }, vec![x, f], vec![y]);
}

/// `Input -> RELU6 -> t1 -> op -> t2 -> RELU6 -> Output`.
fn build(kind: Kind, act: DType, hybrid: bool, rng: &mut Rng) -> (Graph, TensorId, TensorId) {
    let (nb, h, w, c) = (2, 5, 4, 4);
    let mut g = Graph::new("overlap");
    let xdt = match kind {
        Kind::Dequantize => DType::I8,
        Kind::Quantize => DType::F32,
        _ => act,
    };
    let qa = |dt: DType| match dt {
        DType::I8 => q(0.05, -3),
        DType::I16 => q(0.001, 0),
        _ => None,
    };
    let qy = |dt: DType| match dt {
        DType::I8 => q(0.1, 2),
        DType::I16 => q(0.002, 0),
        _ => None,
    };
    let x = tensor(&mut g, xdt, vec![nb, h, w, c], qa(xdt), None);
    g.inputs.push(x);
    let t1 = tensor(&mut g, xdt, vec![nb, h, w, c], qa(xdt), None);
    wrap(&mut g, x, t1, rng);
    let pad = |same: bool| if same { Padding::Same } else { Padding::Valid };
    let win = |s: usize, d: usize, same: bool| Window { stride_h: s, stride_w: s, dilation_h: d, dilation_w: d, padding: pad(same) };
    let osz = |n: usize, k: usize, s: usize, d: usize, same: bool| if same { n.div_ceil(s) } else { (n - (k - 1) * d - 1) / s + 1 };
    let wdt = if hybrid || act == DType::I16 { DType::I8 } else { act };
    let wq = if wdt == DType::I8 { q(0.02, 0) } else { None };
    let t2 = match kind {
        Kind::Conv { k, s, d, same, cout, groups } => {
            let f = tensor(&mut g, wdt, vec![cout, k, k, c / groups], wq, Some(weights(rng, wdt, cout * k * k * c / groups)));
            let y = tensor(&mut g, act, vec![nb, osz(h, k, s, d, same), osz(w, k, s, d, same), cout], qy(act), None);
            node(&mut g, Op::Conv2d { win: win(s, d, same), act: Act::None }, vec![t1, f], vec![y]);
            y
        }
        Kind::Dw { k, s, d, same, dm } => {
            let f = tensor(&mut g, wdt, vec![1, k, k, c * dm], wq, Some(weights(rng, wdt, k * k * c * dm)));
            let y = tensor(&mut g, act, vec![nb, osz(h, k, s, d, same), osz(w, k, s, d, same), c * dm], qy(act), None);
            node(&mut g, Op::DepthwiseConv2d { win: win(s, d, same), depth_multiplier: dm, act: Act::None }, vec![t1, f], vec![y]);
            y
        }
        Kind::Pool { max, k, s, same } => {
            let y = tensor(&mut g, act, vec![nb, osz(h, k, s, 1, same), osz(w, k, s, 1, same), c], qa(act), None);
            let op = if max {
                Op::MaxPool2d { win: win(s, 1, same), filter_h: k, filter_w: k, act: Act::None }
            } else {
                Op::AveragePool2d { win: win(s, 1, same), filter_h: k, filter_w: k, act: Act::None }
            };
            node(&mut g, op, vec![t1], vec![y]);
            y
        }
        Kind::Tanh | Kind::Logistic => {
            let zp = if matches!(kind, Kind::Tanh) { 0 } else { -128 };
            let yq = if act == DType::I8 { q(1.0 / 128.0, zp) } else { None };
            let y = tensor(&mut g, act, vec![nb, h, w, c], yq, None);
            node(&mut g, if matches!(kind, Kind::Tanh) { Op::Tanh } else { Op::Logistic }, vec![t1], vec![y]);
            y
        }
        Kind::Dequantize => {
            let y = tensor(&mut g, DType::F32, vec![nb, h, w, c], None, None);
            node(&mut g, Op::Dequantize, vec![t1], vec![y]);
            y
        }
        Kind::Quantize => {
            let y = tensor(&mut g, DType::I8, vec![nb, h, w, c], q(0.03, 5), None);
            node(&mut g, Op::Quantize, vec![t1], vec![y]);
            y
        }
    };
    let (dt, shape, quant) = (g.t(t2).dtype, g.t(t2).shape.clone(), g.t(t2).quant.clone());
    let out = tensor(&mut g, dt, shape, quant, None);
    wrap(&mut g, t2, out, rng);
    g.outputs.push(out);
    g.rebuild_edges();
    (g, t1, t2)
}

/// The plan with `offset(t2) = offset(t1) + shift`.
fn plan_at(g: &Graph, t1: TensorId, t2: TensorId, shift: isize, reverse: bool) -> Plan {
    let (xb, yb) = (g.t(t1).bytes(), g.t(t2).bytes());
    let ox = (yb + 8).div_ceil(4) * 4;
    let oy = (ox as isize + shift) as usize;
    let mut loc = vec![None; g.tensors.len()];
    for (t, tt) in g.tensors.iter().enumerate() {
        if tt.is_const() {
            loc[t] = Some(Loc::Const);
        }
    }
    loc[g.inputs[0]] = Some(Loc::Input { k: 0 });
    loc[g.outputs[0]] = Some(Loc::Output { k: 0 });
    loc[t1] = Some(Loc::Arena { offset: ox });
    loc[t2] = Some(Loc::Arena { offset: oy });
    let shared = access::overlap_at(xb, yb, shift);
    Plan {
        schedule: g.topo_order().unwrap(),
        root: (0..g.tensors.len()).collect(),
        loc,
        buffers: vec![Buffer { root: t1, bytes: xb, first: 0, last: 1, offset: ox }, Buffer { root: t2, bytes: yb, first: 1, last: 2, offset: oy }],
        arena_bytes: (ox + xb).max(oy + yb).div_ceil(4) * 4,
        copy_out: vec![],
        lower_bound: 0,
        lower_bound_exact: true,
        schedule_peak: 0,
        step_bytes: vec![],
        overlaps: if shared > 0 { vec![Overlap { step: 1, input: t1, output: t2, shift, bytes: shared, reverse }] } else { vec![] },
        strategy: String::new(),
        greedy_arena_bytes: 0,
        align: 4,
    }
}

#[test]
fn kernels_over_overlapping_operands_compute_the_same() {
    let kinds = [
        Kind::Conv { k: 3, s: 1, d: 1, same: true, cout: 4, groups: 1 },
        Kind::Conv { k: 1, s: 1, d: 1, same: true, cout: 5, groups: 1 },
        Kind::Conv { k: 3, s: 2, d: 1, same: true, cout: 2, groups: 1 },
        Kind::Conv { k: 2, s: 1, d: 2, same: false, cout: 3, groups: 1 },
        Kind::Conv { k: 3, s: 1, d: 1, same: true, cout: 6, groups: 2 },
        Kind::Dw { k: 3, s: 1, d: 1, same: true, dm: 1 },
        Kind::Dw { k: 3, s: 2, d: 1, same: true, dm: 2 },
        Kind::Dw { k: 2, s: 1, d: 2, same: false, dm: 1 },
        Kind::Pool { max: false, k: 2, s: 2, same: true },
        Kind::Pool { max: true, k: 3, s: 1, same: true },
        Kind::Tanh,
        Kind::Logistic,
        Kind::Dequantize,
        Kind::Quantize,
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let dir = repo().join("target/overlap-exec");
    let _ = std::fs::remove_dir_all(dir.join("src"));
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let mut main = String::from("#![forbid(unsafe_code)]\n#![deny(warnings)]\n#![allow(dead_code)]\n");
    let mut body = String::new();
    let mut cases = 0;
    for kind in kinds {
        for (act, hybrid) in [(DType::I8, false), (DType::F32, false), (DType::F32, true), (DType::I16, false)] {
            // (Hybrid kernels exist for undilated, ungrouped convolutions; int16 for
            // ungrouped convolutions.)
            if hybrid && !matches!(kind, Kind::Conv { d: 1, groups: 1, .. } | Kind::Dw { d: 1, .. }) {
                continue;
            }
            if act == DType::I16 && !matches!(kind, Kind::Conv { groups: 1, .. } | Kind::Dw { .. }) {
                continue;
            }
            if hybrid && matches!(kind, Kind::Conv { groups: 2, .. }) {
                continue;
            }
            if matches!(kind, Kind::Dequantize | Kind::Quantize) && act == DType::F32 {
                continue;
            }
            let (g, t1, t2) = build(kind, act, hybrid, &mut rng);
            let n = g.topo_order().unwrap()[1];
            let lim = plan::schedule::limits_of(&g, n, t1, 4).unwrap_or_else(|| panic!("{kind:?} {act:?} hybrid {hybrid}: not modelled"));
            let (xb, yb) = (g.t(t1).bytes() as isize, g.t(t2).bytes() as isize);
            let mut variants = vec![("apart", -((yb + 3) / 4 * 4), false)];
            if lim.fwd > -yb {
                variants.push(("fwd", lim.fwd, false));
            }
            if let Some(r) = lim.rev.filter(|&r| r < xb) {
                variants.push(("rev", r, true));
            }
            assert!(variants.len() > 1, "{kind:?} {act:?}: no overlap allowed at all");
            let k = cases;
            cases += 1;
            let mut mods = Vec::new();
            for (name, shift, rev) in variants {
                let p = plan_at(&g, t1, t2, shift, rev);
                check::check(&g, &p).unwrap_or_else(|e| panic!("{kind:?} {act:?} {name}: checker: {e}"));
                let code = codegen::generate(&g, &p, "").unwrap().code;
                if name != "apart" {
                    assert!(code.contains("as_slice_of_cells"), "{kind:?} {name}: no cells");
                }
                let m = format!("c{k}_{name}");
                std::fs::write(dir.join("src").join(format!("{m}.rs")), code).unwrap();
                let _ = writeln!(main, "mod {m} {{ include!(\"{m}.rs\"); }}");
                mods.push(m);
            }
            let gen = match g.t(g.inputs[0]).dtype {
                DType::F32 => "(rng() % 4001) as f32 / 1000.0 - 2.0",
                DType::I16 => "rng() as u16 as i16",
                _ => "rng() as u8 as i8",
            };
            let _ = writeln!(body, "    for _ in 0..4 {{\n        let input: {}::Input = core::array::from_fn(|_| {gen});", mods[0]);
            for m in &mods {
                let _ = writeln!(
                    body,
                    "        let mut arena = {m}::Arena::new();\n        arena.0.iter_mut().for_each(|b| *b = rng() as u8);\n        let mut out_{m}: {m}::Output = core::array::from_fn(|_| Default::default());\n        {m}::predict(&mut arena, &input, &mut out_{m});"
                );
            }
            for m in &mods[1..] {
                let _ = writeln!(body, "        assert!(out_{} == out_{m}, \"{m} differs from {}\");", mods[0], mods[0]);
            }
            let _ = writeln!(body, "    }}");
        }
    }
    let _ = writeln!(
        main,
        "fn main() {{\n    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;\n    let mut rng = move || {{ s ^= s << 13; s ^= s >> 7; s ^= s << 17; s }};\n{body}    println!(\"{cases} cases agree\");\n}}"
    );
    std::fs::write(dir.join("src/main.rs"), main).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"overlap-exec\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nmicrogen-rt = {{ path = {:?} }}\n\n[workspace]\n",
            repo().join("runtime-min").display().to_string()
        ),
    )
    .unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["run", "--quiet", "--offline"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "build or run failed:\n{}\n{}", stdout, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("{cases} cases agree")), "{stdout}");
}
