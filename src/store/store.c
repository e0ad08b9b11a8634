/*
 * store.c — the store interface: picks an implementation from the URI
 * scheme (a table of backends), validates every argument once, here, so the
 * implementations can trust them, and dispatches through struct store_ops.
 *
 * Invariants: an implementation's op is only called with ids that are
 * non-empty, at most STORE_ID_MAX bytes and free of control characters,
 * JSON/text fields of at most STORE_TEXT_MAX bytes, enum values in range and
 * limits clamped to STORE_LIST_MAX, and an event carries a usage row iff it
 * is a model.response (struct store_event.usage), with sane values.
 * store_append (synchronous) is built on the implementation's append_async
 * and a per-call semaphore.
 */
#include "store.h"
#include "store_impl.h"

#include "../json/json.h"

#include <math.h>
#include <semaphore.h>
#include <string.h>

/* ---- names ------------------------------------------------------------- */

static const char *const run_status_names[STORE_RUN_STATUS_COUNT] = {
    [STORE_RUN_PENDING] = "pending",     [STORE_RUN_RUNNING] = "running",
    [STORE_RUN_WAITING] = "waiting",     [STORE_RUN_SUCCEEDED] = "succeeded",
    [STORE_RUN_FAILED] = "failed",       [STORE_RUN_CANCELLED] = "cancelled",
    [STORE_RUN_NEEDS_RECONCILE] = "needs_reconcile",
};

static const char *const approval_status_names[STORE_APPROVAL_STATUS_COUNT] = {
    [STORE_APPROVAL_PENDING] = "pending",
    [STORE_APPROVAL_APPROVED] = "approved",
    [STORE_APPROVAL_DENIED] = "denied",
    [STORE_APPROVAL_EXPIRED] = "expired",
};

const char *store_run_status_name(enum store_run_status st)
{
    if ((unsigned)st >= STORE_RUN_STATUS_COUNT) return NULL;
    return run_status_names[st];
}

