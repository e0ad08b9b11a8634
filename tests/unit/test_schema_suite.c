/*
 * test_schema_suite.c — runs the official JSON-Schema-Test-Suite (draft
 * 2020-12) from ../shared/data/json-schema-test-suite: every required test
 * must pass; optional/ and optional/format/ (with format assertion on)
 * print their pass rates and must stay at or above the recorded floor.
 * Remote references (http://localhost:1234/...) resolve through the
 * registry to the suite's remotes/ folder, never the network.
 *
 * Set KEEL_SCHEMA_VERBOSE=1 to list each failing case.
 */
#include "test.h"

#include "schema/schema.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

struct tally {
    int pass, fail;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_file(struct schema_registry *reg, const char *path, bool format_assert,
                     struct tally *t)
{
    struct buf text;
    buf_init(&text);
    struct keel_err err;
    if (keel_read_file(path, 64u << 20, &text, &err) < 0) {
        fprintf(stderr, "cannot read %s: %s\n", path, err.msg);
        t->fail++;
        return;
    }
    struct arena a;
    arena_init(&a);
    struct json_value *doc;
    if (json_parse(&a, text.data, text.len, NULL, &doc, &err) < 0) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        t->fail++;
        goto out;
    }
    bool verbose = getenv("KEEL_SCHEMA_VERBOSE") != NULL;
    struct schema_result r;
    schema_result_init(&r);
    for (uint32_t g = 0; g < doc->len; g++) {
        const struct json_value *group = doc->u.items[g];
        const struct json_value *tests = json_get(group, "tests");
        struct schema *s = NULL;
        struct schema_opts opts = {.format_assert = format_assert};
        int rc = schema_compile(reg, json_get(group, "schema"), NULL, &opts, &s, &err);
        for (uint32_t i = 0; tests && i < tests->len; i++) {
            const struct json_value *tc = tests->u.items[i];
            bool want = json_get_bool(tc, "valid", false);
            bool ok;
            if (rc < 0) {
                ok = false;
                if (verbose)
                    fprintf(stderr, "FAIL %s: %s: compile: %s\n", path,
                            json_get_str(group, "description", "?"), err.msg);
            } else {
                bool got = schema_validate(s, json_get(tc, "data"), &r);
                /* The collected errors must agree with the verdict. */
                ok = got == want && (got ? r.kept == 0 : r.kept > 0);
                if (!ok && verbose)
                    fprintf(stderr, "FAIL %s: %s / %s: got %s\n", path,
                            json_get_str(group, "description", "?"),
                            json_get_str(tc, "description", "?"), got ? "valid" : "invalid");
            }
            if (ok) t->pass++;
            else t->fail++;
        }
        schema_free(s);
    }
    schema_result_cleanup(&r);
out:
    arena_cleanup(&a);
    buf_cleanup(&text);
}

/* Runs every *.json directly in dir (sorted, for stable output). */
static struct tally run_dir(const char *dir_arg, bool format_assert)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", dir_arg); /* test_shared reuses its buffer */
    struct tally t = {0, 0};
    struct schema_registry *reg = schema_registry_new();
    struct keel_err err;
    char remotes[4096];
    snprintf(remotes, sizeof remotes, "%s", test_shared("data/json-schema-test-suite/remotes"));
    if (schema_registry_add_dir(reg, "http://localhost:1234/", remotes, &err) < 0) {
        fprintf(stderr, "add_dir: %s\n", err.msg);
        t.fail++;
    }
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "no suite at %s\n", dir);
        t.fail++;
        schema_registry_free(reg);
        return t;
    }
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".json")) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct tally ft = {0, 0};
        run_file(reg, path, format_assert, &ft);
        if (getenv("KEEL_SCHEMA_VERBOSE") && ft.fail)
            fprintf(stderr, "  %s: %d/%d\n", names[i], ft.pass, ft.pass + ft.fail);
        t.pass += ft.pass;
        t.fail += ft.fail;
        free(names[i]);
    }
    schema_registry_free(reg);
    return t;
}

static double rate(struct tally t)
{
    return t.pass + t.fail ? 100.0 * t.pass / (t.pass + t.fail) : 0;
}

TEST(suite_required_all_pass)
{
    struct tally t = run_dir(test_shared("data/json-schema-test-suite/tests/draft2020-12"), false);
    printf("draft2020-12 required: %d/%d passed (%.1f%%)\n", t.pass, t.pass + t.fail, rate(t));
    CHECK(t.pass > 1000);
    CHECK_INT(t.fail, 0);
}

TEST(suite_optional_rate)
{
    struct tally t =
        run_dir(test_shared("data/json-schema-test-suite/tests/draft2020-12/optional"), false);
    printf("draft2020-12 optional: %d/%d passed (%.1f%%)\n", t.pass, t.pass + t.fail, rate(t));
    CHECK(rate(t) >= 95.0);
}

TEST(suite_optional_format_rate)
{
    struct tally t = run_dir(
        test_shared("data/json-schema-test-suite/tests/draft2020-12/optional/format"), true);
    printf("draft2020-12 optional/format (assertion on): %d/%d passed (%.1f%%)\n", t.pass,
           t.pass + t.fail, rate(t));
    CHECK(rate(t) >= 95.0);
}
