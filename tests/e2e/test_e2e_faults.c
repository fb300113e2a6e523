/* Issue 9, fault injection: 200 citizens report concurrently through the line-emulator while
 * the stack (started by `deploy/local/ess up`) is hurt in turn — each service SIGKILLed and
 * restarted by its supervisor, nats-server killed and PostgreSQL crashed (both started again
 * by `ess up`), LINE answering 500s and then 429s. Afterwards every report whose webhooks
 * LINE saw answered 200 must be
 *   (a) in the database exactly once,
 *   (b) on its province team's group card exactly once (and on no other group's),
 *   (c) in the audit log (its LINE events, its reported and routed events), with
 *       `essctl audit verify` passing,
 * and its reporter must have been told the case number.
 *
 * Waves: the citizens are released in waves, one before each fault, so reports are in every
 * stage of the path when the fault strikes. Driver threads act for the citizens (follow,
 * category, location, phone: four webhooks each, sent without waiting for the answers, as a
 * hurried person would); the main thread injects the faults and waits for each to heal. */
#include "testkit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e_line.h"
#include "e2e_stack.h"

#define CITIZENS 200
#define DRIVERS 4
#define STEPS_PER_REPORT 4
#define CONVERGE_MS 240000
#define PG_OUTAGE_MS 12000

static const char *const stack_env[] = {"ESS_EMULATOR_REDELIVERY_INTERVAL=200ms",
                                        "ESS_EMULATOR_REDELIVERY_MAX_INTERVAL=1s",
                                        "ESS_NOTIFIER_BACKOFF_MIN=200ms",
                                        "ESS_NOTIFIER_BACKOFF_MAX=2s",
                                        "ESS_ACK_TIMEOUT=30m",
                                        NULL};

typedef struct province {
    const char *code;
    double lat, lon;
    char group[E2E_ID_MAX];
} province;

static province provinces[] = {
    {"TH50", 18.7883, 98.9853, ""}, {"TH10", 13.7500, 100.4913, ""}, {"TH83", 7.8804, 98.3923, ""},
    {"TH90", 7.0086, 100.4747, ""}, {"TH40", 16.4322, 102.8236, ""},
};
#define PROVINCES (sizeof(provinces) / sizeof(provinces[0]))

static const char *const category_codes[] = {"threat", "confinement", "sexual", "frenzy",
                                             "gathering"};

typedef struct citizen {
    char user[E2E_ID_MAX];
    char hash[65];
    size_t province;
    int wave;
    int64_t deliveries[STEPS_PER_REPORT];
    char event_ids[STEPS_PER_REPORT][E2E_ID_MAX];
    int steps_sent;
    long failed_status; /* the control API's answer when a step could not be sent */
    /* found afterwards */
    bool accepted; /* every webhook of the report ended with a 200 */
    char case_number[E2E_CASE_MAX];
} citizen;

static citizen citizens[CITIZENS];

typedef struct drive {
    e2e_stack *s;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int released_waves;
    int index;
} drive;

/* ---- the citizens' side (driver threads: no cmocka calls) ----------------------------------- */

static void act(e2e_stack *s, citizen *c, int step, const char *action, const char *body)
{
    char path[160];
    snprintf(path, sizeof(path), "/users/%s/%s", c->user, action);
    long status = 0;
    cJSON *answer = NULL;
    e2e_line_try(s, "POST", path, body, &status, &answer);
    const cJSON *id = cJSON_GetObjectItem(answer, "deliveryId");
    const cJSON *event = cJSON_GetObjectItem(
        cJSON_GetArrayItem(cJSON_GetObjectItem(answer, "events"), 0), "webhookEventId");
    if (status == 202 && cJSON_IsNumber(id) && cJSON_IsString(event)) {
        c->deliveries[step] = (int64_t)id->valuedouble;
        snprintf(c->event_ids[step], E2E_ID_MAX, "%s", event->valuestring);
        c->steps_sent++;
    } else if (c->failed_status == 0) {
        c->failed_status = status != 0 ? status : -1;
    }
    cJSON_Delete(answer);
}

