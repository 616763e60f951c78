#pragma once

#include <napi.h>

namespace syncbn {
namespace addon {

// Adds `cuda`: device queries, DeviceBuffer and the ops on device memory
// (or, without CUDA at build time, `compiled: false` and the reason).
void RegisterCuda(Napi::Env env, Napi::Object exports);

}  // namespace addon
}  // namespace syncbn
