/*
 * journal.c — event kinds, the hash chain, appending (writer, async and
 * one-off), reading as JSONL, and verifying a run's chain.  The fold lives in
 * fold.c.
 *
 * THE HASH CHAIN (this comment is the specification; docs/journal.md
 * repeats it).  For every event, with "\n" the single byte 0x0A:
 *
 *     hash = lowercase_hex( SHA-256(
 *                prev_hash            64 lowercase hex chars
 *         "\n"   run_id               UTF-8 bytes as stored (no control chars)
 *         "\n"   seq                  decimal ASCII, no sign, no leading zeros
 *         "\n"   time_ms              decimal ASCII of the int64 (ms since the
 *                                     Unix epoch; '-' only if negative)
 *         "\n"   kind                 e.g. "step.completed"
 *         "\n"   actor                e.g. "agent:support/triage"
 *         "\n"   payload              RFC 8785 canonical JSON of the payload,
 *                                     exactly as stored (no trailing newline)
 *            ) )
 *
 *     prev_hash of seq 1 = "0000...0000" (64 '0' characters);
 *     prev_hash of seq n = hash of seq n-1 of the same run.
 *
 * Example: run "r", seq 1, time 1000, kind "run.started", actor "system",
 * payload {} hashes the 95 bytes
 *     "000...000\nr\n1\n1000\nrun.started\nsystem\n{}"
 * and its hash is dd79c3993a3c1e42edaf12e23076518fd734003a72aa90ab86958ad7729fb44a.
 * Fields before the payload cannot contain "\n" (the store refuses control
 * characters in ids, kinds and actors) and the payload is last, so the
 * encoding is unambiguous.  Because the payload is hashed in canonical form,
 * anyone can re-verify a journal exported as JSONL by re-canonicalizing the
 * payload.
 *
 * Invariants: events of a run are appended with seq = last + 1 and
 * prev_hash = last hash; the store enforces it, so an append that lost a race
 * fails instead of forking the chain.
 */
#include "journal.h"

#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const char journal_zero_hash[JOURNAL_HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* ---- kinds ------------------------------------------------------------- */

struct kind_desc {
    const char *name;
    const char *required; /* comma-separated payload fields the kind requires */
};

static const struct kind_desc kinds[JOURNAL_KIND_COUNT] = {
    [JOURNAL_RUN_STARTED] = {"run.started", "workflow,workflow_hash,input"},
    [JOURNAL_RUN_WAITING] = {"run.waiting", "reason"},
    [JOURNAL_RUN_RESUMED] = {"run.resumed", "reason"},
    [JOURNAL_RUN_SUCCEEDED] = {"run.succeeded", ""},
    [JOURNAL_RUN_FAILED] = {"run.failed", "error"},
    [JOURNAL_RUN_CANCELLED] = {"run.cancelled", ""},
    [JOURNAL_RUN_NEEDS_RECONCILE] = {"run.needs_reconcile", "step,call_id,tool,reason"},
    [JOURNAL_STEP_STARTED] = {"step.started", "step,attempt"},
    [JOURNAL_STEP_COMPLETED] = {"step.completed", "step,attempt"},
    [JOURNAL_STEP_FAILED] = {"step.failed", "step,attempt,error"},
    [JOURNAL_TOOL_CALL_STARTED] = {"tool.call.started", "step,call_id,server,tool,args,"
                                                        "idempotency_key"},
    [JOURNAL_TOOL_CALL_COMPLETED] = {"tool.call.completed", "step,call_id"},
    [JOURNAL_POLICY_DECISION] = {"policy.decision", "action,resource,decision"},
    [JOURNAL_APPROVAL_REQUESTED] = {"approval.requested", "approval_id,step,group,args_digest"},
    [JOURNAL_APPROVAL_DECIDED] = {"approval.decided", "approval_id,decision,by"},
    [JOURNAL_STATE_UPDATED] = {"state.updated", "key,value"},
    [JOURNAL_TIMER_SET] = {"timer.set", "timer_id,due_ms"},
    [JOURNAL_TIMER_FIRED] = {"timer.fired", "timer_id"},
    [JOURNAL_SIGNAL_RECEIVED] = {"signal.received", "name"},
    [JOURNAL_MODEL_REQUEST] = {"model.request", "step,call_id,model"},
    [JOURNAL_MODEL_RESPONSE] = {"model.response", "step,call_id,model"},
    [JOURNAL_COMPENSATION_STARTED] = {"compensation.started", "step,call_id,tool"},
    [JOURNAL_COMPENSATION_COMPLETED] = {"compensation.completed", "step,call_id"},
    [JOURNAL_TOOL_CALL_REFUSED] = {"tool.call.refused", "step,call_id,tool,reason"},
    [JOURNAL_AGENT_OUTPUT_REJECTED] = {"agent.output.rejected", "step,call_id,errors"},
    [JOURNAL_CONTEXT_SUMMARIZED] = {"context.summarized", "step,call_id,summary"},
    [JOURNAL_AGENT_HANDOFF] = {"agent.handoff", "step,from,to,note"},
    [JOURNAL_BUDGET_EXCEEDED] = {"budget.exceeded", "step,scope"},
    [JOURNAL_BUDGET_EXTENDED] = {"budget.extended", "scope"},
};

