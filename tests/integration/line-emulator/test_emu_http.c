/* The line-emulator binary over real HTTP: LINE's status codes and headers, retry keys, reply
 * token expiry, the rate limit, faults at the socket, signed webhooks delivered to a receiver
 * run by this test and redelivered, a clean stop, and the chat CLI.
 *
 * Every case starts its own emulator on a free port (its own configuration) and, when it
 * needs one, its own webhook receiver: a tiny HTTP/1.1 listener on a thread of this process
 * that records each request and answers from a script. */
#include "testkit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SECRET "integration_secret"
#define TOKEN "integration-token"
#define AUTH_HEADER "Authorization: Bearer " TOKEN
#define JSON_HEADER "Content-Type: application/json"

/* ---- HTTP client with response headers ---- */

typedef struct reply {
    long status;
    char *body;
    char *headers;
    int curl_code;
} reply;

typedef struct grow_buffer {
    char *data;
    size_t len;
} grow_buffer;

static size_t append(char *data, size_t size, size_t count, void *closure)
{
    grow_buffer *buffer = closure;
    size_t len = size * count;
    char *grown = realloc(buffer->data, buffer->len + len + 1);
    if (grown == NULL)
        return 0;
    buffer->data = grown;
    memcpy(buffer->data + buffer->len, data, len);
    buffer->len += len;
    buffer->data[buffer->len] = '\0';
    return len;
}

static reply http(const char *method, const char *url, const char *const *headers, const char *body,
                  size_t body_len, long timeout_ms)
{
    reply result = {0};
    grow_buffer body_buffer = {0}, header_buffer = {0};
    CURL *curl = curl_easy_init();
    assert_non_null(curl);
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        list = curl_slist_append(list, headers[i]);
    list = curl_slist_append(list, "Expect:");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body_buffer);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, append);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &header_buffer);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    result.curl_code = (int)curl_easy_perform(curl);
    if (result.curl_code == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &result.status);
    result.body = body_buffer.data != NULL ? body_buffer.data : strdup("");
    result.headers = header_buffer.data != NULL ? header_buffer.data : strdup("");
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return result;
}

static void reply_free(reply *result)
{
    free(result->body);
    free(result->headers);
    result->body = result->headers = NULL;
}

/* Value of a response header (case-insensitive name) into out; false when absent. */
static bool header(const reply *result, const char *name, char *out, size_t out_size)
{
    size_t name_len = strlen(name);
    for (const char *line = result->headers; line != NULL && *line != '\0';) {
        const char *end = strstr(line, "\r\n");
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (len > name_len && strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
            const char *value = line + name_len + 1;
            while (*value == ' ')
                value++;
            size_t value_len = len - (size_t)(value - line);
            if (value_len >= out_size)
                value_len = out_size - 1;
            memcpy(out, value, value_len);
            out[value_len] = '\0';
            return true;
        }
        line = end != NULL ? end + 2 : NULL;
    }
    return false;
}

static cJSON *json_of(const reply *result)
{
    cJSON *root = cJSON_Parse(result->body);
    if (root == NULL)
        fail_msg("not JSON (status %ld): %.200s", result->status, result->body);
    return root;
}

