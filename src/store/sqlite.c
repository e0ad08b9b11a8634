/*
 * sqlite.c — the SQLite implementation of the store (struct store_ops): its
 * connections, schema, opening and closing.  sqlite_internal.h lists the
 * other files, one per concern.
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
 * Group commit (sqlite_commit.c).  Appends are queued (q->head, a FIFO
 * linked through req->impl_next) and a single committer thread drains it:
 * it takes every queued request (up to opts.group_max_events events), runs
 * them in ONE transaction on the writer — each request's checks come before
 * anything it writes, so a refused request fails alone; the accepted
 * requests' events are then inserted 16 to a statement — commits once (one
 * fsync), and only then calls each request's done callback.  A request is
 * never completed before the commit that holds it.
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
 * Model usage (sqlite_usage.c).  model_calls holds a row per model.response
 * event, inserted by the group commit right after the group's events (same
 * transaction), so usage reports are an indexed aggregate (migration 4).
 *
 * Schema.  Versioned by PRAGMA user_version; the migrations table below is
 * applied in order, each in its own transaction (with, where a migration
 * needs it, C code after its SQL: migration_code).  application_id marks the
 * file as a Keel store.  Statements are prepared once per connection and
 * cached (conn->st[]).
 */
#include "sqlite_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEEL_APPLICATION_ID 0x4b45454c /* "KEEL" */

/* ---- schema ------------------------------------------------------------ */

#define EVENT_COLS "run_id, seq, time_ms, kind, actor, payload, prev_hash, hash"
#define EV_ROW "(?, ?, ?, ?, ?, ?, ?, ?)"
#define EV_ROW4 EV_ROW "," EV_ROW "," EV_ROW "," EV_ROW
#define EVENT_COLS_E "e.run_id, e.seq, e.time_ms, e.kind, e.actor, e.payload, e.prev_hash, e.hash"

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
     * to events_index in one batch (index_log).  events_indexed.upto
     * is the last id indexed; rows after it are "the log", read by a rowid
     * range scan.  Until schema 2, compaction moved whole rows from
     * events_log into a WITHOUT ROWID events table: per 4096 events of 64
     * runs that wrote 614-1012 WAL frames and took 29-42 ms of CPU; adding
     * the index entries writes 22-124 frames and takes 11-17 ms. */
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

    /* 4: model_calls — a row per model.response event, written in the
     * event's own transaction (sqlite_usage.c), so usage reports are an
     * indexed aggregate instead of a scan of every journal.  The index on
     * time_ms covers every column a report reads but the workflow (the
     * primary key columns ride along in it), so a window is one range scan
     * plus a runs probe per call.  Existing events are backfilled by
     * migration_code[3] in the same transaction. */
    "CREATE TABLE model_calls ("
    "  run_id TEXT NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  time_ms INTEGER NOT NULL,"
    "  agent TEXT NOT NULL,"
    "  model TEXT NOT NULL,"
    "  input_tokens INTEGER NOT NULL,"
    "  output_tokens INTEGER NOT NULL,"
    "  cost_usd REAL NOT NULL,"
    "  PRIMARY KEY (run_id, seq)"
    ") WITHOUT ROWID;"
    "CREATE INDEX model_calls_by_time ON model_calls(time_ms, agent, model, input_tokens, "
    "  output_tokens, cost_usd);",
};
#define SCHEMA_VERSION ((int)KEEL_ARRAY_LEN(migrations))

/* What a migration does beyond its SQL, run after it in its transaction:
 * filling a new table from data that only C can read (JSON payloads are
 * parsed by Keel's own parser, as everywhere else). */
typedef int (*migration_fn)(struct sq *q, struct conn *c, struct keel_err *err);
static const migration_fn migration_code[SCHEMA_VERSION] = {
    [3] = store_sq_usage_backfill,
};

/* ---- statements -------------------------------------------------------- */

#define TIMER_COLS "id, run_id, step_id, due_ms, payload, claim_owner, claim_expires_ms"

