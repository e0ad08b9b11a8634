/*
 * ast.h — the compact form of parsed Cedar policies, shared inside
 * src/policy (the evaluator, the indexer, and the schema validator read it).
 *
 * Everything here lives in the arena of the policy set (or of the parsed
 * expression) that produced it and is immutable once parsing finished.
 * Every node carries the source position where it starts (line and column,
 * 1-based); the file is the owning policy's `file` (or the expression's).
 *
 * Strings are byte strings with explicit lengths (Cedar strings may hold
 * NUL via escapes) and are also NUL-terminated for convenience.
 */
#ifndef KEEL_POLICY_AST_H
#define KEEL_POLICY_AST_H

#include "../util/util.h"

/* An entity uid: `Type::"id"` (type qualified: "NS::Sub::Type"). */
struct policy_euid {
    const char *type;
    const char *id;
    uint32_t type_len;
    uint32_t id_len;
};

/* Expression node kinds.  The comment says what kids[] hold. */
enum policy_node_kind {
    PN_BOOL,     /* literal: u.b                                          */
    PN_LONG,     /* literal: u.l                                          */
    PN_STRING,   /* literal: u.str                                        */
    PN_ENTITY,   /* literal: u.euid                                       */
    PN_VAR,      /* variable: u.var (enum policy_var), u.str its name     */
    PN_SLOT,     /* template slot ?principal / ?resource: u.var           */
    PN_NOT,      /* kids[0]                                               */
    PN_NEG,      /* kids[0]                                               */
    PN_AND,      /* kids[0] && kids[1] (short-circuit)                    */
    PN_OR,       /* kids[0] || kids[1] (short-circuit)                    */
    PN_IF,       /* if kids[0] then kids[1] else kids[2]                  */
    PN_EQ,       /* kids[0] == kids[1]                                    */
    PN_NE,
    PN_LT,
    PN_LE,
    PN_GT,
    PN_GE,
    PN_ADD,
    PN_SUB,
    PN_MUL,
    PN_IN,       /* kids[0] in kids[1]                                    */
    PN_HAS,      /* kids[0] has u.str                                     */
    PN_LIKE,     /* kids[0] like u.pat                                    */
    PN_IS,       /* kids[0] is u.str (entity type); kids[1] the `in` operand or NULL */
    PN_GETATTR,  /* kids[0].u.str                                         */
    PN_SET,      /* [kids...]                                             */
    PN_RECORD,   /* {u.keys[i]: kids[i]}                                  */
    PN_CALL,     /* u.fn (enum policy_fn) applied to kids (receiver first for methods) */
    PN__COUNT
};

/* The four request variables, and "other" names (expression API only). */
enum policy_var {
    POLICY_VAR_PRINCIPAL,
    POLICY_VAR_ACTION,
    POLICY_VAR_RESOURCE,
    POLICY_VAR_CONTEXT,
    POLICY_VAR_OTHER, /* a free variable (workflow conditions: input, state, result) */
};

/* Builtin functions and methods (table in eval.c; index == enum value). */
enum policy_fn {
    POLICY_FN_DECIMAL,
    POLICY_FN_IP,
    POLICY_FN_DATETIME,
    POLICY_FN_DURATION,
    POLICY_FN_CONTAINS,
    POLICY_FN_CONTAINS_ALL,
    POLICY_FN_CONTAINS_ANY,
    POLICY_FN_IS_EMPTY,
    POLICY_FN_HAS_TAG,
    POLICY_FN_GET_TAG,
    POLICY_FN_LESS_THAN,
    POLICY_FN_LESS_THAN_OR_EQUAL,
    POLICY_FN_GREATER_THAN,
    POLICY_FN_GREATER_THAN_OR_EQUAL,
    POLICY_FN_IS_IPV4,
    POLICY_FN_IS_IPV6,
    POLICY_FN_IS_LOOPBACK,
    POLICY_FN_IS_MULTICAST,
    POLICY_FN_IS_IN_RANGE,
    POLICY_FN_OFFSET,
    POLICY_FN_DURATION_SINCE,
    POLICY_FN_TO_DATE,
    POLICY_FN_TO_TIME,
    POLICY_FN_TO_DAYS,
    POLICY_FN_TO_HOURS,
    POLICY_FN_TO_MINUTES,
    POLICY_FN_TO_SECONDS,
    POLICY_FN_TO_MILLISECONDS,
    POLICY_FN__COUNT
};

