/*
 * wire.c — the neutral conversation (model.h) to and from the providers'
 * wire formats: OpenAI-compatible Chat Completions and Anthropic Messages.
 * Reference: docs/models.md, "Wire formats".
 *
 * One row per provider kind in `kinds`: its name, the path appended to
 * base_url, its auth and fixed headers, the members the output limit may
 * be sent under (and which one its vendor's own host gets by default), a
 * request builder and a reply reader.  Adding a kind is adding a row and
 * its two functions.
 *
 * Requests are built from input Keel produced (the agent loop's messages),
 * so a malformed neutral message is KEEL_EINVAL with err->path naming it
 * (e.g. "/messages/3/tool_call_id").  Replies are what a remote server sent
 * and may be anything: every field is type-checked before use, the body is
 * parsed in a scratch arena with a size and depth limit, and anything that
 * is not the provider's shape is KEEL_EPROTO quoting at most
 * MODEL_QUOTE_MAX bytes of the body.  Only the neutral result is copied
 * into the caller's arena.
 *
 * Invariants of a reply read here: out->message is {"role": "assistant",
 * "content": string, "tool_calls"?: [call, ...]} with every call holding
 * an id, a name and arguments (parsed JSON, or the raw text plus
 * "arguments_invalid": true); out->stop_reason is one of "end",
 * "tool_calls", "length", "other"; token counts are -1 when the reply has
 * none (model_call then estimates them).
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* ---- shared helpers ------------------------------------------------------ */

static int bad_at(struct keel_err *err, const char *path, const char *fmt, ...)
    KEEL_PRINTF(3, 4);
static int bad_at(struct keel_err *err, const char *path, const char *fmt, ...)
{
    if (!err) return KEEL_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    keel_vfail(err, KEEL_EINVAL, fmt, ap);
    va_end(ap);
    snprintf(err->path, sizeof err->path, "%s", path);
    return KEEL_EINVAL;
}

static const char *const roles[] = {"system", "user", "assistant", "tool"};

/* The role of message i, or NULL after reporting the problem. */
static const char *role_of(const struct json_value *m, size_t i, struct keel_err *err)
{
    char p[64];
    snprintf(p, sizeof p, "/messages/%zu", i);
    if (!json_is(m, JSON_OBJECT)) {
        bad_at(err, p, "message %zu must be an object {role, content}", i);
        return NULL;
    }
    const char *role = json_get_str(m, "role", NULL);
    for (size_t k = 0; role && k < KEEL_ARRAY_LEN(roles); k++)
        if (!strcmp(role, roles[k])) return roles[k];
    snprintf(p, sizeof p, "/messages/%zu/role", i);
    bad_at(err, p, "message %zu has role '%s'; expected system, user, assistant or tool", i,
           role ? role : "(none)");
    return NULL;
}

/* The text of a message: its string content, "" when absent or null, and
 * the compact JSON of any other value (a tool result given as JSON). */
static const char *content_of(struct arena *a, const struct json_value *m, size_t *len)
{
    const struct json_value *c = json_get(m, "content");
    if (!c || json_is(c, JSON_NULL)) {
        *len = 0;
        return "";
    }
    if (json_is(c, JSON_STRING)) {
        *len = c->len;
        return c->u.s.str;
    }
    struct buf b;
    buf_init(&b);
    json_write(&b, c, 0, NULL);
    char *s = arena_strndup(a, b.data, b.len);
    *len = b.len;
    buf_cleanup(&b);
    return s;
}

static struct json_value *str_value(struct arena *a, const char *s, size_t len)
{
    return json_string(a, s, len);
}

static bool tool_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > 64) return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return false;
    return true;
}

