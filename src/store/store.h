/*
 * store.h — Keel's durable store behind one interface.
 *
 * The store holds everything that must survive a crash: runs, each run's
 * journal (the events), state snapshots, workflow versions (by content
 * hash), approvals, timers, idempotency records and a small key/value table
 * for daemon metadata.  Callers see only the store_* functions below; each
 * dispatches through a table of function pointers (struct store_ops) chosen
 * by store_open from the URI scheme:
 *
 *     "sqlite:DIR/keel.db"      SQLite in WAL mode (embedded, the default)
 *     "sqlite::memory:"         SQLite in memory (tests only; not durable)
 *     "postgres://..."          PostgreSQL (many nodes; not built yet — the
 *                               interface is shaped for it: leases, claim of
 *                               due timers, conditional transitions)
 *
 * Durability.  By default a successful write has reached stable storage
 * (SQLite: synchronous=FULL, one fsync of the WAL per commit) and survives
 * power loss.  STORE_DURABILITY_NORMAL trades that for speed (a crash of the
 * process loses nothing, a power loss may lose the last commits) and must be
 * asked for explicitly.
 *
 * Group commit.  Journal appends (store_append / store_append_async) from
 * any number of threads go to one queue; a single committer thread takes
 * everything queued, writes it in ONE transaction and commits it (one fsync),
 * then completes every request of the group, in commit order.  So N
 * concurrent runs share one fsync.  A synchronous append that finds the store
 * idle commits
 * on the caller's own thread, so a lone run pays one fsync and no thread
 * hand-off.
 *
 * Threads.  A struct store is safe to use from any number of threads at
 * once.  Every function may block on disk I/O.
 *
 * Memory.  Input structs and strings are borrowed for the duration of the
 * call (store_append_async: until its completion callback ran).  Output
 * strings and arrays are allocated in a caller-supplied struct arena and live
 * as long as it does; on failure nothing useful is left in the arena (it may
 * hold garbage, freed with it).
 *
 * Errors: 0 or a negative KEEL_E* code with details in err:
 *   KEEL_EINVAL  bad argument (empty id, unknown status, oversize field)
 *   KEEL_ENOENT  no such run / approval / workflow / key
 *   KEEL_EEXIST  the id already exists (create), or the seq already exists
 *   KEEL_ESTATE  wrong state: a decided approval, a status transition that is
 *                not allowed from the current status, a seq gap, a
 *                prev_hash that does not match the run's last event
 *   KEEL_EBUSY   a lease held by another owner
 *   KEEL_EIO     the database failed (message names the file and SQLite's
 *                reason)
 *   KEEL_ECORRUPT the database is not a Keel store or is damaged
 */
#ifndef KEEL_STORE_H
#define KEEL_STORE_H

#include "../util/util.h"

/* ---- limits ------------------------------------------------------------ */

#define STORE_ID_MAX 128                  /* run, approval, timer ids, names, actor */
#define STORE_TEXT_MAX (16u * 1024 * 1024) /* a JSON document or body, in bytes     */
#define STORE_LIST_MAX 1000                /* rows one list call returns at most    */
#define STORE_APPEND_MAX 4096              /* events in one append request          */
#define STORE_HASH_HEX 64                  /* sha256 as lowercase hex               */

/* ---- opening ----------------------------------------------------------- */

enum store_durability {
    STORE_DURABILITY_FULL = 0, /* default: every commit survives power loss        */
    STORE_DURABILITY_NORMAL,   /* survives a process crash, not a power loss       */
};

struct store_opts {
    enum store_durability durability;
    int busy_timeout_ms;     /* wait for another process's lock; 0: 5000        */
    size_t group_max_events; /* events one group commit takes at most; 0: 4096  */
    size_t readers;          /* reader connections in the pool; 0: 4           */
    bool read_only;          /* open an existing store for reading only (CLI)  */
};

struct store;

/* Opens (and creates or migrates, unless read_only) the store named by uri.
 * opts may be NULL for the defaults.  Returns a new store in *out; close it
 * with store_close().  For "sqlite:PATH" the parent directory must exist. */
int store_open(const char *uri, const struct store_opts *opts, struct store **out,
               struct keel_err *err);

/* Waits for queued appends to finish, then closes.  NULL is a no-op. */
void store_close(struct store *s);

/* Implementation name ("sqlite") and the location it was opened with.
 * Borrowed, valid until store_close. */
