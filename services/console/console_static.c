/* console_static: embedded web files. See console_static.h. */
#include "console_static.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "vault.h"

/* From ess_embed (CMakeLists.txt): every file under web/, paths "web/<name>". */
extern const ess_embedded_file console_web_files[];
extern const size_t console_web_files_count;

#define WEB_PREFIX "web/"
#define FILES_MAX 256
#define NAME_MAX_LEN 200

static console_static_file files[FILES_MAX];
static size_t file_count;

const char *console_static_type(const char *name)
{
    static const struct {
        const char *extension, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json; charset=utf-8"},
        {".geojson", "application/geo+json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".ico", "image/x-icon"},
        {".webmanifest", "application/manifest+json"},
        {".txt", "text/plain; charset=utf-8"},
        {".woff2", "font/woff2"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].extension) == 0)
            return types[i].type;
    return "application/octet-stream";
}

st_code console_static_init(st_error *err)
{
    file_count = 0;
    for (size_t i = 0; i < console_web_files_count; i++) {
        const ess_embedded_file *file = &console_web_files[i];
        if (strncmp(file->path, WEB_PREFIX, strlen(WEB_PREFIX)) != 0)
            continue;
        if (file_count == FILES_MAX)
            return st_fail(err, ST_LIMIT, "more than %d web files", FILES_MAX);
        unsigned char digest[32];
        char hex[17];
        SHA256((const unsigned char *)file->data, file->len, digest);
        vault_hex(digest, 8, hex);
        console_static_file *entry = &files[file_count++];
        entry->file = file;
        entry->content_type = console_static_type(file->path);
        entry->etag[0] = '"';
        memcpy(entry->etag + 1, hex, 16);
        entry->etag[17] = '"';
        entry->etag[18] = '\0';
    }
    return ST_OK;
}

size_t console_static_count(void)
{
    return file_count;
}

static const console_static_file *by_name(const char *name, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN)
        return NULL;
    for (size_t i = 0; i < file_count; i++) {
        const char *path = files[i].file->path + strlen(WEB_PREFIX);
        if (strlen(path) == len && memcmp(path, name, len) == 0)
            return &files[i];
    }
    return NULL;
}

const console_static_file *console_static_find(const char *path, size_t len)
{
    static const char prefix[] = "/static/";
    if ((len == 1 && path[0] == '/') || (len == 11 && memcmp(path, "/index.html", 11) == 0))
        return by_name("index.html", 10);
    if (len > sizeof(prefix) - 1 && memcmp(path, prefix, sizeof(prefix) - 1) == 0) {
        const char *name = path + sizeof(prefix) - 1;
        size_t name_len = len - (sizeof(prefix) - 1);
        /* Names are matched exactly against the embedded list: "..", "%2e" or "//" simply
         * match nothing. */
        return by_name(name, name_len);
    }
    return NULL;
}
