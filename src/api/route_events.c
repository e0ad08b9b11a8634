/*
 * route_events.c — GET /v1/runs/{id}/events: a run's journal, in order.
 */
#include "internal.h"

int api_events_list(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    struct json_value *list;
    int rc = engine_run_events(rq->engine, rq->params[0], rq->arena, &list, err);
    if (rc) return rc;
    struct json_value *o = json_object(rq->arena);
    json_object_setc(rq->arena, o, "run", json_cstr(rq->arena, rq->params[0]));
    json_object_setc(rq->arena, o, "events", list);
    *out = o;
    return 0;
}
