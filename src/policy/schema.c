/*
 * schema.c — the Cedar schema model: name resolution shared by both schema
 * formats, lookups, hierarchy queries, type formatting, and the diagnostic
 * list validation reports into.
 *
 * The two parsers (schema_human.c, schema_json.c) record declarations as
 * written (struct raw_*, schema_build.h).  schema_build_finish() then
 * resolves names the way Cedar does.  An unqualified name X used in
 * namespace NS means, in this order: the common type NS::X, the entity type
 * NS::X, the common type X of the empty namespace, the entity type X of the
 * empty namespace, and finally the builtin __cedar::X (Bool, Long, String,
 * ipaddr, decimal, datetime, duration).  A qualified name A::B is always
 * absolute; "__cedar::" names only builtins.  Common types are expanded
 * inline (the model has no named common types), with cycles reported.
 *
 * Invariants of a built schema: every struct policy_type is resolved; every
 * entity type named anywhere (parents, appliesTo, attribute types) is
 * declared; every action parent is declared and the action hierarchy has no
 * cycle; record attributes are sorted by name without duplicates.  All
 * memory belongs to schema->arena, except the hierarchy matrices and the
 * three maps, freed by policy_schema_free().
 */
#include "schema_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hierarchy matrices are n*n bytes; cap n so they stay small. */
#define SCHEMA_MAX_MATRIX 4096

/* ---- builder ------------------------------------------------------------ */

void schema_builder_init(struct schema_builder *b, const char *file)
{
    memset(b, 0, sizeof *b);
    b->schema = calloc(1, sizeof *b->schema);
    if (!b->schema) abort();
    arena_init(&b->schema->arena);
    strmap_init(&b->schema->entity_index);
    strmap_init(&b->schema->action_index);
    strmap_init(&b->schema->action_types);
    b->file = file ? arena_strdup(&b->schema->arena, file) : "";
}

static void builder_free_arrays(struct schema_builder *b)
{
    free(b->entities);
    free(b->actions);
    free(b->commons);
    b->entities = NULL;
    b->actions = NULL;
    b->commons = NULL;
}

void schema_builder_abandon(struct schema_builder *b)
{
    builder_free_arrays(b);
    policy_schema_free(b->schema);
    b->schema = NULL;
}

static void *grow(void *arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return arr;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(arr, ncap * size);
    if (!p) abort();
    memset((char *)p + *cap * size, 0, (ncap - *cap) * size);
    *cap = ncap;
    return p;
}

struct raw_entity *schema_builder_entity(struct schema_builder *b)
{
    if (++b->decls > POLICY_SCHEMA_MAX_DECLS) return NULL;
    b->entities = grow(b->entities, &b->capentities, b->nentities, sizeof *b->entities);
    return &b->entities[b->nentities++];
}

struct raw_action *schema_builder_action(struct schema_builder *b)
{
    if (++b->decls > POLICY_SCHEMA_MAX_DECLS) return NULL;
    b->actions = grow(b->actions, &b->capactions, b->nactions, sizeof *b->actions);
    return &b->actions[b->nactions++];
}

struct raw_common *schema_builder_common(struct schema_builder *b)
{
    if (++b->decls > POLICY_SCHEMA_MAX_DECLS) return NULL;
    b->commons = grow(b->commons, &b->capcommons, b->ncommons, sizeof *b->commons);
    return &b->commons[b->ncommons++];
}

/* ---- resolution --------------------------------------------------------- */

struct resolver {
    struct schema_builder *b;
    struct arena *a;
    struct keel_err *err;
    struct strmap commons;     /* qualified name -> struct common_slot* */
    struct strmap entity_raw;  /* qualified name -> struct raw_entity*  */
    struct common_slot *slots;
};

struct common_slot {
    struct raw_common *raw;
    const struct policy_type *resolved;
    bool busy; /* being resolved: meeting it again is a cycle */
};

