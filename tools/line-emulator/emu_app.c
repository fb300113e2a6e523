#include "emu_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "emu_api.h"
#include "emu_control.h"
#include "vault.h"

static int64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

void emu_bot_user_id_derive(const char *channel_secret, char out[EMU_LINE_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    static const char domain[] = "ess-line-emulator-bot:";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    memset(digest, 0, sizeof(digest));
    EVP_MD_CTX *context = EVP_MD_CTX_new();
    if (context != NULL && EVP_DigestInit_ex(context, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(context, domain, sizeof(domain) - 1) == 1 &&
        EVP_DigestUpdate(context, channel_secret, strlen(channel_secret)) == 1)
        EVP_DigestFinal_ex(context, digest, &digest_len);
    EVP_MD_CTX_free(context);
    out[0] = 'U';
    for (size_t i = 0; i < 16; i++) {
        out[1 + 2 * i] = hex[digest[i] >> 4];
        out[2 + 2 * i] = hex[digest[i] & 0xF];
    }
    out[EMU_LINE_ID_LEN] = '\0';
}

st_code emu_app_init(emu_app *app, const emu_config *config, emu_delivery_observer observer,
                     void *observer_closure, st_error *err)
{
    memset(app, 0, sizeof(*app));
    app->config = *config;
    app->wall_ms = emu_wall_ms;
    app->mono_ns = monotonic_ns;
    emu_ulid_init(&app->ulid);
    emu_faults_init(&app->faults);
    emu_rate_init(&app->rate, config->rate_limit, app->mono_ns());

    if (config->bot_user_id != NULL && config->bot_user_id[0] != '\0') {
        if (!emu_line_id_valid(config->bot_user_id, 'U'))
            return st_fail(err, ST_INVALID, "bot user id must be U + 32 lower-case hex digits");
        snprintf(app->bot_user_id, sizeof(app->bot_user_id), "%s", config->bot_user_id);
    } else {
        emu_bot_user_id_derive(config->channel_secret, app->bot_user_id);
    }
    emu_escape_mode escape = EMU_ESCAPE_SOMETIMES;
    if (config->escape_non_ascii != NULL &&
        emu_escape_mode_parse(config->escape_non_ascii, &escape) != ST_OK)
        return st_fail(err, ST_INVALID, "escape mode must be never, sometimes or always");

    emu_state_limits limits = {
        .reply_token_ttl_ms = config->reply_token_ttl_ms,
        .retry_key_ttl_ms = config->retry_key_ttl_ms,
        .record_max = (size_t)config->record_max,
        .conversation_max = (size_t)config->conversation_max,
    };
    st_code code = emu_state_create(&limits, &app->state);
    if (code != ST_OK)
        return st_fail(err, code, "creating the platform state");

    emu_delivery_config delivery_config = {
        .webhook_url = config->webhook_url,
        .channel_secret = config->channel_secret,
        .destination = app->bot_user_id,
        .timeout_ms = config->webhook_timeout_ms,
        .redelivery = config->redelivery,
        .retry_interval_ms = config->redelivery_interval_ms,
        .retry_max_interval_ms = config->redelivery_max_interval_ms,
        .max_attempts = config->redelivery_attempts,
        .escape = escape,
        .workers = (int)config->webhook_workers,
        .log_max = 10000,
        .queue_max = 100000,
    };
    code = emu_delivery_create(&delivery_config, observer, observer_closure, &app->delivery);
    if (code != ST_OK)
        return st_fail(err, code, "starting the webhook workers");
    return ST_OK;
}

void emu_app_done(emu_app *app)
{
    emu_delivery_destroy(app->delivery);
    app->delivery = NULL;
    emu_state_destroy(app->state);
    app->state = NULL;
    emu_ulid_done(&app->ulid);
}

void emu_response_done(emu_response *response)
{
    free(response->body);
    response->body = NULL;
    response->body_len = 0;
}

static bool has_prefix(emu_str s, const char *prefix)
{
    size_t len = strlen(prefix);
    return s.ptr != NULL && s.len >= len && memcmp(s.ptr, prefix, len) == 0;
}

void emu_app_handle(emu_app *app, const emu_request *request, emu_response *response)
{
    memset(response, 0, sizeof(*response));
    if (has_prefix(request->path, "/v2/"))
        emu_api_handle(app, request, response);
    else if (has_prefix(request->path, "/_emulator/") || emu_str_is(request->path, "/_emulator"))
        emu_control_handle(app, request, response);
    else
        emu_respond_error(response, 404, "Not found", NULL);
}

/* ---- helpers ---- */

void emu_respond_json(emu_response *response, int status, const cJSON *root)
{
    free(response->body);
    response->body = NULL;
    char *printed = root != NULL ? cJSON_PrintUnformatted(root) : NULL;
    if (printed == NULL) {
        static const char failure[] = "{\"message\":\"Internal server error\"}";
        response->status = 500;
        response->body = strdup(failure);
        response->body_len = response->body != NULL ? sizeof(failure) - 1 : 0;
        return;
    }
    response->status = status;
    response->body = printed;
    response->body_len = strlen(printed);
}

void emu_respond_error(emu_response *response, int status, const char *message,
                       const emu_problems *problems)
{
    free(response->body);
    response->body = NULL;
    response->body_len = 0;
    response->status = status;
    if (emu_error_body(message, problems, &response->body, &response->body_len) != ST_OK) {
        response->status = 500;
        response->body = NULL;
        response->body_len = 0;
    }
}

bool emu_str_is(emu_str s, const char *text)
{
    size_t len = strlen(text);
    return s.ptr != NULL && s.len == len && memcmp(s.ptr, text, len) == 0;
}

bool emu_str_copy(emu_str s, char *out, size_t out_size)
{
    if (out_size == 0)
        return false;
    if (s.ptr == NULL || s.len >= out_size) {
        out[0] = '\0';
        return false;
    }
    memcpy(out, s.ptr, s.len);
    out[s.len] = '\0';
    return true;
}

/* Percent-decodes value into out ("+" is a space); false when malformed or too long. */
static bool form_decode(emu_str value, char *out, size_t out_size)
{
    size_t written = 0;
    for (size_t i = 0; i < value.len; i++) {
        char c = value.ptr[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= value.len)
                return false;
            int high = vault_hex_digit(value.ptr[i + 1]), low = vault_hex_digit(value.ptr[i + 2]);
            if (high < 0 || low < 0)
                return false;
            c = (char)(high * 16 + low);
            i += 2;
        }
        if (written + 1 >= out_size)
            return false;
        out[written++] = c;
    }
    out[written] = '\0';
    return true;
}

bool emu_query_get(emu_str query, const char *name, char *out, size_t out_size)
{
    if (query.ptr == NULL || out_size == 0)
        return false;
    size_t name_len = strlen(name);
    size_t at = 0;
    if (query.len > 0 && query.ptr[0] == '?')
        at = 1;
    while (at < query.len) {
        size_t end = at;
        while (end < query.len && query.ptr[end] != '&')
            end++;
        if (end - at > name_len && memcmp(query.ptr + at, name, name_len) == 0 &&
            query.ptr[at + name_len] == '=') {
            emu_str value = {query.ptr + at + name_len + 1, end - at - name_len - 1};
            if (!form_decode(value, out, out_size)) {
                out[0] = '\0';
                return false;
            }
            return true;
        }
        at = end + 1;
    }
    return false;
}
