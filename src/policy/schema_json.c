/*
 * schema_json.c — Cedar's JSON schema format, read through src/json into
 * the raw declarations of schema_build.h (resolved by schema.c).
 *
 * Format (one object member per namespace; "" is the empty namespace):
 *   { "NS": { "entityTypes": { "User": { "memberOfTypes": ["Group"],
 *                                         "shape": <Type>, "tags": <Type>,
 *                                         "enum": ["a", "b"] } },
 *             "actions": { "view": { "memberOf": [{"id": "read",
 *                                                  "type": "NS::Action"}],
 *                                     "appliesTo": { "principalTypes": [...],
 *                                                    "resourceTypes": [...],
 *                                                    "context": <Type> } } },
 *             "commonTypes": { "Name": <Type> },
 *             "annotations": { ... } } }
 *   <Type> ::= {"type": "Long" | "String" | "Boolean"}
 *            | {"type": "Set", "element": <Type>}
 *            | {"type": "Record", "attributes": {"a": <Type> + "required"}}
 *            | {"type": "Entity" | "Extension" | "EntityOrCommon", "name": N}
 *            | {"type": N}   (a common type)
 * Unknown members are errors, as in Cedar, so typos do not pass silently.
 * Positions come from the JSON parser (line/column of the offending value).
 */
#include "schema_build.h"

#include "../json/json.h"

#include <stdio.h>
#include <string.h>

struct jparser {
    struct schema_builder *b;
    struct arena *a;
    struct keel_err *err;
};

static int jerr(struct jparser *j, const struct json_value *v, const char *fmt, ...)
    KEEL_PRINTF(3, 4);
static int jerr(struct jparser *j, const struct json_value *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    keel_vfail(j->err, KEEL_EINVAL, fmt, ap);
    va_end(ap);
    if (j->err) {
        j->err->line = v ? v->line : 0;
        j->err->column = v ? v->column : 0;
        snprintf(j->err->file, sizeof j->err->file, "%s", j->b->file);
    }
    return KEEL_EINVAL;
}

/* Checks that every member of obj is one of the allowed keys. */
static int only_keys(struct jparser *j, const struct json_value *obj, const char *what,
                     const char *const *keys, size_t nkeys)
{
    for (uint32_t i = 0; i < obj->len; i++) {
        const struct json_member *m = &obj->u.members[i];
        bool ok = false;
        for (size_t k = 0; k < nkeys && !ok; k++) ok = strcmp(m->key, keys[k]) == 0;
        if (!ok) {
            struct buf b;
            buf_init(&b);
            for (size_t k = 0; k < nkeys; k++) buf_printf(&b, "%s\"%s\"", k ? ", " : "", keys[k]);
            int rc = jerr(j, m->value, "unknown member \"%s\" in %s; allowed: %s", m->key, what,
                          b.data ? b.data : "");
            buf_cleanup(&b);
            return rc;
        }
    }
    return 0;
}

static const char *str_of(struct jparser *j, const struct json_value *v)
{
    return arena_strndup(j->a, v->u.s.str, v->len);
}

static int json_type(struct jparser *j, const struct json_value *v, int depth, bool attr,
                     struct raw_type **out);

