/*
 * agent.h — the agent step's conversation, rebuilt from the journal.
 *
 * An agent step is a loop: call the model, handle each tool call it
 * proposes (validate, authorize, execute or refuse), call the model again,
 * until it answers.  The engine (src/engine/agent_step.c) performs the
 * effects; this part owns the pure logic that decides what comes next, so
 * that resume is exact: after a crash the engine knows nothing but the
 * journal, and agent_conv_build() turns the events of the step's visit
 * back into the conversation and the one next action.  No model call or
 * tool call that the journal records as finished is ever made again.
 *
 * The conversation is in the neutral message shape of src/model/model.h.
 * It is rebuilt from these events (docs/agents.md, "Journal"):
 *   model.request{purpose:"turn"}  messages_added are appended (the first
 *                                  request adds the system and user prompt)
 *   model.response{message}        the assistant message is appended
 *   tool.call.completed            a "tool" message (result or error) is due
 *   tool.call.refused              a "tool" message (the refusal) is due
 *   agent.output.rejected          a "user" message (why) is due
 *   context.summarized{messages}   the conversation is replaced by messages
 *   agent.handoff{messages, to}    the conversation is replaced, the acting
 *                                  agent becomes `to`
 * "Due" messages are those the next model.request will add.
 */
#ifndef KEEL_AGENT_H
#define KEEL_AGENT_H

#include "../json/json.h"
#include "../util/util.h"

/* One journal event of the step's visit (payload parsed). */
struct agent_event {
    int64_t seq;
    const char *kind;
    const char *actor;
    const struct json_value *payload;
};

/* A tool call the model proposed in its last response. */
struct agent_call {
    const char *call_id;      /* "<step>/<visit>/t<turn>.<n>" (Keel's)             */
    const char *tool_call_id; /* the model's id for it                             */
    const char *name;         /* as the model wrote it ("crm__lookup_account")      */
    const struct json_value *arguments;
    bool arguments_invalid;   /* the provider could not parse them as JSON          */
    /* what the journal says happened to it so far */
    bool started;             /* tool.call.started without completed: an open call  */
    const char *idempotency_key; /* of the open call                               */
    const struct json_value *started_args;
    const char *decision;     /* its last policy.decision ("allow"...), or NULL      */
    bool resolved;            /* completed or refused                               */
};

/* What the agent loop does next. */
enum agent_next {
    AGENT_NEXT_MODEL = 0, /* call the model (first turn, or after tool results)  */
    AGENT_NEXT_CALL,      /* handle conv.calls[conv.call] (the first unresolved)  */
    AGENT_NEXT_ANSWER,    /* the last response is a final answer: check it       */
};

struct agent_conv {
    const char *agent;          /* the acting identity now                      */
    struct json_value *messages;/* as the model saw it, without the due ones    */
    struct json_value *due;     /* messages the next request adds               */
    int turn;                   /* model turns made (requests of purpose turn)  */
    int rejections;             /* agent.output.rejected so far                 */
    int summaries;              /* context.summarized so far                    */
    bool request_open;          /* a model.request without its response         */
    int64_t request_max_output; /* that request's output cap (0: none), so a re-sent
                                   request keeps the budget cap it was given      */
    const struct json_value *last_message; /* last response's assistant message */
    const char *last_stop;      /* its stop_reason                              */
    struct agent_call *calls;   /* of the last response                         */
    size_t ncalls;
    size_t call;                /* with AGENT_NEXT_CALL: index of the next one  */
    enum agent_next next;
    /* usage within the visit */
    int64_t input_tokens, output_tokens;
    double cost_usd;
    int model_calls;
};

/* Rebuilds the conversation from the visit's events (in order), starting
 * with first_agent acting.  prefix is "<step>/<visit>", from which the call
 * ids of the model's tool calls are derived ("<prefix>/t<turn>.<n>", n from
 * 1).  Values are borrowed from the events or allocated in a.  Fails with
 * KEEL_ECORRUPT if the events contradict each other (a response without a
 * request). */
int agent_conv_build(const struct agent_event *ev, size_t n, const char *first_agent,
                     const char *prefix, struct arena *a, struct agent_conv *out,
                     struct keel_err *err);

/* The text of a tool result as the model receives it: a string result as
 * is, anything else as compact JSON; an error as {"error": {code,
 * message}}. */
struct json_value *agent_tool_message(struct arena *a, const char *tool_call_id,
                                      const struct json_value *result,
                                      const struct json_value *error);

/* Model-facing tool names.  "server/tool" becomes "server__tool"; an agent
 * handoff target "team/name" becomes "handoff__team__name".  Names are
 * mapped back only through the offered list (agent_tool_lookup), never by
 * parsing, so no name can smuggle in a tool that was not offered. */
const char *agent_tool_name(struct arena *a, const char *qualified, bool handoff);

/* Finds the model-facing name among offered names; returns its index or -1. */
int agent_tool_lookup(const char *const *model_names, size_t n, const char *name);

/* Extracts the final answer: with a schema, the JSON value in the text
 * (a bare JSON document, or one fenced in ``` / ```json); without one, the
 * text as a string.  KEEL_EINVAL if a schema is expected and the text holds
 * no JSON document (err says why, quoting at most 200 bytes). */
int agent_answer_value(const struct json_value *message, bool want_json, struct arena *a,
                       struct json_value **out, struct keel_err *err);

/* The text of a neutral message's content ("" if none). */
const char *agent_message_text(const struct json_value *message);

#endif
