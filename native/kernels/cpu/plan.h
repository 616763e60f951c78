// How one call of a CPU kernel splits its work, decided once per call from
// the shape, the dtype and the thread count (plan_for), and read by every
// pass of that call. The fused kernels make several passes over the same
// data (statistics, then normalization or grad input of the values still in
// a thread's cache), and are correct only if every pass takes the same rows
// or panels: one plan per call, and one row-pass skeleton (rows.h's
// row_pass) reading it, make that true by construction.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../batch_norm.h"
#include "cache.h"
#include "simd.h"
#include "threading.h"

#ifndef SYNCBN_CPU_ISA
#error "define SYNCBN_CPU_ISA before including the CPU kernels (see batch_norm_impl.h)"
#endif

namespace syncbn {
namespace cpu {
namespace SYNCBN_CPU_ISA {
namespace detail {

constexpr int64_t kChunk = 32768;  // values per statistics chunk (128 KiB of float)

// Rows per tile: about kChunk values, and at least 64 rows so that merging a
// tile's per-channel statistics stays cheap next to computing them.
inline int64_t tile_rows(int64_t c) { return std::max<int64_t>(64, kChunk / c); }

// Rows are split between threads in one of two ways. Row ranges: each
// thread reduces its rows, the threads' sums are merged, then each thread
// normalizes its rows. Panels: a thread takes whole panels of channels over
// all rows, reduces one and normalizes it while it is still in cache, with
// no merge and no waiting for the other threads. Panels read a row's channels
// in pieces, which the hardware prefetchers follow worse than whole rows (at
// 256x1024, in cache, panels ran 0.7-0.8x of row ranges), so they are taken
// only where row ranges do badly (bench/NOTES.md 21):
// - too few rows to give every thread a tile (at most 64 rows for C >= 512:
//   32x16384 ran on one thread, 4.9x slower than in panels);
// - x beyond the cache, so that row ranges read it from memory twice, and
//   few enough rows (at most 256) that a panel of a few thousand channels
//   stays in the cache between its passes (256x32768: 1.4x, 128x65536: 2.1x;
//   1024x8192 was 0.8x).
// Channels per panel: panels of at most a thread's share of a quarter of
// L3, a multiple of nt of them, each a multiple of 16 channels; 0 when row
// ranges are taken. The split moves only roundings: panels sum a channel
// over all rows in one range, row ranges per thread and then merged.
template <typename S>
int64_t panel_width(const BatchShape& s, int nt) {
  const int64_t rows = s.n * s.inner, C = s.c, bytes = s.numel() * static_cast<int64_t>(sizeof(S));
  if (!s.rows() || rows == 0 || C == 0) return 0;
  const int64_t tile = tile_rows(C);
  const bool few = (rows + tile - 1) / tile < nt;
  const bool beyond = bytes > stream_bytes() && rows <= 256;
  if (!few && !beyond) return 0;
  const int64_t fit = std::max<int64_t>(16, stream_bytes() / nt / (rows * static_cast<int64_t>(sizeof(S))));
  const int64_t per = nt * ((C + fit * nt - 1) / (fit * nt));
  const int64_t width = ((C + per - 1) / per + 15) / 16 * 16;
  return width < C ? width : 0;
}

// Whether an element-wise pass over rows takes them four at a time (one
// load of the per-channel values per four rows) or one by one. Four rows at
// once read x as four streams a row apart, which the hardware prefetchers
// follow badly once rows are long: from memory, rows of 256 B or more ran
// 1.1-1.5x faster one by one (bench/NOTES.md 16), and rows of 512 B or more
// also in cache, where four 4 KiB-apart rows even share one L1 set.
template <typename S>
bool rows_blocked(const BatchShape& s) {
  const int64_t row = s.c * static_cast<int64_t>(sizeof(S));
  return row < 256 || (row < 512 && s.numel() * static_cast<int64_t>(sizeof(S)) <= stream_bytes());
}

// A block of a pass over rows: channels [c0, c1) of rows [r0, r1), C
// channels apart. A panel is a few channels over all rows (t = -1); a row
// range is all channels of thread t's rows.
struct RowBlock {
  int64_t c0, c1, r0, r1;
  int t;
  bool panel() const { return t < 0; }
};

struct Plan {
  int nt = 1;                // threads
  int64_t c = 0;             // channels
  int64_t rows = 0;          // n * inner: the rows of the row layout
  bool row_layout = false;   // channels last or inner == 1 (BatchShape::rows)
  int64_t panel = 0;         // row layout: channels per panel, 0 for row ranges
  int64_t tile = 0;          // row layout: row ranges are whole tiles of this many rows
  bool blocked = false;      // row layout: element-wise passes take four rows at once
  bool per_channel = false;  // planar: threads take whole channels (at least one each)
  // Non-temporal stores. A pass that writes after reading its inputs for a
  // reduction (the fused passes, grad input) streams outputs larger than a
  // quarter of the last-level cache; a normalization that is the whole op
  // (inference, elemt, eval grad input) only when x and y together overflow
  // it: until then its output stays there for its reader.
  bool stream = false;
  bool stream_alone = false;

  // Thread t's rows: `rows` split into nt contiguous ranges of whole tiles.
  RowBlock range(int t) const {
    const int64_t tiles = (rows + tile - 1) / tile;
    const int64_t per = (tiles + nt - 1) / nt;
    return {0, c, std::min(rows, t * per * tile), std::min(rows, (t + 1) * per * tile), t};
  }
  // Thread t's share of the channels, for the per-channel work between the
  // passes over rows.
  void channels(int t, int64_t& c0, int64_t& c1) const {
    c0 = c * t / nt;
    c1 = c * (t + 1) / nt;
  }
};

// S: the element type, whose size sets the bytes that the thresholds count.
template <typename S>
Plan plan_for(const BatchShape& s) {
  Plan p;
  const int64_t bytes = s.numel() * static_cast<int64_t>(sizeof(S));
  p.nt = threads_for(s.numel());
  p.c = s.c;
  p.rows = s.n * s.inner;
  p.row_layout = s.rows();
  p.panel = panel_width<S>(s, p.nt);
  p.tile = s.c > 0 ? tile_rows(s.c) : 1;
  p.blocked = rows_blocked<S>(s);
  p.per_channel = s.c >= p.nt;
  p.stream = bytes > stream_bytes();
  p.stream_alone = bytes > 2 * stream_bytes();
  return p;
}

// body(i) for i in [0, count), split statically over nt threads. Each thread
// fences its own non-temporal stores before the region ends, so the output
// is complete for whoever reads it next.
template <typename Body>
void parallel_writes(int nt, int64_t count, bool stream, Body body) {
  parallel_region(nt, [&] {
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < count; ++i) body(i);
    if (stream) SYNCBN_STORE_FENCE();
  });
}

}  // namespace detail
}  // namespace SYNCBN_CPU_ISA
}  // namespace cpu
}  // namespace syncbn