static const char *string_in(const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* ---- the emulator process ---- */

#define EMULATORS_MAX 4

typedef struct emulator {
    int pid;
    int port;
    char base[64];
    char log_path[128];
} emulator;

static int running_pids[EMULATORS_MAX];

static bool healthy(void *closure)
{
    emulator *emu = closure;
    char url[128];
    snprintf(url, sizeof(url), "%s/healthz", emu->base);
    reply answer = http("GET", url, NULL, NULL, 0, 500);
    bool ok = answer.status == 200;
    reply_free(&answer);
    return ok;
}

/* Starts the binary with the common settings plus extra "K=V" strings (NULL-terminated). */
static void start_emulator(emulator *emu, const char *webhook_url, const char *const *extra)
{
    static char listen[64], webhook[256];
    emu->port = testkit_free_port();
    snprintf(emu->base, sizeof(emu->base), "http://127.0.0.1:%d", emu->port);
    snprintf(listen, sizeof(listen), "ESS_EMULATOR_LISTEN=127.0.0.1:%d", emu->port);
    snprintf(webhook, sizeof(webhook), "ESS_EMULATOR_WEBHOOK_URL=%s",
             webhook_url != NULL ? webhook_url : "http://127.0.0.1:9/nowhere");
    const char *env[24] = {listen,
                           webhook,
                           "ESS_LINE_CHANNEL_SECRET=" SECRET,
                           "ESS_LINE_CHANNEL_TOKEN=" TOKEN,
                           "ESS_LOG_LEVEL=debug",
                           "ESS_EMULATOR_REDELIVERY_INTERVAL=50ms",
                           "ESS_EMULATOR_REDELIVERY_MAX_INTERVAL=200ms"};
    size_t count = 7;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && count < 23; i++)
        env[count++] = extra[i];
    env[count] = NULL;
    char binary[512];
    snprintf(binary, sizeof(binary), "%s/line-emulator", testkit_bin_dir());
    const char *argv[] = {binary, NULL};
    snprintf(emu->log_path, sizeof(emu->log_path), "/tmp/ess-emu-test-%d-%d.log", (int)getpid(),
             emu->port);
    emu->pid = testkit_spawn(argv, env, emu->log_path);
    assert_true(emu->pid > 0);
    for (int i = 0; i < EMULATORS_MAX; i++) {
        if (running_pids[i] == 0) {
            running_pids[i] = emu->pid;
            break;
        }
    }
    if (!testkit_wait_until(healthy, emu, 15000)) {
        char *log = testkit_read_file(emu->log_path);
        fail_msg("the emulator did not come up; its log:\n%s", log != NULL ? log : "(none)");
    }
}

/* Stops the emulator; fails the case when its log shows a sanitizer report. Returns the exit
 * code (the log is removed when the run was clean). */
static int stop_emulator(emulator *emu)
{
    for (int i = 0; i < EMULATORS_MAX; i++)
        if (running_pids[i] == emu->pid)
            running_pids[i] = 0;
    int code = testkit_stop(emu->pid, SIGTERM, 15000);
    emu->pid = 0;
    char *log = testkit_read_file(emu->log_path);
    bool sanitizer =
        log != NULL && (strstr(log, "Sanitizer") != NULL || strstr(log, "runtime error") != NULL);
    if (sanitizer) {
        print_message("%s\n", log);
        free(log);
        fail_msg("the emulator reported a sanitizer finding (log above, kept in %s)",
                 emu->log_path);
    }
    free(log);
    if (code == 0)
        unlink(emu->log_path);
    return code;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < EMULATORS_MAX; i++) {
        if (running_pids[i] > 0)
            testkit_stop(running_pids[i], SIGTERM, 15000);
        running_pids[i] = 0;
    }
    return 0;
}

static reply control(const emulator *emu, const char *method, const char *path, const char *body)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", emu->base, path);
    static const char *const headers[] = {JSON_HEADER, NULL};
    return http(method, url, headers, body, body != NULL ? strlen(body) : 0, 5000);
}

static reply api(const emulator *emu, const char *method, const char *path,
                 const char *const *headers, const char *body)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", emu->base, path);
    return http(method, url, headers, body, body != NULL ? strlen(body) : 0, 5000);
}

/* Creates a user (following the bot when follow) and returns its id into out. */
static void make_user(const emulator *emu, const char *name, bool follow, char out[64])
{
    char body[256];
    snprintf(body, sizeof(body), "{\"displayName\":\"%s\"}", name);
    reply created = control(emu, "POST", "/_emulator/users", body);
    assert_int_equal(created.status, 201);
    cJSON *root = json_of(&created);
    snprintf(out, 64, "%s", string_in(root, "userId"));
    cJSON_Delete(root);
    reply_free(&created);
    if (follow) {
        char path[128];
        snprintf(path, sizeof(path), "/_emulator/users/%s/follow", out);
        reply followed = control(emu, "POST", path, NULL);
        assert_int_equal(followed.status, 202);
        reply_free(&followed);
    }
}

/* The replyToken of the first event in an act answer. */
static void token_of(const reply *acted, char out[64])
{
    cJSON *root = json_of(acted);
    const cJSON *event = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "events"), 0);
    snprintf(out, 64, "%s", string_in(event, "replyToken"));
    cJSON_Delete(root);
}

