#!/usr/bin/python3
"""Writes the golden fixtures of float16 and bfloat16 batch norm on the CPU
(test/golden/half_cpu.test.ts): fixtures/half_cpu.json and the checkpoint
fixtures/half_cpu_bn.pt.

Runs under Debian's python3-torch 1.13 (`/usr/bin/python3 test/golden/generate_half_cpu.py`).

- bfloat16: PyTorch's own CPU kernels, in both of its forms: a float32 layer
  on a bfloat16 input (mixed precision: float32 weight, bias and statistics)
  and a layer converted with `.to(torch.bfloat16)` (all in bfloat16).
- float16: PyTorch 1.13 has no float16 batch norm on the CPU ("not
  implemented for 'Half'"); PyTorch 2 has, computing in float32 and rounding
  what it stores. The expected numbers are PyTorch's float32 batch norm on the
  float16 values, rounded to float16 where the layer keeps float16: the
  output and grad input always, and for the all-float16 layer its running
  statistics after each step (as PyTorch 2 stores them) and its grads.
- The ATen-level ops (CUDA-only in PyTorch) for both dtypes: their
  definitions in float64 on the half values, per-channel results in float32,
  outputs rounded to the input's dtype.

Grads are zeroed before each backward, so each step's grads are that step's.
Values are stored in logical (N, C, ...) order; the tests run both memory
formats. The inputs are the half values themselves (exact in float32).
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from generate import channel_dims, ops_record, step_record, values, worker_stats

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
SEED = 20261203
HALVES = {"bfloat16": torch.bfloat16, "float16": torch.float16}

# name -> (module class, input shape, eps, momentum, affine, track)
MODULES = (
    ("1d-2D", nn.BatchNorm1d, (16, 5), 1e-5, 0.1, True, True),
    ("1d-3D", nn.BatchNorm1d, (4, 3, 7), 1e-5, None, True, True),
    ("2d", nn.BatchNorm2d, (3, 4, 5, 5), 1e-5, 0.1, True, True),
    ("2d-wide", nn.BatchNorm2d, (2, 19, 3, 3), 1e-3, 0.3, True, True),
    ("3d", nn.BatchNorm3d, (2, 3, 3, 2, 4), 1e-5, 0.1, True, True),
    ("2d-no-affine", nn.BatchNorm2d, (3, 6, 2, 3), 0.1, 0.1, False, True),
    ("1d-no-stats", nn.BatchNorm1d, (8, 9, 2), 1e-5, 0.1, True, False),
)
TRAIN_STEPS = 2
EVAL_STEPS = 1
OPS = (("2D", (10, 6), [4, 0, 6]), ("4D", (5, 3, 4, 2), [2, 3]), ("5D", (4, 2, 3, 2, 2), [1, 3, 0]))


def rounded(t, half):
    """A float32 tensor rounded to `half` and back."""
    return t.to(half).float()


def inputs(shape, half, steps):
    """x (channels of different means and scales) and dy, as half values in float32."""
    c = shape[1]
    view = [1, c] + [1] * (len(shape) - 2)
    out = []
    for _ in range(steps):
        loc = torch.randn(c).mul(2).reshape(view)
        scale = torch.rand(c).add(0.5).reshape(view)
        out.append((rounded(torch.randn(shape) * scale + loc, half), rounded(torch.randn(shape), half)))
    return out


def module_case(name, cls, shape, eps, momentum, affine, track, dtype_name, params):
    """Two training steps and one eval step, each forward with backward."""
    half = HALVES[dtype_name]
    c = shape[1]
    steps = inputs(shape, half, TRAIN_STEPS + EVAL_STEPS)
    w0 = rounded(torch.rand(c).add(0.5), half)
    b0 = rounded(torch.randn(c), half)
    bn = cls(c, eps=eps, momentum=momentum, affine=affine, track_running_stats=track)
    if affine:
        with torch.no_grad():
            bn.weight.copy_(w0)
            bn.bias.copy_(b0)
    native = dtype_name == "bfloat16"
    if native and params == "half":
        bn = bn.to(half)
    records = []
    for i, (x, dy) in enumerate(steps):
        bn.train(i < TRAIN_STEPS)
        bn.zero_grad(set_to_none=True)
        if native:
            xi = x.to(half).requires_grad_(True)
            y = bn(xi)
            y.backward(dy.to(half))
            dx = xi.grad
        elif params == "half" and (i < TRAIN_STEPS or not track):
            y, dx = half_training_step(bn, x, dy, half)
        else:
            # float32 on the float16 values; what a float16 layer keeps is rounded below.
            xi = x.clone().requires_grad_(True)
            y = bn(xi)
            y.backward(dy)
            y, dx = y.to(half), xi.grad.to(half)
            if params == "half":
                with torch.no_grad():
                    for t in [p for p in (bn.weight, bn.bias) if p is not None]:
                        t.grad.copy_(rounded(t.grad, half))
        records.append(step_record(bn, i < TRAIN_STEPS, y, dx))
    return {
        "name": name,
        "module": cls.__name__,
        "dtype": dtype_name,
        "params": params,
        "reference": "torch CPU kernels" if native else "torch float32 on the float16 values, rounded",
        "shape": list(shape),
        "eps": eps,
        "momentum": momentum,
        "affine": affine,
        "track_running_stats": track,
        "weight": values(w0),
        "bias": values(b0),
        "x": [values(x) for x, _ in steps],
        "dy": [values(dy) for _, dy in steps],
        "steps": records,
    }


def half_training_step(bn, x, dy, half):
    """A training step of a layer whose parameters and statistics are in
    `half`, as PyTorch 2 computes it on the CPU (Normalization.cpp and
    batch_norm_kernel.cpp, batch norm not mixed): statistics and math in
    float32; the batch's mean and invstd stored in `half`, and the batch
    normalized and differentiated with the stored values; the running
    statistics moved in float32 and stored in `half`; output, grad input and
    grads stored in `half`. (float16, which PyTorch 1.13 lacks on the CPU.)"""
    dims = channel_dims(x)
    c = x.shape[1]
    view = [1, c] + [1] * (x.dim() - 2)
    n = x.numel() // c
    mean = x.mean(dims)
    var = x.var(dims, unbiased=False)
    with torch.no_grad():
        if bn.track_running_stats:
            bn.num_batches_tracked += 1
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
            bn.running_mean.copy_(rounded((1 - factor) * bn.running_mean + factor * mean, half))
            bn.running_var.copy_(rounded((1 - factor) * bn.running_var + factor * x.var(dims, unbiased=True), half))
    m = rounded(mean, half).reshape(view)
    invstd = rounded((var + bn.eps).rsqrt(), half).reshape(view)
    w = bn.weight.detach().reshape(view) if bn.affine else torch.ones(view)
    b = bn.bias.detach().reshape(view) if bn.affine else torch.zeros(view)
    xmu = x - m
    y = xmu * invstd * w + b
    sum_dy = dy.sum(dims).reshape(view)
    sum_dy_xmu = (dy * xmu).sum(dims).reshape(view)
    dx = (dy - sum_dy / n - xmu * invstd * invstd * sum_dy_xmu / n) * invstd * w
    if bn.affine:
        bn.weight.grad = rounded((sum_dy_xmu * invstd).reshape(-1), half)
        bn.bias.grad = rounded(sum_dy.reshape(-1), half)
    return y.to(half), dx.to(half)


def ops_case(name, dtype_name, shape, splits, eps, momentum):
    """The ATen-level ops on half values (as test/golden/ops_case.ts reads
    them): definitions in float64, per-channel results in float32, the
    outputs y and dx rounded to the input's dtype."""
    half = HALVES[dtype_name]
    ((x, dy),) = inputs(shape, half, 1)
    c = shape[1]
    w = torch.rand(c).add(0.5)
    b = torch.randn(c)
    rm0 = torch.randn(c)
    rv0 = torch.rand(c).add(0.5)
    xd, dyd, wd, bd = x.double(), dy.double(), w.double(), b.double()
    dims = channel_dims(xd)
    view = [1, c] + [1] * (len(shape) - 2)
    n = xd.numel() // c
    mean = xd.mean(dims)
    var = xd.var(dims, unbiased=False)
    invstd = (var + eps).rsqrt()
    xmu = xd - mean.reshape(view)
    y = xmu * (invstd * wd).reshape(view) + bd.reshape(view)
    sum_dy = dyd.sum(dims)
    sum_dy_xmu = (dyd * xmu).sum(dims)
    dx = (dyd - sum_dy.reshape(view) / n - xmu * (sum_dy_xmu * invstd * invstd).reshape(view) / n) * (invstd * wd).reshape(view)
    rm = (1 - momentum) * rm0.double() + momentum * mean
    rv = (1 - momentum) * rv0.double() + momentum * xd.var(dims, unbiased=True)
    # The definitions agree with PyTorch's float32 autograd on the same values.
    xg = x.clone().requires_grad_(True)
    F.batch_norm(xg, rm0.clone(), rv0.clone(), w, b, training=True, momentum=momentum, eps=eps).backward(dy)
    assert torch.allclose(dx.float(), xg.grad, rtol=1e-4, atol=1e-5), name

    ye = (xd - rm0.double().reshape(view)) * ((rv0.double() + eps).rsqrt() * wd).reshape(view) + bd.reshape(view)
    dxe = dyd * ((rv0.double() + eps).rsqrt() * wd).reshape(view)
    xmue = xd - rm0.double().reshape(view)
    return ops_record(name, dtype_name, shape, eps, momentum, splits, (x, dy, w, b, rm0, rv0), {
        "mean": values(mean.float()),
        "invstd": values(invstd.float()),
        "workers": worker_stats(xd, shape, splits, eps, lambda t: t.float()),
        "running_mean": values(rm.float()),
        "running_var": values(rv.float()),
        "y": values(y.to(half)),
        "sum_dy": values(sum_dy.float()),
        "sum_dy_xmu": values(sum_dy_xmu.float()),
        "grad_weight": values((sum_dy_xmu * invstd).float()),
        "grad_bias": values(sum_dy.float()),
        "dx": values(dx.to(half)),
        "eval": {
            "y": values(ye.to(half)),
            "dx": values(dxe.to(half)),
            "grad_weight": values(((dyd * xmue).sum(dims) * (rv0.double() + eps).rsqrt()).float()),
            "grad_bias": values(sum_dy.float()),
        },
    })


