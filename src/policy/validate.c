/*
 * validate.c — strict validation of Cedar policies against a schema: the
 * checks Cedar's validator makes (in its default strict mode), reported per
 * policy with file:line:column.
 *
 * For each policy (and template) three passes run:
 *   1. names: every entity type written in the policy is declared, every
 *      action literal is a declared action, every literal of an enumerated
 *      entity type uses one of its ids;
 *   2. action application: some action the action scope allows applies to
 *      some principal type and resource type the other two scopes allow;
 *   3. typing: the policy's condition — scope constraints && when/unless
 *      bodies, in that order, as Cedar builds it — is typechecked in every
 *      request environment (principal type, action, resource type, and for
 *      templates each entity type a slot may be linked to) the schema
 *      allows.  Booleans carry singleton types (True/False) so `&&`, `||`
 *      and `if` short-circuit the way Cedar does: the body of a policy whose
 *      scope cannot match an environment is not checked there.  `has` and
 *      `hasTag` produce capabilities (which attribute/tag accesses are safe
 *      while the expression is true); optional attributes and tags may only
 *      be read under such a capability.
 * Strict mode: no subtyping between different entity types (no least upper
 * bound), records only combine when they have the same attributes with the
 * same optionality, `==` / `contains*` need compatible operand types unless
 * the result is already known, set literals may not be empty, and extension
 * constructors take literal arguments.  A policy whose condition is False in
 * every environment is "impossible", which Cedar reports as a warning, not
 * an error; this file lists it (diag.warning set) without counting it.
 *
 * Invariants: the schema and the policy set are only read; all types built
 * during checking live in one arena reset per policy; diagnostics are
 * de-duplicated per policy (Cedar reports each problem once even when many
 * environments hit it).
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- types -------------------------------------------------------------- */

static const struct policy_type t_bool = {.kind = POLICY_T_BOOL};
static const struct policy_type t_true = {.kind = POLICY_T_TRUE};
static const struct policy_type t_false = {.kind = POLICY_T_FALSE};
static const struct policy_type t_long = {.kind = POLICY_T_LONG};
static const struct policy_type t_string = {.kind = POLICY_T_STRING};
static const struct policy_type t_any_entity = {.kind = POLICY_T_ANY_ENTITY};
static const struct policy_type t_ext_decimal = {.kind = POLICY_T_EXT, .name = "decimal"};
static const struct policy_type t_ext_ipaddr = {.kind = POLICY_T_EXT, .name = "ipaddr"};
static const struct policy_type t_ext_datetime = {.kind = POLICY_T_EXT, .name = "datetime"};
static const struct policy_type t_ext_duration = {.kind = POLICY_T_EXT, .name = "duration"};

static bool is_boolish(const struct policy_type *t)
{
    return t->kind == POLICY_T_BOOL || t->kind == POLICY_T_TRUE || t->kind == POLICY_T_FALSE;
}

static bool is_entityish(const struct policy_type *t)
{
    return t->kind == POLICY_T_ENTITY || t->kind == POLICY_T_ANY_ENTITY;
}

/* Strict subtyping (Cedar's Type::is_subtype in strict mode). */
static bool subtype(const struct policy_type *a, const struct policy_type *b)
{
    if (a->kind == POLICY_T_NEVER) return true;
    switch (a->kind) {
    case POLICY_T_TRUE:
    case POLICY_T_FALSE:
        return b->kind == POLICY_T_BOOL || b->kind == a->kind;
    case POLICY_T_BOOL:
    case POLICY_T_LONG:
    case POLICY_T_STRING:
        return b->kind == a->kind;
    case POLICY_T_SET:
        return b->kind == POLICY_T_SET && (!b->elem || (a->elem && subtype(a->elem, b->elem)));
    case POLICY_T_RECORD:
        if (b->kind != POLICY_T_RECORD) return false;
        if (a->open && !b->open) return false;
        if (a->nattrs != b->nattrs) return false;
        for (size_t i = 0; i < a->nattrs; i++) {
            const struct policy_attr *x = &a->attrs[i], *y = &b->attrs[i];
            if (policy_attr_name_cmp(x->name, x->name_len, y->name, y->name_len) != 0) return false;
            if (x->required != y->required || !subtype(x->type, y->type)) return false;
        }
        return true;
    case POLICY_T_ENTITY:
        return b->kind == POLICY_T_ENTITY && strcmp(a->name, b->name) == 0;
    case POLICY_T_ANY_ENTITY:
        return b->kind == POLICY_T_ANY_ENTITY;
    case POLICY_T_EXT:
        return b->kind == POLICY_T_EXT && strcmp(a->name, b->name) == 0;
    }
    return false;
}

/* What `expect_type` accepts: permissive subtyping against the "any"
 * shapes Cedar's typechecker asks for. */
enum want {
    W_BOOL,
    W_LONG,
    W_STRING,
    W_ENTITY,           /* any entity                                */
    W_ENTITY_OR_RECORD, /* `.attr`, `has`                            */
    W_SET,              /* any set                                   */
    W_ENTITY_OR_SET,    /* rhs of `in`: entity or set of entities    */
    W_EXACT,            /* extension arguments: the given type       */
};

static const char *const want_names[] = {
    [W_BOOL] = "Bool",
    [W_LONG] = "Long",
    [W_STRING] = "String",
    [W_ENTITY] = "an entity",
    [W_ENTITY_OR_RECORD] = "an entity or a record",
    [W_SET] = "a set",
    [W_ENTITY_OR_SET] = "an entity or a set of entities",
    [W_EXACT] = "",
};

static bool accepts(enum want w, const struct policy_type *t, const struct policy_type *exact)
{
    if (t->kind == POLICY_T_NEVER) return true;
    switch (w) {
    case W_BOOL:
        return is_boolish(t);
    case W_LONG:
        return t->kind == POLICY_T_LONG;
    case W_STRING:
        return t->kind == POLICY_T_STRING;
    case W_ENTITY:
        return is_entityish(t);
    case W_ENTITY_OR_RECORD:
        return is_entityish(t) || t->kind == POLICY_T_RECORD;
    case W_SET:
        return t->kind == POLICY_T_SET;
    case W_ENTITY_OR_SET:
        return is_entityish(t) ||
               (t->kind == POLICY_T_SET && (!t->elem || t->elem->kind == POLICY_T_NEVER ||
                                            is_entityish(t->elem)));
    case W_EXACT:
        return subtype(t, exact);
    }
    return false;
}

/* ---- the checker -------------------------------------------------------- */

struct cap {
    const struct policy_node *e;   /* the expression whose attribute/tag is safe */
    const char *attr;              /* attribute capability, or NULL */
    uint32_t attr_len;
    const struct policy_node *tag; /* tag capability: the key expression */
};

struct capset {
    const struct cap *items;
    size_t n;
};

/* The result of typing one expression. */
struct tc {
    const struct policy_type *t; /* NULL: no type could be given */
    bool ok;                      /* false: an error was found inside */
    struct capset caps;           /* safe accesses while the expression is true */
};

struct env {
    const char *principal; /* entity type names */
    const char *resource;
    const struct policy_action *action;
    const char *principal_slot; /* linked slot types, NULL = slot unused */
    const char *resource_slot;
};

struct checker {
    const struct policy_schema *s;
    const struct policy *p;
    struct arena *a;
    struct policy_diag_list *out;
    int errors;
    struct strmap seen; /* "line:col:message" already reported */
    const struct env *env;
    int depth;
    struct strmap *action_in_cache; /* "child\x1fanc" -> (void *)1 or 2, per validate call */
};

static void report(struct checker *c, int line, int column, const char *fmt, ...)
    KEEL_PRINTF(4, 5);
static void report(struct checker *c, int line, int column, const char *fmt, ...)
{
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%d:%d:", line, column);
    size_t prefix = b.len;
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (!strmap_get(&c->seen, b.data, b.len)) {
        strmap_put(&c->seen, b.data, b.len, (void *)1);
        c->errors++;
        if (c->out)
            policy_diag_add(c->out, c->p->id, c->p->file, line, column, "%s", b.data + prefix);
    }
    buf_cleanup(&b);
}

