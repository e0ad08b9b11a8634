/*
 * test_json_suite.c — runs the parsing half of JSONTestSuite
 * (../shared/data/json-test-suite/test_parsing) through json_parse:
 *
 *   y_*  must parse (the two y_object_duplicated_key* files: Keel's default
 *        duplicate-key policy, JSON_DUP_ERROR, rejects them with a position,
 *        as json.h documents; with JSON_DUP_LAST they parse and keep the
 *        last value, as JavaScript does — both are checked);
 *   n_*  must be rejected with a positioned error (err.line > 0, column > 0);
 *   i_*  (the RFC leaves them to the implementation) must give the result of
 *        the choice recorded for its family in i_choices below, which is the
 *        same table as in docs/json.md.  An i_ file that matches no family
 *        fails the test, so a new suite file forces a decision.
 *
 * Accepted documents are also written compactly, re-parsed and compared
 * with json_equal, so the suite exercises the writer as well.
 *
 * Set KEEL_JSON_VERBOSE=1 to list every file with its outcome.
 */
#include "test.h"

#include "json/json.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* What an i_ family must do, beyond being accepted or rejected. */
enum i_extra {
    I_NONE = 0,
    I_NUM_BIG_INT,   /* exact integer beyond int64: JSON_NUM_INT, not I64, text kept */
    I_NUM_OVERFLOW,  /* valid number whose double is +-inf: canonical write fails    */
    I_NUM_UNDERFLOW, /* valid number whose double is 0: canonical form "[0]"         */
    I_DEPTH,         /* accepted by default (depth 512), rejected with max_depth 499 */
};

struct i_choice {
    const char *prefix; /* file name prefix; the first matching row applies */
    bool accept;
    enum i_extra extra;
    const char *why;
};

/* The documented choices (docs/json.md, "Implementation-defined inputs"). */
static const struct i_choice i_choices[] = {
    {"i_number_too_big_", true, I_NUM_BIG_INT, "numbers keep their text; exact beyond 2^63"},
    {"i_number_very_big_negative_int", true, I_NUM_BIG_INT, "same"},
    {"i_number_huge_exp", true, I_NUM_OVERFLOW, "valid grammar; double is inf"},
    {"i_number_neg_int_huge_exp", true, I_NUM_OVERFLOW, "same"},
    {"i_number_pos_double_huge_exp", true, I_NUM_OVERFLOW, "same"},
    {"i_number_real_neg_overflow", true, I_NUM_OVERFLOW, "same"},
    {"i_number_real_pos_overflow", true, I_NUM_OVERFLOW, "same"},
    {"i_number_double_huge_neg_exp", true, I_NUM_UNDERFLOW, "valid grammar; double is 0"},
    {"i_number_real_underflow", true, I_NUM_UNDERFLOW, "same"},
    {"i_string_UTF-16LE_with_BOM", false, I_NONE, "input must be UTF-8"},
    {"i_string_utf16", false, I_NONE, "input must be UTF-8"},
    {"i_string_", false, I_NONE, "invalid UTF-8 or lone/unpaired surrogate escape"},
    {"i_object_key_lone_2nd_surrogate", false, I_NONE, "lone surrogate escape in a key"},
    {"i_structure_UTF-8_BOM", false, I_NONE, "a BOM is rejected (RFC 8259 8.1: MUST NOT add)"},
    {"i_structure_500_nested_arrays", true, I_DEPTH, "within the default depth of 512"},
};

