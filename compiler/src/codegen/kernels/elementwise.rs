//! Element-wise and reduction operators: ADD/SUB/MUL with broadcasting, MINIMUM, MAXIMUM, LEAKY_RELU, HARD_SWISH, PRELU, MEAN, ARG_MAX/ARG_MIN, LOG_SOFTMAX.
//!
//! int8 arithmetic follows TFLM's reference kernels exactly; broadcast index mappings are
//! computed at compile time as constant strides.

use super::super::{lit, Kernel, KernelCtx};
use super::{const_i32, quantize_multiplier};
use crate::error::Result;
use crate::ir::{Act, DType, Op, Quant, Tensor};
use microgen_rt::q;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// Operators this file generates code for, as (name, data types).
pub const SUPPORTED: &[(&str, &str)] = &[
    ("ADD / SUB / MUL", "int8, float32 (with broadcasting)"),
    ("MINIMUM / MAXIMUM", "int8, float32 (with broadcasting)"),
    ("LEAKY_RELU", "int8, float32"),
    ("HARD_SWISH", "int8, float32"),
    ("PRELU", "int8, float32 (broadcast alpha)"),
    ("MEAN", "int8, float32 (constant axes)"),
    ("ARG_MAX / ARG_MIN", "int8, float32 inputs; int32/int64 output (constant axis)"),
    ("LOG_SOFTMAX", "int8, float32"),
];

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    match &ctx.node.op {
        Op::Add { act } | Op::Sub { act } | Op::Mul { act } => binary(ctx, *act),
        Op::Minimum | Op::Maximum => binary(ctx, Act::None),
        Op::Prelu => binary(ctx, Act::None),
        Op::LeakyRelu { alpha } => leaky_or_hswish(ctx, Some(*alpha)),
        Op::HardSwish => leaky_or_hswish(ctx, None),
        Op::Mean { keep_dims } => mean(ctx, *keep_dims),
        Op::ArgMax | Op::ArgMin => arg_min_max(ctx, matches!(ctx.node.op, Op::ArgMax)),
        Op::LogSoftmax => log_softmax(ctx),
        _ => Err(ctx.unsupported(format!(
            "operator {} is not supported yet; supported operators: {}",
            ctx.node.op.name(),
            super::supported_list()
        ))),
    }
}

fn qof<'a>(ctx: &KernelCtx, t: &'a Tensor) -> Result<&'a Quant> {
    let q = t.q().ok_or_else(|| ctx.err(format!("int8 tensor {} has no quantization", t.index)))?;
    if q.scale.is_empty() {
        return Err(ctx.err(format!("int8 tensor {} has no quantization scale", t.index)));
    }
    if q.per_channel() {
        return Err(ctx.unsupported(format!("tensor {} is quantized per channel; only per-tensor is supported here", t.index)));
    }
    if !(q.scale() > 0.0 && q.scale().is_finite()) {
        return Err(ctx.err(format!("tensor {} has invalid scale {}", t.index, q.scale())));
    }
    Ok(q)
}

/// Operand expression: constants from flash, others the next `xK` parameter.
struct Operands<'c, 'a> {
    ctx: &'c KernelCtx<'a>,
    k: usize,
    statics: TokenStream,
    const_bytes: usize,
}

