// The globalSetup's staleness check (test/support/fresh_dist.js): dist/ files
// older than their lib/ sources, or missing, are found, so `npx jest` compiles
// before the worker, GPU and demo tests load dist/.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { staleSources } = require('./support/fresh_dist') as { staleSources(root: string): string[] };

describe('dist/ freshness', () => {
  test('a lib/ source newer than its dist/ output, or without one, is stale', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'syncbn-fresh-'));
    fs.mkdirSync(path.join(root, 'lib', 'nn'), { recursive: true });
    fs.mkdirSync(path.join(root, 'dist', 'nn'), { recursive: true });
    for (const f of ['tsconfig.json', 'tsconfig.build.json', 'lib/index.ts', 'lib/nn/a.ts', 'dist/index.js', 'dist/nn/a.js']) {
      fs.writeFileSync(path.join(root, f), '');
    }
    const t = (f: string, s: number) => fs.utimesSync(path.join(root, f), s, s);
    for (const f of ['tsconfig.json', 'tsconfig.build.json', 'lib/index.ts', 'lib/nn/a.ts']) t(f, 1000);
    t('dist/index.js', 2000);
    t('dist/nn/a.js', 2000);
    expect(staleSources(root)).toEqual([]);
    t('lib/nn/a.ts', 3000);
    expect(staleSources(root)).toEqual([path.join('lib', 'nn', 'a.ts')]);
    t('lib/nn/a.ts', 1000);
    fs.writeFileSync(path.join(root, 'lib', 'b.ts'), '');
    t('lib/b.ts', 1000);
    expect(staleSources(root)).toEqual([path.join('lib', 'b.ts')]);
    fs.rmSync(path.join(root, 'lib', 'b.ts'));
    t('tsconfig.build.json', 3000);
    expect(staleSources(root)).toEqual(['tsconfig.build.json']);
    fs.rmSync(root, { recursive: true, force: true });
  });

  test("this checkout's dist/ is at least as new as lib/ (globalSetup compiled it)", () => {
    expect(staleSources(path.resolve(__dirname, '..'))).toEqual([]);
  });
});
