// The threads backend. One collective at a time per group, in two phases:
// every rank deposits its buffer pointer (arrive); the last to arrive reduces
// all inputs in rank order into a shared result, so every rank gets the same
// bits whatever the arrival order; then each copies the result out (depart).
// A rank that does not arrive in time breaks the group, and every waiting
// rank gets an error naming the missing ranks.
#include "threads.h"

#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

#include "reduce.h"

namespace syncbn {
namespace comm {

namespace {

enum class Kind { AllReduce, AllGather, Broadcast, Barrier };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::AllReduce: return "all_reduce";
    case Kind::AllGather: return "all_gather";
    case Kind::Broadcast: return "broadcast";
    case Kind::Barrier: return "barrier";
  }
  return "?";
}

std::string rank_list(const std::vector<bool>& present, bool want) {
  std::ostringstream os;
  os << "[";
  bool first = true;
  for (size_t r = 0; r < present.size(); ++r) {
    if (present[r] != want) continue;
    os << (first ? "" : ", ") << r;
    first = false;
  }
  os << "]";
  return os.str();
}

struct Group {
  explicit Group(std::string n, int s)
      : name(std::move(n)), size(s), joined(s, false), present(s, false), inputs(s, nullptr) {}

  const std::string name;
  const int size;
  std::mutex mu;
  std::condition_variable cv;

  std::vector<bool> joined;
  int joined_count = 0;

  // Current collective.
  bool departing = false;
  uint64_t generation = 0;
  int arrived = 0;
  int departed = 0;
  std::vector<bool> present;
  std::vector<const void*> inputs;
  Kind kind = Kind::Barrier;
  size_t count = 0;
  ElemType type = ElemType::Float32;
  ReduceOp op = ReduceOp::Sum;
  int root = 0;
  std::string mismatch;
  std::vector<char> result;

  bool broken = false;
  std::string broken_reason;
};

std::mutex g_registry_mu;
// Groups still gathering their ranks; a complete group leaves the registry so
// a later job may reuse the name.
std::map<std::string, std::shared_ptr<Group>> g_forming;

class ThreadsComm : public Communicator {
 public:
  ThreadsComm(std::shared_ptr<Group> g, int rank, std::chrono::milliseconds timeout)
      : Communicator(timeout), g_(std::move(g)), rank_(rank) {}

  const char* backend() const override { return "threads"; }
  int rank() const override { return rank_; }
  int size() const override { return g_->size; }

  void all_reduce(void* data, size_t count, ElemType type, ReduceOp op) override {
    run(Kind::AllReduce, data, data, count, type, op, 0);
  }
  void all_gather(const void* in, void* out, size_t count, ElemType type) override {
    run(Kind::AllGather, in, out, count, type, ReduceOp::Sum, 0);
  }
  void broadcast(void* data, size_t count, ElemType type, int root) override {
    run(Kind::Broadcast, data, data, count, type, ReduceOp::Sum, root);
  }
  void barrier() override { run(Kind::Barrier, nullptr, nullptr, 0, ElemType::Float32, ReduceOp::Sum, 0); }

 private:
  std::string where(Kind k) const {
    std::ostringstream os;
    os << "threads " << kind_name(k) << " in group '" << g_->name << "' (rank " << rank_ << " of "
       << g_->size << ")";
    return os.str();
  }

  [[noreturn]] void fail(std::unique_lock<std::mutex>&, const std::string& why) {
    throw CommError(why);
  }

  void compute_result() {
    Group& g = *g_;
    const size_t bytes = g.count * elem_size(g.type, g.op);
    switch (g.kind) {
      case Kind::AllReduce:
        g.result.assign(static_cast<const char*>(g.inputs[0]), static_cast<const char*>(g.inputs[0]) + bytes);
        for (int r = 1; r < g.size; ++r) reduce_into(g.result.data(), g.inputs[r], g.count, g.type, g.op);
        break;
      case Kind::AllGather:
        g.result.resize(bytes * g.size);
        for (int r = 0; r < g.size; ++r)
          if (bytes) std::memcpy(g.result.data() + bytes * r, g.inputs[r], bytes);
        break;
      case Kind::Broadcast:
        g.result.assign(static_cast<const char*>(g.inputs[g.root]), static_cast<const char*>(g.inputs[g.root]) + bytes);
        break;
      case Kind::Barrier:
        g.result.clear();
        break;
    }
  }

