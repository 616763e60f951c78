// The benchmark's command line, read strictly: an unknown flag, a missing
// value or a value of the wrong kind is an error before anything runs, never
// a table of n/a.
'use strict';

const SPEC = {
  quick: { kind: 'flag', help: 'one tiny shape, few repetitions (the smoke test)' },
  threads: { kind: 'int', min: 1, help: 'kernel threads for every peer (default: OMP_NUM_THREADS or the core count)' },
  rounds: { kind: 'int', min: 1, help: 'rounds of the alternating pair (default 3)' },
  reps: { kind: 'int', min: 1, help: 'samples per measurement (default 7)' },
  steps: { kind: 'int', min: 1, help: 'steps of the training loop (default 300)' },
  case: { kind: 'string', help: 'only cases whose id contains this text, e.g. 256x1024 or "contiguous infer"' },
  dtypes: { kind: 'string', help: 'input dtypes, comma-separated: float32 (default), bfloat16, float16; half inputs run through float32 layers (mixed precision) in every peer' },
  'slow-peers': { kind: 'flag', help: 'after the pair, time TensorFlow.js, ONNX Runtime and the plain loop apart, with PyTorch after each' },
  'slow-case': { kind: 'string', help: 'cases for the slow peers, comma-separated (default 64x256x14x14, both formats)' },
  out: { kind: 'string', help: 'directory for the JSON and SVG (default bench/results)' },
  help: { kind: 'flag', help: 'print this' },
};

class OptionError extends Error {}

/** Edit distance, to suggest the option a typo meant. */
function distance(a, b) {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = row;
  }
  return prev[b.length];
}

function usage() {
  const lines = Object.entries(SPEC).map(([name, s]) => `  --${name}${s.kind === 'flag' ? '' : ` <${s.kind === 'int' ? 'n' : 'text'}>`}`.padEnd(26) + s.help);
  return `usage: npm run bench -- [options]\n${lines.join('\n')}`;
}

/** Parses argv (without node and the script) into { name: value }; throws OptionError on anything it does not know. */
function parseOptions(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new OptionError(`unexpected argument '${arg}' (options start with --)`);
    const name = m[1];
    const spec = SPEC[name];
    if (!spec) {
      const near = Object.keys(SPEC).filter((k) => distance(k, name) <= 2);
      throw new OptionError(`unknown option --${name}${near.length ? ` (did you mean --${near[0]}?)` : ''}`);
    }
    if (name in out) throw new OptionError(`--${name} given twice`);
    if (spec.kind === 'flag') {
      if (m[2] !== undefined) throw new OptionError(`--${name} takes no value`);
      out[name] = true;
      continue;
    }
    let value = m[2];
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined || value.startsWith('--')) throw new OptionError(`--${name} needs a value`);
    }
    if (spec.kind === 'int') {
      if (!/^\d+$/.test(value) || Number(value) < spec.min) {
        throw new OptionError(`--${name} must be an integer >= ${spec.min}, got '${value}'`);
      }
      out[name] = Number(value);
    } else {
      if (value === '') throw new OptionError(`--${name} must not be empty`);
      out[name] = value;
    }
  }
  return out;
}

module.exports = { parseOptions, OptionError, usage };
