#include "emu_chat.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#define REPLY_MAX (4 * 1024 * 1024)
#define LINE_MAX_BYTES 4096
#define POLL_MS 300
#define QUIET_AFTER_EOF_MS 3000

typedef struct chat {
    CURL *curl;
    char base[512]; /* http://host:port */
    char user_id[64];
    char display_name[128];
    char group_id[64]; /* "" = 1:1 chat */
    double last_seq;
    double last_actions_seq; /* newest bot message with buttons */
} chat;

typedef struct reply_buffer {
    char *data;
    size_t len;
    bool overflow;
} reply_buffer;

static size_t collect(char *data, size_t size, size_t count, void *closure)
{
    reply_buffer *buffer = closure;
    size_t len = size * count;
    if (buffer->len + len > REPLY_MAX) {
        buffer->overflow = true;
        return 0;
    }
    char *grown = realloc(buffer->data, buffer->len + len + 1);
    if (grown == NULL)
        return 0;
    buffer->data = grown;
    memcpy(buffer->data + buffer->len, data, len);
    buffer->len += len;
    buffer->data[buffer->len] = '\0';
    return len;
}

/* One control-API call; *ret_json (may be NULL) gets the parsed answer. Returns the HTTP
 * status, 0 when the emulator did not answer. */
static long call(chat *session, const char *method, const char *path, const cJSON *body,
                 cJSON **ret_json)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", session->base, path);
    char *payload = body != NULL ? cJSON_PrintUnformatted(body) : NULL;
    reply_buffer reply = {0};
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_reset(session->curl);
    curl_easy_setopt(session->curl, CURLOPT_URL, url);
    curl_easy_setopt(session->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(session->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(session->curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(session->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(session->curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(session->curl, CURLOPT_WRITEDATA, &reply);
    if (payload != NULL)
        curl_easy_setopt(session->curl, CURLOPT_POSTFIELDS, payload);
    long status = 0;
    if (curl_easy_perform(session->curl) == CURLE_OK)
        curl_easy_getinfo(session->curl, CURLINFO_RESPONSE_CODE, &status);
    if (ret_json != NULL)
        *ret_json = reply.data != NULL ? cJSON_Parse(reply.data) : NULL;
    free(reply.data);
    curl_slist_free_all(headers);
    cJSON_free(payload);
    return status;
}

static const char *json_string(const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(object, name);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

static void print_problem(long status, const cJSON *answer)
{
    const char *message = json_string(answer, "message");
    if (status == 0)
        printf("!! the emulator at this address does not answer\n");
    else
        printf("!! %ld %s\n", status, message != NULL ? message : "");
}

/* ---- showing the bot's messages ---- */

static void show_message(const cJSON *message)
{
    const char *type = json_string(message, "type");
    if (type == NULL)
        return;
    if (strcmp(type, "text") == 0 || strcmp(type, "textV2") == 0) {
        printf("bot> %s\n",
               json_string(message, "text") != NULL ? json_string(message, "text") : "");
    } else if (strcmp(type, "location") == 0) {
        const cJSON *latitude = cJSON_GetObjectItemCaseSensitive(message, "latitude");
        const cJSON *longitude = cJSON_GetObjectItemCaseSensitive(message, "longitude");
        printf("bot> [location] %s, %s (%g, %g)\n",
               json_string(message, "title") != NULL ? json_string(message, "title") : "",
               json_string(message, "address") != NULL ? json_string(message, "address") : "",
               cJSON_IsNumber(latitude) ? latitude->valuedouble : 0.0,
               cJSON_IsNumber(longitude) ? longitude->valuedouble : 0.0);
    } else if (json_string(message, "altText") != NULL) {
        printf("bot> [%s] %s\n", type, json_string(message, "altText"));
    } else {
        printf("bot> [%s]\n", type);
    }
}

static void show_choices(const cJSON *list, const char *prefix)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        const cJSON *index = cJSON_GetObjectItemCaseSensitive(item, "index");
        const cJSON *action = cJSON_GetObjectItemCaseSensitive(item, "action");
        const char *label = json_string(item, "label");
        const char *kind = json_string(action, "type");
        printf("     %s%d: %s (%s)\n", prefix, cJSON_IsNumber(index) ? (int)index->valuedouble : 0,
               label != NULL ? label : "", kind != NULL ? kind : "?");
    }
}

static const char *chat_id(const chat *session)
{
    return session->group_id[0] != '\0' ? session->group_id : session->user_id;
}

static void show_new_entries(chat *session, bool quiet_self)
{
    char path[256];
    snprintf(path, sizeof(path), "/_emulator/conversations/%s?after=%.0f", chat_id(session),
             session->last_seq);
    cJSON *answer = NULL;
    long status = call(session, "GET", path, NULL, &answer);
    if (status != 200) {
        if (status == 0)
            print_problem(status, answer);
        cJSON_Delete(answer);
        return;
    }
    const cJSON *entry;
    cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(answer, "entries"))
    {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(entry, "seq");
        if (cJSON_IsNumber(seq) && seq->valuedouble > session->last_seq)
            session->last_seq = seq->valuedouble;
        const char *direction = json_string(entry, "direction");
        if (direction != NULL && strcmp(direction, "out") == 0) {
            show_message(cJSON_GetObjectItemCaseSensitive(entry, "message"));
            const cJSON *quick = cJSON_GetObjectItemCaseSensitive(entry, "quickReply");
            const cJSON *actions = cJSON_GetObjectItemCaseSensitive(entry, "actions");
            if (cJSON_IsArray(quick)) {
                printf("     quick reply (/tap N):\n");
                show_choices(quick, "");
            }
            if (cJSON_IsArray(actions)) {
                printf("     buttons (/button N):\n");
                show_choices(actions, "");
                if (cJSON_IsNumber(seq))
                    session->last_actions_seq = seq->valuedouble;
            }
        } else {
            const cJSON *event = cJSON_GetObjectItemCaseSensitive(entry, "event");
            const char *type = json_string(event, "type");
            const char *who = json_string(entry, "userId");
            const char *said =
                json_string(cJSON_GetObjectItemCaseSensitive(event, "message"), "text");
            bool mine = who != NULL && strcmp(who, session->user_id) == 0;
            if (mine && quiet_self)
                continue; /* what we typed is on the screen already */
            const char *speaker = mine ? "you" : who != NULL ? "member" : "line";
            if (said != NULL)
                printf("%s> %s\n", speaker, said);
            else
                printf("%s> (%s)\n", speaker, type != NULL ? type : "event");
        }
    }
    fflush(stdout);
    cJSON_Delete(answer);
}

/* ---- acting ---- */

static void act(chat *session, const char *what, cJSON *body)
{
    if (session->group_id[0] != '\0')
        cJSON_AddStringToObject(body, "groupId", session->group_id);
    char path[256];
    snprintf(path, sizeof(path), "/_emulator/users/%s/%s", session->user_id, what);
    cJSON *answer = NULL;
    long status = call(session, "POST", path, body, &answer);
    if (status < 200 || status >= 300)
        print_problem(status, answer);
    cJSON_Delete(answer);
    cJSON_Delete(body);
}

static bool parse_double(const char *text, double *ret_value)
{
    if (text == NULL)
        return false;
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0)
        return false;
    *ret_value = value;
    return true;
}

static void print_help(void)
{
    printf("type a message and press Enter, or:\n"
           "  /loc LAT LON [TITLE]   share a location\n"
           "  /tap N [LAT LON]       press quick-reply item N (a location item needs LAT LON)\n"
           "  /button N              press button N of the bot's latest message with buttons\n"
           "  /postback DATA         send a postback\n"
           "  /sticker  /image       send a sticker or an image\n"
           "  /follow  /unfollow     add or block the bot\n"
           "  /history               show the whole conversation again\n"
           "  /quit\n");
}

/* Returns false when the user asked to quit. */
static bool handle_line(chat *session, char *line)
{
    size_t len = strlen(line);
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    if (len == 0)
        return true;
    if (line[0] != '/') {
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "text", line);
        act(session, "text", body);
        return true;
    }
    char *words[4] = {NULL};
    size_t count = 0;
    char *cursor = line;
    while (count < 4 && cursor != NULL && *cursor != '\0') {
        while (*cursor == ' ')
            cursor++;
        if (*cursor == '\0')
            break;
        words[count++] = cursor;
        char *space = count < 4 ? strchr(cursor, ' ') : NULL;
        if (space != NULL)
            *space++ = '\0';
        cursor = space;
    }
    const char *command = words[0];
    double first = 0, second = 0;
    if (strcmp(command, "/quit") == 0 || strcmp(command, "/exit") == 0)
        return false;
    if (strcmp(command, "/help") == 0) {
        print_help();
    } else if (strcmp(command, "/loc") == 0) {
        if (!parse_double(words[1], &first) || !parse_double(words[2], &second)) {
            printf("!! usage: /loc LAT LON [TITLE]\n");
            return true;
        }
        cJSON *body = cJSON_CreateObject();
        cJSON_AddNumberToObject(body, "latitude", first);
        cJSON_AddNumberToObject(body, "longitude", second);
        if (words[3] != NULL)
            cJSON_AddStringToObject(body, "title", words[3]);
        act(session, "location", body);
    } else if (strcmp(command, "/tap") == 0 || strcmp(command, "/button") == 0) {
        if (!parse_double(words[1], &first) || first < 1) {
            printf("!! usage: %s N\n", command);
            return true;
        }
        cJSON *body = cJSON_CreateObject();
        if (strcmp(command, "/button") == 0) {
            cJSON_AddNumberToObject(body, "seq", session->last_actions_seq);
            cJSON_AddNumberToObject(body, "action", first);
        } else {
            cJSON_AddNumberToObject(body, "index", first);
        }
        if (parse_double(words[2], &second) && words[3] != NULL) {
            double longitude = 0;
            if (parse_double(words[3], &longitude)) {
                cJSON_AddNumberToObject(body, "latitude", second);
                cJSON_AddNumberToObject(body, "longitude", longitude);
            }
        }
        act(session, "tap", body);
    } else if (strcmp(command, "/postback") == 0) {
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "data", words[1] != NULL ? words[1] : "");
        act(session, "postback", body);
    } else if (strcmp(command, "/sticker") == 0 || strcmp(command, "/image") == 0 ||
               strcmp(command, "/follow") == 0 || strcmp(command, "/unfollow") == 0) {
        act(session, command + 1, cJSON_CreateObject());
    } else if (strcmp(command, "/history") == 0) {
        session->last_seq = 0;
        show_new_entries(session, false);
    } else {
        printf("!! unknown command %s (try /help)\n", command);
    }
    fflush(stdout);
    return true;
}