struct tally {
    int y_ok, y_bad, n_ok, n_bad, i_ok, i_bad;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const struct i_choice *i_choice_for(const char *name)
{
    for (size_t k = 0; k < sizeof i_choices / sizeof i_choices[0]; k++)
        if (strncmp(name, i_choices[k].prefix, strlen(i_choices[k].prefix)) == 0)
            return &i_choices[k];
    return NULL;
}

/* Writes v compactly, re-parses, and checks equality; returns true if fine. */
static bool round_trips(const struct json_value *v)
{
    struct buf out;
    buf_init(&out);
    struct keel_err err;
    bool ok = json_write(&out, v, 0, &err) == 0;
    struct arena a;
    arena_init(&a);
    struct json_value *back = NULL;
    ok = ok && json_parse(&a, out.data, out.len, NULL, &back, &err) == 0 && json_equal(v, back);
    arena_cleanup(&a);
    buf_cleanup(&out);
    return ok;
}

/* Checks the extra property of an accepted i_ file; returns true if it holds. */
static bool i_extra_holds(enum i_extra extra, const struct json_value *doc, const char *text,
                          size_t len)
{
    const struct json_value *n = json_is(doc, JSON_ARRAY) && doc->len == 1 ? doc->u.items[0] : NULL;
    struct buf out;
    buf_init(&out);
    struct keel_err err;
    bool ok = false;
    switch (extra) {
    case I_NONE:
        ok = true;
        break;
    case I_NUM_BIG_INT:
        /* the text survives a compact write unchanged */
        ok = json_is(n, JSON_NUMBER) && (n->nflags & JSON_NUM_INT) &&
             !(n->nflags & JSON_NUM_I64) && json_write(&out, doc, 0, &err) == 0 &&
             memmem(text, len, n->u.n.text, strlen(n->u.n.text)) != NULL &&
             memmem(out.data, out.len, n->u.n.text, strlen(n->u.n.text)) != NULL;
        break;
    case I_NUM_OVERFLOW:
        ok = json_is(n, JSON_NUMBER) && isinf(n->u.n.d) &&
             json_write(&out, doc, JSON_WRITE_CANONICAL, &err) == KEEL_EINVAL && err.msg[0];
        break;
    case I_NUM_UNDERFLOW:
        ok = json_is(n, JSON_NUMBER) && n->u.n.d == 0 &&
             json_write(&out, doc, JSON_WRITE_CANONICAL, &err) == 0 && out.len == 3 &&
             memcmp(out.data, "[0]", 3) == 0;
        break;
    case I_DEPTH: {
        struct arena a;
        arena_init(&a);
        struct json_value *v = NULL;
        struct json_parse_opts opts = {.max_depth = 499};
        ok = json_parse(&a, text, len, &opts, &v, &err) == KEEL_ELIMIT && err.line > 0;
        arena_cleanup(&a);
        break;
    }
    }
    buf_cleanup(&out);
    return ok;
}

static void run_file(const char *dir, const char *name, struct tally *t, bool verbose)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct buf text;
    buf_init(&text);
    struct keel_err err;
    if (keel_read_file(path, 64u << 20, &text, &err) < 0) {
        TEST_FAIL_AT(__FILE__, __LINE__, "cannot read %s: %s", path, err.msg);
        buf_cleanup(&text);
        return;
    }
    struct arena a;
    arena_init(&a);
    struct json_value *doc = NULL;
    keel_err_clear(&err);
    int rc = json_parse(&a, text.data, text.len, NULL, &doc, &err);
    bool accepted = rc == 0;

