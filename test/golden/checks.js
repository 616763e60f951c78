// The golden checks, written once for any device: each fixture family of
// test/golden/fixtures as a list of cases {name, run(lib, device)}, where lib
// is the package (lib/ under jest, dist/ in a plain Node) and device 'cpu' or
// 'cuda'. The jest suites run them on the CPU; the GPU suite
// (test/gpu/check_cuda.js, a plain Node program: the GPU machine has no npm
// tree) runs the same cases on CUDA, so a check added here runs on both.
// Every check throws an Error naming what differs.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const FIXTURES = path.join(__dirname, 'fixtures');

/** |a - e| <= atol + rtol |e|: float32 ~1e-5, float64 ~1e-12, PyTorch's for the half types. */
const TOLERANCE = {
  float32: { rtol: 1e-5, atol: 1e-5 },
  float64: { rtol: 1e-12, atol: 1e-12 },
  float16: { rtol: 2e-3, atol: 2e-3 },
  bfloat16: { rtol: 1.6e-2, atol: 1.6e-2 },
};

function load(file) {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, file), 'utf8'));
}

/** Memory formats a shape runs in: channels-last needs a spatial dim. */
function formatsFor(shape) {
  return shape.length >= 3 ? ['contiguous', 'channelsLast'] : ['contiguous'];
}

const values = (v) => (v && typeof v.toArray === 'function' ? v.toArray() : v);

function close(actual, expected, tol, label) {
  const a = values(actual);
  if (a.length !== expected.length) throw new Error(`${label}: ${a.length} values, expected ${expected.length}`);
  let worst = -1;
  let excess = 0;
  for (let i = 0; i < a.length; i++) {
    const over = Math.abs(a[i] - expected[i]) - (tol.atol + tol.rtol * Math.abs(expected[i]));
    if (!(over <= 0) && (worst < 0 || !(over <= excess))) {
      worst = i;
      excess = over;
    }
  }
  if (worst >= 0) {
    throw new Error(`${label}: element ${worst} is ${a[worst]}, expected ${expected[worst]} ` +
      `(|diff| ${Math.abs(a[worst] - expected[worst]).toExponential(3)} > atol ${tol.atol} + rtol ${tol.rtol} * |expected|)`);
  }
}

/** Fixture values written "nan", "inf", "-inf" are matched exactly. */
const decode = (v) => (v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v);

function same(actual, expected, tol, label) {
  const a = values(actual);
  if (a.length !== expected.length) throw new Error(`${label}: ${a.length} values, expected ${expected.length}`);
  for (let i = 0; i < a.length; i++) {
    const e = decode(expected[i]);
    const ok = Number.isFinite(e) ? Math.abs(a[i] - e) <= tol.atol + tol.rtol * Math.abs(e) : Object.is(a[i], e) || (Number.isNaN(a[i]) && Number.isNaN(e));
    if (!ok) throw new Error(`${label}: element ${i} is ${a[i]}, PyTorch gives ${e}`);
  }
}

function equal(actual, expected, label) {
  if (!Object.is(actual, expected)) throw new Error(`${label}: ${String(actual)}, expected ${String(expected)}`);
}

/** The op ran where it was asked to: a result elsewhere would be a silent fallback. */
function onDevice(t, device, label) {
  const want = device === 'cpu' ? /^cpu$/ : /^cuda/;
  if (!want.test(String(t.device))) throw new Error(`${label} is on ${t.device}, expected ${device}`);
  return t;
}

/** Rows [start, start + n) of a logical-order batch. */
function batchSlice(v, shape, start, n) {
  const per = v.length / shape[0];
  return v.slice(start * per, (start + n) * per);
}

