/* bench_e2e_loadgen load: citizens completing reports through the LINE emulator, against a
 * running stack (deploy/local/ess up), and the time until each report's card reaches its
 * team's group.
 *
 * Set-up (not measured): one LINE group per --team, with an officer; the bot joins it and the
 * officer types "/ess bind CODE" (the code from `essctl team invite`), as people do.
 *
 * Load: --concurrency workers, each playing one citizen at a time as a person does in the LINE
 * app, answering the bot's question only once it is on screen: create the user, follow,
 * tap a category (quick reply), tap "share location" with a point of --points, type a phone
 * number; the citizen is done when the answer with the case number arrives. With --rate the
 * citizens start at that pace (open loop, at most --concurrency in flight); else each worker
 * starts the next citizen as soon as one is done (closed loop). No citizen starts after
 * --duration seconds or once --citizens have started.
 *
 * Measured, from the emulator's own records (one clock, the emulator's):
 *   - webhook events accepted: events of webhook POSTs answered 2xx by the ingress
 *     (GET /_emulator/deliveries), at the moment of that answer;
 *   - reports completed: the citizen's case-number answer recorded by the emulator;
 *   - per report, card latency: from the first POST of the phone-number webhook (the
 *     report's last webhook) to the first push to a group that names the report's case
 *     number (GET /_emulator/messages);
 *   - per citizen step, the bot's answer time: from the event's timestamp to the answer.
 * "Sustained" rates are counted in the window from --warmup seconds after the start to the
 * moment the last citizen started (after it, fewer than --concurrency are in flight).
 * With --cpu NAME=PID[,PID...] the tool also reads those processes' CPU time at both ends of
 * the window and prints each as a share of one core: which one saturates first. With
 * --nats-monitor it samples every JetStream consumer's pending + unacknowledged messages once
 * a second in the window: where the work in flight waits. */
#define _POSIX_C_SOURCE 200809L
#include "e2e_load.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "e2e_common.h"

#define TEAMS_MAX 32
#define CPU_GROUPS_MAX 16
#define CPU_PIDS_MAX 128 /* PostgreSQL: the postmaster and every backend */
#define POINTS_MAX 100000
#define WORKERS_MAX 512
#define ID_MAX 48
#define CASE_MAX 32
#define URL_MAX 512
#define CALL_TIMEOUT_MS 30000
#define SETUP_WAIT_MS 60000
#define PAGE_LIMIT 10000

typedef struct team {
    char label[32];
    char code[40];
    char group_id[ID_MAX];
    long cards;
} team;

typedef struct point {
    char province[16];
    double latitude, longitude;
} point;

typedef struct cpu_group {
    char name[40];
    int pids[CPU_PIDS_MAX];
    size_t pid_count;
    long long ticks_run_start, ticks_start, ticks_end;
} cpu_group;

typedef struct options {
    char emulator[URL_MAX]; /* http://host:port */
    team teams[TEAMS_MAX];
    size_t team_count;
    const char *points_path;
    long citizens, concurrency;
    double duration_s, warmup_s, rate, step_timeout_s, card_wait_s;
    long poll_ms;
    cpu_group cpu[CPU_GROUPS_MAX];
    size_t cpu_count;
    char nats_monitor[URL_MAX]; /* http://host:port of nats-server's monitor, or "" */
} options;

/* Where the work in flight waits: a JetStream consumer's pending + unacknowledged messages,
 * sampled about once a second in the window. */
typedef struct backlog {
    char consumer[48];
    long long sum, peak;
} backlog;

#define BACKLOGS_MAX 32

typedef enum citizen_state { CITIZEN_PENDING, CITIZEN_DONE, CITIZEN_FAILED } citizen_state;

typedef struct citizen {
    citizen_state state;
    char case_number[CASE_MAX];
    int64_t phone_delivery_id; /* the report's last webhook */
    int64_t phone_event_ms;    /* its event timestamp (when the citizen typed it) */
    int64_t done_ms;           /* the case-number answer, emulator time */
    int64_t step_ms[4];        /* event → the bot's answer, per step; -1 unknown */
} citizen;

/* A worker's view of its current citizen's chat, filled by the message poller. */
typedef struct slot {
    pthread_cond_t changed;
    char user_id[ID_MAX]; /* "" while the worker has no citizen */
    long messages;        /* bot messages to the user so far */
    int64_t last_ms;      /* emulator time of the latest */
    char case_number[CASE_MAX];
} slot;

typedef struct card {
    char case_number[CASE_MAX]; /* "" = free */
    int64_t time_ms;
} card;

typedef struct delivery {
    bool final;          /* delivered or failed: nothing will change */
    int events;          /* webhook events in the POST */
    int64_t first_at_ms; /* the first attempt's start */
    int64_t accepted_ms; /* end of the 2xx attempt; 0 when none */
    int non_2xx;         /* attempts answered otherwise (kept ones only) */
} delivery;

typedef struct load {
    options opt;
    point *points;
    size_t point_count;
    citizen *citizens;
    slot slots[WORKERS_MAX];

    pthread_mutex_t lock; /* slots, cards, deliveries, team counts */
    card *cards;
    size_t card_capacity, card_count, cards_unmatched;
    delivery *deliveries;
    size_t delivery_capacity;
    int64_t delivery_cursor; /* every id <= cursor is final */

    atomic_long next_citizen;
    atomic_bool stop_starting;
    atomic_bool stop_polling;
    int64_t start_ms;
    _Atomic int64_t last_start_ms;
    atomic_long started, done, failed; /* started: citizens that did start */
    long long message_polls, delivery_polls;
    backlog backlogs[BACKLOGS_MAX];
    size_t backlog_count;
    long backlog_samples;
} load;

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_e2e_loadgen load --emulator URL --points FILE --team LABEL=CODE... "
            "[--citizens N] [--concurrency C] [--duration S] [--warmup S] [--rate R] "
            "[--step-timeout S] [--card-wait S] [--poll-ms MS] [--cpu NAME=PID[,PID...]]... "
            "[--nats-monitor URL]\n");
    exit(2);
}

