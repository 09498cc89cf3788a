#!/usr/bin/env bash
# Instructions per inference of a model's host runner (the release build `microgen run` and
# `microgen bench` use), counted by valgrind's cachegrind (`I refs`): exact and repeatable,
# unlike timings on a shared machine. Needs valgrind (`apt-get install valgrind`).
#
# Usage: bench/host_instructions.sh MODEL.tflite INPUT.bin [GOAL]
#   INPUT.bin  one sample as for `microgen run` (bench/host.py writes bench/work/host/NAME.bin)
#   GOAL       speed (default), size or a flash budget, as `microgen --goal`
# Prints the instructions of one `predict` call: (calls 1..40 - calls 1..20) / 20, so the
# runner's start-up and input reading cancel out.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '5,8p' "$0" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MG="$ROOT/target/release/microgen"
MODEL="$1"; INPUT="$2"; GOAL="${3:-speed}"
command -v valgrind >/dev/null || { echo "host_instructions: valgrind not found" >&2; exit 2; }
(cd "$ROOT" && cargo build --release --quiet --locked -p microgen)
CACHE="$(mktemp -d)"; trap 'rm -rf "$CACHE"' EXIT
MICROGEN_CACHE="$CACHE" "$MG" --goal "$GOAL" bench "$MODEL" --input "$INPUT" --iters 1 >/dev/null
RUNNER="$(ls "$CACHE"/run/*/runner)"
refs() { # total instructions of the runner with `--bench N` (2N predict calls)
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$RUNNER" "$INPUT" --bench "$1" 2>&1 >/dev/null \
    | awk '/I *refs/ { gsub(",", "", $NF); print $NF }'
}
a=$(refs 20); b=$(refs 10)
echo $(( (a - b) / 20 ))
