/* notifier_card: the responder card — what a team's LINE group receives for a new incident.
 *
 * Two messages in one push:
 *   1. a Flex bubble in Thai: a header in the category's colour (case number, category);
 *      rows for the time (Asia/Bangkok, Buddhist-era date), the place LINE gave, the area
 *      (tambon/district/province), the responsible station and its distance, the call-back
 *      number; buttons "รับเรื่อง" (postback "v=1&a=take&i=<incident_id>", for the conversation
 *      service), "เปิดแผนที่" (https://www.google.com/maps?q=LAT,LON) and "โทรกลับผู้แจ้ง"
 *      (tel:, only when a number exists). Its altText (<= 400 UTF-16 units) carries the
 *      essentials for the notification preview: case number, category, time, place, station
 *      and distance — never the phone number (previews show on locked screens);
 *   2. a location message (title and address <= 100 units) so the pin opens in the phone's
 *      map app; left out when the incident has no coordinates.
 * Every text is cut on grapheme boundaries (notifier_text) to LINE's limits. The reporter's
 * LINE id is not an input, so it cannot appear.
 *
 * Pure; thread-safe. */
#ifndef NOTIFIER_CARD_H
#define NOTIFIER_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define NOTIFIER_ALT_TEXT_MAX 400
#define NOTIFIER_LOCATION_TEXT_MAX 100
#define NOTIFIER_POSTBACK_DATA_MAX 300
#define NOTIFIER_CARD_TEXT_MAX 300 /* units of any one text row in the bubble */

/* What the card shows; filled from the routed event and the incidents row. Strings are
 * NUL-terminated; "" = unknown. */
typedef struct notifier_incident {
    int64_t incident_id;
    char case_number[64];
    char category[32]; /* threat | confinement | sexual | frenzy | gathering */
    bool has_location;
    double lat, lon;
    char location_title[1024]; /* from the reporter's LINE location message */
    char location_address[1024];
    char tambon_name[256];
    char district_name[256];
    char province_name[256];
    char province_code[16]; /* "TH10" = Bangkok: แขวง/เขต instead of ต./อ./จ. */
    char station_name[512];
    bool has_station_distance;
    int64_t station_distance_m;
    int64_t reported_at; /* UTC epoch seconds */
    char phone[64];      /* personal data: wipe the struct after rendering */
} notifier_incident;

/* Full Thai name and the card colour (#RRGGBB) of a category; a neutral label and grey for an
 * unknown one. Static storage. */
const char *notifier_category_label(const char *category);
const char *notifier_category_colour(const char *category);

/* The area line: "ต.สุเทพ อ.เมืองเชียงใหม่ จ.เชียงใหม่" (or แขวง/เขต for Bangkok), from the
 * names present; "" when none. */
void notifier_card_area(const notifier_incident *incident, char *out, size_t out_size);

/* Renders the messages as a compact JSON array text. *ret_messages is heap (caller frees; it
 * holds the phone number: wipe before freeing). ST_INVALID when the incident has no case
 * number or id. */
st_code notifier_card_render(const notifier_incident *incident, char **ret_messages,
                             size_t *ret_len, st_error *err);

#endif
