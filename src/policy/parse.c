/*
 * parse.c — the Cedar parser: recursive descent from tokens (lex.c) to the
 * compact AST of ast.h.  Each parse function opens with its grammar rule.
 *
 * Invariants: every node is allocated in the caller's arena and carries the
 * position of its first token; a failure sets err (file:line:column and a
 * message saying what was expected) and returns KEEL_EINVAL; the recursion
 * depth is capped (POLICY_MAX_DEPTH) so hostile input cannot overflow the
 * stack.  Builtin names and their arities come from the table below.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
    struct lexer lx;
    struct tok t;      /* current token */
    struct arena *a;
    const char *file;
    struct keel_err *err;
    bool free_vars;    /* expression mode: names other than the four are variables */
    bool in_scope;     /* slots allowed */
    bool failed;
    int depth;
};

/* Builtins: name, kind (function or method), arity (including receiver). */
static const struct {
    const char *name;
    bool method;
    int arity;
} builtins[POLICY_FN__COUNT] = {
    [POLICY_FN_DECIMAL] = {"decimal", false, 1},
    [POLICY_FN_IP] = {"ip", false, 1},
    [POLICY_FN_DATETIME] = {"datetime", false, 1},
    [POLICY_FN_DURATION] = {"duration", false, 1},
    [POLICY_FN_CONTAINS] = {"contains", true, 2},
    [POLICY_FN_CONTAINS_ALL] = {"containsAll", true, 2},
    [POLICY_FN_CONTAINS_ANY] = {"containsAny", true, 2},
    [POLICY_FN_IS_EMPTY] = {"isEmpty", true, 1},
    [POLICY_FN_HAS_TAG] = {"hasTag", true, 2},
    [POLICY_FN_GET_TAG] = {"getTag", true, 2},
    [POLICY_FN_LESS_THAN] = {"lessThan", true, 2},
    [POLICY_FN_LESS_THAN_OR_EQUAL] = {"lessThanOrEqual", true, 2},
    [POLICY_FN_GREATER_THAN] = {"greaterThan", true, 2},
    [POLICY_FN_GREATER_THAN_OR_EQUAL] = {"greaterThanOrEqual", true, 2},
    [POLICY_FN_IS_IPV4] = {"isIpv4", true, 1},
    [POLICY_FN_IS_IPV6] = {"isIpv6", true, 1},
    [POLICY_FN_IS_LOOPBACK] = {"isLoopback", true, 1},
    [POLICY_FN_IS_MULTICAST] = {"isMulticast", true, 1},
    [POLICY_FN_IS_IN_RANGE] = {"isInRange", true, 2},
    [POLICY_FN_OFFSET] = {"offset", true, 2},
    [POLICY_FN_DURATION_SINCE] = {"durationSince", true, 2},
    [POLICY_FN_TO_DATE] = {"toDate", true, 1},
    [POLICY_FN_TO_TIME] = {"toTime", true, 1},
    [POLICY_FN_TO_DAYS] = {"toDays", true, 1},
    [POLICY_FN_TO_HOURS] = {"toHours", true, 1},
    [POLICY_FN_TO_MINUTES] = {"toMinutes", true, 1},
    [POLICY_FN_TO_SECONDS] = {"toSeconds", true, 1},
    [POLICY_FN_TO_MILLISECONDS] = {"toMilliseconds", true, 1},
};

static const char *const var_names[] = {"principal", "action", "resource", "context"};

static int fail_at(struct parser *p, int line, int col, const char *fmt, ...) KEEL_PRINTF(4, 5);
static int fail_at(struct parser *p, int line, int col, const char *fmt, ...)
{
    if (p->failed) return KEEL_EINVAL;
    p->failed = true;
    char msg[KEEL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return keel_fail_at(p->err, KEEL_EINVAL, p->file, line, col, "%s", msg);
}

static int fail_tok(struct parser *p, const char *what)
{
    if (p->t.kind == TK_ERROR)
        return fail_at(p, p->t.line, p->t.column, "%.*s", (int)p->t.len, p->t.start);
    if (p->t.kind == TK_IDENT || p->t.kind == TK_INT)
        return fail_at(p, p->t.line, p->t.column, "expected %s, found '%.*s'", what,
                       (int)(p->t.len > 60 ? 60 : p->t.len), p->t.start);
    return fail_at(p, p->t.line, p->t.column, "expected %s, found %s", what,
                   lex_tok_name(p->t.kind));
}

static void next(struct parser *p)
{
    lex_next(&p->lx, &p->t);
}

static bool is_kw(const struct tok *t, const char *kw)
{
    size_t n = strlen(kw);
    return t->kind == TK_IDENT && t->len == n && !memcmp(t->start, kw, n);
}

static int expect(struct parser *p, int kind, const char *what)
{
    if (p->t.kind != kind) return fail_tok(p, what);
    next(p);
    return 0;
}

static struct policy_node *node(struct parser *p, int kind, int line, int col, uint32_t nkids)
{
    struct policy_node *n = arena_zalloc(p->a, sizeof *n);
    n->kind = (uint8_t)kind;
    n->line = line;
    n->column = col;
    n->nkids = nkids;
    if (nkids) n->kids = arena_zalloc(p->a, nkids * sizeof *n->kids);
    return n;
}

static struct policy_node *node2(struct parser *p, int kind, struct policy_node *l,
                                 struct policy_node *r)
{
    struct policy_node *n = node(p, kind, l->line, l->column, 2);
    n->kids[0] = l;
    n->kids[1] = r;
    return n;
}

static const char *const reserved[] = {"true", "false", "if", "then", "else",
                                       "in",   "is",    "like", "has", "__cedar"};

static bool is_reserved(const struct tok *t)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(reserved); i++)
        if (is_kw(t, reserved[i])) return true;
    return false;
}

