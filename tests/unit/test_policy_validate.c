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
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>

static int64_t validate_ns; /* time spent inside policy_validate */

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
    int64_t t0 = keel_mono_ns();
    v.rc = policy_validate(schema, set, &diags);
    validate_ns += keel_mono_ns() - t0;
    for (size_t i = 0; i < diags.len; i++) {
        if (diags.items[i].warning) continue; /* the first error */
        snprintf(v.first, sizeof v.first, "%s:%d:%d: %s: %s", diags.items[i].file,
                 diags.items[i].line, diags.items[i].column, diags.items[i].policy_id,
                 diags.items[i].message);
        break;
    }
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
    /* KEEL_VALIDATE_JSONL substitutes another file in the same format (the
     * random differential cases of tests/integration/policy_check_diff.sh). */
    const char *alt = getenv("KEEL_VALIDATE_JSONL");
    REQUIRE(keel_read_file(alt ? alt : test_shared("data/cedar-corpus-public.jsonl"), 1u << 30,
                           &text, &err) == 0);
    int total = 0, agree = 0, listed = 0;
    validate_ns = 0;
    int64_t case_ns = 0;
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
                int64_t t0 = keel_mono_ns();
                struct verdict v =
                    run_case(pol->u.s.str, pol->len, sch->u.s.str, sch->len, name);
                case_ns += keel_mono_ns() - t0;
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
    printf("%s: %d/%d agree (%.2f%%), %d disagreements\n", alt ? alt : "cedar corpus", agree,
           total, rate, total - agree);
    printf("policy_validate: %.1f us per corpus case on average (%.1f ms in all); with "
           "schema and policy parsing %.1f us\n",
           total ? validate_ns / 1000.0 / total : 0.0, validate_ns / 1e6,
           total ? case_ns / 1000.0 / total : 0.0);
    if (alt) {
        CHECK(total > 0);
        CHECK_INT(agree, total); /* the reference decided these: all must agree */
    } else {
        CHECK(total > 3000);
        CHECK(rate >= 99.5);
    }
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
 * entity set was accepted by Cedar with the schema, so all must conform.
 * With KEEL_REQUESTS_JSONL naming a file in the same format (the random
 * cases of tests/integration/policy_check_diff.sh), requests marked
 * "validateRequest": false and entity sets marked "entitiesValid": false
 * must be rejected too. */