static const char *type_str(struct checker *c, const struct policy_type *t)
{
    struct buf b;
    buf_init(&b);
    policy_type_format(&b, t);
    const char *s = arena_strndup(c->a, b.data ? b.data : "", b.len);
    buf_cleanup(&b);
    return s;
}

static struct tc ok_type(const struct policy_type *t)
{
    return (struct tc){.t = t, .ok = true};
}

static struct tc fail_type(const struct policy_type *t)
{
    return (struct tc){.t = t, .ok = false};
}

static const struct policy_type *entity_type(struct checker *c, const char *name)
{
    struct policy_type *t = arena_zalloc(c->a, sizeof *t);
    t->kind = POLICY_T_ENTITY;
    t->name = name;
    return t;
}

static bool is_action_type_name(const char *type)
{
    size_t n = strlen(type);
    return strcmp(type, "Action") == 0 || (n > 8 && strcmp(type + n - 8, "::Action") == 0);
}

/* ---- capabilities ------------------------------------------------------- */

/* Structural equality of expressions, ignoring positions (Cedar compares
 * capability expressions this way). */
static bool node_equal(const struct policy_node *a, const struct policy_node *b)
{
    if (a == b) return true;
    if (!a || !b || a->kind != b->kind || a->nkids != b->nkids) return false;
    switch (a->kind) {
    case PN_BOOL:
        if (a->u.b != b->u.b) return false;
        break;
    case PN_LONG:
        if (a->u.l != b->u.l) return false;
        break;
    case PN_VAR:
    case PN_SLOT:
        if (a->var != b->var) return false;
        if (a->var == POLICY_VAR_OTHER &&
            (a->u.str.len != b->u.str.len || memcmp(a->u.str.s, b->u.str.s, a->u.str.len)))
            return false;
        break;
    case PN_STRING:
    case PN_HAS:
    case PN_GETATTR:
    case PN_IS:
        if (a->u.str.len != b->u.str.len || memcmp(a->u.str.s, b->u.str.s, a->u.str.len))
            return false;
        break;
    case PN_ENTITY:
        if (!policy_euid_equal(&a->u.euid, &b->u.euid)) return false;
        break;
    case PN_LIKE:
        if (a->u.pat.len != b->u.pat.len ||
            memcmp(a->u.pat.items, b->u.pat.items, a->u.pat.len * sizeof *a->u.pat.items))
            return false;
        break;
    case PN_RECORD:
        for (uint32_t i = 0; i < a->nkids; i++)
            if (a->u.rec.key_lens[i] != b->u.rec.key_lens[i] ||
                memcmp(a->u.rec.keys[i], b->u.rec.keys[i], a->u.rec.key_lens[i]))
                return false;
        break;
    case PN_CALL:
        if (a->fn != b->fn) return false;
        break;
    default:
        break;
    }
    for (uint32_t i = 0; i < a->nkids; i++)
        if (!node_equal(a->kids[i], b->kids[i])) return false;
    return true;
}

static bool cap_equal(const struct cap *x, const struct cap *y)
{
    if (!node_equal(x->e, y->e)) return false;
    if (x->attr || y->attr)
        return x->attr && y->attr && x->attr_len == y->attr_len &&
               memcmp(x->attr, y->attr, x->attr_len) == 0;
    return node_equal(x->tag, y->tag);
}

static bool caps_has(struct capset s, const struct cap *k)
{
    for (size_t i = 0; i < s.n; i++)
        if (cap_equal(&s.items[i], k)) return true;
    return false;
}

static struct capset caps_union(struct checker *c, struct capset x, struct capset y)
{
    if (!y.n) return x;
    if (!x.n) return y;
    struct cap *items = arena_alloc(c->a, (x.n + y.n) * sizeof *items);
    size_t n = 0;
    for (size_t i = 0; i < x.n; i++) items[n++] = x.items[i];
    for (size_t i = 0; i < y.n; i++)
        if (!caps_has(x, &y.items[i])) items[n++] = y.items[i];
    return (struct capset){items, n};
}

static struct capset caps_intersect(struct checker *c, struct capset x, struct capset y)
{
    if (!x.n || !y.n) return (struct capset){0};
    struct cap *items = arena_alloc(c->a, x.n * sizeof *items);
    size_t n = 0;
    for (size_t i = 0; i < x.n; i++)
        if (caps_has(y, &x.items[i])) items[n++] = x.items[i];
    return (struct capset){items, n};
}

static struct capset caps_one(struct checker *c, struct cap k)
{
    struct cap *items = arena_alloc(c->a, sizeof *items);
    *items = k;
    return (struct capset){items, 1};
}

/* ---- least upper bounds -------------------------------------------------- */

/* Strict least upper bound; NULL when there is none. */
static const struct policy_type *lub(struct checker *c, const struct policy_type *a,
                                     const struct policy_type *b)
{
    if (subtype(a, b)) return b;
    if (subtype(b, a)) return a;
    if (is_boolish(a) && is_boolish(b)) return &t_bool;
    if (a->kind == POLICY_T_SET && b->kind == POLICY_T_SET) {
        if (!a->elem || !b->elem) return a->elem ? b : a;
        const struct policy_type *e = lub(c, a->elem, b->elem);
        if (!e) return NULL;
        struct policy_type *t = arena_zalloc(c->a, sizeof *t);
        t->kind = POLICY_T_SET;
        t->elem = e;
        return t;
    }
    if (a->kind == POLICY_T_RECORD && b->kind == POLICY_T_RECORD) {
        if (a->nattrs != b->nattrs) return NULL;
        struct policy_attr *attrs =
            a->nattrs ? arena_zalloc(c->a, a->nattrs * sizeof *attrs) : NULL;
        for (size_t i = 0; i < a->nattrs; i++) {
            const struct policy_attr *x = &a->attrs[i], *y = &b->attrs[i];
            if (policy_attr_name_cmp(x->name, x->name_len, y->name, y->name_len) != 0)
                return NULL;
            if (x->required != y->required) return NULL;
            const struct policy_type *e = lub(c, x->type, y->type);
            if (!e) return NULL;
            attrs[i] = *x;
            attrs[i].type = e;
        }
        struct policy_type *t = arena_zalloc(c->a, sizeof *t);
        t->kind = POLICY_T_RECORD;
        t->attrs = attrs;
        t->nattrs = a->nattrs;
        t->open = a->open || b->open;
        return t;
    }
    return NULL;
}

/* ---- expressions ---------------------------------------------------------- */

static struct tc check(struct checker *c, struct capset prior, const struct policy_node *n);

static struct tc expect(struct checker *c, struct capset prior, const struct policy_node *n,
                        enum want w, const struct policy_type *exact, const char *hint)
{
    struct tc r = check(c, prior, n);
    if (!r.t) {
        r.ok = false;
        return r;
    }
    if (!accepts(w, r.t, exact)) {
        report(c, n->line, n->column, "expected %s, found %s%s%s",
               w == W_EXACT ? type_str(c, exact) : want_names[w], type_str(c, r.t),
               hint ? "; " : "", hint ? hint : "");
        r.t = NULL;
        r.ok = false;
        r.caps = (struct capset){0};
    }
    return r;
}

static const struct policy_type *attrs_of(struct checker *c, const struct policy_type *t)
{
    if (t->kind == POLICY_T_RECORD) return t;
    if (t->kind == POLICY_T_ENTITY) {
        const struct policy_entity_type *et = policy_schema_entity(c->s, t->name);
        return et ? et->shape : NULL;
    }
    return NULL;
}

/* Is node n an entity literal, or the action variable (which is one in each
 * environment)?  Fills *out. */
