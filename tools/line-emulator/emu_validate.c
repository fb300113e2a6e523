#include "emu_validate.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_text.h"

#define PATH_MAX_LEN EMU_PROPERTY_MAX
#define FLEX_DEPTH_MAX 40
#define URL_MAX 2000
#define URI_ACTION_MAX 1000
#define ACTION_TEXT_MAX 300

void emu_problems_add(emu_problems *problems, const char *property, const char *fmt, ...)
{
    problems->total++;
    if (problems->count >= EMU_PROBLEMS_MAX)
        return;
    emu_problem *problem = &problems->items[problems->count++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem->message, sizeof(problem->message), fmt, ap);
    va_end(ap);
    snprintf(problem->property, sizeof(problem->property), "%s", property);
}

/* ---- field helpers ---- */

/* A property path longer than PATH_MAX_LEN is cut: it only names the field in an error. */
static void child_path(char *out, const char *parent, const char *name)
{
    if (snprintf(out, PATH_MAX_LEN, "%s.%s", parent, name) >= PATH_MAX_LEN)
        out[PATH_MAX_LEN - 1] = '\0';
}

static void index_path(char *out, const char *parent, size_t index)
{
    if (snprintf(out, PATH_MAX_LEN, "%s[%zu]", parent, index) >= PATH_MAX_LEN)
        out[PATH_MAX_LEN - 1] = '\0';
}

static const cJSON *get(const cJSON *object, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(object, name);
}

typedef enum presence { OPTIONAL, REQUIRED } presence;

/* Returns the string value of object.name, or NULL (adding a problem when it is required and
 * missing, or present but not a string). */
static const char *string_field(const cJSON *object, const char *name, const char *parent,
                                presence need, emu_problems *problems)
{
    char path[PATH_MAX_LEN];
    child_path(path, parent, name);
    const cJSON *item = get(object, name);
    if (item == NULL || cJSON_IsNull(item)) {
        if (need == REQUIRED)
            emu_problems_add(problems, path, "must be specified");
        return NULL;
    }
    if (!cJSON_IsString(item)) {
        emu_problems_add(problems, path, "Must be a string");
        return NULL;
    }
    return item->valuestring;
}

typedef enum measure { UTF16_UNITS, GRAPHEMES } measure;

static size_t measured_length(const char *text, measure how)
{
    size_t length = 0;
    st_code code = how == GRAPHEMES ? emu_grapheme_count(text, strlen(text), &length)
                                    : emu_utf16_units(text, strlen(text), &length);
    return code == ST_OK ? length : (size_t)-1;
}

/* A string field with a length range; min 1 means "not empty". */
static const char *text_field(const cJSON *object, const char *name, const char *parent,
                              presence need, size_t min, size_t max, measure how,
                              emu_problems *problems)
{
    const char *value = string_field(object, name, parent, need, problems);
    if (value == NULL)
        return NULL;
    char path[PATH_MAX_LEN];
    child_path(path, parent, name);
    size_t length = measured_length(value, how);
    if (min > 0 && value[0] == '\0')
        emu_problems_add(problems, path, "May not be empty");
    else if (length < min || length > max)
        emu_problems_add(problems, path, "Length must be between %zu and %zu", min, max);
    return value;
}

static void https_url_field(const cJSON *object, const char *name, const char *parent,
                            presence need, emu_problems *problems)
{
    const char *value = string_field(object, name, parent, need, problems);
    if (value == NULL)
        return;
    char path[PATH_MAX_LEN];
    child_path(path, parent, name);
    if (strncmp(value, "https://", 8) != 0 || value[8] == '\0')
        emu_problems_add(problems, path, "Must be a valid HTTPS URL");
    else if (strlen(value) > URL_MAX)
        emu_problems_add(problems, path, "Length must be between 0 and %d", URL_MAX);
}

