/*
 * reduce.c — state reducers: how a value saved into a state key combines
 * with what the key held.  A run's state is fold(journal) with these, so
 * they must be pure and deterministic: same (old, value) -> same result.
 *
 *   replace  value
 *   append   old (array, or [] when unset) + [value]; an array value appends
 *            each of its items
 *   merge    old (object, or {} when unset) with value's members on top
 *            (shallow; value's keys win)
 *   add      old (number, or 0 when unset) + value, computed exactly for
 *            integers that fit int64, else as doubles
 */
#include "workflow.h"

#include <math.h>
#include <string.h>

static const struct {
    const char *name;
    enum workflow_reducer r;
} reducers[] = {
    {"replace", WORKFLOW_REDUCER_REPLACE},
    {"append", WORKFLOW_REDUCER_APPEND},
    {"merge", WORKFLOW_REDUCER_MERGE},
    {"add", WORKFLOW_REDUCER_ADD},
};

/* Returns a static string. */
const char *workflow_reducer_name(enum workflow_reducer r)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(reducers); i++)
        if (reducers[i].r == r) return reducers[i].name;
    return "?";
}

/* Nothing allocated. */
int workflow_reducer_parse(const char *name, enum workflow_reducer *out, struct keel_err *err)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(reducers); i++)
        if (!strcmp(reducers[i].name, name)) {
            *out = reducers[i].r;
            return 0;
        }
    return keel_fail(err, KEEL_EINVAL, "unknown reducer '%s'; use replace, append, merge or add",
                     name);
}

static int append(const struct json_value *old, const struct json_value *value, struct arena *a,
                  struct json_value **out, struct keel_err *err)
{
    if (old && old->type != JSON_ARRAY && old->type != JSON_NULL)
        return keel_fail(err, KEEL_EINVAL, "append: the state value is a %s, not an array",
                         json_type_name(old));
    struct json_value *arr = json_array(a);
    if (old && old->type == JSON_ARRAY)
        for (uint32_t i = 0; i < old->len; i++) json_array_push(a, arr, old->u.items[i]);
    if (value->type == JSON_ARRAY)
        for (uint32_t i = 0; i < value->len; i++) json_array_push(a, arr, value->u.items[i]);
    else
        json_array_push(a, arr, (struct json_value *)value);
    *out = arr;
    return 0;
}

static int merge(const struct json_value *old, const struct json_value *value, struct arena *a,
                 struct json_value **out, struct keel_err *err)
{
    if (old && old->type != JSON_OBJECT && old->type != JSON_NULL)
        return keel_fail(err, KEEL_EINVAL, "merge: the state value is a %s, not an object",
                         json_type_name(old));
    if (value->type != JSON_OBJECT)
        return keel_fail(err, KEEL_EINVAL, "merge: the new value is a %s, not an object",
                         json_type_name(value));
    struct json_value *obj = json_object(a);
    if (old && old->type == JSON_OBJECT)
        for (uint32_t i = 0; i < old->len; i++)
            json_object_set(a, obj, old->u.members[i].key, old->u.members[i].key_len,
                            old->u.members[i].value);
    for (uint32_t i = 0; i < value->len; i++)
        json_object_set(a, obj, value->u.members[i].key, value->u.members[i].key_len,
                        value->u.members[i].value);
    *out = obj;
    return 0;
}

static int add(const struct json_value *old, const struct json_value *value, struct arena *a,
               struct json_value **out, struct keel_err *err)
{
    if (old && old->type != JSON_NUMBER && old->type != JSON_NULL)
        return keel_fail(err, KEEL_EINVAL, "add: the state value is a %s, not a number",
                         json_type_name(old));
    if (value->type != JSON_NUMBER)
        return keel_fail(err, KEEL_EINVAL, "add: the new value is a %s, not a number",
                         json_type_name(value));
    if (!old || old->type == JSON_NULL) {
        *out = (struct json_value *)value;
        return 0;
    }
    if ((old->nflags & JSON_NUM_I64) && (value->nflags & JSON_NUM_I64)) {
        int64_t r;
        if (!__builtin_add_overflow(old->u.n.i, value->u.n.i, &r)) {
            *out = json_int(a, r);
            return 0;
        }
    }
    double d = old->u.n.d + value->u.n.d;
    if (!isfinite(d)) return keel_fail(err, KEEL_EINVAL, "add: the sum overflows");
    *out = json_double(a, d);
    return 0;
}

static int (*const reduce_fns[])(const struct json_value *, const struct json_value *,
                                 struct arena *, struct json_value **, struct keel_err *) = {
    [WORKFLOW_REDUCER_APPEND] = append,
    [WORKFLOW_REDUCER_MERGE] = merge,
    [WORKFLOW_REDUCER_ADD] = add,
};

/* Returns a value in arena a that may share old and value (see workflow.h). */
int workflow_reduce(enum workflow_reducer r, const struct json_value *old,
                    const struct json_value *value, struct arena *a, struct json_value **out,
                    struct keel_err *err)
{
    if (!value) return keel_fail(err, KEEL_EINVAL, "reduce: no value");
    if (r == WORKFLOW_REDUCER_REPLACE) {
        *out = (struct json_value *)value;
        return 0;
    }
    if ((size_t)r >= KEEL_ARRAY_LEN(reduce_fns) || !reduce_fns[r])
        return keel_fail(err, KEEL_EINTERNAL, "unknown reducer %d", (int)r);
    return reduce_fns[r](old, value, a, out, err);
}
