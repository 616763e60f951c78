// ARCHITECTURE.md stays true to the tree, cheaply: every repository path and
// file name it names exists, every op of the kernel tables (cpu::Ops in
// native/kernels/batch_norm.h, cuda::Ops in native/kernels/cuda/batch_norm_cuda.h)
// has its row in the op map, and the README links to it. A rename, or a new
// op the map does not follow, fails here naming what to update.
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const MAP = fs.readFileSync(path.join(ROOT, 'ARCHITECTURE.md'), 'utf8');
// Where the map's paths start; dist/ and build/ are built, not kept.
const TOP = ['lib', 'native', 'test', 'bench', 'scripts', 'bin', 'examples', '.ci', 'third_party'];
const FILE = /^[\w.-]+\.(ts|js|h|cpp|cu|py|md|json|gyp|txt)$/;

const spans = [...new Set([...MAP.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]))];

/** Every file name under the kept top-level folders and at the root. */
function fileNames(): Set<string> {
  const names = new Set(fs.readdirSync(ROOT));
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(dir, e.name));
      else names.add(e.name);
    }
  };
  for (const top of TOP) walk(path.join(ROOT, top));
  return names;
}

test('every path ARCHITECTURE.md names exists', () => {
  const paths = spans.filter((s) => TOP.includes(s.split('/')[0]) && s.includes('/') && !/\s/.test(s));
  expect(paths.length).toBeGreaterThan(40);
  const missing = paths.filter((p) => !fs.existsSync(path.join(ROOT, p)));
  if (missing.length > 0) throw new Error(`ARCHITECTURE.md names paths that do not exist: ${missing.join(', ')}. Update the map with the code.`);
});

test('every file name ARCHITECTURE.md names exists in the tree', () => {
  const names = spans.filter((s) => FILE.test(s));
  expect(names.length).toBeGreaterThan(3);
  const all = fileNames();
  const missing = names.filter((n) => !all.has(n));
  if (missing.length > 0) throw new Error(`ARCHITECTURE.md names files that do not exist: ${missing.join(', ')}. Update the map with the code.`);
});

test("every op of the kernel tables has a row in ARCHITECTURE.md's op map", () => {
  const cpu = /struct Ops \{([\s\S]*?)\};/.exec(fs.readFileSync(path.join(ROOT, 'native', 'kernels', 'batch_norm.h'), 'utf8'));
  const cuda = /struct Ops \{([\s\S]*?)\};/.exec(fs.readFileSync(path.join(ROOT, 'native', 'kernels', 'cuda', 'batch_norm_cuda.h'), 'utf8'));
  expect(cpu).not.toBeNull();
  expect(cuda).not.toBeNull();
  const ops = new Set([
    ...[...cpu![1].matchAll(/void \(\*(\w+)\)\(/g)].map((m) => m[1]),
    ...[...cuda![1].matchAll(/cudaError_t (\w+)\(/g)].map((m) => m[1]),
  ]);
  expect(ops.size).toBeGreaterThanOrEqual(12);
  const rows = new Set([...MAP.matchAll(/^\| `(\w+)` \|/gm)].map((m) => m[1]));
  const missing = [...ops].filter((op) => !rows.has(op));
  if (missing.length > 0) {
    throw new Error(`ARCHITECTURE.md's op map has no row for ${missing.join(', ')} (the op tables in native/kernels/). Add one.`);
  }
});

test('the README links to ARCHITECTURE.md', () => {
  expect(fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')).toMatch(/\]\(ARCHITECTURE\.md\)/);
});
