/*
 * test_json.c — unit tests of src/json: parser (grammar, UTF-8, positions,
 * limits, duplicates), builders, readers, equality and exact numbers,
 * writer (compact, pretty, canonical), JSON Pointer.
 */
#include "json/json.h"
#include "test.h"

#include <math.h>

/* Parses text (whole C string) with default options; NULL on failure with
 * the error in *err. */
static struct json_value *parse(struct arena *a, const char *text, struct keel_err *err)
{
    struct json_value *v = NULL;
    keel_err_clear(err);
    if (json_parse(a, text, strlen(text), NULL, &v, err) != 0) return NULL;
    return v;
}

/* Writes v with flags into a static buffer and returns it. */
static const char *write(const struct json_value *v, unsigned flags)
{
    static struct buf b;
    buf_reset(&b);
    struct keel_err err;
    if (json_write(&b, v, flags, &err) != 0) return "<error>";
    return b.data ? b.data : "";
}

TEST(parse_scalars)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v;
    REQUIRE((v = parse(&a, "null", &err)) && v->type == JSON_NULL);
    REQUIRE((v = parse(&a, " true ", &err)) && v->type == JSON_TRUE);
    REQUIRE((v = parse(&a, "\tfalse\r\n", &err)) && v->type == JSON_FALSE);
    REQUIRE((v = parse(&a, "\"h\\u00e9llo\\n\"", &err)) && v->type == JSON_STRING);
    CHECK_STR(v->u.s.str, "h\xc3\xa9llo\n");
    CHECK_INT(v->len, 7);
    REQUIRE((v = parse(&a, "-42", &err)) && v->type == JSON_NUMBER);
    CHECK_INT(v->u.n.i, -42);
    CHECK(v->nflags == (JSON_NUM_INT | JSON_NUM_I64));
    CHECK_STR(v->u.n.text, "-42");
    REQUIRE((v = parse(&a, "0.5", &err)));
    CHECK(v->u.n.d == 0.5);
    CHECK(v->nflags == 0);
    arena_cleanup(&a);
}

TEST(parse_containers)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    const char *doc = "{\"a\": [1, 2, {\"b\": null}], \"c\": {}, \"d\": [], \"e\": \"x\"}";
    struct json_value *v = parse(&a, doc, &err);
    REQUIRE(v && v->type == JSON_OBJECT);
    CHECK_INT(v->len, 4);
    CHECK_STR(v->u.members[0].key, "a");
    CHECK_STR(v->u.members[3].key, "e");
    struct json_value *arr = json_get(v, "a");
    REQUIRE(json_is(arr, JSON_ARRAY) && arr->len == 3);
    CHECK_INT(arr->u.items[1]->u.n.i, 2);
    CHECK(json_is(json_get(arr->u.items[2], "b"), JSON_NULL));
    CHECK(json_is(json_get(v, "c"), JSON_OBJECT) && json_get(v, "c")->len == 0);
    CHECK(json_is(json_get(v, "d"), JSON_ARRAY) && json_get(v, "d")->len == 0);
    CHECK_STR(json_get_str(v, "e", NULL), "x");
    CHECK(json_get(v, "zz") == NULL);
    arena_cleanup(&a);
}

TEST(parse_positions)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v = parse(&a, "{\n  \"a\": [1,\n    true]\n}", &err);
    REQUIRE(v);
    CHECK_INT(v->line, 1);
    CHECK_INT(v->column, 1);
    struct json_value *arr = json_get(v, "a");
    CHECK_INT(arr->line, 2);
    CHECK_INT(arr->column, 8);
    CHECK_INT(arr->u.items[1]->line, 3);
    CHECK_INT(arr->u.items[1]->column, 5);

    CHECK(!parse(&a, "{\n  \"a\": [1,\n    tru]\n}", &err));
    CHECK_INT(err.code, KEEL_EINVAL);
    CHECK_INT(err.line, 3);
    CHECK_INT(err.column, 5);

    struct json_parse_opts o = {.file = "x.json"};
    CHECK(json_parse(&a, "[1,]", 4, &o, &v, &err) == KEEL_EINVAL);
    CHECK_STR(err.file, "x.json");
    CHECK_INT(err.line, 1);
    CHECK_INT(err.column, 4);
    CHECK_CONTAINS(err.msg, "trailing comma");
    arena_cleanup(&a);
}

