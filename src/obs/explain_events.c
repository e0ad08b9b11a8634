/*
 * explain_events.c — the handlers of the journal's events, one per kind in
 * kind_table (those of agent steps are in explain_agent.c), and the step
 * visits and tool-call records they fill.
 *
 * A step.started with attempt 1 opens a visit (its timeline entry); a retry
 * continues it; step.completed/failed and the run's final events close it.
 * A tool call's record is found by call_id; a policy decision journaled
 * before its call started (a tool step's gate) waits in the visit's
 * pending_call until tool.call.started names it.
 *
 * Invariants: a handler never fails: an event that names no step, a call
 * nobody decided or a step nobody started is recorded as it is (and, for
 * the last, reported as an anomaly); state.updated folds exactly as the
 * engine does (journal_fold_event on the payload); payloads are borrowed:
 * the report holds capped copies of values (obs_clip) and may point into
 * the events for small fields, so the events must outlive the report.
 */
#include "internal.h"

#include <string.h>

/* ---- visits ------------------------------------------------------------- */

static const char *kind_of(const struct workflow_step *ws)
{
    return ws ? workflow_step_kind_name(ws->kind) : NULL;
}

static struct json_value *arr_in(struct ctx *c, struct json_value *entry, const char *k)
{
    struct json_value *a = json_array(c->a);
    set_v(c, entry, k, a);
    return a;
}

static struct visit *open_visit(struct ctx *c, const char *step, int attempt)
{
    struct visit *v = arena_zalloc(c->a, sizeof *v);
    v->step = arena_strdup(c->a, step ? step : "?");
    v->ws = c->wf && step ? workflow_step_find(c->wf, step) : NULL;
    v->kind = kind_of(v->ws);
    intptr_t n = (intptr_t)strmap_get(&c->visit_n, v->step, strlen(v->step));
    strmap_put(&c->visit_n, v->step, strlen(v->step), (void *)(n + 1));
    v->number = (int)n;
    v->attempts = attempt > 0 ? attempt : 1;
    v->prev_result = c->last_result;
    v->prev_result_src = c->last_result_src;
    v->evidence = json_array(c->a);
    v->identity = "system";
    if (v->ws && v->ws->kind == WORKFLOW_STEP_TOOL && c->wf->identity) v->identity = c->wf->identity;
    if (v->ws && v->ws->kind == WORKFLOW_STEP_AGENT && v->ws->agent.agent)
        v->identity = v->ws->agent.agent;
    struct json_value *e = v->entry = obj(c);
    set_s(c, e, "step", v->step);
    set_s(c, e, "kind", v->kind ? v->kind : "unknown");
    set_i(c, e, "visit", v->number);
    set_i(c, e, "start_seq", c->seq);
    set_s(c, e, "started", c->time_text);
    v->reads = arr_in(c, e, "state_read");
    v->writes = arr_in(c, e, "state_written");
    v->calls = arr_in(c, e, "calls");
    v->model_calls = arr_in(c, e, "model_calls");
    v->approvals = arr_in(c, e, "approvals");
    v->errors = arr_in(c, e, "errors");
    v->handoffs = arr_in(c, e, "handoffs");
    v->summaries = arr_in(c, e, "summaries");
    v->rejected = arr_in(c, e, "rejected_outputs");
    v->budget = arr_in(c, e, "budget");
    json_array_push(c->a, c->timeline, e);
    c->steps++;
    c->cur = v;
    obs_step_reads(c, v);
    return v;
}

/* The visit an event of `step` belongs to: the current one, or a new one
 * when the journal names a step nobody started (a damaged or foreign
 * journal: reported, not fatal).  The visit is in c->a. */
struct visit *obs_visit_for(struct ctx *c, const char *step)
{
    struct visit *v = c->cur;
    const struct workflow_step *ws = c->wf && step ? workflow_step_find(c->wf, step) : NULL;
    /* set and switch steps journal no step.started (docs/engine.md): their
     * first event opens the visit, also after a closed visit of the same
     * step (a loop through it). */
    bool pure = ws && (ws->kind == WORKFLOW_STEP_SET || ws->kind == WORKFLOW_STEP_SWITCH);
    if (v && (!step || !strcmp(step, v->step)) && !(pure && v->closed)) return v;
    if (!step) return NULL;
    v = open_visit(c, step, 1);
    if (!pure)
        json_array_push(c->a, c->anomalies,
                        json_cstr(c->a, arena_printf(c->a, "event #%lld names step '%s' without "
                                                           "a step.started",
                                                     (long long)c->seq, step)));
    return v;
}