const char *store_backend(const struct store *s);
const char *store_location(const struct store *s);

/* Counters, for tests and /metrics. */
struct store_stats {
    uint64_t appends;       /* append requests completed (ok or not)       */
    uint64_t events;        /* events written by appends                   */
    uint64_t group_commits; /* transactions the committer made             */
    uint64_t max_group;     /* most requests one group commit carried      */
    bool durable_commits;   /* each commit reaches stable storage (FULL)   */
    uint64_t commit_ns;     /* time the committer spent in transactions    */
    uint64_t sync_ns;       /* ... of which in COMMIT (WAL write + fsync)  */
    uint64_t compactions;   /* implementation-specific upkeep runs (SQLite:
                               recent events added to the index in a batch) */
};
void store_get_stats(struct store *s, struct store_stats *out);

/* ---- runs -------------------------------------------------------------- */

/*
 * Run lifecycle (the engine drives it; the store only enforces the "from"
 * set given to store_run_set_status):
 *
 *   pending ──► running ──► succeeded | failed | cancelled
 *                 │  ▲
 *                 ▼  │
 *               waiting            (approval, timer, signal)
 *   running ──► needs_reconcile    (a non-idempotent call with no result)
 */
enum store_run_status {
    STORE_RUN_PENDING = 0,
    STORE_RUN_RUNNING,
    STORE_RUN_WAITING,
    STORE_RUN_SUCCEEDED,
    STORE_RUN_FAILED,
    STORE_RUN_CANCELLED,
    STORE_RUN_NEEDS_RECONCILE,
    STORE_RUN_STATUS_COUNT
};
#define STORE_RUN_MASK(st) (1u << (st))
#define STORE_RUN_MASK_ANY 0u
#define STORE_RUN_MASK_FINAL                                                                       \
    (STORE_RUN_MASK(STORE_RUN_SUCCEEDED) | STORE_RUN_MASK(STORE_RUN_FAILED) |                      \
     STORE_RUN_MASK(STORE_RUN_CANCELLED))

/* "pending", "running", ... (the text stored and shown to users). */
const char *store_run_status_name(enum store_run_status st);
/* Parses a status name; KEEL_EINVAL listing the valid names otherwise. */
int store_run_status_parse(const char *name, enum store_run_status *out, struct keel_err *err);
/* succeeded, failed, cancelled. */
bool store_run_status_is_final(enum store_run_status st);

struct store_run {
    const char *id;            /* e.g. keel_new_id("run"); ids of keel_new_id sort by time */
    const char *workflow;      /* workflow name                                   */
    const char *workflow_hash; /* content hash of the workflow version (64 hex)   */
    enum store_run_status status;
    const char *reason;        /* why the last status change happened; may be NULL */
    const char *input;         /* the run's input, JSON text                      */
    const char *identity;      /* who started it: "human:alice", "agent:team/x"   */
    const char *parent_id;     /* run this one was forked from, or NULL           */
    int64_t parent_seq;        /* last event of the parent it shares; 0 if none   */
    int64_t created_ms;        /* wall clock; 0 on create means "now"             */
    int64_t updated_ms;        /* last status change; 0 on create means created   */
    const char *lease_owner;   /* node holding the run, or NULL                   */
    int64_t lease_expires_ms;  /* 0 if no lease                                   */
};

/* Creates a run (lease fields are ignored: a new run is unclaimed).
 * KEEL_EEXIST if the id is taken. */
int store_run_create(struct store *s, const struct store_run *run, struct keel_err *err);

/* Reads a run into *out (strings in arena a).  KEEL_ENOENT if unknown. */
int store_run_get(struct store *s, const char *id, struct arena *a, struct store_run *out,
                  struct keel_err *err);

/* Sets the status (and reason, may be NULL) of run id, stamping updated_ms
 * with now_ms (0: the wall clock).  If from_mask is not STORE_RUN_MASK_ANY
 * the current status must be in it (an atomic compare-and-set), else
 * KEEL_ESTATE naming the current status.  KEEL_ENOENT if unknown. */
int store_run_set_status(struct store *s, const char *id, unsigned from_mask,
                         enum store_run_status to, const char *reason, int64_t now_ms,
                         struct keel_err *err);

