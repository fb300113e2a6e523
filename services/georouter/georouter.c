/* georouter: the handler of ess.incident.reported, the index reload, and their wiring. */
#include "georouter.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "geo_pg.h"
#include "vault.h"

#define CONSUMER "georouter"
#define ROUTED_SUBJECT "ess.incident.routed"
#define CASE_NUMBER_MAX 64
#define RETRY_DELAY_MS 2000
#define NOT_LOADED_DELAY_MS 5000
#define BATCH 16

/* ---- the index and who uses it ------------------------------------------------------------ */

static georouter_index_ref *acquire_index(georouter *g)
{
    pthread_mutex_lock(&g->index_lock);
    georouter_index_ref *ref = g->current;
    if (ref != NULL)
        ref->users++;
    pthread_mutex_unlock(&g->index_lock);
    return ref;
}

static void release_index(georouter *g, georouter_index_ref *ref)
{
    if (ref == NULL)
        return;
    pthread_mutex_lock(&g->index_lock);
    bool last = --ref->users == 0 && ref != g->current;
    pthread_mutex_unlock(&g->index_lock);
    if (last) {
        geo_index_destroy(ref->index);
        free(ref);
    }
}

/* Makes index the current one; the previous one goes when its last user lets go. */
static st_code install_index(georouter *g, geo_index *index, st_error *err)
{
    georouter_index_ref *ref = calloc(1, sizeof(*ref));
    if (ref == NULL) {
        geo_index_destroy(index);
        return st_fail(err, ST_NOMEM, "out of memory");
    }
    ref->index = index;
    pthread_mutex_lock(&g->index_lock);
    georouter_index_ref *old = g->current;
    g->current = ref;
    bool free_old = old != NULL && old->users == 0;
    pthread_mutex_unlock(&g->index_lock);
    if (free_old) {
        geo_index_destroy(old->index);
        free(old);
    }
    geo_index_stats stats;
    geo_index_get_stats(index, &stats);
    atomic_store(&g->loaded_version, stats.version);
    met_gauge_set(g->geo_version, stats.version);
    log_event(LOG_INFO, "geo.loaded", "reference data loaded", LOG_INT("version", stats.version),
              LOG_INT("tambons", stats.tambons_with_boundary), LOG_INT("stations", stats.stations),
              LOG_INT("assigned_tambons", stats.assigned_tambons));
    if (stats.stations == 0 || stats.assigned_tambons < stats.tambons)
        log_event(LOG_WARN, "geo.incomplete",
                  "some tambons have no station: the nearest station stands in for them",
                  LOG_INT("tambons", stats.tambons),
                  LOG_INT("assigned_tambons", stats.assigned_tambons));
    return ST_OK;
}

static st_code load_index(georouter *g, db *d, st_error *err)
{
    geo_index *index = NULL;
    st_code status = geo_pg_load(d, &index, err);
    if (status != ST_OK)
        return status;
    return install_index(g, index, err);
}

/* ---- reload --------------------------------------------------------------------------------- */

/* Waits up to ms or until stop; true when stopping. */
static bool wait_or_stop(georouter *g, int64_t ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)(ms / 1000);
    deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g->stop_lock);
    while (!g->stopping)
        if (pthread_cond_timedwait(&g->stop_cond, &g->stop_lock, &deadline) != 0)
            break;
    bool stopping = g->stopping;
    pthread_mutex_unlock(&g->stop_lock);
    return stopping;
}

static void *reload_main(void *arg)
{
    georouter *g = arg;
    db *d = NULL;
    st_code last_failure = ST_OK;
    while (!wait_or_stop(g, g->config.reload_period_ms)) {
        st_error err = {0};
        st_code status = ST_OK;
        if (d == NULL) {
            db_options options = {.dsn = svc_common(g->svc)->pg_dsn,
                                  .application_name = "ess-georouter-reload",
                                  /* the whole load of polygons runs in one transaction */
                                  .statement_timeout_ms = 120000};
            status = db_connect(&options, &d, &err);
            if (status != ST_OK)
                d = NULL;
        }
        int64_t version = 0;
        if (status == ST_OK)
            status = geo_pg_version(d, &version, &err);
        if (status == ST_OK && version != atomic_load(&g->loaded_version)) {
            log_event(LOG_INFO, "geo.reload", "reference data changed, reloading",
                      LOG_INT("version", version),
                      LOG_INT("loaded_version", atomic_load(&g->loaded_version)));
            status = load_index(g, d, &err);
        }
        if (status != ST_OK && status != last_failure)
            log_event(LOG_WARN, "geo.reload_failed",
                      status == ST_NOT_FOUND
                          ? "no reference data yet: run essctl geo import; retrying"
                          : "cannot reload the reference data; retrying",
                      LOG_ERR(&err));
        last_failure = status;
    }
    db_destroy(d);
    return NULL;
}