static int record(struct jparser *j, const struct json_value *v, int depth, struct raw_type *t)
{
    const struct json_value *attrs = json_get(v, "attributes");
    if (!attrs) attrs = NULL;
    if (attrs && !json_is(attrs, JSON_OBJECT))
        return jerr(j, attrs, "\"attributes\" must be an object of attribute types");
    const struct json_value *extra = json_get(v, "additionalAttributes");
    if (extra && !json_is_bool(extra))
        return jerr(j, extra, "\"additionalAttributes\" must be true or false");
    if (extra && extra->type == JSON_TRUE)
        return jerr(j, extra,
                    "records with \"additionalAttributes\": true are not supported by Cedar's "
                    "validator; list every attribute");
    t->kind = RAW_RECORD;
    t->nattrs = attrs ? attrs->len : 0;
    t->attrs = t->nattrs ? arena_zalloc(j->a, t->nattrs * sizeof *t->attrs) : NULL;
    for (size_t i = 0; i < t->nattrs; i++) {
        const struct json_member *m = &attrs->u.members[i];
        struct raw_attr *at = &t->attrs[i];
        at->name = arena_strndup(j->a, m->key, m->key_len);
        at->name_len = m->key_len;
        at->line = m->value->line;
        at->column = m->value->column;
        const struct json_value *req = json_get(m->value, "required");
        if (req && !json_is_bool(req))
            return jerr(j, req, "\"required\" must be true or false");
        at->required = !req || req->type == JSON_TRUE;
        int rc = json_type(j, m->value, depth + 1, true, &at->type);
        if (rc) return rc;
    }
    return 0;
}

/* Type kinds by their "type" string. */
struct jtype {
    const char *name;
    int kind;
    const char *const *keys; /* allowed members besides "type" */
    size_t nkeys;
};

static const char *const keys_plain[] = {"type", "required", "annotations"};
static const char *const keys_set[] = {"type", "element", "required", "annotations"};
static const char *const keys_record[] = {"type", "attributes", "additionalAttributes",
                                          "required", "annotations"};
static const char *const keys_named[] = {"type", "name", "required", "annotations"};

static const struct jtype jtypes[] = {
    {"Long", RAW_LONG, keys_plain, KEEL_ARRAY_LEN(keys_plain)},
    {"String", RAW_STRING, keys_plain, KEEL_ARRAY_LEN(keys_plain)},
    {"Boolean", RAW_BOOL, keys_plain, KEEL_ARRAY_LEN(keys_plain)},
    {"Set", RAW_SET, keys_set, KEEL_ARRAY_LEN(keys_set)},
    {"Record", RAW_RECORD, keys_record, KEEL_ARRAY_LEN(keys_record)},
    {"Entity", RAW_ENTITY, keys_named, KEEL_ARRAY_LEN(keys_named)},
    {"Extension", RAW_EXT, keys_named, KEEL_ARRAY_LEN(keys_named)},
    {"EntityOrCommon", RAW_NAME, keys_named, KEEL_ARRAY_LEN(keys_named)},
};

static int json_type(struct jparser *j, const struct json_value *v, int depth, bool attr,
                     struct raw_type **out)
{
    if (depth > POLICY_SCHEMA_MAX_DEPTH)
        return jerr(j, v, "types nest deeper than %d levels; flatten the schema",
                    POLICY_SCHEMA_MAX_DEPTH);
    if (!json_is(v, JSON_OBJECT))
        return jerr(j, v, "a type must be an object like {\"type\": \"Long\"}");
    const struct json_value *tv = json_get(v, "type");
    if (!json_is(tv, JSON_STRING))
        return jerr(j, v, "a type needs a \"type\" member naming it (\"Long\", \"Set\", ...)");
    struct raw_type *t = arena_zalloc(j->a, sizeof *t);
    t->line = v->line;
    t->column = v->column;
    const struct jtype *jt = NULL;
    for (size_t i = 0; i < KEEL_ARRAY_LEN(jtypes) && !jt; i++)
        if (strcmp(jtypes[i].name, tv->u.s.str) == 0) jt = &jtypes[i];
    int rc;
    if (!jt) {
        /* A common type reference. */
        static const char *const keys[] = {"type", "required", "annotations"};
        if ((rc = only_keys(j, v, "a common type reference", keys, attr ? 3 : 1))) return rc;
        t->kind = RAW_COMMON;
        t->name = str_of(j, tv);
        *out = t;
        return 0;
    }
    if ((rc = only_keys(j, v, arena_printf(j->a, "a \"%s\" type", jt->name), jt->keys,
                        jt->nkeys)))
        return rc;
    if (!attr && json_get(v, "required"))
        return jerr(j, json_get(v, "required"),
                    "\"required\" is only allowed on record attributes");
    t->kind = jt->kind;
    switch (jt->kind) {
    case RAW_SET: {
        const struct json_value *el = json_get(v, "element");
        if (!el) return jerr(j, v, "a \"Set\" type needs an \"element\" type");
        rc = json_type(j, el, depth + 1, false, &t->elem);
        if (rc) return rc;
        break;
    }
    case RAW_RECORD:
        if ((rc = record(j, v, depth, t))) return rc;
        break;
    case RAW_ENTITY:
    case RAW_EXT:
    case RAW_NAME: {
        const struct json_value *n = json_get(v, "name");
        if (!json_is(n, JSON_STRING))
            return jerr(j, v, "a \"%s\" type needs a \"name\" string", jt->name);
        t->name = str_of(j, n);
        break;
    }
    default:
        break;
    }
    *out = t;
    return 0;
}

