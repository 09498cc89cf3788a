#!/usr/bin/env python3
"""Build microgen's own small test models into tests/models/.

    .venv-ref/bin/python tools/reference/make_models.py            # all groups
    .venv-ref/bin/python tools/reference/make_models.py --group A  # only group A
    .venv-ref/bin/python tools/reference/make_models.py fc_relu conv_s1_same   # by name

Every model is a tf.function over constant (seeded numpy) weights, or a Keras model
frozen through a concrete function, converted with the TFLite converter to
  <name>_f32.tflite     float32
  <name>_int8.tflite    full-integer int8 (int8 I/O unless the spec says float I/O)
  <name>_16x8.tflite    int16 activations, int8 weights (EXPERIMENTAL_TFLITE_BUILTINS_
                        ACTIVATIONS_INT16_WEIGHTS_INT8), int16 I/O; only where a spec asks
  <name>_hybrid.tflite  dynamic-range quantization (optimizations=[DEFAULT] without a
                        representative dataset): int8 weights, float activations; only
                        where a spec asks
Shapes are deliberately awkward (odd sizes, channel counts not multiples of 4).

Groups: A, B (operators), C (16x8 and hybrid), Z (the "zoo": small Keras architectures as
users bring them, converted to float32 and int8).

The op list of every produced model is checked against the spec (`ops=`): a model
whose converter output lacks an intended op fails the build.

Also writes tests/models/models.json (manifest: ops, I/O, the representative input
distribution used for calibration; make_expected.py reads it) and tests/models/README.md.
"""
import argparse
import json
import os
import re
import sys
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tflite_info  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT_DIR = os.path.join(REPO, "tests", "models")
REP_SAMPLES = 100
MAX_BYTES = 60 * 1024
VARIANTS = ("f32", "int8", "16x8", "hybrid")
GROUPS = ("A", "B", "C", "Z")


def seed_of(text):
    return zlib.crc32(text.encode())


# ----------------------------------------------------------------------------
# Spec registry
# ----------------------------------------------------------------------------
class Spec:
    def __init__(self, name, group, inputs, build, ops, variants=("f32", "int8"), note="",
                 ops_f32=None, ops_int8=None, refuse_ok=(), int8_io="int8", dynamic_dims=0,
                 bias32=False, per_tensor=False, postprocess=None):
        self.name = name
        self.group = group
        # inputs: list of (shape, mean, std) -- the representative (calibration) distribution
        self.inputs = [(list(s), float(m), float(sd)) for (s, m, sd) in inputs]
        self.build = build        # build(rng) -> python function of tf tensors
        self.ops = set(ops)       # ops that must appear in every variant
        self.ops_f32 = set(ops_f32 or ())    # extra ops required in the f32 variant
        self.ops_int8 = set(ops_int8 or ())  # extra ops required in the int8 (and 16x8) variant
        self.variants = variants
        self.note = note
        self.refuse_ok = set(refuse_ok)      # variants the converter may refuse (kept as a note)
        self.int8_io = int8_io               # "int8" or "float" (int8 model with float I/O)
        # declare the first `dynamic_dims` dimensions (all of size 1) as None in the signature
        # (shape_signature -1, shape 1): keeps EXPAND_DIMS / SQUEEZE, which the converter
        # otherwise rewrites to RESHAPE when the shape is static (or has one unknown dim)
        self.dynamic_dims = dynamic_dims
        # 16x8 only: int32 instead of int64 bias (converter option
        # _experimental_full_integer_quantization_bias_type)
        self.bias32 = bias32
        # per-tensor weight quantization (converter option _experimental_disable_per_channel)
        self.per_tensor = per_tensor
        # postprocess(buf) -> buf: an edit of the converted model (see set_fc_option)
        self.postprocess = postprocess


SPECS = []


def model(name, group, inputs, ops, **kw):
    def deco(fn):
        SPECS.append(Spec(name, group, inputs, fn, ops, **kw))
        return fn
    return deco


# ----------------------------------------------------------------------------
# Weight helpers (numpy, seeded per model)
# ----------------------------------------------------------------------------
def c(a):
    return tf.constant(np.asarray(a, dtype=np.float32))


def dense_w(rng, n_in, n_out, gain=1.0):
    w = rng.normal(0.0, gain / np.sqrt(n_in), (n_in, n_out))
    b = rng.normal(0.0, 0.1, (n_out,))
    return c(w), c(b)


def conv_w(rng, kh, kw, cin, cout, gain=1.0):
    w = rng.normal(0.0, gain / np.sqrt(kh * kw * cin), (kh, kw, cin, cout))
    b = rng.normal(0.0, 0.1, (cout,))
    return c(w), c(b)


def dw_w(rng, kh, kw, cin, mult, gain=1.0):
    w = rng.normal(0.0, gain / np.sqrt(kh * kw), (kh, kw, cin, mult))
    b = rng.normal(0.0, 0.1, (cin * mult,))
    return c(w), c(b)


def fc(x, wb):
    return tf.matmul(x, wb[0]) + wb[1]


def conv(x, wb, stride=1, padding="SAME", dilation=1):
    y = tf.nn.conv2d(x, wb[0], strides=[1, stride, stride, 1], padding=padding,
                     dilations=[1, dilation, dilation, 1])
    return tf.nn.bias_add(y, wb[1])


def dwconv(x, wb, stride=1, padding="SAME", dilation=1):
    # raw op so that dilation stays a kernel attribute (tf.nn.depthwise_conv2d with
    # rate>1 would emit SPACE_TO_BATCH_ND / BATCH_TO_SPACE_ND around it)
    y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=wb[0], strides=[1, stride, stride, 1],
                                         padding=padding, dilations=[1, dilation, dilation, 1])
    return tf.nn.bias_add(y, wb[1])


def set_fc_option(name, value):
    """A postprocess that sets FullyConnectedOptions.<name> on every FULLY_CONNECTED."""
    def edit(buf):
        import flatbuffers
        from tensorflow.lite.python import schema_py_generated as schema
        m = tflite_info.load(buf)
        for op in m.subgraphs[0].operators:
            if tflite_info.op_name(m, op) == "FULLY_CONNECTED" and op.builtinOptions is not None:
                setattr(op.builtinOptions, name, value)
        b = flatbuffers.Builder(1024)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())
    return edit


# ----------------------------------------------------------------------------
# Group A
# ----------------------------------------------------------------------------
@model("fc_relu", "A", [([1, 10], 0, 1)], ["FULLY_CONNECTED", "SOFTMAX"],
       note="Dense(13,relu) -> Dense(7,relu6) -> Dense(5) -> softmax")