/* Each bad text fails with EINVAL at the given column of line 1. */
TEST(parse_errors)
{
    static const struct {
        const char *text;
        int column;
        const char *msg;
    } cases[] = {
        {"", 1, "end of input"},
        {"   ", 4, "end of input"},
        {"[1 2]", 4, "expected ','"},
        {"{\"a\" 1}", 6, "':'"},
        {"{\"a\":1,}", 8, "trailing comma"},
        {"{a:1}", 2, "string key"},
        {"01", 1, "leading zero"},
        {"-", 2, "digit"},
        {"1.", 3, "decimal point"},
        {"1e", 3, "exponent"},
        {".5", 1, "unexpected"},
        {"+1", 1, "unexpected"},
        {"NaN", 1, "NaN"},
        {"-Infinity", 1, "Infinity"},
        {"tru", 1, "literal"},
        {"True", 1, "unexpected"},
        {"\"abc", 1, "unterminated"},
        {"\"a\tb\"", 3, "control character"},
        {"\"\\x\"", 2, "invalid escape"},
        {"\"\\u12\"", 2, "hex digits"},
        {"\"\\uD800\"", 2, "lone high surrogate"},
        {"\"\\uDC00\"", 2, "lone low surrogate"},
        {"\"\\uD800\\u0041\"", 2, "lone high surrogate"},
        {"\"\xC0\xAF\"", 2, "UTF-8"},       /* overlong */
        {"\"\xED\xA0\x80\"", 2, "UTF-8"},   /* encoded surrogate */
        {"\"\xF4\x90\x80\x80\"", 2, "UTF-8"}, /* beyond U+10FFFF */
        {"\"\xE2\x82\"", 2, "UTF-8"},       /* truncated */
        {"\xEF\xBB\xBF{}", 1, "BOM"},
        {"[1] x", 5, "end of input after"},
        {"[1]]", 4, "end of input after"},
        {"{\"a\":1 \"b\":2}", 8, "','"},
        {"'a'", 1, "single quotes"},
        {"[", 2, "end of input"},
        {"{\"a\":", 6, "end of input"},
        {"/* c */ 1", 1, "unexpected"},
        {"\x01", 1, "byte 0x01"},
    };
    struct arena a;
    arena_init(&a);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct keel_err err;
        struct json_value *v = parse(&a, cases[i].text, &err);
        if (v) {
            TEST_FAIL_AT(__FILE__, __LINE__, "accepted bad text %s", cases[i].text);
            continue;
        }
        if (err.code != KEEL_EINVAL || err.line != 1 || err.column != cases[i].column ||
            !strstr(err.msg, cases[i].msg))
            TEST_FAIL_AT(__FILE__, __LINE__, "text %s: code %d at %d:%d '%s', expected col %d '%s'",
                         cases[i].text, err.code, err.line, err.column, err.msg, cases[i].column,
                         cases[i].msg);
    }
    arena_cleanup(&a);
}

TEST(parse_embedded_nul_and_unicode)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v = parse(&a, "\"a\\u0000b\\uD83D\\uDE00\xE2\x82\xAC\"", &err);
    REQUIRE(v);
    CHECK_INT(v->len, 10);
    CHECK(memcmp(v->u.s.str, "a\0b\xF0\x9F\x98\x80\xE2\x82\xAC", 10) == 0);
    /* the text given with an explicit length need not be NUL-terminated */
    const char text[] = {'[', '1', ']', 'x'};
    CHECK(json_parse(&a, text, 3, NULL, &v, &err) == 0 && v->len == 1);
    arena_cleanup(&a);
}