static size_t recorded(const emulator *emu, const char *to)
{
    char path[256];
    snprintf(path, sizeof(path), "/_emulator/messages?to=%s", to);
    reply list = control(emu, "GET", path, NULL);
    cJSON *root = json_of(&list);
    size_t count = (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "messages"));
    cJSON_Delete(root);
    reply_free(&list);
    return count;
}

static const char *const api_headers[] = {AUTH_HEADER, JSON_HEADER, NULL};

/* ---- a webhook receiver ---- */

#define RECEIVED_MAX 32
#define SCRIPT_MAX 8

typedef struct received {
    char *head; /* request line and headers */
    char *body;
    size_t body_len;
} received;

typedef struct receiver {
    int fd;
    int port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    received items[RECEIVED_MAX];
    int count;
    int script_status[SCRIPT_MAX]; /* answer to request i; 200 beyond the script */
    int script_delay_ms[SCRIPT_MAX];
    int script_len;
} receiver;

static size_t content_length(const char *head)
{
    for (const char *line = head; line != NULL && *line != '\0';) {
        if (strncasecmp(line, "content-length:", 15) == 0)
            return (size_t)strtoul(line + 15, NULL, 10);
        const char *next = strstr(line, "\r\n");
        line = next != NULL ? next + 2 : NULL;
    }
    return 0;
}

static void serve_one(receiver *sink, int client)
{
    size_t cap = 1 << 16, len = 0;
    char *data = malloc(cap + 1);
    char *header_end = NULL;
    int64_t deadline = testkit_now_ms() + 5000;
    while (data != NULL && testkit_now_ms() < deadline) {
        struct pollfd pfd = {.fd = client, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if (len == cap) {
            cap *= 2;
            char *grown = realloc(data, cap + 1);
            if (grown == NULL)
                break;
            data = grown;
        }
        ssize_t n = read(client, data + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        data[len] = '\0';
        header_end = strstr(data, "\r\n\r\n");
        if (header_end != NULL && len >= (size_t)(header_end + 4 - data) + content_length(data))
            break;
    }
    if (data == NULL || header_end == NULL) {
        free(data);
        return;
    }
    int status = 200, delay_ms = 0;
    pthread_mutex_lock(&sink->lock);
    int index = sink->count;
    if (index < sink->script_len) {
        status = sink->script_status[index];
        delay_ms = sink->script_delay_ms[index];
    }
    if (sink->count < RECEIVED_MAX) {
        received *item = &sink->items[sink->count++];
        size_t head_len = (size_t)(header_end - data);
        item->head = strndup(data, head_len);
        item->body_len = len - head_len - 4;
        item->body = strndup(header_end + 4, item->body_len);
    }
    pthread_mutex_unlock(&sink->lock);
    free(data);
    if (delay_ms > 0) {
        struct timespec pause = {.tv_sec = delay_ms / 1000,
                                 .tv_nsec = (delay_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL); /* plays a slow bot, not a wait for state */
    }
    char answer[128];
    int n =
        snprintf(answer, sizeof(answer),
                 "HTTP/1.1 %d Scripted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
    if (write(client, answer, (size_t)n) < 0) {
        /* the emulator gave up waiting: fine for the delay cases */
    }
}

static void *receiver_main(void *closure)
{
    receiver *sink = closure;
    while (!atomic_load(&sink->stop)) {
        struct pollfd pfd = {.fd = sink->fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int client = accept(sink->fd, NULL, NULL);
        if (client < 0)
            continue;
        serve_one(sink, client);
        close(client);
    }
    return NULL;
}

static void receiver_start(receiver *sink)
{
    memset(sink, 0, sizeof(*sink));
    pthread_mutex_init(&sink->lock, NULL);
    sink->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(sink->fd >= 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(sink->fd, (struct sockaddr *)&address, sizeof(address)), 0);
    socklen_t size = sizeof(address);
    getsockname(sink->fd, (struct sockaddr *)&address, &size);
    sink->port = ntohs(address.sin_port);
    assert_int_equal(listen(sink->fd, 16), 0);
    assert_int_equal(pthread_create(&sink->thread, NULL, receiver_main, sink), 0);
}

static void receiver_stop(receiver *sink)
{
    atomic_store(&sink->stop, true);
    pthread_join(sink->thread, NULL);
    close(sink->fd);
    for (int i = 0; i < sink->count; i++) {
        free(sink->items[i].head);
        free(sink->items[i].body);
    }
    pthread_mutex_destroy(&sink->lock);
}

typedef struct count_wait {
    receiver *sink;
    int wanted;
} count_wait;

static bool received_enough(void *closure)
{
    count_wait *wait = closure;
    pthread_mutex_lock(&wait->sink->lock);
    bool enough = wait->sink->count >= wait->wanted;
    pthread_mutex_unlock(&wait->sink->lock);
    return enough;
}

/* The value of a request header (any letter case) and the name as sent. */
static bool request_header(const received *item, const char *name, char *value, size_t value_size,
                           char *sent_name, size_t sent_name_size)
{
    size_t name_len = strlen(name);
    for (const char *line = item->head; line != NULL && *line != '\0';) {
        const char *end = strstr(line, "\r\n");
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (len > name_len && strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
            snprintf(sent_name, sent_name_size, "%.*s", (int)name_len, line);
            const char *start = line + name_len + 1;
            while (*start == ' ')
                start++;
            snprintf(value, value_size, "%.*s", (int)(len - (size_t)(start - line)), start);
            return true;
        }
        line = end != NULL ? end + 2 : NULL;
    }
    return false;
}

/* Independent of the emulator's code: OpenSSL HMAC-SHA256, base64. */
static void expected_signature(const char *body, size_t len, char out[64])
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)body, len, digest,
         &digest_len);
    EVP_EncodeBlock((unsigned char *)out, digest, (int)digest_len);
}

static const cJSON *first_event(const cJSON *body)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(body, "events"), 0);
}

