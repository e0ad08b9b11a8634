/*
 * cmd_run.c — `keel run start|list|show|cancel`: runs, through the HTTP API.
 * One table maps each subcommand to its function.
 */
#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const struct cli_command cmd_run;

static const char usage[] =
    "usage: keel run start WORKFLOW [--input JSON|@FILE] [--wait]\n"
    "       keel run list [--limit N]\n"
    "       keel run show RUN\n"
    "       keel run cancel RUN\n"
    "       keel run reconcile RUN --done [--result JSON|@FILE] [--comment TEXT]\n"
    "       keel run reconcile RUN --not-done [--comment TEXT]\n"
    "\n"
    "Starts, lists, shows and cancels runs on the daemon.  `start --wait` waits\n"
    "until the run stops running (ends, or waits for an approval or a timer) and\n"
    "prints its status.\n"
    "\n"
    "Common options: --json (print the API's JSON), --server URL (default\n"
    "$KEEL_SERVER or http://127.0.0.1:7400), --token TOKEN (default $KEEL_TOKEN or\n"
    "DATA/admin.token), --data DIR (default $KEEL_DATA or ./.keel).\n"
    "\n"
    "Exit codes: 0 ok; 1 `show` (or `start --wait`) of a run that failed; 2 usage; 3 bad input (input\n"
    "not JSON, input fails the workflow's schema); 4 no such run or workflow;\n"
    "5 missing or wrong token; 6 daemon not reachable; 7 run already ended.\n";

/* Positional arguments after the subcommand, and the shared flags. */
struct args {
    struct cli_client c;
    const char *pos[4];
    int npos;
    const char *input;
    const char *limit;
    bool wait;
    const char *result, *comment;
    int decision; /* reconcile: 1 done, 0 not done, -1 not given */
};

static int parse(int argc, char **argv, struct args *a)
{
    for (int i = 2; i < argc; i++) {
        int r = cli_client_flag(&cmd_run, &a->c, argc, argv, &i);
        if (r < 0) return -r;
        if (r) continue;
        if (!strcmp(argv[i], "--input") || !strcmp(argv[i], "--limit")) {
            if (i + 1 >= argc) return cli_usage_error(&cmd_run, "%s needs a value", argv[i]);
            if (argv[i][2] == 'i') a->input = argv[++i];
            else a->limit = argv[++i];
            continue;
        }
        if (!strcmp(argv[i], "--wait")) {
            a->wait = true;
            continue;
        }
        if (!strcmp(argv[i], "--done") || !strcmp(argv[i], "--not-done")) {
            a->decision = argv[i][2] == 'd';
            continue;
        }
        if (!strcmp(argv[i], "--result") || !strcmp(argv[i], "--comment")) {
            if (i + 1 >= argc) return cli_usage_error(&cmd_run, "%s needs a value", argv[i]);
            if (argv[i][2] == 'r') a->result = argv[++i];
            else a->comment = argv[++i];
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1])
            return cli_usage_error(&cmd_run, "unknown flag '%s'", argv[i]);
        if (a->npos >= 4) return cli_usage_error(&cmd_run, "too many arguments");
        a->pos[a->npos++] = argv[i];
    }
    return 0;
}

static int fail(struct keel_err *err)
{
    return cli_error("run", err);
}

