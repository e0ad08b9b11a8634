/*
 * test_model.c — the model gateway without the network: the keel.yaml
 * "models:" section (good and bad, with positions), routing, cost, token
 * estimates, and both providers' wire formats (request bodies built from
 * neutral conversations, replies read back), with fixtures inline.
 * Real HTTP against the mock model server is in test_model_http.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/internal.h"
#include "model/model.h"
#include "test.h"

/* ---- helpers ------------------------------------------------------------- */

static struct json_value *parse(struct arena *a, const char *text)
{
    struct json_value *v = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    struct json_parse_opts o = {.file = "keel.yaml"};
    if (json_parse(a, text, strlen(text), &o, &v, &err) != 0) {
        fprintf(stderr, "fixture does not parse: %s (line %d col %d)\n%s\n", err.msg, err.line,
                err.column, text);
        abort();
    }
    return v;
}

static int load(const char *json, const char *dir, struct model_gateway **g, struct keel_err *err)
{
    struct arena a;
    arena_init(&a);
    keel_err_clear(err);
    int rc = model_gateway_new(json ? parse(&a, json) : NULL, "keel.yaml", dir, g, err);
    arena_cleanup(&a); /* the gateway keeps nothing of the parsed value */
    return rc;
}

/* Checks that got equals the JSON text want (by value, member order aside). */
#define CHECK_JSON(got, want)                                                                      \
    do {                                                                                           \
        struct arena ja_;                                                                          \
        arena_init(&ja_);                                                                          \
        struct json_value *w_ = parse(&ja_, want);                                                 \
        if (!json_equal((got), w_)) {                                                          \
            struct buf gb_;                                                                        \
            buf_init(&gb_);                                                                        \
            json_write(&gb_, (got), JSON_WRITE_CANONICAL, NULL);                                   \
            TEST_FAIL_AT(__FILE__, __LINE__, "JSON differs:\n got  %s\n want %s", gb_.data, want);  \
            buf_cleanup(&gb_);                                                                     \
        }                                                                                          \
        arena_cleanup(&ja_);                                                                       \
    } while (0)

static const char full_config[] =
    "{\n"
    "  \"providers\": {\n"
    "    \"local\": {\"kind\": \"openai\", \"base_url\": \"http://127.0.0.1:9100/v1/\",\n"
    "              \"api_key\": {\"env\": \"KEEL_TEST_MODEL_KEY\"}, \"timeout\": \"20s\",\n"
    "              \"retries\": 3, \"max_retry_wait\": \"30s\", \"headers\": {\"X-Org\": \"acme\"}},\n"
    "    \"claude\": {\"kind\": \"anthropic\", \"base_url\": \"https://api.anthropic.com/v1\",\n"
    "               \"api_key\": {\"env\": \"KEEL_TEST_MODEL_KEY\"}}\n"
    "  },\n"
    "  \"models\": {\n"
    "    \"small\": {\"provider\": \"local\", \"model\": \"gpt-4o-mini\", \"context\": 16000,\n"
    "              \"max_output\": 1024, \"price\": {\"input\": 0.15, \"output\": 0.60}},\n"
    "    \"large\": {\"provider\": \"claude\", \"model\": \"claude-sonnet\", \"context\": 200000,\n"
    "              \"price\": {\"input\": 3, \"output\": 15}},\n"
    "    \"spare\": {\"provider\": \"local\", \"model\": \"spare-1\"}\n"
    "  },\n"
    "  \"routes\": {\n"
    "    \"default\": {\n"
    "      \"rules\": [\n"
    "        {\"tag\": \"triage\", \"model\": \"small\"},\n"
    "        {\"agent\": \"support/drafter\", \"model\": \"large\"},\n"
    "        {\"min_prompt_tokens\": 4000, \"model\": \"large\"},\n"
    "        {\"min_tools\": 5, \"model\": \"large\"},\n"
    "        {\"tag\": \"both\", \"min_tools\": 1, \"model\": \"spare\"}\n"
    "      ],\n"
    "      \"model\": \"small\",\n"
    "      \"fallback\": [\"large\", \"small\", \"spare\", \"large\"]\n"
    "    },\n"
    "    \"cheap\": {\"model\": \"spare\"}\n"
    "  }\n"
    "}\n";

static struct model_gateway *full_gateway(void)
{
    setenv("KEEL_TEST_MODEL_KEY", "sk-test-0123456789", 1);
    struct model_gateway *g = NULL;
    struct keel_err err;
    if (load(full_config, "/tmp", &g, &err) != 0) {
        fprintf(stderr, "full config refused: %s at %s line %d\n", err.msg, err.path, err.line);
        return NULL;
    }
    return g;
}

/* ---- configuration --------------------------------------------------------- */

TEST(config_full_example_loads)
{
    struct model_gateway *g = full_gateway();
    REQUIRE(g);
    CHECK(model_gateway_has(g, "small"));
    CHECK(model_gateway_has(g, "large"));
    CHECK(model_gateway_has(g, "default"));
    CHECK(model_gateway_has(g, "cheap"));
    CHECK(!model_gateway_has(g, "gpt-4o-mini")); /* the provider's id is not a declared name */
    CHECK_INT(model_context_tokens(g, "small"), 16000);
    CHECK_INT(model_context_tokens(g, "spare"), MODEL_DEFAULT_CONTEXT);
    CHECK_INT(model_context_tokens(g, "nope"), 0);
    const struct model_def *small = model_find(g, "small");
    REQUIRE(small);
    CHECK_STR(small->provider->url, "http://127.0.0.1:9100/v1/chat/completions");
    CHECK_INT(small->provider->timeout_ms, 20000);
    CHECK_INT(small->provider->retries, 3);
    CHECK_INT(small->provider->nheaders, 1);
    CHECK_STR(small->provider->headers[0], "X-Org: acme");
    CHECK_STR(small->provider->key, "sk-test-0123456789");
    const struct model_def *large = model_find(g, "large");
    CHECK_STR(large->provider->url, "https://api.anthropic.com/v1/messages");
    CHECK_INT(large->provider->retries, 2); /* the default */
    CHECK_INT(large->provider->max_retry_wait_ms, 30000);
    CHECK_INT(large->max_output, 0);
    model_gateway_free(g);
}

TEST(config_null_section_is_an_empty_gateway)
{
    struct model_gateway *g = NULL;
    struct keel_err err;
    REQUIRE(load(NULL, ".", &g, &err) == 0);
    CHECK(!model_gateway_has(g, "default"));
    struct arena a;
    arena_init(&a);
    struct model_request r = {.messages = parse(&a, "[{\"role\":\"user\",\"content\":\"hi\"}]")};
    struct model_response out = {0};
    CHECK_INT(model_call(g, &r, &a, &out, &err), KEEL_ENOENT);
    CHECK_CONTAINS(err.msg, "no models are declared");
    arena_cleanup(&a);
    model_gateway_free(g);
    model_gateway_free(NULL);
}

