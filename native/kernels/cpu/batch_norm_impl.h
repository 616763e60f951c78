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
//   of sums shifted by an estimate of the mean (rows.h), merged across
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
//
// Elements of type S (float, double, and the 16-bit floats, loaded into
// float and stored rounded: half.h) are computed in T = opmath_t<S>, the type
// of the per-channel arrays; sums go to double as for float.
//
// The files, by concern: simd.h (machine vectors, stores), half.h (the
// 16-bit floats' conversions), cache.h (cache sizes, prefetch),
// per_channel.h (moments, their merges, per-channel parameters), plan.h (the work split of one call, decided once), planar.h
// (passes over the contiguous layout, and the reduction engine reduce_runs),
// rows.h (passes over rows, and their one skeleton row_pass); here, the
// layout-generic passes and the entry points. Each entry point makes one
// Plan and hands it to every pass it runs.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../batch_norm.h"
#include "../statistics.h"
#include "cache.h"
#include "half.h"
#include "per_channel.h"
#include "plan.h"
#include "planar.h"
#include "rows.h"
#include "simd.h"
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

// ---- layout-generic passes --------------------------------------------------
//
// Each takes the call's plan: the same threads, panels, row ranges and
// streaming choices in every pass of one call.

template <typename S>
void moments_of(const S* x, const BatchShape& s, const Plan& p, std::vector<Moments>& out) {
  if (s.numel() == 0) {
    out.assign(s.c, Moments{});
    return;
  }
  if (p.row_layout) rows_moments(x, s, p, out);
  else planar_moments(x, s, p, out);
  for (int64_t c = 0; c < s.c; ++c)
    if (!std::isfinite(out[c].mean) || !std::isfinite(out[c].m2)) two_pass_moments(x, s, c, out[c].mean, out[c].m2);
}

// A normalization that is the whole op (inference, elemt, eval grad input),
// or the training forward's where no fused path fits: streams by
// plan.stream_alone.
template <typename S, typename T = opmath_t<S>>
void affine_pass(const S* x, S* y, const BatchShape& s, const Plan& p, const Affine<T>& f) {
  if (s.numel() == 0) return;
  const bool stream = p.stream_alone;
  if (p.row_layout) {
    rows_affine(x, y, s, p, f, stream);
    return;
  }
  parallel_writes(p.nt, s.n * s.c, stream, [&](int64_t k) {
    const int64_t off = k * s.inner;
    const int64_t c = k % s.c;
    run_affine(x + off, y + off, s.inner, f.shift[c], f.scale[c], f.offset[c], stream);
  });
}

template <typename S, typename T = opmath_t<S>>
void grad_sums(const S* dy, const S* x, const BatchShape& s, const Plan& p, const T* mean, std::vector<double>& sg,
               std::vector<double>& sgx) {
  sg.assign(s.c, 0.0);
  sgx.assign(s.c, 0.0);
  if (s.numel() == 0) return;
  if (p.row_layout) {
    rows_grad_sums(dy, x, s, p, mean, sg, sgx);
    return;
  }
  parallel_region(p.nt, [&] {
#pragma omp for schedule(static)
    for (int64_t c = 0; c < s.c; ++c) planar_grad_sums(dy, x, s, c, mean[c], sg[c], sgx[c]);
  });
}

template <typename S, typename T = opmath_t<S>>
void grad_input_pass(const S* dy, const S* x, S* dx, const BatchShape& s, const Plan& p, const GradCoef<T>& g) {
  if (s.numel() == 0) return;
  const bool stream = p.stream;
  if (p.row_layout) {
    rows_grad_input(dy, x, dx, s, p, g, stream);
    return;
  }
  parallel_writes(p.nt, s.n * s.c, stream, [&](int64_t k) {
    const int64_t off = k * s.inner;
    const int64_t c = k % s.c;
    run_grad_input(dy + off, x + off, dx + off, s.inner, g.mean[c], g.mean_dy[c], g.proj[c], g.scale[c], stream);
  });
}

