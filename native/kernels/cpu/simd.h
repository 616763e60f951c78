// Machine vectors and stores for the CPU kernels, one source for the AVX2
// build and the baseline one (batch_norm_avx2.cpp, batch_norm_base.cpp).
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define SYNCBN_STORE_FENCE() _mm_sfence()
#else
#define SYNCBN_STORE_FENCE() ((void)0)
#endif

#include <cstdint>
#include <cstring>
#include <type_traits>

#ifndef SYNCBN_CPU_ISA
#error "define SYNCBN_CPU_ISA before including the CPU kernels (see batch_norm_impl.h)"
#endif

namespace syncbn {
namespace cpu {
namespace SYNCBN_CPU_ISA {
namespace detail {

constexpr int64_t kBlock = 256;           // values summed in T before going to double

// Machine vectors as GCC/Clang vector types, one source for both builds
// (32 bytes with AVX, 16 without); local vectors stay in registers, where
// arrays of lanes were spilled to the stack.
#if defined(__AVX__)
#define SYNCBN_VEC_BYTES 32
#else
#define SYNCBN_VEC_BYTES 16
#endif
template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(SYNCBN_VEC_BYTES)));
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(SYNCBN_VEC_BYTES)));
};
template <typename T>
using vec = typename Simd<T>::V;
template <typename T>
constexpr int64_t kWidth = static_cast<int64_t>(SYNCBN_VEC_BYTES / sizeof(T));

template <typename T>
inline vec<T> vload(const T* p) {
  vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <typename T>
inline double vsum(vec<T> v) {
  T s = 0;
  for (int64_t j = 0; j < kWidth<T>; ++j) s += v[j];
  return static_cast<double>(s);
}

// Values summed per lane in T before the lane goes to double.
constexpr int64_t kFlush = kBlock;

// Stores v at p: non-temporal when nt (float with AVX only; p 32-byte aligned).
template <typename T>
inline void store_vec(T* p, vec<T> v, bool nt) {
  (void)nt;
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, float>) {
    if (nt) {
      _mm256_stream_ps(p, reinterpret_cast<__m256>(v));
      return;
    }
  }
#endif
  std::memcpy(p, &v, sizeof v);
}

// 2W values at p, from two vectors (half.h narrows the pair at once).
template <typename T>
inline void store_vec2(T* p, vec<T> a, vec<T> b, bool nt) {
  store_vec(p, a, nt);
  store_vec(p + kWidth<T>, b, nt);
}

// One element as the kernels compute with it, and back; half.h has the same
// for the 16-bit floats, which compute in float.
inline float load(const float* p) { return *p; }
inline double load(const double* p) { return *p; }
inline void store(float* p, float v) { *p = v; }
inline void store(double* p, double v) { *p = v; }

// Whether streaming stores exist for elements of type S (AVX: float and the
// 16-bit floats).
template <typename S>
constexpr bool kStreams =
#if defined(__AVX__)
    !std::is_same_v<S, double>;
#else
    false;
#endif

}  // namespace detail
}  // namespace SYNCBN_CPU_ISA
}  // namespace cpu
}  // namespace syncbn
