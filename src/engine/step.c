/*
 * step.c — one transition of one run: the step executors (one row per step
 * kind in step_table), waits (approval, timer), retries and the end of a
 * run.  Called by a worker with the run's journal folded into c->view
 * (fold.c); every event is journaled before the effect that follows it.
 *
 * The path of a tool step (each arrow is a durable journal append that
 * happens before the next effect):
 *
 *   step.started ─► render args ─► validate (tool inputSchema)
 *     ─► tool.call.started {idempotency_key} ─► MCP tools/call (key in _meta)
 *     ─► tool.call.completed {result|error} ─► validate outputSchema
 *     ─► state.updated {key: save} ─► step.completed {result, next}
 *
 * A crash between tool.call.started and tool.call.completed leaves an open
 * call: the next worker calls again with the SAME key if the tool is
 * idempotent (the tool performs the effect once per key), else parks the
 * run as needs_reconcile.  Idempotency keys are
 * sha256("<run>/<step>/<call index>") — independent of the attempt, so a
 * retry after a crash can never double an effect of an honest tool.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static const unsigned not_final = STORE_RUN_MASK(STORE_RUN_PENDING) |
                                  STORE_RUN_MASK(STORE_RUN_RUNNING) |
                                  STORE_RUN_MASK(STORE_RUN_WAITING);

static const enum store_run_status store_status[] = {
    [RUN_RUNNING] = STORE_RUN_RUNNING,     [RUN_WAITING] = STORE_RUN_WAITING,
    [RUN_SUCCEEDED] = STORE_RUN_SUCCEEDED, [RUN_FAILED] = STORE_RUN_FAILED,
    [RUN_CANCELLED] = STORE_RUN_CANCELLED, [RUN_NEEDS_RECONCILE] = STORE_RUN_NEEDS_RECONCILE,
};

void engine_idempotency_key(const char *run, const char *step, int index, char out[65])
{
    char buf[3 * ENGINE_ID_MAX + 32];
    int n = snprintf(buf, sizeof buf, "%s/%s/%d", run, step, index);
    keel_sha256_hex(buf, (size_t)n, out);
}

static int journal_ev(struct run_ctx *c, const char *kind, const char *actor,
                      struct json_value *payload, bool deferred, struct keel_err *err)
{
    /* Built and chained now into the transition's batch.  Deferred: queued
     * when the transition ends or something waits for it; otherwise the
     * batch goes out now (with whatever was deferred before it: one request,
     * one fsync) and this waits for it. */
    struct journal_event ev;
    int rc = journal_batch_add(c->w, &c->slot->batch, kind, actor ? actor : "system", payload, 0,
                               c->arena, &ev, err);
    if (!rc) rc = engine_view_apply(&c->view, &ev, err);
    if (!rc && !deferred) rc = engine_barrier(c, err);
    if (rc) keel_err_prefix(err, "run %s: journal %s", c->run.id, kind);
    return rc;
}

int engine_journal(struct run_ctx *c, const char *kind, const char *actor,
                   struct json_value *payload, struct keel_err *err)
{
    return journal_ev(c, kind, actor, payload, false, err);
}

int engine_journal_deferred(struct run_ctx *c, const char *kind, const char *actor,
                            struct json_value *payload, struct keel_err *err)
{
    return journal_ev(c, kind, actor, payload, true, err);
}

struct json_value *engine_error_obj(struct run_ctx *c, int code, const char *msg)
{
    struct json_value *o = json_object(c->arena);
    jset_s(c->arena, o, "code", keel_strerror(code));
    jset_s(c->arena, o, "message", msg);
    return o;
}

static int set_status(struct run_ctx *c, enum engine_run_status st, const char *reason,
                      struct keel_err *err)
{
    int rc = engine_barrier(c, err);
    if (rc) return rc;
    rc = store_run_set_status(c->e->store, c->run.id, not_final, store_status[st], reason, 0, err);
    if (!rc) c->run.status = store_status[st];
    return rc;
}

int engine_finish(struct run_ctx *c, enum engine_run_status st, const char *kind,
                  struct json_value *payload, const char *actor, struct keel_err *err)
{
    int rc = engine_journal(c, kind, actor, payload, err);
    if (rc) return rc;
    store_timer_delete_run(c->e->store, c->run.id, NULL, NULL);
    /* Nobody can act on the approvals of an ended run any more. */
    struct store_approval_filter f = {.status_mask = 1u << STORE_APPROVAL_PENDING,
                                      .run_id = c->run.id};
    struct store_approval *aps;
    size_t n = 0;
    if (store_approval_list(c->e->store, &f, c->arena, &aps, &n, NULL) == 0)
        for (size_t i = 0; i < n; i++)
            store_approval_decide(c->e->store, aps[i].id, STORE_APPROVAL_EXPIRED, "system",
                                  "the run ended", 0, NULL);
    return set_status(c, st, kind, err);
}

static int fail_run(struct run_ctx *c, const struct workflow_step *s, int code, const char *msg,
                    struct keel_err *err)
{
    struct json_value *p = json_object(c->arena);
    jset_v(c->arena, p, "error", engine_error_obj(c, code, msg));
    if (s) jset_s(c->arena, p, "step", s->id);
    return engine_finish(c, RUN_FAILED, "run.failed", p, NULL, err);
}

