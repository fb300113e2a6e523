/* conv_machine: the whole citizen dialogue, table-driven.
 *
 * Each script is a list of steps: one event (kind, LINE timestamp, text or postback data,
 * standby) and what must follow (cs, the answer's messages in order, the actions). A step
 * that submits gets incident 42 / ESS-2569-000042, as the store would assign. */
#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv_machine.h"
#include "conv_reply.h"

#define TTL_MS (30 * 60 * 1000)
#define END CONV_MSG_COUNT /* ends a message list */
#define NO_ACTION 0

enum { EV_FOLLOW = 1, EV_UNFOLLOW, EV_TEXT, EV_POSTBACK, EV_LOC, EV_STICKER, EV_IMAGE, EV_EXPIRE };

typedef struct step {
    int kind;
    int64_t ts;          /* event timestamp; EXPIRE: now */
    const char *text;    /* TEXT text, POSTBACK data */
    bool standby;
    int reports;         /* reports in the past hour */
    conv_state_kind want_state;
    conv_msg want[6];    /* ends with END */
    conv_action_kind want_actions[3]; /* ends with NO_ACTION */
} step;

#define S(...) ((step){__VA_ARGS__})
#define MSGS(...) .want = {__VA_ARGS__, END}
#define NOMSG .want = {END}
#define ACTS(...) .want_actions = {__VA_ARGS__, NO_ACTION}

static conv_event make_event(const step *s)
{
    conv_event event;
    memset(&event, 0, sizeof(event));
    event.timestamp_ms = s->ts;
    event.standby = s->standby;
    event.source = CONV_SOURCE_USER;
    snprintf(event.webhook_event_id, sizeof(event.webhook_event_id), "01TEST%lld",
             (long long)s->ts);
    snprintf(event.user_id, sizeof(event.user_id), "U0123456789abcdef0123456789abcdef");
    snprintf(event.reply_token, sizeof(event.reply_token), "token");
    switch (s->kind) {
    case EV_FOLLOW:
        event.kind = CONV_EV_FOLLOW;
        break;
    case EV_UNFOLLOW:
        event.kind = CONV_EV_UNFOLLOW;
        break;
    case EV_TEXT:
        event.kind = CONV_EV_TEXT;
        snprintf(event.text, sizeof(event.text), "%s", s->text);
        break;
    case EV_POSTBACK:
        event.kind = CONV_EV_POSTBACK;
        snprintf(event.postback_data, sizeof(event.postback_data), "%s", s->text);
        break;
    case EV_LOC:
        event.kind = CONV_EV_LOCATION;
        event.location.present = true;
        event.location.lat = 18.7883;
        event.location.lon = 98.9853;
        snprintf(event.location.title, sizeof(event.location.title), "%s",
                 s->text != NULL ? s->text : "บ้าน");
        break;
    case EV_STICKER:
        event.kind = CONV_EV_STICKER;
        snprintf(event.sticker_package, sizeof(event.sticker_package), "11537");
        snprintf(event.sticker_id, sizeof(event.sticker_id), "52002734");
        break;
    case EV_IMAGE:
        event.kind = CONV_EV_MEDIA;
        snprintf(event.media_type, sizeof(event.media_type), "image");
        break;
    case EV_EXPIRE:
        event.kind = CONV_EV_EXPIRE;
        break;
    }
    return event;
}

static void describe(char *out, size_t size, const conv_output *o)
{
    size_t used = (size_t)snprintf(out, size, "cs=%s msgs=[", conv_state_kind_name(o->next.kind));
    for (size_t i = 0; i < o->response_count && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "," : "",
                                 conv_msg_name(o->response[i]));
    if (used < size)
        used += (size_t)snprintf(out + used, size - used, "] actions=%zu", o->action_count);
}

