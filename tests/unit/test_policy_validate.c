/*
 * test_policy_validate.c — strict validation against Cedar's own verdicts.
 *
 * Data-driven: every line of ../shared/data/cedar-corpus-public.jsonl and
 * every JSON file under ../shared/data/cedar-integration/tests/ carries policies, a
 * schema and `shouldValidate` (what Cedar 4.10's validator said).  We parse
 * the policies and the schema, validate, and compare.  The corpus must agree
 * on at least 99.5% of cases, the integration tests on all of them; the
 * runner prints the rate and lists every disagreement with the first
 * diagnostic.  Hand-written cases below pin individual rules with their
 * positions.
 */
#include "json/json.h"
#include "policy/policy.h"
#include "test.h"

#include <dirent.h>
#include <stdio.h>

struct verdict {
    int rc;         /* policy_validate result, or -1 parse failure */
    char first[512]; /* first diagnostic or parse error */
};

static struct verdict run_case(const char *policies, size_t plen, const char *schema_text,
                               size_t slen, const char *name)
{
    struct verdict v = {0};
    struct keel_err err;
    keel_err_clear(&err);
    struct policy_schema *schema = NULL;
    struct policy_set *set = NULL;
    if (policy_schema_parse(schema_text, slen, name, &schema, &err) != 0) {
        char b[KEEL_ERR_MSG_MAX + 64];
        snprintf(v.first, sizeof v.first, "schema: %s", keel_err_format(&err, b, sizeof b));
        v.rc = -1;
        return v;
    }
    if (policy_set_parse(policies, plen, name, 0, &set, &err) != 0) {
        char b[KEEL_ERR_MSG_MAX + 64];
        snprintf(v.first, sizeof v.first, "policies: %s", keel_err_format(&err, b, sizeof b));
        v.rc = -1;
        policy_schema_free(schema);
        return v;
    }
    struct policy_diag_list diags;
    policy_diag_list_init(&diags);
    v.rc = policy_validate(schema, set, &diags);
    if (diags.len)
        snprintf(v.first, sizeof v.first, "%s:%d:%d: %s: %s", diags.items[0].file,
                 diags.items[0].line, diags.items[0].column, diags.items[0].policy_id,
                 diags.items[0].message);
    policy_diag_list_cleanup(&diags);
    policy_set_free(set);
    policy_schema_free(schema);
    return v;
}

TEST(corpus_agreement)
{
    struct buf text;
    buf_init(&text);
    struct keel_err err;
    REQUIRE(keel_read_file(test_shared("data/cedar-corpus-public.jsonl"), 1u << 30, &text,
                           &err) == 0);
    int total = 0, agree = 0, listed = 0;
    char *line = text.data;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len == 0) {
            line = nl ? nl + 1 : NULL;
            continue;
        }
        struct arena a;
        arena_init(&a);
        struct json_value *doc;
        if (json_parse(&a, line, len, NULL, &doc, &err) == 0) {
            const char *name = json_get_str(doc, "name", "?");
            struct json_value *pol = json_get(doc, "policies");
            struct json_value *sch = json_get(doc, "schema");
            struct json_value *sv = json_get(doc, "shouldValidate");
            if (json_is(pol, JSON_STRING) && json_is(sch, JSON_STRING) && json_is_bool(sv)) {
                bool expected = sv->type == JSON_TRUE;
                struct verdict v =
                    run_case(pol->u.s.str, pol->len, sch->u.s.str, sch->len, name);
                bool got = v.rc == 0;
                total++;
                if (got == expected) {
                    agree++;
                } else if (listed++ < 60) {
                    fprintf(stderr, "disagree %s: expected %s, got %s (%s)\n", name,
                            expected ? "valid" : "invalid", got ? "valid" : "invalid",
                            v.first[0] ? v.first : "no diagnostics");
                }
            }
        } else {
            fprintf(stderr, "corpus line does not parse: %s\n", err.msg);
        }
        arena_cleanup(&a);
        line = nl ? nl + 1 : NULL;
    }
    buf_cleanup(&text);
    double rate = total ? 100.0 * agree / total : 0;
    printf("cedar corpus: %d/%d agree (%.2f%%), %d disagreements\n", agree, total, rate,
           total - agree);
    CHECK(total > 3000);
    CHECK(rate >= 99.5);
}

static int read_rel(const char *base, const char *rel, struct buf *out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", base, rel);
    struct keel_err err;
    buf_reset(out);
    return keel_read_file(path, 1u << 26, out, &err);
}