static int name_list(struct jparser *j, const struct json_value *arr, const char *what,
                     struct raw_name **out, size_t *n)
{
    if (!json_is(arr, JSON_ARRAY)) return jerr(j, arr, "%s must be an array of type names", what);
    *n = arr->len;
    *out = arena_zalloc(j->a, (arr->len ? arr->len : 1) * sizeof **out);
    for (uint32_t i = 0; i < arr->len; i++) {
        const struct json_value *s = arr->u.items[i];
        if (!json_is(s, JSON_STRING)) return jerr(j, s, "%s must hold strings", what);
        (*out)[i].name = str_of(j, s);
        (*out)[i].line = s->line;
        (*out)[i].column = s->column;
    }
    return 0;
}

static int entity_type(struct jparser *j, const char *ns, const struct json_member *m)
{
    static const char *const keys[] = {"memberOfTypes", "shape", "tags", "enum", "annotations"};
    const struct json_value *v = m->value;
    if (!json_is(v, JSON_OBJECT))
        return jerr(j, v, "entity type \"%s\" must be an object", m->key);
    int rc = only_keys(j, v, "an entity type", keys, KEEL_ARRAY_LEN(keys));
    if (rc) return rc;
    struct raw_entity *e = schema_builder_entity(j->b);
    if (!e)
        return keel_fail(j->err, KEEL_ELIMIT, "schema has more than %d declarations",
                         POLICY_SCHEMA_MAX_DECLS);
    e->ns = ns;
    e->name = arena_strndup(j->a, m->key, m->key_len);
    e->line = v->line;
    e->column = v->column;
    const struct json_value *x;
    if ((x = json_get(v, "memberOfTypes")) &&
        (rc = name_list(j, x, "\"memberOfTypes\"", &e->parents, &e->nparents)))
        return rc;
    struct raw_type *shape = NULL, *tags = NULL;
    if ((x = json_get(v, "shape")) && (rc = json_type(j, x, 0, false, &shape))) return rc;
    if ((x = json_get(v, "tags")) && (rc = json_type(j, x, 0, false, &tags))) return rc;
    /* json_type may not add declarations, so e is still valid. */
    e->shape = shape;
    e->tags = tags;
    if ((x = json_get(v, "enum"))) {
        if (!json_is(x, JSON_ARRAY) || x->len == 0)
            return jerr(j, x, "\"enum\" must be a non-empty array of entity id strings");
        if (e->nparents || e->shape || e->tags)
            return jerr(j, x, "an enumerated entity type cannot have memberOfTypes, shape or "
                              "tags");
        e->nenum = x->len;
        e->enum_ids = arena_zalloc(j->a, x->len * sizeof *e->enum_ids);
        e->enum_id_lens = arena_zalloc(j->a, x->len * sizeof *e->enum_id_lens);
        for (uint32_t i = 0; i < x->len; i++) {
            if (!json_is(x->u.items[i], JSON_STRING))
                return jerr(j, x->u.items[i], "\"enum\" must hold strings");
            e->enum_ids[i] = str_of(j, x->u.items[i]);
            e->enum_id_lens[i] = x->u.items[i]->len;
        }
    }
    return 0;
}

