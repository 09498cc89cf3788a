//! Conformance: every case under `tests/conformance/cases/` runs its model through the
//! generated code (`microgen run`) and compares with the reference outputs produced by TFLM
//! (or TFLite's reference kernels where TFLM refuses the model). int8: byte for byte.
//! Cases whose model lives in the shared benchmark folder (`shared:` prefix) are skipped
//! when that folder is absent. Set `MICROGEN_CASES=a,b` to run only some cases.

use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn shared_models() -> PathBuf {
    std::env::var_os("MICROGEN_SHARED_MODELS").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared/models"))
}

fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn compare(case: &Value, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("output has {} bytes, expected {}", got.len(), want.len()));
    }
    match &case["compare"] {
        Value::String(s) if s == "exact" => {
            let diffs: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
            if diffs.is_empty() {
                Ok(())
            } else {
                let i = diffs[0];
                Err(format!("{} of {} bytes differ; first at byte {i}: got {} want {}", diffs.len(), got.len(), got[i] as i8, want[i] as i8))
            }
        }
        Value::Object(o) => {
            let rel = o.get("rel").and_then(|v| v.as_f64()).unwrap_or(1e-5);
            let abs = o.get("abs").and_then(|v| v.as_f64()).unwrap_or(1e-6);
            let (g, w) = (f32s(got), f32s(want));
            let mut worst = (0.0f64, 0usize);
            for i in 0..g.len() {
                let (a, b) = (g[i] as f64, w[i] as f64);
                let err = (a - b).abs();
                let tol = abs + rel * b.abs();
                if !(err <= tol) && err / tol > worst.0 {
                    worst = (err / tol, i);
                }
            }
            if worst.0 == 0.0 {
                Ok(())
            } else {
                let i = worst.1;
                Err(format!("element {i}: got {} want {} (error {:.2}x the tolerance rel {rel} abs {abs})", g[i], w[i], worst.0))
            }
        }
        other => Err(format!("unknown compare mode {other}")),
    }
}

#[test]
fn conformance() {
    let root = repo();
    std::env::set_var("MICROGEN_CACHE", root.join("target/microgen-cache"));
    let only: Option<Vec<String>> = std::env::var("MICROGEN_CASES").ok().map(|s| s.split(',').map(str::to_string).collect());
    let mut cases: Vec<PathBuf> = std::fs::read_dir(root.join("tests/conformance/cases"))
        .expect("cases folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    // Cases whose operators are not implemented yet, one name per line with the reason. A
    // listed case must fail with an "unsupported" error (so the list cannot go stale
    // silently: a listed case that passes or fails otherwise is reported).
    let pending: Vec<String> = std::fs::read_to_string(root.join("tests/conformance/pending.txt"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let (mut passed, mut failed, mut skipped, mut pend) = (0, Vec::new(), 0, 0);
    let tmp = root.join("target/conformance-out").join(std::process::id().to_string());
    std::fs::create_dir_all(&tmp).unwrap();
    for path in cases {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if only.as_ref().is_some_and(|o| !o.contains(&name)) {
            continue;
        }
        let case: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let model_s = case["model"].as_str().unwrap();
        let model = match model_s.strip_prefix("shared:") {
            Some(rel) => shared_models().join(rel),
            None => root.join(model_s),
        };
        if !model.is_file() {
            eprintln!("skip {name}: {} not present", model.display());
            skipped += 1;
            continue;
        }
        let input = root.join(case["inputs"].as_str().unwrap());
        let expected = std::fs::read(root.join(case["expected"].as_str().unwrap())).unwrap();
        let out = tmp.join(format!("{name}.out.bin"));
        let t0 = std::time::Instant::now();
        let r = microgen::run::run(&model, &input, &out, &microgen::Options::new(model.display().to_string()))
            .map_err(|e| e.to_string())
            .and_then(|_| compare(&case, &std::fs::read(&out).unwrap(), &expected));
        if let Some(want) = case.get("expect_error").and_then(|v| v.as_str()) {
            match &r {
                Err(e) if e.contains(want) => {
                    eprintln!("ok   {name} (rejected as expected: {want})");
                    passed += 1;
                }
                _ => {
                    eprintln!("FAIL {name}: expected the error `{want}`, got {r:?}");
                    failed.push(name);
                }
            }
            continue;
        }
        if pending.contains(&name) {
            match &r {
                Err(e) if e.contains("is not supported") => {
                    eprintln!("pending {name}: {}", e.lines().next().unwrap_or(""));
                    pend += 1;
                }
                Ok(()) => {
                    eprintln!("FAIL {name}: passes but is listed in pending.txt; remove it from the list");
                    failed.push(name);
                }
                Err(e) => {
                    eprintln!("FAIL {name}: {e}");
                    failed.push(name);
                }
            }
            continue;
        }
        match r {
            Ok(()) => {
                eprintln!("ok   {name} ({} samples, {:.1}s)", case["samples"], t0.elapsed().as_secs_f64());
                passed += 1;
            }
            Err(e) => {
                eprintln!("FAIL {name}: {e}");
                failed.push(name);
            }
        }
    }
    eprintln!("conformance: {passed} passed, {} failed, {skipped} skipped, {pend} pending (unsupported operators)", failed.len());
    assert!(failed.is_empty(), "conformance failures: {failed:?}");
    assert!(passed > 0, "no conformance case ran");
}
