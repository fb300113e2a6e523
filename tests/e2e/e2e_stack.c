#include "e2e_stack.h"

#include "testkit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

extern char **environ;

e2e_stack e2e_the_stack = {.guardian_fd = -1};

static const struct {
    const char *name;
    const char *listen_var;
} service_table[E2E_SERVICE_COUNT] = {
    [E2E_EMULATOR] = {"line-emulator", "ESS_EMULATOR_LISTEN"},
    [E2E_AUDIT] = {"ess-audit", "ESS_AUDIT_LISTEN"},
    [E2E_CONVERSATION] = {"ess-conversation", "ESS_CONVERSATION_LISTEN"},
    [E2E_GEOROUTER] = {"ess-georouter", "ESS_GEOROUTER_LISTEN"},
    [E2E_NOTIFIER] = {"ess-notifier", "ESS_NOTIFIER_LISTEN"},
    [E2E_INGRESS] = {"ess-ingress", "ESS_INGRESS_LISTEN"},
    [E2E_CONSOLE] = {"ess-console", "ESS_CONSOLE_LISTEN"},
};

/* ---- environment ---------------------------------------------------------------------------- */

static void env_add(e2e_stack *s, const char *name, const char *value)
{
    if (s->env_count >= E2E_ENV_MAX)
        fail_msg("too many variables for ess");
    int written = snprintf(s->env[s->env_count], E2E_ENV_LEN, "%s=%s", name, value);
    if (written < 0 || written >= E2E_ENV_LEN)
        fail_msg("variable %s too long", name);
    s->env_count++;
}

static void env_add_pair(e2e_stack *s, const char *pair)
{
    const char *equals = strchr(pair, '=');
    if (equals == NULL || equals == pair)
        fail_msg("extra variable without '=': %.40s", pair);
    char name[128];
    snprintf(name, sizeof(name), "%.*s", (int)(equals - pair), pair);
    env_add(s, name, equals + 1);
}

/* A developer's shell may carry a stack's addresses and secrets (eval "$(ess env)"): the test
 * chooses its own. What CTest and tests/run set stays. */
static void forget_inherited_ess_variables(void)
{
    char names[64][128];
    size_t count = 0;
    for (char **entry = environ; entry != NULL && *entry != NULL && count < 64; entry++) {
        if (strncmp(*entry, "ESS_", 4) != 0)
            continue;
        size_t len = strcspn(*entry, "=");
        if (len >= sizeof(names[0]))
            continue;
        memcpy(names[count], *entry, len);
        names[count][len] = '\0';
        if (strcmp(names[count], "ESS_BIN_DIR") == 0 ||
            strcmp(names[count], "ESS_SOURCE_DIR") == 0 ||
            strncmp(names[count], "ESS_TEST_", 9) == 0 ||
            strcmp(names[count], "ESS_NATS_SERVER") == 0)
            continue;
        count++;
    }
    for (size_t i = 0; i < count; i++)
        unsetenv(names[i]);
}

/* The NULL-terminated view of s->env for testkit_run. */
static void env_view(e2e_stack *s, const char **out, size_t out_count)
{
    size_t n = 0;
    for (size_t i = 0; i < s->env_count && n + 1 < out_count; i++)
        out[n++] = s->env[i];
    out[n] = NULL;
}

/* ---- the guardian --------------------------------------------------------------------------- */

/* A grandchild in its own session waits on a pipe whose only writer is this process. The
 * teardown writes 'd' (done) before closing it; EOF without it means the test died: the
 * guardian runs `ess down` and removes the directory. */
