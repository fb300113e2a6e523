/* audit_record: canonical bytes, hash and chain check (see audit_record.h for the format). */
#include "audit_record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "vault.h"

#define DECIMAL_MAX 24

/* The eight fields of the canonical record, as (pointer, length) pairs. Numbers and the
 * digest are formatted into the caller's buffers. */
typedef struct canonical_fields {
    const char *value[8];
    size_t len[8];
    char seq_text[DECIMAL_MAX];
    char stream_seq_text[DECIMAL_MAX];
    char digest_hex[AUDIT_HASH_HEX];
} canonical_fields;

static st_code collect(const audit_record *r, canonical_fields *f, st_error *err)
{
    if (r == NULL || r->seq < 1 || r->stream == NULL || r->subject == NULL ||
        r->msg_id == NULL || (r->payload == NULL && r->payload_len > 0))
        return st_fail(err, ST_INVALID, "audit record: missing field or seq < 1");
    snprintf(f->seq_text, sizeof(f->seq_text), "%" PRId64, r->seq);
    snprintf(f->stream_seq_text, sizeof(f->stream_seq_text), "%" PRIu64, r->stream_seq);
    audit_hash_hex(r->digest, f->digest_hex);
    const char *values[8] = {f->seq_text, r->at,     r->stream,      f->stream_seq_text,
                             r->subject,  r->msg_id, f->digest_hex, r->payload != NULL ? r->payload : ""};
    for (int i = 0; i < 8; i++) {
        f->value[i] = values[i];
        f->len[i] = i == 7 ? r->payload_len : strnlen(values[i], 1 << 20);
    }
    return ST_OK;
}

st_code audit_canonical(const audit_record *r, char **ret_bytes, size_t *ret_len, st_error *err)
{
    canonical_fields f;
    st_code code = collect(r, &f, err);
    if (code != ST_OK)
        return code;
    size_t total = sizeof(AUDIT_CANONICAL_HEADER) - 1;
    for (int i = 0; i < 8; i++)
        total += DECIMAL_MAX + 2 + f.len[i];
    char *out = malloc(total + 1);
    if (out == NULL)
        return st_fail(err, ST_NOMEM, "audit record: out of memory");
    size_t used = sizeof(AUDIT_CANONICAL_HEADER) - 1;
    memcpy(out, AUDIT_CANONICAL_HEADER, used);
    for (int i = 0; i < 8; i++) {
        int n = snprintf(out + used, DECIMAL_MAX + 1, "%zu:", f.len[i]);
        used += (size_t)n;
        memcpy(out + used, f.value[i], f.len[i]);
        used += f.len[i];
        out[used++] = '\n';
    }
    out[used] = '\0';
    *ret_bytes = out;
    *ret_len = used;
    return ST_OK;
}

st_code audit_record_hash(const audit_record *r, unsigned char ret_hash[AUDIT_HASH_BYTES],
                          st_error *err)
{
    canonical_fields f;
    st_code code = collect(r, &f, err);
    if (code != ST_OK)
        return code;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return st_fail(err, ST_NOMEM, "audit record: out of memory");
    int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, r->prev_hash, AUDIT_HASH_BYTES) == 1 &&
             EVP_DigestUpdate(ctx, AUDIT_CANONICAL_HEADER,
                              sizeof(AUDIT_CANONICAL_HEADER) - 1) == 1;
    for (int i = 0; ok && i < 8; i++) {
        char prefix[DECIMAL_MAX + 2];
        int n = snprintf(prefix, sizeof(prefix), "%zu:", f.len[i]);
        ok = EVP_DigestUpdate(ctx, prefix, (size_t)n) == 1 &&
             EVP_DigestUpdate(ctx, f.value[i], f.len[i]) == 1 &&
             EVP_DigestUpdate(ctx, "\n", 1) == 1;
    }
    unsigned int out_len = 0;
    unsigned char out[EVP_MAX_MD_SIZE];
    ok = ok && EVP_DigestFinal_ex(ctx, out, &out_len) == 1 && out_len == AUDIT_HASH_BYTES;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return st_fail(err, ST_INTERNAL, "audit record: SHA-256 failed");
    memcpy(ret_hash, out, AUDIT_HASH_BYTES);
    return ST_OK;
}