/* Runs steps from cs (updated in place); fails with the step number on a mismatch. */
static void run_steps(conv_state *cs, const step *steps, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const step *s = &steps[i];
        conv_event event = make_event(s);
        conv_context context = {.now_ms = s->ts,
                                .draft_ttl_ms = TTL_MS,
                                .reports_last_hour = s->reports,
                                .reports_per_hour = 5};
        conv_output out;
        conv_machine_apply(cs, &event, &context, &out);
        char got[256];
        describe(got, sizeof(got), &out);
        size_t want_count = 0;
        while (want_count < 6 && s->want[want_count] != END)
            want_count++;
        bool ok = out.next.kind == s->want_state && out.response_count == want_count;
        for (size_t m = 0; ok && m < want_count; m++)
            ok = out.response[m] == s->want[m];
        size_t want_actions = 0;
        while (want_actions < 3 && s->want_actions[want_actions] != NO_ACTION)
            want_actions++;
        ok = ok && out.action_count == want_actions;
        for (size_t a = 0; ok && a < want_actions; a++)
            ok = out.actions[a].kind == s->want_actions[a];
        if (!ok) {
            char want[256];
            size_t used = (size_t)snprintf(want, sizeof(want), "cs=%s msgs=[",
                                           conv_state_kind_name(s->want_state));
            for (size_t m = 0; m < want_count && used < sizeof(want); m++)
                used += (size_t)snprintf(want + used, sizeof(want) - used, "%s%s", m ? "," : "",
                                         conv_msg_name(s->want[m]));
            if (used < sizeof(want))
                snprintf(want + used, sizeof(want) - used, "] actions=%zu", want_actions);
            fail_msg("step %zu: got %s, want %s", i + 1, got, want);
        }
        for (size_t a = 0; a < out.action_count; a++)
            if (out.actions[a].kind == CONV_ACT_SUBMIT) {
                out.next.incident_id = 42;
                snprintf(out.next.case_number, sizeof(out.next.case_number), "ESS-2569-000042");
            }
        /* Every answer renders: the catalogue has every id in both languages. */
        if (out.response_count > 0) {
            conv_command command = {0};
            st_error err = {0};
            if (conv_reply_build(&out, out.next.language, "evt", event.user_id, "token", &command,
                                 &err) != ST_OK)
                fail_msg("step %zu: answer does not render: %s", i + 1, err.message);
            conv_command_done(&command);
        }
        *cs = out.next;
    }
}

#define RUN(cs, ...)                                                                      \
    do {                                                                                     \
        const step steps_[] = {__VA_ARGS__};                                                 \
        run_steps((cs), steps_, sizeof(steps_) / sizeof(steps_[0]));                      \
    } while (0)

#define CAT_THREAT "v=1&a=cat&c=threat"
#define CAT_FRENZY "v=1&a=cat&c=frenzy"
#define PHONE "081-234-5678"

static conv_state fresh(void)
{
    conv_state cs;
    conv_state_init(&cs);
    return cs;
}

/* A cs with an open case 42 (submitted at t=4000). */
static conv_state submitted(void)
{
    conv_state cs = fresh();
    RUN(&cs,
        S(EV_FOLLOW, 1000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)),
        S(EV_POSTBACK, 2000, CAT_THREAT, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_LOCATION)),
        S(EV_LOC, 3000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_PHONE)),
        S(EV_TEXT, 4000, PHONE, .want_state = CONV_STATE_SUBMITTED, MSGS(CONV_MSG_SUBMITTED),
          ACTS(CONV_ACT_SUBMIT)));
    return cs;
}

ESS_TEST(follow_then_category_location_phone_submits)
{
    conv_state cs = submitted();
    assert_int_equal(cs.category, CONV_CAT_THREAT);
    assert_true(cs.location.present);
    assert_string_equal(cs.phone, "0812345678");
    assert_int_equal(cs.incident_id, 42);
    assert_int_equal(cs.submitted_ts, 4000);
    assert_int_equal(cs.last_event_ts, 4000);
}

