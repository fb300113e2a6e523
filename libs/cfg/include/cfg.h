/* cfg: configuration from a declarative table of environment variables.
 *
 * A service describes every variable it reads in a static cfg_field table: type, default,
 * bounds, whether it is required or secret, and where the parsed value goes (offsetof into
 * the service's own config struct). cfg_load validates the whole table at once and reports
 * every problem in one message; secret values never appear in any output.
 *
 *   typedef struct { char *listen; int64_t max_body; cfg_key data_key; } ingress_config;
 *   static const cfg_field fields[] = {
 *       CFG_LISTEN("ESS_INGRESS_LISTEN", "127.0.0.1:8080", "webhook address", ingress_config, listen),
 *       CFG_SIZE("ESS_INGRESS_MAX_BODY", "1MiB", 1, 64 << 20, "...", ingress_config, max_body),
 *   };
 *
 * Types and where they land:
 *   CFG_T_STRING   char *   (heap, freed by cfg_release); max = maximum length (0 = 4096)
 *   CFG_T_INT      int64_t  within [min, max]
 *   CFG_T_BOOL     bool     "1|0|true|false|yes|no|on|off"
 *   CFG_T_DURATION int64_t  milliseconds; "250ms", "2s", "30m", "1h", "1d" or a plain number
 *                           of milliseconds; within [min, max] ms
 *   CFG_T_SIZE     int64_t  bytes; "512", "64KiB", "1MiB", "2GiB" (also KB/MB/GB = 1000^n)
 *   CFG_T_ENUM     char *   one of `choices` ("debug|info|warn|error")
 *   CFG_T_LISTEN   char *   "host:port" with port 1..65535 (port 0 allowed when min == 0)
 *   CFG_T_URL      char *   scheme://... with a scheme from `choices` ("nats|tls")
 *   CFG_T_KEY32    cfg_key  32 bytes given as standard base64
 *
 * A variable NAME may also be given as NAME_FILE=path (docker secrets): the file's content,
 * trailing newline removed, is the value. Giving both is a problem. */
#ifndef ESS_CFG_H
#define ESS_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "status.h"

typedef enum cfg_type {
    CFG_T_STRING,
    CFG_T_INT,
    CFG_T_BOOL,
    CFG_T_DURATION,
    CFG_T_SIZE,
    CFG_T_ENUM,
    CFG_T_LISTEN,
    CFG_T_URL,
    CFG_T_KEY32,
} cfg_type;

typedef struct cfg_key {
    unsigned char bytes[32];
    bool present;
} cfg_key;

typedef struct cfg_field {
    const char *name;          /* environment variable */
    cfg_type type;
    const char *default_value; /* textual default, parsed like a given value; NULL = none */
    bool required;             /* no default and must be given */
    bool secret;               /* value never printed (help shows "(secret)") */
    int64_t min, max;          /* INT, DURATION (ms), SIZE (bytes); STRING: max length */
    const char *choices;       /* ENUM values / URL schemes, '|' separated */
    const char *help;          /* one line for --help and the README */
    size_t offset;             /* where the value goes in the target struct */
} cfg_field;

#define CFG_FIELD_(n, t, def, req, sec, lo, hi, ch, h, st, m)                                  \
    {.name = (n), .type = (t), .default_value = (def), .required = (req), .secret = (sec),     \
     .min = (lo), .max = (hi), .choices = (ch), .help = (h), .offset = offsetof(st, m)}

#define CFG_STRING(n, def, maxlen, h, st, m) CFG_FIELD_(n, CFG_T_STRING, def, false, false, 0, maxlen, NULL, h, st, m)
#define CFG_REQUIRED_STRING(n, maxlen, h, st, m) CFG_FIELD_(n, CFG_T_STRING, NULL, true, false, 0, maxlen, NULL, h, st, m)
#define CFG_SECRET(n, maxlen, h, st, m) CFG_FIELD_(n, CFG_T_STRING, NULL, true, true, 1, maxlen, NULL, h, st, m)
#define CFG_INT(n, def, lo, hi, h, st, m) CFG_FIELD_(n, CFG_T_INT, def, false, false, lo, hi, NULL, h, st, m)
#define CFG_BOOL(n, def, h, st, m) CFG_FIELD_(n, CFG_T_BOOL, def, false, false, 0, 0, NULL, h, st, m)
#define CFG_DURATION(n, def, lo, hi, h, st, m) CFG_FIELD_(n, CFG_T_DURATION, def, false, false, lo, hi, NULL, h, st, m)
#define CFG_SIZE(n, def, lo, hi, h, st, m) CFG_FIELD_(n, CFG_T_SIZE, def, false, false, lo, hi, NULL, h, st, m)
#define CFG_ENUM(n, def, ch, h, st, m) CFG_FIELD_(n, CFG_T_ENUM, def, false, false, 0, 0, ch, h, st, m)
#define CFG_LISTEN(n, def, h, st, m) CFG_FIELD_(n, CFG_T_LISTEN, def, false, false, 1, 65535, NULL, h, st, m)
#define CFG_URL(n, def, schemes, h, st, m) CFG_FIELD_(n, CFG_T_URL, def, false, false, 0, 0, schemes, h, st, m)
#define CFG_KEY32(n, h, st, m) CFG_FIELD_(n, CFG_T_KEY32, NULL, true, true, 0, 0, NULL, h, st, m)

/* Looks a variable up; returns a borrowed string or NULL. Default: getenv. Tests pass their
 * own to avoid touching the process environment. */
typedef const char *(*cfg_lookup_fn)(const char *name, void *closure);

/* Validates every field and stores parsed values into target (a struct the fields' offsets
 * refer to). On ST_OK the target is filled (free with cfg_release). On ST_INVALID nothing in
 * target is left allocated and *ret_problems gets a heap string (caller frees) naming every
 * problem, one per "; "-separated clause, e.g.
 *   "configuration has 2 problems: ESS_LINE_CHANNEL_SECRET is required; ESS_INGRESS_LISTEN:
 *    \"x\" is not host:port"
 * Secret values are never quoted. lookup NULL = getenv. Not thread-safe with setenv. */
st_code cfg_load(const cfg_field *fields, size_t count, cfg_lookup_fn lookup, void *closure,
                 void *target, char **ret_problems);

/* Several tables at once (a service's own and the runtime's common one), still reported as
 * one message. Same contract as cfg_load. */
typedef struct cfg_table {
    const cfg_field *fields;
    size_t count;
    void *target;
} cfg_table;
st_code cfg_load_tables(const cfg_table *tables, size_t table_count, cfg_lookup_fn lookup,
                        void *closure, char **ret_problems);

/* Frees what cfg_load allocated inside target (strings); accepts a zeroed target. */
void cfg_release(const cfg_field *fields, size_t count, void *target);

/* Prints one block per field: name, type, default or "(required)", bounds, help; secrets
 * marked "(secret)". */
void cfg_print_help(FILE *out, const cfg_field *fields, size_t count);

/* Splits "host:port" (also "[v6]:port"); host is copied into host_out (NUL-terminated). */
st_code cfg_split_listen(const char *listen, char *host_out, size_t host_size,
                         uint16_t *ret_port);

/* Parsers shared with other inputs (exposed for tests and for essctl). */
st_code cfg_parse_duration_ms(const char *text, int64_t *ret_ms);
st_code cfg_parse_size(const char *text, int64_t *ret_bytes);

#endif