/* ---- hooks ---------------------------------------------------------------------------------- */

/* Logged at the first failure and every 100th after: a relay without ESS_DATA_KEY meets
 * another service's sealed row at every round until that service's relay publishes it. */
static void relay_failed(const st_error *err, void *closure)
{
    georouter *g = closure;
    uint64_t failures = atomic_fetch_add(&g->relay_failures, 1);
    if (failures % 100 == 0)
        log_event(LOG_WARN, "outbox.relay", "outbox relay round failed; retrying", LOG_ERR(err),
                  LOG_INT("failures", failures + 1));
}

st_code georouter_init(svc *s, void *closure, st_error *err)
{
    georouter *g = closure;
    g->svc = s;
    g->initialized = true;
    atomic_store(&g->loaded_version, -1);
    pthread_mutex_init(&g->index_lock, NULL);
    pthread_mutex_init(&g->stop_lock, NULL);
    pthread_cond_init(&g->stop_cond, NULL);

    met_registry *metrics = svc_metrics(s);
    for (int r = GEO_REASON_IN_POLYGON; r <= GEO_REASON_NO_TEAM; r++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", geo_reason_name((geo_reason)r));
        met_counter_get(metrics, "ess_georouter_routed_total",
                        "incidents routed, by the reason of their targets", labels, &g->routed[r]);
    }
    met_counter_get(metrics, "ess_georouter_skipped_total",
                    "reports not routed: the incident was already closed or cancelled", NULL,
                    &g->skipped);
    met_histogram_get(metrics, "ess_georouter_lookup_seconds",
                      "time of one in-memory decision (point to area and stations)", NULL,
                      met_latency_bounds, met_latency_bound_count, &g->lookup_seconds);
    met_gauge_get(metrics, "ess_georouter_geo_version",
                  "geo_meta.version of the reference data in memory (-1: none)", NULL,
                  &g->geo_version);
    met_gauge_set(g->geo_version, -1);

    st_error load_err = {0};
    st_code status = load_index(g, svc_db(s), &load_err);
    if (status == ST_NOT_FOUND)
        log_event(LOG_WARN, "geo.not_imported",
                  "no reference data yet: run essctl geo import; reports wait until then",
                  LOG_ERR(&load_err));
    else if (status != ST_OK)
        log_event(LOG_WARN, "geo.load_failed",
                  "cannot load the reference data yet; reports wait, retrying", LOG_ERR(&load_err));

    vault_keys keys;
    bool has_keys = g->config.data_key.present;
    if (has_keys)
        vault_keys_derive(g->config.data_key.bytes, &keys);
    outbox_options relay = {.pg_dsn = svc_common(s)->pg_dsn,
                            .application_name = "ess-georouter-outbox",
                            .bus = svc_bus(s),
                            .keys = has_keys ? &keys : NULL,
                            .on_error = relay_failed,
                            .closure = g};
    status = outbox_relay_start(&relay, &g->relay, err);
    if (has_keys)
        vault_keys_wipe(&keys); /* the relay keeps its own copy */
    if (status != ST_OK)
        return status;
    if (pthread_create(&g->reload_thread, NULL, reload_main, g) != 0)
        return st_fail(err, ST_INTERNAL, "cannot start the reload thread");
    g->reload_started = true;
    return ST_OK;
}