/* Every order of the three slots, after a follow and from a first contact without one. */
ESS_TEST(every_order_of_the_slots_asks_only_for_what_is_missing)
{
    const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int with_follow = 0; with_follow < 2; with_follow++) {
        for (int o = 0; o < 6; o++) {
            conv_state cs = fresh();
            int64_t ts = 1000;
            if (with_follow)
                RUN(&cs, S(EV_FOLLOW, ts, .want_state = CONV_STATE_DRAFT,
                              MSGS(CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)));
            bool have[3] = {false, false, false};
            for (int k = 0; k < 3; k++) {
                int slot = orders[o][k];
                have[slot] = true;
                ts += 1000;
                step s = {.ts = ts, .want_state = CONV_STATE_DRAFT};
                s.kind = slot == 0 ? EV_POSTBACK : slot == 1 ? EV_LOC : EV_TEXT;
                s.text = slot == 0 ? CAT_FRENZY : slot == 1 ? NULL : "+66 81 234 5678";
                size_t m = 0;
                /* A first contact that is not one of our buttons is welcomed. */
                if (!with_follow && k == 0 && slot != 0)
                    s.want[m++] = CONV_MSG_WELCOME;
                if (k == 2) {
                    s.want_state = CONV_STATE_SUBMITTED;
                    s.want[m++] = CONV_MSG_SUBMITTED;
                    s.want_actions[0] = CONV_ACT_SUBMIT;
                } else {
                    s.want[m++] = !have[0]   ? CONV_MSG_ASK_CATEGORY
                                  : !have[1] ? CONV_MSG_ASK_LOCATION
                                             : CONV_MSG_ASK_PHONE;
                }
                s.want[m] = END;
                s.want_actions[s.want_actions[0] ? 1 : 0] = NO_ACTION;
                run_steps(&cs, &s, 1);
            }
            assert_int_equal(cs.category, CONV_CAT_FRENZY);
            assert_string_equal(cs.phone, "0812345678");
        }
    }
}

ESS_TEST(bad_phones_three_times_then_offer_to_send_without)
{
    conv_state cs = fresh();
    RUN(&cs,
        S(EV_POSTBACK, 1000, CAT_THREAT, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_LOCATION)),
        S(EV_LOC, 2000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_PHONE)),
        S(EV_TEXT, 3000, "12345", .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_BAD_PHONE)),
        S(EV_TEXT, 4000, "ไม่มีเบอร์", .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_BAD_PHONE)),
        S(EV_TEXT, 5000, "+1 415 555 0100", .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_OFFER_NO_PHONE)),
        S(EV_STICKER, 6000, .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_HINT, CONV_MSG_OFFER_NO_PHONE)),
        S(EV_POSTBACK, 7000, "v=1&a=nophone", .want_state = CONV_STATE_SUBMITTED,
          MSGS(CONV_MSG_SUBMITTED), ACTS(CONV_ACT_SUBMIT)));
    assert_string_equal(cs.phone, "");
    assert_true(cs.phone_declined);
}

ESS_TEST(a_good_phone_after_failures_still_submits)
{
    conv_state cs = fresh();
    RUN(&cs,
        S(EV_TEXT, 1000, "0812", .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)),
        S(EV_TEXT, 2000, "0812", .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_BAD_PHONE)),
        S(EV_TEXT, 3000, "๐๘๑๒๓๔๕๖๗๘", .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_ASK_CATEGORY)),
        S(EV_TEXT, 4000, "ถูกข่มขู่/ทำร้าย", .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_ASK_LOCATION)),
        S(EV_LOC, 5000, .want_state = CONV_STATE_SUBMITTED, MSGS(CONV_MSG_SUBMITTED),
          ACTS(CONV_ACT_SUBMIT)));
    assert_string_equal(cs.phone, "0812345678");
    assert_int_equal(cs.phone_failures, 0);
}