double invstd_of(const Moments& m, double eps) { return m.n > 0 ? stats::invstd(m.m2 / m.n, eps) : 0.0; }

}  // namespace detail

using namespace detail;

// ---- entry points -------------------------------------------------------------

template <typename S>
void stats(const StatsArgs<S>& a) {
  using T = opmath_t<S>;
  const S* x = a.x;
  const BatchShape& s = a.s;
  const double eps = a.eps;
  T *mean = a.mean, *invstd = a.invstd;
  std::vector<Moments> m;
  moments_of(x, s, plan_for<S>(s), m);
  for (int64_t c = 0; c < s.c; ++c) {
    mean[c] = static_cast<T>(m[c].mean);
    invstd[c] = static_cast<T>(invstd_of(m[c], eps));
  }
}

template <typename S>
void welford_stats(const WelfordStatsArgs<S>& a) {
  const S* x = a.x;
  const BatchShape& s = a.s;
  double* out = a.summary;
  std::vector<Moments> m;
  moments_of(x, s, plan_for<S>(s), m);
  const double count = static_cast<double>(s.count());
  for (int64_t c = 0; c < s.c; ++c) {
    out[3 * c] = count;
    out[3 * c + 1] = m[c].mean;
    out[3 * c + 2] = m[c].m2;
  }
}

template <typename S>
void moments(const MomentsArgs<S>& a) {
  using T = opmath_t<S>;
  const S* x = a.x;
  const BatchShape& s = a.s;
  T *mean = a.mean, *var = a.var;
  std::vector<Moments> m;
  moments_of(x, s, plan_for<S>(s), m);
  for (int64_t c = 0; c < s.c; ++c) {
    mean[c] = static_cast<T>(m[c].mean);
    var[c] = static_cast<T>(stats::unbiased_var(m[c].n, m[c].m2));
  }
}

template <typename S>
void elemt(const ElemtArgs<S>& a) {
  using T = opmath_t<S>;
  const S* x = a.x;
  const T *mean = a.mean, *invstd = a.invstd, *weight = a.weight, *bias = a.bias;
  const BatchShape& s = a.s;
  S* y = a.y;
  Affine<T> f(s.c);
  for (int64_t c = 0; c < s.c; ++c) set_affine(f, c, static_cast<double>(mean[c]), static_cast<double>(invstd[c]), weight, bias);
  affine_pass(x, y, s, plan_for<S>(s), f);
}

template <typename S>
void forward_inference(const ForwardInferenceArgs<S>& a) {
  using T = opmath_t<S>;
  const S* x = a.x;
  const T *running_mean = a.running_mean, *running_var = a.running_var, *weight = a.weight, *bias = a.bias;
  const BatchShape& s = a.s;
  const double eps = a.eps;
  S* y = a.y;
  Affine<T> f(s.c);
  for (int64_t c = 0; c < s.c; ++c)
    set_affine(f, c, static_cast<double>(running_mean[c]), 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps), weight, bias);
  affine_pass(x, y, s, plan_for<S>(s), f);
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

