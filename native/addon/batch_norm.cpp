// N-API bindings of the batch-norm ops: one per op, named arguments, on the
// device of the input (TypedArrays: the CPU table; DeviceBuffers: CUDA).
// Outputs are allocated by the caller, so no memory crosses the boundary and
// nothing here allocates on the JavaScript heap.
#include "batch_norm.h"

#include <iterator>

#include "../kernels/batch_norm.h"
#include "args.h"
#include "op_args.h"

namespace syncbn {
namespace addon {

namespace {

// Reads an op's arguments for its input's device (read(Tag<T>{}) fills the
// op's Args struct: T = float, double, BFloat16 or Float16 for TypedArrays,
// void for DeviceBuffers), refuses overlapping outputs, and calls the op:
// call(ops, args) with the CPU table or the CUDA kernels of that device.
template <typename T, typename Read, typename Call>
void call_cpu_as(OpArgs& a, Read read, Call call) {
  const auto k = read(Tag<T>{});
  a.check_overlap();
  call(cpu::ops<T>(), k);
}

template <typename Read, typename Call>
void call_cpu(OpArgs& a, Read read, Call call) {
  switch (a.dtype()) {
    case DType::Float32: return call_cpu_as<float>(a, read, call);
    case DType::Float64: return call_cpu_as<double>(a, read, call);
    case DType::Float16: return call_cpu_as<Float16>(a, read, call);
    case DType::BFloat16: return call_cpu_as<BFloat16>(a, read, call);
  }
}

template <typename Read, typename Call>
Napi::Value run(OpArgs& a, const BatchShape& s, Read read, Call call) {
  if (!a.on_cuda()) {
    call_cpu(a, read, call);
  } else {
#ifdef SYNCBN_HAVE_CUDA
    const auto k = read(Tag<void>{});
    a.check_overlap();
    run_cuda(a.env(), a.prefix(), a.device(), a.dtype(), s, [&](const cuda::Ops& ops) { return call(ops, k); });
#else
    (void)s;
#endif
  }
  return a.env().Undefined();
}

// The ops with no CUDA kernel (C values each; the cuda backend in
// lib/backends/cuda.ts computes them on the host).
template <typename Read, typename Call>
Napi::Value run_cpu(OpArgs& a, Read read, Call call) {
  if (a.on_cuda())
    throw Napi::TypeError::New(a.env(), a.prefix() + "has no CUDA kernel: its arrays must be TypedArrays, not DeviceBuffers");
  call_cpu(a, read, call);
  return a.env().Undefined();
}

// The ops with no CPU kernel: SyncBatchNorm on the device (on the CPU the
// Welford all-reduce merges and the host adds the grads).
template <typename Read, typename Call>
Napi::Value run_cuda_only(OpArgs& a, Read read, Call call) {
  if (!a.on_cuda())
    throw Napi::TypeError::New(a.env(), a.prefix() + "has no CPU kernel: its arrays must be DeviceBuffers, not TypedArrays");
#ifdef SYNCBN_HAVE_CUDA
  const auto k = read(Tag<void>{});
  a.check_overlap();
  run_cuda(a.env(), a.prefix(), a.device(), a.dtype(), BatchShape{0, 0, 1, false},
           [&](const cuda::Ops& ops) { return call(ops, k); });
#else
  (void)read, (void)call;
#endif
  return a.env().Undefined();
}

constexpr const char* kStatsFields[] = {"dtype", "shape", "channelsLast", "input", "eps", "mean", "invstd"};
constexpr OpSpec kStats{"stats", kStatsFields, std::size(kStatsFields)};

Napi::Value Stats(const Napi::CallbackInfo& info) {
  OpArgs a(info, kStats, "input");
  const BatchShape s = a.shape();
  const double eps = a.non_negative("eps");
  return run(a, s, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return StatsArgs<T>{a.data<T>("input", s.numel(), Role::In), s, eps, a.param<T>("mean", s.c, Role::Out),
                        a.param<T>("invstd", s.c, Role::Out)};
  }, [](const auto& ops, const auto& k) { return ops.stats(k); });
}

constexpr const char* kGatherStatsWithCountsFields[] = {"dtype", "means", "invstds", "counts", "world", "channels", "momentum", "eps", "mean", "invstd", "runningMean", "runningVar"};
constexpr OpSpec kGatherStatsWithCounts{"gatherStatsWithCounts", kGatherStatsWithCountsFields, std::size(kGatherStatsWithCountsFields)};

Napi::Value GatherStatsWithCounts(const Napi::CallbackInfo& info) {
  OpArgs a(info, kGatherStatsWithCounts, "means", Elem::Param);
  const int64_t world = a.integer("world", 1);
  const int64_t c = a.integer("channels", 1);
  // world x channels must not overflow (the lengths of means and invstds).
  if (static_cast<double>(world) * static_cast<double>(c) > 9007199254740991.0)
    throw a.range_error("channels", "at most " + std::to_string(9007199254740991LL / world) + " for " +
                                        std::to_string(world) + " workers (world x channels <= 2^53 - 1)");
  const double momentum = a.number("momentum");
  const double eps = a.non_negative("eps");
  return run_cpu(a, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return GatherStatsWithCountsArgs<T>{
        a.param<T>("means", world * c, Role::In), a.param<T>("invstds", world * c, Role::In),
        a.doubles("counts", world, Role::In), world, c, momentum, eps, a.param<T>("mean", c, Role::Out),
        a.param<T>("invstd", c, Role::Out), a.param<T>("runningMean", c, Role::OptOut),
        a.param<T>("runningVar", c, Role::OptOut)};
  }, [](const auto& ops, const auto& k) { return ops.gather_stats_with_counts(k); });
}

constexpr const char* kElemtFields[] = {"dtype", "shape", "channelsLast", "input", "mean", "invstd", "weight", "bias", "output"};
constexpr OpSpec kElemt{"elemt", kElemtFields, std::size(kElemtFields)};

Napi::Value Elemt(const Napi::CallbackInfo& info) {
  OpArgs a(info, kElemt, "input");
  const BatchShape s = a.shape();
  return run(a, s, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return ElemtArgs<T>{a.data<T>("input", s.numel(), Role::In), s, a.param<T>("mean", s.c, Role::In),
                        a.param<T>("invstd", s.c, Role::In), a.param<T>("weight", s.c, Role::OptIn),
                        a.param<T>("bias", s.c, Role::OptIn), a.data<T>("output", s.numel(), Role::Out)};
  }, [](const auto& ops, const auto& k) { return ops.elemt(k); });
}

