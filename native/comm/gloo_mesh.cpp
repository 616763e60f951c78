#include "gloo_mesh.h"

#ifdef SYNCBN_HAVE_GLOO

#include <gloo/common/error.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/transport/tcp/address.h>
#include <gloo/transport/tcp/device.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>

namespace syncbn {
namespace comm {

namespace {

std::string rendezvous_of(const GlooOptions& o) {
  return "gloo rendezvous of rank " + std::to_string(o.rank) + " of " + std::to_string(o.size) + ": ";
}

// GLOO_SOCKET_IFNAME: an interface of this machine that is up, has a link
// and an IP address (Gloo would bind to the address of an interface that is
// down, and wait for connections that never come).
void check_interface(const std::string& iface, const std::string& who) {
  const std::string it = "network interface '" + iface + "' (GLOO_SOCKET_IFNAME)";
  if (iface.size() >= IF_NAMESIZE || if_nametoindex(iface.c_str()) == 0) throw CommError(who + it + " does not exist on this machine");
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) throw CommError(who + "cannot list this machine's network interfaces: " + std::strerror(errno));
  unsigned flags = 0;
  bool address = false;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (iface != a->ifa_name) continue;
    flags |= a->ifa_flags;
    address = address || (a->ifa_addr != nullptr && (a->ifa_addr->sa_family == AF_INET || a->ifa_addr->sa_family == AF_INET6));
  }
  freeifaddrs(list);
  if (!(flags & IFF_UP)) throw CommError(who + it + " is down (bring it up: ip link set " + iface + " up, or name another)");
  if (!(flags & IFF_RUNNING)) throw CommError(who + it + " is up but has no link (no carrier: its cable or the other end is down)");
  if (!address) throw CommError(who + it + " has no IP address");
}

// Gloo's device setup dereferences what a failed lookup left it (a crash in
// some runs), so the address is resolved, and bound once, here first.
void check_listen_address(const GlooOptions& o) {
  const std::string who = rendezvous_of(o);
  if (!o.iface.empty()) return check_interface(o.iface, who);
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
  if (!bound) throw CommError(who + "'" + o.hostname + "' (SYNCBN_GLOO_HOSTNAME) is not an address of this machine: cannot listen on it");
}

// Gloo publishes each pair's address as the raw bytes of its
// transport::tcp::Address: a sockaddr_storage (of which an IPv4 address fills
// 16 bytes and IPv6 28), then a sequence number. The rest is whatever the
// stack held, stack and heap pointers among it: zeroed before publishing.
void zero_padding(char* blob) {
  sockaddr_storage ss;
  std::memcpy(&ss, blob, sizeof ss);
  const size_t used = ss.ss_family == AF_INET ? sizeof(sockaddr_in) : ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof ss;
  std::memset(blob + used, 0, sizeof(sockaddr_storage) - used);
}

std::string ip_of(const std::vector<char>& blob) {
  sockaddr_storage ss;
  std::memcpy(&ss, blob.data(), sizeof ss);
  char ip[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, ip, sizeof ip);
  else if (ss.ss_family == AF_INET6) inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, ip, sizeof ip);
  return ip;
}

bool is_loopback(const std::string& ip) { return ip.rfind("127.", 0) == 0 || ip == "::1"; }

// The keys of one group's rendezvous, every call bounded by a deadline.
class MeshKeys {
 public:
  virtual ~MeshKeys() = default;
  virtual void set(const std::string& key, const std::vector<char>& value, Clock::time_point deadline) = 0;
  // Whether `key` is set within `wait`.
  virtual bool wait(const std::string& key, std::chrono::milliseconds wait) = 0;
  virtual std::vector<char> get(const std::string& key, Clock::time_point deadline) = 0;
  // Which of `keys` are set now (none over a file store: it cannot tell cheaply).
  virtual std::vector<bool> present(const std::vector<std::string>& keys, Clock::time_point deadline) = 0;
};

class TcpKeys : public MeshKeys {
 public:
  TcpKeys(std::shared_ptr<StoreClient> client, std::string prefix) : client_(std::move(client)), prefix_(std::move(prefix)) {}
  void set(const std::string& key, const std::vector<char>& value, Clock::time_point deadline) override {
    client_->set(full(key), value, deadline);
  }
  bool wait(const std::string& key, std::chrono::milliseconds wait) override { return client_->present({full(key)}, wait)[0]; }
  std::vector<char> get(const std::string& key, Clock::time_point deadline) override {
    return client_->get(full(key), std::chrono::milliseconds(0), deadline);
  }
  std::vector<bool> present(const std::vector<std::string>& keys, Clock::time_point deadline) override {
    std::vector<std::string> all;
    for (const auto& k : keys) all.push_back(full(k));
    return client_->present(all, std::chrono::milliseconds(0), deadline);
  }

