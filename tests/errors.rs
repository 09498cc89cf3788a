//! Malformed and unsupported models: every file under `tests/malformed/` must give its own
//! specific error (listed in `expected.json`), never a panic, from the library, the CLI and
//! the `include_model!` macro.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn cases() -> Vec<(String, String, String)> {
    let v: Value = serde_json::from_slice(&std::fs::read(repo().join("tests/malformed/expected.json")).unwrap()).unwrap();
    let mut out: Vec<(String, String, String)> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, c)| (k.clone(), c["error"].as_str().unwrap().to_string(), c["kind"].as_str().unwrap().to_string()))
        .collect();
    out.sort();
    out
}

#[test]
fn library_gives_the_specific_error() {
    let mut n = 0;
    for (name, want, kind) in cases() {
        let path = repo().join(format!("tests/malformed/{name}.tflite"));
        let bytes = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| microgen::compile(&bytes, &microgen::Options::new(format!("{name}.tflite"))));
        let r = r.unwrap_or_else(|_| panic!("{name}: the compiler panicked"));
        let e = match r {
            Ok(_) => panic!("{name}: compiled, but must fail with: {want}"),
            Err(e) => e,
        };
        let msg = e.to_string();
        assert!(msg.starts_with(&format!("{name}.tflite")), "{name}: message does not name the model: {msg}");
        assert!(msg.contains(&want), "{name}: got `{msg}`, want it to contain `{want}`");
        assert_eq!(format!("{:?}", e.kind), kind, "{name}: wrong error kind for `{msg}`");
        n += 1;
    }
    assert!(n >= 10);
}

#[test]
fn cli_exits_nonzero_with_one_line() {
    let exe = env!("CARGO_BIN_EXE_microgen");
    for (name, want, _) in cases() {
        let path = repo().join(format!("tests/malformed/{name}.tflite"));
        for cmd in ["inspect", "plan", "compile"] {
            let out = Command::new(exe).arg(cmd).arg(&path).output().unwrap();
            assert_eq!(out.status.code(), Some(1), "{name} {cmd}: exit status {:?}", out.status);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(err.lines().count(), 1, "{name} {cmd}: not one line: {err}");
            assert!(err.starts_with("error: ") && err.contains(&want), "{name} {cmd}: {err}");
        }
    }
}

/// Random corruptions of valid models never panic (a quick stand-in for the fuzzers).
#[test]
fn corrupted_models_never_panic() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let models: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/models"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "tflite"))
        .collect();
    assert!(!models.is_empty());
    for m in models {
        let base = std::fs::read(&m).unwrap();
        for _ in 0..60 {
            let mut b = base.clone();
            let flips = 1 + next() as usize % 8;
            for _ in 0..flips {
                let i = next() as usize % b.len();
                b[i] = next() as u8;
            }
            if next() % 4 == 0 {
                b.truncate(next() as usize % b.len());
            }
            let r = std::panic::catch_unwind(|| microgen::compile(&b, &microgen::Options::new("corrupt.tflite")));
            assert!(r.is_ok(), "{}: a corrupted copy made the compiler panic", m.display());
        }
    }
}

/// The macro turns errors into `compile_error!` at the call site.
#[test]
fn macro_reports_compile_errors() {
    let dir = repo().join("target/macro-errors");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let root = repo();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"macro-errors\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[dependencies]\nmicrogen-macros = {{ path = {:?} }}\nmicrogen-rt = {{ path = {:?} }}\n\n[workspace]\n",
            root.join("macros").display().to_string(),
            root.join("runtime-min").display().to_string()
        ),
    )
    .unwrap();
    let picked = ["truncated", "wrong_identifier", "tensor_index_out_of_range", "absurd_shape", "custom_op"];
    let mut lib = String::new();
    for name in picked {
        lib.push_str(&format!(
            "mod {name} {{ microgen_macros::include_model!({:?}); }}\n",
            root.join(format!("tests/malformed/{name}.tflite")).display().to_string()
        ));
    }
    // A budget that cannot be met.
    lib.push_str(&format!(
        "mod budget {{ microgen_macros::include_model!({:?}, ram = 8); }}\n",
        root.join("tests/models/fc_relu_int8.tflite").display().to_string()
    ));
    std::fs::write(src.join("lib.rs"), lib).unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--offline", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", repo().join("target/macro-errors-target"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "the crate with broken models compiled");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "the macro panicked: {err}");
    let expected: Vec<(String, String, String)> = cases();
    for name in picked {
        let want = &expected.iter().find(|c| c.0 == name).unwrap().1;
        assert!(err.contains(&format!("microgen: ")) && err.contains(want.as_str()), "{name}: `{want}` not in:\n{err}");
    }
    assert!(err.contains("over the budget of 8 bytes"), "budget error missing:\n{err}");
}

/// A model with custom operators gets one error that names every custom operator.
#[test]
fn custom_operators_are_all_named() {
    let p = repo().join("../shared/models/tflm-examples/audio_preprocessor_int8.tflite");
    let Ok(bytes) = std::fs::read(&p) else {
        eprintln!("skip: {} not present", p.display());
        return;
    };
    let e = microgen::compile(&bytes, &microgen::Options::new("audio_preprocessor_int8.tflite")).unwrap_err();
    let msg = e.to_string();
    for op in ["SignalWindow", "SignalRfft", "SignalEnergy", "SignalFftAutoScale", "SignalFilterBank", "SignalFilterBankLog", "SignalFilterBankSpectralSubtraction", "SignalFilterBankSquareRoot", "SignalPCAN"] {
        assert!(msg.contains(&format!("CUSTOM:{op}")), "{op} not named in: {msg}");
    }
    assert!(msg.contains("Custom operators cannot be compiled"), "{msg}");
}

/// Every input a fuzzer once broke the compiler with stays fixed.
#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = repo().join("tests/fuzz_regressions");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            continue;
        }
        let bytes = std::fs::read(&p).unwrap();
        let r = std::panic::catch_unwind(|| microgen::compile(&bytes, &microgen::Options::new("regression.tflite")));
        assert!(r.is_ok(), "{} makes the compiler panic", p.display());
        n += 1;
    }
    eprintln!("{n} fuzz regressions checked");
}
