/*
 * test_json_scan.c — the fast paths of the parser and the writer against
 * slow references: strings (scanned and copied a block at a time, escapes
 * decoded into a copy sized from the source) against the byte-at-a-time
 * reference in tests/fuzz/json_string_ref.h; numbers (valued while
 * scanned) against json_number_text, which takes the general path of
 * number.c; the writer's block scan of strings against a byte-at-a-time
 * escaper.
 *
 * Every document is put in a heap block of exactly its size, so ASan
 * reports any read past the end of the input.
 */
#include "json/json.h"
#include "test.h"

#include "../fuzz/json_string_ref.h"

#include <math.h>

/* Deterministic pseudo-random numbers (xorshift64). */
static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* Parses doc[0..n) (copied to a block of exactly n bytes) and compares the
 * outcome with the reference; returns false (after reporting) on a
 * mismatch. */
static bool check_string_doc(const unsigned char *src, size_t n)
{
    unsigned char *doc = malloc(n ? n : 1), *want = malloc(n ? n : 1);
    memcpy(doc, src, n);
    struct ref_result r = ref_string_doc(doc, n, want);
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    int rc = json_parse(&a, (const char *)doc, n, NULL, &v, &err);
    bool ok = true;
    if (r.kind == REF_OK) {
        ok = rc == 0 && v && v->type == JSON_STRING && v->len == r.len &&
             memcmp(v->u.s.str, want, r.len) == 0 && v->u.s.str[r.len] == '\0';
    } else {
        int line, column;
        ref_position(doc, r.at, &line, &column);
        ok = rc == KEEL_EINVAL && err.line == line && err.column == column &&
             ref_kind_matches(r.kind, err.msg);
        if (!ok)
            fprintf(stderr, "expected kind %d at %d:%d; got rc %d at %d:%d: %s\n", (int)r.kind,
                    line, column, rc, err.line, err.column, err.msg);
    }
    if (!ok) {
        fprintf(stderr, "mismatch on a %zu-byte document:", n);
        for (size_t i = 0; i < n && i < 200; i++) fprintf(stderr, " %02X", doc[i]);
        fputc('\n', stderr);
    }
    arena_cleanup(&a);
    free(doc);
    free(want);
    return ok;
}

/* Pieces of string bodies: plain text, valid and invalid UTF-8 (overlongs,
 * surrogates, beyond U+10FFFF, truncated), good and bad escapes, controls. */
static const char *const PIECES[] = {
    "a", "hello world ", "0123456789abcdef0123456789", " ", "~\x7F",
    "\xC3\xA9", "\xE3\x83\x87\xE3\x83\xBC\xE3\x82\xBF", "\xF0\x9F\x99\x82", "\xE2\x82\xAC",
    "\xE0\xA0\x80", "\xED\x9F\xBF", "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF",
    "\xC2\x80", "\xDF\xBF",
    "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xE0\x9F\xBF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
    "\xF0\x8F\xBF\xBF", "\xF5\x80\x80\x80", "\x80", "\xBF", "\xFF", "\xE3\x81", "\xF0\x9F\x99",
    "\xC3",
    "\\n", "\\t", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\r", "\\u00e9", "\\u0000", "\\u20AC",
    "\\uD83D\\uDE00", "\\udbff\\udfff", "\\u0041",
    "\\x", "\\u12G4", "\\uD800", "\\uDC00", "\\uD800\\u0041", "\\uD800x", "\\u", "\\u12",
    "\\\xC3\xA9", "\\",
    "\x01", "\x1F", "\n", "\t",
    "\"",
};
#define NPIECES (sizeof PIECES / sizeof PIECES[0])

