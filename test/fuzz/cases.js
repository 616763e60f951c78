// Fuzz cases over the public API and the raw binding. Each case is a pure
// function of (seed, index): random shapes (empty, single-value, wide),
// dtypes (float16 and bfloat16 too: layers in float32 or in the half type;
// raw half arrays of random bits), memory formats, options (NaN, negative,
// huge), wrong argument types and lengths, arrays that alias each other. An
// accepted call is checked against a float64 reference computed here, and
// its inputs must be unchanged; a refused call must throw a JavaScript error
// (never crash).
'use strict';

function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WEIRD_NUMBERS = [NaN, Infinity, -Infinity, -1, 0, 1e-300, 2 ** 31, 2 ** 53 + 2, -0, 0.5];

function makeCase(seed, index) {
  const r = rng(seed * 1000003 + index);
  const int = (lo, hi) => lo + Math.floor(r() * (hi - lo + 1));
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const maybe = (p, good, bad) => (r() < p ? good : bad());
  const kind = pick(['module', 'module', 'module', 'functional', 'raw', 'raw']);
  const dims = int(2, 5);
  const shape = [int(0, 5), int(1, 6), ...Array.from({ length: dims - 2 }, () => int(0, 4))];
  if (r() < 0.05) shape[1] = int(0, 300);
  const dtype = pick(['float32', 'float64', 'float32', 'float64', 'bfloat16', 'float16']);
  const half = dtype === 'bfloat16' || dtype === 'float16';
  // Outputs rounded to a half type: its tolerance (PyTorch's, with room for the rounding of statistics).
  const tol = { float32: 1e-4, float64: 1e-9, bfloat16: 3e-2, float16: 4e-3 }[dtype];
  const fmt = dims >= 3 && r() < 0.4 ? 'channelsLast' : 'contiguous';
  const numel = shape.reduce((a, b) => a * b, 1);
  const values = Array.from({ length: numel }, () => (r() - 0.5) * pick([1, 10, 1e3]) + pick([0, 0, 5]));
  if (r() < 0.1 && numel) values[int(0, numel - 1)] = pick([NaN, Infinity, -Infinity]);
  const dyValues = Array.from({ length: numel }, () => r() - 0.5);

  if (kind === 'module') {
    // Mostly the class that fits the input's rank, so most calls are accepted and checked.
    const fits = { 2: 'BatchNorm1d', 3: 'BatchNorm1d', 4: pick(['BatchNorm2d', 'LazyBatchNorm2d']), 5: 'BatchNorm3d' }[dims];
    const cls = r() < 0.8 ? fits : pick(['BatchNorm1d', 'BatchNorm2d', 'BatchNorm3d', 'LazyBatchNorm2d', 'SyncBatchNorm']);
    const eps = maybe(0.95, pick([1e-5, 1e-3, 0.1]), () => pick(WEIRD_NUMBERS));
    const momentum = maybe(0.95, pick([0.1, 0.5, null, 1]), () => pick(WEIRD_NUMBERS));
    const affine = r() < 0.8;
    const track = r() < 0.8;
    const training = r() < 0.7;
    const C = r() < 0.95 ? shape[1] : int(0, 8);
    // A half input meets a float32 layer (mixed precision) or a layer of its own dtype.
    const layerDtype = half && r() < 0.5 ? 'float32' : dtype;
    return {
      name: `module ${cls}(${C}, eps=${eps}, momentum=${momentum}, affine=${affine}, track=${track}, dtype=${layerDtype}) ${training ? 'train' : 'eval'} [${shape}] ${dtype} ${fmt}`,
      run(lib) {
        const bn = cls.startsWith('Lazy')
          ? new lib.nn[cls]({ eps, momentum, affine, trackRunningStats: track, dtype: layerDtype })
          : new lib.nn[cls](C, { eps, momentum, affine, trackRunningStats: track, dtype: layerDtype });
        bn.train(training);
        const x = lib.tensor(values, shape, { dtype, memoryFormat: fmt });
        const before = x.toArray().slice();
        const y = bn.forward(x);
        const dy = lib.tensor(dyValues, shape, { dtype, memoryFormat: fmt });
        const dx = bn.backward(dy);
        const same = sameArray(x.toArray(), before);
        // The values the layer saw (a half input holds them rounded); a half layer normalizes with its
        // batch statistics rounded to its dtype, as PyTorch 2's does, and so does a layer with no per-channel
        // tensor at all (PyTorch's is_mixed_type is false without any).
        const roundStats = half && (layerDtype === dtype || (!affine && !track)) ? (v) => lib.tensor([v], [1], { dtype }).toArray()[0] : null;
        const ref = reference(Array.from(x.toArray()), shape, { eps, training: training || !track, affine, weight: bn.weight, bias: bn.bias, roundStats });
        const yOk = closeTo(logical(y, lib), ref, tol) && y.dtype === dtype && dx.dtype === dtype;
        return { accepted: true, inputsUnchanged: same, correct: yOk && dx.shape.join() === shape.join() };
      },
    };
  }

  if (kind === 'functional') {
    const op = pick(['batchNorm', 'batchNormStats', 'batchNormElemt', 'nativeBatchNorm']);
    const eps = maybe(0.95, 1e-5, () => pick(WEIRD_NUMBERS));
    return {
      name: `functional ${op} [${shape}] ${dtype} ${fmt} eps=${eps}`,
      run(lib) {
        const F = lib.F ?? lib.functional;
        const x = lib.tensor(values, shape, { dtype, memoryFormat: fmt });
        const before = x.toArray().slice();
        const C = shape[1];
        let correct = true;
        // Per-channel tensors: float32 for a half input, or (where PyTorch 2 takes them so) the input's dtype.
        const pd = dtype === 'float64' ? 'float64' : half && r() < 0.5 ? dtype : 'float32';
        const xs = Array.from(x.toArray());
        if (op === 'batchNorm') {
          // No per-channel tensors: a half input normalizes with its statistics rounded to its dtype, as in PyTorch.
          const y = F.batchNorm(x, null, null, { training: true, eps });
          const roundStats = half ? (v) => lib.tensor([v], [1], { dtype }).toArray()[0] : null;
          correct = closeTo(logical(y, lib), reference(xs, shape, { eps, training: true, roundStats }), tol);
        } else if (op === 'batchNormStats') {
          const s = F.batchNormStats(x, eps);
          correct = s.mean.shape[0] === C;
        } else if (op === 'batchNormElemt') {
          const m = lib.zeros([maybe(0.95, C, () => int(0, 9))], { dtype: half ? 'float32' : dtype });
          const is = lib.ones([C], { dtype: half ? 'float32' : dtype });
          const y = F.batchNormElemt(x, null, null, m, is);
          correct = closeTo(logical(y, lib), xs, dtype === 'float64' ? 0 : 1e-6);
        } else {
          const rm = lib.zeros([C], { dtype: pd });
          const rv = lib.ones([C], { dtype: pd });
          const res = F.nativeBatchNorm(x, null, null, rm, rv, false, 0.1, eps);
          correct = closeTo(logical(res.output, lib), reference(xs, shape, { eps, training: false }), tol);
        }
        return { accepted: true, inputsUnchanged: sameArray(x.toArray(), before), correct };
      },
    };
  }

  // Raw binding: arguments of the right kind most of the time, then one wrong.
  const fn = pick(['stats', 'elemt', 'forwardTraining', 'backward', 'welfordStats', 'blendStats', 'convertMemoryFormat', 'setNumThreads']);
  const n = int(0, 4), c = int(1, 4), inner = int(1, 4);
  const total = n * c * inner;
  // The batch's arrays (half types: Uint16Array, of random bits: NaN, infinities, subnormals among them)
  // and the per-channel ones (float32 for half inputs).
  const Data = dtype === 'float64' ? Float64Array : half ? Uint16Array : Float32Array;
  const Param = dtype === 'float64' ? Float64Array : Float32Array;
  const arrOf = (Arr, len) => {
    const roll = r();
    if (roll < 0.02) return new (pick([Int32Array, Uint8Array, Uint16Array, Float32Array, Float64Array]))(len);
    if (roll < 0.04) return pick([null, undefined, 3, 'x', {}, []]);
    if (roll < 0.06) return new Arr(Math.max(0, len + pick([-1, 1, 1000])));
    return Arr === Uint16Array ? new Arr(len).map(() => Math.floor(r() * 65536)) : new Arr(len).map(() => r() - 0.5);
  };
  const data = (len) => arrOf(Data, len);
  const arr = (len) => arrOf(Param, len);
  const shapeArg = r() < 0.9 ? [n, c, inner] : pick([[n, c], [-1, c, inner], [2 ** 40, 2 ** 40, 2], 'x', null, [NaN, 1, 1]]);
  const cl = r() < 0.5;
  const aliasing = r() < 0.1;
  return {
    name: `raw ${fn} shape=${JSON.stringify(shapeArg)} ${dtype}${aliasing ? ' aliasing' : ''}`,
    run(_lib, native) {
      const x = data(total);
      const out = aliasing ? x : data(total);
      const snapshot = ArrayBuffer.isView(x) && x !== out ? Array.from(x) : null;
      // The ops take one object of named arguments: now and then a field
      // is missing or of another kind, the dtype is wrong, or no object at all.
      const named = (fields) => {
        const a = { dtype: r() < 0.95 ? dtype : pick(['float16', 'bfloat16', 'float32', 'int64', 'x', 3, undefined]), shape: shapeArg, channelsLast: cl, ...fields };
        if (r() < 0.03) delete a[pick(Object.keys(a))];
        if (r() < 0.03) a[pick(Object.keys(a))] = pick([null, undefined, 3, 'x', {}, [], true]);
        return r() < 0.01 ? pick([undefined, null, 3, [a], x]) : a;
      };
      switch (fn) {
        case 'stats': native.ops.stats(named({ input: x, eps: (r() < 0.9 ? 1e-5 : pick([NaN, -1])), mean: arr(c), invstd: arr(c) })); break;
        case 'elemt': native.ops.elemt(named({ input: x, mean: arr(c), invstd: arr(c), weight: arr(c), bias: arr(c), output: out })); break;
        case 'forwardTraining': native.ops.forwardTraining(named({ input: x, weight: arr(c), bias: arr(c), eps: 1e-5, momentum: (r() < 0.9 ? 0.1 : NaN),
          runningMean: arr(c), runningVar: arr(c), output: out, saveMean: arr(c), saveInvstd: arr(c) })); break;
        case 'backward': native.ops.backward(named({ gradOutput: data(total), input: x, weight: arr(c), mean: arr(c), invstdOrVar: arr(c),
          training: r() < 0.5, eps: 1e-5, gradInput: out, gradWeight: arr(c), gradBias: arr(c), accumulate: r() < 0.5 })); break;
        case 'welfordStats': native.ops.welfordStats(named({ input: x, summary: new Float64Array(r() < 0.9 ? 3 * c : pick([0, 3 * c + 1])) })); break;
        case 'blendStats': {
          // outMean may be the running mean itself (an in-place blend).
          const rm = arr(c);
          native.ops.blendStats(named({ channels: r() < 0.9 ? c : pick([0, -1, 1.5, c + 1]), momentum: 0.1, meanA: arr(c), varA: arr(c),
            meanB: arr(c), varB: arr(c), varScale: 1, runningMean: rm, runningVar: arr(c), outMean: aliasing ? rm : arr(c), outVar: arr(c) }));
          break;
        }
        case 'convertMemoryFormat': native.convertMemoryFormat(x, out, shapeArg, cl); break;
        case 'setNumThreads': native.setNumThreads(pick([1, 2, 0, -1, 1e5, 2 ** 31, NaN, 'x'])); native.setNumThreads(2); break;
      }
      return { accepted: true, inputsUnchanged: snapshot === null || sameArray(x, snapshot), correct: true };
    },
  };
}

