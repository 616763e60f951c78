// Module entry: each concern registers its own functions.
#include <napi.h>

#include "allocation.h"
#include "batch_norm.h"
#include "comm.h"
#include "cuda.h"
#include "../kernels/batch_norm.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  syncbn::addon::RegisterAllocation(env, exports);
  syncbn::addon::RegisterBatchNorm(env, exports);
  syncbn::addon::RegisterComm(env, exports);
  syncbn::addon::RegisterCuda(env, exports);
  Napi::Object features = Napi::Object::New(env);
#ifdef _OPENMP
  features.Set("openmp", true);
#else
  features.Set("openmp", false);
#endif
#ifdef SYNCBN_HAVE_CUDA
  features.Set("cuda", true);
#else
  features.Set("cuda", false);
#endif
  features.Set("gloo", syncbn::addon::GlooAvailable());
  features.Set("isa", syncbn::cpu::isa());
  exports.Set("features", features);
  return exports;
}

}  // namespace

NODE_API_MODULE(syncbn, Init)
