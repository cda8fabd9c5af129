/*
 * sandbox_instance.c — instances and the guest call boundary: limits, the per-call deadline,
 * trap/fault recovery, and the wrappers around the wasm2c runtime's allocation functions.
 *
 * The call boundary (run_guarded) sets two jump targets: the runtime's own (wasm_rt_impl_try,
 * reached by wasm_rt_trap for every trap of the generated code) and ours (sandbox_g_call.
 * unwind, reached by the deadline signal handler, by a host import that rejects its arguments,
 * and by the SIGSEGV/SIGBUS backstop). Either way the call ends with an error, the runtime's
 * stack depth counter is restored, and the instance is discarded: its memory may hold a
 * half-updated state, so nothing more runs in it.
 *
 * Deadline: a per-thread POSIX timer on CLOCK_MONOTONIC delivers SANDBOX_DEADLINE_SIGNAL to the
 * calling thread (SIGEV_THREAD_ID). The handler unwinds only when in_guest is set, i.e. when
 * generated code is running; host imports and the runtime wrappers clear in_guest for their
 * duration (sandbox_host_enter/leave), so we never jump out of malloc or a host callback. When
 * the timer fires in host code the handler only records it and sandbox_host_leave unwinds on
 * the way back into the guest. A guest wedged in a way this cannot see (a host callback that
 * never returns) is covered by the backstop: the supervisor kills a runner that stops
 * answering its heartbeat (docs/guest-abi.md).
 *
 * Runtime wrappers: meson compiles wasm-rt-impl.c with its allocation functions renamed to
 * sandbox_rt_*; the wasm_rt_* names the generated code calls are defined here. They clamp the
 * memory's maximum to the instance's cap (so memory.grow past it returns -1 to the guest),
 * refuse an initial size over the cap, bound table sizes, check calloc results (the runtime
 * does not), and run with in_guest cleared.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "realm/error.h"
#include "realm/limits.h"
#include "sandbox_internal.h"
#include "wasm-rt-impl.h"

#define WASM_PAGE 65536u
#define MAX_PAGES_32 65535u /* 65536 pages overflow the runtime's u32 byte size */

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

__thread struct sandbox_call_state sandbox_g_call;

/* Per-thread deadline timer and alternate signal stack, made on first use. */
static __thread int t_ready;
static __thread timer_t t_timer;
static __thread void *t_altstack;
static __thread int t_fault_sig;

static pthread_once_t g_handlers_once = PTHREAD_ONCE_INIT;
static int g_handlers_ok;
static struct sigaction g_prev_segv, g_prev_bus;

/* ---- signals ---- */

static void on_deadline(int sig, siginfo_t *si, void *uctx) {
  (void)sig;
  (void)si;
  (void)uctx;
  struct sandbox_call_state *cs = &sandbox_g_call;
  if (!cs->inst) return; /* a call ended between expiry and delivery */
  cs->deadline_hit = 1;
  if (cs->in_guest) {
    cs->in_guest = 0;
    siglongjmp(cs->unwind, SANDBOX_UNWIND_DEADLINE);
  }
}

/* A native fault inside generated code (it cannot touch memory outside the instance in
 * bounds-check mode, so in practice: the native stack overflowed before the depth counter
 * tripped, on guests with huge frames). Anywhere else it is a host bug: restore the previous
 * disposition and return, so the fault repeats and kills the process as it would have. */
static void on_fault(int sig, siginfo_t *si, void *uctx) {
  (void)si;
  (void)uctx;
  struct sandbox_call_state *cs = &sandbox_g_call;
  if (cs->inst && cs->in_guest) {
    cs->in_guest = 0;
    t_fault_sig = sig;
    siglongjmp(cs->unwind, SANDBOX_UNWIND_FAULT);
  }
  sigaction(sig, sig == SIGBUS ? &g_prev_bus : &g_prev_segv, NULL);
}

static void install_handlers(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_deadline;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SANDBOX_DEADLINE_SIGNAL, &sa, NULL) != 0) return;
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  if (sigaction(SIGSEGV, &sa, &g_prev_segv) != 0 || sigaction(SIGBUS, &sa, &g_prev_bus) != 0)
    return;
  g_handlers_ok = 1;
}