 private:
  // As Gloo's PrefixStore joins them.
  std::string full(const std::string& key) const { return prefix_ + "/" + key; }
  std::shared_ptr<StoreClient> client_;
  std::string prefix_;
};

class FileKeys : public MeshKeys {
 public:
  FileKeys(const std::string& dir, std::string prefix) : files_(dir), prefix_(std::move(prefix)) {}
  void set(const std::string& key, const std::vector<char>& value, Clock::time_point) override { files_.set(full(key), value); }
  bool wait(const std::string& key, std::chrono::milliseconds wait) override {
    try {
      files_.wait({full(key)}, wait);
      return true;
    } catch (const gloo::IoException&) {
      return false;
    }
  }
  std::vector<char> get(const std::string& key, Clock::time_point) override { return files_.get(full(key)); }
  std::vector<bool> present(const std::vector<std::string>& keys, Clock::time_point) override {
    return std::vector<bool>(keys.size(), false);
  }

 private:
  std::string full(const std::string& key) const { return prefix_ + "/" + key; }
  gloo::rendezvous::FileStore files_;
  std::string prefix_;
};

std::string failed_key(int rank) { return "connect_failed/" + std::to_string(rank); }

// The pair connections' watch (see the header): a thread of its own.
class ConnectWatch {
 public:
  ConnectWatch(gloo::transport::Context& tc, const GlooOptions& o, const MeshPeers& peers, MeshKeys& keys, Clock::time_point start,
               Clock::time_point deadline)
      : tc_(tc), o_(o), peers_(peers), keys_(keys), start_(start), deadline_(deadline), thread_([this] { run(); }) {}
  ~ConnectWatch() { stop(); }

  // This rank now waits for its connection with `peer`.
  void at(int peer) {
    std::lock_guard<std::mutex> lock(mutex_);
    at_ = peer;
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  // Why it closed the pairs; "" when it did not.
  std::string reason() {
    std::lock_guard<std::mutex> lock(mutex_);
    return reason_;
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    Clock::time_point report = start_ + kFirstWaitReport;
    while (!stop_) {
      wake_.wait_until(lock, std::min(deadline_, Clock::now() + std::chrono::milliseconds(500)));
      if (stop_) return;
      const int peer = at_;
      if (peer < 0) continue;
      lock.unlock();
      std::string why = Clock::now() >= deadline_ ? timed_out(peer) : posted_failure(peer);
      if (why.empty() && Clock::now() >= report) {
        print_wait_line("rank " + std::to_string(o_.rank) + " of " + std::to_string(o_.size) + " (" + group_label(o_.prefix) +
                        ") has waited " + seconds(Clock::now() - start_) + " (timeout " + seconds(o_.timeout) +
                        ") for its Gloo connection with " + name_ranks({peer}, peers_, o_.rank) + ", listening on " + peers_.host[peer]);
        report += kWaitReportEvery;
      }
      lock.lock();
      if (!why.empty()) {
        reason_ = why;
        lock.unlock();
        // A connect waiting on a closed pair returns: the rendezvous then
        // throws the reason.
        for (int p = 0; p < o_.size; ++p)
          if (p != o_.rank) tc_.getPair(p)->close();
        return;
      }
    }
  }

  std::string timed_out(int peer) const {
    std::vector<int> done;
    for (int p = 0; p < peer; ++p)
      if (p != o_.rank) done.push_back(p);
    std::string why = rendezvous_of(o_) + "no Gloo connection with " + name_ranks({peer}, peers_, o_.rank) + " within " +
                      std::to_string(o_.timeout.count()) + " ms";
    if (!done.empty()) {
      std::string list;
      for (int p : done) list += (list.empty() ? "" : ", ") + std::to_string(p);
      why += " (connected with ranks [" + list + "])";
    }
    return why + ": does a firewall or a down link stand between the two hosts? If a host has several networks, set "
                 "GLOO_SOCKET_IFNAME to the interface that reaches the others (or SYNCBN_GLOO_HOSTNAME to the host's address on it), on "
                 "every host";
  }

  // The first failure another rank posted, as this rank's reason (waiting
  // for `peer`); "" when none.
  std::string posted_failure(int peer) {
    std::vector<std::string> keys;
    std::vector<int> ranks;
    for (int r = 0; r < o_.size; ++r)
      if (r != o_.rank) keys.push_back(failed_key(r)), ranks.push_back(r);
    try {
      const auto step = std::chrono::milliseconds(500);
      const std::vector<bool> here = keys_.present(keys, Clock::now() + step);
      for (size_t i = 0; i < keys.size(); ++i) {
        if (!here[i]) continue;
        const std::vector<char> note = keys_.get(keys[i], Clock::now() + step);
        return rendezvous_of(o_) + "no Gloo connection with " + name_ranks({peer}, peers_, o_.rank) + ": " +
               name_ranks({ranks[i]}, peers_, o_.rank) + " reported that it " + std::string(note.begin(), note.end());
      }
    } catch (const StoreError& e) {
      // Rank 0 closes the store when its own rendezvous fails.
      if (e.kind == StoreError::kClosed)
        return rendezvous_of(o_) + "no Gloo connection with " + name_ranks({peer}, peers_, o_.rank) +
               ": rank 0 left the rendezvous (it closed the store; its error says why)";
    } catch (const std::exception&) {
      // The deadline still ends the wait.
    }
    return "";
  }

  gloo::transport::Context& tc_;
  const GlooOptions& o_;
  const MeshPeers& peers_;
  MeshKeys& keys_;
  const Clock::time_point start_;
  const Clock::time_point deadline_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  int at_ = -1;
  std::string reason_;
  std::thread thread_;
};

// A failed connect, with what to check.
std::string connect_failure(const GlooOptions& o, const MeshPeers& peers, int peer, const std::string& gloo_msg) {
  std::string why = rendezvous_of(o) + "could not connect with " + name_ranks({peer}, peers, o.rank) + " (" + gloo_msg + "). ";
  const std::string& there = peers.host[peer];
  const std::string& here = peers.host[o.rank];
  if (is_loopback(there) || is_loopback(here)) {
    why += (is_loopback(there) ? "Rank " + std::to_string(peer) + " listens on " + there : "This rank listens on " + here) +
           ", a loopback address that other hosts cannot reach: ";
  } else {
    why += "Is " + there + " an address of rank " + std::to_string(peer) + "'s host that this host reaches? ";
  }
  return why + "set GLOO_SOCKET_IFNAME to the network interface that reaches the other hosts (or SYNCBN_GLOO_HOSTNAME to the host's "
               "address on it), on every host";
}

// Whether two socket addresses are the same IP and port.
bool same_endpoint(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_INET) {
    const auto& x = reinterpret_cast<const sockaddr_in&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in&>(b);
    return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port && std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
  }
  return false;
}