/* Checks tool i of r->tools: {name, description?, input_schema?}. */
static int tool_check(const struct json_value *t, size_t i, struct keel_err *err)
{
    char p[64];
    snprintf(p, sizeof p, "/tools/%zu", i);
    if (!json_is(t, JSON_OBJECT)) return bad_at(err, p, "tool %zu must be an object", i);
    const struct json_value *n = json_get(t, "name");
    snprintf(p, sizeof p, "/tools/%zu/name", i);
    if (!json_is(n, JSON_STRING) || !tool_name_ok(n->u.s.str, n->len))
        return bad_at(err, p, "tool %zu needs a name matching ^[A-Za-z0-9_-]{1,64}$ (the "
                              "providers' rule; map server/tool to server__tool)",
                      i);
    const struct json_value *d = json_get(t, "description");
    snprintf(p, sizeof p, "/tools/%zu/description", i);
    if (d && !json_is(d, JSON_STRING)) return bad_at(err, p, "description must be a string");
    const struct json_value *s = json_get(t, "input_schema");
    snprintf(p, sizeof p, "/tools/%zu/input_schema", i);
    if (s && !json_is(s, JSON_OBJECT)) return bad_at(err, p, "input_schema must be an object");
    return 0;
}

/* The schema of tool t, or {"type": "object"} when it declares none. */
static struct json_value *tool_schema(struct arena *a, const struct json_value *t)
{
    struct json_value *s = json_get(t, "input_schema");
    if (s) return s;
    s = json_object(a);
    json_object_setc(a, s, "type", json_cstr(a, "object"));
    return s;
}

/* Checks call j of message i: {id, name, arguments?, arguments_invalid?}. */
static int call_check(const struct json_value *c, size_t i, size_t j, struct keel_err *err)
{
    char p[96];
    snprintf(p, sizeof p, "/messages/%zu/tool_calls/%zu", i, j);
    if (!json_is(c, JSON_OBJECT))
        return bad_at(err, p, "tool call %zu of message %zu must be an object", j, i);
    static const char *const need[] = {"id", "name"};
    for (size_t k = 0; k < 2; k++) {
        const struct json_value *v = json_get(c, need[k]);
        if (!json_is(v, JSON_STRING) || v->len == 0) {
            snprintf(p, sizeof p, "/messages/%zu/tool_calls/%zu/%s", i, j, need[k]);
            return bad_at(err, p, "tool call %zu of message %zu needs a string %s", j, i,
                          need[k]);
        }
    }
    return 0;
}

static bool call_args_invalid(const struct json_value *c)
{
    return json_get_bool(c, "arguments_invalid", false) &&
           json_is(json_get(c, "arguments"), JSON_STRING);
}

static int check_request(const struct model_request *r, struct keel_err *err)
{
    if (!json_is(r->messages, JSON_ARRAY))
        return bad_at(err, "/messages", "messages must be an array of {role, content}");
    if (r->tools && !json_is(r->tools, JSON_ARRAY))
        return bad_at(err, "/tools", "tools must be an array of {name, description, "
                                     "input_schema}");
    for (uint32_t i = 0; r->tools && i < r->tools->len; i++) {
        int rc = tool_check(r->tools->u.items[i], i, err);
        if (rc) return rc;
    }
    for (uint32_t i = 0; i < r->messages->len; i++) {
        const struct json_value *m = r->messages->u.items[i];
        const char *role = role_of(m, i, err);
        if (!role) return KEEL_EINVAL;
        char p[96];
        const struct json_value *calls = json_get(m, "tool_calls");
        if (calls) {
            snprintf(p, sizeof p, "/messages/%u/tool_calls", i);
            if (strcmp(role, "assistant") || !json_is(calls, JSON_ARRAY))
                return bad_at(err, p, "tool_calls must be an array on an assistant message");
            for (uint32_t j = 0; j < calls->len; j++) {
                int rc = call_check(calls->u.items[j], i, j, err);
                if (rc) return rc;
            }
        }
        if (!strcmp(role, "tool")) {
            const struct json_value *id = json_get(m, "tool_call_id");
            snprintf(p, sizeof p, "/messages/%u/tool_call_id", i);
            if (!json_is(id, JSON_STRING) || id->len == 0)
                return bad_at(err, p, "a tool message needs tool_call_id (the id of the call "
                                      "it answers)");
        }
    }
    if (r->output_schema && !json_is(r->output_schema, JSON_OBJECT) &&
        !json_is_bool(r->output_schema))
        return bad_at(err, "/output_schema", "output_schema must be a JSON Schema (an object)");
    return 0;
}

