"""PyTorch's training backward of batch norm alone, for bench/NOTES.md 36:
aten's native_batch_norm_backward on warm tensors (as the raw addon's
backward in backward_floor.js), and autograd through nn.BatchNorm1d
(forward + backward, and the forward alone, so the backward is their
difference), at 1 and 2 threads; medians of 15 samples of >= 2 ms each.

    /usr/bin/python3 bench/cpu/backward_floor_torch.py [n,c]
"""
import sys
import time

import torch

n, c = (int(v) for v in (sys.argv[1] if len(sys.argv) > 1 else "256,1024").split(","))


def median_us(fn):
    for _ in range(50):
        fn()
    t0 = time.perf_counter()
    for _ in range(50):
        fn()
    k = max(5, int(2e-3 / ((time.perf_counter() - t0) / 50)))
    s = []
    for _ in range(15):
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        s.append((time.perf_counter() - t0) / k * 1e6)
    s.sort()
    return s[7], s[3], s[11]


torch.manual_seed(0)
x = torch.randn(n, c)
dy = torch.randn(n, c)
w = torch.ones(c)
b = torch.zeros(c)
rm = torch.zeros(c)
rv = torch.ones(c)
_, sm, si = torch.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5)
bn = torch.nn.BatchNorm1d(c)
xg = x.clone().requires_grad_(True)


def fwdbwd():
    # As the benchmark's peer (peers/torch_peer.py): dx taken and cleared,
    # the parameters' grads accumulated.
    bn(xg).backward(dy)
    xg.grad = None


print(f"torch {torch.__version__}, {n}x{c} float32")
for threads in (1, 2):
    torch.set_num_threads(threads)
    cases = {
        "native_batch_norm_backward": lambda: torch.ops.aten.native_batch_norm_backward(
            dy, x, w, rm, rv, sm, si, True, 1e-5, [True, True, True]),
        "native_batch_norm (forward)": lambda: torch.native_batch_norm(x, w, b, rm, rv, True, 0.1, 1e-5),
        "nn.BatchNorm1d forward": lambda: bn(xg),
        "nn.BatchNorm1d forward + backward": fwdbwd,
    }
    print(f"-- {threads} thread(s)")
    for name, fn in cases.items():
        med, lo, hi = median_us(fn)
        print(f"  {name:36s} {med:7.1f} us (IQR {lo:.1f}-{hi:.1f})")
