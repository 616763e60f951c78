#include "store_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "communicator.h"
#include "hmac_sha256.h"

namespace syncbn {
namespace comm {

namespace {

void put_u32(std::vector<char>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t get_u32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

int try_connect(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    ::close(fd);
    fd = -1;
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
    : where_("rendezvous store at " + host + ":" + std::to_string(port)), secret_(secret) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while ((fd_ = try_connect(host, port)) < 0) {
    if (std::chrono::steady_clock::now() >= deadline)
      throw CommError("could not connect to the " + where_ + " within " +
                      std::to_string(timeout.count()) + " ms");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  nonce_.resize(kNonceBytes);
  recv_all(&nonce_[0], kNonceBytes, deadline);
}

StoreClient::~StoreClient() {
  if (fd_ >= 0) ::close(fd_);
}

void StoreClient::send_all(const char* p, size_t n) {
  while (n > 0) {
    const ssize_t k = ::send(fd_, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) throw CommError("lost the connection to the " + where_ + ": " + std::strerror(errno));
    p += k;
    n -= static_cast<size_t>(k);
  }
}

void StoreClient::recv_all(char* p, size_t n, std::chrono::steady_clock::time_point deadline) {
  while (n > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd pfd{fd_, POLLIN, 0};
    const int r = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
    if (r < 0 && errno == EINTR) continue;
    if (r == 0) throw CommError("the " + where_ + " did not answer in time");
    const ssize_t k = ::recv(fd_, p, n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0)
      throw CommError("lost the connection to the " + where_ +
                      " (it closes a connection whose requests fail authentication: is SYNCBN_SECRET the same on every rank?)");
    p += k;
    n -= static_cast<size_t>(k);
  }
}

std::vector<char> StoreClient::request(Op op, const std::string& key, const std::vector<char>& value,
                                       std::chrono::milliseconds timeout, const std::string& what, bool* timed_out) {
  std::vector<char> body;
  body.push_back(static_cast<char>(op));
  put_u32(body, static_cast<uint32_t>(key.size()));
  body.insert(body.end(), key.begin(), key.end());
  put_u32(body, static_cast<uint32_t>(value.size()));
  body.insert(body.end(), value.begin(), value.end());
  put_u32(body, static_cast<uint32_t>(timeout.count()));
  if (body.size() > kMaxBody)
    throw CommError(what + ": a request of " + std::to_string(body.size()) + " bytes is over the store's limit of " +
                    std::to_string(kMaxBody));
  std::vector<char> msg;
  put_u32(msg, static_cast<uint32_t>(body.size()));
  msg.insert(msg.end(), body.begin(), body.end());
  const Digest tag = sign(secret_, nonce_, out_seq_++, 'Q', body.data(), body.size());
  msg.insert(msg.end(), tag.begin(), tag.end());
  send_all(msg.data(), msg.size());
  // The server answers a timed-out wait itself; allow it a little slack.
  const auto deadline = std::chrono::steady_clock::now() + timeout + std::chrono::seconds(5);
  std::vector<char> reply(5);
  recv_all(reply.data(), 5, deadline);
  const uint32_t len = get_u32(reply.data() + 1);
  if (len > kMaxBody) throw CommError(what + ": the " + where_ + " sent a reply of " + std::to_string(len) + " bytes");
  reply.resize(5 + len);
  if (len) recv_all(reply.data() + 5, len, deadline);
  char got[32];
  recv_all(got, 32, deadline);
  const Digest want = sign(secret_, nonce_, in_seq_++, 'A', reply.data(), reply.size());
  if (!digest_equal(reinterpret_cast<const uint8_t*>(got), want.data()))
    throw CommError(what + ": a reply from the " + where_ +
                    " failed authentication (another process answers on this port, or its SYNCBN_SECRET differs)");
  const char head[1] = {reply[0]};
  std::vector<char> payload(reply.begin() + 5, reply.end());
  if (head[0] == 1 && timed_out != nullptr) {
    *timed_out = true;
    return payload;
  }
  if (head[0] == 1)
    throw CommError(what + " timed out after " + std::to_string(timeout.count()) +
                    " ms waiting for " + std::string(payload.begin(), payload.end()));
  if (head[0] != 0) throw CommError(what + " failed at the " + where_ + ": " + std::string(payload.begin(), payload.end()));
  return payload;
}

void StoreClient::set(const std::string& key, const std::vector<char>& value) {
  request(kSet, key, value, std::chrono::milliseconds(0), "store set of '" + key + "'");
}

std::vector<char> StoreClient::get(const std::string& key, std::chrono::milliseconds timeout) {
  return request(kGet, key, {}, timeout, "store get of '" + key + "'");
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

void StoreClient::wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  request(kWait, "", encode_keys(keys), timeout, "store wait");
}

std::vector<bool> StoreClient::present(const std::vector<std::string>& keys, std::chrono::milliseconds timeout) {
  bool timed_out = false;
  const std::vector<char> p = request(kWait, "", encode_keys(keys), timeout, "store wait", &timed_out);
  const std::string missing(p.begin(), p.end());
  std::vector<bool> out;
  for (const auto& k : keys) out.push_back(!timed_out || missing.find("'" + k + "'") == std::string::npos);
  return out;
}

}  // namespace comm
}  // namespace syncbn
