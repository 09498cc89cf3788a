#!/usr/bin/env python3
"""One fixed pseudo-random input sample for a model, the same for every system and target.

Usage: gen_input.py INSPECT.json OUT.bin
INSPECT.json is `microgen inspect --json MODEL`. The sample is written in the `microgen run`
format (the model's inputs in order, little-endian, concatenated).

Pattern: xorshift32 from seed 2463534242, restarted for every model; one draw per element:
int8/uint8/int16/... take the low bytes of the draw; float32 maps the top 24 bits to [-1, 1).
Standard library only (system Python; no TensorFlow).
"""
import json
import struct
import sys

SIZES = {"int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8, "bool": 1}


def main():
    info = json.load(open(sys.argv[1]))
    x = 2463534242
    out = bytearray()
    for t in info["inputs"]:
        n = 1
        for d in t["shape"]:
            n *= d
        dt = t["dtype"]
        for _ in range(n):
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFFFFFF
            if dt == "float32":
                out += struct.pack("<f", (x >> 8) / 8388608.0 - 1.0)
            elif dt in SIZES:
                sz = SIZES[dt]
                v = x if sz <= 4 else (x | (x << 32))
                out += (v & ((1 << (8 * sz)) - 1)).to_bytes(sz, "little")
                if dt == "bool":
                    out[-1] &= 1
            else:
                sys.exit(f"gen_input: input dtype {dt} not supported")
    open(sys.argv[2], "wb").write(out)


if __name__ == "__main__":
    main()
