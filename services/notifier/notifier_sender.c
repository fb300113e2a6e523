#include "notifier_sender.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#define URL_MAX 512
#define TCP_KEEPIDLE_S 30L
#define TCP_KEEPINTVL_S 15L
#define REFILL_WAIT_NS (4 * 1000000LL) /* at least this long when the bucket is empty */

typedef struct request_list {
    notifier_request *head, *tail;
    size_t count;
} request_list;

struct notifier_sender {
    notifier_sender_options options;
    char reply_url[URL_MAX];
    char push_url[URL_MAX];
    char base_url[URL_MAX]; /* for GET paths */
    char authorization[1100];
    CURLM *multi;
    pthread_t thread;
    bool thread_started;

    /* Guarded by lock. */
    pthread_mutex_t lock;
    request_list submitted;
    bool stopping;
    bool stopped; /* the thread no longer takes requests */
    int64_t drain_deadline_ns;
    size_t queued_snapshot, in_flight_snapshot;

    /* The sender thread's own. */
    request_list ready;
    notifier_request *flying; /* started, not answered: doubly linked by next_/prev_ */
    size_t in_flight;
    CURL *idle[256];
    size_t idle_count;
    notifier_bucket bucket;
    int64_t paused_until_ns;
    uint64_t consecutive_throttles;
    uint64_t random_state;
    int64_t next_tick_ns;
};

static int64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static uint64_t next_random(uint64_t *state)
{
    /* xorshift64*: jitter only, not security */
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void list_push(request_list *list, notifier_request *request)
{
    request->next_ = NULL;
    if (list->tail != NULL)
        list->tail->next_ = request;
    else
        list->head = request;
    list->tail = request;
    list->count++;
}

static notifier_request *list_pop(request_list *list)
{
    notifier_request *request = list->head;
    if (request == NULL)
        return NULL;
    list->head = request->next_;
    if (list->head == NULL)
        list->tail = NULL;
    list->count--;
    request->next_ = NULL;
    return request;
}

static void list_append(request_list *to, request_list *from)
{
    if (from->head == NULL)
        return;
    if (to->tail != NULL)
        to->tail->next_ = from->head;
    else
        to->head = from->head;
    to->tail = from->tail;
    to->count += from->count;
    memset(from, 0, sizeof(*from));
}

/* Calls done once; the request is the caller's again from here on. */
static void finish(notifier_request *request, notifier_transport transport, long status,
                   double seconds)
{
    char *body = request->answer_;
    size_t body_len = request->answer_len_;
    request->answer_ = NULL;
    request->answer_len_ = 0;
    request->easy_ = NULL;
    request->headers_ = NULL;
    notifier_answer answer = {.transport = transport,
                              .status = status,
                              .body = body,
                              .body_len = body_len,
                              .had_retry_key = request->retry_key[0] != '\0'};
    request->done(request, &answer, seconds, request->closure);
    free(body);
}

static size_t collect_answer(char *data, size_t size, size_t count, void *closure)
{
    notifier_request *request = closure;
    size_t len = size * count;
    size_t room = NOTIFIER_ANSWER_BYTES_MAX - request->answer_len_;
    size_t keep = len < room ? len : room; /* the rest is read and dropped */
    if (keep > 0) {
        char *grown = realloc(request->answer_, request->answer_len_ + keep + 1);
        if (grown == NULL)
            return len;
        memcpy(grown + request->answer_len_, data, keep);
        request->answer_len_ += keep;
        grown[request->answer_len_] = '\0';
        request->answer_ = grown;
    }
    return len;
}

static CURL *take_easy(notifier_sender *sender)
{
    if (sender->idle_count > 0) {
        CURL *easy = sender->idle[--sender->idle_count];
        curl_easy_reset(easy);
        return easy;
    }
    return curl_easy_init();
}

static void give_back_easy(notifier_sender *sender, CURL *easy)
{
    if (easy == NULL)
        return;
    if (sender->idle_count < sizeof(sender->idle) / sizeof(sender->idle[0]))
        sender->idle[sender->idle_count++] = easy;
    else
        curl_easy_cleanup(easy);
}

/* Starts one request on the multi handle; on a local failure reports it as a transport error
 * (the caller's policy retries it). */
static void start(notifier_sender *sender, notifier_request *request)
{
    CURL *easy = take_easy(sender);
    struct curl_slist *headers = NULL, *grown = NULL;
    const char *lines[] = {sender->authorization, "Content-Type: application/json", "Expect:"};
    bool ok = easy != NULL;
    for (size_t i = 0; ok && i < sizeof(lines) / sizeof(lines[0]); i++) {
        grown = curl_slist_append(headers, lines[i]);
        ok = grown != NULL;
        headers = ok ? grown : headers;
    }
    if (ok && request->retry_key[0] != '\0') {
        char key_line[64 + VAULT_UUID_TEXT];
        snprintf(key_line, sizeof(key_line), "X-Line-Retry-Key: %s", request->retry_key);
        grown = curl_slist_append(headers, key_line);
        ok = grown != NULL;
        headers = ok ? grown : headers;
    }
    char get_url[URL_MAX + 256];
    if (ok && request->endpoint == NOTIFIER_EP_PROFILE) {
        int n = snprintf(get_url, sizeof(get_url), "%s%s", sender->base_url,
                         request->path != NULL ? request->path : "");
        ok = request->path != NULL && n > 0 && (size_t)n < sizeof(get_url);
    }
    if (ok) {
        if (request->endpoint == NOTIFIER_EP_PROFILE) {
            curl_easy_setopt(easy, CURLOPT_URL, get_url);
            curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
        } else {
            const char *url =
                request->endpoint == NOTIFIER_EP_REPLY ? sender->reply_url : sender->push_url;
            curl_easy_setopt(easy, CURLOPT_URL, url);
            curl_easy_setopt(easy, CURLOPT_POST, 1L);
            curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request->body);
            curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)request->body_len);
        }
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(easy, CURLOPT_USERAGENT, "ess-notifier/" ESS_VERSION);
        curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)sender->options.connect_timeout_ms);
        curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)sender->options.request_timeout_ms);
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, TCP_KEEPIDLE_S);
        curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, TCP_KEEPINTVL_S);
        curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, collect_answer);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, request);
        curl_easy_setopt(easy, CURLOPT_PRIVATE, request);
        request->easy_ = easy;
        request->headers_ = headers;
        ok = curl_multi_add_handle(sender->multi, easy) == CURLM_OK;
    }
    if (ok) {
        request->prev_ = NULL;
        request->next_ = sender->flying;
        if (sender->flying != NULL)
            sender->flying->prev_ = request;
        sender->flying = request;
    }
    if (!ok) {
        curl_slist_free_all(headers);
        give_back_easy(sender, easy);
        finish(request, NOTIFIER_TRANSPORT_ERROR, 0, 0);
        return;
    }
    sender->in_flight++;
}

