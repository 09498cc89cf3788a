//! Kernel strategies and the user's goal.

use super::super::{Kernel, KernelCtx};
use crate::ir::{DType, Graph, Node, Op};
use std::fmt;
use std::str::FromStr;

/// How a layer's kernel is generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Strategy {
    /// One shared runtime routine per operator family, the layer's shape and quantization
    /// in a constant parameter block (least code for models of several layers).
    Compact,
    /// Loops with constant bounds over the model's own weight layout.
    Loop,
    /// Weights packed at compile time for the fast matrix kernels of `microgen_rt::mac`
    /// (int16 pairs, output tiles, `SMLAD` on Cortex-M4/M7).
    Packed,
    /// Pruned weights: per output channel only the chunks of 4 inputs with a non-zero
    /// weight are kept (zeros dropped at compile time; an all-zero channel costs its bias).
    Sparse,
    /// Every channel of a position at once (depthwise convolutions), or int8 weights
    /// sign-extended as they are loaded (fully connected layers): the host's vector forms.
    Vector,
    /// Convolutions with few input values per window row (first layers): windows read in
    /// place from a band of input rows converted to int16 (`microgen_rt::band`), weights
    /// packed in that order (`SMLAD` on Cortex-M4/M7).
    Direct,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Compact => "compact",
            Strategy::Loop => "loop",
            Strategy::Packed => "packed",
            Strategy::Sparse => "sparse",
            Strategy::Direct => "direct",
            Strategy::Vector => "vector",
        }
    }
}

/// What the compiler optimizes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Goal {
    /// The least flash.
    Size,
    /// The fewest instructions.
    #[default]
    Speed,
    /// The fewest instructions whose estimated flash (code and constants) stays within
    /// this many bytes.
    Budget(usize),
}

impl fmt::Display for Goal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Goal::Size => write!(f, "size"),
            Goal::Speed => write!(f, "speed"),
            Goal::Budget(b) => write!(f, "{b}"),
        }
    }
}

impl FromStr for Goal {
    type Err = String;
    /// `size`, `speed`, or a flash budget in bytes (`K`/`M` suffixes allowed: `96K`).
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "size" => return Ok(Goal::Size),
            "speed" => return Ok(Goal::Speed),
            _ => {}
        }
        let (digits, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit() && *c != '_') {
            None => (t, 1),
            Some((i, _)) => {
                let m = match &t[i..] {
                    "K" | "k" | "KB" | "KiB" => 1024,
                    "M" | "MB" | "MiB" => 1024 * 1024,
                    "B" => 1,
                    other => return Err(format!("unknown goal `{s}`: expected size, speed or a flash budget in bytes (e.g. 65536 or 64K), not suffix `{other}`")),
                };
                (&t[..i], m)
            }
        };
        let n: usize = digits.replace('_', "").parse().map_err(|_| format!("unknown goal `{s}`: expected size, speed or a flash budget in bytes (e.g. 65536 or 64K)"))?;
        n.checked_mul(mult).map(Goal::Budget).ok_or_else(|| format!("flash budget `{s}` is too large"))
    }
}

/// A kernel's estimated cost on a Cortex-M4 (instruction counts from the kernels' loop
/// structure, calibrated on the emulator; code bytes approximate).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Est {
    /// Instructions per inference.
    pub instructions: u64,
    /// Code bytes of the layer's own function.
    pub code_bytes: usize,
    /// Shared runtime routines the kernel calls (name, code bytes), counted once per model.
    pub shared: Vec<(String, usize)>,
}

/// One strategy a layer can take, with its estimated cost.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    pub strategy: Strategy,
    pub code_bytes: usize,
    pub const_bytes: usize,
    pub instructions: u64,
    pub shared: Vec<(String, usize)>,
}

