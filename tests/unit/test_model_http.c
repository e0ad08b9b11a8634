/*
 * test_model_http.c — the model gateway over real HTTP, against the mock
 * model server (examples/mock-model, built as keel-mock-model next to this
 * runner).  One mock runs for the whole file; each test loads its own
 * script with POST /_mock/script (which also clears the records) and reads
 * what arrived with GET /_mock/requests.
 *
 * Every provider's API key is a canary made fresh for the run: each test
 * checks that the mock saw it in the auth header and that it appears in
 * nothing the gateway returned (messages, err text, trail) or logged.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child_fixture.h"
#include "model/model.h"
#include "test.h"

/* ---- the mock server ------------------------------------------------------- */

static pid_t mock_pid;
static char mock_url[128]; /* "http://127.0.0.1:PORT" */
static char canary[64];
static struct model_gateway *gw;

static void mock_stop(void)
{
    if (mock_pid > 0) {
        kill(mock_pid, SIGTERM);
        waitpid(mock_pid, NULL, 0);
        mock_pid = 0;
    }
    model_gateway_free(gw);
    gw = NULL;
}

/* Starts keel-mock-model with an empty script and reads its "listening on"
 * line (no polling: the line is printed once the socket is bound). */
static bool mock_start(void)
{
    if (mock_pid > 0) return true;
    char bin[4200], script[] = "/tmp/keel-test-model-script-XXXXXX";
    if (!test_built_program("keel-mock-model", bin, sizeof bin)) return false;
    int sfd = mkstemp(script);
    if (sfd < 0) return false;
    if (write(sfd, "{\"responses\": []}", 17) != 17) return false;
    close(sfd);
    int p[2];
    if (pipe(p) != 0) return false;
    mock_pid = fork();
    if (mock_pid < 0) return false;
    if (mock_pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(bin, bin, "--script", script, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    char line[256] = "";
    bool ok = f && fgets(line, sizeof line, f) && !strncmp(line, "listening on ", 13);
    if (f) fclose(f);
    unlink(script);
    if (!ok) {
        fprintf(stderr, "test_model_http: the mock did not start (got '%s')\n", line);
        return false;
    }
    line[strcspn(line, "\r\n")] = '\0';
    snprintf(mock_url, sizeof mock_url, "%s", line + 13);
    atexit(mock_stop);
    return true;
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    buf_append(ud, p, size * n);
    return size * n;
}

/* A plain HTTP exchange with the mock's control endpoints. */
static long http(const char *method, const char *path, const char *body, struct buf *out)
{
    char url[512];
    snprintf(url, sizeof url, "%s%s", mock_url, path);
    CURL *c = curl_easy_init();
    if (!c) return -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static bool script(const char *text)
{
    struct buf out;
    buf_init(&out);
    long st = http("POST", "/_mock/script", text, &out);
    if (st != 200) fprintf(stderr, "script refused (%ld): %s\n", st, out.data ? out.data : "");
    buf_cleanup(&out);
    return st == 200;
}

/* The mock's records, parsed into a. */
static struct json_value *records(struct arena *a)
{
    struct buf out;
    buf_init(&out);
    struct json_value *v = NULL;
    if (http("GET", "/_mock/requests", NULL, &out) == 200)
        json_parse(a, out.data, out.len, NULL, &v, NULL);
    buf_cleanup(&out);
    return json_is(v, JSON_ARRAY) ? v : json_array(a);
}

/* The gateway: every provider points at the mock, all with the canary. */
static struct model_gateway *gateway(void)
{
    if (gw) return gw;
    if (!mock_start()) return NULL;
    uint8_t rnd[12];
    char hex[25];
    keel_random(rnd, sizeof rnd);
    keel_hex(rnd, sizeof rnd, hex);
    snprintf(canary, sizeof canary, "sk-canary-%s", hex);
    setenv("KEEL_TEST_CANARY_KEY", canary, 1);
    char cfg[8192];
    snprintf(cfg, sizeof cfg,
             "{\"providers\": {"
             " \"oa\": {\"kind\": \"openai\", \"base_url\": \"%s/v1\", \"api_key\": {\"env\": "
             "\"KEEL_TEST_CANARY_KEY\"}, \"retries\": 2, \"max_retry_wait\": \"5s\", "
             "\"headers\": {\"X-Org\": \"acme\"}},"
             " \"an\": {\"kind\": \"anthropic\", \"base_url\": \"%s/v1\", \"api_key\": {\"env\": "
             "\"KEEL_TEST_CANARY_KEY\"}},"
             " \"fast\": {\"kind\": \"openai\", \"base_url\": \"%s\", \"api_key\": {\"env\": "
             "\"KEEL_TEST_CANARY_KEY\"}, \"timeout\": \"300ms\", \"retries\": 0},"
             " \"impatient\": {\"kind\": \"openai\", \"base_url\": \"%s/v1\", \"api_key\": "
             "{\"env\": \"KEEL_TEST_CANARY_KEY\"}, \"max_retry_wait\": \"500ms\"},"
             " \"flaky\": {\"kind\": \"openai\", \"base_url\": \"%s/v1\", \"api_key\": {\"env\": "
             "\"KEEL_TEST_CANARY_KEY\"}, \"retries\": 1},"
             " \"modern\": {\"kind\": \"openai\", \"base_url\": \"%s/v1\", \"api_key\": {\"env\": "
             "\"KEEL_TEST_CANARY_KEY\"}, \"max_tokens_field\": \"max_completion_tokens\"},"
             " \"bounded\": {\"kind\": \"openai\", \"base_url\": \"%s/v1\", \"api_key\": {\"env\": "
             "\"KEEL_TEST_CANARY_KEY\"}, \"deadline\": \"1s\"}},"
             "\"models\": {"
             " \"gpt\": {\"provider\": \"oa\", \"model\": \"gpt-4o-mini\", \"price\": {\"input\": "
             "0.15, \"output\": 0.6}},"
             " \"claude\": {\"provider\": \"an\", \"model\": \"claude-x\", \"max_output\": 512, "
             "\"price\": {\"input\": 3, \"output\": 15}},"
             " \"slow\": {\"provider\": \"fast\", \"model\": \"slow-1\"},"
             " \"hurried\": {\"provider\": \"impatient\", \"model\": \"hurry-1\"},"
             " \"a\": {\"provider\": \"flaky\", \"model\": \"model-a\"},"
             " \"b\": {\"provider\": \"oa\", \"model\": \"model-b\"},"
             " \"o3\": {\"provider\": \"oa\", \"model\": \"o3-mini\", "
             "\"max_tokens_field\": \"max_completion_tokens\"},"
             " \"o3wrong\": {\"provider\": \"oa\", \"model\": \"o3-mini\"},"
             " \"g5\": {\"provider\": \"modern\", \"model\": \"gpt-5\", \"max_output\": 700},"
             " \"bnd\": {\"provider\": \"bounded\", \"model\": \"bnd-1\"}},"
             "\"routes\": {\"default\": {\"model\": \"gpt\"}, \"chain\": {\"model\": \"a\", "
             "\"fallback\": [\"b\"]},"
             " \"tight\": {\"model\": \"b\", \"deadline\": \"1500ms\"},"
             " \"tightchain\": {\"model\": \"a\", \"fallback\": [\"b\"], \"deadline\": \"1500ms\"},"
             " \"jitter\": {\"model\": \"a\", \"fallback\": [\"b\"], \"deadline\": \"300ms\"}}}",
             mock_url, mock_url, mock_url, mock_url, mock_url, mock_url, mock_url);
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    struct keel_err err;
    if (json_parse(&a, cfg, strlen(cfg), NULL, &v, &err) == 0 &&
        model_gateway_new(v, "keel.yaml", ".", &gw, &err) != 0)
        fprintf(stderr, "gateway refused: %s at %s\n", err.msg, err.path);
    arena_cleanup(&a);
    return gw;
}

/* The gateway, with the mock playing script `text`; NULL if either failed. */
static struct model_gateway *scripted(const char *text)
{
    struct model_gateway *g = gateway();
    return g && script(text) ? g : NULL;
}

/* One exchange with a gateway: an arena, a one-message request ("hi") on
 * `route` (NULL: the default), and where the answer and the error go.
 * Free with arena_cleanup(&x->a). */
struct exchange {
    struct arena a;
    struct model_request r;
    struct model_response out;
    struct keel_err err;
};

#define HI_MESSAGES "[{\"role\": \"user\", \"content\": \"hi\"}]"

static void exchange_init(struct exchange *x, const char *route)
{
    arena_init(&x->a);
    x->r = (struct model_request){.route = route, .messages = test_parse(&x->a, HI_MESSAGES)};
    x->out = (struct model_response){0};
    keel_err_clear(&x->err);
}

/* The canary must appear in nothing the gateway gave back. */
static void check_no_canary(const char *where, const struct keel_err *err,
                            const struct model_response *out)
{
    struct buf b;
    buf_init(&b);
    if (err) buf_printf(&b, "%s|%s|%s|", err->msg, err->path, err->file);
    if (out && out->message) json_write(&b, out->message, 0, NULL);
    if (out && out->trail) json_write(&b, out->trail, 0, NULL);
    if (b.data && strstr(b.data, canary))
        TEST_FAIL_AT(__FILE__, __LINE__, "%s: the API key leaked into the output", where);
    buf_cleanup(&b);
}

/* Sends x's request through g (answer in x->out, error in x->err) and
 * checks that the API key leaked into neither. */
static int exchange_call(struct model_gateway *g, struct exchange *x, const char *where)
{
    int rc = model_call(g, &x->r, &x->a, &x->out, &x->err);
    check_no_canary(where, &x->err, &x->out);
    return rc;
}

/* exchange_call, timed: *ms is how long the call took. */
static int timed_call(struct model_gateway *g, struct exchange *x, const char *where, int64_t *ms)
{
    int64_t t0 = keel_mono_ns();
    int rc = exchange_call(g, x, where);
    *ms = (keel_mono_ns() - t0) / 1000000;
    return rc;
}

/* A call that must have taken between lo and hi ms (about `about`). */
#define CHECK_MS(ms, lo, hi, about)                                                                \
    do {                                                                                           \
        if ((ms) < (lo) || (ms) >= (hi))                                                           \
            TEST_FAIL_AT(__FILE__, __LINE__, "the call took %lld ms; expected about %d",           \
                         (long long)(ms), (about));                                                \
    } while (0)

static const char *rec_str(const struct json_value *recs, uint32_t i, const char *key)
{
    if (!recs || i >= recs->len) return NULL;
    return json_get_str(recs->u.items[i], key, NULL);
}

/* ---- tests ----------------------------------------------------------------- */

TEST(http_openai_tool_call_round_trip)
{
    struct model_gateway *g =
        scripted("{\"responses\": ["
                 "{\"when\": {\"last_user_contains\": \"ticket 42\"}, \"tool_calls\": "
                 "[{\"name\": \"crm__lookup\", \"arguments\": {\"id\": 42}}], "
                 "\"usage\": {\"input_tokens\": 50, \"output_tokens\": 10}},"
                 "{\"when\": {\"last_message_contains\": \"plan pro\"}, \"content\": "
                 "\"Severity 2.\", \"usage\": {\"input_tokens\": 80, \"output_tokens\": 4}}]}");
    REQUIRE(g);
    struct arena a;
    arena_init(&a);
    struct json_value *msgs =
        test_parse(&a, "[{\"role\": \"system\", \"content\": \"You triage.\"},"
                       "{\"role\": \"user\", \"content\": \"Look at ticket 42\"}]");
    struct json_value *tools = test_parse(
        &a, "[{\"name\": \"crm__lookup\", \"description\": \"Find an account\", "
            "\"input_schema\": {\"type\": \"object\", \"properties\": {\"id\": {\"type\": "
            "\"integer\"}}}}]");
    struct model_request r = {.messages = msgs, .tools = tools};
    struct model_response out = {0};
    struct keel_err err;
    keel_err_clear(&err);
    int rc = model_call(g, &r, &a, &out, &err);
    check_no_canary("first call", &err, &out);
    if (rc) fprintf(stderr, "model_call: %s\n", err.msg);
    REQUIRE(rc == 0);
    CHECK_STR(out.stop_reason, "tool_calls");
    CHECK_STR(out.model, "gpt");
    CHECK_STR(out.provider, "oa");
    CHECK_STR(out.provider_model, "gpt-4o-mini");
    CHECK_INT(out.input_tokens, 50);
    CHECK_INT(out.output_tokens, 10);
    CHECK(out.cost_usd > 0.000013499 && out.cost_usd < 0.000013501); /* 50*.15+10*.6 per M */
    CHECK_INT(out.attempts, 1);
    REQUIRE(json_is(out.trail, JSON_ARRAY));
    CHECK_INT(out.trail->len, 0);
    struct json_value *calls = json_get(out.message, "tool_calls");
    REQUIRE(json_is(calls, JSON_ARRAY) && calls->len == 1);
    CHECK_STR(json_get_str(calls->u.items[0], "name", ""), "crm__lookup");
    CHECK_INT(json_get_int(json_get(calls->u.items[0], "arguments"), "id", 0), 42);
    const char *call_id = json_get_str(calls->u.items[0], "id", NULL);
    REQUIRE(call_id);

    /* Second turn: the call and its result go back. */
    json_array_push(&a, msgs, out.message);
    struct json_value *result = json_object(&a);
    json_object_setc(&a, result, "role", json_cstr(&a, "tool"));
    json_object_setc(&a, result, "tool_call_id", json_cstr(&a, call_id));
    json_object_setc(&a, result, "content", json_cstr(&a, "{\"plan pro\": true}"));
    json_array_push(&a, msgs, result);
    struct model_response out2 = {0};
    rc = model_call(g, &r, &a, &out2, &err);
    check_no_canary("second call", &err, &out2);
    if (rc) fprintf(stderr, "model_call: %s\n", err.msg);
    REQUIRE(rc == 0);
    CHECK_STR(out2.stop_reason, "end");
    CHECK_STR(json_get_str(out2.message, "content", ""), "Severity 2.");

    /* The mock received exactly what the wire layer builds, with the key
     * in the Authorization header. */
    struct json_value *recs = records(&a);
    REQUIRE(recs->len == 2);
    char bearer[128];
    snprintf(bearer, sizeof bearer, "Bearer %s", canary);
    for (uint32_t i = 0; i < 2; i++) {
        CHECK_STR(rec_str(recs, i, "authorization"), bearer);
        CHECK_STR(rec_str(recs, i, "path"), "/v1/chat/completions");
        CHECK_INT(json_get_int(recs->u.items[i], "status", 0), 200);
    }
    struct json_value *want = NULL;
    struct keel_err werr;
    REQUIRE(model_wire_request("openai", "gpt-4o-mini", NULL, &r, &a, &want, &werr) == 0);
    CHECK(json_equal(json_get(recs->u.items[1], "body"), want));
    arena_cleanup(&a);
}

TEST(http_anthropic_tool_use_round_trip)
{
    struct model_gateway *g =
        scripted("{\"responses\": ["
                 "{\"when\": {\"path\": \"anthropic\", \"tool_offered\": \"crm__lookup\", "
                 "\"last_user_contains\": \"ticket\"}, \"tool_calls\": "
                 "[{\"name\": \"crm__lookup\", \"arguments\": {\"id\": 7}}]},"
                 "{\"when\": {\"path\": \"anthropic\"}, \"content\": \"All done.\"}]}");
    REQUIRE(g);
    struct arena a;
    arena_init(&a);
    struct json_value *msgs =
        test_parse(&a, "[{\"role\": \"system\", \"content\": \"Be brief.\"},"
                       "{\"role\": \"user\", \"content\": \"Check ticket 7\"}]");
    struct json_value *tools = test_parse(&a, "[{\"name\": \"crm__lookup\", \"input_schema\": "
                                              "{\"type\": \"object\"}}]");
    struct model_request r = {.route = "claude", .messages = msgs, .tools = tools};
    struct model_response out = {0};
    struct keel_err err;
    int rc = model_call(g, &r, &a, &out, &err);
    check_no_canary("anthropic call", &err, &out);
    if (rc) fprintf(stderr, "model_call: %s\n", err.msg);
    REQUIRE(rc == 0);
    CHECK_STR(out.stop_reason, "tool_calls");
    CHECK_STR(out.model, "claude");
    CHECK(out.input_tokens > 0 && out.output_tokens > 0); /* the mock's estimates */
    struct json_value *calls = json_get(out.message, "tool_calls");
    REQUIRE(json_is(calls, JSON_ARRAY) && calls->len == 1);
    CHECK_INT(json_get_int(json_get(calls->u.items[0], "arguments"), "id", 0), 7);
    json_array_push(&a, msgs, out.message);
    struct json_value *result = json_object(&a);
    json_object_setc(&a, result, "role", json_cstr(&a, "tool"));
    json_object_setc(&a, result, "tool_call_id",
                     json_get(calls->u.items[0], "id"));
    json_object_setc(&a, result, "content", json_cstr(&a, "plan: pro"));
    json_array_push(&a, msgs, result);
    struct model_response out2 = {0};
    rc = model_call(g, &r, &a, &out2, &err);
    check_no_canary("anthropic second call", &err, &out2);
    if (rc) fprintf(stderr, "model_call: %s\n", err.msg);
    REQUIRE(rc == 0);
    CHECK_STR(out2.stop_reason, "end");
    CHECK_STR(json_get_str(out2.message, "content", ""), "All done.");

    struct json_value *recs = records(&a);
    REQUIRE(recs->len == 2);
    CHECK_STR(rec_str(recs, 0, "x_api_key"), canary);
    CHECK(json_is(json_get(recs->u.items[0], "authorization"), JSON_NULL));
    CHECK_STR(rec_str(recs, 1, "path"), "/v1/messages");
    struct model_request sent = r;
    sent.max_output_tokens = 512; /* the model's max_output */
    struct json_value *want = NULL;
    struct keel_err werr;
    REQUIRE(model_wire_request("anthropic", "claude-x", NULL, &sent, &a, &want, &werr) == 0);
    CHECK(json_equal(json_get(recs->u.items[1], "body"), want));
    CHECK_INT(json_get_int(json_get(recs->u.items[1], "body"), "max_tokens", 0), 512);
    arena_cleanup(&a);
}

TEST(http_structured_output_both_providers)
{
    struct model_gateway *g =
        scripted("{\"responses\": [{\"json\": {\"severity\": 2}, \"sticky\": true}]}");
    REQUIRE(g);
    struct arena a;
    arena_init(&a);
    struct model_request r = {
        .messages = test_parse(&a, "[{\"role\": \"user\", \"content\": \"Classify\"}]"),
        .output_schema = test_parse(&a, "{\"type\": \"object\", \"required\": [\"severity\"]}")};
    const char *routes[] = {"gpt", "claude"};
    for (int i = 0; i < 2; i++) {
        r.route = routes[i];
        struct model_response out = {0};
        struct keel_err err;
        int rc = model_call(g, &r, &a, &out, &err);
        check_no_canary("structured", &err, &out);
        REQUIRE(rc == 0);
        CHECK_STR(json_get_str(out.message, "content", ""), "{\"severity\":2}");
    }
    struct json_value *recs = records(&a);
    REQUIRE(recs->len == 2);
    const struct json_value *rf = json_get(json_get(recs->u.items[0], "body"), "response_format");
    CHECK_STR(json_get_str(rf, "type", ""), "json_schema");
    CHECK(json_equal(json_pointer_get(rf, "/json_schema/schema"), r.output_schema));
    CHECK_STR(json_get_str(json_get(rf, "json_schema"), "name", ""), "output");
    CHECK_CONTAINS(json_get_str(json_get(recs->u.items[1], "body"), "system", ""),
                   "validates against this JSON Schema: "
                   "{\"type\":\"object\",\"required\":[\"severity\"]}");
    arena_cleanup(&a);
}

TEST(http_429_retry_after_is_honoured)
{
    struct model_gateway *g = scripted("{\"responses\": [{\"status\": 429, \"retry_after\": 1}, "
                                       "{\"content\": \"ok after waiting\"}]}");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, NULL);
    int rc = exchange_call(g, &x, "429");
    if (rc) fprintf(stderr, "model_call: %s\n", x.err.msg);
    REQUIRE(rc == 0);
    CHECK_STR(json_get_str(x.out.message, "content", ""), "ok after waiting");
    CHECK_INT(x.out.attempts, 2);
    REQUIRE(x.out.trail && x.out.trail->len == 1);
    const struct json_value *t = x.out.trail->u.items[0];
    CHECK_STR(json_get_str(t, "model", ""), "gpt");
    CHECK_INT(json_get_int(t, "status", 0), 429);
    CHECK_INT(json_get_int(t, "retry_after_ms", 0), 1000);
    CHECK_INT(json_get_int(t, "wait_ms", 0), 1000);
    CHECK_STR(json_get_str(t, "code", ""), "EBUSY");
    struct json_value *recs = records(&x.a);
    REQUIRE(recs->len == 2);
    int64_t t0 = json_get_int(recs->u.items[0], "time_ms", 0);
    int64_t t1 = json_get_int(recs->u.items[1], "time_ms", 0);
    CHECK(t1 - t0 >= 1000);
    arena_cleanup(&x.a);
}

TEST(http_429_longer_than_max_retry_wait_moves_on)
{
    struct model_gateway *g =
        scripted("{\"responses\": [{\"status\": 429, \"retry_after\": 30, \"sticky\": true}]}");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, "hurried");
    int64_t t0 = keel_mono_ns();
    CHECK_INT(exchange_call(g, &x, "429 long"), KEEL_EBUSY);
    CHECK((keel_mono_ns() - t0) / 1000000 < 5000); /* did not sleep 30 s */
    CHECK_CONTAINS(x.err.msg, "rate-limited model hurried (HTTP 429)");
    CHECK_CONTAINS(x.err.msg, "retry after 30000 ms");
    CHECK_CONTAINS(x.err.msg, "more than max_retry_wait (500 ms)");
    CHECK(x.out.message == NULL);
    REQUIRE(x.out.trail && x.out.trail->len == 1);
    CHECK_INT(json_get_int(x.out.trail->u.items[0], "retry_after_ms", 0), 30000);
    CHECK_INT(records(&x.a)->len, 1);
    arena_cleanup(&x.a);
}

TEST(http_5xx_retry_then_fallback)
{
    struct model_gateway *g =
        scripted("{\"responses\": ["
                 "{\"when\": {\"model\": \"model-a\"}, \"status\": 503, \"sticky\": true},"
                 "{\"when\": {\"model\": \"model-b\"}, \"content\": \"from b\"}]}");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, "chain");
    int rc = exchange_call(g, &x, "5xx");
    if (rc) fprintf(stderr, "model_call: %s\n", x.err.msg);
    REQUIRE(rc == 0);
    CHECK_STR(x.out.model, "b");
    CHECK_STR(x.out.provider_model, "model-b");
    CHECK_STR(json_get_str(x.out.message, "content", ""), "from b");
    CHECK_INT(x.out.attempts, 3); /* a, a again (retries: 1), then b */
    REQUIRE(x.out.trail && x.out.trail->len == 2);
    for (uint32_t i = 0; i < 2; i++) {
        CHECK_STR(json_get_str(x.out.trail->u.items[i], "model", ""), "a");
        CHECK_INT(json_get_int(x.out.trail->u.items[i], "status", 0), 503);
        CHECK_CONTAINS(json_get_str(x.out.trail->u.items[i], "error", ""),
                       "provider flaky answered HTTP 503 for model a");
    }
    /* The first failure waited a jittered backoff in [0, 500] ms. */
    CHECK(json_get_int(x.out.trail->u.items[0], "wait_ms", -1) <= 500);
    CHECK_INT(json_get_int(x.out.trail->u.items[1], "wait_ms", -1), 0);
    struct json_value *recs = records(&x.a);
    REQUIRE(recs->len == 3);
    CHECK_STR(json_get_str(json_get(recs->u.items[2], "body"), "model", ""), "model-b");

    /* Every model failing: the error is the last one, listing what was tried. */
    REQUIRE(script("{\"responses\": [{\"status\": 500, \"sticky\": true}]}"));
    struct model_response fail = {0};
    CHECK_INT(model_call(g, &x.r, &x.a, &fail, &x.err), KEEL_EIO);
    check_no_canary("5xx all", &x.err, &fail);
    CHECK_CONTAINS(x.err.msg, "models tried: a, b");
    CHECK_CONTAINS(x.err.msg, "5 HTTP requests"); /* a twice, b three times */
    CHECK(fail.message == NULL);
    CHECK(fail.trail && fail.trail->len == 5);
    arena_cleanup(&x.a);
}

