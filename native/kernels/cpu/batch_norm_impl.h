// CPU batch-norm kernels, compiled once per instruction set (see
// batch_norm_avx2.cpp and batch_norm_base.cpp; batch_norm.cpp dispatches).
// Include only from those files, with SYNCBN_CPU_ISA naming the namespace.
//
// Memory traffic is the cost: batch norm does a few flops per byte. So:
// - Contiguous (N, C, inner) data is cut into chunks of one channel that fit
//   in L2. With at least as many channels as threads, a thread takes whole
//   channels: their statistics, then their normalization (or grad input)
//   while the channel is still in cache, so x is read from memory once. The
//   training forward takes the next channel's sums in the loop that
//   normalizes this one, so loads and stores overlap.
// - Channels-last rows (and any inner == 1): each thread's rows in one pass
//   of sums shifted by an estimate of the mean (below), merged across
//   threads; then the same rows normalized. Where the rows are too few for
//   that, a thread takes panels of channels over all rows instead (panel_width).
// - Large outputs are written with non-temporal stores: no read-for-ownership
//   of lines that are about to be overwritten whole.
// Statistics are stable: per chunk, the corrected two-pass algorithm
// (mean, then sums of d = x - mean and d^2, with M2 = sum d^2 - (sum d)^2 / n),
// short float blocks accumulated into double, chunks merged with Chan's
// formula in a fixed order. Rows, and in the training forward every
// channel of a thread after its first, use the same sums about a sampled
// estimate of the mean instead of the exact mean, in one pass, and fall back
// to two passes wherever that shift would cost precision (rows_moments_range,
// planar_affine_then_moments). The thread count changes only the rounding
// of partial sums.
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define SYNCBN_STORE_FENCE() _mm_sfence()
#else
#define SYNCBN_STORE_FENCE() ((void)0)
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <type_traits>
#include <vector>

#include "../batch_norm.h"
#include "../statistics.h"
#include "threading.h"

#ifndef SYNCBN_CPU_ISA
#error "define SYNCBN_CPU_ISA before including batch_norm_impl.h"
#endif

namespace syncbn {
namespace cpu {
namespace SYNCBN_CPU_ISA {

// Internal, but not an anonymous namespace: the entry points' lambdas use
// these types, and each ISA's namespace keeps the two builds apart.
namespace detail {

constexpr int64_t kBlock = 256;           // values summed in T before going to double
constexpr int64_t kChunk = 32768;         // values per statistics chunk (128 KiB of float)
// The size of cpu0's cache at sysfs `index` (2: L2, 3: L3), or `fallback`.
// sysfs has the cache this VM sees; sysconf may report the host's.
inline int64_t cache_bytes(int index, int64_t fallback) {
  char path[64];
  std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
  int64_t bytes = 0;
  if (FILE* f = std::fopen(path, "r")) {
    long kib = 0;
    if (std::fscanf(f, "%ldK", &kib) == 1) bytes = int64_t(kib) << 10;
    std::fclose(f);
  }
  return bytes > 0 ? bytes : fallback;
}
// Outputs larger than a quarter of the last-level cache bypass the cache (an output
// that fits stays there for its reader) ...
inline int64_t stream_bytes() {
  static const int64_t bytes = cache_bytes(3, int64_t(32) << 20) / 4;
  return bytes;
}
// ...a cache line at a time: only whole 64-byte lines inside a run are
// streamed; the partial lines at its ends (shared with the neighbouring
// runs) take regular stores, so no line is written half non-temporally.
// Runs shorter than this stream nothing.
constexpr int64_t kStreamRun = 64;

// (count, mean, m2) of a channel or a part of one; merged with
// statistics.h's merge, the one the CUDA kernels and the collectives use.
// Value-initialize (Moments{}): the shared type has no member initializers.
using Moments = stats::Welford<double>;

inline void merge(Moments& a, const Moments& b) { a = stats::merge(a, b); }

// Channels [c0, c1) of (nb, mb, m2b) merged into (na, ma, m2a), as merge()
// does one channel, with the same chan_step. Rows give every channel the same count, so the weights
// are computed once and the per-channel work is a multiply-add that
// vectorizes (a scalar merge per channel was 10% of a 256x1024 forward).
inline void merge_channels(double& na, double* ma, double* m2a, double nb, const double* mb, const double* m2b,
                           int64_t c0, int64_t c1) {
  if (!(nb > 0)) return;
  if (!(na > 0)) {
    std::copy(mb + c0, mb + c1, ma + c0);
    std::copy(m2b + c0, m2b + c1, m2a + c0);
  } else {
    const double n = na + nb, wb = nb / n, w = na * nb / n;
    // No non-finite branch here: moments_of and forward_training redo a
    // channel whose merged result is not finite (two_pass_moments).
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c) stats::chan_step(ma[c], m2a[c], mb[c], m2b[c], wb, w);
  }
  na += nb;
}

// ---- contiguous runs -------------------------------------------------------

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

// The most of a run prefetched at once: see planar_affine_then_moments.
constexpr int64_t kPrefetchBytes = 1024;

// Asks for a run of len values ahead of its use: runs of a channel are
// short and far apart, so the hardware prefetcher starts late on each.
template <typename T>
inline void prefetch_run(const T* p, int64_t len) {
  const char* b = reinterpret_cast<const char*>(p);
  for (int64_t k = 0; k < len * static_cast<int64_t>(sizeof(T)); k += 64) __builtin_prefetch(b + k);
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

// body(i) for i in [0, count), split statically over nt threads. Each thread
// fences its own non-temporal stores before the region ends, so the output
// is complete for whoever reads it next.
template <typename Body>
void parallel_writes(int nt, int64_t count, bool stream, Body body) {
  parallel_region(nt, [&] {
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < count; ++i) body(i);
    if (stream) SYNCBN_STORE_FENCE();
  });
}

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

// ---- per-channel parameters ------------------------------------------------

// An array whose elements start uninitialized, for per-channel arrays that
// are written in full before they are read: std::vector zeroes them first,
// and at 256x1024 that zeroing took 7% of the forward's main thread.
template <typename T>
class Buffer {
 public:
  explicit Buffer(int64_t n) : p_(new T[static_cast<size_t>(n)]) {}
  T* data() { return p_.get(); }
  const T* data() const { return p_.get(); }
  T& operator[](int64_t i) { return p_[static_cast<size_t>(i)]; }
  const T& operator[](int64_t i) const { return p_[static_cast<size_t>(i)]; }

