/*
 * agent_step.c — the agent step: a model reasons and proposes tool calls,
 * and every proposal passes through the platform (docs/agents.md).
 *
 * One transition does ONE of these, chosen by agent_conv_build() from the
 * journal of the step's visit, and journals it before the next begins:
 *
 *   model turn   [budget gate ─► park for an extension approval]
 *                [context over budget ─► summary call, context.summarized]
 *                model.request {messages_added} ─► model ─► model.response
 *   tool call    unknown / not offered / bad arguments ─► tool.call.refused
 *                validate args (inputSchema) ─► authorize (Cedar, principal
 *                = the acting agent) ─► deny: tool.call.refused
 *                                     ─► approval: park; approved: go on
 *                                        with exactly the approved args
 *                ─► tool.call.started {idempotency_key} ─► MCP tools/call
 *                ─► tool.call.completed (the model sees result or error)
 *   handoff      agent.handoff {from, to, note, messages}: the next agent
 *                starts a fresh conversation under its own identity
 *   answer       parse + validate against output: ─► step.completed
 *                invalid ─► agent.output.rejected (the model is told why)
 *                up to output_retries times, then the step fails
 *
 * Exactly-once reasoning: a model.response in the journal is never asked
 * for again; a crash between model.request and model.response re-sends the
 * same messages (a model call has no effect to double).  Tool calls follow
 * the tool step's rules (idempotency key per call id, needs_reconcile for
 * a non-idempotent tool whose call started without a recorded result).
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* Summarize when the next request would fill this share of the context. */
#define CONTEXT_SHARE 0.75

struct offered {
    const char *qualified; /* "server/tool", or the target agent for a handoff */
    const char *server, *tool;
    bool handoff;
};

/* One transition of one agent step. */
struct ag {
    struct run_ctx *c;
    const struct workflow_step *s;
    struct arena *a;
    struct agent_conv conv;
    const char *prefix; /* "<step>/<visit>" */
    char actor[IDENTITY_NAME_MAX + 16];
    const struct keel_config *cfg;
    const struct keel_config_agent *me; /* the acting agent's keel.yaml entry, or NULL */
    struct offered *tools;
    const char **names; /* model-facing names, parallel to tools */
    size_t ntools;
    struct json_value *wire_tools; /* neutral tool list */
};

static struct json_value *message(struct ag *g, const char *role, const char *content)
{
    struct json_value *m = json_object(g->a);
    jset_s(g->a, m, "role", role);
    jset_s(g->a, m, "content", content ? content : "");
    return m;
}

static int journal(struct ag *g, const char *kind, struct json_value *p, struct keel_err *err)
{
    return engine_journal(g->c, kind, g->actor, p, err);
}

static bool step_agent_acts(const struct ag *g)
{
    return g->s->agent.agent && !strcmp(g->conv.agent, g->s->agent.agent);
}

static const struct keel_config *config(struct engine *e)
{
    pthread_mutex_lock(&e->lock);
    const struct keel_config *cfg = e->cfg;
    pthread_mutex_unlock(&e->lock);
    return cfg;
}

static const char *instructions(const struct ag *g)
{
    if (step_agent_acts(g) && g->s->agent.instructions) return g->s->agent.instructions;
    if (g->me && g->me->instructions) return g->me->instructions;
    return arena_printf(g->a,
                        "You are the agent %s, run by Keel. Use the tools offered when you need "
                        "facts; a tool call may be refused by policy, then do without it.",
                        g->conv.agent);
}

static const char *model_of(const struct ag *g)
{
    if (step_agent_acts(g) && g->s->agent.model) return g->s->agent.model;
    return g->me ? g->me->model : NULL;
}

static struct json_value *vars(struct ag *g)
{
    struct json_value *o = json_object(g->a);
    jset_v(g->a, o, "input", g->c->input);
    jset_v(g->a, o, "state", g->c->view.state);
    jset_v(g->a, o, "result", g->c->view.last_result);
    return o;
}

static int step_failed(struct ag *g, int code, const char *msg, bool retryable,
                       struct keel_err *err)
{
    return engine_step_failed(g->c, g->s, code, msg, retryable, err);
}

/* ---- what the acting agent is offered --------------------------------- */