const char *journal_kind_name(enum journal_kind k)
{
    if ((unsigned)k >= JOURNAL_KIND_COUNT) return NULL;
    return kinds[k].name;
}

const char *journal_kind_required(enum journal_kind k)
{
    if ((unsigned)k >= JOURNAL_KIND_COUNT) return "";
    return kinds[k].required;
}

int journal_kind_parse(const char *name, enum journal_kind *out, struct keel_err *err)
{
    for (int i = 0; i < JOURNAL_KIND_COUNT; i++) {
        if (name && strcmp(kinds[i].name, name) == 0) {
            *out = (enum journal_kind)i;
            return 0;
        }
    }
    struct buf list;
    buf_init(&list);
    for (int i = 0; i < JOURNAL_KIND_COUNT; i++)
        buf_printf(&list, "%s%s", i ? ", " : "", kinds[i].name);
    int rc = keel_fail(err, KEEL_EINVAL, "unknown event kind '%s'; known kinds: %s",
                       name ? name : "(null)", list.data);
    buf_cleanup(&list);
    return rc;
}

/* Checks that payload has every field kind k requires. */
static int check_payload(enum journal_kind k, const struct json_value *payload,
                         struct keel_err *err)
{
    const char *p = kinds[k].required;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (!json_getn(payload, p, len))
            return keel_fail(err, KEEL_EINVAL,
                             "%s event payload lacks the field \"%.*s\" (required: %s)",
                             kinds[k].name, (int)len, p, kinds[k].required);
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

/* ---- hashing ----------------------------------------------------------- */

/* The bytes hashed (see the specification above) are laid out in a stack
 * buffer when they fit, which they do for the usual small payload. */
enum { HASH_STACK_BYTES = 2048 };

static int hash_parts(const char *prev_hash, const char *run_id, int64_t seq, int64_t time_ms,
                      const char *kind, const char *actor, const char *payload, size_t payload_len,
                      char out[JOURNAL_HASH_HEX + 1], struct keel_err *err)
{
    const char *fields[] = {run_id, kind, actor};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(fields); i++)
        if (!fields[i] || strchr(fields[i], '\n'))
            return keel_fail(err, KEEL_EINVAL,
                             "event field '%s' is missing or contains a newline; it cannot be "
                             "hashed unambiguously",
                             fields[i] ? fields[i] : "(null)");
    size_t lp = strlen(prev_hash), lr = strlen(run_id), lk = strlen(kind), la = strlen(actor);
    size_t need = lp + lr + lk + la + 2 * 20 + 6 + payload_len;
    char stack[HASH_STACK_BYTES];
    char *p = need <= sizeof stack ? stack : malloc(need);
    if (!p) return keel_fail(err, KEEL_ENOMEM, "out of memory hashing an event");
    size_t n = 0;
    memcpy(p + n, prev_hash, lp);
    n += lp;
    p[n++] = '\n';
    memcpy(p + n, run_id, lr);
    n += lr;
    p[n++] = '\n';
    n += keel_i64_text(p + n, seq);
    p[n++] = '\n';
    n += keel_i64_text(p + n, time_ms);
    p[n++] = '\n';
    memcpy(p + n, kind, lk);
    n += lk;
    p[n++] = '\n';
    memcpy(p + n, actor, la);
    n += la;
    p[n++] = '\n';
    if (payload_len) memcpy(p + n, payload, payload_len);
    n += payload_len;
    keel_sha256_hex(p, n, out);
    if (p != stack) free(p);
    return 0;
}

