/* Identifiers in LINE's shapes: ULID webhookEventIds (shape, time, monotonicity), user and
 * group ids, UUIDs, reply tokens, message ids. */
#include "testkit.h"

#include <stdlib.h>
#include <string.h>

#include "emu_ids.h"

ESS_TEST(ulid_has_the_shape_and_time)
{
    (void)state;
    emu_ulid_gen gen;
    emu_ulid_init(&gen);
    char ulid[EMU_ULID_LEN + 1];
    int64_t now = 1796029981997;
    assert_int_equal(emu_ulid_next(&gen, now, ulid), ST_OK);
    assert_int_equal(strlen(ulid), 26);
    assert_true(emu_ulid_valid(ulid));
    assert_true(strspn(ulid, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") == 26);
    assert_int_equal(emu_ulid_time_ms(ulid), now);
    emu_ulid_done(&gen);

    static const char *const bad[] = {"",
                                      "01M8NVN99DD7NNGE18ZXSMZNH",   /* 25 */
                                      "01M8NVN99DD7NNGE18ZXSMZNHQQ", /* 27 */
                                      "01M8NVN99DD7NNGE18ZXSMZNHI",  /* I is not Crockford */
                                      "81M8NVN99DD7NNGE18ZXSMZNHQ",  /* > 48-bit time */
                                      "01m8nvn99dd7nnge18zxsmznhq"}; /* we emit upper case */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (emu_ulid_valid(bad[i]))
            fail_msg("'%s' passed as a ULID", bad[i]);
}

ESS_TEST(ulids_are_monotonic_within_a_millisecond_and_across_clock_steps)
{
    (void)state;
    emu_ulid_gen gen;
    emu_ulid_init(&gen);
    char previous[EMU_ULID_LEN + 1] = "";
    int64_t times[] = {1000, 1000, 1000, 1001, 1001, 999 /* clock stepped back */, 1000, 5000};
    for (int round = 0; round < 200; round++) {
        char next[EMU_ULID_LEN + 1];
        int64_t now = times[round % (sizeof(times) / sizeof(times[0]))] + (round / 8) * 10000;
        assert_int_equal(emu_ulid_next(&gen, now, next), ST_OK);
        if (previous[0] != '\0' && strcmp(previous, next) >= 0)
            fail_msg("round %d: %s is not after %s", round, next, previous);
        memcpy(previous, next, sizeof(next));
    }
    emu_ulid_done(&gen);
}

ESS_TEST(line_ids_uuids_and_tokens)
{
    (void)state;
    char id[EMU_LINE_ID_LEN + 1], other[EMU_LINE_ID_LEN + 1];
    assert_int_equal(emu_line_id_new('U', id), ST_OK);
    assert_int_equal(emu_line_id_new('U', other), ST_OK);
    assert_true(emu_line_id_valid(id, 'U'));
    assert_true(emu_line_id_valid(id, 0));
    assert_false(emu_line_id_valid(id, 'C'));
    assert_string_not_equal(id, other);
    assert_false(emu_line_id_valid("U0123456789ABCDEF0123456789abcdef", 'U')); /* upper hex */
    assert_false(emu_line_id_valid("U0123456789abcdef0123456789abcde", 'U'));  /* 31 hex */
    assert_true(emu_line_id_valid("C0123456789abcdef0123456789abcdef", 'C'));

    char uuid[EMU_UUID_LEN + 1];
    assert_int_equal(emu_uuid_new(uuid), ST_OK);
    assert_true(emu_uuid_valid(uuid, strlen(uuid)));
    assert_int_equal(uuid[14], '4');
    assert_true(emu_uuid_valid("123E4567-E89B-12D3-A456-426614174000", 36));
    assert_false(emu_uuid_valid("123e4567e89b12d3a456426614174000", 32));
    assert_false(emu_uuid_valid("123e4567-e89b-12d3-a456-42661417400g", 36));

    char token[EMU_REPLY_TOKEN_LEN + 1], quote[EMU_QUOTE_TOKEN_LEN + 1];
    assert_int_equal(emu_reply_token_new(token), ST_OK);
    assert_int_equal(strlen(token), 32);
    assert_int_equal(strspn(token, "0123456789abcdef"), 32);
    assert_int_equal(emu_quote_token_new(quote), ST_OK);
    assert_int_equal(strlen(quote), EMU_QUOTE_TOKEN_LEN);
}

ESS_TEST(message_ids_increase)
{
    (void)state;
    char first[EMU_MESSAGE_ID_MAX], second[EMU_MESSAGE_ID_MAX], third[EMU_MESSAGE_ID_MAX];
    emu_message_id_new(1796029981997, first);
    emu_message_id_new(1796029981997, second);
    emu_message_id_new(1796029981000, third); /* an earlier clock still gives a larger id */
    assert_true(strtoull(first, NULL, 10) < strtoull(second, NULL, 10));
    assert_true(strtoull(second, NULL, 10) < strtoull(third, NULL, 10));
    assert_int_equal(strlen(first), 18);
}

ESS_TEST_MAIN(NULL, NULL)
