/* bus: the JetStream layer (nats.c 3.4 underneath). See bus.h for the contract and
 * proto/README.md for the streams, consumers and dead-letter layout.
 *
 * Life-cycle safety. nats.c calls us back on its own threads (connection events, async
 * publish acks) and may do so after we destroyed the object the callback is about. So the
 * closures we hand to nats.c are ids, never pointers: a callback looks the bus up in the
 * process-wide list of live buses, and an ack looks its batch up in the bus's map of live
 * batches, both under one lock. A callback for a destroyed bus or batch finds nothing and
 * only frees the message. */
#include "bus.h"
#include "bus_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DEFAULT_RECONNECT_WAIT_MS 500
#define DEFAULT_REQUEST_TIMEOUT_MS 5000
#define DEFAULT_MAX_PENDING_ACKS 4096
#define TIMEOUT_MAX_MS (24LL * 60 * 60 * 1000) /* bound on every caller-given wait */
#define URLS_MAX 16
#define URLS_TEXT_MAX 4096
#define FETCH_BATCH_MAX 4096
#define PING_INTERVAL_MS 15000 /* notice a silently dead server within ~45 s, not 4 min */
#define DATA_MAX ((size_t)INT32_MAX)
#define MSG_ID_HEADER "Nats-Msg-Id"
/* A dead-letter publish that failed is retried by redelivering the message after this. */
#define DLQ_RETRY_DELAY_MS 2000

/* ---- small utilities --------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t ms_to_ns(int64_t ms)
{
    return ms * 1000000;
}

static void cond_init_monotonic(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

static void cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t deadline_ms)
{
    struct timespec until = {.tv_sec = deadline_ms / 1000,
                             .tv_nsec = (long)(deadline_ms % 1000) * 1000000};
    pthread_cond_timedwait(cond, lock, &until);
}

static int64_t or_default(int64_t value, int64_t fallback)
{
    return value > 0 ? value : fallback;
}

/* A message id goes into a header line: bounded, printable, no separators. */
static bool msg_id_valid(const char *msg_id)
{
    size_t len = strnlen(msg_id, BUS_MSG_ID_MAX);
    if (len >= BUS_MSG_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)msg_id[i] < 0x20 || msg_id[i] == 0x7f)
            return false;
    return true;
}

/* Header values must not break the header block: control characters become spaces. */
static void header_safe_copy(char *out, size_t out_size, const char *text)
{
    size_t len = strnlen(text, out_size - 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        out[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    out[len] = '\0';
}

static bool connection_lost(natsStatus s)
{
    return s == NATS_CONNECTION_CLOSED || s == NATS_CONNECTION_DISCONNECTED ||
           s == NATS_NOT_YET_CONNECTED || s == NATS_NO_SERVER || s == NATS_IO_ERROR ||
           s == NATS_STALE_CONNECTION || s == NATS_CONNECTION_AUTH_FAILED ||
           s == NATS_NO_RESPONDERS || s == NATS_DRAINING;
}

/* Fills err for a failed nats.c call. Texts are nats.c's generic status texts: never the
 * subject (it may carry a LINE user id) nor the server URL (it may carry credentials). */
static st_code nats_failure(st_error *err, natsStatus s, jsErrCode jerr, const char *what)
{
    st_code code;
    if (s == NATS_TIMEOUT)
        code = ST_TIMEOUT;
    else if (s == NATS_MAX_PAYLOAD || jerr == JSStreamMessageExceedsMaximumErr)
        code = ST_LIMIT;
    else if (s == NATS_NO_MEMORY)
        code = ST_NOMEM;
    else if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr || jerr == JSConsumerNotFoundErr)
        code = ST_NOT_FOUND;
    else if (connection_lost(s) || jerr == JSNotEnabledErr || jerr == JSNotEnabledForAccountErr ||
             jerr == JSStreamStoreFailedErr || jerr == JSInsufficientResourcesErr ||
             jerr == JSStorageResourcesExceededErr)
        code = ST_UNAVAILABLE;
    else
        code = ST_INTERNAL;
    if (s == NATS_NO_RESPONDERS)
        st_fail(err, code,
                "%s: no JetStream stream answered (no stream stores the subject, or "
                "JetStream is down)",
                what);
    else
        st_fail(err, code, "%s: %s", what, natsStatus_GetText(s));
    if (jerr != 0)
        st_set_cause(err, "nats %d js %d", (int)s, (int)jerr);
    else
        st_set_cause(err, "nats %d", (int)s);
    return code;
}

/* Replaces the code of an already-filled err (same message). */
static st_code recode(st_error *err, st_code code)
{
    if (err != NULL)
        err->code = code;
    return code;
}

/* For management calls the server's own description helps the operator ("subjects overlap
 * with an existing stream"); it names streams and subject patterns, never message data. A
 * refusal the server explains is ST_CONFLICT unless the code says more. */
static st_code nats_api_failure(st_error *err, natsStatus s, jsErrCode jerr, const char *what,
                                const char *name)
{
    st_code code = nats_failure(err, s, jerr, what);
    const char *detail = natsStatus_GetText(s);
    const char *refused = "";
    if (s == NATS_ERR && jerr != 0) {
        refused = "server refused: ";
        natsStatus ignored;
        const char *server_text = nats_GetLastError(&ignored);
        if (server_text != NULL && server_text[0] == '(') { /* drop "(jsm.c:1033): " */
            const char *end = strstr(server_text, "): ");
            server_text = end != NULL ? end + 3 : server_text;
        }
        if (server_text != NULL && server_text[0] != '\0')
            detail = server_text;
        if (code == ST_INTERNAL)
            code = ST_CONFLICT;
    } else if (s == NATS_NO_RESPONDERS) {
        detail = "JetStream did not answer (not enabled, or not ready yet)";
    }
    st_fail(err, code, "%s '%.64s': %s%.120s", what, name, refused, detail);
    if (jerr != 0)
        st_set_cause(err, "nats %d js %d", (int)s, (int)jerr);
    else
        st_set_cause(err, "nats %d", (int)s);
    return code;
}

/* ---- id_map: uint64 → uint64, open addressing ------------------------------------------------
 * Keys are never 0 (0 marks a free slot). Used for natsMsg* → batch id and batch id → batch*. */

typedef struct id_map {
    uint64_t *keys;
    uint64_t *values;
    size_t capacity; /* power of two, or 0 */
    size_t count;
} id_map;

static size_t id_map_home(uint64_t key, size_t capacity)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & (capacity - 1);
}

static void id_map_done(id_map *map)
{
    free(map->keys);
    free(map->values);
    memset(map, 0, sizeof(*map));
}

static void id_map_insert_fresh(id_map *map, uint64_t key, uint64_t value)
{
    size_t mask = map->capacity - 1;
    size_t slot = id_map_home(key, map->capacity);
    while (map->keys[slot] != 0 && map->keys[slot] != key)
        slot = (slot + 1) & mask;
    if (map->keys[slot] == 0)
        map->count++;
    map->keys[slot] = key;
    map->values[slot] = value;
}

static st_code id_map_put(id_map *map, uint64_t key, uint64_t value)
{
    if ((map->count + 1) * 2 > map->capacity) { /* load ≤ 1/2 keeps probes short */
        size_t capacity = map->capacity != 0 ? map->capacity * 2 : 64;
        id_map grown = {.keys = calloc(capacity, sizeof(uint64_t)),
                        .values = calloc(capacity, sizeof(uint64_t)),
                        .capacity = capacity};
        if (grown.keys == NULL || grown.values == NULL) {
            id_map_done(&grown);
            return ST_NOMEM;
        }
        for (size_t i = 0; i < map->capacity; i++)
            if (map->keys[i] != 0)
                id_map_insert_fresh(&grown, map->keys[i], map->values[i]);
        id_map_done(map);
        *map = grown;
    }
    id_map_insert_fresh(map, key, value);
    return ST_OK;
}

