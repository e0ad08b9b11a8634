/*
 * validate_request.c — requests and entity data checked against a schema,
 * as Cedar does before authorizing with a schema ("request validation" and
 * "entity conformance").
 *
 * A request conforms when its action is declared and applies to requests
 * (has appliesTo), its principal and resource types are among the action's
 * principal/resource types (with a valid id when the type is enumerated),
 * and its context is a value of the action's context record type.
 *
 * An entity conforms when its type is declared (or it is an action the
 * schema declares), its id is valid for an enumerated type, its attributes
 * are exactly the declared ones (optional ones may be missing) with values
 * of the declared types, each parent has a type the entity type lists in
 * its memberOfTypes, and its tags (if any) have the declared tag type.
 *
 * Values conform structurally: records are closed, sets are homogeneous in
 * the element type, entity references must name the declared entity type,
 * extension values the declared extension type.  The first problem found is
 * reported with a dotted path to it ("context.photo.size", "attrs.owner").
 */
#include "internal.h"

#include "../json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_MAX_DEPTH 64

static const char *const value_kind_names[] = {
    [POLICY_BOOL] = "a Bool",          [POLICY_LONG] = "a Long",
    [POLICY_STRING] = "a String",      [POLICY_ENTITY] = "an entity reference",
    [POLICY_SET] = "a set",            [POLICY_RECORD] = "a record",
    [POLICY_DECIMAL] = "a decimal",    [POLICY_IPADDR] = "an ipaddr",
    [POLICY_DATETIME] = "a datetime",  [POLICY_DURATION] = "a duration",
};

/* Extension type names by value type. */
static const char *ext_name(int value_type)
{
    switch (value_type) {
    case POLICY_DECIMAL:
        return "decimal";
    case POLICY_IPADDR:
        return "ipaddr";
    case POLICY_DATETIME:
        return "datetime";
    case POLICY_DURATION:
        return "duration";
    }
    return NULL;
}

static const char *kind_name(int t)
{
    if (t >= 0 && (size_t)t < KEEL_ARRAY_LEN(value_kind_names) && value_kind_names[t])
        return value_kind_names[t];
    return "a value";
}

static int mismatch(struct keel_err *err, const char *path, const struct policy_type *want,
                    const struct policy_value *got)
{
    struct buf b;
    buf_init(&b);
    policy_type_format(&b, want);
    int rc = keel_fail(err, KEEL_EINVAL, "%s: expected a value of type %s, found %s", path,
                       b.data ? b.data : "?", kind_name(got->type));
    buf_cleanup(&b);
    if (err) snprintf(err->path, sizeof err->path, "%s", path);
    return rc;
}

static bool enum_ok(const struct policy_schema *s, const struct policy_euid *e)
{
    const struct policy_entity_type *et = policy_schema_entity(s, e->type);
    return !et || !et->is_enum || policy_schema_enum_has(et, e->id, e->id_len);
}

static int conforms(const struct policy_schema *s, const struct policy_value *v,
                    const struct policy_type *t, struct buf *path, int depth,
                    struct keel_err *err);

static int record_conforms(const struct policy_schema *s, const struct policy_record *rec,
                           const struct policy_type *t, struct buf *path, int depth,
                           struct keel_err *err)
{
    size_t base = path->len;
    for (size_t i = 0; i < t->nattrs; i++) {
        const struct policy_attr *at = &t->attrs[i];
        const struct policy_value *v = policy_record_get(rec, at->name, at->name_len);
        if (!v) {
            if (!at->required) continue;
            int rc = keel_fail(err, KEEL_EINVAL,
                               "%s: required attribute '%s' is missing; add it (the schema "
                               "declares it without '?')",
                               path->data, at->name);
            if (err) snprintf(err->path, sizeof err->path, "%s", path->data);
            return rc;
        }
        buf_printf(path, ".%.*s", (int)at->name_len, at->name);
        int rc = conforms(s, v, at->type, path, depth + 1, err);
        path->len = base;
        path->data[base] = 0;
        if (rc) return rc;
    }
    for (uint32_t i = 0; i < rec->len; i++) {
        const struct policy_field *f = &rec->fields[i];
        if (!policy_type_attr(t, f->key, f->key_len)) {
            int rc = keel_fail(err, KEEL_EINVAL,
                               "%s: attribute '%.*s' is not declared in the schema; remove it "
                               "or declare it",
                               path->data, (int)f->key_len, f->key);
            if (err) snprintf(err->path, sizeof err->path, "%s", path->data);
            return rc;
        }
    }
    return 0;
}

