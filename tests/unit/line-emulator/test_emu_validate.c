/* LINE's message limits, good and bad in one table: each case is a `messages` array and either
 * no problem or the property and message LINE would report. Also the error body shape. */
#include "testkit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "emu_validate.h"

/* Thai labels of exactly 20 and 21 grapheme clusters (many more code points and UTF-16 units):
 * คนคลุ้มคลั่งก่อเหตุ (13) + ก่อเหตุ (5) + ลั่ง (2) = 20. */
#define THAI_LABEL_20 "คนคลุ้มคลั่งก่อเหตุก่อเหตุลั่ง"
#define THAI_LABEL_21 THAI_LABEL_20 "ค"

static char *repeat(const char *unit, size_t times, const char *tail)
{
    size_t unit_len = strlen(unit), tail_len = tail != NULL ? strlen(tail) : 0;
    char *out = malloc(unit_len * times + tail_len + 1);
    assert_non_null(out);
    for (size_t i = 0; i < times; i++)
        memcpy(out + i * unit_len, unit, unit_len);
    if (tail_len > 0)
        memcpy(out + unit_len * times, tail, tail_len);
    out[unit_len * times + tail_len] = '\0';
    return out;
}

/* printf into a heap string (the cases build large JSON). */
static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(len >= 0);
    char *out = malloc((size_t)len + 1);
    assert_non_null(out);
    va_start(ap, fmt);
    vsnprintf(out, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return out;
}

static char *text_messages(const char *text)
{
    return format("[{\"type\":\"text\",\"text\":\"%s\"}]", text);
}

static char *quick_reply_with(size_t items, const char *label)
{
    size_t size = items * 160 + strlen(label) + 1;
    char *list = malloc(size);
    assert_non_null(list);
    list[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < items; i++) {
        int n = snprintf(list + used, size - used,
                         "%s{\"type\":\"action\",\"action\":{\"type\":"
                         "\"postback\",\"label\":\"%s\",\"data\":\"d%zu\"}}",
                         i > 0 ? "," : "", i == 0 ? label : "ok", i);
        assert_true(n > 0 && (size_t)n < size - used);
        used += (size_t)n;
    }
    char *out =
        format("[{\"type\":\"text\",\"text\":\"pick\",\"quickReply\":{\"items\":[%s]}}]", list);
    free(list);
    return out;
}

static char *postback_data(size_t length)
{
    char *data = repeat("x", length, NULL);
    char *out = format("[{\"type\":\"text\",\"text\":\"t\",\"quickReply\":{\"items\":[{\"type\":"
                       "\"action\",\"action\":{\"type\":\"postback\",\"label\":\"l\","
                       "\"data\":\"%s\"}}]}}]",
                       data);
    free(data);
    return out;
}

static char *location_title(size_t length)
{
    char *title = repeat("ก", length, NULL);
    char *out = format("[{\"type\":\"location\",\"title\":\"%s\",\"address\":\"Bangkok\","
                       "\"latitude\":13.75,\"longitude\":100.5}]",
                       title);
    free(title);
    return out;
}

/* A bubble whose compact JSON is exactly `bytes` long. */
static char *flex_bubble(size_t bytes)
{
    const char *head = "{\"type\":\"bubble\",\"body\":{\"type\":\"box\",\"layout\":\"vertical\","
                       "\"contents\":[{\"type\":\"text\",\"text\":\"";
    const char *foot = "\"}]}}";
    size_t fixed = strlen(head) + strlen(foot);
    assert_true(bytes > fixed);
    char *filler = repeat("a", bytes - fixed, NULL);
    char *out =
        format("[{\"type\":\"flex\",\"altText\":\"alt\",\"contents\":%s%s%s}]", head, filler, foot);
    free(filler);
    return out;
}

static char *flex_alt_text(size_t length)
{
    char *alt = repeat("ก", length, NULL);
    char *out = format("[{\"type\":\"flex\",\"altText\":\"%s\",\"contents\":{\"type\":\"bubble\","
                       "\"body\":{\"type\":\"box\",\"layout\":\"vertical\",\"contents\":[]}}}]",
                       alt);
    free(alt);
    return out;
}

