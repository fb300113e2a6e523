/* Platform state: users and groups, reply tokens (single use, expiry), retry keys (expiry),
 * bounded records and conversations. Time is passed in, so expiry needs no waiting. */
#include "testkit.h"

#include <stdio.h>
#include <string.h>

#include "emu_state.h"

static emu_state *make_state(size_t record_max, size_t conversation_max)
{
    emu_state_limits limits = {.reply_token_ttl_ms = 60000,
                               .retry_key_ttl_ms = 86400000,
                               .record_max = record_max,
                               .conversation_max = conversation_max};
    emu_state *state = NULL;
    assert_int_equal(emu_state_create(&limits, &state), ST_OK);
    return state;
}

ESS_TEST(users_and_groups)
{
    (void)state;
    emu_state *platform = make_state(10, 10);
    emu_user *user = NULL, *again = NULL;
    assert_int_equal(emu_state_add_user(platform, NULL, "สมชาย", "th", NULL, NULL, &user), ST_OK);
    assert_true(emu_line_id_valid(user->user_id, 'U'));
    assert_ptr_equal(emu_state_user(platform, user->user_id), user);
    assert_ptr_equal(emu_state_user_by_name(platform, "สมชาย"), user);
    assert_int_equal(emu_state_add_user(platform, user->user_id, "x", NULL, NULL, NULL, &again),
                     ST_CONFLICT);
    assert_int_equal(emu_state_add_user(platform, "Unot-an-id", "x", NULL, NULL, NULL, &again),
                     ST_INVALID);
    assert_int_equal(emu_state_add_user(platform, NULL, "", NULL, NULL, NULL, &again), ST_INVALID);
    char long_name[EMU_NAME_MAX + 2];
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_int_equal(emu_state_add_user(platform, NULL, long_name, NULL, NULL, NULL, &again),
                     ST_INVALID);

    emu_group *group = NULL;
    assert_int_equal(
        emu_state_add_group(platform, "C0123456789abcdef0123456789abcdef", "ทีม", NULL, &group),
        ST_OK);
    assert_false(emu_group_has_member(group, user->user_id));
    assert_int_equal(emu_group_add_member(group, user->user_id), ST_OK);
    assert_int_equal(emu_group_add_member(group, user->user_id), ST_CONFLICT);
    assert_true(emu_group_has_member(group, user->user_id));
    assert_int_equal(emu_group_remove_member(group, user->user_id), ST_OK);
    assert_int_equal(emu_group_remove_member(group, user->user_id), ST_NOT_FOUND);

    char user_id[EMU_CHAT_ID_SIZE];
    memcpy(user_id, user->user_id, sizeof(user_id));
    emu_state_clear(platform, false);
    assert_null(emu_state_user(platform, user_id));
    assert_int_equal(emu_state_user_count(platform), 0);
    assert_int_equal(emu_state_group_count(platform), 0);
    emu_state_destroy(platform);
}

ESS_TEST(reply_tokens_are_single_use_and_expire)
{
    (void)state;
    emu_state *platform = make_state(10, 10);
    const char *chat = "U0123456789abcdef0123456789abcdef";
    char token[EMU_REPLY_TOKEN_LEN + 1], other[EMU_REPLY_TOKEN_LEN + 1];
    char chat_out[EMU_CHAT_ID_SIZE];
    assert_int_equal(emu_state_issue_reply_token(platform, chat, 1000, token), ST_OK);
    assert_int_equal(emu_state_issue_reply_token(platform, chat, 1000, other), ST_OK);

    assert_int_equal(emu_state_reply_token_status(platform, token, 1000, NULL), EMU_TOKEN_VALID);
    assert_int_equal(emu_state_use_reply_token(platform, token, 60999, chat_out), ST_OK);
    assert_string_equal(chat_out, chat);
    assert_int_equal(emu_state_use_reply_token(platform, token, 61000, chat_out), ST_NOT_FOUND);
    assert_int_equal(emu_state_reply_token_status(platform, token, 61000, NULL), EMU_TOKEN_USED);

    int64_t expires = 0;
    assert_int_equal(emu_state_reply_token_status(platform, other, 61000, &expires),
                     EMU_TOKEN_EXPIRED);
    assert_int_equal(expires, 61000);
    assert_int_equal(emu_state_use_reply_token(platform, other, 61000, chat_out), ST_NOT_FOUND);
    assert_int_equal(emu_state_reply_token_status(platform, "nope", 1000, NULL), EMU_TOKEN_UNKNOWN);
    /* Long after expiry the token is forgotten altogether. */
    assert_int_equal(emu_state_reply_token_status(platform, other, 500000, NULL),
                     EMU_TOKEN_UNKNOWN);
    emu_state_destroy(platform);
}

ESS_TEST(retry_keys_are_remembered_for_their_lifetime)
{
    (void)state;
    emu_state *platform = make_state(10, 10);
    const char *key = "123e4567-e89b-12d3-a456-426614174000";
    assert_null(emu_state_retry_key(platform, key, 0));
    assert_int_equal(emu_state_remember_retry_key(platform, key,
                                                  "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee",
                                                  "[{\"id\":\"1\"}]", 1000),
                     ST_OK);
    const emu_retry_entry *seen = emu_state_retry_key(platform, key, 1000 + 86399999);
    assert_non_null(seen);
    assert_string_equal(seen->request_id, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
    assert_string_equal(seen->sent_messages_json, "[{\"id\":\"1\"}]");
    assert_null(emu_state_retry_key(platform, key, 1000 + 86400000));
    emu_state_destroy(platform);
}

ESS_TEST(records_and_conversations_are_bounded_rings)
{
    (void)state;
    emu_state *platform = make_state(3, 2);
    for (int i = 0; i < 5; i++) {
        emu_record record = {.time_ms = i, .message_json = "{\"type\":\"text\"}"};
        snprintf(record.endpoint, sizeof(record.endpoint), "push");
        snprintf(record.to, sizeof(record.to), "U%032d", i);
        uint64_t seq = 0;
        assert_int_equal(emu_state_record(platform, &record, &seq), ST_OK);
        assert_int_equal(seq, (uint64_t)i + 1);
    }
    assert_int_equal(emu_state_record_count(platform), 3);
    assert_int_equal(emu_state_record_at(platform, 0)->seq, 3);
    assert_int_equal(emu_state_record_at(platform, 2)->seq, 5);
    assert_null(emu_state_record_at(platform, 3));

    const char *chat = "U0123456789abcdef0123456789abcdef";
    uint64_t last = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(emu_state_append(platform, chat, i % 2 ? EMU_DIR_OUT : EMU_DIR_IN,
                                          "webhook", "ref", "", "{}", i, &last),
                         ST_OK);
    assert_int_equal(emu_state_entry_count(platform, chat), 2);
    assert_int_equal(emu_state_entry_at(platform, chat, 1)->seq, last);
    assert_non_null(emu_state_entry_by_seq(platform, chat, last));
    assert_null(emu_state_entry_by_seq(platform, chat, 1)); /* dropped from the ring */
    assert_int_equal(emu_state_entry_count(platform, "Unknown"), 0);

    emu_state_clear(platform, true);
    assert_int_equal(emu_state_record_count(platform), 0);
    assert_int_equal(emu_state_entry_count(platform, chat), 0);
    emu_state_destroy(platform);
}

ESS_TEST_MAIN(NULL, NULL)
