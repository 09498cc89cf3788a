//! The planner's model of how a kernel walks its operands, and from it how far an
//! operator's output may be shifted onto one of its inputs that dies at that operator.
//!
//! A kernel that writes output element `j` at "time" `W(j)` and reads input element `e` for
//! the last time at `L(e)` (reads at a time come before the write at that time) may have its
//! output placed at `offset(y) = offset(x) + s` when no output byte written before `L(e)`
//! lands on a byte of `e`. For the walks below `W(j) = j` in forward order, so the
//! dangerous output elements for `e` are exactly `j < L(e)`, and every shift
//! `s <= e * xs - L(e) * ys` (for all `e`) is safe: a downward-closed set whose top is
//! `Limits::fwd`. Windowed kernels can also run in exactly the reverse order (positions and
//! channels decreasing), which by the mirror argument allows the upward-closed set of
//! shifts `s >= Limits::rev`.
//!
//! This module is the planner's reasoning only; `check.rs` re-simulates every overlapping
//! call byte by byte with its own loop nests and does not use it.

use crate::ir::{DType, Graph, Node, Op, Padding, TensorId};

/// Shifts `offset(output) - offset(input)` (in bytes, multiples of `align`) that are safe
/// although the two ranges overlap: every `s <= fwd` with the kernel running forwards, and
/// every `s >= rev` with it running backwards. Shifts without overlap are always safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub fwd: isize,
    pub rev: Option<isize>,
}

/// How a kernel walks its input `x` and output `y`.
#[derive(Debug, Clone, Copy)]
pub enum Walk {
    /// `for i in 0..n { read x[i] (and the other operands' element i); write y[i] }`.
    Elementwise { n: usize, xs: usize, ys: usize },
    /// NHWC windows: `for b, oy, ox { for oc { read taps; write y[b, oy, ox, oc] } }`, or all
    /// four loops backwards.
    Window(Win),
}

#[derive(Debug, Clone, Copy)]
pub enum WinKind {
    /// Every output channel reads every input channel of the window (a grouped
    /// convolution reads fewer: the model is conservative for it).
    Conv,
    /// Output channel `oc` reads input channel `oc / dm`.
    Depthwise { dm: usize },
    /// Output channel `c` reads input channel `c`.
    Pool,
    /// Hybrid convolution (float activations, int8 weights): per batch, the whole batch is
    /// read first (its range); per position, the window is read once, before any of the
    /// position's outputs is written.
    ConvHybrid,
    /// Hybrid depthwise convolution: the batch is read first, then as `Depthwise`.
    DepthwiseHybrid { dm: usize },
}

#[derive(Debug, Clone, Copy)]
pub struct Win {
    pub kind: WinKind,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub oh: usize,
    pub ow: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pad_h: usize,
    pub pad_w: usize,
    pub xs: usize,
    pub ys: usize,
}

fn same_size(a: DType, b: DType) -> bool {
    matches!((a, b), (DType::I8, DType::I8) | (DType::F32, DType::F32))
}

