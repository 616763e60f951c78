#pragma once

#include <napi.h>

namespace syncbn {
namespace addon {

// Adds the Communicator class, the rendezvous functions and the NCCL loader.
void RegisterComm(Napi::Env env, Napi::Object exports);

// Whether this build links Gloo.
bool GlooAvailable();

}  // namespace addon
}  // namespace syncbn
