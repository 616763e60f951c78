// Per-channel values of the CPU kernels: the moments (count, mean, m2) of a
// channel or part of one and their merges (statistics.h's, shared with CUDA
// and the collectives), and the per-channel parameters that the
// element-wise passes read.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>

#include "../batch_norm.h"
#include "../statistics.h"
#include "half.h"

#ifndef SYNCBN_CPU_ISA
#error "define SYNCBN_CPU_ISA before including the CPU kernels (see batch_norm_impl.h)"
#endif

namespace syncbn {
namespace cpu {
namespace SYNCBN_CPU_ISA {
namespace detail {

// (count, mean, m2) of a channel or a part of one; merged with
// statistics.h's merge, the one the CUDA kernels and the collectives use.
// Value-initialize (Moments{}): the shared type has no member initializers.
using Moments = stats::Welford<double>;

inline void merge(Moments& a, const Moments& b) { a = stats::merge(a, b); }

// Channels [c0, c1) of (nb, mb, m2b) merged into (na, ma, m2a), as merge()
// does one channel, with the same chan_step. Rows give every channel the
// same count, so the weights are computed once and the per-channel work is
// a multiply-add that vectorizes (a scalar merge per channel was 10% of a
// 256x1024 forward).
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
template <typename S>
void two_pass_moments(const S* x, const BatchShape& s, int64_t c, double& mean, double& m2) {
  const int64_t n = s.count();
  auto at = [&](int64_t k) -> double {
    if (s.rows()) return static_cast<double>(load(x + k * s.c + c));
    return static_cast<double>(load(x + ((k / s.inner) * s.c + c) * s.inner + k % s.inner));
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

}  // namespace detail
}  // namespace SYNCBN_CPU_ISA
}  // namespace cpu
}  // namespace syncbn
