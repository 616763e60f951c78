// Worker, GPU and demo tests (and the examples) load dist/, the compiled
// package, not lib/: a dist/ older than lib/ would test stale code while
// `npx jest` passes. Jest's globalSetup calls freshDist(), which compiles
// dist/ with tsc whenever a lib/ source is newer than its output or has none.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

/** lib/**.ts files (relative paths) whose dist/ .js is missing or older. */
function staleSources(root) {
  const lib = path.join(root, 'lib');
  const stale = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) {
        const rel = path.relative(lib, p);
        const out = path.join(root, 'dist', rel.replace(/\.ts$/, '.js'));
        if (!fs.existsSync(out) || fs.statSync(out).mtimeMs < fs.statSync(p).mtimeMs) stale.push(path.join('lib', rel));
      }
    }
  };
  walk(lib);
  for (const cfg of ['tsconfig.json', 'tsconfig.build.json']) {
    const index = path.join(root, 'dist', 'index.js');
    if (fs.existsSync(index) && fs.statSync(index).mtimeMs < fs.statSync(path.join(root, cfg)).mtimeMs) stale.push(cfg);
  }
  return stale;
}

/** Compiles dist/ (tsc -p tsconfig.build.json) when it is older than lib/; returns what was stale. */
function freshDist(root) {
  const stale = staleSources(root);
  if (stale.length === 0) return stale;
  const shown = stale.slice(0, 3).join(', ') + (stale.length > 3 ? ` and ${stale.length - 3} more` : '');
  process.stdout.write(`\ndist/ is older than ${shown}: compiling it (tsc -p tsconfig.build.json) before the tests that load it\n`);
  const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed, so dist/ would be stale:\n${r.stdout}${r.stderr}`);
  const still = staleSources(root);
  if (still.length > 0) throw new Error(`dist/ is still older than ${still.join(', ')} after tsc`);
  return stale;
}

module.exports = { staleSources, freshDist };
