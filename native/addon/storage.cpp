// Pooled host storage for kernel outputs: a TypedArray over an external
// ArrayBuffer whose finalizer returns the block to the pool, so the next
// output of that size reuses memory that is already mapped.
#include "storage.h"

#include <mutex>
#include <string>
#include <unordered_map>

#include "../memory/host_pool.h"
#include "args.h"

namespace syncbn {
namespace addon {

namespace {

// A pooled block handed to JavaScript. dispose() may return it before the
// garbage collector does; the finalizer then only forgets it.
struct Block {
  size_t capacity;
  bool released;
};

std::mutex g_blocks_mu;
std::unordered_map<void*, Block*> g_blocks;

void finalize_block(Napi::Env env, void* data, Block* block) {
  {
    std::lock_guard<std::mutex> lk(g_blocks_mu);
    g_blocks.erase(data);
  }
  if (!block->released) {
    memory::host_free(data, block->capacity);
    Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(block->capacity));
  }
  delete block;
}

Napi::Value Allocate(const Napi::CallbackInfo& info) {
  Args a(info, "allocate", 2);
  const Napi::Value kind = a.value(0);
  const std::string dtype = kind.IsString() ? kind.As<Napi::String>().Utf8Value() : "";
  if (dtype != "float32" && dtype != "float64") throw a.type_error(0, "dtype", "'float32' or 'float64'", kind);
  const int64_t length = a.integer(1, "length", 0);
  const size_t elem = dtype == "float32" ? 4 : 8;
  if (static_cast<double>(length) * elem > 1e15) throw a.range_error(1, "length", "a length that fits in memory");
  const size_t bytes = static_cast<size_t>(length) * elem;
  Napi::Env env = info.Env();
  size_t capacity = 0;
  void* data;
  try {
    data = memory::host_alloc(bytes, &capacity);
  } catch (const std::bad_alloc&) {
    throw Napi::RangeError::New(env, a.prefix() + "out of memory allocating " + std::to_string(bytes) + " bytes");
  }
  Block* block = new Block{capacity, false};
  {
    std::lock_guard<std::mutex> lk(g_blocks_mu);
    g_blocks[data] = block;
  }
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, data, bytes, finalize_block, block);
  // Tells the garbage collector what these outputs weigh, so it frees them in time.
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(capacity));
  if (elem == 4) return Napi::Float32Array::New(env, static_cast<size_t>(length), buffer, 0);
  return Napi::Float64Array::New(env, static_cast<size_t>(length), buffer, 0);
}

// Returns a pooled TypedArray's block to the pool now and detaches its
// buffer, so JavaScript can no longer reach the memory. Returns whether the
// array was pooled (other arrays are left alone).
Napi::Value Release(const Napi::CallbackInfo& info) {
  Args a(info, "release", 1);
  const Napi::Value v = a.value(0);
  if (!v.IsTypedArray()) throw a.type_error(0, "array", "a TypedArray", v);
  Napi::ArrayBuffer buffer = v.As<Napi::TypedArray>().ArrayBuffer();
  void* data = buffer.Data();
  Block* block = nullptr;
  {
    std::lock_guard<std::mutex> lk(g_blocks_mu);
    auto it = g_blocks.find(data);
    if (it != g_blocks.end() && !it->second->released) block = it->second;
    if (block) block->released = true;
  }
  if (block == nullptr) return Napi::Boolean::New(info.Env(), false);
  buffer.Detach();
  memory::host_free(data, block->capacity);
  Napi::MemoryManagement::AdjustExternalMemory(info.Env(), -static_cast<int64_t>(block->capacity));
  return Napi::Boolean::New(info.Env(), true);
}

Napi::Value PoolStats(const Napi::CallbackInfo& info) {
  const memory::HostPoolStats s = memory::host_pool_stats();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("cachedBytes", static_cast<double>(s.cached_bytes));
  out.Set("liveBytes", static_cast<double>(s.live_bytes));
  out.Set("hits", static_cast<double>(s.hits));
  out.Set("misses", static_cast<double>(s.misses));
  return out;
}

Napi::Value PoolTrim(const Napi::CallbackInfo& info) {
  memory::host_pool_trim();
  return info.Env().Undefined();
}

}  // namespace

void RegisterStorage(Napi::Env env, Napi::Object exports) {
  exports.Set("allocate", Napi::Function::New(env, Allocate, "allocate"));
  exports.Set("release", Napi::Function::New(env, Release, "release"));
  exports.Set("hostPoolStats", Napi::Function::New(env, PoolStats, "hostPoolStats"));
  exports.Set("hostPoolTrim", Napi::Function::New(env, PoolTrim, "hostPoolTrim"));
}

}  // namespace addon
}  // namespace syncbn