static void start_guardian(e2e_stack *s)
{
    int fds[2];
    /* Close-on-exec: nothing the test starts (ess, the services) may hold the write end. */
    if (pipe(fds) != 0 || fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0 ||
        fcntl(fds[1], F_SETFD, FD_CLOEXEC) != 0)
        fail_msg("pipe: %s", strerror(errno));
    const char *path = getenv("PATH");
    char path_env[2048], home_env[256];
    snprintf(path_env, sizeof(path_env), "PATH=%s",
             path != NULL ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
    snprintf(home_env, sizeof(home_env), "ESS_HOME=%s", s->home);
    pid_t middle = fork();
    if (middle < 0)
        fail_msg("fork: %s", strerror(errno));
    if (middle == 0) {
        if (fork() != 0)
            _exit(0);
        setsid();
        int null_fd = open("/dev/null", O_RDWR);
        if (null_fd >= 0) {
            dup2(null_fd, 0);
            dup2(null_fd, 1);
            dup2(null_fd, 2);
        }
        for (int fd = 3; fd < 1024; fd++)
            if (fd != fds[0])
                close(fd);
        char mark = 0;
        for (;;) {
            ssize_t n = read(fds[0], &mark, 1);
            if (n < 0 && errno == EINTR)
                continue;
            if (n == 1 && mark == 'd')
                _exit(0);
            if (n <= 0)
                break;
        }
        char *const argv[] = {"bash",
                              "-c",
                              "\"$1\" down >/dev/null 2>&1; rm -rf -- \"$2\"",
                              "e2e-guardian",
                              s->script,
                              s->root,
                              NULL};
        char *const envp[] = {path_env, home_env, NULL};
        execve("/bin/bash", argv, envp);
        _exit(127);
    }
    int status = 0;
    waitpid(middle, &status, 0);
    close(fds[0]);
    s->guardian_fd = fds[1];
}

static void release_guardian(e2e_stack *s)
{
    if (s->guardian_fd < 0)
        return;
    ssize_t written = write(s->guardian_fd, "d", 1);
    (void)written;
    close(s->guardian_fd);
    s->guardian_fd = -1;
}

/* ---- small helpers -------------------------------------------------------------------------- */

static bool http_get_ok(const char *url)
{
    long status = 0;
    testkit_http("GET", url, NULL, NULL, 0, 2000, &status, NULL);
    return status == 200;
}

static bool file_executable(const char *path)
{
    return access(path, X_OK) == 0;
}

/* True when pid runs (not a zombie) and one of its arguments equals want (want_prefix:
 * starts with want). */
static bool proc_has_arg(int pid, const char *want, bool want_prefix)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    char *stat = testkit_read_file(path);
    if (stat == NULL)
        return false;
    const char *close_paren = strrchr(stat, ')');
    bool zombie = close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'Z';
    free(stat);
    if (zombie)
        return false;
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    char args[4096];
    size_t len = fread(args, 1, sizeof(args) - 1, f);
    fclose(f);
    args[len] = '\0';
    size_t want_len = strlen(want);
    for (size_t at = 0; at < len; at += strlen(args + at) + 1) {
        const char *arg = args + at;
        if (want_prefix ? strncmp(arg, want, want_len) == 0 : strcmp(arg, want) == 0)
            return true;
    }
    return false;
}

static int read_pid_file(const char *path)
{
    char *text = testkit_read_file(path);
    if (text == NULL)
        return 0;
    char *end = NULL;
    long pid = strtol(text, &end, 10);
    bool valid = end != text && pid > 1 && pid < 1 << 22;
    free(text);
    return valid ? (int)pid : 0;
}

static void print_log_tails(e2e_stack *s)
{
    char dir_path[256];
    snprintf(dir_path, sizeof(dir_path), "%s/log", s->home);
    DIR *dir = opendir(dir_path);
    if (dir == NULL)
        return;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", dir_path, entry->d_name);
        char *text = testkit_read_file(path);
        if (text == NULL)
            continue;
        /* The last 30 lines. */
        size_t len = strlen(text);
        const char *start = text + len;
        for (int lines = 0; start > text && lines <= 30;) {
            start--;
            if (*start == '\n')
                lines++;
        }
        fprintf(stderr, "--- %s (tail)\n%s\n", path, start);
        free(text);
    }
    closedir(dir);
}

/* ---- ess and essctl ------------------------------------------------------------------------- */

static int run_ess(e2e_stack *s, const char *command, int64_t timeout_ms, char **ret_output)
{
    const char *env[E2E_ENV_MAX + 1];
    env_view(s, env, E2E_ENV_MAX + 1);
    const char *argv[] = {"/bin/bash", s->script, command, NULL};
    return testkit_run(argv, env, timeout_ms, ret_output);
}

char *e2e_ess(e2e_stack *s, const char *command, int64_t timeout_ms)
{
    char *output = NULL;
    int code = run_ess(s, command, timeout_ms, &output);
    if (code != 0) {
        fprintf(stderr, "ess %s exited %d:\n%s\n", command, code, output != NULL ? output : "");
        free(output);
        print_log_tails(s);
        fail_msg("deploy/local/ess %s failed (exit %d)", command, code);
    }
    return output;
}

