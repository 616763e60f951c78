# PyTorch's Gloo all_reduce of 192 float64 between 2 ranks, as bench/collective_cost.js measures ours.
import os, sys, time, torch, torch.distributed as d, torch.multiprocessing as mp
def run(r):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT='29641')
    torch.set_num_threads(1)
    d.init_process_group('gloo', rank=r, world_size=2)
    t = torch.ones(192, dtype=torch.float64)
    for _ in range(500): d.all_reduce(t)
    res = []
    for _ in range(5):
        s = time.perf_counter()
        for _ in range(2000): d.all_reduce(t)
        res.append((time.perf_counter() - s) / 2000 * 1e6)
    res.sort()
    if r == 0: print(f"torch gloo all_reduce 192 float64 world 2: median {res[2]:.1f} us (min {res[0]:.1f})")
if __name__ == '__main__': mp.spawn(run, nprocs=2)
