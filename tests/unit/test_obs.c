/*
 * test_obs.c — the explain report (src/obs/) from synthetic journals: a run
 * with a tool retry, an agent step (tool call, a policy denial and refusal, a
 * handoff, a rejected output), two switches (one reading an agent's answer,
 * one reading a set step's copy of it), an approval; plus the same journal
 * without the workflow version, a parked run, a needs_reconcile run, large
 * values, a flood of failures, and the condition path extractor.
 */
#include "test.h"

#include "obs/obs.h"
#include "workflow/workflow.h"

#include <stdarg.h>

static const char demo_wf[] =
    "name: triage-demo\n"
    "identity: support/triage\n"
    "state:\n"
    "  ticket: {reducer: replace}\n"
    "  triage: {reducer: replace}\n"
    "  notes: {reducer: append, initial: []}\n"
    "steps:\n"
    "  - id: fetch\n"
    "    tool: helpdesk/get_ticket\n"
    "    args: {id: \"${input.ticket_id}\"}\n"
    "    save: ticket\n"
    "    retry: {attempts: 2}\n"
    "  - id: triage\n"
    "    agent: support/triage\n"
    "    prompt: \"Classify ${state.ticket.subject}\"\n"
    "    tools: [crm/lookup_account, tracker/create_issue]\n"
    "    handoff: [support/billing]\n"
    "    output: {type: object}\n"
    "    save: triage\n"
    "  - id: route\n"
    "    switch:\n"
    "      - if: 'state.triage.severity == \"high\"'\n"
    "        goto: escalate\n"
    "    default: note\n"
    "  - id: escalate\n"
    "    tool: tracker/create_issue\n"
    "    args: {title: \"${state.ticket.subject}\"}\n"
    "  - id: note\n"
    "    set: {notes: \"severity ${state.triage.severity}\"}\n"
    "  - id: check\n"
    "    switch:\n"
    "      - if: 'state.notes.contains(\"severity low\")'\n"
    "        goto: ask\n"
    "    default: done\n"
    "  - id: ask\n"
    "    approval: {group: support-leads}\n"
    "  - id: done\n"
    "    succeed: {}\n";

/* Builds the events array from "kind|actor|payload-json" lines. */
struct journal_builder {
    struct arena *a;
    struct json_value *events;
    int64_t seq;
};

static void ev(struct journal_builder *j, const char *kind, const char *actor, const char *payload)
{
    struct json_value *p = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    if (json_parse(j->a, payload, strlen(payload), NULL, &p, &err) != 0) {
        fprintf(stderr, "bad test payload for %s: %s\n  %s\n", kind, err.msg, payload);
        abort();
    }
    struct json_value *o = json_object(j->a);
    j->seq++;
    json_object_setc(j->a, o, "seq", json_int(j->a, j->seq));
    char t[32];
    keel_format_time(1795000000000LL + j->seq * 1000, t);
    json_object_setc(j->a, o, "time", json_cstr(j->a, t));
    json_object_setc(j->a, o, "kind", json_cstr(j->a, kind));
    json_object_setc(j->a, o, "actor", json_cstr(j->a, actor ? actor : "system"));
    json_object_setc(j->a, o, "payload", p);
    json_array_push(j->a, j->events, o);
}

#define AG "agent:support/triage"