int e2e_essctl_status(e2e_stack *s, const char *const *args, char **ret_output)
{
    char binary[E2E_PATH_MAX + 16], dsn_env[200], key_env[160];
    snprintf(binary, sizeof(binary), "%s/bin/essctl", s->build_dir);
    snprintf(dsn_env, sizeof(dsn_env), "ESS_PG_DSN=%s", s->pg_dsn);
    snprintf(key_env, sizeof(key_env), "ESS_DATA_KEY=%s", s->data_key);
    const char *argv[32] = {binary};
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *env[] = {dsn_env, key_env, NULL};
    return testkit_run(argv, env, 120000, ret_output);
}

char *e2e_essctl(e2e_stack *s, const char *const *args)
{
    char *output = NULL;
    int code = e2e_essctl_status(s, args, &output);
    if (code != 0)
        fail_msg("essctl %s %s exited %d: %s", args[0], args[1] != NULL ? args[1] : "", code,
                 output != NULL ? output : "");
    return output;
}

/* Reads ESS_DATA_KEY from `ess env` (export NAME=VALUE lines, values %q-quoted). */
static void read_stack_secrets(e2e_stack *s)
{
    char *output = e2e_ess(s, "env", 30000);
    s->data_key[0] = '\0';
    for (char *line = output; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        const char *prefix = "export ESS_DATA_KEY=";
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            const char *value = line + strlen(prefix);
            size_t n = 0;
            for (size_t i = 0; value[i] != '\0' && n + 1 < sizeof(s->data_key); i++) {
                if (value[i] == '\\' && value[i + 1] != '\0')
                    i++;
                s->data_key[n++] = value[i];
            }
            s->data_key[n] = '\0';
        }
        line = next;
    }
    free(output);
    if (s->data_key[0] == '\0' || s->data_key[0] == '\'' || s->data_key[0] == '$')
        fail_msg("`ess env` printed no usable ESS_DATA_KEY");
    st_error err = {0};
    if (vault_keys_from_base64(s->data_key, &s->keys, &err) != ST_OK)
        fail_msg("ESS_DATA_KEY of the stack: %s", err.message);
}

/* ---- SQL ------------------------------------------------------------------------------------ */

static bool pg_usable(e2e_stack *s)
{
    if (s->pg == NULL) {
        char conninfo[256];
        snprintf(conninfo, sizeof(conninfo), "%s?connect_timeout=3&application_name=ess-e2e-test",
                 s->pg_dsn);
        s->pg = PQconnectdb(conninfo);
    } else if (PQstatus(s->pg) != CONNECTION_OK) {
        PQreset(s->pg);
    }
    return PQstatus(s->pg) == CONNECTION_OK;
}

/* One attempt; a broken connection is reset and the statement tried once more. */
static PGresult *sql_exec(e2e_stack *s, const char *sql, int nparams, const char *const *params)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!pg_usable(s))
            continue;
        PGresult *result = PQexecParams(s->pg, sql, nparams, NULL, params, NULL, NULL, 0);
        ExecStatusType status = PQresultStatus(result);
        if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
            return result;
        if (PQstatus(s->pg) == CONNECTION_OK)
            fail_msg("%s: %s", sql, PQresultErrorMessage(result));
        PQclear(result);
    }
    fail_msg("%s: PostgreSQL unreachable: %s", sql, s->pg != NULL ? PQerrorMessage(s->pg) : "");
    return NULL;
}

char *e2e_sql_text(e2e_stack *s, const char *sql, int nparams, const char *const *params)
{
    PGresult *result = sql_exec(s, sql, nparams, params);
    char *copy = NULL;
    if (PQntuples(result) > 0 && PQnfields(result) > 0 && !PQgetisnull(result, 0, 0))
        copy = strdup(PQgetvalue(result, 0, 0));
    PQclear(result);
    return copy;
}

long long e2e_sql(e2e_stack *s, const char *sql, int nparams, const char *const *params)
{
    char *text = e2e_sql_text(s, sql, nparams, params);
    long long value = text != NULL ? strtoll(text, NULL, 10) : 0;
    free(text);
    return value;
}

typedef struct sql_wait {
    e2e_stack *s;
    const char *sql;
    int nparams;
    const char *const *params;
    long long expected, seen;
} sql_wait;

static bool sql_reached(void *closure)
{
    sql_wait *w = closure;
    w->seen = e2e_sql(w->s, w->sql, w->nparams, w->params);
    return w->seen == w->expected;
}

