/*
 * cmd_workflow.c — `keel workflow`: offline work on workflow files.
 *
 *   keel workflow check [--json] [--config keel.yaml] FILE|DIR...
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

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

#define MAX_FILES 10000

struct files {
    char **items;
    size_t len, cap;
};

static void files_add(struct files *f, const char *path)
{
    if (f->len == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->items = realloc(f->items, f->cap * sizeof *f->items);
        if (!f->items) abort();
    }
    f->items[f->len] = strdup(path);
    if (!f->items[f->len]) abort();
    f->len++;
}

static void files_free(struct files *f)
{
    for (size_t i = 0; i < f->len; i++) free(f->items[i]);
    free(f->items);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool workflow_file_name(const char *n)
{
    size_t l = strlen(n);
    return n[0] != '.' && ((l > 5 && !strcmp(n + l - 5, ".yaml")) ||
                           (l > 4 && !strcmp(n + l - 4, ".yml")) ||
                           (l > 5 && !strcmp(n + l - 5, ".json")));
}

/* A folder argument stands for its *.yaml, *.yml and *.json files, sorted;
 * anything else is taken as a file (and reported if it cannot be read). */
static void expand(struct files *f, const char *arg)
{
    struct stat st;
    DIR *d = stat(arg, &st) == 0 && S_ISDIR(st.st_mode) ? opendir(arg) : NULL;
    if (!d) {
        files_add(f, arg);
        return;
    }
    size_t start = f->len;
    struct dirent *e;
    while ((e = readdir(d)) && f->len < MAX_FILES) {
        if (!workflow_file_name(e->d_name)) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s%s%s", arg, arg[strlen(arg) - 1] == '/' ? "" : "/",
                 e->d_name);
        files_add(f, path);
    }
    closedir(d);
    if (f->len > start) qsort(f->items + start, f->len - start, sizeof *f->items, by_name);
}

/* A name used by two files is ambiguous to the engine, which stores
 * versions by (name, hash): report it at the second file's name. */
static int unique_name(struct strmap *names, const struct workflow *wf, const char *file,
                       struct workflow_diags *d, struct keel_err *err)
{
    const char *prev = strmap_get(names, wf->name, strlen(wf->name));
    if (!prev) {
        strmap_put(names, wf->name, strlen(wf->name), (void *)file);
        return 0;
    }
    const struct json_value *v = json_get(wf->doc, "name");
    keel_fail_at(err, KEEL_EINVAL, file, v ? v->line : 0, v ? v->column : 0,
                 "workflow name '%s' is also used by %s; each workflow needs its own name",
                 wf->name, prev);
    snprintf(err->path, sizeof err->path, "/name");
    workflow_diags_add(d, err);
    return KEEL_EINVAL;
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
    struct files files = {0};
    for (int i = first; i < argc; i++) expand(&files, argv[i]);
    struct strmap names;
    strmap_init(&names);
    for (size_t i = 0; i < files.len; i++) {
        const char *file = files.items[i];
        struct workflow_diags d;
        workflow_diags_init(&d);
        struct keel_err err;
        keel_err_clear(&err);
        struct workflow *wf = NULL;
        int r = workflow_load_file(file, &wf, &d, &err);
        if (!r && cfg) r = workflow_check_config(wf, cfg, &d, &err);
        if (!r) r = unique_name(&names, wf, file, &d, &err);
        if (json) {
            if (i > 0) buf_putc(&out, ',');
            buf_puts(&out, "{\"file\":");
            json_write_string(&out, file, strlen(file));
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
    if (files.len == 0) {
        fprintf(stderr, "keel workflow: no *.yaml, *.yml or *.json files in the given folders\n");
        if (rc == CLI_OK) rc = CLI_NOTFOUND;
    }
    strmap_cleanup(&names);
    files_free(&files);
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
        "usage: keel workflow check [--json] [--config keel.yaml] FILE|DIR...\n"
        "       keel workflow schema\n"
        "\n"
        "check   Loads, validates and compiles each workflow file (YAML or JSON) and\n"
        "        prints \"ok <name> <hash>\" for each valid one; every problem is\n"
        "        printed as file:line:column: at /json/pointer: message.  A folder\n"
        "        stands for its *.yaml, *.yml and *.json files.  Two files with the\n"
        "        same workflow name are an error.\n"
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
