/* libFuzzer target: a group's text and postback data (conv_team_classify, conv_invite_normalise)
 * and the UTF-16 cut (conv_cut_units) on arbitrary bytes. The first byte picks text or
 * postback and the cut's limit. For every input: an accepted code is 12 characters of the
 * alphabet and reads back as itself; a case action names an incident >= 1 (an outcome, one of
 * the four); the cut is a prefix of the input (plus "…") within its limits. A violation aborts
 * (a finding). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conv_event.h"
#include "conv_invite.h"
#include "conv_team.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static conv_event event;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t selector = data[0];
    const char *input = (const char *)data + 1;
    size_t len = size - 1;
    memset(&event, 0, sizeof(event));
    event.source = CONV_SOURCE_GROUP;
    if (selector & 1) {
        event.kind = CONV_EV_POSTBACK;
        if (len >= sizeof(event.postback_data))
            return 0;
        memcpy(event.postback_data, input, len);
    } else {
        event.kind = CONV_EV_TEXT;
        if (len >= sizeof(event.text))
            return 0;
        memcpy(event.text, input, len);
    }
    conv_team_intent intent;
    conv_team_classify(&event, &intent);
    if (intent.action == CONV_TEAM_BIND && intent.code_valid) {
        if (strlen(intent.code) != CONV_INVITE_CHARS)
            abort();
        for (size_t i = 0; i < CONV_INVITE_CHARS; i++)
            if (strchr("0123456789ABCDEFGHJKMNPQRSTVWXYZ", intent.code[i]) == NULL)
                abort();
        char again[CONV_INVITE_CHARS + 1];
        if (!conv_invite_normalise(intent.code, again) || strcmp(again, intent.code) != 0)
            abort();
    }
    if (intent.action >= CONV_TEAM_TAKE && intent.action <= CONV_TEAM_OUTCOME &&
        intent.incident_id < 1)
        abort();
    if (intent.action == CONV_TEAM_OUTCOME && conv_outcome_code(intent.outcome) == NULL)
        abort();

    char text[600], cut[64];
    if (len >= sizeof(text))
        return 0;
    memcpy(text, input, len);
    text[len] = '\0';
    size_t max_units = (size_t)(selector >> 1) % 40;
    conv_cut_units(text, max_units, cut, sizeof(cut));
    size_t cut_len = strlen(cut);
    static const char ellipsis[] = "…";
    size_t kept = cut_len >= 3 && strcmp(cut + cut_len - 3, ellipsis) == 0 &&
                          (cut_len - 3 > strlen(text) || strncmp(cut, text, cut_len) != 0)
                      ? cut_len - 3
                      : cut_len;
    if (kept > strlen(text) || strncmp(cut, text, kept) != 0 || cut_len >= sizeof(cut))
        abort();
    return 0;
}
