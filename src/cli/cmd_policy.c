/*
 * cmd_policy.c — `keel policy eval|test|check`: authorize one request from
 * the command line, run request/expected-decision test files (Cedar's
 * integration-test JSON and the one-test-per-line JSONL corpus), and (via
 * cmd_policy_check.c) validate policies against a schema.
 *
 * Exit codes: eval 0 allow / 1 deny; test 0 all match / 1 any mismatch;
 * 2 usage; 3 unreadable or invalid input; 4 missing file.
 */
#include "cli.h"
#include "../json/json.h"
#include "../policy/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* `check` is implemented in cmd_policy_check.c (schema validation). */
int policy_cmd_check(int argc, char **argv);
int policy_cmd_reload(int argc, char **argv);

#define MAX_INPUT (256u << 20)

static const struct cli_command *self(void);

/* Reads and parses a JSON file (or "-" for stdin is not supported). */
static int read_json(struct arena *a, const char *path, struct json_value **out,
                     struct keel_err *err)
{
    struct buf b;
    buf_init(&b);
    int rc = keel_read_file(path, MAX_INPUT, &b, err);
    if (rc == 0) {
        struct json_parse_opts o = {.file = path, .dup = JSON_DUP_LAST};
        rc = json_parse(a, b.data ? b.data : "", b.len, &o, out, err);
    }
    buf_cleanup(&b);
    return rc;
}

/* An entity uid from `Type::"id"` or {"type":..,"id":..}. */
static int parse_uid(struct arena *a, const char *s, const char *what, struct policy_euid *out,
                     struct keel_err *err)
{
    const char *p = s;
    while (*p == ' ') p++;
    if (*p == '{') {
        struct json_value *j;
        if (json_parse(a, s, strlen(s), NULL, &j, err) < 0) return KEEL_EINVAL;
        const char *t = json_get_str(j, "type", NULL), *id = json_get_str(j, "id", NULL);
        if (!t || !id)
            return keel_fail(err, KEEL_EINVAL, "%s: expected {\"type\": ..., \"id\": ...}", what);
        *out = (struct policy_euid){t, id, (uint32_t)strlen(t), (uint32_t)strlen(id)};
        return 0;
    }
    struct policy_expr *e;
    if (policy_expr_parse(s, what, 1, 1, &e, err) < 0) return KEEL_EINVAL;
    struct policy_value v;
    int rc = policy_expr_eval_value(e, NULL, a, &v, err);
    if (rc == 0 && v.type != POLICY_ENTITY)
        rc = keel_fail(err, KEEL_EINVAL, "%s: expected an entity uid like User::\"alice\"", what);
    if (rc == 0) {
        const struct policy_euid *u = v.u.entity;
        out->type = arena_strndup(a, u->type, u->type_len);
        out->type_len = u->type_len;
        out->id = arena_strndup(a, u->id, u->id_len);
        out->id_len = u->id_len;
    }
    policy_expr_free(e);
    return rc;
}

static int load_schema(const char *path, struct policy_schema **out, struct keel_err *err)
{
    struct buf b;
    buf_init(&b);
    int rc = keel_read_file(path, POLICY_SCHEMA_MAX_BYTES, &b, err);
    if (rc == 0) rc = policy_schema_parse(b.data ? b.data : "", b.len, path, out, err);
    buf_cleanup(&b);
    return rc;
}

static int add_policy_file(struct policy_set *set, const char *path, struct keel_err *err)
{
    struct buf b;
    buf_init(&b);
    int rc = keel_read_file(path, POLICY_MAX_TEXT, &b, err);
    if (rc == 0) rc = policy_set_add_text(set, b.data ? b.data : "", b.len, path, err);
    buf_cleanup(&b);
    return rc;
}

