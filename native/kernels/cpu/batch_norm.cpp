// CPU batch normalization kernels (OpenMP).
//
// Two traversals cover both memory formats. "Blocks": contiguous N,C,inner
// storage is N*C runs of `inner` values, each of one channel; blocks are
// spread over threads whatever C is, so few channels still use every core.
// "Rows": channels-last storage (and any batch with inner == 1) is N*inner
// rows of C values; threads take row ranges and keep C partial sums each.
//
// Sums are accumulated in double and statistics use two passes (mean, then
// squared deviations), so float32 inputs with a mean far from zero keep their
// variance. Partial sums are combined in a fixed order: results do not depend
// on scheduling, only on the thread count.
#include "../batch_norm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_thread_num() { return 0; }
static inline int omp_get_max_threads() { return 1; }
#endif

namespace syncbn {
namespace cpu {

namespace {

// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelGrain = 1 << 15;

std::atomic<int> g_num_threads{0};

int threads_for(int64_t work) {
  if (work < kParallelGrain) return 1;
  return get_num_threads();
}

// Per-channel sums of K quantities into out[k * C + c].
// op.block(c, begin, len, acc) adds one channel's contiguous run into acc[0..K);
// op.row(begin, acc) adds one row of C values into acc[k * C + c].
template <int K, typename Op>
void reduce_channels(const BatchShape& s, const Op& op, double* out) {
  const int64_t C = s.c;
  std::fill(out, out + K * C, 0.0);
  if (s.numel() == 0) return;
  const int nt = threads_for(s.numel());
  if (s.rows()) {
    const int64_t rows = s.n * s.inner;
    const size_t width = static_cast<size_t>(K * C);
    std::vector<double> part(static_cast<size_t>(nt) * width, 0.0);
#pragma omp parallel num_threads(nt)
    {
      double* acc = part.data() + static_cast<size_t>(omp_get_thread_num()) * width;
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) op.row(r * C, acc);
    }
    for (int t = 0; t < nt; ++t) {
      const double* p = part.data() + static_cast<size_t>(t) * width;
      for (size_t i = 0; i < width; ++i) out[i] += p[i];
    }
  } else {
    const int64_t blocks = s.n * C;
    std::vector<double> part(static_cast<size_t>(blocks) * K, 0.0);
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t b = 0; b < blocks; ++b) op.block(b % C, b * s.inner, s.inner, &part[b * K]);
    for (int64_t b = 0; b < blocks; ++b)
      for (int k = 0; k < K; ++k) out[k * C + b % C] += part[b * K + k];
  }
}

// Element-wise pass: op.block(c, begin, len) or op.row(begin) over every value.
template <typename Op>
void map_channels(const BatchShape& s, const Op& op) {
  if (s.numel() == 0) return;
  const int nt = threads_for(s.numel());
  if (s.rows()) {
    const int64_t rows = s.n * s.inner;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r = 0; r < rows; ++r) op.row(r * s.c);
  } else {
    const int64_t blocks = s.n * s.c;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t b = 0; b < blocks; ++b) op.block(b % s.c, b * s.inner, s.inner);
  }
}

template <typename T>
struct SumOp {
  const T* x;
  int64_t c;
  void block(int64_t, int64_t begin, int64_t len, double* acc) const {
    const T* p = x + begin;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < len; ++i) sum += static_cast<double>(p[i]);
    acc[0] += sum;
  }
  void row(int64_t begin, double* acc) const {
    const T* p = x + begin;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) acc[j] += static_cast<double>(p[j]);
  }
};

template <typename T>
struct SquaredDeviationOp {
  const T* x;
  const double* mean;
  int64_t c;
  void block(int64_t ch, int64_t begin, int64_t len, double* acc) const {
    const T* p = x + begin;
    const double m = mean[ch];
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < len; ++i) {
      const double d = static_cast<double>(p[i]) - m;
      sum += d * d;
    }
    acc[0] += sum;
  }
  void row(int64_t begin, double* acc) const {
    const T* p = x + begin;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) {
      const double d = static_cast<double>(p[j]) - mean[j];
      acc[j] += d * d;
    }
  }
};