/* A growable array of pointers in the arena. */
struct vec {
    void **items;
    uint32_t len, cap;
};

static void vec_push(struct arena *a, struct vec *v, void *x)
{
    if (v->len == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 4;
        void **n = arena_alloc(a, cap * sizeof *n);
        if (v->len) memcpy(n, v->items, v->len * sizeof *n);
        v->items = n;
        v->cap = cap;
    }
    v->items[v->len++] = x;
}

static int parse_expr(struct parser *p, struct policy_node **out);

/* String ::= '"' chars '"' (decoded into *s) */
static int string_lit(struct parser *p, const char **s, uint32_t *len)
{
    if (p->t.kind != TK_STRING) return fail_tok(p, "a string literal");
    char *o;
    const char *why = NULL;
    if (lex_unescape(p->a, p->t.start, p->t.len, false, &o, len, NULL, NULL, &why) < 0)
        return fail_at(p, p->t.line, p->t.column, "%s", why);
    *s = o;
    next(p);
    return 0;
}

/* Path ::= IDENT {'::' IDENT} — collects a qualified name.  Stops before a
 * '::' that is followed by a string (the entity id).  On return *has_id
 * tells whether the path continues with '::' STRING. */
static int path(struct parser *p, const char **name, uint32_t *len, bool *has_id)
{
    struct buf b;
    buf_init(&b);
    *has_id = false;
    if (p->t.kind != TK_IDENT) {
        buf_cleanup(&b);
        return fail_tok(p, "a name");
    }
    buf_append(&b, p->t.start, p->t.len);
    next(p);
    while (p->t.kind == TK_COLONCOLON) {
        next(p);
        if (p->t.kind == TK_STRING) {
            *has_id = true;
            break;
        }
        if (p->t.kind != TK_IDENT) {
            buf_cleanup(&b);
            return fail_tok(p, "a name or a quoted entity id after '::'");
        }
        buf_puts(&b, "::");
        buf_append(&b, p->t.start, p->t.len);
        next(p);
    }
    *name = arena_strndup(p->a, b.data, b.len);
    *len = (uint32_t)b.len;
    buf_cleanup(&b);
    return 0;
}

/* Entity ::= Path '::' STR */
static int entity(struct parser *p, struct policy_euid *e)
{
    bool has_id;
    int line = p->t.line, col = p->t.column;
    if (path(p, &e->type, &e->type_len, &has_id) < 0) return KEEL_EINVAL;
    if (!has_id)
        return fail_at(p, line, col, "expected an entity uid like Type::\"id\", found '%s'",
                       e->type);
    return string_lit(p, &e->id, &e->id_len);
}

static int find_builtin(const char *name, uint32_t len, bool method)
{
    for (int i = 0; i < POLICY_FN__COUNT; i++)
        if (builtins[i].method == method && strlen(builtins[i].name) == len &&
            !memcmp(builtins[i].name, name, len))
            return i;
    return -1;
}

/* Args ::= '(' [Expr {',' Expr}] ')'  — appended to v */
static int args(struct parser *p, struct vec *v)
{
    if (expect(p, TK_LPAREN, "'('") < 0) return KEEL_EINVAL;
    if (p->t.kind != TK_RPAREN) {
        for (;;) {
            struct policy_node *e;
            if (parse_expr(p, &e) < 0) return KEEL_EINVAL;
            vec_push(p->a, v, e);
            if (p->t.kind != TK_COMMA) break;
            next(p);
        }
    }
    return expect(p, TK_RPAREN, "',' or ')'");
}

static struct policy_node *call_node(struct parser *p, int fn, struct vec *v, int line, int col)
{
    struct policy_node *n = node(p, PN_CALL, line, col, 0);
    n->fn = (uint8_t)fn;
    n->nkids = v->len;
    n->kids = (struct policy_node **)v->items;
    return n;
}

/* Primary ::= LITERAL | VAR | Entity | ExtFun '(' [ExprList] ')' | '(' Expr ')'
 *           | '[' [ExprList] ']' | '{' [RecInits] '}' | '?principal' | '?resource' */