const char *const store_sq_stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_BEGIN_READ] = "BEGIN",
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
    /* INSERT_ROWS rows in one statement: the statement's own cost (start,
     * cursor, halt) is paid once per 16 events of a group. */
    [ST_EV_INSERT_MANY] = "INSERT INTO events (" EVENT_COLS ") VALUES " EV_ROW4 "," EV_ROW4
                          "," EV_ROW4 "," EV_ROW4,
    /* An event is found through events_index, or it is in the log: the
     * rows after events_indexed.upto, which no index covers.  Each half is
     * read in its own order (the index's (run_id, seq), the log's rowid),
     * never through a sort: for one run every indexed event precedes every
     * logged one.  Both halves are read in one read transaction
     * (sqlite_journal.c), so indexing in between cannot hide a row. */
    [ST_EV_TAIL] = "SELECT e.seq, e.hash FROM events_index i JOIN events e ON e.id = i.id "
                   "WHERE i.run_id = ?1 ORDER BY i.seq DESC LIMIT 1",
    [ST_EV_TAIL_LOG] = "SELECT seq, hash FROM events WHERE id > (SELECT upto FROM "
                       "events_indexed) AND run_id = ?1 ORDER BY id DESC LIMIT 1",
    [ST_EV_SCAN] = "SELECT " EVENT_COLS_E " FROM events_index i JOIN events e ON e.id = i.id "
                   "WHERE i.run_id = ?1 AND i.seq >= ?2 ORDER BY i.seq LIMIT ?3",
    [ST_EV_SCAN_LOG] = "SELECT " EVENT_COLS " FROM events WHERE id > (SELECT upto FROM "
                       "events_indexed) AND run_id = ?1 AND seq >= ?2 ORDER BY id LIMIT ?3",
    [ST_MC_INSERT] = "INSERT INTO model_calls (run_id, seq, time_ms, agent, model, input_tokens, "
                     "output_tokens, cost_usd) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    /* In id order: sorting by (run_id, seq) first measured 13% more
     * instructions, and the pages written are the same (each is written
     * once per transaction however often it changes). */
    [ST_LOG_INDEX] = "INSERT INTO events_index SELECT run_id, seq, id FROM events WHERE id > "
                     "(SELECT upto FROM events_indexed)",
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

/* SQLite primary result codes and the KEEL_E* code each becomes; anything
 * not listed is an I/O failure. */
static const struct {
    int sqlite;
    int keel;
} code_map[] = {
    {SQLITE_BUSY, KEEL_EBUSY},        {SQLITE_LOCKED, KEEL_EBUSY},
    {SQLITE_CONSTRAINT, KEEL_EEXIST}, {SQLITE_CORRUPT, KEEL_ECORRUPT},
    {SQLITE_NOTADB, KEEL_ECORRUPT},   {SQLITE_NOMEM, KEEL_ENOMEM},
    {SQLITE_READONLY, KEEL_EINVAL},
};

static int sq_code(int rc)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(code_map); i++)
        if ((rc & 0xff) == code_map[i].sqlite) return code_map[i].keel;
    return KEEL_EIO;
}

int store_sq_fail(struct sq *q, sqlite3 *db, int rc, const char *what, struct keel_err *err)
{
    const char *hint = "";
    int code = sq_code(rc);
    if (code == KEEL_EBUSY)
        hint = "; another process holds the database lock, retry later";
    else if (code == KEEL_ECORRUPT)
        hint = "; restore the store from a backup";
    else if ((rc & 0xff) == SQLITE_FULL)
        hint = "; free disk space";
    else if ((rc & 0xff) == SQLITE_READONLY)
        hint = "; the store was opened read-only";
    return keel_fail(err, code, "store %s: %s: %s%s", q->path, what,
                     db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), hint);
}

/* Returns the cached statement id of c, reset and unbound, or NULL (err set). */
sqlite3_stmt *store_sq_stmt(struct sq *q, struct conn *c, enum stmt_id id, struct keel_err *err)
{
    if (!c->st[id]) {
        int rc = sqlite3_prepare_v3(c->db, store_sq_stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &c->st[id], NULL);
        if (rc != SQLITE_OK) {
            store_sq_fail(q, c->db, rc, "preparing a statement", err);
            return NULL;
        }
    }
    return c->st[id];
}

/* Runs a statement that returns no rows. */
int store_sq_exec_stmt(struct sq *q, struct conn *c, enum stmt_id id, struct keel_err *err)
{
    sqlite3_stmt *st = store_sq_stmt(q, c, id, err);
    if (!st) return err ? err->code : KEEL_EIO;
    int rc = sqlite3_step(st);
    done_stmt(st);
    if (rc != SQLITE_DONE) return store_sq_fail(q, c->db, rc, store_sq_stmt_sql[id], err);
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

int store_sq_conn_open(struct sq *q, struct conn *c, bool writer, struct keel_err *err)
{
    memset(c, 0, sizeof *c);
    int flags = SQLITE_OPEN_NOMUTEX;
    if (q->opts.read_only)
        flags |= SQLITE_OPEN_READONLY;
    else
        flags |= SQLITE_OPEN_READWRITE | (writer ? SQLITE_OPEN_CREATE : 0);
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
        store_sq_fail(q, c->db, rc, "configuring the connection", err);
        conn_close(c);
        return err ? err->code : KEEL_EIO;
    }
    int krc = store_sq_register_functions(q, c->db, err);
    if (krc) {
        conn_close(c);
        return krc;
    }
    return 0;
}

/* ---- reader pool ------------------------------------------------------- */

