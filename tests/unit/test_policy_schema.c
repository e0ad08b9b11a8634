/*
 * test_policy_schema.c — the Cedar schema parsers and model: both formats,
 * name resolution, hierarchy queries, and positioned errors.  The JSON
 * parser is also checked against Cedar itself: every corpus schema is
 * converted to Cedar's JSON form by the reference implementation
 * (tests/integration/policy_check_schema_tojson.js, via the Node peer) and
 * must produce the same model as our human-format parse of the original,
 * and the same validation verdicts.
 */
#include "json/json.h"
#include "policy/policy.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>

static struct policy_schema *parse_ok(const char *text)
{
    struct policy_schema *s = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    if (policy_schema_parse(text, strlen(text), "s.cedarschema", &s, &err) != 0) {
        char b[2048];
        fprintf(stderr, "unexpected schema error: %s\n", keel_err_format(&err, b, sizeof b));
        return NULL;
    }
    return s;
}

/* Parses text expecting failure; returns the formatted error. */
static const char *parse_err(const char *text)
{
    static char out[2048];
    struct policy_schema *s = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    if (policy_schema_parse(text, strlen(text), "s.cedarschema", &s, &err) == 0) {
        policy_schema_free(s);
        return "(parsed)";
    }
    return keel_err_format(&err, out, sizeof out);
}

static const char *fmt(const struct policy_type *t)
{
    static char out[1024];
    struct buf b;
    buf_init(&b);
    policy_type_format(&b, t);
    snprintf(out, sizeof out, "%s", b.data ? b.data : "");
    buf_cleanup(&b);
    return out;
}

TEST(human_basics)
{
    struct policy_schema *s = parse_ok(
        "namespace App {\n"
        "  type Addr = { street: String, zip?: Long };\n"
        "  entity User in [Group] = { name: String, addr: Addr, friends: Set<User> } tags Long;\n"
        "  entity Group in [Group2];\n"
        "  entity Group2;\n"
        "  entity Color enum [\"red\", \"green\"];\n"
        "  action view, \"edit doc\" appliesTo { principal: [User], resource: User,\n"
        "                                      context: { ip: ipaddr } };\n"
        "  action read in [view, Action::\"edit doc\"];\n"
        "}\n"
        "entity Global = { c: App::Color, d: __cedar::decimal };\n");
    REQUIRE(s != NULL);
    CHECK_INT(s->nentities, 5);
    const struct policy_entity_type *u = policy_schema_entity(s, "App::User");
    REQUIRE(u != NULL);
    CHECK_STR(fmt(u->shape), "{ addr: { street: String, zip?: Long }, friends: Set<App::User>, "
                             "name: String }");
    CHECK_STR(fmt(u->tags), "Long");
    CHECK_INT(u->nparents, 1);
    CHECK_STR(u->parents[0], "App::Group");
    CHECK(policy_schema_entity_descends(s, "App::User", "App::Group2"));
    CHECK(policy_schema_entity_descends(s, "App::User", "App::User"));
    CHECK(!policy_schema_entity_descends(s, "App::Group", "App::User"));
    const struct policy_entity_type *c = policy_schema_entity(s, "App::Color");
    REQUIRE(c != NULL);
    CHECK(c->is_enum);
    CHECK(policy_schema_enum_has(c, "green", 5));
    CHECK(!policy_schema_enum_has(c, "blue", 4));
    const struct policy_entity_type *g = policy_schema_entity(s, "Global");
    REQUIRE(g != NULL);
    CHECK_STR(fmt(g->shape), "{ c: App::Color, d: decimal }");
    const struct policy_action *view = policy_schema_action(s, "App::Action", "view");
    const struct policy_action *edit = policy_schema_action(s, "App::Action", "edit doc");
    const struct policy_action *read = policy_schema_action(s, "App::Action", "read");
    REQUIRE(view && edit && read);
    CHECK(view->applies);
    CHECK(!read->applies);
    CHECK_STR(fmt(view->context), "{ ip: ipaddr }");
    CHECK_INT(view->nresources, 1);
    CHECK_STR(view->resources[0], "App::User");
    CHECK(policy_schema_action_descends(s, read, view));
    CHECK(policy_schema_action_descends(s, read, edit));
    CHECK(!policy_schema_action_descends(s, view, read));
    CHECK(policy_schema_is_action_type(s, "App::Action"));
    CHECK(!policy_schema_is_action_type(s, "Action"));
    policy_schema_free(s);
}

