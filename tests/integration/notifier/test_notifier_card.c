/* The responder card end to end: an incident seeded in a fresh migrated database (phone
 * sealed with ESS_DATA_KEY), an ess.incident.routed event published on the ESS stream, and
 * the LINE groups of the first escalation level receiving the card and the pin in the
 * line-emulator — once, however often the event comes. */
#include "testkit.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "notifier_command.h"
#include "notifier_harness.h"
#include "vault.h"

#define PHONE "0812345678"
#define CASE_NUMBER "ESS-2569-000042"

static void exec_ok(db *d, const char *sql, int nparams, const char *const *params,
                    db_result **ret_result)
{
    st_error err = {0};
    if (db_exec(d, sql, nparams, params, ret_result, &err) != ST_OK)
        fail_msg("%s: %s", sql, err.message);
}

/* Reference rows and one incident; returns the incident id. reporter is a LINE user id that
 * must never reach a group. */
static int64_t seed_incident(nh_env *env, const char *reporter)
{
    db *d = NULL;
    st_error err = {0};
    db_options options = {.dsn = env->pg_dsn, .application_name = "ess-test-notifier"};
    if (db_connect(&options, &d, &err) != ST_OK)
        fail_msg("db_connect: %s", err.message);
    exec_ok(d,
            "INSERT INTO provinces (code, name_th, name_en) VALUES ('TH50', 'เชียงใหม่', "
            "'Chiang Mai')",
            0, NULL, NULL);
    exec_ok(d,
            "INSERT INTO districts (code, province_code, name_th, name_en) VALUES "
            "('TH5001', 'TH50', 'เมืองเชียงใหม่', 'Mueang Chiang Mai')",
            0, NULL, NULL);
    exec_ok(d,
            "INSERT INTO tambons (code, district_code, province_code, name_th, name_en) "
            "VALUES ('TH500101', 'TH5001', 'TH50', 'ศรีภูมิ', 'Si Phum')",
            0, NULL, NULL);
    exec_ok(d,
            "INSERT INTO stations (id, name_th, lat, lon, district_code, province_code) "
            "VALUES ('ST5001', 'สถานีตำรวจภูธรเมืองเชียงใหม่', 18.79, 98.98, 'TH5001', "
            "'TH50')",
            0, NULL, NULL);
    vault_keys keys;
    assert_int_equal(vault_keys_from_base64(NH_DATA_KEY, &keys, NULL), ST_OK);
    unsigned char *sealed_phone = NULL, *sealed_reporter = NULL;
    size_t phone_len = 0, reporter_len = 0;
    assert_int_equal(
        vault_seal(&keys, "incident.phone", PHONE, strlen(PHONE), &sealed_phone, &phone_len, NULL),
        ST_OK);
    assert_int_equal(vault_seal(&keys, "incident.reporter", reporter, strlen(reporter),
                                &sealed_reporter, &reporter_len, NULL),
                     ST_OK);
    char phone_hex[256], reporter_hex[256];
    vault_hex(sealed_phone, phone_len, phone_hex);
    vault_hex(sealed_reporter, reporter_len, reporter_hex);
    free(sealed_phone);
    free(sealed_reporter);
    const char *params[] = {phone_hex, reporter_hex};
    db_result *result = NULL;
    exec_ok(d,
            "INSERT INTO incidents (case_number, category, status, lat, lon, location_title,"
            " location_address, tambon_code, district_code, province_code, station_id,"
            " station_distance_m, phone_encrypted, reporter_id_encrypted, reported_at)"
            " VALUES ('" CASE_NUMBER "', 'frenzy', 'routed', 18.7883, 98.9853, 'ตลาดวโรรส',"
            " 'ถนนวิชยานนท์ ตำบลช้างม่อย', 'TH500101', 'TH5001', 'TH50', 'ST5001', 1250,"
            " decode($1, 'hex'), decode($2, 'hex'), '2026-03-07T01:05:00Z') RETURNING id",
            2, params, &result);
    int64_t id = strtoll(db_result_value(result, 0, 0), NULL, 10);
    db_result_destroy(result);
    db_destroy(d);
    return id;
}

static void routed_event(char *out, size_t size, int64_t incident_id, const char *level0_a,
                         const char *level0_b, const char *level1)
{
    snprintf(out, size,
             "{\"incident_id\":%" PRId64 ",\"case_number\":\"" CASE_NUMBER "\","
             "\"area\":{\"province_code\":\"TH50\",\"district_code\":\"TH5001\","
             "\"tambon_code\":\"TH500101\",\"match\":\"in_polygon\",\"distance_m\":0},"
             "\"stations\":[{\"station_id\":\"ST5001\",\"distance_m\":1250,"
             "\"role\":\"jurisdiction\"},{\"station_id\":\"ST5002\",\"distance_m\":4100,"
             "\"role\":\"next\"}],"
             "\"targets\":[{\"team_id\":3,\"group_id\":\"%s\",\"level\":1},"
             "{\"team_id\":1,\"group_id\":\"%s\",\"level\":0},"
             "{\"team_id\":2,\"group_id\":\"%s\",\"level\":0}],\"reason\":\"in_polygon\"}",
             incident_id, level1, level0_a, level0_b);
}

