/*
 * value.c — building, reading, copying and comparing JSON values.
 *
 * Invariants of a struct json_value (the parser and these builders keep
 * them; code elsewhere may rely on them):
 *   - strings: u.s.str has len bytes and a NUL after them;
 *   - numbers: u.n.text is a valid JSON number text; nflags and i follow
 *     from it (json_num_classify), d is its nearest double;
 *   - arrays/objects: len <= cap; items/members hold cap slots in the same
 *     arena (parsed values have cap == len, so the first push copies);
 *   - objects have no two members with the same key (the parser rejects or
 *     merges duplicates, json_object_set replaces).
 * Values are never freed one by one: growth leaves the old slots in the
 * arena.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct json_value *new_value(struct arena *a, enum json_type t)
{
    struct json_value *v = json_alloc(a, sizeof *v);
    memset(v, 0, sizeof *v);
    v->type = (uint8_t)t;
    return v;
}

struct json_value *json_null(struct arena *a)
{
    return new_value(a, JSON_NULL);
}

struct json_value *json_bool(struct arena *a, bool b)
{
    return new_value(a, b ? JSON_TRUE : JSON_FALSE);
}

struct json_value *json_int(struct arena *a, int64_t i)
{
    struct json_value *v = new_value(a, JSON_NUMBER);
    char tmp[24];
    v->u.n.text = arena_strndup(a, tmp, keel_i64_text(tmp, i));
    v->u.n.i = i;
    v->u.n.d = (double)i;
    v->nflags = JSON_NUM_INT | JSON_NUM_I64;
    return v;
}

/* Non-finite d has no JSON form; like JSON.stringify, it becomes null. */
struct json_value *json_double(struct arena *a, double d)
{
    if (!isfinite(d)) return json_null(a);
    struct json_value *v = new_value(a, JSON_NUMBER);
    char tmp[40];
    size_t n = json_format_double(d, tmp);
    v->u.n.text = arena_strndup(a, tmp, n);
    v->u.n.d = d == 0 ? 0.0 : d;
    json_num_classify(v);
    return v;
}

struct json_value *json_number_text(struct arena *a, const char *text, size_t len)
{
    if (!text || len == 0 || json_num_scan(text, len) != len) return NULL;
    struct json_value *v = new_value(a, JSON_NUMBER);
    char *t = arena_strndup(a, text, len);
    v->u.n.text = t;
    v->u.n.d = json_num_to_double(t, len);
    json_num_classify(v);
    return v;
}

struct json_value *json_string(struct arena *a, const char *s, size_t len)
{
    struct json_value *v = new_value(a, JSON_STRING);
    if (len > UINT32_MAX - 1) len = UINT32_MAX - 1; /* the DOM's limit */
    v->u.s.str = arena_strndup(a, s, len);
    v->len = (uint32_t)len;
    return v;
}

struct json_value *json_cstr(struct arena *a, const char *s)
{
    return json_string(a, s, strlen(s));
}

struct json_value *json_array(struct arena *a)
{
    return new_value(a, JSON_ARRAY);
}

struct json_value *json_object(struct arena *a)
{
    return new_value(a, JSON_OBJECT);
}

/* Makes room for one more slot of size elem in *slots (len used, *cap
 * allocated), copying into a fresh arena block twice as large. */
static void grow(struct arena *a, void **slots, uint32_t len, uint32_t *cap, size_t elem)
{
    if (len < *cap) return;
    uint32_t ncap = *cap ? *cap * 2 : 4;
    if (*cap > UINT32_MAX / 2) abort(); /* 2^31 items: far beyond any input cap */
    void *p = json_alloc(a, (size_t)ncap * elem);
    if (len) memcpy(p, *slots, (size_t)len * elem);
    *slots = p;
    *cap = ncap;
}

void json_array_push(struct arena *a, struct json_value *arr, struct json_value *v)
{
    if (!json_is(arr, JSON_ARRAY) || !v) return;
    void *slots = arr->u.items;
    grow(a, &slots, arr->len, &arr->cap, sizeof(struct json_value *));
    arr->u.items = slots;
    arr->u.items[arr->len++] = v;
}

static struct json_member *find_member(const struct json_value *obj, const char *key, size_t n)
{
    for (uint32_t i = 0; i < obj->len; i++) {
        struct json_member *m = &obj->u.members[i];
        if (m->key_len == n && memcmp(m->key, key, n) == 0) return m;
    }
    return NULL;
}

void json_object_set(struct arena *a, struct json_value *obj, const char *key, size_t key_len,
                     struct json_value *v)
{
    if (!json_is(obj, JSON_OBJECT) || !v || !key) return;
    struct json_member *m = find_member(obj, key, key_len);
    if (m) {
        m->value = v;
        return;
    }
    if (key_len > UINT32_MAX - 1) return;
    void *slots = obj->u.members;
    grow(a, &slots, obj->len, &obj->cap, sizeof(struct json_member));
    obj->u.members = slots;
    m = &obj->u.members[obj->len++];
    m->key = arena_strndup(a, key, key_len);
    m->key_len = (uint32_t)key_len;
    m->value = v;
}