/// The walk of `node` over its input tensor `x` (one of its operands), when the kernel
/// emitted for it is one whose access order is modelled here; `None` otherwise (no
/// overlap allowed).
pub fn walk(g: &Graph, node: &Node, x: TensorId) -> Option<Walk> {
    let y = *node.outputs.first()?;
    if node.outputs.len() != 1 {
        return None;
    }
    let (xt, yt) = (g.t(x), g.t(y));
    let i0 = node.input(0)?;
    let ew = |n: usize| Some(Walk::Elementwise { n, xs: xt.dtype.size(), ys: yt.dtype.size() });
    match &node.op {
        Op::Relu | Op::Relu6 | Op::ReluN1To1 | Op::Logistic | Op::Tanh | Op::LeakyRelu { .. } | Op::HardSwish => {
            (i0 == x && same_size(xt.dtype, yt.dtype) && xt.elems() == yt.elems()).then_some(())?;
            ew(yt.elems())
        }
        Op::Quantize | Op::Dequantize => {
            let ok = matches!((xt.dtype, yt.dtype), (DType::F32, DType::I8) | (DType::I8, DType::I8) | (DType::I8, DType::F32));
            (i0 == x && ok && xt.elems() == yt.elems()).then_some(())?;
            ew(yt.elems())
        }
        Op::Add { .. } | Op::Sub { .. } | Op::Mul { .. } | Op::Minimum | Op::Maximum | Op::Prelu => {
            let (a, b) = (g.t(node.input(0)?), g.t(node.input(1)?));
            let n = yt.elems();
            let ok = a.elems() == n && b.elems() == n && same_size(a.dtype, yt.dtype) && a.dtype == b.dtype;
            (ok && node.inputs.iter().flatten().any(|&i| i == x)).then_some(())?;
            ew(n)
        }
        Op::Conv2d { win, .. } | Op::DepthwiseConv2d { win, .. } => {
            let f = g.t(node.input(1)?);
            let hybrid = xt.dtype == DType::F32 && yt.dtype == DType::F32 && f.dtype == DType::I8;
            // int16 activations with int8 weights (16x8) walk like int8.
            let w16 = xt.dtype == DType::I16 && yt.dtype == DType::I16 && f.dtype == DType::I8;
            (i0 == x && (w16 || (same_size(xt.dtype, yt.dtype) && (f.dtype == xt.dtype || hybrid)))).then_some(())?;
            if f.shape.len() != 4 {
                return None;
            }
            let (kind, kh, kw, cout) = match node.op {
                Op::Conv2d { .. } => (if hybrid { WinKind::ConvHybrid } else { WinKind::Conv }, f.shape[1], f.shape[2], f.shape[0]),
                _ => {
                    let c = *xt.shape.get(3)?;
                    if c == 0 || f.shape[3] % c != 0 {
                        return None;
                    }
                    let dm = f.shape[3] / c;
                    (if hybrid { WinKind::DepthwiseHybrid { dm } } else { WinKind::Depthwise { dm } }, f.shape[1], f.shape[2], f.shape[3])
                }
            };
            window(kind, xt.shape.as_slice(), yt.shape.as_slice(), kh, kw, cout, win.stride_h, win.stride_w, win.dilation_h, win.dilation_w, win.padding, xt.dtype.size())
        }
        Op::AveragePool2d { win, filter_h, filter_w, .. } | Op::MaxPool2d { win, filter_h, filter_w, .. } => {
            (i0 == x && same_size(xt.dtype, yt.dtype)).then_some(())?;
            let c = *xt.shape.get(3)?;
            window(WinKind::Pool, &xt.shape, &yt.shape, *filter_h, *filter_w, c, win.stride_h, win.stride_w, 1, 1, win.padding, xt.dtype.size())
        }
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn window(kind: WinKind, xs: &[usize], ys: &[usize], kh: usize, kw: usize, cout: usize, sh: usize, sw: usize, dh: usize, dw: usize, p: Padding, es: usize) -> Option<Walk> {
    if xs.len() != 4 || ys.len() != 4 || [kh, kw, sh, sw, dh, dw].contains(&0) {
        return None;
    }
    let (n, h, w, c) = (xs[0], xs[1], xs[2], xs[3]);
    let (oh, ow) = (ys[1], ys[2]);
    if ys[0] != n || ys[3] != cout || n * h * w * c == 0 || oh * ow * cout == 0 {
        return None;
    }
    // TFLite's padding: (out - 1) * stride + effective window - in, halved (top/left).
    let pad = |s: usize, d: usize, i: usize, k: usize, o: usize| -> usize {
        let total = (o as i64 - 1) * s as i64 + ((k as i64 - 1) * d as i64 + 1) - i as i64;
        match p {
            Padding::Same | Padding::Valid => (total.max(0) / 2) as usize,
        }
    };
    let pad_h = pad(sh, dh, h, kh, oh);
    let pad_w = pad(sw, dw, w, kw, ow);
    Some(Walk::Window(Win { kind, n, h, w, c, oh, ow, cout, kh, kw, sh, sw, dh, dw, pad_h, pad_w, xs: es, ys: es }))
}

fn floor_to(v: i64, a: i64) -> i64 {
    v.div_euclid(a) * a
}

fn ceil_to(v: i64, a: i64) -> i64 {
    -floor_to(-v, a)
}

/// The safe shifts for a walk (see the module docs), aligned to `align`, clamped to the
/// no-overlap shifts (`fwd >= -|y|`, `rev <= |x|`).
pub fn limits(walk: &Walk, align: usize) -> Limits {
    let a = align as i64;
    match *walk {
        Walk::Elementwise { n, xs, ys } => {
            let (xb, yb) = ((n * xs) as i64, (n * ys) as i64);
            // L(e) = e, dangerous outputs j < e: s <= e * (xs - ys) for every 0 < e < n.
            if n < 2 {
                return Limits { fwd: ceil_to(xb, a) as isize, rev: None };
            }
            let e = if xs >= ys { 1 } else { n - 1 } as i64;
            let fwd = floor_to(e * (xs as i64 - ys as i64), a).clamp(-ceil_to(yb, a), ceil_to(xb, a));
            Limits { fwd: fwd as isize, rev: None }
        }
        Walk::Window(w) => {
            let (xb, yb) = ((w.n * w.h * w.w * w.c * w.xs) as i64, (w.n * w.oh * w.ow * w.cout * w.ys) as i64);
            // First and last output position reading each input pixel.
            let pix = w.n * w.h * w.w;
            let mut minp = vec![usize::MAX; pix];
            let mut maxp = vec![0usize; pix];
            for b in 0..w.n {
                for oy in 0..w.oh {
                    let iy0 = (oy * w.sh) as i64 - w.pad_h as i64;
                    for ox in 0..w.ow {
                        let ix0 = (ox * w.sw) as i64 - w.pad_w as i64;
                        let pos = (b * w.oh + oy) * w.ow + ox;
                        for ky in 0..w.kh {
                            let iy = iy0 + (ky * w.dh) as i64;
                            if iy < 0 || iy >= w.h as i64 {
                                continue;
                            }
                            for kx in 0..w.kw {
                                let ix = ix0 + (kx * w.dw) as i64;
                                if ix < 0 || ix >= w.w as i64 {
                                    continue;
                                }
                                let q = (b * w.h + iy as usize) * w.w + ix as usize;
                                minp[q] = minp[q].min(pos);
                                maxp[q] = maxp[q].max(pos);
                            }
                        }
                    }
                }
            }
            let cout = w.cout as i64;
            let npos = (w.n * w.oh * w.ow) as i64;
            // Highest and lowest output channel of a position that read input channel ic.
            // (A hybrid convolution reads the window before the position's first write, so
            // as if for channel 0 forwards and for the last channel backwards.)
            let last_oc = |ic: usize| -> i64 {
                match w.kind {
                    WinKind::Conv => cout - 1,
                    WinKind::Depthwise { dm } | WinKind::DepthwiseHybrid { dm } => (ic * dm + dm - 1) as i64,
                    WinKind::Pool => ic as i64,
                    WinKind::ConvHybrid => 0,
                }
            };
            let first_oc = |ic: usize| -> i64 {
                match w.kind {
                    WinKind::Conv => 0,
                    WinKind::Depthwise { dm } | WinKind::DepthwiseHybrid { dm } => (ic * dm) as i64,
                    WinKind::Pool => ic as i64,
                    WinKind::ConvHybrid => cout - 1,
                }
            };
            let (xs, ys) = (w.xs as i64, w.ys as i64);
            let mut fwd = i64::MAX;
            let mut rev = i64::MIN;
            for q in 0..pix {
                if minp[q] == usize::MAX {
                    continue;
                }
                for ic in 0..w.c {
                    let e = (q * w.c + ic) as i64;
                    // Forward: output elements j < L(e) are written before e's last read.
                    let l = maxp[q] as i64 * cout + last_oc(ic);
                    if l > 0 {
                        fwd = fwd.min(e * xs - l * ys);
                    }
                    // Backward (the exact reverse order): e is read last by the first
                    // (position, channel) reading it; the outputs written before are all
                    // those after it, j > first(e), which must lie above e.
                    let lo = minp[q] as i64 * cout + first_oc(ic) + 1;
                    if lo < npos * cout {
                        rev = rev.max((e + 1) * xs - lo * ys);
                    }
                }
            }
            // Hybrids read each whole batch before its first output: forwards, the outputs of
            // earlier batches are written before; backwards, those of later batches.
            if matches!(w.kind, WinKind::ConvHybrid | WinKind::DepthwiseHybrid { .. }) {
                let (per_x, per_y) = ((w.h * w.w * w.c) as i64, (w.oh * w.ow * w.cout) as i64);
                for b in 0..w.n as i64 {
                    if b > 0 {
                        fwd = fwd.min(b * per_x * xs - b * per_y * ys);
                    }
                    if b + 1 < w.n as i64 {
                        rev = rev.max((b + 1) * per_x * xs - (b + 1) * per_y * ys);
                    }
                }
            }
            let fwd = if fwd == i64::MAX { xb } else { fwd };
            let rev = if rev == i64::MIN { -yb } else { rev };
            let fwd = floor_to(fwd, a).clamp(-ceil_to(yb, a), ceil_to(xb, a));
            let rev = ceil_to(rev, a).clamp(-ceil_to(yb, a), ceil_to(xb, a));
            Limits { fwd: fwd as isize, rev: Some(rev as isize) }
        }
    }
}

/// Bytes two ranges of sizes `xb` (at 0) and `yb` (at `s`) share.
pub fn overlap_at(xb: usize, yb: usize, s: isize) -> usize {
    let lo = s.max(0);
    let hi = (s + yb as isize).min(xb as isize);
    (hi - lo).max(0) as usize
}

/// The most bytes the output may share with the input under `lim` (over aligned shifts).
pub fn max_overlap(xb: usize, yb: usize, lim: &Limits, align: usize) -> usize {
    let a = align as isize;
    let best_in = |lo: isize, hi: isize| -> usize {
        if lo > hi {
            return 0;
        }
        // overlap_at is a trapezoid with its plateau between 0 and xb - yb.
        let mut cands = vec![lo, hi];
        for p in [0isize, xb as isize - yb as isize] {
            let c = p.clamp(lo, hi);
            cands.push(c.div_euclid(a) * a);
            cands.push(-((-c).div_euclid(a) * a));
        }
        cands.into_iter().filter(|&c| c >= lo && c <= hi).map(|c| overlap_at(xb, yb, c)).max().unwrap_or(0)
    };
    let big = (xb + yb + 2 * align) as isize;
    let mut best = best_in(-big, lim.fwd);
    if let Some(r) = lim.rev {
        best = best.max(best_in(r, big));
    }
    best
}