static int action(struct jparser *j, const char *ns, const struct json_member *m)
{
    static const char *const keys[] = {"memberOf", "appliesTo", "attributes", "annotations"};
    static const char *const akeys[] = {"principalTypes", "resourceTypes", "context"};
    const struct json_value *v = m->value;
    if (!json_is(v, JSON_OBJECT)) return jerr(j, v, "action \"%s\" must be an object", m->key);
    int rc = only_keys(j, v, "an action", keys, KEEL_ARRAY_LEN(keys));
    if (rc) return rc;
    const struct json_value *x;
    if ((x = json_get(v, "attributes")))
        return jerr(j, x, "action attributes are not supported; move the data to the context");
    struct raw_action_ref *parents = NULL;
    size_t nparents = 0;
    if ((x = json_get(v, "memberOf")) && !json_is(x, JSON_NULL)) {
        if (!json_is(x, JSON_ARRAY))
            return jerr(j, x, "\"memberOf\" must be an array of {\"id\": ...} objects");
        nparents = x->len;
        parents = arena_zalloc(j->a, (x->len ? x->len : 1) * sizeof *parents);
        for (uint32_t i = 0; i < x->len; i++) {
            const struct json_value *p = x->u.items[i];
            static const char *const pkeys[] = {"id", "type"};
            if (!json_is(p, JSON_OBJECT) || !json_is(json_get(p, "id"), JSON_STRING))
                return jerr(j, p, "a \"memberOf\" entry must be {\"id\": \"...\"}");
            if ((rc = only_keys(j, p, "a memberOf entry", pkeys, 2))) return rc;
            parents[i].id = str_of(j, json_get(p, "id"));
            parents[i].id_len = json_get(p, "id")->len;
            const struct json_value *ty = json_get(p, "type");
            if (ty && !json_is(ty, JSON_STRING)) return jerr(j, ty, "\"type\" must be a string");
            parents[i].type = ty ? str_of(j, ty) : NULL;
            parents[i].line = p->line;
            parents[i].column = p->column;
        }
    }
    struct raw_action tmp = {0};
    if ((x = json_get(v, "appliesTo")) && !json_is(x, JSON_NULL)) {
        if (!json_is(x, JSON_OBJECT)) return jerr(j, x, "\"appliesTo\" must be an object");
        if ((rc = only_keys(j, x, "appliesTo", akeys, 3))) return rc;
        tmp.applies = true;
        const struct json_value *pt = json_get(x, "principalTypes");
        const struct json_value *rt = json_get(x, "resourceTypes");
        if (!pt || !rt)
            return jerr(j, x, "\"appliesTo\" needs both \"principalTypes\" and "
                              "\"resourceTypes\"");
        if ((rc = name_list(j, pt, "\"principalTypes\"", &tmp.principals, &tmp.nprincipals)))
            return rc;
        if ((rc = name_list(j, rt, "\"resourceTypes\"", &tmp.resources, &tmp.nresources)))
            return rc;
        const struct json_value *ctx = json_get(x, "context");
        if (ctx && (rc = json_type(j, ctx, 0, false, &tmp.context))) return rc;
    }
    struct raw_action *a = schema_builder_action(j->b);
    if (!a)
        return keel_fail(j->err, KEEL_ELIMIT, "schema has more than %d declarations",
                         POLICY_SCHEMA_MAX_DECLS);
    *a = tmp;
    a->ns = ns;
    a->id = arena_strndup(j->a, m->key, m->key_len);
    a->id_len = m->key_len;
    a->parents = parents;
    a->nparents = nparents;
    a->line = v->line;
    a->column = v->column;
    return 0;
}

