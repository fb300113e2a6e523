#include "conv_catalog.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "conv_postback.h"

typedef enum quick_reply_kind {
    QR_NONE = 0,
    QR_CATEGORIES, /* the five groups, then the other language */
    QR_LOCATION,   /* share location */
    QR_CASE,       /* cancel (false alarm), add information */
    QR_NO_PHONE,   /* send without a phone */
} quick_reply_kind;

typedef struct catalog_entry {
    const char *name;
    const char *text[2]; /* [CONV_LANG_TH], [CONV_LANG_EN]; "{case}" is replaced */
    quick_reply_kind quick_reply;
} catalog_entry;

/* The order follows conv_msg. */
static const catalog_entry catalog[CONV_MSG_COUNT] = {
    [CONV_MSG_WELCOME] = {"welcome",
                          {"ESS รับแจ้งเหตุร้ายทางสังคม และส่งต่อให้ทีมสหวิชาชีพในพื้นที่\n"
                           "หากอยู่ในอันตรายเฉพาะหน้า โทร 191 ทันที",
                           "ESS takes reports of social emergencies and alerts the local team.\n"
                           "If you are in immediate danger, call 191 now."},
                          QR_NONE},
    [CONV_MSG_ASK_CATEGORY] = {"ask_category",
                               {"เกิดเหตุอะไร เลือกจากปุ่มด้านล่าง", "What is happening? Choose below."},
                               QR_CATEGORIES},
    [CONV_MSG_ASK_LOCATION] = {"ask_location",
                               {"ส่งตำแหน่งที่เกิดเหตุ กดปุ่ม \"ส่งตำแหน่ง\" ด้านล่าง",
                                "Share where it is happening: tap \"Share location\" below."},
                               QR_LOCATION},
    [CONV_MSG_ASK_PHONE] = {"ask_phone",
                            {"พิมพ์เบอร์โทรที่ให้ทีมติดต่อกลับได้ เช่น 0812345678",
                             "Type a phone number the team can call back, e.g. 0812345678"},
                            QR_NONE},
    [CONV_MSG_BAD_PHONE] = {"bad_phone",
                            {"เบอร์ไม่ถูกต้อง พิมพ์เบอร์มือถือ 10 หลัก เช่น 0812345678 "
                             "หรือเบอร์บ้าน 9 หลัก เช่น 021234567",
                             "That number is not valid. Type a 10-digit mobile number such as "
                             "0812345678, or a 9-digit landline such as 021234567."},
                            QR_NONE},
    [CONV_MSG_OFFER_NO_PHONE] = {"offer_no_phone",
                                 {"ส่งเรื่องโดยไม่ให้เบอร์ได้ ทีมจะติดต่อกลับทาง LINE นี้ "
                                  "หรือพิมพ์เบอร์อีกครั้ง",
                                  "You can send the report without a phone number: the team "
                                  "will reach you here on LINE. Or type the number again."},
                                 QR_NO_PHONE},
    [CONV_MSG_SUBMITTED] = {"submitted",
                            {"รับเรื่องแล้ว เลขที่เคส {case}\nแจ้งทีมในพื้นที่แล้ว\n"
                             "หากอยู่ในอันตรายเฉพาะหน้า โทร 191",
                             "Report received. Case number {case}\n"
                             "The local team has been alerted.\n"
                             "If you are in immediate danger, call 191."},
                            QR_CASE},
    [CONV_MSG_INFO_ADDED] = {"info_added",
                             {"เพิ่มข้อมูลในเคส {case} แล้ว", "Added to case {case}."},
                             QR_CASE},
    [CONV_MSG_ADD_INFO_HINT] = {"add_info_hint",
                                {"ส่งข้อความ รูปภาพ หรือตำแหน่งเพิ่มได้เลย",
                                 "Send text, photos or a location to add them to your case."},
                                QR_NONE},
    [CONV_MSG_CASE_OPEN] = {"case_open",
                            {"เคส {case} ยังเปิดอยู่ ส่งข้อมูลเพิ่มได้",
                             "Case {case} is still open. You can add information."},
                            QR_CASE},
    [CONV_MSG_CANCELLED] = {"cancelled",
                            {"ยกเลิกเคส {case} แล้ว", "Case {case} is cancelled."},
                            QR_NONE},
    [CONV_MSG_DRAFT_CANCELLED] = {"draft_cancelled",
                                  {"ยกเลิกแล้ว พิมพ์ \"แจ้งเหตุ\" เมื่อต้องการเริ่มใหม่",
                                   "Cancelled. Type \"report\" to start again."},
                                  QR_NONE},
    [CONV_MSG_NOTHING_TO_CANCEL] = {"nothing_to_cancel",
                                    {"ไม่มีเรื่องที่เปิดอยู่ พิมพ์ \"แจ้งเหตุ\" เพื่อเริ่มแจ้ง",
                                     "Nothing is open. Type \"report\" to start a report."},
                                    QR_NONE},
    [CONV_MSG_EXPIRED] = {"expired",
                          {"เรื่องที่ยังไม่ได้ส่งหมดเวลาแล้ว พิมพ์ \"แจ้งเหตุ\" เพื่อเริ่มใหม่",
                           "Your unfinished report has timed out. Type \"report\" to start "
                           "again."},
                          QR_NONE},
    [CONV_MSG_HINT] = {"hint", {"ขออภัย ยังไม่เข้าใจ", "Sorry, I did not understand that."}, QR_NONE},
    [CONV_MSG_RATE_LIMITED] = {"rate_limited",
                               {"คุณแจ้งเหตุครบจำนวนในชั่วโมงนี้แล้ว หากเร่งด่วน โทร 191 "
                                "(ตำรวจ) 1300 (ศูนย์ช่วยเหลือสังคม) หรือ 1669 (เจ็บป่วยฉุกเฉิน)",
                                "You have sent the most reports allowed this hour. If it is "
                                "urgent, call 191 (police), 1300 (social assistance) or 1669 "
                                "(medical)."},
                               QR_NONE},
    [CONV_MSG_CASE_TAKEN] = {"case_taken",
                             {"เจ้าหน้าที่รับเรื่อง {case} แล้ว", "An officer has taken case {case}."},
                             QR_CASE},
    [CONV_MSG_CASE_ON_SCENE] = {"case_on_scene",
                                {"เจ้าหน้าที่ถึงที่เกิดเหตุแล้ว ({case})",
                                 "An officer is at the place now ({case})."},
                                QR_CASE},
    [CONV_MSG_CASE_CLOSED] = {"case_closed",
                              {"เรื่อง {case} ปิดแล้ว หากต้องการแจ้งอีก พิมพ์ \"แจ้งเหตุ\" "
                               "หากอยู่ในอันตราย โทร 191",
                               "Case {case} is closed. To report again, type \"report\". "
                               "If you are in danger, call 191."},
                              QR_NONE},
};