/* ---- options and points -------------------------------------------------------------------- */

static void parse_team(options *opt, const char *value)
{
    const char *equals = strchr(value, '=');
    if (equals == NULL || opt->team_count >= TEAMS_MAX)
        e2e_die("--team: want LABEL=CODE (at most %d)", TEAMS_MAX);
    team *t = &opt->teams[opt->team_count++];
    size_t label_len = (size_t)(equals - value);
    if (label_len == 0 || label_len >= sizeof(t->label) ||
        !e2e_copy(t->code, sizeof(t->code), equals + 1))
        e2e_die("--team: label or code too long");
    memcpy(t->label, value, label_len);
    t->label[label_len] = '\0';
}

static void parse_cpu(options *opt, const char *value)
{
    const char *equals = strchr(value, '=');
    if (equals == NULL || opt->cpu_count >= CPU_GROUPS_MAX)
        e2e_die("--cpu: want NAME=PID[,PID...] (at most %d)", CPU_GROUPS_MAX);
    cpu_group *g = &opt->cpu[opt->cpu_count++];
    size_t name_len = (size_t)(equals - value);
    if (name_len == 0 || name_len >= sizeof(g->name))
        e2e_die("--cpu: name too long");
    memcpy(g->name, value, name_len);
    g->name[name_len] = '\0';
    const char *at = equals + 1;
    while (*at != '\0') {
        char number[16];
        size_t len = strcspn(at, ",");
        if (len == 0 || len >= sizeof(number) || g->pid_count >= CPU_PIDS_MAX)
            e2e_die("--cpu %s: bad pid list", g->name);
        memcpy(number, at, len);
        number[len] = '\0';
        g->pids[g->pid_count++] = (int)e2e_parse_long("--cpu", number, 1, 1 << 30);
        at += len;
        if (*at == ',')
            at++;
    }
}

static void parse_options(int argc, char **argv, options *opt)
{
    memset(opt, 0, sizeof(*opt));
    opt->citizens = 2000;
    opt->concurrency = 32;
    opt->duration_s = 60;
    opt->warmup_s = 5;
    opt->step_timeout_s = 30;
    opt->card_wait_s = 30;
    opt->poll_ms = 10;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            usage();
        const char *name = argv[i], *value = argv[i + 1];
        if (strcmp(name, "--emulator") == 0) {
            if (!e2e_copy(opt->emulator, sizeof(opt->emulator) - 64, value))
                e2e_die("--emulator: too long");
        } else if (strcmp(name, "--team") == 0) {
            parse_team(opt, value);
        } else if (strcmp(name, "--points") == 0) {
            opt->points_path = value;
        } else if (strcmp(name, "--citizens") == 0) {
            opt->citizens = e2e_parse_long(name, value, 1, 10000000);
        } else if (strcmp(name, "--concurrency") == 0) {
            opt->concurrency = e2e_parse_long(name, value, 1, WORKERS_MAX);
        } else if (strcmp(name, "--duration") == 0) {
            opt->duration_s = e2e_parse_double(name, value, 0.1, 86400);
        } else if (strcmp(name, "--warmup") == 0) {
            opt->warmup_s = e2e_parse_double(name, value, 0, 3600);
        } else if (strcmp(name, "--rate") == 0) {
            opt->rate = e2e_parse_double(name, value, 0, 100000);
        } else if (strcmp(name, "--step-timeout") == 0) {
            opt->step_timeout_s = e2e_parse_double(name, value, 0.1, 3600);
        } else if (strcmp(name, "--card-wait") == 0) {
            opt->card_wait_s = e2e_parse_double(name, value, 0, 3600);
        } else if (strcmp(name, "--poll-ms") == 0) {
            opt->poll_ms = e2e_parse_long(name, value, 1, 10000);
        } else if (strcmp(name, "--cpu") == 0) {
            parse_cpu(opt, value);
        } else if (strcmp(name, "--nats-monitor") == 0) {
            if (!e2e_copy(opt->nats_monitor, sizeof(opt->nats_monitor) - 64, value))
                e2e_die("--nats-monitor: too long");
        } else {
            usage();
        }
    }
    if (opt->emulator[0] == '\0' || opt->points_path == NULL || opt->team_count == 0)
        usage();
}

/* Points: "PROVINCE LATITUDE LONGITUDE" per line; shuffled with a fixed seed so that
 * consecutive citizens land in different provinces, the same way in every run. */
static void read_points(load *l)
{
    FILE *file = fopen(l->opt.points_path, "r");
    if (file == NULL)
        e2e_die("cannot open %s", l->opt.points_path);
    l->points = calloc(POINTS_MAX, sizeof(point));
    if (l->points == NULL)
        e2e_die("out of memory");
    char line[256];
    while (fgets(line, sizeof(line), file) != NULL && l->point_count < POINTS_MAX) {
        char province[16], lat[32], lon[32];
        if (sscanf(line, "%15s %31s %31s", province, lat, lon) != 3)
            continue;
        point *p = &l->points[l->point_count++];
        e2e_copy(p->province, sizeof(p->province), province);
        p->latitude = e2e_parse_double("points latitude", lat, 5, 21);
        p->longitude = e2e_parse_double("points longitude", lon, 97, 106);
    }
    fclose(file);
    if (l->point_count == 0)
        e2e_die("no points in %s", l->opt.points_path);
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    for (size_t i = l->point_count - 1; i > 0; i--) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t j = (size_t)((seed >> 33) % (i + 1));
        point swap = l->points[i];
        l->points[i] = l->points[j];
        l->points[j] = swap;
    }
}

