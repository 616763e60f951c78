// Element-wise reductions shared by the backends that reduce on the host.
#pragma once

#include <cstddef>

#include "../kernels/statistics.h"
#include "communicator.h"

namespace syncbn {
namespace comm {

// acc = acc (op) in, over `count` elements of `type`.
void reduce_into(void* acc, const void* in, size_t count, ElemType type, ReduceOp op);

// Chan et al.'s merge of two (count, mean, m2) summaries: the one in
// native/kernels/statistics.h that the CPU and CUDA kernels merge with, so
// ranks combine exactly as one batch's chunks do (empty ranks skipped,
// non-finite means as in PyTorch).
inline WelfordTriple welford_merge(const WelfordTriple& a, const WelfordTriple& b) {
  const stats::Welford<double> m = stats::merge<double>({a.count, a.mean, a.m2}, {b.count, b.mean, b.m2});
  return {m.n, m.mean, m.m2};
}

}  // namespace comm
}  // namespace syncbn
