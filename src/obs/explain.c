/*
 * explain.c — builds the explain report of a run from its journal
 * (docs/explain.md documents the report; obs.h the contract).
 *
 * One pass over the events, in seq order, with one handler per event kind
 * (kind_table).  The pass keeps:
 *   - the state, folded with journal_fold_event exactly as the engine folds
 *     it (reducers from the pinned workflow version, else the one named in
 *     each state.updated), so "the value at that point" is what the engine
 *     saw;
 *   - the current step visit (a step.started with attempt 1 opens one; a
 *     retry continues it), holding the timeline entry being filled;
 *   - the provenance of every state key: the state.updated that last wrote
 *     it and the step's source behind it (a tool result, a model answer and
 *     the tool results the agent had read, an approval, or a set step's
 *     template inputs with their own provenance);
 *   - the source of the last step's result (what `result.x` reads);
 *   - counters for the summary and per acting identity.
 *
 * Invariants: the caller's events are never modified (the fold parses each
 * state.updated payload into the arena again, and values shown in the report
 * are copies, so a later append/merge into the state cannot change an
 * earlier entry); every value copied into the report is capped at
 * OBS_VALUE_MAX bytes; provenance chains embedded in switch causes stop at
 * OBS_CHAIN_MAX levels; nothing outside the journal, the run object and the
 * workflow version is read (so nothing secret can enter the report).
 *
 * This file holds the pass itself, the summary's collectors (attention
 * items, per-identity usage) and the report assembled at the end.  The
 * handlers are in explain_events.c (run, steps, tool calls, policy,
 * approvals, state) and explain_agent.c (model calls and the other events
 * of agent steps); provenance and switch causes in explain_prov.c; capped
 * values in explain_value.c; internal.h has what they share.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- time --------------------------------------------------------------- */

