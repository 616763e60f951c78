// NCCL, opened at run time: the addon builds and loads without it, and asking
// for it without the library is a clear error. The few functions syncbn uses
// are declared here, not taken from nccl.h.
#pragma once

#include <string>

namespace syncbn {
namespace comm {

struct NcclLibrary {
  std::string path;  // what was opened
  int version = 0;   // ncclGetVersion(), e.g. 22703 for 2.27.3
};

// Opens `path`, else $SYNCBN_NCCL_LIBRARY, else libnccl.so.2, and resolves
// every function syncbn calls. Throws CommError naming the library and the
// missing piece. The library stays loaded for the life of the process.
const NcclLibrary& nccl_load(const std::string& path);

}  // namespace comm
}  // namespace syncbn
