/*
 * sqlite.c — the SQLite implementation of the store (struct store_ops).
 *
 * Connections.  One writer connection, guarded by q->wlock, makes every
 * write; a pool of reader connections (WAL lets them read while the writer
 * writes) serves reads, one connection per reading thread at a time.  The
 * pool keeps up to opts.readers idle connections and opens more when all are
 * busy, so a callback that reads from inside a scan cannot deadlock.  An
 * in-memory database has no separate readers: reads use the writer.
 *
 * Durability.  journal_mode=WAL; synchronous=FULL (default: the WAL is
 * fsynced at every commit, so a commit survives power loss) or NORMAL.
 * Checkpoints run on their own thread and connection (wal_autocheckpoint is
 * off on the writer), so a commit never waits for one; the WAL file is
 * preallocated so that its fsync is a pure data sync (see WAL_BYTES).
 *
 * Group commit.  Appends are queued (q->queue, a FIFO linked through
 * req->impl_next) and a single committer thread drains it: it takes every
 * queued request (up to opts.group_max_events events), runs them in ONE
 * transaction on the writer — each request inside its own savepoint when it
 * has more than one effect, so a request that fails its checks fails alone —
 * commits once (one fsync), and only then calls each request's done
 * callback.  A request is never completed before the commit that holds it.
 *
 * Continuity.  An event is inserted only if seq is 1 with a zero prev_hash,
 * or event seq-1 of the run exists with hash == prev_hash (so a second event
 * with the same seq is refused).  Because the committer is the only writer
 * of events and checks inside its transaction, two writers can never fork a
 * run; the primary key (run_id, seq) of events_index is a second line that
 * would refuse to index a duplicate.
 *
 * Events.  One table in append order; events_index (run_id, seq -> id) is
 * built behind it in batches, and the rows not yet indexed ("the log") are
 * found by a range scan of the newest ids (see migration 3 and index_log).
 *
 * Schema.  Versioned by PRAGMA user_version; the migrations table below is
 * applied in order, each in its own transaction.  application_id marks the
 * file as a Keel store.  Statements are prepared once per connection and
 * cached (conn->st[]).
 */
#include "store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEEL_APPLICATION_ID 0x4b45454c /* "KEEL" */

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

/* Events are indexed once this many wait in the log (see index_log). */
#define LOG_INDEX_ROWS 4096
/* Runs whose tail the committer remembers; beyond, it forgets them all. */
#define TAIL_CACHE_MAX 65536

/* ---- schema ------------------------------------------------------------ */

#define EVENT_COLS "run_id, seq, time_ms, kind, actor, payload, prev_hash, hash"
#define EVENT_COLS_E                                                                               \
    "e.run_id, e.seq, e.time_ms, e.kind, e.actor, e.payload, e.prev_hash, e.hash"

/* migrations[i] takes the schema from user_version i to i + 1.  Never edit
 * a shipped entry; add a row. */
static const char *const migrations[] = {
    /* 1: the first schema */
    "CREATE TABLE runs ("
    "  id TEXT PRIMARY KEY,"
    "  workflow TEXT NOT NULL,"
    "  workflow_hash TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  reason TEXT,"
    "  input TEXT NOT NULL,"
    "  identity TEXT NOT NULL,"
    "  parent_id TEXT,"
    "  parent_seq INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  lease_owner TEXT,"
    "  lease_expires_ms INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE INDEX runs_by_status ON runs(status, id);"
    "CREATE INDEX runs_by_workflow ON runs(workflow, id);"
    "CREATE INDEX runs_by_parent ON runs(parent_id, id) WHERE parent_id IS NOT NULL;"
    "CREATE TABLE events ("
    "  run_id TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  time_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  prev_hash TEXT NOT NULL,"
    "  hash TEXT NOT NULL,"
    "  PRIMARY KEY (run_id, seq)"
    ") WITHOUT ROWID;"
    "CREATE TABLE snapshots ("
    "  run_id TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  state TEXT NOT NULL,"
    "  PRIMARY KEY (run_id, seq)"
    ") WITHOUT ROWID;"
    "CREATE TABLE workflows ("
    "  name TEXT NOT NULL,"
    "  hash TEXT NOT NULL,"
    "  body TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  UNIQUE (name, hash)"
    ");"
    "CREATE TABLE approvals ("
    "  id TEXT PRIMARY KEY,"
    "  run_id TEXT NOT NULL,"
    "  step_id TEXT NOT NULL,"
    "  grp TEXT NOT NULL,"
    "  request TEXT NOT NULL,"
    "  status TEXT NOT NULL,"
    "  decided_by TEXT,"
    "  comment TEXT,"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL DEFAULT 0,"
    "  decided_ms INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE INDEX approvals_by_status ON approvals(status, id);"
    "CREATE INDEX approvals_by_run ON approvals(run_id, id);"
    "CREATE TABLE timers ("
    "  id TEXT PRIMARY KEY,"
    "  run_id TEXT NOT NULL,"
    "  step_id TEXT,"
    "  due_ms INTEGER NOT NULL,"
    "  payload TEXT,"
    "  claim_owner TEXT,"
    "  claim_expires_ms INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE INDEX timers_by_due ON timers(due_ms, id);"
    "CREATE INDEX timers_by_run ON timers(run_id);"
    "CREATE TABLE idempotency ("
    "  key TEXT PRIMARY KEY,"
    "  run_id TEXT,"
    "  result TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE TABLE kv ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL,"
    "  updated_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;",

    /* 2: the event log — appends land here, at the end of one B-tree, so a
     * commit writes a few pages however many runs it carries; compact_log
     * moves them into events.  No index: the committer knows each run's
     * tail, and the log stays short. */
    "CREATE TABLE events_log ("
    "  id INTEGER PRIMARY KEY,"
    "  run_id TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  time_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  prev_hash TEXT NOT NULL,"
    "  hash TEXT NOT NULL"
    ");",

    /* 3: one events table for good, in append order, and an index built
     * behind it.  Appends go to the end of events (a rowid table), so a
     * commit writes a few pages however many runs it carries; every
     * LOG_INDEX_ROWS events the committer adds the new rows' (run_id, seq)
     * to events_index in one sorted batch (index_log).  events_indexed.upto
     * is the last id indexed; rows after it are "the log", read by a rowid
     * range scan.  Until schema 2, compaction moved whole rows from
     * events_log into a WITHOUT ROWID events table: per 4096 events of 64
     * runs that wrote 614-1012 WAL frames and took 29-42 ms of CPU; adding
     * the index entries writes 22-124 frames. */
    "ALTER TABLE events RENAME TO events_v2;"
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY,"
    "  run_id TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  time_ms INTEGER NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  payload TEXT NOT NULL,"
    "  prev_hash TEXT NOT NULL,"
    "  hash TEXT NOT NULL"
    ");"
    "INSERT INTO events (" EVENT_COLS ") SELECT " EVENT_COLS " FROM events_v2 "
    "  ORDER BY run_id, seq;"
    "INSERT INTO events (" EVENT_COLS ") SELECT " EVENT_COLS " FROM events_log ORDER BY id;"
    "DROP TABLE events_v2;"
    "DROP TABLE events_log;"
    "CREATE TABLE events_index ("
    "  run_id TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  id INTEGER NOT NULL,"
    "  PRIMARY KEY (run_id, seq)"
    ") WITHOUT ROWID;"
    "INSERT INTO events_index SELECT run_id, seq, id FROM events;"
    "CREATE TABLE events_indexed (upto INTEGER NOT NULL);"
    "INSERT INTO events_indexed SELECT coalesce(max(id), 0) FROM events;",
};
#define SCHEMA_VERSION ((int)KEEL_ARRAY_LEN(migrations))

/* ---- statements -------------------------------------------------------- */

#define RUN_COLS                                                                                   \
    "id, workflow, workflow_hash, status, reason, input, identity, parent_id, parent_seq, "        \
    "created_ms, updated_ms, lease_owner, lease_expires_ms"
#define APPROVAL_COLS                                                                              \
    "id, run_id, step_id, grp, request, status, decided_by, comment, created_ms, expires_ms, "     \
    "decided_ms"