static bool as_euid(struct checker *c, const struct policy_node *n, struct policy_euid *out)
{
    if (n->kind == PN_ENTITY) {
        *out = n->u.euid;
        return true;
    }
    if (n->kind == PN_VAR && n->var == POLICY_VAR_ACTION) {
        out->type = c->env->action->uid.type;
        out->id = c->env->action->uid.id;
        out->type_len = (uint32_t)strlen(out->type);
        out->id_len = (uint32_t)c->env->action->uid.id_len;
        return true;
    }
    return false;
}

static bool literal_value(struct checker *c, const struct policy_node *n, struct policy_node *tmp)
{
    if (n->kind == PN_BOOL || n->kind == PN_LONG || n->kind == PN_STRING || n->kind == PN_ENTITY) {
        *tmp = *n;
        return true;
    }
    struct policy_euid e;
    if (n->kind == PN_VAR && as_euid(c, n, &e)) {
        memset(tmp, 0, sizeof *tmp);
        tmp->kind = PN_ENTITY;
        tmp->u.euid = e;
        return true;
    }
    return false;
}

static bool literal_equal(const struct policy_node *a, const struct policy_node *b)
{
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case PN_BOOL:
        return a->u.b == b->u.b;
    case PN_LONG:
        return a->u.l == b->u.l;
    case PN_STRING:
        return a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
    case PN_ENTITY:
        return policy_euid_equal(&a->u.euid, &b->u.euid);
    }
    return false;
}

/* `==` given both operand types (either may be NULL after an error). */
static struct tc equality(struct checker *c, const struct policy_node *at,
                          const struct policy_node *l, const struct tc *lt,
                          const struct policy_node *r, const struct tc *rt)
{
    bool ok = lt->ok && rt->ok;
    const struct policy_type *ty = &t_bool;
    if (lt->t && rt->t && lt->t->kind == POLICY_T_ENTITY && rt->t->kind == POLICY_T_ENTITY &&
        strcmp(lt->t->name, rt->t->name) != 0) {
        ty = &t_false; /* disjoint entity types */
    } else {
        struct policy_node a, b;
        if (literal_value(c, l, &a) && literal_value(c, r, &b))
            ty = literal_equal(&a, &b) ? &t_true : &t_false;
    }
    if (ty == &t_bool && lt->t && rt->t && !lub(c, lt->t, rt->t)) {
        report(c, at->line, at->column,
               "the operands of == have incompatible types %s and %s; compare values of the "
               "same type",
               type_str(c, lt->t), type_str(c, rt->t));
        ok = false;
    }
    struct tc res = ok_type(ty);
    res.ok = ok;
    return res;
}

/* May an entity of action type `child` be in an entity of type `anc`
 * through the action hierarchy? */
static bool action_type_in(struct checker *c, const char *child, const char *anc)
{
    if (strcmp(child, anc) == 0) return true;
    const struct policy_schema *s = c->s;
    /* The scan is quadratic in the number of actions: remember answers. */
    char *key = arena_printf(c->a, "%s\x1f%s", child, anc);
    void *hit = strmap_get(c->action_in_cache, key, strlen(key));
    if (hit) return hit == (void *)2;
    bool found = false;
    for (size_t i = 0; i < s->nactions && !found; i++) {
        if (strcmp(s->actions[i].uid.type, anc) != 0) continue;
        for (size_t k = 0; k < s->nactions && !found; k++)
            if (strcmp(s->actions[k].uid.type, child) == 0 &&
                policy_schema_action_descends(s, &s->actions[k], &s->actions[i]))
                found = true;
    }
    strmap_put(c->action_in_cache, key, strlen(key), found ? (void *)2 : (void *)1);
    return found;
}

static bool type_may_be_in(struct checker *c, const char *child, const char *anc)
{
    return policy_schema_entity_descends(c->s, child, anc) || action_type_in(c, child, anc);
}

static const struct policy_action *find_action(struct checker *c, const struct policy_euid *e)
{
    return policy_schema_action_n(c->s, e->type, e->id, e->id_len);
}

/* `lhs in rhs`, with the nodes (for the literal special cases). */
static struct tc in_expr(struct checker *c, struct capset prior, const struct policy_node *at,
                         const struct policy_node *lhs, const struct policy_node *rhs)
{
    struct tc lt = expect(c, prior, lhs, W_ENTITY, NULL, "use .contains() to test set membership");
    struct tc rt = expect(c, prior, rhs, W_ENTITY_OR_SET, NULL, NULL);
    if (!lt.ok || !rt.ok || !lt.t || !rt.t) return fail_type(&t_bool);
    struct policy_euid le;
    if (as_euid(c, lhs, &le) && is_action_type_name(le.type)) {
        /* Collect the rhs literals, if it is made only of them. */
        const struct policy_node *one[1] = {rhs};
        const struct policy_node *const *elems = one;
        size_t n = 1;
        if (rhs->kind == PN_SET) {
            elems = (const struct policy_node *const *)rhs->kids;
            n = rhs->nkids;
        }
        bool all = true, any_action = false;
        struct policy_euid e;
        for (size_t i = 0; i < n && all; i++) {
            if (!as_euid(c, elems[i], &e)) all = false;
            else if (is_action_type_name(e.type)) any_action = true;
        }
        if (all && (rhs->kind == PN_SET || as_euid(c, rhs, &e))) {
            if (!any_action) return ok_type(&t_false);
            const struct policy_action *la = find_action(c, &le);
            bool found = false;
            for (size_t i = 0; i < n; i++) {
                as_euid(c, elems[i], &e);
                if (!is_action_type_name(e.type)) continue;
                const struct policy_action *ra = find_action(c, &e);
                if (!ra) return fail_type(&t_bool); /* reported by the name pass */
                if (la && policy_schema_action_descends(c->s, la, ra)) found = true;
            }
            return ok_type(found ? &t_true : &t_false);
        }
    }
    const struct policy_type *l = lt.t;
    const struct policy_type *r = rt.t->kind == POLICY_T_SET ? rt.t->elem : rt.t;
    if (l->kind == POLICY_T_ENTITY && r && r->kind == POLICY_T_ENTITY &&
        !type_may_be_in(c, l->name, r->name))
        return ok_type(&t_false);
    (void)at;
    return ok_type(&t_bool);
}

static struct tc is_expr(struct checker *c, struct capset prior, const struct policy_node *e,
                         const char *type, int line, int column)
{
    struct tc r = expect(c, prior, e, W_ENTITY, NULL, NULL);
    (void)line;
    (void)column;
    if (!r.t) return fail_type(&t_bool);
    if (r.t->kind == POLICY_T_ENTITY)
        return ok_type(strcmp(r.t->name, type) == 0 ? &t_true : &t_false);
    return ok_type(&t_bool);
}

/* `left && right` given the left result (Cedar's typing of And). */
static struct tc and_rest(struct checker *c, struct capset prior, struct tc l,
                          const struct policy_node *right)
{
    if (l.t && l.t->kind == POLICY_T_FALSE) {
        l.caps = (struct capset){0};
        return l;
    }
    struct tc r = expect(c, caps_union(c, prior, l.caps), right, W_BOOL, NULL, NULL);
    if (!l.ok || !r.ok || !l.t || !r.t) return fail_type(&t_bool);
    if (r.t->kind == POLICY_T_FALSE) return ok_type(&t_false);
    struct tc res = ok_type(&t_bool);
    if (r.t->kind == POLICY_T_TRUE) res.t = l.t;
    else if (l.t->kind == POLICY_T_TRUE) res.t = r.t;
    res.caps = caps_union(c, l.caps, r.caps);
    return res;
}

/* ---- extension functions -------------------------------------------------- */

struct fn_sig {
    const char *name;
    int nargs;
    const struct policy_type *args[2];
    const struct policy_type *ret;
    int (*literal)(const char *s, size_t len); /* constructors: literal check */
};

