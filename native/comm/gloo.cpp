#include "gloo.h"

#ifdef SYNCBN_HAVE_GLOO

#include <gloo/rendezvous/context.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "gloo_mesh.h"
#include "gloo_watch.h"
#include "reduce.h"

namespace syncbn {
namespace comm {

namespace {

// Collectives as rounds of direct messages over Gloo's TCP pairs in
// synchronous mode. Gloo's own collectives (unbound buffers, asynchronous
// pairs) hand every message from its device thread to the caller through a
// futex, and announce every receive with a notification message first: about
// four thread wake-ups per message. On a VM where a wake-up costs tens of
// microseconds that, not the bytes, was the price of a small all-reduce
// (bench/NOTES.md, "Sync at the speed of the wire"). A synchronous pair is
// read by the calling thread itself, straight into a buffer registered once:
// one blocking recv per message, no device thread, no notifications.
//
// A round: every rank sends one message (at most kChunk bytes) to every
// other rank, then reads one from each. Reads happen only inside a round, in
// the calling thread, and TCP keeps each pair's messages in order, so a rank
// finds exactly its round's message when it reads, and a peer can be at most
// one round ahead. Sends cannot deadlock: ranks blocked in a cycle of sends
// would all be in the same round's send phase, each sending one message, and
// Gloo sizes a socket's send buffer to hold a whole message. Broadcast is
// the one non-round exchange: one-way, from a root to readers that send
// nothing until they have read it all. A message larger than its inbox is an
// error in the calling thread (GLOO_ENFORCE), never an abort.
class Rounds {
 public:
  static constexpr size_t kChunk = 256 * 1024;

  explicit Rounds(const std::shared_ptr<gloo::rendezvous::Context>& ctx)
      : ctx_(ctx), rank_(ctx->rank), size_(ctx->size), out_(kChunk * size_), inbox_(kChunk * size_),
        send_(size_), recv_(size_) {
    const int slot = ctx->nextSlot();
    for (int p = 0; p < size_; ++p) {
      if (p == rank_) continue;
      auto& pair = ctx->getPair(p);
      pair->setSync(true, false);
      send_[p] = pair->createSendBuffer(slot, out_.data(), out_.size());
      recv_[p] = pair->createRecvBuffer(slot, inbox_.data() + p * kChunk, kChunk);
    }
  }

  int rank() const { return rank_; }
  int size() const { return size_; }
  // Where this rank puts what it sends to `peer` (kChunk bytes), or to every
  // peer with `shared`.
  char* outgoing(int peer) { return out_.data() + peer * kChunk; }
  // What `peer` sent in the last round.
  const char* incoming(int peer) const { return inbox_.data() + peer * kChunk; }

  // Sends `bytes[p]` bytes of outgoing(p) (outgoing(0) for all with
  // `shared`) to each peer p that `to` selects, then waits for a message
  // from each peer that `from` selects.
  template <typename To, typename From>
  void round(const size_t* bytes, bool shared, To to, From from) {
    for (int k = 1; k < size_; ++k) {
      const int p = (rank_ + k) % size_;  // spread the first sends over the peers
      if (!to(p)) continue;
      send_[p]->send(shared ? 0 : p * kChunk, bytes[shared ? 0 : p], 0);
      send_[p]->waitSend();
    }
    for (int k = 1; k < size_; ++k) {
      const int p = (rank_ + size_ - k) % size_;
      if (from(p)) recv_[p]->waitRecv();
    }
  }

 private:
  std::shared_ptr<gloo::rendezvous::Context> ctx_;
  const int rank_;
  const int size_;
  std::vector<char> out_;
  std::vector<char> inbox_;
  std::vector<std::unique_ptr<gloo::transport::Buffer>> send_;
  std::vector<std::unique_ptr<gloo::transport::Buffer>> recv_;
};

class GlooComm : public Communicator {
 public:
  GlooComm(Mesh mesh, std::chrono::milliseconds timeout, std::chrono::milliseconds io_timeout, const std::string& prefix)
      : Communicator(timeout),
        ctx_(std::move(mesh.context)),
        watch_(std::move(mesh.store), std::move(mesh.peers), std::move(mesh.sockets), prefix, ctx_->rank, ctx_->size, timeout,
               io_timeout),
        rounds_(ctx_),
        acc_(Rounds::kChunk) {}

  const char* backend() const override { return "gloo"; }
  int rank() const override { return ctx_->rank; }
  int size() const override { return ctx_->size; }

