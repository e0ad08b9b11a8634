/*
 * journal.h — a run's journal: append-only, hash-chained events, and the
 * fold of those events into the run's state.
 *
 * A run IS its journal.  Every event carries the run id, a 1-based sequence
 * number without gaps, the time, a kind (from the table below), the acting
 * identity, a JSON payload, the hash of the previous event and its own hash
 * (the chain is specified byte by byte at the top of journal.c and in
 * docs/journal.md).  State = fold(events) through declared reducers;
 * snapshots only speed the fold up.
 *
 * Writing.  The engine drives one run from one place at a time; it opens a
 * struct journal_writer per run, which remembers the run's tail (last seq
 * and hash) so each append costs one durable group commit and nothing else.
 * journal_append() is the convenience form that reads the tail from the
 * store first (and retries once if another writer appended meanwhile).  Two
 * writers can never fork a run: the store refuses a seq that exists.
 *
 * Event kinds and their payloads (payload is always a JSON object; fields
 * marked ? are optional; other fields are allowed and kept):
 *
 *   run.started          {workflow, workflow_hash, input, parent_id?, parent_seq?}
 *   run.waiting          {reason: "approval"|"timer"|"signal", approval_id?, timer_id?, until?}
 *   run.resumed          {reason, approval_id?, timer_id?, signal?}
 *   run.succeeded        {output?}
 *   run.failed           {error: {code, message}, step?}
 *   run.cancelled        {by?, reason?}
 *   run.needs_reconcile  {step, call_id, tool, reason}
 *   step.started         {step, attempt}  (not for set and switch steps)
 *   step.completed       {step, attempt, result?}
 *   step.failed          {step, attempt, error: {code, message}, retry_at?}
 *   tool.call.started    {step, call_id, server, tool, args, idempotency_key}
 *   tool.call.completed  {step, call_id, result?, error?, is_error?, duration_ms?}
 *   policy.decision      {step?, call_id?, action, resource, decision: "allow"|"deny"|
 *                         "approval", policies?, reasons?}
 *   approval.requested   {approval_id, step, group, args_digest, expires_ms?, message?}
 *   approval.decided     {approval_id, decision: "approved"|"denied"|"expired",
 *                         by, comment?}
 *   state.updated        {key, value, reducer?, step?}   (see journal_fold_event)
 *   timer.set            {timer_id, step?, due_ms}
 *   timer.fired          {timer_id, step?}
 *   signal.received      {name, value?}
 *   model.request        {step, call_id, model, agent?, turn?, purpose?: "turn"|"summary",
 *                         route_rule?, messages_added?: [neutral messages appended
 *                         since the previous request of the step], tools?: ["server/tool"],
 *                         estimated_tokens?, max_output_tokens?}
 *   model.response       {step, call_id, model, agent?, turn?, provider?, provider_model?,
 *                         message?: neutral assistant message, stop_reason?,
 *                         usage?: {input_tokens, output_tokens}, cost_usd?, attempts?,
 *                         trail?, error?: {code, message}}
 *   compensation.started   {step, call_id, tool}
 *   compensation.completed {step, call_id, result?, error?}
 *   tool.call.refused    {step, call_id, tool, reason: "denied"|"invalid_arguments"|
 *                         "unknown_tool"|"not_offered"|"approval_denied", agent?,
 *                         tool_call_id?, message}  (what the model was told)
 *   agent.output.rejected {step, call_id, errors: [..], agent?, turn?, message?}
 *   context.summarized   {step, call_id, summary, agent?, through_turn?, tokens_before?,
 *                         tokens_after?, model?, usage?, cost_usd?}
 *   agent.handoff        {step, from, to, note}
 *   budget.exceeded      {step, scope: "run"|"agent", agent?, limit: {tokens?, usd?},
 *                         used: {tokens, usd}, approval_id?}
 *   budget.extended      {scope, agent?, tokens?, usd?, by?, approval_id?}
 *
 * The neutral message shape is src/model/model.h's.  Model calls and agent
 * tool calls carry call ids "<step>/<visit>/m<turn>" and
 * "<step>/<visit>/t<turn>.<n>" (docs/agents.md).
 *
 * Unknown kinds are refused on append (KEEL_EINVAL listing the known ones)
 * but tolerated when reading, so a journal written by a newer Keel still
 * verifies.  Secrets never go into payloads.
 */
#ifndef KEEL_JOURNAL_H
#define KEEL_JOURNAL_H

