#include "conv_team.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "conv_postback.h"

#define BUBBLE_TEXT_MAX 500 /* UTF-16 units of the text of a small bubble (ours; LINE: 30 KB) */
#define ALT_TEXT_MAX 400
#define TEXT_MAX 5000
#define INFO_TEXT_UNITS 4000 /* the reporter's words forwarded, leaving room for the prefix */

/* ---- outcomes ------------------------------------------------------------------------------ */

typedef struct outcome_entry {
    const char *code;
    const char *label; /* <= 20 graphemes (template action label) */
} outcome_entry;

static const outcome_entry outcomes[CONV_OUTCOME_COUNT + 1] = {
    [CONV_OUTCOME_NONE] = {NULL, NULL},
    [CONV_OUTCOME_HELPED] = {"helped", "ช่วยเหลือแล้ว"},
    [CONV_OUTCOME_REFERRED] = {"referred", "ส่งต่อหน่วยงาน"},
    [CONV_OUTCOME_FALSE_ALARM] = {"false_alarm", "แจ้งเหตุไม่จริง"},
    [CONV_OUTCOME_NOT_FOUND] = {"not_found", "ไม่พบเหตุ"},
};

const char *conv_outcome_code(conv_outcome outcome)
{
    return outcome > CONV_OUTCOME_NONE && outcome <= CONV_OUTCOME_COUNT ? outcomes[outcome].code
                                                                        : NULL;
}

conv_outcome conv_outcome_from_code(const char *code)
{
    for (int i = 1; code != NULL && i <= CONV_OUTCOME_COUNT; i++)
        if (strcmp(outcomes[i].code, code) == 0)
            return (conv_outcome)i;
    return CONV_OUTCOME_NONE;
}

const char *conv_outcome_label(conv_outcome outcome)
{
    return outcome > CONV_OUTCOME_NONE && outcome <= CONV_OUTCOME_COUNT ? outcomes[outcome].label
                                                                        : "";
}

/* ---- intents ------------------------------------------------------------------------------- */

static const char *skip_spaces(const char *text)
{
    while (*text == ' ' || *text == '\t' || *text == '\n' || *text == '\r')
        text++;
    return text;
}

/* True when text starts with word (ASCII case folded) followed by a space or the end;
 * *ret_rest points after it. */
static bool starts_with_word(const char *text, const char *word, const char **ret_rest)
{
    size_t len = strlen(word);
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != word[i])
            return false;
    }
    char after = text[len];
    if (after != '\0' && after != ' ' && after != '\t' && after != '\n' && after != '\r')
        return false;
    *ret_rest = skip_spaces(text + len);
    return true;
}

static int64_t incident_of(const conv_postback *postback)
{
    const char *text = conv_postback_get(postback, "i");
    if (text == NULL || text[0] == '\0')
        return -1;
    int64_t value = 0;
    for (const char *c = text; *c != '\0'; c++) {
        if (*c < '0' || *c > '9' || value > (INT64_MAX - 9) / 10)
            return -1;
        value = value * 10 + (*c - '0');
    }
    return value > 0 ? value : -1;
}

static void classify_postback(const conv_event *event, conv_team_intent *ret)
{
    conv_postback postback;
    ret->action = CONV_TEAM_UNKNOWN;
    if (conv_postback_parse(event->postback_data, strlen(event->postback_data), &postback) != ST_OK)
        return;
    int64_t incident = incident_of(&postback);
    if (incident <= 0)
        return;
    const char *action = conv_postback_get(&postback, "a");
    static const struct {
        const char *name;
        conv_team_action action;
    } actions[] = {{"take", CONV_TEAM_TAKE},
                   {"scene", CONV_TEAM_SCENE},
                   {"close", CONV_TEAM_CLOSE},
                   {"outcome", CONV_TEAM_OUTCOME}};
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
        if (strcmp(action, actions[i].name) != 0)
            continue;
        if (actions[i].action == CONV_TEAM_OUTCOME) {
            ret->outcome = conv_outcome_from_code(conv_postback_get(&postback, "o"));
            if (ret->outcome == CONV_OUTCOME_NONE)
                return;
        }
        ret->action = actions[i].action;
        ret->incident_id = incident;
        return;
    }
}

