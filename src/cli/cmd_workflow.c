/*
 * cmd_workflow.c — `keel workflow`: offline work on workflow files.
 *
 *   keel workflow check [--json] [--config keel.yaml] FILE...
 *       loads, validates and compiles each file; prints "ok <name> <hash>"
 *       per valid file on stdout and every problem on stderr as
 *       "keel workflow: file:line:col: at /path: message".  With --config,
 *       also checks the tool servers, identities and approval groups the
 *       workflows use against keel.yaml.  Exit 0 if all are valid, 3 if any
 *       is invalid, 4 if a file does not exist.  Nothing is written.
 *   keel workflow schema
 *       prints Keel's workflow schema (JSON Schema 2020-12).
 *
 * Subcommands are a table, like the commands themselves.
 */
#include "cli.h"
#include "json/json.h"
#include "workflow/workflow.h"

#include <stdio.h>
#include <string.h>

extern const struct cli_command cmd_workflow;

static void json_err(struct buf *out, const struct keel_err *e)
{
    buf_puts(out, "{\"file\":");
    json_write_string(out, e->file, strlen(e->file));
    buf_printf(out, ",\"line\":%d,\"column\":%d,\"path\":", e->line, e->column);
    json_write_string(out, e->path, strlen(e->path));
    buf_puts(out, ",\"code\":");
    const char *code = keel_strerror(e->code ? e->code : KEEL_EINVAL);
    json_write_string(out, code, strlen(code));
    buf_puts(out, ",\"message\":");
    json_write_string(out, e->msg, strlen(e->msg));
    buf_puts(out, "}");
}

static void report(bool json, struct buf *out, const struct workflow_diags *d)
{
    for (size_t i = 0; i < d->len; i++) {
        if (json) {
            if (i) buf_putc(out, ',');
            json_err(out, &d->items[i]);
        } else {
            char msg[2 * KEEL_ERR_MSG_MAX];
            fprintf(stderr, "keel workflow: %s\n", keel_err_format(&d->items[i], msg, sizeof msg));
        }
    }
    if (d->truncated && !json)
        fprintf(stderr, "keel workflow: more than %d problems; fix these and run again\n",
                WORKFLOW_MAX_DIAGS);
}

static int check(int argc, char **argv)
{
    bool json = false;
    const char *config = NULL;
    int first = argc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) {
            if (++i >= argc) return cli_usage_error(&cmd_workflow, "%s needs a file", argv[i - 1]);
            config = argv[i];
        } else if (!strcmp(argv[i], "--")) {
            first = i + 1;
            break;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(&cmd_workflow, "unknown option '%s'", argv[i]);
        } else {
            first = i;
            break;
        }
    }
    if (first >= argc) return cli_usage_error(&cmd_workflow, "check needs at least one FILE");
    for (int i = first; i < argc; i++)
        if (argv[i][0] == '-' && argv[i][1])
            return cli_usage_error(&cmd_workflow, "options go before the files ('%s')", argv[i]);

    int rc = CLI_OK;
    struct keel_config *cfg = NULL;
    struct buf out;
    buf_init(&out);
    if (json) buf_puts(&out, "{\"files\":[");
    if (config) {
        struct workflow_diags d;
        workflow_diags_init(&d);
        struct keel_err err;
        keel_err_clear(&err);
        if (keel_config_load(config, &cfg, &d, &err)) {
            if (json) {
                buf_puts(&out, "],\"config\":{\"file\":");
                json_write_string(&out, config, strlen(config));
                buf_puts(&out, ",\"ok\":false,\"errors\":[");
                report(true, &out, &d);
                buf_puts(&out, "]}}\n");
                fputs(out.data, stdout);
            } else {
                report(false, &out, &d);
            }
            workflow_diags_cleanup(&d);
            buf_cleanup(&out);
            return cli_exit_for(err.code);
        }
        workflow_diags_cleanup(&d);
    }
    for (int i = first; i < argc; i++) {
        struct workflow_diags d;
        workflow_diags_init(&d);
        struct keel_err err;
        keel_err_clear(&err);
        struct workflow *wf = NULL;
        int r = workflow_load_file(argv[i], &wf, &d, &err);
        if (!r && cfg) r = workflow_check_config(wf, cfg, &d, &err);
        if (json) {
            if (i > first) buf_putc(&out, ',');
            buf_puts(&out, "{\"file\":");
            json_write_string(&out, argv[i], strlen(argv[i]));
            buf_printf(&out, ",\"ok\":%s", r ? "false" : "true");
            if (wf && !r) {
                buf_puts(&out, ",\"name\":");
                json_write_string(&out, wf->name, strlen(wf->name));
                buf_printf(&out, ",\"hash\":\"%s\",\"steps\":%zu", wf->hash, wf->nsteps);
            }
            if (r) {
                buf_puts(&out, ",\"errors\":[");
                report(true, &out, &d);
                buf_puts(&out, "]");
            }
            buf_puts(&out, "}");
        } else if (!r) {
            printf("ok %s %s\n", wf->name, wf->hash);
        } else {
            report(false, &out, &d);
        }
        if (r) {
            int code = cli_exit_for(err.code);
            /* Bad input outranks a missing file: both are reported. */
            if (rc == CLI_OK || code == CLI_BADINPUT) rc = code;
        }
        workflow_free(wf);
        workflow_diags_cleanup(&d);
    }
    if (json) {
        buf_puts(&out, "]}\n");
        fputs(out.data, stdout);
    }
    buf_cleanup(&out);
    keel_config_free(cfg);
    return rc;
}

static int schema(int argc, char **argv)
{
    if (argc > 1) return cli_usage_error(&cmd_workflow, "schema takes no arguments");
    fputs(workflow_schema_json, stdout);
    return CLI_OK;
}

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} subcommands[] = {
    {"check", check},
    {"schema", schema},
};

static int run(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error(&cmd_workflow, "missing subcommand (check or schema)");
    for (size_t i = 0; i < KEEL_ARRAY_LEN(subcommands); i++)
        if (!strcmp(subcommands[i].name, argv[1])) return subcommands[i].run(argc - 1, argv + 1);
    return cli_usage_error(&cmd_workflow, "unknown subcommand '%s' (check or schema)", argv[1]);
}

const struct cli_command cmd_workflow = {
    .name = "workflow",
    .summary = "check workflow files; print the workflow schema",
    .usage =
        "usage: keel workflow check [--json] [--config keel.yaml] FILE...\n"
        "       keel workflow schema\n"
        "\n"
        "check   Loads, validates and compiles each workflow file (YAML or JSON) and\n"
        "        prints \"ok <name> <hash>\" for each valid one; every problem is\n"
        "        printed as file:line:column: at /json/pointer: message.\n"
        "        --config FILE  also check tool servers, identities and approval\n"
        "                       groups against keel.yaml\n"
        "        --json         print {\"files\":[{file, ok, name, hash | errors}]}\n"
        "        Exit 0 if every file is valid, 3 if any is invalid, 4 if a file is\n"
        "        missing.\n"
        "schema  Prints Keel's workflow schema (JSON Schema 2020-12).\n"
        "\n"
        "The file format: docs/workflows.md.\n",
    .run = run,
};
