// Element-wise reductions shared by the backends that reduce on the host.
#pragma once

#include <cmath>
#include <cstddef>

#include "communicator.h"

namespace syncbn {
namespace comm {

// acc = acc (op) in, over `count` elements of `type`.
void reduce_into(void* acc, const void* in, size_t count, ElemType type, ReduceOp op);

// Chan et al.'s merge of two (count, mean, m2) summaries; exact for any split
// of the data and stable when the mean is far from zero.
inline WelfordTriple welford_merge(const WelfordTriple& a, const WelfordTriple& b) {
  if (!(b.count > 0)) return a;
  if (!(a.count > 0)) return b;
  const double n = a.count + b.count;
  // A NaN or an infinity in either part: the plain mean (what one pass over
  // all the data gives, +-Inf or NaN, as in PyTorch) and a NaN m2, where the
  // difference of means would turn an infinite mean into NaN.
  if (!std::isfinite(a.mean) || !std::isfinite(b.mean)) return {n, (a.mean * a.count + b.mean * b.count) / n, NAN};
  const double delta = b.mean - a.mean;
  return {n, a.mean + delta * (b.count / n), a.m2 + b.m2 + delta * delta * (a.count * b.count / n)};
}

}  // namespace comm
}  // namespace syncbn
