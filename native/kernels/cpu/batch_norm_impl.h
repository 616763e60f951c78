// CPU batch-norm kernels, compiled once per instruction set (see
// batch_norm_avx2.cpp and batch_norm_base.cpp; batch_norm.cpp dispatches).
// Include only from those files, with SYNCBN_CPU_ISA naming the namespace.
//
// Memory traffic is the cost: batch norm does a few flops per byte. So:
// - Contiguous (N, C, inner) data is cut into chunks of one channel that fit
//   in L2. With at least as many channels as threads, a thread takes whole
//   channels: their statistics, then their normalization (or grad input)
//   while the channel is still in cache, so x is read from memory once.
// - Channels-last rows (and any inner == 1) are cut into tiles of rows; each
//   tile's statistics come from two passes in cache, merged across tiles.
// - Large outputs are written with non-temporal stores: no read-for-ownership
//   of lines that are about to be overwritten whole.
// Statistics are stable: per chunk, the corrected two-pass algorithm
// (mean, then sums of d = x - mean and d^2, with M2 = sum d^2 - (sum d)^2 / n),
// short float blocks accumulated into double, chunks merged with Chan's
// formula in a fixed order, so results do not depend on the thread count.
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
#include <type_traits>
#include <vector>

#include "../batch_norm.h"
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
// Outputs larger than a quarter of the last-level cache bypass the cache (an output
// that fits stays there for its reader) ...
inline int64_t stream_bytes() {
  static const int64_t bytes = [] {
    // sysfs has the cache this VM sees; sysconf may report the host's.
    int64_t l3 = 0;
    if (FILE* f = std::fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r")) {
      long kib = 0;
      if (std::fscanf(f, "%ldK", &kib) == 1) l3 = int64_t(kib) << 10;
      std::fclose(f);
    }
    return l3 > 0 ? l3 / 4 : int64_t(8) << 20;
  }();
  return bytes;
}
// ...in runs at least this long: a short run would leave partly written
// lines at both ends, which cost a read-modify-write in memory.
constexpr int64_t kStreamRun = 1024;

struct Moments {
  double n = 0, mean = 0, m2 = 0;
};

inline void merge(Moments& a, const Moments& b) {
  if (!(b.n > 0)) return;
  if (!(a.n > 0)) {
    a = b;
    return;
  }
  const double n = a.n + b.n;
  const double delta = b.mean - a.mean;
  a.mean += delta * (b.n / n);
  a.m2 += b.m2 + delta * delta * (a.n * b.n / n);
  a.n = n;
}

// ---- contiguous runs -------------------------------------------------------

// Reductions keep kLanes independent partial sums (several vector
// registers), so adds are not serialized on one accumulator's latency.
constexpr int64_t kLanes = 32;

// Accumulators that persist across the runs of a chunk: lanes summed in T,
// flushed to double every kFlush values per lane, so short runs (a 14x14
// plane is 196 values) pay no horizontal reduction each.
constexpr int64_t kFlush = kBlock;

template <typename T, int K>
struct Lanes {
  T acc[K][kLanes] = {};
  T tail[K] = {};
  double total[K] = {};
  int64_t filled = 0;  // values per lane since the last flush

  void flush() {
    for (int k = 0; k < K; ++k) {
      T s = tail[k];
      for (int64_t j = 0; j < kLanes; ++j) s += acc[k][j];
      total[k] += static_cast<double>(s);
      std::fill(acc[k], acc[k] + kLanes, T(0));
      tail[k] = T(0);
    }
    filled = 0;
  }
};

// Adds a run to lanes: op(index) returns the K values to add for element i.
template <typename T, int K, typename Op>
inline void lanes_add(Lanes<T, K>& L, int64_t len, Op op) {
  int64_t i = 0;
  for (; i + kLanes <= len; i += kLanes) {
    if (L.filled >= kFlush) L.flush();
    op.block(i, L.acc);
    ++L.filled;
  }
  for (; i < len; ++i) op.one(i, L.tail);
}

template <typename T>
struct SumRun {
  const T* p;
  void block(int64_t i, T (*acc)[kLanes]) const {
#pragma omp simd
    for (int64_t j = 0; j < kLanes; ++j) acc[0][j] += p[i + j];
  }
  void one(int64_t i, T* t) const { t[0] += p[i]; }
};