static int primary(struct parser *p, struct policy_node **out)
{
    int line = p->t.line, col = p->t.column;
    struct policy_node *n;
    switch (p->t.kind) {
    case TK_INT:
        if (p->t.overflow || p->t.num > (uint64_t)INT64_MAX)
            return fail_at(p, line, col, "integer literal %.*s is out of range for a Long",
                           (int)p->t.len, p->t.start);
        n = node(p, PN_LONG, line, col, 0);
        n->u.l = (int64_t)p->t.num;
        next(p);
        *out = n;
        return 0;
    case TK_STRING:
        n = node(p, PN_STRING, line, col, 0);
        if (string_lit(p, &n->u.str.s, &n->u.str.len) < 0) return KEEL_EINVAL;
        *out = n;
        return 0;
    case TK_LPAREN:
        next(p);
        if (parse_expr(p, out) < 0) return KEEL_EINVAL;
        return expect(p, TK_RPAREN, "')'");
    case TK_LBRACKET: {
        next(p);
        struct vec v = {0};
        if (p->t.kind != TK_RBRACKET) {
            for (;;) {
                struct policy_node *e;
                if (parse_expr(p, &e) < 0) return KEEL_EINVAL;
                vec_push(p->a, &v, e);
                if (p->t.kind != TK_COMMA) break;
                next(p);
            }
        }
        if (expect(p, TK_RBRACKET, "',' or ']'") < 0) return KEEL_EINVAL;
        n = node(p, PN_SET, line, col, 0);
        n->nkids = v.len;
        n->kids = (struct policy_node **)v.items;
        *out = n;
        return 0;
    }
    case TK_LBRACE: {
        /* RecInits ::= (IDENT | STR) ':' Expr {',' (IDENT | STR) ':' Expr} */
        next(p);
        struct vec keys = {0}, vals = {0};
        struct vec lens = {0};
        if (p->t.kind != TK_RBRACE) {
            for (;;) {
                const char *k;
                uint32_t kl;
                int kline = p->t.line, kcol = p->t.column;
                if (p->t.kind == TK_IDENT) {
                    k = arena_strndup(p->a, p->t.start, p->t.len);
                    kl = p->t.len;
                    next(p);
                } else if (p->t.kind == TK_STRING) {
                    if (string_lit(p, &k, &kl) < 0) return KEEL_EINVAL;
                } else {
                    return fail_tok(p, "a record key (a name or a string)");
                }
                for (uint32_t i = 0; i < keys.len; i++)
                    if ((uint32_t)(uintptr_t)lens.items[i] == kl && !memcmp(keys.items[i], k, kl))
                        return fail_at(p, kline, kcol, "duplicate key \"%s\" in record literal", k);
                if (expect(p, TK_COLON, "':' after the record key") < 0) return KEEL_EINVAL;
                struct policy_node *e;
                if (parse_expr(p, &e) < 0) return KEEL_EINVAL;
                vec_push(p->a, &keys, (void *)k);
                vec_push(p->a, &lens, (void *)(uintptr_t)kl);
                vec_push(p->a, &vals, e);
                if (p->t.kind != TK_COMMA) break;
                next(p);
            }
        }
        if (expect(p, TK_RBRACE, "',' or '}'") < 0) return KEEL_EINVAL;
        n = node(p, PN_RECORD, line, col, 0);
        n->nkids = vals.len;
        n->kids = (struct policy_node **)vals.items;
        n->u.rec.keys = (const char **)keys.items;
        uint32_t *kls = arena_alloc(p->a, (keys.len + 1) * sizeof *kls);
        for (uint32_t i = 0; i < keys.len; i++) kls[i] = (uint32_t)(uintptr_t)lens.items[i];
        n->u.rec.key_lens = kls;
        *out = n;
        return 0;
    }
    case TK_QUESTION: {
        next(p);
        int var = -1;
        if (is_kw(&p->t, "principal")) var = POLICY_VAR_PRINCIPAL;
        else if (is_kw(&p->t, "resource")) var = POLICY_VAR_RESOURCE;
        if (var < 0) return fail_tok(p, "'principal' or 'resource' after '?'");
        if (!p->in_scope)
            return fail_at(p, line, col, "template slots (?principal, ?resource) may only "
                                         "appear in the policy scope");
        next(p);
        n = node(p, PN_SLOT, line, col, 0);
        n->var = (uint8_t)var;
        *out = n;
        return 0;
    }
    case TK_IDENT:
        break;
    default: return fail_tok(p, "an expression");
    }
    if (is_kw(&p->t, "true") || is_kw(&p->t, "false")) {
        n = node(p, PN_BOOL, line, col, 0);
        n->u.b = is_kw(&p->t, "true");
        next(p);
        *out = n;
        return 0;
    }
    if (is_reserved(&p->t))
        return fail_at(p, line, col, "'%.*s' is a reserved word and cannot start an expression",
                       (int)p->t.len, p->t.start);
    const char *name;
    uint32_t len;
    bool has_id;
    if (path(p, &name, &len, &has_id) < 0) return KEEL_EINVAL;
    if (has_id) {
        n = node(p, PN_ENTITY, line, col, 0);
        n->u.euid.type = name;
        n->u.euid.type_len = len;
        if (string_lit(p, &n->u.euid.id, &n->u.euid.id_len) < 0) return KEEL_EINVAL;
        *out = n;
        return 0;
    }
    if (p->t.kind == TK_LPAREN) {
        const char *fname = name;
        uint32_t flen = len;
        if (len > 9 && !memcmp(name, "__cedar::", 9)) {
            fname += 9;
            flen -= 9;
        }
        int fn = find_builtin(fname, flen, false);
        if (fn < 0) {
            if (find_builtin(fname, flen, true) >= 0)
                return fail_at(p, line, col, "`%s` is a method; call it as `value.%s(...)`",
                               name, name);
            return fail_at(p, line, col, "unknown function `%s`; the functions are decimal, ip, "
                                         "datetime and duration", name);
        }
        struct vec v = {0};
        if (args(p, &v) < 0) return KEEL_EINVAL;
        /* extension functions check their arity when called, as Cedar does */
        *out = call_node(p, fn, &v, line, col);
        return 0;
    }
    if (strchr(name, ':'))
        return fail_at(p, line, col, "`%s` is not an entity uid (add ::\"id\") nor a function call",
                       name);
    for (int i = 0; i < 4; i++) {
        if (!strcmp(name, var_names[i])) {
            n = node(p, PN_VAR, line, col, 0);
            n->var = (uint8_t)i;
            n->u.str.s = name;
            n->u.str.len = len;
            *out = n;
            return 0;
        }
    }
    if (!p->free_vars)
        return fail_at(p, line, col, "unknown variable `%s`; the variables are principal, action, "
                                     "resource and context", name);
    n = node(p, PN_VAR, line, col, 0);
    n->var = POLICY_VAR_OTHER;
    n->u.str.s = name;
    n->u.str.len = len;
    *out = n;
    return 0;
}

