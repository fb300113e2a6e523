#include "notifier_card.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "notifier_text.h"

#define COLOUR_LABEL "#8C8C8C"
#define COLOUR_VALUE "#222222"
#define COLOUR_ON_HEADER "#FFFFFF"

typedef struct category_style {
    const char *code;
    const char *label;  /* DESIGN.md §1, full Thai */
    const char *colour; /* distinct, readable under white text */
} category_style;

static const category_style categories[] = {
    {"threat", "ข่มขู่ว่าจะทำร้าย / ทำร้าย", "#C62828"}, {"confinement", "กักขังหน่วงเหนี่ยว", "#6A1B9A"},
    {"sexual", "เสี่ยงถูกล่วงละเมิดทางเพศ", "#AD1457"}, {"frenzy", "ผู้คลุ้มคลั่งก่อให้เกิดเหตุร้าย", "#E65100"},
    {"gathering", "มั่วสุมก่อให้เกิดเหตุร้าย", "#4E342E"},
};
static const category_style unknown_category = {"", "เหตุทางสังคม", "#455A64"};

static const category_style *style_of(const char *category)
{
    for (size_t i = 0; i < sizeof(categories) / sizeof(categories[0]); i++)
        if (category != NULL && strcmp(category, categories[i].code) == 0)
            return &categories[i];
    return &unknown_category;
}

const char *notifier_category_label(const char *category)
{
    return style_of(category)->label;
}

const char *notifier_category_colour(const char *category)
{
    return style_of(category)->colour;
}

void notifier_card_area(const notifier_incident *incident, char *out, size_t out_size)
{
    bool bangkok = strcmp(incident->province_code, "TH10") == 0;
    const char *tambon_prefix = bangkok ? "แขวง" : "ต.";
    const char *district_prefix = bangkok ? "เขต" : "อ.";
    const char *province_prefix = bangkok ? "" : "จ.";
    size_t used = 0;
    out[0] = '\0';
    const char *parts[3][2] = {{tambon_prefix, incident->tambon_name},
                               {district_prefix, incident->district_name},
                               {province_prefix, incident->province_name}};
    for (size_t i = 0; i < 3; i++) {
        if (parts[i][1][0] == '\0')
            continue;
        int n = snprintf(out + used, out_size - used, "%s%s%s", used > 0 ? " " : "", parts[i][0],
                         parts[i][1]);
        if (n < 0 || (size_t)n >= out_size - used) {
            out[used] = '\0'; /* a name that does not fit is left out whole */
            break;
        }
        used += (size_t)n;
    }
}

/* The place as LINE gave it: "title, address", or either alone. */
static void place_text(const notifier_incident *incident, char *out, size_t out_size)
{
    const char *title = incident->location_title, *address = incident->location_address;
    if (title[0] != '\0' && address[0] != '\0' && strstr(address, title) == NULL)
        snprintf(out, out_size, "%s, %s", title, address);
    else if (address[0] != '\0')
        snprintf(out, out_size, "%s", address);
    else
        snprintf(out, out_size, "%s", title);
}

/* Digits (and a leading +) of the number; false when too short or long to be one. */
static bool phone_digits(const char *phone, char *out, size_t out_size)
{
    size_t used = 0;
    for (const char *at = phone; *at != '\0'; at++) {
        bool plus = *at == '+' && used == 0;
        if ((*at >= '0' && *at <= '9') || plus) {
            if (used + 1 >= out_size)
                return false;
            out[used++] = *at;
        }
    }
    out[used] = '\0';
    return used >= 3 && used <= 20;
}

/* 0812345678 → 081-234-5678, 021234567 → 02-123-4567; others as they are. */
static void phone_display(const char *digits, char *out, size_t out_size)
{
    size_t len = strlen(digits);
    if (len == 10 && digits[0] == '0')
        snprintf(out, out_size, "%.3s-%.3s-%.4s", digits, digits + 3, digits + 6);
    else if (len == 9 && digits[0] == '0')
        snprintf(out, out_size, "%.2s-%.3s-%.4s", digits, digits + 2, digits + 5);
    else
        snprintf(out, out_size, "%s", digits);
}

