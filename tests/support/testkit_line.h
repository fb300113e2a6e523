/* testkit_line: people on LINE for the tests, played through the line-emulator's control API
 * (/_emulator/, tools/line-emulator/README.md): users and groups, what they do (follow, text,
 * location, tap, ...), and what the bot sent them. One driver for every harness that runs the
 * emulator (tests/integration/conversation, tests/integration/responders, tests/e2e).
 *
 * base_url is the emulator's address ("http://127.0.0.1:PORT"). Functions that return nothing
 * to check fail the running cmocka case on any problem (main thread only); testkit_line_try
 * never fails nor asserts, so driver threads may call it. */
#ifndef ESS_TESTKIT_LINE_H
#define ESS_TESTKIT_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* One request to <base_url>/_emulator<path>; body may be NULL (none). *ret_status = HTTP
 * status (0 without an answer); *ret_json (may be NULL: not wanted) = the parsed answer
 * (caller deletes; NULL when it is not JSON). Thread-safe. */
void testkit_line_try(const char *base_url, const char *method, const char *path,
                      const char *body, long *ret_status, cJSON **ret_json);
/* The same; fails unless the answer has want_status and is JSON. Caller deletes the answer. */
cJSON *testkit_line_call(const char *base_url, const char *method, const char *path,
                         const char *body, long want_status);

/* A new LINE user; ret_id (size bytes) gets the user id. language: "th", "en", ... */
void testkit_line_user(const char *base_url, const char *display_name, const char *language,
                       char *ret_id, size_t size);
/* A new LINE group with these members (NULL-terminated); the bot is added to it (LINE's
 * "join" event). ret_id (size bytes) gets the group id. */
void testkit_line_group(const char *base_url, const char *name, const char *const *members,
                        char *ret_id, size_t size);
/* Acts as a user: POST /users/<user>/<action> with body (NULL = {}). ret_event_id (may be
 * NULL) gets the first event's webhookEventId (id_size bytes), ret_delivery (may be NULL) the
 * webhook delivery's id. */
void testkit_line_act(const char *base_url, const char *user, const char *action,
                      const char *body, char *ret_event_id, size_t id_size,
                      int64_t *ret_delivery);

/* The bot's messages (direction out) in a chat (a user's or a group's) whose compact JSON
 * contains needle (NULL = all). */
size_t testkit_line_bot_count(const char *base_url, const char *chat, const char *needle);
/* Waits until there are at least count of them; fails after timeout_ms. Returns the last
 * one's seq (what testkit_line_act's "tap" names a message by). */
int64_t testkit_line_wait_bot(const char *base_url, const char *chat, const char *needle,
                              size_t count, int64_t timeout_ms);
/* The compact JSON of the last such message (heap, caller frees), or NULL. */
char *testkit_line_last_bot(const char *base_url, const char *chat, const char *needle);

#endif
