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
  TcpStore(const std::string& host, int port, std::chrono::milliseconds timeout)
      : client_(host, port, timeout), timeout_(timeout) {}
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

template <typename T>
void reduce_fn(void* c, const void* a, const void* b, size_t n, ElemType type, ReduceOp op) {
  if (c != a) std::memcpy(c, a, n * sizeof(T));
  reduce_into(c, b, n, type, op);
}

class GlooComm : public Communicator {
 public:
  GlooComm(std::shared_ptr<gloo::rendezvous::Context> ctx, std::chrono::milliseconds timeout)
      : Communicator(timeout), ctx_(std::move(ctx)) {}

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
                      " ms) failed: " + e.what());
    }
  }

  std::shared_ptr<gloo::rendezvous::Context> ctx_;
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
    if (!o.file_store.empty()) {
      gloo::rendezvous::FileStore files(o.file_store);
      gloo::rendezvous::PrefixStore store(o.prefix, files);
      ctx->connectFullMesh(store, dev);
    } else {
      TcpStore tcp(o.store_host, o.store_port, o.timeout);
      gloo::rendezvous::PrefixStore store(o.prefix, tcp);
      ctx->connectFullMesh(store, dev);
    }
    return std::make_unique<GlooComm>(ctx, o.timeout);
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