/* The "bad run": stale CRM data makes the agent answer severity low. */
static struct json_value *demo_events(struct arena *a)
{
    struct journal_builder jb = {a, json_array(a), 0}, *j = &jb;
    ev(j, "run.started", "human:alice", "{\"workflow\":\"triage-demo\",\"workflow_hash\":\"abc123\",\"input\":{\"ticket_id\":\"T-1003\"}}");
    ev(j, "step.started", 0, "{\"step\":\"fetch\",\"attempt\":1}");
    ev(j, "policy.decision", AG, "{\"step\":\"fetch\",\"action\":\"call_tool\",\"resource\":\"Tool::\\\"helpdesk/get_ticket\\\"\",\"decision\":\"allow\",\"policies\":[\"reads\"],\"policy_hash\":\"ph1\"}");
    ev(j, "tool.call.started", AG, "{\"step\":\"fetch\",\"call_id\":\"fetch/0\",\"server\":\"helpdesk\",\"tool\":\"get_ticket\",\"args\":{\"id\":\"T-1003\"},\"idempotency_key\":\"k\"}");
    ev(j, "tool.call.completed", AG, "{\"step\":\"fetch\",\"call_id\":\"fetch/0\",\"error\":{\"code\":\"EIO\",\"message\":\"server died\"},\"duration_ms\":3}");
    ev(j, "step.failed", 0, "{\"step\":\"fetch\",\"attempt\":1,\"error\":{\"code\":\"EIO\",\"message\":\"server died\"},\"retry_at\":1795000007000}");
    ev(j, "run.waiting", 0, "{\"reason\":\"timer\",\"timer_id\":\"t1\"}");
    ev(j, "timer.fired", 0, "{\"timer_id\":\"t1\",\"step\":\"fetch\"}");
    ev(j, "run.resumed", 0, "{\"reason\":\"timer\",\"timer_id\":\"t1\"}");
    ev(j, "step.started", 0, "{\"step\":\"fetch\",\"attempt\":2}"); /* 10 */
    ev(j, "policy.decision", AG, "{\"step\":\"fetch\",\"action\":\"call_tool\",\"resource\":\"Tool::\\\"helpdesk/get_ticket\\\"\",\"decision\":\"allow\",\"policies\":[\"reads\"],\"policy_hash\":\"ph1\"}");
    ev(j, "tool.call.started", AG, "{\"step\":\"fetch\",\"call_id\":\"fetch/0\",\"server\":\"helpdesk\",\"tool\":\"get_ticket\",\"args\":{\"id\":\"T-1003\"},\"idempotency_key\":\"k\"}");
    ev(j, "tool.call.completed", AG, "{\"step\":\"fetch\",\"call_id\":\"fetch/0\",\"result\":{\"id\":\"T-1003\",\"subject\":\"Need SSO\",\"customer_id\":\"A-300\"},\"duration_ms\":4}");
    ev(j, "state.updated", 0, "{\"key\":\"ticket\",\"value\":{\"id\":\"T-1003\",\"subject\":\"Need SSO\",\"customer_id\":\"A-300\"},\"reducer\":\"replace\"}");
    ev(j, "step.completed", 0, "{\"step\":\"fetch\",\"attempt\":2,\"result\":{\"id\":\"T-1003\",\"subject\":\"Need SSO\",\"customer_id\":\"A-300\"},\"next\":\"triage\"}");
    ev(j, "step.started", 0, "{\"step\":\"triage\",\"attempt\":1}"); /* 16 */
    ev(j, "model.request", AG, "{\"step\":\"triage\",\"call_id\":\"triage/0/m1\",\"model\":\"small\",\"agent\":\"support/triage\",\"turn\":1,\"purpose\":\"turn\",\"tools\":[\"crm/lookup_account\",\"tracker/create_issue\"]}");
    ev(j, "model.response", AG, "{\"step\":\"triage\",\"call_id\":\"triage/0/m1\",\"model\":\"small\",\"agent\":\"support/triage\",\"turn\":1,\"provider\":\"mock\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"c1\",\"name\":\"crm__lookup_account\",\"arguments\":{\"id\":\"A-300\"}},{\"id\":\"c2\",\"name\":\"tracker__create_issue\",\"arguments\":{\"title\":\"x\"}}]},\"stop_reason\":\"tool_calls\",\"usage\":{\"input_tokens\":100,\"output_tokens\":20},\"cost_usd\":0.001}");
    ev(j, "policy.decision", AG, "{\"step\":\"triage\",\"call_id\":\"triage/0/t1.1\",\"agent\":\"support/triage\",\"tool_call_id\":\"c1\",\"action\":\"call_tool\",\"resource\":\"Tool::\\\"crm/lookup_account\\\"\",\"decision\":\"allow\",\"policies\":[\"reads\"],\"policy_hash\":\"ph1\"}");
    ev(j, "tool.call.started", AG, "{\"step\":\"triage\",\"call_id\":\"triage/0/t1.1\",\"server\":\"crm\",\"tool\":\"lookup_account\",\"args\":{\"id\":\"A-300\"},\"idempotency_key\":\"k2\",\"agent\":\"support/triage\",\"tool_call_id\":\"c1\"}");
    ev(j, "tool.call.completed", AG, "{\"step\":\"triage\",\"call_id\":\"triage/0/t1.1\",\"result\":{\"id\":\"A-300\",\"tier\":\"enterprise\",\"plan\":\"starter\",\"updated_at\":\"2019-03-01\"},\"duration_ms\":2}"); /* 21 */
    ev(j, "policy.decision", AG, "{\"step\":\"triage\",\"call_id\":\"triage/0/t1.2\",\"agent\":\"support/triage\",\"tool_call_id\":\"c2\",\"action\":\"call_tool\",\"resource\":\"Tool::\\\"tracker/create_issue\\\"\",\"decision\":\"deny\",\"policies\":[],\"policy_hash\":\"ph1\"}");
    ev(j, "tool.call.refused", AG, "{\"step\":\"triage\",\"call_id\":\"triage/0/t1.2\",\"tool\":\"tracker/create_issue\",\"reason\":\"denied\",\"agent\":\"support/triage\",\"tool_call_id\":\"c2\",\"message\":\"policy denied the call\"}");
    ev(j, "agent.handoff", AG, "{\"step\":\"triage\",\"from\":\"support/triage\",\"to\":\"support/billing\",\"note\":\"a plan question\"}");
    ev(j, "model.request", "agent:support/billing", "{\"step\":\"triage\",\"call_id\":\"triage/0/m2\",\"model\":\"small\",\"agent\":\"support/billing\",\"turn\":2}");
    ev(j, "model.response", "agent:support/billing", "{\"step\":\"triage\",\"call_id\":\"triage/0/m2\",\"model\":\"small\",\"agent\":\"support/billing\",\"turn\":2,\"message\":{\"role\":\"assistant\",\"content\":\"it is fine\"},\"usage\":{\"input_tokens\":200,\"output_tokens\":30},\"cost_usd\":0.002}");
    ev(j, "agent.output.rejected", "agent:support/billing", "{\"step\":\"triage\",\"call_id\":\"triage/0/m2\",\"errors\":[\"not JSON\"],\"agent\":\"support/billing\",\"turn\":2}");
    ev(j, "model.request", "agent:support/billing", "{\"step\":\"triage\",\"call_id\":\"triage/0/m3\",\"model\":\"small\",\"agent\":\"support/billing\",\"turn\":3}");
    ev(j, "model.response", "agent:support/billing", "{\"step\":\"triage\",\"call_id\":\"triage/0/m3\",\"model\":\"small\",\"agent\":\"support/billing\",\"turn\":3,\"message\":{\"role\":\"assistant\",\"content\":\"{\\\"severity\\\":\\\"low\\\"}\"},\"usage\":{\"input_tokens\":50,\"output_tokens\":10},\"cost_usd\":0.0005}"); /* 29 */
    ev(j, "state.updated", 0, "{\"key\":\"triage\",\"value\":{\"severity\":\"low\"},\"reducer\":\"replace\"}"); /* 30 */
    ev(j, "step.completed", 0, "{\"step\":\"triage\",\"attempt\":1,\"result\":{\"severity\":\"low\"},\"next\":\"route\"}");
    ev(j, "step.started", 0, "{\"step\":\"route\",\"attempt\":1}");
    ev(j, "step.completed", 0, "{\"step\":\"route\",\"attempt\":1,\"next\":\"note\"}"); /* 33 */
    ev(j, "step.started", 0, "{\"step\":\"note\",\"attempt\":1}");
    ev(j, "state.updated", 0, "{\"key\":\"notes\",\"value\":\"severity low\",\"reducer\":\"append\"}"); /* 35 */
    ev(j, "step.completed", 0, "{\"step\":\"note\",\"attempt\":1,\"next\":\"check\"}");
    ev(j, "step.started", 0, "{\"step\":\"check\",\"attempt\":1}");
    ev(j, "step.completed", 0, "{\"step\":\"check\",\"attempt\":1,\"next\":\"ask\"}"); /* 38 */
    ev(j, "step.started", 0, "{\"step\":\"ask\",\"attempt\":1}");
    ev(j, "approval.requested", 0, "{\"approval_id\":\"ap1\",\"step\":\"ask\",\"group\":\"support-leads\",\"args_digest\":\"d\"}"); /* 40 */
    ev(j, "run.waiting", 0, "{\"reason\":\"approval\",\"approval_id\":\"ap1\"}");
    ev(j, "approval.decided", "human:alice", "{\"approval_id\":\"ap1\",\"decision\":\"approved\",\"by\":\"human:alice\",\"comment\":\"fine\"}"); /* 42 */
    ev(j, "run.resumed", 0, "{\"reason\":\"approval\",\"approval_id\":\"ap1\"}");
    ev(j, "step.completed", 0, "{\"step\":\"ask\",\"attempt\":1,\"result\":{\"approved\":true,\"by\":\"human:alice\"},\"next\":\"done\"}");
    ev(j, "step.started", 0, "{\"step\":\"done\",\"attempt\":1}");
    ev(j, "run.succeeded", 0, "{\"output\":{},\"step\":\"done\"}"); /* 46 */
    return jb.events;
}

static struct json_value *demo_run(struct arena *a)
{
    struct json_value *r = NULL;
    const char *t = "{\"id\":\"run_demo\",\"workflow\":\"triage-demo\",\"status\":\"succeeded\","
                    "\"input\":{\"ticket_id\":\"T-1003\"},\"created\":\"2026-11-18T00:00:01.000Z\"}";
    json_parse(a, t, strlen(t), NULL, &r, NULL);
    return r;
}

static struct workflow *load_demo(void)
{
    struct workflow *wf = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    if (workflow_load(demo_wf, strlen(demo_wf), "demo.yaml", &wf, NULL, &err) != 0)
        fprintf(stderr, "demo workflow: %s (%s line %d)\n", err.msg, err.path, err.line);
    return wf;
}

/* The demo run explained: its arena, its workflow version (NULL when
 * explained without it) and the report.  Free with demo_cleanup(). */
struct demo {
    struct arena a;
    struct workflow *wf;
    struct json_value *rep;
};

/* Explains the demo run, with its workflow version or without; false
 * (saying why) when the workflow does not load or obs_explain fails. */
static bool demo_explain(struct demo *d, bool with_workflow)
{
    arena_init(&d->a);
    d->wf = with_workflow ? load_demo() : NULL;
    d->rep = NULL;
    if (with_workflow && !d->wf) return false;
    struct keel_err err;
    keel_err_clear(&err);
    if (obs_explain(demo_run(&d->a), demo_events(&d->a), d->wf, &d->a, &d->rep, &err) != 0) {
        fprintf(stderr, "obs_explain: %s\n", err.msg);
        return false;
    }
    return true;
}

static void demo_cleanup(struct demo *d)
{
    workflow_free(d->wf);
    arena_cleanup(&d->a);
}

static const struct json_value *visit_of(const struct json_value *report, const char *step, int nth)
{
    const struct json_value *t = json_get(report, "timeline");
    for (uint32_t i = 0; json_is(t, JSON_ARRAY) && i < t->len; i++)
        if (!strcmp(json_get_str(t->u.items[i], "step", ""), step) && nth-- == 0)
            return t->u.items[i];
    return NULL;
}

static const struct json_value *at(const struct json_value *v, const char *pointer)
{
    return json_pointer_get(v, pointer);
}

static int64_t int_at(const struct json_value *v, const char *pointer)
{
    const struct json_value *x = json_pointer_get(v, pointer);
    return json_is(x, JSON_NUMBER) ? (int64_t)x->u.n.d : -999;
}

static const char *str_at(const struct json_value *v, const char *pointer)
{
    const struct json_value *x = json_pointer_get(v, pointer);
    return json_is(x, JSON_STRING) ? x->u.s.str : NULL;
}