static bool number_field(const cJSON *object, const char *name, const char *parent, double min,
                         double max, emu_problems *problems)
{
    char path[PATH_MAX_LEN];
    child_path(path, parent, name);
    const cJSON *item = get(object, name);
    if (item == NULL || cJSON_IsNull(item)) {
        emu_problems_add(problems, path, "must be specified");
        return false;
    }
    if (!cJSON_IsNumber(item)) {
        emu_problems_add(problems, path, "Must be a number");
        return false;
    }
    if (item->valuedouble < min || item->valuedouble > max) {
        emu_problems_add(problems, path, "Must be between %g and %g", min, max);
        return false;
    }
    return true;
}

/* The array object.name with min..max elements, or NULL after a problem. */
static const cJSON *array_field(const cJSON *object, const char *name, const char *parent,
                                presence need, int min, int max, emu_problems *problems)
{
    char path[PATH_MAX_LEN];
    child_path(path, parent, name);
    const cJSON *item = get(object, name);
    if (item == NULL || cJSON_IsNull(item)) {
        if (need == REQUIRED)
            emu_problems_add(problems, path, "must be specified");
        return NULL;
    }
    if (!cJSON_IsArray(item)) {
        emu_problems_add(problems, path, "Must be an array");
        return NULL;
    }
    int size = cJSON_GetArraySize(item);
    if (size < min || size > max) {
        emu_problems_add(problems, path, "Size must be between %d and %d", min, max);
        return NULL;
    }
    return item;
}

static const cJSON *object_field(const cJSON *object, const char *name, const char *parent,
                                 presence need, emu_problems *problems)
{
    char path[PATH_MAX_LEN];
    child_path(path, parent, name);
    const cJSON *item = get(object, name);
    if (item == NULL || cJSON_IsNull(item)) {
        if (need == REQUIRED)
            emu_problems_add(problems, path, "must be specified");
        return NULL;
    }
    if (!cJSON_IsObject(item)) {
        emu_problems_add(problems, path, "Must be an object");
        return NULL;
    }
    return item;
}

static bool one_of(const char *value, const char *const *choices)
{
    for (size_t i = 0; choices[i] != NULL; i++)
        if (strcmp(value, choices[i]) == 0)
            return true;
    return false;
}

static void add_choices_problem(emu_problems *problems, const char *path,
                                const char *const *choices)
{
    char list[EMU_PROBLEM_TEXT_MAX] = "";
    size_t used = 0;
    for (size_t i = 0; choices[i] != NULL; i++) {
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", i > 0 ? ", " : "", choices[i]);
        if (n < 0 || (size_t)n >= sizeof(list) - used)
            break;
        used += (size_t)n;
    }
    emu_problems_add(problems, path, "Must be one of the following values: [%s]", list);
}

/* ---- actions ---- */

typedef enum action_place {
    IN_QUICK_REPLY,
    IN_TEMPLATE,
    IN_IMAGE_CAROUSEL,
    IN_FLEX,
    IN_IMAGEMAP_OR_DEFAULT, /* defaultAction: no label needed */
} action_place;

static const char *const action_types[] = {
    "postback",   "message",  "uri",       "datetimepicker", "camera",
    "cameraRoll", "location", "clipboard", "richmenuswitch", NULL};

