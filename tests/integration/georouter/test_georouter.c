/* ess-georouter end to end: a nats-server of the case's own (the service's streams and durable
 * consumer have fixed names), a fresh migrated database on the ESS_TEST_PG_DSN server loaded
 * with `essctl geo import`, teams from `essctl team add`, and the ess-georouter binary.
 * A seeded incident's ess.incident.reported yields exactly one ess.incident.routed with the
 * right area, stations and targets, recorded on the incident row, however often it comes;
 * points abroad or without a team go to the national centre; a service started before the
 * import waits, then picks the data up, and reloads when the station directory changes;
 * poison goes to the dead-letter subject. */
#include "testkit.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bus.h"
#include "db.h"

#define MESSAGES_MAX 16

typedef struct collected {
    char *payloads[MESSAGES_MAX];
    char msg_ids[MESSAGES_MAX][BUS_MSG_ID_MAX];
    size_t count;
} collected;

typedef struct fixture {
    char dsn[512];
    char dsn_env[600];
    char unique[64];
    testkit_nats nats; /* the case's own */
    char nats_env[96];
    char listen_env[64];
    char base_url[64];
    char log_path[200];
    int service_pid;
    bus *b;
    db *d;
    bus_consumer *routed;
    bus_consumer *dead;
    collected routed_seen;
    collected dead_seen;
} fixture;

static fixture fx;

/* ---- processes ------------------------------------------------------------------------------ */

static void start_nats(void)
{
    testkit_nats_start(&fx.nats, "georouter");
    snprintf(fx.nats_env, sizeof(fx.nats_env), "ESS_NATS_URL=%s", fx.nats.url);
    bus_options options = {.url = fx.nats.url, .client_name = "ess-test-georouter"};
    st_error err = {0};
    if (bus_connect(&options, &fx.b, &err) != ST_OK)
        fail_msg("bus_connect: %s", err.message);
    bus_registry *registry = NULL;
    assert_int_equal(bus_registry_builtin(&registry, &err), ST_OK);
    if (bus_ensure(fx.b, registry, &err) != ST_OK)
        fail_msg("bus_ensure: %s", err.message);
    bus_registry_destroy(registry);
}

