import { Tensor } from '../tensor';
import { Module } from './module';

/**
 * Runs its children in order; backward runs them in reverse.
 * Cf. `torch.nn.Sequential`.
 *
 * @example
 * const net = new nn.Sequential(new nn.BatchNorm1d(8), new nn.BatchNorm1d(8, { affine: false }));
 * const y = net.forward(randn([4, 8]));
 * const dx = net.backward(ones([4, 8]));
 */
export class Sequential extends Module {
  constructor(...modules: Module[]) {
    super();
    modules.forEach((m) => this.append(m));
  }

  get length(): number {
    return this.children().length;
  }

  /** The child at `index` (negative counts from the end). */
  at(index: number): Module {
    const kids = this.children();
    const i = index < 0 ? index + kids.length : index;
    if (!Number.isInteger(i) || i < 0 || i >= kids.length) throw new RangeError(`index ${index} is out of range`);
    return kids[i];
  }

  append(module: Module): this {
    this.registerModule(String(this.length), module);
    return this;
  }

  forward(input: Tensor): Tensor {
    let x = input;
    for (const m of this.children()) x = m.forward(x);
    return x;
  }

  override backward(gradOutput: Tensor): Tensor {
    let g = gradOutput;
    for (const m of this.children().reverse()) g = m.backward(g);
    return g;
  }
}
