/*
 * worker.c — what runs the runs: the runnable queue, the contexts kept
 * between a run's transitions (slots) with their deferred appends, the
 * worker pool and the timer thread.
 *
 * Invariants (the engine's threads are described at the top of engine.c):
 *   - A run is in the queue at most once (`queued`) and driven by at most
 *     one worker (`busy`); an enqueue while it is busy re-queues it after.
 *   - A slot is touched only by the worker holding its run, except for the
 *     request count, the parked request, the failed flag and the release,
 *     which the store's committer thread changes under e->lock (and the
 *     writer's tail, which queueing or discarding a parked request may put
 *     back: no worker holds the run then, or it waits in engine_flush or
 *     engine_barrier, and a failure has the slot reloaded).
 *   - A run has at most one request with the store and at most one more
 *     built (parked) behind it.  A parked request is queued only by the
 *     completion of the one before it, once that one is durable: one group
 *     commit never holds two of a run's requests, and every request starts
 *     from a durable journal.
 *   - A runnable run is let go (busy cleared, queued again) once its
 *     transition's events are queued, even while they are in flight: its
 *     next transition is computed meanwhile, and its events park.  Anything
 *     that reaches the world waits for all of them (engine_barrier).  A run
 *     that stopped moving is let go once its events are durable or failed.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- queue ------------------------------------------------------------- */

/* Caller holds e->lock. */
static void enqueue_locked(struct engine *e, const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= ENGINE_ID_MAX) return;
    void *b = strmap_get(&e->busy, id, n);
    if (b) {
        strmap_put(&e->busy, id, n, (void *)2);
        return;
    }
    if (strmap_get(&e->queued, id, n)) return;
    if (e->qlen == e->qcap) {
        if (e->qcap >= ENGINE_QUEUE_MAX) {
            keel_log(KEEL_LOG_ERROR, "engine: run queue full; %s waits for the next restart", id);
            return;
        }
        size_t cap = e->qcap ? e->qcap * 2 : 64;
        char(*q)[ENGINE_ID_MAX] = malloc(cap * sizeof *q);
        if (!q) return;
        for (size_t i = 0; i < e->qlen; i++)
            memcpy(q[i], e->queue[(e->qhead + i) % e->qcap], ENGINE_ID_MAX);
        free(e->queue);
        e->queue = q;
        e->qcap = cap;
        e->qhead = 0;
    }
    memcpy(e->queue[(e->qhead + e->qlen) % e->qcap], id, n + 1);
    e->qlen++;
    strmap_put(&e->queued, id, n, (void *)1);
    pthread_cond_signal(&e->work);
}

void engine_enqueue(struct engine *e, const char *run_id)
{
    pthread_mutex_lock(&e->lock);
    enqueue_locked(e, run_id);
    pthread_mutex_unlock(&e->lock);
}

/* ---- workers ----------------------------------------------------------- */

/* ---- run slots: a run's context kept between transitions ---------------
 *
 * Folding a run's journal from event 1 before every transition made a
 * transition cost O(journal).  Instead the context of a runnable run (its
 * row, writer, input and view) stays in a slot between transitions, and
 * every event the engine appends is folded into the view as it is appended
 * (engine_journal), so the view always equals the fold of the journal.
 * This is sound because only the worker holding the run appends to its
 * journal; the one outside writer (engine_run_cancel and reconcile.c on a
 * needs_reconcile run) acts on parked runs, whose slots are dropped.  A slot
 * is dropped when the run parks, ends or fails a transition, when a
 * deferred append failed, and beyond SLOT_MAX slots.
 *
 * A slot's arena holds what the context keeps and, besides, every
 * transition's scratch (payloads built, results parsed) and, after a load,
 * every payload the fold parsed.  Past compact_at it is compacted: what the
 * context keeps is copied into a fresh arena (slot_compact, O(state)) and
 * the old one freed.  compact_at is then 4x the kept size (at least
 * SLOT_ARENA_MIN), so copying costs O(1) per byte allocated.  (Until
 * 2026-11-26 a slot past 256 KiB was dropped instead and the run refolded
 * from event 1; a run of 1,000 steps then refolded at every transition,
 * since the fold alone passed the limit: 501 steps/s at 64 runs.)
 *
 * Deferred appends (engine_journal_deferred) let a transition end without
 * waiting for its last events' fsync: one fsync covers the steps of many
 * runs.  And the run's next transition is computed while they are in
 * flight: a pure step (set, switch) needs nothing durable to be computed,
 * and its events park until the previous request is durable, when its
 * completion callback (on the store's committer thread) queues them.  So
 * when a group commit ends, the next group is queued by the callbacks
 * themselves, with no worker to wake and no step to build between two
 * commits (bench/journal's "prepared" pass measures the same shape).  A
 * step with an effect waits at engine_barrier for everything before it. */