/* Parks the run until due_ms on a timer (retry backoff). */
static int park_timer(struct run_ctx *c, const char *timer_id, const char *step, int64_t due,
                      struct keel_err *err)
{
    struct store_timer t = {.id = timer_id, .run_id = c->run.id, .step_id = step, .due_ms = due};
    int rc = engine_barrier(c, err);
    if (!rc) rc = store_timer_set(c->e->store, &t, err);
    if (rc) return rc;
    struct json_value *p = json_object(c->arena);
    jset_s(c->arena, p, "reason", "timer");
    jset_s(c->arena, p, "timer_id", timer_id);
    jset_i(c->arena, p, "until", due);
    rc = engine_journal(c, "run.waiting", NULL, p, err);
    if (rc) return rc;
    rc = set_status(c, RUN_WAITING, "timer", err);
    pthread_mutex_lock(&c->e->lock);
    pthread_cond_signal(&c->e->timer);
    pthread_mutex_unlock(&c->e->lock);
    return rc;
}

/* The attempt of the step being run: a pure step journals no step.started
 * (engine_step), so outside a started step it is the first. */
static int step_attempt(const struct run_ctx *c)
{
    return c->view.in_step && c->view.attempt ? c->view.attempt : 1;
}

/* A step attempt failed: retry after the backoff if attempts remain and
 * the failure is worth retrying, else fail the run. */
int engine_step_failed(struct run_ctx *c, const struct workflow_step *s, int code, const char *msg,
                       bool retryable, struct keel_err *err)
{
    int attempt = step_attempt(c);
    struct json_value *p = json_object(c->arena);
    jset_s(c->arena, p, "step", s->id);
    jset_i(c->arena, p, "attempt", attempt);
    jset_v(c->arena, p, "error", engine_error_obj(c, code, msg));
    bool again = retryable && attempt < s->retry.attempts;
    int64_t due = 0;
    if (again) {
        due = keel_wall_ms() + workflow_retry_delay_ms(&s->retry, attempt + 1);
        jset_i(c->arena, p, "retry_at", due);
    }
    int rc = engine_journal(c, "step.failed", NULL, p, err);
    if (rc) return rc;
    if (!again) return fail_run(c, s, code, msg, err);
    char tid[3 * ENGINE_ID_MAX];
    snprintf(tid, sizeof tid, "%s/%s/retry-%d", c->run.id, s->id, attempt + 1);
    return park_timer(c, tid, s->id, due, err);
}

static const char *next_id(struct run_ctx *c, int next)
{
    const struct workflow *wf = c->ew->wf;
    if (next < 0 || (size_t)next >= wf->nsteps) return "";
    return wf->steps[next].id;
}

static struct json_value *vars(struct run_ctx *c, struct json_value *result)
{
    struct json_value *o = json_object(c->arena);
    jset_v(c->arena, o, "input", c->input);
    jset_v(c->arena, o, "state", c->view.state);
    jset_v(c->arena, o, "result", result);
    return o;
}

/* The key's value after its reducer applies value must be a valid
 * reduction and match the key's schema (docs/workflows.md, "state"). */
static int check_state(struct run_ctx *c, const char *key, const struct json_value *value,
                       struct keel_err *err)
{
    const struct workflow_state_key *k = workflow_state_find(c->ew->wf, key);
    if (!k) return 0;
    struct json_value *after = NULL;
    int rc =
        workflow_reduce(k->reducer, json_get(c->view.state, key), value, c->arena, &after, err);
    if (rc) {
        keel_err_prefix(err, "state.%s", key);
        return rc;
    }
    return workflow_state_check(k, after, err);
}

/* Journals (deferred: nothing follows before the step completes) that step
 * s applies value to state key with the key's reducer. */
static int state_updated(struct run_ctx *c, const struct workflow_step *s, const char *key,
                         struct json_value *value, struct keel_err *err)
{
    const struct workflow_state_key *k = workflow_state_find(c->ew->wf, key);
    struct json_value *p = json_object(c->arena);
    jset_s(c->arena, p, "key", key);
    jset_v(c->arena, p, "value", value);
    jset_s(c->arena, p, "reducer",
           workflow_reducer_name(k ? k->reducer : WORKFLOW_REDUCER_REPLACE));
    jset_s(c->arena, p, "step", s->id);
    return engine_journal_deferred(c, "state.updated", NULL, p, err);
}

/* Reduces value into the step's save key, then completes the step. */
int engine_complete(struct run_ctx *c, const struct workflow_step *s, struct json_value *result,
                    int next, struct keel_err *err)
{
    int rc;
    if (s->save && result) {
        struct keel_err serr;
        keel_err_clear(&serr);
        if (check_state(c, s->save, result, &serr))
            return engine_step_failed(c, s, serr.code ? serr.code : KEEL_ESCHEMA, serr.msg, false,
                                      err);
        if ((rc = state_updated(c, s, s->save, result, err))) return rc;
    }
    struct json_value *p = json_object(c->arena);
    jset_s(c->arena, p, "step", s->id);
    jset_i(c->arena, p, "attempt", step_attempt(c));
    jset_v(c->arena, p, "result", result);
    jset_s(c->arena, p, "next", next_id(c, next));
    /* The transition ends here: nothing happens before the run is released,
     * and it is released once these are durable. */
    return engine_journal_deferred(c, "step.completed", NULL, p, err);
}

/* ---- approvals --------------------------------------------------------- */

/* Creates the approval (if not yet there), journals approval.requested and
 * run.waiting, and parks the run.  The approval id is derived from (run,
 * step, attempt), so a crash between creating the row and journaling it
 * cannot leave a second, orphaned request behind: the retry finds the same
 * row. */
void engine_approval_id(struct run_ctx *c, const struct workflow_step *s,
                        const struct approval_binding *b, char out[APPROVAL_ID_MAX])
{
    if (b->key)
        approval_id_for(c->run.id, b->key, 0, 1, out);
    else
        approval_id_for(c->run.id, s->id, c->view.visit, c->view.attempt, out);
}

