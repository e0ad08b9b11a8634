/*
 * client.c — the MCP stdio client: one struct mcp_client per tool server.
 *
 * Transport (MCP "Transports", stdio): the server is a child process; each
 * message is one line of JSON on its stdin/stdout, UTF-8, no embedded
 * newlines; stderr is free-form log text.  Keel spawns the child in its own
 * process group with only the three standard descriptors open, so a kill of
 * the group reaches whatever the server started.
 *
 * Threads: any number of callers, plus one reader thread per process
 * incarnation.  A caller registers a waiter {id, generation} under `mu`,
 * writes its request under `wmu`, and sleeps on the waiter's condition
 * variable; the reader reads lines, and for each response finds the waiter
 * by id, hands it the raw line and signals it.  The caller then decodes the
 * line into its own arena (arenas are single-threaded, so the reader never
 * builds values for callers).
 *
 * Session state machine (fields under `mu`):
 *
 *     IDLE ──call──► STARTING ──initialize+list ok──► RUNNING
 *                       │  ▲                             │
 *              fail     │  │ next call                   │ EOF / exit /
 *                       ▼  │                             │ malformed line
 *                       DEAD ◄────────────────────────────┘
 *     any state ──mcp_client_free──► CLOSING
 *
 *   transition                 function
 *   IDLE/DEAD → STARTING       ensure_running (the caller that finds it so)
 *   STARTING → RUNNING/DEAD    ensure_running after start_process returns
 *   RUNNING → DEAD             reader_main when its process is gone
 *   * → CLOSING                mcp_client_free
 *
 * Invariants:
 *   - Generations: each spawned process gets gen = ++c->gen.  A waiter
 *     belongs to one generation and is failed when that process dies; a
 *     request is only written if the stdin it is about to use belongs to the
 *     waiter's generation (checked under `wmu`), so a request meant for a
 *     dead process is never delivered to its successor.
 *   - Ids are never reused over the client's life, so a late response from
 *     a cancelled or timed-out call matches nothing and is dropped.
 *   - Only the reader thread reaps its child.  Signals to the group are sent
 *     under `mu` while `reaped` is false, so they never reach a recycled pid.
 *   - The reader never blocks writing to the server: its replies to the
 *     server's own requests (ping) go through a non-blocking outbox.
 *   - Every size the server controls is capped: a line at MCP_MAX_MESSAGE,
 *     tools/list at MCP_MAX_LIST_PAGES pages and MCP_MAX_TOOLS tools.
 *
 * This file holds the lifecycle (start, handshake, restart, shutdown) and
 * the public calls (tools, ping, tools/call).  Requests and the reader
 * thread are in client_rpc.c; the config copy and the child process in
 * client_spawn.c; the structures they share in internal.h.
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define KEEL_CLIENT_VERSION "0.1.0"

/* Protocol revisions this client can speak.  The first is what it asks for;
 * a server may answer with an older one it prefers (lifecycle, version
 * negotiation).  All of them carry tools/call the same way. */
static const char *const supported_versions[] = {MCP_PROTOCOL_VERSION, "2025-06-18",
                                                 "2025-03-26"};

/* ---- small helpers ----------------------------------------------------- */

/* Sends sig to the server's process group if it has not been reaped.
 * Called with mu held (see the invariant in the header comment). */
static void signal_group_locked(struct mcp_client *c, int sig)
{
    if (c->pid > 0 && !c->reaped) {
        if (killpg(c->pid, sig) != 0) kill(c->pid, sig);
    }
}

static const struct mcp_tool_config *tool_config(const struct mcp_client *c, const char *tool)
{
    for (size_t i = 0; i < c->cfg.ntools; i++)
        if (!strcmp(c->cfg.tools[i].tool, tool)) return &c->cfg.tools[i];
    return NULL;
}

/* mcp_roundtrip for a caller that never retries. */
static int roundtrip(struct mcp_client *c, uint64_t gen, const char *method,
                     const struct json_value *params, int64_t timeout_ms, struct arena *a,
                     struct mcp_rpc_msg *resp, const char *what, struct keel_err *err)
{
    return mcp_roundtrip(c, gen, method, params, timeout_ms, a, resp, what, NULL, err);
}

/* ---- tools ------------------------------------------------------------- */

/* Decodes one tools/list entry of this client's server. */
static int tool_from_json(struct mcp_client *c, struct json_value *raw, struct mcp_tool *t,
                          struct keel_err *err)
{
    int rc = mcp_tool_decode(raw, c->cfg.name, t, err);
    if (rc) keel_err_prefix(err, "server '%s': tools/list", c->cfg.name);
    return rc;
}

