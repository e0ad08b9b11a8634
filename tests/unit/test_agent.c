/*
 * test_agent.c — the agent step's conversation rebuilt from journal events
 * (src/agent/): what the model saw, what is due next, and the next action,
 * at every point a crash could leave the journal.
 */
#include "agent/agent.h"
#include "test.h"

#include <string.h>

struct j {
    struct arena a;
    struct agent_event ev[64];
    size_t n;
};

static void add(struct j *j, const char *kind, const char *payload)
{
    struct json_value *p = NULL;
    struct keel_err err;
    if (json_parse(&j->a, payload, strlen(payload), NULL, &p, &err) != 0) {
        TEST_FAIL_AT(__FILE__, __LINE__, "bad payload %s: %s", payload, err.msg);
        return;
    }
    j->ev[j->n] = (struct agent_event){.seq = (int64_t)j->n + 2, .kind = kind,
                                       .actor = "agent:support/triage", .payload = p};
    j->n++;
}

static int build(struct j *j, struct agent_conv *c)
{
    struct keel_err err;
    return agent_conv_build(j->ev, j->n, "support/triage", "triage/0", &j->a, c, &err);
}

static const char *text_at(const struct json_value *msgs, uint32_t i)
{
    return json_is(msgs, JSON_ARRAY) && i < msgs->len ? agent_message_text(msgs->u.items[i]) : NULL;
}

#define REQ1                                                                                    \
    "{\"step\":\"triage\",\"call_id\":\"triage/0/m1\",\"turn\":1,\"purpose\":\"turn\","           \
    "\"model\":\"small\",\"messages_added\":[{\"role\":\"system\",\"content\":\"be brief\"},"     \
    "{\"role\":\"user\",\"content\":\"classify T-1\"}]}"