/* Member ::= Primary { '.' IDENT ['(' [ExprList] ')'] | '[' STR ']' }
 * (member_tail parses the accessors after an already parsed primary n) */
static int member_tail(struct parser *p, struct policy_node *n, struct policy_node **out)
{
    for (;;) {
        if (p->t.kind == TK_DOT) {
            next(p);
            if (p->t.kind != TK_IDENT) return fail_tok(p, "an attribute or method name after '.'");
            const char *name = arena_strndup(p->a, p->t.start, p->t.len);
            uint32_t len = p->t.len;
            int nline = p->t.line, ncol = p->t.column;
            next(p);
            if (p->t.kind == TK_LPAREN) {
                int fn = find_builtin(name, len, true);
                if (fn < 0) {
                    if (find_builtin(name, len, false) >= 0)
                        return fail_at(p, nline, ncol, "`%s` is a function; call it as `%s(...)`",
                                       name, name);
                    return fail_at(p, nline, ncol, "unknown method `%s`", name);
                }
                struct vec v = {0};
                vec_push(p->a, &v, n);
                if (args(p, &v) < 0) return KEEL_EINVAL;
                if (fn <= POLICY_FN_GET_TAG && (int)v.len != builtins[fn].arity)
                    return fail_at(p, nline, ncol, "`%s` takes %d argument(s), %u given", name,
                                   builtins[fn].arity - 1, v.len - 1);
                n = call_node(p, fn, &v, n->line, n->column);
            } else {
                struct policy_node *g = node(p, PN_GETATTR, n->line, n->column, 1);
                g->kids[0] = n;
                g->u.str.s = name;
                g->u.str.len = len;
                n = g;
            }
        } else if (p->t.kind == TK_LBRACKET) {
            next(p);
            struct policy_node *g = node(p, PN_GETATTR, n->line, n->column, 1);
            g->kids[0] = n;
            if (string_lit(p, &g->u.str.s, &g->u.str.len) < 0) return KEEL_EINVAL;
            if (expect(p, TK_RBRACKET, "']'") < 0) return KEEL_EINVAL;
            n = g;
        } else {
            break;
        }
    }
    *out = n;
    return 0;
}

static int member(struct parser *p, struct policy_node **out)
{
    struct policy_node *n;
    if (primary(p, &n) < 0) return KEEL_EINVAL;
    return member_tail(p, n, out);
}

/* Unary ::= '!'{0..4} Member | '-'{0..4} Member */
static int unary(struct parser *p, struct policy_node **out)
{
    int ops[8], nops = 0;
    int lines[8], cols[8];
    while (p->t.kind == TK_BANG || p->t.kind == TK_MINUS) {
        if (nops > 0 && p->t.kind != ops[0])
            return fail_at(p, p->t.line, p->t.column,
                           "'!' and '-' cannot be mixed in a row; use parentheses");
        if (nops == 4)
            return fail_at(p, p->t.line, p->t.column,
                           "too many unary operators in a row (at most 4); use parentheses");
        lines[nops] = p->t.line;
        cols[nops] = p->t.column;
        ops[nops++] = p->t.kind;
        next(p);
    }
    struct policy_node *n;
    if (nops > 0 && ops[nops - 1] == TK_MINUS && p->t.kind == TK_INT) {
        /* A negative literal: -9223372036854775808 is valid. */
        if (p->t.overflow || p->t.num > (uint64_t)INT64_MAX + 1)
            return fail_at(p, p->t.line, p->t.column,
                           "integer literal -%.*s is out of range for a Long", (int)p->t.len,
                           p->t.start);
        n = node(p, PN_LONG, lines[nops - 1], cols[nops - 1], 0);
        n->u.l = p->t.num == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)p->t.num;
        next(p);
        nops--;
        if (member_tail(p, n, &n) < 0) return KEEL_EINVAL;
    } else if (member(p, &n) < 0) {
        return KEEL_EINVAL;
    }
    while (nops > 0) {
        nops--;
        struct policy_node *u =
            node(p, ops[nops] == TK_BANG ? PN_NOT : PN_NEG, lines[nops], cols[nops], 1);
        u->kids[0] = n;
        n = u;
    }
    *out = n;
    return 0;
}

