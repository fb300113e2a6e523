#define TESTKIT_IMPLEMENTATION
#include "testkit.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <libpq-fe.h>

int testkit_main(const struct CMUnitTest *tests, size_t count, const char *const *names,
                 CMFixtureFunction setup, CMFixtureFunction teardown, int argc, char **argv)
{
    if (argc > 1) {
        bool known = false;
        for (size_t i = 0; i < count; i++)
            if (strcmp(names[i], argv[1]) == 0)
                known = true;
        if (!known) {
            fprintf(stderr, "no test case named '%s'\n", argv[1]);
            return 2;
        }
        cmocka_set_test_filter(argv[1]);
    }
    return _cmocka_run_group_tests(argv[0], tests, count, setup, teardown);
}

int64_t testkit_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool testkit_wait_until(bool (*cond)(void *closure), void *closure, int64_t timeout_ms)
{
    int64_t deadline = testkit_now_ms() + timeout_ms;
    for (;;) {
        if (cond(closure))
            return true;
        if (testkit_now_ms() >= deadline)
            return false;
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

const char *testkit_env(const char *name)
{
    const char *value = getenv(name);
    if (value == NULL || value[0] == '\0')
        fail_msg("%s is not set: run the tests through tests/run, which starts the servers",
                 name);
    return value;
}

void testkit_unique(char *out, size_t out_size)
{
    static unsigned counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, out_size, "t%ldx%ldx%u", (long)getpid(), (long)(ts.tv_nsec % 100000),
             counter++);
}

const char *testkit_bin_dir(void)
{
    const char *dir = getenv("ESS_BIN_DIR");
    return dir != NULL ? dir : "build/bin";
}

static int exit_code(int status)
{
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

int testkit_run(const char *const *argv, const char *const *env, int64_t timeout_ms,
                char **ret_output)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 4096, len = 0;
    char *output = malloc(cap);
    int64_t deadline = testkit_now_ms() + timeout_ms;
    bool timed_out = false;
    for (;;) {
        int64_t left = deadline - testkit_now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int ready = poll(&pfd, 1, (int)left);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            continue;
        if (len + 1024 > cap) {
            cap *= 2;
            output = realloc(output, cap);
        }
        ssize_t n = read(fds[0], output + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fds[0]);
    output[len] = '\0';
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (ret_output != NULL)
        *ret_output = output;
    else
        free(output);
    if (timed_out)
        return -1;
    return exit_code(status);
}

int testkit_spawn(const char *const *argv, const char *const *env, const char *log_path)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (log_path != NULL) {
            int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        }
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return (int)pid;
}

int testkit_stop(int pid, int sig, int64_t timeout_ms)
{
    if (pid <= 0)
        return -1;
    kill(pid, sig);
    int64_t deadline = testkit_now_ms() + timeout_ms;
    int status = 0;
    for (;;) {
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid)
            break;
        if (testkit_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return exit_code(status);
}

static int tracked_pids[32];

void testkit_track(int pid)
{
    for (size_t i = 0; i < sizeof(tracked_pids) / sizeof(tracked_pids[0]); i++)
        if (tracked_pids[i] == 0) {
            tracked_pids[i] = pid;
            return;
        }
    fail_msg("testkit_track: more than %zu processes at once",
             sizeof(tracked_pids) / sizeof(tracked_pids[0]));
}

int testkit_stop_tracked(int pid, int sig, int64_t timeout_ms)
{
    if (pid > 0)
        kill(pid, SIGCONT);
    int code = testkit_stop(pid, sig, timeout_ms);
    for (size_t i = 0; i < sizeof(tracked_pids) / sizeof(tracked_pids[0]); i++)
        if (tracked_pids[i] == pid)
            tracked_pids[i] = 0;
    return code;
}

void testkit_stop_all_tracked(int sig, int64_t timeout_ms)
{
    for (size_t i = 0; i < sizeof(tracked_pids) / sizeof(tracked_pids[0]); i++)
        if (tracked_pids[i] > 0)
            testkit_stop_tracked(tracked_pids[i], sig, timeout_ms);
}

typedef struct exit_wait {
    int pid;
    int status;
} exit_wait;

static bool exited(void *closure)
{
    exit_wait *w = closure;
    int status = 0;
    if (waitpid(w->pid, &status, WNOHANG) != w->pid)
        return false;
    w->status = exit_code(status);
    return true;
}

int testkit_wait_exit(int pid, int64_t timeout_ms)
{
    exit_wait w = {.pid = pid, .status = -1};
    if (pid <= 0 || !testkit_wait_until(exited, &w, timeout_ms))
        return -1;
    return w.status;
}

#define FREE_PORT_FIRST 20000
#define FREE_PORT_COUNT 12768 /* up to 32767 */

static bool port_bindable(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool free_now = bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return free_now;
}

int testkit_free_port(void)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static unsigned char handed_out[FREE_PORT_COUNT];
    static unsigned int seed;
    pthread_mutex_lock(&lock);
    if (seed == 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        seed = (unsigned int)getpid() * 2654435761u ^ (unsigned int)now.tv_nsec;
        if (seed == 0)
            seed = 1;
    }
    int port = -1;
    for (int attempt = 0; attempt < 2000 && port < 0; attempt++) {
        int index = (int)(rand_r(&seed) % FREE_PORT_COUNT);
        if (handed_out[index])
            continue;
        if (port_bindable(FREE_PORT_FIRST + index)) {
            handed_out[index] = 1;
            port = FREE_PORT_FIRST + index;
        }
    }
    pthread_mutex_unlock(&lock);
    return port;
}

typedef struct http_body {
    char *text;
    size_t len;
} http_body;

static size_t collect_body(char *data, size_t size, size_t count, void *closure)
{
    http_body *b = closure;
    size_t n = size * count;
    char *bigger = realloc(b->text, b->len + n + 1);
    if (bigger == NULL)
        return 0;
    memcpy(bigger + b->len, data, n);
    b->text = bigger;
    b->len += n;
    b->text[b->len] = '\0';
    return n;
}

int testkit_http(const char *method, const char *url, const char *const *headers,
                 const char *body, size_t body_len, int64_t timeout_ms, long *ret_status,
                 char **ret_body)
{
    CURL *curl = curl_easy_init();
    if (curl == NULL)
        return -1;
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        list = curl_slist_append(list, headers[i]);
    http_body received = {.text = calloc(1, 1), .len = 0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &received);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    CURLcode code = curl_easy_perform(curl);
    long status = 0;
    if (code == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    *ret_status = status;
    if (ret_body != NULL)
        *ret_body = received.text;
    else
        free(received.text);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return code == CURLE_OK ? 0 : -1;
}

static bool http_ok(void *closure)
{
    long status = 0;
    testkit_http("GET", closure, NULL, NULL, 0, 2000, &status, NULL);
    return status == 200;
}

bool testkit_wait_http_ok(const char *url, int64_t timeout_ms)
{
    return testkit_wait_until(http_ok, (void *)url, timeout_ms);
}

char *testkit_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap *= 2;
            text = realloc(text, cap);
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        if (n == 0)
            break;
        len += n;
    }
    fclose(f);
    text[len] = '\0';
    return text;
}

