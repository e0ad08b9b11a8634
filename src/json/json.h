/*
 * json.h — Keel's JSON layer: an arena-allocated DOM, a strict RFC 8259
 * parser, a writer (compact, pretty, and RFC 8785 canonical), JSON Pointer,
 * and value equality as JSON Schema defines it.
 *
 * Why it is ours: ARCHITECTURE.md ("Keel owns its JSON layer").
 *
 * Ownership: every json_value lives in a struct arena given by the caller;
 * nothing here calls free on a value.  Strings in the DOM are NUL-terminated
 * copies in the arena (they may contain embedded NULs from \u0000; use len).
 *
 * Numbers keep their source text, so integers beyond 2^53 and decimals like
 * 0.1 stay exact: json_number_cmp compares the decimal values exactly, and
 * the writer re-emits the text as parsed (canonical output re-formats per
 * RFC 8785 instead).
 */
#ifndef KEEL_JSON_H
#define KEEL_JSON_H

#include "../util/util.h"

enum json_type {
    JSON_NULL = 0,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
};

struct json_member;

/* Flags on numbers. */
#define JSON_NUM_INT 1u  /* the value is mathematically an integer (1, 1.0, 1e2) */
#define JSON_NUM_I64 2u  /* ... and fits in int64_t (then .i is exact)          */

struct json_value {
    uint8_t type;     /* enum json_type */
    uint8_t nflags;   /* JSON_NUM_* for numbers */
    uint32_t len;     /* string bytes, array items, object members */
    uint32_t cap;     /* allocated items/members (builders grow it) */
    int line, column; /* where the value starts in the source (1-based); 0 if built */
    union {
        struct {
            const char *str; /* NUL-terminated, len bytes */
        } s;
        struct {
            const char *text; /* the number's JSON text (NUL-terminated)   */
            double d;         /* nearest double                            */
            int64_t i;        /* exact value when nflags & JSON_NUM_I64    */
        } n;
        struct json_value **items;   /* arrays: len pointers */
        struct json_member *members; /* objects: len members, in source order */
    } u;
};

struct json_member {
    const char *key; /* NUL-terminated, key_len bytes */
    uint32_t key_len;
    struct json_value *value;
};

/* ---- parsing ----------------------------------------------------------- */

enum json_dup_policy {
    JSON_DUP_ERROR = 0, /* default: a duplicate key is a parse error (positioned) */
    JSON_DUP_LAST,      /* keep the last value (as JavaScript's JSON.parse does)  */
};

struct json_parse_opts {
    size_t max_depth;  /* nesting limit; 0 means the default 512             */
    size_t max_size;   /* input size limit in bytes; 0 means 64 MiB           */
    enum json_dup_policy dup;
    const char *file;  /* for error positions, may be NULL                    */
};

/* Parses exactly one JSON text (RFC 8259; UTF-8 validated, BOM rejected,
 * surrounding whitespace allowed).  On success *out is a value in arena a.
 * On failure returns KEEL_EINVAL/KEEL_ELIMIT with err->line/column (and
 * err->file from opts) set; the arena may hold partial garbage, which is
 * freed with the arena.  opts may be NULL. */
int json_parse(struct arena *a, const char *text, size_t len, const struct json_parse_opts *opts,
               struct json_value **out, struct keel_err *err);

/* ---- building ---------------------------------------------------------- */

/* Constructors: return values in arena a.  Strings are copied. */
struct json_value *json_null(struct arena *a);
struct json_value *json_bool(struct arena *a, bool b);
struct json_value *json_int(struct arena *a, int64_t i);
/* d must be finite; written with the shortest round-trip form. */
struct json_value *json_double(struct arena *a, double d);
/* text must be a valid JSON number; returns NULL if it is not. */
struct json_value *json_number_text(struct arena *a, const char *text, size_t len);
struct json_value *json_string(struct arena *a, const char *s, size_t len);
struct json_value *json_cstr(struct arena *a, const char *s);
struct json_value *json_array(struct arena *a);
struct json_value *json_object(struct arena *a);

/* Appends v to array arr. */
void json_array_push(struct arena *a, struct json_value *arr, struct json_value *v);
/* Sets key in obj: replaces the value of an existing key, else appends. */
void json_object_set(struct arena *a, struct json_value *obj, const char *key, size_t key_len,
                     struct json_value *v);