/* ---- OpenAI Chat Completions: request ------------------------------------ */

/* {"id", "type": "function", "function": {"name", "arguments": "<JSON>"}} */
static struct json_value *openai_call(struct arena *a, const struct json_value *c)
{
    struct json_value *o = json_object(a), *fn = json_object(a);
    json_object_setc(a, o, "id", json_get(c, "id"));
    json_object_setc(a, o, "type", json_cstr(a, "function"));
    json_object_setc(a, fn, "name", json_get(c, "name"));
    const struct json_value *args = json_get(c, "arguments");
    if (call_args_invalid(c)) {
        json_object_setc(a, fn, "arguments", (struct json_value *)args);
    } else {
        struct buf b;
        buf_init(&b);
        if (args) json_write(&b, args, 0, NULL);
        else buf_puts(&b, "{}");
        json_object_setc(a, fn, "arguments", str_value(a, b.data, b.len));
        buf_cleanup(&b);
    }
    json_object_setc(a, o, "function", fn);
    return o;
}

static int openai_request(const char *provider_model, const char *limit_field,
                          const struct model_request *r, struct arena *a, struct json_value **out,
                          struct keel_err *err)
{
    struct json_value *body = json_object(a), *msgs = json_array(a);
    json_object_setc(a, body, "model", json_cstr(a, provider_model));
    for (uint32_t i = 0; i < r->messages->len; i++) {
        const struct json_value *m = r->messages->u.items[i];
        const char *role = json_get_str(m, "role", "");
        size_t len;
        const char *text = content_of(a, m, &len);
        struct json_value *o = json_object(a);
        json_object_setc(a, o, "role", json_cstr(a, role));
        json_object_setc(a, o, "content", str_value(a, text, len));
        const struct json_value *calls = json_get(m, "tool_calls");
        if (calls && calls->len) {
            struct json_value *tc = json_array(a);
            for (uint32_t j = 0; j < calls->len; j++)
                json_array_push(a, tc, openai_call(a, calls->u.items[j]));
            json_object_setc(a, o, "tool_calls", tc);
        }
        if (!strcmp(role, "tool"))
            json_object_setc(a, o, "tool_call_id", json_get(m, "tool_call_id"));
        json_array_push(a, msgs, o);
    }
    json_object_setc(a, body, "messages", msgs);
    if (r->tools && r->tools->len) {
        struct json_value *tools = json_array(a);
        for (uint32_t i = 0; i < r->tools->len; i++) {
            const struct json_value *t = r->tools->u.items[i];
            struct json_value *fn = json_object(a), *o = json_object(a);
            json_object_setc(a, fn, "name", json_get(t, "name"));
            if (json_get(t, "description"))
                json_object_setc(a, fn, "description", json_get(t, "description"));
            json_object_setc(a, fn, "parameters", tool_schema(a, t));
            json_object_setc(a, o, "type", json_cstr(a, "function"));
            json_object_setc(a, o, "function", fn);
            json_array_push(a, tools, o);
        }
        json_object_setc(a, body, "tools", tools);
    }
    if (r->output_schema) {
        struct json_value *rf = json_object(a), *js = json_object(a);
        json_object_setc(a, js, "name", json_cstr(a, "output"));
        json_object_setc(a, js, "schema", (struct json_value *)r->output_schema);
        json_object_setc(a, js, "strict", json_bool(a, false));
        json_object_setc(a, rf, "type", json_cstr(a, "json_schema"));
        json_object_setc(a, rf, "json_schema", js);
        json_object_setc(a, body, "response_format", rf);
    }
    /* max_tokens (what compatible servers read) or max_completion_tokens
     * (what OpenAI's newer models require): keel.yaml's max_tokens_field. */
    if (r->max_output_tokens > 0)
        json_object_setc(a, body, limit_field, json_int(a, r->max_output_tokens));
    *out = body;
    (void)err;
    return 0;
}

/* ---- Anthropic Messages: request ----------------------------------------- */