/* ---- emulator calls ------------------------------------------------------------------------ */

/* A control call: the parsed answer when it has want_status (caller deletes), else NULL
 * after one line on stderr. */
static cJSON *control_try(load *l, e2e_http *http, const char *method, const char *path,
                          const char *payload, long want_status)
{
    char url[URL_MAX + 256];
    snprintf(url, sizeof(url), "%s/_emulator%s", l->opt.emulator, path);
    long status = e2e_http_call(http, method, url, payload, CALL_TIMEOUT_MS);
    cJSON *answer = status == want_status ? cJSON_Parse(http->body) : NULL;
    if (answer == NULL)
        fprintf(stderr, "%s %s: %ld (want %ld): %.300s\n", method, path, status, want_status,
                http->body);
    return answer;
}

/* The same for the set-up, where nothing may fail: exits 2 instead of returning NULL. */
static cJSON *control(load *l, e2e_http *http, const char *method, const char *path,
                      const char *payload, long want_status)
{
    cJSON *answer = control_try(l, http, method, path, payload, want_status);
    if (answer == NULL)
        e2e_die("the emulator refused a set-up call");
    return answer;
}

/* A new LINE user (not following yet); false when the emulator refused. */
static bool create_user(load *l, e2e_http *http, const char *name, char ret_id[ID_MAX])
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "displayName", name);
    cJSON_AddStringToObject(body, "language", "th");
    char *text = cJSON_PrintUnformatted(body);
    cJSON *user = text != NULL ? control_try(l, http, "POST", "/users", text, 201) : NULL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(user, "userId");
    bool created = cJSON_IsString(id) && e2e_copy(ret_id, ID_MAX, id->valuestring);
    cJSON_Delete(user);
    cJSON_free(text);
    cJSON_Delete(body);
    return created;
}

/* Acts as a user (POST /users/U/<action>): the delivery id and the first event's timestamp;
 * false when the emulator refused (a quick reply no longer on screen, say). */
static bool act(load *l, e2e_http *http, const char *user, const char *action, const char *payload,
                int64_t *ret_delivery_id, int64_t *ret_event_ms)
{
    char path[160];
    snprintf(path, sizeof(path), "/users/%s/%s", user, action);
    cJSON *answer = control_try(l, http, "POST", path, payload, 202);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(answer, "deliveryId");
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(answer, "events"), 0);
    const cJSON *timestamp = cJSON_GetObjectItemCaseSensitive(first, "timestamp");
    bool acted = cJSON_IsNumber(id) && cJSON_IsNumber(timestamp);
    if (acted) {
        *ret_delivery_id = (int64_t)id->valuedouble;
        *ret_event_ms = (int64_t)timestamp->valuedouble;
    }
    cJSON_Delete(answer);
    return acted;
}

/* Waits (polling the chat, set-up only) until a bot message in chat contains needle. */
static void wait_chat(load *l, e2e_http *http, const char *chat, const char *needle)
{
    char path[160];
    snprintf(path, sizeof(path), "/conversations/%s?after=0&limit=10000", chat);
    int64_t deadline = e2e_mono_ns() + (int64_t)SETUP_WAIT_MS * 1000000;
    while (e2e_mono_ns() < deadline) {
        cJSON *answer = control(l, http, "GET", path, NULL, 200);
        bool found = false;
        const cJSON *entry;
        cJSON_ArrayForEach(entry, cJSON_GetObjectItemCaseSensitive(answer, "entries"))
        {
            const cJSON *direction = cJSON_GetObjectItemCaseSensitive(entry, "direction");
            char *message =
                cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(entry, "message"));
            found =
                found || (cJSON_IsString(direction) && strcmp(direction->valuestring, "out") == 0 &&
                          message != NULL && strstr(message, needle) != NULL);
            cJSON_free(message);
        }
        cJSON_Delete(answer);
        if (found)
            return;
        e2e_sleep_ms(50);
    }
    e2e_die("no bot message with \"%s\" in a set-up chat after %d s", needle, SETUP_WAIT_MS / 1000);
}

/* A group per team, with an officer; the bot joins and the officer binds it. */
static void set_up_teams(load *l)
{
    e2e_http http;
    e2e_http_init(&http);
    for (size_t i = 0; i < l->opt.team_count; i++) {
        team *t = &l->opt.teams[i];
        char officer[ID_MAX], name[96], body[256], path[160];
        snprintf(name, sizeof(name), "เจ้าหน้าที่ %s", t->label);
        if (!create_user(l, &http, name, officer))
            e2e_die("cannot create the officer of team %s", t->label);
        snprintf(body, sizeof(body), "{\"groupName\":\"ทีม %s\",\"members\":[\"%s\"]}", t->label,
                 officer);
        cJSON *group = control(l, &http, "POST", "/groups", body, 201);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(group, "groupId");
        if (!cJSON_IsString(id) || !e2e_copy(t->group_id, sizeof(t->group_id), id->valuestring))
            e2e_die("POST /groups: no groupId");
        cJSON_Delete(group);
        snprintf(path, sizeof(path), "/groups/%s/join", t->group_id);
        cJSON_Delete(control(l, &http, "POST", path, "{}", 202));
        wait_chat(l, &http, t->group_id, "/ess bind");
        snprintf(body, sizeof(body), "{\"text\":\"/ess bind %s\",\"groupId\":\"%s\"}", t->code,
                 t->group_id);
        int64_t ignored_id = 0, ignored_ms = 0;
        if (!act(l, &http, officer, "text", body, &ignored_id, &ignored_ms))
            e2e_die("the officer of team %s cannot write in its group", t->label);
        wait_chat(l, &http, t->group_id, "ผูกกลุ่มนี้กับ");
    }
    e2e_http_done(&http);
}

