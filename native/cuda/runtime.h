// The CUDA runtime as syncbn uses it: device queries that never throw when
// there is no driver or GPU, one stream per device, a caching allocator
// (no cudaMalloc/cudaFree per op), checked copies. Every failure becomes a
// CudaError naming the operation and the CUDA error.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace syncbn {
namespace cuda {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws CudaError("<what>: <CUDA error name>: <description>") unless e is cudaSuccess.
void check(cudaError_t e, const std::string& what);

// False (with the reason) when there is no usable driver or device.
bool available(std::string* why);
int device_count();
void set_device(int device);
int current_device();
std::string device_name(int device);
int multiprocessors(int device);

// The device's current stream (created on first use, non-blocking).
cudaStream_t stream(int device);
void synchronize(int device);

struct MemoryStats {
  size_t allocated_bytes;  // handed out now
  size_t cached_bytes;     // free in the cache
  size_t peak_bytes;
  uint64_t allocations;
  uint64_t cache_hits;
};

// At least `bytes` on `device`; *capacity is what to give back.
void* device_alloc(int device, size_t bytes, size_t* capacity);
// Back to the cache; the stream's later work may reuse it (stream order).
void device_free(int device, void* p, size_t capacity);
MemoryStats memory_stats(int device);
void empty_cache(int device);

// Copies that wait for the device's stream (host copies are the only waits).
void copy_to_device(int device, void* dst, const void* src, size_t bytes);
void copy_to_host(int device, void* dst, const void* src, size_t bytes);
void copy_on_device(int device, void* dst, const void* src, size_t bytes);

}  // namespace cuda
}  // namespace syncbn
