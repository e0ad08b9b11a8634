/*
 * policy.h — Keel's Cedar engine: parse policies into a compact indexed
 * form, hold entity data, evaluate expressions and authorize requests with
 * Cedar 4.x semantics (forbid overrides permit, default deny, a policy that
 * errors is skipped and reported).  This is the only header other parts
 * include from src/policy (schemas and validation: policy_schema.h, included
 * at the end).
 *
 * Ownership in brief: a policy set, an entity store and a parsed expression
 * own their memory (free with the matching _free); values produced by
 * evaluation live in a caller-supplied arena.
 */
#ifndef KEEL_POLICY_H
#define KEEL_POLICY_H

#include <stdio.h>

#include "../util/util.h"
#include "ast.h"

struct json_value;

/* ---- values ------------------------------------------------------------ */

enum policy_value_type {
    POLICY_BOOL,
    POLICY_LONG,
    POLICY_STRING,
    POLICY_ENTITY,
    POLICY_SET,
    POLICY_RECORD,
    POLICY_DECIMAL,  /* u.l = value * 10^4                               */
    POLICY_IPADDR,   /* u.ip                                              */
    POLICY_DATETIME, /* u.l = milliseconds since the Unix epoch (UTC)      */
    POLICY_DURATION, /* u.l = milliseconds                                 */
};

struct policy_value;
struct policy_field;

/* A set: distinct elements (no order promised). */
struct policy_vset {
    uint32_t len;
    struct policy_value *items;
};

/* A record: fields sorted by key (bytewise), keys distinct. */
struct policy_record {
    uint32_t len;
    struct policy_field *fields;
};

struct policy_ip {
    bool v6;
    uint8_t prefix;    /* 0..32 or 0..128 */
    uint8_t addr[16];  /* v4 uses the first 4 bytes */
};

struct policy_value {
    uint8_t type; /* enum policy_value_type */
    union {
        bool b;
        int64_t l;
        struct {
            const char *s;
            uint32_t len;
        } str;
        const struct policy_euid *entity;
        const struct policy_vset *set;
        const struct policy_record *rec;
        const struct policy_ip *ip;
    } u;
};

struct policy_field {
    const char *key;
    uint32_t key_len;
    struct policy_value value;
};

/* Equality as Cedar's == defines it (values of different types are unequal). */
bool policy_value_equal(const struct policy_value *a, const struct policy_value *b);
/* Looks up key in rec; NULL when absent. */
const struct policy_value *policy_record_get(const struct policy_record *rec, const char *key,
                                             size_t key_len);

