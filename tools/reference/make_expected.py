#!/usr/bin/env python3
"""Write conformance cases (tests/conformance/cases/<case>.json) and their data
(tests/conformance/data/<case>.in.bin / .out.bin) with TFLite Micro's outputs.

    .venv-ref/bin/python tools/reference/make_expected.py                # every case
    .venv-ref/bin/python tools/reference/make_expected.py --group A      # own group A models
    .venv-ref/bin/python tools/reference/make_expected.py --group shared # ../shared/models
    .venv-ref/bin/python tools/reference/make_expected.py fc_relu_int8   # by case name

Cases: every model listed in tests/models/models.json (written by make_models.py) and
every .tflite under <repo>/../shared/models/*/ except audio_preprocessor_* (custom ops).

Data format (also used by `microgen run`): raw little-endian values in each tensor's
dtype; per sample the model's input (output) tensors in model order, concatenated;
then the next sample.

Inputs are seeded by crc32(case name). The first half of the samples is uniform over
the input dtype's full range (int8) or over the representative range (float); the
second half is drawn from the realistic distribution (the model's calibration
distribution for our own models; for shared models, one derived from the input
quantization range: smooth random images for image inputs, per-sample normal
otherwise), quantized with the input's scale/zero-point for int8 inputs.

Reference: TFLM's Python interpreter (the reference kernels) for everything it runs;
models TFLM refuses fall back to LiteRT's BUILTIN_REF kernels. Every case is also run
through LiteRT BUILTIN_REF as a cross-check (reported, not written).
"""
import argparse
import glob
import json
import os
import sys
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tflite_info  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.path.abspath(os.path.join(REPO, "..", "shared", "models"))
CASES_DIR = os.path.join(REPO, "tests", "conformance", "cases")
DATA_DIR = os.path.join(REPO, "tests", "conformance", "data")
MANIFEST = os.path.join(REPO, "tests", "models", "models.json")

DEFAULT_SAMPLES = 100
SAMPLES = {"vww_mobilenet_float32": 10, "vww_mobilenet_int8": 20}
# Our own float cases (tests/models/*_f32 and float-I/O models) get fewer samples when a
# sample is large, to keep tests/conformance/data under ~8 MB: a float case is compared
# with a tolerance, so it needs fewer samples than an exact int8 case.
OWN_FLOAT_CASE_BYTES = 16384
OWN_FLOAT_MIN_SAMPLES = 20
EXCLUDE_SHARED = ("audio_preprocessor_",)

# Float tolerance: pass iff |got - want| <= abs + rel * |want| for every element.
FLOAT_TOL = {"rel": 1e-5, "abs": 1e-6}
# Deep shared float models: an x86-64 host with FMA fuses the float multiply-adds (one
# rounding, microgen_rt::f::FUSED), and in a hybrid model (kws_ds_cnn_float32) a last-bit
# difference can move a dynamically quantized activation by one int8 step.
FLOAT_TOL_DEEP = {"rel": 1e-4, "abs": 1e-5}
LITERT_TOL = {"rel": 1e-4, "abs": 1e-6}         # cases whose reference is LiteRT BUILTIN_REF

# Realistic real-valued input ranges of the shared models, from the input quantization of
# the int8 variants (float variants use their int8 sibling's range).
#   name: (lo, hi, kind) kind: "image" = smooth random images, "feat" = per-sample normal
SHARED_INPUTS = {
    "ad_autoencoder": (-85.0, 14.9, "feat"),        # log-mel frames (q=0.391,89)
    "ic_resnet8": (0.0, 255.0, "image"),            # raw RGB pixels (q=1,-128)
    "kws_ds_cnn": (-123.3, 25.7, "feat"),           # MFCC (q=0.585,83)
    "sww_ref_model": (0.0, 0.94, "feat"),           # features (q=0.0037,-128)
    "vww_mobilenet": (0.0, 1.0, "image"),           # RGB in [0,1] (q=1/255,-128)
    "hello_world": (0.0, 6.2832, "feat"),           # x in [0, 2pi]
    "micro_speech": (0.0, 25.9, "feat"),            # spectrogram (q=0.1017,-128)
    "person_detect": (-1.0, 1.0, "image"),          # grayscale in [-1,1] (q=1/127.5,-1)
    "magic_wand": (-2.0, 2.0, "feat"),              # accelerometer, no int8 sibling: a guess
}

