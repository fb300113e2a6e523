/* testkit: what every ESS test binary shares.
 *
 *   #include "testkit.h"
 *   ESS_TEST(parses_duration) { assert_int_equal(...); }
 *   ESS_TEST_MAIN(NULL, NULL)
 *
 * ess_add_test() (cmake/ess.cmake) scans the sources for ESS_TEST(name) and registers one
 * CTest entry per case; the binary runs the case named in argv[1] (all cases without one).
 *
 * Integration tests find their throwaway servers through the environment that tests/run
 * sets: ESS_TEST_NATS_URL, ESS_TEST_PG_DSN (a database each test may create schemas in). */
#ifndef ESS_TESTKIT_H
#define ESS_TESTKIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#ifndef TESTKIT_IMPLEMENTATION
#include "ess_test_list.h"
#endif

#define ESS_TEST(name) static void name(void **state __attribute__((unused)))

#define ESS_TEST_ENTRY_(name) cmocka_unit_test(name),
#define ESS_TEST_NAME_(name) #name,

int testkit_main(const struct CMUnitTest *tests, size_t count, const char *const *names,
                 CMFixtureFunction setup, CMFixtureFunction teardown, int argc, char **argv);

#define ESS_TEST_MAIN(setup, teardown)                                                       \
    int main(int argc, char **argv)                                                          \
    {                                                                                        \
        static const struct CMUnitTest tests[] = {ESS_TEST_LIST(ESS_TEST_ENTRY_)};           \
        static const char *const names[] = {ESS_TEST_LIST(ESS_TEST_NAME_)};                  \
        return testkit_main(tests, sizeof(tests) / sizeof(tests[0]), names, (setup),         \
                            (teardown), argc, argv);                                         \
    }

/* Monotonic milliseconds. */
int64_t testkit_now_ms(void);

/* Polls cond(closure) every few milliseconds until it returns true or timeout_ms passes.
 * Returns true when the condition held. Use instead of sleeping. */
bool testkit_wait_until(bool (*cond)(void *closure), void *closure, int64_t timeout_ms);

/* Required environment variable (fails the test with a clear message when unset). */
const char *testkit_env(const char *name);

/* A unique lower-case token for naming per-test streams, schemas and subjects: "t<pid>x<n>". */
void testkit_unique(char *out, size_t out_size);

/* Runs argv (NULL-terminated) with the given extra environment ("K=V" strings, NULL-terminated,
 * may be NULL), captures stdout+stderr into a heap string (*ret_output, caller frees), and
 * returns the exit status (or -1 on a failure to start / 128+signal). Bounded by timeout_ms. */
int testkit_run(const char *const *argv, const char *const *env, int64_t timeout_ms,
                char **ret_output);

/* Starts argv in the background with extra environment (as testkit_run), stdout+stderr
 * appended to log_path (NULL = inherit). Returns the pid, or -1. */
int testkit_spawn(const char *const *argv, const char *const *env, const char *log_path);

/* Sends sig to pid and waits at most timeout_ms for it to exit; SIGKILL after that.
 * Returns its exit status as testkit_run does (128+signal when killed by a signal). */
int testkit_stop(int pid, int sig, int64_t timeout_ms);

/* Processes a case started that must not outlive it, also when cmocka jumps out of the case
 * (a failed assertion), as testkit_nats_* does for nats-servers. testkit_track remembers pid
 * (32 at once at most; fails the case beyond). testkit_stop_tracked thaws it (a SIGSTOPped
 * process cannot handle a signal), stops it as testkit_stop does and forgets it; the same
 * return. testkit_stop_all_tracked does that with sig to every one left (for a teardown). */
void testkit_track(int pid);
int testkit_stop_tracked(int pid, int sig, int64_t timeout_ms);
void testkit_stop_all_tracked(int sig, int64_t timeout_ms);

/* Waits at most timeout_ms for the child pid to end on its own, and reaps it. Returns its exit
 * status as testkit_stop does (128+signal when a signal ended it), or -1 when it still runs
 * (it is left running). */
int testkit_wait_exit(int pid, int64_t timeout_ms);

/* A TCP port on 127.0.0.1 that was free a moment ago, never the same twice in a process.
 * Taken from 20000-32767, below the kernel's ephemeral range (32768-60999): a port from
 * that range can be taken by any outgoing connection (the tests open hundreds) between the
 * choice and the server's bind, which made stacks started by tests fail to listen. The same
 * range as deploy/local/lib.sh's ess_free_port. -1 when none was found. */
