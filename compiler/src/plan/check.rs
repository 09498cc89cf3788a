//! An independent plan checker: simulates the schedule step by step and proves that no
//! two buffers that hold live data at the same step share a byte, that every buffer lies
//! inside the arena, and that offsets are aligned. It shares no code with the planner.

use super::Plan;

pub fn check(plan: &Plan) -> Result<(), String> {
    for b in &plan.buffers {
        if b.offset + b.bytes > plan.arena_bytes {
            return Err(format!("tensor {} [{}..{}) lies outside the {}-byte arena", b.root, b.offset, b.offset + b.bytes, plan.arena_bytes));
        }
        if b.offset % plan.align != 0 {
            return Err(format!("tensor {} offset {} is not {}-aligned", b.root, b.offset, plan.align));
        }
        if b.first > b.last {
            return Err(format!("tensor {} has an empty lifetime", b.root));
        }
    }
    let steps = plan.buffers.iter().map(|b| b.last + 1).max().unwrap_or(0);
    for s in 0..steps {
        let mut live: Vec<(usize, usize, usize)> = plan
            .buffers
            .iter()
            .filter(|b| b.first <= s && s <= b.last && b.bytes > 0)
            .map(|b| (b.offset, b.offset + b.bytes, b.root))
            .collect();
        live.sort();
        for w in live.windows(2) {
            if w[1].0 < w[0].1 {
                return Err(format!(
                    "at step {s} tensor {} [{}..{}) overlaps tensor {} [{}..{})",
                    w[0].2, w[0].0, w[0].1, w[1].2, w[1].0, w[1].1
                ));
            }
        }
    }
    Ok(())
}
