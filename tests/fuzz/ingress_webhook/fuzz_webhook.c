/* libFuzzer target: the LINE webhook parser (ingress_webhook_parse) on arbitrary bytes.
 *
 * Besides "no crash, no leak, no undefined behaviour" it checks what the ingress relies on
 * for every accepted body: each subject is line.in.<user|group|room>.<id> with an id that
 * cannot split or widen a NATS subject, each msg-id is a bounded token, and each payload is
 * compact JSON that parses back to an object. A violation aborts (a finding). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "ingress_signature.h"
#include "ingress_webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_token(const char *text, size_t max_len)
{
    size_t len = strnlen(text, max_len + 1);
    if (len == 0 || len > max_len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static void check_event(const ingress_webhook_event *event)
{
    static const char *const kinds[] = {"user", "group", "room"};
    bool known = false;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        known = known || (event->source_kind != NULL && strcmp(event->source_kind, kinds[i]) == 0);
    if (!known || !is_token(event->source_id, INGRESS_ID_MAX) ||
        !is_token(event->msg_id, INGRESS_ID_MAX))
        abort();
    /* The published subject: three tokens and the pseudonym, never the id. */
    static vault_pseudonym_key key;
    char subject[INGRESS_SUBJECT_SIZE];
    ingress_subject(&key, event, subject);
    if (strncmp(subject, "line.in.", 8) != 0 || strstr(subject, event->source_id) != NULL ||
        strlen(strrchr(subject, '.') + 1) != VAULT_PSEUDONYM_HEX)
        abort();
    if (event->type == NULL || event->payload == NULL ||
        strlen(event->payload) != event->payload_len)
        abort();
    cJSON *payload = cJSON_ParseWithLength(event->payload, event->payload_len);
    if (!cJSON_IsObject(payload))
        abort();
    cJSON_Delete(payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Small limits too, so that the bound paths are reached with small inputs. */
    static const ingress_limits small = {.max_body = 4096, .max_events = 4, .max_depth = 8};
    const ingress_limits *limits = (size > 0 && (data[0] & 1)) ? &small : NULL;

    ingress_webhook *webhook = NULL;
    st_error err = {0};
    st_code code = ingress_webhook_parse((const char *)data, size, limits, &webhook, &err);
    if (code == ST_OK) {
        for (size_t i = 0; i < webhook->event_count; i++)
            check_event(&webhook->events[i]);
        ingress_webhook_destroy(webhook);
    } else if (webhook != NULL || err.message[0] == '\0') {
        abort(); /* failure leaves the out-parameter untouched and says why */
    }

    /* The signature check runs on the same untrusted bytes, before the parser. */
    char signature[INGRESS_SIGNATURE_B64_SIZE];
    if (ingress_signature_compute("fuzz_secret", 11, data, size, signature, NULL) != ST_OK)
        abort();
    if (ingress_signature_verify("fuzz_secret", 11, data, size, signature, strlen(signature),
                                 NULL) != ST_OK)
        abort();
    if (size >= 44 &&
        ingress_signature_verify("fuzz_secret", 11, data, size, (const char *)data, 44, NULL) ==
            ST_OK &&
        memcmp(data, signature, 44) != 0)
        abort();
    return 0;
}