static bool id_map_find(const id_map *map, uint64_t key, size_t *ret_slot)
{
    if (map->capacity == 0)
        return false;
    size_t mask = map->capacity - 1;
    for (size_t slot = id_map_home(key, map->capacity); map->keys[slot] != 0;
         slot = (slot + 1) & mask) {
        if (map->keys[slot] == key) {
            *ret_slot = slot;
            return true;
        }
    }
    return false;
}

static bool id_map_get(const id_map *map, uint64_t key, uint64_t *ret_value)
{
    size_t slot;
    if (!id_map_find(map, key, &slot))
        return false;
    *ret_value = map->values[slot];
    return true;
}

/* Removes key (backward-shift deletion: no tombstones). */
static bool id_map_take(id_map *map, uint64_t key, uint64_t *ret_value)
{
    size_t hole;
    if (!id_map_find(map, key, &hole))
        return false;
    if (ret_value != NULL)
        *ret_value = map->values[hole];
    size_t mask = map->capacity - 1;
    for (size_t next = (hole + 1) & mask; map->keys[next] != 0; next = (next + 1) & mask) {
        size_t home = id_map_home(map->keys[next], map->capacity);
        bool movable =
            (hole <= next) ? (home <= hole || home > next) : (home <= hole && home > next);
        if (movable) {
            map->keys[hole] = map->keys[next];
            map->values[hole] = map->values[next];
            hole = next;
        }
    }
    map->keys[hole] = 0;
    map->values[hole] = 0;
    map->count--;
    return true;
}

/* ---- the bus ----------------------------------------------------------------------------- */

enum { LINK_UNKNOWN = -1, LINK_DOWN = 0, LINK_UP = 1 };

struct bus {
    uint64_t id;
    natsConnection *conn;
    jsCtx *js;
    int64_t request_timeout_ms;
    atomic_int link; /* LINK_*: written by connection callbacks, read by bus_connected */

    /* Everything below is guarded by g_lock. */
    bus *next_live;
    id_map msg_batches;  /* natsMsg* in flight → batch id */
    id_map live_batches; /* batch id → bus_batch* */
    uint64_t next_batch_id;
    bus_batch *armed; /* batches with bus_batch_on_done, by deadline */
    pthread_cond_t timer_wake;
    pthread_t timer_thread;
    bool timer_running;
    bool timer_stop;
};

struct bus_batch {
    bus *owner;
    uint64_t id;
    pthread_cond_t settled; /* signalled when pending reaches 0 */
    /* Guarded by g_lock. */
    size_t pending, stored, duplicates, failed;
    natsStatus first_failure;
    jsErrCode first_failure_js;
    bool armed, fired;
    int64_t deadline_ms;
    bus_batch_done_fn done_fn;
    void *done_closure;
    bus_batch *armed_next;
};

/* One lock for the live-bus list and every bus's batch bookkeeping: the critical sections are
 * a few map operations, and a single lock has no ordering to get wrong. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static bus *g_live_buses;
static uint64_t g_next_bus_id = 1;

static void *id_closure(uint64_t id)
{
    return (void *)(uintptr_t)id;
}

/* g_lock held. */
static bus *live_bus(void *closure)
{
    uint64_t id = (uint64_t)(uintptr_t)closure;
    for (bus *b = g_live_buses; b != NULL; b = b->next_live)
        if (b->id == id)
            return b;
    return NULL;
}

static void set_link(void *closure, int state)
{
    pthread_mutex_lock(&g_lock);
    bus *b = live_bus(closure);
    if (b != NULL)
        atomic_store(&b->link, state);
    pthread_mutex_unlock(&g_lock);
}

static void on_link_up(natsConnection *conn, void *closure)
{
    (void)conn;
    set_link(closure, LINK_UP);
}

static void on_link_down(natsConnection *conn, void *closure)
{
    (void)conn;
    set_link(closure, LINK_DOWN);
}

bool bus_connected(bus *b)
{
    return b != NULL && atomic_load(&b->link) == LINK_UP;
}

/* ---- batch settlement (g_lock held unless said otherwise) --------------------------------- */

static st_code batch_outcome(const bus_batch *batch, bus_batch_result *ret_result)
{
    ret_result->stored = batch->stored;
    ret_result->duplicates = batch->duplicates;
    ret_result->failed = batch->failed + batch->pending;
    if (batch->pending > 0)
        return ST_TIMEOUT;
    if (batch->failed > 0)
        return ST_UNAVAILABLE;
    return ST_OK;
}

static void unarm(bus *b, bus_batch *batch)
{
    for (bus_batch **link = &b->armed; *link != NULL; link = &(*link)->armed_next) {
        if (*link == batch) {
            *link = batch->armed_next;
            break;
        }
    }
    batch->armed_next = NULL;
}

typedef struct pending_call {
    bus_batch_done_fn fn;
    bus_batch *batch;
    void *closure;
    st_code status;
    bus_batch_result result;
} pending_call;

/* Claims the batch's one callback; the caller runs it after releasing g_lock. */
static void claim_callback(bus *b, bus_batch *batch, pending_call *call)
{
    unarm(b, batch);
    batch->fired = true;
    call->fn = batch->done_fn;
    call->batch = batch;
    call->closure = batch->done_closure;
    call->status = batch_outcome(batch, &call->result);
}

/* g_lock NOT held. */
static void run_callback(const pending_call *call)
{
    if (call->fn != NULL)
        call->fn(call->batch, call->status, &call->result, call->closure);
}

/* nats.c's context-wide async ack handler; runs on the context's reply-subscription thread.
 * We own msg (nats.c hands it back) and must destroy it. */
static void on_publish_ack(jsCtx *js, natsMsg *msg, jsPubAck *ack, jsPubAckErr *ack_err,
                           void *closure)
{
    (void)js;
    pending_call call = {0};

    pthread_mutex_lock(&g_lock);
    bus *b = live_bus(closure);
    uint64_t batch_id = 0, batch_address = 0;
    if (b != NULL && id_map_take(&b->msg_batches, (uint64_t)(uintptr_t)msg, &batch_id) &&
        id_map_get(&b->live_batches, batch_id, &batch_address)) {
        bus_batch *batch = (bus_batch *)(uintptr_t)batch_address;
        if (ack != NULL && ack_err == NULL) {
            if (ack->Duplicate)
                batch->duplicates++;
            else
                batch->stored++;
        } else {
            if (batch->failed == 0) {
                batch->first_failure = ack_err != NULL ? ack_err->Err : NATS_ERR;
                batch->first_failure_js = ack_err != NULL ? ack_err->ErrCode : 0;
            }
            batch->failed++;
        }
        if (batch->pending > 0)
            batch->pending--;
        if (batch->pending == 0) {
            pthread_cond_broadcast(&batch->settled);
            if (batch->armed && !batch->fired)
                claim_callback(b, batch, &call);
        }
    }
    pthread_mutex_unlock(&g_lock);

    natsMsg_Destroy(msg);
    run_callback(&call);
}

