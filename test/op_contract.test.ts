// Each op's contract is written three times: the field list of its binding
// (an OpSpec in native/addon/batch_norm.cpp, with the Role each field is read
// with), its argument type in lib/native.ts (NativeOps), and its kernel's
// Args struct in native/kernels/batch_norm.h. The compiler checks none of
// them against another: this test does, field by field, in order, with
// which are optional, and shows that a rename on one side alone fails.
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), 'utf8');

interface Field {
  name: string;
  optional: boolean;
}
type Contract = Map<string, Field[]>;

/** The OpSpecs: each op's fields in order, optional where its binding reads them with Role::OptIn, OptOut or Aliasable. */
function bindings(cpp: string): Contract {
  const ops: Contract = new Map();
  for (const m of cpp.matchAll(/constexpr const char\* k(\w+)Fields\[\] = \{([^}]*)\};\s*constexpr OpSpec k\1\{"(\w+)"/g)) {
    const names = [...m[2].matchAll(/"(\w+)"/g)].map((f) => f[1]);
    // The binding's body: from its OpSpec to the next one.
    const body = cpp.slice(m.index!, cpp.indexOf('constexpr const char*', m.index! + m[0].length) >>> 0);
    const optional = new Set([...body.matchAll(/"(\w+)"[^"]*?Role::(?:Opt\w+|Aliasable)/g)].map((r) => r[1]));
    ops.set(m[3], names.map((name) => ({ name, optional: optional.has(name) })));
  }
  return ops;
}

/** NativeOps: each method's argument fields in order (OnBatch is dtype, shape, channelsLast), optional where null is allowed. */
function typings(ts: string): Contract {
  const body = ts.slice(ts.indexOf('export interface NativeOps {'));
  const ops: Contract = new Map();
  for (const m of body.slice(0, body.indexOf('\n}')).matchAll(/^ {2}(\w+)\(a: (OnBatch & )?\{([^}]*)\}\): void;/gms)) {
    const fields = m[2] ? [{ name: 'dtype', optional: false }, { name: 'shape', optional: false }, { name: 'channelsLast', optional: false }] : [];
    for (const f of m[3].matchAll(/(\w+): ([^;]+);?/g)) {
      fields.push({ name: f[1], optional: /OptArr|Opt<|\| null/.test(f[2]) });
    }
    ops.set(m[1], fields);
  }
  return ops;
}

// The binding's name of a struct field where it is not the camelCase of the field.
const ALIASES: Record<string, string> = { x: 'input', y: 'output', dy: 'gradOutput', dx: 'gradInput', c: 'channels', var: 'variance', src: 'source', dst: 'destination' };
const camel = (snake: string) => ALIASES[snake] ?? snake.replace(/_(\w)/g, (_, ch: string) => ch.toUpperCase());

/** The kernels' Args structs, their fields named as the bindings name them; `s` (BatchShape) is the binding's shape. */
function structs(h: string): Contract {
  const ops: Contract = new Map();
  for (const m of h.matchAll(/struct (\w+)Args \{([^}]*)\};/g)) {
    const name = m[1][0].toLowerCase() + m[1].slice(1);
    const fields = m[2].split('\n').map((l) => /^\s*[\w:<>*\s]+?\s\**(\w+);(.*)$/.exec(l)).filter((f): f is RegExpExecArray => f !== null)
      .map((f) => ({ name: f[1] === 's' ? 'shape' : camel(f[1]), optional: /optional/.test(f[2]) }));
    ops.set(name, fields);
  }
  return ops;
}

/** Every difference between two contracts, in words; `drop` names fields only the first states. */
function differences(a: Contract, aName: string, b: Contract, bName: string, drop: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  for (const op of new Set([...a.keys(), ...b.keys()])) {
    const fa = a.get(op)?.filter((f) => !drop.has(f.name));
    const fb = b.get(op)?.filter((f) => !drop.has(f.name));
    if (!fa || !fb) {
      out.push(`${op}: ${fa ? `not in ${bName}` : `not in ${aName}`}`);
      continue;
    }
    const names = (fs: Field[]) => fs.map((f) => f.name).join(', ');
    if (names(fa) !== names(fb)) out.push(`${op}: fields ${aName} [${names(fa)}], ${bName} [${names(fb)}]`);
    else fa.forEach((f, i) => {
      if (f.optional !== fb[i].optional) out.push(`${op}.${f.name}: optional in ${f.optional ? aName : bName} only`);
    });
  }
  return out;
}

const CPP = read('native/addon/batch_norm.cpp');
const TS = read('lib/native.ts');
const H = read('native/kernels/batch_norm.h');
// The structs take the dtype as their template parameter and dtype, shape and layout as one BatchShape.
const BATCH_ONLY = new Set(['dtype', 'channelsLast']);
const structOrder = (c: Contract): Contract => new Map([...c].map(([op, fs]) => [op, fs.filter((f) => f.name !== 'shape')]));

test('the bindings (OpSpec) and lib/native.ts state the same fields, in order, optional alike', () => {
  const native = bindings(CPP);
  expect(native.size).toBe(14);
  expect(differences(native, 'batch_norm.cpp', typings(TS), 'lib/native.ts')).toEqual([]);
});

test('the bindings and the kernels\' Args structs agree field by field (BatchShape for shape, layout and dtype)', () => {
  const native = structOrder(bindings(CPP));
  expect(differences(native, 'batch_norm.cpp', structOrder(structs(H)), 'batch_norm.h', BATCH_ONLY)).toEqual([]);
});

test('a field renamed on one side only fails, on each side', () => {
  const native = bindings(CPP);
  const renamedTs = TS.replace('saveInvstd: Arr }', 'saveInvStd: Arr }');
  expect(renamedTs).not.toBe(TS);
  expect(differences(native, 'batch_norm.cpp', typings(renamedTs), 'lib/native.ts')).toEqual([
    'forwardTraining: fields batch_norm.cpp [dtype, shape, channelsLast, input, weight, bias, eps, momentum, runningMean, runningVar, output, saveMean, saveInvstd], ' +
    'lib/native.ts [dtype, shape, channelsLast, input, weight, bias, eps, momentum, runningMean, runningVar, output, saveMean, saveInvStd]',
  ]);
  const renamedCpp = CPP.replace('"totalCount", "gradInput"}', '"count", "gradInput"}');
  expect(renamedCpp).not.toBe(CPP);
  expect(differences(bindings(renamedCpp), 'batch_norm.cpp', typings(TS), 'lib/native.ts')).toHaveLength(1);
  const renamedH = H.replace('opmath_t<T>* out_var;', 'opmath_t<T>* out_variance;');
  expect(differences(structOrder(native), 'batch_norm.cpp', structOrder(structs(renamedH)), 'batch_norm.h', BATCH_ONLY)).toHaveLength(1);
  const optionalTs = TS.replace('sumDy: Arr; sumDyXmu: Arr;\n    totalCount', 'sumDy: OptArr; sumDyXmu: Arr;\n    totalCount');
  expect(differences(native, 'batch_norm.cpp', typings(optionalTs), 'lib/native.ts')).toEqual(['backwardElemt.sumDy: optional in lib/native.ts only']);
});
