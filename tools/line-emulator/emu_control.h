/* emu_control: the /_emulator/ JSON API that plays the LINE users and inspects the platform
 * (users, groups, acting as a user, tapping what the bot offered, conversations, recorded
 * messages, webhook deliveries, reply tokens, faults, settings, clear). Every endpoint is
 * documented with an example in README.md. Event-loop thread only. */
#ifndef EMU_CONTROL_H
#define EMU_CONTROL_H

#include "emu_app.h"

void emu_control_handle(emu_app *app, const emu_request *request, emu_response *response);

#endif