static struct json_value *text_block(struct arena *a, const char *s, size_t len)
{
    struct json_value *b = json_object(a);
    json_object_setc(a, b, "type", json_cstr(a, "text"));
    json_object_setc(a, b, "text", str_value(a, s, len));
    return b;
}

/* Adds a user-side block (text or tool_result) to msgs, merged into the
 * previous message when that one is the user's too: the Messages API wants
 * user and assistant turns to alternate. */
static void user_block(struct arena *a, struct json_value *msgs, struct json_value *block,
                       const char *plain, size_t plain_len)
{
    struct json_value *prev = msgs->len ? msgs->u.items[msgs->len - 1] : NULL;
    if (prev && !strcmp(json_get_str(prev, "role", ""), "user")) {
        struct json_value *c = json_get(prev, "content");
        if (json_is(c, JSON_STRING)) {
            struct json_value *arr = json_array(a);
            json_array_push(a, arr, text_block(a, c->u.s.str, c->len));
            json_object_setc(a, prev, "content", arr);
            c = arr;
        }
        json_array_push(a, c, block ? block : text_block(a, plain, plain_len));
        return;
    }
    struct json_value *o = json_object(a);
    json_object_setc(a, o, "role", json_cstr(a, "user"));
    if (block) {
        struct json_value *arr = json_array(a);
        json_array_push(a, arr, block);
        json_object_setc(a, o, "content", arr);
    } else {
        json_object_setc(a, o, "content", str_value(a, plain, plain_len));
    }
    json_array_push(a, msgs, o);
}

static struct json_value *anthropic_assistant(struct arena *a, const struct json_value *m)
{
    size_t len;
    const char *text = content_of(a, m, &len);
    const struct json_value *calls = json_get(m, "tool_calls");
    struct json_value *o = json_object(a);
    json_object_setc(a, o, "role", json_cstr(a, "assistant"));
    if (!calls || !calls->len) {
        json_object_setc(a, o, "content", str_value(a, text, len));
        return o;
    }
    struct json_value *blocks = json_array(a);
    if (len) json_array_push(a, blocks, text_block(a, text, len));
    for (uint32_t j = 0; j < calls->len; j++) {
        const struct json_value *c = calls->u.items[j];
        struct json_value *b = json_object(a);
        json_object_setc(a, b, "type", json_cstr(a, "tool_use"));
        json_object_setc(a, b, "id", json_get(c, "id"));
        json_object_setc(a, b, "name", json_get(c, "name"));
        /* input must be an object; arguments that were not (or were not
         * JSON at all) are sent as {} — the tool result that follows tells
         * the model what went wrong. */
        struct json_value *args = json_get(c, "arguments");
        json_object_setc(a, b, "input",
                         json_is(args, JSON_OBJECT) && !call_args_invalid(c) ? args
                                                                             : json_object(a));
        json_array_push(a, blocks, b);
    }
    json_object_setc(a, o, "content", blocks);
    return o;
}

static const char structured_prompt[] =
    "Reply with only a JSON value (no prose, no code fences) that validates against this JSON "
    "Schema: ";