int journal_event_hash(const struct journal_event *ev, char out[JOURNAL_HASH_HEX + 1],
                       struct keel_err *err)
{
    return hash_parts(ev->prev_hash, ev->run_id, ev->seq, ev->time_ms, ev->kind, ev->actor,
                      ev->payload ? ev->payload : "", ev->payload ? ev->payload_len : 0, out, err);
}

/* ---- JSON lines -------------------------------------------------------- */

void journal_event_to_json(const struct journal_event *ev, struct buf *out)
{
    char when[32];
    keel_format_time(ev->time_ms, when);
    buf_puts(out, "{\"run\":");
    json_write_string(out, ev->run_id, strlen(ev->run_id));
    buf_printf(out, ",\"seq\":%lld,\"time\":%lld,\"at\":\"%s\",\"kind\":", (long long)ev->seq,
               (long long)ev->time_ms, when);
    json_write_string(out, ev->kind, strlen(ev->kind));
    buf_puts(out, ",\"actor\":");
    json_write_string(out, ev->actor, strlen(ev->actor));
    /* The payload is stored as canonical JSON and embedded as is.  A row
     * that does not parse (a damaged or tampered store) is shown as a string
     * instead, so the line stays valid JSON; verify reports the damage. */
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    if (ev->payload_len && json_parse(&a, ev->payload, ev->payload_len, NULL, &v, NULL) == 0) {
        buf_puts(out, ",\"payload\":");
        buf_append(out, ev->payload, ev->payload_len);
    } else {
        buf_puts(out, ",\"payload\":null,\"payload_invalid\":");
        json_write_string(out, ev->payload ? ev->payload : "", ev->payload ? ev->payload_len : 0);
    }
    arena_cleanup(&a);
    buf_printf(out, ",\"prev_hash\":\"%s\",\"hash\":\"%s\"}", ev->prev_hash, ev->hash);
}

/* ---- appending --------------------------------------------------------- */

struct journal_writer {
    struct store *s;
    char run_id[STORE_ID_MAX + 1];
    int64_t seq;
    char hash[JOURNAL_HASH_HEX + 1];
};

/* An event built and ready for the store: its canonical payload and hash,
 * and for a model.response its usage row (ev.usage points at usage; a
 * copy of a struct built must point it at its own usage again). */
struct built {
    struct store_event ev;
    struct buf payload;
    struct store_usage usage;
};