/* ---- start ---- */

/* In group mode the user must be a member: join (memberJoined) when not yet one. */
static bool join_group(chat *session)
{
    char path[256];
    snprintf(path, sizeof(path), "/_emulator/groups/%s", session->group_id);
    cJSON *answer = NULL;
    long status = call(session, "GET", path, NULL, &answer);
    if (status != 200) {
        print_problem(status, answer);
        cJSON_Delete(answer);
        return false;
    }
    bool member = false;
    const cJSON *id;
    cJSON_ArrayForEach(id, cJSON_GetObjectItemCaseSensitive(answer, "members"))
    {
        if (cJSON_IsString(id) && strcmp(id->valuestring, session->user_id) == 0)
            member = true;
    }
    cJSON_Delete(answer);
    if (member)
        return true;
    cJSON *body = cJSON_CreateObject();
    cJSON *ids = cJSON_AddArrayToObject(body, "userIds");
    cJSON_AddItemToArray(ids, cJSON_CreateString(session->user_id));
    snprintf(path, sizeof(path), "/_emulator/groups/%s/members", session->group_id);
    status = call(session, "POST", path, body, &answer);
    cJSON_Delete(body);
    if (status != 202)
        print_problem(status, answer);
    cJSON_Delete(answer);
    return status == 202;
}