 private:
  std::unique_ptr<T[]> p_;
};

// What the element-wise passes need per channel, in T.
// Rounding can leave a sum of squared deviations slightly below 0; NaN (a
// NaN or an infinity in the channel) must stay NaN, as in PyTorch, where
// std::max(0.0, NaN) would make it 0.
inline double non_negative(double v) { return v < 0.0 ? 0.0 : v; }

// Statistics of one channel that holds a NaN or an infinity, as ATen's CPU
// kernel computes them (mean = sum / n, then the sum of squared deviations
// from it), so that what propagates (Inf, -Inf or NaN) is what PyTorch gives;
// the shifted and blocked sums of the fast paths would turn an infinite mean
// into NaN. Called only for channels whose fast result is not finite.
template <typename T>
void two_pass_moments(const T* x, const BatchShape& s, int64_t c, double& mean, double& m2) {
  const int64_t n = s.count();
  auto at = [&](int64_t k) -> double {
    if (s.rows()) return static_cast<double>(x[k * s.c + c]);
    return static_cast<double>(x[((k / s.inner) * s.c + c) * s.inner + k % s.inner]);
  };
  double sum = 0.0;
  for (int64_t k = 0; k < n; ++k) sum += at(k);
  mean = sum / static_cast<double>(n);
  double ss = 0.0;
  for (int64_t k = 0; k < n; ++k) {
    const double d = at(k) - mean;
    ss += d * d;
  }
  m2 = ss;
}

template <typename T>
struct Affine {
  Buffer<T> shift, scale, offset;
  explicit Affine(int64_t c) : shift(c), scale(c), offset(c) {}
};

template <typename T>
void set_affine(Affine<T>& f, int64_t c, double mean, double invstd, const T* weight, const T* bias) {
  f.shift[c] = static_cast<T>(mean);
  f.scale[c] = static_cast<T>(invstd * (weight ? static_cast<double>(weight[c]) : 1.0));
  f.offset[c] = bias ? bias[c] : T(0);
}

template <typename T>
struct GradCoef {
  Buffer<T> mean, mean_dy, proj, scale;
  explicit GradCoef(int64_t c) : mean(c), mean_dy(c), proj(c), scale(c) {}
};

// ---- contiguous (planar) layout ---------------------------------------------

struct Chunk {
  int64_t c, n0, n1, i0, i1;
};

// One channel's values cut into chunks of about kChunk, each a set of whole
// runs or a piece of one long run.
void channel_chunks(const BatchShape& s, int64_t c, std::vector<Chunk>& out) {
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

// Moments of every channel. Parallel over channels when there are enough,
// else over chunks (merged per channel in chunk order either way).
template <typename T>
void planar_moments(const T* x, const BatchShape& s, std::vector<Moments>& out) {
  out.assign(s.c, Moments{});
  const int nt = threads_for(s.numel());
  if (s.c >= nt) {
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

// ---- channels-last rows -----------------------------------------------------

// Rows per tile: about kChunk values, and at least 64 rows so that merging a
// tile's per-channel statistics stays cheap next to computing them.
int64_t tile_rows(int64_t c) { return std::max<int64_t>(64, kChunk / c); }

// Sums of d = x - shift and d^2 over `rows` rows of C channels, ld apart,
// into s1 and s2 (C entries each, added to): in T over blocks of kBlock
// rows, then in double. Rows go four at a time, so the per-channel
// accumulators (in L1) are loaded and stored once per four rows rather than
// once per row.
template <typename T>
void shifted_sums(const T* x, int64_t rows, int64_t C, int64_t ld, const T* shift, T* a, T* b, double* s1,
                  double* s2) {
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t r1 = std::min(rows, r0 + kBlock);
    std::fill(a, a + C, T(0));
    std::fill(b, b + C, T(0));
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
      const T* p = x + r * ld;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const T d0 = p[c] - shift[c], d1 = p[ld + c] - shift[c], d2 = p[2 * ld + c] - shift[c],
                d3 = p[3 * ld + c] - shift[c];
        a[c] += (d0 + d1) + (d2 + d3);
        b[c] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3);
      }
    }
    for (; r < r1; ++r) {
      const T* p = x + r * ld;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const T d = p[c] - shift[c];
        a[c] += d;
        b[c] += d * d;
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      s1[c] += static_cast<double>(a[c]);
      s2[c] += static_cast<double>(b[c]);
    }
  }
}

// Two passes over a tile of rows (C channels, ld apart) in cache (the sum,
// then sums shifted by the tile's mean): the tile's mean and m2 (C entries
// each).
template <typename T>
void tile_moments(const T* x, int64_t rows, int64_t C, int64_t ld, std::vector<double>& sum, std::vector<T>& m,
                  std::vector<double>& s1, std::vector<double>& s2, Buffer<T>& a, Buffer<T>& b,
                  double* mean, double* m2) {
  std::fill(sum.begin(), sum.end(), 0.0);
  T* ap = a.data();
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t r1 = std::min(rows, r0 + kBlock);
    std::fill(a.data(), a.data() + C, T(0));
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
      const T* p = x + r * ld;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) ap[c] += (p[c] + p[ld + c]) + (p[2 * ld + c] + p[3 * ld + c]);
    }
    for (; r < r1; ++r) {
      const T* p = x + r * ld;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) ap[c] += p[c];
    }
    for (int64_t c = 0; c < C; ++c) sum[c] += static_cast<double>(a[c]);
  }
  const double n = static_cast<double>(rows), inv_n = 1.0 / n;
  for (int64_t c = 0; c < C; ++c) m[c] = static_cast<T>(sum[c] * inv_n);
  std::fill(s1.begin(), s1.end(), 0.0);
  std::fill(s2.begin(), s2.end(), 0.0);
  shifted_sums(x, rows, C, ld, m.data(), a.data(), b.data(), s1.data(), s2.data());
  for (int64_t c = 0; c < C; ++c) {
    mean[c] = static_cast<double>(m[c]) + s1[c] * inv_n;
    m2[c] = non_negative(s2[c] - s1[c] * s1[c] * inv_n);
  }
}

// Splits `rows` into `nt` contiguous ranges of whole tiles.
inline void row_range(int64_t rows, int64_t tile, int nt, int t, int64_t& r0, int64_t& r1) {
  const int64_t tiles = (rows + tile - 1) / tile;
  const int64_t per = (tiles + nt - 1) / nt;
  r0 = std::min(rows, t * per * tile);
  r1 = std::min(rows, (t + 1) * per * tile);
}

// Whether an element-wise pass over rows takes them four at a time (one
// load of the per-channel values per four rows) or one by one. Four rows at
// once read x as four streams a row apart, which the hardware prefetchers
// follow badly once rows are long: from memory, rows of 256 B or more ran
// 1.1-1.5x faster one by one (bench/NOTES.md 16), and rows of 512 B or more
// also in cache, where four 4 KiB-apart rows even share one L1 set.
template <typename T>
bool rows_blocked(const BatchShape& s) {
  const int64_t row = s.c * static_cast<int64_t>(sizeof(T));
  return row < 256 || (row < 512 && s.numel() * static_cast<int64_t>(sizeof(T)) <= stream_bytes());
}

// acc += p over C values. Explicit vectors: GCC jammed the plain loop's
// calls for successive rows into one scalar loop.
template <typename T>
inline void add_row(T* acc, const T* p, int64_t C) {
  int64_t c = 0;
  for (; c + kWidth<T> <= C; c += kWidth<T>) {
    const vec<T> v = vload(acc + c) + vload(p + c);
    std::memcpy(acc + c, &v, sizeof v);
  }
  for (; c < C; ++c) acc[c] += p[c];
}

// Rows whose mean is the shift of the one-pass statistics, spread evenly
// over a thread's rows.
constexpr int64_t kShiftRows = 16;