void conv_team_classify(const conv_event *event, conv_team_intent *ret_intent)
{
    memset(ret_intent, 0, sizeof(*ret_intent));
    if (event->kind == CONV_EV_POSTBACK) {
        classify_postback(event, ret_intent);
        return;
    }
    if (event->kind != CONV_EV_TEXT)
        return;
    const char *rest = NULL;
    if (!starts_with_word(skip_spaces(event->text), "/ess", &rest))
        return;
    const char *code = NULL;
    if (starts_with_word(rest, "bind", &code)) {
        ret_intent->action = CONV_TEAM_BIND;
        /* The code up to the end of the line; the rest is ignored. */
        char typed[65];
        size_t len = strcspn(code, "\r\n");
        if (len < sizeof(typed)) {
            memcpy(typed, code, len);
            typed[len] = '\0';
            ret_intent->code_valid = conv_invite_normalise(typed, ret_intent->code);
        }
        return;
    }
    ret_intent->action = CONV_TEAM_HELP;
}

/* ---- texts --------------------------------------------------------------------------------- */

typedef enum team_buttons {
    BUTTONS_NONE = 0,
    BUTTONS_TAKEN,   /* on scene, close */
    BUTTONS_CLOSE,   /* close */
    BUTTONS_OUTCOME, /* the four outcomes */
    BUTTONS_TAKE,    /* take */
} team_buttons;

typedef struct team_entry {
    const char *name;
    const char *text; /* {case} {team} {actor} {time} {outcome} {text} {minutes} */
    team_buttons buttons;
} team_entry;

static const team_entry team_catalog[CONV_TEAM_MSG_COUNT] = {
    [CONV_TEAM_MSG_INTRO] = {"intro",
                             "สวัสดีครับ ระบบ ESS ส่งเหตุร้ายทางสังคมที่ประชาชนแจ้งทาง LINE ให้ทีม"
                             "สหวิชาชีพในพื้นที่\nเพื่อให้กลุ่มนี้รับเรื่อง เจ้าหน้าที่พิมพ์ "
                             "/ess bind ตามด้วยรหัสเชิญ (ขอรหัสจากผู้ดูแลระบบ)",
                             BUTTONS_NONE},
    [CONV_TEAM_MSG_REJOINED] = {"rejoined", "ESS กลับเข้ากลุ่มของ {team} แล้ว เรื่องในพื้นที่จะส่งมาที่นี่",
                                BUTTONS_NONE},
    [CONV_TEAM_MSG_HELP] = {"help",
                            "ESS: พิมพ์ /ess bind รหัสเชิญ เพื่อผูกกลุ่มนี้กับทีม\n"
                            "เมื่อมีเรื่องเข้ามา กด \"รับเรื่อง\" ในการ์ด แล้วกด "
                            "\"ถึงที่เกิดเหตุ\" และ \"ปิดเรื่อง\" ตามลำดับ",
                            BUTTONS_NONE},
    [CONV_TEAM_MSG_BOUND] = {"bound", "ผูกกลุ่มนี้กับ {team} แล้ว เรื่องในพื้นที่จะส่งมาที่กลุ่มนี้", BUTTONS_NONE},
    [CONV_TEAM_MSG_BIND_FAILED] = {"bind_failed",
                                   "รหัสไม่ถูกต้อง หมดอายุ หรือถูกใช้แล้ว ขอรหัสใหม่จากผู้ดูแลระบบ",
                                   BUTTONS_NONE},
    [CONV_TEAM_MSG_TAKEN_CONFIRM] = {"taken_confirm",
                                     "รับเรื่อง {case} แล้ว\nกด \"ถึงที่เกิดเหตุ\" เมื่อถึง "
                                     "และ \"ปิดเรื่อง\" เมื่อจบ",
                                     BUTTONS_TAKEN},
    [CONV_TEAM_MSG_ALREADY_TAKEN] = {"already_taken",
                                     "เรื่อง {case} มีผู้รับแล้ว: {actor} ({team}) เวลา {time} น.",
                                     BUTTONS_NONE},
    [CONV_TEAM_MSG_TAKEN_ELSEWHERE] = {"taken_elsewhere",
                                       "เรื่อง {case} มีผู้รับแล้ว: {team} ไม่ต้องดำเนินการ", BUTTONS_NONE},
    [CONV_TEAM_MSG_NOT_FOR_GROUP] = {"not_for_group", "เรื่อง {case} ไม่ได้ส่งถึงกลุ่มนี้", BUTTONS_NONE},
    [CONV_TEAM_MSG_HANDLED_BY] = {"handled_by", "เรื่อง {case} อยู่ในความดูแลของ {team}", BUTTONS_NONE},
    [CONV_TEAM_MSG_NOT_TAKEN_YET] = {"not_taken_yet", "เรื่อง {case} ยังไม่มีผู้รับ กด \"รับเรื่อง\" ก่อน",
                                     BUTTONS_TAKE},
    [CONV_TEAM_MSG_ON_SCENE_CONFIRM] = {"on_scene_confirm",
                                        "บันทึกถึงที่เกิดเหตุ {case} แล้ว\nกด \"ปิดเรื่อง\" เมื่อจบ",
                                        BUTTONS_CLOSE},
    [CONV_TEAM_MSG_ALREADY_ON_SCENE] = {"already_on_scene", "เรื่อง {case} บันทึกถึงที่เกิดเหตุไว้แล้ว",
                                        BUTTONS_CLOSE},
    [CONV_TEAM_MSG_OUTCOME_CHOICE] = {"outcome_choice", "ผลการดำเนินการเรื่อง {case}",
                                      BUTTONS_OUTCOME},
    [CONV_TEAM_MSG_CLOSED_CONFIRM] = {"closed_confirm", "ปิดเรื่อง {case} แล้ว ผล: {outcome}",
                                      BUTTONS_NONE},
    [CONV_TEAM_MSG_ALREADY_CLOSED] = {"already_closed", "เรื่อง {case} ปิดไปแล้ว", BUTTONS_NONE},
    [CONV_TEAM_MSG_CANCELLED] = {"cancelled", "ผู้แจ้งยกเลิกเรื่อง {case} แล้ว (แจ้งผิด) ไม่ต้องดำเนินการต่อ",
                                 BUTTONS_NONE},
    [CONV_TEAM_MSG_REMINDER] = {"reminder", "ยังไม่มีผู้รับเรื่อง {case} ({minutes} นาทีแล้ว) กรุณากดรับเรื่อง",
                                BUTTONS_TAKE},
    [CONV_TEAM_MSG_INFO_TEXT] = {"info_text", "ข้อมูลเพิ่มจากผู้แจ้ง เรื่อง {case}:\n{text}", BUTTONS_NONE},
    [CONV_TEAM_MSG_INFO_IMAGE] = {"info_image", "ผู้แจ้งส่งรูปภาพเพิ่ม เรื่อง {case} (ดูได้ในคอนโซล)",
                                  BUTTONS_NONE},
    [CONV_TEAM_MSG_INFO_STICKER] = {"info_sticker", "ผู้แจ้งส่งสติกเกอร์ เรื่อง {case}", BUTTONS_NONE},
    [CONV_TEAM_MSG_INFO_LOCATION] = {"info_location", "ผู้แจ้งส่งตำแหน่งใหม่ เรื่อง {case}", BUTTONS_NONE},
};