#define TIMER_COLS "id, run_id, step_id, due_ms, payload, claim_owner, claim_expires_ms"

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
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
    ST_EV_TAIL,
    ST_EV_SCAN,
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

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT req",
    [ST_RELEASE] = "RELEASE req",
    [ST_ROLLBACK_TO] = "ROLLBACK TO req",
    [ST_RUN_INSERT] = "INSERT INTO runs (" RUN_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                      "?9, ?10, ?11, NULL, 0)",
    [ST_RUN_GET] = "SELECT " RUN_COLS " FROM runs WHERE id = ?1",
    [ST_RUN_STATUS] = "SELECT status FROM runs WHERE id = ?1",
    [ST_RUN_SET_STATUS] = "UPDATE runs SET status = ?2, reason = ?3, updated_ms = ?4 WHERE id = ?1",
    [ST_RUN_CLAIM] = "UPDATE runs SET lease_owner = ?2, lease_expires_ms = ?3 WHERE id = ?1 AND "
                     "(lease_owner IS NULL OR lease_expires_ms <= ?4 OR lease_owner = ?2)",
    [ST_RUN_LEASE] = "SELECT lease_owner, lease_expires_ms FROM runs WHERE id = ?1",
    [ST_RUN_RELEASE] = "UPDATE runs SET lease_owner = NULL, lease_expires_ms = 0 "
                       "WHERE id = ?1 AND lease_owner = ?2",
    [ST_EV_INSERT] = "INSERT INTO events (" EVENT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    /* An event is found through events_index, or it is in the log: the
     * rows after events_indexed.upto, which no index covers. */
    [ST_EV_TAIL] = "SELECT seq, hash FROM (SELECT e.seq, e.hash FROM events_index i JOIN events e "
                   "ON e.id = i.id WHERE i.run_id = ?1 ORDER BY i.seq DESC LIMIT 1) "
                   "UNION ALL SELECT seq, hash FROM (SELECT seq, hash FROM events WHERE id > "
                   "(SELECT upto FROM events_indexed) AND run_id = ?1 ORDER BY seq DESC LIMIT 1) "
                   "ORDER BY seq DESC LIMIT 1",
    [ST_EV_SCAN] = "SELECT " EVENT_COLS_E " FROM events_index i JOIN events e ON e.id = i.id "
                   "WHERE i.run_id = ?1 AND i.seq >= ?2 UNION ALL SELECT " EVENT_COLS " FROM "
                   "events WHERE id > (SELECT upto FROM events_indexed) AND run_id = ?1 AND "
                   "seq >= ?2 ORDER BY 2 LIMIT ?3",
    [ST_LOG_INDEX] = "INSERT INTO events_index SELECT run_id, seq, id FROM events WHERE id > "
                     "(SELECT upto FROM events_indexed) ORDER BY run_id, seq",
    [ST_LOG_MARK] = "UPDATE events_indexed SET upto = (SELECT coalesce(max(id), 0) FROM events)",
    [ST_LOG_COUNT] = "SELECT count(*) FROM events WHERE id > (SELECT upto FROM events_indexed)",
    [ST_DATA_VERSION] = "PRAGMA data_version",
    [ST_SNAP_PUT] = "INSERT OR REPLACE INTO snapshots (run_id, seq, state) VALUES (?1, ?2, ?3)",
    [ST_SNAP_GET] = "SELECT seq, state FROM snapshots WHERE run_id = ?1 AND seq <= ?2 "
                    "ORDER BY seq DESC LIMIT 1",
    [ST_WF_INSERT] = "INSERT OR IGNORE INTO workflows (name, hash, body, created_ms) "
                     "VALUES (?1, ?2, ?3, ?4)",
    [ST_WF_GET] = "SELECT body, hash FROM workflows WHERE name = ?1 AND hash = ?2",
    [ST_WF_LATEST] = "SELECT body, hash FROM workflows WHERE name = ?1 "
                     "ORDER BY created_ms DESC, rowid DESC LIMIT 1",
    [ST_AP_INSERT] = "INSERT INTO approvals (" APPROVAL_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, "
                     "'pending', NULL, NULL, ?6, ?7, 0)",
    [ST_AP_GET] = "SELECT " APPROVAL_COLS " FROM approvals WHERE id = ?1",
    [ST_AP_DECIDE] = "UPDATE approvals SET status = ?2, decided_by = ?3, comment = ?4, "
                     "decided_ms = ?5 WHERE id = ?1 AND status = 'pending'",
    [ST_TM_SET] = "INSERT OR REPLACE INTO timers (" TIMER_COLS ") "
                  "VALUES (?1, ?2, ?3, ?4, ?5, NULL, 0)",
    [ST_TM_NEXT] = "SELECT min(due_ms) FROM timers",
    [ST_TM_DELETE] = "DELETE FROM timers WHERE id = ?1",
    [ST_TM_DELETE_RUN] = "DELETE FROM timers WHERE run_id = ?1",
    [ST_TM_DUE] = "SELECT " TIMER_COLS " FROM timers WHERE due_ms <= ?1 AND "
                  "(claim_owner IS NULL OR claim_expires_ms <= ?1) ORDER BY due_ms, id LIMIT ?2",
    [ST_TM_CLAIM] = "UPDATE timers SET claim_owner = ?2, claim_expires_ms = ?3 WHERE id = ?1",
    [ST_IDEM_GET] = "SELECT result, expires_ms FROM idempotency WHERE key = ?1",
    [ST_IDEM_PUT] = "INSERT OR REPLACE INTO idempotency (key, run_id, result, created_ms, "
                    "expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_IDEM_EXPIRE] = "DELETE FROM idempotency WHERE expires_ms != 0 AND expires_ms <= ?1",
    [ST_KV_PUT] = "INSERT OR REPLACE INTO kv (key, value, updated_ms) VALUES (?1, ?2, ?3)",
    [ST_KV_GET] = "SELECT value FROM kv WHERE key = ?1",
    [ST_KV_DELETE] = "DELETE FROM kv WHERE key = ?1",
};

/* ---- the store object -------------------------------------------------- */

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
    bool busy;           /* a group commit is in progress (committer or inline) */
    bool index_wanted;   /* an inline commit left the log long: committer indexes it */
    bool committer_running;
    pthread_t committer;
    struct store_stats stats;

    /* Owned by the committer thread (and wlock): */
    struct strmap tails;   /* run id -> struct tail, as committed          */
    struct strmap pending; /* run id -> struct tail, in the open group     */
    int data_version;      /* PRAGMA data_version after our last commit    */
    size_t log_rows;       /* events not yet in events_index (the log)     */
    size_t log_index_at;   /* index the log when log_rows reaches this     */

    int ck_next_at, ck_last_frames; /* wal_hook's state (wlock held) */
    pthread_mutex_t cklock; /* the checkpointer: wakes when the WAL is long */
    pthread_cond_t ckcond;
    bool ck_wanted, ck_stopping, ck_running;
    pthread_t checkpointer;
    struct conn ckconn;
};

static struct sq *sq_of(struct store *s)
{
    return (struct sq *)s;
}

/* SQLite primary result codes and the KEEL_E* code each becomes; anything
 * not listed is an I/O failure. */
static const struct {
    int sqlite;
    int keel;
} code_map[] = {
    {SQLITE_BUSY, KEEL_EBUSY},         {SQLITE_LOCKED, KEEL_EBUSY},
    {SQLITE_CONSTRAINT, KEEL_EEXIST},  {SQLITE_CORRUPT, KEEL_ECORRUPT},
    {SQLITE_NOTADB, KEEL_ECORRUPT},    {SQLITE_NOMEM, KEEL_ENOMEM},
    {SQLITE_READONLY, KEEL_EINVAL},
};

static int sq_code(int rc)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(code_map); i++)
        if ((rc & 0xff) == code_map[i].sqlite) return code_map[i].keel;
    return KEEL_EIO;
}

static int sq_fail(struct sq *q, sqlite3 *db, int rc, const char *what, struct keel_err *err)
{
    const char *hint = "";
    int code = sq_code(rc);
    if (code == KEEL_EBUSY) hint = "; another process holds the database lock, retry later";
    else if (code == KEEL_ECORRUPT) hint = "; restore the store from a backup";
    else if ((rc & 0xff) == SQLITE_FULL) hint = "; free disk space";
    else if ((rc & 0xff) == SQLITE_READONLY) hint = "; the store was opened read-only";
    return keel_fail(err, code, "store %s: %s: %s%s", q->path, what,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), hint);
}

/* Returns the cached statement id of c, reset and unbound, or NULL (err set). */
static sqlite3_stmt *stmt(struct sq *q, struct conn *c, enum stmt_id id, struct keel_err *err)
{
    if (!c->st[id]) {
        int rc = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->st[id],
                                    NULL);
        if (rc != SQLITE_OK) {
            sq_fail(q, c->db, rc, "preparing a statement", err);
            return NULL;
        }
    }
    return c->st[id];
}

static void done_stmt(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

static const char *col_text(struct arena *a, sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL) return NULL;
    const unsigned char *t = sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    return arena_strndup(a, t ? (const char *)t : "", (size_t)n);
}

/* Runs a statement that returns no rows. */
static int exec_stmt(struct sq *q, struct conn *c, enum stmt_id id, struct keel_err *err)
{
    sqlite3_stmt *st = stmt(q, c, id, err);
    if (!st) return err ? err->code : KEEL_EIO;
    int rc = sqlite3_step(st);
    done_stmt(st);
    if (rc != SQLITE_DONE) return sq_fail(q, c->db, rc, stmt_sql[id], err);
    return 0;
}

static void conn_close(struct conn *c)
{
    for (int i = 0; i < ST_COUNT; i++) {
        if (c->st[i]) sqlite3_finalize(c->st[i]);
        c->st[i] = NULL;
    }
    if (c->db) sqlite3_close_v2(c->db);
    c->db = NULL;
}

