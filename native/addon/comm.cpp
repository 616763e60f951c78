// N-API glue of the communicators. Rendezvous runs on a libuv worker thread
// and resolves a promise (initialization never blocks the event loop);
// collectives are synchronous for the calling JavaScript thread.
#include "comm.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "../comm/checked.h"
#include "../comm/communicator.h"
#include "../comm/gloo.h"
#include "../comm/hmac_sha256.h"
#include "../comm/nccl.h"
#include "../comm/threads.h"
#include "args.h"
#include "cuda.h"
#include "instance.h"

namespace syncbn {
namespace addon {

namespace {

using comm::CheckedComm;
using comm::Communicator;
using comm::ElemType;
using comm::ReduceOp;

class CommWrap : public Napi::ObjectWrap<CommWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Communicator",
                       {
                           InstanceAccessor<&CommWrap::Backend>("backend"),
                           InstanceAccessor<&CommWrap::Rank>("rank"),
                           InstanceAccessor<&CommWrap::Size>("size"),
                           InstanceAccessor<&CommWrap::TimeoutMs>("timeoutMs"),
                           InstanceMethod<&CommWrap::AllReduce>("allReduce"),
                           InstanceMethod<&CommWrap::AllGather>("allGather"),
                           InstanceMethod<&CommWrap::Broadcast>("broadcast"),
                           InstanceMethod<&CommWrap::Barrier>("barrier"),
                           InstanceMethod<&CommWrap::AllReduceDevice>("allReduceDevice"),
                           InstanceMethod<&CommWrap::AllGatherDevice>("allGatherDevice"),
                           InstanceMethod<&CommWrap::BroadcastDevice>("broadcastDevice"),
                           InstanceMethod<&CommWrap::Destroy>("destroy"),
                       });
  }

  explicit CommWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CommWrap>(info) {
    if (info.Length() != 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "Communicator is created by the rendezvous functions, not directly");
    comm_.reset(info[0].As<Napi::External<CheckedComm>>().Data());
  }

 private:
  CheckedComm& live(const Napi::Env& env, const char* op) {
    if (!comm_) throw Napi::Error::New(env, std::string("syncbn native ") + op + ": the communicator was destroyed");
    return *comm_;
  }