/* ---- the message poller: every accepted outbound message, in order ------------------------- */

/* The case number in text ("ESS-2569-000123"), if any. */
static bool find_case_number(const char *text, char ret_case[CASE_MAX])
{
    for (const char *at = strstr(text, "ESS-"); at != NULL; at = strstr(at + 1, "ESS-")) {
        size_t len = 4, digits = 0, dashes = 0;
        while (len < CASE_MAX - 1 && ((at[len] >= '0' && at[len] <= '9') || at[len] == '-')) {
            digits += at[len] != '-';
            dashes += at[len] == '-';
            len++;
        }
        if (digits >= 5 && dashes == 1 && at[len - 1] != '-') {
            memcpy(ret_case, at, len);
            ret_case[len] = '\0';
            return true;
        }
    }
    return false;
}

static uint64_t hash_text(const char *text)
{
    uint64_t hash = 1469598103934665603ULL;
    for (; *text != '\0'; text++)
        hash = (hash ^ (unsigned char)*text) * 1099511628211ULL;
    return hash;
}

/* Under l->lock. The first message naming a case is its card; later ones (the card's other
 * messages, reminders) are not. True when this one is the card. */
static bool note_card(load *l, const char *case_number, int64_t time_ms)
{
    size_t at = (size_t)(hash_text(case_number) & (l->card_capacity - 1));
    while (l->cards[at].case_number[0] != '\0') {
        if (strcmp(l->cards[at].case_number, case_number) == 0)
            return false;
        at = (at + 1) & (l->card_capacity - 1);
    }
    if (l->card_count + 1 >= l->card_capacity / 2) {
        l->cards_unmatched++;
        return false;
    }
    e2e_copy(l->cards[at].case_number, CASE_MAX, case_number);
    l->cards[at].time_ms = time_ms;
    l->card_count++;
    return true;
}

/* Under l->lock. */
static const card *find_card(const load *l, const char *case_number)
{
    size_t at = (size_t)(hash_text(case_number) & (l->card_capacity - 1));
    while (l->cards[at].case_number[0] != '\0') {
        if (strcmp(l->cards[at].case_number, case_number) == 0)
            return &l->cards[at];
        at = (at + 1) & (l->card_capacity - 1);
    }
    return NULL;
}

/* Under l->lock. */
static void note_message(load *l, const char *to, int64_t time_ms, const cJSON *message)
{
    char *text = cJSON_PrintUnformatted(message);
    if (text == NULL)
        return;
    char case_number[CASE_MAX];
    bool has_case = find_case_number(text, case_number);
    if (to[0] == 'C') {
        for (size_t i = 0; i < l->opt.team_count; i++)
            if (has_case && strcmp(l->opt.teams[i].group_id, to) == 0 &&
                note_card(l, case_number, time_ms))
                l->opt.teams[i].cards++;
    } else {
        for (long w = 0; w < l->opt.concurrency; w++) {
            slot *s = &l->slots[w];
            if (s->user_id[0] == '\0' || strcmp(s->user_id, to) != 0)
                continue;
            s->messages++;
            s->last_ms = time_ms;
            if (has_case && s->case_number[0] == '\0')
                e2e_copy(s->case_number, CASE_MAX, case_number);
            pthread_cond_broadcast(&s->changed);
            break;
        }
    }
    cJSON_free(text);
}

static void *poll_messages(void *closure)
{
    load *l = closure;
    e2e_http http;
    e2e_http_init(&http);
    long long after = 0;
    char url[URL_MAX + 128];
    for (;;) {
        bool last_round = atomic_load(&l->stop_polling);
        snprintf(url, sizeof(url), "%s/_emulator/messages?after=%lld&limit=%d", l->opt.emulator,
                 after, PAGE_LIMIT);
        long status = e2e_http_call(&http, "GET", url, NULL, CALL_TIMEOUT_MS);
        cJSON *answer = status == 200 ? cJSON_Parse(http.body) : NULL;
        int listed = 0;
        pthread_mutex_lock(&l->lock);
        l->message_polls++;
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(answer, "messages"))
        {
            const cJSON *seq = cJSON_GetObjectItemCaseSensitive(item, "seq");
            const cJSON *time = cJSON_GetObjectItemCaseSensitive(item, "time");
            const cJSON *to = cJSON_GetObjectItemCaseSensitive(item, "to");
            listed++;
            if (!cJSON_IsNumber(seq) || !cJSON_IsNumber(time) || !cJSON_IsString(to))
                continue;
            if ((long long)seq->valuedouble > after)
                after = (long long)seq->valuedouble;
            note_message(l, to->valuestring, (int64_t)time->valuedouble,
                         cJSON_GetObjectItemCaseSensitive(item, "message"));
        }
        pthread_mutex_unlock(&l->lock);
        cJSON_Delete(answer);
        if (last_round && listed < PAGE_LIMIT)
            break;
        if (listed < PAGE_LIMIT)
            e2e_sleep_ms(l->opt.poll_ms);
    }
    e2e_http_done(&http);
    return NULL;
}

/* ---- the delivery poller: webhook POSTs and their answers ---------------------------------- */

/* Under l->lock. */
static delivery *delivery_at(load *l, int64_t id)
{
    if (id < 1 || id > 100000000)
        return NULL;
    if ((size_t)id >= l->delivery_capacity) {
        size_t capacity = l->delivery_capacity > 0 ? l->delivery_capacity : 65536;
        while (capacity <= (size_t)id)
            capacity *= 2;
        delivery *grown = realloc(l->deliveries, capacity * sizeof(delivery));
        if (grown == NULL)
            e2e_die("out of memory");
        memset(grown + l->delivery_capacity, 0,
               (capacity - l->delivery_capacity) * sizeof(delivery));
        l->deliveries = grown;
        l->delivery_capacity = capacity;
    }
    return &l->deliveries[id];
}

