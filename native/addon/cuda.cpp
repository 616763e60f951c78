// N-API glue of the CUDA runtime and kernels: device queries, DeviceBuffer
// (device memory owned by a JavaScript object whose finalizer returns it to
// the caching allocator) and the batch-norm ops on device buffers.
// Without CUDA at build time the same names exist and say so.
#include "cuda.h"

#include <string>

#include "args.h"
#include "instance.h"

#ifdef SYNCBN_HAVE_CUDA
#include "../cuda/runtime.h"
#include "../kernels/cuda/batch_norm_cuda.h"
#endif

namespace syncbn {
namespace addon {

namespace {

#ifdef SYNCBN_HAVE_CUDA

class DeviceBuffer : public Napi::ObjectWrap<DeviceBuffer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "DeviceBuffer",
                       {InstanceAccessor<&DeviceBuffer::Bytes>("byteLength"),
                        InstanceAccessor<&DeviceBuffer::Device>("device"),
                        InstanceMethod<&DeviceBuffer::CopyFromHost>("copyFromHost"),
                        InstanceMethod<&DeviceBuffer::CopyToHost>("copyToHost"),
                        InstanceMethod<&DeviceBuffer::CopyFrom>("copyFrom")});
  }

  // new DeviceBuffer(device, bytes)
  explicit DeviceBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceBuffer>(info) {
    Args a(info, "DeviceBuffer", 2);
    device_ = static_cast<int>(a.integer(0, "device", 0));
    bytes_ = static_cast<size_t>(a.integer(1, "bytes", 0));
    try {
      if (device_ >= cuda::device_count())
        throw cuda::CudaError("CUDA device " + std::to_string(device_) + " does not exist");
      data_ = cuda::device_alloc(device_, bytes_, &capacity_);
    } catch (const cuda::CudaError& e) {
      throw Napi::Error::New(info.Env(), std::string("syncbn: ") + e.what());
    }
  }

  ~DeviceBuffer() override {
    if (data_ != nullptr) cuda::device_free(device_, data_, capacity_);
  }

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  int device() const { return device_; }

 private:
  Napi::Value Bytes(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(bytes_)); }
  Napi::Value Device(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), device_); }

  Napi::Value CopyFromHost(const Napi::CallbackInfo& info) { return HostCopy(info, "DeviceBuffer.copyFromHost", true); }
  Napi::Value CopyToHost(const Napi::CallbackInfo& info) { return HostCopy(info, "DeviceBuffer.copyToHost", false); }

  // The whole buffer to or from a TypedArray of exactly its byte length.
  Napi::Value HostCopy(const Napi::CallbackInfo& info, const char* op, bool to_device) {
    Args a(info, op, 1);
    napi_typedarray_type kind;
    int size;
    const Napi::Value v = a.value(0);
    const int64_t n = v.IsTypedArray() ? static_cast<int64_t>(v.As<Napi::TypedArray>().ElementLength()) : -1;
    void* host = a.raw(0, "array", n, &kind, &size);
    if (static_cast<size_t>(n) * size != bytes_)
      throw Napi::RangeError::New(info.Env(), a.prefix() + "the array has " + std::to_string(n * size) +
                                                  " bytes, the buffer " + std::to_string(bytes_));
    try {
      if (to_device) cuda::copy_to_device(device_, data_, host, bytes_);
      else cuda::copy_to_host(device_, host, data_, bytes_);
    } catch (const cuda::CudaError& e) {
      throw Napi::Error::New(info.Env(), std::string("syncbn: ") + e.what());
    }
    return info.Env().Undefined();
  }

  Napi::Value CopyFrom(const Napi::CallbackInfo& info);

  int device_ = 0;
  size_t bytes_ = 0;
  size_t capacity_ = 0;
  void* data_ = nullptr;
};