TEST(parse_limits)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v;
    char deep[2000];
    for (int i = 0; i < 1000; i++) deep[i] = '[', deep[1000 + i] = ']';
    /* default depth is 512 */
    CHECK(json_parse(&a, deep + 1000 - 512, 1024, NULL, &v, &err) == 0);
    CHECK(json_parse(&a, deep + 1000 - 513, 1026, NULL, &v, &err) == KEEL_ELIMIT);
    CHECK_INT(err.column, 513);
    struct json_parse_opts o = {.max_depth = 2000};
    CHECK(json_parse(&a, deep, 2000, &o, &v, &err) == 0);
    o.max_depth = 3;
    CHECK(json_parse(&a, "[[[1]]]", 7, &o, &v, &err) == 0);
    CHECK(json_parse(&a, "[[[[1]]]]", 9, &o, &v, &err) == KEEL_ELIMIT);
    CHECK(json_parse(&a, "{\"a\":{\"b\":{\"c\":{}}}}", 20, &o, &v, &err) == KEEL_ELIMIT);
    struct json_parse_opts s = {.max_size = 4};
    CHECK(json_parse(&a, "1234", 4, &s, &v, &err) == 0);
    CHECK(json_parse(&a, "12345", 5, &s, &v, &err) == KEEL_ELIMIT);
    CHECK_CONTAINS(err.msg, "exceeds the limit");
    arena_cleanup(&a);
}

TEST(parse_duplicates)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v = parse(&a, "{\"a\":1,\n \"b\":2, \"a\":3}", &err);
    CHECK(!v);
    CHECK_INT(err.line, 2);
    CHECK_INT(err.column, 9);
    CHECK_CONTAINS(err.msg, "duplicate key \"a\"");
    CHECK_CONTAINS(err.msg, "line 1, column 2");
    struct json_parse_opts o = {.dup = JSON_DUP_LAST};
    const char *t = "{\"a\":1, \"b\":2, \"a\":3, \"a\":4}";
    REQUIRE(json_parse(&a, t, strlen(t), &o, &v, &err) == 0);
    CHECK_INT(v->len, 2);
    CHECK_STR(v->u.members[0].key, "a");
    CHECK_INT(json_get_int(v, "a", 0), 4);
    CHECK_INT(json_get_int(v, "b", 0), 2);

    /* large objects take the hashed path */
    struct buf b;
    buf_init(&b);
    buf_putc(&b, '{');
    for (int i = 0; i < 100; i++) buf_printf(&b, "%s\"k%d\":%d", i ? "," : "", i, i);
    buf_puts(&b, "}");
    REQUIRE(json_parse(&a, b.data, b.len, NULL, &v, &err) == 0);
    CHECK_INT(v->len, 100);
    CHECK_INT(json_get_int(v, "k77", -1), 77);
    b.len--;
    buf_puts(&b, ",\"k42\":0}");
    CHECK(json_parse(&a, b.data, b.len, NULL, &v, &err) == KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "duplicate key \"k42\"");
    REQUIRE(json_parse(&a, b.data, b.len, &o, &v, &err) == 0);
    CHECK_INT(v->len, 100);
    CHECK_INT(json_get_int(v, "k42", -1), 0);
    CHECK_STR(v->u.members[42].key, "k42");
    buf_cleanup(&b);
    arena_cleanup(&a);
}

