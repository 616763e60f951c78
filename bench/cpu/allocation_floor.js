#!/usr/bin/env node
// Where outputs come from, against what V8's collector does with them
// (bench/NOTES.md 32 and 34). The raw kernels (no nn layer) run a forward +
// backward loop whose two outputs per step come from one allocation
// strategy, held by the loop as a user holds `y = bn.forward(x)`:
//
//   node     Buffer.allocUnsafeSlow, as lib/storage.ts allocates outputs
//   external napi_create_external_arraybuffer over malloc'ed memory
//   adjust:F node, then napi_adjust_external_memory(-F * bytes)
//   credit:M node, with up to M MiB of each output's bytes taken off V8's
//            external count and given back as V8's count falls (bounded)
//   ballast:K node, plus an untouched K * bytes buffer dropped at once
//   probe:W  node, plus a new 8-byte ArrayBuffer after the forward (W = f),
//            the backward (b) or both (fb): a point where V8 checks its
//            young array-buffer bytes
//   reuse    the same two arrays every step (the disposed path's kernels)
//
// and a holding pattern: held (y and dx kept until the next step replaces
// them), dropped (never kept), sparse (every 8th y kept for 24 steps, the
// rest dropped). Prints one JSON line: ms per step, minor page faults per
// step, collections by kind, peak RSS, external blocks still live.
// Strategies external, adjust and credit build allocation_probe.c with the
// C compiler (`cc`, or $CC) and the N-API headers the addon is built with.
//
//   node [v8 flags] bench/cpu/allocation_floor.js <n,c,inner> <steps> <strategy> [pattern] [threads]
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { PerformanceObserver, constants } = require('node:perf_hooks');
const v8 = require('node:v8');
const { native } = require(path.resolve(__dirname, '../../dist/native'));

const [shapeText, stepsText, strategy = 'node', pattern = 'held', threadsText = '2'] = process.argv.slice(2);
const shape = (shapeText || '').split(',').map(Number);
const steps = Number(stepsText);
const [kind, argText] = strategy.split(':');
const arg = Number(argText || 0);
const KINDS = ['node', 'external', 'adjust', 'credit', 'ballast', 'probe', 'reuse'];
if (shape.length !== 3 || shape.some((d) => !(d > 0)) || !(steps > 0) || !KINDS.includes(kind) ||
    !['held', 'dropped', 'sparse'].includes(pattern)) {
  console.error('usage: allocation_floor.js <n,c,inner> <steps> node|external|adjust:F|credit:MiB|ballast:K|probe:f|b|fb|reuse [held|dropped|sparse] [threads]');
  process.exit(2);
}

/** The probe addon, compiled (as machine.js does bandwidth.cpp) when missing or older than its source. */
function probe() {
  const source = path.join(__dirname, 'allocation_probe.c');
  const out = path.join(__dirname, '../../build/bench/allocation_probe.node');
  if (fs.existsSync(out) && fs.statSync(source).mtimeMs <= fs.statSync(out).mtimeMs) return require(out);
  // cmake-js builds the addon against node-api-headers; Node's own
  // headers serve as well.
  let headers = null;
  try {
    headers = require('node-api-headers').include_dir;
  } catch {
    headers = null;
  }
  const places = [headers, path.resolve(process.execPath, '../../include/node'), '/usr/include/node'].filter(Boolean);
  const include = places.find((d) => fs.existsSync(path.join(d, 'node_api.h')));
  if (!include) throw new Error(`strategy ${kind} needs node_api.h, found in none of ${places.join(', ')}`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const cc = process.env.CC || 'cc';
  // Written aside and renamed, so a concurrent run never loads half a file.
  const tmp = `${out}.${process.pid}`;
  const r = spawnSync(cc, ['-O2', '-shared', '-fPIC', `-I${include}`, source, '-o', tmp], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`bench/cpu/allocation_probe.c did not compile with ${cc} (set CC to a C compiler): ${r.error ? r.error.message : r.stderr.trim()}`);
  }
  fs.renameSync(tmp, out);
  return require(out);
}
const p = ['external', 'adjust', 'credit'].includes(kind) ? probe() : null;