static int conn_open(struct sq *q, struct conn *c, bool writer, struct keel_err *err)
{
    memset(c, 0, sizeof *c);
    int flags = SQLITE_OPEN_NOMUTEX;
    if (q->opts.read_only) flags |= SQLITE_OPEN_READONLY;
    else flags |= SQLITE_OPEN_READWRITE | (writer ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(q->path, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        keel_fail(err, sq_code(rc) == KEEL_EBUSY ? KEEL_EBUSY : KEEL_EIO,
                  "cannot open the store %s: %s; check that the directory exists and is writable",
                  q->path, c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        conn_close(c);
        return err ? err->code : KEEL_EIO;
    }
    sqlite3_busy_timeout(c->db, q->opts.busy_timeout_ms);
    sqlite3_extended_result_codes(c->db, 1);
    char sql[256];
    snprintf(sql, sizeof sql, "PRAGMA synchronous=%s; PRAGMA foreign_keys=OFF;",
             q->opts.durability == STORE_DURABILITY_FULL ? "FULL" : "NORMAL");
    rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        sq_fail(q, c->db, rc, "configuring the connection", err);
        conn_close(c);
        return err ? err->code : KEEL_EIO;
    }
    return 0;
}

/* ---- reader pool ------------------------------------------------------- */

static struct conn *reader_get(struct sq *q, struct keel_err *err)
{
    if (q->memory) {
        pthread_mutex_lock(&q->wlock);
        return &q->writer;
    }
    pthread_mutex_lock(&q->rlock);
    struct conn *c = q->idle;
    if (c) {
        q->idle = c->next;
        q->n_idle--;
    }
    pthread_mutex_unlock(&q->rlock);
    if (c) return c;
    c = malloc(sizeof *c);
    if (!c) {
        keel_fail(err, KEEL_ENOMEM, "out of memory opening a store reader");
        return NULL;
    }
    if (conn_open(q, c, false, err) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void reader_put(struct sq *q, struct conn *c)
{
    if (!c) return;
    if (c == &q->writer) {
        pthread_mutex_unlock(&q->wlock);
        return;
    }
    pthread_mutex_lock(&q->rlock);
    if (q->n_idle < q->opts.readers) {
        c->next = q->idle;
        q->idle = c;
        q->n_idle++;
        c = NULL;
    }
    pthread_mutex_unlock(&q->rlock);
    if (c) {
        conn_close(c);
        free(c);
    }
}

static struct conn *writer_get(struct sq *q, struct keel_err *err)
{
    if (q->opts.read_only) {
        keel_fail(err, KEEL_EINVAL, "store %s was opened read-only; this needs write access",
                  q->path);
        return NULL;
    }
    pthread_mutex_lock(&q->wlock);
    return &q->writer;
}

static void writer_put(struct sq *q)
{
    pthread_mutex_unlock(&q->wlock);
}

/* Rolls back after a failure inside BEGIN..COMMIT, keeping the first error. */
static void rollback(struct sq *q, struct conn *c)
{
    if (sqlite3_get_autocommit(c->db)) return;
    exec_stmt(q, c, ST_ROLLBACK, NULL);
}

/* ---- schema ------------------------------------------------------------ */

static int pragma_int(struct sq *q, struct conn *c, const char *sql, int *out,
                      struct keel_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return sq_fail(q, c->db, rc, sql, err);
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return sq_fail(q, c->db, rc, sql, err);
    return 0;
}

static int migrate(struct sq *q, struct keel_err *err)
{
    struct conn *c = &q->writer;
    int version, app, tables;
    int rc = pragma_int(q, c, "PRAGMA user_version", &version, err);
    if (!rc) rc = pragma_int(q, c, "PRAGMA application_id", &app, err);
    if (!rc) rc = pragma_int(q, c, "SELECT count(*) FROM sqlite_master", &tables, err);
    if (rc) return rc;
    if (app != KEEL_APPLICATION_ID && (app != 0 || tables != 0))
        return keel_fail(err, KEEL_ECORRUPT,
                         "%s is an SQLite database but not a Keel store; point the store at a new "
                         "file",
                         q->path);
    if (version > SCHEMA_VERSION)
        return keel_fail(err, KEEL_ECORRUPT,
                         "store %s has schema version %d, newer than this keel supports (%d); "
                         "upgrade keel",
                         q->path, version, SCHEMA_VERSION);
    if (version == SCHEMA_VERSION) return 0;
    if (q->opts.read_only)
        return keel_fail(err, KEEL_ESTATE,
                         "store %s has schema version %d and needs migrating to %d; open it once "
                         "with write access (e.g. start the daemon)",
                         q->path, version, SCHEMA_VERSION);
    for (int v = version; v < SCHEMA_VERSION; v++) {
        char *msg = NULL;
        char tail[128];
        snprintf(tail, sizeof tail, "PRAGMA user_version=%d; PRAGMA application_id=%d;", v + 1,
                 KEEL_APPLICATION_ID);
        rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = sqlite3_exec(c->db, migrations[v], NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = sqlite3_exec(c->db, tail, NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            keel_fail(err, sq_code(rc), "store %s: migrating the schema to version %d: %s",
                      q->path, v + 1, msg ? msg : sqlite3_errstr(rc));
            sqlite3_free(msg);
            rollback(q, c);
            return err ? err->code : KEEL_EIO;
        }
    }
    return 0;
}

/* ---- group commit ------------------------------------------------------ */

static const char zero_hash[STORE_HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* A run's last event as the committer knows it. */
struct tail {
    int64_t seq;
    char hash[STORE_HASH_HEX + 1];
};

static void tails_clear(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) free(m->slots[i].value);
    strmap_cleanup(m);
    strmap_init(m);
}

static void tails_put(struct strmap *m, const char *run_id, int64_t seq, const char *hash)
{
    struct tail *t = malloc(sizeof *t);
    if (!t) abort();
    t->seq = seq;
    memcpy(t->hash, hash, sizeof t->hash);
    free(strmap_put(m, run_id, strlen(run_id), t));
}

/* The committed tail of run_id, read inside the group's transaction (so it
 * also sees this group's earlier inserts, which callers look up first in
 * q->pending).  Costs a scan of the (small) event log. */
static int db_tail(struct sq *q, struct conn *c, const char *run_id, struct tail *out,
                   struct keel_err *err)
{
    sqlite3_stmt *st = stmt(q, c, ST_EV_TAIL, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    int rc = 0;
    if (src == SQLITE_ROW) {
        out->seq = sqlite3_column_int64(st, 0);
        const char *h = (const char *)sqlite3_column_text(st, 1);
        snprintf(out->hash, sizeof out->hash, "%s", h ? h : "");
    } else if (src == SQLITE_DONE) {
        out->seq = 0;
        memcpy(out->hash, zero_hash, sizeof zero_hash);
    } else {
        rc = sq_fail(q, c->db, src, "reading a run's last event", err);
    }
    done_stmt(st);
    return rc;
}

/* Finds the tail event ev must chain onto: an earlier event of the same
 * run in the same request, else this group's pending tails, else the cache
 * of committed tails, else the database (then cached). */
static int tail_for(struct sq *q, struct conn *c, const struct store_append *req, size_t i,
                    struct tail *out, struct keel_err *err)
{
    const struct store_event *ev = &req->events[i];
    for (size_t j = i; j-- > 0;) {
        if (strcmp(req->events[j].run_id, ev->run_id) == 0) {
            out->seq = req->events[j].seq;
            memcpy(out->hash, req->events[j].hash, sizeof out->hash);
            return 0;
        }
    }
    size_t len = strlen(ev->run_id);
    struct tail *t = strmap_get(&q->pending, ev->run_id, len);
    if (!t) t = strmap_get(&q->tails, ev->run_id, len);
    if (t) {
        *out = *t;
        return 0;
    }
    int rc = db_tail(q, c, ev->run_id, out, err);
    if (rc == 0) {
        if (q->tails.count >= TAIL_CACHE_MAX) tails_clear(&q->tails);
        tails_put(&q->tails, ev->run_id, out->seq, out->hash);
    }
    return rc;
}

/* Checks that every event of req continues its run: seq = tail + 1 and
 * prev_hash = tail's hash.  Read-only, so a refused request leaves no trace. */
static int check_events(struct sq *q, struct conn *c, const struct store_append *req,
                        struct keel_err *err)
{
    for (size_t i = 0; i < req->n_events; i++) {
        const struct store_event *ev = &req->events[i];
        struct tail t;
        int rc = tail_for(q, c, req, i, &t, err);
        if (rc) return rc;
        if (ev->seq <= t.seq)
            return keel_fail(err, KEEL_EEXIST,
                             "event %lld of run %s already exists (another writer appended "
                             "first); reopen the journal writer",
                             (long long)ev->seq, ev->run_id);
        if (ev->seq > t.seq + 1)
            return keel_fail(err, KEEL_ESTATE,
                             "event %lld of run %s would leave a gap: the run's last event is "
                             "%lld; events are appended in order",
                             (long long)ev->seq, ev->run_id, (long long)t.seq);
        if (strcmp(ev->prev_hash, t.hash) != 0)
            return keel_fail(err, KEEL_ESTATE,
                             ev->seq == 1 ? "event 1 of run %s must have prev_hash of 64 zeros"
                                          : "event of run %s: prev_hash does not match the hash "
                                            "of the previous event (another writer appended "
                                            "first?); reopen the journal writer",
                             ev->run_id);
    }
    return 0;
}

static int insert_event(struct sq *q, struct conn *c, const struct store_event *ev,
                        struct keel_err *err)
{
    sqlite3_stmt *st = stmt(q, c, ST_EV_INSERT, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, ev->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, ev->seq);
    sqlite3_bind_int64(st, 3, ev->time_ms);
    sqlite3_bind_text(st, 4, ev->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, ev->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, ev->payload, (int)ev->payload_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, ev->prev_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 8, ev->hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    done_stmt(st);
    if (rc == SQLITE_DONE) return 0;
    return sq_fail(q, c->db, rc, "inserting an event", err);
}

static int set_status(struct sq *q, struct conn *c, const char *id, enum store_run_status to,
                      const char *reason, int64_t now_ms, struct keel_err *err)
{
    sqlite3_stmt *st = stmt(q, c, ST_RUN_SET_STATUS, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, store_run_status_name(to), -1, SQLITE_STATIC);
    bind_text(st, 3, reason);
    sqlite3_bind_int64(st, 4, now_ms);
    int rc = sqlite3_step(st);
    done_stmt(st);
    if (rc != SQLITE_DONE) return sq_fail(q, c->db, rc, "updating a run's status", err);
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
        rc = set_status(q, c, req->status_run_id, req->status, req->status_reason,
                        keel_wall_ms(), err);
        if (rc) {
            *fatal = rc != KEEL_ENOENT;
            return rc;
        }
    }
    *fatal = true;
    if (req->snapshot_run_id) {
        sqlite3_stmt *st = stmt(q, c, ST_SNAP_PUT, err);
        if (!st) return err ? err->code : KEEL_EIO;
        sqlite3_bind_text(st, 1, req->snapshot_run_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, req->snapshot_seq);
        sqlite3_bind_text(st, 3, req->snapshot_state, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE) return sq_fail(q, c->db, src, "writing a snapshot", err);
    }
    for (size_t i = 0; i < req->n_events; i++) {
        rc = insert_event(q, c, &req->events[i], err);
        if (rc) return rc;
    }
    for (size_t i = 0; i < req->n_events; i++)
        tails_put(&q->pending, req->events[i].run_id, req->events[i].seq, req->events[i].hash);
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
    int grc = exec_stmt(q, c, ST_BEGIN, &gerr);
    /* Another connection (another process) that wrote since our last commit
     * may have appended events: then the cached tails are stale. */
    int version = 0;
    if (grc == 0) {
        sqlite3_stmt *st = stmt(q, c, ST_DATA_VERSION, &gerr);
        if (!st) grc = gerr.code;
        else if (sqlite3_step(st) == SQLITE_ROW) version = sqlite3_column_int(st, 0);
        if (st) done_stmt(st);
    }
    if (grc == 0 && version != q->data_version) tails_clear(&q->tails);
    for (size_t i = 0; grc == 0 && i < n; i++) {
        keel_err_clear(&out[i].err);
        bool fatal = false;
        out[i].rc = apply_request(q, c, reqs[i], &fatal, &out[i].err);
        /* Refusals (a seq taken, a gap, a wrong link, an unknown run) fail the
         * request alone.  Anything else — an I/O error, or SQLite having
         * rolled the transaction back on its own — fails the whole group. */
        bool refusal = out[i].rc == KEEL_EEXIST || out[i].rc == KEEL_ESTATE ||
                       out[i].rc == KEEL_ENOENT;
        if (out[i].rc && (fatal || !refusal || sqlite3_get_autocommit(c->db))) {
            grc = out[i].rc;
            gerr = out[i].err;
        } else if (out[i].rc == 0) {
            *inserted += reqs[i]->n_events;
        }
    }
    int64_t t_commit = keel_mono_ns();
    if (grc == 0) grc = exec_stmt(q, c, ST_COMMIT, &gerr);
    *sync_ns = (uint64_t)(keel_mono_ns() - t_commit);
    if (grc == 0) {
        q->data_version = version;
        /* Committed: the pending tails become the known tails. */
        if (q->tails.count + q->pending.count >= TAIL_CACHE_MAX) tails_clear(&q->tails);
        for (size_t i = 0; i < q->pending.cap; i++) {
            struct strmap_entry *e = &q->pending.slots[i];
            if (e->key) free(strmap_put(&q->tails, e->key, e->key_len, e->value));
        }
        strmap_cleanup(&q->pending);
        strmap_init(&q->pending);
    } else {
        rollback(q, c);
        tails_clear(&q->pending);
        tails_clear(&q->tails);
        *inserted = 0;
        for (size_t i = 0; i < n; i++) {
            out[i].rc = grc;
            out[i].err = gerr;
        }
    }
    pthread_mutex_unlock(&q->wlock);
}

/* Indexes the log: adds the (run_id, seq) of every event after
 * events_indexed.upto to events_index, sorted so that each run's entries go
 * in together, and moves upto to the last event.  The rows themselves stay
 * where they are.  One transaction, so a reader finds every event exactly
 * once (through the index or in the log).  It does not fsync on its own:
 * the next durable commit's fsync covers it (WAL frames are synced in
 * order), and losing it to a power cut loses nothing — the events are
 * still in the log. */
static void index_log(struct sq *q)
{
    struct conn *c = &q->writer;
    struct keel_err err;
    pthread_mutex_lock(&q->wlock);
    bool full = q->opts.durability == STORE_DURABILITY_FULL;
    if (full) sqlite3_exec(c->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    int rc = exec_stmt(q, c, ST_BEGIN, &err);
    if (!rc) rc = exec_stmt(q, c, ST_LOG_INDEX, &err);
    if (!rc) rc = exec_stmt(q, c, ST_LOG_MARK, &err);
    if (!rc) rc = exec_stmt(q, c, ST_COMMIT, &err);
    if (rc) {
        rollback(q, c);
        keel_log(KEEL_LOG_WARN, "store %s: indexing recent events failed (they stay in the "
                 "log, reads still see them): %s", q->path, err.msg);
        q->log_index_at = q->log_rows + LOG_INDEX_ROWS; /* back off */
    } else {
        q->log_rows = 0;
        q->log_index_at = LOG_INDEX_ROWS;
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

static void *committer_main(void *arg)
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
            index_log(q);
            pthread_mutex_lock(&q->qlock);
            q->busy = false;
            continue;
        }
        /* Take everything queued, up to the group's event budget (at least
         * one request, whatever its size). */
        size_t n = 0, events = 0;
        while (q->head && (n == 0 || events + q->head->n_events <= q->opts.group_max_events)) {
            struct store_append *r = q->head;
            q->head = r->impl_next;
            if (!q->head) q->tail = NULL;
            r->impl_next = NULL;
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
        pthread_mutex_unlock(&q->qlock);

        /* Only now, after the commit, is any request complete.  Completing
         * on this thread (rather than handing the group to another) measured
         * faster: the waiters queue their next appends while the group is
         * being completed, so the next group is larger and the fsync is
         * shared by more of them. */
        for (size_t i = 0; i < n; i++) reqs[i]->done(reqs[i], out[i].rc, out[i].rc ? &out[i].err : NULL);

        pthread_mutex_lock(&q->qlock);
        bool idle = q->head == NULL;
        /* Index the log when it is long: right away if nobody is waiting,
         * else once it is twice as long (so a busy store still indexes). */
        if (q->log_rows >= q->log_index_at && (idle || q->log_rows >= 2 * q->log_index_at)) {
            pthread_mutex_unlock(&q->qlock);
            index_log(q);
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
static int sq_append(struct store *s, struct store_append *req, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    if (q->opts.read_only)
        return keel_fail(err, KEEL_EINVAL, "store %s was opened read-only; appends need write "
                         "access", q->path);
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

static int sq_append_async(struct store *s, struct store_append *req, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    if (q->opts.read_only)
        return keel_fail(err, KEEL_EINVAL, "store %s was opened read-only; appends need write "
                         "access", q->path);
    req->impl_next = NULL;
    pthread_mutex_lock(&q->qlock);
    if (q->stopping) {
        pthread_mutex_unlock(&q->qlock);
        return keel_fail(err, KEEL_ESTATE, "store %s is closing; no more appends", q->path);
    }
    if (q->tail) q->tail->impl_next = req;
    else q->head = req;
    q->tail = req;
    pthread_cond_signal(&q->qcond);
    pthread_mutex_unlock(&q->qlock);
    return 0;
}

/* ---- checkpoints and WAL preallocation -------------------------------- */

/* Called by SQLite on the writer after each commit (wlock held).  Asks for
 * a checkpoint each time the WAL grew by CHECKPOINT_FRAMES, not after every
 * commit past the mark: the WAL only restarts at a later commit, and until
 * then every commit would start another checkpoint (two more fsyncs each,
 * competing with the commits' own). */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
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
        while (!q->ck_wanted && !q->ck_stopping) pthread_cond_wait(&q->ckcond, &q->cklock);
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
            int rc = sqlite3_wal_checkpoint_v2(q->ckconn.db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                               &log, &done);
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
static void wal_preallocate(struct sq *q)
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

static int start_checkpointer(struct sq *q, struct keel_err *err)
{
    int rc = conn_open(q, &q->ckconn, false, err);
    if (rc) return rc;
    if (pthread_create(&q->checkpointer, NULL, checkpointer_main, q) != 0)
        return keel_fail(err, KEEL_EIO, "cannot start the store's checkpoint thread");
    q->ck_running = true;
    return 0;
}

/* ---- open / close ------------------------------------------------------ */

static const struct store_ops sqlite_ops;

static void sq_free(struct sq *q)
{
    if (q->committer_running) {
        pthread_mutex_lock(&q->qlock);
        q->stopping = true;
        pthread_cond_broadcast(&q->qcond);
        pthread_mutex_unlock(&q->qlock);
        pthread_join(q->committer, NULL);
    }
    tails_clear(&q->tails);
    tails_clear(&q->pending);
    strmap_cleanup(&q->tails);
    strmap_cleanup(&q->pending);
    if (q->ck_running) {
        pthread_mutex_lock(&q->cklock);
        q->ck_stopping = true;
        pthread_cond_signal(&q->ckcond);
        pthread_mutex_unlock(&q->cklock);
        pthread_join(q->checkpointer, NULL);
    }
    conn_close(&q->ckconn);
    while (q->idle) {
        struct conn *c = q->idle;
        q->idle = c->next;
        conn_close(c);
        free(c);
    }
    conn_close(&q->writer);
    pthread_mutex_destroy(&q->wlock);
    pthread_mutex_destroy(&q->rlock);
    pthread_mutex_destroy(&q->qlock);
    pthread_cond_destroy(&q->qcond);
    pthread_mutex_destroy(&q->cklock);
    pthread_cond_destroy(&q->ckcond);
    free(q);
}

static void sq_close(struct store *s)
{
    sq_free(sq_of(s));
}

int store_sqlite_open(const char *location, const struct store_opts *opts, struct store **out,
                      struct keel_err *err)
{
    if (strlen(location) >= sizeof(((struct sq *)0)->path))
        return keel_fail(err, KEEL_ELIMIT, "store path is too long");
    struct sq *q = calloc(1, sizeof *q);
    if (!q) return keel_fail(err, KEEL_ENOMEM, "out of memory opening the store");
    q->base.ops = &sqlite_ops;
    snprintf(q->base.backend, sizeof q->base.backend, "sqlite");
    snprintf(q->base.location, sizeof q->base.location, "sqlite:%s", location);
    snprintf(q->path, sizeof q->path, "%s", location);
    q->opts = *opts;
    if (q->opts.busy_timeout_ms <= 0) q->opts.busy_timeout_ms = 5000;
    if (q->opts.group_max_events == 0 || q->opts.group_max_events > STORE_APPEND_MAX)
        q->opts.group_max_events = STORE_APPEND_MAX;
    if (q->opts.readers == 0) q->opts.readers = 4;
    q->memory = strcmp(location, ":memory:") == 0;
    /* Recursive: on an in-memory store reads hold wlock too, and a scan
     * callback may read again on the same thread. */
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&q->wlock, &attr);
    pthread_mutexattr_destroy(&attr);
    pthread_mutex_init(&q->rlock, NULL);
    pthread_mutex_init(&q->qlock, NULL);
    pthread_cond_init(&q->qcond, NULL);
    pthread_mutex_init(&q->cklock, NULL);
    pthread_cond_init(&q->ckcond, NULL);
    strmap_init(&q->tails);
    strmap_init(&q->pending);
    q->data_version = -1;
    q->ck_next_at = CHECKPOINT_FRAMES;
    q->log_index_at = LOG_INDEX_ROWS;

    int rc = conn_open(q, &q->writer, true, err);
    if (rc) {
        sq_free(q);
        return rc;
    }
    if (!q->opts.read_only && !q->memory) {
        /* WAL is a property of the file; it sticks once set. */
        char *msg = NULL;
        int src = sqlite3_exec(q->writer.db, "PRAGMA journal_mode=WAL", NULL, NULL, &msg);
        if (src != SQLITE_OK) {
            rc = keel_fail(err, sq_code(src),
                           "store %s: cannot switch to WAL mode: %s; is it on a local disk?",
                           q->path, msg ? msg : sqlite3_errstr(src));
            sqlite3_free(msg);
            sq_free(q);
            return rc;
        }
    }
    int sync_level = 0;
    rc = pragma_int(q, &q->writer, "PRAGMA synchronous", &sync_level, err);
    if (!rc) q->stats.durable_commits = sync_level >= 2; /* 2 = FULL, 3 = EXTRA */
    if (!rc) rc = migrate(q, err);
    if (rc) {
        sq_free(q);
        return rc;
    }
    if (!q->opts.read_only && !q->memory) {
        /* secure_delete: Debian's SQLite is built to overwrite every freed
         * page with zeros, which writes each freed page to the WAL once
         * more (schema 2's compaction, which emptied a table of moved
         * events, wrote 929-1012 frames per 4096 events with it and 614-697
         * with FAST).  FAST still clears deleted content whenever that costs
         * no extra I/O. */
        char pragma[160];
        snprintf(pragma, sizeof pragma,
                 "PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=%d; "
                 "PRAGMA secure_delete=FAST;",
                 WAL_BYTES);
        int src = sqlite3_exec(q->writer.db, pragma, NULL, NULL, NULL);
        if (src != SQLITE_OK) {
            rc = sq_fail(q, q->writer.db, src, "configuring checkpoints", err);
            sq_free(q);
            return rc;
        }
        sqlite3_wal_hook(q->writer.db, wal_hook, q);
        wal_preallocate(q);
        rc = start_checkpointer(q, err);
        if (rc) {
            sq_free(q);
            return rc;
        }
    }
    if (!q->opts.read_only) {
        int rows = 0;
        rc = pragma_int(q, &q->writer, stmt_sql[ST_LOG_COUNT], &rows, err);
        if (rc) {
            sq_free(q);
            return rc;
        }
        q->log_rows = (size_t)rows;
        if (pthread_create(&q->committer, NULL, committer_main, q) != 0) {
            sq_free(q);
            return keel_fail(err, KEEL_EIO, "cannot start the store's committer thread");
        }
        q->committer_running = true;
    }
    *out = &q->base;
    return 0;
}

static void sq_stats(struct store *s, struct store_stats *out)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->qlock);
    *out = q->stats;
    pthread_mutex_unlock(&q->qlock);
}

/* ---- runs -------------------------------------------------------------- */

static int read_run(struct sq *q, sqlite3_stmt *st, struct arena *a, struct store_run *r,
                    struct keel_err *err)
{
    memset(r, 0, sizeof *r);
    r->id = col_text(a, st, 0);
    r->workflow = col_text(a, st, 1);
    r->workflow_hash = col_text(a, st, 2);
    const char *status = (const char *)sqlite3_column_text(st, 3);
    if (store_run_status_parse(status, &r->status, err) != 0)
        return keel_fail(err, KEEL_ECORRUPT, "store %s: run %s has an unknown status '%s'",
                         q->path, r->id, status ? status : "(null)");
    r->reason = col_text(a, st, 4);
    r->input = col_text(a, st, 5);
    r->identity = col_text(a, st, 6);
    r->parent_id = col_text(a, st, 7);
    r->parent_seq = sqlite3_column_int64(st, 8);
    r->created_ms = sqlite3_column_int64(st, 9);
    r->updated_ms = sqlite3_column_int64(st, 10);
    r->lease_owner = col_text(a, st, 11);
    r->lease_expires_ms = sqlite3_column_int64(st, 12);
    return 0;
}

static int sq_run_create(struct store *s, const struct store_run *run, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    int64_t created = run->created_ms ? run->created_ms : keel_wall_ms();
    int64_t updated = run->updated_ms ? run->updated_ms : created;
    int rc = 0;
    sqlite3_stmt *st = stmt(q, c, ST_RUN_INSERT, err);
    if (!st) rc = err ? err->code : KEEL_EIO;
    if (st) {
        sqlite3_bind_text(st, 1, run->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, run->workflow, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, run->workflow_hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, store_run_status_name(run->status), -1, SQLITE_STATIC);
        bind_text(st, 5, run->reason);
        sqlite3_bind_text(st, 6, run->input, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, run->identity, -1, SQLITE_STATIC);
        bind_text(st, 8, run->parent_id);
        sqlite3_bind_int64(st, 9, run->parent_seq);
        sqlite3_bind_int64(st, 10, created);
        sqlite3_bind_int64(st, 11, updated);
        int src = sqlite3_step(st);
        done_stmt(st);
        if ((src & 0xff) == SQLITE_CONSTRAINT)
            rc = keel_fail(err, KEEL_EEXIST, "a run with id '%s' already exists; use a new id",
                           run->id);
        else if (src != SQLITE_DONE) rc = sq_fail(q, c->db, src, "creating a run", err);
    }
    writer_put(q);
    return rc;
}

static int sq_run_get(struct store *s, const char *id, struct arena *a, struct store_run *out,
                      struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    int rc;
    sqlite3_stmt *st = stmt(q, c, ST_RUN_GET, err);
    if (!st) {
        rc = err ? err->code : KEEL_EIO;
    } else {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) rc = read_run(q, st, a, out, err);
        else if (src == SQLITE_DONE)
            rc = keel_fail(err, KEEL_ENOENT, "no run '%s' in the store; check the run id", id);
        else rc = sq_fail(q, c->db, src, "reading a run", err);
        done_stmt(st);
    }
    reader_put(q, c);
    return rc;
}

static int sq_run_set_status(struct store *s, const char *id, unsigned from_mask,
                             enum store_run_status to, const char *reason, int64_t now_ms,
                             struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    int rc = 0;
    if (from_mask != STORE_RUN_MASK_ANY) {
        rc = exec_stmt(q, c, ST_BEGIN, err);
        sqlite3_stmt *st = rc ? NULL : stmt(q, c, ST_RUN_STATUS, err);
        if (!rc && !st) rc = err ? err->code : KEEL_EIO;
        if (st) {
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
            int src = sqlite3_step(st);
            if (src == SQLITE_ROW) {
                const char *cur = (const char *)sqlite3_column_text(st, 0);
                enum store_run_status cs;
                if (store_run_status_parse(cur, &cs, NULL) != 0)
                    rc = keel_fail(err, KEEL_ECORRUPT, "run %s has an unknown status '%s'", id,
                                   cur ? cur : "(null)");
                else if (!(from_mask & STORE_RUN_MASK(cs)))
                    rc = keel_fail(err, KEEL_ESTATE, "run %s is %s; it cannot become %s from there",
                                   id, cur, store_run_status_name(to));
            } else if (src == SQLITE_DONE) {
                rc = keel_fail(err, KEEL_ENOENT, "no run '%s' in the store; check the run id", id);
            } else {
                rc = sq_fail(q, c->db, src, "reading a run's status", err);
            }
            done_stmt(st);
        }
    }
    if (!rc) rc = set_status(q, c, id, to, reason, now_ms, err);
    if (from_mask != STORE_RUN_MASK_ANY) {
        if (!rc) rc = exec_stmt(q, c, ST_COMMIT, err);
        if (rc) rollback(q, c);
    }
    writer_put(q);
    return rc;
}

/* Makes room for one more element in an arena array (*items, *cap), doubling
 * it; the old copy stays in the arena until it is freed.  Lists are capped at
 * STORE_LIST_MAX by the caller, so this stays small. */
static void *grow(struct arena *a, void *items, size_t count, size_t *cap, size_t size)
{
    if (count < *cap) return items;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *n = arena_alloc(a, ncap * size);
    if (count) memcpy(n, items, count * size);
    *cap = ncap;
    return n;
}

static void append_status_in(struct buf *sql, unsigned mask, unsigned count,
                             const char *(*name)(int))
{
    if (!mask) return;
    buf_puts(sql, " AND status IN (");
    bool first = true;
    for (unsigned i = 0; i < count; i++) {
        if (!(mask & (1u << i))) continue;
        buf_printf(sql, "%s'%s'", first ? "" : ", ", name((int)i));
        first = false;
    }
    if (first) buf_puts(sql, "NULL"); /* a mask with no valid bit matches nothing */
    buf_puts(sql, ")");
}

static const char *run_status_name_int(int i)
{
    return store_run_status_name((enum store_run_status)i);
}

static const char *approval_status_name_int(int i)
{
    return store_approval_status_name((enum store_approval_status)i);
}

/* Prepares sql (built per call: list filters vary) on c. */
static int prepare_dynamic(struct sq *q, struct conn *c, const char *sql, sqlite3_stmt **st,
                           struct keel_err *err)
{
    int rc = sqlite3_prepare_v2(c->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) return sq_fail(q, c->db, rc, "preparing a list query", err);
    return 0;
}

static int read_approval(struct sq *q, sqlite3_stmt *st, struct arena *a,
                         struct store_approval *ap, struct keel_err *err);

/* Reads the rows of one list row type into an arena array. */
typedef int (*row_reader)(struct sq *q, sqlite3_stmt *st, struct arena *a, void *row,
                          struct keel_err *err);

/* Runs a list query built per call: sql's ?1..?nbinds are bound to binds
 * (borrowed text), each row is read with read into a growing array of
 * elements of size bytes in a.  Frees sql.  On success *out and *n hold the
 * rows (NULL and 0 when none); on failure they are untouched. */
static int list_rows(struct sq *q, struct buf *sql, const char *const *binds, int nbinds,
                     size_t size, row_reader read, const char *what, struct arena *a,
                     void **out, size_t *n, struct keel_err *err)
{
    struct conn *c = reader_get(q, err);
    if (!c) {
        buf_cleanup(sql);
        return err ? err->code : KEEL_EIO;
    }
    sqlite3_stmt *st = NULL;
    int rc = prepare_dynamic(q, c, sql->data, &st, err);
    buf_cleanup(sql);
    if (!rc) {
        for (int i = 0; i < nbinds; i++)
            sqlite3_bind_text(st, i + 1, binds[i], -1, SQLITE_STATIC);
        char *rows = NULL;
        size_t count = 0, cap = 0;
        int src = SQLITE_DONE;
        while (!rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
            rows = grow(a, rows, count, &cap, size);
            rc = read(q, st, a, rows + size * count++, err);
        }
        if (!rc && src != SQLITE_DONE) rc = sq_fail(q, c->db, src, what, err);
        if (!rc) {
            *out = rows;
            *n = count;
        }
    }
    sqlite3_finalize(st);
    reader_put(q, c);
    return rc;
}

static int read_run_row(struct sq *q, sqlite3_stmt *st, struct arena *a, void *row,
                        struct keel_err *err)
{
    return read_run(q, st, a, row, err);
}

static int read_approval_row(struct sq *q, sqlite3_stmt *st, struct arena *a, void *row,
                             struct keel_err *err)
{
    return read_approval(q, st, a, row, err);
}

static int sq_run_list(struct store *s, const struct store_run_filter *f, struct arena *a,
                       struct store_run **out, size_t *n, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct buf sql;
    buf_init(&sql);
    buf_puts(&sql, "SELECT " RUN_COLS " FROM runs WHERE 1");
    append_status_in(&sql, f->status_mask, STORE_RUN_STATUS_COUNT, run_status_name_int);
    const char *binds[3];
    int nb = 0;
    if (f->workflow) buf_printf(&sql, " AND workflow = ?%d", nb + 1), binds[nb++] = f->workflow;
    if (f->parent_id) buf_printf(&sql, " AND parent_id = ?%d", nb + 1), binds[nb++] = f->parent_id;
    if (f->after_id)
        buf_printf(&sql, " AND id %s ?%d", f->newest_first ? "<" : ">", nb + 1),
            binds[nb++] = f->after_id;
    buf_printf(&sql, " ORDER BY id %s LIMIT %zu", f->newest_first ? "DESC" : "ASC", f->limit);
    return list_rows(q, &sql, binds, nb, sizeof **out, read_run_row, "listing runs", a,
                     (void **)out, n, err);
}

static int lease_busy(struct sq *q, struct conn *c, const char *id, struct keel_err *err)
{
    sqlite3_stmt *st = stmt(q, c, ST_RUN_LEASE, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    int rc;
    if (src == SQLITE_ROW) {
        const char *owner = (const char *)sqlite3_column_text(st, 0);
        rc = keel_fail(err, KEEL_EBUSY, "run %s is leased by '%s' until %lld ms; wait for the "
                       "lease to expire",
                       id, owner ? owner : "?", (long long)sqlite3_column_int64(st, 1));
    } else if (src == SQLITE_DONE) {
        rc = keel_fail(err, KEEL_ENOENT, "no run '%s' in the store; check the run id", id);
    } else {
        rc = sq_fail(q, c->db, src, "reading a lease", err);
    }
    done_stmt(st);
    return rc;
}

static int claim(struct sq *q, struct conn *c, const char *id, const char *owner, int64_t ttl_ms,
                 int64_t now_ms, bool *won, struct keel_err *err)
{
    sqlite3_stmt *st = stmt(q, c, ST_RUN_CLAIM, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms + ttl_ms);
    sqlite3_bind_int64(st, 4, now_ms);
    int src = sqlite3_step(st);
    done_stmt(st);
    if (src != SQLITE_DONE) return sq_fail(q, c->db, src, "claiming a run", err);
    *won = sqlite3_changes(c->db) == 1;
    return 0;
}

static int sq_run_claim(struct store *s, const char *id, const char *owner, int64_t ttl_ms,
                        int64_t now_ms, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    bool won = false;
    int rc = claim(q, c, id, owner, ttl_ms, now_ms, &won, err);
    if (!rc && !won) rc = lease_busy(q, c, id, err);
    writer_put(q);
    return rc;
}

static int sq_run_claim_next(struct store *s, unsigned status_mask, const char *owner,
                             int64_t ttl_ms, int64_t now_ms, struct arena *a,
                             struct store_run *out, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct buf sql;
    buf_init(&sql);
    buf_puts(&sql, "SELECT id FROM runs WHERE (lease_owner IS NULL OR lease_expires_ms <= ?1)");
    append_status_in(&sql, status_mask, STORE_RUN_STATUS_COUNT, run_status_name_int);
    buf_puts(&sql, " ORDER BY id LIMIT 1");
    struct conn *c = writer_get(q, err);
    if (!c) {
        buf_cleanup(&sql);
        return err ? err->code : KEEL_EINVAL;
    }
    int rc = exec_stmt(q, c, ST_BEGIN, err);
    sqlite3_stmt *st = NULL;
    if (!rc) rc = prepare_dynamic(q, c, sql.data, &st, err);
    buf_cleanup(&sql);
    char *id = NULL;
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            id = arena_strdup(a, (const char *)sqlite3_column_text(st, 0));
        else if (src == SQLITE_DONE)
            rc = keel_fail(err, KEEL_ENOENT, "no unclaimed run to claim");
        else rc = sq_fail(q, c->db, src, "finding a run to claim", err);
    }
    sqlite3_finalize(st);
    bool won = false;
    if (!rc) rc = claim(q, c, id, owner, ttl_ms, now_ms, &won, err);
    if (!rc && !won) rc = keel_fail(err, KEEL_EINTERNAL, "claim of run %s lost in a transaction", id);
    if (!rc) {
        sqlite3_stmt *g = stmt(q, c, ST_RUN_GET, err);
        if (!g) rc = err ? err->code : KEEL_EIO;
        if (g) {
            sqlite3_bind_text(g, 1, id, -1, SQLITE_STATIC);
            int src = sqlite3_step(g);
            if (src == SQLITE_ROW) rc = read_run(q, g, a, out, err);
            else rc = sq_fail(q, c->db, src, "reading a claimed run", err);
            done_stmt(g);
        }
    }
    if (!rc) rc = exec_stmt(q, c, ST_COMMIT, err);
    if (rc) rollback(q, c);
    writer_put(q);
    return rc;
}

static int sq_run_release(struct store *s, const char *id, const char *owner,
                          struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = stmt(q, c, ST_RUN_RELEASE, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE) rc = sq_fail(q, c->db, src, "releasing a lease", err);
    }
    writer_put(q);
    return rc;
}

/* ---- events and snapshots ---------------------------------------------- */

static void copy_hash(char out[STORE_HASH_HEX + 1], sqlite3_stmt *st, int i)
{
    const char *h = (const char *)sqlite3_column_text(st, i);
    snprintf(out, STORE_HASH_HEX + 1, "%s", h ? h : "");
}

static int sq_events_tail(struct store *s, const char *run_id, int64_t *seq, char *hash,
                          struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    sqlite3_stmt *st = stmt(q, c, ST_EV_TAIL, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            *seq = sqlite3_column_int64(st, 0);
            copy_hash(hash, st, 1);
        } else if (src == SQLITE_DONE) {
            *seq = 0;
            memcpy(hash, zero_hash, sizeof zero_hash);
        } else {
            rc = sq_fail(q, c->db, src, "reading a run's last event", err);
        }
        done_stmt(st);
    }
    reader_put(q, c);
    return rc;
}

static int sq_events_scan(struct store *s, const char *run_id, int64_t from_seq, int64_t limit,
                          store_event_fn fn, void *ctx, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    /* A private statement: fn may read from the store again on this thread
     * (an in-memory store has one connection), which would reset a cached
     * statement under our feet.  fn must not write: on an in-memory store
     * the writer waits for this scan. */
    sqlite3_stmt *st = NULL;
    int rc = 0;
    int src = sqlite3_prepare_v2(c->db, stmt_sql[ST_EV_SCAN], -1, &st, NULL);
    if (src != SQLITE_OK) rc = sq_fail(q, c->db, src, "preparing an event scan", err);
    if (!rc) {
        sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, from_seq);
        sqlite3_bind_int64(st, 3, limit ? limit : -1);
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            struct store_event ev;
            ev.run_id = (const char *)sqlite3_column_text(st, 0);
            ev.seq = sqlite3_column_int64(st, 1);
            ev.time_ms = sqlite3_column_int64(st, 2);
            ev.kind = (const char *)sqlite3_column_text(st, 3);
            ev.actor = (const char *)sqlite3_column_text(st, 4);
            ev.payload = (const char *)sqlite3_column_text(st, 5);
            ev.payload_len = (size_t)sqlite3_column_bytes(st, 5);
            copy_hash(ev.prev_hash, st, 6);
            copy_hash(ev.hash, st, 7);
            if (!ev.run_id) ev.run_id = "";
            if (!ev.kind) ev.kind = "";
            if (!ev.actor) ev.actor = "";
            if (!ev.payload) ev.payload = "";
            rc = fn(ctx, &ev);
            if (rc) break;
        }
        if (!rc && src != SQLITE_DONE) rc = sq_fail(q, c->db, src, "reading events", err);
    }
    sqlite3_finalize(st);
    reader_put(q, c);
    return rc;
}

static int sq_snapshot_get(struct store *s, const char *run_id, int64_t max_seq, struct arena *a,
                           int64_t *seq, const char **state, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    sqlite3_stmt *st = stmt(q, c, ST_SNAP_GET, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, max_seq);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            *seq = sqlite3_column_int64(st, 0);
            *state = col_text(a, st, 1);
        } else if (src == SQLITE_DONE) {
            rc = keel_fail(err, KEEL_ENOENT, "run %s has no snapshot", run_id);
        } else {
            rc = sq_fail(q, c->db, src, "reading a snapshot", err);
        }
        done_stmt(st);
    }
    reader_put(q, c);
    return rc;
}

