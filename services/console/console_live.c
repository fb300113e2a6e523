/* console_live: the ordered consumer feeding the event streams. See console_live.h. */
#include "console_live.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <nats/nats.h>

#include "console_cases.h"
#include "log.h"

#define SUBJECTS "ess.incident.>"
#define STREAM "ESS"
#define EVENT_MAX (1024 * 1024)
#define RETRY_MS 500

struct console_live {
    console_app *app;
    console_live_options options;
    char *nats_url, *pg_dsn;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
    atomic_bool subscribed;
    natsConnection *conn;
    jsCtx *js;
    natsSubscription *sub;
    db *db; /* used by the delivery thread only */
    int failures;
};

st_code console_live_case_of(const char *data, size_t len, char *out)
{
    if (data == NULL || len == 0 || len > EVENT_MAX)
        return ST_INVALID;
    cJSON *root = cJSON_ParseWithLength(data, len);
    const cJSON *number = cJSON_GetObjectItemCaseSensitive(root, "case_number");
    st_code status = ST_INVALID;
    if (cJSON_IsString(number) && console_case_number_valid(number->valuestring)) {
        memcpy(out, number->valuestring, strlen(number->valuestring) + 1);
        status = ST_OK;
    }
    cJSON_Delete(root);
    return status;
}

/* The delivery thread (one per subscription in nats.c): events arrive one at a time, in
 * stream order. */
static void on_event(natsConnection *conn, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)conn;
    (void)sub;
    console_live *live = closure;
    console_app *app = live->app;
    char case_number[CONSOLE_CASE_MAX];
    const char *data = natsMsg_GetData(msg);
    int len = natsMsg_GetDataLength(msg);
    if (data == NULL || len <= 0 ||
        console_live_case_of(data, (size_t)len, case_number) != ST_OK) {
        met_counter_add(app->metrics.live_errors, 1);
        natsMsg_Destroy(msg);
        return;
    }
    natsMsg_Destroy(msg);
    met_counter_add(app->metrics.live_events, 1);
    st_error err = {0};
    if (live->db == NULL) {
        db_options options = {.dsn = live->pg_dsn,
                              .application_name = "ess-console-live",
                              .statement_timeout_ms = live->options.statement_timeout_ms};
        if (db_connect(&options, &live->db, &err) != ST_OK) {
            live->db = NULL;
            met_counter_add(app->metrics.live_errors, 1);
            if (live->failures++ % 50 == 0)
                log_event(LOG_WARN, "console.live_db", "cannot read a case for the live stream",
                          LOG_ERR(&err));
            return;
        }
    }
    char *json = NULL;
    char province[CONSOLE_AREA_MAX] = "";
    st_code status = console_case_for_event(live->db, app, case_number, &json, province, &err);
    if (status == ST_NOT_FOUND) {
        return; /* not (yet) in this database: nothing to show */
    }
    if (status != ST_OK) {
        met_counter_add(app->metrics.live_errors, 1);
        if (live->failures++ % 50 == 0)
            log_event(LOG_WARN, "console.live_db", "cannot read a case for the live stream",
                      LOG_ERR(&err));
        return;
    }
    live->failures = 0;
    live->options.post(live->options.closure, case_number, province, json);
}

/* Waits up to ms or until stopping; true when stopping. */
static bool wait_or_stop(console_live *live, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&live->lock);
    while (!live->stopping)
        if (pthread_cond_timedwait(&live->wake, &live->lock, &until) == ETIMEDOUT)
            break;
    bool stopping = live->stopping;
    pthread_mutex_unlock(&live->lock);
    return stopping;
}

static natsStatus connect_nats(console_live *live)
{
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(opts, live->nats_url);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, "ess-console-live");
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, 500);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(opts, 15000);
    if (s == NATS_OK)
        s = natsConnection_Connect(&live->conn, opts);
    if (s == NATS_OK)
        s = natsConnection_JetStream(&live->js, live->conn, NULL);
    natsOptions_Destroy(opts);
    return s;
}