static void close_visit(struct ctx *c, struct visit *v, const char *status)
{
    set_i(c, v->entry, "end_seq", c->seq);
    set_s(c, v->entry, "ended", c->time_text);
    set_s(c, v->entry, "status", status);
    v->closed = true;
}

/* ---- calls -------------------------------------------------------------- */

/* A new call record in c->a, indexed by call_id and listed in v's calls. */
struct json_value *obs_new_call(struct ctx *c, struct visit *v, const char *call_id)
{
    struct json_value *call = obj(c);
    set_s(c, call, "call_id", call_id);
    set_s(c, call, "status", "decided");
    if (call_id) strmap_put(&c->calls, call_id, strlen(call_id), call);
    if (v) json_array_push(c->a, v->calls, call);
    return call;
}

/* The record of call_id (borrowed from c->a), or NULL. */
struct json_value *obs_find_call(struct ctx *c, const char *call_id)
{
    return call_id ? strmap_get(&c->calls, call_id, strlen(call_id)) : NULL;
}

/* An agent's call that never started has no args in the journal but in
 * the model answer that proposed it: copy them from there (the values stay
 * in c->a, shared with the model call's record). */
void obs_proposed_args(struct ctx *c, struct visit *v, struct json_value *call,
                       const char *tool_call_id)
{
    if (!v || !v->last_model || !tool_call_id || json_get(call, "args")) return;
    const struct json_value *pr = json_get(v->last_model, "proposed");
    for (uint32_t i = 0; json_is(pr, JSON_ARRAY) && i < pr->len; i++)
        if (!strcmp(json_get_str(pr->u.items[i], "id", ""), tool_call_id)) {
            set_v(c, call, "args", json_get(pr->u.items[i], "arguments"));
            set_v(c, call, "proposed_by", json_get(v->last_model, "call_id"));
            return;
        }
}

/* ---- event handlers (one per kind, in kind_table) ----------------------- */

typedef void (*handler_fn)(struct ctx *c, const struct json_value *p);

static void on_run_started(struct ctx *c, const struct json_value *p)
{
    if (!c->workflow) c->workflow = str(p, "workflow");
    if (!c->workflow_hash) c->workflow_hash = str(p, "workflow_hash");
    if (!c->input && json_get(p, "input")) c->input = json_get(p, "input");
}

static void on_run_waiting(struct ctx *c, const struct json_value *p)
{
    c->waiting = json_clone(c->a, p);
    set_i(c, c->waiting, "seq", c->seq);
    set_s(c, c->waiting, "since", c->time_text);
    if (c->cur && !c->cur->closed) set_s(c, c->cur->entry, "status", "waiting");
}

static void on_run_resumed(struct ctx *c, const struct json_value *p)
{
    c->waiting = NULL;
    if (c->cur && !c->cur->closed) set_s(c, c->cur->entry, "status", "running");
}

static void on_final(struct ctx *c, const struct json_value *p, const char *kind)
{
    c->final_kind = kind;
    c->final_payload = (struct json_value *)p;
    c->final_ms = c->time_ms;
    c->final_seq = c->seq;
    c->waiting = NULL;
}

static void on_run_succeeded(struct ctx *c, const struct json_value *p)
{
    on_final(c, p, "succeeded");
    if (c->cur && !c->cur->closed) close_visit(c, c->cur, "completed"); /* a succeed step */
}

static void on_run_failed(struct ctx *c, const struct json_value *p)
{
    on_final(c, p, "failed");
    const struct json_value *e = json_get(p, "error");
    obs_attention(c, "run_failed", str(p, "step"), "the run failed%s%s: %s %s",
                  str(p, "step") ? " at step " : "", str(p, "step") ? str(p, "step") : "",
                  json_get_str(e, "code", ""), json_get_str(e, "message", ""));
    if (c->cur && !c->cur->closed) close_visit(c, c->cur, "failed");
}

static void on_run_cancelled(struct ctx *c, const struct json_value *p)
{
    on_final(c, p, "cancelled");
    obs_attention(c, "cancelled", NULL, "cancelled by %s: %s", json_get_str(p, "by", "?"),
                  json_get_str(p, "reason", ""));
    if (c->cur && !c->cur->closed) close_visit(c, c->cur, "cancelled");
}

