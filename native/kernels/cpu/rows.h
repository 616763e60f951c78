// Passes over rows: the channels-last layout (N, inner, C), and any batch
// with inner == 1, seen as n * inner rows of C channels. One skeleton
// (row_pass) schedules every pass, in panels or row ranges as the call's
// plan says; the range kernels below do the work of one block.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include "../batch_norm.h"
#include "cache.h"
#include "half.h"
#include "per_channel.h"
#include "plan.h"
#include "simd.h"
#include "threading.h"

#ifndef SYNCBN_CPU_ISA
#error "define SYNCBN_CPU_ISA before including the CPU kernels (see batch_norm_impl.h)"
#endif

namespace syncbn {
namespace cpu {
namespace SYNCBN_CPU_ISA {
namespace detail {

// ---- statistics of a block of rows ------------------------------------------

// Sums of d = x - shift and d^2 over `rows` rows of C channels, ld apart,
// into s1 and s2 (C entries each, added to): in T over blocks of kBlock
// rows, then in double. Rows go four at a time, so the per-channel
// accumulators (in L1) are loaded and stored once per four rows rather than
// once per row. (Here and below, S is the element type of the rows and T =
// opmath_t<S> that of the per-channel arrays and the arithmetic.)
template <typename S, typename T = opmath_t<S>>
void shifted_sums(const S* x, int64_t rows, int64_t C, int64_t ld, const T* shift, T* a, T* b, double* s1,
                  double* s2) {
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t r1 = std::min(rows, r0 + kBlock);
    std::fill(a, a + C, T(0));
    std::fill(b, b + C, T(0));
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
      const S* p = x + r * ld;
      over_channels<S>(0, C, [&](int64_t c, auto l) {
        const auto k = get(l, shift + c);
        const auto d0 = get(l, p + c) - k, d1 = get(l, p + ld + c) - k, d2 = get(l, p + 2 * ld + c) - k,
                   d3 = get(l, p + 3 * ld + c) - k;
        put(l, a + c, get(l, a + c) + ((d0 + d1) + (d2 + d3)));
        put(l, b + c, get(l, b + c) + ((d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)));
      });
    }
    for (; r < r1; ++r) {
      const S* p = x + r * ld;
      over_channels<S>(0, C, [&](int64_t c, auto l) {
        const auto d = get(l, p + c) - get(l, shift + c);
        put(l, a + c, get(l, a + c) + d);
        put(l, b + c, get(l, b + c) + d * d);
      });
    }
    for (int64_t c = 0; c < C; ++c) {
      s1[c] += static_cast<double>(a[c]);
      s2[c] += static_cast<double>(b[c]);
    }
  }
}

// Two passes over a tile of rows (C channels, ld apart) in cache (the sum,
// then sums shifted by the tile's mean): the tile's mean and m2 (C entries
// each).
template <typename S, typename T = opmath_t<S>>
void tile_moments(const S* x, int64_t rows, int64_t C, int64_t ld, std::vector<double>& sum, std::vector<T>& m,
                  std::vector<double>& s1, std::vector<double>& s2, Buffer<T>& a, Buffer<T>& b,
                  double* mean, double* m2) {
  std::fill(sum.begin(), sum.end(), 0.0);
  T* ap = a.data();
  for (int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const int64_t r1 = std::min(rows, r0 + kBlock);
    std::fill(a.data(), a.data() + C, T(0));
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
      const S* p = x + r * ld;
      over_channels<S>(0, C, [&](int64_t c, auto l) {
        put(l, ap + c, get(l, ap + c) + ((get(l, p + c) + get(l, p + ld + c)) + (get(l, p + 2 * ld + c) + get(l, p + 3 * ld + c))));
      });
    }
    for (; r < r1; ++r) {
      const S* p = x + r * ld;
      over_channels<S>(0, C, [&](int64_t c, auto l) { put(l, ap + c, get(l, ap + c) + get(l, p + c)); });
    }
    for (int64_t c = 0; c < C; ++c) sum[c] += static_cast<double>(a[c]);
  }
  const double n = static_cast<double>(rows), inv_n = 1.0 / n;
  for (int64_t c = 0; c < C; ++c) m[c] = static_cast<T>(sum[c] * inv_n);
  std::fill(s1.begin(), s1.end(), 0.0);
  std::fill(s2.begin(), s2.end(), 0.0);
  shifted_sums(x, rows, C, ld, m.data(), a.data(), b.data(), s1.data(), s2.data());
  for (int64_t c = 0; c < C; ++c) {
    mean[c] = static_cast<double>(m[c]) + s1[c] * inv_n;
    m2[c] = non_negative(s2[c] - s1[c] * s1[c] * inv_n);
  }
}

// acc += p over C values. Explicit vectors: GCC jammed the plain loop's
// calls for successive rows into one scalar loop.
template <typename S, typename T = opmath_t<S>>
inline void add_row(T* acc, const S* p, int64_t C) {
  int64_t c = 0;
  for (; c + kWidth<T> <= C; c += kWidth<T>) {
    const vec<T> v = vload(acc + c) + vload(p + c);
    std::memcpy(acc + c, &v, sizeof v);
  }
  for (; c < C; ++c) acc[c] += load(p + c);
}

// Rows whose mean is the shift of the one-pass statistics, spread evenly
// over a thread's rows.
constexpr int64_t kShiftRows = 16;

// One thread's rows [r0, r1): each channel's mean and m2 (C entries each),
// in one pass over x: sums of x - K and (x - K)^2, K per channel the mean
// of kShiftRows rows. m2 = s2 - s1^2 / n cancels only as much as K is off
// the mean; when for any channel the shift makes up more than 3/4 of s2 (K
// more than 1.7 standard deviations off: rows ordered by value, say), the
// range is done again tile by tile, two passes each in cache.
template <typename S>
void rows_moments_range(const S* x, int64_t C, int64_t ld, int64_t r0, int64_t r1, double* mean, double* m2) {
  using T = opmath_t<S>;
  const int64_t rows = r1 - r0;
  if (rows <= 0) return;
  std::vector<double> s1(C, 0.0), s2(C, 0.0);
  std::vector<T> shift(C, T(0));
  Buffer<T> a(C), b(C);  // zeroed per block by shifted_sums
  T* K = shift.data();
  // K is a rough estimate in T: the sums hold about any K, and the check
  // below catches one too far off.
  const int64_t k = std::min(rows, kShiftRows);
  for (int64_t i = 0; i < k; ++i) add_row(K, x + (r0 + i * rows / k) * ld, C);
  const T inv_k = T(1) / static_cast<T>(k);
#pragma omp simd
  for (int64_t c = 0; c < C; ++c) K[c] *= inv_k;
  shifted_sums(x + r0 * ld, rows, C, ld, K, a.data(), b.data(), s1.data(), s2.data());
  const double inv_n = 1.0 / static_cast<double>(rows);
  int64_t cancelled = 0;
#pragma omp simd reduction(+ : cancelled)
  for (int64_t c = 0; c < C; ++c) {
    const double d = s2[c] - s1[c] * s1[c] * inv_n;
    mean[c] = static_cast<double>(K[c]) + s1[c] * inv_n;
    m2[c] = d < 0.0 ? 0.0 : d;
    cancelled += 4.0 * d < s2[c] ? 1 : 0;
  }
  if (cancelled == 0) return;
  // Tiles sized by the row length, not C, so that a panel's channels fall
  // back to the tiles they would have in whole rows.
  const int64_t tile = tile_rows(ld);
  std::vector<double> sum(C), tm(C), tm2(C);
  std::vector<T> m(C);
  double n = 0;
  for (int64_t r = r0; r < r1; r += tile) {
    const int64_t len = std::min(tile, r1 - r);
    tile_moments(x + r * ld, len, C, ld, sum, m, s1, s2, a, b, tm.data(), tm2.data());
    merge_channels(n, mean, m2, static_cast<double>(len), tm.data(), tm2.data(), 0, C);
  }
}

// The threads' partial moments (part: nt x [mean C, m2 C], count[t] rows
// each) of channels [c0, c1), merged in thread order into thread 0's part.
inline void merge_parts(double* part, const std::vector<double>& count, int nt, int64_t C, int64_t c0, int64_t c1) {
  double n = count[0];
  for (int t = 1; t < nt; ++t) {
    const double* p = part + static_cast<size_t>(t) * 2 * C;
    merge_channels(n, part, part + C, count[static_cast<size_t>(t)], p, p + C, c0, c1);
  }
}

// ---- element-wise kernels over a block of rows ------------------------------

// Streaming stores over rows [r0, r1) of C channels treat them as one run
// of values whose channel cycles, cut at cache lines rather than at rows:
// rows seldom start on a line (a large V8 array begins 16 bytes into a
// page), and the whole lines inside the run are what may be streamed. So
// that eight lanes starting at any channel read a parameter in one load,
// each parameter is laid out C + 8 long, wrapping around.
inline std::vector<float> cyclic_params(int64_t C, std::initializer_list<const float*> params) {
  std::vector<float> w;
  w.reserve(params.size() * (C + 8));
  for (const float* p : params)
    for (int64_t c = 0; c < C + 8; ++c) w.push_back(p[c % C]);
  return w;
}

// one(i, c) with a regular store up to the first line boundary of out and
// after the last; eight(i, c), which streams lanes i..i+7 starting at channel
// c, over the whole lines between (64 bytes of S per step). Needs C >= 8, so
// one subtraction wraps c.
template <typename S, typename One, typename Eight>
void stream_rows(const S* out, int64_t C, int64_t i, int64_t end, One one, Eight eight) {
  constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(S));
  int64_t c = i % C;
  const auto step = [&](int64_t n) {
    c += n;
    if (c >= C) c -= C;
  };
  for (; i < end && (reinterpret_cast<uintptr_t>(out + i) & 63); ++i, step(1)) one(i, c);
  for (; i + line <= end; i += line) {
    for (int64_t h = 0; h < line; h += 8) {
      eight(i + h, c);
      step(8);
    }
  }
  for (; i < end; ++i, step(1)) one(i, c);
}

