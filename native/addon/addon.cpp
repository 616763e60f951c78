// Module entry: each concern registers its own functions.
#include <napi.h>

#include "batch_norm.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  syncbn::addon::RegisterBatchNorm(env, exports);
  Napi::Object features = Napi::Object::New(env);
#ifdef _OPENMP
  features.Set("openmp", true);
#else
  features.Set("openmp", false);
#endif
  features.Set("cuda", false);
  exports.Set("features", features);
  return exports;
}

}  // namespace

NODE_API_MODULE(syncbn, Init)
