#!/usr/bin/python3
"""PyTorch's side of the CPU benchmark: reads one JSON command per line on
stdin, times the case inside this process, and answers one JSON line."""
import json
import sys
import time

import torch
import torch.nn.functional as F

CACHE = {}


def prepare(shape, fmt, mode):
    key = (tuple(shape), fmt, mode)
    if key in CACHE:
        return CACHE[key]
    x = torch.randn(shape)
    dy = torch.randn(shape)
    if fmt == "channelsLast":
        memory_format = torch.channels_last if len(shape) == 4 else torch.channels_last_3d
        if len(shape) in (4, 5):
            x = x.contiguous(memory_format=memory_format)
            dy = dy.contiguous(memory_format=memory_format)
        else:
            # Channels last for other ranks: the (N, ..., C) bytes as a strided view.
            perm = [0] + list(range(2, len(shape))) + [1]
            inv = [perm.index(i) for i in range(len(shape))]
            x = x.permute(perm).contiguous().permute(inv)
            dy = dy.permute(perm).contiguous().permute(inv)
    c = shape[1]
    w = torch.ones(c, requires_grad=True)
    b = torch.zeros(c, requires_grad=True)
    rm = torch.zeros(c)
    rv = torch.ones(c)
    xg = x.detach().clone().requires_grad_(True)

    def train_fwd():
        with torch.no_grad():
            F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)

    def train_fwdbwd():
        y = F.batch_norm(xg, rm, rv, w, b, True, 0.1, 1e-5)
        y.backward(dy)
        xg.grad = None

    def infer():
        with torch.no_grad():
            F.batch_norm(x, rm, rv, w, b, False, 0.1, 1e-5)

    fn = {"train-fwd": train_fwd, "train-fwdbwd": train_fwdbwd, "infer": infer}[mode]
    CACHE[key] = fn
    return fn


def measure(cmd):
    """Times the case as the Node side times its peers: warm-up of at least
    `warmup` calls and `warm_ms`, then samples that each average enough
    back-to-back calls to last `sample_ms`."""
    fn = prepare(cmd["shape"], cmd["format"], cmd["mode"])

    def call():
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    warm_start = time.perf_counter()
    last = float("inf")
    i = 0
    while i < cmd["warmup"] or (time.perf_counter() - warm_start) * 1e3 < cmd["warm_ms"]:
        last = call()
        if last >= cmd["slow_ms"]:
            return {"samples": [last]}
        i += 1
    batch = max(1, min(1000, int(cmd["sample_ms"] // last)))
    samples = []
    start = time.perf_counter()
    while len(samples) < cmd["reps"] and (len(samples) == 0 or (time.perf_counter() - start) * 1e3 < cmd["budget_ms"]):
        samples.append(sum(call() for _ in range(batch)) / batch)
    return {"samples": samples}


def main():
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "init":
            torch.set_num_threads(cmd["threads"])
            out = {"version": torch.__version__, "threads": torch.get_num_threads()}
        elif cmd["cmd"] == "measure":
            out = measure(cmd)
        elif cmd["cmd"] == "release":
            CACHE.clear()
            out = {}
        else:
            out = {"error": f"unknown command {cmd['cmd']}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