static int anthropic_request(const char *provider_model, const char *limit_field,
                             const struct model_request *r, struct arena *a,
                             struct json_value **out, struct keel_err *err)
{
    struct json_value *body = json_object(a), *msgs = json_array(a);
    struct buf system;
    buf_init(&system);
    for (uint32_t i = 0; i < r->messages->len; i++) {
        const struct json_value *m = r->messages->u.items[i];
        const char *role = json_get_str(m, "role", "");
        size_t len;
        const char *text = content_of(a, m, &len);
        if (!strcmp(role, "system")) {
            if (system.len) buf_puts(&system, "\n\n");
            buf_append(&system, text, len);
        } else if (!strcmp(role, "user")) {
            user_block(a, msgs, NULL, text, len);
        } else if (!strcmp(role, "assistant")) {
            json_array_push(a, msgs, anthropic_assistant(a, m));
        } else {
            struct json_value *b = json_object(a);
            json_object_setc(a, b, "type", json_cstr(a, "tool_result"));
            json_object_setc(a, b, "tool_use_id", json_get(m, "tool_call_id"));
            json_object_setc(a, b, "content", str_value(a, text, len));
            user_block(a, msgs, b, NULL, 0);
        }
    }
    if (r->output_schema) {
        if (system.len) buf_puts(&system, "\n\n");
        buf_puts(&system, structured_prompt);
        json_write(&system, r->output_schema, 0, NULL);
    }
    json_object_setc(a, body, "model", json_cstr(a, provider_model));
    json_object_setc(a, body, limit_field,
                     json_int(a, r->max_output_tokens > 0 ? r->max_output_tokens
                                                          : MODEL_DEFAULT_MAX_OUTPUT));
    if (system.len) json_object_setc(a, body, "system", str_value(a, system.data, system.len));
    json_object_setc(a, body, "messages", msgs);
    if (r->tools && r->tools->len) {
        struct json_value *tools = json_array(a);
        for (uint32_t i = 0; i < r->tools->len; i++) {
            const struct json_value *t = r->tools->u.items[i];
            struct json_value *o = json_object(a);
            json_object_setc(a, o, "name", json_get(t, "name"));
            if (json_get(t, "description"))
                json_object_setc(a, o, "description", json_get(t, "description"));
            json_object_setc(a, o, "input_schema", tool_schema(a, t));
            json_array_push(a, tools, o);
        }
        json_object_setc(a, body, "tools", tools);
    }
    buf_cleanup(&system);
    *out = body;
    (void)err;
    return 0;
}

/* ---- replies --------------------------------------------------------------- */

/* Provider stop reasons -> neutral ones (both providers in one table). */
static const struct {
    const char *wire;
    const char *neutral;
} stop_reasons[] = {
    {"stop", "end"},          {"end_turn", "end"},           {"stop_sequence", "end"},
    {"tool_calls", "tool_calls"}, {"function_call", "tool_calls"}, {"tool_use", "tool_calls"},
    {"length", "length"},     {"max_tokens", "length"},
};

static const char *stop_reason(const struct json_value *v, bool has_calls)
{
    if (json_is(v, JSON_STRING))
        for (size_t i = 0; i < KEEL_ARRAY_LEN(stop_reasons); i++)
            if (!strcmp(stop_reasons[i].wire, v->u.s.str)) return stop_reasons[i].neutral;
    return has_calls ? "tool_calls" : "other";
}

static int proto(struct keel_err *err, const char *fmt, ...) KEEL_PRINTF(2, 3);
static int proto(struct keel_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = keel_vfail(err, KEEL_EPROTO, fmt, ap);
    va_end(ap);
    return rc;
}

/* A token count from usage, or -1. */
static int64_t tokens(const struct json_value *usage, const char *key)
{
    const struct json_value *v = json_get(usage, key);
    if (!json_is_integer(v) || !(v->nflags & JSON_NUM_I64) || v->u.n.i < 0) return -1;
    return v->u.n.i;
}

/* A neutral call {id, name, arguments[, arguments_invalid]} from the
 * arguments' JSON text. */
static struct json_value *call_from_text(struct arena *a, const struct json_value *id,
                                         size_t index, const char *name, size_t name_len,
                                         const char *args, size_t args_len)
{
    struct json_value *c = json_object(a);
    if (json_is(id, JSON_STRING) && id->len) json_object_setc(a, c, "id", json_string(a, id->u.s.str, id->len));
    else json_object_setc(a, c, "id", json_cstr(a, arena_printf(a, "call_%zu", index)));
    json_object_setc(a, c, "name", json_string(a, name, name_len));
    size_t k = 0;
    while (k < args_len && (args[k] == ' ' || args[k] == '\n' || args[k] == '\t' || args[k] == '\r'))
        k++;
    if (k == args_len) { /* no arguments at all: an empty object */
        json_object_setc(a, c, "arguments", json_object(a));
        return c;
    }
    struct json_value *parsed = NULL;
    struct json_parse_opts o = {.max_depth = 128, .dup = JSON_DUP_LAST};
    if (json_parse(a, args, args_len, &o, &parsed, NULL) == 0) {
        json_object_setc(a, c, "arguments", parsed);
    } else {
        json_object_setc(a, c, "arguments", json_string(a, args, args_len));
        json_object_setc(a, c, "arguments_invalid", json_bool(a, true));
    }
    return c;
}

