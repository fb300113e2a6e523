/* The responder card, validated by the line-emulator's own validator (line_emulator_core:
 * the same checks the emulator's Messaging API runs), with ordinary and with the longest Thai
 * texts (long address, long station name, long area names). */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "emu_text.h"
#include "emu_validate.h"
#include "notifier_card.h"
#include "notifier_text.h"

static notifier_incident ordinary(void)
{
    notifier_incident incident;
    memset(&incident, 0, sizeof(incident));
    incident.incident_id = 123;
    snprintf(incident.case_number, sizeof(incident.case_number), "ESS-2569-000123");
    snprintf(incident.category, sizeof(incident.category), "threat");
    incident.has_location = true;
    incident.lat = 18.7883;
    incident.lon = 98.9853;
    snprintf(incident.location_title, sizeof(incident.location_title), "บ้านเลขที่ 5");
    snprintf(incident.location_address, sizeof(incident.location_address),
             "ถนนห้วยแก้ว ตำบลสุเทพ อำเภอเมืองเชียงใหม่");
    snprintf(incident.tambon_name, sizeof(incident.tambon_name), "สุเทพ");
    snprintf(incident.district_name, sizeof(incident.district_name), "เมืองเชียงใหม่");
    snprintf(incident.province_name, sizeof(incident.province_name), "เชียงใหม่");
    snprintf(incident.province_code, sizeof(incident.province_code), "TH50");
    snprintf(incident.station_name, sizeof(incident.station_name), "สภ.เมืองเชียงใหม่");
    incident.has_station_distance = true;
    incident.station_distance_m = 1250;
    incident.reported_at = 1772845500; /* 2026-03-07T01:05:00Z */
    snprintf(incident.phone, sizeof(incident.phone), "0812345678");
    return incident;
}

/* Fills out (size bytes) with Thai text full of stacked marks, as long as it fits. */
static void long_thai(char *out, size_t size)
{
    static const char phrase[] = "น้ำท่วมขังบริเวณซอยผู้ใหญ่บ้านกำนันตำบลหนองน้ำใส่ ";
    size_t used = 0;
    while (used + sizeof(phrase) < size) {
        memcpy(out + used, phrase, sizeof(phrase) - 1);
        used += sizeof(phrase) - 1;
    }
    out[used] = '\0';
}

static notifier_incident longest(void)
{
    notifier_incident incident = ordinary();
    long_thai(incident.location_title, sizeof(incident.location_title));
    long_thai(incident.location_address, sizeof(incident.location_address));
    long_thai(incident.tambon_name, sizeof(incident.tambon_name));
    long_thai(incident.district_name, sizeof(incident.district_name));
    long_thai(incident.province_name, sizeof(incident.province_name));
    long_thai(incident.station_name, sizeof(incident.station_name));
    snprintf(incident.case_number, sizeof(incident.case_number), "ESS-2569-999999999999");
    incident.incident_id = INT64_MAX;
    incident.station_distance_m = 987654321;
    return incident;
}

static cJSON *render(const notifier_incident *incident)
{
    char *text = NULL;
    size_t len = 0;
    st_error err = {0};
    if (notifier_card_render(incident, &text, &len, &err) != ST_OK)
        fail_msg("render: %s", err.message);
    assert_int_equal(strlen(text), len);
    assert_true(emu_utf8_valid(text, len));
    cJSON *messages = cJSON_Parse(text);
    free(text);
    assert_non_null(messages);
    return messages;
}

static void assert_valid(const cJSON *messages)
{
    emu_problems problems;
    memset(&problems, 0, sizeof(problems));
    emu_validate_messages(messages, &problems);
    for (size_t i = 0; i < problems.count; i++)
        fprintf(stderr, "problem: %s: %s\n", problems.items[i].property, problems.items[i].message);
    assert_int_equal(problems.total, 0);
}

