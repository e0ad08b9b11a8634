/*
 * route_approvals.c — approvals: list (GET /v1/approvals[?all=1]) and decide
 * (POST /v1/approvals/{id}/decide with {"decision":"approve"|"deny",
 * "comment"|"reason": "..."}).  The caller's identity is the decider: the
 * engine checks that it is a human of the approval's group (or the admin)
 * and journals it as the actor.
 */
#include "internal.h"

#include <string.h>

#define COMMENT_MAX 4096

int api_approvals_list(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    const char *all = api_query(rq, "all");
    bool pending_only = !(all && (!strcmp(all, "1") || !strcmp(all, "true")));
    struct json_value *list;
    int rc = engine_approval_list(rq->engine, pending_only, rq->actor, rq->arena, &list, err);
    if (rc) return rc;
    struct json_value *o = json_object(rq->arena);
    json_object_setc(rq->arena, o, "approvals", list);
    *out = o;
    return 0;
}

int api_approvals_decide(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    struct json_value *body;
    int rc = api_body_object(rq, &body, err);
    if (rc) return rc;
    const char *d = json_get_str(body, "decision", NULL);
    bool approve;
    if (d && !strcmp(d, "approve")) approve = true;
    else if (d && !strcmp(d, "deny")) approve = false;
    else
        return keel_fail(err, KEEL_EINVAL,
                         "request body needs \"decision\": \"approve\" or \"deny\"");
    const char *comment = json_get_str(body, approve ? "comment" : "reason", NULL);
    if (!comment) comment = json_get_str(body, "comment", "");
    if (!approve && !comment[0])
        return keel_fail(err, KEEL_EINVAL, "a denial needs a \"reason\"");
    if (strlen(comment) > COMMENT_MAX)
        return keel_fail(err, KEEL_ELIMIT, "comment is longer than %d bytes", COMMENT_MAX);
    rc = engine_approval_decide(rq->engine, rq->params[0], rq->actor, approve, comment, err);
    if (rc) return rc;
    struct json_value *o = json_object(rq->arena);
    json_object_setc(rq->arena, o, "id", json_cstr(rq->arena, rq->params[0]));
    json_object_setc(rq->arena, o, "status", json_cstr(rq->arena, approve ? "approved" : "denied"));
    *out = o;
    return 0;
}
