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

/* `check` is implemented in cmd_policy_check.c (the schema engineer's);
 * until that file lands, the subcommand says so. */
static int check_missing(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "keel policy check: not available in this build yet\n");
    return CLI_INTERNAL;
}

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

static void print_response(const struct policy_response *r, bool json)
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
        buf_puts(&o, "]}");
        puts(o.data);
        buf_cleanup(&o);
        return;
    }
    printf("%s\n", r->decision == POLICY_ALLOW ? "allow" : "deny");
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
        struct json_value *rj = json_object(&a);
        json_object_setc(&a, rj, "principal", json_object(&a));
        struct json_value *p = json_get(rj, "principal");
        json_object_setc(&a, p, "type", json_string(&a, req.principal.type, req.principal.type_len));
        json_object_setc(&a, p, "id", json_string(&a, req.principal.id, req.principal.id_len));
        json_object_setc(&a, rj, "action", p);
        json_object_setc(&a, rj, "resource", p);
        json_object_setc(&a, rj, "context", cj);
        struct policy_request tmp;
        /* the action decides the context type when a schema is given */
        struct json_value *ap = json_object(&a);
        json_object_setc(&a, ap, "type", json_string(&a, req.action.type, req.action.type_len));
        json_object_setc(&a, ap, "id", json_string(&a, req.action.id, req.action.id_len));
        json_object_setc(&a, rj, "action", ap);
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
    print_response(&resp, json);
    if (!json) printf("  policy set: %s\n", policy_set_hash(set));
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

/* ---- test --------------------------------------------------------------- */

struct test_stats {
    long requests, passed, failed, errors;
    bool verbose;
    bool use_schema;
};

/* Is the set of ids in the JSON array exp equal to got? */
static bool same_ids(const struct json_value *exp, const char **got, size_t ngot)
{
    size_t n = json_is(exp, JSON_ARRAY) ? exp->len : 0;
    if (n != ngot) return false;
    for (size_t i = 0; i < n; i++) {
        const struct json_value *e = exp->u.items[i];
        bool found = false;
        for (size_t k = 0; k < ngot && !found; k++)
            found = json_is(e, JSON_STRING) && !strcmp(e->u.s.str, got[k]);
        if (!found) return false;
    }
    return true;
}

static void print_ids(const char *label, const struct json_value *exp)
{
    printf("%s[", label);
    for (uint32_t i = 0; json_is(exp, JSON_ARRAY) && i < exp->len; i++)
        printf("%s%s", i ? ", " : "",
               json_is(exp->u.items[i], JSON_STRING) ? exp->u.items[i]->u.s.str : "?");
    printf("]");
}

