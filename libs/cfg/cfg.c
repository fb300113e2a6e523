#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#define CFG_STRING_DEFAULT_MAX 4096
#define CFG_FILE_MAX (64 * 1024)
#define CFG_PROBLEMS_MAX 16384

/* Problems accumulate in one bounded text; the count is reported in front. */
typedef struct problems {
    char text[CFG_PROBLEMS_MAX];
    size_t len;
    int count;
} problems;

static void add_problem(problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_problem(problems *p, const char *fmt, ...)
{
    p->count++;
    if (p->len + 4 >= sizeof(p->text))
        return;
    if (p->len > 0) {
        memcpy(p->text + p->len, "; ", 2);
        p->len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->text + p->len, sizeof(p->text) - p->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        p->len += (size_t)n < sizeof(p->text) - p->len ? (size_t)n : sizeof(p->text) - p->len - 1;
}

/* Quotes a given value for a problem text: secrets are never shown, long values are cut. */
static void describe_value(const cfg_field *f, const char *value, char *out, size_t out_size)
{
    if (f->secret) {
        snprintf(out, out_size, "the given value");
        return;
    }
    snprintf(out, out_size, "\"%.60s%s\"", value, strlen(value) > 60 ? "..." : "");
}

static const char *type_name(cfg_type type)
{
    switch (type) {
    case CFG_T_STRING: return "string";
    case CFG_T_INT: return "integer";
    case CFG_T_BOOL: return "boolean";
    case CFG_T_DURATION: return "duration";
    case CFG_T_SIZE: return "size";
    case CFG_T_ENUM: return "one of";
    case CFG_T_LISTEN: return "host:port";
    case CFG_T_URL: return "URL";
    case CFG_T_KEY32: return "32-byte key, base64";
    }
    return "?";
}

static st_code parse_int(const char *text, int64_t *ret)
{
    if (text == NULL || *text == '\0')
        return ST_INVALID;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return ST_INVALID;
    *ret = (int64_t)v;
    return ST_OK;
}

/* Splits "<number><unit>" into its parts; the number may have a fraction ("1.5s"). */
static st_code scaled(const char *text, const char *const *units, const int64_t *factors,
                      size_t unit_count, int64_t plain_factor, int64_t *ret)
{
    if (text == NULL)
        return ST_INVALID;
    while (isspace((unsigned char)*text))
        text++;
    if (!isdigit((unsigned char)*text))
        return ST_INVALID;
    errno = 0;
    char *end = NULL;
    double number = strtod(text, &end);
    if (errno != 0 || end == text || number < 0)
        return ST_INVALID;
    while (isspace((unsigned char)*end))
        end++;
    int64_t factor = -1;
    if (*end == '\0') {
        factor = plain_factor;
    } else {
        for (size_t i = 0; i < unit_count; i++)
            if (strcmp(end, units[i]) == 0)
                factor = factors[i];
    }
    if (factor < 0)
        return ST_INVALID;
    double value = number * (double)factor;
    if (value > (double)INT64_MAX / 2)
        return ST_LIMIT;
    *ret = (int64_t)value;
    return ST_OK;
}

st_code cfg_parse_duration_ms(const char *text, int64_t *ret_ms)
{
    static const char *const units[] = {"ms", "s", "m", "h", "d"};
    static const int64_t factors[] = {1, 1000, 60000, 3600000, 86400000};
    return scaled(text, units, factors, 5, 1, ret_ms);
}

st_code cfg_parse_size(const char *text, int64_t *ret_bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "KB", "MB", "GB", "k", "K", "M", "G"};
    static const int64_t factors[] = {1,          1024,       1048576, 1073741824,
                                      1000,       1000000,    1000000000,
                                      1024,       1024,       1048576, 1073741824};
    return scaled(text, units, factors, 11, 1, ret_bytes);
}

st_code cfg_split_listen(const char *listen, char *host_out, size_t host_size,
                         uint16_t *ret_port)
{
    if (listen == NULL || host_size == 0)
        return ST_INVALID;
    const char *colon = NULL;
    const char *host = listen;
    size_t host_len;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (close == NULL || close[1] != ':')
            return ST_INVALID;
        host = listen + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (colon == NULL)
            return ST_INVALID;
        host_len = (size_t)(colon - listen);
        if (memchr(listen, ':', host_len) != NULL)
            return ST_INVALID; /* bare IPv6 must be bracketed */
    }
    if (host_len == 0 || host_len >= host_size)
        return ST_INVALID;
    for (size_t i = 0; i < host_len; i++) {
        char c = host[i];
        if (!(isalnum((unsigned char)c) || c == '.' || c == '-' || c == ':' || c == '_'))
            return ST_INVALID;
    }
    int64_t port = 0;
    if (parse_int(colon + 1, &port) != ST_OK || port < 0 || port > 65535)
        return ST_INVALID;
    memcpy(host_out, host, host_len);
    host_out[host_len] = '\0';
    *ret_port = (uint16_t)port;
    return ST_OK;
}

