/* emu_state: what the emulated LINE platform knows.
 *
 * Users (profiles, whether they follow the bot), groups (name, members, whether the bot is
 * in), reply tokens (single use, expiring), retry keys (remembered for a time, 24 h like
 * LINE), every accepted outbound message, and per chat (a user's 1:1 chat or a group) the
 * conversation in both directions.
 *
 * Every collection is bounded: users and groups (EMU_USERS_MAX, EMU_GROUPS_MAX, ST_LIMIT
 * beyond), reply tokens and retry keys (the oldest are evicted), recorded messages and each
 * conversation (rings: the oldest entries are dropped). Times are passed in (now_ms) so that
 * expiry is testable without waiting.
 *
 * Not thread-safe: the HTTP event-loop thread owns the state. Pointers returned into the state
 * are borrowed and valid until the next call that modifies it. */
#ifndef EMU_STATE_H
#define EMU_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "emu_ids.h"
#include "status.h"

#define EMU_USERS_MAX 100000
#define EMU_GROUPS_MAX 10000
#define EMU_GROUP_MEMBERS_MAX 500
#define EMU_REPLY_TOKENS_MAX 200000
#define EMU_RETRY_KEYS_MAX 200000
#define EMU_NAME_MAX 100    /* display and group names, bytes */
#define EMU_LANGUAGE_MAX 16 /* BCP 47 tag */
#define EMU_URL_FIELD_MAX 512
#define EMU_CHAT_ID_SIZE (EMU_LINE_ID_LEN + 1)

typedef struct emu_user {
    char user_id[EMU_CHAT_ID_SIZE];
    char display_name[EMU_NAME_MAX + 1];
    char language[EMU_LANGUAGE_MAX + 1];
    char picture_url[EMU_URL_FIELD_MAX + 1];    /* "" = none */
    char status_message[EMU_URL_FIELD_MAX + 1]; /* "" = none */
    bool following;                             /* friend of the bot now */
    bool ever_followed;                         /* a later follow is an unblock */
} emu_user;

typedef struct emu_group {
    char group_id[EMU_CHAT_ID_SIZE];
    char group_name[EMU_NAME_MAX + 1];
    char picture_url[EMU_URL_FIELD_MAX + 1];
    bool bot_member;
    size_t member_count;
    char (*members)[EMU_CHAT_ID_SIZE]; /* member_count user ids, heap */
} emu_group;

typedef enum emu_direction { EMU_DIR_IN, EMU_DIR_OUT } emu_direction;

/* One line of a chat: an event the user (or LINE) sent to the bot, or a message the bot sent. */
typedef struct emu_entry {
    uint64_t seq; /* increasing over all chats */
    int64_t time_ms;
    emu_direction direction;
    char via[12];                   /* "webhook", "reply", "push" */
    char ref_id[EMU_UUID_LEN + 1];  /* webhookEventId (in) or x-line-request-id (out) */
    char user_id[EMU_CHAT_ID_SIZE]; /* the acting user for "in" ("" if none) */
    char *json;                     /* event (in) or message as sent (out); heap */
} emu_entry;

/* An accepted outbound message, as LINE records it for statistics and for us to check. */
typedef struct emu_record {
    uint64_t seq;
    int64_t time_ms;
    char endpoint[8]; /* "reply" | "push" */
    char to[EMU_CHAT_ID_SIZE];
    char request_id[EMU_UUID_LEN + 1];
    char retry_key[EMU_UUID_LEN + 1]; /* "" = none */
    char message_id[EMU_MESSAGE_ID_MAX];
    char *message_json; /* heap */
} emu_record;

typedef struct emu_retry_entry {
    char request_id[EMU_UUID_LEN + 1];
    char *sent_messages_json; /* the original answer's sentMessages array; heap */
    int64_t expires_ms;
} emu_retry_entry;

typedef enum emu_token_status {
    EMU_TOKEN_VALID,
    EMU_TOKEN_UNKNOWN,
    EMU_TOKEN_USED,
    EMU_TOKEN_EXPIRED,
} emu_token_status;

typedef struct emu_state_limits {
    int64_t reply_token_ttl_ms;
    int64_t retry_key_ttl_ms;
    size_t record_max;       /* recorded outbound messages kept */
    size_t conversation_max; /* entries kept per chat */
} emu_state_limits;

