#include "emu_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_map.h"

/* A FIFO of keyed records with one lifetime each: since every record of a kind lives equally
 * long, insertion order is expiry order and purging only ever looks at the head. */
typedef struct timed_record {
    struct timed_record *next;
    int64_t expires_ms;
    bool used;                      /* reply tokens */
    char chat_id[EMU_CHAT_ID_SIZE]; /* reply tokens */
    emu_retry_entry retry;          /* retry keys */
    char key[EMU_UUID_LEN + 1];
} timed_record;

typedef struct timed_queue {
    emu_map *index;
    timed_record *head, *tail;
    size_t count;
} timed_queue;

typedef struct entry_ring {
    emu_entry *entries;
    size_t capacity, start, count;
} entry_ring;

typedef struct record_ring {
    emu_record *records;
    size_t capacity, start, count;
} record_ring;

struct emu_state {
    emu_state_limits limits;
    emu_map *users_by_id;
    emu_user **users;
    size_t user_count, user_capacity;
    emu_map *groups_by_id;
    emu_group **groups;
    size_t group_count, group_capacity;
    timed_queue reply_tokens;
    timed_queue retry_keys;
    record_ring records;
    uint64_t record_seq;
    emu_map *conversations; /* chat id -> entry_ring */
    uint64_t entry_seq;
};

static void copy_text(char *out, size_t out_size, const char *text)
{
    snprintf(out, out_size, "%s", text != NULL ? text : "");
}

static bool fits(const char *text, size_t max)
{
    return text == NULL || strlen(text) <= max;
}

/* ---- timed queues ---- */

static st_code queue_init(timed_queue *queue)
{
    memset(queue, 0, sizeof(*queue));
    return emu_map_create(&queue->index);
}

static void record_free(timed_record *record)
{
    if (record == NULL)
        return;
    free(record->retry.sent_messages_json);
    free(record);
}

static void queue_pop(timed_queue *queue)
{
    timed_record *head = queue->head;
    if (head == NULL)
        return;
    if (emu_map_get(queue->index, head->key) == head)
        emu_map_remove(queue->index, head->key);
    queue->head = head->next;
    if (queue->head == NULL)
        queue->tail = NULL;
    queue->count--;
    record_free(head);
}

static void queue_purge(timed_queue *queue, int64_t older_than_ms, size_t keep_max)
{
    while (queue->head != NULL &&
           (queue->head->expires_ms <= older_than_ms || queue->count > keep_max))
        queue_pop(queue);
}

static void queue_clear(timed_queue *queue)
{
    while (queue->head != NULL)
        queue_pop(queue);
}

static void queue_done(timed_queue *queue)
{
    queue_clear(queue);
    emu_map_destroy(queue->index);
    queue->index = NULL;
}

static st_code queue_push(timed_queue *queue, timed_record *record)
{
    void *previous = NULL;
    st_code code = emu_map_put(queue->index, record->key, record, &previous);
    if (code != ST_OK)
        return code;
    /* A replaced record stays queued (it expires in turn) but is no longer indexed. */
    record->next = NULL;
    if (queue->tail != NULL)
        queue->tail->next = record;
    else
        queue->head = record;
    queue->tail = record;
    queue->count++;
    return ST_OK;
}

/* ---- rings ---- */

static void entry_ring_clear(entry_ring *ring)
{
    for (size_t i = 0; i < ring->count; i++)
        free(ring->entries[(ring->start + i) % ring->capacity].json);
    ring->start = 0;
    ring->count = 0;
}

static void record_ring_clear(record_ring *ring)
{
    for (size_t i = 0; i < ring->count; i++)
        free(ring->records[(ring->start + i) % ring->capacity].message_json);
    ring->start = 0;
    ring->count = 0;
}

static void empty_conversation(const char *key, void *value, void *closure)
{
    (void)key;
    (void)closure;
    entry_ring_clear(value);
}

static void free_conversation(const char *key, void *value, void *closure)
{
    (void)key;
    (void)closure;
    entry_ring *ring = value;
    entry_ring_clear(ring);
    free(ring->entries);
    free(ring);
}

/* ---- life cycle ---- */

static void free_people(emu_state *state)
{
    for (size_t i = 0; i < state->user_count; i++)
        free(state->users[i]);
    for (size_t i = 0; i < state->group_count; i++) {
        free(state->groups[i]->members);
        free(state->groups[i]);
    }
    state->user_count = 0;
    state->group_count = 0;
}

