#pragma once

#include <cstdint>

namespace syncbn {
namespace cpu {

// dst = src: reads n floats, writes n.
void stream_copy(const float* src, float* dst, int64_t n);
// a = b + s * c: reads 2n floats, writes n.
void stream_triad(float* a, const float* b, const float* c, float s, int64_t n);

}  // namespace cpu
}  // namespace syncbn