/* Runs tools/list over all pages for generation gen and installs the result
 * as the client's tool cache. */
static int fetch_tools(struct mcp_client *c, uint64_t gen, int64_t timeout_ms,
                       struct keel_err *err)
{
    struct arena work, keep;
    arena_init(&work);
    arena_init(&keep);
    struct mcp_tool *tools = NULL;
    size_t n = 0, cap = 0;
    const char *cursor = NULL;
    int rc = 0;
    for (int page = 0;; page++) {
        if (page >= MCP_MAX_LIST_PAGES) {
            rc = keel_fail(err, KEEL_ELIMIT, "server '%s': tools/list has more than %d pages",
                           c->cfg.name, MCP_MAX_LIST_PAGES);
            goto out;
        }
        struct json_value *params = NULL;
        if (cursor) {
            params = json_object(&work);
            json_object_setc(&work, params, "cursor", json_cstr(&work, cursor));
        }
        struct mcp_rpc_msg m;
        rc = roundtrip(c, gen, "tools/list", params, timeout_ms, &work, &m, "tools/list", err);
        if (rc) goto out;
        struct json_value *list = json_get(m.result, "tools");
        if (!json_is(list, JSON_ARRAY)) {
            rc = keel_fail(err, KEEL_EPROTO, "server '%s': tools/list result has no tools array",
                           c->cfg.name);
            goto out;
        }
        for (uint32_t i = 0; i < list->len; i++) {
            if (n >= MCP_MAX_TOOLS) {
                rc = keel_fail(err, KEEL_ELIMIT, "server '%s' lists more than %d tools",
                               c->cfg.name, MCP_MAX_TOOLS);
                goto out;
            }
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                struct mcp_tool *nt = arena_alloc(&keep, ncap * sizeof *nt);
                if (n) memcpy(nt, tools, n * sizeof *nt);
                tools = nt;
                cap = ncap;
            }
            struct json_value *raw = json_clone(&keep, list->u.items[i]);
            rc = tool_from_json(c, raw, &tools[n], err);
            if (rc) goto out;
            for (size_t j = 0; j < n; j++)
                if (!strcmp(tools[j].name, tools[n].name)) {
                    rc = keel_fail(err, KEEL_EPROTO, "server '%s' lists tool '%s' twice",
                                   c->cfg.name, tools[n].name);
                    goto out;
                }
            n++;
        }
        struct json_value *next = json_get(m.result, "nextCursor");
        if (!json_is(next, JSON_STRING) || next->len == 0) break;
        if (cursor && !strcmp(cursor, next->u.s.str)) {
            rc = keel_fail(err, KEEL_EPROTO, "server '%s': tools/list returned the same cursor "
                           "twice", c->cfg.name);
            goto out;
        }
        cursor = arena_strdup(&work, next->u.s.str);
    }
    pthread_mutex_lock(&c->mu);
    if (c->gen == gen) {
        struct arena old = c->tools_arena;
        c->tools_arena = keep;
        c->tools = tools;
        c->ntools = n;
        c->tools_stale = false;
        keep = old; /* freed below */
    }
    pthread_mutex_unlock(&c->mu);
out:
    arena_cleanup(&work);
    arena_cleanup(&keep);
    return rc;
}

/* Copies tool t into arena a, resolving the effective idempotency. */
static void tool_copy(struct mcp_client *c, struct arena *a, const struct mcp_tool *t,
                      struct mcp_tool *out)
{
    struct json_value *raw = json_clone(a, t->raw);
    struct keel_err ignored;
    (void)tool_from_json(c, raw, out, &ignored); /* validated when listed */
    out->server = arena_strdup(a, c->cfg.name);
    enum mcp_override o = c->cfg.idempotent;
    const struct mcp_tool_config *tc = tool_config(c, t->name);
    if (tc && tc->idempotent != MCP_FROM_ANNOTATIONS) o = tc->idempotent;
    out->idempotent = o == MCP_FORCE_YES   ? true
                      : o == MCP_FORCE_NO ? false
                                          : out->idempotent_hint;
}

/* ---- lifecycle --------------------------------------------------------- */

static bool version_supported(const char *v, const char **canon)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(supported_versions); i++)
        if (!strcmp(v, supported_versions[i])) {
            *canon = supported_versions[i];
            return true;
        }
    return false;
}

/* Joins the previous reader thread, if any (its process is gone or being
 * killed).  Called without mu. */