#define RESP1_CALLS                                                                             \
    "{\"step\":\"triage\",\"call_id\":\"triage/0/m1\",\"turn\":1,\"model\":\"small\","            \
    "\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":["                       \
    "{\"id\":\"c1\",\"name\":\"crm__lookup_account\",\"arguments\":{\"id\":\"A-1\"}},"            \
    "{\"id\":\"c2\",\"name\":\"tracker__search_issues\",\"arguments\":{\"q\":\"login\"}}]},"      \
    "\"usage\":{\"input_tokens\":100,\"output_tokens\":20},\"cost_usd\":0.001}"

TEST(first_turn_is_a_model_call)
{
    struct j j = {0};
    arena_init(&j.a);
    struct agent_conv c;
    REQUIRE(build(&j, &c) == 0);
    CHECK_INT(c.next, AGENT_NEXT_MODEL);
    CHECK_INT(c.turn, 0);
    CHECK_INT(c.messages->len, 0);
    CHECK_STR(c.agent, "support/triage");
    arena_cleanup(&j.a);
}

TEST(open_request_is_resent_not_rejournaled)
{
    struct j j = {0};
    arena_init(&j.a);
    add(&j, "model.request", REQ1);
    struct agent_conv c;
    REQUIRE(build(&j, &c) == 0);
    CHECK(c.request_open);
    CHECK_INT(c.next, AGENT_NEXT_MODEL);
    CHECK_INT(c.turn, 1);
    CHECK_INT(c.messages->len, 2); /* what the model was sent */
    CHECK_INT(c.request_max_output, 0);
    CHECK_INT(c.due->len, 0);
    arena_cleanup(&j.a);
}

TEST(a_resent_request_keeps_its_budget_cap)
{
    struct j j = {0};
    arena_init(&j.a);
    add(&j, "model.request", "{\"step\":\"triage\",\"call_id\":\"triage/0/m1\",\"turn\":1,"
                             "\"model\":\"small\",\"max_output_tokens\":123,"
                             "\"messages_added\":[{\"role\":\"user\",\"content\":\"q\"}]}");
    struct agent_conv c;
    REQUIRE(build(&j, &c) == 0);
    CHECK(c.request_open);
    CHECK_INT(c.request_max_output, 123);
    arena_cleanup(&j.a);
}

TEST(tool_calls_are_handled_in_order_and_results_are_due)
{
    struct j j = {0};
    arena_init(&j.a);
    add(&j, "model.request", REQ1);
    add(&j, "model.response", RESP1_CALLS);
    struct agent_conv c;
    REQUIRE(build(&j, &c) == 0);
    CHECK_INT(c.next, AGENT_NEXT_CALL);
    CHECK_INT(c.call, 0);
    REQUIRE(c.ncalls == 2);
    CHECK_STR(c.calls[0].call_id, "triage/0/t1.1");
    CHECK_STR(c.calls[1].call_id, "triage/0/t1.2");
    CHECK_STR(c.calls[0].name, "crm__lookup_account");
    CHECK_INT(c.input_tokens, 100);
    CHECK_INT(c.model_calls, 1);

    /* The first call started (crash here: an open call with its key). */
    add(&j, "policy.decision", "{\"step\":\"triage\",\"call_id\":\"triage/0/t1.1\","
                               "\"decision\":\"allow\",\"action\":\"call_tool\",\"resource\":\"x\"}");
    add(&j, "tool.call.started", "{\"step\":\"triage\",\"call_id\":\"triage/0/t1.1\","
                                 "\"idempotency_key\":\"k1\",\"args\":{\"id\":\"A-1\"},"
                                 "\"server\":\"crm\",\"tool\":\"lookup_account\"}");
    REQUIRE(build(&j, &c) == 0);
    CHECK_INT(c.next, AGENT_NEXT_CALL);
    CHECK_INT(c.call, 0);
    CHECK(c.calls[0].started);
    CHECK_STR(c.calls[0].idempotency_key, "k1");
    CHECK_STR(c.calls[0].decision, "allow");

    add(&j, "tool.call.completed", "{\"step\":\"triage\",\"call_id\":\"triage/0/t1.1\","
                                   "\"result\":{\"plan\":\"free\"}}");
    REQUIRE(build(&j, &c) == 0);
    CHECK_INT(c.next, AGENT_NEXT_CALL);
    CHECK_INT(c.call, 1);
    REQUIRE(c.due->len == 1);
    CHECK_STR(json_get_str(c.due->u.items[0], "role", ""), "tool");
    CHECK_STR(json_get_str(c.due->u.items[0], "tool_call_id", ""), "c1");
    CHECK_STR(text_at(c.due, 0), "{\"plan\":\"free\"}");

    /* The second is refused: the model is told why. */
    add(&j, "tool.call.refused", "{\"step\":\"triage\",\"call_id\":\"triage/0/t1.2\","
                                 "\"tool\":\"tracker/search_issues\",\"reason\":\"denied\","
                                 "\"message\":\"policy denied it\"}");
    REQUIRE(build(&j, &c) == 0);
    CHECK_INT(c.next, AGENT_NEXT_MODEL);
    REQUIRE(c.due->len == 2);
    CHECK_CONTAINS(text_at(c.due, 1), "\"reason\":\"denied\"");
    CHECK_CONTAINS(text_at(c.due, 1), "policy denied it");
    CHECK_INT(c.messages->len, 3);

    /* The next request adds exactly the due messages. */
    add(&j, "model.request",
        "{\"step\":\"triage\",\"call_id\":\"triage/0/m2\",\"turn\":2,\"model\":\"small\","
        "\"messages_added\":[{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"r\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"c2\",\"content\":\"no\"}]}");
    add(&j, "model.response",
        "{\"step\":\"triage\",\"call_id\":\"triage/0/m2\",\"turn\":2,\"model\":\"small\","
        "\"message\":{\"role\":\"assistant\",\"content\":\"{\\\"severity\\\":\\\"low\\\"}\"},"
        "\"usage\":{\"input_tokens\":50,\"output_tokens\":5}}");
    REQUIRE(build(&j, &c) == 0);
    CHECK_INT(c.next, AGENT_NEXT_ANSWER);
    CHECK_INT(c.turn, 2);
    CHECK_INT(c.messages->len, 6);
    CHECK_INT(c.due->len, 0);
    CHECK_INT(c.input_tokens, 150);
    CHECK_INT(c.model_calls, 2);

    /* A rejected answer makes the model the next action, with the reason due. */
    add(&j, "agent.output.rejected", "{\"step\":\"triage\",\"call_id\":\"triage/0/m2\","
                                     "\"errors\":[\"x\"],\"message\":\"try again\"}");
    REQUIRE(build(&j, &c) == 0);
    CHECK_INT(c.next, AGENT_NEXT_MODEL);
    CHECK_INT(c.rejections, 1);
    CHECK_STR(text_at(c.due, 0), "try again");
    arena_cleanup(&j.a);
}

TEST(handoff_and_summary_replace_the_conversation)
{
    struct j j = {0};
    arena_init(&j.a);
    add(&j, "model.request", REQ1);
    add(&j, "model.response", RESP1_CALLS);
    add(&j, "agent.handoff",
        "{\"step\":\"triage\",\"call_id\":\"triage/0/t1.1\",\"from\":\"support/triage\","
        "\"to\":\"support/drafter\",\"note\":\"n\",\"messages\":[{\"role\":\"system\","
        "\"content\":\"draft\"},{\"role\":\"user\",\"content\":\"task + note\"}]}");
    struct agent_conv c;
    REQUIRE(build(&j, &c) == 0);
    CHECK_STR(c.agent, "support/drafter");
    CHECK_INT(c.next, AGENT_NEXT_MODEL);
    CHECK_INT(c.messages->len, 0);
    CHECK_INT(c.due->len, 2);
    CHECK_STR(text_at(c.due, 1), "task + note");

    add(&j, "context.summarized",
        "{\"step\":\"triage\",\"call_id\":\"triage/0/s1\",\"summary\":\"s\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"draft\"},{\"role\":\"user\",\"content\":\"S\"}]}");
    REQUIRE(build(&j, &c) == 0);
    CHECK_INT(c.summaries, 1);
    CHECK_INT(c.messages->len, 2);
    arena_cleanup(&j.a);
}

TEST(a_response_without_a_request_is_corrupt)
{
    struct j j = {0};
    arena_init(&j.a);
    add(&j, "model.response", RESP1_CALLS);
    struct agent_conv c;
    struct keel_err err;
    CHECK_INT(agent_conv_build(j.ev, j.n, "a/b", "s/0", &j.a, &c, &err), KEEL_ECORRUPT);
    CHECK_CONTAINS(err.msg, "without its model.request");
    arena_cleanup(&j.a);
}

TEST(tool_names)
{
    struct arena a;
    arena_init(&a);
    CHECK_STR(agent_tool_name(&a, "crm/lookup_account", false), "crm__lookup_account");
    CHECK_STR(agent_tool_name(&a, "support/drafter", true), "handoff__support__drafter");
    CHECK_STR(agent_tool_name(&a, "a.b/c", false), "a-b__c");
    const char *names[] = {"crm__lookup_account", "handoff__support__drafter"};
    CHECK_INT(agent_tool_lookup(names, 2, "handoff__support__drafter"), 1);
    CHECK_INT(agent_tool_lookup(names, 2, "crm__delete_account"), -1);
    CHECK_INT(agent_tool_lookup(names, 2, NULL), -1);
    arena_cleanup(&a);
}

TEST(answers)
{
    struct arena a;
    arena_init(&a);
    struct json_value *m = NULL, *v = NULL;
    struct keel_err err;
    const char *fenced = "{\"role\":\"assistant\",\"content\":\"```json\\n{\\\"a\\\": 1}\\n```\"}";
    REQUIRE(json_parse(&a, fenced, strlen(fenced), NULL, &m, &err) == 0);
    REQUIRE(agent_answer_value(m, true, &a, &v, &err) == 0);
    CHECK_INT(json_get_int(v, "a", 0), 1);
    const char *prose = "{\"role\":\"assistant\",\"content\":\"I think it is low\"}";
    REQUIRE(json_parse(&a, prose, strlen(prose), NULL, &m, &err) == 0);
    CHECK_INT(agent_answer_value(m, true, &a, &v, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "not valid JSON");
    REQUIRE(agent_answer_value(m, false, &a, &v, &err) == 0);
    CHECK_STR(v->u.s.str, "I think it is low");
    const char *empty = "{\"role\":\"assistant\",\"content\":\"  \"}";
    REQUIRE(json_parse(&a, empty, strlen(empty), NULL, &m, &err) == 0);
    CHECK_INT(agent_answer_value(m, true, &a, &v, &err), KEEL_EINVAL);
    arena_cleanup(&a);
}
