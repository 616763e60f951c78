// Recycling allocator for large host buffers (kernel outputs). Fresh memory
// costs a page fault per 4 KiB on first touch, which for a 25 MB output is
// as long as the batch norm itself; recycled blocks are already mapped.
// Thread-safe: worker threads share the pool.
#pragma once

#include <cstddef>

namespace syncbn {
namespace memory {

// At least `bytes`, 64-byte aligned; contents are unspecified.
void* host_alloc(size_t bytes, size_t* capacity);
// Returns a block from host_alloc (with its capacity) to the pool.
void host_free(void* p, size_t capacity);

struct HostPoolStats {
  size_t cached_bytes;
  size_t live_bytes;
  size_t hits;
  size_t misses;
};
HostPoolStats host_pool_stats();
// Frees every cached block.
void host_pool_trim();

}  // namespace memory
}  // namespace syncbn
