/*
 * test_policy_corpus.c — Cedar's own expectations as the spec: every
 * request of the shared integration tests (../shared/data/cedar-integration)
 * and of the public corpus (../shared/data/cedar-corpus-public.jsonl, about
 * 31,000 requests) must match Cedar's decision, reason set and error set.
 * Mismatches are printed by the runner (policy_test_file).
 */
#include "test.h"

#include <glob.h>

#include "policy/policy.h"

TEST(cedar_integration_tests)
{
    char root[4096], pattern[4200];
    snprintf(root, sizeof root, "%s", test_shared("data/cedar-integration"));
    snprintf(pattern, sizeof pattern, "%s/tests/*/*.json", root);
    glob_t g;
    REQUIRE(glob(pattern, 0, NULL, &g) == 0);
    struct policy_test_opts o = {.root = root, .use_schema = true, .out = stderr};
    struct policy_test_stats st = {0};
    for (size_t i = 0; i < g.gl_pathc; i++) policy_test_file(g.gl_pathv[i], &o, &st);
    CHECK(g.gl_pathc >= 20);
    globfree(&g);
    printf("cedar-integration: %ld requests, %ld passed, %ld failed, %ld not loaded\n",
           st.requests, st.passed, st.failed, st.load_errors);
    CHECK(st.requests >= 70);
    CHECK_INT(st.failed, 0);
    CHECK_INT(st.load_errors, 0);
    CHECK_INT(st.passed, st.requests);
}

TEST(cedar_public_corpus)
{
    struct policy_test_opts o = {.root = ".", .use_schema = true, .out = stderr};
    struct policy_test_stats st = {0};
    REQUIRE(policy_test_file(test_shared("data/cedar-corpus-public.jsonl"), &o, &st) == 0);
    printf("cedar-corpus-public: %ld requests, %ld passed, %ld failed, %ld not loaded\n",
           st.requests, st.passed, st.failed, st.load_errors);
    CHECK(st.requests >= 31000);
    CHECK_INT(st.failed, 0);
    CHECK_INT(st.load_errors, 0);
    CHECK_INT(st.passed, st.requests);
}
