#!/usr/bin/env bash
# run-firmware.sh - build a model into the QEMU firmware of examples/firmware/<TARGET>, run it on
# every sample of INPUT.bin and compare the outputs, byte for byte, with the host
# (`target/release/microgen run MODEL --input INPUT.bin --output host.bin`).
#
# Usage: tools/cross/run-firmware.sh [--count] [--out FILE] [--work DIR] [--repeat R] [--microflow]
#                                    [--baseline] [--kv FILE] TARGET MODEL INPUT.bin
#   TARGET     m4 (thumbv7em-none-eabihf, mps2-an386), m0 (thumbv6m-none-eabi, microbit; falls back
#              to mps2-an385 with a 4M/4M memory map when the model does not fit 256K/16K),
#              rv32 (riscv32imc-unknown-none-elf, virt)
#   INPUT.bin  raw samples as for `microgen run`: per sample the inputs' little-endian bytes
#   --count    run under the insncount plugin: instructions per inference (sizes are always printed)
#   --out      where to write the firmware's outputs (default WORK/fw.bin; same format as the host's)
#   --work     folder for logs and outputs (default examples/firmware/target/run/<TARGET>-<model>)
#   --repeat R call predict R times per sample (MICROGEN_REPEAT); the host gets every sample R times
#              and its every R-th output is compared (the same with state carried between calls)
#   --microflow  compile the model with MicroFlow's #[model] macro (cargo feature `microflow`)
#   --baseline the harness without a model (MICROGEN_BASELINE=1): sizes only, no host comparison
#   --kv FILE  also write the results as key=value lines (for bench/run.sh)
# Env: MICROGEN_CROSS_PREFIX (default $HOME/.cache/microgen-cross), QEMU_TIMEOUT (s, default 300),
#      MICROGEN_M0_BOARD=microbit|mps2-an385 (m0; default: microbit, else mps2-an385 if it does not fit),
#      MICROGEN_NO_WAIT=1 (do not wait for other cargo/rustc processes before building),
#      CARGO_PROFILE_RELEASE_OPT_LEVEL (firmware opt-level; default "s" from the crates' Cargo.toml).
# Exit status: 0 outputs equal, 1 mismatch, 2 usage / build / run error.
set -euo pipefail
COUNT=0; OUT=""; WORK=""; REPEAT=1; MICROFLOW=0; BASELINE=0; KV=""; PROFILE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --count) COUNT=1; shift ;;
    --profile) COUNT=1; PROFILE=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --repeat) REPEAT="$2"; shift 2 ;;
    --microflow) MICROFLOW=1; shift ;;
    --baseline) BASELINE=1; shift ;;
    --kv) KV="$2"; shift 2 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    --) shift; break ;;
    -*) echo "run-firmware: unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ $# -eq 3 ] || { sed -n '5,6p' "$0" >&2; exit 2; }
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "run-firmware: --repeat needs a positive number" >&2; exit 2; }
TARGET="$1"; MODEL="$(realpath "$2")"; INPUT="$(realpath "$3")"
[ -f "$MODEL" ] || { echo "run-firmware: no model $MODEL" >&2; exit 2; }
[ -f "$INPUT" ] || { echo "run-firmware: no input $INPUT" >&2; exit 2; }
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
FW="$ROOT/examples/firmware"
PREFIX="${MICROGEN_CROSS_PREFIX:-$HOME/.cache/microgen-cross}"
TMO="${QEMU_TIMEOUT:-300}"
case "$TARGET" in
  m4)   TRIPLE=thumbv7em-none-eabihf ;;
  m0)   TRIPLE=thumbv6m-none-eabi ;;
  rv32) TRIPLE=riscv32imc-unknown-none-elf ;;
  *) echo "run-firmware: TARGET must be m4, m0 or rv32" >&2; exit 2 ;;
esac
STEM="$(basename "$MODEL" .tflite)"
SUFFIX=""; [ $MICROFLOW = 1 ] && SUFFIX="-microflow"; [ $BASELINE = 1 ] && SUFFIX="-baseline"
WORK="${WORK:-$FW/target/run/$TARGET-$STEM$SUFFIX}"
mkdir -p "$WORK"; WORK="$(realpath "$WORK")"
OUT="${OUT:-$WORK/fw.bin}"
ELF="$FW/target/$TRIPLE/release/microgen-fw-$TARGET"
log() { echo "run-firmware: $*" >&2; }

