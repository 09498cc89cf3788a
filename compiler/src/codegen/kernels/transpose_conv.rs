//! TRANSPOSE_CONV: int8 (TFLM `reference_integer_ops::TransposeConv`, per-channel) and
//! float32 (`reference_ops::TransposeConv`).
//!
//! TFLM scatters every input element into the outputs it influences; here each output
//! element gathers the same contributions instead, in the same order (input rows, then
//! columns, then channels, ascending), so integer results are identical and float sums are
//! added in TFLM's order. Padding follows TFLM: `ComputePaddingHeightWidth` applied to the
//! *output* size with dilation 1.

use super::super::{lit, Kernel, KernelCtx};
use super::conv::{clamp_f32, f32_bytes, f32_values, macs, product, requant_bytes, requant_out};
use super::{const_f32, const_i32, quantize_multiplier};
use crate::error::Result;
use crate::ir::{DType, Op, Padding};
use quote::quote;

/// TFLite `ComputeOutSize` and `ComputePaddingWithOffset` (leading padding) for a window of
/// `k` taps (dilation 1) with stride `s` over `n` elements.
fn leading_pad(p: Padding, n: usize, k: usize, s: usize) -> usize {
    let (n, k, s) = (n as i64, k as i64, s as i64);
    let out = match p {
        Padding::Same => (n + s - 1) / s,
        Padding::Valid => (n + s - k) / s,
    };
    let total = (out - 1) * s + k - n;
    (total.max(0) / 2) as usize
}

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let Op::TransposeConv { win, act } = ctx.node.op else { unreachable!() };
    let shape_t = ctx.tensor(0)?;
    let w = ctx.tensor(1)?;
    let x = ctx.tensor(2)?;
    let y = ctx.out(0)?;
    if x.is_const() {
        return Err(ctx.unsupported("TRANSPOSE_CONV with a constant input"));
    }
    if x.shape.len() != 4 || y.shape.len() != 4 || w.shape.len() != 4 {
        return Err(ctx.err(format!(
            "input {:?}, filter {:?} and output {:?} must be 4-D (NHWC; filter [out_channels, height, width, in_channels])",
            x.shape, w.shape, y.shape
        )));
    }
    if let Some(s) = const_i32(shape_t) {
        if s.iter().map(|&v| v as i64).ne(y.shape.iter().map(|&v| v as i64)) {
            return Err(ctx.unsupported(format!("TRANSPOSE_CONV output_shape {s:?} differs from the output tensor's shape {:?}", y.shape)));
        }
    }
    let (n, h, wd, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (cout, kh, kw, wc) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let (oh, ow) = (y.shape[1], y.shape[2]);
    if y.shape[0] != n || y.shape[3] != cout || wc != c || n == 0 || h == 0 || wd == 0 || c == 0 || cout == 0 || kh == 0 || kw == 0 {
        return Err(ctx.err(format!("shapes do not fit: input {:?}, filter {:?}, output {:?}", x.shape, w.shape, y.shape)));
    }
    let (sh, sw) = (win.stride_h, win.stride_w);
    let pad_h = leading_pad(win.padding, oh, kh, sh);
    let pad_w = leading_pad(win.padding, ow, kw, sw);
    let Some(wdata) = w.data.as_ref() else {
        return Err(ctx.unsupported("non-constant filters are not supported; convert the model with constant weights"));
    };
    let wn = product(ctx, &[cout, kh, kw, c])?;
    let Some(wdata) = wdata.get(..product(ctx, &[wn, w.dtype.size()])?) else {
        return Err(ctx.err(format!("filter data has {} bytes, expected {}", wdata.len(), wn * w.dtype.size())));
    };
    let bias = match ctx.node.input(3) {
        Some(b) => {
            let b = ctx.g.t(b);
            if b.elems() != cout || !b.is_const() {
                return Err(ctx.err(format!("bias must be a constant with {cout} elements, got shape {:?}", b.shape)));
            }
            Some(b)
        }
        None => None,
    };
    let macs = macs(&[n, h, wd, c, kh, kw, cout]);
    let (w_id, b_id) = (ctx.ident("W"), ctx.ident("B"));
    let decls = {
        let l = |v: usize| lit::usize(v);
        let (nl, hl, wl, cl, ohl, owl, khl, kwl, shl, swl, phl, pwl, col) =
            (l(n), l(h), l(wd), l(c), l(oh), l(ow), l(kh), l(kw), l(sh), l(sw), l(pad_h), l(pad_w), l(cout));
        quote! {
            const N: usize = #nl;
            const H: usize = #hl;
            const W: usize = #wl;
            const C: usize = #cl;
            const OH: usize = #ohl;
            const OW: usize = #owl;
            const KH: usize = #khl;
            const KW: usize = #kwl;
            const SH: usize = #shl;
            const SW: usize = #swl;
            const PAD_H: usize = #phl;
            const PAD_W: usize = #pwl;
            const COUT: usize = #col;
            /// Input positions `i` (ascending) with `0 <= o + pad - i * s < k`.
            #[inline(always)]
            fn sources(o: usize, pad: usize, k: usize, s: usize, n: usize) -> (usize, usize) {
                let t = o + pad; // = i * s + tap
                let lo = if t + 1 > k { (t + 1 - k + s - 1) / s } else { 0 };
                let hi = if t / s + 1 < n { t / s + 1 } else { n };
                (lo, if hi > lo { hi } else { lo })
            }
        }
    };
    let shape_doc = format!(
        "{:?} -> {:?}, filter {kh}x{kw}, stride {sh}x{sw}, {:?} padding (top {pad_h}, left {pad_w})",
        x.shape, y.shape, win.padding
    );
    // The loops over outputs; `#acc_init`, `#step` (with xv / wv), `#finish` (with acc) vary.
    let gather = |acc_ty: proc_macro2::TokenStream, get: proc_macro2::TokenStream, wv: proc_macro2::TokenStream, step: proc_macro2::TokenStream, finish: proc_macro2::TokenStream| {
        quote! {
            for b in 0..N {
                for oy in 0..OH {
                    let (iy0, iy1) = sources(oy, PAD_H, KH, SH, H);
                    for ox in 0..OW {
                        let (ix0, ix1) = sources(ox, PAD_W, KW, SW, W);
                        let yb = ((b * OH + oy) * OW + ox) * COUT;
                        for oc in 0..COUT {
                            let mut acc: #acc_ty = Default::default();
                            for iy in iy0..iy1 {
                                let ky = oy + PAD_H - iy * SH;
                                for ix in ix0..ix1 {
                                    let kx = ox + PAD_W - ix * SW;
                                    let xb = ((b * H + iy) * W + ix) * C;
                                    let wb = ((oc * KH + ky) * KW + kx) * C;
                                    for ic in 0..C {
                                        let xv = x0.#get(xb + ic);
                                        let wv = #wv;
                                        #step
                                    }
                                }
                            }
                            #finish
                        }
                    }
                }
            }
        }
    };
    match (x.dtype, w.dtype, y.dtype) {
        (DType::I8, DType::I8, DType::I8) => {
            let (xq, wq, yq) = (
                x.q().ok_or_else(|| ctx.err("int8 input has no quantization"))?,
                w.q().ok_or_else(|| ctx.err("int8 filter has no quantization"))?,
                y.q().ok_or_else(|| ctx.err("int8 output has no quantization"))?,
            );
            if xq.scale.is_empty() || wq.scale.is_empty() || yq.scale.is_empty() {
                return Err(ctx.err("quantization without a scale"));
            }
            if wq.zero_point.iter().any(|&z| z != 0) {
                return Err(ctx.unsupported("int8 filter with a non-zero zero point (TFLM requires symmetric weights)"));
            }
            if wq.per_channel() && (wq.scale.len() != cout || wq.axis != 0) {
                return Err(ctx.err(format!("per-channel filter has {} scales along dimension {}; expected {cout} along dimension 0", wq.scale.len(), wq.axis)));
            }
            let mults: Vec<(i32, i32)> = (0..cout)
                .map(|o| {
                    let ws = if wq.per_channel() { wq.scale[o] } else { wq.scale() };
                    quantize_multiplier(xq.scale() as f64 * ws as f64 / yq.scale() as f64)
                })
                .collect();
            let bias_v: Vec<i32> = match bias {
                Some(b) if b.dtype == DType::I32 => const_i32(b).unwrap_or_default(),
                Some(b) => return Err(ctx.unsupported(format!("int8 TRANSPOSE_CONV with {} bias (expected int32)", b.dtype))),
                None => vec![0; cout],
            };
            let (amin, amax) = act.range_q(yq.scale(), yq.zp(), -128, 127);
            let (in_off, out_zp, amin, amax) = (lit::i32(-xq.zp()), lit::i32(yq.zp()), lit::i32(amin), lit::i32(amax));
            let (mdecl, qexpr) = requant_out(ctx, &mults, None, &out_zp, &amin, &amax);
            let (wlen, wbytes, bl, co) = (lit::usize(wn), lit::bytes(wdata), lit::i32s(&bias_v), lit::usize(cout));
            let statics = quote! {
                /// Filter, [out_channels][height][width][in_channels], int8.
                static #w_id: [u8; #wlen] = #wbytes;
                /// Bias, int32.
                const #b_id: [i32; #co] = #bl;
            };
            let loops = gather(
                quote!(i32),
                quote!(get_i8),
                quote!(#w_id[wb + ic] as i8 as i32),
                quote!(acc = acc.wrapping_add((xv as i32 + #in_off).wrapping_mul(wv));),
                quote! {
                    let acc = acc.wrapping_add(#b_id[oc]);
                    y0.set_i8(yb + oc, #qexpr);
                },
            );
            let body = quote! {
                #decls
                #mdecl
                #loops
            };
            let doc = format!(
                "{shape_doc}, int8, {} weights, activation {}, {macs} MACs",
                if mults.iter().all(|m| *m == mults[0]) { "per-tensor" } else { "per-channel" },
                act.name()
            );
            Ok(Kernel { statics, body, doc, macs, const_bytes: wn + 4 * cout + requant_bytes(&mults) })
        }
        (DType::F32, DType::F32, DType::F32) => {
            let bias_v: Vec<f32> = match bias {
                Some(b) if b.dtype == DType::F32 => const_f32(b).unwrap_or_default(),
                Some(b) => return Err(ctx.unsupported(format!("float TRANSPOSE_CONV with {} bias", b.dtype))),
                None => vec![0.0; cout],
            };
            let has_bias = bias.is_some();
            let wb = f32_bytes(&f32_values(wdata));
            let (wlen, wbytes, co) = (lit::usize(wb.len()), lit::bytes(&wb), lit::usize(cout));
            let bias_items = bias_v.iter().map(|&v| lit::f32(v));
            let statics = quote! {
                /// Filter, [out_channels][height][width][in_channels], float32 little-endian.
                static #w_id: [u8; #wlen] = #wbytes;
                const #b_id: [f32; #co] = [#(#bias_items),*];
            };
            let clamp = clamp_f32(act);
            let add_bias = if has_bias { quote!(let v = acc + #b_id[oc];) } else { quote!(let v = acc;) };
            let loops = gather(
                quote!(f32),
                quote!(get_f32),
                quote!(#w_id.get_f32(wb + ic)),
                quote!(acc += xv * wv;),
                quote! {
                    #add_bias
                    y0.set_f32(yb + oc, #clamp);
                },
            );
            let body = quote! {
                #decls
                #loops
            };
            let doc = format!("{shape_doc}, float32, activation {}, {macs} MACs", act.name());
            Ok(Kernel { statics, body, doc, macs, const_bytes: wb.len() + 4 * cout })
        }
        (a, b, c) => Err(ctx.unsupported(format!(
            "TRANSPOSE_CONV with input {a}, filter {b}, output {c}; supported: int8/int8/int8, float32/float32/float32"
        ))),
    }
}