/* ---- workflows --------------------------------------------------------- */

static int wf_read(struct sq *q, struct conn *c, const char *name, const char *hash,
                   struct arena *a, const char **body, const char **hash_out,
                   struct keel_err *err)
{
    sqlite3_stmt *st = stmt(q, c, hash ? ST_WF_GET : ST_WF_LATEST, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (hash) sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    int rc = 0;
    if (src == SQLITE_ROW) {
        *body = col_text(a, st, 0);
        if (hash_out) *hash_out = col_text(a, st, 1);
    } else if (src == SQLITE_DONE) {
        rc = hash ? keel_fail(err, KEEL_ENOENT, "workflow %s has no version %.12s... in the store",
                              name, hash)
                  : keel_fail(err, KEEL_ENOENT, "no workflow '%s' in the store", name);
    } else {
        rc = sq_fail(q, c->db, src, "reading a workflow", err);
    }
    done_stmt(st);
    return rc;
}

static int sq_workflow_put(struct store *s, const char *name, const char *hash, const char *body,
                           int64_t now_ms, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = stmt(q, c, ST_WF_INSERT, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, body, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now_ms);
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE) rc = sq_fail(q, c->db, src, "storing a workflow", err);
    }
    if (!rc && sqlite3_changes(c->db) == 0) {
        /* The version exists: fine if it is the same content. */
        struct arena a;
        arena_init(&a);
        const char *old = NULL;
        rc = wf_read(q, c, name, hash, &a, &old, NULL, err);
        if (!rc && strcmp(old, body) != 0)
            rc = keel_fail(err, KEEL_ECORRUPT,
                           "workflow %s version %.12s... is already stored with different "
                           "content; a version hash must name one content",
                           name, hash);
        arena_cleanup(&a);
    }
    writer_put(q);
    return rc;
}