static int offer_one(struct ag *g, const char *qualified, bool handoff, struct keel_err *err)
{
    struct offered *o = &g->tools[g->ntools];
    o->qualified = qualified;
    o->handoff = handoff;
    struct json_value *t = json_object(g->a);
    const char *name = agent_tool_name(g->a, qualified, handoff);
    if (handoff) {
        const struct keel_config_agent *to = g->cfg ? keel_config_agent(g->cfg, qualified) : NULL;
        jset_s(g->a, t, "name", name);
        jset_s(g->a, t, "description",
               arena_printf(g->a,
                            "Hand the task over to the agent %s%s%s. Write in `note` everything "
                            "it needs to continue; it will not see this conversation.",
                            qualified, to && to->description ? ": " : "",
                            to && to->description ? to->description : ""));
        struct json_value *sc = NULL;
        static const char schema[] =
            "{\"type\":\"object\",\"properties\":{\"note\":{\"type\":\"string\"}},"
            "\"required\":[\"note\"],\"additionalProperties\":false}";
        json_parse(g->a, schema, sizeof schema - 1, NULL, &sc, NULL);
        jset_v(g->a, t, "input_schema", sc);
    } else {
        struct mcp_tool mt;
        int rc = mcp_split_name(g->a, qualified, &o->server, &o->tool, err);
        if (!rc) rc = mcp_pool_tool(g->c->e->pool, qualified, g->a, &mt, err);
        if (rc) {
            keel_err_prefix(err, "tool %s offered to agent %s", qualified, g->conv.agent);
            return rc;
        }
        jset_s(g->a, t, "name", name);
        jset_s(g->a, t, "description", mt.description ? mt.description : mt.title);
        jset_v(g->a, t, "input_schema", mt.input_schema);
    }
    json_array_push(g->a, g->wire_tools, t);
    g->names[g->ntools++] = name;
    return 0;
}

/* The step's agent gets the step's tools and handoffs; an agent handed the
 * task gets the tools keel.yaml lists for it (and no further handoffs). */
static int offer(struct ag *g, struct keel_err *err)
{
    const char *const *list;
    size_t n, nh = 0;
    if (step_agent_acts(g)) {
        list = g->s->agent.tools;
        n = g->s->agent.ntools;
        nh = g->s->agent.nhandoff;
    } else {
        list = g->me ? g->me->tools : NULL;
        n = g->me ? g->me->ntools : 0;
    }
    g->tools = arena_zalloc(g->a, (n + nh + 1) * sizeof *g->tools);
    g->names = arena_zalloc(g->a, (n + nh + 1) * sizeof *g->names);
    g->wire_tools = json_array(g->a);
    for (size_t i = 0; i < n; i++)
        if (list[i] && offer_one(g, list[i], false, err)) return err->code ? err->code : KEEL_EIO;
    for (size_t i = 0; i < nh; i++)
        if (g->s->agent.handoff[i] && offer_one(g, g->s->agent.handoff[i], true, err))
            return err->code ? err->code : KEEL_EIO;
    return 0;
}

/* ---- tool calls --------------------------------------------------------- */

/* The payload every event of a call the model proposed starts with: the
 * step, Keel's call id, the model's, and the agent. */
static struct json_value *call_payload(struct ag *g, const struct agent_call *k)
{
    struct json_value *p = json_object(g->a);
    jset_s(g->a, p, "step", g->s->id);
    jset_s(g->a, p, "call_id", k->call_id);
    jset_s(g->a, p, "tool_call_id", k->tool_call_id);
    jset_s(g->a, p, "agent", g->conv.agent);
    return p;
}

static int refuse(struct ag *g, const struct agent_call *k, const char *tool, const char *reason,
                  const char *msg, struct keel_err *err)
{
    struct json_value *p = call_payload(g, k);
    jset_s(g->a, p, "tool", tool);
    jset_s(g->a, p, "reason", reason);
    jset_s(g->a, p, "message", msg);
    return journal(g, "tool.call.refused", p, err);
}

static bool retryable(int code)
{
    return code == KEEL_EIO || code == KEEL_ETIMEOUT || code == KEEL_EPROTO || code == KEEL_EBUSY;
}

/* Runs the call and journals its outcome; the model sees it next turn. */
static int execute(struct ag *g, const struct agent_call *k, const struct offered *o,
                   struct engine_tool_schemas *ts, const struct json_value *args, const char *key,
                   struct keel_err *err)
{
    struct mcp_call_result r;
    struct keel_err cerr;
    keel_err_clear(&cerr);
    int64_t t0 = keel_mono_ns();
    int rc =
        mcp_pool_call(g->c->e->pool, o->qualified, args, key, g->s->timeout_ms, g->a, &r, &cerr);
    struct json_value *p = call_payload(g, k);
    jset_s(g->a, p, "tool", o->qualified);
    jset_i(g->a, p, "duration_ms", (keel_mono_ns() - t0) / 1000000);
    struct json_value *result = NULL, *error = NULL;
    if (rc) {
        error = engine_error_obj(g->c, rc, cerr.msg);
    } else if (r.is_error) {
        error = engine_error_obj(g->c, KEEL_EIO, mcp_result_text(g->a, &r));
        jset_v(g->a, p, "is_error", json_bool(g->a, true));
    } else {
        result = r.structured ? r.structured : json_cstr(g->a, mcp_result_text(g->a, &r));
        struct keel_err verr;
        keel_err_clear(&verr);
        if (ts && ts->output && json_is(result, JSON_OBJECT) &&
            engine_validate(ts->output, result, "structuredContent", o->qualified, &verr)) {
            error = engine_error_obj(g->c, KEEL_ESCHEMA, verr.msg);
            result = NULL;
        }
    }
    jset_v(g->a, p, "result", result);
    jset_v(g->a, p, "error", error);
    return engine_journal_call_completed(g->c, g->actor, p, &result, &error, err);
}

