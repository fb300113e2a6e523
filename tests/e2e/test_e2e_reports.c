/* Issue 9, end to end: the whole stack as `deploy/local/ess up` starts it (nats-server,
 * PostgreSQL, every service under its supervisor, the line-emulator as LINE), driven only
 * from the outside — people on LINE through the emulator, an operator through essctl — and
 * checked where a person would look (their chat, their group) and in the database.
 *
 * Each case starts its own stack; the scenarios inside a case share it and each checks its
 * own results (README.md in this directory lists what each one proves). */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e_line.h"
#include "e2e_stack.h"

/* The stack's settings for these cases: quick redelivery and retries; no escalation while a
 * case runs (the ack timeout is far longer than a case), so every group sees only what the
 * scenario caused. */
static const char *const stack_env[] = {"ESS_EMULATOR_REDELIVERY_INTERVAL=200ms",
                                        "ESS_EMULATOR_REDELIVERY_MAX_INTERVAL=1s",
                                        "ESS_NOTIFIER_BACKOFF_MIN=100ms",
                                        "ESS_NOTIFIER_BACKOFF_MAX=1s",
                                        "ESS_ACK_TIMEOUT=30m",
                                        NULL};

#define SUBMITTED "เลขที่เคส "

typedef struct place {
    const char *name;
    double lat, lon;
    const char *province; /* expected province_code; NULL: no area (beyond the coast) */
} place;

/* Points the georouter's unit tests pin on the shipped data (tests/unit/georouter). */
static const place chiang_mai = {"Chiang Mai old city", 18.7883, 98.9853, "TH50"};
static const place bangkok = {"Grand Palace", 13.7500, 100.4913, "TH10"};
static const place phuket = {"Phuket town", 7.8804, 98.3923, "TH83"};
static const place hat_yai = {"Hat Yai", 7.0086, 100.4747, "TH90"};
static const place khon_kaen = {"Khon Kaen town", 16.4322, 102.8236, "TH40"};
static const place korat = {"Nakhon Ratchasima town", 14.9799, 102.0977, "TH30"};
/* At sea: outside every tambon polygon. Off Pattaya the nearest tambon (within
 * ESS_GEO_MAX_OFFSHORE_KM) decides; in the middle of the Gulf nothing is near. */
static const place off_pattaya = {"10 km at sea off Pattaya", 12.9300, 100.7900, "TH20"};
static const place mid_gulf = {"middle of the Gulf of Thailand", 9.5000, 101.5000, NULL};

typedef struct report {
    char citizen[E2E_ID_MAX];
    char case_number[E2E_CASE_MAX];
    const place *where;
    int category_index; /* 1..5 */
    const char *group;  /* the group that must get the card */
} report;

static const char *const category_codes[] = {"",       "threat", "confinement",
                                             "sexual", "frenzy", "gathering"};

/* ---- checks --------------------------------------------------------------------------------- */

/* The incident of case_number is recorded once, with the category and area, and routed. */
static void expect_recorded_and_routed(e2e_stack *s, const report *r)
{
    const char *params[] = {r->case_number, category_codes[r->category_index]};
    e2e_wait_sql(s,
                 "SELECT count(*) FROM incidents WHERE case_number = $1 AND category = $2 AND "
                 "status = 'routed' AND routed_at IS NOT NULL AND phone_encrypted IS NOT NULL",
                 2, params, 1);
    char *province =
        e2e_sql_text(s, "SELECT province_code FROM incidents WHERE case_number = $1", 1, params);
    if (r->where->province == NULL) {
        if (province != NULL)
            fail_msg("%s: routed to %s, want no area", r->where->name, province);
    } else if (province == NULL || strcmp(province, r->where->province) != 0) {
        fail_msg("%s: province %s, want %s", r->where->name, province != NULL ? province : "none",
                 r->where->province);
    }
    free(province);
    char hash[65];
    e2e_user_hash_hex(s, r->citizen, hash);
    const char *by_reporter[] = {hash};
    assert_int_equal(e2e_sql(s,
                             "SELECT count(*) FROM incidents WHERE reporter_key_hash = "
                             "decode($1, 'hex')",
                             1, by_reporter),
                     1);
}

/* The card reached the report's group once and no other group at all; the reporter heard
 * the case number once. */
