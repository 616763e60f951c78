#include "store_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "hmac_sha256.h"

namespace syncbn {
namespace comm {

namespace {

using Clock = StoreClient::Clock;

void put_u32(std::vector<char>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

// Milliseconds left until `deadline`, for poll(2): 0 when past.
int poll_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left + 1, 0, 1 << 30));
}

// Waits for `events` on fd until `deadline`: true when ready, false when the deadline passed.
bool ready(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd pfd{fd, events, 0};
    const int r = ::poll(&pfd, 1, poll_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r > 0) return true;
    if (Clock::now() >= deadline) return false;
  }
}

// A non-blocking connection to one of host's addresses, made before
// `deadline` (a blocking connect to a host that drops packets would wait for
// the kernel's SYN retries, about two minutes); -1 with *why set otherwise.
int try_connect(const std::string& host, int port, Clock::time_point deadline, std::string* why) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    *why = gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int err = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      if (!ready(fd, POLLOUT, deadline)) {
        err = ETIMEDOUT;
      } else {
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      }
    }
    if (err != 0) {
      *why = err == ETIMEDOUT ? "no answer" : std::strerror(err);
      ::close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd >= 0) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return fd;
}

constexpr size_t kNonceBytes = 16;
constexpr size_t kMaxBody = 4 << 20;  // STORE_LIMITS.maxBody in lib/distributed/store.ts

// HMAC over nonce || u64 sequence || direction || body.
Digest sign(const std::string& secret, const std::string& nonce, uint64_t seq, char dir, const char* body, size_t n) {
  std::vector<char> m(nonce.begin(), nonce.end());
  for (int i = 0; i < 8; ++i) m.push_back(static_cast<char>((seq >> (8 * i)) & 0xff));
  m.push_back(dir);
  m.insert(m.end(), body, body + n);
  return hmac_sha256(secret, m.data(), m.size());
}

}  // namespace

StoreClient::StoreClient(const std::string& host, int port, const std::string& secret, std::chrono::milliseconds timeout)
    : address_(host + ":" + std::to_string(port)), where_("rendezvous store at " + address_), secret_(secret) {
  const auto deadline = Clock::now() + timeout;
  std::string why;
  while ((fd_ = try_connect(host, port, deadline, &why)) < 0) {
    if (Clock::now() >= deadline)
      throw StoreError(StoreError::kSilent, "could not connect to the " + where_ + " within " + std::to_string(timeout.count()) +
                                                " ms (" + why + ")");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  nonce_.resize(kNonceBytes);
  try {
    recv_all(&nonce_[0], kNonceBytes, deadline);
  } catch (const StoreError& e) {
    ::close(fd_);
    fd_ = -1;
    if (e.kind != StoreError::kClosed) throw;
    throw StoreError(StoreError::kClosed, "the " + where_ + " closed the connection before its greeting (at its connection limit?)");
  }
}

StoreClient::~StoreClient() {
  if (fd_ >= 0) ::close(fd_);
}

void StoreClient::fail(StoreError::Kind kind, const std::string& why) {
  broken_kind_ = kind;
  broken_ = why;
  throw StoreError(kind, why);
}

void StoreClient::send_all(const char* p, size_t n, Clock::time_point deadline) {
  while (n > 0) {
    const ssize_t k = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!ready(fd_, POLLOUT, deadline)) fail(StoreError::kSilent, "the " + where_ + " did not take a request in time (its host is unreachable?)");
      continue;
    }
    if (k <= 0) fail(StoreError::kClosed, "lost the connection to the " + where_ + ": " + std::strerror(errno));
    p += k;
    n -= static_cast<size_t>(k);
  }
}

void StoreClient::recv_all(char* p, size_t n, Clock::time_point deadline) {
  while (n > 0) {
    if (!ready(fd_, POLLIN, deadline))
      fail(StoreError::kSilent, "the " + where_ + " did not answer in time: its host is unreachable from here, or rank 0 is stalled");
    const ssize_t k = ::recv(fd_, p, n, 0);
    if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (k < 0 && errno == ECONNRESET && in_seq_ == 0 && out_seq_ > 0)
      fail(StoreError::kRefused, "lost the connection to the " + where_ +
                                     ": it refused this rank's first request (reset the connection), which it does when the request "
                                     "fails authentication: this rank's SYNCBN_SECRET differs from rank 0's");
    if (k < 0) fail(StoreError::kClosed, "lost the connection to the " + where_ + ": " + std::strerror(errno));
    if (k == 0) fail(StoreError::kClosed, "lost the connection to the " + where_ + ": the store closed it (rank 0 exited or closed the store)");
    p += k;
    n -= static_cast<size_t>(k);
  }
}

