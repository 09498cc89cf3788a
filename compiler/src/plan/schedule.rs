//! Execution order: the model's own operator order when it is topological, otherwise a
//! topological sort.

use crate::error::Result;
use crate::ir::Graph;
use petgraph::stable_graph::NodeIndex;

pub fn schedule(g: &Graph) -> Result<Vec<NodeIndex>> {
    g.topo_order()
}