static void expect_card_once(e2e_stack *s, const report *r, const char *const *groups)
{
    for (size_t i = 0; groups[i] != NULL; i++) {
        size_t cards = e2e_line_card_count(s, groups[i], r->case_number);
        size_t want = strcmp(groups[i], r->group) == 0 ? 1 : 0;
        if (cards != want)
            fail_msg("%s (%s): %zu cards in group %zu, want %zu", r->case_number, r->where->name,
                     cards, i, want);
    }
    char submitted[64];
    snprintf(submitted, sizeof(submitted), SUBMITTED "%s", r->case_number);
    assert_int_equal(e2e_line_bot_count(s, r->citizen, submitted), 1);
}

typedef struct card_wait {
    e2e_stack *s;
    const report *r;
} card_wait;

static bool card_arrived(void *closure)
{
    card_wait *w = closure;
    return e2e_line_card_count(w->s, w->r->group, w->r->case_number) >= 1;
}

static void wait_card(e2e_stack *s, const report *r)
{
    card_wait w = {s, r};
    if (!testkit_wait_until(card_arrived, &w, E2E_WAIT_MS))
        fail_msg("%s (%s): no card in its group", r->case_number, r->where->name);
}

static void make_citizen(e2e_stack *s, report *r, const char *name, const place *where,
                         int category_index, const char *group)
{
    e2e_line_user(s, name, r->citizen);
    r->where = where;
    r->category_index = category_index;
    r->group = group;
}

static void send_phone(e2e_stack *s, const report *r, const char *phone)
{
    char body[80];
    snprintf(body, sizeof(body), "{\"text\":\"%s\"}", phone);
    e2e_line_act(s, r->citizen, "text", body, NULL, NULL);
}

/* ---- cases ---------------------------------------------------------------------------------- */