template <typename T>
struct DevRun {
  const T* p;
  T m;
  void block(int64_t i, T (*acc)[kLanes]) const {
#pragma omp simd
    for (int64_t j = 0; j < kLanes; ++j) {
      const T d = p[i + j] - m;
      acc[0][j] += d;
      acc[1][j] += d * d;
    }
  }
  void one(int64_t i, T* t) const {
    const T d = p[i] - m;
    t[0] += d;
    t[1] += d * d;
  }
};

template <typename T>
struct GradRun {
  const T* g;
  const T* x;
  T m;
  void block(int64_t i, T (*acc)[kLanes]) const {
#pragma omp simd
    for (int64_t j = 0; j < kLanes; ++j) {
      acc[0][j] += g[i + j];
      acc[1][j] += g[i + j] * (x[i + j] - m);
    }
  }
  void one(int64_t i, T* t) const {
    t[0] += g[i];
    t[1] += g[i] * (x[i] - m);
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
      for (; i < len && (reinterpret_cast<uintptr_t>(y + i) & 31); ++i) y[i] = (x[i] - m) * a + b;
      const __m256 vm = _mm256_set1_ps(m), va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
      for (; i + 8 <= len; i += 8) {
        const __m256 v = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        _mm256_stream_ps(y + i, _mm256_add_ps(_mm256_mul_ps(v, va), vb));
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
      for (; i < len && (reinterpret_cast<uintptr_t>(dx + i) & 31); ++i) dx[i] = (g[i] - md - (x[i] - m) * k) * a;
      const __m256 vm = _mm256_set1_ps(m), vmd = _mm256_set1_ps(md), vk = _mm256_set1_ps(k), va = _mm256_set1_ps(a);
      for (; i + 8 <= len; i += 8) {
        const __m256 xm = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vk);
        const __m256 r = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(g + i), vmd), xm);
        _mm256_stream_ps(dx + i, _mm256_mul_ps(r, va));
      }
    }
  }
#endif
#pragma omp simd
  for (int64_t j = i; j < len; ++j) dx[j] = (g[j] - md - (x[j] - m) * k) * a;
}

// ---- per-channel parameters ------------------------------------------------

// What the element-wise passes need per channel, in T.
template <typename T>
struct Affine {
  std::vector<T> shift, scale, offset;
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
  std::vector<T> mean, mean_dy, proj, scale;
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
  Moments r;
  const int64_t len = k.i1 - k.i0;
  r.n = static_cast<double>((k.n1 - k.n0) * len);
  if (r.n == 0) return r;
  Lanes<T, 1> sum;
  for (int64_t n = k.n0; n < k.n1; ++n) lanes_add(sum, len, SumRun<T>{x + (n * s.c + k.c) * s.inner + k.i0});
  sum.flush();
  const T m = static_cast<T>(sum.total[0] / r.n);
  Lanes<T, 2> dev;
  for (int64_t n = k.n0; n < k.n1; ++n) lanes_add(dev, len, DevRun<T>{x + (n * s.c + k.c) * s.inner + k.i0, m});
  dev.flush();
  const double s1 = dev.total[0], s2 = dev.total[1];
  r.mean = static_cast<double>(m) + s1 / r.n;
  r.m2 = std::max(0.0, s2 - s1 * s1 / r.n);
  return r;
}

template <typename T>
Moments channel_moments(const T* x, const BatchShape& s, int64_t c) {
  std::vector<Chunk> chunks;
  channel_chunks(s, c, chunks);
  Moments m;
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
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < s.c; ++c) out[c] = channel_moments(x, s, c);
    return;
  }
  std::vector<Chunk> chunks;
  for (int64_t c = 0; c < s.c; ++c) channel_chunks(s, c, chunks);
  std::vector<Moments> part(chunks.size());
#pragma omp parallel for num_threads(nt) schedule(static)
  for (size_t k = 0; k < chunks.size(); ++k) part[k] = chunk_moments(x, s, chunks[k]);
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
  Lanes<T, 2> L;
  for (int64_t n = 0; n < s.n; ++n) {
    const int64_t off = (n * s.c + c) * s.inner;
    lanes_add(L, s.inner, GradRun<T>{dy + off, x + off, mean});
  }
  L.flush();
  sg += L.total[0];
  sgx += L.total[1];
}

