"""Single-layer int8 models the size of KWS's layers (25x5x64), to measure instructions per MAC
of one kernel at a time (bench/run.sh; ../shared/anchors/README.md has the hand-tuned floors
measured on the same shapes), with TFLM reference outputs for the conformance tests.

    .venv-ref/bin/python tools/reference/make_layers.py

Writes tests/models/layer_{pw,dw}_25x5x64_int8.tflite and their conformance cases:
  layer_pw_25x5x64_int8  CONV_2D 1x1, 64 -> 64 channels, bias, ReLU (512,000 MACs)
  layer_dw_25x5x64_int8  DEPTHWISE_CONV_2D 3x3, stride 1, SAME, 64 channels, bias, ReLU (72,000 MACs)
and two shapes of kernel paths the benchmark models take (micro_speech's layers):
  layer_dwc1_21x17x1_int8  DEPTHWISE_CONV_2D 5x4, one input channel, depth multiplier 6,
                           stride 2, SAME (windows from rows converted once, clipped at edges)
  layer_fc_1001x12_int8    FULLY_CONNECTED 1001 -> 12, one batch (a long row expanded a block
                           at a time; an odd depth and a partial tile of channels)
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
    if kind == "dwc1":
        w = tf.constant(rng.normal(0.0, np.sqrt(2.0 / 20), (5, 4, 1, 6)).astype(np.float32))
        b = tf.constant(rng.normal(0.05, 0.05, (6,)).astype(np.float32))

        @tf.function
        def f(x):
            return tf.nn.relu(tf.nn.bias_add(tf.nn.depthwise_conv2d(x, w, [1, 2, 2, 1], "SAME"), b))
        return f
    if kind == "fc":
        w = tf.constant(rng.normal(0.0, np.sqrt(1.0 / 1001), (1001, 12)).astype(np.float32))
        b = tf.constant(rng.normal(0.0, 0.1, (12,)).astype(np.float32))

        @tf.function
        def f(x):
            return tf.matmul(x, w) + b
        return f
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
    for kind, shape, what in [
        ("dwc1", (1, 21, 17, 1), "DEPTHWISE_CONV_2D 5x4 one input channel x6 s2 SAME + ReLU"),
        ("fc", (1, 1001), "FULLY_CONNECTED 1001->12"),
    ]:
        name = f"layer_{kind}_{'x'.join(str(d) for d in shape[1:])}{'x12' if kind == 'fc' else ''}_int8"
        data = convert_int8(layer(kind), shape, name + "/rep")
        tflm_case(name, data, shape, SAMPLES, name + "/inputs", f"one layer, {what} (tools/reference/make_layers.py)")


if __name__ == "__main__":
    main()