static const char base_provider[] =
    "\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h/v1\"}}";

struct bad_case {
    const char *json;
    const char *path;
    const char *msg;
};

static const struct bad_case bad_cases[] = {
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h\", \"api_key\": "
     "\"sk-inline-secret\"}}}",
     "/models/providers/local/api_key", "use api_key: {env: NAME}"},
    {"{\"providers\": {\"local\": {\"kind\": \"cohere\", \"base_url\": \"http://h\"}}}",
     "/models/providers/local/kind", "unknown provider kind 'cohere'; expected one of: openai, "
                                     "anthropic"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\"}}}", "/models/providers/local",
     "needs base_url"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"ftp://h\"}}}",
     "/models/providers/local/base_url", "http:// or https://"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h\", \"colour\": "
     "1}}}",
     "/models/providers/local/colour", "unknown field 'colour' in a provider"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h\", "
     "\"timeout\": \"soon\"}}}",
     "/models/providers/local/timeout", "duration like"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h\", "
     "\"retries\": 11}}}",
     "/models/providers/local/retries", "from 0 to 10"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h\", "
     "\"headers\": {\"Authorization\": \"Bearer x\"}}}}",
     "/models/providers/local/headers/Authorization", "carries a credential"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h\", "
     "\"api_key\": {\"env\": \"KEEL_TEST_SURELY_UNSET_VAR\"}}}}",
     "/models/providers/local/api_key/env", "KEEL_TEST_SURELY_UNSET_VAR"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h\", "
     "\"api_key\": {\"file\": \"no/such/key\"}}}}",
     "/models/providers/local/api_key/file", "cannot read the API key file /tmp/no/such/key"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h\", "
     "\"api_key\": {\"vault\": \"x\"}}}}",
     "/models/providers/local/api_key/vault", "unknown field 'vault'"},
    {"{\"providers\": {\"bad name\": {\"kind\": \"openai\", \"base_url\": \"http://h\"}}}",
     "/models/providers/bad name", "letters, digits"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"remote\", \"model\": \"m\"}}}",
     "/models/models/small/provider", "provider 'remote', which is not declared"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\"}}}", "/models/models/small",
     "needs model:"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\", \"model\": \"m\", \"colour\": 1}}}",
     "/models/models/small/colour", "unknown field 'colour' in a model"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\", \"model\": \"m\", \"context\": "
     "-5}}}",
     "/models/models/small/context", "integer from 1"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\", \"model\": \"m\", \"price\": "
     "{\"input\": 1}}}}",
     "/models/models/small/price", "needs output"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\", \"model\": \"m\"}}, \"routes\": "
     "{\"default\": {\"model\": \"large\"}}}",
     "/models/routes/default/model", "'large' is not a model declared under models.models "
                                     "(declared: small)"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\", \"model\": \"m\"}}, \"routes\": "
     "{\"default\": {\"model\": \"small\", \"rules\": [{\"tag\": \"a\", \"model\": \"small\"}, "
     "{\"tag\": \"b\", \"model\": \"large\"}]}}}",
     "/models/routes/default/rules/1/model", "'large' is not a model"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\", \"model\": \"m\"}}, \"routes\": "
     "{\"default\": {\"model\": \"small\", \"rules\": [{\"model\": \"small\"}]}}}",
     "/models/routes/default/rules/0", "at least one condition"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\", \"model\": \"m\"}}, \"routes\": "
     "{\"default\": {\"model\": \"small\", \"rules\": [{\"tags\": \"x\", \"model\": \"small\"}]}}}",
     "/models/routes/default/rules/0/tags", "unknown field 'tags' in a rule"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\", \"model\": \"m\"}}, \"routes\": "
     "{\"default\": {\"model\": \"small\", \"fallback\": [\"small\", \"huge\"]}}}",
     "/models/routes/default/fallback/1", "'huge' is not a model"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\", \"model\": \"m\"}}, \"routes\": "
     "{\"small\": {\"model\": \"small\"}}}",
     "/models/routes/small", "has the name of a declared model"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\", \"model\": \"m\"}}, \"routes\": "
     "{\"default\": {\"rules\": []}}}",
     "/models/routes/default", "needs model:"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h\", "
     "\"max_tokens_field\": \"max_output_tokens\"}}}",
     "/models/providers/local/max_tokens_field",
     "max_tokens_field must be max_tokens or max_completion_tokens: OpenAI's own API wants"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h\", "
     "\"max_tokens_field\": 1}}}",
     "/models/providers/local/max_tokens_field", "must be max_tokens or max_completion_tokens"},
    {"{\"providers\": {\"c\": {\"kind\": \"anthropic\", \"base_url\": \"http://h\", "
     "\"max_tokens_field\": \"max_completion_tokens\"}}}",
     "/models/providers/c/max_tokens_field",
     "must be max_tokens for provider c (kind: anthropic takes no other)"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\", \"model\": \"m\", "
     "\"max_tokens_field\": \"max_new_tokens\"}}}",
     "/models/models/small/max_tokens_field", "must be max_tokens or max_completion_tokens"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h\", "
     "\"deadline\": \"soon\"}}}",
     "/models/providers/local/deadline", "deadline must be a duration like"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h\", "
     "\"deadline\": \"50ms\"}}}",
     "/models/providers/local/deadline", "deadline must be at least 100 ms"},
    {"{\"providers\": {\"local\": {\"kind\": \"openai\", \"base_url\": \"http://h\", "
     "\"deadline\": \"25h\"}}}",
     "/models/providers/local/deadline", "(at most 86400 s)"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\", \"model\": \"m\"}}, \"routes\": "
     "{\"default\": {\"model\": \"small\", \"deadline\": 120}}}",
     "/models/routes/default/deadline", "deadline must be a duration like 500ms, 30s or 2m"},
    {"{%P, \"models\": {\"small\": {\"provider\": \"local\", \"model\": \"m\", "
     "\"deadline\": \"2m\"}}}",
     "/models/models/small/deadline", "unknown field 'deadline' in a model"},
    {"{%P, \"engines\": {}}", "/models/engines", "unknown field 'engines' in models"},
    {"[1]", "/models", "must be a mapping"},
};

