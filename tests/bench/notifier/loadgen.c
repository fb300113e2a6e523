/* Notifier benchmark driver: publishes push commands on LINE_OUT and measures how fast
 * ess-notifier delivers them to the line-emulator (sent counter on its /metrics).
 *
 *   bench_notifier_loadgen --nats URL --emulator URL --notifier URL [--pid PID]
 *       [--count N] [--warmup N] [--users N] [--latency MS] [--label TEXT]
 *
 * Sets the emulator's answer latency (settings latencyMs) and lifts its rate limit, so the
 * notifier's own limit is what paces it. Prints one line: pushes/s over the measured phase,
 * its duration, and the notifier's CPU time per push (utime+stime of --pid). Not a test. */
#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bus.h"

typedef struct options {
    const char *nats, *emulator, *notifier, *label;
    long pid, count, warmup, users, latency_ms;
} options;

typedef struct body {
    char *text;
    size_t len;
} body;

static size_t collect(char *data, size_t size, size_t count, void *closure)
{
    body *b = closure;
    char *grown = realloc(b->text, b->len + size * count + 1);
    if (grown == NULL)
        return 0;
    memcpy(grown + b->len, data, size * count);
    b->len += size * count;
    grown[b->len] = '\0';
    b->text = grown;
    return size * count;
}

/* One HTTP call; the answer body (caller frees) or NULL. */
static char *http(const char *method, const char *url, const char *payload, long *ret_status)
{
    CURL *easy = curl_easy_init();
    body b = {0};
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    if (payload != NULL)
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(easy);
    *ret_status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, ret_status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(easy);
    if (rc != CURLE_OK) {
        free(b.text);
        return NULL;
    }
    return b.text != NULL ? b.text : calloc(1, 1);
}

static void control(const options *o, const char *method, const char *path, const char *payload,
                    long want)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/_emulator%s", o->emulator, path);
    long status = 0;
    char *answer = http(method, url, payload, &status);
    if (answer == NULL || status != want) {
        fprintf(stderr, "%s %s: %ld %s\n", method, path, status, answer ? answer : "");
        exit(1);
    }
    free(answer);
}

static double metric(const options *o, const char *series)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/metrics", o->notifier);
    long status = 0;
    char *text = http("GET", url, NULL, &status);
    double value = 0;
    size_t len = strlen(series);
    for (const char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, series, len) == 0 && line[len] == ' ') {
            value = strtod(line + len + 1, NULL);
            break;
        }
        const char *end = strchr(line, '\n');
        line = end != NULL ? end + 1 : NULL;
    }
    free(text);
    return value;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long cpu_ticks(long pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *after = strrchr(line, ')');
    if (after == NULL)
        return -1;
    long utime = 0, stime = 0;
    /* fields 14 and 15 (utime, stime); after ") " comes field 3 */
    if (sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) !=
        2)
        return -1;
    return utime + stime;
}

static void publish(bus *b, char (*users)[40], long users_count, long first, long count,
                    const char *run_id)
{
    st_error err = {0};
    for (long start = first; start < first + count; start += 1000) {
        bus_batch *batch = NULL;
        if (bus_batch_create(b, &batch, &err) != ST_OK)
            exit(1);
        for (long i = start; i < first + count && i < start + 1000; i++) {
            char id[96], payload[512];
            snprintf(id, sizeof(id), "bench-%s-%ld", run_id, i);
            snprintf(payload, sizeof(payload),
                     "{\"command_id\":\"%s\",\"to\":\"%s\",\"messages\":[{\"type\":\"text\","
                     "\"text\":\"ทดสอบความเร็ว %ld\"}]}",
                     id, users[i % users_count], i);
            if (bus_batch_add(batch, "line.out.push", payload, strlen(payload), id, &err) !=
                ST_OK) {
                fprintf(stderr, "publish: %s\n", err.message);
                exit(1);
            }
        }
        if (bus_batch_wait(batch, 30000, NULL, &err) != ST_OK) {
            fprintf(stderr, "publish wait: %s\n", err.message);
            exit(1);
        }
        bus_batch_destroy(batch);
    }
}

static void wait_sent(const options *o, double want)
{
    double deadline = now_s() + 600;
    while (metric(o, "ess_notifier_sent_total{endpoint=\"push\"}") < want) {
        if (now_s() > deadline) {
            fprintf(stderr, "timed out waiting for the pushes\n");
            exit(1);
        }
        usleep(20000); /* polling /metrics costs the notifier CPU too */
    }
}