static void join_reader(struct mcp_client *c)
{
    pthread_mutex_lock(&c->mu);
    bool live = c->reader_live;
    pthread_t t = c->reader;
    c->reader_live = false;
    pthread_mutex_unlock(&c->mu);
    if (live) pthread_join(t, NULL);
}

/* Spawns a process and runs the handshake.  Called with state STARTING and
 * mu not held; leaves the process running on success, killed on failure. */
static int start_process(struct mcp_client *c, struct keel_err *err)
{
    join_reader(c);
    struct spawned sp = {0, -1, -1, -1, -1};
    int rc = mcp_spawn(c, &sp, err);
    if (rc) return rc;

    struct reader_ctx *r = malloc(sizeof *r);
    if (!r) abort();
    pthread_mutex_lock(&c->mu);
    uint64_t gen = ++c->gen;
    c->pid = sp.pid;
    c->reaped = false;
    c->reader_done = false;
    c->death[0] = '\0';
    c->death_code = 0;
    c->stats.pid = sp.pid;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_lock(&c->wmu);
    c->in_fd = sp.in_fd;
    c->in_gen = gen;
    pthread_mutex_unlock(&c->wmu);
    *r = (struct reader_ctx){c, gen, sp.pid, sp.pidfd, sp.out_fd, sp.err_fd, {0}};
    buf_init(&r->outbox);
    pthread_t t;
    int prc = pthread_create(&t, NULL, mcp_reader_main, r);
    if (prc) abort(); /* out of threads: nothing sensible to do */
    pthread_mutex_lock(&c->mu);
    c->reader = t;
    c->reader_live = true;
    pthread_mutex_unlock(&c->mu);

    /* Handshake within the start timeout. */
    int64_t deadline = keel_mono_ns() + c->cfg.start_timeout_ms * 1000000;
    struct arena a;
    arena_init(&a);
    struct json_value *params = json_object(&a);
    json_object_setc(&a, params, "protocolVersion", json_cstr(&a, MCP_PROTOCOL_VERSION));
    json_object_setc(&a, params, "capabilities", json_object(&a));
    struct json_value *info = json_object(&a);
    json_object_setc(&a, info, "name", json_cstr(&a, "keel"));
    json_object_setc(&a, info, "version", json_cstr(&a, KEEL_CLIENT_VERSION));
    json_object_setc(&a, params, "clientInfo", info);
    struct mcp_rpc_msg m;
    rc = roundtrip(c, gen, "initialize", params, c->cfg.start_timeout_ms, &a, &m, "initialize",
                   err);
    const char *version = NULL;
    if (!rc) {
        const char *v = json_get_str(m.result, "protocolVersion", NULL);
        if (!v)
            rc = keel_fail(err, KEEL_EPROTO, "server '%s': initialize result has no "
                           "protocolVersion", c->cfg.name);
        else if (!version_supported(v, &version))
            rc = keel_fail(err, KEEL_EPROTO,
                           "server '%s' speaks MCP %.40s; Keel supports %s, %s and %s; upgrade "
                           "the server",
                           c->cfg.name, v, supported_versions[0], supported_versions[1],
                           supported_versions[2]);
        else if (!json_is(json_get(json_get(m.result, "capabilities"), "tools"), JSON_OBJECT))
            rc = keel_fail(err, KEEL_EPROTO,
                           "server '%s' does not offer tools (no capabilities.tools in its "
                           "initialize result)",
                           c->cfg.name);
    }
    if (!rc) {
        struct buf note;
        buf_init(&note);
        mcp_rpc_write_notification(&note, "notifications/initialized", NULL);
        (void)mcp_send_line(c, gen, &note);
        buf_cleanup(&note);
        int64_t left = (deadline - keel_mono_ns()) / 1000000;
        rc = fetch_tools(c, gen, left > 0 ? left : 1, err);
    }
    arena_cleanup(&a);
    pthread_mutex_lock(&c->mu);
    if (rc) {
        if (c->gen == gen) signal_group_locked(c, SIGKILL);
    } else {
        c->protocol_version = version;
        c->stats.starts++;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc && err) keel_err_prefix(err, "starting tool server '%s'", c->cfg.name);
    return rc;
}

