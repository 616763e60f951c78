// The named arguments of an op binding: one object, {dtype, shape,
// channelsLast, input, ..., output}, whose arrays are TypedArrays (the CPU
// kernels) or DeviceBuffers (the CUDA kernels); the `lead` array (the input)
// decides which, and every other array must be on the same device. Checked
// as strictly as Args (args.h) checks positional ones, errors naming the op
// and the field.
//
// Reading an object's properties through Node-API costs ~70 ns each (the
// name is made into a string, then looked up without V8's inline caches):
// 0.7 us of a call, 4% of a 256x1024 inference. So each op is exported as a
// small JavaScript function, made at load from its field list (OpSpec), that
// reads the fields where V8 caches the lookups and passes them to the native
// function in the list's order; the native side still reads them by name.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "../kernels/batch_norm.h"
#include "args.h"
#include "cuda.h"

namespace syncbn {
namespace addon {

// What an array is to the kernel. Outputs must not share a byte with inputs
// or other outputs (the kernels read while they write, so the result would
// depend on the order of their passes); an Aliasable input (optional) may be
// the memory of an output (an in-place update read and written per channel).
enum class Role { In, OptIn, Out, OptOut, Aliasable };

template <typename T>
struct Tag {
  using type = T;
};

// An op's name and the fields of its argument object.
struct OpSpec {
  const char* name;
  const char* const* fields;
  size_t count;
};

// ops.<name>: the JavaScript function that calls `raw` with the fields of
// its one argument, in the order of spec.fields; anything but one plain
// object goes to `raw` as (argument count, first argument), which refuses it.
inline Napi::Function op_function(Napi::Env env, const OpSpec& spec, Napi::Function raw) {
  std::string fields;
  for (size_t i = 0; i < spec.count; ++i) fields += std::string(i ? ", a." : "a.") + spec.fields[i];
  const std::string source = std::string("(function (raw) { return function ") + spec.name +
                             "(a) { if (arguments.length !== 1 || typeof a !== 'object' || a === null || Array.isArray(a) || "
                             "ArrayBuffer.isView(a)) return raw(arguments.length, a); return raw(" + fields + "); }; })";
  napi_value maker;
  if (napi_run_script(env, Napi::String::New(env, source), &maker) != napi_ok) throw Napi::Error::New(env, "syncbn: ops." + std::string(spec.name));
  return Napi::Function(env, maker).Call({raw}).As<Napi::Function>();
}

// What the lead array holds: values of the dtype (an input), per-channel
// values (param_dtype) or float64 (summaries).
enum class Elem { Data, Param, Double };

class OpArgs {
 public:
  OpArgs(const Napi::CallbackInfo& info, const OpSpec& spec, const char* lead, Elem lead_elem = Elem::Data)
      : env_(info.Env()), op_(spec.name), info_(info), spec_(spec) {
    if (info.Length() != spec.count) {
      const bool one = info.Length() == 2 && info[0].IsNumber() && info[0].As<Napi::Number>().Int64Value() == 1;
      throw Napi::TypeError::New(env_, prefix() + "expected one argument, an object of named arguments, got " +
                                           (one ? describe_value(info[1])
                                                : std::to_string(info.Length() == 2 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int64Value() : 0) +
                                                      " arguments"));
    }
    dtype_ = read_dtype();
    const Napi::Value v = get(lead);
    if (v.IsTypedArray()) {
      device_ = -1;
    } else {
      DeviceMemory m;
      if (!device_memory_of(env_, v, &m)) {
        const DType elem = lead_elem == Elem::Double  ? DType::Float64
                           : lead_elem == Elem::Param ? param_dtype(dtype_)
                                                      : dtype_;
        throw Napi::TypeError::New(env_, prefix() + "'" + lead + "' must be a " + cpu_array_name(elem) +
                                             " or a DeviceBuffer, got " + describe_value(v));
      }
      device_ = m.device;
    }
  }