DeviceBuffer* unwrap(const Args& a, size_t i, const char* name, size_t bytes, int device, bool optional) {
  const Napi::Value v = a.value(i);
  if (optional && (v.IsNull() || v.IsUndefined())) return nullptr;
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(a.env()).device_buffer.Value()))
    throw a.type_error(i, name, "a DeviceBuffer", v);
  DeviceBuffer* b = DeviceBuffer::Unwrap(v.As<Napi::Object>());
  if (b->device() != device)
    throw Napi::Error::New(a.env(), a.prefix() + "argument '" + name + "' is on cuda:" + std::to_string(b->device()) +
                                        ", expected cuda:" + std::to_string(device));
  if (b->bytes() < bytes)
    throw Napi::RangeError::New(a.env(), a.prefix() + "argument '" + name + "' holds " + std::to_string(b->bytes()) +
                                             " bytes, needs " + std::to_string(bytes));
  return b;
}

// copyFrom(source): the whole buffer from `source`; copyFrom(source, bytes,
// offset, sourceOffset): `bytes` from source + sourceOffset to this + offset.
// Enqueued on the device's stream; nothing waits.
Napi::Value DeviceBuffer::CopyFrom(const Napi::CallbackInfo& info) {
  const bool ranged = info.Length() == 4;
  Args a(info, "DeviceBuffer.copyFrom", ranged ? 4 : 1);
  const size_t bytes = ranged ? static_cast<size_t>(a.integer(1, "bytes", 0)) : bytes_;
  const size_t to = ranged ? static_cast<size_t>(a.integer(2, "offset", 0)) : 0;
  const size_t from = ranged ? static_cast<size_t>(a.integer(3, "sourceOffset", 0)) : 0;
  if (to > bytes_ || bytes > bytes_ - to)
    throw a.range_error(1, "bytes", "at most " + std::to_string(bytes_ - std::min(to, bytes_)) + " bytes from offset " +
                                        std::to_string(to) + " of a " + std::to_string(bytes_) + "-byte buffer");
  DeviceBuffer* src = unwrap(a, 0, "source", 0, device_, false);
  if (from > src->bytes() || bytes > src->bytes() - from)
    throw a.range_error(3, "sourceOffset", "a range of " + std::to_string(bytes) + " bytes inside the " +
                                               std::to_string(src->bytes()) + "-byte source");
  if (src == this && bytes > 0 && from < to + bytes && to < from + bytes)
    throw Napi::RangeError::New(info.Env(), a.prefix() + "the source and destination ranges overlap");
  if (bytes == 0) return info.Env().Undefined();
  try {
    cuda::copy_on_device(device_, static_cast<char*>(data_) + to, static_cast<const char*>(src->data()) + from, bytes);
  } catch (const cuda::CudaError& e) {
    throw Napi::Error::New(info.Env(), std::string("syncbn: ") + e.what());
  }
  return info.Env().Undefined();
}

DType dtype_arg(const Args& a, size_t i) {
  const Napi::Value v = a.value(i);
  const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
  for (DType t : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16})
    if (s == dtype_name(t)) return t;
  throw a.type_error(i, "dtype", "'float32', 'float64', 'float16' or 'bfloat16'", v);
}


// The launch for `device`, with workspace from the caching allocator that
// goes back to the cache when this object ends (stream order keeps it safe).
class Workspace {
 public:
  Workspace(int device, DType t, const BatchShape& s) : device_(device) {
    launch_.stream = cuda::stream(device);
    launch_.multiprocessors = cuda::multiprocessors(device);
    launch_.workspace_size = cuda::workspace_bytes(t, s, launch_.multiprocessors);
    launch_.workspace = cuda::device_alloc(device, launch_.workspace_size, &capacity_);
  }
  ~Workspace() { cuda::device_free(device_, launch_.workspace, capacity_); }
  const cuda::Launch& launch() const { return launch_; }

 private:
  int device_;
  size_t capacity_ = 0;
  cuda::Launch launch_{};
};

template <typename Fn>
Napi::Value run_op(const Napi::CallbackInfo& info, const char* op, Fn&& fn) {
  try {
    const cudaError_t e = fn();
    cuda::check(e, op);
  } catch (const cuda::CudaError& e) {
    throw Napi::Error::New(info.Env(), std::string("syncbn: ") + e.what());
  }
  return info.Env().Undefined();
}

// (dtype, device, x, shape, channelsLast, ...) common head of every op.
struct Head {
  DType t;
  int device;
  BatchShape s;
  size_t x_bytes;
  size_t c_bytes;
};