TEST(corpus_requests_and_entities)
{
    struct buf text;
    buf_init(&text);
    struct keel_err err;
    const char *alt = getenv("KEEL_REQUESTS_JSONL");
    REQUIRE(keel_read_file(alt ? alt : test_shared("data/cedar-corpus-public.jsonl"), 1u << 30,
                           &text, &err) == 0);
    int requests = 0, req_ok = 0, rejects = 0, rej_ok = 0, entity_sets = 0, ent_ok = 0;
    int bad_sets = 0, bad_ok = 0;
    int shown = 0;
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
                /* "entitiesValid": false marks a set Cedar rejects. */
                bool conforms_want = json_get_bool(doc, "entitiesValid", true);
                bool conforms =
                    policy_validate_entities_json(schema, json_get(doc, "entities"), &err) == 0;
                if (conforms_want) {
                    entity_sets++;
                    if (conforms) ent_ok++;
                } else {
                    bad_sets++;
                    if (!conforms) bad_ok++;
                }
                if (conforms != conforms_want && shown++ < 10)
                    fprintf(stderr, "%s entities: expected %s, got %s\n",
                            json_get_str(doc, "name", "?"), conforms_want ? "valid" : "invalid",
                            conforms ? "valid" : err.msg);
                struct json_value *reqs = json_get(doc, "requests");
                for (uint32_t i = 0; reqs && i < reqs->len; i++) {
                    struct json_value *r = reqs->u.items[i];
                    struct json_value *want = json_get(r, "validateRequest");
                    if (!json_is_bool(want)) continue;
                    bool ok = policy_validate_request_json(schema, r, &err) == 0;
                    if (want->type == JSON_TRUE) {
                        requests++;
                        if (ok) req_ok++;
                    } else {
                        rejects++;
                        if (!ok) rej_ok++;
                    }
                    if (ok != (want->type == JSON_TRUE) && shown++ < 10)
                        fprintf(stderr, "%s request %u: expected %s, got %s\n",
                                json_get_str(doc, "name", "?"), i,
                                want->type == JSON_TRUE ? "valid" : "invalid",
                                ok ? "valid" : err.msg);
                }
            }
        }
        policy_schema_free(schema);
        arena_cleanup(&a);
        line = nl ? nl + 1 : NULL;
    }
    buf_cleanup(&text);
    printf("%s: %d/%d valid requests accepted, %d/%d invalid requests rejected, %d/%d "
           "entity sets conform, %d/%d non-conforming sets rejected\n",
           alt ? alt : "cedar corpus", req_ok, requests, rej_ok, rejects, ent_ok, entity_sets,
           bad_ok, bad_sets);
    if (!alt) CHECK(requests > 30000);
    CHECK_INT(req_ok, requests);
    CHECK_INT(rej_ok, rejects);
    CHECK_INT(ent_ok, entity_sets);
    CHECK_INT(bad_ok, bad_sets);
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
    /* Parents may be any type reachable through memberOfTypes (Cedar checks
     * against the transitive closure). */
    const char *org_schema_entities =
        "[{\"uid\":{\"type\":\"Group\",\"id\":\"g\"},\"attrs\":{},"
        "\"parents\":[{\"type\":\"Group\",\"id\":\"h\"}]}]";
    CHECK(check_entities(org_schema_entities, msg, sizeof msg) < 0); /* Group not in Group */
    /* An action in entity data must match its declaration. */
    CHECK(check_entities("[{\"uid\":{\"type\":\"Action\",\"id\":\"read\"},\"attrs\":{},"
                         "\"parents\":[]}]",
                         msg, sizeof msg) < 0);
    CHECK_CONTAINS(msg, "does not match its schema declaration");
    CHECK_INT(check_entities("[{\"uid\":{\"type\":\"Action\",\"id\":\"read\"},\"attrs\":{},"
                             "\"parents\":[{\"type\":\"Action\",\"id\":\"view\"}]}]",
                             msg, sizeof msg),
              0);
    CHECK(check_entities("[{\"uid\":{\"type\":\"Photo\",\"id\":\"p\"},\"attrs\":{\"owner\":"
                         "{\"type\":\"Group\",\"id\":\"g\"},\"private\":false,\"size\":3},"
                         "\"parents\":[]}]",
                         msg, sizeof msg) < 0);
}

/* ---- differential check against the reference implementation -------------- */

/* Tricky cases (capabilities, singleton booleans, LUBs, tags, extension
 * types, action groups, templates): each policy is validated by us and by
 * Cedar itself (@cedar-policy/cedar-wasm through the Node peer).  Cedar
 * 4.11+ reports "unable to find an applicable action" as a warning; the
 * shared corpus (Cedar 4.10) treats it as an error, and so do we. */
static const char diff_schema[] =
    "namespace NS { entity Thing; action act appliesTo { principal: [Thing], resource: [Thing] }; }\n"
    "entity User in [Group] = { name: String, age?: Long, tags: Set<String>, rec: { a: Long, b?: String }, friend?: User, grp: Group } tags String;\n"
    "entity Group in [Org] = { level: Long };\n"
    "entity Org;\n"
    "entity Photo in [Album] = { owner: User, private: Bool, size: Long, meta?: { w: Long } };\n"
    "entity Album = { owner: User };\n"
    "entity Color enum [\"red\", \"blue\"];\n"
    "action view, edit appliesTo { principal: [User], resource: [Photo, Album], context: { ip: ipaddr, level?: Long, when: datetime, d: duration, amt: decimal } };\n"
    "action share in [view] appliesTo { principal: [User, Group], resource: [Photo], context: { to: User } };\n"
    "action \"group\" ;\n"
    "action admin in [\"group\"] appliesTo { principal: [User], resource: [Org] };\n";

