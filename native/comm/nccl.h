// NCCL, opened at run time: the addon builds and loads without it, and asking
// for it without the library is a clear error. The few functions syncbn uses
// are declared here, not taken from nccl.h.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "communicator.h"

namespace syncbn {
namespace comm {

struct NcclLibrary {
  std::string path;  // what was opened
  int version = 0;   // ncclGetVersion(), e.g. 22703 for 2.27.3
};

// The NCCL 2 ABI as syncbn uses it, spelled as nccl.h spells it (NCCL's
// stable enum values, fixed to int as the C enums are): handles are opaque.
enum ncclResult_t : int {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
};
enum ncclDataType_t : int { ncclInt64 = 4, ncclFloat32 = 7, ncclFloat64 = 8 };
enum ncclRedOp_t : int { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 };
using ncclComm_t = void*;
constexpr size_t NCCL_UNIQUE_ID_BYTES = 128;
struct ncclUniqueId {
  char internal[NCCL_UNIQUE_ID_BYTES];
};

struct NcclApi {
  ncclResult_t (*GetVersion)(int*);
  ncclResult_t (*GetUniqueId)(ncclUniqueId*);
  ncclResult_t (*CommInitRank)(ncclComm_t*, int, ncclUniqueId, int);
  ncclResult_t (*CommDestroy)(ncclComm_t);
  ncclResult_t (*CommAbort)(ncclComm_t);
  ncclResult_t (*CommGetAsyncError)(ncclComm_t, ncclResult_t*);
  // The last argument is a cudaStream_t.
  ncclResult_t (*AllReduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, void*);
  ncclResult_t (*AllGather)(const void*, void*, size_t, ncclDataType_t, ncclComm_t, void*);
  ncclResult_t (*Broadcast)(const void*, void*, size_t, ncclDataType_t, int, ncclComm_t, void*);
  const char* (*GetErrorString)(ncclResult_t);
};

// Opens `path`, else $SYNCBN_NCCL_LIBRARY, else libnccl.so.2, and resolves
// every function syncbn calls. Throws CommError naming the library and the
// missing piece. The library stays loaded for the life of the process.
const NcclLibrary& nccl_load(const std::string& path);

// The loaded library's functions; CommError when nccl_load has not succeeded.
const NcclApi& nccl_api();

// A fresh unique id (rank 0 makes it; the store carries it to the others).
std::string nccl_unique_id();

struct NcclOptions {
  std::string unique_id;  // NCCL_UNIQUE_ID_BYTES bytes
  int rank = 0;
  int size = 1;
  int device = 0;  // the CUDA device this rank's tensors live on
  std::chrono::milliseconds timeout{300000};
};

// Joins the NCCL communicator of `size` ranks. Blocks (ncclCommInitRank),
// so call it off the event loop. Without CUDA in the build: CommError.
std::unique_ptr<Communicator> nccl_connect(const NcclOptions& opts);

}  // namespace comm
}  // namespace syncbn
