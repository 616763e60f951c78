#pragma once

#include <napi.h>

namespace syncbn {
namespace addon {

// Adds the batch-norm ops, memory-format conversion and thread control.
void RegisterBatchNorm(Napi::Env env, Napi::Object exports);

}  // namespace addon
}  // namespace syncbn