typedef struct groups_probe {
    nh_env *env;
    const char *a, *b;
} groups_probe;

static bool both_groups_have_the_card(void *closure)
{
    groups_probe *probe = closure;
    return nh_emu_message_count(probe->env, probe->a) >= 2 &&
           nh_emu_message_count(probe->env, probe->b) >= 2;
}

static void check_group_messages(nh_env *env, const char *group, int64_t incident_id,
                                 const char *reporter)
{
    cJSON *messages = nh_emu_messages(env, group);
    assert_int_equal(cJSON_GetArraySize(messages), 2);
    char key_name[128], want_key[VAULT_UUID_TEXT];
    snprintf(key_name, sizeof(key_name), "card.%" PRId64 ".%s", incident_id, group);
    notifier_retry_key(key_name, false, want_key);
    const cJSON *record;
    cJSON_ArrayForEach(record, messages)
    {
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(record, "endpoint")->valuestring,
                            "push");
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(record, "retryKey")->valuestring,
                            want_key);
        char *text = cJSON_PrintUnformatted(record);
        assert_null(strstr(text, reporter)); /* never the reporter's LINE id */
        free(text);
    }
    const cJSON *flex =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(messages, 0), "message");
    const cJSON *pin = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(messages, 1), "message");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(flex, "type")->valuestring, "flex");
    const char *alt = cJSON_GetObjectItemCaseSensitive(flex, "altText")->valuestring;
    static const char *const essentials[] = {CASE_NUMBER,
                                             "ผู้คลุ้มคลั่งก่อให้เกิดเหตุร้าย",
                                             "7 มี.ค. 2569 เวลา 08:05 น.",
                                             "ตลาดวโรรส, ถนนวิชยานนท์ ตำบลช้างม่อย",
                                             "ต.ศรีภูมิ อ.เมืองเชียงใหม่ จ.เชียงใหม่",
                                             "สถานีตำรวจภูธรเมืองเชียงใหม่ (1.3 กม.)"};
    for (size_t i = 0; i < sizeof(essentials) / sizeof(essentials[0]); i++)
        if (strstr(alt, essentials[i]) == NULL)
            fail_msg("altText \"%s\" lacks \"%s\"", alt, essentials[i]);
    assert_null(strstr(alt, PHONE));
    char *card = cJSON_PrintUnformatted(flex);
    char data[64];
    snprintf(data, sizeof(data), "\"data\":\"v=1&a=take&i=%" PRId64 "\"", incident_id);
    assert_non_null(strstr(card, data));
    assert_non_null(strstr(card, "tel:" PHONE));
    assert_non_null(strstr(card, "https://www.google.com/maps?q=18.788300,98.985300"));
    free(card);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(pin, "type")->valuestring, "location");
    assert_true(cJSON_GetObjectItemCaseSensitive(pin, "latitude")->valuedouble == 18.7883);
    assert_true(cJSON_GetObjectItemCaseSensitive(pin, "longitude")->valuedouble == 98.9853);
    cJSON_Delete(messages);
}

/* A responder taps "รับเรื่อง" on the card in the emulator: the postback names the incident. */
static void take_the_case(nh_env *env, const char *responder, const char *group,
                          int64_t incident_id)
{
    char path[160], body[160], want[64];
    snprintf(path, sizeof(path), "/conversations/%s", group);
    cJSON *conversation = nh_emu(env, "GET", path, NULL, 200);
    int64_t seq = -1;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(conversation, "entries"))
    {
        const cJSON *message = cJSON_GetObjectItemCaseSensitive(entry, "message");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(message, "type");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "flex") == 0)
            seq = (int64_t)cJSON_GetObjectItemCaseSensitive(entry, "seq")->valuedouble;
    }
    cJSON_Delete(conversation);
    assert_true(seq > 0);
    snprintf(path, sizeof(path), "/users/%s/tap", responder);
    snprintf(body, sizeof(body), "{\"seq\":%" PRId64 ",\"action\":1,\"groupId\":\"%s\"}", seq,
             group);
    cJSON *tapped = nh_emu(env, "POST", path, body, 202);
    char *text = cJSON_PrintUnformatted(tapped);
    snprintf(want, sizeof(want), "\"data\":\"v=1&a=take&i=%" PRId64 "\"", incident_id);
    if (strstr(text, want) == NULL)
        fail_msg("tap did not send the take postback: %s", text);
    free(text);
    cJSON_Delete(tapped);
}

