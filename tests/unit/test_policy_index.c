/*
 * test_policy_index.c — the authorizer's scope index must never change a
 * decision: random policy sets (every scope form, several files, errors in
 * conditions) are authorized against the same set written with every
 * scope constraint moved into a condition (so nothing is indexed), and
 * decisions, reasons and errors must agree; plus the index's own edge
 * cases (long lists under one key, policy records with links, duplicate
 * uids in `action in [...]`) and that it actually prunes; that policies
 * stored as records with their conditions packed (across segments, and a
 * block larger than a segment) evaluate as parsed; and that a large
 * entity store, which is laid out again after loading, keeps every
 * attribute, tag, key (with NUL bytes) and ancestor.
 */
#include "test.h"
#include "json_fixture.h"

#include "json/json.h"
#include "policy/policy.h"

static uint32_t rng_state = 2463534242u;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state % n;
}

#define USERS 40
#define GROUPS 10
#define ORGS 3
#define DOCS 60
#define FOLDERS 8
#define ACTIONS 6

/* Users in one or two groups, groups in orgs, docs in folders, actions
 * a0..a3 in Action::"grp". */
static void gen_entities(struct buf *b)
{
    buf_putc(b, '[');
    for (int u = 0; u < USERS; u++)
        buf_printf(b,
                   "{\"uid\":{\"type\":\"User\",\"id\":\"u%d\"},\"attrs\":{\"level\":%d},"
                   "\"parents\":[{\"type\":\"Group\",\"id\":\"g%d\"}%s]},",
                   u, u % 4, u % GROUPS, u % 3 ? ",{\"type\":\"Group\",\"id\":\"g7\"}" : "");
    for (int g = 0; g < GROUPS; g++)
        buf_printf(b,
                   "{\"uid\":{\"type\":\"Group\",\"id\":\"g%d\"},\"attrs\":{},\"parents\":[{"
                   "\"type\":\"Org\",\"id\":\"o%d\"}]},",
                   g, g % ORGS);
    for (int d = 0; d < DOCS; d++)
        buf_printf(b,
                   "{\"uid\":{\"type\":\"Doc\",\"id\":\"d%d\"},\"attrs\":{},\"parents\":[{"
                   "\"type\":\"Folder\",\"id\":\"f%d\"}]},",
                   d, d % FOLDERS);
    for (int a = 0; a < ACTIONS; a++)
        buf_printf(b,
                   "{\"uid\":{\"type\":\"Action\",\"id\":\"a%d\"},\"attrs\":{},\"parents\":[%s]}%s",
                   a, a < 4 ? "{\"type\":\"Action\",\"id\":\"grp\"}" : "",
                   a + 1 < ACTIONS ? "," : "");
    buf_putc(b, ']');
}

/* One random scope constraint for dimension d, as scope text and as the
 * equivalent condition. */
static void gen_constraint(int d, char *scope, char *cond, size_t cap)
{
    static const char *const var[] = {"principal", "action", "resource"};
    int k = (int)rnd(d == 1 ? 5 : 7);
    char e[96];
    if (k == 0) {
        snprintf(scope, cap, "%s", var[d]);
        snprintf(cond, cap, "true");
        return;
    }
    if (d == 0) {
        static const char *const forms[] = {"User::\"u%u\"", "Group::\"g%u\"", "Org::\"o%u\""};
        uint32_t f = rnd(3), n = f == 0 ? rnd(USERS + 2) : f == 1 ? rnd(GROUPS) : rnd(ORGS);
        snprintf(e, sizeof e, forms[f], n);
    } else if (d == 2) {
        if (rnd(2)) snprintf(e, sizeof e, "Doc::\"d%u\"", rnd(DOCS + 2));
        else snprintf(e, sizeof e, "Folder::\"f%u\"", rnd(FOLDERS));
    } else {
        if (rnd(4) == 0) snprintf(e, sizeof e, "Action::\"grp\"");
        else snprintf(e, sizeof e, "Action::\"a%u\"", rnd(ACTIONS + 1));
    }
    const char *type = d == 0 ? "User" : "Doc";
    switch (k) {
    case 1:
    case 2: /* == */
        snprintf(scope, cap, "%s == %s", var[d], e);
        snprintf(cond, cap, "%s == %s", var[d], e);
        break;
    case 3:
    case 4:
        if (d == 1 && k == 4) { /* action in [...] with a repeated uid sometimes */
            uint32_t x = rnd(ACTIONS + 1), y = rnd(ACTIONS + 1), z = rnd(2) ? x : rnd(ACTIONS);
            snprintf(scope, cap, "action in [Action::\"a%u\", Action::\"a%u\", Action::\"a%u\"]",
                     x, y, z);
            snprintf(cond, cap, "action in [Action::\"a%u\", Action::\"a%u\", Action::\"a%u\"]", x,
                     y, z);
            break;
        }
        snprintf(scope, cap, "%s in %s", var[d], e);
        snprintf(cond, cap, "%s in %s", var[d], e);
        break;
    case 5:
        snprintf(scope, cap, "%s is %s in %s", var[d], type, e);
        snprintf(cond, cap, "%s is %s in %s", var[d], type, e);
        break;
    default:
        snprintf(scope, cap, "%s is %s", var[d], type);
        snprintf(cond, cap, "%s is %s", var[d], type);
        break;
    }
}