static int build_event(const char *run_id, int64_t seq, const char *prev_hash, const char *kind,
                       const char *actor, const struct json_value *payload, int64_t time_ms,
                       struct built *b, struct keel_err *err)
{
    enum journal_kind k;
    int rc = journal_kind_parse(kind, &k, err);
    if (rc) return rc;
    if (!actor || !*actor)
        return keel_fail(err, KEEL_EINVAL,
                         "%s event has no actor; use an identity such as \"system\", "
                         "\"human:alice\" or \"agent:team/name\"",
                         kind);
    if (strlen(actor) > JOURNAL_ACTOR_MAX)
        return keel_fail(err, KEEL_ELIMIT, "event actor is longer than %d bytes",
                         JOURNAL_ACTOR_MAX);
    if (payload && !json_is(payload, JSON_OBJECT))
        return keel_fail(err, KEEL_EINVAL, "%s event payload is a %s; it must be an object", kind,
                         json_type_name(payload));
    if (payload && (rc = check_payload(k, payload, err)) != 0) return rc;
    if (!payload && *kinds[k].required)
        return keel_fail(err, KEEL_EINVAL, "%s event needs a payload with: %s", kind,
                         kinds[k].required);
    buf_init(&b->payload);
    buf_reserve(&b->payload, 512); /* most payloads fit: one allocation, no regrowth */
    if (payload) {
        rc = json_write(&b->payload, payload, JSON_WRITE_CANONICAL, err);
        if (rc) {
            buf_cleanup(&b->payload);
            return rc;
        }
    } else {
        buf_puts(&b->payload, "{}");
    }
    if (b->payload.len > JOURNAL_PAYLOAD_MAX) {
        size_t n = b->payload.len;
        buf_cleanup(&b->payload);
        return keel_fail(err, KEEL_ELIMIT,
                         "%s event payload is %zu bytes; the limit is %u — store large data "
                         "elsewhere and journal a reference",
                         kind, n, JOURNAL_PAYLOAD_MAX);
    }
    memset(&b->ev, 0, sizeof b->ev);
    b->ev.run_id = run_id;
    b->ev.seq = seq;
    b->ev.time_ms = time_ms ? time_ms : keel_wall_ms();
    b->ev.kind = kinds[k].name;
    b->ev.actor = actor;
    b->ev.payload = b->payload.data;
    b->ev.payload_len = b->payload.len;
    memcpy(b->ev.prev_hash, prev_hash, JOURNAL_HASH_HEX + 1);
    /* A model call's usage goes to the store with its event (the store's
     * model_calls row, written in the same transaction): taken here from
     * the payload value, so the store never parses JSON on the commit path.
     * Not hashed: it is derived from the payload, which is. */
    if (k == JOURNAL_MODEL_RESPONSE) {
        store_usage_of(payload, actor, &b->usage);
        b->ev.usage = &b->usage;
    }
    rc = hash_parts(prev_hash, run_id, seq, b->ev.time_ms, b->ev.kind, actor, b->payload.data,
                    b->payload.len, b->ev.hash, err);
    if (rc) buf_cleanup(&b->payload);
    return rc;
}

/* A writer for run_id at the empty tail (seq 0, zero hash). */
static int writer_alloc(struct store *s, const char *run_id, struct journal_writer **out,
                        struct keel_err *err)
{
    if (!run_id || !*run_id || strlen(run_id) > STORE_ID_MAX)
        return keel_fail(err, KEEL_EINVAL, "journal writer: run id is empty or longer than %d",
                         STORE_ID_MAX);
    struct journal_writer *w = calloc(1, sizeof *w);
    if (!w) return keel_fail(err, KEEL_ENOMEM, "out of memory opening a journal writer");
    w->s = s;
    snprintf(w->run_id, sizeof w->run_id, "%s", run_id);
    memcpy(w->hash, journal_zero_hash, sizeof w->hash);
    *out = w;
    return 0;
}

