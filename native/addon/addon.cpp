// Module entry: each concern registers its own functions.
#include <napi.h>

#include "batch_norm.h"
#include "comm.h"
#include "../kernels/batch_norm.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  syncbn::addon::RegisterBatchNorm(env, exports);
  syncbn::addon::RegisterComm(env, exports);
  Napi::Object features = Napi::Object::New(env);
#ifdef _OPENMP
  features.Set("openmp", true);
#else
  features.Set("openmp", false);
#endif
  features.Set("cuda", false);
  features.Set("gloo", syncbn::addon::GlooAvailable());
  features.Set("isa", syncbn::cpu::isa());
  exports.Set("features", features);
  return exports;
}

}  // namespace

NODE_API_MODULE(syncbn, Init)
