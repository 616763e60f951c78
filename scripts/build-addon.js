#!/usr/bin/env node
// The install script, and `npm run build:addon`: makes sure there is an addon
// this Node can load.
//
//   a prebuild or build/Release loads  -> nothing to do (node-gyp-build loads it)
//   cmake on PATH                      -> cmake-js over CMakeLists.txt (CPU, bundled Gloo, CUDA when nvcc is found)
//   otherwise                          -> node-gyp over binding.gyp (CPU, the system's Gloo when present)
//
// It compiles even when an addon loads when asked: --force (`npm run
// build:addon`), `npm install --build-from-source` (npm_config_build_from_source)
// or `npm rebuild syncbn` (npm_command=rebuild). --gyp forces node-gyp;
// SYNCBN_BUILD=gyp|cmake picks the same way from the environment.
// npm 11 runs a dependency's install script only when the user allows it, so
// the package must work without this script: the prebuild in prebuilds/ does.
'use strict';

const { spawnSync } = require('node:child_process');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const fromSource =
  args.includes('--force') ||
  process.env.npm_config_build_from_source === 'true' ||
  process.env.npm_command === 'rebuild';
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

/** The addon node-gyp-build would pick, if it loads here (a prebuild for another glibc may not). */
function loadable() {
  let file;
  try {
    file = require('node-gyp-build').resolve(root);
  } catch {
    return null;
  }
  try {
    require(file);
    return file;
  } catch (e) {
    console.log(`[syncbn] ${path.relative(root, file)} does not load here (${e.message.split('\n')[0]}); building from source`);
    return null;
  }
}

if (!fromSource && !choice) {
  const file = loadable();
  if (file) {
    console.log(`[syncbn] using ${path.relative(root, file)}; \`npm rebuild syncbn\` compiles from source`);
    process.exit(0);
  }
}

const compiler = process.env.CXX || ['c++', 'g++', 'clang++'].find(have);
if (!compiler) {
  console.error(
    '[syncbn] cannot compile the addon: no C++ compiler (c++, g++ or clang++, or $CXX) on the PATH. ' +
      'Install one with OpenMP (Debian: g++ make cmake), or use the prebuilt binary for linux-x64 ' +
      '(install without --build-from-source).');
  process.exit(1);
}

const jobs = String(Math.max(1, require('node:os').availableParallelism?.() ?? 2));
if (choice === 'gyp' || (choice !== 'cmake' && !have('cmake'))) {
  // npm puts its bundled node-gyp on PATH for lifecycle scripts.
  run(have('node-gyp') ? 'node-gyp' : 'npx', [...(have('node-gyp') ? [] : ['node-gyp']), 'rebuild', '-j', jobs]);
} else {
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  run(process.execPath, [cmakeJs, 'compile', '--parallel', jobs, '--log-level', 'warn']);
}