static int lit_decimal(const char *s, size_t len)
{
    int64_t v;
    return policy_parse_decimal(s, len, &v);
}
static int lit_ip(const char *s, size_t len)
{
    struct policy_ip v;
    return policy_parse_ip(s, len, &v);
}
static int lit_datetime(const char *s, size_t len)
{
    int64_t v;
    return policy_parse_datetime(s, len, &v);
}
static int lit_duration(const char *s, size_t len)
{
    int64_t v;
    return policy_parse_duration(s, len, &v);
}

/* Indexed by enum policy_fn; NULL ret marks the builtin set/tag methods,
 * typed separately. */
static const struct fn_sig fn_sigs[POLICY_FN__COUNT] = {
    [POLICY_FN_DECIMAL] = {"decimal", 1, {&t_string}, &t_ext_decimal, lit_decimal},
    [POLICY_FN_IP] = {"ip", 1, {&t_string}, &t_ext_ipaddr, lit_ip},
    [POLICY_FN_DATETIME] = {"datetime", 1, {&t_string}, &t_ext_datetime, lit_datetime},
    [POLICY_FN_DURATION] = {"duration", 1, {&t_string}, &t_ext_duration, lit_duration},
    [POLICY_FN_CONTAINS] = {"contains", 2, {0}, NULL, NULL},
    [POLICY_FN_CONTAINS_ALL] = {"containsAll", 2, {0}, NULL, NULL},
    [POLICY_FN_CONTAINS_ANY] = {"containsAny", 2, {0}, NULL, NULL},
    [POLICY_FN_IS_EMPTY] = {"isEmpty", 1, {0}, NULL, NULL},
    [POLICY_FN_HAS_TAG] = {"hasTag", 2, {0}, NULL, NULL},
    [POLICY_FN_GET_TAG] = {"getTag", 2, {0}, NULL, NULL},
    [POLICY_FN_LESS_THAN] = {"lessThan", 2, {&t_ext_decimal, &t_ext_decimal}, &t_bool, NULL},
    [POLICY_FN_LESS_THAN_OR_EQUAL] = {"lessThanOrEqual", 2, {&t_ext_decimal, &t_ext_decimal},
                                      &t_bool, NULL},
    [POLICY_FN_GREATER_THAN] = {"greaterThan", 2, {&t_ext_decimal, &t_ext_decimal}, &t_bool,
                                NULL},
    [POLICY_FN_GREATER_THAN_OR_EQUAL] = {"greaterThanOrEqual", 2,
                                         {&t_ext_decimal, &t_ext_decimal}, &t_bool, NULL},
    [POLICY_FN_IS_IPV4] = {"isIpv4", 1, {&t_ext_ipaddr}, &t_bool, NULL},
    [POLICY_FN_IS_IPV6] = {"isIpv6", 1, {&t_ext_ipaddr}, &t_bool, NULL},
    [POLICY_FN_IS_LOOPBACK] = {"isLoopback", 1, {&t_ext_ipaddr}, &t_bool, NULL},
    [POLICY_FN_IS_MULTICAST] = {"isMulticast", 1, {&t_ext_ipaddr}, &t_bool, NULL},
    [POLICY_FN_IS_IN_RANGE] = {"isInRange", 2, {&t_ext_ipaddr, &t_ext_ipaddr}, &t_bool, NULL},
    [POLICY_FN_OFFSET] = {"offset", 2, {&t_ext_datetime, &t_ext_duration}, &t_ext_datetime,
                          NULL},
    [POLICY_FN_DURATION_SINCE] = {"durationSince", 2, {&t_ext_datetime, &t_ext_datetime},
                                  &t_ext_duration, NULL},
    [POLICY_FN_TO_DATE] = {"toDate", 1, {&t_ext_datetime}, &t_ext_datetime, NULL},
    [POLICY_FN_TO_TIME] = {"toTime", 1, {&t_ext_datetime}, &t_ext_duration, NULL},
    [POLICY_FN_TO_DAYS] = {"toDays", 1, {&t_ext_duration}, &t_long, NULL},
    [POLICY_FN_TO_HOURS] = {"toHours", 1, {&t_ext_duration}, &t_long, NULL},
    [POLICY_FN_TO_MINUTES] = {"toMinutes", 1, {&t_ext_duration}, &t_long, NULL},
    [POLICY_FN_TO_SECONDS] = {"toSeconds", 1, {&t_ext_duration}, &t_long, NULL},
    [POLICY_FN_TO_MILLISECONDS] = {"toMilliseconds", 1, {&t_ext_duration}, &t_long, NULL},
};

static struct tc ext_call(struct checker *c, struct capset prior, const struct policy_node *n,
                          const struct fn_sig *sig)
{
    bool failed = false;
    if ((int)n->nkids != sig->nargs) {
        report(c, n->line, n->column, "%s takes %d argument(s), found %u", sig->name,
               sig->nargs, n->nkids);
        failed = true;
    }
    if (sig->literal) {
        for (uint32_t i = 0; i < n->nkids; i++) {
            const struct policy_node *a = n->kids[i];
            if (a->kind == PN_STRING && sig->literal(a->u.str.s, a->u.str.len) != 0) {
                report(c, n->line, n->column, "\"%.*s\" is not a valid %s literal",
                       (int)(a->u.str.len > 80 ? 80 : a->u.str.len), a->u.str.s, sig->name);
                failed = true;
            } else if (a->kind != PN_BOOL && a->kind != PN_LONG && a->kind != PN_STRING &&
                       a->kind != PN_ENTITY) {
                report(c, n->line, n->column,
                       "%s(...) needs a literal argument in strict validation; write the value "
                       "as a string literal",
                       sig->name);
                failed = true;
            }
        }
    }
    if (failed) {
        for (uint32_t i = 0; i < n->nkids; i++) check(c, prior, n->kids[i]);
        return fail_type(sig->ret);
    }
    bool ok = true;
    for (uint32_t i = 0; i < n->nkids; i++) {
        struct tc a = expect(c, prior, n->kids[i], W_EXACT, sig->args[i], NULL);
        if (!a.ok) ok = false;
    }
    struct tc r = ok_type(sig->ret);
    r.ok = ok;
    return r;
}

