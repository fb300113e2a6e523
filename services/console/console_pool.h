/* console_pool: worker threads, each with a PostgreSQL connection of its own, fed from a
 * bounded queue. The event loop submits work and never waits for it; a worker runs one job at
 * a time and hands the result back itself (console_server.c posts it to the loop).
 *
 * Why threads with their own connections, not libpq's asynchronous API on the loop: the
 * console's work is a few short queries per request plus scrypt for logins (tens of ms of
 * CPU), and exports that must wait for a slow client between pages; a bounded pool keeps all
 * of that off the loop with plain blocking code (libs/db), and bounds the connections and the
 * CPU the console takes from PostgreSQL. */
#ifndef CONSOLE_POOL_H
#define CONSOLE_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "db.h"
#include "status.h"

typedef struct console_pool console_pool;

/* Runs one job on a worker thread with its connection (which may be broken: libs/db reconnects
 * on the next call). */
typedef void (*console_pool_run_fn)(void *job, db *d, void *closure);

typedef struct console_pool_options {
    const char *name;              /* "query", "export": application_name ess-console-<name> */
    int threads;                   /* >= 1 */
    size_t queue_max;              /* jobs waiting at most */
    const char *dsn;
    int64_t statement_timeout_ms;
    console_pool_run_fn run;
    void *closure;
} console_pool_options;

/* Starts the workers (they connect in the background, retrying). Caller owns *ret_pool. */
st_code console_pool_create(const console_pool_options *options, console_pool **ret_pool,
                            st_error *err);

/* Queues job. ST_LIMIT when the queue is full, ST_UNAVAILABLE once stopping. Thread-safe. */
st_code console_pool_submit(console_pool *pool, void *job);

/* Workers connected to PostgreSQL now (readiness). Thread-safe. */
int console_pool_connected(console_pool *pool);

/* Stops taking jobs and hands every queued job that never started to unstarted (on the
 * calling thread); workers finish the job in hand. Does not wait for them. */
void console_pool_close(console_pool *pool, void (*unstarted)(void *job, void *closure),
                        void *closure);
/* Waits for every worker to end (after console_pool_close). */
void console_pool_join(console_pool *pool);
void console_pool_destroy(console_pool *pool); /* accepts NULL; after stop */

#endif