static void report(e2e_stack *s, citizen *c, size_t number)
{
    const province *p = &provinces[c->province];
    char body[200];
    act(s, c, 0, "follow", "{}");
    snprintf(body, sizeof(body), "{\"data\":\"v=1&a=cat&c=%s\"}", category_codes[number % 5]);
    act(s, c, 1, "postback", body);
    /* Spread over a few hundred metres around the town centre. */
    snprintf(
        body, sizeof(body),
        "{\"latitude\":%.6f,\"longitude\":%.6f,\"title\":\"จุดเกิดเหตุ\",\"address\":\"ซอย %zu\"}",
        p->lat + 0.0001 * (double)(number % 20), p->lon - 0.0001 * (double)(number % 17), number);
    act(s, c, 2, "location", body);
    snprintf(body, sizeof(body), "{\"text\":\"08%08zu\"}", 10000000 + number);
    act(s, c, 3, "text", body);
}

static void *driver(void *closure)
{
    drive *d = closure;
    for (;;) {
        pthread_mutex_lock(&d->lock);
        while (d->index < CITIZENS && citizens[d->index].wave >= d->released_waves)
            pthread_cond_wait(&d->wake, &d->lock);
        int mine = d->index < CITIZENS ? d->index++ : -1;
        pthread_mutex_unlock(&d->lock);
        if (mine < 0)
            return NULL;
        report(d->s, &citizens[mine], (size_t)mine);
    }
}

static void release_wave(drive *d)
{
    pthread_mutex_lock(&d->lock);
    d->released_waves++;
    pthread_cond_broadcast(&d->wake);
    pthread_mutex_unlock(&d->lock);
}

/* ---- faults -----------------------------------------------------------------------------------
 */

typedef struct count_wait {
    e2e_stack *s;
    const char *sql;
    int nparams;
    const char *const *params;
    long long want, seen;
} count_wait;

static bool count_reached(void *closure)
{
    count_wait *w = closure;
    w->seen = e2e_sql(w->s, w->sql, w->nparams, w->params);
    return w->seen >= w->want;
}

typedef enum fault_kind {
    FAULT_KILL_SERVICE,
    FAULT_RESTART_NATS,
    FAULT_CRASH_PG,
    FAULT_LINE_500,
    FAULT_LINE_429,
} fault_kind;

typedef struct fault {
    fault_kind kind;
    e2e_service_id service; /* FAULT_KILL_SERVICE */
    const char *name;
    /* The fault strikes once this count grew by `grown` since the wave was released: the
     * wave is then flowing through the part that is hurt (NULL: at once). */
    const char *trigger_sql;
    long long grown;
} fault;

/* Counts that show how far the reports got. */
#define APPLIED_EVENTS "SELECT count(*) FROM processed_events WHERE consumer = 'conversation'"
#define REPORTED "SELECT count(*) FROM incidents"
#define ROUTED "SELECT count(*) FROM incidents WHERE routed_at IS NOT NULL"
#define AUDITED "SELECT count(*) FROM audit_log"

static bool line_faults_used_up(void *closure)
{
    e2e_stack *s = closure;
    long status = 0;
    cJSON *answer = NULL;
    e2e_line_try(s, "GET", "/faults", NULL, &status, &answer);
    bool empty = status == 200 && cJSON_GetArraySize(cJSON_GetObjectItem(answer, "faults")) == 0;
    cJSON_Delete(answer);
    return empty;
}

/* LINE answers the next `count` replies and as many pushes with status (500 or 429). */
static void add_line_faults(e2e_stack *s, const char *status, int count)
{
    const char *endpoints[] = {"reply", "push"};
    for (size_t i = 0; i < 2; i++) {
        char body[120];
        snprintf(body, sizeof(body), "{\"endpoint\":\"%s\",\"kind\":\"%s\",\"count\":%d}",
                 endpoints[i], status, count);
        cJSON_Delete(e2e_line(s, "POST", "/faults", body, 201));
    }
}

typedef struct outage_wait {
    e2e_stack *s;
    int64_t until_ms;
} outage_wait;

static bool outage_noticed_and_over(void *closure)
{
    outage_wait *w = closure;
    return testkit_now_ms() >= w->until_ms && !e2e_service_ready(w->s, E2E_CONVERSATION) &&
           !e2e_service_ready(w->s, E2E_GEOROUTER) && !e2e_service_ready(w->s, E2E_NOTIFIER);
}