TEST(name_resolution)
{
    /* In namespace N, `T` is N's common type before the empty namespace's
     * entity type T; `Long` may be an entity type's name only qualified. */
    struct policy_schema *s = parse_ok("entity T;\n"
                                       "namespace N {\n"
                                       "  type T = { inner: Bool };\n"
                                       "  entity E = { a: T, b: __cedar::String, c: Bool };\n"
                                       "}\n"
                                       "entity F = { a: T, n: N::T };\n");
    REQUIRE(s != NULL);
    CHECK_STR(fmt(policy_schema_entity(s, "N::E")->shape),
              "{ a: { inner: Bool }, b: String, c: Bool }");
    CHECK_STR(fmt(policy_schema_entity(s, "F")->shape), "{ a: T, n: { inner: Bool } }");
    policy_schema_free(s);
}

struct err_case {
    const char *schema;
    const char *where;   /* "file:line:col" prefix expected */
    const char *message; /* substring */
};

static const struct err_case err_cases[] = {
    {"entity A = { x: Nope };", "s.cedarschema:1:17", "unknown type 'Nope'"},
    {"entity A;\nentity A;", "s.cedarschema:2:8", "declared twice"},
    {"entity A in [B];", "s.cedarschema:1:14", "unknown entity type 'B'"},
    {"namespace N {\n  entity A = { x: Long\n", "s.cedarschema:3:1", "expected ',' or '}'"},
    {"type A = { b: B };\ntype B = { a: A };\nentity E = { x: A };", "s.cedarschema:", "cycle"},
    {"action a in [b];\naction b in [a];\n", "s.cedarschema:", "member of itself"},
    {"type Long = { a: String };", "s.cedarschema:1:6", "reserved"},
    {"namespace __cedar { entity A; }", "s.cedarschema:1:11", "reserved"},
    {"entity A;\naction a appliesTo { principal: [A] };", "s.cedarschema:2:10",
     "both 'principal' and 'resource'"},
    {"action a appliesTo { principal: [A], resource: [A] };", "s.cedarschema:1:34",
     "unknown entity type 'A'"},
    {"entity A = { a: Long, a: String };", "s.cedarschema:1:12", "declared twice"},
    {"entity A = { s: \"unterminated };", "s.cedarschema:1:17", "not closed"},
    {"entity A; action a in [nope];", "s.cedarschema:1:24", "undeclared action"},
    {"entity A = { x: Set<Long };", "s.cedarschema:1:26", "'>'"},
    {"entity A enum [];", "s.cedarschema:1:16", "at least one"},
    {"{\"\": {\"entityTypes\": {\"A\": {\"shape\": {\"type\": \"Record\", \"attributes\": "
     "{\"x\": {\"type\": \"Nope\"}}}}}, \"actions\": {}}}",
     "s.cedarschema:1:", "unknown common type 'Nope'"},
    {"{\"\": {\"entityTypes\": {\"A\": {\"memberOf\": []}}, \"actions\": {}}}",
     "s.cedarschema:1:", "unknown member \"memberOf\""},
    {"{\"\": {\"entityTypes\": {}, \"actions\": {\"a\": {\"appliesTo\": {\"principalTypes\": "
     "[\"X\"], \"resourceTypes\": []}}}}}",
     "s.cedarschema:1:", "unknown entity type 'X'"},
    {"{\"\": {\"entityTypes\": {}}}", "s.cedarschema:1:", "\"actions\""},
    {"{\"\": ", "s.cedarschema:1:", ""},
};

TEST(errors_have_positions)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(err_cases); i++) {
        const char *e = parse_err(err_cases[i].schema);
        if (strncmp(e, err_cases[i].where, strlen(err_cases[i].where)) != 0 ||
            !strstr(e, err_cases[i].message)) {
            fprintf(stderr, "case %zu: %s\n  got: %s\n  want: %s ... %s\n", i,
                    err_cases[i].schema, e, err_cases[i].where, err_cases[i].message);
            CHECK(false);
        }
    }
}