/* Appends one random policy to idx (scoped) and flat (all in `when`). */
static void gen_policy(struct buf *idx, struct buf *flat)
{
    char scope[3][160], cond[3][160];
    for (int d = 0; d < 3; d++) gen_constraint(d, scope[d], cond[d], sizeof scope[d]);
    const char *eff = rnd(9) == 0 ? "forbid" : "permit";
    char extra[96] = "";
    uint32_t x = rnd(10);
    if (x == 0) snprintf(extra, sizeof extra, " when { principal.level > 1 }"); /* errs on groups */
    else if (x == 1) snprintf(extra, sizeof extra, " unless { context.n > %u }", rnd(100));
    buf_printf(idx, "%s(%s, %s, %s)%s;\n", eff, scope[0], scope[1], scope[2], extra);
    buf_printf(flat, "%s(principal, action, resource) when { %s && %s && %s }%s;\n", eff,
               cond[0], cond[1], cond[2], extra);
}

static void same_response(const struct policy_response *a, const struct policy_response *b)
{
    CHECK_INT(a->decision, b->decision);
    REQUIRE(a->nreasons == b->nreasons);
    for (size_t k = 0; k < a->nreasons; k++) CHECK_STR(a->reasons[k]->id, b->reasons[k]->id);
    REQUIRE(a->nerrors == b->nerrors);
    for (size_t k = 0; k < a->nerrors; k++) {
        CHECK_STR(a->errors[k].policy->id, b->errors[k].policy->id);
        /* the same message; positions differ (the texts differ) */
        const char *ma = strstr(a->errors[k].message, ": ");
        const char *mb = strstr(b->errors[k].message, ": ");
        REQUIRE(ma && mb);
        CHECK_STR(ma, mb);
    }
}

