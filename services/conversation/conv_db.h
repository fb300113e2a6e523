/* conv_db: what the conversation's PostgreSQL modules share (conv_store.c, conv_team_store.c,
 * conv_escalation.c, conv_notify.c): bytea and base64 encodings, sealing with the vault, and
 * rows on the outbox.
 *
 * Domain events (ess.incident.*) carry no personal data and go to the outbox as they are; send
 * commands (line.out.*) name a LINE user or carry what a reporter wrote, so they go sealed
 * (outbox_add_sealed: the relay opens them just before publishing).
 *
 * Functions that touch the database block and use the caller's handle (one thread). */
#ifndef CONV_DB_H
#define CONV_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "db.h"
#include "status.h"
#include "vault.h"

/* Contexts of sealed values (vault_seal): each kind of value its own. */
#define CONV_CONTEXT_INCIDENT_PHONE "incident.phone"
#define CONV_CONTEXT_DRAFT_PHONE "conversation.phone"
#define CONV_CONTEXT_REPORTER_ID "reporter.id"
#define CONV_CONTEXT_INFO_TEXT "incident.info"

/* bytea as a text parameter: "\x" + hex. Heap (caller frees); NULL when out of memory. */
char *conv_db_bytea_param(const unsigned char *bytes, size_t len);
/* A bytea column in text form ("\x..." hex) into heap bytes (caller frees). ST_INVALID when
 * it is not that, ST_NOMEM. */
st_code conv_db_bytea_decode(const char *text, unsigned char **ret_bytes, size_t *ret_len);
/* Standard base64; heap (caller frees), NULL when out of memory. */
char *conv_db_base64(const unsigned char *bytes, size_t len);
st_code conv_db_base64_decode(const char *text, unsigned char **ret_bytes, size_t *ret_len);

/* Seals text under context into a bytea parameter / base64 text (heap, caller frees). */
st_code conv_db_seal_param(const vault_keys *keys, const char *context, const char *text,
                           char **ret_param, st_error *err);
st_code conv_db_seal_base64(const vault_keys *keys, const char *context, const char *text,
                            char **ret_text, st_error *err);
/* Opens a sealed bytea column (text form) into a heap string (caller wipes and frees with
 * conv_db_wipe_free). ST_INVALID when it does not open (another key, another context). */
st_code conv_db_open_column(const vault_keys *keys, const char *context, const char *column,
                            char **ret_plain, st_error *err);
void conv_db_wipe_free(char *text); /* accepts NULL */

/* The outbox, inside the caller's open transaction. *ret_added (may be NULL) false when the
 * msg-id was there already (a repeat). json is borrowed. */
st_code conv_db_add_event(db *d, const char *subject, const char *msg_id, const cJSON *json,
                          bool *ret_added, st_error *err);
/* A send command, sealed. */
st_code conv_db_add_command(db *d, const vault_keys *keys, const char *subject,
                            const char *command_id, const cJSON *json, bool *ret_added,
                            st_error *err);
/* A push command {"command_id": "push.<key>", "to": to, "notification_disabled": silent,
 * "messages": messages}; messages (an array of 1..5 LINE messages) is borrowed. ST_LIMIT when
 * the command id would be longer than 120. */
st_code conv_db_add_push(db *d, const vault_keys *keys, const char *key, const char *to,
                         bool silent, const cJSON *messages, bool *ret_added, st_error *err);

/* "%lld" of value into out. */
void conv_db_int_text(char *out, size_t size, int64_t value);
/* The first column of the first row as a number (0 when NULL or no row). */
int64_t conv_db_int_value(const db_result *result, int row, int col);

#endif