ESS_TEST(every_report_reaches_the_team_of_its_place_once)
{
    e2e_stack *s = &e2e_the_stack;
    e2e_stack_up(s, stack_env);

    /* Teams, enrolled both ways: invite + /ess bind (as officers do it) and team add. */
    char officers[7][E2E_ID_MAX], groups[7][E2E_ID_MAX];
    for (int i = 0; i < 7; i++) {
        char name[32];
        snprintf(name, sizeof(name), "officer %d", i);
        e2e_line_user(s, name, officers[i]);
    }
    const char *th50[] = {"--province", "TH50", NULL};
    const char *th10[] = {"--province", "TH10", NULL};
    const char *th83[] = {"--province", "TH83", NULL};
    const char *th90[] = {"--province", "TH90", NULL};
    const char *th40[] = {"--province", "TH40", NULL};
    const char *th20[] = {"--province", "TH20", NULL};
    const char *national[] = {"--national", NULL};
    e2e_team_by_invite(s, th50, "ทีมสหวิชาชีพ เชียงใหม่", officers[0], groups[0]);
    e2e_team_by_invite(s, th10, "ทีมสหวิชาชีพ กรุงเทพฯ", officers[1], groups[1]);
    e2e_team_by_add(s, "ทีมสหวิชาชีพ ภูเก็ต", th83, officers[2], groups[2]);
    e2e_team_by_invite(s, th90, "ทีมสหวิชาชีพ สงขลา", officers[3], groups[3]);
    e2e_team_by_add(s, "ทีมสหวิชาชีพ ขอนแก่น", th40, officers[4], groups[4]);
    e2e_team_by_invite(s, th20, "ทีมสหวิชาชีพ ชลบุรี", officers[5], groups[5]);
    e2e_team_by_add(s, "ศูนย์ปฏิบัติการ ESS", national, officers[6], groups[6]);
    const char *all_groups[] = {groups[0], groups[1], groups[2], groups[3],
                                groups[4], groups[5], groups[6], NULL};

    /* One citizen per category, in five provinces: each reaches its province's team. The five
     * reports run side by side (each step of each citizen before the next step). */
    report five[5];
    const place *five_places[] = {&chiang_mai, &bangkok, &phuket, &hat_yai, &khon_kaen};
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "citizen %d", i + 1);
        make_citizen(s, &five[i], name, five_places[i], i + 1, groups[i]);
    }
    for (int i = 0; i < 5; i++)
        e2e_line_report_until_phone(s, five[i].citizen, five[i].category_index, five[i].where->lat,
                                    five[i].where->lon);
    for (int i = 0; i < 5; i++) {
        char phone[16];
        snprintf(phone, sizeof(phone), "081234560%d", i);
        send_phone(s, &five[i], phone);
    }
    for (int i = 0; i < 5; i++)
        e2e_line_wait_case(s, five[i].citizen, five[i].case_number);

    /* Two reports at once in one province: both phones in one webhook. */
    report pair[2];
    make_citizen(s, &pair[0], "citizen pair one", &chiang_mai, 3, groups[0]);
    make_citizen(s, &pair[1], "citizen pair two", &chiang_mai, 5, groups[0]);
    for (int i = 0; i < 2; i++)
        e2e_line_report_until_phone(s, pair[i].citizen, pair[i].category_index,
                                    pair[i].where->lat + 0.001 * i, pair[i].where->lon);
    char both[400];
    snprintf(both, sizeof(both),
             "{\"events\":[{\"type\":\"text\",\"userId\":\"%s\",\"text\":\"0891111111\"},"
             "{\"type\":\"text\",\"userId\":\"%s\",\"text\":\"0892222222\"}]}",
             pair[0].citizen, pair[1].citizen);
    cJSON_Delete(e2e_line(s, "POST", "/webhook", both, 202));
    for (int i = 0; i < 2; i++)
        e2e_line_wait_case(s, pair[i].citizen, pair[i].case_number);
    assert_string_not_equal(pair[0].case_number, pair[1].case_number);

    /* Where no polygon holds the point, and where no team serves the province. */
    report fallback[3];
    make_citizen(s, &fallback[0], "citizen at sea near shore", &off_pattaya, 1, groups[5]);
    make_citizen(s, &fallback[1], "citizen far at sea", &mid_gulf, 2, groups[6]);
    make_citizen(s, &fallback[2], "citizen in korat", &korat, 4, groups[6]);
    for (int i = 0; i < 3; i++)
        e2e_line_report(s, fallback[i].citizen, fallback[i].category_index, fallback[i].where->lat,
                        fallback[i].where->lon, "0823334444", fallback[i].case_number);

    report *all[] = {&five[0], &five[1], &five[2],     &five[3],     &five[4],
                     &pair[0], &pair[1], &fallback[0], &fallback[1], &fallback[2]};
    const size_t count = sizeof(all) / sizeof(all[0]);
    for (size_t i = 0; i < count; i++) {
        expect_recorded_and_routed(s, all[i]);
        wait_card(s, all[i]);
    }
    /* The near-shore point got the nearest tambon; the far one none. */
    const char *near_shore[] = {fallback[0].case_number};
    assert_int_equal(e2e_sql(s,
                             "SELECT count(*) FROM incidents WHERE case_number = $1 AND "
                             "tambon_code LIKE 'TH20%' AND station_id IS NOT NULL",
                             1, near_shore),
                     1);
    const char *far_out[] = {fallback[1].case_number};
    assert_int_equal(e2e_sql(s,
                             "SELECT count(*) FROM incidents WHERE case_number = $1 AND "
                             "tambon_code IS NULL",
                             1, far_out),
                     1);
    /* Exactly once: checked after every card arrived, so a late duplicate would show. */
    for (size_t i = 0; i < count; i++)
        expect_card_once(s, all[i], all_groups);
    assert_int_equal(e2e_sql(s, "SELECT count(*) FROM incidents", 0, NULL), (long long)count);

    /* DESIGN.md §2: a search of the whole data directory finds no phone number nor reporter's
     * LINE id in clear. The stack stops first, so PostgreSQL's pages and WAL, the JetStream
     * store and every log are on disk. The emulator's own files are LINE's side. A canary
     * file proves the search finds what is there. */
    free(e2e_ess(s, "down", 180000));
    char canary_path[sizeof(s->home) + 32];
    snprintf(canary_path, sizeof(canary_path), "%s/canary.txt", s->home);
    FILE *canary = fopen(canary_path, "w");
    assert_non_null(canary);
    fputs("a canary: 0899999999\n", canary);
    fclose(canary);
    static const char *const phones[] = {
        "0812345600", "0812345601", "0812345602", "0812345603", "0812345604",
        "0891111111", "0892222222", "0823334444", "0899999999",
        /* the same numbers as +66 would write them */
        "+66812345600", "+66812345601", "+66812345602", "+66812345603", "+66812345604",
        "+66891111111", "+66892222222", "+66823334444"};
    const char *needles[sizeof(phones) / sizeof(phones[0]) + 16];
    size_t needle_count = 0;
    for (size_t i = 0; i < sizeof(phones) / sizeof(phones[0]); i++)
        needles[needle_count++] = phones[i];
    for (size_t i = 0; i < count; i++)
        needles[needle_count++] = all[i]->citizen;
    needles[needle_count] = NULL;
    const char *skip[] = {"line-emulator", NULL};
    char found[4096];
    size_t hits = e2e_home_files_holding(s, needles, skip, found, sizeof(found));
    if (hits != 1 || strstr(found, "canary.txt: 0899999999") == NULL)
        fail_msg("expected only the canary in clear under ESS_HOME, found %zu:\n%s", hits, found);
    e2e_stack_passed(s);
}