/* Releases the next wave and waits until it reached the part the fault hurts. */
static void release_and_wait_for_flow(e2e_stack *s, drive *d, const fault *f)
{
    long long before = f->trigger_sql != NULL ? e2e_sql(s, f->trigger_sql, 0, NULL) : 0;
    release_wave(d);
    if (f->trigger_sql == NULL)
        return;
    count_wait w = {s, f->trigger_sql, 0, NULL, before + f->grown, 0};
    if (!testkit_wait_until(count_reached, &w, E2E_WAIT_MS))
        fail_msg("before %s: %s stayed at %lld", f->name, f->trigger_sql, w.seen);
}

/* Injects a fault while wave `d->released_waves` runs, and waits until the stack healed. */
static void inject(e2e_stack *s, drive *d, const fault *f)
{
    int64_t started = testkit_now_ms();
    switch (f->kind) {
    case FAULT_KILL_SERVICE:
        release_and_wait_for_flow(s, d, f);
        e2e_kill_service(s, f->service);
        break;
    case FAULT_RESTART_NATS:
        release_and_wait_for_flow(s, d, f);
        e2e_kill_nats(s);
        free(e2e_ess(s, "up", 180000));
        break;
    case FAULT_CRASH_PG: {
        release_and_wait_for_flow(s, d, f);
        e2e_crash_pg(s);
        /* Down for longer than a consumer's whole retry budget (ess-conversation: max_deliver
         * 8, 1 s apart), as a slow restart or a failover is: the length of the fault, not a
         * wait for a state. The services must have noticed it too. */
        outage_wait w = {s, testkit_now_ms() + PG_OUTAGE_MS};
        if (!testkit_wait_until(outage_noticed_and_over, &w, PG_OUTAGE_MS + E2E_WAIT_MS))
            fail_msg("the services did not notice PostgreSQL's absence");
        free(e2e_ess(s, "up", 180000));
        break;
    }
    case FAULT_LINE_500:
    case FAULT_LINE_429:
        /* Before the wave: its replies and pushes meet the errors. */
        /* Fewer 429s: each pauses the notifier's sender (doubling, up to its backoff max). */
        if (f->kind == FAULT_LINE_500)
            add_line_faults(s, "500", 40);
        else
            add_line_faults(s, "429", 20);
        release_wave(d);
        if (!testkit_wait_until(line_faults_used_up, s, E2E_WAIT_MS))
            fail_msg("LINE's %s answers were not all used", f->name);
        break;
    }
    if (!e2e_stack_wait_ready(s, E2E_WAIT_MS))
        fail_msg("the stack did not heal after: %s", f->name);
    fprintf(stderr, "e2e faults: %-28s healed in %5lld ms\n", f->name,
            (long long)(testkit_now_ms() - started));
}

/* ---- what came out ----------------------------------------------------------------------------
 */

typedef struct delivery_state {
    int64_t id;
    bool final;     /* delivered or failed */
    bool delivered; /* ended with a 2xx */
    long last_status;
    int attempts;
} delivery_state;

typedef struct outcome {
    e2e_stack *s;
    delivery_state *states; /* indexed by delivery id */
    int64_t max_id;
    size_t pending;
} outcome;

/* Reads /deliveries into o->states; true when none of the citizens' deliveries is pending. */
static bool deliveries_final(void *closure)
{
    outcome *o = closure;
    memset(o->states, 0, sizeof(delivery_state) * (size_t)(o->max_id + 1));
    int64_t after = 0;
    for (;;) {
        char path[80];
        snprintf(path, sizeof(path), "/deliveries?after=%lld&limit=10000", (long long)after);
        long status = 0;
        cJSON *answer = NULL;
        e2e_line_try(o->s, "GET", path, NULL, &status, &answer);
        if (status != 200) {
            cJSON_Delete(answer);
            return false;
        }
        size_t listed = 0;
        const cJSON *entry;
        cJSON_ArrayForEach(entry, cJSON_GetObjectItem(answer, "deliveries"))
        {
            listed++;
            int64_t id = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(entry, "id"));
            if (id > after)
                after = id;
            if (id < 1 || id > o->max_id)
                continue;
            const char *state = cJSON_GetStringValue(cJSON_GetObjectItem(entry, "state"));
            const cJSON *attempts = cJSON_GetObjectItem(entry, "attempts");
            const cJSON *last = cJSON_GetArrayItem(attempts, cJSON_GetArraySize(attempts) - 1);
            delivery_state *d = &o->states[id];
            d->id = id;
            d->final = state != NULL && strcmp(state, "pending") != 0;
            d->delivered = state != NULL && strcmp(state, "delivered") == 0;
            d->last_status = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(last, "status"));
            d->attempts = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(entry, "attemptCount"));
        }
        cJSON_Delete(answer);
        if (listed == 0)
            break;
    }
    o->pending = 0;
    for (size_t i = 0; i < CITIZENS; i++)
        for (int step = 0; step < citizens[i].steps_sent; step++)
            if (!o->states[citizens[i].deliveries[step]].final)
                o->pending++;
    return o->pending == 0;
}