static int count_lines(const char *s, size_t len)
{
    int n = 0;
    for (size_t i = 0; i < len; i++) n += s[i] == '\n';
    return n;
}

/* The terminal rendering of rep (width 0: unknown), as a string in a. */
static const char *text_of(struct arena *a, const struct json_value *rep, bool color, int width)
{
    struct buf out;
    buf_init(&out);
    obs_explain_text_width(rep, &out, color, width);
    const char *s = arena_strndup(a, out.data ? out.data : "", out.len);
    buf_cleanup(&out);
    return s;
}

/* The summary is everything before the first timeline block (a blank line). */
static size_t summary_len(const char *text)
{
    const char *p = strstr(text, "\n\n");
    return p ? (size_t)(p - text) + 1 : strlen(text);
}

TEST(report_counts_and_identities)
{
    struct demo d;
    REQUIRE(demo_explain(&d, true));
    struct json_value *rep = d.rep;
    CHECK_STR(str_at(rep, "/run/id"), "run_demo");
    CHECK_STR(str_at(rep, "/run/workflow_hash"), "abc123");
    CHECK_STR(str_at(rep, "/run/status"), "succeeded");
    CHECK_INT(int_at(rep, "/run/duration_ms"), 45000);
    CHECK_INT(int_at(rep, "/run/events"), 46);
    CHECK_CONTAINS(str_at(rep, "/summary/outcome"), "Succeeded after 7 step visits");
    CHECK_INT(int_at(rep, "/summary/counts/steps"), 7);
    CHECK_INT(int_at(rep, "/summary/counts/retries"), 1);
    CHECK_INT(int_at(rep, "/summary/counts/tool_calls"), 3);
    CHECK_INT(int_at(rep, "/summary/counts/allowed"), 3);
    CHECK_INT(int_at(rep, "/summary/counts/denied"), 1);
    CHECK_INT(int_at(rep, "/summary/counts/refusals"), 1);
    CHECK_INT(int_at(rep, "/summary/counts/rejected_outputs"), 1);
    CHECK_INT(int_at(rep, "/summary/counts/model_calls"), 3);
    CHECK_INT(int_at(rep, "/summary/counts/input_tokens"), 350);
    CHECK_INT(int_at(rep, "/summary/counts/output_tokens"), 60);
    const struct json_value *cost = at(rep, "/summary/counts/cost_usd");
    CHECK(json_is(cost, JSON_NUMBER) && cost->u.n.d > 0.00349 && cost->u.n.d < 0.00351);
    /* Identities, in order of first appearance. */
    CHECK_STR(str_at(rep, "/summary/agents/0/identity"), "support/triage");
    CHECK_INT(int_at(rep, "/summary/agents/0/tool_calls"), 3);
    CHECK_INT(int_at(rep, "/summary/agents/0/model_calls"), 1);
    CHECK_STR(str_at(rep, "/summary/agents/0/credential"), "none brokered");
    CHECK_STR(str_at(rep, "/summary/agents/1/identity"), "support/billing");
    CHECK_INT(int_at(rep, "/summary/agents/1/model_calls"), 2);
    CHECK_INT(int_at(rep, "/summary/agents/1/input_tokens"), 250);
    /* The approval: who and when. */
    CHECK_STR(str_at(rep, "/summary/approvals/0/id"), "ap1");
    CHECK_STR(str_at(rep, "/summary/approvals/0/decision"), "approved");
    CHECK_STR(str_at(rep, "/summary/approvals/0/by"), "human:alice");
    CHECK_INT(int_at(rep, "/summary/approvals/0/decided_seq"), 42);
    CHECK(str_at(rep, "/summary/approvals/0/decided_at") != NULL);
    CHECK_STR(str_at(rep, "/summary/approvals/0/comment"), "fine");
    demo_cleanup(&d);
}

TEST(timeline_entries)
{
    struct demo d;
    REQUIRE(demo_explain(&d, true));
    struct json_value *rep = d.rep;
    REQUIRE(json_get(rep, "timeline")->len == 7);
    /* fetch: two attempts in one visit, the first failed with a retry. */
    const struct json_value *f = visit_of(rep, "fetch", 0);
    REQUIRE(f);
    CHECK_STR(json_get_str(f, "kind", ""), "tool");
    CHECK_INT(json_get_int(f, "attempts", 0), 2);
    CHECK_STR(json_get_str(f, "status", ""), "completed");
    CHECK_INT(json_get_int(f, "start_seq", 0), 2);
    CHECK_INT(json_get_int(f, "end_seq", 0), 15);
    CHECK_STR(str_at(f, "/actor/identity"), "support/triage");
    CHECK_STR(str_at(f, "/actor/credential"), "none brokered");
    CHECK_INT(int_at(f, "/errors/0/seq"), 6);
    CHECK(at(f, "/errors/0/retry_at") != NULL);
    CHECK_STR(str_at(f, "/state_read/0/path"), "input.ticket_id");
    CHECK_STR(str_at(f, "/state_read/0/value"), "T-1003");
    CHECK_STR(str_at(f, "/state_read/0/written_by/origin"), "input");
    CHECK_STR(str_at(f, "/state_written/0/key"), "ticket");
    CHECK(at(f, "/state_written/0/before_unset") != NULL);
    CHECK_STR(str_at(f, "/state_written/0/after/subject"), "Need SSO");
    /* One call record per attempt (a retry reuses the call id). */
    CHECK_INT(json_get(f, "calls")->len, 2);
    CHECK_STR(str_at(f, "/calls/0/status"), "error");
    CHECK_STR(str_at(f, "/calls/0/error/code"), "EIO");
    CHECK_INT(int_at(f, "/calls/0/attempt"), 1);
    CHECK_STR(str_at(f, "/calls/1/tool"), "helpdesk/get_ticket");
    CHECK_STR(str_at(f, "/calls/1/call_id"), "fetch/0");
    CHECK_STR(str_at(f, "/calls/1/status"), "ok");
    CHECK_INT(int_at(f, "/calls/1/attempt"), 2);
    CHECK_STR(str_at(f, "/calls/1/policy/decision"), "allow");
    CHECK_INT(int_at(f, "/calls/1/policy/seq"), 11);
    CHECK_STR(str_at(f, "/calls/1/policy/policies/0"), "reads");
    CHECK_STR(str_at(f, "/calls/1/policy/policy_hash"), "ph1");
    CHECK_INT(int_at(f, "/calls/1/duration_ms"), 4);
    CHECK_STR(str_at(f, "/calls/1/result/subject"), "Need SSO");
    /* triage: the agent step with its model calls, a refusal, a handoff. */
    const struct json_value *t = visit_of(rep, "triage", 0);
    REQUIRE(t);
    CHECK_STR(json_get_str(t, "kind", ""), "agent");
    CHECK_STR(str_at(t, "/actor/identity"), "support/billing"); /* after the handoff */
    CHECK_STR(str_at(t, "/state_read/0/path"), "state.ticket.subject");
    CHECK_INT(int_at(t, "/state_read/0/written_by/seq"), 14);
    CHECK_INT(json_get(t, "model_calls")->len, 3);
    CHECK_STR(str_at(t, "/model_calls/0/proposed/0/tool"), "crm/lookup_account");
    CHECK_STR(str_at(t, "/model_calls/0/refusals/0/tool_call_id"), "c2");
    CHECK_STR(str_at(t, "/model_calls/2/text"), "{\"severity\":\"low\"}");
    CHECK_INT(int_at(t, "/model_calls/2/response_seq"), 29);
    CHECK_STR(str_at(t, "/calls/0/tool"), "crm/lookup_account");
    CHECK_STR(str_at(t, "/calls/0/identity"), "support/triage");
    CHECK_STR(str_at(t, "/calls/0/tool_call_id"), "c1");
    CHECK_STR(str_at(t, "/calls/1/tool"), "tracker/create_issue");
    CHECK_STR(str_at(t, "/calls/1/status"), "refused");
    CHECK_STR(str_at(t, "/calls/1/policy/decision"), "deny");
    CHECK_STR(str_at(t, "/calls/1/refused/reason"), "denied");
    CHECK_STR(str_at(t, "/calls/1/args/title"), "x"); /* from the proposal */
    CHECK_STR(str_at(t, "/calls/1/proposed_by"), "triage/0/m1");
    CHECK_STR(str_at(t, "/handoffs/0/to"), "support/billing");
    CHECK_INT(int_at(t, "/rejected_outputs/0/seq"), 27);
    CHECK_INT(int_at(t, "/usage/input_tokens"), 350);
    /* ask: the approval step acts as the human who decided. */
    const struct json_value *ask = visit_of(rep, "ask", 0);
    REQUIRE(ask);
    CHECK_STR(str_at(ask, "/actor/identity"), "human:alice");
    CHECK_STR(str_at(ask, "/approvals/0/by"), "human:alice");
    /* note: the set step read state.triage.severity at its start. */
    const struct json_value *n = visit_of(rep, "note", 0);
    REQUIRE(n);
    CHECK_STR(str_at(n, "/state_read/0/path"), "state.triage.severity");
    CHECK_STR(str_at(n, "/state_read/0/value"), "low");
    CHECK_STR(str_at(n, "/state_written/0/reducer"), "append");
    CHECK_INT(at(n, "/state_written/0/before")->len, 0);
    CHECK_STR(str_at(n, "/state_written/0/after/0"), "severity low");
    demo_cleanup(&d);
}

