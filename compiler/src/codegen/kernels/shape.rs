//! Data-movement operators: PAD/PADV2, CONCATENATION, STRIDED_SLICE, TRANSPOSE, RESIZE_NEAREST_NEIGHBOR, SPLIT, SPLIT_V, PACK, UNPACK.
//!
//! All of them are resolved at compile time into a map "output element -> (input, element)
//! or padding". The map is compressed into segments (two nested loops with constant strides,
//! per source) and emitted as straight-line loops, or as a small static segment table when
//! there are many segments.

use super::super::{lit, Kernel, KernelCtx};
use crate::error::Result;
use crate::ir::{Act, DType, Op, Tensor};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// Operators this file generates code for, as (name, data types).
pub const SUPPORTED: &[(&str, &str)] = &[
    ("PAD / PADV2", "int8, float32 (constant paddings)"),
    ("CONCATENATION", "int8 (equal quantization), float32"),
    ("STRIDED_SLICE", "int8, float32 (constant begin/end/strides; no ellipsis/new_axis)"),
    ("TRANSPOSE", "int8, float32 (constant permutation)"),
    ("RESIZE_NEAREST_NEIGHBOR", "int8, float32"),
    ("SPLIT / SPLIT_V", "int8, float32 (constant axis and sizes)"),
    ("PACK / UNPACK", "int8, float32"),
];

/// Where one output element comes from: (parameter index of the input, element index).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Src {
    In(usize, usize),
    Pad,
}

/// `for o in 0..n_outer { for i in 0..n_inner { y[dst0 + o*dst_os + i] = src(src0 + o*src_os + i*src_is) } }`
#[derive(Clone, Debug)]
struct Seg {
    dst0: i64,
    n_outer: i64,
    dst_os: i64,
    src0: i64,
    src_os: i64,
    n_inner: i64,
    src_is: i64,
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Calls `f` with every multi-index of `shape`, in row-major order.
fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    if shape.iter().any(|&d| d == 0) {
        return;
    }
    let mut idx = vec![0usize; shape.len()];
    loop {
        f(&idx);
        let mut d = shape.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

fn const_ints(t: &Tensor) -> Option<Vec<i64>> {
    let d = t.data.as_ref()?;
    match t.dtype {
        DType::I32 => Some(d.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect()),
        DType::I64 => Some(d.chunks_exact(8).map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect()),
        _ => None,
    }
}

struct Ctx2<'a> {
    ctx: &'a KernelCtx<'a>,
}

impl<'a> Ctx2<'a> {
    /// A constant integer operand.
    fn ints(&self, i: usize, what: &str) -> Result<Vec<i64>> {
        let t = self.ctx.tensor(i)?;
        if !t.is_const() {
            return Err(self.ctx.unsupported(format!("non-constant {what} (input {i})")));
        }
        const_ints(t).ok_or_else(|| self.ctx.unsupported(format!("{what} of type {} (int32/int64 supported)", t.dtype)))
    }
    /// Parameter index of a (non-constant) data input.
    fn param(&self, i: usize) -> Result<usize> {
        let node = self.ctx.node;
        let id = node.input(i).ok_or_else(|| self.ctx.err(format!("input {i} is missing")))?;
        if self.ctx.g.t(id).is_const() {
            return Err(self.ctx.unsupported(format!("constant data input {i}")));
        }
        Ok(node.inputs[..i].iter().flatten().filter(|&&t| !self.ctx.g.t(t).is_const()).count())
    }
}

fn norm_axis(ctx: &KernelCtx, axis: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(ctx.err(format!("axis {axis} out of range for rank {rank}")));
    }
    Ok(a as usize)
}