ESS_TEST(a_reporter_and_a_team_follow_a_case_to_the_take_and_a_cancel)
{
    e2e_stack *s = &e2e_the_stack;
    e2e_stack_up(s, stack_env);
    char officer[E2E_ID_MAX], group[E2E_ID_MAX];
    e2e_line_user(s, "ร.ต.อ. สมชาย ใจดี", officer);
    const char *th50[] = {"--province", "TH50", NULL};
    e2e_team_by_invite(s, th50, "ทีมสหวิชาชีพ เชียงใหม่", officer, group);

    report first;
    make_citizen(s, &first, "citizen who adds and is helped", &chiang_mai, 1, group);
    e2e_line_report(s, first.citizen, 1, chiang_mai.lat, chiang_mai.lon, "0812345678",
                    first.case_number);
    wait_card(s, &first);
    const char *first_params[] = {first.case_number};

    /* Extra information after submission: the reporter is told it was added, the group gets it. */
    char needle[200];
    e2e_line_act(s, first.citizen, "text", "{\"text\":\"ประตูสีฟ้า บ้านเลขที่ 9\"}", NULL, NULL);
    snprintf(needle, sizeof(needle), "เพิ่มข้อมูลในเคส %s", first.case_number);
    e2e_line_wait_bot(s, first.citizen, needle, 1);
    snprintf(needle, sizeof(needle), "ข้อมูลเพิ่มจากผู้แจ้ง เรื่อง %s", first.case_number);
    e2e_line_wait_bot(s, group, needle, 1);
    e2e_line_wait_bot(s, group, "ประตูสีฟ้า บ้านเลขที่ 9", 1);
    e2e_line_act(s, first.citizen, "location",
                 "{\"latitude\":18.7890,\"longitude\":98.9860,\"title\":\"ร้านกาแฟ\","
                 "\"address\":\"ถนนราชดำเนิน\"}",
                 NULL, NULL);
    snprintf(needle, sizeof(needle), "ผู้แจ้งส่งตำแหน่งใหม่ เรื่อง %s", first.case_number);
    e2e_line_wait_bot(s, group, needle, 1);
    e2e_wait_sql(s,
                 "SELECT count(*) FROM incident_events e JOIN incidents i ON i.id = e.incident_id "
                 "WHERE i.case_number = $1 AND e.kind = 'info_added'",
                 1, first_params, 2);

    /* A responder takes the case from the card: the group gets the next buttons, the reporter
     * hears it (once), the record says who and when. */
    char first_card[96];
    snprintf(first_card, sizeof(first_card), "แจ้งเหตุใหม่ · %s", first.case_number);
    int64_t card_seq = e2e_line_wait_bot(s, group, first_card, 1);
    e2e_line_tap_button(s, officer, group, card_seq, 1);
    snprintf(needle, sizeof(needle), "รับเรื่อง %s แล้ว", first.case_number);
    e2e_line_wait_bot(s, group, needle, 1);
    snprintf(needle, sizeof(needle), "เจ้าหน้าที่รับเรื่อง %s แล้ว", first.case_number);
    e2e_line_wait_bot(s, first.citizen, needle, 1);
    const char *taken_params[] = {first.case_number, group};
    e2e_wait_sql(s,
                 "SELECT count(*) FROM incidents WHERE case_number = $1 AND status = "
                 "'acknowledged' AND acknowledged_group_id = $2 AND acknowledged_at IS NOT NULL "
                 "AND ack_deadline IS NULL",
                 2, taken_params, 1);
    /* What the reporter adds now goes to the group that took it. */
    e2e_line_act(s, first.citizen, "text", "{\"text\":\"เขาออกไปทางซอย 3\"}", NULL, NULL);
    e2e_line_wait_bot(s, group, "เขาออกไปทางซอย 3", 1);

    /* A reporter who writes more at once, in the very webhook of their phone number: the text
     * is applied right after the submission, before the routing can have been recorded, and
     * must still reach the group, once. */
    report hurried;
    make_citizen(s, &hurried, "citizen who adds at once", &chiang_mai, 4, group);
    e2e_line_report_until_phone(s, hurried.citizen, 4, chiang_mai.lat, chiang_mai.lon);
    char together[400];
    snprintf(together, sizeof(together),
             "{\"events\":[{\"type\":\"text\",\"userId\":\"%s\",\"text\":\"0861112222\"},"
             "{\"type\":\"text\",\"userId\":\"%s\",\"text\":\"ชายเสื้อแดงถือมีด\"}]}",
             hurried.citizen, hurried.citizen);
    cJSON_Delete(e2e_line(s, "POST", "/webhook", together, 202));
    e2e_line_wait_case(s, hurried.citizen, hurried.case_number);
    wait_card(s, &hurried);
    char hurried_info[200];
    snprintf(hurried_info, sizeof(hurried_info), "ข้อมูลเพิ่มจากผู้แจ้ง เรื่อง %s", hurried.case_number);
    e2e_line_wait_bot(s, group, hurried_info, 1);
    e2e_line_wait_bot(s, group, "ชายเสื้อแดงถือมีด", 1);

    /* A second reporter cancels (false alarm) with the answer's quick reply: both sides are
     * told, the case is cancelled, a later press on its card changes nothing. */
    report second;
    make_citizen(s, &second, "citizen who cancels", &chiang_mai, 2, group);
    e2e_line_report(s, second.citizen, 2, chiang_mai.lat, chiang_mai.lon, "0898765432",
                    second.case_number);
    wait_card(s, &second);
    e2e_line_tap_quick_reply(s, second.citizen, 1, false, 0, 0);
    snprintf(needle, sizeof(needle), "ยกเลิกเคส %s แล้ว", second.case_number);
    e2e_line_wait_bot(s, second.citizen, needle, 1);
    char cancelled_in_group[200];
    snprintf(cancelled_in_group, sizeof(cancelled_in_group), "ผู้แจ้งยกเลิกเรื่อง %s แล้ว",
             second.case_number);
    e2e_line_wait_bot(s, group, cancelled_in_group, 1);
    const char *second_params[] = {second.case_number};
    e2e_wait_sql(s,
                 "SELECT count(*) FROM incidents WHERE case_number = $1 AND status = 'cancelled' "
                 "AND cancelled_at IS NOT NULL",
                 1, second_params, 1);
    char second_card[96];
    snprintf(second_card, sizeof(second_card), "แจ้งเหตุใหม่ · %s", second.case_number);
    int64_t second_card_seq = e2e_line_wait_bot(s, group, second_card, 1);
    e2e_line_tap_button(s, officer, group, second_card_seq, 1);
    e2e_line_wait_bot(s, group, cancelled_in_group, 2); /* the answer to the press */
    assert_int_equal(e2e_sql(s,
                             "SELECT count(*) FROM incidents WHERE case_number = $1 AND "
                             "status = 'cancelled' AND acknowledged_at IS NULL",
                             1, second_params),
                     1);

    /* Once each, where people look. */
    snprintf(needle, sizeof(needle), "ข้อมูลเพิ่มจากผู้แจ้ง เรื่อง %s", first.case_number);
    assert_int_equal(e2e_line_bot_count(s, group, needle), 2);
    snprintf(needle, sizeof(needle), "เจ้าหน้าที่รับเรื่อง %s แล้ว", first.case_number);
    assert_int_equal(e2e_line_bot_count(s, first.citizen, needle), 1);
    snprintf(needle, sizeof(needle), "ยกเลิกเคส %s แล้ว", second.case_number);
    assert_int_equal(e2e_line_bot_count(s, second.citizen, needle), 1);
    assert_int_equal(e2e_line_card_count(s, group, first.case_number), 1);
    assert_int_equal(e2e_line_card_count(s, group, second.case_number), 1);
    assert_int_equal(e2e_line_card_count(s, group, hurried.case_number), 1);
    assert_int_equal(e2e_line_bot_count(s, group, hurried_info), 1);
    assert_int_equal(e2e_sql(s,
                             "SELECT count(*) FROM incident_events e JOIN incidents i ON i.id = "
                             "e.incident_id WHERE i.case_number = $1 AND e.kind = 'acknowledged'",
                             1, first_params),
                     1);
    e2e_stack_passed(s);
}

ESS_TEST_MAIN(NULL, e2e_stack_teardown)
