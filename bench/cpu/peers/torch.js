// PyTorch CPU (Debian's python3-torch): torch.nn.BatchNorm*d as users write
// it, in a Python process of its own that times each case internally and
// answers over a pipe; same thread count. Its training loop runs in a fresh
// process, so that the peak RSS is the loop's.
'use strict';

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');

const PYTHON = process.env.SYNCBN_BENCH_PYTHON || '/usr/bin/python3';

let child = null;
let lines = null;
const waiting = [];

function send(cmd) {
  return new Promise((resolve, reject) => {
    waiting.push({ resolve, reject });
    child.stdin.write(JSON.stringify(cmd) + '\n');
  });
}

module.exports = {
  name: 'pytorch',
  async init(threads) {
    if (!fs.existsSync(PYTHON)) return { available: false, reason: `${PYTHON} not found (install Debian's python3-torch)` };
    child = spawn(PYTHON, [path.join(__dirname, 'torch_peer.py')], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    lines = readline.createInterface({ input: child.stdout });
    lines.on('line', (l) => waiting.shift()?.resolve(JSON.parse(l)));
    const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const first = send({ cmd: 'init', threads });
    const r = await Promise.race([first, exited.then((code) => ({ exit: code }))]);
    if (r.exit !== undefined) {
      return { available: false, reason: `PyTorch did not start (exit ${r.exit}): ${stderr.trim().split('\n').pop()}` };
    }
    child.on('exit', () => {
      for (const w of waiting.splice(0)) w.reject(new Error(`the PyTorch process exited: ${stderr.trim().split('\n').pop()}`));
    });
    return { available: true, version: r.version, threads: r.threads, detail: 'torch.nn.BatchNorm*d' };
  },
  async measureRemote(c, t) {
    const r = await send({
      cmd: 'measure', shape: c.shape, format: c.format, mode: c.mode, dtype: c.dtype ?? 'float32', reps: t.reps, warmup: t.warmup,
      warm_ms: t.warmMs, sample_ms: t.sampleMs, budget_ms: t.budgetMs, slow_ms: t.slowMs,
    });
    if (r.error) process.stderr.write(`  pytorch: ${c.id}: not run: ${r.error}\n`);
    return r.samples;
  },
  /** The PyTorch process's id (for its CPU time in /proc), null before init. */
  pid() {
    return child ? child.pid : null;
  },
  /** `steps` forward + backward steps of the training loop in a fresh process: { msPerStep, peakRssMB, ... }. */
  trainingLoop(shape, steps, threads) {
    const out = execFileSync(PYTHON, [path.join(__dirname, 'torch_peer.py'), '--loop', shape.join(','), String(steps), String(threads)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return JSON.parse(out.trim().split('\n').pop());
  },
  async releaseRemote() {
    await send({ cmd: 'release' });
  },
  async close() {
    if (child) child.stdin.end();
  },
};