static struct json_value *assistant(struct arena *a, const struct buf *text,
                                    struct json_value *calls)
{
    struct json_value *m = json_object(a);
    json_object_setc(a, m, "role", json_cstr(a, "assistant"));
    json_object_setc(a, m, "content", json_string(a, text->data ? text->data : "", text->len));
    if (calls && calls->len) json_object_setc(a, m, "tool_calls", calls);
    return m;
}

/* An error object a provider sent with a success status. */
static int error_object(const struct json_value *e, struct keel_err *err)
{
    struct buf q;
    buf_init(&q);
    const char *msg = json_get_str(e, "message", NULL);
    if (msg) model_quote(&q, msg, strlen(msg), MODEL_QUOTE_MAX);
    proto(err, "the reply is an error object, not an answer%s%s", msg ? ": " : "",
          msg ? q.data : "");
    buf_cleanup(&q);
    return KEEL_EPROTO;
}

static int openai_response(const struct json_value *reply, struct arena *a,
                           struct model_response *out, struct keel_err *err)
{
    if (!json_is(reply, JSON_OBJECT)) return proto(err, "the reply is not a JSON object");
    if (json_is(json_get(reply, "error"), JSON_OBJECT))
        return error_object(json_get(reply, "error"), err);
    const struct json_value *choices = json_get(reply, "choices");
    if (!json_is(choices, JSON_ARRAY) || choices->len == 0)
        return proto(err, "the reply has no choices[0]");
    const struct json_value *choice = choices->u.items[0];
    const struct json_value *msg = json_get(choice, "message");
    if (!json_is(msg, JSON_OBJECT)) return proto(err, "the reply has no choices[0].message");
    struct buf text;
    buf_init(&text);
    const struct json_value *content = json_get(msg, "content");
    if (json_is(content, JSON_STRING)) {
        buf_append(&text, content->u.s.str, content->len);
    } else if (json_is(content, JSON_ARRAY)) { /* content parts, as some servers send */
        for (uint32_t i = 0; i < content->len; i++) {
            const struct json_value *t = json_get(content->u.items[i], "text");
            if (json_is(t, JSON_STRING)) buf_append(&text, t->u.s.str, t->len);
        }
    } else if (content && !json_is(content, JSON_NULL)) {
        buf_cleanup(&text);
        return proto(err, "choices[0].message.content is %s, not a string",
                     json_type_name(content));
    }
    struct json_value *calls = json_array(a);
    const struct json_value *tcs = json_get(msg, "tool_calls");
    if (tcs && !json_is(tcs, JSON_NULL)) {
        if (!json_is(tcs, JSON_ARRAY)) {
            buf_cleanup(&text);
            return proto(err, "choices[0].message.tool_calls is not an array");
        }
        for (uint32_t i = 0; i < tcs->len; i++) {
            const struct json_value *tc = tcs->u.items[i];
            const struct json_value *fn = json_get(tc, "function");
            const struct json_value *name = json_get(fn, "name");
            const struct json_value *args = json_get(fn, "arguments");
            if (!json_is(name, JSON_STRING) || name->len == 0 ||
                (args && !json_is(args, JSON_STRING) && !json_is(args, JSON_OBJECT) &&
                 !json_is(args, JSON_NULL))) {
                buf_cleanup(&text);
                return proto(err, "tool_calls[%u] has no function.name or its arguments are "
                                  "neither a string nor an object",
                             i);
            }
            struct json_value *c;
            if (json_is(args, JSON_OBJECT)) {
                c = call_from_text(a, json_get(tc, "id"), i, name->u.s.str, name->len, "", 0);
                json_object_setc(a, c, "arguments", json_clone(a, args));
            } else {
                const char *s = json_is(args, JSON_STRING) ? args->u.s.str : "";
                size_t n = json_is(args, JSON_STRING) ? args->len : 0;
                c = call_from_text(a, json_get(tc, "id"), i, name->u.s.str, name->len, s, n);
            }
            json_array_push(a, calls, c);
        }
    }
    out->message = assistant(a, &text, calls);
    buf_cleanup(&text);
    out->stop_reason = stop_reason(json_get(choice, "finish_reason"), calls->len > 0);
    const struct json_value *usage = json_get(reply, "usage");
    out->input_tokens = tokens(usage, "prompt_tokens");
    out->output_tokens = tokens(usage, "completion_tokens");
    return 0;
}