ESS_TEST(unknown_input_gets_a_hint_never_silence)
{
    conv_state cs = fresh();
    RUN(&cs,
        S(EV_TEXT, 1000, "ช่วยด้วย", .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)),
        S(EV_TEXT, 2000, "ช่วยด้วย", .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_HINT, CONV_MSG_ASK_CATEGORY)),
        S(EV_POSTBACK, 3000, "action=take&case=1", .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_HINT, CONV_MSG_ASK_CATEGORY)),
        S(EV_POSTBACK, 4000, "v=2&a=cat&c=threat", .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_HINT, CONV_MSG_ASK_CATEGORY)),
        S(EV_POSTBACK, 5000, "v=1&a=cat&c=arson", .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_HINT, CONV_MSG_ASK_CATEGORY)),
        S(EV_POSTBACK, 6000, "v=1&a=info&i=9", .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_ASK_CATEGORY)));
}

ESS_TEST(stickers_and_images_at_each_step)
{
    conv_state cs = fresh();
    RUN(&cs,
        S(EV_STICKER, 1000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)),
        S(EV_IMAGE, 2000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_HINT, CONV_MSG_ASK_CATEGORY)),
        S(EV_POSTBACK, 3000, CAT_THREAT, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_LOCATION)),
        S(EV_STICKER, 4000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_HINT, CONV_MSG_ASK_LOCATION)),
        S(EV_IMAGE, 5000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_HINT, CONV_MSG_ASK_LOCATION)),
        S(EV_LOC, 6000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_PHONE)),
        S(EV_STICKER, 7000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_HINT, CONV_MSG_ASK_PHONE)),
        S(EV_IMAGE, 8000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_HINT, CONV_MSG_ASK_PHONE)),
        S(EV_TEXT, 9000, "0912345678", .want_state = CONV_STATE_SUBMITTED, MSGS(CONV_MSG_SUBMITTED),
          ACTS(CONV_ACT_SUBMIT)),
        S(EV_STICKER, 10000, .want_state = CONV_STATE_SUBMITTED, MSGS(CONV_MSG_INFO_ADDED),
          ACTS(CONV_ACT_APPEND_INFO)),
        S(EV_IMAGE, 11000, .want_state = CONV_STATE_SUBMITTED, MSGS(CONV_MSG_INFO_ADDED),
          ACTS(CONV_ACT_APPEND_INFO)));
}

ESS_TEST(information_after_submission_is_added_to_the_case)
{
    conv_state cs = submitted();
    RUN(&cs,
        S(EV_POSTBACK, 5000, "v=1&a=info&i=42", .want_state = CONV_STATE_SUBMITTED,
          MSGS(CONV_MSG_ADD_INFO_HINT)),
        S(EV_TEXT, 6000, "เขามีมีด", .want_state = CONV_STATE_SUBMITTED, MSGS(CONV_MSG_INFO_ADDED),
          ACTS(CONV_ACT_APPEND_INFO)),
        S(EV_LOC, 7000, .want_state = CONV_STATE_SUBMITTED, MSGS(CONV_MSG_INFO_ADDED),
          ACTS(CONV_ACT_APPEND_INFO)),
        S(EV_TEXT, 8000, "0899999999", .want_state = CONV_STATE_SUBMITTED,
          MSGS(CONV_MSG_INFO_ADDED), ACTS(CONV_ACT_APPEND_INFO)),
        S(EV_POSTBACK, 9000, CAT_FRENZY, .want_state = CONV_STATE_SUBMITTED,
          MSGS(CONV_MSG_CASE_OPEN)),
        S(EV_FOLLOW, 10000, .want_state = CONV_STATE_SUBMITTED, MSGS(CONV_MSG_CASE_OPEN)));
    assert_int_equal(cs.incident_id, 42);
    assert_int_equal(cs.category, CONV_CAT_THREAT); /* the case keeps its category */
}