/* ---- building blocks (NULL on allocation failure; the parent takes ownership) ---- */

static cJSON *text_component(const char *text, const char *size, const char *colour, bool bold,
                             bool wrap, int flex)
{
    cJSON *item = cJSON_CreateObject();
    if (item == NULL)
        return NULL;
    cJSON_AddStringToObject(item, "type", "text");
    cJSON_AddStringToObject(item, "text", text);
    cJSON_AddStringToObject(item, "size", size);
    cJSON_AddStringToObject(item, "color", colour);
    if (bold)
        cJSON_AddStringToObject(item, "weight", "bold");
    if (wrap)
        cJSON_AddBoolToObject(item, "wrap", true);
    if (flex > 0)
        cJSON_AddNumberToObject(item, "flex", flex);
    return item;
}

static cJSON *box(const char *layout, const char *spacing)
{
    cJSON *item = cJSON_CreateObject();
    if (item == NULL)
        return NULL;
    cJSON_AddStringToObject(item, "type", "box");
    cJSON_AddStringToObject(item, "layout", layout);
    if (spacing != NULL)
        cJSON_AddStringToObject(item, "spacing", spacing);
    cJSON_AddItemToObject(item, "contents", cJSON_CreateArray());
    return item;
}

static void add_content(cJSON *parent, cJSON *child)
{
    cJSON *contents = cJSON_GetObjectItemCaseSensitive(parent, "contents");
    if (contents != NULL && child != NULL)
        cJSON_AddItemToArray(contents, child);
    else
        cJSON_Delete(child);
}

/* A "label  value" row; value cut to NOTIFIER_CARD_TEXT_MAX units. */
static void add_row(cJSON *body, const char *label, const char *value)
{
    char fitted[NOTIFIER_CARD_TEXT_MAX * 4 + 8];
    if (value[0] == '\0' ||
        notifier_text_fit(value, NOTIFIER_CARD_TEXT_MAX, fitted, sizeof(fitted), NULL) != ST_OK ||
        fitted[0] == '\0')
        return;
    cJSON *row = box("baseline", "sm");
    add_content(row, text_component(label, "sm", COLOUR_LABEL, false, false, 2));
    add_content(row, text_component(fitted, "sm", COLOUR_VALUE, false, true, 5));
    add_content(body, row);
}

static cJSON *button(const char *style, const char *colour, cJSON *action)
{
    cJSON *item = cJSON_CreateObject();
    if (item == NULL || action == NULL) {
        cJSON_Delete(item);
        cJSON_Delete(action);
        return NULL;
    }
    cJSON_AddStringToObject(item, "type", "button");
    cJSON_AddStringToObject(item, "style", style);
    if (colour != NULL)
        cJSON_AddStringToObject(item, "color", colour);
    cJSON_AddStringToObject(item, "height", "sm");
    cJSON_AddItemToObject(item, "action", action);
    return item;
}

static cJSON *uri_action(const char *label, const char *uri)
{
    cJSON *action = cJSON_CreateObject();
    if (action == NULL)
        return NULL;
    cJSON_AddStringToObject(action, "type", "uri");
    cJSON_AddStringToObject(action, "label", label);
    cJSON_AddStringToObject(action, "uri", uri);
    return action;
}

static cJSON *take_action(const notifier_incident *incident)
{
    char data[NOTIFIER_POSTBACK_DATA_MAX + 1], display[128];
    snprintf(data, sizeof(data), "v=1&a=take&i=%" PRId64, incident->incident_id);
    snprintf(display, sizeof(display), "รับเรื่อง %s", incident->case_number);
    cJSON *action = cJSON_CreateObject();
    if (action == NULL)
        return NULL;
    cJSON_AddStringToObject(action, "type", "postback");
    cJSON_AddStringToObject(action, "label", "รับเรื่อง");
    cJSON_AddStringToObject(action, "data", data);
    cJSON_AddStringToObject(action, "displayText", display);
    return action;
}

