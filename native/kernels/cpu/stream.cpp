// STREAM-style probes of memory bandwidth (copy and triad), with the
// kernels' own thread count, for the benchmark's roofline.
#include "stream.h"

#include <algorithm>
#include <cstring>

#include "threading.h"

namespace syncbn {
namespace cpu {

void stream_copy(const float* src, float* dst, int64_t n) {
  const int nt = threads_for(n);
  parallel_region(nt, [&] {
    const int t = omp_get_thread_num();
    const int k = omp_get_num_threads();
    const int64_t per = (n + k - 1) / k;
    const int64_t b = std::min<int64_t>(n, t * per), e = std::min<int64_t>(n, b + per);
    if (e > b) std::memcpy(dst + b, src + b, static_cast<size_t>(e - b) * sizeof(float));
  });
}

void stream_triad(float* a, const float* b, const float* c, float s, int64_t n) {
  const int nt = threads_for(n);
  parallel_region(nt, [&] {
#pragma omp for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
  });
}

}  // namespace cpu
}  // namespace syncbn
