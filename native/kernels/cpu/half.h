// The 16-bit floats (BFloat16, Float16; dtype.h) to and from float, one
// value or one machine vector at a time. The kernels load them into float,
// compute in float, and store them rounded to nearest even, as PyTorch's
// c10::BFloat16 and c10::Half do (NaN stays NaN: bfloat16 0x7fc0, float16 a
// quiet NaN of its sign).
//
// Loops that convert take W values at a time (over_channels, below; the
// ends of runs and rows one at a time). The vector forms use F16C
// (vcvtph2ps, vcvtps2ph) and AVX2 shifts and packs in the AVX2 build, and
// elsewhere the scalar forms' branch-free integer and float arithmetic on
// whole vectors: bfloat16 is the top half of a float, so a load is a
// widening shift.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../dtype.h"
#include "simd.h"

#ifndef SYNCBN_CPU_ISA
#error "define SYNCBN_CPU_ISA before including the CPU kernels (see batch_norm_impl.h)"
#endif

namespace syncbn {
namespace cpu {
namespace SYNCBN_CPU_ISA {
namespace detail {

template <typename To, typename From>
inline To bit_cast(const From& v) {
  static_assert(sizeof(To) == sizeof(From), "bit_cast between types of one size");
  To t;
  std::memcpy(&t, &v, sizeof t);
  return t;
}

// a where the mask is all ones, b where it is 0: for a scalar (mask 0 - c)
// and, by the same expression, for a vector of masks.
template <typename U>
inline U blend(U mask, U a, U b) {
  return (a & mask) | (b & ~mask);
}

// ---- scalar --------------------------------------------------------------------

inline float to_float(BFloat16 h) { return bit_cast<float>(static_cast<uint32_t>(h.bits) << 16); }

inline BFloat16 to_bfloat16(float v) {
  const uint32_t u = bit_cast<uint32_t>(v);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return BFloat16{static_cast<uint16_t>(v != v ? 0x7fc0u : rounded)};
}

// float16 (1, 5, 10 bits) to float: the exponent rebiased by 112; infinity
// and NaN rebiased to 255; subnormals by a float subtraction that normalizes
// them. Exact for every one of the 65,536 patterns (checked against F16C).
inline float to_float(Float16 h) {
  const uint32_t x = h.bits;
  const uint32_t o = (x & 0x7fffu) << 13;
  const uint32_t e = o & 0x0f800000u;
  const uint32_t normal = o + 0x38000000u;
  const uint32_t special = normal + 0x38000000u;
  const uint32_t sub = bit_cast<uint32_t>(bit_cast<float>(normal + 0x00800000u) - bit_cast<float>(0x38800000u));
  const uint32_t r = blend(0u - static_cast<uint32_t>(e == 0x0f800000u), special,
                           blend(0u - static_cast<uint32_t>(e == 0u), sub, normal));
  return bit_cast<float>(r | ((x & 0x8000u) << 16));
}

// float to float16, rounded to nearest even: overflow to infinity, NaN to a
// quiet NaN, subnormals by a float addition that rounds them, the rest by an
// integer add of the rounding bias.
inline Float16 to_float16(float v) {
  const uint32_t u = bit_cast<uint32_t>(v);
  const uint32_t sign = u & 0x80000000u;
  const uint32_t f = u ^ sign;
  const uint32_t big = blend(0u - static_cast<uint32_t>(f > 0x7f800000u), 0x7e00u, 0x7c00u);
  const uint32_t sub = bit_cast<uint32_t>(bit_cast<float>(f) + bit_cast<float>(0x3f000000u)) - 0x3f000000u;
  const uint32_t normal = (f + 0xc8000fffu + ((f >> 13) & 1u)) >> 13;
  const uint32_t r = blend(0u - static_cast<uint32_t>(f >= 0x47800000u), big,
                           blend(0u - static_cast<uint32_t>(f < 0x38800000u), sub, normal));
  return Float16{static_cast<uint16_t>(r | (sign >> 16))};
}

// ---- vectors -------------------------------------------------------------------

// W 16-bit patterns, and the same lanes widened to 32 bits.
typedef uint16_t HalfLanes __attribute__((vector_size(SYNCBN_VEC_BYTES / 2)));
typedef uint32_t WordLanes __attribute__((vector_size(SYNCBN_VEC_BYTES)));
typedef int32_t MaskLanes __attribute__((vector_size(SYNCBN_VEC_BYTES)));

inline HalfLanes load_lanes(const void* p) {
  HalfLanes h;
  std::memcpy(&h, p, sizeof h);
  return h;
}

inline WordLanes mask(MaskLanes m) { return bit_cast<WordLanes>(m); }

inline vec<float> widen(BFloat16 const* p) {
#if defined(__AVX2__)
  // One vpmovzxwd from memory; GCC made five instructions of the generic form.
  __m128i h;
  std::memcpy(&h, p, sizeof h);
  return bit_cast<vec<float>>(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
#else
  return bit_cast<vec<float>>(__builtin_convertvector(load_lanes(p), WordLanes) << 16);
#endif
}

inline vec<float> widen(Float16 const* p) {
#if defined(__F16C__) && defined(__AVX__)
  __m128i h;
  std::memcpy(&h, p, sizeof h);
  return bit_cast<vec<float>>(_mm256_cvtph_ps(h));
#else
  const WordLanes x = __builtin_convertvector(load_lanes(p), WordLanes);
  const WordLanes o = (x & 0x7fffu) << 13;
  const WordLanes e = o & 0x0f800000u;
  const WordLanes normal = o + 0x38000000u;
  const WordLanes special = normal + 0x38000000u;
  const WordLanes sub = bit_cast<WordLanes>(bit_cast<vec<float>>(normal + 0x00800000u) - bit_cast<float>(0x38800000u));
  const WordLanes r = blend(mask(e == 0x0f800000u), special, blend(mask(e == 0u), sub, normal));
  return bit_cast<vec<float>>(r | ((x & 0x8000u) << 16));
#endif
}

#if defined(__AVX2__)
// bfloat16's rounding (narrow) of a vector, left in the low halves of its
// words: seven instructions (GCC's code for the generic form took ten).
inline __m256i rounded_words(vec<float> v) {
  const __m256i u = bit_cast<__m256i>(v);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
  return _mm256_blendv_epi8(r, _mm256_set1_epi32(0x7fc0), bit_cast<__m256i>(_mm256_cmp_ps(bit_cast<__m256>(v), bit_cast<__m256>(v), _CMP_UNORD_Q)));
}
#endif

inline HalfLanes narrow(vec<float> v, BFloat16) {
#if defined(__AVX2__)
  const __m256i r = rounded_words(v);
  return bit_cast<HalfLanes>(_mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)));
#else
  const WordLanes u = bit_cast<WordLanes>(v);
  const WordLanes rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return __builtin_convertvector(blend(mask(v != v), WordLanes{} + 0x7fc0u, rounded), HalfLanes);
#endif
}

inline HalfLanes narrow(vec<float> v, Float16) {
#if defined(__F16C__) && defined(__AVX__)
  return bit_cast<HalfLanes>(_mm256_cvtps_ph(bit_cast<__m256>(v), _MM_FROUND_TO_NEAREST_INT));
#else
  const WordLanes u = bit_cast<WordLanes>(v);
  const WordLanes sign = u & 0x80000000u;
  const WordLanes f = u ^ sign;
  const WordLanes big = blend(mask(f > 0x7f800000u), WordLanes{} + 0x7e00u, WordLanes{} + 0x7c00u);
  const WordLanes sub = bit_cast<WordLanes>(bit_cast<vec<float>>(f) + bit_cast<float>(0x3f000000u)) - 0x3f000000u;
  const WordLanes normal = (f + 0xc8000fffu + ((f >> 13) & 1u)) >> 13;
  const WordLanes r = blend(mask(f >= 0x47800000u), big, blend(mask(f < 0x38800000u), sub, normal));
  return __builtin_convertvector(r | (sign >> 16), HalfLanes);
#endif
}

// ---- the kernels' loads and stores (simd.h has float's and double's) -------------

inline float load(const BFloat16* p) { return to_float(*p); }
inline void store(BFloat16* p, float v) { *p = to_bfloat16(v); }
#if defined(__F16C__)
// One instruction each where the build has F16C (scalars: the ends of runs).
inline float load(const Float16* p) { return _cvtsh_ss(p->bits); }
inline void store(Float16* p, float v) { p->bits = static_cast<uint16_t>(_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT)); }
#else
inline float load(const Float16* p) { return to_float(*p); }
inline void store(Float16* p, float v) { *p = to_float16(v); }
#endif

inline vec<float> vload(const BFloat16* p) { return widen(p); }
inline vec<float> vload(const Float16* p) { return widen(p); }

// W values at p, rounded; non-temporal when nt (AVX only; p 16-byte aligned).
template <typename S>
inline void store_half_vec(S* p, vec<float> v, bool nt) {
  const HalfLanes h = narrow(v, S{});
  (void)nt;
#if defined(__AVX__)
  if (nt) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(p), bit_cast<__m128i>(h));
    return;
  }
#endif
  std::memcpy(p, &h, sizeof h);
}
inline void store_vec(BFloat16* p, vec<float> v, bool nt) { store_half_vec(p, v, nt); }
inline void store_vec(Float16* p, vec<float> v, bool nt) { store_half_vec(p, v, nt); }

