/* emu_endpoint: the Messaging API endpoints the emulator serves; faults and rate limits are
 * kept per endpoint. */
#ifndef EMU_ENDPOINT_H
#define EMU_ENDPOINT_H

#include <string.h>

#include "status.h"

typedef enum emu_endpoint {
    EMU_EP_REPLY,         /* POST /v2/bot/message/reply */
    EMU_EP_PUSH,          /* POST /v2/bot/message/push */
    EMU_EP_PROFILE,       /* GET  /v2/bot/profile/{userId} */
    EMU_EP_GROUP_SUMMARY, /* GET  /v2/bot/group/{groupId}/summary */
    EMU_EP_GROUP_MEMBER,  /* GET  /v2/bot/group/{groupId}/member/{userId} */
    EMU_EP_COUNT,
} emu_endpoint;

/* Control-API names: "reply", "push", "profile", "groupSummary", "groupMember". */
static inline const char *emu_endpoint_name(emu_endpoint endpoint)
{
    static const char *const names[EMU_EP_COUNT] = {"reply", "push", "profile", "groupSummary",
                                                    "groupMember"};
    return (unsigned)endpoint < EMU_EP_COUNT ? names[endpoint] : "unknown";
}

static inline st_code emu_endpoint_parse(const char *name, emu_endpoint *ret_endpoint)
{
    for (int endpoint = 0; endpoint < EMU_EP_COUNT; endpoint++) {
        if (strcmp(emu_endpoint_name((emu_endpoint)endpoint), name) == 0) {
            *ret_endpoint = (emu_endpoint)endpoint;
            return ST_OK;
        }
    }
    return ST_NOT_FOUND;
}

#endif