static void validate_action(const cJSON *action, const char *path, action_place place,
                            emu_problems *problems)
{
    if (!cJSON_IsObject(action)) {
        emu_problems_add(problems, path, "Must be an object");
        return;
    }
    char type_path[PATH_MAX_LEN];
    child_path(type_path, path, "type");
    const char *type = string_field(action, "type", path, REQUIRED, problems);

    size_t label_max = place == IN_FLEX             ? EMU_FLEX_LABEL_GRAPHEMES_MAX
                       : place == IN_IMAGE_CAROUSEL ? 12
                                                    : EMU_LABEL_GRAPHEMES_MAX;
    bool label_required = place == IN_QUICK_REPLY || place == IN_TEMPLATE;
    text_field(action, "label", path, label_required ? REQUIRED : OPTIONAL, label_required ? 1 : 0,
               label_max, GRAPHEMES, problems);

    if (type == NULL)
        return;
    if (!one_of(type, action_types)) {
        add_choices_problem(problems, type_path, action_types);
        return;
    }
    bool quick_reply_only = strcmp(type, "camera") == 0 || strcmp(type, "cameraRoll") == 0 ||
                            strcmp(type, "location") == 0;
    if (quick_reply_only && place != IN_QUICK_REPLY) {
        emu_problems_add(problems, type_path, "The %s action can only be used in quick reply",
                         type);
        return;
    }
    if (strcmp(type, "richmenuswitch") == 0) {
        emu_problems_add(problems, type_path,
                         "The richmenuswitch action can only be used in rich menus");
        return;
    }
    if (strcmp(type, "message") == 0) {
        text_field(action, "text", path, REQUIRED, 1, ACTION_TEXT_MAX, UTF16_UNITS, problems);
    } else if (strcmp(type, "postback") == 0) {
        text_field(action, "data", path, REQUIRED, 0, EMU_POSTBACK_DATA_MAX, UTF16_UNITS, problems);
        const char *display_text = text_field(action, "displayText", path, OPTIONAL, 1,
                                              ACTION_TEXT_MAX, UTF16_UNITS, problems);
        const char *text =
            text_field(action, "text", path, OPTIONAL, 1, ACTION_TEXT_MAX, UTF16_UNITS, problems);
        if (display_text != NULL && text != NULL) {
            char text_path[PATH_MAX_LEN];
            child_path(text_path, path, "text");
            emu_problems_add(problems, text_path,
                             "displayText and text cannot be specified together");
        }
        const char *input_option = string_field(action, "inputOption", path, OPTIONAL, problems);
        static const char *const input_options[] = {"closeRichMenu", "openRichMenu", "openKeyboard",
                                                    "openVoice", NULL};
        if (input_option != NULL && !one_of(input_option, input_options)) {
            char option_path[PATH_MAX_LEN];
            child_path(option_path, path, "inputOption");
            add_choices_problem(problems, option_path, input_options);
        }
        text_field(action, "fillInText", path, OPTIONAL, 0, ACTION_TEXT_MAX, UTF16_UNITS, problems);
    } else if (strcmp(type, "uri") == 0) {
        const char *uri =
            text_field(action, "uri", path, REQUIRED, 1, URI_ACTION_MAX, UTF16_UNITS, problems);
        if (uri != NULL && strncmp(uri, "http://", 7) != 0 && strncmp(uri, "https://", 8) != 0 &&
            strncmp(uri, "line://", 7) != 0 && strncmp(uri, "tel:", 4) != 0) {
            char uri_path[PATH_MAX_LEN];
            child_path(uri_path, path, "uri");
            emu_problems_add(problems, uri_path, "Must be a http, https, line or tel URI");
        }
        const cJSON *alt_uri = object_field(action, "altUri", path, OPTIONAL, problems);
        if (alt_uri != NULL) {
            char alt_path[PATH_MAX_LEN];
            child_path(alt_path, path, "altUri");
            text_field(alt_uri, "desktop", alt_path, OPTIONAL, 0, URI_ACTION_MAX, UTF16_UNITS,
                       problems);
        }
    } else if (strcmp(type, "datetimepicker") == 0) {
        text_field(action, "data", path, REQUIRED, 0, EMU_POSTBACK_DATA_MAX, UTF16_UNITS, problems);
        const char *mode = string_field(action, "mode", path, REQUIRED, problems);
        static const char *const modes[] = {"date", "time", "datetime", NULL};
        if (mode != NULL && !one_of(mode, modes)) {
            char mode_path[PATH_MAX_LEN];
            child_path(mode_path, path, "mode");
            add_choices_problem(problems, mode_path, modes);
        }
    } else if (strcmp(type, "clipboard") == 0) {
        text_field(action, "clipboardText", path, REQUIRED, 1, 1000, UTF16_UNITS, problems);
    }
}