static void land(notifier_sender *sender, notifier_request *request)
{
    if (request->prev_ != NULL)
        request->prev_->next_ = request->next_;
    else
        sender->flying = request->next_;
    if (request->next_ != NULL)
        request->next_->prev_ = request->prev_;
    request->next_ = request->prev_ = NULL;
    curl_multi_remove_handle(sender->multi, request->easy_);
    curl_slist_free_all(request->headers_);
    give_back_easy(sender, request->easy_);
    sender->in_flight--;
}

static notifier_transport transport_of(CURLcode result, long status)
{
    switch (result) {
    case CURLE_OK:
        return status > 0 ? NOTIFIER_TRANSPORT_OK : NOTIFIER_TRANSPORT_ERROR;
    case CURLE_OPERATION_TIMEDOUT:
        return NOTIFIER_TRANSPORT_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return NOTIFIER_TRANSPORT_CONNECT;
    default:
        return NOTIFIER_TRANSPORT_ERROR;
    }
}

/* After a 429 nothing starts for a while; each further 429 doubles the pause. */
static void note_answer(notifier_sender *sender, notifier_transport transport, long status,
                        int64_t now_ns)
{
    if (transport != NOTIFIER_TRANSPORT_OK)
        return;
    if (status == 429) {
        sender->consecutive_throttles++;
        int64_t pause_ms = notifier_backoff_ms(
            sender->consecutive_throttles, sender->options.throttle_min_ms,
            sender->options.throttle_max_ms, next_random(&sender->random_state));
        int64_t until = now_ns + pause_ms * 1000000;
        if (until > sender->paused_until_ns)
            sender->paused_until_ns = until;
    } else if ((status >= 200 && status <= 299) || status == 409) {
        sender->consecutive_throttles = 0;
    }
}