// y = (x - m) * a + b over rows [r0, r1) of C channels, ld apart (m, a, b:
// C entries each); when `blocked`, four rows per load of the parameters.
template <typename S, typename T = opmath_t<S>>
void rows_affine_range(const S* x, S* y, int64_t C, int64_t ld, int64_t r0, int64_t r1, const T* m, const T* a,
                       const T* b, bool stream, bool blocked) {
  (void)stream;  // used only where streaming stores exist
  int64_t r = r0;
  if constexpr (kStreams<S>) {
    if (stream && C >= 8) {
      const auto one = [=](const S* xr, S* yr, const float* mr, const float* ar, const float* br) {
        return [=](int64_t i, int64_t c) { store(yr + i, (load(xr + i) - mr[c]) * ar[c] + br[c]); };
      };
      const auto eight = [=](const S* xr, S* yr, const float* mr, const float* ar, const float* br) {
        return [=](int64_t i, int64_t c) { store_vec(yr + i, (vload(xr + i) - vload(mr + c)) * vload(ar + c) + vload(br + c), true); };
      };
      if (ld == C) {
        const std::vector<float> w = cyclic_params(C, {m, a, b});
        const float *wm = w.data(), *wa = wm + C + 8, *wb = wa + C + 8;
        stream_rows(y, C, r0 * C, r1 * C, one(x, y, m, a, b), eight(x, y, wm, wa, wb));
      } else {
        // A panel's row is a run of its own: its channel never wraps.
        for (; r < r1; ++r) {
          const S* xr = x + r * ld;
          S* yr = y + r * ld;
          stream_rows(yr, C, 0, C, one(xr, yr, m, a, b), eight(xr, yr, m, a, b));
        }
      }
      return;
    }
  }
  for (; blocked && r + 4 <= r1; r += 4) {
    const S* p = x + r * ld;
    S* q = y + r * ld;
    over_channels<S>(0, C, [&](int64_t c, auto l) {
      const auto mc = get(l, m + c), ac = get(l, a + c), bc = get(l, b + c);
      put(l, q + c, (get(l, p + c) - mc) * ac + bc);
      put(l, q + ld + c, (get(l, p + ld + c) - mc) * ac + bc);
      put(l, q + 2 * ld + c, (get(l, p + 2 * ld + c) - mc) * ac + bc);
      put(l, q + 3 * ld + c, (get(l, p + 3 * ld + c) - mc) * ac + bc);
    });
  }
  for (; r < r1; ++r) {
    const S* p = x + r * ld;
    S* q = y + r * ld;
    over_channels<S>(0, C, [&](int64_t c, auto l) { put(l, q + c, (get(l, p + c) - get(l, m + c)) * get(l, a + c) + get(l, b + c)); });
  }
}

