/*
 * threadpool.c — persistent pthread workers with spin-then-block wake-up.
 *
 * Protocol: the caller publishes a job (fn, ctx, n, chunk, next=0, pending=n_workers), then
 * bumps `generation` and wakes the workers. A worker that sees a new generation takes chunks
 * with fetch_add on `next` until none remain, then decrements `pending`; the last one wakes
 * the caller. The caller works on chunks too, then waits for pending == 0. Waiting is a
 * bounded spin followed by a futex wait, so no thread spins forever.
 *
 * The spin is measured in time, not iterations, and has two parts:
 *  - ENGINE_SPIN_PURE_NS of PAUSE: the gaps between the parallel loops of one forward pass
 *    are microseconds, and a sleeping thread costs ~50-100 µs to wake on a VM whose idle
 *    vCPUs halt.
 *  - up to the pool's spin_ns in all (ENGINE_SPIN_US_DEFAULT, realm-worker --pool-spin-us),
 *    with a sched_yield after every 64 checks (~1 µs of PAUSE): this outlasts the gap
 *    between two forward passes of a decode loop (the sampler, and through realm-worker a
 *    round trip to the runner: 0.1-0.4 ms at batch 8 on the reference VM), so the next pass
 *    does not start by waking every helper, while a runner woken onto this CPU to sample
 *    runs at once instead of waiting for the spinner's time slice to end. Measured in
 *    docs/worker.md#benchmark. The first version spun 4000 PAUSEs, meant as 0.1-0.5 ms: a
 *    PAUSE is 10 ns on this VM's cores, so that was 44 µs and every pass paid the wake-ups.
 *
 * Why futexes and not condition variables: the blocking waits are on the very atomics the
 * protocol already uses (generation, pending). FUTEX_WAIT only sleeps while the word still
 * holds the value the waiter last saw, so a wake-up between the check and the sleep cannot be
 * lost. The first version used a mutex + two condvars and deadlocked under a stress test
 * (300k tiny jobs, 3 threads: the caller asleep on `done` with pending already 0), which this
 * design rules out by construction.
 */
#include "threadpool.h"

#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "realm/error.h"

#define ENGINE_SPIN_PURE_NS 50000 /* PAUSE only (see the top of the file) */

struct engine_threadpool {
  int n_threads; /* including the caller */
  int64_t spin_ns; /* how long a wait spins before the futex (>= ENGINE_SPIN_PURE_NS) */
  pthread_t *threads;
  atomic_uint generation; /* futex word: bumped per job and on stop */
  atomic_int pending;     /* futex word: workers still in the current job */
  atomic_int stop;
  atomic_int started; /* futex word: workers that have begun running (create waits for all) */
  /* current job, written by the caller before generation is bumped */
  engine_task_fn fn;
  void *ctx;
  int64_t n, chunk;
  atomic_llong next;
};

