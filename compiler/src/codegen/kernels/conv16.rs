//! CONV_2D and DEPTHWISE_CONV_2D with int16 activations and int8 weights ("16x8"), as TFLM's
//! `reference_integer_ops::ConvPerChannel` / `DepthwiseConvPerChannel` for int16 compute them:
//! `acc = bias + sum(x * w)` over the taps inside the input (zero points are 0), then the
//! per-channel requantization that goes with the bias type (see [`super::int16`]), clamped
//! to the fused activation's range. No output zero point is added (it is 0).

use super::super::{lit, Kernel, KernelCtx};
use super::conv::{geometry, macs, product, requant, requant_bytes};
use super::int16::{act_range, bias16, i64_bytes, requant64, requant64_bytes, sym_quant, weight_mults, Bias16};
use crate::error::Result;
use crate::ir::{DType, Op};
use quote::quote;

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let (win, act, depthwise, dm_opt) = match ctx.node.op {
        Op::Conv2d { win, act } => (win, act, false, 0),
        Op::DepthwiseConv2d { win, act, depth_multiplier } => (win, act, true, depth_multiplier),
        _ => unreachable!(),
    };
    let name = ctx.node.op.name();
    let x = ctx.tensor(0)?;
    let w = ctx.tensor(1)?;
    let y = ctx.out(0)?;
    if (x.dtype, w.dtype, y.dtype) != (DType::I16, DType::I8, DType::I16) {
        return Err(ctx.unsupported(format!(
            "{name} with input {}, filter {}, output {}; the int16 path supports int16 input and output with int8 filters",
            x.dtype, w.dtype, y.dtype
        )));
    }
    if w.shape.len() != 4 || (depthwise && w.shape[0] != 1) {
        return Err(ctx.err(format!(
            "filter must be 4-D {}, got shape {:?}",
            if depthwise { "[1, height, width, out_channels]" } else { "[out_channels, height, width, in_channels]" },
            w.shape
        )));
    }
    let (cout, kh, kw) = if depthwise { (w.shape[3], w.shape[1], w.shape[2]) } else { (w.shape[0], w.shape[1], w.shape[2]) };
    let g = geometry(ctx, x, y, kh, kw, &win, cout)?;
    // Output channels run backwards too when the positions do (in-place execution).
    let ocs = g.chans(&quote!(COUT));
    let dm = if depthwise {
        if cout % g.c != 0 {
            return Err(ctx.err(format!("filter has {cout} output channels, not a multiple of the input's {} channels", g.c)));
        }
        let dm = cout / g.c;
        if dm_opt != 0 && dm_opt != dm {
            return Err(ctx.err(format!("depth_multiplier {dm_opt} does not match the shapes: {} input channels, {cout} output channels", g.c)));
        }
        dm
    } else {
        if w.shape[3] != g.c {
            return Err(ctx.unsupported(format!(
                "filter has {} input channels but the input has {} (grouped convolution is not supported)",
                w.shape[3], g.c
            )));
        }
        1
    };
    if g.empty {
        return Err(ctx.err("some output position's window has no tap inside the input"));
    }
    let Some(wdata) = w.data.as_ref() else {
        return Err(ctx.unsupported("non-constant filters are not supported; convert the model with constant weights"));
    };
    let wn = if depthwise { product(ctx, &[kh, kw, cout])? } else { product(ctx, &[cout, kh, kw, g.c])? };
    let Some(wdata) = wdata.get(..wn) else {
        return Err(ctx.err(format!("filter data has {} bytes, expected {wn}", wdata.len())));
    };
    let xq = sym_quant(ctx, x, "input")?;
    let yq = sym_quant(ctx, y, "output")?;
    let mults = weight_mults(ctx, xq, w, yq, cout, if depthwise { 3 } else { 0 })?;
    // TFLM: CONV_2D takes an int64 or int32 bias (none: int32 accumulator); DEPTHWISE_CONV_2D
    // only int64 (none: int64 accumulator).
    let bias = bias16(ctx, cout, depthwise, !depthwise)?;
    let (amin, amax) = act_range(act, yq);
    let (amin, amax) = (lit::i32(amin), lit::i32(amax));
    let co = lit::usize(cout);
    let w_id = ctx.ident("W");
    let b_id = ctx.ident("B");
    let wlen = lit::usize(wn);
    let wbytes = lit::bytes(wdata);
    let mut statics = quote! {
        /// Filter, int8.
        static #w_id: [u8; #wlen] = #wbytes;
    };
    let mut const_bytes = wn;
    let (acc_ty, zero, mdecl, mexpr, prod) = match &bias {
        Bias16::I64(v) => {
            let bb = i64_bytes(v);
            let (bl, bbytes) = (lit::usize(bb.len()), lit::bytes(&bb));
            statics.extend(quote! {
                /// Bias, int64 little-endian.
                static #b_id: [u8; #bl] = #bbytes;
            });
            const_bytes += bb.len() + requant64_bytes(&mults);
            let (d, e) = requant64(ctx, &mults)?;
            (quote!(i64), quote!(#b_id.get_i64(oc)), d, e, quote!((xv as i64) * (wv as i64)))
        }
        Bias16::I32(v) => {
            let bl = lit::i32s(v);
            statics.extend(quote! {
                /// Bias, int32.
                const #b_id: [i32; #co] = #bl;
            });
            const_bytes += 4 * cout + requant_bytes(&mults);
            let (d, e) = requant(&mults);
            (quote!(i32), quote!(#b_id[oc]), d, e, quote!(xv.wrapping_mul(wv)))
        }
    };
    let add = if bias.wide() { quote!(acc += #prod;) } else { quote!(acc = acc.wrapping_add(#prod);) };
    let inner = if depthwise {
        quote! {
            for oc in #ocs {
                let ic = oc / DM;
                let mut acc: #acc_ty = 0;
                for ky in ky0..ky1 {
                    let iy = (iy0 + (ky * DH) as isize) as usize;
                    for kx in kx0..kx1 {
                        let ix = (ix0 + (kx * DW) as isize) as usize;
                        let xv = x0.get_i16(((b * H + iy) * W + ix) * C + ic) as i32;
                        let wv = #w_id[(ky * KW + kx) * COUT + oc] as i8 as i32;
                        #add
                    }
                }
                let acc = acc.wrapping_add(#zero);
                let v = #mexpr;
                y0.set_i16(yb + oc, ::microgen_rt::q::clamp(v, #amin, #amax) as i16);
            }
        }
    } else {
        quote! {
            for oc in #ocs {
                let mut acc: #acc_ty = 0;
                for ky in ky0..ky1 {
                    let iy = (iy0 + (ky * DH) as isize) as usize;
                    for kx in kx0..kx1 {
                        let ix = (ix0 + (kx * DW) as isize) as usize;
                        let xb = ((b * H + iy) * W + ix) * C;
                        let wb = ((oc * KH + ky) * KW + kx) * C;
                        let w = &#w_id[wb..wb + C];
                        for ic in 0..C {
                            let xv = x0.get_i16(xb + ic) as i32;
                            let wv = w[ic] as i8 as i32;
                            #add
                        }
                    }
                }
                let acc = acc.wrapping_add(#zero);
                let v = #mexpr;
                y0.set_i16(yb + oc, ::microgen_rt::q::clamp(v, #amin, #amax) as i16);
            }
        }
    };
    let body = g.loops(&quote!(COUT), quote!(), inner);
    let decls = g.decls();
    let dm_decl = if depthwise {
        let dm_l = lit::usize(dm);
        quote!(const DM: usize = #dm_l;)
    } else {
        quote!()
    };
    let body = quote! {
        #decls
        const COUT: usize = #co;
        #dm_decl
        #mdecl
        #body
    };
    let kmacs = if depthwise { macs(&[g.n, g.oh, g.ow, cout, kh, kw]) } else { macs(&[g.n, g.oh, g.ow, cout, kh, kw, g.c]) };
    let doc = format!(
        "{:?} -> {:?}, filter {kh}x{kw}{}, stride {}x{}, dilation {}x{}, {:?} padding (top {}, left {}), int16 activations, int8 {} weights, {} bias, activation {}, {kmacs} MACs",
        x.shape,
        y.shape,
        if depthwise { format!(", depth multiplier {dm}") } else { String::new() },
        g.sh,
        g.sw,
        g.dh,
        g.dw,
        win.padding,
        g.pad_h,
        g.pad_w,
        if mults.iter().all(|m| *m == mults[0]) { "per-tensor" } else { "per-channel" },
        if bias.wide() { "int64" } else { "int32" },
        act.name()
    );
    Ok(Kernel { statics, body, doc, macs: kmacs, const_bytes })
}
