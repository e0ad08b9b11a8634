/*
 * template.c — workflow templates: JSON values whose strings may hold
 * ${path} references to the run's input, state and the previous step's
 * result.  Compiled once when the workflow loads, rendered at every use.
 *
 * Syntax, inside any string of the value:
 *     ${input.ticket_id}          a path: root (input|state|result), then
 *     ${state.items[0].name}      .name or [index] parts (names are
 *     ${ result.key }             [A-Za-z_][A-Za-z0-9_-]*; blanks are trimmed)
 *     $${                         a literal "${"
 * A string that is exactly one reference renders as the referenced value
 * itself (an object stays an object); otherwise the pieces are joined into a
 * string, with non-string values written as compact JSON.
 *
 * Invariants: a compiled template never changes; rendering allocates only in
 * the caller's arena and shares unchanged subtrees (constant parts of the
 * template and referenced values) instead of copying them.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#define MAX_SEGMENTS 32

struct segment {
    const char *name; /* NULL for an [index] */
    size_t len;
    uint32_t index;
};

struct part {
    bool is_ref;
    const char *text; /* literal text (is_ref false) or the path as written */
    size_t len;
    unsigned root;
    struct segment *segs; /* after the root */
    size_t nsegs;
};

struct workflow_template {
    const struct json_value *src;
    unsigned vars;  /* roots referenced in this subtree */
    bool constant;  /* no reference in this subtree: render returns src */
    bool whole;     /* string that is exactly one reference */
    struct part *parts;
    size_t nparts;
    struct workflow_template **kids; /* array items / object member values */
};

static const struct {
    const char *name;
    unsigned bit;
} roots[] = {
    {"input", WORKFLOW_VAR_INPUT},
    {"state", WORKFLOW_VAR_STATE},
    {"result", WORKFLOW_VAR_RESULT},
};

static const char *root_name(unsigned bit)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(roots); i++)
        if (roots[i].bit == bit) return roots[i].name;
    return "?";
}

static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-';
}

struct tctx {
    struct arena *a;
    unsigned allowed;
    const char *file;
    struct buf path; /* JSON Pointer of the value being compiled */
    struct keel_err *err;
};

static int tfail(struct tctx *c, const struct json_value *v, const char *fmt, ...) KEEL_PRINTF(3, 4);
static int tfail(struct tctx *c, const struct json_value *v, const char *fmt, ...)
{
    if (c->err) {
        keel_fail_at(c->err, KEEL_EINVAL, c->file, v->line, v->column, "%s", "");
        snprintf(c->err->path, sizeof c->err->path, "%s", c->path.data ? c->path.data : "");
        va_list ap;
        va_start(ap, fmt);
        keel_vfail(c->err, KEEL_EINVAL, fmt, ap);
        va_end(ap);
    }
    return KEEL_EINVAL;
}