static int parse_name(const char *const *names, size_t count, const char *what, const char *name,
                      int *out, struct keel_err *err)
{
    for (size_t i = 0; i < count; i++) {
        if (name && strcmp(names[i], name) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    struct buf list;
    buf_init(&list);
    for (size_t i = 0; i < count; i++) buf_printf(&list, "%s%s", i ? ", " : "", names[i]);
    int rc = keel_fail(err, KEEL_EINVAL, "unknown %s '%s'; use one of: %s", what,
                       name ? name : "(null)", list.data);
    buf_cleanup(&list);
    return rc;
}

int store_run_status_parse(const char *name, enum store_run_status *out, struct keel_err *err)
{
    int v;
    int rc = parse_name(run_status_names, STORE_RUN_STATUS_COUNT, "run status", name, &v, err);
    if (rc == 0) *out = (enum store_run_status)v;
    return rc;
}

bool store_run_status_is_final(enum store_run_status st)
{
    return (unsigned)st < STORE_RUN_STATUS_COUNT && (STORE_RUN_MASK(st) & STORE_RUN_MASK_FINAL);
}

const char *store_approval_status_name(enum store_approval_status st)
{
    if ((unsigned)st >= STORE_APPROVAL_STATUS_COUNT) return NULL;
    return approval_status_names[st];
}

int store_approval_status_parse(const char *name, enum store_approval_status *out,
                                struct keel_err *err)
{
    int v;
    int rc = parse_name(approval_status_names, STORE_APPROVAL_STATUS_COUNT, "approval status",
                        name, &v, err);
    if (rc == 0) *out = (enum store_approval_status)v;
    return rc;
}

/* ---- backends ---------------------------------------------------------- */

static int postgres_open(const char *location, const struct store_opts *opts, struct store **out,
                         struct keel_err *err)
{
    (void)location;
    (void)opts;
    (void)out;
    return keel_fail(err, KEEL_EINVAL,
                     "the PostgreSQL store is not built yet; use a store URI of the form "
                     "sqlite:DIR/keel.db");
}

struct backend {
    const char *prefix; /* URI prefix, stripped before open() sees it (kept for postgres) */
    bool keep_prefix;
    int (*open)(const char *location, const struct store_opts *opts, struct store **out,
                struct keel_err *err);
};

static const struct backend backends[] = {
    {"sqlite:", false, store_sqlite_open},
    {"postgres://", true, postgres_open},
    {"postgresql://", true, postgres_open},
};

int store_open(const char *uri, const struct store_opts *opts, struct store **out,
               struct keel_err *err)
{
    static const struct store_opts defaults;
    if (!opts) opts = &defaults;
    if (!uri || !*uri)
        return keel_fail(err, KEEL_EINVAL, "empty store URI; use sqlite:DIR/keel.db");
    if (strlen(uri) >= sizeof(((struct store *)0)->location))
        return keel_fail(err, KEEL_ELIMIT, "store URI is longer than %zu bytes",
                         sizeof(((struct store *)0)->location) - 1);
    if ((unsigned)opts->durability > STORE_DURABILITY_NORMAL)
        return keel_fail(err, KEEL_EINVAL, "unknown store durability %d", (int)opts->durability);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(backends); i++) {
        size_t pl = strlen(backends[i].prefix);
        if (strncmp(uri, backends[i].prefix, pl) != 0) continue;
        const char *loc = backends[i].keep_prefix ? uri : uri + pl;
        if (!*loc)
            return keel_fail(err, KEEL_EINVAL, "store URI '%s' names no database file", uri);
        return backends[i].open(loc, opts, out, err);
    }
    return keel_fail(err, KEEL_EINVAL,
                     "unknown store URI '%s'; use sqlite:DIR/keel.db (or postgres://... once "
                     "that backend exists)",
                     uri);
}

void store_close(struct store *s)
{
    if (s) s->ops->close(s);
}

const char *store_backend(const struct store *s)
{
    return s->backend;
}

const char *store_location(const struct store *s)
{
    return s->location;
}

void store_get_stats(struct store *s, struct store_stats *out)
{
    memset(out, 0, sizeof *out);
    s->ops->stats(s, out);
}

/* ---- argument checks --------------------------------------------------- */

static int check_id(const char *what, const char *id, struct keel_err *err)
{
    if (!id || !*id) return keel_fail(err, KEEL_EINVAL, "%s is empty", what);
    size_t n = strlen(id);
    if (n > STORE_ID_MAX)
        return keel_fail(err, KEEL_ELIMIT, "%s '%.40s...' is %zu bytes; the limit is %d", what,
                         id, n, STORE_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c < 0x20 || c == 0x7f)
            return keel_fail(err, KEEL_EINVAL, "%s contains a control character at byte %zu",
                             what, i);
    }
    return 0;
}

static int check_opt_id(const char *what, const char *id, struct keel_err *err)
{
    return id ? check_id(what, id, err) : 0;
}

static int check_text(const char *what, const char *text, bool required, struct keel_err *err)
{
    if (!text) return required ? keel_fail(err, KEEL_EINVAL, "%s is missing", what) : 0;
    size_t n = strlen(text);
    if (n > STORE_TEXT_MAX)
        return keel_fail(err, KEEL_ELIMIT, "%s is %zu bytes; the limit is %u", what, n,
                         STORE_TEXT_MAX);
    return 0;
}

/* Lowercase hex digits, as a table: the append path checks 128 per event. */
static const bool hex_digit[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
};

static int check_hash(const char *what, const char *h, struct keel_err *err)
{
    if (!h) return keel_fail(err, KEEL_EINVAL, "%s is missing", what);
    unsigned ok = 1;
    size_t i = 0;
    for (; i < STORE_HASH_HEX && h[i]; i++) ok &= hex_digit[(unsigned char)h[i]];
    if (!ok || i != STORE_HASH_HEX || h[i])
        return keel_fail(err, KEEL_EINVAL, "%s '%.70s' is not 64 lowercase hex characters", what,
                         h);
    return 0;
}

static int check_status(enum store_run_status st, struct keel_err *err)
{
    if ((unsigned)st >= STORE_RUN_STATUS_COUNT)
        return keel_fail(err, KEEL_EINVAL, "run status %d is out of range", (int)st);
    return 0;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int try_rc_ = (x);                                                                         \
        if (try_rc_) return try_rc_;                                                               \
    } while (0)

static size_t clamp_limit(size_t limit)
{
    return (limit == 0 || limit > STORE_LIST_MAX) ? STORE_LIST_MAX : limit;
}