/* Mult ::= Unary {'*' Unary} */
static int mult(struct parser *p, struct policy_node **out)
{
    struct policy_node *l, *r;
    if (unary(p, &l) < 0) return KEEL_EINVAL;
    while (p->t.kind == TK_STAR || p->t.kind == TK_SLASH || p->t.kind == TK_PERCENT) {
        if (p->t.kind != TK_STAR)
            return fail_at(p, p->t.line, p->t.column,
                           "Cedar has no division or remainder operator");
        next(p);
        if (unary(p, &r) < 0) return KEEL_EINVAL;
        l = node2(p, PN_MUL, l, r);
    }
    *out = l;
    return 0;
}

/* Add ::= Mult {('+' | '-') Mult} */
static int add(struct parser *p, struct policy_node **out)
{
    struct policy_node *l, *r;
    if (mult(p, &l) < 0) return KEEL_EINVAL;
    while (p->t.kind == TK_PLUS || p->t.kind == TK_MINUS) {
        int k = p->t.kind == TK_PLUS ? PN_ADD : PN_SUB;
        next(p);
        if (mult(p, &r) < 0) return KEEL_EINVAL;
        l = node2(p, k, l, r);
    }
    *out = l;
    return 0;
}

/* Relation ::= Add [RELOP Add] | Add 'has' (IDENT | STR) {'.' IDENT}
 *            | Add 'like' PAT | Add 'is' Path ['in' Add] */
static int relation(struct parser *p, struct policy_node **out)
{
    struct policy_node *l, *r;
    if (add(p, &l) < 0) return KEEL_EINVAL;
    static const struct {
        int tok;
        int kind;
    } relops[] = {{TK_EQEQ, PN_EQ}, {TK_NE, PN_NE}, {TK_LT, PN_LT},
                  {TK_LE, PN_LE},   {TK_GT, PN_GT}, {TK_GE, PN_GE}};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(relops); i++) {
        if (p->t.kind == relops[i].tok) {
            next(p);
            if (add(p, &r) < 0) return KEEL_EINVAL;
            *out = node2(p, relops[i].kind, l, r);
            return 0;
        }
    }
    if (p->t.kind == TK_EQ)
        return fail_at(p, p->t.line, p->t.column, "'=' is not an operator; use '==' to compare");
    if (is_kw(&p->t, "in")) {
        next(p);
        if (add(p, &r) < 0) return KEEL_EINVAL;
        *out = node2(p, PN_IN, l, r);
        return 0;
    }
    if (is_kw(&p->t, "has")) {
        next(p);
        /* `e has a.b.c` means `e has a && e.a has b && e.a.b has c`. */
        struct policy_node *base = l, *acc = NULL;
        for (;;) {
            const char *name;
            uint32_t len;
            if (p->t.kind == TK_IDENT) {
                name = arena_strndup(p->a, p->t.start, p->t.len);
                len = p->t.len;
                next(p);
            } else if (p->t.kind == TK_STRING) {
                if (string_lit(p, &name, &len) < 0) return KEEL_EINVAL;
            } else {
                return fail_tok(p, "an attribute name after 'has'");
            }
            struct policy_node *h = node(p, PN_HAS, l->line, l->column, 1);
            h->kids[0] = base;
            h->u.str.s = name;
            h->u.str.len = len;
            acc = acc ? node2(p, PN_AND, acc, h) : h;
            if (p->t.kind != TK_DOT) break;
            next(p);
            struct policy_node *g = node(p, PN_GETATTR, l->line, l->column, 1);
            g->kids[0] = base;
            g->u.str.s = name;
            g->u.str.len = len;
            base = g;
            if (p->t.kind != TK_IDENT) return fail_tok(p, "an attribute name after '.'");
        }
        *out = acc;
        return 0;
    }
    if (is_kw(&p->t, "like")) {
        next(p);
        if (p->t.kind != TK_STRING) return fail_tok(p, "a pattern string after 'like'");
        struct policy_node *n = node(p, PN_LIKE, l->line, l->column, 1);
        n->kids[0] = l;
        char *o;
        uint32_t ol, pl;
        int16_t *pat;
        const char *why = NULL;
        if (lex_unescape(p->a, p->t.start, p->t.len, true, &o, &ol, &pat, &pl, &why) < 0)
            return fail_at(p, p->t.line, p->t.column, "%s", why);
        n->u.pat.items = pat;
        n->u.pat.len = pl;
        next(p);
        *out = n;
        return 0;
    }
    if (is_kw(&p->t, "is")) {
        next(p);
        const char *name;
        uint32_t len;
        bool has_id;
        int tl = p->t.line, tc = p->t.column;
        if (path(p, &name, &len, &has_id) < 0) return KEEL_EINVAL;
        if (has_id) return fail_at(p, tl, tc, "'is' takes an entity type, not an entity uid");
        struct policy_node *n = node(p, PN_IS, l->line, l->column, 2);
        n->kids[0] = l;
        n->u.str.s = name;
        n->u.str.len = len;
        if (is_kw(&p->t, "in")) {
            next(p);
            if (add(p, &n->kids[1]) < 0) return KEEL_EINVAL;
        } else {
            n->nkids = 1;
        }
        *out = n;
        return 0;
    }
    *out = l;
    return 0;
}