TEST(http_401_is_denied_without_quoting_the_key)
{
    struct model_gateway *g =
        scripted("{\"responses\": [{\"status\": 401, \"error\": \"Incorrect API key\", "
                 "\"sticky\": true}]}");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, NULL);
    CHECK_INT(exchange_call(g, &x, "401"), KEEL_EDENIED);
    CHECK_CONTAINS(x.err.msg, "provider oa rejected the API key (HTTP 401); check the key named by "
                              "models.providers.oa.api_key");
    CHECK_INT(records(&x.a)->len, 1); /* no retry */
    REQUIRE(x.out.trail && x.out.trail->len == 1);
    CHECK_STR(json_get_str(x.out.trail->u.items[0], "code", ""), "EDENIED");
    arena_cleanup(&x.a);
}

TEST(http_reply_not_json_is_eproto)
{
    struct model_gateway *g =
        scripted("{\"responses\": [{\"body\": \"<html>upstream said no</html>\", "
                 "\"sticky\": true}]}");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, NULL);
    CHECK_INT(exchange_call(g, &x, "not json"), KEEL_EPROTO);
    CHECK_CONTAINS(x.err.msg, "the reply began '<html>upstream said no</html>'");
    CHECK_INT(records(&x.a)->len, 1); /* not retried */
    arena_cleanup(&x.a);
}