/* Builtin types, by the name used after "__cedar::". */
struct builtin {
    const char *name;
    int kind;
    bool ext;
};
static const struct builtin builtins[] = {
    {"Bool", POLICY_T_BOOL, false},     {"Long", POLICY_T_LONG, false},
    {"String", POLICY_T_STRING, false}, {"ipaddr", POLICY_T_EXT, true},
    {"decimal", POLICY_T_EXT, true},    {"datetime", POLICY_T_EXT, true},
    {"duration", POLICY_T_EXT, true},
};

/* Names a common type may not take (RFC 52 reserved type names). */
static const char *const reserved_common[] = {"Bool",   "Boolean", "Entity", "Extension",
                                              "Long",   "Record",  "Set",    "String"};

static const char *qualify(struct arena *a, const char *ns, const char *name)
{
    if (!ns || !*ns) return arena_strdup(a, name);
    return arena_printf(a, "%s::%s", ns, name);
}

static bool is_qualified(const char *name)
{
    return strstr(name, "::") != NULL;
}

static int fail_at(struct resolver *r, int line, int column, const char *fmt, ...)
    KEEL_PRINTF(4, 5);
static int fail_at(struct resolver *r, int line, int column, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    keel_vfail(r->err, KEEL_EINVAL, fmt, ap);
    va_end(ap);
    if (r->err) {
        r->err->line = line;
        r->err->column = column;
        snprintf(r->err->file, sizeof r->err->file, "%s", r->b->file);
    }
    return KEEL_EINVAL;
}

static struct policy_type *new_type(struct arena *a, int kind)
{
    struct policy_type *t = arena_zalloc(a, sizeof *t);
    t->kind = kind;
    return t;
}

static const struct policy_type *builtin_type(struct resolver *r, const char *name)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(builtins); i++) {
        if (strcmp(builtins[i].name, name) != 0) continue;
        struct policy_type *t = new_type(r->a, builtins[i].kind);
        if (builtins[i].ext) t->name = builtins[i].name;
        return t;
    }
    return NULL;
}

static const char *entity_lookup(struct resolver *r, const char *ns, const char *name)
{
    if (is_qualified(name) || !*ns) {
        struct raw_entity *e = strmap_get(&r->entity_raw, name, strlen(name));
        return e ? qualify(r->a, e->ns, e->name) : NULL;
    }
    const char *q = qualify(r->a, ns, name);
    if (strmap_get(&r->entity_raw, q, strlen(q))) return q;
    if (strmap_get(&r->entity_raw, name, strlen(name))) return name;
    return NULL;
}

static int resolve(struct resolver *r, const struct raw_type *raw, const char *ns, int depth,
                   const struct policy_type **out);

static int resolve_common(struct resolver *r, struct common_slot *slot, int line, int column,
                          int depth, const struct policy_type **out)
{
    if (slot->resolved) {
        *out = slot->resolved;
        return 0;
    }
    if (slot->busy)
        return fail_at(r, line, column,
                       "common type '%s' refers to itself; break the cycle by inlining one "
                       "of the types",
                       slot->raw->name);
    slot->busy = true;
    int rc = resolve(r, slot->raw->type, slot->raw->ns, depth + 1, &slot->resolved);
    slot->busy = false;
    if (rc == 0) *out = slot->resolved;
    return rc;
}

static struct common_slot *common_lookup(struct resolver *r, const char *ns, const char *name,
                                         bool *in_ns_tried)
{
    (void)in_ns_tried;
    if (is_qualified(name) || !*ns) return strmap_get(&r->commons, name, strlen(name));
    const char *q = qualify(r->a, ns, name);
    return strmap_get(&r->commons, q, strlen(q));
}

