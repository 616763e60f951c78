// A fixed-seed run of the fuzzer (test/fuzz/run.js): public API and raw
// binding calls, in child processes; no crash, no accepted call that differs
// from the float64 reference, no modified input. A longer run is one command
// (see test/fuzz/run.js and the README's Robustness section).
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

describe('fuzzing the public API and the raw binding', () => {
  jest.setTimeout(120000);

  test('20000 cases of seed 20261130: no crash, no wrong result, no modified input', () => {
    const out = execFileSync(process.execPath, [path.join(__dirname, 'fuzz', 'run.js'), '--seed', '20261130', '--cases', '20000'], { encoding: 'utf8' });
    const s = JSON.parse(out.trim().split('\n').pop()!);
    expect(s.calls).toBe(20000);
    expect(s.crashes).toEqual([]);
    expect(s.wrong).toEqual([]);
    expect(s.modified).toEqual([]);
    // Both sides are exercised: calls that run and are checked, calls that are refused.
    expect(s.accepted).toBeGreaterThan(10000);
    expect(s.refused).toBeGreaterThan(2000);
  });
});