  void run(Kind kind, const void* in, void* out, size_t count, ElemType type, ReduceOp op, int root) {
    Group& g = *g_;
    std::unique_lock<std::mutex> lk(g.mu);
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    if (g.broken) fail(lk, where(kind) + ": the group is broken: " + g.broken_reason);
    if (kind == Kind::Broadcast && (root < 0 || root >= g.size))
      fail(lk, where(kind) + ": root " + std::to_string(root) + " is not a rank of the group");
    // Wait for the previous collective to be fully collected.
    while (g.departing && !g.broken) {
      if (g.cv.wait_until(lk, deadline) == std::cv_status::timeout && g.departing) {
        fail(lk, where(kind) + ": timed out waiting for the previous collective to finish");
      }
    }
    if (g.broken) fail(lk, where(kind) + ": the group is broken: " + g.broken_reason);
    const uint64_t gen = g.generation;
    if (g.arrived == 0) {
      g.kind = kind;
      g.count = count;
      g.type = type;
      g.op = op;
      g.root = root;
      g.mismatch.clear();
    } else if (g.mismatch.empty() &&
               (g.kind != kind || g.count != count || g.type != type || g.op != op || g.root != root)) {
      std::ostringstream os;
      os << "ranks called different collectives at the same point: " << kind_name(g.kind) << " of "
         << g.count << " elements (" << op_name(g.op) << ") and, on rank " << rank_ << ", "
         << kind_name(kind) << " of " << count << " elements (" << op_name(op) << ")";
      g.mismatch = os.str();
    }
    g.inputs[rank_] = in;
    g.present[rank_] = true;
    if (++g.arrived == g.size) {
      if (g.mismatch.empty()) compute_result();
      g.departing = true;
      g.cv.notify_all();
    } else {
      while (!(g.departing && g.generation == gen) && !g.broken) {
        if (g.cv.wait_until(lk, deadline) == std::cv_status::timeout &&
            !(g.departing && g.generation == gen) && !g.broken) {
          std::ostringstream os;
          os << where(kind) << ": timed out after " << timeout_.count() << " ms waiting for ranks "
             << rank_list(g.present, false) << " (arrived: " << rank_list(g.present, true) << ")";
          g.broken = true;
          g.broken_reason = os.str();
          g.cv.notify_all();
          fail(lk, os.str());
        }
      }
      if (g.broken) fail(lk, where(kind) + ": " + g.broken_reason);
    }
    const std::string mismatch = g.mismatch;
    if (mismatch.empty() && out != nullptr && !g.result.empty()) std::memcpy(out, g.result.data(), g.result.size());
    if (++g.departed == g.size) {
      g.arrived = 0;
      g.departed = 0;
      g.departing = false;
      g.present.assign(g.size, false);
      g.inputs.assign(g.size, nullptr);
      ++g.generation;
      g.cv.notify_all();
    }
    if (!mismatch.empty()) fail(lk, where(kind) + ": " + mismatch);
  }

  std::shared_ptr<Group> g_;
  const int rank_;
};

}  // namespace

struct ThreadsJoin::State {
  std::shared_ptr<Group> g;
  int rank;
  std::chrono::milliseconds timeout;
  std::chrono::steady_clock::time_point deadline;
};

ThreadsJoin::ThreadsJoin(std::unique_ptr<State> s) : s_(std::move(s)) {}
ThreadsJoin::~ThreadsJoin() = default;
void ThreadsJoin::finish() { s_.reset(); }

std::unique_ptr<ThreadsJoin> threads_join_start(const std::string& name, int rank, int size,
                                                std::chrono::milliseconds timeout) {
  if (size < 1) throw CommError("threads rendezvous: world size must be >= 1");
  if (rank < 0 || rank >= size)
    throw CommError("threads rendezvous: rank " + std::to_string(rank) + " is outside [0, " +
                    std::to_string(size) + ")");
  std::shared_ptr<Group> g;
  {
    std::lock_guard<std::mutex> lk(g_registry_mu);
    auto it = g_forming.find(name);
    if (it == g_forming.end()) it = g_forming.emplace(name, std::make_shared<Group>(name, size)).first;
    g = it->second;
    if (g->size != size)
      throw CommError("threads rendezvous '" + name + "': rank " + std::to_string(rank) +
                      " expects world size " + std::to_string(size) + " but the group has size " +
                      std::to_string(g->size));
  }
  std::unique_lock<std::mutex> lk(g->mu);
  if (g->joined[rank]) throw CommError("threads rendezvous '" + name + "': rank " + std::to_string(rank) + " joined twice");
  g->joined[rank] = true;
  if (++g->joined_count == size) {
    {
      std::lock_guard<std::mutex> reg(g_registry_mu);
      auto it = g_forming.find(name);
      if (it != g_forming.end() && it->second == g) g_forming.erase(it);
    }
    g->cv.notify_all();
  }
  auto st = std::make_unique<ThreadsJoin::State>(ThreadsJoin::State{g, rank, timeout, std::chrono::steady_clock::now() + timeout});
  return std::unique_ptr<ThreadsJoin>(new ThreadsJoin(std::move(st)));
}

std::unique_ptr<Communicator> threads_join_poll(ThreadsJoin& j, std::chrono::milliseconds wait) {
  ThreadsJoin::State& s = *j.s_;
  Group& g = *s.g;
  std::unique_lock<std::mutex> lk(g.mu);
  const auto until = std::min(s.deadline, std::chrono::steady_clock::now() + wait);
  while (g.joined_count < g.size && !g.broken && std::chrono::steady_clock::now() < until) g.cv.wait_until(lk, until);
  if (g.broken) throw CommError(g.broken_reason);
  if (g.joined_count == g.size) return std::make_unique<ThreadsComm>(s.g, s.rank, s.timeout);
  if (std::chrono::steady_clock::now() < s.deadline) return nullptr;
  const std::string why = "threads rendezvous '" + g.name + "' timed out after " + std::to_string(s.timeout.count()) +
                          " ms waiting for ranks " + rank_list(g.joined, false) + " to join";
  g.broken = true;
  g.broken_reason = why;
  g.cv.notify_all();
  lk.unlock();
  std::lock_guard<std::mutex> reg(g_registry_mu);
  auto it = g_forming.find(g.name);
  if (it != g_forming.end() && it->second == s.g) g_forming.erase(it);
  throw CommError(why);
}

std::unique_ptr<Communicator> threads_join(const std::string& name, int rank, int size,
                                           std::chrono::milliseconds timeout) {
  std::unique_ptr<ThreadsJoin> j = threads_join_start(name, rank, size, timeout);
  for (;;) {
    if (auto c = threads_join_poll(*j, timeout)) return c;
  }
}

}  // namespace comm
}  // namespace syncbn
