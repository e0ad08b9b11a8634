/*
 * test_policy.c — unit tests of the Cedar engine: parser (including error
 * positions), evaluator (operators, extension types, error cases),
 * entities, authorization semantics, templates, ids, hashing, approvals,
 * and the expression API used by workflow conditions.
 */
#include "test.h"
#include "json_fixture.h"

#include "json/json.h"
#include "policy/policy.h"

/* Evaluates expr with vars (JSON) and formats the result in Cedar syntax,
 * or "error: <message>". */
static const char *eval_str(const char *expr, const char *vars)
{
    static char out[1024];
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    keel_err_clear(&err);
    struct policy_expr *e = NULL;
    if (policy_expr_parse(expr, "t", 1, 1, &e, &err) < 0) {
        snprintf(out, sizeof out, "parse error: %d:%d: %s", err.line, err.column, err.msg);
        arena_cleanup(&a);
        return out;
    }
    struct policy_value v;
    if (policy_expr_eval_value(e, vars ? test_parse(&a, vars) : NULL, &a, &v, &err) < 0) {
        snprintf(out, sizeof out, "error: %s", err.msg);
    } else {
        struct buf b;
        buf_init(&b);
        policy_value_format(&b, &v);
        snprintf(out, sizeof out, "%s", b.data);
        buf_cleanup(&b);
    }
    policy_expr_free(e);
    arena_cleanup(&a);
    return out;
}

/* Data-driven evaluator cases: expression -> printed value, or a prefix
 * of the error. */
static const struct {
    const char *expr;
    const char *want;
} eval_cases[] = {
    {"1 + 2 * 3", "7"},
    {"-9223372036854775808", "-9223372036854775808"},
    {"9223372036854775807 + 1", "error: integer overflow"},
    {"-9223372036854775807 - 2", "error: integer overflow"},
    {"4611686018427387904 * 2", "error: integer overflow"},
    {"-(-9223372036854775808)", "error: integer overflow"},
    {"!true || false", "false"},
    {"false && (1 + true)", "false"},
    {"true || 1", "true"},
    {"1 || true", "error: type error: expected bool, got long"},
    {"if 1 < 2 then \"a\" else 3", "\"a\""},
    {"if 1 then 1 else 2", "error: type error"},
    {"1 == \"1\"", "false"},
    {"[1, 2, 2] == [2, 1]", "true"},
    {"{a: 1, b: [true]} == {b: [true], a: 1}", "true"},
    {"[1, 2, 3].contains(2)", "true"},
    {"[1, 2, 3].containsAll([3, 1])", "true"},
    {"[1, 2, 3].containsAny([7, 8])", "false"},
    {"[].isEmpty()", "true"},
    {"\"a\".contains(1)", "error: type error: expected set"},
    {"\"hello world\" like \"h*o w*\"", "true"},
    {"\"a*b\" like \"a\\*b\"", "true"},
    {"\"axb\" like \"a\\*b\"", "false"},
    {"\"\" like \"*\"", "true"},
    {"{a: {b: 1}} has a.b", "true"},
    {"{a: {b: 1}} has a.c", "false"},
    {"{a: 1}.b", "error: record has no attribute `b`"},
    {"{\"x y\": 1}[\"x y\"]", "1"},
    {"User::\"a\" is User", "true"},
    {"User::\"a\" is Group", "false"},
    {"User::\"a\" in User::\"a\"", "true"},
    {"User::\"a\" in [User::\"b\", User::\"a\"]", "true"},
    {"User::\"a\" in [1]", "error: type error"},
    {"1 in User::\"a\"", "error: type error: expected entity"},
    {"User::\"a\".name", "error: entity User::\"a\" does not exist"},
    {"User::\"a\" has name", "false"},
    {"decimal(\"1.23\").lessThan(decimal(\"1.2301\"))", "true"},
    {"decimal(\"-0.5\").greaterThanOrEqual(decimal(\"-0.5\"))", "true"},
    {"decimal(\"1.23456\")", "error: invalid decimal"},
    {"decimal(\"922337203685477.5808\")", "error: invalid decimal"},
    {"decimal(\"-922337203685477.5808\")", "decimal(\"-922337203685477.5808\")"},
    {"decimal(\"1.5\") == decimal(\"1.50\")", "true"},
    {"ip(\"10.1.2.3\").isInRange(ip(\"10.0.0.0/8\"))", "true"},
    {"ip(\"10.0.0.0/7\").isInRange(ip(\"10.0.0.0/8\"))", "false"},
    {"ip(\"127.0.0.2\").isLoopback()", "true"},
    {"ip(\"::1\").isLoopback()", "true"},
    {"ip(\"224.1.2.3\").isMulticast()", "true"},
    {"ip(\"ff02::1\").isIpv6()", "true"},
    {"ip(\"1.2.3.4\").isIpv4()", "true"},
    {"ip(\"01.2.3.4\")", "error: invalid ip"},
    {"ip(\"1.2.3.4/33\")", "error: invalid ip"},
    {"ip(\"1.2.3.4/08\")", "error: invalid ip"},
    {"ip(\"::ffff:1.2.3.4\")", "error: invalid ip"},
    {"datetime(\"2024-01-01\") < datetime(\"2024-01-01T00:00:00.001Z\")", "true"},
    {"datetime(\"2024-01-01T10:00:00+0200\") == datetime(\"2024-01-01T08:00:00Z\")", "true"},
    {"datetime(\"2024-02-30\")", "error: invalid datetime"},
    {"datetime(\"2024-01-01T25:00:00Z\")", "error: invalid datetime"},
    {"datetime(\"2024-03-01\").offset(duration(\"-1d\")) == datetime(\"2024-02-29\")", "true"},
    {"datetime(\"2024-01-02\").durationSince(datetime(\"2024-01-01\")) == duration(\"24h\")",
     "true"},
    {"datetime(\"1969-12-31T23:00:00Z\").toDate() == datetime(\"1969-12-31\")", "true"},
    {"datetime(\"1969-12-31T23:00:00Z\").toTime() == duration(\"23h\")", "true"},
    {"duration(\"1d2h3m4s5ms\").toMilliseconds()", "93784005"},
    {"duration(\"-90m\").toHours()", "-1"},
    {"duration(\"1h1d\")", "error: invalid duration"},
    {"duration(\"\")", "error: invalid duration"},
    {"duration(\"1m1ms\").toSeconds()", "60"},
    {"decimal(\"1.0\", \"2.0\")", "error: wrong number of arguments"},
    {"input.n + 1", "42"},
    {"state.tags.contains(\"x\") && input has n", "true"},
    {"result.ok", "error: variable `result` is not defined here"},
    {"state.owner == User::\"alice\"", "true"},
};

