// The edge cases of the statistics math against real PyTorch (fixtures by
// test/golden/generate_edges.py): one value per channel, eps 0 with constant
// channels, a batch split over ranks with an empty one. Every CPU path that
// merges or finalizes statistics is checked against the same torch numbers:
// the fused training forward, welford_stats + welford_finalize, stats +
// gather_stats_with_counts, and SyncBatchNorm over the threads backend (whose
// all-reduce merges the ranks' summaries in native/comm/reduce.h). They all
// run native/kernels/statistics.h's merge and finalize, as the CUDA kernels do;
// the GPU suite (test/gpu/check_cuda.js) checks this fixture on CUDA where a
// GPU is present.
// A non-finite expected value must be matched exactly (NaN by NaN).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as lib from '../../lib';
import { FloatDType, MemoryFormat } from '../../lib';
import { cases, edgeInput, edgeParams, formatsFor, TOLERANCE } from './checks';
import { Enc, expectSame } from './encoded_values';
import { runThreads, Scenario } from '../distributed/support';

interface Stats {
  save_mean: Enc[];
  save_invstd: Enc[];
  running_mean: Enc[];
  running_var: Enc[];
}
interface ForwardCase extends Stats {
  name: string;
  dtype: FloatDType;
  shape: number[];
  eps: number;
  constant: number[];
  y?: Enc[];
  y_summary?: [number, number][];
}
interface SplitCase extends Stats {
  name: string;
  dtype: FloatDType;
  shape: number[];
  eps: number;
  constant: number[];
  sizes: number[];
  ranks: { count: number; mean?: Enc[]; invstd?: Enc[] }[];
  y: Enc[];
}
const fixture: { momentum: number; forward: ForwardCase[]; split: SplitCase[] } = JSON.parse(
  fs.readFileSync(path.join(__dirname, 'fixtures', 'edges.json'), 'utf8'),
);
const momentum = fixture.momentum;

describe('statistics edge cases agree with PyTorch on every CPU path', () => {
  test('the fixture covers one value, eps 0 and split batches in both dtypes', () => {
    expect(fixture.forward).toHaveLength(18);
    expect(fixture.split).toHaveLength(6);
    // What the cases are about, from torch itself: one value gives running_var NaN ...
    expect(fixture.forward.filter((c) => c.name.startsWith('one value')).every((c) => c.running_var.every((v) => v === 'nan'))).toBe(true);
    // ... and a constant channel with eps 0 has invstd 0.
    const eps0 = fixture.forward.filter((c) => c.name.startsWith('eps 0'));
    expect(eps0.every((c) => c.constant.every((ch) => c.save_invstd[ch] === 0))).toBe(true);
  });

  // The fused forward, Welford stats + finalize and stats + gather on every
  // forward case, and the gather over each split case's ranks: checks.js's
  // cases, which the GPU suite runs on CUDA.
  for (const c of cases('edges')) test(c.name, () => c.run(lib, 'cpu'));

  for (const c of fixture.split) {
    const name = `${c.name} ${c.dtype}`;
    const C = c.shape[1];
    const tol = TOLERANCE[c.dtype].rtol;

    for (const fmt of formatsFor(c.shape)) {
      test(`${name} ${fmt}: SyncBatchNorm over threads (summaries merged by the collective)`, async () => {
        const x = Array.from(edgeInput(c.shape, c.constant));
        const [w, b] = edgeParams(lib, C, { dtype: c.dtype, device: 'cpu' });
        const cfg: Scenario = {
          backend: 'threads', name: `edges_${process.pid}_${c.dtype}_${fmt}_${c.name.replace(/\W+/g, '_')}`, timeoutMs: 20000,
          sizes: c.sizes, shape: c.shape, channels: C, dtype: c.dtype, memoryFormat: fmt as MemoryFormat, momentum, eps: c.eps,
          weight: Array.from(w.toArray()), bias: Array.from(b.toArray()), steps: [{ training: true, x, dy: x }],
        };
        const results = await runThreads(cfg);
        const per = c.y.length / c.shape[0];
        let start = 0;
        for (const r of [...results].sort((p, q) => p.rank - q.rank)) {
          const at = `${name} ${fmt} rank ${r.rank}`;
          expect(r.error ?? null).toBeNull();
          const n = c.sizes[r.rank];
          const s = r.steps[0];
          expectSame(s.y, c.y.slice(start * per, (start + n) * per), tol, `${at} output`);
          expectSame(s.runningMean!, c.running_mean, tol, `${at} running mean`);
          expectSame(s.runningVar!, c.running_var, tol, `${at} running var`);
          start += n;
        }
      });
    }
  }
});
