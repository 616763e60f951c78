#!/usr/bin/env node
// The GPU suite, as a plain Node program (the GPU machine has no npm tree):
// every golden fixture file on CUDA against PyTorch's numbers:
//   modules_float32/64.json  BatchNorm1d/2d/3d, three training steps then eval,
//                            grads, running stats and num_batches_tracked
//   varied.json              the eps / momentum / flags users vary, modules and ops
//   ops.json                 every F.* op (stats, gather, elemt, backward reduce
//                            and elemt, nativeBatchNorm, batchNorm, batchNormBackward,
//                            the Welford stats and finalize)
//   momentum.json            MomentumBatchNorm1d/2d/3d with cur_iter and momentum
//   half.json                float16 / bfloat16 inputs with float32 parameters
// in both memory formats, and SyncBatchNorm's device ops over ops.json's
// workers; then device checks and NCCL in a world of one (rendezvous,
// collectives, the Welford merge, gradients, SyncBatchNorm and its device path),
// and nn.SyncBatchNorm over NCCL with one process per GPU where there are two.
// A fixture file it does not know is reported and counted as skipped.
//
//   node test/gpu/check_cuda.js               on 'cuda'; exits 1 without a GPU
//   node test/gpu/check_cuda.js --suites fixtures|nccl  one part only
//   node test/gpu/check_cuda.js --device cpu  the same checks dispatched on the
//     CPU (device-only and NCCL checks are skipped, each counted):
//     what `npm test` runs everywhere, so the suite's logic and fixture
//     handling are tested without a GPU.
// Closes with "N passed, N failed, N skipped"; exits 1 on any failure.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const { spawn } = require('node:child_process');
const { cuda, nn, F, tensor, distributed: dist } = require(path.resolve(__dirname, '../../dist'));

const FIXTURES = path.join(__dirname, '..', 'golden', 'fixtures');
const TOL = { float32: { rtol: 1e-5, atol: 1e-5 }, float64: { rtol: 1e-12, atol: 1e-12 }, float16: { rtol: 2e-3, atol: 2e-3 }, bfloat16: { rtol: 1.6e-2, atol: 1.6e-2 } };
const argDevice = process.argv.indexOf('--device') >= 0 ? process.argv[process.argv.indexOf('--device') + 1] : 'cuda';
if (argDevice !== 'cuda' && argDevice !== 'cpu') {
  console.log(`check_cuda.js: --device must be 'cuda' or 'cpu', got ${argDevice}`);
  process.exit(2);
}
const DEVICE = argDevice;
const suitesArg = process.argv.indexOf('--suites') >= 0 ? process.argv[process.argv.indexOf('--suites') + 1] : 'fixtures,nccl';
const SUITES = new Set(suitesArg.split(','));
if ([...SUITES].some((x) => x !== 'fixtures' && x !== 'nccl')) {
  console.log(`check_cuda.js: --suites takes fixtures and/or nccl, got ${suitesArg}`);
  process.exit(2);
}
const ON_GPU = DEVICE === 'cuda';
// Fixture files written by other generators, with no CUDA check of their own here.
const HANDLED = new Set(['modules_float32.json', 'modules_float64.json', 'varied.json', 'ops.json', 'momentum.json', 'half.json', 'edges.json']);

let passed = 0;
let failed = 0;
let skipped = 0;

function close(actual, expected, tol, label) {
  const a = actual.toArray ? actual.toArray() : actual;
  if (a.length !== expected.length) throw new Error(`${label}: ${a.length} values, expected ${expected.length}`);
  for (let i = 0; i < a.length; i++) {
    const e = expected[i];
    if (!(Math.abs(a[i] - e) <= tol.atol + tol.rtol * Math.abs(e))) throw new Error(`${label}: element ${i} is ${a[i]}, expected ${e}`);
  }
}

/** The op ran where it was asked to: a result on the host would mean a silent fallback. */
function onDevice(t, label) {
  const want = ON_GPU ? /^cuda/ : /^cpu$/;
  if (!want.test(String(t.device))) throw new Error(`${label} is on ${t.device}, expected ${DEVICE}`);
  return t;
}

function equal(actual, expected, label) {
  if (actual !== expected) throw new Error(`${label}: ${actual}, expected ${expected}`);
}

function check(name, fn) {
  try {
    fn();
    passed++;
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

function skip(name, why) {
  skipped++;
  console.log(`skip ${name}: ${why}`);
}

function formatsFor(shape) {
  return shape.length >= 3 ? ['contiguous', 'channelsLast'] : ['contiguous'];
}

function load(file) {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, file), 'utf8'));
}

if (ON_GPU && !cuda.isAvailable()) {
  console.log(`no usable GPU: ${cuda.unavailableReason()}`);
  console.log('0 passed, 1 failed, 0 skipped');
  process.exit(1);
}
console.log(ON_GPU ? `GPU: ${cuda.getDeviceName(0)} (${cuda.deviceCount()} device(s))` : 'dry run on the CPU: the GPU suite\'s checks, dispatched on cpu');

