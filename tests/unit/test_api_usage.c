/*
 * test_api_usage.c — GET /v1/usage at the handler: the route row (read
 * access, GET only) and the long-request slot it shares with long-polls —
 * with every slot held it answers EBUSY (409) at once and gives the slot
 * count back untouched.  The query itself, end to end, is
 * tests/integration/usage.py; the sums are test_engine_usage.c's.
 */
#include "api/api.h"
#include "api/internal.h"
#include "test.h"

#include <stdatomic.h>
#include <string.h>

TEST(usage_route_row)
{
    struct api_request rq;
    memset(&rq, 0, sizeof rq);
    bool known = false;
    const struct api_route *r = api_route_match("GET", "/v1/usage", &rq, &known);
    REQUIRE(r != NULL);
    CHECK(r->handler == api_usage_get);
    CHECK_INT(r->access, API_READ);
    r = api_route_match("GET", "/v1/usage/", &rq, &known);
    CHECK(r && r->handler == api_usage_get);
    r = api_route_match("POST", "/v1/usage", &rq, &known);
    CHECK(r == NULL && known); /* 405 */
}

TEST(usage_busy_when_every_slot_is_held)
{
    struct arena a;
    arena_init(&a);
    _Atomic int waiters = 4;
    struct api_request rq;
    memset(&rq, 0, sizeof rq);
    rq.method = "GET";
    rq.path = "/v1/usage";
    rq.arena = &a;
    rq.waiters = &waiters;
    rq.max_waiters = 4;
    /* No engine and no connection: a busy server must not reach either. */
    struct json_value *out = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    CHECK_INT(api_usage_get(&rq, &out, &err), KEEL_EBUSY);
    CHECK_CONTAINS(err.msg, "retry");
    CHECK(out == NULL);
    CHECK_INT(atomic_load(&waiters), 4);
    CHECK_INT(api_status_for(KEEL_EBUSY), 409);
    /* More holders than slots (long-polls past the cap): still refused. */
    waiters = 7;
    CHECK_INT(api_usage_get(&rq, &out, &err), KEEL_EBUSY);
    CHECK_INT(atomic_load(&waiters), 7);
    arena_cleanup(&a);
}