static int thread_setup(char *err, size_t errlen) {
  if (t_ready) return 0;
  pthread_once(&g_handlers_once, install_handlers);
  if (!g_handlers_ok) {
    realm_set_err(err, errlen, "cannot install the sandbox signal handlers: %s", strerror(errno));
    return REALM_E_SYSTEM;
  }
  /* The backstop fault handler needs a stack of its own when the native stack is exhausted.
   * Keep an alternate stack the thread already has. */
  stack_t old;
  if (sigaltstack(NULL, &old) == 0 && (old.ss_flags & SS_DISABLE)) {
    size_t sz = 64u << 10;
    t_altstack = malloc(sz);
    if (t_altstack) {
      stack_t ss = {.ss_sp = t_altstack, .ss_size = sz, .ss_flags = 0};
      if (sigaltstack(&ss, NULL) != 0) {
        free(t_altstack);
        t_altstack = NULL;
      }
    }
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SANDBOX_DEADLINE_SIGNAL);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SANDBOX_DEADLINE_SIGNAL;
  sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
  if (timer_create(CLOCK_MONOTONIC, &sev, &t_timer) != 0) {
    realm_set_err(err, errlen, "timer_create for the guest deadline failed: %s", strerror(errno));
    return REALM_E_SYSTEM;
  }
  t_ready = 1;
  return 0;
}

static void timer_arm(uint32_t ms) {
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  its.it_value.tv_sec = ms / 1000;
  its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
  timer_settime(t_timer, 0, &its, NULL);
}

static void timer_disarm(void) {
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  timer_settime(t_timer, 0, &its, NULL);
}

/* ---- host/guest transitions (used by the imports, sandbox_imports.c) ---- */

int sandbox_host_enter(void) {
  int prev = sandbox_g_call.in_guest;
  sandbox_g_call.in_guest = 0;
  atomic_signal_fence(memory_order_seq_cst);
  return prev;
}

void sandbox_host_leave(int prev_in_guest) {
  struct sandbox_call_state *cs = &sandbox_g_call;
  /* Set in_guest before looking at deadline_hit: a signal between the two then unwinds by
   * itself, and one before is seen here. */
  cs->in_guest = prev_in_guest;
  atomic_signal_fence(memory_order_seq_cst);
  if (prev_in_guest && cs->deadline_hit && cs->inst) {
    cs->in_guest = 0;
    siglongjmp(cs->unwind, SANDBOX_UNWIND_DEADLINE);
  }
}

void sandbox_import_fail(struct sandbox_instance *inst, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(inst->fault_msg, sizeof inst->fault_msg, fmt, ap);
  va_end(ap);
  inst->fault_code = code;
  sandbox_g_call.in_guest = 0;
  siglongjmp(sandbox_g_call.unwind, SANDBOX_UNWIND_IMPORT);
}

/* ---- the call boundary ---- */

enum call_kind { CALL_INSTANTIATE, CALL_ABI, CALL_ALLOC, CALL_BEGIN, CALL_LOGITS, CALL_END };
static const char *const call_names[] = {"instantiation", "realm_abi_version", "realm_alloc",
                                         "realm_on_request_begin", "realm_on_logits",
                                         "realm_on_request_end"};

static const char *trap_name(wasm_rt_trap_t t) {
  switch (t) {
  case WASM_RT_TRAP_OOB: return "out_of_bounds";
  case WASM_RT_TRAP_INT_OVERFLOW: return "integer_overflow";
  case WASM_RT_TRAP_DIV_BY_ZERO: return "integer_divide_by_zero";
  case WASM_RT_TRAP_INVALID_CONVERSION: return "invalid_conversion";
  case WASM_RT_TRAP_UNREACHABLE: return "unreachable";
  case WASM_RT_TRAP_CALL_INDIRECT: return "call_indirect_mismatch";
  case WASM_RT_TRAP_UNCAUGHT_EXCEPTION: return "uncaught_exception";
  case WASM_RT_TRAP_EXHAUSTION: return "stack_exhausted";
  default: return "unknown";
  }
}