static bool redelivery_flag(const cJSON *event)
{
    const cJSON *context = cJSON_GetObjectItemCaseSensitive(event, "deliveryContext");
    const cJSON *flag = cJSON_GetObjectItemCaseSensitive(context, "isRedelivery");
    if (!cJSON_IsBool(flag))
        fail_msg("deliveryContext.isRedelivery missing");
    return cJSON_IsTrue(flag);
}

/* ---- cases ---- */

ESS_TEST(bearer_content_type_and_size)
{
    (void)state;
    emulator emu;
    start_emulator(&emu, NULL, NULL);
    const char *body = "{\"to\":\"U0123456789abcdef0123456789abcdef\",\"messages\":"
                       "[{\"type\":\"text\",\"text\":\"x\"}]}";
    static const char *const no_auth[] = {JSON_HEADER, NULL};
    reply missing = api(&emu, "POST", "/v2/bot/message/push", no_auth, body);
    assert_int_equal(missing.status, 401);
    char value[128];
    assert_true(header(&missing, "content-type", value, sizeof(value)));
    assert_non_null(strstr(value, "application/json"));
    assert_true(header(&missing, "x-line-request-id", value, sizeof(value)));
    assert_int_equal(strlen(value), 36);
    cJSON *root = json_of(&missing);
    assert_non_null(strstr(string_in(root, "message"), "Authentication failed"));
    cJSON_Delete(root);
    reply_free(&missing);

    static const char *const wrong_auth[] = {"Authorization: Bearer wrong", JSON_HEADER, NULL};
    reply wrong = api(&emu, "POST", "/v2/bot/message/push", wrong_auth, body);
    assert_int_equal(wrong.status, 401);
    reply_free(&wrong);

    static const char *const form[] = {AUTH_HEADER,
                                       "Content-Type: application/x-www-form-urlencoded", NULL};
    reply unsupported = api(&emu, "POST", "/v2/bot/message/push", form, body);
    assert_int_equal(unsupported.status, 415);
    root = json_of(&unsupported);
    assert_non_null(strstr(string_in(root, "message"), "is not supported"));
    cJSON_Delete(root);
    reply_free(&unsupported);

    size_t big = 2 * 1024 * 1024 + 1;
    char *huge = malloc(big + 1);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    reply too_large = api(&emu, "POST", "/v2/bot/message/push", api_headers, huge);
    assert_int_equal(too_large.status, 413);
    reply_free(&too_large);
    free(huge);

    reply stranger = api(&emu, "POST", "/v2/bot/message/push", api_headers, body);
    assert_int_equal(stranger.status, 400);
    root = json_of(&stranger);
    assert_string_equal(string_in(root, "message"), "Failed to send messages");
    cJSON_Delete(root);
    reply_free(&stranger);
    stop_emulator(&emu);
}

