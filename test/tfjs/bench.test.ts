// bench:tfjs's harness runs (small shapes, few repetitions) and writes its
// tables, JSON and chart: a smoke test, not a timing. Timings are never asserted.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../../lib/native';
import { ROOT, runNode } from '../distributed/support';
import { requireOrSkip } from '../support/require';
import { scratchDirs } from '../support/scratch';

const tempDir = scratchDirs();
const gloo = requireOrSkip('gloo', native.features.gloo, `${native.features.file} was built without Gloo`);

gloo('bench:tfjs harness', () => {
  test('npm run bench:tfjs -- --quick: both backends, the model steps and the sync, written as JSON and SVG', async () => {
    const out = tempDir('syncbn-bench-tfjs-');
    const r = await runNode([path.join(ROOT, 'bench', 'tfjs', 'run.js'), '--quick', '--out', out], {}, 120000);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/bench:tfjs: @tensorflow\/tfjs \d+\.\d+\.\d+/);
    expect(r.stderr).toMatch(/cpu: 7\/7, \d+:\d\d elapsed/);
    expect(r.stdout).toMatch(/\| 4x6x6x8 axis -1 train-fwdbwd \| [\d.]+ \| [\d.]+ \| [\d.]+x \| [\d.]+ \| [\d.]+x \| right \|/);
    expect(r.stdout).toMatch(/\| 4x6x6x8 axis -1 train-fwd \| [\d.]+ \| [\d.]+ \| [\d.]+x \| [\d.]+ \| [\d.]+x \| right \| \d+% \|/);
    expect(r.stdout).toMatch(/not run: tfjs's wasm backend has no Conv2DBackpropFilter kernel/);
    expect(r.stdout).toMatch(/world 1 [\d.]+ ms, world 2 [\d.]+ ms/);
    const files = fs.readdirSync(out);
    const result = JSON.parse(fs.readFileSync(path.join(out, files.find((f) => f.endsWith('-quick.json'))!), 'utf8'));
    expect(result.backends.map((b: { backend: string }) => b.backend)).toEqual(['cpu', 'wasm']);
    for (const b of result.backends) {
      expect(b.rows).toHaveLength(6);
      for (const row of b.rows) expect(row.ms.syncbn).toBeGreaterThan(0);
    }
    expect(fs.readFileSync(path.join(out, files.find((f) => f.endsWith('-quick.svg'))!), 'utf8')).toMatch(/^<svg/);
  });

  test('an unknown option is an error that shows the usage', async () => {
    const r = await runNode([path.join(ROOT, 'bench', 'tfjs', 'run.js'), '--fast']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bench:tfjs: unknown option --fast\nusage: npm run bench:tfjs/);
  });
});