TEST(index_random_sets_match_flat_evaluation)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct buf eb;
    buf_init(&eb);
    gen_entities(&eb);
    struct policy_entities *es;
    REQUIRE(policy_entities_parse_json(test_parse(&a, eb.data), NULL, &es, &err) == 0);
    long evaluated_idx = 0, evaluated_flat = 0, allows = 0, errors = 0;
    for (int round = 0; round < 4; round++) {
        /* the indexed set comes in several files, so index lists grow across calls */
        struct policy_set *s1 = policy_set_new(0), *s2;
        struct buf flat;
        buf_init(&flat);
        int npol = round == 0 ? 40 : 700;
        for (int file = 0; file < 5; file++) {
            struct buf idx;
            buf_init(&idx);
            for (int i = 0; i < npol / 5; i++) gen_policy(&idx, &flat);
            REQUIRE(policy_set_add_text(s1, idx.data, idx.len, "idx.cedar", &err) == 0);
            buf_cleanup(&idx);
        }
        REQUIRE(policy_set_parse(flat.data, flat.len, "flat.cedar", 0, &s2, &err) == 0);
        REQUIRE(policy_set_count(s1) == policy_set_count(s2));
        struct policy_response r1, r2;
        policy_response_init(&r1);
        policy_response_init(&r2);
        for (int q = 0; q < 300; q++) {
            char p[32], act[32], res[32], ctx[64];
            uint32_t pk = rnd(10);
            if (pk < 7) snprintf(p, sizeof p, "User\",\"id\":\"u%u", rnd(USERS + 2));
            else if (pk < 9) snprintf(p, sizeof p, "Group\",\"id\":\"g%u", rnd(GROUPS));
            else snprintf(p, sizeof p, "Org\",\"id\":\"o%u", rnd(ORGS + 1));
            snprintf(act, sizeof act, "%s", rnd(8) ? "a" : "grp");
            if (act[0] == 'a') snprintf(act, sizeof act, "a%u", rnd(ACTIONS + 1));
            if (rnd(5)) snprintf(res, sizeof res, "Doc\",\"id\":\"d%u", rnd(DOCS + 2));
            else snprintf(res, sizeof res, "Folder\",\"id\":\"f%u", rnd(FOLDERS));
            snprintf(ctx, sizeof ctx, "{\"n\":%u}", rnd(100));
            char rq[512];
            snprintf(rq, sizeof rq,
                     "{\"principal\":{\"type\":\"%s\"},\"action\":{\"type\":\"Action\",\"id\":"
                     "\"%s\"},\"resource\":{\"type\":\"%s\"},\"context\":%s}",
                     p, act, res, ctx);
            struct policy_request req;
            REQUIRE(policy_request_from_json(&a, test_parse(&a, rq), NULL, &req, &err) == 0);
            policy_authorize(s1, es, &req, &r1);
            policy_authorize(s2, es, &req, &r2);
            same_response(&r1, &r2);
            CHECK(r1.nevaluated <= r2.nevaluated);
            CHECK(r2.nevaluated == policy_set_count(s2)); /* nothing to index there */
            evaluated_idx += (long)r1.nevaluated;
            evaluated_flat += (long)r2.nevaluated;
            allows += r1.decision == POLICY_ALLOW;
            errors += r1.nerrors > 0;
        }
        policy_response_cleanup(&r1);
        policy_response_cleanup(&r2);
        policy_set_free(s1);
        policy_set_free(s2);
        buf_cleanup(&flat);
    }
    /* the workload exercises both outcomes and errors, and the index prunes */
    CHECK(allows > 100 && allows < 1100);
    CHECK(errors > 20);
    CHECK(evaluated_idx * 4 < evaluated_flat);
    policy_entities_free(es);
    buf_cleanup(&eb);
    arena_cleanup(&a);
}

/* Many policies under one key (the list's run in the pool moves as it
 * doubles, also across files), interleaved with other keys: a request
 * evaluates exactly the policies of its key. */
TEST(index_long_lists_under_one_key)
{
    struct policy_set *set = policy_set_new(POLICY_PARSE_ID_ANNOTATIONS);
    struct keel_err err;
    for (int file = 0; file < 3; file++) {
        struct buf b;
        buf_init(&b);
        for (int i = 0; i < 100; i++) {
            int n = file * 100 + i;
            buf_printf(&b, "@id(\"hot%d\") permit(principal, action, resource == Doc::\"hot\") "
                           "when { context.n == %d };\n", n, n);
            buf_printf(&b, "@id(\"cold%d\") permit(principal, action, resource == Doc::\"c%d\");\n",
                       n, n % 7);
        }
        REQUIRE(policy_set_add_text(set, b.data, b.len, "f.cedar", &err) == 0);
        buf_cleanup(&b);
    }
    struct policy_response r;
    policy_response_init(&r);
    for (int n = 0; n < 300; n += 37) {
        struct policy_record ctx;
        struct policy_field f = {"n", 1, {.type = POLICY_LONG, .u.l = n}};
        ctx.len = 1;
        ctx.fields = &f;
        struct policy_request req = {{"User", "u", 4, 1}, {"Action", "x", 6, 1},
                                     {"Doc", "hot", 3, 3}, ctx};
        policy_authorize(set, NULL, &req, &r);
        CHECK_INT(r.decision, POLICY_ALLOW);
        CHECK_INT(r.nevaluated, 300);
        REQUIRE(r.nreasons == 1);
        char want[16];
        snprintf(want, sizeof want, "hot%d", n);
        CHECK_STR(r.reasons[0]->id, want);
    }
    struct policy_request req = {{"User", "u", 4, 1}, {"Action", "x", 6, 1}, {"Doc", "c3", 3, 2},
                                 {0, NULL}};
    policy_authorize(set, NULL, &req, &r);
    CHECK_INT(r.decision, POLICY_ALLOW);
    CHECK_INT(r.nevaluated, 43); /* n % 7 == 3 for n < 300 */
    CHECK_INT(r.nreasons, 43);
    for (size_t i = 1; i < r.nreasons; i++) CHECK(r.reasons[i - 1] != r.reasons[i]);
    struct policy_request none = {{"User", "u", 4, 1}, {"Action", "x", 6, 1},
                                  {"Doc", "nope", 3, 4}, {0, NULL}};
    policy_authorize(set, NULL, &none, &r);
    CHECK_INT(r.decision, POLICY_DENY);
    CHECK_INT(r.nevaluated, 0);
    policy_response_cleanup(&r);
    policy_set_free(set);
}