def _fc_relu(rng):
    l1, l2, l3 = dense_w(rng, 10, 13, 1.5), dense_w(rng, 13, 7, 1.5), dense_w(rng, 7, 5, 2.0)

    def f(x):
        h = tf.nn.relu(fc(x, l1))
        h = tf.nn.relu6(fc(h, l2))
        return tf.nn.softmax(fc(h, l3))
    return f


@model("fc_tanh_sigmoid", "A", [([1, 11], 0, 1)], ["FULLY_CONNECTED", "TANH", "LOGISTIC"],
       note="Dense(9,tanh) -> Dense(6,sigmoid) -> Dense(3)")
def _fc_tanh_sigmoid(rng):
    l1, l2, l3 = dense_w(rng, 11, 9, 1.5), dense_w(rng, 9, 6, 3.0), dense_w(rng, 6, 3, 2.0)

    def f(x):
        h = tf.tanh(fc(x, l1))
        h = tf.sigmoid(fc(h, l2))
        return fc(h, l3)
    return f


@model("add_same", "A", [([1, 12], 0, 1)], ["FULLY_CONNECTED", "ADD"],
       note="two Dense(15) branches from one input, added (same shape), relu fused into ADD")
def _add_same(rng):
    a, b = dense_w(rng, 12, 15), dense_w(rng, 12, 15, 2.0)

    def f(x):
        return tf.nn.relu(fc(x, a) + fc(x, b))
    return f


@model("add_two_inputs", "A", [([1, 17], 0, 1), ([1, 17], 0.5, 3)], ["ADD"],
       note="two model inputs (different ranges -> different scales) added elementwise")
def _add_two_inputs(rng):
    def f(x, y):
        return x + y
    return f


@model("reshape_squeeze", "A", [([1, 1, 4, 1, 6], 0, 1)],
       ["SQUEEZE", "RESHAPE", "FULLY_CONNECTED", "EXPAND_DIMS"], dynamic_dims=2,
       note="input 1x1x4x1x6 whose first two dims are dynamic in the signature (shape_signature "
            "[-1,-1,4,1,6], shape [1,1,4,1,6]); with static shapes the converter rewrites "
            "SQUEEZE/EXPAND_DIMS to RESHAPE. tanh -> squeeze(3) -> 1x1x4x6 -> reshape 1x24 -> "
            "Dense(8) -> reshape 1x2x4 -> tanh -> expand_dims(1) -> 1x1x2x4")
def _reshape_squeeze(rng):
    l1 = dense_w(rng, 24, 8, 1.5)

    def f(x):
        h = tf.squeeze(tf.tanh(x), axis=3)
        h = tf.reshape(h, [-1, 24])
        h = fc(h, l1)
        h = tf.reshape(h, [-1, 2, 4])
        h = tf.tanh(h)
        return tf.expand_dims(h, 1)
    return f


@model("quant_dequant", "A", [([1, 9], 0, 1)], ["FULLY_CONNECTED"],
       ops_int8=["QUANTIZE", "DEQUANTIZE"], int8_io="float", variants=("int8",),
       note="int8 model with float32 I/O: QUANTIZE at the input, DEQUANTIZE at the output")
def _quant_dequant(rng):
    l1, l2 = dense_w(rng, 9, 7, 1.5), dense_w(rng, 7, 6)

    def f(x):
        return fc(tf.nn.relu(fc(x, l1)), l2)
    return f


@model("requantize", "A", [([1, 6], 0, 1), ([1, 5], 0, 4)], ["CONCATENATION"],
       ops_int8=["QUANTIZE"], variants=("int8",),
       note="concat([tanh(x), Dense(5)(y)]): TANH has a fixed output scale (1/128), CONCATENATION "
            "needs one scale for all operands, so the converter inserts a QUANTIZE int8->int8 "
            "(requantize) after TANH")
def _requantize(rng):
    l1 = dense_w(rng, 5, 5, 1.0)

    def f(x, y):
        return tf.concat([tf.tanh(x), fc(y, l1)], axis=-1)
    return f


@model("softmax_beta", "A", [([1, 7], 0, 1)], ["FULLY_CONNECTED", "SOFTMAX"],
       note="Dense(19) -> softmax over 1x19")
def _softmax_beta(rng):
    l1 = dense_w(rng, 7, 19, 2.0)

    def f(x):
        return tf.nn.softmax(fc(x, l1))
    return f


# ----------------------------------------------------------------------------
# Group B
# ----------------------------------------------------------------------------
IMG = [1, 11, 9, 3]


@model("conv_s1_same", "B", [(IMG, 0, 1)], ["CONV_2D"],
       note="CONV_2D 3x3, 5 filters, stride 1, SAME, relu; input 11x9x3")
def _conv_s1_same(rng):
    w = conv_w(rng, 3, 3, 3, 5)
    return lambda x: tf.nn.relu(conv(x, w))


@model("conv_s2_valid", "B", [(IMG, 0, 1)], ["CONV_2D"],
       note="CONV_2D 3x2 kernel, 5 filters, stride 2, VALID, no activation")
def _conv_s2_valid(rng):
    w = conv_w(rng, 3, 2, 3, 5)
    return lambda x: conv(x, w, stride=2, padding="VALID")


@model("conv_s2_same", "B", [(IMG, 0, 1)], ["CONV_2D"],
       note="CONV_2D 4x3 kernel (asymmetric SAME padding), 7 filters, stride 2, SAME, relu6")
def _conv_s2_same(rng):
    w = conv_w(rng, 4, 3, 3, 7)
    return lambda x: tf.nn.relu6(conv(x, w, stride=2, padding="SAME"))


@model("conv_dil2", "B", [(IMG, 0, 1)], ["CONV_2D"],
       note="CONV_2D 3x3, dilation 2, 5 filters, SAME")
def _conv_dil2(rng):
    w = conv_w(rng, 3, 3, 3, 5)
    return lambda x: conv(x, w, dilation=2)


@model("dw_m1", "B", [([1, 9, 7, 5], 0, 1)], ["DEPTHWISE_CONV_2D"],
       note="DEPTHWISE_CONV_2D 3x3, multiplier 1, stride 1, SAME, relu; 5 channels")
def _dw_m1(rng):
    w = dw_w(rng, 3, 3, 5, 1)
    return lambda x: tf.nn.relu(dwconv(x, w))


@model("dw_m2", "B", [([1, 9, 7, 3], 0, 1)], ["DEPTHWISE_CONV_2D"],
       note="DEPTHWISE_CONV_2D 3x3, multiplier 2, stride 2, VALID")
