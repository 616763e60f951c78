// CUDA batch-norm kernels. Organisation after ATen's Normalization.cuh and
// Apex's welford.cu: per-thread Welford, warp-shuffle and block merges (Chan
// et al.), then a small per-channel finalize kernel.
//
// Reductions are split across blocks: a grid of (splits x channels) for
// N,C,inner data, or (channel tiles x splits) for channels-last rows, with
// `splits` chosen from the multiprocessor count so that few channels with
// many pixels (e.g. 128x4x224x224) still fill the GPU. Each block writes a
// partial per channel to the workspace; the finalize kernel merges them.
// An empty batch launches no element kernel; finalize then writes mean 0 and
// invstd 0 and leaves running stats alone: no host synchronization.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "../statistics.h"
#include "batch_norm_cuda.h"

namespace syncbn {
namespace cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;

__host__ __device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};

// The merge, invstd and running-stat update are native/kernels/statistics.h's,
// the lines the CPU kernels and the host collectives compile too.
using stats::Welford;
using stats::merge;

template <typename A>
__device__ __forceinline__ void push(Welford<A>& w, A v) {
  w.n += A(1);
  const A d = v - w.mean;
  w.mean += d / w.n;
  w.m2 += d * (v - w.mean);
}

template <typename A>
__device__ __forceinline__ Welford<A> warp_merge(Welford<A> w) {
  for (int o = kWarp / 2; o > 0; o >>= 1) {
    Welford<A> other{__shfl_down_sync(0xffffffffu, w.n, o), __shfl_down_sync(0xffffffffu, w.mean, o),
                     __shfl_down_sync(0xffffffffu, w.m2, o)};
    w = merge(w, other);
  }
  return w;
}

template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

template <typename T>
__device__ __forceinline__ typename Acc<T>::type load(const T* p, int64_t i) {
  return static_cast<typename Acc<T>::type>(p[i]);
}

// How many blocks share one channel's reduction.
int splits_for(const BatchShape& s, int sms) {
  const int64_t per_channel = s.n * s.inner;
  if (per_channel == 0) return 1;
  const int64_t target = std::max<int64_t>(1, (int64_t(4) * sms + s.c - 1) / s.c);
  const int64_t useful = std::max<int64_t>(1, per_channel / (kThreads * 4));
  return static_cast<int>(std::min<int64_t>({target, useful, 65535}));
}

// ---- N,C,inner layout: block (split, channel) --------------------------------------

// Work units of one channel: (n, i-range) pieces, spread over the splits.
struct PlanarUnits {
  int64_t pieces;  // i-ranges per row
  int64_t piece;   // values per i-range
  int64_t units;   // n * pieces
};

__host__ __device__ inline PlanarUnits planar_units(const BatchShape& s, int splits) {
  const int64_t pieces = splits > s.n ? (splits + s.n - 1) / s.n : 1;
  const int64_t piece = (s.inner + pieces - 1) / pieces;
  return {pieces, piece, s.n * pieces};
}

template <typename T>
__global__ void planar_welford(const T* x, BatchShape s, int splits, typename Acc<T>::type* part) {
  using A = typename Acc<T>::type;
  const int64_t c = blockIdx.y;
  const PlanarUnits u = planar_units(s, splits);
  const int64_t per = (u.units + splits - 1) / splits;
  const int64_t u0 = blockIdx.x * per, u1 = imin(u.units, u0 + per);
  Welford<A> w{A(0), A(0), A(0)};
  for (int64_t k = u0; k < u1; ++k) {
    const int64_t n = k / u.pieces;
    const int64_t i0 = (k % u.pieces) * u.piece, i1 = imin(s.inner, i0 + u.piece);
    const T* row = x + (n * s.c + c) * s.inner;
    for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) push(w, load(row, i));
  }
  __shared__ Welford<A> shared[kThreads / kWarp];
  w = warp_merge(w);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) shared[warp] = w;
  __syncthreads();
  if (warp == 0) {
    w = lane < blockDim.x / kWarp ? shared[lane] : Welford<A>{A(0), A(0), A(0)};
    w = warp_merge(w);
    if (lane == 0) {
      A* p = part + (c * splits + blockIdx.x) * 3;
      p[0] = w.n;
      p[1] = w.mean;
      p[2] = w.m2;
    }
  }
}