/* And ::= Relation {'&&' Relation} */
static int and_expr(struct parser *p, struct policy_node **out)
{
    struct policy_node *l, *r;
    if (relation(p, &l) < 0) return KEEL_EINVAL;
    while (p->t.kind == TK_ANDAND) {
        next(p);
        if (relation(p, &r) < 0) return KEEL_EINVAL;
        l = node2(p, PN_AND, l, r);
    }
    *out = l;
    return 0;
}

/* Or ::= And {'||' And} */
static int or_expr(struct parser *p, struct policy_node **out)
{
    struct policy_node *l, *r;
    if (and_expr(p, &l) < 0) return KEEL_EINVAL;
    while (p->t.kind == TK_OROR) {
        next(p);
        if (and_expr(p, &r) < 0) return KEEL_EINVAL;
        l = node2(p, PN_OR, l, r);
    }
    *out = l;
    return 0;
}

/* The height of the tree under root, without recursion (a chain of binary
 * operators is as high as it is long, and the parser builds chains in a
 * loop): refuses a tree higher than POLICY_MAX_HEIGHT at its deepest node,
 * since evaluation, validation and printing recurse over it. */
static int check_height(struct parser *p, const struct policy_node *root)
{
    struct item {
        const struct policy_node *n;
        uint32_t h;
    };
    size_t cap = 64, len = 0;
    struct item *st = malloc(cap * sizeof *st);
    if (!st) return fail_at(p, root->line, root->column, "out of memory checking an expression");
    st[len++] = (struct item){root, 1};
    int rc = 0;
    while (len && !rc) {
        struct item it = st[--len];
        if (it.h > POLICY_MAX_HEIGHT) {
            rc = fail_at(p, it.n->line, it.n->column,
                         "expression is more than %d levels deep here (each operator of a "
                         "chain such as a && b && c adds a level); split it, or test "
                         "membership with a set: [1, 2, 3].contains(x)",
                         POLICY_MAX_HEIGHT);
            break;
        }
        for (uint32_t i = 0; i < it.n->nkids; i++) {
            if (!it.n->kids[i]) continue;
            if (len == cap) {
                struct item *m = realloc(st, 2 * cap * sizeof *st);
                if (!m) {
                    rc = fail_at(p, root->line, root->column,
                                 "out of memory checking an expression");
                    break;
                }
                st = m;
                cap *= 2;
            }
            st[len++] = (struct item){it.n->kids[i], it.h + 1};
        }
    }
    free(st);
    return rc;
}

/* Expr ::= Or | 'if' Expr 'then' Expr 'else' Expr */
static int parse_expr(struct parser *p, struct policy_node **out)
{
    if (++p->depth > POLICY_MAX_DEPTH) {
        return fail_at(p, p->t.line, p->t.column,
                       "expression nested too deeply (limit %d); simplify it", POLICY_MAX_DEPTH);
    }
    int rc;
    if (is_kw(&p->t, "if")) {
        int line = p->t.line, col = p->t.column;
        next(p);
        struct policy_node *n = node(p, PN_IF, line, col, 3);
        rc = parse_expr(p, &n->kids[0]);
        if (rc == 0 && !is_kw(&p->t, "then")) rc = fail_tok(p, "'then'");
        if (rc == 0) {
            next(p);
            rc = parse_expr(p, &n->kids[1]);
        }
        if (rc == 0 && !is_kw(&p->t, "else")) rc = fail_tok(p, "'else'");
        if (rc == 0) {
            next(p);
            rc = parse_expr(p, &n->kids[2]);
        }
        *out = n;
    } else {
        rc = or_expr(p, out);
    }
    p->depth--;
    if (rc == 0 && p->depth == 0) rc = check_height(p, *out); /* the whole expression */
    return rc;
}

/* ScopeEntity ::= Entity | '?principal' | '?resource' */
static int scope_target(struct parser *p, struct policy_scope *s, const char *slot)
{
    s->euids = arena_zalloc(p->a, sizeof *s->euids);
    s->neuids = 1;
    if (p->t.kind == TK_QUESTION) {
        int line = p->t.line, col = p->t.column;
        next(p);
        if (!slot || !is_kw(&p->t, slot + 1))
            return fail_at(p, line, col, "expected %s%s here", slot ? "an entity uid or " : "an entity uid",
                           slot ? slot : "");
        next(p);
        s->slot = true;
        s->euids = NULL;
        return 0;
    }
    return entity(p, &s->euids[0]);
}