static int handoff(struct ag *g, const struct agent_call *k, const struct offered *o,
                   struct keel_err *err)
{
    const char *note = json_get_str(k->arguments, "note", NULL);
    if (k->arguments_invalid || !note || !*note)
        return refuse(g, k, o->qualified, "invalid_arguments",
                      "a handoff needs {\"note\": \"...\"} with what the next agent must know",
                      err);
    struct json_value *prompt = NULL;
    struct keel_err rerr;
    keel_err_clear(&rerr);
    if (workflow_render(g->s->agent.prompt, vars(g), g->a, &prompt, &rerr))
        return step_failed(g, rerr.code, rerr.msg, false, err);
    const struct keel_config_agent *to = keel_config_agent(g->cfg, o->qualified);
    const char *sys = to && to->instructions
                          ? to->instructions
                          : arena_printf(g->a, "You are the agent %s, run by Keel.", o->qualified);
    const char *text = json_is(prompt, JSON_STRING) ? prompt->u.s.str : "";
    struct json_value *msgs = json_array(g->a);
    json_array_push(g->a, msgs, message(g, "system", sys));
    json_array_push(
        g->a, msgs,
        message(g, "user",
                arena_printf(g->a, "%s\n\nHandoff note from %s:\n%s", text, g->conv.agent, note)));
    struct json_value *p = json_object(g->a);
    jset_s(g->a, p, "step", g->s->id);
    jset_s(g->a, p, "call_id", k->call_id);
    jset_s(g->a, p, "from", g->conv.agent);
    jset_s(g->a, p, "to", o->qualified);
    jset_s(g->a, p, "note", note);
    jset_v(g->a, p, "messages", msgs);
    return journal(g, "agent.handoff", p, err);
}

/* Was approval aid decided in this visit?  1 approved, 0 refused, -1 not
 * yet. */
static int decided(struct ag *g, const char *aid)
{
    const struct run_view *v = &g->c->view;
    if (!v->approval_id || strcmp(v->approval_id, aid) != 0 || !v->approval_decision) return -1;
    return !strcmp(v->approval_decision, "approved") ? 1 : 0;
}