// The socket of each connected pair, for the watch (gloo_watch.h). Gloo keeps
// the descriptor to itself, but a connected pair's address() is its socket's
// local address, unique in the process: found among /proc/self/fd.
std::vector<PairSocket> pair_sockets(gloo::transport::Context& tc, int rank, int size) {
  std::vector<sockaddr_storage> wanted;
  for (int p = 0; p < size; ++p) {
    if (p == rank) continue;
    const std::vector<char> bytes = tc.getPair(p)->address().bytes();
    sockaddr_storage ss{};
    std::memcpy(&ss, bytes.data(), std::min(bytes.size(), sizeof ss));
    wanted.push_back(ss);
  }
  std::vector<PairSocket> found;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return found;
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    PairSocket s;
    s.fd = std::atoi(e->d_name);
    s.length = sizeof s.local;
    sockaddr_storage peer{};
    socklen_t peer_length = sizeof peer;
    if (getsockname(s.fd, reinterpret_cast<sockaddr*>(&s.local), &s.length) != 0 ||
        getpeername(s.fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) != 0)
      continue;
    for (const sockaddr_storage& w : wanted)
      if (same_endpoint(w, s.local)) found.push_back(s);
  }
  closedir(dir);
  return found;
}

class MeshContext : public gloo::rendezvous::Context {
 public:
  using gloo::rendezvous::Context::Context;
  // Takes the connected pairs, as connectFullMesh would leave them.
  void adopt(std::shared_ptr<gloo::transport::Device> dev, std::shared_ptr<gloo::transport::Context> tc) {
    device_ = std::move(dev);
    transportContext_ = std::move(tc);
  }
};

}  // namespace