static struct tc method_call(struct checker *c, struct capset prior, const struct policy_node *n)
{
    int fn = n->fn;
    if (n->nkids != (uint32_t)fn_sigs[fn].nargs) {
        report(c, n->line, n->column, "%s takes %d argument(s)", fn_sigs[fn].name,
               fn_sigs[fn].nargs - 1);
        for (uint32_t i = 0; i < n->nkids; i++) check(c, prior, n->kids[i]);
        return fail_type(&t_bool);
    }
    const struct policy_node *recv = n->kids[0];
    const struct policy_node *arg = n->nkids > 1 ? n->kids[1] : NULL;
    switch (fn) {
    case POLICY_FN_IS_EMPTY: {
        struct tc r = expect(c, prior, recv, W_SET, NULL, NULL);
        return r.t ? ok_type(&t_bool) : fail_type(&t_bool);
    }
    case POLICY_FN_CONTAINS: {
        struct tc s = expect(c, prior, recv, W_SET, NULL, "use `in` for entity membership");
        if (!s.t) return fail_type(&t_bool);
        struct tc e = check(c, prior, arg);
        if (!e.t) return fail_type(&t_bool);
        bool ok = s.ok && e.ok;
        if (s.t->elem && !lub(c, s.t->elem, e.t)) {
            report(c, n->line, n->column,
                   "contains: the set holds %s but the argument is %s; use values of the "
                   "element type",
                   type_str(c, s.t->elem), type_str(c, e.t));
            ok = false;
        }
        struct tc r = ok_type(&t_bool);
        r.ok = ok;
        return r;
    }
    case POLICY_FN_CONTAINS_ALL:
    case POLICY_FN_CONTAINS_ANY: {
        struct tc s = expect(c, prior, recv, W_SET, NULL, NULL);
        if (!s.t) return fail_type(&t_bool);
        struct tc o = expect(c, prior, arg, W_SET, NULL, "use .contains() for one element");
        if (!o.t) return fail_type(&t_bool);
        bool ok = s.ok && o.ok;
        if (!lub(c, s.t, o.t)) {
            report(c, n->line, n->column, "%s: the sets have incompatible types %s and %s",
                   fn_sigs[fn].name, type_str(c, s.t), type_str(c, o.t));
            ok = false;
        }
        struct tc r = ok_type(&t_bool);
        r.ok = ok;
        return r;
    }
    case POLICY_FN_HAS_TAG:
    case POLICY_FN_GET_TAG: {
        struct tc e = expect(c, prior, recv, W_ENTITY, NULL, NULL);
        if (!e.t) return fail_type(NULL);
        struct tc k = expect(c, prior, arg, W_STRING, NULL, NULL);
        if (!k.t) return fail_type(NULL);
        const struct policy_type *tags = NULL;
        bool any_tags = false;
        if (e.t->kind == POLICY_T_ENTITY) {
            const struct policy_entity_type *et = policy_schema_entity(c->s, e.t->name);
            tags = et ? et->tags : NULL;
            any_tags = tags != NULL;
        } else {
            for (size_t i = 0; i < c->s->nentities; i++)
                if (c->s->entities[i].tags) {
                    any_tags = true;
                    tags = tags ? lub(c, tags, c->s->entities[i].tags) : c->s->entities[i].tags;
                }
        }
        struct cap key = {.e = recv, .tag = arg};
        bool have = caps_has(prior, &key);
        if (fn == POLICY_FN_HAS_TAG) {
            struct tc r = ok_type(!any_tags ? &t_false : have ? &t_true : &t_bool);
            r.ok = e.ok && k.ok;
            r.caps = caps_one(c, key);
            return r;
        }
        if (!have) {
            report(c, n->line, n->column,
                   "getTag may fail: the tag is not known to exist here; guard the access "
                   "with a hasTag(...) test on the same entity and key");
            return fail_type(NULL);
        }
        if (!any_tags || !tags) {
            report(c, n->line, n->column, "entities of type %s have no tags",
                   type_str(c, e.t));
            return fail_type(NULL);
        }
        struct tc r = ok_type(tags);
        r.ok = e.ok && k.ok;
        return r;
    }
    }
    return fail_type(NULL);
}

static struct tc check_record(struct checker *c, struct capset prior, const struct policy_node *n)
{
    bool ok = true, typed = true;
    struct policy_attr *attrs = n->nkids ? arena_zalloc(c->a, n->nkids * sizeof *attrs) : NULL;
    for (uint32_t i = 0; i < n->nkids; i++) {
        struct tc r = check(c, prior, n->kids[i]);
        if (!r.ok) ok = false;
        if (!r.t) typed = false;
        attrs[i].name = n->u.rec.keys[i];
        attrs[i].name_len = n->u.rec.key_lens[i];
        attrs[i].type = r.t;
        attrs[i].required = true;
    }
    if (!typed) return fail_type(NULL);
    /* Sort by name (insertion sort: records are small). */
    for (uint32_t i = 1; i < n->nkids; i++) {
        struct policy_attr x = attrs[i];
        uint32_t k = i;
        while (k > 0 && policy_attr_name_cmp(attrs[k - 1].name, attrs[k - 1].name_len, x.name,
                                             x.name_len) > 0) {
            attrs[k] = attrs[k - 1];
            k--;
        }
        attrs[k] = x;
    }
    struct policy_type *t = arena_zalloc(c->a, sizeof *t);
    t->kind = POLICY_T_RECORD;
    t->attrs = attrs;
    t->nattrs = n->nkids;
    struct tc r = ok_type(t);
    r.ok = ok;
    return r;
}

static struct tc check_set(struct checker *c, struct capset prior, const struct policy_node *n)
{
    bool ok = true;
    const struct policy_type *elem = NULL;
    bool typed = true;
    for (uint32_t i = 0; i < n->nkids; i++) {
        struct tc r = check(c, prior, n->kids[i]);
        if (!r.ok) ok = false;
        if (!r.t) {
            typed = false;
            continue;
        }
        if (!typed) continue;
        if (!elem) {
            elem = r.t;
        } else {
            const struct policy_type *l = lub(c, elem, r.t);
            if (!l) {
                report(c, n->line, n->column,
                       "set elements have incompatible types %s and %s; a set holds values "
                       "of one type",
                       type_str(c, elem), type_str(c, r.t));
                return fail_type(NULL);
            }
            elem = l;
        }
    }
    if (n->nkids == 0) {
        report(c, n->line, n->column,
               "empty set literals are forbidden in strict validation (their element type "
               "is unknown)");
        return fail_type(NULL);
    }
    if (!typed) return fail_type(NULL);
    struct policy_type *t = arena_zalloc(c->a, sizeof *t);
    t->kind = POLICY_T_SET;
    t->elem = elem;
    struct tc r = ok_type(t);
    r.ok = ok;
    return r;
}

static struct tc literal_entity(struct checker *c, const struct policy_euid *e)
{
    if (is_action_type_name(e->type)) {
        if (!find_action(c, e)) return fail_type(NULL);
        return ok_type(entity_type(c, e->type));
    }
    if (!policy_schema_entity(c->s, e->type)) return fail_type(NULL);
    return ok_type(entity_type(c, e->type));
}

static struct tc compare(struct checker *c, struct capset prior, const struct policy_node *n)
{
    struct tc l = check(c, prior, n->kids[0]);
    if (!l.t) return fail_type(&t_bool);
    struct tc r = check(c, prior, n->kids[1]);
    if (!r.t) return fail_type(&t_bool);
    const struct policy_type *a = l.t, *b = r.t;
    bool a_ok = a->kind == POLICY_T_LONG ||
                (a->kind == POLICY_T_EXT &&
                 (strcmp(a->name, "datetime") == 0 || strcmp(a->name, "duration") == 0));
    bool b_ok = b->kind == POLICY_T_LONG ||
                (b->kind == POLICY_T_EXT &&
                 (strcmp(b->name, "datetime") == 0 || strcmp(b->name, "duration") == 0));
    bool ok = l.ok && r.ok;
    if (!(a_ok && b_ok && subtype(a, b) && subtype(b, a))) {
        report(c, n->line, n->column,
               "comparison needs two Longs, two datetimes or two durations, found %s and %s",
               type_str(c, a), type_str(c, b));
        ok = false;
    }
    struct tc res = ok_type(&t_bool);
    res.ok = ok;
    return res;
}

