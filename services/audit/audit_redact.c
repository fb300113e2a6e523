/* audit_redact: personal data out of payloads and subjects (rules in audit_redact.h). */
#include "audit_redact.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

/* ---- a growing output buffer ---------------------------------------------------------- */

typedef struct text_buf {
    char *data;
    size_t len, cap;
    bool failed;
} text_buf;

static void buf_put(text_buf *b, const void *bytes, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (grown == NULL) {
            b->failed = true;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* ---- UTF-8 ------------------------------------------------------------------------------ */

bool audit_utf8_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= need)
            return false;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

/* ---- hashing and sealing -------------------------------------------------------------- */

void audit_user_hash(const vault_keys *keys, const char *user_id,
                     char ret_hash[AUDIT_USER_HASH_TEXT])
{
    unsigned char digest[VAULT_HASH_BYTES];
    vault_lookup_hash(keys, AUDIT_USER_HASH_PURPOSE, user_id, digest);
    ret_hash[0] = 'h';
    ret_hash[1] = ':';
    vault_hex(digest, sizeof(digest), ret_hash + 2);
}

/* base64 of vault_seal(context, bytes) (at most VAULT_PLAIN_MAX of them); heap. */
static st_code seal_base64(const vault_keys *keys, const char *context, const char *bytes,
                           size_t len, char **ret_text, size_t *ret_sealed_len, st_error *err)
{
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    if (len > VAULT_PLAIN_MAX)
        len = VAULT_PLAIN_MAX;
    st_code code = vault_seal(keys, context, bytes, len, &sealed, &sealed_len, err);
    if (code != ST_OK)
        return code;
    char *text = malloc(4 * ((sealed_len + 2) / 3) + 1);
    if (text == NULL) {
        free(sealed);
        return st_fail(err, ST_NOMEM, "audit: out of memory");
    }
    EVP_EncodeBlock((unsigned char *)text, sealed, (int)sealed_len);
    free(sealed);
    *ret_text = text;
    if (ret_sealed_len != NULL)
        *ret_sealed_len = len;
    return ST_OK;
}

/* ---- scrubbing text ------------------------------------------------------------------- */

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_word(unsigned char c)
{
    return isalnum(c) || c == '_';
}

/* Byte length of a digit at s (ASCII, Thai U+0E50..59, full-width U+FF10..19), or 0. */
static size_t digit_at(const unsigned char *s, size_t left)
{
    if (left >= 1 && s[0] >= '0' && s[0] <= '9')
        return 1;
    if (left >= 3 && s[0] == 0xe0 && s[1] == 0xb9 && s[2] >= 0x90 && s[2] <= 0x99)
        return 3;
    if (left >= 3 && s[0] == 0xef && s[1] == 0xbc && s[2] >= 0x90 && s[2] <= 0x99)
        return 3;
    return 0;
}

/* Byte length of a separator inside a phone number at s, or 0; *ret_dot when it is '.'. */
static size_t separator_at(const unsigned char *s, size_t left, bool *ret_dot)
{
    *ret_dot = false;
    if (left >= 1 && (s[0] == ' ' || s[0] == '-' || s[0] == '(' || s[0] == ')'))
        return 1;
    if (left >= 1 && s[0] == '.') {
        *ret_dot = true;
        return 1;
    }
    if (left >= 2 && s[0] == 0xc2 && s[1] == 0xa0) /* no-break space */
        return 2;
    if (left >= 3 && s[0] == 0xe2 && s[1] == 0x80 && s[2] == 0x93) /* en dash */
        return 3;
    if (left >= 3 && s[0] == 0xef && s[1] == 0xbc && s[2] == 0x8d) /* full-width hyphen */
        return 3;
    return 0;
}

static size_t plus_at(const unsigned char *s, size_t left)
{
    if (left >= 1 && s[0] == '+')
        return 1;
    if (left >= 3 && s[0] == 0xef && s[1] == 0xbc && s[2] == 0x8b)
        return 3;
    return 0;
}

/* A run of digits with separators starting at s: its byte length up to the last digit, and
 * whether it counts as a phone number. 0 when no digit starts here (after '+' / '('). */
static size_t phone_run_at(const unsigned char *s, size_t left, bool *ret_phone)
{
    size_t i = plus_at(s, left);
    if (i < left && s[i] == '(')
        i++;
    size_t digits = 0, end = 0, dots = 0, other_separators = 0;
    *ret_phone = false;
    if (digit_at(s + i, left - i) == 0)
        return 0;
    while (i < left) {
        size_t n = digit_at(s + i, left - i);
        if (n > 0) {
            digits++;
            i += n;
            end = i;
            continue;
        }
        /* Up to three separators, then a digit must follow. */
        size_t j = i, seen = 0, run_dots = 0, run_other = 0;
        while (seen < 3 && j < left) {
            bool dot = false;
            size_t m = separator_at(s + j, left - j, &dot);
            if (m == 0)
                break;
            if (dot)
                run_dots++;
            else
                run_other++;
            j += m;
            seen++;
        }
        if (seen == 0 || digit_at(s + j, left - j) == 0)
            break;
        dots += run_dots;
        other_separators += run_other;
        i = j;
    }
    bool decimal = dots == 1 && other_separators == 0;
    *ret_phone = digits >= 9 && !decimal;
    return end;
}

static bool ascii_digits(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* "ESS-dddd-dddddd" at s: 15, else 0. */
static size_t case_number_at(const unsigned char *s, size_t left)
{
    if (left < 15 || memcmp(s, "ESS-", 4) != 0 || !ascii_digits(s + 4, 4) || s[8] != '-' ||
        !ascii_digits(s + 9, 6))
        return 0;
    return 15;
}

/* "dddd-dd-dd" at s: 10, else 0. */
static size_t date_at(const unsigned char *s, size_t left)
{
    if (left < 10 || !ascii_digits(s, 4) || s[4] != '-' || !ascii_digits(s + 5, 2) ||
        s[7] != '-' || !ascii_digits(s + 8, 2))
        return 0;
    return 10;
}

/* A LINE id ('U', 'C' or 'R' + 32 hex digits) not glued to a word character: its kind
 * letter, else 0. */
static char line_id_at(const unsigned char *s, size_t left)
{
    if (left < 33 || (s[0] != 'U' && s[0] != 'C' && s[0] != 'R'))
        return 0;
    for (size_t i = 1; i < 33; i++)
        if (!is_hex(s[i]))
            return 0;
    if (left > 33 && is_word(s[33]))
        return 0;
    return (char)s[0];
}

st_code audit_scrub_text(const vault_keys *keys, const char *text, size_t len, char **ret_text,
                         size_t *ret_len, st_error *err)
{
    const unsigned char *s = (const unsigned char *)text;
    text_buf out = {0};
    buf_put(&out, "", 0);
    size_t i = 0;
    while (i < len && !out.failed) {
        bool at_boundary = i == 0 || !is_word(s[i - 1]);
        size_t n;
        if (at_boundary) {
            char kind = line_id_at(s + i, len - i);
            if (kind == 'U' || kind == 'R') {
                char hashed[AUDIT_USER_HASH_TEXT];
                char id[34];
                memcpy(id, s + i, 33);
                id[33] = '\0';
                if (keys != NULL)
                    audit_user_hash(keys, id, hashed);
                else
                    memcpy(hashed, "h:?", 4);
                buf_put(&out, hashed, strlen(hashed));
                i += 33;
                continue;
            }
            if (kind == 'C') {
                buf_put(&out, s + i, 33);
                i += 33;
                continue;
            }
            if ((n = case_number_at(s + i, len - i)) > 0) {
                buf_put(&out, s + i, n);
                i += n;
                continue;
            }
        }
        bool after_digit = i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9';
        if (!after_digit && (n = date_at(s + i, len - i)) > 0) {
            buf_put(&out, s + i, n);
            i += n;
            continue;
        }
        bool phone = false;
        n = phone_run_at(s + i, len - i, &phone);
        if (n > 0) {
            if (phone)
                buf_put(&out, AUDIT_PHONE_MASK, sizeof(AUDIT_PHONE_MASK) - 1);
            else
                buf_put(&out, s + i, n);
            i += n;
            continue;
        }
        buf_put(&out, s + i, 1);
        i++;
    }
    if (out.failed) {
        free(out.data);
        return st_fail(err, ST_NOMEM, "audit: out of memory");
    }
    *ret_text = out.data;
    if (ret_len != NULL)
        *ret_len = out.len;
    return ST_OK;
}

/* ---- subjects --------------------------------------------------------------------------- */

void audit_redact_subject(const vault_keys *keys, const char *subject, char *out,
                          size_t out_size)
{
    if (out_size == 0)
        return;
    out[0] = '\0';
    if (subject == NULL)
        return;
    size_t len = strnlen(subject, 4096);
    size_t used = 0;
    bool hash_last = strncmp(subject, "line.in.user.", 13) == 0 ||
                     strncmp(subject, "line.in.room.", 13) == 0;
    size_t start = 0;
    while (start <= len) {
        size_t end = start;
        while (end < len && subject[end] != '.')
            end++;
        char token[256];
        size_t token_len = end - start < sizeof(token) - 1 ? end - start : sizeof(token) - 1;
        memcpy(token, subject + start, token_len);
        token[token_len] = '\0';
        char hashed[AUDIT_USER_HASH_TEXT];
        char *scrubbed = NULL;
        const char *shown = token;
        if (hash_last && end == len && token_len > 0) {
            audit_user_hash(keys, token, hashed);
            shown = hashed;
        } else if (audit_scrub_text(keys, token, token_len, &scrubbed, NULL, NULL) == ST_OK) {
            shown = scrubbed;
        } else {
            shown = "?";
        }
        size_t shown_len = strlen(shown);
        if (used + shown_len + 2 > out_size) {
            free(scrubbed);
            break;
        }
        if (start > 0)
            out[used++] = '.';
        memcpy(out + used, shown, shown_len);
        used += shown_len;
        out[used] = '\0';
        free(scrubbed);
        start = end + 1;
    }
}

/* ---- payloads --------------------------------------------------------------------------- */

typedef struct redact_context {
    const vault_keys *keys;
    st_error *err;
    st_code code;
} redact_context;

static const char *const identifier_members[] = {
    "id",        "webhookEventId", "replyToken", "reply_token", "quotedMessageId",
    "quoteToken", "markAsReadToken", "packageId", "stickerId",   "command_id",
    "case_number", "msg_id",        "event_id",   "retry_key",
};

static bool is_identifier_member(const char *name)
{
    if (name == NULL)
        return false;
    for (size_t i = 0; i < sizeof(identifier_members) / sizeof(identifier_members[0]); i++)
        if (strcmp(name, identifier_members[i]) == 0)
            return true;
    return false;
}

static bool is_user_member(const char *name)
{
    return name != NULL && (strcmp(name, "userId") == 0 || strcmp(name, "roomId") == 0 ||
                            strcmp(name, "userIds") == 0);
}

static bool is_target_member(const char *name)
{
    return name != NULL && (strcmp(name, "to") == 0 || strcmp(name, "fallback_to") == 0);
}

static bool is_phone_member(const char *name)
{
    if (name == NULL)
        return false;
    for (const char *p = name; *p != '\0'; p++)
        if (strncasecmp(p, "phone", 5) == 0)
            return true;
    return false;
}

/* Replaces item (a member of parent) by a new string item named `name` (copied). */
static void replace_member(redact_context *ctx, cJSON *parent, cJSON *item, const char *name,
                           const char *value)
{
    cJSON *replacement = cJSON_CreateString(value);
    char *name_copy = name != NULL ? strdup(name) : NULL;
    if (replacement == NULL || (name != NULL && name_copy == NULL)) {
        cJSON_Delete(replacement);
        free(name_copy);
        ctx->code = st_fail(ctx->err, ST_NOMEM, "audit: out of memory");
        return;
    }
    replacement->string = name_copy;
    if (!cJSON_ReplaceItemViaPointer(parent, item, replacement)) {
        cJSON_Delete(replacement);
        ctx->code = st_fail(ctx->err, ST_INTERNAL, "audit: cannot replace a JSON member");
    }
}

static void hash_string_item(redact_context *ctx, cJSON *parent, cJSON *item, bool keep_groups)
{
    const char *value = item->valuestring;
    if (keep_groups && value[0] == 'C')
        return; /* a group: teams' groups are not personal data */
    char hashed[AUDIT_USER_HASH_TEXT];
    audit_user_hash(ctx->keys, value, hashed);
    replace_member(ctx, parent, item, item->string, hashed);
}

static void seal_member(redact_context *ctx, cJSON *parent, cJSON *item)
{
    const char *plain = NULL;
    char number[64];
    if (cJSON_IsString(item)) {
        plain = item->valuestring;
    } else if (cJSON_IsNumber(item)) {
        snprintf(number, sizeof(number), "%.17g", item->valuedouble);
        plain = number;
    } else {
        return; /* has_phone: true and the like say nothing personal */
    }
    char *sealed = NULL;
    ctx->code = seal_base64(ctx->keys, AUDIT_SEAL_TEXT_CONTEXT, plain, strlen(plain), &sealed,
                            NULL, ctx->err);
    if (ctx->code != ST_OK)
        return;
    char name[160];
    snprintf(name, sizeof(name), "%.140s_sealed", item->string != NULL ? item->string : "");
    replace_member(ctx, parent, item, name, sealed);
    free(sealed);
}

static void scrub_item(redact_context *ctx, cJSON *parent, cJSON *item)
{
    const char *value = item->valuestring;
    char *clean = NULL;
    size_t clean_len = 0;
    ctx->code = audit_scrub_text(ctx->keys, value, strlen(value), &clean, &clean_len, ctx->err);
    if (ctx->code != ST_OK)
        return;
    if (strcmp(clean, value) != 0)
        replace_member(ctx, parent, item, item->string, clean);
    free(clean);
}

/* depth: 0 for the root; typed_text: inside the event's top-level "message" object. */
static void redact_node(redact_context *ctx, cJSON *node, int depth, bool typed_text);

static void redact_members(redact_context *ctx, cJSON *parent, int depth, bool typed_text)
{
    bool is_object = cJSON_IsObject(parent);
    cJSON *next = NULL;
    for (cJSON *item = parent->child; item != NULL && ctx->code == ST_OK; item = next) {
        next = item->next;
        const char *name = is_object ? item->string : NULL;
        const char *inherited = is_object ? name : parent->string; /* array items: the array's */
        if (is_object && is_phone_member(name)) {
            seal_member(ctx, parent, item);
        } else if (is_object && typed_text && name != NULL && strcmp(name, "text") == 0 &&
                   cJSON_IsString(item)) {
            seal_member(ctx, parent, item);
        } else if (cJSON_IsString(item) && is_user_member(inherited)) {
            hash_string_item(ctx, parent, item, false);
        } else if (cJSON_IsString(item) && is_target_member(inherited)) {
            hash_string_item(ctx, parent, item, true);
        } else if (cJSON_IsString(item)) {
            if (!is_identifier_member(name))
                scrub_item(ctx, parent, item);
        } else if (cJSON_IsObject(item) || cJSON_IsArray(item)) {
            bool message = depth == 0 && name != NULL && strcmp(name, "message") == 0 &&
                           cJSON_IsObject(item);
            redact_node(ctx, item, depth + 1, typed_text || message);
        }
    }
}

static void redact_node(redact_context *ctx, cJSON *node, int depth, bool typed_text)
{
    if (cJSON_IsObject(node) || cJSON_IsArray(node))
        redact_members(ctx, node, depth, typed_text);
}

static st_code unparsed_payload(const vault_keys *keys, const char *data, size_t len,
                                char **ret_json, size_t *ret_len, st_error *err)
{
    char *sealed = NULL;
    size_t sealed_bytes = 0;
    cJSON *root = NULL;
    char *text = NULL;
    st_code code = seal_base64(keys, AUDIT_SEAL_RAW_CONTEXT, data, len, &sealed, &sealed_bytes,
                               err);
    if (code != ST_OK)
        goto cleanup;
    root = cJSON_CreateObject();
    if (root == NULL || cJSON_AddTrueToObject(root, "unparsed") == NULL ||
        cJSON_AddNumberToObject(root, "length", (double)len) == NULL ||
        cJSON_AddStringToObject(root, "sealed", sealed) == NULL ||
        cJSON_AddNumberToObject(root, "sealed_bytes", (double)sealed_bytes) == NULL ||
        (text = cJSON_PrintUnformatted(root)) == NULL) {
        code = st_fail(err, ST_NOMEM, "audit: out of memory");
        goto cleanup;
    }
    *ret_json = text;
    *ret_len = strlen(text);
    text = NULL;

cleanup:
    free(text);
    cJSON_Delete(root);
    free(sealed);
    return code;
}

st_code audit_redact_payload(const vault_keys *keys, const char *data, size_t len,
                             char **ret_json, size_t *ret_len, st_error *err)
{
    char *copy = NULL, *text = NULL;
    cJSON *root = NULL;
    st_code code = ST_OK;
    if (keys == NULL || (data == NULL && len > 0))
        return st_fail(err, ST_INVALID, "audit: redact: no keys or no data");
    if (len > AUDIT_PAYLOAD_MAX)
        return st_fail(err, ST_LIMIT, "audit: payload of %zu bytes is above the limit", len);
    if (!audit_utf8_valid(data, len))
        return unparsed_payload(keys, data, len, ret_json, ret_len, err);
    copy = malloc(len + 1);
    if (copy == NULL)
        return st_fail(err, ST_NOMEM, "audit: out of memory");
    if (len > 0)
        memcpy(copy, data, len);
    copy[len] = '\0';
    const char *end = NULL;
    root = cJSON_ParseWithOpts(copy, &end, 1);
    if (root == NULL) {
        code = unparsed_payload(keys, data, len, ret_json, ret_len, err);
        goto cleanup;
    }
    if (cJSON_IsString(root)) {
        /* A bare string: scrub it as any string. */
        char *clean = NULL;
        code = audit_scrub_text(keys, root->valuestring, strlen(root->valuestring), &clean, NULL,
                                err);
        if (code != ST_OK)
            goto cleanup;
        cJSON *replacement = cJSON_CreateString(clean);
        free(clean);
        if (replacement == NULL) {
            code = st_fail(err, ST_NOMEM, "audit: out of memory");
            goto cleanup;
        }
        cJSON_Delete(root);
        root = replacement;
    }
    redact_context ctx = {.keys = keys, .err = err, .code = ST_OK};
    redact_node(&ctx, root, 0, false);
    code = ctx.code;
    if (code != ST_OK)
        goto cleanup;
    text = cJSON_PrintUnformatted(root);
    if (text == NULL) {
        code = st_fail(err, ST_NOMEM, "audit: out of memory");
        goto cleanup;
    }
    size_t text_len = strlen(text);
    if (!audit_utf8_valid(text, text_len)) {
        /* An escape decoded into something PostgreSQL refuses (a lone surrogate): keep the
         * message whole, sealed. */
        code = unparsed_payload(keys, data, len, ret_json, ret_len, err);
        goto cleanup;
    }
    *ret_json = text;
    *ret_len = text_len;
    text = NULL;

cleanup:
    free(text);
    cJSON_Delete(root);
    free(copy);
    return code;
}
