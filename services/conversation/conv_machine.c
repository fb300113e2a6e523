#include "conv_machine.h"

#include <string.h>

#include "conv_postback.h"

/* What an event means, before the state decides what to do with it. */
typedef enum intent_kind {
    INTENT_NONE = 0,
    INTENT_FOLLOW,
    INTENT_UNFOLLOW,
    INTENT_START,    /* keyword or menu button: start over (language in intent.language) */
    INTENT_LANGUAGE, /* language button */
    INTENT_CANCEL,   /* keyword or button (incident_id 0 = whatever is open) */
    INTENT_ADD_INFO, /* "add information" button */
    INTENT_NO_PHONE, /* "send without phone" button */
    INTENT_CATEGORY,
    INTENT_LOCATION,
    INTENT_PHONE,   /* a valid phone number */
    INTENT_TEXT,    /* any other text */
    INTENT_MEDIA,   /* sticker, image, video, audio, file */
    INTENT_UNKNOWN, /* a postback we do not know */
} intent_kind;

typedef struct intent {
    intent_kind kind;
    conv_lang language;
    conv_category category;
    int64_t incident_id;
    char phone[CONV_PHONE_MAX];
} intent;

typedef struct run {
    const conv_state *current;
    const conv_event *event;
    const conv_context *context;
    conv_output *out;
    bool touched; /* something changed: write the state */
} run;

const char *conv_state_kind_name(conv_state_kind kind)
{
    switch (kind) {
    case CONV_STATE_DRAFT:
        return "draft";
    case CONV_STATE_SUBMITTED:
        return "submitted";
    default:
        return "idle";
    }
}

conv_state_kind conv_state_kind_from_name(const char *name)
{
    if (name != NULL && strcmp(name, "draft") == 0)
        return CONV_STATE_DRAFT;
    if (name != NULL && strcmp(name, "submitted") == 0)
        return CONV_STATE_SUBMITTED;
    return CONV_STATE_IDLE;
}

const char *conv_lang_source_name(conv_lang_source source)
{
    switch (source) {
    case CONV_LANG_SOURCE_PROFILE:
        return "profile";
    case CONV_LANG_SOURCE_USER:
        return "user";
    default:
        return "default";
    }
}

conv_lang_source conv_lang_source_from_name(const char *name)
{
    if (name != NULL && strcmp(name, "profile") == 0)
        return CONV_LANG_SOURCE_PROFILE;
    if (name != NULL && strcmp(name, "user") == 0)
        return CONV_LANG_SOURCE_USER;
    return CONV_LANG_SOURCE_DEFAULT;
}

void conv_state_init(conv_state *ret_state)
{
    memset(ret_state, 0, sizeof(*ret_state));
    ret_state->kind = CONV_STATE_IDLE;
    ret_state->language = CONV_LANG_TH;
}

/* ---- classification ---------------------------------------------------------------------- */

/* Trimmed text compared with ASCII case folded. */
static bool text_is(const char *text, const char *word)
{
    size_t start = 0, end = strlen(text);
    while (start < end && (text[start] == ' ' || text[start] == '\n' || text[start] == '\t' ||
                           text[start] == '\r'))
        start++;
    while (end > start && (text[end - 1] == ' ' || text[end - 1] == '\n' || text[end - 1] == '\t' ||
                           text[end - 1] == '\r'))
        end--;
    size_t word_len = strlen(word);
    if (end - start != word_len)
        return false;
    for (size_t i = 0; i < word_len; i++) {
        char c = text[start + i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != word[i])
            return false;
    }
    return true;
}

conv_keyword conv_machine_keyword(const char *text)
{
    if (text == NULL)
        return CONV_KEYWORD_NONE;
    if (text_is(text, "แจ้งเหตุ") || text_is(text, "เมนู"))
        return CONV_KEYWORD_START_TH;
    if (text_is(text, "help") || text_is(text, "report") || text_is(text, "menu"))
        return CONV_KEYWORD_START_EN;
    if (text_is(text, "ยกเลิก") || text_is(text, "cancel"))
        return CONV_KEYWORD_CANCEL;
    return CONV_KEYWORD_NONE;
}