static void validate_actions(const cJSON *owner, const char *parent, int min, int max,
                             action_place place, emu_problems *problems)
{
    const cJSON *actions = array_field(owner, "actions", parent, REQUIRED, min, max, problems);
    if (actions == NULL)
        return;
    char actions_path[PATH_MAX_LEN];
    child_path(actions_path, parent, "actions");
    size_t index = 0;
    const cJSON *action;
    cJSON_ArrayForEach(action, actions)
    {
        char path[PATH_MAX_LEN];
        index_path(path, actions_path, index++);
        validate_action(action, path, place, problems);
    }
}

static void default_action(const cJSON *owner, const char *parent, emu_problems *problems)
{
    const cJSON *action = get(owner, "defaultAction");
    if (action == NULL || cJSON_IsNull(action))
        return;
    char path[PATH_MAX_LEN];
    child_path(path, parent, "defaultAction");
    validate_action(action, path, IN_IMAGEMAP_OR_DEFAULT, problems);
}

/* ---- quick reply ---- */

static void validate_quick_reply(const cJSON *message, const char *parent, emu_problems *problems)
{
    const cJSON *quick_reply = object_field(message, "quickReply", parent, OPTIONAL, problems);
    if (quick_reply == NULL)
        return;
    char quick_path[PATH_MAX_LEN];
    child_path(quick_path, parent, "quickReply");
    const cJSON *items = array_field(quick_reply, "items", quick_path, REQUIRED, 0,
                                     EMU_QUICK_REPLY_ITEMS_MAX, problems);
    if (items == NULL)
        return;
    char items_path[PATH_MAX_LEN];
    child_path(items_path, quick_path, "items");
    size_t index = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, items)
    {
        char item_path[PATH_MAX_LEN];
        index_path(item_path, items_path, index++);
        if (!cJSON_IsObject(item)) {
            emu_problems_add(problems, item_path, "Must be an object");
            continue;
        }
        const char *type = string_field(item, "type", item_path, OPTIONAL, problems);
        if (type != NULL && strcmp(type, "action") != 0) {
            char type_path[PATH_MAX_LEN];
            child_path(type_path, item_path, "type");
            emu_problems_add(problems, type_path, "Must be one of the following values: [action]");
        }
        https_url_field(item, "imageUrl", item_path, OPTIONAL, problems);
        const cJSON *action = object_field(item, "action", item_path, REQUIRED, problems);
        if (action != NULL) {
            char action_path[PATH_MAX_LEN];
            child_path(action_path, item_path, "action");
            validate_action(action, action_path, IN_QUICK_REPLY, problems);
        }
    }
}

/* ---- template ---- */

static void validate_column_text(const cJSON *owner, const char *parent, size_t plain_max,
                                 emu_problems *problems)
{
    bool decorated = get(owner, "thumbnailImageUrl") != NULL || get(owner, "title") != NULL;
    text_field(owner, "title", parent, OPTIONAL, 0, 40, UTF16_UNITS, problems);
    https_url_field(owner, "thumbnailImageUrl", parent, OPTIONAL, problems);
    text_field(owner, "text", parent, REQUIRED, 1, decorated ? 60 : plain_max, UTF16_UNITS,
               problems);
}