static int anthropic_response(const struct json_value *reply, struct arena *a,
                              struct model_response *out, struct keel_err *err)
{
    if (!json_is(reply, JSON_OBJECT)) return proto(err, "the reply is not a JSON object");
    const char *type = json_get_str(reply, "type", NULL);
    if ((type && !strcmp(type, "error")) || json_is(json_get(reply, "error"), JSON_OBJECT))
        return error_object(json_get(reply, "error"), err);
    const struct json_value *content = json_get(reply, "content");
    if (!json_is(content, JSON_ARRAY)) return proto(err, "the reply has no content array");
    struct buf text;
    buf_init(&text);
    struct json_value *calls = json_array(a);
    for (uint32_t i = 0; i < content->len; i++) {
        const struct json_value *b = content->u.items[i];
        const char *bt = json_get_str(b, "type", "");
        if (!strcmp(bt, "text")) {
            const struct json_value *t = json_get(b, "text");
            if (!json_is(t, JSON_STRING)) {
                buf_cleanup(&text);
                return proto(err, "content[%u] is a text block without a string text", i);
            }
            buf_append(&text, t->u.s.str, t->len);
        } else if (!strcmp(bt, "tool_use")) {
            const struct json_value *name = json_get(b, "name");
            const struct json_value *input = json_get(b, "input");
            if (!json_is(name, JSON_STRING) || name->len == 0) {
                buf_cleanup(&text);
                return proto(err, "content[%u] is a tool_use block without a name", i);
            }
            struct json_value *c =
                call_from_text(a, json_get(b, "id"), calls->len, name->u.s.str, name->len, "", 0);
            if (input) json_object_setc(a, c, "arguments", json_clone(a, input));
            json_array_push(a, calls, c);
        } /* other blocks (thinking, ...) carry nothing the neutral shape holds */
    }
    out->message = assistant(a, &text, calls);
    buf_cleanup(&text);
    out->stop_reason = stop_reason(json_get(reply, "stop_reason"), calls->len > 0);
    const struct json_value *usage = json_get(reply, "usage");
    out->input_tokens = tokens(usage, "input_tokens");
    out->output_tokens = tokens(usage, "output_tokens");
    /* Cached prompt tokens are input too (billed differently; the price
     * table has one input price). */
    static const char *const cached[] = {"cache_creation_input_tokens",
                                         "cache_read_input_tokens"};
    for (size_t i = 0; i < 2 && out->input_tokens >= 0; i++) {
        int64_t n = tokens(usage, cached[i]);
        if (n > 0 && n < (INT64_C(1) << 40)) out->input_tokens += n;
    }
    return 0;
}

/* ---- the table ----------------------------------------------------------- */

static const char *const openai_fixed[] = {NULL};
static const char *const anthropic_fixed[] = {"anthropic-version: 2023-06-01", NULL};

/* Where the output limit goes.  OpenAI deprecated max_tokens for
 * max_completion_tokens (its o-series and gpt-4.1+/gpt-5 models refuse
 * max_tokens with a 400), but the servers that copy its API (vLLM,
 * llama.cpp, Ollama, LiteLLM, ...) have read max_tokens for years and some
 * silently ignore max_completion_tokens, which would leave a call with no
 * limit at all.  So max_tokens is the default, and OpenAI's own host gets
 * max_completion_tokens; keel.yaml's max_tokens_field overrides both. */
static const char *const openai_limits[] = {"max_tokens", "max_completion_tokens", NULL};
static const char *const anthropic_limits[] = {"max_tokens", NULL};

