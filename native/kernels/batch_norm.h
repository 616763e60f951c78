// Kernel entry points for batch normalization. Compute only: raw pointers and
// shapes in, results out. Nothing here knows about Node or communication.
//
// Every op sees its input as (N, C, inner) with inner = product of the spatial
// dims, stored either N,C,inner ("contiguous") or N,inner,C ("channels last").
// Per-channel arrays (weight, bias, mean, invstd, running stats) have C values.
// Optional pointers may be null: weight = 1, bias = 0, no running stats.
#pragma once

#include <cstdint>

#include "dtype.h"

// BatchShape's helpers are used by the CUDA kernels too.
#ifdef __CUDACC__
#define SYNCBN_HOST_DEVICE __host__ __device__
#else
#define SYNCBN_HOST_DEVICE
#endif

namespace syncbn {

struct BatchShape {
  int64_t n = 0;
  int64_t c = 0;
  int64_t inner = 1;
  bool channels_last = false;

  SYNCBN_HOST_DEVICE int64_t count() const { return n * inner; }  // values reduced per channel
  SYNCBN_HOST_DEVICE int64_t numel() const { return n * c * inner; }
  // A (N, C) batch, or any batch with inner == 1, has the channels-last layout
  // whatever its nominal format, and is reduced row by row.
  SYNCBN_HOST_DEVICE bool rows() const { return channels_last || inner == 1; }
};

// ---- the op table -------------------------------------------------------------
// Each op's arguments, stated once. T is the element type of the batch
// arrays (x, y, dy, dx): float, double, BFloat16 or Float16 for the CPU
// kernels, whose per-channel arrays are opmath_t<T> (float for the 16-bit
// types, see dtype.h); void for the CUDA kernels, which take the dtype beside
// and the same convention. Optional pointers may be null.
// The CPU table (cpu::Ops) and the CUDA entry points (cuda/batch_norm_cuda.h)
// take these structs, and the addon fills them from named arguments.

// mean and invstd = 1 / sqrt(biased var + eps) of the local batch.
template <typename T>
struct StatsArgs {
  const T* x;
  BatchShape s;
  double eps;
  opmath_t<T>* mean;
  opmath_t<T>* invstd;
};

// Merges per-worker (mean, invstd, count) rows, `world` of them, into the
// global mean and invstd; when running stats are given they move by `momentum`
// towards the global mean and unbiased variance.
template <typename T>
struct GatherStatsWithCountsArgs {
  const opmath_t<T>* means;  // world x c
  const opmath_t<T>* invstds;  // world x c
  const double* counts;
  int64_t world;
  int64_t c;
  double momentum;
  double eps;
  opmath_t<T>* mean;
  opmath_t<T>* invstd;
  opmath_t<T>* running_mean;  // optional
  opmath_t<T>* running_var;   // optional
};

// y = (x - mean) * invstd * weight + bias
template <typename T>
struct ElemtArgs {
  const T* x;
  BatchShape s;
  const opmath_t<T>* mean;
  const opmath_t<T>* invstd;
  const opmath_t<T>* weight;  // optional
  const opmath_t<T>* bias;    // optional
  T* y;
};

// sum_dy = sum(dy), sum_dy_xmu = sum(dy * (x - mean)); grad_weight =
// sum_dy_xmu * invstd and grad_bias = sum_dy. Every output is optional.
template <typename T>
struct BackwardReduceArgs {
  const T* dy;
  const T* x;
  BatchShape s;
  const opmath_t<T>* mean;
  const opmath_t<T>* invstd;
  opmath_t<T>* sum_dy;
  opmath_t<T>* sum_dy_xmu;
  opmath_t<T>* grad_weight;
  opmath_t<T>* grad_bias;
};

// dx from globally reduced sums over `total_count` values per channel.
template <typename T>
struct BackwardElemtArgs {
  const T* dy;
  const T* x;
  BatchShape s;
  const opmath_t<T>* mean;
  const opmath_t<T>* invstd;
  const opmath_t<T>* weight;  // optional
  const opmath_t<T>* sum_dy;
  const opmath_t<T>* sum_dy_xmu;
  double total_count;
  T* dx;
};

// Fused single-worker training forward: batch stats, running-stat update
// (unbiased variance, factor `momentum`), normalization.
template <typename T>
struct ForwardTrainingArgs {
  const T* x;
  BatchShape s;
  const opmath_t<T>* weight;  // optional
  const opmath_t<T>* bias;    // optional
  double eps;
  double momentum;
  opmath_t<T>* running_mean;  // optional, updated in place
  opmath_t<T>* running_var;   // optional, updated in place
  T* y;
  opmath_t<T>* save_mean;
  opmath_t<T>* save_invstd;
};

// Normalization with the running statistics.
template <typename T>
struct ForwardInferenceArgs {
  const T* x;
  BatchShape s;
  const opmath_t<T>* running_mean;
  const opmath_t<T>* running_var;
  const opmath_t<T>* weight;  // optional
  const opmath_t<T>* bias;    // optional
  double eps;
  T* y;
};

// Fused backward. training: mean/invstd_or_var are the saved batch stats and
// dx takes the full derivative through them; otherwise they are running mean
// and running var, and invstd = 1/sqrt(var + eps) is a constant. Any of dx,
// grad_weight, grad_bias may be null; with `accumulate` the grads are added.
template <typename T>
struct BackwardArgs {
  const T* dy;
  const T* x;
  BatchShape s;
  const opmath_t<T>* weight;  // optional
  const opmath_t<T>* mean;
  const opmath_t<T>* invstd_or_var;
  bool training;
  double eps;
  T* dx;
  opmath_t<T>* grad_weight;
  opmath_t<T>* grad_bias;
  bool accumulate;
};

// Per channel (count, mean, m2 = sum of squared deviations) in double,
// written as summary[3c], summary[3c+1], summary[3c+2]: the summary that
// workers merge exactly (Chan et al.) to get the statistics of their
// combined batches.
template <typename T>
struct WelfordStatsArgs {
  const T* x;
  BatchShape s;
  double* summary;
};

// Global mean and invstd from merged (count, mean, m2) summaries; running
// stats (when given) move by `momentum` towards mean and m2 / (count - 1).
template <typename T>
struct WelfordFinalizeArgs {
  const double* summary;  // 3 * c
  int64_t c;
  double eps;
  double momentum;
  opmath_t<T>* mean;
  opmath_t<T>* invstd;
  opmath_t<T>* running_mean;  // optional
  opmath_t<T>* running_var;   // optional
};

// SyncBatchNorm's merge on the device (CUDA only; the host backends merge in
// their Welford all-reduce): `world` ranks' summaries, rank-major (world x c
// x 3 doubles, as an all-gather of welford_stats leaves them), merged in rank
// order, so every rank computes the same bits; then as welford_finalize,
// except that the running stats move only when the merged count exceeds 1
// (below it the caller refuses the batch). *total_count gets the merged
// count of channel 0, which every channel shares.
template <typename T>
struct WelfordGatherArgs {
  const double* summaries;  // world x c x 3
  int64_t world;
  int64_t c;
  double eps;
  double momentum;
  opmath_t<T>* mean;
  opmath_t<T>* invstd;
  opmath_t<T>* running_mean;  // optional
  opmath_t<T>* running_var;   // optional
  double* total_count;
};

// dst[i] += src[i] over `count` per-channel values: a gradient accumulated
// into an existing .grad (CUDA only; the CPU adds on the host).
template <typename T>
struct AccumulateArgs {
  const opmath_t<T>* src;
  opmath_t<T>* dst;
  int64_t count;
};

// Batch mean and unbiased variance (divisor count - 1) of every channel.
template <typename T>
struct MomentsArgs {
  const T* x;
  BatchShape s;
  opmath_t<T>* mean;
  opmath_t<T>* var;
};

// Per-channel blend of statistics with running ones:
//   out_mean = m * avg(mean_a, mean_b) + (1 - m) * running_mean
//   out_var  = m * avg(var_a, var_b) * var_scale + (1 - m) * running_var
// where avg is the value of a alone when b is null. out may alias running.
template <typename T>
struct BlendStatsArgs {
  int64_t c;
  double momentum;
  const opmath_t<T>* mean_a;
  const opmath_t<T>* var_a;
  const opmath_t<T>* mean_b;  // optional
  const opmath_t<T>* var_b;   // optional
  double var_scale;
  const opmath_t<T>* running_mean;  // optional
  const opmath_t<T>* running_var;   // optional
  opmath_t<T>* out_mean;
  opmath_t<T>* out_var;
};

namespace cpu {

// The CPU kernels of every op for element type T (float, double, BFloat16,
// Float16). ops<T>() is filled once, on first use, from the build of
// batch_norm_impl.h for this CPU's instruction set (avx2 or baseline); the
// per-channel ops (gather_stats_with_counts, welford_finalize, blend_stats)
// are the same in both.
template <typename T>
struct Ops {
  void (*stats)(const StatsArgs<T>&);
  void (*gather_stats_with_counts)(const GatherStatsWithCountsArgs<T>&);
  void (*elemt)(const ElemtArgs<T>&);
  void (*backward_reduce)(const BackwardReduceArgs<T>&);
  void (*backward_elemt)(const BackwardElemtArgs<T>&);
  void (*forward_training)(const ForwardTrainingArgs<T>&);
  void (*forward_inference)(const ForwardInferenceArgs<T>&);
  void (*backward)(const BackwardArgs<T>&);
  void (*welford_stats)(const WelfordStatsArgs<T>&);
  void (*welford_finalize)(const WelfordFinalizeArgs<T>&);
  void (*moments)(const MomentsArgs<T>&);
  void (*blend_stats)(const BlendStatsArgs<T>&);
};

template <typename T>
const Ops<T>& ops();

// Re-lays an (N, C, inner) array between the two memory formats; `elem_size`
// bytes per element (2, 4 or 8), so it serves every dtype.
void convert_memory_format(const void* src, void* dst, int64_t n, int64_t c, int64_t inner,
                           int elem_size, bool to_channels_last);

// Threads of the calling thread's kernels: its own setting, else the process
// default (OMP_NUM_THREADS, else the number of cores).
int get_num_threads();
// Threads beyond this (4x the cores, at least 64) only risk libgomp failing to
// create its team, which ends the process; set_num_threads clamps to it.
int max_num_threads();
void set_num_threads(int n);

// The instruction set the bulk kernels run with ("avx2" or "baseline").
const char* isa();

}  // namespace cpu
}  // namespace syncbn
