/*
 * sqlite_commit.c — group commit for the SQLite store: the append queue, the
 * committer thread, the continuity checks, indexing the event log, and the
 * checkpoint thread with the WAL preallocation.
 *
 * Invariants: only the committer (or an inline append holding q->busy)
 * writes events; no request is completed before the COMMIT that holds it
 * has synced; each run's known tail (q->tails) is its last committed event.
 * The design and its measurements are in sqlite.c's opening comment and
 * docs/store.md.
 */
#include "sqlite_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Runs whose tail the committer remembers; beyond, it forgets them all. */
#define TAIL_CACHE_MAX 65536

/* ---- group commit ------------------------------------------------------ */

const char store_sq_zero_hash[STORE_HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* A run's last event as the committer knows it: as committed, and, when
 * pgen is the open group's q->gen, as the open group leaves it (so a group
 * needs no second map, and no allocation per event, for what it changes). */
struct tail {
    int64_t seq;
    char hash[STORE_HASH_HEX + 1];
    uint64_t pgen;
    int64_t pseq;
    char phash[STORE_HASH_HEX + 1];
};

void store_sq_tails_clear(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) free(m->slots[i].value);
    strmap_cleanup(m);
    strmap_init(m);
}

/* The committed tail of run_id, read inside the group's transaction (this
 * group's own events are not inserted yet; callers look at q->tails first).
 * Costs a scan of the (small) event log. */
static int db_tail(struct sq *q, struct conn *c, const char *run_id, struct tail *out,
                   struct keel_err *err)
{
    if (q->log_complete) return store_sq_tail_indexed(q, c, run_id, &out->seq, out->hash, err);
    return store_sq_tail(q, c, run_id, &out->seq, out->hash, err);
}

/* The cached tail of run_id, read from the database (and cached) on a
 * miss.  Borrowed from q->tails, valid until the group ends. */
static int tail_get(struct sq *q, struct conn *c, const char *run_id, struct tail **out,
                    struct keel_err *err)
{
    size_t len = strlen(run_id);
    struct tail *t = strmap_get(&q->tails, run_id, len);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t) return keel_fail(err, KEEL_ENOMEM, "out of memory caching a run's tail");
        int rc = db_tail(q, c, run_id, t, err);
        if (rc) {
            free(t);
            return rc;
        }
        strmap_put(&q->tails, run_id, len, t);
    }
    *out = t;
    return 0;
}

/* Finds the event ev (event i of req) must chain onto: an earlier event of
 * the same run in the same request, else the run's tail as this group left
 * it, else as committed.  *hash is borrowed, valid until the group ends. */
static int tail_for(struct sq *q, struct conn *c, const struct store_append *req, size_t i,
                    int64_t *seq, const char **hash, struct keel_err *err)
{
    const struct store_event *ev = &req->events[i];
    for (size_t j = i; j-- > 0;) {
        if (strcmp(req->events[j].run_id, ev->run_id) == 0) {
            *seq = req->events[j].seq;
            *hash = req->events[j].hash;
            return 0;
        }
    }
    struct tail *t;
    int rc = tail_get(q, c, ev->run_id, &t, err);
    if (rc) return rc;
    bool open = t->pgen == q->gen;
    *seq = open ? t->pseq : t->seq;
    *hash = open ? t->phash : t->hash;
    return 0;
}

/* Records ev as its run's last event in the open group (committed by
 * commit_group, forgotten if the group fails). */
static int tail_advance(struct sq *q, struct conn *c, const struct store_event *ev,
                        struct keel_err *err)
{
    struct tail *t;
    int rc = tail_get(q, c, ev->run_id, &t, err);
    if (rc) return rc;
    if (t->pgen != q->gen) {
        if (q->touched_n == q->touched_cap) {
            size_t cap = q->touched_cap ? 2 * q->touched_cap : 256;
            struct tail **v = realloc(q->touched, cap * sizeof *v);
            if (!v) return keel_fail(err, KEEL_ENOMEM, "out of memory tracking a group's runs");
            q->touched = v;
            q->touched_cap = cap;
        }
        q->touched[q->touched_n++] = t;
        t->pgen = q->gen;
    }
    t->pseq = ev->seq;
    memcpy(t->phash, ev->hash, sizeof t->phash);
    return 0;
}