struct store_run_filter {
    unsigned status_mask;   /* STORE_RUN_MASK(...) | ...; 0: any status       */
    const char *workflow;   /* only runs of this workflow name; NULL: any     */
    const char *parent_id;  /* only forks of this run; NULL: any              */
    const char *after_id;   /* paging: ids strictly after this one (in the
                               chosen order); NULL: from the start            */
    bool newest_first;      /* order by id descending instead of ascending    */
    size_t limit;           /* 0 or > STORE_LIST_MAX: STORE_LIST_MAX          */
};

/* Lists runs matching f (NULL: all), ordered by id.  *out is an array of
 * *n runs in arena a (NULL when *n is 0; the same holds for every list
 * below).  To page, pass the last id returned as after_id. */
int store_run_list(struct store *s, const struct store_run_filter *f, struct arena *a,
                   struct store_run **out, size_t *n, struct keel_err *err);

/* The runs a restarted daemon must look at: status pending, running or
 * waiting (needs_reconcile runs wait for a human and are not included),
 * ordered by id, at most limit (0: STORE_LIST_MAX) after after_id (NULL:
 * from the start). */
int store_list_unfinished_runs(struct store *s, const char *after_id, size_t limit,
                               struct arena *a, struct store_run **out, size_t *n,
                               struct keel_err *err);

/* Leases (for many nodes sharing one store).  Claims run id for owner until
 * now_ms + ttl_ms if it has no lease, its lease expired, or owner already
 * holds it (renewal).  KEEL_EBUSY naming the holder otherwise; KEEL_ENOENT
 * if unknown.  now_ms 0: the wall clock. */
int store_run_claim(struct store *s, const char *id, const char *owner, int64_t ttl_ms,
                    int64_t now_ms, struct keel_err *err);
/* Claims one unclaimed (or lease-expired) run whose status is in
 * status_mask, oldest id first, and reads it into *out (strings in a).
 * KEEL_ENOENT if there is none. */
int store_run_claim_next(struct store *s, unsigned status_mask, const char *owner, int64_t ttl_ms,
                         int64_t now_ms, struct arena *a, struct store_run *out,
                         struct keel_err *err);
/* Drops owner's lease on id (no-op if owner does not hold it). */
int store_run_release(struct store *s, const char *id, const char *owner, struct keel_err *err);

/* ---- journal events (the journal/ part builds on these) ---------------- */

/* What a model call used, kept with its model.response event in the same
 * transaction (a row of the model_calls table, docs/store.md), so usage
 * queries (store_usage_sum) read neither journals nor payloads.  It is not
 * part of the event's columns or hash: the payload stays the record, this
 * is an index of it.  store_usage_of derives it from a payload, for the
 * journal's append path and for migration 4's backfill alike. */
struct store_usage {
    char agent[STORE_ID_MAX + 1]; /* the payload's "agent" if a string, else the
                                     actor's name after "agent:", else ""      */
    char model[STORE_ID_MAX + 1]; /* the payload's "model" if a string, else "" */
    int64_t input_tokens;  /* usage.input_tokens if a positive int64, else 0    */
    int64_t output_tokens; /* usage.output_tokens likewise                      */
    double cost_usd;       /* cost_usd if a positive number, else 0             */
};

/* One stored event.  The journal part defines the kinds, the payload shapes
 * and the hash chain; the store keeps the rows and enforces continuity. */
struct store_event {
    const char *run_id;
    int64_t seq;                       /* 1-based, per run, no gaps           */
    int64_t time_ms;                   /* wall clock when it happened          */
    const char *kind;                  /* "step.completed", ...                */
    const char *actor;                 /* "agent:team/name", "human:alice", "system" */
    const char *payload;               /* canonical JSON text                  */
    size_t payload_len;                /* bytes of payload                     */
    char prev_hash[STORE_HASH_HEX + 1]; /* hash of event seq-1 (64 zeros for seq 1) */
    char hash[STORE_HASH_HEX + 1];     /* this event's hash                    */
    /* Set for a "model.response" event and for no other kind (store_append
     * refuses either mismatch): its row in model_calls, written in the same
     * transaction as the event.  Borrowed like the strings above. */
    const struct store_usage *usage;
};

/* An append request: events (in order; one run or several) written
 * atomically — all or none — together with optional side effects in the
 * same transaction. */
struct store_append;
typedef void (*store_append_done_fn)(struct store_append *req, int rc,
                                     const struct keel_err *err);
