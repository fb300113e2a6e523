/* bench_ingress_loadgen: drives signed LINE webhooks at an HTTP endpoint over loopback.
 *
 *   bench_ingress_loadgen --target 127.0.0.1:8080 --secret S [--pid PID] [--requests N]
 *       [--warmup N] [--concurrency C] [--events E] [--label TEXT]
 *
 * Every request is built and signed before the clock starts (unique webhookEventIds, 1000
 * users in turn), so the generator spends its time on sockets only. C threads each keep one
 * HTTP/1.1 keep-alive connection and send one request at a time (closed loop). Prints
 * events/s, requests/s, p50/p99/max latency and, given --pid, the target's CPU time per event
 * from /proc/<pid>/stat (utime+stime, clock-tick resolution). Exit 1 when any request was
 * not answered 200. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_http.h"
#include "ingress_signature.h"

#define REQUEST_MAX 16384
#define USERS 1000

typedef struct options {
    char host[64];
    int port;
    const char *secret;
    int pid;
    long requests, warmup;
    int concurrency, events;
    const char *label;
} options;

typedef struct request {
    char *bytes;
    size_t len;
} request;

typedef struct run {
    const options *opt;
    request *requests;
    long first, count; /* the slice of requests this run sends */
    _Atomic long next;
    int64_t *latency_ns; /* per request of the slice */
    _Atomic long failures;
} run;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_ingress_loadgen --target HOST:PORT --secret S [--pid PID] "
                    "[--requests N] [--warmup N] [--concurrency C] [--events E] "
                    "[--label TEXT]\n");
    exit(2);
}

static long parse_long(const char *text, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
        usage();
    return value;
}

static void parse_options(int argc, char **argv, options *opt)
{
    *opt = (options){
        .requests = 20000, .warmup = 2000, .concurrency = 16, .events = 1, .label = "target"};
    const char *target = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *name = argv[i], *value = argv[i + 1];
        if (strcmp(name, "--target") == 0)
            target = value;
        else if (strcmp(name, "--secret") == 0)
            opt->secret = value;
        else if (strcmp(name, "--pid") == 0)
            opt->pid = (int)parse_long(value, 1, 1 << 30);
        else if (strcmp(name, "--requests") == 0)
            opt->requests = parse_long(value, 1, 10000000);
        else if (strcmp(name, "--warmup") == 0)
            opt->warmup = parse_long(value, 0, 10000000);
        else if (strcmp(name, "--concurrency") == 0)
            opt->concurrency = (int)parse_long(value, 1, 1024);
        else if (strcmp(name, "--events") == 0)
            opt->events = (int)parse_long(value, 1, 100);
        else if (strcmp(name, "--label") == 0)
            opt->label = value;
        else
            usage();
    }
    if (argc % 2 == 0 || target == NULL || opt->secret == NULL)
        usage();
    const char *colon = strrchr(target, ':');
    if (colon == NULL || (size_t)(colon - target) >= sizeof(opt->host))
        usage();
    memcpy(opt->host, target, (size_t)(colon - target));
    opt->host[colon - target] = '\0';
    opt->port = (int)parse_long(colon + 1, 1, 65535);
}

/* One signed webhook request with opt->events text events, unique ids. */
static void build_request(const options *opt, long index, const char *run_tag, request *out)
{
    char body[REQUEST_MAX / 2];
    size_t used = (size_t)snprintf(body, sizeof(body),
                                   "{\"destination\":\"U0123456789abcdef0123456789abcdef\","
                                   "\"events\":[");
    for (int e = 0; e < opt->events; e++) {
        unsigned user = (unsigned)((index * opt->events + e) % USERS);
        used += (size_t)snprintf(
            body + used, sizeof(body) - used,
            "%s{\"type\":\"message\",\"mode\":\"active\",\"timestamp\":%lld,"
            "\"source\":{\"type\":\"user\",\"userId\":\"U%032x\"},"
            "\"webhookEventId\":\"01B%sX%ldX%d\",\"deliveryContext\":{\"isRedelivery\":false},"
            "\"replyToken\":\"nHuyWiB7yP5Zw52FIkcQobQuGDXCTA\",\"message\":{\"type\":\"text\","
            "\"id\":\"444573844083572737\",\"quoteToken\":\"q3Plxr4AgKd\",\"text\":"
            "\"\\u0e0a\\u0e48\\u0e27\\u0e22\\u0e14\\u0e49\\u0e27\\u0e22 help\"}}",
            e == 0 ? "" : ",", 1700000000000LL + index, user, run_tag, index, e);
        if (used >= sizeof(body) - 8) {
            fprintf(stderr, "body too large\n");
            exit(2);
        }
    }
    used += (size_t)snprintf(body + used, sizeof(body) - used, "]}");
    char signature[INGRESS_SIGNATURE_B64_SIZE];
    if (ingress_signature_compute(opt->secret, strlen(opt->secret), body, used, signature, NULL) !=
        ST_OK) {
        fprintf(stderr, "cannot sign\n");
        exit(2);
    }
    out->bytes = malloc(REQUEST_MAX);
    if (out->bytes == NULL)
        exit(2);
    int n = snprintf(out->bytes, REQUEST_MAX,
                     "POST /line/webhook HTTP/1.1\r\nHost: %s:%d\r\n"
                     "User-Agent: LineBotWebhook/2.0\r\nContent-Type: application/json; "
                     "charset=utf-8\r\nX-Line-Signature: %s\r\nContent-Length: %zu\r\n\r\n%s",
                     opt->host, opt->port, signature, used, body);
    if (n < 0 || n >= REQUEST_MAX) {
        fprintf(stderr, "request too large\n");
        exit(2);
    }
    out->len = (size_t)n;
}

