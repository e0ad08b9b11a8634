/*
 * cmd_policy_check.c — `keel policy check FILE... [--schema S] [--json]`:
 * parses Cedar policy files and, given a schema (.cedarschema or JSON),
 * validates them strictly.  Every problem is printed as
 *   file:line:column: policy <id>: message
 * so editors can jump to it.  cmd_policy.c dispatches `check` here.
 *
 * Exit codes (docs/cli/README.md): 0 all files parse (and validate),
 * 2 usage, 3 a policy or the schema does not parse or does not validate,
 * 4 a file is missing, 70 internal error.
 */
#include "cli.h"
#include "../json/json.h"
#include "../policy/policy.h"

#include <stdio.h>
#include <string.h>

/* `keel policy check ...`: argv[0] is "check".  Returns an exit code (enum
 * cli_exit); everything it allocates is freed before it returns.  Called by
 * cmd_policy.c's subcommand table. */
int policy_cmd_check(int argc, char **argv);

static const char check_usage[] =
    "usage: keel policy check FILE... [--schema S] [--json]\n"
    "\n"
    "Parses the Cedar policies in FILEs (ids: @id(\"...\") when given, else policy0,\n"
    "policy1, ... in load order).  With --schema (a .cedarschema or JSON schema),\n"
    "also validates them the way Cedar's strict validator does, for every\n"
    "principal/action/resource combination the schema allows.  Each problem is\n"
    "printed as file:line:column: policy ID: message; policies that can never\n"
    "apply (false for every request the schema allows) get a warning, which\n"
    "does not fail the check.  --json prints one object.\n"
    "Exit 0 when everything is valid, 3 when something does not parse or validate,\n"
    "4 when a file is missing.\n";

static void json_diag(struct buf *out, bool *first, const char *file, int line, int column,
                      const char *policy, const char *message, bool warning)
{
    buf_puts(out, *first ? "" : ",");
    *first = false;
    buf_puts(out, "{\"file\":");
    json_write_string(out, file, strlen(file));
    buf_printf(out, ",\"line\":%d,\"column\":%d,\"policy\":", line, column);
    if (policy) json_write_string(out, policy, strlen(policy));
    else buf_puts(out, "null");
    buf_puts(out, ",\"message\":");
    json_write_string(out, message, strlen(message));
    buf_printf(out, ",\"warning\":%s}", warning ? "true" : "false");
}

int policy_cmd_check(int argc, char **argv)
{
    const char *schema_path = NULL;
    bool json = false;
    int nfiles = 0;
    const char **files = argc > 1 ? (const char **)&argv[1] : NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(check_usage, stdout);
            return CLI_OK;
        }
        if (!strcmp(argv[i], "--schema")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "keel policy check: --schema needs a file\n%s", check_usage);
                return CLI_USAGE;
            }
            schema_path = argv[++i];
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "keel policy check: unknown option '%s'\n%s", argv[i],
                    check_usage);
            return CLI_USAGE;
        } else {
            files[nfiles++] = argv[i]; /* compacts the file list in place */
        }
    }
    if (nfiles == 0) {
        fprintf(stderr, "keel policy check: no policy files given\n%s", check_usage);
        return CLI_USAGE;
    }

    int rc = CLI_OK;
    struct buf out;
    buf_init(&out);
    bool first = true;
    struct keel_err err;
    struct policy_schema *schema = NULL;
    struct policy_set *set = policy_set_new(POLICY_PARSE_ID_ANNOTATIONS);
    char line[2 * KEEL_ERR_MSG_MAX];

    for (int i = 0; i < nfiles; i++) {
        keel_err_clear(&err);
        struct buf text;
        buf_init(&text);
        int r = keel_read_file(files[i], POLICY_MAX_TEXT, &text, &err);
        if (r == 0)
            r = policy_set_add_text(set, text.data ? text.data : "", text.len, files[i], &err);
        buf_cleanup(&text);
        if (r) {
            if (!err.file[0]) snprintf(err.file, sizeof err.file, "%s", files[i]);
            if (json) json_diag(&out, &first, err.file, err.line, err.column, NULL, err.msg, false);
            else fprintf(stderr, "%s\n", keel_err_format(&err, line, sizeof line));
            int code = cli_exit_for(r);
            if (rc == CLI_OK || code == CLI_BADINPUT) rc = code;
        }
    }
    if (rc == CLI_OK && schema_path) {
        keel_err_clear(&err);
        int r = policy_schema_load(schema_path, &schema, &err);
        if (r) {
            if (!err.file[0]) snprintf(err.file, sizeof err.file, "%s", schema_path);
            if (json) json_diag(&out, &first, err.file, err.line, err.column, NULL, err.msg, false);
            else fprintf(stderr, "%s\n", keel_err_format(&err, line, sizeof line));
            rc = cli_exit_for(r);
        }
    }
    size_t npolicies = policy_set_count(set);
    int problems = 0;
    if (rc == CLI_OK && schema) {
        struct policy_diag_list diags;
        policy_diag_list_init(&diags);
        problems = policy_validate(schema, set, &diags);
        if (problems < 0) {
            fprintf(stderr, "keel policy check: internal error while validating (%s)\n",
                    keel_strerror(problems));
            rc = CLI_INTERNAL;
        } else if (problems > 0) {
            rc = CLI_BADINPUT;
        }
        for (size_t i = 0; i < diags.len; i++) {
            const struct policy_diag *d = &diags.items[i];
            if (json)
                json_diag(&out, &first, d->file, d->line, d->column, d->policy_id, d->message,
                          d->warning);
            else
                fprintf(stderr, "%s:%d:%d: policy %s: %s\n", d->file[0] ? d->file : "-",
                        d->line, d->column, d->policy_id, d->message);
        }
        policy_diag_list_cleanup(&diags);
    }
    if (json) {
        printf("{\"ok\":%s,\"policies\":%zu,\"validated\":%s,\"errors\":[%s]}\n",
               rc == CLI_OK ? "true" : "false", npolicies, schema ? "true" : "false",
               out.data ? out.data : "");
    } else if (rc == CLI_OK) {
        printf("ok: %zu %s parse%s\n", npolicies, npolicies == 1 ? "policy" : "policies",
               schema ? " and validate against the schema" : "");
    } else if (problems > 0) {
        fprintf(stderr, "%d problem%s found\n", problems, problems == 1 ? "" : "s");
    }
    buf_cleanup(&out);
    policy_schema_free(schema);
    policy_set_free(set);
    return rc;
}
