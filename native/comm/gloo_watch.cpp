#include "gloo_watch.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace syncbn {
namespace comm {

namespace {

std::string list(const std::vector<int>& ranks) {
  std::string out;
  for (int r : ranks) out += (out.empty() ? "" : ", ") + std::to_string(r);
  return out;
}

bool closed_message(const std::string& msg) {
  return msg.find("closed") != std::string::npos || msg.find("reset") != std::string::npos;
}

const std::string& host_of(const MeshPeers& peers, int r) {
  static const std::string unknown;
  return r >= 0 && static_cast<size_t>(r) < peers.host.size() ? peers.host[r] : unknown;
}

}  // namespace

std::string name_ranks(const std::vector<int>& ranks, const MeshPeers& peers, int rank) {
  std::string out = ranks.size() == 1 ? "rank " : "ranks ";
  const std::string& mine = host_of(peers, rank);
  for (size_t i = 0; i < ranks.size(); ++i) {
    out += (i ? ", " : "") + std::to_string(ranks[i]);
    const std::string& h = host_of(peers, ranks[i]);
    const bool last_of_run = i + 1 == ranks.size() || host_of(peers, ranks[i + 1]) != h;
    if (last_of_run && !h.empty() && h != mine) out += " (at " + h + ")";
  }
  return out;
}

std::string group_label(const std::string& prefix) {
  std::string s = prefix;
  if (s.rfind("syncbn_", 0) == 0) s = s.substr(7);
  if (!s.empty() && s.back() == '_') s.pop_back();
  if (s.rfind("group", 0) == 0 && s.size() > 5) s.insert(5, " ");
  return s;
}

void print_wait_line(const std::string& line) {
  const std::string s = "syncbn: " + line + "\n";
  if (::write(2, s.data(), s.size()) < 0) {
    // Nowhere left to say it.
  }
}

PeerWatch::PeerWatch(std::shared_ptr<StoreClient> store, MeshPeers peers, std::vector<PairSocket> sockets, std::string prefix, int rank,
                     int size, std::chrono::milliseconds timeout, std::chrono::milliseconds io_timeout)
    : store_(std::move(store)), peers_(std::move(peers)), sockets_(std::move(sockets)), prefix_(std::move(prefix)), rank_(rank),
      size_(size), timeout_(timeout), io_timeout_(io_timeout), grace_(roll_call_grace(timeout)) {
  if (size_ > 1) thread_ = std::thread([this] { run(); });
}

PeerWatch::~PeerWatch() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::string PeerWatch::roll_call_key(uint64_t op, int rank) const {
  return prefix_ + "/roll_call/" + std::to_string(op) + "/" + std::to_string(rank);
}

void PeerWatch::answer(uint64_t op, Clock::time_point deadline) {
  if (!store_) return;
  try {
    store_->set(roll_call_key(op, rank_), {'1'}, deadline + kRollCallSlack);
  } catch (const std::exception&) {
    // The store is gone or out of reach: roll_call() says which.
  }
}

std::string PeerWatch::blame(uint64_t op, const std::string& gloo_msg) {
  failed_.store(true);
  const Clock::time_point deadline = Clock::now() + grace_;
  // Answer the roll call first, whoever this rank blames: a rank that named
  // its culprit from Gloo's message and skipped it was counted as gone by
  // the ranks that took the roll call.
  answer(op, deadline);
  std::string msg = gloo_msg;
  // A read this watch ended at the deadline reads to Gloo as a closed connection.
  const bool shut = shut_op_.load() == op;
  if (shut) {
    const size_t at = msg.find("Connection closed by peer");
    if (at != std::string::npos) msg.replace(at, 25, "Read timeout");
    msg += " (no data within " + std::to_string(io_timeout_.count()) + " ms)";
  }
  const bool closed = !shut && closed_message(msg);
  // A closed connection names its peer; a timeout does not (the peer read
  // last is not the only one missing): the roll call does.
  std::string who = closed ? culprit(msg) : "";
  if (who.empty()) who = roll_call(op, closed, deadline);
  return who + msg;
}

std::string PeerWatch::why_severed() const {
  return "its connections were shut at the deadline of operation #" + std::to_string(shut_op_.load()) + ": the group is unusable";
}

void PeerWatch::shut_reads(uint64_t op) {
  shut_op_.store(op);
  for (const PairSocket& s : sockets_) {
    sockaddr_storage now{};
    socklen_t length = sizeof now;
    if (getsockname(s.fd, reinterpret_cast<sockaddr*>(&now), &length) != 0 || length != s.length || std::memcmp(&now, &s.local, length) != 0)
      continue;
    // The reader gets end-of-file at once; nothing is sent to the peer.
    ::shutdown(s.fd, SHUT_RD);
  }
}

std::string PeerWatch::store_host_ranks() const {
  std::vector<int> there;
  for (int r = 0; r < size_; ++r)
    if (r != rank_ && host_of(peers_, r) == host_of(peers_, 0)) there.push_back(r);
  return there.empty() ? "rank 0" : name_ranks(there, peers_, rank_);
}

std::string PeerWatch::roll_call(uint64_t op, bool closed, Clock::time_point deadline) {
  if (!store_) return "";
  try {
    std::vector<std::string> keys;
    for (int r = 0; r < size_; ++r) keys.push_back(roll_call_key(op, r));
    const auto wait = std::max<Clock::duration>(Clock::duration::zero(), deadline - Clock::now());
    const std::vector<bool> here =
        store_->present(keys, std::chrono::duration_cast<std::chrono::milliseconds>(wait), deadline + kRollCallSlack);
    std::vector<int> absent, present;
    bool remote = false;
    for (int r = 0; r < size_; ++r) {
      (here[r] ? present : absent).push_back(r);
      if (!here[r] && !host_of(peers_, r).empty() && host_of(peers_, r) != host_of(peers_, rank_)) remote = true;
    }
    if (absent.empty()) return "every rank reached this operation (a network fault?): ";
    const bool one = absent.size() == 1;
    const std::string who = name_ranks(absent, peers_, rank_);
    if (closed)
      return who + (one ? " is gone (its connection closed: it exited or crashed" : " are gone (their connections closed: they exited or crashed") +
             "; ranks [" + list(present) + "] are here): ";
    return who + " did not reach it within the timeout" + (remote ? ", or lost the network to this host" : "") + " (ranks [" +
           list(present) + "] did): ";
  } catch (const StoreError& e) {
    if (e.kind != StoreError::kSilent) return "";  // the store is gone with rank 0: nothing more to learn
    if (host_of(peers_, 0) == host_of(peers_, rank_))
      return "the rendezvous store (rank 0's, at " + store_->address() + ") does not answer either (rank 0 stalled?): ";
    return "no word from " + store_host_ranks() + " within the timeout, and the rendezvous store on their host (" + store_->address() +
           ") does not answer either: the network between this host and theirs is down, or that host stopped: ";
  } catch (const std::exception&) {
    return "";
  }
}

// "rank N closed its connection (it exited or crashed): " when Gloo's
// message holds the address of rank N's listener.
std::string PeerWatch::culprit(const std::string& msg) const {
  // "[ip]:123" is not found inside "[ip]:1234".
  const auto names = [&](const std::string& a) {
    for (size_t at = msg.find(a); at != std::string::npos; at = msg.find(a, at + 1)) {
      const size_t end = at + a.size();
      if (end == msg.size() || !std::isdigit(static_cast<unsigned char>(msg[end]))) return true;
    }
    return false;
  };
  for (int r = 0; r < size_ && static_cast<size_t>(r) < peers_.listen.size(); ++r) {
    const std::string& a = peers_.listen[r];
    if (a.empty() || r == rank_ || !names(a)) continue;
    return name_ranks({r}, peers_, rank_) + " closed its connection (it exited or crashed): ";
  }
  return "";
}

void PeerWatch::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  int64_t seen = 0;  // when the op in view began (0: none)
  uint64_t op = 0;
  const char* what = "";
  bool answered = false, shut = false;
  Clock::duration next_report = kFirstWaitReport;
  const auto began_at = [](int64_t b) { return Clock::time_point(Clock::duration(b)); };
  while (!stop_) {
    // Ops are watched from the tick after they begin; then the watch wakes
    // at each of their moments, the deadline exactly.
    Clock::time_point wake = Clock::now() + std::chrono::milliseconds(500);
    if (seen != 0) {
      const Clock::time_point b = began_at(seen);
      if (!answered) wake = std::min(wake, b + kAnswerAfter);
      if (!shut) wake = std::min(wake, b + io_timeout_);
      wake = std::min(wake, b + next_report);
    }
    wake_.wait_until(lock, wake);
    if (stop_) break;
    const int64_t began = began_.load(std::memory_order_acquire);
    if (began == 0) {
      seen = 0;
      continue;
    }
    if (began != seen) {
      seen = began;
      op = op_.load(std::memory_order_relaxed);
      what = what_.load(std::memory_order_relaxed);
      answered = shut = false;
      next_report = kFirstWaitReport;
    }
    const Clock::duration waited = Clock::now() - began_at(seen);
    if (!shut && waited >= io_timeout_) {
      shut = true;
      if (!failed_.load() && began_.load(std::memory_order_acquire) == seen) shut_reads(op);
    }
    if (!answered && waited >= kAnswerAfter) {
      answered = true;
      lock.unlock();
      answer(op, Clock::now() + grace_);
      lock.lock();
    }
    if (waited >= next_report) {
      next_report += kWaitReportEvery;
      lock.unlock();
      report(op, what, waited);
      lock.lock();
    }
  }
}