int main(int argc, char **argv)
{
    options o = {.count = 20000, .warmup = 1000, .users = 100, .label = "ess-notifier"};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--nats") == 0)
            o.nats = v;
        else if (strcmp(k, "--emulator") == 0)
            o.emulator = v;
        else if (strcmp(k, "--notifier") == 0)
            o.notifier = v;
        else if (strcmp(k, "--label") == 0)
            o.label = v;
        else if (strcmp(k, "--pid") == 0)
            o.pid = strtol(v, NULL, 10);
        else if (strcmp(k, "--count") == 0)
            o.count = strtol(v, NULL, 10);
        else if (strcmp(k, "--warmup") == 0)
            o.warmup = strtol(v, NULL, 10);
        else if (strcmp(k, "--users") == 0)
            o.users = strtol(v, NULL, 10);
        else if (strcmp(k, "--latency") == 0)
            o.latency_ms = strtol(v, NULL, 10);
    }
    if (o.nats == NULL || o.emulator == NULL || o.notifier == NULL || o.count < 1 || o.users < 1 ||
        o.users > 1000) {
        fprintf(stderr, "usage: see the comment at the top of loadgen.c\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char(*users)[40] = calloc((size_t)o.users, 40);
    for (long u = 0; u < o.users; u++) {
        char url[512], payload[128];
        snprintf(url, sizeof(url), "%s/_emulator/users", o.emulator);
        snprintf(payload, sizeof(payload), "{\"displayName\":\"bench %ld\"}", u);
        long status = 0;
        char *answer = http("POST", url, payload, &status);
        cJSON *root = answer != NULL ? cJSON_Parse(answer) : NULL;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "userId");
        if (status != 201 || !cJSON_IsString(id)) {
            fprintf(stderr, "cannot create a user: %ld\n", status);
            return 1;
        }
        snprintf(users[u], 40, "%s", id->valuestring);
        cJSON_Delete(root);
        free(answer);
        char path[96];
        snprintf(path, sizeof(path), "/users/%s/follow", users[u]);
        control(&o, "POST", path, NULL, 202);
    }
    char settings[128];
    snprintf(settings, sizeof(settings), "{\"latencyMs\":%ld,\"rateLimit\":1000000}", o.latency_ms);
    control(&o, "PUT", "/settings", settings, 200);

    bus *b = NULL;
    bus_options bus_opts = {.url = o.nats, .client_name = "ess-bench-notifier"};
    st_error err = {0};
    if (bus_connect(&bus_opts, &b, &err) != ST_OK) {
        fprintf(stderr, "nats: %s\n", err.message);
        return 1;
    }
    char run_id[32];
    snprintf(run_id, sizeof(run_id), "%ld%ld", (long)getpid(), (long)time(NULL));
    double base = metric(&o, "ess_notifier_sent_total{endpoint=\"push\"}");
    publish(b, users, o.users, 0, o.warmup, run_id);
    wait_sent(&o, base + (double)o.warmup);

    double throttled = metric(&o, "ess_notifier_requests_total{endpoint=\"push\",status=\"429\"}");
    long ticks0 = o.pid > 0 ? cpu_ticks(o.pid) : -1;
    double t0 = now_s();
    publish(b, users, o.users, o.warmup, o.count, run_id);
    wait_sent(&o, base + (double)(o.warmup + o.count));
    double elapsed = now_s() - t0;
    long ticks1 = o.pid > 0 ? cpu_ticks(o.pid) : -1;
    throttled =
        metric(&o, "ess_notifier_requests_total{endpoint=\"push\",status=\"429\"}") - throttled;
    double cpu_us =
        ticks0 >= 0 && ticks1 >= 0
            ? (double)(ticks1 - ticks0) / (double)sysconf(_SC_CLK_TCK) * 1e6 / (double)o.count
            : -1;
    printf("%-34s latency=%-4ldms pushes=%ld pushes/s=%-7.0f elapsed=%.2fs cpu/push=%.1fus "
           "429s=%.0f\n",
           o.label, o.latency_ms, o.count, (double)o.count / elapsed, elapsed, cpu_us, throttled);
    bus_destroy(b);
    free(users);
    curl_global_cleanup();
    return 0;
}