/* ---- runs -------------------------------------------------------------- */

int store_run_create(struct store *s, const struct store_run *run, struct keel_err *err)
{
    TRY(check_id("run id", run->id, err));
    TRY(check_id("workflow name", run->workflow, err));
    TRY(check_hash("workflow hash", run->workflow_hash, err));
    TRY(check_status(run->status, err));
    TRY(check_text("run reason", run->reason, false, err));
    TRY(check_text("run input", run->input, true, err));
    TRY(check_id("run identity", run->identity, err));
    TRY(check_opt_id("parent run id", run->parent_id, err));
    if (run->parent_seq < 0) return keel_fail(err, KEEL_EINVAL, "parent_seq is negative");
    return s->ops->run_create(s, run, err);
}

int store_run_get(struct store *s, const char *id, struct arena *a, struct store_run *out,
                  struct keel_err *err)
{
    TRY(check_id("run id", id, err));
    return s->ops->run_get(s, id, a, out, err);
}

int store_run_set_status(struct store *s, const char *id, unsigned from_mask,
                         enum store_run_status to, const char *reason, int64_t now_ms,
                         struct keel_err *err)
{
    TRY(check_id("run id", id, err));
    TRY(check_status(to, err));
    TRY(check_text("run reason", reason, false, err));
    return s->ops->run_set_status(s, id, from_mask, to, reason, now_ms ? now_ms : keel_wall_ms(),
                                  err);
}

int store_run_list(struct store *s, const struct store_run_filter *f, struct arena *a,
                   struct store_run **out, size_t *n, struct keel_err *err)
{
    struct store_run_filter fl = {0};
    if (f) fl = *f;
    TRY(check_opt_id("workflow name", fl.workflow, err));
    TRY(check_opt_id("parent run id", fl.parent_id, err));
    TRY(check_opt_id("paging cursor (after_id)", fl.after_id, err));
    fl.limit = clamp_limit(fl.limit);
    return s->ops->run_list(s, &fl, a, out, n, err);
}

int store_list_unfinished_runs(struct store *s, const char *after_id, size_t limit,
                               struct arena *a, struct store_run **out, size_t *n,
                               struct keel_err *err)
{
    struct store_run_filter f = {
        .status_mask = STORE_RUN_MASK(STORE_RUN_PENDING) | STORE_RUN_MASK(STORE_RUN_RUNNING) |
                       STORE_RUN_MASK(STORE_RUN_WAITING),
        .after_id = after_id,
        .limit = limit,
    };
    return store_run_list(s, &f, a, out, n, err);
}

int store_run_claim(struct store *s, const char *id, const char *owner, int64_t ttl_ms,
                    int64_t now_ms, struct keel_err *err)
{
    TRY(check_id("run id", id, err));
    TRY(check_id("lease owner", owner, err));
    if (ttl_ms <= 0) return keel_fail(err, KEEL_EINVAL, "lease ttl must be positive");
    return s->ops->run_claim(s, id, owner, ttl_ms, now_ms ? now_ms : keel_wall_ms(), err);
}

int store_run_claim_next(struct store *s, unsigned status_mask, const char *owner, int64_t ttl_ms,
                         int64_t now_ms, struct arena *a, struct store_run *out,
                         struct keel_err *err)
{
    TRY(check_id("lease owner", owner, err));
    if (ttl_ms <= 0) return keel_fail(err, KEEL_EINVAL, "lease ttl must be positive");
    return s->ops->run_claim_next(s, status_mask, owner, ttl_ms,
                                  now_ms ? now_ms : keel_wall_ms(), a, out, err);
}

int store_run_release(struct store *s, const char *id, const char *owner, struct keel_err *err)
{
    TRY(check_id("run id", id, err));
    TRY(check_id("lease owner", owner, err));
    return s->ops->run_release(s, id, owner, err);
}

/* ---- events ------------------------------------------------------------ */

/* The one kind whose events carry a usage row (see struct store_event). */
static const char usage_kind[] = "model.response";

/* A usage row is the model call's, whole and sane: a model.response event
 * has one and no other event does, names end within their arrays, numbers
 * are non-negative (and the cost finite), as store_usage_of makes them. */