namespace {

Mesh connect(const GlooOptions& o, std::chrono::milliseconds io_timeout) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point deadline = start + o.timeout;
  const auto left = [&] {
    return std::max(std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  };
  check_listen_address(o);
  gloo::transport::tcp::attr attr;
  if (!o.iface.empty()) attr.iface = o.iface;
  else attr.hostname = o.hostname;
  std::shared_ptr<gloo::transport::Device> dev = gloo::transport::tcp::CreateDevice(attr);

  Mesh mesh;
  std::unique_ptr<MeshKeys> keys;
  if (o.file_store.empty()) {
    mesh.store = std::make_shared<StoreClient>(o.store_host, o.store_port, o.secret, left());
    keys = std::make_unique<TcpKeys>(mesh.store, o.prefix);
  } else {
    keys = std::make_unique<FileKeys>(o.file_store, o.prefix);
  }
  auto ctx = std::make_shared<MeshContext>(o.rank, o.size);
  ctx->setTimeout(io_timeout);
  std::shared_ptr<gloo::transport::Context> tc = dev->createContext(o.rank, o.size);
  tc->setTimeout(io_timeout);

  // One listening pair per peer; their addresses, in rank order, under this rank's key.
  MeshPeers& peers = mesh.peers;
  peers.listen.assign(o.size, "");
  peers.host.assign(o.size, "");
  std::vector<char> mine;
  size_t blob = 0;
  for (int p = 0; p < o.size; ++p) {
    if (p == o.rank) continue;
    std::vector<char> bytes = tc->createPair(p)->address().bytes();
    blob = bytes.size();
    if (blob < sizeof(sockaddr_storage)) throw CommError(rendezvous_of(o) + "Gloo's pair address has an unexpected size");
    zero_padding(bytes.data());
    if (peers.host[o.rank].empty()) peers.host[o.rank] = ip_of(bytes);
    mine.insert(mine.end(), bytes.begin(), bytes.end());
  }
  keys->set(std::to_string(o.rank), mine, deadline);

  // Each peer's address for this rank.
  std::vector<std::vector<char>> theirs(o.size);
  Clock::time_point report = start + kFirstWaitReport;
  for (int p = 0; p < o.size; ++p) {
    if (p == o.rank) continue;
    while (!keys->wait(std::to_string(p), std::min(left(), std::chrono::milliseconds(1000)))) {
      if (Clock::now() >= deadline)
        throw CommError(rendezvous_of(o) + "rank " + std::to_string(p) + " did not publish its Gloo address within " +
                        std::to_string(o.timeout.count()) + " ms (it stopped before, or cannot reach the store)");
      if (Clock::now() >= report) {
        print_wait_line("rank " + std::to_string(o.rank) + " of " + std::to_string(o.size) + " (" + group_label(o.prefix) + ") has waited " +
                        seconds(Clock::now() - start) + " (timeout " + seconds(o.timeout) + ") for rank " + std::to_string(p) +
                        " to publish its Gloo address");
        report += kWaitReportEvery;
      }
    }
    const std::vector<char> all = keys->get(std::to_string(p), deadline);
    if (all.size() != blob * static_cast<size_t>(o.size - 1))
      throw CommError(rendezvous_of(o) + "rank " + std::to_string(p) + " published " + std::to_string(all.size()) +
                      " bytes of Gloo addresses, expected " + std::to_string(blob * (o.size - 1)) + " (another build of syncbn?)");
    const size_t at = static_cast<size_t>(o.rank > p ? o.rank - 1 : o.rank) * blob;
    theirs[p].assign(all.begin() + at, all.begin() + at + blob);
    peers.listen[p] = gloo::transport::tcp::Address(theirs[p]).str();
    peers.host[p] = ip_of(theirs[p]);
  }

  // Every pair, in rank order on every rank (a listening pair is accepted
  // by Gloo's device thread meanwhile), within the deadline.
  ConnectWatch watch(*tc, o, peers, *keys, start, deadline);
  for (int p = 0; p < o.size; ++p) {
    if (p == o.rank) continue;
    watch.at(p);
    std::string failure;
    try {
      tc->getPair(p)->connect(theirs[p]);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    std::string why = watch.reason();
    if (!why.empty()) throw CommError(why);
    if (!failure.empty()) {
      watch.stop();
      why = connect_failure(o, peers, p, failure);
      try {
        const std::string note = why.substr(rendezvous_of(o).size());
        keys->set(failed_key(o.rank), std::vector<char>(note.begin(), note.end()), Clock::now() + std::chrono::milliseconds(500));
      } catch (const std::exception&) {
        // The others still end at the deadline.
      }
      throw CommError(why);
    }
  }
  watch.stop();
  // The watch may have closed the pairs just as the last one connected.
  if (!watch.reason().empty()) throw CommError(watch.reason());
  mesh.sockets = pair_sockets(*tc, o.rank, o.size);
  ctx->adopt(dev, tc);
  mesh.context = ctx;
  return mesh;
}

}  // namespace

Mesh connect_mesh(const GlooOptions& o, std::chrono::milliseconds io_timeout) {
  try {
    return connect(o, io_timeout);
  } catch (const StoreError& e) {
    throw CommError(rendezvous_of(o) + e.what());
  }
}

}  // namespace comm
}  // namespace syncbn

#endif