ESS_TEST(retry_key_conflict_sends_once)
{
    (void)state;
    emulator emu;
    start_emulator(&emu, NULL, NULL);
    char user[64];
    make_user(&emu, "ผู้รับ", true, user);
    char body[256];
    snprintf(body, sizeof(body),
             "{\"to\":\"%s\",\"messages\":[{\"type\":\"text\",\"text\":\"ส่งทีมแล้ว\"}]}", user);
    static const char *const keyed[] = {
        AUTH_HEADER, JSON_HEADER, "X-Line-Retry-Key: 0f8fad5b-d9cb-469f-a165-70867728950e", NULL};
    reply first = api(&emu, "POST", "/v2/bot/message/push", keyed, body);
    assert_int_equal(first.status, 200);
    char first_id[64] = "", accepted[64] = "";
    assert_true(header(&first, "x-line-request-id", first_id, sizeof(first_id)));
    reply second = api(&emu, "POST", "/v2/bot/message/push", keyed, body);
    assert_int_equal(second.status, 409);
    assert_true(header(&second, "x-line-accepted-request-id", accepted, sizeof(accepted)));
    assert_string_equal(accepted, first_id);
    cJSON *root = json_of(&second);
    assert_string_equal(string_in(root, "message"), "The retry key is already accepted");
    cJSON_Delete(root);
    reply_free(&first);
    reply_free(&second);
    assert_int_equal(recorded(&emu, user), 1);
    stop_emulator(&emu);
}

typedef struct token_wait {
    const emulator *emu;
    const char *token;
} token_wait;

static bool token_expired(void *closure)
{
    token_wait *wait = closure;
    char path[128];
    snprintf(path, sizeof(path), "/_emulator/reply-tokens/%s", wait->token);
    reply status = control(wait->emu, "GET", path, NULL);
    bool expired = status.status == 200 && strstr(status.body, "\"expired\"") != NULL;
    reply_free(&status);
    return expired;
}

ESS_TEST(reply_token_single_use_and_expiry)
{
    (void)state;
    emulator emu;
    static const char *const short_ttl[] = {"ESS_EMULATOR_REPLY_TOKEN_TTL=700ms", NULL};
    start_emulator(&emu, NULL, short_ttl);
    char user[64], token[64], path[128], body[512];
    make_user(&emu, "ตอบกลับ", false, user);
    snprintf(path, sizeof(path), "/_emulator/users/%s/follow", user);
    reply followed = control(&emu, "POST", path, NULL);
    token_of(&followed, token);
    reply_free(&followed);

    snprintf(body, sizeof(body),
             "{\"replyToken\":\"%s\",\"messages\":[{\"type\":\"text\",\"text\":\"สวัสดี\"}]}", token);
    static const char *const keyed[] = {
        AUTH_HEADER, JSON_HEADER, "X-Line-Retry-Key: 0f8fad5b-d9cb-469f-a165-70867728950e", NULL};
    reply with_key = api(&emu, "POST", "/v2/bot/message/reply", keyed, body);
    assert_int_equal(with_key.status, 400);
    reply_free(&with_key);
    reply first = api(&emu, "POST", "/v2/bot/message/reply", api_headers, body);
    assert_int_equal(first.status, 200);
    reply_free(&first);
    reply again = api(&emu, "POST", "/v2/bot/message/reply", api_headers, body);
    assert_int_equal(again.status, 400);
    cJSON *root = json_of(&again);
    assert_string_equal(string_in(root, "message"), "Invalid reply token");
    cJSON_Delete(root);
    reply_free(&again);

    snprintf(path, sizeof(path), "/_emulator/users/%s/text", user);
    reply text = control(&emu, "POST", path, "{\"text\":\"ยังอยู่ไหม\"}");
    token_of(&text, token);
    reply_free(&text);
    token_wait wait = {.emu = &emu, .token = token};
    assert_true(testkit_wait_until(token_expired, &wait, 10000));
    snprintf(body, sizeof(body),
             "{\"replyToken\":\"%s\",\"messages\":[{\"type\":\"text\",\"text\":\"late\"}]}", token);
    reply late = api(&emu, "POST", "/v2/bot/message/reply", api_headers, body);
    assert_int_equal(late.status, 400);
    assert_non_null(strstr(late.body, "Invalid reply token"));
    reply_free(&late);
    assert_int_equal(recorded(&emu, user), 1);
    stop_emulator(&emu);
}