static void *worker(void *arg)
{
    run *r = arg;
    int fd = -1;
    for (;;) {
        long i = atomic_fetch_add(&r->next, 1);
        if (i >= r->count)
            break;
        const request *req = &r->requests[r->first + i];
        int64_t started = now_ns();
        int status = -1;
        for (int attempt = 0; attempt < 2 && status < 0; attempt++) {
            if (fd < 0)
                fd = bench_http_connect(r->opt->host, r->opt->port);
            if (fd < 0)
                break;
            bool keep_alive = true;
            if (bench_http_send_all(fd, req->bytes, req->len))
                status = bench_http_read_answer(fd, &keep_alive);
            if (status < 0 || !keep_alive) {
                close(fd);
                fd = -1;
            }
        }
        r->latency_ns[i] = now_ns() - started;
        if (status != 200)
            atomic_fetch_add(&r->failures, 1);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static long run_phase(const options *opt, request *requests, long first, long count,
                      int64_t *latency_ns)
{
    run r = {
        .opt = opt, .requests = requests, .first = first, .count = count, .latency_ns = latency_ns};
    pthread_t threads[1024];
    for (int t = 0; t < opt->concurrency; t++)
        pthread_create(&threads[t], NULL, worker, &r);
    for (int t = 0; t < opt->concurrency; t++)
        pthread_join(threads[t], NULL);
    return atomic_load(&r.failures);
}

/* utime + stime of pid in clock ticks, or -1. */
static long long cpu_ticks(int pid)
{
    char path[64], text[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    /* the command name may hold spaces: fields are counted after its closing ')' */
    char *p = strrchr(text, ')');
    if (p == NULL)
        return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (long long)(utime + stime);
}

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    options opt;
    parse_options(argc, argv, &opt);
    long total = opt.warmup + opt.requests;
    request *requests = calloc((size_t)total, sizeof(*requests));
    int64_t *latency = calloc((size_t)(total > 0 ? total : 1), sizeof(*latency));
    if (requests == NULL || latency == NULL)
        return 2;
    char run_tag[32];
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    snprintf(run_tag, sizeof(run_tag), "%lldP%d",
             (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000, (int)getpid());
    for (long i = 0; i < total; i++)
        build_request(&opt, i, run_tag, &requests[i]);

    long warmup_failures = opt.warmup > 0 ? run_phase(&opt, requests, 0, opt.warmup, latency) : 0;
    long long cpu_before = opt.pid > 0 ? cpu_ticks(opt.pid) : -1;
    int64_t started = now_ns();
    long failures = run_phase(&opt, requests, opt.warmup, opt.requests, latency);
    int64_t elapsed = now_ns() - started;
    long long cpu_after = opt.pid > 0 ? cpu_ticks(opt.pid) : -1;

    qsort(latency, (size_t)opt.requests, sizeof(*latency), compare_i64);
    double seconds = (double)elapsed / 1e9;
    double events = (double)opt.requests * opt.events;
    double p50 = (double)latency[opt.requests / 2] / 1e6;
    double p99 = (double)latency[(long)((double)opt.requests * 0.99)] / 1e6;
    double max = (double)latency[opt.requests - 1] / 1e6;
    printf("%-12s requests=%ld events/request=%d concurrency=%d\n", opt.label, opt.requests,
           opt.events, opt.concurrency);
    printf("%-12s events/s=%.0f requests/s=%.0f p50=%.2fms p99=%.2fms max=%.2fms "
           "failures=%ld\n",
           opt.label, events / seconds, (double)opt.requests / seconds, p50, p99, max,
           failures + warmup_failures);
    if (cpu_before >= 0 && cpu_after >= 0) {
        double cpu_us = (double)(cpu_after - cpu_before) * 1e6 / (double)sysconf(_SC_CLK_TCK);
        printf("%-12s cpu=%.0fms cpu/event=%.1fus (%.0f%% of one core)\n", opt.label, cpu_us / 1000,
               cpu_us / events, 100.0 * cpu_us / 1e6 / seconds);
    }
    for (long i = 0; i < total; i++)
        free(requests[i].bytes);
    free(requests);
    free(latency);
    return failures + warmup_failures > 0 ? 1 : 0;
}