template <typename T>
void planar_grad_input_channel(const T* dy, const T* x, T* dx, const BatchShape& s, int64_t c, const GradCoef<T>& g, bool stream) {
  for (int64_t n = 0; n < s.n; ++n) {
    const int64_t off = (n * s.c + c) * s.inner;
    run_grad_input(dy + off, x + off, dx + off, s.inner, g.mean[c], g.mean_dy[c], g.proj[c], g.scale[c], stream);
  }
}

// ---- channels-last rows -----------------------------------------------------

// Rows per tile: about kChunk values, and at least 64 rows so that merging a
// tile's per-channel statistics stays cheap next to computing them.
int64_t tile_rows(int64_t c) { return std::max<int64_t>(64, kChunk / c); }

// Two passes over a tile of rows in cache, merged into `acc` (C entries).
template <typename T>
void tile_moments(const T* x, int64_t rows, int64_t C, std::vector<double>& sum, std::vector<T>& m,
                  std::vector<double>& s1, std::vector<double>& s2, std::vector<T>& a, std::vector<T>& b,
                  Moments* acc) {
  std::fill(sum.begin(), sum.end(), 0.0);
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t r1 = std::min(rows, r0 + kBlock);
    std::fill(a.begin(), a.end(), T(0));
    for (int64_t r = r0; r < r1; ++r) {
      const T* p = x + r * C;
      T* ap = a.data();
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) ap[c] += p[c];
    }
    for (int64_t c = 0; c < C; ++c) sum[c] += static_cast<double>(a[c]);
  }
  const double n = static_cast<double>(rows);
  for (int64_t c = 0; c < C; ++c) m[c] = static_cast<T>(sum[c] / n);
  std::fill(s1.begin(), s1.end(), 0.0);
  std::fill(s2.begin(), s2.end(), 0.0);
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t r1 = std::min(rows, r0 + kBlock);
    std::fill(a.begin(), a.end(), T(0));
    std::fill(b.begin(), b.end(), T(0));
    for (int64_t r = r0; r < r1; ++r) {
      const T* p = x + r * C;
      T* ap = a.data();
      T* bp = b.data();
      const T* mp = m.data();
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) {
        const T d = p[c] - mp[c];
        ap[c] += d;
        bp[c] += d * d;
      }
    }
    for (int64_t c = 0; c < C; ++c) {
      s1[c] += static_cast<double>(a[c]);
      s2[c] += static_cast<double>(b[c]);
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    Moments t;
    t.n = n;
    t.mean = static_cast<double>(m[c]) + s1[c] / n;
    t.m2 = std::max(0.0, s2[c] - s1[c] * s1[c] / n);
    merge(acc[c], t);
  }
}

// Splits `rows` into `nt` contiguous ranges of whole tiles.
inline void row_range(int64_t rows, int64_t tile, int nt, int t, int64_t& r0, int64_t& r1) {
  const int64_t tiles = (rows + tile - 1) / tile;
  const int64_t per = (tiles + nt - 1) / nt;
  r0 = std::min(rows, t * per * tile);
  r1 = std::min(rows, (t + 1) * per * tile);
}

template <typename T>
void rows_moments(const T* x, const BatchShape& s, std::vector<Moments>& out) {
  const int64_t C = s.c, rows = s.n * s.inner, tile = tile_rows(C);
  const int nt = threads_for(s.numel());
  std::vector<Moments> part(static_cast<size_t>(nt) * C);
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    int64_t r0, r1;
    row_range(rows, tile, nt, t, r0, r1);
    std::vector<double> sum(C), s1(C), s2(C);
    std::vector<T> m(C), a(C), b(C);
    for (int64_t r = r0; r < r1; r += tile)
      tile_moments(x + r * C, std::min(tile, r1 - r), C, sum, m, s1, s2, a, b, &part[static_cast<size_t>(t) * C]);
  }
  out.assign(C, Moments{});
  for (int t = 0; t < nt; ++t)
    for (int64_t c = 0; c < C; ++c) merge(out[c], part[static_cast<size_t>(t) * C + c]);
}