static void *live_main(void *arg)
{
    console_live *live = arg;
    int attempt = 0;
    /* Connect (the first connection may fail: NATS not up yet), then subscribe (may fail
     * until the runtime has ensured the ESS stream). */
    while (!wait_or_stop(live, attempt == 0 ? 0 : RETRY_MS)) {
        attempt++;
        natsStatus s = NATS_OK;
        if (live->conn == NULL) {
            s = connect_nats(live);
            if (s != NATS_OK) {
                jsCtx_Destroy(live->js);
                live->js = NULL;
                natsConnection_Destroy(live->conn);
                live->conn = NULL;
                if (attempt == 1 || attempt % 20 == 0)
                    log_event(LOG_WARN, "console.live_connect",
                              "cannot connect to NATS for the live stream yet, retrying",
                              LOG_STR("reason", natsStatus_GetText(s)));
                continue;
            }
        }
        jsSubOptions sub_opts;
        jsSubOptions_Init(&sub_opts);
        sub_opts.Stream = STREAM;
        sub_opts.Ordered = true;
        sub_opts.Config.DeliverPolicy = js_DeliverNew;
        jsErrCode jerr = 0;
        s = js_Subscribe(&live->sub, live->js, SUBJECTS, on_event, live, NULL, &sub_opts, &jerr);
        if (s != NATS_OK) {
            live->sub = NULL;
            if (attempt == 1 || attempt % 20 == 0)
                log_event(LOG_WARN, "console.live_subscribe",
                          "cannot subscribe to the ESS stream yet, retrying",
                          LOG_STR("reason", natsStatus_GetText(s)), LOG_INT("js", jerr));
            continue;
        }
        atomic_store(&live->subscribed, true);
        log_event(LOG_INFO, "console.live", "following the ESS stream (ordered consumer)");
        break;
    }
    /* The subscription runs on nats.c's threads until stop. */
    while (!wait_or_stop(live, 60000))
        ;
    return NULL;
}

st_code console_live_start(console_app *app, const console_live_options *options,
                           console_live **ret_live, st_error *err)
{
    console_live *live = calloc(1, sizeof(*live));
    if (live == NULL)
        return st_fail(err, ST_NOMEM, "live: out of memory");
    live->app = app;
    live->options = *options;
    live->nats_url = strdup(options->nats_url);
    live->pg_dsn = strdup(options->pg_dsn);
    pthread_mutex_init(&live->lock, NULL);
    pthread_cond_init(&live->wake, NULL);
    if (live->nats_url == NULL || live->pg_dsn == NULL) {
        console_live_stop(live);
        return st_fail(err, ST_NOMEM, "live: out of memory");
    }
    if (pthread_create(&live->thread, NULL, live_main, live) != 0) {
        console_live_stop(live);
        return st_fail(err, ST_IO, "live: cannot start its thread");
    }
    live->started = true;
    *ret_live = live;
    return ST_OK;
}

bool console_live_ready(console_live *live)
{
    if (live == NULL || !atomic_load(&live->subscribed) || live->conn == NULL)
        return false;
    return natsConnection_Status(live->conn) == NATS_CONN_STATUS_CONNECTED;
}

void console_live_stop(console_live *live)
{
    if (live == NULL)
        return;
    pthread_mutex_lock(&live->lock);
    live->stopping = true;
    pthread_cond_broadcast(&live->wake);
    pthread_mutex_unlock(&live->lock);
    if (live->started)
        pthread_join(live->thread, NULL);
    if (live->sub != NULL) {
        /* Drain: no new events, the one in hand finishes, then the delivery thread is done
         * with live->db. */
        if (natsSubscription_Drain(live->sub) == NATS_OK)
            natsSubscription_WaitForDrainCompletion(live->sub, 5000);
        natsSubscription_Destroy(live->sub);
    }
    jsCtx_Destroy(live->js);
    if (live->conn != NULL) {
        natsConnection_Close(live->conn);
        natsConnection_Destroy(live->conn);
    }
    db_destroy(live->db);
    pthread_mutex_destroy(&live->lock);
    pthread_cond_destroy(&live->wake);
    free(live->nats_url);
    free(live->pg_dsn);
    free(live);
}
