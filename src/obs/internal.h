/*
 * internal.h — what the explain files of src/obs/ share and nothing outside
 * may include (other parts include obs.h).
 *
 * The report is built in one pass over the journal (explain.c) that hands
 * each event to its kind's handler (explain_events.c, explain_agent.c).
 * The handlers fill one struct ctx: the folded state, the open step visit,
 * the provenance of every state key (explain_prov.c) and the counters of
 * the summary.  Values of unbounded size enter the report through obs_clip
 * or obs_preview (explain_value.c), which cap them.
 *
 * Everything the pass builds (report values, visits, provenance records)
 * lives in the caller's arena (ctx.a) and is never freed one by one; only
 * the ctx's index maps are on the heap, freed before obs_explain returns.
 */
#ifndef KEEL_OBS_INTERNAL_H
#define KEEL_OBS_INTERNAL_H

#include "obs.h"

#include "journal/journal.h"
#include "workflow/workflow.h"

#include <string.h>

/* A provenance record: the JSON object and how many levels it nests. */
struct prov {
    struct json_value *obj;
    int depth;
};

/* Usage of one acting identity. */
struct agent_stats {
    const char *name;
    int64_t tool_calls, model_calls, input_tokens, output_tokens;
    double cost;
    struct agent_stats *next;
};

/* One visit of one step (a step.started with attempt 1, and its retries). */
struct visit {
    struct json_value *entry; /* the timeline entry */
    const char *step;
    const struct workflow_step *ws; /* NULL without a workflow version */
    const char *kind;
    int number;
    int attempts;
    bool closed;
    const char *identity;
    struct json_value *reads, *writes, *calls, *model_calls, *approvals, *errors, *handoffs,
        *summaries, *rejected, *budget;
    struct json_value *pending_call; /* policy-decided tool-step call not started yet */
    struct json_value *last_tool;    /* {seq, tool, call_id, result} of the last result */
    struct json_value *last_model;   /* the last model.response's call record */
    struct json_value *evidence;     /* tool results received in this visit */
    struct json_value *approval;     /* the last approval asked in this visit */
    struct json_value *prev_result;  /* `result` as the step saw it */
    struct prov prev_result_src;
    struct prov *set_src;            /* set steps: the source of each entry */
    int64_t input_tokens, output_tokens;
    double cost;
};

/* The state of one obs_explain pass over a journal. */
struct ctx {
    struct arena *a;
    const struct workflow *wf;
    struct journal_reducers reducers;
    const char *run_id;
    struct json_value *input, *state;
    struct json_value *last_result;
    struct prov last_result_src;
    struct strmap prov;      /* state key -> struct prov *            */
    struct strmap visit_n;   /* step id -> visits so far (as intptr)  */
    struct strmap calls;     /* call_id -> call record                */
    struct strmap mcalls;    /* model call_id -> model call record    */
    struct strmap approvals; /* approval id -> approval record        */
    struct visit *cur;
    struct agent_stats *agents;
    struct json_value *timeline, *attention, *approval_list, *switches, *anomalies;
    int64_t attention_omitted;
    /* counters */
    int64_t steps, tool_calls, allowed, denied, need_approval, refusals, retries, model_calls,
        input_tokens, output_tokens, rejected, failures;
    double cost;
    /* run facts from the journal */
    const char *workflow, *workflow_hash;
    int64_t first_ms, last_ms, final_ms;
    const char *final_kind;
    struct json_value *final_payload;
    int64_t final_seq;
    struct json_value *waiting; /* the open run.waiting payload, or NULL */
    /* the event being handled */
    int64_t seq;
    int64_t time_ms;
    const char *time_text;
    const char *actor;
};

/* ---- small JSON helpers (explain_value.c has the capped ones) ---- */

static inline struct json_value *obj(struct ctx *c)
{
    return json_object(c->a);
}
static inline void set_s(struct ctx *c, struct json_value *o, const char *k, const char *s)
{
    if (s) json_object_setc(c->a, o, k, json_cstr(c->a, s));
}
static inline void set_i(struct ctx *c, struct json_value *o, const char *k, int64_t i)
{
    json_object_setc(c->a, o, k, json_int(c->a, i));
}
static inline void set_d(struct ctx *c, struct json_value *o, const char *k, double d)
{
    if (d != d || d - d != 0) d = 0;
    json_object_setc(c->a, o, k, json_double(c->a, d));
}
static inline void set_v(struct ctx *c, struct json_value *o, const char *k, struct json_value *v)
{
    if (v) json_object_setc(c->a, o, k, v);
}
static inline const char *str(const struct json_value *o, const char *k)
{
    const struct json_value *v = json_get(o, k);
    return json_is(v, JSON_STRING) ? v->u.s.str : NULL;
}
static inline double num(const struct json_value *o, const char *k)
{
    const struct json_value *v = json_get(o, k);
    return json_is(v, JSON_NUMBER) ? v->u.n.d : 0;
}