TEST(provenance_and_switch_causes)
{
    struct demo d;
    REQUIRE(demo_explain(&d, true));
    struct json_value *rep = d.rep;
    /* state.triage: written by the agent's final answer, which rested on
     * the CRM lookup. */
    const struct json_value *p = at(rep, "/provenance/triage");
    REQUIRE(p);
    CHECK_INT(json_get_int(p, "seq", 0), 30);
    CHECK_STR(json_get_str(p, "step", ""), "triage");
    CHECK_STR(str_at(p, "/source/kind"), "agent");
    CHECK_INT(int_at(p, "/source/model/seq"), 29);
    CHECK_STR(str_at(p, "/source/model/agent"), "support/billing");
    CHECK_INT(int_at(p, "/source/evidence/0/seq"), 21);
    CHECK_STR(str_at(p, "/source/evidence/0/tool"), "crm/lookup_account");
    CHECK_STR(str_at(p, "/source/evidence/0/call_id"), "triage/0/t1.1");
    CHECK_CONTAINS(str_at(p, "/source/evidence/0/result"), "2019-03-01");
    /* state.ticket: the tool result of fetch. */
    CHECK_STR(str_at(rep, "/provenance/ticket/source/kind"), "tool");
    CHECK_INT(int_at(rep, "/provenance/ticket/source/tool/seq"), 13);
    /* route: re-evaluated, default, the read traced to the tool result. */
    const struct json_value *sw = at(rep, "/switches/0");
    REQUIRE(sw);
    CHECK_STR(json_get_str(sw, "step", ""), "route");
    CHECK_STR(json_get_str(sw, "next", ""), "note");
    CHECK_STR(json_get_str(sw, "evaluated_next", ""), "note");
    CHECK_STR(json_get_str(sw, "condition", ""), "default");
    CHECK(json_get(sw, "mismatch") == NULL);
    CHECK(at(sw, "/cases/0/value")->type == JSON_FALSE);
    CHECK_STR(str_at(sw, "/reads/0/path"), "state.triage.severity");
    CHECK_STR(str_at(sw, "/reads/0/value"), "low");
    CHECK_INT(int_at(sw, "/reads/0/written_by/source/evidence/0/seq"), 21);
    const char *cause = json_get_str(sw, "cause", "");
    CHECK_CONTAINS(cause, "route → note by default");
    CHECK_CONTAINS(cause, "model.response #29");
    CHECK_CONTAINS(cause, "crm/lookup_account (#21)");
    CHECK_CONTAINS(cause, "\"plan\":\"starter\"");
    /* check: matched its case; the read went through the set step note. */
    const struct json_value *sw2 = at(rep, "/switches/1");
    REQUIRE(sw2);
    CHECK_STR(json_get_str(sw2, "evaluated_next", ""), "ask");
    CHECK_INT(json_get_int(sw2, "matched_case", 0), 1);
    CHECK_STR(str_at(sw2, "/reads/0/path"), "state.notes");
    CHECK_STR(str_at(sw2, "/reads/0/written_by/source/kind"), "set");
    CHECK_STR(str_at(sw2, "/reads/0/written_by/source/inputs/0/path"), "state.triage.severity");
    CHECK_INT(int_at(sw2, "/reads/0/written_by/source/inputs/0/written_by/source/evidence/0/seq"), 21);
    CHECK_CONTAINS(json_get_str(sw2, "cause", ""), "crm/lookup_account (#21)");
    /* Both switches are in attention with their causes. */
    const struct json_value *att = at(rep, "/summary/attention");
    int switches = 0, denied = 0, refused = 0, rejected = 0, failed = 0;
    for (uint32_t i = 0; i < att->len; i++) {
        const char *k = json_get_str(att->u.items[i], "kind", "");
        switches += !strcmp(k, "switch");
        denied += !strcmp(k, "denied");
        refused += !strcmp(k, "refused");
        rejected += !strcmp(k, "output_rejected");
        failed += !strcmp(k, "step_failed");
    }
    CHECK_INT(switches, 2);
    CHECK_INT(denied, 1);
    CHECK_INT(refused, 1);
    CHECK_INT(rejected, 1);
    CHECK_INT(failed, 1);
    demo_cleanup(&d);
}

TEST(text_summary_fits_a_screen)
{
    struct demo d;
    REQUIRE(demo_explain(&d, true));
    struct json_value *rep = d.rep;
    const char *text = text_of(&d.a, rep, false, 0);
    REQUIRE(text);
    size_t sl = summary_len(text);
    CHECK(count_lines(text, sl) <= OBS_SUMMARY_LINES);
    CHECK(count_lines(text, sl) >= 8);
    CHECK(strstr(text, "\x1b[") == NULL);
    CHECK_CONTAINS(text, "Outcome: Succeeded");
    CHECK_CONTAINS(text, "Steps: 7 visits, retries 1, failures 1 · Tool calls made: 3 · Policy: 3 "
                             "allowed, 1 denied, 0 needed approval · Refused: 1");
    CHECK_CONTAINS(text, "Models: 3 calls, 350 tokens in, 60 out, $0.0035 · rejected outputs 1");
    CHECK_CONTAINS(text, "support/billing");
    CHECK_CONTAINS(text, "ap1 (group support-leads, step ask): approved by human:alice");
    CHECK_CONTAINS(text, "route → note by default: state.triage.severity=\"low\" "
                             "← agent support/billing (step triage, model.response #29) ← "
                             "read crm/lookup_account #21: {\"id\":\"A-300\",\"tier\":"
                             "\"enterprise\",\"plan\":\"starter\"");
    CHECK_CONTAINS(text, "check → ask: state.notes=[\"severity low\"] ← set step note #35 from "
                             "state.triage.severity ← agent support/billing");
    CHECK_CONTAINS(str_at(rep, "/switches/1/brief"), "[if state.notes.contains(\"severity low\")]");
    CHECK_STR(json_get_str(visit_of(rep, "done", 0), "status", ""), "completed");
    /* The timeline follows, one block per visit. */
    CHECK_CONTAINS(text + sl, "fetch (tool, 2 attempts) as support/triage");
    CHECK_CONTAINS(text + sl, "handoff #24 support/triage → support/billing");
    CHECK_CONTAINS(text + sl, "refused (denied)");
    text = text_of(&d.a, rep, true, 0);
    CHECK(strstr(text, "\x1b[") != NULL);
    demo_cleanup(&d);
}