TEST(evaluator_cases)
{
    const char *vars = "{\"input\": {\"n\": 41}, \"state\": {\"tags\": [\"x\"], \"owner\": "
                       "{\"__entity\": {\"type\": \"User\", \"id\": \"alice\"}}, \"gone\": null}}";
    for (size_t i = 0; i < KEEL_ARRAY_LEN(eval_cases); i++) {
        const char *got = eval_str(eval_cases[i].expr, vars);
        if (strncmp(got, eval_cases[i].want, strlen(eval_cases[i].want)) != 0)
            TEST_FAIL_AT(__FILE__, __LINE__, "%s: got %s, want %s", eval_cases[i].expr, got,
                         eval_cases[i].want);
    }
}

/* Parse errors carry file:line:column and say what was expected. */
static const struct {
    const char *text;
    int line, column;
    const char *msg;
} parse_errors[] = {
    {"permit(principal, action, resource) when { 1 + };", 1, 48, "expected an expression"},
    {"permit(principal, action, resource)", 1, 36, "expected ';'"},
    {"permit(principal,\n  action == User::\"x\", resource);", 2, 3, "must name actions"},
    {"permit(principal, action, resource)\nwhen { principal.x = 1 };", 2, 20, "use '=='"},
    {"permit(principal, action, resource) when { foo };", 1, 44, "unknown variable `foo`"},
    {"permit(principal, action, resource) when { 5 / 2 };", 1, 46, "no division"},
    {"forbid(principal, action, resource) when { \"abc };", 1, 44, "unterminated string"},
    {"permit(principal, action, resource) when { x.y(1) };", 1, 44, "unknown variable"},
    {"permit(principal, action, resource) when { [1].frob() };", 1, 48, "unknown method"},
    {"permit(principal, action, resource) when { context.x == 99999999999999999999 };", 1, 57,
     "out of range"},
    {"permit(principal, action, resource) when { ?principal };", 1, 44, "slots"},
    {"@a @a permit(principal, action, resource);", 1, 5, "duplicate annotation"},
    {"permit(principal is User::\"a\", action, resource);", 1, 21, "entity type"},
    {"permit(principal, action, resource) when { };", 1, 44, "empty condition"},
    {"permit(principal, action, resource) when { !!!!!true };", 1, 48, "too many unary"},
    {"permit(principal, action, resource, context);", 1, 35, "exactly three"},
    {"permit(principal, action, resource) when { \"\\q\" };", 1, 44, "unknown escape"},
    {"permit(principal, action, resource) when { !-1 };", 1, 45, "cannot be mixed"},
};