// ---- grad sums and grad input over a block of rows ---------------------------

// Rows [r0, r1) of C channels, ld apart: sums of dy and dy * (x - mean)
// into acc[0, C) and acc[C, 2C); when `blocked`, four rows per accumulator
// load and store.
template <typename S, typename T = opmath_t<S>>
void rows_grad_sums_range(const S* dy, const S* x, int64_t C, int64_t ld, int64_t r0, int64_t r1, const T* mean,
                          bool blocked, double* acc) {
  std::vector<T> a(C), b(C);
  T* ap = a.data();
  T* bp = b.data();
  for (int64_t q0 = r0; q0 < r1; q0 += kBlock) {
    const int64_t q1 = std::min(r1, q0 + kBlock);
    std::fill(a.begin(), a.end(), T(0));
    std::fill(b.begin(), b.end(), T(0));
    int64_t r = q0;
    for (; blocked && r + 4 <= q1; r += 4) {
      const S* g = dy + r * ld;
      const S* p = x + r * ld;
      over_channels<S>(0, C, [&](int64_t c, auto l) {
        const auto mc = get(l, mean + c);
        const auto g0 = get(l, g + c), g1 = get(l, g + ld + c), g2 = get(l, g + 2 * ld + c), g3 = get(l, g + 3 * ld + c);
        put(l, ap + c, get(l, ap + c) + ((g0 + g1) + (g2 + g3)));
        put(l, bp + c, get(l, bp + c) + ((g0 * (get(l, p + c) - mc) + g1 * (get(l, p + ld + c) - mc)) +
                                         (g2 * (get(l, p + 2 * ld + c) - mc) + g3 * (get(l, p + 3 * ld + c) - mc))));
      });
    }
    for (; r < q1; ++r) {
      const S* g = dy + r * ld;
      const S* p = x + r * ld;
      over_channels<S>(0, C, [&](int64_t c, auto l) {
        const auto gc = get(l, g + c);
        put(l, ap + c, get(l, ap + c) + gc);
        put(l, bp + c, get(l, bp + c) + gc * (get(l, p + c) - get(l, mean + c)));
      });
    }
    for (int64_t c = 0; c < C; ++c) {
      acc[c] += static_cast<double>(a[c]);
      acc[C + c] += static_cast<double>(b[c]);
    }
  }
}

