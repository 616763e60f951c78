// The element types, memory formats, devices and host storage of tensors:
// the vocabulary every layer shares, apart from Tensor itself.

/**
 * Element types. `int64` exists for counters such as `num_batches_tracked`;
 * `float16` and `bfloat16` are held on the host as Uint16Array bits and
 * computed in float32, on the CPU and on CUDA.
 */
export type DType = 'float32' | 'float64' | 'int64' | 'float16' | 'bfloat16';
/** The dtypes whose host storage is a Float32Array or Float64Array. */
export type FloatDType = 'float32' | 'float64';
/** The floating dtypes: what batch norm and its layers take. */
export type FloatingDType = Exclude<DType, 'int64'>;
export type MemoryFormat = 'contiguous' | 'channelsLast';
/** 'cpu' or 'cuda:N' ('cuda' alone means the current CUDA device when given as an option). */
export type Device = 'cpu' | `cuda:${number}`;
export type Storage = Float32Array | Float64Array | BigInt64Array | Uint16Array;
export type FloatStorage = Float32Array | Float64Array;