static char *template_alt_text(size_t length)
{
    char *alt = repeat("a", length, NULL);
    char *out = format("[{\"type\":\"template\",\"altText\":\"%s\",\"template\":{\"type\":"
                       "\"confirm\",\"text\":\"sure?\",\"actions\":[{\"type\":\"message\","
                       "\"label\":\"yes\",\"text\":\"yes\"},{\"type\":\"message\",\"label\":"
                       "\"no\",\"text\":\"no\"}]}}]",
                       alt);
    free(alt);
    return out;
}

typedef struct validation_case {
    const char *name;
    char *messages;       /* JSON, heap */
    const char *property; /* NULL = valid */
    const char *message;  /* substring of the detail */
} validation_case;

static void run_cases(validation_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        cJSON *messages = cJSON_Parse(cases[i].messages);
        if (messages == NULL)
            fail_msg("%s: the test's JSON does not parse", cases[i].name);
        emu_problems problems = {0};
        emu_validate_messages(messages, &problems);
        cJSON_Delete(messages);
        if (cases[i].property == NULL) {
            if (problems.total != 0)
                fail_msg("%s: expected valid, got '%s' at %s", cases[i].name,
                         problems.items[0].message, problems.items[0].property);
        } else {
            bool found = false;
            for (size_t p = 0; p < problems.count; p++)
                if (strcmp(problems.items[p].property, cases[i].property) == 0 &&
                    strstr(problems.items[p].message, cases[i].message) != NULL)
                    found = true;
            if (!found)
                fail_msg("%s: expected '%s' at %s; got %zu problem(s), first '%s' at %s",
                         cases[i].name, cases[i].message, cases[i].property, problems.total,
                         problems.count > 0 ? problems.items[0].message : "",
                         problems.count > 0 ? problems.items[0].property : "");
        }
        free(cases[i].messages);
    }
}

#define FIVE_TEXTS                                                                                 \
    "{\"type\":\"text\",\"text\":\"1\"},{\"type\":\"text\",\"text\":\"2\"},"                       \
    "{\"type\":\"text\",\"text\":\"3\"},{\"type\":\"text\",\"text\":\"4\"},"                       \
    "{\"type\":\"text\",\"text\":\"5\"}"
#define EMOJI "\xf0\x9f\x98\x80"

/* A text message around an owned heap text (freed here). */
static char *text_of(char *owned_text)
{
    char *out = text_messages(owned_text);
    free(owned_text);
    return out;
}

