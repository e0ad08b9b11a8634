/*
 * testrun.c — runs Cedar's request/expected-decision test files against
 * the engine: the integration-test JSON (policies, entities and schema
 * given as paths relative to a root folder) and the JSONL corpus (one test
 * per line with everything inline).  For every request it compares the
 * decision, the reason set and the error set (policy ids) and prints each
 * mismatch.  Used by `keel policy test` and by tests/unit/test_policy_corpus.c.
 *
 * A test with "expectError": "policies" (or "entities") is a negative case:
 * that input must be rejected (the differential fuzzer writes these when
 * the reference implementation rejects its input).
 *
 * Policy ids are Cedar's positional ones (policy0, ...); with a schema,
 * entity data is read schema-directed (see entities.c); a schema that does
 * not parse is not used (noted with verbose).
 */
#include "internal.h"
#include "../json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT (256u << 20)

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

static void print_ids(const struct policy_test_opts *o, const char *label, const struct json_value *exp)
{
    fprintf(o->out, "%s[", label);
    for (uint32_t i = 0; json_is(exp, JSON_ARRAY) && i < exp->len; i++)
        fprintf(o->out, "%s%s", i ? ", " : "",
               json_is(exp->u.items[i], JSON_STRING) ? exp->u.items[i]->u.s.str : "?");
    fprintf(o->out, "]");
}

