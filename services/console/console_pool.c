/* console_pool: bounded queue + worker threads with their own connections. See
 * console_pool.h. */
#include "console_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define THREADS_MAX 64
#define RECONNECT_MAX_MS 5000

struct console_pool {
    console_pool_options options;
    char name[32];
    char *dsn;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    void **queue; /* ring of queue_max */
    size_t head, count;
    bool stopping;
    int connected;
    pthread_t threads[THREADS_MAX];
    int started;
};

/* Waits up to ms or until stopping; true when stopping. lock held. */
static bool wait_or_stop(console_pool *pool, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    while (!pool->stopping)
        if (pthread_cond_timedwait(&pool->wake, &pool->lock, &until) == ETIMEDOUT)
            break;
    return pool->stopping;
}

static db *connect_until_stop(console_pool *pool)
{
    char application[64];
    snprintf(application, sizeof(application), "ess-console-%s", pool->name);
    db_options options = {.dsn = pool->dsn,
                          .application_name = application,
                          .statement_timeout_ms = pool->options.statement_timeout_ms};
    int64_t backoff = 200;
    for (int attempt = 1;; attempt++) {
        st_error err = {0};
        db *d = NULL;
        if (db_connect(&options, &d, &err) == ST_OK)
            return d;
        if (attempt == 1 || attempt % 10 == 0)
            log_event(LOG_WARN, "console.db_connect", "worker cannot reach PostgreSQL, retrying",
                      LOG_STR("pool", pool->name), LOG_ERR(&err));
        pthread_mutex_lock(&pool->lock);
        bool stopping = wait_or_stop(pool, backoff);
        pthread_mutex_unlock(&pool->lock);
        if (stopping)
            return NULL;
        backoff = backoff * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : backoff * 2;
    }
}

static void *worker_main(void *arg)
{
    console_pool *pool = arg;
    db *d = connect_until_stop(pool);
    if (d == NULL)
        return NULL;
    pthread_mutex_lock(&pool->lock);
    pool->connected++;
    for (;;) {
        while (pool->count == 0 && !pool->stopping)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stopping)
            break;
        void *job = pool->queue[pool->head];
        pool->head = (pool->head + 1) % pool->options.queue_max;
        pool->count--;
        pthread_mutex_unlock(&pool->lock);
        pool->options.run(job, d, pool->options.closure);
        pthread_mutex_lock(&pool->lock);
    }
    pool->connected--;
    pthread_mutex_unlock(&pool->lock);
    db_destroy(d);
    return NULL;
}

st_code console_pool_create(const console_pool_options *options, console_pool **ret_pool,
                            st_error *err)
{
    if (options == NULL || options->threads < 1 || options->threads > THREADS_MAX ||
        options->queue_max < 1 || options->dsn == NULL || options->run == NULL ||
        ret_pool == NULL)
        return st_fail(err, ST_INVALID, "console pool: invalid options");
    console_pool *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return st_fail(err, ST_NOMEM, "console pool: out of memory");
    pool->options = *options;
    snprintf(pool->name, sizeof(pool->name), "%s", options->name != NULL ? options->name : "pool");
    pool->dsn = strdup(options->dsn);
    pool->queue = calloc(options->queue_max, sizeof(void *));
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    if (pool->dsn == NULL || pool->queue == NULL) {
        console_pool_destroy(pool);
        return st_fail(err, ST_NOMEM, "console pool: out of memory");
    }
    for (int i = 0; i < options->threads; i++) {
        if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0) {
            console_pool_close(pool, NULL, NULL);
            console_pool_join(pool);
            console_pool_destroy(pool);
            return st_fail(err, ST_IO, "console pool: cannot start a worker thread");
        }
        pool->started++;
    }
    *ret_pool = pool;
    return ST_OK;
}

st_code console_pool_submit(console_pool *pool, void *job)
{
    st_code status = ST_OK;
    pthread_mutex_lock(&pool->lock);
    if (pool->stopping) {
        status = ST_UNAVAILABLE;
    } else if (pool->count == pool->options.queue_max) {
        status = ST_LIMIT;
    } else {
        pool->queue[(pool->head + pool->count) % pool->options.queue_max] = job;
        pool->count++;
        pthread_cond_signal(&pool->wake);
    }
    pthread_mutex_unlock(&pool->lock);
    return status;
}

int console_pool_connected(console_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    int connected = pool->connected;
    pthread_mutex_unlock(&pool->lock);
    return connected;
}

void console_pool_close(console_pool *pool, void (*unstarted)(void *job, void *closure),
                        void *closure)
{
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->wake);
    void **left = NULL;
    size_t left_count = pool->count;
    if (left_count > 0 && (left = calloc(left_count, sizeof(void *))) != NULL) {
        for (size_t i = 0; i < left_count; i++)
            left[i] = pool->queue[(pool->head + i) % pool->options.queue_max];
    }
    pool->count = 0;
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; left != NULL && i < left_count; i++)
        if (unstarted != NULL)
            unstarted(left[i], closure);
    free(left);
}

void console_pool_join(console_pool *pool)
{
    if (pool == NULL)
        return;
    for (int i = 0; i < pool->started; i++)
        pthread_join(pool->threads[i], NULL);
    pool->started = 0;
}

void console_pool_destroy(console_pool *pool)
{
    if (pool == NULL)
        return;
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    free(pool->queue);
    free(pool->dsn);
    free(pool);
}