static const char label_take[] = "รับเรื่อง";
static const char label_scene[] = "ถึงที่เกิดเหตุ";
static const char label_close[] = "ปิดเรื่อง";

const char *conv_team_msg_name(conv_team_msg msg)
{
    return msg >= 0 && msg < CONV_TEAM_MSG_COUNT ? team_catalog[msg].name : "unknown";
}

void conv_team_member_of(const char *team, char *out, size_t size)
{
    char cut[256];
    conv_cut_units(team != NULL && team[0] != '\0' ? team : "ทีม", 80, cut, sizeof(cut));
    snprintf(out, size, "สมาชิกกลุ่ม %s", cut);
}

/* Length of the UTF-8 sequence starting with byte c (1 for a broken one). */
static size_t sequence_length(unsigned char c)
{
    return c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
}

/* Bytes of the longest prefix of text (len bytes) within max_units and max_bytes. */
static size_t prefix_within(const char *text, size_t len, size_t max_units, size_t max_bytes)
{
    size_t at = 0, units = 0;
    while (at < len) {
        size_t step = sequence_length((unsigned char)text[at]);
        size_t step_units = step == 4 ? 2 : 1;
        if (at + step > len || units + step_units > max_units || at + step > max_bytes)
            break;
        at += step;
        units += step_units;
    }
    return at;
}

void conv_cut_units(const char *text, size_t max_units, char *out, size_t size)
{
    static const char ellipsis[] = "…"; /* 1 unit, 3 bytes */
    if (size == 0)
        return;
    if (text == NULL)
        text = "";
    size_t len = strlen(text);
    size_t at = prefix_within(text, len, max_units, size - 1);
    if (at == len) {
        memmove(out, text, at);
        out[at] = '\0';
        return;
    }
    if (max_units < 1 || size < sizeof(ellipsis)) {
        out[0] = '\0';
        return;
    }
    at = prefix_within(text, len, max_units - 1, size - sizeof(ellipsis));
    memmove(out, text, at);
    memcpy(out + at, ellipsis, sizeof(ellipsis));
}

