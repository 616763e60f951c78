// CPU entry points: the bulk kernels dispatch to the best build of
// batch_norm_impl.h for this CPU; the per-channel ops (merging statistics,
// blending running stats) and layout conversion live here.
#include "../batch_norm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "threading.h"

namespace syncbn {
namespace cpu {

// Each instruction-set build of batch_norm_impl.h fills the bulk kernels.
namespace avx2 {
template <typename T>
void fill(Ops<T>& ops);
}
namespace base {
template <typename T>
void fill(Ops<T>& ops);
}

namespace {

bool use_avx2() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;
#endif
}

// The process default (OMP_NUM_THREADS, else the cores), and a per-thread
// override: each worker thread sizes its own kernels.
std::atomic<int> g_default_threads{0};
thread_local int t_threads = 0;

}  // namespace

int max_num_threads() {
#ifdef _OPENMP
  static const int procs = omp_get_num_procs();
#else
  static const int procs = 1;
#endif
  return std::max(64, 4 * procs);
}

int get_num_threads() {
  if (t_threads > 0) return t_threads;
  const int d = g_default_threads.load(std::memory_order_relaxed);
  // OMP_NUM_THREADS=100000 would make libgomp fail to create its team (an
  // exit, or a crash), so the default is held to the same bound.
  return std::min(max_num_threads(), d > 0 ? d : std::max(1, omp_get_max_threads()));
}

void set_num_threads(int n) { t_threads = std::min(max_num_threads(), std::max(1, n)); }

const char* isa() { return use_avx2() ? "avx2" : "baseline"; }

namespace {

// Mean and invstd of channel `ch` from merged (n, mean, m2), and the running
// stats' move towards the mean and unbiased variance. Empty: zeros, no move.
template <typename T>
void store_stats(int64_t ch, double n, double avg, double m2, double eps, double momentum, T* mean, T* invstd,
                 T* running_mean, T* running_var) {
  if (!(n > 0)) {
    mean[ch] = T(0);
    invstd[ch] = T(0);
    return;
  }
  mean[ch] = static_cast<T>(avg);
  invstd[ch] = static_cast<T>(1.0 / std::sqrt(m2 / n + eps));
  if (running_mean)
    running_mean[ch] = static_cast<T>(momentum * avg + (1.0 - momentum) * static_cast<double>(running_mean[ch]));
  if (running_var)
    running_var[ch] = static_cast<T>(momentum * m2 / (n - 1.0) + (1.0 - momentum) * static_cast<double>(running_var[ch]));
}

}  // namespace

template <typename T>
void gather_stats_with_counts(const GatherStatsWithCountsArgs<T>& a) {
  const T *means = a.means, *invstds = a.invstds;
  const double* counts = a.counts;
  const int64_t world = a.world, c = a.c;
  for (int64_t ch = 0; ch < c; ++ch) {
    // Chan et al.'s pairwise merge of (count, mean, M2), one worker at a time.
    double n = 0.0, avg = 0.0, m2 = 0.0;
    for (int64_t w = 0; w < world; ++w) {
      const double cnt = counts[w];
      if (!(cnt > 0)) continue;
      const double m = static_cast<double>(means[w * c + ch]);
      const double is = static_cast<double>(invstds[w * c + ch]);
      const double var = 1.0 / (is * is) - a.eps;
      const double total = n + cnt;
      const double delta = m - avg;
      avg += delta * cnt / total;
      m2 += var * cnt + delta * delta * n * cnt / total;
      n = total;
    }
    store_stats(ch, n, avg, m2, a.eps, a.momentum, a.mean, a.invstd, a.running_mean, a.running_var);
  }
}

template <typename T>
void welford_finalize(const WelfordFinalizeArgs<T>& a) {
  const double* summary = a.summary;
  for (int64_t ch = 0; ch < a.c; ++ch) {
    store_stats(ch, summary[3 * ch], summary[3 * ch + 1], summary[3 * ch + 2], a.eps, a.momentum, a.mean, a.invstd,
                a.running_mean, a.running_var);
  }
}

template <typename T>
void blend_stats(const BlendStatsArgs<T>& a) {
  const T *mean_a = a.mean_a, *var_a = a.var_a, *mean_b = a.mean_b, *var_b = a.var_b, *running_mean = a.running_mean,
          *running_var = a.running_var;
  const double m = a.momentum, var_scale = a.var_scale;
  for (int64_t ch = 0; ch < a.c; ++ch) {
    double mean = static_cast<double>(mean_a[ch]);
    double var = static_cast<double>(var_a[ch]);
    if (mean_b) mean = (mean + static_cast<double>(mean_b[ch])) * 0.5;
    if (var_b) var = (var + static_cast<double>(var_b[ch])) * 0.5;
    const double rm = running_mean ? static_cast<double>(running_mean[ch]) : 0.0;
    const double rv = running_var ? static_cast<double>(running_var[ch]) : 0.0;
    a.out_mean[ch] = static_cast<T>(m * mean + (1.0 - m) * rm);
    a.out_var[ch] = static_cast<T>(m * var * var_scale + (1.0 - m) * rv);
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
  parallel_region(nt, [&] {
#pragma omp for schedule(static)
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
  });
}

}  // namespace

void convert_memory_format(const void* src, void* dst, int64_t n, int64_t c, int64_t inner, int elem_size,
                           bool to_channels_last) {
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

namespace {

template <typename T>
Ops<T> make_ops() {
  Ops<T> ops{};
  if (use_avx2()) avx2::fill(ops);
  else base::fill(ops);
  ops.gather_stats_with_counts = &gather_stats_with_counts<T>;
  ops.welford_finalize = &welford_finalize<T>;
  ops.blend_stats = &blend_stats<T>;
  return ops;
}

}  // namespace

template <typename T>
const Ops<T>& ops() {
  static const Ops<T> table = make_ops<T>();
  return table;
}

template const Ops<float>& ops<float>();
template const Ops<double>& ops<double>();

}  // namespace cpu
}  // namespace syncbn