static struct tc check_inner(struct checker *c, struct capset prior, const struct policy_node *n)
{
    switch (n->kind) {
    case PN_BOOL:
        return ok_type(n->u.b ? &t_true : &t_false);
    case PN_LONG:
        return ok_type(&t_long);
    case PN_STRING:
        return ok_type(&t_string);
    case PN_ENTITY:
        return literal_entity(c, &n->u.euid);
    case PN_VAR:
        switch (n->var) {
        case POLICY_VAR_PRINCIPAL:
            return ok_type(entity_type(c, c->env->principal));
        case POLICY_VAR_RESOURCE:
            return ok_type(entity_type(c, c->env->resource));
        case POLICY_VAR_ACTION:
            return ok_type(entity_type(c, c->env->action->uid.type));
        case POLICY_VAR_CONTEXT:
            return ok_type(c->env->action->context);
        default:
            report(c, n->line, n->column, "unknown variable '%.*s'", (int)n->u.str.len,
                   n->u.str.s);
            return fail_type(NULL);
        }
    case PN_SLOT: {
        const char *t = n->var == POLICY_VAR_PRINCIPAL ? c->env->principal_slot
                                                       : c->env->resource_slot;
        return ok_type(t ? entity_type(c, t) : &t_any_entity);
    }
    case PN_NOT: {
        struct tc r = expect(c, prior, n->kids[0], W_BOOL, NULL, NULL);
        if (!r.t) return fail_type(&t_bool);
        const struct policy_type *t = r.t->kind == POLICY_T_TRUE    ? &t_false
                                      : r.t->kind == POLICY_T_FALSE ? &t_true
                                                                    : &t_bool;
        struct tc res = ok_type(t);
        res.ok = r.ok;
        return res;
    }
    case PN_NEG: {
        struct tc r = expect(c, prior, n->kids[0], W_LONG, NULL, NULL);
        struct tc res = ok_type(&t_long);
        res.ok = r.ok && r.t;
        return res;
    }
    case PN_AND: {
        struct tc l = expect(c, prior, n->kids[0], W_BOOL, NULL, NULL);
        return and_rest(c, prior, l, n->kids[1]);
    }
    case PN_OR: {
        struct tc l = expect(c, prior, n->kids[0], W_BOOL, NULL, NULL);
        if (l.t && l.t->kind == POLICY_T_TRUE) return l;
        struct tc r = expect(c, prior, n->kids[1], W_BOOL, NULL, NULL);
        if (!l.ok || !r.ok || !l.t || !r.t) return fail_type(&t_bool);
        if (r.t->kind == POLICY_T_TRUE) {
            struct tc res = ok_type(&t_true);
            res.caps = r.caps;
            return res;
        }
        if (r.t->kind == POLICY_T_FALSE) {
            struct tc res = ok_type(l.t);
            res.caps = l.caps;
            return res;
        }
        if (l.t->kind == POLICY_T_FALSE) {
            struct tc res = ok_type(r.t);
            res.caps = r.caps;
            return res;
        }
        struct tc res = ok_type(&t_bool);
        res.caps = caps_intersect(c, r.caps, l.caps);
        return res;
    }
    case PN_IF: {
        struct tc g = expect(c, prior, n->kids[0], W_BOOL, NULL, NULL);
        if (g.t && g.t->kind == POLICY_T_TRUE) {
            struct tc t = check(c, caps_union(c, prior, g.caps), n->kids[1]);
            t.ok = t.ok && g.ok;
            t.caps = caps_union(c, t.caps, g.caps);
            return t;
        }
        if (g.t && g.t->kind == POLICY_T_FALSE) {
            struct tc e = check(c, prior, n->kids[2]);
            e.ok = e.ok && g.ok;
            return e;
        }
        struct tc t = check(c, caps_union(c, prior, g.caps), n->kids[1]);
        t.caps = caps_union(c, t.caps, g.caps);
        struct tc e = check(c, prior, n->kids[2]);
        if (!t.t || !e.t) return fail_type(NULL);
        const struct policy_type *u = lub(c, t.t, e.t);
        if (!u) {
            report(c, n->line, n->column,
                   "the branches of if-then-else have incompatible types %s and %s",
                   type_str(c, t.t), type_str(c, e.t));
            return fail_type(NULL);
        }
        struct tc res = ok_type(u);
        res.ok = g.ok && t.ok && e.ok;
        res.caps = caps_intersect(c, e.caps, t.caps);
        return res;
    }
    case PN_EQ:
    case PN_NE: {
        struct tc l = check(c, prior, n->kids[0]);
        struct tc r = check(c, prior, n->kids[1]);
        struct tc res = equality(c, n, n->kids[0], &l, n->kids[1], &r);
        if (!l.t || !r.t) res.ok = false;
        if (n->kind == PN_NE)
            res.t = res.t->kind == POLICY_T_TRUE    ? &t_false
                    : res.t->kind == POLICY_T_FALSE ? &t_true
                                                    : &t_bool;
        return res;
    }
    case PN_LT:
    case PN_LE:
    case PN_GT:
    case PN_GE:
        return compare(c, prior, n);
    case PN_ADD:
    case PN_SUB:
    case PN_MUL: {
        struct tc l = expect(c, prior, n->kids[0], W_LONG, NULL, NULL);
        struct tc r = expect(c, prior, n->kids[1], W_LONG, NULL, NULL);
        struct tc res = ok_type(&t_long);
        res.ok = l.ok && r.ok && l.t && r.t;
        return res;
    }
    case PN_IN:
        return in_expr(c, prior, n, n->kids[0], n->kids[1]);
    case PN_HAS: {
        struct tc r = expect(c, prior, n->kids[0], W_ENTITY_OR_RECORD, NULL, NULL);
        if (!r.t) return fail_type(&t_bool);
        struct cap key = {.e = n->kids[0], .attr = n->u.str.s, .attr_len = n->u.str.len};
        const struct policy_type *rec = attrs_of(c, r.t);
        const struct policy_attr *at = rec ? policy_type_attr(rec, n->u.str.s, n->u.str.len)
                                           : NULL;
        bool have = caps_has(prior, &key);
        struct tc res = ok_type(&t_bool);
        res.ok = r.ok;
        if (at) {
            if ((at->required && r.t->kind == POLICY_T_RECORD) || have) res.t = &t_true;
            res.caps = caps_one(c, key);
        } else if (r.t->kind == POLICY_T_ANY_ENTITY || (rec && rec->open)) {
            res.t = &t_bool;
        } else {
            res.t = &t_false;
        }
        return res;
    }
    case PN_GETATTR: {
        struct tc r = expect(c, prior, n->kids[0], W_ENTITY_OR_RECORD, NULL, NULL);
        if (!r.t) return fail_type(NULL);
        const struct policy_type *rec = attrs_of(c, r.t);
        const struct policy_attr *at = rec ? policy_type_attr(rec, n->u.str.s, n->u.str.len)
                                           : NULL;
        if (!at) {
            report(c, n->line, n->column, "attribute '%.*s' is not declared on %s",
                   (int)(n->u.str.len > 80 ? 80 : n->u.str.len), n->u.str.s,
                   type_str(c, r.t));
            return fail_type(NULL);
        }
        struct cap key = {.e = n->kids[0], .attr = n->u.str.s, .attr_len = n->u.str.len};
        if (!at->required && !caps_has(prior, &key)) {
            report(c, n->line, n->column,
                   "attribute '%.*s' of %s is optional; guard the access with `has %.*s`",
                   (int)(n->u.str.len > 80 ? 80 : n->u.str.len), n->u.str.s,
                   type_str(c, r.t), (int)(n->u.str.len > 80 ? 80 : n->u.str.len),
                   n->u.str.s);
            return fail_type(at->type);
        }
        struct tc res = ok_type(at->type);
        res.ok = r.ok;
        return res;
    }
    case PN_LIKE: {
        struct tc r = expect(c, prior, n->kids[0], W_STRING, NULL, NULL);
        struct tc res = ok_type(&t_bool);
        res.ok = r.ok && r.t;
        return res;
    }
    case PN_IS: {
        const char *type = arena_strndup(c->a, n->u.str.s, n->u.str.len);
        struct tc l = is_expr(c, prior, n->kids[0], type, n->line, n->column);
        if (n->nkids < 2 || !n->kids[1]) return l;
        /* `e is T in E` is `e is T && e in E`. */
        if (l.t && l.t->kind == POLICY_T_FALSE) return l;
        struct tc r = in_expr(c, prior, n, n->kids[0], n->kids[1]);
        if (!l.ok || !r.ok || !l.t || !r.t) return fail_type(&t_bool);
        if (r.t->kind == POLICY_T_FALSE) return ok_type(&t_false);
        if (r.t->kind == POLICY_T_TRUE) return ok_type(l.t);
        if (l.t->kind == POLICY_T_TRUE) return ok_type(r.t);
        return ok_type(&t_bool);
    }
    case PN_SET:
        return check_set(c, prior, n);
    case PN_RECORD:
        return check_record(c, prior, n);
    case PN_CALL:
        if (n->fn >= POLICY_FN__COUNT) return fail_type(NULL);
        if (!fn_sigs[n->fn].ret) return method_call(c, prior, n);
        return ext_call(c, prior, n, &fn_sigs[n->fn]);
    }
    report(c, n->line, n->column, "internal: unknown expression kind %d", n->kind);
    return fail_type(NULL);
}

