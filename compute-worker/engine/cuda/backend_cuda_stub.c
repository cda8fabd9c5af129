/*
 * backend_cuda_stub.c — the CUDA entry points of backend.h for a build without the CUDA
 * backend (meson -Dcuda=disabled, or auto without nvcc/cuBLAS). They exist so the engine
 * and the worker link and can say why "cuda" is refused, instead of growing #ifdefs.
 */
#include <stdio.h>

#include "../backend.h"
#include "realm/error.h"

bool engine_backend_cuda_built(void) { return false; }

int engine_backend_cuda_devices(char *why, size_t whylen) {
  snprintf(why, whylen, "built without CUDA (meson -Dcuda, toolkit not found or disabled)");
  return 0;
}

int engine_backend_cuda_create(const struct engine_cuda_options *opt, struct engine_backend *ret,
                               char *err, size_t errlen) {
  (void)opt;
  (void)ret;
  snprintf(err, errlen, "engine: backend \"cuda\" unavailable: this build has no CUDA backend");
  return REALM_E_UNSUPPORTED;
}

const char *engine_backend_cuda_device_name(const struct engine_backend *b) {
  (void)b;
  return "none";
}

size_t engine_backend_cuda_bytes_allocated(const struct engine_backend *b) {
  (void)b;
  return 0;
}