/* Policies live in records that never move: pointers from policy_set_at,
 * _find, the reasons and template_of are the same objects, past segment
 * boundaries and for links added after the text. */
TEST(index_chunks_links_and_pointers)
{
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < 150; i++)
        buf_printf(&b, "@id(\"p%d\") permit(principal == User::\"u%d\", action, resource);\n",
                   i, i);
    buf_puts(&b, "@id(\"t\") permit(principal == ?principal, action, resource in ?resource);\n");
    struct policy_set *set;
    struct keel_err err;
    REQUIRE(policy_set_parse(b.data, b.len, "c.cedar", POLICY_PARSE_ID_ANNOTATIONS, &set, &err) ==
            0);
    for (int i = 0; i < 70; i++) {
        char id[16], user[16];
        snprintf(id, sizeof id, "l%d", i);
        snprintf(user, sizeof user, "v%d", i);
        struct policy_euid pu = {"User", user, 4, (uint32_t)strlen(user)};
        struct policy_euid ru = {"Folder", "f", 6, 1};
        REQUIRE(policy_set_link(set, "t", id, &pu, &ru, &err) == 0);
    }
    REQUIRE(policy_set_count(set) == 221);
    for (size_t i = 0; i < policy_set_count(set); i++)
        CHECK(policy_set_find(set, policy_set_at(set, i)->id) == policy_set_at(set, i));
    const struct policy *t = policy_set_find(set, "t");
    REQUIRE(t != NULL);
    CHECK(policy_set_find(set, "l69")->template_of == t);
    struct arena a;
    arena_init(&a);
    struct policy_entities *es;
    REQUIRE(policy_entities_parse_json(
                test_parse(&a, "[{\"uid\":{\"type\":\"Doc\",\"id\":\"d\"},\"parents\":[{\"type\":"
                      "\"Folder\",\"id\":\"f\"}]}]"),
                NULL, &es, &err) == 0);
    struct policy_response r;
    policy_response_init(&r);
    struct policy_request req = {{"User", "v69", 4, 3}, {"Action", "x", 6, 1}, {"Doc", "d", 3, 1},
                                 {0, NULL}};
    policy_authorize(set, es, &req, &r);
    CHECK_INT(r.decision, POLICY_ALLOW);
    REQUIRE(r.nreasons == 1);
    CHECK(r.reasons[0] == policy_set_find(set, "l69"));
    CHECK_INT(r.nevaluated, 1);
    struct policy_request req2 = {{"User", "u149", 4, 4}, {"Action", "x", 6, 1},
                                  {"Doc", "d", 3, 1}, {0, NULL}};
    policy_authorize(set, es, &req2, &r);
    REQUIRE(r.nreasons == 1);
    CHECK(r.reasons[0] == policy_set_at(set, 149));
    policy_response_cleanup(&r);
    policy_entities_free(es);
    policy_set_free(set);
    arena_cleanup(&a);
    buf_cleanup(&b);
}

/* A policy listed under several uids of the request's chain (`action in
 * [a, a, grp]` with a in grp) is evaluated and reported once; `in` homes
 * match the request's own uid too (reflexive), `==` homes only it. */
