//! Literal helpers: numbers as tokens that print the way a person would write them.

use proc_macro2::{Literal, TokenStream};
use quote::quote;

pub fn usize(v: usize) -> TokenStream {
    let l = Literal::usize_unsuffixed(v);
    quote!(#l)
}

pub fn i32(v: i32) -> TokenStream {
    if v < 0 {
        let l = Literal::i64_unsuffixed(-(v as i64));
        quote!(-#l)
    } else {
        let l = Literal::i32_unsuffixed(v);
        quote!(#l)
    }
}

pub fn i32s(vs: &[i32]) -> TokenStream {
    let items = vs.iter().map(|&v| i32(v));
    quote!([#(#items),*])
}

pub fn f32(v: f32) -> TokenStream {
    if v.is_nan() {
        return quote!(f32::NAN);
    }
    if v.is_infinite() {
        return if v > 0.0 { quote!(f32::INFINITY) } else { quote!(f32::NEG_INFINITY) };
    }
    if v == f32::MAX {
        return quote!(f32::MAX);
    }
    if v == f32::MIN {
        return quote!(f32::MIN);
    }
    // `{:?}` prints the shortest string that round-trips.
    let s = format!("{:?}", v.abs());
    let l: Literal = s.parse().unwrap_or_else(|_| Literal::f32_unsuffixed(v.abs()));
    if v.is_sign_negative() {
        quote!(-#l)
    } else {
        quote!(#l)
    }
}

/// A byte string literal `*b"..."` of type `[u8; N]`.
pub fn bytes(b: &[u8]) -> TokenStream {
    let l = Literal::byte_string(b);
    quote!(*#l)
}
