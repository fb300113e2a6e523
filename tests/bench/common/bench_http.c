/* bench_http: see bench_http.h. */
#include "bench_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

int bench_http_connect(const char *host, int port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int on = 1;
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool bench_http_send_all(int fd, const char *bytes, size_t len)
{
    size_t sent = 0;
    while (sent < len) {
        ssize_t n = send(fd, bytes + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        sent += (size_t)n;
    }
    return true;
}

int bench_http_read_answer(int fd, bool *ret_reusable)
{
    char head[BENCH_HTTP_HEAD_MAX + 1];
    size_t have = 0;
    const char *blank = NULL;
    while (blank == NULL) {
        if (have >= BENCH_HTTP_HEAD_MAX)
            return -1;
        ssize_t n = recv(fd, head + have, BENCH_HTTP_HEAD_MAX - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        have += (size_t)n;
        head[have] = '\0';
        blank = strstr(head, "\r\n\r\n");
    }
    int status = 0;
    if (strncmp(head, "HTTP/1.1 ", 9) != 0 || sscanf(head + 9, "%3d", &status) != 1)
        return -1;
    long content_length = -1;
    *ret_reusable = true;
    for (const char *line = strstr(head, "\r\n") + 2; line < blank;
         line = strstr(line, "\r\n") + 2) {
        if (strncasecmp(line, "content-length:", 15) == 0) {
            content_length = strtol(line + 15, NULL, 10);
        } else if (strncasecmp(line, "connection:", 11) == 0 && strstr(line, "close") != NULL &&
                   strstr(line, "close") < strstr(line, "\r\n")) {
            *ret_reusable = false;
        }
    }
    if (content_length < 0 || content_length > BENCH_HTTP_BODY_MAX)
        return -1;
    size_t body_have = have - (size_t)(blank + 4 - head);
    char sink[4096];
    while ((long)body_have < content_length) {
        size_t want = (size_t)content_length - body_have;
        ssize_t n = recv(fd, sink, want < sizeof(sink) ? want : sizeof(sink), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        body_have += (size_t)n;
    }
    return status;
}
