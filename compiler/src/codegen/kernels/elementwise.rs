//! Element-wise and reduction operators: ADD/SUB/MUL with broadcasting, MINIMUM, MAXIMUM, LEAKY_RELU, HARD_SWISH, PRELU, MEAN, ARG_MAX/ARG_MIN, LOG_SOFTMAX.

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