TEST(index_duplicates_and_in_homes)
{
    const char *text = "@id(\"set\") permit(principal, action in [Action::\"a\", Action::\"a\", "
                       "Action::\"grp\"], resource);\n"
                       "@id(\"in\") permit(principal in Group::\"g\", action, resource);\n"
                       "@id(\"eq\") permit(principal == Group::\"g\", action, resource);\n";
    struct policy_set *set;
    struct keel_err err;
    REQUIRE(policy_set_parse(text, strlen(text), "d.cedar", POLICY_PARSE_ID_ANNOTATIONS, &set,
                             &err) == 0);
    struct arena a;
    arena_init(&a);
    struct policy_entities *es;
    REQUIRE(policy_entities_parse_json(
                test_parse(&a, "[{\"uid\":{\"type\":\"Action\",\"id\":\"a\"},\"parents\":[{\"type\":"
                      "\"Action\",\"id\":\"grp\"}]},{\"uid\":{\"type\":\"User\",\"id\":\"u\"},"
                      "\"parents\":[{\"type\":\"Group\",\"id\":\"g\"}]}]"),
                NULL, &es, &err) == 0);
    struct policy_response r;
    policy_response_init(&r);
    struct policy_request req = {{"Other", "o", 5, 1}, {"Action", "a", 6, 1}, {"Doc", "d", 3, 1},
                                 {0, NULL}};
    policy_authorize(set, es, &req, &r);
    CHECK_INT(r.decision, POLICY_ALLOW);
    REQUIRE(r.nreasons == 1);
    CHECK_STR(r.reasons[0]->id, "set");
    CHECK_INT(r.nevaluated, 1);
    struct policy_request ru = {{"User", "u", 4, 1}, {"Action", "b", 6, 1}, {"Doc", "d", 3, 1},
                                {0, NULL}};
    policy_authorize(set, es, &ru, &r);
    REQUIRE(r.nreasons == 1);
    CHECK_STR(r.reasons[0]->id, "in");
    struct policy_request rg = {{"Group", "g", 5, 1}, {"Action", "b", 6, 1}, {"Doc", "d", 3, 1},
                                {0, NULL}};
    policy_authorize(set, es, &rg, &r);
    REQUIRE(r.nreasons == 2);
    CHECK_STR(r.reasons[0]->id, "in");
    CHECK_STR(r.reasons[1]->id, "eq");
    policy_response_cleanup(&r);
    policy_entities_free(es);
    policy_set_free(set);
    arena_cleanup(&a);
}



/* A store of 100 entities (laid out again after loading: one block per
 * entity) reads the same as its JSON: attributes including a key with a
 * NUL byte and nested values, tags, ancestors, and policies using them. */
TEST(entities_laid_out_in_blocks)
{
    struct buf b;
    buf_init(&b);
    buf_putc(&b, '[');
    for (int k = 0; k < 100; k++) {
        char parent[64] = ""; /* e<k> is in the even entity below it: a chain to e0 */
        if (k)
            snprintf(parent, sizeof parent, "{\"type\":\"Even\",\"id\":\"e%d\"}",
                     (k - 1) / 2 * 2);
        buf_printf(&b,
                   "%s{\"uid\":{\"type\":\"%s\",\"id\":\"e%d\"},\"attrs\":{\"a\":%d,"
                   "\"b\\u0000c\":\"s%d\",\"nested\":{\"x\":[1,2,%d]}},\"tags\":{\"t\":%d},"
                   "\"parents\":[%s]}",
                   k ? "," : "", k % 2 ? "Odd" : "Even", k, k, k, k * 2, k * 2, parent);
    }
    buf_putc(&b, ']');
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct policy_entities *es;
    int rc = policy_entities_parse_json(test_parse(&a, b.data), NULL, &es, &err);
    if (rc < 0) fprintf(stderr, "%s\n", err.msg);
    REQUIRE(rc == 0);
    REQUIRE(policy_entities_count(es) == 100);
    const char *even_type = NULL;
    for (int k = 0; k < 100; k++) {
        char id[16], want[16];
        snprintf(id, sizeof id, "e%d", k);
        struct policy_euid u = {k % 2 ? "Odd" : "Even", id, k % 2 ? 3 : 4, (uint32_t)strlen(id)};
        const struct policy_entity *e = policy_entities_get(es, &u);
        REQUIRE(e != NULL);
        CHECK(policy_entities_at(es, e->index) == e);
        CHECK_STR(e->uid.id, id);
        if (k % 2 == 0) { /* one copy of each type name */
            if (!even_type) even_type = e->uid.type;
            CHECK(e->uid.type == even_type);
        }
        REQUIRE(e->attrs.len == 3);
        const struct policy_value *v = policy_record_get(&e->attrs, "a", 1);
        REQUIRE(v && v->type == POLICY_LONG);
        CHECK_INT(v->u.l, k);
        v = policy_record_get(&e->attrs, "b\0c", 3);
        REQUIRE(v && v->type == POLICY_STRING);
        snprintf(want, sizeof want, "s%d", k);
        CHECK_STR(v->u.str.s, want);
        v = policy_record_get(&e->attrs, "nested", 6);
        REQUIRE(v && v->type == POLICY_RECORD);
        v = policy_record_get(v->u.rec, "x", 1);
        REQUIRE(v && v->type == POLICY_SET);
        CHECK_INT(v->u.set->len, k * 2 == 1 || k * 2 == 2 ? 2 : 3);
        v = policy_record_get(&e->tags, "t", 1);
        REQUIRE(v && v->type == POLICY_LONG);
        CHECK_INT(v->u.l, k * 2);
        /* e<k> is below e0 through its chain of even parents */
        struct policy_euid root = {"Even", "e0", 4, 2};
        CHECK(policy_entities_in(es, &u, &root));
    }
    const char *text = "permit(principal in Even::\"e0\", action, resource) when {\n"
                       "  principal.hasTag(\"t\") && principal.getTag(\"t\") == 90 &&\n"
                       "  principal[\"b\\0c\"] == \"s45\" && principal.nested.x.contains(90) };";
    struct policy_set *set;
    REQUIRE(policy_set_parse(text, strlen(text), "t.cedar", 0, &set, &err) == 0);
    struct policy_response r;
    policy_response_init(&r);
    struct policy_request req = {{"Odd", "e45", 3, 3}, {"Action", "x", 6, 1}, {"R", "r", 1, 1},
                                 {0, NULL}};
    policy_authorize(set, es, &req, &r);
    CHECK_INT(r.decision, POLICY_ALLOW);
    CHECK_INT(r.nerrors, 0);
    struct policy_request other = {{"Odd", "e47", 3, 3}, {"Action", "x", 6, 1},
                                   {"R", "r", 1, 1}, {0, NULL}};
    policy_authorize(set, es, &other, &r);
    CHECK_INT(r.decision, POLICY_DENY);
    CHECK_INT(r.nerrors, 0);
    policy_response_cleanup(&r);
    policy_set_free(set);
    policy_entities_free(es);
    buf_cleanup(&b);
    arena_cleanup(&a);
}