/* Under l->lock. */
static void note_delivery(load *l, const cJSON *item)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "id");
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(item, "state");
    if (!cJSON_IsNumber(id) || !cJSON_IsString(state) || strcmp(state->valuestring, "pending") == 0)
        return;
    delivery *d = delivery_at(l, (int64_t)id->valuedouble);
    if (d == NULL || d->final)
        return;
    d->final = true;
    d->events = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(item, "webhookEventIds"));
    const cJSON *attempt;
    cJSON_ArrayForEach(attempt, cJSON_GetObjectItemCaseSensitive(item, "attempts"))
    {
        const cJSON *at = cJSON_GetObjectItemCaseSensitive(attempt, "at");
        const cJSON *status = cJSON_GetObjectItemCaseSensitive(attempt, "status");
        const cJSON *duration = cJSON_GetObjectItemCaseSensitive(attempt, "durationMs");
        if (!cJSON_IsNumber(at) || !cJSON_IsNumber(status) || !cJSON_IsNumber(duration))
            continue;
        if (d->first_at_ms == 0)
            d->first_at_ms = (int64_t)at->valuedouble;
        if (status->valuedouble >= 200 && status->valuedouble < 300 && d->accepted_ms == 0)
            d->accepted_ms = (int64_t)(at->valuedouble + duration->valuedouble);
        else if (status->valuedouble < 200 || status->valuedouble >= 300)
            d->non_2xx++;
    }
}

static void *poll_deliveries(void *closure)
{
    load *l = closure;
    e2e_http http;
    e2e_http_init(&http);
    char url[URL_MAX + 128];
    for (;;) {
        bool last_round = atomic_load(&l->stop_polling);
        pthread_mutex_lock(&l->lock);
        long long cursor = (long long)l->delivery_cursor;
        pthread_mutex_unlock(&l->lock);
        snprintf(url, sizeof(url), "%s/_emulator/deliveries?after=%lld&limit=%d", l->opt.emulator,
                 cursor, PAGE_LIMIT);
        long status = e2e_http_call(&http, "GET", url, NULL, CALL_TIMEOUT_MS);
        cJSON *answer = status == 200 ? cJSON_Parse(http.body) : NULL;
        int listed = 0;
        pthread_mutex_lock(&l->lock);
        l->delivery_polls++;
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(answer, "deliveries"))
        {
            listed++;
            note_delivery(l, item);
        }
        /* The cursor moves over final ones only: a pending POST is asked about again. */
        while (l->delivery_cursor + 1 < (int64_t)l->delivery_capacity &&
               l->deliveries[l->delivery_cursor + 1].final)
            l->delivery_cursor++;
        pthread_mutex_unlock(&l->lock);
        cJSON_Delete(answer);
        if (last_round)
            break;
        e2e_sleep_ms(listed < PAGE_LIMIT ? 250 : 1);
    }
    e2e_http_done(&http);
    return NULL;
}

/* ---- citizens ------------------------------------------------------------------------------ */

typedef struct worker {
    load *l;
    long index;
} worker;

/* Waits until the slot has at least want bot messages (and a case number when
 * want_case); false after the step timeout. */
static bool wait_answer(load *l, slot *s, long want, bool want_case, int64_t *ret_last_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    int64_t timeout_ms = (int64_t)(l->opt.step_timeout_s * 1000);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->lock);
    bool reached = false;
    for (;;) {
        reached = s->messages >= want && (!want_case || s->case_number[0] != '\0');
        if (reached || pthread_cond_timedwait(&s->changed, &l->lock, &deadline) != 0)
            break;
    }
    reached = s->messages >= want && (!want_case || s->case_number[0] != '\0');
    *ret_last_ms = s->last_ms;
    pthread_mutex_unlock(&l->lock);
    return reached;
}

/* Under l->lock: the citizen's end. */
static void finish_citizen(load *l, citizen *c, citizen_state state, const slot *s, int64_t done_ms)
{
    c->state = state;
    if (state == CITIZEN_DONE) {
        e2e_copy(c->case_number, sizeof(c->case_number), s->case_number);
        c->done_ms = done_ms;
        atomic_fetch_add(&l->done, 1);
    } else {
        atomic_fetch_add(&l->failed, 1);
    }
}

/* One citizen, start to finish. The citizen's record is written under l->lock: the main
 * thread reads it while the workers run (waiting for the last cards). */
