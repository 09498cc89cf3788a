//! Compact int8 kernels (the `size` strategy): one routine for every convolution-like
//! layer (CONV_2D, grouped, DEPTHWISE_CONV_2D, FULLY_CONNECTED), its shape and
//! quantization read from a constant parameter block, so that a model's layers share one
//! copy of the code. TFLM's reference arithmetic.
//!
//! Per output position the window is gathered into a small buffer (taps outside the input
//! are the input zero point), all output channels are computed from it by one routine that
//! does not depend on where the tensors live, then stored. The input offset is folded into
//! the bias (`bias + in_off * sum(w)`): a tap on the zero point adds `(zp + in_off) * w = 0`,
//! exactly what TFLM's skipped tap adds. A position's inputs are all read before its outputs
//! are written, so an output over its input (as the memory plan places it) is safe.

use crate::mac::{Byte, Out8};

/// A convolution-like layer.
pub struct Conv<'a> {
    /// `[n, h, w, c, oh, ow, cout, kh, kw, sh, sw, dh, dw, pad_h, pad_w, groups]`.
    pub g: [u16; 16],
    /// Weight layout: `false` `[cout][kh][kw][c / groups]` (convolutions, fully connected),
    /// `true` `[kh][kw][cout]` (depthwise, `groups == c`).
    pub depthwise: bool,
    /// int8 weights.
    pub w: &'a [u8],
    /// Accumulator start per output channel: the bias with the input offset folded in.
    pub bias: &'a [i32],
    /// Quantized multiplier and shift per output channel, or one for all.
    pub mult: &'a [i32],
    pub shift: &'a [i8],
    /// The input zero point; the output zero point; the output range.
    pub in_zp: i8,
    pub out_zp: i32,
    pub lo: i32,
    pub hi: i32,
}

/// Runs `p` over `x` into `y`; with `rev` positions and channels run backwards (the exact
/// reverse of the forward order). `win` holds `kh * kw * c` values, `out` `cout`.
pub fn conv<B: Byte, Y: Out8>(p: &Conv, x: &[B], mut y: Y, rev: bool, win: &mut [i8], out: &mut [i8]) {
    let [n, h, w, c, oh, ow, cout, kh, kw, sh, sw, dh, dw, pad_h, pad_w, _] = p.g.map(|v| v as usize);
    let win = &mut win[..kh * kw * c];
    let out = &mut out[..cout];
    let npos = n * oh * ow;
    for i in 0..npos {
        let pos = if rev { npos - 1 - i } else { i };
        let b = pos / (oh * ow);
        let iy0 = (pos / ow % oh * sh) as isize - pad_h as isize;
        let ix0 = (pos % ow * sw) as isize - pad_w as isize;
        for (t, dst) in win.chunks_exact_mut(c).enumerate() {
            let iy = iy0 + (t / kw * dh) as isize;
            let ix = ix0 + (t % kw * dw) as isize;
            if iy < 0 || iy >= h as isize || ix < 0 || ix >= w as isize {
                dst.fill(p.in_zp);
            } else {
                let s = ((b * h + iy as usize) * w + ix as usize) * c;
                for (d, v) in dst.iter_mut().zip(&x[s..s + c]) {
                    *d = v.byte() as i8;
                }
            }
        }
        core(p, win, out);
        for j in 0..cout {
            let oc = if rev { cout - 1 - j } else { j };
            y.put(pos * cout + oc, out[oc]);
        }
    }
}

/// Every output channel of one position from its window.
#[inline(never)]
fn core(p: &Conv, win: &[i8], out: &mut [i8]) {
    let [_, _, _, c, _, _, cout, kh, kw, _, _, _, _, _, _, groups] = p.g.map(|v| v as usize);
    let taps = kh * kw;
    let (cg, og) = (c / groups, cout / groups);
    let per_channel = p.mult.len() > 1;
    for (oc, o) in out.iter_mut().enumerate() {
        let mut acc = p.bias[oc];
        if p.depthwise {
            let ic = oc / og;
            for t in 0..taps {
                acc = acc.wrapping_add(win[t * c + ic] as i32 * (p.w[t * cout + oc] as i8 as i32));
            }
        } else if groups == 1 {
            for (a, b) in win.iter().zip(&p.w[oc * taps * c..(oc + 1) * taps * c]) {
                acc = acc.wrapping_add(*a as i32 * (*b as i8 as i32));
            }
        } else {
            let ic0 = oc / og * cg;
            let wr = &p.w[oc * taps * cg..(oc + 1) * taps * cg];
            for t in 0..taps {
                for i in 0..cg {
                    acc = acc.wrapping_add(win[t * c + ic0 + i] as i32 * (wr[t * cg + i] as i8 as i32));
                }
            }
        }
        let k = if per_channel { oc } else { 0 };
        // The out-of-line requantization the loop forms call too (one copy per model).
        *o = crate::q::requant(acc, p.mult[k], p.shift[k] as i32, p.out_zp, p.lo, p.hi);
    }
}
