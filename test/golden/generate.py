#!/usr/bin/python3
"""Writes the golden fixtures that test/golden/*.test.ts compare against.

Runs under Debian's python3-torch (`/usr/bin/python3 test/golden/generate.py`).
Every expected number comes from real PyTorch: module outputs, grads and
running stats from torch.nn.BatchNorm*d with autograd; the ATen-level ops
(CUDA-only in PyTorch, so not callable here) from their definitions evaluated
with torch in float64, and checked against autograd where they compose into
the module's backward.

Fixtures hold values in logical (N, C, ...) order; the tests run every case in
both memory formats.
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
SEED = 20261121

# kind -> (module class, input shape)
KINDS = {
    "1d-2D": (nn.BatchNorm1d, (8, 5)),
    "1d-3D": (nn.BatchNorm1d, (4, 3, 5)),
    "2d": (nn.BatchNorm2d, (3, 4, 3, 3)),
    "3d": (nn.BatchNorm3d, (2, 3, 2, 3, 2)),
}
DTYPES = {"float32": torch.float32, "float64": torch.float64}
TRAIN_STEPS = 3
EVAL_STEPS = 1


def values(t):
    """Flat list in logical order; float32 (and the 16-bit types, exact in it)
    printed in float32's shortest exact form."""
    t = t.detach().contiguous().reshape(-1)
    if t.dtype in (torch.float32, torch.bfloat16, torch.float16):
        return [float(str(np.float32(v))) for v in t.float().numpy()]
    if t.dtype == torch.int64:
        return [int(v) for v in t.numpy()]
    return [float(v) for v in t.numpy()]


def batch_inputs(shape, dtype, steps):
    """Inputs whose channels have different means and scales."""
    c = shape[1]
    view = [1, c] + [1] * (len(shape) - 2)
    out = []
    for _ in range(steps):
        loc = torch.randn(c, dtype=torch.float64).mul(2).reshape(view)
        scale = torch.rand(c, dtype=torch.float64).add(0.5).reshape(view)
        x = (torch.randn(shape, dtype=torch.float64) * scale + loc).to(dtype)
        dy = torch.randn(shape, dtype=dtype)
        out.append((x, dy))
    return out


def input_set(shape, dtype, steps):
    """Inputs for `steps` forwards with backward, and starting weight and bias."""
    batches = batch_inputs(shape, dtype, steps)
    c = shape[1]
    w0 = torch.rand(c, dtype=dtype).add(0.5)
    b0 = torch.randn(c, dtype=dtype)
    record = {
        "shape": list(shape),
        "weight": values(w0),
        "bias": values(b0),
        "x": [values(x) for x, _ in batches],
        "dy": [values(dy) for _, dy in batches],
    }
    return batches, w0, b0, record


def step_record(bn, training, y, dx):
    """One step of a module case: the output and grad input, and the layer's
    grads, running statistics and counter where it has them."""
    rec = {"training": training, "y": values(y), "dx": values(dx)}
    if bn.affine:
        rec["grad_weight"] = values(bn.weight.grad)
        rec["grad_bias"] = values(bn.bias.grad)
    if bn.track_running_stats:
        rec["running_mean"] = values(bn.running_mean)
        rec["running_var"] = values(bn.running_var)
        rec["num_batches_tracked"] = int(bn.num_batches_tracked)
    return rec


def module_cases(dtype_name):
    dtype = DTYPES[dtype_name]
    cases = []
    inputs = {}
    for kind, (cls, shape) in KINDS.items():
        steps, w0, b0, record = input_set(shape, dtype, TRAIN_STEPS + EVAL_STEPS)
        c = shape[1]
        inputs[kind] = {"module": cls.__name__, **record}
        for affine in (True, False):
            for track in (True, False):
                for momentum in (0.1, None):
                    bn = cls(c, momentum=momentum, affine=affine, track_running_stats=track, dtype=dtype)
                    if affine:
                        with torch.no_grad():
                            bn.weight.copy_(w0)
                            bn.bias.copy_(b0)
                    records = []
                    for i, (x, dy) in enumerate(steps):
                        bn.train(i < TRAIN_STEPS)
                        xi = x.clone().requires_grad_(True)
                        y = bn(xi)
                        y.backward(dy)
                        records.append(step_record(bn, i < TRAIN_STEPS, y, xi.grad))
                    cases.append({
                        "kind": kind,
                        "affine": affine,
                        "track_running_stats": track,
                        "momentum": momentum,
                        "repr": repr(bn),
                        "steps": records,
                    })
    return {"dtype": dtype_name, "torch": torch.__version__, "inputs": inputs, "cases": cases}