#define SLOT_MAX 1024
#define SLOT_ARENA_MIN (64u * 1024)

/* Caller holds e->lock. */
static struct engine_slot *slot_get(struct engine *e, const char *id)
{
    size_t n = strlen(id);
    struct engine_slot *sl = strmap_get(&e->slots, id, n);
    if (sl) return sl;
    sl = calloc(1, sizeof *sl);
    if (!sl) return NULL;
    memcpy(sl->id, id, n + 1);
    arena_init(&sl->arena);
    strmap_put(&e->slots, sl->id, n, sl);
    return sl;
}

static void slot_unload(struct engine_slot *sl)
{
    journal_batch_discard(sl->batch);
    sl->batch = NULL;
    journal_batch_discard(sl->parked);
    sl->parked = NULL;
    journal_writer_free(sl->c.w);
    sl->c.w = NULL;
    sl->loaded = false;
    sl->failed = false;
}

static void slot_free_unlisted(struct engine_slot *sl)
{
    slot_unload(sl);
    arena_cleanup(&sl->arena);
    free(sl);
}

/* Caller holds e->lock; no request of sl is in flight. */
static void slot_free(struct engine *e, struct engine_slot *sl)
{
    strmap_del(&e->slots, sl->id, strlen(sl->id));
    slot_free_unlisted(sl);
}

/* The transition of sl's run is over: its events are durable (or failed),
 * or, for a runnable run, queued.  Keep or drop the slot (never while a
 * request of it is in flight: its completion needs it), and let the run go
 * (queued again when still runnable or asked for meanwhile).  Caller holds
 * e->lock. */
static void release_locked(struct engine *e, struct engine_slot *sl, int outcome)
{
    char id[ENGINE_ID_MAX];
    size_t n = strlen(sl->id);
    memcpy(id, sl->id, n + 1);
    if ((outcome != 1 || sl->failed || e->slots.count > SLOT_MAX) && sl->inflight == 0)
        slot_free(e, sl);
    void *again = strmap_del(&e->busy, id, n);
    /* outcome < 0: the store or journal failed; the run keeps its place in
     * the store and comes back when its retry is due (process). */
    if (outcome == 1 || again == (void *)2)
        enqueue_locked(e, id);
    else /* it stopped moving: engine_run_wait's waiters look again */
        pthread_cond_broadcast(&e->done);
}

/* A request of sl's is durable or failed (caller holds e->lock).  Returns
 * the parked request to queue next, if any: the caller queues it and then
 * lets the run go (queue_parked); else, when nothing is left in flight, a
 * run whose transition ended is let go here. */
static struct journal_batch *unhold_locked(struct engine *e, struct engine_slot *sl)
{
    int left = --sl->inflight;
    struct journal_batch *next = NULL;
    if (sl->parked && left == 1) { /* the one before it is done */
        next = sl->parked;
        sl->parked = NULL;
        if (sl->failed) { /* it chains onto an event the journal lacks */
            journal_batch_discard(next);
            next = NULL;
            left = --sl->inflight;
        }
    }
    pthread_cond_broadcast(&e->durable);
    if (!next && left == 0 && sl->release) {
        sl->release = false;
        release_locked(e, sl, sl->outcome);
    }
    return next;
}

static void deferred_done(void *ctx, int rc, const struct journal_appended *appended,
                          const struct keel_err *err);

