/* e2e_line: people on LINE, played through the line-emulator's control API (/_emulator/,
 * tools/line-emulator/README.md), and what they see: citizens in their 1:1 chat with the bot,
 * officers in their team's LINE group, the messages the bot sent, the webhook deliveries.
 *
 * Functions without a ret_status fail the running cmocka case (main thread only). The
 * e2e_line_try_* functions never fail nor assert: driver threads may call them. */
#ifndef E2E_LINE_H
#define E2E_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "e2e_stack.h"

#define E2E_ID_MAX 72
#define E2E_CASE_MAX 32

/* ---- the control API ------------------------------------------------------------------------ */

/* One request to /_emulator<path>; body may be NULL. *ret_status = HTTP status (0 without an
 * answer), *ret_json the parsed answer (caller deletes; NULL when not JSON or not wanted).
 * Thread-safe; never fails the case. */
void e2e_line_try(e2e_stack *s, const char *method, const char *path, const char *body,
                  long *ret_status, cJSON **ret_json);
/* The same; fails unless the answer has want_status. Returns the answer (caller deletes). */
cJSON *e2e_line(e2e_stack *s, const char *method, const char *path, const char *body,
                long want_status);

/* ---- people and groups ---------------------------------------------------------------------- */

/* A new LINE user (Thai); ret_id gets the user id. */
void e2e_line_user(e2e_stack *s, const char *display_name, char ret_id[E2E_ID_MAX]);
/* A new LINE group with these members (NULL-terminated); the bot joins it and its
 * introduction is awaited. */
void e2e_line_group(e2e_stack *s, const char *name, const char *const *members,
                    char ret_id[E2E_ID_MAX]);
/* Acts as a user: POST /users/<user>/<action> with body (NULL = {}). ret_event_id (may be
 * NULL) gets the first event's webhookEventId, ret_delivery (may be NULL) the delivery id. */
void e2e_line_act(e2e_stack *s, const char *user, const char *action, const char *body,
                  char ret_event_id[E2E_ID_MAX], int64_t *ret_delivery);
/* Taps quick-reply item index (1-based) of the chat's last message; with_place adds the
 * place for a location item. */
void e2e_line_tap_quick_reply(e2e_stack *s, const char *user, int index, bool with_place,
                              double lat, double lon);
/* Taps button `action` (1-based) of the bot's message seq in a group, as user. */
void e2e_line_tap_button(e2e_stack *s, const char *user, const char *group, int64_t seq,
                         int action);

/* ---- what the bot said ---------------------------------------------------------------------- */

/* Bot messages (direction out) in a chat (user or group) whose compact JSON contains needle
 * (NULL = all). */
size_t e2e_line_bot_count(e2e_stack *s, const char *chat, const char *needle);
/* Waits until there are at least count; fails after E2E_WAIT_MS. Returns the last one's seq. */
int64_t e2e_line_wait_bot(e2e_stack *s, const char *chat, const char *needle, size_t count);
/* The compact JSON of the last such message (heap, caller frees), or NULL. */
char *e2e_line_last_bot(e2e_stack *s, const char *chat, const char *needle);

/* Responder cards of a case in a group: accepted flex messages whose altText starts with
 * "แจ้งเหตุใหม่ <case_number>:" (services/notifier/notifier_card.c), from the record of
 * every accepted outbound message (/_emulator/messages). */
size_t e2e_line_card_count(e2e_stack *s, const char *group, const char *case_number);
/* True when message (a recorded outbound message object) is the card of some case; the case
 * number goes to ret_case. Thread-safe. */
bool e2e_line_is_card(const cJSON *message, char ret_case[E2E_CASE_MAX]);

/* The case number (ESS-dddd-dddddd) found in text, into ret_case; false when none. */
bool e2e_line_case_number_in(const char *text, char ret_case[E2E_CASE_MAX]);

/* ---- a citizen's report, by taps as a person would --------------------------------------------
 */

/* follow → category quick-reply item `category_index` (1..5: threat, confinement, sexual,
 * frenzy, gathering) → "share location" at (lat, lon), each step waiting for the bot's next
 * prompt, until the bot asks for the phone. */
void e2e_line_report_until_phone(e2e_stack *s, const char *citizen, int category_index, double lat,
                                 double lon);
/* Waits for the reporter's "submitted" answer and returns its case number in ret_case. */
void e2e_line_wait_case(e2e_stack *s, const char *citizen, char ret_case[E2E_CASE_MAX]);
/* The whole report (until_phone, the phone, wait_case). */
void e2e_line_report(e2e_stack *s, const char *citizen, int category_index, double lat, double lon,
                     const char *phone, char ret_case[E2E_CASE_MAX]);

/* ---- teams ---------------------------------------------------------------------------------- */

/* The way an operator and an officer enrol a group: `essctl team invite ARGS --json` gives a
 * code; a group with the officer is created, the bot joins, the officer types
 * "/ess bind CODE" there and the bot confirms. */
void e2e_team_by_invite(e2e_stack *s, const char *const *invite_args, const char *group_name,
                        const char *officer, char ret_group[E2E_ID_MAX]);
/* The other way: a group the bot is in, then `essctl team add --name NAME ARGS --group G`. */
void e2e_team_by_add(e2e_stack *s, const char *name, const char *const *add_args,
                     const char *officer, char ret_group[E2E_ID_MAX]);

#endif