static int64_t parse_incident_id(const char *text)
{
    if (text == NULL)
        return 0;
    int64_t value = 0;
    for (const char *c = text; *c != '\0'; c++) {
        if (*c < '0' || *c > '9' || value > (INT64_MAX - 9) / 10)
            return -1;
        value = value * 10 + (*c - '0');
    }
    return value;
}

static void classify_postback(const conv_event *event, const conv_state *current, intent *ret)
{
    conv_postback postback;
    if (conv_postback_parse(event->postback_data, strlen(event->postback_data), &postback) !=
        ST_OK) {
        ret->kind = INTENT_UNKNOWN;
        return;
    }
    const char *action = conv_postback_get(&postback, "a");
    if (strcmp(action, "cat") == 0) {
        ret->category = conv_category_from_code(conv_postback_get(&postback, "c"));
        ret->kind = ret->category != CONV_CAT_NONE ? INTENT_CATEGORY : INTENT_UNKNOWN;
    } else if (strcmp(action, "lang") == 0) {
        const char *code = conv_postback_get(&postback, "l");
        ret->kind = code != NULL && (strcmp(code, "th") == 0 || strcmp(code, "en") == 0)
                        ? INTENT_LANGUAGE
                        : INTENT_UNKNOWN;
        ret->language = conv_lang_from_code(code);
    } else if (strcmp(action, "cancel") == 0 || strcmp(action, "info") == 0) {
        ret->incident_id = parse_incident_id(conv_postback_get(&postback, "i"));
        ret->kind = ret->incident_id < 0            ? INTENT_UNKNOWN
                    : strcmp(action, "cancel") == 0 ? INTENT_CANCEL
                                                    : INTENT_ADD_INFO;
    } else if (strcmp(action, "nophone") == 0) {
        ret->kind = INTENT_NO_PHONE;
    } else if (strcmp(action, "menu") == 0) {
        ret->kind = INTENT_START;
        ret->language = current->language;
    } else {
        ret->kind = INTENT_UNKNOWN;
    }
}

static void classify(const conv_event *event, const conv_state *current, intent *ret)
{
    memset(ret, 0, sizeof(*ret));
    ret->language = current->language;
    switch (event->kind) {
    case CONV_EV_FOLLOW:
        ret->kind = INTENT_FOLLOW;
        break;
    case CONV_EV_UNFOLLOW:
        ret->kind = INTENT_UNFOLLOW;
        break;
    case CONV_EV_LOCATION:
        ret->kind = event->location.present ? INTENT_LOCATION : INTENT_UNKNOWN;
        break;
    case CONV_EV_STICKER:
    case CONV_EV_MEDIA:
        ret->kind = INTENT_MEDIA;
        break;
    case CONV_EV_POSTBACK:
        classify_postback(event, current, ret);
        break;
    case CONV_EV_TEXT:
        switch (conv_machine_keyword(event->text)) {
        case CONV_KEYWORD_START_TH:
            ret->kind = INTENT_START;
            ret->language = CONV_LANG_TH;
            return;
        case CONV_KEYWORD_START_EN:
            ret->kind = INTENT_START;
            ret->language = CONV_LANG_EN;
            return;
        case CONV_KEYWORD_CANCEL:
            ret->kind = INTENT_CANCEL;
            return;
        default:
            break;
        }
        ret->category = conv_category_from_label(event->text);
        if (ret->category != CONV_CAT_NONE) {
            ret->kind = INTENT_CATEGORY;
        } else if (conv_phone_parse(event->text, strlen(event->text), ret->phone) == ST_OK) {
            ret->kind = INTENT_PHONE;
        } else {
            ret->kind = INTENT_TEXT;
        }
        break;
    default:
        ret->kind = INTENT_NONE;
        break;
    }
}

/* ---- state changes ---------------------------------------------------------------------- */

static void respond(run *r, conv_msg msg)
{
    if (r->out->response_count < CONV_RESPONSE_MAX)
        r->out->response[r->out->response_count++] = msg;
}

static void act(run *r, conv_action_kind kind, int64_t incident_id)
{
    if (r->out->action_count < CONV_ACTIONS_MAX) {
        r->out->actions[r->out->action_count].kind = kind;
        r->out->actions[r->out->action_count].incident_id = incident_id;
        r->out->action_count++;
    }
    r->touched = true;
}

