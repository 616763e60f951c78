// CPU entry points: the bulk kernels dispatch to the best build of
// batch_norm_impl.h for this CPU; the per-channel ops (merging statistics,
// blending running stats) and layout conversion live here.
#include "../batch_norm.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../statistics.h"
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

// SYNCBN_CPU_ISA=baseline picks the baseline build on any CPU (cf. PyTorch's
// ATEN_CPU_CAPABILITY), so that one machine's tests run both builds.
bool use_avx2() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool yes = !(std::getenv("SYNCBN_CPU_ISA") && std::strcmp(std::getenv("SYNCBN_CPU_ISA"), "baseline") == 0) &&
                          __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
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
  const int d = g_default_threads.load(std::memory_order_relaxed);
  // OMP_NUM_THREADS=100000 would make libgomp fail to create its team (an
  // exit, or a crash), so the default is held to the same bound.
  const int n = t_threads > 0 ? t_threads : std::min(max_num_threads(), d > 0 ? d : std::max(1, omp_get_max_threads()));
  // OMP_THREAD_LIMIT caps every team, and a kernel needs all the threads it
  // plans for (parallel_region in threading.h).
  return std::min(n, omp_get_thread_limit());
}

void set_num_threads(int n) { t_threads = std::min(max_num_threads(), std::max(1, n)); }

const char* isa() { return use_avx2() ? "avx2" : "baseline"; }

// The merge and the finalize are native/kernels/statistics.h's, shared with
// the fused CPU kernels and the CUDA kernels, so that every path treats
// empty ranks, one value and eps 0 alike. These ops read and write only
// per-channel arrays (opmath_t<S>: float for the 16-bit element types).
template <typename S>
void gather_stats_with_counts(const GatherStatsWithCountsArgs<S>& a) {
  using T = opmath_t<S>;
  const T *means = a.means, *invstds = a.invstds;
  const double* counts = a.counts;
  const int64_t world = a.world, c = a.c;
  for (int64_t ch = 0; ch < c; ++ch) {
    // One worker at a time; a worker of count 0 is skipped by the merge.
    stats::Welford<double> all{0.0, 0.0, 0.0};
    for (int64_t w = 0; w < world; ++w) {
      const double cnt = counts[w];
      const double var = stats::var_of_invstd(static_cast<double>(invstds[w * c + ch]), a.eps);
      all = stats::merge(all, {cnt, static_cast<double>(means[w * c + ch]), var * cnt});
    }
    stats::finalize(all, a.eps, a.momentum, ch, a.mean, a.invstd, a.running_mean, a.running_var);
  }
}

template <typename S>
void welford_finalize(const WelfordFinalizeArgs<S>& a) {
  const double* summary = a.summary;
  for (int64_t ch = 0; ch < a.c; ++ch) {
    stats::finalize({summary[3 * ch], summary[3 * ch + 1], summary[3 * ch + 2]}, a.eps, a.momentum, ch, a.mean,
                    a.invstd, a.running_mean, a.running_var);
  }
}

template <typename S>
void blend_stats(const BlendStatsArgs<S>& a) {
  using T = opmath_t<S>;
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
    a.out_mean[ch] = static_cast<T>(stats::running_update(rm, mean, m));
    a.out_var[ch] = static_cast<T>(stats::running_update(rv, var * var_scale, m));
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

template <typename S>
Ops<S> make_ops() {
  Ops<S> ops{};
  if (use_avx2()) avx2::fill(ops);
  else base::fill(ops);
  ops.gather_stats_with_counts = &gather_stats_with_counts<S>;
  ops.welford_finalize = &welford_finalize<S>;
  ops.blend_stats = &blend_stats<S>;
  return ops;
}

}  // namespace

template <typename S>
const Ops<S>& ops() {
  static const Ops<S> table = make_ops<S>();
  return table;
}

template const Ops<float>& ops<float>();
template const Ops<double>& ops<double>();
template const Ops<BFloat16>& ops<BFloat16>();
template const Ops<Float16>& ops<Float16>();

}  // namespace cpu
}  // namespace syncbn