constexpr const char* kBackwardReduceFields[] = {"dtype", "shape", "channelsLast", "gradOutput", "input", "mean", "invstd", "sumDy", "sumDyXmu", "gradWeight", "gradBias"};
constexpr OpSpec kBackwardReduce{"backwardReduce", kBackwardReduceFields, std::size(kBackwardReduceFields)};

Napi::Value BackwardReduce(const Napi::CallbackInfo& info) {
  OpArgs a(info, kBackwardReduce, "input");
  const BatchShape s = a.shape();
  return run(a, s, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return BackwardReduceArgs<T>{a.data<T>("gradOutput", s.numel(), Role::In), a.data<T>("input", s.numel(), Role::In), s,
                                 a.param<T>("mean", s.c, Role::In), a.param<T>("invstd", s.c, Role::In),
                                 a.param<T>("sumDy", s.c, Role::OptOut), a.param<T>("sumDyXmu", s.c, Role::OptOut),
                                 a.param<T>("gradWeight", s.c, Role::OptOut), a.param<T>("gradBias", s.c, Role::OptOut)};
  }, [](const auto& ops, const auto& k) { return ops.backward_reduce(k); });
}

constexpr const char* kBackwardElemtFields[] = {"dtype", "shape", "channelsLast", "gradOutput", "input", "mean", "invstd", "weight", "sumDy", "sumDyXmu", "totalCount", "gradInput"};
constexpr OpSpec kBackwardElemt{"backwardElemt", kBackwardElemtFields, std::size(kBackwardElemtFields)};

Napi::Value BackwardElemt(const Napi::CallbackInfo& info) {
  OpArgs a(info, kBackwardElemt, "input");
  const BatchShape s = a.shape();
  const double count = a.non_negative("totalCount");
  return run(a, s, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return BackwardElemtArgs<T>{a.data<T>("gradOutput", s.numel(), Role::In), a.data<T>("input", s.numel(), Role::In), s,
                                a.param<T>("mean", s.c, Role::In), a.param<T>("invstd", s.c, Role::In),
                                a.param<T>("weight", s.c, Role::OptIn), a.param<T>("sumDy", s.c, Role::In),
                                a.param<T>("sumDyXmu", s.c, Role::In), count,
                                a.data<T>("gradInput", s.numel(), Role::Out)};
  }, [](const auto& ops, const auto& k) { return ops.backward_elemt(k); });
}