static int check_usage(const struct store_event *ev, struct keel_err *err)
{
    bool want = strcmp(ev->kind, usage_kind) == 0;
    if (want && !ev->usage)
        return keel_fail(err, KEEL_EINVAL,
                         "event %lld of run %s is a %s without its usage row; fill "
                         "store_event.usage (store_usage_of)",
                         (long long)ev->seq, ev->run_id, usage_kind);
    if (!want && ev->usage)
        return keel_fail(err, KEEL_EINVAL,
                         "event %lld of run %s is a %s but carries a usage row; only %s "
                         "events do",
                         (long long)ev->seq, ev->run_id, ev->kind, usage_kind);
    if (!ev->usage) return 0;
    const struct store_usage *u = ev->usage;
    if (strnlen(u->agent, sizeof u->agent) == sizeof u->agent ||
        strnlen(u->model, sizeof u->model) == sizeof u->model)
        return keel_fail(err, KEEL_EINVAL,
                         "usage row of event %lld of run %s: a name is not terminated within "
                         "%d bytes",
                         (long long)ev->seq, ev->run_id, STORE_ID_MAX);
    if (u->input_tokens < 0 || u->output_tokens < 0 || !(u->cost_usd >= 0) ||
        !isfinite(u->cost_usd))
        return keel_fail(err, KEEL_EINVAL,
                         "usage row of event %lld of run %s: tokens and cost must be "
                         "non-negative (and the cost finite)",
                         (long long)ev->seq, ev->run_id);
    return 0;
}

/* Copies s up to its first NUL, at most STORE_ID_MAX bytes, into out. */
static void copy_name(char out[STORE_ID_MAX + 1], const char *s)
{
    size_t n = s ? strnlen(s, STORE_ID_MAX) : 0;
    if (n) memcpy(out, s, n);
    out[n] = '\0';
}

static int64_t positive_int(const struct json_value *obj, const char *key)
{
    int64_t v = json_get_int(obj, key, 0);
    return v > 0 ? v : 0;
}

void store_usage_of(const struct json_value *payload, const char *actor, struct store_usage *out)
{
    memset(out, 0, sizeof *out);
    if (!json_is(payload, JSON_OBJECT)) return;
    /* The agent: the payload's, else the acting identity's.  A payload
     * agent that is an empty string stays empty (unknown): it does not
     * fall back to the actor. */
    const char *agent = json_get_str(payload, "agent", NULL);
    if (!agent && actor && !strncmp(actor, "agent:", 6)) agent = actor + 6;
    copy_name(out->agent, agent);
    copy_name(out->model, json_get_str(payload, "model", NULL));
    const struct json_value *usage = json_get(payload, "usage");
    out->input_tokens = positive_int(usage, "input_tokens");
    out->output_tokens = positive_int(usage, "output_tokens");
    const struct json_value *c = json_get(payload, "cost_usd");
    out->cost_usd = json_is(c, JSON_NUMBER) && c->u.n.d > 0 && isfinite(c->u.n.d) ? c->u.n.d : 0;
}

static int check_append(const struct store_append *req, struct keel_err *err)
{
    if (req->n_events > STORE_APPEND_MAX)
        return keel_fail(err, KEEL_ELIMIT, "append of %zu events; the limit is %d per request",
                         req->n_events, STORE_APPEND_MAX);
    if (req->n_events && !req->events) return keel_fail(err, KEEL_EINVAL, "append: no events");
    for (size_t i = 0; i < req->n_events; i++) {
        const struct store_event *ev = &req->events[i];
        TRY(check_id("event run id", ev->run_id, err));
        if (ev->seq < 1)
            return keel_fail(err, KEEL_EINVAL, "event seq %lld of run %s is not >= 1",
                             (long long)ev->seq, ev->run_id);
        TRY(check_id("event kind", ev->kind, err));
        TRY(check_id("event actor", ev->actor, err));
        if (!ev->payload) return keel_fail(err, KEEL_EINVAL, "event payload is missing");
        if (ev->payload_len > STORE_TEXT_MAX)
            return keel_fail(err, KEEL_ELIMIT, "event payload is %zu bytes; the limit is %u",
                             ev->payload_len, STORE_TEXT_MAX);
        TRY(check_hash("event prev_hash", ev->prev_hash, err));
        TRY(check_hash("event hash", ev->hash, err));
        TRY(check_usage(ev, err));
    }
    if (req->status_run_id) {
        TRY(check_id("status run id", req->status_run_id, err));
        TRY(check_status(req->status, err));
        TRY(check_text("run reason", req->status_reason, false, err));
    }
    if (req->snapshot_run_id) {
        TRY(check_id("snapshot run id", req->snapshot_run_id, err));
        if (req->snapshot_seq < 0) return keel_fail(err, KEEL_EINVAL, "snapshot seq < 0");
        TRY(check_text("snapshot state", req->snapshot_state, true, err));
    }
    return 0;
}

