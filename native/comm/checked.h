// Every collective first agrees on what it is. Gloo aborts the process when
// ranks post buffers of different sizes, and any backend silently mixes two
// different calls of the same size; so each collective starts with one
// all-gather of a fixed-size block that every rank sends with the same
// length whatever it was asked to do: a header (kind, element type, op,
// count, root, the caller's tag) and the first bytes of the payload. Every
// rank then sees every rank's header and either throws the same
// CommMismatch, or finishes the small payload locally (reducing the gathered
// chunks in rank order, the same bits everywhere) and moves the rest, whose
// size is now known to agree, with the backend's own collective. A payload
// that fits the block costs one round trip, the same as the bare collective.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "communicator.h"

namespace syncbn {
namespace comm {

enum class CallKind : int64_t { AllReduce = 1, AllGather = 2, Broadcast = 3, Barrier = 4, AllReduceDevice = 5, BroadcastDevice = 6,
                              AllGatherDevice = 7 };

// What the caller says about a call beyond its shape: tag[0] names the source
// (0 a user collective, 1 a SyncBatchNorm sync), tag[1..3] its fingerprint.
using CallTag = std::array<int64_t, 4>;

struct CallHeader {
  int64_t version;
  int64_t kind;
  int64_t type;
  int64_t op;
  int64_t count;
  int64_t root;
  CallTag tag;
  int64_t rank;
  int64_t size;
  int64_t reserved[4];

  bool same_call(const CallHeader& o) const;
  std::string describe() const;
};
static_assert(sizeof(CallHeader) == 128, "the header is a fixed 128 bytes on the wire");

// Ranks called different collectives at the same point; `calls` holds every
// rank's header (index = group rank), identical on every rank.
struct CommMismatch : CommError {
  CommMismatch(const std::string& what, std::vector<CallHeader> c) : CommError(what), calls(std::move(c)) {}
  std::vector<CallHeader> calls;
};

class CheckedComm : public Communicator {
 public:
  // Bytes of payload that ride in the block (a multiple of 24, 8 and 4, so a
  // Welford triple or an element is never split).
  static constexpr size_t kInlineBytes = 1920;
  static constexpr size_t kBlockBytes = sizeof(CallHeader) + kInlineBytes;

  explicit CheckedComm(std::unique_ptr<Communicator> inner);

  const char* backend() const override { return inner_->backend(); }
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  int device() const override { return inner_->device(); }

  void all_reduce(void* data, size_t count, ElemType type, ReduceOp op) override { all_reduce(data, count, type, op, CallTag{}, false); }
  void all_gather(const void* in, void* out, size_t count, ElemType type) override { all_gather(in, out, count, type, CallTag{}); }
  void broadcast(void* data, size_t count, ElemType type, int root) override { broadcast(data, count, type, root, CallTag{}); }
  void barrier() override { barrier(CallTag{}); }
  void all_reduce_device(void* data, size_t count, ElemType type, ReduceOp op, bool average) override {
    all_reduce_device(data, count, type, op, average, CallTag{});
  }
  void all_gather_device(const void* in, void* out, size_t count, ElemType type) override {
    all_gather_device(in, out, count, type, CallTag{});
  }
  void broadcast_device(void* data, size_t count, ElemType type, int root) override;

  // `average` only enters the header (the caller divides), so 'avg' never meets 'sum'.
  void all_reduce(void* data, size_t count, ElemType type, ReduceOp op, const CallTag& tag, bool average);
  void all_gather(const void* in, void* out, size_t count, ElemType type, const CallTag& tag);
  void broadcast(void* data, size_t count, ElemType type, int root, const CallTag& tag);
  void barrier(const CallTag& tag);
  // Device memory cannot ride in the block: these agree first, then move it all.
  void all_reduce_device(void* data, size_t count, ElemType type, ReduceOp op, bool average, const CallTag& tag);
  void all_gather_device(const void* in, void* out, size_t count, ElemType type, const CallTag& tag);

  // Collectives started so far (the number of the one that failed, in errors).
  uint64_t calls() const { return calls_; }

 private:
  // Gathers every rank's block (header + the first `inline_bytes` of
  // `payload`) into gathered_, throwing CommMismatch on disagreement.
  void agree(const CallHeader& h, const void* payload, size_t inline_bytes);
  CallHeader header(CallKind kind, ElemType type, ReduceOp op, size_t count, int root, const CallTag& tag) const;
  const char* chunk(int r) const { return gathered_.data() + r * kBlockBytes + sizeof(CallHeader); }
  [[noreturn]] void rethrow(const CallHeader& h, const std::exception& e) const;

  std::unique_ptr<Communicator> inner_;
  std::vector<char> block_;
  std::vector<char> gathered_;
  uint64_t calls_ = 0;
};

}  // namespace comm
}  // namespace syncbn
