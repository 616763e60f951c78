// Checkpoints in and out against real PyTorch (fixtures by
// test/golden/generate_checkpoints.py): torch.save files and safetensors load
// with exact values, a model loaded from them reproduces PyTorch's training
// and eval outputs and running statistics, and what syncbn saves PyTorch
// reads back exactly (test/golden/read_back.py, torch.load(weights_only=True)).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { load, nn, save, randn, tensor, Parameter, Tensor } from '../../lib';
import { getMetadata } from '../../lib/state_dict_metadata';
import { saveTorchZip } from '../../lib/serialization/torch_format';
import { assertClose, TOLERANCE } from '../support/assert_close';
import { requireOrSkip } from '../support/require';

const DIR = path.join(__dirname, 'fixtures', 'checkpoints');
const fixture = (name: string): string => path.join(DIR, name);
const json = <T>(name: string): T => JSON.parse(fs.readFileSync(fixture(name), 'utf8')) as T;

interface Described {
  dtype: string;
  shape: number[];
  values: Array<number | string>;
  stride?: number[];
  storage_offset?: number;
}
interface ModelRecord {
  state_dict: Record<string, Described>;
  metadata: Record<string, Record<string, number>>;
  x: number[][];
  x_shape: number[];
  h: number[][];
  h_shape: number[];
  train_y: number[][];
  train_head: number[];
  eval_y: number[];
  eval_head: number[];
  trained: Record<string, Described>;
}

/** JSON numbers as the dtype holds them: float32 (and half) values were printed in their shortest exact form. */
function asStored(dtype: string): (v: number | string) => number {
  return dtype === 'float64' ? Number : (v) => Math.fround(Number(v));
}

/** Exact comparison: dtype, shape and every value (int64 as BigInt). */
function expectExact(t: unknown, d: Described, label: string): void {
  expect(t).toBeInstanceOf(Tensor);
  const x = t as Tensor;
  expect({ label, dtype: x.dtype, shape: [...x.shape] }).toEqual({ label, dtype: d.dtype, shape: d.shape });
  if (x.dtype === 'int64') {
    const data = x.contiguous().data as BigInt64Array;
    expect({ label, values: Array.from(data, String) }).toEqual({ label, values: d.values.map(String) });
  } else {
    // Float32 values were printed in their shortest exact form: equality, not a tolerance.
    expect({ label, values: Array.from(x.toArray()) }).toEqual({ label, values: d.values.map(asStored(x.dtype)) });
  }
}

/** The fixture's model, children held in fields as a TypeScript user writes it. */
class Block extends nn.Module {
  bn: nn.BatchNorm2d;
  inner: nn.Sequential;
  constructor(c: number) {
    super();
    this.bn = new nn.BatchNorm2d(c);
    this.inner = new nn.Sequential(new nn.BatchNorm2d(c, { momentum: null }), new nn.BatchNorm2d(c, { affine: false }));
  }
  forward(x: Tensor): Tensor {
    return this.inner.forward(this.bn.forward(x));
  }
}

class Net extends nn.Module {
  stem: nn.BatchNorm2d;
  block: Block;
  head: nn.BatchNorm1d;
  constructor(c: number) {
    super();
    this.stem = new nn.BatchNorm2d(c, { eps: 1e-3, momentum: 0.3 });
    this.block = new Block(c);
    this.head = new nn.BatchNorm1d(3, { dtype: 'float64' });
  }
  forward(x: Tensor): Tensor {
    return this.block.forward(this.stem.forward(x));
  }
}

const model = json<ModelRecord>('model.json');

