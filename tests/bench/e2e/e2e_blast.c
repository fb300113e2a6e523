/* bench_e2e_loadgen blast: signed LINE webhooks straight at an HTTP endpoint — the stack's
 * ess-ingress, or bench_bare_h2o (the ceiling: the same h2o loop answering 200 after checking
 * the signature) — at a fixed concurrency, so the two can be compared on one machine.
 *
 *   bench_e2e_loadgen blast --target HOST:PORT --secret S [--requests N] [--warmup N]
 *       [--concurrency C] [--events E] [--label TEXT] [--pid PID]
 *
 * Every request is built and signed before the clock starts (unique webhookEventIds per run,
 * 1000 rooms in turn). The events are text messages in a LINE room (a multi-person chat
 * without a group), in standby mode: the ingress checks and stores them exactly as any other
 * event, and ess-audit records them, while ess-conversation acknowledges them untouched (rooms
 * have no dialogue; standby events get no answer) — so the stack digests a round in seconds,
 * without a database transaction per event nor a call to the emulator. One HTTP/1.1 keep-alive
 * connection per thread, one request at a time (closed loop). Prints one line: events/s,
 * request latency p50/p99/max and, given --pid, the target's CPU time per event.
 *
 * bench_e2e_loadgen drain --nats-monitor URL [--timeout S]: waits until every JetStream
 * consumer has nothing pending nor unacknowledged (two looks 200 ms apart), so the next
 * measurement starts on an idle stack. Exit 1 on timeout. */
#define _POSIX_C_SOURCE 200809L
#include "e2e_load.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bench_http.h"
#include "e2e_common.h"
#include "ingress_signature.h"

#define BLAST_THREADS_MAX 256
#define BODY_MAX 32768
#define HEAD_MAX 1024
#define EVENTS_MAX 100
#define USERS 1000 /* rooms, and one speaker in each */

typedef struct blast_options {
    char host[64];
    int port;
    const char *secret, *label;
    long requests, warmup, concurrency, events;
    int pid;
} blast_options;

typedef struct prepared {
    char *bytes;
    size_t len;
} prepared;

typedef struct blast_phase {
    const blast_options *opt;
    const prepared *requests; /* this phase's slice */
    long count;
    atomic_long next, failures;
    int64_t *latency_ns;
} blast_phase;

static void blast_usage(void)
{
    fprintf(stderr, "usage: bench_e2e_loadgen blast --target HOST:PORT --secret S [--requests N] "
                    "[--warmup N] [--concurrency C] [--events E] [--label TEXT] [--pid PID]\n");
    exit(2);
}

static void parse_blast_options(int argc, char **argv, blast_options *opt)
{
    *opt = (blast_options){
        .requests = 20000, .warmup = 2000, .concurrency = 16, .events = 1, .label = "target"};
    const char *target = NULL;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            blast_usage();
        const char *name = argv[i], *value = argv[i + 1];
        if (strcmp(name, "--target") == 0)
            target = value;
        else if (strcmp(name, "--secret") == 0)
            opt->secret = value;
        else if (strcmp(name, "--requests") == 0)
            opt->requests = e2e_parse_long(name, value, 1, 5000000);
        else if (strcmp(name, "--warmup") == 0)
            opt->warmup = e2e_parse_long(name, value, 0, 5000000);
        else if (strcmp(name, "--concurrency") == 0)
            opt->concurrency = e2e_parse_long(name, value, 1, BLAST_THREADS_MAX);
        else if (strcmp(name, "--events") == 0)
            opt->events = e2e_parse_long(name, value, 1, EVENTS_MAX);
        else if (strcmp(name, "--label") == 0)
            opt->label = value;
        else if (strcmp(name, "--pid") == 0)
            opt->pid = (int)e2e_parse_long(name, value, 1, 1 << 30);
        else
            blast_usage();
    }
    if (target == NULL || opt->secret == NULL)
        blast_usage();
    const char *colon = strrchr(target, ':');
    if (colon == NULL || (size_t)(colon - target) >= sizeof(opt->host))
        blast_usage();
    memcpy(opt->host, target, (size_t)(colon - target));
    opt->host[colon - target] = '\0';
    opt->port = (int)e2e_parse_long("--target port", colon + 1, 1, 65535);
}