// sum(dy) and sum(dy * (x - mean)) together, one pass over dy and x.
template <typename T>
struct GradSumsOp {
  const T* dy;
  const T* x;
  const double* mean;
  int64_t c;
  void block(int64_t ch, int64_t begin, int64_t len, double* acc) const {
    const T* g = dy + begin;
    const T* p = x + begin;
    const double m = mean[ch];
    double sg = 0.0, sgx = 0.0;
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t i = 0; i < len; ++i) {
      const double gi = static_cast<double>(g[i]);
      sg += gi;
      sgx += gi * (static_cast<double>(p[i]) - m);
    }
    acc[0] += sg;
    acc[1] += sgx;
  }
  void row(int64_t begin, double* acc) const {
    const T* g = dy + begin;
    const T* p = x + begin;
    double* acc_xmu = acc + c;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) {
      const double gj = static_cast<double>(g[j]);
      acc[j] += gj;
      acc_xmu[j] += gj * (static_cast<double>(p[j]) - mean[j]);
    }
  }
};

// out = (in - shift) * scale + offset, per channel.
template <typename T>
struct AffineOp {
  const T* in;
  T* out;
  const T* shift;
  const T* scale;
  const T* offset;
  int64_t c;
  void block(int64_t ch, int64_t begin, int64_t len) const {
    const T* p = in + begin;
    T* q = out + begin;
    const T m = shift[ch], a = scale[ch], b = offset[ch];
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) q[i] = (p[i] - m) * a + b;
  }
  void row(int64_t begin) const {
    const T* p = in + begin;
    T* q = out + begin;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) q[j] = (p[j] - shift[j]) * scale[j] + offset[j];
  }
};

// dx = (dy - mean_dy - (x - mean) * proj) * scale, per channel.
template <typename T>
struct GradInputOp {
  const T* dy;
  const T* x;
  T* dx;
  const T* mean;
  const T* mean_dy;
  const T* proj;
  const T* scale;
  int64_t c;
  void block(int64_t ch, int64_t begin, int64_t len) const {
    const T* g = dy + begin;
    const T* p = x + begin;
    T* q = dx + begin;
    const T m = mean[ch], md = mean_dy[ch], k = proj[ch], a = scale[ch];
#pragma omp simd
    for (int64_t i = 0; i < len; ++i) q[i] = (g[i] - md - (p[i] - m) * k) * a;
  }
  void row(int64_t begin) const {
    const T* g = dy + begin;
    const T* p = x + begin;
    T* q = dx + begin;
#pragma omp simd
    for (int64_t j = 0; j < c; ++j) q[j] = (g[j] - mean_dy[j] - (p[j] - mean[j]) * proj[j]) * scale[j];
  }
};

// Batch mean and biased variance of every channel, in double.
template <typename T>
void batch_moments(const T* x, const BatchShape& s, std::vector<double>& mean,
                   std::vector<double>& var) {
  const int64_t C = s.c;
  mean.assign(C, 0.0);
  var.assign(C, 0.0);
  const double count = static_cast<double>(s.count());
  if (count == 0) return;
  reduce_channels<1>(s, SumOp<T>{x, C}, mean.data());
  for (int64_t c = 0; c < C; ++c) mean[c] /= count;
  reduce_channels<1>(s, SquaredDeviationOp<T>{x, mean.data(), C}, var.data());
  for (int64_t c = 0; c < C; ++c) var[c] /= count;
}

template <typename T>
void normalize(const T* x, const BatchShape& s, const T* mean, const std::vector<double>& invstd,
               const T* weight, const T* bias, T* y) {
  const int64_t C = s.c;
  std::vector<T> scale(C), offset(C);
  for (int64_t c = 0; c < C; ++c) {
    scale[c] = static_cast<T>(invstd[c] * (weight ? static_cast<double>(weight[c]) : 1.0));
    offset[c] = bias ? bias[c] : T(0);
  }
  map_channels(s, AffineOp<T>{x, y, mean, scale.data(), offset.data(), C});
}

}  // namespace

int get_num_threads() {
  int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : std::max(1, omp_get_max_threads());
}

void set_num_threads(int n) { g_num_threads.store(std::max(1, n), std::memory_order_relaxed); }

template <typename T>
void stats(const T* x, const BatchShape& s, double eps, T* mean, T* invstd) {
  std::vector<double> m, v;
  batch_moments(x, s, m, v);
  const bool empty = s.count() == 0;
  for (int64_t c = 0; c < s.c; ++c) {
    mean[c] = static_cast<T>(m[c]);
    invstd[c] = empty ? T(0) : static_cast<T>(1.0 / std::sqrt(v[c] + eps));
  }
}

