/*
 * threadpool.c — persistent pthread workers with spin-then-block wake-up.
 *
 * Protocol: the caller publishes a job (fn, ctx, n, chunk, next=0, pending=n_workers), then
 * bumps `generation` under the mutex and broadcasts. A worker that sees a new generation
 * takes chunks with fetch_add on `next` until none remain, then decrements `pending`; the
 * last one signals `done`. The caller works on chunks too, then waits for pending == 0.
 * Waiting is a bounded spin (ENGINE_SPIN_ITERS pause instructions) followed by a condvar
 * wait, so no thread spins forever.
 */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "realm/error.h"

#define ENGINE_SPIN_ITERS 4000 /* ~0.1-0.5 ms of pause instructions */

struct engine_threadpool {
  int n_threads; /* including the caller */
  pthread_t *threads;
  pthread_mutex_t mu;
  pthread_cond_t start; /* generation changed or stop */
  pthread_cond_t done;  /* pending reached 0 */
  atomic_uint generation;
  atomic_int pending; /* workers still in the current job */
  atomic_int stop;
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
  /* Generation 0 is "no job yet": a job published before this thread got scheduled must
   * still be seen as new, so do not sample the counter here. */
  unsigned seen = 0;
  for (;;) {
    unsigned g = seen;
    for (int i = 0; i < ENGINE_SPIN_ITERS; i++) {
      g = atomic_load_explicit(&p->generation, memory_order_acquire);
      if (g != seen || atomic_load_explicit(&p->stop, memory_order_relaxed)) break;
      cpu_relax();
    }
    if (g == seen) {
      pthread_mutex_lock(&p->mu);
      while ((g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen &&
             !atomic_load(&p->stop))
        pthread_cond_wait(&p->start, &p->mu);
      pthread_mutex_unlock(&p->mu);
    }
    if (atomic_load(&p->stop)) return NULL;
    seen = g;
    work_chunks(p, index);
    if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
      pthread_mutex_lock(&p->mu);
      pthread_cond_signal(&p->done);
      pthread_mutex_unlock(&p->mu);
    }
  }
}

int engine_threadpool_create(int n_threads, struct engine_threadpool **ret_pool) {
  if (n_threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = n > 0 ? (int)n : 1;
    if (n_threads > ENGINE_MAX_THREADS) n_threads = ENGINE_MAX_THREADS;
  }
  if (n_threads > ENGINE_MAX_THREADS) return REALM_E_INVALID_ARGUMENT;
  struct engine_threadpool *p = calloc(1, sizeof *p);
  if (!p) return REALM_E_NOMEM;
  p->n_threads = n_threads;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->start, NULL);
  pthread_cond_init(&p->done, NULL);
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
  *ret_pool = p;
  return 0;
}

void engine_threadpool_destroy(struct engine_threadpool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->stop, 1);
  pthread_cond_broadcast(&p->start);
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i < p->n_threads && p->threads; i++) pthread_join(p->threads[i], NULL);
  pthread_cond_destroy(&p->start);
  pthread_cond_destroy(&p->done);
  pthread_mutex_destroy(&p->mu);
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
  pthread_mutex_lock(&p->mu);
  atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
  pthread_cond_broadcast(&p->start);
  pthread_mutex_unlock(&p->mu);
  work_chunks(p, 0);
  for (int i = 0; i < ENGINE_SPIN_ITERS; i++) {
    if (atomic_load_explicit(&p->pending, memory_order_acquire) == 0) return;
    cpu_relax();
  }
  pthread_mutex_lock(&p->mu);
  while (atomic_load_explicit(&p->pending, memory_order_acquire) != 0)
    pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}