static struct tc check(struct checker *c, struct capset prior, const struct policy_node *n)
{
    if (++c->depth > POLICY_MAX_DEPTH * 4) {
        c->depth--;
        report(c, n->line, n->column, "expression nests too deeply to validate");
        return fail_type(NULL);
    }
    struct tc r = check_inner(c, prior, n);
    c->depth--;
    return r;
}

/* ---- scope constraints ---------------------------------------------------- */

/* The scope constraint of principal/resource as Cedar's condition has it. */
static struct tc scope_check(struct checker *c, const struct policy_scope *sc, int var)
{
    struct policy_node v = {.kind = PN_VAR, .var = (uint8_t)var, .line = sc->line,
                            .column = sc->column};
    struct policy_node lit = {.kind = PN_ENTITY, .line = sc->line, .column = sc->column};
    struct policy_node slot = {.kind = PN_SLOT, .var = (uint8_t)var, .line = sc->line,
                               .column = sc->column};
    const struct policy_node *rhs = &lit;
    if (!sc->euids || !sc->neuids) rhs = &slot;
    else lit.u.euid = sc->euids[0];
    struct capset none = {0};
    switch (sc->op) {
    case POLICY_SCOPE_ANY:
        return ok_type(&t_true);
    case POLICY_SCOPE_EQ: {
        struct tc l = check(c, none, &v);
        struct tc r = check(c, none, rhs);
        struct tc res = equality(c, &v, &v, &l, rhs, &r);
        if (!l.t || !r.t) res.ok = false;
        return res;
    }
    case POLICY_SCOPE_IN:
        return in_expr(c, none, &v, &v, rhs);
    case POLICY_SCOPE_IS:
    case POLICY_SCOPE_IS_IN: {
        const char *type = arena_strndup(c->a, sc->is_type, sc->is_type_len);
        struct tc l = is_expr(c, none, &v, type, sc->line, sc->column);
        if (sc->op == POLICY_SCOPE_IS || (l.t && l.t->kind == POLICY_T_FALSE)) return l;
        struct tc r = in_expr(c, none, &v, &v, rhs);
        if (!l.ok || !r.ok || !l.t || !r.t) return fail_type(&t_bool);
        if (r.t->kind == POLICY_T_FALSE) return ok_type(&t_false);
        if (r.t->kind == POLICY_T_TRUE) return ok_type(l.t);
        if (l.t->kind == POLICY_T_TRUE) return ok_type(r.t);
        return ok_type(&t_bool);
    }
    }
    return ok_type(&t_bool);
}

static struct tc action_scope_check(struct checker *c, const struct policy_scope *sc)
{
    struct policy_node v = {.kind = PN_VAR, .var = POLICY_VAR_ACTION, .line = sc->line,
                            .column = sc->column};
    struct capset none = {0};
    if (sc->op == POLICY_SCOPE_ANY) return ok_type(&t_true);
    if (sc->op == POLICY_SCOPE_EQ || sc->op == POLICY_SCOPE_IN) {
        if (!sc->euids || sc->neuids < 1) return fail_type(&t_bool);
        struct policy_node lit = {.kind = PN_ENTITY, .line = sc->line, .column = sc->column};
        lit.u.euid = sc->euids[0];
        if (sc->op == POLICY_SCOPE_IN) return in_expr(c, none, &v, &v, &lit);
        struct tc l = check(c, none, &v);
        struct tc r = check(c, none, &lit);
        struct tc res = equality(c, &v, &v, &l, &lit, &r);
        if (!l.t || !r.t) res.ok = false;
        return res;
    }
    /* action in [E1, ..., En] */
    struct policy_node set = {.kind = PN_SET, .line = sc->line, .column = sc->column};
    struct policy_node *lits = sc->neuids ? arena_zalloc(c->a, sc->neuids * sizeof *lits) : NULL;
    set.kids = sc->neuids ? arena_zalloc(c->a, sc->neuids * sizeof *set.kids) : NULL;
    set.nkids = sc->neuids;
    for (uint32_t i = 0; i < sc->neuids; i++) {
        lits[i].kind = PN_ENTITY;
        lits[i].line = sc->line;
        lits[i].column = sc->column;
        lits[i].u.euid = sc->euids[i];
        set.kids[i] = &lits[i];
    }
    return in_expr(c, none, &v, &v, &set);
}

/* Types one environment: scope && bodies.  Returns the result type kind. */
static struct tc check_env(struct checker *c)
{
    const struct policy *p = c->p;
    struct capset none = {0};
    struct tc cur = scope_check(c, &p->principal, POLICY_VAR_PRINCIPAL);
    struct tc next;
    /* principal && action */
    if (!(cur.t && cur.t->kind == POLICY_T_FALSE)) {
        next = action_scope_check(c, &p->action);
        cur = (struct tc){.t = !cur.ok || !next.ok || !cur.t || !next.t ? &t_bool
                               : next.t->kind == POLICY_T_FALSE      ? &t_false
                               : next.t->kind == POLICY_T_TRUE       ? cur.t
                               : cur.t->kind == POLICY_T_TRUE        ? next.t
                                                                     : &t_bool,
                          .ok = cur.ok && next.ok && cur.t && next.t};
    }
    if (!(cur.t && cur.t->kind == POLICY_T_FALSE)) {
        next = scope_check(c, &p->resource, POLICY_VAR_RESOURCE);
        cur = (struct tc){.t = !cur.ok || !next.ok || !cur.t || !next.t ? &t_bool
                               : next.t->kind == POLICY_T_FALSE      ? &t_false
                               : next.t->kind == POLICY_T_TRUE       ? cur.t
                               : cur.t->kind == POLICY_T_TRUE        ? next.t
                                                                     : &t_bool,
                          .ok = cur.ok && next.ok && cur.t && next.t};
    }
    if (cur.t && cur.t->kind == POLICY_T_FALSE) return cur;
    /* The body: when/unless clauses joined with && (true when none). */
    struct tc body = ok_type(&t_true);
    for (uint32_t i = 0; i < p->nconds; i++) {
        const struct policy_condition *cond = &p->conds[i];
        struct policy_node *e = cond->expr;
        if (!cond->when) {
            struct policy_node *not = arena_zalloc(c->a, sizeof *not);
            not->kind = PN_NOT;
            not->line = e->line;
            not->column = e->column;
            not->nkids = 1;
            not->kids = arena_alloc(c->a, sizeof *not->kids);
            not->kids[0] = e;
            e = not;
        }
        if (i == 0) {
            body = expect(c, none, e, W_BOOL, NULL, NULL);
        } else {
            body = and_rest(c, none, body, e);
        }
    }
    if (!body.t) body.ok = false;
    /* scope && body */
    struct tc res;
    res.ok = cur.ok && body.ok;
    res.caps = none;
    if (!res.ok || !cur.t || !body.t) res.t = &t_bool;
    else if (body.t->kind == POLICY_T_FALSE) res.t = &t_false;
    else if (body.t->kind == POLICY_T_TRUE) res.t = cur.t;
    else if (cur.t->kind == POLICY_T_TRUE) res.t = body.t;
    else res.t = &t_bool;
    return res;
}

/* ---- pass 1: names ---------------------------------------------------------- */

static void check_euid_names(struct checker *c, const struct policy_euid *e, int line, int column)
{
    if (is_action_type_name(e->type)) {
        if (!find_action(c, e))
            report(c, line, column,
                   "unknown action %s::\"%.*s\"; declare it in the schema or fix the name",
                   e->type, (int)(e->id_len > 80 ? 80 : e->id_len), e->id);
        return;
    }
    const struct policy_entity_type *et = policy_schema_entity(c->s, e->type);
    if (!et) {
        if (!policy_schema_is_action_type(c->s, e->type))
            report(c, line, column, "unknown entity type '%s'; declare it in the schema",
                   e->type);
        return;
    }
    if (et->is_enum) {
        if (policy_schema_enum_has(et, e->id, e->id_len)) return;
        report(c, line, column,
               "%s::\"%.*s\" is not one of the ids of enumerated entity type %s", e->type,
               (int)(e->id_len > 80 ? 80 : e->id_len), e->id, e->type);
    }
}

