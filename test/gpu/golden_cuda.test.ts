// The GPU suite (test/gpu/check_cuda.js: every golden fixture file on 'cuda',
// counters included, then NCCL in a world of one). Its checks run here on the
// CPU (--device cpu) everywhere, so its logic and fixture handling are tested
// without a GPU; on 'cuda' it needs a GPU (SYNCBN_REQUIRE=cuda) and for NCCL
// also libnccl (SYNCBN_REQUIRE=nccl). Without them those suites are skipped,
// saying why.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cuda } from '../../lib';
import { native } from '../../lib/native';
import { requireOrSkip } from '../support/require';
import { runNode } from '../distributed/support';

const SCRIPT = path.join(__dirname, 'check_cuda.js');
const FIXTURES = path.join(__dirname, '..', 'golden', 'fixtures');
const KNOWN = ['modules_float32.json', 'modules_float64.json', 'varied.json', 'ops.json', 'momentum.json', 'half.json', 'edges.json'];

const load = (f: string) => JSON.parse(fs.readFileSync(path.join(FIXTURES, f), 'utf8'));
const formats = (shape: number[]) => (shape.length >= 3 ? 2 : 1);

/** How many checks the script must run: one per case and memory format, counted here from the fixtures. */
function expectedChecks(): { cases: number; half: number; unknown: number; sync: number } {
  let cases = 0;
  for (const f of ['modules_float32.json', 'modules_float64.json']) {
    const fx = load(f);
    for (const c of fx.cases) cases += formats(fx.inputs[c.kind].shape);
  }
  const varied = load('varied.json');
  for (const c of [...varied.modules, ...varied.ops]) cases += formats(c.shape);
  for (const c of load('ops.json').cases) cases += formats(c.shape);
  const momentum = load('momentum.json');
  for (const c of momentum.cases) cases += formats(momentum.inputs[c.inputs].shape);
  const edges = load('edges.json');
  for (const c of edges.forward) cases += formats(c.shape);
  cases += edges.split.length;
  const half = load('half.json').cases.length;
  const unknown = fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.json') && !KNOWN.includes(f)).length;
  // SyncBatchNorm's device ops over each ops.json case's workers: device only.
  const sync = load('ops.json').cases.length;
  return { cases, half, unknown, sync };
}

describe('the GPU suite, dispatched on the CPU (check_cuda.js --device cpu)', () => {
  test('loads every fixture file and passes every check the CPU can run; device-only and NCCL checks skip, counted', async () => {
    const r = await runNode([SCRIPT, '--device', 'cpu'], {}, 120000);
    const { cases, half, unknown, sync } = expectedChecks();
    expect(cases).toBeGreaterThan(200);
    expect(sync).toBeGreaterThan(0);
    expect(r.stdout).toContain(`fixture files run: ${['modules_float32.json', 'modules_float64.json', 'varied.json', 'ops.json', 'momentum.json', 'half.json', 'edges.json'].join(', ')}`);
    // Passed: every case, every half case, the empty batch. Skipped: SyncBatchNorm's device ops, device mixing,
    // NCCL, unknown fixtures.
    expect(r.stdout).toMatch(new RegExp(`^${cases + half + 1} passed, 0 failed, ${sync + 2 + unknown} skipped$`, 'm'));
    expect(r.stdout).toMatch(/^skip ops\.json 2D-float32: SyncBatchNorm's device ops over workers \[4,0,6\]: the device path of SyncBatchNorm needs a CUDA device$/m);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  test('a wrong number fails it: a fixture value off by 1e-3 is reported by name', async () => {
    const r = await runNode(['-e', `
      const fs = require('fs');
      const read = fs.readFileSync;
      fs.readFileSync = function (p, ...rest) {
        const text = read.call(this, p, ...rest);
        if (!String(p).endsWith('varied.json')) return text;
        const fx = JSON.parse(text);
        fx.modules[0].steps[3].y[0] += 1e-3;
        return JSON.stringify(fx);
      };
      process.argv.push('--device', 'cpu', '--suites', 'fixtures');
      require(${JSON.stringify(SCRIPT)});
    `], {}, 120000);
    expect(r.stdout).toMatch(/^FAIL varied\.json BatchNorm1d \[2,7\] float32 eps=0\.001 momentum=0\.3 .*: step 3 output: element 0 is/m);
    expect(r.stdout).toMatch(/^\d+ passed, 1 failed, \d+ skipped$/m);
    expect(r.code).toBe(1);
  });
});

const gpuWhy = `no usable GPU (${cuda.unavailableReason()})`;
requireOrSkip('cuda', cuda.isAvailable(), gpuWhy)('BatchNorm on CUDA vs PyTorch', () => {
  test('every golden fixture file passes on the GPU, counters included', async () => {
    const r = await runNode([SCRIPT, '--suites', 'fixtures'], {}, 600000);
    const { cases, half, unknown, sync } = expectedChecks();
    // Passed: every case, every half case, SyncBatchNorm's device ops, device mixing, the empty batch.
    expect(r.stdout).toMatch(new RegExp(`^${cases + half + sync + 2} passed, 0 failed, ${unknown} skipped$`, 'm'));
    expect(r.code).toBe(0);
  }, 620000);
});

function ncclWhy(): string | null {
  if (!cuda.isAvailable()) return `NCCL reduces CUDA tensors and there is ${gpuWhy}`;
  try {
    native.ncclLoad(process.env.SYNCBN_NCCL_LIBRARY ?? '');
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}
const nccl = ncclWhy();
requireOrSkip('nccl', nccl === null, nccl ?? '')('NCCL in a world of one', () => {
  test('rendezvous, collectives, the Welford merge, gradients, SyncBatchNorm and its device path on NCCL', async () => {
    const r = await runNode([SCRIPT, '--suites', 'nccl'], {}, 420000);
    // SyncBatchNorm across GPUs needs two of them; with one it is skipped, saying so.
    if (cuda.deviceCount() >= 2) expect(r.stdout).toMatch(/^2 passed, 0 failed, 0 skipped$/m);
    else expect(r.stdout).toMatch(/^skip nccl SyncBatchNorm across GPUs, one process per GPU: needs two CUDA devices, this machine has 1\n1 passed, 0 failed, 1 skipped$/m);
    expect(r.code).toBe(0);
  }, 440000);
});