static size_t units_of(const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
    assert_true(cJSON_IsString(item));
    size_t units = 0;
    assert_int_equal(emu_utf16_units(item->valuestring, strlen(item->valuestring), &units), ST_OK);
    return units;
}

/* Every action of the bubble, in order (footer buttons). */
static const cJSON *action_at(const cJSON *flex, int index)
{
    const cJSON *footer = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(flex, "contents"), "footer");
    const cJSON *button =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(footer, "contents"), index);
    return cJSON_GetObjectItemCaseSensitive(button, "action");
}

static bool contains(const cJSON *node, const char *needle)
{
    char *text = cJSON_PrintUnformatted(node);
    bool found = text != NULL && strstr(text, needle) != NULL;
    free(text);
    return found;
}

ESS_TEST(ordinary_card_passes_line_validation)
{
    notifier_incident incident = ordinary();
    cJSON *messages = render(&incident);
    assert_valid(messages);
    assert_int_equal(cJSON_GetArraySize(messages), 2);
    const cJSON *flex = cJSON_GetArrayItem(messages, 0);
    const cJSON *location = cJSON_GetArrayItem(messages, 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(flex, "type")->valuestring, "flex");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(location, "type")->valuestring,
                        "location");
    const char *alt = cJSON_GetObjectItemCaseSensitive(flex, "altText")->valuestring;
    /* The essentials are in the preview. */
    assert_non_null(strstr(alt, "ESS-2569-000123"));
    assert_non_null(strstr(alt, "ข่มขู่ว่าจะทำร้าย / ทำร้าย"));
    assert_non_null(strstr(alt, "7 มี.ค. 2569 เวลา 08:05 น."));
    assert_non_null(strstr(alt, "ถนนห้วยแก้ว"));
    assert_non_null(strstr(alt, "ต.สุเทพ อ.เมืองเชียงใหม่ จ.เชียงใหม่"));
    assert_non_null(strstr(alt, "สภ.เมืองเชียงใหม่ (1.3 กม.)"));
    /* The phone number is in the card, never in the preview. */
    assert_null(strstr(alt, "0812345678"));
    assert_null(strstr(alt, "081-234-5678"));
    assert_true(contains(flex, "081-234-5678"));
    /* Buttons: take (postback naming the incident), map, call back. */
    const cJSON *take = action_at(flex, 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(take, "type")->valuestring, "postback");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(take, "label")->valuestring, "รับเรื่อง");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(take, "data")->valuestring,
                        "v=1&a=take&i=123");
    const cJSON *map = action_at(flex, 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(map, "uri")->valuestring,
                        "https://www.google.com/maps?q=18.788300,98.985300");
    const cJSON *call = action_at(flex, 2);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(call, "uri")->valuestring,
                        "tel:0812345678");
    /* The header carries the category's colour. */
    const cJSON *header = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(flex, "contents"), "header");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(header, "backgroundColor")->valuestring,
                        notifier_category_colour("threat"));
    /* The pin. */
    assert_true(cJSON_GetObjectItemCaseSensitive(location, "latitude")->valuedouble == 18.7883);
    assert_true(cJSON_GetObjectItemCaseSensitive(location, "longitude")->valuedouble == 98.9853);
    assert_non_null(strstr(cJSON_GetObjectItemCaseSensitive(location, "title")->valuestring,
                           "ESS-2569-000123"));
    cJSON_Delete(messages);
}