static const char *const diff_policies[] = {
    "permit(principal, action, resource) when { principal.friend.name == \"x\" };",
    "permit(principal, action, resource) when { principal has friend && principal.friend.name == \"x\" };",
    "permit(principal, action, resource) when { principal has friend && principal.friend has age && principal.friend.age > 1 };",
    "permit(principal, action, resource) when { resource.owner == principal };",
    "permit(principal, action == Action::\"view\", resource) when { resource.owner == principal };",
    "permit(principal, action == Action::\"view\", resource is Photo) when { resource.owner == principal };",
    "permit(principal, action == Action::\"share\", resource) when { principal.name == \"x\" };",
    "permit(principal is User, action == Action::\"share\", resource) when { principal.name == \"x\" };",
    "permit(principal, action, resource) when { principal in Group::\"g\" };",
    "permit(principal, action, resource) when { principal in Org::\"g\" && principal.level > 1 };",
    "permit(principal, action, resource) when { resource in Album::\"a\" };",
    "permit(principal, action, resource) when { action in Action::\"view\" && context.to == principal };",
    "permit(principal, action in Action::\"view\", resource) when { context.to == principal };",
    "permit(principal, action in [Action::\"view\", Action::\"edit\"], resource) when { context.ip.isLoopback() };",
    "permit(principal, action in Action::\"group\", resource) when { resource.nope };",
    "permit(principal, action, resource) when { if principal has age then principal.age > 1 else false };",
    "permit(principal, action, resource) when { principal has age || principal.age > 1 };",
    "permit(principal, action, resource) when { !(principal has age) || principal.age > 1 };",
    "permit(principal, action, resource) unless { !(principal has age) || principal.age > 1 };",
    "permit(principal, action, resource) when { principal.rec.b == \"x\" };",
    "permit(principal, action, resource) when { principal.rec has b && principal.rec.b == \"x\" };",
    "permit(principal, action, resource) when { principal.rec == { a: 1 } };",
    "permit(principal, action, resource) when { principal.rec == { a: 1, b: \"x\" } };",
    "permit(principal, action, resource) when { { a: 1 } == { a: 1, b: \"x\" } };",
    "permit(principal, action, resource) when { [principal, resource].contains(principal) };",
    "permit(principal, action, resource) when { [principal, principal.grp].contains(principal) };",
    "permit(principal, action, resource) when { principal.tags.contains(1) };",
    "permit(principal, action, resource) when { principal.tags.containsAll([1]) };",
    "permit(principal, action, resource) when { principal.tags.containsAll([\"a\"]) && principal.tags.isEmpty() };",
    "permit(principal, action, resource) when { principal.getTag(\"a\") == \"b\" };",
    "permit(principal, action, resource) when { principal.hasTag(\"a\") && principal.getTag(\"a\") == \"b\" };",
    "permit(principal, action, resource) when { resource.hasTag(\"a\") };",
    "permit(principal, action, resource) when { principal.hasTag(\"a\") && principal.getTag(\"b\") == \"b\" };",
    "permit(principal, action, resource) when { context.when < datetime(\"2024-01-01\") };",
    "permit(principal, action, resource) when { context.amt < decimal(\"1.0\") };",
    "permit(principal, action, resource) when { context.amt.lessThan(decimal(\"1.0\")) };",
    "permit(principal, action, resource) when { context.d.toDays() > 1 && context.when.toTime() < duration(\"1h\") };",
    "permit(principal, action, resource) when { context.when.durationSince(datetime(\"2020-01-01\")) > duration(\"1d\") };",
    "permit(principal, action, resource) when { decimal(\"1.00001\") == context.amt };",
    "permit(principal, action, resource) when { datetime(\"2024-13-01\") == context.when };",
    "permit(principal, action, resource) when { duration(\"1x\") == context.d };",
    "permit(principal, action, resource) when { ip(\"::1\").isIpv6() };",
    "permit(principal, action, resource) when { context has level && context.level + 1 > 2 };",
    "permit(principal, action, resource) when { context.level > 2 };",
    "permit(principal, action, resource) when { principal == Color::\"red\" };",
    "permit(principal, action, resource) when { Color::\"green\" == Color::\"red\" };",
    "permit(principal, action, resource) when { NS::Thing::\"x\" == principal };",
    "permit(principal, action == NS::Action::\"act\", resource);",
    "permit(principal, action, resource) when { action == NS::Action::\"act\" };",
    "permit(principal, action, resource) when { principal is Group };",
    "permit(principal is Group, action, resource);",
    "permit(principal is Group, action == Action::\"share\", resource);",
    "permit(principal is Group, action == Action::\"share\", resource) when { principal.level > 1 };",
    "permit(principal in Org::\"o\", action == Action::\"share\", resource) when { principal.level > 1 };",
    "permit(principal, action, resource) when { principal.name like \"a*\" && 1 == 1 };",
    "permit(principal, action, resource) when { principal.age like \"a\" };",
    "permit(principal, action, resource) when { principal == principal.grp };",
    "permit(principal, action, resource) when { principal in principal.grp };",
    "permit(principal, action, resource) when { principal in [principal.grp, Org::\"o\"] };",
    "permit(principal, action, resource) when { principal in [] };",
    "permit(principal, action, resource) when { resource.meta.w > 1 };",
    "permit(principal, action, resource) when { resource has meta && resource.meta.w > 1 };",
    "permit(principal, action, resource) when { resource has meta && resource.meta has w };",
    "permit(principal, action, resource) when { (if true then principal else resource) == principal };",
    "permit(principal, action, resource) when { (if context.ip.isIpv4() then principal else resource) == principal };",
    "permit(principal, action, resource) when { (if context.ip.isIpv4() then 1 else 2) == 1 };",
    "permit(principal, action, resource) when { true && false && principal.nope };",
    "permit(principal, action, resource) when { false || principal.nope };",
    "permit(principal, action, resource) when { principal.nope || true };",
    "permit(principal, action, resource) when { true || principal.nope };",
    "permit(principal, action, resource) when { -principal.size > 1 };",
    "permit(principal, action, resource) when { resource.size * 2 > 1 && resource is Photo };",
    "permit(principal, action, resource) when { resource is Photo && resource.size * 2 > 1 };",
    "permit(principal == ?principal, action, resource);",
    "permit(principal in ?principal, action == Action::\"share\", resource) when { principal.name == \"x\" };",
    "permit(principal, action, resource in ?resource) when { resource.owner == principal };",
    "permit(principal, action, resource) when { context.to == principal };",
    "permit(principal, action == Action::\"edit\", resource) when { context.to == principal };",
    "permit(principal, action == Action::\"admin\", resource) when { resource == Org::\"x\" };",
    "permit(principal, action, resource == Org::\"x\");",
    "permit(principal, action == Action::\"view\", resource == Org::\"x\");",
    "permit(principal == Group::\"g\", action == Action::\"view\", resource);",
    "permit(principal in Group::\"g\", action == Action::\"view\", resource);",
    "permit(principal, action, resource) when { principal.rec.a == 1 } when { principal.nope } ;",
    "permit(principal, action, resource) when { ip(\"1.2.3.4\") == ip(\"1.2.3.4\") };",
    "permit(principal, action, resource) when { [1,2] == [1] };",
    "permit(principal, action, resource) when { [1,2] == [\"a\"] };",
    "permit(principal, action, resource) when { principal.tags == [1] };",
    "permit(principal, action, resource) when { principal has rec.b };",
    "permit(principal, action, resource) when { \"a\" == 1 };",
    "permit(principal, action, resource) when { principal.age == \"a\" };",
    "permit(principal, action, resource) when { principal.grp has level && principal.grp.level > 1 };",
    "permit(principal, action, resource) when { Group::\"g\".level > 1 };",
    "permit(principal, action, resource) when { Group::\"g\" has level };",
    "permit(principal, action, resource) when { principal.grp.level == resource.size };",
    "permit(principal, action, resource) when { resource.owner.grp in Org::\"o\" };",
    "permit(principal, action, resource) when { principal in resource.owner.grp };",
    "permit(principal, action, resource) when { context.to in principal.grp };",
    "permit(principal, action, resource) when { resource in principal };",
    "permit(principal, action == Action::\"admin\", resource) when { resource in principal };",
    "permit(principal, action, resource) when { action in [Action::\"view\", Action::\"group\"] };",
    "permit(principal, action, resource) when { action in Action::\"nope\" };",
    "permit(principal, action, resource) when { principal in Action::\"view\" };",
    "permit(principal, action, resource) when { Action::\"share\" in Action::\"view\" };",
    "permit(principal, action, resource) when { [Action::\"view\", NS::Action::\"act\"].contains(action) };",
    "permit(principal, action, resource) when { { x: principal }.x.name == \"a\" };",
    "permit(principal, action, resource) when { { x: principal.age }.x > 1 };",
    "permit(principal, action, resource) when { principal.hasTag(principal.name) && principal.getTag(principal.name) == \"x\" };",
    "permit(principal, action, resource) when { principal.hasTag(\"a\") || principal.getTag(\"a\") == \"x\" };",
    "permit(principal, action, resource) when { if principal.hasTag(\"a\") then principal.getTag(\"a\") == \"x\" else true };",
    "permit(principal, action, resource) when { principal.isEmpty() };",
    "permit(principal, action, resource) when { ip(context.ip) == context.ip };",
    "permit(principal, action, resource) when { context.ip.isInRange(context.ip) && context.ip.isMulticast() };",
    "permit(principal, action, resource) when { context.when.offset(duration(\"1h\")).toDate() == context.when };",
    "permit(principal, action, resource) when { context.d.toMilliseconds() + context.d.toSeconds() > 0 };",
    "permit(principal, action, resource) when { context.amt.greaterThanOrEqual(context.amt) };",
    "permit(principal, action, resource) when { context.amt >= context.amt };",
    "permit(principal, action, resource) when { context.d <= context.d && context.when > context.when };",
    "permit(principal, action, resource) when { context.when < context.d };",
    "permit(principal, action, resource) when { 1 < context.level };",
    "permit(principal, action, resource) when { principal.age has x };",
    "permit(principal, action, resource) when { principal has \"name\" && principal[\"name\"] == \"a\" };",
    "permit(principal, action, resource) when { principal.rec[\"b\"] == \"x\" };",
    "permit(principal, action, resource) when { resource has owner && resource.owner.age > 0 };",
    "permit(principal, action, resource) when { resource is Album && resource.owner.name == \"\" };",
    "permit(principal, action, resource is Album) when { resource.size > 0 };",
    "permit(principal, action, resource is Album in Photo::\"p\");",
    "permit(principal, action, resource is Photo in Album::\"p\") when { resource.private };",
    "permit(principal is User in Group::\"g\", action, resource) when { principal.grp.level > 0 };",
    "permit(principal is Org in Group::\"g\", action, resource);",
    "forbid(principal, action, resource) when { [context.when, context.when].contains(datetime(\"2020-01-01\")) };",
    "forbid(principal, action, resource) when { [1, true].isEmpty() };",
    "forbid(principal, action, resource) when { [[1], [2, 3]].contains([]) };",
    "forbid(principal, action, resource) when { [{a: 1}, {a: 2}].contains({a: 3}) };",
    "forbid(principal, action, resource) when { [{a: 1}, {b: 2}].isEmpty() };",
    "forbid(principal, action, resource) when { [principal.rec, {a: 1}].isEmpty() };",
    "forbid(principal, action, resource) when { [principal.rec, {a: 1, b: \"x\"}].isEmpty() };",
    "forbid(principal, action, resource) when { principal.tags.containsAny(principal.tags) };",
    "forbid(principal, action, resource) when { principal.tags.containsAny([principal]) };",
    "forbid(principal, action, resource) when { if 1 > 0 then principal.age else 1 };",
    "forbid(principal, action, resource) when { (if principal has age then principal.age else 0) > 1 };",
    "forbid(principal, action, resource) when { true };",
    "forbid(principal, action, resource) when { 1 };",
    "forbid(principal, action, resource) when { principal };",
    "forbid(principal, action, resource) unless { context.ip };",
};