def _dw_m2(rng):
    w = dw_w(rng, 3, 3, 3, 2)
    return lambda x: dwconv(x, w, stride=2, padding="VALID")


@model("dw_dil2", "B", [([1, 9, 7, 5], 0, 1)], ["DEPTHWISE_CONV_2D"],
       note="DEPTHWISE_CONV_2D 3x3, multiplier 1, dilation 2, SAME, relu6")
def _dw_dil2(rng):
    w = dw_w(rng, 3, 3, 5, 1)
    return lambda x: tf.nn.relu6(dwconv(x, w, dilation=2))


POOL_IN = [1, 9, 7, 3]


@model("avgpool_same_s2", "B", [(POOL_IN, 0, 1)], ["AVERAGE_POOL_2D"],
       note="AVERAGE_POOL_2D 3x3 stride 2 SAME on 9x7 (border windows average fewer elements)")
def _avgpool_same(rng):
    return lambda x: tf.nn.avg_pool2d(x, 3, 2, "SAME")


@model("avgpool_valid_s2", "B", [(POOL_IN, 0, 1)], ["AVERAGE_POOL_2D"],
       note="AVERAGE_POOL_2D 2x2 stride 2 VALID on 9x7 (last row/col dropped)")
def _avgpool_valid(rng):
    return lambda x: tf.nn.avg_pool2d(x, 2, 2, "VALID")


@model("maxpool_same_s2", "B", [(POOL_IN, 0, 1)], ["MAX_POOL_2D"],
       note="MAX_POOL_2D 3x3 stride 2 SAME on 9x7")
def _maxpool_same(rng):
    return lambda x: tf.nn.max_pool2d(x, 3, 2, "SAME")


@model("maxpool_valid_s2", "B", [(POOL_IN, 0, 1)], ["MAX_POOL_2D"],
       note="MAX_POOL_2D 2x3 window, stride 2, VALID on 9x7")
def _maxpool_valid(rng):
    return lambda x: tf.nn.max_pool2d(x, [2, 3], 2, "VALID")


@model("add_bcast", "B", [([1, 5, 7, 3], 0, 1), ([1, 1, 1, 3], 0, 2)], ["ADD"],
       note="ADD with broadcasting 1x5x7x3 + 1x1x1x3 (two inputs)")
def _add_bcast(rng):
    return lambda a, b: a + b


@model("sub_bcast", "B", [([1, 5, 7, 3], 0, 1), ([1, 1, 7, 1], 1, 2)], ["SUB"],
       note="SUB with broadcasting 1x5x7x3 - 1x1x7x1 (two inputs)")
def _sub_bcast(rng):
    return lambda a, b: a - b


@model("mul_bcast", "B", [([1, 5, 1, 3], 0, 1), ([1, 1, 7, 1], 0, 2)], ["MUL"],
       note="MUL with broadcasting 1x5x1x3 * 1x1x7x1 -> 1x5x7x3 (two inputs)")
def _mul_bcast(rng):
    return lambda a, b: a * b


@model("mean_keep", "B", [([1, 7, 5, 6], 0.5, 1)], ["MEAN"],
       note="MEAN over axes [1,2], keepdims=True -> 1x1x1x6")
def _mean_keep(rng):
    return lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True)


@model("mean_nokeep", "B", [([1, 7, 5, 6], 0.5, 1)], ["MEAN"],
       note="MEAN over axes [1,2], keepdims=False -> 1x6")
def _mean_nokeep(rng):
    return lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=False)


@model("pad", "B", [([1, 5, 7, 3], 0, 1)], ["PAD"],
       note="PAD [[0,0],[1,2],[2,1],[0,0]] with zeros")
def _pad(rng):
    return lambda x: tf.pad(x, [[0, 0], [1, 2], [2, 1], [0, 0]])


@model("padv2", "B", [([1, 5, 7, 3], 0, 1)], ["PADV2"],
       note="PADV2 [[0,0],[2,1],[0,3],[1,0]] with constant 0.75")
def _padv2(rng):
    return lambda x: tf.pad(x, [[0, 0], [2, 1], [0, 3], [1, 0]], constant_values=0.75)


@model("concat_last", "B", [([1, 5, 7, 3], 0, 1), ([1, 5, 7, 2], 1, 3)], ["CONCATENATION"],
       ops_int8=["QUANTIZE"],
       note="CONCATENATION along the last axis of [a, logistic(b)]: LOGISTIC's fixed output scale "
            "(1/256) differs from a's, so the int8 model requantizes it (QUANTIZE int8->int8) "
            "before the concatenation (TFLM's int8 CONCATENATION needs equal scales)")
def _concat_last(rng):
    return lambda a, b: tf.concat([a, tf.sigmoid(b)], axis=-1)


@model("concat_axis1", "B",
       [([1, 3, 4, 5], 0, 1), ([1, 2, 4, 5], 0, 0.5), ([1, 1, 4, 5], -1, 2)], ["CONCATENATION"],
       ops_int8=["QUANTIZE"],
       note="CONCATENATION along axis 1 of [a, tanh(b), d] (three inputs; tanh's fixed scale "
            "forces a requantize in the int8 model)")
def _concat_axis1(rng):
    return lambda a, b, d: tf.concat([a, tf.tanh(b), d], axis=1)


@model("strided_slice", "B", [([1, 9, 10, 6], 0, 1)], ["STRIDED_SLICE"],
       note="two outputs: x[:, 1:8:2, ::3, 1:5] -> 1x4x4x4 (strides, begin/end masks) and "
            "x[:, 2, 1:-1, ::-2] -> 1x8x3 (shrink_axis, negative end, negative stride); "
            "the converter decides the output order")
def _strided_slice(rng):
    def f(x):
        return x[:, 1:8:2, ::3, 1:5], x[:, 2, 1:-1, ::-2]
    return f


@model("transpose", "B", [([1, 4, 5, 6], 0, 1)], ["TRANSPOSE"],
       note="TRANSPOSE perm [0,3,1,2]")
def _transpose(rng):
    return lambda x: tf.transpose(x, [0, 3, 1, 2])


@model("minimum_maximum", "B", [([1, 6, 5], 0, 1), ([1, 6, 5], 0.5, 2)], ["MINIMUM", "MAXIMUM"],
       note="outputs minimum(a, b) and maximum(a, const[5]) (broadcast); in int8 a is "
            "requantized to b's scale for MINIMUM")
def _minmax(rng):
    k = c(rng.normal(0, 1, (5,)))

    def f(a, b):
        return tf.minimum(a, b), tf.maximum(a, k)
    return f