Head head(const Args& a) {
  Head h;
  h.t = dtype_arg(a, 0);
  h.device = static_cast<int>(a.integer(1, "device", 0));
  h.s = a.shape(2);
  h.x_bytes = static_cast<size_t>(h.s.numel()) * dtype_bytes(h.t);
  h.c_bytes = static_cast<size_t>(h.s.c) * dtype_bytes(param_dtype(h.t));
  return h;
}

void* ptr(DeviceBuffer* b) { return b ? b->data() : nullptr; }

// cudaForwardTraining(dtype, device, shape, channelsLast, x, weight, bias, eps, momentum, runningMean, runningVar, y, saveMean, saveInvstd)
Napi::Value ForwardTraining(const Napi::CallbackInfo& info) {
  Args a(info, "cudaForwardTraining", 14);
  const Head h = head(a);
  DeviceBuffer* x = unwrap(a, 4, "input", h.x_bytes, h.device, false);
  DeviceBuffer* w = unwrap(a, 5, "weight", h.c_bytes, h.device, true);
  DeviceBuffer* b = unwrap(a, 6, "bias", h.c_bytes, h.device, true);
  const double eps = a.non_negative(7, "eps"), momentum = a.number(8, "momentum");
  DeviceBuffer* rm = unwrap(a, 9, "runningMean", h.c_bytes, h.device, true);
  DeviceBuffer* rv = unwrap(a, 10, "runningVar", h.c_bytes, h.device, true);
  DeviceBuffer* y = unwrap(a, 11, "output", h.x_bytes, h.device, false);
  DeviceBuffer* sm = unwrap(a, 12, "saveMean", h.c_bytes, h.device, false);
  DeviceBuffer* si = unwrap(a, 13, "saveInvstd", h.c_bytes, h.device, false);
  return run_op(info, "batch_norm forward (training) on CUDA", [&] {
    Workspace ws(h.device, h.t, h.s);
    return cuda::forward_training(h.t, {ptr(x), h.s, ptr(w), ptr(b), eps, momentum, ptr(rm), ptr(rv), ptr(y), ptr(sm), ptr(si)}, ws.launch());
  });
}

// cudaForwardInference(dtype, device, shape, channelsLast, x, runningMean, runningVar, weight, bias, eps, y)
Napi::Value ForwardInference(const Napi::CallbackInfo& info) {
  Args a(info, "cudaForwardInference", 11);
  const Head h = head(a);
  DeviceBuffer* x = unwrap(a, 4, "input", h.x_bytes, h.device, false);
  DeviceBuffer* rm = unwrap(a, 5, "runningMean", h.c_bytes, h.device, false);
  DeviceBuffer* rv = unwrap(a, 6, "runningVar", h.c_bytes, h.device, false);
  DeviceBuffer* w = unwrap(a, 7, "weight", h.c_bytes, h.device, true);
  DeviceBuffer* b = unwrap(a, 8, "bias", h.c_bytes, h.device, true);
  const double eps = a.non_negative(9, "eps");
  DeviceBuffer* y = unwrap(a, 10, "output", h.x_bytes, h.device, false);
  return run_op(info, "batch_norm forward (inference) on CUDA", [&] {
    const cuda::Launch l{cuda::stream(h.device), cuda::multiprocessors(h.device), nullptr, 0};
    return cuda::forward_inference(h.t, {ptr(x), h.s, ptr(rm), ptr(rv), ptr(w), ptr(b), eps, ptr(y)}, l);
  });
}