  Napi::Env env() const { return env_; }
  DType dtype() const { return dtype_; }
  bool on_cuda() const { return device_ >= 0; }
  int device() const { return device_; }
  std::string prefix() const { return std::string("syncbn native ops.") + op_ + ": "; }

  // The field `field` (a name of the op's spec) of the argument object.
  Napi::Value get(const char* field) const {
    for (size_t i = 0; i < spec_.count; ++i)
      if (spec_.fields[i] == field || std::strcmp(spec_.fields[i], field) == 0) return info_[i];
    throw Napi::Error::New(env_, prefix() + "has no field '" + field + "' (syncbn bug: add it to the op's field list)");
  }

  double number(const char* field) const {
    const Napi::Value v = get(field);
    if (!v.IsNumber()) throw type_error(field, "a number", v);
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d)) throw range_error(field, "a finite number");
    return d;
  }

  double non_negative(const char* field) const {
    const double d = number(field);
    if (d < 0) throw range_error(field, "a number >= 0");
    return d;
  }

  int64_t integer(const char* field, int64_t min) const {
    const double d = number(field);
    if (d != std::floor(d) || d < static_cast<double>(min) || d > 9007199254740991.0)
      throw range_error(field, "an integer >= " + std::to_string(min));
    return static_cast<int64_t>(d);
  }

  bool boolean(const char* field) const {
    const Napi::Value v = get(field);
    if (!v.IsBoolean()) throw type_error(field, "a boolean", v);
    return v.As<Napi::Boolean>().Value();
  }

  // 'shape' [n, c, inner] and 'channelsLast'.
  BatchShape shape() const {
    const Napi::Value v = get("shape");
    if (!v.IsArray() || v.As<Napi::Array>().Length() != 3) throw type_error("shape", "an array [n, c, inner]", v);
    BatchShape s = shape_dims(env_, prefix(), v.As<Napi::Array>());
    s.channels_last = boolean("channelsLast");
    return s;
  }

  // `n` elements of the input's dtype (T: float, double, BFloat16 or Float16
  // on the CPU, void on CUDA).
  template <typename T>
  T* data(const char* field, int64_t n, Role role) {
    return static_cast<T*>(fetch(field, n, dtype_, role));
  }
  // `c` per-channel values: param_dtype() of the input's (opmath_t<T>).
  template <typename T>
  opmath_t<T>* param(const char* field, int64_t c, Role role) {
    return static_cast<opmath_t<T>*>(fetch(field, c, param_dtype(dtype_), role));
  }
  // `n` float64 values whatever the dtype (counts, Welford summaries).
  double* doubles(const char* field, int64_t n, Role role) {
    return static_cast<double*>(fetch(field, n, DType::Float64, role));
  }

  // Refuses an output that shares memory with an input or another output;
  // an Aliasable input may be an output's very memory, not a shifted part of
  // it (channel k would read what channel k - 1 wrote).
  void check_overlap() const {
    for (int i = 0; i < spans_; ++i) {
      const Span& o = span_[i];
      if (o.role != Role::Out && o.role != Role::OptOut) continue;
      for (int j = 0; j < spans_; ++j) {
        const Span& p = span_[j];
        if (j == i || (j < i && (p.role == Role::Out || p.role == Role::OptOut))) continue;
        if (p.role == Role::Aliasable && p.begin == o.begin && p.end == o.end) continue;
        if (o.begin < p.end && p.begin < o.end) {
          const bool output = p.role == Role::Out || p.role == Role::OptOut;
          throw Napi::TypeError::New(env_, prefix() + "output '" + o.field + "' overlaps " + (output ? "output" : "input") +
                                               " '" + p.field + "' in memory: outputs must not overlap inputs or other outputs" +
                                               (p.role == Role::Aliasable ? std::string(" ('") + p.field + "' may be the same array)" : ""));
        }
      }
    }
  }