static const struct model_kind kinds[] = {
    {"openai", "/chat/completions", "Authorization: Bearer ", openai_fixed, openai_limits,
     "api.openai.com", "max_completion_tokens", openai_request, openai_response},
    {"anthropic", "/messages", "x-api-key: ", anthropic_fixed, anthropic_limits, NULL, NULL,
     anthropic_request, anthropic_response},
};

/* See internal.h.  Returns a static row, or NULL. */
const struct model_kind *model_kind_find(const char *name)
{
    for (size_t i = 0; name && i < KEEL_ARRAY_LEN(kinds); i++)
        if (!strcmp(kinds[i].name, name)) return &kinds[i];
    return NULL;
}

/* See internal.h.  Returns a static string. */
const char *model_kind_names(void)
{
    return "openai, anthropic";
}

/* See internal.h.  Returns a static string (a row of k->limit_fields), or
 * NULL when name is not one of them. */
const char *model_limit_field(const struct model_kind *k, const char *name)
{
    for (size_t i = 0; name && k->limit_fields[i]; i++)
        if (!strcmp(k->limit_fields[i], name)) return k->limit_fields[i];
    return NULL;
}

/* See internal.h.  Writes "a, b" into out. */
void model_limit_field_names(const struct model_kind *k, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; k->limit_fields[i] && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? " or " : "", k->limit_fields[i]);
}

/* See model.h.  The body is built in a; it borrows (does not copy) values
 * of r (schemas, arguments), so r must outlive *out. */
int model_wire_request(const char *kind, const char *provider_model, const char *limit_field,
                       const struct model_request *r, struct arena *a, struct json_value **out,
                       struct keel_err *err)
{
    const struct model_kind *k = model_kind_find(kind);
    if (!k)
        return keel_fail(err, KEEL_EINVAL, "unknown provider kind '%s'; expected one of: %s",
                         kind ? kind : "(null)", model_kind_names());
    const char *field = model_limit_field(k, limit_field ? limit_field : "max_tokens");
    if (!field) {
        char names[96];
        model_limit_field_names(k, names, sizeof names);
        return keel_fail(err, KEEL_EINVAL,
                         "%s requests carry their output limit in %s, not '%s'", k->name, names,
                         limit_field);
    }
    int rc = check_request(r, err);
    if (rc) return rc;
    return k->request(provider_model, field, r, a, out, err);
}

/* See model.h.  The reply is parsed in a scratch arena; only the neutral
 * result is allocated in a.  Token counts are -1 when the reply has none. */
int model_wire_response(const char *kind, const char *text, size_t len, struct arena *a,
                        struct model_response *out, struct keel_err *err)
{
    const struct model_kind *k = model_kind_find(kind);
    if (!k)
        return keel_fail(err, KEEL_EINVAL, "unknown provider kind '%s'; expected one of: %s",
                         kind ? kind : "(null)", model_kind_names());
    struct arena scratch;
    arena_init(&scratch);
    struct json_parse_opts o = {.max_depth = 256, .max_size = MODEL_MAX_BODY, .dup = JSON_DUP_LAST};
    struct json_value *reply = NULL;
    struct model_response r = *out;
    struct keel_err e;
    keel_err_clear(&e);
    int rc = json_parse(&scratch, text, len, &o, &reply, &e);
    if (rc) {
        char why[KEEL_ERR_MSG_MAX];
        snprintf(why, sizeof why, "%s", e.msg);
        rc = keel_fail(&e, KEEL_EPROTO, "the reply is not JSON (line %d, column %d: %s)", e.line,
                       e.column, why);
    } else {
        rc = k->response(reply, a, &r, &e);
    }
    arena_cleanup(&scratch);
    if (rc) {
        struct buf q;
        buf_init(&q);
        model_quote(&q, text ? text : "", text ? len : 0, MODEL_QUOTE_MAX);
        keel_fail(err, KEEL_EPROTO, "not a valid %s reply: %s; the reply began %s", k->name, e.msg,
                  q.data);
        buf_cleanup(&q);
        return KEEL_EPROTO;
    }
    out->message = r.message;
    out->stop_reason = r.stop_reason;
    out->input_tokens = r.input_tokens;
    out->output_tokens = r.output_tokens;
    return 0;
}
