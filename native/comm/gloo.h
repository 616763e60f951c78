// Gloo backend: CPU collectives across processes and machines over TCP.
#pragma once

#include <memory>
#include <string>

#include "communicator.h"

namespace syncbn {
namespace comm {

struct GlooOptions {
  // Rendezvous through the TypeScript store (store_host:store_port), or, when
  // file_store is set, through files in that directory.
  std::string store_host;
  int store_port = 0;
  std::string file_store;
  std::string prefix;    // keys of this group live under it
  std::string secret;    // authenticates every request to the TCP store
  std::string hostname;  // address this rank listens on
  std::string iface;     // or a network interface name (GLOO_SOCKET_IFNAME)
  int rank = 0;
  int size = 1;
  std::chrono::milliseconds timeout{300000};
};

bool gloo_available();

// Connects a full mesh of `size` ranks; blocks, so call it off the event loop.
std::unique_ptr<Communicator> gloo_connect(const GlooOptions& opts);

}  // namespace comm
}  // namespace syncbn
