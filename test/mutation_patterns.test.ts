// The mutation check (npm run test:mutation, in CI) takes ~2 minutes, so it is
// not part of jest; this keeps its patterns honest on every jest run: each
// mutation still matches its lib/ file exactly once (change the pattern with
// the code, never drop the mutation), names test files that exist, and the
// bugs issue #21 listed are all still there.
import * as fs from 'node:fs';
import * as path from 'node:path';

interface Mutation {
  name: string;
  file: string;
  find: string;
  replace: string;
  tests: string[];
}
// eslint-disable-next-line @typescript-eslint/no-var-requires
const mutations = require('./mutation/mutations') as Mutation[];
const ROOT = path.resolve(__dirname, '..');

describe('mutation check patterns', () => {
  test.each(mutations.map((m) => [m.name, m] as const))('%s: pattern matches its lib/ file once; its tests exist', (_, m) => {
    const text = fs.readFileSync(path.join(ROOT, m.file), 'utf8');
    const n = text.split(m.find).length - 1;
    if (n !== 1) {
      throw new Error(`${m.file} holds the pattern of mutation "${m.name}" ${n} times, expected once. ` +
        `If the code changed, update the pattern in test/mutation/mutations.js to the new code (keep the mutation) ` +
        `and run npm run test:mutation. Pattern: ${JSON.stringify(m.find)}`);
    }
    expect(m.replace).not.toBe(m.find);
    expect(m.tests.length).toBeGreaterThan(0);
    for (const t of m.tests) expect(fs.existsSync(path.join(ROOT, t))).toBe(true);
  });

  test('the bugs that once passed the whole suite are still mutated', () => {
    const names = mutations.map((m) => m.name);
    for (const required of [
      "BatchNorm's forward ignores eps (always 1e-5)",
      "BatchNorm's eval backward ignores eps",
      "the user's momentum replaced by 0.1",
      'num_batches_tracked never incremented',
      'momentum applied as 1 - m',
    ]) {
      expect(names).toContain(required);
    }
    expect(new Set(names).size).toBe(names.length);
  });
});
