//! Code generation: the generated module's skeleton (API, arena, `predict`) and the calls
//! into per-operator kernels emitted by [`kernels`].

pub mod kernels;
pub mod lit;
pub mod state;

use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Node, TensorId};
use crate::plan::{Loc, Plan};
use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};
use std::fmt::Write as _;

/// One operand of a kernel call: the tensor and the Rust slice type it is passed as.
#[derive(Debug, Clone)]
pub struct Operand {
    pub t: TensorId,
    /// `true` when it is passed as arena bytes (`[u8]`), `false` for a typed slice.
    pub bytes: bool,
}

/// What a kernel emitter sees.
pub struct KernelCtx<'a> {
    pub g: &'a Graph,
    pub node: &'a Node,
    /// Prefix for the kernel's statics, e.g. `OP3`.
    pub prefix: String,
    /// Run the output positions backwards (window kernels; set by the memory plan when the
    /// output overlaps the input from above).
    pub reverse: bool,
    /// The memory plan overlaps the output with an input (the kernel's modelled order of
    /// reads and writes must hold).
    pub overlap: bool,
    /// The kernel strategy asked for (emitters without that strategy use their loop form).
    pub strategy: kernels::strategy::Strategy,
    /// Requantization written out in each loop kernel (the speed goal), else one shared
    /// out-of-line call (`microgen_rt::q::requant`) for flash.
    pub inline_requant: bool,
    /// What an emitter that produced a strategy other than the loop form reports about it
    /// (see [`KernelCtx::report`]).
    pub reported: std::cell::RefCell<Option<(kernels::strategy::Strategy, kernels::strategy::Est)>>,
}

impl KernelCtx<'_> {
    pub fn tensor(&self, i: usize) -> Result<&crate::ir::Tensor> {
        let id = self.node.input(i).ok_or_else(|| self.err(format!("input {i} is missing")))?;
        Ok(self.g.t(id))
    }
    pub fn out(&self, i: usize) -> Result<&crate::ir::Tensor> {
        let id = *self.node.outputs.get(i).ok_or_else(|| self.err(format!("output {i} is missing")))?;
        Ok(self.g.t(id))
    }
    /// An error located at this operator.
    pub fn err(&self, msg: impl Into<String>) -> Error {
        Error::invalid(msg).with_op(self.node.index, self.node.op.name())
    }
    pub fn unsupported(&self, msg: impl Into<String>) -> Error {
        Error::unsupported(msg).with_op(self.node.index, self.node.op.name())
    }
    pub fn ident(&self, suffix: &str) -> Ident {
        format_ident!("{}_{}", self.prefix, suffix)
    }
    /// Records that the kernel was emitted with `strategy` and its estimated cost.
    pub fn report(&self, strategy: kernels::strategy::Strategy, est: kernels::strategy::Est) {
        *self.reported.borrow_mut() = Some((strategy, est));
    }
}

/// What an emitter returns.
pub struct Kernel {
    /// Statics (weights, tables) the kernel uses.
    pub statics: TokenStream,
    /// The body of `fn opN_xxx(x0.., y0..)`.
    pub body: TokenStream,
    /// One line describing the layer (shapes, types, figures) for the docs.
    pub doc: String,
    /// Multiply-accumulates per inference.
    pub macs: u64,
    /// Constant bytes the kernel puts in flash.
    pub const_bytes: usize,
}

/// Per-layer figures, for `inspect` and the docs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerInfo {
    pub index: usize,
    pub op: String,
    pub doc: String,
    pub macs: u64,
    pub const_bytes: usize,
    /// The strategy chosen, and its estimated code bytes (this layer's own, without the
    /// shared runtime routines) and Cortex-M4 instructions per inference.
    pub strategy: kernels::strategy::Strategy,
    /// The strategy compiled instead on targets without pairwise int16 multiply-accumulate
    /// (neither Cortex-M4/M7 DSP nor x86-64), when the speed goal chooses another there.
    pub portable_strategy: Option<kernels::strategy::Strategy>,
    /// The strategy compiled for the x86-64 host instead, when different.
    pub host_strategy: Option<kernels::strategy::Strategy>,
    pub est_code_bytes: usize,
    pub est_instructions: u64,
    /// Every strategy the layer could take, with its estimates.
    pub candidates: Vec<kernels::strategy::Candidate>,
}