static void essctl(const char *const *args, const char *expect)
{
    char binary[512];
    snprintf(binary, sizeof(binary), "%s/essctl", testkit_bin_dir());
    const char *argv[16] = {binary};
    size_t n = 1;
    for (size_t i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *env[] = {fx.dsn_env, NULL};
    char *output = NULL;
    int code = testkit_run(argv, env, 120000, &output);
    if (code != 0 || (expect != NULL && strstr(output, expect) == NULL))
        fail_msg("essctl %s exited %d: %s", args[0], code, output);
    free(output);
}

static void geo_import(void)
{
    const char *args[] = {"geo", "import", NULL};
    essctl(args, "geo version");
}

static void team_add(const char *name, const char *where, const char *value, const char *group)
{
    const char *args[] = {"team", "add", "--name", name, where, value, "--group", group, NULL};
    if (value == NULL) {
        args[5] = "--group";
        args[6] = group;
        args[7] = NULL;
    }
    essctl(args, "added team");
}

static bool service_ready(void *closure)
{
    (void)closure;
    char url[128];
    long status = 0;
    snprintf(url, sizeof(url), "%s/readyz", fx.base_url);
    return testkit_http("GET", url, NULL, NULL, 0, 1000, &status, NULL) == 0 && status == 200;
}

static void start_service(bool wait_ready)
{
    int port = testkit_free_port();
    snprintf(fx.listen_env, sizeof(fx.listen_env), "ESS_GEOROUTER_LISTEN=127.0.0.1:%d", port);
    snprintf(fx.base_url, sizeof(fx.base_url), "http://127.0.0.1:%d", port);
    snprintf(fx.log_path, sizeof(fx.log_path), "/tmp/ess-georouter-%s.log", fx.unique);
    char binary[512];
    snprintf(binary, sizeof(binary), "%s/ess-georouter", testkit_bin_dir());
    const char *argv[] = {binary, NULL};
    const char *env[] = {fx.nats_env,           fx.dsn_env,
                         fx.listen_env,         "ESS_GEO_RELOAD_PERIOD=1s",
                         "ESS_LOG_LEVEL=debug", NULL};
    fx.service_pid = testkit_spawn(argv, env, fx.log_path);
    assert_true(fx.service_pid > 0);
    if (wait_ready && !testkit_wait_until(service_ready, NULL, 60000)) {
        char *log = testkit_read_file(fx.log_path);
        fail_msg("ess-georouter not ready: %s", log != NULL ? log : "(no log)");
    }
}

/* ---- messages ------------------------------------------------------------------------------ */

static void collect(const bus_delivery *delivery, bus_outcome *outcome, void *closure)
{
    (void)outcome;
    collected *c = closure;
    if (c->count == MESSAGES_MAX)
        return;
    c->payloads[c->count] = strndup(delivery->data, delivery->len);
    snprintf(c->msg_ids[c->count], BUS_MSG_ID_MAX, "%s", delivery->msg_id);
    c->count++;
}

static bus_consumer *reader(const char *stream, const char *durable, const char *filter,
                            collected *into)
{
    bus_consumer_def def;
    memset(&def, 0, sizeof(def));
    snprintf(def.stream, sizeof(def.stream), "%s", stream);
    snprintf(def.durable, sizeof(def.durable), "%s", durable);
    snprintf(def.filter_subject, sizeof(def.filter_subject), "%s", filter);
    def.ack_wait_ms = 30000;
    def.max_deliver = -1;
    def.max_ack_pending = 1000;
    st_error err = {0};
    bus_consumer *consumer = NULL;
    if (bus_ensure_consumer(fx.b, &def, &err) != ST_OK ||
        bus_consumer_create(fx.b, &def, "test", collect, into, &consumer, &err) != ST_OK)
        fail_msg("reader %s: %s", durable, err.message);
    return consumer;
}

typedef struct wait_count {
    bus_consumer *consumer;
    collected *seen;
    size_t want;
} wait_count;

static bool has_messages(void *closure)
{
    wait_count *w = closure;
    size_t handled = 0;
    bus_consumer_poll(w->consumer, 8, 100, &handled, NULL);
    return w->seen->count >= w->want;
}

/* Waits for the routed count to reach want; returns the newest payload parsed. */
static cJSON *wait_routed(size_t want)
{
    wait_count w = {.consumer = fx.routed, .seen = &fx.routed_seen, .want = want};
    if (!testkit_wait_until(has_messages, &w, 30000)) {
        char *log = testkit_read_file(fx.log_path);
        fail_msg("%zu routed events, expected %zu; service log: %s", fx.routed_seen.count, want,
                 log != NULL ? log : "(none)");
    }
    cJSON *doc = cJSON_Parse(fx.routed_seen.payloads[want - 1]);
    assert_non_null(doc);
    return doc;
}

static int64_t seed_incident(const char *case_number, const char *category, double lat, double lon)
{
    char lat_text[32], lon_text[32];
    snprintf(lat_text, sizeof(lat_text), "%.6f", lat);
    snprintf(lon_text, sizeof(lon_text), "%.6f", lon);
    const char *params[] = {case_number, category, lat_text, lon_text};
    db_result *r = NULL;
    st_error err = {0};
    if (db_exec(fx.d,
                "INSERT INTO incidents (case_number, category, lat, lon) VALUES ($1, $2, "
                "$3::float8, $4::float8) RETURNING id",
                4, params, &r, &err) != ST_OK)
        fail_msg("seed: %s", err.message);
    int64_t id = strtoll(db_result_value(r, 0, 0), NULL, 10);
    db_result_destroy(r);
    return id;
}

static void publish_report(int64_t id, const char *case_number, double lat, double lon,
                           const char *msg_id)
{
    char body[512], default_id[64];
    snprintf(body, sizeof(body),
             "{\"incident_id\":%lld,\"case_number\":\"%s\",\"category\":\"threat\","
             "\"location\":{\"lat\":%.6f,\"lon\":%.6f},\"has_phone\":true,\"language\":\"th\","
             "\"reported_at\":\"2026-11-30T09:00:00Z\"}",
             (long long)id, case_number, lat, lon);
    snprintf(default_id, sizeof(default_id), "reported.%lld", (long long)id);
    st_error err = {0};
    if (bus_publish(fx.b, "ess.incident.reported", body, strlen(body),
                    msg_id != NULL ? msg_id : default_id, NULL, &err) != ST_OK)
        fail_msg("publish: %s", err.message);
}

static char *query_one(const char *sql, const char *param)
{
    const char *params[] = {param};
    db_result *r = NULL;
    st_error err = {0};
    if (db_exec(fx.d, sql, param != NULL ? 1 : 0, params, &r, &err) != ST_OK)
        fail_msg("query: %s", err.message);
    const char *value = db_result_rows(r) > 0 ? db_result_value(r, 0, 0) : NULL;
    char *copy = strdup(value != NULL ? value : "(null)");
    db_result_destroy(r);
    return copy;
}

static void assert_query(const char *sql, const char *param, const char *expected)
{
    char *value = query_one(sql, param);
    if (strcmp(value, expected) != 0)
        fail_msg("%s -> %s, expected %s", sql, value, expected);
    free(value);
}

/* The station the georouter will name: `essctl geo locate --json`, the same decision. */
static void station_of(double lat, double lon, char *out, size_t size)
{
    char binary[512], lat_text[32], lon_text[32];
    snprintf(binary, sizeof(binary), "%s/essctl", testkit_bin_dir());
    snprintf(lat_text, sizeof(lat_text), "%.6f", lat);
    snprintf(lon_text, sizeof(lon_text), "%.6f", lon);
    const char *argv[] = {binary, "geo", "locate", lat_text, lon_text, "--json", NULL};
    const char *env[] = {fx.dsn_env, NULL};
    char *output = NULL;
    assert_int_equal(testkit_run(argv, env, 120000, &output), 0);
    cJSON *doc = cJSON_Parse(output);
    assert_non_null(doc);
    cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "stations"), 0);
    snprintf(out, size, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(first, "station_id")));
    cJSON_Delete(doc);
    free(output);
}