struct store_append {
    const struct store_event *events;
    size_t n_events;               /* 0 .. STORE_APPEND_MAX                       */

    /* Optional: also set run status_run_id's status in the same transaction
     * (e.g. run.succeeded + status succeeded).  NULL: no status change. */
    const char *status_run_id;
    enum store_run_status status;
    const char *status_reason;     /* may be NULL                                 */

    /* Optional: a state snapshot of snapshot_run_id at snapshot_seq. */
    const char *snapshot_run_id;
    int64_t snapshot_seq;
    const char *snapshot_state;    /* JSON text                                   */

    /* Async only: called once, on the store's committer thread, when the
     * request is durable (rc 0) or failed (err describes it; borrowed for the
     * call), in commit order.  Keep it short: the next group waits for it.
     * It may queue more work (store_append_async) and read, but must not
     * call store_append, which would wait for this very thread (refused
     * with KEEL_EINTERNAL). */
    store_append_done_fn done;
    void *ctx;

    void *impl_next; /* owned by the store while queued */
};

/* Appends req's events durably and returns when they are on stable storage
 * (in FULL durability) or failed.  Checks, for each event: seq is 1 or event
 * seq-1 of the run exists and its hash equals prev_hash (else KEEL_ESTATE),
 * and seq is not taken (else KEEL_EEXIST: another writer got there first).
 * Requests from concurrent callers share one transaction (group commit); a
 * request that fails its checks fails alone.  req->done is ignored. */
int store_append(struct store *s, struct store_append *req, struct keel_err *err);

/* Queues req and returns at once (KEEL_EINVAL for a malformed request, then
 * done is not called).  req->done(req, rc, err) runs when it is durable or
 * failed.  req and everything it points to stay borrowed until then. */
int store_append_async(struct store *s, struct store_append *req, struct keel_err *err);

/* The same, except that when the store is idle (no group being committed,
 * nothing queued) req is committed at once on the calling thread and
 * req->done runs there before this returns: a writer that is alone pays no
 * thread hand-off.  Otherwise req is queued as by store_append_async.
 * Returns nonzero only when req was refused before either (then done does
 * not run).  Not from a completion callback. */
int store_append_eager(struct store *s, struct store_append *req, struct keel_err *err);

/* The last event of run_id: *seq (0 if the run has no events) and its hash
 * (64 zeros if none) into hash[65]. */
int store_events_tail(struct store *s, const char *run_id, int64_t *seq,
                      char hash[STORE_HASH_HEX + 1], struct keel_err *err);

/* Calls fn for each event of run_id with seq >= from_seq, in seq order,
 * at most limit events (0: all).  The event and its strings are borrowed for
 * the call.  A non-zero return from fn stops the scan and is returned. */
typedef int (*store_event_fn)(void *ctx, const struct store_event *ev);
int store_events_scan(struct store *s, const char *run_id, int64_t from_seq, int64_t limit,
                      store_event_fn fn, void *ctx, struct keel_err *err);

/* The latest snapshot of run_id with seq <= max_seq (0: any): *seq and the
 * state JSON text in arena a.  KEEL_ENOENT if there is none. */
int store_snapshot_get(struct store *s, const char *run_id, int64_t max_seq, struct arena *a,
                       int64_t *seq, const char **state, struct keel_err *err);
/* Writes a snapshot (replacing one at the same seq).  Goes through the group
 * committer like an append. */
int store_snapshot_put(struct store *s, const char *run_id, int64_t seq, const char *state,
                       struct keel_err *err);

/* ---- model usage ------------------------------------------------------- */

struct json_value;

/* Fills *out from a model.response payload (an object; anything else gives
 * an all-empty row) and the event's actor (may be NULL), per struct
 * store_usage.  Names are copied up to their first NUL and cut to
 * STORE_ID_MAX bytes (as usage reports always grouped them). */
void store_usage_of(const struct json_value *payload, const char *actor, struct store_usage *out);

/* Grouping dimensions of a usage query (bits; 0 is the grand total). */
#define STORE_USAGE_BY_WORKFLOW 1u
#define STORE_USAGE_BY_AGENT 2u
#define STORE_USAGE_BY_MODEL 4u
#define STORE_USAGE_BY_ALL 7u
#define STORE_USAGE_GROUPINGS_MAX 8  /* groupings one query computes at most  */
#define STORE_USAGE_ROWS_MAX 100000  /* rows one query returns at most        */