/* Appends src to out at *used, bounded. */
static void append(char *out, size_t size, size_t *used, const char *src, size_t len)
{
    if (*used + len >= size)
        len = *used < size - 1 ? size - 1 - *used : 0;
    memcpy(out + *used, src, len);
    *used += len;
    out[*used] = '\0';
}

/* Replaces every {name} of template_text; ST_INVALID when a needed value is missing. */
static st_code fill(const char *template_text, const conv_team_params *p, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    const char *cursor = template_text;
    while (*cursor != '\0') {
        const char *open = strchr(cursor, '{');
        if (open == NULL) {
            append(out, size, &used, cursor, strlen(cursor));
            break;
        }
        append(out, size, &used, cursor, (size_t)(open - cursor));
        const char *close = strchr(open, '}');
        if (close == NULL)
            return ST_INVALID;
        size_t name_len = (size_t)(close - open - 1);
        char number[24];
        const char *value = NULL;
        char cut[INFO_TEXT_UNITS * 4 + 8];
        if (name_len == 4 && strncmp(open + 1, "case", 4) == 0) {
            value = p->case_number;
        } else if (name_len == 4 && strncmp(open + 1, "team", 4) == 0) {
            value = p->team;
        } else if (name_len == 5 && strncmp(open + 1, "actor", 5) == 0) {
            value = p->actor;
        } else if (name_len == 4 && strncmp(open + 1, "time", 4) == 0) {
            value = p->time;
        } else if (name_len == 7 && strncmp(open + 1, "outcome", 7) == 0) {
            value = p->outcome != CONV_OUTCOME_NONE ? conv_outcome_label(p->outcome) : NULL;
        } else if (name_len == 4 && strncmp(open + 1, "text", 4) == 0) {
            if (p->text != NULL) {
                conv_cut_units(p->text, INFO_TEXT_UNITS, cut, sizeof(cut));
                value = cut;
            }
        } else if (name_len == 7 && strncmp(open + 1, "minutes", 7) == 0) {
            snprintf(number, sizeof(number), "%" PRId64, p->minutes);
            value = number;
        }
        if (value == NULL || value[0] == '\0')
            return ST_INVALID;
        append(out, size, &used, value, strlen(value));
        cursor = close + 1;
    }
    return used < size - 1 ? ST_OK : ST_LIMIT;
}

static st_code add_button(cJSON *actions, const char *label, const char *action, int64_t incident,
                          const char *outcome, const char *case_number)
{
    char incident_text[24], data[CONV_POSTBACK_MAX + 1], display[128];
    snprintf(incident_text, sizeof(incident_text), "%" PRId64, incident);
    const char *keys[] = {"i", "o"};
    const char *values[] = {incident_text, outcome};
    st_code status =
        conv_postback_format(action, keys, values, outcome != NULL ? 2 : 1, data, sizeof(data));
    if (status != ST_OK)
        return status;
    snprintf(display, sizeof(display), "%s %s", label, case_number);
    cJSON *button = cJSON_CreateObject();
    if (button == NULL)
        return ST_NOMEM;
    cJSON_AddStringToObject(button, "type", "button");
    cJSON_AddStringToObject(button, "style", strcmp(action, "take") == 0 ? "primary" : "secondary");
    cJSON_AddStringToObject(button, "height", "sm");
    cJSON *item = cJSON_AddObjectToObject(button, "action");
    cJSON_AddStringToObject(item, "type", "postback");
    cJSON_AddStringToObject(item, "label", label);
    cJSON_AddStringToObject(item, "data", data);
    cJSON_AddStringToObject(item, "displayText", display);
    cJSON_AddItemToArray(actions, button);
    return ST_OK;
}