  // Small payloads: every rank sends its chunk to every other and reduces
  // all of them in rank order (one hop per chunk; identical bits on every
  // rank). Large ones: reduce-scatter (rank p reduces block p) then
  // all-gather of the reduced blocks, as direct messages: 2 (W-1)/W of the
  // payload each way, the ring's traffic, in two hops per chunk.
  void all_reduce(void* data, size_t count, ElemType type, ReduceOp op) override {
    guard("all_reduce", [&] {
      const size_t es = elem_size(type, op);
      const size_t W = static_cast<size_t>(size());
      if (W == 1 || count == 0) return;
      if (count * es <= (W == 2 ? Rounds::kChunk : kGatherReduceBytes)) gather_reduce(static_cast<char*>(data), count, es, type, op);
      else scatter_reduce_gather(static_cast<char*>(data), count, es, type, op);
    });
  }

  void all_gather(const void* in, void* out, size_t count, ElemType type) override {
    guard("all_gather", [&] {
      const size_t bytes = count * elem_size(type);
      const char* src = static_cast<const char*>(in);
      char* dst = static_cast<char*>(out);
      std::memcpy(dst + rank() * bytes, src, bytes);
      // At least one round, so an empty all-gather still meets every rank.
      const size_t chunks = std::max<size_t>(1, (bytes + Rounds::kChunk - 1) / Rounds::kChunk);
      for (size_t c = 0; c < chunks; ++c) {
        const size_t off = c * Rounds::kChunk;
        const size_t n = std::min(Rounds::kChunk, bytes - off);
        if (n) std::memcpy(rounds_.outgoing(0), src + off, n);
        rounds_.round(&n, true, all, all);
        for (int p = 0; p < size(); ++p)
          if (p != rank() && n) std::memcpy(dst + p * bytes + off, rounds_.incoming(p), n);
      }
    });
  }

  void broadcast(void* data, size_t count, ElemType type, int root) override {
    if (root < 0 || root >= ctx_->size)
      throw CommError("gloo broadcast: root " + std::to_string(root) + " is not a rank of the group");
    guard("broadcast", [&] {
      const size_t bytes = count * elem_size(type);
      char* buf = static_cast<char*>(data);
      const bool me = rank() == root;
      for (size_t off = 0; off < bytes; off += Rounds::kChunk) {
        const size_t n = std::min(Rounds::kChunk, bytes - off);
        if (me) std::memcpy(rounds_.outgoing(0), buf + off, n);
        rounds_.round(&n, true, [&](int) { return me; }, [&](int p) { return p == root; });
        if (!me) std::memcpy(buf + off, rounds_.incoming(root), n);
      }
    });
  }

  void barrier() override {
    guard("barrier", [&] {
      const size_t n = 8;
      std::memset(rounds_.outgoing(0), 0, n);
      rounds_.round(&n, true, all, all);
    });
  }

 private:
  // All-reduce by gathering every rank's payload up to this size (at 2 ranks,
  // up to a chunk: the same bytes as reduce-scatter + all-gather in one hop
  // instead of two). From 3 ranks on it moves W-1 times the payload, so
  // larger ones reduce-scatter and all-gather.
  static constexpr size_t kGatherReduceBytes = 32 * 1024;
  static bool all(int) { return true; }

  // Reduces rank 0's, then 1's, ... chunk into acc_, so every rank computes
  // the same bits.
  void reduce_in_rank_order(const char* mine, size_t n, size_t es, ElemType type, ReduceOp op) {
    for (int r = 0; r < size(); ++r) {
      const char* src = r == rank() ? mine : rounds_.incoming(r);
      if (r == 0) std::memcpy(acc_.data(), src, n * es);
      else reduce_into(acc_.data(), src, n, type, op);
    }
  }

  void gather_reduce(char* data, size_t count, size_t es, ElemType type, ReduceOp op) {
    const size_t per = Rounds::kChunk / es;
    for (size_t first = 0; first < count; first += per) {
      const size_t n = std::min(per, count - first);
      const size_t bytes = n * es;
      std::memcpy(rounds_.outgoing(0), data + first * es, bytes);
      rounds_.round(&bytes, true, all, all);
      reduce_in_rank_order(rounds_.outgoing(0), n, es, type, op);
      std::memcpy(data + first * es, acc_.data(), bytes);
    }
  }