static void on_needs_reconcile(struct ctx *c, const struct json_value *p)
{
    on_final(c, p, "needs_reconcile");
    obs_attention(c, "needs_reconcile", str(p, "step"),
                  "call %s to %s started but has no recorded result: %s",
                  json_get_str(p, "call_id", "?"), json_get_str(p, "tool", "?"),
                  json_get_str(p, "reason", ""));
    struct json_value *call = obs_find_call(c, str(p, "call_id"));
    if (call) set_s(c, call, "status", "needs_reconcile");
    if (c->cur && !c->cur->closed) close_visit(c, c->cur, "needs_reconcile");
}

static void on_step_started(struct ctx *c, const struct json_value *p)
{
    const char *step = str(p, "step");
    int attempt = (int)json_get_int(p, "attempt", 1);
    struct visit *v = c->cur;
    if (attempt > 1 && v && step && !strcmp(v->step, step) && !v->closed) {
        v->attempts = attempt;
        c->retries++;
        set_s(c, v->entry, "status", "running");
        return;
    }
    if (v && !v->closed) close_visit(c, v, "abandoned");
    open_visit(c, step, attempt);
}

static void on_step_failed(struct ctx *c, const struct json_value *p)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    if (!v) return;
    const struct json_value *e = json_get(p, "error");
    struct json_value *o = obj(c);
    set_i(c, o, "seq", c->seq);
    set_i(c, o, "attempt", json_get_int(p, "attempt", v->attempts));
    set_v(c, o, "code", json_get(e, "code"));
    set_v(c, o, "message", json_get(e, "message"));
    set_v(c, o, "retry_at", json_get(p, "retry_at"));
    json_array_push(c->a, v->errors, o);
    bool retry = json_get(p, "retry_at") != NULL;
    c->failures++;
    obs_attention(c, "step_failed", v->step, "step %s attempt %lld failed%s: %s %s", v->step,
                  (long long)json_get_int(p, "attempt", v->attempts), retry ? " (retrying)" : "",
                  json_get_str(e, "code", ""), json_get_str(e, "message", ""));
    if (retry) set_s(c, v->entry, "status", "retrying");
    else close_visit(c, v, "failed");
}

static void on_tool_call_started(struct ctx *c, const struct json_value *p)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    const char *call_id = str(p, "call_id");
    struct json_value *call = obs_find_call(c, call_id);
    /* A retry sends the same call id again: the attempt is a new record
     * (the one the gate just decided for, if any). */
    if (call && json_get(call, "started_seq")) call = NULL;
    if (!call && v && v->pending_call) {
        call = v->pending_call;
        set_s(c, call, "call_id", call_id);
        if (call_id) strmap_put(&c->calls, call_id, strlen(call_id), call);
    }
    if (!call) call = obs_new_call(c, v, call_id);
    if (v) v->pending_call = NULL;
    if (v) set_i(c, call, "attempt", v->attempts);
    const char *server = str(p, "server"), *tool = str(p, "tool");
    const char *qualified = server && tool && !strchr(tool, '/')
                                ? arena_printf(c->a, "%s/%s", server, tool)
                                : tool;
    set_s(c, call, "tool", qualified);
    set_v(c, call, "args", obs_clip(c, json_get(p, "args")));
    const char *who = str(p, "agent") ? str(p, "agent") : identity_of(c->actor);
    if (v && (!who || !strcmp(who, "system"))) who = v->identity;
    set_s(c, call, "identity", who);
    set_s(c, call, "credential", "none brokered");
    set_v(c, call, "tool_call_id", json_get(p, "tool_call_id"));
    set_i(c, call, "started_seq", c->seq);
    set_s(c, call, "started", c->time_text);
    set_s(c, call, "status", "open");
    c->tool_calls++;
    obs_identity_stats(c, who)->tool_calls++;
    /* A call that started was allowed, directly or after an approval
     * (counted as needing one when the gate asked). */
    const char *d = json_get_str(json_get(call, "policy"), "decision", "");
    if (strcmp(d, "approval") != 0) c->allowed++;
    if (!json_get(call, "policy") && v)
        set_s(c, call, "policy_note", "no policy.decision journaled for this call");
}

