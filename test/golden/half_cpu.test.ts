// float16 and bfloat16 batch norm on the CPU against PyTorch
// (test/golden/generate_half_cpu.py): bfloat16 against PyTorch 1.13's own CPU
// kernels; float16, which 1.13 lacks on the CPU, against PyTorch's float32 on
// the float16 values, rounded as PyTorch 2 stores them. Each layer in both
// of PyTorch's forms: a float32 layer on a half input (mixed precision) and a
// layer converted with to('bfloat16') / to('float16') (all half), in both
// memory formats. Tolerances: PyTorch's for the half types (TOLERANCE).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { F, load, nn, tensor, MemoryFormat, Tensor } from '../../lib';
import { assertClose, TOLERANCE } from '../support/assert_close';
import { formatsFor, ModuleStep } from './module_steps';
import { checkOpsCase, OpsCase } from './ops_case';

type Half = 'float16' | 'bfloat16';


interface ModuleCase {
  name: string;
  module: 'BatchNorm1d' | 'BatchNorm2d' | 'BatchNorm3d';
  dtype: Half;
  params: 'mixed' | 'half';
  reference: string;
  shape: number[];
  eps: number;
  momentum: number | null;
  affine: boolean;
  track_running_stats: boolean;
  weight: number[];
  bias: number[];
  x: number[][];
  dy: number[][];
  steps: ModuleStep[];
}

interface Fixture {
  torch: string;
  modules: ModuleCase[];
  ops: OpsCase[];
  checkpoint: { file: string; shape: number[]; x: number[]; y: number[]; state_dict: Record<string, number[]> };
}

const FIXTURES = path.join(__dirname, 'fixtures');
const fixture: Fixture = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'half_cpu.json'), 'utf8'));

function checkModule(c: ModuleCase, fmt: MemoryFormat): void {
  const tol = TOLERANCE[c.dtype];
  const C = c.shape[1];
  const bn = new nn[c.module](C, { eps: c.eps, momentum: c.momentum, affine: c.affine, trackRunningStats: c.track_running_stats });
  if (c.affine) {
    bn.weight!.copy_(tensor(c.weight, [C]));
    bn.bias!.copy_(tensor(c.bias, [C]));
  }
  // The all-half layer as a user makes one: converted after construction.
  if (c.params === 'half') bn.to(c.dtype);
  const pd = c.params === 'half' ? c.dtype : 'float32';
  c.steps.forEach((s, i) => {
    const at = `${c.name} ${c.dtype} ${c.params} ${fmt} step ${i} (${s.training ? 'train' : 'eval'})`;
    bn.train(s.training);
    bn.zeroGrad();
    const x = tensor(c.x[i], c.shape, { dtype: c.dtype, memoryFormat: fmt });
    const xBefore = Array.from(x.data as Uint16Array);
    const y = bn.forward(x);
    expect([y.dtype, y.memoryFormat]).toEqual([c.dtype, fmt]);
    assertClose(y, s.y, tol, `${at} output`);
    const dx = bn.backward(tensor(c.dy[i], c.shape, { dtype: c.dtype, memoryFormat: fmt }));
    expect([dx.dtype, dx.memoryFormat]).toEqual([c.dtype, fmt]);
    assertClose(dx, s.dx, tol, `${at} grad input`);
    expect(Array.from(x.data as Uint16Array)).toEqual(xBefore);
    if (c.affine) {
      expect([bn.weight!.dtype, bn.weight!.grad!.dtype, bn.bias!.grad!.dtype]).toEqual([pd, pd, pd]);
      assertClose(bn.weight!.grad!, s.grad_weight!, tol, `${at} grad weight`);
      assertClose(bn.bias!.grad!, s.grad_bias!, tol, `${at} grad bias`);
    }
    if (c.track_running_stats) {
      expect([bn.runningMean!.dtype, bn.runningVar!.dtype]).toEqual([pd, pd]);
      assertClose(bn.runningMean!, s.running_mean!, tol, `${at} running mean`);
      assertClose(bn.runningVar!, s.running_var!, tol, `${at} running var`);
      expect(bn.numBatchesTracked!.item()).toBe(s.num_batches_tracked);
    }
  });
}

