/* essctl: what the command files share.
 *
 * A command is one row of the table in main.c: its words ("db migrate"), a handler, a usage
 * line for its options and one line of help. main.c finds the row, answers --help itself,
 * and calls the handler with the arguments that follow the command words. A handler returns
 * the process exit code: 0 ok, 1 failure (one line on stderr), 2 usage (one line on stderr).
 * Listings print a table for people and, with --json, one JSON document on stdout. */
#ifndef ESSCTL_H
#define ESSCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "db.h"
#include "status.h"

enum { ESSCTL_EXIT_OK = 0, ESSCTL_EXIT_FAILURE = 1, ESSCTL_EXIT_USAGE = 2 };

typedef struct essctl_command essctl_command;

/* argv holds the arguments after the command words (argv[argc] is NULL); the handler may
 * reorder them. */
typedef int (*essctl_handler)(const essctl_command *command, int argc, char **argv);

struct essctl_command {
    const char *name; /* "db migrate" */
    essctl_handler run;
    const char *usage; /* options after the name: "[--json]"; "" when none */
    const char *help;  /* one line */
};

/* Removes every occurrence of flag ("--json") from argv; true when there was one. */
bool essctl_take_flag(int *argc, char **argv, const char *flag);

/* Removes "--name VALUE" or "--name=VALUE" from argv; *ret_value borrows from argv (NULL when
 * absent). Returns false (after printing a usage line) when the value is missing. */
bool essctl_take_option(const essctl_command *command, int *argc, char **argv, const char *name,
                        const char **ret_value);

/* Prints "essctl <command>: <problem>" and the command's usage on stderr; returns 2. */
int essctl_usage_error(const essctl_command *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Rejects leftover arguments with a usage error (returns 2), else returns 0. */
int essctl_no_more_args(const essctl_command *command, int argc, char **argv);

/* Prints "essctl <command>: <message> (<cause>)" on stderr, the text scrubbed of anything
 * that looks like personal data; returns 1. */
int essctl_fail(const essctl_command *command, const st_error *err);

/* Reads ESS_PG_DSN from the environment and connects (application_name "essctl").
 * statement_timeout_ms 0 = the library default. On failure prints one line and returns the
 * exit code (2 for a configuration problem, 1 when the server cannot be reached); on success
 * returns 0 and the caller owns *ret_db (db_destroy). */
int essctl_open_db(const essctl_command *command, int64_t statement_timeout_ms, db **ret_db);

/* Parses an --agency list ("police,shelter"; NULL = every agency when all_by_default, none
 * otherwise) into a PostgreSQL array literal ("{police,shelter}") in out, in the fixed agency
 * order. Returns 0, or 2 after a usage error naming the known agencies. */
int essctl_parse_agencies(const essctl_command *command, const char *list, bool all_by_default,
                          char *out, size_t out_size);

/* Prints the environment variables essctl reads (for essctl --help). */
void essctl_print_environment(FILE *out);

#endif