void e2e_wait_sql(e2e_stack *s, const char *sql, int nparams, const char *const *params,
                  long long expected)
{
    sql_wait w = {s, sql, nparams, params, expected, 0};
    if (!testkit_wait_until(sql_reached, &w, E2E_WAIT_MS))
        fail_msg("%s: %lld (want %lld)", sql, w.seen, expected);
}

/* ---- readiness ------------------------------------------------------------------------------ */

static bool service_ready(const e2e_service *service)
{
    char url[128];
    snprintf(url, sizeof(url), "%s/%s", service->url,
             strcmp(service->name, "line-emulator") == 0 ? "healthz" : "readyz");
    return http_get_ok(url);
}

static bool all_ready(void *closure)
{
    e2e_stack *s = closure;
    char url[128];
    snprintf(url, sizeof(url), "%s/healthz?js-enabled-only=true", s->nats_monitor_url);
    if (!http_get_ok(url) || !pg_usable(s))
        return false;
    for (int i = 0; i < E2E_SERVICE_COUNT; i++)
        if (s->services[i].built && !service_ready(&s->services[i]))
            return false;
    return true;
}

bool e2e_service_ready(e2e_stack *s, e2e_service_id id)
{
    return service_ready(&s->services[id]);
}

bool e2e_stack_wait_ready(e2e_stack *s, int64_t timeout_ms)
{
    return testkit_wait_until(all_ready, s, timeout_ms);
}

/* ---- up / down ------------------------------------------------------------------------------ */

/* A free port for variable name, written as prefix PORT suffix. */
static void add_port(e2e_stack *s, const char *name, const char *prefix, const char *suffix,
                     int *ret_port)
{
    int port = testkit_free_port();
    if (port <= 0)
        fail_msg("no free port");
    char value[96];
    snprintf(value, sizeof(value), "%s%d%s", prefix, port, suffix);
    env_add(s, name, value);
    *ret_port = port;
}

/* The stack's variables: fixed ones, a free port for every address, then extra_env. */
static void choose_addresses(e2e_stack *s, const char *const *extra_env)
{
    s->env_count = 0;
    env_add(s, "ESS_HOME", s->home);
    env_add(s, "ESS_SKIP_BUILD", "1");
    env_add(s, "ESS_BUILD_DIR", s->build_dir);
    env_add(s, "ESS_UP_TIMEOUT", "120");
    env_add(s, "ESS_STOP_TIMEOUT", "20");
    int nats_port = 0, monitor_port = 0, pg_port = 0;
    add_port(s, "ESS_NATS_URL", "nats://127.0.0.1:", "", &nats_port);
    add_port(s, "ESS_NATS_MONITOR_PORT", "", "", &monitor_port);
    add_port(s, "ESS_PG_DSN", "postgresql://ess@127.0.0.1:", "/ess", &pg_port);
    snprintf(s->nats_url, sizeof(s->nats_url), "nats://127.0.0.1:%d", nats_port);
    snprintf(s->nats_monitor_url, sizeof(s->nats_monitor_url), "http://127.0.0.1:%d", monitor_port);
    snprintf(s->pg_dsn, sizeof(s->pg_dsn), "postgresql://ess@127.0.0.1:%d/ess", pg_port);
    for (int i = 0; i < E2E_SERVICE_COUNT; i++) {
        e2e_service *service = &s->services[i];
        service->name = service_table[i].name;
        service->listen_var = service_table[i].listen_var;
        add_port(s, service->listen_var, "127.0.0.1:", "", &service->port);
        snprintf(service->url, sizeof(service->url), "http://127.0.0.1:%d", service->port);
        char binary[E2E_PATH_MAX + 64];
        snprintf(binary, sizeof(binary), "%s/bin/%s", s->build_dir, service->name);
        service->built = file_executable(binary);
    }
    for (size_t i = 0; extra_env != NULL && extra_env[i] != NULL; i++)
        env_add_pair(s, extra_env[i]);
}

