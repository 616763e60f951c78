#pragma once

#include <napi.h>

namespace syncbn {
namespace addon {

// Adds allocate (pooled output storage) and the pool's statistics.
void RegisterStorage(Napi::Env env, Napi::Object exports);

}  // namespace addon
}  // namespace syncbn