static void complete(notifier_sender *sender, CURL *easy, CURLcode result)
{
    notifier_request *request = NULL;
    long status = 0;
    double seconds = 0;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&request);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME, &seconds);
    if (request == NULL) { /* cannot happen: every handle carries its request */
        curl_multi_remove_handle(sender->multi, easy);
        return;
    }
    land(sender, request);
    notifier_transport transport = transport_of(result, status);
    note_answer(sender, transport, status, monotonic_ns());
    finish(request, transport, status, seconds);
}

static void cancel_everything(notifier_sender *sender)
{
    while (sender->flying != NULL) {
        notifier_request *request = sender->flying;
        land(sender, request);
        finish(request, NOTIFIER_TRANSPORT_CANCELLED, 0, 0);
    }
    notifier_request *request;
    while ((request = list_pop(&sender->ready)) != NULL)
        finish(request, NOTIFIER_TRANSPORT_CANCELLED, 0, 0);
}

static void *sender_main(void *arg)
{
    notifier_sender *sender = arg;
    for (;;) {
        int64_t now = monotonic_ns();
        pthread_mutex_lock(&sender->lock);
        list_append(&sender->ready, &sender->submitted);
        bool stopping = sender->stopping;
        int64_t deadline = sender->drain_deadline_ns;
        bool idle = sender->ready.count == 0 && sender->in_flight == 0;
        if (stopping && (idle || now >= deadline))
            sender->stopped = true; /* from here, submit answers "cancelled" itself */
        pthread_mutex_unlock(&sender->lock);
        if (stopping && (idle || now >= deadline)) {
            cancel_everything(sender);
            break;
        }

        int64_t wait_ns = sender->options.tick_ms * 1000000;
        while (sender->in_flight < (size_t)sender->options.concurrency &&
               sender->ready.head != NULL) {
            if (now < sender->paused_until_ns) {
                wait_ns = sender->paused_until_ns - now;
                break;
            }
            int64_t bucket_wait = notifier_bucket_take(&sender->bucket, now);
            if (bucket_wait > 0) {
                /* Let a few tokens gather: one wake-up per token would cost more than the
                 * requests themselves at full rate. */
                wait_ns = bucket_wait > REFILL_WAIT_NS ? bucket_wait : REFILL_WAIT_NS;
                break;
            }
            start(sender, list_pop(&sender->ready));
        }
        int running = 0;
        curl_multi_perform(sender->multi, &running);
        CURLMsg *message;
        int left = 0;
        while ((message = curl_multi_info_read(sender->multi, &left)) != NULL)
            if (message->msg == CURLMSG_DONE)
                complete(sender, message->easy_handle, message->data.result);

        now = monotonic_ns();
        if (sender->options.tick != NULL && now >= sender->next_tick_ns) {
            sender->options.tick(sender->options.tick_closure);
            sender->next_tick_ns = now + sender->options.tick_ms * 1000000;
        }
        pthread_mutex_lock(&sender->lock);
        sender->queued_snapshot = sender->ready.count + sender->submitted.count;
        sender->in_flight_snapshot = sender->in_flight;
        bool more = sender->submitted.head != NULL;
        pthread_mutex_unlock(&sender->lock);
        if (more)
            continue; /* completions submitted fallbacks: start them now */
        int timeout_ms = (int)(wait_ns / 1000000);
        if (timeout_ms < 1)
            timeout_ms = 1;
        if (timeout_ms > sender->options.tick_ms)
            timeout_ms = (int)sender->options.tick_ms;
        curl_multi_poll(sender->multi, NULL, 0, timeout_ms, NULL);
    }
    return NULL;
}

void notifier_sender_submit(notifier_sender *sender, notifier_request *request)
{
    request->next_ = NULL;
    request->prev_ = NULL;
    request->easy_ = NULL;
    request->headers_ = NULL;
    request->answer_ = NULL;
    request->answer_len_ = 0;
    pthread_mutex_lock(&sender->lock);
    bool stopped = sender->stopped;
    if (!stopped)
        list_push(&sender->submitted, request);
    pthread_mutex_unlock(&sender->lock);
    if (stopped) {
        finish(request, NOTIFIER_TRANSPORT_CANCELLED, 0, 0);
        return;
    }
    curl_multi_wakeup(sender->multi);
}

