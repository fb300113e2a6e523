/* Files compiled into a binary by ess_embed() in cmake/ess.cmake. */
#ifndef ESS_EMBEDDED_H
#define ESS_EMBEDDED_H
#include <stddef.h>

typedef struct ess_embedded_file {
    const char *path; /* relative to the embedding directory, e.g. "0001_baseline.sql" */
    const char *data; /* NUL-terminated after len bytes; static storage */
    size_t len;
} ess_embedded_file;

#endif
