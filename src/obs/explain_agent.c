/*
 * explain_agent.c — the handlers of the events of agent steps: model calls
 * (model.request/response), refused tool calls, rejected outputs, context
 * summaries, handoffs and budgets.  Listed in kind_table (explain_events.c).
 *
 * A model call's record is keyed by its call_id and listed in the visit's
 * model_calls; the last successful turn's record (v->last_model) is what a
 * state written by the step is attributed to, with the tool results the
 * visit had received as its evidence.  Tokens and cost are added to the
 * run, the acting identity and the visit once per model call: a context
 * summary's usage counts only when its own model call was not journaled.
 *
 * Invariants: as for every handler, malformed payloads are recorded as they
 * are, never fatal; values copied into the report are capped (obs_clip,
 * obs_cut).
 */
#include "internal.h"

#include <string.h>

/* "crm__lookup_account" (the providers' tool name) -> "crm/lookup_account". */
static const char *tool_name(struct arena *a, const char *name)
{
    const char *sep = name ? strstr(name, "__") : NULL;
    if (!sep) return name;
    return arena_printf(a, "%.*s/%s", (int)(sep - name), name, sep + 2);
}

static struct json_value *model_call_for(struct ctx *c, struct visit *v, const char *call_id)
{
    struct json_value *m = call_id ? strmap_get(&c->mcalls, call_id, strlen(call_id)) : NULL;
    if (m) return m;
    m = obj(c);
    set_s(c, m, "call_id", call_id);
    if (call_id) strmap_put(&c->mcalls, call_id, strlen(call_id), m);
    if (v) json_array_push(c->a, v->model_calls, m);
    return m;
}

/* The tokens and cost of one model call (a payload's usage and cost_usd). */
struct usage {
    int64_t in, out;
    double cost;
};

static struct usage usage_of(const struct json_value *p)
{
    const struct json_value *u = json_get(p, "usage");
    return (struct usage){json_get_int(u, "input_tokens", 0), json_get_int(u, "output_tokens", 0),
                          num(p, "cost_usd")};
}

/* Adds u to the run's totals, those of identity `who` and those of visit v
 * (may be NULL); returns who's record. */
static struct agent_stats *add_usage(struct ctx *c, struct visit *v, const char *who,
                                     struct usage u)
{
    c->input_tokens += u.in;
    c->output_tokens += u.out;
    c->cost += u.cost;
    struct agent_stats *s = obs_identity_stats(c, who);
    s->input_tokens += u.in;
    s->output_tokens += u.out;
    s->cost += u.cost;
    if (v) {
        v->input_tokens += u.in;
        v->output_tokens += u.out;
        v->cost += u.cost;
    }
    return s;
}

/* model.request: opens (or finds) the call record; p is borrowed. */
void obs_on_model_request(struct ctx *c, const struct json_value *p)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    struct json_value *m = model_call_for(c, v, str(p, "call_id"));
    set_i(c, m, "request_seq", c->seq);
    set_s(c, m, "requested", c->time_text);
    static const char *const keep[] = {"turn", "model", "agent", "purpose", "route_rule",
                                       "estimated_tokens"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(keep); i++) set_v(c, m, keep[i], json_get(p, keep[i]));
    const struct json_value *tools = json_get(p, "tools");
    if (json_is(tools, JSON_ARRAY)) set_i(c, m, "tools_offered", tools->len);
    if (v && str(p, "agent")) v->identity = str(p, "agent");
}