#include "../json/json.h"
#include "../store/store.h"
#include "../util/util.h"

/* ---- event kinds ------------------------------------------------------- */

enum journal_kind {
    JOURNAL_RUN_STARTED = 0,
    JOURNAL_RUN_WAITING,
    JOURNAL_RUN_RESUMED,
    JOURNAL_RUN_SUCCEEDED,
    JOURNAL_RUN_FAILED,
    JOURNAL_RUN_CANCELLED,
    JOURNAL_RUN_NEEDS_RECONCILE,
    JOURNAL_STEP_STARTED,
    JOURNAL_STEP_COMPLETED,
    JOURNAL_STEP_FAILED,
    JOURNAL_TOOL_CALL_STARTED,
    JOURNAL_TOOL_CALL_COMPLETED,
    JOURNAL_POLICY_DECISION,
    JOURNAL_APPROVAL_REQUESTED,
    JOURNAL_APPROVAL_DECIDED,
    JOURNAL_STATE_UPDATED,
    JOURNAL_TIMER_SET,
    JOURNAL_TIMER_FIRED,
    JOURNAL_SIGNAL_RECEIVED,
    JOURNAL_MODEL_REQUEST,
    JOURNAL_MODEL_RESPONSE,
    JOURNAL_COMPENSATION_STARTED,
    JOURNAL_COMPENSATION_COMPLETED,
    JOURNAL_TOOL_CALL_REFUSED,
    JOURNAL_AGENT_OUTPUT_REJECTED,
    JOURNAL_CONTEXT_SUMMARIZED,
    JOURNAL_AGENT_HANDOFF,
    JOURNAL_BUDGET_EXCEEDED,
    JOURNAL_BUDGET_EXTENDED,
    JOURNAL_KIND_COUNT
};

/* "run.started", ...  NULL for an out-of-range value. */
const char *journal_kind_name(enum journal_kind k);
/* Finds a kind by name; KEEL_EINVAL listing the known kinds otherwise. */
int journal_kind_parse(const char *name, enum journal_kind *out, struct keel_err *err);
/* The payload fields a kind requires (comma-separated, e.g. "step,attempt"),
 * as checked by journal_append; "" if none. */
const char *journal_kind_required(enum journal_kind k);

/* ---- events ------------------------------------------------------------ */

#define JOURNAL_HASH_HEX 64
#define JOURNAL_ACTOR_MAX STORE_ID_MAX
#define JOURNAL_PAYLOAD_MAX (4u * 1024 * 1024) /* canonical payload bytes */

/* The prev_hash of every run's first event: 64 '0' characters. */
extern const char journal_zero_hash[JOURNAL_HASH_HEX + 1];

struct journal_event {
    const char *run_id;
    int64_t seq;
    int64_t time_ms;
    const char *kind;
    const char *actor;
    const char *payload;     /* canonical JSON text (RFC 8785)              */
    size_t payload_len;
    char prev_hash[JOURNAL_HASH_HEX + 1];
    char hash[JOURNAL_HASH_HEX + 1];
};

/* Computes ev's hash (from every field but ev->hash) into out[65], per the
 * format in journal.c.  Fails only for fields that cannot be hashed
 * unambiguously (a newline in run_id, kind or actor; KEEL_EINVAL). */
int journal_event_hash(const struct journal_event *ev, char out[JOURNAL_HASH_HEX + 1],
                       struct keel_err *err);

/* Appends ev as one JSON line (no trailing newline):
 *   {"run","seq","time","at","kind","actor","payload","prev_hash","hash"}
 * "time" is the event's time in ms since the Unix epoch (the value that is
 * hashed), "at" the same as RFC 3339 UTC text for people.  The payload is
 * embedded as JSON (not as a string); a stored payload that does not parse
 * (a damaged row) is written as "payload":null plus "payload_invalid":
 * "<the text>", so the line stays valid JSON. */
void journal_event_to_json(const struct journal_event *ev, struct buf *out);

/* ---- writing ----------------------------------------------------------- */

struct journal_writer;

/* Opens a writer for run_id: reads the run's tail from s.  Returns a new
 * writer in *out; free with journal_writer_free().  Use one writer per run at
 * a time (from one thread at a time). */
int journal_writer_open(struct store *s, const char *run_id, struct journal_writer **out,
                        struct keel_err *err);
