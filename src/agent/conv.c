/*
 * conv.c — rebuilds an agent step's conversation from the journal events
 * of its visit and decides the one next action (agent.h explains the event
 * rules).  Pure: no I/O, no clock; everything in the caller's arena.
 *
 * Invariant: the conversation rebuilt here is exactly the message list the
 * model was sent in its last request plus its replies, and `due` is exactly
 * what the next request must add.  The engine journals model.request with
 * messages_added = due before calling the model, so the two can never
 * drift apart, whatever instant a crash hits.
 */
#include "agent.h"

#include <stdio.h>
#include <string.h>

static const char *compact(struct arena *a, const struct json_value *v)
{
    struct buf b;
    buf_init(&b);
    json_write(&b, v, 0, NULL);
    const char *out = arena_strdup(a, b.data ? b.data : "null");
    buf_cleanup(&b);
    return out;
}

static struct json_value *copy_array(struct arena *a, const struct json_value *v)
{
    struct json_value *out = json_array(a);
    for (uint32_t i = 0; json_is(v, JSON_ARRAY) && i < v->len; i++)
        json_array_push(a, out, (struct json_value *)v->u.items[i]);
    return out;
}

static struct agent_call *find_call(struct agent_conv *c, const char *call_id)
{
    for (size_t i = 0; call_id && i < c->ncalls; i++)
        if (!strcmp(c->calls[i].call_id, call_id)) return &c->calls[i];
    return NULL;
}

/* Appends the due messages named by the request to the conversation. */
static void request_turn(struct arena *a, struct agent_conv *c, const struct json_value *p)
{
    const struct json_value *added = json_get(p, "messages_added");
    for (uint32_t i = 0; json_is(added, JSON_ARRAY) && i < added->len; i++)
        json_array_push(a, c->messages, added->u.items[i]);
    c->due = json_array(a);
    c->turn = (int)json_get_int(p, "turn", c->turn + 1);
    c->request_open = true;
    c->request_max_output = json_get_int(p, "max_output_tokens", 0);
    c->last_message = NULL;
    c->last_stop = NULL;
    c->calls = NULL;
    c->ncalls = 0;
}

static void response(struct arena *a, struct agent_conv *c, const struct json_value *p,
                     const char *prefix)
{
    const struct json_value *usage = json_get(p, "usage");
    c->input_tokens += json_get_int(usage, "input_tokens", 0);
    c->output_tokens += json_get_int(usage, "output_tokens", 0);
    const struct json_value *cost = json_get(p, "cost_usd");
    if (json_is(cost, JSON_NUMBER)) c->cost_usd += cost->u.n.d;
    c->model_calls++;
    if (strcmp(json_get_str(p, "purpose", "turn"), "turn") != 0) return;
    c->request_open = false;
    const struct json_value *m = json_get(p, "message");
    if (!json_is(m, JSON_OBJECT)) return; /* a failed call: nothing was said */
    json_array_push(a, c->messages, (struct json_value *)m);
    c->last_message = m;
    c->last_stop = json_get_str(p, "stop_reason", NULL);
    const struct json_value *tc = json_get(m, "tool_calls");
    size_t n = json_is(tc, JSON_ARRAY) ? tc->len : 0;
    c->calls = n ? arena_zalloc(a, n * sizeof *c->calls) : NULL;
    c->ncalls = n;
    for (size_t i = 0; i < n; i++) {
        const struct json_value *call = tc->u.items[i];
        struct agent_call *k = &c->calls[i];
        k->call_id = arena_printf(a, "%s/t%d.%zu", prefix, c->turn, i + 1);
        k->tool_call_id = json_get_str(call, "id", "");
        k->name = json_get_str(call, "name", "");
        k->arguments = json_get(call, "arguments");
        k->arguments_invalid = json_get_bool(call, "arguments_invalid", false);
    }
}

static struct json_value *refusal_message(struct arena *a, const char *tool_call_id,
                                          const struct json_value *p)
{
    struct json_value *err = json_object(a);
    json_object_setc(a, err, "code", json_cstr(a, "refused"));
    json_object_setc(a, err, "reason", json_cstr(a, json_get_str(p, "reason", "denied")));
    json_object_setc(a, err, "message", json_cstr(a, json_get_str(p, "message", "")));
    return agent_tool_message(a, tool_call_id, NULL, err);
}

