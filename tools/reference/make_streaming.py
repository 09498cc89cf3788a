"""Streaming (stateful) models and their TFLM references.

* Copies the four keyword models of the `pymicro-wakeword` 2.5.0 package (Apache-2.0) to
  tests/models/third_party/pymicro_wakeword/.
* Builds the project's own streaming model: a tf.Module whose ring buffer lives in a
  resource variable (VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE / CALL_ONCE after
  conversion), int8 and float32.
* Writes conformance cases whose samples are consecutive frames of ONE stream: the
  reference is one TFLM interpreter invoked once per frame (state carried over), exactly
  as `microgen run` feeds them.

Features for the wake-word models come from the package's own micro frontend
(`pymicro_features`) applied to seeded synthetic audio (noise, tones, chirps, silence), then
quantized as pymicro_wakeword does; stride = the model's input frames.
Run: .venv-ref/bin/python tools/reference/make_streaming.py
"""
import json, os, pathlib, shutil, zlib
import numpy as np
import tensorflow as tf
from tflite_micro.python.tflite_micro import runtime

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests/models"
TP = MODELS / "third_party/pymicro_wakeword"
CASES = ROOT / "tests/conformance/cases"
DATA = ROOT / "tests/conformance/data"


def seed_of(name):
    return zlib.crc32(name.encode())


def tflm_stream(model_path, frames):
    """One interpreter, one invoke per frame, state carried over."""
    it = runtime.Interpreter.from_file(str(model_path))
    outs = []
    for f in frames:
        it.set_input(f, 0)  # set before every invoke: TFLM's interpreter overwrites its input
        it.invoke()
        outs.append(np.array(it.get_output(0)).copy())
    return outs


def write_case(name, model_rel, frames, outs, compare, note, in_dtype, out_dtype):
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / f"{name}.in.bin").write_bytes(b"".join(np.ascontiguousarray(f).tobytes() for f in frames))
    (DATA / f"{name}.out.bin").write_bytes(b"".join(np.ascontiguousarray(o).tobytes() for o in outs))
    case = {
        "model": model_rel,
        "inputs": f"tests/conformance/data/{name}.in.bin",
        "expected": f"tests/conformance/data/{name}.out.bin",
        "samples": len(frames),
        "reference": "tflm",
        "compare": compare,
        "input_dtypes": [in_dtype],
        "output_dtypes": [out_dtype],
        "stateful": True,
        "note": note,
    }
    (CASES / f"{name}.json").write_text(json.dumps(case, indent=2) + "\n")
    distinct = len({o.tobytes() for o in outs})
    print(f"{name}: {len(frames)} frames, {distinct} distinct outputs")


def synthetic_audio(seed, seconds=12, rate=16000):
    rng = np.random.default_rng(seed)
    t = np.arange(seconds * rate) / rate
    audio = np.zeros_like(t)
    seg = rate // 2
    for s in range(0, len(t), seg):
        kind = rng.integers(0, 4)
        sl = slice(s, s + seg)
        tt = t[sl]
        if kind == 0:
            audio[sl] = rng.normal(0, 0.05, len(tt))
        elif kind == 1:
            f0 = rng.uniform(150, 400)
            audio[sl] = 0.3 * np.sin(2 * np.pi * f0 * tt) * (1 + 0.5 * np.sin(2 * np.pi * 3 * tt))
            audio[sl] += 0.15 * np.sin(2 * np.pi * 2.7 * f0 * tt)
        elif kind == 2:
            f = np.linspace(rng.uniform(200, 800), rng.uniform(800, 3000), len(tt))
            audio[sl] = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / rate)
        else:
            audio[sl] = 0.0
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