ESS_TEST(routed_incident_reaches_first_level_groups_once)
{
    nh_env env;
    nh_start(&env, true, true, NULL);
    char reporter[40], responder[40], group_a[40], group_b[40], group_c[40];
    nh_emu_user(&env, "ผู้แจ้งเหตุ", reporter);
    nh_emu_user(&env, "ร.ต.อ.สมชาย", responder);
    nh_emu_group(&env, "ทีมสหวิชาชีพ เชียงใหม่", responder, group_a);
    nh_emu_group(&env, "พมจ. เชียงใหม่", responder, group_b);
    nh_emu_group(&env, "ศูนย์สั่งการจังหวัด", responder, group_c);
    int64_t id = seed_incident(&env, reporter);

    char event[2048], msg_id[96];
    routed_event(event, sizeof(event), id, group_a, group_b, group_c);
    snprintf(msg_id, sizeof(msg_id), "routed-%s-1", env.unique);
    nh_publish(&env, "ess.incident.routed", event, msg_id);
    groups_probe probe = {&env, group_a, group_b};
    assert_true(testkit_wait_until(both_groups_have_the_card, &probe, 30000));
    nh_wait_settled(&env, "notifier-routed", 30000);
    check_group_messages(&env, group_a, id, reporter);
    check_group_messages(&env, group_b, id, reporter);
    assert_int_equal(nh_emu_message_count(&env, group_c), 0); /* level 1: escalation's job */
    assert_int_equal(nh_emu_message_count(&env, reporter), 0);

    /* The same event again under another msg-id (a relay after JetStream's window): the
     * retry keys make LINE answer 409 and nothing is sent twice. */
    snprintf(msg_id, sizeof(msg_id), "routed-%s-2", env.unique);
    nh_publish(&env, "ess.incident.routed", event, msg_id);
    nh_wait_metric(&env, "ess_notifier_requests_total{endpoint=\"push\",status=\"409\"}", 2, 30000);
    nh_wait_settled(&env, "notifier-routed", 30000);
    assert_int_equal(nh_emu_message_count(&env, group_a), 2);
    assert_int_equal(nh_emu_message_count(&env, group_b), 2);
    assert_true(nh_metric(&env, "ess_notifier_cards_total") == 2);

    take_the_case(&env, responder, group_a, id);

    char *log = nh_notifier_log(&env);
    assert_non_null(log);
    assert_null(strstr(log, PHONE));
    assert_null(strstr(log, "081-234-5678"));
    assert_null(strstr(log, env.token));
    assert_null(strstr(log, NH_DATA_KEY));
    assert_null(strstr(log, "ตลาดวโรรส"));
    free(log);
    assert_int_equal(nh_notifier_stop(&env, SIGTERM), 0);
    nh_stop(&env);
}

ESS_TEST(routed_without_targets_or_incident)
{
    nh_env env;
    nh_start(&env, true, true, (const char *const[]){"ESS_NOTIFIER_BACKOFF_MAX=100ms", NULL});
    char reporter[40], responder[40], group[40];
    nh_emu_user(&env, "ผู้แจ้งเหตุ", reporter);
    nh_emu_user(&env, "ร.ต.อ.สมหญิง", responder);
    nh_emu_group(&env, "ทีม", responder, group);
    int64_t id = seed_incident(&env, reporter);

    /* Nobody to notify: acknowledged, nothing sent. */
    char event[1024];
    snprintf(event, sizeof(event),
             "{\"incident_id\":%" PRId64 ",\"case_number\":\"" CASE_NUMBER "\","
             "\"area\":{\"match\":\"none\"},\"stations\":[],\"targets\":[],"
             "\"reason\":\"no_team\"}",
             id);
    nh_publish(&env, "ess.incident.routed", event, "routed-none");
    nh_wait_settled(&env, "notifier-routed", 30000);
    assert_int_equal(nh_emu_message_count(&env, ""), 0);

    /* An incident that is not in the database: retried with backoff, then dead-lettered
     * after max_deliver (20) attempts; nothing is sent. */
    snprintf(event, sizeof(event),
             "{\"incident_id\":%" PRId64 ",\"case_number\":\"ESS-2569-999999\",\"area\":{},"
             "\"targets\":[{\"team_id\":1,\"group_id\":\"%s\",\"level\":0}],"
             "\"reason\":\"in_polygon\"}",
             id + 1000, group);
    nh_publish(&env, "ess.incident.routed", event, "routed-missing");
    nh_wait_metric(&env, "ess_notifier_dead_lettered_total", 1, 60000);
    natsMsg *letter = nh_dlq_last(&env, "ess.dlq.notifier");
    assert_non_null(letter);
    const char *reason = NULL;
    assert_int_equal(natsMsgHeader_Get(letter, "Ess-Dlq-Reason", &reason), NATS_OK);
    assert_non_null(strstr(reason, "not found"));
    natsMsg_Destroy(letter);
    assert_int_equal(nh_emu_message_count(&env, ""), 0);
    assert_int_equal(nh_notifier_stop(&env, SIGTERM), 0);
    nh_stop(&env);
}

ESS_TEST_MAIN(NULL, nh_teardown)
