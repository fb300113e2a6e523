/* conv_team: the responder side of the dialogue, as pure functions (issue 7).
 *
 * What a team's LINE group may say to the bot, and every word the bot says to a group:
 *   - `/ess bind CODE` binds the group to the team of an invite code; `/ess` or `/ess help`
 *     explains; any other text in a group is the officers' own conversation and is left alone;
 *   - postbacks (format v1 of conv_postback.h):
 *       v=1&a=take&i=<incident>              the card's "รับเรื่อง" (ess-notifier renders it)
 *       v=1&a=scene&i=<incident>             "ถึงที่เกิดเหตุ"
 *       v=1&a=close&i=<incident>             "ปิดเรื่อง": asks for the outcome
 *       v=1&a=outcome&i=<incident>&o=<code>  helped | referred | false_alarm | not_found
 * Group texts are Thai only: the teams are Thai public-service officers. Buttons that must
 * stay usable after later messages are small Flex bubbles (text, then postback buttons in the
 * footer; a quick reply vanishes as soon as anyone writes), within LINE's limits (altText <=
 * 400, labels <= 20), checked against the line-emulator's validator in the unit tests.
 *
 * Pure, thread-safe. */
#ifndef CONV_TEAM_H
#define CONV_TEAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "conv_event.h"
#include "conv_invite.h"
#include "status.h"

typedef enum conv_outcome {
    CONV_OUTCOME_NONE = 0,
    CONV_OUTCOME_HELPED,
    CONV_OUTCOME_REFERRED,
    CONV_OUTCOME_FALSE_ALARM,
    CONV_OUTCOME_NOT_FOUND,
} conv_outcome;
#define CONV_OUTCOME_COUNT 4

/* "helped" ... (incidents.outcome); NULL for NONE. */
const char *conv_outcome_code(conv_outcome outcome);
conv_outcome conv_outcome_from_code(const char *code);
/* The Thai label of an outcome (button and confirmation). */
const char *conv_outcome_label(conv_outcome outcome);

typedef enum conv_team_action {
    CONV_TEAM_NONE = 0, /* not for the bot */
    CONV_TEAM_HELP,     /* "/ess", "/ess help", or "/ess <something unknown>" */
    CONV_TEAM_BIND,     /* "/ess bind CODE"; code_valid false when CODE cannot be a code */
    CONV_TEAM_TAKE,
    CONV_TEAM_SCENE,
    CONV_TEAM_CLOSE,
    CONV_TEAM_OUTCOME,
    CONV_TEAM_UNKNOWN, /* a postback that is not one of ours, or malformed */
} conv_team_action;

typedef struct conv_team_intent {
    conv_team_action action;
    int64_t incident_id;              /* TAKE, SCENE, CLOSE, OUTCOME */
    conv_outcome outcome;             /* OUTCOME */
    bool code_valid;                  /* BIND */
    char code[CONV_INVITE_CHARS + 1]; /* BIND: canonical form */
} conv_team_intent;

/* What a group event (text or postback) asks of the bot. */
void conv_team_classify(const conv_event *event, conv_team_intent *ret_intent);

typedef enum conv_team_msg {
    CONV_TEAM_MSG_INTRO = 0, /* join: what ESS is; how to bind with a code */
    CONV_TEAM_MSG_REJOINED,  /* join of a group bound before: {team} */
    CONV_TEAM_MSG_HELP,
    CONV_TEAM_MSG_BOUND,            /* {team} */
    CONV_TEAM_MSG_BIND_FAILED,      /* unknown, expired or used code */
    CONV_TEAM_MSG_TAKEN_CONFIRM,    /* {case}; buttons: on scene, close */
    CONV_TEAM_MSG_ALREADY_TAKEN,    /* {case} {actor} {team} {time} */
    CONV_TEAM_MSG_TAKEN_ELSEWHERE,  /* to the other groups: {case} {team} */
    CONV_TEAM_MSG_NOT_FOR_GROUP,    /* {case} was not sent to this group */
    CONV_TEAM_MSG_HANDLED_BY,       /* {case} is with {team} */
    CONV_TEAM_MSG_NOT_TAKEN_YET,    /* {case}; button: take */
    CONV_TEAM_MSG_ON_SCENE_CONFIRM, /* {case}; button: close */
    CONV_TEAM_MSG_ALREADY_ON_SCENE, /* {case}; button: close */
    CONV_TEAM_MSG_OUTCOME_CHOICE,   /* {case}; the four outcomes */
    CONV_TEAM_MSG_CLOSED_CONFIRM,   /* {case} {outcome} */
    CONV_TEAM_MSG_ALREADY_CLOSED,   /* {case} */
    CONV_TEAM_MSG_CANCELLED,        /* {case}: the reporter cancelled it */
    CONV_TEAM_MSG_REMINDER,         /* {case} {minutes}; button: take */
    CONV_TEAM_MSG_INFO_TEXT,        /* {case} {text} (the reporter's words, cut to fit) */
    CONV_TEAM_MSG_INFO_IMAGE,       /* {case} */
    CONV_TEAM_MSG_INFO_STICKER,     /* {case} */
    CONV_TEAM_MSG_INFO_LOCATION,    /* {case} (a location message follows) */
    CONV_TEAM_MSG_COUNT
} conv_team_msg;

typedef struct conv_team_params {
    const char *case_number;
    int64_t incident_id;
    const char *team;  /* a team's name */
    const char *actor; /* who took it */
    const char *time;  /* "08:05" */
    conv_outcome outcome;
    const char *text; /* INFO_TEXT */
    int64_t minutes;  /* REMINDER */
} conv_team_params;

const char *conv_team_msg_name(conv_team_msg msg);

/* Builds the LINE message object. Caller owns *ret_message (cJSON_Delete). ST_INVALID for an
 * unknown id or a missing parameter the message needs. */
st_code conv_team_render(conv_team_msg msg, const conv_team_params *params, cJSON **ret_message);

/* A location message for a group: the reporter's new location ({case} as title). */
cJSON *conv_team_location_message(const char *case_number, const conv_location *location);

/* "a member of <team>" in Thai: the actor of a responder action until LINE names the
 * member. */
void conv_team_member_of(const char *team, char *out, size_t size);

/* Copies text into out keeping at most max_units UTF-16 units (LINE's character count) and
 * size-1 bytes, cutting at a character boundary; adds "…" when it cut. */
void conv_cut_units(const char *text, size_t max_units, char *out, size_t size);

#endif