// One thread's rows [r0, r1): each channel's mean and m2 (C entries each),
// in one pass over x: sums of x - K and (x - K)^2, K per channel the mean
// of kShiftRows rows. m2 = s2 - s1^2 / n cancels only as much as K is off
// the mean; when for any channel the shift makes up more than 3/4 of s2 (K
// more than 1.7 standard deviations off: rows ordered by value, say), the
// range is done again tile by tile, two passes each in cache.
template <typename T>
void rows_moments_range(const T* x, int64_t C, int64_t ld, int64_t r0, int64_t r1, double* mean, double* m2) {
  const int64_t rows = r1 - r0;
  if (rows <= 0) return;
  std::vector<double> s1(C, 0.0), s2(C, 0.0);
  std::vector<T> shift(C, T(0));
  Buffer<T> a(C), b(C);  // zeroed per block by shifted_sums
  T* K = shift.data();
  // K is a rough estimate in T: the sums hold about any K, and the check
  // below catches one too far off.
  const int64_t k = std::min(rows, kShiftRows);
  for (int64_t i = 0; i < k; ++i) add_row(K, x + (r0 + i * rows / k) * ld, C);
  const T inv_k = T(1) / static_cast<T>(k);
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) K[c] *= inv_k;
  shifted_sums(x + r0 * ld, rows, C, ld, K, a.data(), b.data(), s1.data(), s2.data());
  const double inv_n = 1.0 / static_cast<double>(rows);
  int64_t cancelled = 0;
#pragma omp simd reduction(+ : cancelled)
  for (int64_t c = 0; c < C; ++c) {
    const double d = s2[c] - s1[c] * s1[c] * inv_n;
    mean[c] = static_cast<double>(K[c]) + s1[c] * inv_n;
    m2[c] = d < 0.0 ? 0.0 : d;
    cancelled += 4.0 * d < s2[c] ? 1 : 0;
  }
  if (cancelled == 0) return;
  // Tiles sized by the row length, not C, so that a panel's channels fall
  // back to the tiles they would have in whole rows.
  const int64_t tile = tile_rows(ld);
  std::vector<double> sum(C), tm(C), tm2(C);
  std::vector<T> m(C);
  double n = 0;
  for (int64_t r = r0; r < r1; r += tile) {
    const int64_t len = std::min(tile, r1 - r);
    tile_moments(x + r * ld, len, C, ld, sum, m, s1, s2, a, b, tm.data(), tm2.data());
    merge_channels(n, mean, m2, static_cast<double>(len), tm.data(), tm2.data(), 0, C);
  }
}

// Rows are split between threads in one of two ways. Row ranges: each
// thread reduces its rows, the threads' sums are merged, then each thread
// normalizes its rows. Panels: a thread takes whole panels of channels over
// all rows, reduces one and normalizes it while it is still in cache, with
// no merge and no waiting for the other threads. Panels read a row's channels
// in pieces, which the hardware prefetchers follow worse than whole rows (at
// 256x1024, in cache, panels ran 0.7-0.8x of row ranges), so they are taken
// only where row ranges do badly (bench/NOTES.md 21):
// - too few rows to give every thread a tile (at most 64 rows for C >= 512:
//   32x16384 ran on one thread, 4.9x slower than in panels);
// - x beyond the cache, so that row ranges read it from memory twice, and
//   few enough rows (at most 256) that a panel of a few thousand channels
//   stays in the cache between its passes (256x32768: 1.4x, 128x65536: 2.1x;
//   1024x8192 was 0.8x).
// Channels per panel: panels of at most a thread's share of a quarter of
// L3, a multiple of nt of them, each a multiple of 16 channels; 0 when row
// ranges are taken. The split moves only roundings: panels sum a channel
// over all rows in one range, row ranges per thread and then merged.
template <typename T>
int64_t panel_width(const BatchShape& s, int nt) {
  const int64_t rows = s.n * s.inner, C = s.c, bytes = s.numel() * static_cast<int64_t>(sizeof(T));
  if (!s.rows() || rows == 0) return 0;
  const int64_t tile = tile_rows(C);
  const bool few = (rows + tile - 1) / tile < nt;
  const bool beyond = bytes > stream_bytes() && rows <= 256;
  if (!few && !beyond) return 0;
  const int64_t fit = std::max<int64_t>(16, stream_bytes() / nt / (rows * static_cast<int64_t>(sizeof(T))));
  const int64_t per = nt * ((C + fit * nt - 1) / (fit * nt));
  const int64_t width = ((C + per - 1) / per + 15) / 16 * 16;
  return width < C ? width : 0;
}

// body(c0, c1) for every panel [c0, c1) of w channels, the panels split
// statically over nt threads (as parallel_writes).
template <typename Body>
void for_panels(int nt, int64_t C, int64_t w, bool stream, Body body) {
  parallel_writes(nt, (C + w - 1) / w, stream, [&](int64_t p) { body(p * w, std::min(C, p * w + w)); });
}

// Each thread's share of the channels, for the per-channel work after the
// rows statistics.
inline void channel_range(int64_t C, int nt, int t, int64_t& c0, int64_t& c1) {
  c0 = C * t / nt;
  c1 = C * (t + 1) / nt;
}

// The threads' partial moments (part: nt x [mean C, m2 C], count[t] rows
// each) of channels [c0, c1), merged in thread order into thread 0's part.
inline void merge_parts(double* part, const std::vector<double>& count, int nt, int64_t C, int64_t c0, int64_t c1) {
  double n = count[0];
  for (int t = 1; t < nt; ++t) {
    const double* p = part + static_cast<size_t>(t) * 2 * C;
    merge_channels(n, part, part + C, count[static_cast<size_t>(t)], p, p + C, c0, c1);
  }
}

// Thread t's share of the rows statistics: its rows [r0, r1), their
// moments into its part and their number into count[t].
template <typename T>
void thread_rows_moments(const T* x, int64_t C, int64_t rows, int nt, int t, double* part, std::vector<double>& count,
                         int64_t& r0, int64_t& r1) {
  row_range(rows, tile_rows(C), nt, t, r0, r1);
  double* p = part + static_cast<size_t>(t) * 2 * C;
  rows_moments_range(x, C, C, r0, r1, p, p + C);
  count[static_cast<size_t>(t)] = static_cast<double>(std::max<int64_t>(0, r1 - r0));
}

// The moments of panel [c0, c1) over all rows into mean and m2 (C entries
// each).
template <typename T>
void panel_moments(const T* x, int64_t C, int64_t rows, int64_t c0, int64_t c1, double* mean, double* m2) {
  rows_moments_range(x + c0, c1 - c0, C, 0, rows, mean + c0, m2 + c0);
}