struct worker_arg {
  struct engine_threadpool *pool;
  int index;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* One step of a bounded wait: false once spin_ns have passed since the wait began (*START 0
 * on the first call). Reads the clock every 64th step only. */
static bool spin_step(int64_t spin_ns, int64_t *start, unsigned i) {
  if (i % 64) {
    cpu_relax();
    return true;
  }
  int64_t t = now_ns();
  if (*start == 0) *start = t;
  int64_t spent = t - *start;
  if (spent >= spin_ns) return false;
  if (spent >= ENGINE_SPIN_PURE_NS) sched_yield();
  else cpu_relax();
  return true;
}

/* Sleeps while *WORD == EXPECTED (returns at once otherwise, or on a wake/signal). */
static void futex_wait_u32(void *word, unsigned expected) {
  syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(void *word) {
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void work_chunks(struct engine_threadpool *p, int thread) {
  for (;;) {
    int64_t b = atomic_fetch_add_explicit(&p->next, p->chunk, memory_order_relaxed);
    if (b >= p->n) break;
    int64_t e = b + p->chunk < p->n ? b + p->chunk : p->n;
    p->fn(p->ctx, b, e, thread);
  }
}

static void *worker_main(void *arg) {
  struct worker_arg *wa = arg;
  struct engine_threadpool *p = wa->pool;
  int index = wa->index;
  free(wa);
  /* Tell create() this thread runs: glibc's thread start-up (rseq, robust list) is done, so a
   * seccomp jail installed after create() returns never lands in the middle of it. */
  atomic_fetch_add_explicit(&p->started, 1, memory_order_release);
  futex_wake_all(&p->started);
  /* Generation 0 is "no job yet": a job published before this thread got scheduled must
   * still be seen as new, so do not sample the counter here. */
  unsigned seen = 0;
  for (;;) {
    unsigned g = seen;
    int64_t start = 0;
    for (unsigned i = 0;; i++) {
      g = atomic_load_explicit(&p->generation, memory_order_acquire);
      if (g != seen || atomic_load_explicit(&p->stop, memory_order_relaxed)) break;
      if (!spin_step(p->spin_ns, &start, i)) break;
    }
    while (g == seen && !atomic_load(&p->stop)) {
      futex_wait_u32(&p->generation, seen);
      g = atomic_load_explicit(&p->generation, memory_order_acquire);
    }
    if (atomic_load(&p->stop)) return NULL;
    seen = g;
    work_chunks(p, index);
    if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1)
      futex_wake_all(&p->pending);
  }
}

int engine_threadpool_create(int n_threads, int spin_us, struct engine_threadpool **ret_pool) {
  if (n_threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = n > 0 ? (int)n : 1;
    if (n_threads > ENGINE_MAX_THREADS) n_threads = ENGINE_MAX_THREADS;
  }
  if (n_threads > ENGINE_MAX_THREADS || spin_us > ENGINE_SPIN_US_MAX)
    return REALM_E_INVALID_ARGUMENT;
  struct engine_threadpool *p = calloc(1, sizeof *p);
  if (!p) return REALM_E_NOMEM;
  p->n_threads = n_threads;
  int64_t spin_ns = (int64_t)(spin_us > 0 ? spin_us : ENGINE_SPIN_US_DEFAULT) * 1000;
  p->spin_ns = spin_ns > ENGINE_SPIN_PURE_NS ? spin_ns : ENGINE_SPIN_PURE_NS;
  p->threads = calloc((size_t)n_threads, sizeof *p->threads);
  if (!p->threads) {
    engine_threadpool_destroy(p);
    return REALM_E_NOMEM;
  }
  for (int i = 1; i < n_threads; i++) {
    struct worker_arg *wa = malloc(sizeof *wa);
    if (!wa) {
      p->n_threads = i;
      engine_threadpool_destroy(p);
      return REALM_E_NOMEM;
    }
    wa->pool = p;
    wa->index = i;
    if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
      free(wa);
      p->n_threads = i;
      engine_threadpool_destroy(p);
      return REALM_E_SYSTEM;
    }
  }
  int up;
  while ((up = atomic_load_explicit(&p->started, memory_order_acquire)) < n_threads - 1)
    futex_wait_u32(&p->started, (unsigned)up);
  *ret_pool = p;
  return 0;
}

void engine_threadpool_destroy(struct engine_threadpool *p) {
  if (!p) return;
  atomic_store(&p->stop, 1);
  atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
  futex_wake_all(&p->generation);
  for (int i = 1; i < p->n_threads && p->threads; i++) pthread_join(p->threads[i], NULL);
  free(p->threads);
  free(p);
}

int engine_threadpool_size(const struct engine_threadpool *p) { return p ? p->n_threads : 1; }

void engine_threadpool_run(struct engine_threadpool *p, int64_t n, int64_t chunk,
                           engine_task_fn fn, void *ctx) {
  if (n <= 0) return;
  if (chunk <= 0) chunk = 1;
  /* One thread, or a single chunk: run inline without waking anybody. */
  if (!p || p->n_threads == 1 || n <= chunk) {
    for (int64_t b = 0; b < n; b += chunk) fn(ctx, b, b + chunk < n ? b + chunk : n, 0);
    return;
  }
  p->fn = fn;
  p->ctx = ctx;
  p->n = n;
  p->chunk = chunk;
  atomic_store_explicit(&p->next, 0, memory_order_relaxed);
  atomic_store_explicit(&p->pending, p->n_threads - 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
  futex_wake_all(&p->generation);
  work_chunks(p, 0);
  int64_t start = 0;
  for (unsigned i = 0;; i++) {
    if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0) return;
    if (!spin_step(p->spin_ns, &start, i)) break;
  }
  int left;
  while ((left = atomic_load_explicit(&p->pending, memory_order_acquire)) != 0)
    futex_wait_u32(&p->pending, (unsigned)left);
}
