//! `microgen run`: compiles a model into a small host program, builds it once (cached by
//! the hash of the model, the compiler and the runtime), and streams samples through it.
//!
//! Sample format: raw little-endian bytes; per sample, the model's inputs in order,
//! concatenated; then the next sample. Outputs are written the same way.

use crate::error::{Error, ErrorKind, Result};
use crate::ir::DType;
use crate::{analyse, compile, Options};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

fn build_err(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::Build, msg)
}

/// The cache folder: `$MICROGEN_CACHE`, else `$XDG_CACHE_HOME/microgen`, else
/// `$HOME/.cache/microgen`, else the system temp folder.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MICROGEN_CACHE") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("microgen");
    }
    if let Some(h) = std::env::var_os("HOME") {
        return PathBuf::from(h).join(".cache").join("microgen");
    }
    std::env::temp_dir().join("microgen")
}

/// Per-sample byte sizes of the model's inputs and outputs.
pub struct IoSizes {
    pub inputs: Vec<(DType, usize)>,
    pub outputs: Vec<(DType, usize)>,
}

impl IoSizes {
    pub fn input_bytes(&self) -> usize {
        self.inputs.iter().map(|(d, n)| d.size() * n).sum()
    }
    pub fn output_bytes(&self) -> usize {
        self.outputs.iter().map(|(d, n)| d.size() * n).sum()
    }
}

/// Flags of the runner build: `MICROGEN_HOST_RUSTFLAGS`, by default `-C target-cpu=native`
/// (the runner only ever runs on the machine that builds it, so it may use all of its
/// vector instructions; integer results do not depend on them). With FMA the packed float
/// kernels fuse their multiply-adds (`microgen_rt::f::FUSED`), so float outputs may differ
/// from a microcontroller's in the last bits; add `-C target-feature=-fma` for the
/// firmware's floats exactly (as `tools/cross/run-firmware.sh` does).
pub fn host_rustflags() -> String {
    std::env::var("MICROGEN_HOST_RUSTFLAGS").unwrap_or_else(|_| "-C target-cpu=native".into())
}