TEST(numbers_exact)
{
    static const struct {
        const char *text;
        unsigned flags;
        int64_t i;
    } cases[] = {
        {"0", JSON_NUM_INT | JSON_NUM_I64, 0},
        {"-0", JSON_NUM_INT | JSON_NUM_I64, 0},
        {"1.0", JSON_NUM_INT | JSON_NUM_I64, 1},
        {"1e2", JSON_NUM_INT | JSON_NUM_I64, 100},
        {"1E+2", JSON_NUM_INT | JSON_NUM_I64, 100},
        {"12.5e1", JSON_NUM_INT | JSON_NUM_I64, 125},
        {"1250e-1", JSON_NUM_INT | JSON_NUM_I64, 125},
        {"1.5", 0, 0},
        {"1e-2", 0, 0},
        {"9223372036854775807", JSON_NUM_INT | JSON_NUM_I64, INT64_MAX},
        {"-9223372036854775808", JSON_NUM_INT | JSON_NUM_I64, INT64_MIN},
        {"9223372036854775808", JSON_NUM_INT, 0},
        {"-9223372036854775809", JSON_NUM_INT, 0},
        {"123456789012345678901234567890", JSON_NUM_INT, 0},
        {"1e400", JSON_NUM_INT, 0},
        {"1e-400", 0, 0},
        {"0e999999999999999999999", JSON_NUM_INT | JSON_NUM_I64, 0},
        {"0.000", JSON_NUM_INT | JSON_NUM_I64, 0},
        {"10000000000000000000000e-2", JSON_NUM_INT, 0},
        {"100000000000000000000e-2", JSON_NUM_INT | JSON_NUM_I64, 1000000000000000000},
        {"10000000000000000000e-2", JSON_NUM_INT | JSON_NUM_I64, 100000000000000000},
    };
    struct arena a;
    arena_init(&a);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct keel_err err;
        struct json_value *v = parse(&a, cases[i].text, &err);
        if (!v) {
            TEST_FAIL_AT(__FILE__, __LINE__, "%s: %s", cases[i].text, err.msg);
            continue;
        }
        CHECK_STR(v->u.n.text, cases[i].text);
        if (v->nflags != cases[i].flags || ((v->nflags & JSON_NUM_I64) && v->u.n.i != cases[i].i))
            TEST_FAIL_AT(__FILE__, __LINE__, "%s: flags %u i %lld", cases[i].text, v->nflags,
                         (long long)v->u.n.i);
    }
    struct keel_err err;
    struct json_value *v = parse(&a, "1e400", &err);
    CHECK(isinf(v->u.n.d));
    CHECK_STR(json_type_name(v), "integer");
    v = parse(&a, "9007199254740993", &err);
    CHECK(v->u.n.d == 9007199254740992.0);
    CHECK_INT(v->u.n.i, 9007199254740993LL);
    v = parse(&a, "-0", &err);
    CHECK(signbit(v->u.n.d));
    v = parse(&a, "0.1", &err);
    CHECK(v->u.n.d == 0.1);
    v = parse(&a, "2.2250738585072011e-308", &err);
    CHECK(v->u.n.d == 2.2250738585072011e-308);
    arena_cleanup(&a);
}

TEST(number_cmp_exact)
{
    static const struct {
        const char *a, *b;
        int cmp;
    } cases[] = {
        {"1", "1.0", 0},
        {"1", "10e-1", 0},
        {"0", "-0", 0},
        {"0.0", "-0e5", 0},
        {"9007199254740993", "9007199254740992", 1},
        {"123456789012345678901234567890", "123456789012345678901234567891", -1},
        {"1e400", "1e401", -1},
        {"-1e400", "1e-400", -1},
        {"1e-400", "0", 1},
        {"0.1", "0.10000000000000001", -1},
        {"-2", "-10", 1},
        {"100", "1e2", 0},
        {"12.34", "1234e-2", 0},
        {"5", "4.99999999999999999999", 1},
        {"-5", "-4.99999999999999999999", -1},
        {"9223372036854775807", "9223372036854775808", -1},
    };
    struct arena a;
    arena_init(&a);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct json_value *x = json_number_text(&a, cases[i].a, strlen(cases[i].a));
        struct json_value *y = json_number_text(&a, cases[i].b, strlen(cases[i].b));
        REQUIRE(x && y);
        int c = json_number_cmp(x, y), r = json_number_cmp(y, x);
        c = c < 0 ? -1 : c > 0;
        r = r < 0 ? -1 : r > 0;
        if (c != cases[i].cmp || r != -cases[i].cmp)
            TEST_FAIL_AT(__FILE__, __LINE__, "cmp(%s, %s) = %d/%d, expected %d", cases[i].a,
                         cases[i].b, c, r, cases[i].cmp);
    }
    CHECK(json_number_text(&a, "01", 2) == NULL);
    CHECK(json_number_text(&a, "1 ", 2) == NULL);
    CHECK(json_number_text(&a, "", 0) == NULL);
    CHECK(json_number_text(&a, "1.", 2) == NULL);
    arena_cleanup(&a);
}