typedef struct metric_wait {
    const char *line;
} metric_wait;

static bool metric_shows(void *closure)
{
    metric_wait *w = closure;
    char url[128], *body = NULL;
    long status = 0;
    snprintf(url, sizeof(url), "%s/metrics", fx.base_url);
    bool found = testkit_http("GET", url, NULL, NULL, 0, 1000, &status, &body) == 0 &&
                 status == 200 && body != NULL && strstr(body, w->line) != NULL;
    free(body);
    return found;
}

/* ---- fixture ------------------------------------------------------------------------------ */

static int end(void **state);

/* Each case begins here (and cleans up after an earlier case when all run in one process). */
static void begin(void)
{
    if (fx.d != NULL)
        end(NULL);
    memset(&fx, 0, sizeof(fx));
    testkit_unique(fx.unique, sizeof(fx.unique));
    testkit_fresh_database(true, fx.dsn, sizeof(fx.dsn));
    snprintf(fx.dsn_env, sizeof(fx.dsn_env), "ESS_PG_DSN=%s", fx.dsn);
    db_options options = {.dsn = fx.dsn, .application_name = "ess-test-georouter"};
    st_error err = {0};
    if (db_connect(&options, &fx.d, &err) != ST_OK)
        fail_msg("db_connect: %s", err.message);
    start_nats();
    fx.routed = reader("ESS", "test_routed", "ess.incident.routed", &fx.routed_seen);
    fx.dead = reader("DLQ", "test_dead", "ess.dlq.georouter", &fx.dead_seen);
}

static int end(void **state)
{
    (void)state;
    if (fx.service_pid > 0) {
        int code = testkit_stop(fx.service_pid, SIGTERM, 15000);
        if (code != 0)
            fprintf(stderr, "ess-georouter exited %d (log %s)\n", code, fx.log_path);
        else
            remove(fx.log_path);
    }
    bus_consumer_destroy(fx.routed);
    bus_consumer_destroy(fx.dead);
    bus_destroy(fx.b);
    testkit_nats_stop(&fx.nats);
    db_destroy(fx.d);
    fx.d = NULL;
    if (fx.dsn[0] != '\0')
        testkit_drop_database(fx.dsn);
    for (size_t i = 0; i < fx.routed_seen.count; i++)
        free(fx.routed_seen.payloads[i]);
    for (size_t i = 0; i < fx.dead_seen.count; i++)
        free(fx.dead_seen.payloads[i]);
    memset(&fx, 0, sizeof(fx));
    return 0;
}

