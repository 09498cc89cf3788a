#!/usr/bin/env python3
"""Host latency benchmark: microgen's generated code beside the ai-edge-litert interpreter.

Usage: bench/host.py [--iters N] [--rounds R] [--out FILE] [--markdown] [--update-readme FILE] [MODEL.tflite ...]
  (no models)  the MLPerf Tiny models of $MICROGEN_SHARED_MODELS (default ../shared/models)
  --markdown   only print the table of an existing results file (default bench/host.json)
  --update-readme FILE  only write that table into FILE between `<!-- host-table:begin -->`
               and `<!-- host-table:end -->`

Per model, one input sample (bench/gen_input.py, the pattern of the firmware benchmark). Both
systems run in this one process tree on the same machine, alternating, for R rounds (default 9, N default 200):
  microgen: `microgen bench` (the release runner of `microgen run`, opt-level 3, the host's
            default target features) times N calls of `predict` after N warm-up calls;
  litert:   ai_edge_litert.interpreter.Interpreter(num_threads=1), its default op resolver
            (XNNPACK delegate applied by default), N timed `invoke()` after N warm-ups.
A round's figure is the median of its N calls; the reported figure is the median over rounds
(the criterion), beside each system's fastest single call over all rounds (the figure least
disturbed by other load on a shared machine).
Run with the project's venv (tools/reference/setup.sh creates .venv-ref).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MICROGEN = os.path.join(ROOT, "target", "release", "microgen")


def litert_latency(model, sample, iters):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=model, num_threads=1)
    it.allocate_tensors()
    off = 0
    for d in it.get_input_details():
        n = int(np.prod(d["shape"]))
        dt = np.dtype(d["dtype"])
        it.set_tensor(d["index"], np.frombuffer(sample, dtype=dt, count=n, offset=off).reshape(d["shape"]))
        off += n * dt.itemsize
    for _ in range(iters):
        it.invoke()
    ns = []
    for _ in range(iters):
        t = time.perf_counter_ns()
        it.invoke()
        ns.append(time.perf_counter_ns() - t)
    return statistics.median(ns), min(ns)


def microgen_latency(model, sample_path, iters):
    out = subprocess.run([MICROGEN, "bench", model, "--input", sample_path, "--iters", str(iters), "--json"],
                         check=True, capture_output=True, text=True)
    j = json.loads(out.stdout)
    return j["median_ns"], j["min_ns"]


def table(res):
    lines = [f"Host: {res['cpu']} ({res['machine']}), one thread, {res['iters']} timed calls x {res['rounds']} rounds, median.", "",
             "| model | microgen (us) | ai-edge-litert (us) | microgen / litert | fastest call: microgen / litert (us) |", "|---|--:|--:|--:|--:|"]
    for r in res["rows"]:
        best = f"{r['microgen_min_us']:.1f} / {r['litert_min_us']:.1f} = {r['microgen_min_us'] / r['litert_min_us']:.2f}" if "microgen_min_us" in r else ""
        lines.append(f"| {r['model']} | {r['microgen_us']:.1f} | {r['litert_us']:.1f} | {r['ratio']:.2f} | {best} |")
    return "\n".join(lines)


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--out", default=os.path.join(HERE, "host.json"))
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--update-readme")
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    if a.markdown:
        print(table(json.load(open(a.out))))
        return
    if a.update_readme:
        s = open(a.update_readme).read()
        begin, end = "<!-- host-table:begin -->\n", "<!-- host-table:end -->"
        i, j = s.index(begin) + len(begin), s.index(end)
        open(a.update_readme, "w").write(s[:i] + "\n" + table(json.load(open(a.out))) + "\n\n" + s[j:])
        return
    models = a.models
    if not models:
        shared = os.environ.get("MICROGEN_SHARED_MODELS", os.path.join(ROOT, "..", "shared", "models"))
        d = os.path.join(shared, "mlperf-tiny")
        models = sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".tflite"))
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "microgen"], cwd=ROOT, check=True)
    work = os.path.join(HERE, "work", "host")
    os.makedirs(work, exist_ok=True)
    rows = []
    for m in models:
        stem = os.path.splitext(os.path.basename(m))[0]
        info = os.path.join(work, stem + ".json")
        with open(info, "w") as f:
            subprocess.run([MICROGEN, "inspect", "--json", m], check=True, stdout=f)
        sample_path = os.path.join(work, stem + ".bin")
        subprocess.run([sys.executable, os.path.join(HERE, "gen_input.py"), info, sample_path], check=True)
        sample = open(sample_path, "rb").read()
        microgen_latency(m, sample_path, 1)  # builds the runner outside the timing
        mg, lt, mg_min, lt_min = [], [], [], []
        for _ in range(a.rounds):
            med, lo = microgen_latency(m, sample_path, a.iters)
            mg.append(med)
            mg_min.append(lo)
            med, lo = litert_latency(m, sample, a.iters)
            lt.append(med)
            lt_min.append(lo)
        r = {"model": stem, "microgen_us": statistics.median(mg) / 1000, "litert_us": statistics.median(lt) / 1000,
             "microgen_min_us": min(mg_min) / 1000, "litert_min_us": min(lt_min) / 1000,
             "microgen_rounds_us": [x / 1000 for x in mg], "litert_rounds_us": [x / 1000 for x in lt]}
        r["ratio"] = r["microgen_us"] / r["litert_us"]
        print(f"host-bench: {stem}: microgen {r['microgen_us']:.1f} us, litert {r['litert_us']:.1f} us, ratio {r['ratio']:.2f}", file=sys.stderr)
        rows.append(r)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    import ai_edge_litert
    res = {"cpu": cpu_name(), "machine": platform.machine(), "iters": a.iters, "rounds": a.rounds, "commit": commit,
           "litert_version": getattr(ai_edge_litert, "__version__", "?"), "rows": rows}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2)
        f.write("\n")
    print(table(res))


if __name__ == "__main__":
    main()
