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

// The launch for `device`, with workspace from the caching allocator that
// goes back to the cache when this object ends (stream order keeps it safe).
class Workspace {
 public:
  Workspace(int device, DType t, const BatchShape& s) : device_(device) {
    launch_.stream = cuda::stream(device);
    launch_.multiprocessors = cuda::multiprocessors(device);
    // Ops without a batch (s.c == 0) need none.
    launch_.workspace_size = s.c > 0 ? cuda::workspace_bytes(t, s, launch_.multiprocessors) : 0;
    launch_.workspace = launch_.workspace_size > 0 ? cuda::device_alloc(device, launch_.workspace_size, &capacity_) : nullptr;
  }
  ~Workspace() {
    if (launch_.workspace != nullptr) cuda::device_free(device_, launch_.workspace, capacity_);
  }
  const cuda::Launch& launch() const { return launch_; }

 private:
  int device_;
  size_t capacity_ = 0;
  cuda::Launch launch_{};
};

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

bool device_memory_of(Napi::Env env, const Napi::Value& v, DeviceMemory* out) {
#ifdef SYNCBN_HAVE_CUDA
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(env).device_buffer.Value())) return false;
  DeviceBuffer* b = DeviceBuffer::Unwrap(v.As<Napi::Object>());
  *out = {b->data(), b->bytes(), b->device()};
  return true;
#else
  (void)env, (void)v, (void)out;
  return false;
#endif
}

#ifdef SYNCBN_HAVE_CUDA
void run_cuda(Napi::Env env, const std::string& what, int device, DType t, const BatchShape& s,
              const std::function<cudaError_t(const cuda::Ops&)>& fn) {
  try {
    Workspace ws(device, t, s);
    cuda::check(fn(cuda::Ops{t, ws.launch()}), what + "on CUDA");
  } catch (const cuda::CudaError& e) {
    throw Napi::Error::New(env, std::string("syncbn: ") + e.what());
  }
}
#endif

void* device_memory(const Args& a, size_t i, const char* name, size_t bytes, int* device) {
  DeviceMemory m;
  if (!device_memory_of(a.env(), a.value(i), &m)) {
#ifdef SYNCBN_HAVE_CUDA
    throw a.type_error(i, name, "a DeviceBuffer", a.value(i));
#else
    throw a.type_error(i, name, "a DeviceBuffer (this build of syncbn has no CUDA)", a.value(i));
#endif
  }
  if (m.bytes < bytes)
    throw Napi::RangeError::New(a.env(), a.prefix() + "argument '" + name + "' holds " + std::to_string(m.bytes) +
                                             " bytes, needs " + std::to_string(bytes));
  *device = m.device;
  return m.data;
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
