/*
 * sqlite_internal.h — what the files of the SQLite store share (internal to
 * src/store/; other parts include store.h only): the store object, the
 * statements each connection caches, and the helpers every file uses.
 *
 *   sqlite.c          connections, the reader pool, the schema and its
 *                     migrations, open and close, the ops table
 *   sqlite_commit.c   group commit: the queue, the committer thread, the
 *                     continuity checks, indexing the log, checkpoints
 *   sqlite_runs.c     runs, leases, and the list queries
 *   sqlite_journal.c  reading events, snapshots, workflow versions
 *   sqlite_records.c  approvals, timers, idempotency records, key/value
 *   sqlite_usage.c    model usage: the model_calls rows, keel_fsum, and
 *                     store_usage_sum
 *
 * Symbols shared between these files are named store_sq_*.
 */
#ifndef KEEL_STORE_SQLITE_INTERNAL_H
#define KEEL_STORE_SQLITE_INTERNAL_H

#include "store_impl.h"

#include <pthread.h>
#include <sqlite3.h>

/* The WAL is checkpointed (by a background thread) once it holds this many
 * frames, and it is preallocated to WAL_BYTES with real zero blocks, with
 * journal_size_limit keeping it there.  Why: a commit that appends to a
 * growing file makes fdatasync also write the inode (the new size and
 * extents); overwriting blocks already allocated is a pure data sync.
 * SQLite ignores the zeros (they fail the frame checksums) and overwrites
 * them in place.  Twice the checkpoint distance leaves room for a checkpoint
 * that lags; it is kept small because every writable open pays for it. */
#define CHECKPOINT_FRAMES 500 /* ~2 MiB of 4 KiB pages */
#define WAL_BYTES (4 * 1024 * 1024)

/* Rows one ST_EV_INSERT_MANY statement inserts. */
#define INSERT_ROWS 16

/* Events are indexed once this many wait in the log (see index_log). */
#define LOG_INDEX_ROWS 4096

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_BEGIN_READ, /* a deferred (read) transaction on a reader connection */
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_RUN_INSERT,
    ST_RUN_GET,
    ST_RUN_STATUS,
    ST_RUN_SET_STATUS,
    ST_RUN_CLAIM,
    ST_RUN_LEASE,
    ST_RUN_RELEASE,
    ST_EV_INSERT,
    ST_EV_INSERT_MANY,
    ST_EV_TAIL,     /* a run's last event in events_index             */
    ST_EV_TAIL_LOG, /* a run's last event in the log (after upto)       */
    ST_EV_SCAN,     /* a run's events in events_index, in seq order     */
    ST_EV_SCAN_LOG, /* a run's events in the log, in append order       */
    ST_MC_INSERT,   /* a model call's usage row (sqlite_usage.c)        */
    ST_LOG_INDEX,
    ST_LOG_MARK,
    ST_LOG_COUNT,
    ST_DATA_VERSION,
    ST_SNAP_PUT,
    ST_SNAP_GET,
    ST_WF_INSERT,
    ST_WF_GET,
    ST_WF_LATEST,
    ST_AP_INSERT,
    ST_AP_GET,
    ST_AP_DECIDE,
    ST_TM_SET,
    ST_TM_NEXT,
    ST_TM_DELETE,
    ST_TM_DELETE_RUN,
    ST_TM_DUE,
    ST_TM_CLAIM,
    ST_IDEM_GET,
    ST_IDEM_PUT,
    ST_IDEM_EXPIRE,
    ST_KV_PUT,
    ST_KV_GET,
    ST_KV_DELETE,
    ST_COUNT
};

/* Column lists, in the order the row readers expect. */
#define RUN_COLS                                                                                   \
    "id, workflow, workflow_hash, status, reason, input, identity, parent_id, parent_seq, "        \
    "created_ms, updated_ms, lease_owner, lease_expires_ms"
#define APPROVAL_COLS                                                                              \
    "id, run_id, step_id, grp, request, status, decided_by, comment, created_ms, expires_ms, "     \
    "decided_ms"

/* The SQL of each statement id (sqlite.c). */
extern const char *const store_sq_stmt_sql[ST_COUNT];

/* 64 '0' characters: the prev_hash of a run's first event (sqlite_commit.c). */
extern const char store_sq_zero_hash[STORE_HASH_HEX + 1];

struct conn {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    struct conn *next; /* free list */
};

struct sq {
    struct store base;
    struct store_opts opts;
    char path[1024];
    bool memory;

