"""Models "from the field" (issue: field models): several outputs, float16 weights, sparse
weights (DENSIFY). Writes tests/models/field_*.tflite and conformance cases. References:
TFLM where it runs the model, else TFLite's reference kernels (BUILTIN_REF op resolver of
ai_edge_litert), which agree with TFLM on models both run.
Run: .venv-ref/bin/python tools/reference/make_field_models.py
"""
import json, pathlib, zlib
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter as LiteRT, OpResolverType
from tflite_micro.python.tflite_micro import runtime

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests/models"
CASES = ROOT / "tests/conformance/cases"
DATA = ROOT / "tests/conformance/data"


def seed_of(name):
    return zlib.crc32(name.encode())


def convert(fn, sig, kind, rep=None):
    conc = fn.get_concrete_function(*sig)
    c = tf.lite.TFLiteConverter.from_concrete_functions([conc])
    if kind == "f16":
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.target_spec.supported_types = [tf.float16]
    elif kind == "sparse":
        c.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    elif kind == "int8":
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = rep
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = tf.int8
        c.inference_output_type = tf.int8
    return c.convert()


def ops_of(data):
    from tensorflow.lite.python import schema_py_generated as s
    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(data, 0))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
    names = {v: k for k, v in s.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    return sorted({names.get(codes[o.opcodeIndex], str(codes[o.opcodeIndex])) for o in m.subgraphs[0].operators})


def reference(path, samples, prefer_tflm=True):
    """Outputs for each sample (list of inputs); returns (outputs, reference name)."""
    if prefer_tflm:
        try:
            it = runtime.Interpreter.from_file(str(path))
            outs = []
            for s in samples:
                for k, x in enumerate(s):
                    it.set_input(x, k)
                it.invoke()
                n = len(LiteRT(model_path=str(path)).get_output_details())
                outs.append([np.array(it.get_output(k)).copy() for k in range(n)])
            return outs, "tflm"
        except Exception as e:  # TFLM refuses the model
            print(f"  TFLM refuses {path.name}: {str(e).splitlines()[0][:120]}")
    it = LiteRT(model_path=str(path), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    ins, outs_d = it.get_input_details(), it.get_output_details()
    outs = []
    for s in samples:
        for d, x in zip(ins, s):
            it.set_tensor(d["index"], x)
        it.invoke()
        outs.append([it.get_tensor(d["index"]).copy() for d in outs_d])
    return outs, "litert-builtin-ref"


def case(name, path, samples, outs, ref, compare, note):
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / f"{name}.in.bin").write_bytes(b"".join(x.tobytes() for s in samples for x in s))
    (DATA / f"{name}.out.bin").write_bytes(b"".join(o.tobytes() for s in outs for o in s))
    it = LiteRT(model_path=str(path))
    c = {
        "model": str(path.relative_to(ROOT)),
        "inputs": f"tests/conformance/data/{name}.in.bin",
        "expected": f"tests/conformance/data/{name}.out.bin",
        "samples": len(samples),
        "reference": ref,
        "compare": compare,
        "input_dtypes": [str(d["dtype"].__name__) for d in it.get_input_details()],
        "output_dtypes": [str(d["dtype"].__name__) for d in it.get_output_details()],
        "note": note,
    }
    (CASES / f"{name}.json").write_text(json.dumps(c, indent=2) + "\n")
    print(f"{name}: {len(samples)} samples, reference {ref}, ops {ops_of(path.read_bytes())}")


def two_outputs():
    rng = np.random.default_rng(11)
    k1 = tf.constant(rng.normal(0, 0.3, (3, 3, 3, 6)).astype(np.float32))
    k2 = tf.constant(rng.normal(0, 0.3, (3, 3, 6, 8)).astype(np.float32))
    wc = tf.constant(rng.normal(0, 0.3, (8, 5)).astype(np.float32))
    wb = tf.constant(rng.normal(0, 0.3, (8, 4)).astype(np.float32))

    @tf.function
    def f(x):
        h = tf.nn.relu6(tf.nn.conv2d(x, k1, 2, "SAME"))
        h = tf.nn.relu(tf.nn.conv2d(h, k2, 1, "SAME"))
        g = tf.reduce_mean(h, axis=[1, 2])
        return tf.nn.softmax(g @ wc), tf.sigmoid(g @ wb)

    sig = [tf.TensorSpec([1, 16, 16, 3], tf.float32)]
    rng2 = np.random.default_rng(seed_of("two_outputs"))
    def rep():
        for _ in range(100):
            yield [rng2.normal(0, 1, (1, 16, 16, 3)).astype(np.float32)]
    for kind in ["f32", "int8"]:
        data = convert(f, sig, kind, rep)
        p = MODELS / f"field_two_outputs_{kind}.tflite"
        p.write_bytes(data)
        it = LiteRT(model_path=str(p))
        d = it.get_input_details()[0]
        r = np.random.default_rng(seed_of(p.name))
        if kind == "int8":
            sc, zp = d["quantization"]
            samples = [[np.clip(np.round(r.normal(0, 1, (1, 16, 16, 3)) / sc + zp), -128, 127).astype(np.int8)] for _ in range(50)]
            cmp = "exact"
        else:
            samples = [[r.normal(0, 1, (1, 16, 16, 3)).astype(np.float32)] for _ in range(50)]
            cmp = {"rel": 1e-5, "abs": 1e-6}
        outs, ref = reference(p, samples)
        case(f"field_two_outputs_{kind}", p, samples, outs, ref, cmp, "vision model with two outputs (softmax classes, sigmoid attributes)")


def float16_weights():
    rng = np.random.default_rng(12)
    k1 = tf.constant(rng.normal(0, 0.3, (3, 3, 2, 7)).astype(np.float32))
    w = tf.constant(rng.normal(0, 0.2, (7 * 25, 6)).astype(np.float32))

    @tf.function
    def f(x):
        h = tf.nn.relu(tf.nn.conv2d(x, k1, 2, "SAME"))
        return tf.nn.softmax(tf.reshape(h, [1, 7 * 25]) @ w)

    data = convert(f, [tf.TensorSpec([1, 10, 10, 2], tf.float32)], "f16")
    p = MODELS / "field_float16_weights.tflite"
    p.write_bytes(data)
    r = np.random.default_rng(seed_of(p.name))
    samples = [[r.normal(0, 1, (1, 10, 10, 2)).astype(np.float32)] for _ in range(50)]
    outs, ref = reference(p, samples)
    case("field_float16_weights", p, samples, outs, ref, {"rel": 1e-5, "abs": 1e-6}, "float16 weights feeding DEQUANTIZE (converter float16 option)")


def sparse_weights():
    rng = np.random.default_rng(13)
    w1 = rng.normal(0, 0.3, (40, 32)).astype(np.float32)
    w1[np.abs(w1) < 0.35] = 0.0  # ~75% zeros
    w2 = rng.normal(0, 0.3, (32, 5)).astype(np.float32)
    w1, w2 = tf.constant(w1), tf.constant(w2)

    @tf.function
    def f(x):
        return tf.nn.softmax(tf.nn.relu(x @ w1) @ w2)

    data = convert(f, [tf.TensorSpec([1, 40], tf.float32)], "sparse")
    p = MODELS / "field_sparse_weights.tflite"
    p.write_bytes(data)
    r = np.random.default_rng(seed_of(p.name))
    samples = [[r.normal(0, 1, (1, 40)).astype(np.float32)] for _ in range(50)]
    outs, ref = reference(p, samples)
    case("field_sparse_weights", p, samples, outs, ref, {"rel": 1e-5, "abs": 1e-6}, "sparse (pruned) float weights stored sparse and fed to DENSIFY")


if __name__ == "__main__":
    two_outputs()
    float16_weights()
    sparse_weights()