/* Each policy is one record (the struct, then its packed conditions and
 * scope uids) in segments that double up to 2 MiB: 3,000 policies using
 * every kind of packed data (strings with NUL bytes, `like` patterns,
 * record literals, entity literals, `is`, `has` chains, `action in [...]`,
 * `is T in E`) span several segments; each is satisfied by its own request
 * only, reasons come out in load order across segments, and a link added
 * after them lands in a later record. */
TEST(records_across_segments_and_packed_conditions)
{
    struct buf b;
    buf_init(&b);
    enum { N = 3000 };
    for (int i = 0; i < N; i++)
        buf_printf(&b,
                   "@id(\"p%d\") permit(principal is User in Group::\"g%d\", action in "
                   "[Action::\"read\", Action::\"write\"], resource) when {\n"
                   "  context.n == %d && context.s == \"a\\0b%d\" && context.s like \"a*%d\" &&\n"
                   "  {\"k\": %d, \"k\\0\": context.n}[\"k\\0\"] == %d && resource is Doc &&\n"
                   "  context has r.x && context.r.x == Doc::\"d%d\" && context.p like \"x\\*y*\"\n"
                   "} unless { context has stop };\n",
                   i, i % 7, i, i, i, i, i, i);
    /* one that every request with n == 0 satisfies too, at the very end */
    buf_puts(&b, "@id(\"last\") permit(principal, action, resource) when { context.n == 0 };\n");
    buf_puts(&b, "@id(\"t\") permit(principal == ?principal, action, resource);\n");
    struct policy_set *set;
    struct keel_err err;
    int rc = policy_set_parse(b.data, b.len, "s.cedar", POLICY_PARSE_ID_ANNOTATIONS, &set, &err);
    if (rc < 0) fprintf(stderr, "%s\n", err.msg);
    REQUIRE(rc == 0);
    struct policy_euid lu = {"User", "u3", 4, 2};
    REQUIRE(policy_set_link(set, "t", "link", &lu, NULL, &err) == 0);
    REQUIRE(policy_set_count(set) == N + 3);
    for (size_t i = 0; i < policy_set_count(set); i++) {
        const struct policy *p = policy_set_at(set, i);
        CHECK(policy_set_find(set, p->id) == p);
        if (i) CHECK((const char *)p > (const char *)policy_set_at(set, i - 1) ||
                     (const char *)p < (const char *)policy_set_at(set, i - 1)); /* distinct */
    }
    struct arena a;
    arena_init(&a);
    struct buf ej;
    buf_init(&ej);
    buf_putc(&ej, '[');
    for (int u = 0; u < 7; u++)
        buf_printf(&ej, "%s{\"uid\":{\"type\":\"User\",\"id\":\"u%d\"},\"parents\":[{\"type\":"
                        "\"Group\",\"id\":\"g%d\"}]}",
                   u ? "," : "", u, u);
    buf_putc(&ej, ']');
    struct policy_entities *es;
    REQUIRE(policy_entities_parse_json(test_parse(&a, ej.data), NULL, &es, &err) == 0);
    struct policy_response r;
    policy_response_init(&r);
    int checked = 0;
    for (int i = 0; i < N; i += 37) {
        char ctx[256], uid[8];
        snprintf(ctx, sizeof ctx,
                 "{\"principal\":{\"type\":\"User\",\"id\":\"u%d\"},\"action\":{\"type\":"
                 "\"Action\",\"id\":\"write\"},\"resource\":{\"type\":\"Doc\",\"id\":\"x\"},"
                 "\"context\":{\"n\":%d,\"s\":\"a\\u0000b%d\",\"r\":{\"x\":{\"__entity\":{"
                 "\"type\":\"Doc\",\"id\":\"d%d\"}}},\"p\":\"x*yz\"}}",
                 i % 7, i, i, i);
        snprintf(uid, sizeof uid, "u%d", i % 7);
        struct policy_request req;
        REQUIRE(policy_request_from_json(&a, test_parse(&a, ctx), NULL, &req, &err) == 0);
        policy_authorize(set, es, &req, &r);
        CHECK_INT(r.decision, POLICY_ALLOW);
        CHECK_INT(r.nerrors, 0);
        size_t want = 1 + (i == 0) + (i % 7 == 3);
        CHECK_INT(r.nreasons, want);
        if (r.nreasons != want) continue;
        char id[16];
        snprintf(id, sizeof id, "p%d", i);
        CHECK_STR(r.reasons[0]->id, id);
        if (i == 0) CHECK_STR(r.reasons[1]->id, "last");
        if (i % 7 == 3) CHECK_STR(r.reasons[r.nreasons - 1]->id, "link");
        checked++;
        /* the same request in the wrong group, or with `stop`, or another
         * string: policy i no longer applies */
        req.principal.id = i % 7 == 1 ? "u2" : "u1";
        req.principal.id_len = 2;
        policy_authorize(set, es, &req, &r);
        CHECK(r.nreasons == 0 || strcmp(r.reasons[0]->id, id) != 0);
    }
    CHECK_INT(checked, (N + 36) / 37);
    policy_response_cleanup(&r);
    policy_entities_free(es);
    policy_set_free(set);
    buf_cleanup(&ej);
    buf_cleanup(&b);
    arena_cleanup(&a);
}