static void run_citizen(load *l, e2e_http *http, slot *s, long index)
{
    citizen *c = &l->citizens[index];
    const point *p = &l->points[(size_t)index % l->point_count];
    char user[ID_MAX], name[64], body[256];
    snprintf(name, sizeof(name), "ผู้แจ้ง %ld", index + 1);
    if (!create_user(l, http, name, user)) {
        pthread_mutex_lock(&l->lock);
        finish_citizen(l, c, CITIZEN_FAILED, s, 0);
        pthread_mutex_unlock(&l->lock);
        return;
    }
    pthread_mutex_lock(&l->lock);
    e2e_copy(s->user_id, sizeof(s->user_id), user);
    s->messages = 0;
    s->last_ms = 0;
    s->case_number[0] = '\0';
    pthread_mutex_unlock(&l->lock);

    /* The steps as the LINE app offers them: follow (welcome + categories), a category
     * (quick reply, one of five), "share location" (quick reply 1 of the question), the
     * phone typed (the case number comes back). */
    char category[32], location[160], phone[64];
    snprintf(category, sizeof(category), "{\"index\":%ld}", 1 + index % 5);
    snprintf(location, sizeof(location), "{\"index\":1,\"latitude\":%.6f,\"longitude\":%.6f}",
             p->latitude, p->longitude);
    snprintf(phone, sizeof(phone), "{\"text\":\"08%08ld\"}", index % 100000000);
    struct {
        const char *action, *payload;
        long want;
    } steps[4] = {
        {"follow", "{}", 2}, {"tap", category, 3}, {"tap", location, 4}, {"text", phone, 5}};
    for (int step = 0; step < 4; step++) {
        int64_t delivery_id = 0, event_ms = 0, answer_ms = 0;
        e2e_copy(body, sizeof(body), steps[step].payload);
        bool acted = act(l, http, user, steps[step].action, body, &delivery_id, &event_ms);
        if (acted && step == 3) {
            pthread_mutex_lock(&l->lock);
            c->phone_delivery_id = delivery_id;
            c->phone_event_ms = event_ms;
            pthread_mutex_unlock(&l->lock);
        }
        if (!acted || !wait_answer(l, s, steps[step].want, step == 3, &answer_ms)) {
            fprintf(stderr, "citizen %ld: %s at step %d (%s)\n", index + 1,
                    acted ? "no answer in time" : "refused", step + 1, steps[step].action);
            pthread_mutex_lock(&l->lock);
            finish_citizen(l, c, CITIZEN_FAILED, s, 0);
            pthread_mutex_unlock(&l->lock);
            break;
        }
        c->step_ms[step] = answer_ms - event_ms;
        if (step == 3) {
            pthread_mutex_lock(&l->lock);
            finish_citizen(l, c, CITIZEN_DONE, s, answer_ms);
            pthread_mutex_unlock(&l->lock);
        }
    }
    pthread_mutex_lock(&l->lock);
    s->user_id[0] = '\0';
    pthread_mutex_unlock(&l->lock);
}

static void *run_worker(void *closure)
{
    worker *w = closure;
    load *l = w->l;
    e2e_http http;
    e2e_http_init(&http);
    for (;;) {
        if (atomic_load(&l->stop_starting))
            break;
        long index = atomic_fetch_add(&l->next_citizen, 1);
        if (index >= l->opt.citizens) {
            atomic_store(&l->stop_starting, true);
            break;
        }
        if (l->opt.rate > 0) {
            int64_t due = l->start_ms + (int64_t)((double)index * 1000.0 / l->opt.rate);
            e2e_sleep_ms(due - e2e_wall_ms());
        }
        int64_t now = e2e_wall_ms();
        if (now - l->start_ms > (int64_t)(l->opt.duration_s * 1000)) {
            atomic_store(&l->stop_starting, true);
            break;
        }
        atomic_store(&l->last_start_ms, now);
        atomic_fetch_add(&l->started, 1);
        run_citizen(l, &http, &l->slots[w->index], index);
    }
    e2e_http_done(&http);
    return NULL;
}

/* ---- figures ------------------------------------------------------------------------------- */

typedef enum cpu_moment { CPU_RUN_START, CPU_WINDOW_START, CPU_WINDOW_END } cpu_moment;

static void snapshot_cpu(load *l, cpu_moment moment)
{
    for (size_t g = 0; g < l->opt.cpu_count; g++) {
        cpu_group *group = &l->opt.cpu[g];
        long long sum = 0;
        for (size_t i = 0; i < group->pid_count; i++) {
            long long ticks = e2e_cpu_ticks(group->pids[i]);
            sum += ticks > 0 ? ticks : 0;
        }
        if (moment == CPU_RUN_START)
            group->ticks_run_start = sum;
        else if (moment == CPU_WINDOW_START)
            group->ticks_start = sum;
        else
            group->ticks_end = sum;
    }
}

static void sample_backlogs(load *l, e2e_http *http)
{
    char url[URL_MAX + 64];
    snprintf(url, sizeof(url), "%s/jsz?consumers=true", l->opt.nats_monitor);
    if (e2e_http_call(http, "GET", url, NULL, 2000) != 200)
        return;
    cJSON *root = cJSON_Parse(http->body);
    const cJSON *account, *stream, *consumer;
    cJSON_ArrayForEach(account, cJSON_GetObjectItemCaseSensitive(root, "account_details"))
    {
        cJSON_ArrayForEach(stream, cJSON_GetObjectItemCaseSensitive(account, "stream_detail"))
        {
            cJSON_ArrayForEach(consumer,
                               cJSON_GetObjectItemCaseSensitive(stream, "consumer_detail"))
            {
                const cJSON *name = cJSON_GetObjectItemCaseSensitive(consumer, "name");
                const cJSON *pending = cJSON_GetObjectItemCaseSensitive(consumer, "num_pending");
                const cJSON *unacked =
                    cJSON_GetObjectItemCaseSensitive(consumer, "num_ack_pending");
                if (!cJSON_IsString(name))
                    continue;
                long long waiting =
                    (cJSON_IsNumber(pending) ? (long long)pending->valuedouble : 0) +
                    (cJSON_IsNumber(unacked) ? (long long)unacked->valuedouble : 0);
                backlog *b = NULL;
                for (size_t i = 0; i < l->backlog_count && b == NULL; i++)
                    if (strcmp(l->backlogs[i].consumer, name->valuestring) == 0)
                        b = &l->backlogs[i];
                if (b == NULL && l->backlog_count < BACKLOGS_MAX) {
                    b = &l->backlogs[l->backlog_count++];
                    e2e_copy(b->consumer, sizeof(b->consumer), name->valuestring);
                }
                if (b == NULL)
                    continue;
                b->sum += waiting;
                if (waiting > b->peak)
                    b->peak = waiting;
            }
        }
    }
    l->backlog_samples++;
    cJSON_Delete(root);
}