int journal_writer_open(struct store *s, const char *run_id, struct journal_writer **out,
                        struct keel_err *err)
{
    struct journal_writer *w = NULL;
    int rc = writer_alloc(s, run_id, &w, err);
    if (!rc) rc = store_events_tail(s, run_id, &w->seq, w->hash, err);
    if (rc) {
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int journal_writer_new(struct store *s, const char *run_id, struct journal_writer **out,
                       struct keel_err *err)
{
    return writer_alloc(s, run_id, out, err);
}

void journal_writer_free(struct journal_writer *w)
{
    free(w);
}

int64_t journal_writer_seq(const struct journal_writer *w)
{
    return w->seq;
}

const char *journal_writer_hash(const struct journal_writer *w)
{
    return w->hash;
}

/* Store codes that mean "someone else appended first". */
static int conflict(int rc, struct keel_err *err)
{
    if (rc == KEEL_EEXIST || rc == KEEL_ESTATE) {
        if (err) {
            err->code = KEEL_ESTATE;
            keel_err_prefix(err, "journal append lost a race");
        }
        return KEEL_ESTATE;
    }
    return rc;
}

/* Copies the built event into *out (strings in arena a), for a caller that
 * folds what it appended without reading it back. */
static void copy_built(const struct built *b, struct arena *a, struct journal_event *out)
{
    memset(out, 0, sizeof *out);
    out->run_id = arena_strdup(a, b->ev.run_id);
    out->seq = b->ev.seq;
    out->time_ms = b->ev.time_ms;
    out->kind = b->ev.kind; /* static: the kinds table */
    out->actor = arena_strdup(a, b->ev.actor);
    char *pl = arena_alloc(a, b->payload.len + 1);
    memcpy(pl, b->payload.data, b->payload.len);
    pl[b->payload.len] = '\0';
    out->payload = pl;
    out->payload_len = b->payload.len;
    memcpy(out->prev_hash, b->ev.prev_hash, sizeof out->prev_hash);
    memcpy(out->hash, b->ev.hash, sizeof out->hash);
}

int journal_writer_append(struct journal_writer *w, const char *kind, const char *actor,
                          const struct json_value *payload, int64_t time_ms,
                          struct journal_appended *out, struct keel_err *err)
{
    struct built b;
    int rc = build_event(w->run_id, w->seq + 1, w->hash, kind, actor, payload, time_ms, &b, err);
    if (rc) return rc;
    struct store_append req = {.events = &b.ev, .n_events = 1};
    rc = store_append(w->s, &req, err);
    if (rc == 0) {
        w->seq = b.ev.seq;
        memcpy(w->hash, b.ev.hash, sizeof w->hash);
        if (out) {
            out->seq = b.ev.seq;
            out->time_ms = b.ev.time_ms;
            memcpy(out->hash, b.ev.hash, sizeof out->hash);
        }
    }
    buf_cleanup(&b.payload);
    return conflict(rc, err);
}

int journal_writer_append_text(struct journal_writer *w, const char *kind, const char *actor,
                               const char *payload_json, size_t len, int64_t time_ms,
                               struct journal_appended *out, struct keel_err *err)
{
    if (len > JOURNAL_PAYLOAD_MAX)
        return keel_fail(err, KEEL_ELIMIT, "%s event payload is %zu bytes; the limit is %u",
                         kind ? kind : "?", len, JOURNAL_PAYLOAD_MAX);
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    struct json_parse_opts po = {.max_size = JOURNAL_PAYLOAD_MAX};
    int rc = json_parse(&a, payload_json, len, &po, &v, err);
    if (rc)
        keel_err_prefix(err, "%s event payload", kind ? kind : "?");
    else
        rc = journal_writer_append(w, kind, actor, v, time_ms, out, err);
    arena_cleanup(&a);
    return rc;
}

/* ---- batches: a transition's events in one request ---------------------- */

struct batch_item {
    struct built b;
    char actor[JOURNAL_ACTOR_MAX + 1];
};

/* Events a batch holds without further allocation: a transition makes one
 * to three, a pipelined single append one. */
#define BATCH_INLINE 4

struct journal_batch {
    struct store_append req; /* must stay first: the store hands it back */
    struct journal_writer *w;
    struct batch_item *items; /* inline_items, or on the heap past BATCH_INLINE */
    struct store_event *evs;  /* inline_evs, or on the heap */
    size_t n, cap;
    int64_t seq0; /* the writer's tail before the first item */
    char hash0[JOURNAL_HASH_HEX + 1];
    char run_id[STORE_ID_MAX + 1];
    journal_done_fn done;
    void *ctx;
    struct batch_item inline_items[BATCH_INLINE];
    struct store_event inline_evs[BATCH_INLINE];
};

int journal_batch_add(struct journal_writer *w, struct journal_batch **bp, const char *kind,
                      const char *actor, const struct json_value *payload, int64_t time_ms,
                      struct arena *a, struct journal_event *ev, struct keel_err *err)
{
    struct journal_batch *bt = *bp;
    if (bt && bt->w != w)
        return keel_fail(err, KEEL_EINTERNAL, "journal batch used with another writer");
    if (bt && bt->n == STORE_APPEND_MAX)
        return keel_fail(err, KEEL_ELIMIT, "journal batch holds %d events; submit it first",
                         STORE_APPEND_MAX);
    if (!bt) {
        /* The inline arrays are filled as they are used: only the head is
         * zeroed (the whole struct is a few KiB). */
        bt = malloc(sizeof *bt);
        if (!bt) return keel_fail(err, KEEL_ENOMEM, "out of memory batching events");
        memset(bt, 0, offsetof(struct journal_batch, inline_items));
        bt->w = w;
        bt->items = bt->inline_items;
        bt->cap = BATCH_INLINE;
        bt->seq0 = w->seq;
        memcpy(bt->hash0, w->hash, sizeof bt->hash0);
        memcpy(bt->run_id, w->run_id, strlen(w->run_id) + 1);
        *bp = bt;
    }
    if (bt->n == bt->cap) {
        size_t cap = 2 * bt->cap;
        struct batch_item *it = malloc(cap * sizeof *it);
        if (!it) return keel_fail(err, KEEL_ENOMEM, "out of memory batching events");
        memcpy(it, bt->items, bt->n * sizeof *it);
        if (bt->items != bt->inline_items) free(bt->items);
        bt->items = it;
        bt->cap = cap;
    }
    struct batch_item *it = &bt->items[bt->n];
    int rc =
        build_event(bt->run_id, w->seq + 1, w->hash, kind, actor, payload, time_ms, &it->b, err);
    if (rc) return rc;
    memcpy(it->actor, actor, strlen(actor) + 1); /* length checked by build_event */
    if (ev) copy_built(&it->b, a, ev);
    w->seq = it->b.ev.seq;
    memcpy(w->hash, it->b.ev.hash, sizeof w->hash);
    bt->n++;
    return 0;
}

size_t journal_batch_len(const struct journal_batch *bt)
{
    return bt ? bt->n : 0;
}

static void batch_free(struct journal_batch *bt)
{
    for (size_t i = 0; i < bt->n; i++)
        buf_cleanup(&bt->items[i].b.payload);
    if (bt->items != bt->inline_items) free(bt->items);
    if (bt->evs != bt->inline_evs) free(bt->evs);
    free(bt);
}

void journal_batch_discard(struct journal_batch *bt)
{
    if (!bt) return;
    bt->w->seq = bt->seq0;
    memcpy(bt->w->hash, bt->hash0, sizeof bt->w->hash);
    batch_free(bt);
}

static void batch_done(struct store_append *req, int rc, const struct keel_err *err)
{
    struct journal_batch *bt = (struct journal_batch *)req;
    struct journal_appended app = {0};
    if (bt->n) {
        const struct store_event *last = &bt->evs[bt->n - 1];
        app.seq = last->seq;
        app.time_ms = last->time_ms;
        memcpy(app.hash, last->hash, sizeof app.hash);
    }
    struct keel_err e;
    if (rc && err) {
        e = *err;
        rc = conflict(rc, &e);
    }
    bt->done(bt->ctx, rc, rc ? NULL : &app, rc && err ? &e : err);
    batch_free(bt);
}

static int submit(struct journal_batch *bt, journal_done_fn done, void *ctx, bool eager,
                  struct keel_err *err)
{
    if (!bt) return 0;
    if (!done) {
        journal_batch_discard(bt);
        return keel_fail(err, KEEL_EINVAL, "journal_batch_submit needs a callback");
    }
    bt->evs = bt->n <= BATCH_INLINE ? bt->inline_evs : malloc(bt->n * sizeof *bt->evs);
    if (!bt->evs) {
        journal_batch_discard(bt);
        return keel_fail(err, KEEL_ENOMEM, "out of memory submitting events");
    }
    /* The request must not point at the writer (it may be gone before the
     * commit): each event's strings are the batch's own. */
    for (size_t i = 0; i < bt->n; i++) {
        bt->evs[i] = bt->items[i].b.ev;
        bt->evs[i].run_id = bt->run_id;
        bt->evs[i].actor = bt->items[i].actor;
        /* items may have moved (grown onto the heap) since build_event
         * pointed usage at the item's own copy: point it there again. */
        if (bt->evs[i].usage) bt->evs[i].usage = &bt->items[i].b.usage;
    }
    bt->done = done;
    bt->ctx = ctx;
    bt->req.events = bt->evs;
    bt->req.n_events = bt->n;
    bt->req.done = batch_done;
    bt->req.ctx = bt;
    struct journal_writer *w = bt->w;
    int64_t seq0 = bt->seq0;
    char hash0[JOURNAL_HASH_HEX + 1];
    memcpy(hash0, bt->hash0, sizeof hash0);
    int rc =
        eager ? store_append_eager(w->s, &bt->req, err) : store_append_async(w->s, &bt->req, err);
    if (rc) { /* not queued: done will not run */
        w->seq = seq0;
        memcpy(w->hash, hash0, sizeof w->hash);
        batch_free(bt);
    }
    return rc;
}

int journal_batch_submit(struct journal_batch *bt, journal_done_fn done, void *ctx,
                         struct keel_err *err)
{
    return submit(bt, done, ctx, false, err);
}

int journal_batch_submit_eager(struct journal_batch *bt, journal_done_fn done, void *ctx,
                               struct keel_err *err)
{
    return submit(bt, done, ctx, true, err);
}

/* The pipelined single append is a batch of one: one way to queue events. */
int journal_writer_append_async(struct journal_writer *w, const char *kind, const char *actor,
                                const struct json_value *payload, int64_t time_ms,
                                journal_done_fn done, void *ctx, struct keel_err *err)
{
    if (!done) return keel_fail(err, KEEL_EINVAL, "journal_writer_append_async needs a callback");
    struct journal_batch *bt = NULL;
    int rc = journal_batch_add(w, &bt, kind, actor, payload, time_ms, NULL, NULL, err);
    if (rc) {
        journal_batch_discard(bt);
        return rc;
    }
    return journal_batch_submit(bt, done, ctx, err);
}

int journal_append(struct store *s, const char *run_id, const char *kind, const char *actor,
                   const struct json_value *payload, struct journal_appended *out,
                   struct keel_err *err)
{
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        struct journal_writer *w;
        rc = journal_writer_open(s, run_id, &w, err);
        if (rc) return rc;
        rc = journal_writer_append(w, kind, actor, payload, 0, out, err);
        journal_writer_free(w);
        if (rc != KEEL_ESTATE) break;
    }
    return rc;
}

/* ---- reading ----------------------------------------------------------- */

struct read_ctx {
    journal_event_fn fn;
    void *ctx;
};

static void to_journal_event(const struct store_event *se, struct journal_event *je)
{
    je->run_id = se->run_id;
    je->seq = se->seq;
    je->time_ms = se->time_ms;
    je->kind = se->kind;
    je->actor = se->actor;
    je->payload = se->payload;
    je->payload_len = se->payload_len;
    memcpy(je->prev_hash, se->prev_hash, sizeof je->prev_hash);
    memcpy(je->hash, se->hash, sizeof je->hash);
}

static int read_adapter(void *ctx, const struct store_event *se)
{
    struct read_ctx *rc = ctx;
    struct journal_event je;
    to_journal_event(se, &je);
    return rc->fn(rc->ctx, &je);
}

int journal_read(struct store *s, const char *run_id, int64_t from_seq, journal_event_fn fn,
                 void *ctx, struct keel_err *err)
{
    struct read_ctx rc = {fn, ctx};
    return store_events_scan(s, run_id, from_seq, 0, read_adapter, &rc, err);
}

struct jsonl_ctx {
    struct buf *out;
    int64_t n;
};

static int jsonl_line(void *ctx, const struct journal_event *ev)
{
    struct jsonl_ctx *c = ctx;
    journal_event_to_json(ev, c->out);
    buf_putc(c->out, '\n');
    c->n++;
    return 0;
}

int journal_write_jsonl(struct store *s, const char *run_id, struct buf *out, struct keel_err *err)
{
    struct jsonl_ctx c = {out, 0};
    int rc = journal_read(s, run_id, 1, jsonl_line, &c, err);
    if (rc == 0 && c.n == 0)
        rc = keel_fail(err, KEEL_ENOENT, "run '%s' has no events; check the run id (keel runs)",
                       run_id);
    return rc;
}

/* ---- verifying --------------------------------------------------------- */

struct verify_ctx {
    struct journal_verify_report *r;
    char prev[JOURNAL_HASH_HEX + 1];
};

static int bad(struct verify_ctx *v, int64_t seq, const char *fmt, ...) KEEL_PRINTF(3, 4);
static int bad(struct verify_ctx *v, int64_t seq, const char *fmt, ...)
{
    v->r->ok = false;
    v->r->first_bad_seq = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->r->reason, sizeof v->r->reason, fmt, ap);
    va_end(ap);
    return 1; /* stop the scan: everything after the break is unanchored */
}

