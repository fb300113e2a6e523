/* console_auth without a database: scrypt against RFC 7914, password hashes, tokens, the
 * login delay, roles and areas, the session cookie's attributes; and the pure pieces of the
 * API: timeline details, CSV fields, map rounding, dates. */
#include "testkit.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "console.h"
#include "console_auth.h"
#include "console_cases.h"
#include "console_export.h"
#include "console_http.h"
#include "console_stats.h"

static void hex(const unsigned char *bytes, size_t len, char *out)
{
    vault_hex(bytes, len, out);
}

ESS_TEST(scrypt_matches_rfc_7914)
{
    /* RFC 7914 §12, the second and third vectors. */
    unsigned char key[64];
    char text[129];
    st_error err = {0};
    assert_int_equal(console_scrypt("password", 8, (const unsigned char *)"NaCl", 4, 1024, 8, 16,
                                    key, sizeof(key), &err),
                     ST_OK);
    hex(key, sizeof(key), text);
    assert_string_equal(text, "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
                              "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
    assert_int_equal(console_scrypt("pleaseletmein", 13, (const unsigned char *)"SodiumChloride",
                                    14, 16384, 8, 1, key, sizeof(key), &err),
                     ST_OK);
    hex(key, sizeof(key), text);
    assert_string_equal(text, "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
                              "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887");
    /* Out of bounds: N not a power of two, too much memory, r = 0. */
    assert_int_equal(console_scrypt("p", 1, (const unsigned char *)"s", 1, 1000, 8, 1, key, 32,
                                    &err),
                     ST_INVALID);
    assert_int_equal(console_scrypt("p", 1, (const unsigned char *)"s", 1, 1u << 20, 8, 1, key,
                                    32, &err),
                     ST_INVALID);
    assert_int_equal(console_scrypt("p", 1, (const unsigned char *)"s", 1, 1024, 0, 1, key, 32,
                                    &err),
                     ST_INVALID);
}

ESS_TEST(password_hash_verifies_and_refuses)
{
    char hash[CONSOLE_HASH_TEXT_MAX], other[CONSOLE_HASH_TEXT_MAX];
    st_error err = {0};
    assert_int_equal(console_password_hash("correct horse battery", hash, &err), ST_OK);
    assert_int_equal(console_password_hash("correct horse battery", other, &err), ST_OK);
    /* "scrypt$N$r$p$salt_b64$hash_b64", a fresh salt each time. */
    assert_true(strncmp(hash, "scrypt$32768$8$1$", 17) == 0);
    assert_string_not_equal(hash, other);
    assert_null(strstr(hash, "correct"));
    bool match = false;
    assert_int_equal(console_password_verify(hash, "correct horse battery", &match, &err), ST_OK);
    assert_true(match);
    assert_int_equal(console_password_verify(hash, "correct horse batterY", &match, &err), ST_OK);
    assert_false(match);
    assert_int_equal(console_password_verify(hash, "", &match, &err), ST_OK);
    assert_false(match);
    /* Stored with other parameters (RFC 7914's third vector, N=16384): still checked. The
     * key is the first 32 (or 24) bytes of the RFC's 64-byte output. */
    assert_int_equal(console_password_verify("scrypt$16384$8$1$U29kaXVtQ2hsb3JpZGU="
                                             "$cCO9yzr9c0hGHAbNgf046/2o+7qQT44+qbVD9lRdofI=",
                                             "pleaseletmein", &match, &err),
                     ST_OK);
    assert_true(match);
    assert_int_equal(console_password_verify("scrypt$16384$8$1$U29kaXVtQ2hsb3JpZGU="
                                             "$cCO9yzr9c0hGHAbNgf046/2o+7qQT44+",
                                             "pleaseletmein", &match, &err),
                     ST_OK);
    assert_true(match);
    assert_int_equal(console_password_verify("scrypt$16384$8$1$U29kaXVtQ2hsb3JpZGU="
                                             "$cCO9yzr9c0hGHAbNgf046/2o+7qQT44+qbVD9lRdofA=",
                                             "pleaseletmein", &match, &err),
                     ST_OK);
    assert_false(match);
    /* Malformed hashes are refused, never crash. */
    static const char *const bad[] = {
        "",
        "bcrypt$x",
        "scrypt$",
        "scrypt$32768$8$1$$",
        "scrypt$32767$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==",
        "scrypt$32768$99$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==",
        "scrypt$32768$8$1$AAA$AAAAAAAAAAAAAAAAAAAAAA==",
        "scrypt$32768$8$1$AAAAAAAAAAA=$AAAA",
        "scrypt$32768$8$1$AAAAAAAAAAA=$AA*AAAAAAAAAAAAAAAAAAA==",
        "scrypt$99999999999$8$1$AAAAAAAAAAA=$AAAAAAAAAAAAAAAAAAAAAA==",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(console_password_verify(bad[i], "x", &match, &err), ST_INVALID);
}

ESS_TEST(password_rules)
{
    st_error err = {0};
    assert_int_equal(console_password_acceptable("0123456789", &err), ST_OK);
    assert_int_equal(console_password_acceptable("012345678", &err), ST_INVALID);
    assert_non_null(strstr(err.message, "10"));
    assert_null(strstr(err.message, "012345678"));
    /* Characters, not bytes: ten Thai letters are ten characters. */
    assert_int_equal(console_password_acceptable("กขคงจฉชซฌญ", &err), ST_OK);
    assert_int_equal(console_password_acceptable("กขคงจฉชซฌ", &err), ST_INVALID);
    assert_int_equal(console_password_acceptable("0123456789\n", &err), ST_INVALID);
    char longest[CONSOLE_PASSWORD_MAX + 2];
    memset(longest, 'a', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    assert_int_equal(console_password_acceptable(longest, &err), ST_INVALID);
    longest[CONSOLE_PASSWORD_MAX] = '\0';
    assert_int_equal(console_password_acceptable(longest, &err), ST_OK);
}

ESS_TEST(tokens_are_random_base64url_and_compared_safely)
{
    char a[CONSOLE_TOKEN_TEXT], b[CONSOLE_TOKEN_TEXT];
    st_error err = {0};
    assert_int_equal(console_token_new(a, &err), ST_OK);
    assert_int_equal(console_token_new(b, &err), ST_OK);
    assert_int_equal(strlen(a), 43);
    assert_true(console_token_text_valid(a));
    assert_string_not_equal(a, b);
    assert_true(console_token_equal(a, a));
    assert_false(console_token_equal(a, b));
    assert_false(console_token_equal(a, ""));
    assert_false(console_token_equal(NULL, a));
    unsigned char hash[32];
    char hash_hex[65];
    console_token_hash("abc", hash);
    hex(hash, sizeof(hash), hash_hex);
    assert_string_equal(hash_hex,
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

ESS_TEST(login_delay_doubles_up_to_the_bound)
{
    assert_int_equal(console_login_delay_ms(0, 250, 8000), 0);
    assert_int_equal(console_login_delay_ms(1, 250, 8000), 250);
    assert_int_equal(console_login_delay_ms(2, 250, 8000), 500);
    assert_int_equal(console_login_delay_ms(3, 250, 8000), 1000);
    assert_int_equal(console_login_delay_ms(6, 250, 8000), 8000);
    assert_int_equal(console_login_delay_ms(7, 250, 8000), 8000);
    assert_int_equal(console_login_delay_ms(1000, 250, 8000), 8000);
    assert_int_equal(console_login_delay_ms(1000000, 250, 8000), 8000);
    assert_int_equal(console_login_delay_ms(2, 300, 500), 500);
    /* The keyed hashes of account and address differ per key and per purpose. */
    vault_keys keys;
    st_error err = {0};
    assert_int_equal(
        vault_keys_from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", &keys, &err), ST_OK);
    console_login_keys one, two;
    console_login_keys_for(&keys, "cmd50", "127.0.0.1", &one);
    console_login_keys_for(&keys, "cmd50", "127.0.0.2", &two);
    assert_memory_equal(one.account, two.account, 32);
    assert_memory_not_equal(one.peer, two.peer, 32);
    console_login_keys_for(&keys, "127.0.0.1", "cmd50", &two);
    assert_memory_not_equal(one.account, two.peer, 32);
}

ESS_TEST(roles_and_areas)
{
    console_role role;
    assert_int_equal(console_role_parse("commander", &role), ST_OK);
    assert_int_equal(role, CONSOLE_ROLE_COMMANDER);
    assert_int_equal(console_role_parse("Commander", &role), ST_INVALID);
    assert_int_equal(console_role_parse(NULL, &role), ST_INVALID);
    assert_string_equal(console_role_name(CONSOLE_ROLE_ANALYST), "analyst");
    assert_true(console_area_valid("all"));
    assert_true(console_area_valid("TH50"));
    assert_false(console_area_valid("TH5"));
    assert_false(console_area_valid("TH500"));
    assert_false(console_area_valid("th50"));
    assert_false(console_area_valid(""));

    console_user commander = {.role = CONSOLE_ROLE_COMMANDER, .area = "TH50"};
    console_user national = {.role = CONSOLE_ROLE_COMMANDER, .area = "all"};
    console_user admin = {.role = CONSOLE_ROLE_ADMIN, .area = "all"};
    console_user analyst = {.role = CONSOLE_ROLE_ANALYST, .area = "TH50"};
    assert_true(console_user_sees_province(&commander, "TH50"));
    assert_false(console_user_sees_province(&commander, "TH10"));
    assert_false(console_user_sees_province(&commander, NULL)); /* not routed: national only */
    assert_true(console_user_sees_province(&national, NULL));
    assert_true(console_user_sees_province(&admin, "TH10"));
    assert_true(console_user_sees_cases(&commander));
    assert_true(console_user_sees_cases(&admin));
    assert_false(console_user_sees_cases(&analyst));
    assert_string_equal(console_user_area_param(&commander), "TH50");
    assert_string_equal(console_user_area_param(&admin), "all");
}

ESS_TEST(session_cookie_attributes)
{
    console_app app = {0};
    console_request plain = {0}, behind_tls = {.https = true};
    char cookie[256];
    console_session_cookie(&app, &plain, "TOKEN", cookie, sizeof(cookie));
    assert_string_equal(cookie, "ess_session=TOKEN; Path=/; HttpOnly; SameSite=Strict");
    console_session_cookie(&app, &behind_tls, "TOKEN", cookie, sizeof(cookie));
    assert_string_equal(cookie, "ess_session=TOKEN; Path=/; HttpOnly; SameSite=Strict; Secure");
    app.config.secure_cookie = true;
    console_session_cookie(&app, &plain, "TOKEN", cookie, sizeof(cookie));
    assert_string_equal(cookie, "ess_session=TOKEN; Path=/; HttpOnly; SameSite=Strict; Secure");
    /* Logout clears it. */
    console_session_cookie(&app, &plain, "", cookie, sizeof(cookie));
    assert_string_equal(cookie,
                        "ess_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure");
}

ESS_TEST(timeline_detail_keeps_facts_only)
{
    cJSON *shown = console_timeline_detail(
        "{\"category\":\"threat\",\"has_phone\":true,\"text_sealed\":\"AAAA\",\"text\":\"hi\","
        "\"location\":{\"lat\":18.1,\"lon\":98.2},\"group_id\":\"C0123\",\"team\":\"ทีม\","
        "\"level\":2,\"user_id\":\"U0123\",\"message_id\":\"555\",\"reason\":[\"x\"]}");
    char *text = cJSON_PrintUnformatted(shown);
    assert_string_equal(text, "{\"category\":\"threat\",\"has_phone\":true,\"level\":2,"
                              "\"team\":\"ทีม\"}");
    free(text);
    cJSON_Delete(shown);
    shown = console_timeline_detail("not json");
    text = cJSON_PrintUnformatted(shown);
    assert_string_equal(text, "{}");
    free(text);
    cJSON_Delete(shown);
}

ESS_TEST(csv_fields_are_quoted_when_needed)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    assert_true(console_csv_field(&buf, &len, &cap, "ESS-2569-000001", false));
    assert_true(console_csv_field(&buf, &len, &cap, NULL, false));
    assert_true(console_csv_field(&buf, &len, &cap, "a,b", false));
    assert_true(console_csv_field(&buf, &len, &cap, "say \"hi\"", false));
    assert_true(console_csv_field(&buf, &len, &cap, "line\nbreak", true));
    assert_string_equal(buf, "ESS-2569-000001,,\"a,b\",\"say \"\"hi\"\"\",\"line\nbreak\"\r\n");
    assert_int_equal(len, strlen(buf));
    free(buf);
}

ESS_TEST(map_coordinates_are_rounded)
{
    cJSON *geometry = cJSON_Parse(
        "{\"type\":\"Polygon\",\"coordinates\":[[[100.12345,13.98765],[100.12349,13.98761],"
        "[100.12351,13.98769],[100.2,13.9],[100.3,14.0],[100.12345,13.98765]]]}");
    console_geometry_round(geometry);
    char *text = cJSON_PrintUnformatted(geometry);
    /* Repeats after rounding are dropped; the ring stays closed. */
    assert_string_equal(text, "{\"type\":\"Polygon\",\"coordinates\":[[[100.123,13.988],"
                              "[100.124,13.988],[100.2,13.9],[100.3,14],[100.123,13.988]]]}");
    free(text);
    cJSON_Delete(geometry);
    /* A tiny ring keeps its four points even when they round together. */
    geometry = cJSON_Parse("{\"type\":\"MultiPolygon\",\"coordinates\":[[[[1.00001,1],"
                           "[1.00002,1],[1.00003,1],[1.00001,1]]]]}");
    console_geometry_round(geometry);
    text = cJSON_PrintUnformatted(geometry);
    assert_string_equal(text, "{\"type\":\"MultiPolygon\",\"coordinates\":[[[[1,1],[1,1],[1,1],"
                              "[1,1]]]]}");
    free(text);
    cJSON_Delete(geometry);
}

ESS_TEST(dates_add_and_compare)
{
    console_date date, moved;
    assert_int_equal(console_parse_date("2024-02-28", &date), ST_OK);
    console_date_add_days(&date, 1, &moved);
    assert_int_equal(moved.month, 2);
    assert_int_equal(moved.day, 29);
    console_date_add_days(&date, 2, &moved);
    assert_int_equal(moved.month, 3);
    assert_int_equal(moved.day, 1);
    console_date_add_days(&date, -(31 + 27), &moved);
    char text[11];
    console_date_text(&moved, text);
    assert_string_equal(text, "2024-01-01");
    assert_int_equal(console_date_days_between(&moved, &date), 58);
    console_date today;
    console_today_bangkok(&today);
    assert_true(today.year >= 2024 && today.month >= 1 && today.month <= 12);
}

ESS_TEST_MAIN(NULL, NULL)
