// Passes over the contiguous (N, C, inner) layout: a channel is n runs of
// `inner` values, one per batch item. Statistics per chunk of runs with the
// blocked reduction engine (reduce_runs), normalization and grad input run
// by run, and the training forward's pipeline that writes one channel while
// it sums the next.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "../batch_norm.h"
#include "cache.h"
#include "per_channel.h"
#include "plan.h"
#include "simd.h"
#include "threading.h"

#ifndef SYNCBN_CPU_ISA
#error "define SYNCBN_CPU_ISA before including the CPU kernels (see batch_norm_impl.h)"
#endif

namespace syncbn {
namespace cpu {
namespace SYNCBN_CPU_ISA {
namespace detail {

// ---- runs: the reduction engine and the element-wise run kernels -------------

// Sums K quantities over runs n0..n1 of `len` values each, four vectors
// at a time into independent accumulators (adds are not serialized on one
// register's latency), carried across runs (a 14x14 plane is 196 values:
// no horizontal sum per run) and flushed to double once a lane may hold
// kFlush values. Op: at(n) selects run n; add(acc, i) adds the vector at i;
// one(acc, i) adds the scalar at i.
template <typename T, int K, typename Op>
void reduce_runs(int64_t n0, int64_t n1, int64_t len, Op op, double (&total)[K]) {
  constexpr int64_t W = kWidth<T>;
  vec<T> a0[K], a1[K], a2[K], a3[K];
  T tail[K];
  auto clear = [&] {
    for (int k = 0; k < K; ++k) {
      a0[k] = a1[k] = a2[k] = a3[k] = vec<T>{};
      tail[k] = T(0);
    }
  };
  auto flush = [&] {
    for (int k = 0; k < K; ++k) total[k] += vsum<T>((a0[k] + a1[k]) + (a2[k] + a3[k])) + static_cast<double>(tail[k]);
    clear();
  };
  for (int k = 0; k < K; ++k) total[k] = 0;
  clear();
  int64_t filled = 0;  // the most values any lane holds since the last flush
  for (int64_t n = n0; n < n1; ++n) {
    op.at(n);
    int64_t i = 0;
    for (; i + 4 * W <= len; i += 4 * W) {
      if (filled >= kFlush) {
        flush();
        filled = 0;
      }
      op.add(a0, i);
      op.add(a1, i + W);
      op.add(a2, i + 2 * W);
      op.add(a3, i + 3 * W);
      ++filled;
    }
    // The rest of the run: up to 3 more vectors into a0, W - 1 scalars.
    if (filled + W > kFlush) {
      flush();
      filled = 0;
    }
    for (; i + W <= len; i += W) op.add(a0, i);
    for (; i < len; ++i) op.one(tail, i);
    filled += W - 1;
  }
  flush();
}

template <typename T>
struct SumOp {
  const T* base;  // run n at base + n * stride
  int64_t stride, len, n_end;
  const T* p = nullptr;
  // The first pass over a channel reads its runs from memory.
  void at(int64_t n) {
    p = base + n * stride;
    if (n + 2 < n_end) prefetch_run(p + 2 * stride, len);
  }
  void add(vec<T>* acc, int64_t i) const { acc[0] += vload(p + i); }
  void one(T* acc, int64_t i) const { acc[0] += p[i]; }
};

template <typename T>
struct DevOp {
  const T* base;
  int64_t stride;
  T m;
  int64_t len = 0, n_end = 0;  // runs before n_end prefetch len values two runs ahead
  const T* p = nullptr;
  void at(int64_t n) {
    p = base + n * stride;
    if (n + 2 < n_end) prefetch_run(p + 2 * stride, len);
  }
  void add(vec<T>* acc, int64_t i) const {
    const vec<T> d = vload(p + i) - m;
    acc[0] += d;
    acc[1] += d * d;
  }
  void one(T* acc, int64_t i) const {
    const T d = p[i] - m;
    acc[0] += d;
    acc[1] += d * d;
  }
};

template <typename T>
struct GradOp {
  const T* gbase;
  const T* xbase;
  int64_t stride;
  T m;
  int64_t len = 0, n_end = 0;  // runs before n_end are prefetched two ahead
  const T* g = nullptr;
  const T* x = nullptr;
  void at(int64_t n) {
    g = gbase + n * stride;
    x = xbase + n * stride;
    if (n + 2 < n_end) {
      prefetch_run(g + 2 * stride, len);
      prefetch_run(x + 2 * stride, len);
    }
  }
  void add(vec<T>* acc, int64_t i) const {
    const vec<T> gv = vload(g + i);
    acc[0] += gv;
    acc[1] += gv * (vload(x + i) - m);
  }
  void one(T* acc, int64_t i) const {
    acc[0] += g[i];
    acc[1] += g[i] * (x[i] - m);
  }
};

// y = (x - m) * a + b over a run; non-temporal when `stream` (float only).
template <typename T>
void run_affine(const T* x, T* y, int64_t len, T m, T a, T b, bool stream) {
  (void)stream;  // used only where AVX streaming stores exist
  int64_t i = 0;
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, float>) {
    if (stream && len >= kStreamRun) {
      for (; i < len && (reinterpret_cast<uintptr_t>(y + i) & 63); ++i) y[i] = (x[i] - m) * a + b;
      const __m256 vm = _mm256_set1_ps(m), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
      for (; i + 16 <= len; i += 16) {
        const __m256 v0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        const __m256 v1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vm);
        _mm256_stream_ps(y + i, _mm256_add_ps(_mm256_mul_ps(v0, va), vb));
        _mm256_stream_ps(y + i + 8, _mm256_add_ps(_mm256_mul_ps(v1, va), vb));
      }
    }
  }
#endif
#pragma omp simd
  for (int64_t k = i; k < len; ++k) y[k] = (x[k] - m) * a + b;
}

// dx = (dy - md - (x - m) * k) * a over a run.
template <typename T>
void run_grad_input(const T* g, const T* x, T* dx, int64_t len, T m, T md, T k, T a, bool stream) {
  (void)stream;  // used only where AVX streaming stores exist
  int64_t i = 0;
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, float>) {
    if (stream && len >= kStreamRun) {
      for (; i < len && (reinterpret_cast<uintptr_t>(dx + i) & 63); ++i) dx[i] = (g[i] - md - (x[i] - m) * k) * a;
      const __m256 vm = _mm256_set1_ps(m), vmd = _mm256_set1_ps(md), vk = _mm256_set1_ps(k), va = _mm256_set1_ps(a);
      for (; i + 16 <= len; i += 16) {
        for (int64_t h = 0; h < 16; h += 8) {
          const __m256 xm = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + h), vm), vk);
          const __m256 r = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(g + i + h), vmd), xm);
          _mm256_stream_ps(dx + i + h, _mm256_mul_ps(r, va));
        }
      }
    }
  }
