//! Lower bounds on the arena for a schedule: at every step all live buffers must fit at
//! once, so no placement can use less than the largest sum of live bytes.

use super::Buffer;

pub fn peak_live_bytes(buffers: &[Buffer], steps: usize) -> usize {
    (0..=steps)
        .map(|s| buffers.iter().filter(|b| b.first <= s && s <= b.last).map(|b| b.bytes).sum::<usize>())
        .max()
        .unwrap_or(0)
}