TEST(without_the_workflow_version)
{
    struct demo d;
    REQUIRE(demo_explain(&d, false));
    struct json_value *rep = d.rep;
    CHECK(at(rep, "/run/workflow_version_available")->type == JSON_FALSE);
    const struct json_value *route = visit_of(rep, "route", 0);
    REQUIRE(route);
    CHECK_STR(json_get_str(route, "kind", ""), "switch");
    CHECK_STR(str_at(route, "/switch/next"), "note");
    CHECK_CONTAINS(str_at(route, "/switch/cause"), "not re-evaluated");
    /* Kinds come from the events; state still folds (reducer in payload). */
    CHECK_STR(json_get_str(visit_of(rep, "fetch", 0), "kind", ""), "unknown");
    CHECK_STR(str_at(rep, "/state/notes/0"), "severity low");
    CHECK_STR(str_at(rep, "/provenance/triage/source/kind"), "agent");
    CHECK_INT(int_at(rep, "/summary/counts/model_calls"), 3);
    demo_cleanup(&d);
}

TEST(switch_mismatch_is_reported)
{
    /* A journal whose recorded next disagrees with the condition. */
    struct arena a;
    arena_init(&a);
    struct workflow *wf = load_demo();
    REQUIRE(wf);
    struct journal_builder jb = {&a, json_array(&a), 0}, *j = &jb;
    ev(j, "run.started", 0, "{\"workflow\":\"triage-demo\",\"workflow_hash\":\"h\",\"input\":{}}");
    ev(j, "state.updated", 0, "{\"key\":\"triage\",\"value\":{\"severity\":\"high\"}}");
    ev(j, "step.started", 0, "{\"step\":\"route\",\"attempt\":1}");
    ev(j, "step.completed", 0, "{\"step\":\"route\",\"attempt\":1,\"next\":\"note\"}");
    struct json_value *rep = NULL;
    REQUIRE(obs_explain(NULL, jb.events, wf, &a, &rep, NULL) == 0);
    CHECK_STR(str_at(rep, "/switches/0/evaluated_next"), "escalate");
    CHECK_CONTAINS(str_at(rep, "/switches/0/mismatch"), "recorded note");
    CHECK_STR(str_at(rep, "/switches/0/reads/0/written_by/source/kind"), "outside a step");
    CHECK(json_get(rep, "anomalies") != NULL);
    CHECK_STR(str_at(rep, "/run/status"), "running");
    workflow_free(wf);
    arena_cleanup(&a);
}

TEST(waiting_and_reconcile_outcomes)
{
    struct arena a;
    arena_init(&a);
    struct journal_builder jb = {&a, json_array(&a), 0}, *j = &jb;
    ev(j, "run.started", 0, "{\"workflow\":\"w\",\"workflow_hash\":\"h\",\"input\":{}}");
    ev(j, "step.started", 0, "{\"step\":\"open\",\"attempt\":1}");
    ev(j, "policy.decision", AG, "{\"step\":\"open\",\"action\":\"call_tool\",\"resource\":\"Tool::\\\"tracker/create_issue\\\"\",\"decision\":\"approval\",\"group\":\"leads\",\"policies\":[\"gate\"]}");
    ev(j, "approval.requested", 0, "{\"approval_id\":\"ap9\",\"step\":\"open\",\"group\":\"leads\",\"tool\":\"tracker/create_issue\",\"args_digest\":\"d\"}");
    ev(j, "run.waiting", 0, "{\"reason\":\"approval\",\"approval_id\":\"ap9\"}");
    struct json_value *rep = NULL;
    REQUIRE(obs_explain(NULL, jb.events, NULL, &a, &rep, NULL) == 0);
    CHECK_STR(str_at(rep, "/run/status"), "waiting");
    CHECK_CONTAINS(str_at(rep, "/summary/outcome"), "for approval ap9 (group leads) at step open");
    CHECK_INT(int_at(rep, "/summary/counts/needed_approval"), 1);
    CHECK_STR(str_at(rep, "/timeline/0/calls/0/status"), "awaiting_approval");
    CHECK_STR(str_at(rep, "/timeline/0/calls/0/approval/id"), "ap9");
    CHECK_STR(str_at(rep, "/timeline/0/status"), "waiting");
    /* Decided, the gate runs again, the call goes out, then a crash. */
    ev(j, "approval.decided", "human:alice", "{\"approval_id\":\"ap9\",\"decision\":\"approved\",\"by\":\"human:alice\"}");
    ev(j, "run.resumed", 0, "{\"reason\":\"approval\",\"approval_id\":\"ap9\"}");
    ev(j, "policy.decision", AG, "{\"step\":\"open\",\"action\":\"call_tool\",\"resource\":\"Tool::\\\"tracker/create_issue\\\"\",\"decision\":\"approval\",\"group\":\"leads\",\"policies\":[\"gate\"]}");
    ev(j, "tool.call.started", AG, "{\"step\":\"open\",\"call_id\":\"open/0\",\"server\":\"tracker\",\"tool\":\"create_issue\",\"args\":{\"title\":\"urgent\"},\"idempotency_key\":\"k\"}");
    ev(j, "run.needs_reconcile", 0, "{\"step\":\"open\",\"call_id\":\"open/0\",\"tool\":\"tracker/create_issue\",\"reason\":\"not idempotent\"}");
    REQUIRE(obs_explain(NULL, jb.events, NULL, &a, &rep, NULL) == 0);
    CHECK_STR(str_at(rep, "/run/status"), "needs_reconcile");
    CHECK_CONTAINS(str_at(rep, "/summary/outcome"), "call open/0 to tracker/create_issue");
    CHECK_INT(int_at(rep, "/summary/counts/needed_approval"), 1);
    CHECK_INT(int_at(rep, "/summary/counts/allowed"), 0);
    CHECK_INT(int_at(rep, "/summary/counts/tool_calls"), 1);
    CHECK_STR(str_at(rep, "/timeline/0/calls/0/status"), "needs_reconcile");
    CHECK_STR(str_at(rep, "/timeline/0/calls/0/approval/by"), "human:alice");
    CHECK_INT(json_get(at(rep, "/timeline/0/calls/0"), "decisions")->len, 2);
    CHECK_INT(json_get(rep, "timeline")->len, 1);
    const struct json_value *att = at(rep, "/summary/attention");
    bool found = false;
    for (uint32_t i = 0; i < att->len; i++)
        found |= !strcmp(json_get_str(att->u.items[i], "kind", ""), "needs_reconcile");
    CHECK(found);
    arena_cleanup(&a);
}

TEST(large_values_and_floods_are_capped)
{
    struct arena a;
    arena_init(&a);
    struct journal_builder jb = {&a, json_array(&a), 0}, *j = &jb;
    ev(j, "run.started", 0, "{\"workflow\":\"w\",\"input\":{}}");
    struct buf big;
    buf_init(&big);
    buf_puts(&big, "{\"key\":\"blob\",\"value\":\"");
    for (int i = 0; i < 3 * OBS_VALUE_MAX; i++) buf_putc(&big, 'x');
    buf_puts(&big, "\"}");
    ev(j, "step.started", 0, "{\"step\":\"s\",\"attempt\":1}");
    ev(j, "state.updated", 0, big.data);
    buf_cleanup(&big);
    for (int i = 0; i < OBS_ATTENTION_MAX + 50; i++)
        ev(j, "step.failed", 0, "{\"step\":\"s\",\"attempt\":1,\"error\":{\"code\":\"EIO\",\"message\":\"again\"},\"retry_at\":1}");
    ev(j, "budget.exceeded", 0, "{\"step\":\"s\",\"scope\":\"run\",\"limit\":{\"tokens\":10},\"used\":{\"tokens\":11,\"usd\":0}}");
    ev(j, "bogus.kind", 0, "{}");
    struct json_value *rep = NULL;
    REQUIRE(obs_explain(NULL, jb.events, NULL, &a, &rep, NULL) == 0);
    CHECK(at(rep, "/timeline/0/state_written/0/after/truncated") != NULL);
    CHECK_INT(int_at(rep, "/timeline/0/state_written/0/after/larger_than"), OBS_VALUE_MAX);
    CHECK_CONTAINS(str_at(rep, "/timeline/0/state_written/0/after/preview"), "\"xxxxxxxx");
    CHECK_INT(json_get(at(rep, "/summary"), "attention")->len, OBS_ATTENTION_MAX);
    CHECK_INT(int_at(rep, "/summary/attention_omitted"), 51);
    CHECK_CONTAINS(str_at(rep, "/anomalies/0"), "unknown kind 'bogus.kind'");
    const char *text = text_of(&a, rep, false, 0);
    CHECK(count_lines(text, summary_len(text)) <= OBS_SUMMARY_LINES);
    CHECK_CONTAINS(text, "more in the timeline below");
    arena_cleanup(&a);
}