static int resolve_name(struct resolver *r, const struct raw_type *raw, const char *ns,
                        int depth, const struct policy_type **out)
{
    const char *name = raw->name;
    if (strncmp(name, "__cedar::", 9) == 0) {
        const struct policy_type *t = builtin_type(r, name + 9);
        if (!t)
            return fail_at(r, raw->line, raw->column,
                           "'%s' is not a builtin type; the __cedar namespace holds Bool, "
                           "Long, String, ipaddr, decimal, datetime and duration",
                           name);
        *out = t;
        return 0;
    }
    bool want_common = raw->kind == RAW_NAME || raw->kind == RAW_COMMON;
    bool want_entity = raw->kind == RAW_NAME || raw->kind == RAW_ENTITY;
    bool qualified = is_qualified(name) || !*ns;
    /* Current namespace (or the absolute name) first. */
    if (want_common) {
        struct common_slot *c = common_lookup(r, ns, name, NULL);
        if (c) return resolve_common(r, c, raw->line, raw->column, depth, out);
    }
    if (want_entity) {
        const char *q = qualified ? name : qualify(r->a, ns, name);
        if (strmap_get(&r->entity_raw, q, strlen(q))) {
            struct policy_type *t = new_type(r->a, POLICY_T_ENTITY);
            t->name = q;
            *out = t;
            return 0;
        }
    }
    /* Then the empty namespace. */
    if (!qualified) {
        if (want_common) {
            struct common_slot *c = strmap_get(&r->commons, name, strlen(name));
            if (c) return resolve_common(r, c, raw->line, raw->column, depth, out);
        }
        if (want_entity && strmap_get(&r->entity_raw, name, strlen(name))) {
            struct policy_type *t = new_type(r->a, POLICY_T_ENTITY);
            t->name = arena_strdup(r->a, name);
            *out = t;
            return 0;
        }
    }
    /* Finally the builtins. */
    if (!is_qualified(name) && raw->kind != RAW_ENTITY) {
        const struct policy_type *t = builtin_type(r, name);
        if (t && (raw->kind != RAW_EXT || t->kind == POLICY_T_EXT)) {
            *out = t;
            return 0;
        }
    }
    const char *what = raw->kind == RAW_ENTITY   ? "entity type"
                       : raw->kind == RAW_COMMON ? "common type"
                       : raw->kind == RAW_EXT    ? "extension type"
                                                 : "type";
    return fail_at(r, raw->line, raw->column,
                   "unknown %s '%s'%s%s%s; declare it, or use Bool, Long, String, Set<...>, "
                   "a record {...}, or an extension type (ipaddr, decimal, datetime, duration)",
                   what, name, *ns ? " (in namespace '" : "", *ns ? ns : "", *ns ? "')" : "");
}

static int attr_cmp(const void *x, const void *y)
{
    const struct policy_attr *a = x, *b = y;
    return policy_attr_name_cmp(a->name, a->name_len, b->name, b->name_len);
}

static int resolve(struct resolver *r, const struct raw_type *raw, const char *ns, int depth,
                   const struct policy_type **out)
{
    if (depth > POLICY_SCHEMA_MAX_DEPTH)
        return fail_at(r, raw->line, raw->column,
                       "types nest deeper than %d levels; flatten the schema",
                       POLICY_SCHEMA_MAX_DEPTH);
    switch (raw->kind) {
    case RAW_BOOL:
        *out = new_type(r->a, POLICY_T_BOOL);
        return 0;
    case RAW_LONG:
        *out = new_type(r->a, POLICY_T_LONG);
        return 0;
    case RAW_STRING:
        *out = new_type(r->a, POLICY_T_STRING);
        return 0;
    case RAW_SET: {
        const struct policy_type *elem;
        int rc = resolve(r, raw->elem, ns, depth + 1, &elem);
        if (rc) return rc;
        struct policy_type *t = new_type(r->a, POLICY_T_SET);
        t->elem = elem;
        *out = t;
        return 0;
    }
    case RAW_RECORD: {
        struct policy_type *t = new_type(r->a, POLICY_T_RECORD);
        struct policy_attr *attrs = raw->nattrs ? arena_zalloc(r->a, raw->nattrs * sizeof *attrs)
                                                : NULL;
        for (size_t i = 0; i < raw->nattrs; i++) {
            attrs[i].name = raw->attrs[i].name;
            attrs[i].name_len = raw->attrs[i].name_len;
            attrs[i].required = raw->attrs[i].required;
            int rc = resolve(r, raw->attrs[i].type, ns, depth + 1, &attrs[i].type);
            if (rc) return rc;
        }
        if (raw->nattrs > 1) qsort(attrs, raw->nattrs, sizeof *attrs, attr_cmp);
        for (size_t i = 1; i < raw->nattrs; i++) {
            if (attr_cmp(&attrs[i - 1], &attrs[i]) == 0)
                return fail_at(r, raw->line, raw->column,
                               "attribute '%s' is declared twice in one record; remove one",
                               attrs[i].name);
        }
        t->attrs = attrs;
        t->nattrs = raw->nattrs;
        *out = t;
        return 0;
    }
    case RAW_EXT:
    case RAW_ENTITY:
    case RAW_COMMON:
    case RAW_NAME:
        return resolve_name(r, raw, ns, depth, out);
    }
    return fail_at(r, raw->line, raw->column, "internal: unknown raw type kind %d", raw->kind);
}