/* Queues a parked request that unhold_locked handed back (caller holds
 * e->lock; the store's queue lock is taken inside it, never the other way
 * round, and no store lock is held while completions run), then lets a
 * runnable run go: its next transition may be computed while this request
 * is in flight. */
static void queue_parked(struct engine *e, struct engine_slot *sl, struct journal_batch *next)
{
    while (next) {
        struct keel_err qerr;
        int rc = journal_batch_submit(next, deferred_done, sl, &qerr);
        next = NULL;
        if (rc) {
            keel_log(KEEL_LOG_ERROR, "engine: run %s: queueing its next events failed: %s", sl->id,
                     qerr.msg);
            sl->failed = true;
            next = unhold_locked(e, sl);
        } else if (sl->release && sl->outcome == 1 && !sl->failed) {
            sl->release = false;
            release_locked(e, sl, 1);
        }
    }
}

/* The completion of a slot's request, on the committer thread (or on the
 * worker's, when the request was committed there). */
static void deferred_done(void *ctx, int rc, const struct journal_appended *appended,
                          const struct keel_err *err)
{
    (void)appended;
    struct engine_slot *sl = ctx;
    struct engine *e = sl->c.e;
    if (rc) {
        __atomic_add_fetch(&e->append_failures, 1, __ATOMIC_RELAXED);
        char msg[2 * KEEL_ERR_MSG_MAX] = "";
        if (err) keel_err_format(err, msg, sizeof msg);
        keel_log(KEEL_LOG_ERROR,
                 "engine: run %s: a journal append failed: %s (the run is "
                 "reloaded from its journal)",
                 sl->id, msg);
    }
    pthread_mutex_lock(&e->lock);
    if (rc) sl->failed = true;
    queue_parked(e, sl, unhold_locked(e, sl));
    pthread_mutex_unlock(&e->lock);
}

int engine_flush(struct run_ctx *c, struct keel_err *err)
{
    struct engine_slot *sl = c->slot;
    struct engine *e = c->e;
    if (!sl->batch) return 0;
    struct journal_batch *bt = sl->batch;
    sl->batch = NULL;
    pthread_mutex_lock(&e->lock);
    /* At most one request parked: a second waits for the first to go. */
    while (sl->parked && !sl->failed)
        pthread_cond_wait(&e->durable, &e->lock);
    if (sl->failed) {
        pthread_mutex_unlock(&e->lock);
        journal_batch_discard(bt);
        return keel_fail(err, KEEL_EIO,
                         "run %s: an earlier journal append failed; the run resumes from its "
                         "journal",
                         c->run.id);
    }
    sl->inflight++;
    if (sl->inflight > 1) {
        /* The run's previous request is with the store: this one is
         * queued by that one's completion, once it is durable. */
        sl->parked = bt;
        __atomic_add_fetch(&e->parked, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&e->lock);
        return 0;
    }
    /* A run alone (nothing queued, no other run in a transition or waiting
     * for its events) commits on this thread when the store is idle: no
     * hand-off to the committer and back.  Among many, committing inline
     * would cut a group short, so the request joins the next group. */
    bool alone = e->qlen == 0 && e->busy.count <= 1;
    pthread_mutex_unlock(&e->lock);
    int rc = alone ? journal_batch_submit_eager(bt, deferred_done, sl, err)
                   : journal_batch_submit(bt, deferred_done, sl, err);
    if (rc) {
        /* Not queued: the view holds events the journal does not. */
        pthread_mutex_lock(&e->lock);
        sl->failed = true;
        queue_parked(e, sl, unhold_locked(e, sl));
        pthread_mutex_unlock(&e->lock);
        keel_err_prefix(err, "run %s: queueing the step's events", c->run.id);
    }
    return rc;
}

/* Waits until nothing of sl's run is in flight or parked; returns whether
 * one of its requests failed. */
static bool wait_settled(struct engine *e, struct engine_slot *sl)
{
    pthread_mutex_lock(&e->lock);
    while (sl->inflight > 0) /* what is parked counts too */
        pthread_cond_wait(&e->durable, &e->lock);
    bool failed = sl->failed;
    pthread_mutex_unlock(&e->lock);
    return failed;
}

