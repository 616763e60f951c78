// Connection set-up of the gloo backend: the address a rank listens on, and
// the full mesh of TCP pairs, every wait of it within the rendezvous timeout.
//
// Gloo's own connectFullMesh waits for each pair in turn, each up to five
// times the pair timeout (95 s for a 20 s timeout when a peer never dials);
// here the whole mesh shares one deadline: a watch thread closes the pairs
// when it passes, or as soon as another rank posts (in the store) that it
// could not connect, and prints whom this rank waits for while it waits.
#pragma once

#ifdef SYNCBN_HAVE_GLOO

#include <gloo/rendezvous/context.h>

#include <chrono>
#include <memory>

#include "gloo.h"
#include "gloo_watch.h"
#include "store_client.h"

namespace syncbn {
namespace comm {

struct Mesh {
  std::shared_ptr<gloo::rendezvous::Context> context;
  std::shared_ptr<StoreClient> store;  // null over a file store
  MeshPeers peers;
  std::vector<PairSocket> sockets;  // one per peer
};

// Connects `o.size` ranks within `o.timeout`; each pair's reads and writes
// then time out after `io_timeout`. Throws CommError naming the rank that
// could not be reached and, for an address problem, GLOO_SOCKET_IFNAME.
Mesh connect_mesh(const GlooOptions& o, std::chrono::milliseconds io_timeout);

}  // namespace comm
}  // namespace syncbn

#endif