static void wait_count(e2e_stack *s, const char *what, const char *sql, int nparams,
                       const char *const *params, long long want)
{
    count_wait w = {s, sql, nparams, params, want, 0};
    if (!testkit_wait_until(count_reached, &w, CONVERGE_MS))
        fail_msg("%s: %lld of %lld", what, w.seen, want);
}

/* A PostgreSQL text[] literal of the accepted citizens' values (heap, caller frees). kind 0:
 * their lookup hashes; kind 1: "LINE_IN/<webhookEventId>" of every step. */
static char *accepted_array(int kind)
{
    size_t cap = 64 + (size_t)CITIZENS * STEPS_PER_REPORT * (E2E_ID_MAX + 16), len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    text[len++] = '{';
    for (size_t i = 0; i < CITIZENS; i++) {
        if (!citizens[i].accepted)
            continue;
        for (int step = 0; step < (kind == 0 ? 1 : STEPS_PER_REPORT); step++) {
            int written = kind == 0 ? snprintf(text + len, cap - len, "%s,", citizens[i].hash)
                                    : snprintf(text + len, cap - len, "LINE_IN/%s,",
                                               citizens[i].event_ids[step]);
            assert_true(written > 0 && (size_t)written < cap - len);
            len += (size_t)written;
        }
    }
    if (text[len - 1] == ',')
        len--;
    text[len++] = '}';
    text[len] = '\0';
    return text;
}

typedef struct card_tally {
    e2e_stack *s;
    size_t missing;
} card_tally;

/* Counts every card of every case in every team group: [citizen][province]. */
static void tally_cards(e2e_stack *s, size_t (*counts)[PROVINCES], size_t *ret_unknown)
{
    memset(counts, 0, sizeof(size_t) * CITIZENS * PROVINCES);
    *ret_unknown = 0;
    for (size_t p = 0; p < PROVINCES; p++) {
        char path[160];
        snprintf(path, sizeof(path), "/messages?to=%s&limit=10000", provinces[p].group);
        long status = 0;
        cJSON *answer = NULL;
        e2e_line_try(s, "GET", path, NULL, &status, &answer);
        const cJSON *record;
        cJSON_ArrayForEach(record, cJSON_GetObjectItem(answer, "messages"))
        {
            char found[E2E_CASE_MAX];
            if (!e2e_line_is_card(cJSON_GetObjectItem(record, "message"), found))
                continue;
            bool known = false;
            for (size_t i = 0; i < CITIZENS; i++)
                if (strcmp(citizens[i].case_number, found) == 0) {
                    counts[i][p]++;
                    known = true;
                }
            if (!known)
                (*ret_unknown)++;
        }
        cJSON_Delete(answer);
    }
}

static size_t card_counts[CITIZENS][PROVINCES];

static bool every_card_arrived(void *closure)
{
    card_tally *t = closure;
    size_t unknown = 0;
    tally_cards(t->s, card_counts, &unknown);
    t->missing = 0;
    for (size_t i = 0; i < CITIZENS; i++)
        if (citizens[i].accepted && card_counts[i][citizens[i].province] == 0)
            t->missing++;
    return t->missing == 0;
}

/* ---- the case ---------------------------------------------------------------------------------
 */