/* Fires bus_batch_on_done callbacks whose deadline passed (or that were armed already
 * settled). One thread per bus, started by the first bus_batch_on_done. */
static void *timer_main(void *arg)
{
    bus *b = arg;
    pthread_mutex_lock(&g_lock);
    while (!b->timer_stop) {
        bus_batch *head = b->armed;
        if (head == NULL) {
            pthread_cond_wait(&b->timer_wake, &g_lock);
            continue;
        }
        if (head->deadline_ms > now_ms()) {
            cond_wait_until(&b->timer_wake, &g_lock, head->deadline_ms);
            continue;
        }
        pending_call call = {0};
        claim_callback(b, head, &call);
        pthread_mutex_unlock(&g_lock);
        run_callback(&call);
        pthread_mutex_lock(&g_lock);
    }
    pthread_mutex_unlock(&g_lock);
    return NULL;
}

/* ---- connect / destroy ------------------------------------------------------------------- */

static st_code set_servers(natsOptions *opts, const char *url, st_error *err)
{
    char text[URLS_TEXT_MAX];
    const char *servers[URLS_MAX];
    int count = 0;
    size_t len = strnlen(url, sizeof(text));
    if (len == 0 || len >= sizeof(text))
        return st_fail(err, ST_INVALID, "bus: url is empty or longer than %zu bytes",
                       sizeof(text) - 1);
    memcpy(text, url, len + 1);
    char *cursor = text;
    while (cursor != NULL) {
        char *comma = strchr(cursor, ',');
        if (comma != NULL)
            *comma = '\0';
        while (*cursor == ' ')
            cursor++;
        size_t item_len = strlen(cursor);
        while (item_len > 0 && cursor[item_len - 1] == ' ')
            cursor[--item_len] = '\0';
        if (item_len > 0) {
            if (count == URLS_MAX)
                return st_fail(err, ST_LIMIT, "bus: more than %d server urls", URLS_MAX);
            servers[count++] = cursor;
        }
        cursor = comma != NULL ? comma + 1 : NULL;
    }
    if (count == 0)
        return st_fail(err, ST_INVALID, "bus: url lists no server");
    natsStatus s = natsOptions_SetServers(opts, servers, count);
    if (s != NATS_OK)
        return st_fail(err, ST_INVALID, "bus: invalid server url (%s)", natsStatus_GetText(s));
    return ST_OK;
}

st_code bus_connect(const bus_options *options, bus **ret_bus, st_error *err)
{
    natsOptions *opts = NULL;
    bus *b = NULL;
    bool listed = false;
    st_code code = ST_OK;
    natsStatus s;

    if (options == NULL || options->url == NULL || ret_bus == NULL) {
        code = st_fail(err, ST_INVALID, "bus: no options or no url");
        goto cleanup;
    }
    int64_t connect_timeout = or_default(options->connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
    int64_t reconnect_wait = or_default(options->reconnect_wait_ms, DEFAULT_RECONNECT_WAIT_MS);
    int64_t request_timeout = or_default(options->request_timeout_ms, DEFAULT_REQUEST_TIMEOUT_MS);
    int64_t max_pending = or_default(options->max_pending_acks, DEFAULT_MAX_PENDING_ACKS);
    if (connect_timeout > TIMEOUT_MAX_MS || reconnect_wait > TIMEOUT_MAX_MS ||
        request_timeout > TIMEOUT_MAX_MS || max_pending > 1000000) {
        code = st_fail(err, ST_INVALID,
                       "bus: a timeout is longer than a day or "
                       "max_pending_acks is above 1000000");
        goto cleanup;
    }
    if (options->client_name != NULL && strnlen(options->client_name, 256) >= 256) {
        code = st_fail(err, ST_INVALID, "bus: client_name is longer than 255 bytes");
        goto cleanup;
    }

    b = calloc(1, sizeof(*b));
    if (b == NULL) {
        code = st_fail(err, ST_NOMEM, "bus: out of memory");
        goto cleanup;
    }
    b->request_timeout_ms = request_timeout;
    b->next_batch_id = 1;
    atomic_init(&b->link, LINK_UNKNOWN);
    cond_init_monotonic(&b->timer_wake);

    pthread_mutex_lock(&g_lock);
    b->id = g_next_bus_id++;
    b->next_live = g_live_buses;
    g_live_buses = b;
    pthread_mutex_unlock(&g_lock);
    listed = true;

    void *closure = id_closure(b->id);
    s = natsOptions_Create(&opts);
    if (s != NATS_OK) {
        code = nats_failure(err, s, 0, "bus: nats options");
        goto cleanup;
    }
    code = set_servers(opts, options->url, err);
    if (code != ST_OK)
        goto cleanup;
    s = NATS_OK;
    if (options->client_name != NULL && options->client_name[0] != '\0')
        s = natsOptions_SetName(opts, options->client_name);
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(opts, connect_timeout);
    if (s == NATS_OK)
        s = natsOptions_SetAllowReconnect(opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1); /* forever: services stay up, not ready */
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(opts, reconnect_wait);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(opts, PING_INTERVAL_MS);
    if (s == NATS_OK) /* a sync publish fails at once on disconnect instead of timing out */
        s = natsOptions_SetFailRequestsOnDisconnect(opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, on_link_down, closure);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(opts, on_link_up, closure);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, on_link_down, closure);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(opts, options->retry_on_failed_connect, on_link_up,
                                                closure);
    if (s != NATS_OK) {
        code = nats_failure(err, s, 0, "bus: nats options");
        goto cleanup;
    }

    s = natsConnection_Connect(&b->conn, opts);
    if (s == NATS_OK) {
        int unknown = LINK_UNKNOWN; /* a callback may already have said otherwise */
        atomic_compare_exchange_strong(&b->link, &unknown, LINK_UP);
    } else if (s == NATS_NOT_YET_CONNECTED && options->retry_on_failed_connect) {
        int unknown = LINK_UNKNOWN;
        atomic_compare_exchange_strong(&b->link, &unknown, LINK_DOWN);
    } else {
        b->conn = NULL;
        code = nats_failure(err, s, 0, "bus: cannot connect to NATS");
        if (code != ST_NOMEM && s != NATS_INVALID_ARG)
            code = recode(err, ST_UNAVAILABLE);
        goto cleanup;
    }

    jsOptions js_opts;
    jsOptions_Init(&js_opts);
    js_opts.Wait = request_timeout;
    js_opts.PublishAsync.MaxPending = max_pending;
    js_opts.PublishAsync.StallWait = request_timeout;
    js_opts.PublishAsync.AckHandler = on_publish_ack;
    js_opts.PublishAsync.AckHandlerClosure = closure;
    s = natsConnection_JetStream(&b->js, b->conn, &js_opts);
    if (s != NATS_OK) {
        b->js = NULL;
        code = nats_failure(err, s, 0, "bus: JetStream context");
        goto cleanup;
    }
    *ret_bus = b;
    b = NULL;

cleanup:
    natsOptions_Destroy(opts);
    if (b != NULL) {
        if (!listed) {
            pthread_cond_destroy(&b->timer_wake);
            free(b);
        } else {
            bus_destroy(b);
        }
    }
    return code;
}