ESS_TEST(cancel_by_button_or_keyword)
{
    conv_state cs = submitted();
    RUN(&cs,
        S(EV_POSTBACK, 5000, "v=1&a=cancel&i=7", .want_state = CONV_STATE_SUBMITTED,
          MSGS(CONV_MSG_CASE_OPEN)),
        S(EV_POSTBACK, 6000, "v=1&a=cancel&i=42", .want_state = CONV_STATE_IDLE,
          MSGS(CONV_MSG_CANCELLED), ACTS(CONV_ACT_CANCEL_INCIDENT)),
        S(EV_TEXT, 7000, "ยกเลิก", .want_state = CONV_STATE_IDLE, MSGS(CONV_MSG_NOTHING_TO_CANCEL)),
        S(EV_POSTBACK, 8000, CAT_THREAT, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_LOCATION)),
        S(EV_TEXT, 9000, " Cancel ", .want_state = CONV_STATE_IDLE, MSGS(CONV_MSG_DRAFT_CANCELLED)));
    assert_int_equal(cs.incident_id, 0);
    assert_int_equal(cs.category, CONV_CAT_NONE);

    /* The cancelled answer names the cancelled case. */
    cs = submitted();
    conv_event event = make_event(&S(EV_TEXT, 5000, "cancel"));
    conv_context context = {.now_ms = 5000, .draft_ttl_ms = TTL_MS, .reports_per_hour = 5};
    conv_output out;
    conv_machine_apply(&cs, &event, &context, &out);
    conv_msg_params params = {0};
    conv_output_params(&out, &params);
    assert_int_equal(params.incident_id, 42);
    assert_string_equal(params.case_number, "ESS-2569-000042");
    assert_int_equal(out.actions[0].incident_id, 42);
}

ESS_TEST(restart_keywords_start_over_in_their_language)
{
    static const struct {
        const char *word;
        conv_lang language;
    } keywords[] = {{"แจ้งเหตุ", CONV_LANG_TH}, {"เมนู", CONV_LANG_TH}, {"help", CONV_LANG_EN},
                    {" REPORT\n", CONV_LANG_EN}, {"Menu", CONV_LANG_EN}};
    for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++) {
        conv_state cs = fresh();
        RUN(&cs,
            S(EV_POSTBACK, 1000, CAT_THREAT, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_LOCATION)),
            S(EV_LOC, 2000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_PHONE)),
            S(EV_TEXT, 3000, keywords[i].word, .want_state = CONV_STATE_DRAFT,
              MSGS(CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)));
        assert_int_equal(cs.category, CONV_CAT_NONE);
        assert_false(cs.location.present);
        assert_int_equal(cs.language, keywords[i].language);
        /* From an open case too: the case stays with the team, a new report starts. */
        cs = submitted();
        RUN(&cs, S(EV_TEXT, 5000, keywords[i].word, .want_state = CONV_STATE_DRAFT,
                      MSGS(CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)));
        assert_int_equal(cs.incident_id, 0);
    }
    conv_state cs = fresh();
    RUN(&cs, S(EV_POSTBACK, 1000, "v=1&a=menu", .want_state = CONV_STATE_DRAFT,
                  MSGS(CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)));
}