int store_append_async(struct store *s, struct store_append *req, struct keel_err *err)
{
    TRY(check_append(req, err));
    if (!req->done)
        return keel_fail(err, KEEL_EINVAL, "store_append_async needs a completion callback");
    return s->ops->append_async(s, req, err);
}

int store_append_eager(struct store *s, struct store_append *req, struct keel_err *err)
{
    TRY(check_append(req, err));
    if (!req->done)
        return keel_fail(err, KEEL_EINVAL, "store_append_eager needs a completion callback");
    if (s->ops->append) {
        struct keel_err e;
        keel_err_clear(&e);
        int rc = s->ops->append(s, req, &e);
        if (rc <= 0) { /* committed (or failed) on this thread */
            req->done(req, rc, rc ? &e : NULL);
            return 0;
        }
    }
    return s->ops->append_async(s, req, err);
}

struct sync_wait {
    sem_t sem;
    int rc;
    struct keel_err err;
};

static void sync_done(struct store_append *req, int rc, const struct keel_err *err)
{
    struct sync_wait *w = req->ctx;
    w->rc = rc;
    if (rc && err) w->err = *err;
    sem_post(&w->sem);
}

int store_append(struct store *s, struct store_append *req, struct keel_err *err)
{
    TRY(check_append(req, err));
    if (s->ops->append) {
        int rc = s->ops->append(s, req, err);
        if (rc <= 0) return rc; /* done on this thread */
    }
    struct sync_wait w;
    w.rc = 0;
    keel_err_clear(&w.err);
    sem_init(&w.sem, 0, 0);
    store_append_done_fn saved_done = req->done;
    void *saved_ctx = req->ctx;
    req->done = sync_done;
    req->ctx = &w;
    int rc = s->ops->append_async(s, req, err);
    if (rc == 0) {
        while (sem_wait(&w.sem) != 0) {
        }
        rc = w.rc;
        if (rc && err) *err = w.err;
    }
    sem_destroy(&w.sem);
    req->done = saved_done;
    req->ctx = saved_ctx;
    return rc;
}

int store_events_tail(struct store *s, const char *run_id, int64_t *seq,
                      char hash[STORE_HASH_HEX + 1], struct keel_err *err)
{
    TRY(check_id("run id", run_id, err));
    return s->ops->events_tail(s, run_id, seq, hash, err);
}

int store_events_scan(struct store *s, const char *run_id, int64_t from_seq, int64_t limit,
                      store_event_fn fn, void *ctx, struct keel_err *err)
{
    TRY(check_id("run id", run_id, err));
    if (from_seq < 1) from_seq = 1;
    if (limit < 0) limit = 0;
    return s->ops->events_scan(s, run_id, from_seq, limit, fn, ctx, err);
}