/// The strategies offered for a node: the loop form always, plus the compact and packed
/// forms for int8 convolutions and fully connected layers, the packed form for float32
/// ones and hybrid convolutions.
pub fn offered(g: &Graph, node: &Node) -> Vec<Strategy> {
    let all = |d: DType| node.input(0).is_some_and(|x| g.t(x).dtype == d) && node.input(1).is_some_and(|w| g.t(w).dtype == d) && node.outputs.first().is_some_and(|&y| g.t(y).dtype == d);
    let int8 = node.input(0).is_some_and(|x| g.t(x).dtype == DType::I8) && node.outputs.first().is_some_and(|&y| g.t(y).dtype == DType::I8);
    match node.op {
        Op::FullyConnected { .. } if int8 => vec![Strategy::Compact, Strategy::Loop, Strategy::Packed, Strategy::Sparse, Strategy::Vector],
        Op::Conv2d { .. } if int8 => vec![Strategy::Compact, Strategy::Loop, Strategy::Packed, Strategy::Sparse, Strategy::Direct],
        Op::DepthwiseConv2d { .. } if int8 => vec![Strategy::Compact, Strategy::Loop, Strategy::Packed, Strategy::Vector, Strategy::Direct],
        Op::Conv2d { .. } | Op::FullyConnected { .. } | Op::DepthwiseConv2d { .. } if all(DType::F32) => vec![Strategy::Loop, Strategy::Packed],
        // Hybrid (float32 activations, int8 weights).
        Op::Conv2d { .. } if node.input(0).is_some_and(|x| g.t(x).dtype == DType::F32) && node.input(1).is_some_and(|w| g.t(w).dtype == DType::I8) => {
            vec![Strategy::Loop, Strategy::Packed]
        }
        // Same-shape int8 ADD: the loop, and the host's vector form.
        Op::Add { .. } if int8 && node.input(1).is_some_and(|b| g.t(b).dtype == DType::I8) && super::add::handles_same_shape(g, node) => vec![Strategy::Loop, Strategy::Vector],
        _ => vec![Strategy::Loop],
    }
}

/// The candidate an emitted kernel is: what its emitter reported, or the loop form with
/// an estimate from its operator and size.
pub fn candidate(ctx: &KernelCtx, k: &Kernel) -> Candidate {
    let (strategy, est) = match ctx.reported.borrow().clone() {
        Some(r) => r,
        None => (Strategy::Loop, loop_estimate(ctx, k)),
    };
    Candidate { strategy, code_bytes: est.code_bytes, const_bytes: k.const_bytes, instructions: est.instructions, shared: est.shared }
}

/// The loop form: instructions per MAC (or per output element) measured on the emulator
/// for the constant-bound loops, and their code size.
fn loop_estimate(ctx: &KernelCtx, k: &Kernel) -> Est {
    let g = ctx.g;
    let out_elems: u64 = ctx.node.outputs.iter().map(|&t| g.t(t).elems() as u64).sum();
    let (per_mac, per_out, code) = match ctx.node.op {
        Op::Conv2d { .. } => (9, 12, 420),
        Op::DepthwiseConv2d { .. } => (14, 14, 460),
        Op::FullyConnected { .. } => (6, 12, 150),
        Op::TransposeConv { .. } => (12, 12, 520),
        Op::AveragePool2d { .. } | Op::MaxPool2d { .. } => (0, 40, 260),
        Op::Softmax { .. } => (0, 60, 300),
        _ => (0, 12, 200),
    };
    Est { instructions: k.macs * per_mac + out_elems * per_out, code_bytes: code, shared: Vec::new() }
}

/// The `speed` choice for targets without packed-pair multiply-accumulate (Cortex-M0+,
/// RISC-V without the P extension, ...): the packed form's int16 pairs cost more there than
/// they save (measured on Cortex-M0 and RV32IMC: 1.4-2x the instructions of the compact
/// and loop forms), so it is left out and the fewest estimated instructions of the others
/// taken. `None` for layers whose choice is the same as on Cortex-M4.
pub fn choose_portable(layers: &[Vec<Candidate>], dsp: &[usize]) -> Vec<Option<usize>> {
    layers
        .iter()
        .zip(dsp)
        .map(|(cs, &d)| {
            let pairwise = |c: &Candidate| matches!(c.strategy, Strategy::Packed | Strategy::Direct);
            if cs.get(d).is_none_or(|c| !pairwise(c)) {
                return None;
            }
            fastest(cs, |c| !pairwise(c))
        })
        .collect()
}