ESS_TEST(two_hundred_reports_survive_kills_restarts_and_line_errors)
{
    e2e_stack *s = &e2e_the_stack;
    int64_t case_started = testkit_now_ms();
    e2e_stack_up(s, stack_env);
    int64_t stack_ready = testkit_now_ms();

    for (size_t p = 0; p < PROVINCES; p++) {
        char officer[E2E_ID_MAX], name[64];
        snprintf(name, sizeof(name), "officer %s", provinces[p].code);
        e2e_line_user(s, name, officer);
        snprintf(name, sizeof(name), "ทีมสหวิชาชีพ %s", provinces[p].code);
        const char *args[] = {"--province", provinces[p].code, NULL};
        e2e_team_by_add(s, name, args, officer, provinces[p].group);
    }

    /* Each service is killed while the wave is inside it: the ingress while the webhooks
     * arrive, the conversation once it applied some of the wave's events, the georouter once
     * some of the wave's reports exist, the notifier once some are routed, the audit once it
     * wrote some of them. */
    const fault all_faults[] = {
        {FAULT_KILL_SERVICE, E2E_INGRESS, "SIGKILL ess-ingress", NULL, 0},
        {FAULT_KILL_SERVICE, E2E_CONVERSATION, "SIGKILL ess-conversation", APPLIED_EVENTS, 8},
        {FAULT_KILL_SERVICE, E2E_GEOROUTER, "SIGKILL ess-georouter", REPORTED, 2},
        {FAULT_KILL_SERVICE, E2E_NOTIFIER, "SIGKILL ess-notifier", ROUTED, 2},
        {FAULT_KILL_SERVICE, E2E_AUDIT, "SIGKILL ess-audit", AUDITED, 20},
        {FAULT_KILL_SERVICE, E2E_CONSOLE, "SIGKILL ess-console", APPLIED_EVENTS, 8},
        {FAULT_RESTART_NATS, 0, "SIGKILL nats-server, ess up", APPLIED_EVENTS, 8},
        {FAULT_CRASH_PG, 0, "crash PostgreSQL for 12 s, ess up", APPLIED_EVENTS, 8},
        {FAULT_LINE_500, 0, "LINE answers 40+40 500s", NULL, 0},
        {FAULT_LINE_429, 0, "LINE answers 20+20 429s", NULL, 0},
    };
    fault faults[sizeof(all_faults) / sizeof(all_faults[0])];
    size_t fault_count = 0;
    for (size_t i = 0; i < sizeof(all_faults) / sizeof(all_faults[0]); i++)
        if (all_faults[i].kind != FAULT_KILL_SERVICE || s->services[all_faults[i].service].built)
            faults[fault_count++] = all_faults[i];

    /* Citizens, their province (round robin) and their wave (one per fault). */
    for (size_t i = 0; i < CITIZENS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "citizen %zu", i);
        e2e_line_user(s, name, citizens[i].user);
        e2e_user_hash_hex(s, citizens[i].user, citizens[i].hash);
        citizens[i].province = i % PROVINCES;
        citizens[i].wave = (int)(i * fault_count / CITIZENS);
    }

    drive d = {.s = s, .released_waves = 0, .index = 0};
    pthread_mutex_init(&d.lock, NULL);
    pthread_cond_init(&d.wake, NULL);
    pthread_t threads[DRIVERS];
    for (int t = 0; t < DRIVERS; t++)
        assert_int_equal(pthread_create(&threads[t], NULL, driver, &d), 0);
    int64_t faults_started = testkit_now_ms();
    for (size_t i = 0; i < fault_count; i++)
        inject(s, &d, &faults[i]);
    release_wave(&d); /* nothing is left, but never leave a driver waiting */
    for (int t = 0; t < DRIVERS; t++)
        pthread_join(threads[t], NULL);
    int64_t faults_done = testkit_now_ms();
    for (size_t i = 0; i < CITIZENS; i++)
        if (citizens[i].steps_sent != STEPS_PER_REPORT)
            fail_msg("citizen %zu: the emulator refused a step (%ld)", i,
                     citizens[i].failed_status);

    /* Which reports did LINE hand over? Every webhook of each ended in a 200 (or gave up). */
    outcome o = {.s = s, .max_id = 0};
    for (size_t i = 0; i < CITIZENS; i++)
        for (int step = 0; step < STEPS_PER_REPORT; step++)
            if (citizens[i].deliveries[step] > o.max_id)
                o.max_id = citizens[i].deliveries[step];
    o.states = calloc((size_t)o.max_id + 1, sizeof(delivery_state));
    assert_non_null(o.states);
    if (!testkit_wait_until(deliveries_final, &o, CONVERGE_MS))
        fail_msg("%zu webhooks still pending at LINE", o.pending);
    size_t accepted = 0, redelivered = 0;
    for (size_t i = 0; i < CITIZENS; i++) {
        citizens[i].accepted = true;
        for (int step = 0; step < STEPS_PER_REPORT; step++) {
            const delivery_state *delivery = &o.states[citizens[i].deliveries[step]];
            if (!delivery->delivered || delivery->last_status != 200)
                citizens[i].accepted = false;
            redelivered += delivery->attempts > 1;
        }
        accepted += citizens[i].accepted;
    }
    free(o.states);
    fprintf(stderr,
            "e2e faults: %zu of %d reports accepted by ess-ingress; %zu webhooks needed "
            "redelivery\n",
            accepted, CITIZENS, redelivered);
    /* The faults did hit webhooks in flight (ingress killed, NATS down): LINE redelivered. */
    assert_true(redelivered > 0);
    /* With redelivery on, LINE keeps trying far longer than any fault lasted. */
    assert_int_equal(accepted, CITIZENS);

    /* (a) In the database exactly once, with the case number the reporter was given. */
    char *hashes = accepted_array(0);
    const char *hash_param[] = {hashes};
    wait_count(s, "reports recorded",
               "SELECT count(DISTINCT reporter_key_hash) FROM incidents WHERE reporter_key_hash "
               "= ANY (SELECT decode(h, 'hex') FROM unnest($1::text[]) h)",
               1, hash_param, (long long)accepted);
    assert_int_equal(e2e_sql(s,
                             "SELECT count(*) FROM incidents WHERE reporter_key_hash = ANY "
                             "(SELECT decode(h, 'hex') FROM unnest($1::text[]) h)",
                             1, hash_param),
                     (long long)accepted);
    assert_int_equal(e2e_sql(s, "SELECT count(*) FROM incidents", 0, NULL), (long long)accepted);
    for (size_t i = 0; i < CITIZENS; i++) {
        if (!citizens[i].accepted)
            continue;
        const char *params[] = {citizens[i].hash, provinces[citizens[i].province].code,
                                category_codes[i % 5]};
        char *case_number = e2e_sql_text(
            s,
            "SELECT case_number FROM incidents WHERE reporter_key_hash = decode($1, 'hex') AND "
            "province_code = $2 AND category = $3 AND phone_encrypted IS NOT NULL",
            3, params);
        if (case_number == NULL)
            fail_msg("citizen %zu: the incident has not its province, category or phone", i);
        snprintf(citizens[i].case_number, E2E_CASE_MAX, "%s", case_number);
        free(case_number);
    }

    /* (b) On the right group's card exactly once, on no other group's. */
    card_tally tally = {s, 0};
    if (!testkit_wait_until(every_card_arrived, &tally, CONVERGE_MS))
        fail_msg("%zu reports have no card in their group", tally.missing);
    size_t unknown_cards = 0;
    tally_cards(s, card_counts, &unknown_cards);
    assert_int_equal(unknown_cards, 0);
    for (size_t i = 0; i < CITIZENS; i++)
        for (size_t p = 0; p < PROVINCES; p++) {
            size_t want = citizens[i].accepted && p == citizens[i].province ? 1 : 0;
            if (card_counts[i][p] != want)
                fail_msg("%s: %zu cards in the %s group (want %zu)", citizens[i].case_number,
                         card_counts[i][p], provinces[p].code, want);
        }

    /* The reporter heard the case number (a reply, or its push fallback when the reply
     * failed; a reply accepted but answered too late may show twice: notifier README). */
    size_t told_twice = 0;
    for (size_t i = 0; i < CITIZENS; i++) {
        char needle[64];
        snprintf(needle, sizeof(needle), "เลขที่เคส %s", citizens[i].case_number);
        size_t told = e2e_line_bot_count(s, citizens[i].user, needle);
        if (told == 0)
            fail_msg("citizen %zu never heard %s", i, citizens[i].case_number);
        told_twice += told > 1;
    }

    /* (c) In the audit chain: the report's four LINE events, its reported and routed events. */
    char *event_ids = accepted_array(1);
    const char *event_param[] = {event_ids};
    wait_count(s, "LINE events audited",
               "SELECT count(*) FROM audit_log WHERE msg_id = ANY ($1::text[])", 1, event_param,
               (long long)accepted * STEPS_PER_REPORT);
    wait_count(s, "reported and routed events audited",
               "SELECT count(*) FROM audit_log a JOIN incidents i ON a.msg_id IN ("
               "'ESS/reported.' || i.id, 'ESS/routed.' || i.id) WHERE i.reporter_key_hash = ANY "
               "(SELECT decode(h, 'hex') FROM unnest($1::text[]) h)",
               1, hash_param, (long long)accepted * 2);
    assert_int_equal(e2e_sql(s, "SELECT count(*) FROM audit_log WHERE msg_id = ANY ($1::text[])", 1,
                             event_param),
                     (long long)accepted * STEPS_PER_REPORT);
    const char *verify[] = {"audit", "verify", NULL};
    char *verified = NULL;
    int verify_code = e2e_essctl_status(s, verify, &verified);
    if (verify_code != 0)
        fail_msg("essctl audit verify exited %d: %s", verify_code,
                 verified != NULL ? verified : "");
    free(verified);
    /* Nothing was given up on: no dead letter. */
    assert_int_equal(e2e_sql(s, "SELECT count(*) FROM audit_log WHERE stream = 'DLQ'", 0, NULL), 0);
    free(hashes);
    free(event_ids);

    /* After crashes too, no phone number nor reporter's LINE id is anywhere in clear in the
     * data directory (PostgreSQL after crash recovery, the JetStream store after a SIGKILL,
     * the logs of every killed process). The emulator's files are LINE's side. */
    free(e2e_ess(s, "down", 180000));
    static char phones[CITIZENS][2][24];
    static const char *needles[3 * CITIZENS + 1];
    size_t needle_count = 0;
    for (size_t i = 0; i < CITIZENS; i++) {
        snprintf(phones[i][0], sizeof(phones[i][0]), "08%08zu", 10000000 + i);
        snprintf(phones[i][1], sizeof(phones[i][1]), "+668%08zu", 10000000 + i);
        needles[needle_count++] = phones[i][0];
        needles[needle_count++] = phones[i][1];
        needles[needle_count++] = citizens[i].user;
    }
    needles[needle_count] = NULL;
    /* A canary holding one phone of a prefix shared by a hundred needles and one LINE id
     * proves the search finds what is there. */
    char canary_path[sizeof(s->home) + 32];
    snprintf(canary_path, sizeof(canary_path), "%s/canary.txt", s->home);
    FILE *canary = fopen(canary_path, "w");
    assert_non_null(canary);
    fprintf(canary, "canary %s and %s\n", phones[150][0], citizens[77].user);
    fclose(canary);
    const char *skip[] = {"line-emulator", NULL};
    char found[4096];
    int64_t search_started = testkit_now_ms();
    size_t hits = e2e_home_files_holding(s, needles, skip, found, sizeof(found));
    char want_phone[128], want_user[128];
    snprintf(want_phone, sizeof(want_phone), "canary.txt: %s\n", phones[150][0]);
    snprintf(want_user, sizeof(want_user), "canary.txt: %s\n", citizens[77].user);
    if (hits != 2 || strstr(found, want_phone) == NULL || strstr(found, want_user) == NULL)
        fail_msg("expected only the canary's two values in clear under ESS_HOME, found %zu:\n%s",
                 hits, found);
    fprintf(stderr, "e2e faults: %zu phone numbers and ids searched for in the data directory "
                    "in %lld ms, none found but the canary\n",
            needle_count, (long long)(testkit_now_ms() - search_started));

    fprintf(stderr,
            "e2e faults: stack up %lld ms, faults %lld ms, convergence and checks %lld ms; "
            "%zu reporters told their case number twice\n",
            (long long)(stack_ready - case_started), (long long)(faults_done - faults_started),
            (long long)(testkit_now_ms() - faults_done), told_twice);
    e2e_stack_passed(s);
}

ESS_TEST_MAIN(NULL, e2e_stack_teardown)
