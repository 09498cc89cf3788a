#!/usr/bin/env python3
"""Prints the benchmark table from bench/results.json (written by bench/run.sh).

Usage: readme_table.py [--markdown] [--update-readme README.md] [results.json]
Plain text (default): one row per model x target x system, ratios ours/peer on the peer rows.
--markdown: the README's benchmark tables (measurements + board fit), generated, not typed.
--update-readme FILE: write them into FILE between the lines `<!-- bench-table:begin -->` and
`<!-- bench-table:end -->`.
Standard library only.
"""
import json
import os
import sys

TORDER = {"m4": 0, "m0": 1, "rv32": 2}
SORDER = {"microgen": 0, "microflow": 1, "tflm": 2}
BOARD_BYTES = {"m4": (512 << 10, 192 << 10), "m0": (256 << 10, 32 << 10), "rv32": (4 << 20, 400 << 10)}  # as in row.jq
BOARDS = {"m4": "Wio Terminal (512K/192K)", "m0": "Seeeduino XIAO (256K/32K)", "rv32": "ESP32-C3 (4M/400K)"}


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def ram(r):
    """RAM of a row: statics (arena, I/O, state) + stack; TFLM: arena + stack."""
    if r.get("stack_bytes") is None:
        return None
    if r["system"] == "tflm":
        return (r.get("arena_bytes") or 0) + r["stack_bytes"]
    return (r.get("static_ram_bytes") or 0) + r["stack_bytes"]


def flash(r):
    if r.get("text_bytes") is None:
        return None
    if r["system"] == "tflm":
        return r["text_bytes"] + (r.get("model_bytes") or 0)
    return r["text_bytes"] + (r.get("rodata_bytes") or 0)


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def sysname(r):
    extra = r.get("kernels") or r.get("strategy")
    return r["system"] + (f" ({extra})" if extra else "")


def is_ours(r):
    """The microgen row the peers are compared with: the compiler's default goal (speed)."""
    return r["system"] == "microgen" and r.get("strategy") in (None, "speed")


def rows_with_ratios(rows):
    ours = {(r["model"], r["target"]): r for r in rows if is_ours(r)}
    out = []
    gorder = {"speed": 0, "size": 1}
    for r in sorted(rows, key=lambda r: (r["model"], TORDER.get(r["target"], 9), SORDER.get(r["system"], 9),
                                         gorder.get(r.get("strategy") or "", 2), r.get("kernels") or "")):
        o = ours.get((r["model"], r["target"]))
        rat = ("", "", "")
        if r["system"] != "microgen" and o is not None and r.get("instructions") is not None:
            rat = (ratio(flash(o), flash(r)), ratio(ram(o), ram(r)), ratio(o.get("instructions"), r.get("instructions")))
        out.append((r, rat))
    return out


HEAD = ["model", "target", "system", ".text", ".rodata", "static RAM", "arena", "stack", "instructions", "MACs", "instr/MAC",
        "flash ours/peer", "RAM ours/peer", "instr ours/peer"]


def cells(r, rat):
    return [r["model"], r["target"], sysname(r), fmt(r.get("text_bytes")), fmt(r.get("rodata_bytes")),
            fmt(r.get("static_ram_bytes")), fmt(r.get("arena_bytes")), fmt(r.get("stack_bytes")),
            fmt(r.get("instructions")), fmt(r.get("macs")), fmt(None if r.get("instr_per_mac") is None else float(r["instr_per_mac"])), *rat]


def note(r):
    n = r.get("notes") or ""
    if r["system"] == "microgen" and r.get("outputs_match_host") is False:
        n = "OUTPUTS DIFFER FROM HOST; " + n
    if r["system"] == "microflow" and r.get("bit_exact") is True:
        n = "bit-exact"
    if r["system"] == "microflow" and r.get("bit_exact") is False:
        n = n.split("; ", 1)[-1]
    if r["system"] == "tflm":
        n = "measured outside"
    return n


