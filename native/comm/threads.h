// In-process communicator: the ranks are threads of one process (Node
// worker_threads). Groups meet by name in a process-wide registry.
#pragma once

#include <memory>
#include <string>

#include "communicator.h"

namespace syncbn {
namespace comm {

// Blocks until `size` ranks have joined group `name` (each rank once), or
// throws CommError naming the ranks that never came.
std::unique_ptr<Communicator> threads_join(const std::string& name, int rank, int size,
                                           std::chrono::milliseconds timeout);

}  // namespace comm
}  // namespace syncbn