native.setNumThreads(Number(threadsText));
native.keepFreedMemory(32 << 20, 256 << 20);
const [N, C, inner] = shape;
const n = N * C * inner;
const bytes = 4 * n;
const random = (k) => Float32Array.from({ length: k }, () => Math.random() * 2 - 1);
const x = random(n);
const dy = random(n);
const w = new Float32Array(C).fill(1);
const b = new Float32Array(C);
const rm = new Float32Array(C);
const rv = new Float32Array(C).fill(1);
const sm = new Float32Array(C);
const si = new Float32Array(C);
const gw = new Float32Array(C);
const gb = new Float32Array(C);

// credit: what is taken off V8's external count, and the count as last seen.
let credit = 0;
let lastTotal = p ? p.adjust(0) : 0;
const reused = [new Float32Array(n), new Float32Array(n)];

function output(slot) {
  if (kind === 'reuse') return reused[slot];
  if (kind === 'external') return new Float32Array(p.ext(bytes));
  if (kind === 'credit') {
    // Give back what V8's count fell by since we last saw it (its sweeper
    // freed outputs), then take this output's bytes, never over the cap.
    const total = p.adjust(0);
    const back = Math.min(credit, Math.max(0, lastTotal - total));
    const take = Math.min(bytes, arg * 2 ** 20 - (credit - back));
    lastTotal = p.adjust(back - take) + bytes;
    credit += take - back;
  }
  const buf = Buffer.allocUnsafeSlow(bytes);
  if (kind === 'adjust') p.adjust(-arg * bytes);
  if (kind === 'ballast') Buffer.allocUnsafeSlow(Math.round(arg * bytes));
  return new Float32Array(buf.buffer, buf.byteOffset, n);
}
function forward() {
  const y = output(0);
  native.ops.forwardTraining({ dtype: 'float32', shape, channelsLast: false, input: x, weight: w, bias: b, eps: 1e-5, momentum: 0.1,
    runningMean: rm, runningVar: rv, output: y, saveMean: sm, saveInvstd: si });
  if (kind === 'probe' && argText.includes('f')) new ArrayBuffer(8);
  return y;
}
function backward() {
  const d = output(1);
  native.ops.backward({ dtype: 'float32', shape, channelsLast: false, gradOutput: dy, input: x, weight: w, mean: sm, invstdOrVar: si,
    training: true, eps: 1e-5, gradInput: d, gradWeight: gw, gradBias: gb, accumulate: true });
  if (kind === 'probe' && argText.includes('b')) new ArrayBuffer(8);
  return d;
}

let y = null;
let dx = null;
const kept = [];
function step(i) {
  if (pattern === 'held') {
    y = forward();
    dx = backward();
  } else {
    const t = forward();
    backward();
    if (pattern === 'sparse' && i % 8 === 0) {
      kept.push(t);
      if (kept.length > 3) kept.shift();
    }
  }
}

for (let i = 0; i < 20; i++) step(i);
const gcs = { minor: 0, markCompact: 0, incremental: 0, gcMs: 0 };
let counting = true;
const observer = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (!counting) continue;
    if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) gcs.minor++;
    else if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcs.markCompact++;
    else if (e.detail.kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL) gcs.incremental++;
    gcs.gcMs += e.duration;
  }
});
observer.observe({ entryTypes: ['gc'] });
const r0 = process.resourceUsage();
const t0 = process.hrtime.bigint();
for (let i = 0; i < steps; i++) step(i);
const ms = Number(process.hrtime.bigint() - t0) / 1e6 / steps;
const r1 = process.resourceUsage();
const liveBlocks = p ? p.live() : 0;
const externalMB = v8.getHeapStatistics().external_memory / 2 ** 20;
// Collection entries arrive on a later turn of the event loop.
setTimeout(() => {
  counting = false;
  observer.disconnect();
  console.log(JSON.stringify({
    shape: shapeText, strategy, pattern, msPerStep: +ms.toFixed(3),
    faultsPerStep: +((r1.minorPageFault - r0.minorPageFault) / steps).toFixed(1),
    ...gcs, gcMs: Math.round(gcs.gcMs), peakRssMB: Math.round(r1.maxRSS / 1024),
    externalBlocksLive: liveBlocks, v8ExternalMB: Math.round(externalMB),
  }));
}, 50);