describe('load: torch.save and safetensors files written by PyTorch', () => {
  for (const file of ['model.pt', 'model.safetensors', 'zip64.pt']) {
    test(`${file}: every tensor exactly, in the saved order`, () => {
      const sd = load(fixture(file));
      expect(Object.keys(sd)).toEqual(Object.keys(model.state_dict));
      for (const [k, d] of Object.entries(model.state_dict)) expectExact(sd[k], d, `${file} ${k}`);
    });
  }

  test("model.pt: the state dict's _metadata (module versions) comes along", () => {
    const sd = load(fixture('model.pt'));
    expect(getMetadata(sd)).toEqual(model.metadata);
    expect(Object.keys(sd)).not.toContain('_metadata');
  });

  // PyTorch 2.x's rule (torch/nn/modules/batchnorm.py, _NormBase._load_from_state_dict), which 1.13 cannot
  // produce (it reset the counter to 0): below version 2 a missing counter is the layer's own, kept.
  test("PyTorch 2's rule for num_batches_tracked: the layer's own kept below version 2, missing at version 2", () => {
    const sd = load(fixture('model.pt'));
    delete sd['stem.num_batches_tracked'];
    expect(() => new Net(4).loadStateDict(sd)).toThrow(/Missing key\(s\) in state_dict: "stem\.num_batches_tracked"/);
    const kept = new Net(4);
    kept.stem.numBatchesTracked!.fill_(7);
    expect(kept.loadStateDict(sd, { strict: false }).missingKeys).toEqual(['stem.num_batches_tracked']);
    expect(kept.stem.numBatchesTracked!.item()).toBe(7);
    getMetadata(sd)!.stem.version = 1;
    const net = new Net(4);
    net.stem.numBatchesTracked!.fill_(9);
    expect(net.loadStateDict(sd)).toEqual({ missingKeys: [], unexpectedKeys: [] });
    expect(net.stem.numBatchesTracked!.item()).toBe(9);
    expect(net.block.bn.numBatchesTracked!.item()).toBe(Number(model.state_dict['block.bn.num_batches_tracked'].values[0]));
  });

  test('model.safetensors: __metadata__ comes along', () => {
    const sd = load(fixture('model.safetensors')) as Record<string, unknown>;
    expect(sd.__metadata__).toEqual({ format: 'pt' });
  });

  for (const file of ['dtypes.pt', 'dtypes.safetensors']) {
    test(`${file}: float32, float64, float16, bfloat16, int64 beyond 2^53, a scalar, an empty tensor`, () => {
      const sd = load(fixture(file));
      const expected = json<Record<string, Described>>('dtypes.json');
      expect(Object.keys(sd)).toEqual(Object.keys(expected));
      for (const [k, d] of Object.entries(expected)) expectExact(sd[k], d, `${file} ${k}`);
      expect(sd.f16.data).toBeInstanceOf(Uint16Array);
      expect(sd.bf16.data).toBeInstanceOf(Uint16Array);
    });
  }

  test('views.pt: offsets and strides read right; contiguous views share the storage; channels-last stays channels-last', () => {
    const sd = load(fixture('views.pt'));
    const expected = json<Record<string, Described>>('views.json');
    for (const [k, d] of Object.entries(expected)) expectExact(sd[k], d, `views ${k}`);
    expect(sd.slice.data.buffer).toBe(sd.base.data.buffer);
    expect(sd.row.data.buffer).toBe(sd.base.data.buffer);
    sd.base.data[12] = 100; // base[1, 0, 0] is slice[0, 0]
    expect(sd.slice.toArray()[0]).toBe(100);
    expect(sd.transposed.data.buffer).not.toBe(sd.base.data.buffer);
    expect(sd.channels_last.memoryFormat).toBe('channelsLast');
    expect(sd.param).toBeInstanceOf(Parameter);
  });
});

describe('a model loaded from PyTorch reproduces PyTorch', () => {
  for (const file of ['model.pt', 'model.safetensors']) {
    test(`${file}: two training forwards, then eval, outputs and running statistics`, () => {
      const net = new Net(4);
      const r = net.loadStateDict(load(fixture(file)));
      expect(r).toEqual({ missingKeys: [], unexpectedKeys: [] });
      const x = model.x.map((v) => tensor(v, model.x_shape));
      const h = model.h.map((v) => tensor(Float64Array.from(v), model.h_shape, { dtype: 'float64' }));
      net.train();
      assertClose(net.forward(x[0]), model.train_y[0], TOLERANCE.float32, 'train step 1');
      assertClose(net.forward(x[1]), model.train_y[1], TOLERANCE.float32, 'train step 2');
      assertClose(net.head.forward(h[0]), model.train_head, TOLERANCE.float64, 'head train');
      net.eval();
      assertClose(net.forward(x[2]), model.eval_y, TOLERANCE.float32, 'eval');
      assertClose(net.head.forward(h[1]), model.eval_head, TOLERANCE.float64, 'head eval');
      const after = net.stateDict();
      for (const [k, d] of Object.entries(model.trained)) {
        if (d.dtype === 'int64') expect([k, String((after[k].data as BigInt64Array)[0])]).toEqual([k, d.values[0]]);
        else assertClose(after[k], d.values.map(Number), TOLERANCE[d.dtype as 'float32' | 'float64'], k);
      }
    });
  }
});