static void check_type_name(struct checker *c, const char *type, size_t len, int line, int column)
{
    char *t = arena_strndup(c->a, type, len);
    if (!policy_schema_entity(c->s, t) && !policy_schema_is_action_type(c->s, t))
        report(c, line, column, "unknown entity type '%s'; declare it in the schema", t);
}

static void names_in(struct checker *c, const struct policy_node *n, int depth)
{
    if (!n || depth > POLICY_MAX_DEPTH * 4) return;
    if (n->kind == PN_ENTITY) check_euid_names(c, &n->u.euid, n->line, n->column);
    if (n->kind == PN_IS) check_type_name(c, n->u.str.s, n->u.str.len, n->line, n->column);
    for (uint32_t i = 0; i < n->nkids; i++) names_in(c, n->kids[i], depth + 1);
}

static void names_scope(struct checker *c, const struct policy_scope *sc)
{
    if (sc->op == POLICY_SCOPE_IS || sc->op == POLICY_SCOPE_IS_IN)
        check_type_name(c, sc->is_type, sc->is_type_len, sc->line, sc->column);
    if (sc->euids)
        for (uint32_t i = 0; i < sc->neuids; i++)
            check_euid_names(c, &sc->euids[i], sc->line, sc->column);
}

/* ---- pass 2: action application ------------------------------------------ */

/* Does the principal/resource scope admit entity type `type`? */
static bool scope_admits(struct checker *c, const struct policy_scope *sc, const char *type)
{
    const struct policy_euid *e = (sc->euids && sc->neuids) ? &sc->euids[0] : NULL;
    char *is_type = sc->is_type ? arena_strndup(c->a, sc->is_type, sc->is_type_len) : NULL;
    switch (sc->op) {
    case POLICY_SCOPE_ANY:
        return true;
    case POLICY_SCOPE_EQ:
        return !e || strcmp(e->type, type) == 0;
    case POLICY_SCOPE_IN:
        return !e || policy_schema_entity_descends(c->s, type, e->type);
    case POLICY_SCOPE_IS:
        return strcmp(is_type, type) == 0;
    case POLICY_SCOPE_IS_IN:
        return strcmp(is_type, type) == 0 &&
               (!e || policy_schema_entity_descends(c->s, type, e->type));
    }
    return true;
}

static bool action_admitted(struct checker *c, const struct policy_scope *sc,
                            const struct policy_action *a)
{
    if (sc->op == POLICY_SCOPE_ANY) return true;
    if (sc->op == POLICY_SCOPE_EQ)
        return sc->neuids && strcmp(sc->euids[0].type, a->uid.type) == 0 &&
               sc->euids[0].id_len == a->uid.id_len &&
               memcmp(sc->euids[0].id, a->uid.id, a->uid.id_len) == 0;
    /* in E / in [E...]: every listed action must exist (else nothing). */
    bool hit = false;
    for (uint32_t i = 0; i < sc->neuids; i++) {
        const struct policy_action *g = find_action(c, &sc->euids[i]);
        if (!g) return false;
        if (policy_schema_action_descends(c->s, a, g)) hit = true;
    }
    return hit;
}

static void check_application(struct checker *c)
{
    const struct policy *p = c->p;
    for (size_t i = 0; i < c->s->nactions; i++) {
        const struct policy_action *a = &c->s->actions[i];
        if (!action_admitted(c, &p->action, a)) continue;
        bool pr = false, rr = false;
        for (size_t k = 0; k < a->nprincipals && !pr; k++)
            pr = scope_admits(c, &p->principal, a->principals[k]);
        for (size_t k = 0; k < a->nresources && !rr; k++)
            rr = scope_admits(c, &p->resource, a->resources[k]);
        if (pr && rr) return;
    }
    report(c, p->line, p->column,
           "no action in the policy's scope applies to the principal and resource it "
           "allows; check the scope against the actions' appliesTo in the schema");
}

/* ---- pass 3: environments --------------------------------------------------- */

/* The entity types a template slot may be linked to, given the type of its
 * variable in this environment (Cedar's possible_slot_links): the type
 * itself for `==`, the types it may be a member of for `in`, else all. */
static size_t slot_links(struct checker *c, const struct policy_scope *sc, bool slot,
                         const char *var_type, const char **out)
{
    if (!slot) {
        out[0] = NULL;
        return 1;
    }
    size_t n = 0;
    if (sc->op == POLICY_SCOPE_EQ) {
        out[n++] = var_type;
        return n;
    }
    bool in = sc->op == POLICY_SCOPE_IN || sc->op == POLICY_SCOPE_IS_IN;
    for (size_t i = 0; i < c->s->nentities; i++) {
        const char *t = c->s->entities[i].name;
        if (!in || policy_schema_entity_descends(c->s, var_type, t)) out[n++] = t;
    }
    if (in && !policy_schema_entity(c->s, var_type)) out[n++] = var_type;
    return n;
}

static void typecheck_policy(struct checker *c)
{
    const struct policy *p = c->p;
    const struct policy_schema *s = c->s;
    bool pslot = p->principal.slot && !p->principal.euids;
    bool rslot = p->resource.slot && !p->resource.euids;
    const char **plinks = arena_alloc(c->a, (s->nentities + 2) * sizeof *plinks);
    const char **rlinks = arena_alloc(c->a, (s->nentities + 2) * sizeof *rlinks);
    bool all_false = true; /* false in every environment (or there is none) */
    for (size_t ai = 0; ai < s->nactions; ai++) {
        const struct policy_action *a = &s->actions[ai];
        if (!a->applies) continue;
        for (size_t pi = 0; pi < a->nprincipals; pi++) {
            size_t np = slot_links(c, &p->principal, pslot, a->principals[pi], plinks);
            for (size_t ri = 0; ri < a->nresources; ri++) {
                size_t nr = slot_links(c, &p->resource, rslot, a->resources[ri], rlinks);
                for (size_t ps = 0; ps < np; ps++) {
                    for (size_t rs = 0; rs < nr; rs++) {
                        struct env e = {.principal = a->principals[pi],
                                        .resource = a->resources[ri],
                                        .action = a,
                                        .principal_slot = plinks[ps],
                                        .resource_slot = rlinks[rs]};
                        c->env = &e;
                        struct tc r = check_env(c);
                        if (!(r.t && r.t->kind == POLICY_T_FALSE)) all_false = false;
                        c->env = NULL;
                    }
                }
            }
        }
    }
    /* Cedar's "impossible policy": a warning, listed but not counted. */
    if (all_false && c->out) {
        policy_diag_add(c->out, p->id, p->file, p->line, p->column,
                        "warning: policy is impossible: it is false for every request the "
                        "schema allows (check its scope and conditions against the schema)");
        c->out->items[c->out->len - 1].warning = true;
    }
}

int policy_validate(const struct policy_schema *schema, const struct policy_set *set,
                    struct policy_diag_list *out)
{
    if (!schema || !set) return KEEL_EINVAL;
    struct arena a;
    arena_init(&a);
    struct strmap cache;
    strmap_init(&cache);
    int total = 0;
    size_t n = policy_set_count(set);
    for (size_t i = 0; i < n; i++) {
        const struct policy *p = policy_set_at(set, i);
        struct checker c = {.s = schema, .p = p, .a = &a, .out = out, .action_in_cache = &cache};
        strmap_init(&c.seen);
        names_scope(&c, &p->principal);
        names_scope(&c, &p->action);
        names_scope(&c, &p->resource);
        if (!p->template_of) {
            for (uint32_t k = 0; k < p->nconds; k++) names_in(&c, p->conds[k].expr, 0);
        }
        check_application(&c);
        if (!p->template_of) typecheck_policy(&c);
        total += c.errors;
        strmap_cleanup(&c.seen);
        arena_reset(&a);
    }
    strmap_cleanup(&cache);
    arena_cleanup(&a);
    return total;
}
