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
#include "half.h"
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

// The reduction ops read runs of elements of type S and sum in T = opmath_t<S>.
template <typename S>
struct SumOp {
  using T = opmath_t<S>;
  const S* base;  // run n at base + n * stride
  int64_t stride, len, n_end;
  const S* p = nullptr;
  // The first pass over a channel reads its runs from memory.
  void at(int64_t n) {
    p = base + n * stride;
    if (n + 2 < n_end) prefetch_run(p + 2 * stride, len);
  }
  void add(vec<T>* acc, int64_t i) const { acc[0] += vload(p + i); }
  void one(T* acc, int64_t i) const { acc[0] += load(p + i); }
};

template <typename S>
struct DevOp {
  using T = opmath_t<S>;
  const S* base;
  int64_t stride;
  T m;
  int64_t len = 0, n_end = 0;  // runs before n_end prefetch len values two runs ahead
  const S* p = nullptr;
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
    const T d = load(p + i) - m;
    acc[0] += d;
    acc[1] += d * d;
  }
};

template <typename S>
struct GradOp {
  using T = opmath_t<S>;
  const S* gbase;
  const S* xbase;
  int64_t stride;
  T m;
  int64_t len = 0, n_end = 0;  // runs before n_end are prefetched two ahead
  const S* g = nullptr;
  const S* x = nullptr;
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
    const T gi = load(g + i);
    acc[0] += gi;
    acc[1] += gi * (load(x + i) - m);
  }
};

// out[i] = f(i) (f.lanes(i): W of them) over a run of len elements of
// type S: with `stream`, whole cache lines inside the run take non-temporal
// stores, a line (64 bytes of S) per step; the rest regular ones, in an
// `omp simd` loop.
template <typename S, typename F>
void run_write(S* out, int64_t len, bool stream, F f) {
  (void)stream;  // used only where streaming stores exist
  constexpr int64_t W = kWidth<opmath_t<S>>;
  const bool nt = kStreams<S> && stream && len >= kStreamRun;
  int64_t i = 0;
  if (nt) {
    constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(S));
    for (; i < len && (reinterpret_cast<uintptr_t>(out + i) & 63); ++i) store(out + i, f(i));
    for (; i + line <= len; i += line)
      for (int64_t h = 0; h < line; h += 2 * W) store_vec2(out + i + h, f.lanes(i + h), f.lanes(i + h + W), true);
  }
  if constexpr (kHalf<S>) {
    // Explicit vectors: the omp simd loop's scalar conversions were slower (half.h, over_channels).
    for (; i + 2 * W <= len; i += 2 * W) store_vec2(out + i, f.lanes(i), f.lanes(i + W), false);
    for (; i + W <= len; i += W) store_vec(out + i, f.lanes(i), false);
    for (; i < len; ++i) store(out + i, f(i));
  } else {
#pragma omp simd
    for (int64_t k = i; k < len; ++k) store(out + k, f(k));
  }
}

// y = (x - m) * a + b over a run; non-temporal when `stream`.
template <typename S, typename T = opmath_t<S>>
void run_affine(const S* x, S* y, int64_t len, T m, T a, T b, bool stream) {
  struct {
    const S* x;
    T m, a, b;
    T operator()(int64_t i) const { return (load(x + i) - m) * a + b; }
    vec<T> lanes(int64_t i) const { return (vload(x + i) - m) * a + b; }
  } f{x, m, a, b};
  run_write(y, len, stream, f);
}