static int sq_workflow_get(struct store *s, const char *name, const char *hash, struct arena *a,
                           const char **body, const char **hash_out, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    int rc = wf_read(q, c, name, hash, a, body, hash_out, err);
    reader_put(q, c);
    return rc;
}

/* ---- approvals --------------------------------------------------------- */

static int read_approval(struct sq *q, sqlite3_stmt *st, struct arena *a,
                         struct store_approval *ap, struct keel_err *err)
{
    memset(ap, 0, sizeof *ap);
    ap->id = col_text(a, st, 0);
    ap->run_id = col_text(a, st, 1);
    ap->step_id = col_text(a, st, 2);
    ap->group = col_text(a, st, 3);
    ap->request = col_text(a, st, 4);
    const char *status = (const char *)sqlite3_column_text(st, 5);
    if (store_approval_status_parse(status, &ap->status, NULL) != 0)
        return keel_fail(err, KEEL_ECORRUPT, "store %s: approval %s has an unknown status '%s'",
                         q->path, ap->id, status ? status : "(null)");
    ap->decided_by = col_text(a, st, 6);
    ap->comment = col_text(a, st, 7);
    ap->created_ms = sqlite3_column_int64(st, 8);
    ap->expires_ms = sqlite3_column_int64(st, 9);
    ap->decided_ms = sqlite3_column_int64(st, 10);
    return 0;
}