int engine_park_for_approval(struct run_ctx *c, const struct workflow_step *s,
                             const struct approval_binding *b, struct keel_err *err)
{
    struct run_view *v = &c->view;
    int rc;
    char aid[APPROVAL_ID_MAX];
    engine_approval_id(c, s, b, aid);
    int64_t expires = b->timeout_ms ? keel_wall_ms() + b->timeout_ms : 0;
    if ((rc = engine_barrier(c, err))) return rc;
    if (!v->approval_id || strcmp(v->approval_id, aid) != 0) {
        struct json_value *req = json_object(c->arena);
        jset_s(c->arena, req, "run", c->run.id);
        jset_s(c->arena, req, "step", s->id);
        jset_s(c->arena, req, "agent", b->agent ? b->agent : c->ew->wf->identity);
        jset_s(c->arena, req, "tool", b->tool);
        jset_s(c->arena, req, "args_digest", b->args_digest);
        jset_v(c->arena, req, "args", b->args);
        jset_s(c->arena, req, "policy", b->policy_hash);
        jset_s(c->arena, req, "policies", b->policies);
        jset_v(c->arena, req, "message", b->message);
        struct buf rb;
        buf_init(&rb);
        json_write(&rb, req, 0, NULL);
        struct store_approval ap = {.id = aid,
                                    .run_id = c->run.id,
                                    .step_id = s->id,
                                    .group = b->group,
                                    .request = rb.data,
                                    .expires_ms = expires};
        rc = store_approval_create(c->e->store, &ap, err);
        buf_cleanup(&rb);
        if (rc == KEEL_EEXIST) {
            struct store_approval old;
            if ((rc = store_approval_get(c->e->store, aid, c->arena, &old, err))) return rc;
            expires = old.expires_ms;
        } else if (rc) {
            return rc;
        }
        struct json_value *p = json_object(c->arena);
        jset_s(c->arena, p, "approval_id", aid);
        jset_s(c->arena, p, "step", s->id);
        jset_s(c->arena, p, "group", b->group);
        jset_s(c->arena, p, "args_digest", b->args_digest ? b->args_digest : "");
        jset_s(c->arena, p, "tool", b->tool);
        jset_s(c->arena, p, "agent", b->agent);
        jset_s(c->arena, p, "policy", b->policy_hash);
        if (expires) jset_i(c->arena, p, "expires_ms", expires);
        jset_v(c->arena, p, "message", b->message);
        if ((rc = engine_journal(c, "approval.requested", NULL, p, err))) return rc;
        v->approval_id = arena_strdup(c->arena, aid);
    } else {
        struct store_approval old;
        if ((rc = store_approval_get(c->e->store, v->approval_id, c->arena, &old, err))) return rc;
        expires = old.expires_ms;
    }
    if (expires) {
        char tid[64];
        snprintf(tid, sizeof tid, "%s/timeout", v->approval_id);
        struct store_timer t = {
            .id = tid, .run_id = c->run.id, .step_id = s->id, .due_ms = expires};
        if ((rc = store_timer_set(c->e->store, &t, err))) return rc;
    }
    struct json_value *p = json_object(c->arena);
    jset_s(c->arena, p, "reason", "approval");
    jset_s(c->arena, p, "approval_id", v->approval_id);
    if (expires) jset_i(c->arena, p, "until", expires);
    if ((rc = engine_journal(c, "run.waiting", NULL, p, err))) return rc;
    rc = set_status(c, RUN_WAITING, "approval", err);
    pthread_mutex_lock(&c->e->lock);
    pthread_cond_signal(&c->e->timer);
    pthread_mutex_unlock(&c->e->lock);
    return rc;
}

/* The approval holds only for what it was asked for. */
int engine_approval_binds(struct run_ctx *c, const char *approval_id, const char *tool,
                          const char *args_digest, const char *policy_hash, struct keel_err *err)
{
    struct store_approval ap;
    int rc = store_approval_get(c->e->store, approval_id, c->arena, &ap, err);
    if (rc) return rc;
    struct json_value *req = NULL;
    json_parse(c->arena, ap.request ? ap.request : "{}", ap.request ? strlen(ap.request) : 2, NULL,
               &req, NULL);
    return !strcmp(json_get_str(req, "args_digest", ""), args_digest) &&
           !strcmp(json_get_str(req, "tool", ""), tool) &&
           !strcmp(json_get_str(req, "policy", ""), policy_hash);
}

/* The decision recorded for the current step: 1 approved, 0 denied or
 * expired (on_timeout decides for expired), -1 none yet. */
static int approval_outcome(const struct run_view *v, enum workflow_on_timeout on_timeout)
{
    if (!v->approval_decision) return -1;
    if (!strcmp(v->approval_decision, "approved")) return 1;
    if (!strcmp(v->approval_decision, "expired") && on_timeout == WORKFLOW_ON_TIMEOUT_APPROVE)
        return 1;
    return 0;
}

static int approval_refused(struct run_ctx *c, const struct workflow_step *s, struct keel_err *err)
{
    struct run_view *v = &c->view;
    char msg[KEEL_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "approval %s %s by %s%s%s", v->approval_id, v->approval_decision,
             v->approval_by ? v->approval_by : "system",
             v->approval_comment && *v->approval_comment ? ": " : "",
             v->approval_comment ? v->approval_comment : "");
    return fail_run(c, s, KEEL_EDENIED, msg, err);
}