void journal_writer_free(struct journal_writer *w);
/* A writer for a run the caller knows has no events yet (it just created
 * it): no tail is read.  Should the run have events after all, the first
 * append fails with KEEL_ESTATE (the store checks continuity). */
int journal_writer_new(struct store *s, const char *run_id, struct journal_writer **out,
                       struct keel_err *err);

/* The run's last seq (0 if none) and its hash, as the writer knows them. */
int64_t journal_writer_seq(const struct journal_writer *w);
const char *journal_writer_hash(const struct journal_writer *w);

/* What an append produced. */
struct journal_appended {
    int64_t seq;
    int64_t time_ms;
    char hash[JOURNAL_HASH_HEX + 1];
};

/* Appends one event and returns once it is durable.  kind must be a known
 * kind whose required payload fields are present; actor is an identity
 * ("agent:team/name", "human:alice", "system"); payload must be an object
 * (NULL means {}); time_ms 0 means now.  out may be NULL.  If the store
 * refuses the seq (another writer appended), fails with KEEL_ESTATE and the
 * writer must be reopened. */
int journal_writer_append(struct journal_writer *w, const char *kind, const char *actor,
                          const struct json_value *payload, int64_t time_ms,
                          struct journal_appended *out, struct keel_err *err);

/* The same with the payload already as JSON text (it is parsed, checked and
 * re-written canonically). */
int journal_writer_append_text(struct journal_writer *w, const char *kind, const char *actor,
                               const char *payload_json, size_t len, int64_t time_ms,
                               struct journal_appended *out, struct keel_err *err);

/* Pipelined form: builds the event now (its seq follows the previous one),
 * queues it and returns; done(ctx, rc, appended, err) runs on the store's
 * committer thread once it is durable or failed (keep it short; it may
 * append asynchronously again, as the next step of a run would, but not
 * synchronously).  If one
 * fails, every later queued event of this writer fails too (the store sees
 * a gap), and the writer must be reopened.  (A batch of one: see below.) */
typedef void (*journal_done_fn)(void *ctx, int rc, const struct journal_appended *appended,
                                const struct keel_err *err);
int journal_writer_append_async(struct journal_writer *w, const char *kind, const char *actor,
                                const struct json_value *payload, int64_t time_ms,
                                journal_done_fn done, void *ctx, struct keel_err *err);

/* Batches: several events of one run built now (each chained onto the
 * previous, the writer's tail advanced) and queued later as ONE atomic
 * request, with one completion.  journal_batch_add creates *bp on first
 * use and fills *ev (may be NULL) with the event as built — seq, time,
 * canonical payload, hashes; strings in arena a — so the caller can fold
 * exactly what the journal will hold without reading it back.
 * journal_batch_submit queues the batch (NULL: nothing to do) and takes it
 * over: done(ctx, ...) runs once, for all its events, with the last one's
 * seq and hash; if it cannot be queued it is freed, the writer's tail is
 * put back, and done does not run.  journal_batch_discard drops a batch
 * never submitted and puts the writer's tail back.  Until submitted, no
 * other append may go through the writer. */
struct journal_batch;
int journal_batch_add(struct journal_writer *w, struct journal_batch **bp, const char *kind,
                      const char *actor, const struct json_value *payload, int64_t time_ms,
                      struct arena *a, struct journal_event *ev, struct keel_err *err);
size_t journal_batch_len(const struct journal_batch *bt);
int journal_batch_submit(struct journal_batch *bt, journal_done_fn done, void *ctx,
                         struct keel_err *err);
/* The same through store_append_eager: committed at once on this thread
 * (done runs before it returns) when the store is idle, else queued. */
int journal_batch_submit_eager(struct journal_batch *bt, journal_done_fn done, void *ctx,
                               struct keel_err *err);
void journal_batch_discard(struct journal_batch *bt);

/* Convenience for one-off appends: reads the tail from the store, appends,
 * and retries once with a fresh tail if another writer won the race. */
int journal_append(struct store *s, const char *run_id, const char *kind, const char *actor,
                   const struct json_value *payload, struct journal_appended *out,
                   struct keel_err *err);

/* ---- reading ----------------------------------------------------------- */

/* Calls fn for every event of run_id with seq >= from_seq (1: all), in
 * order.  The event is borrowed for the call; a non-zero return from fn stops
 * the read and is returned. */