ESS_TEST(messages_and_text)
{
    (void)state;
    validation_case cases[] = {
        {"0 messages", format("[]"), "messages", "Size must be between 1 and 5"},
        {"5 messages", format("[" FIVE_TEXTS "]"), NULL, NULL},
        {"6 messages", format("[" FIVE_TEXTS ",{\"type\":\"text\",\"text\":\"6\"}]"), "messages",
         "Size must be between 1 and 5"},
        {"messages missing", format("null"), "messages", "must be specified"},
        {"text 5000 ascii", text_of(repeat("a", 5000, NULL)), NULL, NULL},
        {"text 5001 ascii", text_of(repeat("a", 5001, NULL)), "messages[0].text",
         "Length must be between 1 and 5000"},
        {"text 2500 emoji = 5000 units", text_of(repeat(EMOJI, 2500, NULL)), NULL, NULL},
        {"text 2500 emoji + a = 5001 units", text_of(repeat(EMOJI, 2500, "a")), "messages[0].text",
         "Length must be between 1 and 5000"},
        {"text 4999 a + emoji = 5001 units (5000 code points)", text_of(repeat("a", 4999, EMOJI)),
         "messages[0].text", "Length must be between 1 and 5000"},
        {"text 5000 thai", text_of(repeat("ก", 5000, NULL)), NULL, NULL},
        {"empty text", text_messages(""), "messages[0].text", "May not be empty"},
        {"text missing", format("[{\"type\":\"text\"}]"), "messages[0].text", "must be specified"},
        {"unknown type", format("[{\"type\":\"fax\"}]"), "messages[0].type",
         "Must be one of the following values"},
        {"type missing", format("[{\"text\":\"x\"}]"), "messages[0].type", "must be specified"},
        {"sticker", format("[{\"type\":\"sticker\",\"packageId\":\"446\",\"stickerId\":\"1988\"}]"),
         NULL, NULL},
        {"image over http",
         format("[{\"type\":\"image\",\"originalContentUrl\":\"http://x/a.jpg\","
                "\"previewImageUrl\":\"https://x/p.jpg\"}]"),
         "messages[0].originalContentUrl", "HTTPS"},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

ESS_TEST(quick_reply_items_and_labels)
{
    (void)state;
    validation_case cases[] = {
        {"13 items", quick_reply_with(13, "a"), NULL, NULL},
        {"14 items", quick_reply_with(14, "a"), "messages[0].quickReply.items",
         "Size must be between 0 and 13"},
        {"thai label of 20 graphemes", quick_reply_with(1, THAI_LABEL_20), NULL, NULL},
        {"thai label of 21 graphemes", quick_reply_with(1, THAI_LABEL_21),
         "messages[0].quickReply.items[0].action.label", "Length must be between 1 and 20"},
        {"design label frenzy", quick_reply_with(1, "คนคลุ้มคลั่งก่อเหตุ"), NULL, NULL},
        {"design label confinement", quick_reply_with(1, "กักขังหน่วงเหนี่ยว"), NULL, NULL},
        {"emoji family counts once",
         quick_reply_with(1, "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91"
                             "\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 x"),
         NULL, NULL},
        {"label missing",
         format("[{\"type\":\"text\",\"text\":\"t\",\"quickReply\":{\"items\":"
                "[{\"type\":\"action\",\"action\":{\"type\":\"message\","
                "\"text\":\"hi\"}}]}}]"),
         "messages[0].quickReply.items[0].action.label", "must be specified"},
        {"item type not action",
         format("[{\"type\":\"text\",\"text\":\"t\",\"quickReply\":"
                "{\"items\":[{\"type\":\"button\",\"action\":{\"type\":"
                "\"location\",\"label\":\"l\"}}]}}]"),
         "messages[0].quickReply.items[0].type", "[action]"},
        {"location action in quick reply",
         format("[{\"type\":\"text\",\"text\":\"t\",\"quickReply\":{\"items\":[{\"type\":"
                "\"action\",\"action\":{\"type\":\"location\",\"label\":\"ส่งตำแหน่ง\"}}]}}]"),
         NULL, NULL},
        {"location action in a template",
         format("[{\"type\":\"template\",\"altText\":\"a\",\"template\":{\"type\":\"buttons\","
                "\"text\":\"t\",\"actions\":[{\"type\":\"location\",\"label\":\"here\"}]}}]"),
         "messages[0].template.actions[0].type", "only be used in quick reply"},
        {"location action in flex",
         format("[{\"type\":\"flex\",\"altText\":\"a\",\"contents\":{\"type\":\"bubble\",\"body\":"
                "{\"type\":\"box\",\"layout\":\"vertical\",\"contents\":[{\"type\":\"button\","
                "\"action\":{\"type\":\"location\",\"label\":\"here\"}}]}}}]"),
         "messages[0].contents.body.contents[0].action.type", "only be used in quick reply"},
        {"camera action in a template",
         format("[{\"type\":\"template\",\"altText\":\"a\",\"template\":{\"type\":\"buttons\","
                "\"text\":\"t\",\"actions\":[{\"type\":\"camera\",\"label\":\"cam\"}]}}]"),
         "messages[0].template.actions[0].type", "only be used in quick reply"},
        {"postback data 300", postback_data(300), NULL, NULL},
        {"postback data 301", postback_data(301), "messages[0].quickReply.items[0].action.data",
         "Length must be between 0 and 300"},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

ESS_TEST(location_flex_and_alt_text)
{
    (void)state;
    validation_case cases[] = {
        {"location title 100", location_title(100), NULL, NULL},
        {"location title 101", location_title(101), "messages[0].title",
         "Length must be between 1 and 100"},
        {"location title missing",
         format("[{\"type\":\"location\",\"address\":\"a\",\"latitude\":13,\"longitude\":100}]"),
         "messages[0].title", "must be specified"},
        {"location address missing",
         format("[{\"type\":\"location\",\"title\":\"t\",\"latitude\":13,\"longitude\":100}]"),
         "messages[0].address", "must be specified"},
        {"location latitude missing",
         format("[{\"type\":\"location\",\"title\":\"t\",\"address\":\"a\",\"longitude\":100}]"),
         "messages[0].latitude", "must be specified"},
        {"location latitude 91",
         format("[{\"type\":\"location\",\"title\":\"t\",\"address\":\"a\",\"latitude\":91,"
                "\"longitude\":100}]"),
         "messages[0].latitude", "between"},
        {"flex bubble of 30 KiB", flex_bubble(EMU_FLEX_BUBBLE_BYTES_MAX), NULL, NULL},
        {"flex bubble over 30 KiB", flex_bubble(EMU_FLEX_BUBBLE_BYTES_MAX + 1),
         "messages[0].contents", "30 KB"},
        {"flex altText 400", flex_alt_text(400), NULL, NULL},
        {"flex altText 401", flex_alt_text(401), "messages[0].altText",
         "Length must be between 1 and 400"},
        {"template altText 400", template_alt_text(400), NULL, NULL},
        {"template altText 401", template_alt_text(401), "messages[0].altText",
         "Length must be between 1 and 400"},
        {"confirm with 3 actions",
         format("[{\"type\":\"template\",\"altText\":\"a\",\"template\":{\"type\":\"confirm\","
                "\"text\":\"t\",\"actions\":[{\"type\":\"message\",\"label\":\"a\",\"text\":\"a\"},"
                "{\"type\":\"message\",\"label\":\"b\",\"text\":\"b\"},{\"type\":\"message\","
                "\"label\":\"c\",\"text\":\"c\"}]}}]"),
         "messages[0].template.actions", "Size must be between 2 and 2"},
        {"flex without altText", format("[{\"type\":\"flex\",\"contents\":{\"type\":\"bubble\"}}]"),
         "messages[0].altText", "must be specified"},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

ESS_TEST(error_body_has_lines_shape)
{
    (void)state;
    emu_problems problems = {0};
    emu_problems_add(&problems, "messages[0].text", "May not be empty");
    emu_problems_add(&problems, "messages[1].type", "must be specified");
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(emu_validation_error_body(&problems, &body, &len), ST_OK);
    cJSON *root = cJSON_Parse(body);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItem(root, "message")->valuestring,
                        "The request body has 2 error(s)");
    cJSON *details = cJSON_GetObjectItem(root, "details");
    assert_int_equal(cJSON_GetArraySize(details), 2);
    cJSON *first = cJSON_GetArrayItem(details, 0);
    assert_string_equal(cJSON_GetObjectItem(first, "message")->valuestring, "May not be empty");
    assert_string_equal(cJSON_GetObjectItem(first, "property")->valuestring, "messages[0].text");
    assert_int_equal(cJSON_GetArraySize(first), 2); /* message and property, nothing else */
    cJSON_Delete(root);
    free(body);

    /* Without details LINE omits the array altogether. */
    assert_int_equal(emu_error_body("Invalid reply token", NULL, &body, &len), ST_OK);
    assert_string_equal(body, "{\"message\":\"Invalid reply token\"}");
    free(body);
}

ESS_TEST(problems_beyond_the_cap_are_counted)
{
    (void)state;
    emu_problems problems = {0};
    for (int i = 0; i < EMU_PROBLEMS_MAX + 5; i++)
        emu_problems_add(&problems, "p", "m%d", i);
    assert_int_equal(problems.count, EMU_PROBLEMS_MAX);
    assert_int_equal(problems.total, EMU_PROBLEMS_MAX + 5);
}

ESS_TEST_MAIN(NULL, NULL)
