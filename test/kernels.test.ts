// Shapes large enough to take the parallel paths (blocks across threads,
// rows with per-thread partial sums), checked against a float64 JavaScript
// reference, in both memory formats and with 1 and 2 threads.
import { F, tensor, randn, manualSeed, setNumThreads, getNumThreads, MemoryFormat, Tensor } from '../lib';
import { readFileSync } from 'node:fs';
import { assertClose } from './support/assert_close';

function reference(x: ArrayLike<number>, shape: number[], dy: ArrayLike<number>, weight: ArrayLike<number>, eps: number) {
  const [n, c] = shape;
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const count = n * inner;
  const y = new Float64Array(x.length);
  const dx = new Float64Array(x.length);
  const gw = new Float64Array(c);
  const gb = new Float64Array(c);
  const mean = new Float64Array(c);
  const varU = new Float64Array(c);
  for (let ch = 0; ch < c; ch++) {
    const idx = (b: number, i: number) => (b * c + ch) * inner + i;
    let s = 0;
    for (let b = 0; b < n; b++) for (let i = 0; i < inner; i++) s += x[idx(b, i)];
    const m = s / count;
    let ss = 0;
    for (let b = 0; b < n; b++) for (let i = 0; i < inner; i++) ss += (x[idx(b, i)] - m) ** 2;
    const is = 1 / Math.sqrt(ss / count + eps);
    let sdy = 0;
    let sdyx = 0;
    for (let b = 0; b < n; b++) {
      for (let i = 0; i < inner; i++) {
        const k = idx(b, i);
        y[k] = (x[k] - m) * is * weight[ch];
        sdy += dy[k];
        sdyx += dy[k] * (x[k] - m);
      }
    }
    for (let b = 0; b < n; b++) {
      for (let i = 0; i < inner; i++) {
        const k = idx(b, i);
        dx[k] = (dy[k] - sdy / count - ((x[k] - m) * sdyx * is * is) / count) * is * weight[ch];
      }
    }
    gw[ch] = sdyx * is;
    gb[ch] = sdy;
    mean[ch] = m;
    varU[ch] = ss / (count - 1);
  }
  return { y, dx, gw, gb, mean, varU };
}

const SHAPES: Array<[string, number[]]> = [
  ['many channels NCHW', [8, 64, 12, 12]],
  ['few channels, many pixels', [4, 2, 96, 96]],
  ['(N, C) rows', [4096, 24]],
  ['5D', [4, 6, 8, 8, 8]],
  // Run lengths and row counts that leave remainders after every unrolled step.
  ['odd sizes', [5, 33, 7, 41]],
  ['wide rows, odd row count', [203, 520]],
  // Too few rows for a tile per thread: threads take panels of channels
  // (the last one narrower) instead of row ranges.
  ['rows 4 KiB apart, in panels', [37, 1024]],
  ['few rows, in panels', [40, 1000]],
  ['few pixels, in panels', [2, 1100, 4, 4]],
  // A plane longer than one statistics chunk, split across chunks.
  ['long runs', [2, 2, 200, 200]],
];

// A training forward at `threads` threads into fresh running stats (mean 0,
// var 1) with momentum 1, so that they end up as the batch's own.
function trainAt(threads: number, x: Tensor, weight: Tensor | null, bias: Tensor | null) {
  setNumThreads(threads);
  const C = x.shape[1];
  const rm = tensor(new Float32Array(C), [C]);
  const rv = tensor(new Float32Array(C).fill(1), [C]);
  return { ...F.nativeBatchNorm(x, weight, bias, rm, rv, true, 1, 1e-5), rm, rv };
}

function expectRunningStats(rm: Tensor, rv: Tensor, ref: { mean: ArrayLike<number>; varU: ArrayLike<number> }, t: number) {
  assertClose(rm, ref.mean, { rtol: 1e-6, atol: 0 }, `${t} threads running mean`);
  assertClose(rv, ref.varU, { rtol: 1e-5, atol: 0 }, `${t} threads running var`);
}

