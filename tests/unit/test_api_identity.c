/*
 * test_api_identity.c — the identities the API authenticates: approver
 * token hashes as keel.yaml writes them, constant-time lookup by token,
 * groups, actor strings, and refusals (duplicates, bad names, bad hashes).
 */
#include "identity/identity.h"
#include "test.h"

#include <string.h>

TEST(approver_tokens_and_groups)
{
    struct identity_set *s = identity_set_new();
    REQUIRE(s);
    char hex[65], hash[80];
    keel_sha256_hex("secret-a", 8, hex);
    snprintf(hash, sizeof hash, "sha256:%s", hex);
    const char *groups[] = {"leads", "oncall"};
    CHECK_INT(identity_add_human(s, "alice", hash, groups, 2, NULL), 0);
    CHECK_INT(identity_add_human(s, "carol", NULL, groups, 1, NULL), 0);
    CHECK_INT(identity_add_agent(s, "support/triage", NULL), 0);
    const struct identity *a = identity_authenticate(s, "secret-a", 8);
    REQUIRE(a);
    CHECK_STR(a->name, "alice");
    CHECK(identity_in_group(a, "oncall"));
    CHECK(!identity_in_group(a, "finance"));
    CHECK(!identity_authenticate(s, "secret-b", 8));
    CHECK(!identity_authenticate(s, "", 0));
    /* No token declared: never authenticates, not even with an all-zero hash. */
    uint8_t zero[32] = {0};
    CHECK(!identity_authenticate(s, (const char *)zero, 0));
    char actor[160];
    identity_actor(a, actor, sizeof actor);
    CHECK_STR(actor, "human:alice");
    identity_actor(identity_find(s, IDENTITY_AGENT, "support/triage"), actor, sizeof actor);
    CHECK_STR(actor, "agent:support/triage");
    identity_actor(identity_system(s), actor, sizeof actor);
    CHECK_STR(actor, "system");
    identity_set_free(s);
}

TEST(refusals)
{
    struct identity_set *s = identity_set_new();
    struct keel_err err;
    keel_err_clear(&err);
    CHECK_INT(identity_add_agent(s, "a/b", &err), 0);
    CHECK_INT(identity_add_agent(s, "a/b", &err), KEEL_EEXIST);
    CHECK_CONTAINS(err.msg, "declared twice");
    CHECK_INT(identity_add_agent(s, "has space", &err), KEEL_EINVAL);
    CHECK_INT(identity_add_agent(s, "", &err), KEEL_EINVAL);
    CHECK_INT(identity_add_human(s, "x", "md5:abc", NULL, 0, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "sha256:");
    char bad[80];
    snprintf(bad, sizeof bad, "sha256:%064d", 0);
    bad[10] = 'g';
    CHECK_INT(identity_add_human(s, "x", bad, NULL, 0, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "hex digit");
    identity_set_free(s);
}