/* Runs one test object: policies (text), entities (array), requests. */
static int run_test(const char *where, const char *policies, size_t plen,
                    const struct json_value *ents, const char *schema_text, size_t slen,
                    const struct json_value *links, const struct json_value *requests,
                    struct test_stats *st)
{
    struct keel_err err;
    keel_err_clear(&err);
    struct policy_set *set = NULL;
    struct policy_entities *es = NULL;
    struct policy_schema *schema = NULL;
    struct arena a;
    arena_init(&a);
    int rc = 0;
    if (schema_text && st->use_schema &&
        policy_schema_parse(schema_text, slen, where, &schema, &err) < 0) {
        if (st->verbose) {
            char m[2 * KEEL_ERR_MSG_MAX];
            fprintf(stderr, "%s: note: schema not used: %s\n", where,
                    keel_err_format(&err, m, sizeof m));
        }
        schema = NULL;
        keel_err_clear(&err);
    }
    if (policy_set_parse(policies, plen, where, 0, &set, &err) < 0 ||
        (links && policy_set_link_json(set, links, &err) < 0) ||
        policy_entities_parse_json(ents, schema, &es, &err) < 0) {
        char m[2 * KEEL_ERR_MSG_MAX];
        printf("%s: cannot load the test: %s\n", where, keel_err_format(&err, m, sizeof m));
        st->errors++;
        rc = -1;
        goto out;
    }
    struct policy_response resp;
    policy_response_init(&resp);
    for (uint32_t i = 0; json_is(requests, JSON_ARRAY) && i < requests->len; i++) {
        const struct json_value *rq = requests->u.items[i];
        const char *desc = json_get_str(rq, "description", "");
        st->requests++;
        struct policy_request req;
        arena_reset(&a);
        if (policy_request_from_json(&a, rq, schema, &req, &err) < 0) {
            char m[2 * KEEL_ERR_MSG_MAX];
            printf("%s: request %u (%s): cannot read the request: %s\n", where, i, desc,
                   keel_err_format(&err, m, sizeof m));
            st->failed++;
            continue;
        }
        policy_authorize(set, es, &req, &resp);
        const char *dec = json_get_str(rq, "decision", "");
        const char *reasons[4096], *errs[4096];
        size_t nr = resp.nreasons < 4096 ? resp.nreasons : 4096;
        size_t ne = resp.nerrors < 4096 ? resp.nerrors : 4096;
        for (size_t k = 0; k < nr; k++) reasons[k] = resp.reasons[k]->id;
        for (size_t k = 0; k < ne; k++) errs[k] = resp.errors[k].policy->id;
        bool ok = !strcmp(dec, resp.decision == POLICY_ALLOW ? "allow" : "deny") &&
                  same_ids(json_get(rq, "reason"), reasons, nr) &&
                  same_ids(json_get(rq, "errors"), errs, ne);
        if (ok) {
            st->passed++;
            continue;
        }
        st->failed++;
        printf("%s: request %u (%s): expected %s ", where, i, desc, dec);
        print_ids("reasons ", json_get(rq, "reason"));
        print_ids(" errors ", json_get(rq, "errors"));
        printf("; got %s reasons [", resp.decision == POLICY_ALLOW ? "allow" : "deny");
        for (size_t k = 0; k < nr; k++) printf("%s%s", k ? ", " : "", reasons[k]);
        printf("] errors [");
        for (size_t k = 0; k < ne; k++)
            printf("%s%s: %s", k ? ", " : "", errs[k], resp.errors[k].message);
        printf("]\n");
    }
    policy_response_cleanup(&resp);
out:
    policy_set_free(set);
    policy_entities_free(es);
    if (schema) policy_schema_free(schema);
    arena_cleanup(&a);
    return rc;
}

static char *join(const char *root, const char *rel)
{
    size_t n = strlen(root) + strlen(rel) + 2;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "%s/%s", root, rel);
    return p;
}

/* One integration-test JSON file: paths inside are relative to root. */
static int run_json_file(const char *path, const char *root, struct test_stats *st)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    keel_err_clear(&err);
    struct json_value *t;
    struct buf pol, sch;
    buf_init(&pol);
    buf_init(&sch);
    int rc = read_json(&a, path, &t, &err);
    if (rc == 0) {
        const char *pp = json_get_str(t, "policies", NULL), *ep = json_get_str(t, "entities", NULL),
                   *sp = json_get_str(t, "schema", NULL);
        if (!pp || !ep) {
            rc = keel_fail_at(&err, KEEL_EINVAL, path, t->line, t->column,
                              "a test needs \"policies\" and \"entities\" paths");
        } else {
            char *full = join(root, pp);
            rc = keel_read_file(full, POLICY_MAX_TEXT, &pol, &err);
            free(full);
            struct json_value *ents = NULL;
            if (rc == 0) {
                full = join(root, ep);
                rc = read_json(&a, full, &ents, &err);
                free(full);
            }
            if (rc == 0 && sp) {
                full = join(root, sp);
                if (keel_read_file(full, POLICY_SCHEMA_MAX_BYTES, &sch, &err) < 0) {
                    buf_reset(&sch);
                    keel_err_clear(&err);
                }
                free(full);
            }
            if (rc == 0)
                run_test(path, pol.data ? pol.data : "", pol.len, ents,
                         sch.len ? sch.data : NULL, sch.len, json_get(t, "links"),
                         json_get(t, "requests"), st);
        }
    }
    if (rc < 0) {
        char m[2 * KEEL_ERR_MSG_MAX];
        printf("%s: %s\n", path, keel_err_format(&err, m, sizeof m));
        st->errors++;
    }
    buf_cleanup(&pol);
    buf_cleanup(&sch);
    arena_cleanup(&a);
    return rc;
}