void e2e_stack_up(e2e_stack *s, const char *const *extra_env)
{
    if (s->up)
        e2e_stack_down(s);
    memset(s, 0, sizeof(*s));
    s->guardian_fd = -1;
    forget_inherited_ess_variables();
    curl_global_init(CURL_GLOBAL_DEFAULT);

    const char *source = getenv("ESS_SOURCE_DIR");
    if (source == NULL || source[0] == '\0')
        fail_msg("ESS_SOURCE_DIR is not set (CTest sets it)");
    snprintf(s->script, sizeof(s->script), "%s/deploy/local/ess", source);
    snprintf(s->build_dir, sizeof(s->build_dir), "%s", testkit_bin_dir());
    char *slash = strrchr(s->build_dir, '/');
    if (slash == NULL || strcmp(slash, "/bin") != 0)
        fail_msg("ESS_BIN_DIR must be <build>/bin");
    *slash = '\0';

    /* PostgreSQL runs as user postgres when we are root: the directory must let it pass. */
    const char *tmp = getenv("TMPDIR");
    snprintf(s->root, sizeof(s->root), "%s/ess-e2e.XXXXXX",
             tmp != NULL && tmp[0] == '/' && strlen(tmp) < 80 ? tmp : "/tmp");
    if (mkdtemp(s->root) == NULL)
        fail_msg("mkdtemp: %s", strerror(errno));
    chmod(s->root, 0755);
    snprintf(s->home, sizeof(s->home), "%s/home", s->root);
    start_guardian(s);
    s->up = true; /* from here on the teardown has something to stop */

    for (int attempt = 1;; attempt++) {
        choose_addresses(s, extra_env);
        int64_t started = testkit_now_ms();
        char *output = NULL;
        int code = run_ess(s, "up", 240000, &output);
        if (code == 0) {
            fprintf(stderr, "e2e: ess up took %lld ms\n", (long long)(testkit_now_ms() - started));
            free(output);
            break;
        }
        fprintf(stderr, "e2e: ess up exited %d (attempt %d):\n%s\n", code, attempt,
                output != NULL ? output : "");
        free(output);
        if (attempt == 2) {
            print_log_tails(s);
            fail_msg("deploy/local/ess up failed (exit %d)", code);
        }
        /* Another test may have bound a port between our choosing and ess binding it: start
         * over in a fresh ESS_HOME on other ports. */
        output = NULL;
        run_ess(s, "down", 180000, &output);
        free(output);
        const char *argv[] = {"/bin/rm", "-rf", "--", s->home, NULL};
        if (testkit_run(argv, NULL, 60000, NULL) != 0)
            fail_msg("cannot remove %s", s->home);
    }
    read_stack_secrets(s);
    if (!e2e_stack_wait_ready(s, 120000)) {
        print_log_tails(s);
        fail_msg("the stack did not become ready");
    }
}

void e2e_stack_passed(e2e_stack *s)
{
    s->passed = true;
}

/* True when pid's environment holds exactly the variable entry ("K=V"). */
static bool proc_has_env(int pid, const char *entry)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/environ", pid);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    static char environment[1 << 16];
    size_t len = fread(environment, 1, sizeof(environment) - 1, f);
    fclose(f);
    environment[len] = '\0';
    for (size_t at = 0; at < len; at += strlen(environment + at) + 1)
        if (strcmp(environment + at, entry) == 0)
            return true;
    return false;
}

/* Processes whose command line or environment names the stack's directory: ours by
 * construction (every process `ess up` starts inherits ESS_HOME). */
static void kill_leftovers(e2e_stack *s)
{
    char home_entry[256];
    snprintf(home_entry, sizeof(home_entry), "ESS_HOME=%s", s->home);
    DIR *proc = opendir("/proc");
    if (proc == NULL)
        return;
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL) {
        char *end = NULL;
        long pid = strtol(entry->d_name, &end, 10);
        if (end == entry->d_name || *end != '\0' || pid == getpid())
            continue;
        if (proc_has_arg((int)pid, s->root, true) || proc_has_env((int)pid, home_entry)) {
            fprintf(stderr, "e2e: pid %ld of the stack outlived `ess down`: SIGKILL\n", pid);
            kill((pid_t)pid, SIGKILL);
        }
    }
    closedir(proc);
}