static int sq_approval_create(struct store *s, const struct store_approval *ap,
                              struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = stmt(q, c, ST_AP_INSERT, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, ap->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, ap->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, ap->step_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, ap->group, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, ap->request, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, ap->created_ms ? ap->created_ms : keel_wall_ms());
        sqlite3_bind_int64(st, 7, ap->expires_ms);
        int src = sqlite3_step(st);
        done_stmt(st);
        if ((src & 0xff) == SQLITE_CONSTRAINT)
            rc = keel_fail(err, KEEL_EEXIST, "an approval with id '%s' already exists", ap->id);
        else if (src != SQLITE_DONE) rc = sq_fail(q, c->db, src, "creating an approval", err);
    }
    writer_put(q);
    return rc;
}

static int approval_read_one(struct sq *q, struct conn *c, const char *id, struct arena *a,
                             struct store_approval *out, struct keel_err *err)
{
    sqlite3_stmt *st = stmt(q, c, ST_AP_GET, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    int rc;
    if (src == SQLITE_ROW) rc = read_approval(q, st, a, out, err);
    else if (src == SQLITE_DONE)
        rc = keel_fail(err, KEEL_ENOENT, "no approval '%s'; list pending ones with "
                       "`keel approvals`", id);
    else rc = sq_fail(q, c->db, src, "reading an approval", err);
    done_stmt(st);
    return rc;
}

static int sq_approval_get(struct store *s, const char *id, struct arena *a,
                           struct store_approval *out, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    int rc = approval_read_one(q, c, id, a, out, err);
    reader_put(q, c);
    return rc;
}

static int sq_approval_list(struct store *s, const struct store_approval_filter *f,
                            struct arena *a, struct store_approval **out, size_t *n,
                            struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct buf sql;
    buf_init(&sql);
    buf_puts(&sql, "SELECT " APPROVAL_COLS " FROM approvals WHERE 1");
    append_status_in(&sql, f->status_mask, STORE_APPROVAL_STATUS_COUNT, approval_status_name_int);
    const char *binds[3];
    int nb = 0;
    if (f->run_id) buf_printf(&sql, " AND run_id = ?%d", nb + 1), binds[nb++] = f->run_id;
    if (f->group) buf_printf(&sql, " AND grp = ?%d", nb + 1), binds[nb++] = f->group;
    if (f->after_id) buf_printf(&sql, " AND id > ?%d", nb + 1), binds[nb++] = f->after_id;
    buf_printf(&sql, " ORDER BY id LIMIT %zu", f->limit);
    return list_rows(q, &sql, binds, nb, sizeof **out, read_approval_row, "listing approvals", a,
                     (void **)out, n, err);
}

static int sq_approval_decide(struct store *s, const char *id, enum store_approval_status to,
                              const char *decided_by, const char *comment, int64_t now_ms,
                              struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = stmt(q, c, ST_AP_DECIDE, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, store_approval_status_name(to), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, decided_by, -1, SQLITE_STATIC);
        bind_text(st, 4, comment);
        sqlite3_bind_int64(st, 5, now_ms);
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE) rc = sq_fail(q, c->db, src, "deciding an approval", err);
    }
    if (!rc && sqlite3_changes(c->db) == 0) {
        /* Not pending: say why (unknown, or decided earlier and by whom). */
        struct arena a;
        arena_init(&a);
        struct store_approval ap;
        rc = approval_read_one(q, c, id, &a, &ap, err);
        if (!rc)
            rc = keel_fail(err, KEEL_ESTATE, "approval %s was already %s by %s; a decision is "
                           "final",
                           id, store_approval_status_name(ap.status),
                           ap.decided_by ? ap.decided_by : "(unknown)");
        arena_cleanup(&a);
    }
    writer_put(q);
    return rc;
}