void emu_state_destroy(emu_state *state)
{
    if (state == NULL)
        return;
    free_people(state);
    free(state->users);
    free(state->groups);
    emu_map_destroy(state->users_by_id);
    emu_map_destroy(state->groups_by_id);
    if (state->reply_tokens.index != NULL)
        queue_done(&state->reply_tokens);
    if (state->retry_keys.index != NULL)
        queue_done(&state->retry_keys);
    record_ring_clear(&state->records);
    free(state->records.records);
    if (state->conversations != NULL) {
        emu_map_each(state->conversations, free_conversation, NULL);
        emu_map_destroy(state->conversations);
    }
    free(state);
}

st_code emu_state_create(const emu_state_limits *limits, emu_state **ret_state)
{
    if (limits->record_max < 1 || limits->conversation_max < 1 || limits->reply_token_ttl_ms < 1 ||
        limits->retry_key_ttl_ms < 1)
        return ST_INVALID;
    st_code code = ST_NOMEM;
    emu_state *state = calloc(1, sizeof(*state));
    if (state == NULL)
        goto done;
    state->limits = *limits;
    state->records.capacity = limits->record_max;
    state->records.records = calloc(limits->record_max, sizeof(emu_record));
    if (state->records.records == NULL)
        goto done;
    if ((code = emu_map_create(&state->users_by_id)) != ST_OK ||
        (code = emu_map_create(&state->groups_by_id)) != ST_OK ||
        (code = emu_map_create(&state->conversations)) != ST_OK ||
        (code = queue_init(&state->reply_tokens)) != ST_OK ||
        (code = queue_init(&state->retry_keys)) != ST_OK)
        goto done;
    *ret_state = state;
    state = NULL;
    code = ST_OK;
done:
    emu_state_destroy(state);
    return code;
}

void emu_state_clear(emu_state *state, bool keep_people)
{
    if (!keep_people) {
        for (size_t i = 0; i < state->user_count; i++)
            emu_map_remove(state->users_by_id, state->users[i]->user_id);
        for (size_t i = 0; i < state->group_count; i++)
            emu_map_remove(state->groups_by_id, state->groups[i]->group_id);
        free_people(state);
    } else {
        for (size_t i = 0; i < state->user_count; i++) {
            state->users[i]->following = false;
            state->users[i]->ever_followed = false;
        }
    }
    queue_clear(&state->reply_tokens);
    queue_clear(&state->retry_keys);
    record_ring_clear(&state->records);
    /* Conversations are emptied in place (rings stay allocated), so clearing cannot fail. */
    emu_map_each(state->conversations, empty_conversation, NULL);
}

/* ---- users and groups ---- */

static st_code grow_array(void ***array, size_t *capacity, size_t needed)
{
    if (needed <= *capacity)
        return ST_OK;
    size_t new_capacity = *capacity == 0 ? 64 : *capacity * 2;
    void **grown = realloc(*array, new_capacity * sizeof(void *));
    if (grown == NULL)
        return ST_NOMEM;
    *array = grown;
    *capacity = new_capacity;
    return ST_OK;
}

st_code emu_state_add_user(emu_state *state, const char *user_id, const char *display_name,
                           const char *language, const char *picture_url,
                           const char *status_message, emu_user **ret_user)
{
    if (state->users_by_id == NULL)
        return ST_NOMEM;
    if (display_name == NULL || display_name[0] == '\0' || !fits(display_name, EMU_NAME_MAX) ||
        !fits(language, EMU_LANGUAGE_MAX) || !fits(picture_url, EMU_URL_FIELD_MAX) ||
        !fits(status_message, EMU_URL_FIELD_MAX))
        return ST_INVALID;
    if (user_id != NULL && !emu_line_id_valid(user_id, 'U'))
        return ST_INVALID;
    if (state->user_count >= EMU_USERS_MAX)
        return ST_LIMIT;
    if (user_id != NULL && emu_map_get(state->users_by_id, user_id) != NULL)
        return ST_CONFLICT;
    st_code code =
        grow_array((void ***)&state->users, &state->user_capacity, state->user_count + 1);
    if (code != ST_OK)
        return code;
    emu_user *user = calloc(1, sizeof(*user));
    if (user == NULL)
        return ST_NOMEM;
    if (user_id != NULL) {
        copy_text(user->user_id, sizeof(user->user_id), user_id);
    } else {
        do {
            code = emu_line_id_new('U', user->user_id);
        } while (code == ST_OK && emu_map_get(state->users_by_id, user->user_id) != NULL);
        if (code != ST_OK) {
            free(user);
            return code;
        }
    }
    copy_text(user->display_name, sizeof(user->display_name), display_name);
    copy_text(user->language, sizeof(user->language), language != NULL ? language : "th");
    copy_text(user->picture_url, sizeof(user->picture_url), picture_url);
    copy_text(user->status_message, sizeof(user->status_message), status_message);
    code = emu_map_put(state->users_by_id, user->user_id, user, NULL);
    if (code != ST_OK) {
        free(user);
        return code;
    }
    state->users[state->user_count++] = user;
    *ret_user = user;
    return ST_OK;
}

