/*
 * decide.h — shared by cmd_approve.c and cmd_deny.c: sends a decision on
 * an approval request (decide.c is not a separate file: the function is
 * static inline so each command stays one file).
 */
#ifndef KEEL_CLI_DECIDE_H
#define KEEL_CLI_DECIDE_H

#include "client.h"

#include <stdio.h>
#include <string.h>

static inline int cli_decide(const struct cli_command *cmd, int argc, char **argv, bool approve)
{
    struct cli_client c;
    memset(&c, 0, sizeof c);
    const char *id = NULL, *text = NULL;
    const char *flag = approve ? "--comment" : "--reason";
    for (int i = 1; i < argc; i++) {
        int r = cli_client_flag(cmd, &c, argc, argv, &i);
        if (r < 0) return -r;
        if (r) continue;
        if (!strcmp(argv[i], flag)) {
            if (i + 1 >= argc) return cli_usage_error(cmd, "%s needs a value", flag);
            text = argv[++i];
            continue;
        }
        if (argv[i][0] == '-' || id) return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
        id = argv[i];
    }
    if (!id) return cli_usage_error(cmd, "missing approval ID (see `keel approvals`)");
    if (!approve && (!text || !*text)) return cli_usage_error(cmd, "a denial needs --reason TEXT");
    struct arena a;
    arena_init(&a);
    struct json_value *body = json_object(&a);
    json_object_setc(&a, body, "decision", json_cstr(&a, approve ? "approve" : "deny"));
    if (text) json_object_setc(&a, body, approve ? "comment" : "reason", json_cstr(&a, text));
    struct buf b, path;
    buf_init(&b);
    buf_init(&path);
    json_write(&b, body, 0, NULL);
    buf_puts(&path, "/v1/approvals/");
    cli_path_escape(&path, id);
    buf_puts(&path, "/decide");
    struct keel_err err;
    keel_err_clear(&err);
    struct json_value *out;
    int rc = cli_client_request(&c, "POST", path.data, b.data, &a, &out, &err);
    buf_cleanup(&b);
    buf_cleanup(&path);
    if (rc) {
        arena_cleanup(&a);
        return cli_error(cmd->name, &err);
    }
    if (c.json) cli_print_json(out);
    else printf("%s %s\n", id, json_get_str(out, "status", ""));
    arena_cleanup(&a);
    return CLI_OK;
}

#endif
