// CUDA batch-norm kernels: device pointers in, launches on the given stream
// out. No Node, no communication, no host synchronization.
//
// Inputs are float32, float64, float16 or bfloat16; per-channel arrays
// (weight, bias, mean, invstd, running stats, sums) are float, or double for
// float64 inputs, as in PyTorch.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "../batch_norm.h"

namespace syncbn {
namespace cuda {

// Where and how to launch: the stream, the device's multiprocessor count
// (reductions split across enough blocks to fill it, whatever C is), and
// scratch space of at least workspace_bytes().
struct Launch {
  cudaStream_t stream;
  int multiprocessors;
  void* workspace;
  size_t workspace_size;
};

size_t workspace_bytes(DType t, const BatchShape& s, int multiprocessors);

// The ops of the table in ../batch_norm.h on device memory, as cpu::Ops has
// them, for inputs of dtype `t` (per-channel arrays: param_dtype(t)),
// launched with `l` (whose workspace, of workspace_bytes(t, s, ...), the
// reductions use). Each returns the first CUDA error of its launches
// (cudaSuccess if none). gather_stats_with_counts, welford_finalize, moments
// and blend_stats have no CUDA kernel: C values, computed on the host;
// welford_gather and accumulate are CUDA's only (SyncBatchNorm on the device).
struct Ops {
  DType t;
  Launch l;

  cudaError_t stats(const StatsArgs<void>& a) const;
  cudaError_t elemt(const ElemtArgs<void>& a) const;
  cudaError_t backward_reduce(const BackwardReduceArgs<void>& a) const;
  cudaError_t backward_elemt(const BackwardElemtArgs<void>& a) const;
  cudaError_t forward_training(const ForwardTrainingArgs<void>& a) const;
  cudaError_t forward_inference(const ForwardInferenceArgs<void>& a) const;
  cudaError_t backward(const BackwardArgs<void>& a) const;
  cudaError_t welford_stats(const WelfordStatsArgs<void>& a) const;
  cudaError_t welford_gather(const WelfordGatherArgs<void>& a) const;
  cudaError_t accumulate(const AccumulateArgs<void>& a) const;
};

}  // namespace cuda
}  // namespace syncbn