/* Checks that every event of req continues its run: seq = tail + 1 and
 * prev_hash = tail's hash.  Read-only, so a refused request leaves no trace. */
static int check_events(struct sq *q, struct conn *c, const struct store_append *req,
                        struct keel_err *err)
{
    for (size_t i = 0; i < req->n_events; i++) {
        const struct store_event *ev = &req->events[i];
        int64_t tseq;
        const char *thash;
        int rc = tail_for(q, c, req, i, &tseq, &thash, err);
        if (rc) return rc;
        if (ev->seq <= tseq)
            return keel_fail(err, KEEL_EEXIST,
                             "event %lld of run %s already exists (another writer appended "
                             "first); reopen the journal writer",
                             (long long)ev->seq, ev->run_id);
        if (ev->seq > tseq + 1)
            return keel_fail(err, KEEL_ESTATE,
                             "event %lld of run %s would leave a gap: the run's last event is "
                             "%lld; events are appended in order",
                             (long long)ev->seq, ev->run_id, (long long)tseq);
        if (strcmp(ev->prev_hash, thash) != 0)
            return keel_fail(err, KEEL_ESTATE,
                             ev->seq == 1 ? "event 1 of run %s must have prev_hash of 64 zeros"
                                          : "event of run %s: prev_hash does not match the hash "
                                            "of the previous event (another writer appended "
                                            "first?); reopen the journal writer",
                             ev->run_id);
    }
    return 0;
}

/* Binds ev to the 8 parameters of one row, from parameter first on. */
static void bind_event(sqlite3_stmt *st, int first, const struct store_event *ev)
{
    sqlite3_bind_text(st, first, ev->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, first + 1, ev->seq);
    sqlite3_bind_int64(st, first + 2, ev->time_ms);
    sqlite3_bind_text(st, first + 3, ev->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, first + 4, ev->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, first + 5, ev->payload, (int)ev->payload_len, SQLITE_STATIC);
    sqlite3_bind_text(st, first + 6, ev->prev_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, first + 7, ev->hash, -1, SQLITE_STATIC);
}

/* Inserts the group's events (q->batch, in order), INSERT_ROWS to a
 * statement while that many are left, then one by one; then the usage row
 * of each model.response among them (struct store_event.usage, set by the
 * journal), in the same transaction, so model_calls never disagrees with
 * the events: both commit or neither does. */
static int insert_batch(struct sq *q, struct conn *c, struct keel_err *err)
{
    size_t i = 0;
    while (i < q->batch_n) {
        bool many = q->batch_n - i >= INSERT_ROWS;
        sqlite3_stmt *st = store_sq_stmt(q, c, many ? ST_EV_INSERT_MANY : ST_EV_INSERT, err);
        if (!st) return err ? err->code : KEEL_EIO;
        size_t rows = many ? INSERT_ROWS : 1;
        for (size_t r = 0; r < rows; r++) bind_event(st, (int)(8 * r + 1), q->batch[i + r]);
        int rc = sqlite3_step(st);
        done_stmt(st);
        if (rc != SQLITE_DONE) return store_sq_fail(q, c->db, rc, "inserting events", err);
        i += rows;
    }
    for (i = 0; i < q->batch_n; i++) {
        const struct store_event *ev = q->batch[i];
        if (!ev->usage) continue;
        int rc = store_sq_usage_insert(q, c, ev->run_id, ev->seq, ev->time_ms, ev->usage, err);
        if (rc) return rc;
    }
    return 0;
}