template <typename T>
void rows_moments(const T* x, const BatchShape& s, std::vector<Moments>& out) {
  const int64_t C = s.c, rows = s.n * s.inner;
  const int nt = threads_for(s.numel());
  std::vector<double> part(static_cast<size_t>(nt) * 2 * C), count(nt);
  if (const int64_t w = panel_width<T>(s, nt)) {
    for_panels(nt, C, w, false, [&](int64_t c0, int64_t c1) {
      panel_moments(x, C, rows, c0, c1, part.data(), part.data() + C);
    });
  } else {
    parallel_region(nt, [&] {
      int64_t r0, r1;
      thread_rows_moments(x, C, rows, nt, omp_get_thread_num(), part.data(), count, r0, r1);
    });
    merge_parts(part.data(), count, nt, C, 0, C);
  }
  out.resize(C);
  for (int64_t c = 0; c < C; ++c) out[c] = Moments{static_cast<double>(rows), part[c], part[C + c]};
}

// Streaming stores over rows [r0, r1) of C channels treat them as one run
// of values whose channel cycles, cut at cache lines rather than at rows:
// rows seldom start on a line (a large V8 array begins 16 bytes into a
// page), and the whole lines inside the run are what may be streamed. So
// that eight lanes starting at any channel read a parameter in one load,
// each parameter is laid out C + 8 long, wrapping around.
inline std::vector<float> cyclic_params(int64_t C, std::initializer_list<const float*> params) {
  std::vector<float> w;
  w.reserve(params.size() * (C + 8));
  for (const float* p : params)
    for (int64_t c = 0; c < C + 8; ++c) w.push_back(p[c % C]);
  return w;
}

// one(i, c) with a regular store up to the first line boundary of out and
// after the last; eight(i, c), which streams lanes i..i+7 starting at channel
// c, over the whole lines between. Needs C >= 8, so one subtraction wraps c.
template <typename One, typename Eight>
void stream_rows(const float* out, int64_t C, int64_t i, int64_t end, One one, Eight eight) {
  int64_t c = i % C;
  const auto step = [&](int64_t n) {
    c += n;
    if (c >= C) c -= C;
  };
  for (; i < end && (reinterpret_cast<uintptr_t>(out + i) & 63); ++i, step(1)) one(i, c);
  for (; i + 16 <= end; i += 16) {
    eight(i, c);
    step(8);
    eight(i + 8, c);
    step(8);
  }
  for (; i < end; ++i, step(1)) one(i, c);
}

// y = (x - m) * a + b over rows [r0, r1) of C channels, ld apart (m, a, b:
// C entries each); when `blocked`, four rows per load of the parameters.
template <typename T>
void rows_affine_range(const T* x, T* y, int64_t C, int64_t ld, int64_t r0, int64_t r1, const T* m, const T* a,
                       const T* b, bool stream, bool blocked) {
  (void)stream;  // used only where AVX streaming stores exist
  int64_t r = r0;
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, float>) {
    if (stream && C >= 8) {
      const auto one = [=](const float* xr, float* yr, const float* mr, const float* ar, const float* br) {
        return [=](int64_t i, int64_t c) { yr[i] = (xr[i] - mr[c]) * ar[c] + br[c]; };
      };
      const auto eight = [=](const float* xr, float* yr, const float* mr, const float* ar, const float* br) {
        return [=](int64_t i, int64_t c) {
          const __m256 v = _mm256_sub_ps(_mm256_loadu_ps(xr + i), _mm256_loadu_ps(mr + c));
          _mm256_stream_ps(yr + i, _mm256_add_ps(_mm256_mul_ps(v, _mm256_loadu_ps(ar + c)), _mm256_loadu_ps(br + c)));
        };
      };
      if (ld == C) {
        const std::vector<float> w = cyclic_params(C, {m, a, b});
        const float *wm = w.data(), *wa = wm + C + 8, *wb = wa + C + 8;
        stream_rows(y, C, r0 * C, r1 * C, one(x, y, m, a, b), eight(x, y, wm, wa, wb));
      } else {
        // A panel's row is a run of its own: its channel never wraps.
        for (; r < r1; ++r) {
          const float* xr = x + r * ld;
          float* yr = y + r * ld;
          stream_rows(yr, C, 0, C, one(xr, yr, m, a, b), eight(xr, yr, m, a, b));
        }
      }
      return;
    }
  }
#endif
  for (; blocked && r + 4 <= r1; r += 4) {
    const T* p = x + r * ld;
    T* q = y + r * ld;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const T mc = m[c], ac = a[c], bc = b[c];
      q[c] = (p[c] - mc) * ac + bc;
      q[ld + c] = (p[ld + c] - mc) * ac + bc;
      q[2 * ld + c] = (p[2 * ld + c] - mc) * ac + bc;
      q[3 * ld + c] = (p[3 * ld + c] - mc) * ac + bc;
    }
  }
  for (; r < r1; ++r) {
    const T* p = x + r * ld;
    T* q = y + r * ld;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) q[c] = (p[c] - m[c]) * a[c] + b[c];
  }
}

// y over panel [c0, c1) of all rows.
template <typename T>
void panel_affine(const T* x, T* y, int64_t C, int64_t rows, int64_t c0, int64_t c1, const Affine<T>& f, bool stream,
                  bool blocked) {
  rows_affine_range(x + c0, y + c0, c1 - c0, C, 0, rows, f.shift.data() + c0, f.scale.data() + c0,
                    f.offset.data() + c0, stream, blocked);
}

// Threads take the same row ranges or panels in every pass over rows, so a
// thread normalizes the values whose statistics it just computed (still in
// its cache).
template <typename T>
void rows_affine(const T* x, T* y, const BatchShape& s, const Affine<T>& f, bool stream) {
  const int64_t C = s.c, rows = s.n * s.inner;
  const int nt = threads_for(s.numel());
  if (const int64_t w = panel_width<T>(s, nt)) {
    for_panels(nt, C, w, stream,
               [&](int64_t c0, int64_t c1) { panel_affine(x, y, C, rows, c0, c1, f, stream, rows_blocked<T>(s)); });
    return;
  }
  parallel_region(nt, [&] {
    int64_t r0, r1;
    row_range(rows, tile_rows(C), nt, omp_get_thread_num(), r0, r1);
    rows_affine_range(x, y, C, C, r0, r1, f.shift.data(), f.scale.data(), f.offset.data(), stream, rows_blocked<T>(s));
    if (stream) SYNCBN_STORE_FENCE();
  });
}

// Rows [r0, r1) of C channels, ld apart: sums of dy and dy * (x - mean)
// into acc[0, C) and acc[C, 2C); when `blocked`, four rows per accumulator
// load and store.
template <typename T>
void rows_grad_sums_range(const T* dy, const T* x, int64_t C, int64_t ld, int64_t r0, int64_t r1, const T* mean,
                          bool blocked, double* acc) {
  std::vector<T> a(C), b(C);
  T* ap = a.data();
  T* bp = b.data();
  for (int64_t q0 = r0; q0 < r1; q0 += kBlock) {
    const int64_t q1 = std::min(r1, q0 + kBlock);
    std::fill(a.begin(), a.end(), T(0));
    std::fill(b.begin(), b.end(), T(0));
    int64_t r = q0;
    for (; blocked && r + 4 <= q1; r += 4) {
      const T* g = dy + r * ld;
      const T* p = x + r * ld;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const T mc = mean[c];
        ap[c] += (g[c] + g[ld + c]) + (g[2 * ld + c] + g[3 * ld + c]);
        bp[c] += (g[c] * (p[c] - mc) + g[ld + c] * (p[ld + c] - mc)) +
                 (g[2 * ld + c] * (p[2 * ld + c] - mc) + g[3 * ld + c] * (p[3 * ld + c] - mc));
      }
    }
    for (; r < q1; ++r) {
      const T* g = dy + r * ld;
      const T* p = x + r * ld;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        ap[c] += g[c];
        bp[c] += g[c] * (p[c] - mean[c]);
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      acc[c] += static_cast<double>(a[c]);
      acc[C + c] += static_cast<double>(b[c]);
    }
  }
}

