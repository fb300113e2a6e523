/* audit_redact: what of a message may be stored in audit_log, and in what form.
 *
 * The same rules apply to every payload whatever its stream (a dead letter carries another
 * stream's payload), on the parsed JSON tree; services/audit/README.md states them for
 * readers. In short:
 *   - LINE user ids and room ids become "h:" + hex(HMAC-SHA256(lookup key, "line.user" ‖ 0 ‖ id))
 *     (vault_lookup_hash), so a reporter's history can still be joined: members "userId",
 *     "roomId", each string of "userIds", "to" and "fallback_to" unless it is a group id
 *     (starts with 'C'), and any "U"/"R" + 32 hex digits found inside any string;
 *   - the text a person typed (member "text" of the event's top-level "message" object) and
 *     any member whose name contains "phone" are sealed (vault_seal, AES-256-GCM under
 *     ESS_DATA_KEY): the member NAME is replaced by NAME_sealed holding base64;
 *   - every other string, at any depth, is scrubbed of phone numbers (audit_scrub_text),
 *     except the values of identifier members assigned by LINE or by ESS (id, webhookEventId,
 *     replyToken, reply_token, quotedMessageId, quoteToken, markAsReadToken, packageId,
 *     stickerId, command_id, case_number, msg_id, event_id, retry_key);
 *   - numbers, booleans and member names are kept;
 *   - a payload that is not UTF-8 JSON is stored as {"unparsed":true,"length":N,
 *     "sealed":"<base64>","sealed_bytes":K} (its first K <= 64 KiB bytes, sealed).
 * Subjects: the source id of line.in.user.<id> and line.in.room.<id> is hashed, and any token
 * that looks like a LINE user or room id, or a phone number, too.
 *
 * Thread-safe (keys are read only); never logs. */
#ifndef ESS_AUDIT_REDACT_H
#define ESS_AUDIT_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"
#include "vault.h"

/* Purpose string of the keyed hash of a LINE user id (vault_lookup_hash). Other services that
 * keep a hashed user id (conversations.user_key, incidents.reporter_key_hash) must use the
 * same purpose for the audit log to join with them. */
#define AUDIT_USER_HASH_PURPOSE "line.user"
#define AUDIT_USER_HASH_TEXT (2 + 64 + 1) /* "h:" + 64 hex + NUL */
#define AUDIT_SEAL_TEXT_CONTEXT "audit.text"   /* sealed typed texts and phone members */
#define AUDIT_SEAL_RAW_CONTEXT "audit.raw"     /* sealed payloads that are not JSON */
#define AUDIT_PHONE_MASK "[phone]"
#define AUDIT_PAYLOAD_MAX (4 * 1024 * 1024)

/* "h:" + 64 hex digits of the keyed hash of a LINE user (or room) id. */
void audit_user_hash(const vault_keys *keys, const char *user_id,
                     char ret_hash[AUDIT_USER_HASH_TEXT]);

/* The subject as stored. out is always NUL-terminated (truncated to out_size). */
void audit_redact_subject(const vault_keys *keys, const char *subject, char *out,
                          size_t out_size);

/* The payload as stored: compact JSON text, valid UTF-8, without personal data in clear.
 * data need not be NUL-terminated; len <= AUDIT_PAYLOAD_MAX (else ST_LIMIT). *ret_json is
 * heap (caller frees), *ret_len its length. ST_NOMEM; ST_INTERNAL when sealing fails. */
st_code audit_redact_payload(const vault_keys *keys, const char *data, size_t len,
                             char **ret_json, size_t *ret_len, st_error *err);

/* Replaces phone-number-like runs in UTF-8 text by AUDIT_PHONE_MASK, and LINE user or room ids
 * by their keyed hash (keys NULL: by "h:?"). A phone run: an optional '+' (or full-width '＋')
 * and '(', then digits (ASCII, Thai ๐-๙ or full-width ０-９) with at most three separators
 * (space, no-break space, '-', '.', '(', ')', en dash, full-width hyphen) between two digits,
 * at least 9 digits in all — unless its only separator is a single '.' (a decimal number).
 * Kept as they are: case numbers (ESS-dddd-dddddd), ISO dates (dddd-dd-dd), group ids ('C' +
 * 32 hex digits). *ret_text is heap, NUL-terminated (caller frees). */
st_code audit_scrub_text(const vault_keys *keys, const char *text, size_t len, char **ret_text,
                         size_t *ret_len, st_error *err);

/* True when len bytes are well-formed UTF-8 (no overlongs, no surrogates, no NUL). */
bool audit_utf8_valid(const char *text, size_t len);

#endif