ESS_TEST(rate_limit_answers_429_without_retry_after)
{
    (void)state;
    emulator emu;
    static const char *const tiny[] = {"ESS_EMULATOR_RATE_LIMIT=1", NULL};
    start_emulator(&emu, NULL, tiny);
    bool limited = false;
    for (int i = 0; i < 10 && !limited; i++) {
        reply answer = api(&emu, "GET", "/v2/bot/profile/U0123456789abcdef0123456789abcdef",
                           api_headers, NULL);
        if (answer.status == 429) {
            limited = true;
            char value[64];
            assert_false(header(&answer, "retry-after", value, sizeof(value)));
            cJSON *root = json_of(&answer);
            assert_non_null(strstr(string_in(root, "message"), "rate limit"));
            cJSON_Delete(root);
        } else {
            assert_int_equal(answer.status, 404);
        }
        reply_free(&answer);
    }
    assert_true(limited);
    stop_emulator(&emu);
}

ESS_TEST(webhook_signed_and_redelivered_after_non_2xx)
{
    (void)state;
    receiver sink;
    receiver_start(&sink);
    sink.script_status[0] = 500;
    sink.script_len = 1;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/line/webhook", sink.port);
    emulator emu;
    start_emulator(&emu, url, NULL);
    char user[64], path[128];
    make_user(&emu, "ผู้แจ้งเหตุ", false, user);
    snprintf(path, sizeof(path), "/_emulator/users/%s/text", user);
    reply text = control(&emu, "POST", path, "{\"text\":\"ช่วยด้วย มีคนคลุ้มคลั่ง\"}");
    assert_int_equal(text.status, 202);
    reply_free(&text);

    count_wait wait = {.sink = &sink, .wanted = 2};
    assert_true(testkit_wait_until(received_enough, &wait, 10000));
    pthread_mutex_lock(&sink.lock);
    char names[2][64], event_ids[2][64];
    for (int i = 0; i < 2; i++) {
        received *item = &sink.items[i];
        assert_non_null(strstr(item->head, "POST /line/webhook HTTP/1.1"));
        char signature[128], name[64], type[128], expected[64];
        assert_true(request_header(item, "x-line-signature", signature, sizeof(signature), name,
                                   sizeof(name)));
        expected_signature(item->body, item->body_len, expected);
        assert_string_equal(signature, expected);
        snprintf(names[i], sizeof(names[i]), "%s", name);
        assert_true(request_header(item, "content-type", type, sizeof(type), name, sizeof(name)));
        assert_non_null(strstr(type, "application/json"));

        cJSON *body = cJSON_Parse(item->body);
        assert_non_null(body);
        const char *destination = string_in(body, "destination");
        assert_non_null(destination);
        assert_int_equal(strlen(destination), 33);
        const cJSON *event = first_event(body);
        snprintf(event_ids[i], sizeof(event_ids[i]), "%s", string_in(event, "webhookEventId"));
        assert_int_equal(redelivery_flag(event), i == 1);
        const cJSON *message = cJSON_GetObjectItemCaseSensitive(event, "message");
        assert_string_equal(string_in(message, "text"), "ช่วยด้วย มีคนคลุ้มคลั่ง");
        assert_string_equal(string_in(cJSON_GetObjectItemCaseSensitive(event, "source"), "userId"),
                            user);
        cJSON_Delete(body);
    }
    assert_string_equal(event_ids[0], event_ids[1]);
    assert_string_not_equal(names[0], names[1]); /* the header's letter case varies */
    /* "sometimes": one attempt raw UTF-8, the other \u-escaped; both signed as sent. */
    assert_non_null(strstr(sink.items[0].body, "ช่วยด้วย"));
    assert_non_null(strstr(sink.items[1].body, "\\u0e0a"));
    pthread_mutex_unlock(&sink.lock);

    reply deliveries = control(&emu, "GET", "/_emulator/deliveries", NULL);
    cJSON *root = json_of(&deliveries);
    const cJSON *delivery =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "deliveries"), 0);
    assert_string_equal(string_in(delivery, "state"), "delivered");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(delivery, "attempts")), 2);
    cJSON_Delete(root);
    reply_free(&deliveries);
    stop_emulator(&emu);
    receiver_stop(&sink);
}