void e2e_stack_down(e2e_stack *s)
{
    if (!s->up)
        return;
    if (s->pg != NULL)
        PQfinish(s->pg);
    s->pg = NULL;
    if (!s->passed)
        print_log_tails(s);
    char *output = NULL;
    int64_t started = testkit_now_ms();
    int code = run_ess(s, "down", 180000, &output);
    fprintf(stderr, "e2e: ess down took %lld ms\n", (long long)(testkit_now_ms() - started));
    if (code != 0)
        fprintf(stderr, "ess down exited %d: %s\n", code, output != NULL ? output : "");
    free(output);
    kill_leftovers(s);
    const char *keep = getenv("ESS_TEST_KEEP_LOGS");
    if (keep != NULL && strcmp(keep, "1") == 0) {
        fprintf(stderr, "e2e: stack directory kept: %s\n", s->root);
    } else {
        const char *argv[] = {"/bin/rm", "-rf", "--", s->root, NULL};
        if (testkit_run(argv, NULL, 60000, NULL) != 0)
            fprintf(stderr, "e2e: cannot remove %s\n", s->root);
    }
    release_guardian(s);
    s->up = false;
}

/* ---- searching the stack's files ----------------------------------------------------------- */

/* Needles are found in one pass over each file: every position's first 8 bytes are looked up
 * in a table of the needles' first 8 bytes (needles are at least that long), and only a hit
 * is compared whole. Hundreds of needles cost about what one does. */
#define NEEDLE_PREFIX 8

typedef struct file_search {
    const char *const *needles;
    size_t needle_count;
    size_t *slots; /* power-of-two table of needle index + 1, 0 = empty */
    size_t slot_mask;
    size_t *next; /* needles sharing a prefix: index + 1 of the next, 0 = none */
    bool *seen;   /* per needle, for the file being read */
    const char *const *skip;
    char *found;
    size_t size;
    size_t used;
    size_t hits;
} file_search;

static uint64_t prefix_key(const char *bytes)
{
    uint64_t key;
    memcpy(&key, bytes, sizeof(key));
    return key;
}

static size_t slot_of(const file_search *search, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 20) & search->slot_mask;
}

static void index_needles(file_search *search)
{
    size_t count = 0;
    while (search->needles[count] != NULL)
        count++;
    size_t slots = 16;
    while (slots < 4 * count)
        slots *= 2;
    search->needle_count = count;
    search->slot_mask = slots - 1;
    search->slots = calloc(slots, sizeof(*search->slots));
    search->next = calloc(count + 1, sizeof(*search->next));
    search->seen = calloc(count + 1, sizeof(*search->seen));
    assert_true(search->slots != NULL && search->next != NULL && search->seen != NULL);
    for (size_t i = 0; i < count; i++) {
        if (strlen(search->needles[i]) < NEEDLE_PREFIX)
            fail_msg("e2e_home_files_holding: needle \"%s\" is shorter than %d bytes",
                     search->needles[i], NEEDLE_PREFIX);
        size_t slot = slot_of(search, prefix_key(search->needles[i]));
        /* Linear probing over distinct prefixes; a shared prefix chains in next[]. */
        while (search->slots[slot] != 0 &&
               prefix_key(search->needles[search->slots[slot] - 1]) !=
                   prefix_key(search->needles[i]))
            slot = (slot + 1) & search->slot_mask;
        search->next[i] = search->slots[slot];
        search->slots[slot] = i + 1;
    }
}

static void note_hit(file_search *search, const char *path, size_t needle)
{
    search->seen[needle] = true;
    search->hits++;
    int n = snprintf(search->found + search->used, search->size - search->used, "%s: %s\n", path,
                     search->needles[needle]);
    if (n > 0)
        search->used += (size_t)n < search->size - search->used ? (size_t)n
                                                                 : search->size - search->used - 1;
}

static void search_file(file_search *search, const char *path)
{
    char *data = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot read %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && st.st_size > 0) {
        data = malloc((size_t)st.st_size);
        assert_non_null(data);
        len = fread(data, 1, (size_t)st.st_size, f);
    }
    fclose(f);
    memset(search->seen, 0, search->needle_count * sizeof(*search->seen));
    for (size_t at = 0; data != NULL && at + NEEDLE_PREFIX <= len; at++) {
        uint64_t key = prefix_key(data + at);
        size_t slot = slot_of(search, key);
        while (search->slots[slot] != 0 &&
               prefix_key(search->needles[search->slots[slot] - 1]) != key)
            slot = (slot + 1) & search->slot_mask;
        for (size_t entry = search->slots[slot]; entry != 0; entry = search->next[entry - 1]) {
            size_t needle = entry - 1;
            size_t n = strlen(search->needles[needle]);
            if (!search->seen[needle] && at + n <= len &&
                memcmp(data + at, search->needles[needle], n) == 0)
                note_hit(search, path, needle);
        }
    }
    free(data);
}

