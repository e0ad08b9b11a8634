/*
 * fuzz_model_wire.c — libFuzzer target for model_wire_response, the reader
 * of what a model provider sends back (src/model/wire.c).  The first input
 * byte picks the provider kind (even: openai, odd: anthropic); the rest is
 * the HTTP response body.
 *
 * Properties beyond "no crash, no leak, no UB":
 *   - a failure is KEEL_EPROTO, leaves *out untouched, and quotes at most
 *     200 bytes of the body (the message stays within its buffer);
 *   - a success gives an assistant message with string content, a known
 *     stop reason, and tool calls that each have a string id and name and
 *     arguments (a string only when flagged arguments_invalid);
 *   - the message goes back into a conversation: both providers' request
 *     builders accept it (the agent loop sends it on the next turn).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

static void check(int cond)
{
    if (!cond) abort();
}

static const char *const stops[] = {"end", "tool_calls", "length", "other"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *kind = (data[0] & 1) ? "anthropic" : "openai";
    struct arena a;
    arena_init(&a);
    struct model_response out, before;
    memset(&out, 0, sizeof out);
    out.attempts = 77;
    before = out;
    struct keel_err err;
    keel_err_clear(&err);
    int rc = model_wire_response(kind, (const char *)data + 1, size - 1, &a, &out, &err);
    if (rc != 0) {
        check(rc == KEEL_EPROTO);
        check(memcmp(&out, &before, sizeof out) == 0);
        check(strlen(err.msg) < sizeof err.msg);
        arena_cleanup(&a);
        return 0;
    }
    check(out.attempts == 77); /* fields it does not own are left alone */
    check(json_is(out.message, JSON_OBJECT));
    check(!strcmp(json_get_str(out.message, "role", ""), "assistant"));
    check(json_is(json_get(out.message, "content"), JSON_STRING));
    int known = 0;
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
        known |= out.stop_reason && !strcmp(out.stop_reason, stops[i]);
    check(known);
    check(out.input_tokens >= -1 && out.output_tokens >= -1);
    const struct json_value *calls = json_get(out.message, "tool_calls");
    bool names_ok = true;
    for (uint32_t i = 0; calls && i < calls->len; i++) {
        const struct json_value *c = calls->u.items[i];
        check(json_is(json_get(c, "id"), JSON_STRING));
        check(json_is(json_get(c, "name"), JSON_STRING));
        check(json_get(c, "arguments") != NULL);
        if (json_get_bool(c, "arguments_invalid", false))
            check(json_is(json_get(c, "arguments"), JSON_STRING));
        if (json_get(c, "id")->len == 0) names_ok = false;
    }
    if (names_ok) {
        struct json_value *msgs = json_array(&a);
        struct json_value *user = json_object(&a);
        json_object_setc(&a, user, "role", json_cstr(&a, "user"));
        json_object_setc(&a, user, "content", json_cstr(&a, "go"));
        json_array_push(&a, msgs, user);
        json_array_push(&a, msgs, out.message);
        struct model_request r = {.messages = msgs};
        struct json_value *body = NULL;
        check(model_wire_request("openai", "m", NULL, &r, &a, &body, &err) == 0);
        check(model_wire_request("anthropic", "m", NULL, &r, &a, &body, &err) == 0);
    }
    arena_cleanup(&a);
    return 0;
}
