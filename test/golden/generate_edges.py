#!/usr/bin/python3
"""Writes test/golden/fixtures/edges.json: what real PyTorch gives on the edge
cases of the statistics math (test/golden/edges.test.ts compares every CPU
path: the fused forward, welford_stats + welford_finalize, stats +
gather_stats_with_counts, and SyncBatchNorm's all-reduce of summaries).

Runs under Debian's python3-torch: `/usr/bin/python3 test/golden/generate_edges.py`.

- one value per channel in training (torch.native_batch_norm, which the
  modules refuse): running_var becomes NaN (0/0), save_invstd 1/sqrt(eps);
- eps 0 with channels of one constant value: ATen's InvStd gives invstd 0,
  so the output is the bias; on small batches and on batches large enough
  for the kernels' multi-threaded, fused, row and panel paths;
- a batch split over ranks, one of them empty: the expected results are
  torch.native_batch_norm's on the whole batch (SyncBatchNorm drops empty
  ranks' statistics); the ranks' own statistics are native_batch_norm's on
  their slices.

Inputs come from an integer formula the test evaluates the same way, so only
small cases store outputs; large ones store per-channel statistics and, for
the output, per-channel [sum, sum of |y|]. JSON has no NaN: non-finite values
are written "nan", "inf", "-inf".
"""
import json
import math
import os

import torch

from encoded_values import values

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "edges.json")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
MOMENTUM = 0.1


def formula(shape, dtype, constant):
    """x[k] = ((k * 7919) % 1000) / 100 - 5 + c over logical index k; channels
    in `constant` hold c + 0.5 everywhere."""
    n = math.prod(shape)
    c = shape[1]
    inner = math.prod(shape[2:]) if len(shape) > 2 else 1
    k = torch.arange(n, dtype=torch.int64)
    chan = (k // inner) % c
    t = ((k * 7919) % 1000).double() / 100 - 5 + chan.double()
    for ch in constant:
        t[chan == ch] = ch + 0.5
    return t.to(dtype).reshape(shape)


def params(c, dtype):
    ar = torch.arange(c, dtype=torch.float64)
    return [(ar * 0.25 + 0.5).to(dtype), (ar * 0.5 - 1.0).to(dtype), (ar * 0.25).to(dtype), (ar * 0.5 + 1.0).to(dtype)]


def summary(y, c):
    d = y.detach().double().transpose(0, 1).reshape(c, -1)
    return [[float(d[ch].sum()), float(d[ch].abs().sum())] for ch in range(c)]


def forward_case(name, shape, dtype, eps, constant, large):
    c = shape[1]
    x = formula(shape, dtype, constant)
    w, b, rm, rv = params(c, dtype)
    y, sm, si = torch.native_batch_norm(x, w, b, rm, rv, True, MOMENTUM, eps)[:3]
    rec = {"name": name, "shape": list(shape), "eps": eps, "constant": constant,
           "save_mean": values(sm), "save_invstd": values(si),
           "running_mean": values(rm), "running_var": values(rv)}
    if large:
        rec["y_summary"] = summary(y, c)
    else:
        rec["y"] = values(y)
    return rec


def split_case(name, shape, dtype, eps, constant, sizes):
    c = shape[1]
    x = formula(shape, dtype, constant)
    w, b, _, _ = params(c, dtype)
    # A fresh module's running stats, as SyncBatchNorm starts from.
    rm, rv = torch.zeros(c, dtype=dtype), torch.ones(c, dtype=dtype)
    y, sm, si = torch.native_batch_norm(x, w, b, rm, rv, True, MOMENTUM, eps)[:3]
    ranks = []
    start = 0
    for n in sizes:
        if n == 0:
            # torch cannot take statistics of an empty batch on the CPU (it
            # stops with SIGFPE); SyncBatchNorm masks such ranks out.
            ranks.append({"count": 0})
        else:
            part = x[start:start + n].contiguous()
            inner = math.prod(shape[2:]) if len(shape) > 2 else 1
            _, pm, pi = torch.native_batch_norm(part, None, None, None, None, True, MOMENTUM, eps)[:3]
            ranks.append({"count": n * inner, "mean": values(pm), "invstd": values(pi)})
        start += n
    return {"name": name, "shape": list(shape), "eps": eps, "constant": constant, "sizes": sizes, "ranks": ranks,
            "save_mean": values(sm), "save_invstd": values(si), "running_mean": values(rm),
            "running_var": values(rv), "y": values(y)}


FORWARD = [
    # name, shape, eps, constant channels, large
    ("one value 1d-2D", (1, 3), 1e-5, [], False),
    ("one value 2d", (1, 3, 1, 1), 1e-5, [], False),
    ("one value 2d eps 0", (1, 3, 1, 1), 0.0, [], False),
    ("eps 0 constant 1d-2D", (6, 3), 0.0, [1], False),
    ("eps 0 constant 2d", (4, 3, 3, 3), 0.0, [0, 2], False),
    ("eps 0 constant 2d-large (planar, per channel)", (8, 6, 32, 32), 0.0, [0, 3], True),
    ("eps 0 constant 2d-large (planar, chunks)", (4, 1, 128, 128), 0.0, [0], True),
    ("eps 0 constant 1d-large (rows)", (8192, 6), 0.0, [0, 3], True),
    ("eps 0 constant 1d-large (panels)", (32, 1024), 0.0, list(range(0, 1024, 4)), True),
]

SPLIT = [
    # name, shape, eps, constant channels, rows per rank
    ("three ranks, one empty", (5, 3, 2, 2), 1e-5, [], [3, 0, 2]),
    ("three ranks, one empty, eps 0 constant", (5, 3, 2, 2), 0.0, [0], [3, 0, 2]),
    ("one value per rank, one rank empty", (2, 3), 1e-5, [], [1, 0, 1]),
]


def main():
    out = {"torch": torch.__version__, "momentum": MOMENTUM, "forward": [], "split": []}
    for dname, dtype in DTYPES.items():
        for name, shape, eps, constant, large in FORWARD:
            out["forward"].append({"dtype": dname, **forward_case(name, shape, dtype, eps, constant, large)})
        for name, shape, eps, constant, sizes in SPLIT:
            out["split"].append({"dtype": dname, **split_case(name, shape, dtype, eps, constant, sizes)})
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
