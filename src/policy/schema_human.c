/*
 * schema_human.c — the human-readable `.cedarschema` format: a lexer and a
 * recursive-descent parser producing raw declarations (schema_build.h),
 * which schema.c resolves.
 *
 * Grammar (Cedar schema format; annotations `@id` / `@id("text")` may
 * precede namespaces, declarations and attributes, and are ignored):
 *   Schema    ::= { Namespace }
 *   Namespace ::= 'namespace' Path '{' { Decl } '}' | Decl
 *   Decl      ::= Entity | Action | TypeDecl
 *   Entity    ::= 'entity' Idents ['in' EntOrTyps] [['='] RecType] ['tags' Type] ';'
 *               | 'entity' Idents 'enum' '[' STR { ',' STR } ']' ';'
 *   Action    ::= 'action' Names ['in' RefOrRefs] [AppliesTo] ';'
 *   TypeDecl  ::= 'type' IDENT '=' Type ';'
 *   Type      ::= Path | 'Set' '<' Type '>' | RecType
 *   RecType   ::= '{' [ AttrDecl { ',' AttrDecl } [','] ] '}'
 *   AttrDecl  ::= Name ['?'] ':' Type
 *   AppliesTo ::= 'appliesTo' '{' [ AppDecl { ',' AppDecl } [','] ] '}'
 *   AppDecl   ::= ('principal' | 'resource') ':' EntOrTyps | 'context' ':' Type
 *   EntOrTyps ::= Path | '[' [ Path { ',' Path } ] ']'
 *   RefOrRefs ::= Ref | '[' [ Ref { ',' Ref } ] ']'
 *   Ref       ::= Path '::' STR | Name
 *   Path      ::= IDENT { '::' IDENT }
 *   Name      ::= IDENT | STR
 * Comments run from `//` to the end of the line.  Keywords are contextual:
 * `entity` or `in` are fine attribute names.
 *
 * Invariants: every error carries file, line and column of the offending
 * token; input size and nesting are capped (POLICY_SCHEMA_MAX_*).
 */
#include "schema_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tok_kind {
    TK_EOF,
    TK_IDENT,
    TK_STR,
    TK_PUNCT, /* one of { } [ ] < > , ; : = ? @ ( ) and "::" */
};

struct tok {
    int kind;
    const char *start; /* source text */
    size_t len;
    char *str; /* TK_STR: unescaped (arena); TK_IDENT: copy */
    int line, column;
};

struct hparser {
    const char *src, *end, *p;
    int line, column;
    struct tok tok; /* current token */
    struct schema_builder *b;
    struct arena *a;
    struct keel_err *err;
    int depth;
};

static int perr(struct hparser *h, int line, int column, const char *fmt, ...) KEEL_PRINTF(4, 5);
static int perr(struct hparser *h, int line, int column, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    keel_vfail(h->err, KEEL_EINVAL, fmt, ap);
    va_end(ap);
    if (h->err) {
        h->err->line = line;
        h->err->column = column;
        snprintf(h->err->file, sizeof h->err->file, "%s", h->b->file);
    }
    return KEEL_EINVAL;
}

static void advance_char(struct hparser *h)
{
    if (*h->p == '\n') {
        h->line++;
        h->column = 1;
    } else if (((unsigned char)*h->p & 0xC0) != 0x80) {
        h->column++;
    }
    h->p++;
}