int store_sq_set_status(struct sq *q, struct conn *c, const char *id, enum store_run_status to,
                        const char *reason, int64_t now_ms, struct keel_err *err)
{
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_RUN_SET_STATUS, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, store_run_status_name(to), -1, SQLITE_STATIC);
    bind_text(st, 3, reason);
    sqlite3_bind_int64(st, 4, now_ms);
    int rc = sqlite3_step(st);
    done_stmt(st);
    if (rc != SQLITE_DONE) return store_sq_fail(q, c->db, rc, "updating a run's status", err);
    if (sqlite3_changes(c->db) == 0)
        return keel_fail(err, KEEL_ENOENT, "no run '%s' in the store; check the run id", id);
    return 0;
}

/* Applies one request inside the open transaction.  The steps that can be
 * refused (the continuity checks, then the status change of a run that may
 * not exist) come before anything is written, so a refused request needs no
 * savepoint; any later failure is an I/O error that fails the whole group. */
static int apply_request(struct sq *q, struct conn *c, struct store_append *req, bool *fatal,
                         struct keel_err *err)
{
    int rc = check_events(q, c, req, err);
    if (rc) return rc;
    if (req->status_run_id) {
        rc = store_sq_set_status(q, c, req->status_run_id, req->status, req->status_reason,
                                 keel_wall_ms(), err);
        if (rc) {
            *fatal = rc != KEEL_ENOENT;
            return rc;
        }
    }
    *fatal = true;
    if (req->snapshot_run_id) {
        sqlite3_stmt *st = store_sq_stmt(q, c, ST_SNAP_PUT, err);
        if (!st) return err ? err->code : KEEL_EIO;
        sqlite3_bind_text(st, 1, req->snapshot_run_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, req->snapshot_seq);
        sqlite3_bind_text(st, 3, req->snapshot_state, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE) return store_sq_fail(q, c->db, src, "writing a snapshot", err);
    }
    /* The events are inserted after the whole group was checked, many to a
     * statement (insert_batch); the checks of later requests see them in
     * q->tails already (tail_advance). */
    if (q->batch_n + req->n_events > q->batch_cap) {
        size_t cap = q->batch_cap ? q->batch_cap : 256;
        while (cap < q->batch_n + req->n_events) cap *= 2;
        const struct store_event **b = realloc(q->batch, cap * sizeof *b);
        if (!b) return keel_fail(err, KEEL_ENOMEM, "out of memory queueing events to insert");
        q->batch = b;
        q->batch_cap = cap;
    }
    for (size_t i = 0; i < req->n_events; i++) q->batch[q->batch_n++] = &req->events[i];
    for (size_t i = 0; i < req->n_events; i++) {
        rc = tail_advance(q, c, &req->events[i], err);
        if (rc) return rc;
    }
    *fatal = false;
    return 0;
}

struct outcome {
    int rc;
    struct keel_err err;
};