static void print_distribution(const char *label, int64_t *values, size_t count)
{
    e2e_sort(values, count);
    long long p50 = (long long)e2e_percentile(values, count, 50);
    long long p95 = (long long)e2e_percentile(values, count, 95);
    long long p99 = (long long)e2e_percentile(values, count, 99);
    long long max = count > 0 ? (long long)values[count - 1] : 0;
    printf("%s n=%zu p50=%lld p95=%lld p99=%lld max=%lld ms\n", label, count, p50, p95, p99, max);
}

static void report(load *l, int64_t window_start, int64_t window_end, bool whole_run,
                   int64_t end_ms)
{
    long taken = atomic_load(&l->next_citizen); /* indexes handed out; some may not have started */
    if (taken > l->opt.citizens)
        taken = l->opt.citizens;
    long started = atomic_load(&l->started);
    long done = atomic_load(&l->done), failed = atomic_load(&l->failed);
    double window_s = (double)(window_end - window_start) / 1000.0;
    double run_s = (double)(end_ms - l->start_ms) / 1000.0;

    size_t done_in_window = 0, with_card = 0, card_missing = 0, delivery_missing = 0;
    int64_t *latency = calloc((size_t)taken + 1, sizeof(int64_t));
    int64_t *latency_from_tap = calloc((size_t)taken + 1, sizeof(int64_t));
    int64_t *steps = calloc((size_t)taken * 4 + 1, sizeof(int64_t));
    size_t step_count = 0;
    if (latency == NULL || latency_from_tap == NULL || steps == NULL)
        e2e_die("out of memory");
    pthread_mutex_lock(&l->lock);
    for (long i = 0; i < taken; i++) {
        citizen *c = &l->citizens[i];
        for (int s = 0; s < 4; s++)
            if (c->step_ms[s] >= 0)
                steps[step_count++] = c->step_ms[s];
        if (c->state != CITIZEN_DONE)
            continue;
        if (c->done_ms >= window_start && c->done_ms <= window_end)
            done_in_window++;
        const card *found = find_card(l, c->case_number);
        if (found == NULL) {
            card_missing++;
            continue;
        }
        const delivery *d =
            c->phone_delivery_id > 0 && (size_t)c->phone_delivery_id < l->delivery_capacity
                ? &l->deliveries[c->phone_delivery_id]
                : NULL;
        latency_from_tap[with_card] = found->time_ms - c->phone_event_ms;
        if (d != NULL && d->final && d->first_at_ms > 0) {
            latency[with_card] = found->time_ms - d->first_at_ms;
        } else {
            latency[with_card] = found->time_ms - c->phone_event_ms;
            delivery_missing++;
        }
        with_card++;
    }
    long long events = 0, events_in_window = 0, posts = 0, non_2xx = 0;
    for (size_t id = 1; id < l->delivery_capacity; id++) {
        const delivery *d = &l->deliveries[id];
        if (!d->final || d->first_at_ms < l->start_ms)
            continue; /* set-up POSTs, or not seen */
        posts++;
        non_2xx += d->non_2xx;
        if (d->accepted_ms == 0)
            continue;
        events += d->events;
        if (d->accepted_ms >= window_start && d->accepted_ms <= window_end)
            events_in_window += d->events;
    }
    pthread_mutex_unlock(&l->lock);

    printf("# citizens started=%ld completed=%ld failed=%ld in %.1f s (concurrency %ld%s)\n",
           started, done, failed, run_s, l->opt.concurrency,
           l->opt.rate > 0 ? ", open loop" : ", closed loop");
    printf("# window %s: %.1f s .. %.1f s after the start (%.1f s)\n",
           whole_run ? "(whole run: too short for a warm-up)"
                     : "(warm-up excluded, until the last citizen started)",
           (double)(window_start - l->start_ms) / 1000.0,
           (double)(window_end - l->start_ms) / 1000.0, window_s);
    printf("reports/s   sustained=%.1f  overall=%.1f  (%zu completed in the window)\n",
           window_s > 0 ? (double)done_in_window / window_s : 0.0,
           run_s > 0 ? (double)done / run_s : 0.0, done_in_window);
    printf("events/s    sustained=%.1f  overall=%.1f  (webhook events answered 2xx: %lld in %lld "
           "POSTs, %lld non-2xx attempts)\n",
           window_s > 0 ? (double)events_in_window / window_s : 0.0,
           run_s > 0 ? (double)events / run_s : 0.0, events, posts, non_2xx);
    print_distribution(
        "card        phone webhook sent -> card pushed to the team's group:", latency, with_card);
    print_distribution("card+queue  phone typed (incl. the emulator's webhook queue) -> card:",
                       latency_from_tap, with_card);
    print_distribution("answer      each step's event -> the bot's answer in the chat:", steps,
                       step_count);
    if (card_missing > 0 || delivery_missing > 0 || l->cards_unmatched > 0)
        printf("# WARNING: %zu completed reports without a card, %zu without their webhook's "
               "delivery record, %zu cards not kept\n",
               card_missing, delivery_missing, l->cards_unmatched);
    printf("# cards by team:");
    for (size_t i = 0; i < l->opt.team_count; i++)
        printf(" %s=%ld", l->opt.teams[i].label, l->opt.teams[i].cards);
    printf("\n");
    if (l->opt.cpu_count > 0) {
        long ticks_per_s = sysconf(_SC_CLK_TCK);
        printf("# cpu in the window (share of one core):");
        for (size_t g = 0; g < l->opt.cpu_count; g++) {
            const cpu_group *group = &l->opt.cpu[g];
            double seconds = (double)(group->ticks_end - group->ticks_start) / (double)ticks_per_s;
            printf(" %s=%.0f%%", group->name, window_s > 0 ? 100.0 * seconds / window_s : 0.0);
        }
        printf("\n");
    }
    if (l->backlog_samples > 0) {
        printf("# messages waiting per JetStream consumer (pending + unacked; mean/peak of %ld "
               "samples in the window):",
               l->backlog_samples);
        for (size_t i = 0; i < l->backlog_count; i++)
            printf(" %s=%.1f/%lld", l->backlogs[i].consumer,
                   (double)l->backlogs[i].sum / (double)l->backlog_samples, l->backlogs[i].peak);
        printf("\n");
    }
    printf("# emulator polls: messages %lld, deliveries %lld\n", l->message_polls,
           l->delivery_polls);
    free(latency);
    free(latency_from_tap);
    free(steps);
}

