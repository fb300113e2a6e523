/* libFuzzer target: ess-audit's redaction of a message body, of a subject, and the phone
 * scrubber, on arbitrary bytes.
 *
 * Besides "no crash, no leak, no undefined behaviour" it checks what audit_log relies on:
 * the stored payload is valid UTF-8 JSON that PostgreSQL's jsonb accepts (no NUL), the
 * scrubbed text is valid UTF-8 whenever its input was, and a subject stays a bounded string.
 * A violation aborts (a finding). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit_redact.h"
#include "vault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static vault_keys keys;
    static int ready;
    if (!ready) {
        unsigned char master[VAULT_KEY_BYTES] = {1, 2, 3};
        vault_keys_derive(master, &keys);
        ready = 1;
    }
    const char *text = (const char *)data;
    char *json = NULL;
    size_t len = 0;
    if (audit_redact_payload(&keys, text, size, &json, &len, NULL) == ST_OK) {
        if (!audit_utf8_valid(json, len) || strlen(json) != len)
            abort();
        cJSON *root = cJSON_Parse(json);
        if (root == NULL)
            abort();
        cJSON_Delete(root);
        free(json);
    }
    char *clean = NULL;
    size_t clean_len = 0;
    if (audit_scrub_text(&keys, text, size, &clean, &clean_len, NULL) == ST_OK) {
        if (audit_utf8_valid(text, size) && !audit_utf8_valid(clean, clean_len))
            abort();
        free(clean);
    }
    char *subject = malloc(size + 1);
    if (subject != NULL) {
        memcpy(subject, data, size);
        subject[size] = '\0';
        char out[300];
        audit_redact_subject(&keys, subject, out, sizeof(out));
        if (strnlen(out, sizeof(out)) >= sizeof(out))
            abort();
        free(subject);
    }
    return 0;
}