static void clear_slots(conv_state *state)
{
    state->category = CONV_CAT_NONE;
    memset(&state->location, 0, sizeof(state->location));
    state->phone[0] = '\0';
    state->phone_failures = 0;
    state->phone_declined = false;
    state->draft_touched_ts = 0;
    state->incident_id = 0;
    state->case_number[0] = '\0';
    state->submitted_ts = 0;
}

static void become(run *r, conv_state_kind kind)
{
    clear_slots(&r->out->next);
    r->out->next.kind = kind;
    r->touched = true;
}

static bool draft_complete(const conv_state *state)
{
    return state->category != CONV_CAT_NONE && state->location.present &&
           (state->phone[0] != '\0' || state->phone_declined);
}

/* The prompt for the first slot still missing. */
static void prompt_missing(run *r)
{
    const conv_state *next = &r->out->next;
    if (next->category == CONV_CAT_NONE)
        respond(r, CONV_MSG_ASK_CATEGORY);
    else if (!next->location.present)
        respond(r, CONV_MSG_ASK_LOCATION);
    else if (next->phone_failures >= CONV_PHONE_ATTEMPTS)
        respond(r, CONV_MSG_OFFER_NO_PHONE);
    else
        respond(r, CONV_MSG_ASK_PHONE);
}

/* After a slot was filled: submit when complete (within the hourly limit), else ask on. */
static void after_slot(run *r)
{
    conv_state *next = &r->out->next;
    r->touched = true;
    if (!draft_complete(next)) {
        prompt_missing(r);
        return;
    }
    if (r->context->reports_last_hour >= r->context->reports_per_hour) {
        become(r, CONV_STATE_IDLE);
        respond(r, CONV_MSG_RATE_LIMITED);
        return;
    }
    act(r, CONV_ACT_SUBMIT, 0);
    next->kind = CONV_STATE_SUBMITTED;
    next->submitted_ts = r->event->timestamp_ms;
    respond(r, CONV_MSG_SUBMITTED);
}

/* Puts a slot value into the draft; only_if_empty for late events. True when it did. */
static bool fill_slot(run *r, const intent *what, bool only_if_empty)
{
    conv_state *next = &r->out->next;
    switch (what->kind) {
    case INTENT_CATEGORY:
        if (only_if_empty && next->category != CONV_CAT_NONE)
            return false;
        next->category = what->category;
        return true;
    case INTENT_LOCATION:
        if (only_if_empty && next->location.present)
            return false;
        next->location = r->event->location;
        return true;
    case INTENT_PHONE:
        if (only_if_empty && (next->phone[0] != '\0' || next->phone_declined))
            return false;
        memcpy(next->phone, what->phone, sizeof(next->phone));
        next->phone_failures = 0;
        next->phone_declined = false;
        return true;
    default:
        return false;
    }
}

static bool is_info(intent_kind kind)
{
    return kind == INTENT_TEXT || kind == INTENT_MEDIA || kind == INTENT_LOCATION ||
           kind == INTENT_PHONE;
}

static void add_info(run *r)
{
    act(r, CONV_ACT_APPEND_INFO, r->out->next.incident_id);
    respond(r, CONV_MSG_INFO_ADDED);
}

static void start_over(run *r, bool welcome)
{
    become(r, CONV_STATE_DRAFT);
    if (welcome)
        respond(r, CONV_MSG_WELCOME);
}