TEST(json_format)
{
    const char *j =
        "{\"App\": {\"commonTypes\": {\"Addr\": {\"type\": \"Record\", \"attributes\": {"
        "  \"street\": {\"type\": \"String\"}, \"zip\": {\"type\": \"Long\", \"required\": false}}}},"
        " \"entityTypes\": {"
        "  \"User\": {\"memberOfTypes\": [\"Group\"], \"shape\": {\"type\": \"Record\", "
        "    \"attributes\": {\"addr\": {\"type\": \"Addr\"}, \"friends\": {\"type\": \"Set\", "
        "    \"element\": {\"type\": \"Entity\", \"name\": \"User\"}}, \"ip\": {\"type\": "
        "    \"Extension\", \"name\": \"ipaddr\"}, \"ok\": {\"type\": \"Boolean\"}}}, "
        "    \"tags\": {\"type\": \"EntityOrCommon\", \"name\": \"Long\"}},"
        "  \"Group\": {}, \"Color\": {\"enum\": [\"red\"]}},"
        " \"actions\": {\"view\": {\"appliesTo\": {\"principalTypes\": [\"User\"], "
        "   \"resourceTypes\": [\"Group\"], \"context\": {\"type\": \"Addr\"}}},"
        "   \"read\": {\"memberOf\": [{\"id\": \"view\"}]}}}}";
    struct policy_schema *s = parse_ok(j);
    REQUIRE(s != NULL);
    const struct policy_entity_type *u = policy_schema_entity(s, "App::User");
    REQUIRE(u != NULL);
    CHECK_STR(fmt(u->shape), "{ addr: { street: String, zip?: Long }, friends: Set<App::User>, "
                             "ip: ipaddr, ok: Bool }");
    CHECK_STR(fmt(u->tags), "Long");
    const struct policy_action *view = policy_schema_action(s, "App::Action", "view");
    const struct policy_action *read = policy_schema_action(s, "App::Action", "read");
    REQUIRE(view && read);
    CHECK_STR(fmt(view->context), "{ street: String, zip?: Long }");
    CHECK(policy_schema_action_descends(s, read, view));
    CHECK(policy_schema_entity(s, "App::Color")->is_enum);
    policy_schema_free(s);
}

/* A canonical text of a schema model, to compare two parses. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static char *dump(const struct policy_schema *s)
{
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < s->nentities; i++) {
        const struct policy_entity_type *e = &s->entities[i];
        buf_printf(&b, "entity %s ", e->name);
        const char **ps = malloc((e->nparents + 1) * sizeof *ps);
        for (size_t k = 0; k < e->nparents; k++) ps[k] = e->parents[k];
        qsort(ps, e->nparents, sizeof *ps, cmp_str);
        for (size_t k = 0; k < e->nparents; k++) buf_printf(&b, "in %s ", ps[k]);
        free(ps);
        policy_type_format(&b, e->shape);
        if (e->tags) {
            buf_puts(&b, " tags ");
            policy_type_format(&b, e->tags);
        }
        if (e->is_enum) {
            buf_puts(&b, " enum");
            for (size_t k = 0; k < e->nenum; k++) {
                buf_putc(&b, ' ');
                json_write_string(&b, e->enum_ids[k], e->enum_id_lens[k]);
            }
        }
        buf_putc(&b, '\n');
    }
    const char **lines = malloc((s->nactions + 1) * sizeof *lines);
    for (size_t i = 0; i < s->nactions; i++) {
        const struct policy_action *a = &s->actions[i];
        struct buf l;
        buf_init(&l);
        buf_printf(&l, "action %s::", a->uid.type);
        json_write_string(&l, a->uid.id, a->uid.id_len);
        /* Ancestors, sorted: declaration order differs between formats. */
        const char **anc = malloc((s->nactions + 1) * sizeof *anc);
        size_t nanc = 0;
        for (size_t k = 0; k < s->nactions; k++)
            if (k != i && policy_schema_action_descends(s, a, &s->actions[k])) {
                struct buf one;
                buf_init(&one);
                json_write_string(&one, s->actions[k].uid.id, s->actions[k].uid.id_len);
                anc[nanc++] = buf_detach(&one);
                buf_cleanup(&one);
            }
        qsort(anc, nanc, sizeof *anc, cmp_str);
        for (size_t k = 0; k < nanc; k++) {
            buf_printf(&l, " in %s", anc[k]);
            free((void *)anc[k]);
        }
        free(anc);
        if (a->applies) {
            buf_puts(&l, " principals");
            for (size_t k = 0; k < a->nprincipals; k++) buf_printf(&l, " %s", a->principals[k]);
            buf_puts(&l, " resources");
            for (size_t k = 0; k < a->nresources; k++) buf_printf(&l, " %s", a->resources[k]);
            buf_puts(&l, " context ");
            policy_type_format(&l, a->context);
        }
        lines[i] = buf_detach(&l);
        buf_cleanup(&l);
    }
    qsort(lines, s->nactions, sizeof *lines, cmp_str);
    for (size_t i = 0; i < s->nactions; i++) {
        buf_printf(&b, "%s\n", lines[i]);
        free((void *)lines[i]);
    }
    free(lines);
    return buf_detach(&b);
}