TEST(parse_error_positions)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(parse_errors); i++) {
        struct policy_set *set = NULL;
        struct keel_err err;
        keel_err_clear(&err);
        int rc = policy_set_parse(parse_errors[i].text, strlen(parse_errors[i].text), "p.cedar", 0,
                                  &set, &err);
        if (rc == 0) {
            TEST_FAIL_AT(__FILE__, __LINE__, "parsed: %s", parse_errors[i].text);
            policy_set_free(set);
            continue;
        }
        CHECK_INT(rc, KEEL_EINVAL);
        CHECK_STR(err.file, "p.cedar");
        if (err.line != parse_errors[i].line || err.column != parse_errors[i].column ||
            !strstr(err.msg, parse_errors[i].msg))
            TEST_FAIL_AT(__FILE__, __LINE__, "%s: got %d:%d: %s; want %d:%d: ...%s...",
                         parse_errors[i].text, err.line, err.column, err.msg,
                         parse_errors[i].line, parse_errors[i].column, parse_errors[i].msg);
    }
}

TEST(parse_scopes_annotations_ids)
{
    const char *text = "// comment\n"
                       "@id(\"allow-view\") @approval(\"leads\")\n"
                       "permit(principal in Group::\"g\", action in [Action::\"view\", "
                       "Action::\"edit\"], resource is Doc in Folder::\"f\");\n"
                       "forbid(principal == User::\"eve\", action, resource) unless { false };\n";
    struct policy_set *set;
    struct keel_err err;
    REQUIRE(policy_set_parse(text, strlen(text), "a.cedar", POLICY_PARSE_ID_ANNOTATIONS, &set,
                             &err) == 0);
    CHECK_INT(policy_set_count(set), 2);
    const struct policy *p0 = policy_set_at(set, 0), *p1 = policy_set_at(set, 1);
    CHECK_STR(p0->id, "allow-view");
    CHECK_STR(p1->id, "policy1");
    CHECK_STR(policy_annotation(p0, "approval"), "leads");
    CHECK(policy_annotation(p0, "nope") == NULL);
    CHECK_INT(p0->line, 2);
    CHECK_INT(p0->principal.op, POLICY_SCOPE_IN);
    CHECK_INT(p0->action.op, POLICY_SCOPE_IN_SET);
    CHECK_INT(p0->action.neuids, 2);
    CHECK_INT(p0->resource.op, POLICY_SCOPE_IS_IN);
    CHECK_STR(p0->resource.is_type, "Doc");
    CHECK_INT(p1->effect, POLICY_FORBID);
    CHECK_INT(p1->nconds, 1);
    CHECK(!p1->conds[0].when);
    CHECK(policy_set_find(set, "allow-view") == p0);
    policy_set_free(set);
    /* Without the flag, ids are positional even when @id is present. */
    REQUIRE(policy_set_parse(text, strlen(text), "a.cedar", 0, &set, &err) == 0);
    CHECK_STR(policy_set_at(set, 0)->id, "policy0");
    policy_set_free(set);
}

/* A photo-sharing fixture: a hierarchy of depth 3 and a few policies. */
static const char *fixture_entities =
    "[{\"uid\": {\"type\": \"User\", \"id\": \"alice\"}, \"attrs\": {\"level\": 5, \"tags\": [\"a\"]},"
    "  \"parents\": [{\"type\": \"Group\", \"id\": \"eng\"}]},"
    " {\"uid\": {\"type\": \"Group\", \"id\": \"eng\"}, \"attrs\": {},"
    "  \"parents\": [{\"type\": \"Group\", \"id\": \"staff\"}]},"
    " {\"uid\": {\"type\": \"Group\", \"id\": \"staff\"}, \"attrs\": {},"
    "  \"parents\": [{\"type\": \"Group\", \"id\": \"all\"}]},"
    " {\"uid\": {\"type\": \"User\", \"id\": \"bob\"}, \"attrs\": {\"level\": 1}, \"parents\": [],"
    "  \"tags\": {\"clearance\": \"high\"}},"
    " {\"uid\": {\"type\": \"Doc\", \"id\": \"d1\"}, \"attrs\": {\"owner\": {\"__entity\": "
    "   {\"type\": \"User\", \"id\": \"bob\"}}}, \"parents\": [{\"type\": \"Folder\", \"id\": \"f\"}]}]";