std::vector<char> StoreClient::request(Op op, const std::string& key, const std::vector<char>& value, std::chrono::milliseconds timeout,
                                       Clock::time_point deadline, const std::string& what, bool* timed_out) {
  if (deadline == Clock::time_point::max()) deadline = Clock::now() + timeout + kReplySlack;
  std::unique_lock<std::timed_mutex> lock(mutex_, std::defer_lock);
  if (!lock.try_lock_until(deadline))
    throw StoreError(StoreError::kSilent, what + ": another request of this rank held the connection to the " + where_ + " past the deadline");
  if (!broken_.empty()) throw StoreError(broken_kind_, what + ": " + broken_);
  std::vector<char> body;
  body.push_back(static_cast<char>(op));
  put_u32(body, static_cast<uint32_t>(key.size()));
  body.insert(body.end(), key.begin(), key.end());
  put_u32(body, static_cast<uint32_t>(value.size()));
  body.insert(body.end(), value.begin(), value.end());
  put_u32(body, static_cast<uint32_t>(timeout.count()));
  if (body.size() > kMaxBody)
    throw StoreError(StoreError::kAnswered, what + ": a request of " + std::to_string(body.size()) + " bytes is over the store's limit of " +
                                                std::to_string(kMaxBody));
  std::vector<char> msg;
  put_u32(msg, static_cast<uint32_t>(body.size()));
  msg.insert(msg.end(), body.begin(), body.end());
  const Digest tag = sign(secret_, nonce_, out_seq_++, 'Q', body.data(), body.size());
  msg.insert(msg.end(), tag.begin(), tag.end());
  std::vector<char> reply(5);
  try {
    send_all(msg.data(), msg.size(), deadline);
    recv_all(reply.data(), 5, deadline);
    const uint32_t len = get_u32(reply.data() + 1);
    if (len > kMaxBody) fail(StoreError::kAnswered, "the " + where_ + " sent a reply of " + std::to_string(len) + " bytes");
    reply.resize(5 + len);
    if (len) recv_all(reply.data() + 5, len, deadline);
    char got[32];
    recv_all(got, 32, deadline);
    const Digest want = sign(secret_, nonce_, in_seq_++, 'A', reply.data(), reply.size());
    if (!digest_equal(reinterpret_cast<const uint8_t*>(got), want.data()))
      fail(StoreError::kAnswered, "a reply from the " + where_ + " failed authentication (another process answers on this port, or its SYNCBN_SECRET differs)");
  } catch (const StoreError& e) {
    throw StoreError(e.kind, what + ": " + e.what());
  }
  std::vector<char> payload(reply.begin() + 5, reply.end());
  if (reply[0] == 1 && timed_out != nullptr) {
    *timed_out = true;
    return payload;
  }
  if (reply[0] == 1)
    throw StoreError(StoreError::kAnswered, what + " timed out after " + std::to_string(timeout.count()) + " ms waiting for " +
                                                std::string(payload.begin(), payload.end()));
  if (reply[0] != 0)
    throw StoreError(StoreError::kAnswered, what + " failed at the " + where_ + ": " + std::string(payload.begin(), payload.end()));
  return payload;
}

void StoreClient::set(const std::string& key, const std::vector<char>& value, Clock::time_point deadline) {
  request(kSet, key, value, std::chrono::milliseconds(0), deadline, "store set of '" + key + "'");
}

std::vector<char> StoreClient::get(const std::string& key, std::chrono::milliseconds timeout, Clock::time_point deadline) {
  return request(kGet, key, {}, timeout, deadline, "store get of '" + key + "'");
}

namespace {

std::vector<char> encode_keys(const std::vector<std::string>& keys) {
  std::vector<char> value;
  put_u32(value, static_cast<uint32_t>(keys.size()));
  for (const auto& k : keys) {
    put_u32(value, static_cast<uint32_t>(k.size()));
    value.insert(value.end(), k.begin(), k.end());
  }
  return value;
}

}  // namespace

void StoreClient::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout, Clock::time_point deadline) {
  request(kWait, "", encode_keys(keys), timeout, deadline, "store wait");
}

std::vector<bool> StoreClient::present(const std::vector<std::string>& keys, std::chrono::milliseconds timeout, Clock::time_point deadline) {
  bool timed_out = false;
  const std::vector<char> p = request(kWait, "", encode_keys(keys), timeout, deadline, "store wait", &timed_out);
  const std::string missing(p.begin(), p.end());
  std::vector<bool> out;
  for (const auto& k : keys) out.push_back(!timed_out || missing.find("'" + k + "'") == std::string::npos);
  return out;
}

}  // namespace comm
}  // namespace syncbn
