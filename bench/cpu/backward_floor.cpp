// The least work of the (N, C) training backward written by hand, for
// bench/NOTES.md 36: what an empty OpenMP region and its barriers cost, and
// how long the backward's passes take with trivial bodies (no per-channel
// accumulators) on warm arrays of the same size, split by rows over the
// same threads as the kernel's row ranges.
//
//   c++ -O3 -mavx2 -mfma -fopenmp -std=c++17 bench/cpu/backward_floor.cpp -o /tmp/backward_floor
//   /tmp/backward_floor [rows] [C] [threads]      (default 256 1024 2)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

double now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median over 15 samples of the mean time per call of fn, each sample
// lasting at least 2 ms.
template <typename Fn>
double median_us(Fn&& fn) {
  for (int i = 0; i < 50; ++i) fn();
  double t0 = now_us();
  for (int i = 0; i < 50; ++i) fn();
  const int k = std::max(5, static_cast<int>(2000 / ((now_us() - t0) / 50 + 1e-3)));
  std::vector<double> s(15);
  for (double& v : s) {
    t0 = now_us();
    for (int i = 0; i < k; ++i) fn();
    v = (now_us() - t0) / k;
  }
  std::sort(s.begin(), s.end());
  return s[7];
}

volatile float g_sink;

}  // namespace

int main(int argc, char** argv) {
  const long rows = argc > 1 ? std::atol(argv[1]) : 256, C = argc > 2 ? std::atol(argv[2]) : 1024;
  const int nt = argc > 3 ? std::atoi(argv[3]) : 2;
  const long n = rows * C;
  std::vector<float> dy(n), x(n), dx(n), y(n), k(C, 0.5f), m(C, 0.1f);
  for (long i = 0; i < n; ++i) {
    dy[i] = static_cast<float>(i % 7) - 3;
    x[i] = static_cast<float>(i % 5) - 2;
  }
  omp_set_dynamic(0);
  const float *pdy = dy.data(), *px = x.data(), *pk = k.data(), *pm = m.data();
  float *pdx = dx.data(), *py = y.data();
  auto range = [&](int t, long& r0, long& r1) {
    const long per = (rows + nt - 1) / nt;
    r0 = std::min(rows, t * per);
    r1 = std::min(rows, r0 + per);
  };
  // One read of [r0, r1) of a and b: the sum of a * b in four vector
  // accumulators (no latency chain), so nothing is skipped.
  auto read2 = [&](const float* a, const float* b, long r0, long r1) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (long i = r0 * C; i + 32 <= r1 * C; i += 32) {
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
      s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
      s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    float v[8];
    _mm256_storeu_ps(v, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    return v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
  };
  // dx = (dy - m - (x - m) * k) * k over [r0, r1): the grad input's arithmetic.
  auto write = [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) {
      const float *g = pdy + r * C, *p = px + r * C;
      float* q = pdx + r * C;
#pragma omp simd
      for (long c = 0; c < C; ++c) q[c] = (g[c] - pm[c] - (p[c] - pm[c]) * pk[c]) * pk[c];
    }
  };
  const double empty = median_us([&] {
#pragma omp parallel num_threads(nt)
    { g_sink = 0; }
  });
  const double barriers = median_us([&] {
#pragma omp parallel num_threads(nt)
    {
#pragma omp barrier
#pragma omp barrier
      g_sink = 0;
    }
  });
  const double memcpy1 = median_us([&] { std::copy(px, px + n, py); });
  const double copy = median_us([&] {
#pragma omp parallel num_threads(nt)
    {
      long r0, r1;
      range(omp_get_thread_num(), r0, r1);
      std::copy(px + r0 * C, px + r1 * C, py + r0 * C);
    }
  });
  const double read = median_us([&] {
#pragma omp parallel num_threads(nt)
    {
      long r0, r1;
      range(omp_get_thread_num(), r0, r1);
      g_sink = read2(pdy, px, r0, r1);
    }
  });
  const double one_pass = median_us([&] {
#pragma omp parallel num_threads(nt)
    {
      long r0, r1;
      range(omp_get_thread_num(), r0, r1);
      write(r0, r1);
    }
  });
  // The backward's structure: read dy and x, two barriers (merge and
  // coefficients between), then read them again and write dx.
  const double two_pass = median_us([&] {
#pragma omp parallel num_threads(nt)
    {
      long r0, r1;
      range(omp_get_thread_num(), r0, r1);
      g_sink = read2(pdy, px, r0, r1);
#pragma omp barrier
#pragma omp barrier
      write(r0, r1);
    }
  });
  const double mib = n * 4.0 / (1 << 20);
  std::printf("%ldx%ld float32 (%.2f MiB a tensor), %d threads, warm, median us per call:\n", rows, C, mib, nt);
  std::printf("  empty parallel region                 %7.2f\n", empty);
  std::printf("  region with two barriers              %7.2f\n", barriers);
  std::printf("  copy x -> y, 1 thread (std::copy)     %7.2f  (%.1f GB/s read+write)\n", memcpy1, 2 * n * 4 / memcpy1 / 1e3);
  std::printf("  copy x -> y, %d threads                %7.2f  (%.1f GB/s read+write)\n", nt, copy, 2 * n * 4 / copy / 1e3);
  std::printf("  read dy and x                         %7.2f  (%.1f GB/s)\n", read, 2 * n * 4 / read / 1e3);
  std::printf("  read dy and x, write dx               %7.2f  (%.1f GB/s read+write)\n", one_pass, 3 * n * 4 / one_pass / 1e3);
  std::printf("  both, two barriers between (floor)    %7.2f\n", two_pass);
  return 0;
}