static int exec_approval(struct run_ctx *c, const struct workflow_step *s, struct keel_err *err)
{
    struct run_view *v = &c->view;
    int outcome = approval_outcome(v, s->approval.on_timeout);
    if (outcome == 0) return approval_refused(c, s, err);
    if (outcome == 1) {
        struct json_value *res = json_object(c->arena);
        json_object_setc(c->arena, res, "approved", json_bool(c->arena, true));
        jset_s(c->arena, res, "by", v->approval_by);
        jset_s(c->arena, res, "comment", v->approval_comment);
        return engine_complete(c, s, res, s->next, err);
    }
    struct json_value *msg = NULL;
    if (s->approval.message) {
        struct keel_err rerr;
        keel_err_clear(&rerr);
        if (workflow_render(s->approval.message, vars(c, c->view.last_result), c->arena, &msg,
                            &rerr))
            return engine_step_failed(c, s, rerr.code, rerr.msg, false, err);
    }
    char digest[65] = "";
    json_digest(c->input, digest, NULL);
    struct approval_binding b = {.group = s->approval.group,
                                 .timeout_ms = s->approval.timeout_ms,
                                 .message = msg,
                                 .args_digest = digest};
    return engine_park_for_approval(c, s, &b, err);
}

/* ---- tool steps -------------------------------------------------------- */

/* Authorizes the call with the Cedar engine (deny by default) and journals
 * the decision with the deciding policy ids and the policy set hash.
 * principal Agent::"team/name" (parent Team::"team"), action
 * Action::"call_tool", resource Tool::"server/tool" (parent
 * ToolServer::"server"), context {args, workflow, step, run}. */
int engine_authorize(struct run_ctx *c, const struct workflow_step *s, const char *agent,
                     const char *server, const char *qualified, const char *call_id,
                     struct json_value *args, struct json_value *extra, enum verdict *out,
                     const char **group, const char **policy_ids, char policy_hash[65],
                     int64_t *approval_ms, struct keel_err *err)
{
    struct arena *a = c->arena;
    if (!agent) agent = "";
    struct policy_set *set = engine_policies(c->e, policy_hash);

    /* Entities: the agent with its team, the tool with its server. */
    struct json_value *ents = json_array(a);
    struct json_value *ag = json_object(c->arena), *agid = json_object(c->arena),
                      *tl = json_object(c->arena), *tlid = json_object(c->arena);
    jset_s(c->arena, agid, "type", "Agent");
    jset_s(c->arena, agid, "id", agent);
    jset_v(c->arena, ag, "uid", agid);
    jset_v(c->arena, ag, "attrs", json_object(c->arena));
    struct json_value *agp = json_array(a);
    const char *slash = strchr(agent, '/');
    if (slash) {
        struct json_value *team = json_object(c->arena);
        jset_s(c->arena, team, "type", "Team");
        json_object_setc(a, team, "id", json_string(a, agent, (size_t)(slash - agent)));
        json_array_push(a, agp, team);
    }
    jset_v(c->arena, ag, "parents", agp);
    json_array_push(a, ents, ag);
    jset_s(c->arena, tlid, "type", "Tool");
    jset_s(c->arena, tlid, "id", qualified);
    jset_v(c->arena, tl, "uid", tlid);
    jset_v(c->arena, tl, "attrs", json_object(c->arena));
    struct json_value *tlp = json_array(a), *srv = json_object(c->arena);
    jset_s(c->arena, srv, "type", "ToolServer");
    jset_s(c->arena, srv, "id", server);
    json_array_push(a, tlp, srv);
    jset_v(c->arena, tl, "parents", tlp);
    json_array_push(a, ents, tl);

    struct json_value *rq = json_object(c->arena), *act = json_object(c->arena),
                      *ctx = json_object(c->arena);
    jset_v(c->arena, rq, "principal", agid);
    jset_s(c->arena, act, "type", "Action");
    jset_s(c->arena, act, "id", "call_tool");
    jset_v(c->arena, rq, "action", act);
    jset_v(c->arena, rq, "resource", tlid);
    jset_v(c->arena, ctx, "args", args);
    jset_s(c->arena, ctx, "workflow", c->ew->wf->name);
    jset_s(c->arena, ctx, "step", s->id);
    jset_s(c->arena, ctx, "run", c->run.id);
    for (uint32_t i = 0; json_is(extra, JSON_OBJECT) && i < extra->len; i++)
        json_object_setc(a, ctx, extra->u.members[i].key, extra->u.members[i].value);
    jset_v(c->arena, rq, "context", ctx);

    struct policy_entities *es = NULL;
    struct policy_request req;
    int rc = policy_entities_parse_json(ents, NULL, &es, err);
    if (!rc) rc = policy_request_from_json(a, rq, NULL, &req, err);
    if (rc) {
        policy_entities_free(es);
        return rc;
    }
    struct policy_response resp;
    policy_response_init(&resp);
    policy_authorize(set, es, &req, &resp);
    struct buf ids;
    buf_init(&ids);
    struct json_value *pol = json_array(a);
    for (size_t i = 0; i < resp.nreasons; i++) {
        json_array_push(a, pol, json_cstr(a, resp.reasons[i]->id));
        buf_printf(&ids, "%s%s", i ? "," : "", resp.reasons[i]->id);
    }
    *out = resp.decision != POLICY_ALLOW ? VERDICT_DENY
           : resp.napprovals             ? VERDICT_APPROVAL
                                         : VERDICT_ALLOW;
    *group = resp.napprovals ? arena_strdup(a, resp.approvals[0]) : NULL;
    *approval_ms = 0;
    for (size_t i = 0; resp.napprovals && i < resp.nreasons; i++) {
        const char *t = policy_annotation(resp.reasons[i], "approval_timeout");
        int64_t ms;
        if (t && policy_annotation(resp.reasons[i], "approval") &&
            keel_parse_duration(t, &ms, NULL) == 0 && ms > 0 &&
            (*approval_ms == 0 || ms < *approval_ms))
            *approval_ms = ms;
    }
    if (!*approval_ms) *approval_ms = 24 * 3600 * 1000LL;
    *policy_ids = arena_strdup(a, ids.data ? ids.data : "");
    struct json_value *p = json_object(c->arena);
    jset_s(c->arena, p, "step", s->id);
    jset_s(c->arena, p, "call_id", call_id);
    jset_s(c->arena, p, "agent", agent);
    jset_s(c->arena, p, "action", "call_tool");
    char res[2 * ENGINE_ID_MAX + 16];
    snprintf(res, sizeof res, "Tool::\"%s\"", qualified);
    jset_s(c->arena, p, "resource", res);
    jset_s(c->arena, p, "decision",
           *out == VERDICT_DENY    ? "deny"
           : *out == VERDICT_ALLOW ? "allow"
                                   : "approval");
    jset_v(c->arena, p, "policies", pol);
    jset_s(c->arena, p, "policy_hash", policy_hash);
    jset_s(c->arena, p, "group", *group);
    for (size_t i = 0; i < resp.nerrors; i++) {
        if (i == 0) jset_v(c->arena, p, "errors", json_array(a));
        json_array_push(a, json_get(p, "errors"), json_cstr(a, resp.errors[i].message));
    }
    buf_cleanup(&ids);
    policy_response_cleanup(&resp);
    policy_entities_free(es);
    char actor[IDENTITY_NAME_MAX + 16];
    snprintf(actor, sizeof actor, "agent:%s", agent);
    /* Deferred: what follows is either the call, preceded by the
     * synchronous tool.call.started, or a refusal, a failure or a park,
     * each preceded by a synchronous append or a barrier. */
    return engine_journal_deferred(c, "policy.decision", *agent ? actor : NULL, p, err);
}

