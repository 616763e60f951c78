// Memory-bandwidth probes for the CPU benchmark, kept out of the addon (users
// have no use for them): bench/cpu/machine.js compiles this file and runs it
// with the benchmark's thread count. The passes split work as the kernels do
// (native/kernels/cpu/threading.h: one thread below 2^15 elements).
//
//   bandwidth THREADS roofline NUMEL ROUNDS
//     best of ROUNDS STREAM copies (dst = src) and triads (a = b + s * c)
//     over arrays of NUMEL floats; prints "copy_gbs triad_gbs" (bytes read
//     and written per second, 1e9).
//   bandwidth THREADS copy NUMEL QUICK
//     the copy of one shape's x to y (NUMEL floats), warm: the median of
//     samples of back-to-back copies lasting at least 2 ms (one short sample
//     set with QUICK=1); prints milliseconds per copy.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "threading.h"

namespace syncbn {
namespace cpu {

namespace {
int g_threads = 1;
}

// The addon's count is the benchmark's --threads; here it is the argument.
int get_num_threads() { return g_threads; }

}  // namespace cpu
}  // namespace syncbn

namespace {

using syncbn::cpu::parallel_region;
using syncbn::cpu::threads_for;

// dst = src: reads n floats, writes n.
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

// a = b + s * c: reads 2n floats, writes n.
void stream_triad(float* a, const float* b, const float* c, float s, int64_t n) {
  const int nt = threads_for(n);
  parallel_region(nt, [&] {
#pragma omp for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
  });
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <typename Fn>
double best_gbs(Fn&& fn, double bytes, int rounds) {
  double top = 0;
  for (int i = 0; i < rounds; ++i) {
    const double t0 = now_s();
    fn();
    top = std::max(top, bytes / (now_s() - t0) / 1e9);
  }
  return top;
}

void roofline(int64_t n, int rounds) {
  std::vector<float> a(n, 1.0f), b(n, 2.0f), c(n, 3.0f);
  const double copy = best_gbs([&] { stream_copy(a.data(), b.data(), n); }, 2.0 * 4 * n, rounds);
  const double triad = best_gbs([&] { stream_triad(a.data(), b.data(), c.data(), 0.5f, n); }, 3.0 * 4 * n, rounds);
  std::printf("%.6f %.6f\n", copy, triad);
}

void copy_floor(int64_t n, bool quick) {
  std::vector<float> x(n, 1.0f), y(n, 2.0f);
  const auto time_ms = [&](int k) {
    const double t0 = now_s();
    for (int i = 0; i < k; ++i) stream_copy(x.data(), y.data(), n);
    return (now_s() - t0) * 1e3;
  };
  const int first = quick ? 1 : 10;
  const double once = std::max(time_ms(first) / first, 1e-4);
  const int k = quick ? 1 : std::max(1, std::min(1000, static_cast<int>(std::ceil(2 / once))));
  std::vector<double> samples(quick ? 3 : 15);
  for (double& s : samples) s = time_ms(k) / k;
  std::sort(samples.begin(), samples.end());
  std::printf("%.9f\n", samples[samples.size() / 2]);
}

long parse(const char* text, const char* what) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v < 0) {
    std::fprintf(stderr, "bandwidth: %s must be a non-negative integer, got '%s'\n", what, text);
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: bandwidth THREADS roofline NUMEL ROUNDS | bandwidth THREADS copy NUMEL QUICK\n");
    return 2;
  }
  syncbn::cpu::g_threads = std::max(1L, parse(argv[1], "THREADS"));
  const std::string what = argv[2];
  const int64_t n = parse(argv[3], "NUMEL");
  const long last = parse(argv[4], what == "roofline" ? "ROUNDS" : "QUICK");
  if (what == "roofline") {
    roofline(n, static_cast<int>(std::max(1L, last)));
  } else if (what == "copy") {
    copy_floor(n, last != 0);
  } else {
    std::fprintf(stderr, "bandwidth: unknown probe '%s' (roofline or copy)\n", argv[2]);
    return 2;
  }
  return 0;
}