static int handle_call(struct ag *g, const struct agent_call *k, struct keel_err *err)
{
    struct run_ctx *c = g->c;
    int idx = agent_tool_lookup(g->names, g->ntools, k->name);
    if (idx < 0) {
        struct buf b;
        buf_init(&b);
        for (size_t i = 0; i < g->ntools; i++)
            buf_printf(&b, "%s%s", i ? ", " : "", g->names[i]);
        /* A name shaped like another server's tool is "not offered";
         * anything else does not exist. */
        const char *sep = strstr(k->name, "__");
        char server[128] = "";
        if (sep && sep - k->name < (ptrdiff_t)sizeof server)
            snprintf(server, sizeof server, "%.*s", (int)(sep - k->name), k->name);
        bool known = server[0] && g->cfg && keel_config_tool_server(g->cfg, server);
        const char *msg =
            arena_printf(g->a, "tool '%s' %s; the tools you may call are: %s", k->name,
                         known ? "is not offered to you in this step" : "does not exist",
                         b.data && *b.data ? b.data : "(none)");
        buf_cleanup(&b);
        return refuse(g, k, k->name, known ? "not_offered" : "unknown_tool", msg, err);
    }
    const struct offered *o = &g->tools[idx];
    if (o->handoff) return handoff(g, k, o, err);

    struct engine_tool_schemas *ts = NULL;
    struct keel_err terr;
    keel_err_clear(&terr);
    int rc = engine_tool_info(c->e, o->qualified, &ts, &terr);
    if (rc) return step_failed(g, rc, terr.msg, retryable(rc), err);

    if (k->started) {
        /* Started before a crash, no result recorded. */
        if (!ts->idempotent)
            return engine_needs_reconcile(c, g->s, k->call_id, o->qualified, g->conv.agent, err);
        return execute(g, k, o, ts, k->started_args ? k->started_args : json_object(g->a),
                       k->idempotency_key, err);
    }
    if (k->arguments_invalid || !json_is(k->arguments, JSON_OBJECT))
        return refuse(g, k, o->qualified, "invalid_arguments",
                      "the arguments are not a JSON object; call the tool again with its "
                      "arguments as a JSON object",
                      err);
    struct json_value *args = (struct json_value *)k->arguments;
    struct keel_err verr;
    keel_err_clear(&verr);
    if (engine_validate(ts->input, args, "arguments", o->qualified, &verr))
        return refuse(g, k, o->qualified, "invalid_arguments",
                      arena_printf(g->a, "%s; fix the arguments and call again", verr.msg), err);

    enum verdict verdict;
    const char *group = NULL, *ids = NULL;
    char hash[65];
    struct json_value *extra = json_object(g->a);
    jset_i(g->a, extra, "turn", g->conv.turn);
    jset_i(g->a, extra, "tokens", c->view.tokens);
    jset_i(g->a, extra, "cost_micro_usd", (int64_t)(c->view.usd * 1e6));
    int64_t approval_ms;
    if ((rc = engine_authorize(c, g->s, g->conv.agent, o->server, o->qualified, k->call_id, args,
                               extra, &verdict, &group, &ids, hash, &approval_ms, err)))
        return rc;
    if (verdict == VERDICT_DENY)
        return refuse(g, k, o->qualified, "denied",
                      arena_printf(g->a,
                                   "policy denied Agent::\"%s\" calling Tool::\"%s\"%s%s; do not "
                                   "retry this call",
                                   g->conv.agent, o->qualified,
                                   *ids ? ": forbidden by " : ": no permit applies", ids),
                      err);
    if (verdict == VERDICT_APPROVAL) {
        char digest[65] = "";
        json_digest(args, digest, NULL);
        struct approval_binding b = {
            .group = group,
            .timeout_ms = approval_ms,
            .agent = g->conv.agent,
            .tool = o->qualified,
            .args = args,
            .message = json_cstr(g->a, arena_printf(g->a,
                                                    "Agent %s asks to call %s (policy %s "
                                                    "needs approval); arguments: see "
                                                    "args",
                                                    g->conv.agent, o->qualified, ids)),
            .args_digest = digest,
            .policy_hash = hash,
            .policies = ids,
            .key = k->call_id};
        char aid[APPROVAL_ID_MAX];
        engine_approval_id(c, g->s, &b, aid);
        int outcome = decided(g, aid);
        if (outcome < 0) return engine_park_for_approval(c, g->s, &b, err);
        if (outcome == 0) {
            const struct run_view *v = &c->view;
            return refuse(g, k, o->qualified, "approval_denied",
                          arena_printf(g->a, "the call was not approved (%s by %s%s%s)",
                                       v->approval_decision, v->approval_by ? v->approval_by : "",
                                       v->approval_comment ? ": " : "",
                                       v->approval_comment ? v->approval_comment : ""),
                          err);
        }
        rc = engine_approval_binds(c, aid, o->qualified, digest, hash, err);
        if (rc < 0) return rc;
        if (rc == 0)
            return refuse(g, k, o->qualified, "approval_denied",
                          "the approval was given for other arguments, another tool or another "
                          "policy version",
                          err);
    }
    char key[65];
    char kb[3 * ENGINE_ID_MAX + 32];
    int n = snprintf(kb, sizeof kb, "%s/%s", c->run.id, k->call_id);
    keel_sha256_hex(kb, (size_t)n, key);
    struct json_value *p = call_payload(g, k);
    jset_s(g->a, p, "server", o->server);
    jset_s(g->a, p, "tool", o->tool);
    jset_v(g->a, p, "args", args);
    jset_s(g->a, p, "idempotency_key", key);
    if ((rc = journal(g, "tool.call.started", p, err))) return rc;
    return execute(g, k, o, ts, args, key, err);
}

/* ---- the final answer --------------------------------------------------- */

static int handle_answer(struct ag *g, struct keel_err *err)
{
    const struct workflow_step *s = g->s;
    bool want_json = s->agent.output && !json_is_bool(s->agent.output);
    struct json_value *value = NULL;
    struct keel_err aerr;
    keel_err_clear(&aerr);
    int rc = agent_answer_value(g->conv.last_message, want_json, g->a, &value, &aerr);
    if (!rc && s->agent.output_schema)
        rc = engine_validate(s->agent.output_schema, value, "answer", s->id, &aerr);
    if (!rc) return engine_complete(g->c, s, value, s->next, err);
    if (g->conv.rejections >= s->agent.output_retries)
        return step_failed(g, KEEL_ESCHEMA,
                           arena_printf(g->a,
                                        "agent %s's answer failed the output check %d time%s "
                                        "(output_retries: %d); the last: %s",
                                        g->conv.agent, g->conv.rejections + 1,
                                        g->conv.rejections ? "s" : "", s->agent.output_retries,
                                        aerr.msg),
                           false, err);
    struct json_value *p = json_object(g->a);
    jset_s(g->a, p, "step", s->id);
    jset_s(g->a, p, "call_id", arena_printf(g->a, "%s/m%d", g->prefix, g->conv.turn));
    jset_s(g->a, p, "agent", g->conv.agent);
    jset_i(g->a, p, "turn", g->conv.turn);
    struct json_value *errs = json_array(g->a);
    json_array_push(g->a, errs, json_cstr(g->a, aerr.msg));
    jset_v(g->a, p, "errors", errs);
    jset_s(g->a, p, "message",
           arena_printf(
               g->a, "Your answer was rejected: %s. Reply again with only the answer%s.", aerr.msg,
               want_json ? ", a JSON value that validates against the output schema" : ""));
    return journal(g, "agent.output.rejected", p, err);
}