static void validate_template(const cJSON *message, const char *parent, emu_problems *problems)
{
    const cJSON *template = object_field(message, "template", parent, REQUIRED, problems);
    if (template == NULL)
        return;
    char path[PATH_MAX_LEN];
    child_path(path, parent, "template");
    const char *type = string_field(template, "type", path, REQUIRED, problems);
    if (type == NULL)
        return;
    static const char *const types[] = {"buttons", "confirm", "carousel", "image_carousel", NULL};
    if (strcmp(type, "buttons") == 0) {
        validate_column_text(template, path, 160, problems);
        default_action(template, path, problems);
        validate_actions(template, path, 1, 4, IN_TEMPLATE, problems);
    } else if (strcmp(type, "confirm") == 0) {
        text_field(template, "text", path, REQUIRED, 1, 240, UTF16_UNITS, problems);
        validate_actions(template, path, 2, 2, IN_TEMPLATE, problems);
    } else if (strcmp(type, "carousel") == 0 || strcmp(type, "image_carousel") == 0) {
        bool images = strcmp(type, "image_carousel") == 0;
        const cJSON *columns = array_field(template, "columns", path, REQUIRED, 1, 10, problems);
        if (columns == NULL)
            return;
        char columns_path[PATH_MAX_LEN];
        child_path(columns_path, path, "columns");
        size_t index = 0;
        const cJSON *column;
        cJSON_ArrayForEach(column, columns)
        {
            char column_path[PATH_MAX_LEN];
            index_path(column_path, columns_path, index++);
            if (!cJSON_IsObject(column)) {
                emu_problems_add(problems, column_path, "Must be an object");
                continue;
            }
            if (images) {
                https_url_field(column, "imageUrl", column_path, REQUIRED, problems);
                const cJSON *action =
                    object_field(column, "action", column_path, REQUIRED, problems);
                if (action != NULL) {
                    char action_path[PATH_MAX_LEN];
                    child_path(action_path, column_path, "action");
                    validate_action(action, action_path, IN_IMAGE_CAROUSEL, problems);
                }
            } else {
                validate_column_text(column, column_path, 120, problems);
                default_action(column, column_path, problems);
                validate_actions(column, column_path, 1, 3, IN_TEMPLATE, problems);
            }
        }
    } else {
        char type_path[PATH_MAX_LEN];
        child_path(type_path, path, "type");
        add_choices_problem(problems, type_path, types);
    }
}

/* ---- flex ---- */

/* Every object under a key named "action" inside a flex container is an action. */
static void validate_flex_actions(const cJSON *node, const char *path, int depth,
                                  emu_problems *problems)
{
    if (depth > FLEX_DEPTH_MAX) {
        emu_problems_add(problems, path, "Nesting is too deep");
        return;
    }
    if (cJSON_IsArray(node)) {
        size_t index = 0;
        const cJSON *child;
        cJSON_ArrayForEach(child, node)
        {
            char child_path_text[PATH_MAX_LEN];
            index_path(child_path_text, path, index++);
            validate_flex_actions(child, child_path_text, depth + 1, problems);
        }
    } else if (cJSON_IsObject(node)) {
        const cJSON *child;
        cJSON_ArrayForEach(child, node)
        {
            char child_path_text[PATH_MAX_LEN];
            child_path(child_path_text, path, child->string);
            if (strcmp(child->string, "action") == 0 && cJSON_IsObject(child))
                validate_action(child, child_path_text, IN_FLEX, problems);
            else if (cJSON_IsObject(child) || cJSON_IsArray(child))
                validate_flex_actions(child, child_path_text, depth + 1, problems);
        }
    }
}

static size_t compact_size(const cJSON *node)
{
    char *printed = cJSON_PrintUnformatted(node);
    if (printed == NULL)
        return (size_t)-1;
    size_t size = strlen(printed);
    cJSON_free(printed);
    return size;
}

static void validate_bubble(const cJSON *bubble, const char *path, emu_problems *problems)
{
    if (!cJSON_IsObject(bubble)) {
        emu_problems_add(problems, path, "Must be an object");
        return;
    }
    const char *type = string_field(bubble, "type", path, REQUIRED, problems);
    if (type != NULL && strcmp(type, "bubble") != 0) {
        char type_path[PATH_MAX_LEN];
        child_path(type_path, path, "type");
        emu_problems_add(problems, type_path, "Must be one of the following values: [bubble]");
        return;
    }
    size_t size = compact_size(bubble);
    if (size > EMU_FLEX_BUBBLE_BYTES_MAX) {
        emu_problems_add(problems, path, "Size must be less than or equal to %d bytes (30 KB)",
                         EMU_FLEX_BUBBLE_BYTES_MAX);
        return;
    }
    validate_flex_actions(bubble, path, 0, problems);
}