ESS_TEST(webhook_without_answer_in_time_is_redelivered)
{
    (void)state;
    receiver sink;
    receiver_start(&sink);
    sink.script_delay_ms[0] = 1500; /* longer than the emulator waits */
    sink.script_status[0] = 200;
    sink.script_len = 1;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/line/webhook", sink.port);
    emulator emu;
    static const char *const quick[] = {"ESS_EMULATOR_WEBHOOK_TIMEOUT=300ms", NULL};
    start_emulator(&emu, url, quick);
    char user[64];
    make_user(&emu, "follower", true, user); /* the follow event is the webhook */

    count_wait wait = {.sink = &sink, .wanted = 2};
    assert_true(testkit_wait_until(received_enough, &wait, 10000));
    pthread_mutex_lock(&sink.lock);
    cJSON *first = cJSON_Parse(sink.items[0].body);
    cJSON *second = cJSON_Parse(sink.items[1].body);
    pthread_mutex_unlock(&sink.lock);
    assert_string_equal(string_in(first_event(first), "type"), "follow");
    assert_string_equal(string_in(first_event(first), "webhookEventId"),
                        string_in(first_event(second), "webhookEventId"));
    assert_false(redelivery_flag(first_event(first)));
    assert_true(redelivery_flag(first_event(second)));
    cJSON_Delete(first);
    cJSON_Delete(second);
    stop_emulator(&emu);
    receiver_stop(&sink);
}

ESS_TEST(batched_events_share_one_signed_post)
{
    (void)state;
    receiver sink;
    receiver_start(&sink);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/line/webhook", sink.port);
    emulator emu;
    start_emulator(&emu, url, NULL);
    char first[64], second[64];
    make_user(&emu, "a", false, first);
    make_user(&emu, "b", false, second);
    char body[512];
    snprintf(
        body, sizeof(body),
        "{\"events\":[{\"type\":\"text\",\"userId\":\"%s\",\"text\":\"หนึ่ง\"},"
        "{\"type\":\"location\",\"userId\":\"%s\",\"latitude\":13.7563,\"longitude\":100.5018}]}",
        first, second);
    reply batch = control(&emu, "POST", "/_emulator/webhook", body);
    assert_int_equal(batch.status, 202);
    reply_free(&batch);
    count_wait wait = {.sink = &sink, .wanted = 1};
    assert_true(testkit_wait_until(received_enough, &wait, 10000));
    pthread_mutex_lock(&sink.lock);
    cJSON *root = cJSON_Parse(sink.items[0].body);
    pthread_mutex_unlock(&sink.lock);
    const cJSON *events = cJSON_GetObjectItemCaseSensitive(root, "events");
    assert_int_equal(cJSON_GetArraySize(events), 2);
    assert_string_equal(
        string_in(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(events, 1), "source"),
                  "userId"),
        second);
    cJSON_Delete(root);
    stop_emulator(&emu);
    receiver_stop(&sink);
}