TEST(http_timeout_is_etimeout)
{
    struct model_gateway *g =
        scripted("{\"responses\": [{\"delay_ms\": 3000, \"content\": \"too late\"}]}");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, "slow");
    int64_t ms;
    CHECK_INT(timed_call(g, &x, "timeout", &ms), KEEL_ETIMEOUT);
    /* curl's own clock may fire a hair early; the mock would answer at 3 s. */
    CHECK_MS(ms, 280, 2900, 300);
    CHECK_CONTAINS(x.err.msg, "did not answer within 300 ms");
    REQUIRE(x.out.trail && x.out.trail->len == 1);
    CHECK_INT(json_get_int(x.out.trail->u.items[0], "status", -1), 0);
    arena_cleanup(&x.a);
}

TEST(http_key_echoed_by_the_server_is_redacted)
{
    /* A hostile or broken server that echoes the key in its error body. */
    struct model_gateway *g = gateway();
    REQUIRE(g);
    char s[512];
    snprintf(s, sizeof s,
             "{\"responses\": [{\"status\": 400, \"error\": \"bad key %s\", \"sticky\": true}]}",
             canary);
    REQUIRE(script(s));
    struct exchange x;
    exchange_init(&x, NULL);
    CHECK_INT(exchange_call(g, &x, "echo"), KEEL_EIO);
    CHECK_CONTAINS(x.err.msg, "HTTP 400");
    CHECK_CONTAINS(x.err.msg, "bad key [redacted]");
    snprintf(s, sizeof s, "{\"responses\": [{\"body\": \"not json %s\", \"sticky\": true}]}",
             canary);
    REQUIRE(script(s));
    struct model_response out2 = {0};
    CHECK_INT(model_call(g, &x.r, &x.a, &out2, &x.err), KEEL_EPROTO);
    check_no_canary("echo body", &x.err, &out2);
    CHECK_CONTAINS(x.err.msg, "not json [redacted]");
    arena_cleanup(&x.a);
}

