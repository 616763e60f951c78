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

enum class DType { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3 };

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

// Each returns the first CUDA error of its launches (cudaSuccess if none).
cudaError_t stats(DType t, const void* x, const BatchShape& s, double eps, void* mean, void* invstd,
                  const Launch& l);
cudaError_t welford_stats(DType t, const void* x, const BatchShape& s, double* summary, const Launch& l);
cudaError_t elemt(DType t, const void* x, const BatchShape& s, const void* mean, const void* invstd,
                  const void* weight, const void* bias, void* y, const Launch& l);
cudaError_t forward_training(DType t, const void* x, const BatchShape& s, const void* weight,
                             const void* bias, double eps, double momentum, void* running_mean,
                             void* running_var, void* y, void* save_mean, void* save_invstd,
                             const Launch& l);
cudaError_t forward_inference(DType t, const void* x, const BatchShape& s, const void* running_mean,
                              const void* running_var, const void* weight, const void* bias,
                              double eps, void* y, const Launch& l);
cudaError_t backward_reduce(DType t, const void* dy, const void* x, const BatchShape& s,
                            const void* mean, const void* invstd, void* sum_dy, void* sum_dy_xmu,
                            void* grad_weight, void* grad_bias, const Launch& l);
cudaError_t backward_elemt(DType t, const void* dy, const void* x, const BatchShape& s,
                           const void* mean, const void* invstd, const void* weight,
                           const void* sum_dy, const void* sum_dy_xmu, double total_count,
                           void* dx, const Launch& l);
cudaError_t backward(DType t, const void* dy, const void* x, const BatchShape& s, const void* weight,
                     const void* mean, const void* invstd_or_var, bool training, double eps,
                     void* dx, void* grad_weight, void* grad_bias, bool accumulate,
                     const Launch& l);

}  // namespace cuda
}  // namespace syncbn
