// The benchmark harness runs (one tiny shape, few repetitions) and writes its
// results: a smoke test, not a timing. Timings are never asserted.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runNode, ROOT } from './distributed/support';
import { requireOrSkip } from './support/require';

const RUN = path.join(ROOT, 'bench', 'cpu', 'run.js');

// The headline pair is syncbn beside PyTorch: without PyTorch (a machine
// without Debian's python3-torch) there is no pair to check.
const PYTHON = process.env.SYNCBN_BENCH_PYTHON || '/usr/bin/python3';
const torch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

requireOrSkip('torch', torch, `${PYTHON} cannot import torch (Debian: apt-get install python3-torch)`)('benchmark harness beside PyTorch', () => {
  test('npm run bench -- --quick --slow-peers --dtypes float32,bfloat16: the pair in both dtypes, the training loop and the slow peers, written as JSON and SVG', async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'syncbn-bench-'));
    const r = await runNode([RUN, '--quick', '--slow-peers', '--dtypes', 'float32,bfloat16', '--threads', '1', '--out', out], {}, 120000);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/memory bandwidth: copy [\d.]+ GB\/s, triad [\d.]+ GB\/s/);
    expect(r.stderr).toMatch(/pair 36\/36, \d+:\d\d elapsed, ETA \d+:\d\d/);
    expect(r.stderr).toMatch(/tfjs-node: not run: @tensorflow\/tfjs-node cannot be installed here/);
    // The headline rows: syncbn as users write it, disposed, and PyTorch's nn module.
    expect(r.stdout).toMatch(/\| 4x8x6x6 contiguous train-fwd \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+x \|/);
    expect(r.stdout).toMatch(/\| syncbn nn \(no dispose\(\)\) \| [\d.]+ \|/);
    // bfloat16 beside float32: its own rows, PyTorch on bfloat16 too, and the table of ratios.
    expect(r.stdout).toMatch(/\| 4x8x6x6 contiguous train-fwd bfloat16 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+x \|/);
    expect(r.stdout).toMatch(/\| 4x8x6x6 channelsLast infer \| bfloat16 \| [\d.]+ \([\d.]+\) \| [\d.]+x \|/);
    const files = fs.readdirSync(out);
    const json = files.find((f) => f.endsWith('-quick.json'))!;
    const result = JSON.parse(fs.readFileSync(path.join(out, json), 'utf8'));
    expect(result.rows).toHaveLength(12);
    expect(result.rows.filter((row: { dtype: string }) => row.dtype === 'bfloat16')).toHaveLength(6);
    for (const row of result.rows) {
      for (const style of ['natural', 'disposed', 'pytorch']) expect(row.ms[style]).toBeGreaterThan(0);
      expect(row.samples.natural.length).toBeGreaterThan(0);
    }
    expect(result.peers.pytorch.version).toMatch(/^\d+\.\d+/);
    for (const style of ['natural', 'disposed', 'pytorch']) {
      expect(result.loop.summary[style].msPerStep).toBeGreaterThan(0);
      expect(result.loop.summary[style].peakRssMB).toBeGreaterThan(10);
    }
    expect(result.slow.rows.map((row: { id: string }) => row.id)).toEqual(['4x8x6x6 contiguous train-fwd', '4x8x6x6 contiguous train-fwdbwd', '4x8x6x6 contiguous infer']);
    expect(result.slow.rows[0].pytorchAfter['tfjs-cpu'].ms).toBeGreaterThan(0);
    const svg = fs.readFileSync(path.join(out, json.replace('.json', '.svg')), 'utf8');
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain(`PyTorch ${result.peers.pytorch.version}`);
    expect(svg).toMatch(/>[\d.]+ ms<\/text>/);
    fs.rmSync(out, { recursive: true, force: true });
  });
});

test.each([
  [['--rounds', 'two'], "--rounds must be an integer >= 1, got 'two'"],
  [['--qiuck'], 'unknown option --qiuck (did you mean --quick?)'],
  [['--case'], '--case needs a value'],
  [['--case', 'nonesuch', '--quick'], "--case 'nonesuch' matches no case"],
  [['--dtypes', 'float32,int8', '--quick'], "--dtypes: unknown dtype 'int8'; expected float32, bfloat16, float16"],
])('npm run bench -- %j is an error, not a table', async (args, message) => {
  const r = await runNode([RUN, ...(args as string[])], {}, 60000);
  expect(r.code).toBe(2);
  expect(r.stderr).toContain(message);
  expect(r.stdout).not.toContain('| case |');
});