int store_usage_sum(struct store *s, const struct store_usage_filter *f, struct arena *a,
                    struct store_usage_sum **out, size_t *n, struct keel_err *err)
{
    static const unsigned all = STORE_USAGE_BY_ALL;
    struct store_usage_filter fl = *f;
    if (fl.since_ms < 0 || fl.until_ms < fl.since_ms)
        return keel_fail(err, KEEL_EINVAL,
                         "usage window [%lld, %lld) is not a window after 1970; since must not "
                         "be after until",
                         (long long)fl.since_ms, (long long)fl.until_ms);
    TRY(check_opt_id("workflow filter", fl.workflow, err));
    /* The agent filter may be the unknown name, so not an id: any text of
     * at most STORE_ID_MAX bytes. */
    if ((fl.agent && strnlen(fl.agent, STORE_ID_MAX + 1) > STORE_ID_MAX) ||
        (fl.unknown && strnlen(fl.unknown, STORE_ID_MAX + 1) > STORE_ID_MAX))
        return keel_fail(err, KEEL_ELIMIT, "usage: the agent filter and the unknown name are "
                                           "limited to %d bytes",
                         STORE_ID_MAX);
    if (!fl.unknown) fl.unknown = "";
    if (fl.n_groupings == 0 || !fl.groupings) {
        fl.groupings = &all;
        fl.n_groupings = 1;
    }
    if (fl.n_groupings > STORE_USAGE_GROUPINGS_MAX)
        return keel_fail(err, KEEL_ELIMIT, "usage: %zu groupings in one query; the limit is %d",
                         fl.n_groupings, STORE_USAGE_GROUPINGS_MAX);
    unsigned seen = 0; /* bit g: grouping g was asked for */
    for (size_t i = 0; i < fl.n_groupings; i++) {
        unsigned g = fl.groupings[i];
        if (g & ~STORE_USAGE_BY_ALL)
            return keel_fail(err, KEEL_EINVAL, "usage: grouping %#x has unknown bits", g);
        if (seen & (1u << g))
            return keel_fail(err, KEEL_EINVAL, "usage: grouping %#x is asked for twice", g);
        seen |= 1u << g;
    }
    return s->ops->usage_sum(s, &fl, a, out, n, err);
}

int store_snapshot_get(struct store *s, const char *run_id, int64_t max_seq, struct arena *a,
                       int64_t *seq, const char **state, struct keel_err *err)
{
    TRY(check_id("run id", run_id, err));
    if (max_seq <= 0) max_seq = INT64_MAX;
    return s->ops->snapshot_get(s, run_id, max_seq, a, seq, state, err);
}

int store_snapshot_put(struct store *s, const char *run_id, int64_t seq, const char *state,
                       struct keel_err *err)
{
    struct store_append req = {
        .snapshot_run_id = run_id,
        .snapshot_seq = seq,
        .snapshot_state = state,
    };
    return store_append(s, &req, err);
}

/* ---- workflows --------------------------------------------------------- */

int store_workflow_put(struct store *s, const char *name, const char *hash, const char *body,
                       int64_t now_ms, struct keel_err *err)
{
    TRY(check_id("workflow name", name, err));
    TRY(check_hash("workflow hash", hash, err));
    TRY(check_text("workflow body", body, true, err));
    return s->ops->workflow_put(s, name, hash, body, now_ms ? now_ms : keel_wall_ms(), err);
}

int store_workflow_get(struct store *s, const char *name, const char *hash, struct arena *a,
                       const char **body, const char **hash_out, struct keel_err *err)
{
    TRY(check_id("workflow name", name, err));
    if (hash) TRY(check_hash("workflow hash", hash, err));
    return s->ops->workflow_get(s, name, hash, a, body, hash_out, err);
}

/* ---- approvals --------------------------------------------------------- */

int store_approval_create(struct store *s, const struct store_approval *ap, struct keel_err *err)
{
    TRY(check_id("approval id", ap->id, err));
    TRY(check_id("approval run id", ap->run_id, err));
    TRY(check_id("approval step id", ap->step_id, err));
    TRY(check_id("approval group", ap->group, err));
    TRY(check_text("approval request", ap->request, true, err));
    return s->ops->approval_create(s, ap, err);
}

int store_approval_get(struct store *s, const char *id, struct arena *a, struct store_approval *out,
                       struct keel_err *err)
{
    TRY(check_id("approval id", id, err));
    return s->ops->approval_get(s, id, a, out, err);
}

int store_approval_list(struct store *s, const struct store_approval_filter *f, struct arena *a,
                        struct store_approval **out, size_t *n, struct keel_err *err)
{
    struct store_approval_filter fl = {0};
    if (f) fl = *f;
    TRY(check_opt_id("run id", fl.run_id, err));
    TRY(check_opt_id("approval group", fl.group, err));
    TRY(check_opt_id("paging cursor (after_id)", fl.after_id, err));
    fl.limit = clamp_limit(fl.limit);
    return s->ops->approval_list(s, &fl, a, out, n, err);
}