static bool valid_ns(const char *s)
{
    /* IDENT { '::' IDENT } or "" */
    if (!*s) return true;
    for (;;) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return false;
        while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
               (*s >= '0' && *s <= '9'))
            s++;
        if (!*s) return true;
        if (s[0] != ':' || s[1] != ':') return false;
        s += 2;
    }
}

int policy_schema_parse_json(const char *text, size_t len, const char *file,
                             struct policy_schema **out, struct keel_err *err)
{
    if (len > POLICY_SCHEMA_MAX_BYTES)
        return keel_fail(err, KEEL_ELIMIT, "schema is larger than %u bytes",
                         POLICY_SCHEMA_MAX_BYTES);
    struct schema_builder b;
    schema_builder_init(&b, file);
    struct jparser j = {.b = &b, .a = &b.schema->arena, .err = err};
    struct json_value *root;
    struct json_parse_opts opts = {.max_depth = 4 * POLICY_SCHEMA_MAX_DEPTH + 16,
                                   .file = file};
    int rc = json_parse(j.a, text, len, &opts, &root, err);
    if (rc == 0 && !json_is(root, JSON_OBJECT))
        rc = jerr(&j, root, "a JSON schema is an object with one member per namespace");
    for (uint32_t i = 0; rc == 0 && i < root->len; i++) {
        const struct json_member *nsm = &root->u.members[i];
        const struct json_value *nsv = nsm->value;
        const char *ns = arena_strndup(j.a, nsm->key, nsm->key_len);
        static const char *const keys[] = {"entityTypes", "actions", "commonTypes",
                                           "annotations"};
        if (!valid_ns(ns) || strncmp(ns, "__cedar", 7) == 0) {
            rc = jerr(&j, nsv, "\"%s\" is not a valid namespace name (Name::Name, not __cedar)",
                      ns);
            break;
        }
        if (!json_is(nsv, JSON_OBJECT)) {
            rc = jerr(&j, nsv, "namespace \"%s\" must be an object", ns);
            break;
        }
        if ((rc = only_keys(&j, nsv, "a namespace", keys, KEEL_ARRAY_LEN(keys)))) break;
        const struct json_value *ets = json_get(nsv, "entityTypes");
        const struct json_value *acts = json_get(nsv, "actions");
        const struct json_value *cts = json_get(nsv, "commonTypes");
        if (!json_is(ets, JSON_OBJECT) || !json_is(acts, JSON_OBJECT)) {
            rc = jerr(&j, nsv, "namespace \"%s\" needs \"entityTypes\" and \"actions\" objects",
                      ns);
            break;
        }
        for (uint32_t k = 0; rc == 0 && k < ets->len; k++)
            rc = entity_type(&j, ns, &ets->u.members[k]);
        for (uint32_t k = 0; rc == 0 && k < acts->len; k++)
            rc = action(&j, ns, &acts->u.members[k]);
        if (rc == 0 && cts) {
            if (!json_is(cts, JSON_OBJECT)) {
                rc = jerr(&j, cts, "\"commonTypes\" must be an object");
                break;
            }
            for (uint32_t k = 0; rc == 0 && k < cts->len; k++) {
                const struct json_member *cm = &cts->u.members[k];
                struct raw_type *t;
                if ((rc = json_type(&j, cm->value, 0, false, &t))) break;
                struct raw_common *c = schema_builder_common(&b);
                if (!c) {
                    rc = keel_fail(err, KEEL_ELIMIT, "schema has more than %d declarations",
                                   POLICY_SCHEMA_MAX_DECLS);
                    break;
                }
                c->ns = ns;
                c->name = arena_strndup(j.a, cm->key, cm->key_len);
                c->type = t;
                c->line = cm->value->line;
                c->column = cm->value->column;
            }
        }
    }
    if (rc) {
        schema_builder_abandon(&b);
        return rc;
    }
    return schema_build_finish(&b, out, err);
}