/* "agent:support/triage" -> "support/triage"; other actors as they are. */
static inline const char *identity_of(const char *actor)
{
    if (actor && !strncmp(actor, "agent:", 6)) return actor + 6;
    return actor;
}

/* ---- values (explain_value.c) ---- */

/* Cuts s (len bytes) to at most max bytes without splitting a UTF-8
 * sequence, adding "…" when something was cut.  Returns a string in a. */
const char *obs_cut(struct arena *a, const char *s, size_t len, size_t max);
/* Compact JSON of v, cut to max bytes, in a ("null" for NULL). */
const char *obs_preview(struct arena *a, const struct json_value *v, size_t max);
/* A copy of v in c->a for the report, or {truncated, larger_than, preview}
 * when its compact JSON is larger than OBS_VALUE_MAX.  NULL stays NULL. */
struct json_value *obs_clip(struct ctx *c, const struct json_value *v);

/* ---- the summary (explain.c) ---- */

/* Adds an attention item (kind `what`, at the current event, of step, may
 * be NULL) to the summary; past OBS_ATTENTION_MAX items only counts it. */
void obs_attention(struct ctx *c, const char *what, const char *step, const char *fmt, ...)
    KEEL_PRINTF(4, 5);
/* The usage record of identity `name` ("system" for NULL or ""), created
 * on first use in order of appearance; in c->a. */
struct agent_stats *obs_identity_stats(struct ctx *c, const char *name);

/* ---- visits and calls (explain_events.c) ---- */

/* Hands the event's payload p to the handler of kind; false when no
 * handler knows the kind. */
bool obs_handle_event(struct ctx *c, const char *kind, const struct json_value *p);
/* The visit an event of `step` belongs to: the current one, or a new one
 * (reported as an anomaly) when the journal names a step nobody started;
 * NULL when step is NULL and no visit is open. */
struct visit *obs_visit_for(struct ctx *c, const char *step);
/* A new tool-call record (status "decided"), indexed by call_id and listed
 * in v's calls (v may be NULL). */
struct json_value *obs_new_call(struct ctx *c, struct visit *v, const char *call_id);
/* The record of call_id, or NULL. */
struct json_value *obs_find_call(struct ctx *c, const char *call_id);
/* Copies into call the arguments the visit's last model answer proposed
 * for tool_call_id, when the journal has none for it. */
void obs_proposed_args(struct ctx *c, struct visit *v, struct json_value *call,
                       const char *tool_call_id);

/* ---- agent steps (explain_agent.c): handlers listed in kind_table ---- */

void obs_on_model_request(struct ctx *c, const struct json_value *p);
void obs_on_model_response(struct ctx *c, const struct json_value *p);
void obs_on_tool_call_refused(struct ctx *c, const struct json_value *p);
void obs_on_output_rejected(struct ctx *c, const struct json_value *p);
void obs_on_context_summarized(struct ctx *c, const struct json_value *p);
void obs_on_handoff(struct ctx *c, const struct json_value *p);
void obs_on_budget_exceeded(struct ctx *c, const struct json_value *p);
void obs_on_budget_extended(struct ctx *c, const struct json_value *p);

/* ---- provenance and causes (explain_prov.c) ---- */

/* Fills a visit just opened with what its templates and conditions read
 * (v->reads) and, for a set step, the source of each entry (v->set_src). */
void obs_step_reads(struct ctx *c, struct visit *v);
/* A short reference to a provenance record (for timeline reads). */
struct json_value *obs_prov_ref(struct ctx *c, const struct json_value *p);
/* What v's output came from (a tool result, a model answer and its
 * evidence, an approval, or a set entry's inputs when key names one). */
struct prov obs_visit_source(struct ctx *c, struct visit *v, const char *key);
/* Re-evaluates the switch v completed with (event payload p), records why
 * it went where it went (in v's entry, the report's switches and the
 * attention list). */
void obs_switch_cause(struct ctx *c, struct visit *v, const struct json_value *p);

#endif
