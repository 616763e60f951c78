// Thread counts for the CPU kernels.
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#else
inline int omp_get_thread_num() { return 0; }
inline int omp_get_max_threads() { return 1; }
#endif

namespace syncbn {
namespace cpu {

int get_num_threads();

// Below this many elements a parallel region costs more than it saves.
inline int threads_for(int64_t work) { return work < (int64_t(1) << 15) ? 1 : get_num_threads(); }

}  // namespace cpu
}  // namespace syncbn
