/*
 * route_workflows.c — GET /v1/workflows: the workflows the engine loaded.
 */
#include "internal.h"

int api_workflows_list(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    struct json_value *list;
    int rc = engine_workflow_list(rq->engine, rq->arena, &list, err);
    if (rc) return rc;
    struct json_value *o = json_object(rq->arena);
    json_object_setc(rq->arena, o, "workflows", list);
    *out = o;
    return 0;
}