// cudaBackward(dtype, device, shape, channelsLast, dy, x, weight, mean, invstdOrVar, training, eps, dx, gradWeight, gradBias, accumulate)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  Args a(info, "cudaBackward", 15);
  const Head h = head(a);
  DeviceBuffer* dy = unwrap(a, 4, "gradOutput", h.x_bytes, h.device, false);
  DeviceBuffer* x = unwrap(a, 5, "input", h.x_bytes, h.device, false);
  DeviceBuffer* w = unwrap(a, 6, "weight", h.c_bytes, h.device, true);
  DeviceBuffer* m = unwrap(a, 7, "mean", h.c_bytes, h.device, false);
  DeviceBuffer* v = unwrap(a, 8, "invstdOrVar", h.c_bytes, h.device, false);
  const bool training = a.boolean(9, "training");
  const double eps = a.non_negative(10, "eps");
  DeviceBuffer* dx = unwrap(a, 11, "gradInput", h.x_bytes, h.device, true);
  DeviceBuffer* gw = unwrap(a, 12, "gradWeight", h.c_bytes, h.device, true);
  DeviceBuffer* gb = unwrap(a, 13, "gradBias", h.c_bytes, h.device, true);
  const bool accumulate = a.boolean(14, "accumulate");
  return run_op(info, "batch_norm backward on CUDA", [&] {
    Workspace ws(h.device, h.t, h.s);
    return cuda::backward(h.t, {ptr(dy), ptr(x), h.s, ptr(w), ptr(m), ptr(v), training, eps, ptr(dx), ptr(gw), ptr(gb), accumulate}, ws.launch());
  });
}

// cudaStats(dtype, device, shape, channelsLast, x, eps, mean, invstd)
Napi::Value Stats(const Napi::CallbackInfo& info) {
  Args a(info, "cudaStats", 8);
  const Head h = head(a);
  DeviceBuffer* x = unwrap(a, 4, "input", h.x_bytes, h.device, false);
  const double eps = a.non_negative(5, "eps");
  DeviceBuffer* m = unwrap(a, 6, "mean", h.c_bytes, h.device, false);
  DeviceBuffer* is = unwrap(a, 7, "invstd", h.c_bytes, h.device, false);
  return run_op(info, "batch_norm_stats on CUDA", [&] {
    Workspace ws(h.device, h.t, h.s);
    return cuda::stats(h.t, {ptr(x), h.s, eps, ptr(m), ptr(is)}, ws.launch());
  });
}

// cudaWelfordStats(dtype, device, shape, channelsLast, x, summary) -- summary: 3C doubles on the device
Napi::Value WelfordStats(const Napi::CallbackInfo& info) {
  Args a(info, "cudaWelfordStats", 6);
  const Head h = head(a);
  DeviceBuffer* x = unwrap(a, 4, "input", h.x_bytes, h.device, false);
  DeviceBuffer* out = unwrap(a, 5, "summary", static_cast<size_t>(h.s.c) * 3 * sizeof(double), h.device, false);
  return run_op(info, "SyncBatchNorm statistics on CUDA", [&] {
    Workspace ws(h.device, h.t, h.s);
    return cuda::welford_stats(h.t, {ptr(x), h.s, static_cast<double*>(ptr(out))}, ws.launch());
  });
}

// cudaGatherWelford(dtype, device, world, channels, summaries, eps, momentum, mean, invstd, runningMean, runningVar)
// -> the merged count. summaries: world x channels x 3 doubles on the device.
// The count is the one value that comes back to the host (8 bytes; the copy
// waits for the stream): the caller refuses a batch of one value with it.
Napi::Value GatherWelford(const Napi::CallbackInfo& info) {
  Args a(info, "cudaGatherWelford", 11);
  const DType t = dtype_arg(a, 0);
  const int device = static_cast<int>(a.integer(1, "device", 0));
  const int64_t world = a.integer(2, "world", 1);
  const int64_t c = a.integer(3, "channels", 1);
  // Bounds that keep world x channels x 24 bytes far from overflow.
  if (world > 1 << 20) throw a.range_error(2, "world", "at most 1048576 ranks");
  if (c > 2147483647) throw a.range_error(3, "channels", "at most 2147483647 channels");
  const size_t c_bytes = static_cast<size_t>(c) * dtype_bytes(param_dtype(t));
  DeviceBuffer* all = unwrap(a, 4, "summaries", static_cast<size_t>(world * c) * 3 * sizeof(double), device, false);
  const double eps = a.non_negative(5, "eps"), momentum = a.number(6, "momentum");
  DeviceBuffer* m = unwrap(a, 7, "mean", c_bytes, device, false);
  DeviceBuffer* is = unwrap(a, 8, "invstd", c_bytes, device, false);
  DeviceBuffer* rm = unwrap(a, 9, "runningMean", c_bytes, device, true);
  DeviceBuffer* rv = unwrap(a, 10, "runningVar", c_bytes, device, true);
  double count = 0;
  try {
    size_t capacity = 0;
    void* total = cuda::device_alloc(device, sizeof(double), &capacity);
    const cuda::Launch l{cuda::stream(device), cuda::multiprocessors(device), nullptr, 0};
    const cudaError_t e = cuda::welford_gather(t, {static_cast<const double*>(ptr(all)), world, c, eps, momentum, ptr(m), ptr(is),
                                                   ptr(rm), ptr(rv), static_cast<double*>(total)}, l);
    if (e == cudaSuccess) {
      try {
        cuda::copy_to_host(device, &count, total, sizeof count);
      } catch (...) {
        cuda::device_free(device, total, capacity);
        throw;
      }
    }
    cuda::device_free(device, total, capacity);
    cuda::check(e, "SyncBatchNorm gather of the ranks' statistics on CUDA");
  } catch (const cuda::CudaError& e) {
    throw Napi::Error::New(info.Env(), std::string("syncbn: ") + e.what());
  }
  return Napi::Number::New(info.Env(), count);
}

