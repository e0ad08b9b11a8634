/*
 * internal.h — what the engine's files share: the engine object, the view
 * of a run folded from its journal (fold.c), and the step executors
 * (step.c).  Not included outside engine/.
 */
#ifndef KEEL_ENGINE_INTERNAL_H
#define KEEL_ENGINE_INTERNAL_H

#include <pthread.h>

#include "../agent/agent.h"
#include "../approval/approval.h"
#include "../journal/journal.h"
#include "../mcp/mcp.h"
#include "../model/model.h"
#include "../policy/policy.h"
#include "../schema/schema.h"
#include "../store/store.h"
#include "../workflow/workflow.h"
#include "engine.h"

#define ENGINE_QUEUE_MAX 100000 /* runnable runs queued at once */
#define ENGINE_ID_MAX 128

/* One loaded workflow version (by content hash). */
struct engine_workflow {
    struct workflow *wf;
    struct schema *input_schema; /* compiled "input:", or NULL */
    bool current;                /* the version in workflows_dir now */
    struct engine_workflow *next;
};

/* A compiled tool schema, cached by "server/tool". */
struct engine_tool_schemas {
    struct schema *input;
    struct schema *output; /* or NULL */
    bool idempotent;
};

struct engine {
    char data_dir[2048];
    char config_path[2048]; /* "" when there is no keel.yaml */
    /* keel.yaml and the identities built from it.  A reload swaps both
     * (under lock) and keeps the old ones until engine_stop, since API
     * threads may still hold pointers into them. */
    struct keel_config *cfg; /* NULL when there is no keel.yaml */
    struct identity_set *ids;
    void **old_cfgs; /* struct keel_config *   */
    size_t nold_cfgs;
    void **old_ids; /* struct identity_set *  */
    size_t nold_ids;
    struct store *store;
    struct mcp_pool *pool;
    struct model_gateway *models; /* built from keel.yaml's models:; a reload
                                     retires the old one into old_models */
    void **old_models;
    size_t nold_models;

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t work;  /* a run became runnable, or stopping        */
    pthread_cond_t timer; /* a timer was set, or stopping              */
    pthread_cond_t done;  /* a run finished a transition               */
    bool stopping;
    struct engine_workflow *workflows;
    /* The policy set in force, and the sets replaced by reloads (kept until
     * engine_stop, since a worker may still be reading one). */
    struct policy_set *policies;
    char policy_hash[65]; /* policy_set_hash of policies, computed at load */
    void **retired;       /* struct policy_set * */
    size_t nretired;
    struct strmap tools; /* "server/tool" -> struct engine_tool_schemas */
    /* Runnable queue: a ring of run ids. */
    char (*queue)[ENGINE_ID_MAX];
    size_t qhead, qlen, qcap;
    struct strmap queued;   /* run id -> (void*)1 while in the queue        */
    struct strmap busy;     /* run id -> (void*)1 or 2 (2: re-queue after)  */
    struct strmap retry;    /* run id -> malloc'd int64_t due ms: a run whose
                               transition failed on the store, to try again
                               (the timer thread queues it)               */
    struct strmap slots;    /* run id -> struct engine_slot * (kept contexts) */
    pthread_cond_t durable; /* a slot's deferred appends all completed      */
    uint64_t cancel_gen;    /* bumped by each cancel request                 */
    bool check_view;        /* KEEL_CHECK_VIEW=1: refold after each transition
                               and compare with the kept view (tests)       */
    uint64_t folds;         /* journals folded from event 1 (slot loads)     */
    uint64_t compactions;   /* kept contexts copied into a fresh arena       */
    uint64_t parked;        /* requests parked behind a run's previous one   */
    uint64_t append_failures; /* requests the store failed                   */
    uint64_t memory_retries;  /* retries after a store failure (in memory)   */

    pthread_t *workers;
    int nworkers;
    pthread_t timer_thread;
    bool timer_started;
};

/* Queue a run (no-op if queued; re-queued after if a worker holds it). */
void engine_enqueue(struct engine *e, const char *run_id);

/* worker.c: the worker and timer threads' bodies (arg: the engine), a new
 * run's kept context (journals run.started and queues the run), and freeing
 * the kept contexts at stop (after the store is closed). */