/// TFLite reference `GetNearestNeighbor`.
fn nearest(v: usize, in_size: usize, out_size: usize, align_corners: bool, half_pixel: bool) -> usize {
    let scale = if align_corners && out_size > 1 {
        (in_size as f32 - 1.0) / (out_size as f32 - 1.0)
    } else {
        in_size as f32 / out_size as f32
    };
    let offset = if half_pixel { 0.5f32 } else { 0.0 };
    let p = (v as f32 + offset) * scale;
    let mut o = if align_corners { p.round() as i32 } else { p.floor() as i32 };
    o = o.min(in_size as i32 - 1);
    if half_pixel {
        o = o.max(0);
    }
    o.max(0) as usize
}

/// The source maps of every output, the padding value and a doc line.
fn maps(ctx: &KernelCtx) -> Result<(Vec<Vec<Src>>, Option<TokenStream>, String)> {
    let c = Ctx2 { ctx };
    let node = ctx.node;
    let nout = node.outputs.len();
    let out_t: Vec<&Tensor> = (0..nout).map(|i| ctx.out(i)).collect::<Result<_>>()?;
    match &node.op {
        Op::Pad => {
            let x = ctx.tensor(0)?;
            let y = out_t[0];
            let p = c.param(0)?;
            let pads = c.ints(1, "paddings")?;
            let rank = x.shape.len();
            if pads.len() != 2 * rank || y.shape.len() != rank {
                return Err(ctx.err(format!("paddings {:?} do not fit input shape {:?}", pads, x.shape)));
            }
            for d in 0..rank {
                let (b, a) = (pads[2 * d], pads[2 * d + 1]);
                if b < 0 || a < 0 || x.shape[d] as i64 + b + a != y.shape[d] as i64 {
                    return Err(ctx.err(format!("paddings {:?} with input {:?} do not give output {:?}", pads, x.shape, y.shape)));
                }
            }
            let pad_v = match node.input(2) {
                Some(id) => {
                    let t = ctx.g.t(id);
                    let d = t.data.as_ref().ok_or_else(|| ctx.unsupported("non-constant PADV2 constant_values"))?;
                    if t.dtype != x.dtype || t.elems() != 1 {
                        return Err(ctx.err("PADV2 constant_values must be one element of the input's type"));
                    }
                    match x.dtype {
                        DType::F32 if d.len() >= 4 => lit::f32(f32::from_le_bytes([d[0], d[1], d[2], d[3]])),
                        DType::I8 if !d.is_empty() => lit::i32(d[0] as i8 as i32),
                        _ => return Err(ctx.err("PADV2 constant_values has no data")),
                    }
                }
                None => match x.dtype {
                    DType::F32 => lit::f32(0.0),
                    _ => lit::i32(y.q().map(|q| q.zp()).unwrap_or(0)),
                },
            };
            let xs = strides(&x.shape);
            let mut m = Vec::with_capacity(y.elems());
            for_each_index(&y.shape, |idx| {
                let mut src = 0usize;
                let mut inside = true;
                for d in 0..rank {
                    let b = pads[2 * d] as usize;
                    if idx[d] < b || idx[d] >= b + x.shape[d] {
                        inside = false;
                        break;
                    }
                    src += (idx[d] - b) * xs[d];
                }
                m.push(if inside { Src::In(p, src) } else { Src::Pad });
            });
            Ok((vec![m], Some(pad_v), format!("{:?} -> {:?}, paddings {:?}", x.shape, y.shape, pads)))
        }
        Op::Concatenation { axis, act } => {
            if *act != Act::None {
                return Err(ctx.unsupported("fused activation on CONCATENATION"));
            }
            let y = out_t[0];
            let rank = y.shape.len();
            let ax = norm_axis(ctx, *axis as i64, rank)?;
            let mut ins = Vec::new();
            let mut total = 0usize;
            for i in 0..node.inputs.len() {
                let t = ctx.tensor(i)?;
                if t.shape.len() != rank || (0..rank).any(|d| d != ax && t.shape[d] != y.shape[d]) {
                    return Err(ctx.err(format!("input {i} shape {:?} does not fit output {:?} on axis {ax}", t.shape, y.shape)));
                }
                ins.push((c.param(i)?, t, total));
                total += t.shape[ax];
            }
            if total != y.shape[ax] {
                return Err(ctx.err(format!("inputs sum to {total} on axis {ax}, output has {}", y.shape[ax])));
            }
            let mut m = Vec::with_capacity(y.elems());
            for_each_index(&y.shape, |idx| {
                let k = ins.iter().rposition(|(_, _, off)| *off <= idx[ax]).unwrap_or(0);
                let (p, t, off) = &ins[k];
                let s = strides(&t.shape);
                let src: usize = (0..rank).map(|d| if d == ax { (idx[d] - off) * s[d] } else { idx[d] * s[d] }).sum();
                m.push(Src::In(*p, src));
            });
            Ok((vec![m], None, format!("{} inputs -> {:?}, axis {ax}", ins.len(), y.shape)))
        }
        Op::StridedSlice { begin_mask, end_mask, ellipsis_mask, new_axis_mask, shrink_axis_mask, offset } => {
            if *ellipsis_mask != 0 || *new_axis_mask != 0 {
                return Err(ctx.unsupported("STRIDED_SLICE with ellipsis_mask or new_axis_mask"));
            }
            let x = ctx.tensor(0)?;
            let y = out_t[0];
            let p = c.param(0)?;
            let begin = c.ints(1, "begin")?;
            let end = c.ints(2, "end")?;
            let st = c.ints(3, "strides")?;
            let rank = x.shape.len();
            let n = begin.len();
            if end.len() != n || st.len() != n || n > rank || rank > 5 {
                return Err(ctx.err(format!("begin/end/strides lengths {}/{}/{} do not fit rank {rank}", n, end.len(), st.len())));
            }
            // StridedSlicePadIndices
            let pad = rank - n;
            let mut b = vec![0i64; rank];
            let mut e = vec![1i64; rank];
            let mut s = vec![1i64; rank];
            b[pad..].copy_from_slice(&begin);
            e[pad..].copy_from_slice(&end);
            s[pad..].copy_from_slice(&st);
            let lowbits = (1i64 << pad) - 1;
            let bm = ((*begin_mask as i64) << pad) | lowbits;
            let em = ((*end_mask as i64) << pad) | lowbits;
            let sm = (*shrink_axis_mask as i64) << pad;
            let clamp = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
            let mut coords: Vec<Vec<usize>> = Vec::new();
            let mut out_shape = Vec::new();
            for d in 0..rank {
                let size = x.shape[d] as i64;
                let stride = s[d];
                if stride == 0 {
                    return Err(ctx.err("STRIDED_SLICE stride 0"));
                }
                // StridedSliceStartForAxis
                let mut start = b[d];
                if start < 0 {
                    start += size;
                }
                start = if stride > 0 { clamp(start, 0, size) } else { clamp(start, -1, size - 1) };
                if bm & (1 << d) != 0 {
                    start = if stride > 0 { 0 } else { size - 1 };
                }
                // StridedSliceEndForAxis
                let shrink = sm & (1 << d) != 0;
                let stop = if shrink {
                    if start >= size {
                        start
                    } else {
                        start + 1
                    }
                } else {
                    let mut en = e[d];
                    if *offset {
                        en += start;
                    }
                    if en < 0 {
                        en += size;
                    }
                    en = if stride > 0 { clamp(en, 0, size) } else { clamp(en, -1, size - 1) };
                    if em & (1 << d) != 0 {
                        en = if stride > 0 { size } else { -1 };
                    }
                    en
                };
                let mut v = Vec::new();
                let mut i = start;
                while if stride > 0 { i < stop } else { i > stop } {
                    if i < 0 || i >= size {
                        return Err(ctx.err(format!("STRIDED_SLICE index {i} out of range on axis {d}")));
                    }
                    v.push(i as usize);
                    i += stride;
                }
                if !shrink {
                    out_shape.push(v.len());
                }
                coords.push(v);
            }
            let cnt: Vec<usize> = coords.iter().map(|v| v.len()).collect();
            let ne: usize = cnt.iter().product();
            let out_eff: Vec<usize> = out_shape.clone();
            if ne != y.elems() || out_eff.iter().product::<usize>() != y.elems() {
                return Err(ctx.err(format!("STRIDED_SLICE gives shape {:?}, output has {:?}", out_shape, y.shape)));
            }
            let xs = strides(&x.shape);
            let mut m = Vec::with_capacity(ne);
            for_each_index(&cnt, |idx| {
                let src: usize = (0..rank).map(|d| coords[d][idx[d]] * xs[d]).sum();
                m.push(Src::In(p, src));
            });
            Ok((vec![m], None, format!("{:?} -> {:?}, begin {:?} end {:?} strides {:?}", x.shape, y.shape, begin, end, st)))
        }
        Op::Transpose => {
            let x = ctx.tensor(0)?;
            let y = out_t[0];
            let p = c.param(0)?;
            let perm = c.ints(1, "perm")?;
            let rank = x.shape.len();
            let mut seen = vec![false; rank];
            if perm.len() != rank || y.shape.len() != rank {
                return Err(ctx.err(format!("perm {:?} does not fit input shape {:?}", perm, x.shape)));
            }
            let mut pu = Vec::new();
            for (i, &a) in perm.iter().enumerate() {
                let a = norm_axis(ctx, a, rank)?;
                if seen[a] || y.shape[i] != x.shape[a] {
                    return Err(ctx.err(format!("perm {:?} with input {:?} does not give output {:?}", perm, x.shape, y.shape)));
                }
                seen[a] = true;
                pu.push(a);
            }
            let xs = strides(&x.shape);
            let mut m = Vec::with_capacity(y.elems());
            for_each_index(&y.shape, |idx| {
                let src: usize = (0..rank).map(|i| idx[i] * xs[pu[i]]).sum();
                m.push(Src::In(p, src));
            });
            Ok((vec![m], None, format!("{:?} -> {:?}, perm {:?}", x.shape, y.shape, pu)))
        }
        Op::ResizeNearestNeighbor { align_corners, half_pixel_centers } => {
            let x = ctx.tensor(0)?;
            let y = out_t[0];
            let p = c.param(0)?;
            let size = c.ints(1, "size")?;
            if x.shape.len() != 4 || y.shape.len() != 4 || size.len() != 2 {
                return Err(ctx.err("RESIZE_NEAREST_NEIGHBOR needs 4-D input and output and a 2-element size"));
            }
            if size[0] != y.shape[1] as i64 || size[1] != y.shape[2] as i64 || x.shape[0] != y.shape[0] || x.shape[3] != y.shape[3] {
                return Err(ctx.err(format!("size {:?} with input {:?} does not give output {:?}", size, x.shape, y.shape)));
            }
            let xs = strides(&x.shape);
            let mut m = Vec::with_capacity(y.elems());
            for_each_index(&y.shape, |idx| {
                let iy = nearest(idx[1], x.shape[1], y.shape[1], *align_corners, *half_pixel_centers);
                let ix = nearest(idx[2], x.shape[2], y.shape[2], *align_corners, *half_pixel_centers);
                m.push(Src::In(p, idx[0] * xs[0] + iy * xs[1] + ix * xs[2] + idx[3]));
            });
            Ok((
                vec![m],
                None,
                format!("{:?} -> {:?}, align_corners {}, half_pixel_centers {}", x.shape, y.shape, align_corners, half_pixel_centers),
            ))
        }
        Op::Split { .. } | Op::SplitV { .. } => {
            let (xi, x, ax, sizes) = if matches!(node.op, Op::Split { .. }) {
                let x = ctx.tensor(1)?;
                let a = c.ints(0, "axis")?;
                let ax = norm_axis(ctx, *a.first().ok_or_else(|| ctx.err("empty axis"))?, x.shape.len())?;
                if nout == 0 || x.shape[ax] % nout != 0 {
                    return Err(ctx.err(format!("axis size {} is not divisible by {nout}", x.shape[ax])));
                }
                (1, x, ax, vec![x.shape[ax] / nout; nout])
            } else {
                let x = ctx.tensor(0)?;
                let a = c.ints(2, "axis")?;
                let ax = norm_axis(ctx, *a.first().ok_or_else(|| ctx.err("empty axis"))?, x.shape.len())?;
                let ss = c.ints(1, "size_splits")?;
                if ss.len() != nout {
                    return Err(ctx.err(format!("{} size_splits for {nout} outputs", ss.len())));
                }
                let known: i64 = ss.iter().filter(|&&v| v >= 0).sum();
                let neg = ss.iter().filter(|&&v| v < 0).count();
                if neg > 1 || known > x.shape[ax] as i64 {
                    return Err(ctx.err(format!("size_splits {:?} do not fit axis size {}", ss, x.shape[ax])));
                }
                let sizes: Vec<usize> = ss.iter().map(|&v| if v < 0 { (x.shape[ax] as i64 - known) as usize } else { v as usize }).collect();
                (0, x, ax, sizes)
            };
            let p = c.param(xi)?;
            if sizes.iter().sum::<usize>() != x.shape[ax] {
                return Err(ctx.err(format!("split sizes {:?} do not sum to axis size {}", sizes, x.shape[ax])));
            }
            let xs = strides(&x.shape);
            let mut res = Vec::new();
            let mut off = 0usize;
            for (o, &sz) in sizes.iter().enumerate() {
                let mut shp = x.shape.clone();
                shp[ax] = sz;
                if out_t[o].elems() != shp.iter().product::<usize>() {
                    return Err(ctx.err(format!("output {o} shape {:?}, expected {:?}", out_t[o].shape, shp)));
                }
                let mut m = Vec::new();
                for_each_index(&shp, |idx| {
                    let src: usize = (0..shp.len()).map(|d| if d == ax { (idx[d] + off) * xs[d] } else { idx[d] * xs[d] }).sum();
                    m.push(Src::In(p, src));
                });
                res.push(m);
                off += sz;
            }
            Ok((res, None, format!("{:?} -> {} outputs on axis {ax}, sizes {:?}", x.shape, nout, sizes)))
        }
        Op::Pack { axis, .. } => {
            let y = out_t[0];
            let k = node.inputs.len();
            let x0 = ctx.tensor(0)?;
            let ax = norm_axis(ctx, *axis as i64, x0.shape.len() + 1)?;
            let mut shp = x0.shape.clone();
            shp.insert(ax, k);
            if shp.iter().product::<usize>() != y.elems() {
                return Err(ctx.err(format!("PACK gives {:?}, output has {:?}", shp, y.shape)));
            }
            let mut ps = Vec::new();
            for i in 0..k {
                if ctx.tensor(i)?.shape != x0.shape {
                    return Err(ctx.err("PACK inputs have different shapes"));
                }
                ps.push(c.param(i)?);
            }
            let xs = strides(&x0.shape);
            let mut m = Vec::new();
            for_each_index(&shp, |idx| {
                let mut src = 0;
                let mut j = 0;
                for d in 0..shp.len() {
                    if d == ax {
                        continue;
                    }
                    src += idx[d] * xs[j];
                    j += 1;
                }
                m.push(Src::In(ps[idx[ax]], src));
            });
            Ok((vec![m], None, format!("{k} x {:?} -> {:?}, axis {ax}", x0.shape, y.shape)))
        }
        Op::Unpack { axis, .. } => {
            let x = ctx.tensor(0)?;
            let p = c.param(0)?;
            let ax = norm_axis(ctx, *axis as i64, x.shape.len())?;
            if x.shape[ax] != nout {
                return Err(ctx.err(format!("UNPACK of axis size {} into {nout} outputs", x.shape[ax])));
            }
            let mut shp = x.shape.clone();
            shp.remove(ax);
            let xs = strides(&x.shape);
            let mut res = Vec::new();
            for o in 0..nout {
                if out_t[o].elems() != shp.iter().product::<usize>() {
                    return Err(ctx.err(format!("output {o} shape {:?}, expected {:?}", out_t[o].shape, shp)));
                }
                let mut m = Vec::new();
                for_each_index(&shp, |idx| {
                    let mut src = o * xs[ax];
                    let mut j = 0;
                    for d in 0..x.shape.len() {
                        if d == ax {
                            continue;
                        }
                        src += idx[j] * xs[d];
                        j += 1;
                    }
                    m.push(Src::In(p, src));
                });
                res.push(m);
            }
            Ok((res, None, format!("{:?} -> {nout} x {:?}, axis {ax}", x.shape, shp)))
        }
        other => Err(ctx.unsupported(format!("operator {} is not a data-movement operator", other.name()))),
    }
}

