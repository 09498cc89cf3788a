//! The runtime's unit tests built for this machine's CPU (`-C target-cpu=native`): on an
//! x86-64 host with AVX2 that compiles in the vector kernels the host runner uses (their
//! `cfg(target_feature = "avx2")` paths), which the plain `cargo test` build leaves out.

use std::path::Path;
use std::process::Command;

#[test]
fn runtime_unit_tests_with_native_features() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--locked", "--quiet", "-p", "microgen-rt"])
        .current_dir(&root)
        .env("RUSTFLAGS", "-C target-cpu=native")
        .env("CARGO_TARGET_DIR", root.join("target").join("native-rt"))
        .output()
        .expect("run cargo");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "runtime unit tests with -C target-cpu=native failed:\n{text}");
    assert!(text.contains("test result: ok"), "no test ran:\n{text}");
}
