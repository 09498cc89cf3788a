//! Kernel strategies and the user's goal.

use std::fmt;
use std::str::FromStr;

/// How a layer's kernel is generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Strategy {
    /// Loops with constant bounds over the model's own weight layout (smallest flash).
    Loop,
    /// Weights packed at compile time for the fast matrix kernels of `microgen_rt::mac`
    /// (int16 pairs, output tiles, `SMLAD` on Cortex-M4/M7).
    Packed,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Loop => "loop",
            Strategy::Packed => "packed",
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

/// The strategy a goal prefers before any per-layer cost is weighed.
pub fn preferred(goal: Goal) -> Strategy {
    match goal {
        Goal::Size => Strategy::Loop,
        Goal::Speed | Goal::Budget(_) => Strategy::Packed,
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
}