@model("leaky_relu", "B", [([1, 7, 5, 3], 0, 1)], ["LEAKY_RELU"], note="LEAKY_RELU alpha 0.2")
def _leaky_relu(rng):
    return lambda x: tf.nn.leaky_relu(x, alpha=0.2)


@model("hard_swish", "B", [([1, 7, 5, 3], 0, 2)], ["HARD_SWISH"],
       note="x * relu6(x + 3) / 6 (fused by the converter into HARD_SWISH)")
def _hard_swish(rng):
    return lambda x: x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


@model("relu_n1_to_1", "B", [([1, 7, 5, 3], 0, 1.5)], ["RELU_N1_TO_1"],
       note="clip to [-1,1] (converter fuses min/max into RELU_N1_TO_1)")
def _relu_n1_to_1(rng):
    return lambda x: tf.minimum(tf.maximum(x, -1.0), 1.0)


@model("resize_nearest", "B", [([1, 5, 7, 3], 0, 1)], ["RESIZE_NEAREST_NEIGHBOR"],
       note="two outputs: resize nearest 5x7 -> 9x13 (half_pixel_centers) and 5x7 -> 10x14 "
            "(align_corners); the converter decides the output order")
def _resize_nearest(rng):
    def f(x):
        a = tf.image.resize(x, [9, 13], method="nearest")
        b = tf.compat.v1.image.resize_nearest_neighbor(x, [10, 14], align_corners=True)
        return a, b
    return f


@model("resize_bilinear", "B", [([1, 4, 5, 2], 0, 1)], ["RESIZE_BILINEAR"],
       note="two outputs: resize bilinear 4x5 -> 7x9 (half_pixel_centers) and 4x5 -> 6x11 "
            "(align_corners); the converter decides the output order")
def _resize_bilinear(rng):
    def f(x):
        a = tf.image.resize(x, [7, 9], method="bilinear")
        b = tf.compat.v1.image.resize_bilinear(x, [6, 11], align_corners=True)
        return a, b
    return f


@model("split", "B", [([1, 4, 5, 6], 0, 1)], ["SPLIT"], note="SPLIT into 3 along the last axis")
def _split(rng):
    return lambda x: tuple(tf.split(x, 3, axis=-1))


@model("split_v", "B", [([1, 9, 5, 3], 0, 1)], ["SPLIT_V"],
       note="SPLIT_V sizes [2,4,3] along axis 1")
def _split_v(rng):
    return lambda x: tuple(tf.split(x, [2, 4, 3], axis=1))


@model("pack", "B", [([1, 5, 3], 0, 1), ([1, 5, 3], 0, 1)], ["PACK"],
       note="PACK (tf.stack) of two inputs along axis 1 -> 1x2x5x3")
def _pack(rng):
    return lambda a, b: tf.stack([a, b], axis=1)


@model("unpack", "B", [([1, 3, 4, 5], 0, 1)], ["UNPACK"],
       note="UNPACK (tf.unstack) along axis 1 -> 3 outputs of 1x4x5")
def _unpack(rng):
    return lambda x: tuple(tf.unstack(x, axis=1))


@model("arg_max", "B", [([1, 7, 5, 6], 0, 1)], ["ARG_MAX"],
       note="ARG_MAX over the last axis, int32 output")
def _arg_max(rng):
    return lambda x: tf.argmax(x, axis=-1, output_type=tf.int32)


@model("log_softmax", "B", [([1, 13], 0, 2)], ["LOG_SOFTMAX"], note="LOG_SOFTMAX over 1x13")
def _log_softmax(rng):
    return lambda x: tf.nn.log_softmax(x)


@model("prelu", "B", [([1, 7, 5, 3], 0, 1)], ["PRELU"],
       note="PRELU with per-channel alpha [3] (relu(x) - alpha*relu(-x), fused by the converter)")
def _prelu(rng):
    alpha = c([[[0.25, -0.5, 1.5]]])  # rank = input rank - 1 (converter PReLU pattern)

    def f(x):
        return tf.nn.relu(x) + tf.nn.relu(-x) * (-alpha)
    return f