template <typename S>
void forward_training(const ForwardTrainingArgs<S>& a) {
  using T = opmath_t<S>;
  const S* x = a.x;
  const T *weight = a.weight, *bias = a.bias;
  const BatchShape& s = a.s;
  const double eps = a.eps, momentum = a.momentum;
  S* y = a.y;
  T *running_mean = a.running_mean, *running_var = a.running_var, *save_mean = a.save_mean, *save_invstd = a.save_invstd;
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
  const Plan p = plan_for<S>(s);
  const bool stream = p.stream;
  if (p.row_layout) {
    // Panels: each panel's statistics, then its normalization while it is in
    // cache. Row ranges: each thread's rows' statistics, its share of the
    // per-channel merge, then the same rows' normalization while they are in
    // its cache.
    Buffer<double> part(p.nt * 2 * C);  // a thread with no rows leaves its part unread
    std::vector<double> counts(p.nt);
    row_pass(
        p, stream, [&](const RowBlock& b) { moments_block(x, C, b, part.data(), counts); },
        [&](int64_t c0, int64_t c1) { merge_parts(part.data(), counts, p.nt, C, c0, c1); },
        [&](int64_t c0, int64_t c1) { finish(c0, c1, part.data(), part.data() + C); },
        [&](const RowBlock& b) { affine_block(x, y, C, b, f, stream, p.blocked); });
  } else if (p.per_channel) {
    // Each thread's channels in turn: a channel's statistics, then its
    // normalization from cache while the next channel's sums are taken.
    Buffer<double> mean(C), m2(C);
    parallel_region(p.nt, [&] {
      int64_t c0, c1;
      p.channels(omp_get_thread_num(), c0, c1);
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
    planar_moments(x, s, p, m);
    std::vector<double> mean(C), m2(C);
    for (int64_t c = 0; c < C; ++c) {
      mean[c] = m[c].mean;
      m2[c] = m[c].m2;
    }
    finish(0, C, mean.data(), m2.data());
    affine_pass(x, y, s, p, f);
  }
}

template <typename S>
void backward_reduce(const BackwardReduceArgs<S>& a) {
  using T = opmath_t<S>;
  const S *dy = a.dy, *x = a.x;
  const T *mean = a.mean, *invstd = a.invstd;
  const BatchShape& s = a.s;
  T *sum_dy = a.sum_dy, *sum_dy_xmu = a.sum_dy_xmu, *grad_weight = a.grad_weight, *grad_bias = a.grad_bias;
  std::vector<double> sg, sgx;
  grad_sums(dy, x, s, plan_for<S>(s), mean, sg, sgx);
  for (int64_t c = 0; c < s.c; ++c) {
    if (sum_dy) sum_dy[c] = static_cast<T>(sg[c]);
    if (sum_dy_xmu) sum_dy_xmu[c] = static_cast<T>(sgx[c]);
    if (grad_weight) grad_weight[c] = static_cast<T>(sgx[c] * static_cast<double>(invstd[c]));
    if (grad_bias) grad_bias[c] = static_cast<T>(sg[c]);
  }
}

template <typename S>
void backward_elemt(const BackwardElemtArgs<S>& a) {
  using T = opmath_t<S>;
  const S *dy = a.dy, *x = a.x;
  const T *mean = a.mean, *invstd = a.invstd, *weight = a.weight, *sum_dy = a.sum_dy, *sum_dy_xmu = a.sum_dy_xmu;
  const BatchShape& s = a.s;
  const double total_count = a.total_count;
  S* dx = a.dx;
  GradCoef<T> g(s.c);
  const double inv_n = total_count > 0 ? 1.0 / total_count : 0.0;
  for (int64_t c = 0; c < s.c; ++c) {
    const double is = static_cast<double>(invstd[c]);
    g.mean[c] = mean[c];
    g.mean_dy[c] = static_cast<T>(static_cast<double>(sum_dy[c]) * inv_n);
    g.proj[c] = static_cast<T>(static_cast<double>(sum_dy_xmu[c]) * inv_n * is * is);
    g.scale[c] = static_cast<T>(is * (weight ? static_cast<double>(weight[c]) : 1.0));
  }
  grad_input_pass(dy, x, dx, s, plan_for<S>(s), g);
}

// Training backward: the channel sums and grad input (see backward()).
template <typename S, typename T = opmath_t<S>>
void backward_training(const S* dy, const S* x, const BatchShape& s, const Plan& p, const T* weight, const T* mean,
                       const std::vector<double>& is, double count, S* dx, bool param_grads, std::vector<double>& sg,
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
  const bool stream = p.stream;
  const bool fused = dx && need_sums && s.numel() > 0;
  if (fused && p.row_layout) {
    // Panels: each panel's sums, coefficients, then grad input while it is
    // in cache. Row ranges: each thread's rows' sums, its share of the
    // per-channel coefficients, then the same rows' grad input while they
    // are in its cache.
    std::vector<double> part(p.panel > 0 ? 0 : static_cast<size_t>(p.nt) * 2 * C, 0.0);
    row_pass(
        p, stream, [&](const RowBlock& b) { grad_sums_block(dy, x, C, b, mean, p.blocked, part, sg.data(), sgx.data()); },
        [&](int64_t c0, int64_t c1) { sum_parts(part, p.nt, C, c0, c1, sg.data(), sgx.data()); }, coefficients,
        [&](const RowBlock& b) { grad_input_block(dy, x, dx, C, b, g, stream, p.blocked); });
  } else if (fused && p.per_channel) {
    // Each channel's sums, then its grad input while x and dy are in cache.
    parallel_writes(p.nt, C, stream, [&](int64_t c) {
      planar_grad_sums(dy, x, s, c, mean[c], sg[c], sgx[c]);
      coefficients(c, c + 1);
      planar_grad_input_channel(dy, x, dx, s, c, g, stream);
    });
  } else {
    if (need_sums) grad_sums(dy, x, s, p, mean, sg, sgx);
    coefficients(0, C);
    if (dx) grad_input_pass(dy, x, dx, s, p, g);
  }
}

template <typename S>
void backward(const BackwardArgs<S>& a) {
  using T = opmath_t<S>;
  const S *dy = a.dy, *x = a.x;
  const T *weight = a.weight, *mean = a.mean, *invstd_or_var = a.invstd_or_var;
  const BatchShape& s = a.s;
  const bool training = a.training, accumulate = a.accumulate;
  const double eps = a.eps;
  S* dx = a.dx;
  T *grad_weight = a.grad_weight, *grad_bias = a.grad_bias;
  const int64_t C = s.c;
  std::vector<double> is(C), sg(C, 0.0), sgx(C, 0.0);
  for (int64_t c = 0; c < C; ++c) {
    const double v = static_cast<double>(invstd_or_var[c]);
    is[c] = training ? v : 1.0 / std::sqrt(v + eps);
  }
  const double count = static_cast<double>(s.count());
  const Plan p = plan_for<S>(s);
  if (!training) {
    // Eval: dx = dy * invstd * weight depends on dy, the weight and the
    // running variance only, as in PyTorch; the fused passes below would
    // multiply (x - mean) by a zero coefficient, and a NaN or an infinity in
    // x would leak into dx.
    if (grad_weight || grad_bias) grad_sums(dy, x, s, p, mean, sg, sgx);
    if (dx) {
      Affine<T> f(C);
      for (int64_t c = 0; c < C; ++c) set_affine(f, c, 0.0, is[c], weight, static_cast<const T*>(nullptr));
      affine_pass(dy, dx, s, p, f);
    }
  } else {
    backward_training(dy, x, s, p, weight, mean, is, count, dx, grad_weight || grad_bias, sg, sgx);
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
template <typename S>
void fill(Ops<S>& ops) {
  ops.stats = &stats<S>;
  ops.welford_stats = &welford_stats<S>;
  ops.moments = &moments<S>;
  ops.elemt = &elemt<S>;
  ops.forward_inference = &forward_inference<S>;
  ops.forward_training = &forward_training<S>;
  ops.backward_reduce = &backward_reduce<S>;
  ops.backward_elemt = &backward_elemt<S>;
  ops.backward = &backward<S>;
}

template void fill<float>(Ops<float>&);
template void fill<double>(Ops<double>&);
template void fill<BFloat16>(Ops<BFloat16>&);
template void fill<Float16>(Ops<Float16>&);

}  // namespace SYNCBN_CPU_ISA
}  // namespace cpu
}  // namespace syncbn

