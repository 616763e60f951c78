#!/usr/bin/python3
"""PyTorch's side of the CPU benchmark, with torch.nn.BatchNorm*d as users
write it. Serve mode (no arguments): reads one JSON command per line on
stdin, times the case inside this process, answers one JSON line. Loop mode
(`--loop n,c,h,w steps threads`): a training loop in a process of its own,
so that its peak RSS is the loop's; prints one JSON line."""
import json
import resource
import sys
import time

import torch

CACHE = {}


def module_for(shape):
    c = shape[1]
    cls = {5: torch.nn.BatchNorm3d, 4: torch.nn.BatchNorm2d}.get(len(shape), torch.nn.BatchNorm1d)
    return cls(c)


def layout(t, fmt):
    if fmt != "channelsLast":
        return t
    if t.dim() in (4, 5):
        return t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)
    # Channels last for other ranks: the (N, ..., C) bytes as a strided view.
    perm = [0] + list(range(2, t.dim())) + [1]
    inv = [perm.index(i) for i in range(t.dim())]
    return t.permute(perm).contiguous().permute(inv)


def prepare(shape, fmt, mode, dtype):
    """A case's call; the input (and its gradient) in `dtype`, the layer float32
    (mixed precision for bfloat16 and float16 inputs)."""
    key = (tuple(shape), fmt, mode, dtype)
    if key in CACHE:
        return CACHE[key]
    dt = getattr(torch, dtype)
    x = layout(torch.randn(shape).to(dt), fmt)
    dy = layout(torch.randn(shape).to(dt), fmt)
    bn = module_for(shape)
    # The layer's input is an activation whose gradient is wanted, as inside a network.
    xg = x.detach().clone().requires_grad_(True)
    # As in `y = bn(x)` in a loop: the last output stays referenced until the next replaces it.
    held = {}

    def train_fwd():
        held["y"] = bn(x)

    def train_fwdbwd():
        y = bn(xg)
        y.backward(dy)
        held["y"] = y
        held["dx"] = xg.grad
        xg.grad = None

    def infer():
        with torch.no_grad():
            held["y"] = bn(x)

    if mode == "infer":
        bn.eval()
    fn = {"train-fwd": train_fwd, "train-fwdbwd": train_fwdbwd, "infer": infer}[mode]
    CACHE[key] = fn
    return fn


def measure(cmd):
    """Times the case as the Node side times its peers: warm-up of at least
    `warmup` calls and `warm_ms`, then samples that each average enough
    back-to-back calls to last `sample_ms`."""
    fn = prepare(cmd["shape"], cmd["format"], cmd["mode"], cmd.get("dtype", "float32"))
    try:
        fn()
    except RuntimeError as e:
        # e.g. PyTorch 1.13 has no float16 batch norm on the CPU: no samples, and why.
        return {"samples": [], "error": str(e)}

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


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def loop(shape, steps, threads):
    torch.set_num_threads(threads)
    bn = module_for(shape)
    x = torch.randn(shape)
    dy = torch.randn(shape)
    xg = x.clone().requires_grad_(True)
    rss_before = current_rss_mb()
    times = []
    t0 = time.perf_counter()
    y = dx = None
    for _ in range(steps):
        s = time.perf_counter()
        y = bn(xg)
        y.backward(dy)
        dx = xg.grad
        xg.grad = None
        times.append((time.perf_counter() - s) * 1e3)
    total = (time.perf_counter() - t0) * 1e3
    times.sort()
    print(json.dumps({
        "msPerStep": total / steps, "medianMs": times[len(times) // 2], "p90Ms": times[int(len(times) * 0.9)],
        "rssBeforeMB": rss_before, "peakRssMB": peak_rss_mb(), "version": torch.__version__,
    }))


def serve():
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
    if len(sys.argv) == 5 and sys.argv[1] == "--loop":
        loop([int(d) for d in sys.argv[2].split(",")], int(sys.argv[3]), int(sys.argv[4]))
    else:
        serve()
