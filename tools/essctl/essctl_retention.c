/* essctl retention: personal data kept only as long as needed.
 *
 *   essctl retention run [--days N]
 *       erases the phone number, the reporter's encrypted LINE id and its keyed hash of every
 *       incident closed or cancelled more than N days ago (default ESS_PII_RETENTION_DAYS,
 *       else 90), sets pii_erased_at, and appends one audit record per erased incident
 *       (services/audit/audit_retention.h). Safe to run at any time and concurrently; run it
 *       as a member of the ess_retention role (migration 0005). ess-audit also runs it daily
 *       (ESS_RETENTION_INTERVAL). */
#include <stdio.h>
#include <stdlib.h>

#include "audit_retention.h"
#include "essctl.h"

/* A retention run may touch many rows: more than a query's budget. */
#define RETENTION_STATEMENT_TIMEOUT_MS (10LL * 60 * 1000)

int essctl_retention_run(const essctl_command *command, int argc, char **argv);

static bool parse_days(const char *text, int *ret_days)
{
    char *end = NULL;
    long value = strtol(text, &end, 10);
    if (end == text || *end != '\0' || value < 1 || value > AUDIT_RETENTION_DAYS_MAX)
        return false;
    *ret_days = (int)value;
    return true;
}

int essctl_retention_run(const essctl_command *command, int argc, char **argv)
{
    const char *days_text = NULL;
    if (!essctl_take_option(command, &argc, argv, "--days", &days_text))
        return ESSCTL_EXIT_USAGE;
    int exit_code = essctl_no_more_args(command, argc, argv);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    int days = AUDIT_RETENTION_DAYS_DEFAULT;
    if (days_text != NULL) {
        if (!parse_days(days_text, &days))
            return essctl_usage_error(command, "--days must be 1..%d", AUDIT_RETENTION_DAYS_MAX);
    } else if ((days_text = getenv("ESS_PII_RETENTION_DAYS")) != NULL && days_text[0] != '\0') {
        if (!parse_days(days_text, &days)) {
            fprintf(stderr, "essctl %s: ESS_PII_RETENTION_DAYS must be 1..%d\n", command->name,
                    AUDIT_RETENTION_DAYS_MAX);
            return ESSCTL_EXIT_USAGE;
        }
    }
    db *d = NULL;
    exit_code = essctl_open_db(command, RETENTION_STATEMENT_TIMEOUT_MS, &d);
    if (exit_code != ESSCTL_EXIT_OK)
        return exit_code;
    st_error err = {0};
    size_t erased = 0;
    st_code code = audit_retention_run(d, days, "essctl retention run", &erased, &err);
    printf("erased the personal data of %zu incident%s closed or cancelled more than %d days "
           "ago\n",
           erased, erased == 1 ? "" : "s", days);
    if (code != ST_OK)
        exit_code = essctl_fail(command, &err);
    db_destroy(d);
    return exit_code;
}