/// Compresses one output's map into segments per source (`None` = padding).
fn segments(m: &[Src]) -> Vec<(Option<usize>, Vec<Seg>)> {
    // Runs: consecutive dst with the same source and a constant source stride.
    struct Run {
        key: Option<usize>,
        dst0: i64,
        src0: i64,
        n: i64,
        st: i64,
    }
    let mut runs: Vec<Run> = Vec::new();
    for (d, s) in m.iter().enumerate() {
        let (key, si) = match *s {
            Src::In(k, i) => (Some(k), i as i64),
            Src::Pad => (None, 0),
        };
        if let Some(r) = runs.last_mut() {
            if r.key == key && r.dst0 + r.n == d as i64 {
                if key.is_none() {
                    r.n += 1;
                    continue;
                }
                if r.n == 1 {
                    r.st = si - r.src0;
                    r.n = 2;
                    continue;
                }
                if r.src0 + r.n * r.st == si {
                    r.n += 1;
                    continue;
                }
            }
        }
        runs.push(Run { key, dst0: d as i64, src0: si, n: 1, st: 1 });
    }
    let mut keys: Vec<Option<usize>> = runs.iter().map(|r| r.key).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        let mut segs: Vec<Seg> = Vec::new();
        for r in runs.iter().filter(|r| r.key == key) {
            if let Some(g) = segs.last_mut() {
                if g.n_inner == r.n && (g.src_is == r.st || r.n == 1) {
                    let (dd, sd) = (r.dst0 - g.dst0, r.src0 - g.src0);
                    if g.n_outer == 1 && dd > 0 {
                        g.dst_os = dd;
                        g.src_os = sd;
                        g.n_outer = 2;
                        continue;
                    }
                    if g.n_outer > 1 && dd == g.n_outer * g.dst_os && (key.is_none() || sd == g.n_outer * g.src_os) {
                        g.n_outer += 1;
                        continue;
                    }
                }
            }
            segs.push(Seg { dst0: r.dst0, n_outer: 1, dst_os: 0, src0: r.src0, src_os: 0, n_inner: r.n, src_is: if r.n == 1 { 1 } else { r.st } });
        }
        out.push((key, segs));
    }
    out
}

