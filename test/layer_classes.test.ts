// The twelve 1d/2d/3d classes (plain, lazy, synchronized, momentum) are
// declarations only: their ranks and laziness are static data that BatchNorm
// reads. This checks each one as users meet it: a real class of its name, the
// input ranks PyTorch's class takes with PyTorch's message for the others,
// its name when printed, TSDoc with a cross-reference and an example, and a
// class in the emitted declarations (dist/, compiled by jest's global setup).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nn, randn, Tensor } from '../lib';

const ROOT = path.resolve(__dirname, '..');

interface Shell {
  name: string;
  parent: string;
  family: typeof nn.BatchNorm;
  file: string;
  ranks: number[];
  words: string;
  lazy: boolean;
}

const DIMS: Array<{ d: 1 | 2 | 3; ranks: number[]; words: string }> = [
  { d: 1, ranks: [2, 3], words: '2D or 3D' },
  { d: 2, ranks: [4], words: '4D' },
  { d: 3, ranks: [5], words: '5D' },
];

const SHELLS: Shell[] = DIMS.flatMap(({ d, ranks, words }) => [
  { name: `BatchNorm${d}d`, parent: 'BatchNorm', family: nn.BatchNorm, file: 'lib/nn/batchnorm.ts', ranks, words, lazy: false },
  { name: `LazyBatchNorm${d}d`, parent: `BatchNorm${d}d`, family: nn.BatchNorm, file: 'lib/nn/batchnorm.ts', ranks, words, lazy: true },
  { name: `SynchronizedBatchNorm${d}d`, parent: 'SyncBatchNorm', family: nn.SyncBatchNorm, file: 'lib/nn/sync_batchnorm.ts', ranks, words, lazy: false },
  { name: `MomentumBatchNorm${d}d`, parent: 'MomentumBatchNorm', family: nn.MomentumBatchNorm, file: 'lib/nn/momentum_batchnorm.ts', ranks, words, lazy: false },
]);

type Ctor = new (...args: unknown[]) => nn.BatchNorm;
const ctor = (name: string): Ctor => (nn as unknown as Record<string, Ctor>)[name];
const make = (s: Shell, c = 3): nn.BatchNorm => (s.lazy ? new (ctor(s.name))() : new (ctor(s.name))(c));
const input = (rank: number): Tensor => randn([2, 3, ...Array(Math.max(0, rank - 2)).fill(2)].slice(0, rank));

test('every exported 1d/2d/3d BatchNorm class is in the table, and the table has twelve', () => {
  const exported = Object.entries(nn)
    .filter(([, v]) => typeof v === 'function' && v.prototype instanceof nn.BatchNorm && /[123]d$/.test(v.name))
    .map(([k]) => k)
    .sort();
  expect(exported).toEqual(SHELLS.map((s) => s.name).sort());
  expect(SHELLS).toHaveLength(12);
});

describe.each(SHELLS.map((s) => [s.name, s] as const))('%s', (name, s) => {
  test('is a class of its name, an instance of its family and parent', () => {
    const C = ctor(name);
    expect(C.name).toBe(name);
    const bn = make(s);
    expect(bn).toBeInstanceOf(C);
    expect(bn).toBeInstanceOf(s.family);
    expect(bn).toBeInstanceOf(nn.BatchNorm);
    expect(bn).toBeInstanceOf(nn.Module);
    expect(bn).toBeInstanceOf(ctor(s.parent) ?? s.family);
    expect(bn.constructor).toBe(C);
  });

  test(`takes rank ${s.ranks.join(' or ')} input; refuses the others with PyTorch's "expected ${s.words} input"`, () => {
    for (const rank of s.ranks) {
      const y = make(s).forward(input(rank));
      expect(y.shape).toEqual(input(rank).shape);
    }
    for (const rank of [1, 2, 3, 4, 5, 6].filter((r) => !s.ranks.includes(r))) {
      const bn = make(s);
      expect(() => bn.forward(input(rank))).toThrow(new RangeError(`expected ${s.words} input (got ${rank}D input)`));
      // A refused input changes nothing (a lazy layer stays lazy).
      expect(bn.hasUninitializedParams()).toBe(s.lazy);
    }
  });

  test('prints under its PyTorch name', () => {
    const bn = make(s);
    if (s.lazy) {
      expect(bn.typeName()).toBe(name);
      bn.forward(input(s.ranks[0]));
      expect(bn.typeName()).toBe(s.parent);
    }
    const printed = s.lazy ? s.parent : name;
    expect(String(bn)).toMatch(new RegExp(`^${printed}\\(3, eps=1e-05, momentum=[\\d.]+, affine=True, track_running_stats=True\\)$`));
  });

  if (s.lazy) {
    // PyTorch's cls_to_become (test_lazy_modules.py, test_lazy_batchnorm{1,2,3}d): a materialized lazy
    // layer's class is the plain one, so `instanceof` tells the layers still waiting for numFeatures.
    test(`becomes a ${s.parent} (and no longer a ${name}) at its first forward or load, and works on`, () => {
      const plain = ctor(s.parent);
      const bn = make(s);
      expect(bn).toBeInstanceOf(ctor(name));
      const x = input(s.ranks[0]);
      bn.forward(x);
      expect(bn).not.toBeInstanceOf(ctor(name));
      expect(bn).toBeInstanceOf(plain);
      expect(bn.constructor).toBe(plain);
      expect(bn.hasUninitializedParams()).toBe(false);
      expect(bn.numFeatures).toBe(3);
      expect(bn.backward(randn(x.shape)).shape).toEqual(x.shape);
      expect(bn.weight!.grad).not.toBeNull();
      bn.eval();
      expect(bn.forward(x).shape).toEqual(x.shape);
      const twin = new plain(3);
      twin.loadStateDict(bn.stateDict());
      for (const [k, t] of Object.entries(bn.stateDict())) expect(twin.stateDict()[k].toArray()).toEqual(t.toArray());
      // Materialized by a load: the same change; a refused load changes nothing.
      const loaded = make(s);
      expect(() => loaded.loadStateDict({ weight: randn([3]) })).toThrow(/Missing key/);
      expect(loaded).toBeInstanceOf(ctor(name));
      loaded.loadStateDict(bn.stateDict());
      expect(loaded).not.toBeInstanceOf(ctor(name));
      expect(loaded.constructor).toBe(plain);
      expect(loaded.runningMean!.toArray()).toEqual(bn.runningMean!.toArray());
    });
  }

  test('has TSDoc with a cross-reference and an example', () => {
    const source = fs.readFileSync(path.join(ROOT, s.file), 'utf8');
    const at = source.indexOf(`export class ${name} extends ${s.parent} {`);
    expect(at).toBeGreaterThan(0);
    const doc = /\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*$/.exec(source.slice(0, at));
    expect(doc).not.toBeNull();
    expect(doc![1]).toMatch(/Cf\. (flame's\s+(\* )?)?`[\w.]+`/);
    expect(doc![1]).toMatch(new RegExp(`@example[\\s\\S]*new nn\\.${name}\\(`));
  });

  test('is declared as a class in dist/ (d.ts)', () => {
    const dts = fs.readFileSync(path.join(ROOT, 'dist', s.file.replace(/^lib\//, '').replace(/\.ts$/, '.d.ts')), 'utf8');
    expect(dts).toContain(`export declare class ${name} extends ${s.parent} {`);
  });
});