# The machine is shared: never build while another cargo/rustc runs.
wait_for_cargo() {
  [ "${MICROGEN_NO_WAIT:-0}" = 1 ] && return 0
  local n=0
  while pgrep -x cargo >/dev/null || pgrep -x rustc >/dev/null; do
    [ $((n % 30)) -eq 0 ] && log "waiting for other cargo/rustc processes: $(pgrep -x cargo -a | head -n1 | cut -c1-90)"
    sleep 2; n=$((n + 1))
  done
}

# Cross toolchain (only for the firmware build; the host build uses the normal toolchain).
[ -x "$PREFIX/usr/bin/rustc" ] || "$HERE/setup-cross.sh" "$PREFIX" >&2
CROSS_ENV="$("$HERE/setup-cross.sh" "$PREFIX" --env | grep '^export')"

build_fw() { # $1 = m0 board (or empty)
  wait_for_cargo
  ( eval "$CROSS_ENV"
    cd "$FW/$TARGET"
    unset MICROGEN_SAMPLES
    export MICROGEN_MODEL="$MODEL" MICROGEN_INPUT="$INPUT" MICROGEN_REPEAT="$REPEAT" MICROGEN_BASELINE="$BASELINE"
    [ -n "$1" ] && export MICROGEN_M0_BOARD="$1"
    local feat=(); [ $MICROFLOW = 1 ] && feat=(--features microflow)
    cargo build --release --quiet "${feat[@]}" ) >"$WORK/build.log" 2>&1
}
fail_build() {
  if [ -n "$KV" ]; then  # the first error line, for the benchmark's notes (e.g. MicroFlow's proc-macro panics)
    { echo "status=build_failed"
      echo "error=$(grep -m1 -E '^error|panicked|not implemented|unsupported' "$WORK/build.log" | tr -d '\r' | cut -c1-300)"
      echo "error_detail=$(grep -m1 -E 'help: message:|unsupported operator|not implemented|microflow: ' "$WORK/build.log" | sed 's/^ *= *//' | tr -d '\r' | cut -c1-300)"
    } >"$KV"
  fi
  tail -n 40 "$WORK/build.log" >&2; log "firmware build failed (log: $WORK/build.log)"; exit 2
}
[ -n "$KV" ] && rm -f "$KV"
BOARD=""
[ "$TARGET" = m0 ] && BOARD="${MICROGEN_M0_BOARD:-}"
if [ "$TARGET" = m0 ] && [ -z "$BOARD" ]; then
  if build_fw microbit; then BOARD=microbit
  elif grep -qE "will not fit in region|overflowed" "$WORK/build.log"; then
    log "does not fit the microbit (256K flash / 16K RAM): $(grep -m1 -oE "section '[^']*' will not fit in region '[A-Z]*'|region '?[A-Z]*'? overflowed by [0-9]* bytes" "$WORK/build.log" || true); using mps2-an385 (4M/4M)"
    BOARD=mps2-an385
    build_fw "$BOARD" || fail_build
  else fail_build; fi
else
  build_fw "$BOARD" || fail_build
fi
grep -v '^\s*$' "$WORK/build.log" | grep -E '^(warning|error)' | sort -u | head -n 5 >&2 || true

SEMI=(-nographic -monitor none -semihosting-config enable=on,target=native)
case "$TARGET/$BOARD" in
  m4/)           QEMU=(qemu-system-arm -M mps2-an386 -cpu cortex-m4 "${SEMI[@]}") ;;
  m0/microbit)   QEMU=(qemu-system-arm -M microbit "${SEMI[@]}") ;;
  m0/mps2-an385) QEMU=(qemu-system-arm -M mps2-an385 "${SEMI[@]}") ;;
  rv32/)         QEMU=(qemu-system-riscv32 -M virt -bios none -nographic -monitor none) ;;
  *) log "unknown board $BOARD"; exit 2 ;;
esac