static void discard(struct sandbox_instance *inst, const char *msg) {
  inst->discarded = 1;
  snprintf(inst->discard_reason, sizeof inst->discard_reason, "%s", msg);
}

/*
 * Runs one export (or the instantiation) of inst under the deadline with a, b, c as its
 * arguments; *ret receives its u32 result. Returns 0, or an error (instance discarded).
 */
static int run_guarded(struct sandbox_instance *inst, enum call_kind kind, uint32_t a, uint32_t b,
                       uint32_t c, uint32_t *ret, char *err, size_t errlen) {
  struct sandbox_call_state *cs = &sandbox_g_call;
  const struct realm_shim_v1 *shim = inst->module->shim;
  int rc = thread_setup(err, errlen);
  if (rc < 0) return rc;
  const uint32_t saved_depth = wasm_rt_call_stack_depth;
  cs->inst = inst;
  cs->deadline_hit = 0;
  inst->fault_code = 0;
  inst->grow_note[0] = '\0';
  char msg[512];
  int code = 0;

  int why = sigsetjmp(cs->unwind, 1);
  if (why != 0) {
    timer_disarm();
    cs->in_guest = 0;
    cs->inst = NULL;
    wasm_rt_call_stack_depth = saved_depth;
    if (why == SANDBOX_UNWIND_DEADLINE) {
      code = REALM_E_TIMEOUT;
      snprintf(msg, sizeof msg, "deadline exceeded after %u ms in %s", inst->limits.call_ms,
               call_names[kind]);
    } else if (why == SANDBOX_UNWIND_IMPORT) {
      code = inst->fault_code ? inst->fault_code : REALM_E_GUEST_TRAP;
      snprintf(msg, sizeof msg, "%s (during %s)", inst->fault_msg, call_names[kind]);
    } else {
      code = REALM_E_GUEST_TRAP;
      snprintf(msg, sizeof msg,
               "guest trap 'native_fault' (signal %d in generated code, most likely native stack "
               "overflow) in %s",
               t_fault_sig, call_names[kind]);
    }
    goto failed;
  }
  wasm_rt_trap_t trap = (wasm_rt_trap_t)wasm_rt_impl_try();
  if (trap != WASM_RT_TRAP_NONE) {
    cs->in_guest = 0;
    timer_disarm();
    cs->inst = NULL;
    wasm_rt_call_stack_depth = saved_depth;
    code = REALM_E_GUEST_TRAP;
    if (trap == WASM_RT_TRAP_EXHAUSTION)
      snprintf(msg, sizeof msg, "guest trap 'stack_exhausted' (call depth over %d) in %s%s%s",
               WASM_RT_MAX_CALL_STACK_DEPTH, call_names[kind], inst->grow_note[0] ? "; " : "",
               inst->grow_note);
    else
      snprintf(msg, sizeof msg, "guest trap '%s' (%s) in %s%s%s", trap_name(trap),
               wasm_rt_strerror(trap), call_names[kind], inst->grow_note[0] ? "; " : "",
               inst->grow_note);
    goto failed;
  }

  timer_arm(inst->limits.call_ms);
  cs->in_guest = 1;
  atomic_signal_fence(memory_order_seq_cst);
  uint32_t r = 0;
  switch (kind) {
  case CALL_INSTANTIATE: shim->instantiate(inst->guest, inst); break;
  case CALL_ABI: r = shim->abi_version(inst->guest); break;
  case CALL_ALLOC: r = shim->alloc(inst->guest, a); break;
  case CALL_BEGIN: r = shim->on_request_begin(inst->guest, a, b, c); break;
  case CALL_LOGITS: r = shim->on_logits(inst->guest, a, b, c); break;
  case CALL_END: shim->on_request_end(inst->guest, a, b); break;
  }
  cs->in_guest = 0;
  atomic_signal_fence(memory_order_seq_cst);
  timer_disarm();
  cs->inst = NULL;
  *ret = r;
  return 0;

failed:
  discard(inst, msg);
  realm_set_err(err, errlen, "%s", msg);
  return code;
}

/* ---- instances ---- */

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