static int verify_one(void *ctx, const struct journal_event *ev)
{
    struct verify_ctx *v = ctx;
    int64_t expect = v->r->events + 1;
    v->r->events++;
    if (ev->seq != expect)
        return bad(v, expect, "event %lld is missing (the next stored event is %lld)",
                   (long long)expect, (long long)ev->seq);
    if (strcmp(ev->prev_hash, v->prev) != 0)
        return bad(v, ev->seq,
                   "prev_hash %.16s... does not match the hash of event %lld (%.16s...)",
                   ev->prev_hash, (long long)ev->seq - 1, v->prev);
    char h[JOURNAL_HASH_HEX + 1];
    if (journal_event_hash(ev, h, NULL) != 0)
        return bad(v, ev->seq, "a field contains a newline and cannot be hashed");
    if (strcmp(h, ev->hash) != 0)
        return bad(v, ev->seq,
                   "stored hash %.16s... does not match the recomputed %.16s...: the event was "
                   "modified after it was written",
                   ev->hash, h);
    memcpy(v->prev, ev->hash, sizeof v->prev);
    memcpy(v->r->last_hash, ev->hash, sizeof v->r->last_hash);
    return 0;
}

int journal_verify(struct store *s, const char *run_id, struct journal_verify_report *report,
                   struct keel_err *err)
{
    memset(report, 0, sizeof *report);
    report->ok = true;
    memcpy(report->last_hash, journal_zero_hash, sizeof report->last_hash);
    struct verify_ctx v = {.r = report};
    memcpy(v.prev, journal_zero_hash, sizeof v.prev);
    int rc = journal_read(s, run_id, 1, verify_one, &v, err);
    if (rc == 1) rc = 0; /* stopped at the first break */
    if (rc == 0 && report->events == 0)
        rc = keel_fail(err, KEEL_ENOENT, "run '%s' has no events; check the run id", run_id);
    return rc;
}