void bus_destroy(bus *b)
{
    if (b == NULL)
        return;
    if (b->js != NULL) {
        jsPubOptions flush;
        jsPubOptions_Init(&flush);
        flush.MaxWait = b->request_timeout_ms;
        js_PublishAsyncComplete(b->js, &flush); /* best effort: bounded */
    }

    pthread_mutex_lock(&g_lock);
    for (bus **link = &g_live_buses; *link != NULL; link = &(*link)->next_live) {
        if (*link == b) {
            *link = b->next_live;
            break;
        }
    }
    b->timer_stop = true;
    pthread_cond_broadcast(&b->timer_wake);
    bool join_timer = b->timer_running;
    pthread_mutex_unlock(&g_lock);
    if (join_timer)
        pthread_join(b->timer_thread, NULL);

    /* From here no callback can reach b: it is no longer listed. */
    jsCtx_Destroy(b->js);
    if (b->conn != NULL) {
        natsConnection_Close(b->conn);
        natsConnection_Destroy(b->conn);
    }
    id_map_done(&b->msg_batches);
    id_map_done(&b->live_batches);
    pthread_cond_destroy(&b->timer_wake);
    free(b);
}

/* ---- streams and consumers --------------------------------------------------------------- */

static st_code require_bus(bus *b, st_error *err)
{
    if (b == NULL || b->js == NULL)
        return st_fail(err, ST_INVALID, "bus: no bus");
    if (!bus_connected(b))
        return st_fail(err, ST_UNAVAILABLE, "bus: not connected to NATS");
    return ST_OK;
}

static bool stream_differs(const jsStreamConfig *have, const jsStreamConfig *want)
{
    if (have->SubjectsLen != want->SubjectsLen)
        return true;
    for (int i = 0; i < want->SubjectsLen; i++) {
        bool found = false;
        for (int k = 0; k < have->SubjectsLen && !found; k++)
            found = have->Subjects[k] != NULL && strcmp(have->Subjects[k], want->Subjects[i]) == 0;
        if (!found)
            return true;
    }
    return have->MaxAge != want->MaxAge || have->Duplicates != want->Duplicates ||
           have->MaxBytes != want->MaxBytes || have->MaxMsgSize != want->MaxMsgSize ||
           have->Replicas != want->Replicas || have->Storage != want->Storage ||
           have->Retention != want->Retention || have->Discard != want->Discard;
}

st_code bus_ensure_stream(bus *b, const bus_stream_def *stream, st_error *err)
{
    jsStreamInfo *info = NULL;
    jsErrCode jerr = 0;
    st_code code = require_bus(b, err);
    if (code != ST_OK)
        return code;
    if (stream == NULL || !bus_name_valid(stream->name) || stream->subject_count == 0 ||
        stream->subject_count > BUS_SUBJECTS_MAX || stream->max_msg_size > INT32_MAX ||
        stream->replicas < 0)
        return st_fail(err, ST_INVALID, "bus: invalid stream definition");

    const char *subjects[BUS_SUBJECTS_MAX];
    for (size_t i = 0; i < stream->subject_count; i++) {
        if (!bus_subject_valid(stream->subjects[i], true))
            return st_fail(err, ST_INVALID, "bus: stream '%s': invalid subject #%zu", stream->name,
                           i + 1);
        subjects[i] = stream->subjects[i];
    }
    jsStreamConfig want;
    jsStreamConfig_Init(&want);
    want.Name = stream->name;
    want.Subjects = subjects;
    want.SubjectsLen = (int)stream->subject_count;
    want.Retention = js_LimitsPolicy;
    want.Storage = js_FileStorage;
    want.Discard = js_DiscardOld;
    want.MaxAge = ms_to_ns(stream->max_age_ms);
    want.Duplicates = ms_to_ns(stream->duplicate_window_ms);
    want.MaxBytes = stream->max_bytes > 0 ? stream->max_bytes : -1;
    want.MaxMsgSize = stream->max_msg_size > 0 ? (int32_t)stream->max_msg_size : -1;
    want.Replicas = stream->replicas > 0 ? stream->replicas : 1;

    natsStatus s = js_GetStreamInfo(&info, b->js, stream->name, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        jerr = 0;
        s = js_AddStream(NULL, b->js, &want, NULL, &jerr);
        if (s != NATS_OK)
            code = nats_api_failure(err, s, jerr, "bus: create stream", stream->name);
    } else if (s != NATS_OK) {
        code = nats_api_failure(err, s, jerr, "bus: stream info", stream->name);
    } else {
        /* A zero duplicate window means "server default": do not fight the server over it. */
        if (want.Duplicates == 0)
            want.Duplicates = info->Config->Duplicates;
        if (stream_differs(info->Config, &want)) {
            jerr = 0;
            s = js_UpdateStream(NULL, b->js, &want, NULL, &jerr);
            if (s != NATS_OK)
                code = nats_api_failure(err, s, jerr, "bus: update stream", stream->name);
        }
    }
    jsStreamInfo_Destroy(info);
    return code;
}

/* Why MaxDeliver is unlimited on the server: JetStream stops delivering a message once it
 * reached MaxDeliver, whatever happens to its last delivery. If the dead-letter publish of
 * that last delivery failed, or the service crashed while handling it, the message would be
 * dropped silently. So the bus enforces max_deliver itself (bus_consumer_poll): the handler
 * runs on deliveries 1..max_deliver, the last failure is dead-lettered, and any later
 * delivery (after a failed dead-letter or a crash) is dead-lettered without the handler. The
 * declared limit is shown in the consumer's description. */
static void consumer_config(const bus_consumer_def *def, char *description, size_t description_size,
                            jsConsumerConfig *ret_config)
{
    jsConsumerConfig_Init(ret_config);
    if (def->max_deliver == -1)
        snprintf(description, description_size, "ess bus: max_deliver unlimited, no dead letters");
    else
        snprintf(description, description_size,
                 "ess bus: max_deliver %d enforced by the client, then dead-letter",
                 def->max_deliver);
    ret_config->Durable = def->durable;
    ret_config->Description = description;
    ret_config->DeliverPolicy = js_DeliverAll;
    ret_config->AckPolicy = js_AckExplicit;
    ret_config->ReplayPolicy = js_ReplayInstant;
    ret_config->AckWait = ms_to_ns(def->ack_wait_ms);
    ret_config->MaxDeliver = -1;
    ret_config->FilterSubject = def->filter_subject[0] != '\0' ? def->filter_subject : NULL;
    ret_config->MaxAckPending = def->max_ack_pending;
}

static bool text_differs(const char *have, const char *want)
{
    have = have != NULL ? have : "";
    want = want != NULL ? want : "";
    return strcmp(have, want) != 0;
}

static bool consumer_differs(const jsConsumerConfig *have, const jsConsumerConfig *want)
{
    return have->AckWait != want->AckWait || have->MaxDeliver != want->MaxDeliver ||
           have->MaxAckPending != want->MaxAckPending ||
           text_differs(have->FilterSubject, want->FilterSubject) ||
           text_differs(have->Description, want->Description);
}

static st_code check_consumer_def(const bus_consumer_def *def, st_error *err)
{
    if (def == NULL || !bus_name_valid(def->stream) || !bus_name_valid(def->durable))
        return st_fail(err, ST_INVALID, "bus: invalid consumer definition (names)");
    if ((def->filter_subject[0] != '\0' && !bus_subject_valid(def->filter_subject, true)) ||
        def->ack_wait_ms <= 0 || def->ack_wait_ms > TIMEOUT_MAX_MS || def->max_deliver == 0 ||
        def->max_deliver < -1 || def->max_ack_pending == 0 || def->max_ack_pending < -1)
        return st_fail(err, ST_INVALID, "bus: consumer '%s': invalid definition", def->durable);
    if (def->dead_letter_subject[0] == '\0' ? def->max_deliver != -1
                                            : !bus_subject_valid(def->dead_letter_subject, false))
        return st_fail(err, ST_INVALID, "bus: consumer '%s': invalid dead_letter_subject",
                       def->durable);
    return ST_OK;
}