static const char *json_string(const cJSON *object, const char *key)
{
    const char *value = cJSON_GetStringValue(cJSON_GetObjectItem(object, key));
    if (value == NULL)
        fail_msg("no string \"%s\"", key);
    return value;
}

static void assert_target(const cJSON *targets, int index, const char *group, int level,
                          const char *kind)
{
    const cJSON *t = cJSON_GetArrayItem(targets, index);
    assert_non_null(t);
    assert_string_equal(json_string(t, "group_id"), group);
    assert_string_equal(json_string(t, "kind"), kind);
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(t, "level")), level);
}

/* ---- cases -------------------------------------------------------------------------------- */

#define HAT_YAI_LAT 7.0084
#define HAT_YAI_LON 100.4767

ESS_TEST(report_is_routed_once_to_the_right_teams)
{
    begin();
    geo_import();
    char station[80];
    station_of(HAT_YAI_LAT, HAT_YAI_LON, station, sizeof(station));
    team_add("Songkhla MDT", "--province", "TH90", "Cmdt90");
    team_add("Hat Yai station", "--province", "TH90", "Cstation");
    {
        /* the station's own team: --station needs the province too */
        const char *args[] = {"team",       "add",          "--name",    "Hat Yai police",
                              "--province", "TH90",         "--station", station,
                              "--group",    "Cstationteam", NULL};
        essctl(args, "added team");
    }
    {
        const char *args[] = {"team",       "add",        "--name", "Songkhla command",
                              "--province", "TH90",       "--kind", "provincial_command",
                              "--group",    "Ccommand90", NULL};
        essctl(args, "added team");
    }
    team_add("Chiang Mai MDT", "--province", "TH50", "Cmdt50");
    team_add("National centre", "--national", NULL, "Cnational");
    {
        const char *args[] = {"team", "remove", "Hat Yai station", NULL};
        essctl(args, "removed team");
    }
    start_service(true);

    int64_t id = seed_incident("ESS-2569-000001", "threat", HAT_YAI_LAT, HAT_YAI_LON);
    publish_report(id, "ESS-2569-000001", HAT_YAI_LAT, HAT_YAI_LON, NULL);
    cJSON *routed = wait_routed(1);
    char expected_msg_id[64];
    snprintf(expected_msg_id, sizeof(expected_msg_id), "routed.%lld", (long long)id);
    assert_string_equal(fx.routed_seen.msg_ids[0], expected_msg_id);
    assert_int_equal((int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(routed, "incident_id")), id);
    assert_string_equal(json_string(routed, "case_number"), "ESS-2569-000001");
    assert_string_equal(json_string(routed, "reason"), "in_polygon");
    const cJSON *area = cJSON_GetObjectItem(routed, "area");
    assert_string_equal(json_string(area, "province_code"), "TH90");
    assert_string_equal(json_string(area, "province_name_en"), "Songkhla");
    assert_string_equal(json_string(area, "district_code"), "TH9011");
    assert_string_equal(json_string(area, "district_name_th"), "หาดใหญ่");
    assert_string_equal(json_string(area, "match"), "in_polygon");
    const cJSON *stations = cJSON_GetObjectItem(routed, "stations");
    assert_int_equal(cJSON_GetArraySize(stations), 4); /* responsible + 3 next */
    const cJSON *first = cJSON_GetArrayItem(stations, 0);
    assert_string_equal(json_string(first, "station_id"), station);
    assert_string_equal(json_string(first, "role"), "jurisdiction");
    double distance = cJSON_GetNumberValue(cJSON_GetObjectItem(first, "distance_m"));
    assert_true(distance > 0 && distance < 50000);
    /* Escalation order: the station's team, the province's, the command, the centre. The
     * removed team and the other province's team are not there. */
    const cJSON *targets = cJSON_GetObjectItem(routed, "targets");
    assert_int_equal(cJSON_GetArraySize(targets), 4);
    assert_target(targets, 0, "Cstationteam", 0, "multidisciplinary");
    assert_target(targets, 1, "Cmdt90", 0, "multidisciplinary");
    assert_target(targets, 2, "Ccommand90", 1, "provincial_command");
    assert_target(targets, 3, "Cnational", 2, "national_centre");
    cJSON_Delete(routed);

    char id_text[24];
    snprintf(id_text, sizeof(id_text), "%lld", (long long)id);
    assert_query("SELECT status FROM incidents WHERE id = $1::bigint", id_text, "routed");
    assert_query("SELECT province_code || district_code FROM incidents "
                 "WHERE id = $1::bigint",
                 id_text, "TH90TH9011");
    char *on_row = query_one("SELECT station_id FROM incidents WHERE id = $1::bigint", id_text);
    assert_string_equal(on_row, station);
    free(on_row);
    assert_query("SELECT (station_distance_m > 0 AND routed_at IS NOT NULL)::text FROM incidents "
                 "WHERE id = $1::bigint",
                 id_text, "true");
    assert_query("SELECT count(*) FROM incident_events WHERE incident_id = $1::bigint AND "
                 "kind = 'routed'",
                 id_text, "1");

    /* Twice more: the same msg-id (JetStream drops it) and a redelivery under another id
     * (as after the duplicate window): the georouter handles it and changes nothing. */
    publish_report(id, "ESS-2569-000001", HAT_YAI_LAT, HAT_YAI_LON, NULL);
    publish_report(id, "ESS-2569-000001", HAT_YAI_LAT, HAT_YAI_LON, "reported.again");
    metric_wait acked = {
        .line = "ess_consumer_messages_total{consumer=\"georouter\",result=\"ack\"} 2"};
    assert_true(testkit_wait_until(metric_shows, &acked, 30000));
    /* Nothing new reaches the stream: the relay would have published it by now. */
    assert_query("SELECT count(*) FROM outbox WHERE subject = 'ess.incident.routed'", NULL, "1");
    assert_query("SELECT count(*) FROM outbox WHERE published_at IS NULL", NULL, "0");
    size_t handled = 0;
    bus_consumer_poll(fx.routed, 8, 500, &handled, NULL);
    assert_int_equal(fx.routed_seen.count, 1);
    assert_query("SELECT count(*) FROM incident_events WHERE incident_id = $1::bigint", id_text,
                 "1");
}