/* Appends a random body: mostly good pieces, sometimes bad ones. */
static void gen_body(struct buf *b, uint32_t npieces)
{
    for (uint32_t i = 0; i < npieces; i++) {
        uint32_t k = rnd(100);
        const char *p;
        if (k < 40) p = PIECES[rnd(5)];          /* plain */
        else if (k < 70) p = PIECES[5 + rnd(11)]; /* valid UTF-8 */
        else if (k < 90) p = PIECES[30 + rnd(14)]; /* good escapes */
        else p = PIECES[rnd(NPIECES)];           /* anything */
        buf_puts(b, p);
    }
}

TEST(strings_match_reference_random)
{
    struct buf b;
    buf_init(&b);
    int bad = 0;
    for (int t = 0; t < 30000 && bad < 5; t++) {
        buf_reset(&b);
        uint32_t pre = rnd(18);
        for (uint32_t i = 0; i < pre; i++) buf_putc(&b, ' ');
        buf_putc(&b, '"');
        gen_body(&b, rnd(t % 10 == 0 ? 200 : 24));
        uint32_t k = rnd(100);
        if (k < 90) buf_putc(&b, '"');
        if (k < 5) buf_puts(&b, " \t x"); /* trailing garbage */
        else if (k < 20) buf_puts(&b, "  ");
        if (!check_string_doc((const unsigned char *)b.data, b.len)) bad++;
    }
    CHECK_INT(bad, 0);
    buf_cleanup(&b);
}

/* One special thing at every position of plain strings of every length up
 * to a few blocks (of 32 bytes with SSE2, 8 without), the string starting
 * at offsets around block boundaries, the document ending right after it
 * (so block and tail code both see it). */
TEST(strings_every_position)
{
    static const char *const SPECIAL[] = {"\\n", "\\u00e9", "\\uD83D\\uDE00", "\xC3\xA9",
                                          "\xE3\x83\x87", "\xF0\x9F\x99\x82", "\x01", "\xFF",
                                          "\xED\xA0\x80", "\\", "\\q", ""};
    struct buf b;
    buf_init(&b);
    int bad = 0;
    static const int PRE[] = {0, 1, 7, 16, 31};
    for (size_t s = 0; s < sizeof SPECIAL / sizeof SPECIAL[0]; s++)
        for (int len = 0; len <= 70; len++)
            for (int pos = 0; pos <= len; pos++)
                for (size_t pr = 0; pr < sizeof PRE / sizeof PRE[0]; pr++)
                    for (int closed = 0; closed < 2; closed++) {
                        int pre = PRE[pr];
                        buf_reset(&b);
                        for (int i = 0; i < pre; i++) buf_putc(&b, ' ');
                        buf_putc(&b, '"');
                        for (int i = 0; i < len; i++) {
                            if (i == pos) buf_puts(&b, SPECIAL[s]);
                            buf_putc(&b, (char)('a' + i % 26));
                        }
                        if (closed) buf_putc(&b, '"');
                        if (!check_string_doc((const unsigned char *)b.data, b.len) && ++bad > 5)
                            goto out;
                    }
out:
    CHECK_INT(bad, 0);
    buf_cleanup(&b);
}

/* Appends a random body of valid pieces only. */
static void gen_valid_body(struct buf *b, uint32_t npieces)
{
    for (uint32_t i = 0; i < npieces; i++) {
        uint32_t k = rnd(3);
        buf_puts(b, PIECES[k == 0 ? rnd(5) : k == 1 ? 5 + rnd(11) : 30 + rnd(14)]);
    }
}

/* Strings longer than an arena chunk (a chunk of their own), with and
 * without escapes, several in one array: each decodes as the reference says
 * and none overwrites another. */