int agent_conv_build(const struct agent_event *ev, size_t n, const char *first_agent,
                     const char *prefix, struct arena *a, struct agent_conv *out,
                     struct keel_err *err)
{
    struct agent_conv c;
    memset(&c, 0, sizeof c);
    c.agent = first_agent;
    c.messages = json_array(a);
    c.due = json_array(a);
    for (size_t i = 0; i < n; i++) {
        const struct json_value *p = ev[i].payload;
        const char *k = ev[i].kind;
        if (!strcmp(k, "model.request")) {
            if (!strcmp(json_get_str(p, "purpose", "turn"), "turn")) request_turn(a, &c, p);
        } else if (!strcmp(k, "model.response")) {
            if (!strcmp(json_get_str(p, "purpose", "turn"), "turn") && !c.request_open)
                return keel_fail(err, KEEL_ECORRUPT,
                                 "event %lld: a model.response without its model.request",
                                 (long long)ev[i].seq);
            response(a, &c, p, prefix);
        } else if (!strcmp(k, "tool.call.started")) {
            struct agent_call *call = find_call(&c, json_get_str(p, "call_id", NULL));
            if (call) {
                call->started = true;
                call->idempotency_key = json_get_str(p, "idempotency_key", NULL);
                call->started_args = json_get(p, "args");
            }
        } else if (!strcmp(k, "policy.decision")) {
            struct agent_call *call = find_call(&c, json_get_str(p, "call_id", NULL));
            if (call) call->decision = json_get_str(p, "decision", NULL);
        } else if (!strcmp(k, "tool.call.completed")) {
            struct agent_call *call = find_call(&c, json_get_str(p, "call_id", NULL));
            if (call && !call->resolved) {
                call->started = false;
                call->resolved = true;
                json_array_push(a, c.due, agent_tool_message(a, call->tool_call_id, json_get(p, "result"),
                                                   json_get(p, "error")));
            }
        } else if (!strcmp(k, "tool.call.refused")) {
            struct agent_call *call = find_call(&c, json_get_str(p, "call_id", NULL));
            if (call && !call->resolved) {
                call->started = false;
                call->resolved = true;
                json_array_push(a, c.due, refusal_message(a, call->tool_call_id, p));
            }
        } else if (!strcmp(k, "agent.output.rejected")) {
            c.rejections++;
            struct json_value *m = json_object(a);
            json_object_setc(a, m, "role", json_cstr(a, "user"));
            json_object_setc(a, m, "content", json_cstr(a, json_get_str(p, "message", "")));
            json_array_push(a, c.due, m);
        } else if (!strcmp(k, "context.summarized")) {
            c.summaries++;
            c.messages = copy_array(a, json_get(p, "messages"));
        } else if (!strcmp(k, "agent.handoff")) {
            c.agent = json_get_str(p, "to", c.agent);
            c.messages = json_array(a);
            c.due = copy_array(a, json_get(p, "messages"));
            c.last_message = NULL;
            c.calls = NULL;
            c.ncalls = 0;
            c.request_open = false;
        }
    }
    c.next = AGENT_NEXT_MODEL;
    if (c.last_message && !c.request_open) {
        for (size_t i = 0; i < c.ncalls; i++)
            if (!c.calls[i].resolved) {
                c.next = AGENT_NEXT_CALL;
                c.call = i;
                break;
            }
        if (c.next == AGENT_NEXT_MODEL && c.ncalls == 0 && c.due->len == 0)
            c.next = AGENT_NEXT_ANSWER;
    }
    *out = c;
    return 0;
}

struct json_value *agent_tool_message(struct arena *a, const char *tool_call_id,
                                      const struct json_value *result,
                                      const struct json_value *error)
{
    struct json_value *m = json_object(a);
    json_object_setc(a, m, "role", json_cstr(a, "tool"));
    json_object_setc(a, m, "tool_call_id", json_cstr(a, tool_call_id ? tool_call_id : ""));
    const char *text;
    if (error) {
        struct json_value *w = json_object(a);
        json_object_setc(a, w, "error", (struct json_value *)error);
        text = compact(a, w);
    } else if (json_is(result, JSON_STRING)) {
        text = result->u.s.str;
    } else if (result) {
        text = compact(a, result);
    } else {
        text = "";
    }
    json_object_setc(a, m, "content", json_cstr(a, text));
    return m;
}

const char *agent_tool_name(struct arena *a, const char *qualified, bool handoff)
{
    struct buf b;
    buf_init(&b);
    if (handoff) buf_puts(&b, "handoff__");
    for (const char *s = qualified; *s; s++) {
        if (*s == '/')
            buf_puts(&b, "__");
        else if (*s == '.')
            buf_putc(&b, '-');
        else
            buf_putc(&b, *s);
    }
    const char *out = arena_strdup(a, b.data ? b.data : "");
    buf_cleanup(&b);
    return out;
}

int agent_tool_lookup(const char *const *model_names, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (model_names[i] && !strcmp(model_names[i], name)) return (int)i;
    return -1;
}

const char *agent_message_text(const struct json_value *message)
{
    const struct json_value *c = json_get(message, "content");
    return json_is(c, JSON_STRING) ? c->u.s.str : "";
}

int agent_answer_value(const struct json_value *message, bool want_json, struct arena *a,
                       struct json_value **out, struct keel_err *err)
{
    const char *text = agent_message_text(message);
    if (!want_json) {
        *out = json_cstr(a, text);
        return 0;
    }
    size_t len = strlen(text);
    const char *s = text, *e = text + len;
    while (s < e && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' || e[-1] == '\t')) e--;
    if (e - s >= 6 && !strncmp(s, "```", 3)) {
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        if (nl && e - nl >= 4 && !strncmp(e - 3, "```", 3)) {
            s = nl + 1;
            e -= 3;
        }
    }
    struct json_value *v;
    struct keel_err perr;
    keel_err_clear(&perr);
    if (s == e)
        return keel_fail(err, KEEL_EINVAL,
                         "the answer is empty; reply with only a JSON value that validates "
                         "against the output schema");
    if (json_parse(a, s, (size_t)(e - s), NULL, &v, &perr))
        return keel_fail(err, KEEL_EINVAL,
                         "the answer is not valid JSON (%s at line %d, column %d): %.200s",
                         perr.msg, perr.line, perr.column, text);
    *out = v;
    return 0;
}