/* ---- the two messages ---- */

typedef struct card_texts {
    char time[96];
    char place[2200];
    char area[800];
    char station[700];
    char coordinates[64];
    char phone_digits[32];
    char phone_display[40];
    bool has_phone;
} card_texts;

static void prepare(const notifier_incident *incident, card_texts *t)
{
    memset(t, 0, sizeof(*t));
    notifier_text_thai_time(incident->reported_at, t->time, sizeof(t->time));
    place_text(incident, t->place, sizeof(t->place));
    notifier_card_area(incident, t->area, sizeof(t->area));
    char distance[48] = "";
    if (incident->has_station_distance)
        notifier_text_distance(incident->station_distance_m, distance, sizeof(distance));
    if (incident->station_name[0] != '\0' && distance[0] != '\0')
        snprintf(t->station, sizeof(t->station), "%s (%s)", incident->station_name, distance);
    else if (incident->station_name[0] != '\0')
        snprintf(t->station, sizeof(t->station), "%s", incident->station_name);
    else if (distance[0] != '\0')
        snprintf(t->station, sizeof(t->station), "ห่าง %s", distance);
    if (incident->has_location)
        snprintf(t->coordinates, sizeof(t->coordinates), "%.6f, %.6f", incident->lat,
                 incident->lon);
    t->has_phone = phone_digits(incident->phone, t->phone_digits, sizeof(t->phone_digits));
    if (t->has_phone)
        phone_display(t->phone_digits, t->phone_display, sizeof(t->phone_display));
}

static cJSON *bubble(const notifier_incident *incident, const card_texts *t)
{
    const category_style *style = style_of(incident->category);
    cJSON *root = cJSON_CreateObject();
    if (root == NULL)
        return NULL;
    cJSON_AddStringToObject(root, "type", "bubble");
    cJSON_AddStringToObject(root, "size", "mega");

    cJSON *header = box("vertical", "xs");
    if (header != NULL) {
        cJSON_AddStringToObject(header, "backgroundColor", style->colour);
        char title[128];
        snprintf(title, sizeof(title), "แจ้งเหตุใหม่ · %s", incident->case_number);
        add_content(header, text_component(title, "sm", COLOUR_ON_HEADER, false, true, 0));
        add_content(header, text_component(style->label, "lg", COLOUR_ON_HEADER, true, true, 0));
    }
    cJSON_AddItemToObject(root, "header", header);

    cJSON *body = box("vertical", "md");
    add_row(body, "เวลา", t->time);
    add_row(body, "สถานที่", t->place);
    add_row(body, "พื้นที่", t->area);
    add_row(body, "พิกัด", t->coordinates);
    add_row(body, "สถานี", t->station);
    if (t->has_phone)
        add_row(body, "โทร", t->phone_display);
    cJSON_AddItemToObject(root, "body", body);

    cJSON *footer = box("vertical", "sm");
    add_content(footer, button("primary", style->colour, take_action(incident)));
    if (incident->has_location) {
        char map[128];
        snprintf(map, sizeof(map), "https://www.google.com/maps?q=%.6f,%.6f", incident->lat,
                 incident->lon);
        add_content(footer, button("secondary", NULL, uri_action("เปิดแผนที่", map)));
    }
    if (t->has_phone) {
        char tel[40];
        snprintf(tel, sizeof(tel), "tel:%s", t->phone_digits);
        add_content(footer, button("secondary", NULL, uri_action("โทรกลับผู้แจ้ง", tel)));
    }
    cJSON_AddItemToObject(root, "footer", footer);
    if (header == NULL || body == NULL || footer == NULL) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* The notification preview: essentials only, never the phone number. */
static st_code alt_text(const notifier_incident *incident, const card_texts *t, char *out,
                        size_t out_size)
{
    char full[4096];
    const char *place = t->place[0] != '\0' ? t->place : t->area;
    int n = snprintf(full, sizeof(full), "แจ้งเหตุใหม่ %s: %s | %s", incident->case_number,
                     notifier_category_label(incident->category), t->time);
    size_t used = n > 0 && (size_t)n < sizeof(full) ? (size_t)n : 0;
    const char *extras[] = {place, place == t->place ? t->area : "", t->station};
    for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
        if (extras[i][0] == '\0')
            continue;
        n = snprintf(full + used, sizeof(full) - used, " | %s", extras[i]);
        if (n < 0 || (size_t)n >= sizeof(full) - used)
            break; /* the fit below cuts anyway */
        used += (size_t)n;
    }
    full[used] = '\0';
    return notifier_text_fit(full, NOTIFIER_ALT_TEXT_MAX, out, out_size, NULL);
}