/* Runs the Node helper over the corpus; NULL (test skipped) when the peer
 * is not installed. */
static FILE *open_conversion(void)
{
    char cmd[8192], node[4096], script[4096];
    /* test_source returns one static buffer: copy each result. */
    snprintf(node, sizeof node, "%s", test_source("tests/peers/node"));
    snprintf(script, sizeof script, "%s",
             test_source("tests/integration/policy_check_schema_tojson.js"));
    FILE *probe = fopen(node, "r");
    if (!probe) return NULL;
    fclose(probe);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", node, script,
             test_shared("data/cedar-corpus-public.jsonl"));
    return popen(cmd, "r");
}

TEST(json_matches_cedar_conversion)
{
    /* Index the corpus: name -> (schema text, policies, shouldValidate). */
    struct buf corpus;
    buf_init(&corpus);
    struct keel_err err;
    REQUIRE(keel_read_file(test_shared("data/cedar-corpus-public.jsonl"), 1u << 30, &corpus,
                           &err) == 0);
    FILE *conv = open_conversion();
    if (!conv) {
        printf("skipped: tests/peers/node not installed (run scripts/peers)\n");
        buf_cleanup(&corpus);
        return;
    }
    struct arena ca;
    arena_init(&ca);
    struct strmap by_name;
    strmap_init(&by_name);
    char *line = corpus.data;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        struct json_value *doc;
        if (len && json_parse(&ca, line, len, NULL, &doc, &err) == 0) {
            const char *name = json_get_str(doc, "name", "");
            strmap_put(&by_name, name, strlen(name), doc);
        }
        line = nl ? nl + 1 : NULL;
    }
    int total = 0, same_model = 0, same_verdict = 0, shown = 0;
    struct buf l;
    buf_init(&l);
    char chunk[1 << 16];
    for (;;) {
        buf_reset(&l);
        bool got = false;
        while (fgets(chunk, sizeof chunk, conv)) {
            got = true;
            buf_puts(&l, chunk);
            if (l.len && l.data[l.len - 1] == '\n') break;
        }
        if (!got) break;
        struct arena a;
        arena_init(&a);
        struct json_value *row;
        if (json_parse(&a, l.data, l.len, NULL, &row, &err) != 0) {
            arena_cleanup(&a);
            continue;
        }
        const char *name = json_get_str(row, "name", "");
        const struct json_value *doc = strmap_get(&by_name, name, strlen(name));
        const struct json_value *js = json_get(row, "json");
        if (!doc || !js) {
            arena_cleanup(&a);
            continue;
        }
        total++;
        struct buf jtext;
        buf_init(&jtext);
        json_write(&jtext, js, 0, NULL);
        const struct json_value *human = json_get(doc, "schema");
        struct policy_schema *hs = NULL, *jsch = NULL;
        struct keel_err e1, e2;
        int r1 = policy_schema_parse_human(human->u.s.str, human->len, name, &hs, &e1);
        int r2 = policy_schema_parse_json(jtext.data, jtext.len, name, &jsch, &e2);
        if (r1 == 0 && r2 == 0) {
            char *d1 = dump(hs), *d2 = dump(jsch);
            if (strcmp(d1, d2) == 0) same_model++;
            else if (shown++ < 5)
                fprintf(stderr, "%s: models differ\nhuman:\n%.600s\njson:\n%.600s\n", name, d1,
                        d2);
            free(d1);
            free(d2);
            /* Same verdict on the corpus policies with either schema. */
            const struct json_value *pol = json_get(doc, "policies");
            struct policy_set *set = NULL;
            if (policy_set_parse(pol->u.s.str, pol->len, name, 0, &set, &e1) == 0) {
                int v1 = policy_validate(hs, set, NULL), v2 = policy_validate(jsch, set, NULL);
                if ((v1 == 0) == (v2 == 0)) same_verdict++;
                policy_set_free(set);
            }
        } else if (shown++ < 5) {
            fprintf(stderr, "%s: human rc=%d (%s), json rc=%d (%s)\n", name, r1, e1.msg, r2,
                    e2.msg);
        }
        policy_schema_free(hs);
        policy_schema_free(jsch);
        buf_cleanup(&jtext);
        arena_cleanup(&a);
    }
    pclose(conv);
    buf_cleanup(&l);
    strmap_cleanup(&by_name);
    arena_cleanup(&ca);
    buf_cleanup(&corpus);
    printf("JSON schemas from Cedar: %d/%d same model, %d/%d same verdicts\n", same_model, total,
           same_verdict, total);
    CHECK(total > 3000);
    CHECK_INT(same_model, total);
    CHECK_INT(same_verdict, total);
}