TEST(equal)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *x = parse(&a, "{\"a\":[1,2.0,{\"c\":\"d\"}],\"b\":null}", &err);
    struct json_value *y = parse(&a, "{\"b\":null,\"a\":[1.0,2,{\"c\":\"d\"}]}", &err);
    struct json_value *z = parse(&a, "{\"b\":null,\"a\":[1.0,2,{\"c\":\"e\"}]}", &err);
    REQUIRE(x && y && z);
    CHECK(json_equal(x, y));
    CHECK(!json_equal(x, z));
    CHECK(!json_equal(parse(&a, "[1,2]", &err), parse(&a, "[2,1]", &err)));
    CHECK(!json_equal(parse(&a, "true", &err), parse(&a, "1", &err)));
    CHECK(!json_equal(parse(&a, "{\"a\":1}", &err), parse(&a, "{\"a\":1,\"b\":1}", &err)));
    CHECK(!json_equal(parse(&a, "\"a\\u0000\"", &err), parse(&a, "\"a\"", &err)));
    CHECK(json_equal(parse(&a, "\"\\u00e9\"", &err), parse(&a, "\"\xC3\xA9\"", &err)));
    arena_cleanup(&a);
}

TEST(builders)
{
    struct arena a;
    arena_init(&a);
    struct json_value *o = json_object(&a);
    json_object_setc(&a, o, "name", json_cstr(&a, "keel"));
    json_object_setc(&a, o, "n", json_int(&a, -7));
    json_object_setc(&a, o, "pi", json_double(&a, 3.25));
    json_object_setc(&a, o, "ok", json_bool(&a, true));
    json_object_setc(&a, o, "none", json_null(&a));
    struct json_value *arr = json_array(&a);
    for (int i = 0; i < 10; i++) json_array_push(&a, arr, json_int(&a, i));
    json_object_setc(&a, o, "list", arr);
    json_object_set(&a, o, "k\0ey", 4, json_string(&a, "a\0b", 3));
    CHECK_STR(write(o, 0), "{\"name\":\"keel\",\"n\":-7,\"pi\":3.25,\"ok\":true,\"none\":null,"
                           "\"list\":[0,1,2,3,4,5,6,7,8,9],\"k\\u0000ey\":\"a\\u0000b\"}");
    json_object_setc(&a, o, "n", json_int(&a, 8)); /* replaces, keeps the place */
    CHECK_INT(o->len, 7);
    CHECK_INT(json_get_int(o, "n", 0), 8);
    CHECK_STR(o->u.members[1].key, "n");
    CHECK(json_object_del(o, "pi", 2));
    CHECK(!json_object_del(o, "pi", 2));
    CHECK_INT(o->len, 6);
    CHECK_STR(o->u.members[2].key, "ok");
    CHECK(json_get_bool(o, "ok", false));
    CHECK(json_get_bool(o, "name", false) == false);
    CHECK_INT(json_get_int(o, "name", 5), 5);
    CHECK_STR(json_get_str(o, "n", "dflt"), "dflt");
    CHECK(json_getn(o, "k\0ey", 4) != NULL);
    CHECK(json_get(o, "k") == NULL);

    CHECK_STR(json_double(&a, 1e21)->u.n.text, "1e+21");
    CHECK_STR(json_double(&a, 0.1)->u.n.text, "0.1");
    CHECK(json_double(&a, 2.0)->nflags == (JSON_NUM_INT | JSON_NUM_I64));
    CHECK(json_is(json_double(&a, NAN), JSON_NULL));
    CHECK_STR(json_int(&a, INT64_MIN)->u.n.text, "-9223372036854775808");

    /* parsed arrays have cap == len; pushing copies and keeps old items */
    struct keel_err err;
    struct json_value *p = parse(&a, "[1,2]", &err);
    json_array_push(&a, p, json_int(&a, 3));
    CHECK_STR(write(p, 0), "[1,2,3]");

    struct json_value *c = json_clone(&a, o);
    CHECK(json_equal(c, o));
    CHECK(c->u.members[0].key != o->u.members[0].key);
    json_object_setc(&a, c, "n", json_int(&a, 9));
    CHECK_INT(json_get_int(o, "n", 0), 8);
    arena_cleanup(&a);
}

TEST(type_names)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    static const char *const cases[][2] = {
        {"null", "null"},       {"true", "boolean"},   {"false", "boolean"},
        {"1", "integer"},       {"1.0", "integer"},    {"1.5", "number"},
        {"\"s\"", "string"},    {"[]", "array"},       {"{}", "object"},
        {"1e400", "integer"},   {"1e-400", "number"},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++)
        CHECK_STR(json_type_name(parse(&a, cases[i][0], &err)), cases[i][1]);
    arena_cleanup(&a);
}

