// The element types of the kernels, one vocabulary from TypeScript's dtype
// strings ('float32', 'float64', 'float16', 'bfloat16') to the CPU and CUDA
// entry points. Both take all four; per-channel arrays (weight, bias,
// statistics) of a 16-bit input are float32, as in PyTorch's mixed precision.
#pragma once

#include <cstddef>
#include <cstdint>

namespace syncbn {

enum class DType : int { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3 };

// The spelling of TypeScript's DType (lib/tensor.ts).
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Float16: return "float16";
    case DType::BFloat16: return "bfloat16";
  }
  return "?";
}

inline size_t dtype_bytes(DType t) { return t == DType::Float64 ? 8 : t == DType::Float32 ? 4 : 2; }

// Weight, bias, statistics and running stats of a half input are float32,
// as in PyTorch; otherwise they have the input's dtype.
inline DType param_dtype(DType t) { return t == DType::Float64 ? DType::Float64 : DType::Float32; }

// The 16-bit floats as the CPU kernels store them: the bits, as JavaScript
// holds them in a Uint16Array (lib/half_float.ts). The kernels convert on
// load and store (cpu/half.h) and compute in float.
struct BFloat16 {
  uint16_t bits;
};
struct Float16 {
  uint16_t bits;
};

// The type an op over elements of type T computes in, which its per-channel
// arrays have (ATen's opmath_type): T for float and double, float for the
// 16-bit floats. void, the CUDA entry points' untyped arrays, stays void.
template <typename T>
struct OpMath {
  using type = T;
};
template <>
struct OpMath<BFloat16> {
  using type = float;
};
template <>
struct OpMath<Float16> {
  using type = float;
};
template <typename T>
using opmath_t = typename OpMath<T>::type;

}  // namespace syncbn