/* ref := blank* root ('.' name | '[' digits ']')* blank*   (text between ${ and }) */
static int parse_ref(struct tctx *c, const struct json_value *v, const char *s, size_t len,
                     struct part *out)
{
    while (len && (*s == ' ' || *s == '\t')) s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    out->is_ref = true;
    out->text = arena_strndup(c->a, s, len);
    out->len = len;
    size_t i = 0;
    while (i < len && name_char(s[i])) i++;
    if (i == 0)
        return tfail(c, v, "empty or malformed template reference '${%s}'; write e.g. ${input.id}",
                     out->text);
    out->root = 0;
    for (size_t r = 0; r < KEEL_ARRAY_LEN(roots); r++)
        if (strlen(roots[r].name) == i && !memcmp(roots[r].name, s, i)) out->root = roots[r].bit;
    if (!out->root)
        return tfail(c, v,
                     "unknown template variable '%.*s' in '${%s}'; templates may use input, "
                     "state and result",
                     (int)i, s, out->text);
    if (!(c->allowed & out->root)) {
        if (out->root == WORKFLOW_VAR_RESULT)
            return tfail(c, v,
                         "'${%s}' uses result, but no step result is available here (result is "
                         "the output of the step that ran just before; it is defined only when "
                         "every way into this step comes from a tool, agent or approval step)",
                         out->text);
        return tfail(c, v, "'${%s}': %s cannot be used in this template", out->text,
                     root_name(out->root));
    }
    struct segment segs[MAX_SEGMENTS];
    size_t n = 0;
    while (i < len) {
        if (n == MAX_SEGMENTS)
            return tfail(c, v, "template reference '${%s}' has more than %d parts", out->text,
                         MAX_SEGMENTS);
        if (s[i] == '.') {
            size_t b = ++i;
            if (i >= len || !name_start(s[i]))
                return tfail(c, v, "malformed template reference '${%s}': expected a name after '.'",
                             out->text);
            while (i < len && name_char(s[i])) i++;
            segs[n++] = (struct segment){.name = arena_strndup(c->a, s + b, i - b), .len = i - b};
        } else if (s[i] == '[') {
            uint64_t idx = 0;
            size_t b = ++i;
            while (i < len && s[i] >= '0' && s[i] <= '9' && idx < UINT32_MAX)
                idx = idx * 10 + (uint64_t)(s[i++] - '0');
            if (i == b || i >= len || s[i] != ']' || idx >= UINT32_MAX)
                return tfail(c, v,
                             "malformed template reference '${%s}': expected [number] for an "
                             "array index",
                             out->text);
            i++;
            segs[n++] = (struct segment){.name = NULL, .index = (uint32_t)idx};
        } else {
            return tfail(c, v,
                         "malformed template reference '${%s}': unexpected '%c' (paths look "
                         "like state.ticket.subject or input.items[0])",
                         out->text, s[i]);
        }
    }
    out->nsegs = n;
    out->segs = n ? arena_alloc(c->a, n * sizeof *segs) : NULL;
    if (n) memcpy(out->segs, segs, n * sizeof *segs);
    return 0;
}

static int compile_string(struct tctx *c, const struct json_value *v, struct workflow_template *t)
{
    const char *s = v->u.s.str;
    size_t len = v->len;
    struct part parts[WORKFLOW_MAX_TEMPLATE_PARTS];
    size_t n = 0;
    struct buf lit;
    buf_init(&lit);
    int rc = 0;
    size_t i = 0;
    bool any_ref = false, escaped = false;
    while (i < len && !rc) {
        if (s[i] == '$' && i + 2 < len && s[i + 1] == '$' && s[i + 2] == '{') {
            buf_append(&lit, "${", 2);
            i += 3;
            escaped = true;
            continue;
        }
        if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
            const char *end = memchr(s + i + 2, '}', len - i - 2);
            if (!end) {
                rc = tfail(c, v, "unterminated template reference: '${' without '}' (write $${ "
                                 "for a literal ${)");
                break;
            }
            if (n + 2 > WORKFLOW_MAX_TEMPLATE_PARTS) {
                rc = tfail(c, v, "more than %d template pieces in one string",
                           WORKFLOW_MAX_TEMPLATE_PARTS);
                break;
            }
            if (lit.len) {
                parts[n++] = (struct part){.text = arena_strndup(c->a, lit.data, lit.len),
                                           .len = lit.len};
                buf_reset(&lit);
            }
            rc = parse_ref(c, v, s + i + 2, (size_t)(end - (s + i + 2)), &parts[n]);
            if (rc) break;
            t->vars |= parts[n].root;
            n++;
            any_ref = true;
            i = (size_t)(end - s) + 1;
            continue;
        }
        buf_putc(&lit, s[i++]);
    }
    if (!rc && lit.len) {
        if (n + 1 > WORKFLOW_MAX_TEMPLATE_PARTS) {
            rc = tfail(c, v, "more than %d template pieces in one string", WORKFLOW_MAX_TEMPLATE_PARTS);
        } else {
            parts[n++] = (struct part){.text = arena_strndup(c->a, lit.data, lit.len), .len = lit.len};
        }
    }
    buf_cleanup(&lit);
    if (rc) return rc;
    if (!any_ref && !escaped) {
        t->constant = true;
        return 0;
    }
    t->constant = false;
    t->whole = n == 1 && parts[0].is_ref;
    t->nparts = n;
    t->parts = arena_alloc(c->a, (n ? n : 1) * sizeof *parts);
    if (n) memcpy(t->parts, parts, n * sizeof *parts);
    return 0;
}

