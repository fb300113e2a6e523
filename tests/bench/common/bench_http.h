/* bench_http: the raw HTTP/1.1 keep-alive client of the load generators
 * (tests/bench/ingress/loadgen.c, tests/bench/e2e/e2e_blast.c). Requests are built whole
 * before the clock starts; sending and reading them costs a send() and a recv() or two, so the
 * figures measure the server, not a client library. */
#ifndef ESS_BENCH_HTTP_H
#define ESS_BENCH_HTTP_H

#include <stdbool.h>
#include <stddef.h>

/* Largest answer head read (status line and headers). */
#define BENCH_HTTP_HEAD_MAX 8192
/* Largest answer body drained. */
#define BENCH_HTTP_BODY_MAX (1L << 20)

/* A TCP connection to host (IPv4 text) and port, with TCP_NODELAY; the fd, or -1. */
int bench_http_connect(const char *host, int port);
/* Sends all of bytes; false when the connection failed. */
bool bench_http_send_all(int fd, const char *bytes, size_t len);
/* Reads one answer framed by Content-Length (its body read and dropped). Returns its status,
 * or -1 when the connection failed or the answer is not HTTP/1.1 with a Content-Length.
 * *ret_reusable is false when the server said Connection: close. */
int bench_http_read_answer(int fd, bool *ret_reusable);

#endif
