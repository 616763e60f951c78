// Runs fuzz cases [from, to) of a seed in this process (started by run.js):
// prints "start i" before each case and one JSON result after it, so that a
// crash (the process dies) names the case that caused it.
'use strict';

const path = require('node:path');
const { makeCase } = require('./cases');

const lib = require(path.resolve(__dirname, '../../dist'));
const { native } = require(path.resolve(__dirname, '../../dist/native'));
const [seed, from, to] = process.argv.slice(2).map(Number);
for (let i = from; i < to; i++) {
  process.stdout.write(`start ${i}\n`);
  const c = makeCase(seed, i);
  let outcome;
  try {
    outcome = c.run(lib, native);
  } catch (e) {
    outcome = { accepted: false, error: `${e && e.constructor && e.constructor.name}: ${e && e.message}` };
  }
  process.stdout.write(`${JSON.stringify({ i, name: c.name, ...outcome })}\n`);
}