pub struct Generated {
    pub code: String,
    pub layers: Vec<LayerInfo>,
    /// Estimated code bytes of the shared runtime routines the chosen kernels use.
    pub shared_bytes: usize,
}

fn elem_ty(d: DType) -> TokenStream {
    match d {
        DType::F32 => quote!(f32),
        DType::I8 => quote!(i8),
        DType::U8 => quote!(u8),
        DType::I16 => quote!(i16),
        DType::I32 => quote!(i32),
        DType::I64 => quote!(i64),
        _ => quote!(u8),
    }
}

fn check_io_dtype(g: &Graph, t: TensorId, what: &str) -> Result<()> {
    let tt = g.t(t);
    match tt.dtype {
        DType::F32 | DType::I8 | DType::U8 | DType::I16 | DType::I32 | DType::I64 => Ok(()),
        d => Err(Error::unsupported(format!("model {what} has type {d}, which is not supported; microgen supports int8, uint8, int16, int32, int64 and float32 inputs and outputs"))
            .with_tensor(tt.index, &tt.name)),
    }
}

/// Generates the Rust module for a planned graph with the default goal.
pub fn generate(g: &Graph, plan: &Plan, header: &str) -> Result<Generated> {
    generate_with(g, plan, header, kernels::strategy::Goal::default())
}

/// A layer's candidates and the forms compiled for it: per form, the target groups it is for
/// (0 Cortex-M4/M7 DSP, 1 x86-64, 2 the others; the first form is the main choice, for the
/// groups no other form takes), its candidate and kernel.
struct Variants {
    all: Vec<kernels::strategy::Candidate>,
    forms: Vec<(Vec<usize>, kernels::strategy::Candidate, Kernel)>,
}

