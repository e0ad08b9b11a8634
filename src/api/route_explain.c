/*
 * route_explain.c — GET /v1/runs/{id}/explain: the explain report of a run
 * (docs/explain.md): summary first, then the timeline, with the provenance
 * of every state key and the cause of every switch.  Built from the run's
 * journal by the engine and src/obs/; read access.
 */
#include "internal.h"

int api_runs_explain(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    return engine_run_explain(rq->engine, rq->params[0], rq->arena, out, err);
}
