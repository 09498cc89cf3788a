//! Kernel strategies by goal: every int8 conformance case (exact comparison) also passes
//! with the `size` goal (compact kernels) and with a flash budget between the two (a mix),
//! and the budget is respected. `MICROGEN_CASES=a,b` runs only some cases.

use microgen::{Goal, Options, Strategy};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn shared_models() -> PathBuf {
    std::env::var_os("MICROGEN_SHARED_MODELS").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared/models"))
}

/// The exact-compare cases with an int8 input: (name, model, inputs, expected outputs).
fn cases() -> Vec<(String, PathBuf, PathBuf, PathBuf)> {
    let root = repo();
    let only: Option<Vec<String>> = std::env::var("MICROGEN_CASES").ok().map(|s| s.split(',').map(str::to_string).collect());
    let pending = std::fs::read_to_string(root.join("tests/conformance/pending.txt")).unwrap_or_default();
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join("tests/conformance/cases")).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    for path in paths {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if only.as_ref().is_some_and(|o| !o.contains(&name)) || pending.lines().any(|l| l.split_whitespace().next() == Some(&name)) {
            continue;
        }
        let case: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if case["compare"] != "exact" || case.get("expect_error").is_some() || case["input_dtypes"][0] != "int8" {
            continue;
        }
        let m = case["model"].as_str().unwrap();
        let model = match m.strip_prefix("shared:") {
            Some(rel) => shared_models().join(rel),
            None => root.join(m),
        };
        if model.is_file() {
            out.push((name, model, root.join(case["inputs"].as_str().unwrap()), root.join(case["expected"].as_str().unwrap())));
        }
    }
    out
}

fn run_all(goal_of: impl Fn(&[u8], &str) -> Goal, tag: &str) -> usize {
    let root = repo();
    std::env::set_var("MICROGEN_CACHE", root.join("target/microgen-cache"));
    let tmp = root.join("target/goals-out").join(format!("{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut failed = Vec::new();
    let mut n = 0;
    for (name, model, input, expected) in cases() {
        let bytes = std::fs::read(&model).unwrap();
        let goal = goal_of(&bytes, &name);
        let out = tmp.join(format!("{name}.out.bin"));
        let opts = Options::new(model.display().to_string()).goal(goal);
        match microgen::run::run(&model, &input, &out, &opts) {
            Ok(_) if std::fs::read(&out).unwrap() == std::fs::read(&expected).unwrap() => n += 1,
            Ok(_) => failed.push(format!("{name}: outputs differ with goal {goal}")),
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    assert!(failed.is_empty(), "{tag}: {failed:#?}");
    n
}

#[test]
fn size_goal_is_exact() {
    let n = run_all(|_, _| Goal::Size, "size");
    assert!(n > 0);
}

/// A budget halfway between the size and the speed choices: some layers of each.
#[test]
fn budget_goal_is_exact_and_respected() {
    let n = run_all(
        |bytes, name| {
            let est = |g: Goal| {
                let c = microgen::compile(bytes, &Options::new(name).goal(g)).unwrap();
                c.est_code_bytes + c.weights_bytes
            };
            let (small, fast) = (est(Goal::Size), est(Goal::Speed));
            let b = (small + fast) / 2;
            let c = microgen::compile(bytes, &Options::new(name).goal(Goal::Budget(b))).unwrap();
            assert!(c.est_code_bytes + c.weights_bytes <= b, "{name}: estimated {} B over the budget of {b} B", c.est_code_bytes + c.weights_bytes);
            Goal::Budget(b)
        },
        "budget",
    );
    assert!(n > 0);
}

#[test]
fn goals_choose_strategies() {
    let p = shared_models().join("mlperf-tiny/kws_ds_cnn_int8.tflite");
    let Ok(bytes) = std::fs::read(&p) else { return };
    let of = |g: Goal| microgen::compile(&bytes, &Options::new("kws").goal(g)).unwrap();
    let (size, speed) = (of(Goal::Size), of(Goal::Speed));
    let conv = |c: &microgen::Compiled| c.layers.iter().filter(|l| l.macs > 100_000).map(|l| l.strategy).collect::<Vec<_>>();
    assert!(conv(&size).iter().all(|&s| s == Strategy::Compact), "{:?}", conv(&size));
    assert!(conv(&speed).iter().all(|&s| s == Strategy::Packed), "{:?}", conv(&speed));
    assert!(size.est_code_bytes + size.weights_bytes < speed.est_code_bytes + speed.weights_bytes);
    assert!(speed.est_instructions * 4 < size.est_instructions);
    // A budget below the smallest choice is an error naming both numbers.
    let e = microgen::compile(&bytes, &Options::new("kws").goal(Goal::Budget(1000))).unwrap_err().to_string();
    assert!(e.contains("over the budget of 1000 bytes"), "{e}");
}

/// The 80%-sparse model takes the sparse kernels for its pruned layers, its dense twin the
/// packed ones, and the estimate puts the sparse model at least twice as fast.
#[test]
fn pruned_model_takes_sparse_kernels() {
    let of = |name: &str| {
        let bytes = std::fs::read(repo().join("tests/models").join(name)).unwrap();
        microgen::compile(&bytes, &Options::new(name).goal(Goal::Speed)).unwrap()
    };
    let (dense, sparse) = (of("pruned_cnn_dense_int8.tflite"), of("pruned_cnn_p80_int8.tflite"));
    let big = |c: &microgen::Compiled| c.layers.iter().filter(|l| l.macs > 200_000).map(|l| l.strategy).collect::<Vec<_>>();
    assert!(big(&dense).iter().all(|&s| s == Strategy::Packed), "{:?}", big(&dense));
    assert_eq!(big(&sparse).iter().filter(|&&s| s == Strategy::Sparse).count(), 4, "{:?}", big(&sparse));
    assert!(sparse.est_instructions * 2 <= dense.est_instructions, "{} vs {}", sparse.est_instructions, dense.est_instructions);
    assert!(sparse.weights_bytes * 2 < dense.weights_bytes);
}
