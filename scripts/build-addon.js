#!/usr/bin/env node
// Builds the native addon at install time.
//
//   prebuild present        -> nothing to do (node-gyp-build loads it)
//   cmake on PATH           -> cmake-js over CMakeLists.txt (CPU + CUDA when found)
//   otherwise               -> node-gyp over binding.gyp (CPU only)
//
// --force rebuilds even when an addon is present; --gyp forces node-gyp;
// SYNCBN_BUILD=gyp|cmake picks the same way from the environment.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const force = args.includes('--force');
const choice = args.includes('--gyp') ? 'gyp' : process.env.SYNCBN_BUILD || '';

function run(cmd, cmdArgs) {
  console.log(`[syncbn] ${cmd} ${cmdArgs.join(' ')}`);
  const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  if (r.error) throw r.error;
  if (r.status !== 0) process.exit(r.status ?? 1);
}

function have(cmd) {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  return !r.error && r.status === 0;
}

function prebuilt() {
  try {
    require('node-gyp-build').resolve(root);
    return true;
  } catch {
    return false;
  }
}

if (!force && !choice && prebuilt()) {
  console.log('[syncbn] addon already built; `npm run build:addon` rebuilds it');
  process.exit(0);
}

const jobs = String(Math.max(1, require('node:os').availableParallelism?.() ?? 2));
if (choice === 'gyp' || (choice !== 'cmake' && !have('cmake'))) {
  // npm puts its bundled node-gyp on PATH for lifecycle scripts.
  run(have('node-gyp') ? 'node-gyp' : 'npx', [...(have('node-gyp') ? [] : ['node-gyp']), 'rebuild', '-j', jobs]);
} else {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  run(process.execPath, [cmakeJs, 'compile', '--parallel', jobs, '--log-level', 'warn']);
}
