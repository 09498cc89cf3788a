//! Zero-copy reader for TFLite FlatBuffers model files.
//!
//! `generated.rs` is produced by planus from `tflite.fbs`; do not edit it by
//! hand (see `REGENERATE.md`). Start with
//! `<ModelRef as planus::ReadAsRoot>::read_as_root(&bytes)`.
//!
//! Enum-typed fields are declared as plain integers in the schema so that
//! unknown op codes / tensor types still parse; convert with e.g.
//! `TensorType::try_from(tensor.type_()?)` or `BuiltinOperator::try_from(code)`.

#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    dead_code,
    unused,
    unused_imports,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    unsafe_code,
    rustdoc::all
)]
#[rustfmt::skip]
mod generated;

pub use generated::tflite::*;
