//! RESIZE_BILINEAR: int8 as TFLM's `ResizeBilinearInteger` (10-bit fixed-point source
//! coordinates, a 20-bit weighted sum rounded half away from zero) and float32 as
//! `ResizeBilinear<float>` (the same float expression, in the same order). Source rows and
//! columns and their weights depend only on the output position: computed at compile time.

use super::super::{lit, Kernel, KernelCtx};
use super::const_i32;
use crate::error::Result;
use crate::ir::{DType, Op};
use quote::quote;

/// Operators this file generates code for, as (name, data types).
pub const SUPPORTED: &[(&str, &str)] = &[("RESIZE_BILINEAR", "int8, float32 (constant size; align_corners, half_pixel_centers)")];

/// `ComputeInterpolationValuesInteger`: (scaled value in 1/1024, lower, upper).
fn interp_int(value: i32, scale_10: i32, half_pixel: bool, input_size: i32) -> (i32, i32, i32) {
    let scaled = if half_pixel { value * scale_10 + scale_10 / 2 - (1 << 9) } else { value * scale_10 };
    // C division truncates toward zero, as Rust's does.
    let lower = (scaled / (1 << 10)).max(0);
    let upper = ((scaled + (1 << 10) - 1) / (1 << 10)).min(input_size - 1);
    (scaled, lower, upper)
}

