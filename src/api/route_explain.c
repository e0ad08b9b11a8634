/*
 * route_explain.c — GET /v1/runs/{id}/explain: the explain report of a run
 * (docs/explain.md): summary first, then the timeline, with the provenance
 * of every state key and the cause of every switch.  Built from the run's
 * journal by the engine and src/obs/; read access.
 */
#include "internal.h"

#include "../obs/obs.h"

#include <errno.h>
#include <stdlib.h>

/* ?from=N&limit=M: a page of the timeline (docs/explain.md, "Pages"). */
static int page_arg(struct api_request *rq, const char *key, uint32_t lo, uint32_t hi,
                    uint32_t *out, struct keel_err *err)
{
    const char *v = api_query(rq, key);
    if (!v) return 0;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < lo || n > hi)
        return keel_fail(err, KEEL_EINVAL, "%s must be an integer from %u to %u (got '%.40s')", key,
                         lo, hi, v);
    *out = (uint32_t)n;
    return 0;
}

int api_runs_explain(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    uint32_t from = 0, limit = 0;
    int rc = page_arg(rq, "from", 0, UINT32_MAX / 2, &from, err);
    if (!rc) rc = page_arg(rq, "limit", 1, OBS_PAGE_MAX, &limit, err);
    if (rc) return rc;
    return engine_run_explain(rq->engine, rq->params[0], from, limit, rq->arena, out, err);
}