emu_user *emu_state_user(const emu_state *state, const char *user_id)
{
    return state->users_by_id != NULL && user_id != NULL ? emu_map_get(state->users_by_id, user_id)
                                                         : NULL;
}

emu_user *emu_state_user_by_name(const emu_state *state, const char *display_name)
{
    for (size_t i = 0; i < state->user_count; i++)
        if (strcmp(state->users[i]->display_name, display_name) == 0)
            return state->users[i];
    return NULL;
}

size_t emu_state_user_count(const emu_state *state)
{
    return state->user_count;
}

emu_user *emu_state_user_at(const emu_state *state, size_t index)
{
    return index < state->user_count ? state->users[index] : NULL;
}

st_code emu_state_add_group(emu_state *state, const char *group_id, const char *group_name,
                            const char *picture_url, emu_group **ret_group)
{
    if (state->groups_by_id == NULL)
        return ST_NOMEM;
    if (group_name == NULL || group_name[0] == '\0' || !fits(group_name, EMU_NAME_MAX) ||
        !fits(picture_url, EMU_URL_FIELD_MAX))
        return ST_INVALID;
    if (group_id != NULL && !emu_line_id_valid(group_id, 'C'))
        return ST_INVALID;
    if (state->group_count >= EMU_GROUPS_MAX)
        return ST_LIMIT;
    if (group_id != NULL && emu_map_get(state->groups_by_id, group_id) != NULL)
        return ST_CONFLICT;
    st_code code =
        grow_array((void ***)&state->groups, &state->group_capacity, state->group_count + 1);
    if (code != ST_OK)
        return code;
    emu_group *group = calloc(1, sizeof(*group));
    if (group == NULL)
        return ST_NOMEM;
    if (group_id != NULL) {
        copy_text(group->group_id, sizeof(group->group_id), group_id);
    } else {
        do {
            code = emu_line_id_new('C', group->group_id);
        } while (code == ST_OK && emu_map_get(state->groups_by_id, group->group_id) != NULL);
        if (code != ST_OK) {
            free(group);
            return code;
        }
    }
    copy_text(group->group_name, sizeof(group->group_name), group_name);
    copy_text(group->picture_url, sizeof(group->picture_url), picture_url);
    code = emu_map_put(state->groups_by_id, group->group_id, group, NULL);
    if (code != ST_OK) {
        free(group);
        return code;
    }
    state->groups[state->group_count++] = group;
    *ret_group = group;
    return ST_OK;
}

emu_group *emu_state_group(const emu_state *state, const char *group_id)
{
    return state->groups_by_id != NULL && group_id != NULL
               ? emu_map_get(state->groups_by_id, group_id)
               : NULL;
}

size_t emu_state_group_count(const emu_state *state)
{
    return state->group_count;
}

emu_group *emu_state_group_at(const emu_state *state, size_t index)
{
    return index < state->group_count ? state->groups[index] : NULL;
}

bool emu_group_has_member(const emu_group *group, const char *user_id)
{
    for (size_t i = 0; i < group->member_count; i++)
        if (strcmp(group->members[i], user_id) == 0)
            return true;
    return false;
}