describe('float16 and bfloat16 on the CPU vs PyTorch', () => {
  test(`the fixture: bfloat16 from PyTorch ${fixture.torch}'s CPU kernels, float16 from its float32, both forms of every layer`, () => {
    const bf16 = fixture.modules.filter((c) => c.dtype === 'bfloat16');
    expect(bf16.length).toBeGreaterThan(0);
    expect(bf16.every((c) => c.reference === 'torch CPU kernels')).toBe(true);
    for (const dtype of ['bfloat16', 'float16']) {
      for (const params of ['mixed', 'half']) {
        expect(new Set(fixture.modules.filter((c) => c.dtype === dtype && c.params === params).map((c) => c.module)))
          .toEqual(new Set(['BatchNorm1d', 'BatchNorm2d', 'BatchNorm3d']));
      }
    }
    expect(fixture.ops.map((c) => c.name).sort()).toEqual(['2D-bfloat16', '2D-float16', '4D-bfloat16', '4D-float16', '5D-bfloat16', '5D-float16']);
  });

  for (const c of fixture.modules) {
    for (const fmt of formatsFor(c.shape)) {
      test(`${c.name} ${c.dtype} ${c.params === 'mixed' ? 'input, float32 layer' : 'layer'} ${fmt}`, () => checkModule(c, fmt));
    }
  }

  for (const c of fixture.ops) {
    for (const fmt of formatsFor(c.shape)) test(`ATen-level ops ${c.name} ${fmt}`, () => checkOpsCase(c, fmt));
  }

  test('F.batchNorm with every per-channel tensor in bfloat16 (PyTorch 2 on the CPU) matches the float32 ones, rounded', () => {
    const c = fixture.modules.find((m) => m.dtype === 'bfloat16' && m.params === 'half' && m.name === '2d')!;
    const C = c.shape[1];
    const half = (v: number[]) => tensor(v, [C], { dtype: 'bfloat16' });
    const x = tensor(c.x[0], c.shape, { dtype: 'bfloat16' });
    const [rm, rv] = [half(new Array(C).fill(0)), half(new Array(C).fill(1))];
    const [rm32, rv32] = [tensor(new Array(C).fill(0), [C]), tensor(new Array(C).fill(1), [C])];
    const r = F.nativeBatchNorm(x, half(c.weight), half(c.bias), rm, rv, true, 0.1, c.eps);
    const r32 = F.nativeBatchNorm(x, tensor(c.weight, [C]), tensor(c.bias, [C]), rm32, rv32, true, 0.1, c.eps);
    // The statistics come back in the input's dtype, as PyTorch 2's all-half CPU batch norm returns them, and
    // normalize the batch from there, as its transform of the input reads them back.
    expect([r.output.dtype, r.saveMean.dtype, r.saveInvstd.dtype, rm.dtype]).toEqual(['bfloat16', 'bfloat16', 'bfloat16', 'bfloat16']);
    const rounded = (t: Tensor) => tensor(t.toArray(), [C], { dtype: 'bfloat16' }).toArray();
    for (const [got, want] of [[r.saveMean, r32.saveMean], [r.saveInvstd, r32.saveInvstd], [rm, rm32], [rv, rv32]] as const) {
      expect(Array.from(got.toArray())).toEqual(Array.from(rounded(want)));
    }
    const y = F.batchNormElemt(x, tensor(c.weight, [C]), tensor(c.bias, [C]), tensor(rounded(r32.saveMean), [C]), tensor(rounded(r32.saveInvstd), [C]));
    expect(Array.from(r.output.data as Uint16Array)).toEqual(Array.from(y.data as Uint16Array));
    assertClose(r.output, r32.output.toArray(), TOLERANCE.bfloat16, 'all-bfloat16 output vs the float32 layer\'s');
    const g = F.batchNormBackward(tensor(c.dy[0], c.shape, { dtype: 'bfloat16' }), x, { weight: half(c.weight), saveMean: r.saveMean, saveInvstd: r.saveInvstd, training: true, eps: c.eps });
    expect([g.gradInput!.dtype, g.gradWeight!.dtype, g.gradBias!.dtype]).toEqual(['bfloat16', 'bfloat16', 'bfloat16']);
    assertClose(g.gradWeight!, c.steps[0].grad_weight!, TOLERANCE.bfloat16, 'all-bfloat16 grad weight');
    // With no per-channel tensor at all PyTorch takes the half path too (is_mixed_type is false without any).
    const bare = F.nativeBatchNorm(x, null, null, null, null, true, 0.1, c.eps);
    expect(bare.saveMean.dtype).toBe('bfloat16');
    expect(Array.from(bare.saveMean.toArray())).toEqual(Array.from(r.saveMean.toArray()));
    // PyTorch's rule: all float32 or all the input's dtype.
    expect(() => F.nativeBatchNorm(x, half(c.weight), tensor(c.bias, [C]), null, null, true, 0.1, c.eps)).toThrow(
      `batch_norm: the per-channel tensors of a bfloat16 input must all be float32 (mixed precision) or all bfloat16, got weight bfloat16 and bias float32 [${C}]`);
  });

  test('a layer trained in bfloat16 by PyTorch: its torch.save checkpoint loads and infers on the CPU', () => {
    const k = fixture.checkpoint;
    const sd = load(path.join(FIXTURES, k.file));
    expect(sd.weight.dtype).toBe('bfloat16');
    for (const [key, v] of Object.entries(k.state_dict)) expect(Array.from(sd[key].toArray())).toEqual(v.map(Math.fround));
    const x = tensor(k.x, k.shape, { dtype: 'bfloat16' });
    for (const convert of [(bn: nn.BatchNorm2d) => bn.bfloat16(), (bn: nn.BatchNorm2d) => bn]) {
      const bn = convert(new nn.BatchNorm2d(k.shape[1]));
      bn.loadStateDict(sd);
      bn.eval();
      for (const fmt of ['contiguous', 'channelsLast'] as const) {
        const y = bn.forward(x.contiguous(fmt));
        expect(y.dtype).toBe('bfloat16');
        assertClose(y, k.y, TOLERANCE.bfloat16, `${bn.dtype} layer, ${fmt}`);
      }
    }
  });

  test('grads of a bfloat16 layer accumulate over backwards, in bfloat16', () => {
    const c = fixture.modules.find((m) => m.dtype === 'bfloat16' && m.params === 'half' && m.name === '1d-2D')!;
    const C = c.shape[1];
    const bn = new nn.BatchNorm1d(C).bfloat16();
    const once: Tensor[] = [];
    for (let k = 0; k < 2; k++) {
      bn.forward(tensor(c.x[0], c.shape, { dtype: 'bfloat16' }));
      bn.backward(tensor(c.dy[0], c.shape, { dtype: 'bfloat16' }));
      if (k === 0) once.push(bn.weight!.grad!.clone(), bn.bias!.grad!.clone());
    }
    expect(bn.weight!.grad!.dtype).toBe('bfloat16');
    assertClose(bn.weight!.grad!, Array.from(once[0].toArray(), (v) => 2 * v), TOLERANCE.bfloat16, 'grad weight after two backwards');
    assertClose(bn.bias!.grad!, Array.from(once[1].toArray(), (v) => 2 * v), TOLERANCE.bfloat16, 'grad bias after two backwards');
  });
});