/* Builds the DSN of database `name` on the server of ESS_TEST_PG_DSN (a URI). */
static void dsn_for(const char *name, char *out, size_t out_size)
{
    const char *base = testkit_env("ESS_TEST_PG_DSN");
    const char *scheme_end = strstr(base, "://");
    if (scheme_end == NULL)
        fail_msg("ESS_TEST_PG_DSN must be a postgresql:// URI");
    const char *path = strchr(scheme_end + 3, '/');
    size_t prefix = path != NULL ? (size_t)(path - base) : strlen(base);
    const char *query = path != NULL ? strchr(path, '?') : NULL;
    snprintf(out, out_size, "%.*s/%s%s", (int)prefix, base, name, query != NULL ? query : "");
}

static void admin_exec(const char *sql)
{
    PGconn *conn = PQconnectdb(testkit_env("ESS_TEST_PG_DSN"));
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("cannot reach the test PostgreSQL: %s", PQerrorMessage(conn));
    PGresult *result = PQexec(conn, sql);
    if (PQresultStatus(result) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    PQclear(result);
    PQfinish(conn);
}

void testkit_fresh_database(bool migrate, char *dsn_out, size_t dsn_size)
{
    char name[64], sql[160];
    testkit_unique(name, sizeof(name));
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    admin_exec(sql);
    dsn_for(name, dsn_out, dsn_size);
    if (!migrate)
        return;
    char essctl[512], env_dsn[1024];
    snprintf(essctl, sizeof(essctl), "%s/essctl", testkit_bin_dir());
    snprintf(env_dsn, sizeof(env_dsn), "ESS_PG_DSN=%s", dsn_out);
    const char *argv[] = {essctl, "db", "migrate", NULL};
    const char *env[] = {env_dsn, NULL};
    char *output = NULL;
    int code = testkit_run(argv, env, 60000, &output);
    if (code != 0)
        fail_msg("essctl db migrate exited %d: %s", code, output);
    free(output);
}

void testkit_drop_database(const char *dsn)
{
    const char *slash = strrchr(dsn, '/');
    if (slash == NULL)
        return;
    char name[128];
    size_t len = strcspn(slash + 1, "?");
    if (len == 0 || len >= sizeof(name))
        return;
    memcpy(name, slash + 1, len);
    name[len] = '\0';
    char sql[200];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    admin_exec(sql);
}

/* ---- a private nats-server ---------------------------------------------------------------- */

#define NATS_READY_MS 20000
#define NATS_STOP_MS 10000
#define NATS_PROBE_MS 200

/* Servers testkit_nats_prepare made and nobody stopped yet: copies, not pointers, because a
 * failed case's testkit_nats may have lived on its stack. */
static struct {
    char store[sizeof(((testkit_nats *)0)->store)];
    int pid;
} live_nats[8];

static void nats_forget(const char *store)
{
    for (size_t i = 0; i < sizeof(live_nats) / sizeof(live_nats[0]); i++)
        if (live_nats[i].store[0] != '\0' && strcmp(live_nats[i].store, store) == 0) {
            live_nats[i].store[0] = '\0';
            live_nats[i].pid = 0;
        }
}

static void nats_note_pid(const char *store, int pid)
{
    for (size_t i = 0; i < sizeof(live_nats) / sizeof(live_nats[0]); i++)
        if (live_nats[i].store[0] != '\0' && strcmp(live_nats[i].store, store) == 0)
            live_nats[i].pid = pid;
}

/* $ESS_NATS_SERVER, else nats-server from PATH or the sbin directories (Debian installs it in
 * /usr/sbin, not always on a test's PATH). */
static void nats_find_binary(char *out, size_t out_size)
{
    const char *given = getenv("ESS_NATS_SERVER");
    if (given != NULL && given[0] != '\0') {
        if ((size_t)snprintf(out, out_size, "%s", given) >= out_size)
            fail_msg("ESS_NATS_SERVER is too long");
        return;
    }
    const char *path = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof(dirs), "%.3500s:/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin",
             path != NULL ? path : "");
    for (char *dir = dirs, *end; dir != NULL; dir = end) {
        end = strchr(dir, ':');
        if (end != NULL)
            *end++ = '\0';
        if ((size_t)snprintf(out, out_size, "%s/nats-server", dir[0] != '\0' ? dir : ".") <
                out_size &&
            access(out, X_OK) == 0)
            return;
    }
    fail_msg("nats-server not found (set ESS_NATS_SERVER)");
}

