/* console_static: the web app's files (services/console/web/), compiled into the binary with
 * ess_embed (no file is read at run time), served at GET / (index.html) and
 * GET /static/<file>, with a content type by extension, Cache-Control: no-cache and an ETag
 * (the browser revalidates and gets 304 while the file is unchanged).
 *
 * Thread-safe after console_static_init (read-only tables). */
#ifndef CONSOLE_STATIC_H
#define CONSOLE_STATIC_H

#include <stdbool.h>
#include <stddef.h>

#include "ess_embedded.h"
#include "status.h"

typedef struct console_static_file {
    const ess_embedded_file *file;
    const char *content_type; /* static text */
    char etag[24];            /* "\"<16 hex digits of SHA-256>\"" */
} console_static_file;

/* Computes the ETags. Call once before serving. */
st_code console_static_init(st_error *err);

/* The file for a request path ("/" and "/index.html" → index.html, "/static/<name>" →
 * <name>), or NULL. path need not be NUL-terminated. */
const console_static_file *console_static_find(const char *path, size_t len);

/* Content type by the name's extension (application/octet-stream when unknown). */
const char *console_static_type(const char *name);

/* How many files are embedded (0 when the web app was not built in). */
size_t console_static_count(void);

#endif