// cudaAddInto(dtype, device, count, src, dst): dst += src, per-channel values (gradient accumulation).
Napi::Value AddInto(const Napi::CallbackInfo& info) {
  Args a(info, "cudaAddInto", 5);
  const DType t = dtype_arg(a, 0);
  const int device = static_cast<int>(a.integer(1, "device", 0));
  const int64_t count = a.integer(2, "count", 0);
  const size_t bytes = static_cast<size_t>(count) * dtype_bytes(param_dtype(t));
  DeviceBuffer* src = unwrap(a, 3, "source", bytes, device, false);
  DeviceBuffer* dst = unwrap(a, 4, "destination", bytes, device, false);
  return run_op(info, "gradient accumulation on CUDA", [&] {
    const cuda::Launch l{cuda::stream(device), cuda::multiprocessors(device), nullptr, 0};
    return cuda::accumulate(t, {ptr(src), ptr(dst), count}, l);
  });
}

// cudaElemt(dtype, device, shape, channelsLast, x, mean, invstd, weight, bias, y)
Napi::Value Elemt(const Napi::CallbackInfo& info) {
  Args a(info, "cudaElemt", 10);
  const Head h = head(a);
  DeviceBuffer* x = unwrap(a, 4, "input", h.x_bytes, h.device, false);
  DeviceBuffer* m = unwrap(a, 5, "mean", h.c_bytes, h.device, false);
  DeviceBuffer* is = unwrap(a, 6, "invstd", h.c_bytes, h.device, false);
  DeviceBuffer* w = unwrap(a, 7, "weight", h.c_bytes, h.device, true);
  DeviceBuffer* b = unwrap(a, 8, "bias", h.c_bytes, h.device, true);
  DeviceBuffer* y = unwrap(a, 9, "output", h.x_bytes, h.device, false);
  return run_op(info, "batch_norm_elemt on CUDA", [&] {
    const cuda::Launch l{cuda::stream(h.device), cuda::multiprocessors(h.device), nullptr, 0};
    return cuda::elemt(h.t, {ptr(x), h.s, ptr(m), ptr(is), ptr(w), ptr(b), ptr(y)}, l);
  });
}