/// The `speed` choice for the x86-64 host: the channel-vector form, else the packed form,
/// wherever a layer offers it and the main choice is another (their AVX2 kernels and float
/// vector tiles are the host's fastest; the compact routine, the scalar loops, the sparse
/// lanes and the planar 3x3 depthwise are not). `None`
/// for layers whose choice stays the same.
pub fn choose_host(layers: &[Vec<Candidate>], chosen: &[usize]) -> Vec<Option<usize>> {
    layers
        .iter()
        .zip(chosen)
        .map(|(cs, &d)| {
            let p = cs.iter().position(|c| c.strategy == Strategy::Vector).or_else(|| cs.iter().position(|c| c.strategy == Strategy::Packed))?;
            (p != d).then_some(p)
        })
        .collect()
}

/// The candidate with the fewest estimated instructions among those `keep` accepts (the
/// smaller flash on a tie).
fn fastest(cs: &[Candidate], keep: impl Fn(&Candidate) -> bool) -> Option<usize> {
    (0..cs.len()).filter(|&i| keep(&cs[i])).min_by_key(|&i| (cs[i].instructions, bytes(&cs[i])))
}

fn bytes(c: &Candidate) -> usize {
    c.code_bytes + c.const_bytes + c.shared.iter().map(|(_, b)| b).sum::<usize>()
}

