# One results.json row from run-firmware.sh's key=value output ($kv) and the same target's
# model-free harness ($base). Called by bench/run.sh with:
#   $kv $base (objects of strings), $model $target $system $opt $goal $dl ("N MAX": differing output
#   bytes vs the host and their largest |difference| in LSB), $macs $secs (numbers).
def n: if . == null or . == "" then null else tonumber end;
def board:
  {"m4":   {name: "wio_terminal",   flash: 524288,  ram: 196608},   # SAMD51P19A: 512 KB flash, 192 KB RAM
   "m0":   {name: "seeeduino_xiao", flash: 262144,  ram: 32768},    # SAMD21G18:  256 KB flash,  32 KB RAM
   "rv32": {name: "esp32c3",        flash: 4194304, ram: 409600}}   # ESP32-C3:   4 MB flash, 400 KB SRAM
  [$target];
($dl | split(" ") | map(tonumber)) as $d
| if ($kv.status // "") != "ok" then
    {model: $model, target: $target, system: $system, text_bytes: null, rodata_bytes: null,
     static_ram_bytes: null, arena_bytes: null, stack_bytes: null, instructions: null, macs: $macs,
     instr_per_mac: null, outputs_match_host: null, status: ($kv.status // "error"),
     strategy: (if $goal == "" then null else $goal end),
     notes: (($kv.error_detail // "") | if . == "" then ($kv.error // "failed") else . end)}
    + (if $system == "microflow" then {bit_exact: null} else {} end)
  else
    ($kv.regions | split(",") | map(tonumber)) as $r
    | ($base.regions | split(",") | map(tonumber)) as $br
    | (($kv.samples | n) * ($kv.in_bytes | n)) as $samp
    | ($kv.text | n) as $text | ($kv.rodata | n) as $ro | ($kv.data | n) as $data | ($kv.bss | n) as $bss
    | ((if ($r | length) >= 3 then $r[2] else $r[-1] end) - $br[0]) as $insns
    | (($text + $ro + $data) - $samp) as $flash
    | ($data + $bss + ($kv.stack_peak | n)) as $ram
    | {model: $model, target: $target, system: $system,
       text_bytes: ($text - ($base.text | n)),
       rodata_bytes: ($ro - ($base.rodata | n) - ($samp - 1)),
       static_ram_bytes: (($data + $bss) - (($base.data | n) + ($base.bss | n)) - (($kv.out_bytes | n) - 1)),
       arena_bytes: (if $system == "microflow" then null else ($kv.arena | n) end),
       stack_bytes: ($kv.stack_model | n),
       instructions: $insns,
       macs: $macs,
       instr_per_mac: (if $macs > 0 then ($insns / $macs * 100 | round / 100) else null end),
       state_bytes: ($kv.state | n),
       outputs_match_host: ($kv.match == "yes"),
       qemu_machine: $kv.board,
       opt_level: $opt,
       strategy: (if $goal == "" then null else $goal end),
       image_flash_bytes: $flash,
       image_ram_bytes: $ram,
       board: board.name,
       fits_board: ($flash <= board.flash and $ram <= board.ram),
       regions: $r[0:3],
       build_and_run_seconds: $secs}
    + (if $system == "microflow" then
         {bit_exact: ($kv.match == "yes"),
          notes: ("MicroFlow 0.1.3 #[model]; all tensors on the stack (stack_bytes is its RAM)"
                  + (if $kv.match == "yes" then "" else "; vs microgen/TFLM: \($d[0]) of \($kv.out_bytes) output bytes differ, max \($d[1]) LSB" end))}
       else {} end)
    + (if $system == "microgen" and $kv.match != "yes" then {notes: "outputs differ from the host: \($d[0]) bytes, max \($d[1]) LSB"} else {} end)
  end
