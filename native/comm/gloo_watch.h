// Who a gloo rank waits for, and whom it blames when a wait fails.
//
// Time budget of the gloo backend, for a group timeout T (timeoutMs):
// - rendezvous (lib/distributed/init.ts, then gloo_mesh.h): every stage is
//   bounded by T as a whole, store waits and pair connections alike;
// - each collective: T - grace, grace = min(1 s, T / 5). The pair sockets'
//   SO_RCVTIMEO and SO_SNDTIMEO say so, but the kernel fires such timeouts
//   up to an eighth late (its timer wheel: a 299 s timeout up to 16 s late),
//   so the watch thread shuts the reading side of the group's sockets at the
//   collective's deadline itself, which ends a blocked read at once. (A
//   write blocked on a peer that stopped reading still ends by SO_SNDTIMEO.)
// - the roll call after a failed collective: grace, plus kRollCallSlack for
//   the store's reply; so a failure is reported within T + kRollCallSlack.
// Store requests carry deadlines (store_client.h): an unreachable store costs
// a deadline, never the kernel's TCP retries.
//
// A rank waiting longer than kFirstWaitReport at a collective or at the
// rendezvous prints one line naming whom it awaits, then one every
// kWaitReportEvery (lib/distributed/init.ts keeps the same cadence).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <sys/socket.h>

#include "store_client.h"

namespace syncbn {
namespace comm {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::seconds kFirstWaitReport{10};
constexpr std::chrono::seconds kWaitReportEvery{10};
constexpr std::chrono::milliseconds kRollCallSlack{250};
// A collective that has waited this long answers the roll call at once, so
// that the wait reports of the others count it as present.
constexpr std::chrono::seconds kAnswerAfter{1};

inline std::chrono::milliseconds roll_call_grace(std::chrono::milliseconds timeout) {
  return std::min(std::chrono::milliseconds(1000), timeout / 5);
}

// Where each rank of a group listens, for messages.
struct MeshPeers {
  // "[ip]:port" that rank r listens on for this rank's pair, as Gloo's errors
  // print it (the port in network byte order), to find r in them; "" for
  // this rank.
  std::vector<std::string> listen;
  // The IP address of rank r's host, this rank's included.
  std::vector<std::string> host;
};

// A connected pair's socket and its local address, as the watch may shut
// its reading side (it checks the address first: a closed pair's number may
// have been reused).
struct PairSocket {
  int fd = -1;
  sockaddr_storage local{};
  socklen_t length = 0;
};

// "rank 1" or "ranks 2, 3", with " (at IP)" after each run of ranks on
// another host than `rank`'s: "ranks 2, 3 (at 10.0.0.2)".
std::string name_ranks(const std::vector<int>& ranks, const MeshPeers& peers, int rank);

// "12 s", for wait reports.
inline std::string seconds(Clock::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(d).count()) + " s";
}

// "world" or "group 1", from a group's store prefix.
std::string group_label(const std::string& prefix);

// Writes "syncbn: <line>\n" to stderr in one write.
void print_wait_line(const std::string& line);

// The roll call and the wait reports of one communicator. Every rank that
// fails (or has waited kAnswerAfter in) operation #n says so in the store;
// the ranks that never do did not reach it, and are named. Ops run in
// lockstep on every rank (the checked layer sees to it), so the number names
// the same operation everywhere. A thread of its own prints the wait reports.
class PeerWatch {
 public:
  // Each collective's reads end after `io_timeout` (T - grace).
  PeerWatch(std::shared_ptr<StoreClient> store, MeshPeers peers, std::vector<PairSocket> sockets, std::string prefix, int rank,
            int size, std::chrono::milliseconds timeout, std::chrono::milliseconds io_timeout);
  ~PeerWatch();
  PeerWatch(const PeerWatch&) = delete;
  PeerWatch& operator=(const PeerWatch&) = delete;

  // Brackets operation #op (`what`: a string literal): two atomic stores.
  void begin(uint64_t op, const char* what) {
    what_.store(what, std::memory_order_relaxed);
    op_.store(op, std::memory_order_relaxed);
    began_.store(Clock::now().time_since_epoch().count(), std::memory_order_release);
  }
  void end() { began_.store(0, std::memory_order_release); }

  // After operation #op failed with `msg`: whom to blame ("" when unknown),
  // and what happened, Gloo's message last. Takes at most the grace plus
  // kRollCallSlack.
  std::string blame(uint64_t op, const std::string& msg);
  // Whether the group's sockets were shut at a deadline (it can no longer
  // run collectives), and why.
  bool severed() const { return shut_op_.load(std::memory_order_relaxed) != 0; }
  std::string why_severed() const;

 private:
  std::string roll_call_key(uint64_t op, int rank) const;
  void answer(uint64_t op, Clock::time_point deadline);
  std::string roll_call(uint64_t op, bool closed, Clock::time_point deadline);
  std::string culprit(const std::string& msg) const;
  std::string store_host_ranks() const;
  void run();
  void report(uint64_t op, const char* what, Clock::duration waited);
  void shut_reads(uint64_t op);

  std::shared_ptr<StoreClient> store_;
  MeshPeers peers_;
  std::vector<PairSocket> sockets_;
  std::string prefix_;
  int rank_;
  int size_;
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds io_timeout_;
  std::chrono::milliseconds grace_;
  std::atomic<int64_t> began_{0};
  std::atomic<uint64_t> op_{0};
  std::atomic<const char*> what_{""};
  std::atomic<uint64_t> shut_op_{0};  // the op at whose deadline the sockets were shut
  std::atomic<bool> failed_{false};   // an op failed: the sockets are Gloo's to close
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace comm
}  // namespace syncbn
