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

// The ops of the table in ../batch_norm.h on device memory, `t` being the
// input's dtype (per-channel arrays: param_dtype(t)). Each returns the first
// CUDA error of its launches (cudaSuccess if none). Those marked (workspace)
// need Launch::workspace; the others ignore it.
cudaError_t stats(DType t, const StatsArgs<void>& a, const Launch& l);                      // (workspace)
cudaError_t welford_stats(DType t, const WelfordStatsArgs<void>& a, const Launch& l);       // (workspace)
cudaError_t welford_gather(DType t, const WelfordGatherArgs<void>& a, const Launch& l);
cudaError_t accumulate(DType t, const AccumulateArgs<void>& a, const Launch& l);
cudaError_t elemt(DType t, const ElemtArgs<void>& a, const Launch& l);
cudaError_t forward_training(DType t, const ForwardTrainingArgs<void>& a, const Launch& l);  // (workspace)
cudaError_t forward_inference(DType t, const ForwardInferenceArgs<void>& a, const Launch& l);
cudaError_t backward_reduce(DType t, const BackwardReduceArgs<void>& a, const Launch& l);  // (workspace)
cudaError_t backward_elemt(DType t, const BackwardElemtArgs<void>& a, const Launch& l);
cudaError_t backward(DType t, const BackwardArgs<void>& a, const Launch& l);  // (workspace)

}  // namespace cuda
}  // namespace syncbn