constexpr const char* kForwardTrainingFields[] = {"dtype", "shape", "channelsLast", "input", "weight", "bias", "eps", "momentum", "runningMean", "runningVar", "output", "saveMean", "saveInvstd"};
constexpr OpSpec kForwardTraining{"forwardTraining", kForwardTrainingFields, std::size(kForwardTrainingFields)};

Napi::Value ForwardTraining(const Napi::CallbackInfo& info) {
  OpArgs a(info, kForwardTraining, "input");
  const BatchShape s = a.shape();
  const double eps = a.non_negative("eps");
  const double momentum = a.number("momentum");
  return run(a, s, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return ForwardTrainingArgs<T>{a.data<T>("input", s.numel(), Role::In), s, a.param<T>("weight", s.c, Role::OptIn),
                                  a.param<T>("bias", s.c, Role::OptIn), eps, momentum,
                                  a.param<T>("runningMean", s.c, Role::OptOut), a.param<T>("runningVar", s.c, Role::OptOut),
                                  a.data<T>("output", s.numel(), Role::Out), a.param<T>("saveMean", s.c, Role::Out),
                                  a.param<T>("saveInvstd", s.c, Role::Out)};
  }, [](const auto& ops, const auto& k) { return ops.forward_training(k); });
}

constexpr const char* kForwardInferenceFields[] = {"dtype", "shape", "channelsLast", "input", "runningMean", "runningVar", "weight", "bias", "eps", "output"};
constexpr OpSpec kForwardInference{"forwardInference", kForwardInferenceFields, std::size(kForwardInferenceFields)};

Napi::Value ForwardInference(const Napi::CallbackInfo& info) {
  OpArgs a(info, kForwardInference, "input");
  const BatchShape s = a.shape();
  const double eps = a.non_negative("eps");
  return run(a, s, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return ForwardInferenceArgs<T>{a.data<T>("input", s.numel(), Role::In), s, a.param<T>("runningMean", s.c, Role::In),
                                   a.param<T>("runningVar", s.c, Role::In), a.param<T>("weight", s.c, Role::OptIn),
                                   a.param<T>("bias", s.c, Role::OptIn), eps, a.data<T>("output", s.numel(), Role::Out)};
  }, [](const auto& ops, const auto& k) { return ops.forward_inference(k); });
}

constexpr const char* kBackwardFields[] = {"dtype", "shape", "channelsLast", "gradOutput", "input", "weight", "mean", "invstdOrVar", "training", "eps", "gradInput", "gradWeight", "gradBias", "accumulate"};
constexpr OpSpec kBackward{"backward", kBackwardFields, std::size(kBackwardFields)};

Napi::Value Backward(const Napi::CallbackInfo& info) {
  OpArgs a(info, kBackward, "input");
  const BatchShape s = a.shape();
  const bool training = a.boolean("training");
  const double eps = a.non_negative("eps");
  const bool accumulate = a.boolean("accumulate");
  return run(a, s, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return BackwardArgs<T>{a.data<T>("gradOutput", s.numel(), Role::In), a.data<T>("input", s.numel(), Role::In), s,
                           a.param<T>("weight", s.c, Role::OptIn), a.param<T>("mean", s.c, Role::In),
                           a.param<T>("invstdOrVar", s.c, Role::In), training, eps,
                           a.data<T>("gradInput", s.numel(), Role::OptOut), a.param<T>("gradWeight", s.c, Role::OptOut),
                           a.param<T>("gradBias", s.c, Role::OptOut), accumulate};
  }, [](const auto& ops, const auto& k) { return ops.backward(k); });
}

constexpr const char* kMomentsFields[] = {"dtype", "shape", "channelsLast", "input", "mean", "variance"};
constexpr OpSpec kMoments{"moments", kMomentsFields, std::size(kMomentsFields)};

Napi::Value Moments(const Napi::CallbackInfo& info) {
  OpArgs a(info, kMoments, "input");
  const BatchShape s = a.shape();
  return run_cpu(a, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return MomentsArgs<T>{a.data<T>("input", s.numel(), Role::In), s, a.param<T>("mean", s.c, Role::Out),
                          a.param<T>("variance", s.c, Role::Out)};
  }, [](const auto& ops, const auto& k) { return ops.moments(k); });
}

constexpr const char* kWelfordStatsFields[] = {"dtype", "shape", "channelsLast", "input", "summary"};
constexpr OpSpec kWelfordStats{"welfordStats", kWelfordStatsFields, std::size(kWelfordStatsFields)};

