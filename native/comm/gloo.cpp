#include "gloo.h"

#ifdef SYNCBN_HAVE_GLOO

#include <gloo/common/error.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "reduce.h"
#include "store_client.h"

namespace syncbn {
namespace comm {

namespace {

// Gloo's Store interface over our client of the TypeScript store.
class TcpStore : public gloo::rendezvous::Store {
 public:
  TcpStore(std::shared_ptr<StoreClient> client, std::chrono::milliseconds timeout)
      : client_(std::move(client)), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override { client_->set(key, data); }
  std::vector<char> get(const std::string& key) override { return client_->get(key, timeout_); }
  void wait(const std::vector<std::string>& keys) override { client_->wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    client_->wait(keys, timeout);
  }

 private:
  std::shared_ptr<StoreClient> client_;
  std::chrono::milliseconds timeout_;
};

// How long ranks that failed a collective wait for each other, through the
// store, to learn which rank never came; taken out of the collective's own
// timeout so that the named error still comes within the timeout.
std::chrono::milliseconds roll_call_grace(std::chrono::milliseconds timeout) {
  return std::min(std::chrono::milliseconds(1000), timeout / 5);
}

// Gloo publishes each rank's pair addresses as the raw bytes of
// gloo::transport::tcp::Address's Impl: a sockaddr_storage (128 bytes) of
// which an IPv4 address fills 16 and IPv6 28, then the sequence number. The
// rest is whatever the stack held, stack and heap pointers among it, and it
// would be published to the store. MeshStore zeroes it before any set, and
// keeps each rank's listening address ("[ip]:port", as Gloo's errors print
// it) to name the rank behind an error.
constexpr size_t kAddressBytes = sizeof(sockaddr_storage) + sizeof(ssize_t);

class MeshStore : public gloo::rendezvous::Store {
 public:
  MeshStore(gloo::rendezvous::Store& inner, int size) : inner_(inner), peers_(std::make_shared<std::vector<std::string>>(size)) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    std::vector<char> clean = data;
    if (!clean.empty() && clean.size() % kAddressBytes == 0) {
      for (size_t off = 0; off < clean.size(); off += kAddressBytes) {
        sockaddr_storage ss;
        std::memcpy(&ss, clean.data() + off, sizeof ss);
        const size_t used = ss.ss_family == AF_INET ? sizeof(sockaddr_in) : ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof ss;
        std::memset(clean.data() + off + used, 0, sizeof(sockaddr_storage) - used);
      }
    }
    inner_.set(key, clean);
  }

  std::vector<char> get(const std::string& key) override {
    std::vector<char> data = inner_.get(key);
    remember(key, data);
    return data;
  }
  void wait(const std::vector<std::string>& keys) override { inner_.wait(keys); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override { inner_.wait(keys, timeout); }

  std::shared_ptr<std::vector<std::string>> peers() const { return peers_; }

 private:
  void remember(const std::string& key, const std::vector<char>& data) {
    if (key.empty() || key.size() > 9 || key.find_first_not_of("0123456789") != std::string::npos) return;
    const size_t r = std::stoul(key);
    if (r >= peers_->size() || data.size() < kAddressBytes) return;
    sockaddr_storage ss;
    std::memcpy(&ss, data.data(), sizeof ss);
    char ip[INET6_ADDRSTRLEN] = {0};
    int port = 0;
    if (ss.ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
      inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
      port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
      inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
      port = ntohs(a->sin6_port);
    } else {
      return;
    }
    (*peers_)[r] = "[" + std::string(ip) + "]:" + std::to_string(port);
  }

  gloo::rendezvous::Store& inner_;
  std::shared_ptr<std::vector<std::string>> peers_;
};

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
  GlooComm(std::shared_ptr<gloo::rendezvous::Context> ctx, std::chrono::milliseconds timeout,
           std::shared_ptr<std::vector<std::string>> peers, std::shared_ptr<StoreClient> store, std::string prefix)
      : Communicator(timeout),
        ctx_(std::move(ctx)),
        peers_(std::move(peers)),
        store_(std::move(store)),
        prefix_(std::move(prefix)),
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

  template <typename Fn>
  void guard(const char* what, Fn&& fn) {
    ++ops_;
    try {
      fn();
    } catch (const std::exception& e) {
      const std::string msg = e.what();
      // Answer the roll call first, whoever this rank blames: a rank that
      // named its culprit from Gloo's message and skipped it was counted as
      // gone by the ranks that took the roll call.
      answer_roll_call();
      std::string who = culprit(msg);
      if (who.empty()) who = roll_call(msg.find("closed") != std::string::npos || msg.find("reset") != std::string::npos);
      throw CommError(std::string("gloo ") + what + " (rank " + std::to_string(ctx_->rank) + " of " +
                      std::to_string(ctx_->size) + ", timeout " + std::to_string(timeout_.count()) +
                      " ms) failed: " + who + e.what());
    }
  }

  // Every rank that fails operation #ops_ says so in the store and waits a
  // moment for the others: those that never say so did not reach it (a
  // stalled rank), and are named. Ops run in lockstep on every rank (the
  // checked layer sees to it), so the number names the same operation.
  std::string roll_call_key(int rank) const {
    return prefix_ + "/roll_call/" + std::to_string(ops_) + "/" + std::to_string(rank);
  }