int testkit_free_port(void);

/* One HTTP request with libcurl. headers: NULL-terminated "Name: value" list or NULL.
 * body may be NULL (no body). *ret_status = HTTP status (0 when no answer), *ret_body heap
 * (caller frees; may be NULL when not wanted). Returns 0 on a transport success. */
int testkit_http(const char *method, const char *url, const char *const *headers,
                 const char *body, size_t body_len, int64_t timeout_ms, long *ret_status,
                 char **ret_body);

/* True once GET url answers 200 (each attempt bounded by 2 s), false after timeout_ms: for
 * waiting until a started service is healthy or ready. */
bool testkit_wait_http_ok(const char *url, int64_t timeout_ms);

/* Reads a whole file into a heap string (caller frees); NULL when unreadable. */
char *testkit_read_file(const char *path);

/* A new, empty PostgreSQL database on the ESS_TEST_PG_DSN server, named after
 * testkit_unique(); with migrate, `essctl db migrate` has been applied to it. Writes its DSN
 * (a URI) into dsn_out. Fails the test on any problem. Drop it with testkit_drop_database. */
void testkit_fresh_database(bool migrate, char *dsn_out, size_t dsn_size);
void testkit_drop_database(const char *dsn);

/* Directory holding built binaries (build/bin), from ESS_BIN_DIR set by CTest. */
const char *testkit_bin_dir(void);

/* A private JetStream nats-server for a test that must own its server (fixed stream and
 * durable names, or outages: stop, freeze with SIGSTOP, restart on the same port and store).
 * Listens on 127.0.0.1:port with its store in /tmp; its output goes to /dev/null. The
 * binary is $ESS_NATS_SERVER, else nats-server from PATH, /usr/sbin, /usr/local/sbin.
 * The struct is the caller's; testkit also remembers every server it started, so that a
 * case cmocka jumped out of can be cleaned up by testkit_nats_stop_all in a teardown. */
typedef struct testkit_nats {
    char url[64];    /* nats://127.0.0.1:<port> */
    char store[128]; /* its JetStream store directory */
    int port;
    int pid; /* > 0 while running; a test may signal it (SIGSTOP/SIGCONT) */
    /* Cluster members only (testkit_nats_cluster_prepare); zero for a single server. */
    char server_name[48]; /* JetStream's name for the node, as in stream cluster info */
    int cluster_port;
    char routes[256]; /* nats-route://127.0.0.1:<port> of every other member, comma-separated */
} testkit_nats;

/* Chooses a free port and creates a new store /tmp/ess-<name>-nats-<unique> (name: at most
 * 32 characters naming the test area), without starting the server. Fails the test on any
 * problem. */
void testkit_nats_prepare(testkit_nats *n, const char *name);

/* Prepares count (2..5) members of one JetStream cluster: each as testkit_nats_prepare makes
 * a server, plus a server name "<name>-<i>", a cluster port and routes to all the others.
 * Start each with testkit_nats_restart (a member accepts clients before the cluster has
 * elected its JetStream leader: wait for that with the API the test uses). */
void testkit_nats_cluster_prepare(testkit_nats *nodes, size_t count, const char *name);

/* Starts the server on n's port and store and waits (20 s at most) until it accepts
 * clients; fails the test otherwise. The first start after testkit_nats_prepare, or a restart
 * with everything stored before testkit_nats_halt. */
void testkit_nats_restart(testkit_nats *n);

/* testkit_nats_prepare then testkit_nats_restart: a running server with an empty store. */
void testkit_nats_start(testkit_nats *n, const char *name);

/* Stops the server if it runs (SIGCONT for a frozen one, SIGTERM, SIGKILL after 10 s) and
 * keeps its store and port for testkit_nats_restart. Returns its exit status as testkit_stop
 * does (0 when it was not running). */
int testkit_nats_halt(testkit_nats *n);

/* Halts the server and removes its store; n is zeroed. Harmless on a zeroed n or twice.
 * Returns 0, or -1 when the store could not be removed (also said on stderr). */
int testkit_nats_stop(testkit_nats *n);

/* Halts and removes every server testkit_nats_prepare made that is still around (for a
 * teardown after a failed case, whose testkit_nats may be gone with its stack frame). */
void testkit_nats_stop_all(void);

#endif
