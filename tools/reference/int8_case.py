"""Shared by the scripts that make int8 test models from TensorFlow functions
(make_pruned.py, make_layers.py): seeded conversion to a full-integer model, and a
conformance case from TFLM's outputs on seeded inputs.
"""
import json
import os
import pathlib
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tflite_micro.python.tflite_micro import runtime  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests/models"
CASES = ROOT / "tests/conformance/cases"
DATA = ROOT / "tests/conformance/data"


def seed_of(name):
    return zlib.crc32(name.encode())


def convert_int8(f, shape, rep_seed):
    """`f` (one float32 input of `shape`) as an int8 model (int8 input and output),
    calibrated on 100 standard-normal samples seeded by `rep_seed`."""
    conc = f.get_concrete_function(tf.TensorSpec(shape, tf.float32))
    c = tf.lite.TFLiteConverter.from_concrete_functions([conc])
    rng = np.random.default_rng(seed_of(rep_seed))

    def rep():
        for _ in range(100):
            yield [rng.normal(0.0, 1.0, shape).astype(np.float32)]

    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = rep
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    return c.convert()


def tflm_case(name, data, shape, n, input_seed, note):
    """Writes the model `data` as tests/models/NAME.tflite and the conformance case NAME:
    `n` inputs seeded by `input_seed` (half uniform over int8, half the calibration
    distribution quantized with the model's input parameters) and TFLM's outputs.
    Returns the outputs."""
    MODELS.mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    path = MODELS / f"{name}.tflite"
    path.write_bytes(data)
    it = runtime.Interpreter.from_file(str(path))
    d = it.get_input_details(0)
    sc, zp = d["quantization_parameters"]["scales"][0], d["quantization_parameters"]["zero_points"][0]
    r = np.random.default_rng(seed_of(input_seed))
    samples = [r.integers(-128, 128, shape).astype(np.int8) for _ in range(n // 2)]
    samples += [np.clip(np.round(r.normal(0.0, 1.0, shape) / sc + zp), -128, 127).astype(np.int8) for _ in range(n - n // 2)]
    outs = []
    for x in samples:
        it.set_input(x, 0)
        it.invoke()
        outs.append(np.array(it.get_output(0)).copy())
    (DATA / f"{name}.in.bin").write_bytes(b"".join(x.tobytes() for x in samples))
    (DATA / f"{name}.out.bin").write_bytes(b"".join(o.tobytes() for o in outs))
    case = {
        "model": f"tests/models/{name}.tflite",
        "inputs": f"tests/conformance/data/{name}.in.bin",
        "expected": f"tests/conformance/data/{name}.out.bin",
        "samples": len(samples),
        "reference": "tflm",
        "compare": "exact",
        "input_dtypes": ["int8"],
        "output_dtypes": ["int8"],
        "input_shapes": [list(shape)],
        "output_shapes": [list(outs[0].shape)],
        "note": note,
    }
    (CASES / f"{name}.json").write_text(json.dumps(case, indent=2) + "\n")
    distinct = len({o.tobytes() for o in outs})
    print(f"{name}: {len(data)} B, {len(samples)} samples, {distinct} distinct outputs")
    return outs