static void validate_flex(const cJSON *message, const char *parent, emu_problems *problems)
{
    const cJSON *contents = object_field(message, "contents", parent, REQUIRED, problems);
    if (contents == NULL)
        return;
    char path[PATH_MAX_LEN];
    child_path(path, parent, "contents");
    const char *type = string_field(contents, "type", path, REQUIRED, problems);
    if (type == NULL)
        return;
    if (strcmp(type, "bubble") == 0) {
        validate_bubble(contents, path, problems);
    } else if (strcmp(type, "carousel") == 0) {
        const cJSON *bubbles = array_field(contents, "contents", path, REQUIRED, 1,
                                           EMU_FLEX_CAROUSEL_BUBBLES_MAX, problems);
        if (bubbles == NULL)
            return;
        if (compact_size(contents) > EMU_FLEX_CAROUSEL_BYTES_MAX) {
            emu_problems_add(problems, path, "Size must be less than or equal to %d bytes (50 KB)",
                             EMU_FLEX_CAROUSEL_BYTES_MAX);
            return;
        }
        char bubbles_path[PATH_MAX_LEN];
        child_path(bubbles_path, path, "contents");
        size_t index = 0;
        const cJSON *bubble;
        cJSON_ArrayForEach(bubble, bubbles)
        {
            char bubble_path[PATH_MAX_LEN];
            index_path(bubble_path, bubbles_path, index++);
            validate_bubble(bubble, bubble_path, problems);
        }
    } else {
        char type_path[PATH_MAX_LEN];
        child_path(type_path, path, "type");
        emu_problems_add(problems, type_path,
                         "Must be one of the following values: [bubble, carousel]");
    }
}

/* ---- messages ---- */

static const char *const message_types[] = {"text",     "textV2", "sticker",  "image",
                                            "video",    "audio",  "location", "imagemap",
                                            "template", "flex",   "coupon",   NULL};

static void validate_message(const cJSON *message, const char *path, emu_problems *problems)
{
    if (!cJSON_IsObject(message)) {
        emu_problems_add(problems, path, "Must be an object");
        return;
    }
    const char *type = string_field(message, "type", path, REQUIRED, problems);
    if (type != NULL) {
        if (strcmp(type, "text") == 0 || strcmp(type, "textV2") == 0) {
            text_field(message, "text", path, REQUIRED, 1, EMU_TEXT_UNITS_MAX, UTF16_UNITS,
                       problems);
            array_field(message, "emojis", path, OPTIONAL, 0, 20, problems);
            string_field(message, "quoteToken", path, OPTIONAL, problems);
        } else if (strcmp(type, "sticker") == 0) {
            text_field(message, "packageId", path, REQUIRED, 1, 64, UTF16_UNITS, problems);
            text_field(message, "stickerId", path, REQUIRED, 1, 64, UTF16_UNITS, problems);
        } else if (strcmp(type, "image") == 0 || strcmp(type, "video") == 0) {
            https_url_field(message, "originalContentUrl", path, REQUIRED, problems);
            https_url_field(message, "previewImageUrl", path, REQUIRED, problems);
            text_field(message, "trackingId", path, OPTIONAL, 1, 100, UTF16_UNITS, problems);
        } else if (strcmp(type, "audio") == 0) {
            https_url_field(message, "originalContentUrl", path, REQUIRED, problems);
            number_field(message, "duration", path, 1, 1e12, problems);
        } else if (strcmp(type, "location") == 0) {
            text_field(message, "title", path, REQUIRED, 1, EMU_LOCATION_FIELD_MAX, UTF16_UNITS,
                       problems);
            text_field(message, "address", path, REQUIRED, 1, EMU_LOCATION_FIELD_MAX, UTF16_UNITS,
                       problems);
            number_field(message, "latitude", path, -90, 90, problems);
            number_field(message, "longitude", path, -180, 180, problems);
        } else if (strcmp(type, "imagemap") == 0) {
            https_url_field(message, "baseUrl", path, REQUIRED, problems);
            text_field(message, "altText", path, REQUIRED, 1, EMU_ALT_TEXT_MAX, UTF16_UNITS,
                       problems);
            const cJSON *base_size = object_field(message, "baseSize", path, REQUIRED, problems);
            if (base_size != NULL) {
                char size_path[PATH_MAX_LEN];
                child_path(size_path, path, "baseSize");
                number_field(base_size, "width", size_path, 1040, 1040, problems);
                number_field(base_size, "height", size_path, 1, 1e6, problems);
            }
            array_field(message, "actions", path, REQUIRED, 1, 50, problems);
        } else if (strcmp(type, "template") == 0) {
            text_field(message, "altText", path, REQUIRED, 1, EMU_ALT_TEXT_MAX, UTF16_UNITS,
                       problems);
            validate_template(message, path, problems);
        } else if (strcmp(type, "flex") == 0) {
            text_field(message, "altText", path, REQUIRED, 1, EMU_ALT_TEXT_MAX, UTF16_UNITS,
                       problems);
            validate_flex(message, path, problems);
        } else if (strcmp(type, "coupon") == 0) {
            text_field(message, "couponId", path, REQUIRED, 1, 100, UTF16_UNITS, problems);
        } else {
            char type_path[PATH_MAX_LEN];
            child_path(type_path, path, "type");
            add_choices_problem(problems, type_path, message_types);
        }
    }
    validate_quick_reply(message, path, problems);
    const cJSON *sender = object_field(message, "sender", path, OPTIONAL, problems);
    if (sender != NULL) {
        char sender_path[PATH_MAX_LEN];
        child_path(sender_path, path, "sender");
        text_field(sender, "name", sender_path, OPTIONAL, 1, 20, UTF16_UNITS, problems);
        https_url_field(sender, "iconUrl", sender_path, OPTIONAL, problems);
    }
}

