/* emu_chat: `line-emulator chat`, a terminal LINE client against a running emulator.
 *
 *   line-emulator chat --user NAME [--group GROUP_ID] [--url http://127.0.0.1:8090]
 *
 * Creates the user NAME (or finds it), follows the bot, then reads lines: plain text is sent
 * as a text message; /loc LAT LON [TITLE], /tap N [LAT LON], /postback DATA, /sticker,
 * /image, /follow, /unfollow, /history, /help, /quit. The bot's messages are printed as they
 * arrive, with numbered quick-reply items and buttons. Talks to the control API only. */
#ifndef EMU_CHAT_H
#define EMU_CHAT_H

/* argv[0] is "chat". Returns the process exit code. */
int emu_chat_main(int argc, char **argv);

#endif