void *engine_worker_main(void *arg);
void *engine_timer_main(void *arg);
struct store_run;
int engine_slot_start(struct engine *e, struct engine_workflow *ew, const struct store_run *run,
                      const struct json_value *input, const char *who, struct keel_err *err);
void engine_slots_free(struct engine *e);

/* Finds the workflow version (name, hash), loading it from the store if it
 * is not in memory.  Borrowed while e lives. */
int engine_workflow_get(struct engine *e, const char *name, const char *hash,
                        struct engine_workflow **out, struct keel_err *err);
/* The current version of name. */
struct engine_workflow *engine_workflow_current(struct engine *e, const char *name);

/* The policy set in force and its hash (borrowed; valid until
 * engine_stop). */
struct policy_set *engine_policies(struct engine *e, char hash[65]);

/* The model gateway in force (borrowed; valid until engine_stop). */
struct model_gateway *engine_models(struct engine *e);

/* Compiled schemas and idempotency of "server/tool" (cached). */
int engine_tool_info(struct engine *e, const char *qualified, struct engine_tool_schemas **out,
                     struct keel_err *err);

/* ---- the fold: where a run is (fold.c) --------------------------------- */

enum view_wait { WAIT_NONE = 0, WAIT_APPROVAL, WAIT_TIMER };

/* How many visits (first attempts) each step had, folded from the journal. */
struct visit_count {
    const char *step;
    int n;
    struct visit_count *next;
};

/* Model usage of one agent within the run (from model.response events). */
struct agent_usage {
    const char *agent;
    int64_t tokens; /* input + output */
    double usd;
    int extensions; /* budget.extended for scope "agent" */
    struct agent_usage *next;
};

struct run_view {
    const char *run_id;
    struct arena *arena;
    const struct workflow *wf;   /* the version folded against          */
    struct journal_reducers red; /* its state keys' reducers            */
    int64_t events;
    /* final outcome, if the journal has one */
    bool final;
    enum engine_run_status status; /* from the journal */
    /* position */
    const char *step;               /* step id the run is in or last completed  */
    bool in_step;                   /* step.started seen, no completed/failed   */
    int attempt;                    /* attempt of the current/last step          */
    int visit;                      /* 0 for the first visit of that step, ...   */
    int *visit_n;                   /* visits per step of wf (by index)          */
    struct visit_count *visits;     /* per step not in wf, in arena            */
    const char *next_step;          /* from the last step.completed ("" = end)   */
    struct json_value *last_result; /* result of the last completed step, the
                                       `result` of templates and conditions */
    bool have_next;
    /* tool call in flight */
    bool call_open;
    const char *call_key;
    const char *call_id;
    struct json_value *call_args;
    /* the last tool result of the current step */
    bool call_done;
    struct json_value *call_result;
    struct json_value *call_error;
    /* waiting */
    enum view_wait wait;
    const char *wait_id; /* approval or timer id */
    int64_t wait_until;  /* 0: none */
    /* approvals decided within the current step */
    const char *approval_id;       /* requested in the current step, or NULL */
    const char *approval_decision; /* "approved" | "denied" | "expired" | NULL */
    const char *approval_by;
    const char *approval_comment;
    /* the events of the current visit of an agent step (agent/agent.h) */
    struct agent_event *visit_events;
    size_t nvisit_events, capvisit_events;
    bool capture; /* the current step is an agent step */
    /* model usage of the whole run, and budget extensions */
    int64_t tokens;
    double usd;
    int run_extensions;
    struct agent_usage *usage; /* per agent */
    /* state */
    struct json_value *state;
    const char *error_message; /* run.failed message */
};

/* Reads run_id's journal and folds it into *v (values in arena a); state is
 * folded with wf's reducers. */
int engine_fold(struct engine *e, const char *run_id, const struct workflow *wf, struct arena *a,
                struct run_view *v, struct keel_err *err);

/* The view of a run with no events (what engine_fold starts from). */
void engine_view_init(struct run_view *v, const char *run_id, const struct workflow *wf,
                      struct arena *a);