    if (name[0] == 'y' && strncmp(name, "y_object_duplicated_key", 23) == 0) {
        /* rejected by the default policy, accepted with JSON_DUP_LAST */
        struct json_parse_opts last = {.dup = JSON_DUP_LAST};
        struct json_value *v = NULL;
        struct keel_err err2;
        bool ok = rc == KEEL_EINVAL && err.line > 0 && strstr(err.msg, "duplicate key") &&
                  json_parse(&a, text.data, text.len, &last, &v, &err2) == 0 &&
                  json_is(v, JSON_OBJECT) && v->len == 1 && round_trips(v) &&
                  strcmp(json_get_str(v, "a", ""), strstr(name, "and_value") ? "b" : "c") == 0;
        if (ok) t->y_ok++;
        else {
            t->y_bad++;
            TEST_FAIL_AT(__FILE__, __LINE__, "%s: duplicate-key policy not as documented", name);
        }
    } else if (name[0] == 'y') {
        bool ok = accepted && round_trips(doc);
        if (ok) t->y_ok++;
        else {
            t->y_bad++;
            TEST_FAIL_AT(__FILE__, __LINE__, "%s: must parse and round-trip; got %d %d:%d %s",
                         name, rc, err.line, err.column, err.msg);
        }
    } else if (name[0] == 'n') {
        bool ok = !accepted && (rc == KEEL_EINVAL || rc == KEEL_ELIMIT) && err.line > 0 &&
                  err.column > 0 && err.msg[0];
        if (ok) t->n_ok++;
        else {
            t->n_bad++;
            TEST_FAIL_AT(__FILE__, __LINE__, "%s: must be rejected with a position; rc=%d %d:%d",
                         name, rc, err.line, err.column);
        }
    } else if (name[0] == 'i') {
        const struct i_choice *c = i_choice_for(name);
        bool ok = c && accepted == c->accept;
        if (ok && accepted) ok = round_trips(doc) && i_extra_holds(c->extra, doc, text.data, text.len);
        if (ok && !accepted) ok = err.line > 0 && err.column > 0;
        if (ok) t->i_ok++;
        else {
            t->i_bad++;
            TEST_FAIL_AT(__FILE__, __LINE__, "%s: %s; got rc=%d %d:%d %s", name,
                         c ? (c->accept ? "documented as accepted" : "documented as rejected")
                           : "no documented choice for this i_ family",
                         rc, err.line, err.column, err.msg);
        }
    }
    if (verbose)
        printf("%-60s %s%s%s\n", name, accepted ? "accepted" : "rejected", accepted ? "" : ": ",
               accepted ? "" : err.msg);
    arena_cleanup(&a);
    buf_cleanup(&text);
}

TEST(json_test_suite_parsing)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_shared("data/json-test-suite/test_parsing"));
    DIR *d = opendir(dir);
    REQUIRE(d != NULL);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strstr(e->d_name, ".json")) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 512;
            names = realloc(names, cap * sizeof *names);
            REQUIRE(names != NULL);
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    bool verbose = getenv("KEEL_JSON_VERBOSE") != NULL;
    struct tally t = {0};
    for (size_t i = 0; i < n; i++) {
        run_file(dir, names[i], &t, verbose);
        free(names[i]);
    }
    free(names);
    printf("json-test-suite: y %d/%d, n %d/%d, i %d/%d as documented\n", t.y_ok,
           t.y_ok + t.y_bad, t.n_ok, t.n_ok + t.n_bad, t.i_ok, t.i_ok + t.i_bad);
    /* the suite as stored has 95 y_, 188 n_, 35 i_ files: a short count means
     * the data moved, not that the parser passed */
    CHECK(t.y_ok + t.y_bad >= 95);
    CHECK(t.n_ok + t.n_bad >= 188);
    CHECK(t.i_ok + t.i_bad >= 35);
    CHECK_INT(t.y_bad + t.n_bad + t.i_bad, 0);
}

/* Every row of the choice table is used by some file (no dead documentation). */
TEST(json_test_suite_choices_used)
{
    const char *dir = test_shared("data/json-test-suite/test_parsing");
    DIR *d = opendir(dir);
    REQUIRE(d != NULL);
    size_t nrows = sizeof i_choices / sizeof i_choices[0];
    bool used[sizeof i_choices / sizeof i_choices[0]] = {false};
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] != 'i') continue;
        const struct i_choice *c = i_choice_for(e->d_name);
        if (c) used[c - i_choices] = true;
    }
    closedir(d);
    for (size_t k = 0; k < nrows; k++)
        if (!used[k]) TEST_FAIL_AT(__FILE__, __LINE__, "choice row %s matches no file", i_choices[k].prefix);
}

/* Strings mixing escapes with plain runs and multi-byte UTF-8 (the parser
 * copies runs between escapes whole and checks common UTF-8 forms inline). */