static void on_tool_call_completed(struct ctx *c, const struct json_value *p)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    const char *call_id = str(p, "call_id");
    struct json_value *call = obs_find_call(c, call_id);
    if (!call) call = obs_new_call(c, v, call_id);
    const struct json_value *res = json_get(p, "result"), *e = json_get(p, "error");
    set_v(c, call, "result", obs_clip(c, res));
    set_v(c, call, "error", obs_clip(c, e));
    set_v(c, call, "duration_ms", json_get(p, "duration_ms"));
    set_i(c, call, "completed_seq", c->seq);
    set_s(c, call, "completed", c->time_text);
    set_s(c, call, "status", e ? "error" : "ok");
    if (!v) return;
    struct json_value *t = obj(c);
    set_i(c, t, "seq", c->seq);
    set_v(c, t, "tool", json_get(call, "tool"));
    set_s(c, t, "call_id", call_id);
    set_v(c, t, "tool_call_id", json_get(call, "tool_call_id"));
    set_s(c, t, "result", obs_preview(c->a, res ? res : e, OBS_PREVIEW_MAX));
    if (e) json_object_setc(c->a, t, "error", json_bool(c->a, true));
    v->last_tool = t;
    json_array_push(c->a, v->evidence, t);
}

static void on_policy_decision(struct ctx *c, const struct json_value *p)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    const char *call_id = str(p, "call_id");
    struct json_value *call = obs_find_call(c, call_id);
    if (call && json_get(call, "started_seq")) call = NULL; /* a retry's new gate */
    if (!call && !call_id && v && v->pending_call) call = v->pending_call;
    if (!call) {
        call = obs_new_call(c, v, call_id);
        if (!call_id && v) v->pending_call = call;
    }
    const char *res = str(p, "resource");
    if (res && !json_get(call, "tool")) {
        /* Tool::"server/tool" -> server/tool */
        const char *q = strchr(res, '"');
        set_s(c, call, "tool", q ? arena_strndup(c->a, q + 1, strcspn(q + 1, "\"")) : res);
    }
    const char *who = str(p, "agent") ? str(p, "agent") : identity_of(c->actor);
    if (v && (!who || !strcmp(who, "system"))) who = v->identity;
    if (!json_get(call, "identity")) set_s(c, call, "identity", who);
    set_s(c, call, "credential", "none brokered");
    set_v(c, call, "tool_call_id", json_get(p, "tool_call_id"));
    if (!json_get(call, "args") && json_get(p, "args"))
        set_v(c, call, "args", obs_clip(c, json_get(p, "args")));
    obs_proposed_args(c, v, call, str(p, "tool_call_id"));
    struct json_value *d = obj(c);
    static const char *const keep[] = {"decision", "action", "resource", "policies",
                                       "policy_hash", "group", "reasons", "errors"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(keep); i++)
        set_v(c, d, keep[i], obs_clip(c, json_get(p, keep[i])));
    set_i(c, d, "seq", c->seq);
    const struct json_value *prev = json_get(call, "policy");
    if (prev) {
        /* The gate runs again after an approval: keep every decision. */
        struct json_value *all = json_get(call, "decisions");
        if (!all) {
            all = json_array(c->a);
            json_array_push(c->a, all, (struct json_value *)prev);
            set_v(c, call, "decisions", all);
        }
        json_array_push(c->a, all, d);
    }
    /* An approval-gated call keeps its first ("approval") decision. */
    if (!prev || strcmp(json_get_str(prev, "decision", ""), "approval") != 0)
        set_v(c, call, "policy", d);
    const char *decision = json_get_str(p, "decision", "");
    if (!strcmp(decision, "deny")) {
        set_s(c, call, "status", "denied");
        c->denied++;
        const struct json_value *pol = json_get(p, "policies");
        obs_attention(c, "denied", v ? v->step : NULL, "policy denied %s calling %s (%s)",
                      who ? who : "?", json_get_str(call, "tool", "?"),
                      json_is(pol, JSON_ARRAY) && pol->len ? obs_preview(c->a, pol, 80)
                                                           : "no permit applies");
    } else if (!strcmp(decision, "approval") && !prev) {
        set_s(c, call, "status", "awaiting_approval");
        c->need_approval++;
    }
}