// cudaBackwardReduce(dtype, device, shape, channelsLast, dy, x, mean, invstd, sumDy, sumDyXmu, gradWeight, gradBias)
Napi::Value BackwardReduce(const Napi::CallbackInfo& info) {
  Args a(info, "cudaBackwardReduce", 12);
  const Head h = head(a);
  DeviceBuffer* dy = unwrap(a, 4, "gradOutput", h.x_bytes, h.device, false);
  DeviceBuffer* x = unwrap(a, 5, "input", h.x_bytes, h.device, false);
  DeviceBuffer* m = unwrap(a, 6, "mean", h.c_bytes, h.device, false);
  DeviceBuffer* is = unwrap(a, 7, "invstd", h.c_bytes, h.device, false);
  DeviceBuffer* sg = unwrap(a, 8, "sumDy", h.c_bytes, h.device, true);
  DeviceBuffer* sgx = unwrap(a, 9, "sumDyXmu", h.c_bytes, h.device, true);
  DeviceBuffer* gw = unwrap(a, 10, "gradWeight", h.c_bytes, h.device, true);
  DeviceBuffer* gb = unwrap(a, 11, "gradBias", h.c_bytes, h.device, true);
  return run_op(info, "batch_norm_backward_reduce on CUDA", [&] {
    Workspace ws(h.device, h.t, h.s);
    return cuda::backward_reduce(h.t, {ptr(dy), ptr(x), h.s, ptr(m), ptr(is), ptr(sg), ptr(sgx), ptr(gw), ptr(gb)}, ws.launch());
  });
}

// cudaBackwardElemt(dtype, device, shape, channelsLast, dy, x, mean, invstd, weight, sumDy, sumDyXmu, count, dx)
Napi::Value BackwardElemt(const Napi::CallbackInfo& info) {
  Args a(info, "cudaBackwardElemt", 13);
  const Head h = head(a);
  DeviceBuffer* dy = unwrap(a, 4, "gradOutput", h.x_bytes, h.device, false);
  DeviceBuffer* x = unwrap(a, 5, "input", h.x_bytes, h.device, false);
  DeviceBuffer* m = unwrap(a, 6, "mean", h.c_bytes, h.device, false);
  DeviceBuffer* is = unwrap(a, 7, "invstd", h.c_bytes, h.device, false);
  DeviceBuffer* w = unwrap(a, 8, "weight", h.c_bytes, h.device, true);
  DeviceBuffer* sg = unwrap(a, 9, "sumDy", h.c_bytes, h.device, false);
  DeviceBuffer* sgx = unwrap(a, 10, "sumDyXmu", h.c_bytes, h.device, false);
  const double count = a.non_negative(11, "totalCount");
  DeviceBuffer* dx = unwrap(a, 12, "gradInput", h.x_bytes, h.device, false);
  return run_op(info, "batch_norm_backward_elemt on CUDA", [&] {
    const cuda::Launch l{cuda::stream(h.device), cuda::multiprocessors(h.device), nullptr, 0};
    return cuda::backward_elemt(h.t, {ptr(dy), ptr(x), h.s, ptr(m), ptr(is), ptr(w), ptr(sg), ptr(sgx), count, ptr(dx)}, l);
  });
}

#endif  // SYNCBN_HAVE_CUDA

Napi::Value IsAvailable(const Napi::CallbackInfo& info) {
#ifdef SYNCBN_HAVE_CUDA
  return Napi::Boolean::New(info.Env(), cuda::available(nullptr));
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

Napi::Value UnavailableReason(const Napi::CallbackInfo& info) {
#ifdef SYNCBN_HAVE_CUDA
  std::string why;
  if (cuda::available(&why)) return info.Env().Null();
  return Napi::String::New(info.Env(), why);
#else
  return Napi::String::New(info.Env(), "this build of syncbn has no CUDA kernels (no nvcc at build time, or SYNCBN_CUDA=OFF); "
                                       "the prebuilt linux-x64 binary has them, or `npm rebuild syncbn` with nvcc and cmake on the PATH");
#endif
}

Napi::Value DeviceCount(const Napi::CallbackInfo& info) {
#ifdef SYNCBN_HAVE_CUDA
  return Napi::Number::New(info.Env(), cuda::device_count());
#else
  return Napi::Number::New(info.Env(), 0);
#endif
}

#ifdef SYNCBN_HAVE_CUDA
template <typename Fn>
Napi::Value guarded(const Napi::CallbackInfo& info, Fn&& fn) {
  try {
    return fn();
  } catch (const cuda::CudaError& e) {
    throw Napi::Error::New(info.Env(), std::string("syncbn: ") + e.what());
  }
}

Napi::Value SetDevice(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.setDevice", 1);
  const int d = static_cast<int>(a.integer(0, "device", 0));
  return guarded(info, [&] {
    cuda::set_device(d);
    return info.Env().Undefined();
  });
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.synchronize", 1);
  const int d = static_cast<int>(a.integer(0, "device", 0));
  return guarded(info, [&] {
    cuda::synchronize(d);
    return info.Env().Undefined();
  });
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.memoryStats", 1);
  const int d = static_cast<int>(a.integer(0, "device", 0));
  return guarded(info, [&] {
    const cuda::MemoryStats s = cuda::memory_stats(d);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("allocatedBytes", static_cast<double>(s.allocated_bytes));
    o.Set("cachedBytes", static_cast<double>(s.cached_bytes));
    o.Set("peakBytes", static_cast<double>(s.peak_bytes));
    o.Set("allocations", static_cast<double>(s.allocations));
    o.Set("cacheHits", static_cast<double>(s.cache_hits));
    return Napi::Value(o);
  });
}

Napi::Value DeviceName(const Napi::CallbackInfo& info) {
  Args a(info, "cuda.deviceName", 1);
  const int d = static_cast<int>(a.integer(0, "device", 0));
  return guarded(info, [&] { return Napi::Value(Napi::String::New(info.Env(), cuda::device_name(d))); });
}
#endif

}  // namespace