  Napi::Value Backend(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), comm_ ? comm_->backend() : "destroyed");
  }
  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live(info.Env(), "rank").rank()); }
  Napi::Value Size(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live(info.Env(), "size").size()); }
  Napi::Value TimeoutMs(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(live(info.Env(), "timeoutMs").timeout().count()));
  }

  // A Float32Array, Float64Array or BigInt64Array, its element type and length.
  static void* buffer(const Args& a, size_t i, const char* name, ElemType* type, size_t* length) {
    napi_typedarray_type kind;
    int size;
    const Napi::Value value = a.value(i);
    if (!value.IsTypedArray()) throw a.type_error(i, name, "a Float32Array, Float64Array or BigInt64Array", value);
    const Napi::TypedArray arr = value.As<Napi::TypedArray>();
    void* data = a.raw(i, name, static_cast<int64_t>(arr.ElementLength()), &kind, &size);
    switch (kind) {
      case napi_float32_array: *type = ElemType::Float32; break;
      case napi_float64_array: *type = ElemType::Float64; break;
      case napi_bigint64_array: *type = ElemType::Int64; break;
      default: throw a.type_error(i, name, "a Float32Array, Float64Array or BigInt64Array", value);
    }
    *length = arr.ElementLength();
    return data;
  }

  static ReduceOp parse_op(const Args& a, size_t i) {
    const Napi::Value v = a.value(i);
    const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
    if (s == "sum") return ReduceOp::Sum;
    if (s == "min") return ReduceOp::Min;
    if (s == "max") return ReduceOp::Max;
    if (s == "welford") return ReduceOp::Welford;
    throw a.type_error(i, "op", "one of 'sum', 'avg', 'min', 'max', 'welford'", v);
  }

  // The op at i; 'avg' is a sum with *avg set (float types only).
  static ReduceOp parse_reduce(const Args& a, size_t i, ElemType type, bool* avg, const char* what) {
    const Napi::Value v = a.value(i);
    *avg = v.IsString() && v.As<Napi::String>().Utf8Value() == "avg";
    if (*avg && type == ElemType::Int64) throw Napi::TypeError::New(a.env(), a.prefix() + "'avg' needs a float " + what);
    return *avg ? ReduceOp::Sum : parse_op(a, i);
  }

  // A mismatch carries every rank's call as `calls`, so the TypeScript layer
  // can name layers in its own words.
  template <typename Fn>
  Napi::Value collective(const Napi::CallbackInfo& info, Fn&& fn) {
    try {
      fn();
    } catch (const comm::CommMismatch& e) {
      Napi::Error err = Napi::Error::New(info.Env(), e.what());
      Napi::Array calls = Napi::Array::New(info.Env(), e.calls.size());
      for (size_t r = 0; r < e.calls.size(); ++r) {
        const comm::CallHeader& h = e.calls[r];
        Napi::Object o = Napi::Object::New(info.Env());
        o.Set("call", h.describe());
        o.Set("kind", static_cast<double>(h.kind));
        o.Set("count", static_cast<double>(h.count));
        Napi::Array tag = Napi::Array::New(info.Env(), h.tag.size());
        for (size_t i = 0; i < h.tag.size(); ++i) tag.Set(static_cast<uint32_t>(i), static_cast<double>(h.tag[i]));
        o.Set("tag", tag);
        calls.Set(static_cast<uint32_t>(r), o);
      }
      err.Set("calls", calls);
      throw err;
    } catch (const comm::CommError& e) {
      throw Napi::Error::New(info.Env(), e.what());
    }
    return info.Env().Undefined();
  }

  // The optional tag at i: up to four non-negative integers (see CallTag).
  static comm::CallTag tag_arg(const Args& a, size_t i) {
    comm::CallTag tag{};
    if (i >= a.length() || a.value(i).IsUndefined()) return tag;
    const Napi::Value v = a.value(i);
    if (!v.IsArray() || v.As<Napi::Array>().Length() > tag.size()) throw a.type_error(i, "tag", "an array of at most 4 integers", v);
    const Napi::Array arr = v.As<Napi::Array>();
    for (uint32_t k = 0; k < arr.Length(); ++k) {
      const Napi::Value e = arr.Get(k);
      const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
      if (!(d >= 0 && d <= 9007199254740991.0 && d == std::floor(d))) throw a.type_error(i, "tag", "an array of at most 4 integers >= 0", v);
      tag[k] = static_cast<int64_t>(d);
    }
    return tag;
  }

  Napi::Value AllReduce(const Napi::CallbackInfo& info) {
    Args a(info, "allReduce", info.Length() == 3 ? 3 : 2);
    CheckedComm& c = live(info.Env(), "allReduce");
    ElemType type;
    size_t n;
    void* data = buffer(a, 0, "tensor", &type, &n);
    // avg = sum, then divided by the group size here, in one place for every backend.
    bool avg = false;
    const ReduceOp op = parse_reduce(a, 1, type, &avg, "array");
    if (op == ReduceOp::Welford && (type != ElemType::Float64 || n % 3 != 0))
      throw Napi::TypeError::New(info.Env(), a.prefix() + "'welford' needs a Float64Array of (count, mean, m2) triples");
    const size_t count = op == ReduceOp::Welford ? n / 3 : n;
    const comm::CallTag tag = tag_arg(a, 2);
    return collective(info, [&] {
      c.all_reduce(data, count, type, op, tag, avg);
      if (!avg) return;
      if (type == ElemType::Float32) {
        float* p = static_cast<float*>(data);
        const float k = 1.0f / static_cast<float>(c.size());
        for (size_t i = 0; i < n; ++i) p[i] *= k;
      } else {
        double* p = static_cast<double*>(data);
        const double k = 1.0 / c.size();
        for (size_t i = 0; i < n; ++i) p[i] *= k;
      }
    });
  }

  Napi::Value AllGather(const Napi::CallbackInfo& info) {
    Args a(info, "allGather", info.Length() == 3 ? 3 : 2);
    CheckedComm& c = live(info.Env(), "allGather");
    ElemType in_type, out_type;
    size_t in_n, out_n;
    const void* in = buffer(a, 0, "input", &in_type, &in_n);
    void* out = buffer(a, 1, "output", &out_type, &out_n);
    if (in_type != out_type) throw Napi::TypeError::New(info.Env(), a.prefix() + "input and output must be the same kind of TypedArray");
    if (out_n != in_n * static_cast<size_t>(c.size()))
      throw Napi::RangeError::New(info.Env(), a.prefix() + "output must have world size x input length = " +
                                                  std::to_string(in_n * c.size()) + " elements, got " + std::to_string(out_n));
    const comm::CallTag tag = tag_arg(a, 2);
    return collective(info, [&] { c.all_gather(in, out, in_n, in_type, tag); });
  }

  Napi::Value Broadcast(const Napi::CallbackInfo& info) {
    Args a(info, "broadcast", info.Length() == 3 ? 3 : 2);
    CheckedComm& c = live(info.Env(), "broadcast");
    ElemType type;
    size_t n;
    void* data = buffer(a, 0, "tensor", &type, &n);
    const int64_t root = a.integer(1, "root", 0);
    if (root >= c.size()) throw a.range_error(1, "root", "a rank below the group size " + std::to_string(c.size()));
    const comm::CallTag tag = tag_arg(a, 2);
    return collective(info, [&] { c.broadcast(data, n, type, static_cast<int>(root), tag); });
  }

  static ElemType elem_type_arg(const Args& a, size_t i) {
    const Napi::Value v = a.value(i);
    const std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
    if (s == "float32") return ElemType::Float32;
    if (s == "float64") return ElemType::Float64;
    if (s == "int64") return ElemType::Int64;
    throw a.type_error(i, "dtype", "'float32', 'float64' or 'int64'", v);
  }

  struct DeviceSpan {
    void* data;
    size_t count;
    ElemType type;
  };

  // Device memory at i holding `count` elements of `type`, on the communicator's device.
  static void* device_arg(const Args& a, const Communicator& c, size_t i, const char* name, size_t count, ElemType type) {
    int device = -1;
    void* data = device_memory(a, i, name, count * comm::elem_size(type), &device);
    if (c.device() >= 0 && device != c.device())
      throw Napi::Error::New(a.env(), a.prefix() + "argument '" + name + "' is on cuda:" + std::to_string(device) +
                                          ", but this " + c.backend() + " communicator's device is cuda:" + std::to_string(c.device()));
    return data;
  }

  // The (buffer: DeviceBuffer, count, dtype) that the in-place device collectives take first.
  static DeviceSpan device_span(const Args& a, const Communicator& c) {
    const size_t count = static_cast<size_t>(a.integer(1, "count", 0));
    const ElemType type = elem_type_arg(a, 2);
    return {device_arg(a, c, 0, "buffer", count, type), count, type};
  }

  // allReduceDevice(buffer: DeviceBuffer, count, dtype, op, tag?): in place on the device's stream.
  Napi::Value AllReduceDevice(const Napi::CallbackInfo& info) {
    Args a(info, "allReduceDevice", info.Length() == 5 ? 5 : 4);
    CheckedComm& c = live(info.Env(), "allReduceDevice");
    const DeviceSpan d = device_span(a, c);
    bool avg = false;
    const ReduceOp op = parse_reduce(a, 3, d.type, &avg, "dtype");
    if (op == ReduceOp::Welford)
      throw a.type_error(3, "op", "one of 'sum', 'avg', 'min', 'max' ('welford' merges host triples)", a.value(3));
    const comm::CallTag tag = tag_arg(a, 4);
    return collective(info, [&] { c.all_reduce_device(d.data, d.count, d.type, op, avg, tag); });
  }

  // allGatherDevice(input: DeviceBuffer, output: DeviceBuffer, count, dtype, tag?): `output`
  // receives size x count elements, rank-major, on the device's stream.
  Napi::Value AllGatherDevice(const Napi::CallbackInfo& info) {
    Args a(info, "allGatherDevice", info.Length() == 5 ? 5 : 4);
    CheckedComm& c = live(info.Env(), "allGatherDevice");
    const size_t count = static_cast<size_t>(a.integer(2, "count", 0));
    const ElemType type = elem_type_arg(a, 3);
    const void* in = device_arg(a, c, 0, "input", count, type);
    void* out = device_arg(a, c, 1, "output", count * static_cast<size_t>(c.size()), type);
    // Separate allocations never overlap; the same buffer twice would.
    if (count > 0 && in == out)
      throw Napi::Error::New(info.Env(), a.prefix() + "input and output must be different DeviceBuffers");
    const comm::CallTag tag = tag_arg(a, 4);
    return collective(info, [&] { c.all_gather_device(in, out, count, type, tag); });
  }

  // broadcastDevice(buffer: DeviceBuffer, count, dtype, root)
  Napi::Value BroadcastDevice(const Napi::CallbackInfo& info) {
    Args a(info, "broadcastDevice", 4);
    CheckedComm& c = live(info.Env(), "broadcastDevice");
    const DeviceSpan d = device_span(a, c);
    const int64_t root = a.integer(3, "root", 0);
    if (root >= c.size()) throw a.range_error(3, "root", "a rank below the group size " + std::to_string(c.size()));
    return collective(info, [&] { c.broadcast_device(d.data, d.count, d.type, static_cast<int>(root)); });
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    Args a(info, "barrier", 0);
    CheckedComm& c = live(info.Env(), "barrier");
    return collective(info, [&] { c.barrier(); });
  }

  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    comm_.reset();
    return info.Env().Undefined();
  }

  std::unique_ptr<CheckedComm> comm_;
};