TEST(write_compact_pretty)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    const char *doc = "{ \"a\" : [1, 2.50, 1e400, {}], \"b\": {\"c\": \"\\u00e9\\n\\u0001\\/\"},"
                      " \"d\": [] }";
    struct json_value *v = parse(&a, doc, &err);
    REQUIRE(v);
    CHECK_STR(write(v, 0), "{\"a\":[1,2.50,1e400,{}],\"b\":{\"c\":\"\xC3\xA9\\n\\u0001/\"},\"d\":[]}");
    CHECK_STR(write(v, JSON_WRITE_PRETTY), "{\n"
                                           "  \"a\": [\n"
                                           "    1,\n"
                                           "    2.50,\n"
                                           "    1e400,\n"
                                           "    {}\n"
                                           "  ],\n"
                                           "  \"b\": {\n"
                                           "    \"c\": \"\xC3\xA9\\n\\u0001/\"\n"
                                           "  },\n"
                                           "  \"d\": []\n"
                                           "}");
    CHECK_STR(write(parse(&a, "\"\xF0\x9F\x98\x80\xC3\xA9\"", &err), JSON_WRITE_ASCII),
              "\"\\ud83d\\ude00\\u00e9\"");
    /* invalid UTF-8 in a built string is written as U+FFFD */
    CHECK_STR(write(json_string(&a, "a\xFF" "b", 3), 0), "\"a\xEF\xBF\xBD" "b\"");
    CHECK_STR(write(json_string(&a, "a\xFF", 2), JSON_WRITE_ASCII), "\"a\\ufffd\"");

    struct buf b;
    buf_init(&b);
    json_write_string(&b, "q\"\\\b\f\n\r\t\x1f\x7f", 10);
    CHECK_STR(b.data, "\"q\\\"\\\\\\b\\f\\n\\r\\t\\u001f\x7f\"");
    buf_cleanup(&b);

    /* round trip of a long string with escapes in several places */
    char big[3000];
    for (int i = 0; i < 2999; i++) big[i] = (char)(i % 97 == 0 ? '\n' : 'a' + i % 26);
    big[2999] = 0;
    struct json_value *s = json_cstr(&a, big);
    struct json_value *back = parse(&a, write(s, 0), &err);
    REQUIRE(back);
    CHECK(json_equal(s, back));
    arena_cleanup(&a);
}

TEST(write_canonical_fails_cleanly)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v = parse(&a, "[1, 1e400]", &err);
    REQUIRE(v);
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "prefix");
    CHECK(json_write(&b, v, JSON_WRITE_CANONICAL, &err) == KEEL_EINVAL);
    CHECK_STR(b.data, "prefix");
    CHECK_CONTAINS(err.msg, "1e400");
    char hex[65];
    CHECK(json_digest(v, hex, &err) == KEEL_EINVAL);
    buf_cleanup(&b);
    arena_cleanup(&a);
}

TEST(pointer_get)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    /* RFC 6901 section 5 */
    const char *doc = "{\"foo\": [\"bar\", \"baz\"], \"\": 0, \"a/b\": 1, \"c%d\": 2, \"e^f\": 3,"
                      " \"g|h\": 4, \"i\\\\j\": 5, \"k\\\"l\": 6, \" \": 7, \"m~n\": 8}";
    struct json_value *v = parse(&a, doc, &err);
    REQUIRE(v);
    CHECK(json_pointer_get(v, "") == v);
    CHECK(json_pointer_get(v, "/foo") == json_get(v, "foo"));
    CHECK_STR(json_pointer_get(v, "/foo/0")->u.s.str, "bar");
    static const struct {
        const char *ptr;
        int64_t value;
    } cases[] = {{"/", 0},     {"/a~1b", 1}, {"/c%d", 2}, {"/e^f", 3}, {"/g|h", 4},
                 {"/i\\j", 5}, {"/k\"l", 6}, {"/ ", 7},   {"/m~0n", 8}};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct json_value *x = json_pointer_get(v, cases[i].ptr);
        if (!x || x->u.n.i != cases[i].value)
            TEST_FAIL_AT(__FILE__, __LINE__, "pointer %s", cases[i].ptr);
    }
    CHECK(json_pointer_get(v, "foo") == NULL);
    CHECK(json_pointer_get(v, "/foo/2") == NULL);
    CHECK(json_pointer_get(v, "/foo/01") == NULL);
    CHECK(json_pointer_get(v, "/foo/-") == NULL);
    CHECK(json_pointer_get(v, "/foo/0/x") == NULL);
    CHECK(json_pointer_get(v, "/m~2n") == NULL);
    CHECK(json_pointer_get(v, "/m~") == NULL);
    CHECK(json_pointer_get(v, "/nope") == NULL);
    char longkey[300];
    memset(longkey, 'k', sizeof longkey);
    longkey[0] = '/';
    longkey[299] = 0;
    CHECK(json_pointer_get(v, longkey) == NULL);
    arena_cleanup(&a);
}

