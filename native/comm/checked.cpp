#include "checked.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <sstream>

#include "reduce.h"

namespace syncbn {
namespace comm {

namespace {

constexpr int64_t kVersion = 0x53424e01;  // "SBN" and the layout's version

const char* kind_name(int64_t k) {
  switch (static_cast<CallKind>(k)) {
    case CallKind::AllReduce: return "all_reduce";
    case CallKind::AllGather: return "all_gather";
    case CallKind::Broadcast: return "broadcast";
    case CallKind::Barrier: return "barrier";
    case CallKind::AllReduceDevice: return "all_reduce_device";
    case CallKind::BroadcastDevice: return "broadcast_device";
    case CallKind::AllGatherDevice: return "all_gather_device";
  }
  return "an unknown collective";
}

const char* type_name(int64_t t) {
  switch (static_cast<ElemType>(t)) {
    case ElemType::Float32: return "float32";
    case ElemType::Float64: return "float64";
    case ElemType::Int64: return "int64";
  }
  return "?";
}

}  // namespace

bool CallHeader::same_call(const CallHeader& o) const {
  return version == o.version && kind == o.kind && type == o.type && op == o.op && count == o.count &&
         root == o.root && tag == o.tag && size == o.size;
}

std::string CallHeader::describe() const {
  if (version != kVersion) return "something that is not a syncbn collective";
  std::ostringstream os;
  os << kind_name(kind);
  const CallKind k = static_cast<CallKind>(kind);
  if (k != CallKind::Barrier) {
    os << " of " << count << (op == static_cast<int64_t>(ReduceOp::Welford) ? " welford triples" : std::string(" ") + type_name(type));
    if (k == CallKind::AllReduce || k == CallKind::AllReduceDevice)
      os << " (" << (root == 1 ? "avg" : op_name(static_cast<ReduceOp>(op))) << ")";
    if (k == CallKind::Broadcast || k == CallKind::BroadcastDevice) os << " from rank " << root;
  }
  if (tag[0] != 0) os << " [tag " << tag[0] << ":" << tag[1] << "," << tag[2] << "," << tag[3] << "]";
  if (size) os << " in a group of " << size;
  return os.str();
}

CheckedComm::CheckedComm(std::unique_ptr<Communicator> inner)
    : Communicator(inner->timeout()), inner_(std::move(inner)), block_(kBlockBytes), gathered_(kBlockBytes * inner_->size()) {}

CallHeader CheckedComm::header(CallKind kind, ElemType type, ReduceOp op, size_t count, int root, const CallTag& tag) const {
  CallHeader h{};
  h.version = kVersion;
  h.kind = static_cast<int64_t>(kind);
  h.type = static_cast<int64_t>(type);
  h.op = static_cast<int64_t>(op);
  h.count = static_cast<int64_t>(count);
  h.root = root;
  h.tag = tag;
  h.rank = rank();
  h.size = size();
  return h;
}

void CheckedComm::rethrow(const CallHeader& h, const std::exception& e) const {
  throw CommError("collective #" + std::to_string(calls_) + " (" + h.describe() + ") on rank " +
                  std::to_string(rank()) + ": " + e.what());
}

void CheckedComm::agree(const CallHeader& h, const void* payload, size_t inline_bytes) {
  ++calls_;
  std::memcpy(block_.data(), &h, sizeof h);
  std::memset(block_.data() + sizeof h, 0, kInlineBytes);
  if (inline_bytes) std::memcpy(block_.data() + sizeof h, payload, inline_bytes);
  try {
    inner_->all_gather(block_.data(), gathered_.data(), kBlockBytes / 8, ElemType::Float64);
  } catch (const std::exception& e) {
    rethrow(h, e);
  }
  std::vector<CallHeader> calls(size());
  bool same = true;
  for (int r = 0; r < size(); ++r) {
    std::memcpy(&calls[r], gathered_.data() + r * kBlockBytes, sizeof(CallHeader));
    same = same && calls[r].same_call(h);
  }
  if (same) return;
  // Group the ranks by what they called, in order of first appearance.
  std::vector<std::pair<std::string, std::vector<int>>> groups;
  for (int r = 0; r < size(); ++r) {
    const std::string d = calls[r].describe();
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == d; });
    if (it == groups.end()) groups.push_back({d, {r}});
    else it->second.push_back(r);
  }
  std::ostringstream os;
  os << "ranks called different collectives at collective #" << calls_ << ": ";
  for (size_t i = 0; i < groups.size(); ++i) {
    os << (i ? "; " : "") << "ranks [";
    for (size_t j = 0; j < groups[i].second.size(); ++j) os << (j ? ", " : "") << groups[i].second[j];
    os << "] called " << groups[i].first;
  }
  throw CommMismatch(os.str(), std::move(calls));
}