// Runs a rendezvous on a libuv worker thread and resolves with a
// Communicator. (The threads backend's initProcessGroup does not come here:
// its ranks join with threadsJoinStart/threadsJoinPoll, which never hold a
// pool thread while waiting for the others.)
class RendezvousWorker : public Napi::AsyncWorker {
 public:
  using Connect = std::function<std::unique_ptr<Communicator>()>;
  RendezvousWorker(Napi::Env env, Connect connect)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), connect_(std::move(connect)) {}

  static Napi::Promise Start(Napi::Env env, Connect connect) {
    auto* w = new RendezvousWorker(env, std::move(connect));
    Napi::Promise p = w->deferred_.Promise();
    w->Queue();
    return p;
  }

  void Execute() override {
    try {
      comm_ = std::make_unique<CheckedComm>(connect_());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    deferred_.Resolve(addon_data(env).communicator.New({Napi::External<CheckedComm>::New(env, comm_.release())}));
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Connect connect_;
  std::unique_ptr<CheckedComm> comm_;
};

using Rendezvous = RendezvousWorker;

std::string string_arg(const Args& a, size_t i, const char* name) {
  const Napi::Value v = a.value(i);
  if (!v.IsString()) throw a.type_error(i, name, "a string", v);
  return v.As<Napi::String>().Utf8Value();
}

// (name, rank, size, timeoutMs), as threadsJoin and threadsJoinStart take them.
struct JoinArgs {
  std::string name;
  int rank;
  int size;
  std::chrono::milliseconds timeout;
};

JoinArgs join_args(const Args& a) {
  const std::string name = string_arg(a, 0, "name");
  const int64_t rank = a.integer(1, "rank", 0);
  const int64_t size = a.integer(2, "size", 1);
  if (rank >= size) throw a.range_error(1, "rank", "below the world size " + std::to_string(size));
  return {name, static_cast<int>(rank), static_cast<int>(size), std::chrono::milliseconds(a.integer(3, "timeoutMs", 1))};
}

Napi::Value ThreadsJoin(const Napi::CallbackInfo& info) {
  const JoinArgs j = join_args(Args(info, "threadsJoin", 4));
  return Rendezvous::Start(info.Env(), [=] { return comm::threads_join(j.name, j.rank, j.size, j.timeout); });
}

// threadsJoinStart(name, rank, size, timeoutMs): registers the rank at once
// and returns a handle for threadsJoinPoll.
Napi::Value ThreadsJoinStart(const Napi::CallbackInfo& info) {
  const JoinArgs args = join_args(Args(info, "threadsJoinStart", 4));
  try {
    comm::ThreadsJoin* j = comm::threads_join_start(args.name, args.rank, args.size, args.timeout).release();
    return Napi::External<comm::ThreadsJoin>::New(info.Env(), j, [](Napi::Env, comm::ThreadsJoin* p) { delete p; });
  } catch (const comm::CommError& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

// threadsJoinPoll(handle): the Communicator once every rank has joined, else
// null (poll again later); throws after the timeout, naming the missing ranks.
Napi::Value ThreadsJoinPoll(const Napi::CallbackInfo& info) {
  Args a(info, "threadsJoinPoll", 1);
  if (!a.value(0).IsExternal()) throw a.type_error(0, "handle", "a handle from threadsJoinStart", a.value(0));
  comm::ThreadsJoin* j = a.value(0).As<Napi::External<comm::ThreadsJoin>>().Data();
  if (j == nullptr || j->done()) throw Napi::Error::New(info.Env(), a.prefix() + "this join has already completed");
  try {
    std::unique_ptr<Communicator> c = comm::threads_join_poll(*j, std::chrono::milliseconds(0));
    if (!c) return info.Env().Null();
    j->finish();
    auto checked = std::make_unique<CheckedComm>(std::move(c));
    return addon_data(info.Env()).communicator.New({Napi::External<CheckedComm>::New(info.Env(), checked.release())});
  } catch (const comm::CommError& e) {
    j->finish();
    throw Napi::Error::New(info.Env(), e.what());
  }
}

Napi::Value GlooConnect(const Napi::CallbackInfo& info) {
  Args a(info, "glooConnect", 10);
  comm::GlooOptions o;
  o.store_host = string_arg(a, 0, "storeHost");
  o.store_port = static_cast<int>(a.integer(1, "storePort", 0));
  o.file_store = string_arg(a, 2, "fileStore");
  o.prefix = string_arg(a, 3, "prefix");
  o.hostname = string_arg(a, 4, "hostname");
  o.iface = string_arg(a, 5, "iface");
  o.rank = static_cast<int>(a.integer(6, "rank", 0));
  o.size = static_cast<int>(a.integer(7, "size", 1));
  o.timeout = std::chrono::milliseconds(a.integer(8, "timeoutMs", 1));
  o.secret = string_arg(a, 9, "secret");
  if (o.rank >= o.size) throw a.range_error(6, "rank", "below the world size " + std::to_string(o.size));
  if (o.file_store.empty() && (o.store_port < 1 || o.store_port > 65535)) throw a.range_error(1, "storePort", "a TCP port");
  return Rendezvous::Start(info.Env(), [o] { return comm::gloo_connect(o); });
}

// hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array of 32 bytes.
Napi::Value HmacSha256(const Napi::CallbackInfo& info) {
  Args a(info, "hmacSha256", 2);
  std::string parts[2];
  for (size_t i = 0; i < 2; ++i) {
    const Napi::Value v = a.value(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw a.type_error(i, i == 0 ? "key" : "data", "a Uint8Array", v);
    const Napi::Uint8Array u = v.As<Napi::Uint8Array>();
    parts[i].assign(reinterpret_cast<const char*>(u.Data()), u.ByteLength());
  }
  const comm::Digest d = comm::hmac_sha256(parts[0], parts[1].data(), parts[1].size());
  Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), d.size());
  std::memcpy(out.Data(), d.data(), d.size());
  return out;
}

Napi::Value NcclLoad(const Napi::CallbackInfo& info) {
  Args a(info, "ncclLoad", 1);
  const std::string path = string_arg(a, 0, "path");
  try {
    const comm::NcclLibrary& lib = comm::nccl_load(path);
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("path", lib.path);
    out.Set("version", lib.version);
    return out;
  } catch (const comm::CommError& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

// ncclUniqueId(): 128 bytes from ncclGetUniqueId (rank 0; the store carries them).
Napi::Value NcclUniqueId(const Napi::CallbackInfo& info) {
  Args a(info, "ncclUniqueId", 0);
  try {
    const std::string id = comm::nccl_unique_id();
    Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), id.size());
    std::memcpy(out.Data(), id.data(), id.size());
    return out;
  } catch (const comm::CommError& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
}

// ncclConnect(id: Uint8Array, rank, size, device, timeoutMs): Promise<Communicator>.
Napi::Value NcclConnect(const Napi::CallbackInfo& info) {
  Args a(info, "ncclConnect", 5);
  const Napi::Value idv = a.value(0);
  if (!idv.IsTypedArray() || idv.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw a.type_error(0, "uniqueId", "a Uint8Array of 128 bytes", idv);
  napi_typedarray_type kind;
  int elem = 0;
  void* id = a.raw(0, "uniqueId", static_cast<int64_t>(comm::NCCL_UNIQUE_ID_BYTES), &kind, &elem);
  comm::NcclOptions o;
  o.unique_id.assign(static_cast<const char*>(id), comm::NCCL_UNIQUE_ID_BYTES);
  o.rank = static_cast<int>(a.integer(1, "rank", 0));
  o.size = static_cast<int>(a.integer(2, "size", 1));
  o.device = static_cast<int>(a.integer(3, "device", 0));
  o.timeout = std::chrono::milliseconds(a.integer(4, "timeoutMs", 1));
  if (o.rank >= o.size) throw a.range_error(1, "rank", "below the world size " + std::to_string(o.size));
  return Rendezvous::Start(info.Env(), [o] { return comm::nccl_connect(o); });
}

}  // namespace

void RegisterComm(Napi::Env env, Napi::Object exports) {
  AddonData& data = addon_data(env);
  data.communicator = Napi::Persistent(CommWrap::Define(env));
  exports.Set("Communicator", data.communicator.Value());
  exports.Set("threadsJoin", Napi::Function::New(env, ThreadsJoin, "threadsJoin"));
  exports.Set("threadsJoinStart", Napi::Function::New(env, ThreadsJoinStart, "threadsJoinStart"));
  exports.Set("threadsJoinPoll", Napi::Function::New(env, ThreadsJoinPoll, "threadsJoinPoll"));
  exports.Set("glooConnect", Napi::Function::New(env, GlooConnect, "glooConnect"));
  exports.Set("ncclLoad", Napi::Function::New(env, NcclLoad, "ncclLoad"));
  exports.Set("hmacSha256", Napi::Function::New(env, HmacSha256, "hmacSha256"));
  exports.Set("ncclUniqueId", Napi::Function::New(env, NcclUniqueId, "ncclUniqueId"));
  exports.Set("ncclConnect", Napi::Function::New(env, NcclConnect, "ncclConnect"));
}

bool GlooAvailable() { return comm::gloo_available(); }

}  // namespace addon
}  // namespace syncbn