/* Folds one more event into v, exactly as engine_fold would have (the
 * engine applies each event it appends, so a view kept between
 * transitions stays equal to the fold of the journal). */
int engine_view_apply(struct run_view *v, const struct journal_event *ev, struct keel_err *err);

/* The first field in which two views differ ("state", "visit", ...), or
 * NULL if they agree (engine.c's self-check, KEEL_CHECK_VIEW). */
const char *engine_view_diff(const struct run_view *a, const struct run_view *b);

/* Records that step starts attempt `attempt` in v (the same rule the fold
 * applies to step.started) and sets v->visit. */
void engine_view_visit(struct run_view *v, const char *step, int attempt);
/* Everything the fold does at step.started (the visit, and which events an
 * agent step collects); the engine calls it for the step.started it just
 * journaled. */
void engine_view_step_started(struct run_view *v, const struct workflow *wf, const char *step,
                              int attempt);

/* ---- step execution (step.c) ------------------------------------------- */

struct engine_slot;

/* The context of one transition of one run (one worker, one run).  Kept in
 * the run's slot between transitions (engine.c), with the view up to date:
 * every event the engine appends is folded into it as it is appended. */
struct run_ctx {
    struct engine *e;
    struct engine_slot *slot; /* the slot holding this context              */
    struct store_run run;
    struct engine_workflow *ew;
    struct journal_writer *w;
    struct run_view view;
    struct json_value *input;
    struct arena *arena;
    char agent_actor[IDENTITY_NAME_MAX + 16]; /* "agent:<identity>" or "system" */
};

/* Journals one event (actor NULL: "system") and returns once it — and every
 * event of the run before it — is durable; folds it into c->view. */
int engine_journal(struct run_ctx *c, const char *kind, const char *actor,
                   struct json_value *payload, struct keel_err *err);
/* The same, but returns once the event is queued: for events after which
 * the transition makes no effect (a tool or model call, a row others see)
 * before it ends or journals synchronously.  The worker releases the run
 * only when they are durable, so the next transition still starts from a
 * durable journal. */
int engine_journal_deferred(struct run_ctx *c, const char *kind, const char *actor,
                            struct json_value *payload, struct keel_err *err);
/* Queues the transition's deferred events (one request; the slot counts it
 * in flight until it is durable). */
int engine_flush(struct run_ctx *c, struct keel_err *err);
/* Queues them and waits until every deferred event of the run is durable
 * (before an effect); KEEL_EIO if one failed (the effect must not happen). */
int engine_barrier(struct run_ctx *c, struct keel_err *err);
/* A run's context kept between transitions, and its deferred appends. */
struct engine_slot {
    char id[ENGINE_ID_MAX];
    struct arena arena;
    size_t compact_at; /* arena.total past which it is compacted (worker.c) */
    struct run_ctx c;
    bool loaded;                 /* c holds the run's row, writer, input and view  */
    uint64_t cancel_gen;         /* e->cancel_gen when cancel/<run> was looked up   */
    struct journal_batch *batch; /* deferred events not yet queued          */
    /* Guarded by e->lock. */
    int inflight; /* requests queued and not yet durable, plus parked */
    struct journal_batch *parked; /* a transition's events built while the
                                     run's previous request was in flight;
                                     queued by that request's completion */
    bool failed;  /* one failed: c is ahead of the journal; reload   */
    bool release; /* the transition ended while appends were queued  */
    int outcome;  /* what the transition returned, for the release   */
};

/* Advances the run by one transition.  Returns 1 if the run is still
 * runnable (queue it again), 0 if it is parked or final. */
int engine_step(struct run_ctx *c, struct keel_err *err);

/* ---- shared by the step executors (step.c, agent_step.c) -------------- */

/* Payload builders: key k of object o gets s / i / v (values in arena a);
 * a NULL string or value leaves the key out. */
static inline void jset_s(struct arena *a, struct json_value *o, const char *k, const char *s)
{
    if (s) json_object_setc(a, o, k, json_cstr(a, s));
}
static inline void jset_i(struct arena *a, struct json_value *o, const char *k, int64_t i)
{
    json_object_setc(a, o, k, json_int(a, i));
}
static inline void jset_v(struct arena *a, struct json_value *o, const char *k,
                          struct json_value *v)
{
    if (v) json_object_setc(a, o, k, v);
}

