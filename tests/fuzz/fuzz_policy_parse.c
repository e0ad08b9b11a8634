/*
 * fuzz_policy_parse.c — libFuzzer target for the Cedar parser and
 * evaluator: the input is policy text; it must either parse or fail with a
 * positioned error (never crash, never an unpositioned error), and a
 * parsed set is authorized against a fixed request so the evaluator sees
 * every expression shape the fuzzer invents, without entities and with a
 * small hierarchy (so the scope index probes the request's ancestors too;
 * it may never evaluate more policies than the set has).  The same bytes are also
 * parsed as a single expression (the workflow-condition entry point).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "policy/policy.h"

/* alice in Group::"g" in Org::"o"; Photo::"p" in Album::"a"; view in Action::"all" */
static const char entities_json[] =
    "[{\"uid\":{\"type\":\"User\",\"id\":\"alice\"},\"attrs\":{\"age\":30},\"parents\":["
    "{\"type\":\"Group\",\"id\":\"g\"}]},{\"uid\":{\"type\":\"Group\",\"id\":\"g\"},"
    "\"parents\":[{\"type\":\"Org\",\"id\":\"o\"}]},{\"uid\":{\"type\":\"Photo\",\"id\":"
    "\"p\"},\"parents\":[{\"type\":\"Album\",\"id\":\"a\"}]},{\"uid\":{\"type\":\"Action\","
    "\"id\":\"view\"},\"parents\":[{\"type\":\"Action\",\"id\":\"all\"}]}]";

static struct policy_entities *fixture(void)
{
    static struct policy_entities *es;
    if (!es) {
        struct arena a;
        arena_init(&a);
        struct json_value *j;
        struct keel_err err;
        if (json_parse(&a, entities_json, sizeof entities_json - 1, NULL, &j, &err) < 0 ||
            policy_entities_parse_json(j, NULL, &es, &err) < 0)
            abort();
        arena_cleanup(&a);
    }
    return es;
}

static void check(const struct policy_set *set, const struct policy_response *resp)
{
    /* the decision obeys Cedar's rule: allow needs a permit reason */
    if (resp->decision == POLICY_ALLOW && resp->nreasons == 0) abort();
    for (size_t i = 0; i < resp->nreasons; i++)
        if (resp->reasons[i]->effect !=
            (resp->decision == POLICY_ALLOW ? POLICY_PERMIT : POLICY_FORBID))
            abort();
    if (resp->nevaluated > policy_set_count(set)) abort();
    if (resp->nreasons + resp->nerrors > resp->nevaluated) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct keel_err err;
    keel_err_clear(&err);
    struct policy_set *set = NULL;
    int rc = policy_set_parse(text, size, "fuzz.cedar", POLICY_PARSE_ID_ANNOTATIONS, &set, &err);
    if (rc < 0) {
        /* every parse error is positioned in the file */
        if (rc == KEEL_EINVAL && (err.line < 1 || err.column < 1 || strcmp(err.file, "fuzz.cedar")))
            abort();
    } else {
        struct policy_request req = {{"User", "alice", 4, 5}, {"Action", "view", 6, 4},
                                     {"Photo", "p", 5, 1}, {0, NULL}};
        struct policy_response resp;
        policy_response_init(&resp);
        policy_authorize(set, NULL, &req, &resp);
        check(set, &resp);
        policy_authorize(set, fixture(), &req, &resp);
        check(set, &resp);
        policy_response_cleanup(&resp);
        policy_set_hash(set);
        policy_set_free(set);
    }
    struct policy_expr *e = NULL;
    if (policy_expr_parse(text, "fuzz.yaml", 1, 1, &e, &err) == 0) {
        struct arena a;
        arena_init(&a);
        struct policy_value v;
        policy_expr_eval_value(e, NULL, &a, &v, &err);
        arena_cleanup(&a);
        policy_expr_free(e);
    }
    free(text);
    return 0;
}