def channel_dims(x):
    return [0] + list(range(2, x.dim()))


def worker_stats(xd, shape, splits, eps, cast):
    """Each worker's rows of xd (float64, split by `splits`): its count and,
    unless it has none, its mean and invstd, cast to the fixture's dtype."""
    workers = []
    start = 0
    for n in splits:
        part = xd[start:start + n]
        start += n
        if n == 0:
            workers.append({"count": 0})
            continue
        workers.append({
            "count": n * (xd.numel() // (shape[0] * shape[1])),
            "mean": values(cast(part.mean(channel_dims(part)))),
            "invstd": values(cast((part.var(channel_dims(part), unbiased=False) + eps).rsqrt())),
        })
    return workers


def ops_record(name, dtype_name, shape, eps, momentum, splits, inputs, expected):
    """An ops case as test/golden/ops_case.ts reads it; inputs = (x, dy,
    weight, bias, running_mean, running_var)."""
    x, dy, w, b, rm0, rv0 = inputs
    return {
        "name": f"{name}-{dtype_name}",
        "dtype": dtype_name,
        "shape": list(shape),
        "eps": eps,
        "momentum": momentum,
        "splits": splits,
        "x": values(x),
        "dy": values(dy),
        "weight": values(w),
        "bias": values(b),
        "running_mean": values(rm0),
        "running_var": values(rv0),
        "expected": expected,
    }


def ops_case(name, dtype_name, shape, splits, eps, momentum, with_eval=False):
    """One ATen-level ops case: stats, gather over uneven workers, elemt,
    backward reduce/elemt; with_eval adds F.batch_norm in eval (running stats)
    with its autograd grads."""
    dtype = DTYPES[dtype_name]
    (x, dy), = batch_inputs(shape, dtype, 1)
    c = shape[1]
    w = torch.rand(c, dtype=dtype).add(0.5)
    b = torch.randn(c, dtype=dtype)
    rm0 = torch.randn(c, dtype=dtype)
    rv0 = torch.rand(c, dtype=dtype).add(0.5)

    # Reference: the module path, autograd for the grads.
    xg = x.clone().requires_grad_(True)
    wg = w.clone().requires_grad_(True)
    bg = b.clone().requires_grad_(True)
    rm, rv = rm0.clone(), rv0.clone()
    y = F.batch_norm(xg, rm, rv, wg, bg, training=True, momentum=momentum, eps=eps)
    y.backward(dy)

    # Definitions, in float64.
    xd, dyd = x.double(), dy.double()
    dims = channel_dims(xd)
    view = [1, c] + [1] * (len(shape) - 2)
    mean = xd.mean(dims)
    invstd = (xd.var(dims, unbiased=False) + eps).rsqrt()
    xmu = xd - mean.reshape(view)
    sum_dy = dyd.sum(dims)
    sum_dy_xmu = (dyd * xmu).sum(dims)
    # What backward_elemt must reproduce: autograd's grad input.
    dx_def = (dyd - sum_dy.reshape(view) / (xd.numel() / c)
              - xmu * (sum_dy_xmu * invstd * invstd).reshape(view) / (xd.numel() / c)) \
        * (invstd * w.double()).reshape(view)
    assert torch.allclose(dx_def.to(dtype), xg.grad, rtol=1e-4, atol=1e-5), name

    case = ops_record(name, dtype_name, shape, eps, momentum, splits, (x, dy, w, b, rm0, rv0), {
        "mean": values(mean.to(dtype)),
        "invstd": values(invstd.to(dtype)),
        "workers": worker_stats(xd, shape, splits, eps, lambda t: t.to(dtype)),
        "running_mean": values(rm),
        "running_var": values(rv),
        "y": values(y),
        "sum_dy": values(sum_dy.to(dtype)),
        "sum_dy_xmu": values(sum_dy_xmu.to(dtype)),
        "grad_weight": values(wg.grad),
        "grad_bias": values(bg.grad),
        "dx": values(xg.grad),
    })
    if with_eval:
        # Eval: the running stats (rm0, rv0) and eps are constants.
        xe = x.clone().requires_grad_(True)
        we = w.clone().requires_grad_(True)
        be = b.clone().requires_grad_(True)
        ye = F.batch_norm(xe, rm0.clone(), rv0.clone(), we, be, training=False, momentum=momentum, eps=eps)
        ye.backward(dy)
        case["expected"]["eval"] = {
            "y": values(ye), "dx": values(xe.grad), "grad_weight": values(we.grad), "grad_bias": values(be.grad),
        }
    return case


def ops_cases():
    """ATen-level ops: stats, gather over uneven workers, elemt, backward reduce/elemt."""
    cases = []
    for dtype_name in DTYPES:
        for name, shape, splits in (
            ("2D", (10, 6), [4, 0, 6]),
            ("4D", (5, 3, 4, 2), [2, 3]),
            ("5D", (4, 2, 3, 2, 2), [1, 3, 0]),
        ):
            cases.append(ops_case(name, dtype_name, shape, splits, 1e-5, 0.1))
    return {"torch": torch.__version__, "cases": cases}


class MomentumBatchNormRef(nn.Module):
    """The momentum-teacher layer, written from its rules (flame's momentum_bn,
    momentum2-teacher), with statistics over every dim but 1 for any rank."""

    def __init__(self, c, eps=1e-5, momentum=1.0, affine=True, total_iters=100, dtype=torch.float32):
        super().__init__()
        self.eps, self.momentum, self.affine, self.total_iters = eps, momentum, affine, total_iters
        self.cur_iter = 0
        self.weight = nn.Parameter(torch.ones(c, dtype=dtype)) if affine else None
        self.bias = nn.Parameter(torch.zeros(c, dtype=dtype)) if affine else None
        self.register_buffer("running_mean", torch.zeros(c, dtype=dtype))
        self.register_buffer("running_var", torch.ones(c, dtype=dtype))
        self.mean_last, self.var_last = None, None

    def forward(self, x):
        dims = channel_dims(x)
        view = [1, x.size(1)] + [1] * (x.dim() - 2)
        mean = torch.mean(x, dim=dims)
        var = torch.var(x, dim=dims)
        n = x.numel() / x.size(1)
        m = self.momentum
        with torch.no_grad():
            tmp_mean = m * mean + (1 - m) * self.running_mean
            tmp_var = m * var * n / (n - 1) + (1 - m) * self.running_var
        y = (x - tmp_mean.reshape(view).detach()) / torch.sqrt(tmp_var.reshape(view).detach() + self.eps)
        if self.affine:
            y = y * self.weight.reshape(view) + self.bias.reshape(view)
        with torch.no_grad():
            if self.mean_last is None:
                self.mean_last, self.var_last = mean.detach(), var.detach()
            else:
                self.running_mean.copy_(m * ((mean + self.mean_last) * 0.5) + (1 - m) * self.running_mean)
                self.running_var.copy_(m * ((var + self.var_last) * 0.5) * n / (n - 1) + (1 - m) * self.running_var)
                self.mean_last, self.var_last = None, None
                self.cur_iter += 1
                self.momentum = (math.cos(math.pi * (self.cur_iter / self.total_iters)) + 1) * 0.5
        return y


def momentum_cases():
    """Six forwards with backward, the last two in eval, for the momentum layers."""
    cases = []
    inputs = {}
    for dtype_name, dtype in DTYPES.items():
        for kind, (cls, shape) in KINDS.items():
            steps, w0, b0, inputs[f"{dtype_name}/{kind}"] = input_set(shape, dtype, 6)
            c = shape[1]
            for affine in (True, False):
                for momentum, total_iters in ((1.0, 5), (0.9, 3)):
                    ref = MomentumBatchNormRef(c, momentum=momentum, affine=affine, total_iters=total_iters, dtype=dtype)
                    if affine:
                        with torch.no_grad():
                            ref.weight.copy_(w0)
                            ref.bias.copy_(b0)
                    records = []
                    for i, (x, dy) in enumerate(steps):
                        ref.train(i < 4)
                        xi = x.clone().requires_grad_(True)
                        y = ref(xi)
                        y.backward(dy)
                        rec = {
                            "training": i < 4,
                            "y": values(y),
                            "dx": values(xi.grad),
                            "running_mean": values(ref.running_mean),
                            "running_var": values(ref.running_var),
                            "cur_iter": ref.cur_iter,
                            "momentum": ref.momentum,
                        }
                        if affine:
                            rec["grad_weight"] = values(ref.weight.grad)
                            rec["grad_bias"] = values(ref.bias.grad)
                        records.append(rec)
                    cases.append({
                        "module": "Momentum" + cls.__name__,
                        "kind": kind,
                        "dtype": dtype_name,
                        "inputs": f"{dtype_name}/{kind}",
                        "affine": affine,
                        "momentum": momentum,
                        "total_iters": total_iters,
                        "steps": records,
                    })
    return {"torch": torch.__version__, "inputs": inputs, "cases": cases}


def half_cases():
    """float16 / bfloat16 inputs with float32 weight, bias and statistics, as
    PyTorch runs them on CUDA: statistics and math in float32 on the half
    values, the output rounded to the input's dtype."""
    cases = []
    for dtype_name, dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        for kind in ("1d-2D", "2d"):
            cls, shape = KINDS[kind]
            c = shape[1]
            bn = cls(c)
            with torch.no_grad():
                bn.weight.copy_(torch.rand(c).add(0.5))
                bn.bias.copy_(torch.randn(c))
            w0, b0 = values(bn.weight), values(bn.bias)
            records = []
            for i, (x, dy) in enumerate(batch_inputs(shape, torch.float32, 3)):
                bn.train(i < 2)
                xh, dyh = x.to(dtype), dy.to(dtype)
                xi = xh.float().requires_grad_(True)
                y = bn(xi)
                y.backward(dyh.float())
                records.append({
                    "training": i < 2,
                    "x": values(xh.float()),
                    "dy": values(dyh.float()),
                    "y": values(y.to(dtype).float()),
                    "dx": values(xi.grad.to(dtype).float()),
                    "grad_weight": values(bn.weight.grad),
                    "grad_bias": values(bn.bias.grad),
                    "running_mean": values(bn.running_mean),
                    "running_var": values(bn.running_var),
                })
            cases.append({"dtype": dtype_name, "kind": kind, "module": cls.__name__, "shape": list(shape),
                          "weight": w0, "bias": b0, "steps": records})
    return {"torch": torch.__version__, "cases": cases}


# What users vary, one module case each, in both dtypes: eps (1e-3, 0.1 and 0,
# which PyTorch accepts), momentum (0.3, 1.0, None), affine and tracking,
# batch size 2 (the smallest that trains), channel counts that are not
# multiples of a vector width. (module class, shape, eps, momentum, affine, track)
VARIED_MODULES = (
    (nn.BatchNorm1d, (2, 7), 1e-3, 0.3, True, True),
    (nn.BatchNorm2d, (2, 5, 2, 2), 0.0, 1.0, False, True),
    (nn.BatchNorm3d, (2, 3, 2, 1, 2), 1e-3, None, True, False),
    (nn.BatchNorm1d, (2, 9, 2), 0.1, 0.3, False, False),
    (nn.BatchNorm2d, (2, 17, 2, 1), 1e-3, None, True, True),
    (nn.BatchNorm1d, (2, 33), 0.1, 1.0, True, True),
)
# ATen-level ops with the same kind of variation: (name, shape, splits, eps, momentum).
VARIED_OPS = (
    ("2D-batch2", (2, 7), [1, 1], 1e-3, 0.3),
    ("4D-eps0", (2, 5, 3, 1), [2, 0], 0.0, 1.0),
    ("3D-eps0.1", (3, 9, 2), [1, 2], 0.1, 0.3),
)


def varied_module_case(cls, shape, dtype_name, eps, momentum, affine, track):
    """Three training forwards with backward, then one in eval."""
    dtype = DTYPES[dtype_name]
    steps, w0, b0, record = input_set(shape, dtype, 4)
    bn = cls(shape[1], eps=eps, momentum=momentum, affine=affine, track_running_stats=track, dtype=dtype)
    if affine:
        with torch.no_grad():
            bn.weight.copy_(w0)
            bn.bias.copy_(b0)
    records = []
    for i, (x, dy) in enumerate(steps):
        bn.train(i < 3)
        xi = x.clone().requires_grad_(True)
        y = bn(xi)
        y.backward(dy)
        records.append(step_record(bn, i < 3, y, xi.grad))
    return {
        "module": cls.__name__,
        "dtype": dtype_name,
        "eps": eps,
        "momentum": momentum,
        "affine": affine,
        "track_running_stats": track,
        "repr": repr(bn),
        **record,
        "steps": records,
    }


def varied_cases():
    modules = []
    ops = []
    for dtype_name in DTYPES:
        for cls, shape, eps, momentum, affine, track in VARIED_MODULES:
            modules.append(varied_module_case(cls, shape, dtype_name, eps, momentum, affine, track))
        for name, shape, splits, eps, momentum in VARIED_OPS:
            ops.append(ops_case(name, dtype_name, shape, splits, eps, momentum, with_eval=True))
    return {"torch": torch.__version__, "modules": modules, "ops": ops}


def write(name, data):
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path) // 1024} KiB)")


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    for dtype_name in DTYPES:
        write(f"modules_{dtype_name}.json", module_cases(dtype_name))
    write("ops.json", ops_cases())
    write("momentum.json", momentum_cases())
    write("half.json", half_cases())
    write("varied.json", varied_cases())


if __name__ == "__main__":
    sys.exit(main())
