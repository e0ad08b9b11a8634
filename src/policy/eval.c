/*
 * eval.c — the Cedar evaluator: computes the value of an AST node against
 * a request (principal, action, resource, context), an entity store and,
 * for workflow conditions, free variables.
 *
 * Semantics follow Cedar 4.x: `&&`, `||` and if-then-else short-circuit and
 * require booleans; `==` never errors (values of different types are
 * unequal); Long arithmetic is checked (overflow is an error); attribute
 * access on a missing attribute or a missing entity is an error while `has`
 * answers false; `in` is reflexive and transitive over the store.
 *
 * Invariants: evaluation never mutates the AST, the store or the request;
 * new values (sets, records, extension values) are allocated in c->arena
 * only, so after warm-up a request costs no malloc.  Errors return -1 with
 * "line:col: message" in c->msg.  Builtins are a table indexed by enum
 * policy_fn (the parser checks names and arities).
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static int fail(struct eval_ctx *c, const struct policy_node *n, const char *fmt, ...)
    KEEL_PRINTF(3, 4);
static int fail(struct eval_ctx *c, const struct policy_node *n, const char *fmt, ...)
{
    if (!c->msg || !c->msg_cap) return -1;
    int k = snprintf(c->msg, c->msg_cap, "%d:%d: ", n ? n->line : 0, n ? n->column : 0);
    if (k < 0 || (size_t)k >= c->msg_cap) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg + k, c->msg_cap - (size_t)k, fmt, ap);
    va_end(ap);
    return -1;
}

static int type_error(struct eval_ctx *c, const struct policy_node *n, const char *want,
                      const struct policy_value *got)
{
    return fail(c, n, "type error: expected %s, got %s", want, policy_type_name(got->type));
}

static const struct policy_entity *lookup(const struct eval_ctx *c, const struct policy_euid *e)
{
    if (c->req_ents_known) { /* the request's own uids: already looked up */
        if (e == &c->req->principal) return c->req_ents[0];
        if (e == &c->req->action) return c->req_ents[1];
        if (e == &c->req->resource) return c->req_ents[2];
    }
    return c->entities ? policy_entities_get(c->entities, e) : NULL;
}

static bool entity_in(const struct eval_ctx *c, const struct policy_euid *a,
                      const struct policy_euid *b)
{
    if (policy_euid_equal(a, b)) return true;
    return c->entities && policy_entities_in(c->entities, a, b);
}

static bool like(const char *s, uint32_t n, const int16_t *pat, uint32_t m)
{
    uint32_t i = 0, j = 0, star_j = UINT32_MAX, star_i = 0;
    while (i < n) {
        if (j < m && pat[j] != POLICY_PAT_STAR && pat[j] == (int16_t)(unsigned char)s[i]) {
            i++;
            j++;
        } else if (j < m && pat[j] == POLICY_PAT_STAR) {
            star_j = j++;
            star_i = i;
        } else if (star_j != UINT32_MAX) {
            j = star_j + 1;
            i = ++star_i;
        } else {
            return false;
        }
    }
    while (j < m && pat[j] == POLICY_PAT_STAR) j++;
    return j == m;
}

static int eval(struct eval_ctx *c, const struct policy_node *n, struct policy_value *out);

static int eval_bool(struct eval_ctx *c, const struct policy_node *n, bool *out)
{
    struct policy_value v;
    if (eval(c, n, &v) < 0) return -1;
    if (v.type != POLICY_BOOL) return type_error(c, n, "bool", &v);
    *out = v.u.b;
    return 0;
}

static int var(struct eval_ctx *c, const struct policy_node *n, struct policy_value *out)
{
    if (n->var == POLICY_VAR_OTHER || !c->req) {
        const struct policy_value *v =
            c->vars ? policy_record_get(c->vars, n->u.str.s, n->u.str.len) : NULL;
        if (!v) return fail(c, n, "variable `%s` is not defined here", n->u.str.s);
        *out = *v;
        return 0;
    }
    switch (n->var) {
    case POLICY_VAR_PRINCIPAL:
        out->type = POLICY_ENTITY;
        out->u.entity = &c->req->principal;
        return 0;
    case POLICY_VAR_ACTION:
        out->type = POLICY_ENTITY;
        out->u.entity = &c->req->action;
        return 0;
    case POLICY_VAR_RESOURCE:
        out->type = POLICY_ENTITY;
        out->u.entity = &c->req->resource;
        return 0;
    default:
        out->type = POLICY_RECORD;
        out->u.rec = &c->req->context;
        return 0;
    }
}