static bool is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident_char(int c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static void put_utf8(struct buf *b, unsigned cp)
{
    if (cp < 0x80) {
        buf_putc(b, (char)cp);
    } else if (cp < 0x800) {
        buf_putc(b, (char)(0xC0 | (cp >> 6)));
        buf_putc(b, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        buf_putc(b, (char)(0xE0 | (cp >> 12)));
        buf_putc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        buf_putc(b, (char)(0x80 | (cp & 0x3F)));
    } else {
        buf_putc(b, (char)(0xF0 | (cp >> 18)));
        buf_putc(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
        buf_putc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
        buf_putc(b, (char)(0x80 | (cp & 0x3F)));
    }
}

/* Reads a string literal body after the opening quote, with Cedar's escapes:
 * \n \r \t \\ \0 \' \" and \u{X..X} (1-6 hex digits, a Unicode scalar). */
static int lex_string(struct hparser *h, struct tok *t)
{
    struct buf b;
    buf_init(&b);
    advance_char(h); /* the quote */
    for (;;) {
        if (h->p >= h->end) {
            buf_cleanup(&b);
            return perr(h, t->line, t->column,
                        "string literal is not closed; add the closing '\"'");
        }
        char c = *h->p;
        if (c == '"') {
            advance_char(h);
            break;
        }
        if (c != '\\') {
            buf_putc(&b, c);
            advance_char(h);
            continue;
        }
        int eline = h->line, ecol = h->column;
        advance_char(h);
        if (h->p >= h->end) continue;
        char e = *h->p;
        static const char simple_from[] = "nrt\\0'\"";
        static const char simple_to[] = "\n\r\t\\\0'\"";
        const char *hit = e ? memchr(simple_from, e, sizeof simple_from - 1) : NULL;
        if (hit) {
            buf_putc(&b, simple_to[hit - simple_from]);
            advance_char(h);
            continue;
        }
        if (e == 'u' && h->p + 1 < h->end && h->p[1] == '{') {
            advance_char(h);
            advance_char(h);
            unsigned cp = 0;
            int digits = 0;
            while (h->p < h->end && *h->p != '}' && digits <= 6) {
                char d = *h->p;
                int v = (d >= '0' && d <= '9')   ? d - '0'
                        : (d >= 'a' && d <= 'f') ? d - 'a' + 10
                        : (d >= 'A' && d <= 'F') ? d - 'A' + 10
                                                 : -1;
                if (v < 0) break;
                cp = cp * 16 + (unsigned)v;
                digits++;
                advance_char(h);
            }
            if (h->p >= h->end || *h->p != '}' || digits == 0 || digits > 6 || cp > 0x10FFFF ||
                (cp >= 0xD800 && cp <= 0xDFFF)) {
                buf_cleanup(&b);
                return perr(h, eline, ecol,
                            "bad unicode escape; write \\u{X} with 1 to 6 hex digits naming a "
                            "Unicode scalar value");
            }
            advance_char(h);
            put_utf8(&b, cp);
            continue;
        }
        buf_cleanup(&b);
        return perr(h, eline, ecol,
                    "unknown escape '\\%c' in string; use \\n \\r \\t \\\\ \\0 \\' \\\" or "
                    "\\u{...}",
                    e);
    }
    t->str = arena_strndup(h->a, b.data ? b.data : "", b.len);
    t->len = b.len;
    buf_cleanup(&b);
    t->kind = TK_STR;
    return 0;
}

/* Reads the next token into h->tok. */
static int next(struct hparser *h)
{
    for (;;) {
        while (h->p < h->end &&
               (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r'))
            advance_char(h);
        if (h->p + 1 < h->end && h->p[0] == '/' && h->p[1] == '/') {
            while (h->p < h->end && *h->p != '\n') advance_char(h);
            continue;
        }
        break;
    }
    struct tok *t = &h->tok;
    memset(t, 0, sizeof *t);
    t->line = h->line;
    t->column = h->column;
    t->start = h->p;
    if (h->p >= h->end) {
        t->kind = TK_EOF;
        return 0;
    }
    unsigned char c = (unsigned char)*h->p;
    if (is_ident_start(c)) {
        while (h->p < h->end && is_ident_char((unsigned char)*h->p)) advance_char(h);
        t->kind = TK_IDENT;
        t->len = (size_t)(h->p - t->start);
        t->str = arena_strndup(h->a, t->start, t->len);
        return 0;
    }
    if (c == '"') return lex_string(h, t);
    if (c == ':' && h->p + 1 < h->end && h->p[1] == ':') {
        advance_char(h);
        advance_char(h);
        t->kind = TK_PUNCT;
        t->len = 2;
        return 0;
    }
    if (strchr("{}[]<>,;:=?@()", c) && c) {
        advance_char(h);
        t->kind = TK_PUNCT;
        t->len = 1;
        return 0;
    }
    if (c < 0x20 || c >= 0x7f)
        return perr(h, t->line, t->column, "unexpected character (byte 0x%02x)", c);
    return perr(h, t->line, t->column, "unexpected character '%c'", c);
}

static bool is_punct(const struct hparser *h, const char *p)
{
    return h->tok.kind == TK_PUNCT && h->tok.len == strlen(p) &&
           memcmp(h->tok.start, p, h->tok.len) == 0;
}

static bool is_word(const struct hparser *h, const char *w)
{
    return h->tok.kind == TK_IDENT && strcmp(h->tok.str, w) == 0;
}

static const char *tok_desc(struct hparser *h)
{
    switch (h->tok.kind) {
    case TK_EOF:
        return "end of file";
    case TK_STR:
        return arena_printf(h->a, "string \"%.40s\"", h->tok.str);
    case TK_IDENT:
        return arena_printf(h->a, "'%.60s'", h->tok.str);
    default:
        return arena_printf(h->a, "'%.*s'", (int)h->tok.len, h->tok.start);
    }
}

static int expect(struct hparser *h, const char *p, const char *context)
{
    if (!is_punct(h, p))
        return perr(h, h->tok.line, h->tok.column, "expected '%s' %s, found %s", p, context,
                    tok_desc(h));
    return next(h);
}

/* Annotations: '@' IDENT [ '(' STR ')' ] — ignored. */
static int annotations(struct hparser *h)
{
    int rc;
    while (is_punct(h, "@")) {
        if ((rc = next(h))) return rc;
        if (h->tok.kind != TK_IDENT)
            return perr(h, h->tok.line, h->tok.column,
                        "expected an annotation name after '@', found %s", tok_desc(h));
        if ((rc = next(h))) return rc;
        if (is_punct(h, "(")) {
            if ((rc = next(h))) return rc;
            if (h->tok.kind != TK_STR)
                return perr(h, h->tok.line, h->tok.column,
                            "expected a string as annotation value, found %s", tok_desc(h));
            if ((rc = next(h))) return rc;
            if ((rc = expect(h, ")", "after the annotation value"))) return rc;
        }
    }
    return 0;
}

/* Path ::= IDENT { '::' IDENT }.  Stops before '::' STR (an action ref). */
static int path(struct hparser *h, const char **out, int *line, int *column)
{
    if (h->tok.kind != TK_IDENT)
        return perr(h, h->tok.line, h->tok.column, "expected a type name, found %s",
                    tok_desc(h));
    *line = h->tok.line;
    *column = h->tok.column;
    struct buf b;
    buf_init(&b);
    buf_puts(&b, h->tok.str);
    int rc = next(h);
    while (rc == 0 && is_punct(h, "::")) {
        /* Look ahead: '::' followed by a string belongs to an entity uid. */
        const char *save_p = h->p;
        int save_line = h->line, save_col = h->column;
        struct tok save_tok = h->tok;
        if ((rc = next(h))) break;
        if (h->tok.kind == TK_STR) {
            h->p = save_p;
            h->line = save_line;
            h->column = save_col;
            h->tok = save_tok;
            break;
        }
        if (h->tok.kind != TK_IDENT) {
            rc = perr(h, h->tok.line, h->tok.column, "expected a name after '::', found %s",
                      tok_desc(h));
            break;
        }
        buf_printf(&b, "::%s", h->tok.str);
        rc = next(h);
    }
    if (rc == 0) *out = arena_strndup(h->a, b.data, b.len);
    buf_cleanup(&b);
    return rc;
}

static int type_expr(struct hparser *h, struct raw_type **out);

/* RecType ::= '{' [ AttrDecl { ',' AttrDecl } [','] ] '}' (at '{'). */
static int record_type(struct hparser *h, struct raw_type **out)
{
    struct raw_type *t = arena_zalloc(h->a, sizeof *t);
    t->kind = RAW_RECORD;
    t->line = h->tok.line;
    t->column = h->tok.column;
    int rc = next(h);
    size_t cap = 0;
    while (rc == 0 && !is_punct(h, "}")) {
        if ((rc = annotations(h))) break;
        if (h->tok.kind != TK_IDENT && h->tok.kind != TK_STR) {
            rc = perr(h, h->tok.line, h->tok.column,
                      "expected an attribute name or '}', found %s", tok_desc(h));
            break;
        }
        if (t->nattrs == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct raw_attr *na = arena_alloc(h->a, ncap * sizeof *na);
            if (t->nattrs) memcpy(na, t->attrs, t->nattrs * sizeof *na);
            t->attrs = na;
            cap = ncap;
        }
        struct raw_attr *at = &t->attrs[t->nattrs++];
        at->name = h->tok.str;
        at->name_len = h->tok.len;
        at->line = h->tok.line;
        at->column = h->tok.column;
        at->required = true;
        if ((rc = next(h))) break;
        if (is_punct(h, "?")) {
            at->required = false;
            if ((rc = next(h))) break;
        }
        if ((rc = expect(h, ":", "after the attribute name"))) break;
        if ((rc = type_expr(h, &at->type))) break;
        if (is_punct(h, ",")) {
            rc = next(h);
        } else if (!is_punct(h, "}")) {
            rc = perr(h, h->tok.line, h->tok.column,
                      "expected ',' or '}' after attribute '%s', found %s", at->name,
                      tok_desc(h));
        }
    }
    if (rc) return rc;
    *out = t;
    return next(h);
}

/* Type ::= Path | 'Set' '<' Type '>' | RecType */
static int type_expr(struct hparser *h, struct raw_type **out)
{
    if (++h->depth > POLICY_SCHEMA_MAX_DEPTH) {
        return perr(h, h->tok.line, h->tok.column,
                    "types nest deeper than %d levels; flatten the schema",
                    POLICY_SCHEMA_MAX_DEPTH);
    }
    int rc;
    if (is_punct(h, "{")) {
        rc = record_type(h, out);
    } else if (is_word(h, "Set")) {
        struct raw_type *t = arena_zalloc(h->a, sizeof *t);
        t->kind = RAW_SET;
        t->line = h->tok.line;
        t->column = h->tok.column;
        rc = next(h);
        if (rc == 0) rc = expect(h, "<", "after 'Set'");
        if (rc == 0) rc = type_expr(h, &t->elem);
        if (rc == 0) rc = expect(h, ">", "to close 'Set<'");
        if (rc == 0) *out = t;
    } else if (h->tok.kind == TK_IDENT) {
        struct raw_type *t = arena_zalloc(h->a, sizeof *t);
        t->kind = RAW_NAME;
        rc = path(h, &t->name, &t->line, &t->column);
        if (rc == 0) *out = t;
    } else {
        rc = perr(h, h->tok.line, h->tok.column,
                  "expected a type (a name, Set<...> or {...}), found %s", tok_desc(h));
    }
    h->depth--;
    return rc;
}

/* Appends a raw_name to a growable arena array. */
static struct raw_name *push_name(struct hparser *h, struct raw_name **arr, size_t *n,
                                  size_t *cap)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        struct raw_name *na = arena_alloc(h->a, ncap * sizeof *na);
        if (*n) memcpy(na, *arr, *n * sizeof *na);
        *arr = na;
        *cap = ncap;
    }
    return &(*arr)[(*n)++];
}

/* EntOrTyps ::= Path | '[' [ Path { ',' Path } ] ']' */
static int ent_or_types(struct hparser *h, struct raw_name **arr, size_t *n)
{
    size_t cap = 0;
    *arr = NULL;
    *n = 0;
    int rc;
    if (!is_punct(h, "[")) {
        struct raw_name *rn = push_name(h, arr, n, &cap);
        return path(h, &rn->name, &rn->line, &rn->column);
    }
    if ((rc = next(h))) return rc;
    while (!is_punct(h, "]")) {
        struct raw_name *rn = push_name(h, arr, n, &cap);
        if ((rc = path(h, &rn->name, &rn->line, &rn->column))) return rc;
        if (is_punct(h, ",")) {
            if ((rc = next(h))) return rc;
        } else if (!is_punct(h, "]")) {
            return perr(h, h->tok.line, h->tok.column,
                        "expected ',' or ']' in the list of entity types, found %s",
                        tok_desc(h));
        }
    }
    return next(h);
}

static int entity_decl(struct hparser *h, const char *ns)
{
    int rc = next(h); /* 'entity' */
    if (rc) return rc;
    /* Idents: several types may share one declaration. */
    struct raw_name *names = NULL;
    size_t nnames = 0, cap = 0;
    for (;;) {
        if (h->tok.kind != TK_IDENT)
            return perr(h, h->tok.line, h->tok.column,
                        "expected an entity type name, found %s", tok_desc(h));
        struct raw_name *rn = push_name(h, &names, &nnames, &cap);
        rn->name = h->tok.str;
        rn->line = h->tok.line;
        rn->column = h->tok.column;
        if ((rc = next(h))) return rc;
        if (!is_punct(h, ",")) break;
        if ((rc = next(h))) return rc;
    }
    struct raw_name *parents = NULL;
    size_t nparents = 0;
    struct raw_type *shape = NULL, *tags = NULL;
    const char **enum_ids = NULL;
    size_t *enum_lens = NULL;
    size_t nenum = 0;
    if (is_word(h, "enum")) {
        if ((rc = next(h))) return rc;
        if ((rc = expect(h, "[", "after 'enum'"))) return rc;
        size_t ecap = 0;
        while (!is_punct(h, "]")) {
            if (h->tok.kind != TK_STR)
                return perr(h, h->tok.line, h->tok.column,
                            "expected a string entity id in the enum list, found %s",
                            tok_desc(h));
            if (nenum == ecap) {
                size_t ncap = ecap ? ecap * 2 : 8;
                const char **na = arena_alloc(h->a, ncap * sizeof *na);
                size_t *nl = arena_alloc(h->a, ncap * sizeof *nl);
                if (nenum) {
                    memcpy(na, enum_ids, nenum * sizeof *na);
                    memcpy(nl, enum_lens, nenum * sizeof *nl);
                }
                enum_ids = na;
                enum_lens = nl;
                ecap = ncap;
            }
            enum_lens[nenum] = h->tok.len;
            enum_ids[nenum++] = h->tok.str;
            if ((rc = next(h))) return rc;
            if (is_punct(h, ",")) {
                if ((rc = next(h))) return rc;
            } else if (!is_punct(h, "]")) {
                return perr(h, h->tok.line, h->tok.column,
                            "expected ',' or ']' in the enum list, found %s", tok_desc(h));
            }
        }
        if (nenum == 0)
            return perr(h, h->tok.line, h->tok.column,
                        "an enumerated entity type needs at least one id");
        if ((rc = next(h))) return rc;
        /* Repeated ids are accepted, as Cedar 4.10 does. */
    } else {
        if (is_word(h, "in")) {
            if ((rc = next(h))) return rc;
            if ((rc = ent_or_types(h, &parents, &nparents))) return rc;
        }
        if (is_punct(h, "=")) {
            if ((rc = next(h))) return rc;
            if (!is_punct(h, "{"))
                return perr(h, h->tok.line, h->tok.column,
                            "expected a record type '{ ... }' after '=', found %s",
                            tok_desc(h));
        }
        if (is_punct(h, "{")) {
            if ((rc = record_type(h, &shape))) return rc;
        }
        if (is_word(h, "tags")) {
            if ((rc = next(h))) return rc;
            if ((rc = type_expr(h, &tags))) return rc;
        }
    }
    if (!is_punct(h, ";"))
        return perr(h, h->tok.line, h->tok.column,
                    "expected ';' to end the declaration of entity type '%s', found %s",
                    names[0].name, tok_desc(h));
    for (size_t i = 0; i < nnames; i++) {
        struct raw_entity *e = schema_builder_entity(h->b);
        if (!e)
            return keel_fail(h->err, KEEL_ELIMIT, "schema has more than %d declarations",
                             POLICY_SCHEMA_MAX_DECLS);
        e->ns = ns;
        e->name = names[i].name;
        e->line = names[i].line;
        e->column = names[i].column;
        e->parents = parents;
        e->nparents = nparents;
        e->shape = shape;
        e->tags = tags;
        e->enum_ids = enum_ids;
        e->enum_id_lens = enum_lens;
        e->nenum = nenum;
    }
    return next(h);
}

/* Ref ::= Path '::' STR | Name */
static int action_ref(struct hparser *h, struct raw_action_ref *r)
{
    int rc;
    r->line = h->tok.line;
    r->column = h->tok.column;
    if (h->tok.kind == TK_STR) {
        r->id = h->tok.str;
        r->id_len = h->tok.len;
        return next(h);
    }
    if (h->tok.kind != TK_IDENT)
        return perr(h, h->tok.line, h->tok.column, "expected an action name, found %s",
                    tok_desc(h));
    const char *p;
    int l, c;
    if ((rc = path(h, &p, &l, &c))) return rc;
    if (is_punct(h, "::")) {
        if ((rc = next(h))) return rc; /* path() left '::' STR for us */
        r->type = p;
        if (h->tok.kind != TK_STR)
            return perr(h, h->tok.line, h->tok.column, "expected a string action id after '::'");
        r->id = h->tok.str;
        r->id_len = h->tok.len;
        return next(h);
    }
    if (strstr(p, "::"))
        return perr(h, l, c,
                    "expected an action name or Type::\"id\", found the path '%s'", p);
    r->id = p;
    r->id_len = strlen(p);
    return 0;
}

static int action_decl(struct hparser *h, const char *ns)
{
    int rc = next(h); /* 'action' */
    if (rc) return rc;
    struct raw_name *names = NULL;
    size_t nnames = 0, cap = 0;
    for (;;) {
        if (h->tok.kind != TK_IDENT && h->tok.kind != TK_STR)
            return perr(h, h->tok.line, h->tok.column, "expected an action name, found %s",
                        tok_desc(h));
        struct raw_name *rn = push_name(h, &names, &nnames, &cap);
        rn->name = h->tok.str;
        rn->len = h->tok.len;
        rn->line = h->tok.line;
        rn->column = h->tok.column;
        if ((rc = next(h))) return rc;
        if (!is_punct(h, ",")) break;
        if ((rc = next(h))) return rc;
    }
    struct raw_action_ref *parents = NULL;
    size_t nparents = 0;
    if (is_word(h, "in")) {
        if ((rc = next(h))) return rc;
        size_t pcap = 0;
        bool list = is_punct(h, "[");
        if (list && (rc = next(h))) return rc;
        while (!list || !is_punct(h, "]")) {
            if (nparents == pcap) {
                size_t ncap = pcap ? pcap * 2 : 4;
                struct raw_action_ref *na = arena_zalloc(h->a, ncap * sizeof *na);
                if (nparents) memcpy(na, parents, nparents * sizeof *na);
                parents = na;
                pcap = ncap;
            }
            if ((rc = action_ref(h, &parents[nparents++]))) return rc;
            if (!list) break;
            if (is_punct(h, ",")) {
                if ((rc = next(h))) return rc;
            } else if (!is_punct(h, "]")) {
                return perr(h, h->tok.line, h->tok.column,
                            "expected ',' or ']' in the list of action groups, found %s",
                            tok_desc(h));
            }
        }
        if (list && (rc = next(h))) return rc;
    }
    bool applies = false;
    struct raw_name *principals = NULL, *resources = NULL;
    size_t nprincipals = 0, nresources = 0;
    struct raw_type *context = NULL;
    bool seen_p = false, seen_r = false, seen_c = false;
    if (is_word(h, "appliesTo")) {
        applies = true;
        int al = h->tok.line, ac = h->tok.column;
        if ((rc = next(h))) return rc;
        if ((rc = expect(h, "{", "after 'appliesTo'"))) return rc;
        while (!is_punct(h, "}")) {
            int kl = h->tok.line, kc = h->tok.column;
            if (is_word(h, "principal") || is_word(h, "resource")) {
                bool is_p = h->tok.str[0] == 'p';
                if (is_p ? seen_p : seen_r)
                    return perr(h, kl, kc, "'%s' appears twice in appliesTo",
                                is_p ? "principal" : "resource");
                if ((rc = next(h))) return rc;
                if ((rc = expect(h, ":", "after principal/resource"))) return rc;
                if (is_p) {
                    seen_p = true;
                    rc = ent_or_types(h, &principals, &nprincipals);
                } else {
                    seen_r = true;
                    rc = ent_or_types(h, &resources, &nresources);
                }
                if (rc) return rc;
                if ((is_p ? nprincipals : nresources) == 0)
                    return perr(h, kl, kc,
                                "'%s: []' lists no types; list at least one, or leave out "
                                "appliesTo for an action that applies to nothing",
                                is_p ? "principal" : "resource");
            } else if (is_word(h, "context")) {
                if (seen_c) return perr(h, kl, kc, "'context' appears twice in appliesTo");
                seen_c = true;
                if ((rc = next(h))) return rc;
                if ((rc = expect(h, ":", "after 'context'"))) return rc;
                if ((rc = type_expr(h, &context))) return rc;
            } else {
                return perr(h, kl, kc,
                            "expected 'principal', 'resource' or 'context' in appliesTo, "
                            "found %s",
                            tok_desc(h));
            }
            if (is_punct(h, ",")) {
                if ((rc = next(h))) return rc;
            } else if (!is_punct(h, "}")) {
                return perr(h, h->tok.line, h->tok.column,
                            "expected ',' or '}' in appliesTo, found %s", tok_desc(h));
            }
        }
        if (!seen_p || !seen_r)
            return perr(h, al, ac,
                        "appliesTo must list both 'principal' and 'resource' types (an "
                        "action that applies to nothing omits appliesTo)");
        if ((rc = next(h))) return rc;
    }
    if (is_word(h, "attributes"))
        return perr(h, h->tok.line, h->tok.column,
                    "action attributes are not supported; move the data to the context");
    if (!is_punct(h, ";"))
        return perr(h, h->tok.line, h->tok.column,
                    "expected ';' to end the declaration of action \"%s\", found %s",
                    names[0].name, tok_desc(h));
    for (size_t i = 0; i < nnames; i++) {
        struct raw_action *a = schema_builder_action(h->b);
        if (!a)
            return keel_fail(h->err, KEEL_ELIMIT, "schema has more than %d declarations",
                             POLICY_SCHEMA_MAX_DECLS);
        a->ns = ns;
        a->id = names[i].name;
        a->id_len = names[i].len;
        a->line = names[i].line;
        a->column = names[i].column;
        a->parents = parents;
        a->nparents = nparents;
        a->applies = applies;
        a->principals = principals;
        a->nprincipals = nprincipals;
        a->resources = resources;
        a->nresources = nresources;
        a->context = context;
    }
    return next(h);
}

static int type_decl(struct hparser *h, const char *ns)
{
    int rc = next(h); /* 'type' */
    if (rc) return rc;
    if (h->tok.kind != TK_IDENT)
        return perr(h, h->tok.line, h->tok.column, "expected a common type name, found %s",
                    tok_desc(h));
    struct raw_common *c = schema_builder_common(h->b);
    if (!c)
        return keel_fail(h->err, KEEL_ELIMIT, "schema has more than %d declarations",
                         POLICY_SCHEMA_MAX_DECLS);
    c->ns = ns;
    c->name = h->tok.str;
    c->line = h->tok.line;
    c->column = h->tok.column;
    if ((rc = next(h))) return rc;
    if ((rc = expect(h, "=", "after the common type name"))) return rc;
    struct raw_type *t;
    if ((rc = type_expr(h, &t))) return rc;
    /* c may have moved if type_expr added declarations; it cannot (types
     * declare nothing), so c is still valid here. */
    c->type = t;
    if (!is_punct(h, ";"))
        return perr(h, h->tok.line, h->tok.column,
                    "expected ';' after the common type declaration, found %s", tok_desc(h));
    return next(h);
}

static int decl(struct hparser *h, const char *ns)
{
    int rc = annotations(h);
    if (rc) return rc;
    if (is_word(h, "entity")) return entity_decl(h, ns);
    if (is_word(h, "action")) return action_decl(h, ns);
    if (is_word(h, "type")) return type_decl(h, ns);
    if (is_word(h, "namespace"))
        return perr(h, h->tok.line, h->tok.column,
                    "namespaces cannot be nested; close the enclosing namespace first");
    return perr(h, h->tok.line, h->tok.column,
                "expected 'entity', 'action', 'type' or 'namespace', found %s", tok_desc(h));
}

int policy_schema_parse_human(const char *text, size_t len, const char *file,
                              struct policy_schema **out, struct keel_err *err)
{
    if (len > POLICY_SCHEMA_MAX_BYTES)
        return keel_fail(err, KEEL_ELIMIT, "schema is larger than %u bytes",
                         POLICY_SCHEMA_MAX_BYTES);
    struct schema_builder b;
    schema_builder_init(&b, file);
    struct hparser h = {.src = text, .end = text + len, .p = text, .line = 1, .column = 1,
                        .b = &b, .a = &b.schema->arena, .err = err};
    struct strmap seen_ns;
    strmap_init(&seen_ns);
    int rc = next(&h);
    while (rc == 0 && h.tok.kind != TK_EOF) {
        if ((rc = annotations(&h))) break;
        if (!is_word(&h, "namespace")) {
            rc = decl(&h, "");
            continue;
        }
        int nl = h.tok.line, nc = h.tok.column;
        if ((rc = next(&h))) break;
        const char *ns;
        int l, c;
        if ((rc = path(&h, &ns, &l, &c))) break;
        if (strncmp(ns, "__cedar", 7) == 0 && (ns[7] == 0 || ns[7] == ':')) {
            rc = perr(&h, l, c, "the namespace '__cedar' is reserved; choose another name");
            break;
        }
        if (strmap_put(&seen_ns, ns, strlen(ns), (void *)ns)) {
            rc = perr(&h, nl, nc, "namespace '%s' is declared twice; merge the two blocks", ns);
            break;
        }
        if ((rc = expect(&h, "{", "after the namespace name"))) break;
        while (rc == 0 && !is_punct(&h, "}")) {
            if (h.tok.kind == TK_EOF) {
                rc = perr(&h, h.tok.line, h.tok.column,
                          "namespace '%s' (line %d) is not closed; add '}'", ns, nl);
                break;
            }
            rc = decl(&h, ns);
        }
        if (rc == 0) rc = next(&h);
    }
    strmap_cleanup(&seen_ns);
    if (rc) {
        schema_builder_abandon(&b);
        return rc;
    }
    return schema_build_finish(&b, out, err);
}