TEST(http_logs_never_hold_the_key)
{
    /* Capture stderr (where keel_log writes) around calls that log. */
    struct model_gateway *g =
        scripted("{\"responses\": [{\"status\": 503}, {\"status\": 429, \"retry_after\": 0}, "
                 "{\"content\": \"fine\"}, {\"status\": 401, \"sticky\": true}]}");
    REQUIRE(g);
    char path[] = "/tmp/keel-test-model-log-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    keel_log_set_level(KEEL_LOG_DEBUG);
    struct exchange x;
    exchange_init(&x, NULL);
    struct model_response out2 = {0};
    int rc1 = model_call(g, &x.r, &x.a, &x.out, &x.err);
    int rc2 = model_call(g, &x.r, &x.a, &out2, &x.err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    keel_log_set_level(KEEL_LOG_WARN);
    CHECK_INT(rc1, 0);
    CHECK_INT(rc2, KEEL_EDENIED);
    CHECK_INT(x.out.attempts, 3);
    struct buf log;
    buf_init(&log);
    struct keel_err rerr;
    REQUIRE(keel_read_file(path, 1 << 20, &log, &rerr) == 0);
    CHECK_CONTAINS(log.data, "retrying in");
    CHECK(!strstr(log.data, canary));
    buf_cleanup(&log);
    close(fd);
    unlink(path);
    arena_cleanup(&x.a);
}

/* ---- the output limit's field ----------------------------------------------- */

/* The body the mock recorded for request i. */
static const struct json_value *rec_body(const struct json_value *recs, uint32_t i)
{
    return recs && i < recs->len ? json_get(recs->u.items[i], "body") : NULL;
}

TEST(http_output_limit_goes_into_the_configured_field)
{
    /* The mock refuses max_tokens for o3-mini and gpt-5, as OpenAI does. */
    struct model_gateway *g =
        scripted("{\"max_completion_tokens_only\": [\"o3-mini\", \"gpt-5\"],"
                 " \"responses\": [{\"content\": \"ok\", \"sticky\": true}]}");
    REQUIRE(g);
    struct exchange x;
    const char *routes[] = {"o3", "g5", "gpt"};
    int64_t limits[] = {333, 0, 444}; /* 0: the model's max_output (g5: 700) */
    for (int i = 0; i < 3; i++) {
        exchange_init(&x, routes[i]);
        x.r.max_output_tokens = limits[i];
        int rc = exchange_call(g, &x, routes[i]);
        if (rc) fprintf(stderr, "model_call %s: %s\n", routes[i], x.err.msg);
        CHECK_INT(rc, 0);
        CHECK_INT(x.out.attempts, 1);
        arena_cleanup(&x.a);
    }
    exchange_init(&x, NULL);
    struct json_value *recs = records(&x.a);
    REQUIRE(recs->len == 3);
    /* per-model setting on a provider that sends max_tokens */
    CHECK_INT(json_get_int(rec_body(recs, 0), "max_completion_tokens", 0), 333);
    CHECK(json_get(rec_body(recs, 0), "max_tokens") == NULL);
    /* provider setting, with the model's default limit */
    CHECK_INT(json_get_int(rec_body(recs, 1), "max_completion_tokens", 0), 700);
    CHECK(json_get(rec_body(recs, 1), "max_tokens") == NULL);
    /* a compatible server's model: max_tokens, as before */
    CHECK_INT(json_get_int(rec_body(recs, 2), "max_tokens", 0), 444);
    CHECK(json_get(rec_body(recs, 2), "max_completion_tokens") == NULL);
    for (uint32_t i = 0; i < 3; i++) CHECK_INT(json_get_int(recs->u.items[i], "status", 0), 200);
    arena_cleanup(&x.a);
}

TEST(http_max_tokens_refused_like_openai_says_which_setting)
{
    /* o3wrong sends o3-mini its limit as max_tokens: the mock answers what
     * OpenAI answers, and Keel's error says how to fix keel.yaml. */
    struct model_gateway *g =
        scripted("{\"max_completion_tokens_only\": [\"o3-mini\"],"
                 " \"responses\": [{\"content\": \"ok\", \"sticky\": true}]}");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, "o3wrong");
    x.r.max_output_tokens = 100;
    CHECK_INT(exchange_call(g, &x, "o3wrong"), KEEL_EIO);
    CHECK_CONTAINS(x.err.msg, "provider oa answered HTTP 400 for model o3wrong: 'Unsupported "
                              "parameter: 'max_tokens' is not supported with this model. Use "
                              "'max_completion_tokens' instead.'");
    CHECK_CONTAINS(x.err.msg, "Keel sent the output limit as max_tokens: if model o3wrong takes "
                              "max_completion_tokens, set max_tokens_field: max_completion_tokens "
                              "on models.models.o3wrong");
    struct json_value *recs = records(&x.a);
    REQUIRE(recs->len == 1); /* a 400 is not retried */
    CHECK_INT(json_get_int(recs->u.items[0], "status", 0), 400);
    CHECK_INT(json_get_int(recs->u.items[0], "entry", 0), -1);
    CHECK_INT(json_get_int(rec_body(recs, 0), "max_tokens", 0), 100);

    /* Without a limit nothing is sent, so nothing is refused. */
    struct model_response out2 = {0};
    x.r.max_output_tokens = 0;
    int rc = model_call(g, &x.r, &x.a, &out2, &x.err);
    if (rc) fprintf(stderr, "model_call: %s\n", x.err.msg);
    CHECK_INT(rc, 0);

    /* The refusal is OpenAI's: its status, message, param and code. */
    struct buf reply;
    buf_init(&reply);
    char url[256];
    snprintf(url, sizeof url, "%s/v1/chat/completions", mock_url);
    CURL *c = curl_easy_init();
    REQUIRE(c);
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer sk-x");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS,
                     "{\"model\": \"o3-mini\", \"max_tokens\": 5, \"messages\": "
                     "[{\"role\": \"user\", \"content\": \"hi\"}]}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
    long status = 0;
    REQUIRE(curl_easy_perform(c) == CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    CHECK_INT(status, 400);
    struct json_value *got = test_parse(&x.a, reply.data);
    struct json_value *want = test_parse(
        &x.a, "{\"error\": {\"message\": \"Unsupported parameter: 'max_tokens' is not supported "
              "with this model. Use 'max_completion_tokens' instead.\", \"type\": "
              "\"invalid_request_error\", \"param\": \"max_tokens\", \"code\": "
              "\"unsupported_parameter\"}}");
    CHECK(json_equal(got, want));
    buf_cleanup(&reply);
    arena_cleanup(&x.a);
}

/* ---- the deadline ------------------------------------------------------------ */

static int64_t rec_time(const struct json_value *recs, uint32_t i)
{
    return recs && i < recs->len ? json_get_int(recs->u.items[i], "time_ms", 0) : 0;
}

TEST(http_deadline_retry_after_past_it_fails_at_once)
{
    /* Retry-After 2 s is within max_retry_wait (5 s) but not within the
     * route's 1.5 s deadline: no sleep, no second request. */
    struct model_gateway *g =
        scripted("{\"responses\": [{\"status\": 429, \"retry_after\": 2, \"sticky\": true}]}");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, "tight");
    int64_t t0 = keel_mono_ns();
    CHECK_INT(exchange_call(g, &x, "deadline 429"), KEEL_ETIMEOUT);
    CHECK((keel_mono_ns() - t0) / 1000000 < 1000); /* did not wait the 2 s */
    CHECK_CONTAINS(x.err.msg, "the model call ran out of time: its deadline (1500 ms, "
                              "models.routes.tight.deadline) ended it after 1 HTTP request");
    CHECK_CONTAINS(x.err.msg, " ms; raise models.routes.tight.deadline in keel.yaml to allow "
                              "more time. Tried: b (HTTP 429). Last error: provider oa "
                              "rate-limited model b (HTTP 429)");
    CHECK_CONTAINS(x.err.msg, "it asked to retry after 2000 ms, which would end past the call's "
                              "deadline");
    REQUIRE(x.out.trail && x.out.trail->len == 1);
    CHECK_INT(json_get_int(x.out.trail->u.items[0], "retry_after_ms", 0), 2000);
    CHECK_INT(json_get_int(x.out.trail->u.items[0], "wait_ms", -1), 0);
    CHECK_CONTAINS(json_get_str(x.out.trail->u.items[0], "error", ""), "so Keel did not wait");
    CHECK_INT(records(&x.a)->len, 1);
    arena_cleanup(&x.a);
}