#if defined(__AVX2__)
// 2W values at p from two vectors: one pack and one permute for both
// (two cross-lane shuffles for 16 values rather than four), one 32-byte
// store (non-temporal when nt; p then 32-byte aligned).
template <typename S>
inline void store_half_vec2(S* p, vec<float> a, vec<float> b, bool nt) {
  __m256i h;
  if constexpr (std::is_same_v<S, BFloat16>) {
    h = _mm256_permute4x64_epi64(_mm256_packus_epi32(rounded_words(a), rounded_words(b)), 0xd8);
  } else {
    h = _mm256_set_m128i(bit_cast<__m128i>(narrow(b, S{})), bit_cast<__m128i>(narrow(a, S{})));
  }
  if (nt) _mm256_stream_si256(reinterpret_cast<__m256i*>(p), h);
  else _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), h);
}
inline void store_vec2(BFloat16* p, vec<float> a, vec<float> b, bool nt) { store_half_vec2(p, a, b, nt); }
inline void store_vec2(Float16* p, vec<float> a, vec<float> b, bool nt) { store_half_vec2(p, a, b, nt); }
#else
inline void store_vec2(BFloat16* p, vec<float> a, vec<float> b, bool nt) {
  store_vec(p, a, nt);
  store_vec(p + kWidth<float>, b, nt);
}
inline void store_vec2(Float16* p, vec<float> a, vec<float> b, bool nt) {
  store_vec(p, a, nt);
  store_vec(p + kWidth<float>, b, nt);
}
#endif