def _resnet_keras(rng):
    """Small ResNet-8-like Keras model: conv-bn-relu stem, two residual blocks (the
    second with a strided 1x1 projection), global average pooling, dense, softmax."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(int(rng.integers(0, 2**31 - 1)))
    inp = keras.Input((16, 16, 3), batch_size=1)

    def cbr(x, f, k=3, s=1, relu=True):
        x = layers.Conv2D(f, k, strides=s, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x) if relu else x

    x = cbr(inp, 8)
    y = cbr(x, 8)
    y = cbr(y, 8, relu=False)
    x = layers.ReLU()(layers.Add()([x, y]))
    y = cbr(x, 12, s=2)
    y = cbr(y, 12, relu=False)
    sc = cbr(x, 12, k=1, s=2, relu=False)
    x = layers.ReLU()(layers.Add()([sc, y]))
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(10, activation="softmax")(x)
    m = keras.Model(inp, out)
    # non-trivial BatchNorm statistics
    for layer in m.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.2, n).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.2, n).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype(np.float32))
    # a few quick training steps on seeded random data (fixed labels)
    m.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    xs = rng.normal(0, 1, (32, 16, 16, 3)).astype(np.float32)
    ys = rng.integers(0, 10, (32,))
    m.fit(xs, ys, batch_size=1, epochs=1, verbose=0, shuffle=False)
    return m


@model("resnet_small", "B", [([1, 16, 16, 3], 0, 1)],
       ["CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"],
       note="Keras ResNet-8-like at 16x16x3: conv-bn-relu, 2 residual adds (one with strided "
            "1x1 projection), global average pool, dense, softmax")
def _resnet_small(rng):
    m = _resnet_keras(rng)

    def f(x):
        return m(x, training=False)
    f.trackable = m
    return f


# ----------------------------------------------------------------------------
# Group C: int16 activations with int8 weights ("16x8"), hybrid (dynamic range)
# ----------------------------------------------------------------------------
@model("conv_fc", "C", [([1, 11, 9, 3], 0, 1)], ["CONV_2D", "FULLY_CONNECTED", "SOFTMAX"],
       variants=("16x8",),
       note="16x8: CONV_2D 3x3 stride 2 SAME relu (5 filters) -> CONV_2D 2x3 VALID (6 filters, "
            "int64 bias) -> flatten -> Dense(9, relu6) -> Dense(5) -> outputs the logits and "
            "their softmax (int16 SOFTMAX)")
def _conv_fc(rng):
    c1, c2 = conv_w(rng, 3, 3, 3, 5, 1.5), conv_w(rng, 2, 3, 5, 6, 1.5)
    l1, l2 = dense_w(rng, 5 * 3 * 6, 9, 1.5), dense_w(rng, 9, 5, 2.0)

    def f(x):
        h = tf.nn.relu(conv(x, c1, stride=2))
        h = conv(h, c2, padding="VALID")
        h = tf.reshape(h, [1, -1])
        h = tf.nn.relu6(fc(h, l1))
        logits = fc(h, l2)
        return logits, tf.nn.softmax(logits)
    return f


@model("conv_fc_b32", "C", [([1, 7, 8, 2], 0, 2)], ["CONV_2D", "FULLY_CONNECTED"],
       ops_int8=["QUANTIZE", "DEQUANTIZE"], variants=("16x8",), int8_io="float", bias32=True,
       note="16x8 with int32 bias (converter option _experimental_full_integer_quantization_bias_type"
            "=int32: int32 accumulators) and float32 I/O (QUANTIZE float32->int16 at the input, "
            "DEQUANTIZE int16->float32 at the output): CONV_2D 3x3 stride 2 SAME relu6 (4 filters) "
            "-> flatten -> Dense(6)")
def _conv_fc_b32(rng):
    c1, l1 = conv_w(rng, 3, 3, 2, 4, 1.5), dense_w(rng, 4 * 4 * 4, 6, 1.5)

    def f(x):
        h = tf.nn.relu6(conv(x, c1, stride=2))
        return fc(tf.reshape(h, [1, -1]), l1)
    return f


@model("pool", "C", [([1, 9, 8, 3], 0, 1)], ["CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"],
       variants=("16x8",),
       note="16x8: CONV_2D 3x3 SAME relu (5 filters) -> MAX_POOL_2D 3x3 stride 2 SAME -> "
            "AVERAGE_POOL_2D 2x2 stride 1 SAME (clipped border windows) -> flatten -> Dense(4)")
def _pool16(rng):
    c1, l1 = conv_w(rng, 3, 3, 3, 5, 1.5), dense_w(rng, 5 * 4 * 5, 4)

    def f(x):
        h = tf.nn.max_pool2d(tf.nn.relu(conv(x, c1)), 3, 2, "SAME")
        h = tf.nn.avg_pool2d(h, 2, 1, "SAME")
        return fc(tf.reshape(h, [1, -1]), l1)
    return f


@model("add3", "C", [([1, 5, 7, 3], 0, 1), ([1, 1, 7, 3], 0.5, 3), ([1, 5, 7, 3], -1, 0.5)],
       ["ADD"], variants=("16x8",),
       note="16x8 ADD: relu(a + b) with b broadcast over the rows (1x5x7x3 + 1x1x7x3) and a + c "
            "(same shape); three inputs with different scales")
def _add3(rng):
    def f(a, b, d):
        return tf.nn.relu(a + b), a + d
    return f


@model("dw_conv", "C", [([1, 9, 7, 4], 0, 1)], ["DEPTHWISE_CONV_2D", "CONV_2D"],
       variants=("16x8",),
       note="16x8: DEPTHWISE_CONV_2D 3x3 multiplier 2 stride 2 SAME relu -> DEPTHWISE_CONV_2D 3x3 "
            "dilation 2 SAME relu6 -> CONV_2D 1x1 (5 filters) -> flatten -> Dense(3)")
def _dw_conv(rng):
    d1, d2 = dw_w(rng, 3, 3, 4, 2, 1.5), dw_w(rng, 3, 3, 8, 1, 1.5)
    c1, l1 = conv_w(rng, 1, 1, 8, 5, 1.5), dense_w(rng, 5 * 4 * 5, 3)

    def f(x):
        h = tf.nn.relu(dwconv(x, d1, stride=2))
        h = tf.nn.relu6(dwconv(h, d2, dilation=2))
        h = conv(h, c1)
        return fc(tf.reshape(h, [1, -1]), l1)
    return f


@model("fc_big", "C", [([3, 40], 0, 1)], ["FULLY_CONNECTED"], variants=("hybrid",),
       note="dynamic-range quantized (hybrid) FULLY_CONNECTED: 3 batches x 40 -> Dense(48, relu) "
            "with int8 weights (1920 > 1024 elements: quantized) -> Dense(6) (small: stays float)")
def _fc_big(rng):
    l1, l2 = dense_w(rng, 40, 48, 1.5), dense_w(rng, 48, 6)

    def f(x):
        return fc(tf.nn.relu(fc(x, l1)), l2)
    return f


@model("fc_big_sym", "C", [([2, 36], 0.5, 2)], ["FULLY_CONNECTED"], variants=("hybrid",),
       per_tensor=True, postprocess=set_fc_option("asymmetricQuantizeInputs", False),
       note="hybrid FULLY_CONNECTED as older converters wrote it: per-tensor int8 weights and "
            "symmetric run-time input quantization (asymmetric_quantize_inputs cleared in the "
            "converted file): 2 batches x 36 -> Dense(40, relu6) (1440 weights: quantized) -> "
            "Dense(5)")
def _fc_big_sym(rng):
    l1, l2 = dense_w(rng, 36, 40, 1.5), dense_w(rng, 40, 5)

    def f(x):
        return fc(tf.nn.relu6(fc(x, l1)), l2)
    return f


# ----------------------------------------------------------------------------
# Group Z: the zoo -- small Keras architectures as users bring them (float32 and int8)
# ----------------------------------------------------------------------------
def keras_model(rng, build):
    """A seeded Keras model from `build(keras, layers)` (returns (inputs, outputs)), with
    non-trivial BatchNormalization statistics, wrapped for conversion (weights frozen)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(int(rng.integers(0, 2**31 - 1)))
    inputs, outputs = build(keras, layers)
    m = keras.Model(inputs, outputs)
    for layer in m.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.2, n).astype(np.float32))
            layer.moving_mean.assign(rng.normal(0, 0.2, n).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype(np.float32))
        # non-zero biases (a zero bias is dropped by the converter)
        b = getattr(layer, "bias", None)
        if b is not None and hasattr(b, "assign"):
            b.assign(rng.normal(0, 0.1, tuple(b.shape)).astype(np.float32))
        for cell_bias in ([layer.cell.bias] if hasattr(layer, "cell") and getattr(layer.cell, "bias", None) is not None else []):
            cell_bias.assign(rng.normal(0, 0.1, tuple(cell_bias.shape)).astype(np.float32))

    def f(*xs):
        return m(xs[0] if len(xs) == 1 else list(xs), training=False)
    f.trackable = m
    return f