static bool choice_listed(const char *choices, const char *value)
{
    size_t value_len = strlen(value);
    const char *p = choices;
    while (p != NULL && *p != '\0') {
        const char *bar = strchr(p, '|');
        size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (len == value_len && strncasecmp(p, value, len) == 0)
            return true;
        p = bar != NULL ? bar + 1 : NULL;
    }
    return false;
}

static st_code decode_key32(const char *text, unsigned char out[32])
{
    size_t len = strlen(text);
    while (len > 0 && isspace((unsigned char)text[len - 1]))
        len--;
    if (len != 44) /* 32 bytes in standard base64 with one '=' */
        return ST_INVALID;
    unsigned char decoded[48];
    int n = EVP_DecodeBlock(decoded, (const unsigned char *)text, (int)len);
    if (n != 33 || text[len - 1] != '=' || text[len - 2] == '=')
        return ST_INVALID;
    memcpy(out, decoded, 32);
    return ST_OK;
}

/* Reads NAME_FILE's content into a heap string; trailing newlines removed. */
static st_code read_value_file(const char *path, char **ret_value)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return ST_IO;
    char *buf = malloc(CFG_FILE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        return ST_NOMEM;
    }
    size_t n = fread(buf, 1, CFG_FILE_MAX + 1, f);
    fclose(f);
    if (n > CFG_FILE_MAX) {
        free(buf);
        return ST_LIMIT;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    *ret_value = buf;
    return ST_OK;
}

static char *dup_string(const char *s)
{
    size_t len = strlen(s);
    char *copy = malloc(len + 1);
    if (copy != NULL)
        memcpy(copy, s, len + 1);
    return copy;
}