template <typename T>
void gather_stats_with_counts(const T* means, const T* invstds, const double* counts, int64_t world,
                              int64_t c, double momentum, double eps, T* mean, T* invstd,
                              T* running_mean, T* running_var) {
  for (int64_t ch = 0; ch < c; ++ch) {
    // Chan et al.'s pairwise merge of (count, mean, M2), one worker at a time.
    double n = 0.0, avg = 0.0, m2 = 0.0;
    for (int64_t w = 0; w < world; ++w) {
      const double cnt = counts[w];
      if (!(cnt > 0)) continue;
      const double m = static_cast<double>(means[w * c + ch]);
      const double is = static_cast<double>(invstds[w * c + ch]);
      const double var = 1.0 / (is * is) - eps;
      const double total = n + cnt;
      const double delta = m - avg;
      avg += delta * cnt / total;
      m2 += var * cnt + delta * delta * n * cnt / total;
      n = total;
    }
    if (n == 0) {
      mean[ch] = T(0);
      invstd[ch] = T(0);
      continue;
    }
    mean[ch] = static_cast<T>(avg);
    invstd[ch] = static_cast<T>(1.0 / std::sqrt(m2 / n + eps));
    if (running_mean)
      running_mean[ch] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_mean[ch]) +
                                        momentum * avg);
    if (running_var)
      running_var[ch] = static_cast<T>((1.0 - momentum) * static_cast<double>(running_var[ch]) +
                                       momentum * m2 / (n - 1.0));
  }
}

template <typename T>
void elemt(const T* x, const BatchShape& s, const T* mean, const T* invstd, const T* weight,
           const T* bias, T* y) {
  std::vector<double> is(s.c);
  for (int64_t c = 0; c < s.c; ++c) is[c] = static_cast<double>(invstd[c]);
  normalize(x, s, mean, is, weight, bias, y);
}

template <typename T>
void backward_reduce(const T* dy, const T* x, const BatchShape& s, const T* mean, const T* invstd,
                     T* sum_dy, T* sum_dy_xmu, T* grad_weight, T* grad_bias) {
  const int64_t C = s.c;
  std::vector<double> m(C), sums(2 * C);
  for (int64_t c = 0; c < C; ++c) m[c] = static_cast<double>(mean[c]);
  reduce_channels<2>(s, GradSumsOp<T>{dy, x, m.data(), C}, sums.data());
  for (int64_t c = 0; c < C; ++c) {
    if (sum_dy) sum_dy[c] = static_cast<T>(sums[c]);
    if (sum_dy_xmu) sum_dy_xmu[c] = static_cast<T>(sums[C + c]);
    if (grad_weight) grad_weight[c] = static_cast<T>(sums[C + c] * static_cast<double>(invstd[c]));
    if (grad_bias) grad_bias[c] = static_cast<T>(sums[c]);
  }
}

template <typename T>
void backward_elemt(const T* dy, const T* x, const BatchShape& s, const T* mean, const T* invstd,
                    const T* weight, const T* sum_dy, const T* sum_dy_xmu, double total_count,
                    T* dx) {
  const int64_t C = s.c;
  std::vector<T> mean_dy(C), proj(C), scale(C);
  const double inv_n = total_count > 0 ? 1.0 / total_count : 0.0;
  for (int64_t c = 0; c < C; ++c) {
    const double is = static_cast<double>(invstd[c]);
    mean_dy[c] = static_cast<T>(static_cast<double>(sum_dy[c]) * inv_n);
    proj[c] = static_cast<T>(static_cast<double>(sum_dy_xmu[c]) * inv_n * is * is);
    scale[c] = static_cast<T>(is * (weight ? static_cast<double>(weight[c]) : 1.0));
  }
  map_channels(s, GradInputOp<T>{dy, x, dx, mean, mean_dy.data(), proj.data(), scale.data(), C});
}

template <typename T>
void forward_training(const T* x, const BatchShape& s, const T* weight, const T* bias, double eps,
                      double momentum, T* running_mean, T* running_var, T* y, T* save_mean,
                      T* save_invstd) {
  const int64_t C = s.c;
  const int64_t count = s.count();
  std::vector<double> m, v, is(C);
  batch_moments(x, s, m, v);
  for (int64_t c = 0; c < C; ++c) {
    is[c] = count == 0 ? 0.0 : 1.0 / std::sqrt(v[c] + eps);
    save_mean[c] = static_cast<T>(m[c]);
    save_invstd[c] = static_cast<T>(is[c]);
  }
  // An empty batch leaves the running statistics alone, as ATen does.
  if (count > 0) {
    const double unbias = count > 1 ? static_cast<double>(count) / (count - 1) : INFINITY;
    for (int64_t c = 0; c < C; ++c) {
      if (running_mean)
        running_mean[c] = static_cast<T>(momentum * m[c] +
                                         (1.0 - momentum) * static_cast<double>(running_mean[c]));
      if (running_var)
        running_var[c] = static_cast<T>(momentum * v[c] * unbias +
                                        (1.0 - momentum) * static_cast<double>(running_var[c]));
    }
  }
  normalize(x, s, save_mean, is, weight, bias, y);
}

