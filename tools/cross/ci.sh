#!/usr/bin/env bash
# ci.sh - the firmware part of CI (called by .ci/run): installs the cross toolchain and QEMU
# (setup-cross.sh, idempotent), builds the firmware of all three targets with small models and
# runs them under QEMU, comparing the printed outputs byte for byte with the expected (TFLM)
# outputs of the conformance data:
#   m4, m0, rv32:  hello_world_int8, fc_relu_int8  (first $CI_SAMPLES samples)
#   m4:            stream_ring_int8 (stateful: one State carried through all 300 samples),
#                  zoo_mbv2_block_int8, zoo_dscnn_int8 (conv, depthwise, add: the Cortex-M4 DSP
#                  kernels, which the host tests do not execute), pruned_cnn_p80_int8 (the
#                  sparse kernels of pruned weights), layer_dwc1_21x17x1_int8, conv_s1_same_int8,
#                  conv_s2_same_int8 (the direct kernel over a band of int16 input rows),
#                  layer_fc_1001x12_int8 (a long row a block at a time)
#   rv32:          zoo_dscnn_int8, zoo_mbv2_block_int8 (the forms the speed goal compiles for
#                  targets without pairwise multiply-accumulate)
# Exit status: 0 all equal, 1 a mismatch, 2 a build/run failure.
# Env: MICROGEN_CROSS_PREFIX (default $HOME/.cache/microgen-cross), CI_SAMPLES (default 20),
#      QEMU_TIMEOUT (s, default 120).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
FW="$ROOT/examples/firmware"
DATA="$ROOT/tests/conformance/data"
PREFIX="${MICROGEN_CROSS_PREFIX:-$HOME/.cache/microgen-cross}"
N="${CI_SAMPLES:-20}"
TMO="${QEMU_TIMEOUT:-120}"
WORK="$FW/target/ci"; mkdir -p "$WORK"
log() { echo "ci-firmware: $*" >&2; }

"$HERE/setup-cross.sh" "$PREFIX" >&2
eval "$("$HERE/setup-cross.sh" "$PREFIX" --env | grep '^export')"

SEMI=(-nographic -monitor none -semihosting-config enable=on,target=native)
FAIL=0
check() { # target model [samples]   (samples empty = all)
  local t="$1" m="$2" n="${3:-}" triple qemu elf name="$1-$2" t0=$SECONDS
  case "$t" in
    m4)   triple=thumbv7em-none-eabihf; qemu=(qemu-system-arm -M mps2-an386 -cpu cortex-m4 "${SEMI[@]}") ;;
    m0)   triple=thumbv6m-none-eabi; qemu=(qemu-system-arm -M microbit "${SEMI[@]}") ;;
    rv32) triple=riscv32imc-unknown-none-elf; qemu=(qemu-system-riscv32 -M virt -bios none -nographic -monitor none) ;;
  esac
  elf="$FW/target/$triple/release/microgen-fw-$t"
  local model="$ROOT/tests/models/$m.tflite"
  [ -f "$model" ] || model="$ROOT/examples/models/$m.tflite"
  if ! (cd "$FW/$t" && MICROGEN_MODEL="$model" MICROGEN_INPUT="$DATA/$m.in.bin" \
        MICROGEN_SAMPLES="$n" MICROGEN_REPEAT=1 MICROGEN_BASELINE=0 cargo build --release --quiet) >"$WORK/$name.build.log" 2>&1; then
    tail -n 30 "$WORK/$name.build.log" >&2; log "FAIL $name: build failed"; FAIL=2; return
  fi
  local rc=0
  timeout "$TMO" "${qemu[@]}" -kernel "$elf" >"$WORK/$name.log" 2>&1 || rc=$?
  if [ $rc -ne 0 ] || ! grep -q '^DONE' "$WORK/$name.log"; then
    tail -n 5 "$WORK/$name.log" >&2; log "FAIL $name: QEMU exit $rc"; FAIL=2; return
  fi
  local banner samples outb got want
  banner="$(grep -m1 '^microgen-fw ' "$WORK/$name.log" | tr -d '\r')"
  samples="$(echo "$banner" | tr ' ' '\n' | sed -n 's/^samples=//p')"
  outb="$(echo "$banner" | tr ' ' '\n' | sed -n 's/^out=//p')"
  got="$(tr -d '\r' <"$WORK/$name.log" | awk '$1=="OUT"{printf "%s", $3}')"
  want="$(head -c $((samples * outb)) "$DATA/$m.out.bin" | od -An -v -tx1 | tr -d ' \n')"
  if [ "$got" = "$want" ] && [ -n "$got" ]; then
    log "ok   $name: $samples samples equal to $m.out.bin ($((SECONDS - t0)) s)"
  else
    log "FAIL $name: outputs differ from $DATA/$m.out.bin (first samples: got ${got:0:32}, want ${want:0:32})"
    [ $FAIL = 0 ] && FAIL=1
  fi
}

for t in m4 m0 rv32; do
  check "$t" hello_world_int8 "$N"
  check "$t" fc_relu_int8 "$N"
done
check m4 stream_ring_int8   # all samples: the state is carried from one to the next
check m4 zoo_mbv2_block_int8 "$N"
check m4 zoo_dscnn_int8 "$N"
check m4 pruned_cnn_p80_int8 "$N"   # the sparse SMLAD kernels of pruned weights
check m4 layer_dwc1_21x17x1_int8 "$N"   # the direct band kernel: one input channel, 6 output channels
check m4 conv_s1_same_int8 "$N"     # the direct band kernel: three input channels, one tile of 5
check m4 conv_s2_same_int8 "$N"     # the direct band kernel: RELU6 clamp, tiles of 4 and 3
check m4 layer_fc_1001x12_int8 "$N"
check m4 dw_dil2_int8 "$N"          # the channel-vector depthwise form (dilated window)
check m4 dw_m1_int8 "$N"            # 3x3 depthwise, 5 channels: the DSP row gather of 4 plus one channel
check m0 zoo_dscnn_int8 "$N"        # the speed goal's forms for targets without SMLAD
check rv32 zoo_dscnn_int8 "$N"
check rv32 zoo_mbv2_block_int8 "$N"
[ $FAIL = 0 ] && log "all firmware outputs equal the expected ones" || log "firmware check failed"
exit $FAIL