TEST(pointer_set_append)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v = parse(&a, "{\"a\": [1, {\"b\": 2}], \"s\": \"x\"}", &err);
    REQUIRE(v);
    CHECK(json_pointer_set(&a, v, "/a/1/b", json_int(&a, 3), &err) == 0);
    CHECK(json_pointer_set(&a, v, "/a/-", json_int(&a, 4), &err) == 0);
    CHECK(json_pointer_set(&a, v, "/a/3", json_int(&a, 5), &err) == 0);
    CHECK(json_pointer_set(&a, v, "/a/0", json_int(&a, 0), &err) == 0);
    CHECK(json_pointer_set(&a, v, "/new/deep/x~1y", json_cstr(&a, "z"), &err) == 0);
    CHECK_STR(write(v, 0), "{\"a\":[0,{\"b\":3},4,5],\"s\":\"x\",\"new\":{\"deep\":{\"x/y\":\"z\"}}}");
    CHECK(json_pointer_set(&a, v, "/a/9", json_int(&a, 1), &err) == KEEL_ENOENT);
    CHECK(json_pointer_set(&a, v, "/a/9/x", json_int(&a, 1), &err) == KEEL_ENOENT);
    CHECK(json_pointer_set(&a, v, "/a/x", json_int(&a, 1), &err) == KEEL_ENOENT);
    CHECK(json_pointer_set(&a, v, "/s/t", json_int(&a, 1), &err) == KEEL_ENOENT);
    CHECK_CONTAINS(err.msg, "string");
    CHECK(json_pointer_set(&a, v, "x", json_int(&a, 1), &err) == KEEL_EINVAL);
    CHECK(json_pointer_set(&a, v, "/~x", json_int(&a, 1), &err) == KEEL_EINVAL);
    CHECK(json_pointer_set(&a, v, "", json_int(&a, 1), &err) == 0);
    CHECK_STR(write(v, 0), "1");

    struct buf b;
    buf_init(&b);
    json_pointer_append(&b, "a/b", 3);
    json_pointer_append(&b, "~x~", 3);
    json_pointer_append(&b, "", 0);
    CHECK_STR(b.data, "/a~1b/~0x~0/");
    buf_cleanup(&b);
    arena_cleanup(&a);
}

TEST(canonical_integers_fast_path_matches_ecmascript)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"[1,-5,100,1.0,1e2,-0,0.0]", "[1,-5,100,1,100,0,0]"},
        {"[9007199254740991,-9007199254740991]", "[9007199254740991,-9007199254740991]"},
        /* 2^53 + 1 is not a double: the canonical form is the double's. */
        {"[9007199254740993,9007199254740992]", "[9007199254740992,9007199254740992]"},
        {"[123456789012,1e20,1e21,0.5,-1.5e-7]", "[123456789012,100000000000000000000,1e+21,0.5,-1.5e-7]"},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct arena a;
        arena_init(&a);
        struct json_value *v;
        REQUIRE(json_parse(&a, cases[i].in, strlen(cases[i].in), NULL, &v, NULL) == 0);
        struct buf b;
        buf_init(&b);
        CHECK_INT(json_write(&b, v, JSON_WRITE_CANONICAL, NULL), 0);
        CHECK_STR(b.data, cases[i].want);
        buf_cleanup(&b);
        arena_cleanup(&a);
    }
}
