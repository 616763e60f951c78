// Tolerance checks for comparisons with PyTorch. |a - e| <= atol + rtol * |e|
// elementwise, reporting the worst element when it fails.
import { Tensor } from '../../lib';

export interface Tolerance {
  rtol: number;
  atol: number;
}

/**
 * The stated tolerances: float32 ~1e-5 relative, float64 ~1e-12; the 16-bit
 * floats PyTorch's own for them (bfloat16 1.6e-2, float16 2e-3: a few units
 * in their last place, which one rounding of a float32 result can take).
 */
export const TOLERANCE: Record<'float32' | 'float64' | 'float16' | 'bfloat16', Tolerance> = {
  float32: { rtol: 1e-5, atol: 1e-5 },
  float64: { rtol: 1e-12, atol: 1e-12 },
  float16: { rtol: 2e-3, atol: 2e-3 },
  bfloat16: { rtol: 1.6e-2, atol: 1.6e-2 },
};

type Values = ArrayLike<number> | Tensor;

function flat(v: Values): ArrayLike<number> {
  return v instanceof Tensor ? v.toArray() : v;
}

export function assertClose(actual: Values, expected: ArrayLike<number>, tol: Tolerance, label: string): void {
  const a = flat(actual);
  if (a.length !== expected.length) {
    throw new Error(`${label}: ${a.length} values, expected ${expected.length}`);
  }
  let worst = -1;
  let worstExcess = 0;
  // Jest's vm context makes each global lookup in a loop slow.
  const abs = Math.abs;
  const { atol, rtol } = tol;
  for (let i = 0; i < a.length; i++) {
    const e = expected[i];
    const err = abs(a[i] - e);
    const excess = err - (atol + rtol * abs(e));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    throw new Error(`${label}: element ${worst} is ${a[worst]}, expected ${expected[worst]} ` +
      `(|diff| ${Math.abs(a[worst] - expected[worst]).toExponential(3)} > atol ${tol.atol} + rtol ${tol.rtol} * |expected|)`);
  }
}