// The grad sums of panel [c0, c1) over all rows into sg and sgx.
template <typename T>
void panel_grad_sums(const T* dy, const T* x, int64_t C, int64_t rows, int64_t c0, int64_t c1, const T* mean,
                     bool blocked, double* sg, double* sgx) {
  const int64_t w = c1 - c0;
  std::vector<double> acc(2 * w, 0.0);
  rows_grad_sums_range(dy + c0, x + c0, w, C, 0, rows, mean + c0, blocked, acc.data());
  std::copy(acc.begin(), acc.begin() + w, sg + c0);
  std::copy(acc.begin() + w, acc.end(), sgx + c0);
}

// The threads' grad sums (part: nt x [sum dy C, sum dy (x - mean) C]) of
// channels [c0, c1), added into sg and sgx in thread order.
inline void sum_parts(const std::vector<double>& part, int nt, int64_t C, int64_t c0, int64_t c1, double* sg,
                      double* sgx) {
  for (int t = 0; t < nt; ++t) {
    const double* p = &part[static_cast<size_t>(t) * 2 * C];
    for (int64_t c = c0; c < c1; ++c) {
      sg[c] += p[c];
      sgx[c] += p[C + c];
    }
  }
}

template <typename T>
void rows_grad_sums(const T* dy, const T* x, const BatchShape& s, const T* mean, std::vector<double>& sg,
                    std::vector<double>& sgx) {
  const int64_t C = s.c, rows = s.n * s.inner, tile = tile_rows(C);
  const int nt = threads_for(s.numel());
  sg.assign(C, 0.0);
  sgx.assign(C, 0.0);
  if (const int64_t w = panel_width<T>(s, nt)) {
    for_panels(nt, C, w, false, [&](int64_t c0, int64_t c1) {
      panel_grad_sums(dy, x, C, rows, c0, c1, mean, rows_blocked<T>(s), sg.data(), sgx.data());
    });
    return;
  }
  std::vector<double> part(static_cast<size_t>(nt) * 2 * C, 0.0);
  parallel_region(nt, [&] {
    const int t = omp_get_thread_num();
    int64_t r0, r1;
    row_range(rows, tile, nt, t, r0, r1);
    rows_grad_sums_range(dy, x, C, C, r0, r1, mean, rows_blocked<T>(s), &part[static_cast<size_t>(t) * 2 * C]);
  });
  sum_parts(part, nt, C, 0, C, sg.data(), sgx.data());
}

// dx over rows [r0, r1) of C channels, ld apart (m, md, k, a: C entries
// each); when `blocked`, four rows per load of the coefficients.
template <typename T>
void rows_grad_input_range(const T* dy, const T* x, T* dx, int64_t C, int64_t ld, int64_t r0, int64_t r1, const T* m,
                           const T* md, const T* k, const T* a, bool stream, bool blocked) {
  (void)stream;  // used only where AVX streaming stores exist
  int64_t r = r0;
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, float>) {
    if (stream && C >= 8) {
      const auto one = [=](const float* gr, const float* xr, float* qr, const float* mr, const float* mdr,
                           const float* kr, const float* ar) {
        return [=](int64_t i, int64_t c) { qr[i] = (gr[i] - mdr[c] - (xr[i] - mr[c]) * kr[c]) * ar[c]; };
      };
      const auto eight = [=](const float* gr, const float* xr, float* qr, const float* mr, const float* mdr,
                             const float* kr, const float* ar) {
        return [=](int64_t i, int64_t c) {
          const __m256 xm = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + i), _mm256_loadu_ps(mr + c)), _mm256_loadu_ps(kr + c));
          const __m256 d = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(gr + i), _mm256_loadu_ps(mdr + c)), xm);
          _mm256_stream_ps(qr + i, _mm256_mul_ps(d, _mm256_loadu_ps(ar + c)));
        };
      };
      if (ld == C) {
        const std::vector<float> w = cyclic_params(C, {m, md, k, a});
        const float *wm = w.data(), *wmd = wm + C + 8, *wk = wmd + C + 8, *wa = wk + C + 8;
        stream_rows(dx, C, r0 * C, r1 * C, one(dy, x, dx, m, md, k, a), eight(dy, x, dx, wm, wmd, wk, wa));
      } else {
        // A panel's row is a run of its own: its channel never wraps.
        for (; r < r1; ++r) {
          const float *gr = dy + r * ld, *xr = x + r * ld;
          float* qr = dx + r * ld;
          stream_rows(qr, C, 0, C, one(gr, xr, qr, m, md, k, a), eight(gr, xr, qr, m, md, k, a));
        }
      }
      return;
    }
  }
#endif
  for (; blocked && r + 4 <= r1; r += 4) {
    const T* gp = dy + r * ld;
    const T* p = x + r * ld;
    T* q = dx + r * ld;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
      const T mc = m[c], mdc = md[c], kc = k[c], ac = a[c];
      q[c] = (gp[c] - mdc - (p[c] - mc) * kc) * ac;
      q[ld + c] = (gp[ld + c] - mdc - (p[ld + c] - mc) * kc) * ac;
      q[2 * ld + c] = (gp[2 * ld + c] - mdc - (p[2 * ld + c] - mc) * kc) * ac;
      q[3 * ld + c] = (gp[3 * ld + c] - mdc - (p[3 * ld + c] - mc) * kc) * ac;
    }
  }
  for (; r < r1; ++r) {
    const T* gp = dy + r * ld;
    const T* p = x + r * ld;
    T* q = dx + r * ld;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) q[c] = (gp[c] - md[c] - (p[c] - m[c]) * k[c]) * a[c];
  }
}

// dx over panel [c0, c1) of all rows.
template <typename T>
void panel_grad_input(const T* dy, const T* x, T* dx, int64_t C, int64_t rows, int64_t c0, int64_t c1,
                      const GradCoef<T>& g, bool stream, bool blocked) {
  rows_grad_input_range(dy + c0, x + c0, dx + c0, c1 - c0, C, 0, rows, g.mean.data() + c0, g.mean_dy.data() + c0,
                        g.proj.data() + c0, g.scale.data() + c0, stream, blocked);
}

