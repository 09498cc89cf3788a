#!/usr/bin/env bash
# Runs a fuzz target for a while, seeded with the project's models.
#   fuzz/run.sh parse 1800     # 30 minutes
#   fuzz/run.sh compile 1800
# Needs cargo-fuzz (`cargo install cargo-fuzz`); works on the stable toolchain through
# RUSTC_BOOTSTRAP=1. Crashes land in fuzz/artifacts/<target>/; turn each into a regression
# file under tests/fuzz_regressions/ (checked by `cargo test --test errors`).
set -euo pipefail
cd "$(dirname "$0")"
target="${1:-compile}"
secs="${2:-60}"
mkdir -p "corpus/$target"
cp -n ../tests/models/*.tflite ../tests/models/third_party/*/*.tflite ../examples/models/*.tflite ../tests/malformed/*.tflite "corpus/$target/" 2>/dev/null || true
export RUSTC_BOOTSTRAP=1
exec cargo fuzz run "$target" "corpus/$target" -- \
  -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=262144 -print_final_stats=1
