#include "conv_db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "outbox.h"
#include "vault.h"

#define COMMAND_ID_MAX 120

char *conv_db_bytea_param(const unsigned char *bytes, size_t len)
{
    char *text = malloc(2 * len + 3);
    if (text == NULL)
        return NULL;
    text[0] = '\\';
    text[1] = 'x';
    vault_hex(bytes, len, text + 2);
    return text;
}

st_code conv_db_bytea_decode(const char *text, unsigned char **ret_bytes, size_t *ret_len)
{
    /* Only bytea text form: a column of another type must not pass for one. */
    if (text == NULL || text[0] != '\\' || text[1] != 'x')
        return ST_INVALID;
    return vault_unhex(text, ret_bytes, ret_len);
}

char *conv_db_base64(const unsigned char *bytes, size_t len)
{
    char *text = malloc(4 * ((len + 2) / 3) + 1);
    if (text != NULL)
        EVP_EncodeBlock((unsigned char *)text, bytes, (int)len);
    return text;
}

st_code conv_db_base64_decode(const char *text, unsigned char **ret_bytes, size_t *ret_len)
{
    size_t len = text != NULL ? strlen(text) : 0;
    if (len == 0 || len % 4 != 0 || len > 4 * ((VAULT_PLAIN_MAX + VAULT_SEAL_OVERHEAD + 2) / 3))
        return ST_INVALID;
    unsigned char *bytes = malloc(len / 4 * 3 + 1);
    if (bytes == NULL)
        return ST_NOMEM;
    int decoded = EVP_DecodeBlock(bytes, (const unsigned char *)text, (int)len);
    if (decoded < 0) {
        free(bytes);
        return ST_INVALID;
    }
    size_t padding = (text[len - 1] == '=') + (text[len - 2] == '=');
    *ret_bytes = bytes;
    *ret_len = (size_t)decoded - padding;
    return ST_OK;
}

static st_code seal(const vault_keys *keys, const char *context, const char *text, bool base64,
                    char **ret_text, st_error *err)
{
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    st_code status = vault_seal(keys, context, text, strlen(text), &sealed, &sealed_len, err);
    if (status != ST_OK)
        return status;
    *ret_text =
        base64 ? conv_db_base64(sealed, sealed_len) : conv_db_bytea_param(sealed, sealed_len);
    free(sealed);
    return *ret_text != NULL ? ST_OK : st_fail(err, ST_NOMEM, "out of memory sealing a value");
}

st_code conv_db_seal_param(const vault_keys *keys, const char *context, const char *text,
                           char **ret_param, st_error *err)
{
    return seal(keys, context, text, false, ret_param, err);
}

st_code conv_db_seal_base64(const vault_keys *keys, const char *context, const char *text,
                            char **ret_text, st_error *err)
{
    return seal(keys, context, text, true, ret_text, err);
}

st_code conv_db_open_column(const vault_keys *keys, const char *context, const char *column,
                            char **ret_plain, st_error *err)
{
    unsigned char *sealed = NULL;
    size_t sealed_len = 0, plain_len = 0;
    char *plain = NULL;
    st_code status = conv_db_bytea_decode(column, &sealed, &sealed_len);
    if (status != ST_OK)
        return st_fail(err, status, "a sealed column is not bytea");
    status = vault_open(keys, context, sealed, sealed_len, &plain, &plain_len, err);
    free(sealed);
    if (status != ST_OK)
        return st_fail(err, ST_INVALID, "a sealed value does not open (another ESS_DATA_KEY?)");
    *ret_plain = plain;
    return ST_OK;
}

void conv_db_wipe_free(char *text)
{
    if (text == NULL)
        return;
    OPENSSL_cleanse(text, strlen(text));
    free(text);
}

st_code conv_db_add_event(db *d, const char *subject, const char *msg_id, const cJSON *json,
                          bool *ret_added, st_error *err)
{
    char *payload = cJSON_PrintUnformatted(json);
    if (payload == NULL)
        return st_fail(err, ST_NOMEM, "out of memory printing an event");
    bool added = false;
    st_code status = outbox_add(d, subject, msg_id, payload, strlen(payload), &added, err);
    if (status == ST_OK && ret_added != NULL)
        *ret_added = added;
    free(payload);
    return status;
}

st_code conv_db_add_command(db *d, const vault_keys *keys, const char *subject,
                            const char *command_id, const cJSON *json, bool *ret_added,
                            st_error *err)
{
    char *payload = cJSON_PrintUnformatted(json);
    if (payload == NULL)
        return st_fail(err, ST_NOMEM, "out of memory printing a command");
    bool added = false;
    st_code status =
        outbox_add_sealed(d, keys, subject, command_id, payload, strlen(payload), &added, err);
    if (status == ST_OK && ret_added != NULL)
        *ret_added = added;
    conv_db_wipe_free(payload);
    return status;
}

st_code conv_db_add_push(db *d, const vault_keys *keys, const char *key, const char *to,
                         bool silent, const cJSON *messages, bool *ret_added, st_error *err)
{
    char command_id[COMMAND_ID_MAX + 2];
    int written = snprintf(command_id, sizeof(command_id), "push.%s", key);
    if (written < 0 || (size_t)written > COMMAND_ID_MAX)
        return st_fail(err, ST_LIMIT, "command id longer than %d", COMMAND_ID_MAX);
    cJSON *command = cJSON_CreateObject();
    cJSON *copy = cJSON_Duplicate(messages, true);
    if (command == NULL || copy == NULL) {
        cJSON_Delete(command);
        cJSON_Delete(copy);
        return st_fail(err, ST_NOMEM, "out of memory building a push");
    }
    cJSON_AddStringToObject(command, "command_id", command_id);
    cJSON_AddStringToObject(command, "to", to);
    cJSON_AddBoolToObject(command, "notification_disabled", silent);
    cJSON_AddItemToObject(command, "messages", copy);
    st_code status =
        conv_db_add_command(d, keys, "line.out.push", command_id, command, ret_added, err);
    cJSON_Delete(command);
    return status;
}

void conv_db_int_text(char *out, size_t size, int64_t value)
{
    snprintf(out, size, "%" PRId64, value);
}

int64_t conv_db_int_value(const db_result *result, int row, int col)
{
    const char *text = db_result_value(result, row, col);
    return text != NULL ? strtoll(text, NULL, 10) : 0;
}
