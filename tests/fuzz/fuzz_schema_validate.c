/*
 * fuzz_schema_validate.c — libFuzzer target for the schema compiler and
 * validator.  Input: a schema JSON text, a NUL byte, an instance JSON text
 * (without a NUL the input is both schema and instance).  Whatever the
 * bytes, compilation must succeed or fail with an error, and validation
 * must return a verdict whose error list agrees with it — no crash, no
 * leak, bounded time (depth, regex and size limits do the bounding).
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
            struct buf b;
            buf_init(&b);
            schema_result_write_json(&r, &b);
            buf_cleanup(&b);
            schema_result_cleanup(&r);
            schema_free(s);
        }
    }
    arena_cleanup(&a);
    return 0;
}
