// Built on demand by allocation_floor.js, never shipped: the two N-API
// allocation mechanisms the addon does not use, so that their effect on V8's
// collector can be measured (bench/NOTES.md 34).
// - ext(bytes): an ArrayBuffer over malloc'ed memory
//   (napi_create_external_arraybuffer), freed by its finalizer.
// - adjust(change): napi_adjust_external_memory; returns V8's new total.
// - live(): external blocks allocated and not yet finalized.
#define NAPI_VERSION 8
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>

static int64_t live_blocks = 0;

static void release(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  free(data);
  live_blocks--;
}

static double number_arg(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  double n = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_double(env, argv[0], &n) != napi_ok)
    napi_throw_type_error(env, NULL, "allocation_probe: expected one number");
  return n;
}

static napi_value ext(napi_env env, napi_callback_info info) {
  const double n = number_arg(env, info);
  if (!(n > 0)) return NULL;
  void* p = malloc((size_t)n);
  if (p == NULL) {
    napi_throw_error(env, NULL, "allocation_probe: malloc failed");
    return NULL;
  }
  napi_value ab;
  if (napi_create_external_arraybuffer(env, p, (size_t)n, release, NULL, &ab) != napi_ok) {
    free(p);
    napi_throw_error(env, NULL, "allocation_probe: napi_create_external_arraybuffer refused");
    return NULL;
  }
  live_blocks++;
  return ab;
}

static napi_value adjust(napi_env env, napi_callback_info info) {
  const double n = number_arg(env, info);
  int64_t total = 0;
  napi_adjust_external_memory(env, (int64_t)n, &total);
  napi_value r;
  napi_create_double(env, (double)total, &r);
  return r;
}

static napi_value live(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_double(env, (double)live_blocks, &r);
  return r;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value f;
  napi_create_function(env, "ext", NAPI_AUTO_LENGTH, ext, NULL, &f);
  napi_set_named_property(env, exports, "ext", f);
  napi_create_function(env, "adjust", NAPI_AUTO_LENGTH, adjust, NULL, &f);
  napi_set_named_property(env, exports, "adjust", f);
  napi_create_function(env, "live", NAPI_AUTO_LENGTH, live, NULL, &f);
  napi_set_named_property(env, exports, "live", f);
  return exports;
}

NAPI_MODULE(allocation_probe, init)