#endif
#pragma omp simd
  for (int64_t j = i; j < len; ++j) dx[j] = (g[j] - md - (x[j] - m) * k) * a;
}

// ---- statistics, normalization and grad input per channel --------------------

struct Chunk {
  int64_t c, n0, n1, i0, i1;
};

// One channel's values cut into chunks of about kChunk, each a set of whole
// runs or a piece of one long run.
inline void channel_chunks(const BatchShape& s, int64_t c, std::vector<Chunk>& out) {
  if (s.inner >= kChunk) {
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t i = 0; i < s.inner; i += kChunk) out.push_back({c, n, n + 1, i, std::min(s.inner, i + kChunk)});
  } else {
    const int64_t per = std::max<int64_t>(1, kChunk / std::max<int64_t>(1, s.inner));
    for (int64_t n = 0; n < s.n; n += per) out.push_back({c, n, std::min(s.n, n + per), 0, s.inner});
  }
}

template <typename T>
Moments chunk_moments(const T* x, const BatchShape& s, const Chunk& k) {
  Moments r{};
  const int64_t len = k.i1 - k.i0;
  r.n = static_cast<double>((k.n1 - k.n0) * len);
  if (r.n == 0) return r;
  const T* base = x + k.c * s.inner + k.i0;
  const int64_t stride = s.c * s.inner;
  double sum[1];
  reduce_runs<T, 1>(k.n0, k.n1, len, SumOp<T>{base, stride, len, k.n1}, sum);
  const T m = static_cast<T>(sum[0] / r.n);
  double dev[2];
  reduce_runs<T, 2>(k.n0, k.n1, len, DevOp<T>{base, stride, m}, dev);
  const double s1 = dev[0], s2 = dev[1];
  r.mean = static_cast<double>(m) + s1 / r.n;
  r.m2 = non_negative(s2 - s1 * s1 / r.n);
  return r;
}

