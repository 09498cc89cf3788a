//! The `size` strategy of int8 convolutions and fully connected layers: a call of the one
//! shared routine `microgen_rt::small::conv` with the layer's constant parameter block.

use super::super::{lit, Kernel, KernelCtx};
use super::strategy::{Est, Strategy};
use quote::quote;

/// A layer for the compact routine.
pub struct Layer<'a> {
    /// `[n, h, w, c, oh, ow, cout, kh, kw, sh, sw, dh, dw, pad_h, pad_w, groups]`.
    pub g: [usize; 16],
    /// Weights `[kh][kw][cout]` (else `[cout][kh][kw][c / groups]`).
    pub depthwise: bool,
    pub w: &'a [u8],
    pub bias: &'a [i32],
    pub mults: &'a [(i32, i32)],
    pub in_off: i32,
    pub out_zp: i32,
    pub lo: i32,
    pub hi: i32,
}

/// The kernel, or `None` when a dimension does not fit the parameter block.
pub fn emit(ctx: &KernelCtx, l: &Layer, doc: String, macs: u64) -> Option<Kernel> {
    if l.g.iter().any(|&v| v > u16::MAX as usize) || l.g[15] == 0 {
        return None;
    }
    let [n, _, _, c, oh, ow, cout, kh, kw, _, _, _, _, _, _, groups] = l.g;
    if l.bias.len() != cout || l.w.len() < kh * kw * cout * (c / groups) || c % groups != 0 || cout % groups != 0 {
        return None;
    }
    // The input offset folded into the bias: every tap counts (taps outside the input read
    // the zero point, which adds nothing after the offset).
    let taps = kh * kw * c / groups;
    let folded: Vec<i32> = (0..cout)
        .map(|o| {
            let s = (0..taps).fold(0i32, |a, t| {
                let i = if l.depthwise { t * cout + o } else { o * taps + t };
                a.wrapping_add(l.w[i] as i8 as i32)
            });
            l.bias[o].wrapping_add(l.in_off.wrapping_mul(s))
        })
        .collect();
    let uniform = l.mults.iter().all(|m| *m == l.mults[0]);
    let mults: &[(i32, i32)] = if uniform { &l.mults[..1] } else { l.mults };
    let (w_id, b_id, m_id, s_id, p_id) = (ctx.ident("W"), ctx.ident("B"), ctx.ident("M"), ctx.ident("S"), ctx.ident("P"));
    let (wn, bn, mn) = (lit::usize(l.w.len()), lit::usize(l.bias.len()), lit::usize(mults.len()));
    let wb = lit::bytes(l.w);
    let bias = lit::i32s(&folded);
    let m = lit::i32s(&mults.iter().map(|m| m.0).collect::<Vec<_>>());
    let sh = mults.iter().map(|m| lit::i32(m.1));
    let g = l.g.map(lit::usize);
    let dw = l.depthwise;
    let (in_zp, out_zp, lo, hi) = (lit::i32(-l.in_off), lit::i32(l.out_zp), lit::i32(l.lo), lit::i32(l.hi));
    let statics = quote! {
        /// Weights, int8.
        static #w_id: [u8; #wn] = #wb;
        /// Bias with the input offset folded in, int32.
        static #b_id: [i32; #bn] = #bias;
        /// Requantization multipliers and shifts.
        static #m_id: [i32; #mn] = #m;
        static #s_id: [i8; #mn] = [#(#sh),*];
        /// The layer for `microgen_rt::small::conv`.
        static #p_id: ::microgen_rt::small::Conv<'static> = ::microgen_rt::small::Conv {
            g: [#(#g),*],
            depthwise: #dw,
            w: &#w_id,
            bias: &#b_id,
            mult: &#m_id,
            shift: &#s_id,
            in_zp: #in_zp,
            out_zp: #out_zp,
            lo: #lo,
            hi: #hi,
        };
    };
    let rev = ctx.reverse;
    let (wn_l, co_l) = (lit::usize(kh * kw * c), lit::usize(cout));
    let body = quote! {
        let mut win = [0i8; #wn_l];
        let mut out = [0i8; #co_l];
        ::microgen_rt::small::conv(&#p_id, x0, y0, #rev, &mut win, &mut out);
    };
    let pos = (n * oh * ow) as u64;
    let instructions = macs * 6 + pos * ((kh * kw * c) as u64 * 4 + cout as u64 * 45 + 30);
    ctx.report(Strategy::Compact, Est { instructions, code_bytes: 50, shared: vec![("small::conv".into(), 1500)] });
    let const_bytes = l.w.len() + 4 * cout + 5 * mults.len() + 56;
    let scratch = kh * kw * c + cout;
    Some(Kernel { statics, body, doc: format!("{doc}; compact: the shared routine over a parameter block, {scratch} B of stack scratch"), macs, const_bytes })
}
