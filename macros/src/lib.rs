//! `include_model!`: compiles a TensorFlow Lite model into Rust items at build time.
//!
//! ```ignore
//! mod sine {
//!     microgen_macros::include_model!("models/sine.tflite");
//! }
//! let mut arena = sine::Arena::new();
//! let mut out = [0i8; 1];
//! sine::predict(&mut arena, &[sine::quantize_input(1.0)], &mut out);
//! ```
//!
//! The path is relative to the calling crate's `CARGO_MANIFEST_DIR`. The expansion
//! `include_bytes!`s the model, so the crate rebuilds when the file changes. Options:
//! `include_model!("m.tflite", ram = 32K)` fails the build when the arena exceeds the
//! budget; `goal = speed` (the default), `goal = size` or `goal = 96K` (a flash budget for
//! code and constants) chooses the kernels (see `microgen::Goal`). Without `goal`, the
//! environment variable `MICROGEN_GOAL` (same values) is used when set at build time (the
//! expansion reads it with `option_env!`, so cargo rebuilds when it changes). Every failure is a `compile_error!` at the call naming the file, the operator
//! and the problem. The generated code uses the `microgen-rt` crate: add it to your
//! dependencies.
//!
//! This crate is a thin shell: all the work is done by the `microgen` library.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitInt, LitStr, Token};

struct Args {
    path: LitStr,
    ram: Option<usize>,
    goal: Option<microgen::Goal>,
}

fn parse_size(lit: &LitInt) -> syn::Result<usize> {
    let digits: usize = lit.base10_parse()?;
    let mult = match lit.suffix() {
        "" => 1,
        "K" | "k" | "KB" | "KiB" => 1024,
        "M" | "MB" | "MiB" => 1024 * 1024,
        s => return Err(syn::Error::new(lit.span(), format!("unknown size suffix `{s}`; use K or M"))),
    };
    digits.checked_mul(mult).ok_or_else(|| syn::Error::new(lit.span(), "size too large"))
}

impl Parse for Args {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let path: LitStr = input.parse()?;
        let mut ram = None;
        let mut goal = None;
        while input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "ram" => ram = Some(parse_size(&input.parse()?)?),
                "goal" => {
                    let (text, span) = if input.peek(LitInt) {
                        let l: LitInt = input.parse()?;
                        (l.to_string(), l.span())
                    } else if input.peek(LitStr) {
                        let l: LitStr = input.parse()?;
                        (l.value(), l.span())
                    } else {
                        let i: Ident = input.parse()?;
                        (i.to_string(), i.span())
                    };
                    goal = Some(text.parse().map_err(|e: String| syn::Error::new(span, e))?);
                }
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown option `{other}`; supported: ram = <bytes>[K|M], goal = speed | size | <flash bytes>[K|M]"),
                    ))
                }
            }
        }
        Ok(Args { path, ram, goal })
    }
}

/// Compiles a `.tflite` model into Rust items (see the crate docs).
#[proc_macro]
pub fn include_model(input: TokenStream) -> TokenStream {
    let args = match syn::parse::<Args>(input) {
        Ok(a) => a,
        Err(e) => return e.to_compile_error().into(),
    };
    expand(&args).unwrap_or_else(|msg| {
        let span = args.path.span();
        quote::quote_spanned!(span=> ::core::compile_error!(#msg);).into()
    })
}

fn expand(args: &Args) -> Result<TokenStream, String> {
    let rel = args.path.value();
    let base = std::env::var_os("CARGO_MANIFEST_DIR").map(std::path::PathBuf::from).unwrap_or_default();
    let path = base.join(&rel);
    let bytes = std::fs::read(&path).map_err(|e| format!("microgen: cannot read model {}: {e}", path.display()))?;
    let mut opts = microgen::Options::new(rel.clone());
    opts.max_arena_bytes = args.ram;
    opts.goal = match args.goal {
        Some(g) => g,
        None => match std::env::var("MICROGEN_GOAL") {
            Ok(v) if !v.trim().is_empty() => v.parse().map_err(|e| format!("microgen: MICROGEN_GOAL: {e}"))?,
            _ => microgen::Goal::default(),
        },
    };
    let compiled = microgen::compile(&bytes, &opts).map_err(|e| format!("microgen: {e}"))?;
    let items: TokenStream2 = compiled.code.parse().map_err(|e| format!("microgen: internal error, generated code does not tokenize: {e}"))?;
    let abs = path.canonicalize().unwrap_or(path).display().to_string();
    let abs = LitStr::new(&abs, Span::call_site());
    // `option_env!` makes cargo track MICROGEN_GOAL for the calling crate.
    let goal_env = if args.goal.is_none() { quote!(const _: Option<&str> = option_env!("MICROGEN_GOAL");) } else { quote!() };
    Ok(quote! {
        const _: &[u8] = include_bytes!(#abs);
        #goal_env
        #items
    }
    .into())
}