template <typename T>
__global__ void planar_grad_sums(const T* dy, const T* x, BatchShape s, int splits,
                                 const typename Acc<T>::type* mean, typename Acc<T>::type* part) {
  using A = typename Acc<T>::type;
  const int64_t c = blockIdx.y;
  const PlanarUnits u = planar_units(s, splits);
  const int64_t per = (u.units + splits - 1) / splits;
  const int64_t u0 = blockIdx.x * per, u1 = imin(u.units, u0 + per);
  const A m = mean[c];
  A sg = A(0), sgx = A(0);
  for (int64_t k = u0; k < u1; ++k) {
    const int64_t n = k / u.pieces;
    const int64_t i0 = (k % u.pieces) * u.piece, i1 = imin(s.inner, i0 + u.piece);
    const int64_t base = (n * s.c + c) * s.inner;
    for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
      const A g = load(dy, base + i);
      sg += g;
      sgx += g * (load(x, base + i) - m);
    }
  }
  __shared__ A shared[2][kThreads / kWarp];
  sg = warp_sum(sg);
  sgx = warp_sum(sgx);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  if (lane == 0) {
    shared[0][warp] = sg;
    shared[1][warp] = sgx;
  }
  __syncthreads();
  if (warp == 0) {
    sg = lane < blockDim.x / kWarp ? shared[0][lane] : A(0);
    sgx = lane < blockDim.x / kWarp ? shared[1][lane] : A(0);
    sg = warp_sum(sg);
    sgx = warp_sum(sgx);
    if (lane == 0) {
      A* p = part + (c * splits + blockIdx.x) * 2;
      p[0] = sg;
      p[1] = sgx;
    }
  }
}

// ---- channels-last rows: block (32 channels x 8 row lanes), grid (channel tiles, splits) ----

constexpr int kRowLanes = 8;

template <typename T>
__global__ void rows_welford(const T* x, BatchShape s, int splits, typename Acc<T>::type* part) {
  using A = typename Acc<T>::type;
  const int64_t c = blockIdx.x * kWarp + threadIdx.x;
  const int64_t rows = s.n * s.inner;
  const int64_t per = (rows + splits - 1) / splits;
  const int64_t r0 = blockIdx.y * per, r1 = imin(rows, r0 + per);
  Welford<A> w{A(0), A(0), A(0)};
  if (c < s.c)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) push(w, load(x, r * s.c + c));
  __shared__ Welford<A> shared[kRowLanes][kWarp];
  shared[threadIdx.y][threadIdx.x] = w;
  __syncthreads();
  if (threadIdx.y == 0 && c < s.c) {
    for (int k = 1; k < kRowLanes; ++k) w = merge(w, shared[k][threadIdx.x]);
    A* p = part + (c * splits + blockIdx.y) * 3;
    p[0] = w.n;
    p[1] = w.mean;
    p[2] = w.m2;
  }
}

template <typename T>
__global__ void rows_grad_sums(const T* dy, const T* x, BatchShape s, int splits,
                               const typename Acc<T>::type* mean, typename Acc<T>::type* part) {
  using A = typename Acc<T>::type;
  const int64_t c = blockIdx.x * kWarp + threadIdx.x;
  const int64_t rows = s.n * s.inner;
  const int64_t per = (rows + splits - 1) / splits;
  const int64_t r0 = blockIdx.y * per, r1 = imin(rows, r0 + per);
  A sg = A(0), sgx = A(0);
  if (c < s.c) {
    const A m = mean[c];
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowLanes) {
      const A g = load(dy, r * s.c + c);
      sg += g;
      sgx += g * (load(x, r * s.c + c) - m);
    }
  }
  __shared__ A shared[2][kRowLanes][kWarp];
  shared[0][threadIdx.y][threadIdx.x] = sg;
  shared[1][threadIdx.y][threadIdx.x] = sgx;
  __syncthreads();
  if (threadIdx.y == 0 && c < s.c) {
    for (int k = 1; k < kRowLanes; ++k) {
      sg += shared[0][k][threadIdx.x];
      sgx += shared[1][k][threadIdx.x];
    }
    A* p = part + (c * splits + blockIdx.y) * 2;
    p[0] = sg;
    p[1] = sgx;
  }
}

