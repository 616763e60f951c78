// HMAC-SHA256 (RFC 2104 over FIPS 180-4), self-contained: the addon does not
// link OpenSSL, and the rendezvous store authenticates every request and
// reply with it (see lib/distributed/store.ts for the protocol). Checked
// against RFC 4231's test vectors and Node's crypto in test/store_auth.test.ts.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace syncbn {
namespace comm {

using Digest = std::array<uint8_t, 32>;

Digest hmac_sha256(const std::string& key, const void* data, size_t len);

// Compares in time independent of where the first difference lies.
bool digest_equal(const uint8_t* a, const uint8_t* b);

}  // namespace comm
}  // namespace syncbn