ESS_TEST(no_area_or_no_team_goes_to_the_national_centre)
{
    begin();
    geo_import();
    team_add("Songkhla MDT", "--province", "TH90", "Cmdt90");
    team_add("National centre", "--national", NULL, "Cnational");
    start_service(true);

    int64_t laos = seed_incident("ESS-2569-000010", "confinement", 19.8856, 102.1347);
    publish_report(laos, "ESS-2569-000010", 19.8856, 102.1347, NULL);
    cJSON *routed = wait_routed(1);
    assert_string_equal(json_string(routed, "reason"), "outside_thailand");
    assert_string_equal(json_string(cJSON_GetObjectItem(routed, "area"), "match"), "none");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(routed, "stations")), 0);
    const cJSON *targets = cJSON_GetObjectItem(routed, "targets");
    assert_int_equal(cJSON_GetArraySize(targets), 1);
    assert_target(targets, 0, "Cnational", 0, "national_centre");
    cJSON_Delete(routed);
    char id_text[24];
    snprintf(id_text, sizeof(id_text), "%lld", (long long)laos);
    assert_query("SELECT status || coalesce(province_code, '-') FROM incidents "
                 "WHERE id = $1::bigint",
                 id_text, "routed-");

    /* Chiang Mai: an area, but no team there. */
    int64_t chiang_mai = seed_incident("ESS-2569-000011", "sexual", 18.7877, 98.9931);
    publish_report(chiang_mai, "ESS-2569-000011", 18.7877, 98.9931, NULL);
    routed = wait_routed(2);
    assert_string_equal(json_string(routed, "reason"), "no_team");
    assert_string_equal(json_string(cJSON_GetObjectItem(routed, "area"), "province_code"), "TH50");
    targets = cJSON_GetObjectItem(routed, "targets");
    assert_int_equal(cJSON_GetArraySize(targets), 1);
    assert_target(targets, 0, "Cnational", 0, "national_centre");
    cJSON_Delete(routed);

    /* 10 km at sea off Pattaya: the nearest polygon, Chon Buri. */
    int64_t sea = seed_incident("ESS-2569-000012", "threat", 12.93, 100.79);
    publish_report(sea, "ESS-2569-000012", 12.93, 100.79, NULL);
    routed = wait_routed(3);
    assert_string_equal(json_string(cJSON_GetObjectItem(routed, "area"), "province_code"), "TH20");
    assert_string_equal(json_string(cJSON_GetObjectItem(routed, "area"), "match"),
                        "nearest_polygon");
    cJSON_Delete(routed);
}