static cJSON *location_message(const notifier_incident *incident, const card_texts *t)
{
    char title_full[256], title[NOTIFIER_LOCATION_TEXT_MAX * 4 + 8];
    char address[NOTIFIER_LOCATION_TEXT_MAX * 4 + 8];
    snprintf(title_full, sizeof(title_full), "%s %s", incident->case_number,
             notifier_category_label(incident->category));
    const char *where = t->place[0] != '\0'  ? t->place
                        : t->area[0] != '\0' ? t->area
                                             : t->coordinates;
    if (notifier_text_fit(title_full, NOTIFIER_LOCATION_TEXT_MAX, title, sizeof(title), NULL) !=
            ST_OK ||
        notifier_text_fit(where, NOTIFIER_LOCATION_TEXT_MAX, address, sizeof(address), NULL) !=
            ST_OK)
        return NULL;
    cJSON *message = cJSON_CreateObject();
    if (message == NULL)
        return NULL;
    cJSON_AddStringToObject(message, "type", "location");
    cJSON_AddStringToObject(message, "title", title);
    cJSON_AddStringToObject(message, "address", address);
    cJSON_AddNumberToObject(message, "latitude", incident->lat);
    cJSON_AddNumberToObject(message, "longitude", incident->lon);
    return message;
}

st_code notifier_card_render(const notifier_incident *incident, char **ret_messages,
                             size_t *ret_len, st_error *err)
{
    st_code code = ST_NOMEM;
    cJSON *messages = NULL;
    char *printed = NULL;
    card_texts *t = NULL;
    if (incident->incident_id < 1 || incident->case_number[0] == '\0') {
        code = st_fail(err, ST_INVALID, "card: incident without id or case number");
        goto cleanup;
    }
    t = malloc(sizeof(*t));
    messages = cJSON_CreateArray();
    if (t == NULL || messages == NULL)
        goto nomem;
    prepare(incident, t);

    char alt[NOTIFIER_ALT_TEXT_MAX * 4 + 8];
    code = alt_text(incident, t, alt, sizeof(alt));
    if (code != ST_OK) {
        st_fail(err, code, "card: text is not UTF-8");
        goto cleanup;
    }
    cJSON *flex = cJSON_CreateObject();
    if (flex == NULL)
        goto nomem;
    cJSON_AddItemToArray(messages, flex);
    cJSON_AddStringToObject(flex, "type", "flex");
    cJSON_AddStringToObject(flex, "altText", alt);
    cJSON *contents = bubble(incident, t);
    if (contents == NULL)
        goto nomem;
    cJSON_AddItemToObject(flex, "contents", contents);
    if (incident->has_location) {
        cJSON *location = location_message(incident, t);
        if (location == NULL)
            goto nomem;
        cJSON_AddItemToArray(messages, location);
    }
    printed = cJSON_PrintUnformatted(messages);
    if (printed == NULL)
        goto nomem;
    *ret_len = strlen(printed);
    *ret_messages = printed;
    printed = NULL;
    code = ST_OK;
    goto cleanup;
nomem:
    code = st_fail(err, ST_NOMEM, "card: out of memory");
cleanup:
    if (t != NULL) {
        explicit_bzero(t, sizeof(*t)); /* held the phone number */
        free(t);
    }
    cJSON_Delete(messages);
    free(printed);
    return code;
}
