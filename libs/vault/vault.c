#include "vault.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define VAULT_VERSION 1
#define NONCE_BYTES 12
#define TAG_BYTES 16

static void hmac_sha256(const unsigned char *key, size_t key_len, const unsigned char *data,
                        size_t len, unsigned char out[32])
{
    unsigned int out_len = 0;
    HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &out_len);
}

void vault_keys_derive(const unsigned char master[VAULT_KEY_BYTES], vault_keys *ret_keys)
{
    static const char encrypt_label[] = "ess.vault.encrypt.v1";
    static const char lookup_label[] = "ess.vault.lookup.v1";
    hmac_sha256(master, VAULT_KEY_BYTES, (const unsigned char *)encrypt_label,
                sizeof(encrypt_label) - 1, ret_keys->encrypt);
    hmac_sha256(master, VAULT_KEY_BYTES, (const unsigned char *)lookup_label,
                sizeof(lookup_label) - 1, ret_keys->lookup);
}

st_code vault_keys_from_base64(const char *text, vault_keys *ret_keys, st_error *err)
{
    if (text == NULL)
        return st_fail(err, ST_INVALID, "data key missing");
    size_t len = strlen(text);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        len--;
    unsigned char decoded[64];
    if (len != 44 || text[len - 1] != '=' || text[len - 2] == '=')
        return st_fail(err, ST_INVALID, "data key is not 32 bytes of base64");
    int n = EVP_DecodeBlock(decoded, (const unsigned char *)text, (int)len);
    if (n != 33) {
        OPENSSL_cleanse(decoded, sizeof(decoded));
        return st_fail(err, ST_INVALID, "data key is not 32 bytes of base64");
    }
    vault_keys_derive(decoded, ret_keys);
    OPENSSL_cleanse(decoded, sizeof(decoded));
    return ST_OK;
}

void vault_keys_wipe(vault_keys *keys)
{
    if (keys != NULL)
        OPENSSL_cleanse(keys, sizeof(*keys));
}

st_code vault_random(void *out, size_t len, st_error *err)
{
    if (RAND_bytes(out, (int)len) != 1)
        return st_fail(err, ST_INTERNAL, "no randomness available");
    return ST_OK;
}

st_code vault_seal(const vault_keys *keys, const char *context, const void *plain, size_t len,
                   unsigned char **ret_sealed, size_t *ret_len, st_error *err)
{
    if (len > VAULT_PLAIN_MAX)
        return st_fail(err, ST_LIMIT, "value to seal is larger than %d bytes", VAULT_PLAIN_MAX);
    st_code status = ST_INTERNAL;
    size_t total = len + VAULT_SEAL_OVERHEAD;
    unsigned char *sealed = malloc(total);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int out_len = 0;
    if (sealed == NULL || ctx == NULL) {
        status = st_fail(err, ST_NOMEM, "out of memory sealing a value");
        goto cleanup;
    }
    sealed[0] = VAULT_VERSION;
    unsigned char *nonce = sealed + 1;
    unsigned char *cipher = nonce + NONCE_BYTES;
    unsigned char *tag = cipher + len;
    if ((status = vault_random(nonce, NONCE_BYTES, err)) != ST_OK)
        goto cleanup;
    const char *aad = context != NULL ? context : "";
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, keys->encrypt, nonce) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &out_len, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
        (len > 0 &&
         EVP_EncryptUpdate(ctx, cipher, &out_len, plain, (int)len) != 1) ||
        EVP_EncryptFinal_ex(ctx, cipher + len, &out_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_BYTES, tag) != 1) {
        status = st_fail(err, ST_INTERNAL, "AES-256-GCM encryption failed");
        goto cleanup;
    }
    *ret_sealed = sealed;
    *ret_len = total;
    sealed = NULL;
    status = ST_OK;
cleanup:
    EVP_CIPHER_CTX_free(ctx);
    free(sealed);
    return status;
}

st_code vault_open(const vault_keys *keys, const char *context, const unsigned char *sealed,
                   size_t len, char **ret_plain, size_t *ret_len, st_error *err)
{
    if (sealed == NULL || len < VAULT_SEAL_OVERHEAD || sealed[0] != VAULT_VERSION)
        return st_fail(err, ST_INVALID, "sealed value is malformed");
    size_t plain_len = len - VAULT_SEAL_OVERHEAD;
    st_code status = ST_INTERNAL;
    char *plain = malloc(plain_len + 1);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int out_len = 0;
    if (plain == NULL || ctx == NULL) {
        status = st_fail(err, ST_NOMEM, "out of memory opening a value");
        goto cleanup;
    }
    const unsigned char *nonce = sealed + 1;
    const unsigned char *cipher = nonce + NONCE_BYTES;
    unsigned char tag[TAG_BYTES];
    memcpy(tag, cipher + plain_len, TAG_BYTES);
    const char *aad = context != NULL ? context : "";
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, keys->encrypt, nonce) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &out_len, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
        (plain_len > 0 &&
         EVP_DecryptUpdate(ctx, (unsigned char *)plain, &out_len, cipher, (int)plain_len) != 1) ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_BYTES, tag) != 1 ||
        EVP_DecryptFinal_ex(ctx, (unsigned char *)plain + plain_len, &out_len) != 1) {
        OPENSSL_cleanse(plain, plain_len);
        status = st_fail(err, ST_INVALID,
                         "sealed value does not open (tampered, other key or other context)");
        goto cleanup;
    }
    plain[plain_len] = '\0';
    *ret_plain = plain;
    *ret_len = plain_len;
    plain = NULL;
    status = ST_OK;