TEST(json_strings_escapes_and_utf8)
{
    static const struct {
        const char *in, *out;
        size_t out_len;
    } ok[] = {
        {"\"a\\nb\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\\u00e9xyz\\\\\"",
         "a\nb\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc3\xa9xyz\\", 18},
        {"\"\\\"0123456789abcdef\\t\xef\xbf\xbf\xee\x80\x80\"",
         "\"0123456789abcdef\t\xef\xbf\xbf\xee\x80\x80", 24},
        {"\"\xe0\xa0\x80\xed\x9f\xbf\\u0000z\"", "\xe0\xa0\x80\xed\x9f\xbf\0z", 8},
        {"\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\xf3\xbf\xbf\xbf\"",
         "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\xf3\xbf\xbf\xbf", 12},
    };
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++) {
        struct arena a;
        arena_init(&a);
        struct json_value *v = NULL;
        struct keel_err err;
        CHECK_INT(json_parse(&a, ok[k].in, strlen(ok[k].in), NULL, &v, &err), 0);
        CHECK(json_is(v, JSON_STRING) && v->len == ok[k].out_len &&
              memcmp(v->u.s.str, ok[k].out, ok[k].out_len) == 0);
        arena_cleanup(&a);
    }
    /* invalid sequences, with and without an earlier escape */
    static const char *const bad[] = {"\"\xed\xa0\x80\"", "\"\\n\xed\xa0\x80\"", "\"\xe0\x9f\xbf\"",
                                      "\"\\n\xc1\xbf\"", "\"\xe1\x80\"", "\"\\t\xe1\x80\"",
                                      "\"\xf0\x8f\xbf\xbf\"", "\"\xf4\x90\x80\x80\"",
                                      "\"\xf5\x80\x80\x80\"", "\"\xf0\x9f\x98\"",
                                      "\"\\n\xf0\x9f\x98z\""};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        struct arena a;
        arena_init(&a);
        struct json_value *v = NULL;
        struct keel_err err;
        CHECK_INT(json_parse(&a, bad[k], strlen(bad[k]), NULL, &v, &err), KEEL_EINVAL);
        CHECK(err.line == 1 && err.column > 1);
        arena_cleanup(&a);
    }
}

/* The claims of docs/json.md about number flags and limit errors. */
TEST(json_documented_number_flags_and_limits)
{
    static const struct {
        const char *text;
        unsigned flags;
    } nums[] = {
        {"1", JSON_NUM_INT | JSON_NUM_I64},   {"1.0", JSON_NUM_INT | JSON_NUM_I64},
        {"1e2", JSON_NUM_INT | JSON_NUM_I64}, {"-0", JSON_NUM_INT | JSON_NUM_I64},
        {"1.5e1", JSON_NUM_INT | JSON_NUM_I64}, {"100000000000000000000", JSON_NUM_INT},
        {"1e400", JSON_NUM_INT},              {"0.5", 0},
        {"1e-400", 0},
    };
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
        struct json_value *v = NULL;
        REQUIRE(json_parse(&a, nums[k].text, strlen(nums[k].text), NULL, &v, &err) == 0);
        if (v->nflags != nums[k].flags)
            TEST_FAIL_AT(__FILE__, __LINE__, "%s: flags %u, documented %u", nums[k].text,
                         v->nflags, nums[k].flags);
    }
    /* depth: error at the bracket that is one too deep */
    struct json_value *v = NULL;
    struct json_parse_opts depth = {.max_depth = 3};
    CHECK_INT(json_parse(&a, "[[[[1]]]]", 9, &depth, &v, &err), KEEL_ELIMIT);
    CHECK_INT(err.line, 1);
    CHECK_INT(err.column, 4);
    CHECK_INT(json_parse(&a, "[[[1]]]", 7, &depth, &v, &err), 0);
    /* size: error at 1:1 */
    struct json_parse_opts size = {.max_size = 4};
    CHECK_INT(json_parse(&a, "[1,2]", 5, &size, &v, &err), KEEL_ELIMIT);
    CHECK_INT(err.line, 1);
    CHECK_INT(err.column, 1);
    arena_cleanup(&a);
}
