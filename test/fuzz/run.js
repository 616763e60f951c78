#!/usr/bin/env node
// The fuzzer over the public API and the raw binding (cases in ./cases.js).
// Cases run in child processes, a batch per child; a child that dies (a
// crash) is recorded against the case it had started, and the run goes on
// from the next case in a fresh child.
//
//   node test/fuzz/run.js [--seed N] [--cases M] [--batch B]
//
// CI runs a fixed seed (test/fuzz.test.ts); a longer run, e.g.
// `node test/fuzz/run.js --seed 7 --cases 200000`, took 65 s on 2 cores
// (README, Robustness checks). Prints one JSON summary line; exits 1 on a crash,
// a wrong result or a modified input.
'use strict';

const { spawnSync } = require('node:child_process');
const path = require('node:path');

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

function fuzz(seed, cases, batch) {
  const s = { seed, calls: 0, accepted: 0, refused: 0, crashes: [], wrong: [], modified: [], refusals: {} };
  let next = 0;
  while (next < cases) {
    const to = Math.min(cases, next + batch);
    const r = spawnSync(process.execPath, [path.join(__dirname, 'child.js'), String(seed), String(next), String(to)], {
      encoding: 'utf8', maxBuffer: 1 << 28, env: { ...process.env, OMP_NUM_THREADS: '2' },
    });
    let started = -1;
    let done = next - 1;
    for (const line of r.stdout.split('\n')) {
      if (line.startsWith('start ')) {
        started = Number(line.slice(6));
        continue;
      }
      if (!line.startsWith('{')) continue;
      const o = JSON.parse(line);
      done = o.i;
      s.calls++;
      if (o.accepted) {
        s.accepted++;
        if (!o.correct) s.wrong.push(o.name);
        if (!o.inputsUnchanged) s.modified.push(o.name);
      } else {
        s.refused++;
        const kind = String(o.error).split(':')[0];
        s.refusals[kind] = (s.refusals[kind] ?? 0) + 1;
      }
    }
    if (r.status !== 0 || r.signal) {
      const at = started > done ? started : done + 1;
      s.calls++;
      s.crashes.push({ case: at, signal: r.signal, status: r.status, stderr: (r.stderr || '').slice(-500) });
      next = at + 1;
    } else {
      next = to;
    }
  }
  return s;
}

if (require.main === module) {
  const start = Date.now();
  const s = fuzz(arg('seed', 1), arg('cases', 2000), arg('batch', 500));
  console.log(JSON.stringify({ ...s, seconds: (Date.now() - start) / 1000 }));
  process.exit(s.crashes.length || s.wrong.length || s.modified.length ? 1 : 0);
}

module.exports = { fuzz };
