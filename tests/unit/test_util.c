/* Unit tests for src/util: buffers, arenas, the hash map, durations, ids. */
#include "test.h"

#include <stdint.h>
#include <stdio.h>
#include "util/util.h"

TEST(buf_grows_and_formats)
{
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < 1000; i++) buf_printf(&b, "%d,", i);
    CHECK(b.len > 3000);
    CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
    CHECK_INT(b.data[b.len], 0);
    char *s = buf_detach(&b);
    CHECK(b.data == NULL && b.len == 0);
    free(s);
}

TEST(arena_large_and_small)
{
    struct arena a;
    arena_init(&a);
    char *big = arena_alloc(&a, 1 << 20);
    memset(big, 1, 1 << 20);
    for (int i = 0; i < 10000; i++) {
        char *p = arena_printf(&a, "item-%d", i);
        CHECK(p[0] == 'i');
    }
    arena_reset(&a);
    /* The standard chunks are kept for reuse (the 1 MiB one is freed). */
    size_t kept = a.nspare;
    CHECK(kept >= 1 && kept <= 64);
    CHECK(a.total == 0);
    CHECK_STR(arena_strdup(&a, "again"), "again");
    CHECK_INT((int64_t)a.nspare, (int64_t)kept - 1);
    for (int i = 0; i < 10000; i++) arena_printf(&a, "item-%d", i);
    arena_reset(&a);
    CHECK_INT((int64_t)a.nspare, (int64_t)kept);
    arena_cleanup(&a);
    CHECK(a.nspare == 0 && a.spare == NULL);
}

TEST(strmap_put_get_del)
{
    struct strmap m;
    strmap_init(&m);
    char key[32];
    for (long i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%ld", i);
        CHECK(strmap_put(&m, key, strlen(key), (void *)(i + 1)) == NULL);
    }
    CHECK_INT(m.count, 5000);
    for (long i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof key, "k%ld", i);
        CHECK(strmap_del(&m, key, strlen(key)) == (void *)(i + 1));
    }
    for (long i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%ld", i);
        void *v = strmap_get(&m, key, strlen(key));
        CHECK(v == ((i % 2) ? (void *)(i + 1) : NULL));
    }
    strmap_cleanup(&m);
}

/* keel_i64_text writes what printf's %lld writes, at the edges too. */
TEST(i64_text_matches_printf)
{
    const int64_t v[] = {0, 1, -1, 9, 10, -10, 812, 1700000000000, INT64_MAX, INT64_MIN,
                         INT64_MIN + 1};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char want[32], got[32];
        snprintf(want, sizeof want, "%lld", (long long)v[i]);
        size_t n = keel_i64_text(got, v[i]);
        got[n] = '\0';
        CHECK_STR(got, want);
    }
}

TEST(durations)
{
    int64_t ms = 0;
    CHECK_INT(keel_parse_duration("72h", &ms, NULL), 0);
    CHECK_INT(ms, 72LL * 3600 * 1000);
    CHECK_INT(keel_parse_duration("1h30m", &ms, NULL), 0);
    CHECK_INT(ms, 5400000);
    CHECK_INT(keel_parse_duration("250ms", &ms, NULL), 0);
    CHECK_INT(ms, 250);
    struct keel_err err;
    keel_err_clear(&err);
    CHECK_INT(keel_parse_duration("5 minutes", &ms, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "unit must be one of");
}

TEST(ids_sort_by_time)
{
    char a[64], b[64];
    keel_new_id("run", a, sizeof a);
    CHECK_INT(strlen(a), 30);
    CHECK(strncmp(a, "run_", 4) == 0);
    keel_new_id("run", b, sizeof b);
    CHECK(strcmp(a, b) != 0);
}

TEST(sha256_known_vector)
{
    char hex[65];
    keel_sha256_hex("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* keel_sha256 (OpenSSL) agrees with libsodium's reference on every length
 * across the block boundaries, from many threads at once. */
#include <pthread.h>
#include <sodium.h>

static void *sha_worker(void *arg)
{
    int *bad = arg;
    uint8_t data[300], a[32], b[32];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i * 131 + 7);
    for (size_t len = 0; len <= sizeof data; len++) {
        keel_sha256(data, len, a);
        crypto_hash_sha256(b, data, len);
        if (memcmp(a, b, 32) != 0) (*bad)++;
    }
    return NULL;
}

TEST(sha256_matches_reference)
{
    pthread_t th[4];
    int bad[4] = {0};
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, sha_worker, &bad[i]);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK_INT(bad[0] + bad[1] + bad[2] + bad[3], 0);
}

TEST(err_format)
{
    struct keel_err err;
    keel_err_clear(&err);
    keel_fail_at(&err, KEEL_EINVAL, "wf.yaml", 3, 7, "unknown step kind '%s'", "tol");
    snprintf(err.path, sizeof err.path, "/steps/0");
    char out[2048];
    CHECK_STR(keel_err_format(&err, out, sizeof out),
              "wf.yaml:3:7: at /steps/0: unknown step kind 'tol'");
    CHECK_STR(keel_strerror(KEEL_ENOENT), "ENOENT");
}