TEST(integration_agreement)
{
    char base[4096];
    snprintf(base, sizeof base, "%s", test_shared("data/cedar-integration"));
    char tests_dir[4200];
    snprintf(tests_dir, sizeof tests_dir, "%s/tests", base);
    DIR *d = opendir(tests_dir);
    REQUIRE(d != NULL);
    int total = 0, agree = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[4400];
        snprintf(sub, sizeof sub, "%s/%s", tests_dir, e->d_name);
        DIR *d2 = opendir(sub);
        if (!d2) continue;
        struct dirent *f;
        while ((f = readdir(d2))) {
            size_t n = strlen(f->d_name);
            if (n < 5 || strcmp(f->d_name + n - 5, ".json") != 0) continue;
            char rel[600];
            snprintf(rel, sizeof rel, "tests/%s/%s", e->d_name, f->d_name);
            struct buf doc_text, pol, sch;
            buf_init(&doc_text);
            buf_init(&pol);
            buf_init(&sch);
            struct arena a;
            arena_init(&a);
            struct json_value *doc;
            struct keel_err err;
            if (read_rel(base, rel, &doc_text) == 0 &&
                json_parse(&a, doc_text.data, doc_text.len, NULL, &doc, &err) == 0) {
                const char *pp = json_get_str(doc, "policies", NULL);
                const char *sp = json_get_str(doc, "schema", NULL);
                struct json_value *sv = json_get(doc, "shouldValidate");
                if (pp && sp && json_is_bool(sv) && read_rel(base, pp, &pol) == 0 &&
                    read_rel(base, sp, &sch) == 0) {
                    struct verdict v = run_case(pol.data ? pol.data : "", pol.len,
                                                sch.data ? sch.data : "", sch.len, pp);
                    bool expected = sv->type == JSON_TRUE;
                    total++;
                    if ((v.rc == 0) == expected) agree++;
                    else
                        fprintf(stderr, "disagree %s: expected %s (%s)\n", rel,
                                expected ? "valid" : "invalid", v.first);
                }
            }
            arena_cleanup(&a);
            buf_cleanup(&doc_text);
            buf_cleanup(&pol);
            buf_cleanup(&sch);
        }
        closedir(d2);
    }
    closedir(d);
    printf("cedar integration tests: %d/%d agree\n", agree, total);
    CHECK(total >= 20);
    CHECK_INT(agree, total);
}

/* ---- hand-written rules ---------------------------------------------------- */

static const char *photo_schema =
    "entity User in [Group] = { name: String, age?: Long, tags: Set<String> };\n"
    "entity Group;\n"
    "entity Photo = { owner: User, private: Bool, size: Long } tags String;\n"
    "entity Color enum [\"red\", \"blue\"];\n"
    "action view, edit appliesTo { principal: [User], resource: [Photo],\n"
    "  context: { ip: ipaddr, level?: Long } };\n"
    "action \"read\" in [view];\n";

/* Validates one policy text; returns the count and the first message. */
static int validate_one(const char *policy, char *first, size_t cap)
{
    struct verdict v = run_case(policy, strlen(policy), photo_schema, strlen(photo_schema),
                                "t.cedar");
    snprintf(first, cap, "%s", v.first);
    return v.rc;
}

struct rule_case {
    const char *policy;
    bool valid;
    const char *message; /* substring of the first diagnostic, or NULL */
};