static bool find_or_create_user(chat *session, const char *language)
{
    char *escaped = curl_easy_escape(session->curl, session->display_name, 0);
    char path[512];
    snprintf(path, sizeof(path), "/_emulator/users?displayName=%s", escaped != NULL ? escaped : "");
    curl_free(escaped);
    cJSON *answer = NULL;
    long status = call(session, "GET", path, NULL, &answer);
    if (status != 200) {
        print_problem(status, answer);
        cJSON_Delete(answer);
        return false;
    }
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(answer, "users"), 0);
    bool following = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(first, "following"));
    const char *user_id = json_string(first, "userId");
    if (user_id != NULL)
        snprintf(session->user_id, sizeof(session->user_id), "%s", user_id);
    cJSON_Delete(answer);
    if (user_id == NULL) {
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "displayName", session->display_name);
        cJSON_AddStringToObject(body, "language", language);
        status = call(session, "POST", "/_emulator/users", body, &answer);
        cJSON_Delete(body);
        user_id = json_string(answer, "userId");
        if (status != 201 || user_id == NULL) {
            print_problem(status, answer);
            cJSON_Delete(answer);
            return false;
        }
        snprintf(session->user_id, sizeof(session->user_id), "%s", user_id);
        cJSON_Delete(answer);
        printf("created user %s (%s)\n", session->display_name, session->user_id);
    }
    if (session->group_id[0] != '\0')
        return join_group(session);
    if (!following) {
        char follow_path[256];
        snprintf(follow_path, sizeof(follow_path), "/_emulator/users/%s/follow", session->user_id);
        status = call(session, "POST", follow_path, NULL, &answer);
        if (status != 202)
            print_problem(status, answer);
        cJSON_Delete(answer);
    }
    return true;
}