/* Resolves an entity type reference (parents, appliesTo). */
static int resolve_entity_ref(struct resolver *r, const struct raw_name *n, const char *ns,
                              const char **out)
{
    const char *q = entity_lookup(r, ns, n->name);
    if (!q)
        return fail_at(r, n->line, n->column,
                       "unknown entity type '%s'%s%s%s; declare it with `entity %s;`",
                       n->name, *ns ? " (in namespace '" : "", *ns ? ns : "", *ns ? "')" : "",
                       n->name);
    *out = q;
    return 0;
}

static const char *action_type_of(struct arena *a, const char *ns)
{
    return qualify(a, ns, "Action");
}

/* The action index key "type\x1fid" (ids may hold NUL: explicit lengths). */
static char *action_key(struct arena *a, const char *type, const char *id, size_t id_len,
                        size_t *key_len)
{
    size_t tl = strlen(type);
    char *k = arena_alloc(a, tl + id_len + 2);
    memcpy(k, type, tl);
    k[tl] = '\x1f';
    memcpy(k + tl + 1, id, id_len);
    k[tl + 1 + id_len] = 0;
    *key_len = tl + 1 + id_len;
    return k;
}

static int entity_cmp(const void *x, const void *y)
{
    const struct policy_entity_type *a = x, *b = y;
    return strcmp(a->name, b->name);
}

static bool *closure(size_t n, const size_t *edge_start, const size_t *edges)
{
    /* edges of node i: edges[edge_start[i] .. edge_start[i+1]) */
    size_t cells = n * n;
    bool *m = calloc(cells ? cells : 1, 1);
    size_t *stack = malloc((n ? n : 1) * sizeof *stack);
    if (!m || !stack) abort();
    for (size_t i = 0; i < n; i++) {
        size_t sp = 0;
        bool *row = m + i * n;
        row[i] = true;
        stack[sp++] = i;
        while (sp) {
            size_t x = stack[--sp];
            for (size_t k = edge_start[x]; k < edge_start[x + 1]; k++) {
                size_t y = edges[k];
                if (!row[y]) {
                    row[y] = true;
                    stack[sp++] = y;
                }
            }
        }
    }
    free(stack);
    return m;
}

int schema_build_finish(struct schema_builder *b, struct policy_schema **out,
                        struct keel_err *err)
{
    struct policy_schema *s = b->schema;
    struct resolver r = {.b = b, .a = &s->arena, .err = err};
    strmap_init(&r.commons);
    strmap_init(&r.entity_raw);
    int rc = 0;
    size_t *starts = NULL, *edges = NULL;

    if (b->nentities > SCHEMA_MAX_MATRIX || b->nactions > SCHEMA_MAX_MATRIX) {
        rc = keel_fail(err, KEEL_ELIMIT, "schema declares more than %d entity types or actions",
                       SCHEMA_MAX_MATRIX);
        goto done;
    }