static void prepare(const blast_options *opt, long index, const char *run_tag, prepared *ret)
{
    char body[BODY_MAX];
    size_t used = (size_t)snprintf(body, sizeof(body),
                                   "{\"destination\":\"U00000000000000000000000000000e2e\","
                                   "\"events\":[");
    for (long e = 0; e < opt->events; e++) {
        long serial = index * opt->events + e;
        int n = snprintf(body + used, sizeof(body) - used,
                         "%s{\"type\":\"message\",\"mode\":\"standby\",\"timestamp\":%lld,"
                         "\"source\":{\"type\":\"room\",\"roomId\":\"R%032lx\","
                         "\"userId\":\"U%032lx\"},"
                         "\"webhookEventId\":\"%s%010ld\","
                         "\"deliveryContext\":{\"isRedelivery\":false},"
                         "\"message\":{\"type\":\"text\",\"id\":\"%ld\",\"quoteToken\":\"q%ld\","
                         "\"text\":\"\\u0e0a\\u0e48\\u0e27\\u0e22\\u0e14\\u0e49\\u0e27\\u0e22\"}}",
                         e == 0 ? "" : ",", (long long)e2e_wall_ms(), serial % USERS,
                         serial % USERS + 1, run_tag, serial, 500000000000000000L + serial, serial);
        if (n < 0 || (size_t)n >= sizeof(body) - used - 4)
            e2e_die("webhook body too large");
        used += (size_t)n;
    }
    used += (size_t)snprintf(body + used, sizeof(body) - used, "]}");
    char signature[INGRESS_SIGNATURE_B64_SIZE];
    if (ingress_signature_compute(opt->secret, strlen(opt->secret), body, used, signature, NULL) !=
        ST_OK)
        e2e_die("cannot compute the signature");
    char head[HEAD_MAX];
    int head_len = snprintf(head, sizeof(head),
                            "POST /line/webhook HTTP/1.1\r\nHost: %s:%d\r\n"
                            "User-Agent: LineBotWebhook/2.0\r\n"
                            "Content-Type: application/json; charset=utf-8\r\n"
                            "x-line-signature: %s\r\nContent-Length: %zu\r\n\r\n",
                            opt->host, opt->port, signature, used);
    if (head_len < 0 || (size_t)head_len >= sizeof(head))
        e2e_die("request head too large");
    ret->len = (size_t)head_len + used;
    ret->bytes = malloc(ret->len);
    if (ret->bytes == NULL)
        e2e_die("out of memory");
    memcpy(ret->bytes, head, (size_t)head_len);
    memcpy(ret->bytes + head_len, body, used);
}