TEST(strings_long)
{
    static const uint32_t sizes[] = {3000, 20000, 70000, 9, 150000};
    struct buf b;
    buf_init(&b);
    size_t off[5], len[5];
    buf_putc(&b, '[');
    for (int i = 0; i < 5; i++) {
        if (i) buf_putc(&b, ',');
        off[i] = b.len;
        buf_putc(&b, '"');
        while (b.len - off[i] < sizes[i]) {
            if (i % 2) buf_puts(&b, "plain ascii text \xE3\x83\x87\xC3\xA9 ");
            else gen_valid_body(&b, 1);
        }
        buf_putc(&b, '"');
        len[i] = b.len - off[i];
        CHECK(check_string_doc((const unsigned char *)b.data + off[i], len[i]));
    }
    buf_putc(&b, ']');
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    struct keel_err err;
    char *doc = malloc(b.len);
    memcpy(doc, b.data, b.len);
    REQUIRE(json_parse(&a, doc, b.len, NULL, &v, &err) == 0);
    REQUIRE(v->len == 5);
    for (int i = 0; i < 5; i++) {
        unsigned char *want = malloc(len[i]);
        struct ref_result r = ref_string_doc((const unsigned char *)doc + off[i], len[i], want);
        CHECK(r.kind == REF_OK && v->u.items[i]->len == r.len &&
              memcmp(v->u.items[i]->u.s.str, want, r.len) == 0 &&
              v->u.items[i]->u.s.str[r.len] == '\0');
        free(want);
    }
    free(doc);
    arena_cleanup(&a);
    buf_cleanup(&b);
}

/* An escaped string's copy is sized from the source, then shrunk to what
 * the decoded text needs: memory follows the decoded length. */
TEST(strings_escaped_copy_is_shrunk)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "[\"");
    for (int i = 0; i < 2000; i++) buf_puts(&b, "\\u00e9");
    buf_puts(&b, "\",1]");
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    struct keel_err err;
    REQUIRE(json_parse(&a, b.data, b.len, NULL, &v, &err) == 0);
    REQUIRE(v->len == 2 && v->u.items[0]->len == 4000);
    CHECK(strncmp(v->u.items[0]->u.s.str, "\xC3\xA9\xC3\xA9", 4) == 0);
    CHECK(v->u.items[1]->u.n.i == 1);
    /* values, the item array, the number text and 4001 string bytes */
    CHECK(a.total < 4001 + 1000);
    arena_cleanup(&a);
    buf_cleanup(&b);
}

TEST(keys_decode_like_strings)
{
    static const char *const KEYS[] = {"k", "caf\xC3\xA9", "a\\nb", "\\u00e9\\uD83D\\uDE00x",
                                       "a long key of more than sixteen bytes \\\" with escape",
                                       "\xE3\x83\x87\xE3\x83\xBC\xE3\x82\xBF", ""};
    for (size_t k = 0; k < sizeof KEYS / sizeof KEYS[0]; k++) {
        struct buf doc, str;
        buf_init(&doc);
        buf_init(&str);
        buf_printf(&doc, "{\"%s\":true}", KEYS[k]);
        buf_printf(&str, "\"%s\"", KEYS[k]);
        unsigned char *want = malloc(str.len);
        struct ref_result r = ref_string_doc((const unsigned char *)str.data, str.len, want);
        struct arena a;
        arena_init(&a);
        struct json_value *v = NULL;
        struct keel_err err;
        CHECK(r.kind == REF_OK);
        CHECK(json_parse(&a, doc.data, doc.len, NULL, &v, &err) == 0);
        if (v && v->len == 1) {
            CHECK_INT(v->u.members[0].key_len, r.len);
            CHECK(memcmp(v->u.members[0].key, want, r.len) == 0);
            CHECK(v->u.members[0].key[r.len] == '\0');
        } else {
            CHECK(!"one member");
        }
        free(want);
        arena_cleanup(&a);
        buf_cleanup(&doc);
        buf_cleanup(&str);
    }
}

/* ---- numbers ---------------------------------------------------------- */

/* Parses text (exactly its bytes) and compares the number with what
 * json_number_text (the general path) makes of it. */
