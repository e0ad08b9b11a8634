/*
 * pool.c — every tool server of a config, by name, and tools addressed as
 * "server/tool" (the form workflows and agent tool lists use).
 *
 * Servers start lazily: mcp_pool_add only copies the config; the first call
 * or tool lookup on a server starts it (mcp_client handles that and any
 * restart).  Invariants: names are unique; clients are created at add time
 * and live until mcp_pool_free, so a borrowed struct mcp_client pointer
 * stays valid for the pool's life.  The map is guarded by a mutex so that
 * adding a server while other threads call tools is safe.  The pool also
 * caches each tool's compiled schemas (validate.c).
 */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct mcp_pool {
    pthread_mutex_t mu;
    struct strmap by_name; /* name -> struct mcp_client * */
    struct mcp_validator_cache validators;
};

struct mcp_pool *mcp_pool_new(void)
{
    struct mcp_pool *p = calloc(1, sizeof *p);
    if (!p) abort();
    pthread_mutex_init(&p->mu, NULL);
    strmap_init(&p->by_name);
    pthread_mutex_init(&p->validators.mu, NULL);
    strmap_init(&p->validators.by_name);
    return p;
}

void mcp_pool_free(struct mcp_pool *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->by_name.cap; i++)
        if (p->by_name.slots[i].key) mcp_client_free(p->by_name.slots[i].value);
    strmap_cleanup(&p->by_name);
    mcp_validator_cache_cleanup(&p->validators);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int mcp_pool_add(struct mcp_pool *p, const struct mcp_server_config *cfg, struct keel_err *err)
{
    struct mcp_client *c = NULL;
    int rc = mcp_client_new(cfg, &c, err);
    if (rc) return rc;
    pthread_mutex_lock(&p->mu);
    const char *name = mcp_client_name(c);
    if (strmap_get(&p->by_name, name, strlen(name))) {
        pthread_mutex_unlock(&p->mu);
        rc = keel_fail(err, KEEL_EEXIST,
                       "tool server '%s' is declared twice; give each server a unique name", name);
        mcp_client_free(c);
        return rc;
    }
    strmap_put(&p->by_name, name, strlen(name), c);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static int lookup(struct mcp_pool *p, const char *server, size_t len, struct mcp_client **out,
                  struct keel_err *err)
{
    pthread_mutex_lock(&p->mu);
    struct mcp_client *c = strmap_get(&p->by_name, server, len);
    pthread_mutex_unlock(&p->mu);
    if (!c)
        return keel_fail(err, KEEL_ENOENT,
                         "no tool server named '%.*s'; declare it under `tools:` in keel.yaml",
                         (int)len, server);
    *out = c;
    return 0;
}

int mcp_pool_client(struct mcp_pool *p, const char *server, struct mcp_client **out,
                    struct keel_err *err)
{
    return lookup(p, server, strlen(server), out, err);
}

/* Splits without allocating: the server part is a prefix of qualified. */
static int split(const char *qualified, size_t *server_len, const char **tool,
                 struct keel_err *err)
{
    const char *slash = qualified ? strchr(qualified, '/') : NULL;
    if (!slash || slash == qualified || !slash[1])
        return keel_fail(err, KEEL_EINVAL,
                         "tool name '%s' must have the form server/tool (e.g. helpdesk/get_ticket)",
                         qualified ? qualified : "");
    *server_len = (size_t)(slash - qualified);
    *tool = slash + 1;
    return 0;
}

int mcp_split_name(struct arena *a, const char *qualified, const char **server,
                   const char **tool, struct keel_err *err)
{
    size_t slen = 0;
    const char *t = NULL;
    int rc = split(qualified, &slen, &t, err);
    if (rc) return rc;
    *server = arena_strndup(a, qualified, slen);
    *tool = arena_strdup(a, t);
    return 0;
}

/* The client of the server that qualified ("server/tool") names, and the
 * tool's own name (a suffix of qualified). */
static int route(struct mcp_pool *p, const char *qualified, struct mcp_client **c,
                 const char **tool, struct keel_err *err)
{
    size_t slen = 0;
    int rc = split(qualified, &slen, tool, err);
    return rc ? rc : lookup(p, qualified, slen, c, err);
}

int mcp_pool_call(struct mcp_pool *p, const char *qualified, const struct json_value *args,
                  const char *idempotency_key, int64_t timeout_ms, struct arena *a,
                  struct mcp_call_result *out, struct keel_err *err)
{
    struct mcp_client *c = NULL;
    const char *tool = NULL;
    int rc = route(p, qualified, &c, &tool, err);
    if (rc) return rc;
    return mcp_client_call_tool(c, tool, args, idempotency_key, timeout_ms, a, out, err);
}

int mcp_pool_tool(struct mcp_pool *p, const char *qualified, struct arena *a,
                  struct mcp_tool *out, struct keel_err *err)
{
    struct mcp_client *c = NULL;
    const char *tool = NULL;
    int rc = route(p, qualified, &c, &tool, err);
    if (rc) return rc;
    return mcp_client_tool(c, tool, a, out, err);
}

int mcp_pool_validator(struct mcp_pool *p, const char *qualified,
                       const struct mcp_validator **out, struct keel_err *err)
{
    struct arena a;
    arena_init(&a);
    struct mcp_tool t;
    int rc = mcp_pool_tool(p, qualified, &a, &t, err);
    if (!rc) rc = mcp_validator_cache_get(&p->validators, qualified, &t, out, err);
    arena_cleanup(&a);
    return rc;
}
