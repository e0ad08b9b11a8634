/*
 * route_usage.c — GET /v1/usage: model usage and cost summed across runs,
 * per workflow, agent and model (engine_usage; docs/api.md "Usage").
 *
 *   ?since=T   window start (inclusive); default: the beginning
 *   ?until=T   window end (exclusive); default: now
 *   ?workflow=NAME, ?agent=team/name   filters
 *
 * T is whatever engine_usage_time reads: RFC 3339, a date, "now", or a
 * duration ago ("-7d").  Relative times are taken against this server's
 * clock when the request arrives.  Read access: any authenticated identity.
 * A query may read much of the store, so it holds one of the long-request
 * slots long-polls use (api_config.max_waiters); none free: 409
 * EBUSY, retry.
 */
#include "internal.h"

#include <stdatomic.h>
#include <string.h>

/* Parses the time parameter key into *ms (left alone when absent).
 * A query string decodes '+' as a space, so an offset sent unencoded
 * ("...T09:00:00+01:00") arrives as "...T09:00:00 01:00": a space followed
 * by exactly hh:mm at the end of a value longer than a date is read as the
 * '+' it was. */
static int time_param(struct api_request *rq, const char *key, int64_t now, int64_t *ms,
                      struct keel_err *err)
{
    const char *v = api_query(rq, key);
    if (!v) return 0;
    char fixed[72];
    size_t n = strlen(v);
    if (n > 16 && n < sizeof fixed && v[n - 6] == ' ' && v[n - 3] == ':') {
        memcpy(fixed, v, n + 1);
        fixed[n - 6] = '+';
        v = fixed;
    }
    int rc = engine_usage_time(v, now, ms, err);
    if (rc) keel_err_prefix(err, "query parameter %s", key);
    return rc;
}

/* A name filter: absent is NULL; present must be non-empty. */
static int name_param(struct api_request *rq, const char *key, const char *example,
                      const char **out, struct keel_err *err)
{
    const char *v = api_query(rq, key);
    if (v && !*v)
        return keel_fail(err, KEEL_EINVAL,
                         "query parameter %s is empty; give a name (e.g. %s=%s) or leave it out",
                         key, key, example);
    *out = v;
    return 0;
}

/* The query itself, once it holds a slot. */
static int usage_get(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    int64_t now = keel_wall_ms();
    struct engine_usage_query q = {.until_ms = now};
    int rc = time_param(rq, "since", now, &q.since_ms, err);
    if (!rc) rc = time_param(rq, "until", now, &q.until_ms, err);
    if (!rc) rc = name_param(rq, "workflow", "support-triage", &q.workflow, err);
    if (!rc) rc = name_param(rq, "agent", "support/triage", &q.agent, err);
    if (rc) return rc;
    if (q.agent) {
        /* Agents are identities "team/name" (keel.yaml agents:). */
        const char *name = strncmp(q.agent, "agent:", 6) ? q.agent : q.agent + 6;
        const char *slash = strchr(name, '/');
        if (!slash || slash == name || !slash[1])
            return keel_fail(err, KEEL_EINVAL,
                             "query parameter agent \"%.128s\" is not an agent identity; write "
                             "team/name, e.g. agent=support/triage",
                             q.agent);
    }
    if (q.until_ms == 0)
        return keel_fail(err, KEEL_EINVAL,
                         "query parameter until is the epoch; the window would be empty");
    return engine_usage(rq->engine, &q, rq->arena, out, err);
}

int api_usage_get(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    /* A query over a long history holds its connection for a while, as a
     * long-poll does: it takes one of the same slots, so usage queries and
     * long-polls together stay under api_config.max_waiters.  Checked
     * first: a busy server answers at once. */
    if (atomic_fetch_add(rq->waiters, 1) >= rq->max_waiters) {
        atomic_fetch_sub(rq->waiters, 1);
        return keel_fail(err, KEEL_EBUSY,
                         "the server is busy with other long requests (usage queries, "
                         "long-polls); retry in a few seconds");
    }
    int rc = usage_get(rq, out, err);
    atomic_fetch_sub(rq->waiters, 1);
    return rc;
}