static bool check_number(const char *text)
{
    size_t n = strlen(text);
    char *doc = malloc(n);
    memcpy(doc, text, n);
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL, *w = json_number_text(&a, text, n);
    struct keel_err err;
    bool ok = json_parse(&a, doc, n, NULL, &v, &err) == 0 && w && v->type == JSON_NUMBER &&
              strcmp(v->u.n.text, text) == 0 && v->nflags == w->nflags &&
              v->u.n.i == w->u.n.i && memcmp(&v->u.n.d, &w->u.n.d, sizeof(double)) == 0;
    if (!ok)
        fprintf(stderr, "number %s: parsed d=%.17g i=%lld flags=%u; general d=%.17g i=%lld "
                        "flags=%u\n",
                text, v ? v->u.n.d : 0.0, v ? (long long)v->u.n.i : 0LL, v ? v->nflags : 0u,
                w ? w->u.n.d : 0.0, w ? (long long)w->u.n.i : 0LL, w ? w->nflags : 0u);
    arena_cleanup(&a);
    free(doc);
    return ok;
}

TEST(numbers_edge_cases_match_general_path)
{
    static const char *const NUMS[] = {
        "0", "-0", "0.0", "-0.0", "0e0", "-0E-5", "0.000", "1", "-1", "9", "10", "1.0", "1.5",
        "-1.5", "0.1", "0.7", "0.95", "1e2", "1E+2", "1e-2", "1.50", "12.340", "100e-2",
        "100e-3", "1.5e1", "2.5e1", "15e-1", "123456789012345678", "1234567890123456789",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "-9223372036854775809", "9999999999999999999", "10000000000000000000",
        "12345678901234567890", "18446744073709551615", "18446744073709551616",
        "-18446744073709551615", "99999999999999999999", "100000000000000000000",
        "9007199254740992", "9007199254740993", "9007199254740993.0", "900719925474099.3",
        "9007199254740993e-1", "9007199254740992e-22", "9007199254740992e-23",
        "1e22", "1e23", "1e-22", "1e-23", "4.9e-324", "1e-400", "1e400", "-1e400",
        "1.7976931348623157e308", "2.2250738585072014e-308", "0.1e-21", "0.1e-22",
        "1234567890123456789e-22", "1234567890123456789e-3", "123456789012345678.9",
        "0.0000000000000000001", "0.00000000000000000001", "1.0000000000000000001",
        "3.141592653589793", "2.718281828459045e-5", "-1234.5678e-10", "5e-1", "25e-2",
        "1e99999999999999999999", "1e-99999999999999999999", "0e99999999999999999999",
        "0.000000000000000000000000000001", "100000000000000000000000e-4",
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof NUMS / sizeof NUMS[0]; i++)
        if (!check_number(NUMS[i])) bad++;
    CHECK_INT(bad, 0);
}

TEST(numbers_random_match_general_path)
{
    char text[128];
    int bad = 0;
    for (int t = 0; t < 50000 && bad < 5; t++) {
        size_t n = 0;
        if (rnd(2)) text[n++] = '-';
        uint32_t nint = rnd(4) == 0 ? rnd(24) : rnd(8);
        if (nint == 0) {
            text[n++] = '0';
        } else {
            text[n++] = (char)('1' + rnd(9));
            for (uint32_t i = 1; i < nint; i++) text[n++] = (char)('0' + (rnd(3) ? rnd(10) : 0));
        }
        if (rnd(2)) {
            text[n++] = '.';
            uint32_t nf = 1 + (rnd(4) == 0 ? rnd(24) : rnd(8));
            for (uint32_t i = 0; i < nf; i++) text[n++] = (char)('0' + (rnd(3) ? rnd(10) : 0));
        }
        if (rnd(3) == 0) {
            text[n++] = rnd(2) ? 'e' : 'E';
            uint32_t s = rnd(3);
            if (s == 1) text[n++] = '+';
            if (s == 2) text[n++] = '-';
            uint32_t ne = 1 + rnd(rnd(8) == 0 ? 5 : 2);
            for (uint32_t i = 0; i < ne; i++) text[n++] = (char)('0' + rnd(10));
        }
        text[n] = '\0';
        if (!check_number(text)) bad++;
    }
    CHECK_INT(bad, 0);
}

