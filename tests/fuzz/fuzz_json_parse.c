/*
 * fuzz_json_parse.c — libFuzzer target for the JSON parser and writer
 * (src/json/).
 *
 * Properties beyond "no crash, no leak, no UB":
 *   - a rejected input has a positioned error (line, column > 0) and a
 *     message, with code KEEL_EINVAL or KEEL_ELIMIT;
 *   - an accepted document written compactly (and pretty) re-parses to a
 *     json_equal document, and compact output is a fixed point;
 *   - json_clone is json_equal to the original;
 *   - canonical output fails only with KEEL_EINVAL (a number without a
 *     double form) and is otherwise a fixed point: canonical(parse(c)) == c;
 *   - JSON Pointer: "" is the root; every array item "/i" and every object
 *     member (its key escaped with json_pointer_append) resolves to itself;
 *     a few fixed pointers resolve or not without harm.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"

static void check(int cond)
{
    if (!cond) abort();
}

/* Parses out[0..len) (must succeed) into arena a. */
static struct json_value *reparse(struct arena *a, const struct buf *out)
{
    struct json_value *v = NULL;
    struct keel_err err;
    check(json_parse(a, out->data, out->len, NULL, &v, &err) == 0);
    return v;
}

static void check_pointers(const struct json_value *v)
{
    check(json_pointer_get(v, "") == v);
    struct buf ptr;
    buf_init(&ptr);
    uint32_t n = v->len < 64 ? v->len : 64;
    for (uint32_t i = 0; i < n; i++) {
        buf_reset(&ptr);
        if (v->type == JSON_ARRAY) {
            buf_printf(&ptr, "/%u", (unsigned)i);
            check(json_pointer_get(v, ptr.data) == v->u.items[i]);
        } else if (v->type == JSON_OBJECT && !memchr(v->u.members[i].key, 0,
                                                     v->u.members[i].key_len)) {
            json_pointer_append(&ptr, v->u.members[i].key, v->u.members[i].key_len);
            check(json_pointer_get(v, ptr.data) == v->u.members[i].value);
        }
    }
    static const char *const fixed[] = {"/0", "/a", "/0/0", "/-", "/~0~1", "/a/b/c", "/", "~",
                                        "/~2", "/00", "/1e0"};
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++) (void)json_pointer_get(v, fixed[k]);
    buf_cleanup(&ptr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    struct json_parse_opts opts = {.max_depth = 256};
    int rc = json_parse(&a, (const char *)data, size, &opts, &v, &err);
    if (rc != 0) {
        check(rc == KEEL_EINVAL || rc == KEEL_ELIMIT);
        check(err.line > 0 && err.column > 0 && err.msg[0]);
        arena_cleanup(&a);
        return 0;
    }
    check(v != NULL);

    struct buf c1, c2, pretty, can1, can2;
    buf_init(&c1);
    buf_init(&c2);
    buf_init(&pretty);
    buf_init(&can1);
    buf_init(&can2);

    /* compact round trip and fixed point */
    check(json_write(&c1, v, 0, &err) == 0);
    struct json_value *w = reparse(&a, &c1);
    check(json_equal(v, w) && json_equal(w, v));
    check(json_write(&c2, w, 0, &err) == 0);
    check(c1.len == c2.len && memcmp(c1.data, c2.data, c1.len) == 0);

    /* pretty and ASCII-only output re-parse to the same document */
    check(json_write(&pretty, v, JSON_WRITE_PRETTY | JSON_WRITE_ASCII, &err) == 0);
    check(json_equal(v, reparse(&a, &pretty)));

    check(json_equal(v, json_clone(&a, v)));

    /* canonical: fails cleanly or is a fixed point */
    rc = json_write(&can1, v, JSON_WRITE_CANONICAL, &err);
    check(rc == 0 || rc == KEEL_EINVAL);
    if (rc == 0) {
        struct json_value *cv = reparse(&a, &can1);
        check(json_write(&can2, cv, JSON_WRITE_CANONICAL, &err) == 0);
        check(can1.len == can2.len && memcmp(can1.data, can2.data, can1.len) == 0);
        char hex[65];
        check(json_digest(v, hex, &err) == 0 && strlen(hex) == 64);
    }

    check_pointers(v);

    buf_cleanup(&c1);
    buf_cleanup(&c2);
    buf_cleanup(&pretty);
    buf_cleanup(&can1);
    buf_cleanup(&can2);
    arena_cleanup(&a);
    return 0;
}
