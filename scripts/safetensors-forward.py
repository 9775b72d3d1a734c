#!/usr/bin/python3
"""The forward pass of a DCNR model from its exported safetensors file, with numpy only.

    safetensors-forward.py MODEL.safetensors INPUTS.f32 ROWS OUT.f32

Parses the file itself (no safetensors package: 8-byte little-endian header size, the
JSON header, the raw little-endian float32 buffer), rebuilds the model from the spec in
`__metadata__` and runs ROWS rows of INPUTS (raw float32, row-major [ROWS, features])
through it, in float64, writing the outputs (softmax probabilities for a classifier) to
OUT as raw float32. It is also the reference for reading `dcnr export` files elsewhere:
a dense layer's W is [in, out] (y = x @ W + b), tensors are named `<vnode>.<param>`
where <vnode> is the VNode's `name` in the spec, else its index.

Covers chain models of layer.dense, activation.relu / tanh / sigmoid and a
loss.softmaxCrossEntropy or loss.mse at the end (the mnist MLPs); anything else is
refused with a message, exit 2.
"""
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    buffer = data[8 + n :]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            sys.exit(f"{name}: dtype {info['dtype']}, this reader takes F32")
        begin, end = info["data_offsets"]
        tensors[name] = np.frombuffer(buffer[begin:end], dtype="<f4").reshape(info["shape"])
    return tensors, metadata


def forward(spec, tensors, x):
    for index, v in enumerate(spec["vnodes"]):
        if "inputs" in v and v["inputs"] != ([index - 1] if index > 0 else ["input"]):
            sys.stderr.write(f"vnodes[{index}]: only chain models are covered (inputs {v['inputs']})\n")
            sys.exit(2)
        name = v.get("name", str(index))
        kind = v["type"]
        if kind == "layer.dense":
            x = x @ tensors[f"{name}.W"].astype(np.float64) + tensors[f"{name}.b"].astype(np.float64)
        elif kind == "activation.relu":
            x = np.maximum(x, 0)
        elif kind == "activation.tanh":
            x = np.tanh(x)
        elif kind == "activation.sigmoid":
            x = 1 / (1 + np.exp(-x))
        elif kind == "loss.softmaxCrossEntropy":
            e = np.exp(x - x.max(axis=1, keepdims=True))
            x = e / e.sum(axis=1, keepdims=True)
        elif kind == "loss.mse":
            pass
        else:
            sys.stderr.write(f"vnodes[{index}]: {kind} is not covered by this reader\n")
            sys.exit(2)
    return x


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    model, inputs, rows, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    tensors, metadata = read_safetensors(model)
    if metadata.get("format") != "dcnr-1":
        sys.exit(f"{model}: __metadata__.format is {metadata.get('format')!r}, not dcnr-1")
    spec = json.loads(metadata["spec"])
    x = np.fromfile(inputs, dtype="<f4").astype(np.float64).reshape(rows, -1)
    y = forward(spec, tensors, x)
    y.astype("<f4").tofile(out)
    print(json.dumps({"rows": rows, "outputs": int(y.shape[1]), "tensors": len(tensors), "paramsHash": metadata.get("paramsHash")}))


if __name__ == "__main__":
    main()