/** A BatchNorm module through a fixture's steps (forward, backward, grads, running stats, counter). */
function moduleSteps(lib, device, setup, inp, steps, fmt) {
  const { nn, tensor } = lib;
  const { dtype } = setup;
  const tol = TOLERANCE[dtype];
  const C = inp.shape[1];
  const opts = { momentum: setup.momentum, affine: setup.affine, trackRunningStats: setup.track_running_stats, dtype };
  if (setup.eps !== undefined) opts.eps = setup.eps;
  const bn = new nn[setup.module](C, opts);
  equal(bn.toString(), setup.repr, 'repr');
  if (setup.affine) {
    bn.weight.copy_(tensor(inp.weight, [C], { dtype }));
    bn.bias.copy_(tensor(inp.bias, [C], { dtype }));
  } else if (bn.weight !== null) {
    throw new Error('a weight without affine');
  }
  bn.to(device);
  steps.forEach((s, i) => {
    const at = `step ${i} (${s.training ? 'train' : 'eval'})`;
    bn.train(s.training);
    const x = tensor(inp.x[i], inp.shape, { dtype, memoryFormat: fmt, device });
    const xBefore = Array.from(x.toArray());
    const y = onDevice(bn.forward(x), device, `${at} output`);
    equal(y.memoryFormat, fmt, `${at} output memory format`);
    close(y, s.y, tol, `${at} output`);
    const dx = onDevice(bn.backward(tensor(inp.dy[i], inp.shape, { dtype, memoryFormat: fmt, device })), device, `${at} grad input`);
    equal(dx.memoryFormat, fmt, `${at} grad input memory format`);
    close(dx, s.dx, tol, `${at} grad input`);
    close(x, xBefore, { rtol: 0, atol: 0 }, `${at} input left as it was`);
    if (setup.affine) {
      close(onDevice(bn.weight.grad, device, 'grad weight'), s.grad_weight, tol, `${at} grad weight`);
      close(bn.bias.grad, s.grad_bias, tol, `${at} grad bias`);
    }
    if (setup.track_running_stats) {
      close(onDevice(bn.runningMean, device, 'running mean'), s.running_mean, tol, `${at} running mean`);
      close(bn.runningVar, s.running_var, tol, `${at} running var`);
      equal(Number(bn.numBatchesTracked.item()), s.num_batches_tracked, `${at} num_batches_tracked`);
    } else if (bn.runningMean !== null) {
      throw new Error('running stats without tracking');
    }
  });
}

/**
 * Every F.* op of one ops fixture case: stats, gather over uneven workers
 * (one may have no data), elemt, backward reduce and elemt; the fused
 * nativeBatchNorm / batchNorm / batchNormBackward in training and, when
 * recorded, in eval; the Welford stats SyncBatchNorm all-reduces, finalized.
 * Per-channel tensors are float32 for half inputs.
 */