static void search_tree(file_search *search, const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        fail_msg("cannot list %s: %s", dir, strerror(errno));
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        char path[E2E_PATH_MAX + 256];
        snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
        bool skipped = false;
        for (size_t i = 0; search->skip != NULL && search->skip[i] != NULL && !skipped; i++)
            skipped = strstr(path, search->skip[i]) != NULL;
        struct stat st;
        if (skipped || lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            search_tree(search, path);
        else if (S_ISREG(st.st_mode))
            search_file(search, path);
    }
    closedir(d);
}

size_t e2e_home_files_holding(e2e_stack *s, const char *const *needles, const char *const *skip,
                              char *ret_found, size_t size)
{
    assert_true(size > 0);
    ret_found[0] = '\0';
    file_search search = {.needles = needles, .skip = skip, .found = ret_found, .size = size};
    index_needles(&search);
    search_tree(&search, s->home);
    free(search.slots);
    free(search.next);
    free(search.seen);
    return search.hits;
}

int e2e_stack_teardown(void **state)
{
    (void)state;
    e2e_stack_down(&e2e_the_stack);
    return 0;
}

/* ---- faults --------------------------------------------------------------------------------- */

int e2e_service_pid(e2e_stack *s, e2e_service_id id)
{
    char path[256], binary[E2E_PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/run/%s.child", s->home, s->services[id].name);
    snprintf(binary, sizeof(binary), "%s/bin/%s", s->build_dir, s->services[id].name);
    int pid = read_pid_file(path);
    return pid > 0 && proc_has_arg(pid, binary, false) ? pid : 0;
}

typedef struct restart_wait {
    e2e_stack *s;
    e2e_service_id id;
    int old_pid;
} restart_wait;

static bool restarted(void *closure)
{
    restart_wait *w = closure;
    int pid = e2e_service_pid(w->s, w->id);
    return pid != 0 && pid != w->old_pid && service_ready(&w->s->services[w->id]);
}

void e2e_kill_service(e2e_stack *s, e2e_service_id id)
{
    int pid = e2e_service_pid(s, id);
    if (pid == 0)
        fail_msg("%s is not running", s->services[id].name);
    if (kill(pid, SIGKILL) != 0)
        fail_msg("kill %s: %s", s->services[id].name, strerror(errno));
    restart_wait w = {s, id, pid};
    if (!testkit_wait_until(restarted, &w, E2E_WAIT_MS)) {
        print_log_tails(s);
        fail_msg("%s was not restarted by its supervisor", s->services[id].name);
    }
}

typedef struct gone_wait {
    int pid;
    const char *arg;
} gone_wait;

static bool gone(void *closure)
{
    gone_wait *w = closure;
    return !proc_has_arg(w->pid, w->arg, false);
}

static void signal_and_wait_gone(int pid, const char *arg, int sig, const char *what)
{
    if (pid == 0 || !proc_has_arg(pid, arg, false))
        fail_msg("%s is not running", what);
    if (kill(pid, sig) != 0)
        fail_msg("kill %s: %s", what, strerror(errno));
    gone_wait w = {pid, arg};
    if (!testkit_wait_until(gone, &w, E2E_WAIT_MS))
        fail_msg("%s did not end", what);
}

void e2e_kill_nats(e2e_stack *s)
{
    char pid_path[256], conf[256];
    snprintf(pid_path, sizeof(pid_path), "%s/run/nats.pid", s->home);
    snprintf(conf, sizeof(conf), "%s/nats/nats.conf", s->home);
    signal_and_wait_gone(read_pid_file(pid_path), conf, SIGKILL, "nats-server");
}

void e2e_crash_pg(e2e_stack *s)
{
    char pid_path[256], data[256];
    snprintf(pid_path, sizeof(pid_path), "%s/pg/data/postmaster.pid", s->home);
    snprintf(data, sizeof(data), "%s/pg/data", s->home);
    signal_and_wait_gone(read_pid_file(pid_path), data, SIGQUIT, "PostgreSQL");
    if (s->pg != NULL)
        PQfinish(s->pg);
    s->pg = NULL;
}

void e2e_user_hash_hex(e2e_stack *s, const char *user_id, char ret_hex[65])
{
    unsigned char hash[VAULT_HASH_BYTES];
    vault_lookup_hash(&s->keys, "line.user", user_id, hash);
    vault_hex(hash, sizeof(hash), ret_hex);
}
