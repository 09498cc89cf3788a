#!/usr/bin/env python3
"""How far the host's peers are from TFLM's reference kernels: per model, N random inputs run
through TFLM's Python interpreter (`tflite_micro`, the reference), `microgen run`, the
ai-edge-litert interpreter with its default XNNPACK delegate and with its builtin reference
kernels; prints, per system, how many output elements differ from TFLM's and by how much.

Usage: bench/exactness.py [--samples N] [--seed S] MODEL.tflite ...
Run with the reference venv (tools/reference/setup.sh creates .venv-ref; it has tflite_micro,
ai-edge-litert and numpy). The host benchmark (bench/host.py) compares speed with the XNNPACK
interpreter; this script shows what that interpreter computes.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MICROGEN = os.path.join(os.path.dirname(HERE), "target", "release", "microgen")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("models", nargs="+")
    a = ap.parse_args()
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    print("| model | outputs | microgen | litert (XNNPACK) | litert (builtin reference) |")
    print("|---|--:|--:|--:|--:|")
    for m in a.models:
        probe = Interpreter(model_path=m, num_threads=1)
        inp = probe.get_input_details()
        out = probe.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            print(f"| {os.path.basename(m)} | one input and one output only | | | |")
            continue
        shape, dt = inp[0]["shape"], np.dtype(inp[0]["dtype"])
        rng = np.random.default_rng(a.seed)
        if dt.kind == "f":
            xs = rng.standard_normal((a.samples, *shape[1:])).astype(dt)
        else:
            info = np.iinfo(dt)
            xs = rng.integers(info.min, info.max + 1, size=(a.samples, *shape[1:]), dtype=dt)
        ref = []
        tflm = runtime.Interpreter.from_file(m)
        for x in xs:
            tflm.set_input(x[None], 0)
            tflm.invoke()
            ref.append(tflm.get_output(0).reshape(-1).copy())
            tflm.reset()
        ref = np.stack(ref)
        with tempfile.TemporaryDirectory() as d:
            xi, yo = os.path.join(d, "in.bin"), os.path.join(d, "out.bin")
            xs.tofile(xi)
            subprocess.run([MICROGEN, "run", m, "--input", xi, "--output", yo], check=True, capture_output=True)
            ours = np.fromfile(yo, dtype=ref.dtype).reshape(ref.shape)

        def litert(resolver):
            it = Interpreter(model_path=m, num_threads=1, experimental_op_resolver_type=resolver)
            it.allocate_tensors()
            ys = []
            for x in xs:
                it.set_tensor(inp[0]["index"], x[None])
                it.invoke()
                ys.append(it.get_tensor(out[0]["index"]).reshape(-1).copy())
            return np.stack(ys)

        def cell(y):
            d = np.abs(y.astype(np.float64) - ref.astype(np.float64))
            n = int((d > 0).sum())
            return f"{n} (max {d.max():g})" if n else "0"

        row = [cell(ours), cell(litert(OpResolverType.AUTO)), cell(litert(OpResolverType.BUILTIN_REF))]
        print(f"| {os.path.basename(m)} | {ref.size} | " + " | ".join(row) + " |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
