/*
 * cuda_check.h — CUDA_CHECK / CUBLAS_CHECK: run a CUDA runtime or cuBLAS call and, when it
 * fails, record the error name and string, the statement, the function, file and line in
 * the backend's error state (struct cuda_error). The first failure wins and marks the
 * backend unhealthy: the ops become no-ops and the engine's next sync() returns
 * REALM_E_UNAVAILABLE with this message, so the worker can exit for its supervisor to
 * restart it — a serving process never abort()s on a device error (STYLE.md).
 */
#ifndef REALM_ENGINE_CUDA_CHECK_H
#define REALM_ENGINE_CUDA_CHECK_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdbool.h>

struct cuda_error {
  bool failed;
  char msg[384];
};

bool cuda_check_record(struct cuda_error *st, cudaError_t e, const char *stmt,
                       const char *func, const char *file, int line);
bool cublas_check_record(struct cuda_error *st, cublasStatus_t e, const char *stmt,
                         const char *func, const char *file, int line);

/* Evaluate to true when STMT succeeded. */
#define CUDA_CHECK(st, stmt) cuda_check_record((st), (stmt), #stmt, __func__, __FILE__, __LINE__)
#define CUBLAS_CHECK(st, stmt) \
  cublas_check_record((st), (stmt), #stmt, __func__, __FILE__, __LINE__)

#endif /* REALM_ENGINE_CUDA_CHECK_H */