/* A policy whose packed block is larger than a segment (a 3 MiB string
 * literal) keeps it apart from its record and still evaluates; the
 * policies before and after it are unaffected. */
TEST(records_with_a_block_larger_than_a_segment)
{
    size_t big = 3u << 20;
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "@id(\"before\") permit(principal, action, resource) when { context.k == 1 };\n"
                 "@id(\"big\") permit(principal, action, resource) when { context.k == 2 && "
                 "context.s == \"");
    for (size_t i = 0; i < big; i++) buf_putc(&b, (char)('a' + i % 26));
    buf_puts(&b, "\" };\n@id(\"after\") permit(principal, action, resource) when { context.k == 3 };\n");
    struct policy_set *set;
    struct keel_err err;
    REQUIRE(policy_set_parse(b.data, b.len, "b.cedar", POLICY_PARSE_ID_ANNOTATIONS, &set, &err) ==
            0);
    char *s = malloc(big + 1);
    REQUIRE(s != NULL);
    for (size_t i = 0; i < big; i++) s[i] = (char)('a' + i % 26);
    s[big] = '\0';
    struct policy_field fields[2] = {{"k", 1, {.type = POLICY_LONG}},
                                     {"s", 1, {.type = POLICY_STRING}}};
    fields[1].value.u.str.s = s;
    fields[1].value.u.str.len = (uint32_t)big;
    struct policy_request req = {{"U", "u", 1, 1}, {"A", "a", 1, 1}, {"R", "r", 1, 1},
                                 {2, fields}};
    struct policy_response r;
    policy_response_init(&r);
    const char *want[] = {"before", "big", "after"};
    for (int k = 1; k <= 3; k++) {
        fields[0].value.u.l = k;
        policy_authorize(set, NULL, &req, &r);
        REQUIRE(r.nreasons == 1);
        CHECK_STR(r.reasons[0]->id, want[k - 1]);
    }
    s[big / 2] = '!'; /* one byte differs: no longer equal */
    fields[0].value.u.l = 2;
    policy_authorize(set, NULL, &req, &r);
    CHECK_INT(r.decision, POLICY_DENY);
    policy_response_cleanup(&r);
    policy_set_free(set);
    free(s);
    buf_cleanup(&b);
}