void georouter_stop(svc *s, void *closure)
{
    (void)s;
    georouter *g = closure;
    if (!g->initialized)
        return;
    pthread_mutex_lock(&g->stop_lock);
    g->stopping = true;
    pthread_cond_broadcast(&g->stop_cond);
    pthread_mutex_unlock(&g->stop_lock);
    if (g->reload_started) {
        pthread_join(g->reload_thread, NULL);
        g->reload_started = false;
    }
    outbox_relay_stop(g->relay); /* one last round publishes what was committed */
    g->relay = NULL;
}

void georouter_fini(svc *s, void *closure)
{
    georouter *g = closure;
    georouter_stop(s, closure); /* when init failed half way, stop did not run */
    if (g->current != NULL) {
        geo_index_destroy(g->current->index);
        free(g->current);
        g->current = NULL;
    }
}

st_code georouter_ready(svc *s, void *closure, st_error *err)
{
    (void)s;
    georouter *g = closure;
    if (atomic_load(&g->loaded_version) < 0)
        return st_fail(err, ST_UNAVAILABLE, "reference data not loaded (essctl geo import)");
    return ST_OK;
}

int georouter_capacity(void *closure)
{
    georouter *g = closure;
    return atomic_load(&g->loaded_version) < 0 ? 0 : BATCH;
}

/* ---- the handler ---------------------------------------------------------------------------- */

typedef struct report {
    int64_t incident_id;
    char case_number[CASE_NUMBER_MAX + 1];
    char category[32];
    double lat, lon;
} report;

static bool read_report(const bus_delivery *delivery, report *ret_report, char *why,
                        size_t why_size)
{
    cJSON *doc = cJSON_ParseWithLength(delivery->data, delivery->len);
    bool ok = false;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(doc, "incident_id");
    const cJSON *case_number = cJSON_GetObjectItemCaseSensitive(doc, "case_number");
    const cJSON *category = cJSON_GetObjectItemCaseSensitive(doc, "category");
    const cJSON *location = cJSON_GetObjectItemCaseSensitive(doc, "location");
    const cJSON *lat = cJSON_GetObjectItemCaseSensitive(location, "lat");
    const cJSON *lon = cJSON_GetObjectItemCaseSensitive(location, "lon");
    if (doc == NULL) {
        snprintf(why, why_size, "the body is not JSON");
    } else if (!cJSON_IsNumber(id) || id->valuedouble < 1 || id->valuedouble > 9007199254740991.0 ||
               floor(id->valuedouble) != id->valuedouble) {
        snprintf(why, why_size, "incident_id is not a positive integer");
    } else if (!cJSON_IsString(case_number) || strlen(case_number->valuestring) > CASE_NUMBER_MAX) {
        snprintf(why, why_size, "case_number is missing or too long");
    } else if (!cJSON_IsString(category) || strlen(category->valuestring) >= 32) {
        snprintf(why, why_size, "category is missing");
    } else if (!cJSON_IsNumber(lat) || !cJSON_IsNumber(lon) || !isfinite(lat->valuedouble) ||
               !isfinite(lon->valuedouble) || fabs(lat->valuedouble) > 90 ||
               fabs(lon->valuedouble) > 180) {
        snprintf(why, why_size, "location.lat/lon are missing or out of range");
    } else {
        ret_report->incident_id = (int64_t)id->valuedouble;
        snprintf(ret_report->case_number, sizeof(ret_report->case_number), "%s",
                 case_number->valuestring);
        snprintf(ret_report->category, sizeof(ret_report->category), "%s", category->valuestring);
        ret_report->lat = lat->valuedouble;
        ret_report->lon = lon->valuedouble;
        ok = true;
    }
    cJSON_Delete(doc);
    return ok;
}

typedef struct routing {
    const report *report;
    const geo_decision *decision;
    /* results */
    bool duplicate; /* already routed before */
    bool skipped;
    geo_reason reason;
    size_t target_count;
} routing;