struct conn *store_sq_reader_get(struct sq *q, struct keel_err *err)
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
    if (store_sq_conn_open(q, c, false, err) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

void store_sq_reader_put(struct sq *q, struct conn *c)
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

struct conn *store_sq_writer_get(struct sq *q, struct keel_err *err)
{
    if (q->opts.read_only) {
        keel_fail(err, KEEL_EINVAL, "store %s was opened read-only; this needs write access",
                  q->path);
        return NULL;
    }
    pthread_mutex_lock(&q->wlock);
    return &q->writer;
}

void store_sq_writer_put(struct sq *q)
{
    pthread_mutex_unlock(&q->wlock);
}

/* Rolls back after a failure inside BEGIN..COMMIT, keeping the first error. */
void store_sq_rollback(struct sq *q, struct conn *c)
{
    if (sqlite3_get_autocommit(c->db)) return;
    store_sq_exec_stmt(q, c, ST_ROLLBACK, NULL);
}

/* ---- schema ------------------------------------------------------------ */

static int pragma_int(struct sq *q, struct conn *c, const char *sql, int *out, struct keel_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) return store_sq_fail(q, c->db, rc, sql, err);
    rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_sq_fail(q, c->db, rc, sql, err);
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
        if (rc == SQLITE_OK && migration_code[v]) {
            int krc = migration_code[v](q, c, err);
            if (krc) {
                keel_err_prefix(err, "store %s: migrating the schema to version %d", q->path,
                                v + 1);
                store_sq_rollback(q, c);
                return krc;
            }
        }
        if (rc == SQLITE_OK) rc = sqlite3_exec(c->db, tail, NULL, NULL, &msg);
        if (rc == SQLITE_OK) rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            keel_fail(err, sq_code(rc), "store %s: migrating the schema to version %d: %s", q->path,
                      v + 1, msg ? msg : sqlite3_errstr(rc));
            sqlite3_free(msg);
            store_sq_rollback(q, c);
            return err ? err->code : KEEL_EIO;
        }
    }
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
    store_sq_tails_clear(&q->tails);
    strmap_cleanup(&q->tails);
    free(q->batch);
    free(q->touched);
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
    pthread_condattr_t cattr; /* qcond: timed waits on the monotonic clock */
    pthread_condattr_init(&cattr);
    pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->qcond, &cattr);
    pthread_condattr_destroy(&cattr);
    pthread_mutex_init(&q->cklock, NULL);
    pthread_cond_init(&q->ckcond, NULL);
    strmap_init(&q->tails);
    q->data_version = -1;
    q->ck_next_at = CHECKPOINT_FRAMES;
    q->log_index_at = LOG_INDEX_ROWS;

    int rc = store_sq_conn_open(q, &q->writer, true, err);
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
            rc = store_sq_fail(q, q->writer.db, src, "configuring checkpoints", err);
            sq_free(q);
            return rc;
        }
        sqlite3_wal_hook(q->writer.db, store_sq_wal_hook, q);
        store_sq_wal_preallocate(q);
        rc = store_sq_start_checkpointer(q, err);
        if (rc) {
            sq_free(q);
            return rc;
        }
    }
    if (!q->opts.read_only) {
        int rows = 0;
        rc = pragma_int(q, &q->writer, store_sq_stmt_sql[ST_LOG_COUNT], &rows, err);
        if (rc) {
            sq_free(q);
            return rc;
        }
        q->log_rows = (size_t)rows;
        /* Index what the log holds before anything is appended: from then on
         * the committer knows every run with events in the log
         * (log_complete), so a run's first append costs an index probe, not
         * a walk of the log.  Here rather than on the committer, so a store
         * just opened is idle (an eager append commits on its caller's
         * thread; tests rely on that). */
        store_sq_index_log(q);
        if (pthread_create(&q->committer, NULL, store_sq_committer_main, q) != 0) {
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

static const struct store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .stats = sq_stats,
    .run_create = store_sq_run_create,
    .run_get = store_sq_run_get,
    .run_set_status = store_sq_run_set_status,
    .run_list = store_sq_run_list,
    .run_claim = store_sq_run_claim,
    .run_claim_next = store_sq_run_claim_next,
    .run_release = store_sq_run_release,
    .append = store_sq_append,
    .append_async = store_sq_append_async,
    .events_tail = store_sq_events_tail,
    .events_scan = store_sq_events_scan,
    .snapshot_get = store_sq_snapshot_get,
    .usage_sum = store_sq_usage_sum,
    .workflow_put = store_sq_workflow_put,
    .workflow_get = store_sq_workflow_get,
    .approval_create = store_sq_approval_create,
    .approval_get = store_sq_approval_get,
    .approval_list = store_sq_approval_list,
    .approval_decide = store_sq_approval_decide,
    .timer_set = store_sq_timer_set,
    .timer_claim_due = store_sq_timer_claim_due,
    .timer_next_due = store_sq_timer_next_due,
    .timer_delete = store_sq_timer_delete,
    .timer_delete_run = store_sq_timer_delete_run,
    .idem_put = store_sq_idem_put,
    .idem_get = store_sq_idem_get,
    .idem_expire = store_sq_idem_expire,
    .kv_put = store_sq_kv_put,
    .kv_get = store_sq_kv_get,
    .kv_delete = store_sq_kv_delete,
};
