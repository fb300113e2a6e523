/* ingress_signature: LINE's webhook signature.
 *
 * LINE signs every webhook: header x-line-signature = base64(HMAC-SHA256(channel secret, raw
 * body bytes)). The header name arrives in varying letter case, so it is matched without
 * regard to case. Verification compares in constant time (CRYPTO_memcmp) so that the time of
 * a rejection tells an attacker nothing about how much of a forged signature was right.
 *
 * Pure functions: no allocation, no logging, thread-safe. */
#ifndef ESS_INGRESS_SIGNATURE_H
#define ESS_INGRESS_SIGNATURE_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"

/* The header name as LINE documents it (any case is accepted on input). */
#define INGRESS_SIGNATURE_HEADER "x-line-signature"
/* base64 of a 32-byte digest: 44 characters, plus the terminating NUL. */
#define INGRESS_SIGNATURE_B64_SIZE 45

/* True when name (name_len bytes, not necessarily NUL-terminated) is x-line-signature in any
 * letter case. */
bool ingress_signature_header_matches(const char *name, size_t name_len);

/* Computes base64(HMAC-SHA256(secret, body)) into ret_signature (NUL-terminated, 44 chars).
 * secret and body are borrowed for the call; body may be NULL when body_len is 0.
 * ST_INVALID when the secret is empty, ST_INTERNAL when OpenSSL fails. */
st_code ingress_signature_compute(const char *secret, size_t secret_len, const void *body,
                                  size_t body_len, char ret_signature[INGRESS_SIGNATURE_B64_SIZE],
                                  st_error *err);

/* Verifies that signature (signature_len bytes as received, not necessarily NUL-terminated)
 * is the signature of body under secret. ST_OK on a match; ST_INVALID on a mismatch, a
 * malformed or missing signature (signature may be NULL) or an empty secret; ST_INTERNAL
 * when OpenSSL fails. The error text never contains the secret or the signature. */
st_code ingress_signature_verify(const char *secret, size_t secret_len, const void *body,
                                 size_t body_len, const char *signature, size_t signature_len,
                                 st_error *err);

#endif