/* ---- model turns -------------------------------------------------------- */

static struct json_value *usage_obj(struct ag *g, const struct model_response *r)
{
    struct json_value *u = json_object(g->a);
    jset_i(g->a, u, "input_tokens", r->input_tokens);
    jset_i(g->a, u, "output_tokens", r->output_tokens);
    return u;
}

/* Journals a model call's response (or its failure). */
static int record_response(struct ag *g, const char *call_id, const char *purpose, int turn,
                           const char *model, int rc, const struct model_response *r,
                           const struct keel_err *merr, struct keel_err *err)
{
    struct json_value *p = json_object(g->a);
    jset_s(g->a, p, "step", g->s->id);
    jset_s(g->a, p, "call_id", call_id);
    jset_s(g->a, p, "agent", g->conv.agent);
    jset_i(g->a, p, "turn", turn);
    jset_s(g->a, p, "purpose", purpose);
    jset_s(g->a, p, "model", rc ? model : r->model);
    if (rc) {
        jset_v(g->a, p, "error", engine_error_obj(g->c, rc, merr->msg));
    } else {
        jset_s(g->a, p, "provider", r->provider);
        jset_s(g->a, p, "provider_model", r->provider_model);
        jset_v(g->a, p, "message", r->message);
        jset_s(g->a, p, "stop_reason", r->stop_reason);
        jset_v(g->a, p, "usage", usage_obj(g, r));
        json_object_setc(g->a, p, "cost_usd", json_double(g->a, r->cost_usd));
        jset_i(g->a, p, "attempts", r->attempts);
    }
    if (r->trail && r->trail->len) jset_v(g->a, p, "trail", r->trail);
    return journal(g, "model.response", p, err);
}

/* Fewer output tokens than this left in a budget counts as used up. */
#define BUDGET_MIN_OUTPUT 16

/* A budget would be passed by the next call: park for an extension, or go
 * on once one was granted.  Returns 1 to go on, 0 if handled (parked,
 * extended or failed), negative on error.  When it returns 1, *max_out (0:
 * no limit) caps the call's output tokens so that even a maximal answer
 * stays within every budget: a budget is never overspent, not even by the
 * call that reaches it. */
