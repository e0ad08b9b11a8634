/*
 * fuzz_policy_schema.c — libFuzzer target for the Cedar schema parsers
 * (human `.cedarschema` and JSON).  Each input is parsed three ways: with
 * format detection, as the human format and as JSON.  A schema that parses
 * is then exercised (type formatting, lookups, hierarchy queries) and used
 * to validate a small fixed policy set, so resolved schemas of any shape go
 * through the typechecker too.  Errors must carry a position; nothing may
 * crash or leak.
 */
#include "policy/policy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char fixed_policies[] =
    "permit(principal, action, resource) when { principal has a && principal.a == 1 };\n"
    "forbid(principal is A, action in [Action::\"a\"], resource) unless {\n"
    "  resource in principal || context.x.contains(1) || [1, 2].containsAll([3]) };\n"
    "permit(principal == A::\"x\", action, resource) when { resource.hasTag(\"t\") && "
    "resource.getTag(\"t\") like \"*\" };\n";

static void exercise(struct policy_schema *s)
{
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < s->nentities; i++) {
        const struct policy_entity_type *e = &s->entities[i];
        policy_type_format(&b, e->shape);
        if (e->tags) policy_type_format(&b, e->tags);
        if (policy_schema_entity(s, e->name) != e) abort();
        for (size_t k = 0; k < e->nparents; k++)
            if (!policy_schema_entity_descends(s, e->name, e->parents[k])) abort();
    }
    for (size_t i = 0; i < s->nactions; i++) {
        const struct policy_action *a = &s->actions[i];
        policy_type_format(&b, a->context);
        if (policy_schema_action_n(s, a->uid.type, a->uid.id, a->uid.id_len) != a) abort();
    }
    buf_cleanup(&b);
    struct policy_set *set = NULL;
    struct keel_err err;
    if (policy_set_parse(fixed_policies, sizeof fixed_policies - 1, "fixed", 0, &set, &err) == 0) {
        struct policy_diag_list d;
        policy_diag_list_init(&d);
        if (policy_validate(s, set, &d) < 0) abort();
        policy_diag_list_cleanup(&d);
        policy_set_free(set);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16)) return 0;
    const char *text = (const char *)data;
    int (*parsers[])(const char *, size_t, const char *, struct policy_schema **,
                     struct keel_err *) = {policy_schema_parse, policy_schema_parse_human,
                                           policy_schema_parse_json};
    for (size_t i = 0; i < sizeof parsers / sizeof parsers[0]; i++) {
        struct policy_schema *s = NULL;
        struct keel_err err;
        keel_err_clear(&err);
        int rc = parsers[i](text, size, "fuzz", &s, &err);
        if (rc == 0) {
            exercise(s);
            policy_schema_free(s);
        } else if (rc == KEEL_EINVAL && err.line == 0 && err.msg[0] == 0) {
            abort(); /* a parse error must say something */
        }
    }
    return 0;
}