/* The incident_events detail: the facts of the routing, no location. */
static char *timeline_detail(const geo_decision *d, geo_reason reason, const geo_target *targets,
                             size_t target_count)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL &&
              cJSON_AddStringToObject(root, "reason", geo_reason_name(reason)) != NULL &&
              cJSON_AddStringToObject(root, "match", geo_match_name(d->match)) != NULL &&
              cJSON_AddNumberToObject(root, "geo_version", (double)d->version) != NULL;
    if (ok && d->match != GEO_MATCH_NONE)
        ok = cJSON_AddStringToObject(root, "province_code", d->province.code) != NULL &&
             cJSON_AddStringToObject(root, "district_code", d->district.code) != NULL &&
             cJSON_AddStringToObject(root, "tambon_code", d->tambon.code) != NULL;
    if (ok && d->has_station)
        ok = cJSON_AddStringToObject(root, "station_id", d->station.id) != NULL &&
             cJSON_AddNumberToObject(root, "station_distance_m", round(d->station.distance_m)) !=
                 NULL;
    cJSON *teams = ok ? cJSON_AddArrayToObject(root, "team_ids") : NULL;
    for (size_t i = 0; teams != NULL && i < target_count; i++) {
        cJSON *id = cJSON_CreateNumber((double)targets[i].team_id);
        if (id == NULL || !cJSON_AddItemToArray(teams, id)) {
            cJSON_Delete(id);
            ok = false;
            break;
        }
    }
    char *text = ok && teams != NULL ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}