def wakeword_cases():
    import pymicro_wakeword
    from pymicro_features import MicroFrontend
    src = pathlib.Path(pymicro_wakeword.__file__).parent / "models"
    TP.mkdir(parents=True, exist_ok=True)
    lic = pathlib.Path(pymicro_wakeword.__file__).parent.parent / "pymicro_wakeword-2.5.0.dist-info/licenses"
    for f in lic.glob("*"):
        shutil.copy(f, TP / f"LICENSE-pymicro-wakeword")
    (TP / "README.md").write_text(
        "Keyword models of the `pymicro-wakeword` 2.5.0 PyPI package (models/*.tflite, unmodified;\n"
        "Apache-2.0, see LICENSE-pymicro-wakeword): ESPHome's streaming microWakeWord models.\n"
    )
    for name in ["okay_nabu", "hey_jarvis", "alexa", "hey_mycroft"]:
        shutil.copy(src / f"{name}.tflite", TP / f"{name}.tflite")
        shutil.copy(src / f"{name}.json", TP / f"{name}.json")
        it = tf.lite.Interpreter(model_path=str(TP / f"{name}.tflite"))
        d = it.get_input_details()[0]
        scale, zp = d["quantization"]
        frames_per_call = int(d["shape"][1])
        audio = synthetic_audio(seed_of(name))
        fe = MicroFrontend()
        feats = []
        b = audio.tobytes()
        i = 0
        while i + 320 * 2 <= len(b):
            r = fe.process_samples(b[i:i + 320 * 2])
            i += r.samples_read * 2
            if r.features:
                feats.append(np.array(r.features, dtype=np.float32))
        feats = np.stack(feats)
        n = (len(feats) // frames_per_call) * frames_per_call
        frames = []
        for k in range(0, n, frames_per_call):
            q = np.round(feats[k:k + frames_per_call] / scale + zp)
            frames.append(np.clip(q, -128, 127).astype(np.int8).reshape(d["shape"]))
        frames = frames[:400]
        # A second stream: a random walk over the whole int8 range, which drives the
        # model (and its state) far harder than the synthetic audio does.
        rng = np.random.default_rng(seed_of(name + "walk"))
        walk = np.clip(np.cumsum(rng.normal(0, 12, (300,) + tuple(d["shape"][1:])), axis=0) % 256 - 128, -128, 127)
        wframes = [w.astype(np.int8).reshape(d["shape"]) for w in walk]
        wouts = tflm_stream(TP / f"{name}.tflite", wframes)
        write_case(f"stream_{name}_walk", f"tests/models/third_party/pymicro_wakeword/{name}.tflite", wframes, wouts, "exact",
                   f"pymicro-wakeword 2.5.0 {name}: 300 consecutive frames of a random walk over the int8 range through one TFLM interpreter",
                   "int8", "uint8")
        outs = tflm_stream(TP / f"{name}.tflite", frames)
        write_case(f"stream_{name}", f"tests/models/third_party/pymicro_wakeword/{name}.tflite", frames, outs, "exact",
                   f"pymicro-wakeword 2.5.0 {name}: {len(frames)} consecutive feature frames of synthetic audio through one TFLM interpreter",
                   "int8", "uint8")


def ring_buffer_model():
    """Our own streaming model: a 6-frame ring buffer of 10 features in a variable."""
    rng = np.random.default_rng(7)
    w1 = tf.constant(rng.normal(0, 0.3, (60, 12)).astype(np.float32))
    b1 = tf.constant(rng.normal(0, 0.1, (12,)).astype(np.float32))
    w2 = tf.constant(rng.normal(0, 0.4, (12, 4)).astype(np.float32))

    class Stream(tf.Module):
        def __init__(self):
            super().__init__()
            self.ring = tf.Variable(tf.zeros([1, 6, 10]), trainable=False)

        @tf.function(input_signature=[tf.TensorSpec([1, 1, 10], tf.float32)])
        def __call__(self, x):
            new = tf.concat([self.ring[:, 1:, :], x], axis=1)
            self.ring.assign(new)
            h = tf.nn.relu(tf.matmul(tf.reshape(new, [1, 60]), w1) + b1)
            return tf.nn.softmax(tf.matmul(h, w2))

    out = {}
    for variant in ["f32", "int8"]:
        m = Stream()
        conv = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m)
        conv.experimental_enable_resource_variables = True
        if variant == "int8":
            def rep():
                r = np.random.default_rng(1)
                for _ in range(100):
                    yield [r.normal(0, 1, (1, 1, 10)).astype(np.float32)]
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = rep
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        data = conv.convert()
        p = MODELS / f"stream_ring_{variant}.tflite"
        p.write_bytes(data)
        out[variant] = p
    return out


def ring_cases(paths):
    for variant, p in paths.items():
        it = tf.lite.Interpreter(model_path=str(p))
        d = it.get_input_details()[0]
        rng = np.random.default_rng(seed_of(p.name))
        walk = np.cumsum(rng.normal(0, 0.4, (300, 10)), axis=0) * 0.3
        if variant == "int8":
            scale, zp = d["quantization"]
            frames = [np.clip(np.round(w / scale + zp), -128, 127).astype(np.int8).reshape(1, 1, 10) for w in walk]
            compare, dt = "exact", "int8"
        else:
            frames = [w.astype(np.float32).reshape(1, 1, 10) for w in walk]
            compare, dt = {"rel": 1e-5, "abs": 1e-6}, "float32"
        outs = tflm_stream(p, frames)
        write_case(f"stream_ring_{variant}", f"tests/models/{p.name}", frames, outs, compare,
                   "own streaming model: ring buffer of 6 frames in a resource variable (CALL_ONCE init), 300 frames of one stream", dt, dt)


if __name__ == "__main__":
    ring_cases(ring_buffer_model())
    wakeword_cases()
