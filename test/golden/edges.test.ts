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
import { F, FloatDType, MemoryFormat, Tensor, tensor } from '../../lib';
import { formatsFor } from './module_steps';
import { dec, Enc, expectSame } from './encoded_values';
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

// float32 ~1e-5 and float64 ~1e-12, relative and absolute, as the other golden
// suites; per-channel sums of up to 32768 outputs 1e-4 / 1e-9 relative.
const TOL = { float32: { value: 1e-5, sum: 1e-4 }, float64: { value: 1e-12, sum: 1e-9 } };
// One value per channel: torch folds (x - mean) * a + b into x * a + (b - mean * a)
// with a = weight / sqrt(eps), terms of |x| * 316 (up to ~2000 here) whose float32
// rounding (~1.2e-4) is what its y differs from the exact bias by.
const ONE_VALUE_Y_TOL = { float32: 3e-4, float64: 1e-12 };

/** The generator's x[k] = ((k * 7919) % 1000) / 100 - 5 + c; constant channels c + 0.5. */
function formula(shape: number[], constant: number[]): Float64Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const c = shape[1];
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const t = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const ch = Math.floor(k / inner) % c;
    t[k] = constant.includes(ch) ? ch + 0.5 : ((k * 7919) % 1000) / 100 - 5 + ch;
  }
  return t;
}

/** weight, bias, running mean, running var as the generator sets them. */
function params(c: number, dtype: FloatDType): Tensor[] {
  const ar = (f: (i: number) => number) => tensor(Array.from({ length: c }, (_, i) => f(i)), [c], { dtype });
  return [ar((i) => i * 0.25 + 0.5), ar((i) => i * 0.5 - 1), ar((i) => i * 0.25), ar((i) => i * 0.5 + 1)];
}

function summary(y: Tensor, c: number): number[][] {
  const v = y.toArray();
  const inner = y.shape.slice(2).reduce((a, b) => a * b, 1);
  const out = Array.from({ length: c }, () => [0, 0]);
  for (let k = 0; k < v.length; k++) {
    const s = out[Math.floor(k / inner) % c];
    s[0] += v[k];
    s[1] += Math.abs(v[k]);
  }
  return out;
}

function expectStats(got: { mean: Tensor; invstd: Tensor; rm: Tensor; rv: Tensor }, c: Stats, tol: number, at: string): void {
  expectSame(got.mean.toArray(), c.save_mean, tol, `${at} mean`);
  expectSame(got.invstd.toArray(), c.save_invstd, tol, `${at} invstd`);
  expectSame(got.rm.toArray(), c.running_mean, tol, `${at} running mean`);
  expectSame(got.rv.toArray(), c.running_var, tol, `${at} running var`);
}

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

  for (const c of fixture.forward) {
    for (const fmt of formatsFor(c.shape)) {
      const name = `${c.name} ${c.dtype} ${fmt}`;
      const C = c.shape[1];
      const tol = TOL[c.dtype];
      const x = () => tensor(formula(c.shape, c.constant), c.shape, { dtype: c.dtype, memoryFormat: fmt as MemoryFormat });

      test(`${name}: fused forward_training`, () => {
        const [w, b, rm, rv] = params(C, c.dtype);
        const r = F.nativeBatchNorm(x(), w, b, rm, rv, true, momentum, c.eps);
        expectStats({ mean: r.saveMean, invstd: r.saveInvstd, rm, rv }, c, tol.value, name);
        if (c.y) {
          const yTol = c.name.startsWith('one value') ? ONE_VALUE_Y_TOL[c.dtype] : tol.value;
          expectSame(r.output.toArray(), c.y, yTol, `${name} output`);
        } else {
          const s = summary(r.output, C);
          for (let ch = 0; ch < C; ch++) {
            // The sum cancels (a channel of bias 0 sums to about 0): its error is relative to sum |y|.
            const [sum, abs] = c.y_summary![ch];
            expectSame([s[ch][1]], [abs], tol.sum, `${name} channel ${ch} output sum |y|`);
            expectSame([s[ch][0] / (1 + abs)], [sum / (1 + abs)], tol.sum, `${name} channel ${ch} output sum / (1 + sum |y|)`);
          }
        }
      });

      test(`${name}: welford_stats + welford_finalize`, () => {
        const [, , rm, rv] = params(C, c.dtype);
        const sum = F.batchNormWelfordStats(x());
        const r = F.batchNormWelfordFinalize(sum, rm, rv, { eps: c.eps, momentum, dtype: c.dtype });
        expectStats({ ...r, rm, rv }, c, tol.value, name);
      });

      test(`${name}: stats + gather_stats_with_counts`, () => {
        const [, , rm, rv] = params(C, c.dtype);
        const s = F.batchNormStats(x(), c.eps);
        const count = c.shape.reduce((a, v) => a * v, 1) / C;
        const r = F.batchNormGatherStatsWithCounts(tensor(s.mean.toArray(), [1, C], { dtype: c.dtype }), tensor(s.invstd.toArray(), [1, C], { dtype: c.dtype }), rm, rv, { momentum, eps: c.eps, counts: [count] });
        expectStats({ ...r, rm, rv }, c, tol.value, name);
      });
    }
  }

  for (const c of fixture.split) {
    const name = `${c.name} ${c.dtype}`;
    const C = c.shape[1];
    const tol = TOL[c.dtype].value;

    test(`${name}: gather_stats_with_counts over the ranks (the empty rank's NaN statistics unread)`, () => {
      // A fresh module's running stats, as the generator's.
      const rm = tensor(new Array(C).fill(0), [C], { dtype: c.dtype });
      const rv = tensor(new Array(C).fill(1), [C], { dtype: c.dtype });
      const pick = (k: 'mean' | 'invstd') => c.ranks.flatMap((r) => (r.count > 0 ? r[k]!.map(dec) : new Array(C).fill(NaN)));
      const world = c.ranks.length;
      const r = F.batchNormGatherStatsWithCounts(tensor(pick('mean'), [world, C], { dtype: c.dtype }),
        tensor(pick('invstd'), [world, C], { dtype: c.dtype }), rm, rv, { momentum, eps: c.eps, counts: c.ranks.map((r) => r.count) });
      expectStats({ ...r, rm, rv }, c, tol, name);
    });

    for (const fmt of formatsFor(c.shape)) {
      test(`${name} ${fmt}: SyncBatchNorm over threads (summaries merged by the collective)`, async () => {
        const x = Array.from(formula(c.shape, c.constant));
        const [w, b] = params(C, c.dtype);
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