/// Chooses one candidate per layer (index into its list; layers without candidates get 0):
/// `Size`, the least flash (shared routines counted once); `Speed`, the
/// fewest instructions; `Budget(b)`, starting from the `Size` choice, upgrades layer by
/// layer, best instructions saved per extra byte first, while the estimated flash (code,
/// shared routines and constants) stays within `b`.
pub fn choose(goal: Goal, layers: &[Vec<Candidate>]) -> crate::error::Result<Vec<usize>> {
    let total = |pick: &[usize]| -> usize {
        let mut shared = std::collections::BTreeMap::new();
        let mut t = 0;
        for (cs, &i) in layers.iter().zip(pick) {
            if let Some(c) = cs.get(i) {
                t += c.code_bytes + c.const_bytes;
                for (k, b) in &c.shared {
                    shared.insert(k.clone(), *b);
                }
            }
        }
        t + shared.values().sum::<usize>()
    };
    // The least flash: per layer without the shared routines, then layer by layer the
    // change that saves the most bytes with them counted once, while one does.
    let mut smallest: Vec<usize> = layers
        .iter()
        .map(|cs| (0..cs.len()).min_by_key(|&i| (cs[i].code_bytes + cs[i].const_bytes, cs[i].instructions)).unwrap_or(0))
        .collect();
    loop {
        let now = total(&smallest);
        let mut best: Option<(usize, Vec<usize>)> = None;
        let mut consider = |trial: Vec<usize>| {
            let t = total(&trial);
            if t < now && best.as_ref().is_none_or(|(b, _)| t < *b) {
                best = Some((t, trial));
            }
        };
        for (l, cs) in layers.iter().enumerate() {
            for i in 0..cs.len() {
                let mut trial = smallest.clone();
                trial[l] = i;
                consider(trial);
            }
        }
        // Moves of many layers at once, which one-layer moves cannot find: a shared
        // routine only goes away when no layer calls it any more. For each shared routine,
        // every layer that calls it takes its smallest candidate without it; for each
        // strategy, every layer that offers it takes it.
        let routines: std::collections::BTreeSet<&String> = layers.iter().flatten().flat_map(|c| c.shared.iter().map(|(k, _)| k)).collect();
        for r in routines {
            let mut trial = smallest.clone();
            for (l, cs) in layers.iter().enumerate() {
                if cs.get(trial[l]).is_some_and(|c| c.shared.iter().any(|(k, _)| k == r)) {
                    if let Some(i) = (0..cs.len()).filter(|&i| !cs[i].shared.iter().any(|(k, _)| k == r)).min_by_key(|&i| bytes(&cs[i])) {
                        trial[l] = i;
                    }
                }
            }
            consider(trial);
        }
        let kinds: std::collections::BTreeSet<&str> = layers.iter().flatten().map(|c| c.strategy.name()).collect();
        for kind in kinds {
            let mut trial = smallest.clone();
            for (l, cs) in layers.iter().enumerate() {
                if let Some(i) = (0..cs.len()).find(|&i| cs[i].strategy.name() == kind) {
                    trial[l] = i;
                }
            }
            consider(trial);
        }
        match best {
            Some((_, trial)) => smallest = trial,
            None => break,
        }
    }
    match goal {
        Goal::Size => Ok(smallest),
        Goal::Speed => Ok(layers.iter().map(|cs| fastest(cs, |_| true).unwrap_or(0)).collect()),
        Goal::Budget(b) => {
            let mut pick = smallest;
            let base = total(&pick);
            if base > b {
                return Err(crate::error::Error::new(
                    crate::error::ErrorKind::Budget,
                    format!("the smallest kernels need an estimated {base} bytes of flash (code and constants), over the budget of {b} bytes"),
                ));
            }
            loop {
                let now = total(&pick);
                let mut best: Option<(f64, usize, usize)> = None;
                for (l, cs) in layers.iter().enumerate() {
                    for (i, c) in cs.iter().enumerate() {
                        let cur = &cs[pick[l]];
                        if c.instructions >= cur.instructions {
                            continue;
                        }
                        let mut trial = pick.clone();
                        trial[l] = i;
                        let t = total(&trial);
                        if t > b {
                            continue;
                        }
                        let gain = (cur.instructions - c.instructions) as f64 / (t.saturating_sub(now).max(1)) as f64;
                        if best.is_none_or(|(g, _, _)| gain > g) {
                            best = Some((gain, l, i));
                        }
                    }
                }
                match best {
                    Some((_, l, i)) => pick[l] = i,
                    None => return Ok(pick),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn goals_parse() {
        assert_eq!("size".parse::<Goal>(), Ok(Goal::Size));
        assert_eq!("Speed".parse::<Goal>(), Ok(Goal::Speed));
        assert_eq!("65536".parse::<Goal>(), Ok(Goal::Budget(65536)));
        assert_eq!("64K".parse::<Goal>(), Ok(Goal::Budget(65536)));
        assert_eq!("1M".parse::<Goal>(), Ok(Goal::Budget(1 << 20)));
        assert!("fast".parse::<Goal>().is_err());
        assert!("12Q".parse::<Goal>().is_err());
    }

    fn cand(strategy: Strategy, code: usize, shared: &[(&str, usize)]) -> Candidate {
        Candidate { strategy, code_bytes: code, const_bytes: 100, instructions: 1000, shared: shared.iter().map(|(k, b)| (k.to_string(), *b)).collect() }
    }

    /// Per layer the shared routine's caller is smaller, but with the routine counted once
    /// the loops of few layers are: the size goal must find the all-loop choice, which no
    /// one-layer change reaches; with many layers the routine pays for itself.
    #[test]
    fn size_goal_weighs_shared_routines_across_layers() {
        let layer = || vec![cand(Strategy::Compact, 50, &[("small::conv", 1500)]), cand(Strategy::Loop, 150, &[])];
        let few: Vec<_> = (0..3).map(|_| layer()).collect();
        assert_eq!(choose(Goal::Size, &few).unwrap(), vec![1, 1, 1]);
        let many: Vec<_> = (0..20).map(|_| layer()).collect();
        assert_eq!(choose(Goal::Size, &many).unwrap(), vec![0; 20]);
        // Mixed: two layers have only the routine's form, the rest choose it too.
        let mut mixed = few.clone();
        mixed.push(vec![cand(Strategy::Compact, 50, &[("small::conv", 1500)])]);
        assert_eq!(choose(Goal::Size, &mixed).unwrap(), vec![0, 0, 0, 0]);
    }
}