describe('CPU kernels on large shapes', () => {
  const threads = getNumThreads();
  afterAll(() => setNumThreads(threads));

  for (const [name, shape] of SHAPES) {
    const formats: MemoryFormat[] = shape.length >= 3 ? ['contiguous', 'channelsLast'] : ['contiguous'];
    for (const fmt of formats) {
      test(`${name} ${JSON.stringify(shape)} ${fmt}`, () => {
        manualSeed(shape.length * 1000 + shape[1]);
        const C = shape[1];
        // An offset mean 100x the spread: a naive sum of squares would lose the variance.
        const x64 = randn(shape, { dtype: 'float64' }).toArray().map((v) => 300 + 3 * v);
        const dy64 = randn(shape, { dtype: 'float64' }).toArray();
        const w64 = randn([C], { dtype: 'float64' }).toArray();
        const ref = reference(x64, shape, dy64, w64, 1e-5);
        const results: Float32Array[] = [];
        // 3 threads: row ranges, channel shares and panels that do not split evenly,
        // which every pass of a fused kernel must still take alike (plan.h).
        for (const t of [1, 2, 3]) {
          const x = tensor(x64, shape, { dtype: 'float32', memoryFormat: fmt });
          const dy = tensor(dy64, shape, { dtype: 'float32', memoryFormat: fmt });
          const weight = tensor(w64, [C], { dtype: 'float32' });
          const fwd = trainAt(t, x, weight, null);
          const g = F.batchNormBackward(dy, x, { weight, saveMean: fwd.saveMean, saveInvstd: fwd.saveInvstd, training: true });
          // float32 inputs: the output carries the input's rounding (|x| ~ 300, 2^-24 relative).
          const tol = { rtol: 1e-4, atol: 1e-4 };
          assertClose(fwd.output, ref.y, tol, `${t} threads output`);
          assertClose(g.gradInput as Tensor, ref.dx, tol, `${t} threads grad input`);
          assertClose(g.gradWeight as Tensor, ref.gw, { rtol: 1e-4, atol: 1e-3 }, `${t} threads grad weight`);
          assertClose(g.gradBias as Tensor, ref.gb, { rtol: 1e-5, atol: 1e-3 }, `${t} threads grad bias`);
          expectRunningStats(fwd.rm, fwd.rv, ref, t);
          results.push(fwd.output.toArray() as Float32Array);
        }
        // Thread count changes only the order of double-precision partial sums.
        for (const k of [1, 2]) assertClose(results[k], Array.from(results[0]), { rtol: 1e-6, atol: 1e-6 }, `output with 1 vs ${k + 1} threads`);
      });
    }
  }

  // Outputs beyond a quarter of the last-level cache (half, for inference)
  // are written with streaming stores over whole cache lines, cut wherever
  // lines fall, not where rows do: C = 20 puts channel boundaries inside the
  // eight-lane vectors, C = 8 is the smallest C that streams. Sized from the
  // sysfs entry the kernels read. (Jest runs code in a vm context, where
  // every global lookup such as Math.floor is slow: the loops here over
  // millions of values avoid them, and the data come from a local generator.)
  const l3 = (() => {
    try {
      const kib = parseInt(readFileSync('/sys/devices/system/cpu/cpu0/cache/index3/size', 'utf8'), 10);
      return kib > 0 ? kib * 1024 : 32 << 20;
    } catch {
      return 32 << 20;
    }
  })();
  for (const C of [8, 20]) {
    for (const fmt of ['contiguous', 'channelsLast'] as MemoryFormat[]) {
      test(`streamed outputs, C = ${C}, ${fmt}`, () => {
        const plane = 24 * 24;
        const N = Math.ceil((0.6 * l3) / (4 * C * plane));
        const shape = [N, C, 24, 24];
        const numel = N * C * plane;
        // Uniform in [-1, 1) from a 32-bit LCG; channel[i] is the channel of logical index i.
        let state = C;
        const next = () => ((state = (state * 1664525 + 1013904223) >>> 0) / 2147483648) - 1;
        const x64 = new Float64Array(numel);
        const dy64 = new Float64Array(numel);
        const channel = new Int32Array(numel);
        for (let i = 0, c = 0, k = 0; i < numel; i++) {
          x64[i] = 5 + 3 * next() + 0.1 * c;
          dy64[i] = next();
          channel[i] = c;
          if (++k === plane) {
            k = 0;
            c = c + 1 === C ? 0 : c + 1;
          }
        }
        const w64 = Float64Array.from({ length: C }, (_, c) => 0.5 + c / C);
        const b64 = Float64Array.from({ length: C }, (_, c) => c / 10 - 1);
        const ref = reference(x64, shape, dy64, w64, 1e-5);
        const yRef = new Float64Array(numel);
        for (let i = 0; i < numel; i++) yRef[i] = ref.y[i] + b64[channel[i]];
        const x = tensor(x64, shape, { dtype: 'float32', memoryFormat: fmt });
        const dy = tensor(dy64, shape, { dtype: 'float32', memoryFormat: fmt });
        const weight = tensor(w64, [C], { dtype: 'float32' });
        const bias = tensor(b64, [C], { dtype: 'float32' });
        for (const t of [1, 2]) {
          const fwd = trainAt(t, x, weight, bias);
          const { rm, rv } = fwd;
          const g = F.batchNormBackward(dy, x, { weight, saveMean: fwd.saveMean, saveInvstd: fwd.saveInvstd, training: true });
          assertClose(fwd.output, yRef, { rtol: 1e-4, atol: 1e-4 }, `${t} threads output`);
          assertClose(g.gradInput as Tensor, ref.dx, { rtol: 1e-4, atol: 1e-4 }, `${t} threads grad input`);
          const inf = F.nativeBatchNorm(x, weight, bias, rm, rv, false, 1, 1e-5).output;
          const scale = Float64Array.from(rv.toArray(), (v, c) => w64[c] / Math.sqrt(v + 1e-5));
          const rmv = rm.toArray();
          const infRef = new Float64Array(numel);
          for (let i = 0; i < numel; i++) {
            const c = channel[i];
            infRef[i] = (x64[i] - rmv[c]) * scale[c] + b64[c];
          }
          assertClose(inf, infRef, { rtol: 1e-4, atol: 1e-4 }, `${t} threads inference output`);
        }
      });
    }
  }

  // The rows statistics take one pass of sums shifted by the mean of 16
  // rows spread over the range (rows floor(i * R / 16) of one thread's R
  // rows); when those rows misrepresent a channel the shifted sums cancel,
  // and the kernel must notice and redo the rows in two passes. Outliers at
  // exactly those rows make the shift 80 standard deviations off.
  test('rows statistics when the shift rows are outliers', () => {
    const R = 100000;
    const C = 4;
    manualSeed(7);
    const noise = randn([R, C], { dtype: 'float64' }).toArray();
    const x64 = Array.from(noise, (v) => 300 + 0.01 * v);
    for (let i = 0; i < 16; i++) {
      const r = Math.floor((i * R) / 16);
      for (let c = 0; c < C; c++) x64[r * C + c] = 3e4 + c;
    }
    const ref = reference(x64, [R, C], new Float64Array(R * C), new Float64Array(C).fill(1), 1e-5);
    for (const t of [1, 2]) {
      const { rm, rv } = trainAt(t, tensor(x64, [R, C]), null, null);
      expectRunningStats(rm, rv, ref, t);
    }
  });

  // Contiguous batches: a thread normalizes one channel while it takes the
  // next one's sums in the same loop, in one pass about a shift, the mean
  // of the first 16 values of 16 planes spread over the batch (planes
  // floor(j * N / 16)). Outliers at exactly those values put the shift 30
  // standard deviations off: the sums cancel, and the kernel must notice
  // and take that channel's statistics in two passes instead.
  test('planar statistics when the shift values are outliers', () => {
    const shape = [64, 4, 64, 64];
    const [N, C] = shape;
    const inner = 64 * 64;
    manualSeed(8);
    const noise = randn(shape, { dtype: 'float64' }).toArray();
    const x64 = Array.from(noise, (v) => 300 + 0.01 * v);
    for (let j = 0; j < 16; j++) {
      const n = Math.floor((j * N) / 16);
      for (let c = 0; c < C; c++) for (let i = 0; i < 16; i++) x64[(n * C + c) * inner + i] = 3e4 + c;
    }
    const ref = reference(x64, shape, new Float64Array(x64.length), new Float64Array(C).fill(1), 1e-5);
    for (const t of [1, 2]) {
      const { rm, rv } = trainAt(t, tensor(x64, shape), null, null);
      expectRunningStats(rm, rv, ref, t);
    }
  });

  // SyncBatchNorm's ops one by one (statistics, normalization, grad sums,
  // grad input) take the same panels as the fused ones.
  test('SyncBatchNorm ops in panels [40, 1000]', () => {
    const shape = [40, 1000];
    const C = shape[1];
    manualSeed(41);
    const x64 = randn(shape, { dtype: 'float64' }).toArray().map((v) => 300 + 3 * v);
    const dy64 = randn(shape, { dtype: 'float64' }).toArray();
    const w64 = randn([C], { dtype: 'float64' }).toArray();
    const ref = reference(x64, shape, dy64, w64, 1e-5);
    const x = tensor(x64, shape, { dtype: 'float32' });
    const dy = tensor(dy64, shape, { dtype: 'float32' });
    const weight = tensor(w64, [C], { dtype: 'float32' });
    const tol = { rtol: 1e-4, atol: 1e-4 };
    for (const t of [1, 2]) {
      setNumThreads(t);
      const { mean, invstd } = F.batchNormStats(x, 1e-5);
      assertClose(mean, ref.mean, { rtol: 1e-6, atol: 0 }, `${t} threads mean`);
      assertClose(F.batchNormElemt(x, weight, null, mean, invstd), ref.y, tol, `${t} threads output`);
      const r = F.batchNormBackwardReduce(dy, x, mean, invstd, weight, { inputG: true, weightG: true, biasG: true });
      assertClose(r.gradWeight as Tensor, ref.gw, { rtol: 1e-4, atol: 1e-3 }, `${t} threads grad weight`);
      assertClose(r.gradBias as Tensor, ref.gb, { rtol: 1e-5, atol: 1e-3 }, `${t} threads grad bias`);
      const dx = F.batchNormBackwardElemt(dy, x, mean, invstd, weight, r.sumDy as Tensor, r.sumDyXmu as Tensor, shape[0]);
      assertClose(dx, ref.dx, tol, `${t} threads grad input`);
    }
  });

  // (N, C) rows beyond a quarter of L3 with at most 256 rows go in panels
  // of channels, each reduced and then normalized while it is in cache, with
  // streaming stores that start wherever a panel's piece of a row does. The
  // rows every 16th (the rows whose mean is the shift) are outliers, 3.9
  // standard deviations off the mean, so each panel's statistics fall back
  // to two-pass tiles, which read the panel's rows a whole row apart.
  test('panels of channels beyond the cache, with outlier shift rows', () => {
    const R = 256;
    const C = Math.ceil((0.3 * l3) / (4 * R)) | 1;
    const numel = R * C;
    let state = 11;
    const next = () => ((state = (state * 1664525 + 1013904223) >>> 0) / 2147483648) - 1;
    const x64 = new Float64Array(numel);
    const dy64 = new Float64Array(numel);
    for (let r = 0, i = 0; r < R; r++) {
      const base = r % 16 === 0 ? 305 : 5;
      for (let c = 0; c < C; c++, i++) {
        x64[i] = base + 3 * next() + 0.001 * c;
        dy64[i] = next();
      }
    }
    const w64 = Float64Array.from({ length: C }, (_, c) => 0.5 + c / C);
    const ref = reference(x64, [R, C], dy64, w64, 1e-5);
    const x = tensor(x64, [R, C], { dtype: 'float32' });
    const dy = tensor(dy64, [R, C], { dtype: 'float32' });
    const weight = tensor(w64, [C], { dtype: 'float32' });
    for (const t of [1, 2]) {
      const fwd = trainAt(t, x, weight, null);
      const g = F.batchNormBackward(dy, x, { weight, saveMean: fwd.saveMean, saveInvstd: fwd.saveInvstd, training: true });
      assertClose(fwd.output, ref.y, { rtol: 1e-4, atol: 1e-4 }, `${t} threads output`);
      assertClose(g.gradInput as Tensor, ref.dx, { rtol: 1e-4, atol: 1e-4 }, `${t} threads grad input`);
      assertClose(g.gradWeight as Tensor, ref.gw, { rtol: 1e-4, atol: 1e-3 }, `${t} threads grad weight`);
      expectRunningStats(fwd.rm, fwd.rv, ref, t);
    }
  });

  test('setNumThreads validates and round-trips', () => {
    setNumThreads(1);
    expect(getNumThreads()).toBe(1);
    expect(() => setNumThreads(0)).toThrow(RangeError);
    expect(() => setNumThreads(1.5)).toThrow(RangeError);
  });
});
