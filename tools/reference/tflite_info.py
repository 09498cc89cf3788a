#!/usr/bin/env python3
"""Small .tflite inspector used by the reference tooling (no interpreter needed).

    .venv-ref/bin/python tools/reference/tflite_info.py tests/models/fc_relu_int8.tflite [...]

Prints operators (with a few interesting options), inputs and outputs with dtype,
shape and quantization.
"""
import json
import sys

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

OP_NAMES = {v: k for k, v in schema.BuiltinOperator.__dict__.items() if not k.startswith("_")}
TYPE_NAMES = {v: k.lower() for k, v in schema.TensorType.__dict__.items() if not k.startswith("_")}
TYPE_NAMES[schema.TensorType.FLOAT32] = "float32"
ACT_NAMES = {v: k for k, v in schema.ActivationFunctionType.__dict__.items() if not k.startswith("_")}
PAD_NAMES = {v: k for k, v in schema.Padding.__dict__.items() if not k.startswith("_")}


def load(buf):
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(buf), 0))


def op_name(model, op):
    oc = model.operatorCodes[op.opcodeIndex]
    code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
    name = OP_NAMES.get(code, str(code))
    if name == "CUSTOM":
        name = "CUSTOM:" + (oc.customCode.decode() if isinstance(oc.customCode, bytes) else str(oc.customCode))
    return name


def op_names(buf):
    """List of operator names of subgraph 0, in execution order."""
    m = load(buf)
    return [op_name(m, op) for op in m.subgraphs[0].operators]


def _tensor_info(m, idx):
    t = m.subgraphs[0].tensors[idx]
    q = t.quantization
    scales = list(np.asarray(q.scale).tolist()) if q is not None and q.scale is not None else []
    zps = list(np.asarray(q.zeroPoint).tolist()) if q is not None and q.zeroPoint is not None else []
    return {
        "name": t.name.decode() if isinstance(t.name, bytes) else t.name,
        "dtype": TYPE_NAMES.get(t.type, str(t.type)),
        "shape": [int(d) for d in (t.shape if t.shape is not None else [])],
        "scale": scales,
        "zero_point": zps,
    }


def _options(m, op, name):
    o = op.builtinOptions
    if o is None:
        return ""
    parts = []
    for attr in ("fusedActivationFunction", "padding", "strideH", "strideW", "dilationHFactor",
                 "dilationWFactor", "depthMultiplier", "filterHeight", "filterWidth", "beta",
                 "alpha", "axis", "keepDims", "beginMask", "endMask", "shrinkAxisMask",
                 "ellipsisMask", "newAxisMask", "offset", "numSplits", "valuesCount", "num",
                 "alignCorners", "halfPixelCenters", "outputType", "keepNumDims", "squeezeDims"):
        if hasattr(o, attr):
            v = getattr(o, attr)
            if attr == "fusedActivationFunction":
                if v:
                    parts.append("act=" + ACT_NAMES.get(v, str(v)))
                continue
            if attr == "padding":
                v = PAD_NAMES.get(v, v)
            if isinstance(v, np.ndarray):
                v = v.tolist()
            if isinstance(v, float):
                v = round(v, 6)
            parts.append(f"{attr}={v}")
    return " ".join(parts)


def describe(buf):
    m = load(buf)
    sg = m.subgraphs[0]
    ops = []
    for op in sg.operators:
        name = op_name(m, op)
        ins = [int(i) for i in (op.inputs if op.inputs is not None else [])]
        outs = [int(i) for i in (op.outputs if op.outputs is not None else [])]
        ops.append({
            "op": name,
            "options": _options(m, op, name),
            "inputs": [_tensor_info(m, i) if i >= 0 else None for i in ins],
            "outputs": [_tensor_info(m, i) for i in outs],
        })
    return {
        "subgraphs": len(m.subgraphs),
        "ops": ops,
        "inputs": [_tensor_info(m, int(i)) for i in sg.inputs],
        "outputs": [_tensor_info(m, int(i)) for i in sg.outputs],
    }


def json_dumps(obj, indent=2, width=100, _level=0):
    """json.dumps with containers that fit in `width` characters kept on one line."""
    flat = json.dumps(obj)
    pad = " " * (indent * _level)
    if len(flat) + len(pad) <= width or not isinstance(obj, (list, dict)) or not obj:
        return flat
    inner = " " * (indent * (_level + 1))
    if isinstance(obj, list):
        items = [inner + json_dumps(v, indent, width, _level + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    items = [inner + json.dumps(k) + ": " + json_dumps(v, indent, width, _level + 1).lstrip()
             for k, v in obj.items()]
    return "{\n" + ",\n".join(items) + "\n" + pad + "}"


def _fmt_t(t):
    q = ""
    if t["scale"]:
        if len(t["scale"]) == 1:
            q = f" q=({t['scale'][0]:.6g},{t['zero_point'][0]})"
        else:
            q = f" q=per-channel[{len(t['scale'])}]"
    return f"{t['dtype']}{t['shape']}{q}"


def summary(buf):
    d = describe(buf)
    lines = []
    for i, t in enumerate(d["inputs"]):
        lines.append(f"  input[{i}]  {_fmt_t(t)}")
    for i, t in enumerate(d["outputs"]):
        lines.append(f"  output[{i}] {_fmt_t(t)}")
    for op in d["ops"]:
        ins = ", ".join(_fmt_t(t) if t else "-" for t in op["inputs"])
        outs = ", ".join(_fmt_t(t) for t in op["outputs"])
        lines.append(f"  {op['op']:<24} {op['options']}\n      in: {ins}\n      out: {outs}")
    return "\n".join(lines)


if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            buf = f.read()
        print(path, f"({len(buf)} bytes)")
        print(summary(buf))