/* A store whose blocks pass 2 MiB (one allocation, huge pages asked for)
 * finds every entity and its ancestors. */
TEST(entities_blocks_over_a_huge_page)
{
    enum { N = 12000 };
    struct buf b;
    buf_init(&b);
    buf_putc(&b, '[');
    for (int k = 0; k < N; k++)
        buf_printf(&b, "%s{\"uid\":{\"type\":\"Agent\",\"id\":\"agent-%d\"},\"attrs\":{\"n\":%d,"
                       "\"label\":\"%d\"},\"parents\":[{\"type\":\"Team\",\"id\":\"t%d\"}]}",
                   k ? "," : "", k, k, k, k % 50);
    for (int t = 0; t < 50; t++)
        buf_printf(&b, ",{\"uid\":{\"type\":\"Team\",\"id\":\"t%d\"},\"parents\":[{\"type\":"
                       "\"Org\",\"id\":\"o%d\"}]}",
                   t, t % 3);
    buf_putc(&b, ']');
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct policy_entities *es;
    REQUIRE(policy_entities_parse_json(test_parse(&a, b.data), NULL, &es, &err) == 0);
    REQUIRE(policy_entities_count(es) == N + 53);
    const char *text = "permit(principal in Org::\"o1\", action, resource) when { principal.n >= 0 };";
    struct policy_set *set;
    REQUIRE(policy_set_parse(text, strlen(text), "o.cedar", 0, &set, &err) == 0);
    struct policy_response r;
    policy_response_init(&r);
    for (int k = 0; k < N; k += 7) {
        char id[16];
        snprintf(id, sizeof id, "agent-%d", k);
        struct policy_euid u = {"Agent", id, 5, (uint32_t)strlen(id)};
        const struct policy_entity *e = policy_entities_get(es, &u);
        REQUIRE(e != NULL);
        CHECK_STR(e->uid.id, id);
        const struct policy_value *v = policy_record_get(&e->attrs, "n", 1);
        REQUIRE(v && v->type == POLICY_LONG);
        CHECK_INT(v->u.l, k);
        CHECK_INT(e->nancestors, 2);
        struct policy_request req = {u, {"Action", "x", 6, 1}, {"R", "r", 1, 1}, {0, NULL}};
        policy_authorize(set, es, &req, &r);
        CHECK_INT(r.decision, (k % 50) % 3 == 1 ? POLICY_ALLOW : POLICY_DENY);
    }
    struct policy_euid none = {"Agent", "agent-12000", 5, 11};
    CHECK(policy_entities_get(es, &none) == NULL);
    policy_response_cleanup(&r);
    policy_set_free(set);
    policy_entities_free(es);
    buf_cleanup(&b);
    arena_cleanup(&a);
}

/* `has a.b.c...` shares each prefix of the chain between its nodes: a
 * chain of 3,000 names is not packed (copying it per use would take
 * millions of nodes) and still evaluates, and the policy after it is
 * packed as usual. */
TEST(records_leave_huge_conditions_unpacked)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "@id(\"chain\") permit(principal, action, resource) when { !(context has a");
    for (int i = 0; i < 3000; i++) buf_puts(&b, ".a");
    buf_puts(&b, ") };\n@id(\"next\") permit(principal, action, resource) when { context has b };\n");
    struct policy_set *set;
    struct keel_err err;
    REQUIRE(policy_set_parse(b.data, b.len, "h.cedar", POLICY_PARSE_ID_ANNOTATIONS, &set, &err) ==
            0);
    CHECK_INT(policy_set_find(set, "chain")->hot_lines, 0);
    CHECK(policy_set_find(set, "next")->hot_lines > 0);
    struct policy_field f = {"b", 1, {.type = POLICY_BOOL}};
    struct policy_request req = {{"U", "u", 1, 1}, {"A", "a", 1, 1}, {"R", "r", 1, 1}, {1, &f}};
    struct policy_response r;
    policy_response_init(&r);
    policy_authorize(set, NULL, &req, &r);
    REQUIRE(r.nreasons == 2);
    CHECK_STR(r.reasons[0]->id, "chain");
    CHECK_STR(r.reasons[1]->id, "next");
    policy_response_cleanup(&r);
    policy_set_free(set);
    buf_cleanup(&b);
}
