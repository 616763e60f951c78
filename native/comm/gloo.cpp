#include "gloo.h"

#ifdef SYNCBN_HAVE_GLOO

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
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

#include <cstring>

#include "reduce.h"
#include "store_client.h"

namespace syncbn {
namespace comm {

namespace {

// Gloo's Store interface over our client of the TypeScript store.
class TcpStore : public gloo::rendezvous::Store {
 public:
  TcpStore(const std::string& host, int port, const std::string& secret, std::chrono::milliseconds timeout)
      : client_(host, port, secret, timeout), timeout_(timeout) {}
  void set(const std::string& key, const std::vector<char>& data) override { client_.set(key, data); }
  std::vector<char> get(const std::string& key) override { return client_.get(key, timeout_); }
  void wait(const std::vector<std::string>& keys) override { client_.wait(keys, timeout_); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override {
    client_.wait(keys, timeout);
  }

 private:
  StoreClient client_;
  std::chrono::milliseconds timeout_;
};

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

template <typename T>
void reduce_fn(void* c, const void* a, const void* b, size_t n, ElemType type, ReduceOp op) {
  if (c != a) std::memcpy(c, a, n * sizeof(T));
  reduce_into(c, b, n, type, op);
}

class GlooComm : public Communicator {
 public:
  GlooComm(std::shared_ptr<gloo::rendezvous::Context> ctx, std::chrono::milliseconds timeout,
           std::shared_ptr<std::vector<std::string>> peers)
      : Communicator(timeout), ctx_(std::move(ctx)), peers_(std::move(peers)) {}

  const char* backend() const override { return "gloo"; }
  int rank() const override { return ctx_->rank; }
  int size() const override { return ctx_->size; }

  void all_reduce(void* data, size_t count, ElemType type, ReduceOp op) override {
    guard("all_reduce", [&] {
      gloo::AllreduceOptions opts(ctx_);
      opts.setTimeout(timeout_);
      switch (op == ReduceOp::Welford ? ElemType::Int64 : type) {
        case ElemType::Float32:
          opts.setOutput(static_cast<float*>(data), count);
          opts.setReduceFunction([type, op](void* c, const void* a, const void* b, size_t n) { reduce_fn<float>(c, a, b, n, type, op); });
          break;
        case ElemType::Float64:
          opts.setOutput(static_cast<double*>(data), count);
          opts.setReduceFunction([type, op](void* c, const void* a, const void* b, size_t n) { reduce_fn<double>(c, a, b, n, type, op); });
          break;
        case ElemType::Int64:
          if (op == ReduceOp::Welford) {
            // Whole triples per element, so segments never split one.
            opts.setOutput(static_cast<WelfordTriple*>(data), count);
            opts.setReduceFunction([type, op](void* c, const void* a, const void* b, size_t n) { reduce_fn<WelfordTriple>(c, a, b, n, type, op); });
          } else {
            opts.setOutput(static_cast<int64_t*>(data), count);
            opts.setReduceFunction([type, op](void* c, const void* a, const void* b, size_t n) { reduce_fn<int64_t>(c, a, b, n, type, op); });
          }
          break;
      }
      gloo::allreduce(opts);
    });
  }

  void all_gather(const void* in, void* out, size_t count, ElemType type) override {
    guard("all_gather", [&] {
      gloo::AllgatherOptions opts(ctx_);
      opts.setTimeout(timeout_);
      const size_t bytes = count * elem_size(type);
      opts.setInput(const_cast<char*>(static_cast<const char*>(in)), bytes);
      opts.setOutput(static_cast<char*>(out), bytes * ctx_->size);
      gloo::allgather(opts);
    });
  }

  void broadcast(void* data, size_t count, ElemType type, int root) override {
    if (root < 0 || root >= ctx_->size)
      throw CommError("gloo broadcast: root " + std::to_string(root) + " is not a rank of the group");
    guard("broadcast", [&] {
      gloo::BroadcastOptions opts(ctx_);
      opts.setTimeout(timeout_);
      opts.setRoot(root);
      opts.setOutput(static_cast<char*>(data), count * elem_size(type));
      gloo::broadcast(opts);
    });
  }

  void barrier() override {
    guard("barrier", [&] {
      gloo::BarrierOptions opts(ctx_);
      opts.setTimeout(timeout_);
      gloo::barrier(opts);
    });
  }

 private:
  template <typename Fn>
  void guard(const char* what, Fn&& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      throw CommError(std::string("gloo ") + what + " (rank " + std::to_string(ctx_->rank) + " of " +
                      std::to_string(ctx_->size) + ", timeout " + std::to_string(timeout_.count()) +
                      " ms) failed: " + culprit(e.what()) + e.what());
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
    ctx->setTimeout(o.timeout);
    std::shared_ptr<std::vector<std::string>> peers;
    if (!o.file_store.empty()) {
      gloo::rendezvous::FileStore files(o.file_store);
      gloo::rendezvous::PrefixStore store(o.prefix, files);
      MeshStore mesh(store, o.size);
      ctx->connectFullMesh(mesh, dev);
      peers = mesh.peers();
    } else {
      TcpStore tcp(o.store_host, o.store_port, o.secret, o.timeout);
      gloo::rendezvous::PrefixStore store(o.prefix, tcp);
      MeshStore mesh(store, o.size);
      ctx->connectFullMesh(mesh, dev);
      peers = mesh.peers();
    }
    return std::make_unique<GlooComm>(ctx, o.timeout, peers);
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
