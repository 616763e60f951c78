// Per-environment (per worker thread) data of the addon: Node-API keeps one
// slot per environment, so every constructor the addon needs lives here.
#pragma once

#include <napi.h>

namespace syncbn {
namespace addon {

struct AddonData {
  Napi::FunctionReference communicator;
  Napi::FunctionReference device_buffer;
};

inline AddonData& addon_data(Napi::Env env) {
  AddonData* d = env.GetInstanceData<AddonData>();
  if (d == nullptr) {
    d = new AddonData();
    env.SetInstanceData<AddonData>(d);
  }
  return *d;
}

}  // namespace addon
}  // namespace syncbn
