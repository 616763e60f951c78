// `features`: what the loaded binary holds and which file it is, as
// node-gyp-build picked it (build/Release before prebuilds/).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { features, distributed, cuda } from '../lib';
import { scratchDirs } from './support/scratch';

const ROOT = path.resolve(__dirname, '..');
const tempDir = scratchDirs();

describe('features', () => {
  test('names the file node-gyp-build loads, and whether it is the prebuild or a build made here', () => {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const resolved = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(ROOT);
    expect(features.file).toBe(resolved);
    expect(fs.existsSync(features.file)).toBe(true);
    const underPrebuilds = path.relative(ROOT, features.file).split(path.sep)[0] === 'prebuilds';
    expect(features.build).toBe(underPrebuilds ? 'prebuild' : 'source');
    if (features.build === 'prebuild') expect(path.basename(path.dirname(features.file))).toBe(`${process.platform}-${process.arch}`);
  });

  test('agrees with the backends and CUDA, and is read-only', () => {
    expect(distributed.isGlooAvailable()).toBe(features.gloo);
    expect(cuda.compiled).toBe(features.cuda);
    if (!features.cuda) expect(distributed.isNcclAvailable()).toBe(false);
    expect(['avx2', 'baseline']).toContain(features.isa);
    if (process.arch !== 'x64') expect(features.isa).toBe('baseline');
    expect(Object.isFrozen(features)).toBe(true);
    expect(() => {
      (features as { gloo: boolean }).gloo = !features.gloo;
    }).toThrow(TypeError);
  });
});

describe('loading', () => {
  // SYNCBN_PREBUILD (node-gyp-build's <NAME>_PREBUILD) points the loader at another directory.
  function loadFrom(dir: string): { status: number | null; stderr: string } {
    const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(ROOT, 'dist'))})`], {
      env: { ...process.env, SYNCBN_PREBUILD: dir }, encoding: 'utf8',
    });
    return { status: r.status, stderr: r.stderr };
  }

  test('no binary for this machine: says so and how to get one', () => {
    const r = loadFrom(tempDir('syncbn-none-'));
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/syncbn: no native addon fits this machine \(No native build was found for platform=linux arch=\w+/);
    expect(r.stderr).toMatch(/prebuilt binary for linux-x64 \(glibc >= 2\.34\).*`npm rebuild syncbn` with cmake/);
  });

  test('a binary that does not load: names the file and the loader\'s reason', () => {
    const dir = tempDir('syncbn-broken-');
    fs.mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
    const file = path.join(dir, 'build', 'Release', 'syncbn.node');
    fs.writeFileSync(file, 'not an ELF file');
    const r = loadFrom(dir);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`syncbn: the native addon ${file} could not be loaded (${file}: file too short)`);
  });
});
