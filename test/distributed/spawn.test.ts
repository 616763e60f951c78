// dist.spawn (threads and gloo), broadcastParameters, allReduceGradients'
// op, and the data-parallel example on worker threads.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { distributed as dist, load } from '../../lib';
import { native } from '../../lib/native';
import { requireOrSkip } from '../support/require';
import { ROOT } from './support';

const WORKER = path.join(__dirname, 'workers', 'spawn_worker.js');
const gloo = requireOrSkip('gloo', native.features.gloo, `${native.features.file} was built without Gloo`);

interface Seen {
  env: { RANK: string; WORLD_SIZE: string; LOCAL_RANK: string };
  rank: number;
  world: number;
  afterBroadcast: { weight: number[]; runningMean: number[]; counter: number; extraBias: number[]; same: boolean };
  grads: { sum: number[][]; avg: number[][] };
}

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'syncbn-spawn-'));
}

async function runOk(backend: 'threads' | 'gloo', nprocs: number): Promise<Seen[]> {
  const out = tmpdir();
  try {
    await dist.spawn(WORKER, { nprocs, backend, args: ['ok', out, backend] });
    return Array.from({ length: nprocs }, (_, r) => JSON.parse(fs.readFileSync(path.join(out, `${r}.json`), 'utf8')) as Seen);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
}

function expectAgreement(seen: Seen[], nprocs: number): void {
  const sum = (nprocs * (nprocs + 1)) / 2;
  seen.forEach((s, r) => {
    expect(s.env).toEqual({ RANK: String(r), WORLD_SIZE: String(nprocs), LOCAL_RANK: String(r) });
    expect([s.rank, s.world]).toEqual([r, nprocs]);
    // Rank 1's values everywhere, in place.
    expect(s.afterBroadcast).toEqual({ weight: [2, 2, 2], runningMean: [10, 10, 10], counter: 101, extraBias: [1, 1], same: true });
    expect(s.grads.sum).toEqual([[sum, sum, sum], [sum, sum, sum], [sum, sum], [sum, sum]]);
    expect(s.grads.avg.flat()).toEqual(new Array(10).fill(sum / nprocs));
  });
}

describe('dist.spawn on worker threads', () => {
  test('3 threads: the rendezvous is set, broadcastParameters copies rank 1, allReduceGradients sums or averages', async () => {
    expectAgreement(await runOk('threads', 3), 3);
  });

  test("a worker's error surfaces in the caller, naming its rank", async () => {
    const out = tmpdir();
    const run = dist.spawn(WORKER, { nprocs: 3, backend: 'threads', args: ['throw', out, 'threads'] });
    await expect(run).rejects.toThrow(/spawn: rank 1 of 3 \(threads\) failed: rank 1 gave up on purpose/);
    await run.catch((e: dist.SpawnError) => {
      expect(e).toBeInstanceOf(dist.SpawnError);
      expect(e.rank).toBe(1);
      expect((e.cause as Error).message).toBe('rank 1 gave up on purpose');
    });
    fs.rmSync(out, { recursive: true, force: true });
  });

  test('ranks left in the rendezvous time out and exit without bringing the process down (in a process of its own)', () => {
    const code = `const { distributed: dist } = require(${JSON.stringify(path.join(ROOT, 'dist'))});
      (async () => {
        for (let i = 0; i < 3; i++) {
          await dist.spawn(${JSON.stringify(WORKER)}, { nprocs: 3, args: ['straggle', '', 'threads'] }).catch((e) => console.log(e.rank));
          await new Promise((r) => setTimeout(r, 1500));
        }
        console.log('survived');
      })();`;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 60000 });
    expect([r.status, r.signal]).toEqual([0, null]);
    expect(r.stdout.trim().split('\n')).toEqual(['1', '1', '1', 'survived']);
  });

  test('bad options are refused before anything starts', async () => {
    await expect(dist.spawn(WORKER, { nprocs: 0 })).rejects.toThrow(/nprocs must be an integer >= 1/);
    await expect(dist.spawn(WORKER, { nprocs: 2, backend: 'nccl' as never })).rejects.toThrow(/backend must be 'threads' or 'gloo'/);
    await expect(dist.spawn(path.join(ROOT, 'nope.js'), { nprocs: 1 })).rejects.toThrow(/nope\.js does not exist/);
  });
});

gloo('dist.spawn of gloo processes', () => {
  test('2 processes: the same agreement as threads', async () => {
    expectAgreement(await runOk('gloo', 2), 2);
  });

  test("a process's failure surfaces with its stderr; the others are stopped", async () => {
    const out = tmpdir();
    await expect(dist.spawn(WORKER, { nprocs: 3, backend: 'gloo', args: ['throw', out, 'gloo'] })).rejects.toThrow(
      /spawn: rank 1 of 3 \(gloo\) failed: exited with code 1; its stderr ended with:\nrank 1 gave up on purpose/);
    await expect(dist.spawn(WORKER, { nprocs: 3, backend: 'gloo', args: ['exit', out, 'gloo'] })).rejects.toThrow(/rank 2 of 3 \(gloo\) failed: exited with code 3/);
    fs.rmSync(out, { recursive: true, force: true });
  });
});

describe('examples/data_parallel_threads.js', () => {
  test('4 SynchronizedBatchNorm replicas on threads learn, agree, and save a checkpoint', () => {
    const out = tmpdir();
    const ckpt = path.join(out, 'dp.pt');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'examples', 'data_parallel_threads.js'), '4', ckpt], { encoding: 'utf8', timeout: 120000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/replicas identical \(516 values\)/);
    const acc = Number(/accuracy over the last 10 steps: ([\d.]+)%/.exec(r.stdout)![1]);
    expect(acc).toBeGreaterThan(85);
    const sd = load(ckpt);
    expect(Object.keys(sd)).toEqual(['fc1.weight', 'fc1.bias', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var', 'bn.num_batches_tracked', 'fc2.weight', 'fc2.bias']);
    expect(sd['bn.num_batches_tracked'].item()).toBe(60);
    fs.rmSync(out, { recursive: true, force: true });
  });
});
