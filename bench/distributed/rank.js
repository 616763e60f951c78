// One syncbn rank of `npm run bench:dist`: a process (gloo; RANK,
// WORLD_SIZE, MASTER_ADDR, MASTER_PORT in the environment) or a worker thread
// (threads; its config in workerData). Every rank runs the same sequence of
// collectives; rank 0 reports. Per channel count C:
// - allreduce: dist.allReduce of 3C float64 (a C-channel layer's forward
//   payload: count, mean, m2 per channel), the payload PyTorch's side reduces;
// - syncbn: one SyncBatchNorm(C) forward + backward over [batch, C, s, s]
//   float32, and BatchNorm2d(C) on the same local batch; the overhead is the
//   difference (the sync: two collectives, and the split kernels around them),
//   and the part of it spent inside the two collectives.
// Iteration counts are agreed by all ranks (the max of their calibrations), so
// the ranks stay in step; a sample is the mean of one timed block, the result
// the median of the samples.
'use strict';

const path = require('node:path');
const { isMainThread, parentPort, workerData } = require('node:worker_threads');

const cfg = isMainThread ? JSON.parse(process.argv[2]) : workerData;
const { nn, randn, zeros, manualSeed, setNumThreads, distributed: dist } = require(path.resolve(cfg.dist));

const now = () => Number(process.hrtime.bigint()) / 1e6;

// Time inside SyncBatchNorm's two syncs (the group's collective calls), so
// the overhead splits into waiting on the wire and the split kernels around it.
const inSync = { ms: 0 };
const syncAllReduce = dist.ProcessGroup.prototype.syncAllReduce;
dist.ProcessGroup.prototype.syncAllReduce = function timed(...args) {
  const t0 = now();
  try {
    return syncAllReduce.apply(this, args);
  } finally {
    inSync.ms += now() - t0;
  }
};

/** An iteration count every rank agrees on: enough for `cfg.sampleMs` on the slowest rank. */
function agreedIterations(fn) {
  const t0 = now();
  const probe = 3;
  for (let i = 0; i < probe; i++) fn();
  const each = Math.max((now() - t0) / probe, 1e-3);
  const want = zeros([1], { dtype: 'float64' });
  want.data[0] = Math.min(cfg.maxIters, Math.max(cfg.minIters, Math.ceil(cfg.sampleMs / each)));
  dist.allReduce(want, { op: 'max' });
  return want.data[0];
}

function sample(fn, iters) {
  const t0 = now();
  for (let i = 0; i < iters; i++) fn();
  return (now() - t0) / iters;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

function measureAllReduce(C) {
  const t = randn([3 * C], { dtype: 'float64' });
  const call = () => dist.allReduce(t);
  for (let i = 0; i < cfg.warmup; i++) call();
  const iters = agreedIterations(call);
  const samples = [];
  for (let r = 0; r < cfg.samples; r++) samples.push(sample(call, iters));
  return { ms: median(samples), samples, iters };
}

function measureSyncBatchNorm(C) {
  const shape = [cfg.batch, C, cfg.spatial, cfg.spatial];
  const x = randn(shape);
  const dy = randn(shape);
  const plain = new nn.BatchNorm2d(C);
  const sync = new nn.SyncBatchNorm(C);
  if (!sync.checkDivergence) throw new Error('bench:dist measures SyncBatchNorm with its divergence check on (the default)');
  const step = (layer) => () => {
    layer.forward(x);
    layer.backward(dy);
  };
  const runPlain = step(plain);
  const runSync = step(sync);
  for (let i = 0; i < cfg.warmup; i++) {
    runPlain();
    runSync();
  }
  const iters = agreedIterations(runSync);
  // Alternating blocks, so drift on a shared machine hits both alike.
  const plainMs = [];
  const syncMs = [];
  const overheadMs = [];
  const collectiveMs = [];
  for (let r = 0; r < cfg.samples; r++) {
    const p = sample(runPlain, iters);
    inSync.ms = 0;
    const s = sample(runSync, iters);
    collectiveMs.push(inSync.ms / iters);
    plainMs.push(p);
    syncMs.push(s);
    overheadMs.push(s - p);
  }
  return {
    shape, plainMs: median(plainMs), syncMs: median(syncMs), overheadMs: median(overheadMs), collectiveMs: median(collectiveMs),
    samples: { plainMs, syncMs, collectiveMs }, iters,
  };
}

async function main(rankOverride) {
  const opts = { backend: cfg.backend, timeoutMs: cfg.timeoutMs };
  if (cfg.backend === 'threads') Object.assign(opts, { rank: rankOverride, worldSize: cfg.world, initMethod: `local://${cfg.name}` });
  await dist.initProcessGroup(opts);
  setNumThreads(1);
  manualSeed(1234 + dist.getRank());
  const rows = [];
  for (const C of cfg.channels) {
    dist.barrier();
    const allreduce = measureAllReduce(C);
    dist.barrier();
    const syncbn = measureSyncBatchNorm(C);
    rows.push({ channels: C, payloadBytes: 3 * C * 8, allreduce, syncbn });
  }
  const rank = dist.getRank();
  await dist.destroyProcessGroup();
  return { rank, rows };
}

if (isMainThread) {
  main().then(
    (r) => {
      if (r.rank === 0) process.stdout.write(`${JSON.stringify(r)}\n`);
    },
    (e) => {
      process.stderr.write(`bench:dist rank ${process.env.RANK}: ${e.stack || e}\n`);
      process.exit(1);
    },
  );
} else {
  main(cfg.rank).then((r) => parentPort.postMessage(r), (e) => parentPort.postMessage({ error: String(e.stack || e) }));
}