template <typename T>
Moments channel_moments(const T* x, const BatchShape& s, int64_t c) {
  std::vector<Chunk> chunks;
  channel_chunks(s, c, chunks);
  Moments m{};
  for (const Chunk& k : chunks) merge(m, chunk_moments(x, s, k));
  return m;
}

// Moments of every channel. Parallel over channels when the plan has
// enough of them, else over chunks (merged per channel in chunk order either
// way).
template <typename T>
void planar_moments(const T* x, const BatchShape& s, const Plan& p, std::vector<Moments>& out) {
  out.assign(s.c, Moments{});
  const int nt = p.nt;
  if (p.per_channel) {
    parallel_region(nt, [&] {
#pragma omp for schedule(static)
      for (int64_t c = 0; c < s.c; ++c) out[c] = channel_moments(x, s, c);
    });
    return;
  }
  std::vector<Chunk> chunks;
  for (int64_t c = 0; c < s.c; ++c) channel_chunks(s, c, chunks);
  std::vector<Moments> part(chunks.size());
  parallel_region(nt, [&] {
#pragma omp for schedule(static)
    for (size_t k = 0; k < chunks.size(); ++k) part[k] = chunk_moments(x, s, chunks[k]);
  });
  for (size_t k = 0; k < chunks.size(); ++k) merge(out[chunks[k].c], part[k]);
}

template <typename T>
void planar_affine_channel(const T* x, T* y, const BatchShape& s, int64_t c, const Affine<T>& f, bool stream) {
  for (int64_t n = 0; n < s.n; ++n) {
    const int64_t off = (n * s.c + c) * s.inner;
    run_affine(x + off, y + off, s.inner, f.shift[c], f.scale[c], f.offset[c], stream);
  }
}

template <typename T>
void planar_grad_sums(const T* dy, const T* x, const BatchShape& s, int64_t c, T mean, double& sg, double& sgx) {
  double t[2];
  // Short runs are prefetched two ahead (64x256x14x14's backward 1.05-1.28x);
  // long ones, which the hardware prefetcher follows, are not (8x32x16^3's
  // 16 KiB runs lost 6-9% with their first KiB prefetched).
  const bool short_runs = s.inner * static_cast<int64_t>(sizeof(T)) <= kPrefetchBytes;
  reduce_runs<T, 2>(0, s.n, s.inner,
                    GradOp<T>{dy + c * s.inner, x + c * s.inner, s.c * s.inner, mean, s.inner, short_runs ? s.n : 0}, t);
  sg += t[0];
  sgx += t[1];
}

template <typename T>
void planar_grad_input_channel(const T* dy, const T* x, T* dx, const BatchShape& s, int64_t c, const GradCoef<T>& g, bool stream) {
  for (int64_t n = 0; n < s.n; ++n) {
    const int64_t off = (n * s.c + c) * s.inner;
    run_grad_input(dy + off, x + off, dx + off, s.inner, g.mean[c], g.mean_dy[c], g.proj[c], g.scale[c], stream);
  }
}

// ---- planar channels, pipelined ---------------------------------------------
//
// A thread that normalizes channel c from its cache would otherwise wait on
// its output stores (to memory when streamed) and then, with no stores in
// flight, on the first read of channel c + 1 from L3 or memory: the two
// phases took turns. Writing c's runs and summing c + 1's at the same
// offsets in one loop keeps both going at once (bench/NOTES.md 23). The
// sums of c + 1 are one pass over it, about a shift K (its mean is not
// known yet), checked as rows_moments_range checks its shift. The backward
// in the same shape (grad input of c, grad sums of c + 1) gained nothing
// and is not done so.


// y = (x - m) * a + b over channel c's runs.
template <typename T>
struct AffineRuns {
  const T* base;  // run n at base + n * stride
  int64_t stride;
  T m, a, b;
  const T* p = nullptr;
  void at(int64_t n) { p = base + n * stride; }
  vec<T> vec_at(int64_t i) const { return (vload(p + i) - m) * a + b; }
  T one(int64_t i) const { return (p[i] - m) * a + b; }
};