/* The policy gate of a tool call.  Returns 1 to go on with the call, 0 if
 * the run was parked or ended, or a negative error. */
static int policy_gate(struct run_ctx *c, const struct workflow_step *s, const char *qualified,
                       struct json_value *args, struct keel_err *err)
{
    enum verdict verdict;
    const char *group = NULL, *ids = NULL;
    char hash[65];
    int64_t approval_ms;
    int rc = engine_authorize(c, s, c->ew->wf->identity, s->call.server, qualified, NULL, args,
                              NULL, &verdict, &group, &ids, hash, &approval_ms, err);
    if (rc) return rc;
    if (verdict == VERDICT_DENY) {
        char msg[KEEL_ERR_MSG_MAX];
        snprintf(msg, sizeof msg,
                 "policy denied Agent::\"%s\" calling Tool::\"%s\"%s%s (policy set %.12s); "
                 "add a permit to the policies folder and `keel policy reload`",
                 c->ew->wf->identity ? c->ew->wf->identity : "", qualified,
                 *ids ? ": forbid by " : ": no permit applies", ids, hash);
        rc = engine_step_failed(c, s, KEEL_EDENIED, msg, false, err);
        return rc ? rc : 0;
    }
    if (verdict == VERDICT_ALLOW) return 1;
    char digest[65] = "";
    json_digest(args, digest, NULL);
    struct run_view *v = &c->view;
    int outcome = approval_outcome(v, WORKFLOW_ON_TIMEOUT_DENY);
    if (outcome == 0) {
        rc = approval_refused(c, s, err);
        return rc ? rc : 0;
    }
    if (outcome == 1) {
        rc = engine_approval_binds(c, v->approval_id, qualified, digest, hash, err);
        if (rc < 0) return rc;
        if (rc == 0) {
            rc = engine_step_failed(c, s, KEEL_ESTATE,
                                    "the approval was given for other arguments, another tool or "
                                    "another policy version; start the run again to ask anew",
                                    false, err);
            return rc ? rc : 0;
        }
        return 1;
    }
    struct approval_binding b = {.group = group,
                                 .timeout_ms = approval_ms,
                                 .tool = qualified,
                                 .args = args,
                                 .args_digest = digest,
                                 .policy_hash = hash,
                                 .policies = ids};
    rc = engine_park_for_approval(c, s, &b, err);
    return rc ? rc : 0;
}

static bool retryable_code(int code)
{
    return code == KEEL_EIO || code == KEEL_ETIMEOUT || code == KEEL_EPROTO || code == KEEL_EBUSY;
}

int engine_validate(const struct schema *sc, const struct json_value *v, const char *what,
                    const char *tool, struct keel_err *err)
{
    if (!sc) return 0;
    struct schema_result r;
    schema_result_init(&r);
    /* Only the first error is reported: stop there, and write its text only
     * if there is one (docs/schema.md, "lazy"). */
    r.max_errors = 1;
    r.lazy = true;
    bool ok = schema_validate(sc, v, &r);
    if (!ok) {
        const struct schema_error *e = schema_result_error(&r, 0);
        const char *loc = e ? e->instance_location : "";
        const char *msg = e ? e->message : "invalid";
        keel_fail(err, KEEL_ESCHEMA, "%s of %s fail its schema at '%s': %s", what, tool, loc, msg);
    }
    schema_result_cleanup(&r);
    return ok ? 0 : KEEL_ESCHEMA;
}

/* The value a tool result contributes to state: structuredContent if
 * present, else the text of its content. */
static struct json_value *result_value(struct run_ctx *c, const struct mcp_call_result *r)
{
    if (r->structured) return r->structured;
    return json_cstr(c->arena, mcp_result_text(c->arena, r));
}