static int budget_gate(struct ag *g, const char *model, int64_t estimate, int64_t *max_out,
                       struct keel_err *err)
{
    *max_out = 0;
    struct run_ctx *c = g->c;
    const struct run_view *v = &c->view;
    struct model_gateway *gw = engine_models(c->e);
    for (int scope = 0; scope < 2; scope++) {
        const struct workflow_budget *b = scope == 0 ? &c->ew->wf->budget
                                          : g->me    ? &g->me->budget
                                                     : NULL;
        if (!b || (!b->tokens && !(b->usd > 0))) continue;
        const struct agent_usage *u = v->usage;
        while (scope == 1 && u && strcmp(u->agent, g->conv.agent) != 0)
            u = u->next;
        int ext = scope == 0 ? v->run_extensions : u ? u->extensions : 0;
        int64_t used_t = scope == 0 ? v->tokens : u ? u->tokens : 0;
        double used_usd = scope == 0 ? v->usd : u ? u->usd : 0;
        double est_usd = model_cost_usd(gw, model, estimate, 0);
        double usd_per_out = model_cost_usd(gw, model, 0, 1000000) / 1e6;
        int64_t left = INT64_MAX;
        if (b->tokens) left = b->tokens * (int64_t)(1 + ext) - used_t - estimate;
        if (b->usd > 0 && usd_per_out > 0) {
            double l = (b->usd * (1 + ext) - used_usd - est_usd) / usd_per_out;
            if (l < (double)left) left = l < 0 ? -1 : (int64_t)l;
        } else if (b->usd > 0 && used_usd + est_usd > b->usd * (1 + ext)) {
            left = -1;
        }
        if (left >= BUDGET_MIN_OUTPUT) {
            if (left != INT64_MAX && (*max_out == 0 || left < *max_out)) *max_out = left;
            continue;
        }
        const char *name = scope == 0 ? "run" : "agent";
        const char *key = arena_printf(g->a, "%s/budget-%s-%d", g->prefix, name, ext);
        struct approval_binding ab = {
            .group = b->approvers ? b->approvers : "admin",
            .agent = g->conv.agent,
            .args_digest = "",
            .key = key,
            .message = json_cstr(
                g->a, arena_printf(g->a,
                                   "The %s budget%s%s is used up: %lld tokens and $%.4f so far, "
                                   "limit %lld tokens / $%.4f. Approve to extend it by %lld "
                                   "tokens / $%.4f.",
                                   name, scope ? " of agent " : "", scope ? g->conv.agent : "",
                                   (long long)used_t, used_usd, (long long)(b->tokens * (1 + ext)),
                                   b->usd * (1 + ext), (long long)b->tokens, b->usd))};
        char aid[APPROVAL_ID_MAX];
        engine_approval_id(c, g->s, &ab, aid);
        int outcome = decided(g, aid);
        if (outcome == 1) {
            struct json_value *p = json_object(g->a);
            jset_s(g->a, p, "scope", name);
            if (scope) jset_s(g->a, p, "agent", g->conv.agent);
            if (b->tokens) jset_i(g->a, p, "tokens", b->tokens);
            if (b->usd > 0) json_object_setc(g->a, p, "usd", json_double(g->a, b->usd));
            jset_s(g->a, p, "by", v->approval_by);
            jset_s(g->a, p, "approval_id", aid);
            int rc = journal(g, "budget.extended", p, err);
            return rc ? rc : 0;
        }
        if (outcome == 0) {
            int rc = step_failed(g, KEEL_ELIMIT,
                                 arena_printf(g->a,
                                              "the %s budget is used up and its extension was "
                                              "%s by %s",
                                              name, v->approval_decision,
                                              v->approval_by ? v->approval_by : "system"),
                                 false, err);
            return rc ? rc : 0;
        }
        if (!v->approval_id || strcmp(v->approval_id, aid) != 0) {
            struct json_value *p = json_object(g->a), *lim = json_object(g->a),
                              *used = json_object(g->a);
            jset_s(g->a, p, "step", g->s->id);
            jset_s(g->a, p, "scope", name);
            if (scope) jset_s(g->a, p, "agent", g->conv.agent);
            if (b->tokens) jset_i(g->a, lim, "tokens", b->tokens * (1 + ext));
            if (b->usd > 0)
                json_object_setc(g->a, lim, "usd", json_double(g->a, b->usd * (1 + ext)));
            jset_i(g->a, used, "tokens", used_t);
            json_object_setc(g->a, used, "usd", json_double(g->a, used_usd));
            jset_v(g->a, p, "limit", lim);
            jset_v(g->a, p, "used", used);
            jset_i(g->a, p, "next_call_estimate", estimate);
            jset_s(g->a, p, "approval_id", aid);
            int rc = journal(g, "budget.exceeded", p, err);
            if (rc) return rc;
        }
        int rc = engine_park_for_approval(c, g->s, &ab, err);
        return rc ? rc : 0;
    }
    return 1;
}

