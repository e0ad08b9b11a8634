/*
 * fuzz_schema_validate.c — libFuzzer target for the schema compiler and
 * validator.  Input: a schema JSON text, a NUL byte, an instance JSON text
 * (without a NUL the input is both schema and instance).  Whatever the
 * bytes, compilation must succeed or fail with an error, and validation
 * must return a verdict whose error list agrees with it — no crash, no
 * leak, bounded time (depth, regex and size limits do the bounding) — and
 * a lazy result (errors rendered only when read) must read exactly as an
 * eager one, in both the every-error and the first-error mode.
 */
#include "schema/schema.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct schema_registry *reg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16)) return 0;
    if (!reg) reg = schema_registry_new();
    const char *text = (const char *)data;
    const char *nul = memchr(text, 0, size);
    size_t slen = nul ? (size_t)(nul - text) : size;
    const char *itext = nul ? nul + 1 : text;
    size_t ilen = nul ? size - slen - 1 : size;
    struct arena a;
    arena_init(&a);
    struct json_value *sdoc, *inst;
    struct json_parse_opts po = {.max_depth = 256};
    if (json_parse(&a, text, slen, &po, &sdoc, NULL) == 0 &&
        json_parse(&a, itext, ilen, &po, &inst, NULL) == 0) {
        /* Vary the options with the input so every path gets exercised. */
        struct schema_opts o = {.format_assert = size & 1, .content_assert = size & 2,
                                .no_meta_check = size & 4};
        struct schema *s;
        if (schema_compile(reg, sdoc, "https://fuzz.example/s.json", &o, &s, NULL) == 0) {
            struct schema_result r;
            schema_result_init(&r);
            bool ok = schema_validate(s, inst, &r);
            if (ok != (r.kept == 0)) abort();
            bool again = schema_validate(s, inst, &r); /* reuse of a result */
            if (again != ok) abort();
            struct buf b, lz;
            buf_init(&b);
            buf_init(&lz);
            schema_result_write_json(&r, &b);
            /* Lazy results must read exactly as eager ones: written
             * before anything was rendered, and error by error after. */
            struct schema_result l;
            schema_result_init(&l);
            l.lazy = true;
            l.max_errors = size & 8 ? 1 : 0;
            r.max_errors = l.max_errors;
            schema_validate(s, inst, &r);
            if (schema_validate(s, inst, &l) != ok || l.kept != r.kept) abort();
            buf_reset(&b);
            schema_result_write_json(&r, &b);
            schema_result_write_json(&l, &lz);
            if (b.len != lz.len || memcmp(b.data, lz.data, b.len)) abort();
            for (size_t i = 0; i < l.kept; i++) {
                const struct schema_error *x = schema_result_error(&l, i), *y = &r.errors[i];
                if (strcmp(x->message, y->message) || strcmp(x->instance_location,
                                                             y->instance_location) ||
                    strcmp(x->keyword_location, y->keyword_location) ||
                    strcmp(x->absolute_keyword_location, y->absolute_keyword_location))
                    abort();
            }
            if (schema_result_error(&l, l.kept)) abort();
            buf_reset(&lz);
            schema_result_write_text(&l, &lz);
            buf_reset(&b);
            schema_result_write_text(&r, &b);
            if (b.len != lz.len || memcmp(b.data, lz.data, b.len)) abort();
            schema_result_cleanup(&l);
            buf_cleanup(&lz);
            buf_cleanup(&b);
            schema_result_cleanup(&r);
            schema_free(s);
        }
    }
    arena_cleanup(&a);
    return 0;
}
