#!/usr/bin/python3
"""Writes test/golden/fixtures/nonfinite.json: what real PyTorch gives when a
batch holds NaN or an infinity (test/golden/nonfinite.test.ts compares).

Runs under Debian's python3-torch: `/usr/bin/python3 test/golden/generate_nonfinite.py`.
Channels: 0 clean, 1 a NaN, 2 a +Inf, 3 a +Inf and a -Inf, 4 a -Inf. Inputs
come from integer formulas that the test evaluates the same way, so no input
is stored for the large cases, which reach the kernels' multi-threaded and
fused paths; for those the fixture holds per-channel results and, for y and
dx, per-channel summaries (counts of NaN, +Inf, -Inf and the sum of the absolute
finite values). JSON has no NaN: non-finite values are written "nan", "inf", "-inf".
"""
import json
import math
import os

import torch
import torch.nn as nn

from encoded_values import enc, values

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures", "nonfinite.json")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
# channel -> list of (logical index within the channel's values, value)
POISON = {1: [(3, math.nan)], 2: [(1, math.inf)], 3: [(0, math.inf), (4, -math.inf)], 4: [(2, -math.inf)]}
CASES = {
    "1d-2D": (nn.BatchNorm1d, (6, 5)),
    "2d": (nn.BatchNorm2d, (3, 5, 2, 3)),
    "1d-2D-large": (nn.BatchNorm1d, (8192, 5)),
    "2d-large": (nn.BatchNorm2d, (8, 5, 64, 16)),
}


def formula(shape, dtype, mul, mod, div, off, poison):
    """t[k] = ((k * mul) % mod) / div - off + c over logical index k, then the poison."""
    n = math.prod(shape)
    k = torch.arange(n, dtype=torch.int64)
    t = ((k * mul) % mod).double() / div - off
    c = shape[1]
    inner = math.prod(shape[2:]) if len(shape) > 2 else 1
    chan = (k // inner) % c
    t = (t + chan.double()).to(dtype)
    if poison:
        t4 = t.reshape(shape[0], c, inner)
        for ch, hits in POISON.items():
            for j, v in hits:
                t4[j // inner, ch, j % inner] = v
    return t.reshape(shape)


def summary(t, c):
    """Per channel: [nan count, +inf count, -inf count, sum of |finite values|]."""
    d = t.detach().double().transpose(0, 1).reshape(c, -1)
    out = []
    for ch in range(c):
        v = d[ch]
        fin = v[torch.isfinite(v)]
        out.append([int(torch.isnan(v).sum()), int((v == math.inf).sum()), int((v == -math.inf).sum()), float(fin.abs().sum())])
    return out


def run(cls, shape, dtype, large):
    c = shape[1]
    x_bad = formula(shape, dtype, 7919, 1000, 100.0, 5.0, True)
    x_ok = formula(shape, dtype, 7919, 1000, 100.0, 5.0, False)
    dy_bad = formula(shape, dtype, 104729, 997, 250.0, 2.0, True)
    dy_ok = formula(shape, dtype, 104729, 997, 250.0, 2.0, False)
    w0 = torch.arange(c, dtype=dtype) * 0.25 + 0.5
    b0 = torch.arange(c, dtype=dtype) * 0.5 - 1.0

    def module():
        bn = cls(c, dtype=dtype)
        with torch.no_grad():
            bn.weight.copy_(w0)
            bn.bias.copy_(b0)
        return bn

    def step(bn, x, dy, training):
        bn.train(training)
        xi = x.clone().requires_grad_(True)
        y = bn(xi)
        y.backward(dy)
        rec = {
            "training": training,
            "grad_weight": values(bn.weight.grad),
            "grad_bias": values(bn.bias.grad),
            "running_mean": values(bn.running_mean),
            "running_var": values(bn.running_var),
        }
        if large:
            rec["y_summary"] = summary(y, c)
            rec["dx_summary"] = summary(xi.grad, c)
        else:
            rec["y"] = values(y)
            rec["dx"] = values(xi.grad)
        return rec

    # Training with a poisoned x, then training with a poisoned dy (grads accumulate).
    bn = module()
    train = [step(bn, x_bad, dy_ok, True), step(bn, x_ok, dy_bad, True)]
    # Eval with a poisoned x on fresh running statistics: dx = dy * w * invstd(running var).
    ev = [step(module(), x_bad, dy_ok, False)]
    return {"train": train, "eval": ev}


def main():
    torch.manual_seed(0)
    out = {"torch": torch.__version__, "poison": {str(k): [[j, enc(v)] for j, v in hits] for k, hits in POISON.items()}, "cases": []}
    for name, (cls, shape) in CASES.items():
        for dname, dtype in DTYPES.items():
            r = run(cls, shape, dtype, name.endswith("large"))
            out["cases"].append({"name": name, "module": cls.__name__, "shape": list(shape), "dtype": dname, **r})
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