ESS_TEST(draft_expires_by_sweep_or_on_the_next_event)
{
    conv_state cs = fresh();
    RUN(&cs,
        S(EV_POSTBACK, 1000, CAT_THREAT, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_LOCATION)),
        S(EV_EXPIRE, 1000 + TTL_MS - 1, .want_state = CONV_STATE_DRAFT, NOMSG),
        S(EV_EXPIRE, 1000 + TTL_MS, .want_state = CONV_STATE_IDLE, MSGS(CONV_MSG_EXPIRED)),
        S(EV_EXPIRE, 1000 + 2 * TTL_MS, .want_state = CONV_STATE_IDLE, NOMSG));
    assert_int_equal(cs.category, CONV_CAT_NONE);

    /* The sweep answers by push (no event to reply to). */
    cs = fresh();
    RUN(&cs, S(EV_POSTBACK, 1000, CAT_THREAT, .want_state = CONV_STATE_DRAFT,
                  MSGS(CONV_MSG_ASK_LOCATION)));
    conv_event expire = make_event(&S(EV_EXPIRE, 1000 + TTL_MS));
    conv_context context = {.now_ms = 1000 + TTL_MS, .draft_ttl_ms = TTL_MS, .reports_per_hour = 5};
    conv_output out;
    conv_machine_apply(&cs, &expire, &context, &out);
    assert_int_equal(out.delivery, CONV_DELIVER_PUSH);
    assert_int_equal(out.next.last_event_ts, 1000); /* the sweep is not a LINE event */

    /* Not swept yet: the next event finds the draft expired and starts afresh. */
    cs = fresh();
    RUN(&cs,
        S(EV_POSTBACK, 1000, CAT_THREAT, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_LOCATION)),
        S(EV_LOC, 2000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_PHONE)),
        S(EV_TEXT, 2000 + TTL_MS, PHONE, .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_EXPIRED, CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)));
    assert_string_equal(cs.phone, "0812345678");
    assert_false(cs.location.present);

    /* Activity keeps a draft alive; submitted and idle states never expire. */
    cs = fresh();
    RUN(&cs,
        S(EV_POSTBACK, 1000, CAT_THREAT, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_LOCATION)),
        S(EV_STICKER, 1000 + TTL_MS - 10, .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_HINT, CONV_MSG_ASK_LOCATION)),
        S(EV_EXPIRE, 1000 + TTL_MS + 10, .want_state = CONV_STATE_DRAFT, NOMSG));
    cs = submitted();
    RUN(&cs, S(EV_EXPIRE, 4000 + 10 * TTL_MS, .want_state = CONV_STATE_SUBMITTED, NOMSG));
}

ESS_TEST(english_profile_speaks_english)
{
    conv_state cs = fresh();
    RUN(&cs,
        S(EV_TEXT, 1000, "help", .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)),
        S(EV_TEXT, 2000, "Threat or harm", .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_ASK_LOCATION)),
        S(EV_LOC, 3000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_PHONE)));
    assert_int_equal(cs.language, CONV_LANG_EN);
    conv_event event = make_event(&S(EV_TEXT, 4000, "0812345678"));
    conv_context context = {.now_ms = 4000, .draft_ttl_ms = TTL_MS, .reports_per_hour = 5};
    conv_output out;
    conv_machine_apply(&cs, &event, &context, &out);
    out.next.incident_id = 42;
    snprintf(out.next.case_number, sizeof(out.next.case_number), "ESS-2569-000042");
    conv_command command = {0};
    assert_int_equal(conv_reply_build(&out, out.next.language, "e1", event.user_id, NULL,
                                      &command, NULL),
                     ST_OK);
    assert_non_null(strstr(command.payload, "Case number ESS-2569-000042"));
    assert_non_null(strstr(command.payload, "Cancel (false alarm)"));
    assert_null(strstr(command.payload, "รับเรื่อง"));
    conv_command_done(&command);

    /* The language button switches both ways and re-asks in the new language. */
    cs = fresh();
    RUN(&cs,
        S(EV_FOLLOW, 1000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)),
        S(EV_POSTBACK, 2000, "v=1&a=lang&l=en", .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_ASK_CATEGORY)));
    assert_int_equal(cs.language, CONV_LANG_EN);
    RUN(&cs, S(EV_POSTBACK, 3000, "v=1&a=lang&l=th", .want_state = CONV_STATE_DRAFT,
                  MSGS(CONV_MSG_ASK_CATEGORY)));
    assert_int_equal(cs.language, CONV_LANG_TH);
}

ESS_TEST(standby_changes_nothing_and_sends_nothing)
{
    conv_state cs = fresh();
    RUN(&cs, S(EV_POSTBACK, 1000, CAT_THREAT, .want_state = CONV_STATE_DRAFT,
                  MSGS(CONV_MSG_ASK_LOCATION)));
    const int kinds[] = {EV_FOLLOW, EV_TEXT, EV_LOC, EV_STICKER, EV_IMAGE, EV_POSTBACK, EV_UNFOLLOW};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        step s = {.kind = kinds[i], .ts = 2000 + (int64_t)i, .standby = true,
                  .text = kinds[i] == EV_POSTBACK ? "v=1&a=cancel&i=0" : "แจ้งเหตุ"};
        conv_event event = make_event(&s);
        conv_context context = {.now_ms = s.ts, .draft_ttl_ms = TTL_MS, .reports_per_hour = 5};
        conv_output out;
        conv_machine_apply(&cs, &event, &context, &out);
        assert_false(out.changed);
        assert_int_equal(out.response_count, 0);
        assert_int_equal(out.action_count, 0);
        assert_int_equal(out.next.last_event_ts, 1000);
        assert_int_equal(out.next.kind, CONV_STATE_DRAFT);
        assert_int_equal(out.next.category, CONV_CAT_THREAT);
    }
}

