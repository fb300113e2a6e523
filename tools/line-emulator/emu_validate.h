/* emu_validate: LINE's checks on the messages of a reply or push request, and LINE's error
 * body {"message": ..., "details": [{"message": ..., "property": ...}]}.
 *
 * Limits (LINE's documentation and DESIGN.md §4; where LINE states a character count we use
 * UTF-16 units, except labels, which we count in grapheme clusters):
 *   messages 1..5; text 1..5000 UTF-16 units; quick reply <= 13 items, each an action with a
 *   label of 1..20 graphemes; camera, cameraRoll and location actions only in quick reply;
 *   postback data <= 300, displayText <= 300; message action text <= 300; uri <= 1000;
 *   location message title and address 1..100, latitude -90..90, longitude -180..180;
 *   altText 1..400 (template, flex, imagemap); flex bubble <= 30 KiB of compact JSON, carousel
 *   <= 12 bubbles and <= 50 KiB; template action counts per template type; image URLs https
 *   and <= 2000; sender name <= 20.
 *
 * Pure functions over borrowed cJSON trees; thread-safe. */
#ifndef EMU_VALIDATE_H
#define EMU_VALIDATE_H

#include <stdarg.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "status.h"

#define EMU_MESSAGES_MAX 5
#define EMU_TEXT_UNITS_MAX 5000
#define EMU_QUICK_REPLY_ITEMS_MAX 13
#define EMU_LABEL_GRAPHEMES_MAX 20
#define EMU_FLEX_LABEL_GRAPHEMES_MAX 40
#define EMU_POSTBACK_DATA_MAX 300
#define EMU_LOCATION_FIELD_MAX 100
#define EMU_ALT_TEXT_MAX 400
#define EMU_FLEX_BUBBLE_BYTES_MAX (30 * 1024)
#define EMU_FLEX_CAROUSEL_BYTES_MAX (50 * 1024)
#define EMU_FLEX_CAROUSEL_BUBBLES_MAX 12
#define EMU_BODY_BYTES_MAX (2 * 1024 * 1024)

#define EMU_PROBLEMS_MAX 32
#define EMU_PROBLEM_TEXT_MAX 160
#define EMU_PROPERTY_MAX 160

typedef struct emu_problem {
    char message[EMU_PROBLEM_TEXT_MAX];
    char property[EMU_PROPERTY_MAX];
} emu_problem;

/* Collected validation problems; embed by value, zero-initialise. Beyond EMU_PROBLEMS_MAX
 * problems are counted in `total` but their details dropped. */
typedef struct emu_problems {
    size_t count;
    size_t total;
    emu_problem items[EMU_PROBLEMS_MAX];
} emu_problems;

void emu_problems_add(emu_problems *problems, const char *property, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Validates the value of "messages" (NULL when absent) of a reply or push body, adding one
 * problem per violation with property paths like "messages[0].quickReply.items[2].action.label". */
void emu_validate_messages(const cJSON *messages, emu_problems *problems);

/* LINE's error body. details is omitted when problems is NULL or empty (as LINE omits an empty
 * array). *ret_body: heap, NUL-terminated, caller frees. */
st_code emu_error_body(const char *message, const emu_problems *problems, char **ret_body,
                       size_t *ret_len);

/* The standard "The request body has N error(s)" body for problems (count >= 1). */
st_code emu_validation_error_body(const emu_problems *problems, char **ret_body, size_t *ret_len);

#endif