/* Replaces the conversation by the prompt plus a model-written summary. */
static int summarize(struct ag *g, const struct model_request *base, const char *model,
                     int64_t before, struct keel_err *err)
{
    struct json_value *msgs = g->conv.messages;
    struct buf t;
    buf_init(&t);
    for (uint32_t i = 0; i < msgs->len; i++) {
        const struct json_value *m = msgs->u.items[i];
        const char *role = json_get_str(m, "role", "");
        if (!strcmp(role, "system")) continue;
        buf_printf(&t, "[%s] ", role);
        const struct json_value *tc = json_get(m, "tool_calls");
        if (json_is(tc, JSON_ARRAY) && tc->len) {
            buf_puts(&t, "calls ");
            json_write(&t, tc, 0, NULL);
            buf_putc(&t, ' ');
        }
        buf_puts(&t, agent_message_text(m));
        buf_putc(&t, '\n');
    }
    struct json_value *sm = json_array(g->a);
    json_array_push(g->a, sm,
                    message(g, "system",
                            "You compress an agent's conversation so it can continue with less "
                            "context. Write the task, every fact learned from tool results "
                            "(with exact identifiers and values), the decisions made, and what "
                            "is left to do. Be complete and brief."));
    json_array_push(g->a, sm, message(g, "user", t.data ? t.data : ""));
    buf_cleanup(&t);
    const char *call_id = arena_printf(g->a, "%s/s%d", g->prefix, g->conv.summaries + 1);
    struct json_value *p = json_object(g->a);
    jset_s(g->a, p, "step", g->s->id);
    jset_s(g->a, p, "call_id", call_id);
    jset_s(g->a, p, "agent", g->conv.agent);
    jset_s(g->a, p, "purpose", "summary");
    jset_s(g->a, p, "model", model);
    jset_i(g->a, p, "estimated_tokens", before);
    int rc = journal(g, "model.request", p, err);
    if (rc) return rc;
    struct model_request rq = *base;
    rq.messages = sm;
    rq.tools = NULL;
    rq.output_schema = NULL;
    rq.tag = "summary";
    struct model_response r;
    memset(&r, 0, sizeof r);
    struct keel_err merr;
    keel_err_clear(&merr);
    int mrc = model_call(engine_models(g->c->e), &rq, g->a, &r, &merr);
    if ((rc = record_response(g, call_id, "summary", g->conv.turn, model, mrc, &r, &merr, err)))
        return rc;
    if (mrc) return step_failed(g, mrc, merr.msg, retryable(mrc), err);

    /* The new conversation: the system prompt, the first user message with
     * the summary, and the last assistant message if tool results for it
     * are due (a provider refuses results without their call). */
    struct json_value *fresh = json_array(g->a);
    const char *first_user = "";
    for (uint32_t i = 0; i < msgs->len; i++) {
        const struct json_value *m = msgs->u.items[i];
        const char *role = json_get_str(m, "role", "");
        if (!strcmp(role, "system") && fresh->len == 0)
            json_array_push(g->a, fresh, (struct json_value *)m);
        if (!strcmp(role, "user")) {
            first_user = agent_message_text(m);
            break;
        }
    }
    const char *summary = agent_message_text(r.message);
    const char *marker = strstr(first_user, "\n\nSummary of the conversation so far");
    const char *prompt =
        marker ? arena_printf(g->a, "%.*s", (int)(marker - first_user), first_user) : first_user;
    json_array_push(g->a, fresh,
                    message(g, "user",
                            arena_printf(g->a,
                                         "%s\n\nSummary of the conversation so far (written by "
                                         "Keel's summarizer):\n%s",
                                         prompt, summary)));
    if (g->conv.due->len && g->conv.last_message)
        json_array_push(g->a, fresh, (struct json_value *)g->conv.last_message);
    p = json_object(g->a);
    jset_s(g->a, p, "step", g->s->id);
    jset_s(g->a, p, "call_id", call_id);
    jset_s(g->a, p, "agent", g->conv.agent);
    jset_s(g->a, p, "summary", summary);
    jset_i(g->a, p, "through_turn", g->conv.turn);
    jset_i(g->a, p, "tokens_before", before);
    struct json_value *all = json_array(g->a);
    for (uint32_t i = 0; i < fresh->len; i++)
        json_array_push(g->a, all, fresh->u.items[i]);
    for (uint32_t i = 0; i < g->conv.due->len; i++)
        json_array_push(g->a, all, g->conv.due->u.items[i]);
    jset_i(g->a, p, "tokens_after", model_estimate_tokens(all, g->wire_tools));
    jset_s(g->a, p, "model", r.model);
    jset_v(g->a, p, "usage", usage_obj(g, &r));
    json_object_setc(g->a, p, "cost_usd", json_double(g->a, r.cost_usd));
    jset_v(g->a, p, "messages", fresh);
    return journal(g, "context.summarized", p, err);
}

