/* conv_machine: the citizen dialogue as a pure function.
 *
 *     (state, event, context) -> (next state, actions, response)
 *
 * No I/O, no clock, no allocation: the store (conv_store.c) loads the state, calls
 * conv_machine_apply, carries out the actions in the same transaction and renders the
 * response through the catalogue. The table-driven tests in tests/unit/conversation drive
 * this function over the whole dialogue.
 *
 * States:
 *   IDLE       nothing in progress (a new user, or after a cancel, an expiry, a rate limit);
 *   DRAFT      collecting the three slots (category, location, phone) in any order;
 *   SUBMITTED  the case is open: what the reporter sends is added to it.
 *
 * Order of events (DESIGN.md: "a user's events apply in timestamp order"): the state keeps
 * the LINE timestamp of the newest event applied. An event older than that ("late": it was
 * delivered after a newer one, e.g. by a redelivery or a second ess-conversation process) is
 * applied only where its effect commutes with what came after it:
 *   - it fills a draft slot only if the slot is still empty (it never overwrites a newer
 *     value) and it never counts as a failed phone attempt;
 *   - after submission it is added to the case only if it is not older than the submission;
 *   - commands (follow, unfollow, keywords, cancel, language, send-without-phone) are ignored:
 *     they would undo newer state;
 *   - it answers only when it changed something.
 * So any arrival order of one user's slot events ends in the same draft, and a late event
 * never undoes a newer one.
 *
 * Standby mode (another channel owns the chat): nothing changes, nothing is sent.
 *
 * The LINE profile (CONV_EV_PROFILE, the answer of a look-up asked for on follow or first
 * contact) sets the language unless the user chose one: English when the profile's language
 * starts with "en", Thai otherwise. It is outside the order of the user's events (it never
 * moves last_event_ts), and when nothing happened since the event that asked for it and the
 * draft is still empty, the opening prompt is pushed again in English. */
#ifndef CONV_MACHINE_H
#define CONV_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conv_catalog.h"
#include "conv_event.h"
#include "conv_phone.h"

#define CONV_CASE_NUMBER_MAX 32
#define CONV_RESPONSE_MAX 5 /* LINE: at most 5 messages per request */
#define CONV_ACTIONS_MAX 2
#define CONV_PHONE_ATTEMPTS 3 /* failures before the offer to send without a phone */

typedef enum conv_state_kind {
    CONV_STATE_IDLE = 0,
    CONV_STATE_DRAFT,
    CONV_STATE_SUBMITTED,
} conv_state_kind;

/* Where the conversation's language came from: the user's own choice (a keyword, the
 * language button) wins over the LINE profile's language, which wins over the default. */
typedef enum conv_lang_source {
    CONV_LANG_SOURCE_DEFAULT = 0,
    CONV_LANG_SOURCE_PROFILE,
    CONV_LANG_SOURCE_USER,
} conv_lang_source;

typedef struct conv_state {
    conv_state_kind kind;
    conv_lang language;
    conv_lang_source language_source;
    int64_t last_event_ts; /* newest LINE timestamp applied; 0 = never talked */
    /* DRAFT */
    conv_category category;
    conv_location location;
    char phone[CONV_PHONE_MAX]; /* normalised; "" = not given */
    int phone_failures;
    bool phone_declined;      /* "send without phone" chosen */
    int64_t draft_touched_ts; /* LINE time of the last event that touched the draft */
    /* SUBMITTED */
    int64_t incident_id;
    char case_number[CONV_CASE_NUMBER_MAX];
    int64_t submitted_ts; /* LINE time of the event that submitted */
} conv_state;

typedef struct conv_context {
    int64_t now_ms;        /* wall clock (used by EXPIRE only) */
    int64_t draft_ttl_ms;  /* ESS_DRAFT_TTL */
    int reports_last_hour; /* reports this user submitted in the past hour */
    int reports_per_hour;  /* ESS_REPORTS_PER_HOUR */
} conv_context;

typedef enum conv_action_kind {
    CONV_ACT_SUBMIT = 1,          /* create the incident from next.slots; fill next's incident */
    CONV_ACT_APPEND_INFO,         /* add the event (text, media, sticker, location) to the case */
    CONV_ACT_CANCEL_INCIDENT,     /* the reporter cancelled the case (current.incident_id) */
    CONV_ACT_REPORTER_UNFOLLOWED, /* timeline note: the reporter cannot be reached on LINE */
} conv_action_kind;

typedef struct conv_action {
    conv_action_kind kind;
    int64_t incident_id; /* APPEND_INFO, CANCEL_INCIDENT, REPORTER_UNFOLLOWED */
} conv_action;

typedef enum conv_delivery {
    CONV_DELIVER_ANSWER = 0, /* answer the event: reply while its token is fresh, else push */
    CONV_DELIVER_PUSH,       /* no event to answer (expiry): push */
} conv_delivery;

typedef struct conv_output {
    conv_state next;
    bool changed; /* next differs from the state given (write it) */
    bool late;    /* the event was older than the newest applied */
    conv_action actions[CONV_ACTIONS_MAX];
    size_t action_count;
    conv_msg response[CONV_RESPONSE_MAX]; /* rendered with conv_output_params */
    size_t response_count;
    conv_delivery delivery;
    /* The case the answer is about when it is not next's (a cancelled case); 0 = next's. */
    int64_t about_incident_id;
    char about_case_number[CONV_CASE_NUMBER_MAX];
} conv_output;

/* The initial state of a user never seen. */
void conv_state_init(conv_state *ret_state);

/* Applies one event. Never fails: any input has a defined outcome (unknown input gets a hint).
 * After CONV_ACT_SUBMIT the caller must set out->next.incident_id and case_number before
 * rendering the response. All pointers borrowed for the call. */
void conv_machine_apply(const conv_state *current, const conv_event *event,
                        const conv_context *context, conv_output *ret_output);

/* The parameters to render output->response with: the case it is about. Borrowed from
 * output. */
void conv_output_params(const conv_output *output, conv_msg_params *ret_params);

/* Keyword classification of a text (exposed for tests). */
typedef enum conv_keyword {
    CONV_KEYWORD_NONE = 0,
    CONV_KEYWORD_START_TH, /* แจ้งเหตุ, เมนู */
    CONV_KEYWORD_START_EN, /* help, report, menu */
    CONV_KEYWORD_CANCEL,   /* ยกเลิก, cancel */
} conv_keyword;
conv_keyword conv_machine_keyword(const char *text);

const char *conv_state_kind_name(conv_state_kind kind);
/* "default" | "profile" | "user" (conversations.language_source); DEFAULT for unknown names. */
const char *conv_lang_source_name(conv_lang_source source);
conv_lang_source conv_lang_source_from_name(const char *name);
/* IDLE when name is unknown. */
conv_state_kind conv_state_kind_from_name(const char *name);

#endif