DTYPES = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32,
          "int64": np.int64, "float32": np.float32, "bool": np.bool_}


def seed_of(text):
    return zlib.crc32(text.encode())


def rel(path):
    return os.path.relpath(path, REPO)


# ----------------------------------------------------------------------------
# Case discovery
# ----------------------------------------------------------------------------
def own_cases():
    if not os.path.exists(MANIFEST):
        return []
    with open(MANIFEST) as f:
        manifest = json.load(f)
    out = []
    for name, m in manifest.items():
        for variant, v in m["variants"].items():
            if "file" not in v:
                continue
            dists = []
            for t in v["inputs"]:
                r = t["rep"]
                dists.append(("normal", r["mean"], r["std"]))
            out.append({
                "case": f"{name}_{variant}",
                "group": m["group"],
                "model": v["file"],
                "path": os.path.join(REPO, v["file"]),
                "dists": dists,
                "note": m["note"],
            })
    return out


def shared_cases():
    out = []
    for path in sorted(glob.glob(os.path.join(SHARED, "*", "*.tflite"))):
        base = os.path.splitext(os.path.basename(path))[0]
        if base.startswith(EXCLUDE_SHARED):
            continue
        key = next((k for k in SHARED_INPUTS if base.startswith(k)), None)
        if key is None:
            raise RuntimeError(f"no input range known for shared model {base}")
        lo, hi, kind = SHARED_INPUTS[key]
        sub = os.path.basename(os.path.dirname(path))
        out.append({
            "case": base,
            "group": "shared",
            "model": f"shared:{sub}/{os.path.basename(path)}",
            "path": path,
            "dists": None,  # one per input, filled once the inputs are known
            "shared_range": (lo, hi, kind),
            "note": f"shared model {sub}/{os.path.basename(path)}",
        })
    return out


# ----------------------------------------------------------------------------
# Input generation
# ----------------------------------------------------------------------------
def smooth_image(rng, shape, lo, hi):
    """Smooth random image in [lo, hi]: low-res random grid, bilinear upsampling, noise."""
    _, h, w, ch = shape
    gh, gw = rng.integers(3, 9), rng.integers(3, 9)
    grid = rng.uniform(0, 1, (gh, gw, ch))
    ys = np.linspace(0, gh - 1, h)
    xs = np.linspace(0, gw - 1, w)
    y0 = np.floor(ys).astype(int).clip(0, gh - 2)
    x0 = np.floor(xs).astype(int).clip(0, gw - 2)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    g = grid
    img = (g[y0][:, x0] * (1 - fy) * (1 - fx) + g[y0 + 1][:, x0] * fy * (1 - fx)
           + g[y0][:, x0 + 1] * (1 - fy) * fx + g[y0 + 1][:, x0 + 1] * fy * fx)
    img = img + rng.normal(0, 0.04, img.shape)
    # random contrast / brightness
    c = rng.uniform(0.5, 1.0)
    b = rng.uniform(0, 1 - c)
    img = np.clip(b + c * img, 0, 1)
    return (lo + (hi - lo) * img).reshape(shape)


def realistic_float(rng, shape, dist):
    kind = dist[0]
    if kind == "normal":
        _, mean, std = dist
        return rng.normal(mean, std, shape)
    _, lo, hi = dist
    if kind == "image" and len(shape) == 4 and shape[1] >= 8 and shape[2] >= 8:
        return smooth_image(rng, shape, lo, hi)
    span = hi - lo
    mean = rng.uniform(lo + 0.3 * span, hi - 0.3 * span)
    std = rng.uniform(0.08, 0.25) * span
    return np.clip(rng.normal(mean, std, shape), lo, hi)