/* Ordering operators: Long, datetime and duration (same type on both sides). */
static int compare(struct eval_ctx *c, const struct policy_node *n, struct policy_value *out)
{
    struct policy_value l, r;
    if (eval(c, n->kids[0], &l) < 0 || eval(c, n->kids[1], &r) < 0) return -1;
    bool ok = l.type == r.type &&
              (l.type == POLICY_LONG || l.type == POLICY_DATETIME || l.type == POLICY_DURATION);
    if (!ok) {
        if (l.type != POLICY_LONG && l.type != POLICY_DATETIME && l.type != POLICY_DURATION)
            return type_error(c, n->kids[0], "long, datetime or duration", &l);
        return fail(c, n->kids[1], "type error: cannot compare %s with %s",
                    policy_type_name(l.type), policy_type_name(r.type));
    }
    bool res;
    switch (n->kind) {
    case PN_LT: res = l.u.l < r.u.l; break;
    case PN_LE: res = l.u.l <= r.u.l; break;
    case PN_GT: res = l.u.l > r.u.l; break;
    default: res = l.u.l >= r.u.l; break;
    }
    out->type = POLICY_BOOL;
    out->u.b = res;
    return 0;
}

static int arith(struct eval_ctx *c, const struct policy_node *n, struct policy_value *out)
{
    struct policy_value l, r;
    if (eval(c, n->kids[0], &l) < 0) return -1;
    if (l.type != POLICY_LONG) return type_error(c, n->kids[0], "long", &l);
    if (eval(c, n->kids[1], &r) < 0) return -1;
    if (r.type != POLICY_LONG) return type_error(c, n->kids[1], "long", &r);
    int64_t v;
    bool over;
    const char *op;
    switch (n->kind) {
    case PN_ADD: over = __builtin_add_overflow(l.u.l, r.u.l, &v); op = "+"; break;
    case PN_SUB: over = __builtin_sub_overflow(l.u.l, r.u.l, &v); op = "-"; break;
    default: over = __builtin_mul_overflow(l.u.l, r.u.l, &v); op = "*"; break;
    }
    if (over)
        return fail(c, n, "integer overflow: %lld %s %lld does not fit in 64 bits",
                    (long long)l.u.l, op, (long long)r.u.l);
    out->type = POLICY_LONG;
    out->u.l = v;
    return 0;
}

static int in_op(struct eval_ctx *c, const struct policy_node *n, struct policy_value *out)
{
    struct policy_value l, r;
    if (eval(c, n->kids[0], &l) < 0) return -1;
    if (l.type != POLICY_ENTITY) return type_error(c, n->kids[0], "entity", &l);
    if (eval(c, n->kids[1], &r) < 0) return -1;
    out->type = POLICY_BOOL;
    if (r.type == POLICY_ENTITY) {
        out->u.b = entity_in(c, l.u.entity, r.u.entity);
        return 0;
    }
    if (r.type != POLICY_SET) return type_error(c, n->kids[1], "entity or set of entities", &r);
    for (uint32_t i = 0; i < r.u.set->len; i++)
        if (r.u.set->items[i].type != POLICY_ENTITY)
            return type_error(c, n->kids[1], "set of entities", &r.u.set->items[i]);
    out->u.b = false;
    for (uint32_t i = 0; i < r.u.set->len; i++) {
        if (entity_in(c, l.u.entity, r.u.set->items[i].u.entity)) {
            out->u.b = true;
            break;
        }
    }
    return 0;
}

static int getattr(struct eval_ctx *c, const struct policy_node *n, struct policy_value *out,
                   bool has)
{
    struct policy_value v;
    if (eval(c, n->kids[0], &v) < 0) return -1;
    const struct policy_record *rec;
    if (v.type == POLICY_RECORD) {
        rec = v.u.rec;
    } else if (v.type == POLICY_ENTITY) {
        const struct policy_entity *e = lookup(c, v.u.entity);
        if (!e || !e->present) {
            if (has) {
                out->type = POLICY_BOOL;
                out->u.b = false;
                return 0;
            }
            return fail(c, n, "entity %s::\"%s\" does not exist, so it has no attribute `%s`",
                        v.u.entity->type, v.u.entity->id, n->u.str.s);
        }
        rec = &e->attrs;
    } else {
        return type_error(c, n->kids[0], "entity or record", &v);
    }
    const struct policy_value *a = policy_record_get(rec, n->u.str.s, n->u.str.len);
    if (has) {
        out->type = POLICY_BOOL;
        out->u.b = a != NULL;
        return 0;
    }
    if (!a) {
        if (v.type == POLICY_ENTITY)
            return fail(c, n, "entity %s::\"%s\" has no attribute `%s`; guard with `has`",
                        v.u.entity->type, v.u.entity->id, n->u.str.s);
        return fail(c, n, "record has no attribute `%s`; guard with `has`", n->u.str.s);
    }
    *out = *a;
    return 0;
}

