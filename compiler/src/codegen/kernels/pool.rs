//! AVERAGE_POOL_2D and MAX_POOL_2D, int8 and float32, as TFLM's reference kernels: the
//! window is clipped to the input and the average divides by the number of taps inside it
//! (int8: rounded half away from zero, no requantization), then the activation clamp.

use super::super::{lit, Kernel, KernelCtx};
use super::conv::{clamp_f32, geometry};
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
    // Pools have no dilation (TFLM computes their padding with a dilation of 1).
    let mut win = win;
    win.dilation_h = 1;
    win.dilation_w = 1;
    let c = x.shape.get(3).copied().unwrap_or(0);
    let g = geometry(ctx, x, y, fh, fw, &win, c)?;
    if g.empty {
        return Err(ctx.err("some output position's window has no tap inside the input"));
    }
    let decls = g.decls();
    let shape_doc = format!(
        "{:?} -> {:?}, window {fh}x{fw}, stride {}x{}, {:?} padding (top {}, left {})",
        x.shape, y.shape, g.sh, g.sw, win.padding, g.pad_h, g.pad_w
    );
    // Number of taps inside the input for the current output position.
    let count = if g.partial { quote!(((ky1 - ky0) * (kx1 - kx0))) } else { quote!((KH * KW)) };
    let body = match (x.dtype, y.dtype) {
        (DType::I8, DType::I8) => {
            let yq = y.q().ok_or_else(|| ctx.err("int8 output has no quantization"))?;
            if yq.scale.is_empty() {
                return Err(ctx.err("int8 output has no scale"));
            }
            let (amin, amax) = act.range_q(yq.scale(), yq.zp(), -128, 127);
            let (amin, amax) = (lit::i32(amin), lit::i32(amax));
            let per = if avg {
                quote! {
                    let mut acc: i32 = 0;
                    for ky in ky0..ky1 {
                        let iy = (iy0 + (ky * DH) as isize) as usize;
                        for kx in kx0..kx1 {
                            let ix = (ix0 + (kx * DW) as isize) as usize;
                            acc = acc.wrapping_add(x0.get_i8(((b * H + iy) * W + ix) * C + ch) as i32);
                        }
                    }
                    let n = #count as i32;
                    // Rounded to the nearest, half away from zero.
                    let acc = if acc > 0 { acc.wrapping_add(n / 2) / n } else { acc.wrapping_sub(n / 2) / n };
                    y0.set_i8(yb + ch, ::microgen_rt::q::clamp(acc, #amin, #amax) as i8);
                }
            } else {
                quote! {
                    let mut acc: i8 = -128;
                    for ky in ky0..ky1 {
                        let iy = (iy0 + (ky * DH) as isize) as usize;
                        for kx in kx0..kx1 {
                            let ix = (ix0 + (kx * DW) as isize) as usize;
                            let v = x0.get_i8(((b * H + iy) * W + ix) * C + ch);
                            if v > acc {
                                acc = v;
                            }
                        }
                    }
                    y0.set_i8(yb + ch, ::microgen_rt::q::clamp(acc as i32, #amin, #amax) as i8);
                }
            };
            per
        }
        (DType::F32, DType::F32) => {
            let clamp = clamp_f32(act);
            if avg {
                quote! {
                    let mut acc = 0.0f32;
                    for ky in ky0..ky1 {
                        let iy = (iy0 + (ky * DH) as isize) as usize;
                        for kx in kx0..kx1 {
                            let ix = (ix0 + (kx * DW) as isize) as usize;
                            acc += x0.get_f32(((b * H + iy) * W + ix) * C + ch);
                        }
                    }
                    let v = acc / (#count as f32);
                    y0.set_f32(yb + ch, #clamp);
                }
            } else {
                quote! {
                    let mut acc = f32::MIN;
                    for ky in ky0..ky1 {
                        let iy = (iy0 + (ky * DH) as isize) as usize;
                        for kx in kx0..kx1 {
                            let ix = (ix0 + (kx * DW) as isize) as usize;
                            let v = x0.get_f32(((b * H + iy) * W + ix) * C + ch);
                            if v > acc {
                                acc = v;
                            }
                        }
                    }
                    let v = acc;
                    y0.set_f32(yb + ch, #clamp);
                }
            }
        }
        (a, b) => {
            return Err(ctx.unsupported(format!("{name} with input {a}, output {b}; supported: int8/int8, float32/float32")));
        }
    };
    let chs = g.chans(&quote!(C));
    let per_position = match (x.dtype, avg) {
        // Float on the host: blocks of 16 channels, one lane per channel (each lane sums or
        // compares its taps in the same order as the channel loop: the same results), then
        // the channels left over one by one. Blocks and channels run in the loop's direction
        // and a block reads its whole window before it writes.
        (DType::F32, _) if c >= 16 => {
            let clamp = clamp_f32(act);
            let (init, step, fin) = if avg {
                (quote!(0.0f32), quote!(acc[l] += v[l];), quote!(acc[l] / (#count as f32)))
            } else {
                (quote!(f32::MIN), quote!(if v[l] > acc[l] { acc[l] = v[l]; }), quote!(acc[l]))
            };
            let (blocks, tail) = if g.rev { (quote!((0..C / 16).rev()), quote!((C / 16 * 16..C).rev())) } else { (quote!(0..C / 16), quote!(C / 16 * 16..C)) };
            let block = quote! {
                for cb in #blocks {
                    let ch = cb * 16;
                    let mut acc = [#init; 16];
                    for ky in ky0..ky1 {
                        let iy = (iy0 + (ky * DH) as isize) as usize;
                        for kx in kx0..kx1 {
                            let ix = (ix0 + (kx * DW) as isize) as usize;
                            let mut v = [0.0f32; 16];
                            x0.read_f32s(((b * H + iy) * W + ix) * C + ch, &mut v);
                            for l in 0..16 {
                                #step
                            }
                        }
                    }
                    let mut o = [0.0f32; 16];
                    for l in 0..16 {
                        let v = #fin;
                        o[l] = #clamp;
                    }
                    y0.write_f32s(yb + ch, &o);
                }
            };
            let (first, second) = if g.rev { (quote!(for ch in #tail { #body }), block) } else { (block, quote!(for ch in #tail { #body })) };
            quote! {
                #[cfg(target_arch = "x86_64")]
                {
                    #first
                    #second
                }
                #[cfg(not(target_arch = "x86_64"))]
                for ch in #chs { #body }
            }
        }
        _ => quote!(for ch in #chs { #body }),
    };
    let body = g.loops(&quote!(C), quote!(), per_position);
    let body = quote! {
        #decls
        #body
    };
    let doc = format!("{shape_doc}, {}, activation {}", x.dtype, act.name());
    Ok(Kernel { statics: quote!(), body, doc, macs: 0, const_bytes: 0 })
}
