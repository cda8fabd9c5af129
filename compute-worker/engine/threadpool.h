/*
 * threadpool.h — persistent worker threads and a parallel-for over index ranges.
 *
 * The forward pass issues a few hundred parallel loops per step; creating threads per loop
 * would cost more than small matmuls. Workers live as long as the pool, spin on an atomic
 * generation counter after each job (a decode step's loops come microseconds apart, and its
 * next step a sampling round trip later), then sleep on a futex so an idle engine burns no
 * CPU after half a millisecond (threadpool.c).
 * The calling thread takes part in every job, so a pool of N threads has N-1 workers.
 * One job at a time: engine_threadpool_run() is not reentrant and must be called from one
 * thread.
 */
#ifndef REALM_ENGINE_THREADPOOL_H
#define REALM_ENGINE_THREADPOOL_H

#include <stdint.h>

struct engine_threadpool;

/* fn handles indices [begin, end); thread is 0..n_threads-1, for per-thread scratch. */
typedef void (*engine_task_fn)(void *ctx, int64_t begin, int64_t end, int thread);

/* N_THREADS <= 0 means the number of online CPUs. SPIN_US: how long a thread waits for the
 * next job (or the caller for the last worker) before it sleeps; <= 0 means
 * ENGINE_SPIN_US_DEFAULT, and the first 50 µs always spin. Returns 0,
 * REALM_E_INVALID_ARGUMENT (more than ENGINE_MAX_THREADS, SPIN_US above ENGINE_SPIN_US_MAX),
 * REALM_E_NOMEM or REALM_E_SYSTEM. */
int engine_threadpool_create(int n_threads, int spin_us, struct engine_threadpool **ret_pool);
void engine_threadpool_destroy(struct engine_threadpool *pool); /* accepts NULL */
int engine_threadpool_size(const struct engine_threadpool *pool);

/* Runs fn over [0, n) in chunks of CHUNK indices (the last one shorter), spread over all
 * threads, and returns when every chunk is done. */
void engine_threadpool_run(struct engine_threadpool *pool, int64_t n, int64_t chunk,
                           engine_task_fn fn, void *ctx);

#define ENGINE_MAX_THREADS 256
#define ENGINE_SPIN_US_DEFAULT 500
#define ENGINE_SPIN_US_MAX 100000

#endif /* REALM_ENGINE_THREADPOOL_H */