typedef int (*journal_event_fn)(void *ctx, const struct journal_event *ev);
int journal_read(struct store *s, const char *run_id, int64_t from_seq, journal_event_fn fn,
                 void *ctx, struct keel_err *err);

/* Appends the journal of run_id to out as JSONL (one journal_event_to_json
 * line per event, each ending in "\n").  KEEL_ENOENT if the run has no
 * events. */
int journal_write_jsonl(struct store *s, const char *run_id, struct buf *out,
                        struct keel_err *err);

struct journal_verify_report {
    bool ok;                          /* every hash and link checks out          */
    int64_t events;                   /* events examined                          */
    int64_t first_bad_seq;            /* 0 if ok                                  */
    char reason[256];                 /* what is wrong at first_bad_seq           */
    char last_hash[JOURNAL_HASH_HEX + 1]; /* hash of the last good event (head)  */
};

/* Recomputes every hash of run_id's journal and checks the links (seq
 * 1, 2, 3, ... ; prev_hash = previous hash; hash = recomputed).  Returns 0
 * when the check could be done — then report->ok says whether the chain is
 * intact and, if not, the first broken seq and why; KEEL_ENOENT if the run
 * has no events; another code if reading failed. */
int journal_verify(struct store *s, const char *run_id, struct journal_verify_report *report,
                   struct keel_err *err);

/* ---- state: reducers and fold ------------------------------------------ */

/* Same order and meaning as enum workflow_reducer (workflow.h), so the
 * engine may convert with a cast. */
enum journal_reducer {
    JOURNAL_REDUCE_REPLACE = 0, /* new value replaces the old                        */
    JOURNAL_REDUCE_APPEND,      /* old is an array (absent: []): push the value; an
                                   array value appends each of its items           */
    JOURNAL_REDUCE_MERGE,       /* both objects (absent: {}): shallow merge, new keys win */
    JOURNAL_REDUCE_ADD,         /* both numbers (absent: 0): sum                     */
    JOURNAL_REDUCE_COUNT
};
const char *journal_reducer_name(enum journal_reducer r);
int journal_reducer_parse(const char *name, enum journal_reducer *out, struct keel_err *err);

struct journal_state_key {
    const char *key;
    enum journal_reducer reducer;
    const struct json_value *initial; /* value before any update, or NULL (absent) */
};

struct journal_reducers {
    const struct journal_state_key *keys;
    size_t n;
    enum journal_reducer fallback; /* for keys not declared (REPLACE if zeroed) */
};

/* The state before any event: an object with each declared initial value
 * (in arena a). */
struct json_value *journal_state_initial(const struct journal_reducers *r, struct arena *a);

/* Applies one event to state (an object, modified in place; new values in
 * arena a).  Only state.updated events change state; others are ignored.
 * A state.updated payload is {key, value, reducer?}: the reducer named in
 * the payload wins (it records what the writer applied), else the key's
 * declared reducer, else r->fallback.  Type mismatches (merge into a
 * non-object, add to a non-number) fail with KEEL_EINVAL naming the seq. */
int journal_fold_event(const struct journal_reducers *r, struct arena *a,
                       struct json_value *state, const struct journal_event *ev,
                       struct keel_err *err);

/* Folds events[0..n) onto initial (NULL: journal_state_initial) and returns
 * the result in *state (arena a).  The inputs are not modified. */
int journal_fold(const struct journal_reducers *r, const struct journal_event *events, size_t n,
                 const struct json_value *initial, struct arena *a, struct json_value **state,
                 struct keel_err *err);

struct journal_state_opts {
    int64_t upto_seq;       /* fold events up to this seq; 0: all             */
    int64_t snapshot_every; /* write a snapshot when at least this many events
                               were folded past the last one; 0: 100, <0: never */
    bool no_snapshots;      /* fold from scratch, ignoring stored snapshots   */
};

/* The run's state: loads the latest snapshot (seq <= upto_seq), folds the
 * events after it, and writes a new snapshot if snapshot_every events were
 * folded.  *state in arena a; *at_seq (may be NULL) gets the last seq folded.
 * opts may be NULL. */
int journal_state(struct store *s, const char *run_id, const struct journal_reducers *r,
                  const struct journal_state_opts *opts, struct arena *a,
                  struct json_value **state, int64_t *at_seq, struct keel_err *err);

/* Writes a snapshot of the run's current state (folded with r). */
int journal_snapshot(struct store *s, const char *run_id, const struct journal_reducers *r,
                     struct keel_err *err);

#endif
