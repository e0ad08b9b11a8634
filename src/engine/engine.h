/*
 * engine.h — the run engine: runs workflows step by step on a worker pool,
 * journals every transition before its effect, parks runs that wait
 * (approval, timer) without holding a thread, and resumes unfinished runs
 * after a crash.  docs/engine.md explains the lifecycle and resume rules;
 * engine.c's opening comment holds the state machine.
 *
 * The HTTP API (src/api/) and the CLI reach the engine only through this
 * header.  Functions that answer a query build JSON values in a
 * caller-supplied arena (freed with it) in the shapes docs/api.md shows.
 */
#ifndef KEEL_ENGINE_H
#define KEEL_ENGINE_H

#include "../identity/identity.h"
#include "../store/store.h"
#include "../json/json.h"
#include "../util/util.h"

struct engine;

/* Run statuses (stable strings, in the API and the journal). */
enum engine_run_status {
    RUN_RUNNING = 0,
    RUN_WAITING,
    RUN_SUCCEEDED,
    RUN_FAILED,
    RUN_CANCELLED,
    RUN_NEEDS_RECONCILE,
};
const char *engine_status_name(enum engine_run_status s);

struct engine_opts {
    const char *data_dir;    /* required; created if missing                       */
    const char *config_path; /* keel.yaml; NULL means DATA/keel.yaml if it exists   */
    int workers;             /* worker threads; 0 means 4                          */
};

/* Opens the store in data_dir, loads keel.yaml (agents, tool servers,
 * approvers, workflows, policies), creates the admin token at first start,
 * and starts the worker pool and the timer thread.  Every unfinished run is
 * made runnable again (resume).  Returns a new engine in *out; free with
 * engine_stop(). */
int engine_start(const struct engine_opts *opts, struct engine **out, struct keel_err *err);

/* Stops the workers (each finishes the transition it is in) and frees e.
 * Runs stay in the store and resume at the next engine_start. */
void engine_stop(struct engine *e);

/* The identities declared for this engine (borrowed, valid until
 * engine_stop or the next engine_reload). */
const struct identity_set *engine_identities(struct engine *e);

/* Reloads keel.yaml (agents, approvers and their tokens), workflows and
 * policies without dropping runs; if anything fails to load the reload is
 * refused and the running set stays.  Tool servers are not restarted. */
int engine_reload(struct engine *e, struct keel_err *err);

/* Starts a run of workflow with input (validated against the workflow's
 * input schema).  Writes the new run id (cap >= 64) into run_id.  actor is
 * who asked (borrowed). */
int engine_run_start(struct engine *e, const char *workflow, const struct json_value *input,
                     const struct identity *actor, char *run_id, size_t cap,
                     struct keel_err *err);

/* Runs, newest first: [{id, workflow, status, created, updated, step}],
 * at most limit (capped at 1000). */
int engine_run_list(struct engine *e, int limit, struct arena *a, struct json_value **out,
                    struct keel_err *err);

/* One run: {id, workflow, status, input, state, step, error, created, updated}. */
int engine_run_show(struct engine *e, const char *run_id, struct arena *a,
                    struct json_value **out, struct keel_err *err);

/* Waits until the run is no longer running (waiting, or ended; with
 * final_only: ended) or timeout_ms passed, on the engine's condition
 * variable (woken after every transition).  *status (may be NULL) gets the
 * status then.  KEEL_ENOENT for an unknown run; a timeout is not an error. */
int engine_run_wait(struct engine *e, const char *run_id, int64_t timeout_ms, bool final_only,
                    enum engine_run_status *status, struct keel_err *err);

/* A human's answer to a needs_reconcile run (docs/engine.md, "Reconcile"):
 * done (the effect happened; result, may be NULL, is recorded as the call's
 * result) or not done (the call is recorded as failed and the step's retry
 * policy decides).  Journaled as actor, then the run is runnable again.
 * KEEL_ESTATE if the run does not need reconciliation. */
int engine_run_reconcile(struct engine *e, const char *run_id, const struct identity *actor,
                         bool done, const struct json_value *result, const char *comment,
                         struct keel_err *err);

/* Asks a run to stop.  KEEL_ESTATE if it already ended. */
int engine_run_cancel(struct engine *e, const char *run_id, const struct identity *actor,
                      struct keel_err *err);

/* The run's journal from seq from_seq on (1: all), at most limit events
 * (0: all): [{seq, time, kind, actor, payload, prev_hash, hash}]. */
int engine_run_events(struct engine *e, const char *run_id, int64_t from_seq, int64_t limit,
                      struct arena *a, struct json_value **out, struct keel_err *err);

