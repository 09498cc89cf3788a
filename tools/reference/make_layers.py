"""Single-layer int8 models the size of KWS's layers (25x5x64), to measure instructions per MAC
of one kernel at a time (bench/run.sh; ../shared/anchors/README.md has the hand-tuned floors
measured on the same shapes), with TFLM reference outputs for the conformance tests.

    .venv-ref/bin/python tools/reference/make_layers.py

Writes tests/models/layer_{pw,dw}_25x5x64_int8.tflite and their conformance cases:
  layer_pw_25x5x64_int8  CONV_2D 1x1, 64 -> 64 channels, bias, ReLU (512,000 MACs)
  layer_dw_25x5x64_int8  DEPTHWISE_CONV_2D 3x3, stride 1, SAME, 64 channels, bias, ReLU (72,000 MACs)
Weights, biases and inputs come from seeded generators; per-channel int8 quantization by the
TFLite converter (representative data from the same distribution as the inputs).
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
SHAPE = (1, 25, 5, 64)
SAMPLES = 20


def seed_of(name):
    return zlib.crc32(name.encode())


def layer(kind):
    rng = np.random.default_rng(seed_of(f"layer/{kind}"))
    if kind == "pw":
        w = tf.constant(rng.normal(0.0, np.sqrt(2.0 / 64), (1, 1, 64, 64)).astype(np.float32))
        b = tf.constant(rng.normal(0.05, 0.05, (64,)).astype(np.float32))

        @tf.function
        def f(x):
            return tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w, 1, "SAME"), b))
    else:
        w = tf.constant(rng.normal(0.0, np.sqrt(2.0 / 9), (3, 3, 64, 1)).astype(np.float32))
        b = tf.constant(rng.normal(0.05, 0.05, (64,)).astype(np.float32))

        @tf.function
        def f(x):
            return tf.nn.relu(tf.nn.bias_add(tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME"), b))
    return f


def convert(f, name):
    conc = f.get_concrete_function(tf.TensorSpec(SHAPE, tf.float32))
    c = tf.lite.TFLiteConverter.from_concrete_functions([conc])
    rng = np.random.default_rng(seed_of(name + "/rep"))

    def rep():
        for _ in range(100):
            yield [rng.normal(0.0, 1.0, SHAPE).astype(np.float32)]

    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = rep
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    return c.convert()


def main():
    MODELS.mkdir(parents=True, exist_ok=True)
    DATA.mkdir(parents=True, exist_ok=True)
    for kind, what in [("pw", "CONV_2D 1x1 64->64 + ReLU"), ("dw", "DEPTHWISE_CONV_2D 3x3 s1 SAME, 64 channels + ReLU")]:
        name = f"layer_{kind}_25x5x64_int8"
        data = convert(layer(kind), name)
        path = MODELS / f"{name}.tflite"
        path.write_bytes(data)
        it = runtime.Interpreter.from_file(str(path))
        d = it.get_input_details(0)
        sc, zp = d["quantization_parameters"]["scales"][0], d["quantization_parameters"]["zero_points"][0]
        r = np.random.default_rng(seed_of(name + "/inputs"))
        samples = [r.integers(-128, 128, SHAPE).astype(np.int8) for _ in range(SAMPLES // 2)]
        samples += [np.clip(np.round(r.normal(0.0, 1.0, SHAPE) / sc + zp), -128, 127).astype(np.int8) for _ in range(SAMPLES - SAMPLES // 2)]
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
            "input_shapes": [list(SHAPE)],
            "output_shapes": [list(outs[0].shape)],
            "note": f"one layer, {what} (tools/reference/make_layers.py)",
        }
        (CASES / f"{name}.json").write_text(json.dumps(case, indent=2) + "\n")
        distinct = len({o.tobytes() for o in outs})
        print(f"{name}: {len(data)} B, {len(samples)} samples, {distinct} distinct outputs")


if __name__ == "__main__":
    main()