/* ---- builtins ----------------------------------------------------------- */

typedef int (*builtin_fn)(struct eval_ctx *c, const struct policy_node *n,
                          const struct policy_value *args, struct policy_value *out);

static int want(struct eval_ctx *c, const struct policy_node *n, const struct policy_value *args,
                int i, int type)
{
    if (args[i].type == type) return 0;
    return type_error(c, n->kids[i], policy_type_name(type), &args[i]);
}

static int fn_ext_ctor(struct eval_ctx *c, const struct policy_node *n,
                       const struct policy_value *args, struct policy_value *out)
{
    if (want(c, n, args, 0, POLICY_STRING) < 0) return -1;
    const char *s = args[0].u.str.s;
    uint32_t len = args[0].u.str.len;
    switch (n->fn) {
    case POLICY_FN_DECIMAL:
        out->type = POLICY_DECIMAL;
        if (policy_parse_decimal(s, len, &out->u.l) == 0) return 0;
        return fail(c, n, "invalid decimal \"%s\": write digits, a dot and 1 to 4 decimals "
                          "within the 64-bit range", s);
    case POLICY_FN_IP: {
        struct policy_ip *ip = arena_alloc(c->arena, sizeof *ip);
        if (policy_parse_ip(s, len, ip) < 0)
            return fail(c, n, "invalid ip address \"%s\"", s);
        out->type = POLICY_IPADDR;
        out->u.ip = ip;
        return 0;
    }
    case POLICY_FN_DATETIME:
        out->type = POLICY_DATETIME;
        if (policy_parse_datetime(s, len, &out->u.l) == 0) return 0;
        return fail(c, n, "invalid datetime \"%s\": use YYYY-MM-DD or "
                          "YYYY-MM-DDThh:mm:ss[.SSS](Z|+hhmm|-hhmm)", s);
    default:
        out->type = POLICY_DURATION;
        if (policy_parse_duration(s, len, &out->u.l) == 0) return 0;
        return fail(c, n, "invalid duration \"%s\": use units d, h, m, s, ms in that order, "
                          "e.g. 1h30m", s);
    }
}

static int fn_set(struct eval_ctx *c, const struct policy_node *n, const struct policy_value *args,
                  struct policy_value *out)
{
    if (want(c, n, args, 0, POLICY_SET) < 0) return -1;
    const struct policy_vset *s = args[0].u.set;
    out->type = POLICY_BOOL;
    switch (n->fn) {
    case POLICY_FN_CONTAINS:
        out->u.b = false;
        for (uint32_t i = 0; i < s->len && !out->u.b; i++)
            out->u.b = policy_value_equal(&s->items[i], &args[1]);
        return 0;
    case POLICY_FN_IS_EMPTY: out->u.b = s->len == 0; return 0;
    default: break;
    }
    if (want(c, n, args, 1, POLICY_SET) < 0) return -1;
    const struct policy_vset *t = args[1].u.set;
    bool all = n->fn == POLICY_FN_CONTAINS_ALL;
    out->u.b = all;
    for (uint32_t i = 0; i < t->len; i++) {
        bool found = false;
        for (uint32_t j = 0; j < s->len && !found; j++)
            found = policy_value_equal(&s->items[j], &t->items[i]);
        if (all && !found) {
            out->u.b = false;
            return 0;
        }
        if (!all && found) {
            out->u.b = true;
            return 0;
        }
    }
    return 0;
}