TEST(config_errors_are_positioned)
{
    setenv("KEEL_TEST_EMPTY_KEY", "", 1);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        /* %P stands for a valid providers member, to keep the table short. */
        char json[2048];
        const char *at = strstr(c->json, "%P");
        if (at)
            snprintf(json, sizeof json, "%.*s%s%s", (int)(at - c->json), c->json, base_provider,
                     at + 2);
        else
            snprintf(json, sizeof json, "%s", c->json);
        struct model_gateway *g = NULL;
        struct keel_err err;
        int rc = load(json, "/tmp", &g, &err);
        if (rc != KEEL_EINVAL) {
            TEST_FAIL_AT(__FILE__, __LINE__, "case %zu: rc %d, expected EINVAL", i, rc);
            model_gateway_free(g);
            continue;
        }
        CHECK(g == NULL);
        if (strcmp(err.path, c->path))
            TEST_FAIL_AT(__FILE__, __LINE__, "case %zu: path %s, expected %s (%s)", i, err.path,
                         c->path, err.msg);
        if (!strstr(err.msg, c->msg))
            TEST_FAIL_AT(__FILE__, __LINE__, "case %zu: message \"%s\" lacks \"%s\"", i, err.msg,
                         c->msg);
        CHECK_STR(err.file, "keel.yaml");
        CHECK(err.line == 1 && err.column >= 1);
        /* An inline key is never repeated back. */
        CHECK(!strstr(err.msg, "sk-inline-secret"));
    }
}

TEST(config_error_line_and_column)
{
    /* The rule's model value sits on line 6, column 31 of this text. */
    const char *json = "{\n"
                       "  \"providers\": {\"p\": {\"kind\": \"openai\", \"base_url\": \"http://h\"}},\n"
                       "  \"models\": {\"m\": {\"provider\": \"p\", \"model\": \"x\"}},\n"
                       "  \"routes\": {\"default\": {\"model\": \"m\", \"rules\": [\n"
                       "    {\"tag\": \"a\", \"model\": \"m\"},\n"
                       "    {\"min_tools\": 2, \"model\": \"ghost\"}]}}\n"
                       "}\n";
    struct model_gateway *g = NULL;
    struct keel_err err;
    CHECK_INT(load(json, ".", &g, &err), KEEL_EINVAL);
    CHECK_STR(err.path, "/models/routes/default/rules/1/model");
    CHECK_INT(err.line, 6);
    CHECK_INT(err.column, 31);
    char text[2048];
    keel_err_format(&err, text, sizeof text);
    CHECK_CONTAINS(text, "keel.yaml:6:31");
}

/* Replaces the file at path with text; false if it cannot be written. */
static bool write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return false;
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