/* Records the outcome of a call that returned (or failed) and moves on. */
static int call_outcome(struct run_ctx *c, const struct workflow_step *s,
                        struct engine_tool_schemas *ts, const char *qualified,
                        struct json_value *result, struct json_value *error, struct keel_err *err)
{
    if (error) {
        const char *code = json_get_str(error, "code", "EIO");
        const char *msg = json_get_str(error, "message", "tool call failed");
        bool tool_error = json_get_bool(error, "tool_error", false);
        int kc = KEEL_EIO;
        static const int codes[] = {KEEL_EIO,    KEEL_ETIMEOUT, KEEL_EPROTO,
                                    KEEL_EBUSY,  KEEL_ESCHEMA,  KEEL_EINVAL,
                                    KEEL_ENOENT, KEEL_EDENIED,  KEEL_ELIMIT};
        for (size_t i = 0; i < KEEL_ARRAY_LEN(codes); i++)
            if (!strcmp(keel_strerror(codes[i]), code)) kc = codes[i];
        return engine_step_failed(c, s, kc, msg, tool_error || retryable_code(kc), err);
    }
    if (ts && ts->output && json_is(result, JSON_OBJECT)) {
        struct keel_err verr;
        keel_err_clear(&verr);
        if (engine_validate(ts->output, result, "structuredContent", qualified, &verr))
            return engine_step_failed(c, s, KEEL_ESCHEMA, verr.msg, false, err);
    }
    return engine_complete(c, s, result, s->next, err);
}

int engine_journal_call_completed(struct run_ctx *c, const char *actor, struct json_value *p,
                                  struct json_value **result, struct json_value **error,
                                  struct keel_err *err)
{
    /* Deferred: the call is over; the outcome (state.updated and
     * step.completed, a refusal the model reads next turn, or a failure)
     * follows, and the run goes on only once all of it is durable.  Lost
     * in a crash, the call is open again on resume: retried with the same
     * idempotency key, or reconciled. */
    int rc = engine_journal_deferred(c, "tool.call.completed", actor, p, err);
    if (rc != KEEL_ELIMIT) return rc;
    json_object_del(p, "result", 6);
    *result = NULL;
    *error = engine_error_obj(c, KEEL_ELIMIT,
                              "the tool's result is larger than the journal's payload limit; make "
                              "the tool return less (or a reference to the data)");
    jset_v(c->arena, p, "error", *error);
    return engine_journal_deferred(c, "tool.call.completed", actor, p, err);
}

int engine_needs_reconcile(struct run_ctx *c, const struct workflow_step *s, const char *call_id,
                           const char *tool, const char *agent, struct keel_err *err)
{
    struct json_value *p = json_object(c->arena);
    jset_s(c->arena, p, "step", s->id);
    jset_s(c->arena, p, "call_id", call_id);
    jset_s(c->arena, p, "tool", tool);
    jset_s(c->arena, p, "agent", agent);
    jset_s(c->arena, p, "reason",
           "the tool call started but no result was recorded, and the tool is not declared "
           "idempotent; check the tool's side and reconcile by hand (keel run reconcile)");
    return engine_finish(c, RUN_NEEDS_RECONCILE, "run.needs_reconcile", p, NULL, err);
}

static int exec_tool(struct run_ctx *c, const struct workflow_step *s, struct keel_err *err)
{
    struct run_view *v = &c->view;
    char qualified[2 * ENGINE_ID_MAX + 2];
    snprintf(qualified, sizeof qualified, "%s/%s", s->call.server, s->call.tool);
    if (v->call_done)
        return call_outcome(c, s, NULL, qualified, v->call_result, v->call_error, err);

    struct engine_tool_schemas *ts = NULL;
    struct keel_err terr;
    keel_err_clear(&terr);
    int rc = engine_tool_info(c->e, qualified, &ts, &terr);
    if (rc) {
        /* The server could not start or has no such tool: nothing ran. */
        return engine_step_failed(c, s, rc, terr.msg, retryable_code(rc), err);
    }

    const char *key;
    struct json_value *args;
    char keybuf[65];
    if (v->call_open) {
        /* Started before a crash, no result recorded. */
        if (!ts->idempotent)
            return engine_needs_reconcile(c, s, v->call_id ? v->call_id : "", qualified, NULL, err);
        key = v->call_key;
        args = v->call_args ? v->call_args : json_object(c->arena);
    } else {
        args = json_object(c->arena);
        if (s->call.args) {
            struct keel_err rerr;
            keel_err_clear(&rerr);
            if (workflow_render(s->call.args, vars(c, c->view.last_result), c->arena, &args, &rerr))
                return engine_step_failed(c, s, rerr.code, rerr.msg, false, err);
        }
        struct keel_err verr;
        keel_err_clear(&verr);
        if (engine_validate(ts->input, args, "arguments", qualified, &verr))
            return engine_step_failed(c, s, KEEL_ESCHEMA, verr.msg, false, err);
        rc = policy_gate(c, s, qualified, args, err);
        if (rc <= 0) return rc;
        engine_idempotency_key(c->run.id, s->id, v->visit, keybuf);
        key = keybuf;
        struct json_value *p = json_object(c->arena);
        char call_id[3 * ENGINE_ID_MAX];
        snprintf(call_id, sizeof call_id, "%s/%d", s->id, v->visit);
        jset_s(c->arena, p, "step", s->id);
        jset_s(c->arena, p, "call_id", call_id);
        jset_s(c->arena, p, "server", s->call.server);
        jset_s(c->arena, p, "tool", s->call.tool);
        jset_v(c->arena, p, "args", args);
        jset_s(c->arena, p, "idempotency_key", key);
        if ((rc = engine_journal(c, "tool.call.started", c->agent_actor, p, err))) return rc;
    }

    struct mcp_call_result r;
    struct keel_err cerr;
    keel_err_clear(&cerr);
    int64_t t0 = keel_mono_ns();
    rc = mcp_pool_call(c->e->pool, qualified, args, key, s->timeout_ms, c->arena, &r, &cerr);
    struct json_value *p = json_object(c->arena);
    jset_s(c->arena, p, "step", s->id);
    char call_id[3 * ENGINE_ID_MAX];
    snprintf(call_id, sizeof call_id, "%s/%d", s->id, v->visit);
    jset_s(c->arena, p, "call_id", call_id);
    jset_i(c->arena, p, "duration_ms", (keel_mono_ns() - t0) / 1000000);
    struct json_value *result = NULL, *error = NULL;
    if (rc) {
        error = engine_error_obj(c, rc, cerr.msg);
    } else if (r.is_error) {
        error = engine_error_obj(c, KEEL_EIO, mcp_result_text(c->arena, &r));
        json_object_setc(c->arena, error, "tool_error", json_bool(c->arena, true));
        jset_v(c->arena, p, "is_error", json_bool(c->arena, true));
    } else {
        result = result_value(c, &r);
    }
    jset_v(c->arena, p, "result", result);
    jset_v(c->arena, p, "error", error);
    rc = engine_journal_call_completed(c, c->agent_actor, p, &result, &error, err);
    if (rc) return rc;
    return call_outcome(c, s, ts, qualified, result, error, err);
}

