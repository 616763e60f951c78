// Blocking client of the rendezvous store that rank 0 hosts in TypeScript
// (lib/distributed/store.ts). Used by native rendezvous (Gloo's full-mesh
// connect) from a worker thread, and by a communicator's roll call and wait
// reports, never from the event loop.
//
// Wire format (little endian; lib/distributed/store.ts describes it in full):
// the server greets with a 16-byte nonce; a request is u32 body length, body
// (u8 op, u32 key length, key, u32 value length, value, u32 timeout ms) and
// HMAC-SHA256(secret, nonce || u64 sequence || 'Q' || body); a reply is body
// (u8 status: 0 ok, 1 timeout, 2 error; u32 length, payload) and its HMAC with
// 'A'. WAIT's value is u32 n then n (u32 length, key) pairs; a timeout's
// payload names the keys still missing. The server resets (RST) a connection
// whose first request fails authentication and closes (FIN) any other.
//
// Every request has a deadline: its own wait plus kReplySlack by default, or
// the caller's. A request that misses it leaves the connection unusable (a
// reply may still be on its way), so every later request fails at once with
// the same StoreError: the store is then treated as unreachable.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "communicator.h"

namespace syncbn {
namespace comm {

// A request that did not get its answer, and why.
struct StoreError : CommError {
  enum Kind {
    kSilent,    // no reply by the deadline: the store's host is unreachable, or rank 0 is stalled
    kClosed,    // the store closed the connection (rank 0 exited or closed the store)
    kRefused,   // the store reset the connection at this rank's first request: the secrets differ
    kAnswered,  // the store answered: a wait timed out, an error, a reply that failed authentication
  };
  StoreError(Kind k, const std::string& what) : CommError(what), kind(k) {}
  Kind kind;
};

class StoreClient {
 public:
  using Clock = std::chrono::steady_clock;
  enum Op : uint8_t { kSet = 1, kGet = 2, kAdd = 3, kWait = 4, kCheck = 5, kDelete = 6 };
  // How long past a request's own wait its reply may take (network and the
  // store's event loop) before the store counts as unreachable.
  static constexpr std::chrono::milliseconds kReplySlack{2000};

  // Connects, retrying until `timeout` passes (the server may start later).
  StoreClient(const std::string& host, int port, const std::string& secret, std::chrono::milliseconds timeout);
  ~StoreClient();
  StoreClient(const StoreClient&) = delete;
  StoreClient& operator=(const StoreClient&) = delete;

  // `deadline` bounds the whole request, the wait for another thread's
  // request on this connection included; Clock::time_point::max() means the
  // request's own wait plus kReplySlack.
  void set(const std::string& key, const std::vector<char>& value, Clock::time_point deadline = Clock::time_point::max());
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout, Clock::time_point deadline = Clock::time_point::max());
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout, Clock::time_point deadline = Clock::time_point::max());
  // Waits like wait(); then, instead of throwing on a timeout, says which
  // keys are set (one round trip: a timed-out wait's reply names the missing).
  std::vector<bool> present(const std::vector<std::string>& keys, std::chrono::milliseconds timeout,
                            Clock::time_point deadline = Clock::time_point::max());

  // "host:port", for messages.
  const std::string& address() const { return address_; }

 private:
  // With `timed_out`, a timeout sets it and returns the payload instead of throwing.
  std::vector<char> request(Op op, const std::string& key, const std::vector<char>& value, std::chrono::milliseconds timeout,
                            Clock::time_point deadline, const std::string& what, bool* timed_out = nullptr);
  void send_all(const char* p, size_t n, Clock::time_point deadline);
  void recv_all(char* p, size_t n, Clock::time_point deadline);
  [[noreturn]] void fail(StoreError::Kind kind, const std::string& why);

  std::timed_mutex mutex_;  // one request at a time on the connection
  int fd_ = -1;
  std::string address_;
  std::string where_;
  std::string secret_;
  std::string nonce_;
  uint64_t out_seq_ = 0;
  uint64_t in_seq_ = 0;
  // Set once a request failed midway: the connection is out of step.
  StoreError::Kind broken_kind_ = StoreError::kSilent;
  std::string broken_;
};

}  // namespace comm
}  // namespace syncbn