// Writes channel c's runs of out (run n at out + (n * C + c) * inner) from
// `write` and, in the same loop, sums the two quantities of `sum` (a DevOp
// over another channel's runs, which its at() prefetches) into total, with
// reduce_runs' blocking: float lanes flushed to double before any holds
// kFlush values. Streams as run_affine does.
template <typename T, typename Write, typename Sum>
void write_runs_summing(const BatchShape& s, int64_t c, T* out, bool stream, Write write, Sum sum,
                        double (&total)[2]) {
  constexpr int64_t W = kWidth<T>;
  const int64_t len = s.inner;
  const bool nt = stream && std::is_same_v<T, float> && len >= kStreamRun;
  vec<T> a0[2] = {}, a1[2] = {};
  T tail[2] = {T(0), T(0)};
  int64_t filled = 0, scalars = 0;  // the most values in a vector lane; in tail
  total[0] = total[1] = 0;
  const auto flush = [&] {
    for (int k = 0; k < 2; ++k) {
      total[k] += vsum<T>(a0[k] + a1[k]) + static_cast<double>(tail[k]);
      a0[k] = a1[k] = vec<T>{};
      tail[k] = T(0);
    }
    filled = scalars = 0;
  };
  const auto one = [&](T* o, int64_t i) {
    o[i] = write.one(i);
    sum.one(tail, i);
  };
  for (int64_t n = 0; n < s.n; ++n) {
    write.at(n);
    sum.at(n);
    // At most 64 bytes of scalars before the vectors and 2W - 1 after.
    if (scalars + 64 / static_cast<int64_t>(sizeof(T)) + 2 * W > kFlush) flush();
    T* o = out + (n * s.c + c) * len;
    int64_t i = 0;
    if (nt)
      for (; i < len && (reinterpret_cast<uintptr_t>(o + i) & 63); ++i, ++scalars) one(o, i);
    for (; i + 2 * W <= len; i += 2 * W) {
      if (filled >= kFlush) flush();
      store_vec(o + i, write.vec_at(i), nt);
      store_vec(o + i + W, write.vec_at(i + W), nt);
      sum.add(a0, i);
      sum.add(a1, i + W);
      ++filled;
    }
    for (; i < len; ++i, ++scalars) one(o, i);
  }
  flush();
}

// A shift for channel c's one-pass sums: the mean of up to 16 values at
// the start of each of up to 16 runs spread over the batch.
template <typename T>
T channel_shift(const T* x, const BatchShape& s, int64_t c) {
  const int64_t k = std::min<int64_t>(s.n, 16), len = std::min<int64_t>(s.inner, 16);
  T acc = T(0);
  for (int64_t j = 0; j < k; ++j) {
    const T* p = x + ((j * s.n / k) * s.c + c) * s.inner;
    for (int64_t i = 0; i < len; ++i) acc += p[i];
  }
  return acc / static_cast<T>(k * len);
}

// y of channel c, and the moments of channel `next` from one pass of sums
// about a shift; where the shift would cost precision (as in
// rows_moments_range), next's moments come from channel_moments instead.
template <typename T>
Moments planar_affine_then_moments(const T* x, T* y, const BatchShape& s, int64_t c, const Affine<T>& f,
                                   bool stream, int64_t next) {
  const T K = channel_shift(x, s, next);
  const int64_t stride = s.c * s.inner;
  // A short run is prefetched whole (64x256x14x14's 784-byte runs ran 1.5x
  // slower without); a long run only at its start, before the hardware
  // prefetcher catches on (prefetching whole 12-16 KiB runs ran 1.13-1.16x
  // slower than none).
  const int64_t ahead = std::min<int64_t>(s.inner, kPrefetchBytes / static_cast<int64_t>(sizeof(T)));
  double t[2];
  write_runs_summing(s, c, y, stream, AffineRuns<T>{x + c * s.inner, stride, f.shift[c], f.scale[c], f.offset[c]},
                     DevOp<T>{x + next * s.inner, stride, K, ahead, s.n}, t);
  const double n = static_cast<double>(s.count()), m2 = t[1] - t[0] * t[0] / n;
  if (4.0 * m2 < t[1]) return channel_moments(x, s, next);
  return Moments{n, static_cast<double>(K) + t[0] / n, non_negative(m2)};
}

}  // namespace detail
}  // namespace SYNCBN_CPU_ISA
}  // namespace cpu
}  // namespace syncbn