def zoo(name, inputs, ops, note, **kw):
    """A zoo model: `fn(keras, layers)` returns (inputs, outputs) of a Keras model."""
    def deco(fn):
        SPECS.append(Spec(name, "Z", inputs, lambda rng: keras_model(rng, fn), ops, note=note, **kw))
        return fn
    return deco


@zoo("zoo_mbv2_block", [([1, 9, 8, 6], 0, 1)],
     ["CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED"],
     note="MobileNetV2-style: inverted residual block (1x1 expand x3 + BN + RELU6, 3x3 depthwise "
          "+ BN + RELU6, 1x1 project + BN, residual ADD), a strided block without residual, "
          "global average pool, Dense(4)")
def _zoo_mbv2(keras, layers):
    inp = keras.Input((9, 8, 6), batch_size=1)

    def block(x, cin, cout, stride):
        h = layers.Conv2D(cin * 3, 1, use_bias=False)(x)
        h = layers.ReLU(6.0)(layers.BatchNormalization()(h))
        h = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(h)
        h = layers.ReLU(6.0)(layers.BatchNormalization()(h))
        h = layers.Conv2D(cout, 1, use_bias=False)(h)
        h = layers.BatchNormalization()(h)
        return layers.Add()([x, h]) if stride == 1 and cin == cout else h

    x = block(inp, 6, 6, 1)
    x = block(x, 6, 10, 2)
    x = layers.GlobalAveragePooling2D()(x)
    return inp, layers.Dense(4)(x)


@zoo("zoo_conv1d", [([1, 40, 5], 0, 1)], ["CONV_2D", "FULLY_CONNECTED"],
     note="Conv1D stack (with static shapes the converter emits RESHAPE / CONV_2D / RESHAPE "
          "around each Conv1D): Conv1D(8, 5, same, relu) -> Conv1D(6, 3, stride 2, valid, relu) -> MaxPool1D(2) -> "
          "Flatten -> Dense(3)")
def _zoo_conv1d(keras, layers):
    inp = keras.Input((40, 5), batch_size=1)
    x = layers.Conv1D(8, 5, padding="same", activation="relu")(inp)
    x = layers.Conv1D(6, 3, strides=2, activation="relu")(x)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Flatten()(x)
    return inp, layers.Dense(3)(x)


@zoo("zoo_dscnn", [([1, 25, 10, 1], 0, 1)],
     ["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"],
     note="DS-CNN (keyword spotting style): Conv2D(12, 5x3, stride 2) + BN + ReLU, two "
          "depthwise-separable blocks (DW 3x3 + BN + ReLU, 1x1 conv + BN + ReLU), average pool "
          "4x5 (VALID, 13x5 -> 3x1), Flatten, Dense(5), softmax; BatchNorm folded by the "
          "converter")
