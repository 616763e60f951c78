#!/usr/bin/env node
// load() of a real checkpoint, A/B: torchvision's ResNet-50 state dict
// (random init, written by /usr/bin/python3 with python3-torchvision), loaded
// in a fresh process per run by package A and package B alternately; prints
// the median load time and peak RSS of each and B/A. Then checks that B's
// round trip (load, save) gives PyTorch back every tensor bit for bit.
//
//   cp -r dist /tmp/base/dist; ln -s $PWD/build $PWD/node_modules /tmp/base/   # before a change
//   node bench/checkpoint_load.js /tmp/base .                                  # after it
//
// RUNS=9 sets the runs per package; FILE=x.pt loads another checkpoint.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const [rootA, rootB] = process.argv.slice(2).map((p) => path.resolve(p));
if (!rootA || !rootB) {
  console.error('usage: node bench/checkpoint_load.js <package root A> <package root B>');
  process.exit(2);
}
const runs = Number(process.env.RUNS || 9);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'syncbn-ckpt-bench-'));
const python = (code, ...args) => {
  const r = spawnSync('/usr/bin/python3', ['-c', code, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
};

try {
  const file = process.env.FILE || path.join(dir, 'resnet50.pt');
  if (!process.env.FILE) {
    python('import sys, torch, torchvision\ntorch.manual_seed(0)\ntorch.save(torchvision.models.resnet50().state_dict(), sys.argv[1])', file);
  }
  // One load per process: peak RSS is the process's, the addon and syncbn already loaded before the clock starts.
  const child = `
    const s = require(process.argv[1]);
    const before = process.memoryUsage().rss;
    const t = process.hrtime.bigint();
    const sd = s.load(process.argv[2]);
    const ms = Number(process.hrtime.bigint() - t) / 1e6;
    if (process.argv[3]) s.save(sd, process.argv[3]);
    console.log(JSON.stringify({ ms, before, peak: process.resourceUsage().maxRSS * 1024, keys: Object.keys(sd).length }));`;
  const once = (root, out) => {
    const r = spawnSync(process.execPath, ['-e', child, path.join(root, 'dist'), file, out || ''], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${root}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };
  const samples = { A: [], B: [] };
  for (let i = 0; i < runs; i++) {
    samples.A.push(once(rootA));
    samples.B.push(once(rootB));
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const mb = (b) => (b / 2 ** 20).toFixed(1);
  const size = fs.statSync(file).size;
  console.log(`${path.basename(file)}: ${mb(size)} MiB, ${samples.A[0].keys} keys; ${runs} runs each, alternating, medians`);
  const row = {};
  for (const k of ['A', 'B']) {
    const s = samples[k];
    row[k] = { ms: median(s.map((x) => x.ms)), peak: median(s.map((x) => x.peak)), before: median(s.map((x) => x.before)) };
    console.log(`${k} ${k === 'A' ? rootA : rootB}: load ${row[k].ms.toFixed(1)} ms, peak RSS ${mb(row[k].peak)} MiB ` +
      `(${mb(row[k].before)} MiB before the load, so +${mb(row[k].peak - row[k].before)} MiB)`);
  }
  console.log(`B/A: time ${(row.B.ms / row.A.ms).toFixed(2)}x, peak RSS ${(row.B.peak / row.A.peak).toFixed(2)}x, ` +
    `RSS added by the load ${((row.B.peak - row.B.before) / (row.A.peak - row.A.before)).toFixed(2)}x`);

  const out = path.join(dir, 'round_trip.pt');
  once(rootB, out);
  const verdict = python(`
import sys, torch
a = torch.load(sys.argv[1], weights_only=True)
b = torch.load(sys.argv[2], weights_only=True)
assert list(a) == list(b), 'keys differ'
bad = [k for k in a if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape
       or not torch.equal(a[k].contiguous().view(torch.uint8) if a[k].dim() else a[k], b[k].contiguous().view(torch.uint8) if b[k].dim() else b[k])]
print(f'round trip by B: {len(a)} tensors, {sum(t.numel() for t in a.values())} elements, {len(bad)} differ' + (f': {bad[:5]}' if bad else ', bit-identical'))
sys.exit(1 if bad else 0)`, file, out);
  process.stdout.write(verdict);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