typedef struct category_entry {
    const char *code;
    const char *label[2]; /* quick-reply labels, <= 20 graphemes */
} category_entry;

static const category_entry categories[CONV_CATEGORY_COUNT + 1] = {
    [CONV_CAT_NONE] = {NULL, {NULL, NULL}},
    [CONV_CAT_THREAT] = {"threat", {"ถูกข่มขู่/ทำร้าย", "Threat or harm"}},
    [CONV_CAT_CONFINEMENT] = {"confinement", {"กักขังหน่วงเหนี่ยว", "Held or confined"}},
    [CONV_CAT_SEXUAL] = {"sexual", {"ล่วงละเมิดทางเพศ", "Sexual abuse risk"}},
    [CONV_CAT_FRENZY] = {"frenzy", {"คนคลุ้มคลั่งก่อเหตุ", "Deranged person"}},
    [CONV_CAT_GATHERING] = {"gathering", {"มั่วสุมก่อเหตุ", "Gang causing harm"}},
};

/* Quick-reply labels that are not categories. */
static const char *const label_other_language[2] = {"English", "ภาษาไทย"};
static const char *const label_share_location[2] = {"ส่งตำแหน่ง", "Share location"};
static const char *const label_cancel[2] = {"ยกเลิก (แจ้งผิด)", "Cancel (false alarm)"};
static const char *const label_add_info[2] = {"เพิ่มข้อมูล", "Add information"};
static const char *const label_no_phone[2] = {"ส่งโดยไม่ให้เบอร์", "Send without phone"};

const char *conv_category_code(conv_category category)
{
    return category > CONV_CAT_NONE && category <= CONV_CATEGORY_COUNT ? categories[category].code
                                                                       : NULL;
}

conv_category conv_category_from_code(const char *code)
{
    for (int i = 1; code != NULL && i <= CONV_CATEGORY_COUNT; i++)
        if (strcmp(categories[i].code, code) == 0)
            return (conv_category)i;
    return CONV_CAT_NONE;
}

const char *conv_category_label(conv_category category, conv_lang lang)
{
    return category > CONV_CAT_NONE && category <= CONV_CATEGORY_COUNT
               ? categories[category].label[lang == CONV_LANG_EN]
               : NULL;
}