/// `ComputeInterpolationValues` (float): (scaled value, lower, upper).
fn interp_f32(value: f32, scale: f32, half_pixel: bool, input_size: i32) -> (f32, i32, i32) {
    let scaled = if half_pixel { (value + 0.5) * scale - 0.5 } else { value * scale };
    let lower = (scaled.floor() as i32).max(0);
    let upper = (scaled.ceil() as i32).min(input_size - 1);
    (scaled, lower, upper)
}

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    let Op::ResizeBilinear { align_corners, half_pixel_centers } = ctx.node.op else { unreachable!() };
    let x = ctx.tensor(0)?;
    let size_t = ctx.tensor(1)?;
    let y = ctx.out(0)?;
    if x.shape.len() != 4 || y.shape.len() != 4 {
        return Err(ctx.err(format!("input {:?} and output {:?} must be 4-D (NHWC)", x.shape, y.shape)));
    }
    if half_pixel_centers && align_corners {
        return Err(ctx.err("half_pixel_centers and align_corners cannot both be set"));
    }
    let size = const_i32(size_t).ok_or_else(|| ctx.unsupported("RESIZE_BILINEAR with a non-constant size"))?;
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (oh, ow) = (y.shape[1], y.shape[2]);
    if size.len() != 2 || size[0] as i64 != oh as i64 || size[1] as i64 != ow as i64 || y.shape[0] != n || y.shape[3] != c {
        return Err(ctx.err(format!("size {size:?} does not match the output shape {:?} for input {:?}", y.shape, x.shape)));
    }
    if n == 0 || h == 0 || w == 0 || c == 0 || oh == 0 || ow == 0 {
        return Err(ctx.err("empty input or output"));
    }
    if x.dtype != y.dtype {
        return Err(ctx.unsupported(format!("RESIZE_BILINEAR from {} to {}", x.dtype, y.dtype)));
    }
    let (hi, wi, ohi, owi) = (h as i32, w as i32, oh as i32, ow as i32);
    let (rows_id, cols_id) = (ctx.ident("ROWS"), ctx.ident("COLS"));
    let (nl, hl, wl, cl, ohl, owl) = (lit::usize(n), lit::usize(h), lit::usize(w), lit::usize(c), lit::usize(oh), lit::usize(ow));
    let decls = quote! {
        const N: usize = #nl;
        const H: usize = #hl;
        const W: usize = #wl;
        const C: usize = #cl;
        const OH: usize = #ohl;
        const OW: usize = #owl;
    };
    match x.dtype {
        DType::I8 => {
            if let (Some(a), Some(b)) = (x.q(), y.q()) {
                if !a.same_as(b) {
                    return Err(ctx.unsupported("int8 RESIZE_BILINEAR whose output quantization differs from its input's"));
                }
            }
            let scale_10 = |i: i32, o: i32| {
                if align_corners && o > 1 {
                    ((1 << 10) * (i - 1) + (o - 1) / 2) / (o - 1)
                } else {
                    ((1 << 10) * i + o / 2) / o
                }
            };
            let (hs, ws) = (scale_10(hi, ohi), scale_10(wi, owi));
            // Per output row / column: (lower, upper, weight of upper in 1/1024).
            let table = |count: i32, scale: i32, size: i32| -> Vec<(i32, i32, i32)> {
                (0..count)
                    .map(|v| {
                        let (s, lo, up) = interp_int(v, scale, half_pixel_centers, size);
                        (lo, up, s - (1 << 10) * lo)
                    })
                    .collect()
            };
            let (rows, cols) = (table(ohi, hs, hi), table(owi, ws, wi));
            let items = |t: &[(i32, i32, i32)]| t.iter().map(|&(a, b, f)| {
                let (a, b, f) = (lit::usize(a as usize), lit::usize(b as usize), lit::i32(f));
                quote!((#a, #b, #f))
            }).collect::<Vec<_>>();
            let (ri, ci) = (items(&rows), items(&cols));
            let statics = quote! {
                /// Per output row: source rows (lower, upper) and the upper row's weight (1/1024).
                static #rows_id: [(usize, usize, i64); #ohl] = [#(#ri),*];
                /// Per output column: source columns and the right column's weight (1/1024).
                static #cols_id: [(usize, usize, i64); #owl] = [#(#ci),*];
            };
            let body = quote! {
                #decls
                for b in 0..N {
                    for oy in 0..OH {
                        let (ra, rb, fy) = #rows_id[oy];
                        for ox in 0..OW {
                            let (ca, cb, fx) = #cols_id[ox];
                            let yb = ((b * OH + oy) * OW + ox) * C;
                            let (a00, a10) = (((b * H + ra) * W + ca) * C, ((b * H + rb) * W + ca) * C);
                            let (a01, a11) = (((b * H + ra) * W + cb) * C, ((b * H + rb) * W + cb) * C);
                            for ch in 0..C {
                                let v = x0.get_i8(a00 + ch) as i64 * (1024 - fy) * (1024 - fx)
                                    + x0.get_i8(a10 + ch) as i64 * fy * (1024 - fx)
                                    + x0.get_i8(a01 + ch) as i64 * (1024 - fy) * fx
                                    + x0.get_i8(a11 + ch) as i64 * fy * fx;
                                let round: i64 = if v > 0 { 1 << 19 } else { -(1 << 19) };
                                y0.set_i8(yb + ch, ((v + round) / (1 << 20)) as i8);
                            }
                        }
                    }
                }
            };
            let doc = format!(
                "{:?} -> {:?}, int8, align_corners {align_corners}, half_pixel_centers {half_pixel_centers} (10-bit fixed point)",
                x.shape, y.shape
            );
            Ok(Kernel { statics, body, doc, macs: 0, const_bytes: 24 * (oh + ow) })
        }
        DType::F32 => {
            let scale = |i: i32, o: i32| {
                if align_corners && o > 1 {
                    (i - 1) as f32 / (o - 1) as f32
                } else {
                    i as f32 / o as f32
                }
            };
            let (hs, ws) = (scale(hi, ohi), scale(wi, owi));
            // Per output row / column: (lower, upper, scaled coordinate - lower), in float as
            // TFLM computes it.
            let table = |count: i32, scale: f32, size: i32| -> Vec<(i32, i32, f32)> {
                (0..count)
                    .map(|v| {
                        let (s, lo, up) = interp_f32(v as f32, scale, half_pixel_centers, size);
                        (lo, up, s - lo as f32)
                    })
                    .collect()
            };
            let (rows, cols) = (table(ohi, hs, hi), table(owi, ws, wi));
            let items = |t: &[(i32, i32, f32)]| t.iter().map(|&(a, b, f)| {
                let (a, b, f) = (lit::usize(a as usize), lit::usize(b as usize), lit::f32(f));
                quote!((#a, #b, #f))
            }).collect::<Vec<_>>();
            let (ri, ci) = (items(&rows), items(&cols));
            let statics = quote! {
                /// Per output row: source rows (lower, upper) and the fractional offset.
                static #rows_id: [(usize, usize, f32); #ohl] = [#(#ri),*];
                /// Per output column: source columns and the fractional offset.
                static #cols_id: [(usize, usize, f32); #owl] = [#(#ci),*];
            };
            let body = quote! {
                #decls
                for b in 0..N {
                    for oy in 0..OH {
                        let (ra, rb, dy) = #rows_id[oy];
                        for ox in 0..OW {
                            let (ca, cb, dx) = #cols_id[ox];
                            let yb = ((b * OH + oy) * OW + ox) * C;
                            let (a00, a10) = (((b * H + ra) * W + ca) * C, ((b * H + rb) * W + ca) * C);
                            let (a01, a11) = (((b * H + ra) * W + cb) * C, ((b * H + rb) * W + cb) * C);
                            for ch in 0..C {
                                let v = x0.get_f32(a00 + ch) * (1.0 - dy) * (1.0 - dx)
                                    + x0.get_f32(a10 + ch) * dy * (1.0 - dx)
                                    + x0.get_f32(a01 + ch) * (1.0 - dy) * dx
                                    + x0.get_f32(a11 + ch) * dy * dx;
                                y0.set_f32(yb + ch, v);
                            }
                        }
                    }
                }
            };
            let doc = format!("{:?} -> {:?}, float32, align_corners {align_corners}, half_pixel_centers {half_pixel_centers}", x.shape, y.shape);
            Ok(Kernel { statics, body, doc, macs: 0, const_bytes: 20 * (oh + ow) })
        }
        other => Err(ctx.unsupported(format!("RESIZE_BILINEAR of {other}; supported: int8, float32"))),
    }
}
