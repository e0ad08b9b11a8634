/*
 * route_runs.c — runs: start (POST /v1/runs), list, show, cancel, reconcile,
 * verify.
 * Bodies and answers are in docs/api.md.
 */
#include "internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

int api_runs_start(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    struct json_value *body;
    int rc = api_body_object(rq, &body, err);
    if (rc) return rc;
    struct json_value *wf = json_get(body, "workflow");
    if (!json_is(wf, JSON_STRING) || wf->len == 0)
        return keel_fail(err, KEEL_EINVAL,
                         "request body needs \"workflow\": the name of a workflow (see GET "
                         "/v1/workflows)");
    struct json_value *input = json_get(body, "input");
    if (!input) input = json_object(rq->arena);
    char id[64];
    rc = engine_run_start(rq->engine, wf->u.s.str, input, rq->actor, id, sizeof id, err);
    if (rc) return rc;
    struct json_value *o = json_object(rq->arena);
    json_object_setc(rq->arena, o, "id", json_cstr(rq->arena, id));
    json_object_setc(rq->arena, o, "status", json_cstr(rq->arena, "running"));
    rq->status = 201;
    *out = o;
    return 0;
}

int api_runs_list(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    int limit = 100;
    const char *l = api_query(rq, "limit");
    if (l) {
        char *end;
        long v = strtol(l, &end, 10);
        if (!*l || *end || v < 1 || v > 1000)
            return keel_fail(err, KEEL_EINVAL, "limit must be an integer from 1 to 1000");
        limit = (int)v;
    }
    struct json_value *list;
    int rc = engine_run_list(rq->engine, limit, rq->arena, &list, err);
    if (rc) return rc;
    struct json_value *o = json_object(rq->arena);
    json_object_setc(rq->arena, o, "runs", list);
    *out = o;
    return 0;
}

int api_runs_show(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    /* ?wait=SECONDS: long-poll until the run stops running (waits or ends). */
    const char *w = api_query(rq, "wait");
    if (w) {
        char *end;
        long secs = strtol(w, &end, 10);
        if (!*w || *end || secs < 0 || secs > 60)
            return keel_fail(err, KEEL_EINVAL, "wait must be a number of seconds from 0 to 60");
        /* Past the cap the answer comes at once (the client polls again). */
        if (atomic_fetch_add(rq->waiters, 1) < rq->max_waiters) {
            int rc = engine_run_wait(rq->engine, rq->params[0], secs * 1000, false, NULL, err);
            atomic_fetch_sub(rq->waiters, 1);
            if (rc) return rc;
        } else {
            atomic_fetch_sub(rq->waiters, 1);
        }
    }
    return engine_run_show(rq->engine, rq->params[0], rq->arena, out, err);
}

int api_runs_cancel(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    int rc = engine_run_cancel(rq->engine, rq->params[0], rq->actor, err);
    if (rc) return rc;
    return engine_run_show(rq->engine, rq->params[0], rq->arena, out, err);
}

/* POST /v1/runs/{id}/reconcile {"decision": "done"|"not_done", "result"?,
 * "comment"?} (docs/api.md). */
int api_runs_reconcile(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    struct json_value *body;
    int rc = api_body_object(rq, &body, err);
    if (rc) return rc;
    const char *d = json_get_str(body, "decision", "");
    bool done = !strcmp(d, "done");
    if (!done && strcmp(d, "not_done") != 0)
        return keel_fail(err, KEEL_EINVAL,
                         "request body needs \"decision\": \"done\" (the effect happened) or "
                         "\"not_done\" (it did not)");
    const char *comment = json_get_str(body, "comment", NULL);
    if (comment && strlen(comment) > 4096)
        return keel_fail(err, KEEL_ELIMIT, "comment is longer than 4096 bytes");
    rc = engine_run_reconcile(rq->engine, rq->params[0], rq->actor, done, json_get(body, "result"),
                              comment, err);
    if (rc) return rc;
    return engine_run_show(rq->engine, rq->params[0], rq->arena, out, err);
}

int api_runs_verify(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    return engine_run_verify(rq->engine, rq->params[0], rq->arena, out, err);
}