static bool equal_ignoring_ascii_case(const char *a, size_t a_len, const char *b)
{
    size_t b_len = strlen(b);
    if (a_len != b_len)
        return false;
    for (size_t i = 0; i < a_len; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

conv_category conv_category_from_label(const char *text)
{
    if (text == NULL)
        return CONV_CAT_NONE;
    size_t start = 0, end = strlen(text);
    while (start < end && (text[start] == ' ' || text[start] == '\n' || text[start] == '\t'))
        start++;
    while (end > start && (text[end - 1] == ' ' || text[end - 1] == '\n' || text[end - 1] == '\t'))
        end--;
    for (int i = 1; i <= CONV_CATEGORY_COUNT; i++) {
        if (equal_ignoring_ascii_case(text + start, end - start, categories[i].code) ||
            equal_ignoring_ascii_case(text + start, end - start, categories[i].label[0]) ||
            equal_ignoring_ascii_case(text + start, end - start, categories[i].label[1]))
            return (conv_category)i;
    }
    return CONV_CAT_NONE;
}

const char *conv_lang_code(conv_lang lang)
{
    return lang == CONV_LANG_EN ? "en" : "th";
}

conv_lang conv_lang_from_code(const char *code)
{
    return code != NULL && strcmp(code, "en") == 0 ? CONV_LANG_EN : CONV_LANG_TH;
}

const char *conv_msg_name(conv_msg msg)
{
    return msg >= 0 && msg < CONV_MSG_COUNT ? catalog[msg].name : "unknown";
}

/* ---- rendering ----------------------------------------------------------------------------- */

/* Replaces "{case}" in template with case_number. */
static st_code fill_template(const char *template_text, const char *case_number, char *out,
                             size_t out_size)
{
    const char *marker = strstr(template_text, "{case}");
    if (marker == NULL) {
        int written = snprintf(out, out_size, "%s", template_text);
        return written >= 0 && (size_t)written < out_size ? ST_OK : ST_LIMIT;
    }
    if (case_number == NULL || case_number[0] == '\0')
        return ST_INVALID;
    int written = snprintf(out, out_size, "%.*s%s%s", (int)(marker - template_text), template_text,
                           case_number, marker + strlen("{case}"));
    return written >= 0 && (size_t)written < out_size ? ST_OK : ST_LIMIT;
}

static cJSON *postback_item(const char *label, const char *data)
{
    cJSON *item = cJSON_CreateObject();
    cJSON *action = cJSON_AddObjectToObject(item, "action");
    cJSON_AddStringToObject(item, "type", "action");
    cJSON_AddStringToObject(action, "type", "postback");
    cJSON_AddStringToObject(action, "label", label);
    cJSON_AddStringToObject(action, "data", data);
    cJSON_AddStringToObject(action, "displayText", label);
    return item;
}

static st_code add_postback(cJSON *items, const char *label, const char *action, const char *key,
                            const char *value)
{
    char data[CONV_POSTBACK_MAX + 1];
    const char *keys[] = {key};
    const char *values[] = {value};
    st_code status =
        conv_postback_format(action, keys, values, key != NULL ? 1 : 0, data, sizeof(data));
    if (status != ST_OK)
        return status;
    cJSON_AddItemToArray(items, postback_item(label, data));
    return ST_OK;
}

static st_code build_quick_reply(quick_reply_kind kind, conv_lang lang,
                                 const conv_msg_params *params, cJSON *message)
{
    if (kind == QR_NONE)
        return ST_OK;
    int side = lang == CONV_LANG_EN;
    cJSON *quick_reply = cJSON_AddObjectToObject(message, "quickReply");
    cJSON *items = cJSON_AddArrayToObject(quick_reply, "items");
    st_code status = ST_OK;
    char incident[24];
    snprintf(incident, sizeof(incident), "%" PRId64, params != NULL ? params->incident_id : 0);
    switch (kind) {
    case QR_CATEGORIES:
        for (int i = 1; i <= CONV_CATEGORY_COUNT && status == ST_OK; i++)
            status = add_postback(items, categories[i].label[side], "cat", "c", categories[i].code);
        if (status == ST_OK)
            status =
                add_postback(items, label_other_language[side], "lang", "l", side ? "th" : "en");
        break;
    case QR_LOCATION: {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "type", "action");
        cJSON *action = cJSON_AddObjectToObject(item, "action");
        cJSON_AddStringToObject(action, "type", "location");
        cJSON_AddStringToObject(action, "label", label_share_location[side]);
        cJSON_AddItemToArray(items, item);
        break;
    }
    case QR_CASE:
        if (params == NULL || params->incident_id <= 0)
            return ST_INVALID;
        status = add_postback(items, label_cancel[side], "cancel", "i", incident);
        if (status == ST_OK)
            status = add_postback(items, label_add_info[side], "info", "i", incident);
        break;
    case QR_NO_PHONE:
        status = add_postback(items, label_no_phone[side], "nophone", NULL, NULL);
        break;
    default:
        break;
    }
    return status;
}

st_code conv_catalog_render(conv_msg msg, conv_lang lang, const conv_msg_params *params,
                            cJSON **ret_message)
{
    if (msg < 0 || msg >= CONV_MSG_COUNT || ret_message == NULL)
        return ST_INVALID;
    const catalog_entry *entry = &catalog[msg];
    char text[1024];
    st_code status = fill_template(entry->text[lang == CONV_LANG_EN],
                                   params != NULL ? params->case_number : NULL, text, sizeof(text));
    if (status != ST_OK)
        return status;
    cJSON *message = cJSON_CreateObject();
    if (message == NULL)
        return ST_NOMEM;
    cJSON_AddStringToObject(message, "type", "text");
    cJSON_AddStringToObject(message, "text", text);
    status = build_quick_reply(entry->quick_reply, lang, params, message);
    if (status != ST_OK) {
        cJSON_Delete(message);
        return status;
    }
    *ret_message = message;
    return ST_OK;
}