/* Writes a group of requests in one transaction; fills out[i] per request. */
static void commit_group(struct sq *q, struct store_append **reqs, size_t n, struct outcome *out,
                         uint64_t *sync_ns, size_t *inserted)
{
    struct conn *c = &q->writer;
    struct keel_err gerr;
    keel_err_clear(&gerr);
    *inserted = 0;
    pthread_mutex_lock(&q->wlock);
    int grc = store_sq_exec_stmt(q, c, ST_BEGIN, &gerr);
    /* Another connection (another process) that wrote since our last commit
     * may have appended events: then the cached tails are stale. */
    int version = 0;
    if (grc == 0) {
        sqlite3_stmt *st = store_sq_stmt(q, c, ST_DATA_VERSION, &gerr);
        if (!st)
            grc = gerr.code;
        else if (sqlite3_step(st) == SQLITE_ROW)
            version = sqlite3_column_int(st, 0);
        if (st) done_stmt(st);
    }
    if (grc == 0 && (version != q->data_version || q->tails.count >= TAIL_CACHE_MAX)) {
        store_sq_tails_clear(&q->tails);
        q->log_complete = false;
    }
    q->gen++; /* a new group: no tail is changed by it yet */
    q->touched_n = 0;
    q->batch_n = 0;
    for (size_t i = 0; grc == 0 && i < n; i++) {
        keel_err_clear(&out[i].err);
        bool fatal = false;
        out[i].rc = apply_request(q, c, reqs[i], &fatal, &out[i].err);
        /* Refusals (a seq taken, a gap, a wrong link, an unknown run) fail the
         * request alone.  Anything else — an I/O error, or SQLite having
         * rolled the transaction back on its own — fails the whole group. */
        bool refusal =
            out[i].rc == KEEL_EEXIST || out[i].rc == KEEL_ESTATE || out[i].rc == KEEL_ENOENT;
        if (out[i].rc && (fatal || !refusal || sqlite3_get_autocommit(c->db))) {
            grc = out[i].rc;
            gerr = out[i].err;
        } else if (out[i].rc == 0) {
            *inserted += reqs[i]->n_events;
        }
    }
    if (grc == 0) grc = insert_batch(q, c, &gerr);
    int64_t t_commit = keel_mono_ns();
    if (grc == 0) grc = store_sq_exec_stmt(q, c, ST_COMMIT, &gerr);
    *sync_ns = (uint64_t)(keel_mono_ns() - t_commit);
    if (grc == 0) {
        q->data_version = version;
        /* Committed: the group's tails become the known tails. */
        for (size_t i = 0; i < q->touched_n; i++) {
            struct tail *t = q->touched[i];
            t->seq = t->pseq;
            memcpy(t->hash, t->phash, sizeof t->hash);
        }
    } else {
        store_sq_rollback(q, c);
        store_sq_tails_clear(&q->tails); /* frees the touched tails too */
        q->log_complete = false;
        q->touched_n = 0;
        *inserted = 0;
        for (size_t i = 0; i < n; i++) {
            out[i].rc = grc;
            out[i].err = gerr;
        }
    }
    pthread_mutex_unlock(&q->wlock);
}

/* Indexes the log: adds the (run_id, seq) of every event after
 * events_indexed.upto to events_index, and moves upto to the last event.  The rows themselves stay
 * where they are.  One transaction, so a reader finds every event exactly
 * once (through the index or in the log).  It does not fsync on its own:
 * the next durable commit's fsync covers it (WAL frames are synced in
 * order), and losing it to a power cut loses nothing — the events are
 * still in the log. */