static int start(struct args *a, struct arena *ar)
{
    if (a->npos != 1) return cli_usage_error(&cmd_run, "run start needs one WORKFLOW");
    struct keel_err err;
    keel_err_clear(&err);
    struct json_value *input = NULL;
    if (a->input) {
        struct buf text;
        buf_init(&text);
        const char *src = a->input;
        const char *file = "--input";
        if (src[0] == '@') {
            if (keel_read_file(src + 1, 1u << 20, &text, &err)) {
                buf_cleanup(&text);
                return fail(&err);
            }
            file = src + 1;
            src = text.data ? text.data : "";
        }
        struct json_parse_opts o = {.file = file};
        int rc = json_parse(ar, src, strlen(src), &o, &input, &err);
        buf_cleanup(&text);
        if (rc) return fail(&err);
    }
    struct json_value *body = json_object(ar);
    json_object_setc(ar, body, "workflow", json_cstr(ar, a->pos[0]));
    if (input) json_object_setc(ar, body, "input", input);
    struct buf b;
    buf_init(&b);
    json_write(&b, body, 0, NULL);
    struct json_value *out;
    int rc = cli_client_request(&a->c, "POST", "/v1/runs", b.data, ar, &out, &err);
    buf_cleanup(&b);
    if (rc) return fail(&err);
    const char *id = json_get_str(out, "id", "?");
    if (!a->wait) {
        if (a->c.json) cli_print_json(out);
        else printf("%s\n", id);
        return CLI_OK;
    }
    /* Long-poll until the run stops running. */
    struct buf path;
    buf_init(&path);
    buf_puts(&path, "/v1/runs/");
    cli_path_escape(&path, id);
    buf_puts(&path, "?wait=30");
    const char *status = "running";
    while (!strcmp(status, "running")) {
        rc = cli_client_request(&a->c, "GET", path.data, NULL, ar, &out, &err);
        if (rc) break;
        status = json_get_str(out, "status", "");
    }
    buf_cleanup(&path);
    if (rc) return fail(&err);
    if (a->c.json) cli_print_json(out);
    else printf("%s %s\n", id, status);
    return !strcmp(status, "failed") ? CLI_NO : CLI_OK;
}

static int list(struct args *a, struct arena *ar)
{
    if (a->npos) return cli_usage_error(&cmd_run, "run list takes no arguments");
    struct buf path;
    buf_init(&path);
    buf_puts(&path, "/v1/runs");
    if (a->limit) {
        buf_puts(&path, "?limit=");
        cli_path_escape(&path, a->limit);
    }
    struct keel_err err;
    keel_err_clear(&err);
    struct json_value *out;
    int rc = cli_client_request(&a->c, "GET", path.data, NULL, ar, &out, &err);
    buf_cleanup(&path);
    if (rc) return fail(&err);
    if (a->c.json) {
        cli_print_json(out);
        return CLI_OK;
    }
    struct json_value *runs = json_get(out, "runs");
    printf("%-32s %-24s %-16s %s\n", "RUN", "WORKFLOW", "STATUS", "UPDATED");
    for (uint32_t i = 0; json_is(runs, JSON_ARRAY) && i < runs->len; i++) {
        struct json_value *r = runs->u.items[i];
        printf("%-32s %-24s %-16s %s\n", json_get_str(r, "id", ""), json_get_str(r, "workflow", ""),
               json_get_str(r, "status", ""), json_get_str(r, "updated", ""));
    }
    return CLI_OK;
}

static int one(struct args *a, struct arena *ar, const char *method, const char *suffix,
               const char *what)
{
    if (a->npos != 1) return cli_usage_error(&cmd_run, "run %s needs one RUN id", what);
    struct buf path;
    buf_init(&path);
    buf_puts(&path, "/v1/runs/");
    cli_path_escape(&path, a->pos[0]);
    buf_puts(&path, suffix);
    struct keel_err err;
    keel_err_clear(&err);
    struct json_value *out;
    int rc = cli_client_request(&a->c, method, path.data, NULL, ar, &out, &err);
    buf_cleanup(&path);
    if (rc) return fail(&err);
    const char *status = json_get_str(out, "status", "");
    if (a->c.json) {
        cli_print_json(out);
    } else {
        printf("run       %s\n", json_get_str(out, "id", ""));
        printf("workflow  %s\n", json_get_str(out, "workflow", ""));
        printf("status    %s\n", status);
        if (json_get(out, "step")) printf("step      %s\n", json_get_str(out, "step", ""));
        if (json_get(out, "approval"))
            printf("approval  %s\n", json_get_str(out, "approval", ""));
        if (json_get(out, "error")) printf("error     %s\n", json_get_str(out, "error", ""));
        printf("updated   %s\n", json_get_str(out, "updated", ""));
        struct json_value *state = json_get(out, "state");
        if (state) {
            struct buf b;
            buf_init(&b);
            json_write(&b, state, JSON_WRITE_PRETTY, NULL);
            printf("state     %s\n", b.data);
            buf_cleanup(&b);
        }
    }
    return !strcmp(status, "failed") && !strcmp(what, "show") ? CLI_NO : CLI_OK;
}