/* model.response: the answer, its proposed calls and its usage; p is borrowed. */
void obs_on_model_response(struct ctx *c, const struct json_value *p)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    struct json_value *m = model_call_for(c, v, str(p, "call_id"));
    set_i(c, m, "response_seq", c->seq);
    set_s(c, m, "responded", c->time_text);
    static const char *const keep[] = {"turn", "model", "agent", "provider", "provider_model",
                                       "stop_reason", "attempts", "error"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(keep); i++)
        if (json_get(p, keep[i])) set_v(c, m, keep[i], obs_clip(c, json_get(p, keep[i])));
    struct usage u = usage_of(p);
    set_i(c, m, "input_tokens", u.in);
    set_i(c, m, "output_tokens", u.out);
    set_d(c, m, "cost_usd", u.cost);
    const struct json_value *msg = json_get(p, "message");
    const struct json_value *content = json_get(msg, "content");
    if (json_is(content, JSON_STRING) && content->len)
        set_s(c, m, "text", obs_cut(c->a, content->u.s.str, content->len, OBS_PREVIEW_MAX));
    const struct json_value *tcs = json_get(msg, "tool_calls");
    struct json_value *proposed = json_array(c->a);
    for (uint32_t i = 0; json_is(tcs, JSON_ARRAY) && i < tcs->len; i++) {
        const struct json_value *tc = tcs->u.items[i];
        struct json_value *o = obj(c);
        set_v(c, o, "id", json_get(tc, "id"));
        set_s(c, o, "tool", tool_name(c->a, str(tc, "name")));
        set_v(c, o, "arguments", obs_clip(c, json_get(tc, "arguments")));
        json_array_push(c->a, proposed, o);
    }
    set_v(c, m, "proposed", proposed);
    if (!json_get(m, "refusals")) set_v(c, m, "refusals", json_array(c->a));
    const char *who = str(p, "agent") ? str(p, "agent") : v ? v->identity : identity_of(c->actor);
    if (v && str(p, "agent")) v->identity = str(p, "agent");
    c->model_calls++;
    add_usage(c, v, who, u)->model_calls++;
    if (v && !json_get(p, "error") && strcmp(json_get_str(m, "purpose", "turn"), "summary") != 0) {
        v->last_model = m;
        /* The evidence the next answer will rest on starts from what the
         * agent has read so far; nothing to reset here. */
    }
    if (json_get(p, "error")) {
        const struct json_value *e = json_get(p, "error");
        obs_attention(c, "model_error", v ? v->step : NULL, "model call %s failed: %s %s",
                      json_get_str(p, "call_id", "?"), json_get_str(e, "code", ""),
                      json_get_str(e, "message", ""));
    }
}

/* tool.call.refused: a proposed call Keel did not make; p is borrowed. */
void obs_on_tool_call_refused(struct ctx *c, const struct json_value *p)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    const char *call_id = str(p, "call_id");
    struct json_value *call = obs_find_call(c, call_id);
    if (!call) call = obs_new_call(c, v, call_id);
    if (!json_get(call, "tool")) set_v(c, call, "tool", json_get(p, "tool"));
    const char *who = str(p, "agent") ? str(p, "agent") : v ? v->identity : identity_of(c->actor);
    if (!json_get(call, "identity")) set_s(c, call, "identity", who);
    set_v(c, call, "tool_call_id", json_get(p, "tool_call_id"));
    obs_proposed_args(c, v, call, str(p, "tool_call_id"));
    struct json_value *r = obj(c);
    set_i(c, r, "seq", c->seq);
    set_v(c, r, "reason", json_get(p, "reason"));
    set_v(c, r, "message", obs_clip(c, json_get(p, "message")));
    set_v(c, call, "refused", r);
    set_s(c, call, "status", "refused");
    c->refusals++;
    /* The model call that proposed it: the last answer of this visit. */
    if (v && v->last_model) {
        struct json_value *ref = obj(c);
        set_i(c, ref, "seq", c->seq);
        set_v(c, ref, "tool_call_id", json_get(p, "tool_call_id"));
        set_v(c, ref, "tool", json_get(p, "tool"));
        set_v(c, ref, "reason", json_get(p, "reason"));
        struct json_value *list = json_get(v->last_model, "refusals");
        if (!list) set_v(c, v->last_model, "refusals", list = json_array(c->a));
        json_array_push(c->a, list, ref);
    }
    obs_attention(c, "refused", v ? v->step : NULL, "refused %s's call to %s (%s): %s",
                  who ? who : "?", json_get_str(p, "tool", "?"), json_get_str(p, "reason", "?"),
                  json_get_str(p, "message", ""));
}