struct store_usage_filter {
    int64_t since_ms, until_ms; /* calls with since <= event time < until        */
    const char *workflow;       /* only runs of this workflow; NULL: any          */
    const char *agent;          /* only calls of this agent (compared after the
                                   unknown mapping below); NULL: any              */
    const char *unknown;        /* the name an empty agent, model or workflow is
                                   grouped, filtered and returned as; NULL: ""   */
    const unsigned *groupings;  /* distinct STORE_USAGE_BY_* masks to compute,
                                   each a set of rows; NULL (n_groupings 0): one
                                   grouping, STORE_USAGE_BY_ALL                  */
    size_t n_groupings;         /* 0 .. STORE_USAGE_GROUPINGS_MAX                 */
};

/* One group's sums. */
struct store_usage_sum {
    unsigned grouping;      /* the mask of the grouping this row belongs to       */
    const char *workflow;   /* the group's key; NULL for a dimension the          */
    const char *agent;      /*   grouping does not have                           */
    const char *model;
    int64_t runs;           /* distinct runs with a call in the group             */
    int64_t calls;          /* model.response events                              */
    int64_t input_tokens, output_tokens;
    double cost_usd;        /* summed with Neumaier's compensation                 */
};

/* Sums the usage rows of model calls in f's window that match its filters,
 * over model_calls joined with runs (a call whose run row is missing is not
 * counted), once per grouping of f, all from one consistent read.  A
 * grouping with dimensions yields one row per group that has calls (in no
 * particular order); grouping 0 yields exactly one row (zeros if nothing
 * matched).  *out is an array of *n rows in arena a.  KEEL_ELIMIT past
 * STORE_USAGE_ROWS_MAX rows.  Costs one range scan of the window in the
 * time index, whatever the groupings, and a runs probe per run in it
 * (docs/store.md, "Model usage"). */
int store_usage_sum(struct store *s, const struct store_usage_filter *f, struct arena *a,
                    struct store_usage_sum **out, size_t *n, struct keel_err *err);

/* ---- workflow versions ------------------------------------------------- */

/* Stores body (the workflow document) as version hash of workflow name.
 * Versions are immutable: putting the same (name, hash) again with the same
 * body succeeds and changes nothing; with another body it fails with
 * KEEL_ECORRUPT (a hash must identify one content).  now_ms 0: wall clock. */
int store_workflow_put(struct store *s, const char *name, const char *hash, const char *body,
                       int64_t now_ms, struct keel_err *err);
/* Reads version hash of name (hash NULL: the most recently put version; its
 * hash goes to *hash_out if non-NULL).  Strings in arena a.  KEEL_ENOENT. */
int store_workflow_get(struct store *s, const char *name, const char *hash, struct arena *a,
                       const char **body, const char **hash_out, struct keel_err *err);

/* ---- approvals --------------------------------------------------------- */

/*
 *   pending ──store_approval_decide──► approved | denied | expired
 *
 * A decision is final: deciding twice fails with KEEL_ESTATE.
 */
enum store_approval_status {
    STORE_APPROVAL_PENDING = 0,
    STORE_APPROVAL_APPROVED,
    STORE_APPROVAL_DENIED,
    STORE_APPROVAL_EXPIRED,
    STORE_APPROVAL_STATUS_COUNT
};
const char *store_approval_status_name(enum store_approval_status st);
int store_approval_status_parse(const char *name, enum store_approval_status *out,
                                struct keel_err *err);

struct store_approval {
    const char *id;
    const char *run_id;
    const char *step_id;
    const char *group;       /* who may decide, e.g. "support-leads"          */
    const char *request;     /* JSON text: {agent, tool, args_digest, policy, message, ...} */
    enum store_approval_status status;
    const char *decided_by;  /* identity, NULL while pending                  */
    const char *comment;     /* NULL if none                                  */
    int64_t created_ms;      /* 0 on create: now                              */
    int64_t expires_ms;      /* 0: never                                      */
    int64_t decided_ms;      /* 0 while pending                               */
};

/* Creates a pending approval (status/decided fields ignored). KEEL_EEXIST. */
int store_approval_create(struct store *s, const struct store_approval *ap, struct keel_err *err);
int store_approval_get(struct store *s, const char *id, struct arena *a, struct store_approval *out,
                       struct keel_err *err);

