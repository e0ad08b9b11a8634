/*
 * fuzz_mockmodel_script.c — libFuzzer target for the mock model server's
 * core (examples/mock-model/script.c, included whole: the mock is a program,
 * not a Keel part): the script parser and the request-to-reply path.
 *
 * Input layout: byte 0 picks the mode, the rest is the payload.
 *   mode % 4 == 0  the payload is a script (mock_load);
 *   otherwise      the payload is "SCRIPT\0BODY" (or just BODY, played
 *                  against a built-in script that uses every entry kind),
 *                  and BODY is sent twice to the model endpoint chosen by
 *                  the mode bits (OpenAI or Anthropic, with or without auth
 *                  headers), then the control routes are called.
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *   - a refused script reports a message, and a positioned one for JSON
 *     syntax errors;
 *   - every reply except a scripted raw "body" is valid JSON;
 *   - GET /_mock/requests is a JSON array with one record per model request,
 *     numbered 1..N, and /_mock/stats counts the same N calls;
 *   - every 200 reply the mock writes itself (not a raw "body") is accepted
 *     by Keel's own parser of that provider's format (model_wire_response),
 *     so the mock and the gateway agree on the wire formats.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../examples/mock-model/script.c"
#include "model/model.h"

static void check(int cond)
{
    if (!cond) abort();
}

static const char builtin_script[] =
    "{\"max_completion_tokens_only\": [\"o3\", \"gpt-5\"], \"responses\": ["
    "{\"when\": {\"tool_offered\": \"crm__lookup\", \"path\": \"openai\"},"
    " \"tool_calls\": [{\"name\": \"crm__lookup\", \"arguments\": {\"id\": 1}},"
    "  {\"name\": \"x\", \"arguments_text\": \"{oops\"}], \"content\": \"calling\"},"
    "{\"when\": {\"last_user_contains\": \"json\"}, \"json\": {\"a\": [1, 2.5e3, null]},"
    " \"usage\": {\"input_tokens\": 3}},"
    "{\"when\": {\"system_contains\": \"rate\"}, \"status\": 429, \"retry_after\": 1,"
    " \"error\": \"slow down\"},"
    "{\"when\": {\"last_message_contains\": \"raw\"}, \"body\": \"not json {\", \"sticky\": true},"
    "{\"when\": {\"model\": \"m\"}, \"content\": \"cut\", \"stop\": \"length\", \"repeat\": 2},"
    "{\"when\": {\"path\": \"anthropic\"}, \"tool_calls\": [{\"name\": \"t\", "
    "\"arguments_text\": \"[1\"}, {\"name\": \"u\", \"arguments\": [1]}]},"
    "{\"content\": \"hello\", \"delay_ms\": 5}"
    "]}";

static bool parses(const char *text, size_t len, struct json_value **out, struct arena *a)
{
    struct keel_err err;
    return json_parse(a, text, len, NULL, out, &err) == 0;
}

static void fuzz_script(const char *text, size_t len)
{
    struct mock *m = mock_new();
    struct keel_err err;
    keel_err_clear(&err);
    if (mock_load(m, text, len, "fuzz.json", &err) != 0) {
        check(err.code != 0 && err.msg[0] != '\0');
        check(strcmp(err.file, "fuzz.json") == 0);
    }
    mock_free(m);
}

static void call(struct mock *m, const char *method, const char *path, const char *body, size_t len,
                 bool auth, struct mock_http_reply *out)
{
    struct mock_http_request rq = {
        .method = method,
        .path = path,
        .authorization = auth ? "Bearer sk-fuzz" : NULL,
        .x_api_key = auth ? "sk-ant-fuzz" : NULL,
        .anthropic_version = auth ? "2023-06-01" : NULL,
        .body = body,
        .body_len = len,
    };
    mock_handle(m, &rq, out);
}

static void fuzz_requests(unsigned mode, const char *payload, size_t size)
{
    const char *sep = memchr(payload, '\0', size);
    const char *script = builtin_script, *body = payload;
    size_t script_len = sizeof builtin_script - 1, body_len = size;
    if (sep) {
        script = payload;
        script_len = (size_t)(sep - payload);
        body = sep + 1;
        body_len = size - script_len - 1;
    }
    struct mock *m = mock_new();
    struct keel_err err;
    if (mock_load(m, script, script_len, NULL, &err) != 0) check(sep != NULL);
    static const char *const paths[] = {"/v1/chat/completions", "/messages", "/chat/completions",
                                        "/v1/messages", "/elsewhere"};
    const char *path = paths[(mode >> 2) % KEEL_ARRAY_LEN(paths)];
    bool auth = (mode & 2) != 0;
    struct mock_http_reply r;
    mock_reply_init(&r);
    struct arena a;
    arena_init(&a);
    struct json_value *v;
    for (int i = 0; i < 2; i++) {
        call(m, "POST", path, body, body_len, auth, &r);
        check(r.status >= 200 && r.status <= 599);
        check(r.delay_ms >= 0 && r.delay_ms <= MOCK_MAX_DELAY_MS);
        /* A 200 may be a scripted raw body; everything else the mock
         * writes itself is JSON. */
        bool json = parses(r.body.data, r.body.len, &v, &a);
        bool raw =
            r.status == 200 && r.body.len == 10 && memcmp(r.body.data, "not json {", 10) == 0;
        if (!sep || strcmp(path, "/elsewhere") == 0) check(json || raw);
        if (!sep && r.status == 200 && !raw && strcmp(path, "/elsewhere") != 0) {
            struct model_response mr;
            memset(&mr, 0, sizeof mr);
            struct keel_err err2;
            const char *kind = strstr(path, "messages") ? "anthropic" : "openai";
            check(model_wire_response(kind, r.body.data, r.body.len, &a, &mr, &err2) == 0);
            check(mr.message != NULL && mr.stop_reason != NULL);
        }
    }
    call(m, "GET", "/_mock/requests", NULL, 0, false, &r);
    check(r.status == 200 && parses(r.body.data, r.body.len, &v, &a));
    check(json_is(v, JSON_ARRAY) && v->len == 2);
    for (uint32_t i = 0; i < v->len; i++)
        check(json_get_int(v->u.items[i], "n", 0) == (int64_t)i + 1);
    call(m, "GET", "/_mock/stats", NULL, 0, false, &r);
    check(r.status == 200 && parses(r.body.data, r.body.len, &v, &a));
    check(json_get_int(v, "calls", -1) == 2);
    call(m, "POST", "/_mock/reset", NULL, 0, false, &r);
    check(r.status == 200);
    call(m, "POST", "/_mock/script", body, body_len, false, &r);
    check(parses(r.body.data, r.body.len, &v, &a));
    arena_cleanup(&a);
    mock_reply_cleanup(&r);
    mock_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > ((size_t)1 << 20)) return 0;
    unsigned mode = data[0];
    const char *payload = (const char *)data + 1;
    if (mode % 4 == 0)
        fuzz_script(payload, size - 1);
    else
        fuzz_requests(mode, payload, size - 1);
    return 0;
}