// ---- finalize: one thread per channel ---------------------------------------------------

template <typename A>
__global__ void finalize_welford(const A* part, int splits, int64_t c_count, double eps, double momentum,
                                 A* mean, A* invstd, A* running_mean, A* running_var, double* summary) {
  const int64_t c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= c_count) return;
  // Merged in double: the partial counts can exceed float's exact integers.
  Welford<double> w{0.0, 0.0, 0.0};
  for (int k = 0; k < splits; ++k) {
    const A* p = part + (c * splits + k) * 3;
    w = merge(w, Welford<double>{static_cast<double>(p[0]), static_cast<double>(p[1]), static_cast<double>(p[2])});
  }
  if (summary) {
    summary[3 * c] = w.n;
    summary[3 * c + 1] = w.mean;
    summary[3 * c + 2] = w.m2;
    return;
  }
  stats::finalize(w, eps, momentum, c, mean, invstd, running_mean, running_var);
}

// The ranks' summaries (world x c_count x 3, rank-major) merged in rank order.
template <typename A>
__global__ void gather_welford(const double* summaries, int64_t world, int64_t c_count, double eps, double momentum,
                               A* mean, A* invstd, A* running_mean, A* running_var, double* total_count) {
  const int64_t c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= c_count) return;
  Welford<double> w{0.0, 0.0, 0.0};
  for (int64_t r = 0; r < world; ++r) {
    const double* p = summaries + (r * c_count + c) * 3;
    w = merge(w, Welford<double>{p[0], p[1], p[2]});
  }
  const bool update = w.n > 1.0;
  stats::finalize(w, eps, momentum, c, mean, invstd, update ? running_mean : nullptr, update ? running_var : nullptr);
  if (c == 0) *total_count = w.n;
}

template <typename A>
__global__ void add_into(const A* src, A* dst, int64_t count) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] += src[i];
}

template <typename A>
__global__ void finalize_sums(const A* part, int splits, int64_t c_count, const A* invstd_or_var, bool is_var,
                              double eps, A* sum_dy, A* sum_dy_xmu, A* grad_weight, A* grad_bias, bool accumulate) {
  const int64_t c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= c_count) return;
  double sg = 0, sgx = 0;
  for (int k = 0; k < splits; ++k) {
    sg += static_cast<double>(part[(c * splits + k) * 2]);
    sgx += static_cast<double>(part[(c * splits + k) * 2 + 1]);
  }
  const double v = static_cast<double>(invstd_or_var[c]);
  const double is = is_var ? rsqrt(v + eps) : v;
  if (sum_dy) sum_dy[c] = static_cast<A>(sg);
  if (sum_dy_xmu) sum_dy_xmu[c] = static_cast<A>(sgx);
  if (grad_weight) grad_weight[c] = static_cast<A>((accumulate ? static_cast<double>(grad_weight[c]) : 0.0) + sgx * is);
  if (grad_bias) grad_bias[c] = static_cast<A>((accumulate ? static_cast<double>(grad_bias[c]) : 0.0) + sg);
}

// ---- element-wise ---------------------------------------------------------------------

__device__ __forceinline__ int64_t channel_of(int64_t idx, const BatchShape& s) {
  return s.rows() ? idx % s.c : (idx / s.inner) % s.c;
}

// y = (x - mean) * invstd * weight + bias; invstd from var + eps when `is_var`.
template <typename T>
__global__ void affine(const T* x, BatchShape s, const typename Acc<T>::type* mean,
                       const typename Acc<T>::type* invstd_or_var, bool is_var, double eps,
                       const typename Acc<T>::type* weight, const typename Acc<T>::type* bias, T* y) {
  using A = typename Acc<T>::type;
  const int64_t total = s.numel();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = channel_of(i, s);
    const A v = invstd_or_var[c];
    const A is = is_var ? static_cast<A>(rsqrt(static_cast<double>(v) + eps)) : v;
    const A w = weight ? weight[c] : A(1);
    const A b = bias ? bias[c] : A(0);
    y[i] = static_cast<T>((load(x, i) - mean[c]) * is * w + b);
  }
}