Napi::Value WelfordStats(const Napi::CallbackInfo& info) {
  OpArgs a(info, kWelfordStats, "input");
  const BatchShape s = a.shape();
  return run(a, s, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return WelfordStatsArgs<T>{a.data<T>("input", s.numel(), Role::In), s, a.doubles("summary", 3 * s.c, Role::Out)};
  }, [](const auto& ops, const auto& k) { return ops.welford_stats(k); });
}

constexpr const char* kWelfordFinalizeFields[] = {"dtype", "summary", "channels", "eps", "momentum", "mean", "invstd", "runningMean", "runningVar"};
constexpr OpSpec kWelfordFinalize{"welfordFinalize", kWelfordFinalizeFields, std::size(kWelfordFinalizeFields)};

Napi::Value WelfordFinalize(const Napi::CallbackInfo& info) {
  OpArgs a(info, kWelfordFinalize, "mean", Elem::Param);
  const int64_t c = a.integer("channels", 1);
  const double eps = a.non_negative("eps");
  const double momentum = a.number("momentum");
  return run_cpu(a, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return WelfordFinalizeArgs<T>{a.doubles("summary", 3 * c, Role::In), c, eps, momentum, a.param<T>("mean", c, Role::Out),
                                  a.param<T>("invstd", c, Role::Out), a.param<T>("runningMean", c, Role::OptOut),
                                  a.param<T>("runningVar", c, Role::OptOut)};
  }, [](const auto& ops, const auto& k) { return ops.welford_finalize(k); });
}

constexpr const char* kWelfordGatherFields[] = {"dtype", "summaries", "world", "channels", "eps", "momentum", "mean", "invstd", "runningMean", "runningVar", "totalCount"};
constexpr OpSpec kWelfordGather{"welfordGather", kWelfordGatherFields, std::size(kWelfordGatherFields)};

Napi::Value WelfordGather(const Napi::CallbackInfo& info) {
  OpArgs a(info, kWelfordGather, "summaries", Elem::Double);
  const int64_t world = a.integer("world", 1);
  const int64_t c = a.integer("channels", 1);
  // Bounds that keep world x channels x 24 bytes far from overflow.
  if (world > 1 << 20) throw a.range_error("world", "at most 1048576 ranks");
  if (c > 2147483647) throw a.range_error("channels", "at most 2147483647 channels");
  const double eps = a.non_negative("eps");
  const double momentum = a.number("momentum");
  return run_cuda_only(a, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return WelfordGatherArgs<T>{a.doubles("summaries", world * c * 3, Role::In), world, c, eps, momentum,
                                a.param<T>("mean", c, Role::Out), a.param<T>("invstd", c, Role::Out),
                                a.param<T>("runningMean", c, Role::OptOut), a.param<T>("runningVar", c, Role::OptOut),
                                a.doubles("totalCount", 1, Role::Out)};
  }, [](const auto& ops, const auto& k) { return ops.welford_gather(k); });
}

constexpr const char* kAccumulateFields[] = {"dtype", "source", "destination", "count"};
constexpr OpSpec kAccumulate{"accumulate", kAccumulateFields, std::size(kAccumulateFields)};

Napi::Value Accumulate(const Napi::CallbackInfo& info) {
  OpArgs a(info, kAccumulate, "destination", Elem::Param);
  const int64_t count = a.integer("count", 0);
  return run_cuda_only(a, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return AccumulateArgs<T>{a.param<T>("source", count, Role::In), a.param<T>("destination", count, Role::Out), count};
  }, [](const auto& ops, const auto& k) { return ops.accumulate(k); });
}

constexpr const char* kBlendStatsFields[] = {"dtype", "channels", "momentum", "meanA", "varA", "meanB", "varB", "varScale", "runningMean", "runningVar", "outMean", "outVar"};
constexpr OpSpec kBlendStats{"blendStats", kBlendStatsFields, std::size(kBlendStatsFields)};

Napi::Value BlendStats(const Napi::CallbackInfo& info) {
  OpArgs a(info, kBlendStats, "meanA", Elem::Param);
  const int64_t c = a.integer("channels", 1);
  const double m = a.number("momentum");
  const double scale = a.number("varScale");
  // out may be the running statistics themselves (an in-place update, read
  // and written per channel): those are Aliasable.
  return run_cpu(a, [&](auto tag) {
    using T = typename decltype(tag)::type;
    return BlendStatsArgs<T>{c, m, a.param<T>("meanA", c, Role::In), a.param<T>("varA", c, Role::In),
                             a.param<T>("meanB", c, Role::OptIn), a.param<T>("varB", c, Role::OptIn), scale,
                             a.param<T>("runningMean", c, Role::Aliasable), a.param<T>("runningVar", c, Role::Aliasable),
                             a.param<T>("outMean", c, Role::Out), a.param<T>("outVar", c, Role::Out)};
  }, [](const auto& ops, const auto& k) { return ops.blend_stats(k); });
}