typedef struct emu_state emu_state;

st_code emu_state_create(const emu_state_limits *limits, emu_state **ret_state);
void emu_state_destroy(emu_state *state); /* accepts NULL */
/* Forgets everything; with keep_people, users and groups stay (conversations, records, tokens
 * and retry keys go). */
void emu_state_clear(emu_state *state, bool keep_people);

/* ---- users ---- */
/* user_id NULL = generate one. ST_CONFLICT if the id exists, ST_INVALID for a malformed id or
 * an over-long field, ST_LIMIT when full. */
st_code emu_state_add_user(emu_state *state, const char *user_id, const char *display_name,
                           const char *language, const char *picture_url,
                           const char *status_message, emu_user **ret_user);
emu_user *emu_state_user(const emu_state *state, const char *user_id);
/* First user with this display name (CLI convenience), or NULL. */
emu_user *emu_state_user_by_name(const emu_state *state, const char *display_name);
size_t emu_state_user_count(const emu_state *state);
emu_user *emu_state_user_at(const emu_state *state, size_t index); /* creation order */

/* ---- groups ---- */
st_code emu_state_add_group(emu_state *state, const char *group_id, const char *group_name,
                            const char *picture_url, emu_group **ret_group);
emu_group *emu_state_group(const emu_state *state, const char *group_id);
size_t emu_state_group_count(const emu_state *state);
emu_group *emu_state_group_at(const emu_state *state, size_t index);
bool emu_group_has_member(const emu_group *group, const char *user_id);
/* ST_CONFLICT if already a member, ST_LIMIT when full. */
st_code emu_group_add_member(emu_group *group, const char *user_id);
/* ST_NOT_FOUND if not a member. */
st_code emu_group_remove_member(emu_group *group, const char *user_id);

/* ---- reply tokens ---- */
/* Issues a token for replying into chat_id, valid until now_ms + reply_token_ttl_ms. */
st_code emu_state_issue_reply_token(emu_state *state, const char *chat_id, int64_t now_ms,
                                    char ret_token[EMU_REPLY_TOKEN_LEN + 1]);
/* Status of a token; *ret_expires_ms (may be NULL) gets its expiry when known. */
emu_token_status emu_state_reply_token_status(emu_state *state, const char *token, int64_t now_ms,
                                              int64_t *ret_expires_ms);
/* Uses a token once: ST_OK and the chat it replies into, or ST_NOT_FOUND (unknown, used or
 * expired: LINE answers all three alike). */
st_code emu_state_use_reply_token(emu_state *state, const char *token, int64_t now_ms,
                                  char ret_chat_id[EMU_CHAT_ID_SIZE]);

/* ---- retry keys ---- */
/* The remembered request for key, or NULL (never seen or expired). Borrowed. */
const emu_retry_entry *emu_state_retry_key(emu_state *state, const char *key, int64_t now_ms);
/* Remembers key (copies everything) until now_ms + retry_key_ttl_ms. */
st_code emu_state_remember_retry_key(emu_state *state, const char *key, const char *request_id,
                                     const char *sent_messages_json, int64_t now_ms);

/* ---- recorded outbound messages ---- */
/* Copies record (message_json included); seq is assigned and returned. */
st_code emu_state_record(emu_state *state, const emu_record *record, uint64_t *ret_seq);
size_t emu_state_record_count(const emu_state *state);
const emu_record *emu_state_record_at(const emu_state *state, size_t index); /* oldest first */

/* ---- conversations ---- */
/* Appends to chat_id's conversation (created on first use). json is copied. */
st_code emu_state_append(emu_state *state, const char *chat_id, emu_direction direction,
                         const char *via, const char *ref_id, const char *user_id, const char *json,
                         int64_t now_ms, uint64_t *ret_seq);
size_t emu_state_entry_count(const emu_state *state, const char *chat_id);
const emu_entry *emu_state_entry_at(const emu_state *state, const char *chat_id,
                                    size_t index); /* oldest first */
/* The entry with this seq in chat_id, or NULL. */
const emu_entry *emu_state_entry_by_seq(const emu_state *state, const char *chat_id, uint64_t seq);

#endif
