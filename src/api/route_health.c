/*
 * route_health.c — GET /v1/health: readiness, without a token, so scripts
 * and tests can wait for the daemon without knowing its credentials.
 */
#include "internal.h"

int api_health_get(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    struct json_value *o = json_object(rq->arena);
    json_object_setc(rq->arena, o, "ok", json_bool(rq->arena, true));
    *out = o;
    return 0;
}