st_code emu_group_add_member(emu_group *group, const char *user_id)
{
    if (!emu_line_id_valid(user_id, 'U'))
        return ST_INVALID;
    if (emu_group_has_member(group, user_id))
        return ST_CONFLICT;
    if (group->member_count >= EMU_GROUP_MEMBERS_MAX)
        return ST_LIMIT;
    char(*grown)[EMU_CHAT_ID_SIZE] =
        realloc(group->members, (group->member_count + 1) * sizeof(*group->members));
    if (grown == NULL)
        return ST_NOMEM;
    group->members = grown;
    copy_text(group->members[group->member_count], EMU_CHAT_ID_SIZE, user_id);
    group->member_count++;
    return ST_OK;
}

st_code emu_group_remove_member(emu_group *group, const char *user_id)
{
    for (size_t i = 0; i < group->member_count; i++) {
        if (strcmp(group->members[i], user_id) == 0) {
            memmove(group->members[i], group->members[i + 1],
                    (group->member_count - i - 1) * sizeof(*group->members));
            group->member_count--;
            return ST_OK;
        }
    }
    return ST_NOT_FOUND;
}

/* ---- reply tokens ---- */

static void purge_tokens(emu_state *state, int64_t now_ms)
{
    /* Expired tokens are kept one more lifetime so that their status reads "expired". */
    queue_purge(&state->reply_tokens, now_ms - state->limits.reply_token_ttl_ms,
                EMU_REPLY_TOKENS_MAX);
}

st_code emu_state_issue_reply_token(emu_state *state, const char *chat_id, int64_t now_ms,
                                    char ret_token[EMU_REPLY_TOKEN_LEN + 1])
{
    purge_tokens(state, now_ms);
    timed_record *record = calloc(1, sizeof(*record));
    if (record == NULL)
        return ST_NOMEM;
    st_code code = emu_reply_token_new(record->key);
    if (code != ST_OK) {
        record_free(record);
        return code;
    }
    copy_text(record->chat_id, sizeof(record->chat_id), chat_id);
    record->expires_ms = now_ms + state->limits.reply_token_ttl_ms;
    code = queue_push(&state->reply_tokens, record);
    if (code != ST_OK) {
        record_free(record);
        return code;
    }
    purge_tokens(state, now_ms);
    memcpy(ret_token, record->key, EMU_REPLY_TOKEN_LEN + 1);
    return ST_OK;
}

emu_token_status emu_state_reply_token_status(emu_state *state, const char *token, int64_t now_ms,
                                              int64_t *ret_expires_ms)
{
    purge_tokens(state, now_ms);
    timed_record *record = emu_map_get(state->reply_tokens.index, token);
    if (record == NULL)
        return EMU_TOKEN_UNKNOWN;
    if (ret_expires_ms != NULL)
        *ret_expires_ms = record->expires_ms;
    if (record->used)
        return EMU_TOKEN_USED;
    if (now_ms >= record->expires_ms)
        return EMU_TOKEN_EXPIRED;
    return EMU_TOKEN_VALID;
}

st_code emu_state_use_reply_token(emu_state *state, const char *token, int64_t now_ms,
                                  char ret_chat_id[EMU_CHAT_ID_SIZE])
{
    if (emu_state_reply_token_status(state, token, now_ms, NULL) != EMU_TOKEN_VALID)
        return ST_NOT_FOUND;
    timed_record *record = emu_map_get(state->reply_tokens.index, token);
    record->used = true;
    memcpy(ret_chat_id, record->chat_id, EMU_CHAT_ID_SIZE);
    return ST_OK;
}

/* ---- retry keys ---- */

const emu_retry_entry *emu_state_retry_key(emu_state *state, const char *key, int64_t now_ms)
{
    queue_purge(&state->retry_keys, now_ms, EMU_RETRY_KEYS_MAX);
    timed_record *record = emu_map_get(state->retry_keys.index, key);
    return record != NULL ? &record->retry : NULL;
}

st_code emu_state_remember_retry_key(emu_state *state, const char *key, const char *request_id,
                                     const char *sent_messages_json, int64_t now_ms)
{
    if (strlen(key) > EMU_UUID_LEN)
        return ST_INVALID;
    timed_record *record = calloc(1, sizeof(*record));
    if (record == NULL)
        return ST_NOMEM;
    copy_text(record->key, sizeof(record->key), key);
    copy_text(record->retry.request_id, sizeof(record->retry.request_id), request_id);
    record->retry.sent_messages_json = strdup(sent_messages_json);
    record->retry.expires_ms = now_ms + state->limits.retry_key_ttl_ms;
    record->expires_ms = record->retry.expires_ms;
    st_code code = record->retry.sent_messages_json != NULL ? queue_push(&state->retry_keys, record)
                                                            : ST_NOMEM;
    if (code != ST_OK) {
        record_free(record);
        return code;
    }
    queue_purge(&state->retry_keys, now_ms, EMU_RETRY_KEYS_MAX);
    return ST_OK;
}

