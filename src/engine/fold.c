/*
 * fold.c — where is a run?  Reads the run's journal and folds it into a
 * struct run_view: the step it is in, the attempt, a tool call that started
 * without a recorded result, what it waits for, approval decisions, and the
 * state (state.updated events through the workflow's reducers).
 *
 * This is the whole of resume: after a crash the engine knows nothing but
 * the journal, and every decision a worker makes is taken from this view.
 * So the rules below are the resume rules of docs/engine.md:
 *   - step.completed ends a step; its recorded result and next step are
 *     used, the step is never executed again;
 *   - each step.started with attempt 1 starts a new visit of that step
 *     (switch loops); idempotency keys and approval ids are per visit;
 *   - tool.call.started without tool.call.completed is an open call
 *     (retried with the same idempotency key, or needs_reconcile);
 *   - run.waiting without a later run.resumed is a parked run;
 *   - run.succeeded / failed / cancelled / needs_reconcile are final
 *     (needs_reconcile only until a human acts).
 */
#include "internal.h"

#include <string.h>

struct fold {
    struct run_view *v;
    const struct workflow *wf;
    const struct journal_reducers *red;
    struct keel_err *err;
};

typedef void (*fold_fn)(struct run_view *v, const struct json_value *p);

static const char *str(struct run_view *v, const struct json_value *p, const char *k)
{
    return json_get_str(p, k, NULL);
}

static void on_step_started(struct run_view *v, const struct json_value *p)
{
    const char *step = str(v, p, "step");
    /* A retry (attempt > 1) keeps the approval its visit already has; a
     * new visit asks anew. */
    if (!v->step || !step || strcmp(step, v->step) != 0 || json_get_int(p, "attempt", 1) <= 1)
        v->approval_id = v->approval_decision = v->approval_by = v->approval_comment = NULL;
    v->step = step;
    v->in_step = true;
    v->attempt = (int)json_get_int(p, "attempt", 1);
    v->call_open = v->call_done = false;
    v->call_result = v->call_error = NULL;
    v->have_next = false;
}

static void on_step_completed(struct run_view *v, const struct json_value *p)
{
    /* A pure step (set, switch) journals no step.started: its completion
     * is its visit. */
    const char *step = str(v, p, "step");
    if (step && (!v->in_step || !v->step || strcmp(step, v->step) != 0)) {
        engine_view_visit(v, step, 1);
        v->step = step;
        v->attempt = (int)json_get_int(p, "attempt", 1);
    }
    v->capture = false;
    v->nvisit_events = 0;
    v->in_step = false;
    v->call_open = false;
    v->next_step = json_get_str(p, "next", "");
    v->last_result = json_get(p, "result");
    v->have_next = true;
    v->approval_id = v->approval_decision = v->approval_by = v->approval_comment = NULL;
}

static void on_step_failed(struct run_view *v, const struct json_value *p)
{
    v->in_step = false;
    v->call_open = false;
    v->have_next = false;
}

static void on_call_started(struct run_view *v, const struct json_value *p)
{
    v->call_open = true;
    v->call_done = false;
    v->call_key = str(v, p, "idempotency_key");
    v->call_id = str(v, p, "call_id");
    v->call_args = json_get(p, "args");
}

static void on_call_completed(struct run_view *v, const struct json_value *p)
{
    v->call_open = false;
    v->call_done = true;
    v->call_result = json_get(p, "result");
    v->call_error = json_get(p, "error");
}

static void on_waiting(struct run_view *v, const struct json_value *p)
{
    const char *r = json_get_str(p, "reason", "");
    v->wait = !strcmp(r, "approval") ? WAIT_APPROVAL : WAIT_TIMER;
    v->wait_id = str(v, p, !strcmp(r, "approval") ? "approval_id" : "timer_id");
    v->wait_until = json_get_int(p, "until", 0);
    v->status = RUN_WAITING;
}

