// What the CPU kernels know of the caches: the last-level cache's size
// (from sysfs), the output size beyond which stores bypass it, and
// prefetches of the short runs the hardware prefetcher starts late on.
#pragma once

#include <cstdint>
#include <cstdio>

#ifndef SYNCBN_CPU_ISA
#error "define SYNCBN_CPU_ISA before including the CPU kernels (see batch_norm_impl.h)"
#endif

namespace syncbn {
namespace cpu {
namespace SYNCBN_CPU_ISA {
namespace detail {

// The size of cpu0's cache at sysfs `index` (2: L2, 3: L3), or `fallback`.
// sysfs has the cache this VM sees; sysconf may report the host's.
inline int64_t cache_bytes(int index, int64_t fallback) {
  char path[64];
  std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", index);
  int64_t bytes = 0;
  if (FILE* f = std::fopen(path, "r")) {
    long kib = 0;
    if (std::fscanf(f, "%ldK", &kib) == 1) bytes = int64_t(kib) << 10;
    std::fclose(f);
  }
  return bytes > 0 ? bytes : fallback;
}
// Outputs larger than a quarter of the last-level cache bypass the cache (an output
// that fits stays there for its reader) ...
inline int64_t stream_bytes() {
  static const int64_t bytes = cache_bytes(3, int64_t(32) << 20) / 4;
  return bytes;
}
// ...a cache line at a time: only whole 64-byte lines inside a run are
// streamed; the partial lines at its ends (shared with the neighbouring
// runs) take regular stores, so no line is written half non-temporally.
// Runs shorter than this stream nothing.
constexpr int64_t kStreamRun = 64;

// The most of a run prefetched at once: see planar_affine_then_moments.
constexpr int64_t kPrefetchBytes = 1024;

// Asks for a run of len values ahead of its use: runs of a channel are
// short and far apart, so the hardware prefetcher starts late on each.
template <typename T>
inline void prefetch_run(const T* p, int64_t len) {
  const char* b = reinterpret_cast<const char*>(p);
  for (int64_t k = 0; k < len * static_cast<int64_t>(sizeof(T)); k += 64) __builtin_prefetch(b + k);
}

}  // namespace detail
}  // namespace SYNCBN_CPU_ISA
}  // namespace cpu
}  // namespace syncbn