static int fn_tag(struct eval_ctx *c, const struct policy_node *n, const struct policy_value *args,
                  struct policy_value *out)
{
    if (want(c, n, args, 0, POLICY_ENTITY) < 0 || want(c, n, args, 1, POLICY_STRING) < 0)
        return -1;
    const struct policy_entity *e = lookup(c, args[0].u.entity);
    const struct policy_value *v =
        e && e->present ? policy_record_get(&e->tags, args[1].u.str.s, args[1].u.str.len) : NULL;
    if (n->fn == POLICY_FN_HAS_TAG) {
        out->type = POLICY_BOOL;
        out->u.b = v != NULL;
        return 0;
    }
    if (!e || !e->present)
        return fail(c, n, "entity %s::\"%s\" does not exist, so it has no tag \"%s\"",
                    args[0].u.entity->type, args[0].u.entity->id, args[1].u.str.s);
    if (!v)
        return fail(c, n, "entity %s::\"%s\" has no tag \"%s\"; guard with hasTag",
                    args[0].u.entity->type, args[0].u.entity->id, args[1].u.str.s);
    *out = *v;
    return 0;
}

static int fn_decimal_cmp(struct eval_ctx *c, const struct policy_node *n,
                          const struct policy_value *args, struct policy_value *out)
{
    if (want(c, n, args, 0, POLICY_DECIMAL) < 0 || want(c, n, args, 1, POLICY_DECIMAL) < 0)
        return -1;
    int64_t a = args[0].u.l, b = args[1].u.l;
    out->type = POLICY_BOOL;
    switch (n->fn) {
    case POLICY_FN_LESS_THAN: out->u.b = a < b; break;
    case POLICY_FN_LESS_THAN_OR_EQUAL: out->u.b = a <= b; break;
    case POLICY_FN_GREATER_THAN: out->u.b = a > b; break;
    default: out->u.b = a >= b; break;
    }
    return 0;
}

/* Is the range of a (address masked by its prefix) inside the range of b? */
static bool ip_in_range(const struct policy_ip *a, const struct policy_ip *b)
{
    if (a->v6 != b->v6) return false;
    int bits = a->v6 ? 128 : 32;
    /* network(a) >= network(b) && broadcast(a) <= broadcast(b) */
    uint8_t na[16], ba[16], nb[16], bb[16];
    for (int i = 0; i < bits / 8; i++) {
        int pa = a->prefix - i * 8, pb = b->prefix - i * 8;
        uint8_t ma = pa >= 8 ? 0xFF : pa <= 0 ? 0 : (uint8_t)(0xFF << (8 - pa));
        uint8_t mb = pb >= 8 ? 0xFF : pb <= 0 ? 0 : (uint8_t)(0xFF << (8 - pb));
        na[i] = a->addr[i] & ma;
        ba[i] = (uint8_t)(a->addr[i] | (uint8_t)~ma);
        nb[i] = b->addr[i] & mb;
        bb[i] = (uint8_t)(b->addr[i] | (uint8_t)~mb);
    }
    size_t len = (size_t)bits / 8;
    return memcmp(na, nb, len) >= 0 && memcmp(ba, bb, len) <= 0;
}

