#include "log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_service[64] = "ess";
static log_level log_min = LOG_INFO;
static FILE *log_out;
static unsigned char pii_key[32];
static pthread_once_t pii_key_once = PTHREAD_ONCE_INIT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static void make_pii_key(void)
{
    if (RAND_bytes(pii_key, sizeof(pii_key)) != 1) {
        /* No randomness: fall back to a key derived from time and pid; still not reversible
         * without knowing both, and the digest is only for correlation. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long seed[3] = {(long)ts.tv_sec, ts.tv_nsec, (long)getpid()};
        memcpy(pii_key, seed, sizeof(seed) < sizeof(pii_key) ? sizeof(seed) : sizeof(pii_key));
    }
}

void log_setup(const char *service, log_level min_level, FILE *out)
{
    pthread_once(&pii_key_once, make_pii_key);
    pthread_mutex_lock(&log_lock);
    snprintf(log_service, sizeof(log_service), "%s", service != NULL ? service : "ess");
    log_min = min_level;
    log_out = out;
    pthread_mutex_unlock(&log_lock);
}

st_code log_level_parse(const char *text, log_level *ret_level)
{
    if (text == NULL)
        return ST_INVALID;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *ret_level = (log_level)i;
            return ST_OK;
        }
    }
    return ST_INVALID;
}

const char *log_level_name(log_level level)
{
    if ((size_t)level >= sizeof(level_names) / sizeof(level_names[0]))
        return "unknown";
    return level_names[level];
}

int log_enabled(log_level level)
{
    return level >= log_min;
}

/* ---- scrubbing ---------------------------------------------------------------------------- */

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Length of a LINE id ([UCR] + 32 hex) starting at s, or 0. */
static size_t line_id_at(const char *s, size_t left)
{
    if (left < 33 || (s[0] != 'U' && s[0] != 'C' && s[0] != 'R'))
        return 0;
    for (size_t i = 1; i < 33; i++)
        if (!is_hex(s[i]))
            return 0;
    if (left > 33 && (isalnum((unsigned char)s[33])))
        return 0;
    return 33;
}

/* Length of a phone-like run starting at s: optional '+', digits with single separators
 * (space, dash, dot, parentheses), at least 9 digits in all; or 0. */
static size_t phone_at(const char *s, size_t left)
{
    size_t i = 0, digits = 0, last_digit_end = 0;
    if (s[0] == '+')
        i = 1;
    while (i < left) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            digits++;
            i++;
            last_digit_end = i;
        } else if ((c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') && digits > 0 &&
                   i + 1 < left && (isdigit((unsigned char)s[i + 1]) || s[i + 1] == '(')) {
            i++;
        } else {
            break;
        }
    }
    return digits >= 9 ? last_digit_end : 0;
}

void log_scrub(const char *text, char *out, size_t out_size)
{
    static const char mask[] = "[redacted]";
    size_t o = 0;
    if (out_size == 0)
        return;
    if (text == NULL) {
        out[0] = '\0';
        return;
    }
    size_t len = strlen(text);
    size_t i = 0;
    while (i < len && o + 1 < out_size) {
        /* A run glued to a word ("ESS-2569-000123") is an identifier, not a phone. */
        bool boundary = i == 0 || !(isalnum((unsigned char)text[i - 1]) || text[i - 1] == '-' ||
                                    text[i - 1] == '_');
        size_t hit = 0;
        if (boundary) {
            hit = line_id_at(text + i, len - i);
            if (hit == 0 && (isdigit((unsigned char)text[i]) || text[i] == '+'))
                hit = phone_at(text + i, len - i);
        }
        if (hit > 0) {
            size_t n = sizeof(mask) - 1;
            if (o + n >= out_size)
                break;
            memcpy(out + o, mask, n);
            o += n;
            i += hit;
            continue;
        }
        out[o++] = text[i++];
    }
    out[o] = '\0';
}

/* ---- line building ------------------------------------------------------------------------ */

typedef struct line_buf {
    char text[LOG_LINE_MAX];
    size_t len;
    size_t field_start; /* where the field being written began */
    size_t cut;         /* field_start of the first field that did not fit */
    bool truncated;
} line_buf;

/* Longest value of one string field; keeps one long text from pushing out every field after. */
#define LOG_VALUE_MAX 1024

static void put_raw(line_buf *b, const char *s, size_t n)
{
    /* Keep room for the closing `"}\n` even when truncating. */
    size_t room = sizeof(b->text) - 32;
    if (b->truncated)
        return;
    if (b->len + n > room) {
        b->truncated = true;
        b->cut = b->field_start;
        return;
    }
    memcpy(b->text + b->len, s, n);
    b->len += n;
}

static void put_str(line_buf *b, const char *s)
{
    put_raw(b, s, strlen(s));
}

/* Writes s as a JSON string (quotes included), escaping control characters; UTF-8 passes. */
static void put_json_string(line_buf *b, const char *s)
{
    put_raw(b, "\"", 1);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put_raw(b, esc, 2);
        } else if (c == '\n') {
            put_raw(b, "\\n", 2);
        } else if (c == '\t') {
            put_raw(b, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put_raw(b, esc, 6);
        } else {
            put_raw(b, (const char *)&c, 1);
        }
    }
    put_raw(b, "\"", 1);
}

