#include "ingress_signature.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define DIGEST_SIZE 32
#define SIGNATURE_B64_LEN (INGRESS_SIGNATURE_B64_SIZE - 1)

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool ingress_signature_header_matches(const char *name, size_t name_len)
{
    static const char expected[] = INGRESS_SIGNATURE_HEADER;
    if (name == NULL || name_len != sizeof(expected) - 1)
        return false;
    for (size_t i = 0; i < name_len; i++)
        if (ascii_lower(name[i]) != expected[i])
            return false;
    return true;
}

st_code ingress_signature_compute(const char *secret, size_t secret_len, const void *body,
                                  size_t body_len, char ret_signature[INGRESS_SIGNATURE_B64_SIZE],
                                  st_error *err)
{
    static const unsigned char empty_body[1];
    unsigned char digest[DIGEST_SIZE];
    unsigned int digest_len = 0;
    char encoded[INGRESS_SIGNATURE_B64_SIZE];

    if (secret == NULL || secret_len == 0)
        return st_fail(err, ST_INVALID, "channel secret is empty");
    if (secret_len > (size_t)0x7fffffff)
        return st_fail(err, ST_LIMIT, "channel secret is too long");
    if (body == NULL)
        body = empty_body; /* HMAC of zero bytes: OpenSSL wants a non-NULL pointer */
    if (HMAC(EVP_sha256(), secret, (int)secret_len, body, body_len, digest, &digest_len) == NULL ||
        digest_len != DIGEST_SIZE)
        return st_fail(err, ST_INTERNAL, "HMAC-SHA256 failed");
    /* EVP_EncodeBlock writes 4 * ceil(32 / 3) = 44 characters and a NUL. */
    if (EVP_EncodeBlock((unsigned char *)encoded, digest, DIGEST_SIZE) != SIGNATURE_B64_LEN)
        return st_fail(err, ST_INTERNAL, "base64 encoding failed");
    memcpy(ret_signature, encoded, sizeof(encoded));
    return ST_OK;
}

st_code ingress_signature_verify(const char *secret, size_t secret_len, const void *body,
                                 size_t body_len, const char *signature, size_t signature_len,
                                 st_error *err)
{
    char expected[INGRESS_SIGNATURE_B64_SIZE];
    st_code code = ingress_signature_compute(secret, secret_len, body, body_len, expected, err);
    if (code != ST_OK)
        return code;
    if (signature == NULL || signature_len == 0)
        return st_fail(err, ST_INVALID, "signature missing");
    /* A wrong length cannot match; revealing the length leaks nothing about the secret. */
    if (signature_len != SIGNATURE_B64_LEN)
        return st_fail(err, ST_INVALID, "signature has the wrong length");
    if (CRYPTO_memcmp(expected, signature, SIGNATURE_B64_LEN) != 0)
        return st_fail(err, ST_INVALID, "signature mismatch");
    return ST_OK;
}