TEST(malformed_input)
{
    struct arena a;
    arena_init(&a);
    struct json_value *rep = NULL, *notarr = json_object(&a);
    struct keel_err err;
    keel_err_clear(&err);
    CHECK_INT(obs_explain(NULL, notarr, NULL, &a, &rep, &err), KEEL_EINVAL);
    /* Events that are not objects, payloads that are not objects, events
     * naming a step nobody started. */
    struct json_value *evs = NULL;
    const char *t = "[1, {\"kind\":\"step.completed\",\"payload\":7}, {\"seq\":3,"
                    "\"kind\":\"tool.call.completed\",\"payload\":{\"step\":\"x\"}}, {\"kind\":null}]";
    REQUIRE(json_parse(&a, t, strlen(t), NULL, &evs, NULL) == 0);
    REQUIRE(obs_explain(NULL, evs, NULL, &a, &rep, NULL) == 0);
    CHECK(json_get(rep, "anomalies") != NULL);
    struct buf out;
    buf_init(&out);
    obs_explain_text(rep, &out, false);
    obs_explain_text(notarr, &out, true); /* any value renders */
    CHECK(out.len > 0);
    buf_cleanup(&out);
    arena_cleanup(&a);
}

TEST(condition_paths)
{
    struct arena a;
    arena_init(&a);
    struct json_value *p = obs_condition_paths(
        "state.a.b == \"state.x \\\" input.q\" && input.y.z > 1 && "
        "result[\"k\"].m.contains(state.q) && state.a.b != context.state.no && "
        "state has triage",
        &a);
    REQUIRE(p->len == 5);
    CHECK_STR(p->u.items[0]->u.s.str, "state.a.b");
    CHECK_STR(p->u.items[1]->u.s.str, "input.y.z");
    CHECK_STR(p->u.items[2]->u.s.str, "result.k.m");
    CHECK_STR(p->u.items[3]->u.s.str, "state.q");
    CHECK_STR(p->u.items[4]->u.s.str, "state");
    CHECK_INT(obs_condition_paths("", &a)->len, 0);
    CHECK_INT(obs_condition_paths("\"unterminated state.x", &a)->len, 0);
    CHECK_INT(obs_condition_paths(NULL, &a)->len, 0);
    arena_cleanup(&a);
}

static const char loop_wf[] =
    "name: loop\n"
    "state:\n"
    "  n: {reducer: replace}\n"
    "steps:\n"
    "  - id: bump\n"
    "    set: {n: \"${state.n}\"}\n"
    "  - id: again\n"
    "    switch:\n"
    "      - if: 'state.n == \"x\"'\n"
    "        goto: bump\n"
    "    default: end\n"
    "  - id: end\n"
    "    succeed: {}\n";

TEST(loops_number_visits_and_chains_stay_bounded)
{
    struct arena a;
    arena_init(&a);
    struct workflow *wf = NULL;
    REQUIRE(workflow_load(loop_wf, strlen(loop_wf), "loop.yaml", &wf, NULL, NULL) == 0);
    struct journal_builder jb = {&a, json_array(&a), 0}, *j = &jb;
    ev(j, "run.started", 0, "{\"workflow\":\"loop\",\"input\":{}}");
    ev(j, "state.updated", "human:alice", "{\"key\":\"n\",\"value\":\"x\"}");
    const int loops = 12;
    for (int i = 0; i < loops; i++) {
        ev(j, "step.started", 0, "{\"step\":\"bump\",\"attempt\":1}");
        ev(j, "state.updated", 0, "{\"key\":\"n\",\"value\":\"x\",\"reducer\":\"replace\"}");
        ev(j, "step.completed", 0, "{\"step\":\"bump\",\"attempt\":1,\"next\":\"again\"}");
        ev(j, "step.started", 0, "{\"step\":\"again\",\"attempt\":1}");
        ev(j, "step.completed", 0, "{\"step\":\"again\",\"attempt\":1,\"next\":\"bump\"}");
    }
    struct json_value *rep = NULL;
    REQUIRE(obs_explain(NULL, jb.events, wf, &a, &rep, NULL) == 0);
    CHECK_INT(json_get(rep, "timeline")->len, 2 * loops);
    const struct json_value *last = visit_of(rep, "bump", loops - 1);
    REQUIRE(last);
    CHECK_INT(json_get_int(last, "visit", -1), loops - 1);
    CHECK_INT(json_get(rep, "switches")->len, loops);
    CHECK(json_get(rep, "anomalies") == NULL); /* every re-evaluation agrees */
    /* Follow the chain of state.n: each set step copied the previous value.
     * It is embedded at most OBS_CHAIN_MAX levels deep, then referenced. */
    const struct json_value *p = at(rep, "/provenance/n");
    int levels = 0;
    while (p && json_pointer_get(p, "/source/inputs/0/written_by")) {
        p = json_pointer_get(p, "/source/inputs/0/written_by");
        levels++;
    }
    CHECK(levels >= 2);
    CHECK(levels <= OBS_CHAIN_MAX);
    CHECK(p && json_get(p, "seq") != NULL); /* the last link is a reference */
    /* The first write came from outside any step, by a person. */
    ev(j, "step.started", 0, "{\"step\":\"bump\",\"attempt\":1}");
    REQUIRE(obs_explain(NULL, jb.events, wf, &a, &rep, NULL) == 0);
    const struct json_value *first = visit_of(rep, "bump", 0);
    CHECK_STR(str_at(first, "/state_read/0/written_by/source/kind"), "outside a step");
    CHECK_STR(str_at(rep, "/run/status"), "running");
    CHECK_CONTAINS(str_at(rep, "/summary/outcome"), "Running: at step bump");
    workflow_free(wf);
    arena_cleanup(&a);
}

/* The engine's journal for set and switch steps: no step.started; each
 * state.updated names its step, and the completion closes the visit.  The
 * report must read it as it reads the older form above. */
TEST(pure_steps_journal_no_step_started)
{
    struct arena a;
    arena_init(&a);
    struct workflow *wf = NULL;
    REQUIRE(workflow_load(loop_wf, strlen(loop_wf), "loop.yaml", &wf, NULL, NULL) == 0);
    struct journal_builder jb = {&a, json_array(&a), 0}, *j = &jb;
    ev(j, "run.started", 0, "{\"workflow\":\"loop\",\"input\":{}}");
    const int loops = 5;
    for (int i = 0; i < loops; i++) {
        ev(j, "state.updated", 0,
           "{\"key\":\"n\",\"value\":\"x\",\"reducer\":\"replace\",\"step\":\"bump\"}");
        ev(j, "step.completed", 0, "{\"step\":\"bump\",\"attempt\":1,\"next\":\"again\"}");
        ev(j, "step.completed", 0, "{\"step\":\"again\",\"attempt\":1,\"next\":\"bump\"}");
    }
    struct json_value *rep = NULL;
    REQUIRE(obs_explain(NULL, jb.events, wf, &a, &rep, NULL) == 0);
    CHECK(json_get(rep, "anomalies") == NULL);
    CHECK_INT(json_get(rep, "timeline")->len, 2 * loops);
    CHECK_INT(json_get(rep, "switches")->len, loops);
    /* A page: visits 3..6 (bump, again, bump, again from the second lap
     * on), the two switches among them, and where the next page starts. */
    struct json_value *pg = NULL;
    REQUIRE(obs_explain(NULL, jb.events, wf, &a, &pg, NULL) == 0);
    obs_explain_page(pg, 3, 4, &a);
    CHECK_INT(json_get(pg, "timeline")->len, 4);
    CHECK_STR(str_at(pg, "/timeline/0/step"), "again");
    CHECK_INT(int_at(pg, "/timeline_total"), 2 * loops);
    CHECK_INT(int_at(pg, "/timeline_from"), 3);
    CHECK_INT(int_at(pg, "/timeline_next"), 7);
    CHECK_INT(json_get(pg, "switches")->len, 2);
    REQUIRE(obs_explain(NULL, jb.events, wf, &a, &pg, NULL) == 0);
    obs_explain_page(pg, 2 * loops - 1, 0, &a);
    CHECK_INT(json_get(pg, "timeline")->len, 1);
    CHECK(json_get(pg, "timeline_next") == NULL);
    CHECK_INT(json_get(pg, "switches")->len, 1);
    const struct json_value *last = visit_of(rep, "bump", loops - 1);
    REQUIRE(last);
    CHECK_INT(json_get_int(last, "visit", -1), loops - 1);
    CHECK_STR(str_at(last, "/status"), "completed");
    CHECK_STR(str_at(last, "/state_written/0/key"), "n");
    const struct json_value *sw = visit_of(rep, "again", loops - 1);
    REQUIRE(sw);
    CHECK_STR(str_at(sw, "/kind"), "switch");
    CHECK_INT(json_get_int(sw, "visit", -1), loops - 1);
    /* state.n was written by the last visit of bump. */
    CHECK_STR(str_at(rep, "/provenance/n/step"), "bump");
    CHECK_INT(int_at(rep, "/provenance/n/visit"), loops - 1);
    workflow_free(wf);
    arena_cleanup(&a);
}