// The threads' grad sums (part: nt x [sum dy C, sum dy (x - mean) C]) of
// channels [c0, c1), added into sg and sgx in thread order.
inline void sum_parts(const std::vector<double>& part, int nt, int64_t C, int64_t c0, int64_t c1, double* sg,
                      double* sgx) {
  for (int t = 0; t < nt; ++t) {
    const double* p = &part[static_cast<size_t>(t) * 2 * C];
    for (int64_t c = c0; c < c1; ++c) {
      sg[c] += p[c];
      sgx[c] += p[C + c];
    }
  }
}

// dx over rows [r0, r1) of C channels, ld apart (m, md, k, a: C entries
// each); when `blocked`, four rows per load of the coefficients.
template <typename S, typename T = opmath_t<S>>
void rows_grad_input_range(const S* dy, const S* x, S* dx, int64_t C, int64_t ld, int64_t r0, int64_t r1, const T* m,
                           const T* md, const T* k, const T* a, bool stream, bool blocked) {
  (void)stream;  // used only where streaming stores exist
  int64_t r = r0;
  if constexpr (kStreams<S>) {
    if (stream && C >= 8) {
      const auto one = [=](const S* gr, const S* xr, S* qr, const float* mr, const float* mdr, const float* kr,
                           const float* ar) {
        return [=](int64_t i, int64_t c) { store(qr + i, (load(gr + i) - mdr[c] - (load(xr + i) - mr[c]) * kr[c]) * ar[c]); };
      };
      const auto eight = [=](const S* gr, const S* xr, S* qr, const float* mr, const float* mdr, const float* kr,
                             const float* ar) {
        return [=](int64_t i, int64_t c) {
          const vec<float> xm = (vload(xr + i) - vload(mr + c)) * vload(kr + c);
          store_vec(qr + i, (vload(gr + i) - vload(mdr + c) - xm) * vload(ar + c), true);
        };
      };
      if (ld == C) {
        const std::vector<float> w = cyclic_params(C, {m, md, k, a});
        const float *wm = w.data(), *wmd = wm + C + 8, *wk = wmd + C + 8, *wa = wk + C + 8;
        stream_rows(dx, C, r0 * C, r1 * C, one(dy, x, dx, m, md, k, a), eight(dy, x, dx, wm, wmd, wk, wa));
      } else {
        // A panel's row is a run of its own: its channel never wraps.
        for (; r < r1; ++r) {
          const S *gr = dy + r * ld, *xr = x + r * ld;
          S* qr = dx + r * ld;
          stream_rows(qr, C, 0, C, one(gr, xr, qr, m, md, k, a), eight(gr, xr, qr, m, md, k, a));
        }
      }
      return;
    }
  }
  for (; blocked && r + 4 <= r1; r += 4) {
    const S* gp = dy + r * ld;
    const S* p = x + r * ld;
    S* q = dx + r * ld;
    over_channels<S>(0, C, [&](int64_t c, auto l) {
      const auto mc = get(l, m + c), mdc = get(l, md + c), kc = get(l, k + c), ac = get(l, a + c);
      put(l, q + c, (get(l, gp + c) - mdc - (get(l, p + c) - mc) * kc) * ac);
      put(l, q + ld + c, (get(l, gp + ld + c) - mdc - (get(l, p + ld + c) - mc) * kc) * ac);
      put(l, q + 2 * ld + c, (get(l, gp + 2 * ld + c) - mdc - (get(l, p + 2 * ld + c) - mc) * kc) * ac);
      put(l, q + 3 * ld + c, (get(l, gp + 3 * ld + c) - mdc - (get(l, p + 3 * ld + c) - mc) * kc) * ac);
    });
  }
  for (; r < r1; ++r) {
    const S* gp = dy + r * ld;
    const S* p = x + r * ld;
    S* q = dx + r * ld;
    over_channels<S>(0, C, [&](int64_t c, auto l) {
      put(l, q + c, (get(l, gp + c) - get(l, md + c) - (get(l, p + c) - get(l, m + c)) * get(l, k + c)) * get(l, a + c));
    });
  }
}