/* agent.output.rejected: an answer that failed the output schema; p is borrowed. */
void obs_on_output_rejected(struct ctx *c, const struct json_value *p)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    struct json_value *r = obj(c);
    set_i(c, r, "seq", c->seq);
    set_v(c, r, "call_id", json_get(p, "call_id"));
    set_v(c, r, "turn", json_get(p, "turn"));
    set_v(c, r, "agent", json_get(p, "agent"));
    set_v(c, r, "errors", obs_clip(c, json_get(p, "errors")));
    set_v(c, r, "message", obs_clip(c, json_get(p, "message")));
    if (v) json_array_push(c->a, v->rejected, r);
    c->rejected++;
    const struct json_value *e = json_get(p, "errors");
    obs_attention(c, "output_rejected", v ? v->step : NULL, "output of %s (call %s) rejected: %s",
                  json_get_str(p, "agent", v ? v->identity : "?"), json_get_str(p, "call_id", "?"),
                  obs_preview(c->a, e, 200));
}

/* context.summarized: the summary and, if not journaled already, its usage;
 * p is borrowed. */
void obs_on_context_summarized(struct ctx *c, const struct json_value *p)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    struct json_value *s = obj(c);
    set_i(c, s, "seq", c->seq);
    static const char *const keep[] = {"call_id", "agent", "through_turn", "tokens_before",
                                       "tokens_after", "model", "usage", "cost_usd"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(keep); i++) set_v(c, s, keep[i], json_get(p, keep[i]));
    const struct json_value *sum = json_get(p, "summary");
    if (json_is(sum, JSON_STRING))
        set_s(c, s, "summary", obs_cut(c->a, sum->u.s.str, sum->len, OBS_PREVIEW_MAX));
    if (v) json_array_push(c->a, v->summaries, s);
    /* Count its usage unless its model call was journaled (and counted). */
    const char *cid = str(p, "call_id");
    const struct json_value *m = cid ? strmap_get(&c->mcalls, cid, strlen(cid)) : NULL;
    if (!m || !json_get(m, "response_seq"))
        add_usage(c, v, str(p, "agent") ? str(p, "agent") : v ? v->identity : NULL, usage_of(p));
}

/* agent.handoff: the visit's identity becomes the receiving agent; p is borrowed. */
void obs_on_handoff(struct ctx *c, const struct json_value *p)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    struct json_value *h = obj(c);
    set_i(c, h, "seq", c->seq);
    set_v(c, h, "from", json_get(p, "from"));
    set_v(c, h, "to", json_get(p, "to"));
    set_v(c, h, "note", obs_clip(c, json_get(p, "note")));
    if (!v) return;
    json_array_push(c->a, v->handoffs, h);
    if (str(p, "to")) v->identity = str(p, "to");
}

static void on_budget(struct ctx *c, const struct json_value *p, bool exceeded)
{
    struct visit *v = obs_visit_for(c, str(p, "step"));
    struct json_value *b = json_clone(c->a, p);
    set_i(c, b, "seq", c->seq);
    set_s(c, b, "event", exceeded ? "budget.exceeded" : "budget.extended");
    if (v) json_array_push(c->a, v->budget, b);
    if (exceeded)
        obs_attention(c, "budget", v ? v->step : NULL, "%s budget%s%s exceeded: limit %s, used %s",
                      json_get_str(p, "scope", "?"), str(p, "agent") ? " of " : "",
                      str(p, "agent") ? str(p, "agent") : "",
                      obs_preview(c->a, json_get(p, "limit"), 80),
                      obs_preview(c->a, json_get(p, "used"), 80));
}

/* budget.exceeded (an attention item too); p is borrowed. */
void obs_on_budget_exceeded(struct ctx *c, const struct json_value *p)
{
    on_budget(c, p, true);
}

/* budget.extended; p is borrowed. */
void obs_on_budget_extended(struct ctx *c, const struct json_value *p)
{
    on_budget(c, p, false);
}