/* Makes sure a process is running; returns its generation in *gen. */
static int ensure_running(struct mcp_client *c, uint64_t *gen, struct keel_err *err)
{
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (c->state == ST_RUNNING) {
            *gen = c->gen;
            pthread_mutex_unlock(&c->mu);
            return 0;
        }
        if (c->state == ST_CLOSING) {
            pthread_mutex_unlock(&c->mu);
            return keel_fail(err, KEEL_ESTATE, "server '%s' is shutting down", c->cfg.name);
        }
        if (c->state == ST_STARTING) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        /* IDLE or DEAD: this caller starts it. */
        c->state = ST_STARTING;
        pthread_mutex_unlock(&c->mu);
        int rc = start_process(c, err);
        pthread_mutex_lock(&c->mu);
        if (c->state == ST_STARTING) {
            /* The process may have died between the handshake and here. */
            if (!rc && c->reaped) {
                rc = keel_fail(err, c->death_code ? c->death_code : KEEL_EIO, "%s", c->death);
            }
            c->state = rc ? ST_DEAD : ST_RUNNING;
        }
        pthread_cond_broadcast(&c->cv);
        if (rc) {
            pthread_mutex_unlock(&c->mu);
            return rc;
        }
    }
}

static int client_alloc(const struct mcp_server_config *cfg, struct mcp_client **out,
                        struct keel_err *err)
{
    struct mcp_client *c = calloc(1, sizeof *c);
    if (!c) return keel_fail(err, KEEL_ENOMEM, "out of memory");
    arena_init(&c->cfg_arena);
    int rc = mcp_config_copy(&c->cfg_arena, cfg, &c->cfg, err);
    if (rc) {
        arena_cleanup(&c->cfg_arena);
        free(c);
        return rc;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->wmu, NULL);
    cond_init_monotonic(&c->cv);
    c->pending.prev = c->pending.next = &c->pending;
    c->state = ST_IDLE;
    c->reaped = true;
    c->in_fd = -1;
    c->protocol_version = "";
    arena_init(&c->tools_arena);

    /* A write to a server that just died must return EPIPE, not kill Keel.
     * Only replace the default disposition: respect a host's own handler. */
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO)) {
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &ign, NULL);
    }
    *out = c;
    return 0;
}

int mcp_client_new(const struct mcp_server_config *cfg, struct mcp_client **out,
                   struct keel_err *err)
{
    return client_alloc(cfg, out, err);
}

int mcp_client_start(const struct mcp_server_config *cfg, struct mcp_client **out,
                     struct keel_err *err)
{
    struct mcp_client *c;
    int rc = client_alloc(cfg, &c, err);
    if (rc) return rc;
    uint64_t gen;
    rc = ensure_running(c, &gen, err);
    if (rc) {
        mcp_client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Waits until the current reader has finished or the deadline passes.
 * Called with mu held. */
static bool wait_reader_done(struct mcp_client *c, int64_t ms)
{
    struct timespec deadline;
    monotonic_deadline(&deadline, ms);
    while (c->reader_live && !c->reader_done) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT) break;
    }
    return !c->reader_live || c->reader_done;
}

void mcp_client_free(struct mcp_client *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->state = ST_CLOSING;
    char msg[KEEL_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "server '%s' is shutting down", c->cfg.name);
    mcp_fail_pending(c, 0, KEEL_ESTATE, msg);
    pthread_mutex_unlock(&c->mu);

    /* MCP shutdown over stdio: close the server's stdin and let it exit;
     * then SIGTERM; then SIGKILL, each after the grace period. */
    pthread_mutex_lock(&c->wmu);
    close_fd(&c->in_fd);
    pthread_mutex_unlock(&c->wmu);
    pthread_mutex_lock(&c->mu);
    if (!wait_reader_done(c, c->cfg.shutdown_timeout_ms)) {
        signal_group_locked(c, SIGTERM);
        if (!wait_reader_done(c, c->cfg.shutdown_timeout_ms)) signal_group_locked(c, SIGKILL);
    }
    pthread_mutex_unlock(&c->mu);
    join_reader(c);

    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->wmu);
    arena_cleanup(&c->tools_arena);
    arena_cleanup(&c->cfg_arena);
    free(c);
}

const char *mcp_client_name(const struct mcp_client *c)
{
    return c->cfg.name;
}

void mcp_client_stats(struct mcp_client *c, struct mcp_client_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    out->protocol_version = c->protocol_version;
    pthread_mutex_unlock(&c->mu);
}

int mcp_client_ping(struct mcp_client *c, int64_t timeout_ms, struct keel_err *err)
{
    struct arena a;
    arena_init(&a);
    int rc;
    for (int attempt = 0;; attempt++) {
        uint64_t gen;
        rc = ensure_running(c, &gen, err);
        if (rc) break;
        struct mcp_rpc_msg m;
        bool unsent = false;
        rc = mcp_roundtrip(c, gen, "ping", NULL,
                           timeout_ms > 0 ? timeout_ms : c->cfg.call_timeout_ms, &a, &m, "ping",
                           &unsent, err);
        if (!rc || !unsent || attempt == 2) break;
    }
    arena_cleanup(&a);
    return rc;
}