static void apply_in_order(run *r, const intent *what)
{
    conv_state *next = &r->out->next;
    const conv_event *event = r->event;

    /* A draft untouched for ESS_DRAFT_TTL is gone, even if the sweep has not said so yet. */
    if (next->kind == CONV_STATE_DRAFT &&
        next->draft_touched_ts + r->context->draft_ttl_ms <= event->timestamp_ms) {
        become(r, CONV_STATE_IDLE);
        respond(r, CONV_MSG_EXPIRED);
    }

    switch (what->kind) {
    case INTENT_FOLLOW:
        if (next->kind == CONV_STATE_SUBMITTED) {
            respond(r, CONV_MSG_CASE_OPEN);
        } else {
            start_over(r, true);
            respond(r, CONV_MSG_ASK_CATEGORY);
        }
        break;
    case INTENT_UNFOLLOW:
        if (next->kind == CONV_STATE_DRAFT)
            become(r, CONV_STATE_IDLE);
        else if (next->kind == CONV_STATE_SUBMITTED)
            act(r, CONV_ACT_REPORTER_UNFOLLOWED, next->incident_id);
        break;
    case INTENT_START:
        next->language = what->language;
        next->language_source = CONV_LANG_SOURCE_USER;
        start_over(r, true);
        respond(r, CONV_MSG_ASK_CATEGORY);
        break;
    case INTENT_LANGUAGE:
        next->language = what->language;
        next->language_source = CONV_LANG_SOURCE_USER;
        r->touched = true;
        if (next->kind == CONV_STATE_SUBMITTED) {
            respond(r, CONV_MSG_CASE_OPEN);
        } else if (next->kind == CONV_STATE_IDLE) {
            start_over(r, true);
            respond(r, CONV_MSG_ASK_CATEGORY);
        } else {
            prompt_missing(r);
        }
        break;
    case INTENT_CANCEL:
        if (next->kind == CONV_STATE_SUBMITTED &&
            (what->incident_id == 0 || what->incident_id == next->incident_id)) {
            act(r, CONV_ACT_CANCEL_INCIDENT, next->incident_id);
            /* The answer names the cancelled case, which the next state no longer holds. */
            r->out->about_incident_id = next->incident_id;
            memcpy(r->out->about_case_number, next->case_number, sizeof(r->out->about_case_number));
            become(r, CONV_STATE_IDLE);
            respond(r, CONV_MSG_CANCELLED);
        } else if (next->kind == CONV_STATE_SUBMITTED) {
            respond(r, CONV_MSG_CASE_OPEN); /* a button of an older case */
        } else if (next->kind == CONV_STATE_DRAFT) {
            become(r, CONV_STATE_IDLE);
            respond(r, CONV_MSG_DRAFT_CANCELLED);
        } else {
            respond(r, CONV_MSG_NOTHING_TO_CANCEL);
        }
        break;
    case INTENT_ADD_INFO:
        if (next->kind == CONV_STATE_SUBMITTED) {
            respond(r, CONV_MSG_ADD_INFO_HINT);
        } else if (next->kind == CONV_STATE_DRAFT) {
            prompt_missing(r);
        } else {
            start_over(r, true);
            respond(r, CONV_MSG_ASK_CATEGORY);
        }
        break;
    case INTENT_NO_PHONE:
        if (next->kind == CONV_STATE_DRAFT && next->phone[0] == '\0') {
            next->phone_declined = true;
            after_slot(r);
        } else if (next->kind == CONV_STATE_SUBMITTED) {
            respond(r, CONV_MSG_CASE_OPEN);
        } else if (next->kind == CONV_STATE_DRAFT) {
            prompt_missing(r);
        } else {
            start_over(r, true);
            respond(r, CONV_MSG_ASK_CATEGORY);
        }
        break;
    case INTENT_CATEGORY:
    case INTENT_LOCATION:
    case INTENT_PHONE:
        if (next->kind == CONV_STATE_SUBMITTED) {
            if (what->kind == INTENT_CATEGORY)
                respond(r, CONV_MSG_CASE_OPEN);
            else
                add_info(r);
            break;
        }
        if (next->kind == CONV_STATE_IDLE)
            /* Someone who starts with a button of ours needs no welcome; anyone else does. */
            start_over(r, event->kind != CONV_EV_POSTBACK);
        fill_slot(r, what, false);
        after_slot(r);
        break;
    case INTENT_TEXT:
    case INTENT_MEDIA:
    case INTENT_UNKNOWN:
        if (next->kind == CONV_STATE_SUBMITTED) {
            if (what->kind == INTENT_UNKNOWN)
                respond(r, CONV_MSG_CASE_OPEN);
            else
                add_info(r);
        } else if (next->kind == CONV_STATE_IDLE) {
            start_over(r, true);
            respond(r, CONV_MSG_ASK_CATEGORY);
        } else if (what->kind == INTENT_TEXT && next->phone[0] == '\0' &&
                   ((next->category != CONV_CAT_NONE && next->location.present) ||
                    conv_phone_looks_attempted(event->text, strlen(event->text), 3))) {
            /* Meant as the phone number, but not one. */
            next->phone_failures++;
            r->touched = true;
            respond(r, next->phone_failures >= CONV_PHONE_ATTEMPTS ? CONV_MSG_OFFER_NO_PHONE
                                                                   : CONV_MSG_BAD_PHONE);
        } else {
            respond(r, CONV_MSG_HINT);
            prompt_missing(r);
        }
        break;
    default:
        break;
    }
    if (next->kind == CONV_STATE_DRAFT) {
        next->draft_touched_ts = event->timestamp_ms;
        r->touched = true;
    }
}