TEST(summaries_budgets_compensation_cancel)
{
    struct arena a;
    arena_init(&a);
    struct journal_builder jb = {&a, json_array(&a), 0}, *j = &jb;
    ev(j, "run.started", 0, "{\"workflow\":\"w\",\"input\":{}}");
    ev(j, "step.started", 0, "{\"step\":\"g\",\"attempt\":1}");
    /* A summary whose model call is journaled: counted once. */
    ev(j, "model.request", AG, "{\"step\":\"g\",\"call_id\":\"g/0/m1\",\"model\":\"m\",\"agent\":\"support/triage\",\"purpose\":\"summary\"}");
    ev(j, "model.response", AG, "{\"step\":\"g\",\"call_id\":\"g/0/m1\",\"model\":\"m\",\"agent\":\"support/triage\",\"usage\":{\"input_tokens\":40,\"output_tokens\":4},\"cost_usd\":0.5}");
    ev(j, "context.summarized", AG, "{\"step\":\"g\",\"call_id\":\"g/0/m1\",\"summary\":\"S\",\"agent\":\"support/triage\",\"tokens_before\":900,\"tokens_after\":100,\"usage\":{\"input_tokens\":40,\"output_tokens\":4},\"cost_usd\":0.5}");
    /* One without a journaled model call: its own usage counts. */
    ev(j, "context.summarized", AG, "{\"step\":\"g\",\"call_id\":\"g/0/s2\",\"summary\":\"S2\",\"agent\":\"support/triage\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1},\"cost_usd\":0.25}");
    ev(j, "budget.exceeded", 0, "{\"step\":\"g\",\"scope\":\"agent\",\"agent\":\"support/triage\",\"limit\":{\"usd\":0.5},\"used\":{\"tokens\":55,\"usd\":0.75},\"approval_id\":\"b1\"}");
    ev(j, "budget.extended", "human:alice", "{\"scope\":\"agent\",\"agent\":\"support/triage\",\"usd\":1,\"by\":\"human:alice\",\"approval_id\":\"b1\",\"step\":\"g\"}");
    ev(j, "compensation.started", 0, "{\"step\":\"g\",\"call_id\":\"g/0/c\",\"tool\":\"tracker/close_issue\"}");
    ev(j, "compensation.completed", 0, "{\"step\":\"g\",\"call_id\":\"g/0/c\",\"result\":{}}");
    ev(j, "run.cancelled", "human:alice", "{\"by\":\"human:alice\",\"reason\":\"wrong ticket\"}");
    struct json_value *rep = NULL;
    REQUIRE(obs_explain(NULL, jb.events, NULL, &a, &rep, NULL) == 0);
    CHECK_INT(int_at(rep, "/summary/counts/input_tokens"), 50);
    CHECK_INT(int_at(rep, "/summary/counts/output_tokens"), 5);
    CHECK_INT(int_at(rep, "/summary/counts/model_calls"), 1);
    CHECK_INT(int_at(rep, "/summary/agents/0/input_tokens"), 50);
    CHECK_STR(str_at(rep, "/timeline/0/model_calls/0/purpose"), "summary");
    CHECK_INT(json_get(at(rep, "/timeline/0"), "summaries")->len, 2);
    CHECK_INT(int_at(rep, "/timeline/0/summaries/0/tokens_after"), 100);
    CHECK_STR(str_at(rep, "/timeline/0/budget/0/event"), "budget.exceeded");
    CHECK_STR(str_at(rep, "/timeline/0/budget/1/event"), "budget.extended");
    CHECK_INT(json_get(at(rep, "/timeline/0"), "compensations")->len, 2);
    CHECK_STR(str_at(rep, "/timeline/0/status"), "cancelled");
    CHECK_STR(str_at(rep, "/run/status"), "cancelled");
    CHECK_CONTAINS(str_at(rep, "/summary/outcome"), "Cancelled by human:alice");
    const struct json_value *att = at(rep, "/summary/attention");
    bool budget = false, cancelled = false;
    for (uint32_t i = 0; i < att->len; i++) {
        budget |= !strcmp(json_get_str(att->u.items[i], "kind", ""), "budget");
        cancelled |= !strcmp(json_get_str(att->u.items[i], "kind", ""), "cancelled");
    }
    CHECK(budget && cancelled);
    const char *text = text_of(&a, rep, false, 0);
    CHECK_CONTAINS(text, "context summarized #5 (900 → 100 tokens)");
    CHECK_CONTAINS(text, "budget.exceeded #7");
    arena_cleanup(&a);
}

/* Screen rows the summary takes on a terminal `width` columns wide. */
static int summary_rows(const char *text, int width, int *widest)
{
    int rows = 0;
    *widest = 0;
    size_t n = summary_len(text);
    int cols = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (ch == '\n') {
            rows += cols ? (cols + width - 1) / width : 1;
            if (cols > *widest) *widest = cols;
            cols = 0;
        } else if ((ch & 0xC0) != 0x80) {
            cols++;
        }
    }
    return rows;
}

TEST(summary_fits_a_narrow_terminal)
{
    struct demo d;
    REQUIRE(demo_explain(&d, true));
    struct json_value *rep = d.rep;
    static const int widths[] = {40, 80, 120, 200};
    for (size_t w = 0; w < KEEL_ARRAY_LEN(widths); w++) {
        const char *text = text_of(&d.a, rep, false, widths[w]);
        int widest = 0;
        int rows = summary_rows(text, widths[w], &widest);
        CHECK(rows <= OBS_SUMMARY_LINES);
        CHECK(widest <= 2 * widths[w]);
        CHECK_CONTAINS(text, "Timeline (7 step visits");
        /* The branch line keeps its cause first: at 80 columns the two rows
         * reach the tool the agent read. */
        if (widths[w] >= 80) CHECK_CONTAINS(text, "route → note by default: state.triage.severity");
        if (widths[w] >= 120) CHECK_CONTAINS(text, "read crm/lookup_account #21");
    }
    /* Colours do not count as columns. */
    const char *text = text_of(&d.a, rep, true, 80);
    CHECK(strstr(text, "\x1b[") != NULL);
    demo_cleanup(&d);
}

