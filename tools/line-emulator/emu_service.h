/* emu_service: the line-emulator process — the svc runtime's hooks and the h2o adaptor that
 * turns requests into emu_request and emu_response back into answers, including the scripted
 * faults that need the socket (a late answer, a dropped connection).
 *
 * main.c fills the config table and hands emu_service_* to svc_main. Everything here runs on
 * the event-loop thread except the delivery observer (worker threads). */
#ifndef EMU_SERVICE_H
#define EMU_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include <h2o.h>

#include "emu_app.h"
#include "svc.h"

#define EMU_HANG_TIMEOUTS_MAX 8

typedef struct emu_service {
    emu_config config;
    emu_app app;
    bool app_ready;
    svc *runtime;
    /* Late answers: one h2o timeout per distinct hang duration. */
    h2o_timeout_t hang_timeouts[EMU_HANG_TIMEOUTS_MAX];
    uint64_t hang_timeout_ms[EMU_HANG_TIMEOUTS_MAX];
    int hang_timeout_count;
    h2o_linklist_t hung; /* requests waiting to be answered */
    met_counter *webhook_delivered, *webhook_failed, *webhook_retried;
} emu_service;

/* svc hooks; closure is the emu_service. */
st_code emu_service_init(svc *s, void *closure, st_error *err);
void emu_service_stop(svc *s, void *closure);
void emu_service_fini(svc *s, void *closure);
/* The route handler for "/v2/" and "/_emulator/". */
int emu_service_handle(svc *s, struct st_h2o_req_t *req, void *closure);

#endif