Napi::Value ConvertMemoryFormat(const Napi::CallbackInfo& info) {
  Args a(info, "convertMemoryFormat", 4);
  a.no_overlap({{1, "destination"}}, {{0, "source"}});
  const BatchShape s = a.shape(2);  // the flag at 3 is the target format
  napi_typedarray_type src_kind, dst_kind;
  int src_size, dst_size;
  const void* src = a.raw(0, "source", s.numel(), &src_kind, &src_size);
  void* dst = a.raw(1, "destination", s.numel(), &dst_kind, &dst_size);
  if (src_kind != dst_kind)
    throw Napi::TypeError::New(info.Env(), a.prefix() + "source and destination must be the same "
                                                         "kind of TypedArray, got " +
                                               typed_array_name(src_kind) + " and " +
                                               typed_array_name(dst_kind));
  if (src_size != 2 && src_size != 4 && src_size != 8)
    throw Napi::TypeError::New(info.Env(), a.prefix() + "elements must be 2, 4 or 8 bytes wide");
  cpu::convert_memory_format(src, dst, s.n, s.c, s.inner, src_size, s.channels_last);
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), cpu::get_num_threads());
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Args a(info, "setNumThreads", 1);
  const int64_t n = a.integer(0, "threads", 1);
  if (n > cpu::max_num_threads())
    throw a.range_error(0, "threads", "an integer in [1, " + std::to_string(cpu::max_num_threads()) + "] (4x the cores, at least 64)");
  cpu::set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}

Napi::Value MaxNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), cpu::max_num_threads());
}

}  // namespace

void RegisterBatchNorm(Napi::Env env, Napi::Object exports) {
  // One binding per op, on either device; see native/kernels/batch_norm.h.
  Napi::Object ops = Napi::Object::New(env);
  ops.Set("stats", op_function(env, kStats, Napi::Function::New(env, Stats, "stats")));
  ops.Set("gatherStatsWithCounts", op_function(env, kGatherStatsWithCounts, Napi::Function::New(env, GatherStatsWithCounts, "gatherStatsWithCounts")));
  ops.Set("elemt", op_function(env, kElemt, Napi::Function::New(env, Elemt, "elemt")));
  ops.Set("backwardReduce", op_function(env, kBackwardReduce, Napi::Function::New(env, BackwardReduce, "backwardReduce")));
  ops.Set("backwardElemt", op_function(env, kBackwardElemt, Napi::Function::New(env, BackwardElemt, "backwardElemt")));
  ops.Set("forwardTraining", op_function(env, kForwardTraining, Napi::Function::New(env, ForwardTraining, "forwardTraining")));
  ops.Set("forwardInference", op_function(env, kForwardInference, Napi::Function::New(env, ForwardInference, "forwardInference")));
  ops.Set("backward", op_function(env, kBackward, Napi::Function::New(env, Backward, "backward")));
  ops.Set("moments", op_function(env, kMoments, Napi::Function::New(env, Moments, "moments")));
  ops.Set("welfordStats", op_function(env, kWelfordStats, Napi::Function::New(env, WelfordStats, "welfordStats")));
  ops.Set("welfordFinalize", op_function(env, kWelfordFinalize, Napi::Function::New(env, WelfordFinalize, "welfordFinalize")));
  ops.Set("blendStats", op_function(env, kBlendStats, Napi::Function::New(env, BlendStats, "blendStats")));
  ops.Set("welfordGather", op_function(env, kWelfordGather, Napi::Function::New(env, WelfordGather, "welfordGather")));
  ops.Set("accumulate", op_function(env, kAccumulate, Napi::Function::New(env, Accumulate, "accumulate")));
  exports.Set("ops", ops);
  exports.Set("convertMemoryFormat",
              Napi::Function::New(env, ConvertMemoryFormat, "convertMemoryFormat"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("maxNumThreads", Napi::Function::New(env, MaxNumThreads, "maxNumThreads"));
}

}  // namespace addon
}  // namespace syncbn
