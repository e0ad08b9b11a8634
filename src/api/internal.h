/*
 * internal.h — what the route files share with server.c: the request
 * handed to a handler and the route table row.  Not included outside api/.
 */
#ifndef KEEL_API_INTERNAL_H
#define KEEL_API_INTERNAL_H

#include <stdatomic.h>

#include "../json/json.h"
#include "api.h"

#define API_MAX_PARAMS 4
#define API_PARAM_MAX 128

/* Who may call a route. */
enum api_access {
    API_PUBLIC = 0, /* no token (health only)                              */
    API_READ,       /* any authenticated identity                          */
    API_ADMIN,      /* the admin token only                                */
};

struct api_request {
    const char *method;
    const char *path;
    char params[API_MAX_PARAMS][API_PARAM_MAX]; /* the {id} segments, in order */
    int nparams;
    const char *body; /* NUL-terminated, body_len bytes (may be "")        */
    size_t body_len;
    const struct identity *actor; /* NULL for API_PUBLIC routes            */
    struct engine *engine;
    struct arena *arena; /* freed when the response has been sent        */
    void *conn;          /* struct MHD_Connection, for query arguments    */
    int status;          /* set by a handler for success statuses (201)   */
    /* Long-polls in progress and the most allowed at once: a waiting
     * handler holds an MHD thread, so at most half of them may wait. */
    _Atomic int *waiters;
    int max_waiters;
};

/* A handler builds *out (in rq->arena) and returns 0, or returns a negative
 * KEEL_E* code with err filled; server.c turns that into a JSON error. */
typedef int (*api_handler)(struct api_request *rq, struct json_value **out,
                           struct keel_err *err);

struct api_route {
    const char *method;
    const char *pattern; /* "/v1/runs/{id}/events"; {x} matches one segment */
    enum api_access access;
    api_handler handler;
};

/* Parses the body as a JSON object; fails with KEEL_EINVAL (positioned) if
 * it is not one.  An empty body gives an empty object. */
int api_body_object(struct api_request *rq, struct json_value **out, struct keel_err *err);
/* A query argument (?limit=10), or NULL (borrowed from the connection). */
const char *api_query(struct api_request *rq, const char *key);

/* Handlers, one file per resource (route_<resource>.c). */
int api_health_get(struct api_request *rq, struct json_value **out, struct keel_err *err);
int api_runs_list(struct api_request *rq, struct json_value **out, struct keel_err *err);
int api_runs_start(struct api_request *rq, struct json_value **out, struct keel_err *err);
int api_runs_show(struct api_request *rq, struct json_value **out, struct keel_err *err);
int api_runs_cancel(struct api_request *rq, struct json_value **out, struct keel_err *err);
int api_runs_reconcile(struct api_request *rq, struct json_value **out, struct keel_err *err);
int api_runs_verify(struct api_request *rq, struct json_value **out, struct keel_err *err);
int api_runs_explain(struct api_request *rq, struct json_value **out, struct keel_err *err);
int api_events_list(struct api_request *rq, struct json_value **out, struct keel_err *err);
int api_approvals_list(struct api_request *rq, struct json_value **out, struct keel_err *err);
int api_approvals_decide(struct api_request *rq, struct json_value **out,
                         struct keel_err *err);
int api_workflows_list(struct api_request *rq, struct json_value **out, struct keel_err *err);
int api_policy_reload(struct api_request *rq, struct json_value **out, struct keel_err *err);
int api_usage_get(struct api_request *rq, struct json_value **out, struct keel_err *err);

/* The route table (routes.c) and the matcher (exposed for unit tests). */
extern const struct api_route api_routes[];
extern const size_t api_route_count;
/* Finds the route for method and path; fills rq->params.  Returns the row,
 * or NULL with *path_known telling 405 (path matched, method did not) from
 * 404. */
const struct api_route *api_route_match(const char *method, const char *path,
                                        struct api_request *rq, bool *path_known);

#endif