static const char *fixture_policies =
    "@id(\"staff-read\")\n"
    "permit(principal in Group::\"all\", action == Action::\"read\", resource);\n"
    "@id(\"owner-edit\") @approval(\"leads\")\n"
    "permit(principal, action == Action::\"edit\", resource) when { resource.owner == principal };\n"
    "@id(\"low-level\")\n"
    "forbid(principal, action, resource in Folder::\"f\") when { principal.level < 2 && "
    "!(principal.hasTag(\"clearance\")) };\n"
    "@id(\"buggy\")\n"
    "permit(principal, action == Action::\"read\", resource) when { principal.missing };\n";

struct fixture {
    struct arena a;
    struct policy_set *set;
    struct policy_entities *es;
    struct policy_response resp;
};

static int fixture_init(struct fixture *f)
{
    struct keel_err err;
    arena_init(&f->a);
    policy_response_init(&f->resp);
    if (policy_set_parse(fixture_policies, strlen(fixture_policies), "fx.cedar",
                         POLICY_PARSE_ID_ANNOTATIONS, &f->set, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    if (policy_entities_parse_json(test_parse(&f->a, fixture_entities), NULL, &f->es, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static void fixture_cleanup(struct fixture *f)
{
    policy_set_free(f->set);
    policy_entities_free(f->es);
    policy_response_cleanup(&f->resp);
    arena_cleanup(&f->a);
}

static void decide(struct fixture *f, const char *p, const char *act, const char *r)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"principal\": {\"type\": \"User\", \"id\": \"%s\"}, \"action\": {\"type\": "
             "\"Action\", \"id\": \"%s\"}, \"resource\": {\"type\": \"Doc\", \"id\": \"%s\"}, "
             "\"context\": {}}",
             p, act, r);
    struct policy_request req;
    struct keel_err err;
    if (policy_request_from_json(&f->a, test_parse(&f->a, text), NULL, &req, &err) < 0) abort();
    policy_authorize(f->set, f->es, &req, &f->resp);
}

TEST(authorize_semantics)
{
    struct fixture f;
    REQUIRE(fixture_init(&f) == 0);
    /* alice is in all via eng -> staff -> all (transitive); "buggy" errors and is skipped. */
    decide(&f, "alice", "read", "d1");
    CHECK_INT(f.resp.decision, POLICY_ALLOW);
    REQUIRE(f.resp.nreasons == 1);
    CHECK_STR(f.resp.reasons[0]->id, "staff-read");
    REQUIRE(f.resp.nerrors == 1);
    CHECK_STR(f.resp.errors[0].policy->id, "buggy");
    CHECK_CONTAINS(f.resp.errors[0].message, "no attribute `missing`");
    CHECK_CONTAINS(f.resp.errors[0].message, "8:");
    /* bob owns d1: edit allowed with approval by leads. */
    decide(&f, "bob", "edit", "d1");
    CHECK_INT(f.resp.decision, POLICY_ALLOW);
    REQUIRE(f.resp.napprovals == 1);
    CHECK_STR(f.resp.approvals[0], "leads");
    /* alice does not own d1 and has no clearance tag but level 5: deny by default. */
    decide(&f, "alice", "edit", "d1");
    CHECK_INT(f.resp.decision, POLICY_DENY);
    CHECK_INT(f.resp.nreasons, 0);
    CHECK_INT(f.resp.napprovals, 0);
    /* carol does not exist: the forbid errors (attribute of a missing entity),
     * "buggy" errors too; nothing permits. */
    decide(&f, "carol", "read", "d1");
    CHECK_INT(f.resp.decision, POLICY_DENY);
    CHECK_INT(f.resp.nerrors, 2);
    policy_set_free(f.set);
    /* forbid overrides permit */
    const char *text = "permit(principal, action, resource);\n"
                       "forbid(principal == User::\"alice\", action, resource);\n";
    struct keel_err err;
    REQUIRE(policy_set_parse(text, strlen(text), NULL, 0, &f.set, &err) == 0);
    decide(&f, "alice", "read", "d1");
    CHECK_INT(f.resp.decision, POLICY_DENY);
    REQUIRE(f.resp.nreasons == 1);
    CHECK_STR(f.resp.reasons[0]->id, "policy1");
    decide(&f, "bob", "read", "d1");
    CHECK_INT(f.resp.decision, POLICY_ALLOW);
    fixture_cleanup(&f);
}

TEST(entities_hierarchy_and_errors)
{
    struct arena a;
    arena_init(&a);
    struct policy_entities *es;
    struct keel_err err;
    REQUIRE(policy_entities_parse_json(test_parse(&a, fixture_entities), NULL, &es, &err) == 0);
    struct policy_euid alice = {"User", "alice", 4, 5}, all = {"Group", "all", 5, 3},
                       bob = {"User", "bob", 4, 3}, folder = {"Folder", "f", 6, 1},
                       d1 = {"Doc", "d1", 3, 2};
    CHECK(policy_entities_in(es, &alice, &all));
    CHECK(!policy_entities_in(es, &bob, &all));
    CHECK(policy_entities_in(es, &d1, &folder));
    CHECK(!policy_entities_in(es, &folder, &d1));
    const struct policy_entity *fe = policy_entities_get(es, &folder);
    REQUIRE(fe != NULL);
    CHECK(!fe->present); /* only known as a parent */
    policy_entities_free(es);
    /* duplicate uid, bad attrs */
    CHECK(policy_entities_parse_json(
              test_parse(&a, "[{\"uid\":{\"type\":\"A\",\"id\":\"x\"}},{\"uid\":{\"type\":\"A\",\"id\":\"x\"}}]"),
              NULL, &es, &err) == KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "appears twice");
    CHECK(policy_entities_parse_json(test_parse(&a, "[{\"uid\":{\"type\":\"A\",\"id\":\"x\"},"
                                           "\"attrs\":{\"n\":1.5}}]"),
                                     NULL, &es, &err) == KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "not a 64-bit integer");
    CHECK(policy_entities_parse_json(
              test_parse(&a, "[{\"uid\":{\"type\":\"A\",\"id\":\"x\"},\"parents\":[{\"type\":\"A\",\"id\":\"y\"}]},"
                    "{\"uid\":{\"type\":\"A\",\"id\":\"y\"},\"parents\":[{\"type\":\"A\",\"id\":\"x\"}]}]"),
              NULL, &es, &err) == KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "cycle");
    CHECK_INT(err.line, 1);
    CHECK(err.column > 30);
    arena_cleanup(&a);
}

TEST(templates_and_links)
{
    const char *text = "@id(\"t\") permit(principal == ?principal, action, resource in ?resource);";
    struct policy_set *set;
    struct keel_err err;
    REQUIRE(policy_set_parse(text, strlen(text), NULL, POLICY_PARSE_ID_ANNOTATIONS, &set, &err) ==
            0);
    CHECK(policy_set_at(set, 0)->is_template);
    struct arena a;
    arena_init(&a);
    CHECK(policy_set_link_json(set,
                               test_parse(&a, "[{\"templateId\":\"t\",\"newId\":\"l1\",\"values\":{"
                                     "\"?principal\":{\"type\":\"User\",\"id\":\"alice\"},"
                                     "\"?resource\":{\"type\":\"Folder\",\"id\":\"f\"}}}]"),
                               &err) == 0);
    /* missing slot value, taken id, unknown template */
    struct policy_euid u = {"User", "bob", 4, 3};
    CHECK(policy_set_link(set, "t", "l2", &u, NULL, &err) == KEEL_EINVAL);
    CHECK(policy_set_link(set, "t", "l1", &u, &u, &err) == KEEL_EEXIST);
    CHECK(policy_set_link(set, "nope", "l3", &u, &u, &err) == KEEL_ENOENT);
    struct policy_entities *es;
    REQUIRE(policy_entities_parse_json(test_parse(&a, fixture_entities), NULL, &es, &err) == 0);
    struct policy_request req = {{"User", "alice", 4, 5}, {"Action", "x", 6, 1}, {"Doc", "d1", 3, 2},
                                 {0, NULL}};
    struct policy_response r;
    policy_response_init(&r);
    policy_authorize(set, es, &req, &r);
    CHECK_INT(r.decision, POLICY_ALLOW);
    REQUIRE(r.nreasons == 1);
    CHECK_STR(r.reasons[0]->id, "l1");
    req.principal = u;
    policy_authorize(set, es, &req, &r);
    CHECK_INT(r.decision, POLICY_DENY);
    policy_response_cleanup(&r);
    policy_entities_free(es);
    policy_set_free(set);
    arena_cleanup(&a);
}

/* A chain of operators is as deep as it is long (the parser builds it in a
 * loop, evaluation recurses down it): up to POLICY_MAX_HEIGHT levels are
 * evaluated, a longer chain is refused with its position instead of
 * overflowing the stack (a 200,000-term chain used to overflow the stack). */
static char *chain(const char *head, const char *link, int n)
{
    size_t hl = strlen(head), ll = strlen(link);
    char *t = malloc(hl + ll * (size_t)n + 1);
    memcpy(t, head, hl);
    for (int i = 0; i < n; i++) memcpy(t + hl + ll * (size_t)i, link, ll);
    t[hl + ll * (size_t)n] = '\0';
    return t;
}

TEST(long_operator_chains)
{
    struct keel_err err;
    struct arena a;
    arena_init(&a);
    struct policy_expr *e = NULL;
    /* 1 + 1 + ... : n terms, n levels. */
    char *ok = chain("1", " + 1", POLICY_MAX_HEIGHT - 1);
    keel_err_clear(&err);
    REQUIRE(policy_expr_parse(ok, "c.yaml", 3, 7, &e, &err) == 0);
    struct json_value *res = NULL;
    REQUIRE(policy_expr_eval(e, json_object(&a), &a, &res, &err) == 0);
    CHECK(json_is(res, JSON_NUMBER) && res->u.n.i == POLICY_MAX_HEIGHT);
    policy_expr_free(e);
    free(ok);
    static const struct {
        const char *head, *link;
        int n;
    } bad[] = {{"1", " + 1", POLICY_MAX_HEIGHT},
               {"true", " && true", 200000},
               {"1", " + 1", 200000},
               {"context", ".a", 200000},
               {"context has a", " || context has a", 200000}};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(bad); i++) {
        char *t = chain(bad[i].head, bad[i].link, bad[i].n);
        keel_err_clear(&err);
        e = NULL;
        CHECK_INT(policy_expr_parse(t, "c.yaml", 3, 7, &e, &err), KEEL_EINVAL);
        CHECK_CONTAINS(err.msg, "levels deep");
        CHECK_STR(err.file, "c.yaml");
        CHECK_INT(err.line, 3);
        policy_expr_free(e);
        free(t);
    }
    /* The same in a policy: at the limit it is authorized, past it refused. */
    char *cond = chain("true", " && true", POLICY_MAX_HEIGHT - 1);
    struct buf text;
    buf_init(&text);
    buf_printf(&text, "permit(principal, action, resource) when { %s };", cond);
    struct policy_set *set = NULL;
    keel_err_clear(&err);
    REQUIRE(policy_set_parse(text.data, text.len, "deep.cedar", 0, &set, &err) == 0);
    struct policy_request req = {{"User", "alice", 4, 5}, {"Action", "x", 6, 1}, {"Doc", "d", 3, 1},
                                 {0, NULL}};
    struct policy_response r;
    policy_response_init(&r);
    policy_authorize(set, NULL, &req, &r);
    CHECK_INT(r.decision, POLICY_ALLOW);
    policy_response_cleanup(&r);
    policy_set_free(set);
    buf_reset(&text);
    buf_printf(&text, "permit(principal, action, resource) when { %s && true };", cond);
    set = NULL;
    keel_err_clear(&err);
    CHECK_INT(policy_set_parse(text.data, text.len, "deep.cedar", 0, &set, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "levels deep");
    CHECK_STR(err.file, "deep.cedar");
    CHECK_INT(err.line, 1);
    CHECK(err.column > 40);
    policy_set_free(set);
    buf_cleanup(&text);
    free(cond);
    arena_cleanup(&a);
}

TEST(policy_set_hash_and_files)
{
    const char *a = "permit(principal, action, resource);";
    const char *b = "forbid(principal, action, resource);";
    struct policy_set *s1 = policy_set_new(0), *s2 = policy_set_new(0);
    struct keel_err err;
    REQUIRE(policy_set_add_text(s1, a, strlen(a), "a.cedar", &err) == 0);
    REQUIRE(policy_set_add_text(s2, a, strlen(a), "a.cedar", &err) == 0);
    char h1[65];
    snprintf(h1, sizeof h1, "%s", policy_set_hash(s1));
    CHECK_INT(strlen(h1), 64);
    CHECK_STR(policy_set_hash(s2), h1);
    REQUIRE(policy_set_add_text(s1, b, strlen(b), "b.cedar", &err) == 0);
    CHECK(strcmp(policy_set_hash(s1), h1) != 0);
    /* ids continue across files; the file is recorded */
    CHECK_STR(policy_set_at(s1, 1)->id, "policy1");
    CHECK_STR(policy_set_at(s1, 1)->file, "b.cedar");
    /* a failing file adds nothing */
    CHECK(policy_set_add_text(s1, "permit(", 7, "c.cedar", &err) == KEEL_EINVAL);
    CHECK_INT(policy_set_count(s1), 2);
    policy_set_free(s1);
    policy_set_free(s2);
}

TEST(duplicate_ids_rejected)
{
    const char *t = "@id(\"x\") permit(principal, action, resource);\n"
                    "@id(\"x\") forbid(principal, action, resource);";
    struct policy_set *s;
    struct keel_err err;
    CHECK(policy_set_parse(t, strlen(t), "d.cedar", POLICY_PARSE_ID_ANNOTATIONS, &s, &err) ==
          KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "duplicate policy id");
    CHECK_INT(err.line, 2);
}

TEST(expression_api_json_result)
{
    struct arena a;
    arena_init(&a);
    struct policy_expr *e;
    struct keel_err err;
    REQUIRE(policy_expr_parse("{ok: input.n > 3, d: decimal(\"1.5\")}", "wf.yaml", 7, 11, &e,
                              &err) == 0);
    struct json_value *res;
    REQUIRE(policy_expr_eval(e, test_parse(&a, "{\"input\": {\"n\": 5}}"), &a, &res, &err) == 0);
    struct buf b;
    buf_init(&b);
    json_write(&b, res, JSON_WRITE_CANONICAL, NULL);
    CHECK_STR(b.data, "{\"d\":{\"__extn\":{\"arg\":\"1.5000\",\"fn\":\"decimal\"}},\"ok\":true}");
    buf_cleanup(&b);
    /* an evaluation error is positioned in the host file */
    CHECK(policy_expr_eval(e, test_parse(&a, "{\"input\": {\"n\": \"x\"}}"), &a, &res, &err) == KEEL_EINVAL);
    CHECK_STR(err.file, "wf.yaml");
    CHECK_INT(err.line, 7);
    CHECK_INT(err.column, 16);
    policy_expr_free(e);
    /* parse error position offset by the expression's place in its file */
    CHECK(policy_expr_parse("input.n >", "wf.yaml", 3, 10, &e, &err) == KEEL_EINVAL);
    CHECK_INT(err.line, 3);
    CHECK_INT(err.column, 19);
    arena_cleanup(&a);
}

TEST(value_json_roundtrip)
{
    struct arena a;
    arena_init(&a);
    const char *text =
        "{\"s\":\"x\",\"n\":-3,\"b\":false,\"set\":[1,1,2],\"e\":{\"__entity\":{\"type\":\"A::B\","
        "\"id\":\"q\"}},\"ip\":{\"__extn\":{\"fn\":\"ip\",\"arg\":\"10.0.0.0/8\"}},"
        "\"dt\":{\"__extn\":{\"fn\":\"datetime\",\"arg\":\"2024-05-06T07:08:09.010Z\"}}}";
    struct policy_value v;
    struct keel_err err;
    REQUIRE(policy_value_from_json(&a, test_parse(&a, text), false, &v, &err) == 0);
    CHECK_INT(v.type, POLICY_RECORD);
    CHECK_INT(policy_record_get(v.u.rec, "set", 3)->u.set->len, 2);
    struct json_value *back = policy_value_to_json(&a, &v);
    struct policy_value v2;
    REQUIRE(policy_value_from_json(&a, back, false, &v2, &err) == 0);
    CHECK(policy_value_equal(&v, &v2));
    CHECK(policy_value_from_json(&a, test_parse(&a, "{\"a\":null}"), false, &v, &err) == KEEL_EINVAL);
    arena_cleanup(&a);
}

/* The index must never change a decision: compare against a set where
 * every policy is unconstrained in scope but carries the same constraint
 * as a condition. */
TEST(index_matches_unindexed_evaluation)
{
    struct buf idx, flat;
    buf_init(&idx);
    buf_init(&flat);
    for (int i = 0; i < 300; i++) {
        const char *eff = i % 7 == 0 ? "forbid" : "permit";
        buf_printf(&idx, "%s(principal in Group::\"g%d\", action == Action::\"a%d\", resource);\n",
                   eff, i % 5, i % 11);
        buf_printf(&flat, "%s(principal, action, resource) when { principal in Group::\"g%d\" && "
                          "action == Action::\"a%d\" };\n",
                   eff, i % 5, i % 11);
    }
    struct policy_set *s1, *s2;
    struct keel_err err;
    REQUIRE(policy_set_parse(idx.data, idx.len, NULL, 0, &s1, &err) == 0);
    REQUIRE(policy_set_parse(flat.data, flat.len, NULL, 0, &s2, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct policy_entities *es;
    REQUIRE(policy_entities_parse_json(
                test_parse(&a, "[{\"uid\":{\"type\":\"User\",\"id\":\"u\"},\"parents\":[{\"type\":\"Group\","
                      "\"id\":\"g1\"},{\"type\":\"Group\",\"id\":\"g3\"}]}]"),
                NULL, &es, &err) == 0);
    struct policy_response r1, r2;
    policy_response_init(&r1);
    policy_response_init(&r2);
    for (int act = 0; act < 12; act++) {
        char id[8];
        snprintf(id, sizeof id, "a%d", act);
        struct policy_request req = {{"User", "u", 4, 1}, {"Action", id, 6, (uint32_t)strlen(id)},
                                     {"Doc", "d", 3, 1}, {0, NULL}};
        policy_authorize(s1, es, &req, &r1);
        policy_authorize(s2, es, &req, &r2);
        CHECK_INT(r1.decision, r2.decision);
        REQUIRE(r1.nreasons == r2.nreasons);
        for (size_t k = 0; k < r1.nreasons; k++)
            CHECK_STR(r1.reasons[k]->id, r2.reasons[k]->id);
    }
    policy_response_cleanup(&r1);
    policy_response_cleanup(&r2);
    policy_entities_free(es);
    policy_set_free(s1);
    policy_set_free(s2);
    buf_cleanup(&idx);
    buf_cleanup(&flat);
    arena_cleanup(&a);
}

/* With a schema, entity and context data are read the way it declares them:
 * bare entity references, bare extension strings, and the schema's action
 * hierarchy (Cedar's behaviour; checked against cedar-wasm by the
 * differential test). */
TEST(schema_directed_entities_and_context)
{
    const char *schema_text =
        "entity User in [Group] = { boss?: User, ip?: ipaddr, when?: datetime };\n"
        "entity Group;\n"
        "action all;\n"
        "action read in [all] appliesTo { principal: [User], resource: [User], "
        "context: { from: ipaddr } };\n";
    struct policy_schema *schema;
    struct keel_err err;
    REQUIRE(policy_schema_parse(schema_text, strlen(schema_text), "s.cedarschema", &schema, &err) ==
            0);
    struct arena a;
    arena_init(&a);
    struct policy_entities *es;
    REQUIRE(policy_entities_parse_json(
                test_parse(&a, "[{\"uid\":{\"type\":\"User\",\"id\":\"u\"},\"attrs\":{\"boss\":{\"type\":"
                      "\"User\",\"id\":\"b\"},\"ip\":\"10.1.2.3\",\"when\":\"2024-01-01\"},"
                      "\"parents\":[]}]"),
                schema, &es, &err) == 0);
    const char *text = "permit(principal, action in Action::\"all\", resource) when {\n"
                       "  principal.boss == User::\"b\" && principal.ip.isInRange(ip(\"10.0.0.0/8\")) &&\n"
                       "  principal.when < datetime(\"2025-01-01\") && context.from.isIpv4() };";
    struct policy_set *set;
    REQUIRE(policy_set_parse(text, strlen(text), "p.cedar", 0, &set, &err) == 0);
    struct policy_request req;
    REQUIRE(policy_request_from_json(
                &a,
                test_parse(&a, "{\"principal\":{\"type\":\"User\",\"id\":\"u\"},\"action\":{\"type\":"
                      "\"Action\",\"id\":\"read\"},\"resource\":{\"type\":\"User\",\"id\":\"u\"},"
                      "\"context\":{\"from\":\"192.168.0.1\"}}"),
                schema, &req, &err) == 0);
    struct policy_response r;
    policy_response_init(&r);
    policy_authorize(set, es, &req, &r);
    CHECK_INT(r.decision, POLICY_ALLOW); /* read in all comes from the schema */
    CHECK_INT(r.nerrors, 0);
    policy_entities_free(es);
    /* a bare string that is not a valid literal of the declared type is rejected */
    CHECK(policy_entities_parse_json(
              test_parse(&a, "[{\"uid\":{\"type\":\"User\",\"id\":\"u\"},\"attrs\":{\"ip\":\"::ffff:1.2.3.4\"},"
                    "\"parents\":[]}]"),
              schema, &es, &err) == KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "invalid ip");
    policy_response_cleanup(&r);
    policy_set_free(set);
    policy_schema_free(schema);
    arena_cleanup(&a);
}
