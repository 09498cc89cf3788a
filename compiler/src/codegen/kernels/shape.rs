//! Data-movement operators: PAD/PADV2, CONCATENATION, STRIDED_SLICE, TRANSPOSE, RESIZE_NEAREST_NEIGHBOR, SPLIT, SPLIT_V, PACK, UNPACK.

use super::super::{Kernel, KernelCtx};
use crate::error::Result;

/// Operators this file generates code for, as (name, data types).
pub const SUPPORTED: &[(&str, &str)] = &[];

pub fn emit(ctx: &KernelCtx) -> Result<Kernel> {
    Err(ctx.unsupported(format!(
        "operator {} is not supported yet; supported operators: {}",
        ctx.node.op.name(),
        super::supported_list()
    )))
}