/* Caps on input-controlled sizes. */
#define POLICY_MAX_TEXT (16u << 20)  /* bytes of policy text per file        */
#define POLICY_MAX_DEPTH 200         /* nesting of expressions and values    */
#define POLICY_MAX_HEIGHT 10000      /* levels of an expression's tree, chains
                                        of operators included (a && b && c is
                                        two levels): evaluation recurses this
                                        deep, so a longer chain is refused at
                                        parse time instead of overflowing the
                                        stack (Cedar itself has no limit yet:
                                        cedar-policy/cedar#2383)             */
#define POLICY_MAX_POLICIES 1000000  /* policies in one set                  */

/* Converts Cedar's JSON value encoding (bools, integers, strings, arrays as
 * sets, objects as records, {"__entity":{type,id}}, {"__extn":{fn,arg}})
 * into a value in arena a.  With implicit_entity, an object of exactly the
 * members "type" and "id" (both strings) is an entity reference too (what
 * Cedar does when a schema says the attribute is an entity).  Errors name
 * the JSON position. */
int policy_value_from_json(struct arena *a, const struct json_value *j, bool implicit_entity,
                           struct policy_value *out, struct keel_err *err);
/* Converts v to Cedar's JSON encoding, in arena a (extension values as
 * {"__extn":{"fn":..,"arg":..}}, entities as {"__entity":..}). */
struct json_value *policy_value_to_json(struct arena *a, const struct policy_value *v);
/* Appends v in Cedar syntax (e.g. `User::"alice"`, `decimal("1.5000")`). */
void policy_value_format(struct buf *out, const struct policy_value *v);

/* ---- policy sets ------------------------------------------------------- */

struct policy_set; /* opaque; see authorize.c */

/* Parse options (bit flags). */
#define POLICY_PARSE_ID_ANNOTATIONS 1u /* use @id("x") as the policy id (Keel's files);
                                          otherwise ids are policy0, policy1, ... */

/* Creates an empty set; free with policy_set_free(). */
struct policy_set *policy_set_new(unsigned flags);
void policy_set_free(struct policy_set *set);
/* Parses the policies and templates of one file (text, len bytes; file is
 * the name for positions and may be NULL) and adds them to set.  Ids keep
 * counting across files (policyN is the Nth policy loaded).  A failed call
 * adds nothing and reports file:line:column in err. */
int policy_set_add_text(struct policy_set *set, const char *text, size_t len, const char *file,
                        struct keel_err *err);
/* Convenience: a new set from one text (flags as policy_set_new). */
int policy_set_parse(const char *text, size_t len, const char *file, unsigned flags,
                     struct policy_set **out, struct keel_err *err);
/* Links template template_id into a new policy new_id with the slot values
 * (NULL for a slot the template does not use). */
int policy_set_link(struct policy_set *set, const char *template_id, const char *new_id,
                    const struct policy_euid *principal, const struct policy_euid *resource,
                    struct keel_err *err);
/* Cedar's JSON template links: [{"templateId":..,"newId":..,"values":{"?principal":
 * {"type":..,"id":..}, ...}}, ...]. */
int policy_set_link_json(struct policy_set *set, const struct json_value *links,
                         struct keel_err *err);

/* Number of policies (templates included), and the i-th in load order;
 * borrowed, valid until the set is freed. */
size_t policy_set_count(const struct policy_set *set);
const struct policy *policy_set_at(const struct policy_set *set, size_t i);
const struct policy *policy_set_find(const struct policy_set *set, const char *id);
/* sha256 hex of the sources in load order (each file's text is hashed with
 * its length, links as their JSON-ish text); borrowed, valid until the set
 * changes. */
const char *policy_set_hash(struct policy_set *set);
/* The value of annotation key on p ("" for `@key`), or NULL. */
const char *policy_annotation(const struct policy *p, const char *key);

/* ---- entities ---------------------------------------------------------- */

struct policy_entity {
    struct policy_euid uid;
    struct policy_record attrs;
    struct policy_record tags;
    bool present;        /* false: only known as some entity's parent     */
    uint32_t index;      /* dense index in the store                       */
    uint32_t *ancestors; /* sorted indices of all transitive ancestors     */
    uint32_t nancestors;
    uint32_t *parents;   /* direct parents (indices)                       */
    uint32_t nparents;
    uint64_t uid_hash;   /* policy_euid_hash(&uid), for the scope filter   */
    uint64_t *ancestor_hashes; /* uid_hash of each ancestors[i], same order */
};

struct policy_entities; /* opaque; see entities.c */

struct policy_schema;

/* Builds a store from Cedar's entity JSON: an array of {"uid", "attrs",
 * "parents", "tags"}.  With a schema (may be NULL), attribute values are
 * read as the schema declares them (bare {"type","id"} entity references,
 * extension values as strings) and action entities with their parents are
 * added from the schema.  Transitive ancestors are computed once here.
 * Returns a new store in *out; free with policy_entities_free(). */
int policy_entities_parse_json(const struct json_value *json, const struct policy_schema *schema,
                               struct policy_entities **out, struct keel_err *err);
struct policy_entities *policy_entities_new(void);
void policy_entities_free(struct policy_entities *es);
/* Borrowed lookup; NULL when uid names no entity (not even as a parent). */
const struct policy_entity *policy_entities_get(const struct policy_entities *es,
                                                const struct policy_euid *uid);
size_t policy_entities_count(const struct policy_entities *es);
const struct policy_entity *policy_entities_at(const struct policy_entities *es, size_t i);
/* Cedar's `in`: a == b, or b is a transitive ancestor of a. */
bool policy_entities_in(const struct policy_entities *es, const struct policy_euid *a,
                        const struct policy_euid *b);

/* ---- requests and decisions ------------------------------------------- */

struct policy_request {
    struct policy_euid principal, action, resource;
    struct policy_record context;
};

/* Fills r from Cedar's request JSON fields ({"principal":{type,id}, "action",
 * "resource", "context":{...}}); strings borrowed from json / copied into a. */
int policy_request_from_json(struct arena *a, const struct json_value *json,
                             const struct policy_schema *schema, struct policy_request *r,
                             struct keel_err *err);

enum policy_decision { POLICY_DENY = 0, POLICY_ALLOW = 1 };

struct policy_error {
    const struct policy *policy;
    char message[256]; /* e.g. "3:14: attribute `x` not found on User::"a"" */
};

/* The result of policy_authorize; reusable across calls (init once,
 * cleanup once): after warm-up, authorizing needs no malloc. */
struct policy_response {
    int decision;                    /* enum policy_decision */
    const struct policy **reasons;   /* determining policies, in load order */
    size_t nreasons;
    struct policy_error *errors;     /* policies skipped because they errored */
    size_t nerrors;
    const char **approvals;          /* @approval groups of determining permits */
    size_t napprovals;
    /* scratch, private */
    size_t reasons_cap, errors_cap, approvals_cap;
    struct arena arena;
    uint32_t *cand;
    size_t cand_cap;
    uint32_t *satisfied;
    size_t satisfied_cap;
    /* policies the last call evaluated: the candidates left after the scope
     * index and filter (for benchmarks and tests; not part of the decision) */
    size_t nevaluated;
};

void policy_response_init(struct policy_response *r);
void policy_response_cleanup(struct policy_response *r);

/* Decides request against set with entities (either may be empty; entities
 * may be NULL).  Fills resp.  Returns 0 (decisions, including errors in
 * policies, are results not failures). */
int policy_authorize(const struct policy_set *set, const struct policy_entities *entities,
                     const struct policy_request *request, struct policy_response *resp);

/* ---- expressions (workflow conditions) -------------------------------- */

struct policy_expr; /* opaque: an arena and a root node */

/* Parses one Cedar expression.  Free variables other than principal,
 * action, resource and context are allowed (input, state, result, ...).
 * file/line/col is where text starts in its file, for error positions.
 * Returns a new expression in *out; free with policy_expr_free(). */
int policy_expr_parse(const char *text, const char *file, int line, int col,
                      struct policy_expr **out, struct keel_err *err);
void policy_expr_free(struct policy_expr *e);
/* Evaluates e with variables bound from vars (a JSON object: each member a
 * variable, converted with policy_value_from_json; JSON null members are
 * treated as absent).  The result is converted to JSON in arena a. */
int policy_expr_eval(const struct policy_expr *e, const struct json_value *vars, struct arena *a,
                     struct json_value **result, struct keel_err *err);
/* Same, returning the Cedar value (in a). */
int policy_expr_eval_value(const struct policy_expr *e, const struct json_value *vars,
                           struct arena *a, struct policy_value *result, struct keel_err *err);

/* ---- test files ------------------------------------------------------- */

struct policy_test_opts {
    const char *root; /* folder the paths inside JSON tests are relative to */
    bool use_schema;  /* read entities schema-directed when a schema is given */
    bool verbose;
    FILE *out;        /* mismatch reports */
};

struct policy_test_stats {
    long requests, passed, failed, load_errors;
};

/* Runs a test file (".jsonl": Cedar corpus lines; otherwise Cedar's
 * integration-test JSON) and adds to st; mismatches are printed to o->out.
 * Returns 0, or a negative code when the file could not be read. */
int policy_test_file(const char *path, const struct policy_test_opts *o,
                     struct policy_test_stats *st);

#if defined(__has_include)
#if __has_include("policy_schema.h")
#include "policy_schema.h"
#endif
#endif

#endif
