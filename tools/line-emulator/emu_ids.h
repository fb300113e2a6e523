/* emu_ids: the identifiers LINE hands out, in LINE's shapes.
 *
 *   webhookEventId   ULID: 26 Crockford base32 characters, time-ordered, monotonic within a
 *                    millisecond (the random part is incremented)
 *   userId/groupId   "U" / "C" / "R" + 32 lower-case hex digits
 *   x-line-request-id, retry keys: UUID text (8-4-4-4-12 hex)
 *   message ids      decimal strings (18-19 digits), increasing
 *   reply tokens     32 lower-case hex digits; quote tokens: 43 base64url characters
 *
 * Randomness comes from OpenSSL's RAND_bytes. Thread-safe. */
#ifndef EMU_IDS_H
#define EMU_IDS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define EMU_ULID_LEN 26
#define EMU_LINE_ID_LEN 33 /* "U" + 32 hex */
#define EMU_UUID_LEN 36
#define EMU_REPLY_TOKEN_LEN 32
#define EMU_QUOTE_TOKEN_LEN 43
#define EMU_MESSAGE_ID_MAX 24

/* Monotonic ULID generator; embed by value, emu_ulid_init before use, emu_ulid_done after. */
typedef struct emu_ulid_gen {
    pthread_mutex_t lock;
    int64_t last_ms;
    unsigned char last_random[10];
    bool started;
} emu_ulid_gen;

void emu_ulid_init(emu_ulid_gen *gen);
void emu_ulid_done(emu_ulid_gen *gen);

/* Writes a NUL-terminated ULID for time now_ms into out (EMU_ULID_LEN + 1 bytes). Within one
 * millisecond (or if the clock steps back) the result is the previous one plus one, so
 * successive ids sort in generation order. ST_LIMIT if the 80-bit random part would wrap
 * (practically never). */
st_code emu_ulid_next(emu_ulid_gen *gen, int64_t now_ms, char out[EMU_ULID_LEN + 1]);

/* True when text (NUL-terminated) has ULID shape: 26 Crockford characters, first <= '7'. */
bool emu_ulid_valid(const char *text);

/* Milliseconds encoded in a valid ULID. */
int64_t emu_ulid_time_ms(const char *ulid);

/* prefix + 32 random hex digits: 'U' user, 'C' group, 'R' room. out: EMU_LINE_ID_LEN + 1. */
st_code emu_line_id_new(char prefix, char out[EMU_LINE_ID_LEN + 1]);

/* True when text is prefix + exactly 32 lower-case hex digits (prefix 0 = any of U, C, R). */
bool emu_line_id_valid(const char *text, char prefix);

/* Random UUID version 4, lower case. out: EMU_UUID_LEN + 1. */
st_code emu_uuid_new(char out[EMU_UUID_LEN + 1]);

/* True when text is a UUID in hexadecimal 8-4-4-4-12 form (either case, any version). */
bool emu_uuid_valid(const char *text, size_t len);

/* 32 random lower-case hex digits. out: EMU_REPLY_TOKEN_LEN + 1. */
st_code emu_reply_token_new(char out[EMU_REPLY_TOKEN_LEN + 1]);

/* 43 random base64url characters. out: EMU_QUOTE_TOKEN_LEN + 1. */
st_code emu_quote_token_new(char out[EMU_QUOTE_TOKEN_LEN + 1]);

/* Increasing decimal message id from now_ms and a process-wide counter.
 * out: EMU_MESSAGE_ID_MAX bytes. */
void emu_message_id_new(int64_t now_ms, char out[EMU_MESSAGE_ID_MAX]);

/* Wall-clock milliseconds since the epoch (what LINE puts in `timestamp`). */
int64_t emu_wall_ms(void);

#endif