/* ---- control steps ----------------------------------------------------- */

static int exec_switch(struct run_ctx *c, const struct workflow_step *s, struct keel_err *err)
{
    int next;
    struct keel_err serr;
    keel_err_clear(&serr);
    if (workflow_switch_next(s, vars(c, c->view.last_result), c->arena, &next, &serr))
        return fail_run(c, s, serr.code ? serr.code : KEEL_EINVAL, serr.msg, err);
    return engine_complete(c, s, NULL, next, err);
}

static int exec_set(struct run_ctx *c, const struct workflow_step *s, struct keel_err *err)
{
    for (size_t i = 0; i < s->set.nentries; i++) {
        const struct workflow_set_entry *en = &s->set.entries[i];
        struct json_value *val;
        struct keel_err rerr;
        keel_err_clear(&rerr);
        if (workflow_render(en->value, vars(c, c->view.last_result), c->arena, &val, &rerr))
            return fail_run(c, s, rerr.code, rerr.msg, err);
        if (check_state(c, en->key, val, &rerr))
            return fail_run(c, s, rerr.code ? rerr.code : KEEL_ESCHEMA, rerr.msg, err);
        int rc = state_updated(c, s, en->key, val, err);
        if (rc) return rc;
    }
    return engine_complete(c, s, NULL, s->next, err);
}

static int exec_end(struct run_ctx *c, const struct workflow_step *s, bool ok, struct keel_err *err)
{
    struct json_value *out = NULL, *msg = NULL;
    struct keel_err rerr;
    keel_err_clear(&rerr);
    if (s->end.output &&
        workflow_render(s->end.output, vars(c, c->view.last_result), c->arena, &out, &rerr))
        return fail_run(c, s, rerr.code, rerr.msg, err);
    if (s->end.message &&
        workflow_render(s->end.message, vars(c, c->view.last_result), c->arena, &msg, &rerr))
        return fail_run(c, s, rerr.code, rerr.msg, err);
    if (ok) {
        struct json_value *p = json_object(c->arena);
        jset_v(c->arena, p, "output", out);
        jset_s(c->arena, p, "step", s->id);
        return engine_finish(c, RUN_SUCCEEDED, "run.succeeded", p, NULL, err);
    }
    const char *m = json_is(msg, JSON_STRING) ? msg->u.s.str : "the workflow failed the run";
    return fail_run(c, s, KEEL_EINVAL, m, err);
}

static int exec_succeed(struct run_ctx *c, const struct workflow_step *s, struct keel_err *err)
{
    return exec_end(c, s, true, err);
}
static int exec_fail(struct run_ctx *c, const struct workflow_step *s, struct keel_err *err)
{
    return exec_end(c, s, false, err);
}

typedef int (*step_exec)(struct run_ctx *c, const struct workflow_step *s, struct keel_err *err);
static const step_exec step_table[WORKFLOW_STEP_KIND_COUNT] = {
    [WORKFLOW_STEP_TOOL] = exec_tool,          [WORKFLOW_STEP_APPROVAL] = exec_approval,
    [WORKFLOW_STEP_SWITCH] = exec_switch,      [WORKFLOW_STEP_SET] = exec_set,
    [WORKFLOW_STEP_SUCCEED] = exec_succeed,    [WORKFLOW_STEP_FAIL] = exec_fail,
    [WORKFLOW_STEP_AGENT] = engine_exec_agent,
};

/* ---- waits ------------------------------------------------------------- */

static int resume(struct run_ctx *c, const char *reason, const char *id_key, const char *id,
                  struct keel_err *err)
{
    struct json_value *p = json_object(c->arena);
    jset_s(c->arena, p, "reason", reason);
    jset_s(c->arena, p, id_key, id);
    int rc = engine_journal(c, "run.resumed", NULL, p, err);
    if (rc) return rc;
    rc = store_run_set_status(c->e->store, c->run.id, STORE_RUN_MASK(STORE_RUN_WAITING),
                              STORE_RUN_RUNNING, reason, 0, NULL);
    if (rc == KEEL_ENOENT) return rc;
    if (!rc) c->run.status = STORE_RUN_RUNNING;
    return 0;
}