/* True when every completed citizen's card and phone delivery are in. */
static bool all_in(load *l)
{
    long taken = atomic_load(&l->next_citizen);
    if (taken > l->opt.citizens)
        taken = l->opt.citizens;
    bool complete = true;
    pthread_mutex_lock(&l->lock);
    for (long i = 0; i < taken && complete; i++) {
        const citizen *c = &l->citizens[i];
        if (c->state != CITIZEN_DONE)
            continue;
        complete = find_card(l, c->case_number) != NULL &&
                   (size_t)c->phone_delivery_id < l->delivery_capacity &&
                   l->deliveries[c->phone_delivery_id].final;
    }
    pthread_mutex_unlock(&l->lock);
    return complete;
}

int e2e_load_main(int argc, char **argv)
{
    static load l; /* large; one per process */
    parse_options(argc, argv, &l.opt);
    read_points(&l);
    l.citizens = calloc((size_t)l.opt.citizens, sizeof(citizen));
    l.card_capacity = 64;
    while (l.card_capacity < (size_t)l.opt.citizens * 4)
        l.card_capacity *= 2;
    l.cards = calloc(l.card_capacity, sizeof(card));
    if (l.citizens == NULL || l.cards == NULL)
        e2e_die("out of memory");
    for (long i = 0; i < l.opt.citizens; i++)
        for (int s = 0; s < 4; s++)
            l.citizens[i].step_ms[s] = -1;
    pthread_mutex_init(&l.lock, NULL);
    for (long w = 0; w < l.opt.concurrency; w++)
        pthread_cond_init(&l.slots[w].changed, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    set_up_teams(&l);
    fprintf(stderr, "bench_e2e_loadgen: %zu teams bound; %zu points; starting %ld workers\n",
            l.opt.team_count, l.point_count, l.opt.concurrency);

    pthread_t message_poller, delivery_poller, workers[WORKERS_MAX];
    worker args[WORKERS_MAX];
    snapshot_cpu(&l, CPU_RUN_START);
    l.start_ms = e2e_wall_ms();
    if (pthread_create(&message_poller, NULL, poll_messages, &l) != 0 ||
        pthread_create(&delivery_poller, NULL, poll_deliveries, &l) != 0)
        e2e_die("cannot start the pollers");
    for (long w = 0; w < l.opt.concurrency; w++) {
        args[w] = (worker){.l = &l, .index = w};
        if (pthread_create(&workers[w], NULL, run_worker, &args[w]) != 0)
            e2e_die("cannot start worker %ld", w);
    }

    /* The window's ends: the CPU counters are read there. */
    int64_t window_start = l.start_ms + (int64_t)(l.opt.warmup_s * 1000);
    bool started_window = false;
    int64_t next_progress = l.start_ms + 10000, next_sample = window_start;
    e2e_http monitor;
    e2e_http_init(&monitor);
    while (!atomic_load(&l.stop_starting)) {
        int64_t now = e2e_wall_ms();
        if (l.opt.nats_monitor[0] != '\0' && now >= next_sample) {
            sample_backlogs(&l, &monitor);
            next_sample = now + 1000;
        }
        if (!started_window && now >= window_start) {
            snapshot_cpu(&l, CPU_WINDOW_START);
            started_window = true;
        }
        if (now >= next_progress) {
            fprintf(stderr, "  %.0f s: %ld reports completed, %ld failed\n",
                    (double)(now - l.start_ms) / 1000.0, atomic_load(&l.done),
                    atomic_load(&l.failed));
            next_progress += 10000;
        }
        e2e_sleep_ms(20);
    }
    int64_t window_end = atomic_load(&l.last_start_ms);
    snapshot_cpu(&l, CPU_WINDOW_END);
    e2e_http_done(&monitor);
    bool whole_run = !started_window || window_end - window_start < 1000;
    for (long w = 0; w < l.opt.concurrency; w++)
        pthread_join(workers[w], NULL);
    int64_t end_ms = e2e_wall_ms();
    if (whole_run) {
        window_start = l.start_ms;
        window_end = end_ms;
    }
    /* Cards and delivery records of the last reports. */
    int64_t wait_until = e2e_mono_ns() + (int64_t)(l.opt.card_wait_s * 1e9);
    while (!all_in(&l) && e2e_mono_ns() < wait_until)
        e2e_sleep_ms(100);
    atomic_store(&l.stop_polling, true);
    pthread_join(message_poller, NULL);
    pthread_join(delivery_poller, NULL);

    if (whole_run) { /* the whole run instead: from the start to the last answer */
        snapshot_cpu(&l, CPU_WINDOW_END);
        for (size_t g = 0; g < l.opt.cpu_count; g++)
            l.opt.cpu[g].ticks_start = l.opt.cpu[g].ticks_run_start;
    }
    report(&l, window_start, window_end, whole_run, end_ms);
    long failed = atomic_load(&l.failed);
    free(l.citizens);
    free(l.cards);
    free(l.deliveries);
    free(l.points);
    curl_global_cleanup();
    return failed > 0 ? 1 : 0;
}
