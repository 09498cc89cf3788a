//! Removes operators whose outputs nobody reads (dead code left by earlier passes or by
//! converters).

use super::Pass;
use crate::error::Result;
use crate::ir::Graph;

pub struct Prune;

impl Pass for Prune {
    fn name(&self) -> &'static str {
        "prune"
    }
    fn run(&self, g: &mut Graph) -> Result<()> {
        loop {
            let mut used = vec![false; g.tensors.len()];
            for &o in &g.outputs {
                used[o] = true;
            }
            for n in g.nodes.node_indices() {
                for &i in g.nodes[n].inputs.iter().flatten() {
                    used[i] = true;
                }
            }
            let dead: Vec<_> = g
                .nodes
                .node_indices()
                .filter(|&n| !g.nodes[n].op.has_side_effect() && g.nodes[n].outputs.iter().all(|&o| !used[o]))
                .collect();
            if dead.is_empty() {
                return Ok(());
            }
            for n in dead {
                g.nodes.remove_node(n);
            }
        }
    }
}