// ---- the row-pass skeleton ----------------------------------------------------

// A step that a row pass leaves out.
struct NoStep {
  template <typename... A>
  void operator()(const A&...) const {}
};

// The one schedule of every pass over rows, as reduce_runs is the one loop
// of every reduction over runs. With panels (p.panel > 0) a thread takes one
// panel at a time: reduce(b), finish(c0, c1), write(b), the panel still in
// its cache, and nothing to merge. With row ranges every thread reduces its
// rows (reduce(b)); after a barrier it merges the threads' partial sums of
// its share of the channels and finishes them (combine(c0, c1), then
// finish(c0, c1)); after another barrier it writes the same rows (write(b))
// from its cache. Steps left as NoStep are skipped, with the barriers only
// they need. Streamed stores are fenced before the region ends.
template <typename Reduce, typename Combine, typename Finish, typename Write>
void row_pass(const Plan& p, bool stream, Reduce reduce, Combine combine, Finish finish, Write write) {
  constexpr bool reduces = !std::is_same_v<Reduce, NoStep>;
  constexpr bool writes = !std::is_same_v<Write, NoStep>;
  if (p.panel > 0) {
    parallel_writes(p.nt, (p.c + p.panel - 1) / p.panel, stream, [&](int64_t k) {
      const RowBlock b{k * p.panel, std::min(p.c, k * p.panel + p.panel), 0, p.rows, -1};
      reduce(b);
      finish(b.c0, b.c1);
      write(b);
    });
    return;
  }
  parallel_region(p.nt, [&] {
    const int t = omp_get_thread_num();
    const RowBlock b = p.range(t);
    if constexpr (reduces) {
      reduce(b);
#pragma omp barrier
      int64_t c0, c1;
      p.channels(t, c0, c1);
      combine(c0, c1);
      finish(c0, c1);
      if constexpr (writes) {
#pragma omp barrier
      }
    }
    write(b);
    if (stream) SYNCBN_STORE_FENCE();
  });
}

// ---- the steps of the row passes, one block each -------------------------------

// Block b's moments into part: a panel's channels straight into [mean C,
// m2 C] at the start of part; thread t's row range into its slot of nt
// such, and its row count into count[t], for merge_parts.
template <typename S>
void moments_block(const S* x, int64_t C, const RowBlock& b, double* part, std::vector<double>& count) {
  double* d = b.panel() ? part : part + static_cast<size_t>(b.t) * 2 * C;
  rows_moments_range(x + b.c0, b.c1 - b.c0, C, b.r0, b.r1, d + b.c0, d + C + b.c0);
  if (!b.panel()) count[static_cast<size_t>(b.t)] = static_cast<double>(std::max<int64_t>(0, b.r1 - b.r0));
}

