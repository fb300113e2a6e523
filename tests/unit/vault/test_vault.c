#include "testkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "vault.h"

static bool contains(const unsigned char *hay, size_t hay_len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= hay_len; i++)
        if (memcmp(hay + i, needle, n) == 0)
            return true;
    return false;
}

static const char key_a[] = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
static const char key_b[] = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

ESS_TEST(seal_then_open_gives_the_value_back)
{
    (void)state;
    vault_keys keys;
    assert_int_equal(vault_keys_from_base64(key_a, &keys, NULL), ST_OK);
    unsigned char *sealed = NULL, *again = NULL;
    size_t sealed_len = 0, again_len = 0;
    assert_int_equal(vault_seal(&keys, "incident.phone", "0812345678", 10, &sealed, &sealed_len, NULL), ST_OK);
    assert_int_equal(sealed_len, 10 + VAULT_SEAL_OVERHEAD);
    assert_false(contains(sealed, sealed_len, "0812345678"));
    /* A fresh nonce each time: the same value never seals the same way twice. */
    assert_int_equal(vault_seal(&keys, "incident.phone", "0812345678", 10, &again, &again_len, NULL), ST_OK);
    assert_memory_not_equal(sealed, again, sealed_len);
    char *plain = NULL;
    size_t plain_len = 0;
    assert_int_equal(vault_open(&keys, "incident.phone", sealed, sealed_len, &plain, &plain_len, NULL), ST_OK);
    assert_int_equal(plain_len, 10);
    assert_string_equal(plain, "0812345678");
    free(plain);
    free(sealed);
    free(again);
}

ESS_TEST(tampering_other_key_or_context_do_not_open)
{
    (void)state;
    vault_keys keys, other;
    assert_int_equal(vault_keys_from_base64(key_a, &keys, NULL), ST_OK);
    assert_int_equal(vault_keys_from_base64(key_b, &other, NULL), ST_OK);
    unsigned char *sealed = NULL;
    size_t len = 0;
    char *plain = NULL;
    size_t plain_len = 0;
    st_error err = {0};
    assert_int_equal(vault_seal(&keys, "incident.phone", "0812345678", 10, &sealed, &len, NULL), ST_OK);
    assert_int_equal(vault_open(&other, "incident.phone", sealed, len, &plain, &plain_len, &err), ST_INVALID);
    assert_null(strstr(err.message, "0812345678"));
    assert_int_equal(vault_open(&keys, "reporter.id", sealed, len, &plain, &plain_len, NULL), ST_INVALID);
    for (size_t i = 0; i < len; i++) {
        sealed[i] ^= 0x01;
        assert_int_equal(vault_open(&keys, "incident.phone", sealed, len, &plain, &plain_len, NULL), ST_INVALID);
        sealed[i] ^= 0x01;
    }
    assert_int_equal(vault_open(&keys, "incident.phone", sealed, 5, &plain, &plain_len, NULL), ST_INVALID);
    free(sealed);
}

ESS_TEST(keys_must_be_32_bytes_of_base64)
{
    (void)state;
    vault_keys keys;
    assert_int_equal(vault_keys_from_base64("c2hvcnQ=", &keys, NULL), ST_INVALID);
    assert_int_equal(vault_keys_from_base64("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!=", &keys, NULL), ST_INVALID);
    assert_int_equal(vault_keys_from_base64(NULL, &keys, NULL), ST_INVALID);
    char with_newline[64];
    snprintf(with_newline, sizeof(with_newline), "%s\n", key_a);
    assert_int_equal(vault_keys_from_base64(with_newline, &keys, NULL), ST_OK);
    /* Encryption and look-up keys differ. */
    assert_memory_not_equal(keys.encrypt, keys.lookup, VAULT_KEY_BYTES);
    vault_keys_wipe(&keys);
    unsigned char zero[VAULT_KEY_BYTES] = {0};
    assert_memory_equal(keys.encrypt, zero, VAULT_KEY_BYTES);
}

ESS_TEST(lookup_hash_is_stable_and_keyed)
{
    (void)state;
    vault_keys keys, other;
    assert_int_equal(vault_keys_from_base64(key_a, &keys, NULL), ST_OK);
    assert_int_equal(vault_keys_from_base64(key_b, &other, NULL), ST_OK);
    unsigned char h1[VAULT_HASH_BYTES], h2[VAULT_HASH_BYTES], h3[VAULT_HASH_BYTES], h4[VAULT_HASH_BYTES];
    vault_lookup_hash(&keys, "reporter", "U4af4980629a0b1c2d3e4f5a6b7c8d9e0", h1);
    vault_lookup_hash(&keys, "reporter", "U4af4980629a0b1c2d3e4f5a6b7c8d9e0", h2);
    vault_lookup_hash(&other, "reporter", "U4af4980629a0b1c2d3e4f5a6b7c8d9e0", h3);
    vault_lookup_hash(&keys, "group", "U4af4980629a0b1c2d3e4f5a6b7c8d9e0", h4);
    assert_memory_equal(h1, h2, VAULT_HASH_BYTES);
    assert_memory_not_equal(h1, h3, VAULT_HASH_BYTES);
    assert_memory_not_equal(h1, h4, VAULT_HASH_BYTES);
}