ESS_TEST(waits_for_the_import_and_reloads_on_change)
{
    begin();
    start_service(false);
    /* No reference data: not ready, and the report waits instead of being routed blind. */
    char url[128];
    long status = 0;
    snprintf(url, sizeof(url), "%s/readyz", fx.base_url);
    metric_wait started = {.line = "ess_georouter_geo_version -1"};
    assert_true(testkit_wait_until(metric_shows, &started, 30000));
    assert_int_equal(testkit_http("GET", url, NULL, NULL, 0, 2000, &status, NULL), 0);
    assert_int_equal(status, 503);

    int64_t id = seed_incident("ESS-2569-000020", "frenzy", HAT_YAI_LAT, HAT_YAI_LON);
    publish_report(id, "ESS-2569-000020", HAT_YAI_LAT, HAT_YAI_LON, NULL);
    geo_import();
    assert_true(testkit_wait_until(service_ready, NULL, 30000));
    cJSON *routed = wait_routed(1);
    assert_string_equal(json_string(cJSON_GetObjectItem(routed, "area"), "district_code"),
                        "TH9011");
    const char *before =
        json_string(cJSON_GetArrayItem(cJSON_GetObjectItem(routed, "stations"), 0), "station_id");
    char old_station[80];
    snprintf(old_station, sizeof(old_station), "%s", before);
    cJSON_Delete(routed);

    /* A "real" directory: the synthetic one with that station renamed. */
    char source[4096], directory[256], command[4600];
    snprintf(source, sizeof(source), "%s/deploy/data/geo/stations_synthetic.csv",
             getenv("ESS_SOURCE_DIR") != NULL ? getenv("ESS_SOURCE_DIR") : ".");
    snprintf(directory, sizeof(directory), "/tmp/ess-stations-%s.csv", fx.unique);
    snprintf(command, sizeof(command), "sed 's/^%s,/REAL-HATYAI-1,/' '%s' > '%s'", old_station,
             source, directory);
    assert_int_equal(system(command), 0);
    const char *args[] = {"stations", "import", directory, NULL};
    essctl(args, "station directory replaced");
    remove(directory);
    metric_wait reloaded = {.line = "ess_georouter_geo_version 2"};
    assert_true(testkit_wait_until(metric_shows, &reloaded, 30000));

    int64_t second = seed_incident("ESS-2569-000021", "frenzy", HAT_YAI_LAT, HAT_YAI_LON);
    publish_report(second, "ESS-2569-000021", HAT_YAI_LAT, HAT_YAI_LON, NULL);
    routed = wait_routed(2);
    assert_string_equal(
        json_string(cJSON_GetArrayItem(cJSON_GetObjectItem(routed, "stations"), 0), "station_id"),
        "REAL-HATYAI-1");
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(routed, "geo_version")), 2);
    cJSON_Delete(routed);
}

ESS_TEST(poison_goes_to_the_dead_letters)
{
    begin();
    geo_import();
    start_service(true);
    st_error err = {0};
    const char *body = "{\"incident_id\":\"seven\"}";
    assert_int_equal(
        bus_publish(fx.b, "ess.incident.reported", body, strlen(body), "poison.1", NULL, &err),
        ST_OK);
    /* A report of an incident that is not on record is poison too. */
    publish_report(424242, "ESS-2569-424242", HAT_YAI_LAT, HAT_YAI_LON, NULL);
    wait_count w = {.consumer = fx.dead, .seen = &fx.dead_seen, .want = 2};
    assert_true(testkit_wait_until(has_messages, &w, 30000));
    assert_string_equal(fx.dead_seen.payloads[0], body);
    size_t handled = 0;
    bus_consumer_poll(fx.routed, 8, 300, &handled, NULL);
    assert_int_equal(fx.routed_seen.count, 0);
}

ESS_TEST_MAIN(NULL, end)
