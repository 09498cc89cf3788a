//! Arena placement. Greedy by size with best fit: buffers in decreasing size, each put in
//! the smallest gap (among buffers live at the same time) that holds it.

use super::Buffer;

fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// Returns the placed buffers (same order as given) and the arena size.
pub fn place_greedy_by_size(buffers: &[Buffer], align: usize) -> (Vec<Buffer>, usize) {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by(|&a, &b| {
        buffers[b].bytes.cmp(&buffers[a].bytes).then(buffers[a].first.cmp(&buffers[b].first)).then(buffers[a].root.cmp(&buffers[b].root))
    });
    let mut placed: Vec<Buffer> = buffers.to_vec();
    let mut done: Vec<usize> = Vec::new();
    for &i in &order {
        let b = &buffers[i];
        let mut conflicts: Vec<(usize, usize)> = done
            .iter()
            .map(|&j| &placed[j])
            .filter(|p| p.first <= b.last && b.first <= p.last && p.bytes > 0)
            .map(|p| (p.offset, p.offset + p.bytes))
            .collect();
        conflicts.sort();
        let mut best: Option<(usize, usize)> = None; // (gap size, offset)
        let mut cursor = 0usize;
        for &(s, e) in &conflicts {
            let start = align_up(cursor, align);
            if s >= start && s - start >= b.bytes {
                let gap = s - start;
                if best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, start));
                }
            }
            cursor = cursor.max(e);
        }
        let offset = match best {
            Some((_, o)) => o,
            None => align_up(cursor, align),
        };
        placed[i].offset = offset;
        done.push(i);
    }
    let size = placed.iter().map(|b| b.offset + b.bytes).max().unwrap_or(0);
    (placed, align_up(size, align))
}