template <typename T>
void rows_affine(const T* x, T* y, const BatchShape& s, const Affine<T>& f, bool stream) {
  (void)stream;  // used only where AVX streaming stores exist
  const int64_t C = s.c, rows = s.n * s.inner;
  const int nt = threads_for(s.numel());
  const T* m = f.shift.data();
  const T* a = f.scale.data();
  const T* b = f.offset.data();
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = x + r * C;
    T* q = y + r * C;
#if defined(__AVX__)
    if constexpr (std::is_same_v<T, float>) {
      if (stream && C % 8 == 0 && (reinterpret_cast<uintptr_t>(q) & 31) == 0) {
        for (int64_t c = 0; c < C; c += 8) {
          const __m256 v = _mm256_sub_ps(_mm256_loadu_ps(p + c), _mm256_loadu_ps(m + c));
          _mm256_stream_ps(q + c, _mm256_add_ps(_mm256_mul_ps(v, _mm256_loadu_ps(a + c)), _mm256_loadu_ps(b + c)));
        }
        continue;
      }
    }
#endif
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) q[c] = (p[c] - m[c]) * a[c] + b[c];
  }
}

template <typename T>
void rows_grad_sums(const T* dy, const T* x, const BatchShape& s, const T* mean, std::vector<double>& sg,
                    std::vector<double>& sgx) {
  const int64_t C = s.c, rows = s.n * s.inner, tile = tile_rows(C);
  const int nt = threads_for(s.numel());
  std::vector<double> part(static_cast<size_t>(nt) * 2 * C, 0.0);
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num();
    int64_t r0, r1;
    row_range(rows, tile, nt, t, r0, r1);
    double* acc = &part[static_cast<size_t>(t) * 2 * C];
    std::vector<T> a(C), b(C);
    for (int64_t q0 = r0; q0 < r1; q0 += kBlock) {
      const int64_t q1 = std::min(r1, q0 + kBlock);
      std::fill(a.begin(), a.end(), T(0));
      std::fill(b.begin(), b.end(), T(0));
      for (int64_t r = q0; r < q1; ++r) {
        const T* g = dy + r * C;
        const T* p = x + r * C;
        T* ap = a.data();
        T* bp = b.data();
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
  sg.assign(C, 0.0);
  sgx.assign(C, 0.0);
  for (int t = 0; t < nt; ++t)
    for (int64_t c = 0; c < C; ++c) {
      sg[c] += part[static_cast<size_t>(t) * 2 * C + c];
      sgx[c] += part[static_cast<size_t>(t) * 2 * C + C + c];
    }
}

template <typename T>
void rows_grad_input(const T* dy, const T* x, T* dx, const BatchShape& s, const GradCoef<T>& g, bool stream) {
  (void)stream;  // used only where AVX streaming stores exist
  const int64_t C = s.c, rows = s.n * s.inner;
  const int nt = threads_for(s.numel());
  const T* m = g.mean.data();
  const T* md = g.mean_dy.data();
  const T* k = g.proj.data();
  const T* a = g.scale.data();
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const T* gp = dy + r * C;
    const T* p = x + r * C;
    T* q = dx + r * C;
#if defined(__AVX__)
    if constexpr (std::is_same_v<T, float>) {
      if (stream && C % 8 == 0 && (reinterpret_cast<uintptr_t>(q) & 31) == 0) {
        for (int64_t c = 0; c < C; c += 8) {
          const __m256 xm = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(p + c), _mm256_loadu_ps(m + c)), _mm256_loadu_ps(k + c));
          const __m256 r2 = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(gp + c), _mm256_loadu_ps(md + c)), xm);
          _mm256_stream_ps(q + c, _mm256_mul_ps(r2, _mm256_loadu_ps(a + c)));
        }
        continue;
      }
    }
#endif
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) q[c] = (gp[c] - md[c] - (p[c] - m[c]) * k[c]) * a[c];
  }
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
}

template <typename T>
void affine_pass(const T* x, T* y, const BatchShape& s, const Affine<T>& f) {
  if (s.numel() == 0) return;
  const bool stream = s.numel() * static_cast<int64_t>(sizeof(T)) > stream_bytes();
  if (s.rows()) {
    rows_affine(x, y, s, f, stream);
  } else {
    const int nt = threads_for(s.numel());
    const int64_t blocks = s.n * s.c;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t k = 0; k < blocks; ++k) {
      const int64_t off = k * s.inner;
      const int64_t c = k % s.c;
      run_affine(x + off, y + off, s.inner, f.shift[c], f.scale[c], f.offset[c], stream);
    }
  }
  if (stream) SYNCBN_STORE_FENCE();
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
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t c = 0; c < s.c; ++c) planar_grad_sums(dy, x, s, c, mean[c], sg[c], sgx[c]);
}

