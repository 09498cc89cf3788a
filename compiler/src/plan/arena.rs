//! Arena placement: offsets for buffers with lifetimes, where buffers live at the same step
//! must not share a byte, except an operator's output and an input that dies at that
//! operator, which may share bytes within the limits of the kernel's access order
//! ([`super::access::Limits`]).
//!
//! Each strategy places the buffers one at a time in some order; a buffer goes at an
//! aligned offset that the already placed buffers allow, chosen best-fit (the tightest
//! hole that holds it) or first-fit (the lowest). [`place_best`] tries several orders
//! (size, lifetime start, area, ...) with both fits and keeps the smallest arena; greedy by
//! size with best fit and no overlap (the classic planner) is always among the candidates,
//! so the result is never worse than it.

use super::access::Limits;
use super::Buffer;

fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// Output buffer `y` may overlap input buffer `x` (indices into the buffer list) within
/// `lim` (shifts `offset(y) - offset(x)`).
#[derive(Debug, Clone, Copy)]
pub struct Rel {
    pub x: usize,
    pub y: usize,
    pub lim: Limits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Largest first (ties: earlier first).
    Size,
    /// Earliest first (ties: largest first).
    Start,
    /// Largest bytes x steps first.
    Area,
    /// Longest lifetime first.
    Length,
    /// Buffers at the most crowded steps first, largest first.
    Pressure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    Best,
    First,
}

/// Forbidden offsets for buffer `i` (closed integer intervals) given the placed buffers.
fn forbidden(buffers: &[Buffer], rels: &[Rel], placed: &[Option<usize>], i: usize, use_rels: bool) -> Vec<(i64, i64)> {
    let b = &buffers[i];
    let mut v = Vec::new();
    if b.bytes == 0 {
        return v;
    }
    for (j, p) in buffers.iter().enumerate() {
        let Some(op) = placed[j] else { continue };
        if j == i || p.bytes == 0 || !(p.first <= b.last && b.first <= p.last) {
            continue;
        }
        let (op, pb, bb) = (op as i64, p.bytes as i64, b.bytes as i64);
        let rel = if use_rels { rels.iter().find(|r| (r.x == j && r.y == i) || (r.x == i && r.y == j)) } else { None };
        match rel {
            None => v.push((op - bb + 1, op + pb - 1)),
            Some(r) if r.x == j => {
                // b is the output: o_b - o_p must be <= fwd or >= rev.
                let f = (r.lim.fwd as i64).max(-bb);
                let g = r.lim.rev.map_or(pb, |x| x as i64).min(pb);
                if f + 1 <= g - 1 {
                    v.push((op + f + 1, op + g - 1));
                }
            }
            Some(r) => {
                // b is the input: o_p - o_b must be <= fwd or >= rev.
                let f = (r.lim.fwd as i64).max(-pb);
                let g = r.lim.rev.map_or(bb, |x| x as i64).min(bb);
                if f + 1 <= g - 1 {
                    v.push((op - g + 1, op - f - 1));
                }
            }
        }
    }
    v
}

/// Chooses an offset outside the forbidden intervals.
fn choose(mut forb: Vec<(i64, i64)>, align: usize, fit: Fit) -> usize {
    forb.sort();
    let a = align as i64;
    let up = |x: i64| -> i64 { x.div_euclid(a) * a + if x.rem_euclid(a) != 0 { a } else { 0 } };
    let mut best: Option<(i64, i64)> = None; // (hole length, offset)
    let mut cursor: i64 = 0; // lowest candidate not known to be forbidden
    for &(s, e) in &forb {
        let start = up(cursor);
        if s > start {
            // Offsets start..s-1 are free (the hole).
            let last = (s - 1).div_euclid(a) * a;
            if last >= start {
                let len = s - start;
                match fit {
                    Fit::First => return start as usize,
                    Fit::Best => {
                        if best.is_none_or(|(l, _)| len < l) {
                            best = Some((len, start));
                        }
                    }
                }
            }
        }
        cursor = cursor.max(e + 1);
    }
    match best {
        Some((_, o)) => o as usize,
        None => up(cursor) as usize,
    }
}