def text(rows):
    table = [HEAD + ["notes"]] + [cells(r, rat) + [note(r)] for r, rat in rows_with_ratios(rows)]
    w = [max(len(str(row[i])) for row in table) for i in range(len(HEAD))]
    for row in table:
        print("  ".join(str(c).rjust(w[i]) if i >= 3 else str(c).ljust(w[i]) for i, c in enumerate(row[:len(HEAD)])) + "  " + row[-1])


TNAME = {"m4": "Cortex-M4F (`thumbv7em-none-eabihf`, QEMU `mps2-an386`)",
         "m0": "Cortex-M0 (`thumbv6m-none-eabi`, QEMU `microbit`; `mps2-an385` when the model needs more than its 16K RAM)",
         "rv32": "RV32IMC (`riscv32imc-unknown-none-elf`, QEMU `virt`)"}


def geomean(xs):
    import math
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def markdown(rows):
    p = print
    allr = rows_with_ratios(rows)
    for t in sorted({r["target"] for r in rows}, key=lambda t: TORDER.get(t, 9)):
        p(f"**{TNAME.get(t, t)}**")
        p()
        p("| model | system | code `.text` | consts `.rodata` | static RAM | arena | stack | instructions | MACs | instr/MAC | flash ours/peer | RAM ours/peer | instr ours/peer | notes |")
        p("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
        for r, rat in allr:
            if r["target"] != t:
                continue
            c = cells(r, rat)
            del c[1]
            if r["system"] == "microgen":
                c[1] = f"**{sysname(r)}**"
            n = note(r)
            if t == "m0" and r.get("qemu_machine") == "mps2-an385":
                n = (n + "; " if n else "") + "on mps2-an385"
            p("| " + " | ".join(c + [n.replace("|", "/")]) + " |")
        # geometric means of the ratios, per peer, over the models both ran
        peers = sorted({sysname(r) for r, _ in allr if r["target"] == t and r["system"] != "microgen"})
        lines = []
        for peer in peers:
            rs = [rat for r, rat in allr if r["target"] == t and sysname(r) == peer and rat[0] not in ("", "-")]
            if rs:
                g = [geomean([float(x[i]) for x in rs if x[i] not in ("", "-")]) for i in range(3)]
                lines.append(f"{peer} ({len(rs)} models): flash {g[0]:.2f}, RAM {g[1]:.2f}, instructions {g[2]:.2f}")
        if lines:
            p()
            p("Geometric means of ours/peer: " + "; ".join(lines) + ".")
        p()
    goals(rows)
    # board fit
    models = sorted({r["model"] for r in rows if r["system"] in ("microgen", "microflow")})
    cols = [(t, s) for s in ("microgen (speed)", "microgen (size)", "microgen", "microflow") for t in ("m4", "m0", "rv32")
            if any(r["target"] == t and sysname(r) == s for r in rows)]
    if not cols:
        return
    by = {(r["model"], r["target"], sysname(r)): r for r in rows}
    p()
    p("Board fit: the whole firmware image (harness included) against the board's memory; flash = `.text` + `.rodata` + `.data`,")
    p("RAM = `.data` + `.bss` + the measured stack peak of the run; K = 1024 B:")
    p()
    p("| model | " + " | ".join(f"{s} {t}: {BOARDS[t]}" for t, s in cols) + " |")
    p("|---|" + "---|" * len(cols))
    for m in models:
        cs = []
        for t, s in cols:
            r = by.get((m, t, s))
            if r is None:
                cs.append("")
            elif r.get("fits_board") is None:
                cs.append("(does not compile)")
            else:
                b = BOARD_BYTES[t]
                why = [w for w, over in (("flash", r["image_flash_bytes"] > b[0]), ("RAM", r["image_ram_bytes"] > b[1])) if over]
                cs.append(("yes" if r["fits_board"] else f"**no** ({' + '.join(why)})")
                          + f": {r['image_flash_bytes'] / 1024:.0f}K / {r['image_ram_bytes'] / 1024:.1f}K")
        p(f"| {m} | " + " | ".join(cs) + " |")


def goals(rows):
    """The kernel goals against the peers on m4: the speed goal's instructions and code beside
    TFLM with CMSIS-NN and MicroFlow, the size goal's code beside the smaller of MicroFlow's and
    TFLM's (reference kernels) code; the pruned twins' instructions (speed goal)."""
    p = print
    by = {}
    for r in rows:
        if r["target"] == "m4":
            by[(r["model"], r["system"], r.get("kernels") or r.get("strategy") or "")] = r
    models = sorted({m for m, s, k in by if s == "microgen" and k == "speed"})
    out = []
    for m in models:
        sp, sz = by.get((m, "microgen", "speed")), by.get((m, "microgen", "size"))
        cm, c8, ref = by.get((m, "tflm", "cmsis-nn")), by.get((m, "tflm", "cmsis-nn-int8reg")), by.get((m, "tflm", "reference"))
        mf = by.get((m, "microflow", ""))
        ok = lambda r, k="instructions": r is not None and r.get(k) is not None
        if not (ok(sp) and (ok(cm) or ok(mf))):
            continue
        peers_code = [r["text_bytes"] for r in (mf, ref) if ok(r, "text_bytes")]
        f = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"
        out.append([m, f(sp["instr_per_mac"]),
                    f(sp["instructions"] / cm["instructions"]) if ok(cm) else "-",
                    f(mf["instructions"] / sp["instructions"], 0) if ok(mf) else "-",
                    f"{sp['text_bytes']:,}", f"{c8['text_bytes']:,}" if ok(c8, "text_bytes") else "-",
                    f"{sz['text_bytes']:,}" if ok(sz, "text_bytes") else "-",
                    f"{min(peers_code):,}" if peers_code else "-",
                    f(sz["text_bytes"] / min(peers_code)) if ok(sz, "text_bytes") and peers_code else "-",
                    f(sz["instr_per_mac"]) if ok(sz, "instr_per_mac") else "-"])
    if out:
        p()
        p("Kernel goals on the Cortex-M4F (code = `.text` beyond the harness; peers from the same table):")
        p()
        p("| model | speed: instr/MAC | speed instr / TFLM+CMSIS-NN | MicroFlow instr / speed | speed code | TFLM+CMSIS-NN int8reg code | size code | min(MicroFlow, TFLM ref) code | size code / that | size: instr/MAC |")
        p("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
        for c in out:
            p("| " + " | ".join(c) + " |")
    twins = sorted({m[: -len("_dense_int8")] for m, s, k in by if m.endswith("_dense_int8") and k == "speed"})
    for t in twins:
        d = by.get((t + "_dense_int8", "microgen", "speed"))
        parts = [f"dense {d['instructions']:,}"]
        for tag in ("p50", "p80"):
            r = by.get((f"{t}_{tag}_int8", "microgen", "speed"))
            if r is not None and r.get("instructions"):
                parts.append(f"{tag} {r['instructions']:,} ({d['instructions'] / r['instructions']:.2f}x faster)")
        p()
        p(f"Pruned twins, speed goal, m4 instructions per inference: {t}: " + ", ".join(parts) + ".")


def main():
    argv = sys.argv[1:]
    readme = None
    if "--update-readme" in argv:
        i = argv.index("--update-readme")
        readme = argv[i + 1]
        del argv[i:i + 2]
    args = [a for a in argv if not a.startswith("--")]
    path = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json")
    rows = json.load(open(path))
    if readme:
        import contextlib
        import io
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            markdown(rows)
        s = open(readme).read()
        begin, end = "<!-- bench-table:begin -->\n", "<!-- bench-table:end -->"
        a, b = s.index(begin) + len(begin), s.index(end)
        open(readme, "w").write(s[:a] + buf.getvalue() + s[b:])
        return
    (markdown if "--markdown" in argv else text)(rows)


if __name__ == "__main__":
    main()
