/* georouter: the service around the routing core (geo.h).
 *
 * For every ess.incident.reported (durable "georouter"), in one PostgreSQL transaction:
 * mark the event processed (processed_events, key "reported.<incident_id>"), decide with the
 * in-memory index, read the province's teams, record the routing on the incident (area
 * codes, station, distance, status routed) and in its timeline, and add ess.incident.routed
 * (msg-id "routed.<incident_id>") to the outbox; the outbox relay publishes it. A redelivered
 * or repeated report finds its event processed and changes nothing.
 *
 * The index is loaded from PostgreSQL at start, and again whenever geo_meta.version changes
 * (polled every ESS_GEO_RELOAD_PERIOD on a thread of its own). Messages wait (the consumer
 * fetches nothing, readiness is false) while no index is loaded. */
#ifndef ESS_GEOROUTER_H
#define ESS_GEOROUTER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "cfg.h"
#include "geo.h"
#include "metrics.h"
#include "outbox.h"
#include "svc.h"

typedef struct georouter_config {
    int64_t max_offshore_km;  /* ESS_GEO_MAX_OFFSHORE_KM */
    int64_t nearest_stations; /* ESS_GEO_NEAREST_STATIONS */
    int64_t reload_period_ms; /* ESS_GEO_RELOAD_PERIOD */
    cfg_key data_key;         /* ESS_DATA_KEY, optional: opens other services' sealed outbox
                                 rows, so this relay can publish them too */
} georouter_config;

/* A loaded index and the handlers using it: freed by the last one to let go. */
typedef struct georouter_index_ref {
    geo_index *index;
    int users; /* guarded by georouter.index_lock */
} georouter_index_ref;

typedef struct georouter {
    georouter_config config; /* filled by the runtime from the table in main.c */
    svc *svc;
    bool initialized; /* init ran: the locks below exist */
    pthread_mutex_t index_lock;
    georouter_index_ref *current;   /* NULL until the first load */
    _Atomic int64_t loaded_version; /* -1 while nothing is loaded */
    outbox_relay *relay;
    _Atomic uint64_t relay_failures;
    pthread_t reload_thread;
    bool reload_started;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stopping;
    met_counter *routed[4]; /* by geo_reason */
    met_counter *skipped;
    met_histogram *lookup_seconds;
    met_gauge *geo_version;
} georouter;

st_code georouter_init(svc *s, void *closure, st_error *err);
void georouter_stop(svc *s, void *closure);
void georouter_fini(svc *s, void *closure);
st_code georouter_ready(svc *s, void *closure, st_error *err);
int georouter_capacity(void *closure);
void georouter_handle(const bus_delivery *delivery, bus_outcome *outcome, void *closure);

#endif