static void print_response(const struct policy_response *r, const char *hash, bool json)
{
    if (json) {
        struct buf o;
        buf_init(&o);
        buf_printf(&o, "{\"decision\":\"%s\",\"reasons\":[",
                   r->decision == POLICY_ALLOW ? "allow" : "deny");
        for (size_t i = 0; i < r->nreasons; i++) {
            if (i) buf_putc(&o, ',');
            json_write_string(&o, r->reasons[i]->id, strlen(r->reasons[i]->id));
        }
        buf_puts(&o, "],\"errors\":[");
        for (size_t i = 0; i < r->nerrors; i++) {
            if (i) buf_putc(&o, ',');
            buf_puts(&o, "{\"policy\":");
            json_write_string(&o, r->errors[i].policy->id, strlen(r->errors[i].policy->id));
            buf_puts(&o, ",\"message\":");
            json_write_string(&o, r->errors[i].message, strlen(r->errors[i].message));
            buf_putc(&o, '}');
        }
        buf_puts(&o, "],\"approvals\":[");
        for (size_t i = 0; i < r->napprovals; i++) {
            if (i) buf_putc(&o, ',');
            json_write_string(&o, r->approvals[i], strlen(r->approvals[i]));
        }
        buf_printf(&o, "],\"policySet\":\"%s\"}", hash);
        puts(o.data);
        buf_cleanup(&o);
        return;
    }
    printf("%s\n", r->decision == POLICY_ALLOW ? "allow" : "deny");
    printf("  policy set: %s\n", hash);
    for (size_t i = 0; i < r->nreasons; i++)
        printf("  reason: %s (%s:%d:%d)\n", r->reasons[i]->id, r->reasons[i]->file,
               r->reasons[i]->line, r->reasons[i]->column);
    for (size_t i = 0; i < r->nerrors; i++)
        printf("  error: %s: %s:%s\n", r->errors[i].policy->id, r->errors[i].policy->file,
               r->errors[i].message);
    for (size_t i = 0; i < r->napprovals; i++)
        printf("  needs approval by: %s\n", r->approvals[i]);
}

/* ---- eval --------------------------------------------------------------- */

static int cmd_eval(int argc, char **argv)
{
    const char *principal = NULL, *action = NULL, *resource = NULL, *context = NULL,
               *entities = NULL, *schema_path = NULL;
    bool json = false;
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    keel_err_clear(&err);
    struct policy_set *set = policy_set_new(POLICY_PARSE_ID_ANNOTATIONS);
    struct policy_entities *es = NULL;
    struct policy_schema *schema = NULL;
    int rc = CLI_OK, nfiles = 0;
    for (int i = 1; i < argc; i++) {
        const char **slot = NULL;
        if (!strcmp(argv[i], "--principal")) slot = &principal;
        else if (!strcmp(argv[i], "--action")) slot = &action;
        else if (!strcmp(argv[i], "--resource")) slot = &resource;
        else if (!strcmp(argv[i], "--context")) slot = &context;
        else if (!strcmp(argv[i], "--entities")) slot = &entities;
        else if (!strcmp(argv[i], "--schema")) slot = &schema_path;
        else if (!strcmp(argv[i], "--json")) {
            json = true;
            continue;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            rc = cli_usage_error(self(), "unknown option '%s'", argv[i]);
            goto out;
        } else {
            if (add_policy_file(set, argv[i], &err) < 0) goto fail;
            nfiles++;
            continue;
        }
        if (i + 1 >= argc) {
            rc = cli_usage_error(self(), "%s needs a value", argv[i]);
            goto out;
        }
        *slot = argv[++i];
    }
    if (!nfiles || !principal || !action || !resource) {
        rc = cli_usage_error(self(), "policy eval needs policy FILEs, --principal, --action "
                                     "and --resource");
        goto out;
    }
    if (schema_path && load_schema(schema_path, &schema, &err) < 0) goto fail;
    struct policy_request req;
    memset(&req, 0, sizeof req);
    if (parse_uid(&a, principal, "--principal", &req.principal, &err) < 0 ||
        parse_uid(&a, action, "--action", &req.action, &err) < 0 ||
        parse_uid(&a, resource, "--resource", &req.resource, &err) < 0)
        goto fail;
    if (context) {
        struct json_value *cj;
        if (context[0] == '@') {
            if (read_json(&a, context + 1, &cj, &err) < 0) goto fail;
        } else if (json_parse(&a, context, strlen(context), NULL, &cj, &err) < 0) {
            keel_err_prefix(&err, "--context");
            goto fail;
        }
        /* Reuse the request reader so a schema types the context by the action. */
        const struct policy_euid *uids[] = {&req.principal, &req.action, &req.resource};
        static const char *const names[] = {"principal", "action", "resource"};
        struct json_value *rj = json_object(&a);
        for (int k = 0; k < 3; k++) {
            struct json_value *u = json_object(&a);
            json_object_setc(&a, u, "type", json_string(&a, uids[k]->type, uids[k]->type_len));
            json_object_setc(&a, u, "id", json_string(&a, uids[k]->id, uids[k]->id_len));
            json_object_setc(&a, rj, names[k], u);
        }
        json_object_setc(&a, rj, "context", cj);
        struct policy_request tmp;
        if (policy_request_from_json(&a, rj, schema, &tmp, &err) < 0) goto fail;
        req.context = tmp.context;
    }
    if (entities) {
        struct json_value *ej;
        if (read_json(&a, entities, &ej, &err) < 0) goto fail;
        if (policy_entities_parse_json(ej, schema, &es, &err) < 0) {
            if (!err.file[0]) snprintf(err.file, sizeof err.file, "%s", entities);
            goto fail;
        }
    }
    struct policy_response resp;
    policy_response_init(&resp);
    policy_authorize(set, es, &req, &resp);
    print_response(&resp, policy_set_hash(set), json);
    rc = resp.decision == POLICY_ALLOW ? CLI_OK : CLI_NO;
    policy_response_cleanup(&resp);
    goto out;
fail:
    rc = cli_error("policy eval", &err);
out:
    policy_entities_free(es);
    if (schema) policy_schema_free(schema);
    policy_set_free(set);
    arena_cleanup(&a);
    return rc;
}