TEST(http_deadline_leaves_room_for_a_retry_that_fits)
{
    struct model_gateway *g = scripted("{\"responses\": [{\"status\": 429, \"retry_after\": 1}, "
                                       "{\"content\": \"in time\"}]}");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, "tight");
    int rc = exchange_call(g, &x, "deadline fits");
    if (rc) fprintf(stderr, "model_call: %s\n", x.err.msg);
    REQUIRE(rc == 0);
    CHECK_STR(json_get_str(x.out.message, "content", ""), "in time");
    CHECK_INT(x.out.attempts, 2);
    struct json_value *recs = records(&x.a);
    REQUIRE(recs->len == 2);
    CHECK(rec_time(recs, 1) - rec_time(recs, 0) >= 1000);
    arena_cleanup(&x.a);
}

TEST(http_deadline_cuts_the_last_attempts_timeout)
{
    /* b's provider allows 60 s per request; after a 1 s Retry-After, the
     * retry gets what is left of 1.5 s, and the reply (5 s late) never
     * comes in time. */
    struct model_gateway *g =
        scripted("{\"responses\": [{\"status\": 429, \"retry_after\": 1}, "
                 "{\"delay_ms\": 5000, \"content\": \"too late\"}]}");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, "tight");
    int64_t ms;
    CHECK_INT(timed_call(g, &x, "deadline cut", &ms), KEEL_ETIMEOUT);
    /* curl's clock may fire a hair early; the mock would answer at 6 s (the
     * upper bound only proves the cut, with room for a loaded machine) */
    CHECK_MS(ms, 1400, 5500, 1500);
    CHECK_CONTAINS(x.err.msg, "ended it after 2 HTTP requests");
    CHECK_CONTAINS(x.err.msg, "Tried: b (HTTP 429), b (ETIMEOUT).");
    CHECK_CONTAINS(x.err.msg, "that was what was left of the call's deadline (1500 ms, "
                              "models.routes.tight.deadline), less than the provider's timeout "
                              "of 60000 ms");
    CHECK(!strstr(x.err.msg, "retry after -1 ms")); /* no Retry-After was sent */
    REQUIRE(x.out.trail && x.out.trail->len == 2);
    const struct json_value *t = x.out.trail->u.items[1];
    CHECK_INT(json_get_int(t, "status", -1), 0);
    CHECK_STR(json_get_str(t, "code", ""), "ETIMEOUT");
    struct json_value *recs = records(&x.a);
    REQUIRE(recs->len == 2);
    CHECK(rec_time(recs, 1) - rec_time(recs, 0) >= 1000);
    arena_cleanup(&x.a);
}