ESS_TEST(uuid_from_name_is_deterministic_version_5)
{
    (void)state;
    char a[VAULT_UUID_TEXT], b[VAULT_UUID_TEXT], c[VAULT_UUID_TEXT];
    vault_uuid_from_name("ess.retry-key", "cmd-1", a);
    vault_uuid_from_name("ess.retry-key", "cmd-1", b);
    vault_uuid_from_name("ess.retry-key", "cmd-2", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), 36);
    assert_int_equal(a[8], '-');
    assert_int_equal(a[13], '-');
    assert_int_equal(a[14], '5');
    assert_true(strchr("89ab", a[19]) != NULL);
    for (size_t i = 0; i < 36; i++)
        assert_true(a[i] == '-' || strchr("0123456789abcdef", a[i]) != NULL);
}

ESS_TEST(unhex_reads_bytea_text_and_bare_hex_and_refuses_the_rest)
{
    unsigned char *bytes = NULL;
    size_t len = 0;
    static const unsigned char expected[] = {0x00, 0x9f, 0xa0, 0xff};
    const char *forms[] = {"\\x009fa0ff", "009FA0FF", "\\x009Fa0fF"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        assert_int_equal(vault_unhex(forms[i], &bytes, &len), ST_OK);
        assert_int_equal(len, sizeof(expected));
        assert_memory_equal(bytes, expected, sizeof(expected));
        free(bytes);
        bytes = NULL;
    }
    assert_int_equal(vault_unhex("\\x", &bytes, &len), ST_OK);
    assert_int_equal(len, 0);
    free(bytes);
    const char *bad[] = {"\\x0", "abc", "0g", "\\x00 1", "x00", "\\X00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bytes = NULL;
        assert_int_equal(vault_unhex(bad[i], &bytes, &len), ST_INVALID);
        assert_null(bytes);
    }
    assert_int_equal(vault_unhex(NULL, &bytes, &len), ST_INVALID);
}

ESS_TEST(open_hex_opens_what_seal_made_as_postgres_prints_it)
{
    vault_keys keys;
    assert_int_equal(vault_keys_from_base64(key_a, &keys, NULL), ST_OK);
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    assert_int_equal(vault_seal(&keys, "incident.phone", "0812345678", 10, &sealed, &sealed_len,
                                NULL),
                     ST_OK);
    char *text = malloc(2 + 2 * sealed_len + 1);
    assert_non_null(text);
    text[0] = '\\';
    text[1] = 'x';
    vault_hex(sealed, sealed_len, text + 2);
    char *plain = NULL;
    size_t plain_len = 0;
    assert_int_equal(vault_open_hex(&keys, "incident.phone", text, &plain, &plain_len, NULL),
                     ST_OK);
    assert_string_equal(plain, "0812345678");
    free(plain);
    plain = NULL;
    assert_int_equal(vault_open_hex(&keys, "incident.phone", text + 2, &plain, &plain_len, NULL),
                     ST_OK);
    assert_string_equal(plain, "0812345678");
    free(plain);
    plain = NULL;
    st_error err = {0};
    assert_int_equal(vault_open_hex(&keys, "other.context", text, &plain, &plain_len, &err),
                     ST_INVALID);
    text[5] = 'z';
    assert_int_equal(vault_open_hex(&keys, "incident.phone", text, &plain, &plain_len, &err),
                     ST_INVALID);
    assert_null(strstr(err.message, text + 2));
    assert_null(plain);
    free(text);
    free(sealed);
}

ESS_TEST(pseudonym_is_the_keyed_hmac_of_its_purpose)
{
    static const char secret[] = "channel-secret";
    vault_pseudonym_key key, other_purpose, other_secret;
    vault_pseudonym_key_derive(secret, strlen(secret), "line.in subject", &key);
    vault_pseudonym_key_derive(secret, strlen(secret), "something else", &other_purpose);
    vault_pseudonym_key_derive("another", 7, "line.in subject", &other_secret);

    /* The definition, computed here with OpenSSL directly. */
    static const char derivation[] = "ess pseudonym\0line.in subject";
    unsigned char expected_key[32], mac[32];
    unsigned int n = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)derivation,
         sizeof(derivation) - 1, expected_key, &n);
    assert_memory_equal(key.bytes, expected_key, 32);
    const char *user = "U0123456789abcdef0123456789abcdef";
    HMAC(EVP_sha256(), expected_key, 32, (const unsigned char *)user, strlen(user), mac, &n);
    char expected[VAULT_PSEUDONYM_HEX + 1];
    vault_hex(mac, VAULT_PSEUDONYM_HEX / 2, expected);

    char got[VAULT_PSEUDONYM_HEX + 1], again[VAULT_PSEUDONYM_HEX + 1];
    vault_pseudonym(&key, user, got);
    assert_string_equal(got, expected);
    assert_int_equal(strlen(got), VAULT_PSEUDONYM_HEX);
    vault_pseudonym(&key, user, again);
    assert_string_equal(got, again);
    assert_null(strstr(got, user + 1));
    vault_pseudonym(&other_purpose, user, again);
    assert_string_not_equal(got, again);
    vault_pseudonym(&other_secret, user, again);
    assert_string_not_equal(got, again);
    vault_pseudonym(&key, "U0123456789abcdef0123456789abcdee", again);
    assert_string_not_equal(got, again);
}

ESS_TEST_MAIN(NULL, NULL)
