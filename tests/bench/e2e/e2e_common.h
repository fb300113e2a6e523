/* e2e_common: what the end-to-end load tool's commands share — clocks, bounded option
 * parsing, a keep-alive HTTP client over libcurl, percentiles and per-process CPU time.
 * A benchmark, not a service: a bad option or a broken environment ends the process with
 * exit code 2 after one line on stderr. */
#ifndef E2E_COMMON_H
#define E2E_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

/* Wall clock in milliseconds since the epoch: the emulator stamps its records with the same
 * clock (same machine), so the tool's own instants can be compared with them. */
int64_t e2e_wall_ms(void);
/* Monotonic clock in nanoseconds, for durations measured by the tool alone. */
int64_t e2e_mono_ns(void);
/* Sleeps ms milliseconds (interrupted sleeps resume). */
void e2e_sleep_ms(int64_t ms);

/* Parses a decimal integer in [min, max]; exits 2 naming option when it is not one. */
long e2e_parse_long(const char *option, const char *text, long min, long max);
/* Parses a decimal number in [min, max]; exits 2 naming option when it is not one. */
double e2e_parse_double(const char *option, const char *text, double min, double max);
/* Exits 2 with a message (printf format) on stderr. */
void e2e_die(const char *format, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A keep-alive HTTP/1.1 client for one thread: one curl handle, reused, so calls after the
 * first skip the connection set-up. Not thread-safe: one per thread. */
typedef struct e2e_http {
    CURL *curl;
    struct curl_slist *headers;
    char *body; /* the last answer's body, NUL-terminated; owned by the client */
    size_t len, capacity;
} e2e_http;

/* Initialises a client (exits 2 when curl cannot). */
void e2e_http_init(e2e_http *client);
/* Frees what the client holds; accepts a zeroed client. */
void e2e_http_done(e2e_http *client);
/* One request to url (GET when payload is NULL and method is "GET"; JSON body otherwise).
 * Returns the HTTP status, 0 when no answer came (connection refused, timeout). The answer's
 * body stays in client->body (borrowed until the next call). Blocks at most timeout_ms. */
long e2e_http_call(e2e_http *client, const char *method, const char *url, const char *payload,
                   long timeout_ms);

/* Sorts values (in place) and returns the nearest-rank percentile p (0 < p <= 100); 0 for an
 * empty set. */
int64_t e2e_percentile(int64_t *values, size_t count, double p);
/* Sorts values in place (ascending). */
void e2e_sort(int64_t *values, size_t count);

/* utime + stime of a process in clock ticks from /proc/PID/stat; -1 when it is gone. */
long long e2e_cpu_ticks(int pid);

/* Copies at most size-1 bytes of text and terminates; true when all of it fitted. */
bool e2e_copy(char *out, size_t size, const char *text);

#endif