// dx = (dy - sum_dy / n - (x - mean) * sum_dy_xmu / n * invstd^2) * invstd * weight
// (training), or dy * invstd * weight with invstd from running var (eval).
template <typename T>
__global__ void grad_input(const T* dy, const T* x, BatchShape s, const typename Acc<T>::type* mean,
                           const typename Acc<T>::type* invstd_or_var, bool is_var, double eps,
                           const typename Acc<T>::type* weight, const typename Acc<T>::type* sum_dy,
                           const typename Acc<T>::type* sum_dy_xmu, double count, T* dx) {
  using A = typename Acc<T>::type;
  const int64_t total = s.numel();
  const A inv_n = count > 0 ? static_cast<A>(1.0 / count) : A(0);
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = channel_of(i, s);
    const A v = invstd_or_var[c];
    const A is = is_var ? static_cast<A>(rsqrt(static_cast<double>(v) + eps)) : v;
    const A w = weight ? weight[c] : A(1);
    A g = load(dy, i);
    if (sum_dy) g = g - sum_dy[c] * inv_n - (load(x, i) - mean[c]) * (sum_dy_xmu[c] * inv_n * is * is);
    dx[i] = static_cast<T>(g * is * w);
  }
}

// ---- host side ----------------------------------------------------------------------

int elementwise_blocks(const BatchShape& s, int sms) {
  const int64_t want = (s.numel() + kThreads - 1) / kThreads;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(want, int64_t(sms) * 32)));
}

int channel_blocks(int64_t c) { return static_cast<int>((c + kThreads - 1) / kThreads); }

template <typename T>
struct Passes {
  using A = typename Acc<T>::type;

  // Welford partials into the workspace; returns the split count.
  static int welford(const T* x, const BatchShape& s, const Launch& l) {
    const int splits = splits_for(s, l.multiprocessors);
    if (s.numel() == 0) return 0;
    A* part = static_cast<A*>(l.workspace);
    if (s.rows()) {
      const dim3 grid(static_cast<unsigned>((s.c + kWarp - 1) / kWarp), static_cast<unsigned>(splits));
      rows_welford<T><<<grid, dim3(kWarp, kRowLanes), 0, l.stream>>>(x, s, splits, part);
    } else {
      planar_welford<T><<<dim3(static_cast<unsigned>(splits), static_cast<unsigned>(s.c)), kThreads, 0, l.stream>>>(x, s, splits, part);
    }
    return splits;
  }

  static int grad_sums(const T* dy, const T* x, const BatchShape& s, const A* mean, const Launch& l) {
    const int splits = splits_for(s, l.multiprocessors);
    if (s.numel() == 0) return 0;
    A* part = static_cast<A*>(l.workspace);
    if (s.rows()) {
      const dim3 grid(static_cast<unsigned>((s.c + kWarp - 1) / kWarp), static_cast<unsigned>(splits));
      rows_grad_sums<T><<<grid, dim3(kWarp, kRowLanes), 0, l.stream>>>(dy, x, s, splits, mean, part);
    } else {
      planar_grad_sums<T><<<dim3(static_cast<unsigned>(splits), static_cast<unsigned>(s.c)), kThreads, 0, l.stream>>>(dy, x, s, splits, mean, part);
    }
    return splits;
  }

  static void finalize(int splits, const BatchShape& s, double eps, double momentum, A* mean, A* invstd, A* rm,
                       A* rv, double* summary, const Launch& l) {
    finalize_welford<A><<<channel_blocks(s.c), kThreads, 0, l.stream>>>(static_cast<const A*>(l.workspace), splits, s.c,
                                                                        eps, momentum, mean, invstd, rm, rv, summary);
  }

