#define _POSIX_C_SOURCE 200809L
#include "e2e_common.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t e2e_wall_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int64_t e2e_mono_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
}

void e2e_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec rest = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&rest, &rest) != 0 && errno == EINTR) {
    }
}

void e2e_die(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vfprintf(stderr, format, args);
    va_end(args);
    fputc('\n', stderr);
    exit(2);
}

long e2e_parse_long(const char *option, const char *text, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
        e2e_die("%s: want an integer in [%ld, %ld], got '%.40s'", option, min, max, text);
    return value;
}

double e2e_parse_double(const char *option, const char *text, double min, double max)
{
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(value) || value < min || value > max)
        e2e_die("%s: want a number in [%g, %g], got '%.40s'", option, min, max, text);
    return value;
}

bool e2e_copy(char *out, size_t size, const char *text)
{
    size_t len = strlen(text);
    bool fits = len < size;
    if (!fits)
        len = size - 1;
    memcpy(out, text, len);
    out[len] = '\0';
    return fits;
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

#define ANSWER_MAX (64u << 20) /* the largest answer kept: a page of 10,000 records */

static size_t collect(char *data, size_t size, size_t count, void *closure)
{
    e2e_http *client = closure;
    size_t add = size * count;
    if (client->len + add + 1 > ANSWER_MAX)
        return 0;
    if (client->len + add + 1 > client->capacity) {
        size_t capacity = client->capacity > 0 ? client->capacity : 4096;
        while (capacity < client->len + add + 1)
            capacity *= 2;
        char *grown = realloc(client->body, capacity);
        if (grown == NULL)
            return 0;
        client->body = grown;
        client->capacity = capacity;
    }
    memcpy(client->body + client->len, data, add);
    client->len += add;
    client->body[client->len] = '\0';
    return add;
}

void e2e_http_init(e2e_http *client)
{
    memset(client, 0, sizeof(*client));
    client->curl = curl_easy_init();
    client->headers = curl_slist_append(NULL, "Content-Type: application/json");
    client->capacity = 4096;
    client->body = malloc(client->capacity);
    if (client->curl == NULL || client->headers == NULL || client->body == NULL)
        e2e_die("cannot set up an HTTP client");
    client->body[0] = '\0';
}

void e2e_http_done(e2e_http *client)
{
    if (client->curl != NULL)
        curl_easy_cleanup(client->curl);
    curl_slist_free_all(client->headers);
    free(client->body);
    memset(client, 0, sizeof(*client));
}

long e2e_http_call(e2e_http *client, const char *method, const char *url, const char *payload,
                   long timeout_ms)
{
    CURL *curl = client->curl;
    client->len = 0;
    client->body[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, client->headers);
    if (payload != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
    } else {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L); /* drops the last call's body */
    }
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, client);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
    long status = 0;
    if (curl_easy_perform(curl) != CURLE_OK)
        return 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* ---- statistics ---------------------------------------------------------------------------- */

static int compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void e2e_sort(int64_t *values, size_t count)
{
    if (count > 1)
        qsort(values, count, sizeof(values[0]), compare_int64);
}

int64_t e2e_percentile(int64_t *values, size_t count, double p)
{
    if (count == 0)
        return 0;
    e2e_sort(values, count);
    size_t rank = (size_t)ceil(p / 100.0 * (double)count);
    if (rank < 1)
        rank = 1;
    if (rank > count)
        rank = count;
    return values[rank - 1];
}

long long e2e_cpu_ticks(int pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return -1;
    size_t len = fread(line, 1, sizeof(line) - 1, file);
    fclose(file);
    line[len] = '\0';
    /* The command name may hold spaces: fields are counted after its closing parenthesis.
     * There, field 3 (state) is the first; utime and stime are fields 14 and 15. */
    const char *at = strrchr(line, ')');
    if (at == NULL)
        return -1;
    at++;
    long long utime = 0, stime = 0;
    for (int field = 3; field <= 15 && *at != '\0'; field++) {
        while (*at == ' ')
            at++;
        char *end = NULL;
        if (field == 14)
            utime = strtoll(at, &end, 10);
        else if (field == 15)
            stime = strtoll(at, &end, 10);
        while (*at != ' ' && *at != '\0')
            at++;
    }
    return utime + stime;
}
