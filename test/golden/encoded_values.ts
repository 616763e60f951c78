// The fixtures' spelling of non-finite numbers (JSON has none): 'nan', 'inf'
// and '-inf' beside plain numbers, as test/golden/generate_nonfinite.py and
// generate_edges.py write them, and the comparison of results with them.
export type Enc = number | 'nan' | 'inf' | '-inf';

export const dec = (v: Enc): number => (v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : v);

/**
 * Each finite expected value within `tol` (absolute and relative) of the
 * actual one; a NaN or an infinity exactly (NaN for NaN, the same signed infinity).
 */
export function expectSame(actual: ArrayLike<number>, expected: Enc[], tol: number, label: string): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const e = dec(expected[i]);
    const a = actual[i];
    const ok = Number.isFinite(e) ? Math.abs(a - e) <= tol + tol * Math.abs(e) : Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e));
    if (!ok) throw new Error(`${label}: element ${i} is ${a}, PyTorch gives ${e}`);
  }
}
