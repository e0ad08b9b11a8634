/*
 * routes.c — the route table (one row per route: method, path pattern,
 * who may call it, handler) and the matcher.  Adding a route is adding a
 * row here and a handler in route_<resource>.c; docs/api.md lists them.
 *
 * Patterns are literal segments and {name} placeholders that match one
 * non-empty segment of at most API_PARAM_MAX-1 bytes from the id alphabet
 * [A-Za-z0-9_.-], so a captured id never needs escaping anywhere.
 */
#include "internal.h"

#include <string.h>

const struct api_route api_routes[] = {
    {"GET", "/v1/health", API_PUBLIC, api_health_get},
    {"GET", "/v1/workflows", API_READ, api_workflows_list},
    {"GET", "/v1/runs", API_READ, api_runs_list},
    {"POST", "/v1/runs", API_ADMIN, api_runs_start},
    {"GET", "/v1/runs/{id}", API_READ, api_runs_show},
    {"POST", "/v1/runs/{id}/cancel", API_ADMIN, api_runs_cancel},
    {"POST", "/v1/runs/{id}/reconcile", API_ADMIN, api_runs_reconcile},
    {"GET", "/v1/runs/{id}/events", API_READ, api_events_list},
    {"GET", "/v1/runs/{id}/verify", API_READ, api_runs_verify},
    {"GET", "/v1/runs/{id}/explain", API_READ, api_runs_explain},
    {"GET", "/v1/approvals", API_READ, api_approvals_list},
    {"POST", "/v1/approvals/{id}/decide", API_READ, api_approvals_decide},
    {"POST", "/v1/policy/reload", API_ADMIN, api_policy_reload},
    {"GET", "/v1/usage", API_READ, api_usage_get},
};
const size_t api_route_count = KEEL_ARRAY_LEN(api_routes);

static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.';
}

/* Matches path against pattern, capturing placeholders into rq. */
static bool match(const char *pattern, const char *path, struct api_request *rq)
{
    const char *p = pattern, *s = path;
    int n = 0;
    while (*p && *s) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (!close) return false;
            size_t len = 0;
            while (s[len] && s[len] != '/') {
                if (!id_char(s[len])) return false;
                len++;
            }
            if (len == 0 || len >= API_PARAM_MAX || n >= API_MAX_PARAMS) return false;
            memcpy(rq->params[n], s, len);
            rq->params[n][len] = '\0';
            n++;
            p = close + 1;
            s += len;
            continue;
        }
        if (*p != *s) return false;
        p++;
        s++;
    }
    if (*p || *s) return false;
    rq->nparams = n;
    return true;
}

const struct api_route *api_route_match(const char *method, const char *path,
                                        struct api_request *rq, bool *path_known)
{
    *path_known = false;
    /* A trailing slash is the same resource ("/v1/runs/" = "/v1/runs"). */
    char trimmed[1024];
    size_t n = strlen(path);
    if (n >= sizeof trimmed) return NULL;
    memcpy(trimmed, path, n + 1);
    while (n > 1 && trimmed[n - 1] == '/') trimmed[--n] = '\0';
    for (size_t i = 0; i < api_route_count; i++) {
        if (!match(api_routes[i].pattern, trimmed, rq)) continue;
        if (!strcmp(api_routes[i].method, method)) return &api_routes[i];
        *path_known = true;
    }
    return NULL;
}