TEST(differential_cedar_wasm)
{
    char node[4096], script[4096], input[] = "/tmp/keel_cedar_diff_XXXXXX";
    snprintf(node, sizeof node, "%s", test_source("tests/peers/node"));
    snprintf(script, sizeof script, "%s",
             test_source("tests/integration/policy_check_cedar_validate.js"));
    FILE *probe = fopen(node, "r");
    if (!probe) {
        printf("skipped: tests/peers/node not installed (run scripts/peers)\n");
        return;
    }
    fclose(probe);
    int fd = mkstemp(input);
    REQUIRE(fd >= 0);
    FILE *in = fdopen(fd, "w");
    struct buf line;
    buf_init(&line);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(diff_policies); i++) {
        buf_reset(&line);
        buf_puts(&line, "{\"schema\":");
        json_write_string(&line, diff_schema, strlen(diff_schema));
        buf_puts(&line, ",\"policy\":");
        json_write_string(&line, diff_policies[i], strlen(diff_policies[i]));
        buf_puts(&line, "}\n");
        fputs(line.data, in);
    }
    fclose(in);
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "'%s' '%s' < '%s'", node, script, input);
    FILE *out = popen(cmd, "r");
    REQUIRE(out != NULL);
    char row[65536];
    size_t i = 0, agree = 0;
    while (i < KEEL_ARRAY_LEN(diff_policies) && fgets(row, sizeof row, out)) {
        struct arena a;
        arena_init(&a);
        struct json_value *r;
        struct keel_err err;
        if (json_parse(&a, row, strlen(row), NULL, &r, &err) == 0 && json_get(r, "valid")) {
            bool cedar_valid = json_get_bool(r, "valid", false) &&
                               !json_get_bool(r, "noApplicableAction", false);
            char first[512];
            struct verdict v = run_case(diff_policies[i], strlen(diff_policies[i]), diff_schema,
                                        strlen(diff_schema), "diff.cedar");
            snprintf(first, sizeof first, "%s", v.first);
            if ((v.rc == 0) == cedar_valid) {
                agree++;
            } else {
                fprintf(stderr, "differs from Cedar: %s\n  cedar: %s %s\n  keel: rc=%d %s\n",
                        diff_policies[i], cedar_valid ? "valid" : "invalid", row, v.rc, first);
            }
        } else {
            fprintf(stderr, "cedar-wasm could not check: %s (%s)\n", diff_policies[i], row);
        }
        arena_cleanup(&a);
        i++;
    }
    pclose(out);
    unlink(input);
    buf_cleanup(&line);
    printf("differential vs cedar-wasm: %zu/%zu agree\n", agree, KEEL_ARRAY_LEN(diff_policies));
    CHECK_INT(i, KEEL_ARRAY_LEN(diff_policies));
    CHECK_INT(agree, KEEL_ARRAY_LEN(diff_policies));
}

