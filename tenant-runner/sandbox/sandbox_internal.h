/*
 * sandbox_internal.h — state shared by the sandbox's translation units (module pipeline,
 * instance/call machinery, host imports, runtime wrappers). Not installed; the public API is
 * sandbox.h.
 *
 * Invariants of a guest call (see sandbox_instance.c):
 *   1. g_call.inst is non-NULL exactly while a guest export runs on this thread.
 *   2. g_call.in_guest is 1 only while generated guest code (not host code) is on top of the
 *      stack; host imports and runtime wrappers set it to 0 on entry and back on exit, so the
 *      deadline signal never unwinds through libc or a host callback.
 *   3. Every unwind (trap, deadline, import fault, native fault) lands at the call boundary,
 *      which restores the runtime's stack depth counter and discards the instance.
 */
#ifndef REALM_SANDBOX_INTERNAL_H
#define REALM_SANDBOX_INTERNAL_H

#include <setjmp.h>
#include <signal.h>
#include <stdint.h>

#include "sandbox.h"
#include "wasm-rt.h"

/* The function table that the shim compiled into every module .so exports as
 * "realm_shim_v1" (the shim source is generated in sandbox_module.c). Guest pointers and
 * integers are u32 as wasm2c types them. */
struct realm_shim_v1 {
  uint32_t shim_version; /* SANDBOX_SHIM_VERSION */
  uint64_t instance_bytes; /* sizeof the module's wasm2c instance struct */
  void (*init_module)(void);
  void (*instantiate)(void *guest, struct sandbox_instance *host);
  void (*free_instance)(void *guest);
  wasm_rt_memory_t *(*memory)(void *guest);
  uint32_t (*abi_version)(void *guest);
  uint32_t (*alloc)(void *guest, uint32_t size);
  uint32_t (*on_request_begin)(void *guest, uint32_t req_id, uint32_t ptr, uint32_t len);
  uint32_t (*on_logits)(void *guest, uint32_t req_id, uint32_t ptr, uint32_t n_vocab);
  void (*on_request_end)(void *guest, uint32_t req_id, uint32_t status);
};
#define SANDBOX_SHIM_VERSION 1

struct sandbox_module {
  void *dl;                        /* dlopen handle */
  const struct realm_shim_v1 *shim;
  char sha256[65];
  char so_path[4096];
  int from_cache;
  int n_instances;                 /* live instances, checked on free */
};

struct sandbox_request {
  uint32_t id;
  uint64_t output_bytes;
  int32_t finish_reason; /* REALM_GUEST_FINISH_*, set by realm_finish */
};

/* Also the wasm2c "struct Z_realm_instance_t" every realm import receives. */
struct sandbox_instance {
  struct sandbox_module *module;
  void *guest;                      /* the module's wasm2c instance struct */
  wasm_rt_memory_t *memory;         /* the guest's exported "memory" */
  const struct sandbox_host *host;
  struct sandbox_limits limits;
  uint32_t cap_pages;               /* memory cap in 64 KiB pages */
  int discarded;
  char discard_reason[512];
  char grow_note[192];              /* why the last memory.grow was refused, if it was */
  char setup_error[192];            /* set by runtime wrappers during instantiation */
  uint32_t logits_ptr, logits_cap;  /* scratch in guest memory for sandbox_call_logits */
  struct sandbox_request *reqs;
  uint32_t n_reqs, reqs_cap;
  uint64_t rng[2];                  /* realm_random_bytes state (xorshift128+) */
  /* set by a failing import before it unwinds */
  int fault_code;
  char fault_msg[320];
};

/* Per-thread call state (one guest thread per process; see sandbox.h). */
struct sandbox_call_state {
  struct sandbox_instance *inst;       /* instance whose export is running, or NULL */
  struct sandbox_instance *instantiating; /* instance being created (runtime wrappers) */
  volatile sig_atomic_t in_guest;      /* 1 while generated code is running */
  volatile sig_atomic_t deadline_hit;  /* timer fired (while in host code, or just now) */
  sigjmp_buf unwind;                   /* call boundary for deadline, faults, import errors */
};
extern __thread struct sandbox_call_state sandbox_g_call;

/* Unwind reasons passed to siglongjmp(sandbox_g_call.unwind, ...). */
enum { SANDBOX_UNWIND_DEADLINE = 1, SANDBOX_UNWIND_IMPORT = 2, SANDBOX_UNWIND_FAULT = 3 };

/* Marks entry to host code from guest code; returns the previous in_guest. */
int sandbox_host_enter(void);
/* Returns to guest code; unwinds with a deadline error if the timer fired meanwhile. */
void sandbox_host_leave(int prev_in_guest);
/* Fails the running call from inside an import (noreturn: unwinds to the call boundary). */
__attribute__((noreturn, format(printf, 3, 4))) void
sandbox_import_fail(struct sandbox_instance *inst, int code, const char *fmt, ...);

/* Runtime wrappers: the real wasm2c runtime functions, renamed at compile time (meson.build)
 * so that ours, which enforce the caps and the in_guest discipline, take their names. */
void sandbox_rt_allocate_memory(wasm_rt_memory_t *, uint32_t initial_pages, uint32_t max_pages);
uint32_t sandbox_rt_grow_memory(wasm_rt_memory_t *, uint32_t pages);
void sandbox_rt_allocate_funcref_table(wasm_rt_funcref_table_t *, uint32_t, uint32_t);
void sandbox_rt_allocate_externref_table(wasm_rt_externref_table_t *, uint32_t, uint32_t);
uint32_t sandbox_rt_grow_funcref_table(wasm_rt_funcref_table_t *, uint32_t, wasm_rt_funcref_t);
uint32_t sandbox_rt_grow_externref_table(wasm_rt_externref_table_t *, uint32_t,
                                         wasm_rt_externref_t);

#endif /* REALM_SANDBOX_INTERNAL_H */