/* Refreshes the tool cache when the server said it changed. */
static int ensure_tools(struct mcp_client *c, struct keel_err *err)
{
    uint64_t gen;
    int rc = ensure_running(c, &gen, err);
    if (rc) return rc;
    pthread_mutex_lock(&c->mu);
    bool stale = c->tools_stale;
    pthread_mutex_unlock(&c->mu);
    return stale ? fetch_tools(c, gen, c->cfg.call_timeout_ms, err) : 0;
}

int mcp_client_list_tools(struct mcp_client *c, struct arena *a, struct mcp_tool **tools,
                          size_t *count, struct keel_err *err)
{
    int rc = ensure_tools(c, err);
    if (rc) return rc;
    pthread_mutex_lock(&c->mu);
    struct mcp_tool *out = arena_zalloc(a, (c->ntools + 1) * sizeof *out);
    for (size_t i = 0; i < c->ntools; i++) tool_copy(c, a, &c->tools[i], &out[i]);
    *count = c->ntools;
    pthread_mutex_unlock(&c->mu);
    *tools = out;
    return 0;
}

int mcp_client_tool(struct mcp_client *c, const char *name, struct arena *a,
                    struct mcp_tool *out, struct keel_err *err)
{
    int rc = ensure_tools(c, err);
    if (rc) return rc;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->ntools; i++) {
        if (!strcmp(c->tools[i].name, name)) {
            tool_copy(c, a, &c->tools[i], out);
            pthread_mutex_unlock(&c->mu);
            return 0;
        }
    }
    struct buf names;
    buf_init(&names);
    for (size_t i = 0; i < c->ntools && i < 20; i++)
        buf_printf(&names, "%s%s", i ? ", " : "", c->tools[i].name);
    if (c->ntools > 20) buf_puts(&names, ", ...");
    rc = keel_fail(err, KEEL_ENOENT, "server '%s' has no tool '%s' (it has: %s)", c->cfg.name,
                   name, names.data ? names.data : "none");
    buf_cleanup(&names);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int mcp_client_call_tool(struct mcp_client *c, const char *tool, const struct json_value *args,
                         const char *idempotency_key, int64_t timeout_ms, struct arena *a,
                         struct mcp_call_result *out, struct keel_err *err)
{
    if (!tool || !*tool) return keel_fail(err, KEEL_EINVAL, "tool name is empty");
    if (args && !json_is(args, JSON_OBJECT))
        return keel_fail(err, KEEL_EINVAL, "arguments of tool '%s' must be an object, not %s",
                         tool, json_type_name(args));
    if (timeout_ms <= 0) {
        const struct mcp_tool_config *tc = tool_config(c, tool);
        timeout_ms = tc && tc->timeout_ms > 0 ? tc->timeout_ms : c->cfg.call_timeout_ms;
    }
    /* params: {name, arguments, _meta: {io.keel/idempotency-key}}; args are
     * referenced, not copied (the writer only reads them). */
    struct arena pa;
    arena_init(&pa);
    struct json_value *params = json_object(&pa);
    json_object_setc(&pa, params, "name", json_cstr(&pa, tool));
    json_object_setc(&pa, params, "arguments",
                     args ? (struct json_value *)args : json_object(&pa));
    if (idempotency_key) {
        struct json_value *meta = json_object(&pa);
        json_object_setc(&pa, meta, MCP_META_IDEMPOTENCY_KEY, json_cstr(&pa, idempotency_key));
        json_object_setc(&pa, params, "_meta", meta);
    }
    pthread_mutex_lock(&c->mu);
    c->stats.calls++;
    pthread_mutex_unlock(&c->mu);
    char what[200];
    snprintf(what, sizeof what, "tool '%.120s'", tool);
    struct mcp_rpc_msg m;
    int rc;
    for (int attempt = 0;; attempt++) {
        uint64_t gen;
        rc = ensure_running(c, &gen, err);
        if (rc) break;
        bool unsent = false;
        rc = mcp_roundtrip(c, gen, "tools/call", params, timeout_ms, a, &m, what, &unsent, err);
        if (!rc || !unsent || attempt == 2) break;
    }
    arena_cleanup(&pa);
    if (rc) return rc;

    rc = mcp_call_result_decode(m.result, out, err);
    if (rc) keel_err_prefix(err, "tool '%s' on server '%s'", tool, c->cfg.name);
    return rc;
}