static void usage(void)
{
    fprintf(stderr, "usage: line-emulator chat --user NAME [--group GROUP_ID] [--language th] "
                    "[--url http://127.0.0.1:8090]\n"
                    "  the address defaults to $ESS_EMULATOR_URL, else http://$ESS_EMULATOR_LISTEN,"
                    " else http://127.0.0.1:8090\n");
}

int emu_chat_main(int argc, char **argv)
{
    chat session = {0};
    const char *user = NULL, *group = NULL, *url = NULL, *language = "th";
    for (int i = 1; i < argc; i++) {
        bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--user") == 0 && has_value)
            user = argv[++i];
        else if (strcmp(argv[i], "--group") == 0 && has_value)
            group = argv[++i];
        else if (strcmp(argv[i], "--url") == 0 && has_value)
            url = argv[++i];
        else if (strcmp(argv[i], "--language") == 0 && has_value)
            language = argv[++i];
        else {
            usage();
            return 2;
        }
    }
    if (user == NULL || user[0] == '\0' || strlen(user) >= sizeof(session.display_name) ||
        (group != NULL && strlen(group) >= sizeof(session.group_id))) {
        usage();
        return 2;
    }
    const char *listen = getenv("ESS_EMULATOR_LISTEN");
    if (url == NULL)
        url = getenv("ESS_EMULATOR_URL");
    if (url != NULL && url[0] != '\0')
        snprintf(session.base, sizeof(session.base), "%s", url);
    else if (listen != NULL && listen[0] != '\0')
        snprintf(session.base, sizeof(session.base), "http://%s", listen);
    else
        snprintf(session.base, sizeof(session.base), "http://127.0.0.1:8090");
    size_t base_len = strlen(session.base);
    if (base_len > 0 && session.base[base_len - 1] == '/')
        session.base[base_len - 1] = '\0';
    snprintf(session.display_name, sizeof(session.display_name), "%s", user);
    if (group != NULL)
        snprintf(session.group_id, sizeof(session.group_id), "%s", group);

    int exit_code = 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    session.curl = curl_easy_init();
    if (session.curl == NULL || !find_or_create_user(&session, language))
        goto done;
    printf("chatting as %s in %s (/help for commands)\n", session.display_name,
           session.group_id[0] != '\0' ? "the group" : "a 1:1 chat with the bot");
    show_new_entries(&session, true);

    /* Unbuffered, so that poll() on the descriptor tells the truth about pending lines. */
    setvbuf(stdin, NULL, _IONBF, 0);
    char line[LINE_MAX_BYTES];
    bool open = true;
    int quiet_ms = 0;
    for (;;) {
        struct pollfd input = {.fd = STDIN_FILENO, .events = POLLIN};
        int ready = open ? poll(&input, 1, POLL_MS) : poll(NULL, 0, POLL_MS);
        if (ready < 0 && errno != EINTR)
            break;
        if (open && ready > 0) {
            if (fgets(line, sizeof(line), stdin) == NULL) {
                open = false; /* piped input ended: show the last answers, then stop */
            } else if (!handle_line(&session, line)) {
                break;
            }
        }
        show_new_entries(&session, true);
        if (!open && (quiet_ms += POLL_MS) >= QUIET_AFTER_EOF_MS)
            break;
    }
    exit_code = 0;
done:
    if (session.curl != NULL)
        curl_easy_cleanup(session.curl);
    curl_global_cleanup();
    return exit_code;
}