st_code bus_ensure_consumer(bus *b, const bus_consumer_def *consumer, st_error *err)
{
    jsConsumerInfo *info = NULL;
    jsErrCode jerr = 0;
    st_code code = require_bus(b, err);
    if (code == ST_OK)
        code = check_consumer_def(consumer, err);
    if (code != ST_OK)
        return code;

    char description[128];
    jsConsumerConfig want;
    consumer_config(consumer, description, sizeof(description), &want);
    natsStatus s =
        js_GetConsumerInfo(&info, b->js, consumer->stream, consumer->durable, NULL, &jerr);
    if (jerr == JSStreamNotFoundErr) {
        code = st_fail(err, ST_NOT_FOUND, "bus: consumer '%s': stream '%s' does not exist",
                       consumer->durable, consumer->stream);
    } else if (s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr) {
        jerr = 0;
        s = js_AddConsumer(NULL, b->js, consumer->stream, &want, NULL, &jerr);
        if (s != NATS_OK)
            code = nats_api_failure(err, s, jerr, "bus: create consumer", consumer->durable);
    } else if (s != NATS_OK) {
        code = nats_api_failure(err, s, jerr, "bus: consumer info", consumer->durable);
    } else if (text_differs(info->Config->DeliverSubject, NULL) ||
               info->Config->AckPolicy != js_AckExplicit ||
               info->Config->DeliverPolicy != js_DeliverAll) {
        /* Push consumers and other policies cannot be changed into ours by an update. */
        code = st_fail(err, ST_CONFLICT,
                       "bus: consumer '%s' exists with another kind (push, ack or deliver "
                       "policy): delete it first",
                       consumer->durable);
    } else if (consumer_differs(info->Config, &want)) {
        jerr = 0;
        s = js_UpdateConsumer(NULL, b->js, consumer->stream, &want, NULL, &jerr);
        if (s != NATS_OK)
            code = nats_api_failure(err, s, jerr, "bus: update consumer", consumer->durable);
    }
    jsConsumerInfo_Destroy(info);
    return code;
}

st_code bus_ensure(bus *b, const bus_registry *registry, st_error *err)
{
    if (registry == NULL)
        return st_fail(err, ST_INVALID, "bus: no registry");
    for (size_t i = 0; i < registry->stream_count; i++) {
        st_code code = bus_ensure_stream(b, &registry->streams[i], err);
        if (code != ST_OK)
            return code;
    }
    for (size_t i = 0; i < registry->consumer_count; i++) {
        st_code code = bus_ensure_consumer(b, &registry->consumers[i], err);
        if (code != ST_OK)
            return code;
    }
    return ST_OK;
}

