"""Writes tests/malformed/: small variations of a valid model, each broken in one way,
and tests/malformed/expected.json with the error each must produce (a substring of the
message). Run with the reference venv: .venv-ref/bin/python tools/reference/make_malformed.py
"""
import copy, json, pathlib
import flatbuffers
from tensorflow.lite.python import schema_py_generated as schema

ROOT = pathlib.Path(__file__).resolve().parents[2]
SRC = ROOT / "tests/models/fc_relu_int8.tflite"
OUT = ROOT / "tests/malformed"
OUT.mkdir(parents=True, exist_ok=True)
base_bytes = SRC.read_bytes()
base = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(base_bytes, 0))

def pack(m):
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())

cases = {}
def case(name, data, expect, kind):
    (OUT / f"{name}.tflite").write_bytes(data)
    cases[name] = {"kind": kind, "error": expect}

case("empty", b"", "a TFLite model is a FlatBuffer of at least 8 bytes", "Malformed")
case("truncated", base_bytes[: len(base_bytes) // 3], "not a valid TFLite FlatBuffer", "Malformed")
case("truncated_header", base_bytes[:6], "a TFLite model is a FlatBuffer of at least 8 bytes", "Malformed")
bad = bytearray(base_bytes); bad[4:8] = b"ONNX"
case("wrong_identifier", bytes(bad), 'file identifier is "ONNX", expected "TFL3"', "Malformed")

m = copy.deepcopy(base); m.subgraphs[0].operators[0].inputs[0] = 999
case("tensor_index_out_of_range", pack(m), "operator 0 (FULLY_CONNECTED): input tensor index 999 out of range", "Malformed")

m = copy.deepcopy(base); m.subgraphs[0].operators[1].opcodeIndex = 77
case("opcode_index_out_of_range", pack(m), "operator 1 (?): operator code index 77 out of range", "Malformed")

m = copy.deepcopy(base); m.subgraphs[0].tensors[0].shape = [1, 1 << 20, 1 << 20, 1 << 20]
case("absurd_shape", pack(m), "has more than 268435456 elements", "Limit")

m = copy.deepcopy(base); m.subgraphs[0].tensors[0].shape = [1, -5]
m.subgraphs[0].tensors[0].shapeSignature = None
case("negative_dimension", pack(m), "dimension 1 is dynamic", "Unsupported")

m = copy.deepcopy(base)
wt = m.subgraphs[0].operators[0].inputs[1]
m.subgraphs[0].tensors[wt].buffer = 4000
case("buffer_index_out_of_range", pack(m), "buffer index 4000 out of range", "Malformed")

m = copy.deepcopy(base)
wt = m.subgraphs[0].operators[0].inputs[1]
m.subgraphs[0].tensors[wt].shape = [13, 11]
case("weights_size_mismatch", pack(m), "constant data has 130 bytes; shape [13, 11] of int8 needs 143", "Invalid")

m = copy.deepcopy(base)
m.subgraphs[0].tensors[0].quantization.scale = [-1.0]
case("negative_scale", pack(m), "quantization scale -1 is not a positive finite number", "Invalid")

m = copy.deepcopy(base)
oc = schema.OperatorCodeT(); oc.builtinCode = 32; oc.deprecatedBuiltinCode = 32; oc.customCode = b"MyFancyOp"; oc.version = 1
m.operatorCodes.append(oc)
m.subgraphs[0].operators[1].opcodeIndex = len(m.operatorCodes) - 1
case("custom_op", pack(m), "operator 1 (CUSTOM:MyFancyOp): operator CUSTOM:MyFancyOp is not supported", "Unsupported")

m = copy.deepcopy(base)
oc = schema.OperatorCodeT(); oc.builtinCode = 131; oc.deprecatedBuiltinCode = 127; oc.version = 1
m.operatorCodes.append(oc)
m.subgraphs[0].operators[1].opcodeIndex = len(m.operatorCodes) - 1
case("unsupported_builtin", pack(m), "operator 1 (RFFT2D): operator RFFT2D is not supported", "Unsupported")

m = copy.deepcopy(base); m.subgraphs = []
case("no_subgraph", pack(m), "model has no subgraphs", "Malformed")

m = copy.deepcopy(base)
ops = m.subgraphs[0].operators
ops[0].inputs[0], ops[1].outputs[0] = ops[1].outputs[0], ops[0].inputs[0]
case("cycle", pack(m), "operator reads a tensor that no earlier operator writes", "Invalid")

m = copy.deepcopy(base)
m.subgraphs[0].tensors[0].quantization.zeroPoint = [300]
case("zero_point_out_of_range", pack(m), "zero point 300 is outside the int8 range [-128, 127]", "Invalid")

m = copy.deepcopy(base)
m.subgraphs[0].tensors[0].quantization = None
case("missing_quantization", pack(m), "int8 activation tensor has no quantization parameters", "Invalid")

m = copy.deepcopy(base)
m.subgraphs[0].tensors[0].shape = [1, 2, 3, 4, 5, 6, 7, 8, 9]
case("rank_over_limit", pack(m), "rank 9 exceeds the limit of 8", "Limit")

m = copy.deepcopy(base)
m.subgraphs[0].operators[0].inputs = [m.subgraphs[0].operators[0].inputs[0]]
case("missing_operand", pack(m), "expects 2..=3 inputs, has 1", "Invalid")

(OUT / "expected.json").write_text(json.dumps(cases, indent=2, sort_keys=True) + "\n")
print(f"wrote {len(cases)} malformed models to {OUT}")
