//! Lower bounds on the arena. At every step all live buffers must fit at once, except that
//! an operator's output may share with inputs dying at it at most the bytes its kernel's
//! access order allows ([`super::access::max_overlap`]); no placement of a schedule can use
//! less than the largest such sum. The least of that over all schedules (found by
//! [`super::schedule`]) is the bound `microgen plan` reports.

use super::access;
use super::arena::Rel;
use super::Buffer;

/// Peak of live bytes with no overlap at all.
pub fn peak_live_bytes(buffers: &[Buffer], steps: usize) -> usize {
    (0..=steps)
        .map(|s| buffers.iter().filter(|b| b.first <= s && s <= b.last).map(|b| b.bytes).sum::<usize>())
        .max()
        .unwrap_or(0)
}

/// Bytes every placement must hold at each step of a schedule, given its overlap relations.
/// Buffers start at aligned offsets, so each holds its size rounded up to the alignment,
/// and an output with the inputs it may overlap holds their union, rounded up.
pub fn step_bytes(buffers: &[Buffer], rels: &[Rel], steps: usize, align: usize) -> Vec<usize> {
    let al = |b: usize| b.div_ceil(align) * align;
    (0..steps)
        .map(|s| {
            let live: usize = buffers.iter().filter(|b| b.first <= s && s <= b.last).map(|b| al(b.bytes)).sum();
            let (mut red, mut raw, mut aligned, mut y) = (0, 0, 0, None);
            for r in rels.iter().filter(|r| buffers[r.x].last == s && buffers[r.y].first == s) {
                red += access::max_overlap(buffers[r.x].bytes, buffers[r.y].bytes, &r.lim, align);
                raw += buffers[r.x].bytes;
                aligned += al(buffers[r.x].bytes);
                y = Some(buffers[r.y].bytes);
            }
            match y {
                None => live,
                Some(y) => live - aligned - al(y) + al(raw + y - red.min(y)),
            }
        })
        .collect()
}