function opsCase(lib, device, c, fmt) {
  const { F, tensor } = lib;
  const tol = TOLERANCE[c.dtype];
  const dtype = c.dtype;
  const pd = dtype === 'float64' ? 'float64' : 'float32';
  const C = c.shape[1];
  const on = { dtype: pd, device };
  const vec = (v) => tensor(v, [C], on);
  const x = tensor(c.x, c.shape, { dtype, memoryFormat: fmt, device });
  const dy = tensor(c.dy, c.shape, { dtype, memoryFormat: fmt, device });
  const weight = vec(c.weight);
  const bias = vec(c.bias);
  const e = c.expected;

  const { mean, invstd } = F.batchNormStats(x, c.eps);
  close(onDevice(mean, device, 'stats mean'), e.mean, tol, 'stats mean');
  close(onDevice(invstd, device, 'stats invstd'), e.invstd, tol, 'stats invstd');
  const means = [];
  const invstds = [];
  let start = 0;
  c.splits.forEach((n, w) => {
    const part = tensor(batchSlice(c.x, c.shape, start, n), [n, ...c.shape.slice(1)], { dtype, memoryFormat: fmt, device });
    start += n;
    const local = F.batchNormStats(part, c.eps);
    equal(e.workers[w].count, n === 0 ? 0 : part.numel() / C, `worker ${w} count`);
    if (n > 0) {
      close(local.mean, e.workers[w].mean, tol, `worker ${w} mean`);
      close(local.invstd, e.workers[w].invstd, tol, `worker ${w} invstd`);
    }
    means.push(...local.mean.toArray());
    invstds.push(...local.invstd.toArray());
  });
  const world = c.splits.length;
  const rm = vec(c.running_mean);
  const rv = vec(c.running_var);
  const g = F.batchNormGatherStatsWithCounts(tensor(means, [world, C], on), tensor(invstds, [world, C], on), rm, rv, {
    momentum: c.momentum, eps: c.eps, counts: e.workers.map((w) => w.count),
  });
  close(onDevice(g.mean, device, 'gathered mean'), e.mean, tol, 'gathered mean');
  close(g.invstd, e.invstd, tol, 'gathered invstd');
  close(onDevice(rm, device, 'gathered running mean'), e.running_mean, tol, 'gathered running mean');
  close(rv, e.running_var, tol, 'gathered running var');

  const y = onDevice(F.batchNormElemt(x, weight, bias, mean, invstd), device, 'elemt');
  equal(y.memoryFormat, fmt, 'elemt memory format');
  equal(y.dtype, dtype, 'elemt dtype');
  close(y, e.y, tol, 'elemt');
  const r = F.batchNormBackwardReduce(dy, x, mean, invstd, weight);
  close(onDevice(r.sumDy, device, 'sum_dy'), e.sum_dy, tol, 'sum_dy');
  close(r.sumDyXmu, e.sum_dy_xmu, tol, 'sum_dy_xmu');
  close(r.gradWeight, e.grad_weight, tol, 'grad weight');
  close(r.gradBias, e.grad_bias, tol, 'grad bias');
  const dx = onDevice(F.batchNormBackwardElemt(dy, x, mean, invstd, weight, r.sumDy, r.sumDyXmu, x.numel() / C), device, 'backward elemt');
  close(dx, e.dx, tol, 'backward elemt');

  const frm = vec(c.running_mean);
  const frv = vec(c.running_var);
  const fwd = F.nativeBatchNorm(x, weight, bias, frm, frv, true, c.momentum, c.eps);
  close(onDevice(fwd.output, device, 'nativeBatchNorm output'), e.y, tol, 'nativeBatchNorm output');
  close(frm, e.running_mean, tol, 'nativeBatchNorm running mean');
  close(frv, e.running_var, tol, 'nativeBatchNorm running var');
  const brm = vec(c.running_mean);
  const brv = vec(c.running_var);
  close(F.batchNorm(x, brm, brv, { weight, bias, training: true, momentum: c.momentum, eps: c.eps }), e.y, tol, 'F.batchNorm output');
  close(brm, e.running_mean, tol, 'F.batchNorm running mean');
  close(brv, e.running_var, tol, 'F.batchNorm running var');
  const gt = F.batchNormBackward(dy, x, { weight, saveMean: fwd.saveMean, saveInvstd: fwd.saveInvstd, training: true, eps: c.eps });
  close(onDevice(gt.gradInput, device, 'batchNormBackward grad input'), e.dx, tol, 'batchNormBackward grad input');
  close(gt.gradWeight, e.grad_weight, tol, 'batchNormBackward grad weight');
  close(gt.gradBias, e.grad_bias, tol, 'batchNormBackward grad bias');

  const wrm = vec(c.running_mean);
  const wrv = vec(c.running_var);
  const wf = F.batchNormWelfordFinalize(F.batchNormWelfordStats(x), wrm, wrv, { eps: c.eps, momentum: c.momentum, dtype: pd, device });
  close(onDevice(wf.mean, device, 'welford mean'), e.mean, tol, 'welford mean');
  close(wf.invstd, e.invstd, tol, 'welford invstd');
  close(wrm, e.running_mean, tol, 'welford running mean');
  close(wrv, e.running_var, tol, 'welford running var');

  if (e.eval) {
    const erm = vec(c.running_mean);
    const erv = vec(c.running_var);
    close(onDevice(F.batchNorm(x, erm, erv, { weight, bias, training: false, momentum: c.momentum, eps: c.eps }), device, 'eval output'), e.eval.y, tol, 'eval output');
    close(erm, vec(c.running_mean).toArray(), { rtol: 0, atol: 0 }, 'eval leaves the running mean');
    const ge = F.batchNormBackward(dy, x, { weight, runningMean: erm, runningVar: erv, training: false, eps: c.eps });
    close(onDevice(ge.gradInput, device, 'eval grad input'), e.eval.dx, tol, 'eval grad input');
    close(ge.gradWeight, e.eval.grad_weight, tol, 'eval grad weight');
    close(ge.gradBias, e.eval.grad_bias, tol, 'eval grad bias');
  }
}