struct store_approval_filter {
    unsigned status_mask;  /* 1u << STORE_APPROVAL_*; 0: any                 */
    const char *run_id;    /* NULL: any                                      */
    const char *group;     /* NULL: any                                      */
    const char *after_id;  /* paging, ids ascending; NULL: from the start    */
    size_t limit;          /* 0 or > STORE_LIST_MAX: STORE_LIST_MAX          */
};
int store_approval_list(struct store *s, const struct store_approval_filter *f, struct arena *a,
                        struct store_approval **out, size_t *n, struct keel_err *err);

/* Decides a pending approval atomically: to must be approved, denied or
 * expired.  KEEL_ESTATE (naming the earlier decision and who made it) if it
 * is already decided; KEEL_ENOENT if unknown.  now_ms 0: wall clock. */
int store_approval_decide(struct store *s, const char *id, enum store_approval_status to,
                          const char *decided_by, const char *comment, int64_t now_ms,
                          struct keel_err *err);

/* ---- timers ------------------------------------------------------------ */

struct store_timer {
    const char *id;          /* unique, e.g. "<run>/<step>/retry-2"            */
    const char *run_id;
    const char *step_id;     /* may be NULL                                    */
    int64_t due_ms;          /* wall clock                                     */
    const char *payload;     /* JSON text, may be NULL                         */
    const char *claim_owner; /* set by store_timer_claim_due, else NULL        */
    int64_t claim_expires_ms;
};

/* Creates or replaces timer t->id (a replaced timer is unclaimed again). */
int store_timer_set(struct store *s, const struct store_timer *t, struct keel_err *err);
/* Claims up to max (0: STORE_LIST_MAX) timers with due_ms <= now_ms that are
 * unclaimed or whose claim expired, for owner until now_ms + claim_ms, due
 * order.  The caller fires each (journals timer.fired) and then deletes it;
 * a claim that is never completed lets the timer fire again after claim_ms. */
int store_timer_claim_due(struct store *s, int64_t now_ms, const char *owner, int64_t claim_ms,
                          size_t max, struct arena *a, struct store_timer **out, size_t *n,
                          struct keel_err *err);
/* The earliest due_ms of any timer (claimed or not) into *due_ms;
 * KEEL_ENOENT if there are no timers. */
int store_timer_next_due(struct store *s, int64_t *due_ms, struct keel_err *err);
/* Deletes timer id (KEEL_ENOENT if unknown). */
int store_timer_delete(struct store *s, const char *id, struct keel_err *err);
/* Deletes every timer of run_id (cancel); *deleted gets the count if non-NULL. */
int store_timer_delete_run(struct store *s, const char *run_id, size_t *deleted,
                           struct keel_err *err);

/* ---- idempotency records ----------------------------------------------- */

/* Records key -> result (JSON text) unless key exists: then KEEL_EEXIST and,
 * if existing is non-NULL, the stored result in arena a (so a retried
 * request returns the first answer).  expires_ms 0: never. */
int store_idem_put(struct store *s, const char *key, const char *run_id, const char *result,
                   int64_t expires_ms, struct arena *a, const char **existing,
                   struct keel_err *err);
/* Reads key's result into arena a; KEEL_ENOENT if unknown or expired at now_ms
 * (0: wall clock). */
int store_idem_get(struct store *s, const char *key, int64_t now_ms, struct arena *a,
                   const char **result, struct keel_err *err);
/* Deletes records that expired before now_ms; *deleted gets the count. */
int store_idem_expire(struct store *s, int64_t now_ms, size_t *deleted, struct keel_err *err);

/* ---- key/value (daemon metadata) --------------------------------------- */

int store_kv_put(struct store *s, const char *key, const char *value, struct keel_err *err);
/* KEEL_ENOENT if unknown; value in arena a. */
int store_kv_get(struct store *s, const char *key, struct arena *a, const char **value,
                 struct keel_err *err);
int store_kv_delete(struct store *s, const char *key, struct keel_err *err);

/* ---- implementations --------------------------------------------------- */

/*
 * One row per backend.  An implementation fills a struct store_ops; every
 * store_* function validates its arguments, then calls the op.  Adding the
 * PostgreSQL backend is adding a file and a row in store.c's backend table;
 * the engine does not change.
 */
