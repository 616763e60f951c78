// The element types of the kernels, one vocabulary from TypeScript's dtype
// strings ('float32', 'float64', 'float16', 'bfloat16') to the CPU and CUDA
// entry points. The CPU kernels take float32 and float64; CUDA all four.
#pragma once

#include <cstddef>

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

}  // namespace syncbn