static const struct rule_case rule_cases[] = {
    {"permit(principal, action, resource);", true, NULL},
    {"permit(principal == User::\"a\", action == Action::\"view\", resource);", true, NULL},
    {"permit(principal, action, resource) when { resource.owner == principal };", true, NULL},
    {"permit(principal, action, resource) when { principal.age > 3 };", false, "optional"},
    {"permit(principal, action, resource) when { principal has age && principal.age > 3 };",
     true, NULL},
    {"permit(principal, action, resource) when { principal.nope };", false, "not declared"},
    {"permit(principal, action, resource) when { resource.size == \"big\" };", false,
     "incompatible"},
    {"permit(principal, action, resource) when { 1 == \"a\" };", true, NULL},
    {"permit(principal, action, resource) when { [] == [] };", false, "empty set"},
    {"permit(principal, action, resource) when { [1, \"a\"].contains(1) };", false,
     "incompatible"},
    {"permit(principal, action == Action::\"nope\", resource);", false, "unknown action"},
    {"permit(principal is Nope, action, resource);", false, "unknown entity type"},
    {"permit(principal, action, resource) when { Color::\"green\" == Color::\"red\" };", false,
     "enumerated"},
    {"permit(principal, action, resource) when { context.ip.isIpv4() };", true, NULL},
    {"permit(principal, action, resource) when { ip(\"1.2.3\").isIpv4() };", false,
     "not a valid"},
    {"permit(principal, action, resource) when { ip(principal.name).isIpv4() };", false,
     "literal"},
    {"permit(principal, action, resource) when { resource.getTag(\"k\") == \"v\" };", false,
     "hasTag"},
    {"permit(principal, action, resource) when { resource.hasTag(\"k\") && "
     "resource.getTag(\"k\") == \"v\" };",
     true, NULL},
    {"permit(principal == Photo::\"p\", action, resource);", false, "no action"},
    {"permit(principal, action, resource) when { principal in resource };", true, NULL},
    {"permit(principal, action, resource) when { if true then 1 else \"a\" };", false,
     "expected Bool"},
    {"permit(principal, action, resource) when { if principal.name == \"x\" then 1 else "
     "\"a\" };",
     false, "incompatible"},
    {"permit(principal, action in [Action::\"view\"], resource) when { action == "
     "Action::\"read\" };",
     true, NULL},
    {"permit(principal, action, resource) when { principal.tags.containsAny([\"a\"]) };", true,
     NULL},
    {"permit(principal, action, resource) unless { context has level && context.level < 2 };",
     true, NULL},
    {"permit(principal, action, resource) when { principal == resource.owner || "
     "principal.age == 1 };",
     false, "optional"},
    {"permit(principal, action, resource) when { context.ip == ip(\"10.0.0.1\") };", true, NULL},
    {"permit(principal, action, resource) when { datetime(\"2024-01-01\") < "
     "datetime(\"2025-01-01\") };",
     true, NULL},
    {"permit(principal, action, resource) when { decimal(\"1.0\") < decimal(\"2.0\") };", false,
     "comparison"},
    {"permit(principal, action, resource) when { { a: 1 } == { a: \"x\" } };", false,
     "incompatible"},
};

TEST(rules)
{
    char first[512];
    for (size_t i = 0; i < KEEL_ARRAY_LEN(rule_cases); i++) {
        int rc = validate_one(rule_cases[i].policy, first, sizeof first);
        if ((rc == 0) != rule_cases[i].valid) {
            fprintf(stderr, "case %zu: %s\n  expected %s, got rc=%d (%s)\n", i,
                    rule_cases[i].policy, rule_cases[i].valid ? "valid" : "invalid", rc, first);
            CHECK(false);
            continue;
        }
        if (rule_cases[i].message) CHECK_CONTAINS(first, rule_cases[i].message);
    }
}

TEST(positions)
{
    char first[512];
    const char *p = "permit(principal, action, resource)\n"
                    "when {\n"
                    "  principal.nope\n"
                    "};";
    CHECK_INT(validate_one(p, first, sizeof first), 1);
    /* file:line:col: policy: message — the attribute access on line 3. */
    CHECK_CONTAINS(first, "t.cedar:3:");
    CHECK_CONTAINS(first, "policy0");
    CHECK_CONTAINS(first, "'nope'");
}

TEST(counts_each_policy)
{
    char first[512];
    const char *p = "permit(principal, action, resource) when { principal.nope };\n"
                    "permit(principal, action, resource) when { resource.nope };\n"
                    "permit(principal, action, resource);\n";
    CHECK_INT(validate_one(p, first, sizeof first), 2);
}

/* ---- requests and entities against the schema ------------------------------ */

/* Every corpus request carries "validateRequest": true and every corpus
 * entity set was accepted by Cedar with the schema, so all must conform. */
