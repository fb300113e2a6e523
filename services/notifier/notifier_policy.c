#include "notifier_policy.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "log.h"

bool notifier_throttled(const notifier_answer *answer)
{
    return answer->transport == NOTIFIER_TRANSPORT_OK && answer->status == 429;
}

bool notifier_misconfigured(const notifier_answer *answer)
{
    long s = answer->status;
    return answer->transport == NOTIFIER_TRANSPORT_OK &&
           (s == 401 || s == 403 || s == 404 || s == 405);
}

/* LINE's error body {"message": ..., "details": [{"message", "property"}]}: "message" and the
 * first detail into out. Empty when the body is not that. */
static void line_error(const notifier_answer *answer, char *message, size_t message_size,
                       char *detail, size_t detail_size)
{
    message[0] = '\0';
    detail[0] = '\0';
    if (answer->body == NULL || answer->body_len == 0)
        return;
    cJSON *root = cJSON_ParseWithLength(answer->body, answer->body_len);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "message");
    if (cJSON_IsString(text))
        snprintf(message, message_size, "%s", text->valuestring);
    const cJSON *details = cJSON_GetObjectItemCaseSensitive(root, "details");
    const cJSON *first = cJSON_IsArray(details) ? cJSON_GetArrayItem(details, 0) : NULL;
    const cJSON *property = cJSON_GetObjectItemCaseSensitive(first, "property");
    const cJSON *problem = cJSON_GetObjectItemCaseSensitive(first, "message");
    if (cJSON_IsString(problem))
        snprintf(detail, detail_size, "%s%s%s",
                 cJSON_IsString(property) ? property->valuestring : "",
                 cJSON_IsString(property) ? ": " : "", problem->valuestring);
    cJSON_Delete(root);
}

/* Cuts text at a UTF-8 character boundary so that it fits size bytes with its NUL. */
static void utf8_cut(char *text, size_t size)
{
    size_t len = strnlen(text, size);
    if (len < size)
        return;
    len = size - 1;
    while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
        len--;
    text[len] = '\0';
}

static void describe(const notifier_answer *answer, char *reason, size_t reason_size)
{
    char raw[512];
    switch (answer->transport) {
    case NOTIFIER_TRANSPORT_TIMEOUT:
        snprintf(raw, sizeof(raw), "LINE did not answer in time");
        break;
    case NOTIFIER_TRANSPORT_CONNECT:
        snprintf(raw, sizeof(raw), "cannot connect to LINE");
        break;
    case NOTIFIER_TRANSPORT_ERROR:
        snprintf(raw, sizeof(raw), "the connection to LINE failed");
        break;
    case NOTIFIER_TRANSPORT_CANCELLED:
        snprintf(raw, sizeof(raw), "stopped before LINE answered");
        break;
    case NOTIFIER_TRANSPORT_OK:
    default: {
        char message[200], detail[200];
        line_error(answer, message, sizeof(message), detail, sizeof(detail));
        if (message[0] != '\0' && detail[0] != '\0')
            snprintf(raw, sizeof(raw), "LINE answered %ld: %s [%s]", answer->status, message,
                     detail);
        else if (message[0] != '\0')
            snprintf(raw, sizeof(raw), "LINE answered %ld: %s", answer->status, message);
        else
            snprintf(raw, sizeof(raw), "LINE answered %ld", answer->status);
        break;
    }
    }
    /* LINE's texts name properties and rules, but a detail may quote a value: scrub it. */
    log_scrub(raw, reason, reason_size);
    utf8_cut(reason, reason_size);
}

notifier_verdict notifier_classify(notifier_endpoint endpoint, const notifier_answer *answer,
                                   char *reason, size_t reason_size)
{
    describe(answer, reason, reason_size);
    if (answer->transport != NOTIFIER_TRANSPORT_OK)
        return NOTIFIER_RETRY;
    long status = answer->status;
    if (status >= 200 && status <= 299)
        return NOTIFIER_DELIVERED;
    if (status == 409 && endpoint == NOTIFIER_EP_PUSH && answer->had_retry_key)
        return NOTIFIER_DELIVERED;
    if (status == 429 || status >= 500 || status < 200 || (status >= 300 && status <= 399) ||
        notifier_misconfigured(answer))
        return NOTIFIER_RETRY;
    if (endpoint == NOTIFIER_EP_REPLY && status == 400) {
        char message[200], detail[200];
        line_error(answer, message, sizeof(message), detail, sizeof(detail));
        if (strcmp(message, NOTIFIER_INVALID_REPLY_TOKEN) == 0)
            return NOTIFIER_TOKEN_REJECTED;
    }
    return NOTIFIER_REJECT;
}

const char *notifier_status_label(const notifier_answer *answer)
{
    switch (answer->transport) {
    case NOTIFIER_TRANSPORT_TIMEOUT:
        return "timeout";
    case NOTIFIER_TRANSPORT_CONNECT:
        return "connect_error";
    case NOTIFIER_TRANSPORT_ERROR:
        return "transport_error";
    case NOTIFIER_TRANSPORT_CANCELLED:
        return "cancelled";
    default:
        break;
    }
    switch (answer->status) {
    case 200:
        return "200";
    case 400:
        return "400";
    case 401:
        return "401";
    case 403:
        return "403";
    case 404:
        return "404";
    case 409:
        return "409";
    case 413:
        return "413";
    case 415:
        return "415";
    case 429:
        return "429";
    case 500:
        return "500";
    case 502:
        return "502";
    case 503:
        return "503";
    case 504:
        return "504";
    default:
        break;
    }
    if (answer->status >= 200 && answer->status <= 299)
        return "2xx";
    if (answer->status >= 400 && answer->status <= 499)
        return "4xx";
    if (answer->status >= 500 && answer->status <= 599)
        return "5xx";
    return "other";
}

int64_t notifier_backoff_ms(uint64_t attempt, int64_t min_ms, int64_t max_ms, uint64_t random)
{
    if (min_ms < 1)
        min_ms = 1;
    if (max_ms < min_ms)
        max_ms = min_ms;
    int64_t delay = min_ms;
    for (uint64_t i = 1; i < attempt && delay < max_ms; i++)
        delay = delay > max_ms / 2 ? max_ms : delay * 2;
    if (delay > max_ms)
        delay = max_ms;
    int64_t half = delay / 2;
    return half + (int64_t)(random % (uint64_t)(delay - half + 1));
}

void notifier_bucket_init(notifier_bucket *bucket, double rate, double burst, int64_t now_ns)
{
    bucket->rate = rate > 0 ? rate : 1;
    bucket->burst = burst >= 1 ? burst : 1;
    bucket->tokens = bucket->burst;
    bucket->refilled_ns = now_ns;
}

int64_t notifier_bucket_take(notifier_bucket *bucket, int64_t now_ns)
{
    if (now_ns > bucket->refilled_ns) {
        bucket->tokens += (double)(now_ns - bucket->refilled_ns) * bucket->rate / 1e9;
        if (bucket->tokens > bucket->burst)
            bucket->tokens = bucket->burst;
        bucket->refilled_ns = now_ns;
    }
    if (bucket->tokens >= 1.0) {
        bucket->tokens -= 1.0;
        return 0;
    }
    int64_t wait = (int64_t)((1.0 - bucket->tokens) * 1e9 / bucket->rate) + 1;
    return wait > 0 ? wait : 1;
}
