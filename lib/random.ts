// Random numbers: randn and rand over one default generator, seeded as
// torch.manual_seed seeds PyTorch's. The streams are not PyTorch's (it uses
// mt19937): the same seed draws other numbers from the same distributions.
import { filled } from './factories';
import { checkDevice, Tensor, TensorOptions } from './tensor';

// xoshiro128** seeded through splitmix32: small, fast and well distributed.
class Generator {
  private s = new Uint32Array(4);
  private spare: number | null = null;
  private seed = 0;

  constructor(seed: number) {
    this.manualSeed(seed);
  }

  manualSeed(seed: number): void {
    this.seed = seed;
    let z = (Math.trunc(seed) >>> 0) ^ Math.trunc(seed / 4294967296);
    for (let i = 0; i < 4; i++) {
      z = (z + 0x9e3779b9) >>> 0;
      let t = z;
      t = Math.imul(t ^ (t >>> 16), 0x85ebca6b) >>> 0;
      t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (t ^ (t >>> 16)) >>> 0;
    }
    this.spare = null;
  }

  initialSeed(): number {
    return this.seed;
  }

  private nextU32(): number {
    const s = this.s;
    const result = Math.imul(((Math.imul(s[1], 5) << 7) | (Math.imul(s[1], 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ((s[3] << 11) | (s[3] >>> 21)) >>> 0;
    return result;
  }

  /** Uniform in (0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo + 0.5) / 9007199254740992;
  }

  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const theta = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

// PyTorch's default generator also starts from a fixed seed.
const defaultGenerator = new Generator(67280421310721);

/** Seeds the generator behind `randn`/`rand`. Cf. `torch.manual_seed`. @example manualSeed(0); */
export function manualSeed(seed: number): void {
  if (typeof seed !== 'number' || !Number.isFinite(seed)) throw new TypeError('manualSeed: seed must be a finite number');
  defaultGenerator.manualSeed(seed);
}

/** Cf. `torch.initial_seed`. */
export function initialSeed(): number {
  return defaultGenerator.initialSeed();
}

function sampled(shape: readonly number[], opts: TensorOptions, where: string, draw: () => number): Tensor {
  const dtype = opts.dtype ?? 'float32';
  if (dtype === 'int64') throw new TypeError(`${where}: dtype must be a floating dtype`);
  const host = filled(shape, 0, { ...opts, device: 'cpu', dtype: 'float64' }, where);
  const d = host.data as Float64Array;
  for (let i = 0; i < d.length; i++) d[i] = draw();
  const t = filled(shape, 0, { ...opts, device: 'cpu' }, where);
  t.copy_(host);
  return t.to(checkDevice(opts.device, where));
}

/** Standard normal samples. Cf. `torch.randn`. @example manualSeed(1); const x = randn([8, 4]); */
export function randn(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return sampled(shape, opts, 'randn', () => defaultGenerator.normal());
}

/** Uniform samples in [0, 1). Cf. `torch.rand`. @example const u = rand([3]); */
export function rand(shape: readonly number[], opts: TensorOptions = {}): Tensor {
  return sampled(shape, opts, 'rand', () => defaultGenerator.uniform());
}
