#!/usr/bin/env python3
"""Flat profile of a firmware run: `tools/cross/run-firmware.sh --profile ...` writes
WORK/hist.txt (per translated block: start address, instructions, executions); this maps the
blocks onto the ELF's symbols and prints where the instructions went.

Usage: tools/cross/profile.py ELF HIST [--blocks N] [--disasm]
  --blocks N  also list the N hottest blocks (symbol+offset, instructions executed)
  --disasm    with --blocks: the disassembly of each listed block (llvm-objdump)
Counts cover every inference of the run (between the harness's markers), summed."""
import argparse, bisect, shutil, subprocess, sys

ap = argparse.ArgumentParser()
ap.add_argument("elf"); ap.add_argument("hist")
ap.add_argument("--blocks", type=int, default=0); ap.add_argument("--disasm", action="store_true")
a = ap.parse_args()

nm = shutil.which("llvm-nm") or "nm"
syms = []
for line in subprocess.run([nm, "-C", "-S", "--defined-only", a.elf], capture_output=True, text=True, check=True).stdout.splitlines():
    f = line.split(None, 3)
    if len(f) == 4 and f[2].lower() == "t":
        syms.append((int(f[0], 16) & ~1, int(f[1], 16), f[3]))
syms.sort()
starts = [s[0] for s in syms]

def where(addr):
    i = bisect.bisect_right(starts, addr) - 1
    if i >= 0 and addr < syms[i][0] + max(syms[i][1], 1):
        return syms[i][2], addr - syms[i][0]
    return "?", addr

blocks, per_sym, total = [], {}, 0
for line in open(a.hist):
    v, n, e = line.split()
    v, n, e = int(v, 16), int(n), int(e)
    name, off = where(v)
    per_sym[name] = per_sym.get(name, 0) + n * e
    blocks.append((n * e, v, n, e, name, off))
    total += n * e
print(f"{total} instructions executed in all")
for name, c in sorted(per_sym.items(), key=lambda kv: -kv[1])[:20]:
    print(f"{c:>12} {100 * c / total:5.1f}%  {name}")
if a.blocks:
    print()
    od = shutil.which("llvm-objdump") or "objdump"
    for c, v, n, e, name, off in sorted(blocks, reverse=True)[: a.blocks]:
        print(f"{c:>12} {100 * c / total:5.1f}%  0x{v:x} {name}+0x{off:x}: {n} instructions x {e}")
        if a.disasm:
            out = subprocess.run([od, "-d", "--no-show-raw-insn", f"--start-address={v}", f"--stop-address={v + 4 * n + 4}", a.elf],
                                 capture_output=True, text=True).stdout.splitlines()
            body = [l for l in out if l.strip() and l.startswith(" ") and ":" in l][:n]
            for l in body:
                print("        " + l.strip())