TEST(corpus_requests_and_entities)
{
    struct buf text;
    buf_init(&text);
    struct keel_err err;
    REQUIRE(keel_read_file(test_shared("data/cedar-corpus-public.jsonl"), 1u << 30, &text,
                           &err) == 0);
    int requests = 0, req_ok = 0, entity_sets = 0, ent_ok = 0, shown = 0;
    char *line = text.data;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        struct arena a;
        arena_init(&a);
        struct json_value *doc;
        struct policy_schema *schema = NULL;
        if (len && json_parse(&a, line, len, NULL, &doc, &err) == 0) {
            struct json_value *sch = json_get(doc, "schema");
            if (json_is(sch, JSON_STRING) &&
                policy_schema_parse(sch->u.s.str, sch->len, "schema", &schema, &err) == 0) {
                entity_sets++;
                if (policy_validate_entities_json(schema, json_get(doc, "entities"), &err) == 0)
                    ent_ok++;
                else if (shown++ < 10)
                    fprintf(stderr, "%s entities: %s\n", json_get_str(doc, "name", "?"),
                            err.msg);
                struct json_value *reqs = json_get(doc, "requests");
                for (uint32_t i = 0; reqs && i < reqs->len; i++) {
                    struct json_value *r = reqs->u.items[i];
                    if (!json_get_bool(r, "validateRequest", false)) continue;
                    requests++;
                    if (policy_validate_request_json(schema, r, &err) == 0) req_ok++;
                    else if (shown++ < 10)
                        fprintf(stderr, "%s request %u: %s\n", json_get_str(doc, "name", "?"),
                                i, err.msg);
                }
            }
        }
        policy_schema_free(schema);
        arena_cleanup(&a);
        line = nl ? nl + 1 : NULL;
    }
    buf_cleanup(&text);
    printf("cedar corpus: %d/%d requests and %d/%d entity sets conform\n", req_ok, requests,
           ent_ok, entity_sets);
    CHECK(requests > 30000);
    CHECK_INT(req_ok, requests);
    CHECK_INT(ent_ok, entity_sets);
}

static int check_request(const char *json_text, char *msg, size_t cap)
{
    struct policy_schema *schema;
    struct keel_err err;
    keel_err_clear(&err);
    if (policy_schema_parse(photo_schema, strlen(photo_schema), "s", &schema, &err)) return -100;
    struct arena a;
    arena_init(&a);
    struct json_value *j;
    int rc = json_parse(&a, json_text, strlen(json_text), NULL, &j, &err);
    if (rc == 0) rc = policy_validate_request_json(schema, j, &err);
    snprintf(msg, cap, "%s", err.msg);
    arena_cleanup(&a);
    policy_schema_free(schema);
    return rc;
}

TEST(request_rules)
{
    char msg[KEEL_ERR_MSG_MAX];
    CHECK_INT(check_request("{\"principal\":{\"type\":\"User\",\"id\":\"a\"},"
                            "\"action\":{\"type\":\"Action\",\"id\":\"view\"},"
                            "\"resource\":{\"type\":\"Photo\",\"id\":\"p\"},"
                            "\"context\":{\"ip\":{\"__extn\":{\"fn\":\"ip\",\"arg\":\"1.2.3.4\"}}}}",
                            msg, sizeof msg),
              0);
    /* Wrong resource type for the action. */
    CHECK(check_request("{\"principal\":{\"type\":\"User\",\"id\":\"a\"},"
                        "\"action\":{\"type\":\"Action\",\"id\":\"view\"},"
                        "\"resource\":{\"type\":\"User\",\"id\":\"p\"},"
                        "\"context\":{\"ip\":{\"__extn\":{\"fn\":\"ip\",\"arg\":\"1.2.3.4\"}}}}",
                        msg, sizeof msg) < 0);
    CHECK_CONTAINS(msg, "resource types [Photo]");
    /* Missing required context attribute. */
    CHECK(check_request("{\"principal\":{\"type\":\"User\",\"id\":\"a\"},"
                        "\"action\":{\"type\":\"Action\",\"id\":\"view\"},"
                        "\"resource\":{\"type\":\"Photo\",\"id\":\"p\"},\"context\":{}}",
                        msg, sizeof msg) < 0);
    CHECK_CONTAINS(msg, "'ip' is missing");
    /* Undeclared context attribute; wrong type. */
    CHECK(check_request("{\"principal\":{\"type\":\"User\",\"id\":\"a\"},"
                        "\"action\":{\"type\":\"Action\",\"id\":\"view\"},"
                        "\"resource\":{\"type\":\"Photo\",\"id\":\"p\"},"
                        "\"context\":{\"ip\":{\"__extn\":{\"fn\":\"ip\",\"arg\":\"1.2.3.4\"}},"
                        "\"extra\":1}}",
                        msg, sizeof msg) < 0);
    CHECK_CONTAINS(msg, "'extra' is not declared");
    CHECK(check_request("{\"principal\":{\"type\":\"User\",\"id\":\"a\"},"
                        "\"action\":{\"type\":\"Action\",\"id\":\"view\"},"
                        "\"resource\":{\"type\":\"Photo\",\"id\":\"p\"},"
                        "\"context\":{\"ip\":{\"__extn\":{\"fn\":\"ip\",\"arg\":\"1.2.3.4\"}},"
                        "\"level\":\"high\"}}",
                        msg, sizeof msg) < 0);
    CHECK_CONTAINS(msg, "context.level");
    /* An action group without appliesTo takes no requests. */
    CHECK(check_request("{\"principal\":{\"type\":\"User\",\"id\":\"a\"},"
                        "\"action\":{\"type\":\"Action\",\"id\":\"read\"},"
                        "\"resource\":{\"type\":\"Photo\",\"id\":\"p\"},\"context\":{}}",
                        msg, sizeof msg) < 0);
    CHECK_CONTAINS(msg, "no appliesTo");
    CHECK(check_request("{\"principal\":{\"type\":\"User\",\"id\":\"a\"},"
                        "\"action\":{\"type\":\"Action\",\"id\":\"nope\"},"
                        "\"resource\":{\"type\":\"Photo\",\"id\":\"p\"},\"context\":{}}",
                        msg, sizeof msg) < 0);
    CHECK_CONTAINS(msg, "not declared");
}