def checkpoint_case():
    """A BatchNorm2d trained in bfloat16 (`.to(torch.bfloat16)`, three
    steps), saved with torch.save, and its eval output on a bfloat16 input:
    the bf16-trained model a user moves to CPU inference."""
    half = torch.bfloat16
    shape = (4, 6, 3, 3)
    bn = nn.BatchNorm2d(6).to(half)
    for x, dy in inputs(shape, half, 3):
        xi = x.to(half).requires_grad_(True)
        bn(xi).backward(dy.to(half))
    path = os.path.join(OUT, "half_cpu_bn.pt")
    torch.save(bn.state_dict(), path)
    bn.eval()
    ((x, _),) = inputs(shape, half, 1)
    with torch.no_grad():
        y = bn(x.to(half))
    print(f"wrote {os.path.relpath(path)}")
    return {"file": "half_cpu_bn.pt", "shape": list(shape), "x": values(x), "y": values(y),
            "state_dict": {k: values(v) for k, v in bn.state_dict().items()}}


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    modules = []
    ops = []
    for dtype_name in HALVES:
        for spec in MODULES:
            for params in ("mixed", "half"):
                modules.append(module_case(*spec, dtype_name, params))
        for name, shape, splits in OPS:
            ops.append(ops_case(name, dtype_name, shape, splits, 1e-5, 0.1))
    data = {"torch": torch.__version__, "modules": modules, "ops": ops, "checkpoint": checkpoint_case()}
    path = os.path.join(OUT, "half_cpu.json")
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path) // 1024} KiB)")


if __name__ == "__main__":
    sys.exit(main())