TEST(templates_and_links)
{
    struct policy_schema *schema;
    struct keel_err err;
    keel_err_clear(&err);
    REQUIRE(policy_schema_parse(photo_schema, strlen(photo_schema), "s", &schema, &err) == 0);
    struct policy_set *set = policy_set_new(POLICY_PARSE_ID_ANNOTATIONS);
    const char *t = "@id(\"t\")\npermit(principal == ?principal, action == Action::\"view\", "
                    "resource in ?resource) when { resource.owner == principal };\n";
    REQUIRE(policy_set_add_text(set, t, strlen(t), "t.cedar", &err) == 0);
    /* The template alone is valid. */
    CHECK_INT(policy_validate(schema, set, NULL), 0);
    struct policy_euid user = {"User", "alice", 4, 5}, photo = {"Photo", "p", 5, 1};
    struct policy_euid nope = {"Nope", "x", 4, 1};
    REQUIRE(policy_set_link(set, "t", "good", &user, &photo, &err) == 0);
    CHECK_INT(policy_validate(schema, set, NULL), 0);
    /* A link whose principal is a Photo matches no action's appliesTo. */
    REQUIRE(policy_set_link(set, "t", "swapped", &photo, &photo, &err) == 0);
    struct policy_diag_list d;
    policy_diag_list_init(&d);
    CHECK_INT(policy_validate(schema, set, &d), 1);
    REQUIRE(d.len >= 1);
    CHECK(!d.items[0].warning);
    CHECK_STR(d.items[0].policy_id, "swapped");
    CHECK_CONTAINS(d.items[0].message, "no action");
    policy_diag_list_cleanup(&d);
    /* A link to an undeclared entity type. */
    REQUIRE(policy_set_link(set, "t", "unknown", &nope, &photo, &err) == 0);
    policy_diag_list_init(&d);
    CHECK(policy_validate(schema, set, &d) >= 2);
    bool seen = false;
    for (size_t i = 0; i < d.len; i++)
        if (!strcmp(d.items[i].policy_id, "unknown") &&
            strstr(d.items[i].message, "unknown entity type 'Nope'"))
            seen = true;
    CHECK(seen);
    policy_diag_list_cleanup(&d);
    policy_set_free(set);
    policy_schema_free(schema);
}