static int check_entities(const char *json_text, char *msg, size_t cap)
{
    struct policy_schema *schema;
    struct keel_err err;
    keel_err_clear(&err);
    if (policy_schema_parse(photo_schema, strlen(photo_schema), "s", &schema, &err)) return -100;
    struct arena a;
    arena_init(&a);
    struct json_value *j;
    int rc = json_parse(&a, json_text, strlen(json_text), NULL, &j, &err);
    if (rc == 0) rc = policy_validate_entities_json(schema, j, &err);
    snprintf(msg, cap, "%s", err.msg);
    arena_cleanup(&a);
    policy_schema_free(schema);
    return rc;
}

TEST(entity_rules)
{
    char msg[KEEL_ERR_MSG_MAX];
    const char *good =
        "[{\"uid\":{\"type\":\"User\",\"id\":\"a\"},\"attrs\":{\"name\":\"A\",\"tags\":[]},"
        "\"parents\":[{\"type\":\"Group\",\"id\":\"g\"}]},"
        "{\"uid\":{\"type\":\"Group\",\"id\":\"g\"},\"attrs\":{},\"parents\":[]},"
        "{\"uid\":{\"type\":\"Photo\",\"id\":\"p\"},\"attrs\":{\"owner\":{\"type\":\"User\","
        "\"id\":\"a\"},\"private\":false,\"size\":3},\"parents\":[],\"tags\":{\"k\":\"v\"}}]";
    CHECK_INT(check_entities(good, msg, sizeof msg), 0);
    CHECK(check_entities("[{\"uid\":{\"type\":\"User\",\"id\":\"a\"},\"attrs\":{\"name\":\"A\"},"
                         "\"parents\":[]}]",
                         msg, sizeof msg) < 0);
    CHECK_CONTAINS(msg, "'tags' is missing");
    CHECK(check_entities("[{\"uid\":{\"type\":\"Group\",\"id\":\"g\"},\"attrs\":{},"
                         "\"parents\":[{\"type\":\"Photo\",\"id\":\"p\"}]}]",
                         msg, sizeof msg) < 0);
    CHECK_CONTAINS(msg, "may not be a member of Photo");
    CHECK(check_entities("[{\"uid\":{\"type\":\"Nope\",\"id\":\"g\"},\"attrs\":{},"
                         "\"parents\":[]}]",
                         msg, sizeof msg) < 0);
    CHECK_CONTAINS(msg, "does not declare");
    CHECK(check_entities("[{\"uid\":{\"type\":\"Color\",\"id\":\"green\"},\"attrs\":{},"
                         "\"parents\":[]}]",
                         msg, sizeof msg) < 0);
    CHECK_CONTAINS(msg, "enumerated");
    CHECK(check_entities("[{\"uid\":{\"type\":\"Group\",\"id\":\"g\"},\"attrs\":{},"
                         "\"parents\":[],\"tags\":{\"a\":\"b\"}}]",
                         msg, sizeof msg) < 0);
    CHECK_CONTAINS(msg, "declares none");
    CHECK(check_entities("[{\"uid\":{\"type\":\"Photo\",\"id\":\"p\"},\"attrs\":{\"owner\":"
                         "{\"type\":\"Group\",\"id\":\"g\"},\"private\":false,\"size\":3},"
                         "\"parents\":[]}]",
                         msg, sizeof msg) < 0);
}