static int cmd_test(int argc, char **argv)
{
    struct policy_test_stats st = {0};
    struct policy_test_opts opts = {.root = ".", .use_schema = true, .out = stdout};
    int nfiles = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--root")) {
            if (i + 1 >= argc) return cli_usage_error(self(), "--root needs a directory");
            opts.root = argv[++i];
        } else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v")) {
            opts.verbose = true;
        } else if (!strcmp(argv[i], "--no-schema")) {
            opts.use_schema = false;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error(self(), "unknown option '%s'", argv[i]);
        }
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--root")) {
            i++;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1]) continue;
        nfiles++;
        policy_test_file(argv[i], &opts, &st);
    }
    if (!nfiles) return cli_usage_error(self(), "policy test needs test FILEs");
    printf("%ld requests: %ld passed, %ld failed; %ld tests could not be loaded\n", st.requests,
           st.passed, st.failed, st.load_errors);
    if (st.load_errors) return CLI_BADINPUT;
    return st.failed ? CLI_NO : CLI_OK;
}

/* ---- dispatch ----------------------------------------------------------- */

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} subcommands[] = {
    {"eval", cmd_eval},
    {"test", cmd_test},
    {"check", policy_cmd_check},
    {"reload", policy_cmd_reload},
};

static int run(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error(self(), "missing subcommand (eval, test, check or reload)");
    for (size_t i = 0; i < KEEL_ARRAY_LEN(subcommands); i++)
        if (!strcmp(argv[1], subcommands[i].name)) return subcommands[i].run(argc - 1, argv + 1);
    return cli_usage_error(self(), "unknown subcommand '%s' (eval, test, check or reload)", argv[1]);
}

const struct cli_command cmd_policy = {
    .name = "policy",
    .summary = "evaluate, test and check Cedar policies",
    .usage =
        "usage: keel policy eval FILE... --principal UID --action UID --resource UID\n"
        "                        [--context JSON|@FILE] [--entities FILE] [--schema S] [--json]\n"
        "       keel policy test [--root DIR] [--no-schema] [-v] FILE...\n"
        "       keel policy check FILE... [--schema S]\n"
        "       keel policy reload [--json] [--server URL] [--token T]\n"
        "\n"
        "eval   authorizes one request against the policies in FILEs and prints the\n"
        "       decision, the policies that decided it and any policy that errored.\n"
        "       UIDs are Cedar (User::\"alice\") or JSON ({\"type\":..,\"id\":..}).\n"
        "       Policy ids are @id(\"...\") when given, else policy0, policy1, ...\n"
        "       Exit 0 on allow, 1 on deny.\n"
        "test   runs Cedar integration tests: JSON files whose \"policies\", \"entities\"\n"
        "       and \"schema\" paths are relative to --root, or JSONL files with one\n"
        "       inline test per line.  Checks decision, reasons and errors of every\n"
        "       request; prints each mismatch and the counts.  Exit 1 on any mismatch.\n"
        "check  validates policies against a schema (see docs/cli/policy.md).\n"
        "reload asks the daemon to reload policies, keel.yaml and workflows; a set\n"
        "       that fails to load is refused and the old one stays (as SIGHUP).\n",
    .run = run,
};

static const struct cli_command *self(void)
{
    return &cmd_policy;
}