static void *blast_thread(void *closure)
{
    blast_phase *phase = closure;
    int fd = -1;
    for (;;) {
        long i = atomic_fetch_add(&phase->next, 1);
        if (i >= phase->count)
            break;
        const prepared *request = &phase->requests[i];
        int64_t started = e2e_mono_ns();
        int status = -1;
        /* A keep-alive connection the server closed meanwhile is opened again, once. */
        for (int attempt = 0; attempt < 2 && status < 0; attempt++) {
            if (fd < 0 && (fd = bench_http_connect(phase->opt->host, phase->opt->port)) < 0)
                break;
            bool reusable = false;
            if (bench_http_send_all(fd, request->bytes, request->len))
                status = bench_http_read_answer(fd, &reusable);
            if (status < 0 || !reusable) {
                close(fd);
                fd = -1;
            }
        }
        phase->latency_ns[i] = e2e_mono_ns() - started;
        if (status != 200)
            atomic_fetch_add(&phase->failures, 1);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

/* Runs count requests over opt->concurrency connections; returns the failures. */
static long run_phase(const blast_options *opt, const prepared *requests, long count,
                      int64_t *latency_ns, int64_t *ret_elapsed_ns)
{
    blast_phase phase = {
        .opt = opt, .requests = requests, .count = count, .latency_ns = latency_ns};
    atomic_init(&phase.next, 0);
    atomic_init(&phase.failures, 0);
    pthread_t threads[BLAST_THREADS_MAX];
    int64_t started = e2e_mono_ns();
    for (long t = 0; t < opt->concurrency; t++)
        if (pthread_create(&threads[t], NULL, blast_thread, &phase) != 0)
            e2e_die("cannot start thread %ld", t);
    for (long t = 0; t < opt->concurrency; t++)
        pthread_join(threads[t], NULL);
    *ret_elapsed_ns = e2e_mono_ns() - started;
    return atomic_load(&phase.failures);
}

int e2e_blast_main(int argc, char **argv)
{
    blast_options opt;
    parse_blast_options(argc, argv, &opt);
    long total = opt.warmup + opt.requests;
    prepared *requests = calloc((size_t)total, sizeof(prepared));
    int64_t *latency_ns = calloc((size_t)total, sizeof(int64_t));
    if (requests == NULL || latency_ns == NULL)
        e2e_die("out of memory");
    /* Event ids unique across runs and rounds: JetStream would take a repeat as a duplicate. */
    char run_tag[32];
    snprintf(run_tag, sizeof(run_tag), "E2E%lldP%d", (long long)e2e_wall_ms(), (int)getpid());
    for (long i = 0; i < total; i++)
        prepare(&opt, i, run_tag, &requests[i]);

    int64_t elapsed_ns = 0;
    long failures = run_phase(&opt, requests, opt.warmup, latency_ns, &elapsed_ns);
    long long cpu_before = opt.pid > 0 ? e2e_cpu_ticks(opt.pid) : -1;
    failures +=
        run_phase(&opt, requests + opt.warmup, opt.requests, latency_ns + opt.warmup, &elapsed_ns);
    long long cpu_after = opt.pid > 0 ? e2e_cpu_ticks(opt.pid) : -1;

    int64_t *measured = latency_ns + opt.warmup;
    double seconds = (double)elapsed_ns / 1e9;
    double events_per_s = (double)(opt.requests * opt.events) / seconds;
    int64_t p50 = e2e_percentile(measured, (size_t)opt.requests, 50);
    int64_t p99 = e2e_percentile(measured, (size_t)opt.requests, 99);
    int64_t max = measured[opt.requests - 1];
    printf("%-12s events/request=%ld concurrency=%ld events/s=%.0f p50=%.2fms p99=%.2fms "
           "max=%.2fms",
           opt.label, opt.events, opt.concurrency, events_per_s, (double)p50 / 1e6,
           (double)p99 / 1e6, (double)max / 1e6);
    if (cpu_before >= 0 && cpu_after >= cpu_before)
        printf(" cpu/event=%.1fus", (double)(cpu_after - cpu_before) * 1e6 /
                                        (double)sysconf(_SC_CLK_TCK) /
                                        (double)(opt.requests * opt.events));
    printf(" failures=%ld\n", failures);
    fflush(stdout);
    for (long i = 0; i < total; i++)
        free(requests[i].bytes);
    free(requests);
    free(latency_ns);
    return failures > 0 ? 1 : 0;
}

/* ---- drain --------------------------------------------------------------------------------- */

/* Messages pending or unacknowledged over every consumer; -1 when the monitor did not answer. */
static long long backlog(e2e_http *http, const char *url)
{
    if (e2e_http_call(http, "GET", url, NULL, 5000) != 200)
        return -1;
    cJSON *root = cJSON_Parse(http->body);
    if (root == NULL)
        return -1;
    long long total = 0;
    const cJSON *account, *stream, *consumer;
    cJSON_ArrayForEach(account, cJSON_GetObjectItemCaseSensitive(root, "account_details"))
    {
        cJSON_ArrayForEach(stream, cJSON_GetObjectItemCaseSensitive(account, "stream_detail"))
        {
            cJSON_ArrayForEach(consumer,
                               cJSON_GetObjectItemCaseSensitive(stream, "consumer_detail"))
            {
                const cJSON *pending = cJSON_GetObjectItemCaseSensitive(consumer, "num_pending");
                const cJSON *unacked =
                    cJSON_GetObjectItemCaseSensitive(consumer, "num_ack_pending");
                total += cJSON_IsNumber(pending) ? (long long)pending->valuedouble : 0;
                total += cJSON_IsNumber(unacked) ? (long long)unacked->valuedouble : 0;
            }
        }
    }
    cJSON_Delete(root);
    return total;
}

int e2e_drain_main(int argc, char **argv)
{
    const char *monitor = NULL;
    double timeout_s = 120;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            e2e_die("usage: bench_e2e_loadgen drain --nats-monitor URL [--timeout S]");
        if (strcmp(argv[i], "--nats-monitor") == 0)
            monitor = argv[i + 1];
        else if (strcmp(argv[i], "--timeout") == 0)
            timeout_s = e2e_parse_double(argv[i], argv[i + 1], 1, 3600);
        else
            e2e_die("usage: bench_e2e_loadgen drain --nats-monitor URL [--timeout S]");
    }
    if (monitor == NULL || strlen(monitor) > 200)
        e2e_die("usage: bench_e2e_loadgen drain --nats-monitor URL [--timeout S]");
    char url[256];
    snprintf(url, sizeof(url), "%s/jsz?consumers=true", monitor);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    e2e_http http;
    e2e_http_init(&http);
    int64_t started = e2e_mono_ns();
    int64_t deadline = started + (int64_t)(timeout_s * 1e9);
    int quiet_looks = 0;
    long long left = -1;
    while (quiet_looks < 2 && e2e_mono_ns() < deadline) {
        left = backlog(&http, url);
        quiet_looks = left == 0 ? quiet_looks + 1 : 0;
        if (quiet_looks < 2)
            e2e_sleep_ms(200);
    }
    e2e_http_done(&http);
    curl_global_cleanup();
    double waited = (double)(e2e_mono_ns() - started) / 1e9;
    if (quiet_looks < 2) {
        fprintf(stderr, "drain: %lld messages still pending after %.0f s\n", left, waited);
        return 1;
    }
    fprintf(stderr, "drain: the stack is idle (waited %.1f s)\n", waited);
    return 0;
}