// Block b's grad sums: a panel's straight into sg and sgx; thread t's row
// range into its slot of part (nt x [sum dy C, sum dy (x - mean) C],
// zeroed), for sum_parts.
template <typename S, typename T = opmath_t<S>>
void grad_sums_block(const S* dy, const S* x, int64_t C, const RowBlock& b, const T* mean, bool blocked,
                     std::vector<double>& part, double* sg, double* sgx) {
  if (!b.panel()) {
    rows_grad_sums_range(dy, x, C, C, b.r0, b.r1, mean, blocked, &part[static_cast<size_t>(b.t) * 2 * C]);
    return;
  }
  const int64_t w = b.c1 - b.c0;
  std::vector<double> acc(2 * w, 0.0);
  rows_grad_sums_range(dy + b.c0, x + b.c0, w, C, b.r0, b.r1, mean + b.c0, blocked, acc.data());
  std::copy(acc.begin(), acc.begin() + w, sg + b.c0);
  std::copy(acc.begin() + w, acc.end(), sgx + b.c0);
}

// Block b's y = (x - shift) * scale + offset.
template <typename S, typename T = opmath_t<S>>
void affine_block(const S* x, S* y, int64_t C, const RowBlock& b, const Affine<T>& f, bool stream, bool blocked) {
  rows_affine_range(x + b.c0, y + b.c0, b.c1 - b.c0, C, b.r0, b.r1, f.shift.data() + b.c0, f.scale.data() + b.c0,
                    f.offset.data() + b.c0, stream, blocked);
}

// Block b's grad input.
template <typename S, typename T = opmath_t<S>>
void grad_input_block(const S* dy, const S* x, S* dx, int64_t C, const RowBlock& b, const GradCoef<T>& g, bool stream,
                      bool blocked) {
  rows_grad_input_range(dy + b.c0, x + b.c0, dx + b.c0, b.c1 - b.c0, C, b.r0, b.r1, g.mean.data() + b.c0,
                        g.mean_dy.data() + b.c0, g.proj.data() + b.c0, g.scale.data() + b.c0, stream, blocked);
}

// ---- the passes over rows that stand alone --------------------------------------

template <typename S>
void rows_moments(const S* x, const BatchShape& s, const Plan& p, std::vector<Moments>& out) {
  const int64_t C = s.c;
  std::vector<double> part(static_cast<size_t>(p.nt) * 2 * C), count(p.nt);
  row_pass(
      p, false, [&](const RowBlock& b) { moments_block(x, C, b, part.data(), count); },
      [&](int64_t c0, int64_t c1) { merge_parts(part.data(), count, p.nt, C, c0, c1); }, NoStep{}, NoStep{});
  out.resize(C);
  for (int64_t c = 0; c < C; ++c) out[c] = Moments{static_cast<double>(p.rows), part[c], part[C + c]};
}

template <typename S, typename T = opmath_t<S>>
void rows_affine(const S* x, S* y, const BatchShape& s, const Plan& p, const Affine<T>& f, bool stream) {
  row_pass(p, stream, NoStep{}, NoStep{}, NoStep{},
           [&](const RowBlock& b) { affine_block(x, y, s.c, b, f, stream, p.blocked); });
}

template <typename S, typename T = opmath_t<S>>
void rows_grad_sums(const S* dy, const S* x, const BatchShape& s, const Plan& p, const T* mean, std::vector<double>& sg,
                    std::vector<double>& sgx) {
  const int64_t C = s.c;
  sg.assign(C, 0.0);
  sgx.assign(C, 0.0);
  std::vector<double> part(p.panel > 0 ? 0 : static_cast<size_t>(p.nt) * 2 * C, 0.0);
  row_pass(
      p, false, [&](const RowBlock& b) { grad_sums_block(dy, x, C, b, mean, p.blocked, part, sg.data(), sgx.data()); },
      [&](int64_t c0, int64_t c1) { sum_parts(part, p.nt, C, c0, c1, sg.data(), sgx.data()); }, NoStep{}, NoStep{});
}

template <typename S, typename T = opmath_t<S>>
void rows_grad_input(const S* dy, const S* x, S* dx, const BatchShape& s, const Plan& p, const GradCoef<T>& g,
                     bool stream) {
  row_pass(p, stream, NoStep{}, NoStep{}, NoStep{},
           [&](const RowBlock& b) { grad_input_block(dy, x, dx, s.c, b, g, stream, p.blocked); });
}

}  // namespace detail
}  // namespace SYNCBN_CPU_ISA
}  // namespace cpu
}  // namespace syncbn