/* Reads from fd into buf (NUL-terminated) until it holds `want` or the deadline passes. */
static bool nats_read_until(int fd, char *buf, size_t buf_size, const char *want,
                            int64_t deadline)
{
    size_t len = strlen(buf);
    while (strstr(buf, want) == NULL) {
        int64_t left = deadline - testkit_now_ms();
        if (left <= 0 || len + 1 >= buf_size)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, (int)left);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            return false;
        ssize_t got = read(fd, buf + len, buf_size - len - 1);
        if (got <= 0)
            return false;
        len += (size_t)got;
        buf[len] = '\0';
    }
    return true;
}

/* True when the server at closure's port greets a client and answers its PING, as a client
 * library's connect would require (within NATS_PROBE_MS). */
static bool nats_accepts_clients(void *closure)
{
    const testkit_nats *n = closure;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    bool ok = false;
    int64_t deadline = testkit_now_ms() + NATS_PROBE_MS;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)n->port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char buf[8192] = "";
    static const char hello[] = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n";
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
        goto cleanup;
    if (!nats_read_until(fd, buf, sizeof(buf), "\r\n", deadline) || strncmp(buf, "INFO ", 5) != 0)
        goto cleanup;
    if (write(fd, hello, sizeof(hello) - 1) != (ssize_t)(sizeof(hello) - 1))
        goto cleanup;
    ok = nats_read_until(fd, buf, sizeof(buf), "PONG\r\n", deadline);
cleanup:
    close(fd);
    return ok;
}

static int nats_remove_store(const char *store)
{
    if (store[0] == '\0')
        return 0;
    const char *argv[] = {"/bin/rm", "-rf", store, NULL};
    if (testkit_run(argv, NULL, 20000, NULL) != 0) {
        fprintf(stderr, "cannot remove %s\n", store);
        return -1;
    }
    return 0;
}