ESS_TEST(late_events_fill_only_empty_slots_and_never_undo)
{
    /* Location (t=2000) applied before the category (t=1000): same draft as in order. */
    conv_state cs = fresh();
    RUN(&cs,
        S(EV_LOC, 2000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)),
        S(EV_POSTBACK, 1000, CAT_THREAT, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_PHONE)),
        /* A late second category does not overwrite the first. */
        S(EV_POSTBACK, 1500, CAT_FRENZY, .want_state = CONV_STATE_DRAFT, NOMSG),
        /* Late commands are ignored: they would undo newer cs. */
        S(EV_TEXT, 1600, "แจ้งเหตุ", .want_state = CONV_STATE_DRAFT, NOMSG),
        S(EV_TEXT, 1700, "ยกเลิก", .want_state = CONV_STATE_DRAFT, NOMSG),
        S(EV_FOLLOW, 1800, .want_state = CONV_STATE_DRAFT, NOMSG),
        S(EV_UNFOLLOW, 1850, .want_state = CONV_STATE_DRAFT, NOMSG),
        /* A late bad phone does not count as a failure. */
        S(EV_TEXT, 1900, "12345", .want_state = CONV_STATE_DRAFT, NOMSG));
    assert_int_equal(cs.category, CONV_CAT_THREAT);
    assert_int_equal(cs.phone_failures, 0);
    assert_int_equal(cs.last_event_ts, 2000);
    /* A late phone completes the draft: the report is submitted. */
    RUN(&cs,
        S(EV_TEXT, 1950, PHONE, .want_state = CONV_STATE_SUBMITTED, MSGS(CONV_MSG_SUBMITTED),
          ACTS(CONV_ACT_SUBMIT)));
    assert_int_equal(cs.last_event_ts, 2000);
    assert_int_equal(cs.submitted_ts, 1950);
    /* After submission: late events older than the submission belonged to the draft. */
    RUN(&cs,
        S(EV_TEXT, 1940, "0899999999", .want_state = CONV_STATE_SUBMITTED, NOMSG),
        S(EV_IMAGE, 1960, .want_state = CONV_STATE_SUBMITTED, MSGS(CONV_MSG_INFO_ADDED),
          ACTS(CONV_ACT_APPEND_INFO)),
        S(EV_POSTBACK, 1970, "v=1&a=cancel&i=42", .want_state = CONV_STATE_SUBMITTED, NOMSG));
    assert_string_equal(cs.phone, "0812345678");

    /* A late event never touches an idle conversation. */
    cs = fresh();
    RUN(&cs,
        S(EV_FOLLOW, 5000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)),
        S(EV_TEXT, 6000, "ยกเลิก", .want_state = CONV_STATE_IDLE, MSGS(CONV_MSG_DRAFT_CANCELLED)),
        S(EV_POSTBACK, 5500, CAT_THREAT, .want_state = CONV_STATE_IDLE, NOMSG),
        S(EV_TEXT, 5600, "hello", .want_state = CONV_STATE_IDLE, NOMSG));
}