/* Parses "2026-11-25T19:31:26.123Z" (or an integer) to ms; 0 if unknown. */
static int64_t time_ms_of(const struct json_value *t)
{
    if (json_is(t, JSON_NUMBER)) return (int64_t)t->u.n.d;
    if (!json_is(t, JSON_STRING)) return 0;
    int y, mo, d, h, mi, s, ms = 0, n = 0;
    if (sscanf(t->u.s.str, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6)
        return 0;
    const char *p = t->u.s.str + n;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++)
            if (digits++ < 3) ms = ms * 10 + (*p - '0');
        while (digits > 0 && digits < 3)
            ms *= 10, digits++;
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* ---- identities --------------------------------------------------------- */

/* The usage record of an acting identity; in c->a. */
struct agent_stats *obs_identity_stats(struct ctx *c, const char *name)
{
    if (!name || !*name) name = "system";
    for (struct agent_stats *s = c->agents; s; s = s->next)
        if (!strcmp(s->name, name)) return s;
    struct agent_stats *s = arena_zalloc(c->a, sizeof *s);
    s->name = arena_strdup(c->a, name);
    /* Append, so identities list in order of first appearance. */
    struct agent_stats **tail = &c->agents;
    while (*tail)
        tail = &(*tail)->next;
    *tail = s;
    return s;
}

/* ---- attention ---------------------------------------------------------- */

/* Adds an attention item to the summary (the list is in c->a). */
void obs_attention(struct ctx *c, const char *what, const char *step, const char *fmt, ...)
{
    if (c->attention->len >= OBS_ATTENTION_MAX) {
        c->attention_omitted++;
        return;
    }
    struct buf b;
    buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    struct json_value *o = obj(c);
    set_s(c, o, "kind", what);
    set_i(c, o, "seq", c->seq);
    set_s(c, o, "step", step);
    set_s(c, o, "message", obs_cut(c->a, b.data ? b.data : "", b.len, 4 * OBS_PREVIEW_MAX));
    json_array_push(c->a, c->attention, o);
    buf_cleanup(&b);
}

/* ---- the report --------------------------------------------------------- */

static void finish_visits(struct ctx *c)
{
    for (uint32_t i = 0; i < c->timeline->len; i++) {
        struct json_value *e = c->timeline->u.items[i];
        if (!json_get(e, "status")) set_s(c, e, "status", "running");
    }
}

/* Writes each visit's attempts, identity and usage (kept in struct visit
 * while the pass runs; the entry objects are final only at the end). */
static void visit_totals(struct ctx *c, struct visit *v)
{
    set_i(c, v->entry, "attempts", v->attempts);
    struct json_value *actor = obj(c);
    set_s(c, actor, "identity", v->identity);
    set_s(c, actor, "credential", "none brokered");
    set_v(c, v->entry, "actor", actor);
    struct json_value *u = obj(c);
    set_i(c, u, "input_tokens", v->input_tokens);
    set_i(c, u, "output_tokens", v->output_tokens);
    set_d(c, u, "cost_usd", v->cost);
    set_v(c, v->entry, "usage", u);
}

static const char *duration_text(struct arena *a, int64_t ms)
{
    if (ms < 1000) return arena_printf(a, "%lld ms", (long long)ms);
    if (ms < 120000) return arena_printf(a, "%.1f s", (double)ms / 1000);
    if (ms < 7200000) return arena_printf(a, "%.1f min", (double)ms / 60000);
    if (ms < 172800000) return arena_printf(a, "%.1f h", (double)ms / 3600000);
    return arena_printf(a, "%.1f days", (double)ms / 86400000);
}

static const char *outcome(struct ctx *c, const char *status, int64_t duration)
{
    const char *d = duration_text(c->a, duration);
    const char *last = c->cur ? c->cur->step : NULL;
    if (!strcmp(status, "succeeded"))
        return arena_printf(c->a, "Succeeded after %lld step visit%s in %s.", (long long)c->steps,
                            c->steps == 1 ? "" : "s", d);
    if (!strcmp(status, "failed")) {
        const struct json_value *e = json_get(c->final_payload, "error");
        return arena_printf(c->a, "Failed at step %s after %s: %s",
                            json_get_str(c->final_payload, "step", last ? last : "?"), d,
                            obs_cut(c->a, json_get_str(e, "message", "no message"),
                                    strlen(json_get_str(e, "message", "no message")), 300));
    }
    if (!strcmp(status, "cancelled"))
        return arena_printf(c->a, "Cancelled by %s after %s (%s).",
                            json_get_str(c->final_payload, "by", "?"), d,
                            json_get_str(c->final_payload, "reason", "no reason given"));
    if (!strcmp(status, "needs_reconcile"))
        return arena_printf(c->a,
                            "Needs reconciling: call %s to %s at step %s started but has no "
                            "recorded result; check the tool's side, then cancel the run.",
                            json_get_str(c->final_payload, "call_id", "?"),
                            json_get_str(c->final_payload, "tool", "?"),
                            json_get_str(c->final_payload, "step", "?"));
    if (c->waiting && !strcmp(json_get_str(c->waiting, "reason", ""), "approval")) {
        const char *id = json_get_str(c->waiting, "approval_id", "?");
        const struct json_value *ap = strmap_get(&c->approvals, id, strlen(id));
        return arena_printf(c->a, "Waiting since %s for approval %s (group %s) at step %s.",
                            json_get_str(c->waiting, "since", "?"), id,
                            json_get_str(ap, "group", "?"), last ? last : "?");
    }
    if (c->waiting)
        return arena_printf(c->a, "Waiting (%s) at step %s since %s.",
                            json_get_str(c->waiting, "reason", "?"), last ? last : "?",
                            json_get_str(c->waiting, "since", "?"));
    return arena_printf(c->a, "Running: at step %s after %s.", last ? last : "(none yet)", d);
}

int obs_explain(const struct json_value *run, const struct json_value *events,
                const struct workflow *wf, struct arena *a, struct json_value **out,
                struct keel_err *err)
{
    if (!json_is(events, JSON_ARRAY))
        return keel_fail(err, KEEL_EINVAL, "explain: the events must be an array");
    struct ctx c0 = {.a = a, .wf = wf};
    struct ctx *c = &c0;
    strmap_init(&c->prov);
    strmap_init(&c->visit_n);
    strmap_init(&c->calls);
    strmap_init(&c->mcalls);
    strmap_init(&c->approvals);
    c->timeline = json_array(a);
    c->attention = json_array(a);
    c->approval_list = json_array(a);
    c->switches = json_array(a);
    c->anomalies = json_array(a);
    c->run_id = str(run, "id");
    c->workflow = str(run, "workflow");
    c->workflow_hash = str(run, "workflow_hash");
    c->input = json_get(run, "input");
    if (wf) {
        struct journal_state_key *keys = arena_zalloc(a, (wf->nstate + 1) * sizeof *keys);
        for (size_t i = 0; i < wf->nstate; i++)
            keys[i] =
                (struct journal_state_key){.key = wf->state[i].name,
                                           .reducer = (enum journal_reducer)wf->state[i].reducer,
                                           .initial = wf->state[i].initial};
        c->reducers = (struct journal_reducers){.keys = keys, .n = wf->nstate};
    }
    c->state = journal_state_initial(&c->reducers, a);
    /* Index each visit so totals can be written at the end. */
    struct visit **visits = NULL;
    size_t nvisits = 0, cap = 0;

    for (uint32_t i = 0; i < events->len; i++) {
        const struct json_value *ev = events->u.items[i];
        const char *kind = str(ev, "kind");
        const struct json_value *p = json_get(ev, "payload");
        if (!json_is(p, JSON_OBJECT)) p = json_object(a);
        c->seq = json_get_int(ev, "seq", (int64_t)i + 1);
        c->time_ms = time_ms_of(json_get(ev, "time"));
        c->time_text = str(ev, "time");
        if (!c->time_text && c->time_ms) {
            char t[32];
            keel_format_time(c->time_ms, t);
            c->time_text = arena_strdup(a, t);
        }
        c->actor = str(ev, "actor");
        if (c->time_ms && !c->first_ms) c->first_ms = c->time_ms;
        if (c->time_ms) c->last_ms = c->time_ms;
        struct visit *before = c->cur;
        if (!kind || !obs_handle_event(c, kind, p)) {
            json_array_push(a, c->anomalies,
                            json_cstr(a, arena_printf(a, "event #%lld has an unknown kind '%s'",
                                                      (long long)c->seq, kind ? kind : "")));
        }
        if (c->cur && c->cur != before) {
            if (nvisits == cap) {
                cap = cap ? 2 * cap : 16;
                struct visit **nv = arena_alloc(a, cap * sizeof *nv);
                if (nvisits) memcpy(nv, visits, nvisits * sizeof *nv);
                visits = nv;
            }
            visits[nvisits++] = c->cur;
        }
    }
    for (size_t i = 0; i < nvisits; i++)
        visit_totals(c, visits[i]);
    finish_visits(c);

    /* run */
    struct json_value *r = obj(c);
    set_s(c, r, "id", c->run_id);
    set_s(c, r, "workflow", c->workflow);
    set_s(c, r, "workflow_hash", c->workflow_hash);
    const char *status = str(run, "status");
    if (!status) status = c->final_kind ? c->final_kind : c->waiting ? "waiting" : "running";
    set_s(c, r, "status", status);
    set_v(c, r, "input", obs_clip(c, c->input));
    set_s(c, r, "created", str(run, "created"));
    if (!json_get(r, "created") && c->first_ms) {
        char t[32];
        keel_format_time(c->first_ms, t);
        set_s(c, r, "created", t);
    }
    if (c->final_ms) {
        char t[32];
        keel_format_time(c->final_ms, t);
        set_s(c, r, "ended", t);
    }
    int64_t end_ms = c->final_ms ? c->final_ms : c->last_ms;
    int64_t duration = c->first_ms && end_ms >= c->first_ms ? end_ms - c->first_ms : 0;
    set_i(c, r, "duration_ms", duration);
    set_i(c, r, "events", events->len);
    if (str(run, "error"))
        set_s(c, r, "error", str(run, "error"));
    else if (c->final_kind && !strcmp(c->final_kind, "failed"))
        set_v(c, r, "error", json_get(json_get(c->final_payload, "error"), "message"));
    if (c->final_kind && !strcmp(c->final_kind, "succeeded"))
        set_v(c, r, "output", obs_clip(c, json_get(c->final_payload, "output")));
    set_s(c, r, "started_by", str(run, "started_by"));
    json_object_setc(a, r, "workflow_version_available", json_bool(a, wf != NULL));

    /* summary */
    struct json_value *s = obj(c);
    set_s(c, s, "outcome", outcome(c, status, duration));
    struct json_value *n = obj(c);
    set_i(c, n, "steps", c->steps);
    set_i(c, n, "tool_calls", c->tool_calls);
    set_i(c, n, "allowed", c->allowed);
    set_i(c, n, "denied", c->denied);
    set_i(c, n, "needed_approval", c->need_approval);
    set_i(c, n, "refusals", c->refusals);
    set_i(c, n, "retries", c->retries);
    set_i(c, n, "failures", c->failures);
    set_i(c, n, "rejected_outputs", c->rejected);
    set_i(c, n, "model_calls", c->model_calls);
    set_i(c, n, "input_tokens", c->input_tokens);
    set_i(c, n, "output_tokens", c->output_tokens);
    set_d(c, n, "cost_usd", c->cost);
    set_i(c, n, "approvals", c->approval_list->len);
    set_v(c, s, "counts", n);
    struct json_value *ag = json_array(a);
    for (struct agent_stats *st = c->agents; st; st = st->next) {
        struct json_value *o = obj(c);
        set_s(c, o, "identity", st->name);
        set_s(c, o, "credential", "none brokered");
        set_i(c, o, "tool_calls", st->tool_calls);
        set_i(c, o, "model_calls", st->model_calls);
        set_i(c, o, "input_tokens", st->input_tokens);
        set_i(c, o, "output_tokens", st->output_tokens);
        set_d(c, o, "cost_usd", st->cost);
        json_array_push(a, ag, o);
    }
    set_v(c, s, "agents", ag);
    set_v(c, s, "approvals", c->approval_list);
    set_v(c, s, "attention", c->attention);
    if (c->attention_omitted) set_i(c, s, "attention_omitted", c->attention_omitted);
    if (c->waiting) set_v(c, s, "waiting", c->waiting);

    /* provenance of every state key, as it stands at the end */
    struct json_value *pv = obj(c);
    for (size_t i = 0; i < c->prov.cap; i++)
        if (c->prov.slots[i].key) {
            struct prov *p = c->prov.slots[i].value;
            json_object_set(a, pv, c->prov.slots[i].key, c->prov.slots[i].key_len, p->obj);
        }

    struct json_value *report = obj(c);
    set_v(c, report, "run", r);
    set_v(c, report, "summary", s);
    set_v(c, report, "timeline", c->timeline);
    set_v(c, report, "switches", c->switches);
    set_v(c, report, "state", obs_clip(c, c->state));
    set_v(c, report, "provenance", pv);
    if (c->anomalies->len) set_v(c, report, "anomalies", c->anomalies);

    strmap_cleanup(&c->prov);
    strmap_cleanup(&c->visit_n);
    strmap_cleanup(&c->calls);
    strmap_cleanup(&c->mcalls);
    strmap_cleanup(&c->approvals);
    *out = report;
    return 0;
}

/* The seq range a visit covers: start_seq .. end_seq (or, still open, to
 * the end of the journal). */
static void visit_range(const struct json_value *v, int64_t *lo, int64_t *hi)
{
    *lo = json_get_int(v, "start_seq", 0);
    *hi = json_get_int(v, "end_seq", INT64_MAX);
}

void obs_explain_page(struct json_value *report, uint32_t from, uint32_t limit, struct arena *a)
{
    struct json_value *tl = json_get(report, "timeline");
    if (!json_is(tl, JSON_ARRAY)) return;
    if (limit == 0) limit = OBS_PAGE_DEFAULT;
    if (limit > OBS_PAGE_MAX) limit = OBS_PAGE_MAX;
    uint32_t total = tl->len;
    uint32_t lo = from < total ? from : total;
    uint32_t n = total - lo < limit ? total - lo : limit;
    struct json_value *page = json_array(a);
    for (uint32_t i = 0; i < n; i++)
        json_array_push(a, page, tl->u.items[lo + i]);
    struct json_value *sw = json_get(report, "switches");
    if (json_is(sw, JSON_ARRAY) && (lo > 0 || n < total)) {
        struct json_value *keep = json_array(a);
        int64_t first = INT64_MAX, last = -1;
        for (uint32_t i = 0; i < n; i++) {
            int64_t l, h;
            visit_range(page->u.items[i], &l, &h);
            if (l < first) first = l;
            if (h > last) last = h;
        }
        for (uint32_t i = 0; n && i < sw->len; i++) {
            int64_t seq = json_get_int(sw->u.items[i], "seq", -1);
            if (seq >= first && seq <= last) json_array_push(a, keep, sw->u.items[i]);
        }
        json_object_setc(a, report, "switches", keep);
    }
    json_object_setc(a, report, "timeline", page);
    json_object_setc(a, report, "timeline_total", json_int(a, total));
    json_object_setc(a, report, "timeline_from", json_int(a, lo));
    if (lo + n < total) json_object_setc(a, report, "timeline_next", json_int(a, lo + n));
}
