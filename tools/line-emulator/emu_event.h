/* emu_event: webhook events as LINE builds them, the webhook body, and its signature.
 *
 * Shapes follow ../shared/line-openapi/webhook.yml: every event carries type, timestamp, mode
 * ("active" | "standby"), webhookEventId (a ULID) and deliveryContext.isRedelivery; replyable
 * events (message, follow, join, memberJoined, postback) carry a replyToken unless the channel
 * is in standby mode; a group source carries userId only for events a user performed.
 *
 * Pure functions; thread-safe. cJSON results are owned by the caller (cJSON_Delete). */
#ifndef EMU_EVENT_H
#define EMU_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "emu_ids.h"
#include "status.h"

#define EMU_SIGNATURE_LEN 44 /* base64 of 32 bytes */

typedef enum emu_event_kind {
    EMU_EV_FOLLOW,
    EMU_EV_UNFOLLOW,
    EMU_EV_TEXT,
    EMU_EV_LOCATION,
    EMU_EV_STICKER,
    EMU_EV_IMAGE,
    EMU_EV_POSTBACK,
    EMU_EV_JOIN,
    EMU_EV_LEAVE,
    EMU_EV_MEMBER_JOINED,
    EMU_EV_MEMBER_LEFT,
    EMU_EV_KIND_COUNT,
} emu_event_kind;

/* What happened; all pointers borrowed for the call. */
typedef struct emu_event_spec {
    emu_event_kind kind;
    const char *user_id;  /* acting user; NULL for join/leave/member events or an anonymous
                             group member */
    const char *group_id; /* NULL = the user's 1:1 chat with the bot */
    bool standby;         /* mode "standby": no replyToken */
    bool is_unblocked;    /* follow */
    const char *text;     /* text */
    double latitude, longitude;
    const char *title, *address;         /* location, optional */
    const char *package_id, *sticker_id; /* sticker */
    const char *postback_data;           /* postback */
    const cJSON *postback_params;        /* postback, optional object */
    const char *const *member_ids;       /* memberJoined / memberLeft */
    size_t member_count;
} emu_event_spec;

/* The identifiers LINE assigns to one event. */
typedef struct emu_event_ids {
    char webhook_event_id[EMU_ULID_LEN + 1];
    char reply_token[EMU_REPLY_TOKEN_LEN + 1]; /* "" = none */
    char message_id[EMU_MESSAGE_ID_MAX];       /* message events */
    char quote_token[EMU_QUOTE_TOKEN_LEN + 1]; /* text, sticker, image */
} emu_event_ids;

/* The control API's name of a kind ("text", "memberJoined", ...) and back (ST_NOT_FOUND). */
const char *emu_event_kind_name(emu_event_kind kind);
st_code emu_event_kind_parse(const char *name, emu_event_kind *ret_kind);

/* True when LINE issues a reply token for this kind of event. */
bool emu_event_kind_replyable(emu_event_kind kind);
/* True for kinds that happen in a group only (join, leave, memberJoined, memberLeft). */
bool emu_event_kind_group_only(emu_event_kind kind);

/* Builds the event object with deliveryContext.isRedelivery false. */
st_code emu_event_build(const emu_event_spec *spec, const emu_event_ids *ids, int64_t timestamp_ms,
                        cJSON **ret_event);

/* Serialises {"destination": ..., "events": [...]} from a borrowed array of events, with
 * every deliveryContext.isRedelivery set to `redelivery`, compact, optionally with non-ASCII
 * escaped as \uXXXX. *ret_body: heap, caller frees. */
st_code emu_webhook_body(const char *destination, const cJSON *events, bool redelivery,
                         bool escape_non_ascii, char **ret_body, size_t *ret_len);

/* base64(HMAC-SHA256(secret, body)), NUL-terminated into out. */
st_code emu_signature(const char *secret, size_t secret_len, const char *body, size_t body_len,
                      char out[EMU_SIGNATURE_LEN + 1]);

/* The signature header's name in the letter case used for delivery n (cycles through several
 * spellings; HTTP header names are case-insensitive and receivers must not care). */
const char *emu_signature_header_name(uint64_t n);

#endif
