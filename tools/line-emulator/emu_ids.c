#include "emu_ids.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
static const char hex_digits[] = "0123456789abcdef";

static st_code random_bytes(unsigned char *out, size_t len)
{
    return RAND_bytes(out, (int)len) == 1 ? ST_OK : ST_INTERNAL;
}

void emu_ulid_init(emu_ulid_gen *gen)
{
    pthread_mutex_init(&gen->lock, NULL);
    gen->last_ms = 0;
    memset(gen->last_random, 0, sizeof(gen->last_random));
    gen->started = false;
}

void emu_ulid_done(emu_ulid_gen *gen)
{
    pthread_mutex_destroy(&gen->lock);
}

static void encode_ulid(int64_t ms, const unsigned char random[10], char out[EMU_ULID_LEN + 1])
{
    uint64_t time_bits = (uint64_t)ms & 0xFFFFFFFFFFFFull;
    for (int i = 9; i >= 0; i--) {
        out[i] = crockford[time_bits & 0x1F];
        time_bits >>= 5;
    }
    /* 80 random bits = two 40-bit halves of 8 characters each. */
    for (int half = 0; half < 2; half++) {
        uint64_t bits = 0;
        for (int i = 0; i < 5; i++)
            bits = (bits << 8) | random[half * 5 + i];
        for (int i = 7; i >= 0; i--) {
            out[10 + half * 8 + i] = crockford[bits & 0x1F];
            bits >>= 5;
        }
    }
    out[EMU_ULID_LEN] = '\0';
}

st_code emu_ulid_next(emu_ulid_gen *gen, int64_t now_ms, char out[EMU_ULID_LEN + 1])
{
    st_code code = ST_OK;
    pthread_mutex_lock(&gen->lock);
    if (gen->started && now_ms <= gen->last_ms) {
        /* Same millisecond or a clock step back: keep the time, add one to the random part. */
        int i = 9;
        while (i >= 0 && ++gen->last_random[i] == 0)
            i--;
        if (i < 0) {
            code = ST_LIMIT;
            goto done;
        }
    } else {
        unsigned char fresh[10];
        code = random_bytes(fresh, sizeof(fresh));
        if (code != ST_OK)
            goto done;
        /* Leave headroom so increments within a millisecond cannot wrap in practice. */
        fresh[0] &= 0x7F;
        memcpy(gen->last_random, fresh, sizeof(fresh));
        gen->last_ms = now_ms;
        gen->started = true;
    }
    encode_ulid(gen->last_ms, gen->last_random, out);
done:
    pthread_mutex_unlock(&gen->lock);
    return code;
}

static int crockford_value(char c)
{
    const char *at = c != '\0' ? strchr(crockford, c) : NULL;
    return at != NULL ? (int)(at - crockford) : -1;
}

bool emu_ulid_valid(const char *text)
{
    if (text == NULL || strlen(text) != EMU_ULID_LEN)
        return false;
    for (size_t i = 0; i < EMU_ULID_LEN; i++)
        if (crockford_value(text[i]) < 0)
            return false;
    return text[0] <= '7';
}

int64_t emu_ulid_time_ms(const char *ulid)
{
    uint64_t ms = 0;
    for (size_t i = 0; i < 10; i++)
        ms = (ms << 5) | (uint64_t)crockford_value(ulid[i]);
    return (int64_t)ms;
}

static st_code random_hex(char *out, size_t digits)
{
    unsigned char bytes[32];
    if (digits / 2 > sizeof(bytes) || digits % 2 != 0)
        return ST_INVALID;
    st_code code = random_bytes(bytes, digits / 2);
    if (code != ST_OK)
        return code;
    for (size_t i = 0; i < digits / 2; i++) {
        out[2 * i] = hex_digits[bytes[i] >> 4];
        out[2 * i + 1] = hex_digits[bytes[i] & 0xF];
    }
    out[digits] = '\0';
    return ST_OK;
}

st_code emu_line_id_new(char prefix, char out[EMU_LINE_ID_LEN + 1])
{
    out[0] = prefix;
    return random_hex(out + 1, 32);
}

bool emu_line_id_valid(const char *text, char prefix)
{
    if (text == NULL || strlen(text) != EMU_LINE_ID_LEN)
        return false;
    if (prefix != 0 ? text[0] != prefix : (text[0] != 'U' && text[0] != 'C' && text[0] != 'R'))
        return false;
    for (size_t i = 1; i < EMU_LINE_ID_LEN; i++)
        if (!((text[i] >= '0' && text[i] <= '9') || (text[i] >= 'a' && text[i] <= 'f')))
            return false;
    return true;
}

st_code emu_uuid_new(char out[EMU_UUID_LEN + 1])
{
    unsigned char bytes[16];
    st_code code = random_bytes(bytes, sizeof(bytes));
    if (code != ST_OK)
        return code;
    bytes[6] = (unsigned char)((bytes[6] & 0x0F) | 0x40);
    bytes[8] = (unsigned char)((bytes[8] & 0x3F) | 0x80);
    size_t at = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[at++] = '-';
        out[at++] = hex_digits[bytes[i] >> 4];
        out[at++] = hex_digits[bytes[i] & 0xF];
    }
    out[at] = '\0';
    return ST_OK;
}

bool emu_uuid_valid(const char *text, size_t len)
{
    if (text == NULL || len != EMU_UUID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

st_code emu_reply_token_new(char out[EMU_REPLY_TOKEN_LEN + 1])
{
    return random_hex(out, EMU_REPLY_TOKEN_LEN);
}

st_code emu_quote_token_new(char out[EMU_QUOTE_TOKEN_LEN + 1])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char bytes[EMU_QUOTE_TOKEN_LEN];
    st_code code = random_bytes(bytes, sizeof(bytes));
    if (code != ST_OK)
        return code;
    for (size_t i = 0; i < EMU_QUOTE_TOKEN_LEN; i++)
        out[i] = alphabet[bytes[i] & 0x3F];
    out[EMU_QUOTE_TOKEN_LEN] = '\0';
    return ST_OK;
}

void emu_message_id_new(int64_t now_ms, char out[EMU_MESSAGE_ID_MAX])
{
    static _Atomic uint64_t last_id;
    uint64_t candidate = (uint64_t)(now_ms > 0 ? now_ms : 0) * 100000u;
    uint64_t previous = atomic_load(&last_id);
    uint64_t next;
    do {
        next = candidate > previous ? candidate : previous + 1;
    } while (!atomic_compare_exchange_weak(&last_id, &previous, next));
    snprintf(out, EMU_MESSAGE_ID_MAX, "%llu", (unsigned long long)next);
}

int64_t emu_wall_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}