def _zoo_dscnn(keras, layers):
    inp = keras.Input((25, 10, 1), batch_size=1)
    x = layers.Conv2D(12, (5, 3), strides=2, padding="same", use_bias=False)(inp)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for _ in range(2):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Conv2D(12, 1, use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
    x = layers.AveragePooling2D((4, 5))(x)
    x = layers.Flatten()(x)
    init = keras.initializers.RandomNormal(stddev=1.5)
    return inp, layers.Dense(5, activation="softmax", kernel_initializer=init)(x)


@zoo("zoo_inception", [([1, 10, 10, 5], 0, 1)],
     ["CONV_2D", "MAX_POOL_2D", "CONCATENATION", "MEAN", "FULLY_CONNECTED"],
     note="inception block: branches 1x1 conv(4), 1x1 conv(3) -> 3x3 conv(6), 3x3 max pool "
          "(stride 1, same) -> 1x1 conv(3), concatenated along channels (13), global average "
          "pool, Dense(3)")
def _zoo_inception(keras, layers):
    inp = keras.Input((10, 10, 5), batch_size=1)
    a = layers.Conv2D(4, 1, activation="relu")(inp)
    b = layers.Conv2D(3, 1, activation="relu")(inp)
    b = layers.Conv2D(6, 3, padding="same", activation="relu")(b)
    c = layers.MaxPooling2D(3, strides=1, padding="same")(inp)
    c = layers.Conv2D(3, 1, activation="relu")(c)
    x = layers.Concatenate()([a, b, c])
    x = layers.GlobalAveragePooling2D()(x)
    return inp, layers.Dense(3)(x)


@zoo("zoo_mlp", [([1, 6, 7, 2], 0, 1)], ["FULLY_CONNECTED", "SOFTMAX"],
     note="classifier: Flatten -> Dense(32, relu) -> Dropout(0.3) -> Dense(16, relu) -> "
          "Dropout(0.2) -> Dense(4, softmax) (dropout is the identity at inference)")
def _zoo_mlp(keras, layers):
    inp = keras.Input((6, 7, 2), batch_size=1)
    x = layers.Flatten()(inp)
    x = layers.Dropout(0.3)(layers.Dense(32, activation="relu")(x))
    x = layers.Dropout(0.2)(layers.Dense(16, activation="relu")(x))
    return inp, layers.Dense(4, activation="softmax")(x)


@zoo("zoo_autoencoder", [([1, 12, 12, 2], 0, 1)],
     ["CONV_2D", "RESIZE_NEAREST_NEIGHBOR", "TRANSPOSE_CONV"],
     note="convolutional autoencoder: Conv2D(6, 3, stride 2, relu) -> Conv2D(8, 3, stride 2, "
          "relu) -> Resizing(6, 6, nearest) (RESIZE_NEAREST_NEIGHBOR) -> Conv2DTranspose(5, 3, "
          "stride 2, same, relu) (TRANSPOSE_CONV) -> Conv2D(2, 3, same)")
def _zoo_autoencoder(keras, layers):
    inp = keras.Input((12, 12, 2), batch_size=1)
    x = layers.Conv2D(6, 3, strides=2, padding="same", activation="relu")(inp)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Resizing(6, 6, interpolation="nearest")(x)
    x = layers.Conv2DTranspose(5, 3, strides=2, padding="same", activation="relu")(x)
    return inp, layers.Conv2D(2, 3, padding="same")(x)


@zoo("zoo_upsampling", [([1, 3, 3, 2], 0, 1)], ["TILE", "TRANSPOSE_CONV"], variants=("f32",),
     note="Keras 3 UpSampling2D(2) (lowered to RESHAPE / TILE, which TFLM has no kernel for: "
          "float32 only, reference LiteRT BUILTIN_REF, whose int8 TILE is missing) -> "
          "Conv2DTranspose(3, (3, 2), stride 2, valid)")
def _zoo_upsampling(keras, layers):
    inp = keras.Input((3, 3, 2), batch_size=1)
    x = layers.UpSampling2D(2)(inp)
    return inp, layers.Conv2DTranspose(3, (3, 2), strides=2, padding="valid")(x)


@zoo("zoo_gmp", [([1, 9, 11, 3], 0, 1)], ["CONV_2D", "REDUCE_MAX", "FULLY_CONNECTED"],
     note="Conv2D(7, 3, relu) -> GlobalMaxPooling2D (REDUCE_MAX over axes 1, 2) -> Dense(3)")
def _zoo_gmp(keras, layers):
    inp = keras.Input((9, 11, 3), batch_size=1)
    x = layers.Conv2D(7, 3, activation="relu")(inp)
    x = layers.GlobalMaxPooling2D()(x)
    return inp, layers.Dense(3)(x)


@zoo("zoo_gru", [([1, 5, 3], 0, 1)],
     ["UNPACK", "FULLY_CONNECTED", "SPLIT", "ADD", "SUB", "MUL", "LOGISTIC", "TANH"],
     note="GRU(6) over 5 steps, unrolled (unroll=True: builtin UNPACK, FULLY_CONNECTED, SPLIT, "
          "STRIDED_SLICE, ADD, SUB, MUL, LOGISTIC, TANH), -> Dense(2)")
def _zoo_gru(keras, layers):
    inp = keras.Input((5, 3), batch_size=1)
    x = layers.GRU(6, unroll=True)(inp)
    return inp, layers.Dense(2)(x)


@zoo("zoo_lstm", [([1, 4, 3], 0, 1)],
     ["UNPACK", "FULLY_CONNECTED", "SPLIT", "ADD", "MUL", "LOGISTIC", "TANH"],
     note="LSTM(5) over 4 steps, unrolled (unroll=True: builtin UNPACK, FULLY_CONNECTED, SPLIT, "
          "ADD, MUL, LOGISTIC, TANH), -> Dense(2)")
def _zoo_lstm(keras, layers):
    inp = keras.Input((4, 3), batch_size=1)
    x = layers.LSTM(5, unroll=True)(inp)
    return inp, layers.Dense(2)(x)


@zoo("zoo_mbv3_block", [([1, 7, 6, 8], 0, 1.5)],
     ["CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH", "MEAN", "MUL", "ADD"],
     note="MobileNetV3-style block: 1x1 expand (16) + BN + hard-swish, 3x3 depthwise + BN + "
          "hard-swish, squeeze-excite (global average pool, Dense(4, relu), Dense(16) with "
          "hard-sigmoid, MUL), 1x1 project (8) + BN, residual ADD")
def _zoo_mbv3(keras, layers):
    inp = keras.Input((7, 6, 8), batch_size=1)

    def hswish(t):
        return layers.Activation("hard_swish")(t)

    h = hswish(layers.BatchNormalization()(layers.Conv2D(16, 1, use_bias=False)(inp)))
    h = hswish(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same", use_bias=False)(h)))
    se = layers.GlobalAveragePooling2D(keepdims=True)(h)
    se = layers.Dense(4, activation="relu")(se)
    se = layers.Dense(16)(se)
    se = layers.ReLU(6.0)(layers.Rescaling(1.0, offset=3.0)(se))
    se = layers.Rescaling(1.0 / 6.0)(se)
    h = layers.Multiply()([h, se])
    h = layers.BatchNormalization()(layers.Conv2D(8, 1, use_bias=False)(h))
    return inp, layers.Add()([inp, h])


@zoo("zoo_grouped_conv", [([1, 8, 7, 6], 0, 1)], ["CONV_2D"],
     note="grouped convolutions: Conv2D(6, 3, groups=2, relu) -> Conv2D(9, 1, groups=3) -> "
          "global average pool -> Dense(3)")
def _zoo_grouped_conv(keras, layers):
    inp = keras.Input((8, 7, 6), batch_size=1)
    x = layers.Conv2D(6, 3, groups=2, activation="relu")(inp)
    x = layers.Conv2D(9, 1, groups=3)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return inp, layers.Dense(3)(x)


@zoo("zoo_bilinear", [([1, 4, 5, 3], 0, 1)], ["RESIZE_BILINEAR", "CONV_2D"],
     note="UpSampling2D(2, bilinear) -> Conv2D(4, 3, same, relu) -> Resizing(5, 7, bilinear) "
          "(RESIZE_BILINEAR, half_pixel_centers)")
def _zoo_bilinear(keras, layers):
    inp = keras.Input((4, 5, 3), batch_size=1)
    x = layers.UpSampling2D(2, interpolation="bilinear")(inp)
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    return inp, layers.Resizing(5, 7, interpolation="bilinear")(x)


# ----------------------------------------------------------------------------
# Conversion
# ----------------------------------------------------------------------------
def concrete(spec):
    rng = np.random.default_rng(seed_of(spec.name))
    fn = spec.build(rng)
    nd = spec.dynamic_dims
    sig = [tf.TensorSpec([None] * nd + s[nd:], tf.float32, name=f"in{i}")
           for i, (s, _, _) in enumerate(spec.inputs)]
    tfn = tf.function(fn, input_signature=sig, autograph=False)
    cf = tfn.get_concrete_function()
    trackable = getattr(fn, "trackable", None)
    if trackable is None:
        trackable = tf.Module()
    else:
        # Keras 3 layers hold resource variables: converting the function as is leaves
        # VAR_HANDLE / READ_VARIABLE ops in the model. Freeze them into constants.
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2)
        cf = convert_variables_to_constants_v2(cf)
    return cf, trackable


def rep_samples(spec):
    rng = np.random.default_rng(seed_of(spec.name + "/rep"))
    return [[rng.normal(m, sd, s).astype(np.float32) for (s, m, sd) in spec.inputs]
            for _ in range(REP_SAMPLES)]


def convert(spec, variant):
    cf, trackable = concrete(spec)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([cf], trackable)
    if spec.per_tensor:
        conv._experimental_disable_per_channel = True
    if variant == "hybrid":
        # dynamic-range quantization: weights of large enough tensors become int8,
        # activations stay float32 (the kernels quantize them at run time)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "16x8":
        samples = rep_samples(spec)

        def rep16():
            for s in samples:
                yield s
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep16
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
        if spec.bias32:
            conv._experimental_full_integer_quantization_bias_type = tf.int32
        if spec.int8_io == "int8":
            conv.inference_input_type = tf.int16
            conv.inference_output_type = tf.int16
    elif variant == "int8":
        samples = rep_samples(spec)

        def rep():
            for s in samples:
                yield s
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if spec.int8_io == "int8":
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
    buf = conv.convert()
    if spec.postprocess is not None:
        buf = spec.postprocess(buf)
    return buf



def check(spec, variant, buf):
    ops = tflite_info.op_names(buf)
    want = set(spec.ops) | {"f32": spec.ops_f32, "int8": spec.ops_int8, "16x8": spec.ops_int8,
                            "hybrid": spec.ops_f32}[variant]
    missing = want - set(ops)
    problems = []
    if missing:
        problems.append(f"missing ops {sorted(missing)}")
    bad = {"READ_VARIABLE", "VAR_HANDLE", "ASSIGN_VARIABLE", "CALL_ONCE", "WHILE", "CUSTOM"}
    if bad & set(ops):
        problems.append(f"unwanted ops {sorted(bad & set(ops))}")
    d = tflite_info.describe(buf)
    if variant in ("int8", "16x8"):
        floats = [t["dtype"] for op in d["ops"] for t in op["inputs"] + op["outputs"]
                  if t and t["dtype"] == "float32"]
        io_float = spec.int8_io == "float"
        if floats and not io_float:
            problems.append(f"float32 tensors in the {variant} model")
    if variant == "16x8":
        acts = {t["dtype"] for op in d["ops"] for t in op["outputs"] if t}
        if "int16" not in acts:
            problems.append("no int16 activations in the 16x8 model")
    if variant == "hybrid":
        hyb = [op for op in d["ops"] if op["inputs"] and op["inputs"][0]
               and op["inputs"][0]["dtype"] == "float32"
               and any(t and t["dtype"] == "int8" for t in op["inputs"][1:])]
        if not hyb:
            problems.append("no hybrid operator (float32 input, int8 weights) in the hybrid model")
    if len(buf) > MAX_BYTES:
        problems.append(f"{len(buf)} bytes > {MAX_BYTES}")
    return ops, d, problems


def build(spec):
    entries = {}
    for variant in VARIANTS:
        stale = os.path.join(OUT_DIR, f"{spec.name}_{variant}.tflite")
        if variant not in spec.variants and os.path.exists(stale):
            os.remove(stale)
    for variant in spec.variants:
        fname = f"{spec.name}_{variant}.tflite"
        path = os.path.join(OUT_DIR, fname)
        try:
            buf = convert(spec, variant)
        except Exception as e:  # converter refused
            msg = str(e).strip().splitlines()
            msg = msg[-1] if msg else repr(e)
            if variant in spec.refuse_ok:
                print(f"  {fname}: converter refused ({msg}); skipped")
                entries[variant] = {"refused": msg[:300]}
                continue
            raise RuntimeError(f"{fname}: converter failed: {e}") from e
        ops, d, problems = check(spec, variant, buf)
        if problems:
            raise RuntimeError(f"{fname}: {'; '.join(problems)}\n{tflite_info.summary(buf)}")
        with open(path, "wb") as f:
            f.write(buf)
        counts = {}
        for o in ops:
            counts[o] = counts.get(o, 0) + 1
        print(f"  {fname}: {len(buf)} bytes, ops {counts}")
        # The converter may order the model inputs differently from the tf.function
        # arguments: attach each model input's calibration distribution by name (in<i>).
        for k, t in enumerate(d["inputs"]):
            mt = re.search(r"in(\d+)(:\d+)?$", t["name"])
            i = int(mt.group(1)) if mt and len(spec.inputs) > 1 else k
            shape, mean, std = spec.inputs[i]
            if [int(x) for x in t["shape"]] != shape:
                raise RuntimeError(f"{fname}: input {k} ({t['name']}) shape {t['shape']} != spec {shape}")
            t["rep"] = {"arg": i, "mean": mean, "std": std}
        entries[variant] = {
            "file": f"tests/models/{fname}",
            "bytes": len(buf),
            "ops": ops,
            "inputs": d["inputs"],
            "outputs": d["outputs"],
        }
    return entries


def write_readme(manifest):
    lines = [
        "# microgen test models",
        "",
        "Generated by `tools/reference/make_models.py` (deterministic, seeded); do not edit by hand.",
        "`models.json` is the machine-readable manifest (ops, I/O quantization, calibration distribution).",
        "`<name>_f32.tflite` is float32; `<name>_int8.tflite` is full-integer int8 with int8 I/O",
        "unless noted (quant_dequant keeps float32 I/O); `<name>_16x8.tflite` has int16 activations",
        "and int8 weights with int16 I/O; `<name>_hybrid.tflite` is dynamic-range quantized (int8",
        "weights, float32 activations and I/O). Groups: A, B operators; C 16x8 and hybrid; Z the zoo",
        "of small Keras architectures.",
        "",
        "| model | group | f32 ops | int8 ops | other variants | note |",
        "|---|---|---|---|---|---|",
    ]

    def fmt(v):
        if v is None:
            return "-"
        if "refused" in v:
            return "refused by converter"
        counts = {}
        for o in v["ops"]:
            counts[o] = counts.get(o, 0) + 1
        return ", ".join(f"{k}" + (f" x{n}" if n > 1 else "") for k, n in counts.items())

    for name, m in manifest.items():
        other = "; ".join(f"{k}: {fmt(v)}" for k, v in m["variants"].items()
                          if k not in ("f32", "int8")) or "-"
        lines.append(f"| {name} | {m['group']} | {fmt(m['variants'].get('f32'))} | "
                     f"{fmt(m['variants'].get('int8'))} | {other} | {m['note']} |")
    with open(os.path.join(OUT_DIR, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--group", choices=list(GROUPS))
    args = ap.parse_args()
    os.makedirs(OUT_DIR, exist_ok=True)
    mpath = os.path.join(OUT_DIR, "models.json")
    manifest = {}
    if os.path.exists(mpath):
        with open(mpath) as f:
            manifest = json.load(f)
    specs = [s for s in SPECS
             if (not args.names or s.name in args.names) and (not args.group or s.group == args.group)]
    if args.names:
        unknown = set(args.names) - {s.name for s in SPECS}
        if unknown:
            sys.exit(f"unknown models: {sorted(unknown)}")
    for spec in specs:
        print(spec.name)
        manifest[spec.name] = {
            "group": spec.group,
            "note": spec.note,
            "rep_inputs": [{"shape": s, "mean": m, "std": sd} for (s, m, sd) in spec.inputs],
            "variants": build(spec),
        }
    order = [s.name for s in SPECS]
    manifest = {k: manifest[k] for k in sorted(manifest, key=lambda k: order.index(k)
                                                 if k in order else len(order))}
    with open(mpath, "w") as f:
        f.write(tflite_info.json_dumps(manifest, indent=1) + "\n")
    write_readme(manifest)


if __name__ == "__main__":
    main()
