/*
 * internal.h — what the engine's files share: the engine object, the view
 * of a run folded from its journal (fold.c), and the step executors
 * (step.c).  Not included outside engine/.
 */
#ifndef KEEL_ENGINE_INTERNAL_H
#define KEEL_ENGINE_INTERNAL_H

#include <pthread.h>

#include "../approval/approval.h"
#include "../journal/journal.h"
#include "../mcp/mcp.h"
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
    char config_path[2048];  /* "" when there is no keel.yaml */
    /* keel.yaml and the identities built from it.  A reload swaps both
     * (under lock) and keeps the old ones until engine_stop, since API
     * threads may still hold pointers into them. */
    struct keel_config *cfg; /* NULL when there is no keel.yaml */
    struct identity_set *ids;
    void **old_cfgs; /* struct keel_config *   */
    size_t nold_cfgs;
    void **old_ids;  /* struct identity_set *  */
    size_t nold_ids;
    struct store *store;
    struct mcp_pool *pool;

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
    void **retired; /* struct policy_set * */
    size_t nretired;
    struct strmap tools; /* "server/tool" -> struct engine_tool_schemas */
    /* Runnable queue: a ring of run ids. */
    char (*queue)[ENGINE_ID_MAX];
    size_t qhead, qlen, qcap;
    struct strmap queued; /* run id -> (void*)1 while in the queue        */
    struct strmap busy;   /* run id -> (void*)1 or 2 (2: re-queue after)  */
    struct strmap recover; /* run id -> 1 while a "<run>/recover" timer is set */

    pthread_t *workers;
    int nworkers;
    pthread_t timer_thread;
    bool timer_started;
};

/* Queue a run (no-op if queued; re-queued after if a worker holds it). */
void engine_enqueue(struct engine *e, const char *run_id);

/* Finds the workflow version (name, hash), loading it from the store if it
 * is not in memory.  Borrowed while e lives. */
int engine_workflow_get(struct engine *e, const char *name, const char *hash,
                        struct engine_workflow **out, struct keel_err *err);
/* The current version of name. */
struct engine_workflow *engine_workflow_current(struct engine *e, const char *name);

/* The policy set in force and its hash (borrowed; valid until
 * engine_stop). */
struct policy_set *engine_policies(struct engine *e, char hash[65]);

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

struct run_view {
    const char *run_id;
    struct arena *arena;
    int64_t events;
    /* final outcome, if the journal has one */
    bool final;
    enum engine_run_status status; /* from the journal */
    /* position */
    const char *step;         /* step id the run is in or last completed  */
    bool in_step;             /* step.started seen, no completed/failed   */
    int attempt;              /* attempt of the current/last step          */
    int visit;                /* 0 for the first visit of that step, ...   */
    struct visit_count *visits; /* per step, in arena                    */
    const char *next_step;    /* from the last step.completed ("" = end)   */
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
    const char *wait_id;   /* approval or timer id */
    int64_t wait_until;    /* 0: none */
    /* approvals decided within the current step */
    const char *approval_id; /* requested in the current step, or NULL */
    const char *approval_decision; /* "approved" | "denied" | "expired" | NULL */
    const char *approval_by;
    const char *approval_comment;
    /* state */
    struct json_value *state;
    const char *error_message; /* run.failed message */
};

/* Reads run_id's journal and folds it into *v (values in arena a); state is
 * folded with wf's reducers. */
int engine_fold(struct engine *e, const char *run_id, const struct workflow *wf, struct arena *a,
                struct run_view *v, struct keel_err *err);

/* Records that step starts attempt `attempt` in v (the same rule the fold
 * applies to step.started) and sets v->visit. */
void engine_view_visit(struct run_view *v, const char *step, int attempt);

/* ---- step execution (step.c) ------------------------------------------- */

/* The context of one transition of one run (one worker, one run). */
struct run_ctx {
    struct engine *e;
    struct store_run run;
    struct engine_workflow *ew;
    struct journal_writer *w;
    struct run_view view;
    struct json_value *input;
    struct arena *arena;
    char agent_actor[IDENTITY_NAME_MAX + 16]; /* "agent:<identity>" or "system" */
};

/* Journals one event (actor NULL: "system"). */
int engine_journal(struct run_ctx *c, const char *kind, const char *actor,
                   struct json_value *payload, struct keel_err *err);

/* Advances the run by one transition.  Returns 1 if the run is still
 * runnable (queue it again), 0 if it is parked or final. */
int engine_step(struct run_ctx *c, struct keel_err *err);

/* Ends the run: journals the final event and sets the store status. */
int engine_finish(struct run_ctx *c, enum engine_run_status st, const char *kind,
                  struct json_value *payload, const char *actor, struct keel_err *err);

#endif