struct store_ops {
    const char *name;
    void (*close)(struct store *s);
    void (*stats)(struct store *s, struct store_stats *out);

    int (*run_create)(struct store *s, const struct store_run *run, struct keel_err *err);
    int (*run_get)(struct store *s, const char *id, struct arena *a, struct store_run *out,
                   struct keel_err *err);
    int (*run_set_status)(struct store *s, const char *id, unsigned from_mask,
                          enum store_run_status to, const char *reason, int64_t now_ms,
                          struct keel_err *err);
    int (*run_list)(struct store *s, const struct store_run_filter *f, struct arena *a,
                    struct store_run **out, size_t *n, struct keel_err *err);
    int (*run_claim)(struct store *s, const char *id, const char *owner, int64_t ttl_ms,
                     int64_t now_ms, struct keel_err *err);
    int (*run_claim_next)(struct store *s, unsigned status_mask, const char *owner,
                          int64_t ttl_ms, int64_t now_ms, struct arena *a, struct store_run *out,
                          struct keel_err *err);
    int (*run_release)(struct store *s, const char *id, const char *owner, struct keel_err *err);

    /* Optional fast path for store_append: may commit req on the calling
     * thread, or return a positive value to have it queued (append_async)
     * and waited for.  NULL: always queued. */
    int (*append)(struct store *s, struct store_append *req, struct keel_err *err);
    int (*append_async)(struct store *s, struct store_append *req, struct keel_err *err);
    int (*events_tail)(struct store *s, const char *run_id, int64_t *seq, char *hash,
                       struct keel_err *err);
    int (*events_scan)(struct store *s, const char *run_id, int64_t from_seq, int64_t limit,
                       store_event_fn fn, void *ctx, struct keel_err *err);
    int (*snapshot_get)(struct store *s, const char *run_id, int64_t max_seq, struct arena *a,
                        int64_t *seq, const char **state, struct keel_err *err);
    int (*usage_sum)(struct store *s, const struct store_usage_filter *f, struct arena *a,
                     struct store_usage_sum **out, size_t *n, struct keel_err *err);

    int (*workflow_put)(struct store *s, const char *name, const char *hash, const char *body,
                        int64_t now_ms, struct keel_err *err);
    int (*workflow_get)(struct store *s, const char *name, const char *hash, struct arena *a,
                        const char **body, const char **hash_out, struct keel_err *err);

    int (*approval_create)(struct store *s, const struct store_approval *ap,
                           struct keel_err *err);
    int (*approval_get)(struct store *s, const char *id, struct arena *a,
                        struct store_approval *out, struct keel_err *err);
    int (*approval_list)(struct store *s, const struct store_approval_filter *f,
                         struct arena *a, struct store_approval **out, size_t *n,
                         struct keel_err *err);
    int (*approval_decide)(struct store *s, const char *id, enum store_approval_status to,
                           const char *decided_by, const char *comment, int64_t now_ms,
                           struct keel_err *err);

    int (*timer_set)(struct store *s, const struct store_timer *t, struct keel_err *err);
    int (*timer_claim_due)(struct store *s, int64_t now_ms, const char *owner, int64_t claim_ms,
                           size_t max, struct arena *a, struct store_timer **out, size_t *n,
                           struct keel_err *err);
    int (*timer_next_due)(struct store *s, int64_t *due_ms, struct keel_err *err);
    int (*timer_delete)(struct store *s, const char *id, struct keel_err *err);
    int (*timer_delete_run)(struct store *s, const char *run_id, size_t *deleted,
                            struct keel_err *err);

    int (*idem_put)(struct store *s, const char *key, const char *run_id, const char *result,
                    int64_t expires_ms, struct arena *a, const char **existing,
                    struct keel_err *err);
    int (*idem_get)(struct store *s, const char *key, int64_t now_ms, struct arena *a,
                    const char **result, struct keel_err *err);
    int (*idem_expire)(struct store *s, int64_t now_ms, size_t *deleted, struct keel_err *err);

    int (*kv_put)(struct store *s, const char *key, const char *value, struct keel_err *err);
    int (*kv_get)(struct store *s, const char *key, struct arena *a, const char **value,
                  struct keel_err *err);
    int (*kv_delete)(struct store *s, const char *key, struct keel_err *err);
};

/* The common head of every implementation's store object. */
struct store {
    const struct store_ops *ops;
    char backend[16];
    char location[1024];
};

#endif
