/* emu_app: the emulator as one object — configuration, platform state, webhook delivery,
 * faults and rate limits — and its HTTP surface as plain request/response structs, so that
 * the Messaging API (emu_api.c) and the control API (emu_control.c) are testable without a
 * socket. emu_http.c adapts h2o requests to these structs.
 *
 * Threading: emu_app_handle runs on the HTTP event-loop thread only; webhook delivery runs on
 * its own worker threads (emu_delivery.h). */
#ifndef EMU_APP_H
#define EMU_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "emu_delivery.h"
#include "emu_faults.h"
#include "emu_ids.h"
#include "emu_rate.h"
#include "emu_state.h"
#include "emu_validate.h"
#include "status.h"

/* The environment configuration (see README.md; the table is in main.c). */
typedef struct emu_config {
    char *channel_secret;
    char *channel_token;
    char *webhook_url;
    char *bot_user_id; /* "" = derived from the channel secret */
    int64_t reply_token_ttl_ms;
    int64_t retry_key_ttl_ms;
    int64_t rate_limit;
    bool redelivery;
    int64_t webhook_timeout_ms;
    int64_t redelivery_interval_ms;
    int64_t redelivery_max_interval_ms;
    int64_t redelivery_attempts;
    char *escape_non_ascii; /* never | sometimes | always */
    int64_t webhook_workers;
    int64_t record_max;
    int64_t conversation_max;
    int64_t fault_hang_ms;
} emu_config;

/* A borrowed byte range; ptr NULL = absent. */
typedef struct emu_str {
    const char *ptr;
    size_t len;
} emu_str;

typedef struct emu_request {
    emu_str method;
    emu_str path; /* without the query */
    emu_str query;
    emu_str authorization;
    emu_str content_type;
    emu_str retry_key; /* X-Line-Retry-Key */
    emu_str body;
} emu_request;

/* What to answer. body is heap (emu_response_done frees). A fault may ask to answer late
 * (hang_ms > 0) or to drop the connection without an answer. */
typedef struct emu_response {
    int status;
    char *body;
    size_t body_len;
    char request_id[EMU_UUID_LEN + 1];          /* x-line-request-id ("" = none) */
    char accepted_request_id[EMU_UUID_LEN + 1]; /* x-line-accepted-request-id ("" = none) */
    int64_t hang_ms;
    bool drop;
} emu_response;

typedef struct emu_app {
    emu_config config; /* borrowed strings from the caller's config, valid for the app's life */
    char bot_user_id[EMU_LINE_ID_LEN + 1];
    emu_state *state;
    emu_delivery *delivery;
    emu_ulid_gen ulid;
    emu_faults faults;
    emu_rate rate;
    int64_t latency_ms;       /* every Messaging API answer waits this long (benchmarks) */
    int64_t (*wall_ms)(void); /* replaceable clocks (tests) */
    int64_t (*mono_ns)(void);
} emu_app;

/* Builds the app from a loaded config (strings borrowed, must outlive the app) and starts the
 * webhook workers (curl_global_init must have run). observer as in emu_delivery_create. */
st_code emu_app_init(emu_app *app, const emu_config *config, emu_delivery_observer observer,
                     void *observer_closure, st_error *err);
/* Stops the workers and frees everything. Accepts an app whose init failed. */
void emu_app_done(emu_app *app);

/* Answers one request (/v2/... Messaging API, /_emulator/... control). Never fails: errors
 * become error answers. Call emu_response_done afterwards. */
void emu_app_handle(emu_app *app, const emu_request *request, emu_response *response);
void emu_response_done(emu_response *response);

/* ---- helpers shared by emu_api.c and emu_control.c ---- */

/* Sets status and the compact JSON of root as body (root is borrowed). Answers 500 when
 * printing fails. */
void emu_respond_json(emu_response *response, int status, const cJSON *root);
/* LINE's error body {"message", "details"?}. problems may be NULL. */
void emu_respond_error(emu_response *response, int status, const char *message,
                       const emu_problems *problems);
/* True when s equals the NUL-terminated text. */
bool emu_str_is(emu_str s, const char *text);
/* Copies s into out as a NUL-terminated string; false (out = "") when it does not fit. */
bool emu_str_copy(emu_str s, char *out, size_t out_size);
/* Value of name in an application/x-www-form-urlencoded query, percent-decoded ("+" = space)
 * into out. false (out = "") when absent, malformed or too long for out. */
bool emu_query_get(emu_str query, const char *name, char *out, size_t out_size);

/* Derives the bot's user id from the channel secret ("U" + 32 hex of SHA-256). */
void emu_bot_user_id_derive(const char *channel_secret, char out[EMU_LINE_ID_LEN + 1]);

#endif
