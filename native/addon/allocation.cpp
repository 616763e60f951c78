// Output arrays that nobody frees explicitly are allocated uninitialized by
// Node (Buffer.allocUnsafeSlow: malloc, not calloc) and freed by V8 when a
// collection finds them dead. glibc serves such sizes with a fresh mmap and
// unmaps them on free, so every output page-faults its pages back in; its
// dynamic threshold does not keep up with a loop that frees in bursts
// (bench/NOTES.md 30). keepFreedMemory makes blocks up to `mmapThreshold`
// come from the heap and keeps up to `trimThreshold` bytes of freed heap in
// the process, so the next output of that size reuses warm pages, as
// PyTorch's outputs do. The sizes are TypeScript's policy (lib/storage.ts).
#include "allocation.h"

#include "args.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace syncbn {
namespace addon {
namespace {

Napi::Value KeepFreedMemory(const Napi::CallbackInfo& info) {
  Args a(info, "keepFreedMemory", 2);
  const int64_t mmap_threshold = a.integer(0, "mmapThreshold", 0);
  const int64_t trim_threshold = a.integer(1, "trimThreshold", 0);
  if (mmap_threshold > INT32_MAX || trim_threshold > INT32_MAX)
    throw Napi::RangeError::New(info.Env(), a.prefix() + "thresholds must be below 2 GiB");
#if defined(__GLIBC__)
  // mallopt refuses an mmap threshold above its maximum (32 MiB on 64-bit);
  // the result says whether both settings took.
  const bool mmap_ok = mallopt(M_MMAP_THRESHOLD, static_cast<int>(mmap_threshold)) == 1;
  const bool trim_ok = mallopt(M_TRIM_THRESHOLD, static_cast<int>(trim_threshold)) == 1;
  return Napi::Boolean::New(info.Env(), mmap_ok && trim_ok);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

}  // namespace

void RegisterAllocation(Napi::Env env, Napi::Object exports) {
  exports.Set("keepFreedMemory", Napi::Function::New(env, KeepFreedMemory, "keepFreedMemory"));
}

}  // namespace addon
}  // namespace syncbn
