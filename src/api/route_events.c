/*
 * route_events.c — GET /v1/runs/{id}/events[?from=SEQ&limit=N]: a run's
 * journal, in order (from seq SEQ, at most N events, N <= 10000).
 */
#include "internal.h"

#include <stdlib.h>

static int int_arg(struct api_request *rq, const char *key, int64_t lo, int64_t hi, int64_t dflt,
                   int64_t *out, struct keel_err *err)
{
    const char *s = api_query(rq, key);
    *out = dflt;
    if (!s) return 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return keel_fail(err, KEEL_EINVAL, "%s must be an integer from %lld to %lld", key,
                         (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

int api_events_list(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    int64_t from, limit;
    int rc = int_arg(rq, "from", 1, INT64_MAX, 1, &from, err);
    if (!rc) rc = int_arg(rq, "limit", 1, 10000, 10000, &limit, err);
    if (rc) return rc;
    struct json_value *list;
    rc = engine_run_events(rq->engine, rq->params[0], from, limit, rq->arena, &list, err);
    if (rc) return rc;
    struct json_value *o = json_object(rq->arena);
    json_object_setc(rq->arena, o, "run", json_cstr(rq->arena, rq->params[0]));
    json_object_setc(rq->arena, o, "events", list);
    *out = o;
    return 0;
}
