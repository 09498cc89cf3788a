//! State kept between calls (TFLite resource variables): the `State` type with its initial
//! contents, and the copies READ_VARIABLE / ASSIGN_VARIABLE compile to.

use super::lit;
use crate::error::{Error, Result};
use crate::ir::{Graph, Node, Op};
use crate::plan::{Loc, Plan};
use proc_macro2::TokenStream;
use quote::quote;

/// Byte offset of every variable in `State`, and the total size.
pub fn layout(g: &Graph) -> (Vec<usize>, usize) {
    let mut offs = Vec::with_capacity(g.variables.len());
    let mut at = 0usize;
    for v in &g.variables {
        at = at.div_ceil(4) * 4;
        offs.push(at);
        at += v.bytes();
    }
    (offs, at.div_ceil(4) * 4)
}

/// `State`, `STATE_BYTES`, `State::new()` (the initial values) and `State::reset()`.
pub fn api(g: &Graph) -> TokenStream {
    let (offs, total) = layout(g);
    let mut init = vec![0u8; total];
    for (v, &o) in g.variables.iter().zip(&offs) {
        init[o..o + v.init.len()].copy_from_slice(&v.init);
    }
    let n = lit::usize(total);
    let bytes = lit::bytes(&init);
    let mut doc = vec![
        format!(" State carried from one `predict` call to the next ({total} bytes): the model's resource variables."),
        " `State::new()` holds their initial values (the model's CALL_ONCE initializer); `reset()` restores them.".to_string(),
        " Keep one `State` per stream of inputs.".to_string(),
        String::new(),
    ];
    for (v, &o) in g.variables.iter().zip(&offs) {
        doc.push(format!(" * [{}..{}) `{}`: {} {:?}", o, o + v.bytes(), v.name, v.dtype, v.shape));
    }
    let doc = doc.iter().map(|l| quote!(#[doc = #l]));
    quote! {
        /// Bytes of state kept between calls.
        pub const STATE_BYTES: usize = #n;
        const STATE_INIT: [u8; STATE_BYTES] = #bytes;
        #(#doc)*
        #[repr(C, align(4))]
        #[derive(Clone)]
        pub struct State(pub [u8; STATE_BYTES]);
        impl State {
            /// The initial state.
            #[allow(dead_code)]
            pub const fn new() -> Self {
                State(STATE_INIT)
            }
            /// Back to the initial state (as at the first call).
            #[allow(dead_code)]
            pub fn reset(&mut self) {
                self.0 = STATE_INIT;
            }
        }
        impl Default for State {
            fn default() -> Self {
                Self::new()
            }
        }
    }
}

/// The statements for a READ_VARIABLE or ASSIGN_VARIABLE node.
pub fn emit(g: &Graph, plan: &Plan, node: &Node) -> Result<Option<TokenStream>> {
    let (offs, _) = layout(g);
    let err = |m: &str| Error::unsupported(m.to_string()).with_op(node.index, node.op.name());
    match node.op {
        Op::ReadVariable { var } => {
            let v = &g.variables[var];
            let (s, e) = (lit::usize(offs[var]), lit::usize(offs[var] + v.bytes()));
            let y = node.outputs[0];
            let _doc = format!("op {} READ_VARIABLE '{}' -> t{}", node.index, v.name, g.t(y).index);
            match plan.loc[y] {
                Some(Loc::Arena { offset }) => {
                    let (a, b) = (lit::usize(offset), lit::usize(offset + v.bytes()));
                    Ok(Some(quote! {
                        arena.0[#a..#b].copy_from_slice(&state.0[#s..#e]);
                    }))
                }
                _ => Err(err("a variable read directly into a model output is not supported")),
            }
        }
        Op::AssignVariable { var } => {
            let v = &g.variables[var];
            let (s, e) = (lit::usize(offs[var]), lit::usize(offs[var] + v.bytes()));
            let x = node.input(0).ok_or_else(|| err("ASSIGN_VARIABLE without value"))?;
            let _doc = format!("op {} ASSIGN_VARIABLE t{} -> '{}'", node.index, g.t(x).index, v.name);
            match plan.loc[x] {
                Some(Loc::Arena { offset }) => {
                    let (a, b) = (lit::usize(offset), lit::usize(offset + v.bytes()));
                    Ok(Some(quote! {
                        state.0[#s..#e].copy_from_slice(&arena.0[#a..#b]);
                    }))
                }
                Some(Loc::Const) => {
                    let d = g.t(x).data.clone().unwrap_or_default();
                    let lb = lit::bytes(&d);
                    Ok(Some(quote! {
                        state.0[#s..#e].copy_from_slice(&#lb);
                    }))
                }
                _ => Err(err("assigning a model input or output directly to a variable is not supported")),
            }
        }
        _ => Ok(None),
    }
}