static st_code route_in_tx(db *d, void *closure, st_error *err)
{
    routing *r = closure;
    const report *rep = r->report;
    const geo_decision *dec = r->decision;
    db_result *incident = NULL;
    geo_pg_teams *teams = NULL;
    char *json = NULL, *detail = NULL;
    char incident_id[24], event_id[48], msg_id[48];
    snprintf(incident_id, sizeof(incident_id), "%lld", (long long)rep->incident_id);
    snprintf(event_id, sizeof(event_id), "reported.%lld", (long long)rep->incident_id);
    snprintf(msg_id, sizeof(msg_id), "routed.%lld", (long long)rep->incident_id);
    r->skipped = false;

    bool first = false;
    st_code status = outbox_mark_processed(d, CONSUMER, event_id, &first, err);
    r->duplicate = status == ST_OK && !first;
    if (status != ST_OK || !first)
        goto cleanup; /* already routed: nothing to do, and nothing new to say */

    const char *id_param[] = {incident_id};
    status = db_exec(d,
                     "SELECT status, to_char(coalesce(routed_at, now()) AT TIME ZONE 'UTC', "
                     "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM incidents WHERE id = $1::bigint "
                     "FOR UPDATE",
                     1, id_param, &incident, err);
    if (status != ST_OK)
        goto cleanup;
    if (db_result_rows(incident) != 1) {
        status = st_fail(err, ST_NOT_FOUND, "incident %s is not on record", incident_id);
        goto cleanup;
    }
    const char *incident_status = db_result_value(incident, 0, 0);
    if (strcmp(incident_status, "closed") == 0 || strcmp(incident_status, "cancelled") == 0) {
        r->skipped = true;
        goto cleanup;
    }
    const geo_team_group *groups = NULL;
    size_t group_count = 0;
    if ((status = geo_pg_team_groups(d, dec->match != GEO_MATCH_NONE ? dec->province.code : NULL,
                                     &groups, &group_count, &teams, err)) != ST_OK)
        goto cleanup;
    geo_target targets[GEO_TARGETS_MAX];
    geo_select_targets(dec, groups, group_count, targets, &r->target_count, &r->reason);

    geo_json_input input = {.incident_id = rep->incident_id,
                            .case_number = rep->case_number,
                            .category = rep->category,
                            .routed_at = db_result_value(incident, 0, 1),
                            .decision = dec,
                            .targets = targets,
                            .target_count = r->target_count,
                            .reason = r->reason};
    if ((status = geo_decision_json(&input, &json, err)) != ST_OK)
        goto cleanup;
    detail = timeline_detail(dec, r->reason, targets, r->target_count);
    if (detail == NULL) {
        status = st_fail(err, ST_NOMEM, "out of memory");
        goto cleanup;
    }
    char distance[24] = "";
    if (dec->has_station)
        snprintf(distance, sizeof(distance), "%.0f", round(dec->station.distance_m));
    bool area = dec->match != GEO_MATCH_NONE;
    const char *update[] = {incident_id,
                            area ? dec->tambon.code : NULL,
                            area ? dec->district.code : NULL,
                            area ? dec->province.code : NULL,
                            dec->has_station ? dec->station.id : NULL,
                            dec->has_station ? distance : NULL};
    if ((status = db_exec(d,
                          "UPDATE incidents SET tambon_code = $2, district_code = $3, "
                          "province_code = $4, station_id = $5, station_distance_m = $6::integer, "
                          "status = CASE WHEN status = 'new' THEN 'routed' ELSE status END, "
                          "routed_at = coalesce(routed_at, now()), updated_at = now() "
                          "WHERE id = $1::bigint",
                          6, update, NULL, err)) != ST_OK)
        goto cleanup;
    const char *event[] = {incident_id, msg_id, detail};
    if ((status = db_exec(d,
                          "INSERT INTO incident_events (incident_id, event_key, kind, actor_type, "
                          "actor, detail) VALUES ($1::bigint, $2, 'routed', 'system', "
                          "'georouter', $3::jsonb) ON CONFLICT (incident_id, event_key) DO NOTHING",
                          3, event, NULL, err)) != ST_OK)
        goto cleanup;
    status = outbox_add(d, ROUTED_SUBJECT, msg_id, json, strlen(json), NULL, err);

cleanup:
    free(detail);
    free(json);
    geo_pg_teams_destroy(teams);
    db_result_destroy(incident);
    return status;
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

void georouter_handle(const bus_delivery *delivery, bus_outcome *outcome, void *closure)
{
    georouter *g = closure;
    report rep = {0};
    char why[160];
    if (!read_report(delivery, &rep, why, sizeof(why))) {
        outcome->verdict = BUS_REJECT;
        snprintf(outcome->reason, sizeof(outcome->reason), "not a valid ess.incident.reported: %s",
                 why);
        return;
    }
    georouter_index_ref *ref = acquire_index(g);
    if (ref == NULL) {
        outcome->verdict = BUS_RETRY;
        outcome->retry_delay_ms = NOT_LOADED_DELAY_MS;
        snprintf(outcome->reason, sizeof(outcome->reason), "reference data not loaded");
        return;
    }
    st_error err = {0};
    geo_decision decision;
    geo_options options = {.max_offshore_km = (double)g->config.max_offshore_km,
                           .nearest_stations = (int)g->config.nearest_stations};
    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    st_code status = geo_locate(ref->index, rep.lat, rep.lon, &options, &decision, &err);
    met_histogram_observe(g->lookup_seconds, seconds_since(&started));
    routing r = {.report = &rep, .decision = &decision};
    if (status == ST_OK)
        status = db_tx(svc_db(g->svc), 0, route_in_tx, &r, &err);

    if (status == ST_OK && r.duplicate) {
        log_event(LOG_DEBUG, "georouter.duplicate", "incident already routed",
                  LOG_INT("incident_id", rep.incident_id));
    } else if (status == ST_OK && r.skipped) {
        met_counter_add(g->skipped, 1);
        log_event(LOG_INFO, "georouter.skipped", "incident already closed: not routed",
                  LOG_INT("incident_id", rep.incident_id));
    } else if (status == ST_OK) {
        outbox_relay_kick(g->relay);
        met_counter_add(g->routed[r.reason], 1);
        log_event(
            LOG_INFO, "georouter.routed", "incident routed",
            LOG_INT("incident_id", rep.incident_id), LOG_STR("case", rep.case_number),
            LOG_STR("province", decision.match != GEO_MATCH_NONE ? decision.province.code : NULL),
            LOG_STR("reason", geo_reason_name(r.reason)), LOG_INT("targets", r.target_count),
            LOG_INT("geo_version", decision.version));
    } else if (status == ST_NOT_FOUND || status == ST_INVALID) {
        outcome->verdict = BUS_REJECT;
        snprintf(outcome->reason, sizeof(outcome->reason), "%.199s", err.message);
    } else {
        log_event(LOG_WARN, "georouter.retry", "cannot route the incident now; retrying",
                  LOG_INT("incident_id", rep.incident_id), LOG_ERR(&err));
        outcome->verdict = BUS_RETRY;
        outcome->retry_delay_ms = RETRY_DELAY_MS;
        snprintf(outcome->reason, sizeof(outcome->reason), "%.199s", err.message);
    }
    /* Last: the decision's names are borrowed from the index. */
    release_index(g, ref);
}