void emu_validate_messages(const cJSON *messages, emu_problems *problems)
{
    if (messages == NULL || cJSON_IsNull(messages)) {
        emu_problems_add(problems, "messages", "must be specified");
        return;
    }
    if (!cJSON_IsArray(messages)) {
        emu_problems_add(problems, "messages", "Must be an array");
        return;
    }
    int count = cJSON_GetArraySize(messages);
    if (count < 1 || count > EMU_MESSAGES_MAX) {
        emu_problems_add(problems, "messages", "Size must be between 1 and %d", EMU_MESSAGES_MAX);
        return;
    }
    size_t index = 0;
    const cJSON *message;
    cJSON_ArrayForEach(message, messages)
    {
        char path[PATH_MAX_LEN];
        index_path(path, "messages", index++);
        validate_message(message, path, problems);
    }
}

/* ---- error bodies ---- */

st_code emu_error_body(const char *message, const emu_problems *problems, char **ret_body,
                       size_t *ret_len)
{
    st_code code = ST_NOMEM;
    char *printed = NULL;
    cJSON *root = cJSON_CreateObject();
    if (root == NULL || cJSON_AddStringToObject(root, "message", message) == NULL)
        goto done;
    if (problems != NULL && problems->count > 0) {
        cJSON *details = cJSON_AddArrayToObject(root, "details");
        if (details == NULL)
            goto done;
        for (size_t i = 0; i < problems->count; i++) {
            cJSON *detail = cJSON_CreateObject();
            if (detail == NULL)
                goto done;
            cJSON_AddItemToArray(details, detail);
            if (cJSON_AddStringToObject(detail, "message", problems->items[i].message) == NULL ||
                cJSON_AddStringToObject(detail, "property", problems->items[i].property) == NULL)
                goto done;
        }
    }
    printed = cJSON_PrintUnformatted(root);
    if (printed == NULL)
        goto done;
    *ret_len = strlen(printed);
    *ret_body = printed;
    printed = NULL;
    code = ST_OK;
done:
    cJSON_free(printed);
    cJSON_Delete(root);
    return code;
}

st_code emu_validation_error_body(const emu_problems *problems, char **ret_body, size_t *ret_len)
{
    char message[64];
    snprintf(message, sizeof(message), "The request body has %zu error(s)", problems->total);
    return emu_error_body(message, problems, ret_body, ret_len);
}