/// Generates the Rust module for a planned graph, kernel strategies chosen for `goal`.
pub fn generate_with(g: &Graph, plan: &Plan, header: &str, goal: kernels::strategy::Goal) -> Result<Generated> {
    for &t in &g.inputs {
        check_io_dtype(g, t, "input")?;
    }
    for &t in &g.outputs {
        check_io_dtype(g, t, "output")?;
    }
    let single_in = g.inputs.len() == 1;
    let single_out = g.outputs.len() == 1;

    let mut items = TokenStream::new();
    let mut calls = TokenStream::new();
    let mut layers = Vec::new();
    let mut kernel_items = TokenStream::new();

    // Every layer's candidate kernels (one per strategy its emitter offers), then one
    // choice for the whole model (a flash budget weighs the layers together).
    let mut cands: Vec<Vec<(kernels::strategy::Candidate, Kernel)>> = Vec::new();
    for (step, &n) in plan.schedule.iter().enumerate() {
        let node = &g.nodes[n];
        let mut cs = Vec::new();
        if !node.op.is_view() && !matches!(node.op, crate::ir::Op::ReadVariable { .. } | crate::ir::Op::AssignVariable { .. }) {
            for strategy in kernels::strategy::offered(g, node) {
                let ctx = KernelCtx { g, node, prefix: format!("OP{}", node.index), reverse: plan.reverse_at(step), overlap: plan.overlaps_at(step).next().is_some(), strategy, inline_requant: goal == kernels::strategy::Goal::Speed, reported: Default::default() };
                let k = kernels::emit(&ctx).map_err(|e| e.with_op(node.index, node.op.name()))?;
                let c = kernels::strategy::candidate(&ctx, &k);
                if !cs.iter().any(|(o, _): &(kernels::strategy::Candidate, Kernel)| o.strategy == c.strategy) {
                    cs.push((c, k));
                }
            }
        }
        cands.push(cs);
    }
    let estimates: Vec<Vec<kernels::strategy::Candidate>> = cands.iter().map(|cs| cs.iter().map(|(c, _)| c.clone()).collect()).collect();
    let chosen = kernels::strategy::choose(goal, &estimates)?;
    // The speed goal on targets without packed multiply-accumulate: another choice where it
    // differs, compiled in by `cfg` (the flash goals choose the same for every target).
    let speed = goal == kernels::strategy::Goal::Speed;
    let portable = if speed { kernels::strategy::choose_portable(&estimates, &chosen) } else { vec![None; chosen.len()] };
    // And on the x86-64 host: the vector form, else the packed one, wherever a layer offers
    // it (their AVX2 kernels beat the others there, whatever the Cortex-M4 estimates say).
    let host = if speed { kernels::strategy::choose_host(&estimates, &chosen) } else { vec![None; chosen.len()] };
    let mut shared_seen = std::collections::BTreeMap::new();
    let mut cands: Vec<Option<Variants>> = cands
        .into_iter()
        .zip(estimates)
        .zip(chosen.iter().zip(portable.iter().zip(&host)))
        .map(|((cs, all), (&i, (&alt, &hst)))| {
            if cs.is_empty() {
                return None;
            }
            // Per target group (Cortex-M4/M7 DSP, x86-64, others) the index of its candidate.
            let pick = [i, hst.unwrap_or(i), alt.unwrap_or(i)];
            let mut cs: Vec<Option<_>> = cs.into_iter().map(Some).collect();
            let mut forms: Vec<(Vec<usize>, kernels::strategy::Candidate, Kernel)> = Vec::new();
            for (target, &j) in pick.iter().enumerate() {
                match forms.iter_mut().find(|f| pick[f.0[0]] == j) {
                    Some(f) => f.0.push(target),
                    None => {
                        let (c, k) = cs[j].take().expect("chosen candidate");
                        forms.push((vec![target], c, k));
                    }
                }
            }
            Some(Variants { all, forms })
        })
        .collect();

    for (step, &n) in plan.schedule.iter().enumerate() {
        let node = &g.nodes[n];
        if node.op.is_view() {
            continue;
        }
        if let Some(stmts) = state::emit(g, plan, node)? {
            // `#[doc]` on a statement is not allowed: keep the description as a comment-free block.
            calls.extend(quote!({ #stmts }));
            continue;
        }
        let Some(Variants { all, mut forms }) = cands[step].take() else {
            return Err(Error::invalid("internal error: no kernel for an operator").with_op(node.index, node.op.name()));
        };
        // The strategy of the form compiled for target group `t`, when not the main one.
        let other = |forms: &[(Vec<usize>, kernels::strategy::Candidate, Kernel)], t: usize| forms.iter().skip(1).find(|f| f.0.contains(&t)).map(|f| f.1.strategy);
        let (portable_strategy, host_strategy) = (other(&forms, 2), other(&forms, 1));
        let (_, cand, k) = forms.remove(0);
        for (key, bytes) in &cand.shared {
            shared_seen.insert(key.clone(), *bytes);
        }
        let fn_name = format_ident!("op{}_{}", node.index, node.op.name().to_lowercase());
        // Parameters and arguments.
        let mut params = Vec::new();
        let mut ins: Vec<Operand> = Vec::new();
        for &t in node.inputs.iter().flatten() {
            if g.t(t).is_const() {
                continue;
            }
            ins.push(Operand { t, bytes: matches!(plan.loc[t], Some(Loc::Arena { .. })) });
        }
        let outs: Vec<Operand> = node
            .outputs
            .iter()
            .map(|&t| Operand { t, bytes: matches!(plan.loc[t], Some(Loc::Arena { .. })) })
            .collect();
        // An output sharing arena bytes with an input: every arena operand is passed as
        // shared cells of the arena (`&[Cell<u8>]`), which may alias.
        let cells = shares(g, plan, &ins, &outs);
        for (i, o) in ins.iter().enumerate() {
            let name = format_ident!("x{}", i);
            let ty = if o.bytes && cells {
                quote!([::core::cell::Cell<u8>])
            } else if o.bytes {
                quote!([u8])
            } else {
                let e = elem_ty(g.t(o.t).dtype);
                quote!([#e])
            };
            params.push(quote!(#name: &#ty));
        }
        for (i, o) in outs.iter().enumerate() {
            let name = format_ident!("y{}", i);
            if o.bytes && cells {
                params.push(quote!(#name: &[::core::cell::Cell<u8>]));
                continue;
            }
            let ty = if o.bytes { quote!([u8]) } else { let e = elem_ty(g.t(o.t).dtype); quote!([#e]) };
            params.push(quote!(#name: &mut #ty));
        }
        let statics = &k.statics;
        // The layer's memory notes, shared by every form emitted for it.
        let mut overlaps = String::new();
        for ov in plan.overlaps_at(step) {
            let _ = write!(
                overlaps,
                "; writes over its input t{} ({} B shared, output at input {:+} B{})",
                g.t(ov.input).index,
                ov.bytes,
                ov.shift,
                if ov.reverse { ", positions backwards" } else { "" }
            );
        }
        let cells_use = if cells { quote!(use ::microgen_rt::buf::CellsSet as _;) } else { quote!() };
        let kernel_fn = |k: &Kernel, vis: TokenStream| {
            let doc = format!(" {} (operator {}, step {}): {}{overlaps}", node.op.name(), node.index, step, k.doc);
            let body = &k.body;
            quote! {
                #[doc = #doc]
                #[allow(clippy::all, unused_imports, unused_variables)]
                #vis fn #fn_name(#(#params),*) {
                    #[allow(unused_imports)]
                    use ::microgen_rt::buf::{F32s as _, F32sMut as _, I16s as _, I16sMut as _, I32s as _, I32sMut as _, I64s as _, I64sMut as _, I8s as _, I8sMut as _, U8s as _, U8sMut as _};
                    #cells_use
                    #body
                }
            }
        };
        if forms.is_empty() {
            let f = kernel_fn(&k, quote!());
            kernel_items.extend(quote! { #statics #f });
        } else {
            // Several forms of the layer, one compiled per target group: the main choice
            // (Cortex-M4/M7 with DSP), the x86-64 host's, and the one for targets without
            // pairwise multiply-accumulate (Cortex-M0+, RISC-V); groups with the same form
            // share it.
            let m = format_ident!("{}_kernel", fn_name);
            let dsp = quote!(all(target_arch = "arm", target_feature = "dsp"));
            let conds = [dsp.clone(), quote!(target_arch = "x86_64"), quote!(not(any(#dsp, target_arch = "x86_64")))];
            let names = ["Cortex-M4/M7 (DSP)", "x86-64", "targets without pairwise multiply-accumulate"];
            let main_targets: Vec<usize> = (0..3).filter(|t| !forms.iter().any(|f| f.0.contains(t))).collect();
            let all_forms = std::iter::once((main_targets, &k)).chain(forms.iter().map(|(ts, _, fk)| (ts.clone(), fk)));
            for (ts, fk) in all_forms {
                let st = &fk.statics;
                let cs: Vec<&TokenStream> = ts.iter().map(|&t| &conds[t]).collect();
                let cfg = if cs.len() == 1 { quote!(#(#cs)*) } else { quote!(any(#(#cs),*)) };
                let doc = format!(" The form for {}.", ts.iter().map(|&t| names[t]).collect::<Vec<_>>().join(", "));
                let f = kernel_fn(fk, quote!(pub(super)));
                kernel_items.extend(quote! {
                    #[doc = #doc]
                    #[cfg(#cfg)]
                    mod #m {
                        #[allow(unused_imports)]
                        use super::*;
                        #st
                        #f
                    }
                });
            }
            kernel_items.extend(quote!(use #m::#fn_name;));
        }
        calls.extend(if cells { call_cells(g, plan, &fn_name, &ins, &outs, single_in, single_out)? } else { call(g, plan, &fn_name, &ins, &outs, single_in, single_out)? });
        layers.push(LayerInfo {
            index: node.index,
            op: node.op.name().to_string(),
            doc: k.doc.clone(),
            macs: k.macs,
            const_bytes: k.const_bytes,
            strategy: cand.strategy,
            portable_strategy,
            host_strategy,
            est_code_bytes: cand.code_bytes,
            est_instructions: cand.instructions,
            candidates: all,
        });
    }
    // Outputs that need a copy at the end.
    for &(t, k) in &plan.copy_out {
        let src = operand_ref(g, plan, t, single_in, single_out, false)?;
        let dst = if single_out { quote!(output) } else { let f = format_ident!("output{}", k); quote!(output.#f) };
        let n = lit::usize(g.t(t).elems());
        let (get, set) = match g.t(t).dtype {
            DType::F32 => (quote!(get_f32), quote!(set_f32)),
            DType::I16 => (quote!(get_i16), quote!(set_i16)),
            DType::I32 => (quote!(get_i32), quote!(set_i32)),
            DType::I64 => (quote!(get_i64), quote!(set_i64)),
            DType::U8 => (quote!(get_u8), quote!(set_u8)),
            _ => (quote!(get_i8), quote!(set_i8)),
        };
        calls.extend(quote! {
            {
                use ::microgen_rt::buf::{F32s as _, F32sMut as _, I16s as _, I16sMut as _, I32s as _, I32sMut as _, I64s as _, I64sMut as _, I8s as _, I8sMut as _, U8s as _, U8sMut as _};
                let x = #src;
                for i in 0..#n { #dst[..].#set(i, x.#get(i)); }
            }
        });
    }

    // Public API.
    let arena_bytes = lit::usize(plan.arena_bytes);
    let plan_doc = plan_doc(g, plan, &layers);
    let plan_lines = plan_doc.lines().map(|l| quote!(#[doc = #l]));
    items.extend(quote! {
        #(#plan_lines)*
        pub const ARENA_BYTES: usize = #arena_bytes;

        /// The scratch memory `predict` works in. Allocate it once (e.g. in a `static` or on
        /// the stack); its contents need not be initialised between calls.
        #[repr(C, align(16))]
        pub struct Arena(pub [u8; ARENA_BYTES]);

        impl Arena {
            /// A zeroed arena (usable in a `static`).
            #[allow(dead_code)]
            pub const fn new() -> Self {
                Arena([0; ARENA_BYTES])
            }
        }

        impl Default for Arena {
            fn default() -> Self {
                Self::new()
            }
        }
    });
    items.extend(io_api(g, &g.inputs, "input", single_in)?);
    items.extend(io_api(g, &g.outputs, "output", single_out)?);
    let total_macs: u64 = layers.iter().map(|l| l.macs).sum();
    let macs_lit = proc_macro2::Literal::u64_unsuffixed(total_macs);
    let predict_doc = format!(
        " Runs the model once: reads `input`, writes `output`. Uses `arena` as scratch memory ({} bytes). {} multiply-accumulates.",
        plan.arena_bytes, total_macs
    );
    let stateful = !g.variables.is_empty();
    let predict_sig = if stateful {
        items.extend(state::api(g));
        quote!(pub fn predict(arena: &mut Arena, state: &mut State, input: &Input, output: &mut Output))
    } else {
        quote!(pub fn predict(arena: &mut Arena, input: &Input, output: &mut Output))
    };
    items.extend(quote! {
        /// Multiply-accumulates per inference.
        #[allow(dead_code)]
        pub const MACS: u64 = #macs_lit;

        #[doc = #predict_doc]
        #predict_sig {
            let _ = (&arena, &input);
            #calls
        }
        #kernel_items
    });

    let file: syn::File = syn::parse2(items).map_err(|e| Error::new(crate::error::ErrorKind::Invalid, format!("internal error: generated code does not parse: {e}")))?;
    let mut code = String::from(header);
    code.push_str(&prettyplease::unparse(&file));
    Ok(Generated { code, layers, shared_bytes: shared_seen.values().sum() })
}

/// Expression for a read-only view of a non-arena tensor (input, output).
fn operand_ref(g: &Graph, plan: &Plan, t: TensorId, single_in: bool, single_out: bool, _m: bool) -> Result<TokenStream> {
    let n = lit::usize(g.t(t).bytes());
    Ok(match plan.loc[t] {
        Some(Loc::Input { k }) => {
            if single_in {
                quote!(&input[..])
            } else {
                let f = format_ident!("input{}", k);
                quote!(&input.#f[..])
            }
        }
        Some(Loc::Output { k }) => {
            if single_out {
                quote!(&output[..])
            } else {
                let f = format_ident!("output{}", k);
                quote!(&output.#f[..])
            }
        }
        Some(Loc::Arena { offset }) => {
            let a = lit::usize(offset);
            let e = lit::usize(offset + g.t(t).bytes());
            let _ = n;
            quote!(&arena.0[#a..#e])
        }
        _ => return Err(Error::invalid("internal error: operand has no location").with_tensor(g.t(t).index, &g.t(t).name)),
    })
}

/// Whether an arena output of a call shares bytes with an arena input.
fn shares(g: &Graph, plan: &Plan, ins: &[Operand], outs: &[Operand]) -> bool {
    outs.iter().filter_map(|o| plan.arena_range(g, o.t)).any(|(ys, ye)| {
        ins.iter().filter_map(|i| plan.arena_range(g, i.t)).any(|(xs, xe)| xs < ye && ys < xe)
    })
}

/// A call whose output overlaps an input (in place, or partially): the whole arena as
/// shared cells, one sub-slice per arena operand, at constant offsets. No `unsafe`: the
/// plan's checker has simulated the kernel's reads and writes byte by byte.
fn call_cells(g: &Graph, plan: &Plan, f: &Ident, ins: &[Operand], outs: &[Operand], si: bool, so: bool) -> Result<TokenStream> {
    let mut args = Vec::new();
    for o in ins {
        if let Some((s, e)) = plan.arena_range(g, o.t) {
            let (a, b) = (lit::usize(s), lit::usize(e));
            args.push(quote!(&cells[#a..#b]));
        } else {
            args.push(operand_ref(g, plan, o.t, si, so, false)?);
        }
    }
    for o in outs {
        if let Some((s, e)) = plan.arena_range(g, o.t) {
            let (a, b) = (lit::usize(s), lit::usize(e));
            args.push(quote!(&cells[#a..#b]));
        } else {
            match plan.loc[o.t] {
                Some(Loc::Output { k }) => {
                    if so {
                        args.push(quote!(&mut output[..]));
                    } else {
                        let fld = format_ident!("output{}", k);
                        args.push(quote!(&mut output.#fld[..]));
                    }
                }
                _ => return Err(Error::invalid("internal error: output has no writable location").with_tensor(g.t(o.t).index, &g.t(o.t).name)),
            }
        }
    }
    Ok(quote! {
        {
            let cells = ::core::cell::Cell::from_mut(&mut arena.0[..]).as_slice_of_cells();
            #f(#(#args),*);
        }
    })
}

/// The statements of one kernel call: carve the arena into the output regions (mutable)
/// and the rest (read-only) with `split_at_mut` at constant offsets, then call.
fn call(g: &Graph, plan: &Plan, f: &Ident, ins: &[Operand], outs: &[Operand], si: bool, so: bool) -> Result<TokenStream> {
    let mut stmts = TokenStream::new();
    // Arena outputs, sorted by offset.
    let mut arena_outs: Vec<(usize, usize, usize)> = Vec::new(); // (start, end, out index)
    for (i, o) in outs.iter().enumerate() {
        if let Some((s, e)) = plan.arena_range(g, o.t) {
            arena_outs.push((s, e, i));
        }
    }
    arena_outs.sort();
    // Read-only segments around the outputs: (start, end).
    let mut segs: Vec<(usize, usize)> = Vec::new();
    let mut cursor = 0usize;
    for &(s, e, _) in &arena_outs {
        segs.push((cursor, s));
        cursor = e;
    }
    if !arena_outs.is_empty() {
        segs.push((cursor, plan.arena_bytes.max(cursor)));
    }
    // Arguments for the inputs, recording which segments are read.
    let mut used = vec![false; segs.len()];
    let mut args = Vec::new();
    for o in ins {
        if let Some((s, e)) = plan.arena_range(g, o.t) {
            if segs.is_empty() {
                let (a, b) = (lit::usize(s), lit::usize(e));
                args.push(quote!(&arena.0[#a..#b]));
            } else {
                let j = segs.iter().position(|(a, b)| *a <= s && e <= *b).ok_or_else(|| {
                    Error::invalid("internal error: an input overlaps an output of the same operator in the arena").with_tensor(g.t(o.t).index, &g.t(o.t).name)
                })?;
                used[j] = true;
                let (a, b) = (lit::usize(s - segs[j].0), lit::usize(e - segs[j].0));
                let id = format_ident!("r{}", j);
                args.push(quote!(&#id[#a..#b]));
            }
        } else {
            args.push(operand_ref(g, plan, o.t, si, so, false)?);
        }
    }
    let mut out_idents: Vec<Option<Ident>> = vec![None; outs.len()];
    if !arena_outs.is_empty() {
        stmts.extend(quote!(let rest: &mut [u8] = &mut arena.0[..];));
        let n = arena_outs.len();
        for (j, &(s, e, oi)) in arena_outs.iter().enumerate() {
            let gap_len = s - segs[j].0;
            let yi = format_ident!("w{}", j);
            let yl = lit::usize(e - s);
            if used[j] {
                let gap = format_ident!("r{}", j);
                let gl = lit::usize(gap_len);
                stmts.extend(quote!(let (#gap, rest) = rest.split_at_mut(#gl);));
            } else if gap_len > 0 {
                let gl = lit::usize(gap_len);
                stmts.extend(quote!(let rest = &mut rest[#gl..];));
            }
            if j + 1 < n || used[n] {
                stmts.extend(quote!(let (#yi, rest) = rest.split_at_mut(#yl);));
            } else {
                stmts.extend(quote!(let #yi = &mut rest[..#yl];));
            }
            out_idents[oi] = Some(yi);
        }
        if used[n] {
            let tail = format_ident!("r{}", n);
            stmts.extend(quote!(let #tail = rest;));
        }
    }
    for (i, o) in outs.iter().enumerate() {
        if let Some(id) = &out_idents[i] {
            args.push(quote!(#id));
        } else {
            match plan.loc[o.t] {
                Some(Loc::Output { k }) => {
                    if so {
                        args.push(quote!(&mut output[..]));
                    } else {
                        let fld = format_ident!("output{}", k);
                        args.push(quote!(&mut output.#fld[..]));
                    }
                }
                _ => return Err(Error::invalid("internal error: output has no writable location").with_tensor(g.t(o.t).index, &g.t(o.t).name)),
            }
        }
    }
    Ok(quote! {
        {
            #stmts
            #f(#(#args),*);
        }
    })
}

/// Types and constants for the model's inputs or outputs.
fn io_api(g: &Graph, ts: &[TensorId], what: &str, single: bool) -> Result<TokenStream> {
    let mut out = TokenStream::new();
    let upper = what.to_uppercase();
    let ty_name = Ident::new(if what == "input" { "Input" } else { "Output" }, Span::call_site());
    let mut fields = Vec::new();
    for (k, &t) in ts.iter().enumerate() {
        let tt = g.t(t);
        let et = elem_ty(tt.dtype);
        let n = lit::usize(tt.elems());
        let prefix = if single { upper.clone() } else { format!("{upper}{k}") };
        let shape_id = format_ident!("{}_SHAPE", prefix);
        let dims: Vec<TokenStream> = tt.shape.iter().map(|&d| lit::usize(d)).collect();
        let rank = lit::usize(tt.shape.len());
        let doc = format!(" Shape of model {what} {k} (tensor {} '{}', {}).", tt.index, tt.name, tt.dtype);
        out.extend(quote! {
            #[doc = #doc]
            #[allow(dead_code)]
            pub const #shape_id: [usize; #rank] = [#(#dims),*];
        });
        if let (Some(q), DType::I8) = (&tt.quant, tt.dtype) {
            let scale_id = format_ident!("{}_SCALE", prefix);
            let zp_id = format_ident!("{}_ZERO_POINT", prefix);
            let s = lit::f32(q.scale());
            let z = lit::i32(q.zp());
            out.extend(quote! {
                #[doc = " Quantization scale (real value = scale * (q - zero_point))."]
                #[allow(dead_code)]
                pub const #scale_id: f32 = #s;
                #[doc = " Quantization zero point."]
                #[allow(dead_code)]
                pub const #zp_id: i32 = #z;
            });
            if what == "input" {
                let fname = if single { format_ident!("quantize_input") } else { format_ident!("quantize_input{}", k) };
                out.extend(quote! {
                    /// Quantizes a real value for this input (round half away from zero, saturate).
                    #[allow(dead_code)]
                    pub fn #fname(x: f32) -> i8 {
                        ::microgen_rt::f::quantize(x, #scale_id, #zp_id, -128, 127) as i8
                    }
                });
            } else {
                let fname = if single { format_ident!("dequantize_output") } else { format_ident!("dequantize_output{}", k) };
                out.extend(quote! {
                    /// The real value of a quantized output element.
                    #[allow(dead_code)]
                    pub fn #fname(q: i8) -> f32 {
                        #scale_id * (q as i32 - #zp_id) as f32
                    }
                });
            }
        }
        fields.push((format_ident!("{}{}", what, k), quote!([#et; #n]), tt));
    }
    if single {
        let (_, ty, tt) = &fields[0];
        let doc = format!(" The model's {what}: tensor {} '{}', shape {:?}, {}.", tt.index, tt.name, tt.shape, tt.dtype);
        out.extend(quote! {
            #[doc = #doc]
            pub type #ty_name = #ty;
        });
    } else {
        let fs: Vec<TokenStream> = fields
            .iter()
            .map(|(f, ty, tt)| {
                let doc = format!(" Tensor {} '{}', shape {:?}, {}.", tt.index, tt.name, tt.shape, tt.dtype);
                quote!(#[doc = #doc] pub #f: #ty)
            })
            .collect();
        let inits: Vec<TokenStream> = fields
            .iter()
            .map(|(f, _, tt)| {
                let n = lit::usize(tt.elems());
                let z = if tt.dtype == DType::F32 { quote!(0.0) } else { quote!(0) };
                quote!(#f: [#z; #n])
            })
            .collect();
        let doc = format!(" The model's {what}s, in the model's order.");
        out.extend(quote! {
            #[doc = #doc]
            #[derive(Clone, Copy, Debug, PartialEq)]
            pub struct #ty_name { #(#fs),* }
            impl #ty_name {
                /// All zeros.
                pub const fn new() -> Self { #ty_name { #(#inits),* } }
            }
            impl Default for #ty_name {
                fn default() -> Self { Self::new() }
            }
        });
    }
    Ok(out)
}

/// The memory plan and per-layer figures as doc text.
fn plan_doc(g: &Graph, plan: &Plan, layers: &[LayerInfo]) -> String {
    let mut s = String::new();
    let weights: usize = layers.iter().map(|l| l.const_bytes).sum();
    let _ = writeln!(s, " Bytes of scratch memory (`Arena`) the model needs.");
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        " Memory plan for `{}`: arena {} B; lower bound {} B ({}); this schedule's peak of live bytes {} B; constants {} B in flash.",
        g.name,
        plan.arena_bytes,
        plan.lower_bound,
        if plan.lower_bound_exact { "the least peak of live bytes over all schedules" } else { "every operator's operands at once" },
        plan.schedule_peak,
        weights
    );
    let _ = writeln!(s, " Inputs are read in place from the caller's `Input`; outputs are written directly into `Output`.");
    if !plan.overlaps.is_empty() {
        let _ = writeln!(
            s,
            " {} operators write over an input that dies there (`over`: the input, bytes shared, output offset minus input offset; `rev`: the kernel runs its positions backwards).",
            plan.overlaps.len()
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, " ```text");
    let _ = writeln!(s, " step  op   operator               output tensor                     location          live steps");
    for (step, &n) in plan.schedule.iter().enumerate() {
        let node = &g.nodes[n];
        for &o in &node.outputs {
            let t = g.t(o);
            let loc = match plan.loc[o] {
                Some(Loc::Arena { offset }) => format!("[{}..{})", offset, offset + t.bytes()),
                Some(Loc::Output { k }) => format!("output {k}"),
                Some(Loc::Input { k }) => format!("input {k} (view)"),
                Some(Loc::Const) => "flash".into(),
                None => "-".into(),
            };
            let live = plan
                .buffers
                .iter()
                .find(|b| b.root == plan.root[o])
                .map(|b| format!("{}..={}", b.first, b.last))
                .unwrap_or_else(|| "-".into());
            let mut name = format!("t{} {:?}", t.index, t.shape);
            name.truncate(32);
            let mut view = if node.op.is_view() { " (view)".to_string() } else { String::new() };
            for ov in plan.overlaps_at(step).filter(|ov| ov.output == o) {
                let _ = write!(view, "  over t{} {} B {:+}{}", g.t(ov.input).index, ov.bytes, ov.shift, if ov.reverse { " rev" } else { "" });
            }
            let _ = writeln!(s, " {:>4}  {:>3}  {:<21}  {:<32}  {:<16}  {:<10}{}", step, node.index, node.op.name(), name, loc, live, view);
        }
    }
    let _ = writeln!(s, " ```");
    let _ = writeln!(s);
    let _ = writeln!(s, " Layers:");
    let _ = writeln!(s);
    for l in layers {
        let _ = writeln!(s, " * op {} {}: {}", l.index, l.op, l.doc);
    }
    s
}
