// Child of hostile.test.ts: loads one file with the compiled package, as a
// user would, and prints one JSON line: the outcome ('load' with the value's
// summary, or 'error' with its message), the milliseconds load() took, the
// process's peak RSS right after it (before the summary copies anything), and
// whether Object.prototype changed.
//
//   node test/serialization/hostile/load_one.js <file> [maxBytes]
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { load } = require(path.resolve(__dirname, '..', '..', '..', 'dist'));
const { summarize } = require('./summary');

const [file, maxBytes] = process.argv.slice(2);
const protoKeys = () => Object.getOwnPropertyNames(Object.prototype).join(',');
const before = protoKeys();
const out = {};
const start = process.hrtime.bigint();
let value;
try {
  value = load(file, maxBytes ? { maxBytes: Number(maxBytes) } : undefined);
  out.outcome = 'load';
} catch (e) {
  out.outcome = 'error';
  out.type = e?.constructor?.name;
  out.message = String(e?.message ?? e);
}
out.ms = Number(process.hrtime.bigint() - start) / 1e6;
// VmHWM, not getrusage's maxrss: Linux carries the forking parent's peak across exec into the latter.
out.peakRss = Number(/^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
if (out.outcome === 'load') out.summary = summarize(value);
out.polluted = protoKeys() !== before || ({}).polluted !== undefined;
process.stdout.write(`${JSON.stringify(out)}\n`);
