// In-process communicator: the ranks are threads of one process (Node
// worker_threads). Groups meet by name in a process-wide registry.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "communicator.h"

namespace syncbn {
namespace comm {

// A rank's pending join of a threads group.
class ThreadsJoin {
 public:
  struct State;
  explicit ThreadsJoin(std::unique_ptr<State> s);
  ~ThreadsJoin();
  bool done() const { return !s_; }
  void finish();  // drops the group: the join completed or failed
  std::unique_ptr<State> s_;
};

// Registers rank in group `name` without waiting (the caller's thread never
// blocks: a JavaScript thread polls, so no libuv pool thread is held while
// the other ranks come).
std::unique_ptr<ThreadsJoin> threads_join_start(const std::string& name, int rank, int size,
                                                std::chrono::milliseconds timeout);
// The communicator once every rank has joined, waiting at most `wait`;
// nullptr while some are missing; CommError naming them after the timeout.
std::unique_ptr<Communicator> threads_join_poll(ThreadsJoin& j, std::chrono::milliseconds wait);

// Blocks until `size` ranks have joined group `name` (each rank once), or
// throws CommError naming the ranks that never came.
std::unique_ptr<Communicator> threads_join(const std::string& name, int rank, int size,
                                           std::chrono::milliseconds timeout);

}  // namespace comm
}  // namespace syncbn