/* Verifies the run's hash chain: {run, events, ok, head, error?}.  A broken
 * chain is reported in the value (ok false), not as a failure. */
int engine_run_verify(struct engine *e, const char *run_id, struct arena *a,
                      struct json_value **out, struct keel_err *err);

/* Approvals, oldest first, in the shape of approval_to_json.  pending_only
 * limits to undecided ones; a human viewer (may be NULL: everything) sees
 * only the approvals of their groups. */
int engine_approval_list(struct engine *e, bool pending_only, const struct identity *viewer,
                         struct arena *a, struct json_value **out, struct keel_err *err);

/* Records a human decision.  The actor must be a human of the approval's
 * group (KEEL_EDENIED otherwise) or the admin; a decided or expired
 * approval is KEEL_ESTATE. */
int engine_approval_decide(struct engine *e, const char *approval_id, const struct identity *actor,
                           bool approve, const char *comment, struct keel_err *err);

/* The explain report of a run (docs/explain.md): {summary, timeline, ...}
 * built from its journal and workflow version by src/obs/, with the
 * timeline's visits [from, from + limit) (limit 0: OBS_PAGE_DEFAULT; see
 * obs_explain_page).  KEEL_ENOENT for an unknown run. */
int engine_run_explain(struct engine *e, const char *run_id, uint32_t from, uint32_t limit,
                       struct arena *a, struct json_value **out, struct keel_err *err);

/* Workflows known to the engine: [{name, steps, file}]. */
int engine_workflow_list(struct engine *e, struct arena *a, struct json_value **out,
                         struct keel_err *err);

/* The idempotency key of call `index` of step `step` of run `run`:
 * sha256_hex("<run>/<step>/<index>"), where index is the visit of the step
 * (0, or more when a switch loops back to it).  Independent of the attempt,
 * so a retry after a crash sends the same key (docs/engine.md). */
void engine_idempotency_key(const char *run, const char *step, int index, char out[65]);

/* ---- usage across runs (usage.c) ---------------------------------------- */

/* A usage query: model calls whose model.response event time t satisfies
 * since_ms <= t < until_ms, of runs of `workflow`, made by `agent`. */
struct engine_usage_query {
    int64_t since_ms;     /* window start (inclusive); 0: the beginning      */
    int64_t until_ms;     /* window end (exclusive); 0: now                  */
    const char *workflow; /* workflow name; NULL: every workflow             */
    const char *agent;    /* "team/name" (or "agent:team/name"); NULL: all   */
};

/* Model usage summed across runs (docs/api.md, GET /v1/usage):
 * {since, until, workflow?, agent?, runs, model_calls, input_tokens,
 *  output_tokens, cost_usd, by_workflow: [{workflow, runs, model_calls,
 *  input_tokens, output_tokens, cost_usd}], by_agent: [{agent, ...}],
 *  by_model: [{model, ...}]}, each list by cost descending.  "runs" counts
 * runs with at least one counted call.  Built in arena a (freed with it).
 * KEEL_EINVAL for a bad query (since after until, oversize names). */
int engine_usage(struct engine *e, const struct engine_usage_query *q, struct arena *a,
                 struct json_value **out, struct keel_err *err);

/* Parses a time bound of a usage query into ms since the epoch: an RFC 3339
 * time ("2026-11-20T08:00:00Z", "...+01:00", fractions allowed), a date
 * ("2026-11-20", midnight UTC), "now", or a duration before now_ms ("-7d",
 * "7d", "36h", "1h30m"; clamped at the epoch).  KEEL_EINVAL with an example
 * of each form otherwise. */
int engine_usage_time(const char *text, int64_t now_ms, int64_t *out_ms, struct keel_err *err);

/* The store's counters (group commits, events, time in commits), for
 * benchmarks and diagnostics. */
void engine_store_stats(struct engine *e, struct store_stats *out);

/* The engine's own counters, for tests, benchmarks and diagnostics. */
struct engine_stats {
    uint64_t folds;       /* runs loaded by folding their journal from event 1
                             (a resume, or a context dropped since)           */
    uint64_t compactions; /* kept contexts copied into a fresh arena           */
    uint64_t append_failures; /* requests the store failed (their runs are
                                 reloaded from their journals)            */
    uint64_t memory_retries;  /* transitions that failed on the store, their
                                 runs kept in memory to be tried again 1 s
                                 later (no timer row: the store may be the
                                 thing failing)                             */
    uint64_t parked;      /* transitions whose events were built while the
                             run's previous request was in flight (queued by
                             its completion: docs/engine.md, pipelining)     */
};
void engine_get_stats(struct engine *e, struct engine_stats *out);

#endif