TEST(config_key_from_file_strips_the_newline)
{
    char dir[] = "/tmp/keel-test-model-XXXXXX";
    REQUIRE(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/model.key", dir);
    REQUIRE(write_text(path, "sk-from-file-42\r\n"));
    const char *json = "{\"providers\": {\"p\": {\"kind\": \"anthropic\", \"base_url\": "
                       "\"http://h\", \"api_key\": {\"file\": \"model.key\"}}}}";
    struct model_gateway *g = NULL;
    struct keel_err err;
    REQUIRE(load(json, dir, &g, &err) == 0);
    CHECK_STR(g->providers[0].key, "sk-from-file-42");
    CHECK_INT(g->providers[0].key_len, 15);
    model_gateway_free(g);

    /* A key with a line break inside is refused without quoting it. */
    REQUIRE(write_text(path, "sk-part-one\nsk-part-two\n"));
    CHECK_INT(load(json, dir, &g, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "line break");
    CHECK(!strstr(err.msg, "sk-part"));
    /* An empty file too. */
    REQUIRE(write_text(path, "\n"));
    CHECK_INT(load(json, dir, &g, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "is empty");
    unlink(path);
    rmdir(dir);

    /* An empty environment variable is refused like an unset one. */
    setenv("KEEL_TEST_EMPTY_KEY", "", 1);
    CHECK_INT(load("{\"providers\": {\"p\": {\"kind\": \"openai\", \"base_url\": \"http://h\", "
                   "\"api_key\": {\"env\": \"KEEL_TEST_EMPTY_KEY\"}}}}",
                   ".", &g, &err),
              KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "not set or empty");
}

TEST(config_max_tokens_field_defaults_by_host)
{
    /* OpenAI's own host gets max_completion_tokens (its newer models refuse
     * max_tokens); any other OpenAI-compatible server gets max_tokens (what
     * vLLM, llama.cpp, Ollama and LiteLLM read); a model may override its
     * provider. */
    struct {
        const char *url, *field;
    } hosts[] = {
        {"https://api.openai.com/v1", "max_completion_tokens"},
        {"https://API.OpenAI.com:443/v1/", "max_completion_tokens"},
        {"https://user@api.openai.com/v1", "max_completion_tokens"},
        {"http://127.0.0.1:8000/v1", "max_tokens"},
        {"https://api.openai.com.example.net/v1", "max_tokens"},
        {"https://example.net/api.openai.com/v1", "max_tokens"},
        {"https://my-litellm.internal:4000", "max_tokens"},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(hosts); i++) {
        char json[512];
        snprintf(json, sizeof json,
                 "{\"providers\": {\"p\": {\"kind\": \"openai\", \"base_url\": \"%s\"}}, "
                 "\"models\": {\"m\": {\"provider\": \"p\", \"model\": \"x\"}}}",
                 hosts[i].url);
        struct model_gateway *g = NULL;
        struct keel_err err;
        REQUIRE(load(json, ".", &g, &err) == 0);
        if (strcmp(g->providers[0].max_tokens_field, hosts[i].field))
            TEST_FAIL_AT(__FILE__, __LINE__, "%s: %s, expected %s", hosts[i].url,
                         g->providers[0].max_tokens_field, hosts[i].field);
        CHECK_STR(model_find(g, "m")->max_tokens_field, hosts[i].field);
        model_gateway_free(g);
    }
    const char *json =
        "{\"providers\": {"
        "  \"oai\": {\"kind\": \"openai\", \"base_url\": \"https://api.openai.com/v1\","
        "          \"max_tokens_field\": \"max_tokens\"},"
        "  \"proxy\": {\"kind\": \"openai\", \"base_url\": \"http://litellm:4000\"},"
        "  \"claude\": {\"kind\": \"anthropic\", \"base_url\": \"http://h\","
        "             \"max_tokens_field\": \"max_tokens\"}},"
        " \"models\": {"
        "  \"old\": {\"provider\": \"oai\", \"model\": \"gpt-4o-mini\"},"
        "  \"o3\": {\"provider\": \"proxy\", \"model\": \"o3\", "
        "          \"max_tokens_field\": \"max_completion_tokens\"},"
        "  \"llama\": {\"provider\": \"proxy\", \"model\": \"llama-3\"},"
        "  \"sonnet\": {\"provider\": \"claude\", \"model\": \"s\"}}}";
    struct model_gateway *g = NULL;
    struct keel_err err;
    REQUIRE(load(json, ".", &g, &err) == 0);
    CHECK_STR(model_find(g, "old")->max_tokens_field, "max_tokens");
    CHECK_STR(model_find(g, "o3")->max_tokens_field, "max_completion_tokens");
    CHECK_STR(model_find(g, "llama")->max_tokens_field, "max_tokens");
    CHECK_STR(model_find(g, "sonnet")->max_tokens_field, "max_tokens");
    model_gateway_free(g);
}

TEST(route_deadline_from_route_provider_or_default)
{
    const char *json =
        "{\"providers\": {"
        "  \"slowp\": {\"kind\": \"openai\", \"base_url\": \"http://h\", \"deadline\": \"10m\"},"
        "  \"plain\": {\"kind\": \"openai\", \"base_url\": \"http://h\"}},"
        " \"models\": {"
        "  \"thinker\": {\"provider\": \"slowp\", \"model\": \"o3\"},"
        "  \"quick\": {\"provider\": \"plain\", \"model\": \"q\"}},"
        " \"routes\": {"
        "  \"default\": {\"model\": \"quick\", \"fallback\": [\"thinker\"], \"deadline\": \"90s\"},"
        "  \"deep\": {\"model\": \"thinker\"},"
        "  \"casual\": {\"model\": \"quick\", \"deadline\": \"1500ms\"},"
        "  \"loose\": {\"model\": \"quick\", \"fallback\": \"thinker\"}}}";
    struct model_gateway *g = NULL;
    struct keel_err err;
    REQUIRE(load(json, ".", &g, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct {
        const char *route;
        int64_t ms;
        const char *ref; /* NULL: the default */
    } cases[] = {
        {NULL, 90000, "models.routes.default.deadline"},
        {"casual", 1500, "models.routes.casual.deadline"},
        {"deep", 600000, "models.providers.slowp.deadline"},   /* the route sets none */
        {"loose", MODEL_DEFAULT_DEADLINE_MS, NULL},            /* the chosen model's provider
                                                                  decides, not a fallback's */
        {"thinker", 600000, "models.providers.slowp.deadline"}, /* a model named directly */
        {"quick", MODEL_DEFAULT_DEADLINE_MS, NULL},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct model_request r = {.route = cases[i].route, .messages = parse(&a, "[]")};
        struct model_route_choice c;
        REQUIRE(model_route(g, &r, &c, &err) == 0);
        if (c.deadline_ms != cases[i].ms ||
            (cases[i].ref ? !c.deadline_ref || strcmp(c.deadline_ref, cases[i].ref)
                          : c.deadline_ref != NULL))
            TEST_FAIL_AT(__FILE__, __LINE__, "case %zu: %lld ms from %s", i,
                         (long long)c.deadline_ms, c.deadline_ref ? c.deadline_ref : "(default)");
    }
    CHECK_INT(MODEL_DEFAULT_DEADLINE_MS, 300000);
    arena_cleanup(&a);
    model_gateway_free(g);
}

/* ---- routing, cost, estimates ---------------------------------------------- */

TEST(route_rules_first_match_wins)
{
    struct model_gateway *g = full_gateway();
    REQUIRE(g);
    struct arena a;
    arena_init(&a);
    struct json_value *few = parse(&a, "[{\"role\":\"user\",\"content\":\"short\"}]");
    struct json_value *tools5 = parse(&a, "[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"},"
                                          "{\"name\":\"d\"},{\"name\":\"e\"}]");
    struct json_value *tools1 = parse(&a, "[{\"name\":\"a\"}]");
    /* A long prompt: 20000 bytes of content is about 5000 tokens. */
    static const char head[] = "[{\"role\":\"user\",\"content\":\"";
    char *big = malloc(20100);
    REQUIRE(big);
    memcpy(big, head, strlen(head));
    memset(big + strlen(head), 'x', 20000);
    memcpy(big + strlen(head) + 20000, "\"}]", 4);
    struct json_value *many = parse(&a, big);
    free(big);

    struct {
        const char *tag, *agent;
        struct json_value *messages, *tools;
        const char *model, *rule;
    } cases[] = {
        {"triage", "support/drafter", many, tools5, "small", "tag=triage"},
        {NULL, "support/drafter", few, NULL, "large", "agent=support/drafter"},
        {NULL, "support/other", many, NULL, "large", "prompt_tokens>=4000"},
        {NULL, NULL, few, tools5, "large", "tools>=5"},
        {"both", NULL, few, tools1, "spare", "tag=both,tools>=1"},
        {"both", NULL, few, NULL, "small", "default"}, /* min_tools 1 fails */
        {NULL, NULL, few, NULL, "small", "default"},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct model_request r = {.tag = cases[i].tag,
                                  .agent = cases[i].agent,
                                  .messages = cases[i].messages,
                                  .tools = cases[i].tools};
        struct model_route_choice c;
        struct keel_err err;
        REQUIRE(model_route(g, &r, &c, &err) == 0);
        if (strcmp(c.model, cases[i].model) || strcmp(c.rule, cases[i].rule))
            TEST_FAIL_AT(__FILE__, __LINE__, "case %zu: %s by %s, expected %s by %s", i, c.model,
                         c.rule, cases[i].model, cases[i].rule);
        /* fallback [large, small, spare, large] minus the chosen model, no repeats */
        size_t n = 0;
        while (c.fallbacks[n]) {
            CHECK(strcmp(c.fallbacks[n], c.model) != 0);
            n++;
        }
        CHECK_INT(n, 2);
    }
    struct model_route_choice c;
    struct keel_err err;
    struct model_request r = {.tag = "triage", .messages = few};
    REQUIRE(model_route(g, &r, &c, &err) == 0);
    CHECK_STR(c.fallbacks[0], "large");
    CHECK_STR(c.fallbacks[1], "spare");
    CHECK(c.fallbacks[2] == NULL);

    /* A model named directly: no rules, no fallbacks. */
    r = (struct model_request){.route = "large", .tag = "triage", .messages = few};
    REQUIRE(model_route(g, &r, &c, &err) == 0);
    CHECK_STR(c.model, "large");
    CHECK_STR(c.rule, "model");
    CHECK(c.fallbacks[0] == NULL);
    /* Another route by name. */
    r.route = "cheap";
    REQUIRE(model_route(g, &r, &c, &err) == 0);
    CHECK_STR(c.model, "spare");
    CHECK_STR(c.rule, "default");
    /* fallback may be one name instead of a list. */
    struct model_gateway *g1 = NULL;
    REQUIRE(load("{\"providers\": {\"p\": {\"kind\": \"openai\", \"base_url\": \"http://h\"}}, "
                 "\"models\": {\"a\": {\"provider\": \"p\", \"model\": \"x\"}, "
                 "\"b\": {\"provider\": \"p\", \"model\": \"y\"}}, "
                 "\"routes\": {\"default\": {\"model\": \"a\", \"fallback\": \"b\"}}}",
                 ".", &g1, &err) == 0);
    struct model_request r1 = {.messages = few};
    REQUIRE(model_route(g1, &r1, &c, &err) == 0);
    CHECK_STR(c.model, "a");
    CHECK_STR(c.fallbacks[0], "b");
    CHECK(c.fallbacks[1] == NULL);
    model_gateway_free(g1);
    /* Unknown names list what exists. */
    r.route = "gpt-5";
    CHECK_INT(model_route(g, &r, &c, &err), KEEL_ENOENT);
    CHECK_CONTAINS(err.msg, "'gpt-5' is neither a route nor a model");
    CHECK_CONTAINS(err.msg, "routes: default, cheap");
    CHECK_CONTAINS(err.msg, "models: small, large, spare");
    arena_cleanup(&a);
    model_gateway_free(g);
}

TEST(route_without_default)
{
    struct model_gateway *g = NULL;
    struct keel_err err;
    struct arena a;
    arena_init(&a);
    struct model_request r = {.messages = parse(&a, "[]")};
    struct model_route_choice c;
    REQUIRE(load("{\"providers\": {\"p\": {\"kind\": \"openai\", \"base_url\": \"http://h\"}}, "
                  "\"models\": {\"only\": {\"provider\": \"p\", \"model\": \"x\"}}}",
                  ".", &g, &err) == 0);
    REQUIRE(model_route(g, &r, &c, &err) == 0);
    CHECK_STR(c.model, "only");
    CHECK_STR(c.rule, "only model");
    model_gateway_free(g);

    REQUIRE(load("{\"providers\": {\"p\": {\"kind\": \"openai\", \"base_url\": \"http://h\"}}, "
                 "\"models\": {\"a\": {\"provider\": \"p\", \"model\": \"x\"}, "
                 "\"b\": {\"provider\": \"p\", \"model\": \"y\"}}, "
                 "\"routes\": {\"fast\": {\"model\": \"a\"}}}",
                 ".", &g, &err) == 0);
    CHECK_INT(model_route(g, &r, &c, &err), KEEL_ENOENT);
    CHECK_CONTAINS(err.msg, "no route 'default'");
    CHECK_CONTAINS(err.msg, "declared: fast");
    model_gateway_free(g);
    arena_cleanup(&a);
}

TEST(cost_from_the_price_table)
{
    struct model_gateway *g = full_gateway();
    REQUIRE(g);
    /* 1M input at 0.15 + 500k output at 0.60 = 0.45 USD */
    double c = model_cost_usd(g, "small", 1000000, 500000);
    CHECK(c > 0.44999999 && c < 0.45000001);
    /* 1200 in at $3/M + 300 out at $15/M = 0.0036 + 0.0045 */
    c = model_cost_usd(g, "large", 1200, 300);
    CHECK(c > 0.0080999 && c < 0.0081001);
    CHECK(model_cost_usd(g, "spare", 1000, 1000) == 0); /* no price declared */
    CHECK(model_cost_usd(g, "nope", 1000, 1000) == 0);
    model_gateway_free(g);
}

TEST(estimate_tokens_is_a_quarter_of_the_json_bytes)
{
    struct arena a;
    arena_init(&a);
    /* [{"role":"user","content":"abcd"}] is 34 bytes -> 9 tokens */
    struct json_value *m = parse(&a, "[ {\"role\": \"user\", \"content\": \"abcd\"} ]");
    CHECK_INT(model_estimate_tokens(m, NULL), 9);
    /* + [{"name":"t"}] (14 bytes): 48 bytes -> 12 */
    CHECK_INT(model_estimate_tokens(m, parse(&a, "[{\"name\": \"t\"}]")), 12);
    CHECK_INT(model_estimate_tokens(NULL, NULL), 0);
    CHECK_INT(model_estimate_tokens(m, NULL), model_estimate_tokens(m, NULL));
    arena_cleanup(&a);
}

/* ---- wire formats: requests ------------------------------------------------ */

static const char conversation[] =
    "[{\"role\": \"system\", \"content\": \"You triage tickets.\"},\n"
    " {\"role\": \"system\", \"content\": \"Be brief.\"},\n"
    " {\"role\": \"user\", \"content\": \"Ticket 42: login fails\"},\n"
    " {\"role\": \"assistant\", \"content\": \"Looking.\", \"tool_calls\": [\n"
    "   {\"id\": \"call_1\", \"name\": \"crm__lookup\", \"arguments\": {\"id\": 42}},\n"
    "   {\"id\": \"call_2\", \"name\": \"tracker__search\", \"arguments\": \"{bad\", "
    "\"arguments_invalid\": true}]},\n"
    " {\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"content\": \"{\\\"plan\\\":\\\"pro\\\"}\"},\n"
    " {\"role\": \"tool\", \"tool_call_id\": \"call_2\", \"content\": {\"error\": \"bad args\"}},\n"
    " {\"role\": \"user\", \"content\": \"Go on.\"}]";

static const char tools_json[] =
    "[{\"name\": \"crm__lookup\", \"description\": \"Find an account\", \"input_schema\": "
    "{\"type\": \"object\", \"properties\": {\"id\": {\"type\": \"integer\"}}}},\n"
    " {\"name\": \"tracker__search\"}]";

/* The conversation, the tools and an output schema: a request with every
 * part the wire formats translate. */
static struct model_request full_request(struct arena *a)
{
    return (struct model_request){
        .messages = parse(a, conversation),
        .tools = parse(a, tools_json),
        .output_schema = parse(a, "{\"type\": \"object\", \"required\": [\"severity\"]}"),
    };
}

TEST(wire_openai_request)
{
    struct arena a;
    arena_init(&a);
    struct model_request r = full_request(&a);
    r.max_output_tokens = 300;
    struct json_value *body = NULL;
    struct keel_err err;
    REQUIRE(model_wire_request("openai", "gpt-4o-mini", NULL, &r, &a, &body, &err) == 0);
    CHECK_JSON(body,
               "{\"model\": \"gpt-4o-mini\", \"max_tokens\": 300,"
               " \"messages\": ["
               "  {\"role\": \"system\", \"content\": \"You triage tickets.\"},"
               "  {\"role\": \"system\", \"content\": \"Be brief.\"},"
               "  {\"role\": \"user\", \"content\": \"Ticket 42: login fails\"},"
               "  {\"role\": \"assistant\", \"content\": \"Looking.\", \"tool_calls\": ["
               "    {\"id\": \"call_1\", \"type\": \"function\", \"function\": {\"name\": "
               "\"crm__lookup\", \"arguments\": \"{\\\"id\\\":42}\"}},"
               "    {\"id\": \"call_2\", \"type\": \"function\", \"function\": {\"name\": "
               "\"tracker__search\", \"arguments\": \"{bad\"}}]},"
               "  {\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"content\": "
               "\"{\\\"plan\\\":\\\"pro\\\"}\"},"
               "  {\"role\": \"tool\", \"tool_call_id\": \"call_2\", \"content\": "
               "\"{\\\"error\\\":\\\"bad args\\\"}\"},"
               "  {\"role\": \"user\", \"content\": \"Go on.\"}],"
               " \"tools\": ["
               "  {\"type\": \"function\", \"function\": {\"name\": \"crm__lookup\", "
               "\"description\": \"Find an account\", \"parameters\": {\"type\": \"object\", "
               "\"properties\": {\"id\": {\"type\": \"integer\"}}}}},"
               "  {\"type\": \"function\", \"function\": {\"name\": \"tracker__search\", "
               "\"parameters\": {\"type\": \"object\"}}}],"
               " \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"name\": "
               "\"output\", \"schema\": {\"type\": \"object\", \"required\": [\"severity\"]}, "
               "\"strict\": false}}}");
    /* Without tools, schema or a limit, those members are absent. */
    struct model_request plain = {.messages = parse(&a, "[{\"role\":\"user\",\"content\":\"hi\"}]")};
    REQUIRE(model_wire_request("openai", "m", NULL, &plain, &a, &body, &err) == 0);
    CHECK_JSON(body, "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}");
    arena_cleanup(&a);
}

TEST(wire_output_limit_field)
{
    struct arena a;
    arena_init(&a);
    struct model_request r = {.messages = parse(&a, "[{\"role\":\"user\",\"content\":\"hi\"}]"),
                              .max_output_tokens = 250};
    struct json_value *body = NULL;
    struct keel_err err;
    REQUIRE(model_wire_request("openai", "o3", "max_completion_tokens", &r, &a, &body, &err) == 0);
    CHECK_JSON(body, "{\"model\": \"o3\", \"max_completion_tokens\": 250,"
                     " \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}");
    REQUIRE(model_wire_request("openai", "llama", "max_tokens", &r, &a, &body, &err) == 0);
    CHECK_JSON(body, "{\"model\": \"llama\", \"max_tokens\": 250,"
                     " \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}");
    /* No limit: neither member. */
    r.max_output_tokens = 0;
    REQUIRE(model_wire_request("openai", "o3", "max_completion_tokens", &r, &a, &body, &err) == 0);
    CHECK(!json_get(body, "max_completion_tokens") && !json_get(body, "max_tokens"));
    REQUIRE(model_wire_request("anthropic", "c", "max_tokens", &r, &a, &body, &err) == 0);
    CHECK_INT(json_get_int(body, "max_tokens", 0), MODEL_DEFAULT_MAX_OUTPUT);
    /* A field the kind does not take is the caller's mistake. */
    body = NULL;
    CHECK_INT(model_wire_request("anthropic", "c", "max_completion_tokens", &r, &a, &body, &err),
              KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "anthropic requests carry their output limit in max_tokens, not "
                            "'max_completion_tokens'");
    CHECK_INT(model_wire_request("openai", "o", "n_predict", &r, &a, &body, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "in max_tokens or max_completion_tokens, not 'n_predict'");
    CHECK(body == NULL);
    arena_cleanup(&a);
}

TEST(wire_anthropic_request)
{
    struct arena a;
    arena_init(&a);
    struct model_request r = full_request(&a);
    struct json_value *body = NULL;
    struct keel_err err;
    REQUIRE(model_wire_request("anthropic", "claude-sonnet", NULL, &r, &a, &body, &err) == 0);
    CHECK_JSON(body,
               "{\"model\": \"claude-sonnet\", \"max_tokens\": 1024,"
               " \"system\": \"You triage tickets.\\n\\nBe brief.\\n\\nReply with only a JSON "
               "value (no prose, no code fences) that validates against this JSON Schema: "
               "{\\\"type\\\":\\\"object\\\",\\\"required\\\":[\\\"severity\\\"]}\","
               " \"messages\": ["
               "  {\"role\": \"user\", \"content\": \"Ticket 42: login fails\"},"
               "  {\"role\": \"assistant\", \"content\": ["
               "    {\"type\": \"text\", \"text\": \"Looking.\"},"
               "    {\"type\": \"tool_use\", \"id\": \"call_1\", \"name\": \"crm__lookup\", "
               "\"input\": {\"id\": 42}},"
               "    {\"type\": \"tool_use\", \"id\": \"call_2\", \"name\": \"tracker__search\", "
               "\"input\": {}}]},"
               "  {\"role\": \"user\", \"content\": ["
               "    {\"type\": \"tool_result\", \"tool_use_id\": \"call_1\", \"content\": "
               "\"{\\\"plan\\\":\\\"pro\\\"}\"},"
               "    {\"type\": \"tool_result\", \"tool_use_id\": \"call_2\", \"content\": "
               "\"{\\\"error\\\":\\\"bad args\\\"}\"},"
               "    {\"type\": \"text\", \"text\": \"Go on.\"}]}],"
               " \"tools\": ["
               "  {\"name\": \"crm__lookup\", \"description\": \"Find an account\", "
               "\"input_schema\": {\"type\": \"object\", \"properties\": {\"id\": {\"type\": "
               "\"integer\"}}}},"
               "  {\"name\": \"tracker__search\", \"input_schema\": {\"type\": \"object\"}}]}");
    /* An assistant turn without tool calls stays a plain string; the
     * request's own limit wins over the default. */
    struct model_request plain = {
        .messages = parse(&a, "[{\"role\":\"user\",\"content\":\"hi\"},"
                              "{\"role\":\"assistant\",\"content\":\"hello\"},"
                              "{\"role\":\"user\",\"content\":\"more\"}]"),
        .max_output_tokens = 77};
    REQUIRE(model_wire_request("anthropic", "c", NULL, &plain, &a, &body, &err) == 0);
    CHECK_JSON(body, "{\"model\": \"c\", \"max_tokens\": 77, \"messages\": ["
                     "{\"role\": \"user\", \"content\": \"hi\"},"
                     "{\"role\": \"assistant\", \"content\": \"hello\"},"
                     "{\"role\": \"user\", \"content\": \"more\"}]}");
    arena_cleanup(&a);
}

TEST(wire_request_rejects_bad_neutral_input)
{
    struct arena a;
    arena_init(&a);
    struct {
        const char *messages, *tools, *path, *msg;
    } cases[] = {
        {"[{\"role\": \"robot\", \"content\": \"x\"}]", NULL, "/messages/0/role", "role 'robot'"},
        {"[{\"role\": \"user\"}, 5]", NULL, "/messages/1", "must be an object"},
        {"[{\"role\": \"tool\", \"content\": \"x\"}]", NULL, "/messages/0/tool_call_id",
         "needs tool_call_id"},
        {"[{\"role\": \"user\", \"tool_calls\": []}]", NULL, "/messages/0/tool_calls",
         "assistant message"},
        {"[{\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c\"}]}]", NULL,
         "/messages/0/tool_calls/0/name", "needs a string name"},
        {"[]", "[{\"name\": \"crm/lookup\"}]", "/tools/0/name", "^[A-Za-z0-9_-]{1,64}$"},
        {"[]", "[{\"name\": \"ok\", \"input_schema\": 3}]", "/tools/0/input_schema",
         "must be an object"},
        {"{}", NULL, "/messages", "must be an array"},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        for (int k = 0; k < 2; k++) {
            struct model_request r = {.messages = parse(&a, cases[i].messages),
                                      .tools = cases[i].tools ? parse(&a, cases[i].tools) : NULL};
            struct json_value *body = NULL;
            struct keel_err err;
            keel_err_clear(&err);
            int rc = model_wire_request(k ? "anthropic" : "openai", "m", NULL, &r, &a, &body, &err);
            if (rc != KEEL_EINVAL || strcmp(err.path, cases[i].path) ||
                !strstr(err.msg, cases[i].msg))
                TEST_FAIL_AT(__FILE__, __LINE__, "case %zu: rc %d path %s msg %s", i, rc,
                             err.path, err.msg);
            CHECK(body == NULL);
        }
    }
    struct model_request r = {.messages = parse(&a, "[]")};
    struct json_value *body = NULL;
    struct keel_err err;
    CHECK_INT(model_wire_request("cohere", "m", NULL, &r, &a, &body, &err), KEEL_EINVAL);
    arena_cleanup(&a);
}

/* ---- wire formats: replies -------------------------------------------------- */

static int reply(const char *kind, const char *text, struct arena *a, struct model_response *out,
                 struct keel_err *err)
{
    memset(out, 0, sizeof *out);
    keel_err_clear(err);
    return model_wire_response(kind, text, strlen(text), a, out, err);
}

TEST(wire_openai_reply_text_and_tool_calls)
{
    struct arena a;
    arena_init(&a);
    struct model_response out;
    struct keel_err err;
    REQUIRE(reply("openai",
                  "{\"id\": \"chatcmpl-1\", \"object\": \"chat.completion\", \"choices\": [{"
                  "\"index\": 0, \"message\": {\"role\": \"assistant\", \"content\": \"Severity "
                  "2.\"}, \"finish_reason\": \"stop\"}], \"usage\": {\"prompt_tokens\": 120, "
                  "\"completion_tokens\": 7, \"total_tokens\": 127}}",
                  &a, &out, &err) == 0);
    CHECK_JSON(out.message, "{\"role\": \"assistant\", \"content\": \"Severity 2.\"}");
    CHECK_STR(out.stop_reason, "end");
    CHECK_INT(out.input_tokens, 120);
    CHECK_INT(out.output_tokens, 7);

    REQUIRE(reply("openai",
                  "{\"choices\": [{\"message\": {\"role\": \"assistant\", \"content\": null, "
                  "\"tool_calls\": ["
                  "{\"id\": \"call_a\", \"type\": \"function\", \"function\": {\"name\": "
                  "\"crm__lookup\", \"arguments\": \"{\\\"id\\\": 42}\"}},"
                  "{\"id\": \"call_b\", \"type\": \"function\", \"function\": {\"name\": "
                  "\"tracker__search\", \"arguments\": \"{\\\"q\\\": \"}},"
                  "{\"id\": \"call_c\", \"type\": \"function\", \"function\": {\"name\": "
                  "\"ping\", \"arguments\": \"\"}}]},"
                  "\"finish_reason\": \"tool_calls\"}]}",
                  &a, &out, &err) == 0);
    CHECK_JSON(out.message,
               "{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": ["
               "{\"id\": \"call_a\", \"name\": \"crm__lookup\", \"arguments\": {\"id\": 42}},"
               "{\"id\": \"call_b\", \"name\": \"tracker__search\", \"arguments\": "
               "\"{\\\"q\\\": \", \"arguments_invalid\": true},"
               "{\"id\": \"call_c\", \"name\": \"ping\", \"arguments\": {}}]}");
    CHECK_STR(out.stop_reason, "tool_calls");
    CHECK_INT(out.input_tokens, -1); /* no usage: model_call estimates */
    CHECK_INT(out.output_tokens, -1);

    static const struct {
        const char *wire, *neutral;
    } stops[] = {{"\"length\"", "length"}, {"\"content_filter\"", "other"}, {"null", "other"}};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(stops); i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{\"choices\": [{\"message\": {\"content\": \"x\"}, \"finish_reason\": %s}]}",
                 stops[i].wire);
        REQUIRE(reply("openai", text, &a, &out, &err) == 0);
        CHECK_STR(out.stop_reason, stops[i].neutral);
    }
    arena_cleanup(&a);
}

TEST(wire_anthropic_reply_text_and_tool_use)
{
    struct arena a;
    arena_init(&a);
    struct model_response out;
    struct keel_err err;
    REQUIRE(reply("anthropic",
                  "{\"id\": \"msg_1\", \"type\": \"message\", \"role\": \"assistant\", "
                  "\"model\": \"claude-sonnet\", \"content\": ["
                  "{\"type\": \"text\", \"text\": \"Let me look. \"},"
                  "{\"type\": \"thinking\", \"thinking\": \"hmm\"},"
                  "{\"type\": \"tool_use\", \"id\": \"toolu_1\", \"name\": \"crm__lookup\", "
                  "\"input\": {\"id\": 42}},"
                  "{\"type\": \"text\", \"text\": \"Done.\"}],"
                  "\"stop_reason\": \"tool_use\", \"usage\": {\"input_tokens\": 300, "
                  "\"output_tokens\": 40, \"cache_read_input_tokens\": 100}}",
                  &a, &out, &err) == 0);
    CHECK_JSON(out.message,
               "{\"role\": \"assistant\", \"content\": \"Let me look. Done.\", \"tool_calls\": ["
               "{\"id\": \"toolu_1\", \"name\": \"crm__lookup\", \"arguments\": {\"id\": 42}}]}");
    CHECK_STR(out.stop_reason, "tool_calls");
    CHECK_INT(out.input_tokens, 400);
    CHECK_INT(out.output_tokens, 40);

    static const struct {
        const char *wire, *neutral;
    } stops[] = {{"end_turn", "end"},
                 {"max_tokens", "length"},
                 {"stop_sequence", "end"},
                 {"refusal", "other"}};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(stops); i++) {
        char text[256];
        snprintf(text, sizeof text,
                 "{\"type\": \"message\", \"content\": [{\"type\": \"text\", \"text\": \"x\"}], "
                 "\"stop_reason\": \"%s\"}",
                 stops[i].wire);
        REQUIRE(reply("anthropic", text, &a, &out, &err) == 0);
        CHECK_STR(out.stop_reason, stops[i].neutral);
        CHECK_JSON(out.message, "{\"role\": \"assistant\", \"content\": \"x\"}");
    }
    arena_cleanup(&a);
}

TEST(wire_reply_not_the_format_is_eproto)
{
    struct arena a;
    arena_init(&a);
    struct model_response out;
    struct keel_err err;
    struct {
        const char *kind, *text, *msg;
    } cases[] = {
        {"openai", "<html>Bad Gateway</html>", "the reply is not JSON"},
        {"openai", "", "the reply is not JSON"},
        {"openai", "[1,2]", "not a JSON object"},
        {"openai", "{\"choices\": []}", "no choices[0]"},
        {"openai", "{\"choices\": [{\"text\": \"x\"}]}", "no choices[0].message"},
        {"openai", "{\"choices\": [{\"message\": {\"content\": 5}}]}", "is integer, not a string"},
        {"openai", "{\"choices\": [{\"message\": {\"tool_calls\": {}}}]}", "not an array"},
        {"openai", "{\"choices\": [{\"message\": {\"tool_calls\": [{\"function\": {}}]}}]}",
         "no function.name"},
        {"openai", "{\"error\": {\"message\": \"model overloaded\"}}", "model overloaded"},
        {"anthropic", "{\"type\": \"message\"}", "no content array"},
        {"anthropic", "{\"content\": [{\"type\": \"text\"}]}", "without a string text"},
        {"anthropic", "{\"content\": [{\"type\": \"tool_use\", \"input\": {}}]}",
         "tool_use block without a name"},
        {"anthropic", "{\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", "
                      "\"message\": \"Overloaded\"}}",
         "Overloaded"},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        int rc = reply(cases[i].kind, cases[i].text, &a, &out, &err);
        if (rc != KEEL_EPROTO || !strstr(err.msg, cases[i].msg))
            TEST_FAIL_AT(__FILE__, __LINE__, "case %zu: rc %d msg %s", i, rc, err.msg);
        CHECK(out.message == NULL);
        CHECK_CONTAINS(err.msg, cases[i].kind);
    }
    /* At most 200 bytes of the body are quoted. */
    char *body = malloc(5001);
    REQUIRE(body);
    memset(body, 'z', 5000);
    body[5000] = '\0';
    CHECK_INT(reply("anthropic", body, &a, &out, &err), KEEL_EPROTO);
    free(body);
    const char *q = strstr(err.msg, "the reply began '");
    REQUIRE(q);
    size_t zs = strspn(q + 17, "z");
    CHECK_INT(zs, 200);
    CHECK_CONTAINS(err.msg, "'...");
    arena_cleanup(&a);
}

TEST(wire_reply_round_trips_into_the_next_request)
{
    /* A reply's message goes back into the conversation unchanged. */
    struct arena a;
    arena_init(&a);
    struct model_response out;
    struct keel_err err;
    REQUIRE(reply("openai",
                  "{\"choices\": [{\"message\": {\"content\": \"\", \"tool_calls\": [{\"id\": "
                  "\"c1\", \"function\": {\"name\": \"f\", \"arguments\": \"{\\\"a\\\":[1,2]}\"}}]}"
                  ", \"finish_reason\": \"tool_calls\"}]}",
                  &a, &out, &err) == 0);
    struct json_value *msgs = json_array(&a);
    json_array_push(&a, msgs, parse(&a, "{\"role\": \"user\", \"content\": \"go\"}"));
    json_array_push(&a, msgs, out.message);
    json_array_push(&a, msgs,
                    parse(&a, "{\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"3\"}"));
    struct model_request r = {.messages = msgs};
    struct json_value *body = NULL;
    REQUIRE(model_wire_request("anthropic", "c", NULL, &r, &a, &body, &err) == 0);
    CHECK_JSON(json_get(body, "messages"),
               "[{\"role\": \"user\", \"content\": \"go\"},"
               " {\"role\": \"assistant\", \"content\": [{\"type\": \"tool_use\", \"id\": \"c1\", "
               "\"name\": \"f\", \"input\": {\"a\": [1, 2]}}]},"
               " {\"role\": \"user\", \"content\": [{\"type\": \"tool_result\", \"tool_use_id\": "
               "\"c1\", \"content\": \"3\"}]}]");
    REQUIRE(model_wire_request("openai", "o", NULL, &r, &a, &body, &err) == 0);
    CHECK_JSON(json_get(body, "messages"),
               "[{\"role\": \"user\", \"content\": \"go\"},"
               " {\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"c1\", "
               "\"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": "
               "\"{\\\"a\\\":[1,2]}\"}}]},"
               " {\"role\": \"tool\", \"tool_call_id\": \"c1\", \"content\": \"3\"}]");
    arena_cleanup(&a);
}

TEST(scrub_removes_keys_from_text)
{
    struct model_gateway *g = full_gateway();
    REQUIRE(g);
    char s[128] = "server said: bad key sk-test-0123456789 and again sk-test-0123456789!";
    model_scrub(g, s, sizeof s);
    CHECK_STR(s, "server said: bad key [redacted] and again [redacted]!");
    char t[16] = "no key here";
    model_scrub(g, t, sizeof t);
    CHECK_STR(t, "no key here");
    model_gateway_free(g);
}

TEST(retry_after_values)
{
    /* Sun, 06 Nov 1994 08:49:37 GMT is 784111777 s after the epoch. */
    const int64_t now = INT64_C(784111777) * 1000;
    struct {
        const char *v;
        bool ms;
        int64_t want;
    } cases[] = {
        {"2", false, 2000},
        {"0", false, 0},
        {"120", false, 120000},
        {"1.5", false, 1500},
        {"Sun, 06 Nov 1994 08:49:47 GMT", false, 10000},
        {"Sun, 06 Nov 1994 08:49:37 GMT", false, 0},
        {"Sat, 05 Nov 1994 08:49:37 GMT", false, 0}, /* in the past */
        {"Mon, 07 Nov 1994 08:49:37 GMT", false, 86400000},
        {"1500", true, 1500},
        {"20.2", true, 21},
        {"soon", false, -1},
        {"-3", false, -1},
        {"", false, -1},
        {"2x", false, -1},
        {"Sun, 06 Nov 1994 08:49:47 GMT", true, -1},
        {"99999999999999999999", false, 10000000000},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        int64_t got = model_retry_after_ms(cases[i].v, strlen(cases[i].v), cases[i].ms, now);
        if (got != cases[i].want)
            TEST_FAIL_AT(__FILE__, __LINE__, "'%s' (ms=%d): %lld, expected %lld", cases[i].v,
                         cases[i].ms, (long long)got, (long long)cases[i].want);
    }
}