/** A BatchNorm module through a fixture's steps on DEVICE, the counter included. */
function moduleSteps(setup, inp, steps, fmt) {
  const { dtype } = setup;
  const C = inp.shape[1];
  const opts = { momentum: setup.momentum, affine: setup.affine, trackRunningStats: setup.track_running_stats, dtype };
  if (setup.eps !== undefined) opts.eps = setup.eps;
  const bn = new nn[setup.module](C, opts);
  equal(bn.toString(), setup.repr, 'repr');
  if (setup.affine) {
    bn.weight.copy_(tensor(inp.weight, [C], { dtype }));
    bn.bias.copy_(tensor(inp.bias, [C], { dtype }));
  }
  bn.to(DEVICE);
  steps.forEach((s, i) => {
    bn.train(s.training);
    const y = onDevice(bn.forward(tensor(inp.x[i], inp.shape, { dtype, memoryFormat: fmt, device: DEVICE })), `step ${i} output`);
    equal(y.memoryFormat, fmt, `step ${i} output memory format`);
    close(y, s.y, TOL[dtype], `step ${i} output`);
    const dx = onDevice(bn.backward(tensor(inp.dy[i], inp.shape, { dtype, memoryFormat: fmt, device: DEVICE })), `step ${i} grad input`);
    close(dx, s.dx, TOL[dtype], `step ${i} grad input`);
    if (setup.affine) {
      close(onDevice(bn.weight.grad, 'grad weight'), s.grad_weight, TOL[dtype], `step ${i} grad weight`);
      close(bn.bias.grad, s.grad_bias, TOL[dtype], `step ${i} grad bias`);
    }
    if (setup.track_running_stats) {
      close(onDevice(bn.runningMean, 'running mean'), s.running_mean, TOL[dtype], `step ${i} running mean`);
      close(bn.runningVar, s.running_var, TOL[dtype], `step ${i} running var`);
      equal(Number(bn.numBatchesTracked.item()), s.num_batches_tracked, `step ${i} num_batches_tracked`);
    } else if (bn.runningMean !== null) {
      throw new Error('running stats without tracking');
    }
  });
}

/** Rows [start, start + n) of a logical-order batch. */
function batchSlice(values, shape, start, n) {
  const per = values.length / shape[0];
  return values.slice(start * per, (start + n) * per);
}