static int compile_node(struct tctx *c, const struct json_value *v, int depth,
                        struct workflow_template **out)
{
    if (depth > WORKFLOW_MAX_DEPTH) return tfail(c, v, "template nested too deeply");
    struct workflow_template *t = arena_zalloc(c->a, sizeof *t);
    t->src = v;
    t->constant = true;
    int rc = 0;
    if (v->type == JSON_STRING) {
        rc = compile_string(c, v, t);
    } else if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
        uint32_t n = v->len;
        t->kids = arena_zalloc(c->a, (n ? n : 1) * sizeof *t->kids);
        for (uint32_t i = 0; i < n && !rc; i++) {
            const struct json_value *kid =
                v->type == JSON_ARRAY ? v->u.items[i] : v->u.members[i].value;
            size_t mark = c->path.len;
            if (v->type == JSON_ARRAY)
                buf_printf(&c->path, "/%u", i);
            else
                json_pointer_append(&c->path, v->u.members[i].key, v->u.members[i].key_len);
            rc = compile_node(c, kid, depth + 1, &t->kids[i]);
            if (!rc) {
                c->path.len = mark;
                c->path.data[mark] = '\0';
            }
            if (!rc) {
                t->vars |= t->kids[i]->vars;
                if (!t->kids[i]->constant) t->constant = false;
            }
        }
    }
    if (rc) return rc;
    *out = t;
    return 0;
}

/* Returns a template in arena a (see workflow.h). */
int workflow_template_compile(struct arena *a, const struct json_value *v, unsigned allowed,
                              const char *file, const char *path,
                              struct workflow_template **out, struct keel_err *err)
{
    struct tctx c = {.a = a, .allowed = allowed, .file = file, .err = err};
    buf_init(&c.path);
    buf_puts(&c.path, path ? path : "");
    struct workflow_template *t = NULL;
    int rc = compile_node(&c, v, 0, &t);
    buf_cleanup(&c.path);
    if (rc) return rc;
    *out = t;
    return 0;
}

/* Borrowed from t. */
const struct json_value *workflow_template_source(const struct workflow_template *t)
{
    return t ? t->src : NULL;
}

/* Pure. */
unsigned workflow_template_vars(const struct workflow_template *t)
{
    return t ? t->vars : 0;
}

static int each_ref(const struct workflow_template *t,
                    int (*fn)(const struct workflow_ref *ref, void *ctx), void *ctx)
{
    if (!t || t->constant) return 0;
    for (size_t i = 0; i < t->nparts; i++) {
        const struct part *p = &t->parts[i];
        if (!p->is_ref) continue;
        struct workflow_ref r = {.root = p->root, .text = p->text, .where = t->src};
        if (p->nsegs && p->segs[0].name) {
            r.first = p->segs[0].name;
            r.first_len = p->segs[0].len;
        }
        int rc = fn(&r, ctx);
        if (rc) return rc;
    }
    if (t->src->type == JSON_ARRAY || t->src->type == JSON_OBJECT)
        for (uint32_t i = 0; i < t->src->len; i++) {
            int rc = each_ref(t->kids[i], fn, ctx);
            if (rc) return rc;
        }
    return 0;
}

/* Borrowed callback; see internal.h. */
int workflow_template_each_ref(const struct workflow_template *t,
                               int (*fn)(const struct workflow_ref *ref, void *ctx), void *ctx)
{
    return each_ref(t, fn, ctx);
}

/* ---- rendering ----------------------------------------------------------- */