/// `base + o*a + i*b` with usize arithmetic that never goes below zero (positive terms first).
fn index_expr(base: i64, a: i64, b: i64, o: &TokenStream, i: &TokenStream) -> TokenStream {
    let mut pos = vec![lit::usize(base as usize)];
    let mut neg = Vec::new();
    for (c, v) in [(a, o), (b, i)] {
        if c == 0 {
            continue;
        }
        let term = if c.abs() == 1 { quote!(#v) } else { let l = lit::usize(c.unsigned_abs() as usize); quote!(#v * #l) };
        if c > 0 {
            pos.push(term);
        } else {
            neg.push(term);
        }
    }
    if base == 0 && pos.len() > 1 {
        pos.remove(0);
    }
    let mut e = quote!(#(#pos)+*);
    for n in neg {
        e = quote!(#e - #n);
    }
    e
}

/// Emits the copy of one output.
fn emit_output(ctx: &KernelCtx, o: usize, m: &[Src], f32: bool, pad: &Option<TokenStream>, statics: &mut TokenStream, const_bytes: &mut usize) -> Result<TokenStream> {
    let y = format_ident!("y{}", o);
    let (get, set) = if f32 { (quote!(get_f32), quote!(set_f32)) } else { (quote!(get_i8), quote!(set_i8)) };
    let segs = segments(m);
    let total: usize = segs.iter().map(|(_, s)| s.len()).sum();
    let mut body = TokenStream::new();
    for (key, ss) in &segs {
        let val = |src: TokenStream| -> Result<TokenStream> {
            match key {
                Some(k) => {
                    let x = format_ident!("x{}", k);
                    Ok(quote!(#x.#get(#src)))
                }
                None => pad.clone().ok_or_else(|| ctx.err("internal error: padding without a pad value")),
            }
        };
        if total > 24 && ss.len() > 4 {
            // Static segment table, looped over at run time.
            let id = ctx.ident(&format!("SEG{}_{}", o, key.map(|k| k.to_string()).unwrap_or_else(|| "PAD".into())));
            let n = lit::usize(ss.len());
            let rows: Vec<TokenStream> = ss
                .iter()
                .map(|s| {
                    let v = [s.dst0, s.n_outer, s.dst_os, s.src0, s.src_os, s.n_inner, s.src_is].map(|v| lit::i32(v as i32));
                    quote!([#(#v),*])
                })
                .collect();
            *const_bytes += ss.len() * 28;
            statics.extend(quote! {
                /// Copy segments: dst0, n_outer, dst_outer_stride, src0, src_outer_stride, n_inner, src_inner_stride.
                static #id: [[i32; 7]; #n] = [#(#rows),*];
            });
            let v = val(quote!((s[3] + o * s[4] + i * s[6]) as usize))?;
            body.extend(quote! {
                for s in #id.iter() {
                    for o in 0..s[1] {
                        for i in 0..s[5] {
                            #y.#set((s[0] + o * s[2] + i) as usize, #v);
                        }
                    }
                }
            });
            continue;
        }
        for s in ss {
            let (oi, ii) = (quote!(o), quote!(i));
            let (a_o, a_i) = (if s.n_outer > 1 { s.src_os } else { 0 }, if s.n_inner > 1 { s.src_is } else { 0 });
            let d_o = if s.n_outer > 1 { s.dst_os } else { 0 };
            let dst = index_expr(s.dst0, d_o, if s.n_inner > 1 { 1 } else { 0 }, &oi, &ii);
            let v = val(index_expr(s.src0, a_o, a_i, &oi, &ii))?;
            let mut st = quote!(#y.#set(#dst, #v););
            if s.n_inner > 1 {
                let n = lit::usize(s.n_inner as usize);
                st = quote!(for i in 0..#n { #st });
            }
            if s.n_outer > 1 {
                let n = lit::usize(s.n_outer as usize);
                st = quote!(for o in 0..#n { #st });
            }
            body.extend(st);
        }
    }
    Ok(body)
}

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    // Data types: every data input and output int8 (same quantization) or float32.
    let node = ctx.node;
    let y0 = ctx.out(0)?;
    let dt = y0.dtype;
    if dt != DType::I8 && dt != DType::F32 {
        return Err(ctx.unsupported(format!("{} on {dt}; supported: int8, float32", node.op.name())));
    }
    let data_inputs: Vec<usize> = match &node.op {
        Op::Concatenation { .. } | Op::Pack { .. } => (0..node.inputs.len()).collect(),
        Op::Split { .. } => vec![1],
        _ => vec![0],
    };
    let mut tensors: Vec<&Tensor> = Vec::new();
    for &i in &data_inputs {
        tensors.push(ctx.tensor(i)?);
    }
    for o in 0..node.outputs.len() {
        tensors.push(ctx.out(o)?);
    }
    for t in &tensors {
        if t.dtype != dt {
            return Err(ctx.unsupported(format!("{} with mixed types {} and {dt}", node.op.name(), t.dtype)));
        }
        if dt == DType::I8 {
            let (a, b) = (t.q().ok_or_else(|| ctx.err("int8 tensor has no quantization"))?, y0.q().ok_or_else(|| ctx.err("int8 output has no quantization"))?);
            if !a.same_as(b) {
                return Err(ctx.unsupported(format!(
                    "int8 {} with operands of different quantization (scale {} zero point {} vs scale {} zero point {}); TFLM requires equal quantization",
                    node.op.name(),
                    a.scale(),
                    a.zp(),
                    b.scale(),
                    b.zp()
                )));
            }
        }
    }
    let (ms, pad, doc) = maps(ctx)?;
    if let Op::ResizeNearestNeighbor { align_corners, half_pixel_centers } = node.op {
        // Row and column source tables, then loops (validated by `maps`).
        let x = ctx.tensor(0)?;
        let (ih, iw, c) = (x.shape[1], x.shape[2], x.shape[3]);
        let (b, oh, ow) = (y0.shape[0], y0.shape[1], y0.shape[2]);
        let rows: Vec<i32> = (0..oh).map(|v| (nearest(v, ih, oh, align_corners, half_pixel_centers) * iw * c) as i32).collect();
        let cols: Vec<i32> = (0..ow).map(|v| (nearest(v, iw, ow, align_corners, half_pixel_centers) * c) as i32).collect();
        let (rid, cid) = (ctx.ident("ROWS"), ctx.ident("COLS"));
        let (rt, ct) = (lit::i32s(&rows), lit::i32s(&cols));
        let (ohl, owl, cl, bl) = (lit::usize(oh), lit::usize(ow), lit::usize(c), lit::usize(b));
        let ibs = lit::usize(ih * iw * c);
        let (get, set) = if dt == DType::F32 { (quote!(get_f32), quote!(set_f32)) } else { (quote!(get_i8), quote!(set_i8)) };
        let statics = quote! {
            /// Source offset of every output row.
            static #rid: [i32; #ohl] = #rt;
            /// Source offset of every output column.
            static #cid: [i32; #owl] = #ct;
        };
        let body = quote! {
            let mut d = 0usize;
            for b in 0..#bl {
                for r in #rid.iter() {
                    for q in #cid.iter() {
                        let s = b * #ibs + (*r + *q) as usize;
                        for k in 0..#cl {
                            y0.#set(d, x0.#get(s + k));
                            d += 1;
                        }
                    }
                }
            }
        };
        return Ok(Kernel { statics, body, doc: format!("{doc}, {dt}"), macs: 0, const_bytes: 4 * (oh + ow) });
    }
    let mut statics = TokenStream::new();
    let mut body = TokenStream::new();
    let mut const_bytes = 0;
    for (o, m) in ms.iter().enumerate() {
        let n = ctx.out(o)?.elems();
        if m.len() != n {
            return Err(ctx.err(format!("output {o} has {n} elements, the operator produces {}", m.len())));
        }
        body.extend(emit_output(ctx, o, m, dt == DType::F32, &pad, &mut statics, &mut const_bytes)?);
    }
    Ok(Kernel { statics, body, doc: format!("{doc}, {dt}"), macs: 0, const_bytes })
}