static void put_scrubbed(line_buf *b, const char *s)
{
    char clean[LOG_VALUE_MAX];
    log_scrub(s, clean, sizeof(clean));
    /* Do not leave half a UTF-8 sequence where the scrubber cut. */
    size_t len = strlen(clean);
    if (len == sizeof(clean) - 1) {
        while (len > 0 && ((unsigned char)clean[len - 1] & 0xC0) == 0x80)
            len--;
        if (len > 0 && ((unsigned char)clean[len - 1] & 0xC0) == 0xC0)
            len--;
        clean[len] = '\0';
    }
    put_json_string(b, clean);
}

static void put_key(line_buf *b, const char *key)
{
    b->field_start = b->len;
    put_raw(b, ",", 1);
    put_json_string(b, key);
    put_raw(b, ":", 1);
}

static void put_pii(line_buf *b, const char *value)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), pii_key, sizeof(pii_key), (const unsigned char *)value, strlen(value),
         mac, &mac_len);
    char digest[16] = "~";
    for (size_t i = 0; i < 6; i++)
        snprintf(digest + 1 + i * 2, 3, "%02x", mac[i]);
    put_json_string(b, digest);
}

static void put_field(line_buf *b, const log_field *f)
{
    char num[32];
    switch (f->kind) {
    case LOG_KIND_STR:
        put_key(b, f->key);
        if (f->str == NULL)
            put_str(b, "null");
        else
            put_scrubbed(b, f->str);
        break;
    case LOG_KIND_INT:
        put_key(b, f->key);
        snprintf(num, sizeof(num), "%lld", (long long)f->num);
        put_str(b, num);
        break;
    case LOG_KIND_PII:
        put_key(b, f->key);
        if (f->str == NULL)
            put_str(b, "null");
        else
            put_pii(b, f->str);
        break;
    case LOG_KIND_ERR:
        if (f->err == NULL)
            break;
        put_key(b, "err");
        put_json_string(b, st_name(f->err->code));
        if (f->err->cause[0] != '\0') {
            put_key(b, "cause");
            put_scrubbed(b, f->err->cause);
        }
        if (f->err->message[0] != '\0') {
            put_key(b, "detail");
            put_scrubbed(b, f->err->message);
        }
        break;
    }
}

void log_write(log_level level, const char *code, const char *msg, const log_field *fields,
               size_t count)
{
    if (!log_enabled(level))
        return;
    pthread_once(&pii_key_once, make_pii_key);

    static __thread line_buf b;
    b.len = 0;
    b.field_start = 0;
    b.cut = 0;
    b.truncated = false;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm utc;
    gmtime_r(&ts.tv_sec, &utc);
    char stamp[96];
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
             utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
             (int)(ts.tv_nsec / 1000000));

    put_str(&b, "{\"ts\":");
    put_json_string(&b, stamp);
    put_key(&b, "level");
    put_json_string(&b, log_level_name(level));
    put_key(&b, "svc");
    put_json_string(&b, log_service);
    put_key(&b, "code");
    put_json_string(&b, code != NULL ? code : "");
    put_key(&b, "msg");
    put_scrubbed(&b, msg != NULL ? msg : "");
    for (size_t i = 0; i < count; i++)
        if (fields[i].key != NULL)
            put_field(&b, &fields[i]);
    if (b.truncated) {
        /* Drop the fields that did not fit, whole, so the line stays valid JSON. */
        const char tail[] = ",\"truncated\":true}\n";
        b.len = b.cut;
        memcpy(b.text + b.len, tail, sizeof(tail) - 1);
        b.len += sizeof(tail) - 1;
    } else {
        put_raw(&b, "}\n", 2);
    }

    pthread_mutex_lock(&log_lock);
    FILE *out = log_out != NULL ? log_out : stderr;
    fwrite(b.text, 1, b.len, out);
    fflush(out);
    pthread_mutex_unlock(&log_lock);
}
