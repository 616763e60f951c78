// The benchmark harness runs (one tiny shape, few repetitions) and writes its
// results: a smoke test, not a timing. Timings are never asserted.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runNode, ROOT } from './distributed/support';

test('npm run bench -- --quick runs every available peer and writes JSON and SVG', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'syncbn-bench-'));
  const r = await runNode([path.join(ROOT, 'bench', 'cpu', 'run.js'), '--quick', '--threads', '1', '--out', out], {}, 120000);
  expect(r.code).toBe(0);
  expect(r.stderr).toMatch(/memory bandwidth: copy [\d.]+ GB\/s, triad [\d.]+ GB\/s/);
  expect(r.stderr).toMatch(/tfjs-node: not run: @tensorflow\/tfjs-node cannot be installed here/);
  expect(r.stdout).toMatch(/\| 4x8x6x6 contiguous train-fwd \| [\d.]+ \|/);
  const files = fs.readdirSync(out);
  const json = files.find((f) => f.endsWith('-quick.json'))!;
  const result = JSON.parse(fs.readFileSync(path.join(out, json), 'utf8'));
  expect(result.rows).toHaveLength(6);
  for (const row of result.rows) expect(row.ms.syncbn).toBeGreaterThan(0);
  expect(result.peers.find((p: { name: string }) => p.name === 'syncbn').available).toBe(true);
  expect(fs.readFileSync(path.join(out, json.replace('.json', '.svg')), 'utf8')).toMatch(/^<svg /);
  fs.rmSync(out, { recursive: true, force: true });
});
