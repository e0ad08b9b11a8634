/*
 * cmd_approve.c — `keel approve ID [--comment TEXT]`.
 */
#include "decide.h"

extern const struct cli_command cmd_approve;

static int run(int argc, char **argv)
{
    return cli_decide(&cmd_approve, argc, argv, true);
}

const struct cli_command cmd_approve = {
    .name = "approve",
    .summary = "approve a pending approval request",
    .usage = "usage: keel approve ID [--comment TEXT] [--json] [--server URL] [--token T]\n"
             "\n"
             "Approves request ID as the identity of the token (an approver of the\n"
             "request's group, or the admin); the run continues.  Exit codes: 0 ok, 4 no\n"
             "such approval, 5 token refused or not in the group, 6 daemon not\n"
             "reachable, 7 already decided or expired.\n",
    .run = run,
};
