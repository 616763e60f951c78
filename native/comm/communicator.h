// One small interface over the collective backends (threads, gloo, nccl).
// Collectives are blocking for the calling thread and honour the
// communicator's timeout; failures throw CommError with a message that names
// the operation and what it was waiting for. Nothing here knows about Node.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace syncbn {
namespace comm {

enum class ElemType { Float32, Float64, Int64 };

// Welford: elements are WelfordTriple (count, mean, m2) merged with Chan's
// formula, so per-channel statistics combine exactly in one all-reduce.
enum class ReduceOp { Sum, Min, Max, Welford };

struct WelfordTriple {
  double count;
  double mean;
  double m2;
};

struct CommError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

size_t elem_size(ElemType t, ReduceOp op = ReduceOp::Sum);
const char* op_name(ReduceOp op);

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual const char* backend() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  std::chrono::milliseconds timeout() const { return timeout_; }
  // The CUDA device whose memory the device collectives take; -1 when they take none.
  virtual int device() const { return -1; }

  // In place over `count` elements (for Welford: `count` triples of doubles).
  virtual void all_reduce(void* data, size_t count, ElemType type, ReduceOp op) = 0;
  // `out` receives size() * count elements, rank-major.
  virtual void all_gather(const void* in, void* out, size_t count, ElemType type) = 0;
  virtual void broadcast(void* data, size_t count, ElemType type, int root) = 0;
  virtual void barrier() = 0;

  // In place on device memory of this rank's device (the nccl backend);
  // `average` divides by size() (sum, float types). Host-only backends throw.
  virtual void all_reduce_device(void* data, size_t count, ElemType type, ReduceOp op, bool average) {
    (void)data, (void)count, (void)type, (void)op, (void)average;
    throw CommError(std::string("the ") + backend() + " backend reduces host memory, not CUDA tensors");
  }
  // `out` (device memory) receives size() * count elements, rank-major.
  virtual void all_gather_device(const void* in, void* out, size_t count, ElemType type) {
    (void)in, (void)out, (void)count, (void)type;
    throw CommError(std::string("the ") + backend() + " backend gathers host memory, not CUDA tensors");
  }
  virtual void broadcast_device(void* data, size_t count, ElemType type, int root) {
    (void)data, (void)count, (void)type, (void)root;
    throw CommError(std::string("the ") + backend() + " backend broadcasts host memory, not CUDA tensors");
  }

 protected:
  explicit Communicator(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  std::chrono::milliseconds timeout_;
};

}  // namespace comm
}  // namespace syncbn