/* ---- timers ------------------------------------------------------------ */

static int sq_timer_set(struct store *s, const struct store_timer *t, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = stmt(q, c, ST_TM_SET, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, t->run_id, -1, SQLITE_STATIC);
        bind_text(st, 3, t->step_id);
        sqlite3_bind_int64(st, 4, t->due_ms);
        bind_text(st, 5, t->payload);
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE) rc = sq_fail(q, c->db, src, "setting a timer", err);
    }
    writer_put(q);
    return rc;
}

static int sq_timer_claim_due(struct store *s, int64_t now_ms, const char *owner,
                              int64_t claim_ms, size_t max, struct arena *a,
                              struct store_timer **out, size_t *n, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    struct store_timer *ts = NULL;
    size_t count = 0, cap = 0;
    int rc = exec_stmt(q, c, ST_BEGIN, err);
    sqlite3_stmt *st = rc ? NULL : stmt(q, c, ST_TM_DUE, err);
    if (!rc && !st) rc = err ? err->code : KEEL_EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
        int src;
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            ts = grow(a, ts, count, &cap, sizeof *ts);
            struct store_timer *t = &ts[count++];
            t->id = col_text(a, st, 0);
            t->run_id = col_text(a, st, 1);
            t->step_id = col_text(a, st, 2);
            t->due_ms = sqlite3_column_int64(st, 3);
            t->payload = col_text(a, st, 4);
            t->claim_owner = arena_strdup(a, owner);
            t->claim_expires_ms = now_ms + claim_ms;
        }
        if (src != SQLITE_DONE) rc = sq_fail(q, c->db, src, "finding due timers", err);
        done_stmt(st);
    }
    for (size_t i = 0; !rc && i < count; i++) {
        sqlite3_stmt *u = stmt(q, c, ST_TM_CLAIM, err);
        if (!u) {
            rc = err ? err->code : KEEL_EIO;
            break;
        }
        sqlite3_bind_text(u, 1, ts[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_text(u, 2, owner, -1, SQLITE_STATIC);
        sqlite3_bind_int64(u, 3, now_ms + claim_ms);
        int src = sqlite3_step(u);
        done_stmt(u);
        if (src != SQLITE_DONE) rc = sq_fail(q, c->db, src, "claiming a timer", err);
    }
    if (!rc) rc = exec_stmt(q, c, ST_COMMIT, err);
    if (rc) rollback(q, c);
    writer_put(q);
    if (!rc) {
        *out = ts;
        *n = count;
    }
    return rc;
}

static int sq_timer_next_due(struct store *s, int64_t *due_ms, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    sqlite3_stmt *st = stmt(q, c, ST_TM_NEXT, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
            *due_ms = sqlite3_column_int64(st, 0);
        else if (src == SQLITE_ROW || src == SQLITE_DONE)
            rc = keel_fail(err, KEEL_ENOENT, "no timers are set");
        else rc = sq_fail(q, c->db, src, "reading the next timer", err);
        done_stmt(st);
    }
    reader_put(q, c);
    return rc;
}

/* Runs a one-parameter DELETE on the writer; *changes gets the row count. */
static int delete_by(struct sq *q, enum stmt_id id, const char *key, int64_t ikey, size_t *changes,
                     const char *what, struct keel_err *err)
{
    struct conn *c = writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = stmt(q, c, id, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        if (key) sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        else sqlite3_bind_int64(st, 1, ikey);
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE) rc = sq_fail(q, c->db, src, what, err);
        else *changes = (size_t)sqlite3_changes(c->db);
    }
    writer_put(q);
    return rc;
}

