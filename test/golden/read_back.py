#!/usr/bin/python3
"""Reads files that syncbn wrote, as PyTorch users will, and prints what PyTorch sees as JSON.

`/usr/bin/python3 test/golden/read_back.py FILE...`: a `.safetensors` file is read
with the spec reader of generate_checkpoints.py, any other with
torch.load(weights_only=True). For each file: every tensor's dtype, shape,
stride and values (int64 as strings), and the state dict's _metadata.
checkpoints.test.ts compares that with what it saved.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate_checkpoints import read_safetensors, values  # noqa: E402


def describe(obj):
    if isinstance(obj, torch.Tensor):
        return {"dtype": str(obj.dtype).replace("torch.", ""), "shape": list(obj.shape), "stride": list(obj.stride()),
                "values": values(obj)}
    if isinstance(obj, dict):
        return {"type": type(obj).__name__, "items": {str(k): describe(v) for k, v in obj.items()},
                "metadata": {k: dict(v) for k, v in getattr(obj, "_metadata", {}).items()}}
    if isinstance(obj, (list, tuple)):
        return [describe(v) for v in obj]
    return obj


out = {}
for path in sys.argv[1:]:
    if path.endswith(".safetensors"):
        tensors, metadata = read_safetensors(path)
        out[path] = {"tensors": describe(tensors), "st_metadata": metadata}
    else:
        out[path] = {"tensors": describe(torch.load(path, weights_only=True))}
print(json.dumps(out))