/* Parses one value into target. On a problem, records it and returns false. */
static bool store_value(const cfg_field *f, const char *value, bool from_default, void *target,
                        problems *p)
{
    char shown[96];
    describe_value(f, value, shown, sizeof(shown));
    const char *origin = from_default ? " (the built-in default)" : "";
    unsigned char *slot = (unsigned char *)target + f->offset;
    int64_t number = 0;
    st_code status;

    switch (f->type) {
    case CFG_T_STRING: {
        int64_t max = f->max > 0 ? f->max : CFG_STRING_DEFAULT_MAX;
        size_t len = strlen(value);
        if ((int64_t)len > max) {
            add_problem(p, "%s: longer than %lld characters", f->name, (long long)max);
            return false;
        }
        if ((int64_t)len < f->min) {
            add_problem(p, "%s: must not be empty", f->name);
            return false;
        }
        break;
    }
    case CFG_T_INT:
        if (parse_int(value, &number) != ST_OK) {
            add_problem(p, "%s: %s%s is not an integer", f->name, shown, origin);
            return false;
        }
        if (number < f->min || number > f->max) {
            add_problem(p, "%s: %s is outside %lld..%lld", f->name, shown, (long long)f->min,
                        (long long)f->max);
            return false;
        }
        memcpy(slot, &number, sizeof(number));
        return true;
    case CFG_T_DURATION:
        status = cfg_parse_duration_ms(value, &number);
        if (status != ST_OK) {
            add_problem(p, "%s: %s%s is not a duration (like 500ms, 2s, 30m, 1h)", f->name,
                        shown, origin);
            return false;
        }
        if (number < f->min || number > f->max) {
            add_problem(p, "%s: %s is outside %lldms..%lldms", f->name, shown,
                        (long long)f->min, (long long)f->max);
            return false;
        }
        memcpy(slot, &number, sizeof(number));
        return true;
    case CFG_T_SIZE:
        status = cfg_parse_size(value, &number);
        if (status != ST_OK) {
            add_problem(p, "%s: %s%s is not a size (like 512, 64KiB, 1MiB)", f->name, shown,
                        origin);
            return false;
        }
        if (number < f->min || number > f->max) {
            add_problem(p, "%s: %s is outside %lld..%lld bytes", f->name, shown,
                        (long long)f->min, (long long)f->max);
            return false;
        }
        memcpy(slot, &number, sizeof(number));
        return true;
    case CFG_T_BOOL: {
        bool flag;
        if (choice_listed("1|true|yes|on", value))
            flag = true;
        else if (choice_listed("0|false|no|off", value))
            flag = false;
        else {
            add_problem(p, "%s: %s is not a boolean (true/false, 1/0, yes/no, on/off)", f->name,
                        shown);
            return false;
        }
        memcpy(slot, &flag, sizeof(flag));
        return true;
    }
    case CFG_T_ENUM:
        if (!choice_listed(f->choices, value)) {
            add_problem(p, "%s: %s is not one of %s", f->name, shown, f->choices);
            return false;
        }
        break;
    case CFG_T_LISTEN: {
        char host[256];
        uint16_t port = 0;
        if (cfg_split_listen(value, host, sizeof(host), &port) != ST_OK) {
            add_problem(p, "%s: %s is not host:port", f->name, shown);
            return false;
        }
        if (port < f->min) {
            add_problem(p, "%s: %s has port %u, below %lld", f->name, shown, port,
                        (long long)f->min);
            return false;
        }
        break;
    }
    case CFG_T_URL: {
        const char *sep = strstr(value, "://");
        char scheme[32];
        size_t scheme_len = sep != NULL ? (size_t)(sep - value) : 0;
        if (sep == NULL || scheme_len == 0 || scheme_len >= sizeof(scheme) || sep[3] == '\0') {
            add_problem(p, "%s: %s is not a URL (scheme://host...)", f->name, shown);
            return false;
        }
        memcpy(scheme, value, scheme_len);
        scheme[scheme_len] = '\0';
        if (f->choices != NULL && !choice_listed(f->choices, scheme)) {
            add_problem(p, "%s: %s has scheme '%s', expected %s", f->name, shown, scheme,
                        f->choices);
            return false;
        }
        if (strlen(value) > CFG_STRING_DEFAULT_MAX) {
            add_problem(p, "%s: longer than %d characters", f->name, CFG_STRING_DEFAULT_MAX);
            return false;
        }
        break;
    }
    case CFG_T_KEY32: {
        cfg_key key = {.present = true};
        if (decode_key32(value, key.bytes) != ST_OK) {
            add_problem(p, "%s: %s is not 32 bytes in base64 (44 characters; make one with "
                           "`openssl rand -base64 32`)",
                        f->name, shown);
            return false;
        }
        memcpy(slot, &key, sizeof(key));
        return true;
    }
    }
    /* String-valued types. */
    char *copy = dup_string(value);
    if (copy == NULL) {
        add_problem(p, "%s: out of memory", f->name);
        return false;
    }
    memcpy(slot, &copy, sizeof(copy));
    return true;
}

static const char *env_lookup(const char *name, void *closure)
{
    (void)closure;
    return getenv(name);
}

static bool holds_string(cfg_type type)
{
    return type == CFG_T_STRING || type == CFG_T_ENUM || type == CFG_T_LISTEN ||
           type == CFG_T_URL;
}

