//! Grouped CONV_2D (Keras `Conv2D(groups=g)`: the filter has `in_channels / g` input
//! channels), int8 and float32, as TFLM's `ConvPerChannel` / `Conv` compute it: output
//! channel `oc` belongs to group `oc / (out_channels / g)` and reads only that group's input
//! channels.

use super::super::{lit, Kernel, KernelCtx};
use super::conv::{bias, bias_f32, bias_i32, clamp_f32, conv_mults, f32_bytes, f32_values, geometry, macs, product, requant_bytes, requant_out};
use crate::error::Result;
use crate::ir::{DType, Op};
use quote::quote;

/// Whether the node is a grouped convolution (the filter's input depth is a proper divisor
/// of the input's channels).
pub fn is_grouped(ctx: &KernelCtx) -> bool {
    match (ctx.tensor(0), ctx.tensor(1)) {
        (Ok(x), Ok(w)) if x.shape.len() == 4 && w.shape.len() == 4 => {
            let (c, fc) = (x.shape[3], w.shape[3]);
            fc != 0 && fc < c && c % fc == 0
        }
        _ => false,
    }
}

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let Op::Conv2d { win, act } = ctx.node.op else { unreachable!() };
    let x = ctx.tensor(0)?;
    let w = ctx.tensor(1)?;
    let y = ctx.out(0)?;
    let (cout, kh, kw, fc) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let g = geometry(ctx, x, y, kh, kw, &win, cout)?;
    let groups = g.c / fc;
    if cout % groups != 0 {
        return Err(ctx.err(format!("{cout} output channels are not divisible into {groups} groups")));
    }
    if g.empty {
        return Err(ctx.err("some output position's window has no tap inside the input"));
    }
    let Some(wdata) = w.data.as_ref() else {
        return Err(ctx.unsupported("non-constant filters are not supported; convert the model with constant weights"));
    };
    let wn = product(ctx, &[cout, kh, kw, fc])?;
    let Some(wdata) = wdata.get(..product(ctx, &[wn, w.dtype.size()])?) else {
        return Err(ctx.err(format!("filter data has {} bytes, expected {}", wdata.len(), wn * w.dtype.size())));
    };
    let b = bias(ctx, cout)?;
    let kmacs = macs(&[g.n, g.oh, g.ow, cout, kh, kw, fc]);
    let decls = g.decls();
    // Output channels run backwards too when the positions do (in-place execution).
    let ocs = g.chans(&quote!(COUT));
    let (co, fcl, fpg) = (lit::usize(cout), lit::usize(fc), lit::usize(cout / groups));
    let (w_id, b_id) = (ctx.ident("W"), ctx.ident("B"));
    let shape_doc = format!(
        "{:?} -> {:?}, filter {kh}x{kw}, {groups} groups, stride {}x{}, dilation {}x{}, {:?} padding (top {}, left {})",
        x.shape, y.shape, g.sh, g.sw, g.dh, g.dw, win.padding, g.pad_h, g.pad_w
    );
    let consts = quote! {
        #decls
        const COUT: usize = #co;
        /// Input channels per group (the filter's depth) and output channels per group.
        const FC: usize = #fcl;
        const FPG: usize = #fpg;
    };
    match (x.dtype, w.dtype, y.dtype) {
        (DType::I8, DType::I8, DType::I8) => {
            let (in_off, out_zp, mults) = conv_mults(ctx, x, w, y, cout, 0)?;
            let yq = y.q().ok_or_else(|| ctx.err("int8 output has no quantization"))?;
            let bias_v = bias_i32(ctx, b, cout, "CONV_2D")?;
            let (amin, amax) = act.range_q(yq.scale(), yq.zp(), -128, 127);
            let (out_zp, amin, amax, in_off) = (lit::i32(out_zp), lit::i32(amin), lit::i32(amax), lit::i32(in_off));
            let (mdecl, qexpr) = requant_out(ctx, &mults, None, &out_zp, &amin, &amax);
            let (wlen, wbytes, bl) = (lit::usize(wn), lit::bytes(wdata), lit::i32s(&bias_v));
            let statics = quote! {
                /// Filter, [out_channels][height][width][in_channels / groups], int8.
                static #w_id: [u8; #wlen] = #wbytes;
                /// Bias, int32.
                const #b_id: [i32; #co] = #bl;
            };
            let body = g.loops(
                &quote!(COUT),
                quote!(),
                quote! {
                    for oc in #ocs {
                        let c0 = (oc / FPG) * FC;
                        let mut acc: i32 = 0;
                        for ky in ky0..ky1 {
                            let iy = (iy0 + (ky * DH) as isize) as usize;
                            for kx in kx0..kx1 {
                                let ix = (ix0 + (kx * DW) as isize) as usize;
                                let xb = ((b * H + iy) * W + ix) * C + c0;
                                let wb = ((oc * KH + ky) * KW + kx) * FC;
                                for ic in 0..FC {
                                    let xv = x0.get_i8(xb + ic) as i32 + #in_off;
                                    acc = acc.wrapping_add((#w_id[wb + ic] as i8 as i32).wrapping_mul(xv));
                                }
                            }
                        }
                        let acc = acc.wrapping_add(#b_id[oc]);
                        y0.set_i8(yb + oc, #qexpr);
                    }
                },
            );
            let body = quote! {
                #consts
                #mdecl
                #body
            };
            let doc = format!(
                "{shape_doc}, int8, {} weights, activation {}, {kmacs} MACs",
                if mults.iter().all(|m| *m == mults[0]) { "per-tensor" } else { "per-channel" },
                act.name()
            );
            Ok(Kernel { statics, body, doc, macs: kmacs, const_bytes: wn + 4 * cout + requant_bytes(&mults) })
        }
        (DType::F32, DType::F32, DType::F32) => {
            let bias_v = bias_f32(ctx, b, cout, "CONV_2D")?;
            let wb = f32_bytes(&f32_values(wdata));
            let (wlen, wbytes) = (lit::usize(wb.len()), lit::bytes(&wb));
            let bias_items = bias_v.iter().map(|&v| lit::f32(v));
            let clamp = clamp_f32(act);
            let statics = quote! {
                /// Filter, [out_channels][height][width][in_channels / groups], float32 little-endian.
                static #w_id: [u8; #wlen] = #wbytes;
                const #b_id: [f32; #co] = [#(#bias_items),*];
            };
            let body = g.loops(
                &quote!(COUT),
                quote!(),
                quote! {
                    for oc in #ocs {
                        let c0 = (oc / FPG) * FC;
                        let mut acc = 0.0f32;
                        for ky in ky0..ky1 {
                            let iy = (iy0 + (ky * DH) as isize) as usize;
                            for kx in kx0..kx1 {
                                let ix = (ix0 + (kx * DW) as isize) as usize;
                                let xb = ((b * H + iy) * W + ix) * C + c0;
                                let wb = ((oc * KH + ky) * KW + kx) * FC;
                                for ic in 0..FC {
                                    acc += x0.get_f32(xb + ic) * #w_id.get_f32(wb + ic);
                                }
                            }
                        }
                        let v = acc + #b_id[oc];
                        y0.set_f32(yb + oc, #clamp);
                    }
                },
            );
            let body = quote! {
                #consts
                #body
            };
            let doc = format!("{shape_doc}, float32, activation {}, {kmacs} MACs", act.name());
            Ok(Kernel { statics, body, doc, macs: kmacs, const_bytes: wb.len() + 4 * cout })
        }
        (a, b2, c) => Err(ctx.unsupported(format!(
            "grouped CONV_2D with input {a}, filter {b2}, output {c}; supported: int8/int8/int8, float32/float32/float32"
        ))),
    }
}
