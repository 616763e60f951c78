#include "reduce.h"

#include <algorithm>
#include <cstdint>

namespace syncbn {
namespace comm {

namespace {

template <typename T>
void reduce_typed(T* acc, const T* in, size_t count, ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      for (size_t i = 0; i < count; ++i) acc[i] += in[i];
      break;
    case ReduceOp::Min:
      for (size_t i = 0; i < count; ++i) acc[i] = std::min(acc[i], in[i]);
      break;
    case ReduceOp::Max:
      for (size_t i = 0; i < count; ++i) acc[i] = std::max(acc[i], in[i]);
      break;
    case ReduceOp::Welford:
      break;
  }
}

}  // namespace

size_t elem_size(ElemType t, ReduceOp op) {
  if (op == ReduceOp::Welford) return sizeof(WelfordTriple);
  return t == ElemType::Float32 ? 4 : 8;
}

const char* op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Min: return "min";
    case ReduceOp::Max: return "max";
    case ReduceOp::Welford: return "welford";
  }
  return "?";
}

void reduce_into(void* acc, const void* in, size_t count, ElemType type, ReduceOp op) {
  if (op == ReduceOp::Welford) {
    auto* a = static_cast<WelfordTriple*>(acc);
    const auto* b = static_cast<const WelfordTriple*>(in);
    for (size_t i = 0; i < count; ++i) a[i] = welford_merge(a[i], b[i]);
    return;
  }
  switch (type) {
    case ElemType::Float32:
      reduce_typed(static_cast<float*>(acc), static_cast<const float*>(in), count, op);
      break;
    case ElemType::Float64:
      reduce_typed(static_cast<double*>(acc), static_cast<const double*>(in), count, op);
      break;
    case ElemType::Int64:
      reduce_typed(static_cast<int64_t*>(acc), static_cast<const int64_t*>(in), count, op);
      break;
  }
}

}  // namespace comm
}  // namespace syncbn