ESS_TEST(faults_hang_and_drop_at_the_socket)
{
    (void)state;
    emulator emu;
    start_emulator(&emu, NULL, NULL);
    char user[64], body[256];
    make_user(&emu, "fault", true, user);
    snprintf(body, sizeof(body),
             "{\"to\":\"%s\",\"messages\":[{\"type\":\"text\",\"text\":\"x\"}]}", user);

    reply drop =
        control(&emu, "POST", "/_emulator/faults", "{\"endpoint\":\"push\",\"kind\":\"drop\"}");
    assert_int_equal(drop.status, 201);
    reply_free(&drop);
    reply dropped = api(&emu, "POST", "/v2/bot/message/push", api_headers, body);
    assert_int_equal(dropped.status, 0); /* no answer at all */
    assert_int_not_equal(dropped.curl_code, CURLE_OK);
    reply_free(&dropped);
    assert_int_equal(recorded(&emu, user), 0);

    /* Hang past the client's timeout, but carry the push out: the retry with the same key then
     * learns it was sent (409) and nothing is sent twice. */
    reply hang =
        control(&emu, "POST", "/_emulator/faults",
                "{\"endpoint\":\"push\",\"kind\":\"hang\",\"hangMs\":3000,\"accept\":true}");
    assert_int_equal(hang.status, 201);
    reply_free(&hang);
    static const char *const keyed[] = {
        AUTH_HEADER, JSON_HEADER, "X-Line-Retry-Key: 7c9e6679-7425-40de-944b-e07fc1f90ae7", NULL};
    char url[256];
    snprintf(url, sizeof(url), "%s/v2/bot/message/push", emu.base);
    reply timed_out = http("POST", url, keyed, body, strlen(body), 500);
    assert_int_equal(timed_out.curl_code, CURLE_OPERATION_TIMEDOUT);
    reply_free(&timed_out);
    reply retried = api(&emu, "POST", "/v2/bot/message/push", keyed, body);
    assert_int_equal(retried.status, 409);
    reply_free(&retried);
    assert_int_equal(recorded(&emu, user), 1);

    reply five = control(&emu, "POST", "/_emulator/faults",
                         "{\"endpoint\":\"reply\",\"kind\":\"500\",\"count\":1}");
    reply_free(&five);
    reply failed = api(&emu, "POST", "/v2/bot/message/reply", api_headers, "{}");
    assert_int_equal(failed.status, 500);
    reply_free(&failed);
    stop_emulator(&emu);
}

ESS_TEST(stops_cleanly_on_sigterm)
{
    (void)state;
    emulator emu;
    start_emulator(&emu, NULL, NULL);
    char user[64];
    make_user(&emu, "bye", true, user);
    char log_path[sizeof(emu.log_path)];
    memcpy(log_path, emu.log_path, sizeof(log_path));
    int code = stop_emulator(&emu);
    if (code != 0) {
        char *log = testkit_read_file(log_path);
        print_message("%s\n", log != NULL ? log : "");
        free(log);
        fail_msg("exit code %d (want 0 after SIGTERM); log above", code);
    }
}

ESS_TEST(chat_cli_plays_a_user)
{
    (void)state;
    emulator emu;
    start_emulator(&emu, NULL, NULL);
    char command[1024];
    snprintf(command, sizeof(command),
             "%s/line-emulator chat --user cli-user --url %s > %s.chat 2>&1", testkit_bin_dir(),
             emu.base, emu.log_path);
    FILE *cli = popen(command, "w");
    assert_non_null(cli);
    fputs("สวัสดีครับ\n/loc 13.7563 100.5018 บ้าน\n/quit\n", cli);
    int status = pclose(cli);
    assert_int_equal(status, 0);

    reply users = control(&emu, "GET", "/_emulator/users?displayName=cli-user", NULL);
    cJSON *root = json_of(&users);
    const cJSON *user = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "users"), 0);
    assert_non_null(user);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(user, "following")));
    char path[128];
    snprintf(path, sizeof(path), "/_emulator/conversations/%s", string_in(user, "userId"));
    cJSON_Delete(root);
    reply_free(&users);
    reply history = control(&emu, "GET", path, NULL);
    root = json_of(&history);
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(root, "entries");
    assert_int_equal(cJSON_GetArraySize(entries), 3); /* follow, text, location */
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(entries, 1), "event"), "message");
    assert_string_equal(string_in(text, "text"), "สวัสดีครับ");
    const cJSON *location = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(entries, 2), "event"), "message");
    assert_string_equal(string_in(location, "type"), "location");
    assert_string_equal(string_in(location, "title"), "บ้าน");
    cJSON_Delete(root);
    reply_free(&history);
    char chat_log[160];
    snprintf(chat_log, sizeof(chat_log), "%s.chat", emu.log_path);
    unlink(chat_log);
    stop_emulator(&emu);
}

ESS_TEST_MAIN(NULL, teardown)