void json_object_setc(struct arena *a, struct json_value *obj, const char *key,
                      struct json_value *v);
/* Removes key; returns true if it was there. */
bool json_object_del(struct json_value *obj, const char *key, size_t key_len);

/* Deep copy of v into arena a (positions kept). */
struct json_value *json_clone(struct arena *a, const struct json_value *v);

/* ---- reading ----------------------------------------------------------- */

/* Member lookup (linear for small objects, hashed for large ones is the
 * implementation's business).  Returns NULL if obj is not an object or has
 * no such key. */
struct json_value *json_get(const struct json_value *obj, const char *key);
struct json_value *json_getn(const struct json_value *obj, const char *key, size_t key_len);
/* Typed helpers: return dflt when missing or of another type. */
const char *json_get_str(const struct json_value *obj, const char *key, const char *dflt);
int64_t json_get_int(const struct json_value *obj, const char *key, int64_t dflt);
bool json_get_bool(const struct json_value *obj, const char *key, bool dflt);

static inline bool json_is(const struct json_value *v, enum json_type t)
{
    return v && v->type == (uint8_t)t;
}
static inline bool json_is_bool(const struct json_value *v)
{
    return v && (v->type == JSON_TRUE || v->type == JSON_FALSE);
}
static inline bool json_is_integer(const struct json_value *v)
{
    return v && v->type == JSON_NUMBER && (v->nflags & JSON_NUM_INT);
}

/* The JSON Schema type name of v: "null", "boolean", "integer" (a number
 * whose value is an integer), "number", "string", "array", "object". */
const char *json_type_name(const struct json_value *v);

/* ---- comparison -------------------------------------------------------- */

/* Exact comparison of two JSON numbers by decimal value (1 == 1.0 == 10e-1,
 * 9007199254740993 != 9007199254740992).  Returns <0, 0, >0. */
int json_number_cmp(const struct json_value *a, const struct json_value *b);
/* Equality as JSON Schema defines it (const, enum, uniqueItems): numbers by
 * value, objects regardless of member order, arrays element-wise. */
bool json_equal(const struct json_value *a, const struct json_value *b);
/* Is the number a an exact multiple of the (positive) number b?  Exact for
 * decimal texts; *ok = false if the computation would exceed the internal
 * precision limit (callers treat that as a validation error). */
bool json_number_is_multiple(const struct json_value *a, const struct json_value *b, bool *ok);

/* ---- writing ----------------------------------------------------------- */

#define JSON_WRITE_PRETTY 1u    /* two-space indentation, one member per line */
#define JSON_WRITE_CANONICAL 2u /* RFC 8785 (JCS): sorted keys by UTF-16 units,
                                   ES6 number form, minimal escaping */
#define JSON_WRITE_ASCII 4u     /* escape every non-ASCII char as \uXXXX */

/* Appends v to out.  Canonical output fails (KEEL_EINVAL) only for numbers
 * that have no IEEE double form (overflow); other writes always succeed. */
int json_write(struct buf *out, const struct json_value *v, unsigned flags,
               struct keel_err *err);
/* Appends s (len bytes) as a JSON string literal with quotes. */
void json_write_string(struct buf *out, const char *s, size_t len);
/* SHA-256 of the canonical form, as hex (the digest Keel binds approvals and
 * the journal hash chain to). */
int json_digest(const struct json_value *v, char out[65], struct keel_err *err);

/* ---- JSON Pointer (RFC 6901) ------------------------------------------- */

/* Resolves pointer ("" is the whole document, "/a/0/b~1c") against root.
 * Returns NULL if the pointer is malformed or names nothing. */
struct json_value *json_pointer_get(const struct json_value *root, const char *pointer);
/* Sets the value at pointer, creating missing object members on the way
 * (not array items; "-" appends to an array).  Fails with KEEL_ENOENT if a
 * parent is missing or of the wrong type. */
int json_pointer_set(struct arena *a, struct json_value *root, const char *pointer,
                     struct json_value *v, struct keel_err *err);
/* Appends one reference token, escaped (~ -> ~0, / -> ~1), with its '/'. */
void json_pointer_append(struct buf *ptr, const char *token, size_t len);

#endif