/** Every F.* op of one ops fixture case on DEVICE (as test/golden/ops_case.ts does on the CPU). */
function opsCase(c, fmt) {
  const tol = TOL[c.dtype];
  const dtype = c.dtype;
  const C = c.shape[1];
  const on = { dtype, device: DEVICE };
  const vec = (v) => tensor(v, [C], on);
  const x = tensor(c.x, c.shape, { ...on, memoryFormat: fmt });
  const dy = tensor(c.dy, c.shape, { ...on, memoryFormat: fmt });
  const weight = vec(c.weight);
  const bias = vec(c.bias);
  const e = c.expected;

  const { mean, invstd } = F.batchNormStats(x, c.eps);
  close(onDevice(mean, 'stats mean'), e.mean, tol, 'stats mean');
  close(onDevice(invstd, 'stats invstd'), e.invstd, tol, 'stats invstd');
  const means = [];
  const invstds = [];
  let start = 0;
  c.splits.forEach((n, w) => {
    const part = tensor(batchSlice(c.x, c.shape, start, n), [n, ...c.shape.slice(1)], { ...on, memoryFormat: fmt });
    start += n;
    const local = F.batchNormStats(part, c.eps);
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
  close(onDevice(g.mean, 'gathered mean'), e.mean, tol, 'gathered mean');
  close(g.invstd, e.invstd, tol, 'gathered invstd');
  close(onDevice(rm, 'gathered running mean'), e.running_mean, tol, 'gathered running mean');
  close(rv, e.running_var, tol, 'gathered running var');

  const y = onDevice(F.batchNormElemt(x, weight, bias, mean, invstd), 'elemt');
  equal(y.memoryFormat, fmt, 'elemt memory format');
  close(y, e.y, tol, 'elemt');
  const r = F.batchNormBackwardReduce(dy, x, mean, invstd, weight);
  close(onDevice(r.sumDy, 'sum_dy'), e.sum_dy, tol, 'sum_dy');
  close(r.sumDyXmu, e.sum_dy_xmu, tol, 'sum_dy_xmu');
  close(r.gradWeight, e.grad_weight, tol, 'grad weight');
  close(r.gradBias, e.grad_bias, tol, 'grad bias');
  const dx = onDevice(F.batchNormBackwardElemt(dy, x, mean, invstd, weight, r.sumDy, r.sumDyXmu, x.numel() / C), 'backward elemt');
  close(dx, e.dx, tol, 'backward elemt');

  const frm = vec(c.running_mean);
  const frv = vec(c.running_var);
  const fwd = F.nativeBatchNorm(x, weight, bias, frm, frv, true, c.momentum, c.eps);
  close(onDevice(fwd.output, 'nativeBatchNorm output'), e.y, tol, 'nativeBatchNorm output');
  close(frm, e.running_mean, tol, 'nativeBatchNorm running mean');
  close(frv, e.running_var, tol, 'nativeBatchNorm running var');
  const brm = vec(c.running_mean);
  const brv = vec(c.running_var);
  close(F.batchNorm(x, brm, brv, { weight, bias, training: true, momentum: c.momentum, eps: c.eps }), e.y, tol, 'F.batchNorm output');
  close(brm, e.running_mean, tol, 'F.batchNorm running mean');
  close(brv, e.running_var, tol, 'F.batchNorm running var');
  const gt = F.batchNormBackward(dy, x, { weight, saveMean: fwd.saveMean, saveInvstd: fwd.saveInvstd, training: true, eps: c.eps });
  close(onDevice(gt.gradInput, 'batchNormBackward grad input'), e.dx, tol, 'batchNormBackward grad input');
  close(gt.gradWeight, e.grad_weight, tol, 'batchNormBackward grad weight');
  close(gt.gradBias, e.grad_bias, tol, 'batchNormBackward grad bias');

  const wrm = vec(c.running_mean);
  const wrv = vec(c.running_var);
  const wf = F.batchNormWelfordFinalize(F.batchNormWelfordStats(x), wrm, wrv, { eps: c.eps, momentum: c.momentum, dtype, device: x.device });
  close(onDevice(wf.mean, 'welford mean'), e.mean, tol, 'welford mean');
  close(wf.invstd, e.invstd, tol, 'welford invstd');
  close(wrm, e.running_mean, tol, 'welford running mean');
  close(wrv, e.running_var, tol, 'welford running var');

  if (e.eval) {
    const erm = vec(c.running_mean);
    const erv = vec(c.running_var);
    close(onDevice(F.batchNorm(x, erm, erv, { weight, bias, training: false, momentum: c.momentum, eps: c.eps }), 'eval output'), e.eval.y, tol, 'eval output');
    close(erm, c.running_mean, tol, 'eval leaves the running mean');
    const ge = F.batchNormBackward(dy, x, { weight, runningMean: erm, runningVar: erv, training: false, eps: c.eps });
    close(onDevice(ge.gradInput, 'eval grad input'), e.eval.dx, tol, 'eval grad input');
    close(ge.gradWeight, e.eval.grad_weight, tol, 'eval grad weight');
    close(ge.gradBias, e.eval.grad_bias, tol, 'eval grad bias');
  }
}

// SyncBatchNorm's device path and its ops (lib/nn/sync_batchnorm_cuda.ts), loaded from the build.
const SYNC = require(path.resolve(__dirname, '../../dist/nn/sync_batchnorm_cuda'));

/**
 * SyncBatchNorm's device ops over an ops fixture's workers (`splits`, an
 * empty one included) against PyTorch's numbers for the whole batch: each
 * worker's Welford summary, packed rank-major as NCCL's all-gather leaves
 * them (device copies stand in for the collective, which needs one GPU per
 * rank), merged in rank order with the running-stat update; then each
 * worker's elemt, its backward sums added on the device as the all-reduce
 * adds them, the grads accumulated on the device, and each worker's grad
 * input with the merged count.
 */
function syncOpsCase(c, fmt) {
  const tol = TOL[c.dtype];
  const dtype = c.dtype;
  const C = c.shape[1];
  const on = { dtype, device: DEVICE };
  const vec = (v) => tensor(v, [C], on);
  const weight = vec(c.weight);
  const bias = vec(c.bias);
  const e = c.expected;
  const world = c.splits.length;
  const parts = [];
  let start = 0;
  for (const n of c.splits) {
    const shape = [n, ...c.shape.slice(1)];
    parts.push({
      start, n,
      x: tensor(batchSlice(c.x, c.shape, start, n), shape, { ...on, memoryFormat: fmt }),
      dy: tensor(batchSlice(c.dy, c.shape, start, n), shape, { ...on, memoryFormat: fmt }),
    });
    start += n;
  }
  const triple = 3 * C * 8;
  const gathered = tensor(new Float64Array(world * 3 * C), [world * 3 * C], { dtype: 'float64', device: DEVICE });
  parts.forEach((p, w) => gathered.cudaStorage().buffer.copyFrom(onDevice(SYNC.batchNormWelfordSummary(p.x), 'summary').cudaStorage().buffer, triple, w * triple, 0));
  const rm = vec(c.running_mean);
  const rv = vec(c.running_var);
  const anyPart = parts.find((p) => p.n > 0).x;
  const g = SYNC.batchNormGatherWelford(gathered, world, anyPart, rm, rv, { eps: c.eps, momentum: c.momentum }, 'test');
  equal(g.count, c.x.length / C, 'merged count');
  close(onDevice(g.mean, 'merged mean'), e.mean, tol, 'merged mean');
  close(onDevice(g.invstd, 'merged invstd'), e.invstd, tol, 'merged invstd');
  close(rm, e.running_mean, tol, 'merged running mean');
  close(rv, e.running_var, tol, 'merged running var');

  let sumDy = null;
  let sumDyXmu = null;
  const grads = { weight: null, bias: null };
  for (const p of parts.filter((q) => q.n > 0)) {
    const y = onDevice(F.batchNormElemt(p.x, weight, bias, g.mean, g.invstd), 'worker output');
    close(y, batchSlice(e.y, c.shape, p.start, p.n), tol, `worker at row ${p.start} output`);
    const r = F.batchNormBackwardReduce(p.dy, p.x, g.mean, g.invstd, weight);
    if (sumDy === null) {
      sumDy = r.sumDy;
      sumDyXmu = r.sumDyXmu;
      grads.weight = r.gradWeight;
      grads.bias = r.gradBias;
    } else {
      SYNC.addInto(sumDy, r.sumDy, 'test');
      SYNC.addInto(sumDyXmu, r.sumDyXmu, 'test');
      SYNC.accumulateOnDevice(grads.weight, r.gradWeight, 'test');
      SYNC.accumulateOnDevice(grads.bias, r.gradBias, 'test');
    }
  }
  close(onDevice(sumDy, 'summed sum_dy'), e.sum_dy, tol, 'summed sum_dy');
  close(sumDyXmu, e.sum_dy_xmu, tol, 'summed sum_dy_xmu');
  close(onDevice(grads.weight, 'accumulated grad weight'), e.grad_weight, tol, 'accumulated grad weight');
  close(grads.bias, e.grad_bias, tol, 'accumulated grad bias');
  for (const p of parts.filter((q) => q.n > 0)) {
    const dx = onDevice(F.batchNormBackwardElemt(p.dy, p.x, g.mean, g.invstd, weight, sumDy, sumDyXmu, g.count), 'worker grad input');
    close(dx, batchSlice(e.dx, c.shape, p.start, p.n), tol, `worker at row ${p.start} grad input`);
  }

  // One value per channel over the group: the caller refuses it, so the running stats stay.
  const one = tensor(c.x.slice(0, C), [1, C], on);
  const lone = tensor(new Float64Array(3 * C), [3 * C], { dtype: 'float64', device: DEVICE });
  lone.cudaStorage().buffer.copyFrom(SYNC.batchNormWelfordSummary(one).cudaStorage().buffer);
  const orm = vec(c.running_mean);
  const orv = vec(c.running_var);
  equal(SYNC.batchNormGatherWelford(lone, 1, one, orm, orv, { eps: c.eps, momentum: c.momentum }, 'test').count, 1, 'count of one value');
  close(orm, c.running_mean, tol, 'running mean after one value');
  close(orv, c.running_var, tol, 'running var after one value');
}

/** MomentumBatchNorm through six steps, its schedule (cur_iter, momentum) included. */
function momentumCase(c, inp, fmt) {
  const tol = TOL[c.dtype];
  const dtype = c.dtype;
  const C = inp.shape[1];
  const bn = new nn[c.module](C, { affine: c.affine, momentum: c.momentum, totalIters: c.total_iters, dtype });
  if (c.affine) {
    bn.weight.copy_(tensor(inp.weight, [C], { dtype }));
    bn.bias.copy_(tensor(inp.bias, [C], { dtype }));
  }
  bn.to(DEVICE);
  c.steps.forEach((s, i) => {
    bn.train(s.training);
    close(onDevice(bn.forward(tensor(inp.x[i], inp.shape, { dtype, memoryFormat: fmt, device: DEVICE })), 'output'), s.y, tol, `step ${i} output`);
    close(onDevice(bn.backward(tensor(inp.dy[i], inp.shape, { dtype, memoryFormat: fmt, device: DEVICE })), 'grad input'), s.dx, tol, `step ${i} grad input`);
    close(onDevice(bn.runningMean, 'running mean'), s.running_mean, tol, `step ${i} running mean`);
    close(bn.runningVar, s.running_var, tol, `step ${i} running var`);
    equal(bn.curIter, s.cur_iter, `step ${i} cur_iter`);
    if (!(Math.abs(bn.momentum - s.momentum) < 1e-14)) throw new Error(`step ${i} momentum ${bn.momentum}, expected ${s.momentum}`);
    if (c.affine) {
      close(bn.weight.grad, s.grad_weight, tol, `step ${i} grad weight`);
      close(bn.bias.grad, s.grad_bias, tol, `step ${i} grad bias`);
    }
  });
}

/** float16 / bfloat16 inputs, float32 parameters and statistics. */
function halfCase(c) {
  const C = c.shape[1];
  const bn = new nn[c.module](C);
  bn.weight.copy_(tensor(c.weight, [C]));
  bn.bias.copy_(tensor(c.bias, [C]));
  bn.to(DEVICE);
  c.steps.forEach((s, i) => {
    bn.train(s.training);
    const y = onDevice(bn.forward(tensor(s.x, c.shape, { dtype: c.dtype, device: DEVICE })), 'output');
    equal(y.dtype, c.dtype, 'output dtype');
    close(y, s.y, TOL[c.dtype], `step ${i} output`);
    close(bn.backward(tensor(s.dy, c.shape, { dtype: c.dtype, device: DEVICE })), s.dx, TOL[c.dtype], `step ${i} grad input`);
    close(bn.weight.grad, s.grad_weight, { rtol: 1e-4, atol: 1e-4 }, `step ${i} grad weight`);
    close(bn.bias.grad, s.grad_bias, { rtol: 1e-4, atol: 1e-4 }, `step ${i} grad bias`);
    close(bn.runningMean, s.running_mean, TOL.float32, `step ${i} running mean`);
    close(bn.runningVar, s.running_var, { rtol: 1e-4, atol: 1e-5 }, `step ${i} running var`);
  });
}

const ran = [];

// ---- edges.json: the statistics math's edge cases (test/golden/generate_edges.py) ----
// The torch numbers the CPU paths meet in test/golden/edges.test.ts; CUDA's
// stats, Welford summary and fused forward finalize with the same
// native/kernels/statistics.h. Non-finite values are written "nan", "inf",
// "-inf" and must be matched exactly.

const decode = (v) => (v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v);

function same(actual, expected, tol, label) {
  const a = actual.toArray ? actual.toArray() : actual;
  if (a.length !== expected.length) throw new Error(`${label}: ${a.length} values, expected ${expected.length}`);
  for (let i = 0; i < a.length; i++) {
    const e = decode(expected[i]);
    const ok = Number.isFinite(e) ? Math.abs(a[i] - e) <= tol.atol + tol.rtol * Math.abs(e) : Object.is(a[i], e) || (Number.isNaN(a[i]) && Number.isNaN(e));
    if (!ok) throw new Error(`${label}: element ${i} is ${a[i]}, PyTorch gives ${e}`);
  }
}

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

function edgesForward(c, fmt, momentum) {
  const tol = TOL[c.dtype];
  const C = c.shape[1];
  const on = { dtype: c.dtype, device: DEVICE };
  const vec = (f) => tensor(Array.from({ length: C }, (_, i) => f(i)), [C], on);
  const params = () => [vec((i) => i * 0.25 + 0.5), vec((i) => i * 0.5 - 1), vec((i) => i * 0.25), vec((i) => i * 0.5 + 1)];
  const x = tensor(edgeInput(c.shape, c.constant), c.shape, { ...on, memoryFormat: fmt });
  const stats = (got, at) => {
    same(onDevice(got.mean, `${at} mean`), c.save_mean, tol, `${at} mean`);
    same(got.invstd, c.save_invstd, tol, `${at} invstd`);
    same(onDevice(got.rm, `${at} running mean`), c.running_mean, tol, `${at} running mean`);
    same(got.rv, c.running_var, tol, `${at} running var`);
  };

  const [w, b, rm, rv] = params();
  const r = F.nativeBatchNorm(x, w, b, rm, rv, true, momentum, c.eps);
  stats({ mean: r.saveMean, invstd: r.saveInvstd, rm, rv }, 'nativeBatchNorm');
  onDevice(r.output, 'nativeBatchNorm output');
  if (c.y) {
    // One value per channel: torch's y carries float32 rounding of terms ~|x| / sqrt(eps) (edges.test.ts).
    same(r.output, c.y, c.name.startsWith('one value') && c.dtype === 'float32' ? { rtol: 3e-4, atol: 3e-4 } : tol, 'nativeBatchNorm output');
  } else {
    const v = r.output.toArray();
    const inner = c.shape.slice(2).reduce((p, q) => p * q, 1);
    const sums = Array.from({ length: C }, () => [0, 0]);
    for (let k = 0; k < v.length; k++) {
      sums[Math.floor(k / inner) % C][0] += v[k];
      sums[Math.floor(k / inner) % C][1] += Math.abs(v[k]);
    }
    const rel = c.dtype === 'float32' ? 1e-4 : 1e-9;
    for (let ch = 0; ch < C; ch++) {
      const [sum, abs] = c.y_summary[ch];
      close([sums[ch][1]], [abs], { rtol: rel, atol: rel }, `channel ${ch} output sum |y|`);
      close([sums[ch][0] / (1 + abs)], [sum / (1 + abs)], { rtol: rel, atol: rel }, `channel ${ch} output sum / (1 + sum |y|)`);
    }
  }

  const [, , rm2, rv2] = params();
  const s = F.batchNormStats(x, c.eps);
  const count = x.numel() / C;
  const g = F.batchNormGatherStatsWithCounts(tensor(s.mean.toArray(), [1, C], on), tensor(s.invstd.toArray(), [1, C], on), rm2, rv2,
    { momentum, eps: c.eps, counts: [count] });
  stats({ mean: g.mean, invstd: g.invstd, rm: rm2, rv: rv2 }, 'stats + gather');

  const [, , rm3, rv3] = params();
  const f = F.batchNormWelfordFinalize(F.batchNormWelfordStats(x), rm3, rv3, { eps: c.eps, momentum, dtype: c.dtype, device: DEVICE });
  stats({ mean: f.mean, invstd: f.invstd, rm: rm3, rv: rv3 }, 'welford stats + finalize');
}

function edgesGather(c, momentum) {
  const tol = TOL[c.dtype];
  const C = c.shape[1];
  const on = { dtype: c.dtype, device: DEVICE };
  // An empty rank's statistics are NaN here: the merge must not read them.
  const pick = (k) => c.ranks.flatMap((r) => (r.count > 0 ? r[k].map(decode) : new Array(C).fill(NaN)));
  const rm = tensor(new Array(C).fill(0), [C], on);
  const rv = tensor(new Array(C).fill(1), [C], on);
  const world = c.ranks.length;
  const g = F.batchNormGatherStatsWithCounts(tensor(pick('mean'), [world, C], on), tensor(pick('invstd'), [world, C], on), rm, rv,
    { momentum, eps: c.eps, counts: c.ranks.map((r) => r.count) });
  same(onDevice(g.mean, 'gathered mean'), c.save_mean, tol, 'gathered mean');
  same(g.invstd, c.save_invstd, tol, 'gathered invstd');
  same(onDevice(rm, 'running mean'), c.running_mean, tol, 'running mean');
  same(rv, c.running_var, tol, 'running var');
}

function fixtureSuite() {
  for (const dtype of ['float32', 'float64']) {
    const file = `modules_${dtype}.json`;
    const fx = load(file);
    for (const c of fx.cases) {
      const inp = fx.inputs[c.kind];
      for (const fmt of formatsFor(inp.shape)) {
        check(`${file} ${c.kind} affine=${c.affine} track=${c.track_running_stats} momentum=${c.momentum} ${fmt}`, () =>
          moduleSteps({ ...c, module: inp.module, dtype }, inp, c.steps, fmt));
      }
    }
    ran.push(file);
  }

  const varied = load('varied.json');
  for (const c of varied.modules) {
    for (const fmt of formatsFor(c.shape)) {
      check(`varied.json ${c.module} [${c.shape}] ${c.dtype} eps=${c.eps} momentum=${c.momentum} affine=${c.affine} track=${c.track_running_stats} ${fmt}`, () =>
        moduleSteps(c, c, c.steps, fmt));
    }
  }
  for (const c of varied.ops) {
    for (const fmt of formatsFor(c.shape)) check(`varied.json ops ${c.name} ${fmt}`, () => opsCase(c, fmt));
  }
  ran.push('varied.json');

  for (const c of load('ops.json').cases) {
    for (const fmt of formatsFor(c.shape)) check(`ops.json ${c.name} ${fmt}`, () => opsCase(c, fmt));
    const name = `ops.json ${c.name}: SyncBatchNorm's device ops over workers [${c.splits}]`;
    if (ON_GPU) check(name, () => formatsFor(c.shape).forEach((fmt) => syncOpsCase(c, fmt)));
    else skip(name, 'the device path of SyncBatchNorm needs a CUDA device');
  }
  ran.push('ops.json');

  const momentum = load('momentum.json');
  for (const c of momentum.cases) {
    const inp = momentum.inputs[c.inputs];
    for (const fmt of formatsFor(inp.shape)) {
      check(`momentum.json ${c.module} ${c.kind} ${c.dtype} affine=${c.affine} momentum=${c.momentum} totalIters=${c.total_iters} ${fmt}`, () => momentumCase(c, inp, fmt));
    }
  }
  ran.push('momentum.json');

  for (const c of load('half.json').cases) {
    check(`half.json ${c.dtype} input ${c.module} [${c.shape}]`, () => halfCase(c));
  }
  ran.push('half.json');

  const edges = load('edges.json');
  for (const c of edges.forward) {
    for (const fmt of formatsFor(c.shape)) check(`edges.json ${c.name} ${c.dtype} ${fmt}`, () => edgesForward(c, fmt, edges.momentum));
  }
  for (const c of edges.split) check(`edges.json ${c.name} ${c.dtype}: gather over ranks [${c.sizes}]`, () => edgesGather(c, edges.momentum));
  ran.push('edges.json');

  for (const f of fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.json') && !HANDLED.has(f)).sort()) {
    skip(`fixtures/${f}`, 'this suite has no CUDA check for it');
  }

  if (ON_GPU) {
    check('mixing devices is an error', () => {
      const bn = new nn.BatchNorm1d(3).to('cuda');
      let message = '';
      try {
        bn.forward(tensor([1, 2, 3, 4, 5, 6], [2, 3]));
      } catch (e) {
        message = e.message;
      }
      if (!/Expected all tensors to be on the same device/.test(message)) throw new Error(`got: ${message}`);
    });
  } else {
    skip('mixing devices is an error', 'needs a CUDA device');
  }

  check(`an empty batch on ${DEVICE}`, () => {
    const bn = new nn.BatchNorm2d(3).to(DEVICE);
    const y = bn.forward(tensor([], [0, 3, 2, 2], { device: DEVICE }));
    if (y.numel() !== 0) throw new Error('expected an empty output');
    close(bn.runningMean, [0, 0, 0], TOL.float32, 'running mean unchanged');
  });

}

async function checkAsync(name, fn) {
  try {
    await fn();
    passed++;
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// NCCL, world size 1 (NCCL refuses two ranks on one GPU, and this machine
// has one): the rendezvous through the store, every collective on device
// memory and through the host staging, the Welford merge, gradients.
async function ncclSuite() {
  if (!ON_GPU) {
    skip('nccl world of one', 'NCCL reduces CUDA tensors');
    return;
  }
  // Without SYNCBN_NCCL_LIBRARY the loader's path is searched (bench/gpu/run.sh sets it to PyTorch's copy).
  console.log(`NCCL: ${process.env.SYNCBN_NCCL_LIBRARY || 'libnccl.so.2 on the loader path'}`);
  const port = await freePort();
  await checkAsync('nccl world of one: rendezvous and collectives', async () => {
    const world = await dist.initProcessGroup({ backend: 'nccl', rank: 0, worldSize: 1, initMethod: `tcp://127.0.0.1:${port}`, timeoutMs: 60000, device: 0 });
    try {
      if (world.backend !== 'nccl' || world.size !== 1) throw new Error(`world ${world.backend} of ${world.size}`);
      const t = tensor([1, -2, 3], [3], { device: 'cuda' });
      dist.allReduce(t);
      close(t, [1, -2, 3], TOL.float32, 'sum');
      dist.allReduce(t, { op: 'max' });
      close(t, [1, -2, 3], TOL.float32, 'max');
      dist.allReduce(t, { op: 'avg' });
      close(t, [1, -2, 3], TOL.float32, 'avg');
      const d = tensor([0.5, 0.25], [2], { dtype: 'float64', device: 'cuda' });
      dist.broadcast(d, 0);
      close(d, [0.5, 0.25], TOL.float64, 'broadcast');
      const out = [tensor([0, 0], [2], { dtype: 'float64', device: 'cuda' })];
      dist.allGather(out, d);
      close(out[0], [0.5, 0.25], TOL.float64, 'all-gather');
      dist.barrier();
      let refused = '';
      try {
        dist.allReduce(tensor([1]));
      } catch (e) {
        refused = e.message;
      }
      if (!/nccl backend reduces CUDA tensors/.test(refused)) throw new Error(`a CPU tensor was not refused: ${refused}`);
      // The Welford merge (two sum all-reduces on NCCL) with the fingerprint check.
      const triples = new Float64Array([4, 1e4, 2, 0, 0, 0]);
      world.syncAllReduce([7, 2, 1], triples, 'welford', { check: true, where: 'test', describe: () => 'layer' });
      close(Array.from(triples), [4, 1e4, 2, 0, 0, 0], TOL.float64, 'welford');
      // Averaged gradients of a CUDA module.
      const bn = new nn.BatchNorm1d(2).to('cuda');
      const x = tensor([1, 2, 3, 5, 4, 0], [3, 2], { device: 'cuda' });
      bn.forward(x);
      bn.backward(tensor([1, 0, 0, 1, 1, 1], [3, 2], { device: 'cuda' }));
      const before = bn.bias.grad.toArray().slice();
      dist.allReduceGradients(bn);
      close(bn.bias.grad, Array.from(before), TOL.float32, 'averaged gradients');
      // SyncBatchNorm in a world of one falls back to BatchNorm's kernels, counter included:
      // against a fresh BatchNorm1d after the same one step (bn above has taken one already).
      const sbn = new nn.SyncBatchNorm(2).to('cuda');
      const ref = new nn.BatchNorm1d(2).to('cuda');
      close(sbn.forward(x), ref.forward(x).toArray(), TOL.float32, 'SyncBatchNorm world of one');
      equal(Number(sbn.numBatchesTracked.item()), 1, 'SyncBatchNorm num_batches_tracked');
      close(sbn.runningMean, ref.runningMean.toArray(), TOL.float32, 'SyncBatchNorm running mean');
      close(sbn.runningVar, ref.runningVar.toArray(), TOL.float32, 'SyncBatchNorm running var');
      ncclSyncPath(world);
    } finally {
      await dist.destroyProcessGroup();
    }
  });
  await ncclAcrossGpus();
}

/**
 * nn.SyncBatchNorm over NCCL end to end, one process per GPU (NCCL refuses
 * two ranks on one GPU): test/gpu/nccl_sync_worker.js on every ops.json
 * case. Skipped, and counted, with fewer than two GPUs.
 */
async function ncclAcrossGpus() {
  const name = 'nccl SyncBatchNorm across GPUs, one process per GPU';
  const gpus = cuda.deviceCount();
  if (gpus < 2) {
    skip(name, `needs two CUDA devices, this machine has ${gpus}`);
    return;
  }
  const world = Math.min(gpus, 4);
  const port = await freePort();
  await checkAsync(`${name} (${world} ranks)`, async () => {
    const runs = await Promise.all(Array.from({ length: world }, (_, rank) => new Promise((resolve) => {
      const child = spawn(process.execPath, [path.join(__dirname, 'nccl_sync_worker.js')], {
        env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(world), MASTER_PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => { out += d; });
      child.stderr.on('data', (d) => { out += d; });
      const timer = setTimeout(() => child.kill('SIGKILL'), 300000);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ rank, code, signal, out });
      });
    })));
    const bad = runs.filter((r) => r.code !== 0);
    if (bad.length > 0) {
      throw new Error(bad.map((r) => `rank ${r.rank} exited ${r.code ?? r.signal}:\n${r.out.trim().split('\n').slice(-20).join('\n')}`).join('\n'));
    }
  });
}

/**
 * SyncBatchNorm's device path through NCCL itself (a world of one: a
 * layer would not sync there, so its functions are called directly) against
 * PyTorch's numbers: the all-gather of the Welford summary with the
 * fingerprint checked, the merge, and the in-place all-reduce of the packed
 * backward sums.
 */
function ncclSyncPath(world) {
  for (const c of load('ops.json').cases) {
    const tol = TOL[c.dtype];
    const C = c.shape[1];
    const on = { dtype: c.dtype, device: 'cuda' };
    const vec = (v) => tensor(v, [C], on);
    const x = tensor(c.x, c.shape, on);
    const dy = tensor(c.dy, c.shape, on);
    const weight = vec(c.weight);
    const e = c.expected;
    const rm = vec(c.running_mean);
    const rv = vec(c.running_var);
    const at = (k) => ({ fingerprint: [k, C, 1], check: true, where: `nccl SyncBatchNorm ${c.name}` });
    const s = SYNC.syncStatsOnDevice(x, world, at(0), { runningMean: rm, runningVar: rv, eps: c.eps, momentum: c.momentum });
    equal(s.count, c.x.length / C, `${c.name} nccl merged count`);
    close(onDevice(s.mean, 'nccl mean'), e.mean, tol, `${c.name} nccl mean`);
    close(s.invstd, e.invstd, tol, `${c.name} nccl invstd`);
    close(rm, e.running_mean, tol, `${c.name} nccl running mean`);
    close(rv, e.running_var, tol, `${c.name} nccl running var`);
    close(F.batchNormElemt(x, weight, vec(c.bias), s.mean, s.invstd), e.y, tol, `${c.name} nccl output`);
    const r = F.batchNormBackwardReduce(dy, x, s.mean, s.invstd, weight);
    SYNC.syncGradSumsOnDevice(r.sumDy, r.sumDyXmu, world, at(1));
    close(onDevice(r.sumDy, 'nccl sum_dy'), e.sum_dy, tol, `${c.name} nccl sum_dy`);
    close(r.sumDyXmu, e.sum_dy_xmu, tol, `${c.name} nccl sum_dy_xmu`);
    close(F.batchNormBackwardElemt(dy, x, s.mean, s.invstd, weight, r.sumDy, r.sumDyXmu, s.count), e.dx, tol, `${c.name} nccl grad input`);
  }
}

if (SUITES.has('fixtures')) fixtureSuite();
(SUITES.has('nccl') ? ncclSuite() : Promise.resolve()).then(() => {
  if (SUITES.has('fixtures')) console.log(`fixture files run: ${ran.join(', ')}`);
  console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
  process.exit(failed === 0 ? 0 : 1);
});