/* Returns 1 if the wait is over (the run continues), 0 if still parked. */
static int check_wait(struct run_ctx *c, struct keel_err *err)
{
    struct run_view *v = &c->view;
    int64_t now = keel_wall_ms();
    int rc;
    if (v->wait == WAIT_TIMER) {
        if (v->wait_until && now < v->wait_until) return 0;
        const char *tid = v->wait_id; /* run.resumed clears it from the view */
        struct json_value *p = json_object(c->arena);
        jset_s(c->arena, p, "timer_id", tid);
        jset_s(c->arena, p, "step", v->step);
        if ((rc = engine_journal(c, "timer.fired", NULL, p, err))) return rc;
        if ((rc = resume(c, "timer", "timer_id", tid, err))) return rc;
        store_timer_delete(c->e->store, tid, NULL);
        return 1;
    }
    struct store_approval ap;
    if ((rc = store_approval_get(c->e->store, v->wait_id, c->arena, &ap, err))) return rc;
    if (ap.status == STORE_APPROVAL_PENDING) {
        if (!ap.expires_ms || now < ap.expires_ms) return 0;
        rc = store_approval_decide(c->e->store, ap.id, STORE_APPROVAL_EXPIRED, "system",
                                   "no decision before the deadline", 0, err);
        if (rc && rc != KEEL_ESTATE) return rc;
        if ((rc = store_approval_get(c->e->store, v->wait_id, c->arena, &ap, err))) return rc;
    }
    struct json_value *p = json_object(c->arena);
    jset_s(c->arena, p, "approval_id", ap.id);
    jset_s(c->arena, p, "decision", store_approval_status_name(ap.status));
    jset_s(c->arena, p, "by", ap.decided_by ? ap.decided_by : "system");
    jset_s(c->arena, p, "comment", ap.comment);
    if ((rc = engine_journal(c, "approval.decided", ap.decided_by, p, err))) return rc;
    if ((rc = resume(c, "approval", "approval_id", ap.id, err))) return rc;
    char tid[64];
    snprintf(tid, sizeof tid, "%s/timeout", ap.id);
    store_timer_delete(c->e->store, tid, NULL);
    return 1;
}

/* ---- one transition ---------------------------------------------------- */

int engine_step(struct run_ctx *c, struct keel_err *err)
{
    struct run_view *v = &c->view;
    const struct workflow *wf = c->ew->wf;
    int rc;
    if (v->final) {
        /* The final event is journaled but the status row may lag (crash
         * between the two writes): repair it. */
        if (c->run.status != store_status[v->status]) set_status(c, v->status, "resume", NULL);
        store_timer_delete_run(c->e->store, c->run.id, NULL, NULL);
        return 0;
    }
    /* A cancel request is durable (kv "cancel/<run>") so it survives a crash
     * between the request and this transition. */
    struct arena *a = c->arena;
    char ck[ENGINE_ID_MAX + 16];
    snprintf(ck, sizeof ck, "cancel/%s", c->run.id);
    const char *by = NULL;
    /* A kept context looks again only after a cancel request somewhere
     * (engine_run_cancel bumps the generation before it enqueues). */
    uint64_t gen = __atomic_load_n(&c->e->cancel_gen, __ATOMIC_SEQ_CST);
    bool look = c->slot->cancel_gen != gen;
    c->slot->cancel_gen = gen;
    if (look && store_kv_get(c->e->store, ck, a, &by, NULL) == 0) {
        struct json_value *p = json_object(c->arena);
        jset_s(c->arena, p, "by", by);
        jset_s(c->arena, p, "reason", "cancelled on request");
        rc = engine_finish(c, RUN_CANCELLED, "run.cancelled", p, by, err);
        if (!rc) store_kv_delete(c->e->store, ck, NULL);
        return rc;
    }
    if (v->wait != WAIT_NONE) {
        if (c->run.status != STORE_RUN_WAITING) set_status(c, RUN_WAITING, "resume", NULL);
        return check_wait(c, err); /* 1: resumed, 0: still parked */
    }
    if (c->run.status == STORE_RUN_PENDING || c->run.status == STORE_RUN_WAITING)
        set_status(c, RUN_RUNNING, "running", NULL);

    const struct workflow_step *s = NULL;
    if (v->in_step) {
        s = workflow_step_find(wf, v->step);
    } else {
        int attempt = 1;
        if (!v->step) {
            s = wf->nsteps ? &wf->steps[0] : NULL;
        } else if (v->have_next) {
            s = v->next_step[0] ? workflow_step_find(wf, v->next_step) : NULL;
        } else {
            /* step.failed then a retry timer fired: the same step again. */
            s = workflow_step_find(wf, v->step);
            attempt = v->attempt + 1;
        }
        if (!s) {
            struct json_value *p = json_object(c->arena);
            return engine_finish(c, RUN_SUCCEEDED, "run.succeeded", p, NULL, err);
        }
        /* A pure step (set, switch) has nothing to protect between its
         * start and its end: no step.started; its events (state.updated
         * naming the step, then step.completed) are written together, in
         * one request, so after a crash it either happened or is run
         * again.  Before a tool, approval or agent step, step.started is
         * deferred too: the step's first effect is preceded by a
         * synchronous append, which makes it durable. */
        bool pure = s->kind == WORKFLOW_STEP_SET || s->kind == WORKFLOW_STEP_SWITCH;
        if (!pure || attempt > 1) {
            struct json_value *p = json_object(c->arena);
            jset_s(c->arena, p, "step", s->id);
            jset_i(c->arena, p, "attempt", attempt);
            if ((rc = engine_journal_deferred(c, "step.started", NULL, p, err))) return rc;
        }
    }
    if (!s)
        return fail_run(c, NULL, KEEL_ECORRUPT,
                        "the journal names a step the workflow version does not have", err);
    rc = step_table[s->kind](c, s, err);
    if (rc) return rc;
    return 1;
}
