// Thread counts for the CPU kernels.
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#else
inline int omp_get_thread_num() { return 0; }
inline int omp_get_max_threads() { return 1; }
inline int omp_get_num_threads() { return 1; }
inline int omp_get_thread_limit() { return 1; }
#endif

namespace syncbn {
namespace cpu {

int get_num_threads();

// Below this many elements a parallel region costs more than it saves.
inline int threads_for(int64_t work) { return work < (int64_t(1) << 15) ? 1 : get_num_threads(); }

// body() on nt threads, as `#pragma omp parallel num_threads(nt)` would run
// it, but called directly for one thread: libgomp still sets up a team of
// one (0.4 us, with futex calls), a tenth of a small op (bench/NOTES.md 29).
// Serially, omp_get_thread_num() is 0, and an `omp for` or `omp barrier`
// inside body binds to no team: the one thread runs every iteration.
//
// The kernels split their work by omp_get_thread_num() over nt parts (a
// Plan's row ranges, channel shares and barriers), so the team must have
// exactly nt threads: dynamic adjustment (OMP_DYNAMIC=true) is turned off for
// the calling thread, and get_num_threads() stays within OMP_THREAD_LIMIT. A
// smaller team would leave parts of the output unwritten.
template <typename Body>
inline void parallel_region(int nt, Body&& body) {
#ifdef _OPENMP
  if (nt > 1) {
    if (omp_get_dynamic()) omp_set_dynamic(0);
#pragma omp parallel num_threads(nt)
    body();
    return;
  }
#endif
  body();
}

}  // namespace cpu
}  // namespace syncbn
