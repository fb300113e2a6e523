/* ingress_harness: what the ingress integration tests share.
 *
 * - ess-ingress processes on free ports (from ESS_BIN_DIR), with a fresh channel secret each;
 * - nats-servers of a test's own (to stop, freeze and restart): testkit_nats;
 * - LINE_IN look-ups by subject;
 * - a pid registry so that a failed case (cmocka jumps out of it) leaves nothing running
 *   (nor its own nats-servers and their stores):
 *   pass harness_teardown as the group teardown of ESS_TEST_MAIN.
 * Every helper fails the running test (cmocka assert) when something it needs does not work. */
#ifndef ESS_INGRESS_HARNESS_H
#define ESS_INGRESS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#define PUBLISH_TIMEOUT_MS 500 /* ESS_INGRESS_PUBLISH_TIMEOUT of the ingresses started here */

typedef struct ingress_proc {
    char secret[64];
    char secret_env[128];
    char nats_env[128];
    char listen_env[64];
    char base_url[64];
    char log_path[256];
    int pid;
} ingress_proc;

typedef struct wait_status {
    const ingress_proc *p;
    const char *path;
    long want;
} wait_status;

typedef struct line_in {
    natsConnection *nc;
    jsCtx *js;
} line_in;

/* The shared test server (ESS_TEST_NATS_URL). */
const char *shared_nats(void);

/* testkit_stop_tracked with SIGTERM (SIGKILL after timeout_ms) for a process the case
 * registered with testkit_track; returns the exit status as testkit_stop does. */
int harness_stop_process(int pid, int64_t timeout_ms);
int harness_teardown(void **state);

/* GET base_url+path; the status or 0. */
long get_status(const ingress_proc *p, const char *path);
/* testkit_wait_until condition: GET w->path answers w->want. */
bool status_is(void *closure);

/* Starts ess-ingress against nats_url with ESS_LOG_LEVEL=debug and a 500 ms publish timeout,
 * waits for /healthz (and /readyz when wait_ready). extra_env: up to 4 more "K=V",
 * NULL-terminated, or NULL. */
void ingress_start_with(ingress_proc *p, const char *nats_url, bool wait_ready,
                        const char *const *extra_env);
void ingress_start(ingress_proc *p, const char *nats_url, bool wait_ready);
/* Stops the ingress; returns its exit status and removes its log unless keep_log. */
int ingress_stop(ingress_proc *p, bool keep_log);

void line_in_open(line_in *l, const char *url);
void line_in_close(line_in *l);
/* Messages stored in LINE_IN under exactly this subject. */
uint64_t line_in_count(line_in *l, const char *subject);
/* The Nats-Msg-Id of every message on subject, in stream order, into ids[max][64];
 * returns how many there are (reads at most max). */
size_t line_in_msg_ids(line_in *l, const char *subject, char (*ids)[64], size_t max);
/* The subject ess-ingress publishes a source's events on when its channel secret is secret:
 * line.in.<kind>.<pseudonym of id> (ingress_webhook.h: ingress_subject). */
void subject_for(char *out, size_t size, const char *secret, const char *kind, const char *id);

#endif