// ---- loops over channels ---------------------------------------------------------

template <typename S>
constexpr bool kHalf = std::is_same_v<S, BFloat16> || std::is_same_v<S, Float16>;

// A loop body's view of its elements: one value (One) or W of them (Lanes),
// read with get() and written with put(), whatever their type.
struct One {};
struct Lanes {};
template <typename S>
inline auto get(One, const S* p) { return load(p); }
template <typename S>
inline auto get(Lanes, const S* p) { return vload(p); }
template <typename S, typename V>
inline void put(One, S* p, V v) { store(p, v); }
template <typename S, typename V>
inline void put(Lanes, S* p, V v) { store_vec(p, v, false); }

// body(c, One{}) for c in [c0, c1), as an `omp simd` loop, which GCC
// vectorizes for float, double and bfloat16 loads; where S, the element type
// the body converts, is a 16-bit float, body(c, Lanes{}) W channels at a
// time instead (and One for the rest): the vector conversions above, which
// the omp simd loops' scalar ones were several times slower than (float16's
// and every store's).
template <typename S, typename Body>
inline void over_channels(int64_t c0, int64_t c1, Body body) {
  if constexpr (kHalf<S>) {
    constexpr int64_t W = kWidth<float>;
    int64_t c = c0;
    for (; c + W <= c1; c += W) body(c, Lanes{});
    for (; c < c1; ++c) body(c, One{});
  } else {
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c) body(c, One{});
  }
}

}  // namespace detail
}  // namespace SYNCBN_CPU_ISA
}  // namespace cpu
}  // namespace syncbn
