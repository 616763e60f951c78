#pragma once

#include <napi.h>

namespace syncbn {
namespace addon {

// Adds keepFreedMemory: the C allocator's policy for the large, uninitialized
// output arrays that Node allocates for the TypeScript layer.
void RegisterAllocation(Napi::Env env, Napi::Object exports);

}  // namespace addon
}  // namespace syncbn