TEST(load_from_file)
{
    struct policy_schema *s = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    CHECK_INT(policy_schema_load(
                  test_shared("data/cedar-integration/sample-data/sandbox_b/schema.cedarschema"),
                  &s, &err),
              0);
    REQUIRE(s != NULL);
    CHECK(policy_schema_entity(s, "Photo") != NULL);
    CHECK(policy_schema_entity_descends(s, "Photo", "AccountGroup"));
    policy_schema_free(s);
    CHECK_INT(policy_schema_load("/nonexistent/x.cedarschema", &s, &err), KEEL_ENOENT);
}

/* Accept/reject verdicts of Cedar 4.13 (cedar-wasm checkParseSchema) on small
 * schemas, human and JSON, probing the formats' corners; ours must match. */
static const struct {
    const char *schema;
    bool ok;
} cedar_verdicts[] = {
    {"entity A; action a appliesTo { principal: [A] };", false},
    {"entity A; action a appliesTo { principal: [A], resource: [] };", false},
    {"entity A; action a appliesTo { };", false},
    {"entity A; action a appliesTo { principal: [A], resource: [A], };", true},
    {"entity A = { a: Long, };", true},
    {"entity A {};", true},
    {"entity A = {} tags Set<Long>;", true},
    {"type Bool = Long; entity A;", false},
    {"type A = Long; entity A;", true},
    {"namespace N { entity A; } namespace N { entity B; }", false},
    {"entity A in [A];", true},
    {"entity A enum [\"a\"] ;", true},
    {"entity A in [B] enum [\"a\"]; entity B;", false},
    {"action \"a\"; action \"a\";", false},
    {"entity A; entity A;", false},
    {"namespace N { type T = Long; entity A = { t: T }; } entity B = { t: N::T };", true},
    {"entity Long; entity A = { x: Long };", true},
    {"entity A = { x: Boolean };", false},
    {"entity A = { x: __cedar::Bool };", true},
    {"entity A = { x: ipaddr, y: __cedar::ipaddr };", true},
    {"entity A; action a in A::\"x\";", false},
    {"entity A; action a in Action::\"a\";", false},
    {"entity A; action b; action a in [Action::\"b\", \"b\"];", true},
    {"@a @b(\"x\") namespace N { @c entity A; }", true},
    {"entity A = { \"a b\": Long };", true},
    {"entity A = { x?: Set<{ y: Long }> };", true},
    {"{\"\":{\"entityTypes\":{\"A\":{\"shape\":{\"type\":\"Record\",\"attributes\":{},\"additionalAttributes\":true}}},\"actions\":{}}}", false},
    {"{\"\":{\"entityTypes\":{\"A\":{\"shape\":{\"type\":\"Record\",\"attributes\":{},\"additionalAttributes\":false}}},\"actions\":{}}}", true},
    {"{\"\":{\"entityTypes\":{\"A\":{}},\"actions\":{\"a\":{\"appliesTo\":{\"principalTypes\":[\"A\"]}}}}}", false},
    {"{\"\":{\"entityTypes\":{\"A\":{}},\"actions\":{\"a\":{\"appliesTo\":{\"principalTypes\":[\"A\"],\"resourceTypes\":[]}}}}}", true},
    {"{\"\":{\"entityTypes\":{\"A\":{}},\"actions\":{\"a\":{\"appliesTo\":null}}}}", true},
    {"{\"\":{\"entityTypes\":{\"A\":{}},\"actions\":{\"a\":{\"memberOf\":null}}}}", true},
    {"{\"\":{\"entityTypes\":{\"A\":{}},\"actions\":{\"a\":{\"attributes\":{}}}}}", false},
    {"{\"\":{\"entityTypes\":{\"A\":{\"shape\":{\"type\":\"Long\"}}},\"actions\":{}}}", false},
    {"{\"\":{\"entityTypes\":{\"A\":{\"shape\":{\"type\":\"T\"}}},\"actions\":{},\"commonTypes\":{\"T\":{\"type\":\"Record\",\"attributes\":{}}}}}", true},
    {"{\"\":{\"entityTypes\":{\"A\":{\"memberOfTypes\":[\"B\"]}},\"actions\":{}}}", false},
    {"{\"\":{\"entityTypes\":{},\"actions\":{}}}", true},
    {"{\"\":{\"entityTypes\":{}}}", false},
    {"{\"\":{\"actions\":{}}}", false},
    {"{\"N\":{\"entityTypes\":{\"A\":{\"enum\":[]}},\"actions\":{}}}", false},
    {"{\"N\":{\"entityTypes\":{\"A\":{\"enum\":[\"a\"],\"shape\":{\"type\":\"Record\",\"attributes\":{}}}},\"actions\":{}}}", false},
    {"{\"N\":{\"entityTypes\":{\"A\":{\"bogus\":1}},\"actions\":{}}}", false},
    {"{\"N\":{\"entityTypes\":{\"A\":{\"shape\":{\"type\":\"Record\",\"attributes\":{\"x\":{\"type\":\"Long\",\"bogus\":1}}}}},\"actions\":{}}}", false},
    {"{\"N\":{\"entityTypes\":{\"A\":{\"shape\":{\"type\":\"Record\",\"attributes\":{\"x\":{\"type\":\"Set\",\"element\":{\"type\":\"Long\",\"required\":false}}}}}},\"actions\":{}}}", false},
    {"{\"N\":{\"entityTypes\":{},\"actions\":{},\"annotations\":{\"a\":\"b\"}}}", true},
    {"{\"__cedar\":{\"entityTypes\":{},\"actions\":{}}}", false},
    {"{\"N::M\":{\"entityTypes\":{\"A\":{}},\"actions\":{}}}", true},
    {"{\"N:\":{\"entityTypes\":{},\"actions\":{}}}", false},
    {"{\"\":{\"entityTypes\":{\"A\":{\"shape\":{\"type\":\"Record\",\"attributes\":{\"x\":{\"type\":\"Extension\",\"name\":\"nope\"}}}}},\"actions\":{}}}", false},
    {"{\"\":{\"entityTypes\":{\"A\":{\"shape\":{\"type\":\"Record\",\"attributes\":{\"x\":{\"type\":\"Entity\",\"name\":\"Long\"}}}}},\"actions\":{}}}", false},
    {"{\"\":{\"entityTypes\":{\"A\":{\"shape\":{\"type\":\"Record\",\"attributes\":{\"x\":{\"type\":\"Boolean\"},\"y\":{\"type\":\"Bool\"}}}}},\"actions\":{}}}", true},
    {"{\"\":{\"entityTypes\":{\"A\":{\"shape\":{\"type\":\"Record\",\"attributes\":{\"x\":{\"type\":\"EntityOrCommon\",\"name\":\"Bool\"}}}}},\"actions\":{}}}", true},
    {"{\"\":{\"entityTypes\":{\"A\":{}},\"actions\":{\"a\":{\"appliesTo\":{\"principalTypes\":[\"A\"],\"resourceTypes\":[\"A\"],\"context\":{\"type\":\"Long\"}}}}}}", false},
    {"{\"\":{\"entityTypes\":{\"A\":{}},\"actions\":{\"a\":{\"memberOf\":[{\"id\":\"b\",\"type\":\"Action\"}]},\"b\":{}}}}", true},
    {"{\"\":{\"entityTypes\":{\"A\":{}},\"actions\":{\"a\":{\"memberOf\":[{\"id\":\"b\",\"type\":\"A\"}]}}}}", false},
};

TEST(acceptance_matches_cedar)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cedar_verdicts); i++) {
        struct policy_schema *s = NULL;
        struct keel_err err;
        keel_err_clear(&err);
        const char *t = cedar_verdicts[i].schema;
        int rc = policy_schema_parse(t, strlen(t), "v.cedarschema", &s, &err);
        if ((rc == 0) != cedar_verdicts[i].ok) {
            fprintf(stderr, "%s: Cedar says %s, we say %s (%s)\n", t,
                    cedar_verdicts[i].ok ? "ok" : "error", rc ? "error" : "ok", err.msg);
            CHECK(false);
        }
        if (rc) CHECK(err.line > 0 && err.column > 0);
        policy_schema_free(s);
    }
}
