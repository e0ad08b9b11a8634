/*
 * test.h — the unit-test harness.  A test file includes this header,
 * defines TEST(name) functions and nothing else: the header supplies main(),
 * which runs every registered test (or those whose name contains argv[1])
 * and ends with the line "N passed, N failed".
 *
 * CHECK* macros record a failure and continue; REQUIRE* stop the test.
 * Paths: KEEL_SOURCE_DIR is the source tree; test_shared(path) resolves a
 * path under ../shared next to it.
 */
#ifndef KEEL_TEST_H
#define KEEL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(void);
struct test_case {
    const char *name;
    test_fn fn;
};

#define TEST_MAX 4096
static struct test_case test_cases[TEST_MAX];
static int test_count;
static int test_failed_checks;
static const char *test_current;

static inline void test_register(const char *name, test_fn fn)
{
    if (test_count < TEST_MAX) test_cases[test_count++] = (struct test_case){name, fn};
}

#define TEST(name)                                                                                 \
    static void name(void);                                                                        \
    __attribute__((constructor)) static void test_reg_##name(void)                                 \
    {                                                                                              \
        test_register(#name, name);                                                                \
    }                                                                                              \
    static void name(void)

#define TEST_FAIL_AT(file, line, ...)                                                              \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: %s: ", file, line, test_current);                                  \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        test_failed_checks++;                                                                      \
    } while (0)

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) TEST_FAIL_AT(__FILE__, __LINE__, "check failed: %s", #c);                       \
    } while (0)
#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            TEST_FAIL_AT(__FILE__, __LINE__, "requirement failed: %s", #c);                        \
            return;                                                                                \
        }                                                                                          \
    } while (0)
#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long test_a_ = (long long)(a), test_b_ = (long long)(b);                              \
        if (test_a_ != test_b_)                                                                    \
            TEST_FAIL_AT(__FILE__, __LINE__, "%s == %lld, expected %s == %lld", #a, test_a_, #b,   \
                         test_b_);                                                                 \
    } while (0)
#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *test_a_ = (a), *test_b_ = (b);                                                 \
        if (!test_a_ || !test_b_ || strcmp(test_a_, test_b_) != 0)                                 \
            TEST_FAIL_AT(__FILE__, __LINE__, "%s == \"%s\", expected \"%s\"", #a,                  \
                         test_a_ ? test_a_ : "(null)", test_b_ ? test_b_ : "(null)");              \
    } while (0)
#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        const char *test_h_ = (hay), *test_n_ = (needle);                                          \
        if (!test_h_ || !strstr(test_h_, test_n_))                                                 \
            TEST_FAIL_AT(__FILE__, __LINE__, "%s == \"%s\" does not contain \"%s\"", #hay,         \
                         test_h_ ? test_h_ : "(null)", test_n_);                                   \
    } while (0)

/* Returns a static path "<source>/../shared/<rel>". */
static inline const char *test_shared(const char *rel)
{
    static char path[4096];
    const char *env = getenv("KEEL_SHARED");
    if (env) snprintf(path, sizeof path, "%s/%s", env, rel);
    else snprintf(path, sizeof path, "%s/../shared/%s", KEEL_SOURCE_DIR, rel);
    return path;
}

/* Returns a static path "<source>/<rel>". */
static inline const char *test_source(const char *rel)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", KEEL_SOURCE_DIR, rel);
    return path;
}

#ifndef TEST_NO_MAIN
int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < test_count; i++) {
        if (argc > 1 && !strstr(test_cases[i].name, argv[1])) continue;
        test_current = test_cases[i].name;
        int before = test_failed_checks;
        test_cases[i].fn();
        if (test_failed_checks == before) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "FAIL %s\n", test_cases[i].name);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
#endif

#endif