static int resolve(const struct part *p, const struct json_value *vars,
                   const struct json_value **out, struct keel_err *err)
{
    const struct json_value *v = json_get(vars, root_name(p->root));
    if (!v)
        return keel_fail(err, KEEL_ENOENT, "template '${%s}': %s is not available", p->text,
                         root_name(p->root));
    for (size_t i = 0; i < p->nsegs; i++) {
        const struct segment *s = &p->segs[i];
        const struct json_value *next = NULL;
        if (s->name) {
            if (v->type != JSON_OBJECT)
                return keel_fail(err, KEEL_ENOENT,
                                 "template '${%s}': cannot take '.%s' of a %s", p->text, s->name,
                                 json_type_name(v));
            next = json_getn(v, s->name, s->len);
            if (!next)
                return keel_fail(err, KEEL_ENOENT, "template '${%s}': no member '%s'", p->text,
                                 s->name);
        } else {
            if (v->type != JSON_ARRAY)
                return keel_fail(err, KEEL_ENOENT,
                                 "template '${%s}': cannot index [%u] into a %s", p->text,
                                 s->index, json_type_name(v));
            if (s->index >= v->len)
                return keel_fail(err, KEEL_ENOENT,
                                 "template '${%s}': index %u is past the end (%u items)", p->text,
                                 s->index, v->len);
            next = v->u.items[s->index];
        }
        v = next;
    }
    *out = v;
    return 0;
}

static int render_node(const struct workflow_template *t, const struct json_value *vars,
                       struct arena *a, struct json_value **out, struct keel_err *err)
{
    if (t->constant) {
        *out = (struct json_value *)t->src;
        return 0;
    }
    const struct json_value *src = t->src;
    int rc;
    if (src->type == JSON_STRING) {
        if (t->whole) {
            const struct json_value *v;
            if ((rc = resolve(&t->parts[0], vars, &v, err))) return rc;
            *out = (struct json_value *)v;
            return 0;
        }
        struct buf b;
        buf_init(&b);
        for (size_t i = 0; i < t->nparts; i++) {
            const struct part *p = &t->parts[i];
            if (!p->is_ref) {
                buf_append(&b, p->text, p->len);
                continue;
            }
            const struct json_value *v;
            if ((rc = resolve(p, vars, &v, err))) {
                buf_cleanup(&b);
                return rc;
            }
            if (v->type == JSON_STRING)
                buf_append(&b, v->u.s.str, v->len);
            else if ((rc = json_write(&b, v, 0, err))) {
                buf_cleanup(&b);
                return rc;
            }
        }
        struct json_value *s = json_string(a, b.data ? b.data : "", b.len);
        buf_cleanup(&b);
        s->line = src->line;
        s->column = src->column;
        *out = s;
        return 0;
    }
    /* Array or object with references inside: a new container. */
    struct json_value *c = arena_zalloc(a, sizeof *c);
    *c = *src;
    if (src->type == JSON_ARRAY) {
        c->u.items = arena_alloc(a, (src->len ? src->len : 1) * sizeof *c->u.items);
        for (uint32_t i = 0; i < src->len; i++)
            if ((rc = render_node(t->kids[i], vars, a, &c->u.items[i], err))) return rc;
    } else {
        c->u.members = arena_alloc(a, (src->len ? src->len : 1) * sizeof *c->u.members);
        for (uint32_t i = 0; i < src->len; i++) {
            c->u.members[i] = src->u.members[i];
            if ((rc = render_node(t->kids[i], vars, a, &c->u.members[i].value, err))) return rc;
        }
    }
    c->cap = src->len;
    *out = c;
    return 0;
}

/* Returns a value in arena a (see workflow.h). */
int workflow_render(const struct workflow_template *t, const struct json_value *vars,
                    struct arena *a, struct json_value **out, struct keel_err *err)
{
    struct json_value *v = NULL;
    int rc = render_node(t, vars, a, &v, err);
    if (rc) return rc;
    *out = v;
    return 0;
}