cleanup:
    EVP_CIPHER_CTX_free(ctx);
    free(plain);
    return status;
}

void vault_lookup_hash(const vault_keys *keys, const char *purpose, const char *value,
                       unsigned char ret_hash[VAULT_HASH_BYTES])
{
    unsigned char input[1024];
    size_t purpose_len = strnlen(purpose, 128);
    size_t value_len = strnlen(value, sizeof(input) - purpose_len - 1);
    memcpy(input, purpose, purpose_len);
    input[purpose_len] = 0;
    memcpy(input + purpose_len + 1, value, value_len);
    hmac_sha256(keys->lookup, VAULT_KEY_BYTES, input, purpose_len + 1 + value_len, ret_hash);
    OPENSSL_cleanse(input, sizeof(input));
}

void vault_pseudonym_key_derive(const void *secret, size_t secret_len, const char *purpose,
                                vault_pseudonym_key *ret_key)
{
    static const char label[] = "ess pseudonym";
    unsigned char input[sizeof(label) + 128];
    size_t purpose_len = strnlen(purpose, 128);
    memcpy(input, label, sizeof(label)); /* the label's NUL separates it from the purpose */
    memcpy(input + sizeof(label), purpose, purpose_len);
    hmac_sha256(secret, secret_len, input, sizeof(label) + purpose_len, ret_key->bytes);
    OPENSSL_cleanse(input, sizeof(input));
}

void vault_pseudonym(const vault_pseudonym_key *key, const char *value,
                     char ret_hex[VAULT_PSEUDONYM_HEX + 1])
{
    unsigned char mac[VAULT_HASH_BYTES];
    hmac_sha256(key->bytes, sizeof(key->bytes), (const unsigned char *)value,
                strnlen(value, 4096), mac);
    vault_hex(mac, VAULT_PSEUDONYM_HEX / 2, ret_hex);
}

void vault_hex(const unsigned char *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

int vault_hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

st_code vault_unhex(const char *text, unsigned char **ret_bytes, size_t *ret_len)
{
    if (text == NULL)
        return ST_INVALID;
    if (text[0] == '\\' && text[1] == 'x')
        text += 2;
    size_t digits = strlen(text);
    if (digits % 2 != 0)
        return ST_INVALID;
    unsigned char *bytes = malloc(digits / 2 + 1);
    if (bytes == NULL)
        return ST_NOMEM;
    for (size_t i = 0; i < digits / 2; i++) {
        int high = vault_hex_digit(text[2 * i]), low = vault_hex_digit(text[2 * i + 1]);
        if (high < 0 || low < 0) {
            free(bytes);
            return ST_INVALID;
        }
        bytes[i] = (unsigned char)(high << 4 | low);
    }
    *ret_bytes = bytes;
    *ret_len = digits / 2;
    return ST_OK;
}

st_code vault_open_hex(const vault_keys *keys, const char *context, const char *hex_text,
                       char **ret_plain, size_t *ret_len, st_error *err)
{
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    st_code status = vault_unhex(hex_text, &sealed, &sealed_len);
    if (status != ST_OK)
        return st_fail(err, status, status == ST_NOMEM ? "out of memory" : "sealed value is not hex");
    status = vault_open(keys, context, sealed, sealed_len, ret_plain, ret_len, err);
    free(sealed);
    return status;
}

void vault_uuid_from_name(const char *namespace_label, const char *name,
                          char ret_uuid[VAULT_UUID_TEXT])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha1(), NULL);
    EVP_DigestUpdate(md, namespace_label, strlen(namespace_label));
    EVP_DigestUpdate(md, "\0", 1);
    EVP_DigestUpdate(md, name, strlen(name));
    EVP_DigestFinal_ex(md, digest, &digest_len);
    EVP_MD_CTX_free(md);
    digest[6] = (unsigned char)((digest[6] & 0x0F) | 0x50); /* version 5 */
    digest[8] = (unsigned char)((digest[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    char hex[33];
    vault_hex(digest, 16, hex);
    snprintf(ret_uuid, VAULT_UUID_TEXT, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
             hex + 16, hex + 20);
}
