/* Integration test of libs/bus on a three-node JetStream cluster (DESIGN.md §2: deployments
 * that must survive a lost machine run three NATS nodes with R3 streams;
 * docs/high-availability.md). The cluster is the test's own: three nats-servers on loopback,
 * each its own port, store and route port.
 *
 * What it proves: the real registry (proto/registry.json) with ESS_NATS_REPLICAS' override
 * creates replicated streams; every message acknowledged before the node leading LINE_IN is
 * SIGKILLed is still there afterwards, publishing goes on once the two survivors elect a new
 * leader, msg-id de-duplication still holds across the leader change, a durable consumer
 * delivers every message once, and the killed node catches up when it comes back. */
#include "testkit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "bus.h"

#define NODES 3
#define BEFORE_KILL 100
#define AFTER_KILL 100
#define ELECTION_MS 30000

typedef struct cluster_fixture {
    testkit_nats nodes[NODES];
    char urls[NODES * 64];
    bus *b;
    bus_registry *registry;
    natsConnection *raw_conn;
    jsCtx *raw_js;
} cluster_fixture;

static cluster_fixture *current;

static int teardown(void **state)
{
    (void)state;
    if (current != NULL) {
        bus_destroy(current->b);
        bus_registry_destroy(current->registry);
        jsCtx_Destroy(current->raw_js);
        natsConnection_Destroy(current->raw_conn);
        free(current);
        current = NULL;
    }
    testkit_nats_stop_all();
    return 0;
}

static bool registry_ensured(void *closure)
{
    cluster_fixture *fx = closure;
    st_error err = {0};
    return bus_ensure(fx->b, fx->registry, &err) == ST_OK;
}

/* The stream's cluster as the server reports it; NULL while no leader answers. Caller
 * destroys. */
static jsStreamInfo *stream_info(cluster_fixture *fx, const char *stream)
{
    jsStreamInfo *info = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&info, fx->raw_js, stream, NULL, &jerr) != NATS_OK)
        return NULL;
    return info;
}

static bool stream_has_leader_and_current_replicas(void *closure)
{
    cluster_fixture *fx = closure;
    jsStreamInfo *info = stream_info(fx, "LINE_IN");
    bool ok = info != NULL && info->Cluster != NULL && info->Cluster->Leader != NULL &&
              info->Cluster->Leader[0] != '\0' && info->Cluster->ReplicasLen == NODES - 1;
    for (int i = 0; ok && i < info->Cluster->ReplicasLen; i++)
        ok = info->Cluster->Replicas[i]->Current && !info->Cluster->Replicas[i]->Offline;
    jsStreamInfo_Destroy(info);
    return ok;
}

static bool stream_has_leader(void *closure)
{
    cluster_fixture *fx = closure;
    jsStreamInfo *info = stream_info(fx, "LINE_IN");
    bool ok = info != NULL && info->Cluster != NULL && info->Cluster->Leader != NULL &&
              info->Cluster->Leader[0] != '\0';
    jsStreamInfo_Destroy(info);
    return ok;
}

/* Publishes until the cluster acknowledges, as the ingress does with LINE's redelivery: a
 * leader change makes publishes fail until the survivors elect a new stream leader, and the
 * same msg-id makes the retry safe. */
static bus_publish_result publish_acknowledged(cluster_fixture *fx, const char *subject,
                                               const char *msg_id)
{
    char body[96];
    snprintf(body, sizeof(body), "{\"webhookEventId\":\"%s\"}", msg_id);
    int64_t deadline = testkit_now_ms() + ELECTION_MS;
    st_error err = {0};
    bus_publish_result result = {0};
    while (bus_publish(fx->b, subject, body, strlen(body), msg_id, &result, &err) != ST_OK) {
        int64_t left = deadline - testkit_now_ms();
        if (left <= 0 || !testkit_wait_until(stream_has_leader, fx, left))
            fail_msg("publish %s not acknowledged within %d ms: %s", msg_id, ELECTION_MS,
                     err.message);
    }
    return result;
}

typedef struct seen_ids {
    char ids[BEFORE_KILL + AFTER_KILL][32];
    int count;
    int repeats;
} seen_ids;

static void record(const bus_delivery *delivery, bus_outcome *outcome, void *closure)
{
    (void)outcome;
    seen_ids *seen = closure;
    for (int i = 0; i < seen->count; i++)
        if (strcmp(seen->ids[i], delivery->msg_id) == 0) {
            seen->repeats++;
            return;
        }
    if (seen->count < BEFORE_KILL + AFTER_KILL)
        snprintf(seen->ids[seen->count++], sizeof(seen->ids[0]), "%s", delivery->msg_id);
}

