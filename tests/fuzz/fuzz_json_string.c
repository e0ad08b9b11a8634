/*
 * fuzz_json_string.c — libFuzzer target comparing the parser's fast string
 * and number paths (src/json/parse.c: block scanning, one-pass escape
 * decoding, numbers valued while scanned) with slow references.
 *
 * Properties, for any input D:
 *   - the document '"' D (a string that may or may not close) parses
 *     exactly as the byte-at-a-time reference in json_string_ref.h says:
 *     the same decoded bytes, or an error of the same kind at the same
 *     line and column;
 *   - if D itself starts with a quote (after spaces), the same holds for D;
 *   - if D parses as a number, its double (bit for bit), flags and integer
 *     value equal json_number_text's, which takes number.c's general path.
 * Each document sits in a heap block of exactly its size, so ASan catches
 * any read past the end of the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"
#include "json_string_ref.h"

static void check(int cond)
{
    if (!cond) abort();
}

static void check_string_doc(const unsigned char *doc, size_t n)
{
    unsigned char *want = malloc(n ? n : 1);
    struct ref_result r = ref_string_doc(doc, n, want);
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    int rc = json_parse(&a, (const char *)doc, n, NULL, &v, &err);
    if (r.kind == REF_OK) {
        check(rc == 0 && v && v->type == JSON_STRING && v->len == r.len);
        check(memcmp(v->u.s.str, want, r.len) == 0 && v->u.s.str[r.len] == '\0');
    } else {
        int line, column;
        ref_position(doc, r.at, &line, &column);
        check(rc == KEEL_EINVAL && err.line == line && err.column == column);
        check(ref_kind_matches(r.kind, err.msg));
    }
    arena_cleanup(&a);
    free(want);
}

static void check_number(const uint8_t *data, size_t size)
{
    unsigned char *doc = malloc(size ? size : 1);
    if (size) memcpy(doc, data, size);
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    struct keel_err err;
    if (json_parse(&a, (const char *)doc, size, NULL, &v, &err) == 0 && v->type == JSON_NUMBER) {
        struct json_value *w = json_number_text(&a, v->u.n.text, strlen(v->u.n.text));
        check(w != NULL);
        check(v->nflags == w->nflags && v->u.n.i == w->u.n.i);
        check(memcmp(&v->u.n.d, &w->u.n.d, sizeof(double)) == 0);
    }
    arena_cleanup(&a);
    free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) return 0;
    unsigned char *doc = malloc(size + 1);
    doc[0] = '"';
    if (size) memcpy(doc + 1, data, size);
    check_string_doc(doc, size + 1);
    free(doc);

    size_t i = 0;
    while (i < size && data[i] == ' ') i++;
    if (i < size && data[i] == '"') {
        doc = malloc(size);
        memcpy(doc, data, size);
        check_string_doc(doc, size);
        free(doc);
    }
    check_number(data, size);
    return 0;
}