    /* Declared names. */
    for (size_t i = 0; i < b->nentities; i++) {
        struct raw_entity *e = &b->entities[i];
        const char *q = qualify(r.a, e->ns, e->name);
        if (strmap_put(&r.entity_raw, q, strlen(q), e)) {
            rc = fail_at(&r, e->line, e->column,
                         "entity type '%s' is declared twice; remove one declaration", q);
            goto done;
        }
    }
    r.slots = b->ncommons ? calloc(b->ncommons, sizeof *r.slots) : NULL;
    for (size_t i = 0; i < b->ncommons; i++) {
        struct raw_common *c = &b->commons[i];
        for (size_t k = 0; k < KEEL_ARRAY_LEN(reserved_common); k++) {
            if (strcmp(c->name, reserved_common[k]) == 0) {
                rc = fail_at(&r, c->line, c->column,
                             "'%s' is a reserved type name and cannot name a common type; "
                             "choose another name",
                             c->name);
                goto done;
            }
        }
        const char *q = qualify(r.a, c->ns, c->name);
        r.slots[i].raw = c;
        if (strmap_put(&r.commons, q, strlen(q), &r.slots[i])) {
            rc = fail_at(&r, c->line, c->column,
                         "common type '%s' is declared twice; remove one declaration", q);
            goto done;
        }
    }
    /* Every common type must resolve, used or not. */
    for (size_t i = 0; i < b->ncommons; i++) {
        const struct policy_type *t;
        rc = resolve_common(&r, &r.slots[i], b->commons[i].line, b->commons[i].column, 0, &t);
        if (rc) goto done;
    }

    /* Entity types. */
    s->nentities = b->nentities;
    s->entities = arena_zalloc(r.a, (b->nentities ? b->nentities : 1) * sizeof *s->entities);
    for (size_t i = 0; i < b->nentities; i++) {
        struct raw_entity *e = &b->entities[i];
        struct policy_entity_type *t = &s->entities[i];
        t->name = qualify(r.a, e->ns, e->name);
        t->line = e->line;
        t->column = e->column;
        if (e->shape) {
            rc = resolve(&r, e->shape, e->ns, 0, &t->shape);
            if (rc) goto done;
            if (t->shape->kind != POLICY_T_RECORD) {
                rc = fail_at(&r, e->shape->line, e->shape->column,
                             "the attributes of entity type '%s' must be a record type",
                             t->name);
                goto done;
            }
        } else {
            t->shape = new_type(r.a, POLICY_T_RECORD);
        }
        if (e->tags) {
            rc = resolve(&r, e->tags, e->ns, 0, &t->tags);
            if (rc) goto done;
        }
        t->nparents = e->nparents;
        t->parents = arena_zalloc(r.a, (e->nparents ? e->nparents : 1) * sizeof *t->parents);
        for (size_t k = 0; k < e->nparents; k++) {
            rc = resolve_entity_ref(&r, &e->parents[k], e->ns, &t->parents[k]);
            if (rc) goto done;
        }
        if (e->enum_ids) {
            t->is_enum = true;
            t->enum_ids = e->enum_ids;
            t->enum_id_lens = e->enum_id_lens;
            t->nenum = e->nenum;
        }
    }
    qsort(s->entities, s->nentities, sizeof *s->entities, entity_cmp);
    for (size_t i = 0; i < s->nentities; i++)
        strmap_put(&s->entity_index, s->entities[i].name, strlen(s->entities[i].name),
                   &s->entities[i]);