  static void affine_pass(const T* x, const BatchShape& s, const A* mean, const A* v, bool is_var, double eps,
                          const A* w, const A* b, T* y, const Launch& l) {
    if (s.numel() == 0) return;
    affine<T><<<elementwise_blocks(s, l.multiprocessors), kThreads, 0, l.stream>>>(x, s, mean, v, is_var, eps, w, b, y);
  }

  static void grad_input_pass(const T* dy, const T* x, const BatchShape& s, const A* mean, const A* v, bool is_var,
                              double eps, const A* w, const A* sg, const A* sgx, double count, T* dx, const Launch& l) {
    if (s.numel() == 0) return;
    grad_input<T><<<elementwise_blocks(s, l.multiprocessors), kThreads, 0, l.stream>>>(dy, x, s, mean, v, is_var, eps, w, sg,
                                                                                      sgx, count, dx);
  }
};

cudaError_t done() { return cudaGetLastError(); }

template <typename Fn>
cudaError_t dispatch(DType t, Fn&& fn) {
  switch (t) {
    case DType::Float32: fn(float{}); break;
    case DType::Float64: fn(double{}); break;
    case DType::Float16: fn(__half{}); break;
    case DType::BFloat16: fn(__nv_bfloat16{}); break;
  }
  return done();
}

}  // namespace

size_t workspace_bytes(DType t, const BatchShape& s, int multiprocessors) {
  const size_t acc = t == DType::Float64 ? sizeof(double) : sizeof(float);
  // Partials (3 per channel and split), then backward's two per-channel sums.
  return static_cast<size_t>(s.c) * (static_cast<size_t>(splits_for(s, multiprocessors)) * 3 + 2) * acc;
}

// Per-channel arrays are Acc<T>: float for float and half inputs, double for double.
template <typename T>
using P = typename Passes<T>::A;

cudaError_t Ops::stats(const StatsArgs<void>& a) const {
  return dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    const int splits = Passes<T>::welford(static_cast<const T*>(a.x), a.s, l);
    Passes<T>::finalize(splits, a.s, a.eps, 0.0, static_cast<P<T>*>(a.mean), static_cast<P<T>*>(a.invstd), nullptr, nullptr,
                     nullptr, l);
  });
}

cudaError_t Ops::welford_stats(const WelfordStatsArgs<void>& a) const {
  return dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    const int splits = Passes<T>::welford(static_cast<const T*>(a.x), a.s, l);
    Passes<T>::finalize(splits, a.s, 0.0, 0.0, nullptr, nullptr, nullptr, nullptr, a.summary, l);
  });
}

cudaError_t Ops::welford_gather(const WelfordGatherArgs<void>& a) const {
  if (a.c == 0) return cudaSuccess;
  return dispatch(t, [&](auto tag) {
    using A = P<decltype(tag)>;
    gather_welford<A><<<channel_blocks(a.c), kThreads, 0, l.stream>>>(
        a.summaries, a.world, a.c, a.eps, a.momentum, static_cast<A*>(a.mean), static_cast<A*>(a.invstd),
        static_cast<A*>(a.running_mean), static_cast<A*>(a.running_var), a.total_count);
  });
}

cudaError_t Ops::accumulate(const AccumulateArgs<void>& a) const {
  if (a.count == 0) return cudaSuccess;
  return dispatch(t, [&](auto tag) {
    using A = P<decltype(tag)>;
    const int64_t want = (a.count + kThreads - 1) / kThreads;
    const int blocks = static_cast<int>(std::min<int64_t>(want, int64_t(l.multiprocessors) * 4));
    add_into<A><<<blocks, kThreads, 0, l.stream>>>(static_cast<const A*>(a.src), static_cast<A*>(a.dst), a.count);
  });
}

cudaError_t Ops::elemt(const ElemtArgs<void>& a) const {
  return dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    Passes<T>::affine_pass(static_cast<const T*>(a.x), a.s, static_cast<const P<T>*>(a.mean),
                        static_cast<const P<T>*>(a.invstd), false, 0.0, static_cast<const P<T>*>(a.weight),
                        static_cast<const P<T>*>(a.bias), static_cast<T*>(a.y), l);
  });
}

