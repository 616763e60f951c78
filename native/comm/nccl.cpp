#include "nccl.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

#include "communicator.h"

namespace syncbn {
namespace comm {

namespace {

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
  if (api.GetVersion(&version) != ncclSuccess) {
    dlclose(handle);
    throw CommError("NCCL library " + path + " failed ncclGetVersion");
  }
  g_handle = handle;
  g_api = api;
  g_lib.path = path;
  g_lib.version = version;
  return g_lib;
}

const NcclApi& nccl_api() {
  std::lock_guard<std::mutex> lk(g_mu);
  if (g_handle == nullptr) throw CommError("NCCL is not loaded (call nccl_load first)");
  return g_api;
}

std::string nccl_unique_id() {
  const NcclApi& api = nccl_api();
  ncclUniqueId id{};
  const ncclResult_t r = api.GetUniqueId(&id);
  if (r != ncclSuccess) throw CommError(std::string("ncclGetUniqueId failed: ") + api.GetErrorString(r));
  return std::string(id.internal, sizeof id.internal);
}

#ifndef SYNCBN_HAVE_CUDA
std::unique_ptr<Communicator> nccl_connect(const NcclOptions&) {
  throw CommError("the nccl backend reduces CUDA tensors, but this build of syncbn has no CUDA support; "
                  "use backend 'gloo' for CPU tensors");
}
#endif

}  // namespace comm
}  // namespace syncbn