int sandbox_instance_new(struct sandbox_module *module, const struct sandbox_limits *limits,
                         const struct sandbox_host *host, struct sandbox_instance **ret_inst,
                         char *err, size_t errlen) {
  if (!module || !ret_inst) {
    realm_set_err(err, errlen, "sandbox_instance_new: NULL module or ret_inst");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (sandbox_g_call.inst) {
    realm_set_err(err, errlen, "sandbox_instance_new called from inside a guest call");
    return REALM_E_INVALID_ARGUMENT;
  }
  struct sandbox_limits lim = limits ? *limits : (struct sandbox_limits){0};
  if (!lim.memory_bytes) lim.memory_bytes = REALM_GUEST_DEFAULT_MEMORY_BYTES;
  if (!lim.call_ms) lim.call_ms = REALM_GUEST_DEFAULT_CALL_MS;
  if (!lim.output_bytes) lim.output_bytes = REALM_GUEST_MAX_OUTPUT_BYTES;
  if (lim.memory_bytes < WASM_PAGE || lim.memory_bytes > (uint64_t)MAX_PAGES_32 * WASM_PAGE) {
    realm_set_err(err, errlen, "limits.memory_bytes = %llu: must be 64 KiB .. %llu bytes",
                  (unsigned long long)lim.memory_bytes,
                  (unsigned long long)MAX_PAGES_32 * WASM_PAGE);
    return REALM_E_OUT_OF_RANGE;
  }
  if (lim.call_ms > 3600u * 1000u) {
    realm_set_err(err, errlen, "limits.call_ms = %u: at most one hour", lim.call_ms);
    return REALM_E_OUT_OF_RANGE;
  }
  struct sandbox_instance *inst = calloc(1, sizeof *inst);
  void *guest = calloc(1, module->shim->instance_bytes);
  if (!inst || !guest) {
    free(inst);
    free(guest);
    realm_set_err(err, errlen, "out of memory for an instance of %llu bytes",
                  (unsigned long long)module->shim->instance_bytes);
    return REALM_E_NOMEM;
  }
  inst->module = module;
  inst->guest = guest;
  inst->host = host;
  inst->limits = lim;
  inst->cap_pages = (uint32_t)(lim.memory_bytes / WASM_PAGE);
  uint64_t s = lim.seed;
  inst->rng[0] = splitmix64(&s);
  inst->rng[1] = splitmix64(&s);
  module->n_instances++;

  uint32_t ignored = 0, abi = 0;
  /* The memory struct lives in the guest struct, so its address is known (size 0) before
   * instantiation: imports called from a start function are checked against it too. */
  inst->memory = module->shim->memory(inst->guest);
  sandbox_g_call.instantiating = inst;
  int rc = run_guarded(inst, CALL_INSTANTIATE, 0, 0, 0, &ignored, err, errlen);
  sandbox_g_call.instantiating = NULL;
  if (rc < 0) {
    if (err && errlen) {
      char tmp[512];
      snprintf(tmp, sizeof tmp, "cannot instantiate module %.12s: %s", module->sha256, err);
      snprintf(err, errlen, "%s", tmp);
    }
    sandbox_instance_free(inst);
    return rc;
  }
  rc = run_guarded(inst, CALL_ABI, 0, 0, 0, &abi, err, errlen);
  if (rc < 0) {
    sandbox_instance_free(inst);
    return rc;
  }
  if (abi != REALM_GUEST_ABI_VERSION) {
    realm_set_err(err, errlen, "guest realm_abi_version() = %u, host speaks ABI v%d", abi,
                  REALM_GUEST_ABI_VERSION);
    sandbox_instance_free(inst);
    return REALM_E_VERSION;
  }
  *ret_inst = inst;
  return 0;
}

void sandbox_instance_free(struct sandbox_instance *inst) {
  if (!inst) return;
  if (inst->guest) inst->module->shim->free_instance(inst->guest);
  free(inst->guest);
  free(inst->reqs);
  inst->module->n_instances--;
  free(inst);
}

int sandbox_instance_discarded(const struct sandbox_instance *inst) {
  return inst ? inst->discarded : 1;
}

uint64_t sandbox_instance_memory_bytes(const struct sandbox_instance *inst) {
  return inst && inst->memory ? inst->memory->size : 0;
}

static struct sandbox_request *find_request(const struct sandbox_instance *inst, uint32_t id) {
  for (uint32_t i = 0; i < inst->n_reqs; i++)
    if (inst->reqs[i].id == id) return &inst->reqs[i];
  return NULL;
}

/* Exposed to the imports through sandbox_internal.h's struct; a plain lookup. */
uint64_t sandbox_instance_output_bytes(const struct sandbox_instance *inst, uint32_t req_id) {
  const struct sandbox_request *r = inst ? find_request(inst, req_id) : NULL;
  return r ? r->output_bytes : 0;
}

int32_t sandbox_instance_finish_reason(const struct sandbox_instance *inst, uint32_t req_id) {
  const struct sandbox_request *r = inst ? find_request(inst, req_id) : NULL;
  return r ? r->finish_reason : REALM_GUEST_FINISH_NONE;
}

static void forget_request(struct sandbox_instance *inst, uint32_t id) {
  for (uint32_t i = 0; i < inst->n_reqs; i++)
    if (inst->reqs[i].id == id) {
      inst->reqs[i] = inst->reqs[--inst->n_reqs];
      return;
    }
}

/* Common entry checks of the sandbox_call_* functions. */
static int call_precheck(struct sandbox_instance *inst, const char *fn, char *err, size_t errlen) {
  if (!inst) {
    realm_set_err(err, errlen, "%s: NULL instance", fn);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (sandbox_g_call.inst) {
    realm_set_err(err, errlen, "%s called from inside a guest call (re-entry is not allowed)", fn);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (inst->discarded) {
    realm_set_err(err, errlen, "instance was discarded after: %s", inst->discard_reason);
    return REALM_E_UNAVAILABLE;
  }
  return 0;
}

/* Asks the guest for n bytes (realm_alloc) and checks the pointer it returns. */
static int guest_alloc(struct sandbox_instance *inst, uint32_t n, uint32_t *ret_ptr, char *err,
                       size_t errlen) {
  uint32_t p = 0;
  int rc = run_guarded(inst, CALL_ALLOC, n, 0, 0, &p, err, errlen);
  if (rc < 0) return rc;
  if (p == 0) {
    realm_set_err(err, errlen, "guest realm_alloc(%u) returned 0 (guest out of memory)", n);
    return REALM_E_NOMEM;
  }
  uint64_t size = inst->memory->size;
  if ((uint64_t)p + n > size) {
    char msg[256];
    snprintf(msg, sizeof msg,
             "guest realm_alloc(%u) returned 0x%x: range [0x%x, 0x%llx) is outside guest memory "
             "of %llu bytes",
             n, p, p, (unsigned long long)p + n, (unsigned long long)size);
    discard(inst, msg);
    realm_set_err(err, errlen, "%s", msg);
    return REALM_E_GUEST_TRAP;
  }
  *ret_ptr = p;
  return 0;
}

int sandbox_call_request_begin(struct sandbox_instance *inst, uint32_t req_id, const uint8_t *req,
                               uint32_t req_len, int32_t *ret_status, char *err, size_t errlen) {
  int rc = call_precheck(inst, "sandbox_call_request_begin", err, errlen);
  if (rc < 0) return rc;
  if (!req || req_len == 0 || !ret_status) {
    realm_set_err(err, errlen, "sandbox_call_request_begin: empty request or NULL ret_status");
    return REALM_E_INVALID_ARGUMENT;
  }
  if (find_request(inst, req_id)) {
    realm_set_err(err, errlen, "request id %u is already active in this instance", req_id);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (inst->n_reqs >= REALM_GUEST_MAX_ACTIVE_REQUESTS) {
    realm_set_err(err, errlen,
                  "instance already has %u active requests (REALM_GUEST_MAX_ACTIVE_REQUESTS)",
                  inst->n_reqs);
    return REALM_E_RATE_LIMITED;
  }
  if (inst->n_reqs == inst->reqs_cap) {
    uint32_t ncap = inst->reqs_cap ? inst->reqs_cap * 2 : 8;
    struct sandbox_request *nr = realloc(inst->reqs, ncap * sizeof *nr);
    if (!nr) {
      realm_set_err(err, errlen, "out of memory for the request table");
      return REALM_E_NOMEM;
    }
    inst->reqs = nr;
    inst->reqs_cap = ncap;
  }
  uint32_t p = 0;
  rc = guest_alloc(inst, req_len, &p, err, errlen);
  if (rc < 0) return rc;
  memcpy(inst->memory->data + p, req, req_len);
  inst->reqs[inst->n_reqs++] =
      (struct sandbox_request){.id = req_id, .output_bytes = 0, .finish_reason = REALM_GUEST_FINISH_NONE};
  uint32_t r = 0;
  rc = run_guarded(inst, CALL_BEGIN, req_id, p, req_len, &r, err, errlen);
  if (rc < 0) return rc;
  *ret_status = (int32_t)r;
  return 0;
}

int sandbox_call_logits(struct sandbox_instance *inst, uint32_t req_id, const float *logits,
                        uint32_t n_vocab, int32_t *ret_action, char *err, size_t errlen) {
  int rc = call_precheck(inst, "sandbox_call_logits", err, errlen);
  if (rc < 0) return rc;
  if (!logits || !ret_action || n_vocab == 0 || n_vocab > REALM_MAX_VOCAB) {
    realm_set_err(err, errlen, "sandbox_call_logits: n_vocab = %u (1..%u) or NULL argument",
                  n_vocab, (unsigned)REALM_MAX_VOCAB);
    return REALM_E_INVALID_ARGUMENT;
  }
  if (!find_request(inst, req_id)) {
    realm_set_err(err, errlen, "sandbox_call_logits: request id %u is not active", req_id);
    return REALM_E_INVALID_ARGUMENT;
  }
  uint32_t bytes = n_vocab * (uint32_t)sizeof(float);
  if (inst->logits_cap < bytes ||
      (uint64_t)inst->logits_ptr + bytes > inst->memory->size) {
    uint32_t p = 0;
    rc = guest_alloc(inst, bytes, &p, err, errlen);
    if (rc < 0) return rc;
    inst->logits_ptr = p;
    inst->logits_cap = bytes;
  }
  memcpy(inst->memory->data + inst->logits_ptr, logits, bytes);
  uint32_t r = 0;
  rc = run_guarded(inst, CALL_LOGITS, req_id, inst->logits_ptr, n_vocab, &r, err, errlen);
  if (rc < 0) return rc;
  *ret_action = (int32_t)r;
  return 0;
}

int sandbox_call_request_end(struct sandbox_instance *inst, uint32_t req_id, int32_t status,
                             char *err, size_t errlen) {
  int rc = call_precheck(inst, "sandbox_call_request_end", err, errlen);
  if (rc < 0) {
    if (inst) forget_request(inst, req_id);
    return rc;
  }
  if (!find_request(inst, req_id)) {
    realm_set_err(err, errlen, "sandbox_call_request_end: request id %u is not active", req_id);
    return REALM_E_INVALID_ARGUMENT;
  }
  uint32_t ignored = 0;
  rc = run_guarded(inst, CALL_END, req_id, (uint32_t)status, 0, &ignored, err, errlen);
  forget_request(inst, req_id);
  return rc;
}

/* ---- wasm2c runtime wrappers (see the file comment) ---- */

void wasm_rt_allocate_memory(wasm_rt_memory_t *m, uint32_t initial_pages, uint32_t max_pages) {
  int prev = sandbox_host_enter();
  struct sandbox_instance *inst = sandbox_g_call.instantiating;
  uint32_t cap = inst ? inst->cap_pages : MAX_PAGES_32;
  if (initial_pages > cap) {
    sandbox_rt_allocate_memory(m, 0, 0);
    if (inst)
      sandbox_import_fail(inst, REALM_E_TOO_LARGE,
                          "module's initial memory is %u pages (%llu bytes), over the memory cap "
                          "of %llu bytes",
                          initial_pages, (unsigned long long)initial_pages * WASM_PAGE,
                          (unsigned long long)inst->limits.memory_bytes);
    wasm_rt_trap(WASM_RT_TRAP_OOB);
  }
  sandbox_rt_allocate_memory(m, initial_pages, max_pages < cap ? max_pages : cap);
  if (!m->data && initial_pages) {
    m->size = 0;
    m->pages = 0;
    if (inst)
      sandbox_import_fail(inst, REALM_E_NOMEM, "out of memory allocating %u pages of guest memory",
                          initial_pages);
    wasm_rt_trap(WASM_RT_TRAP_OOB);
  }
  sandbox_host_leave(prev);
}

uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *m, uint32_t delta) {
  int prev = sandbox_host_enter();
  struct sandbox_instance *inst = sandbox_g_call.inst;
  uint64_t want = (uint64_t)m->pages + delta;
  if (inst && want > m->max_pages)
    snprintf(inst->grow_note, sizeof inst->grow_note,
             "memory.grow by %u pages refused: %llu bytes would exceed the memory cap of %llu "
             "bytes (max %u pages)",
             delta, (unsigned long long)want * WASM_PAGE,
             (unsigned long long)inst->limits.memory_bytes, m->max_pages);
  uint32_t r = sandbox_rt_grow_memory(m, delta);
  sandbox_host_leave(prev);
  return r;
}

/* The table limit both table allocators apply, checked before allocating: false (the
 * instantiating instance told why) when the module's table is over
 * REALM_GUEST_MAX_TABLE_ELEMS; otherwise *max_elements is clamped to it. */
static bool table_within_limit(struct sandbox_instance *inst, uint32_t elements,
                               uint32_t *max_elements) {
  if (elements > REALM_GUEST_MAX_TABLE_ELEMS) {
    if (inst)
      sandbox_import_fail(inst, REALM_E_TOO_LARGE, "module's table has %u elements, limit %u",
                          elements, (unsigned)REALM_GUEST_MAX_TABLE_ELEMS);
    return false;
  }
  if (*max_elements > REALM_GUEST_MAX_TABLE_ELEMS) *max_elements = REALM_GUEST_MAX_TABLE_ELEMS;
  return true;
}

/* After allocating a table of elements: false (size zeroed, the instance told) when the
 * runtime ran out of memory. */
static bool table_allocated(struct sandbox_instance *inst, const void *data, uint32_t elements,
                            uint32_t *size) {
  if (data || !elements) return true;
  *size = 0;
  if (inst) sandbox_import_fail(inst, REALM_E_NOMEM, "out of memory allocating a table");
  return false;
}

/* Both allocators leave t a valid (possibly empty) table before trapping, so the instance's
 * teardown can free it. */
void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t *t, uint32_t elements,
                                    uint32_t max_elements) {
  int prev = sandbox_host_enter();
  struct sandbox_instance *inst = sandbox_g_call.instantiating;
  bool ok = table_within_limit(inst, elements, &max_elements);
  sandbox_rt_allocate_funcref_table(t, ok ? elements : 0, ok ? max_elements : 0);
  if (!ok || !table_allocated(inst, t->data, elements, &t->size)) wasm_rt_trap(WASM_RT_TRAP_OOB);
  sandbox_host_leave(prev);
}

void wasm_rt_allocate_externref_table(wasm_rt_externref_table_t *t, uint32_t elements,
                                      uint32_t max_elements) {
  int prev = sandbox_host_enter();
  struct sandbox_instance *inst = sandbox_g_call.instantiating;
  bool ok = table_within_limit(inst, elements, &max_elements);
  sandbox_rt_allocate_externref_table(t, ok ? elements : 0, ok ? max_elements : 0);
  if (!ok || !table_allocated(inst, t->data, elements, &t->size)) wasm_rt_trap(WASM_RT_TRAP_OOB);
  sandbox_host_leave(prev);
}

uint32_t wasm_rt_grow_funcref_table(wasm_rt_funcref_table_t *t, uint32_t delta,
                                    wasm_rt_funcref_t init) {
  int prev = sandbox_host_enter();
  uint32_t r = sandbox_rt_grow_funcref_table(t, delta, init);
  sandbox_host_leave(prev);
  return r;
}

uint32_t wasm_rt_grow_externref_table(wasm_rt_externref_table_t *t, uint32_t delta,
                                      wasm_rt_externref_t init) {
  int prev = sandbox_host_enter();
  uint32_t r = sandbox_rt_grow_externref_table(t, delta, init);
  sandbox_host_leave(prev);
  return r;
}
