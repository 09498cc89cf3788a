//! AVERAGE_POOL_2D and MAX_POOL_2D on int16, as TFLM's int16 reference kernels: the window
//! is clipped to the input; the average sums in int32 and divides by the number of taps
//! inside (rounded half away from zero, no requantization); the maximum starts at the int16
//! minimum; then the activation clamp.

use super::super::{lit, Kernel, KernelCtx};
use super::conv::geometry;
use super::int16::{act_quant, act_range};
use crate::error::Result;
use crate::ir::{DType, Op};
use quote::quote;

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let (win, fh, fw, act, avg) = match ctx.node.op {
        Op::AveragePool2d { win, filter_h, filter_w, act } => (win, filter_h, filter_w, act, true),
        Op::MaxPool2d { win, filter_h, filter_w, act } => (win, filter_h, filter_w, act, false),
        _ => unreachable!(),
    };
    let name = ctx.node.op.name();
    let x = ctx.tensor(0)?;
    let y = ctx.out(0)?;
    if (x.dtype, y.dtype) != (DType::I16, DType::I16) {
        return Err(ctx.unsupported(format!("{name} with input {}, output {}; the int16 path supports int16 -> int16", x.dtype, y.dtype)));
    }
    let xq = act_quant(ctx, x, "input")?;
    let yq = act_quant(ctx, y, "output")?;
    if !xq.same_as(yq) {
        return Err(ctx.unsupported(format!("int16 {name} whose output quantization differs from its input's (TFLM does not requantize)")));
    }
    let mut win = win;
    win.dilation_h = 1;
    win.dilation_w = 1;
    let c = x.shape.get(3).copied().unwrap_or(0);
    let g = geometry(ctx, x, y, fh, fw, &win, c)?;
    if g.empty {
        return Err(ctx.err("some output position's window has no tap inside the input"));
    }
    let (amin, amax) = act_range(act, yq);
    let (amin, amax) = (lit::i32(amin), lit::i32(amax));
    let count = if g.partial { quote!(((ky1 - ky0) * (kx1 - kx0))) } else { quote!((KH * KW)) };
    let per = if avg {
        quote! {
            let mut acc: i32 = 0;
            for ky in ky0..ky1 {
                let iy = (iy0 + (ky * DH) as isize) as usize;
                for kx in kx0..kx1 {
                    let ix = (ix0 + (kx * DW) as isize) as usize;
                    acc = acc.wrapping_add(x0.get_i16(((b * H + iy) * W + ix) * C + ch) as i32);
                }
            }
            let n = #count as i32;
            let acc = if acc > 0 { acc.wrapping_add(n / 2) / n } else { acc.wrapping_sub(n / 2) / n };
            y0.set_i16(yb + ch, ::microgen_rt::q::clamp(acc, #amin, #amax) as i16);
        }
    } else {
        quote! {
            let mut acc: i16 = i16::MIN;
            for ky in ky0..ky1 {
                let iy = (iy0 + (ky * DH) as isize) as usize;
                for kx in kx0..kx1 {
                    let ix = (ix0 + (kx * DW) as isize) as usize;
                    let v = x0.get_i16(((b * H + iy) * W + ix) * C + ch);
                    if v > acc {
                        acc = v;
                    }
                }
            }
            y0.set_i16(yb + ch, ::microgen_rt::q::clamp(acc as i32, #amin, #amax) as i16);
        }
    };
    let chs = g.chans(&quote!(C));
    let body = g.loops(&quote!(C), quote!(), quote!(for ch in #chs { #per }));
    let decls = g.decls();
    let body = quote! {
        #decls
        #body
    };
    let doc = format!(
        "{:?} -> {:?}, window {fh}x{fw}, stride {}x{}, {:?} padding (top {}, left {}), int16, activation {}",
        x.shape, y.shape, g.sh, g.sw, win.padding, g.pad_h, g.pad_w, act.name()
    );
    Ok(Kernel { statics: quote!(), body, doc, macs: 0, const_bytes: 0 })
}