// dx = (dy - md - (x - m) * k) * a over a run.
template <typename S, typename T = opmath_t<S>>
void run_grad_input(const S* g, const S* x, S* dx, int64_t len, T m, T md, T k, T a, bool stream) {
  struct {
    const S *g, *x;
    T m, md, k, a;
    T operator()(int64_t i) const { return (load(g + i) - md - (load(x + i) - m) * k) * a; }
    vec<T> lanes(int64_t i) const { return (vload(g + i) - md - (vload(x + i) - m) * k) * a; }
  } f{g, x, m, md, k, a};
  run_write(dx, len, stream, f);
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

template <typename S>
Moments chunk_moments(const S* x, const BatchShape& s, const Chunk& k) {
  using T = opmath_t<S>;
  Moments r{};
  const int64_t len = k.i1 - k.i0;
  r.n = static_cast<double>((k.n1 - k.n0) * len);
  if (r.n == 0) return r;
  const S* base = x + k.c * s.inner + k.i0;
  const int64_t stride = s.c * s.inner;
  double sum[1];
  reduce_runs<T, 1>(k.n0, k.n1, len, SumOp<S>{base, stride, len, k.n1}, sum);
  const T m = static_cast<T>(sum[0] / r.n);
  double dev[2];
  reduce_runs<T, 2>(k.n0, k.n1, len, DevOp<S>{base, stride, m}, dev);
  const double s1 = dev[0], s2 = dev[1];
  r.mean = static_cast<double>(m) + s1 / r.n;
  r.m2 = non_negative(s2 - s1 * s1 / r.n);
  return r;
}

template <typename S>
Moments channel_moments(const S* x, const BatchShape& s, int64_t c) {
  std::vector<Chunk> chunks;
  channel_chunks(s, c, chunks);
  Moments m{};
  for (const Chunk& k : chunks) merge(m, chunk_moments(x, s, k));
  return m;
}

// Moments of every channel. Parallel over channels when the plan has
// enough of them, else over chunks (merged per channel in chunk order either
// way).
template <typename S>
void planar_moments(const S* x, const BatchShape& s, const Plan& p, std::vector<Moments>& out) {
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

template <typename S, typename T = opmath_t<S>>
void planar_affine_channel(const S* x, S* y, const BatchShape& s, int64_t c, const Affine<T>& f, bool stream) {
  for (int64_t n = 0; n < s.n; ++n) {
    const int64_t off = (n * s.c + c) * s.inner;
    run_affine(x + off, y + off, s.inner, f.shift[c], f.scale[c], f.offset[c], stream);
  }
}

template <typename S, typename T = opmath_t<S>>
void planar_grad_sums(const S* dy, const S* x, const BatchShape& s, int64_t c, T mean, double& sg, double& sgx) {
  double t[2];
  // Short runs are prefetched two ahead (64x256x14x14's backward 1.05-1.28x);
  // long ones, which the hardware prefetcher follows, are not (8x32x16^3's
  // 16 KiB runs lost 6-9% with their first KiB prefetched).
  const bool short_runs = s.inner * static_cast<int64_t>(sizeof(S)) <= kPrefetchBytes;
  reduce_runs<T, 2>(0, s.n, s.inner,
                    GradOp<S>{dy + c * s.inner, x + c * s.inner, s.c * s.inner, mean, s.inner, short_runs ? s.n : 0}, t);
  sg += t[0];
  sgx += t[1];
}

template <typename S, typename T = opmath_t<S>>
void planar_grad_input_channel(const S* dy, const S* x, S* dx, const BatchShape& s, int64_t c, const GradCoef<T>& g, bool stream) {
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
template <typename S>
struct AffineRuns {
  using T = opmath_t<S>;
  const S* base;  // run n at base + n * stride
  int64_t stride;
  T m, a, b;
  const S* p = nullptr;
  void at(int64_t n) { p = base + n * stride; }
  vec<T> vec_at(int64_t i) const { return (vload(p + i) - m) * a + b; }
  T one(int64_t i) const { return (load(p + i) - m) * a + b; }
};

// Writes channel c's runs of out (run n at out + (n * C + c) * inner) from
// `write` and, in the same loop, sums the two quantities of `sum` (a DevOp
// over another channel's runs, which its at() prefetches) into total, with
// reduce_runs' blocking: float lanes flushed to double before any holds
// kFlush values. Streams as run_affine does.
template <typename S, typename Write, typename Sum>
void write_runs_summing(const BatchShape& s, int64_t c, S* out, bool stream, Write write, Sum sum,
                        double (&total)[2]) {
  using T = opmath_t<S>;
  constexpr int64_t W = kWidth<T>;
  const int64_t len = s.inner;
  const bool nt = stream && kStreams<S> && len >= kStreamRun;
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
  const auto one = [&](S* o, int64_t i) {
    store(o + i, write.one(i));
    sum.one(tail, i);
  };
  for (int64_t n = 0; n < s.n; ++n) {
    write.at(n);
    sum.at(n);
    // At most 64 bytes of scalars before the vectors and 2W - 1 after.
    if (scalars + 64 / static_cast<int64_t>(sizeof(S)) + 2 * W > kFlush) flush();
    S* o = out + (n * s.c + c) * len;
    int64_t i = 0;
    if (nt)
      for (; i < len && (reinterpret_cast<uintptr_t>(o + i) & 63); ++i, ++scalars) one(o, i);
    for (; i + 2 * W <= len; i += 2 * W) {
      if (filled >= kFlush) flush();
      store_vec2(o + i, write.vec_at(i), write.vec_at(i + W), nt);
      sum.add(a0, i);
      sum.add(a1, i + W);
      ++filled;
    }
    if constexpr (kHalf<S>) {
      // A 16-bit value costs a scalar conversion each way: one more vector where it fits.
      if (i + W <= len) {
        if (filled >= kFlush) flush();
        store_vec(o + i, write.vec_at(i), nt);
        sum.add(a0, i);
        ++filled;
        i += W;
      }
    }
    for (; i < len; ++i, ++scalars) one(o, i);
  }
  flush();
}

// A shift for channel c's one-pass sums: the mean of up to 16 values at
// the start of each of up to 16 runs spread over the batch.
template <typename S, typename T = opmath_t<S>>
T channel_shift(const S* x, const BatchShape& s, int64_t c) {
  const int64_t k = std::min<int64_t>(s.n, 16), len = std::min<int64_t>(s.inner, 16);
  T acc = T(0);
  for (int64_t j = 0; j < k; ++j) {
    const S* p = x + ((j * s.n / k) * s.c + c) * s.inner;
    for (int64_t i = 0; i < len; ++i) acc += load(p + i);
  }
  return acc / static_cast<T>(k * len);
}

// y of channel c, and the moments of channel `next` from one pass of sums
// about a shift; where the shift would cost precision (as in
// rows_moments_range), next's moments come from channel_moments instead.
template <typename S, typename T = opmath_t<S>>
Moments planar_affine_then_moments(const S* x, S* y, const BatchShape& s, int64_t c, const Affine<T>& f,
                                   bool stream, int64_t next) {
  const T K = channel_shift(x, s, next);
  const int64_t stride = s.c * s.inner;
  // A short run is prefetched whole (64x256x14x14's 784-byte runs ran 1.5x
  // slower without); a long run only at its start, before the hardware
  // prefetcher catches on (prefetching whole 12-16 KiB runs ran 1.13-1.16x
  // slower than none).
  const int64_t ahead = std::min<int64_t>(s.inner, kPrefetchBytes / static_cast<int64_t>(sizeof(S)));
  double t[2];
  write_runs_summing(s, c, y, stream, AffineRuns<S>{x + c * s.inner, stride, f.shift[c], f.scale[c], f.offset[c]},
                     DevOp<S>{x + next * s.inner, stride, K, ahead, s.n}, t);
  const double n = static_cast<double>(s.count()), m2 = t[1] - t[0] * t[0] / n;
  if (4.0 * m2 < t[1]) return channel_moments(x, s, next);
  return Moments{n, static_cast<double>(K) + t[0] / n, non_negative(m2)};
}

}  // namespace detail
}  // namespace SYNCBN_CPU_ISA
}  // namespace cpu
}  // namespace syncbn