static int conforms(const struct policy_schema *s, const struct policy_value *v,
                    const struct policy_type *t, struct buf *path, int depth,
                    struct keel_err *err)
{
    if (depth > PATH_MAX_DEPTH)
        return keel_fail(err, KEEL_ELIMIT, "%s: value nests deeper than %d levels", path->data,
                         PATH_MAX_DEPTH);
    switch (t->kind) {
    case POLICY_T_BOOL:
        return v->type == POLICY_BOOL ? 0 : mismatch(err, path->data, t, v);
    case POLICY_T_LONG:
        return v->type == POLICY_LONG ? 0 : mismatch(err, path->data, t, v);
    case POLICY_T_STRING:
        return v->type == POLICY_STRING ? 0 : mismatch(err, path->data, t, v);
    case POLICY_T_EXT: {
        const char *n = ext_name(v->type);
        return n && strcmp(n, t->name) == 0 ? 0 : mismatch(err, path->data, t, v);
    }
    case POLICY_T_ENTITY:
        if (v->type != POLICY_ENTITY || strcmp(v->u.entity->type, t->name) != 0)
            return mismatch(err, path->data, t, v);
        if (!enum_ok(s, v->u.entity))
            return keel_fail(err, KEEL_EINVAL,
                             "%s: \"%s\" is not an id of enumerated entity type %s", path->data,
                             v->u.entity->id, t->name);
        return 0;
    case POLICY_T_SET: {
        if (v->type != POLICY_SET) return mismatch(err, path->data, t, v);
        size_t base = path->len;
        for (uint32_t i = 0; i < v->u.set->len; i++) {
            buf_printf(path, "[%u]", i);
            int rc = conforms(s, &v->u.set->items[i], t->elem, path, depth + 1, err);
            path->len = base;
            path->data[base] = 0;
            if (rc) return rc;
        }
        return 0;
    }
    case POLICY_T_RECORD:
        if (v->type != POLICY_RECORD) return mismatch(err, path->data, t, v);
        return record_conforms(s, v->u.rec, t, path, depth, err);
    }
    return mismatch(err, path->data, t, v);
}

static bool listed(const char *const *types, size_t n, const char *type)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(types[i], type) == 0) return true;
    return false;
}

int policy_validate_request(const struct policy_schema *schema,
                            const struct policy_request *r, struct keel_err *err)
{
    const struct policy_action *a =
        policy_schema_action_n(schema, r->action.type, r->action.id, r->action.id_len);
    if (!a)
        return keel_fail(err, KEEL_EINVAL,
                         "request action %s::\"%s\" is not declared in the schema", r->action.type,
                         r->action.id);
    if (!a->applies)
        return keel_fail(err, KEEL_EINVAL,
                         "action %s::\"%s\" has no appliesTo in the schema, so no request may "
                         "use it",
                         a->uid.type, a->uid.id);
    static const char *const roles[] = {"principal", "resource"};
    const struct policy_euid *uids[] = {&r->principal, &r->resource};
    const char *const *types[] = {a->principals, a->resources};
    size_t ntypes[] = {a->nprincipals, a->nresources};
    for (int i = 0; i < 2; i++) {
        if (!listed(types[i], ntypes[i], uids[i]->type)) {
            struct buf b;
            buf_init(&b);
            for (size_t k = 0; k < ntypes[i]; k++)
                buf_printf(&b, "%s%s", k ? ", " : "", types[i][k]);
            int rc = keel_fail(err, KEEL_EINVAL,
                               "request %s has type %s, but action \"%s\" applies to %s types "
                               "[%s]",
                               roles[i], uids[i]->type, a->uid.id, roles[i],
                               b.data ? b.data : "");
            buf_cleanup(&b);
            return rc;
        }
        if (!enum_ok(schema, uids[i]))
            return keel_fail(err, KEEL_EINVAL,
                             "request %s %s::\"%s\" is not one of the ids of its enumerated "
                             "entity type",
                             roles[i], uids[i]->type, uids[i]->id);
    }
    struct buf path;
    buf_init(&path);
    buf_puts(&path, "context");
    int rc = record_conforms(schema, &r->context, a->context, &path, 0, err);
    buf_cleanup(&path);
    return rc;
}

/* Cedar checks ancestors against the transitive closure of memberOfTypes:
 * a User (in [Group]) may name an Org (Group in [Org]) as a parent. */
static bool may_be_parent(const struct policy_schema *s, const struct policy_entity_type *et,
                          const char *parent_type)
{
    for (size_t i = 0; i < et->nparents; i++)
        if (policy_schema_entity_descends(s, et->parents[i], parent_type)) return true;
    return false;
}

/* An action in entity data must be exactly the schema's: no attributes or
 * tags, only action parents, and the same (transitive) action groups. */