# Run on QEMU (with --count under the insncount plugin: one run gives the outputs and the counts).
PLUGIN_ARGS=()
if [ $COUNT = 1 ]; then
  PLUGIN="$FW/target/libinsncount.so"
  if [ ! -e "$PLUGIN" ] || [ "$HERE/insncount.c" -nt "$PLUGIN" ]; then
    gcc -O2 -shared -fPIC -o "$PLUGIN.tmp$$" "$HERE/insncount.c" && mv "$PLUGIN.tmp$$" "$PLUGIN"
  fi
  ST=0x$(nm "$ELF" | awk '$3=="bench_start"{print $1}'); EN=0x$(nm "$ELF" | awk '$3=="bench_end"{print $1}')
  rm -f "$WORK/plugin.log"
  HIST=""; [ $PROFILE = 1 ] && HIST=",hist=$WORK/hist.txt"
  PLUGIN_ARGS=(-plugin "$PLUGIN,start=$ST,end=$EN$HIST" -d plugin -D "$WORK/plugin.log")
fi
rc=0; timeout "$TMO" "${QEMU[@]}" "${PLUGIN_ARGS[@]}" -kernel "$ELF" >"$WORK/fw.log" 2>&1 || rc=$?
if [ $rc -ne 0 ] || ! grep -q '^DONE' "$WORK/fw.log"; then
  tail -n 5 "$WORK/fw.log" >&2
  [ -n "$KV" ] && printf 'status=run_failed\nerror=QEMU exit %s: %s\n' "$rc" "$(tail -n 3 "$WORK/fw.log" | tr -d '\r' | tr '\n' ' ' | cut -c1-200)" >"$KV"
  log "firmware run failed (QEMU exit $rc; 124 = timeout after ${TMO}s)"; exit 2