void store_sq_index_log(struct sq *q)
{
    struct conn *c = &q->writer;
    struct keel_err err;
    pthread_mutex_lock(&q->wlock);
    bool full = q->opts.durability == STORE_DURABILITY_FULL;
    if (full) sqlite3_exec(c->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    int rc = store_sq_exec_stmt(q, c, ST_BEGIN, &err);
    if (!rc) rc = store_sq_exec_stmt(q, c, ST_LOG_INDEX, &err);
    if (!rc) rc = store_sq_exec_stmt(q, c, ST_LOG_MARK, &err);
    if (!rc) rc = store_sq_exec_stmt(q, c, ST_COMMIT, &err);
    if (rc) {
        store_sq_rollback(q, c);
        keel_log(KEEL_LOG_WARN,
                 "store %s: indexing recent events failed (they stay in the "
                 "log, reads still see them): %s",
                 q->path, err.msg);
        q->log_index_at = q->log_rows + LOG_INDEX_ROWS; /* back off */
    } else {
        q->log_rows = 0;
        q->log_index_at = LOG_INDEX_ROWS;
        q->log_complete = true; /* the log is empty: no run is missing from tails */
        pthread_mutex_lock(&q->qlock);
        q->stats.compactions++;
        pthread_mutex_unlock(&q->qlock);
    }
    if (full) sqlite3_exec(c->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    pthread_mutex_unlock(&q->wlock);
}

/* Set on the committer thread, which runs the completion callbacks: a
 * callback that made a synchronous append there would wait for itself. */
static _Thread_local bool on_committer;

/* Records a finished group in the stats (qlock held). */
static void count_group(struct sq *q, size_t n, size_t inserted, uint64_t commit_ns,
                        uint64_t sync_ns)
{
    q->stats.group_commits++;
    q->stats.commit_ns += commit_ns;
    q->stats.sync_ns += sync_ns;
    q->stats.appends += n;
    q->stats.events += inserted;
    if (n > q->stats.max_group) q->stats.max_group = n;
}

/* Groups of at least this many requests make the committer gather the
 * next one (see gather). */
#define GATHER_MIN 8
#define GATHER_MAX_NS 1000000

/* Before taking the queue, waits (qlock held) until as many requests are
 * queued as the last group carried, for at most half the last group's
 * commit time (and GATHER_MAX_NS).  With many runs in flight the queue
 * otherwise splits into two cohorts that alternate, each group carrying
 * about half of them: the runs completed by one group are still building
 * their next step when the committer takes the queue again.  Waiting a
 * fraction of a commit for them makes fewer, larger groups; a lone run
 * (last group < GATHER_MIN) never waits. */
static void gather(struct sq *q)
{
    if (q->last_group < GATHER_MIN || q->queued >= q->last_group || q->stopping) return;
    uint64_t wait_ns = q->last_commit_ns / 2;
    if (wait_ns > GATHER_MAX_NS) wait_ns = GATHER_MAX_NS;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    uint64_t ns = (uint64_t)until.tv_nsec + wait_ns;
    until.tv_sec += (time_t)(ns / 1000000000u);
    until.tv_nsec = (long)(ns % 1000000000u);
    q->gather_until = q->last_group;
    while (q->queued < q->gather_until && !q->stopping)
        if (pthread_cond_timedwait(&q->qcond, &q->qlock, &until) != 0) break;
    q->gather_until = 0;
}

void *store_sq_committer_main(void *arg)
{
    struct sq *q = arg;
    on_committer = true;
    pthread_setname_np(pthread_self(), "keel-commit");
    size_t cap = 64;
    struct store_append **reqs = malloc(cap * sizeof *reqs);
    struct outcome *out = malloc(cap * sizeof *out);
    if (!reqs || !out) abort(); /* cannot complete requests: nothing sane left */
    pthread_mutex_lock(&q->qlock);
    for (;;) {
        while (((!q->head && !q->index_wanted) || q->busy) && !q->stopping)
            pthread_cond_wait(&q->qcond, &q->qlock);
        if (q->busy) { /* stopping while an inline commit runs: let it finish */
            pthread_cond_wait(&q->qcond, &q->qlock);
            continue;
        }
        if (!q->head && !q->index_wanted) break; /* stopping, nothing left */
        if (!q->head) {
            q->index_wanted = false;
            q->busy = true;
            pthread_mutex_unlock(&q->qlock);
            store_sq_index_log(q);
            pthread_mutex_lock(&q->qlock);
            q->busy = false;
            continue;
        }
        gather(q);
        /* Take everything queued, up to the group's event budget (at least
         * one request, whatever its size). */
        size_t n = 0, events = 0;
        while (q->head && (n == 0 || events + q->head->n_events <= q->opts.group_max_events)) {
            struct store_append *r = q->head;
            q->head = r->impl_next;
            if (!q->head) q->tail = NULL;
            r->impl_next = NULL;
            q->queued--;
            if (n == cap) {
                cap *= 2;
                reqs = realloc(reqs, cap * sizeof *reqs);
                out = realloc(out, cap * sizeof *out);
                if (!reqs || !out) abort();
            }
            reqs[n++] = r;
            events += r->n_events;
        }
        q->busy = true;
        pthread_mutex_unlock(&q->qlock);

        uint64_t sync_ns = 0;
        size_t inserted = 0;
        /* commit_group sets every outcome (no memset: an outcome holds a
         * 2 KiB struct keel_err, and zeroing the group's measured 4% of
         * the instructions per step). */
        int64_t t0 = keel_mono_ns();
        commit_group(q, reqs, n, out, &sync_ns, &inserted);
        uint64_t commit_ns = (uint64_t)(keel_mono_ns() - t0);
        q->log_rows += inserted;
        pthread_mutex_lock(&q->qlock);
        count_group(q, n, inserted, commit_ns, sync_ns); /* before anyone sees completion */
        q->last_group = n;
        q->last_commit_ns = commit_ns;
        pthread_mutex_unlock(&q->qlock);

        /* Only now, after the commit, is any request complete.  Completing
         * on this thread (rather than handing the group to another) measured
         * faster: the waiters queue their next appends while the group is
         * being completed, so the next group is larger and the fsync is
         * shared by more of them. */
        for (size_t i = 0; i < n; i++)
            reqs[i]->done(reqs[i], out[i].rc, out[i].rc ? &out[i].err : NULL);

        pthread_mutex_lock(&q->qlock);
        bool idle = q->head == NULL;
        /* Index the log when it is long: right away if nobody is waiting,
         * else once it is twice as long (so a busy store still indexes). */
        if (q->log_rows >= q->log_index_at && (idle || q->log_rows >= 2 * q->log_index_at)) {
            pthread_mutex_unlock(&q->qlock);
            store_sq_index_log(q);
            pthread_mutex_lock(&q->qlock);
        }
        q->busy = false;
    }
    pthread_mutex_unlock(&q->qlock);
    free(reqs);
    free(out);
    return NULL;
}

/* The synchronous append.  When no group is being committed and nothing is
 * queued, the caller commits its own request on its own thread: a lone run
 * then pays one fsync and no thread hand-offs.  Otherwise it joins the queue
 * and waits like everyone else (group commit). */
int store_sq_append(struct store *s, struct store_append *req, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    if (q->opts.read_only)
        return keel_fail(err, KEEL_EINVAL,
                         "store %s was opened read-only; appends need write "
                         "access",
                         q->path);
    if (on_committer)
        return keel_fail(err, KEEL_EINTERNAL,
                         "store_append called from an append completion callback would wait "
                         "for itself; use store_append_async there");
    pthread_mutex_lock(&q->qlock);
    if (q->busy || q->head || q->stopping) {
        pthread_mutex_unlock(&q->qlock);
        return STORE_APPEND_QUEUE; /* store.c queues it and waits */
    }
    q->busy = true;
    pthread_mutex_unlock(&q->qlock);

    struct outcome out; /* set by commit_group */
    uint64_t sync_ns = 0;
    size_t inserted = 0;
    int64_t t0 = keel_mono_ns();
    commit_group(q, &req, 1, &out, &sync_ns, &inserted);
    uint64_t commit_ns = (uint64_t)(keel_mono_ns() - t0);
    q->log_rows += inserted;

    pthread_mutex_lock(&q->qlock);
    count_group(q, 1, inserted, commit_ns, sync_ns);
    if (q->log_rows >= q->log_index_at) q->index_wanted = true;
    q->busy = false;
    /* Requests that queued meanwhile, or indexing, are the committer's. */
    if (q->head || q->index_wanted || q->stopping) pthread_cond_broadcast(&q->qcond);
    pthread_mutex_unlock(&q->qlock);
    if (out.rc && err) *err = out.err;
    return out.rc;
}

int store_sq_append_async(struct store *s, struct store_append *req, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    if (q->opts.read_only)
        return keel_fail(err, KEEL_EINVAL,
                         "store %s was opened read-only; appends need write "
                         "access",
                         q->path);
    req->impl_next = NULL;
    pthread_mutex_lock(&q->qlock);
    if (q->stopping) {
        pthread_mutex_unlock(&q->qlock);
        return keel_fail(err, KEEL_ESTATE, "store %s is closing; no more appends", q->path);
    }
    if (q->tail)
        q->tail->impl_next = req;
    else
        q->head = req;
    q->tail = req;
    q->queued++;
    /* While the committer gathers a group it wants one wake-up, not one per
     * request. */
    if (!q->gather_until || q->queued >= q->gather_until) pthread_cond_signal(&q->qcond);
    pthread_mutex_unlock(&q->qlock);
    return 0;
}

/* ---- checkpoints and WAL preallocation -------------------------------- */

/* Called by SQLite on the writer after each commit (wlock held).  Asks for
 * a checkpoint each time the WAL grew by CHECKPOINT_FRAMES, not after every
 * commit past the mark: the WAL only restarts at a later commit, and until
 * then every commit would start another checkpoint (two more fsyncs each,
 * competing with the commits' own). */
int store_sq_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    struct sq *q = arg;
    if (frames < q->ck_last_frames) q->ck_next_at = CHECKPOINT_FRAMES; /* WAL restarted */
    q->ck_last_frames = frames;
    if (frames >= q->ck_next_at) {
        q->ck_next_at = frames + CHECKPOINT_FRAMES;
        pthread_mutex_lock(&q->cklock);
        q->ck_wanted = true;
        pthread_cond_signal(&q->ckcond);
        pthread_mutex_unlock(&q->cklock);
    }
    return SQLITE_OK;
}

static void *checkpointer_main(void *arg)
{
    struct sq *q = arg;
    pthread_setname_np(pthread_self(), "keel-ckpt");
    for (;;) {
        pthread_mutex_lock(&q->cklock);
        while (!q->ck_wanted && !q->ck_stopping)
            pthread_cond_wait(&q->ckcond, &q->cklock);
        bool stop = q->ck_stopping;
        q->ck_wanted = false;
        pthread_mutex_unlock(&q->cklock);
        if (stop) break;
        /* Two PASSIVE passes.  The first copies the WAL into the database
         * while commits go on.  The WAL can only restart from its beginning
         * (staying inside its preallocated blocks) once a checkpoint has
         * copied all of it, which a checkpoint racing steady commits never
         * does; so the second pass holds the writer back and copies the few
         * frames committed meanwhile (usually none or a handful).  Commits
         * wait only for that short pass, once per CHECKPOINT_FRAMES. */
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) pthread_mutex_lock(&q->wlock);
            int log = 0, done = 0;
            int rc = sqlite3_wal_checkpoint_v2(q->ckconn.db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log,
                                               &done);
            if (pass == 1) pthread_mutex_unlock(&q->wlock);
            keel_log(KEEL_LOG_DEBUG, "store %s: checkpoint pass %d: rc %d, %d of %d frames",
                     q->path, pass + 1, rc, done, log);
            if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
                keel_log(KEEL_LOG_WARN, "store %s: checkpoint failed: %s", q->path,
                         sqlite3_errmsg(q->ckconn.db));
                break;
            }
            /* A first pass that copied everything is not enough: a commit
             * that was in flight adds frames right after it.  Only the
             * second pass, with the writer idle, leaves the WAL fully copied
             * when the next transaction starts — the moment SQLite restarts
             * the WAL. */
        }
    }
    return NULL;
}

