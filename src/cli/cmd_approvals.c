/*
 * cmd_approvals.c — `keel approvals [--all]`: approval requests (pending
 * only unless --all).
 */
#include "client.h"

#include <stdio.h>
#include <string.h>

extern const struct cli_command cmd_approvals;

static int run(int argc, char **argv)
{
    struct cli_client c;
    memset(&c, 0, sizeof c);
    bool all = false;
    for (int i = 1; i < argc; i++) {
        int r = cli_client_flag(&cmd_approvals, &c, argc, argv, &i);
        if (r < 0) return -r;
        if (r) continue;
        if (!strcmp(argv[i], "--all")) all = true;
        else return cli_usage_error(&cmd_approvals, "unexpected argument '%s'", argv[i]);
    }
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    keel_err_clear(&err);
    struct json_value *out;
    int rc = cli_client_request(&c, "GET", all ? "/v1/approvals?all=1" : "/v1/approvals", NULL,
                                &a, &out, &err);
    if (rc) {
        arena_cleanup(&a);
        return cli_error("approvals", &err);
    }
    if (c.json) {
        cli_print_json(out);
    } else {
        struct json_value *list = json_get(out, "approvals");
        printf("%-32s %-32s %-16s %-16s %s\n", "APPROVAL", "RUN", "STEP", "GROUP", "STATUS");
        for (uint32_t i = 0; json_is(list, JSON_ARRAY) && i < list->len; i++) {
            struct json_value *ap = list->u.items[i];
            printf("%-32s %-32s %-16s %-16s %s\n", json_get_str(ap, "id", ""),
                   json_get_str(ap, "run", ""), json_get_str(ap, "step", ""),
                   json_get_str(ap, "group", ""), json_get_str(ap, "status", ""));
        }
    }
    arena_cleanup(&a);
    return CLI_OK;
}

const struct cli_command cmd_approvals = {
    .name = "approvals",
    .summary = "list approval requests",
    .usage = "usage: keel approvals [--all] [--json] [--server URL] [--token T] [--data DIR]\n"
             "\n"
             "Lists pending approval requests (with --all, decided ones too).  Approvers\n"
             "use their own token (--token or KEEL_TOKEN).  Exit codes: 0 ok, 5 token\n"
             "refused, 6 daemon not reachable.\n",
    .run = run,
};