struct json_value *engine_error_obj(struct run_ctx *c, int code, const char *msg);

/* A step attempt failed: retry after the backoff if attempts remain and
 * the failure is retryable, else fail the run. */
int engine_step_failed(struct run_ctx *c, const struct workflow_step *s, int code, const char *msg,
                       bool retryable, struct keel_err *err);

/* Reduces result into the step's save key, then journals step.completed. */
int engine_complete(struct run_ctx *c, const struct workflow_step *s, struct json_value *result,
                    int next, struct keel_err *err);

/* What an approval request is bound to (docs/engine.md, "Approvals"). */
struct approval_binding {
    const char *group;
    int64_t timeout_ms;         /* 0: waits forever */
    struct json_value *message; /* or NULL */
    const char *agent;          /* acting agent, or NULL: the workflow's identity */
    const char *tool;           /* "server/tool" for a policy approval, or NULL */
    const char *args_digest;    /* json_digest of the arguments (or the run input) */
    struct json_value *args;    /* the arguments themselves, shown to the approver, or NULL */
    const char *policy_hash;    /* the policy set version, or NULL */
    const char *policies;       /* ids of the permits that asked for it, or NULL */
    const char *key;            /* approval id key: NULL for (step, visit, attempt),
                                   else approval_id_for(run, key, 0, 1) (agent calls) */
};
void engine_approval_id(struct run_ctx *c, const struct workflow_step *s,
                        const struct approval_binding *b, char out[APPROVAL_ID_MAX]);
int engine_park_for_approval(struct run_ctx *c, const struct workflow_step *s,
                             const struct approval_binding *b, struct keel_err *err);
/* Does approval approval_id hold for this call: the same tool, argument
 * digest and policy set version it was asked for?  1 yes, 0 no, negative on
 * a store error. */
int engine_approval_binds(struct run_ctx *c, const char *approval_id, const char *tool,
                          const char *args_digest, const char *policy_hash, struct keel_err *err);

enum verdict { VERDICT_DENY, VERDICT_ALLOW, VERDICT_APPROVAL };

/* Authorizes agent calling server/tool (qualified) with args under the
 * policy set in force and journals policy.decision (with call_id if not
 * NULL).  extra (may be NULL) is merged into the Cedar context.  With an
 * approval verdict, *approval_ms is how long the human has: the shortest
 * @approval_timeout of the permits that asked, else 24 hours. */
int engine_authorize(struct run_ctx *c, const struct workflow_step *s, const char *agent,
                     const char *server, const char *qualified, const char *call_id,
                     struct json_value *args, struct json_value *extra, enum verdict *out,
                     const char **group, const char **policy_ids, char policy_hash[65],
                     int64_t *approval_ms, struct keel_err *err);

/* Validates v against sc; on failure a message naming what, the tool and
 * the first error's location. */
int engine_validate(const struct schema *sc, const struct json_value *v, const char *what,
                    const char *qualified, struct keel_err *err);

/* Journals tool.call.completed payload p {.., result?, error?} as actor.  A
 * result too large for the journal is replaced by an ELIMIT error (so the
 * run fails cleanly instead of retrying the append); *result and *error are
 * updated to what was journaled. */
int engine_journal_call_completed(struct run_ctx *c, const char *actor, struct json_value *p,
                                  struct json_value **result, struct json_value **error,
                                  struct keel_err *err);

/* Parks the run as needs_reconcile for the open call call_id of tool (agent
 * may be NULL): a call to a tool not declared idempotent started and no
 * result was recorded. */
int engine_needs_reconcile(struct run_ctx *c, const struct workflow_step *s, const char *call_id,
                           const char *tool, const char *agent, struct keel_err *err);

/* The agent step (agent_step.c). */
int engine_exec_agent(struct run_ctx *c, const struct workflow_step *s, struct keel_err *err);

/* Ends the run: journals the final event and sets the store status. */
int engine_finish(struct run_ctx *c, enum engine_run_status st, const char *kind,
                  struct json_value *payload, const char *actor, struct keel_err *err);

#endif