void cfg_release(const cfg_field *fields, size_t count, void *target)
{
    if (target == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        unsigned char *slot = (unsigned char *)target + fields[i].offset;
        if (holds_string(fields[i].type)) {
            char *value = NULL;
            memcpy(&value, slot, sizeof(value));
            free(value);
            value = NULL;
            memcpy(slot, &value, sizeof(value));
        } else if (fields[i].type == CFG_T_KEY32) {
            OPENSSL_cleanse(slot, sizeof(cfg_key));
        }
    }
}

static void load_table(const cfg_field *fields, size_t count, cfg_lookup_fn lookup,
                       void *closure, void *target, problems *p)
{
    for (size_t i = 0; i < count; i++) {
        const cfg_field *f = &fields[i];
        char file_var[160];
        snprintf(file_var, sizeof(file_var), "%s_FILE", f->name);
        const char *given = lookup(f->name, closure);
        const char *file_path = lookup(file_var, closure);
        char *from_file = NULL;
        if (given != NULL && given[0] == '\0')
            given = NULL; /* an empty variable counts as not given (compose's ${X:-}) */
        if (file_path != NULL && file_path[0] != '\0') {
            if (given != NULL) {
                add_problem(p, "%s and %s are both given; give one", f->name, file_var);
                continue;
            }
            st_code status = read_value_file(file_path, &from_file);
            if (status != ST_OK) {
                add_problem(p, "%s: cannot read the file it names (%s)", file_var,
                            st_name(status));
                continue;
            }
            given = from_file;
        }
        if (given != NULL) {
            store_value(f, given, false, target, p);
        } else if (f->default_value != NULL) {
            store_value(f, f->default_value, true, target, p);
        } else if (f->required) {
            add_problem(p, "%s is required (%s)", f->name, f->help != NULL ? f->help : "");
        }
        if (from_file != NULL) {
            OPENSSL_cleanse(from_file, strlen(from_file));
            free(from_file);
        }
    }
}

st_code cfg_load_tables(const cfg_table *tables, size_t table_count, cfg_lookup_fn lookup,
                        void *closure, char **ret_problems)
{
    problems *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return ST_NOMEM;
    if (lookup == NULL)
        lookup = env_lookup;
    for (size_t t = 0; t < table_count; t++)
        load_table(tables[t].fields, tables[t].count, lookup, closure, tables[t].target, p);

    if (p->count > 0) {
        for (size_t t = 0; t < table_count; t++)
            cfg_release(tables[t].fields, tables[t].count, tables[t].target);
        if (ret_problems != NULL) {
            size_t size = p->len + 64;
            char *text = malloc(size);
            if (text != NULL)
                snprintf(text, size, "configuration has %d problem%s: %s", p->count,
                         p->count == 1 ? "" : "s", p->text);
            *ret_problems = text;
        }
        free(p);
        return ST_INVALID;
    }
    free(p);
    return ST_OK;
}

st_code cfg_load(const cfg_field *fields, size_t count, cfg_lookup_fn lookup, void *closure,
                 void *target, char **ret_problems)
{
    const cfg_table table = {.fields = fields, .count = count, .target = target};
    return cfg_load_tables(&table, 1, lookup, closure, ret_problems);
}

void cfg_print_help(FILE *out, const cfg_field *fields, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const cfg_field *f = &fields[i];
        fprintf(out, "  %s", f->name);
        fprintf(out, "  (%s", type_name(f->type));
        if (f->type == CFG_T_ENUM || (f->type == CFG_T_URL && f->choices != NULL))
            fprintf(out, " %s", f->choices);
        if (f->type == CFG_T_INT || f->type == CFG_T_SIZE)
            fprintf(out, ", %lld..%lld", (long long)f->min, (long long)f->max);
        if (f->type == CFG_T_DURATION)
            fprintf(out, ", %lldms..%lldms", (long long)f->min, (long long)f->max);
        fprintf(out, ")");
        if (f->secret)
            fprintf(out, " (secret)");
        if (f->default_value != NULL && !f->secret)
            fprintf(out, " default: %s", f->default_value);
        else if (f->required)
            fprintf(out, " (required)");
        fprintf(out, "\n      %s\n", f->help != NULL ? f->help : "");
    }
}