/** MomentumBatchNorm through its steps, its schedule (cur_iter, momentum) included. */
function momentumSteps(lib, device, c, inp, fmt) {
  const { nn, tensor } = lib;
  const tol = TOLERANCE[c.dtype];
  const dtype = c.dtype;
  const C = inp.shape[1];
  const bn = new nn[c.module](C, { affine: c.affine, momentum: c.momentum, totalIters: c.total_iters, dtype });
  if (c.affine) {
    bn.weight.copy_(tensor(inp.weight, [C], { dtype }));
    bn.bias.copy_(tensor(inp.bias, [C], { dtype }));
  }
  bn.to(device);
  c.steps.forEach((s, i) => {
    bn.train(s.training);
    close(onDevice(bn.forward(tensor(inp.x[i], inp.shape, { dtype, memoryFormat: fmt, device })), device, 'output'), s.y, tol, `step ${i} output`);
    close(onDevice(bn.backward(tensor(inp.dy[i], inp.shape, { dtype, memoryFormat: fmt, device })), device, 'grad input'), s.dx, tol, `step ${i} grad input`);
    close(onDevice(bn.runningMean, device, 'running mean'), s.running_mean, tol, `step ${i} running mean`);
    close(bn.runningVar, s.running_var, tol, `step ${i} running var`);
    equal(bn.curIter, s.cur_iter, `step ${i} cur_iter`);
    if (!(Math.abs(bn.momentum - s.momentum) < 1e-14)) throw new Error(`step ${i} momentum ${bn.momentum}, expected ${s.momentum}`);
    if (c.affine) {
      close(bn.weight.grad, s.grad_weight, tol, `step ${i} grad weight`);
      close(bn.bias.grad, s.grad_bias, tol, `step ${i} grad bias`);
    }
  });
}

/** float16 / bfloat16 inputs through a float32 layer (half.json). */
function halfSteps(lib, device, c) {
  const { nn, tensor } = lib;
  const C = c.shape[1];
  const bn = new nn[c.module](C);
  bn.weight.copy_(tensor(c.weight, [C]));
  bn.bias.copy_(tensor(c.bias, [C]));
  bn.to(device);
  c.steps.forEach((s, i) => {
    bn.train(s.training);
    const y = onDevice(bn.forward(tensor(s.x, c.shape, { dtype: c.dtype, device })), device, 'output');
    equal(y.dtype, c.dtype, 'output dtype');
    close(y, s.y, TOLERANCE[c.dtype], `step ${i} output`);
    close(bn.backward(tensor(s.dy, c.shape, { dtype: c.dtype, device })), s.dx, TOLERANCE[c.dtype], `step ${i} grad input`);
    close(bn.weight.grad, s.grad_weight, { rtol: 1e-4, atol: 1e-4 }, `step ${i} grad weight`);
    close(bn.bias.grad, s.grad_bias, { rtol: 1e-4, atol: 1e-4 }, `step ${i} grad bias`);
    close(bn.runningMean, s.running_mean, TOLERANCE.float32, `step ${i} running mean`);
    close(bn.runningVar, s.running_var, { rtol: 1e-4, atol: 1e-5 }, `step ${i} running var`);
  });
}

// edges.json (test/golden/generate_edges.py): tolerances relative and
// absolute as above; per-channel sums of up to 32768 outputs 1e-4 / 1e-9
// relative. One value per channel: torch folds (x - mean) * a + b into
// x * a + (b - mean * a) with a = weight / sqrt(eps), terms of |x| * 316 (up to
// ~2000 here) whose float32 rounding (~1.2e-4) its y differs from the bias by.
const EDGE_SUM = { float32: 1e-4, float64: 1e-9 };
const ONE_VALUE_Y = { float32: { rtol: 3e-4, atol: 3e-4 }, float64: TOLERANCE.float64 };

/** The generator's x[k] = ((k * 7919) % 1000) / 100 - 5 + c; constant channels c + 0.5. */
function edgeInput(shape, constant) {
  const n = shape.reduce((a, b) => a * b, 1);
  const inner = shape.slice(2).reduce((a, b) => a * b, 1);
  const t = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const ch = Math.floor(k / inner) % shape[1];
    t[k] = constant.includes(ch) ? ch + 0.5 : ((k * 7919) % 1000) / 100 - 5 + ch;
  }
  return t;
}