int engine_barrier(struct run_ctx *c, struct keel_err *err)
{
    int rc = engine_flush(c, err);
    if (rc) return rc;
    if (wait_settled(c->e, c->slot))
        return keel_fail(err, KEEL_EIO,
                         "run %s: an earlier journal append failed; the run "
                         "resumes from its journal",
                         c->run.id);
    return 0;
}

/* ---- compaction: the kept context copied into a fresh arena ------------ */

static const char *sdup(struct arena *a, const char *s)
{
    return s ? arena_strdup(a, s) : NULL;
}

/* Copies v's values (strings, JSON, counters) into arena a; v->arena is
 * left to the caller.  Every pointer of the view that may point into the
 * old arena is copied, including those that may point into the workflow
 * (step ids), which costs a few bytes and needs no reasoning about where
 * each came from. */
static void view_copy(struct run_view *v, struct arena *a)
{
    if (v->red.n) {
        struct journal_state_key *k = arena_alloc(a, v->red.n * sizeof *k);
        memcpy(k, v->red.keys, v->red.n * sizeof *k);
        v->red.keys = k;
    }
    v->step = sdup(a, v->step);
    v->next_step = sdup(a, v->next_step);
    if (v->visit_n) {
        int *n = arena_alloc(a, v->wf->nsteps * sizeof *n);
        memcpy(n, v->visit_n, v->wf->nsteps * sizeof *n);
        v->visit_n = n;
    }
    struct visit_count *visits = NULL;
    for (struct visit_count *vc = v->visits; vc; vc = vc->next) {
        struct visit_count *n = arena_alloc(a, sizeof *n);
        n->step = sdup(a, vc->step);
        n->n = vc->n;
        n->next = visits; /* order is not used: looked up by step */
        visits = n;
    }
    v->visits = visits;
    v->last_result = json_clone(a, v->last_result);
    v->call_key = sdup(a, v->call_key);
    v->call_id = sdup(a, v->call_id);
    v->call_args = json_clone(a, v->call_args);
    v->call_result = json_clone(a, v->call_result);
    v->call_error = json_clone(a, v->call_error);
    v->wait_id = sdup(a, v->wait_id);
    v->approval_id = sdup(a, v->approval_id);
    v->approval_decision = sdup(a, v->approval_decision);
    v->approval_by = sdup(a, v->approval_by);
    v->approval_comment = sdup(a, v->approval_comment);
    if (v->capvisit_events) {
        struct agent_event *ev = arena_alloc(a, v->capvisit_events * sizeof *ev);
        for (size_t i = 0; i < v->nvisit_events; i++) {
            ev[i].seq = v->visit_events[i].seq;
            ev[i].kind = sdup(a, v->visit_events[i].kind);
            ev[i].actor = sdup(a, v->visit_events[i].actor);
            ev[i].payload = json_clone(a, v->visit_events[i].payload);
        }
        v->visit_events = ev;
    }
    struct agent_usage *usage = NULL, **tail = &usage;
    for (struct agent_usage *u = v->usage; u; u = u->next) {
        struct agent_usage *n = arena_alloc(a, sizeof *n);
        *n = *u;
        n->agent = sdup(a, u->agent);
        n->next = NULL;
        *tail = n;
        tail = &n->next;
    }
    v->usage = usage;
    v->state = json_clone(a, v->state);
    v->error_message = sdup(a, v->error_message);
}

/* Copies what sl's context keeps (run row, input, view) into a fresh arena
 * and frees the old one.  Only between transitions (no batch open); a
 * request in flight or parked holds its own copies of its events. */
static void slot_compact(struct engine *e, struct engine_slot *sl)
{
    struct arena a;
    arena_init(&a);
    struct run_ctx *c = &sl->c;
    struct store_run *r = &c->run;
    r->id = sl->id;
    r->workflow = sdup(&a, r->workflow);
    r->workflow_hash = sdup(&a, r->workflow_hash);
    r->reason = sdup(&a, r->reason);
    r->input = sdup(&a, r->input);
    r->identity = sdup(&a, r->identity);
    r->parent_id = sdup(&a, r->parent_id);
    r->lease_owner = sdup(&a, r->lease_owner);
    c->input = json_clone(&a, c->input);
    view_copy(&c->view, &a);
    arena_cleanup(&sl->arena);
    sl->arena = a; /* struct arena has no pointer to itself: it moves */
    c->arena = c->view.arena = &sl->arena;
    sl->compact_at = 4 * sl->arena.total;
    if (sl->compact_at < SLOT_ARENA_MIN) sl->compact_at = SLOT_ARENA_MIN;
    __atomic_add_fetch(&e->compactions, 1, __ATOMIC_RELAXED);
}

