// The least a training forward can cost in each memory format, written by
// hand with no batch-norm arithmetic (bench/NOTES.md 28):
//   planar: a channel's slice stays in cache between its statistics and its
//           normalization, so x comes from beyond the cache once: the floor is
//           one pass that reads x and writes y;
//   rows:   a row holds every channel, so no row can be normalized before
//           every row has been reduced; beyond the cache x is read twice: a
//           pass that reads x, then one that reads x and writes y.
// Two threads, as the benchmark; median of 40 rounds, x and y warm.
//
//   g++ -O3 -mavx2 -mfma -fopenmp -std=c++17 bench/cpu/layout_floor.cpp -o /tmp/layout_floor
//   /tmp/layout_floor [numel ...]    (default: the benchmark's 1 MiB, 12.8 MB and 25.7 MB shapes)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Sums a thread's half of x, four vectors in flight so loads, not adds, bound it.
float read_pass(const float* x, long n) {
  float total = 0;
#pragma omp parallel num_threads(2) reduction(+ : total)
  {
    const int t = omp_get_thread_num();
    const long a = n * t / 2 / 32 * 32, b = t == 1 ? n : n / 2 / 32 * 32;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (long i = a; i + 32 <= b; i += 32) {
      s0 = _mm256_add_ps(s0, _mm256_load_ps(x + i));
      s1 = _mm256_add_ps(s1, _mm256_load_ps(x + i + 8));
      s2 = _mm256_add_ps(s2, _mm256_load_ps(x + i + 16));
      s3 = _mm256_add_ps(s3, _mm256_load_ps(x + i + 24));
    }
    float r[8];
    _mm256_storeu_ps(r, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (float v : r) total += v;
  }
  return total;
}

// y = 1.5 x over each thread's half, with streaming or regular stores.
void scale_pass(const float* x, float* y, long n, bool streaming) {
#pragma omp parallel num_threads(2)
  {
    const int t = omp_get_thread_num();
    const long a = n * t / 2 / 16 * 16, b = t == 1 ? n : n / 2 / 16 * 16;
    const __m256 k = _mm256_set1_ps(1.5f);
    for (long i = a; i + 16 <= b; i += 16) {
      const __m256 v0 = _mm256_mul_ps(_mm256_load_ps(x + i), k), v1 = _mm256_mul_ps(_mm256_load_ps(x + i + 8), k);
      if (streaming) {
        _mm256_stream_ps(y + i, v0);
        _mm256_stream_ps(y + i + 8, v1);
      } else {
        _mm256_store_ps(y + i, v0);
        _mm256_store_ps(y + i + 8, v1);
      }
    }
    _mm_sfence();
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void report(long n) {
  n = n / 32 * 32;
  float* x = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
  float* y = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
  for (long i = 0; i < n; ++i) {
    x[i] = static_cast<float>(i % 7);
    y[i] = 0;
  }
  volatile float sink = 0;
  for (bool streaming : {true, false}) {
    std::vector<double> planar, rows;
    for (int round = 0; round < 40; ++round) {
      const double t0 = now_ms();
      scale_pass(x, y, n, streaming);
      const double t1 = now_ms();
      sink = sink + read_pass(x, n);
      scale_pass(x, y, n, streaming);
      const double t2 = now_ms();
      planar.push_back(t1 - t0);
      rows.push_back(t2 - t1);
    }
    const double p = median(planar), r = median(rows);
    std::printf("%9ld values (%5.1f MB), %s stores: planar floor %.3f ms, rows floor %.3f ms, rows / planar %.2f\n", n,
                n * 4e-6, streaming ? "streaming" : "regular  ", p, r, r / p);
  }
  std::free(x);
  std::free(y);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) {
    for (int i = 1; i < argc; ++i) report(std::atol(argv[i]));
  } else {
    for (long n : {256L * 1024, 64L * 256 * 196, 32L * 64 * 3136}) report(n);
  }
  return 0;
}
