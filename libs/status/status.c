#include "status.h"

#include <stdio.h>
#include <string.h>

static const char *const names[] = {
    [ST_OK] = "ok",
    [ST_INVALID] = "invalid",
    [ST_LIMIT] = "limit",
    [ST_NOMEM] = "nomem",
    [ST_NOT_FOUND] = "not_found",
    [ST_CONFLICT] = "conflict",
    [ST_UNAVAILABLE] = "unavailable",
    [ST_TIMEOUT] = "timeout",
    [ST_IO] = "io",
    [ST_INTERNAL] = "internal",
};

const char *st_name(st_code code)
{
    if ((size_t)code >= sizeof(names) / sizeof(names[0]) || names[code] == NULL)
        return "unknown";
    return names[code];
}

st_code st_vfail(st_error *err, st_code code, const char *fmt, va_list ap)
{
    if (err == NULL)
        return code;
    err->code = code;
    err->cause[0] = '\0';
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    return code;
}

st_code st_fail(st_error *err, st_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st_vfail(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void st_set_cause(st_error *err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->cause, sizeof(err->cause), fmt, ap);
    va_end(ap);
}

void st_wrap(st_error *err, const char *what)
{
    if (err == NULL || what == NULL)
        return;
    char joined[ST_MESSAGE_MAX * 2];
    snprintf(joined, sizeof(joined), "%s: %s", what, err->message);
    size_t len = strnlen(joined, sizeof(err->message) - 1);
    memcpy(err->message, joined, len);
    err->message[len] = '\0';
}

void st_clear(st_error *err)
{
    if (err == NULL)
        return;
    err->code = ST_OK;
    err->cause[0] = '\0';
    err->message[0] = '\0';
}

int st_is_transient(st_code code)
{
    return code == ST_UNAVAILABLE || code == ST_TIMEOUT || code == ST_IO;
}