static bool is_action_type(const struct policy_euid *e)
{
    if (e->type_len == 6 && !memcmp(e->type, "Action", 6)) return true;
    return e->type_len > 8 && !memcmp(e->type + e->type_len - 8, "::Action", 8);
}

/* Principal ::= 'principal' [('==' | 'in') ScopeEntity | 'is' Path ['in' ScopeEntity]]
 * Action    ::= 'action' [('==' Entity) | 'in' (Entity | '[' [Entity {',' Entity}] ']')]
 * Resource  ::= 'resource' ... as Principal */
static int scope(struct parser *p, struct policy_scope *s, const char *var, const char *slot)
{
    s->line = p->t.line;
    s->column = p->t.column;
    if (!is_kw(&p->t, var)) {
        char what[32];
        snprintf(what, sizeof what, "'%s'", var);
        return fail_tok(p, what);
    }
    next(p);
    s->op = POLICY_SCOPE_ANY;
    if (p->t.kind == TK_EQEQ) {
        next(p);
        s->op = POLICY_SCOPE_EQ;
        if (scope_target(p, s, slot) < 0) return KEEL_EINVAL;
    } else if (is_kw(&p->t, "in")) {
        next(p);
        s->op = POLICY_SCOPE_IN;
        if (!slot && p->t.kind == TK_LBRACKET) {
            next(p);
            s->op = POLICY_SCOPE_IN_SET;
            struct vec v = {0};
            if (p->t.kind != TK_RBRACKET) {
                for (;;) {
                    struct policy_euid *e = arena_zalloc(p->a, sizeof *e);
                    if (entity(p, e) < 0) return KEEL_EINVAL;
                    vec_push(p->a, &v, e);
                    if (p->t.kind != TK_COMMA) break;
                    next(p);
                }
            }
            if (expect(p, TK_RBRACKET, "',' or ']'") < 0) return KEEL_EINVAL;
            s->neuids = v.len;
            s->euids = arena_alloc(p->a, (v.len + 1) * sizeof *s->euids);
            for (uint32_t i = 0; i < v.len; i++) s->euids[i] = *(struct policy_euid *)v.items[i];
        } else if (scope_target(p, s, slot) < 0) {
            return KEEL_EINVAL;
        }
    } else if (is_kw(&p->t, "is")) {
        if (!slot)
            return fail_at(p, p->t.line, p->t.column,
                           "'is' is not allowed in the action scope; use '==' or 'in'");
        next(p);
        bool has_id;
        int tl = p->t.line, tc = p->t.column;
        if (path(p, &s->is_type, &s->is_type_len, &has_id) < 0) return KEEL_EINVAL;
        if (has_id) return fail_at(p, tl, tc, "'is' takes an entity type, not an entity uid");
        s->op = POLICY_SCOPE_IS;
        if (is_kw(&p->t, "in")) {
            next(p);
            s->op = POLICY_SCOPE_IS_IN;
            if (scope_target(p, s, slot) < 0) return KEEL_EINVAL;
        }
    } else if (p->t.kind != TK_COMMA && p->t.kind != TK_RPAREN) {
        return fail_tok(p, "'==', 'in', 'is', ',' or ')'");
    }
    if (!slot) {
        for (uint32_t i = 0; s->euids && i < s->neuids; i++)
            if (!is_action_type(&s->euids[i]))
                return fail_at(p, s->line, s->column,
                               "the action scope must name actions (Action::\"id\"), found %s::\"%s\"",
                               s->euids[i].type, s->euids[i].id);
    }
    return 0;
}

/* Policy ::= {Annotation} ('permit' | 'forbid') '(' Principal ',' Action ',' Resource ')'
 *            {('when' | 'unless') '{' Expr '}'} ';'
 * Annotation ::= '@' IDENT ['(' STR ')'] */
