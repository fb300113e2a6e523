/* emu_api: LINE's Messaging API as far as ESS uses it —
 *   POST /v2/bot/message/reply, POST /v2/bot/message/push, GET /v2/bot/profile/{userId},
 *   GET /v2/bot/group/{groupId}/summary, GET /v2/bot/group/{groupId}/member/{userId}
 * with LINE's checks in LINE's order: bearer token (401), rate limit (429, no Retry-After),
 * body size (413), content type (415), JSON (400), message validation (400 with details),
 * reply token (400 "Invalid reply token"), retry key (409 + x-line-accepted-request-id),
 * recipient (400 "Failed to send messages"). Scripted faults (emu_faults.h) come first.
 * Event-loop thread only. */
#ifndef EMU_API_H
#define EMU_API_H

#include "emu_app.h"

void emu_api_handle(emu_app *app, const emu_request *request, emu_response *response);

#endif