void json_object_setc(struct arena *a, struct json_value *obj, const char *key,
                      struct json_value *v)
{
    if (key) json_object_set(a, obj, key, strlen(key), v);
}

bool json_object_del(struct json_value *obj, const char *key, size_t key_len)
{
    if (!json_is(obj, JSON_OBJECT) || !key) return false;
    struct json_member *m = find_member(obj, key, key_len);
    if (!m) return false;
    size_t at = (size_t)(m - obj->u.members);
    memmove(m, m + 1, (obj->len - at - 1) * sizeof *m);
    obj->len--;
    return true;
}

struct json_value *json_clone(struct arena *a, const struct json_value *v)
{
    if (!v) return NULL;
    struct json_value *c = json_alloc(a, sizeof *c);
    *c = *v;
    switch (v->type) {
    case JSON_STRING:
        c->u.s.str = arena_strndup(a, v->u.s.str, v->len);
        break;
    case JSON_NUMBER:
        c->u.n.text = arena_strdup(a, v->u.n.text);
        break;
    case JSON_ARRAY:
        c->cap = v->len;
        c->u.items = v->len ? json_alloc(a, v->len * sizeof *c->u.items) : NULL;
        for (uint32_t i = 0; i < v->len; i++) c->u.items[i] = json_clone(a, v->u.items[i]);
        break;
    case JSON_OBJECT:
        c->cap = v->len;
        c->u.members = v->len ? json_alloc(a, v->len * sizeof *c->u.members) : NULL;
        for (uint32_t i = 0; i < v->len; i++) {
            const struct json_member *m = &v->u.members[i];
            c->u.members[i].key = arena_strndup(a, m->key, m->key_len);
            c->u.members[i].key_len = m->key_len;
            c->u.members[i].value = json_clone(a, m->value);
        }
        break;
    default:
        break;
    }
    return c;
}

/* ---- reading ------------------------------------------------------------- */

struct json_value *json_getn(const struct json_value *obj, const char *key, size_t key_len)
{
    if (!json_is(obj, JSON_OBJECT) || !key) return NULL;
    struct json_member *m = find_member(obj, key, key_len);
    return m ? m->value : NULL;
}

struct json_value *json_get(const struct json_value *obj, const char *key)
{
    return key ? json_getn(obj, key, strlen(key)) : NULL;
}

const char *json_get_str(const struct json_value *obj, const char *key, const char *dflt)
{
    struct json_value *v = json_get(obj, key);
    return json_is(v, JSON_STRING) ? v->u.s.str : dflt;
}

int64_t json_get_int(const struct json_value *obj, const char *key, int64_t dflt)
{
    struct json_value *v = json_get(obj, key);
    return json_is(v, JSON_NUMBER) && (v->nflags & JSON_NUM_I64) ? v->u.n.i : dflt;
}

bool json_get_bool(const struct json_value *obj, const char *key, bool dflt)
{
    struct json_value *v = json_get(obj, key);
    return json_is_bool(v) ? v->type == JSON_TRUE : dflt;
}

const char *json_type_name(const struct json_value *v)
{
    static const char *const names[] = {
        [JSON_NULL] = "null",     [JSON_FALSE] = "boolean", [JSON_TRUE] = "boolean",
        [JSON_NUMBER] = "number", [JSON_STRING] = "string", [JSON_ARRAY] = "array",
        [JSON_OBJECT] = "object",
    };
    if (!v || v->type >= KEEL_ARRAY_LEN(names)) return "undefined";
    if (json_is_integer(v)) return "integer";
    return names[v->type];
}

bool json_equal(const struct json_value *a, const struct json_value *b)
{
    if (a == b) return true;
    if (!a || !b || a->type != b->type) return false;
    switch (a->type) {
    case JSON_NUMBER:
        return json_number_cmp(a, b) == 0;
    case JSON_STRING:
        return a->len == b->len && memcmp(a->u.s.str, b->u.s.str, a->len) == 0;
    case JSON_ARRAY:
        if (a->len != b->len) return false;
        for (uint32_t i = 0; i < a->len; i++)
            if (!json_equal(a->u.items[i], b->u.items[i])) return false;
        return true;
    case JSON_OBJECT:
        if (a->len != b->len) return false;
        for (uint32_t i = 0; i < a->len; i++) {
            const struct json_member *m = &a->u.members[i];
            /* Same position first: objects often share member order. */
            const struct json_member *o = &b->u.members[i];
            if (!(o->key_len == m->key_len && memcmp(o->key, m->key, m->key_len) == 0))
                o = find_member(b, m->key, m->key_len);
            if (!o || !json_equal(m->value, o->value)) return false;
        }
        return true;
    default:
        return true; /* null, false, true: the type is the value */
    }
}

/* ---- UTF-8 --------------------------------------------------------------- */

int json_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2) return 0; /* continuation byte or overlong 2-byte lead */
    if (c < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        uint32_t u = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (u < 0x800 || (u >= 0xD800 && u <= 0xDFFF)) return 0;
        *cp = u;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        uint32_t u = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                     ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (u < 0x10000 || u > 0x10FFFF) return 0;
        *cp = u;
        return 4;
    }
    return 0;
}