template <typename T>
void forward_inference(const T* x, const BatchShape& s, const T* running_mean,
                       const T* running_var, const T* weight, const T* bias, double eps, T* y) {
  std::vector<double> is(s.c);
  for (int64_t c = 0; c < s.c; ++c)
    is[c] = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
  normalize(x, s, running_mean, is, weight, bias, y);
}

template <typename T>
void backward(const T* dy, const T* x, const BatchShape& s, const T* weight, const T* mean,
              const T* invstd_or_var, bool training, double eps, T* dx, T* grad_weight,
              T* grad_bias, bool accumulate) {
  const int64_t C = s.c;
  std::vector<double> is(C), m(C);
  for (int64_t c = 0; c < C; ++c) {
    const double v = static_cast<double>(invstd_or_var[c]);
    is[c] = training ? v : 1.0 / std::sqrt(v + eps);
    m[c] = static_cast<double>(mean[c]);
  }
  std::vector<double> sums(2 * C, 0.0);
  if (training || grad_weight || grad_bias)
    reduce_channels<2>(s, GradSumsOp<T>{dy, x, m.data(), C}, sums.data());
  const double* sum_dy = sums.data();
  const double* sum_dy_xmu = sums.data() + C;
  for (int64_t c = 0; c < C; ++c) {
    if (grad_weight) {
      const T gw = static_cast<T>(sum_dy_xmu[c] * is[c]);
      grad_weight[c] = accumulate ? grad_weight[c] + gw : gw;
    }
    if (grad_bias) {
      const T gb = static_cast<T>(sum_dy[c]);
      grad_bias[c] = accumulate ? grad_bias[c] + gb : gb;
    }
  }
  if (!dx) return;
  std::vector<T> mean_dy(C, T(0)), proj(C, T(0)), scale(C);
  const double count = static_cast<double>(s.count());
  for (int64_t c = 0; c < C; ++c) {
    scale[c] = static_cast<T>(is[c] * (weight ? static_cast<double>(weight[c]) : 1.0));
    if (training && count > 0) {
      mean_dy[c] = static_cast<T>(sum_dy[c] / count);
      proj[c] = static_cast<T>(sum_dy_xmu[c] / count * is[c] * is[c]);
    }
  }
  map_channels(s, GradInputOp<T>{dy, x, dx, mean, mean_dy.data(), proj.data(), scale.data(), C});
}

template <typename T>
void welford_stats(const T* x, const BatchShape& s, double* out) {
  std::vector<double> m, v;
  batch_moments(x, s, m, v);
  const double count = static_cast<double>(s.count());
  for (int64_t c = 0; c < s.c; ++c) {
    out[3 * c] = count;
    out[3 * c + 1] = m[c];
    out[3 * c + 2] = v[c] * count;
  }
}

template <typename T>
void welford_finalize(const double* summary, int64_t c, double eps, double momentum, T* mean,
                      T* invstd, T* running_mean, T* running_var) {
  for (int64_t ch = 0; ch < c; ++ch) {
    const double n = summary[3 * ch], avg = summary[3 * ch + 1], m2 = summary[3 * ch + 2];
    if (!(n > 0)) {
      mean[ch] = T(0);
      invstd[ch] = T(0);
      continue;
    }
    mean[ch] = static_cast<T>(avg);
    invstd[ch] = static_cast<T>(1.0 / std::sqrt(m2 / n + eps));
    if (running_mean)
      running_mean[ch] = static_cast<T>(momentum * avg + (1.0 - momentum) * static_cast<double>(running_mean[ch]));
    if (running_var)
      running_var[ch] = static_cast<T>(momentum * m2 / (n - 1.0) +
                                       (1.0 - momentum) * static_cast<double>(running_var[ch]));
  }
}

