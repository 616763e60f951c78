#!/usr/bin/env node
// Says what a prebuild holds and fails when it lacks what it must ship:
//   node scripts/check-prebuild.js [file] [--require gloo,cuda]
// Prints its size, the glibc / libstdc++ versions it needs (objdump -T), its
// run-time libraries (ldd), the CUDA architectures in its fat binary (read
// from the fatbin headers: cubins and PTX per sm_XX) and the features it
// reports when loaded. Default file: the prebuild node-gyp-build picks here.
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const argv = process.argv.slice(2);
const at = argv.indexOf('--require');
const required = at >= 0 ? argv[at + 1].split(',').filter(Boolean) : [];
const positional = argv.filter((a, i) => !a.startsWith('--') && (at < 0 || i !== at + 1));
const file = path.resolve(positional[0] ?? prebuildFile());

function prebuildFile() {
  const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  const names = fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.endsWith('.node')) : [];
  if (names.length !== 1) throw new Error(`check-prebuild: expected one .node in ${dir}, found ${names.length}`);
  return path.join(dir, names[0]);
}

/** The highest version of each symbol-version family the binary needs (GLIBC_2.34 -> glibc >= 2.34). */
function versionFloors() {
  const text = execFileSync('objdump', ['-T', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const floors = {};
  for (const [, family, version] of text.matchAll(/\b(GLIBC|GLIBCXX|CXXABI|GCC|GOMP|OMP)_([\d.]+)\b/g)) {
    const cmp = (a, b) => a.split('.').map(Number).reduce((d, x, i) => d || x - (Number(b.split('.')[i]) || 0), 0);
    if (!floors[family] || cmp(version, floors[family]) > 0) floors[family] = version;
  }
  return floors;
}

/** CUDA device code in the fat binary: [{ kind: 'sm' | 'ptx', arch }]. */
function cudaImages() {
  const buf = fs.readFileSync(file);
  const images = [];
  const magic = Buffer.from([0x50, 0xed, 0x55, 0xba]);
  for (let at = buf.indexOf(magic); at >= 0; at = buf.indexOf(magic, at + 4)) {
    const headerSize = buf.readUInt16LE(at + 6);
    const fatSize = Number(buf.readBigUInt64LE(at + 8));
    if (headerSize !== 16 || fatSize <= 0 || at + 16 + fatSize > buf.length) continue;
    for (let e = at + headerSize; e < at + headerSize + fatSize;) {
      const kind = buf.readUInt16LE(e);
      const entryHeader = buf.readUInt32LE(e + 4);
      const payload = Number(buf.readBigUInt64LE(e + 8));
      const arch = buf.readUInt32LE(e + 28);
      if (entryHeader === 0 || (kind !== 1 && kind !== 2)) break;
      images.push({ kind: kind === 1 ? 'ptx' : 'sm', arch });
      e += entryHeader + payload;
    }
  }
  return images;
}

const bytes = fs.statSync(file).size;
const floors = versionFloors();
const ldd = execFileSync('ldd', [file], { encoding: 'utf8' }).trim().split('\n').map((l) => l.trim().split(' ')[0]);
const images = cudaImages();
const cubins = [...new Set(images.filter((i) => i.kind === 'sm').map((i) => i.arch))].sort((a, b) => a - b);
const ptx = [...new Set(images.filter((i) => i.kind === 'ptx').map((i) => i.arch))].sort((a, b) => a - b);
const addon = require(file);

console.log(`${path.relative(root, file)}: ${(bytes / 2 ** 20).toFixed(1)} MiB`);
console.log(`  needs: glibc >= ${floors.GLIBC}, libstdc++ GLIBCXX_${floors.GLIBCXX ?? '-'} CXXABI_${floors.CXXABI ?? '-'}, libgomp GOMP_${floors.GOMP ?? '-'}`);
console.log(`  ldd: ${ldd.join(' ')}`);
console.log(`  cuda device code: ${cubins.length ? `sm_${cubins.join(' sm_')}` : 'none'}; PTX: ${ptx.length ? `compute_${ptx.join(' compute_')}` : 'none'}`);
console.log(`  features: ${JSON.stringify(addon.features)}`);

const problems = [];
if (ldd.some((l) => /libgloo|libhiredis|libibverbs|libcudart|libnccl/.test(l))) problems.push(`links a library a user may lack: ${ldd.join(' ')}`);
for (const f of required) {
  if (!addon.features[f]) problems.push(`has no ${f}`);
  if (f === 'cuda') {
    const want = [75, 80, 86, 89, 90, 100, 120];
    const missing = want.filter((a) => !cubins.includes(a));
    if (missing.length) problems.push(`has no device code for sm_${missing.join(' sm_')}`);
    if (!ptx.includes(Math.max(...want))) problems.push(`has no PTX for compute_${Math.max(...want)}`);
  }
}
if (problems.length) {
  console.error(`check-prebuild: ${path.relative(root, file)} ${problems.join('; ')}`);
  process.exit(1);
}
