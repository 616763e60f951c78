#!/usr/bin/env node
// prebuildify's build command (`prebuildify --node-gyp scripts/prebuildify-cmake-js.js`):
// prebuildify 6 calls `<node-gyp> rebuild --target=.. --devdir=.. --arch=.. --release`
// and moves the .node it finds in build/Release to prebuilds/; this runs a
// clean cmake-js build of CMakeLists.txt in build/prebuild-<arch> (the local
// build in build/ keeps its objects) and puts its .node in build/Release, so
// the prebuild holds what that build holds:
// the CPU kernels, Gloo (bundled, static) and the CUDA kernels for every
// architecture from Turing (sm_75) to Blackwell (sm_120) plus PTX for sm_120,
// so newer GPUs JIT-compile it. The N-API build needs no Node headers
// download: cmake-js takes them from node-api-headers (binary.napi_versions).
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const argv = process.argv.slice(2);
if (argv[0] !== 'rebuild') {
  console.error(`prebuildify-cmake-js: expected prebuildify's 'rebuild ...', got '${argv.join(' ')}'`);
  process.exit(2);
}
const arch = (argv.find((a) => a.startsWith('--arch=')) ?? `--arch=${process.arch}`).slice('--arch='.length);
const debug = argv.includes('--debug');

const env = {
  ...process.env,
  SYNCBN_GLOO: process.env.SYNCBN_GLOO ?? 'bundled',
  SYNCBN_CUDA_ARCHS: process.env.SYNCBN_CUDA_ARCHS ?? '75-real;80-real;86-real;89-real;90-real;100-real;120',
};
const jobs = String(Math.max(1, require('node:os').availableParallelism?.() ?? 2));
const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const out = path.join('build', `prebuild-${arch}`);
const config = debug ? 'Debug' : 'Release';
const args = [cmakeJs, 'rebuild', '--out', out, '--arch', arch, '--parallel', jobs, '--log-level', 'warn', ...(debug ? ['--debug'] : [])];
console.log(`[syncbn] SYNCBN_GLOO=${env.SYNCBN_GLOO} SYNCBN_CUDA_ARCHS='${env.SYNCBN_CUDA_ARCHS}' cmake-js ${args.slice(1).join(' ')}`);
const r = spawnSync(process.execPath, args, { cwd: root, env, stdio: 'inherit' });
if (r.error) throw r.error;
if (r.status !== 0) process.exit(r.status ?? 1);
fs.mkdirSync(path.join(root, 'build', config), { recursive: true });
fs.copyFileSync(path.join(root, out, config, 'syncbn.node'), path.join(root, 'build', config, 'syncbn.node'));