static void on_approval_requested(struct ctx *c, const struct json_value *p)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    struct json_value *ap = obj(c);
    const char *id = str(p, "approval_id");
    set_s(c, ap, "id", id);
    set_v(c, ap, "step", json_get(p, "step"));
    set_v(c, ap, "group", json_get(p, "group"));
    set_v(c, ap, "tool", json_get(p, "tool"));
    set_v(c, ap, "policy_hash", json_get(p, "policy"));
    set_v(c, ap, "args_digest", json_get(p, "args_digest"));
    set_v(c, ap, "message", obs_clip(c, json_get(p, "message")));
    set_i(c, ap, "requested_seq", c->seq);
    set_s(c, ap, "requested_at", c->time_text);
    set_v(c, ap, "expires_ms", json_get(p, "expires_ms"));
    set_s(c, ap, "decision", "pending");
    if (id) strmap_put(&c->approvals, id, strlen(id), ap);
    json_array_push(c->a, c->approval_list, ap);
    if (!v) return;
    json_array_push(c->a, v->approvals, ap);
    v->approval = ap;
    /* A policy approval belongs to the call the gate stopped. */
    struct json_value *call = v->pending_call;
    if (!call && v->calls->len) call = v->calls->u.items[v->calls->len - 1];
    if (call && json_get(p, "tool") && !json_get(call, "started_seq")) set_v(c, call, "approval", ap);
}

static void on_approval_decided(struct ctx *c, const struct json_value *p)
{
    const char *id = str(p, "approval_id");
    struct json_value *ap = id ? strmap_get(&c->approvals, id, strlen(id)) : NULL;
    if (!ap) {
        ap = obj(c);
        set_s(c, ap, "id", id);
        json_array_push(c->a, c->approval_list, ap);
        if (c->cur) json_array_push(c->a, c->cur->approvals, ap);
    }
    const char *decision = json_get_str(p, "decision", "?");
    const char *by = str(p, "by") ? str(p, "by") : c->actor;
    set_s(c, ap, "decision", decision);
    set_s(c, ap, "by", by);
    set_v(c, ap, "comment", obs_clip(c, json_get(p, "comment")));
    set_i(c, ap, "decided_seq", c->seq);
    set_s(c, ap, "decided_at", c->time_text);
    struct visit *v = c->cur;
    if (v && v->ws && v->ws->kind == WORKFLOW_STEP_APPROVAL) v->identity = by;
    if (v && !v->ws && !v->calls->len && !v->model_calls->len) v->identity = by;
    if (strcmp(decision, "approved") != 0)
        obs_attention(c, "approval", json_get_str(ap, "step", NULL), "approval %s %s by %s%s%s",
                      id ? id : "?", decision, by ? by : "?",
                      str(p, "comment") ? ": " : "", str(p, "comment") ? str(p, "comment") : "");
}

static void on_state_updated(struct ctx *c, const struct json_value *p)
{
    const char *key = str(p, "key");
    if (!key) return;
    /* The payload names its step (journals before it did not: then the
     * open visit is the one). */
    const char *step = str(p, "step");
    struct visit *v = step ? obs_visit_for(c, step) : c->cur && !c->cur->closed ? c->cur : NULL;
    struct json_value *w = obj(c);
    set_s(c, w, "key", key);
    set_i(c, w, "seq", c->seq);
    set_v(c, w, "reducer", json_get(p, "reducer"));
    set_v(c, w, "before", obs_clip(c, json_get(c->state, key)));
    if (!json_get(c->state, key)) json_object_setc(c->a, w, "before_unset", json_bool(c->a, true));
    /* Fold exactly as the engine does: journal_fold_event on the payload. */
    struct buf text;
    buf_init(&text);
    json_write(&text, p, JSON_WRITE_CANONICAL, NULL);
    struct journal_event ev = {.run_id = c->run_id ? c->run_id : "",
                               .seq = c->seq,
                               .time_ms = c->time_ms,
                               .kind = "state.updated",
                               .actor = c->actor ? c->actor : "system",
                               .payload = text.data ? text.data : "{}",
                               .payload_len = text.len};
    struct keel_err ferr;
    keel_err_clear(&ferr);
    if (journal_fold_event(&c->reducers, c->a, c->state, &ev, &ferr) != 0) {
        set_s(c, w, "error", ferr.msg);
        json_array_push(c->a, c->anomalies, json_cstr(c->a, ferr.msg));
    }
    buf_cleanup(&text);
    set_v(c, w, "after", obs_clip(c, json_get(c->state, key)));
    /* Provenance: the state.updated and, behind it, the step's source. */
    struct prov *pr = arena_zalloc(c->a, sizeof *pr);
    struct json_value *po = obj(c);
    set_s(c, po, "origin", "step");
    set_s(c, po, "key", key);
    set_i(c, po, "seq", c->seq);
    set_v(c, po, "reducer", json_get(p, "reducer"));
    set_s(c, po, "at", c->time_text);
    int depth = 1;
    if (v) {
        set_s(c, po, "step", v->step);
        set_i(c, po, "visit", v->number);
        struct prov src = obs_visit_source(c, v, key);
        set_v(c, po, "source", src.obj);
        depth = src.depth + 1;
    } else {
        struct json_value *s = obj(c);
        set_s(c, s, "kind", "outside a step");
        set_s(c, s, "actor", c->actor);
        set_v(c, po, "source", s);
    }
    pr->obj = po;
    pr->depth = depth;
    strmap_put(&c->prov, key, strlen(key), pr);
    set_v(c, w, "written_by", obs_prov_ref(c, po));
    if (v) json_array_push(c->a, v->writes, w);
}