static void on_resumed(struct run_view *v, const struct json_value *p)
{
    /* A human reconciled an open call (reconcile.c): the run goes on. */
    if (v->final && v->status == RUN_NEEDS_RECONCILE &&
        !strcmp(json_get_str(p, "reason", ""), "reconcile")) {
        v->final = false;
        v->error_message = NULL;
    }
    v->wait = WAIT_NONE;
    v->wait_id = NULL;
    v->wait_until = 0;
    v->status = RUN_RUNNING;
}

static void on_approval_requested(struct run_view *v, const struct json_value *p)
{
    v->approval_id = str(v, p, "approval_id");
    v->approval_decision = NULL;
}

static void on_approval_decided(struct run_view *v, const struct json_value *p)
{
    v->approval_decision = str(v, p, "decision");
    v->approval_by = str(v, p, "by");
    v->approval_comment = str(v, p, "comment");
}

static void final_as(struct run_view *v, enum engine_run_status st)
{
    v->final = true;
    v->status = st;
    v->wait = WAIT_NONE;
}
static void on_succeeded(struct run_view *v, const struct json_value *p)
{
    final_as(v, RUN_SUCCEEDED);
}
static void on_cancelled(struct run_view *v, const struct json_value *p)
{
    final_as(v, RUN_CANCELLED);
}
static void on_reconcile(struct run_view *v, const struct json_value *p)
{
    final_as(v, RUN_NEEDS_RECONCILE);
    v->error_message = json_get_str(p, "reason", NULL);
}
static void on_failed(struct run_view *v, const struct json_value *p)
{
    final_as(v, RUN_FAILED);
    v->error_message = json_get_str(json_get(p, "error"), "message", NULL);
}

/* What each event kind does to the view; kinds not listed change nothing
 * but state (state.updated is folded by the journal part). */
static const struct {
    const char *kind;
    fold_fn fn;
} fold_table[] = {
    {"step.started", on_step_started},
    {"step.completed", on_step_completed},
    {"step.failed", on_step_failed},
    {"tool.call.started", on_call_started},
    {"tool.call.completed", on_call_completed},
    {"run.waiting", on_waiting},
    {"run.resumed", on_resumed},
    {"approval.requested", on_approval_requested},
    {"approval.decided", on_approval_decided},
    {"run.succeeded", on_succeeded},
    {"run.failed", on_failed},
    {"run.cancelled", on_cancelled},
    {"run.needs_reconcile", on_reconcile},
};

static struct agent_usage *usage_of(struct run_view *v, const char *agent)
{
    struct agent_usage *u = v->usage;
    while (u && strcmp(u->agent, agent) != 0)
        u = u->next;
    if (!u) {
        u = arena_zalloc(v->arena, sizeof *u);
        u->agent = arena_strdup(v->arena, agent);
        u->next = v->usage;
        v->usage = u;
    }
    return u;
}

/* Model usage and budget extensions count for the whole run. */
static void on_usage(struct run_view *v, const char *kind, const struct json_value *p)
{
    const char *agent = json_get_str(p, "agent", NULL);
    if (!strcmp(kind, "budget.extended")) {
        if (!strcmp(json_get_str(p, "scope", ""), "run"))
            v->run_extensions++;
        else if (agent)
            usage_of(v, agent)->extensions++;
        return;
    }
    const struct json_value *u = json_get(p, "usage");
    int64_t t = json_get_int(u, "input_tokens", 0) + json_get_int(u, "output_tokens", 0);
    const struct json_value *cost = json_get(p, "cost_usd");
    double usd = json_is(cost, JSON_NUMBER) ? cost->u.n.d : 0;
    v->tokens += t;
    v->usd += usd;
    if (agent) {
        struct agent_usage *au = usage_of(v, agent);
        au->tokens += t;
        au->usd += usd;
    }
}