ESS_TEST(a_three_node_cluster_keeps_every_acknowledged_message_when_a_node_dies)
{
    cluster_fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    current = fx;
    testkit_nats_cluster_prepare(fx->nodes, NODES, "bus-cluster");
    size_t len = 0;
    for (int i = 0; i < NODES; i++) {
        testkit_nats_restart(&fx->nodes[i]);
        len += (size_t)snprintf(fx->urls + len, sizeof(fx->urls) - len, "%s%s",
                                i > 0 ? "," : "", fx->nodes[i].url);
    }

    st_error err = {0};
    assert_int_equal(bus_registry_builtin(&fx->registry, &err), ST_OK);
    assert_int_equal(bus_registry_set_replicas(fx->registry, 0, &err), ST_INVALID);
    assert_int_equal(bus_registry_set_replicas(fx->registry, 6, &err), ST_INVALID);
    assert_int_equal(bus_registry_set_replicas(fx->registry, NODES, &err), ST_OK);
    bus_options options = {.url = fx->urls, .client_name = "ess-test-cluster",
                           .request_timeout_ms = 2000};
    if (bus_connect(&options, &fx->b, &err) != ST_OK)
        fail_msg("bus_connect: %s", err.message);
    assert_int_equal(natsConnection_ConnectTo(&fx->raw_conn, fx->urls), NATS_OK);
    assert_int_equal(natsConnection_JetStream(&fx->raw_js, fx->raw_conn, NULL), NATS_OK);

    /* The cluster elects its JetStream leader after the routes are up; ensure succeeds then. */
    if (!testkit_wait_until(registry_ensured, fx, ELECTION_MS))
        fail_msg("the registry could not be ensured on the cluster within %d ms", ELECTION_MS);
    for (size_t i = 0; i < fx->registry->stream_count; i++) {
        jsStreamInfo *info = stream_info(fx, fx->registry->streams[i].name);
        assert_non_null(info);
        assert_int_equal(info->Config->Replicas, NODES);
        jsStreamInfo_Destroy(info);
    }
    /* Ensured again with the same replicas: nothing to change, still OK. */
    assert_int_equal(bus_ensure(fx->b, fx->registry, &err), ST_OK);
    if (!testkit_wait_until(stream_has_leader_and_current_replicas, fx, ELECTION_MS))
        fail_msg("LINE_IN has no leader with %d current replicas", NODES - 1);

    char msg_id[32], subject[64];
    for (int i = 0; i < BEFORE_KILL; i++) {
        snprintf(msg_id, sizeof(msg_id), "cluster-%03d", i);
        snprintf(subject, sizeof(subject), "line.in.user.U%03d", i);
        assert_false(publish_acknowledged(fx, subject, msg_id).duplicate);
    }

    /* SIGKILL the node that leads LINE_IN: the machine that holds the stream is gone. */
    jsStreamInfo *info = stream_info(fx, "LINE_IN");
    assert_non_null(info);
    int victim = -1;
    for (int i = 0; i < NODES; i++)
        if (strcmp(info->Cluster->Leader, fx->nodes[i].server_name) == 0)
            victim = i;
    jsStreamInfo_Destroy(info);
    assert_true(victim >= 0);
    assert_int_equal(kill(fx->nodes[victim].pid, SIGKILL), 0);
    testkit_nats_halt(&fx->nodes[victim]);

    for (int i = 0; i < AFTER_KILL; i++) {
        snprintf(msg_id, sizeof(msg_id), "cluster-%03d", BEFORE_KILL + i);
        snprintf(subject, sizeof(subject), "line.in.user.U%03d", BEFORE_KILL + i);
        assert_false(publish_acknowledged(fx, subject, msg_id).duplicate);
    }
    /* LINE's redelivery of events stored before the kill: the new leader knows them. */
    for (int i = 0; i < BEFORE_KILL; i += 10) {
        snprintf(msg_id, sizeof(msg_id), "cluster-%03d", i);
        snprintf(subject, sizeof(subject), "line.in.user.U%03d", i);
        assert_true(publish_acknowledged(fx, subject, msg_id).duplicate);
    }
    info = stream_info(fx, "LINE_IN");
    assert_non_null(info);
    assert_string_not_equal(info->Cluster->Leader, fx->nodes[victim].server_name);
    assert_int_equal(info->State.Msgs, BEFORE_KILL + AFTER_KILL);
    jsStreamInfo_Destroy(info);

    /* The conversation's durable consumer (an R3 consumer) delivers each message once. */
    const bus_consumer_def *def = bus_registry_consumer(fx->registry, "conversation");
    assert_non_null(def);
    seen_ids *seen = calloc(1, sizeof(*seen));
    assert_non_null(seen);
    bus_consumer *consumer = NULL;
    assert_int_equal(bus_consumer_create(fx->b, def, "test", record, seen, &consumer, &err), ST_OK);
    int64_t deadline = testkit_now_ms() + ELECTION_MS;
    while (seen->count < BEFORE_KILL + AFTER_KILL && testkit_now_ms() < deadline) {
        size_t handled = 0;
        bus_consumer_poll(consumer, 64, 500, &handled, &err);
    }
    size_t extra = 0;
    bus_consumer_poll(consumer, 64, 500, &extra, &err);
    bus_consumer_destroy(consumer);
    int count = seen->count, repeats = seen->repeats;
    free(seen);
    assert_int_equal(count, BEFORE_KILL + AFTER_KILL);
    assert_int_equal(repeats, 0);
    assert_int_equal(extra, 0);

    /* The lost machine comes back and catches up: three current copies again. */
    testkit_nats_restart(&fx->nodes[victim]);
    if (!testkit_wait_until(stream_has_leader_and_current_replicas, fx, ELECTION_MS))
        fail_msg("the restarted node did not catch up within %d ms", ELECTION_MS);
    printf("ok: %d messages on R%d LINE_IN, leader %s killed, none lost, none doubled\n",
           BEFORE_KILL + AFTER_KILL, NODES, fx->nodes[victim].server_name);
}

ESS_TEST_MAIN(NULL, teardown)