template <typename T>
void moments(const T* x, const BatchShape& s, T* mean, T* var) {
  std::vector<double> m, v;
  batch_moments(x, s, m, v);
  const double count = static_cast<double>(s.count());
  const double unbias = count > 1 ? count / (count - 1) : NAN;
  for (int64_t c = 0; c < s.c; ++c) {
    mean[c] = static_cast<T>(m[c]);
    var[c] = static_cast<T>(v[c] * unbias);
  }
}

template <typename T>
void blend_stats(int64_t c, double m, const T* mean_a, const T* var_a, const T* mean_b,
                 const T* var_b, double var_scale, const T* running_mean, const T* running_var,
                 T* out_mean, T* out_var) {
  for (int64_t ch = 0; ch < c; ++ch) {
    double mean = static_cast<double>(mean_a[ch]);
    double var = static_cast<double>(var_a[ch]);
    if (mean_b) mean = (mean + static_cast<double>(mean_b[ch])) * 0.5;
    if (var_b) var = (var + static_cast<double>(var_b[ch])) * 0.5;
    const double rm = running_mean ? static_cast<double>(running_mean[ch]) : 0.0;
    const double rv = running_var ? static_cast<double>(running_var[ch]) : 0.0;
    out_mean[ch] = static_cast<T>(m * mean + (1.0 - m) * rm);
    out_var[ch] = static_cast<T>(m * var * var_scale + (1.0 - m) * rv);
  }
}

namespace {

template <typename E>
void transpose_batches(const E* src, E* dst, int64_t n, int64_t rows, int64_t cols) {
  // Each batch item is a rows x cols matrix; tiles keep both sides in cache.
  constexpr int64_t kTile = 32;
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  const int64_t col_tiles = (cols + kTile - 1) / kTile;
  const int64_t tiles = n * row_tiles * col_tiles;
  const int nt = threads_for(n * rows * cols);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t b = t / (row_tiles * col_tiles);
    const int64_t r0 = (t / col_tiles) % row_tiles * kTile;
    const int64_t c0 = t % col_tiles * kTile;
    const E* s = src + b * rows * cols;
    E* d = dst + b * rows * cols;
    const int64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = c0; c < c1; ++c) d[c * rows + r] = s[r * cols + c];
  }
}

}  // namespace

void convert_memory_format(const void* src, void* dst, int64_t n, int64_t c, int64_t inner,
                           int elem_size, bool to_channels_last) {
  const int64_t rows = to_channels_last ? c : inner;
  const int64_t cols = to_channels_last ? inner : c;
  switch (elem_size) {
    case 2:
      transpose_batches(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), n, rows, cols);
      break;
    case 4:
      transpose_batches(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), n, rows, cols);
      break;
    case 8:
      transpose_batches(static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), n, rows, cols);
      break;
    default:
      break;
  }
}

#define SYNCBN_INSTANTIATE(T)                                                                     \
  template void stats<T>(const T*, const BatchShape&, double, T*, T*);                            \
  template void gather_stats_with_counts<T>(const T*, const T*, const double*, int64_t, int64_t,  \
                                            double, double, T*, T*, T*, T*);                      \
  template void elemt<T>(const T*, const BatchShape&, const T*, const T*, const T*, const T*, T*); \
  template void backward_reduce<T>(const T*, const T*, const BatchShape&, const T*, const T*, T*, \
                                   T*, T*, T*);                                                   \
  template void backward_elemt<T>(const T*, const T*, const BatchShape&, const T*, const T*,      \
                                  const T*, const T*, const T*, double, T*);                      \
  template void forward_training<T>(const T*, const BatchShape&, const T*, const T*, double,      \
                                    double, T*, T*, T*, T*, T*);                                  \
  template void forward_inference<T>(const T*, const BatchShape&, const T*, const T*, const T*,   \
                                     const T*, double, T*);                                       \
  template void backward<T>(const T*, const T*, const BatchShape&, const T*, const T*, const T*,  \
                            bool, double, T*, T*, T*, bool);                                      \
  template void moments<T>(const T*, const BatchShape&, T*, T*);                                  \
  template void welford_stats<T>(const T*, const BatchShape&, double*);                           \
  template void welford_finalize<T>(const double*, int64_t, double, double, T*, T*, T*, T*);      \
  template void blend_stats<T>(int64_t, double, const T*, const T*, const T*, const T*, double,   \
                               const T*, const T*, T*, T*);

SYNCBN_INSTANTIATE(float)
SYNCBN_INSTANTIATE(double)

}  // namespace cpu
}  // namespace syncbn