static void on_step_completed(struct ctx *c, const struct json_value *p)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    if (!v) return;
    const struct json_value *res = json_get(p, "result");
    set_v(c, v->entry, "result", obs_clip(c, res));
    set_v(c, v->entry, "next", json_get(p, "next"));
    bool is_switch = v->ws ? v->ws->kind == WORKFLOW_STEP_SWITCH
                           : (!res && !v->calls->len && !v->model_calls->len &&
                              !v->writes->len && !v->approvals->len && str(p, "next") &&
                              *str(p, "next"));
    if (!v->ws && is_switch) {
        v->kind = "switch";
        set_s(c, v->entry, "kind", "switch");
        set_s(c, v->entry, "kind_inferred", "yes");
    }
    if (is_switch) obs_switch_cause(c, v, p);
    close_visit(c, v, "completed");
    /* What `result` means for the next step, and where it came from. */
    c->last_result = (struct json_value *)res;
    c->last_result_src = res ? obs_visit_source(c, v, NULL) : (struct prov){NULL, 0};
    if (c->last_result_src.obj) {
        struct json_value *w = obj(c);
        set_s(c, w, "origin", "result");
        set_s(c, w, "step", v->step);
        set_i(c, w, "seq", c->seq);
        set_v(c, w, "source", c->last_result_src.obj);
        c->last_result_src.obj = w;
        c->last_result_src.depth++;
    }
}

static void on_compensation(struct ctx *c, const struct json_value *p)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    if (!v) return;
    struct json_value *o = json_clone(c->a, p);
    set_i(c, o, "seq", c->seq);
    struct json_value *list = json_get(v->entry, "compensations");
    if (!list) set_v(c, v->entry, "compensations", list = json_array(c->a));
    json_array_push(c->a, list, o);
}

static void on_nothing(struct ctx *c, const struct json_value *p)
{
}

static const struct {
    const char *kind;
    handler_fn fn;
} kind_table[] = {
    {"run.started", on_run_started},
    {"run.waiting", on_run_waiting},
    {"run.resumed", on_run_resumed},
    {"run.succeeded", on_run_succeeded},
    {"run.failed", on_run_failed},
    {"run.cancelled", on_run_cancelled},
    {"run.needs_reconcile", on_needs_reconcile},
    {"step.started", on_step_started},
    {"step.completed", on_step_completed},
    {"step.failed", on_step_failed},
    {"tool.call.started", on_tool_call_started},
    {"tool.call.completed", on_tool_call_completed},
    {"policy.decision", on_policy_decision},
    {"approval.requested", on_approval_requested},
    {"approval.decided", on_approval_decided},
    {"state.updated", on_state_updated},
    {"timer.set", on_nothing},
    {"timer.fired", on_nothing},
    {"signal.received", on_nothing},
    {"model.request", obs_on_model_request},
    {"model.response", obs_on_model_response},
    {"compensation.started", on_compensation},
    {"compensation.completed", on_compensation},
    {"tool.call.refused", obs_on_tool_call_refused},
    {"agent.output.rejected", obs_on_output_rejected},
    {"context.summarized", obs_on_context_summarized},
    {"agent.handoff", obs_on_handoff},
    {"budget.exceeded", obs_on_budget_exceeded},
    {"budget.extended", obs_on_budget_extended},
};

/* Runs kind's handler on payload p (borrowed); false for an unknown kind. */
bool obs_handle_event(struct ctx *c, const char *kind, const struct json_value *p)
{
    for (size_t k = 0; k < KEEL_ARRAY_LEN(kind_table); k++)
        if (!strcmp(kind_table[k].kind, kind)) {
            kind_table[k].fn(c, p);
            return true;
        }
    return false;
}