ESS_TEST(every_arrival_order_of_one_users_events_ends_in_one_report)
{
    /* The events of a report (category t=1, location t=2, phone t=3) in all six arrival
     * orders: each ends submitted with the same slots and exactly one SUBMIT. */
    const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int o = 0; o < 6; o++) {
        conv_state cs = fresh();
        int submits = 0;
        for (int k = 0; k < 3; k++) {
            int slot = orders[o][k];
            step s = {.kind = slot == 0 ? EV_POSTBACK : slot == 1 ? EV_LOC : EV_TEXT,
                      .ts = 1000 * (slot + 1),
                      .text = slot == 0 ? CAT_THREAT : slot == 1 ? NULL : PHONE};
            conv_event event = make_event(&s);
            conv_context context = {.now_ms = s.ts, .draft_ttl_ms = TTL_MS, .reports_per_hour = 5};
            conv_output out;
            conv_machine_apply(&cs, &event, &context, &out);
            for (size_t a = 0; a < out.action_count; a++)
                submits += out.actions[a].kind == CONV_ACT_SUBMIT;
            cs = out.next;
        }
        assert_int_equal(submits, 1);
        assert_int_equal(cs.kind, CONV_STATE_SUBMITTED);
        assert_int_equal(cs.category, CONV_CAT_THREAT);
        assert_string_equal(cs.phone, "0812345678");
        assert_true(cs.location.present);
        assert_int_equal(cs.last_event_ts, 3000);
    }
}

ESS_TEST(reports_beyond_the_hourly_limit_get_the_hotlines)
{
    conv_state cs = fresh();
    RUN(&cs,
        S(EV_POSTBACK, 1000, CAT_THREAT, .reports = 5, .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_ASK_LOCATION)),
        S(EV_LOC, 2000, .reports = 5, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_PHONE)),
        S(EV_TEXT, 3000, PHONE, .reports = 5, .want_state = CONV_STATE_IDLE,
          MSGS(CONV_MSG_RATE_LIMITED)));
    RUN(&cs,
        S(EV_POSTBACK, 4000, CAT_THREAT, .reports = 4, .want_state = CONV_STATE_DRAFT,
          MSGS(CONV_MSG_ASK_LOCATION)),
        S(EV_LOC, 5000, .reports = 4, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_PHONE)),
        S(EV_TEXT, 6000, PHONE, .reports = 4, .want_state = CONV_STATE_SUBMITTED,
          MSGS(CONV_MSG_SUBMITTED), ACTS(CONV_ACT_SUBMIT)));
}

ESS_TEST(unfollow_drops_a_draft_and_notes_an_open_case)
{
    conv_state cs = fresh();
    RUN(&cs,
        S(EV_POSTBACK, 1000, CAT_THREAT, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_ASK_LOCATION)),
        S(EV_UNFOLLOW, 2000, .want_state = CONV_STATE_IDLE, NOMSG),
        S(EV_FOLLOW, 3000, .want_state = CONV_STATE_DRAFT, MSGS(CONV_MSG_WELCOME, CONV_MSG_ASK_CATEGORY)));
    cs = submitted();
    RUN(&cs, S(EV_UNFOLLOW, 5000, .want_state = CONV_STATE_SUBMITTED, NOMSG,
                  ACTS(CONV_ACT_REPORTER_UNFOLLOWED)));
}

ESS_TEST(keywords_are_recognised_trimmed_and_case_folded)
{
    assert_int_equal(conv_machine_keyword("แจ้งเหตุ"), CONV_KEYWORD_START_TH);
    assert_int_equal(conv_machine_keyword("  เมนู "), CONV_KEYWORD_START_TH);
    assert_int_equal(conv_machine_keyword("HELP"), CONV_KEYWORD_START_EN);
    assert_int_equal(conv_machine_keyword("report"), CONV_KEYWORD_START_EN);
    assert_int_equal(conv_machine_keyword("ยกเลิก"), CONV_KEYWORD_CANCEL);
    assert_int_equal(conv_machine_keyword("help me"), CONV_KEYWORD_NONE);
    assert_int_equal(conv_machine_keyword(""), CONV_KEYWORD_NONE);
    assert_int_equal(conv_machine_keyword(NULL), CONV_KEYWORD_NONE);
}

ESS_TEST_MAIN(NULL, NULL)