/* Keeps the events of the current visit of an agent step (agent.h). */
static int capture(struct fold *f, const struct journal_event *ev, const struct json_value *p)
{
    struct run_view *v = f->v;
    if (v->nvisit_events == v->capvisit_events) {
        size_t cap = v->capvisit_events ? 2 * v->capvisit_events : 32;
        struct agent_event *n = arena_alloc(v->arena, cap * sizeof *n);
        if (v->nvisit_events) memcpy(n, v->visit_events, v->nvisit_events * sizeof *n);
        v->visit_events = n;
        v->capvisit_events = cap;
    }
    struct agent_event *e = &v->visit_events[v->nvisit_events++];
    e->seq = ev->seq;
    e->kind = arena_strdup(v->arena, ev->kind);
    e->actor = arena_strdup(v->arena, ev->actor);
    e->payload = p;
    return 0;
}

static bool is_usage_kind(const char *k)
{
    return !strcmp(k, "model.response") || !strcmp(k, "budget.extended");
}

static int on_event(void *ctx, const struct journal_event *ev)
{
    struct fold *f = ctx;
    struct run_view *v = f->v;
    v->events = ev->seq;
    if (!strcmp(ev->kind, "state.updated")) {
        int rc = journal_fold_event(f->red, v->arena, v->state, ev, f->err);
        return rc;
    }
    fold_fn fn = NULL;
    for (size_t i = 0; i < KEEL_ARRAY_LEN(fold_table) && !fn; i++)
        if (!strcmp(fold_table[i].kind, ev->kind)) fn = fold_table[i].fn;
    bool usage = is_usage_kind(ev->kind);
    if (!fn && !usage && !v->capture) return 0;
    /* Parsed once, for every use below. */
    struct json_value *p = NULL;
    struct json_parse_opts o = {.dup = JSON_DUP_LAST};
    if (json_parse(v->arena, ev->payload, ev->payload_len, &o, &p, f->err)) {
        keel_err_prefix(f->err, "run %s event %lld", ev->run_id, (long long)ev->seq);
        return KEEL_ECORRUPT;
    }
    if (usage) on_usage(v, ev->kind, p);
    if (v->capture && fn != on_step_started) capture(f, ev, p);
    if (fn) fn(v, p);
    if (fn == on_step_started && v->step) engine_view_step_started(v, f->wf, v->step, v->attempt);
    return 0;
}

/* Visits count first attempts: a step reached again through a switch loop
 * is a new call (new idempotency key, new approval); a retry is the same
 * visit. */
void engine_view_visit(struct run_view *v, const char *step, int attempt)
{
    /* Steps of the version: counted by index; others (a damaged journal)
     * in a list. */
    const struct workflow_step *s = v->wf ? workflow_step_find(v->wf, step) : NULL;
    if (s) {
        if (!v->visit_n) v->visit_n = arena_zalloc(v->arena, v->wf->nsteps * sizeof *v->visit_n);
        int *n = &v->visit_n[s - v->wf->steps];
        if (attempt <= 1) (*n)++;
        v->visit = *n ? *n - 1 : 0;
        return;
    }
    struct visit_count *vc = v->visits;
    while (vc && strcmp(vc->step, step) != 0)
        vc = vc->next;
    if (!vc) {
        vc = arena_zalloc(v->arena, sizeof *vc);
        vc->step = arena_strdup(v->arena, step);
        vc->next = v->visits;
        v->visits = vc;
    }
    if (attempt <= 1) vc->n++;
    v->visit = vc->n ? vc->n - 1 : 0;
}

/* The view after step.started of step at attempt: its visit is counted,
 * and an agent step's visit events are collected from its first attempt on
 * (a retry continues the conversation). */
void engine_view_step_started(struct run_view *v, const struct workflow *wf, const char *step,
                              int attempt)
{
    engine_view_visit(v, step, attempt);
    const struct workflow_step *s = wf ? workflow_step_find(wf, step) : NULL;
    bool agent = s && s->kind == WORKFLOW_STEP_AGENT;
    if (!agent || attempt <= 1 || !v->capture) v->nvisit_events = 0;
    v->capture = agent;
}

