/*
 * cmd_deny.c — `keel deny ID --reason TEXT`.
 */
#include "decide.h"

extern const struct cli_command cmd_deny;

static int run(int argc, char **argv)
{
    return cli_decide(&cmd_deny, argc, argv, false);
}

const struct cli_command cmd_deny = {
    .name = "deny",
    .summary = "deny a pending approval request",
    .usage = "usage: keel deny ID --reason TEXT [--json] [--server URL] [--token T]\n"
             "\n"
             "Denies request ID as the identity of the token; the run fails with the\n"
             "reason.  Exit codes: 0 ok, 2 no --reason, 4 no such approval, 5 token\n"
             "refused or not in the group, 6 daemon not reachable, 7 already decided.\n",
    .run = run,
};