/* Extends the WAL file to WAL_BYTES with written zero blocks (not fallocate:
 * unwritten extents would still need a metadata change when first written).
 * Failure is not fatal: the store is correct without it, only slower. */
void store_sq_wal_preallocate(struct sq *q)
{
    char wal[1100];
    snprintf(wal, sizeof wal, "%s-wal", q->path);
    int fd = open(wal, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size < WAL_BYTES) {
        static const char zeros[65536];
        off_t off = st.st_size;
        bool ok = true;
        while (ok && off < WAL_BYTES) {
            size_t n = sizeof zeros;
            if ((off_t)n > WAL_BYTES - off) n = (size_t)(WAL_BYTES - off);
            ssize_t w = pwrite(fd, zeros, n, off);
            if (w < 0 && errno == EINTR) continue;
            ok = w > 0;
            if (ok) off += w;
        }
        if (!ok || fdatasync(fd) != 0)
            keel_log(KEEL_LOG_INFO, "store %s: could not preallocate the WAL: %s", q->path,
                     strerror(errno));
    }
    close(fd);
}

int store_sq_start_checkpointer(struct sq *q, struct keel_err *err)
{
    int rc = store_sq_conn_open(q, &q->ckconn, false, err);
    if (rc) return rc;
    if (pthread_create(&q->checkpointer, NULL, checkpointer_main, q) != 0)
        return keel_fail(err, KEEL_EIO, "cannot start the store's checkpoint thread");
    q->ck_running = true;
    return 0;
}
