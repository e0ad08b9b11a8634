/*
 * internal.h — declarations shared by the .c files of src/policy (lexer,
 * parser, evaluator, entity store, authorizer).  Not included elsewhere.
 */
#ifndef KEEL_POLICY_INTERNAL_H
#define KEEL_POLICY_INTERNAL_H

#include "policy.h"

/* ---- lexer (lex.c) ----------------------------------------------------- */

enum tok_kind {
    TK_EOF,
    TK_IDENT,
    TK_STRING, /* raw text between the quotes, escapes not yet decoded */
    TK_INT,    /* u64 value in tok.num; tok.overflow if > 2^64-1 */
    TK_LPAREN, TK_RPAREN, TK_LBRACKET, TK_RBRACKET, TK_LBRACE, TK_RBRACE,
    TK_COMMA, TK_SEMI, TK_DOT, TK_COLON, TK_COLONCOLON, TK_AT, TK_QUESTION,
    TK_EQEQ, TK_NE, TK_LT, TK_LE, TK_GT, TK_GE, TK_ANDAND, TK_OROR, TK_BANG,
    TK_PLUS, TK_MINUS, TK_STAR, TK_SLASH, TK_PERCENT, TK_EQ, TK_PIPE, TK_AMP,
    TK_ERROR,
};

struct tok {
    int kind;
    const char *start; /* TK_STRING: after the opening quote */
    uint32_t len;      /* TK_STRING: bytes before the closing quote */
    int line, column;
    uint64_t num;
    bool overflow;
};

struct lexer {
    const char *src, *end, *p;
    int line;
    const char *line_start;
    int line0, col0; /* offset of the text in its file (expressions) */
};

void lex_init(struct lexer *lx, const char *src, size_t len, int line, int col);
/* Reads the next token; TK_ERROR tokens carry a message in start/len. */
void lex_next(struct lexer *lx, struct tok *t);
const char *lex_tok_name(int kind);

/* Decodes a Cedar string literal body (escapes \n \r \t \\ \0 \' \" \xNN
 * \u{...}) into a (NUL-terminated).  Returns -1 on a bad escape with a
 * message in *why. */
int lex_unescape(struct arena *a, const char *s, size_t len, bool pattern, char **out,
                 uint32_t *out_len, int16_t **pat, uint32_t *pat_len, const char **why);

/* ---- parser (parse.c) -------------------------------------------------- */

/* Parses all policies of text into a growable array of struct policy *
 * (allocated in a).  ids are assigned by the caller.  Free variables are
 * rejected. */
int policy_parse_policies(struct arena *a, const char *text, size_t len, const char *file,
                          struct policy ***out, size_t *count, struct keel_err *err);
/* Parses one expression (free variables allowed). */
int policy_parse_expr(struct arena *a, const char *text, size_t len, const char *file, int line,
                      int col, struct policy_node **out, struct keel_err *err);

/* The builtin named name (function or method) and its arity including the
 * receiver; -1 if there is none. */
int policy_fn_lookup(const char *name, int *arity);

/* ---- evaluation (eval.c) ----------------------------------------------- */

struct eval_ctx {
    const struct policy_entities *entities; /* may be NULL */
    const struct policy_request *req;       /* may be NULL (expressions) */
    const struct policy_record *vars;       /* free variables (expressions) */
    struct arena *arena;                    /* results */
    const char *file;
    char *msg; /* error message buffer */
    size_t msg_cap;
    int depth;
    /* When req_ents_known: the store's entities for req's principal, action
     * and resource (NULL where absent), looked up once per request. */
    const struct policy_entity *req_ents[3];
    uint64_t req_hash[3]; /* policy_euid_hash of the request's three uids */
    bool req_ents_known;
};

/* Evaluates n; returns 0 with *out, or -1 with the message in c->msg. */
int policy_eval(struct eval_ctx *c, const struct policy_node *n, struct policy_value *out);
/* Evaluates the whole policy p (scope, then conditions in order): 1 when
 * satisfied, 0 when not, -1 on an error (message in c->msg). */
int policy_eval_policy(struct eval_ctx *c, const struct policy *p);
/* Applies builtin fn to n argument values (used for JSON {"__extn":
 * {"fn":..,"args":[..]}}).  Returns 0, or -1 with a message in msg. */
int policy_call_fn(struct arena *a, int fn, const struct policy_value *args, uint32_t n,
                   struct policy_value *out, char *msg, size_t cap);
/* Does scope s accept entity uid?  (var names which variable, for messages) */
bool policy_scope_matches(const struct policy_entities *es, const struct policy_scope *s,
                          const struct policy_euid *uid);

/* ---- entities (entities.c) -------------------------------------------- */

/* Asks the CPU to start loading the uid index slot for hash h (a hint:
 * lookups of the request's uids then overlap their cache misses). */
void policy_entities_prefetch(const struct policy_entities *es, uint64_t h);
/* Reads the uid index slot for hash h (a cache miss when cold) and, when it
 * holds an entity with that hash, asks the CPU to start loading the
 * entity's whole block (a hint: the uid is not compared). */
void policy_entities_prefetch_entity(const struct policy_entities *es, uint64_t h);
/* policy_entities_get for a uid whose policy_euid_hash h is known. */
const struct policy_entity *policy_entities_find_hashed(const struct policy_entities *es,
                                                        const struct policy_euid *uid, uint64_t h);

/* size bytes at a cache line (at a 2 MiB boundary, with the kernel asked
 * for huge pages, from 2 MiB on); never NULL (aborts when out of memory).
 * Free with free(). */
void *policy_big_alloc(size_t size);

/* ---- values (value.c) -------------------------------------------------- */

/* Uid equality (type and id, bytewise); both borrowed. */
bool policy_euid_equal(const struct policy_euid *a, const struct policy_euid *b);
/* A 64-bit hash of a uid (equal uids hash equal). */
uint64_t policy_euid_hash(const struct policy_euid *u);
/* Makes a set of n items (deduplicated, copied into a). */
const struct policy_vset *policy_vset_make(struct arena *a, const struct policy_value *items,
                                           uint32_t n);
/* Sorts fields by key and reports a duplicate key (returns -1, *dup = index). */
int policy_record_sort(struct policy_field *fields, uint32_t n, uint32_t *dup);
/* Extension literal parsers: 0 on success, -1 if s is not valid. */
int policy_parse_decimal(const char *s, size_t len, int64_t *out);
int policy_parse_ip(const char *s, size_t len, struct policy_ip *out);
int policy_parse_datetime(const char *s, size_t len, int64_t *out);
int policy_parse_duration(const char *s, size_t len, int64_t *out);
/* The name of a value type ("long", "ipaddr", ...); static storage. */
const char *policy_type_name(int type);
/* policy_value_from_json for expression variables: JSON nulls (members and
 * items) are left out instead of being errors. */
int policy_value_from_json_vars(struct arena *a, const struct json_value *j,
                                struct policy_value *out, struct keel_err *err);

#endif