  void scatter_reduce_gather(char* data, size_t count, size_t es, ElemType type, ReduceOp op) {
    const size_t W = static_cast<size_t>(size());
    const size_t me = static_cast<size_t>(rank());
    // Block p: elements [begin(p), begin(p + 1)); whole elements (triples for Welford).
    auto begin = [&](size_t p) { return count * p / W; };
    const size_t per = Rounds::kChunk / es;
    size_t longest = 0;
    for (size_t p = 0; p < W; ++p) longest = std::max(longest, begin(p + 1) - begin(p));
    std::vector<size_t> bytes(W);
    // Reduce-scatter: chunk c of block p goes to rank p.
    for (size_t first = 0; first < longest; first += per) {
      for (size_t p = 0; p < W; ++p) {
        const size_t len = begin(p + 1) - begin(p);
        const size_t n = first < len ? std::min(per, len - first) : 0;
        bytes[p] = n * es;
        if (p != me && n) std::memcpy(rounds_.outgoing(static_cast<int>(p)), data + (begin(p) + first) * es, n * es);
      }
      const size_t mine = bytes[me] / es;
      const auto has = [&](int p) { return bytes[p] > 0; };
      // Every peer sends its part of my block when my block has this chunk.
      rounds_.round(bytes.data(), false, has, [&](int) { return mine > 0; });
      if (mine) {
        char* block = data + (begin(me) + first) * es;
        reduce_in_rank_order(block, mine, es, type, op);
        std::memcpy(block, acc_.data(), mine * es);
      }
    }
    // All-gather of the reduced blocks.
    for (size_t first = 0; first < longest; first += per) {
      std::vector<size_t> n(W);
      for (size_t p = 0; p < W; ++p) {
        const size_t len = begin(p + 1) - begin(p);
        n[p] = first < len ? std::min(per, len - first) : 0;
      }
      const size_t out = n[me] * es;
      if (out) std::memcpy(rounds_.outgoing(0), data + (begin(me) + first) * es, out);
      rounds_.round(&out, true, [&](int) { return out > 0; }, [&](int p) { return n[p] > 0; });
      for (size_t p = 0; p < W; ++p)
        if (p != me && n[p]) std::memcpy(data + (begin(p) + first) * es, rounds_.incoming(static_cast<int>(p)), n[p] * es);
    }
  }

  // Runs one operation; a failure names the ranks to blame (gloo_watch.h).
  template <typename Fn>
  void guard(const char* what, Fn&& fn) {
    ++ops_;
    const auto failed = [&](const std::string& why) {
      return CommError(std::string("gloo ") + what + " (rank " + std::to_string(ctx_->rank) + " of " + std::to_string(ctx_->size) +
                       ", timeout " + std::to_string(timeout_.count()) + " ms) failed: " + why);
    };
    if (watch_.severed()) throw failed(watch_.why_severed());
    watch_.begin(ops_, what);
    try {
      fn();
      watch_.end();
    } catch (const std::exception& e) {
      watch_.end();
      throw failed(watch_.blame(ops_, e.what()));
    }
  }

  std::shared_ptr<gloo::rendezvous::Context> ctx_;
  PeerWatch watch_;
  uint64_t ops_ = 0;
  Rounds rounds_;
  std::vector<char> acc_;
};

}  // namespace

bool gloo_available() { return true; }

std::unique_ptr<Communicator> gloo_connect(const GlooOptions& o) {
  try {
    // Over the TCP store a failed operation's roll call takes its grace out
    // of the timeout, so the named error still comes within it.
    const auto io_timeout = o.file_store.empty() ? o.timeout - roll_call_grace(o.timeout) : o.timeout;
    return std::make_unique<GlooComm>(connect_mesh(o, io_timeout), o.timeout, io_timeout, o.prefix);
  } catch (const CommError&) {
    throw;
  } catch (const std::exception& e) {
    throw CommError("gloo rendezvous of rank " + std::to_string(o.rank) + " of " + std::to_string(o.size) +
                    " failed: " + e.what());
  }
}

}  // namespace comm
}  // namespace syncbn

#else  // !SYNCBN_HAVE_GLOO

namespace syncbn {
namespace comm {

bool gloo_available() { return false; }

std::unique_ptr<Communicator> gloo_connect(const GlooOptions&) {
  throw CommError("the gloo backend is not available: this build of syncbn has no Gloo "
                  "(the prebuilt binary and the CMake build include it: `npm rebuild syncbn` with cmake on the PATH)");
}

}  // namespace comm
}  // namespace syncbn

#endif
