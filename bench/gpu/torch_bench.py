#!/usr/bin/env python3
"""PyTorch's side of the GPU benchmark: torch.nn.functional.batch_norm
(cuDNN or native, whichever PyTorch picks) timed with CUDA events, the same
cases as bench.js, and a device-to-device copy. Writes JSON to argv[1]."""
import json
import os
import sys

import torch
import torch.nn.functional as F

spec = json.load(open(os.path.join(os.path.dirname(__file__), "cases.json")))
DT = {"float32": torch.float32, "float16": torch.float16}


def time(fn):
    for _ in range(spec["warmup"]):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(spec["reps"]):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b))
    out.sort()
    return out[len(out) // 2]


rows = []
for shape in spec["shapes"]:
    nchw_only = any(s == shape for s in spec["nchwOnly"])
    formats = ["contiguous", "channelsLast"] if len(shape) >= 3 and not nchw_only else ["contiguous"]
    for dtype in spec["dtypes"]:
        for fmt in formats:
            x = torch.randn(shape, device="cuda", dtype=DT[dtype])
            dy = torch.randn(shape, device="cuda", dtype=DT[dtype])
            if fmt == "channelsLast":
                mf = torch.channels_last if len(shape) == 4 else torch.channels_last_3d
                x, dy = x.contiguous(memory_format=mf), dy.contiguous(memory_format=mf)
            c = shape[1]
            w = torch.ones(c, device="cuda", requires_grad=True)
            b = torch.zeros(c, device="cuda", requires_grad=True)
            rm, rv = torch.zeros(c, device="cuda"), torch.ones(c, device="cuda")
            xg = x.detach().clone().requires_grad_(True)
            y = F.batch_norm(xg, rm, rv, w, b, True, 0.1, 1e-5)
            n = x.numel()
            dst = torch.empty_like(x)
            copy_ms = time(lambda: dst.copy_(x))
            copy_gbs = 2 * n * x.element_size() / (copy_ms / 1e3) / 1e9

            def train_fwd():
                with torch.no_grad():
                    F.batch_norm(x, rm, rv, w, b, True, 0.1, 1e-5)

            def infer():
                with torch.no_grad():
                    F.batch_norm(x, rm, rv, w, b, False, 0.1, 1e-5)

            def backward():
                torch.autograd.grad(y, (xg, w, b), dy, retain_graph=True)

            for mode, fn in (("train-fwd", train_fwd), ("infer", infer), ("backward", backward)):
                ms = time(fn)
                passes = 3 if mode == "backward" else 2
                gbs = passes * n * x.element_size() / (ms / 1e3) / 1e9
                rows.append({"shape": shape, "dtype": dtype, "format": fmt, "mode": mode, "ms": ms, "gbs": gbs,
                             "copyGBs": copy_gbs, "ofCopy": gbs / copy_gbs})
                print(f"torch {'x'.join(map(str, shape))} {dtype} {fmt} {mode}: {ms:.3f} ms", file=sys.stderr)

json.dump({"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
           "cudnn": torch.backends.cudnn.version(), "rows": rows}, open(sys.argv[1], "w"), indent=1)