impl Operands<'_, '_> {
    fn get(&mut self, t: &Tensor, name: &str) -> TokenStream {
        if let Some(d) = &t.data {
            let id = self.ctx.ident(name);
            let nb = lit::usize(d.len());
            let lb = lit::bytes(d);
            self.statics.extend(quote!(static #id: [u8; #nb] = #lb;));
            self.const_bytes += d.len();
            quote!(#id[..])
        } else {
            let id = format_ident!("x{}", self.k);
            self.k += 1;
            quote!(#id[..])
        }
    }
}

/// NumPy broadcast: strides of `s` (elements) mapped onto the output dims `o` (both
/// right-aligned); `None` when not broadcastable.
fn bcast_strides(s: &[usize], o: &[usize]) -> Option<Vec<usize>> {
    if s.len() > o.len() {
        // Allow leading 1s.
        let extra = s.len() - o.len();
        if s[..extra].iter().any(|&d| d != 1) {
            return None;
        }
        return bcast_strides(&s[extra..], o);
    }
    let pad = o.len() - s.len();
    let mut full = vec![1usize; pad];
    full.extend_from_slice(s);
    let mut strides = vec![0usize; o.len()];
    let mut acc = 1usize;
    for d in (0..o.len()).rev() {
        if full[d] == o[d] {
            strides[d] = if full[d] == 1 { 0 } else { acc };
        } else if full[d] == 1 {
            strides[d] = 0;
        } else {
            return None;
        }
        acc *= full[d];
    }
    Some(strides)
}

/// Loop header computing `ia`, `ib` for each output index `i`.
fn bcast_loop(ctx: &KernelCtx, a: &Tensor, b: &Tensor, y: &Tensor, inner: TokenStream) -> Result<(TokenStream, TokenStream)> {
    let o = &y.shape;
    let sa = bcast_strides(&a.shape, o).ok_or_else(|| ctx.err(format!("shapes {:?} and {:?} do not broadcast to {:?}", a.shape, b.shape, o)))?;
    let sb = bcast_strides(&b.shape, o).ok_or_else(|| ctx.err(format!("shapes {:?} and {:?} do not broadcast to {:?}", a.shape, b.shape, o)))?;
    // Check the output shape is the broadcast shape.
    let ra = a.shape.len().max(b.shape.len()).max(o.len());
    let ext = |s: &[usize]| -> Vec<usize> {
        let mut v = vec![1usize; ra - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (ea, eb, eo) = (ext(&a.shape), ext(&b.shape), ext(o));
    for d in 0..ra {
        if eo[d] != ea[d].max(eb[d]) && !(ea[d] == 0 || eb[d] == 0) {
            return Err(ctx.err(format!("output shape {:?} is not the broadcast of {:?} and {:?}", o, a.shape, b.shape)));
        }
    }
    let n = y.elems();
    let r = o.len();
    let same_a = a.elems() == n;
    let same_b = b.elems() == n;
    let n_l = lit::usize(n);
    if r == 0 || (same_a && same_b) {
        return Ok((quote!(), quote! { for i in 0..#n_l { let ia = i; let ib = i; #inner } }));
    }
    let od = ctx.ident("OD");
    let sa_id = ctx.ident("SA");
    let sb_id = ctx.ident("SB");
    let rl = lit::usize(r);
    let odv: Vec<TokenStream> = o.iter().map(|&v| lit::usize(v)).collect();
    let sav: Vec<TokenStream> = sa.iter().map(|&v| lit::usize(v)).collect();
    let sbv: Vec<TokenStream> = sb.iter().map(|&v| lit::usize(v)).collect();
    let statics = quote! {
        static #od: [usize; #rl] = [#(#odv),*];
        static #sa_id: [usize; #rl] = [#(#sav),*];
        static #sb_id: [usize; #rl] = [#(#sbv),*];
    };
    let body = quote! {
        for i in 0..#n_l {
            let mut r = i;
            let mut ia = 0usize;
            let mut ib = 0usize;
            let mut d = #rl;
            while d > 0 {
                d -= 1;
                let c = r % #od[d];
                r /= #od[d];
                ia += c * #sa_id[d];
                ib += c * #sb_id[d];
            }
            #inner
        }
    };
    Ok((statics, body))
}

fn binary(ctx: &KernelCtx, act: Act) -> Result<Kernel> {
    let op = &ctx.node.op;
    let a = ctx.tensor(0)?;
    let b = ctx.tensor(1)?;
    let y = ctx.out(0)?;
    let mut ops = Operands { ctx, k: 0, statics: quote!(), const_bytes: 0 };
    let ea = ops.get(a, "A");
    let eb = ops.get(b, "B");
    let _n = y.elems();
    let inner;
    let mut note = String::new();
    match (a.dtype, b.dtype, y.dtype) {
        (DType::I8, DType::I8, DType::I8) => {
            let (aq, bq, yq) = (qof(ctx, a)?, qof(ctx, b)?, qof(ctx, y)?);
            let (lo_i, hi_i) = act.range_q(yq.scale(), yq.zp(), -128, 127);
            let (lo, hi) = (lit::i32(lo_i), lit::i32(hi_i));
            match op {
                Op::Add { .. } | Op::Sub { .. } => {
                    let params = super::add::params(aq, bq, yq, lo_i, hi_i);
                    let microgen_rt::mac::AddI8 { m1, s1, m2, s2, mo, so, .. } = params;
                    // One linear form where it equals TFLM's arithmetic on all 65,536 input
                    // pairs (`add_linear` / `sub_linear` check every pair), as in `add.rs`.
                    let lin = if matches!(op, Op::Add { .. }) { microgen_rt::mac::add_linear(&params) } else { microgen_rt::mac::sub_linear(&params) };
                    if let Some(l) = lin {
                        let (sum, out, form) = super::add::linear_out(l, quote!(a.get_i8(ia)), quote!(b.get_i8(ib)), lo_i, hi_i);
                        note = format!("; {form}");
                        inner = quote! {
                            #sum
                            y0.set_i8(i, #out);
                        };
                    } else {
                        let (o1, o2, oz) = (lit::i32(-aq.zp()), lit::i32(-bq.zp()), lit::i32(yq.zp()));
                        let (m1, s1, m2, s2, mo, so) = (lit::i32(m1), lit::i32(s1), lit::i32(m2), lit::i32(s2), lit::i32(mo), lit::i32(so));
                        let comb = if matches!(op, Op::Add { .. }) { quote!(sa.wrapping_add(sb)) } else { quote!(sa.wrapping_sub(sb)) };
                        inner = quote! {
                            let va = (a.get_i8(ia) as i32 + #o1) << 20;
                            let vb = (b.get_i8(ib) as i32 + #o2) << 20;
                            let sa = mbqm(va, #m1, #s1);
                            let sb = mbqm(vb, #m2, #s2);
                            let s = #comb;
                            let v = mbqm(s, #mo, #so) + #oz;
                            y0.set_i8(i, clamp(v, #lo, #hi) as i8);
                        };
                    }
                }
                Op::Mul { .. } => {
                    let (m, s) = quantize_multiplier(aq.scale() as f64 * bq.scale() as f64 / yq.scale() as f64);
                    let (o1, o2, oz) = (lit::i32(-aq.zp()), lit::i32(-bq.zp()), lit::i32(yq.zp()));
                    let (m, s) = (lit::i32(m), lit::i32(s));
                    inner = quote! {
                        let va = a.get_i8(ia) as i32 + #o1;
                        let vb = b.get_i8(ib) as i32 + #o2;
                        let v = mbqm(va * vb, #m, #s) + #oz;
                        y0.set_i8(i, clamp(v, #lo, #hi) as i8);
                    };
                }
                Op::Minimum | Op::Maximum => {
                    // TFLM compares the raw int8 values (no requantization).
                    let f = if matches!(op, Op::Maximum) { quote!(if va > vb { va } else { vb }) } else { quote!(if va < vb { va } else { vb }) };
                    inner = quote! {
                        let va = a.get_i8(ia);
                        let vb = b.get_i8(ib);
                        y0.set_i8(i, #f);
                    };
                }
                Op::Prelu => {
                    let (m1, s1) = quantize_multiplier(aq.scale() as f64 / yq.scale() as f64);
                    let (m2, s2) = quantize_multiplier(aq.scale() as f64 * bq.scale() as f64 / yq.scale() as f64);
                    let (o1, o2, oz) = (lit::i32(-aq.zp()), lit::i32(-bq.zp()), lit::i32(yq.zp()));
                    let (m1, s1, m2, s2) = (lit::i32(m1), lit::i32(s1), lit::i32(m2), lit::i32(s2));
                    inner = quote! {
                        let va = a.get_i8(ia) as i32 + #o1;
                        let v = if va >= 0 {
                            mbqm(va, #m1, #s1)
                        } else {
                            let al = b.get_i8(ib) as i32 + #o2;
                            mbqm(va * al, #m2, #s2)
                        } + #oz;
                        y0.set_i8(i, clamp(v, -128, 127) as i8);
                    };
                }
                _ => return Err(ctx.unsupported("operator")),
            }
        }
        (DType::F32, DType::F32, DType::F32) => {
            let (lo, hi) = act.range_f32();
            let clampf = if act == Act::None { quote!(v) } else {
                let (lo, hi) = (lit::f32(lo), lit::f32(hi));
                quote!(v.max(#lo).min(#hi))
            };
            let f = match op {
                Op::Add { .. } => quote!(va + vb),
                Op::Sub { .. } => quote!(va - vb),
                Op::Mul { .. } => quote!(va * vb),
                Op::Maximum => quote!(if va > vb { va } else { vb }),
                Op::Minimum => quote!(if va < vb { va } else { vb }),
                Op::Prelu => quote!(if va >= 0.0 { va } else { va * vb }),
                _ => return Err(ctx.unsupported("operator")),
            };
            inner = quote! {
                let va = a.get_f32(ia);
                let vb = b.get_f32(ib);
                let v = #f;
                y0.set_f32(i, #clampf);
            };
        }
        (p, q2, r) => return Err(ctx.unsupported(format!("{} of {p} and {q2} to {r}; supported: int8, float32", op.name()))),
    }
    let inner = quote! { #inner };
    let (st, lp) = bcast_loop(ctx, a, b, y, inner)?;
    let mut statics = ops.statics;
    statics.extend(st);
    let body = quote! {
        #[allow(unused_imports)]
        use ::microgen_rt::q::{clamp, mbqm};
        let a = &#ea;
        let b = &#eb;
        #lp
    };
    Ok(Kernel {
        statics,
        body,
        doc: format!("{:?} with {:?} -> {:?}, {}, activation {}{note}", a.shape, b.shape, y.shape, y.dtype, act.name()),
        macs: 0,
        const_bytes: ops.const_bytes,
    })
}

/// int16 gemmlowp `SaturatingRoundingDoublingHighMul`.
fn srdhm16(a: i16, b: i16) -> i16 {
    if a == b && a == i16::MIN {
        return i16::MAX;
    }
    let ab = a as i32 * b as i32;
    let nudge: i32 = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    ((ab + nudge) / (1 << 15)) as i16
}

/// TFLite `SaturatingDoublingHighMul` (int16, truncating).
fn sdhm16(a: i16, b: i16) -> i16 {
    if a == b && a == i16::MIN {
        return i16::MAX;
    }
    let ab = a as i32 * b as i32;
    (ab / (1 << 15)) as i16
}

fn sat_lshift16(v: i16, amount: i32) -> i16 {
    let r = (v as i64) * (1i64 << amount);
    r.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

fn rdivpot16(x: i16, e: i32) -> i16 {
    let x = x as i32;
    let mask: i32 = (1i32 << e) - 1;
    let remainder = x & mask;
    let threshold = (mask >> 1) + if x < 0 { 1 } else { 0 };
    ((x >> e) + if remainder > threshold { 1 } else { 0 }) as i16
}

fn down_scale_16(m: i32) -> i16 {
    if m >= i32::MAX - (1 << 15) {
        return i16::MAX;
    }
    ((m + (1 << 15)) >> 16) as i16
}

fn leaky_or_hswish(ctx: &KernelCtx, alpha: Option<f32>) -> Result<Kernel> {
    let x = ctx.tensor(0)?;
    let y = ctx.out(0)?;
    if x.elems() != y.elems() {
        return Err(ctx.err(format!("input shape {:?} and output shape {:?} differ", x.shape, y.shape)));
    }
    if x.is_const() {
        return Err(ctx.unsupported("constant input"));
    }
    let n = x.elems();
    let n_l = lit::usize(n);
    match (x.dtype, y.dtype) {
        (DType::I8, DType::I8) => {
            let (xq, yq) = (qof(ctx, x)?, qof(ctx, y)?);
            let mut t = [0i8; 256];
            let (xz, yz) = (xq.zp(), yq.zp());
            if let Some(alpha) = alpha {
                let am = (xq.scale() * alpha / yq.scale()) as f64;
                let (ma, sa) = quantize_multiplier(am);
                let im = (xq.scale() / yq.scale()) as f64;
                let (mi, si) = quantize_multiplier(im);
                for v in -128i32..=127 {
                    let iv = v - xz;
                    let o = if iv >= 0 { yz + q::mbqm(iv, mi, si) } else { yz + q::mbqm(iv, ma, sa) };
                    t[v as u8 as usize] = q::clamp(o, -128, 127) as i8;
                }
            } else {
                let hires = (1.0f32 / 128.0f32) * xq.scale();
                let reluish_scale = 3.0f32 / 32768.0f32;
                let om = hires / yq.scale();
                let (om32, oexp) = quantize_multiplier(om as f64);
                let om16 = down_scale_16(om32);
                if oexp > 0 {
                    return Err(ctx.unsupported("HARD_SWISH output multiplier exponent > 0 (TFLM requires <= 0)"));
                }
                let rm = hires / reluish_scale;
                let (rm32, rexp) = quantize_multiplier(rm as f64);
                let rm16 = down_scale_16(rm32);
                for v in -128i32..=127 {
                    let input_value = (v - xz) as i16;
                    let hi_in = (input_value as i32 * (1 << 7)) as i16;
                    let pre_out = srdhm16(hi_in, om16);
                    let mut reluish = hi_in;
                    if rexp > 0 {
                        reluish = sat_lshift16(reluish, rexp - 1);
                    }
                    reluish = srdhm16(reluish, rm16);
                    if rexp > 0 {
                        reluish = sat_lshift16(reluish, 1);
                    }
                    if rexp < 0 {
                        reluish = rdivpot16(reluish, -rexp);
                    }
                    reluish = ((reluish as i32 + (1 << 15)) >> 1) as i16;
                    let pre = sdhm16(reluish, pre_out);
                    let mut ov = rdivpot16(pre, -oexp) as i32;
                    ov += yz;
                    t[v as u8 as usize] = ov.clamp(-128, 127) as i8;
                }
            }
            Ok(super::unary::lut_kernel(ctx, &t, n, &format!("{n} elements, int8, 256-entry table")))
        }
        (DType::F32, DType::F32) => {
            let f = if let Some(alpha) = alpha {
                let al = lit::f32(alpha);
                quote!(if v > 0.0 { v } else { v * #al })
            } else {
                quote!(v * (v + 3.0).max(0.0).min(6.0) / 6.0)
            };
            let body = quote! {
                for i in 0..#n_l {
                    let v = x0.get_f32(i);
                    y0.set_f32(i, #f);
                }
            };
            Ok(Kernel { statics: quote!(), body, doc: format!("{n} elements, float32"), macs: 0, const_bytes: 0 })
        }
        (a, b) => Err(ctx.unsupported(format!("{} from {a} to {b}; supported: int8, float32", ctx.node.op.name()))),
    }
}

fn mean(ctx: &KernelCtx, _keep_dims: bool) -> Result<Kernel> {
    let x = ctx.tensor(0)?;
    let ax = ctx.tensor(1)?;
    let y = ctx.out(0)?;
    if x.is_const() {
        return Err(ctx.unsupported("constant input"));
    }
    if ax.dtype != DType::I32 {
        return Err(ctx.err("MEAN axis must be int32"));
    }
    let axes = const_i32(ax).ok_or_else(|| ctx.unsupported("MEAN with non-constant axes"))?;
    let r = x.shape.len() as i32;
    let mut red = vec![false; x.shape.len()];
    for &a in &axes {
        let a2 = if a < 0 { a + r } else { a };
        if a2 < 0 || a2 >= r {
            return Err(ctx.err(format!("MEAN axis {a} out of range for rank {r}")));
        }
        red[a2 as usize] = true;
    }
    // Output shape (without kept dims) and strides.
    let kept: Vec<usize> = (0..x.shape.len()).filter(|&d| !red[d]).collect();
    let nout: usize = kept.iter().map(|&d| x.shape[d]).product();
    if nout != y.elems() {
        return Err(ctx.err(format!("MEAN output shape {:?} does not match input {:?} reduced over {:?}", y.shape, x.shape, axes)));
    }
    let nin = x.elems();
    let cnt: usize = (0..x.shape.len()).filter(|&d| red[d]).map(|d| x.shape[d]).product();
    if cnt == 0 || nin == 0 {
        return Err(ctx.unsupported("MEAN over an empty tensor"));
    }
    // For every input element, the output index (strides over the input dims).
    let rl = x.shape.len();
    let mut ostr = vec![0usize; rl];
    let mut acc = 1usize;
    for &d in kept.iter().rev() {
        ostr[d] = acc;
        acc *= x.shape[d];
    }
    let id_d = ctx.ident("ID");
    let id_s = ctx.ident("OS");
    let rlt = lit::usize(rl);
    let idv: Vec<TokenStream> = x.shape.iter().map(|&v| lit::usize(v)).collect();
    let osv: Vec<TokenStream> = ostr.iter().map(|&v| lit::usize(v)).collect();
    let statics = quote! {
        static #id_d: [usize; #rlt] = [#(#idv),*];
        static #id_s: [usize; #rlt] = [#(#osv),*];
    };
    let nin_l = lit::usize(nin);
    let nout_l = lit::usize(nout);
    let oidx = quote! {
        let mut r = i;
        let mut o = 0usize;
        let mut d = #rlt;
        while d > 0 {
            d -= 1;
            let c = r % #id_d[d];
            r /= #id_d[d];
            o += c * #id_s[d];
        }
    };
    match (x.dtype, y.dtype) {
        (DType::I8, DType::I8) => {
            let (xq, yq) = (qof(ctx, x)?, qof(ctx, y)?);
            let (mut m, mut s) = quantize_multiplier(xq.scale() as f64 / yq.scale() as f64);
            let n64 = cnt as i64;
            let mut shift = 63 - (n64 as u64).leading_zeros() as i32;
            shift = shift.min(32);
            shift = shift.min(31 + s);
            m = (((m as i64) << shift) / n64) as i32;
            s -= shift;
            let off = (xq.zp() as i64 * n64) as i32;
            let (m, s, off, oz) = (lit::i32(m), lit::i32(s), lit::i32(off), lit::i32(yq.zp()));
            // Reduced dimensions in one contiguous run (a spatial mean of NHWC): plain
            // nested loops instead of an index decomposition per element.
            let first = red.iter().position(|&r| r).unwrap_or(0);
            let last = red.iter().rposition(|&r| r).unwrap_or(0);
            let contiguous = red[first..=last].iter().all(|&r| r);
            let sum = if contiguous {
                let inner: usize = x.shape[last + 1..].iter().product();
                let outer: usize = x.shape[..first].iter().product();
                let (o_l, r_l, i_l) = (lit::usize(outer), lit::usize(cnt), lit::usize(inner));
                quote! {
                    for o in 0..#o_l {
                        let a = &mut acc[o * #i_l..(o + 1) * #i_l];
                        for r in 0..#r_l {
                            let b = (o * #r_l + r) * #i_l;
                            for (i, s) in a.iter_mut().enumerate() {
                                *s = s.wrapping_add(x0.get_i8(b + i) as i32);
                            }
                        }
                    }
                }
            } else {
                quote! {
                    for i in 0..#nin_l {
                        #oidx
                        acc[o] = acc[o].wrapping_add(x0.get_i8(i) as i32);
                    }
                }
            };
            let body = quote! {
                use ::microgen_rt::q::{clamp, mbqm};
                let mut acc = [0i32; #nout_l];
                #sum
                for j in 0..#nout_l {
                    let v = mbqm(acc[j].wrapping_sub(#off), #m, #s) + #oz;
                    y0.set_i8(j, clamp(v, -128, 127) as i8);
                }
            };
            Ok(Kernel { statics, body, doc: format!("{:?} over axes {:?} -> {:?}, int8", x.shape, axes, y.shape), macs: 0, const_bytes: 0 })
        }
        (DType::F32, DType::F32) => {
            let c = lit::f32(cnt as f32);
            let body = quote! {
                let mut acc = [0f32; #nout_l];
                for i in 0..#nin_l {
                    #oidx
                    acc[o] += x0.get_f32(i);
                }
                for j in 0..#nout_l {
                    y0.set_f32(j, acc[j] / #c);
                }
            };
            Ok(Kernel { statics, body, doc: format!("{:?} over axes {:?} -> {:?}, float32", x.shape, axes, y.shape), macs: 0, const_bytes: 0 })
        }
        (a, b) => Err(ctx.unsupported(format!("MEAN from {a} to {b}; supported: int8, float32"))),
    }
}

fn arg_min_max(ctx: &KernelCtx, is_max: bool) -> Result<Kernel> {
    let x = ctx.tensor(0)?;
    let ax = ctx.tensor(1)?;
    let y = ctx.out(0)?;
    if x.is_const() {
        return Err(ctx.unsupported("constant input"));
    }
    let axis = match ax.dtype {
        DType::I32 => const_i32(ax).and_then(|v| v.first().copied()).map(|v| v as i64),
        DType::I64 => ax.data.as_ref().filter(|d| d.len() >= 8).map(|d| i64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])),
        _ => None,
    }
    .ok_or_else(|| ctx.unsupported("ARG_MAX/ARG_MIN axis must be a constant int32/int64"))?;
    let r = x.shape.len() as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        return Err(ctx.err(format!("axis {axis} out of range for rank {r}")));
    }
    let a = a as usize;
    let outer: usize = x.shape[..a].iter().product();
    let axis_size = x.shape[a];
    let inner: usize = x.shape[a + 1..].iter().product();
    if axis_size == 0 || outer * inner != y.elems() {
        return Err(ctx.err(format!("output shape {:?} does not match input {:?} reduced over axis {a}", y.shape, x.shape)));
    }
    let get = match x.dtype {
        DType::I8 => quote!(get_i8),
        DType::F32 => quote!(get_f32),
        d => return Err(ctx.unsupported(format!("input type {d}; supported: int8, float32"))),
    };
    let store = match y.dtype {
        DType::I32 => quote!(y0.set_i32(o, best as i32);),
        DType::I64 => quote!(y0.set_i64(o, best as i64);),
        d => return Err(ctx.unsupported(format!("output type {d}; supported: int32, int64"))),
    };
    let cmp = if is_max { quote!(>) } else { quote!(<) };
    let (ol, al, il) = (lit::usize(outer), lit::usize(axis_size), lit::usize(inner));
    let body = quote! {
        for ou in 0..#ol {
            for inn in 0..#il {
                let mut bv = x0.#get(ou * #al * #il + inn);
                let mut best = 0usize;
                for k in 1..#al {
                    let v = x0.#get((ou * #al + k) * #il + inn);
                    if v #cmp bv {
                        bv = v;
                        best = k;
                    }
                }
                let o = ou * #il + inn;
                #store
            }
        }
    };
    Ok(Kernel { statics: quote!(), body, doc: format!("{:?} over axis {a} -> {:?} {}", x.shape, y.shape, y.dtype), macs: 0, const_bytes: 0 })
}

fn log_softmax(ctx: &KernelCtx) -> Result<Kernel> {
    let x = ctx.tensor(0)?;
    let y = ctx.out(0)?;
    if x.is_const() {
        return Err(ctx.unsupported("constant input"));
    }
    if x.shape != y.shape || x.shape.is_empty() {
        return Err(ctx.err(format!("input shape {:?} and output shape {:?} differ", x.shape, y.shape)));
    }
    let depth = *x.shape.last().unwrap_or(&1);
    let outer = x.elems() / depth.max(1);
    let (ol, dl) = (lit::usize(outer), lit::usize(depth));
    match (x.dtype, y.dtype) {
        (DType::I8, DType::I8) => {
            let (xq, yq) = (qof(ctx, x)?, qof(ctx, y)?);
            if yq.scale() != 16.0f32 / 256.0 || yq.zp() != 127 {
                return Err(ctx.unsupported(format!("int8 LOG_SOFTMAX output must have scale 1/16 and zero point 127 (TFLM), got {} and {}", yq.scale(), yq.zp())));
            }
            let m = (1.0f64 * xq.scale() as f64 * (1u64 << 26) as f64).min((1i64 << 31) as f64 - 1.0);
            let (im, ils) = quantize_multiplier(m);
            if !(1..=31).contains(&ils) {
                return Err(ctx.unsupported(format!("int8 LOG_SOFTMAX input scale {} out of the supported range", xq.scale())));
            }
            let rrd = ((1i64 << (31 - ils)) as i32) as f64 / im as f64;
            let (rsd, rs) = quantize_multiplier(rrd);
            let radius = (((1i64 << 5) - 1) as f64 * (1u64 << (31 - 5)) as f64 / (1u64 << ils) as f64).floor() as i32;
            let diff_min = -radius;
            let (im, ils, rsd, rs, dm, dm1) = (lit::i32(im), lit::i32(ils), lit::i32(rsd), lit::i32(rs), lit::i32(diff_min), lit::i32(diff_min - 1));
            let body = quote! {
                use ::microgen_rt::q::{clamp, exp_on_negative_values, mbqm, one_over_one_plus_x_for_x_in_0_1, rdivpot, rescale, rounding_half_sum, srdhm, srmulpot};
                /// TFLite `log_x_for_x_greater_than_or_equal_to_1<5>` of a Q12.19 value; Q5.26 out.
                fn log_q5(z_a: i32) -> i32 {
                    let log_2: i32 = 1488522236;
                    let sqrt_sqrt_half: i32 = 1805811301;
                    let sqrt_half: i32 = 1518500250;
                    let one_quarter: i32 = 536870912;
                    let alpha_n: i32 = 117049297;
                    let alpha_d: i32 = 127690142;
                    let alpha_i: i32 = 1057819769;
                    let alpha_f: i32 = 638450708;
                    let sat = |v: i64| -> i32 { if v > i32::MAX as i64 { i32::MAX } else if v < i32::MIN as i64 { i32::MIN } else { v as i32 } };
                    let shifted_quarter = rescale(one_quarter, 0, 6);
                    let ha = (z_a as u32).leading_zeros() as i32;
                    let r_a_tmp = srmulpot(z_a, ha - 1);
                    let r_a_raw = srmulpot(srdhm(r_a_tmp, sqrt_half), 1);
                    let z_a_pow_2_adj = sat(srmulpot(12 - ha, 31 - 6) as i64 + shifted_quarter as i64);
                    let z_b = srdhm(z_a, sqrt_half);
                    let hb = (z_b as u32).leading_zeros() as i32 - 1;
                    let r_b_raw = srmulpot(z_a, hb);
                    let z_b_pow_2_adj = sat(srmulpot(12 - hb, 31 - 6) as i64 - shifted_quarter as i64);
                    let r = if r_a_raw < r_b_raw { r_a_raw } else { r_b_raw };
                    let z_pow_2_adj = if z_a_pow_2_adj > z_b_pow_2_adj { z_a_pow_2_adj } else { z_b_pow_2_adj };
                    let p = rounding_half_sum(r, sqrt_sqrt_half);
                    let mut q = r.wrapping_sub(sqrt_sqrt_half);
                    q = q.wrapping_add(q);
                    let common_sq = srdhm(q, q);
                    let num = srdhm(q, r).wrapping_add(srdhm(srdhm(q, common_sq), alpha_n));
                    let denom_minus_one_0 = srdhm(p, alpha_i.wrapping_add(q).wrapping_add(srdhm(alpha_d, common_sq))).wrapping_add(srdhm(alpha_f, q));
                    let recip_denom = one_over_one_plus_x_for_x_in_0_1(denom_minus_one_0);
                    let num_scaled = rescale(num, 0, 6);
                    rescale(srdhm(z_pow_2_adj, log_2).wrapping_add(srdhm(num_scaled, recip_denom)), 6, 5)
                }
                for ou in 0..#ol {
                    let base = ou * #dl;
                    let mut mx = -128i32;
                    for k in 0..#dl {
                        let v = x0.get_i8(base + k) as i32;
                        if v > mx { mx = v; }
                    }
                    let mut sum = 0i32;
                    for k in 0..#dl {
                        let d = x0.get_i8(base + k) as i32 - mx;
                        if d >= #dm {
                            let dq = mbqm(d, #im, #ils);
                            sum = sum.wrapping_add(rescale(exp_on_negative_values(dq, 5), 0, 12));
                        }
                    }
                    let lse = log_q5(sum);
                    let shifted = lse.wrapping_add(i32::MIN);
                    let t = mbqm(shifted, #rsd, #rs);
                    let adm = if #dm1 > t { #dm1 } else { t };
                    for k in 0..#dl {
                        let d = x0.get_i8(base + k) as i32 - mx;
                        let o = if d > adm {
                            let dq = mbqm(d, #im, #ils);
                            clamp(rdivpot(dq.wrapping_sub(lse), 31 - 5 - 4) + 127, -128, 127)
                        } else {
                            -128
                        };
                        y0.set_i8(base + k, o as i8);
                    }
                }
            };
            Ok(Kernel { statics: quote!(), body, doc: format!("{outer} rows of {depth}, int8"), macs: 0, const_bytes: 0 })
        }
        (DType::F32, DType::F32) => {
            let body = quote! {
                /// Natural logarithm (f64 arithmetic, atanh series), for positive finite inputs.
                fn ln(x: f32) -> f32 {
                    if !(x > 0.0) {
                        return if x == 0.0 { f32::NEG_INFINITY } else { f32::NAN };
                    }
                    if x.is_infinite() {
                        return x;
                    }
                    let mut v = x as f64;
                    let mut e = 0i32;
                    // Normalise subnormals.
                    if v < 1e-300 { v *= 18014398509481984.0; e -= 54; }
                    let bits = v.to_bits();
                    e += ((bits >> 52) & 0x7ff) as i32 - 1023;
                    let mut m = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1023u64 << 52));
                    if m > 1.4142135623730951 { m *= 0.5; e += 1; }
                    let s = (m - 1.0) / (m + 1.0);
                    let s2 = s * s;
                    let mut term = s;
                    let mut acc = 0.0f64;
                    let mut k = 1.0f64;
                    while k < 40.0 {
                        acc += term / k;
                        term *= s2;
                        k += 2.0;
                    }
                    (2.0 * acc + e as f64 * 0.6931471805599453) as f32
                }
                for ou in 0..#ol {
                    let base = ou * #dl;
                    let mut mx = f32::MIN;
                    for k in 0..#dl {
                        let v = x0.get_f32(base + k);
                        if v > mx { mx = v; }
                    }
                    let mut sum = 0.0f32;
                    for k in 0..#dl {
                        sum += ::microgen_rt::f::exp(x0.get_f32(base + k) - mx);
                    }
                    let ls = ln(sum);
                    for k in 0..#dl {
                        y0.set_f32(base + k, x0.get_f32(base + k) - mx - ls);
                    }
                }
            };
            Ok(Kernel { statics: quote!(), body, doc: format!("{outer} rows of {depth}, float32"), macs: 0, const_bytes: 0 })
        }
        (a, b) => Err(ctx.unsupported(format!("LOG_SOFTMAX from {a} to {b}; supported: int8, float32"))),
    }
}