void audit_sha256(const void *data, size_t len, unsigned char ret_hash[AUDIT_HASH_BYTES])
{
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int out_len = 0;
    if (EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL) != 1 ||
        out_len != AUDIT_HASH_BYTES) {
        memset(ret_hash, 0, AUDIT_HASH_BYTES);
        return;
    }
    memcpy(ret_hash, out, AUDIT_HASH_BYTES);
}

void audit_time_now(char ret_at[AUDIT_TIME_TEXT])
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r(&now.tv_sec, &utc);
    /* Years beyond 9999 do not fit the canonical form: clamp (the clock is wrong then). */
    if (utc.tm_year > 9999 - 1900)
        utc.tm_year = 9999 - 1900;
    if (utc.tm_year < 0)
        utc.tm_year = 0;
    char seconds[24];
    size_t n = strftime(seconds, sizeof(seconds), "%Y-%m-%dT%H:%M:%S", &utc);
    memcpy(ret_at, seconds, n);
    snprintf(ret_at + n, AUDIT_TIME_TEXT - n, ".%06dZ", (int)(now.tv_nsec / 1000) % 1000000);
}

void audit_hash_hex(const unsigned char hash[AUDIT_HASH_BYTES], char ret_hex[AUDIT_HASH_HEX])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < AUDIT_HASH_BYTES; i++) {
        ret_hex[2 * i] = digits[hash[i] >> 4];
        ret_hex[2 * i + 1] = digits[hash[i] & 0x0f];
    }
    ret_hex[2 * AUDIT_HASH_BYTES] = '\0';
}

st_code audit_hash_parse(const char *text, unsigned char ret_hash[AUDIT_HASH_BYTES])
{
    unsigned char *bytes = NULL;
    size_t len = 0;
    if (text == NULL || strnlen(text, 2 * AUDIT_HASH_BYTES + 3) > 2 * AUDIT_HASH_BYTES + 2 ||
        vault_unhex(text, &bytes, &len) != ST_OK)
        return ST_INVALID;
    st_code status = len == AUDIT_HASH_BYTES ? ST_OK : ST_INVALID;
    if (status == ST_OK)
        memcpy(ret_hash, bytes, AUDIT_HASH_BYTES);
    free(bytes);
    return status;
}

void audit_verify_begin(audit_verifier *v, int64_t first_seq,
                        const unsigned char prev_hash[AUDIT_HASH_BYTES])
{
    memset(v, 0, sizeof(*v));
    v->expected_seq = first_seq;
    if (prev_hash != NULL)
        memcpy(v->prev_hash, prev_hash, AUDIT_HASH_BYTES);
}

audit_break audit_verify_next(audit_verifier *v, const audit_record *r, int64_t *ret_broken_seq)
{
    if (r->seq > v->expected_seq) {
        *ret_broken_seq = v->expected_seq;
        return AUDIT_BREAK_MISSING;
    }
    if (r->seq < v->expected_seq) {
        *ret_broken_seq = r->seq;
        return AUDIT_BREAK_ORDER;
    }
    if (memcmp(r->prev_hash, v->prev_hash, AUDIT_HASH_BYTES) != 0) {
        *ret_broken_seq = r->seq;
        return AUDIT_BREAK_LINK;
    }
    unsigned char computed[AUDIT_HASH_BYTES];
    if (audit_record_hash(r, computed, NULL) != ST_OK ||
        memcmp(computed, r->hash, AUDIT_HASH_BYTES) != 0) {
        *ret_broken_seq = r->seq;
        return AUDIT_BREAK_HASH;
    }
    memcpy(v->prev_hash, r->hash, AUDIT_HASH_BYTES);
    v->expected_seq++;
    v->checked++;
    return AUDIT_INTACT;
}

const char *audit_break_text(audit_break b)
{
    switch (b) {
    case AUDIT_INTACT:
        return "intact";
    case AUDIT_BREAK_MISSING:
        return "row is missing (deleted, or the log was cut)";
    case AUDIT_BREAK_LINK:
        return "prev_hash does not match the previous row's hash (row moved, replaced or "
               "edited)";
    case AUDIT_BREAK_HASH:
        return "hash does not match the row's content (row edited)";
    case AUDIT_BREAK_ORDER:
        return "sequence number repeated or out of order";
    }
    return "unknown";
}
