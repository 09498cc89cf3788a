//! Graph rewrites, one file a pass, run in the order of [`PIPELINE`].

use crate::error::Result;
use crate::ir::Graph;

mod fold_constants;
mod fuse_activations;
mod prune;
mod validate;

/// A graph-to-graph rewrite.
pub trait Pass {
    fn name(&self) -> &'static str;
    fn run(&self, g: &mut Graph) -> Result<()>;
}

/// The passes, in order.
pub const PIPELINE: &[&dyn Pass] = &[
    &validate::Validate,
    &fold_constants::FoldConstants,
    &fuse_activations::FuseActivations,
    &prune::Prune,
];

/// Runs every pass of the pipeline.
pub fn run_all(g: &mut Graph) -> Result<()> {
    for p in PIPELINE {
        p.run(g)?;
        g.rebuild_edges();
    }
    Ok(())
}