template <typename T>
void grad_input_pass(const T* dy, const T* x, T* dx, const BatchShape& s, const GradCoef<T>& g) {
  if (s.numel() == 0) return;
  const bool stream = s.numel() * static_cast<int64_t>(sizeof(T)) > stream_bytes();
  if (s.rows()) {
    rows_grad_input(dy, x, dx, s, g, stream);
  } else {
    const int nt = threads_for(s.numel());
    const int64_t blocks = s.n * s.c;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t k = 0; k < blocks; ++k) {
      const int64_t off = k * s.inner;
      const int64_t c = k % s.c;
      run_grad_input(dy + off, x + off, dx + off, s.inner, g.mean[c], g.mean_dy[c], g.proj[c], g.scale[c], stream);
    }
  }
  if (stream) SYNCBN_STORE_FENCE();
}

double invstd_of(const Moments& m, double eps) { return m.n > 0 ? 1.0 / std::sqrt(m.m2 / m.n + eps) : 0.0; }

}  // namespace detail

using namespace detail;

// ---- entry points -------------------------------------------------------------

template <typename T>
void stats(const T* x, const BatchShape& s, double eps, T* mean, T* invstd) {
  std::vector<Moments> m;
  moments_of(x, s, m);
  for (int64_t c = 0; c < s.c; ++c) {
    mean[c] = static_cast<T>(m[c].mean);
    invstd[c] = static_cast<T>(invstd_of(m[c], eps));
  }
}

template <typename T>
void welford_stats(const T* x, const BatchShape& s, double* out) {
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
void moments(const T* x, const BatchShape& s, T* mean, T* var) {
  std::vector<Moments> m;
  moments_of(x, s, m);
  for (int64_t c = 0; c < s.c; ++c) {
    mean[c] = static_cast<T>(m[c].mean);
    var[c] = static_cast<T>(m[c].n > 1 ? m[c].m2 / (m[c].n - 1) : NAN);
  }
}

template <typename T>
void elemt(const T* x, const BatchShape& s, const T* mean, const T* invstd, const T* weight, const T* bias, T* y) {
  Affine<T> f(s.c);
  for (int64_t c = 0; c < s.c; ++c) set_affine(f, c, static_cast<double>(mean[c]), static_cast<double>(invstd[c]), weight, bias);
  affine_pass(x, y, s, f);
}

template <typename T>
void forward_inference(const T* x, const BatchShape& s, const T* running_mean, const T* running_var, const T* weight,
                       const T* bias, double eps, T* y) {
  Affine<T> f(s.c);
  for (int64_t c = 0; c < s.c; ++c)
    set_affine(f, c, static_cast<double>(running_mean[c]), 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps), weight, bias);
  affine_pass(x, y, s, f);
}

template <typename T>
void forward_training(const T* x, const BatchShape& s, const T* weight, const T* bias, double eps, double momentum,
                      T* running_mean, T* running_var, T* y, T* save_mean, T* save_invstd) {
  const int64_t C = s.c;
  std::vector<Moments> m(C);
  Affine<T> f(C);
  const int nt = threads_for(s.numel());
  if (!s.rows() && C >= nt && s.numel() > 0) {
    // Each channel's statistics, then its normalization while it is in cache.
    const bool stream = s.numel() * static_cast<int64_t>(sizeof(T)) > stream_bytes();
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < C; ++c) {
      m[c] = channel_moments(x, s, c);
      set_affine(f, c, m[c].mean, invstd_of(m[c], eps), weight, bias);
      planar_affine_channel(x, y, s, c, f, stream);
    }
    if (stream) SYNCBN_STORE_FENCE();
  } else {
    moments_of(x, s, m);
    for (int64_t c = 0; c < C; ++c) set_affine(f, c, m[c].mean, invstd_of(m[c], eps), weight, bias);
    affine_pass(x, y, s, f);
  }
  const double count = static_cast<double>(s.count());
  for (int64_t c = 0; c < C; ++c) {
    save_mean[c] = static_cast<T>(m[c].mean);
    save_invstd[c] = static_cast<T>(invstd_of(m[c], eps));
    // An empty batch leaves the running statistics alone, as ATen does.
    if (count == 0) continue;
    const double unbiased = count > 1 ? m[c].m2 / (count - 1) : INFINITY;
    if (running_mean) running_mean[c] = static_cast<T>(momentum * m[c].mean + (1.0 - momentum) * static_cast<double>(running_mean[c]));
    if (running_var) running_var[c] = static_cast<T>(momentum * unbiased + (1.0 - momentum) * static_cast<double>(running_var[c]));
  }
}