describe("MomentumBatchNorm checkpoints interchange with flame's (five keys, strict both ways)", () => {
  test("flame's MomentumBatchNorm2d checkpoint loads strictly, exactly", () => {
    const bn = new nn.MomentumBatchNorm2d(4, { totalIters: 10 });
    expect(bn.loadStateDict(load(fixture('momentum_flame.pt')))).toEqual({ missingKeys: [], unexpectedKeys: [] });
    const expected = json<Record<string, Described>>('momentum_flame.json');
    expect(Object.keys(bn.stateDict())).toEqual(Object.keys(expected));
    for (const [k, d] of Object.entries(expected)) expectExact(bn.stateDict()[k], d, `momentum ${k}`);
  });
});

describe('load refuses what it must not read, saying why', () => {
  test('the legacy (pre-1.6) format: how to re-save', () => {
    expect(() => load(fixture('legacy.pt'))).toThrow(/legacy \(pre-1\.6.*torch\.save\(torch\.load\('old\.pt'\), 'new\.pt'\)/);
  });

  test('a TorchScript archive', () => {
    expect(() => load(fixture('torchscript.pt'))).toThrow(/TorchScript archive.*state_dict/);
  });

  test('a pickle that calls os.system is refused before anything runs', () => {
    const marker = path.join(process.cwd(), 'syncbn-pwned');
    expect(() => load(fixture('malicious.pt'))).toThrow(/refusing to load the global 'posix\.system'|refusing to load the global 'os\.system'/);
    expect(fs.existsSync(marker)).toBe(false);
  });

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'syncbn-ckpt-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('a truncated torch.save file', () => {
    const bytes = fs.readFileSync(fixture('model.pt'));
    const cut = path.join(tmp, 'cut.pt');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length - 200));
    expect(() => load(cut)).toThrow(/cut\.pt/);
  });

  test('safetensors: a header past the end, holes and overlaps, an unknown dtype', () => {
    const good = fs.readFileSync(fixture('dtypes.safetensors'));
    const n = Number(good.readBigUInt64LE(0));
    const header = JSON.parse(good.toString('utf8', 8, 8 + n));
    const write = (name: string, h: unknown, data: Buffer): string => {
      const text = Buffer.from(JSON.stringify(h));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(text.length));
      const f = path.join(tmp, name);
      fs.writeFileSync(f, Buffer.concat([len, text, data]));
      return f;
    };
    const data = good.subarray(8 + n);
    expect(() => load(write('short.safetensors', header, data.subarray(0, data.length - 8)))).toThrow(/truncated|belong to no tensor|ends at byte/);
    expect(() => load(write('extra.safetensors', header, Buffer.concat([data, Buffer.alloc(8)])))).toThrow(/belong to no tensor/);
    const overlap = JSON.parse(JSON.stringify(header));
    overlap.f64.data_offsets = overlap.f32.data_offsets.map((v: number) => v);
    overlap.f64.shape = [3];
    expect(() => load(write('overlap.safetensors', overlap, data))).toThrow(/overlaps|belong to no tensor/);
    const u8 = JSON.parse(JSON.stringify(header));
    u8.f32.dtype = 'U8';
    expect(() => load(write('u8.safetensors', u8, data))).toThrow(/'f32' has dtype U8/);
  });

  test('corrupted files (2000 seeded byte flips): an Error or a load, never a crash, a hang or a huge allocation', () => {
    let seed = 12345;
    const next = (): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed;
    };
    const outcomes = { loaded: 0, refused: 0 };
    for (const name of ['model.pt', 'dtypes.safetensors', 'views.pt', 'zip64.pt']) {
      const good = fs.readFileSync(fixture(name));
      for (let i = 0; i < 500; i++) {
        const bad = Buffer.from(good);
        for (let k = 0, flips = 1 + (next() % 4); k < flips; k++) bad[next() % bad.length] = next() & 0xff;
        const f = path.join(tmp, `fuzz${path.extname(name)}`);
        fs.writeFileSync(f, bad);
        try {
          load(f);
          outcomes.loaded++;
        } catch (e) {
          // Errors come from Node's realm too (Buffer reads): checked by message, which must name the file.
          const message = String((e as { message?: unknown }).message);
          if (!message.startsWith(`${f}:`)) throw new Error(`an error that does not name the file: ${message}`);
          outcomes.refused++;
        }
      }
    }
    expect(outcomes.loaded + outcomes.refused).toBe(2000);
    expect(outcomes.refused).toBeGreaterThan(100);
  });

  test('a file of neither format', () => {
    const f = path.join(tmp, 'notes.txt');
    fs.writeFileSync(f, 'hello');
    expect(() => load(f)).toThrow(/neither a torch\.save zip archive nor a safetensors file/);
  });
});

