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
import numpy as np
from int8_case import convert_int8, seed_of, tflm_case  # sets TensorFlow's environment first

import tensorflow as tf

SHAPE = (1, 25, 5, 64)
SAMPLES = 20


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


def main():
    for kind, what in [("pw", "CONV_2D 1x1 64->64 + ReLU"), ("dw", "DEPTHWISE_CONV_2D 3x3 s1 SAME, 64 channels + ReLU")]:
        name = f"layer_{kind}_25x5x64_int8"
        data = convert_int8(layer(kind), SHAPE, name + "/rep")
        tflm_case(name, data, SHAPE, SAMPLES, name + "/inputs", f"one layer, {what} (tools/reference/make_layers.py)")


if __name__ == "__main__":
    main()