static int fn_ip(struct eval_ctx *c, const struct policy_node *n, const struct policy_value *args,
                 struct policy_value *out)
{
    static const struct policy_ip loop4 = {false, 8, {127}};
    static const struct policy_ip loop6 = {true, 128, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
    static const struct policy_ip mc4 = {false, 4, {224}};
    static const struct policy_ip mc6 = {true, 8, {0xFF}};
    if (want(c, n, args, 0, POLICY_IPADDR) < 0) return -1;
    const struct policy_ip *ip = args[0].u.ip;
    out->type = POLICY_BOOL;
    switch (n->fn) {
    case POLICY_FN_IS_IPV4: out->u.b = !ip->v6; return 0;
    case POLICY_FN_IS_IPV6: out->u.b = ip->v6; return 0;
    case POLICY_FN_IS_LOOPBACK: out->u.b = ip_in_range(ip, ip->v6 ? &loop6 : &loop4); return 0;
    case POLICY_FN_IS_MULTICAST: out->u.b = ip_in_range(ip, ip->v6 ? &mc6 : &mc4); return 0;
    default:
        if (want(c, n, args, 1, POLICY_IPADDR) < 0) return -1;
        out->u.b = ip_in_range(ip, args[1].u.ip);
        return 0;
    }
}

#define DAY_MS 86400000LL

static int fn_datetime(struct eval_ctx *c, const struct policy_node *n,
                       const struct policy_value *args, struct policy_value *out)
{
    if (want(c, n, args, 0, POLICY_DATETIME) < 0) return -1;
    int64_t t = args[0].u.l, v;
    switch (n->fn) {
    case POLICY_FN_OFFSET:
        if (want(c, n, args, 1, POLICY_DURATION) < 0) return -1;
        if (__builtin_add_overflow(t, args[1].u.l, &v))
            return fail(c, n, "overflow: datetime offset out of range");
        out->type = POLICY_DATETIME;
        out->u.l = v;
        return 0;
    case POLICY_FN_DURATION_SINCE:
        if (want(c, n, args, 1, POLICY_DATETIME) < 0) return -1;
        if (__builtin_sub_overflow(t, args[1].u.l, &v))
            return fail(c, n, "overflow: durationSince out of range");
        out->type = POLICY_DURATION;
        out->u.l = v;
        return 0;
    case POLICY_FN_TO_DATE: {
        int64_t days = t / DAY_MS;
        if (t % DAY_MS < 0) days--;
        if (__builtin_mul_overflow(days, DAY_MS, &v))
            return fail(c, n, "overflow: toDate out of range");
        out->type = POLICY_DATETIME;
        out->u.l = v;
        return 0;
    }
    default: {
        int64_t r = t % DAY_MS;
        if (r < 0) r += DAY_MS;
        out->type = POLICY_DURATION;
        out->u.l = r;
        return 0;
    }
    }
}

static int fn_duration(struct eval_ctx *c, const struct policy_node *n,
                       const struct policy_value *args, struct policy_value *out)
{
    static const int64_t div[] = {
        [POLICY_FN_TO_DAYS] = DAY_MS,      [POLICY_FN_TO_HOURS] = 3600000,
        [POLICY_FN_TO_MINUTES] = 60000,    [POLICY_FN_TO_SECONDS] = 1000,
        [POLICY_FN_TO_MILLISECONDS] = 1,
    };
    if (want(c, n, args, 0, POLICY_DURATION) < 0) return -1;
    out->type = POLICY_LONG;
    out->u.l = args[0].u.l / div[n->fn];
    return 0;
}

static const char *const fn_names[POLICY_FN__COUNT] = {
    [POLICY_FN_DECIMAL] = "decimal",
    [POLICY_FN_IP] = "ip",
    [POLICY_FN_DATETIME] = "datetime",
    [POLICY_FN_DURATION] = "duration",
    [POLICY_FN_CONTAINS] = "contains",
    [POLICY_FN_CONTAINS_ALL] = "containsAll",
    [POLICY_FN_CONTAINS_ANY] = "containsAny",
    [POLICY_FN_IS_EMPTY] = "isEmpty",
    [POLICY_FN_HAS_TAG] = "hasTag",
    [POLICY_FN_GET_TAG] = "getTag",
    [POLICY_FN_LESS_THAN] = "lessThan",
    [POLICY_FN_LESS_THAN_OR_EQUAL] = "lessThanOrEqual",
    [POLICY_FN_GREATER_THAN] = "greaterThan",
    [POLICY_FN_GREATER_THAN_OR_EQUAL] = "greaterThanOrEqual",
    [POLICY_FN_IS_IPV4] = "isIpv4",
    [POLICY_FN_IS_IPV6] = "isIpv6",
    [POLICY_FN_IS_LOOPBACK] = "isLoopback",
    [POLICY_FN_IS_MULTICAST] = "isMulticast",
    [POLICY_FN_IS_IN_RANGE] = "isInRange",
    [POLICY_FN_OFFSET] = "offset",
    [POLICY_FN_DURATION_SINCE] = "durationSince",
    [POLICY_FN_TO_DATE] = "toDate",
    [POLICY_FN_TO_TIME] = "toTime",
    [POLICY_FN_TO_DAYS] = "toDays",
    [POLICY_FN_TO_HOURS] = "toHours",
    [POLICY_FN_TO_MINUTES] = "toMinutes",
    [POLICY_FN_TO_SECONDS] = "toSeconds",
    [POLICY_FN_TO_MILLISECONDS] = "toMilliseconds",
};

static const builtin_fn builtins[POLICY_FN__COUNT] = {
    [POLICY_FN_DECIMAL] = fn_ext_ctor,
    [POLICY_FN_IP] = fn_ext_ctor,
    [POLICY_FN_DATETIME] = fn_ext_ctor,
    [POLICY_FN_DURATION] = fn_ext_ctor,
    [POLICY_FN_CONTAINS] = fn_set,
    [POLICY_FN_CONTAINS_ALL] = fn_set,
    [POLICY_FN_CONTAINS_ANY] = fn_set,
    [POLICY_FN_IS_EMPTY] = fn_set,
    [POLICY_FN_HAS_TAG] = fn_tag,
    [POLICY_FN_GET_TAG] = fn_tag,
    [POLICY_FN_LESS_THAN] = fn_decimal_cmp,
    [POLICY_FN_LESS_THAN_OR_EQUAL] = fn_decimal_cmp,
    [POLICY_FN_GREATER_THAN] = fn_decimal_cmp,
    [POLICY_FN_GREATER_THAN_OR_EQUAL] = fn_decimal_cmp,
    [POLICY_FN_IS_IPV4] = fn_ip,
    [POLICY_FN_IS_IPV6] = fn_ip,
    [POLICY_FN_IS_LOOPBACK] = fn_ip,
    [POLICY_FN_IS_MULTICAST] = fn_ip,
    [POLICY_FN_IS_IN_RANGE] = fn_ip,
    [POLICY_FN_OFFSET] = fn_datetime,
    [POLICY_FN_DURATION_SINCE] = fn_datetime,
    [POLICY_FN_TO_DATE] = fn_datetime,
    [POLICY_FN_TO_TIME] = fn_datetime,
    [POLICY_FN_TO_DAYS] = fn_duration,
    [POLICY_FN_TO_HOURS] = fn_duration,
    [POLICY_FN_TO_MINUTES] = fn_duration,
    [POLICY_FN_TO_SECONDS] = fn_duration,
    [POLICY_FN_TO_MILLISECONDS] = fn_duration,
};

static int call(struct eval_ctx *c, const struct policy_node *n, struct policy_value *out)
{
    struct policy_value args[3];
    int arity;
    policy_fn_lookup(fn_names[n->fn], &arity);
    for (uint32_t i = 0; i < n->nkids; i++) {
        if (i < 3) {
            if (eval(c, n->kids[i], &args[i]) < 0) return -1;
        } else if (eval(c, n->kids[i], out) < 0) {
            return -1;
        }
    }
    if ((int)n->nkids != arity)
        return fail(c, n, "wrong number of arguments to `%s`: expected %d, got %u",
                    fn_names[n->fn], arity, n->nkids);
    return builtins[n->fn](c, n, args, out);
}

int policy_call_fn(struct arena *a, int fn, const struct policy_value *args, uint32_t n,
                   struct policy_value *out, char *msg, size_t cap)
{
    static struct policy_node dummy;
    static struct policy_node *kids[3] = {&dummy, &dummy, &dummy};
    int arity;
    policy_fn_lookup(fn_names[fn], &arity);
    struct eval_ctx c = {.arena = a, .msg = msg, .msg_cap = cap};
    struct policy_node node = {.kind = PN_CALL, .fn = (uint8_t)fn, .nkids = n, .kids = kids};
    if ((int)n != arity)
        return fail(&c, &node, "wrong number of arguments to `%s`: expected %d, got %u",
                    fn_names[fn], arity, n);
    return builtins[fn](&c, &node, args, out);
}

static int eval(struct eval_ctx *c, const struct policy_node *n, struct policy_value *out)
{
    bool b;
    struct policy_value l, r;
    switch (n->kind) {
    case PN_BOOL: out->type = POLICY_BOOL; out->u.b = n->u.b; return 0;
    case PN_LONG: out->type = POLICY_LONG; out->u.l = n->u.l; return 0;
    case PN_STRING:
        out->type = POLICY_STRING;
        out->u.str.s = n->u.str.s;
        out->u.str.len = n->u.str.len;
        return 0;
    case PN_ENTITY: out->type = POLICY_ENTITY; out->u.entity = &n->u.euid; return 0;
    case PN_VAR: return var(c, n, out);
    case PN_SLOT: return fail(c, n, "template slot evaluated outside a linked policy");
    case PN_NOT:
        if (eval_bool(c, n->kids[0], &b) < 0) return -1;
        out->type = POLICY_BOOL;
        out->u.b = !b;
        return 0;
    case PN_NEG:
        if (eval(c, n->kids[0], &l) < 0) return -1;
        if (l.type != POLICY_LONG) return type_error(c, n->kids[0], "long", &l);
        if (l.u.l == INT64_MIN) return fail(c, n, "integer overflow: -(%lld)", (long long)l.u.l);
        out->type = POLICY_LONG;
        out->u.l = -l.u.l;
        return 0;
    case PN_AND:
    case PN_OR:
        if (eval_bool(c, n->kids[0], &b) < 0) return -1;
        out->type = POLICY_BOOL;
        if (b == (n->kind == PN_OR)) {
            out->u.b = b;
            return 0;
        }
        if (eval_bool(c, n->kids[1], &b) < 0) return -1;
        out->u.b = b;
        return 0;
    case PN_IF:
        if (eval_bool(c, n->kids[0], &b) < 0) return -1;
        return eval(c, n->kids[b ? 1 : 2], out);
    case PN_EQ:
    case PN_NE:
        if (eval(c, n->kids[0], &l) < 0 || eval(c, n->kids[1], &r) < 0) return -1;
        out->type = POLICY_BOOL;
        out->u.b = policy_value_equal(&l, &r) == (n->kind == PN_EQ);
        return 0;
    case PN_LT:
    case PN_LE:
    case PN_GT:
    case PN_GE: return compare(c, n, out);
    case PN_ADD:
    case PN_SUB:
    case PN_MUL: return arith(c, n, out);
    case PN_IN: return in_op(c, n, out);
    case PN_HAS: return getattr(c, n, out, true);
    case PN_GETATTR: return getattr(c, n, out, false);
    case PN_LIKE:
        if (eval(c, n->kids[0], &l) < 0) return -1;
        if (l.type != POLICY_STRING) return type_error(c, n->kids[0], "string", &l);
        out->type = POLICY_BOOL;
        out->u.b = like(l.u.str.s, l.u.str.len, n->u.pat.items, n->u.pat.len);
        return 0;
    case PN_IS:
        if (eval(c, n->kids[0], &l) < 0) return -1;
        if (l.type != POLICY_ENTITY) return type_error(c, n->kids[0], "entity", &l);
        out->type = POLICY_BOOL;
        out->u.b = l.u.entity->type_len == n->u.str.len &&
                   !memcmp(l.u.entity->type, n->u.str.s, n->u.str.len);
        if (!out->u.b || n->nkids < 2) return 0;
        if (eval(c, n->kids[1], &r) < 0) return -1;
        if (r.type == POLICY_ENTITY) {
            out->u.b = entity_in(c, l.u.entity, r.u.entity);
            return 0;
        }
        if (r.type != POLICY_SET) return type_error(c, n->kids[1], "entity or set of entities", &r);
        for (uint32_t i = 0; i < r.u.set->len; i++)
            if (r.u.set->items[i].type != POLICY_ENTITY)
                return type_error(c, n->kids[1], "set of entities", &r.u.set->items[i]);
        out->u.b = false;
        for (uint32_t i = 0; i < r.u.set->len && !out->u.b; i++)
            out->u.b = entity_in(c, l.u.entity, r.u.set->items[i].u.entity);
        return 0;
    case PN_SET: {
        struct policy_value *items =
            arena_alloc(c->arena, (n->nkids ? n->nkids : 1) * sizeof *items);
        for (uint32_t i = 0; i < n->nkids; i++)
            if (eval(c, n->kids[i], &items[i]) < 0) return -1;
        out->type = POLICY_SET;
        out->u.set = policy_vset_make(c->arena, items, n->nkids);
        return 0;
    }
    case PN_RECORD: {
        struct policy_record *rec = arena_alloc(c->arena, sizeof *rec);
        struct policy_field *f = arena_alloc(c->arena, (n->nkids ? n->nkids : 1) * sizeof *f);
        for (uint32_t i = 0; i < n->nkids; i++) {
            f[i].key = n->u.rec.keys[i];
            f[i].key_len = n->u.rec.key_lens[i];
            if (eval(c, n->kids[i], &f[i].value) < 0) return -1;
        }
        rec->fields = f;
        rec->len = n->nkids;
        policy_record_sort(f, n->nkids, NULL);
        out->type = POLICY_RECORD;
        out->u.rec = rec;
        return 0;
    }
    case PN_CALL: return call(c, n, out);
    }
    return fail(c, n, "internal error: unknown node kind %d", n->kind);
}

int policy_eval(struct eval_ctx *c, const struct policy_node *n, struct policy_value *out)
{
    return eval(c, n, out);
}

bool policy_scope_matches(const struct policy_entities *es, const struct policy_scope *s,
                          const struct policy_euid *uid)
{
    struct eval_ctx c = {.entities = es};
    switch (s->op) {
    case POLICY_SCOPE_ANY: return true;
    case POLICY_SCOPE_EQ: return policy_euid_equal(uid, &s->euids[0]);
    case POLICY_SCOPE_IN: return entity_in(&c, uid, &s->euids[0]);
    case POLICY_SCOPE_IS:
        return uid->type_len == s->is_type_len && !memcmp(uid->type, s->is_type, s->is_type_len);
    case POLICY_SCOPE_IS_IN:
        return uid->type_len == s->is_type_len &&
               !memcmp(uid->type, s->is_type, s->is_type_len) &&
               entity_in(&c, uid, &s->euids[0]);
    default:
        for (uint32_t i = 0; i < s->neuids; i++)
            if (entity_in(&c, uid, &s->euids[i])) return true;
        return false;
    }
}

/* The hash of scope s's i-th uid: precomputed (inline in the scope for
 * the first) when s's policy was added to a set. */
static uint64_t scope_hash(const struct policy_scope *s, uint32_t i)
{
    if (!s->hashed) return policy_euid_hash(&s->euids[i]);
    return i ? s->hashes[i] : s->hash0;
}

/* Cedar's `a in b` for request uid d (a, entity ea, may be NULL) and b
 * with hash hb: equality and ancestry are decided on the hashes (the
 * request's and ea's precomputed ancestor hashes) and only a hash match is
 * confirmed by comparing the uids, so a miss touches neither b's strings
 * nor the store. */
static bool req_in(const struct eval_ctx *c, int d, const struct policy_euid *a,
                   const struct policy_entity *ea, const struct policy_euid *b, uint64_t hb)
{
    if (hb == c->req_hash[d] && policy_euid_equal(a, b)) return true;
    if (!ea || !ea->nancestors) return false;
    if (ea->nancestors > 32) return policy_entities_in(c->entities, a, b);
    for (uint32_t i = 0; i < ea->nancestors; i++)
        if (ea->ancestor_hashes[i] == hb &&
            policy_euid_equal(&policy_entities_at(c->entities, ea->ancestors[i])->uid, b))
            return true;
    return false;
}

/* policy_scope_matches for request uid d (0 principal, 1 action, 2
 * resource) when its entity and hash are already known. */
static bool req_scope_matches(const struct eval_ctx *c, const struct policy_scope *s, int d,
                              const struct policy_euid *uid)
{
    const struct policy_entity *e = c->req_ents[d];
    switch (s->op) {
    case POLICY_SCOPE_ANY: return true;
    case POLICY_SCOPE_EQ:
        return scope_hash(s, 0) == c->req_hash[d] && policy_euid_equal(uid, &s->euids[0]);
    case POLICY_SCOPE_IN: return req_in(c, d, uid, e, &s->euids[0], scope_hash(s, 0));
    case POLICY_SCOPE_IS:
        return uid->type_len == s->is_type_len && !memcmp(uid->type, s->is_type, s->is_type_len);
    case POLICY_SCOPE_IS_IN:
        return uid->type_len == s->is_type_len &&
               !memcmp(uid->type, s->is_type, s->is_type_len) &&
               req_in(c, d, uid, e, &s->euids[0], scope_hash(s, 0));
    default:
        for (uint32_t i = 0; i < s->neuids; i++)
            if (req_in(c, d, uid, e, &s->euids[i], scope_hash(s, i))) return true;
        return false;
    }
}

int policy_eval_policy(struct eval_ctx *c, const struct policy *p)
{
    if (p->is_template) return 0;
    if (c->req_ents_known && c->entities) {
        if (!req_scope_matches(c, &p->principal, 0, &c->req->principal) ||
            !req_scope_matches(c, &p->action, 1, &c->req->action) ||
            !req_scope_matches(c, &p->resource, 2, &c->req->resource))
            return 0;
    } else if (!policy_scope_matches(c->entities, &p->principal, &c->req->principal) ||
               !policy_scope_matches(c->entities, &p->action, &c->req->action) ||
               !policy_scope_matches(c->entities, &p->resource, &c->req->resource)) {
        return 0;
    }
    for (uint32_t i = 0; i < p->nconds; i++) {
        bool b;
        if (eval_bool(c, p->conds[i].expr, &b) < 0) return -1;
        if (b != p->conds[i].when) return 0;
    }
    return 1;
}
