/*
 * route_policy.c — POST /v1/policy/reload: reload policies (and keel.yaml's
 * identities and workflows) without dropping runs.  A set that fails to
 * load is refused with its error and the old one stays.
 */
#include "internal.h"

int api_policy_reload(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    int rc = engine_reload(rq->engine, err);
    if (rc) return rc;
    struct json_value *o = json_object(rq->arena);
    json_object_setc(rq->arena, o, "reloaded", json_bool(rq->arena, true));
    *out = o;
    return 0;
}