st_code bus_stream_exists(bus *b, const char *stream, st_error *err)
{
    jsStreamInfo *info = NULL;
    jsErrCode jerr = 0;
    st_code code = require_bus(b, err);
    if (code != ST_OK)
        return code;
    if (stream == NULL || !bus_name_valid(stream))
        return st_fail(err, ST_INVALID, "bus: invalid stream name");
    natsStatus s = js_GetStreamInfo(&info, b->js, stream, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
        code = st_fail(err, ST_NOT_FOUND, "bus: stream '%s' does not exist", stream);
    else if (s != NATS_OK)
        code = nats_api_failure(err, s, jerr, "bus: stream info", stream);
    jsStreamInfo_Destroy(info);
    return code;
}

st_code bus_stream_delete(bus *b, const char *stream, st_error *err)
{
    jsErrCode jerr = 0;
    st_code code = require_bus(b, err);
    if (code != ST_OK)
        return code;
    if (stream == NULL || !bus_name_valid(stream))
        return st_fail(err, ST_INVALID, "bus: invalid stream name");
    natsStatus s = js_DeleteStream(b->js, stream, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr)
        return st_fail(err, ST_NOT_FOUND, "bus: stream '%s' does not exist", stream);
    if (s != NATS_OK)
        return nats_api_failure(err, s, jerr, "bus: delete stream", stream);
    return ST_OK;
}

/* ---- publishing -------------------------------------------------------------------------- */

/* Checks a publish's inputs and builds the message (data copied). */
static st_code build_message(const char *subject, const void *data, size_t len, const char *msg_id,
                             natsMsg **ret_msg, st_error *err)
{
    if (subject == NULL || !bus_subject_valid(subject, false))
        return st_fail(err, ST_INVALID, "bus: publish: invalid subject");
    if (data == NULL && len > 0)
        return st_fail(err, ST_INVALID, "bus: publish: no data");
    if (len > DATA_MAX)
        return st_fail(err, ST_LIMIT, "bus: publish: payload of %zu bytes is too large", len);
    if (msg_id != NULL && !msg_id_valid(msg_id))
        return st_fail(err, ST_INVALID,
                       "bus: publish: msg-id longer than %d bytes or with "
                       "control characters",
                       BUS_MSG_ID_MAX - 1);
    natsStatus s = natsMsg_Create(ret_msg, subject, NULL, (const char *)data, (int)len);
    if (s != NATS_OK)
        return nats_failure(err, s, 0, "bus: publish");
    return ST_OK;
}

static void init_pub_options(const bus *b, const char *msg_id, jsPubOptions *ret_opts)
{
    jsPubOptions_Init(ret_opts);
    ret_opts->MaxWait = b->request_timeout_ms;
    if (msg_id != NULL && msg_id[0] != '\0')
        ret_opts->MsgId = msg_id;
}

st_code bus_publish(bus *b, const char *subject, const void *data, size_t len, const char *msg_id,
                    bus_publish_result *ret_result, st_error *err)
{
    natsMsg *msg = NULL;
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    st_code code = require_bus(b, err);
    if (code == ST_OK)
        code = build_message(subject, data, len, msg_id, &msg, err);
    if (code != ST_OK)
        goto cleanup;
    jsPubOptions opts;
    init_pub_options(b, msg_id, &opts);
    natsStatus s = js_PublishMsg(&ack, b->js, msg, &opts, &jerr);
    if (s != NATS_OK) {
        code = nats_failure(err, s, jerr, "bus: publish");
        if (code == ST_NOT_FOUND || code == ST_INTERNAL)
            code = recode(err, ST_UNAVAILABLE);
        goto cleanup;
    }
    if (ret_result != NULL) {
        ret_result->stream_seq = ack->Sequence;
        ret_result->duplicate = ack->Duplicate;
    }

cleanup:
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(msg);
    return code;
}

st_code bus_batch_create(bus *b, bus_batch **ret_batch, st_error *err)
{
    if (b == NULL || b->js == NULL || ret_batch == NULL)
        return st_fail(err, ST_INVALID, "bus: batch: no bus");
    bus_batch *batch = calloc(1, sizeof(*batch));
    if (batch == NULL)
        return st_fail(err, ST_NOMEM, "bus: batch: out of memory");
    batch->owner = b;
    cond_init_monotonic(&batch->settled);

    pthread_mutex_lock(&g_lock);
    batch->id = b->next_batch_id++;
    st_code code = id_map_put(&b->live_batches, batch->id, (uint64_t)(uintptr_t)batch);
    pthread_mutex_unlock(&g_lock);
    if (code != ST_OK) {
        pthread_cond_destroy(&batch->settled);
        free(batch);
        return st_fail(err, code, "bus: batch: out of memory");
    }
    *ret_batch = batch;
    return ST_OK;
}

st_code bus_batch_add(bus_batch *batch, const char *subject, const void *data, size_t len,
                      const char *msg_id, st_error *err)
{
    natsMsg *msg = NULL;
    st_code code = ST_OK;
    if (batch == NULL) {
        code = st_fail(err, ST_INVALID, "bus: batch: no batch");
        goto cleanup;
    }
    bus *b = batch->owner;
    code = require_bus(b, err);
    if (code == ST_OK)
        code = build_message(subject, data, len, msg_id, &msg, err);
    if (code != ST_OK)
        goto cleanup;

    /* Map the message to its batch before publishing: the ack may arrive before
     * js_PublishMsgAsync returns. */
    uint64_t msg_key = (uint64_t)(uintptr_t)msg;
    pthread_mutex_lock(&g_lock);
    code = id_map_put(&b->msg_batches, msg_key, batch->id);
    if (code == ST_OK)
        batch->pending++;
    pthread_mutex_unlock(&g_lock);
    if (code != ST_OK) {
        code = st_fail(err, code, "bus: batch: out of memory");
        goto cleanup;
    }

    jsPubOptions opts;
    init_pub_options(b, msg_id, &opts);
    natsStatus s = js_PublishMsgAsync(b->js, &msg, &opts);
    if (s != NATS_OK) {
        /* nats.c gave the message back: nothing will ack it. */
        pthread_mutex_lock(&g_lock);
        if (id_map_take(&b->msg_batches, msg_key, NULL) && batch->pending > 0)
            batch->pending--;
        pthread_mutex_unlock(&g_lock);
        if (s == NATS_TIMEOUT)
            code = st_fail(err, ST_LIMIT,
                           "bus: batch: too many publishes awaiting an ack "
                           "(pending-ack bound reached)");
        else
            code = nats_failure(err, s, 0, "bus: batch publish");
        goto cleanup;
    }

cleanup:
    natsMsg_Destroy(msg); /* NULL when nats.c took it */
    return code;
}

static st_code describe_outcome(const bus_batch *batch, st_code code,
                                const bus_batch_result *result, int64_t timeout_ms, st_error *err)
{
    size_t total = result->stored + result->duplicates + result->failed;
    if (code == ST_TIMEOUT)
        st_fail(err, code, "bus: batch: %zu of %zu publishes not acknowledged within %lld ms",
                batch->pending, total, (long long)timeout_ms);
    else if (code != ST_OK) {
        st_fail(err, code, "bus: batch: %zu of %zu publishes failed (first: %s)", batch->failed,
                total, natsStatus_GetText(batch->first_failure));
        st_set_cause(err, "nats %d js %d", (int)batch->first_failure, (int)batch->first_failure_js);
    }
    return code;
}

st_code bus_batch_wait(bus_batch *batch, int64_t timeout_ms, bus_batch_result *ret_result,
                       st_error *err)
{
    if (batch == NULL)
        return st_fail(err, ST_INVALID, "bus: batch: no batch");
    if (timeout_ms < 0 || timeout_ms > TIMEOUT_MAX_MS)
        return st_fail(err, ST_INVALID, "bus: batch: timeout out of range");
    int64_t deadline = now_ms() + timeout_ms;
    bus_batch_result result;

    pthread_mutex_lock(&g_lock);
    while (batch->pending > 0 && now_ms() < deadline)
        cond_wait_until(&batch->settled, &g_lock, deadline);
    st_code code = batch_outcome(batch, &result);
    describe_outcome(batch, code, &result, timeout_ms, err);
    pthread_mutex_unlock(&g_lock);

    if (ret_result != NULL)
        *ret_result = result; /* also on failure: the counts are the answer */
    return code;
}

st_code bus_batch_on_done(bus_batch *batch, int64_t timeout_ms, bus_batch_done_fn fn, void *closure,
                          st_error *err)
{
    if (batch == NULL || fn == NULL)
        return st_fail(err, ST_INVALID, "bus: batch: no batch or no callback");
    if (timeout_ms < 0 || timeout_ms > TIMEOUT_MAX_MS)
        return st_fail(err, ST_INVALID, "bus: batch: timeout out of range");
    bus *b = batch->owner;
    st_code code = ST_OK;

    pthread_mutex_lock(&g_lock);
    if (batch->armed) {
        code = st_fail(err, ST_INVALID, "bus: batch: a callback is already armed");
        goto unlock;
    }
    if (!b->timer_running) {
        int rc = pthread_create(&b->timer_thread, NULL, timer_main, b);
        if (rc != 0) {
            code =
                st_fail(err, ST_IO, "bus: batch: cannot start the timer thread (%s)", strerror(rc));
            goto unlock;
        }
        b->timer_running = true;
    }
    batch->armed = true;
    batch->done_fn = fn;
    batch->done_closure = closure;
    /* Already settled: fire from the timer thread at once, never from the caller's stack. */
    batch->deadline_ms = batch->pending == 0 ? now_ms() : now_ms() + timeout_ms;
    bus_batch **link = &b->armed;
    while (*link != NULL && (*link)->deadline_ms <= batch->deadline_ms)
        link = &(*link)->armed_next;
    batch->armed_next = *link;
    *link = batch;
    /* The timer sleeps until the earliest deadline: only a new earliest one needs to wake it
     * (one thread wake-up less per webhook on the ingress's hot path). */
    if (b->armed == batch)
        pthread_cond_broadcast(&b->timer_wake);

unlock:
    pthread_mutex_unlock(&g_lock);
    return code;
}

void bus_batch_destroy(bus_batch *batch)
{
    if (batch == NULL)
        return;
    bus *b = batch->owner;
    pthread_mutex_lock(&g_lock);
    /* Acks still in flight keep their msg → batch-id entries; they find no batch and are
     * dropped (see on_publish_ack). */
    id_map_take(&b->live_batches, batch->id, NULL);
    unarm(b, batch);
    pthread_mutex_unlock(&g_lock);
    pthread_cond_destroy(&batch->settled);
    free(batch);
}

/* ---- consuming --------------------------------------------------------------------------- */

struct bus_consumer {
    bus *owner;
    natsSubscription *sub;
    bus_consumer_def def;
    char service[BUS_NAME_MAX];
    bus_handler_fn handler;
    void *closure;
    atomic_uint_least64_t acked, naked, dead_lettered, terminated;
    /* Held deliveries ack through the subscription: bus_consumer_destroy while some are
     * outstanding only marks the consumer, and the last bus_settle frees it. */
    pthread_mutex_t lifetime_lock;
    size_t held_count;
    bool destroy_requested;
};

static bool service_name_valid(const char *name)
{
    size_t len = strnlen(name, BUS_NAME_MAX);
    if (len == 0 || len >= BUS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

st_code bus_consumer_create(bus *b, const bus_consumer_def *def, const char *service_name,
                            bus_handler_fn handler, void *closure, bus_consumer **ret_consumer,
                            st_error *err)
{
    bus_consumer *consumer = NULL;
    jsErrCode jerr = 0;
    st_code code = require_bus(b, err);
    if (code == ST_OK)
        code = check_consumer_def(def, err);
    if (code != ST_OK)
        goto cleanup;
    if (service_name == NULL || !service_name_valid(service_name) || handler == NULL ||
        ret_consumer == NULL) {
        code = st_fail(err, ST_INVALID, "bus: consumer '%s': invalid service name or no handler",
                       def->durable);
        goto cleanup;
    }
    consumer = calloc(1, sizeof(*consumer));
    if (consumer == NULL) {
        code = st_fail(err, ST_NOMEM, "bus: consumer: out of memory");
        goto cleanup;
    }
    pthread_mutex_init(&consumer->lifetime_lock, NULL);
    consumer->owner = b;
    consumer->def = *def;
    memcpy(consumer->service, service_name, strlen(service_name) + 1);
    consumer->handler = handler;
    consumer->closure = closure;

    /* Bind (Stream + Consumer) to the durable bus_ensure created; never create one here. The
     * subject only has to agree with the consumer's filter; for a whole-stream consumer any
     * subject passes the check, and pull subscriptions receive on their own inbox. */
    jsSubOptions sub_opts;
    jsSubOptions_Init(&sub_opts);
    sub_opts.Stream = def->stream;
    sub_opts.Consumer = def->durable;
    sub_opts.ManualAck = true;
    const char *subject = def->filter_subject[0] != '\0' ? def->filter_subject : ">";
    natsStatus s =
        js_PullSubscribe(&consumer->sub, b->js, subject, def->durable, NULL, &sub_opts, &jerr);
    if (s != NATS_OK) {
        consumer->sub = NULL;
        code = nats_api_failure(err, s, jerr, "bus: bind consumer", def->durable);
        goto cleanup;
    }
    *ret_consumer = consumer;
    consumer = NULL;

cleanup:
    bus_consumer_destroy(consumer);
    return code;
}

static void consumer_free(bus_consumer *consumer)
{
    /* Destroy (not Unsubscribe): removes interest and frees, keeps the durable. */
    natsSubscription_Destroy(consumer->sub);
    pthread_mutex_destroy(&consumer->lifetime_lock);
    free(consumer);
}

void bus_consumer_destroy(bus_consumer *consumer)
{
    if (consumer == NULL)
        return;
    pthread_mutex_lock(&consumer->lifetime_lock);
    consumer->destroy_requested = true;
    bool free_now = consumer->held_count == 0;
    pthread_mutex_unlock(&consumer->lifetime_lock);
    if (free_now)
        consumer_free(consumer);
}

void bus_consumer_get_stats(const bus_consumer *consumer, bus_consumer_stats *ret_stats)
{
    if (ret_stats == NULL)
        return;
    memset(ret_stats, 0, sizeof(*ret_stats));
    if (consumer == NULL)
        return;
    bus_consumer *c = (bus_consumer *)consumer; /* C11 atomic_load wants non-const */
    ret_stats->acked = atomic_load_explicit(&c->acked, memory_order_relaxed);
    ret_stats->naked = atomic_load_explicit(&c->naked, memory_order_relaxed);
    ret_stats->dead_lettered = atomic_load_explicit(&c->dead_lettered, memory_order_relaxed);
    ret_stats->terminated = atomic_load_explicit(&c->terminated, memory_order_relaxed);
}

static void count(atomic_uint_least64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* Publishes the dead letter (see bus.h for the layout) and waits for the stream's ack. */
static st_code dead_letter(bus_consumer *consumer, natsMsg *msg, const bus_delivery *delivery,
                           const char *reason)
{
    natsMsg *letter = NULL;
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    st_code code = ST_OK;
    char safe_reason[sizeof(((bus_outcome *)0)->reason)];
    char seq_text[24], delivered_text[24], letter_id[2 * BUS_NAME_MAX + 32];

    header_safe_copy(safe_reason, sizeof(safe_reason),
                     reason != NULL && reason[0] != '\0' ? reason : "unspecified");
    snprintf(seq_text, sizeof(seq_text), "%" PRIu64, delivery->stream_seq);
    snprintf(delivered_text, sizeof(delivered_text), "%" PRIu64, delivery->delivered);
    /* The durable is part of the id: two consumers of one stream may dead-letter the same
     * message, and JetStream de-duplicates per stream. */
    snprintf(letter_id, sizeof(letter_id), "dlq.%s.%s.%" PRIu64, consumer->def.stream,
             consumer->def.durable, delivery->stream_seq);

    natsStatus s = natsMsg_Create(&letter, consumer->def.dead_letter_subject, NULL,
                                  natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
    if (s == NATS_OK)
        s = natsMsgHeader_Set(letter, BUS_DLQ_HDR_REASON, safe_reason);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(letter, "Ess-Dlq-Service", consumer->service);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(letter, "Ess-Dlq-Stream", consumer->def.stream);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(letter, "Ess-Dlq-Consumer", consumer->def.durable);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(letter, "Ess-Dlq-Subject", delivery->subject);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(letter, "Ess-Dlq-Seq", seq_text);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(letter, "Ess-Dlq-Delivered", delivered_text);
    if (s != NATS_OK) {
        code = ST_NOMEM;
        goto cleanup;
    }
    jsPubOptions opts;
    init_pub_options(consumer->owner, letter_id, &opts);
    s = js_PublishMsg(&ack, consumer->owner->js, letter, &opts, &jerr);
    if (s != NATS_OK)
        code = ST_UNAVAILABLE; /* a duplicate is an ack: an earlier attempt stored it */

cleanup:
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(letter);
    return code;
}

static void nak(bus_consumer *consumer, natsMsg *msg, int64_t delay_ms)
{
    if (delay_ms < 0)
        delay_ms = 0;
    if (delay_ms > TIMEOUT_MAX_MS)
        delay_ms = TIMEOUT_MAX_MS;
    natsStatus s =
        delay_ms > 0 ? natsMsg_NakWithDelay(msg, delay_ms, NULL) : natsMsg_Nak(msg, NULL);
    if (s == NATS_OK)
        count(&consumer->naked);
}

/* Dead-letters then terminates; when the dead letter cannot be stored, naks so the message
 * comes back and the dead-lettering is retried (see consumer_config for why it comes back). */
static void dead_letter_and_term(bus_consumer *consumer, natsMsg *msg, const bus_delivery *delivery,
                                 const char *reason)
{
    if (consumer->def.dead_letter_subject[0] != '\0') {
        if (dead_letter(consumer, msg, delivery, reason) != ST_OK) {
            nak(consumer, msg, DLQ_RETRY_DELAY_MS);
            return;
        }
        count(&consumer->dead_lettered);
    }
    if (natsMsg_Term(msg, NULL) == NATS_OK)
        count(&consumer->terminated);
}

/* What a held delivery owns: the message (its data backs the delivery's pointers). */
struct bus_held {
    bus_consumer *consumer;
    natsMsg *msg;
    bus_delivery delivery;
};

/* The per-message context a handler's delivery points to while it runs. */
typedef struct delivery_context {
    bus_consumer *consumer;
    natsMsg **msg_slot; /* set to NULL when held: the poll loop then does not free it */
    bus_held *held;
} delivery_context;

st_code bus_hold(const bus_delivery *delivery, bus_held **ret_held, st_error *err)
{
    delivery_context *context = delivery != NULL ? delivery->internal_ : NULL;
    if (context == NULL || *context->msg_slot == NULL || ret_held == NULL)
        return st_fail(err, ST_INVALID, "bus: hold: only once, inside a handler call");
    bus_held *held = calloc(1, sizeof(*held));
    if (held == NULL)
        return st_fail(err, ST_NOMEM, "bus: hold: out of memory");
    pthread_mutex_lock(&context->consumer->lifetime_lock);
    context->consumer->held_count++;
    pthread_mutex_unlock(&context->consumer->lifetime_lock);
    held->consumer = context->consumer;
    held->msg = *context->msg_slot;
    held->delivery = *delivery;
    held->delivery.internal_ = NULL;
    *context->msg_slot = NULL;
    context->held = held;
    *ret_held = held;
    return ST_OK;
}

const bus_delivery *bus_held_delivery(const bus_held *held)
{
    return held != NULL ? &held->delivery : NULL;
}

static void settle(bus_consumer *consumer, natsMsg *msg, const bus_delivery *delivery,
                   bus_outcome *outcome);

void bus_settle(bus_held *held, const bus_outcome *outcome)
{
    if (held == NULL)
        return;
    bus_outcome copy;
    if (outcome != NULL) {
        copy = *outcome;
    } else {
        memset(&copy, 0, sizeof(copy));
        copy.verdict = BUS_RETRY;
    }
    copy.reason[sizeof(copy.reason) - 1] = '\0';
    if (copy.verdict == BUS_DEFER)
        copy.verdict = BUS_RETRY; /* cannot defer twice: let it come back */
    bus_consumer *consumer = held->consumer;
    settle(consumer, held->msg, &held->delivery, &copy);
    natsMsg_Destroy(held->msg);
    free(held);
    pthread_mutex_lock(&consumer->lifetime_lock);
    consumer->held_count--;
    bool free_now = consumer->destroy_requested && consumer->held_count == 0;
    pthread_mutex_unlock(&consumer->lifetime_lock);
    if (free_now)
        consumer_free(consumer);
}

st_code bus_held_in_progress(bus_held *held, st_error *err)
{
    if (held == NULL)
        return st_fail(err, ST_INVALID, "bus: in progress: no held delivery");
    natsStatus s = natsMsg_InProgress(held->msg, NULL);
    if (s != NATS_OK)
        return st_fail(err, ST_UNAVAILABLE, "bus: in progress: %s", natsStatus_GetText(s));
    return ST_OK;
}

static void settle(bus_consumer *consumer, natsMsg *msg, const bus_delivery *delivery,
                   bus_outcome *outcome)
{
    bool limited = consumer->def.max_deliver != -1;
    uint64_t max_deliver = limited ? (uint64_t)consumer->def.max_deliver : 0;
    switch (outcome->verdict) {
    case BUS_DONE:
        if (natsMsg_Ack(msg, NULL) == NATS_OK)
            count(&consumer->acked);
        break;
    case BUS_REJECT:
        dead_letter_and_term(consumer, msg, delivery, outcome->reason);
        break;
    case BUS_RETRY:
    default: /* an unknown verdict is treated as the safe one */
        if (limited && delivery->delivered >= max_deliver)
            dead_letter_and_term(consumer, msg, delivery, outcome->reason);
        else
            nak(consumer, msg, outcome->retry_delay_ms);
        break;
    }
}

static void handle_message(bus_consumer *consumer, natsMsg **msg_slot)
{
    natsMsg *msg = *msg_slot;
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
        /* Not a JetStream delivery (cannot happen on a bound pull subscription): nothing to
         * hand to the service and nothing to ack. */
        return;
    }
    const char *msg_id = NULL;
    if (natsMsgHeader_Get(msg, MSG_ID_HEADER, &msg_id) != NATS_OK || msg_id == NULL)
        msg_id = "";
    const char *data = natsMsg_GetData(msg);
    int data_len = natsMsg_GetDataLength(msg);
    bus_delivery delivery = {
        .subject = natsMsg_GetSubject(msg),
        .data = data != NULL ? data : "",
        .len = data_len > 0 ? (size_t)data_len : 0,
        .msg_id = msg_id,
        .stream_seq = meta->Sequence.Stream,
        .delivered = meta->NumDelivered,
        .timestamp_ns = meta->Timestamp,
        .max_deliver = consumer->def.max_deliver,
    };
    delivery_context context = {.consumer = consumer, .msg_slot = msg_slot, .held = NULL};
    delivery.internal_ = &context;
    bool limited = consumer->def.max_deliver != -1;
    uint64_t max_deliver = limited ? (uint64_t)consumer->def.max_deliver : 0;
    bus_outcome outcome;
    memset(&outcome, 0, sizeof(outcome));
    outcome.verdict = BUS_DONE;

    if (limited && delivery.delivered > max_deliver) {
        /* Past the last allowed delivery: an earlier dead-letter publish failed, or the
         * service died or overran ack_wait while handling it. Do not run the handler again. */
        outcome.verdict = BUS_REJECT;
        snprintf(outcome.reason, sizeof(outcome.reason),
                 "delivered %" PRIu64 " times, more than max_deliver %d, without a verdict "
                 "(handler crashed or overran ack_wait, or a dead-letter publish failed)",
                 delivery.delivered, consumer->def.max_deliver);
    } else {
        consumer->handler(&delivery, &outcome, consumer->closure);
        outcome.reason[sizeof(outcome.reason) - 1] = '\0';
    }

    if (context.held != NULL) {
        /* Held: the holder settles it. A handler that held but did not say BUS_DEFER has
         * still given the message away; its verdict is ignored. */
        jsMsgMetaData_Destroy(meta);
        return;
    }
    if (outcome.verdict == BUS_DEFER)
        outcome.verdict = BUS_RETRY; /* deferred without holding: let it come back */
    settle(consumer, msg, &delivery, &outcome);
    jsMsgMetaData_Destroy(meta);
}

st_code bus_consumer_poll(bus_consumer *consumer, int batch, int64_t wait_ms, size_t *ret_handled,
                          st_error *err)
{
    natsMsgList list = {0};
    jsErrCode jerr = 0;
    st_code code = ST_OK;
    if (consumer == NULL || ret_handled == NULL) {
        code = st_fail(err, ST_INVALID, "bus: poll: no consumer");
        goto cleanup;
    }
    if (batch < 1 || batch > FETCH_BATCH_MAX || wait_ms < 0 || wait_ms > TIMEOUT_MAX_MS) {
        code = st_fail(err, ST_INVALID, "bus: poll: batch must be 1..%d and wait 0..1 day",
                       FETCH_BATCH_MAX);
        goto cleanup;
    }
    code = require_bus(consumer->owner, err);
    if (code != ST_OK)
        goto cleanup;
    natsStatus s =
        natsSubscription_Fetch(&list, consumer->sub, batch, wait_ms > 0 ? wait_ms : 1, &jerr);
    /* A quiet stream is a timeout with no message; a timeout after some messages still
     * hands them over. */
    if (s != NATS_OK && s != NATS_TIMEOUT && list.Count == 0) {
        code = nats_failure(err, s, jerr, "bus: fetch");
        if (code == ST_INTERNAL)
            code = recode(err, ST_UNAVAILABLE);
        st_wrap(err, consumer->def.durable);
        goto cleanup;
    }
    for (int i = 0; i < list.Count; i++)
        handle_message(consumer, &list.Msgs[i]);
    /* Acks, naks and terms are fire-and-forget publishes: push them out before returning, so
     * a service that stops after this poll (drain, crash) has not left them in a buffer. A
     * failure only means redelivery after ack_wait, which handlers tolerate. */
    if (list.Count > 0)
        natsConnection_FlushTimeout(consumer->owner->conn, consumer->owner->request_timeout_ms);
    *ret_handled = (size_t)list.Count;

cleanup:
    natsMsgList_Destroy(&list);
    return code;
}