/* Reads the run's row, workflow version, tail and journal into sl. */
static int slot_load(struct engine *e, struct engine_slot *sl, struct keel_err *err)
{
    slot_unload(sl);
    arena_reset(&sl->arena);
    struct arena *a = &sl->arena;
    struct run_ctx *c = &sl->c;
    memset(c, 0, sizeof *c);
    c->e = e;
    c->slot = sl;
    c->arena = a;
    int rc = store_run_get(e->store, sl->id, a, &c->run, err);
    if (!rc) rc = engine_workflow_get(e, c->run.workflow, c->run.workflow_hash, &c->ew, err);
    if (!rc) rc = journal_writer_open(e->store, sl->id, &c->w, err);
    if (!rc) {
        struct json_parse_opts o = {.dup = JSON_DUP_LAST};
        rc = json_parse(a, c->run.input ? c->run.input : "{}",
                        c->run.input ? strlen(c->run.input) : 2, &o, &c->input, err);
    }
    if (!rc) rc = engine_fold(e, sl->id, c->ew->wf, a, &c->view, err);
    if (rc) return rc;
    __atomic_add_fetch(&e->folds, 1, __ATOMIC_RELAXED);
    sl->compact_at = 0; /* the fold parsed every payload: compact now */
    if (c->ew->wf->identity)
        snprintf(c->agent_actor, sizeof c->agent_actor, "agent:%s", c->ew->wf->identity);
    else
        snprintf(c->agent_actor, sizeof c->agent_actor, "system");
    sl->loaded = true;
    sl->cancel_gen = UINT64_MAX; /* look for a cancel request first */
    return 0;
}

/* KEEL_CHECK_VIEW=1 (the test suite sets it): once the transition's events
 * are durable, fold the journal from event 1 and compare with the kept
 * view; a difference is a bug in the incremental fold, so it aborts. */
static void check_view(struct engine *e, struct run_ctx *c)
{
    struct keel_err err;
    keel_err_clear(&err);
    if (engine_barrier(c, &err)) return; /* failed append: the slot is reloaded anyway */
    struct arena a;
    arena_init(&a);
    struct run_view v;
    if (engine_fold(e, c->run.id, c->ew->wf, &a, &v, &err) == 0) {
        const char *what = engine_view_diff(&c->view, &v);
        if (what) {
            keel_log(KEEL_LOG_ERROR,
                     "engine: run %s: the kept view differs from the fold of "
                     "its journal in '%s' after event %lld",
                     c->run.id, what, (long long)v.events);
            abort();
        }
    }
    arena_cleanup(&a);
}

