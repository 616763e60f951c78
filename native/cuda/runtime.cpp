#include "runtime.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <vector>

namespace syncbn {
namespace cuda {

namespace {

struct Device {
  cudaStream_t stream = nullptr;
  std::multimap<size_t, void*> free_blocks;
  MemoryStats stats{0, 0, 0, 0, 0};
};

std::mutex g_mu;
std::vector<Device>& devices() {
  static std::vector<Device> d(static_cast<size_t>(std::max(0, device_count())));
  return d;
}

Device& device_state(int device) {
  auto& d = devices();
  if (device < 0 || device >= static_cast<int>(d.size()))
    throw CudaError("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(d.size()) +
                    " devices)");
  return d[static_cast<size_t>(device)];
}

// Blocks rounded to 512 bytes, or 2 MiB above 1 MiB, so the cache serves
// nearby sizes.
size_t round_size(size_t bytes) {
  if (bytes < (size_t(1) << 20)) return (bytes + 511) & ~size_t(511);
  return (bytes + (size_t(2) << 20) - 1) & ~((size_t(2) << 20) - 1);
}

class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) check(cudaSetDevice(device), "cudaSetDevice(" + std::to_string(device) + ")");
  }
  ~DeviceGuard() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

}  // namespace

void check(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return;
  throw CudaError(what + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

bool available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = std::string("no usable CUDA driver (") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e) + ")";
    cudaGetLastError();
    return false;
  }
  if (n == 0) {
    if (why) *why = "no CUDA device found";
    return false;
  }
  return true;
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

void set_device(int device) { check(cudaSetDevice(device), "cudaSetDevice(" + std::to_string(device) + ")"); }

int current_device() {
  int d = 0;
  check(cudaGetDevice(&d), "cudaGetDevice");
  return d;
}

std::string device_name(int device) {
  cudaDeviceProp p{};
  check(cudaGetDeviceProperties(&p, device), "cudaGetDeviceProperties");
  return p.name;
}

int multiprocessors(int device) {
  int n = 0;
  check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute(multiprocessors)");
  return n;
}

cudaStream_t stream(int device) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device& d = device_state(device);
  if (d.stream == nullptr) {
    DeviceGuard guard(device);
    check(cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  return d.stream;
}

void synchronize(int device) {
  DeviceGuard guard(device);
  check(cudaStreamSynchronize(stream(device)), "cuda.synchronize (device " + std::to_string(device) + ")");
}

void* device_alloc(int device, size_t bytes, size_t* capacity) {
  const size_t size = round_size(bytes == 0 ? 1 : bytes);
  {
    std::lock_guard<std::mutex> lk(g_mu);
    Device& d = device_state(device);
    auto it = d.free_blocks.lower_bound(size);
    // Reuse a cached block of this size, or one at most twice as large.
    if (it != d.free_blocks.end() && it->first <= 2 * size) {
      void* p = it->second;
      *capacity = it->first;
      d.stats.cached_bytes -= it->first;
      d.free_blocks.erase(it);
      d.stats.allocated_bytes += *capacity;
      d.stats.peak_bytes = std::max(d.stats.peak_bytes, d.stats.allocated_bytes);
      ++d.stats.cache_hits;
      ++d.stats.allocations;
      return p;
    }
  }
  DeviceGuard guard(device);
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  if (e == cudaErrorMemoryAllocation) {
    // Out of memory: give the cache back and try once more.
    cudaGetLastError();
    empty_cache(device);
    e = cudaMalloc(&p, size);
  }
  check(e, "cudaMalloc(" + std::to_string(size) + " bytes)");
  std::lock_guard<std::mutex> lk(g_mu);
  Device& d = device_state(device);
  *capacity = size;
  d.stats.allocated_bytes += size;
  d.stats.peak_bytes = std::max(d.stats.peak_bytes, d.stats.allocated_bytes);
  ++d.stats.allocations;
  return p;
}

void device_free(int device, void* p, size_t capacity) {
  std::lock_guard<std::mutex> lk(g_mu);
  Device& d = device_state(device);
  d.free_blocks.emplace(capacity, p);
  d.stats.allocated_bytes -= capacity;
  d.stats.cached_bytes += capacity;
}

MemoryStats memory_stats(int device) {
  std::lock_guard<std::mutex> lk(g_mu);
  return device_state(device).stats;
}

void empty_cache(int device) {
  std::vector<void*> blocks;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    Device& d = device_state(device);
    for (auto& [size, p] : d.free_blocks) blocks.push_back(p);
    d.free_blocks.clear();
    d.stats.cached_bytes = 0;
  }
  DeviceGuard guard(device);
  cudaStreamSynchronize(stream(device));
  for (void* p : blocks) cudaFree(p);
}

void copy_to_device(int device, void* dst, const void* src, size_t bytes) {
  DeviceGuard guard(device);
  cudaStream_t s = stream(device);
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), "copy to device");
  check(cudaStreamSynchronize(s), "copy to device");
}

void copy_to_host(int device, void* dst, const void* src, size_t bytes) {
  DeviceGuard guard(device);
  cudaStream_t s = stream(device);
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), "copy to host");
  check(cudaStreamSynchronize(s), "copy to host");
}

void copy_on_device(int device, void* dst, const void* src, size_t bytes) {
  DeviceGuard guard(device);
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream(device)), "copy on device");
}

}  // namespace cuda
}  // namespace syncbn