static void apply_late(run *r, const intent *what)
{
    conv_state *next = &r->out->next;
    const conv_event *event = r->event;
    if (next->kind == CONV_STATE_DRAFT) {
        if (fill_slot(r, what, true))
            after_slot(r);
    } else if (next->kind == CONV_STATE_SUBMITTED && is_info(what->kind) &&
               event->timestamp_ms >= next->submitted_ts) {
        add_info(r);
    }
}

static void apply_expire(run *r)
{
    const conv_state *current = r->current;
    if (current->kind == CONV_STATE_DRAFT &&
        current->draft_touched_ts + r->context->draft_ttl_ms <= r->context->now_ms) {
        become(r, CONV_STATE_IDLE);
        respond(r, CONV_MSG_EXPIRED);
        r->out->delivery = CONV_DELIVER_PUSH;
    }
}

static bool starts_with_en(const char *language)
{
    return (language[0] == 'e' || language[0] == 'E') && (language[1] == 'n' || language[1] == 'N');
}

static void apply_profile(run *r)
{
    const conv_event *event = r->event;
    conv_state *next = &r->out->next;
    if (!event->profile_found || event->profile_language[0] == '\0' ||
        next->language_source == CONV_LANG_SOURCE_USER)
        return;
    conv_lang wanted = starts_with_en(event->profile_language) ? CONV_LANG_EN : CONV_LANG_TH;
    if (wanted == next->language && next->language_source == CONV_LANG_SOURCE_PROFILE)
        return;
    bool switched = wanted != next->language;
    next->language = wanted;
    next->language_source = CONV_LANG_SOURCE_PROFILE;
    r->touched = true;
    /* The opening prompt went out in Thai a moment ago: say it again in the user's language
     * while nothing else happened (the profile event carries the asking event's time). */
    if (switched && wanted == CONV_LANG_EN && next->kind == CONV_STATE_DRAFT &&
        r->current->last_event_ts == event->timestamp_ms && next->category == CONV_CAT_NONE &&
        !next->location.present && next->phone[0] == '\0' && next->phone_failures == 0) {
        respond(r, CONV_MSG_WELCOME);
        respond(r, CONV_MSG_ASK_CATEGORY);
        r->out->delivery = CONV_DELIVER_PUSH;
    }
}

void conv_machine_apply(const conv_state *current, const conv_event *event,
                        const conv_context *context, conv_output *ret_output)
{
    memset(ret_output, 0, sizeof(*ret_output));
    ret_output->next = *current;
    run r = {.current = current, .event = event, .context = context, .out = ret_output};
    if (event->kind == CONV_EV_EXPIRE) {
        apply_expire(&r);
    } else if (event->kind == CONV_EV_PROFILE) {
        if (!event->standby)
            apply_profile(&r);
    } else if (!event->standby && event->kind != CONV_EV_IGNORED) {
        intent what;
        classify(event, current, &what);
        ret_output->late =
            current->last_event_ts > 0 && event->timestamp_ms < current->last_event_ts;
        if (ret_output->late) {
            apply_late(&r, &what);
        } else {
            apply_in_order(&r, &what);
            ret_output->next.last_event_ts = event->timestamp_ms;
            r.touched = true;
        }
    }
    ret_output->changed = r.touched;
}

void conv_output_params(const conv_output *output, conv_msg_params *ret_params)
{
    if (output->about_incident_id > 0) {
        ret_params->incident_id = output->about_incident_id;
        ret_params->case_number = output->about_case_number;
    } else {
        ret_params->incident_id = output->next.incident_id;
        ret_params->case_number = output->next.case_number;
    }
}
