// npm says nothing in a checkout: no project config it does not know (an
// .npmrc key warns on every npm command), and the dependency install scripts
// it would block are denied in package.json (allowScripts), so installs do
// not end with a list to review.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

test('npm prints no warning for the project\'s configuration', () => {
  const r = spawnSync('npm', ['pkg', 'get', 'name'], { cwd: ROOT, encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(r.stderr).not.toMatch(/npm warn/i);
  expect(r.stdout.trim()).toBe('"syncbn"');
});

test('every dependency with an install script is approved or denied in allowScripts', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const r = spawnSync('npm', ['install-scripts', 'ls'], { cwd: ROOT, encoding: 'utf8' });
  expect(r.status).toBe(0);
  expect(`${r.stdout}${r.stderr}`).not.toMatch(/not yet covered|onnxruntime-node@|core-js@/);
  expect(pkg.allowScripts['onnxruntime-node']).toBe(false);
});