  void answer_roll_call() {
    if (!store_) return;
    try {
      store_->set(roll_call_key(ctx_->rank), {'1'});
    } catch (const std::exception&) {
      // The store is gone with rank 0: nobody is left to take the roll call.
    }
  }

  std::string roll_call(bool closed) {
    if (!store_) return "";
    try {
      std::vector<std::string> keys;
      for (int r = 0; r < ctx_->size; ++r) keys.push_back(roll_call_key(r));
      const std::vector<bool> here = store_->present(keys, roll_call_grace(timeout_));
      std::string absent, present;
      for (int r = 0; r < ctx_->size; ++r) {
        std::string& list = here[r] ? present : absent;
        list += (list.empty() ? "" : ", ") + std::to_string(r);
      }
      if (absent.empty()) return "every rank reached this operation (a network fault?): ";
      const bool one = absent.find(',') == std::string::npos;
      return (one ? "rank " : "ranks ") + absent +
             (closed ? (one ? " is gone (its connection closed: it exited or crashed" : " are gone (their connections closed: they exited or crashed")
                     : (one ? " did not reach it within the timeout (" : " did not reach it within the timeout (")) +
             (closed ? "; " : "") + "ranks [" + present + "] " + (closed ? "are here" : "did") + "): ";
    } catch (const std::exception&) {
      return "";  // the store is gone with rank 0: nothing more to learn
    }
  }

  // "rank N (its connection closed: it exited or crashed) " when Gloo's
  // message holds the address of rank N's listener; a timeout names nobody
  // (the communicator cannot tell which rank is late: the checked layer does).
  std::string culprit(const std::string& msg) const {
    for (size_t r = 0; r < peers_->size(); ++r) {
      const std::string& a = (*peers_)[r];
      if (a.empty() || static_cast<int>(r) == ctx_->rank || msg.find(a) == std::string::npos) continue;
      const bool closed = msg.find("closed") != std::string::npos || msg.find("reset") != std::string::npos;
      return "rank " + std::to_string(r) + (closed ? " closed its connection (it exited or crashed): " : ": ");
    }
    return "";
  }

  std::shared_ptr<gloo::rendezvous::Context> ctx_;
  std::shared_ptr<std::vector<std::string>> peers_;
  std::shared_ptr<StoreClient> store_;
  std::string prefix_;
  uint64_t ops_ = 0;
  Rounds rounds_;
  std::vector<char> acc_;
};

// Gloo's device setup dereferences what a failed lookup left it (a crash in
// some runs), so the address is resolved, and bound once, here first.
void check_listen_address(const GlooOptions& o) {
  const std::string who = "gloo rendezvous of rank " + std::to_string(o.rank) + ": ";
  if (!o.iface.empty()) {
    if (o.iface.size() >= IF_NAMESIZE || if_nametoindex(o.iface.c_str()) == 0)
      throw CommError(who + "network interface '" + o.iface + "' (GLOO_SOCKET_IFNAME) does not exist on this machine");
    return;
  }
  if (o.hostname.empty() || o.hostname.size() > 253)
    throw CommError(who + "the address to listen on (SYNCBN_GLOO_HOSTNAME) must be a host name of 1 to 253 characters");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(o.hostname.c_str(), nullptr, &hints, &res);
  if (rc != 0 || res == nullptr)
    throw CommError(who + "cannot resolve the address to listen on, '" + o.hostname + "' (SYNCBN_GLOO_HOSTNAME): " + gai_strerror(rc));
  bool bound = false;
  for (addrinfo* a = res; a != nullptr && !bound; a = a->ai_next) {
    const int fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    bound = ::bind(fd, a->ai_addr, a->ai_addrlen) == 0;
    ::close(fd);
  }
  freeaddrinfo(res);
  if (!bound)
    throw CommError(who + "'" + o.hostname + "' (SYNCBN_GLOO_HOSTNAME) is not an address of this machine: cannot listen on it");
}

}  // namespace

bool gloo_available() { return true; }

std::unique_ptr<Communicator> gloo_connect(const GlooOptions& o) {
  try {
    check_listen_address(o);
    gloo::transport::tcp::attr attr;
    if (!o.iface.empty()) attr.iface = o.iface;
    else attr.hostname = o.hostname;
    auto dev = gloo::transport::tcp::CreateDevice(attr);
    auto ctx = std::make_shared<gloo::rendezvous::Context>(o.rank, o.size);
    // Over the TCP store a failed operation's roll call takes its grace out
    // of the timeout, so the named error still comes within it.
    ctx->setTimeout(o.file_store.empty() ? o.timeout - roll_call_grace(o.timeout) : o.timeout);
    std::shared_ptr<std::vector<std::string>> peers;
    std::shared_ptr<StoreClient> client;
    if (!o.file_store.empty()) {
      gloo::rendezvous::FileStore files(o.file_store);
      gloo::rendezvous::PrefixStore store(o.prefix, files);
      MeshStore mesh(store, o.size);
      ctx->connectFullMesh(mesh, dev);
      peers = mesh.peers();
    } else {
      client = std::make_shared<StoreClient>(o.store_host, o.store_port, o.secret, o.timeout);
      TcpStore tcp(client, o.timeout);
      gloo::rendezvous::PrefixStore store(o.prefix, tcp);
      MeshStore mesh(store, o.size);
      ctx->connectFullMesh(mesh, dev);
      peers = mesh.peers();
    }
    return std::make_unique<GlooComm>(ctx, o.timeout, peers, client, o.prefix);
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
