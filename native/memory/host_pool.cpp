#include "host_pool.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>

namespace syncbn {
namespace memory {

namespace {

// Blocks are rounded to one of four sizes per power of two (waste <= 25%),
// so a freed block serves any request of its class.
size_t size_class(size_t bytes) {
  if (bytes <= 65536) return (bytes + 63) & ~size_t(63);
  size_t p = 65536;
  while (p * 2 < bytes) p *= 2;
  for (int q = 5; q <= 8; ++q)
    if (bytes <= p / 4 * q) return p / 4 * q;
  return p * 2;
}

// Cached memory beyond this is returned to the system.
constexpr size_t kMaxCached = size_t(2) << 30;

std::mutex g_mu;
std::multimap<size_t, void*> g_free;
HostPoolStats g_stats{0, 0, 0, 0};

}  // namespace

void* host_alloc(size_t bytes, size_t* capacity) {
  const size_t cls = size_class(bytes == 0 ? 64 : bytes);
  {
    std::lock_guard<std::mutex> lk(g_mu);
    auto it = g_free.find(cls);
    if (it != g_free.end()) {
      void* p = it->second;
      g_free.erase(it);
      g_stats.cached_bytes -= cls;
      g_stats.live_bytes += cls;
      ++g_stats.hits;
      *capacity = cls;
      return p;
    }
    ++g_stats.misses;
    g_stats.live_bytes += cls;
  }
  // Huge-page alignment for large blocks lets the kernel back them with 2 MiB pages.
  void* p = nullptr;
  if (posix_memalign(&p, cls >= (size_t(2) << 20) ? (size_t(2) << 20) : 64, cls) != 0) p = nullptr;
  if (p == nullptr) {
    std::lock_guard<std::mutex> lk(g_mu);
    g_stats.live_bytes -= cls;
    throw std::bad_alloc();
  }
  // Large blocks: ask for huge pages, a 512th of the page faults.
  if (cls >= (size_t(2) << 20)) madvise(p, cls, MADV_HUGEPAGE);
  *capacity = cls;
  return p;
}

void host_free(void* p, size_t capacity) {
  std::lock_guard<std::mutex> lk(g_mu);
  g_stats.live_bytes -= capacity;
  if (g_stats.cached_bytes + capacity > kMaxCached) {
    std::free(p);
    return;
  }
  g_free.emplace(capacity, p);
  g_stats.cached_bytes += capacity;
}

HostPoolStats host_pool_stats() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_stats;
}

void host_pool_trim() {
  std::lock_guard<std::mutex> lk(g_mu);
  for (auto& [size, p] : g_free) std::free(p);
  g_free.clear();
  g_stats.cached_bytes = 0;
}

}  // namespace memory
}  // namespace syncbn