template <typename T>
void rows_grad_input(const T* dy, const T* x, T* dx, const BatchShape& s, const GradCoef<T>& g, bool stream) {
  const int64_t C = s.c, rows = s.n * s.inner;
  const int nt = threads_for(s.numel());
  if (const int64_t w = panel_width<T>(s, nt)) {
    for_panels(nt, C, w, stream, [&](int64_t c0, int64_t c1) {
      panel_grad_input(dy, x, dx, C, rows, c0, c1, g, stream, rows_blocked<T>(s));
    });
    return;
  }
  parallel_region(nt, [&] {
    int64_t r0, r1;
    row_range(rows, tile_rows(C), nt, omp_get_thread_num(), r0, r1);
    rows_grad_input_range(dy, x, dx, C, C, r0, r1, g.mean.data(), g.mean_dy.data(), g.proj.data(), g.scale.data(),
                          stream, rows_blocked<T>(s));
    if (stream) SYNCBN_STORE_FENCE();
  });
}

// ---- layout-generic passes --------------------------------------------------

template <typename T>
void moments_of(const T* x, const BatchShape& s, std::vector<Moments>& out) {
  if (s.numel() == 0) {
    out.assign(s.c, Moments{});
    return;
  }
  if (s.rows()) rows_moments(x, s, out);
  else planar_moments(x, s, out);
  for (int64_t c = 0; c < s.c; ++c)
    if (!std::isfinite(out[c].mean) || !std::isfinite(out[c].m2)) two_pass_moments(x, s, c, out[c].mean, out[c].m2);
}

template <typename T>
void affine_pass(const T* x, T* y, const BatchShape& s, const Affine<T>& f) {
  if (s.numel() == 0) return;
  // A lone element-wise pass (inference) streams only when x and y together
  // overflow the last-level cache: until then its output stays there.
  const bool stream = s.numel() * static_cast<int64_t>(sizeof(T)) > 2 * stream_bytes();
  if (s.rows()) {
    rows_affine(x, y, s, f, stream);
    return;
  }
  const int nt = threads_for(s.numel());
  parallel_writes(nt, s.n * s.c, stream, [&](int64_t k) {
    const int64_t off = k * s.inner;
    const int64_t c = k % s.c;
    run_affine(x + off, y + off, s.inner, f.shift[c], f.scale[c], f.offset[c], stream);
  });
}

template <typename T>
void grad_sums(const T* dy, const T* x, const BatchShape& s, const T* mean, std::vector<double>& sg, std::vector<double>& sgx) {
  sg.assign(s.c, 0.0);
  sgx.assign(s.c, 0.0);
  if (s.numel() == 0) return;
  if (s.rows()) {
    rows_grad_sums(dy, x, s, mean, sg, sgx);
    return;
  }
  const int nt = threads_for(s.numel());
  parallel_region(nt, [&] {
#pragma omp for schedule(static)
    for (int64_t c = 0; c < s.c; ++c) planar_grad_sums(dy, x, s, c, mean[c], sg[c], sgx[c]);
  });
}

template <typename T>
void grad_input_pass(const T* dy, const T* x, T* dx, const BatchShape& s, const GradCoef<T>& g) {
  if (s.numel() == 0) return;
  const bool stream = s.numel() * static_cast<int64_t>(sizeof(T)) > stream_bytes();
  if (s.rows()) {
    rows_grad_input(dy, x, dx, s, g, stream);
    return;
  }
  const int nt = threads_for(s.numel());
  parallel_writes(nt, s.n * s.c, stream, [&](int64_t k) {
    const int64_t off = k * s.inner;
    const int64_t c = k % s.c;
    run_grad_input(dy + off, x + off, dx + off, s.inner, g.mean[c], g.mean_dy[c], g.proj[c], g.scale[c], stream);
  });
}

double invstd_of(const Moments& m, double eps) { return m.n > 0 ? stats::invstd(m.m2 / m.n, eps) : 0.0; }

}  // namespace detail

using namespace detail;

// ---- entry points -------------------------------------------------------------

template <typename T>
void stats(const StatsArgs<T>& a) {
  const T* x = a.x;
  const BatchShape& s = a.s;
  const double eps = a.eps;
  T *mean = a.mean, *invstd = a.invstd;
  std::vector<Moments> m;
  moments_of(x, s, m);
  for (int64_t c = 0; c < s.c; ++c) {
    mean[c] = static_cast<T>(m[c].mean);
    invstd[c] = static_cast<T>(invstd_of(m[c], eps));
  }
}

template <typename T>
void welford_stats(const WelfordStatsArgs<T>& a) {
  const T* x = a.x;
  const BatchShape& s = a.s;
  double* out = a.summary;
  std::vector<Moments> m;
  moments_of(x, s, m);
  const double count = static_cast<double>(s.count());
  for (int64_t c = 0; c < s.c; ++c) {
    out[3 * c] = count;
    out[3 * c + 1] = m[c].mean;
    out[3 * c + 2] = m[c].m2;
  }
}

template <typename T>
void moments(const MomentsArgs<T>& a) {
  const T* x = a.x;
  const BatchShape& s = a.s;
  T *mean = a.mean, *var = a.var;
  std::vector<Moments> m;
  moments_of(x, s, m);
  for (int64_t c = 0; c < s.c; ++c) {
    mean[c] = static_cast<T>(m[c].mean);
    var[c] = static_cast<T>(stats::unbiased_var(m[c].n, m[c].m2));
  }
}

template <typename T>
void elemt(const ElemtArgs<T>& a) {
  const T *x = a.x, *mean = a.mean, *invstd = a.invstd, *weight = a.weight, *bias = a.bias;
  const BatchShape& s = a.s;
  T* y = a.y;
  Affine<T> f(s.c);
  for (int64_t c = 0; c < s.c; ++c) set_affine(f, c, static_cast<double>(mean[c]), static_cast<double>(invstd[c]), weight, bias);
  affine_pass(x, y, s, f);
}

template <typename T>
void forward_inference(const ForwardInferenceArgs<T>& a) {
  const T *x = a.x, *running_mean = a.running_mean, *running_var = a.running_var, *weight = a.weight, *bias = a.bias;
  const BatchShape& s = a.s;
  const double eps = a.eps;
  T* y = a.y;
  Affine<T> f(s.c);
  for (int64_t c = 0; c < s.c; ++c)
    set_affine(f, c, static_cast<double>(running_mean[c]), 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps), weight, bias);
  affine_pass(x, y, s, f);
}

