//! The `microgen` command line: inspect, plan, compile, run, bench.

use clap::{Parser, Subcommand};
use microgen::{Error, Goal, Options};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `println!` that ends the process quietly (exit status 141, as for SIGPIPE) when standard
/// output is gone, e.g. `microgen inspect m.tflite | head`, where `println!` would panic.
macro_rules! println {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(141);
        }
    }};
}

/// `print!` with the same handling of a closed standard output.
macro_rules! print {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if write!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(141);
        }
    }};
}

#[derive(Parser)]
#[command(name = "microgen", version, about = "Compile TensorFlow Lite models into no_std Rust for microcontrollers")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// What the kernels are chosen for: `speed` (fewest instructions), `size` (least flash),
    /// or a flash budget in bytes for code and constants (e.g. `65536`, `64K`): the fastest
    /// kernels whose estimated flash fits.
    #[arg(long, global = true, default_value = "speed", value_parser = parse_goal)]
    goal: Goal,
}

fn parse_goal(s: &str) -> Result<Goal, String> {
    s.parse()
}

#[derive(Subcommand)]
enum Cmd {
    /// Show a model's operators, tensors, shapes, quantization, MACs and weight bytes.
    Inspect {
        model: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show the memory plan: arena size, lower bound, and every tensor's offset and lifetime.
    Plan {
        model: PathBuf,
        #[arg(long)]
        json: bool,
        /// Also draw the arena (time across, bytes down) as an SVG file.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
    },
    /// Generate the Rust module for a model.
    Compile {
        model: PathBuf,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Run the generated code on the host. Samples are raw little-endian bytes of the input
    /// tensors' types; per sample, the model's inputs in order, concatenated; several samples
    /// back to back. Outputs are written the same way (per sample, outputs in model order).
    Run {
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
    },
    /// Host latency of one inference: runs `predict` on the first sample of `--input` (same
    /// format as `run`) `--iters` times after as many warm-up calls, in the release runner of
    /// `run`, and prints the median, minimum and mean in microseconds.
    Bench {
        model: PathBuf,
        #[arg(long)]
        input: PathBuf,
        #[arg(long, default_value_t = 200)]
        iters: usize,
        #[arg(long)]
        json: bool,
    },
}

fn opts(model: &Path, goal: Goal) -> Options {
    Options::new(model.display().to_string()).goal(goal)
}

fn read(model: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(model).map_err(|e| Error::io(format!("cannot read model: {e}")).with_model(model.display().to_string()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let goal = cli.goal;
    let r = match cli.cmd {
        Cmd::Inspect { model, json } => inspect(&model, json, goal),
        Cmd::Plan { model, json, svg } => plan(&model, json, svg.as_deref(), goal),
        Cmd::Compile { model, output } => read(&model).and_then(|b| microgen::compile(&b, &opts(&model, goal))).and_then(|c| match output {
            Some(o) => std::fs::write(&o, c.code).map_err(|e| Error::io(format!("cannot write {}: {e}", o.display()))),
            None => {
                print!("{}", c.code);
                Ok(())
            }
        }),
        Cmd::Run { model, input, output } => microgen::run::run(&model, &input, &output, &opts(&model, goal)).map(|n| {
            eprintln!("microgen: ran {n} samples");
        }),
        Cmd::Bench { model, input, iters, json } => microgen::run::bench(&model, &input, iters, &opts(&model, goal)).map(|l| {
            if json {
                println!("{{\"median_ns\": {}, \"min_ns\": {}, \"mean_ns\": {}, \"iters\": {iters}}}", l.median_ns, l.min_ns, l.mean_ns);
            } else {
                let us = |n: u64| n as f64 / 1000.0;
                println!("median {:.1} us  min {:.1} us  mean {:.1} us  ({iters} runs)", us(l.median_ns), us(l.min_ns), us(l.mean_ns));
            }
        }),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn inspect(model: &Path, json: bool, goal: Goal) -> Result<(), Error> {
    let bytes = read(model)?;
    let o = opts(model, goal);
    let (g, _) = microgen::analyse(&bytes, &o)?;
    let c = microgen::compile(&bytes, &o)?;
    let tensor_json = |t: usize| {
        let t = g.t(t);
        serde_json::json!({
            "index": t.index, "name": t.name, "dtype": t.dtype.name(), "shape": t.shape,
            "scale": t.quant.as_ref().map(|q| q.scale.clone()), "zero_point": t.quant.as_ref().map(|q| q.zero_point.clone()),
            "quantized_dimension": t.quant.as_ref().filter(|q| q.per_channel()).map(|q| q.axis),
            "constant_bytes": t.data.as_ref().map(|d| d.len()),
        })
    };
    let order = g.topo_order()?;
    let mut ops = Vec::new();
    for n in &order {
        let node = &g.nodes[*n];
        let layer = c.layers.iter().find(|l| l.index == node.index);
        ops.push(serde_json::json!({
            "index": node.index, "op": node.op.name(), "attributes": format!("{:?}", node.op),
            "inputs": node.inputs.iter().map(|i| i.map(|t| g.t(t).index)).collect::<Vec<_>>(),
            "outputs": node.outputs.iter().map(|&t| g.t(t).index).collect::<Vec<_>>(),
            "input_shapes": node.inputs.iter().map(|i| i.map(|t| g.t(t).shape.clone())).collect::<Vec<_>>(),
            "output_shapes": node.outputs.iter().map(|&t| g.t(t).shape.clone()).collect::<Vec<_>>(),
            "macs": layer.map_or(0, |l| l.macs), "weight_bytes": layer.map_or(0, |l| l.const_bytes),
            "strategy": layer.map(|l| l.strategy.name()),
            "strategy_without_dsp": layer.map(|l| l.portable_strategy.unwrap_or(l.strategy).name()),
            "strategy_x86_64": layer.map(|l| l.host_strategy.unwrap_or(l.strategy).name()),
            "estimated_code_bytes": layer.map(|l| l.est_code_bytes),
            "estimated_instructions": layer.map(|l| l.est_instructions),
            "candidates": layer.map(|l| l.candidates.iter().map(|c| serde_json::json!({
                "strategy": c.strategy.name(), "code_bytes": c.code_bytes, "const_bytes": c.const_bytes, "instructions": c.instructions,
            })).collect::<Vec<_>>()),
            "summary": layer.map(|l| l.doc.clone()),
        }));
    }
    if json {
        let v = serde_json::json!({
            "model": model.display().to_string(),
            "inputs": g.inputs.iter().map(|&t| tensor_json(t)).collect::<Vec<_>>(),
            "outputs": g.outputs.iter().map(|&t| tensor_json(t)).collect::<Vec<_>>(),
            "operators": ops,
            "tensors": (0..g.tensors.len()).map(tensor_json).collect::<Vec<_>>(),
            "goal": goal.to_string(),
            "totals": {"macs": c.macs, "weight_bytes": c.weights_bytes, "arena_bytes": c.arena_bytes, "operators": order.len(),
                "estimated_code_bytes": c.est_code_bytes, "estimated_instructions_m4": c.est_instructions},
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    println!("model {}", model.display());
    for (k, &t) in g.inputs.iter().enumerate() {
        let t = g.t(t);
        println!("  input {k}: t{} '{}' {:?} {}{}", t.index, t.name, t.shape, t.dtype, quant_str(t));
    }
    for (k, &t) in g.outputs.iter().enumerate() {
        let t = g.t(t);
        println!("  output {k}: t{} '{}' {:?} {}{}", t.index, t.name, t.shape, t.dtype, quant_str(t));
    }
    println!();
    println!(
        "{:>4}  {:<20} {:<28} {:<18} {:>10} {:>9}  {:<8} {:>8} {:>11}",
        "op", "operator", "input shapes", "output shape", "MACs", "const B", "strategy", "code B", "est. instr"
    );
    for n in &order {
        let node = &g.nodes[*n];
        let layer = c.layers.iter().find(|l| l.index == node.index);
        let ins: Vec<String> = node
            .inputs
            .iter()
            .flatten()
            .filter(|&&t| !g.t(t).is_const())
            .map(|&t| format!("{:?}", g.t(t).shape))
            .collect();
        let outs: Vec<String> = node.outputs.iter().map(|&t| format!("{:?}", g.t(t).shape)).collect();
        println!(
            "{:>4}  {:<20} {:<28} {:<18} {:>10} {:>9}  {:<8} {:>8} {:>11}",
            node.index,
            node.op.name(),
            ins.join(" "),
            outs.join(" "),
            layer.map_or(0, |l| l.macs),
            layer.map_or(0, |l| l.const_bytes),
            layer.map_or("-", |l| l.strategy.name()),
            layer.map_or(String::from("-"), |l| l.est_code_bytes.to_string()),
            layer.map_or(String::from("-"), |l| l.est_instructions.to_string()),
        );
    }
    let other: Vec<String> = c.layers.iter().filter_map(|l| l.portable_strategy.map(|s| format!("{} {}", l.index, s.name()))).collect();
    if !other.is_empty() {
        println!();
        println!("on targets without pairwise multiply-accumulate (neither Cortex-M4/M7 DSP nor x86-64: Cortex-M0+, RISC-V): op {}", other.join(", op "));
    }
    let host: Vec<String> = c.layers.iter().filter_map(|l| l.host_strategy.map(|s| format!("{} {}", l.index, s.name()))).collect();
    if !host.is_empty() {
        println!();
        println!("on the x86-64 host: op {}", host.join(", op "));
    }
    println!();
    println!("total: {} operators, {} MACs, {} weight bytes, arena {} bytes", order.len(), c.macs, c.weights_bytes, c.arena_bytes);
    println!(
        "goal {goal}: estimated code {} B (kernels {} B + shared runtime routines {} B) + constants {} B = {} B of flash; estimated {} instructions per inference on a Cortex-M4 ({:.2} per MAC)",
        c.est_code_bytes,
        c.est_code_bytes - c.est_shared_bytes,
        c.est_shared_bytes,
        c.weights_bytes,
        c.est_code_bytes + c.weights_bytes,
        c.est_instructions,
        if c.macs > 0 { c.est_instructions as f64 / c.macs as f64 } else { 0.0 }
    );
    println!();
    println!("tensors:");
    for t in &g.tensors {
        println!(
            "  t{:<4} {:<40} {:<18} {:<8}{}{}",
            t.index,
            t.name,
            format!("{:?}", t.shape),
            t.dtype.name(),
            quant_str(t),
            if t.is_const() { format!(" const {} B", t.bytes()) } else { String::new() }
        );
    }
    Ok(())
}

fn quant_str(t: &microgen::ir::Tensor) -> String {
    match &t.quant {
        Some(q) if q.per_channel() => format!(" per-channel({} scales, axis {})", q.scale.len(), q.axis),
        Some(q) => format!(" scale {} zp {}", q.scale(), q.zp()),
        None => String::new(),
    }
}

fn plan(model: &Path, json: bool, svg: Option<&Path>, goal: Goal) -> Result<(), Error> {
    let bytes = read(model)?;
    let o = opts(model, goal);
    let (g, p) = microgen::analyse(&bytes, &o)?;
    let c = microgen::compile(&bytes, &o)?;
    if let Some(f) = svg {
        std::fs::write(f, microgen::plan::svg::render(&g, &p)).map_err(|e| Error::io(format!("cannot write {}: {e}", f.display())))?;
    }
    let mut tensors = Vec::new();
    for (t, tensor) in g.tensors.iter().enumerate() {
        let Some(loc) = p.loc[t] else { continue };
        if matches!(loc, microgen::plan::Loc::Const) {
            continue;
        }
        let buf = p.buffers.iter().find(|b| b.root == p.root[t]);
        let over = p.overlaps.iter().find(|ov| ov.output == t);
        tensors.push(serde_json::json!({
            "index": tensor.index, "name": tensor.name, "bytes": tensor.bytes(), "location": loc,
            "offset": match loc { microgen::plan::Loc::Arena { offset } => Some(offset), _ => None },
            "first_step": buf.map(|b| b.first), "last_step": buf.map(|b| b.last),
            "alias_of": (p.root[t] != t).then(|| g.t(p.root[t]).index),
            "overwrites": over.map(|ov| serde_json::json!({
                "tensor": g.t(ov.input).index, "shared_bytes": ov.bytes, "shift": ov.shift, "backwards": ov.reverse,
            })),
        }));
    }
    let peak_step = p.step_bytes.iter().enumerate().max_by_key(|(s, b)| (**b, usize::MAX - s)).map(|(s, _)| s);
    let rule = if p.lower_bound_exact {
        "least, over all topological schedules (exhaustive search), of the peak over steps of the live arena bytes, each buffer rounded up to the 4-byte alignment of offsets, where at each operator its output may share with inputs that die there at most the bytes its kernel's access order allows (element-wise in place; convolution/pool output trailing its input, or leading it with the kernel run backwards); model inputs are read in place from the caller and outputs written in place, so neither is in the arena"
    } else {
        "largest, over operators, of the arena bytes of its operands (live at once in every schedule), each rounded up to the 4-byte alignment, less the bytes its output may share with inputs under its kernel's access order (the graph is too large for the exhaustive search over schedules)"
    };
    // What the peak is made of: the buffers live at the peak step.
    let peak_live: Vec<serde_json::Value> = peak_step
        .map(|s| {
            p.buffers
                .iter()
                .filter(|b| b.first <= s && s <= b.last)
                .map(|b| {
                    let t = g.t(b.root);
                    let role = if b.first == s {
                        "written"
                    } else if b.last == s {
                        "read for the last time"
                    } else {
                        "kept for a later operator"
                    };
                    serde_json::json!({"tensor": t.index, "shape": t.shape, "bytes": b.bytes, "role": role})
                })
                .collect()
        })
        .unwrap_or_default();
    let peak_op = peak_step.map(|s| {
        let n = &g.nodes[p.schedule[s]];
        format!("{} (operator {})", n.op.name(), n.index)
    });
    if json {
        let v = serde_json::json!({
            "model": model.display().to_string(),
            "arena_bytes": p.arena_bytes,
            "lower_bound_bytes": p.lower_bound,
            "lower_bound_rule": rule,
            "lower_bound_exact": p.lower_bound_exact,
            "schedule_peak_bytes": p.schedule_peak,
            "peak_step": peak_step,
            "peak_operator": peak_op,
            "peak_live": peak_live,
            "greedy_by_size_arena_bytes": p.greedy_arena_bytes,
            "placement": p.strategy,
            "weights_bytes": c.weights_bytes,
            "schedule": p.schedule.iter().map(|&n| g.nodes[n].index).collect::<Vec<_>>(),
            "step_bytes": p.step_bytes,
            "tensors": tensors,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!(
            "arena {} bytes (lower bound {} bytes, {}; this schedule's peak {} bytes; greedy by size without overlap {} bytes), weights {} bytes",
            p.arena_bytes,
            p.lower_bound,
            if p.lower_bound_exact { "exact over schedules" } else { "per operator" },
            p.schedule_peak,
            p.greedy_arena_bytes,
            c.weights_bytes
        );
        println!("placement: {}; {} operators write over a dying input", p.strategy, p.overlaps.len());
        for t in &tensors {
            println!("  {}", t);
        }
    }
    Ok(())
}