fi
tr -d '\r' <"$WORK/fw.log" | awk '$1=="OUT"{print $3}' | xxd -r -p >"$OUT"
BANNER="$(grep -m1 '^microgen-fw ' "$WORK/fw.log" | tr -d '\r')"
field() { echo "$BANNER" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
SAMPLES="$(field samples)"; OUTB="$(field out)"; ARENA="$(field arena)"; MACS="$(field macs)"
STACK="$(tr -d '\r' <"$WORK/fw.log" | sed -n 's/^stack_peak=\([0-9]*\).*/\1/p')"
STACKP="$(tr -d '\r' <"$WORK/fw.log" | sed -n 's/^stack_peak=.* stack_predict=\([0-9]*\).*/\1/p')"
STACKM="$(tr -d '\r' <"$WORK/fw.log" | sed -n 's/^stack_peak=.* stack_model=\([0-9]*\).*/\1/p')"
STATEB="$(field state)"; INB="$(field in)"

MATCH=yes
if [ $BASELINE = 1 ]; then MATCH=skipped; else
# Host reference (normal toolchain; the CLI is rebuilt when needed).
CLI="$ROOT/target/release/microgen"
wait_for_cargo
if ! (cd "$ROOT" && env -u RUSTC -u RUSTC_BOOTSTRAP cargo build --release --quiet -p microgen) >"$WORK/host-build.log" 2>&1; then
  [ -x "$CLI" ] || { cat "$WORK/host-build.log" >&2; log "cannot build the microgen CLI"; exit 2; }
  log "cargo build -p microgen failed (see $WORK/host-build.log); using the existing $CLI"
fi
wait_for_cargo   # `microgen run` builds (or reuses) a cached host runner with cargo
HOST_IN="$INPUT"
if [ "$REPEAT" -gt 1 ]; then  # every sample REPEAT times, then keep every REPEAT-th output
  HOST_IN="$WORK/host-in.bin"; : >"$HOST_IN"
  for ((i = 0; i < SAMPLES; i++)); do
    dd if="$INPUT" bs="$INB" skip="$i" count=1 status=none >"$WORK/one.bin"
    for ((r = 0; r < REPEAT; r++)); do cat "$WORK/one.bin" >>"$HOST_IN"; done
  done
fi
# Without fused multiply-adds (an FMA host fuses float32 multiply-adds, which a
# microcontroller's code never does), so float outputs too must equal the firmware's.
env -u RUSTC -u RUSTC_BOOTSTRAP MICROGEN_HOST_RUSTFLAGS="${MICROGEN_HOST_RUSTFLAGS:--C target-cpu=native -C target-feature=-fma}" "$CLI" run "$MODEL" --input "$HOST_IN" --output "$WORK/host.bin" >"$WORK/host.log" 2>&1 || { cat "$WORK/host.log" >&2; log "microgen run failed"; exit 2; }
if [ "$REPEAT" -gt 1 ]; then
  mv "$WORK/host.bin" "$WORK/host-all.bin"; : >"$WORK/host.bin"
  for ((i = 0; i < SAMPLES; i++)); do
    dd if="$WORK/host-all.bin" bs="$OUTB" skip=$((i * REPEAT + REPEAT - 1)) count=1 status=none >>"$WORK/host.bin"
  done
fi

if ! cmp -s "$OUT" "$WORK/host.bin"; then
  MATCH=no
  python3 - "$OUT" "$WORK/host.bin" "$OUTB" <<'PY' >&2 || true
import sys
a, b, n = open(sys.argv[1], 'rb').read(), open(sys.argv[2], 'rb').read(), int(sys.argv[3])
print(f"firmware {len(a)} bytes, host {len(b)} bytes ({n} per sample)")
bad = [i for i in range(max(len(a), len(b)) // n) if a[i*n:(i+1)*n] != b[i*n:(i+1)*n]]
print(f"{len(bad)} samples differ, first: {bad[:10]}")
for i in bad[:3]:
    print(f"  sample {i}: firmware {a[i*n:(i+1)*n][:32].hex()} host {b[i*n:(i+1)*n][:32].hex()}")
PY
fi
fi

# Section sizes (.text incl. the vector table on ARM; .rodata incl. .srodata on RV32).
sizes() {
  local tool
  for tool in rust-size llvm-size-22 "$PREFIX/usr/lib/llvm-22/bin/llvm-size" llvm-size; do
    if command -v "$tool" >/dev/null 2>&1; then "$tool" -A "$ELF" | awk 'NF>=2 {print $1, $2}'; return; fi
  done
  readelf -SW "$ELF" | sed 's/\[ */[/' | awk '$1 ~ /^\[[0-9]+\]$/ && $2 ~ /^\./ {print $2, strtonum("0x" $6)}'
}
sizes >"$WORK/sections.txt"
sec() { awk -v s="$1" '$1==s {t+=$2} END {print t+0}' "$WORK/sections.txt"; }
TEXT=$(( $(sec .vector_table) + $(sec .text) )); RODATA=$(sec .rodata); DATA=$(sec .data); BSS=$(( $(sec .bss) + $(sec .uninit) ))

INSNS=""; REGIONS=""
if [ $COUNT = 1 ]; then
  REGIONS="$(awk '/insncount: region/ && n < 12 {printf "%s%s", (n++ ? "," : ""), $4}' "$WORK/plugin.log")"   # the first 12
  # Region 0 can be +1 (first translation); later regions repeat exactly for a data-independent model.
  INSNS="$(awk '/insncount: region/ {v=$4; n++; if (n==1) f=v; if (n==2) s=v; if (min==""||v<min) min=v; if (v>max) max=v}
    END {if (n) printf "%s (region0 %s, min %s, max %s, %d inferences)", (n>1?s:f), f, min, max, n}' "$WORK/plugin.log")"
fi

echo "target=$TARGET ($TRIPLE${BOARD:+, $BOARD}) model=$STEM samples=$SAMPLES match=$MATCH"
echo "  outputs: $OUT (host: $WORK/host.bin, log: $WORK/fw.log)"
echo "  arena=$ARENA B  stack_peak=$STACK B (first inference: $STACKP B)  macs/inference=$MACS"
[ -n "$INSNS" ] && echo "  insns/inference=$INSNS"
echo "  sizes: .text=$TEXT .rodata=$RODATA .data=$DATA .bss=$BSS (bytes; $ELF)"
if [ -n "$KV" ]; then
  cat >"$KV" <<KVEOF
status=ok
target=$TARGET
triple=$TRIPLE
board=${BOARD:-$( [ "$TARGET" = m4 ] && echo mps2-an386 || echo virt )}
model=$STEM
system=$(field system)
match=$MATCH
samples=$SAMPLES
repeat=$REPEAT
in_bytes=$INB
out_bytes=$OUTB
arena=$ARENA
state=$STATEB
macs=$MACS
stack_peak=$STACK
stack_predict=$STACKP
stack_model=$STACKM
text=$TEXT
rodata=$RODATA
data=$DATA
bss=$BSS
regions=$REGIONS
KVEOF
fi
[ $MATCH = yes ] || [ $MATCH = skipped ]
