/* vault: protection of personal data at rest (phone numbers, LINE user ids).
 *
 * - vault_seal / vault_open: AES-256-GCM with a random 96-bit nonce per value and a context
 *   string as associated data (e.g. "incident.phone"), so a sealed value moved to another
 *   column does not open. Layout: version byte (1) || nonce (12) || ciphertext || tag (16).
 * - vault_lookup_hash: HMAC-SHA256 under a key derived for look-ups, for finding a row by a
 *   personal value without storing the value ("the reporter's keyed hash").
 * - Keys: ESS_DATA_KEY (32 bytes, base64) is the master; encryption and look-up keys are
 *   derived from it (HMAC-SHA256(master, label)), so one key never serves two purposes.
 * - vault_uuid_from_name: a deterministic RFC 4122 version-5-shaped UUID from a name (the
 *   notifier's X-Line-Retry-Key from a command id).
 *
 * All functions are thread-safe and never log. Errors never contain the values. */
#ifndef ESS_VAULT_H
#define ESS_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define VAULT_KEY_BYTES 32
#define VAULT_HASH_BYTES 32
#define VAULT_SEAL_OVERHEAD (1 + 12 + 16)
#define VAULT_PLAIN_MAX (64 * 1024)
#define VAULT_UUID_TEXT 37 /* 36 characters + NUL */

typedef struct vault_keys {
    unsigned char encrypt[VAULT_KEY_BYTES];
    unsigned char lookup[VAULT_KEY_BYTES];
} vault_keys;

/* Derives the working keys from the 32-byte master key. */
void vault_keys_derive(const unsigned char master[VAULT_KEY_BYTES], vault_keys *ret_keys);
/* Same from base64 text (ESS_DATA_KEY); ST_INVALID when it is not 32 bytes of base64. */
st_code vault_keys_from_base64(const char *text, vault_keys *ret_keys, st_error *err);
/* Overwrites keys with zeros. */
void vault_keys_wipe(vault_keys *keys);

/* Encrypts len bytes (<= VAULT_PLAIN_MAX). *ret_sealed is heap (caller frees), of
 * len + VAULT_SEAL_OVERHEAD bytes. context is borrowed, NUL-terminated, may be "". */
st_code vault_seal(const vault_keys *keys, const char *context, const void *plain, size_t len,
                   unsigned char **ret_sealed, size_t *ret_len, st_error *err);
/* Decrypts; ST_INVALID when the value was tampered with, sealed under another key or
 * another context. *ret_plain is heap, NUL-terminated (caller frees; wipe it when done). */
st_code vault_open(const vault_keys *keys, const char *context, const unsigned char *sealed,
                   size_t len, char **ret_plain, size_t *ret_len, st_error *err);

/* HMAC-SHA256(lookup key, purpose || 0x00 || value): equal inputs give equal hashes. */
void vault_lookup_hash(const vault_keys *keys, const char *purpose, const char *value,
                       unsigned char ret_hash[VAULT_HASH_BYTES]);

/* Deterministic UUID text ("xxxxxxxx-xxxx-5xxx-yxxx-xxxxxxxxxxxx", lower case) from
 * namespace_label and name; equal inputs give equal UUIDs. */
void vault_uuid_from_name(const char *namespace_label, const char *name,
                          char ret_uuid[VAULT_UUID_TEXT]);

/* Pseudonyms: a stable, keyed stand-in for an identifier where something outside PostgreSQL
 * stores it unencrypted (nats-server 2.9 keeps the subjects of a stream in its per-subject
 * index in clear, even with the store's cipher on). The key comes from a secret the
 * producing services share (the LINE channel secret for line.in.* subjects), derived per
 * purpose, so the same secret never serves two uses. */
#define VAULT_PSEUDONYM_HEX 32 /* 128 bits as lower-case hex */
/* The purposes in use (one key each). */
#define VAULT_PURPOSE_LINE_IN_SUBJECT "line.in subject" /* line.in.<kind>.<pseudonym> */
typedef struct vault_pseudonym_key {
    unsigned char bytes[VAULT_KEY_BYTES];
} vault_pseudonym_key;

/* key = HMAC-SHA256(secret, "ess pseudonym" || 0x00 || purpose). secret is borrowed. */
void vault_pseudonym_key_derive(const void *secret, size_t secret_len, const char *purpose,
                                vault_pseudonym_key *ret_key);
/* The first 128 bits of HMAC-SHA256(key, value), as VAULT_PSEUDONYM_HEX hex digits + NUL. */
void vault_pseudonym(const vault_pseudonym_key *key, const char *value,
                     char ret_hex[VAULT_PSEUDONYM_HEX + 1]);

/* Lower-case hex of bytes into out (2*len+1 bytes). */
void vault_hex(const unsigned char *bytes, size_t len, char *out);

/* The value of one hex digit (0-9, a-f, A-F), -1 for any other character. */
int vault_hex_digit(char c);

/* Decodes hex text, upper or lower case, with or without the "\x" prefix PostgreSQL prints
 * before a bytea in text form, into a new buffer: *ret_bytes is heap (caller frees; one
 * spare byte, so an empty value is a valid pointer), *ret_len bytes. ST_INVALID for NULL,
 * an odd number of digits or a character that is not one; ST_NOMEM. */
st_code vault_unhex(const char *text, unsigned char **ret_bytes, size_t *ret_len);

/* vault_open of a sealed value given as hex text (vault_unhex's forms), as a bytea column
 * comes back from libpq. Ownership and errors as vault_open's; ST_INVALID (message without
 * the value) when the text is not hex. */
st_code vault_open_hex(const vault_keys *keys, const char *context, const char *hex_text,
                       char **ret_plain, size_t *ret_len, st_error *err);

/* Cryptographically random bytes. */
st_code vault_random(void *out, size_t len, st_error *err);

#endif
