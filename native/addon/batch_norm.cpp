// N-API bindings of the CPU batch-norm kernels: unwrap, check, call.
// Outputs are TypedArrays allocated by the caller, so no memory crosses the
// boundary and nothing here allocates on the JavaScript heap.
#include "batch_norm.h"

#include "../kernels/batch_norm.h"
#include "args.h"

namespace syncbn {
namespace addon {

namespace {

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormStats", 6);
  a.no_overlap({{4, "mean"}, {5, "invstd"}}, {{0, "input"}});
  const BatchShape s = a.shape(1);
  const double eps = a.non_negative(3, "eps");
  dispatch(a.dtype(0, "input"), [&](auto tag) {
    using T = decltype(tag);
    cpu::ops<T>().stats({a.array<T>(0, "input", s.numel()), s, eps, a.array<T>(4, "mean", s.c), a.array<T>(5, "invstd", s.c)});
  });
  return info.Env().Undefined();
}

Napi::Value GatherStatsWithCounts(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormGatherStatsWithCounts", 11);
  a.no_overlap({{7, "mean"}, {8, "invstd"}, {9, "runningMean"}, {10, "runningVar"}}, {{0, "means"}, {1, "invstds"}, {2, "counts"}});
  const int64_t world = a.integer(3, "world", 1);
  const int64_t c = a.integer(4, "channels", 1);
  const double momentum = a.number(5, "momentum");
  const double eps = a.non_negative(6, "eps");
  const double* counts = a.array<double>(2, "counts", world);
  dispatch(a.dtype(0, "means"), [&](auto tag) {
    using T = decltype(tag);
    cpu::ops<T>().gather_stats_with_counts({a.array<T>(0, "means", world * c), a.array<T>(1, "invstds", world * c), counts,
                                            world, c, momentum, eps, a.array<T>(7, "mean", c), a.array<T>(8, "invstd", c),
                                            a.optional<T>(9, "runningMean", c), a.optional<T>(10, "runningVar", c)});
  });
  return info.Env().Undefined();
}

Napi::Value Elemt(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormElemt", 8);
  a.no_overlap({{7, "output"}}, {{0, "input"}, {3, "mean"}, {4, "invstd"}, {5, "weight"}, {6, "bias"}});
  const BatchShape s = a.shape(1);
  dispatch(a.dtype(0, "input"), [&](auto tag) {
    using T = decltype(tag);
    cpu::ops<T>().elemt({a.array<T>(0, "input", s.numel()), s, a.array<T>(3, "mean", s.c),
                  a.array<T>(4, "invstd", s.c), a.optional<T>(5, "weight", s.c),
                  a.optional<T>(6, "bias", s.c), a.array<T>(7, "output", s.numel())});
  });
  return info.Env().Undefined();
}

Napi::Value BackwardReduce(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormBackwardReduce", 10);
  a.no_overlap({{6, "sumDy"}, {7, "sumDyXmu"}, {8, "gradWeight"}, {9, "gradBias"}}, {{0, "gradOutput"}, {1, "input"}, {4, "mean"}, {5, "invstd"}});
  const BatchShape s = a.shape(2);
  dispatch(a.dtype(0, "gradOutput"), [&](auto tag) {
    using T = decltype(tag);
    cpu::ops<T>().backward_reduce({a.array<T>(0, "gradOutput", s.numel()),
                            a.array<T>(1, "input", s.numel()), s, a.array<T>(4, "mean", s.c),
                            a.array<T>(5, "invstd", s.c), a.optional<T>(6, "sumDy", s.c),
                            a.optional<T>(7, "sumDyXmu", s.c), a.optional<T>(8, "gradWeight", s.c),
                            a.optional<T>(9, "gradBias", s.c)});
  });
  return info.Env().Undefined();
}

Napi::Value BackwardElemt(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormBackwardElemt", 11);
  a.no_overlap({{10, "gradInput"}}, {{0, "gradOutput"}, {1, "input"}, {4, "mean"}, {5, "invstd"}, {6, "weight"}, {7, "sumDy"}, {8, "sumDyXmu"}});
  const BatchShape s = a.shape(2);
  const double count = a.non_negative(9, "totalCount");
  dispatch(a.dtype(0, "gradOutput"), [&](auto tag) {
    using T = decltype(tag);
    cpu::ops<T>().backward_elemt({a.array<T>(0, "gradOutput", s.numel()),
                           a.array<T>(1, "input", s.numel()), s, a.array<T>(4, "mean", s.c),
                           a.array<T>(5, "invstd", s.c), a.optional<T>(6, "weight", s.c),
                           a.array<T>(7, "sumDy", s.c), a.array<T>(8, "sumDyXmu", s.c), count,
                           a.array<T>(10, "gradInput", s.numel())});
  });
  return info.Env().Undefined();
}

Napi::Value ForwardTraining(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormForwardTraining", 12);
  a.no_overlap({{7, "runningMean"}, {8, "runningVar"}, {9, "output"}, {10, "saveMean"}, {11, "saveInvstd"}}, {{0, "input"}, {3, "weight"}, {4, "bias"}});
  const BatchShape s = a.shape(1);
  const double eps = a.non_negative(5, "eps");
  const double momentum = a.number(6, "momentum");
  dispatch(a.dtype(0, "input"), [&](auto tag) {
    using T = decltype(tag);
    cpu::ops<T>().forward_training({a.array<T>(0, "input", s.numel()), s,
                             a.optional<T>(3, "weight", s.c), a.optional<T>(4, "bias", s.c), eps,
                             momentum, a.optional<T>(7, "runningMean", s.c),
                             a.optional<T>(8, "runningVar", s.c),
                             a.array<T>(9, "output", s.numel()), a.array<T>(10, "saveMean", s.c),
                             a.array<T>(11, "saveInvstd", s.c)});
  });
  return info.Env().Undefined();
}

Napi::Value ForwardInference(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormForwardInference", 9);
  a.no_overlap({{8, "output"}}, {{0, "input"}, {3, "runningMean"}, {4, "runningVar"}, {5, "weight"}, {6, "bias"}});
  const BatchShape s = a.shape(1);
  const double eps = a.non_negative(7, "eps");
  dispatch(a.dtype(0, "input"), [&](auto tag) {
    using T = decltype(tag);
    cpu::ops<T>().forward_inference({a.array<T>(0, "input", s.numel()), s,
                              a.array<T>(3, "runningMean", s.c), a.array<T>(4, "runningVar", s.c),
                              a.optional<T>(5, "weight", s.c), a.optional<T>(6, "bias", s.c), eps,
                              a.array<T>(8, "output", s.numel())});
  });
  return info.Env().Undefined();
}

Napi::Value Backward(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormBackward", 13);
  a.no_overlap({{9, "gradInput"}, {10, "gradWeight"}, {11, "gradBias"}}, {{0, "gradOutput"}, {1, "input"}, {4, "weight"}, {5, "mean"}, {6, "invstdOrVar"}});
  const BatchShape s = a.shape(2);
  const bool training = a.boolean(7, "training");
  const double eps = a.non_negative(8, "eps");
  const bool accumulate = a.boolean(12, "accumulate");
  dispatch(a.dtype(0, "gradOutput"), [&](auto tag) {
    using T = decltype(tag);
    cpu::ops<T>().backward({a.array<T>(0, "gradOutput", s.numel()), a.array<T>(1, "input", s.numel()), s,
                     a.optional<T>(4, "weight", s.c), a.array<T>(5, "mean", s.c),
                     a.array<T>(6, "invstdOrVar", s.c), training, eps,
                     a.optional<T>(9, "gradInput", s.numel()),
                     a.optional<T>(10, "gradWeight", s.c), a.optional<T>(11, "gradBias", s.c),
                     accumulate});
  });
  return info.Env().Undefined();
}

Napi::Value Moments(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormMoments", 5);
  a.no_overlap({{3, "mean"}, {4, "var"}}, {{0, "input"}});
  const BatchShape s = a.shape(1);
  dispatch(a.dtype(0, "input"), [&](auto tag) {
    using T = decltype(tag);
    cpu::ops<T>().moments({a.array<T>(0, "input", s.numel()), s, a.array<T>(3, "mean", s.c), a.array<T>(4, "var", s.c)});
  });
  return info.Env().Undefined();
}

Napi::Value WelfordStats(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormWelfordStats", 4);
  a.no_overlap({{3, "summary"}}, {{0, "input"}});
  const BatchShape s = a.shape(1);
  double* out = a.array<double>(3, "summary", 3 * s.c);
  dispatch(a.dtype(0, "input"), [&](auto tag) {
    using T = decltype(tag);
    cpu::ops<T>().welford_stats({a.array<T>(0, "input", s.numel()), s, out});
  });
  return info.Env().Undefined();
}

Napi::Value WelfordFinalize(const Napi::CallbackInfo& info) {
  Args a(info, "batchNormWelfordFinalize", 8);
  a.no_overlap({{4, "mean"}, {5, "invstd"}, {6, "runningMean"}, {7, "runningVar"}}, {{0, "summary"}});
  const int64_t c = a.integer(1, "channels", 1);
  const double* summary = a.array<double>(0, "summary", 3 * c);
  const double eps = a.non_negative(2, "eps");
  const double momentum = a.number(3, "momentum");
  dispatch(a.dtype(4, "mean"), [&](auto tag) {
    using T = decltype(tag);
    cpu::ops<T>().welford_finalize({summary, c, eps, momentum, a.array<T>(4, "mean", c),
                             a.array<T>(5, "invstd", c), a.optional<T>(6, "runningMean", c),
                             a.optional<T>(7, "runningVar", c)});
  });
  return info.Env().Undefined();
}

Napi::Value BlendStats(const Napi::CallbackInfo& info) {
  Args a(info, "blendStats", 11);
  // out may be the running statistics themselves (an in-place update, read
  // and written per channel), so only the batch statistics are inputs here.
  a.no_overlap({{9, "outMean"}, {10, "outVar"}}, {{2, "meanA"}, {3, "varA"}, {4, "meanB"}, {5, "varB"}});
  const int64_t c = a.integer(0, "channels", 1);
  const double m = a.number(1, "momentum");
  const double scale = a.number(6, "varScale");
  dispatch(a.dtype(2, "meanA"), [&](auto tag) {
    using T = decltype(tag);
    cpu::ops<T>().blend_stats({c, m, a.array<T>(2, "meanA", c), a.array<T>(3, "varA", c),
                        a.optional<T>(4, "meanB", c), a.optional<T>(5, "varB", c), scale,
                        a.optional<T>(7, "runningMean", c), a.optional<T>(8, "runningVar", c),
                        a.array<T>(9, "outMean", c), a.array<T>(10, "outVar", c)});
  });
  return info.Env().Undefined();
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
  exports.Set("batchNormStats", Napi::Function::New(env, Stats, "batchNormStats"));
  exports.Set("batchNormGatherStatsWithCounts",
              Napi::Function::New(env, GatherStatsWithCounts, "batchNormGatherStatsWithCounts"));
  exports.Set("batchNormElemt", Napi::Function::New(env, Elemt, "batchNormElemt"));
  exports.Set("batchNormBackwardReduce",
              Napi::Function::New(env, BackwardReduce, "batchNormBackwardReduce"));
  exports.Set("batchNormBackwardElemt",
              Napi::Function::New(env, BackwardElemt, "batchNormBackwardElemt"));
  exports.Set("batchNormForwardTraining",
              Napi::Function::New(env, ForwardTraining, "batchNormForwardTraining"));
  exports.Set("batchNormForwardInference",
              Napi::Function::New(env, ForwardInference, "batchNormForwardInference"));
  exports.Set("batchNormBackward", Napi::Function::New(env, Backward, "batchNormBackward"));
  exports.Set("batchNormMoments", Napi::Function::New(env, Moments, "batchNormMoments"));
  exports.Set("blendStats", Napi::Function::New(env, BlendStats, "blendStats"));
  exports.Set("batchNormWelfordStats",
              Napi::Function::New(env, WelfordStats, "batchNormWelfordStats"));
  exports.Set("batchNormWelfordFinalize",
              Napi::Function::New(env, WelfordFinalize, "batchNormWelfordFinalize"));
  exports.Set("convertMemoryFormat",
              Napi::Function::New(env, ConvertMemoryFormat, "convertMemoryFormat"));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads, "getNumThreads"));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads, "setNumThreads"));
  exports.Set("maxNumThreads", Napi::Function::New(env, MaxNumThreads, "maxNumThreads"));
}

}  // namespace addon
}  // namespace syncbn