static int process(struct engine *e, struct engine_slot *sl)
{
    const char *run_id = sl->id;
    struct keel_err err;
    keel_err_clear(&err);
    bool reload = !sl->loaded || sl->failed; /* failed: set before the release */
    /* A reload reads the journal: nothing of the run may still be on its
     * way there (a failure fails the requests chained after it). */
    if (reload) wait_settled(e, sl);
    int rc = reload ? slot_load(e, sl, &err) : 0;
    /* A request in flight holds its own copies of its events, nothing in
     * the arena, so the context may be compacted meanwhile.  The self-check
     * compacts before every transition, so the suite compares compacted
     * views with the journal. */
    if (!rc && (e->check_view || sl->arena.total > sl->compact_at)) slot_compact(e, sl);
    struct run_ctx *c = &sl->c;
    if (!rc) {
        if (c->view.events == 0) {
            /* Created but crashed before run.started was journaled. */
            struct arena *a = c->arena;
            struct json_value *p = json_object(a);
            json_object_setc(a, p, "workflow", json_cstr(a, c->run.workflow));
            json_object_setc(a, p, "workflow_hash", json_cstr(a, c->run.workflow_hash));
            json_object_setc(a, p, "input", c->input);
            rc = engine_journal(c, "run.started", c->run.identity, p, &err);
            if (!rc) rc = 1;
        } else {
            rc = engine_step(c, &err);
        }
    }
    /* The transition's deferred events go out as one request; after a
     * failure they are dropped with the slot (the journal is the truth). */
    if (rc >= 0) {
        int frc = engine_flush(c, &err);
        if (frc) rc = frc;
        if (!frc && e->check_view) check_view(e, c);
    } else {
        journal_batch_discard(sl->batch);
        sl->batch = NULL;
    }
    if (rc < 0) {
        char msg[2 * KEEL_ERR_MSG_MAX];
        keel_err_format(&err, msg, sizeof msg);
        keel_log(KEEL_LOG_ERROR, "engine: run %s: %s (trying again in 1 s)", run_id, msg);
        /* The store or journal failed under the transition (disk full, a
         * lock held too long): the timer thread queues the run again in
         * 1 s.  The retry is kept in memory, not in a timer row: the store
         * that just failed may not take the row either, and after a
         * restart every unfinished run is resumed anyway. */
        int64_t *due = malloc(sizeof *due);
        if (due) *due = keel_wall_ms() + 1000;
        pthread_mutex_lock(&e->lock);
        if (due) {
            free(strmap_put(&e->retry, run_id, strlen(run_id), due));
            __atomic_add_fetch(&e->memory_retries, 1, __ATOMIC_RELAXED);
        }
        pthread_cond_signal(&e->timer);
        pthread_mutex_unlock(&e->lock);
    }
    return rc;
}