static int policy(struct parser *p, struct policy **out)
{
    struct policy *pol = arena_zalloc(p->a, sizeof *pol);
    const char *start = p->t.start;
    pol->file = p->file ? p->file : "";
    pol->line = p->t.line;
    pol->column = p->t.column;
    struct vec anns = {0};
    while (p->t.kind == TK_AT) {
        struct policy_annotation *an = arena_zalloc(p->a, sizeof *an);
        an->line = p->t.line;
        an->column = p->t.column;
        next(p);
        if (p->t.kind != TK_IDENT) return fail_tok(p, "an annotation name after '@'");
        an->key = arena_strndup(p->a, p->t.start, p->t.len);
        for (uint32_t i = 0; i < anns.len; i++)
            if (!strcmp(((struct policy_annotation *)anns.items[i])->key, an->key))
                return fail_at(p, p->t.line, p->t.column, "duplicate annotation @%s", an->key);
        next(p);
        an->value = "";
        if (p->t.kind == TK_LPAREN) {
            next(p);
            if (string_lit(p, &an->value, &an->value_len) < 0) return KEEL_EINVAL;
            if (expect(p, TK_RPAREN, "')' after the annotation value") < 0) return KEEL_EINVAL;
        }
        vec_push(p->a, &anns, an);
    }
    pol->nannotations = anns.len;
    pol->annotations = arena_alloc(p->a, (anns.len + 1) * sizeof *pol->annotations);
    for (uint32_t i = 0; i < anns.len; i++)
        pol->annotations[i] = *(struct policy_annotation *)anns.items[i];
    if (is_kw(&p->t, "permit")) pol->effect = POLICY_PERMIT;
    else if (is_kw(&p->t, "forbid")) pol->effect = POLICY_FORBID;
    else return fail_tok(p, "'permit' or 'forbid'");
    next(p);
    if (expect(p, TK_LPAREN, "'(' after the effect") < 0) return KEEL_EINVAL;
    if (scope(p, &pol->principal, "principal", "?principal") < 0) return KEEL_EINVAL;
    if (expect(p, TK_COMMA, "',' after the principal constraint") < 0) return KEEL_EINVAL;
    if (scope(p, &pol->action, "action", NULL) < 0) return KEEL_EINVAL;
    if (expect(p, TK_COMMA, "',' after the action constraint") < 0) return KEEL_EINVAL;
    if (scope(p, &pol->resource, "resource", "?resource") < 0) return KEEL_EINVAL;
    if (p->t.kind == TK_COMMA) {
        return fail_at(p, p->t.line, p->t.column,
                       "the scope has exactly three parts (principal, action, resource)");
    }
    if (expect(p, TK_RPAREN, "')' after the resource constraint") < 0) return KEEL_EINVAL;
    struct vec conds = {0};
    p->in_scope = false;
    while (is_kw(&p->t, "when") || is_kw(&p->t, "unless")) {
        struct policy_condition *c = arena_zalloc(p->a, sizeof *c);
        c->when = is_kw(&p->t, "when");
        c->line = p->t.line;
        c->column = p->t.column;
        next(p);
        if (expect(p, TK_LBRACE, "'{' after when/unless") < 0) return KEEL_EINVAL;
        if (p->t.kind == TK_RBRACE)
            return fail_at(p, p->t.line, p->t.column, "empty condition; write an expression "
                                                      "between the braces or remove the clause");
        if (parse_expr(p, &c->expr) < 0) return KEEL_EINVAL;
        if (expect(p, TK_RBRACE, "'}' to close the condition") < 0) return KEEL_EINVAL;
        vec_push(p->a, &conds, c);
    }
    p->in_scope = true;
    if (p->t.kind != TK_SEMI) return fail_tok(p, "';' at the end of the policy (or when/unless)");
    pol->text_len = (uint32_t)(p->t.start + 1 - start);
    pol->text = arena_strndup(p->a, start, pol->text_len);
    next(p);
    pol->nconds = conds.len;
    pol->conds = arena_alloc(p->a, (conds.len + 1) * sizeof *pol->conds);
    for (uint32_t i = 0; i < conds.len; i++)
        pol->conds[i] = *(struct policy_condition *)conds.items[i];
    pol->is_template = pol->principal.slot || pol->resource.slot;
    *out = pol;
    return 0;
}

int policy_fn_lookup(const char *name, int *arity)
{
    for (int i = 0; i < POLICY_FN__COUNT; i++) {
        if (!strcmp(builtins[i].name, name)) {
            if (arity) *arity = builtins[i].arity;
            return i;
        }
    }
    return -1;
}

int policy_parse_policies(struct arena *a, const char *text, size_t len, const char *file,
                          struct policy ***out, size_t *count, struct keel_err *err)
{
    if (len > POLICY_MAX_TEXT)
        return keel_fail_at(err, KEEL_ELIMIT, file, 0, 0,
                            "policy file is %zu bytes; the limit is %u", len, POLICY_MAX_TEXT);
    struct parser p = {.a = a, .file = file, .err = err, .in_scope = true};
    lex_init(&p.lx, text, len, 1, 1);
    next(&p);
    struct vec v = {0};
    while (p.t.kind != TK_EOF) {
        struct policy *pol = NULL;
        if (policy(&p, &pol) < 0) return KEEL_EINVAL;
        if (v.len >= POLICY_MAX_POLICIES)
            return keel_fail_at(err, KEEL_ELIMIT, file, pol->line, pol->column,
                                "too many policies (limit %u)", POLICY_MAX_POLICIES);
        vec_push(a, &v, pol);
    }
    *out = (struct policy **)v.items;
    *count = v.len;
    return 0;
}

int policy_parse_expr(struct arena *a, const char *text, size_t len, const char *file, int line,
                      int col, struct policy_node **out, struct keel_err *err)
{
    if (len > POLICY_MAX_TEXT)
        return keel_fail_at(err, KEEL_ELIMIT, file, line, col, "expression too long");
    struct parser p = {.a = a, .file = file, .err = err, .free_vars = true};
    lex_init(&p.lx, text, len, line, col);
    next(&p);
    if (parse_expr(&p, out) < 0) return KEEL_EINVAL;
    if (p.t.kind != TK_EOF) return fail_tok(&p, "end of the expression");
    return 0;
}