void PeerWatch::report(uint64_t op, const char* what, Clock::duration waited) {
  std::string line = "rank " + std::to_string(rank_) + " of " + std::to_string(size_) + " (" + group_label(prefix_) + ") has waited " +
                     seconds(waited) + " (timeout " + seconds(timeout_) + ") in gloo " + what + " #" + std::to_string(op);
  if (store_) {
    try {
      std::vector<std::string> keys;
      for (int r = 0; r < size_; ++r) keys.push_back(roll_call_key(op, r));
      const std::vector<bool> here = store_->present(keys, std::chrono::milliseconds(0), Clock::now() + grace_ + kRollCallSlack);
      std::vector<int> absent;
      for (int r = 0; r < size_; ++r)
        if (!here[r]) absent.push_back(r);
      line += absent.empty() ? ": every rank has reached it, the data is late (a slow or broken network?)"
                             : ": awaiting " + name_ranks(absent, peers_, rank_) + ", which " + (absent.size() == 1 ? "has" : "have") +
                                   " not reached it";
    } catch (const StoreError& e) {
      line += e.kind == StoreError::kSilent
                  ? ": the rendezvous store at " + store_->address() + ", on the host of " + store_host_ranks() + ", does not answer"
                  : std::string(": ") + e.what();
    } catch (const std::exception& e) {
      line += std::string(": ") + e.what();
    }
  }
  print_wait_line(line);
}

}  // namespace comm
}  // namespace syncbn