static int model_turn(struct ag *g, struct keel_err *err)
{
    struct run_ctx *c = g->c;
    const struct workflow_step *s = g->s;
    struct agent_conv *cv = &g->conv;
    if (!cv->request_open && cv->turn >= s->agent.max_turns)
        return step_failed(g, KEEL_ELIMIT,
                           arena_printf(g->a,
                                        "agent %s used all %d turns without a final answer; "
                                        "raise max_turns or narrow the task",
                                        cv->agent, s->agent.max_turns),
                           false, err);
    struct json_value *due = cv->due;
    if (!cv->request_open && cv->messages->len == 0 && due->len == 0) {
        /* The first turn: the system and user prompts. */
        struct json_value *prompt = NULL;
        struct keel_err rerr;
        keel_err_clear(&rerr);
        if (workflow_render(s->agent.prompt, vars(g), g->a, &prompt, &rerr))
            return step_failed(g, rerr.code, rerr.msg, false, err);
        const char *text;
        if (json_is(prompt, JSON_STRING)) {
            text = prompt->u.s.str;
        } else {
            struct buf b;
            buf_init(&b);
            json_write(&b, prompt, 0, NULL);
            text = arena_strdup(g->a, b.data ? b.data : "");
            buf_cleanup(&b);
        }
        due = json_array(g->a);
        json_array_push(g->a, due, message(g, "system", instructions(g)));
        json_array_push(g->a, due, message(g, "user", text));
    }
    struct json_value *msgs = json_array(g->a);
    for (uint32_t i = 0; i < cv->messages->len; i++)
        json_array_push(g->a, msgs, cv->messages->u.items[i]);
    for (uint32_t i = 0; i < due->len; i++)
        json_array_push(g->a, msgs, due->u.items[i]);

    struct model_gateway *gw = engine_models(c->e);
    struct model_request rq = {.route = model_of(g),
                               .tag = s->agent.tag ? s->agent.tag : s->id,
                               .agent = cv->agent,
                               .messages = msgs,
                               .tools = g->wire_tools->len ? g->wire_tools : NULL,
                               .output_schema = s->agent.output};
    struct model_route_choice choice;
    struct keel_err merr;
    keel_err_clear(&merr);
    if (model_route(gw, &rq, &choice, &merr))
        return step_failed(g, merr.code ? merr.code : KEEL_ENOENT, merr.msg, false, err);
    int64_t estimate = model_estimate_tokens(msgs, rq.tools);
    int rc;
    if (!cv->request_open) {
        int64_t max_out = 0;
        if ((rc = budget_gate(g, choice.model, estimate, &max_out, err)) <= 0) return rc;
        rq.max_output_tokens = max_out;
        int64_t ctx = model_context_tokens(gw, choice.model);
        if (ctx > 0 && (double)estimate > CONTEXT_SHARE * (double)ctx && cv->messages->len > 3)
            return summarize(g, &rq, choice.model, estimate, err);
    }
    if (cv->request_open) rq.max_output_tokens = cv->request_max_output;
    int turn = cv->request_open ? cv->turn : cv->turn + 1;
    const char *call_id = arena_printf(g->a, "%s/m%d", g->prefix, turn);
    if (!cv->request_open) {
        struct json_value *p = json_object(g->a);
        jset_s(g->a, p, "step", s->id);
        jset_s(g->a, p, "call_id", call_id);
        jset_s(g->a, p, "agent", cv->agent);
        jset_i(g->a, p, "turn", turn);
        jset_s(g->a, p, "purpose", "turn");
        jset_s(g->a, p, "model", choice.model);
        jset_s(g->a, p, "route_rule", choice.rule);
        jset_v(g->a, p, "messages_added", due);
        struct json_value *names = json_array(g->a);
        for (size_t i = 0; i < g->ntools; i++)
            json_array_push(
                g->a, names,
                json_cstr(g->a, g->tools[i].handoff
                                    ? arena_printf(g->a, "handoff:%s", g->tools[i].qualified)
                                    : g->tools[i].qualified));
        jset_v(g->a, p, "tools", names);
        jset_i(g->a, p, "estimated_tokens", estimate);
        if (rq.max_output_tokens > 0) jset_i(g->a, p, "max_output_tokens", rq.max_output_tokens);
        if ((rc = journal(g, "model.request", p, err))) return rc;
    }
    struct model_response r;
    memset(&r, 0, sizeof r);
    int mrc = model_call(gw, &rq, g->a, &r, &merr);
    if ((rc = record_response(g, call_id, "turn", turn, choice.model, mrc, &r, &merr, err)))
        return rc;
    if (mrc)
        return step_failed(g, mrc,
                           arena_printf(g->a, "model call %s failed: %s", call_id, merr.msg),
                           retryable(mrc), err);
    return 0;
}

int engine_exec_agent(struct run_ctx *c, const struct workflow_step *s, struct keel_err *err)
{
    struct ag g;
    memset(&g, 0, sizeof g);
    g.c = c;
    g.s = s;
    g.a = c->arena;
    g.prefix = arena_printf(g.a, "%s/%d", s->id, c->view.visit);
    g.cfg = config(c->e);
    struct keel_err berr;
    keel_err_clear(&berr);
    if (agent_conv_build(c->view.visit_events, c->view.nvisit_events, s->agent.agent, g.prefix, g.a,
                         &g.conv, &berr))
        return engine_step_failed(c, s, KEEL_ECORRUPT, berr.msg, false, err);
    snprintf(g.actor, sizeof g.actor, "agent:%s", g.conv.agent);
    g.me = g.cfg ? keel_config_agent(g.cfg, g.conv.agent) : NULL;
    struct keel_err oerr;
    keel_err_clear(&oerr);
    int rc = offer(&g, &oerr);
    if (rc) return step_failed(&g, rc, oerr.msg, retryable(rc), err);
    switch (g.conv.next) {
    case AGENT_NEXT_CALL:
        return handle_call(&g, &g.conv.calls[g.conv.call], err);
    case AGENT_NEXT_ANSWER:
        return handle_answer(&g, err);
    case AGENT_NEXT_MODEL:
        break;
    }
    return model_turn(&g, err);
}
