//! Model readers. Each produces an [`crate::ir::Graph`]; nothing after this stage sees the
//! file format.

pub mod tflite;