/* Runs one test object: policies (text), entities (array), requests. */
static int run_test(const char *where, const char *policies, size_t plen,
                    const struct json_value *ents, const char *schema_text, size_t slen,
                    const struct json_value *links, const struct json_value *requests,
                    const char *expect_error, const struct policy_test_opts *o,
                    struct policy_test_stats *st)
{
    struct keel_err err;
    keel_err_clear(&err);
    struct policy_set *set = NULL;
    struct policy_entities *es = NULL;
    struct policy_schema *schema = NULL;
    struct arena a;
    arena_init(&a);
    int rc = 0;
    if (schema_text && o->use_schema &&
        policy_schema_parse(schema_text, slen, where, &schema, &err) < 0) {
        if (o->verbose) {
            char m[2 * KEEL_ERR_MSG_MAX];
            fprintf(stderr, "%s: note: schema not used: %s\n", where,
                    keel_err_format(&err, m, sizeof m));
        }
        schema = NULL;
        keel_err_clear(&err);
    }
    if (expect_error) {
        /* A negative case: the policies (or the entities) must be rejected. */
        bool policies_ok = policy_set_parse(policies, plen, where, 0, &set, &err) == 0;
        bool ok = !strcmp(expect_error, "policies")
                      ? !policies_ok
                      : policies_ok && policy_entities_parse_json(ents, schema, &es, &err) < 0;
        st->requests++;
        if (ok) {
            st->passed++;
        } else {
            st->failed++;
            fprintf(o->out, "%s: expected the %s to be rejected, but they were accepted\n", where,
                    expect_error);
        }
        goto out;
    }
    if (policy_set_parse(policies, plen, where, 0, &set, &err) < 0 ||
        (links && policy_set_link_json(set, links, &err) < 0) ||
        policy_entities_parse_json(ents, schema, &es, &err) < 0) {
        char m[2 * KEEL_ERR_MSG_MAX];
        fprintf(o->out, "%s: cannot load the test: %s\n", where, keel_err_format(&err, m, sizeof m));
        st->load_errors++;
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
        const char *rq_expect = json_get_str(rq, "expectError", NULL);
        int rq_rc = policy_request_from_json(&a, rq, schema, &req, &err);
        if (rq_expect) {
            /* a malformed request the reference rejects */
            if (rq_rc < 0) {
                st->passed++;
            } else {
                st->failed++;
                fprintf(o->out, "%s: request %u (%s): expected the request to be rejected\n",
                        where, i, desc);
            }
            continue;
        }
        if (rq_rc < 0) {
            char m[2 * KEEL_ERR_MSG_MAX];
            fprintf(o->out, "%s: request %u (%s): cannot read the request: %s\n", where, i, desc,
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
        fprintf(o->out, "%s: request %u (%s): expected %s ", where, i, desc, dec);
        print_ids(o, "reasons ", json_get(rq, "reason"));
        print_ids(o, " errors ", json_get(rq, "errors"));
        fprintf(o->out, "; got %s reasons [", resp.decision == POLICY_ALLOW ? "allow" : "deny");
        for (size_t k = 0; k < nr; k++) fprintf(o->out, "%s%s", k ? ", " : "", reasons[k]);
        fprintf(o->out, "] errors [");
        for (size_t k = 0; k < ne; k++)
            fprintf(o->out, "%s%s: %s", k ? ", " : "", errs[k], resp.errors[k].message);
        fprintf(o->out, "]\n");
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
static int run_json_file(const char *path, const struct policy_test_opts *o,
                         struct policy_test_stats *st)
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
            char *full = join(o->root, pp);
            rc = keel_read_file(full, POLICY_MAX_TEXT, &pol, &err);
            free(full);
            struct json_value *ents = NULL;
            if (rc == 0) {
                full = join(o->root, ep);
                rc = read_json(&a, full, &ents, &err);
                free(full);
            }
            if (rc == 0 && sp) {
                full = join(o->root, sp);
                if (keel_read_file(full, POLICY_SCHEMA_MAX_BYTES, &sch, &err) < 0) {
                    buf_reset(&sch);
                    keel_err_clear(&err);
                }
                free(full);
            }
            if (rc == 0)
                run_test(path, pol.data ? pol.data : "", pol.len, ents,
                         sch.len ? sch.data : NULL, sch.len, json_get(t, "links"),
                         json_get(t, "requests"), json_get_str(t, "expectError", NULL), o, st);
        }
    }
    if (rc < 0) {
        char m[2 * KEEL_ERR_MSG_MAX];
        fprintf(o->out, "%s: %s\n", path, keel_err_format(&err, m, sizeof m));
        st->load_errors++;
    }
    buf_cleanup(&pol);
    buf_cleanup(&sch);
    arena_cleanup(&a);
    return rc;
}

/* A JSONL corpus: one test per line with inline policies/entities/schema. */
static int run_jsonl_file(const char *path, const struct policy_test_opts *o,
                          struct policy_test_stats *st)
{
    struct keel_err err;
    keel_err_clear(&err);
    struct buf b;
    buf_init(&b);
    if (keel_read_file(path, MAX_INPUT, &b, &err) < 0) {
        char m[2 * KEEL_ERR_MSG_MAX];
        fprintf(o->out, "%s: %s\n", path, keel_err_format(&err, m, sizeof m));
        st->load_errors++;
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
            struct json_parse_opts po = {.file = path, .dup = JSON_DUP_LAST};
            if (json_parse(&a, p, (size_t)(nl - p), &po, &t, &err) < 0) {
                char m[2 * KEEL_ERR_MSG_MAX];
                fprintf(o->out, "%s: %s\n", where, keel_err_format(&err, m, sizeof m));
                st->load_errors++;
            } else {
                const struct json_value *pol = json_get(t, "policies"),
                                        *sch = json_get(t, "schema");
                const char *name = json_get_str(t, "name", NULL);
                if (name) snprintf(where, sizeof where, "%s:%d (%s)", path, line, name);
                if (!json_is(pol, JSON_STRING)) {
                    fprintf(o->out, "%s: no \"policies\" text\n", where);
                    st->load_errors++;
                } else {
                    run_test(where, pol->u.s.str, pol->len, json_get(t, "entities"),
                             json_is(sch, JSON_STRING) ? sch->u.s.str : NULL,
                             json_is(sch, JSON_STRING) ? sch->len : 0, json_get(t, "links"),
                             json_get(t, "requests"), json_get_str(t, "expectError", NULL), o, st);
                }
            }
        }
        p = nl + 1;
    }
    arena_cleanup(&a);
    buf_cleanup(&b);
    return 0;
}


int policy_test_file(const char *path, const struct policy_test_opts *o,
                     struct policy_test_stats *st)
{
    size_t n = strlen(path);
    if (n > 6 && !strcmp(path + n - 6, ".jsonl")) return run_jsonl_file(path, o, st);
    return run_json_file(path, o, st);
}
