/* conv_catalog: every word the bot says to a reporter, in Thai and English.
 *
 * The dialogue (conv_machine) names messages by id; this module turns an id, a language and
 * a few parameters into a LINE message object (text + quick reply). No user-facing string is
 * built anywhere else. Wording rules (issue 4, DESIGN.md §1): short, neutral, nothing graphic
 * and nothing the reporter typed echoed back; hotlines 191 (police), 1300 (social assistance),
 * 1669 (medical); quick-reply labels <= 20 graphemes (checked by tests/unit/conversation with
 * the line-emulator's validator).
 *
 * Pure, thread-safe (static tables). */
#ifndef CONV_CATALOG_H
#define CONV_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "status.h"

typedef enum conv_lang { CONV_LANG_TH = 0, CONV_LANG_EN } conv_lang;

typedef enum conv_category {
    CONV_CAT_NONE = 0,
    CONV_CAT_THREAT,
    CONV_CAT_CONFINEMENT,
    CONV_CAT_SEXUAL,
    CONV_CAT_FRENZY,
    CONV_CAT_GATHERING,
} conv_category;
#define CONV_CATEGORY_COUNT 5

typedef enum conv_msg {
    CONV_MSG_WELCOME = 0,     /* what ESS is for; 191 in immediate danger */
    CONV_MSG_ASK_CATEGORY,    /* quick reply: the five groups + the other language */
    CONV_MSG_ASK_LOCATION,    /* quick reply: share location */
    CONV_MSG_ASK_PHONE,       /* the expected format */
    CONV_MSG_BAD_PHONE,       /* re-prompt with examples */
    CONV_MSG_OFFER_NO_PHONE,  /* after 3 failures; quick reply: send without a phone */
    CONV_MSG_SUBMITTED,       /* {case}; 191; quick reply: cancel, add information */
    CONV_MSG_INFO_ADDED,      /* {case}; quick reply: cancel, add information */
    CONV_MSG_ADD_INFO_HINT,   /* what can be added */
    CONV_MSG_CASE_OPEN,       /* {case} is still open; quick reply: cancel, add information */
    CONV_MSG_CANCELLED,       /* {case} cancelled */
    CONV_MSG_DRAFT_CANCELLED, /* the unfinished report was dropped */
    CONV_MSG_NOTHING_TO_CANCEL,
    CONV_MSG_EXPIRED,         /* the draft timed out */
    CONV_MSG_HINT,            /* unknown input: a kind hint (a prompt follows) */
    CONV_MSG_RATE_LIMITED,    /* too many reports this hour: the hotlines */
    /* Status pushes after submission (issue 7): silent, short, neutral. */
    CONV_MSG_CASE_TAKEN,      /* {case}: a team took it; quick reply: cancel, add information */
    CONV_MSG_CASE_ON_SCENE,   /* {case}: an officer is at the place */
    CONV_MSG_CASE_CLOSED,     /* {case} closed; start again or call 191 if needed */
    CONV_MSG_COUNT
} conv_msg;

/* Parameters a message may use. Borrowed for the call. */
typedef struct conv_msg_params {
    const char *case_number; /* "ESS-2569-000123" for {case} */
    int64_t incident_id;     /* carried by cancel / add-information buttons */
} conv_msg_params;

/* Stable code of a category ("threat", ...) or NULL for CONV_CAT_NONE. */
const char *conv_category_code(conv_category category);
/* CONV_CAT_NONE when code is not one of the five. */
conv_category conv_category_from_code(const char *code);
/* The quick-reply label of a category in a language (DESIGN.md §1 for Thai). */
const char *conv_category_label(conv_category category, conv_lang lang);
/* The category whose label (either language) or code equals text, ignoring ASCII case and
 * surrounding spaces; CONV_CAT_NONE when none does. */
conv_category conv_category_from_label(const char *text);

const char *conv_lang_code(conv_lang lang); /* "th" | "en" */
conv_lang conv_lang_from_code(const char *code); /* th for anything but "en" */

/* Stable name of a message id ("welcome", ...), for tests and logs. */
const char *conv_msg_name(conv_msg msg);

/* Builds the LINE message object. Caller owns *ret_message (cJSON_Delete). ST_INVALID for an
 * unknown id or a {case} message without a case number. */
st_code conv_catalog_render(conv_msg msg, conv_lang lang, const conv_msg_params *params,
                            cJSON **ret_message);

#endif