void CheckedComm::all_reduce(void* data, size_t count, ElemType type, ReduceOp op, const CallTag& tag, bool average) {
  const size_t es = elem_size(type, op);
  const size_t head = std::min(count, kInlineBytes / es);
  const CallHeader h = header(CallKind::AllReduce, type, op, count, average ? 1 : 0, tag);
  agree(h, data, head * es);
  if (head) {
    std::memcpy(data, chunk(0), head * es);
    for (int r = 1; r < size(); ++r) reduce_into(data, chunk(r), head, type, op);
  }
  if (count > head) {
    try {
      inner_->all_reduce(static_cast<char*>(data) + head * es, count - head, type, op);
    } catch (const std::exception& e) {
      rethrow(h, e);
    }
  }
}

void CheckedComm::all_gather(const void* in, void* out, size_t count, ElemType type, const CallTag& tag) {
  const size_t bytes = count * elem_size(type);
  const bool fits = bytes <= kInlineBytes;
  const CallHeader h = header(CallKind::AllGather, type, ReduceOp::Sum, count, 0, tag);
  agree(h, in, fits ? bytes : 0);
  if (fits) {
    for (int r = 0; r < size(); ++r)
      if (bytes) std::memcpy(static_cast<char*>(out) + r * bytes, chunk(r), bytes);
    return;
  }
  try {
    inner_->all_gather(in, out, count, type);
  } catch (const std::exception& e) {
    rethrow(h, e);
  }
}

void CheckedComm::broadcast(void* data, size_t count, ElemType type, int root, const CallTag& tag) {
  if (root < 0 || root >= size())
    throw CommError(std::string(backend()) + " broadcast: root " + std::to_string(root) + " is not a rank of the group");
  const size_t es = elem_size(type);
  const size_t head = std::min(count, kInlineBytes / es);
  const CallHeader h = header(CallKind::Broadcast, type, ReduceOp::Sum, count, root, tag);
  agree(h, data, head * es);
  if (head && rank() != root) std::memcpy(data, chunk(root), head * es);
  if (count > head) {
    try {
      inner_->broadcast(static_cast<char*>(data) + head * es, count - head, type, root);
    } catch (const std::exception& e) {
      rethrow(h, e);
    }
  }
}

void CheckedComm::barrier(const CallTag& tag) {
  // The all-gather of the blocks is itself a barrier.
  agree(header(CallKind::Barrier, ElemType::Float32, ReduceOp::Sum, 0, 0, tag), nullptr, 0);
}

void CheckedComm::all_reduce_device(void* data, size_t count, ElemType type, ReduceOp op, bool average, const CallTag& tag) {
  const CallHeader h = header(CallKind::AllReduceDevice, type, op, count, average ? 1 : 0, tag);
  agree(h, nullptr, 0);
  try {
    inner_->all_reduce_device(data, count, type, op, average);
  } catch (const std::exception& e) {
    rethrow(h, e);
  }
}

void CheckedComm::all_gather_device(const void* in, void* out, size_t count, ElemType type, const CallTag& tag) {
  const CallHeader h = header(CallKind::AllGatherDevice, type, ReduceOp::Sum, count, 0, tag);
  agree(h, nullptr, 0);
  try {
    inner_->all_gather_device(in, out, count, type);
  } catch (const std::exception& e) {
    rethrow(h, e);
  }
}

void CheckedComm::broadcast_device(void* data, size_t count, ElemType type, int root) {
  const CallHeader h = header(CallKind::BroadcastDevice, type, ReduceOp::Sum, count, root, CallTag{});
  agree(h, nullptr, 0);
  try {
    inner_->broadcast_device(data, count, type, root);
  } catch (const std::exception& e) {
    rethrow(h, e);
  }
}

}  // namespace comm
}  // namespace syncbn