// Everything per channel that follows from the moments of channels
// [c0, c1), each of `count` values: the affine transform, the saved
// statistics, the running statistics, with statistics.h's invstd,
// unbiased variance and running update (as welford_finalize and CUDA's
// finalize apply them one channel at a time). Loops over arrays, so the
// square roots and divisions vectorize.
template <typename T>
void finish_channels(int64_t c0, int64_t c1, double count, const double* mean, const double* m2, double eps,
                     double momentum, const T* weight, const T* bias, Affine<T>& f, T* save_mean, T* save_invstd,
                     T* running_mean, T* running_var) {
  T* shift = f.shift.data();
  T* scale = f.scale.data();
  for (int64_t c = c0; c < c1; ++c) {
    shift[c] = static_cast<T>(mean[c]);
    save_mean[c] = shift[c];
  }
  if (bias) std::copy(bias + c0, bias + c1, f.offset.data() + c0);
  else std::fill(f.offset.data() + c0, f.offset.data() + c1, T(0));
  // An empty batch has invstd 0 and leaves the running statistics alone, as ATen does.
  if (count == 0) {
    std::fill(scale + c0, scale + c1, T(0));
    std::fill(save_invstd + c0, save_invstd + c1, T(0));
    return;
  }
  for (int64_t c = c0; c < c1; ++c) {
    const double is = stats::invstd(m2[c] / count, eps);
    save_invstd[c] = static_cast<T>(is);
    scale[c] = static_cast<T>(weight ? is * static_cast<double>(weight[c]) : is);
  }
  if (running_mean) {
    for (int64_t c = c0; c < c1; ++c)
      running_mean[c] = static_cast<T>(stats::running_update(static_cast<double>(running_mean[c]), mean[c], momentum));
  }
  if (running_var) {
    for (int64_t c = c0; c < c1; ++c) {
      const double unbiased = stats::unbiased_var(count, m2[c]);
      running_var[c] = static_cast<T>(stats::running_update(static_cast<double>(running_var[c]), unbiased, momentum));
    }
  }
}

template <typename T>
void forward_training(const ForwardTrainingArgs<T>& a) {
  const T *x = a.x, *weight = a.weight, *bias = a.bias;
  const BatchShape& s = a.s;
  const double eps = a.eps, momentum = a.momentum;
  T *running_mean = a.running_mean, *running_var = a.running_var, *y = a.y, *save_mean = a.save_mean,
    *save_invstd = a.save_invstd;
  const int64_t C = s.c;
  Affine<T> f(C);
  const double count = static_cast<double>(s.count());
  auto finish = [&](int64_t c0, int64_t c1, const double* mean, const double* m2) {
    bool finite = true;
    for (int64_t c = c0; c < c1; ++c) finite = finite && std::isfinite(mean[c]) && std::isfinite(m2[c]);
    if (!finite && count > 0) {
      std::vector<double> fm(mean, mean + c1), fv(m2, m2 + c1);
      for (int64_t c = c0; c < c1; ++c)
        if (!std::isfinite(fm[c]) || !std::isfinite(fv[c])) two_pass_moments(x, s, c, fm[c], fv[c]);
      finish_channels(c0, c1, count, fm.data(), fv.data(), eps, momentum, weight, bias, f, save_mean, save_invstd,
                      running_mean, running_var);
      return;
    }
    finish_channels(c0, c1, count, mean, m2, eps, momentum, weight, bias, f, save_mean, save_invstd, running_mean,
                    running_var);
  };
  if (s.numel() == 0) {
    const std::vector<double> zero(C, 0.0);
    finish(0, C, zero.data(), zero.data());
    return;
  }
  const int nt = threads_for(s.numel());
  const bool stream = s.numel() * static_cast<int64_t>(sizeof(T)) > stream_bytes();
  if (const int64_t w = panel_width<T>(s, nt)) {
    // Each panel's statistics, then its normalization while it is in cache.
    const int64_t rows = s.n * s.inner;
    Buffer<double> mean(C), m2(C);
    for_panels(nt, C, w, stream, [&](int64_t c0, int64_t c1) {
      panel_moments(x, C, rows, c0, c1, mean.data(), m2.data());
      finish(c0, c1, mean.data(), m2.data());
      panel_affine(x, y, C, rows, c0, c1, f, stream, rows_blocked<T>(s));
    });
  } else if (s.rows()) {
    // One parallel region: each thread's rows' statistics, its share of the
    // per-channel merge, then the same rows' normalization while they are
    // in its cache.
    const int64_t rows = s.n * s.inner;
    Buffer<double> part(nt * 2 * C);  // a thread with no rows leaves its part unread
    std::vector<double> counts(nt);
    parallel_region(nt, [&] {
      const int t = omp_get_thread_num();
      int64_t r0, r1, c0, c1;
      thread_rows_moments(x, C, rows, nt, t, part.data(), counts, r0, r1);
#pragma omp barrier
      channel_range(C, nt, t, c0, c1);
      merge_parts(part.data(), counts, nt, C, c0, c1);
      finish(c0, c1, part.data(), part.data() + C);
#pragma omp barrier
      rows_affine_range(x, y, C, C, r0, r1, f.shift.data(), f.scale.data(), f.offset.data(), stream,
                        rows_blocked<T>(s));
      if (stream) SYNCBN_STORE_FENCE();
    });
  } else if (C >= nt) {
    // Each thread's channels in turn: a channel's statistics, then its
    // normalization from cache while the next channel's sums are taken.
    Buffer<double> mean(C), m2(C);
    parallel_region(nt, [&] {
      int64_t c0, c1;
      channel_range(C, nt, omp_get_thread_num(), c0, c1);
      Moments m = c0 < c1 ? channel_moments(x, s, c0) : Moments{};
      for (int64_t c = c0; c < c1; ++c) {
        mean[c] = m.mean;
        m2[c] = m.m2;
        finish(c, c + 1, mean.data(), m2.data());
        if (c + 1 < c1) m = planar_affine_then_moments(x, y, s, c, f, stream, c + 1);
        else planar_affine_channel(x, y, s, c, f, stream);
      }
      if (stream) SYNCBN_STORE_FENCE();
    });
  } else {
    std::vector<Moments> m;
    planar_moments(x, s, m);
    std::vector<double> mean(C), m2(C);
    for (int64_t c = 0; c < C; ++c) {
      mean[c] = m[c].mean;
      m2[c] = m[c].m2;
    }
    finish(0, C, mean.data(), m2.data());
    affine_pass(x, y, s, f);
  }
}

template <typename T>
void backward_reduce(const BackwardReduceArgs<T>& a) {
  const T *dy = a.dy, *x = a.x, *mean = a.mean, *invstd = a.invstd;
  const BatchShape& s = a.s;
  T *sum_dy = a.sum_dy, *sum_dy_xmu = a.sum_dy_xmu, *grad_weight = a.grad_weight, *grad_bias = a.grad_bias;
  std::vector<double> sg, sgx;
  grad_sums(dy, x, s, mean, sg, sgx);
  for (int64_t c = 0; c < s.c; ++c) {
    if (sum_dy) sum_dy[c] = static_cast<T>(sg[c]);
    if (sum_dy_xmu) sum_dy_xmu[c] = static_cast<T>(sgx[c]);
    if (grad_weight) grad_weight[c] = static_cast<T>(sgx[c] * static_cast<double>(invstd[c]));
    if (grad_bias) grad_bias[c] = static_cast<T>(sg[c]);
  }
}

template <typename T>
void backward_elemt(const BackwardElemtArgs<T>& a) {
  const T *dy = a.dy, *x = a.x, *mean = a.mean, *invstd = a.invstd, *weight = a.weight, *sum_dy = a.sum_dy,
          *sum_dy_xmu = a.sum_dy_xmu;
  const BatchShape& s = a.s;
  const double total_count = a.total_count;
  T* dx = a.dx;
  GradCoef<T> g(s.c);
  const double inv_n = total_count > 0 ? 1.0 / total_count : 0.0;
  for (int64_t c = 0; c < s.c; ++c) {
    const double is = static_cast<double>(invstd[c]);
    g.mean[c] = mean[c];
    g.mean_dy[c] = static_cast<T>(static_cast<double>(sum_dy[c]) * inv_n);
    g.proj[c] = static_cast<T>(static_cast<double>(sum_dy_xmu[c]) * inv_n * is * is);
    g.scale[c] = static_cast<T>(is * (weight ? static_cast<double>(weight[c]) : 1.0));
  }
  grad_input_pass(dy, x, dx, s, g);
}

