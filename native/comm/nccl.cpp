#include "nccl.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "communicator.h"

namespace syncbn {
namespace comm {

namespace {

// The NCCL ABI as syncbn uses it (types are opaque handles and enums).
using ncclResult_t = int;
using ncclComm_t = void*;
struct ncclUniqueId {
  char internal[128];
};

struct NcclApi {
  ncclResult_t (*GetVersion)(int*);
  ncclResult_t (*GetUniqueId)(ncclUniqueId*);
  ncclResult_t (*CommInitRank)(ncclComm_t*, int, ncclUniqueId, int);
  ncclResult_t (*CommDestroy)(ncclComm_t);
  ncclResult_t (*CommAbort)(ncclComm_t);
  ncclResult_t (*CommGetAsyncError)(ncclComm_t, ncclResult_t*);
  ncclResult_t (*AllReduce)(const void*, void*, size_t, int, int, ncclComm_t, void*);
  ncclResult_t (*AllGather)(const void*, void*, size_t, int, ncclComm_t, void*);
  ncclResult_t (*Broadcast)(const void*, void*, size_t, int, int, ncclComm_t, void*);
  const char* (*GetErrorString)(ncclResult_t);
};

std::mutex g_mu;
NcclLibrary g_lib;
NcclApi g_api{};
void* g_handle = nullptr;

template <typename F>
void resolve(void* handle, const std::string& path, const char* name, F*& out) {
  dlerror();
  void* sym = dlsym(handle, name);
  if (sym == nullptr)
    throw CommError("NCCL library " + path + " does not export " + name +
                    " (is it NCCL 2.x? set SYNCBN_NCCL_LIBRARY to the right libnccl.so.2)");
  out = reinterpret_cast<F*>(sym);
}

}  // namespace

const NcclLibrary& nccl_load(const std::string& requested) {
  std::lock_guard<std::mutex> lk(g_mu);
  const char* env = std::getenv("SYNCBN_NCCL_LIBRARY");
  const std::string path = !requested.empty() ? requested : (env && *env ? env : "libnccl.so.2");
  if (g_handle != nullptr) {
    if (path != g_lib.path)
      throw CommError("NCCL is already loaded from " + g_lib.path + "; cannot also load " + path);
    return g_lib;
  }
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    throw CommError("the nccl backend needs NCCL, but " + path + " could not be loaded (" +
                    (why ? why : "unknown error") +
                    "). Install NCCL 2 or set SYNCBN_NCCL_LIBRARY to the path of libnccl.so.2");
  }
  NcclApi api{};
  try {
    resolve(handle, path, "ncclGetVersion", api.GetVersion);
    resolve(handle, path, "ncclGetUniqueId", api.GetUniqueId);
    resolve(handle, path, "ncclCommInitRank", api.CommInitRank);
    resolve(handle, path, "ncclCommDestroy", api.CommDestroy);
    resolve(handle, path, "ncclCommAbort", api.CommAbort);
    resolve(handle, path, "ncclCommGetAsyncError", api.CommGetAsyncError);
    resolve(handle, path, "ncclAllReduce", api.AllReduce);
    resolve(handle, path, "ncclAllGather", api.AllGather);
    resolve(handle, path, "ncclBroadcast", api.Broadcast);
    resolve(handle, path, "ncclGetErrorString", api.GetErrorString);
  } catch (...) {
    dlclose(handle);
    throw;
  }
  int version = 0;
  if (api.GetVersion(&version) != 0) {
    dlclose(handle);
    throw CommError("NCCL library " + path + " failed ncclGetVersion");
  }
  g_handle = handle;
  g_api = api;
  g_lib.path = path;
  g_lib.version = version;
  return g_lib;
}

}  // namespace comm
}  // namespace syncbn