ESS_TEST(longest_thai_card_passes_line_validation)
{
    notifier_incident incident = longest();
    cJSON *messages = render(&incident);
    assert_valid(messages);
    const cJSON *flex = cJSON_GetArrayItem(messages, 0);
    const cJSON *location = cJSON_GetArrayItem(messages, 1);
    assert_true(units_of(flex, "altText") <= NOTIFIER_ALT_TEXT_MAX);
    assert_true(units_of(flex, "altText") >= NOTIFIER_ALT_TEXT_MAX - 20); /* used, not wasted */
    assert_true(units_of(location, "title") <= NOTIFIER_LOCATION_TEXT_MAX);
    assert_true(units_of(location, "address") <= NOTIFIER_LOCATION_TEXT_MAX);
    /* Cut texts end with an ellipsis after a whole cluster. */
    const char *address = cJSON_GetObjectItemCaseSensitive(location, "address")->valuestring;
    assert_non_null(strstr(address, "…"));
    char *bubble = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(flex, "contents"));
    assert_true(strlen(bubble) <= 30 * 1024);
    free(bubble);
    const cJSON *take = action_at(flex, 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(take, "data")->valuestring,
                        "v=1&a=take&i=9223372036854775807");
    cJSON_Delete(messages);
}

ESS_TEST(without_phone_or_location_the_card_shrinks)
{
    notifier_incident incident = ordinary();
    incident.phone[0] = '\0';
    incident.has_location = false;
    incident.location_title[0] = '\0';
    incident.location_address[0] = '\0';
    cJSON *messages = render(&incident);
    assert_valid(messages);
    assert_int_equal(cJSON_GetArraySize(messages), 1); /* no pin without coordinates */
    const cJSON *flex = cJSON_GetArrayItem(messages, 0);
    assert_null(action_at(flex, 1)); /* only "take" */
    assert_false(contains(flex, "tel:"));
    assert_false(contains(flex, "google.com/maps"));
    cJSON_Delete(messages);

    incident = ordinary();
    incident.phone[0] = '\0';
    messages = render(&incident);
    assert_valid(messages);
    flex = cJSON_GetArrayItem(messages, 0);
    assert_false(contains(flex, "tel:"));
    assert_non_null(action_at(flex, 1)); /* map */
    assert_null(action_at(flex, 2));
    cJSON_Delete(messages);
}

ESS_TEST(bangkok_area_uses_khwaeng_and_khet)
{
    notifier_incident incident = ordinary();
    snprintf(incident.province_code, sizeof(incident.province_code), "TH10");
    snprintf(incident.tambon_name, sizeof(incident.tambon_name), "พระบรมมหาราชวัง");
    snprintf(incident.district_name, sizeof(incident.district_name), "พระนคร");
    snprintf(incident.province_name, sizeof(incident.province_name), "กรุงเทพมหานคร");
    char area[256];
    notifier_card_area(&incident, area, sizeof(area));
    assert_string_equal(area, "แขวงพระบรมมหาราชวัง เขตพระนคร กรุงเทพมหานคร");
    incident.tambon_name[0] = '\0';
    snprintf(incident.province_code, sizeof(incident.province_code), "TH50");
    notifier_card_area(&incident, area, sizeof(area));
    assert_string_equal(area, "อ.พระนคร จ.กรุงเทพมหานคร");
}

ESS_TEST(every_category_has_its_own_colour_and_label)
{
    static const char *const codes[] = {"threat", "confinement", "sexual", "frenzy", "gathering"};
    for (size_t i = 0; i < 5; i++) {
        for (size_t j = i + 1; j < 5; j++)
            assert_string_not_equal(notifier_category_colour(codes[i]),
                                    notifier_category_colour(codes[j]));
        assert_string_not_equal(notifier_category_label(codes[i]),
                                notifier_category_label("unknown"));
        notifier_incident incident = ordinary();
        snprintf(incident.category, sizeof(incident.category), "%s", codes[i]);
        cJSON *messages = render(&incident);
        assert_valid(messages);
        cJSON_Delete(messages);
    }
}

ESS_TEST(card_refuses_an_incident_without_case_number)
{
    notifier_incident incident = ordinary();
    incident.case_number[0] = '\0';
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(notifier_card_render(&incident, &text, &len, NULL), ST_INVALID);
    assert_null(text);
}

ESS_TEST_MAIN(NULL, NULL)
