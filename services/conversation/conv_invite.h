/* conv_invite: the one-time codes that bind a LINE group to a team (issue 7).
 *
 * `essctl team invite` makes a code from 8 random bytes: 12 characters of Crockford's base32
 * (0-9 A-Z without I L O U: nothing to confuse on a phone keyboard), 60 bits, shown as
 * XXXX-XXXX-XXXX. An officer types `/ess bind XXXX-XXXX-XXXX` in the group; the code is
 * normalised (case, spaces and dashes ignored, O read as 0, I and L as 1) and hashed with
 * SHA-256, and only that hash is stored (team_invites.code_hash, migration 0006).
 *
 * Pure, thread-safe. */
#ifndef CONV_INVITE_H
#define CONV_INVITE_H

#include <stdbool.h>
#include <stddef.h>

#define CONV_INVITE_CHARS 12
#define CONV_INVITE_RANDOM_BYTES 8
#define CONV_INVITE_TEXT_MAX (CONV_INVITE_CHARS + 3) /* XXXX-XXXX-XXXX + NUL */
#define CONV_INVITE_HASH_BYTES 32

/* The display form of a code made from random bytes (the first 60 bits are used). */
void conv_invite_format(const unsigned char random[CONV_INVITE_RANDOM_BYTES],
                        char ret_code[CONV_INVITE_TEXT_MAX]);

/* The canonical 12 characters of what a person typed (at most 64 bytes are looked at);
 * false when it cannot be a code. ret_canonical holds CONV_INVITE_CHARS + NUL. */
bool conv_invite_normalise(const char *typed, char ret_canonical[CONV_INVITE_CHARS + 1]);

/* SHA-256 of the canonical form. */
void conv_invite_hash(const char canonical[CONV_INVITE_CHARS + 1],
                      unsigned char ret_hash[CONV_INVITE_HASH_BYTES]);

#endif
