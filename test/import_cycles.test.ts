// lib/ has no import cycle, between files or between folders (each folder of
// lib/ one node, each file at lib/'s root its own): type-only imports count,
// since a cycle of types is a cycle of concerns too.
import * as fs from 'node:fs';
import * as path from 'node:path';

const LIB = path.resolve(__dirname, '..', 'lib');

function files(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []);
}

/** The lib/ files that `file` imports or re-exports from, types included. */
function importsOf(file: string, source: string): string[] {
  const specs = [
    ...source.matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.[^']*)'/gms),
    ...source.matchAll(/^import\s+'(\.[^']*)'/gm),
    ...source.matchAll(/import\('(\.[^']*)'\)/g),
  ].map((m) => m[1]);
  return specs.map((s) => {
    const base = path.resolve(path.dirname(file), s);
    return fs.existsSync(`${base}.ts`) ? `${base}.ts` : path.join(base, 'index.ts');
  });
}

/** The cycles (strongly connected components of more than one node) of a graph. */
function cycles(edges: Map<string, Set<string>>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return found;
}

function graph(node: (file: string) => string): Map<string, Set<string>> {
  const edges = new Map<string, Set<string>>();
  for (const f of files(LIB)) {
    const from = node(f);
    if (!edges.has(from)) edges.set(from, new Set());
    for (const to of importsOf(f, fs.readFileSync(f, 'utf8'))) if (node(to) !== from) edges.get(from)!.add(node(to));
  }
  return edges;
}

const relative = (f: string) => path.relative(LIB, f);
const folder = (f: string) => (path.dirname(relative(f)) === '.' ? relative(f) : relative(f).split(path.sep)[0]);

test('no import cycle between the files of lib/', () => {
  expect(cycles(graph(relative))).toEqual([]);
});

test('no import cycle between the folders of lib/', () => {
  expect(cycles(graph(folder))).toEqual([]);
});

test('the check sees a cycle: a planted one is found', () => {
  const edges = new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])], ['d', new Set(['a'])]]);
  expect(cycles(edges)).toEqual([['a', 'b', 'c']]);
  expect(importsOf(path.join(LIB, 'nn', 'x.ts'), "import type { T } from '../tensor';\nexport * from './y';"))
    .toEqual([path.join(LIB, 'tensor.ts'), path.join(LIB, 'nn', 'y', 'index.ts')]);
});
