#include "ingress_harness.h"

#include "testkit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vault.h"

int harness_stop_process(int pid, int64_t timeout_ms)
{
    return testkit_stop_tracked(pid, SIGTERM, timeout_ms);
}

/* ---- ess-ingress ------------------------------------------------------------------------ */

long get_status(const ingress_proc *p, const char *path)
{
    char url[128];
    snprintf(url, sizeof(url), "%s%s", p->base_url, path);
    long status = 0;
    testkit_http("GET", url, NULL, NULL, 0, 2000, &status, NULL);
    return status;
}

bool status_is(void *closure)
{
    wait_status *w = closure;
    return get_status(w->p, w->path) == w->want;
}

/* Starts ess-ingress; extra_env: up to 4 more "K=V" (NULL-terminated) or NULL. */
void ingress_start_with(ingress_proc *p, const char *nats_url, bool wait_ready,
                        const char *const *extra_env)
{
    char unique[40];
    testkit_unique(unique, sizeof(unique));
    memset(p, 0, sizeof(*p));
    snprintf(p->secret, sizeof(p->secret), "secret-%s", unique);
    snprintf(p->secret_env, sizeof(p->secret_env), "ESS_LINE_CHANNEL_SECRET=%s", p->secret);
    snprintf(p->nats_env, sizeof(p->nats_env), "ESS_NATS_URL=%s", nats_url);
    int port = testkit_free_port();
    assert_true(port > 0);
    snprintf(p->listen_env, sizeof(p->listen_env), "ESS_INGRESS_LISTEN=127.0.0.1:%d", port);
    snprintf(p->base_url, sizeof(p->base_url), "http://127.0.0.1:%d", port);
    snprintf(p->log_path, sizeof(p->log_path), "/tmp/ess-ingress-%s.log", unique);
    char binary[512];
    snprintf(binary, sizeof(binary), "%s/ess-ingress", testkit_bin_dir());
    const char *argv[] = {binary, NULL};
    const char *env[10] = {p->secret_env, p->nats_env, p->listen_env, "ESS_LOG_LEVEL=debug",
                           "ESS_INGRESS_PUBLISH_TIMEOUT=500ms"};
    for (size_t i = 0, n = 5; extra_env != NULL && extra_env[i] != NULL && n < 9; i++)
        env[n++] = extra_env[i];
    p->pid = testkit_spawn(argv, env, p->log_path);
    assert_true(p->pid > 0);
    testkit_track(p->pid);
    wait_status alive = {p, "/healthz", 200};
    assert_true(testkit_wait_until(status_is, &alive, 20000));
    if (wait_ready) {
        wait_status ready = {p, "/readyz", 200};
        assert_true(testkit_wait_until(status_is, &ready, 20000));
    }
}

void ingress_start(ingress_proc *p, const char *nats_url, bool wait_ready)
{
    ingress_start_with(p, nats_url, wait_ready, NULL);
}

/* Stops the ingress; returns its exit status and removes its log unless keep_log. */
int ingress_stop(ingress_proc *p, bool keep_log)
{
    int code = harness_stop_process(p->pid, 15000);
    if (!keep_log)
        unlink(p->log_path);
    return code;
}

/* ---- LINE_IN ----------------------------------------------------------------------------- */

void line_in_open(line_in *l, const char *url)
{
    memset(l, 0, sizeof(*l));
    assert_int_equal(natsConnection_ConnectTo(&l->nc, url), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&l->js, l->nc, NULL), NATS_OK);
}

void line_in_close(line_in *l)
{
    jsCtx_Destroy(l->js);
    natsConnection_Destroy(l->nc);
}

/* Messages stored in LINE_IN under exactly this subject. */
uint64_t line_in_count(line_in *l, const char *subject)
{
    jsOptions options;
    jsOptions_Init(&options);
    options.Stream.Info.SubjectsFilter = subject;
    jsStreamInfo *info = NULL;
    jsErrCode jerr = 0;
    assert_int_equal(js_GetStreamInfo(&info, l->js, "LINE_IN", &options, &jerr), NATS_OK);
    uint64_t count = 0;
    if (info->State.Subjects != NULL)
        for (int i = 0; i < info->State.Subjects->Count; i++)
            if (strcmp(info->State.Subjects->List[i].Subject, subject) == 0)
                count += info->State.Subjects->List[i].Msgs;
    jsStreamInfo_Destroy(info);
    return count;
}

void subject_for(char *out, size_t size, const char *secret, const char *kind, const char *id)
{
    vault_pseudonym_key key;
    vault_pseudonym_key_derive(secret, strlen(secret), VAULT_PURPOSE_LINE_IN_SUBJECT, &key);
    char pseudonym[VAULT_PSEUDONYM_HEX + 1];
    vault_pseudonym(&key, id, pseudonym);
    snprintf(out, size, "line.in.%s.%s", kind, pseudonym);
}

const char *shared_nats(void)
{
    return testkit_env("ESS_TEST_NATS_URL");
}

int harness_teardown(void **state)
{
    (void)state;
    testkit_stop_all_tracked(SIGTERM, 5000);
    testkit_nats_stop_all();
    return 0;
}

size_t line_in_msg_ids(line_in *l, const char *subject, char (*ids)[64], size_t max)
{
    uint64_t total = line_in_count(l, subject);
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Ordered = true;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    assert_int_equal(js_SubscribeSync(&sub, l->js, subject, NULL, &options, &jerr), NATS_OK);
    size_t count = 0;
    for (uint64_t i = 0; i < total && count < max; i++) {
        natsMsg *msg = NULL;
        assert_int_equal(natsSubscription_NextMsg(&msg, sub, 5000), NATS_OK);
        const char *msg_id = "";
        natsMsgHeader_Get(msg, "Nats-Msg-Id", &msg_id);
        snprintf(ids[count++], 64, "%s", msg_id);
        natsMsg_Destroy(msg);
    }
    natsSubscription_Destroy(sub);
    return count;
}