TEST(impossible_policy_is_a_warning)
{
    struct policy_schema *schema;
    struct policy_set *set;
    struct keel_err err;
    keel_err_clear(&err);
    REQUIRE(policy_schema_parse(photo_schema, strlen(photo_schema), "s", &schema, &err) == 0);
    /* Photos are never principals: false everywhere, yet valid (as in Cedar). */
    const char *p = "permit(principal, action, resource) when { principal is Photo };\n"
                    "permit(principal, action, resource) when { principal.nope };\n";
    REQUIRE(policy_set_parse(p, strlen(p), "w.cedar", 0, &set, &err) == 0);
    struct policy_diag_list d;
    policy_diag_list_init(&d);
    CHECK_INT(policy_validate(schema, set, &d), 1);
    int warnings = 0, errors = 0;
    for (size_t i = 0; i < d.len; i++) {
        if (d.items[i].warning) {
            warnings++;
            CHECK_STR(d.items[i].policy_id, "policy0");
            CHECK_CONTAINS(d.items[i].message, "impossible");
            CHECK_INT(d.items[i].line, 1);
        } else {
            errors++;
            CHECK_STR(d.items[i].policy_id, "policy1");
        }
    }
    CHECK_INT(warnings, 1);
    CHECK_INT(errors, 1);
    policy_diag_list_cleanup(&d);
    policy_set_free(set);
    policy_schema_free(schema);
}