static int action_conforms(const struct policy_schema *s, const struct policy_entities *es,
                           const struct policy_entity *e, const struct policy_action *a,
                           struct keel_err *err)
{
    const struct policy_euid *u = &e->uid;
    if (e->attrs.len || e->tags.len)
        return keel_fail(err, KEEL_EINVAL,
                         "action entity %s::\"%s\" has attributes or tags; actions have none",
                         u->type, u->id);
    const struct policy_action **dp = NULL;
    size_t ndp = 0;
    int rc = 0;
    if (e->nparents) dp = calloc(e->nparents, sizeof *dp);
    for (uint32_t i = 0; i < e->nparents && rc == 0; i++) {
        const struct policy_entity *p = policy_entities_at(es, e->parents[i]);
        if (!p) continue;
        const struct policy_action *pa =
            policy_schema_action_n(s, p->uid.type, p->uid.id, p->uid.id_len);
        if (!pa)
            rc = keel_fail(err, KEEL_EINVAL,
                           "action entity %s::\"%s\" has parent %s::\"%s\", which is not an "
                           "action the schema declares",
                           u->type, u->id, p->uid.type, p->uid.id);
        else
            dp[ndp++] = pa;
    }
    for (size_t b = 0; b < s->nactions && rc == 0; b++) {
        const struct policy_action *g = &s->actions[b];
        if (g == a) continue;
        bool declared = policy_schema_action_descends(s, a, g);
        bool in_data = false;
        for (size_t k = 0; k < ndp && !in_data; k++)
            in_data = policy_schema_action_descends(s, dp[k], g);
        if (declared != in_data)
            rc = keel_fail(err, KEEL_EINVAL,
                           "action entity %s::\"%s\" does not match its schema declaration: "
                           "the schema %s it in action group \"%s\"; list the same parents "
                           "as the schema or leave actions out of entity data",
                           u->type, u->id, declared ? "puts" : "does not put", g->uid.id);
    }
    free(dp);
    return rc;
}

static int entity_conforms(const struct policy_schema *schema, const struct policy_entities *es,
                           const struct policy_entity *e, struct keel_err *err)
{
    const struct policy_euid *u = &e->uid;
    const struct policy_entity_type *et = policy_schema_entity(schema, u->type);
    struct buf path;
    buf_init(&path);
    int rc = 0;
    if (!et) {
        const struct policy_action *a = policy_schema_action_n(schema, u->type, u->id, u->id_len);
        if (!a)
            rc = keel_fail(err, KEEL_EINVAL,
                           policy_schema_is_action_type(schema, u->type)
                               ? "entity %s::\"%s\" is an action the schema does not declare"
                               : "entity %s::\"%s\" has a type the schema does not declare",
                           u->type, u->id);
        else
            rc = action_conforms(schema, es, e, a, err);
        goto done;
    }
    if (!enum_ok(schema, u)) {
        rc = keel_fail(err, KEEL_EINVAL,
                       "entity %s::\"%s\": the id is not one of the ids of enumerated entity "
                       "type %s",
                       u->type, u->id, u->type);
        goto done;
    }
    buf_printf(&path, "%s::\"%s\" attrs", u->type, u->id);
    rc = record_conforms(schema, &e->attrs, et->shape, &path, 0, err);
    if (rc) goto done;
    for (uint32_t i = 0; i < e->nparents; i++) {
        const struct policy_entity *p = policy_entities_at(es, e->parents[i]);
        if (!p) continue;
        if (!may_be_parent(schema, et, p->uid.type)) {
            rc = keel_fail(err, KEEL_EINVAL,
                           "entity %s::\"%s\" has parent %s::\"%s\", but entity type %s may "
                           "not be a member of %s (add it to memberOfTypes / `in [...]`)",
                           u->type, u->id, p->uid.type, p->uid.id, u->type, p->uid.type);
            goto done;
        }
    }
    if (e->tags.len) {
        if (!et->tags) {
            rc = keel_fail(err, KEEL_EINVAL,
                           "entity %s::\"%s\" has tags, but entity type %s declares none",
                           u->type, u->id, u->type);
            goto done;
        }
        for (uint32_t i = 0; i < e->tags.len; i++) {
            buf_reset(&path);
            buf_printf(&path, "%s::\"%s\" tags.%.*s", u->type, u->id,
                       (int)e->tags.fields[i].key_len, e->tags.fields[i].key);
            rc = conforms(schema, &e->tags.fields[i].value, et->tags, &path, 0, err);
            if (rc) goto done;
        }
    }
done:
    buf_cleanup(&path);
    return rc;
}

int policy_validate_entities(const struct policy_schema *schema,
                             const struct policy_entities *entities, struct keel_err *err)
{
    size_t n = policy_entities_count(entities);
    for (size_t i = 0; i < n; i++) {
        const struct policy_entity *e = policy_entities_at(entities, i);
        if (!e || !e->present) continue;
        int rc = entity_conforms(schema, entities, e, err);
        if (rc) return rc;
    }
    return 0;
}

int policy_validate_request_json(const struct policy_schema *schema,
                                 const struct json_value *request, struct keel_err *err)
{
    struct arena a;
    arena_init(&a);
    struct policy_request r;
    int rc = policy_request_from_json(&a, request, schema, &r, err);
    if (rc == 0) rc = policy_validate_request(schema, &r, err);
    arena_cleanup(&a);
    return rc;
}

int policy_validate_entities_json(const struct policy_schema *schema,
                                  const struct json_value *entities, struct keel_err *err)
{
    struct policy_entities *es;
    int rc = policy_entities_parse_json(entities, schema, &es, err);
    if (rc) return rc;
    rc = policy_validate_entities(schema, es, err);
    policy_entities_free(es);
    return rc;
}