void *engine_worker_main(void *arg)
{
    struct engine *e = arg;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        while (!e->stopping && e->qlen == 0)
            pthread_cond_wait(&e->work, &e->lock);
        if (e->stopping) break;
        char id[ENGINE_ID_MAX];
        memcpy(id, e->queue[e->qhead], ENGINE_ID_MAX);
        e->qhead = (e->qhead + 1) % e->qcap;
        e->qlen--;
        size_t n = strlen(id);
        strmap_del(&e->queued, id, n);
        struct engine_slot *sl = slot_get(e, id);
        if (!sl) {
            keel_log(KEEL_LOG_ERROR,
                     "engine: out of memory taking run %s; it waits for the "
                     "next restart",
                     id);
            continue;
        }
        strmap_put(&e->busy, sl->id, n, (void *)1);
        pthread_mutex_unlock(&e->lock);

        int rc = process(e, sl);

        pthread_mutex_lock(&e->lock);
        if (sl->inflight > 0 && rc == 1 && !sl->parked && !sl->failed) {
            /* Its events are queued: its next transition may be computed
             * while they are in flight. */
            release_locked(e, sl, rc);
        } else if (sl->inflight > 0) {
            /* Parked events, or a run that stopped moving: the completion
             * that queues them, or the last one, lets it go. */
            sl->release = true;
            sl->outcome = rc;
        } else {
            release_locked(e, sl, rc);
        }
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

/* Queues the runs whose retry (after a transition failed on the store) is
 * due; returns the earliest time still to come, or 0.  Caller holds
 * e->lock. */
static int64_t retry_due_locked(struct engine *e, int64_t now)
{
    int64_t next = 0;
    for (size_t i = 0; i < e->retry.cap; i++) {
        const char *id = e->retry.slots[i].key;
        int64_t *due = e->retry.slots[i].value;
        if (!id || !due) continue;
        if (*due > now) {
            if (!next || *due < next) next = *due;
            continue;
        }
        char run[ENGINE_ID_MAX];
        snprintf(run, sizeof run, "%s", id);
        free(strmap_del(&e->retry, run, strlen(run)));
        enqueue_locked(e, run);
        i = (size_t)-1; /* the map may have moved entries: look again */
        next = 0;
    }
    return next;
}

void *engine_timer_main(void *arg)
{
    struct engine *e = arg;
    pthread_mutex_lock(&e->lock);
    while (!e->stopping) {
        pthread_mutex_unlock(&e->lock);
        struct arena a;
        arena_init(&a);
        struct store_timer *ts = NULL;
        size_t n = 0;
        int64_t now = keel_wall_ms();
        if (store_timer_claim_due(e->store, now, "engine", 30000, 0, &a, &ts, &n, NULL) == 0)
            for (size_t i = 0; i < n; i++)
                engine_enqueue(e, ts[i].run_id);
        int64_t due = 0;
        int64_t wait_ms = 3600 * 1000;
        if (store_timer_next_due(e->store, &due, NULL) == 0) {
            wait_ms = due - keel_wall_ms();
            /* A due timer is claimed and being handled by a worker; look
             * again once its claim could have lapsed or a signal comes. */
            if (wait_ms <= 0) wait_ms = 1000;
        }
        arena_cleanup(&a);
        pthread_mutex_lock(&e->lock);
        if (e->stopping) break;
        int64_t next = retry_due_locked(e, keel_wall_ms());
        if (next && next - keel_wall_ms() < wait_ms) wait_ms = next - keel_wall_ms();
        if (wait_ms < 1) wait_ms = 1;
        struct timespec ts_abs;
        clock_gettime(CLOCK_MONOTONIC, &ts_abs);
        ts_abs.tv_sec += wait_ms / 1000;
        ts_abs.tv_nsec += (wait_ms % 1000) * 1000000;
        if (ts_abs.tv_nsec >= 1000000000) {
            ts_abs.tv_sec++;
            ts_abs.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&e->timer, &e->lock, &ts_abs);
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

/* Builds a new run's slot from what engine_run_start just wrote (the run
 * row), journals run.started through it and queues the run: its first
 * transition reads nothing back. */
int engine_slot_start(struct engine *e, struct engine_workflow *ew, const struct store_run *run,
                      const struct json_value *input, const char *who, struct keel_err *err)
{
    struct engine_slot *sl = calloc(1, sizeof *sl);
    if (!sl) return keel_fail(err, KEEL_ENOMEM, "out of memory starting a run");
    snprintf(sl->id, sizeof sl->id, "%s", run->id);
    arena_init(&sl->arena);
    struct arena *a = &sl->arena;
    struct run_ctx *c = &sl->c;
    c->e = e;
    c->slot = sl;
    c->arena = a;
    c->ew = ew;
    c->run = *run;
    c->run.id = sl->id;
    c->run.input = arena_strdup(a, run->input);
    c->run.identity = arena_strdup(a, who);
    c->input = json_clone(a, input);
    if (ew->wf->identity)
        snprintf(c->agent_actor, sizeof c->agent_actor, "agent:%s", ew->wf->identity);
    else
        snprintf(c->agent_actor, sizeof c->agent_actor, "system");
    engine_view_init(&c->view, sl->id, ew->wf, a);
    int rc = journal_writer_new(e->store, sl->id, &c->w, err);
    if (!rc) {
        struct json_value *p = json_object(a);
        json_object_setc(a, p, "workflow", json_cstr(a, ew->wf->name));
        json_object_setc(a, p, "workflow_hash", json_cstr(a, ew->wf->hash));
        json_object_setc(a, p, "input", c->input);
        rc = engine_journal(c, "run.started", who, p, err);
    }
    if (rc) {
        slot_free_unlisted(sl);
        return rc;
    }
    sl->loaded = true;
    sl->cancel_gen = UINT64_MAX;
    sl->compact_at = SLOT_ARENA_MIN;
    pthread_mutex_lock(&e->lock);
    if (!strmap_get(&e->slots, sl->id, strlen(sl->id)) && e->slots.count < SLOT_MAX)
        strmap_put(&e->slots, sl->id, strlen(sl->id), sl);
    else
        slot_free_unlisted(sl);
    enqueue_locked(e, run->id);
    pthread_mutex_unlock(&e->lock);
    return 0;
}

/* After the store is closed (no callback can run any more). */
void engine_slots_free(struct engine *e)
{
    for (size_t i = 0; i < e->slots.cap; i++)
        if (e->slots.slots[i].key) slot_free_unlisted(e->slots.slots[i].value);
    strmap_cleanup(&e->slots);
}