TEST(http_deadline_no_fallback_starts_after_it)
{
    /* a takes all of the 1.5 s: b is never called. */
    struct model_gateway *g =
        scripted("{\"responses\": ["
                 "{\"when\": {\"model\": \"model-a\"}, \"delay_ms\": 5000, \"content\": \"late\","
                 " \"sticky\": true},"
                 "{\"when\": {\"model\": \"model-b\"}, \"content\": \"from b\", \"sticky\": true}]}");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, "tightchain");
    int64_t ms;
    CHECK_INT(timed_call(g, &x, "deadline chain", &ms), KEEL_ETIMEOUT);
    CHECK_MS(ms, 1400, 4900, 1500); /* a would answer at 5 s */
    CHECK_CONTAINS(x.err.msg, "ended it after 1 HTTP request");
    CHECK_CONTAINS(x.err.msg, "Tried: a (ETIMEOUT); not tried: b. Last error: provider flaky");
    CHECK_CONTAINS(x.err.msg, "raise models.routes.tightchain.deadline");
    CHECK_INT(x.out.attempts, 0); /* out untouched on failure but the trail */
    REQUIRE(x.out.trail && x.out.trail->len == 1);
    struct json_value *recs = records(&x.a);
    REQUIRE(recs->len == 1);
    CHECK_STR(json_get_str(rec_body(recs, 0), "model", ""), "model-a");

    /* A Retry-After past the deadline moves on to the fallback at once,
     * which answers in time. */
    REQUIRE(script("{\"responses\": ["
                   "{\"when\": {\"model\": \"model-a\"}, \"status\": 429, \"retry_after\": 5,"
                   " \"sticky\": true},"
                   "{\"when\": {\"model\": \"model-b\"}, \"content\": \"from b\"}]}"));
    struct model_response out2 = {0};
    int64_t t0 = keel_mono_ns();
    int rc = model_call(g, &x.r, &x.a, &out2, &x.err);
    if (rc) fprintf(stderr, "model_call: %s\n", x.err.msg);
    REQUIRE(rc == 0);
    CHECK((keel_mono_ns() - t0) / 1000000 < 4000); /* not the 5 s Retry-After */
    CHECK_STR(out2.model, "b");
    REQUIRE(out2.trail && out2.trail->len == 1);
    CHECK_CONTAINS(json_get_str(out2.trail->u.items[0], "error", ""),
                   "it asked to retry after 5000 ms, which would end past the call's deadline");
    CHECK_INT(records(&x.a)->len, 2);
    arena_cleanup(&x.a);
}

TEST(http_deadline_bounds_jittered_backoff)
{
    /* 503s everywhere under a 300 ms deadline: whatever the jitter draws,
     * no wait runs past 200 ms (300 less the 100 an attempt needs), and
     * the call ends soon after the deadline. */
    struct model_gateway *g =
        scripted("{\"responses\": [{\"status\": 503, \"sticky\": true}]}");
    REQUIRE(g);
    for (int round = 0; round < 3; round++) {
        struct exchange x;
        exchange_init(&x, "jitter");
        int64_t t0 = keel_mono_ns();
        int rc = exchange_call(g, &x, "jitter");
        int64_t ms = (keel_mono_ns() - t0) / 1000000;
        /* all 5 attempts can fit (EIO), or the deadline ends it first */
        CHECK(rc == KEEL_ETIMEOUT || rc == KEEL_EIO);
        if (rc == KEEL_ETIMEOUT) CHECK_CONTAINS(x.err.msg, "models.routes.jitter.deadline");
        CHECK(ms < 2500); /* 200 ms of waits at most, plus five local requests */
        REQUIRE(x.out.trail && x.out.trail->len >= 1);
        int64_t waited = 0;
        for (uint32_t i = 0; i < x.out.trail->len; i++) {
            int64_t w = json_get_int(x.out.trail->u.items[i], "wait_ms", -1);
            CHECK(w >= 0 && w <= 200);
            waited += w;
        }
        CHECK(waited <= 200);
        arena_cleanup(&x.a);
    }
}

TEST(http_deadline_of_a_provider)
{
    /* bnd is named directly: its provider's deadline (1 s) applies. */
    struct model_gateway *g =
        scripted("{\"responses\": [{\"delay_ms\": 4000, \"content\": \"late\"}]}");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, "bnd");
    int64_t ms;
    CHECK_INT(timed_call(g, &x, "provider deadline", &ms), KEEL_ETIMEOUT);
    CHECK_MS(ms, 900, 3900, 1000); /* the mock would answer at 4 s */
    CHECK_CONTAINS(x.err.msg, "its deadline (1000 ms, models.providers.bounded.deadline)");
    CHECK_CONTAINS(x.err.msg, "raise models.providers.bounded.deadline in keel.yaml");
    CHECK_INT(records(&x.a)->len, 1);
    arena_cleanup(&x.a);
}