    pthread_mutex_t wlock; /* the writer connection */
    struct conn writer;

    pthread_mutex_t rlock; /* the reader pool */
    struct conn *idle;
    size_t n_idle;

    pthread_mutex_t qlock; /* the append queue, stats, stopping */
    pthread_cond_t qcond;
    struct store_append *head, *tail;
    bool stopping;
    bool busy;         /* a group commit is in progress (committer or inline) */
    bool index_wanted; /* an inline commit left the log long: committer indexes it */
    size_t queued;       /* requests in the queue                          */
    size_t gather_until; /* the committer waits for this many (0: it does not) */
    size_t last_group;   /* requests in the last group commit              */
    uint64_t last_commit_ns;
    bool committer_running;
    pthread_t committer;
    struct store_stats stats;

    /* Owned by the committer thread (and wlock): */
    struct strmap tails;   /* run id -> struct tail (sqlite_commit.c)      */
    uint64_t gen;          /* the open group's number (struct tail.pgen)   */
    struct tail **touched; /* tails the open group changed                 */
    size_t touched_n, touched_cap;
    int data_version;      /* PRAGMA data_version after our last commit    */
    /* tails holds every run that has events in the log (the rows after
     * events_indexed.upto): true from an index_log until tails is cleared.
     * Then a run missing from tails has its events, if any, all in the
     * index, and its tail is one index probe instead of a walk of the log
     * (a new run's first append walked all of it). */
    bool log_complete;
    size_t log_rows;       /* events not yet in events_index (the log)     */
    size_t log_index_at;   /* index the log when log_rows reaches this     */
    const struct store_event **batch; /* the open group's events, to insert */
    size_t batch_n, batch_cap;

    int ck_next_at, ck_last_frames; /* wal_hook's state (wlock held) */
    pthread_mutex_t cklock;         /* the checkpointer: wakes when the WAL is long */
    pthread_cond_t ckcond;
    bool ck_wanted, ck_stopping, ck_running;
    pthread_t checkpointer;
    struct conn ckconn;
};

static inline struct sq *sq_of(struct store *s)
{
    return (struct sq *)s;
}

