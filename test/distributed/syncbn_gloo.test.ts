// SyncBatchNorm across processes over Gloo (TCP), started by syncbn-run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { scenario, runGloo, runNode, expectMatchesReference, expectEmptyWorldStep, freePort, WORKER, LAUNCHER } from './support';
import { native } from '../../lib/native';
import { requireOrSkip } from '../support/require';
import { TOLERANCE } from '../support/assert_close';
import { scratchDirs } from '../support/scratch';

const F64 = { rtol: 1e-9, atol: 1e-9 };
const tempDir = scratchDirs();
const gloo = requireOrSkip('gloo', native.features.gloo, `${native.features.file} was built without Gloo`);

gloo('SyncBatchNorm over gloo processes', () => {
  test('2 processes (env://), uneven batches, eps 1e-3, momentum 0.3', async () => {
    const cfg = scenario({ backend: 'gloo', timeoutMs: 20000, sizes: [3, 5], tail: [2, 2], channels: 3, dtype: 'float64', eps: 1e-3, momentum: 0.3, train: 3, evalSteps: 1, seed: 21 });
    const { run, results } = await runGloo(cfg);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expectMatchesReference(cfg, results, F64);
  });

  test('3 processes (tcp://), channels last, one rank with an empty batch', async () => {
    const port = await freePort();
    const cfg = scenario({ backend: 'gloo', initMethod: `tcp://127.0.0.1:${port}`, timeoutMs: 20000, sizes: [4, 0, 3], tail: [3, 2], channels: 4, dtype: 'float64', memoryFormat: 'channelsLast', momentum: null, train: 3, evalSteps: 1, seed: 22 });
    const { run, results } = await runGloo(cfg);
    expect(run.code).toBe(0);
    expectMatchesReference(cfg, results, F64);
  });

  test('2 processes, every rank with an empty batch at step 1, momentum null (PyTorch 2\'s empty-input rule)', async () => {
    const cfg = scenario({ backend: 'gloo', timeoutMs: 20000, sizes: [3, 2], tail: [2, 2], channels: 2, dtype: 'float64', momentum: null, train: 2, evalSteps: 0, seed: 27, emptyStep: 1 });
    const { run, results } = await runGloo(cfg);
    expect(run.code).toBe(0);
    expectMatchesReference({ ...cfg, steps: cfg.steps.slice(0, 1) }, results.map((r) => ({ ...r, steps: r.steps.slice(0, 1) })), F64);
    expectEmptyWorldStep(cfg, results, 1);
  });

  test('2 processes, a bfloat16 layer (all in bfloat16), channels last', async () => {
    const cfg = scenario({ backend: 'gloo', timeoutMs: 20000, sizes: [3, 2], tail: [3, 2], channels: 4, dtype: 'bfloat16', memoryFormat: 'channelsLast', momentum: 0.1, train: 2, evalSteps: 1, seed: 28 });
    const { run, results } = await runGloo(cfg);
    expect(run.code).toBe(0);
    expectMatchesReference(cfg, results, TOLERANCE.bfloat16);
  });

  test('3 processes (file://), float32', async () => {
    const file = path.join(tempDir('syncbn-file-'), 'init');
    const cfg = scenario({ backend: 'gloo', initMethod: `file://${file}`, timeoutMs: 20000, sizes: [2, 3, 2], tail: [4], channels: 2, dtype: 'float32', momentum: 0.1, train: 2, evalSteps: 1, seed: 23 });
    const { run, results } = await runGloo(cfg);
    expect(run.code).toBe(0);
    expectMatchesReference(cfg, results, { rtol: 1e-5, atol: 1e-5 });
  });

  test('subgroups sync only within themselves', async () => {
    const cfg = scenario({ backend: 'gloo', timeoutMs: 20000, sizes: [2, 3, 4], tail: [], channels: 3, dtype: 'float64', momentum: 0.1, train: 2, evalSteps: 0, seed: 24, subgroups: [[0, 1], [2]] });
    const { run, results } = await runGloo(cfg);
    expect(run.code).toBe(0);
    expectMatchesReference(cfg, results.slice(0, 2), F64, [0, 1]);
    expectMatchesReference(cfg, results.slice(2), F64, [2]);
  });

  test('divergent channel counts fail cleanly on every rank', async () => {
    const cfg = scenario({ backend: 'gloo', timeoutMs: 20000, sizes: [2, 2], tail: [2], channels: 3, dtype: 'float64', momentum: 0.1, train: 1, evalSteps: 0, seed: 25, diverge: { rank: 1, step: 0 }, otherChannels: 6 });
    const { run, results } = await runGloo(cfg);
    expect(run.code).not.toBe(0);
    expect(results).toHaveLength(2);
    for (const r of results) expect(r.error).toMatch(/ranks \[0\] are at 'SyncBatchNorm#\d+' forward \(3 channels, sync #1\); ranks \[1\] are at 'SyncBatchNorm#\d+' forward \(6 channels, sync #1\)/);
  });

  test('tensors of different sizes on different ranks fail cleanly, not with an abort', async () => {
    const script = path.join(tempDir('syncbn-size-'), 'sizes.js');
    fs.writeFileSync(script, `const { distributed: dist, zeros } = require(${JSON.stringify(path.resolve(__dirname, '../../dist'))});
(async () => {
  await dist.initProcessGroup({ backend: 'gloo', timeoutMs: 5000 });
  try { dist.allReduce(zeros([dist.getRank() === 0 ? 3 : 5])); } catch (e) { console.log(e.message); }
  dist.barrier();
})();
`);
    const r = await runNode([LAUNCHER, '--nproc-per-node', '2', '--master-port', String(await freePort()), script]);
    expect(r.code).toBe(0);
    for (const rank of [0, 1]) {
      expect(r.stdout).toContain(`[rank ${rank}] allReduce: ranks of world diverged: ranks [0] are at all_reduce of 3 float32 (sum) in a group of 2; ranks [1] are at all_reduce of 5 float32 (sum) in a group of 2`);
    }
  });

  test('a killed rank makes the others fail within the timeout', async () => {
    const dir = tempDir('syncbn-kill-');
    const cfg = scenario({ backend: 'gloo', timeoutMs: 2000, sizes: [2, 2, 2], tail: [], channels: 3, dtype: 'float64', momentum: 0.1, train: 3, evalSteps: 0, seed: 26, die: { rank: 2, step: 1 } });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
    const port = String(await freePort());
    // Started by hand, not by syncbn-run, which would stop the survivors itself.
    const runs = await Promise.all([0, 1, 2].map((rank) =>
      runNode([WORKER, path.join(dir, 'config.json'), dir], { RANK: String(rank), WORLD_SIZE: '3', MASTER_ADDR: '127.0.0.1', MASTER_PORT: port }, 30000)));
    expect(runs[2].code).toBe(3);
    for (const r of runs.slice(0, 2)) {
      expect(r.code).toBe(1);
      expect(r.ms).toBeLessThan(15000);
      expect(r.stderr).toMatch(/gloo all_gather \(rank \d of 3, timeout 2000 ms\) failed/);
    }
  });
});

describe('syncbn-run', () => {
  test('sets the rank environment and prefixes output', async () => {
    const script = path.join(tempDir('syncbn-run-'), 'env.js');
    fs.writeFileSync(script, "const e = process.env; console.log([e.RANK, e.LOCAL_RANK, e.WORLD_SIZE, e.MASTER_ADDR, e.MASTER_PORT, process.argv[2]].join(' '));\n");
    const r = await runNode([LAUNCHER, '--nproc-per-node', '3', '--master-port', '29777', script, 'arg']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').sort();
    expect(lines).toEqual(['[rank 0] 0 0 3 127.0.0.1 29777 arg', '[rank 1] 1 1 3 127.0.0.1 29777 arg', '[rank 2] 2 2 3 127.0.0.1 29777 arg']);
  });

  test('multi-node ranks come from --node-rank', async () => {
    const script = path.join(tempDir('syncbn-run-'), 'env.js');
    fs.writeFileSync(script, 'console.log(process.env.RANK, process.env.WORLD_SIZE);\n');
    const r = await runNode([LAUNCHER, '--nnodes', '2', '--node-rank', '1', '--nproc-per-node', '2', '--master-addr', 'node0', script], { SYNCBN_SECRET: 'shared-by-both-nodes' });
    expect(r.stdout.trim().split('\n').sort()).toEqual(['[rank 2] 2 4', '[rank 3] 3 4']);
  });

  test('a multi-node job without a shared SYNCBN_SECRET is refused before any rank starts', async () => {
    const script = path.join(tempDir('syncbn-run-'), 'env.js');
    fs.writeFileSync(script, "console.log('started');\n");
    const r = await runNode([LAUNCHER, '--nnodes', '2', '--node-rank', '0', '--nproc-per-node', '1', script], { SYNCBN_SECRET: '' });
    expect(r.code).toBe(2);
    expect(r.stdout).not.toContain('started');
    expect(r.stderr).toMatch(/--nnodes 2 needs SYNCBN_SECRET set to the same value on every node/);
  });

  test('a failing rank stops the others and the launcher exits non-zero', async () => {
    const script = path.join(tempDir('syncbn-run-'), 'fail.js');
    fs.writeFileSync(script, "if (process.env.RANK === '1') { console.error('boom'); process.exit(7); } setInterval(() => {}, 1000);\n");
    const r = await runNode([LAUNCHER, '--nproc-per-node', '3', script], {}, 20000);
    expect(r.code).toBe(7);
    expect(r.stderr).toContain('[rank 1] boom');
    expect(r.stderr).toContain('syncbn-run: rank 1 exited with code 7; stopping the other ranks');
    expect(r.ms).toBeLessThan(10000);
  });

  test('bad arguments are refused with usage', async () => {
    const r = await runNode([LAUNCHER, '--nproc-per-node', 'x', 'a.js']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--nproc-per-node must be an integer >= 1, got 'x'/);
  });
});