TEST(agent_call_approval_and_model_error)
{
    struct arena a;
    arena_init(&a);
    struct journal_builder jb = {&a, json_array(&a), 0}, *j = &jb;
    ev(j, "run.started", 0, "{\"workflow\":\"w\",\"input\":{}}");
    ev(j, "step.started", 0, "{\"step\":\"g\",\"attempt\":1}");
    ev(j, "model.request", AG, "{\"step\":\"g\",\"call_id\":\"g/0/m1\",\"model\":\"m\",\"agent\":\"support/triage\",\"turn\":1}");
    ev(j, "model.response", AG, "{\"step\":\"g\",\"call_id\":\"g/0/m1\",\"model\":\"m\",\"agent\":\"support/triage\",\"error\":{\"code\":\"EBUSY\",\"message\":\"rate limited\"},\"attempts\":3}");
    ev(j, "model.request", AG, "{\"step\":\"g\",\"call_id\":\"g/0/m2\",\"model\":\"m\",\"agent\":\"support/triage\",\"turn\":1}");
    ev(j, "model.response", AG, "{\"step\":\"g\",\"call_id\":\"g/0/m2\",\"model\":\"m\",\"agent\":\"support/triage\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"k1\",\"name\":\"tracker__create_issue\",\"arguments\":{\"title\":\"urgent: x\"}}]}}");
    ev(j, "policy.decision", AG, "{\"step\":\"g\",\"call_id\":\"g/0/t1.1\",\"agent\":\"support/triage\",\"tool_call_id\":\"k1\",\"action\":\"call_tool\",\"resource\":\"Tool::\\\"tracker/create_issue\\\"\",\"decision\":\"approval\",\"group\":\"leads\",\"policies\":[\"gate\"]}");
    ev(j, "approval.requested", 0, "{\"approval_id\":\"apx\",\"step\":\"g\",\"group\":\"leads\",\"tool\":\"tracker/create_issue\",\"args_digest\":\"d\"}");
    ev(j, "run.waiting", 0, "{\"reason\":\"approval\",\"approval_id\":\"apx\"}");
    ev(j, "approval.decided", "human:alice", "{\"approval_id\":\"apx\",\"decision\":\"denied\",\"by\":\"human:alice\",\"comment\":\"no\"}");
    ev(j, "run.resumed", 0, "{\"reason\":\"approval\",\"approval_id\":\"apx\"}");
    ev(j, "tool.call.refused", AG, "{\"step\":\"g\",\"call_id\":\"g/0/t1.1\",\"tool\":\"tracker/create_issue\",\"reason\":\"approval_denied\",\"agent\":\"support/triage\",\"tool_call_id\":\"k1\",\"message\":\"a lead said no\"}");
    struct json_value *rep = NULL;
    REQUIRE(obs_explain(NULL, jb.events, NULL, &a, &rep, NULL) == 0);
    const struct json_value *call = at(rep, "/timeline/0/calls/0");
    REQUIRE(call);
    CHECK_STR(json_get_str(call, "status", ""), "refused");
    CHECK_STR(str_at(call, "/approval/id"), "apx");
    CHECK_STR(str_at(call, "/approval/decision"), "denied");
    CHECK_STR(str_at(call, "/approval/by"), "human:alice");
    CHECK_STR(str_at(call, "/refused/reason"), "approval_denied");
    CHECK_STR(str_at(call, "/args/title"), "urgent: x");
    CHECK_STR(str_at(call, "/proposed_by"), "g/0/m2");
    CHECK_INT(int_at(rep, "/summary/counts/needed_approval"), 1);
    CHECK_INT(int_at(rep, "/summary/counts/refusals"), 1);
    CHECK_INT(int_at(rep, "/summary/counts/tool_calls"), 0);
    CHECK_INT(int_at(rep, "/summary/counts/model_calls"), 2);
    CHECK_STR(str_at(rep, "/timeline/0/model_calls/0/error/code"), "EBUSY");
    CHECK_STR(str_at(rep, "/timeline/0/model_calls/1/refusals/0/reason"), "approval_denied");
    const struct json_value *att = at(rep, "/summary/attention");
    bool model_error = false, approval = false, refused = false;
    for (uint32_t i = 0; i < att->len; i++) {
        const char *k = json_get_str(att->u.items[i], "kind", "");
        model_error |= !strcmp(k, "model_error");
        approval |= !strcmp(k, "approval");
        refused |= !strcmp(k, "refused");
    }
    CHECK(model_error && approval && refused);
    arena_cleanup(&a);
}

static const char result_wf[] =
    "name: res\n"
    "identity: support/triage\n"
    "steps:\n"
    "  - id: look\n"
    "    tool: crm/lookup_account\n"
    "    args: {id: \"${input.account}\"}\n"
    "  - id: pick\n"
    "    switch:\n"
    "      - if: 'result.tier == \"enterprise\"'\n"
    "        goto: vip\n"
    "    default: end\n"
    "  - id: vip\n"
    "    succeed: {}\n"
    "  - id: end\n"
    "    succeed: {}\n";

TEST(switch_on_the_previous_result)
{
    struct arena a;
    arena_init(&a);
    struct workflow *wf = NULL;
    REQUIRE(workflow_load(result_wf, strlen(result_wf), "res.yaml", &wf, NULL, NULL) == 0);
    struct journal_builder jb = {&a, json_array(&a), 0}, *j = &jb;
    ev(j, "run.started", 0, "{\"workflow\":\"res\",\"input\":{\"account\":\"A-300\"}}");
    ev(j, "step.started", 0, "{\"step\":\"look\",\"attempt\":1}");
    ev(j, "policy.decision", AG, "{\"step\":\"look\",\"action\":\"call_tool\",\"resource\":\"Tool::\\\"crm/lookup_account\\\"\",\"decision\":\"allow\",\"policies\":[\"reads\"]}");
    ev(j, "tool.call.started", AG, "{\"step\":\"look\",\"call_id\":\"look/0\",\"server\":\"crm\",\"tool\":\"lookup_account\",\"args\":{\"id\":\"A-300\"},\"idempotency_key\":\"k\"}");
    ev(j, "tool.call.completed", AG, "{\"step\":\"look\",\"call_id\":\"look/0\",\"result\":{\"id\":\"A-300\",\"tier\":\"enterprise\",\"updated_at\":\"2019-03-01\"}}");
    ev(j, "step.completed", 0, "{\"step\":\"look\",\"attempt\":1,\"result\":{\"id\":\"A-300\",\"tier\":\"enterprise\",\"updated_at\":\"2019-03-01\"},\"next\":\"pick\"}");
    ev(j, "step.started", 0, "{\"step\":\"pick\",\"attempt\":1}");
    ev(j, "step.completed", 0, "{\"step\":\"pick\",\"attempt\":1,\"next\":\"vip\"}");
    ev(j, "step.started", 0, "{\"step\":\"vip\",\"attempt\":1}");
    ev(j, "run.succeeded", 0, "{\"step\":\"vip\"}");
    struct json_value *rep = NULL;
    REQUIRE(obs_explain(NULL, jb.events, wf, &a, &rep, NULL) == 0);
    const struct json_value *sw = at(rep, "/switches/0");
    REQUIRE(sw);
    CHECK_STR(json_get_str(sw, "evaluated_next", ""), "vip");
    CHECK_STR(str_at(sw, "/reads/0/path"), "result.tier");
    CHECK_STR(str_at(sw, "/reads/0/value"), "enterprise");
    CHECK_STR(str_at(sw, "/reads/0/written_by/origin"), "result");
    CHECK_STR(str_at(sw, "/reads/0/written_by/step"), "look");
    CHECK_STR(str_at(sw, "/reads/0/written_by/source/tool/tool"), "crm/lookup_account");
    CHECK_INT(int_at(sw, "/reads/0/written_by/source/tool/seq"), 5);
    CHECK_CONTAINS(json_get_str(sw, "brief", ""), "pick → vip: result.tier=\"enterprise\" ← tool "
                                                  "crm/lookup_account #5 (step look)");
    CHECK_CONTAINS(json_get_str(sw, "cause", ""), "the result of step look from tool result "
                                                  "crm/lookup_account (#5, call look/0)");
    /* The provenance map holds state keys only: nothing was saved. */
    CHECK_INT(at(rep, "/provenance")->len, 0);
    workflow_free(wf);
    arena_cleanup(&a);
}
