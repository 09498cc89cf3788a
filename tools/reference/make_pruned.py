"""Pruned test models: one small CNN with the same (seeded) weights three times, dense and
magnitude-pruned to 50% and 80% sparsity, converted to int8, with TFLM reference outputs.

    .venv-ref/bin/python tools/reference/make_pruned.py

Writes tests/models/pruned_cnn_{dense,p50,p80}_int8.tflite and the conformance cases
pruned_cnn_{dense,p50,p80}_int8 (TFLM's outputs).

The network (32x32x1 input): CONV 3x3 1->16 / CONV 3x3 16->32 stride 2 / CONV 3x3 32->32 /
CONV 3x3 32->64 stride 2 / CONV 1x1 64->64 / global average / FC 64->10 / softmax, ReLU
after every convolution, ~4.3 M multiply-accumulates.

Pruning: magnitude pruning of every layer's weights but the first convolution's (whose
input has one channel), in blocks of 4 consecutive input weights of one output channel
(in TFLite's filter order [out][ky][kx][in]; tensorflow-model-optimization's
`prune_low_magnitude(block_size=(1, 4))` pattern): per layer, the blocks with the smallest
L1 norm are set to zero until the target fraction of the layer's weights is zero. The
surviving weights are unchanged, so the three models differ only by the pruned weights.
tensorflow-model-optimization itself is not needed (it does the same, plus fine-tuning,
which changes nothing for testing kernels).
"""
import numpy as np
from int8_case import convert_int8, seed_of, tflm_case  # sets TensorFlow's environment first

import tensorflow as tf

SHAPE = (1, 32, 32, 1)
SAMPLES = 40


def weights():
    """The dense network's weights: (kernel HWIO, bias) per convolution, then the FC."""
    rng = np.random.default_rng(seed_of("pruned_cnn"))
    convs = []
    for kh, cin, cout in [(3, 1, 16), (3, 16, 32), (3, 32, 32), (3, 32, 64), (1, 64, 64)]:
        w = rng.normal(0.0, np.sqrt(2.0 / (kh * kh * cin)), (kh, kh, cin, cout)).astype(np.float32)
        b = rng.normal(0.05, 0.05, (cout,)).astype(np.float32)
        convs.append((w, b))
    fw = rng.normal(0.0, np.sqrt(1.0 / 64), (64, 10)).astype(np.float32)
    fb = rng.normal(0.0, 0.05, (10,)).astype(np.float32)
    return convs, (fw, fb)


def prune_blocks(w_oi, sparsity):
    """`w_oi`: [out][in] (in = the filter's inner order). Zeroes the blocks of 4 consecutive
    inputs with the smallest L1 norm until `sparsity` of the weights are zero."""
    o, i = w_oi.shape
    assert i % 4 == 0
    blocks = np.abs(w_oi).reshape(o, i // 4, 4).sum(axis=2)
    k = int(round(sparsity * blocks.size))
    order = np.argsort(blocks, axis=None, kind="stable")[:k]
    mask = np.ones(blocks.size, dtype=bool)
    mask[order] = False
    mask = np.repeat(mask.reshape(o, i // 4), 4, axis=1)
    return w_oi * mask


def pruned(sparsity):
    convs, (fw, fb) = weights()
    out = [convs[0]]
    for w, b in convs[1:]:
        kh, kw, cin, cout = w.shape
        oi = w.transpose(3, 0, 1, 2).reshape(cout, kh * kw * cin)
        oi = prune_blocks(oi, sparsity)
        out.append((oi.reshape(cout, kh, kw, cin).transpose(1, 2, 3, 0).copy(), b))
    fw = prune_blocks(fw.T, sparsity).T.copy()
    return out, (fw, fb)


def network(convs, fc):
    ks = [(tf.constant(w), tf.constant(b)) for w, b in convs]
    fw, fb = tf.constant(fc[0]), tf.constant(fc[1])
    strides = [1, 2, 1, 2, 1]

    @tf.function
    def f(x):
        h = x
        for (w, b), s in zip(ks, strides):
            h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(h, w, s, "SAME"), b))
        g = tf.reduce_mean(h, axis=[1, 2])
        return tf.nn.softmax(g @ fw + fb)

    return f


def main():
    variants = {"dense": weights(), "p50": pruned(0.5), "p80": pruned(0.8)}
    for tag, (convs, fc) in variants.items():
        name = f"pruned_cnn_{tag}_int8"
        data = convert_int8(network(convs, fc), SHAPE, "pruned_cnn/rep")
        zeros = sum(int((w == 0).sum()) for w, _ in convs[1:]) + int((fc[0] == 0).sum())
        total = sum(w.size for w, _ in convs[1:]) + fc[0].size
        # The same inputs for the three models.
        tflm_case(name, data, SHAPE, SAMPLES, "pruned_cnn/inputs",
                  f"small CNN, {tag}: {zeros} of {total} prunable weights zero "
                  f"(magnitude pruning in blocks of 4 inputs; tools/reference/make_pruned.py)")
        print(f"{name}: {zeros}/{total} zero")


if __name__ == "__main__":
    main()