static int show(struct args *a, struct arena *ar)
{
    return one(a, ar, "GET", "", "show");
}
static int cancel(struct args *a, struct arena *ar)
{
    return one(a, ar, "POST", "/cancel", "cancel");
}

/* keel run reconcile: a human's answer to a needs_reconcile run. */
static int reconcile(struct args *a, struct arena *ar)
{
    if (a->npos != 1) return cli_usage_error(&cmd_run, "run reconcile needs one RUN id");
    if (a->decision < 0)
        return cli_usage_error(&cmd_run,
                               "run reconcile needs --done (the effect happened) or --not-done");
    struct keel_err err;
    keel_err_clear(&err);
    struct json_value *body = json_object(ar);
    json_object_setc(ar, body, "decision", json_cstr(ar, a->decision ? "done" : "not_done"));
    if (a->comment) json_object_setc(ar, body, "comment", json_cstr(ar, a->comment));
    if (a->result) {
        struct buf text;
        buf_init(&text);
        const char *file = "--result";
        if (a->result[0] == '@') {
            file = a->result + 1;
            if (keel_read_file(file, 1u << 20, &text, &err)) {
                buf_cleanup(&text);
                return fail(&err);
            }
        } else {
            buf_puts(&text, a->result);
        }
        struct json_value *v = NULL;
        int rc = json_parse(ar, text.data ? text.data : "", text.len, NULL, &v, &err);
        buf_cleanup(&text);
        if (rc) {
            keel_err_prefix(&err, "%s", file);
            return fail(&err);
        }
        json_object_setc(ar, body, "result", v);
    }
    struct buf path;
    buf_init(&path);
    buf_puts(&path, "/v1/runs/");
    cli_path_escape(&path, a->pos[0]);
    buf_puts(&path, "/reconcile");
    struct json_value *out;
    struct buf bt;
    buf_init(&bt);
    json_write(&bt, body, 0, NULL);
    int rc = cli_client_request(&a->c, "POST", path.data, bt.data, ar, &out, &err);
    buf_cleanup(&bt);
    buf_cleanup(&path);
    if (rc) return fail(&err);
    if (a->c.json)
        cli_print_json(out);
    else
        printf("run %s reconciled (%s); status %s\n", json_get_str(out, "id", ""),
               a->decision ? "done" : "not done", json_get_str(out, "status", ""));
    return CLI_OK;
}

static const struct {
    const char *name;
    int (*fn)(struct args *a, struct arena *ar);
} subcommands[] = {
    {"start", start},
    {"list", list},
    {"show", show},
    {"cancel", cancel},
    {"reconcile", reconcile},
};

static int run(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error(&cmd_run, "missing subcommand (start, list, show, cancel, reconcile)");
    for (size_t i = 0; i < KEEL_ARRAY_LEN(subcommands); i++) {
        if (strcmp(subcommands[i].name, argv[1]) != 0) continue;
        struct args a;
        memset(&a, 0, sizeof a);
        a.decision = -1;
        int rc = parse(argc, argv, &a);
        if (rc) return rc;
        struct arena ar;
        arena_init(&ar);
        rc = subcommands[i].fn(&a, &ar);
        arena_cleanup(&ar);
        return rc;
    }
    return cli_usage_error(&cmd_run, "unknown subcommand '%s' (start, list, show, cancel, reconcile)",
                           argv[1]);
}

const struct cli_command cmd_run = {
    .name = "run",
    .summary = "start, list, show, cancel and reconcile runs",
    .usage = usage,
    .run = run,
};