/* One element of a `like` pattern: a byte, or POLICY_PAT_STAR (wildcard). */
#define POLICY_PAT_STAR (-1)

struct policy_node {
    uint8_t kind;   /* enum policy_node_kind */
    uint8_t var;    /* PN_VAR/PN_SLOT: enum policy_var */
    uint8_t fn;     /* PN_CALL: enum policy_fn */
    uint32_t nkids;
    int line, column;
    struct policy_node **kids;
    union {
        bool b;
        int64_t l;
        struct {
            const char *s;
            uint32_t len;
        } str;
        struct policy_euid euid;
        struct {
            const int16_t *items; /* bytes, or POLICY_PAT_STAR */
            uint32_t len;
        } pat;
        struct {
            const char **keys; /* PN_RECORD: nkids keys, NUL-terminated */
            const uint32_t *key_lens;
        } rec;
    } u;
};

/* Scope constraints. */
enum policy_scope_op {
    POLICY_SCOPE_ANY,   /* `principal`                                     */
    POLICY_SCOPE_EQ,    /* `principal == E`                                */
    POLICY_SCOPE_IN,    /* `principal in E`                                */
    POLICY_SCOPE_IS,    /* `principal is T`                                */
    POLICY_SCOPE_IS_IN, /* `principal is T in E`                           */
    POLICY_SCOPE_IN_SET /* `action in [E1, E2]` (action only)              */
};

/* Field order: what the authorizer reads for every candidate (op, neuids,
 * hash0, euids) comes first, in 24 bytes. */
struct policy_scope {
    uint8_t op;         /* enum policy_scope_op */
    bool slot;          /* E is a template slot (?principal / ?resource)   */
    bool hashed;        /* hash0 and hashes are set (when the policy joined a set) */
    uint32_t neuids;
    uint64_t hash0;            /* policy_euid_hash(&euids[0]) */
    struct policy_euid *euids; /* EQ/IN/IS_IN: 1 (NULL while an unlinked slot); IN_SET: n */
    const uint64_t *hashes;    /* IN_SET with n > 1: policy_euid_hash of each euids[i] */
    const char *is_type;       /* IS / IS_IN: the entity type */
    uint32_t is_type_len;
    int line, column;
};

struct policy_condition {
    bool when; /* false: unless */
    struct policy_node *expr;
    int line, column;
};

struct policy_annotation {
    const char *key;
    const char *value; /* "" when written without a value: `@key` */
    uint32_t value_len;
    int line, column;
};

enum policy_effect { POLICY_PERMIT, POLICY_FORBID };

/* One policy, template, or template-linked policy.  Field order: what
 * evaluating a policy reads comes first (effect .. file, then each scope's
 * first 24 bytes), so a cold policy costs three cache lines when it
 * starts on one (the set stores them so). */
struct policy {
    uint8_t effect;     /* enum policy_effect */
    bool is_template;   /* has slots and is not linked: never evaluated */
    uint16_t hot_lines; /* in a set: the cache lines of the block at `conds` that holds
                           what evaluation reads besides this struct (the conditions,
                           their nodes and strings, the scope uids), 0 if none */
    uint32_t nconds;
    struct policy_condition *conds;
    const char *file;   /* source file ("" when none) */
    struct policy_scope principal, action, resource;
    const char *id;     /* "policy0", ..., or the @id annotation, or the link id */
    int line, column;   /* where the policy starts (its first annotation) */
    const struct policy *template_of; /* for a linked policy: its template */
    struct policy_annotation *annotations;
    uint32_t nannotations;
    uint32_t text_len;
    const char *text;   /* the policy's source text (NUL-terminated) */
};

#endif