function pythonTorch(): boolean {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' });
  return r.status === 0;
}

const describeTorch = requireOrSkip('torch', pythonTorch(), '/usr/bin/python3 cannot import torch (Debian: apt-get install python3-torch)');

interface ReadBack {
  tensors: { type?: string; items?: Record<string, Described>; metadata?: Record<string, unknown> };
  st_metadata?: Record<string, string> | null;
}

function readBack(files: string[]): Record<string, ReadBack> {
  const r = spawnSync('/usr/bin/python3', [path.join(__dirname, 'read_back.py'), ...files], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`read_back.py failed:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

function expectSame(t: Tensor, d: Described, label: string): void {
  const expected: Described = {
    dtype: t.dtype,
    shape: [...t.shape],
    values: t.dtype === 'int64' ? Array.from(t.contiguous().data as BigInt64Array, String) : Array.from(t.toArray()),
  };
  const values = d.dtype === 'int64' ? d.values : d.values.map(asStored(d.dtype));
  expect({ label, dtype: d.dtype, shape: d.shape, values }).toEqual({ label, ...expected });
}

describeTorch('save: PyTorch reads what syncbn writes, exactly', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'syncbn-save-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('a trained model, every dtype, a channels-last tensor: torch.load(weights_only=True) and the safetensors spec reader', () => {
    const net = new Net(4);
    net.loadStateDict(load(fixture('model.pt')));
    net.train().forward(tensor(model.x[0], model.x_shape));
    const sd = net.stateDict();
    const dtypes = load(fixture('dtypes.pt'));
    const cl = load(fixture('views.pt')).channels_last;
    const files = {
      model: path.join(tmp, 'model.pt'),
      modelSt: path.join(tmp, 'model.safetensors'),
      dtypes: path.join(tmp, 'dtypes.pt'),
      dtypesSt: path.join(tmp, 'dtypes.safetensors'),
      cl: path.join(tmp, 'cl.pt'),
      zip64: path.join(tmp, 'zip64.pt'),
    };
    save(sd, files.model);
    save(sd, files.modelSt, { metadata: { format: 'pt', writer: 'syncbn' } });
    save(dtypes, files.dtypes);
    save(dtypes, files.dtypesSt);
    save({ x: cl }, files.cl);
    saveTorchZip(sd, files.zip64, true);
    const back = readBack(Object.values(files));

    for (const f of [files.model, files.zip64]) {
      const b = back[f].tensors;
      expect(b.type).toBe('OrderedDict');
      expect(Object.keys(b.items!)).toEqual(Object.keys(sd));
      for (const [k, t] of Object.entries(sd)) expectSame(t, b.items![k], `${path.basename(f)} ${k}`);
      // net.stateDict()'s versions: 1 for containers, 2 for BatchNorm (as PyTorch's modules say).
      expect(b.metadata).toEqual(model.metadata);
    }
    const st = back[files.modelSt];
    expect(st.st_metadata).toEqual({ format: 'pt', writer: 'syncbn' });
    for (const [k, t] of Object.entries(sd)) expectSame(t, st.tensors.items![k], `model.safetensors ${k}`);
    for (const f of [files.dtypes, files.dtypesSt]) {
      const items = back[f].tensors.items!;
      expect(Object.keys(items)).toEqual(Object.keys(dtypes));
      for (const [k, t] of Object.entries(dtypes)) expectSame(t, items[k], `${path.basename(f)} ${k}`);
    }
    const c = back[files.cl].tensors.items!.x;
    expectSame(cl, c, 'channels-last');
    expect(c.stride).toEqual([12, 1, 6, 3]);
  });

  test("flame's MomentumBatchNorm2d loads syncbn's MomentumBatchNorm2d checkpoint strictly", () => {
    const bn = new nn.MomentumBatchNorm2d(4, { totalIters: 10 });
    for (let i = 0; i < 4; i++) bn.forward(tensor(model.x[i % 3], model.x_shape));
    const f = path.join(tmp, 'momentum.pt');
    save(bn.stateDict(), f);
    const code = `import json, sys; sys.path.insert(0, ${JSON.stringify(__dirname)}); ` +
      `from generate_checkpoints import load_into_flame; print(json.dumps(load_into_flame(${JSON.stringify(f)})))`;
    const r = spawnSync('/usr/bin/python3', ['-c', code], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const back = JSON.parse(r.stdout) as Record<string, Described>;
    const sd = bn.stateDict();
    expect(Object.keys(back)).toEqual(Object.keys(sd));
    for (const [k, t] of Object.entries(sd)) expectSame(t, back[k], `flame ${k}`);
  });

  test("README's round trip: PyTorch saves, syncbn loads (class-field model), trains, saves; PyTorch loads strictly", () => {
    class Block extends nn.Module {
      bn = new nn.BatchNorm2d(64);
      inner = new nn.Sequential(new nn.BatchNorm2d(64, { momentum: null }), new nn.BatchNorm2d(64, { affine: false }));
      forward(x: Tensor) { return this.inner.forward(this.bn.forward(x)); }
    }
    class ReadmeNet extends nn.Module {
      stem = new nn.BatchNorm2d(64, { eps: 1e-3 });
      block = new Block();
      forward(x: Tensor) { return this.block.forward(this.stem.forward(x)); }
    }
    const py = `import torch, torch.nn as nn
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(64)
        self.inner = nn.Sequential(nn.BatchNorm2d(64, momentum=None), nn.BatchNorm2d(64, affine=False))
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.BatchNorm2d(64, eps=1e-3)
        self.block = Block()
import sys
model = Net()
if sys.argv[1] == 'save':
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
    torch.save(model.state_dict(), sys.argv[2])
else:
    model.load_state_dict(torch.load(sys.argv[2], weights_only=True))
    print(int(model.block.bn.num_batches_tracked), float(model.block.bn.weight[0]))
`;
    const first = path.join(tmp, 'readme_model.pt');
    const trained = path.join(tmp, 'readme_trained.pt');
    expect(spawnSync('/usr/bin/python3', ['-c', py, 'save', first], { encoding: 'utf8' }).status).toBe(0);
    const net = new ReadmeNet();
    net.loadStateDict(load(first));
    net.train().forward(randn([8, 64, 4, 4]));
    net.block.bn.weight = new Parameter(net.block.bn.weight!.clone().fill_(0.5));
    save(net.stateDict(), trained);
    const r = spawnSync('/usr/bin/python3', ['-c', py, 'load', trained], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('1 0.5');
  });

  test('syncbn reads its own files back to the same tensors', () => {
    const dtypes = load(fixture('dtypes.pt'));
    for (const ext of ['pt', 'safetensors']) {
      const f = path.join(tmp, `again.${ext}`);
      save(dtypes, f);
      const again = load(f);
      for (const [k, t] of Object.entries(dtypes)) {
        expect([k, again[k].dtype, [...again[k].shape]]).toEqual([k, t.dtype, [...t.shape]]);
        expect([k, Array.from(again[k].contiguous().data as ArrayLike<unknown>)]).toEqual([k, Array.from(t.contiguous().data as ArrayLike<unknown>)]);
      }
    }
  });
});

describe('save refuses what it cannot write', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'syncbn-refuse-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  test('non-tensors in safetensors, functions anywhere', () => {
    expect(() => save({ a: 1 } as unknown as Record<string, Tensor>, path.join(tmp, 'a.safetensors'))).toThrow(/holds tensors only; 'a'/);
    expect(() => save({ f: () => 1 }, path.join(tmp, 'f.pt'))).toThrow(/cannot write 'f'/);
  });
  test('a disposed tensor', () => {
    const y = new nn.BatchNorm1d(2).forward(randn([1 << 14, 2]));
    y.dispose();
    expect(y.disposed).toBe(true);
    expect(() => save({ y }, path.join(tmp, 'y.pt'))).toThrow(/disposed/);
    expect(() => save({ y }, path.join(tmp, 'y.safetensors'))).toThrow(/'y' was disposed/);
  });
});