cudaError_t Ops::forward_training(const ForwardTrainingArgs<void>& a) const {
  return dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    const int splits = Passes<T>::welford(static_cast<const T*>(a.x), a.s, l);
    Passes<T>::finalize(splits, a.s, a.eps, a.momentum, static_cast<P<T>*>(a.save_mean), static_cast<P<T>*>(a.save_invstd),
                     static_cast<P<T>*>(a.running_mean), static_cast<P<T>*>(a.running_var), nullptr, l);
    Passes<T>::affine_pass(static_cast<const T*>(a.x), a.s, static_cast<const P<T>*>(a.save_mean),
                        static_cast<const P<T>*>(a.save_invstd), false, 0.0, static_cast<const P<T>*>(a.weight),
                        static_cast<const P<T>*>(a.bias), static_cast<T*>(a.y), l);
  });
}

cudaError_t Ops::forward_inference(const ForwardInferenceArgs<void>& a) const {
  return dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    Passes<T>::affine_pass(static_cast<const T*>(a.x), a.s, static_cast<const P<T>*>(a.running_mean),
                        static_cast<const P<T>*>(a.running_var), true, a.eps, static_cast<const P<T>*>(a.weight),
                        static_cast<const P<T>*>(a.bias), static_cast<T*>(a.y), l);
  });
}

cudaError_t Ops::backward_reduce(const BackwardReduceArgs<void>& a) const {
  return dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    using A = P<T>;
    const int splits =
        Passes<T>::grad_sums(static_cast<const T*>(a.dy), static_cast<const T*>(a.x), a.s, static_cast<const A*>(a.mean), l);
    finalize_sums<A><<<channel_blocks(a.s.c), kThreads, 0, l.stream>>>(
        static_cast<const A*>(l.workspace), splits, a.s.c, static_cast<const A*>(a.invstd), false, 0.0,
        static_cast<A*>(a.sum_dy), static_cast<A*>(a.sum_dy_xmu), static_cast<A*>(a.grad_weight),
        static_cast<A*>(a.grad_bias), false);
  });
}

cudaError_t Ops::backward_elemt(const BackwardElemtArgs<void>& a) const {
  return dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    using A = P<T>;
    Passes<T>::grad_input_pass(static_cast<const T*>(a.dy), static_cast<const T*>(a.x), a.s, static_cast<const A*>(a.mean),
                            static_cast<const A*>(a.invstd), false, 0.0, static_cast<const A*>(a.weight),
                            static_cast<const A*>(a.sum_dy), static_cast<const A*>(a.sum_dy_xmu), a.total_count,
                            static_cast<T*>(a.dx), l);
  });
}

cudaError_t Ops::backward(const BackwardArgs<void>& a) const {
  return dispatch(t, [&](auto tag) {
    using T = decltype(tag);
    using A = P<T>;
    const BatchShape& s = a.s;
    // Per-channel sums land after the partials in the workspace.
    A* sums = static_cast<A*>(l.workspace) + static_cast<size_t>(s.c) * splits_for(s, l.multiprocessors) * 3;
    A* sg = a.training ? sums : nullptr;
    A* sgx = a.training ? sums + s.c : nullptr;
    if (a.training || a.grad_weight || a.grad_bias) {
      const int splits =
          Passes<T>::grad_sums(static_cast<const T*>(a.dy), static_cast<const T*>(a.x), s, static_cast<const A*>(a.mean), l);
      finalize_sums<A><<<channel_blocks(s.c), kThreads, 0, l.stream>>>(
          static_cast<const A*>(l.workspace), splits, s.c, static_cast<const A*>(a.invstd_or_var), !a.training, a.eps, sg,
          sgx, static_cast<A*>(a.grad_weight), static_cast<A*>(a.grad_bias), a.accumulate);
    }
    if (a.dx)
      Passes<T>::grad_input_pass(static_cast<const T*>(a.dy), static_cast<const T*>(a.x), s, static_cast<const A*>(a.mean),
                              static_cast<const A*>(a.invstd_or_var), !a.training, a.eps, static_cast<const A*>(a.weight),
                              sg, sgx, static_cast<double>(s.count()), static_cast<T*>(a.dx), l);
  });
}

}  // namespace cuda
}  // namespace syncbn