void* device_memory(const Args& a, size_t i, const char* name, size_t bytes, int* device) {
#ifdef SYNCBN_HAVE_CUDA
  const Napi::Value v = a.value(i);
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(a.env()).device_buffer.Value()))
    throw a.type_error(i, name, "a DeviceBuffer", v);
  DeviceBuffer* b = DeviceBuffer::Unwrap(v.As<Napi::Object>());
  if (b->bytes() < bytes)
    throw Napi::RangeError::New(a.env(), a.prefix() + "argument '" + name + "' holds " + std::to_string(b->bytes()) +
                                             " bytes, needs " + std::to_string(bytes));
  *device = b->device();
  return b->data();
#else
  (void)bytes, (void)device;
  throw a.type_error(i, name, "a DeviceBuffer (this build of syncbn has no CUDA)", a.value(i));
#endif
}

void RegisterCuda(Napi::Env env, Napi::Object exports) {
  Napi::Object c = Napi::Object::New(env);
#ifdef SYNCBN_HAVE_CUDA
  c.Set("compiled", true);
  AddonData& data = addon_data(env);
  data.device_buffer = Napi::Persistent(DeviceBuffer::Define(env));
  c.Set("DeviceBuffer", data.device_buffer.Value());
  c.Set("setDevice", Napi::Function::New(env, SetDevice, "setDevice"));
  c.Set("synchronize", Napi::Function::New(env, Synchronize, "synchronize"));
  c.Set("memoryStats", Napi::Function::New(env, MemoryStats, "memoryStats"));
  c.Set("deviceName", Napi::Function::New(env, DeviceName, "deviceName"));
  c.Set("forwardTraining", Napi::Function::New(env, ForwardTraining, "forwardTraining"));
  c.Set("forwardInference", Napi::Function::New(env, ForwardInference, "forwardInference"));
  c.Set("backward", Napi::Function::New(env, Backward, "backward"));
  c.Set("stats", Napi::Function::New(env, Stats, "stats"));
  c.Set("welfordStats", Napi::Function::New(env, WelfordStats, "welfordStats"));
  c.Set("gatherWelford", Napi::Function::New(env, GatherWelford, "gatherWelford"));
  c.Set("addInto", Napi::Function::New(env, AddInto, "addInto"));
  c.Set("elemt", Napi::Function::New(env, Elemt, "elemt"));
  c.Set("backwardReduce", Napi::Function::New(env, BackwardReduce, "backwardReduce"));
  c.Set("backwardElemt", Napi::Function::New(env, BackwardElemt, "backwardElemt"));
#else
  c.Set("compiled", false);
#endif
  c.Set("isAvailable", Napi::Function::New(env, IsAvailable, "isAvailable"));
  c.Set("unavailableReason", Napi::Function::New(env, UnavailableReason, "unavailableReason"));
  c.Set("deviceCount", Napi::Function::New(env, DeviceCount, "deviceCount"));
  exports.Set("cuda", c);
}

}  // namespace addon
}  // namespace syncbn
