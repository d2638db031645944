/*
 * One glibc call for Node: malloc_trim(0), which hands back to the kernel every whole free
 * page inside the malloc heaps (all arenas), not only at their top as free() does. Built as
 * a Node-API module, so one binary serves every Node version; see BUILD.md.
 */
#include <malloc.h>
#include <node_api.h>

/* trim() -> boolean: true when some memory was returned to the system. */
static napi_value trim(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  if (napi_get_boolean(env, malloc_trim(0) != 0, &out) != napi_ok) return NULL;
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "trim", NAPI_AUTO_LENGTH, trim, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "trim", fn) != napi_ok) return NULL;
  return exports;
}
