#!/usr/bin/env bash
# bench/run.sh - the benchmark: every model x target on emulated microcontrollers (QEMU), microgen
# beside MicroFlow (built and run the same way, in the same run) and TFLM (rows measured outside
# the project with the same method: ../shared/anchors/m4-peers.tsv). Writes bench/results.json
# and prints the table (bench/readme_table.py).
#
# Usage: bench/run.sh [--shared] [--targets m4,m0,rv32] [--microflow-targets m4] [--merge]
#                     [--out FILE] [--no-tflm] [MODEL.tflite|DIR ...]
#   (no models)   examples/models/*.tflite + a few bundled test models (DEFAULT_TESTS below)
#   --shared      the models of $MICROGEN_SHARED_MODELS (default ../shared/models), recursively,
#                 except audio_preprocessor_* (TFLM Signal custom ops)
#   --targets     firmware targets for microgen (default m4,m0,rv32)
#   --microflow-targets  targets for MicroFlow rows (default m4; "" = none)
#   --goals       microgen's kernel goals to measure, each a row (`strategy`; MICROGEN_GOAL of
#                 include_model!): default speed,size (speed is the compiler's default)
#   --merge       keep the rows of an existing results file that this run does not measure
#   --resume      keep the rows already measured (bench/work/rows) by an interrupted run
#   --out         results file (default bench/results.json)
#   --no-tflm     no TFLM rows
#   bench/run.sh --markdown [--out FILE]   only print the README table of an existing results file
#
# Per model: one input sample (bench/gen_input.py: fixed xorshift pattern, the same for every
# system and target), built into examples/firmware/<target> by tools/cross/run-firmware.sh with
# --repeat 3 --count: predict runs 3 times between the insncount markers; `instructions` is the
# third region minus the same region of the model-free harness (MICROGEN_BASELINE=1, built once
# per target, whose .text/.rodata/.data/.bss are also subtracted). Outputs are compared with the
# host's `microgen run` (TFLM-exact) on the same sample: `outputs_match_host`; for MicroFlow this is
# `bit_exact` (vs microgen = vs TFLM). m0 runs on the microbit (16K RAM) when the model fits,
# else on mps2-an385 (same thumbv6m ELF). Board fit is computed from the whole image:
# flash = .text + .rodata + .data (without the compiled-in sample), RAM = .data + .bss + the
# painted stack peak of the run.
# Env: MICROGEN_SHARED_MODELS, MICROGEN_CROSS_PREFIX, QEMU_TIMEOUT, CARGO_PROFILE_RELEASE_OPT_LEVEL.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
RUNFW="$ROOT/tools/cross/run-firmware.sh"
PY="$(command -v /usr/bin/python3 || command -v python3)"
SHARED_DIR="${MICROGEN_SHARED_MODELS:-$ROOT/../shared/models}"
PEERS="${MICROGEN_PEERS_TSV:-$(dirname "$SHARED_DIR")/anchors/m4-peers.tsv}"
DEFAULT_TESTS=(fc_relu_int8 conv_s1_same_int8 dw_m1_int8 resnet_small_int8 resnet_small_f32
  zoo_dscnn_int8 zoo_mbv2_block_int8 zoo_autoencoder_int8 stream_ring_int8)
TARGETS="m4,m0,rv32"; MF_TARGETS="m4"; GOALS="speed,size"; SHARED=0; MERGE=0; RESUME=0; TFLM=1; MARKDOWN=0
OUTJSON="$HERE/results.json"; ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --shared) SHARED=1; shift ;;
    --targets) TARGETS="$2"; shift 2 ;;
    --microflow-targets) MF_TARGETS="$2"; shift 2 ;;
    --goals) GOALS="$2"; shift 2 ;;
    --merge) MERGE=1; shift ;;
    --resume) RESUME=1; shift ;;
    --out) OUTJSON="$(realpath -m "$2")"; shift 2 ;;
    --no-tflm) TFLM=0; shift ;;
    --markdown) MARKDOWN=1; shift ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    -*) echo "bench: unknown option $1" >&2; exit 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