/// Places the buffers in the given order; returns the offsets and the arena size.
pub fn place_in_order(buffers: &[Buffer], rels: &[Rel], align: usize, order: &[usize], fit: Fit, use_rels: bool) -> (Vec<usize>, usize) {
    let mut placed: Vec<Option<usize>> = vec![None; buffers.len()];
    for &i in order {
        let f = forbidden(buffers, rels, &placed, i, use_rels);
        placed[i] = Some(choose(f, align, fit));
    }
    let offs: Vec<usize> = placed.into_iter().map(|o| o.unwrap_or(0)).collect();
    let size = buffers.iter().zip(&offs).map(|(b, &o)| o + b.bytes).max().unwrap_or(0);
    (offs, align_up(size, align))
}

/// The order of a strategy.
pub fn order(buffers: &[Buffer], o: Order) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..buffers.len()).collect();
    let steps = buffers.iter().map(|b| b.last + 1).max().unwrap_or(0);
    let mut load = vec![0usize; steps];
    for b in buffers {
        for s in b.first..=b.last {
            load[s] += b.bytes;
        }
    }
    let pressure = |b: &Buffer| (b.first..=b.last).map(|s| load[s]).max().unwrap_or(0);
    let len = |b: &Buffer| b.last - b.first + 1;
    idx.sort_by(|&i, &j| {
        let (a, b) = (&buffers[i], &buffers[j]);
        let key = match o {
            Order::Size => b.bytes.cmp(&a.bytes).then(a.first.cmp(&b.first)),
            Order::Start => a.first.cmp(&b.first).then(b.bytes.cmp(&a.bytes)),
            Order::Area => (b.bytes * len(b)).cmp(&(a.bytes * len(a))).then(a.first.cmp(&b.first)),
            Order::Length => len(b).cmp(&len(a)).then(b.bytes.cmp(&a.bytes)).then(a.first.cmp(&b.first)),
            Order::Pressure => pressure(b).cmp(&pressure(a)).then(b.bytes.cmp(&a.bytes)).then(a.first.cmp(&b.first)),
        };
        key.then(a.root.cmp(&b.root))
    });
    idx
}

/// The classic planner: greedy by size, best fit, no overlap at all.
pub fn place_greedy_by_size(buffers: &[Buffer], align: usize) -> (Vec<usize>, usize) {
    place_in_order(buffers, &[], align, &order(buffers, Order::Size), Fit::Best, false)
}

/// Tries every strategy and keeps the smallest arena (the first of equals, greedy by size
/// first). Returns the offsets, the arena size and the strategy's name.
pub fn place_best(buffers: &[Buffer], rels: &[Rel], align: usize) -> (Vec<usize>, usize, String) {
    let (mut best_offs, mut best) = place_greedy_by_size(buffers, align);
    let mut name = "greedy by size, best fit, no overlap".to_string();
    for o in [Order::Size, Order::Start, Order::Area, Order::Length, Order::Pressure] {
        for fit in [Fit::Best, Fit::First] {
            let ord = order(buffers, o);
            let (offs, size) = place_in_order(buffers, rels, align, &ord, fit, true);
            if size < best {
                best = size;
                best_offs = offs;
                name = format!("{o:?} order, {fit:?} fit, with overlaps").to_lowercase();
            }
        }
    }
    (best_offs, best, name)
}

/// Local search over placement orders, for when no strategy reaches `target` (the bound
/// of the schedule): move one buffer to another place in the best order found so far,
/// keep the change when the arena does not grow, stop at `target` or after a budget of
/// placements that shrinks with the square of the number of buffers. Deterministic.
pub fn improve(buffers: &[Buffer], rels: &[Rel], align: usize, start: (Vec<usize>, usize, String), target: usize) -> (Vec<usize>, usize, String) {
    let n = buffers.len();
    let (mut best_offs, mut best, mut name) = start;
    if best <= target || n < 3 {
        return (best_offs, best, name);
    }
    let mut order_best = order(buffers, Order::Start);
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15 ^ n as u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let budget = (4_000_000 / (n * n * (rels.len() + 1))).clamp(50, 3000);
    let mut cur = usize::MAX;
    for it in 0..budget {
        let mut ord = order_best.clone();
        let (i, j) = ((next() % n as u64) as usize, (next() % n as u64) as usize);
        let v = ord.remove(i);
        ord.insert(j, v);
        let fit = if it % 2 == 0 { Fit::Best } else { Fit::First };
        let (offs, size) = place_in_order(buffers, rels, align, &ord, fit, true);
        if size <= cur {
            cur = size;
            order_best = ord;
        }
        if size < best {
            best = size;
            best_offs = offs;
            name = "local search over orders, with overlaps".to_string();
            if best <= target {
                break;
            }
        }
    }
    (best_offs, best, name)
}
