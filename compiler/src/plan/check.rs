//! An independent plan checker. It shares no code with the planner: it runs the schedule
//! over a model of the arena in which every byte remembers which tensor byte it holds, and
//! every read of a tensor byte must find that byte still there. Operators whose output
//! shares bytes with an input are simulated element by element in the order their kernel
//! runs (the loop nests below restate the kernels' loops); for every other operator the
//! output must not touch any input byte at all. So a plan passes only if no byte is
//! overwritten before its last read, including partial and in-place overlaps.

use super::{Loc, Plan};
use crate::ir::{DType, Graph, Node, Op, TensorId};

/// Arena bytes: which (tensor, byte) each holds.
struct Mem {
    owner: Vec<u32>,
    byte: Vec<u32>,
}

const NONE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Operand {
    t: TensorId,
    root: TensorId,
    off: usize,
    len: usize,
    es: usize,
}

impl Mem {
    fn read(&self, g: &Graph, o: &Operand, from: usize, to: usize, step: usize, node: &Node) -> Result<(), String> {
        let (a0, a1) = (o.off + from, o.off + to);
        let r = o.root as u32;
        let intact = self.owner[a0..a1].iter().all(|&w| w == r) && self.byte[a0..a1].iter().zip(from as u32..).all(|(&b, p)| b == p);
        if intact {
            return Ok(());
        }
        for p in from..to {
            let a = o.off + p;
            if self.owner[a] != o.root as u32 || self.byte[a] != p as u32 {
                let what = if self.owner[a] == NONE {
                    "nothing".to_string()
                } else {
                    let t = g.t(self.owner[a] as usize);
                    format!("byte {} of tensor {} '{}'", self.byte[a], t.index, t.name)
                };
                let t = g.t(o.t);
                return Err(format!(
                    "step {step} (operator {} {}) reads byte {p} of tensor {} '{}' at arena byte {a}, which holds {what}",
                    node.index,
                    node.op.name(),
                    t.index,
                    t.name
                ));
            }
        }
        Ok(())
    }
    fn write(&mut self, o: &Operand, from: usize, to: usize) {
        for p in from..to {
            self.owner[o.off + p] = o.root as u32;
            self.byte[o.off + p] = p as u32;
        }
    }
}