/* Resets a statement taken with store_sq_stmt for its next use. */
static inline void done_stmt(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Binds s, or NULL when s is NULL, without copying (SQLITE_STATIC). */
static inline void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

/* Column i of the current row as a string in arena a; NULL for SQL NULL. */
static inline const char *col_text(struct arena *a, sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return NULL;
    const unsigned char *t = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    return arena_strndup(a, t ? (const char *)t : "", (size_t)n);
}

/* Reads the current row of st into *row (a struct of the list's type). */
typedef int (*row_reader)(struct sq *q, sqlite3_stmt *st, struct arena *a, void *row,
                          struct keel_err *err);

/* ---- sqlite.c ---- */

/* Fills err with what failed, the file and SQLite's reason (and a hint for
 * busy, corrupt, full and read-only), and returns the KEEL_E* code. */
int store_sq_fail(struct sq *q, sqlite3 *db, int rc, const char *what, struct keel_err *err);

/* The cached statement id of connection c, prepared on first use; borrowed
 * (owned by c), reset and unbound.  NULL with err set if it cannot be
 * prepared. */
/* The last event of run_id (seq 0 and the zero hash if none) through c:
 * the log first, then the index.  Call inside a transaction (a read one on
 * a reader connection). */
int store_sq_tail(struct sq *q, struct conn *c, const char *run_id, int64_t *seq, char *hash,
                  struct keel_err *err);
sqlite3_stmt *store_sq_stmt(struct sq *q, struct conn *c, enum stmt_id id, struct keel_err *err);

/* Runs statement id of c, which returns no rows. */
int store_sq_exec_stmt(struct sq *q, struct conn *c, enum stmt_id id, struct keel_err *err);

/* Opens a connection to q's file into *c (the writer creates the file).
 * Close it with conn_close in sqlite.c (store_sq_reader_put for readers). */
int store_sq_conn_open(struct sq *q, struct conn *c, bool writer, struct keel_err *err);

/* A connection for reading, from the pool (or a new one): give it back with
 * store_sq_reader_put.  On an in-memory store it is the writer, with wlock
 * held.  NULL with err set on failure. */
struct conn *store_sq_reader_get(struct sq *q, struct keel_err *err);

/* Gives back a connection from store_sq_reader_get (NULL is a no-op). */
void store_sq_reader_put(struct sq *q, struct conn *c);

/* The writer connection, with wlock held until store_sq_writer_put; NULL
 * with err set if the store is read-only. */
struct conn *store_sq_writer_get(struct sq *q, struct keel_err *err);

/* Releases the writer taken by store_sq_writer_get. */
void store_sq_writer_put(struct sq *q);

/* Rolls back c's open transaction, if any, keeping the first error. */
void store_sq_rollback(struct sq *q, struct conn *c);

/* ---- sqlite_commit.c ---- */

/* Frees the struct tail values of m and empties it (m stays usable). */
void store_sq_tails_clear(struct strmap *m);
/* A run's last event looked up through events_index alone (the caller
 * knows the log has none of its events): *seq 0 and zero hash if none. */
int store_sq_tail_indexed(struct sq *q, struct conn *c, const char *run_id, int64_t *seq,
                          char *hash, struct keel_err *err);

/* Sets run id's status and reason inside the writer's open transaction
 * (wlock held); KEEL_ENOENT if there is no such run. */
int store_sq_set_status(struct sq *q, struct conn *c, const char *id, enum store_run_status to,
                        const char *reason, int64_t now_ms, struct keel_err *err);

/* The committer thread (arg: the struct sq); runs until q->stopping and
 * the queue is drained. */
/* Adds the log's events to events_index in one transaction (the committer
 * does it every LOG_INDEX_ROWS events; store_open once, before it starts
 * the committer).  Holds the writer; a failure is logged, not returned:
 * reads find the events in the log meanwhile. */
void store_sq_index_log(struct sq *q);
void *store_sq_committer_main(void *arg);

/* struct store_ops.append: commits on the caller's thread when the store
 * is idle, else returns STORE_APPEND_QUEUE. */
int store_sq_append(struct store *s, struct store_append *req, struct keel_err *err);

/* struct store_ops.append_async: queues req for the committer (req is
 * borrowed until its done callback ran). */
int store_sq_append_async(struct store *s, struct store_append *req, struct keel_err *err);

/* sqlite3_wal_hook callback of the writer (arg: the struct sq): asks the
 * checkpointer for a checkpoint as the WAL grows. */
int store_sq_wal_hook(void *arg, sqlite3 *db, const char *name, int frames);

/* Extends the WAL file to WAL_BYTES of written zeros (best effort). */
void store_sq_wal_preallocate(struct sq *q);

/* Opens the checkpointer's connection and starts its thread. */
int store_sq_start_checkpointer(struct sq *q, struct keel_err *err);

/* ---- sqlite_runs.c ---- */

/* Grows an arena array of count items of size bytes (capacity *cap) to
 * hold one more; returns the (possibly moved) array, NULL when out of memory. */
void *store_sq_grow(struct arena *a, void *items, size_t count, size_t *cap, size_t size);

/* Appends " IN ('a', 'b', ...)" for the statuses set in mask (of count,
 * named by name) to sql. */
void store_sq_append_status_in(struct buf *sql, unsigned mask, unsigned count,
                               const char *(*name)(int));

/* The name of approval status i, for store_sq_append_status_in. */
const char *store_sq_approval_status_name_int(int i);

/* Runs the SELECT in sql with binds (borrowed) and reads every row with
 * read into an array of *n items of size bytes in arena a (*out). */
int store_sq_list_rows(struct sq *q, struct buf *sql, const char *const *binds, int nbinds,
                       size_t size, row_reader read, const char *what, struct arena *a, void **out,
                       size_t *n, struct keel_err *err);

/* A row_reader for approvals (row is a struct store_approval). */
int store_sq_read_approval_row(struct sq *q, sqlite3_stmt *st, struct arena *a, void *row,
                               struct keel_err *err);

/* struct store_ops entries; each one's contract is in store.h, where
 * the store_* function of the same name is documented. */
int store_sq_run_create(struct store *s, const struct store_run *run, struct keel_err *err);
int store_sq_run_get(struct store *s, const char *id, struct arena *a, struct store_run *out,
                     struct keel_err *err);
int store_sq_run_set_status(struct store *s, const char *id, unsigned from_mask,
                            enum store_run_status to, const char *reason, int64_t now_ms,
                            struct keel_err *err);
int store_sq_run_list(struct store *s, const struct store_run_filter *f, struct arena *a,
                      struct store_run **out, size_t *n, struct keel_err *err);
int store_sq_run_claim(struct store *s, const char *id, const char *owner, int64_t ttl_ms,
                       int64_t now_ms, struct keel_err *err);
int store_sq_run_claim_next(struct store *s, unsigned status_mask, const char *owner,
                            int64_t ttl_ms, int64_t now_ms, struct arena *a, struct store_run *out,
                            struct keel_err *err);
int store_sq_run_release(struct store *s, const char *id, const char *owner, struct keel_err *err);

/* ---- sqlite_journal.c ---- */

/* struct store_ops entries; each one's contract is in store.h, where
 * the store_* function of the same name is documented. */
int store_sq_events_tail(struct store *s, const char *run_id, int64_t *seq, char *hash,
                         struct keel_err *err);
int store_sq_events_scan(struct store *s, const char *run_id, int64_t from_seq, int64_t limit,
                         store_event_fn fn, void *ctx, struct keel_err *err);
int store_sq_snapshot_get(struct store *s, const char *run_id, int64_t max_seq, struct arena *a,
                          int64_t *seq, const char **state, struct keel_err *err);
int store_sq_workflow_put(struct store *s, const char *name, const char *hash, const char *body,
                          int64_t now_ms, struct keel_err *err);
int store_sq_workflow_get(struct store *s, const char *name, const char *hash, struct arena *a,
                          const char **body, const char **hash_out, struct keel_err *err);

/* ---- sqlite_usage.c ---- */

/* Registers Keel's SQL functions (keel_fsum, a compensated SUM) on db;
 * every connection does it when it opens. */
int store_sq_register_functions(struct sq *q, sqlite3 *db, struct keel_err *err);

/* Inserts the usage row of event (run_id, seq) at time_ms through c, inside
 * the writer's open transaction. */
int store_sq_usage_insert(struct sq *q, struct conn *c, const char *run_id, int64_t seq,
                          int64_t time_ms, const struct store_usage *u, struct keel_err *err);

/* Migration 4's second half: a model_calls row for every stored
 * model.response event (inside the migration's transaction). */
int store_sq_usage_backfill(struct sq *q, struct conn *c, struct keel_err *err);

/* struct store_ops.usage_sum (contract in store.h, store_usage_sum). */
int store_sq_usage_sum(struct store *s, const struct store_usage_filter *f, struct arena *a,
                       struct store_usage_sum **out, size_t *n, struct keel_err *err);

/* ---- sqlite_records.c ---- */

/* Reads one approval row of st into *out, strings in arena a. */
int store_sq_read_approval(struct sq *q, sqlite3_stmt *st, struct arena *a,
                           struct store_approval *ap, struct keel_err *err);

/* struct store_ops entries; each one's contract is in store.h, where
 * the store_* function of the same name is documented. */
int store_sq_approval_create(struct store *s, const struct store_approval *ap,
                             struct keel_err *err);
int store_sq_approval_get(struct store *s, const char *id, struct arena *a,
                          struct store_approval *out, struct keel_err *err);
int store_sq_approval_list(struct store *s, const struct store_approval_filter *f, struct arena *a,
                           struct store_approval **out, size_t *n, struct keel_err *err);
int store_sq_approval_decide(struct store *s, const char *id, enum store_approval_status to,
                             const char *decided_by, const char *comment, int64_t now_ms,
                             struct keel_err *err);
int store_sq_timer_set(struct store *s, const struct store_timer *t, struct keel_err *err);
int store_sq_timer_claim_due(struct store *s, int64_t now_ms, const char *owner, int64_t claim_ms,
                             size_t max, struct arena *a, struct store_timer **out, size_t *n,
                             struct keel_err *err);
int store_sq_timer_next_due(struct store *s, int64_t *due_ms, struct keel_err *err);
int store_sq_timer_delete(struct store *s, const char *id, struct keel_err *err);
int store_sq_timer_delete_run(struct store *s, const char *run_id, size_t *deleted,
                              struct keel_err *err);
int store_sq_idem_put(struct store *s, const char *key, const char *run_id, const char *result,
                      int64_t expires_ms, struct arena *a, const char **existing,
                      struct keel_err *err);
int store_sq_idem_get(struct store *s, const char *key, int64_t now_ms, struct arena *a,
                      const char **result, struct keel_err *err);
int store_sq_idem_expire(struct store *s, int64_t now_ms, size_t *deleted, struct keel_err *err);
int store_sq_kv_put(struct store *s, const char *key, const char *value, struct keel_err *err);
int store_sq_kv_get(struct store *s, const char *key, struct arena *a, const char **value,
                    struct keel_err *err);
int store_sq_kv_delete(struct store *s, const char *key, struct keel_err *err);

#endif