static void *call_thread(void *arg)
{
    int *rc = arg;
    struct exchange x;
    exchange_init(&x, NULL);
    *rc = model_call(gw, &x.r, &x.a, &x.out, &x.err);
    if (*rc == 0 && strcmp(json_get_str(x.out.message, "content", ""), "same")) *rc = 1;
    arena_cleanup(&x.a);
    return NULL;
}

TEST(http_calls_from_many_threads)
{
    /* model_call is thread-safe once the gateway is built. */
    struct model_gateway *g =
        scripted("{\"responses\": [{\"content\": \"same\", \"sticky\": true}]}");
    REQUIRE(g);
    enum { N = 8 };
    pthread_t th[N];
    int rcs[N];
    for (int i = 0; i < N; i++) {
        rcs[i] = -100;
        REQUIRE(pthread_create(&th[i], NULL, call_thread, &rcs[i]) == 0);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) CHECK_INT(rcs[i], 0);
    struct arena a;
    arena_init(&a);
    CHECK_INT(records(&a)->len, N);
    arena_cleanup(&a);
}

/* ---- a raw HTTP server, for what the mock cannot do ----------------------- *
 * Serves one canned response per connection, in order, and keeps each
 * request's head (request line and headers) and arrival time.  "BIG" as a
 * response sends a 200 whose body is over the gateway's 16 MiB cap. */

#define RAW_MAX 4

struct raw_server {
    int fd;
    int port;
    pthread_t thread;
    const char *replies[RAW_MAX];
    size_t nreplies;
    char heads[RAW_MAX][4096];
    int64_t times_ms[RAW_MAX];
    size_t served;
};

static void raw_read_request(int c, char *head, size_t cap)
{
    char buf[65536];
    size_t len = 0;
    long want = -1;
    for (;;) {
        ssize_t n = recv(c, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0) break;
        len += (size_t)n;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (!end) continue;
        if (want < 0) {
            snprintf(head, cap, "%.*s", (int)(end - buf), buf);
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            want = (long)(end + 4 - buf) + (cl ? strtol(cl + 17, NULL, 10) : 0);
        }
        if ((long)len >= want || len >= sizeof buf - 1) break;
    }
}

static void *raw_serve(void *arg)
{
    struct raw_server *s = arg;
    for (size_t i = 0; i < s->nreplies; i++) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) break;
        raw_read_request(c, s->heads[i], sizeof s->heads[i]);
        s->times_ms[i] = keel_wall_ms();
        s->served = i + 1;
        if (!strcmp(s->replies[i], "BIG")) {
            size_t total = (size_t)17 << 20;
            char head[128];
            int n = snprintf(head, sizeof head,
                             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                             total);
            send(c, head, (size_t)n, MSG_NOSIGNAL);
            static char chunk[65536];
            memset(chunk, ' ', sizeof chunk);
            for (size_t sent = 0; sent < total; sent += sizeof chunk)
                if (send(c, chunk, sizeof chunk, MSG_NOSIGNAL) <= 0) break; /* client gave up */
        } else {
            /* "<status line and headers>\r\n\r\n<body>": Content-Length and
             * Connection are added here. */
            const char *r = s->replies[i], *end = strstr(r, "\r\n\r\n");
            size_t head_len = end ? (size_t)(end - r) : strlen(r);
            const char *body = end ? end + 4 : "";
            char extra[96];
            int n = snprintf(extra, sizeof extra,
                             "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                             strlen(body));
            send(c, r, head_len, MSG_NOSIGNAL);
            send(c, extra, (size_t)n, MSG_NOSIGNAL);
            send(c, body, strlen(body), MSG_NOSIGNAL);
        }
        close(c);
    }
    return NULL;
}

static bool raw_start(struct raw_server *s)
{
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(s->fd, 8) != 0 || getsockname(s->fd, (struct sockaddr *)&addr, &alen) != 0)
        return false;
    s->port = ntohs(addr.sin_port);
    return pthread_create(&s->thread, NULL, raw_serve, s) == 0;
}

static void raw_stop(struct raw_server *s)
{
    pthread_join(s->thread, NULL);
    close(s->fd);
}

/* A gateway with one model "m" of the given kind at the raw server. */
static struct model_gateway *raw_gateway(const struct raw_server *s, const char *kind,
                                         const char *extra)
{
    gateway(); /* makes the canary */
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"providers\": {\"raw\": {\"kind\": \"%s\", \"base_url\": "
             "\"http://127.0.0.1:%d/v1\", \"api_key\": {\"env\": \"KEEL_TEST_CANARY_KEY\"}%s}},"
             " \"models\": {\"m\": {\"provider\": \"raw\", \"model\": \"raw-1\"}}}",
             kind, s->port, extra);
    struct arena a;
    arena_init(&a);
    struct model_gateway *g = NULL;
    struct keel_err err;
    if (model_gateway_new(test_parse(&a, cfg), "keel.yaml", ".", &g, &err) != 0)
        fprintf(stderr, "raw gateway refused: %s\n", err.msg);
    arena_cleanup(&a);
    return g;
}

static const char openai_ok[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
    "{\"choices\": [{\"message\": {\"content\": \"raw ok\"}, \"finish_reason\": \"stop\"}]}";

TEST(raw_headers_sent_and_retry_after_ms_wins)
{
    struct raw_server s = {.nreplies = 2,
                           .replies = {"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 30\r\n"
                                       "retry-after-ms: 300\r\n\r\n{}",
                                       openai_ok}};
    REQUIRE(raw_start(&s));
    struct model_gateway *g =
        raw_gateway(&s, "openai", ", \"max_retry_wait\": \"1s\", \"headers\": {\"X-Org\": \"acme\"}");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, NULL);
    int rc = exchange_call(g, &x, "raw 429");
    raw_stop(&s);
    if (rc) fprintf(stderr, "model_call: %s\n", x.err.msg);
    CHECK_INT(rc, 0);
    CHECK_STR(json_get_str(x.out.message, "content", ""), "raw ok");
    REQUIRE(x.out.trail && x.out.trail->len == 1);
    CHECK_INT(json_get_int(x.out.trail->u.items[0], "retry_after_ms", 0), 300);
    CHECK(s.times_ms[1] - s.times_ms[0] >= 300);
    char bearer[128];
    snprintf(bearer, sizeof bearer, "Authorization: Bearer %s\r\n", canary);
    CHECK_CONTAINS(s.heads[0], "POST /v1/chat/completions HTTP/1.1\r\n");
    CHECK_CONTAINS(s.heads[0], bearer);
    CHECK_CONTAINS(s.heads[0], "X-Org: acme\r\n");
    CHECK_CONTAINS(s.heads[0], "Content-Type: application/json\r\n");
    CHECK(!strcasestr(s.heads[0], "Expect:"));
    /* The key appears once, in its header, and nowhere else in the head. */
    const char *k = strstr(s.heads[1], canary);
    CHECK(k && !strstr(k + 1, canary));
    model_gateway_free(g);
    arena_cleanup(&x.a);
}

