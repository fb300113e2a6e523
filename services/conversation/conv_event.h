/* conv_event: one LINE webhook event (a LINE_IN message) normalised for the dialogue.
 *
 * conv_event_parse reads the event JSON as ingress stored it (proto/schemas/
 * line.in.event.schema.json) and keeps only what the conversation uses, each field bounded.
 * Event kinds the conversation does not handle (unsend, beacon, ...) parse to CONV_EV_IGNORED.
 * Group events (join, leave, memberJoined, memberLeft, and messages and postbacks in a group)
 * keep their source kind and group id for the responder side (conv_team_store.c).
 *
 * One event type is ESS's own: "ess.profile", published to LINE_IN by ess-notifier with the
 * answer of a profile look-up that ess-conversation asked for (line.out.profile). It has the
 * shape of a LINE event plus {"profile": {"language"?, "displayName"?}, "context": "..."}.
 *
 * Pure (cJSON inside), thread-safe. */
#ifndef CONV_EVENT_H
#define CONV_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define CONV_ID_MAX 65                       /* LINE ids and webhookEventId: <= 64 + NUL */
#define CONV_REPLY_TOKEN_MAX 257             /* <= 256 + NUL */
#define CONV_TEXT_MAX (5000 * 4 + 1)         /* LINE text: <= 5000 UTF-16 units, <= 20000 bytes */
#define CONV_LOCATION_TEXT_MAX (100 * 4 + 1) /* title / address: <= 100 units */
#define CONV_EVENT_JSON_MAX (1024 * 1024)
#define CONV_DISPLAY_NAME_MAX (100 * 4 + 1) /* kept: at most 100 characters */
#define CONV_PROFILE_CONTEXT_MAX 65
#define CONV_PROFILE_EVENT_TYPE "ess.profile"

typedef enum conv_event_kind {
    CONV_EV_IGNORED = 0, /* nothing for the dialogue */
    CONV_EV_FOLLOW,
    CONV_EV_UNFOLLOW,
    CONV_EV_TEXT,
    CONV_EV_LOCATION,
    CONV_EV_POSTBACK,
    CONV_EV_STICKER,
    CONV_EV_MEDIA,  /* image, video, audio, file */
    CONV_EV_EXPIRE, /* internal: the draft sweep, never from LINE */
    CONV_EV_JOIN,   /* the bot was added to a group or room */
    CONV_EV_LEAVE,  /* the bot was removed */
    CONV_EV_MEMBER_JOINED,
    CONV_EV_MEMBER_LEFT,
    CONV_EV_PROFILE, /* "ess.profile": the answer of a profile look-up (ess-notifier) */
} conv_event_kind;

typedef enum conv_source_kind {
    CONV_SOURCE_USER = 0,
    CONV_SOURCE_GROUP,
    CONV_SOURCE_ROOM,
} conv_source_kind;

typedef struct conv_location {
    bool present;
    double lat, lon;
    char title[CONV_LOCATION_TEXT_MAX]; /* "" when LINE gave none */
    char address[CONV_LOCATION_TEXT_MAX];
} conv_location;

typedef struct conv_event {
    conv_event_kind kind;
    conv_source_kind source;
    bool standby;         /* mode "standby": send nothing */
    int64_t timestamp_ms; /* LINE's event timestamp */
    char webhook_event_id[CONV_ID_MAX];
    char reply_token[CONV_REPLY_TOKEN_MAX]; /* "" when none */
    char user_id[CONV_ID_MAX];              /* "" when the source has none */
    char text[CONV_TEXT_MAX];               /* TEXT */
    conv_location location;                 /* LOCATION */
    char postback_data[301];                /* POSTBACK (LINE: <= 300) */
    char message_id[CONV_ID_MAX];           /* message events */
    char media_type[16];                    /* MEDIA: image, video, audio, file */
    char sticker_package[CONV_ID_MAX];      /* STICKER */
    char sticker_id[CONV_ID_MAX];
    char group_id[CONV_ID_MAX]; /* group (or room) source; "" otherwise */
    int member_count;           /* MEMBER_JOINED / MEMBER_LEFT: members named */
    /* PROFILE */
    bool profile_found;        /* LINE answered with a profile */
    char profile_language[16]; /* "" when LINE gave none */
    char profile_display_name[CONV_DISPLAY_NAME_MAX];
    char profile_context[CONV_PROFILE_CONTEXT_MAX]; /* what the look-up was for */
} conv_event;

/* Parses len bytes of JSON into *ret_event (zeroed first). ST_INVALID (with a reason free of
 * personal data in err) when the JSON is malformed or lacks what every event has
 * (type, webhookEventId, timestamp, source); ST_LIMIT when larger than CONV_EVENT_JSON_MAX.
 * Over-long text fields are cut at a UTF-8 character boundary, never refused. */
st_code conv_event_parse(const char *json, size_t len, conv_event *ret_event, st_error *err);

/* Copies at most size-1 bytes of text into out, cutting at a UTF-8 character boundary. */
void conv_copy_utf8(char *out, size_t size, const char *text);

#endif
