// The per-channel statistics math of every backend, written once: Chan et
// al.'s merge of two (count, mean, m2) summaries, invstd, the unbiased
// variance and the running-stat update. Every function is marked for host
// and device, so the CPU kernels (cpu/), the CUDA kernels (cuda/) and the
// collectives that merge summaries on the host (comm/reduce.h) compile these
// same lines: they agree on each edge case below by construction, not because
// copies were kept in step. (That CUDA agrees is a property of the source; it
// is only compiled where no GPU is present, never run.)
//
// Edge cases, as PyTorch 1.13's CPU kernels decide them (fixtures:
// test/golden/generate_edges.py):
// - A summary of count 0 is no data: a merge skips it (SyncBatchNorm drops
//   empty ranks' statistics); finalized alone it gives mean 0 and invstd 0
//   and leaves the running stats as they were (ATen's empty batch).
// - One value per channel: the unbiased variance m2 / (n - 1) is 0/0, so
//   running_var becomes NaN, as in torch; save_invstd is 1/sqrt(eps).
// - A variance of 0 with eps 0: invstd 0, not +Inf (ATen's InvStd), so the
//   output is the bias rather than NaN.
// - A NaN or an infinity in a part: the merged mean is the plain weighted
//   mean (+-Inf or NaN, what one pass over all the data gives) and m2 NaN;
//   the difference of two infinite means would make the mean NaN.
#pragma once

#include <math.h>

#include <cstdint>

#ifndef SYNCBN_HOST_DEVICE
#ifdef __CUDACC__
#define SYNCBN_HOST_DEVICE __host__ __device__
#else
#define SYNCBN_HOST_DEVICE
#endif
#endif

namespace syncbn {
namespace stats {

// No member initializers: CUDA keeps arrays of these in __shared__ memory.
template <typename A>
struct Welford {
  A n, mean, m2;
};

template <typename A>
SYNCBN_HOST_DEVICE inline bool finite(A v) {
  return v - v == A(0);  // false for +-Inf and NaN
}

// (mean, m2) += the part (mean_b, m2_b) of weight wb = n_b / n with w =
// n_a * n_b / n: Chan's formula once the counts are known. Loops over
// channels that share their counts (CPU rows) call this with the weights
// computed once, and it vectorizes.
template <typename A>
SYNCBN_HOST_DEVICE inline void chan_step(A& mean, A& m2, A mean_b, A m2_b, A wb, A w) {
  const A delta = mean_b - mean;
  mean += delta * wb;
  m2 += m2_b + delta * delta * w;
}

// a and b merged: exact for any split of the data, and stable when the mean
// is far from zero.
template <typename A>
SYNCBN_HOST_DEVICE inline Welford<A> merge(Welford<A> a, const Welford<A>& b) {
  if (!(b.n > A(0))) return a;
  if (!(a.n > A(0))) return b;
  const A n = a.n + b.n;
  if (!finite(a.mean) || !finite(b.mean)) return {n, (a.mean * a.n + b.mean * b.n) / n, A(NAN)};
  chan_step(a.mean, a.m2, b.mean, b.m2, b.n / n, a.n * b.n / n);
  a.n = n;
  return a;
}

// 1 / sqrt(var + eps); 0 where var and eps are both 0, as ATen's InvStd.
SYNCBN_HOST_DEVICE inline double invstd(double var, double eps) {
  return var == 0.0 && eps == 0.0 ? 0.0 : 1.0 / sqrt(var + eps);
}

// The biased variance behind an invstd that invstd() wrote (its inverse).
SYNCBN_HOST_DEVICE inline double var_of_invstd(double is, double eps) {
  return is == 0.0 && eps == 0.0 ? 0.0 : 1.0 / (is * is) - eps;
}

// What running_var moves towards: m2 / (n - 1), NaN for one value (0/0).
SYNCBN_HOST_DEVICE inline double unbiased_var(double n, double m2) { return n > 1.0 ? m2 / (n - 1.0) : double(NAN); }

// A running statistic moved by `momentum` towards the batch's.
SYNCBN_HOST_DEVICE inline double running_update(double running, double batch, double momentum) {
  return momentum * batch + (1.0 - momentum) * running;
}

// Channel c's mean and invstd from its merged summary; running stats (when
// given) move towards the mean and unbiased variance. Count 0: mean 0,
// invstd 0, running stats untouched.
template <typename T>
SYNCBN_HOST_DEVICE inline void finalize(const Welford<double>& w, double eps, double momentum, int64_t c, T* mean,
                                        T* inv, T* running_mean, T* running_var) {
  if (!(w.n > 0.0)) {
    mean[c] = T(0);
    inv[c] = T(0);
    return;
  }
  mean[c] = static_cast<T>(w.mean);
  inv[c] = static_cast<T>(invstd(w.m2 / w.n, eps));
  if (running_mean) running_mean[c] = static_cast<T>(running_update(static_cast<double>(running_mean[c]), w.mean, momentum));
  if (running_var)
    running_var[c] = static_cast<T>(running_update(static_cast<double>(running_var[c]), unbiased_var(w.n, w.m2), momentum));
}

}  // namespace stats
}  // namespace syncbn