/* ---- recorded messages ---- */

st_code emu_state_record(emu_state *state, const emu_record *record, uint64_t *ret_seq)
{
    record_ring *ring = &state->records;
    char *json = strdup(record->message_json != NULL ? record->message_json : "null");
    if (json == NULL)
        return ST_NOMEM;
    if (ring->count == ring->capacity) {
        free(ring->records[ring->start].message_json);
        ring->start = (ring->start + 1) % ring->capacity;
        ring->count--;
    }
    emu_record *slot = &ring->records[(ring->start + ring->count) % ring->capacity];
    *slot = *record;
    slot->seq = ++state->record_seq;
    slot->message_json = json;
    ring->count++;
    if (ret_seq != NULL)
        *ret_seq = slot->seq;
    return ST_OK;
}

size_t emu_state_record_count(const emu_state *state)
{
    return state->records.count;
}

const emu_record *emu_state_record_at(const emu_state *state, size_t index)
{
    const record_ring *ring = &state->records;
    return index < ring->count ? &ring->records[(ring->start + index) % ring->capacity] : NULL;
}

/* ---- conversations ---- */

st_code emu_state_append(emu_state *state, const char *chat_id, emu_direction direction,
                         const char *via, const char *ref_id, const char *user_id, const char *json,
                         int64_t now_ms, uint64_t *ret_seq)
{
    if (state->conversations == NULL)
        return ST_NOMEM;
    entry_ring *ring = emu_map_get(state->conversations, chat_id);
    if (ring == NULL) {
        ring = calloc(1, sizeof(*ring));
        if (ring == NULL)
            return ST_NOMEM;
        ring->capacity = state->limits.conversation_max;
        ring->entries = calloc(ring->capacity, sizeof(emu_entry));
        if (ring->entries == NULL ||
            emu_map_put(state->conversations, chat_id, ring, NULL) != ST_OK) {
            free(ring->entries);
            free(ring);
            return ST_NOMEM;
        }
    }
    char *copy = strdup(json != NULL ? json : "null");
    if (copy == NULL)
        return ST_NOMEM;
    if (ring->count == ring->capacity) {
        free(ring->entries[ring->start].json);
        ring->start = (ring->start + 1) % ring->capacity;
        ring->count--;
    }
    emu_entry *entry = &ring->entries[(ring->start + ring->count) % ring->capacity];
    memset(entry, 0, sizeof(*entry));
    entry->seq = ++state->entry_seq;
    entry->time_ms = now_ms;
    entry->direction = direction;
    copy_text(entry->via, sizeof(entry->via), via);
    copy_text(entry->ref_id, sizeof(entry->ref_id), ref_id);
    copy_text(entry->user_id, sizeof(entry->user_id), user_id);
    entry->json = copy;
    ring->count++;
    if (ret_seq != NULL)
        *ret_seq = entry->seq;
    return ST_OK;
}

size_t emu_state_entry_count(const emu_state *state, const char *chat_id)
{
    const entry_ring *ring =
        state->conversations != NULL ? emu_map_get(state->conversations, chat_id) : NULL;
    return ring != NULL ? ring->count : 0;
}

const emu_entry *emu_state_entry_at(const emu_state *state, const char *chat_id, size_t index)
{
    const entry_ring *ring =
        state->conversations != NULL ? emu_map_get(state->conversations, chat_id) : NULL;
    if (ring == NULL || index >= ring->count)
        return NULL;
    return &ring->entries[(ring->start + index) % ring->capacity];
}

const emu_entry *emu_state_entry_by_seq(const emu_state *state, const char *chat_id, uint64_t seq)
{
    size_t count = emu_state_entry_count(state, chat_id);
    for (size_t i = 0; i < count; i++) {
        const emu_entry *entry = emu_state_entry_at(state, chat_id, i);
        if (entry->seq == seq)
            return entry;
    }
    return NULL;
}
