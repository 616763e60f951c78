// Blocking client of the rendezvous store that rank 0 hosts in TypeScript
// (lib/distributed/store.ts). Used by native rendezvous (Gloo's full-mesh
// connect) from a worker thread, never from the event loop.
//
// Wire format (little endian; lib/distributed/store.ts describes it in full):
// the server greets with a 16-byte nonce; a request is u32 body length, body
// (u8 op, u32 key length, key, u32 value length, value, u32 timeout ms) and
// HMAC-SHA256(secret, nonce || u64 sequence || 'Q' || body); a reply is body
// (u8 status: 0 ok, 1 timeout, 2 error; u32 length, payload) and its HMAC with
// 'A'. WAIT's value is u32 n then n (u32 length, key) pairs; a timeout's
// payload names the keys still missing.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace syncbn {
namespace comm {

class StoreClient {
 public:
  enum Op : uint8_t { kSet = 1, kGet = 2, kAdd = 3, kWait = 4, kCheck = 5, kDelete = 6 };

  // Connects, retrying until `timeout` passes (the server may start later).
  StoreClient(const std::string& host, int port, const std::string& secret, std::chrono::milliseconds timeout);
  ~StoreClient();
  StoreClient(const StoreClient&) = delete;
  StoreClient& operator=(const StoreClient&) = delete;

  void set(const std::string& key, const std::vector<char>& value);
  std::vector<char> get(const std::string& key, std::chrono::milliseconds timeout);
  void wait(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);
  // Waits like wait(); then, instead of throwing on a timeout, says which
  // keys are set (one round trip: a timed-out wait's reply names the missing).
  std::vector<bool> present(const std::vector<std::string>& keys, std::chrono::milliseconds timeout);

 private:
  // With `timed_out`, a timeout sets it and returns the payload instead of throwing.
  std::vector<char> request(Op op, const std::string& key, const std::vector<char>& value,
                            std::chrono::milliseconds timeout, const std::string& what, bool* timed_out = nullptr);
  void send_all(const char* p, size_t n);
  void recv_all(char* p, size_t n, std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::string where_;
  std::string secret_;
  std::string nonce_;
  uint64_t out_seq_ = 0;
  uint64_t in_seq_ = 0;
};

}  // namespace comm
}  // namespace syncbn
