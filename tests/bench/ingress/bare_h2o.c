/* bench_bare_h2o: the ceiling for the ingress benchmark. The same libh2o event loop and
 * HTTP/1.1 settings, one thread, a handler that verifies x-line-signature on the raw body
 * and answers 200 - no JSON parsing, no NATS, no metrics.
 *
 *   bench_bare_h2o --listen 127.0.0.1:PORT --secret S
 * Runs until killed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o.h>

#include "ingress_signature.h"

static const char *channel_secret;
static size_t channel_secret_len;
static h2o_globalconf_t config;
static h2o_context_t context;
static h2o_accept_ctx_t accept_context;

static int on_webhook(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
        return -1;
    h2o_iovec_t signature = h2o_iovec_init(NULL, 0);
    for (size_t i = 0; i < req->headers.size; i++)
        if (ingress_signature_header_matches(req->headers.entries[i].name->base,
                                             req->headers.entries[i].name->len))
            signature = req->headers.entries[i].value;
    bool valid =
        ingress_signature_verify(channel_secret, channel_secret_len, req->entity.base,
                                 req->entity.len, signature.base, signature.len, NULL) == ST_OK;
    req->res.status = valid ? 200 : 401;
    req->res.reason = valid ? "OK" : "Unauthorized";
    req->res.content_length = 3;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/json"));
    h2o_send_inline(req, "{}\n", 3);
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock != NULL)
        h2o_accept(&accept_context, sock);
}

int main(int argc, char **argv)
{
    const char *listen_address = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--listen") == 0)
            listen_address = argv[i + 1];
        else if (strcmp(argv[i], "--secret") == 0)
            channel_secret = argv[i + 1];
    }
    if (listen_address == NULL || channel_secret == NULL) {
        fprintf(stderr, "usage: bench_bare_h2o --listen HOST:PORT --secret S\n");
        return 2;
    }
    channel_secret_len = strlen(channel_secret);
    char host[64];
    const char *colon = strrchr(listen_address, ':');
    if (colon == NULL || (size_t)(colon - listen_address) >= sizeof(host))
        return 2;
    memcpy(host, listen_address, (size_t)(colon - listen_address));
    host[colon - listen_address] = '\0';
    long port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535)
        return 2;

    h2o_config_init(&config);
    config.http1.upgrade_to_http2 = 0;
    config.max_request_entity_size = 1024 * 1024;
    h2o_hostconf_t *hostconf =
        h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/line/webhook", 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_webhook;

    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_context_init(&context, loop, &config);
    accept_context.ctx = &context;
    accept_context.hosts = config.hosts;

    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    if (fd < 0 || inet_pton(AF_INET, host, &addr.sin_addr) != 1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, SOMAXCONN) != 0) {
        perror("listen");
        return 1;
    }
    h2o_socket_t *listener = h2o_evloop_socket_create(loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(listener, on_accept);
    fprintf(stderr, "bench_bare_h2o listening on %s\n", listen_address);
    for (;;)
        h2o_evloop_run(loop, INT32_MAX);
}
