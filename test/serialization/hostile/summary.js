// A JSON description of a loaded checkpoint, or of the value a corpus file
// was built to hold (generate.js), so that the two can be compared: sharing
// and cycles as ids and refs, dict prototypes and order, tensors by dtype,
// shape, sum and first values, long strings and integers by length and ends.
'use strict';

/** What generate.js writes for a tensor it expects `load` to return. */
class ExpectedTensor {
  /** `values`: the row-major elements (numbers, or BigInts for int64). */
  constructor(dtype, shape, values, parameter = false) {
    this.dtype = dtype;
    this.shape = shape;
    this.values = values;
    this.parameter = parameter;
  }
}

function isTensor(v) {
  return v instanceof ExpectedTensor || (v !== null && typeof v === 'object' && typeof v.toArray === 'function' && 'dtype' in v && 'shape' in v);
}

function tensorSummary(t) {
  let values;
  if (t instanceof ExpectedTensor) values = t.values;
  // The tensor's own storage where it can be read as is (no copy of a large tensor); half floats decoded.
  else values = ['int64', 'float32', 'float64'].includes(t.dtype) ? t.contiguous().data : t.toArray();
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += Number(values[i]);
  return {
    tensor: t.dtype,
    shape: [...t.shape],
    sum,
    head: Array.from(values.slice(0, 4), (v) => (typeof v === 'bigint' ? `${v}n` : v)),
    parameter: t instanceof ExpectedTensor ? t.parameter : t.constructor.name === 'Parameter',
  };
}

function primitive(v) {
  if (typeof v === 'bigint') {
    const hex = (v < 0n ? -v : v).toString(16);
    return hex.length <= 32 ? { bigint: v.toString() } : { bigint: { negative: v < 0n, hexDigits: hex.length, low: hex.slice(-32), high: hex.slice(0, 32) } };
  }
  if (typeof v === 'string' && v.length > 64) return { string: v.length, head: v.slice(0, 32) };
  if (typeof v === 'number' && !Number.isFinite(v)) return { number: String(v) };
  return v;
}

/** The description of `value`; shared objects get an id where first met and a ref after. */
function summarize(value) {
  const seen = new Map();
  const count = (v) => {
    if (v === null || typeof v !== 'object') return;
    seen.set(v, (seen.get(v) || 0) + 1);
    if (seen.get(v) > 1 || isTensor(v)) return;
    if (Array.isArray(v)) v.forEach(count);
    else if (!(v instanceof Uint8Array)) {
      for (const k of Object.keys(v)) count(v[k]);
      const meta = Object.getOwnPropertyDescriptor(v, '_metadata');
      if (meta) count(meta.value);
    }
  };
  count(value);
  const ids = new Map();
  const describe = (v) => {
    if (v === null || typeof v !== 'object') return primitive(v);
    if (ids.has(v)) return { ref: ids.get(v) };
    const shared = seen.get(v) > 1;
    if (shared) ids.set(v, ids.size);
    let out;
    if (isTensor(v)) out = tensorSummary(v);
    else if (v instanceof Uint8Array) out = { bytes: v.length };
    else if (Array.isArray(v)) out = { list: v.map(describe) };
    else {
      const proto = Object.getPrototypeOf(v);
      out = { dict: Object.keys(v).map((k) => [k, describe(v[k])]), proto: proto === null ? 'null' : proto === Object.prototype ? 'Object' : 'other' };
      const meta = Object.getOwnPropertyDescriptor(v, '_metadata');
      if (meta) out.metadata = describe(meta.value);
    }
    return shared ? { id: ids.get(v), ...out } : out;
  };
  return describe(value);
}

/** A plain object without a prototype, as `load` returns dicts: `entries` in order. */
function dict(entries, metadata) {
  const out = Object.create(null);
  for (const [k, v] of entries) out[k] = v;
  if (metadata !== undefined) Object.defineProperty(out, '_metadata', { value: metadata, enumerable: false });
  return out;
}

module.exports = { ExpectedTensor, summarize, dict };