static st_code add_buttons(team_buttons kind, const conv_team_params *p, cJSON *actions)
{
    st_code status = ST_OK;
    switch (kind) {
    case BUTTONS_TAKEN:
        status = add_button(actions, label_scene, "scene", p->incident_id, NULL, p->case_number);
        if (status == ST_OK)
            status =
                add_button(actions, label_close, "close", p->incident_id, NULL, p->case_number);
        break;
    case BUTTONS_CLOSE:
        status = add_button(actions, label_close, "close", p->incident_id, NULL, p->case_number);
        break;
    case BUTTONS_TAKE:
        status = add_button(actions, label_take, "take", p->incident_id, NULL, p->case_number);
        break;
    case BUTTONS_OUTCOME:
        for (int i = 1; i <= CONV_OUTCOME_COUNT && status == ST_OK; i++)
            status = add_button(actions, outcomes[i].label, "outcome", p->incident_id,
                                outcomes[i].code, p->case_number);
        break;
    default:
        break;
    }
    return status;
}

st_code conv_team_render(conv_team_msg msg, const conv_team_params *params, cJSON **ret_message)
{
    if (msg < 0 || msg >= CONV_TEAM_MSG_COUNT || params == NULL || ret_message == NULL)
        return ST_INVALID;
    const team_entry *entry = &team_catalog[msg];
    char text[INFO_TEXT_UNITS * 4 + 1024];
    st_code status = fill(entry->text, params, text, sizeof(text));
    if (status != ST_OK)
        return status;
    cJSON *message = cJSON_CreateObject();
    if (message == NULL)
        return ST_NOMEM;
    if (entry->buttons == BUTTONS_NONE) {
        char cut[sizeof(text)];
        conv_cut_units(text, TEXT_MAX, cut, sizeof(cut));
        cJSON_AddStringToObject(message, "type", "text");
        cJSON_AddStringToObject(message, "text", cut);
        *ret_message = message;
        return ST_OK;
    }
    if (params->incident_id <= 0 || params->case_number == NULL) {
        cJSON_Delete(message);
        return ST_INVALID;
    }
    /* A small Flex bubble: the text, then the buttons in the footer. */
    char alt[ALT_TEXT_MAX * 4 + 4], body[BUBBLE_TEXT_MAX * 4 + 4];
    conv_cut_units(text, ALT_TEXT_MAX, alt, sizeof(alt));
    conv_cut_units(text, BUBBLE_TEXT_MAX, body, sizeof(body));
    cJSON_AddStringToObject(message, "type", "flex");
    cJSON_AddStringToObject(message, "altText", alt);
    cJSON *bubble = cJSON_AddObjectToObject(message, "contents");
    cJSON_AddStringToObject(bubble, "type", "bubble");
    cJSON *content = cJSON_AddObjectToObject(bubble, "body");
    cJSON_AddStringToObject(content, "type", "box");
    cJSON_AddStringToObject(content, "layout", "vertical");
    cJSON *texts = cJSON_AddArrayToObject(content, "contents");
    cJSON *line = cJSON_CreateObject();
    cJSON_AddStringToObject(line, "type", "text");
    cJSON_AddStringToObject(line, "text", body);
    cJSON_AddBoolToObject(line, "wrap", 1);
    cJSON_AddItemToArray(texts, line);
    cJSON *footer = cJSON_AddObjectToObject(bubble, "footer");
    cJSON_AddStringToObject(footer, "type", "box");
    cJSON_AddStringToObject(footer, "layout", "vertical");
    cJSON_AddStringToObject(footer, "spacing", "sm");
    cJSON *buttons = cJSON_AddArrayToObject(footer, "contents");
    status = buttons != NULL ? add_buttons(entry->buttons, params, buttons) : ST_NOMEM;
    if (status != ST_OK) {
        cJSON_Delete(message);
        return status;
    }
    *ret_message = message;
    return ST_OK;
}

cJSON *conv_team_location_message(const char *case_number, const conv_location *location)
{
    char full_title[512], title[512], address[512];
    snprintf(full_title, sizeof(full_title), "%s ตำแหน่งใหม่",
             case_number != NULL ? case_number : "ESS");
    conv_cut_units(full_title, 100, title, sizeof(title));
    const char *given = location->address[0] != '\0' ? location->address
                        : location->title[0] != '\0' ? location->title
                                                     : "ตำแหน่งจากผู้แจ้ง";
    conv_cut_units(given, 100, address, sizeof(address));
    cJSON *message = cJSON_CreateObject();
    if (message == NULL)
        return NULL;
    cJSON_AddStringToObject(message, "type", "location");
    cJSON_AddStringToObject(message, "title", title);
    cJSON_AddStringToObject(message, "address", address);
    cJSON_AddNumberToObject(message, "latitude", location->lat);
    cJSON_AddNumberToObject(message, "longitude", location->lon);
    return message;
}
