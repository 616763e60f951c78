# One PyTorch rank of `npm run bench:dist`: torch.distributed.all_reduce over
# Gloo on loopback, 3C float64 per channel count C (the payload syncbn's side
# reduces), measured exactly as bench/dist/rank.js measures syncbn: agreed
# iteration counts, medians of timed blocks, one kernel thread.
# Run by bench/dist/run.js under Debian's /usr/bin/python3 (python3-torch);
# argv[1] is the JSON config, RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT the rendezvous.
import json
import statistics
import sys
import time

import torch
import torch.distributed as dist


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method='env://', timeout=__import__('datetime').timedelta(milliseconds=cfg['timeoutMs']))
    torch.manual_seed(1234 + dist.get_rank())

    def agreed_iterations(fn):
        t0 = time.perf_counter()
        for _ in range(3):
            fn()
        each = max((time.perf_counter() - t0) * 1e3 / 3, 1e-3)
        want = torch.tensor([float(min(cfg['maxIters'], max(cfg['minIters'], -(-cfg['sampleMs'] // each))))], dtype=torch.float64)
        dist.all_reduce(want, op=dist.ReduceOp.MAX)
        return int(want.item())

    rows = []
    for c in cfg['channels']:
        dist.barrier()
        t = torch.randn(3 * c, dtype=torch.float64)

        def call():
            dist.all_reduce(t)

        for _ in range(cfg['warmup']):
            call()
        iters = agreed_iterations(call)
        samples = []
        for _ in range(cfg['samples']):
            t0 = time.perf_counter()
            for _ in range(iters):
                call()
            samples.append((time.perf_counter() - t0) * 1e3 / iters)
        rows.append({'channels': c, 'payloadBytes': 3 * c * 8, 'allreduce': {'ms': statistics.median(samples), 'samples': samples, 'iters': iters}})
    rank = dist.get_rank()
    dist.destroy_process_group()
    if rank == 0:
        print(json.dumps({'rank': 0, 'torch': torch.__version__, 'rows': rows}), flush=True)


if __name__ == '__main__':
    main()
