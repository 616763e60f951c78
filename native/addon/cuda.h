#pragma once

#include <napi.h>

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

}  // namespace addon
}  // namespace syncbn
