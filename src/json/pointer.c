/*
 * pointer.c — JSON Pointer (RFC 6901): resolve, set, and build pointers.
 *
 * A pointer is "" (the whole document) or a sequence of "/token".  In a
 * token "~0" stands for '~' and "~1" for '/'; any other '~' makes the
 * pointer malformed.  Array indexes are "0" or a decimal without leading
 * zeros; "-" names the position after the last item (only json_pointer_set
 * accepts it, to append).
 *
 * Tokens are unescaped into a small stack buffer, or a heap buffer when a
 * token is long; nothing is allocated in the arena unless a value is set.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct token {
    char small[128];
    char *s;     /* small or heap */
    size_t len;
};

static void token_cleanup(struct token *t)
{
    if (t->s != t->small) free(t->s);
    t->s = t->small;
}

/* Decodes the token starting at p (after its '/'); returns the end of the
 * token (at '/' or NUL) or NULL if it holds a bad '~' escape. */
static const char *next_token(const char *p, struct token *t)
{
    const char *e = p;
    while (*e && *e != '/') e++;
    size_t n = (size_t)(e - p);
    token_cleanup(t);
    if (n >= sizeof t->small) {
        t->s = malloc(n + 1);
        if (!t->s) abort();
    }
    size_t k = 0;
    for (const char *q = p; q < e; q++) {
        if (*q != '~') {
            t->s[k++] = *q;
            continue;
        }
        if (q + 1 < e && q[1] == '0') t->s[k++] = '~';
        else if (q + 1 < e && q[1] == '1') t->s[k++] = '/';
        else return NULL;
        q++;
    }
    t->s[k] = '\0';
    t->len = k;
    return e;
}

/* Parses an array index token; returns false if it is not one. */
static bool parse_index(const struct token *t, uint32_t *out)
{
    if (t->len == 0 || t->len > 10 || (t->s[0] == '0' && t->len > 1)) return false;
    uint64_t n = 0;
    for (size_t i = 0; i < t->len; i++) {
        if (t->s[i] < '0' || t->s[i] > '9') return false;
        n = n * 10 + (uint64_t)(t->s[i] - '0');
    }
    if (n > UINT32_MAX) return false;
    *out = (uint32_t)n;
    return true;
}

/* The child of v named by t, or NULL. */
static struct json_value *child(const struct json_value *v, const struct token *t)
{
    if (json_is(v, JSON_OBJECT)) return json_getn(v, t->s, t->len);
    uint32_t i;
    if (json_is(v, JSON_ARRAY) && parse_index(t, &i) && i < v->len) return v->u.items[i];
    return NULL;
}

struct json_value *json_pointer_get(const struct json_value *root, const char *pointer)
{
    if (!root || !pointer) return NULL;
    if (*pointer && *pointer != '/') return NULL;
    struct token t = {.s = NULL};
    t.s = t.small;
    const struct json_value *v = root;
    const char *p = pointer;
    while (v && *p == '/') {
        p = next_token(p + 1, &t);
        if (!p) {
            v = NULL;
            break;
        }
        v = child(v, &t);
    }
    token_cleanup(&t);
    return (struct json_value *)v;
}

int json_pointer_set(struct arena *a, struct json_value *root, const char *pointer,
                     struct json_value *v, struct keel_err *err)
{
    if (!root || !pointer || !v)
        return keel_fail(err, KEEL_EINVAL, "json_pointer_set: root, pointer and value are required");
    if (*pointer == '\0') {
        *root = *v; /* the whole document: replace root in place */
        return 0;
    }
    if (*pointer != '/')
        return keel_fail(err, KEEL_EINVAL,
                         "malformed JSON Pointer \"%.200s\": it must be empty or start with '/'",
                         pointer);
    struct token t;
    t.s = t.small;
    struct json_value *cur = root;
    const char *p = pointer;
    int rc = 0;
    for (;;) {
        const char *tok = p + 1;
        p = next_token(tok, &t);
        if (!p) {
            rc = keel_fail(err, KEEL_EINVAL,
                           "malformed JSON Pointer \"%.200s\": '~' must be followed by 0 or 1",
                           pointer);
            break;
        }
        bool last = *p == '\0';
        if (json_is(cur, JSON_OBJECT)) {
            if (last) {
                json_object_set(a, cur, t.s, t.len, v);
                break;
            }
            struct json_value *next = json_getn(cur, t.s, t.len);
            if (!next) {
                next = json_object(a);
                json_object_set(a, cur, t.s, t.len, next);
            }
            cur = next;
            continue;
        }
        if (json_is(cur, JSON_ARRAY)) {
            uint32_t i;
            bool append = t.len == 1 && t.s[0] == '-';
            if (!append && !parse_index(&t, &i)) {
                rc = keel_fail(err, KEEL_ENOENT,
                               "JSON Pointer \"%.200s\": \"%.100s\" is not an array index",
                               pointer, t.s);
                break;
            }
            if (last) {
                if (append || i == cur->len) json_array_push(a, cur, v);
                else if (i < cur->len) cur->u.items[i] = v;
                else
                    rc = keel_fail(err, KEEL_ENOENT,
                                   "JSON Pointer \"%.200s\": index %u is past the end of an "
                                   "array of %u items",
                                   pointer, i, cur->len);
                break;
            }
            if (append || i >= cur->len) {
                rc = keel_fail(err, KEEL_ENOENT,
                               "JSON Pointer \"%.200s\": no array item \"%.100s\" (the array "
                               "has %u items)",
                               pointer, t.s, cur->len);
                break;
            }
            cur = cur->u.items[i];
            continue;
        }
        rc = keel_fail(err, KEEL_ENOENT,
                       "JSON Pointer \"%.200s\": cannot go into a %s at \"%.*s\"", pointer,
                       json_type_name(cur), (int)(tok - 1 - pointer), pointer);
        break;
    }
    token_cleanup(&t);
    return rc;
}

void json_pointer_append(struct buf *ptr, const char *token, size_t len)
{
    buf_putc(ptr, '/');
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        char c = token[i];
        if (c != '~' && c != '/') continue;
        buf_append(ptr, token + run, i - run);
        buf_append(ptr, c == '~' ? "~0" : "~1", 2);
        run = i + 1;
    }
    buf_append(ptr, token + run, len - run);
}