  Napi::Error type_error(const char* field, const std::string& expected, const Napi::Value& got) const {
    return Napi::TypeError::New(env_, prefix() + "'" + field + "' must be " + expected + ", got " + describe_value(got));
  }

  Napi::Error range_error(const char* field, const std::string& expected) const {
    return Napi::RangeError::New(env_, prefix() + "'" + field + "' must be " + expected);
  }

 private:
  struct Span {
    const char* field;
    Role role;
    uintptr_t begin, end;
  };

  // The TypedArray that holds elements of t on the host (the 16-bit floats as their bits).
  static const char* cpu_array_name(DType t) {
    return t == DType::Float64 ? "Float64Array" : t == DType::Float32 ? "Float32Array" : "Uint16Array";
  }
  static napi_typedarray_type cpu_array_type(DType t) {
    return t == DType::Float64 ? napi_float64_array : t == DType::Float32 ? napi_float32_array : napi_uint16_array;
  }

  DType read_dtype() const {
    const Napi::Value v = get("dtype");
    char buf[16] = {0};
    size_t len = 0;
    if (v.IsString() && napi_get_value_string_utf8(env_, v, buf, sizeof buf, &len) == napi_ok) {
      for (DType t : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16})
        if (std::strcmp(dtype_name(t), buf) == 0) return t;
    }
    throw type_error("dtype", "'float32', 'float64', 'float16' or 'bfloat16'", v);
  }

  void* fetch(const char* field, int64_t n, DType elem, Role role) {
    const Napi::Value v = get(field);
    const bool optional = role == Role::OptIn || role == Role::OptOut || role == Role::Aliasable;
    if (optional && (v.IsNull() || v.IsUndefined())) return nullptr;
    const size_t bytes = static_cast<size_t>(n) * dtype_bytes(elem);
    void* data = nullptr;
    if (device_ < 0) {
      napi_typedarray_type type;
      size_t length = 0;
      const napi_typedarray_type want = cpu_array_type(elem);
      if (!v.IsTypedArray() || napi_get_typedarray_info(env_, v, &type, &length, &data, nullptr, nullptr) != napi_ok ||
          type != want)
        throw type_error(field, std::string("a ") + cpu_array_name(elem) + " of " + std::to_string(n) + " elements" +
                                    (optional ? " or null" : ""), v);
      if (static_cast<int64_t>(length) != n)
        throw Napi::RangeError::New(env_, prefix() + "'" + field + "' must have " + std::to_string(n) + " elements, got " +
                                              std::to_string(length));
    } else {
      DeviceMemory m;
      const std::string expected = "a DeviceBuffer on cuda:" + std::to_string(device_) + " of at least " +
                                   std::to_string(bytes) + " bytes (" + std::to_string(n) + " " + dtype_name(elem) + ")" +
                                   (optional ? " or null" : "");
      if (!device_memory_of(env_, v, &m)) throw type_error(field, expected, v);
      if (m.device != device_)
        throw Napi::TypeError::New(env_, prefix() + "'" + field + "' is on cuda:" + std::to_string(m.device) + ", expected " +
                                             expected);
      if (m.bytes < bytes)
        throw Napi::RangeError::New(env_, prefix() + "'" + field + "' holds " + std::to_string(m.bytes) +
                                              " bytes, expected " + expected);
      data = m.data;
    }
    if (bytes > 0 && spans_ < kMaxSpans) {
      const uintptr_t b = reinterpret_cast<uintptr_t>(data);
      span_[spans_++] = {field, role, b, b + bytes};
    }
    return data;
  }

  static constexpr int kMaxSpans = 16;  // more than any op has arrays

  Napi::Env env_;
  const char* op_;
  const Napi::CallbackInfo& info_;
  const OpSpec& spec_;
  DType dtype_ = DType::Float32;
  int device_ = -1;
  Span span_[kMaxSpans];
  int spans_ = 0;
};

}  // namespace addon
}  // namespace syncbn
