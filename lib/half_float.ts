// The half-float codec: float16 and bfloat16 values are held on the host as
// Uint16Array bits (the kernels convert them themselves), and converted here
// when they are written from or read back to numbers.

/** The dtypes stored as 16-bit patterns. */
export type HalfDType = 'float16' | 'bfloat16';

// Scratch for reinterpreting a float32's bits.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 (after rounding `v` to it) to float16 / bfloat16 bits, round to nearest even. */
export function toHalfBits(v: number, dtype: HalfDType): number {
  f32[0] = v;
  const x = u32[0];
  if (dtype === 'bfloat16') {
    if ((x & 0x7fffffff) > 0x7f800000) return 0x7fc0;
    return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
  }
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** The value of float16 / bfloat16 bits (exact in a number). */
export function fromHalfBits(h: number, dtype: HalfDType): number {
  if (dtype === 'bfloat16') {
    u32[0] = h << 16;
    return f32[0];
  }
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

export function isHalf(dtype: string): dtype is HalfDType {
  return dtype === 'float16' || dtype === 'bfloat16';
}