void testkit_nats_prepare(testkit_nats *n, const char *name)
{
    memset(n, 0, sizeof(*n));
    if (name == NULL || strlen(name) > 32)
        fail_msg("testkit_nats_prepare: a name of at most 32 characters is required");
    char unique[64];
    testkit_unique(unique, sizeof(unique));
    if ((size_t)snprintf(n->store, sizeof(n->store), "/tmp/ess-%s-nats-%s", name, unique) >=
        sizeof(n->store))
        fail_msg("testkit_nats_prepare: store path too long");
    const size_t slots = sizeof(live_nats) / sizeof(live_nats[0]);
    size_t slot = 0;
    while (slot < slots && live_nats[slot].store[0] != '\0')
        slot++;
    if (slot == slots)
        fail_msg("testkit_nats_prepare: more than %zu servers at once", slots);
    if (mkdir(n->store, 0700) != 0)
        fail_msg("cannot create %s: %s", n->store, strerror(errno));
    memcpy(live_nats[slot].store, n->store, sizeof(n->store));
    live_nats[slot].pid = 0;
    n->port = testkit_free_port();
    if (n->port <= 0)
        fail_msg("testkit_nats_prepare: no free port");
    snprintf(n->url, sizeof(n->url), "nats://127.0.0.1:%d", n->port);
}

void testkit_nats_restart(testkit_nats *n)
{
    if (n->store[0] == '\0' || n->port <= 0)
        fail_msg("testkit_nats_restart: the server was not prepared");
    if (n->pid > 0)
        fail_msg("testkit_nats_restart: the server is running (pid %d)", n->pid);
    char binary[512], port_text[16], cluster_url[64];
    nats_find_binary(binary, sizeof(binary));
    snprintf(port_text, sizeof(port_text), "%d", n->port);
    const char *argv[20] = {binary, "-js", "-a", "127.0.0.1", "-p", port_text, "-sd", n->store};
    if (n->cluster_port > 0) {
        snprintf(cluster_url, sizeof(cluster_url), "nats://127.0.0.1:%d", n->cluster_port);
        const char *cluster_args[] = {"--name",    n->server_name, "--cluster_name", "ess-test",
                                      "--cluster", cluster_url,    "--routes",       n->routes};
        memcpy(&argv[8], cluster_args, sizeof(cluster_args));
    }
    n->pid = testkit_spawn(argv, NULL, "/dev/null");
    if (n->pid <= 0)
        fail_msg("cannot start %s", binary);
    nats_note_pid(n->store, n->pid);
    if (!testkit_wait_until(nats_accepts_clients, n, NATS_READY_MS))
        fail_msg("nats-server on port %d did not accept clients within %d ms", n->port,
                 NATS_READY_MS);
}

void testkit_nats_cluster_prepare(testkit_nats *nodes, size_t count, const char *name)
{
    if (count < 2 || count > 5)
        fail_msg("testkit_nats_cluster_prepare: a cluster has 2..5 members, not %zu", count);
    for (size_t i = 0; i < count; i++) {
        testkit_nats_prepare(&nodes[i], name);
        snprintf(nodes[i].server_name, sizeof(nodes[i].server_name), "%s-%zu", name, i + 1);
        nodes[i].cluster_port = testkit_free_port();
        if (nodes[i].cluster_port <= 0)
            fail_msg("testkit_nats_cluster_prepare: no free port");
    }
    for (size_t i = 0; i < count; i++) {
        size_t len = 0;
        for (size_t k = 0; k < count; k++) {
            if (k == i)
                continue;
            len += (size_t)snprintf(nodes[i].routes + len, sizeof(nodes[i].routes) - len,
                                    "%snats-route://127.0.0.1:%d", len > 0 ? "," : "",
                                    nodes[k].cluster_port);
        }
    }
}

void testkit_nats_start(testkit_nats *n, const char *name)
{
    testkit_nats_prepare(n, name);
    testkit_nats_restart(n);
}

/* A frozen server (SIGSTOP) cannot handle SIGTERM: thaw it first. */
static int nats_halt_pid(int pid)
{
    if (pid <= 0)
        return 0;
    kill(pid, SIGCONT);
    return testkit_stop(pid, SIGTERM, NATS_STOP_MS);
}

int testkit_nats_halt(testkit_nats *n)
{
    int code = nats_halt_pid(n->pid);
    n->pid = 0;
    nats_note_pid(n->store, 0);
    return code;
}

int testkit_nats_stop(testkit_nats *n)
{
    testkit_nats_halt(n);
    int removed = nats_remove_store(n->store);
    nats_forget(n->store);
    memset(n, 0, sizeof(*n));
    return removed;
}

void testkit_nats_stop_all(void)
{
    for (size_t i = 0; i < sizeof(live_nats) / sizeof(live_nats[0]); i++) {
        if (live_nats[i].store[0] == '\0')
            continue;
        nats_halt_pid(live_nats[i].pid);
        nats_remove_store(live_nats[i].store);
        live_nats[i].store[0] = '\0';
        live_nats[i].pid = 0;
    }
}