    /* Actions: declare all, then resolve parents and appliesTo. */
    s->nactions = b->nactions;
    s->actions = arena_zalloc(r.a, (b->nactions ? b->nactions : 1) * sizeof *s->actions);
    for (size_t i = 0; i < b->nactions; i++) {
        struct raw_action *ra = &b->actions[i];
        struct policy_action *act = &s->actions[i];
        act->uid.type = action_type_of(r.a, ra->ns);
        act->uid.id = ra->id;
        act->uid.id_len = ra->id_len;
        act->line = ra->line;
        act->column = ra->column;
        size_t klen;
        char *key = action_key(r.a, act->uid.type, act->uid.id, act->uid.id_len, &klen);
        if (strmap_put(&s->action_index, key, klen, act)) {
            rc = fail_at(&r, ra->line, ra->column,
                         "action %s::\"%s\" is declared twice; remove one declaration",
                         act->uid.type, act->uid.id);
            goto done;
        }
        strmap_put(&s->action_types, act->uid.type, strlen(act->uid.type), (void *)act->uid.type);
    }
    size_t nedges = 0;
    for (size_t i = 0; i < b->nactions; i++) nedges += b->actions[i].nparents;
    starts = calloc(b->nactions + 1, sizeof *starts);
    edges = calloc(nedges ? nedges : 1, sizeof *edges);
    if (!starts || !edges) abort();
    nedges = 0;
    for (size_t i = 0; i < b->nactions; i++) {
        struct raw_action *ra = &b->actions[i];
        struct policy_action *act = &s->actions[i];
        starts[i] = nedges;
        struct policy_action_ref *parents =
            arena_zalloc(r.a, (ra->nparents ? ra->nparents : 1) * sizeof *parents);
        for (size_t k = 0; k < ra->nparents; k++) {
            struct raw_action_ref *p = &ra->parents[k];
            const struct policy_action *found = NULL;
            size_t klen;
            if (!p->type) {
                char *key = action_key(r.a, act->uid.type, p->id, p->id_len, &klen);
                found = strmap_get(&s->action_index, key, klen);
            } else {
                const char *cands[2] = {qualify(r.a, ra->ns, p->type), p->type};
                for (int c = 0; c < 2 && !found; c++) {
                    char *key = action_key(r.a, cands[c], p->id, p->id_len, &klen);
                    found = strmap_get(&s->action_index, key, klen);
                }
            }
            if (!found) {
                rc = fail_at(&r, p->line, p->column,
                             "action %s::\"%s\" is a member of undeclared action %s::\"%s\"; "
                             "declare that action group",
                             act->uid.type, act->uid.id, p->type ? p->type : act->uid.type,
                             p->id);
                goto done;
            }
            parents[k] = found->uid;
            edges[nedges++] = (size_t)(found - s->actions);
        }
        act->parents = parents;
        act->nparents = ra->nparents;
        /* An empty principal or resource list applies to nothing, like a
         * missing appliesTo (Cedar's JSON form writes empty lists for it). */
        act->applies = ra->applies && ra->nprincipals > 0 && ra->nresources > 0;
        act->nprincipals = ra->nprincipals;
        act->principals = arena_zalloc(r.a, (ra->nprincipals + 1) * sizeof(char *));
        for (size_t k = 0; k < ra->nprincipals; k++) {
            rc = resolve_entity_ref(&r, &ra->principals[k], ra->ns, &act->principals[k]);
            if (rc) goto done;
        }
        act->nresources = ra->nresources;
        act->resources = arena_zalloc(r.a, (ra->nresources + 1) * sizeof(char *));
        for (size_t k = 0; k < ra->nresources; k++) {
            rc = resolve_entity_ref(&r, &ra->resources[k], ra->ns, &act->resources[k]);
            if (rc) goto done;
        }
        if (ra->context) {
            rc = resolve(&r, ra->context, ra->ns, 0, &act->context);
            if (rc) goto done;
            if (act->context->kind != POLICY_T_RECORD) {
                rc = fail_at(&r, ra->context->line, ra->context->column,
                             "the context of action \"%s\" must be a record type", act->uid.id);
                goto done;
            }
        } else {
            act->context = new_type(r.a, POLICY_T_RECORD);
        }
    }
    starts[b->nactions] = nedges;
    s->action_anc = closure(s->nactions, starts, edges);
    for (size_t i = 0; i < s->nactions; i++) {
        /* A cycle: some parent reaches back to i. */
        for (size_t k = starts[i]; k < starts[i + 1]; k++) {
            if (s->action_anc[edges[k] * s->nactions + i]) {
                rc = fail_at(&r, s->actions[i].line, s->actions[i].column,
                             "action \"%s\" is (transitively) a member of itself; break the "
                             "cycle in the action hierarchy",
                             s->actions[i].uid.id);
                goto done;
            }
        }
    }
    free(starts);
    free(edges);
    starts = edges = NULL;