template <typename T>
void backward_reduce(const T* dy, const T* x, const BatchShape& s, const T* mean, const T* invstd, T* sum_dy,
                     T* sum_dy_xmu, T* grad_weight, T* grad_bias) {
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
void backward_elemt(const T* dy, const T* x, const BatchShape& s, const T* mean, const T* invstd, const T* weight,
                    const T* sum_dy, const T* sum_dy_xmu, double total_count, T* dx) {
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

template <typename T>
void backward(const T* dy, const T* x, const BatchShape& s, const T* weight, const T* mean, const T* invstd_or_var,
              bool training, double eps, T* dx, T* grad_weight, T* grad_bias, bool accumulate) {
  const int64_t C = s.c;
  std::vector<double> is(C), sg(C, 0.0), sgx(C, 0.0);
  for (int64_t c = 0; c < C; ++c) {
    const double v = static_cast<double>(invstd_or_var[c]);
    is[c] = training ? v : 1.0 / std::sqrt(v + eps);
  }
  const double count = static_cast<double>(s.count());
  GradCoef<T> g(C);
  auto coefficients = [&](int64_t c) {
    g.mean[c] = mean[c];
    g.scale[c] = static_cast<T>(is[c] * (weight ? static_cast<double>(weight[c]) : 1.0));
    if (training && count > 0) {
      g.mean_dy[c] = static_cast<T>(sg[c] / count);
      g.proj[c] = static_cast<T>(sgx[c] / count * is[c] * is[c]);
    } else {
      g.mean_dy[c] = T(0);
      g.proj[c] = T(0);
    }
  };
  const bool need_sums = training || grad_weight || grad_bias;
  const int nt = threads_for(s.numel());
  if (dx && need_sums && !s.rows() && C >= nt && s.numel() > 0) {
    // Each channel's sums, then its grad input while x and dy are in cache.
    const bool stream = s.numel() * static_cast<int64_t>(sizeof(T)) > stream_bytes();
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t c = 0; c < C; ++c) {
      planar_grad_sums(dy, x, s, c, mean[c], sg[c], sgx[c]);
      coefficients(c);
      planar_grad_input_channel(dy, x, dx, s, c, g, stream);
    }
    if (stream) SYNCBN_STORE_FENCE();
  } else {
    if (need_sums) grad_sums(dy, x, s, mean, sg, sgx);
    for (int64_t c = 0; c < C; ++c) coefficients(c);
    if (dx) grad_input_pass(dy, x, dx, s, g);
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

#define SYNCBN_INSTANTIATE_ISA(T)                                                                                   \
  template void stats<T>(const T*, const BatchShape&, double, T*, T*);                                            \
  template void welford_stats<T>(const T*, const BatchShape&, double*);                                           \
  template void moments<T>(const T*, const BatchShape&, T*, T*);                                                  \
  template void elemt<T>(const T*, const BatchShape&, const T*, const T*, const T*, const T*, T*);                \
  template void forward_inference<T>(const T*, const BatchShape&, const T*, const T*, const T*, const T*, double, \
                                     T*);                                                                         \
  template void forward_training<T>(const T*, const BatchShape&, const T*, const T*, double, double, T*, T*, T*, \
                                    T*, T*);                                                                      \
  template void backward_reduce<T>(const T*, const T*, const BatchShape&, const T*, const T*, T*, T*, T*, T*);    \
  template void backward_elemt<T>(const T*, const T*, const BatchShape&, const T*, const T*, const T*, const T*,  \
                                  const T*, double, T*);                                                          \
  template void backward<T>(const T*, const T*, const BatchShape&, const T*, const T*, const T*, bool, double, T*, \
                            T*, T*, bool);

SYNCBN_INSTANTIATE_ISA(float)
SYNCBN_INSTANTIATE_ISA(double)

#undef SYNCBN_INSTANTIATE_ISA

}  // namespace SYNCBN_CPU_ISA
}  // namespace cpu
}  // namespace syncbn