TEST(raw_retry_after_http_date)
{
    char date[64], reply[256];
    time_t when = (time_t)(keel_wall_ms() / 1000) + 2;
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(reply, sizeof reply,
             "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %s\r\n\r\n",
             date);
    struct raw_server s = {.nreplies = 2, .replies = {reply, openai_ok}};
    REQUIRE(raw_start(&s));
    struct model_gateway *g = raw_gateway(&s, "openai", "");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, NULL);
    int rc = model_call(g, &x.r, &x.a, &x.out, &x.err);
    raw_stop(&s);
    CHECK_INT(rc, 0);
    REQUIRE(x.out.trail && x.out.trail->len == 1);
    int64_t ra = json_get_int(x.out.trail->u.items[0], "retry_after_ms", -1);
    CHECK(ra > 0 && ra <= 2000);
    CHECK(s.times_ms[1] - s.times_ms[0] >= ra);
    CHECK_CONTAINS(json_get_str(x.out.trail->u.items[0], "error", ""), "(empty body)");
    model_gateway_free(g);
    arena_cleanup(&x.a);
}

TEST(raw_limit_field_refused_by_an_older_server)
{
    /* A server that predates max_completion_tokens refuses it: the error
     * says to switch back to max_tokens.  A 400 about the limit's value
     * names a field too, but is no refusal of it: no advice. */
    struct raw_server s = {
        .nreplies = 2,
        .replies = {"HTTP/1.1 400 Bad Request\r\n\r\n{\"error\": {\"message\": \"Unrecognized "
                    "request argument supplied: max_completion_tokens\"}}",
                    "HTTP/1.1 400 Bad Request\r\n\r\n{\"error\": {\"message\": \"max_tokens is "
                    "too large: 9000. This model supports at most 4096 completion tokens\"}}"}};
    REQUIRE(raw_start(&s));
    struct model_gateway *g =
        raw_gateway(&s, "openai", ", \"max_tokens_field\": \"max_completion_tokens\"");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, NULL);
    x.r.max_output_tokens = 9000;
    struct model_response out2 = {0};
    int rc1 = exchange_call(g, &x, "older server");
    char first[KEEL_ERR_MSG_MAX];
    snprintf(first, sizeof first, "%s", x.err.msg);
    int rc2 = model_call(g, &x.r, &x.a, &out2, &x.err);
    raw_stop(&s);
    CHECK_INT(rc1, KEEL_EIO);
    CHECK_CONTAINS(first, "Keel sent the output limit as max_completion_tokens: if model m takes "
                          "max_tokens, set max_tokens_field: max_tokens on models.models.m");
    CHECK_INT(rc2, KEEL_EIO);
    CHECK_CONTAINS(x.err.msg, "max_tokens is too large");
    CHECK(!strstr(x.err.msg, "max_tokens_field"));
    CHECK_CONTAINS(s.heads[0], "POST /v1/chat/completions");
    model_gateway_free(g);
    arena_cleanup(&x.a);
}

TEST(raw_anthropic_headers)
{
    static const char ok[] =
        "HTTP/1.1 200 OK\r\n\r\n"
        "{\"content\": [{\"type\": \"text\", \"text\": \"hey\"}], \"usage\": {}}";
    struct raw_server s = {.nreplies = 2, .replies = {ok, ok}};
    REQUIRE(raw_start(&s));
    struct model_gateway *g = raw_gateway(&s, "anthropic", "");
    struct model_gateway *g2 =
        raw_gateway(&s, "anthropic", ", \"headers\": {\"anthropic-version\": \"2024-01-01\"}");
    REQUIRE(g && g2);
    struct exchange x;
    exchange_init(&x, NULL);
    struct model_response out2 = {0};
    int rc1 = model_call(g, &x.r, &x.a, &x.out, &x.err);
    int rc2 = model_call(g2, &x.r, &x.a, &out2, &x.err);
    raw_stop(&s);
    CHECK_INT(rc1, 0);
    CHECK_INT(rc2, 0);
    CHECK_STR(json_get_str(x.out.message, "content", ""), "hey");
    /* No usage in the reply: estimated, never zero for a non-empty exchange. */
    CHECK(x.out.input_tokens > 0 && x.out.output_tokens > 0);
    char key[128];
    snprintf(key, sizeof key, "x-api-key: %s\r\n", canary);
    CHECK_CONTAINS(s.heads[0], "POST /v1/messages HTTP/1.1\r\n");
    CHECK_CONTAINS(s.heads[0], key);
    CHECK_CONTAINS(s.heads[0], "anthropic-version: 2023-06-01\r\n");
    CHECK(!strcasestr(s.heads[0], "Authorization:"));
    CHECK_CONTAINS(s.heads[1], "anthropic-version: 2024-01-01\r\n");
    CHECK(!strstr(s.heads[1], "2023-06-01"));
    model_gateway_free(g);
    model_gateway_free(g2);
    arena_cleanup(&x.a);
}

TEST(raw_reply_over_the_cap_is_elimit)
{
    struct raw_server s = {.nreplies = 1, .replies = {"BIG"}};
    REQUIRE(raw_start(&s));
    struct model_gateway *g = raw_gateway(&s, "openai", "");
    REQUIRE(g);
    struct exchange x;
    exchange_init(&x, NULL);
    CHECK_INT(model_call(g, &x.r, &x.a, &x.out, &x.err), KEEL_ELIMIT);
    raw_stop(&s);
    CHECK_CONTAINS(x.err.msg, "over 16 MiB");
    CHECK_INT(s.served, 1); /* not retried */
    model_gateway_free(g);
    arena_cleanup(&x.a);
}

TEST(raw_provider_without_a_key_sends_no_auth_header)
{
    struct raw_server s = {.nreplies = 2,
                           .replies = {openai_ok, "HTTP/1.1 401 Unauthorized\r\n\r\n{}"}};
    REQUIRE(raw_start(&s));
    char cfg[512];
    snprintf(cfg, sizeof cfg,
             "{\"providers\": {\"open\": {\"kind\": \"openai\", \"base_url\": "
             "\"http://127.0.0.1:%d\"}}, \"models\": {\"m\": {\"provider\": \"open\", "
             "\"model\": \"x\"}}}",
             s.port);
    struct arena a;
    arena_init(&a);
    struct model_gateway *g = NULL;
    struct keel_err err;
    REQUIRE(model_gateway_new(test_parse(&a, cfg), "keel.yaml", ".", &g, &err) == 0);
    struct model_request r = {.messages =
                                  test_parse(&a, "[{\"role\": \"user\", \"content\": \"hi\"}]")};
    struct model_response out = {0}, out2 = {0};
    int rc1 = model_call(g, &r, &a, &out, &err);
    int rc2 = model_call(g, &r, &a, &out2, &err);
    raw_stop(&s);
    CHECK_INT(rc1, 0);
    CHECK_CONTAINS(s.heads[0], "POST /chat/completions HTTP/1.1\r\n");
    CHECK(!strcasestr(s.heads[0], "Authorization:"));
    CHECK(!strcasestr(s.heads[0], "x-api-key:"));
    CHECK_INT(rc2, KEEL_EDENIED);
    CHECK_CONTAINS(err.msg, "keel.yaml gives it no key; add models.providers.open.api_key");
    model_gateway_free(g);
    arena_cleanup(&a);
}