def uniform_float(rng, shape, dist):
    if dist[0] == "normal":
        _, mean, std = dist
        lo, hi = mean - 3 * std, mean + 3 * std
    else:
        _, lo, hi = dist
    return rng.uniform(lo, hi, shape)


def quantize(x, t):
    info = np.iinfo(DTYPES[t["dtype"]])
    scale, zp = t["scale"][0], t["zero_point"][0]
    q = np.round(x / scale) + zp
    return np.clip(q, info.min, info.max).astype(DTYPES[t["dtype"]])


def make_inputs(case, inputs, n):
    rng = np.random.default_rng(seed_of(case["case"]))
    samples = []
    for s in range(n):
        realistic = s >= n // 2
        row = []
        for t, dist in zip(inputs, case["dists"]):
            shape = t["shape"]
            dt = DTYPES[t["dtype"]]
            if t["dtype"] == "float32":
                x = realistic_float(rng, shape, dist) if realistic else uniform_float(rng, shape, dist)
                row.append(x.astype(np.float32))
            elif np.issubdtype(dt, np.integer):
                if realistic and t["scale"]:
                    row.append(quantize(realistic_float(rng, shape, dist), t))
                else:
                    info = np.iinfo(dt)
                    row.append(rng.integers(info.min, info.max, shape, endpoint=True).astype(dt))
            else:
                raise RuntimeError(f"{case['case']}: unsupported input dtype {t['dtype']}")
        samples.append(row)
    return samples