/// Builds (or finds in the cache) the runner for a model and returns its path.
pub fn runner(bytes: &[u8], opts: &Options) -> Result<(PathBuf, IoSizes)> {
    let (g, _) = analyse(bytes, opts)?;
    let io = IoSizes {
        inputs: g.inputs.iter().map(|&t| (g.t(t).dtype, g.t(t).elems())).collect(),
        outputs: g.outputs.iter().map(|&t| (g.t(t).dtype, g.t(t).elems())).collect(),
    };
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION"));
    for (p, s) in crate::RUNTIME_SOURCES {
        h.update(p);
        h.update(s);
    }
    h.update(include_str!("run.rs"));
    h.update(format!("{:?} {:?} {}", opts.max_arena_bytes, opts.goal, host_rustflags()));
    h.update(bytes);
    // The compiler binary itself (so a rebuilt compiler never reuses stale generated code).
    if let Ok(exe) = std::env::current_exe() {
        if let Ok(meta) = std::fs::metadata(&exe) {
            h.update(format!("{:?}{:?}", meta.len(), meta.modified().ok()));
        }
    }
    let key: String = h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
    let root = cache_dir();
    let dir = root.join("run").join(&key);
    let exe = dir.join("runner");
    if exe.is_file() {
        return Ok((exe, io));
    }
    let compiled = compile(bytes, opts)?;
    // The runtime crate, written once per runtime version.
    let mut rh = Sha256::new();
    for (p, s) in crate::RUNTIME_SOURCES {
        rh.update(p);
        rh.update(s);
    }
    let rkey: String = rh.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect();
    let rt = root.join(format!("microgen-rt-{rkey}"));
    let io_err = |e: std::io::Error| build_err(format!("cannot write the runner crate in {}: {e}", root.display()));
    if !rt.join("src/lib.rs").is_file() {
        std::fs::create_dir_all(rt.join("src")).map_err(io_err)?;
        for (p, s) in crate::RUNTIME_SOURCES {
            if *p == "Cargo.toml" {
                continue;
            }
            std::fs::write(rt.join(p), s).map_err(io_err)?;
        }
        std::fs::write(
            rt.join("Cargo.toml"),
            "[package]\nname = \"microgen-rt\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
        )
        .map_err(io_err)?;
    }
    let src = dir.join("src");
    std::fs::create_dir_all(&src).map_err(io_err)?;
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"microgen-runner-{key}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nmicrogen-rt = {{ path = {:?} }}\n\n[workspace]\n\n[profile.release]\nopt-level = 3\ndebug = false\n",
            rt.display().to_string()
        ),
    )
    .map_err(io_err)?;
    std::fs::write(src.join("model.rs"), &compiled.code).map_err(io_err)?;
    std::fs::write(src.join("main.rs"), runner_main(&io, g.inputs.len() == 1, g.outputs.len() == 1, !g.variables.is_empty())).map_err(io_err)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target = root.join("target");
    let out = Command::new(&cargo)
        .args(["build", "--release", "--quiet", "--offline"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target)
        .env("RUSTFLAGS", host_rustflags())
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .map_err(|e| build_err(format!("cannot run cargo ({e}); is Rust installed?")))?;
    if !out.status.success() {
        return Err(build_err(format!(
            "building the generated code failed (crate in {}):\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let built = target.join("release").join(format!("microgen-runner-{key}"));
    // Copy so that concurrent builds of other models do not overwrite it.
    let tmp = dir.join("runner.tmp");
    std::fs::copy(&built, &tmp).map_err(io_err)?;
    std::fs::rename(&tmp, &exe).map_err(io_err)?;
    Ok((exe, io))
}

/// Starts a runner, retrying while Linux reports it busy (`ETXTBSY`): when several threads
/// build and start runners (the test harness does), another thread's child can hold an
/// inherited write descriptor of a freshly copied runner until its own `exec`.
fn exec_retrying<T>(start: impl Fn() -> std::io::Result<T>) -> std::io::Result<T> {
    let mut tries = 0;
    loop {
        match start() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

/// The runner of a model file and the byte length of an input file, for `run` and `bench`.
fn runner_for(model: &Path, input: &Path, opts: &Options) -> Result<(PathBuf, IoSizes, usize)> {
    let bytes = std::fs::read(model).map_err(|e| Error::io(format!("cannot read model: {e}")).with_model(model.display().to_string()))?;
    let (exe, io) = runner(&bytes, opts)?;
    let len = std::fs::metadata(input).map_err(|e| Error::io(format!("cannot read input {}: {e}", input.display())))?.len() as usize;
    Ok((exe, io, len))
}

/// Host latency of one inference, in nanoseconds: median, minimum and mean of `iters` timed
/// calls of `predict` on the first sample of `input` (after `iters` untimed warm-up calls),
/// in the runner `microgen run` builds (release, `opt-level = 3`).
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub median_ns: u64,
    pub min_ns: u64,
    pub mean_ns: u64,
}

/// Measures [`Latency`] (see there) of the model on the host.
pub fn bench(model: &Path, input: &Path, iters: usize, opts: &Options) -> Result<Latency> {
    let (exe, io, len) = runner_for(model, input, opts)?;
    if len < io.input_bytes() {
        return Err(Error::io(format!("input file {} has {len} bytes, less than one sample ({} bytes)", input.display(), io.input_bytes())));
    }
    let out = exec_retrying(|| Command::new(&exe).arg(input).arg("--bench").arg(iters.max(1).to_string()).output())
        .map_err(|e| build_err(format!("cannot start {}: {e}", exe.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    if !out.status.success() || v.len() != 3 {
        return Err(build_err(format!("the runner failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr))));
    }
    Ok(Latency { median_ns: v[0], min_ns: v[1], mean_ns: v[2] })
}

/// Runs every sample of `input` through the model and writes the outputs to `output`.
pub fn run(model: &Path, input: &Path, output: &Path, opts: &Options) -> Result<usize> {
    let (exe, io, len) = runner_for(model, input, opts)?;
    let per = io.input_bytes();
    if per == 0 || len % per != 0 {
        return Err(Error::io(format!(
            "input file {} has {len} bytes, not a multiple of the {per} bytes of one sample ({})",
            input.display(),
            io.inputs.iter().map(|(d, n)| format!("{n} x {d}")).collect::<Vec<_>>().join(" + ")
        )));
    }
    let st = exec_retrying(|| Command::new(&exe).arg(input).arg(output).status())
        .map_err(|e| build_err(format!("cannot start {}: {e}", exe.display())))?;
    if !st.success() {
        return Err(build_err(format!("the runner failed ({st})")));
    }
    Ok(len / per)
}

fn runner_main(io: &IoSizes, single_in: bool, single_out: bool, stateful: bool) -> String {
    let mut read = String::new();
    let mut off = 0usize;
    for (k, (d, n)) in io.inputs.iter().enumerate() {
        let field = if single_in { "input".to_string() } else { format!("input.input{k}") };
        let (ty, w) = (d.rust(), d.size());
        read.push_str(&format!(
            "        for i in 0..{n} {{ {field}[i] = {ty}::from_le_bytes(s[{off} + {w} * i..{off} + {w} * i + {w}].try_into().unwrap()); }}\n"
        ));
        off += d.size() * n;
    }
    let mut write = String::new();
    for (k, (d, _)) in io.outputs.iter().enumerate() {
        let field = if single_out { "output".to_string() } else { format!("output.output{k}") };
        let _ = d;
        write.push_str(&format!("        for v in {field}.iter() {{ out.extend_from_slice(&v.to_le_bytes()); }}\n"));
    }
    let (new_in, new_out) = (
        if single_in { "[Default::default(); INPUT_SHAPE_ELEMS]".replace("INPUT_SHAPE_ELEMS", &io.inputs[0].1.to_string()) } else { "Input::new()".into() },
        if single_out { "[Default::default(); N]".replace('N', &io.outputs[0].1.to_string()) } else { "Output::new()".into() },
    );
    format!(
        r#"// Generated by `microgen run`.
#![allow(clippy::all)]
mod model {{
    include!("model.rs");
}}
use model::*;

fn main() {{
    let args: Vec<String> = std::env::args().collect();
    let data = std::fs::read(&args[1]).expect("read input");
    let per = {per};
    let mut arena = Box::new(Arena::new());
    {state_decl}
    let mut input: Input = {new_in};
    let mut output: Output = {new_out};
    if args.len() > 3 && args[2] == "--bench" {{
        // Latency: the first sample, `iters` timed calls after as many untimed ones; prints
        // the median, minimum and mean nanoseconds per inference.
        let iters: usize = args[3].parse().expect("iterations");
        let s = &data[..per];
{read}        let mut ns = Vec::with_capacity(iters);
        for k in 0..2 * iters {{
            let t = std::time::Instant::now();
            {call}
            std::hint::black_box(&output);
            if k >= iters {{ ns.push(t.elapsed().as_nanos() as u64); }}
        }}
        ns.sort_unstable();
        let mean = ns.iter().sum::<u64>() / iters as u64;
        println!("{{}} {{}} {{}}", ns[iters / 2], ns[0], mean);
        return;
    }}
    let mut out = Vec::new();
    for s in data.chunks_exact(per) {{
{read}        {call}
{write}    }}
    std::fs::write(&args[2], out).expect("write output");
}}
"#,
        per = io.input_bytes(),
        call = if stateful { "predict(&mut arena, &mut state, &input, &mut output);" } else { "predict(&mut arena, &input, &mut output);" },
        state_decl = if stateful { "let mut state = Box::new(State::new()); // one instance: state carries over from sample to sample" } else { "" }
    )
}
