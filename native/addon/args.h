// Strict argument reading for the N-API boundary. The TypeScript layer
// validates first; this is the second line, so that a caller of the raw addon
// gets a JavaScript error naming the op, the argument and what was expected,
// never a crash or an out-of-bounds access.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "../kernels/batch_norm.h"

namespace syncbn {
namespace addon {

inline size_t element_bytes(napi_typedarray_type t) {
  switch (t) {
    case napi_int16_array: case napi_uint16_array: return 2;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: return 4;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: return 8;
    default: return 1;
  }
}

inline const char* typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

// "Float32Array of 3 elements", "null", "a number": what a caller passed.
inline std::string describe_value(const Napi::Value& v) {
  if (v.IsTypedArray()) {
    Napi::TypedArray a = v.As<Napi::TypedArray>();
    return std::string(typed_array_name(a.TypedArrayType())) + " of " + std::to_string(a.ElementLength()) + " elements";
  }
  if (v.IsNull()) return "null";
  if (v.IsUndefined()) return "undefined";
  if (v.IsArray()) return "an Array of length " + std::to_string(v.As<Napi::Array>().Length());
  if (v.IsNumber()) return "a number";
  if (v.IsString()) return "a string";
  if (v.IsBoolean()) return "a boolean";
  return "an object";
}

// The dims of an [n, c, inner] array (n, inner >= 0, c >= 1, at most 2^53 - 1
// elements in all), for Args::shape and OpArgs::shape; channels_last is left false.
inline BatchShape shape_dims(Napi::Env env, const std::string& prefix, const Napi::Array& a) {
  int64_t dims[3];
  static const char* const names[3] = {"n", "c", "inner"};
  for (uint32_t k = 0; k < 3; ++k) {
    const Napi::Value d = a.Get(k);
    const double x = d.IsNumber() ? d.As<Napi::Number>().DoubleValue() : -1;
    const int64_t min = k == 1 ? 1 : 0;
    if (!(x >= static_cast<double>(min)) || x != std::floor(x) || x > 9007199254740991.0)
      throw Napi::RangeError::New(env, prefix + "shape." + names[k] + " must be an integer >= " + std::to_string(min));
    dims[k] = static_cast<int64_t>(x);
  }
  BatchShape s;
  s.n = dims[0];
  s.c = dims[1];
  s.inner = dims[2];
  if (static_cast<double>(s.n) * static_cast<double>(s.c) * static_cast<double>(s.inner) > 9007199254740991.0)
    throw Napi::RangeError::New(env, prefix + "shape [n, c, inner] has too many elements");
  return s;
}

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* op, size_t count) : info_(info), op_(op) {
    if (info.Length() != count)
      throw Napi::TypeError::New(env(), prefix() + "expected " + std::to_string(count) +
                                            " arguments, got " + std::to_string(info.Length()));
  }

  Napi::Env env() const { return info_.Env(); }
  Napi::Value value(size_t i) const { return info_[i]; }
  size_t length() const { return info_.Length(); }

  double number(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsNumber()) throw type_error(i, name, "a number", v);
    const double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d)) throw range_error(i, name, "a finite number");
    return d;
  }

  double non_negative(size_t i, const char* name) const {
    const double d = number(i, name);
    if (d < 0) throw range_error(i, name, "a number >= 0");
    return d;
  }

  int64_t integer(size_t i, const char* name, int64_t min) const {
    const double d = number(i, name);
    if (d != std::floor(d) || d < static_cast<double>(min) || d > 9007199254740991.0)
      throw range_error(i, name, "an integer >= " + std::to_string(min));
    return static_cast<int64_t>(d);
  }

  bool boolean(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsBoolean()) throw type_error(i, name, "a boolean", v);
    return v.As<Napi::Boolean>().Value();
  }

  // [n, c, inner] at i and the channels-last flag at i + 1.
  BatchShape shape(size_t i) const {
    const Napi::Value v = info_[i];
    if (!v.IsArray() || v.As<Napi::Array>().Length() != 3)
      throw type_error(i, "shape", "an array [n, c, inner]", v);
    BatchShape s = shape_dims(env(), prefix(), v.As<Napi::Array>());
    s.channels_last = boolean(i + 1, "channelsLast");
    return s;
  }

  struct Role {
    size_t i;
    const char* name;
  };

  // The kernels read inputs while they write outputs, so an output that
  // shares a byte with an input or another output (the same ArrayBuffer, or
  // views of one memory) would give a result that depends on the order of
  // their passes: refused. Arguments that are not TypedArrays are skipped
  // (raw() refuses them).
  void no_overlap(std::initializer_list<Role> outputs, std::initializer_list<Role> inputs) const {
    auto span = [&](size_t i, uintptr_t* b, uintptr_t* e) {
      const Napi::Value v = info_[i];
      napi_typedarray_type type;
      size_t length = 0;
      void* data = nullptr;
      if (!v.IsTypedArray() || napi_get_typedarray_info(env(), v, &type, &length, &data, nullptr, nullptr) != napi_ok)
        return false;
      *b = reinterpret_cast<uintptr_t>(data);
      *e = *b + length * element_bytes(type);
      return length > 0;
    };
    for (auto o = outputs.begin(); o != outputs.end(); ++o) {
      uintptr_t ob, oe;
      if (!span(o->i, &ob, &oe)) continue;
      auto check = [&](const Role& other, const char* what) {
        uintptr_t b, e;
        if (span(other.i, &b, &e) && ob < e && b < oe)
          throw Napi::TypeError::New(env(), prefix() + "output argument " + std::to_string(o->i) + " '" + o->name +
                                                "' overlaps " + what + " argument " + std::to_string(other.i) + " '" +
                                                other.name + "' in memory: outputs must not overlap inputs or other outputs");
      };
      for (const Role& in : inputs) check(in, "input");
      for (auto p = o + 1; p != outputs.end(); ++p) check(*p, "output");
    }
  }

  // Any TypedArray; its element size in bytes through `elem_size`.
  void* raw(size_t i, const char* name, int64_t len, napi_typedarray_type* kind,
            int* elem_size) const {
    const Napi::Value v = info_[i];
    if (!v.IsTypedArray()) throw type_error(i, name, "a TypedArray", v);
    Napi::TypedArray a = v.As<Napi::TypedArray>();
    if (static_cast<int64_t>(a.ElementLength()) != len)
      throw Napi::RangeError::New(env(), prefix() + "argument " + std::to_string(i) + " '" + name +
                                             "' must have " + std::to_string(len) +
                                             " elements, got " +
                                             std::to_string(a.ElementLength()));
    *kind = a.TypedArrayType();
    *elem_size = static_cast<int>(a.ElementSize());
    return static_cast<uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  }

  Napi::Error type_error(size_t i, const char* name, const std::string& expected,
                         const Napi::Value& got) const {
    return Napi::TypeError::New(env(), prefix() + "argument " + std::to_string(i) + " '" + name +
                                           "' must be " + expected + ", got " + describe(got));
  }

  Napi::Error range_error(size_t i, const char* name, const std::string& expected) const {
    return Napi::RangeError::New(env(), prefix() + "argument " + std::to_string(i) + " '" + name +
                                            "' must be " + expected);
  }

  std::string prefix() const { return std::string("syncbn native ") + op_ + ": "; }

 private:
  static std::string describe(const Napi::Value& v) { return describe_value(v); }

  const Napi::CallbackInfo& info_;
  const char* op_;
};

}  // namespace addon
}  // namespace syncbn
