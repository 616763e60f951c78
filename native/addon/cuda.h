#pragma once

#include <napi.h>

#include <cstddef>
#include <functional>
#include <string>

#include "../kernels/batch_norm.h"
#ifdef SYNCBN_HAVE_CUDA
#include "../kernels/cuda/batch_norm_cuda.h"
#endif

namespace syncbn {
namespace addon {

// Adds `cuda`: device queries, DeviceBuffer and the ops on device memory
// (or, without CUDA at build time, `compiled: false` and the reason).
void RegisterCuda(Napi::Env env, Napi::Object exports);

class Args;

// The device memory of the DeviceBuffer at argument i, which must hold at
// least `bytes`; its device through `device`. A TypeError when it is not a
// DeviceBuffer (always, without CUDA at build time).
void* device_memory(const Args& a, size_t i, const char* name, size_t bytes, int* device);

// The memory of `v` when it is a DeviceBuffer (never without CUDA at build time).
struct DeviceMemory {
  void* data;
  size_t bytes;
  int device;
};
bool device_memory_of(Napi::Env env, const Napi::Value& v, DeviceMemory* out);

#ifdef SYNCBN_HAVE_CUDA
// Runs fn with the CUDA kernels for inputs of dtype t on `device`: its
// stream, and a workspace for shape s from the caching allocator, back in
// the cache when fn returns (stream order keeps that safe). A CUDA error
// becomes a JavaScript Error that starts with `what`.
void run_cuda(Napi::Env env, const std::string& what, int device, DType t, const BatchShape& s,
              const std::function<cudaError_t(const cuda::Ops&)>& fn);
#endif

}  // namespace addon
}  // namespace syncbn