pub fn check(g: &Graph, plan: &Plan) -> Result<(), String> {
    for b in &plan.buffers {
        if b.offset + b.bytes > plan.arena_bytes {
            return Err(format!("tensor {} [{}..{}) lies outside the {}-byte arena", b.root, b.offset, b.offset + b.bytes, plan.arena_bytes));
        }
        if b.offset % plan.align != 0 {
            return Err(format!("tensor {} offset {} is not {}-aligned", b.root, b.offset, plan.align));
        }
        if b.first > b.last {
            return Err(format!("tensor {} has an empty lifetime", b.root));
        }
    }
    let mut mem = Mem { owner: vec![NONE; plan.arena_bytes], byte: vec![0; plan.arena_bytes] };
    let operand = |t: TensorId| -> Option<Operand> {
        match plan.loc[t] {
            Some(Loc::Arena { offset }) => Some(Operand { t, root: plan.root[t], off: offset, len: g.t(t).bytes(), es: g.t(t).dtype.size().max(1) }),
            _ => None,
        }
    };
    for (step, &n) in plan.schedule.iter().enumerate() {
        let node = &g.nodes[n];
        if node.op.is_view() {
            // A view reads and writes nothing; its output must be its input's bytes.
            if let (Some(i), Some(&o)) = (node.input(0), node.outputs.first()) {
                if plan.loc[i] != plan.loc[o] {
                    return Err(format!("view operator {} does not share its input's location", node.index));
                }
            }
            continue;
        }
        let mut ins: Vec<Operand> = Vec::new();
        for &t in node.inputs.iter().flatten() {
            if g.t(t).is_const() {
                continue;
            }
            if let Some(o) = operand(t) {
                if !ins.iter().any(|x| x.t == t) {
                    ins.push(o);
                }
            }
        }
        let outs: Vec<Operand> = node.outputs.iter().filter_map(|&t| operand(t)).collect();
        let shares = outs.iter().any(|y| ins.iter().any(|x| x.off < y.off + y.len && y.off < x.off + x.len));
        if !shares {
            for x in &ins {
                mem.read(g, x, 0, x.len, step, node)?;
            }
            for y in &outs {
                mem.write(y, 0, y.len);
            }
            continue;
        }
        let reverse = plan.reverse_at(step);
        let Some(nest) = nest(g, node) else {
            return Err(format!(
                "step {step}: operator {} {} writes over one of its inputs, but its kernel's access order is not one the checker knows",
                node.index,
                node.op.name()
            ));
        };
        if outs.len() != 1 {
            return Err(format!("step {step}: operator {} has several outputs sharing bytes with its inputs", node.index));
        }
        let y = outs[0];
        match nest {
            Nest::Elementwise { n } => {
                if reverse {
                    return Err(format!("step {step}: element-wise operator {} has no backward mode", node.index));
                }
                for i in 0..n {
                    for x in &ins {
                        mem.read(g, x, i * x.es, (i + 1) * x.es, step, node)?;
                    }
                    mem.write(&y, i * y.es, (i + 1) * y.es);
                }
            }
            Nest::Window { kind, n: nb, h, w, c, oh, ow, cout, kh, kw, sh, sw, dh, dw } => {
                if ins.len() != 1 {
                    return Err(format!("step {step}: window operator {} has {} arena inputs", node.index, ins.len()));
                }
                let x = ins[0];
                let pad = |o: usize, s: usize, k: usize, d: usize, i: usize| -> i64 { (((o as i64 - 1) * s as i64 + (k as i64 - 1) * d as i64 + 1 - i as i64).max(0)) / 2 };
                let (ph, pw) = (pad(oh, sh, kh, dh, h), pad(ow, sw, kw, dw, w));
                let npos = nb * oh * ow;
                let hybrid = matches!(kind, Kind::ConvHybrid | Kind::DepthwiseHybrid(_));
                let mut taps: Vec<usize> = Vec::with_capacity(kh * kw);
                for k in 0..npos {
                    let pos = if reverse { npos - 1 - k } else { k };
                    let (b, oy, ox) = (pos / (oh * ow), pos / ow % oh, pos % ow);
                    // A hybrid kernel's prologue: the batch's range, read when the batch starts.
                    let batch_start = if reverse { oy == oh - 1 && ox == ow - 1 } else { oy == 0 && ox == 0 };
                    if hybrid && batch_start {
                        mem.read(g, &x, b * h * w * c * x.es, (b + 1) * h * w * c * x.es, step, node)?;
                    }
                    taps.clear();
                    for ky in 0..kh {
                        let iy = (oy * sh) as i64 - ph + (ky * dh) as i64;
                        if iy < 0 || iy >= h as i64 {
                            continue;
                        }
                        for kx in 0..kw {
                            let ix = (ox * sw) as i64 - pw + (kx * dw) as i64;
                            if ix < 0 || ix >= w as i64 {
                                continue;
                            }
                            taps.push(((b * h + iy as usize) * w + ix as usize) * c);
                        }
                    }
                    if matches!(kind, Kind::ConvHybrid) {
                        // The window once (all channels), then every output channel (in
                        // increasing order, whichever way the positions run).
                        for &e0 in &taps {
                            mem.read(g, &x, e0 * x.es, (e0 + c) * x.es, step, node)?;
                        }
                        mem.write(&y, pos * cout * y.es, (pos + 1) * cout * y.es);
                        continue;
                    }
                    for k2 in 0..cout {
                        // Backwards: positions and channels both decreasing.
                        let oc = if reverse { cout - 1 - k2 } else { k2 };
                        let chans = match kind {
                            Kind::Conv | Kind::ConvHybrid => 0..c,
                            Kind::Depthwise(m) | Kind::DepthwiseHybrid(m) => oc / m..oc / m + 1,
                            Kind::Pool => oc..oc + 1,
                        };
                        if k2 == 0 || !matches!(kind, Kind::Conv) {
                            for &e0 in &taps {
                                mem.read(g, &x, (e0 + chans.start) * x.es, (e0 + chans.end) * x.es, step, node)?;
                            }
                        } else {
                            // A convolution reads the same window for every output channel,
                            // and since the last full check only the previous channel's
                            // output was written: the window is intact unless it landed there.
                            let prev = if reverse { oc + 1 } else { oc - 1 };
                            let (ws, we) = (y.off + (pos * cout + prev) * y.es, y.off + (pos * cout + prev + 1) * y.es);
                            for &e0 in &taps {
                                let (rs, re) = (x.off + e0 * x.es, x.off + (e0 + c) * x.es);
                                if rs < we && ws < re {
                                    return mem.read(g, &x, e0 * x.es, (e0 + c) * x.es, step, node).and(Err(format!(
                                        "step {step} (operator {} {}): output element {} overwrites the window it reads next",
                                        node.index,
                                        node.op.name(),
                                        pos * cout + prev
                                    )));
                                }
                            }
                        }
                        let j = pos * cout + oc;
                        mem.write(&y, j * y.es, (j + 1) * y.es);
                    }
                }
            }
        }
    }
    for &(t, _) in &plan.copy_out {
        if let Some(o) = operand(t) {
            let node = &g.nodes[*plan.schedule.last().ok_or("empty schedule")?];
            mem.read(g, &o, 0, o.len, plan.schedule.len(), node)?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy)]
enum Kind {
    Conv,
    Depthwise(usize),
    Pool,
    /// Float activations, int8 weights: the batch's range first; per position the window
    /// once, quantized into a patch, then every output channel.
    ConvHybrid,
    /// The batch's range first, then as `Depthwise`.
    DepthwiseHybrid(usize),
}

/// The loop nest of the kernel emitted for a node, when the checker knows it. (A grouped
/// convolution reads only its group's channels: simulating all of them is conservative.)
#[derive(Clone, Copy)]
enum Nest {
    /// `for i { read every input's element i; write output element i }`.
    Elementwise { n: usize },
    /// `for b, oy, ox { for oc { read the window's taps; write } }`, or with all four loops
    /// backwards.
    Window { kind: Kind, n: usize, h: usize, w: usize, c: usize, oh: usize, ow: usize, cout: usize, kh: usize, kw: usize, sh: usize, sw: usize, dh: usize, dw: usize },
}

fn nest(g: &Graph, node: &Node) -> Option<Nest> {
    let y = g.t(*node.outputs.first()?);
    let x = g.t(node.input(0)?);
    let simple = |d: DType| matches!(d, DType::I8 | DType::F32);
    match &node.op {
        Op::Relu | Op::Relu6 | Op::ReluN1To1 | Op::Logistic | Op::Tanh | Op::LeakyRelu { .. } | Op::HardSwish | Op::Quantize | Op::Dequantize => {
            (simple(x.dtype) && simple(y.dtype) && x.elems() == y.elems()).then_some(Nest::Elementwise { n: y.elems() })
        }
        Op::Add { .. } | Op::Sub { .. } | Op::Mul { .. } | Op::Minimum | Op::Maximum | Op::Prelu => {
            let b = g.t(node.input(1)?);
            (simple(x.dtype) && x.dtype == b.dtype && x.dtype == y.dtype && x.elems() == y.elems() && b.elems() == y.elems())
                .then_some(Nest::Elementwise { n: y.elems() })
        }
        Op::Conv2d { win, .. } | Op::DepthwiseConv2d { win, .. } => {
            let f = g.t(node.input(1)?);
            let hybrid = x.dtype == DType::F32 && y.dtype == DType::F32 && f.dtype == DType::I8;
            let w16 = x.dtype == DType::I16 && y.dtype == DType::I16 && f.dtype == DType::I8;
            if !(w16 || (simple(x.dtype) && x.dtype == y.dtype && (f.dtype == x.dtype || hybrid))) || f.shape.len() != 4 || x.shape.len() != 4 || y.shape.len() != 4 {
                return None;
            }
            let dm = y.shape[3] / x.shape[3].max(1);
            let (kind, kh, kw) = match (matches!(node.op, Op::Conv2d { .. }), hybrid) {
                (true, false) => (Kind::Conv, f.shape[1], f.shape[2]),
                (true, true) => (Kind::ConvHybrid, f.shape[1], f.shape[2]),
                (false, false) => (Kind::Depthwise(dm), f.shape[1], f.shape[2]),
                (false, true) => (Kind::DepthwiseHybrid(dm), f.shape[1], f.shape[2]),
            };
            Some(Nest::Window {
                kind,
                n: x.shape[0],
                h: x.shape[1],
                w: x.shape[2],
                c: x.shape[3],
                oh: y.shape[1],
                ow: y.shape[2],
                cout: y.shape[3],
                kh,
                kw,
                sh: win.stride_h,
                sw: win.stride_w,
                dh: win.dilation_h,
                dw: win.dilation_w,
            })
        }
        Op::AveragePool2d { win, filter_h, filter_w, .. } | Op::MaxPool2d { win, filter_h, filter_w, .. } => {
            if !(simple(x.dtype) && x.dtype == y.dtype) || x.shape.len() != 4 || y.shape.len() != 4 {
                return None;
            }
            Some(Nest::Window {
                kind: Kind::Pool,
                n: x.shape[0],
                h: x.shape[1],
                w: x.shape[2],
                c: x.shape[3],
                oh: y.shape[1],
                ow: y.shape[2],
                cout: y.shape[3],
                kh: *filter_h,
                kw: *filter_w,
                sh: win.stride_h,
                sw: win.stride_w,
                dh: 1,
                dw: 1,
            })
        }
        _ => None,
    }
}