    /* Entity hierarchy matrix. */
    nedges = 0;
    for (size_t i = 0; i < s->nentities; i++) nedges += s->entities[i].nparents;
    starts = calloc(s->nentities + 1, sizeof *starts);
    edges = calloc(nedges ? nedges : 1, sizeof *edges);
    if (!starts || !edges) abort();
    nedges = 0;
    for (size_t i = 0; i < s->nentities; i++) {
        starts[i] = nedges;
        for (size_t k = 0; k < s->entities[i].nparents; k++) {
            const struct policy_entity_type *p = policy_schema_entity(s, s->entities[i].parents[k]);
            edges[nedges++] = (size_t)(p - s->entities);
        }
    }
    starts[s->nentities] = nedges;
    s->entity_anc = closure(s->nentities, starts, edges);

done:
    free(starts);
    free(edges);
    free(r.slots);
    strmap_cleanup(&r.commons);
    strmap_cleanup(&r.entity_raw);
    builder_free_arrays(b);
    if (rc) {
        policy_schema_free(s);
        b->schema = NULL;
        return rc;
    }
    *out = s;
    b->schema = NULL;
    return 0;
}

/* ---- public API --------------------------------------------------------- */

int policy_attr_name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

const struct policy_attr *policy_type_attr(const struct policy_type *rec, const char *name,
                                           size_t len)
{
    size_t lo = 0, hi = rec->nattrs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = policy_attr_name_cmp(rec->attrs[mid].name, rec->attrs[mid].name_len, name, len);
        if (c == 0) return &rec->attrs[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int policy_schema_parse(const char *text, size_t len, const char *file,
                        struct policy_schema **out, struct keel_err *err)
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    if (i < len && text[i] == '{') return policy_schema_parse_json(text, len, file, out, err);
    return policy_schema_parse_human(text, len, file, out, err);
}

int policy_schema_load(const char *path, struct policy_schema **out, struct keel_err *err)
{
    struct buf b;
    buf_init(&b);
    int rc = keel_read_file(path, POLICY_SCHEMA_MAX_BYTES, &b, err);
    if (rc == 0) rc = policy_schema_parse(b.data ? b.data : "", b.len, path, out, err);
    buf_cleanup(&b);
    return rc;
}

void policy_schema_free(struct policy_schema *s)
{
    if (!s) return;
    strmap_cleanup(&s->entity_index);
    strmap_cleanup(&s->action_index);
    strmap_cleanup(&s->action_types);
    free(s->entity_anc);
    free(s->action_anc);
    arena_cleanup(&s->arena);
    free(s);
}

const struct policy_entity_type *policy_schema_entity(const struct policy_schema *s,
                                                     const char *name)
{
    return strmap_get(&s->entity_index, name, strlen(name));
}

const struct policy_action *policy_schema_action(const struct policy_schema *s,
                                                 const char *type, const char *id)
{
    return policy_schema_action_n(s, type, id, strlen(id));
}

bool policy_schema_enum_has(const struct policy_entity_type *et, const char *id, size_t len)
{
    for (size_t i = 0; i < et->nenum; i++)
        if (et->enum_id_lens[i] == len && memcmp(et->enum_ids[i], id, len) == 0) return true;
    return false;
}

const struct policy_action *policy_schema_action_n(const struct policy_schema *s,
                                                   const char *type, const char *id,
                                                   size_t il)
{
    size_t tl = strlen(type);
    char small[256];
    char *key = tl + il + 2 <= sizeof small ? small : malloc(tl + il + 2);
    if (!key) abort();
    memcpy(key, type, tl);
    key[tl] = '\x1f';
    memcpy(key + tl + 1, id, il);
    key[tl + 1 + il] = 0;
    const struct policy_action *a = strmap_get(&s->action_index, key, tl + il + 1);
    if (key != small) free(key);
    return a;
}

bool policy_schema_is_action_type(const struct policy_schema *s, const char *name)
{
    return strmap_get(&s->action_types, name, strlen(name)) != NULL;
}

bool policy_schema_entity_descends(const struct policy_schema *s, const char *child,
                                   const char *ancestor)
{
    const struct policy_entity_type *c = policy_schema_entity(s, child);
    const struct policy_entity_type *a = policy_schema_entity(s, ancestor);
    if (!c || !a) return false;
    return s->entity_anc[(size_t)(c - s->entities) * s->nentities + (size_t)(a - s->entities)];
}

bool policy_schema_action_descends(const struct policy_schema *s, const struct policy_action *a,
                                   const struct policy_action *b)
{
    return s->action_anc[(size_t)(a - s->actions) * s->nactions + (size_t)(b - s->actions)];
}

void policy_type_format(struct buf *out, const struct policy_type *t)
{
    static const char *const simple[] = {
        [POLICY_T_NEVER] = "Never",   [POLICY_T_BOOL] = "Bool",   [POLICY_T_TRUE] = "true",
        [POLICY_T_FALSE] = "false",   [POLICY_T_LONG] = "Long",   [POLICY_T_STRING] = "String",
        [POLICY_T_ANY_ENTITY] = "entity",
    };
    if (!t) {
        buf_puts(out, "?");
        return;
    }
    switch (t->kind) {
    case POLICY_T_SET:
        buf_puts(out, "Set<");
        policy_type_format(out, t->elem);
        buf_putc(out, '>');
        return;
    case POLICY_T_RECORD:
        buf_puts(out, "{");
        for (size_t i = 0; i < t->nattrs; i++) {
            buf_printf(out, "%s%s%s: ", i ? ", " : " ", t->attrs[i].name,
                       t->attrs[i].required ? "" : "?");
            policy_type_format(out, t->attrs[i].type);
        }
        buf_puts(out, t->nattrs ? " }" : "}");
        return;
    case POLICY_T_ENTITY:
    case POLICY_T_EXT:
        buf_puts(out, t->name);
        return;
    default:
        if (t->kind >= 0 && (size_t)t->kind < KEEL_ARRAY_LEN(simple) && simple[t->kind])
            buf_puts(out, simple[t->kind]);
        else
            buf_puts(out, "?");
    }
}

/* ---- diagnostics -------------------------------------------------------- */

void policy_diag_list_init(struct policy_diag_list *l)
{
    memset(l, 0, sizeof *l);
}

void policy_diag_list_cleanup(struct policy_diag_list *l)
{
    for (size_t i = 0; i < l->len; i++) {
        free(l->items[i].policy_id);
        free(l->items[i].file);
        free(l->items[i].message);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s ? s : "");
    if (!p) abort();
    return p;
}

void policy_diag_add(struct policy_diag_list *l, const char *policy_id, const char *file,
                     int line, int column, const char *fmt, ...)
{
    if (l->len == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 8;
        struct policy_diag *p = realloc(l->items, ncap * sizeof *p);
        if (!p) abort();
        l->items = p;
        l->cap = ncap;
    }
    struct buf b;
    buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    struct policy_diag *d = &l->items[l->len++];
    d->policy_id = xstrdup(policy_id);
    d->file = xstrdup(file);
    d->line = line;
    d->column = column;
    d->message = b.data ? buf_detach(&b) : xstrdup("");
    d->warning = false;
    buf_cleanup(&b);
}
