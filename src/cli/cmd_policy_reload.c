/*
 * cmd_policy_reload.c — `keel policy reload`: asks the daemon to reload its
 * policies (and keel.yaml and the workflows) all-or-nothing.  A set that
 * fails to load or validate is refused and the old one stays in force; runs
 * are not dropped.  The same as sending SIGHUP to `keel serve`.
 */
#include "client.h"

#include <stdio.h>
#include <string.h>

extern const struct cli_command cmd_policy;

/* Runs `keel policy reload [--json] [--server URL] [--token T] [--data DIR]`. */
int policy_cmd_reload(int argc, char **argv)
{
    struct cli_client c;
    memset(&c, 0, sizeof c);
    for (int i = 1; i < argc; i++) {
        int r = cli_client_flag(&cmd_policy, &c, argc, argv, &i);
        if (r < 0) return -r;
        if (r) continue;
        return cli_usage_error(&cmd_policy, "policy reload takes no argument '%s'", argv[i]);
    }
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    keel_err_clear(&err);
    struct json_value *out;
    int rc = cli_client_request(&c, "POST", "/v1/policy/reload", "{}", &a, &out, &err);
    if (rc) {
        arena_cleanup(&a);
        return cli_error("policy reload", &err);
    }
    if (c.json) cli_print_json(out);
    else printf("reloaded\n");
    arena_cleanup(&a);
    return CLI_OK;
}