if [ $MARKDOWN = 1 ]; then exec "$PY" "$HERE/readme_table.py" --markdown "$OUTJSON"; fi
command -v jq >/dev/null || { echo "bench: needs jq (apt-get install jq)" >&2; exit 2; }
WORK="$HERE/work"; mkdir -p "$WORK/inputs" "$WORK/kv" "$WORK/rows"
log() { echo "bench: $*" >&2; }

# --- models ---
MODELS=()
add_dir() { while IFS= read -r f; do MODELS+=("$f"); done < <(find "$1" -name '*.tflite' ! -name 'audio_preprocessor_*' | sort); }
if [ ${#ARGS[@]} -gt 0 ]; then
  for a in "${ARGS[@]}"; do if [ -d "$a" ]; then add_dir "$(realpath "$a")"; else MODELS+=("$(realpath "$a")"); fi; done
elif [ $SHARED = 1 ]; then
  [ -d "$SHARED_DIR" ] || { log "no shared models at $SHARED_DIR (set MICROGEN_SHARED_MODELS)"; exit 2; }
  add_dir "$(realpath "$SHARED_DIR")"
else
  add_dir "$ROOT/examples/models"
  for t in "${DEFAULT_TESTS[@]}"; do MODELS+=("$ROOT/tests/models/$t.tflite"); done
fi
[ ${#MODELS[@]} -gt 0 ] || { log "no models"; exit 2; }
IFS=, read -r -a TLIST <<<"$TARGETS"
IFS=, read -r -a MFLIST <<<"$MF_TARGETS"
IFS=, read -r -a GLIST <<<"$GOALS"
log "${#MODELS[@]} models; microgen (${GLIST[*]}) on ${TLIST[*]}; microflow on ${MFLIST[*]:-none}"

COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -n "$(git -C "$ROOT" status --porcelain -- compiler macros runtime-min examples/firmware 2>/dev/null)" ] && COMMIT="$COMMIT+dirty"

# --- host CLI (inspect for MACs and input types; run-firmware.sh uses it for the reference) ---
CLI="$ROOT/target/release/microgen"
(cd "$ROOT" && env -u RUSTC -u RUSTC_BOOTSTRAP cargo build --release --quiet -p microgen) >&2 || [ -x "$CLI" ]

kv_json() { # key=value lines -> JSON object of strings
  jq -Rn '[inputs | capture("^(?<key>[^=]+)=(?<value>.*)$")] | from_entries' <"$1"
}
# Per target: the model-free harness (its sections and its marker overhead are subtracted).
declare -A BASE
for t in $(printf '%s\n' "${TLIST[@]}" "${MFLIST[@]}" | sort -u); do
  [ -n "$t" ] || continue
  kv="$WORK/kv/baseline-$t.kv"
  log "baseline $t"
  "$RUNFW" --baseline --count --kv "$kv" --work "$WORK/fw/$t-baseline" "$t" "$ROOT/examples/models/hello_world_int8.tflite" \
    "$ROOT/tests/conformance/data/hello_world_int8.in.bin" >"$WORK/fw-$t-baseline.txt" 2>&1 \
    || { cat "$WORK/fw-$t-baseline.txt" >&2; log "baseline build failed for $t"; exit 2; }
  BASE[$t]="$(kv_json "$kv")"
done

# max |a-b| in LSB over int8 bytes and the number of differing bytes: "N MAX"
diff_lsb() {
  cmp -l "$1" "$2" 2>/dev/null | awk 'function oct(s,  v,i){v=0; for(i=1;i<=length(s);i++) v=v*8+substr(s,i,1); return v}
    {a=oct($2); b=oct($3); if(a>127)a-=256; if(b>127)b-=256; d=a-b; if(d<0)d=-d; if(d>m)m=d; n++} END {print n+0, m+0}' || true
}

ROWS=()
measure() { # system target model input macs [goal]
  local sys="$1" t="$2" model="$3" input="$4" macs="$5" goal="${6:-}" stem opt=() kv work rc=0 row id
  stem="$(basename "$model" .tflite)"
  id="$sys${goal:+-$goal}-$t-$stem"
  kv="$WORK/kv/$id.kv"; work="$WORK/fw/$id"
  if [ $RESUME = 1 ] && [ -s "$WORK/rows/$id.json" ]; then  # measured by an interrupted run
    ROWS+=("$WORK/rows/$id.json"); log "$id: kept from the last run (--resume)"; return
  fi
  [ "$sys" = microflow ] && opt=(--microflow)
  log "$sys${goal:+ ($goal)} $t $stem"
  local t0=$SECONDS
  MICROGEN_GOAL="$goal" "$RUNFW" --count --repeat 3 "${opt[@]}" --kv "$kv" --work "$work" "$t" "$model" "$input" >"$work.txt" 2>&1 || rc=$?
  [ -f "$kv" ] || printf 'status=error\nerror=%s\n' "$(tail -n 2 "$work.txt" | tr '\n' ' ' | cut -c1-300)" >"$kv"
  local dl="0 0"; [ -f "$work/fw.bin" ] && [ -f "$work/host.bin" ] && dl="$(diff_lsb "$work/fw.bin" "$work/host.bin")"
  if [ "$sys" = microflow ] && grep -q '^status=build_failed' "$kv"; then  # say why, in MicroFlow's terms
    local why
    why="$(jq -r '[.inputs[] | select(.dtype != "int8" and .dtype != "uint8") | "\(.dtype) input tensor"]
      + [.inputs[] | .shape | length | select(. != 1 and . != 2 and . != 4) | "rank-\(.) input (it handles 2-D and 4-D)"]
      + [.outputs[] | select(.dtype != "int8" and .dtype != "uint8") | "\(.dtype) output tensor"] | unique | join(", ")' \
      "$WORK/inputs/$stem.json")"
    if grep -q 'custom attribute panicked' "$work/build.log"; then
      printf 'error_detail=proc-macro panic "custom attribute panicked: %s"%s\n' \
        "$(sed -n 's/.*help: message: //p' "$work/build.log" | head -n1 | cut -c1-120)" "${why:+ ($why)}" >>"$kv"
    elif grep -q 'unsupported operator' "$work/build.log"; then
      printf 'error_detail=%s\n' "$(grep -m1 -o 'unsupported operator: [A-Z_0-9]*' "$work/build.log")" >>"$kv"
    elif grep -q 'expected reference `&Tensor2D<_, _, _, 1>`' "$work/build.log"; then
      printf 'error_detail=%s\n' "its generated code does not compile (E0308: Tensor2D<.., 1> expected, <.., $(grep -m1 -o 'found reference `&Tensor2D<_, _, _, [0-9]*>`' "$work/build.log" | grep -o '[0-9]*>' | tr -d '>')> found): per-channel quantized FULLY_CONNECTED weights, its fully_connected takes one scale" >>"$kv"
    fi
  fi
  row="$(jq -n --argjson kv "$(kv_json "$kv")" --argjson base "${BASE[$t]}" --arg model "$stem" --arg target "$t" \
    --arg system "$sys" --argjson macs "$macs" --arg opt "${CARGO_PROFILE_RELEASE_OPT_LEVEL:-s}" --arg dl "$dl" \
    --arg goal "$goal" --argjson secs $((SECONDS - t0)) -f "$HERE/row.jq" | jq --arg c "$COMMIT" '. + {commit: $c}')"
  echo "$row" >"$WORK/rows/$id.json"
  ROWS+=("$WORK/rows/$id.json")
  log "  -> $(echo "$row" | jq -r '"text \(.text_bytes) rodata \(.rodata_bytes) ram \(.static_ram_bytes) stack \(.stack_bytes) insns \(.instructions) match \(.outputs_match_host) \(.notes // "")"')"
}

for model in "${MODELS[@]}"; do
  stem="$(basename "$model" .tflite)"
  "$CLI" inspect --json "$model" >"$WORK/inputs/$stem.json" 2>"$WORK/inputs/$stem.err" || { log "$stem: inspect failed: $(head -n1 "$WORK/inputs/$stem.err")"; continue; }
  macs="$(jq '.totals.macs' "$WORK/inputs/$stem.json")"
  "$PY" "$HERE/gen_input.py" "$WORK/inputs/$stem.json" "$WORK/inputs/$stem.bin"
  for t in "${TLIST[@]}"; do for g in "${GLIST[@]}"; do measure microgen "$t" "$model" "$WORK/inputs/$stem.bin" "$macs" "$g"; done; done
  for t in "${MFLIST[@]}"; do [ -n "$t" ] && measure microflow "$t" "$model" "$WORK/inputs/$stem.bin" "$macs"; done
done

# --- TFLM rows (measured outside the project, same method; m4 only) ---
TFLM_ROWS="[]"
if [ $TFLM = 1 ] && [ -f "$PEERS" ]; then
  stems="$(for m in "${MODELS[@]}"; do basename "$m" .tflite; done | jq -Rn '[inputs]')"
  sizes="$(for m in "${MODELS[@]}"; do printf '%s\t%s\n' "$(basename "$m" .tflite)" "$(stat -c %s "$m")"; done \
    | jq -Rn '[inputs | split("\t") | {key: .[0], value: (.[1] | tonumber)}] | from_entries')"
  TFLM_ROWS="$(jq -Rn --argjson stems "$stems" --argjson sizes "$sizes" --arg src "$(realpath --relative-to="$ROOT" "$PEERS" 2>/dev/null || echo "$PEERS")" '
    [inputs | split("\t") | select(.[0] != "model" and .[1] == "tflm")
     | select(.[0] as $m | $stems | index($m))
     | def num: if . == "" then null else tonumber end;
       {model: .[0], target: "m4", system: "tflm", text_bytes: (.[3] | num), rodata_bytes: null,
        static_ram_bytes: null, arena_bytes: (.[4] | num), stack_bytes: (.[5] | num),
        instructions: (.[6] | num), macs: (.[7] | num), instr_per_mac: (.[8] | num),
        kernels: .[2], model_bytes: $sizes[.[0]], measured_outside: true,
        notes: ("TFLM 90b983c2, " + .[2] + " kernels, gcc 12.2 -Os/-O2; code without the model flatbuffer (model_bytes, in flash) and the harness; from " + $src)}]' <"$PEERS")"
elif [ $TFLM = 1 ]; then
  log "no $PEERS: no TFLM rows"
fi

# Through files, not arguments: a whole results file is more than one argument may hold.
NEWJSON="$(mktemp)"
jq -s '.' "${ROWS[@]}" | jq --argjson tflm "$TFLM_ROWS" '. + $tflm' >"$NEWJSON"
if [ $MERGE = 1 ] && [ -f "$OUTJSON" ]; then
  jq -n --slurpfile old "$OUTJSON" --slurpfile new "$NEWJSON" '
    def key: "\(.model)|\(.target)|\(.system)|\(.kernels // "")|\(.strategy // "")";
    $old[0] as $old | $new[0] as $new |
    ($new | map(key)) as $k | [$old[] | select(key as $x | $k | index($x) | not)] + $new' >"$NEWJSON.merged"
  mv "$NEWJSON.merged" "$NEWJSON"
fi
jq 'sort_by(.model, (.target | {"m4":0,"m0":1,"rv32":2}[.] // 9), (.system | {"microgen":0,"microflow":1,"tflm":2}[.] // 9), (.strategy | {"speed":0,"size":1}[. // ""] // 2), (.kernels // ""))' "$NEWJSON" >"$OUTJSON.tmp"
rm -f "$NEWJSON"
mv "$OUTJSON.tmp" "$OUTJSON"
log "wrote $OUTJSON ($(jq length "$OUTJSON") rows)"
"$PY" "$HERE/readme_table.py" "$OUTJSON"