function sameArray(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i]) && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return false;
  return true;
}

function logical(t, lib) {
  return t.contiguous('contiguous').toArray();
}

/** Batch norm in float64 over (N, C, ...) logical values: batch statistics (training) or running stats 0/1 (eval). */
function reference(values, shape, o) {
  const [N, C] = shape;
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const out = new Array(values.length);
  const w = o.affine && o.weight ? o.weight.toArray() : null;
  const b = o.affine && o.bias ? o.bias.toArray() : null;
  for (let c = 0; c < C; c++) {
    let mean = 0, varB = 1;
    if (o.training) {
      let s = 0;
      for (let n = 0; n < N; n++) for (let i = 0; i < inner; i++) s += values[(n * C + c) * inner + i];
      mean = s / (N * inner);
      let ss = 0;
      for (let n = 0; n < N; n++) for (let i = 0; i < inner; i++) ss += (values[(n * C + c) * inner + i] - mean) ** 2;
      varB = ss / (N * inner);
    }
    let is = 1 / Math.sqrt(varB + o.eps);
    if (o.training && o.roundStats) {
      mean = o.roundStats(mean);
      is = o.roundStats(is);
    }
    for (let n = 0; n < N; n++) for (let i = 0; i < inner; i++) {
      const k = (n * C + c) * inner + i;
      out[k] = (values[k] - mean) * is * (w ? w[c] : 1) + (b ? b[c] : 0);
    }
  }
  return out;
}

function closeTo(a, e, tol) {
  if (a.length !== e.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(e[i]) || Number.isNaN(a[i])) {
      if (Number.isNaN(e[i]) !== Number.isNaN(a[i])) return false;
      continue;
    }
    if (!Number.isFinite(e[i])) {
      if (a[i] !== e[i]) return false;
      continue;
    }
    if (Math.abs(a[i] - e[i]) > tol * (1 + Math.abs(e[i]))) return false;
  }
  return true;
}

module.exports = { makeCase };