static int sq_timer_delete(struct store *s, const char *id, struct keel_err *err)
{
    size_t n = 0;
    int rc = delete_by(sq_of(s), ST_TM_DELETE, id, 0, &n, "deleting a timer", err);
    if (!rc && n == 0) rc = keel_fail(err, KEEL_ENOENT, "no timer '%s'", id);
    return rc;
}

static int sq_timer_delete_run(struct store *s, const char *run_id, size_t *deleted,
                               struct keel_err *err)
{
    return delete_by(sq_of(s), ST_TM_DELETE_RUN, run_id, 0, deleted, "deleting a run's timers",
                     err);
}

/* ---- idempotency ------------------------------------------------------- */

static int sq_idem_put(struct store *s, const char *key, const char *run_id, const char *result,
                       int64_t expires_ms, struct arena *a, const char **existing,
                       struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    int64_t now = keel_wall_ms();
    int rc = exec_stmt(q, c, ST_BEGIN, err);
    sqlite3_stmt *st = rc ? NULL : stmt(q, c, ST_IDEM_GET, err);
    if (!rc && !st) rc = err ? err->code : KEEL_EIO;
    if (st) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            int64_t exp = sqlite3_column_int64(st, 1);
            if (exp == 0 || exp > now) {
                if (existing) *existing = col_text(a, st, 0);
                rc = keel_fail(err, KEEL_EEXIST, "idempotency key '%s' is already recorded", key);
            }
        } else if (src != SQLITE_DONE) {
            rc = sq_fail(q, c->db, src, "reading an idempotency record", err);
        }
        done_stmt(st);
    }
    if (!rc) {
        st = stmt(q, c, ST_IDEM_PUT, err);
        if (!st) rc = err ? err->code : KEEL_EIO;
        if (st) {
            sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
            bind_text(st, 2, run_id);
            sqlite3_bind_text(st, 3, result, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 4, now);
            sqlite3_bind_int64(st, 5, expires_ms);
            int src = sqlite3_step(st);
            done_stmt(st);
            if (src != SQLITE_DONE) rc = sq_fail(q, c->db, src, "recording an idempotency key", err);
        }
    }
    if (!rc) rc = exec_stmt(q, c, ST_COMMIT, err);
    if (rc) rollback(q, c);
    writer_put(q);
    return rc;
}

static int sq_idem_get(struct store *s, const char *key, int64_t now_ms, struct arena *a,
                       const char **result, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    sqlite3_stmt *st = stmt(q, c, ST_IDEM_GET, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            int64_t exp = sqlite3_column_int64(st, 1);
            if (exp != 0 && exp <= now_ms)
                rc = keel_fail(err, KEEL_ENOENT, "idempotency key '%s' has expired", key);
            else *result = col_text(a, st, 0);
        } else if (src == SQLITE_DONE) {
            rc = keel_fail(err, KEEL_ENOENT, "no idempotency record for key '%s'", key);
        } else {
            rc = sq_fail(q, c->db, src, "reading an idempotency record", err);
        }
        done_stmt(st);
    }
    reader_put(q, c);
    return rc;
}

static int sq_idem_expire(struct store *s, int64_t now_ms, size_t *deleted, struct keel_err *err)
{
    return delete_by(sq_of(s), ST_IDEM_EXPIRE, NULL, now_ms, deleted,
                     "expiring idempotency records", err);
}

/* ---- key/value --------------------------------------------------------- */

static int sq_kv_put(struct store *s, const char *key, const char *value, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = stmt(q, c, ST_KV_PUT, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, keel_wall_ms());
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE) rc = sq_fail(q, c->db, src, "writing a key", err);
    }
    writer_put(q);
    return rc;
}

static int sq_kv_get(struct store *s, const char *key, struct arena *a, const char **value,
                     struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    sqlite3_stmt *st = stmt(q, c, ST_KV_GET, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) *value = col_text(a, st, 0);
        else if (src == SQLITE_DONE) rc = keel_fail(err, KEEL_ENOENT, "no key '%s' in the store", key);
        else rc = sq_fail(q, c->db, src, "reading a key", err);
        done_stmt(st);
    }
    reader_put(q, c);
    return rc;
}

static int sq_kv_delete(struct store *s, const char *key, struct keel_err *err)
{
    size_t n = 0;
    int rc = delete_by(sq_of(s), ST_KV_DELETE, key, 0, &n, "deleting a key", err);
    if (!rc && n == 0) rc = keel_fail(err, KEEL_ENOENT, "no key '%s' in the store", key);
    return rc;
}

static const struct store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .stats = sq_stats,
    .run_create = sq_run_create,
    .run_get = sq_run_get,
    .run_set_status = sq_run_set_status,
    .run_list = sq_run_list,
    .run_claim = sq_run_claim,
    .run_claim_next = sq_run_claim_next,
    .run_release = sq_run_release,
    .append = sq_append,
    .append_async = sq_append_async,
    .events_tail = sq_events_tail,
    .events_scan = sq_events_scan,
    .snapshot_get = sq_snapshot_get,
    .workflow_put = sq_workflow_put,
    .workflow_get = sq_workflow_get,
    .approval_create = sq_approval_create,
    .approval_get = sq_approval_get,
    .approval_list = sq_approval_list,
    .approval_decide = sq_approval_decide,
    .timer_set = sq_timer_set,
    .timer_claim_due = sq_timer_claim_due,
    .timer_next_due = sq_timer_next_due,
    .timer_delete = sq_timer_delete,
    .timer_delete_run = sq_timer_delete_run,
    .idem_put = sq_idem_put,
    .idem_get = sq_idem_get,
    .idem_expire = sq_idem_expire,
    .kv_put = sq_kv_put,
    .kv_get = sq_kv_get,
    .kv_delete = sq_kv_delete,
};
