/* ess-georouter: ess.incident.reported -> ess.incident.routed. What the service is; the
 * runtime (libs/svc) does the rest. The handler and the reload are in georouter.c, the
 * decision in geo_*.c (shared with essctl). */
#include <stddef.h>

#include "georouter.h"

static georouter service;

static const cfg_field config[] = {
    CFG_INT("ESS_GEO_MAX_OFFSHORE_KM", "30", 0, 1000,
            "a point in no polygon goes to the nearest one within this many km (sea, rivers, "
            "simplified coast); farther, or 0: the national centre",
            georouter, config.max_offshore_km),
    CFG_INT("ESS_GEO_NEAREST_STATIONS", "3", 0, GEO_NEAREST_MAX,
            "how many next-nearest police stations a routed incident lists for escalation",
            georouter, config.nearest_stations),
    CFG_DURATION("ESS_GEO_RELOAD_PERIOD", "30s", 1000, 24LL * 3600 * 1000,
                 "how often geo_meta.version is read; a new version (essctl geo import, "
                 "essctl stations import) reloads the polygons and stations",
                 georouter, config.reload_period_ms),
    CFG_FIELD_("ESS_DATA_KEY", CFG_T_KEY32, NULL, false, true, 0, 0, NULL,
               "optional: lets this service's outbox relay also publish the sealed rows of "
               "other services (every relay publishes the whole outbox in order); without it "
               "a relay that holds the key publishes them",
               georouter, config.data_key),
};

static const svc_consumer_spec consumers[] = {
    {.durable = "georouter",
     .handler = georouter_handle,
     .batch = 16,
     .capacity = georouter_capacity},
};

int main(int argc, char **argv)
{
    const svc_def def = {
        .name = "georouter",
        .summary = "routes each reported incident to its area, police stations and teams",
        .listen_var = "ESS_GEOROUTER_LISTEN",
        .listen_default = "127.0.0.1:8083",
        .config = config,
        .config_count = sizeof(config) / sizeof(config[0]),
        .config_target = &service,
        .needs_nats = true,
        .needs_pg = true,
        .consumers = consumers,
        .consumer_count = sizeof(consumers) / sizeof(consumers[0]),
        .closure = &service,
        .init = georouter_init,
        .stop = georouter_stop,
        .fini = georouter_fini,
        .ready = georouter_ready,
    };
    return svc_main(&def, argc, argv);
}