// Training backward: the channel sums and grad input (see backward()).
template <typename T>
void backward_training(const T* dy, const T* x, const BatchShape& s, const T* weight, const T* mean,
                       const std::vector<double>& is, double count, T* dx, bool param_grads, std::vector<double>& sg,
                       std::vector<double>& sgx) {
  const int64_t C = s.c;
  const bool training = true;
  GradCoef<T> g(C);
  // The coefficients of channels [c0, c1); branches outside the loops, so
  // the divisions vectorize.
  auto coefficients = [&](int64_t c0, int64_t c1) {
    std::copy(mean + c0, mean + c1, g.mean.data() + c0);
    for (int64_t c = c0; c < c1; ++c) g.scale[c] = static_cast<T>(weight ? is[c] * static_cast<double>(weight[c]) : is[c]);
    if (training && count > 0) {
      for (int64_t c = c0; c < c1; ++c) {
        g.mean_dy[c] = static_cast<T>(sg[c] / count);
        g.proj[c] = static_cast<T>(sgx[c] / count * is[c] * is[c]);
      }
    } else {
      std::fill(g.mean_dy.data() + c0, g.mean_dy.data() + c1, T(0));
      std::fill(g.proj.data() + c0, g.proj.data() + c1, T(0));
    }
  };
  const bool need_sums = training || param_grads;
  const int nt = threads_for(s.numel());
  const bool stream = s.numel() * static_cast<int64_t>(sizeof(T)) > stream_bytes();
  const int64_t w = dx && need_sums && s.numel() > 0 ? panel_width<T>(s, nt) : 0;
  if (w > 0) {
    // Each panel's sums, coefficients, then grad input while it is in cache.
    const int64_t rows = s.n * s.inner;
    for_panels(nt, C, w, stream, [&](int64_t c0, int64_t c1) {
      panel_grad_sums(dy, x, C, rows, c0, c1, mean, rows_blocked<T>(s), sg.data(), sgx.data());
      coefficients(c0, c1);
      panel_grad_input(dy, x, dx, C, rows, c0, c1, g, stream, rows_blocked<T>(s));
    });
  } else if (dx && need_sums && s.rows() && s.numel() > 0) {
    // One parallel region: each thread's rows' sums, the per-channel
    // coefficients, then the same rows' grad input while they are in cache.
    const int64_t rows = s.n * s.inner;
    std::vector<double> part(static_cast<size_t>(nt) * 2 * C, 0.0);
    parallel_region(nt, [&] {
      const int t = omp_get_thread_num();
      int64_t r0, r1;
      row_range(rows, tile_rows(C), nt, t, r0, r1);
      rows_grad_sums_range(dy, x, C, C, r0, r1, mean, rows_blocked<T>(s), &part[static_cast<size_t>(t) * 2 * C]);
#pragma omp barrier
      int64_t c0, c1;
      channel_range(C, nt, t, c0, c1);
      sum_parts(part, nt, C, c0, c1, sg.data(), sgx.data());
      coefficients(c0, c1);
#pragma omp barrier
      rows_grad_input_range(dy, x, dx, C, C, r0, r1, g.mean.data(), g.mean_dy.data(), g.proj.data(), g.scale.data(),
                            stream, rows_blocked<T>(s));
      if (stream) SYNCBN_STORE_FENCE();
    });
  } else if (dx && need_sums && C >= nt && s.numel() > 0) {
    // Each channel's sums, then its grad input while x and dy are in cache.
    parallel_writes(nt, C, stream, [&](int64_t c) {
      planar_grad_sums(dy, x, s, c, mean[c], sg[c], sgx[c]);
      coefficients(c, c + 1);
      planar_grad_input_channel(dy, x, dx, s, c, g, stream);
    });
  } else {
    if (need_sums) grad_sums(dy, x, s, mean, sg, sgx);
    coefficients(0, C);
    if (dx) grad_input_pass(dy, x, dx, s, g);
  }
}

template <typename T>
void backward(const BackwardArgs<T>& a) {
  const T *dy = a.dy, *x = a.x, *weight = a.weight, *mean = a.mean, *invstd_or_var = a.invstd_or_var;
  const BatchShape& s = a.s;
  const bool training = a.training, accumulate = a.accumulate;
  const double eps = a.eps;
  T *dx = a.dx, *grad_weight = a.grad_weight, *grad_bias = a.grad_bias;
  const int64_t C = s.c;
  std::vector<double> is(C), sg(C, 0.0), sgx(C, 0.0);
  for (int64_t c = 0; c < C; ++c) {
    const double v = static_cast<double>(invstd_or_var[c]);
    is[c] = training ? v : 1.0 / std::sqrt(v + eps);
  }
  const double count = static_cast<double>(s.count());
  if (!training) {
    // Eval: dx = dy * invstd * weight depends on dy, the weight and the
    // running variance only, as in PyTorch; the fused passes below would
    // multiply (x - mean) by a zero coefficient, and a NaN or an infinity in
    // x would leak into dx.
    if (grad_weight || grad_bias) grad_sums(dy, x, s, mean, sg, sgx);
    if (dx) {
      Affine<T> f(C);
      for (int64_t c = 0; c < C; ++c) set_affine(f, c, 0.0, is[c], weight, static_cast<const T*>(nullptr));
      affine_pass(dy, dx, s, f);
    }
  } else {
    backward_training(dy, x, s, weight, mean, is, count, dx, grad_weight || grad_bias, sg, sgx);
  }
  for (int64_t c = 0; c < C; ++c) {
    if (grad_weight) {
      const T gw = static_cast<T>(sgx[c] * is[c]);
      grad_weight[c] = accumulate ? grad_weight[c] + gw : gw;
    }
    if (grad_bias) {
      const T gb = static_cast<T>(sg[c]);
      grad_bias[c] = accumulate ? grad_bias[c] + gb : gb;
    }
  }
}

// This build's bulk kernels into the op table (batch_norm.cpp picks the
// build once and adds the per-channel ops).
template <typename T>
void fill(Ops<T>& ops) {
  ops.stats = &stats<T>;
  ops.welford_stats = &welford_stats<T>;
  ops.moments = &moments<T>;
  ops.elemt = &elemt<T>;
  ops.forward_inference = &forward_inference<T>;
  ops.forward_training = &forward_training<T>;
  ops.backward_reduce = &backward_reduce<T>;
  ops.backward_elemt = &backward_elemt<T>;
  ops.backward = &backward<T>;
}

template void fill<float>(Ops<float>&);
template void fill<double>(Ops<double>&);

}  // namespace SYNCBN_CPU_ISA
}  // namespace cpu
}  // namespace syncbn