void engine_view_init(struct run_view *v, const char *run_id, const struct workflow *wf,
                      struct arena *a)
{
    memset(v, 0, sizeof *v);
    v->run_id = run_id;
    v->arena = a;
    v->wf = wf;
    v->status = RUN_RUNNING;
    struct journal_state_key *keys = NULL;
    if (wf && wf->nstate) {
        keys = arena_zalloc(a, wf->nstate * sizeof *keys);
        for (size_t i = 0; i < wf->nstate; i++) {
            keys[i].key = wf->state[i].name;
            keys[i].reducer = (enum journal_reducer)wf->state[i].reducer;
            keys[i].initial = wf->state[i].initial;
        }
    }
    v->red.keys = keys;
    v->red.n = wf ? wf->nstate : 0;
    v->red.fallback = JOURNAL_REDUCE_REPLACE;
    v->state = journal_state_initial(&v->red, a);
}

int engine_fold(struct engine *e, const char *run_id, const struct workflow *wf, struct arena *a,
                struct run_view *v, struct keel_err *err)
{
    engine_view_init(v, run_id, wf, a);
    struct fold f = {.v = v, .wf = wf, .red = &v->red, .err = err};
    return journal_read(e->store, run_id, 1, on_event, &f, err);
}

int engine_view_apply(struct run_view *v, const struct journal_event *ev, struct keel_err *err)
{
    struct fold f = {.v = v, .wf = v->wf, .red = &v->red, .err = err};
    return on_event(&f, ev);
}

/* ---- checking a kept view against the journal -------------------------- */

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool same_json(const struct json_value *a, const struct json_value *b)
{
    if (!a || !b) return !a && !b;
    struct buf x, y;
    buf_init(&x);
    buf_init(&y);
    bool same = json_write(&x, a, JSON_WRITE_CANONICAL, NULL) == 0 &&
                json_write(&y, b, JSON_WRITE_CANONICAL, NULL) == 0 && x.len == y.len &&
                !memcmp(x.data, y.data, x.len);
    buf_cleanup(&x);
    buf_cleanup(&y);
    return same;
}

static int visits_of(const struct run_view *v, const char *step)
{
    const struct workflow_step *s = v->wf ? workflow_step_find(v->wf, step) : NULL;
    if (s) return v->visit_n ? v->visit_n[s - v->wf->steps] : 0;
    for (const struct visit_count *vc = v->visits; vc; vc = vc->next)
        if (!strcmp(vc->step, step)) return vc->n;
    return 0;
}

const char *engine_view_diff(const struct run_view *a, const struct run_view *b)
{
#define SAME(f)                                                                                    \
    if (a->f != b->f) return #f
#define SAME_S(f)                                                                                  \
    if (!same_str(a->f, b->f)) return #f
#define SAME_J(f)                                                                                  \
    if (!same_json(a->f, b->f)) return #f
    SAME(events);
    SAME(final);
    SAME(status);
    SAME_S(step);
    SAME(in_step);
    SAME(attempt);
    SAME(visit);
    SAME_S(next_step);
    SAME_J(last_result);
    SAME(have_next);
    SAME(call_open);
    SAME_S(call_key);
    SAME_S(call_id);
    SAME_J(call_args);
    SAME(call_done);
    SAME_J(call_result);
    SAME_J(call_error);
    SAME(wait);
    SAME_S(wait_id);
    SAME(wait_until);
    SAME_S(approval_id);
    SAME_S(approval_decision);
    SAME_S(approval_by);
    SAME_S(approval_comment);
    SAME(nvisit_events);
    SAME(capture);
    SAME(tokens);
    SAME(usd);
    SAME(run_extensions);
    SAME_J(state);
    SAME_S(error_message);
    if (a->wf)
        for (size_t i = 0; i < a->wf->nsteps; i++)
            if (visits_of(a, a->wf->steps[i].id) != visits_of(b, a->wf->steps[i].id))
                return "visits";
    for (size_t i = 0; i < a->nvisit_events; i++)
        if (a->visit_events[i].seq != b->visit_events[i].seq) return "visit_events";
    return NULL;
#undef SAME
#undef SAME_S
#undef SAME_J
}
