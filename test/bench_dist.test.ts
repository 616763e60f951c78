// npm run bench:dist's harness runs (one tiny payload, 2 samples) and writes
// its results; a smoke test, not a timing. Timings are never asserted.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native } from '../lib/native';
import { runNode, ROOT } from './distributed/support';

const RUN = path.join(ROOT, 'bench', 'distributed', 'run.js');

test('bench:dist --quick measures gloo (when built in) and threads at world 2 and writes JSON and SVG', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'syncbn-bench-dist-'));
  const backends = native.features.gloo ? 'gloo,threads' : 'threads';
  const r = await runNode([RUN, '--quick', '--worlds', '2', '--backends', backends, '--channels', '8,40', '--out', out], {}, 120000);
  expect(r.stderr).toMatch(/nccl: not run \(needs CUDA GPUs/);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/\| 40 \(0\.9 KiB\) \| n\/a \| /);
  const json = fs.readdirSync(out).find((f) => f.endsWith('-quick.json'))!;
  const result = JSON.parse(fs.readFileSync(path.join(out, json), 'utf8'));
  const ran = result.runs.filter((x: { rows?: unknown[] }) => x.rows);
  expect(ran.map((x: { backend: string }) => x.backend)).toEqual(backends.split(','));
  for (const run of ran) {
    expect(run.rows.map((row: { channels: number }) => row.channels)).toEqual([8, 40]);
    for (const row of run.rows) {
      expect(row.allreduce.ms).toBeGreaterThan(0);
      expect(row.syncbn.syncMs).toBeGreaterThan(0);
      expect(row.syncbn.plainMs).toBeGreaterThan(0);
    }
  }
  expect(fs.readFileSync(path.join(out, json.replace('.json', '.svg')), 'utf8')).toMatch(/^<svg /);
  fs.rmSync(out, { recursive: true, force: true });
});

test.each([
  [['--worlds', '1'], /--worlds takes integers from 2 to 16/],
  [['--backends', 'nccl'], /--backends takes gloo, threads, torch; got 'nccl'/],
  [['--channels', '64,x'], /--channels takes integers/],
  [['--samples', '2,3'], /--samples takes one integer/],
  [['--frobnicate'], /Unknown option '--frobnicate'/],
])('bench:dist refuses %j with the usage (exit 2)', async (args, why) => {
  const r = await runNode([RUN, ...args], {}, 30000);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(why);
  expect(r.stderr).toMatch(/usage: npm run bench:dist/);
});