void notifier_sender_get_stats(notifier_sender *sender, notifier_sender_stats *ret_stats)
{
    pthread_mutex_lock(&sender->lock);
    ret_stats->queued = sender->queued_snapshot;
    ret_stats->in_flight = sender->in_flight_snapshot;
    pthread_mutex_unlock(&sender->lock);
}

static void sender_free(notifier_sender *sender)
{
    if (sender == NULL)
        return;
    for (size_t i = 0; i < sender->idle_count; i++)
        curl_easy_cleanup(sender->idle[i]);
    if (sender->multi != NULL)
        curl_multi_cleanup(sender->multi);
    explicit_bzero(sender->authorization, sizeof(sender->authorization));
    pthread_mutex_destroy(&sender->lock);
    free(sender);
}

st_code notifier_sender_start(const notifier_sender_options *options, notifier_sender **ret_sender,
                              st_error *err)
{
    st_code code = ST_INVALID;
    notifier_sender *sender = NULL;
    if (options == NULL || options->api_base == NULL || options->channel_token == NULL ||
        options->concurrency < 1 || options->concurrency > 1024 || options->tick_ms < 1 ||
        options->rate_per_second <= 0) {
        return st_fail(err, ST_INVALID, "sender: incomplete options");
    }
    sender = calloc(1, sizeof(*sender));
    if (sender == NULL)
        return st_fail(err, ST_NOMEM, "sender: out of memory");
    pthread_mutex_init(&sender->lock, NULL);
    sender->options = *options;
    sender->options.api_base = NULL;
    sender->options.channel_token = NULL;
    size_t base_len = strlen(options->api_base);
    while (base_len > 0 && options->api_base[base_len - 1] == '/')
        base_len--;
    int a = snprintf(sender->reply_url, sizeof(sender->reply_url), "%.*s/v2/bot/message/reply",
                     (int)base_len, options->api_base);
    int b = snprintf(sender->push_url, sizeof(sender->push_url), "%.*s/v2/bot/message/push",
                     (int)base_len, options->api_base);
    int c = snprintf(sender->authorization, sizeof(sender->authorization),
                     "Authorization: Bearer %s", options->channel_token);
    int d = snprintf(sender->base_url, sizeof(sender->base_url), "%.*s", (int)base_len,
                     options->api_base);
    if (a < 0 || (size_t)a >= sizeof(sender->reply_url) || b < 0 || d < 0 ||
        (size_t)d >= sizeof(sender->base_url) || (size_t)b >= sizeof(sender->push_url) || c < 0 ||
        (size_t)c >= sizeof(sender->authorization)) {
        code = st_fail(err, ST_INVALID, "sender: API base or token too long");
        goto cleanup;
    }
    sender->multi = curl_multi_init();
    if (sender->multi == NULL) {
        code = st_fail(err, ST_INTERNAL, "sender: curl_multi_init failed");
        goto cleanup;
    }
    long connections = options->concurrency;
    curl_multi_setopt(sender->multi, CURLMOPT_MAX_HOST_CONNECTIONS, connections);
    curl_multi_setopt(sender->multi, CURLMOPT_MAXCONNECTS, connections);
    curl_multi_setopt(sender->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    int64_t now = monotonic_ns();
    double burst = options->rate_per_second / 10.0;
    notifier_bucket_init(&sender->bucket, options->rate_per_second, burst < 1 ? 1 : burst, now);
    sender->random_state = (uint64_t)now | 1;
    sender->next_tick_ns = now + options->tick_ms * 1000000;
    if (pthread_create(&sender->thread, NULL, sender_main, sender) != 0) {
        code = st_fail(err, ST_INTERNAL, "sender: cannot start its thread");
        goto cleanup;
    }
    sender->thread_started = true;
    *ret_sender = sender;
    sender = NULL;
    code = ST_OK;
cleanup:
    sender_free(sender);
    return code;
}

void notifier_sender_stop(notifier_sender *sender, int64_t drain_ms)
{
    if (sender == NULL)
        return;
    if (sender->thread_started) {
        pthread_mutex_lock(&sender->lock);
        sender->stopping = true;
        sender->drain_deadline_ns = monotonic_ns() + (drain_ms > 0 ? drain_ms : 0) * 1000000;
        pthread_mutex_unlock(&sender->lock);
        curl_multi_wakeup(sender->multi);
        pthread_join(sender->thread, NULL);
    }
    sender_free(sender);
}