# ----------------------------------------------------------------------------
# Interpreters
# ----------------------------------------------------------------------------
class capture_stderr:
    """Capture the C++ stderr (fd 2) of the TFLM runtime, which explains refusals."""

    def __enter__(self):
        import tempfile
        sys.stderr.flush()
        self.tmp = tempfile.TemporaryFile(mode="w+b")
        self.saved = os.dup(2)
        os.dup2(self.tmp.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.tmp.seek(0)
        self.text = self.tmp.read().decode(errors="replace")
        self.tmp.close()
        return False


def run_tflm(buf, samples, n_out):
    from tflite_micro.python.tflite_micro import runtime
    interp = runtime.Interpreter.from_bytes(buf, arena_size=max(16 * len(buf), 4 << 20))
    outs = []
    for row in samples:
        # TFLM may overwrite its input tensors during invoke(): set them every time
        for i, x in enumerate(row):
            interp.set_input(x, i)
        interp.invoke()
        outs.append([np.array(interp.get_output(i), copy=True) for i in range(n_out)])
    # state check: the first sample again must give the same outputs
    for i, x in enumerate(samples[0]):
        interp.set_input(x, i)
    interp.invoke()
    again = [np.array(interp.get_output(i), copy=True) for i in range(n_out)]
    if not all(np.array_equal(a, b) for a, b in zip(again, outs[0])):
        raise RuntimeError("TFLM is not deterministic / leaks state between invocations")
    return outs


def run_litert(path, samples, n_out):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    interp = Interpreter(model_path=path, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    ins = interp.get_input_details()
    outd = interp.get_output_details()
    outs = []
    for row in samples:
        for d, x in zip(ins, row):
            interp.set_tensor(d["index"], x)
        interp.invoke()
        outs.append([np.array(interp.get_tensor(d["index"]), copy=True) for d in outd[:n_out]])
    return outs


def diff_stats(a_rows, b_rows):
    """max |a-b| and max |a-b|/|b| over all samples and outputs."""
    mabs, mrel = 0.0, 0.0
    for ra, rb in zip(a_rows, b_rows):
        for a, b in zip(ra, rb):
            a = a.astype(np.float64).reshape(-1)
            b = b.astype(np.float64).reshape(-1)
            d = np.abs(a - b)
            if d.size:
                mabs = max(mabs, float(d.max()))
                mrel = max(mrel, float((d / np.maximum(np.abs(b), 1e-30)).max()))
    return mabs, mrel


# ----------------------------------------------------------------------------
def write_bin(path, rows):
    with open(path, "wb") as f:
        for row in rows:
            for x in row:
                f.write(np.ascontiguousarray(x).astype(x.dtype.newbyteorder("<")).tobytes())


def summarize(outs, out_tensors):
    parts = []
    for i, t in enumerate(out_tensors):
        vals = np.stack([r[i].reshape(-1) for r in outs])  # samples x elements
        distinct = len(np.unique(vals))
        distinct_rows = len({v.tobytes() for v in vals})
        s = f"out{i} {t['dtype']}{t['shape']}: {distinct} distinct values, {distinct_rows}/{len(outs)} distinct samples"
        if np.issubdtype(vals.dtype, np.integer) and t["dtype"] in ("int8", "uint8"):
            info = np.iinfo(vals.dtype)
            sat = np.mean((vals == info.min) | (vals == info.max))
            s += f", {100 * sat:.0f}% at int8 min/max"
        else:
            s += f", range [{vals.min():.4g}, {vals.max():.4g}]"
        parts.append(s)
    return parts, distinct_rows


def process(case):
    name = case["case"]
    with open(case["path"], "rb") as f:
        buf = f.read()
    d = tflite_info.describe(buf)
    inputs, outputs = d["inputs"], d["outputs"]
    if case["dists"] is None:
        lo, hi, kind = case["shared_range"]
        case["dists"] = [(kind, lo, hi)] * len(inputs)
    n = SAMPLES.get(name, DEFAULT_SAMPLES)
    if case["group"] != "shared" and any(t["dtype"] == "float32" for t in inputs + outputs):
        per_sample = sum(int(np.prod(t["shape"])) * np.dtype(DTYPES[t["dtype"]]).itemsize
                         for t in inputs + outputs)
        n = min(n, max(OWN_FLOAT_MIN_SAMPLES, OWN_FLOAT_CASE_BYTES // per_sample // 2 * 2))
    samples = make_inputs(case, inputs, n)
    is_float = all(t["dtype"] == "float32" for t in outputs + inputs)

    reference, compare, note = "tflm", "exact", case["note"]
    tflm_err = None
    try:
        with capture_stderr() as cap:
            outs = run_tflm(buf, samples, len(outputs))
    except Exception as e:  # TFLM refuses the model: keep the C++ log's first line as reason
        log = [ln.strip() for ln in cap.text.splitlines() if ln.strip()]
        tflm_err = log[0][:200] if log else (str(e).strip() or repr(e))[:200]
        outs = None
    lit = None
    try:
        lit = run_litert(case["path"], samples, len(outputs))
    except Exception as e:
        lit_err = str(e).strip().splitlines()[-1][:200]
        if outs is None:
            raise RuntimeError(f"{name}: neither TFLM ({tflm_err}) nor LiteRT ({lit_err}) runs it")
        print(f"  LiteRT BUILTIN_REF failed: {lit_err}")
    if outs is None:
        reference = "litert-builtin-ref"
        if any(t["dtype"] == "float32" for t in outputs):
            compare = dict(FLOAT_TOL_DEEP if case["group"] == "shared" else LITERT_TOL)
        note += f"; TFLM refuses this model ({tflm_err}), reference is LiteRT BUILTIN_REF"
        outs = lit
        print(f"  TFLM refused: {tflm_err}; using LiteRT BUILTIN_REF")
    elif any(t["dtype"] == "float32" for t in outputs):
        compare = dict(FLOAT_TOL_DEEP if case["group"] == "shared" else FLOAT_TOL)

    xcheck = ""
    if lit is not None and reference == "tflm":
        mabs, mrel = diff_stats(outs, lit)
        if any(t["dtype"] == "float32" for t in outputs):
            xcheck = f"TFLM vs LiteRT ref: max abs {mabs:.3g}, max rel {mrel:.3g}"
        else:
            xcheck = f"TFLM vs LiteRT ref: max abs diff {mabs:.0f} LSB"

    in_path = os.path.join(DATA_DIR, f"{name}.in.bin")
    out_path = os.path.join(DATA_DIR, f"{name}.out.bin")
    write_bin(in_path, samples)
    write_bin(out_path, outs)
    spec = {
        "model": case["model"],
        "inputs": rel(in_path),
        "expected": rel(out_path),
        "samples": n,
        "reference": reference,
        "compare": compare,
        "input_dtypes": [t["dtype"] for t in inputs],
        "output_dtypes": [t["dtype"] for t in outputs],
        "input_shapes": [t["shape"] for t in inputs],
        "output_shapes": [t["shape"] for t in outputs],
        "note": note,
    }
    with open(os.path.join(CASES_DIR, f"{name}.json"), "w") as f:
        f.write(tflite_info.json_dumps(spec) + "\n")
    summ, distinct_rows = summarize(outs, outputs)
    size = os.path.getsize(in_path) + os.path.getsize(out_path)
    print(f"{name}: {n} samples, ref={reference}, {size} bytes")
    for s in summ:
        print("    " + s)
    if xcheck:
        print("    " + xcheck)
    warn = distinct_rows <= 1 and n > 1
    if warn:
        print("    WARNING: every sample gives the same output")
    return {"case": name, "bytes": size, "reference": reference, "xcheck": xcheck, "warn": warn,
            "is_float": is_float}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="*")
    ap.add_argument("--group", choices=["A", "B", "C", "Z", "shared"])
    args = ap.parse_args()
    os.makedirs(CASES_DIR, exist_ok=True)
    os.makedirs(DATA_DIR, exist_ok=True)
    all_cases = own_cases()
    if os.path.isdir(SHARED):
        all_cases += shared_cases()
    else:
        print(f"note: {SHARED} not found, shared cases skipped")
    sel = [c for c in all_cases if (not args.cases or c["case"] in args.cases)
           and (not args.group or c["group"] == args.group)]
    if args.cases:
        unknown = set(args.cases) - {c["case"] for c in all_cases}
        if unknown:
            sys.exit(f"unknown cases: {sorted(unknown)}")
    results = [process(c) for c in sel]
    if not args.cases and not args.group:
        # full run: drop cases (and their data) whose model file is gone. Cases written by
        # other generators (tools/reference/make_field_models.py, ...) are kept as long as
        # their model exists: this script does not know how to rebuild them.
        keep = {c["case"] for c in all_cases}
        for p in glob.glob(os.path.join(CASES_DIR, "*.json")):
            name = os.path.splitext(os.path.basename(p))[0]
            if name in keep:
                continue
            with open(p) as f:
                model = json.load(f).get("model", "")
            path = (os.path.join(SHARED, model[len("shared:"):]) if model.startswith("shared:")
                    else os.path.join(REPO, model))
            if model.startswith("shared:") and not os.path.isdir(SHARED):
                continue
            if os.path.exists(path):
                continue
            print(f"removing stale {rel(p)} (model {model} is gone)")
            os.remove(p)
            for d in glob.glob(os.path.join(DATA_DIR, f"{name}.*.bin")):
                print(f"removing stale {rel(d)}")
                os.remove(d)
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(DATA_DIR, "*")))
    print(f"\n{len(results)} cases written; tests/conformance/data total {total} bytes "
          f"({total / 1e6:.2f} MB)")
    warns = [r["case"] for r in results if r["warn"]]
    if warns:
        print(f"cases with constant output: {warns}")


if __name__ == "__main__":
    main()