int store_approval_decide(struct store *s, const char *id, enum store_approval_status to,
                          const char *decided_by, const char *comment, int64_t now_ms,
                          struct keel_err *err)
{
    TRY(check_id("approval id", id, err));
    if (to != STORE_APPROVAL_APPROVED && to != STORE_APPROVAL_DENIED &&
        to != STORE_APPROVAL_EXPIRED)
        return keel_fail(err, KEEL_EINVAL,
                         "an approval can only be decided as approved, denied or expired");
    TRY(check_id("decided_by", decided_by, err));
    TRY(check_text("approval comment", comment, false, err));
    return s->ops->approval_decide(s, id, to, decided_by, comment,
                                   now_ms ? now_ms : keel_wall_ms(), err);
}

/* ---- timers ------------------------------------------------------------ */

int store_timer_set(struct store *s, const struct store_timer *t, struct keel_err *err)
{
    TRY(check_id("timer id", t->id, err));
    TRY(check_id("timer run id", t->run_id, err));
    TRY(check_opt_id("timer step id", t->step_id, err));
    TRY(check_text("timer payload", t->payload, false, err));
    return s->ops->timer_set(s, t, err);
}

int store_timer_claim_due(struct store *s, int64_t now_ms, const char *owner, int64_t claim_ms,
                          size_t max, struct arena *a, struct store_timer **out, size_t *n,
                          struct keel_err *err)
{
    TRY(check_id("timer claim owner", owner, err));
    if (claim_ms <= 0) return keel_fail(err, KEEL_EINVAL, "timer claim duration must be > 0");
    return s->ops->timer_claim_due(s, now_ms ? now_ms : keel_wall_ms(), owner, claim_ms,
                                   clamp_limit(max), a, out, n, err);
}

int store_timer_next_due(struct store *s, int64_t *due_ms, struct keel_err *err)
{
    return s->ops->timer_next_due(s, due_ms, err);
}

int store_timer_delete(struct store *s, const char *id, struct keel_err *err)
{
    TRY(check_id("timer id", id, err));
    return s->ops->timer_delete(s, id, err);
}

int store_timer_delete_run(struct store *s, const char *run_id, size_t *deleted,
                           struct keel_err *err)
{
    TRY(check_id("run id", run_id, err));
    size_t dummy;
    return s->ops->timer_delete_run(s, run_id, deleted ? deleted : &dummy, err);
}

/* ---- idempotency ------------------------------------------------------- */

int store_idem_put(struct store *s, const char *key, const char *run_id, const char *result,
                   int64_t expires_ms, struct arena *a, const char **existing,
                   struct keel_err *err)
{
    TRY(check_id("idempotency key", key, err));
    TRY(check_opt_id("run id", run_id, err));
    TRY(check_text("idempotency result", result, true, err));
    if (existing && !a)
        return keel_fail(err, KEEL_EINVAL, "store_idem_put: existing needs an arena");
    return s->ops->idem_put(s, key, run_id, result, expires_ms, a, existing, err);
}

int store_idem_get(struct store *s, const char *key, int64_t now_ms, struct arena *a,
                   const char **result, struct keel_err *err)
{
    TRY(check_id("idempotency key", key, err));
    return s->ops->idem_get(s, key, now_ms ? now_ms : keel_wall_ms(), a, result, err);
}

int store_idem_expire(struct store *s, int64_t now_ms, size_t *deleted, struct keel_err *err)
{
    size_t dummy;
    return s->ops->idem_expire(s, now_ms ? now_ms : keel_wall_ms(), deleted ? deleted : &dummy,
                               err);
}

/* ---- key/value --------------------------------------------------------- */

int store_kv_put(struct store *s, const char *key, const char *value, struct keel_err *err)
{
    TRY(check_id("key", key, err));
    TRY(check_text("value", value, true, err));
    return s->ops->kv_put(s, key, value, err);
}

int store_kv_get(struct store *s, const char *key, struct arena *a, const char **value,
                 struct keel_err *err)
{
    TRY(check_id("key", key, err));
    return s->ops->kv_get(s, key, a, value, err);
}

int store_kv_delete(struct store *s, const char *key, struct keel_err *err)
{
    TRY(check_id("key", key, err));
    return s->ops->kv_delete(s, key, err);
}