/** weight, bias, running mean, running var as the generator sets them. */
function edgeParams(lib, C, on) {
  const vec = (f) => lib.tensor(Array.from({ length: C }, (_, i) => f(i)), [C], on);
  return [vec((i) => i * 0.25 + 0.5), vec((i) => i * 0.5 - 1), vec((i) => i * 0.25), vec((i) => i * 0.5 + 1)];
}

/** One edges.json forward case on every path that finalizes statistics: fused forward, stats + gather, Welford. */
function edgesForward(lib, device, c, fmt, momentum) {
  const { F, tensor } = lib;
  const tol = TOLERANCE[c.dtype];
  const C = c.shape[1];
  const on = { dtype: c.dtype, device };
  const x = tensor(edgeInput(c.shape, c.constant), c.shape, { ...on, memoryFormat: fmt });
  const stats = (got, at) => {
    same(onDevice(got.mean, device, `${at} mean`), c.save_mean, tol, `${at} mean`);
    same(got.invstd, c.save_invstd, tol, `${at} invstd`);
    same(onDevice(got.rm, device, `${at} running mean`), c.running_mean, tol, `${at} running mean`);
    same(got.rv, c.running_var, tol, `${at} running var`);
  };

  const [w, b, rm, rv] = edgeParams(lib, C, on);
  const r = F.nativeBatchNorm(x, w, b, rm, rv, true, momentum, c.eps);
  stats({ mean: r.saveMean, invstd: r.saveInvstd, rm, rv }, 'nativeBatchNorm');
  onDevice(r.output, device, 'nativeBatchNorm output');
  if (c.y) {
    same(r.output, c.y, c.name.startsWith('one value') ? ONE_VALUE_Y[c.dtype] : tol, 'nativeBatchNorm output');
  } else {
    // The sum cancels (a channel of bias 0 sums to about 0): its error is relative to sum |y|.
    const v = r.output.toArray();
    const inner = c.shape.slice(2).reduce((p, q) => p * q, 1);
    const sums = Array.from({ length: C }, () => [0, 0]);
    for (let k = 0; k < v.length; k++) {
      sums[Math.floor(k / inner) % C][0] += v[k];
      sums[Math.floor(k / inner) % C][1] += Math.abs(v[k]);
    }
    const rel = { rtol: EDGE_SUM[c.dtype], atol: EDGE_SUM[c.dtype] };
    for (let ch = 0; ch < C; ch++) {
      const [sum, abs] = c.y_summary[ch];
      close([sums[ch][1]], [abs], rel, `channel ${ch} output sum |y|`);
      close([sums[ch][0] / (1 + abs)], [sum / (1 + abs)], rel, `channel ${ch} output sum / (1 + sum |y|)`);
    }
  }

  const [, , rm2, rv2] = edgeParams(lib, C, on);
  const s = F.batchNormStats(x, c.eps);
  const count = x.numel() / C;
  const g = F.batchNormGatherStatsWithCounts(tensor(s.mean.toArray(), [1, C], on), tensor(s.invstd.toArray(), [1, C], on), rm2, rv2,
    { momentum, eps: c.eps, counts: [count] });
  stats({ mean: g.mean, invstd: g.invstd, rm: rm2, rv: rv2 }, 'stats + gather');

  const [, , rm3, rv3] = edgeParams(lib, C, on);
  const f = F.batchNormWelfordFinalize(F.batchNormWelfordStats(x), rm3, rv3, { eps: c.eps, momentum, dtype: c.dtype, device });
  stats({ mean: f.mean, invstd: f.invstd, rm: rm3, rv: rv3 }, 'welford stats + finalize');
}

/** One edges.json split case: gather_stats_with_counts over the ranks, the empty rank's NaN statistics unread. */
function edgesGather(lib, device, c, momentum) {
  const { F, tensor } = lib;
  const tol = TOLERANCE[c.dtype];
  const C = c.shape[1];
  const on = { dtype: c.dtype, device };
  const pick = (k) => c.ranks.flatMap((r) => (r.count > 0 ? r[k].map(decode) : new Array(C).fill(NaN)));
  // A fresh module's running stats, as the generator's.
  const rm = tensor(new Array(C).fill(0), [C], on);
  const rv = tensor(new Array(C).fill(1), [C], on);
  const world = c.ranks.length;
  const g = F.batchNormGatherStatsWithCounts(tensor(pick('mean'), [world, C], on), tensor(pick('invstd'), [world, C], on), rm, rv,
    { momentum, eps: c.eps, counts: c.ranks.map((r) => r.count) });
  same(onDevice(g.mean, device, 'gathered mean'), c.save_mean, tol, 'gathered mean');
  same(g.invstd, c.save_invstd, tol, 'gathered invstd');
  same(onDevice(rm, device, 'running mean'), c.running_mean, tol, 'running mean');
  same(rv, c.running_var, tol, 'running var');
}