/* Numbers inside documents end where the grammar says, at every offset
 * relative to the end of the input. */
TEST(numbers_in_documents)
{
    static const char *const DOCS[] = {"[1,-0,1.5e3,12345678901234567890,0.25]",
                                       "{\"a\":-12.340e-1,\"b\":7}", "123", "-0.5", "1e5"};
    for (size_t i = 0; i < sizeof DOCS / sizeof DOCS[0]; i++) {
        size_t n = strlen(DOCS[i]);
        char *doc = malloc(n);
        memcpy(doc, DOCS[i], n);
        struct arena a;
        arena_init(&a);
        struct json_value *v = NULL;
        struct keel_err err;
        CHECK(json_parse(&a, doc, n, NULL, &v, &err) == 0);
        struct buf out;
        buf_init(&out);
        CHECK(v && json_write(&out, v, 0, &err) == 0);
        CHECK_STR(out.data, DOCS[i]);
        buf_cleanup(&out);
        arena_cleanup(&a);
        free(doc);
    }
}

/* ---- writing ---------------------------------------------------------- */

/* The writer's escaping, byte by byte, for valid UTF-8 input: '"' and '\\'
 * and the five short forms escaped, other controls as \u00xx, the rest as
 * is. */
static void ref_write_string(struct buf *out, const char *s, size_t n)
{
    buf_putc(out, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *shortf = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\b' ? "\\b"
                           : c == '\f' ? "\\f" : c == '\n' ? "\\n" : c == '\r' ? "\\r"
                           : c == '\t' ? "\\t" : NULL;
        if (shortf) buf_puts(out, shortf);
        else if (c < 0x20) buf_printf(out, "\\u%04x", c);
        else buf_putc(out, (char)c);
    }
    buf_putc(out, '"');
}

/* One character that needs care at every position of strings of every
 * length up to a few blocks: the writer's block scan (whose last bytes go
 * word by word and byte by byte) writes what the byte-at-a-time reference
 * writes, and the output parses back to the same bytes. */
TEST(write_string_every_position)
{
    static const char *const SPECIAL[] = {"\"", "\\", "\n", "\x01", "\x1F", "\xC3\xA9",
                                          "\xE3\x83\x87", "\xF0\x9F\x99\x82", "\x7F", ""};
    struct buf s, got, want;
    buf_init(&s);
    buf_init(&got);
    buf_init(&want);
    int bad = 0;
    for (size_t k = 0; k < sizeof SPECIAL / sizeof SPECIAL[0]; k++)
        for (int len = 0; len <= 70; len++)
            for (int pos = 0; pos <= len; pos++) {
                buf_reset(&s);
                for (int i = 0; i < len; i++) {
                    if (i == pos) buf_puts(&s, SPECIAL[k]);
                    buf_putc(&s, (char)('a' + i % 26));
                }
                /* an exact-size copy, so ASan sees reads past the string */
                char *str = malloc(s.len ? s.len : 1);
                memcpy(str, s.data ? s.data : "", s.len);
                buf_reset(&got);
                buf_reset(&want);
                json_write_string(&got, str, s.len);
                ref_write_string(&want, str, s.len);
                struct arena a;
                arena_init(&a);
                struct json_value *v = NULL;
                struct keel_err err;
                bool ok = got.len == want.len && memcmp(got.data, want.data, got.len) == 0 &&
                          json_parse(&a, got.data, got.len, NULL, &v, &err) == 0 &&
                          v->len == s.len && memcmp(v->u.s.str, str, s.len) == 0;
                if (!ok && bad++ < 5)
                    fprintf(stderr, "write mismatch: got %s, want %s\n", got.data, want.data);
                arena_cleanup(&a);
                free(str);
            }
    CHECK_INT(bad, 0);
    buf_cleanup(&s);
    buf_cleanup(&got);
    buf_cleanup(&want);
}