/* A JSONL corpus: one test per line with inline policies/entities/schema. */
static int run_jsonl_file(const char *path, struct test_stats *st)
{
    struct keel_err err;
    keel_err_clear(&err);
    struct buf b;
    buf_init(&b);
    if (keel_read_file(path, MAX_INPUT, &b, &err) < 0) {
        char m[2 * KEEL_ERR_MSG_MAX];
        printf("%s: %s\n", path, keel_err_format(&err, m, sizeof m));
        st->errors++;
        buf_cleanup(&b);
        return -1;
    }
    struct arena a;
    arena_init(&a);
    const char *p = b.data ? b.data : "", *end = p + b.len;
    int line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) nl = end;
        line++;
        if (nl > p) {
            arena_reset(&a);
            struct json_value *t;
            char where[600];
            snprintf(where, sizeof where, "%s:%d", path, line);
            struct json_parse_opts o = {.file = path, .dup = JSON_DUP_LAST};
            if (json_parse(&a, p, (size_t)(nl - p), &o, &t, &err) < 0) {
                char m[2 * KEEL_ERR_MSG_MAX];
                printf("%s: %s\n", where, keel_err_format(&err, m, sizeof m));
                st->errors++;
            } else {
                const struct json_value *pol = json_get(t, "policies"),
                                        *sch = json_get(t, "schema");
                const char *name = json_get_str(t, "name", NULL);
                if (name) snprintf(where, sizeof where, "%s:%d (%s)", path, line, name);
                if (!json_is(pol, JSON_STRING)) {
                    printf("%s: no \"policies\" text\n", where);
                    st->errors++;
                } else {
                    run_test(where, pol->u.s.str, pol->len, json_get(t, "entities"),
                             json_is(sch, JSON_STRING) ? sch->u.s.str : NULL,
                             json_is(sch, JSON_STRING) ? sch->len : 0, json_get(t, "links"),
                             json_get(t, "requests"), st);
                }
            }
        }
        p = nl + 1;
    }
    arena_cleanup(&a);
    buf_cleanup(&b);
    return 0;
}

static int cmd_test(int argc, char **argv)
{
    const char *root = ".";
    struct test_stats st = {.use_schema = true};
    int nfiles = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--root")) {
            if (i + 1 >= argc) return cli_usage_error(self(), "--root needs a directory");
            root = argv[++i];
        } else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v")) {
            st.verbose = true;
        } else if (!strcmp(argv[i], "--no-schema")) {
            st.use_schema = false;
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
        size_t n = strlen(argv[i]);
        if (n > 6 && !strcmp(argv[i] + n - 6, ".jsonl")) run_jsonl_file(argv[i], &st);
        else run_json_file(argv[i], root, &st);
    }
    if (!nfiles) return cli_usage_error(self(), "policy test needs test FILEs");
    printf("%ld requests: %ld passed, %ld failed; %ld tests could not be loaded\n", st.requests,
           st.passed, st.failed, st.errors);
    if (st.errors) return CLI_BADINPUT;
    return st.failed ? CLI_NO : CLI_OK;
}

/* ---- dispatch ----------------------------------------------------------- */

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} subcommands[] = {
    {"eval", cmd_eval},
    {"test", cmd_test},
    {"check", check_missing},
};

static int run(int argc, char **argv)
{
    if (argc < 2) return cli_usage_error(self(), "missing subcommand (eval, test or check)");
    for (size_t i = 0; i < KEEL_ARRAY_LEN(subcommands); i++)
        if (!strcmp(argv[1], subcommands[i].name)) return subcommands[i].run(argc - 1, argv + 1);
    return cli_usage_error(self(), "unknown subcommand '%s' (eval, test or check)", argv[1]);
}

const struct cli_command cmd_policy = {
    .name = "policy",
    .summary = "evaluate, test and check Cedar policies",
    .usage =
        "usage: keel policy eval FILE... --principal UID --action UID --resource UID\n"
        "                        [--context JSON|@FILE] [--entities FILE] [--schema S] [--json]\n"
        "       keel policy test [--root DIR] [--no-schema] [-v] FILE...\n"
        "       keel policy check FILE... [--schema S]\n"
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
        "check  validates policies against a schema (see docs/cli/policy.md).\n",
    .run = run,
};

static const struct cli_command *self(void)
{
    return &cmd_policy;
}