/** Each fixture family's cases, named as every suite reports them. */
const FAMILIES = {
  modules: () => ['float32', 'float64'].flatMap((dtype) => {
    const file = `modules_${dtype}.json`;
    const fx = load(file);
    return fx.cases.flatMap((c) => {
      const inp = fx.inputs[c.kind];
      return formatsFor(inp.shape).map((fmt) => ({
        name: `${file} ${c.kind} affine=${c.affine} track=${c.track_running_stats} momentum=${c.momentum} ${fmt}`,
        run: (lib, device) => moduleSteps(lib, device, { ...c, module: inp.module, dtype }, inp, c.steps, fmt),
      }));
    });
  }),
  varied: () => {
    const fx = load('varied.json');
    return [
      ...fx.modules.flatMap((c) => formatsFor(c.shape).map((fmt) => ({
        name: `varied.json ${c.module} [${c.shape}] ${c.dtype} eps=${c.eps} momentum=${c.momentum} affine=${c.affine} track=${c.track_running_stats} ${fmt}`,
        run: (lib, device) => moduleSteps(lib, device, c, c, c.steps, fmt),
      }))),
      ...fx.ops.flatMap((c) => formatsFor(c.shape).map((fmt) => ({
        name: `varied.json ops ${c.name} [${c.shape}] eps=${c.eps} momentum=${c.momentum} ${fmt}`,
        run: (lib, device) => opsCase(lib, device, c, fmt),
      }))),
    ];
  },
  ops: () => load('ops.json').cases.flatMap((c) => formatsFor(c.shape).map((fmt) => ({
    name: `ops.json ${c.name} ${fmt}`,
    run: (lib, device) => opsCase(lib, device, c, fmt),
  }))),
  momentum: () => {
    const fx = load('momentum.json');
    return fx.cases.flatMap((c) => {
      const inp = fx.inputs[c.inputs];
      return formatsFor(inp.shape).map((fmt) => ({
        name: `momentum.json ${c.module} ${c.kind} ${c.dtype} affine=${c.affine} momentum=${c.momentum} totalIters=${c.total_iters} ${fmt}`,
        run: (lib, device) => momentumSteps(lib, device, c, inp, fmt),
      }));
    });
  },
  half: () => load('half.json').cases.map((c) => ({
    name: `half.json ${c.dtype} input ${c.module} [${c.shape}]`,
    run: (lib, device) => halfSteps(lib, device, c),
  })),
  edges: () => {
    const fx = load('edges.json');
    return [
      ...fx.forward.flatMap((c) => formatsFor(c.shape).map((fmt) => ({
        name: `edges.json ${c.name} ${c.dtype} ${fmt}`,
        run: (lib, device) => edgesForward(lib, device, c, fmt, fx.momentum),
      }))),
      ...fx.split.map((c) => ({
        name: `edges.json ${c.name} ${c.dtype}: gather over ranks [${c.sizes}]`,
        run: (lib, device) => edgesGather(lib, device, c, fx.momentum),
      })),
    ];
  },
};

/** The fixture files the families read, in the order they run. */
const FILES = ['modules_float32.json', 'modules_float64.json', 'varied.json', 'ops.json', 'momentum.json', 'half.json', 'edges.json'];

/** The cases of one family ('modules', 'varied', 'ops', 'momentum', 'half', 'edges'). */
function cases(family) {
  const make = FAMILIES[family];
  if (!make) throw new Error(`no golden family '${family}' (${Object.keys(FAMILIES).join(', ')})`);
  return make();
}

module.exports = {
  FIXTURES, TOLERANCE, FILES, FAMILIES: Object.keys(FAMILIES), load, formatsFor, close, same, decode, equal, onDevice,
  cases, moduleSteps, opsCase, momentumSteps, halfSteps, edgeInput, edgeParams,
};
