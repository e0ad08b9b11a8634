/*
 * test_workflow.c — workflow files: YAML loading with positions, the
 * compiled step graph, templates, reducers, keel.yaml, and the data-driven
 * cases in tests/data/workflows/{good,bad} (each bad file names its expected
 * first error in a first-line comment "# expect: LINE:COL: message").
 */
#include "test.h"
#include "workflow/workflow.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct json_value *yaml(struct arena *a, const char *text, struct keel_err *err)
{
    struct json_value *v = NULL;
    keel_err_clear(err);
    if (workflow_yaml_parse(a, text, strlen(text), "t.yaml", &v, err)) return NULL;
    return v;
}

static struct workflow *load(const char *text, struct keel_err *err)
{
    struct workflow *wf = NULL;
    keel_err_clear(err);
    if (workflow_load(text, strlen(text), "t.yaml", &wf, NULL, err)) return NULL;
    return wf;
}

static char *to_json(const struct json_value *v)
{
    struct buf b;
    buf_init(&b);
    json_write(&b, v, 0, NULL);
    return buf_detach(&b);
}

/* ---- YAML loading ------------------------------------------------------- */

TEST(yaml_core_schema_scalars)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v = yaml(&a,
                                "a: ~\nb: null\nc: true\nd: False\ne: 42\nf: -0x1F\ng: 0o17\n"
                                "h: 1.5\ni: .5\nj: 1e3\nk: 'true'\nl: \"42\"\nm: yes\nn: 007\n"
                                "o: +12\np: 0x1F\nq: \"\"\nr: 1.\n",
                                &err);
    REQUIRE(v);
    char *s = to_json(v);
    /* yes is a string in YAML 1.2; -0x1F is not core-schema hex, so a string. */
    CHECK_STR(s, "{\"a\":null,\"b\":null,\"c\":true,\"d\":false,\"e\":42,\"f\":\"-0x1F\",\"g\":15,"
                 "\"h\":1.5,\"i\":0.5,\"j\":1e3,\"k\":\"true\",\"l\":\"42\",\"m\":\"yes\","
                 "\"n\":7,\"o\":12,\"p\":31,\"q\":\"\",\"r\":1}");
    free(s);
    arena_cleanup(&a);
}

TEST(yaml_positions_on_every_value)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v = yaml(&a, "top:\n  list:\n    - one\n    - {k: 2}\n", &err);
    REQUIRE(v);
    struct json_value *list = json_get(json_get(v, "top"), "list");
    REQUIRE(json_is(list, JSON_ARRAY));
    CHECK_INT(list->line, 3);
    CHECK_INT(list->column, 5);
    CHECK_INT(list->u.items[0]->line, 3);
    CHECK_INT(list->u.items[0]->column, 7);
    struct json_value *k = json_get(list->u.items[1], "k");
    CHECK_INT(k->line, 4);
    CHECK_INT(k->column, 11);
    arena_cleanup(&a);
}

TEST(yaml_rejections)
{
    static const struct {
        const char *text, *msg;
        int line, column;
    } cases[] = {
        {"a: 1\na: 2\n", "duplicate key 'a'", 2, 1},
        {"? [a]\n: 1\n", "mapping keys must be strings", 1, 3},
        {"a: !custom x\n", "custom YAML tag", 1, 4},
        {"a: .nan\n", "not a number JSON can hold", 1, 4},
        {"a: *nope\n", "unknown alias", 1, 4},
        {"base: &b {x: 1}\nc:\n  <<: *b\n", "merge keys", 3, 3},
        {"a: [1, 2\n", "YAML syntax error", 2, 1},
        {"a: 0x8000000000000000\n", "too large", 1, 4},
        {"true: 1\n", "keys must be strings", 1, 1},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct arena a;
        arena_init(&a);
        struct keel_err err;
        CHECK(yaml(&a, cases[i].text, &err) == NULL);
        CHECK_CONTAINS(err.msg, cases[i].msg);
        CHECK_INT(err.line, cases[i].line);
        CHECK_INT(err.column, cases[i].column);
        CHECK_STR(err.file, "t.yaml");
        arena_cleanup(&a);
    }
}

TEST(yaml_aliases_expand_and_share)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v = yaml(&a, "base: &b {x: 1, y: [1, 2]}\ncopy: *b\n", &err);
    REQUIRE(v);
    CHECK(json_equal(json_get(v, "base"), json_get(v, "copy")));
    arena_cleanup(&a);
}

TEST(yaml_depth_cap)
{
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < WORKFLOW_MAX_DEPTH + 5; i++) buf_putc(&b, '[');
    for (int i = 0; i < WORKFLOW_MAX_DEPTH + 5; i++) buf_putc(&b, ']');
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    CHECK_INT(workflow_yaml_parse(&a, b.data, b.len, "deep.yaml", &v, &err), KEEL_ELIMIT);
    CHECK_CONTAINS(err.msg, "nesting deeper");
    buf_cleanup(&b);
    arena_cleanup(&a);
}

TEST(doc_parse_detects_json)
{
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    const char *text = "{\"a\": [1, 2]}";
    REQUIRE(workflow_doc_parse(&a, text, strlen(text), "x.json", &v, &err) == 0);
    CHECK_INT(json_get(v, "a")->len, 2);
    /* A flow mapping in a .yaml file stays YAML (unquoted keys). */
    text = "{a: [1, 2]}";
    REQUIRE(workflow_doc_parse(&a, text, strlen(text), "x.yaml", &v, &err) == 0);
    CHECK_INT(json_get(v, "a")->len, 2);
    /* JSON rejects duplicate keys too, with a position. */
    text = "{\"a\": 1,\n \"a\": 2}";
    CHECK(workflow_doc_parse(&a, text, strlen(text), "x.json", &v, &err) != 0);
    CHECK_INT(err.line, 2);
    arena_cleanup(&a);
}

/* ---- templates ------------------------------------------------------------ */

static int render(const char *tpl_yaml, const char *vars_json, char **out, struct keel_err *err)
{
    struct arena a;
    arena_init(&a);
    struct json_value *tv = yaml(&a, tpl_yaml, err), *vars = NULL, *r = NULL;
    struct workflow_template *t = NULL;
    int rc = tv ? 0 : -1;
    if (!rc)
        rc = workflow_template_compile(&a, tv, WORKFLOW_VAR_INPUT | WORKFLOW_VAR_STATE |
                                                   WORKFLOW_VAR_RESULT,
                                       "t.yaml", "/x", &t, err);
    if (!rc) rc = json_parse(&a, vars_json, strlen(vars_json), NULL, &vars, err);
    if (!rc) rc = workflow_render(t, vars, &a, &r, err);
    if (!rc) *out = to_json(r);
    arena_cleanup(&a);
    return rc;
}

TEST(template_render)
{
    static const struct {
        const char *tpl, *out;
    } cases[] = {
        {"\"${input.id}\"", "42"},
        {"\"${ state.ticket }\"", "{\"subject\":\"Printer\",\"tags\":[\"a\",\"b\"]}"},
        {"\"#${input.id}: ${state.ticket.subject}\"", "\"#42: Printer\""},
        {"\"tags=${state.ticket.tags}\"", "\"tags=[\\\"a\\\",\\\"b\\\"]\""},
        {"\"${state.ticket.tags[1]}\"", "\"b\""},
        {"\"cost $${input.id} ${result.ok}\"", "\"cost ${input.id} true\""},
        {"{a: \"${input.id}\", b: [x, \"${result}\"], c: 3}", "{\"a\":42,\"b\":[\"x\",{\"ok\":true}],\"c\":3}"},
        {"plain", "\"plain\""},
        {"\"$ and { and } alone\"", "\"$ and { and } alone\""},
    };
    const char *vars = "{\"input\":{\"id\":42},\"state\":{\"ticket\":{\"subject\":\"Printer\","
                       "\"tags\":[\"a\",\"b\"]}},\"result\":{\"ok\":true}}";
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        char *out = NULL;
        struct keel_err err;
        int rc = render(cases[i].tpl, vars, &out, &err);
        if (rc) fprintf(stderr, "case %zu: %s\n", i, err.msg);
        CHECK_INT(rc, 0);
        CHECK_STR(out, cases[i].out);
        free(out);
    }
}

TEST(template_errors)
{
    static const struct {
        const char *tpl, *msg;
        int code;
    } cases[] = {
        {"\"${input.missing}\"", "no member 'missing'", KEEL_ENOENT},
        {"\"${state.ticket.tags[5]}\"", "index 5 is past the end", KEEL_ENOENT},
        {"\"${input.id.x}\"", "cannot take '.x' of a integer", KEEL_ENOENT},
        {"\"${inptu.id}\"", "unknown template variable 'inptu'", KEEL_EINVAL},
        {"\"${input.}\"", "expected a name after '.'", KEEL_EINVAL},
        {"\"${input.id\"", "unterminated template reference", KEEL_EINVAL},
        {"\"${}\"", "empty or malformed", KEEL_EINVAL},
        {"\"${input[x]}\"", "expected [number]", KEEL_EINVAL},
    };
    const char *vars = "{\"input\":{\"id\":42},\"state\":{\"ticket\":{\"tags\":[\"a\"]}}}";
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        char *out = NULL;
        struct keel_err err;
        keel_err_clear(&err);
        CHECK_INT(render(cases[i].tpl, vars, &out, &err), cases[i].code);
        CHECK_CONTAINS(err.msg, cases[i].msg);
        free(out);
    }
}

TEST(template_result_not_allowed)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *tv = yaml(&a, "\"${result.x}\"", &err);
    struct workflow_template *t = NULL;
    CHECK_INT(workflow_template_compile(&a, tv, WORKFLOW_VAR_INPUT | WORKFLOW_VAR_STATE, "t.yaml",
                                        "/p", &t, &err),
              KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "no step result is available");
    CHECK_STR(err.path, "/p");
    CHECK_INT(err.line, 1);
    arena_cleanup(&a);
}

/* ---- compile -------------------------------------------------------------- */

TEST(compile_triage_graph)
{
    struct workflow *wf = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    int rc = workflow_load_file(test_source("tests/data/workflows/good/triage.yaml"), &wf, NULL,
                                &err);
    if (rc) fprintf(stderr, "%s:%d:%d: %s\n", err.file, err.line, err.column, err.msg);
    REQUIRE(rc == 0);
    CHECK_STR(wf->name, "triage");
    CHECK_STR(wf->identity, "support/triage");
    CHECK_INT(wf->nsteps, 6);
    CHECK_INT(strlen(wf->hash), 64);
    const struct workflow_step *fetch = workflow_step_find(wf, "fetch");
    REQUIRE(fetch);
    CHECK_INT(fetch->kind, WORKFLOW_STEP_TOOL);
    CHECK_STR(fetch->call.server, "helpdesk");
    CHECK_STR(fetch->call.tool, "get_ticket");
    CHECK_STR(fetch->save, "ticket");
    CHECK_INT(fetch->next, 1);
    CHECK_INT(fetch->timeout_ms, 30000);
    CHECK_INT(fetch->retry.attempts, 3);
    CHECK_INT(fetch->retry.initial_ms, 1000);
    CHECK_INT(fetch->retry.max_ms, 30000);
    CHECK(!fetch->result_available);
    CHECK_INT(workflow_retry_delay_ms(&fetch->retry, 2), 1000);
    CHECK_INT(workflow_retry_delay_ms(&fetch->retry, 3), 2000);
    CHECK_INT(workflow_retry_delay_ms(&fetch->retry, 10), 30000);
    const struct workflow_step *route = workflow_step_find(wf, "route");
    REQUIRE(route && route->kind == WORKFLOW_STEP_SWITCH);
    CHECK_INT(route->sw.ncases, 1);
    CHECK_INT(route->sw.cases[0].target, 2);
    CHECK_STR(route->sw.cases[0].condition, "state.ticket.priority == \"high\"");
    CHECK_INT(route->sw.cases[0].line, 23);
    CHECK_INT(route->sw.cases[0].column, 14); /* inside the quotes */
    CHECK_INT(route->sw.default_target, 4);
    CHECK(route->result_available); /* only reached from fetch (a tool) */
    const struct workflow_step *open = workflow_step_find(wf, "open_issue");
    REQUIRE(open && open->compensate);
    CHECK_STR(open->compensate->tool, "close_issue");
    CHECK(!open->result_available); /* reached from a switch */
    const struct workflow_step *note = workflow_step_find(wf, "note");
    CHECK(note->result_available);
    CHECK_INT(note->set.nentries, 2);
    const struct workflow_step *reply = workflow_step_find(wf, "reply");
    CHECK_INT(reply->approval.timeout_ms, 72LL * 3600 * 1000);
    CHECK_INT(reply->approval.on_timeout, WORKFLOW_ON_TIMEOUT_DENY);
    CHECK_STR(reply->approval.group, "support-leads");
    CHECK(!reply->result_available); /* from note (set) and from route (switch) */
    const struct workflow_step *done = workflow_step_find(wf, "done");
    CHECK_INT(done->kind, WORKFLOW_STEP_SUCCEED);
    CHECK_INT(workflow_state_find(wf, "notes")->reducer, WORKFLOW_REDUCER_APPEND);
    CHECK_INT(workflow_state_find(wf, "meta")->reducer, WORKFLOW_REDUCER_MERGE);
    CHECK(workflow_state_find(wf, "nope") == NULL);

    /* Render the open_issue args against a run's variables. */
    struct arena a;
    arena_init(&a);
    struct json_value *vars = NULL, *args = NULL;
    const char *vj = "{\"input\":{\"ticket_id\":\"T-9\"},\"state\":{\"ticket\":{\"subject\":\"Down\"}}}";
    REQUIRE(json_parse(&a, vj, strlen(vj), NULL, &vars, &err) == 0);
    REQUIRE(workflow_render(open->call.args, vars, &a, &args, &err) == 0);
    char *s = to_json(args);
    CHECK_STR(s, "{\"title\":\"Ticket T-9: Down\",\"labels\":[\"support\"]}");
    free(s);
    arena_cleanup(&a);
    workflow_free(wf);
}

TEST(compile_collects_every_problem)
{
    const char *text = "name: many\n"
                       "steps:\n"
                       "  - id: a\n"
                       "    tool: x/y\n"
                       "    save: nope\n"
                       "    timeout: soon\n"
                       "  - id: b\n"
                       "    approval: {group: g, on_timeout: maybe, timeout: 1h}\n";
    struct workflow_diags d;
    workflow_diags_init(&d);
    struct workflow *wf = NULL;
    struct keel_err err;
    CHECK(workflow_load(text, strlen(text), "m.yaml", &wf, &d, &err) != 0);
    CHECK(wf == NULL);
    CHECK_INT(d.len, 4);
    if (d.len == 4) {
        CHECK_CONTAINS(d.items[0].msg, "state key 'nope'");
        CHECK_STR(d.items[0].path, "/steps/0/save");
        CHECK_CONTAINS(d.items[1].msg, "bad duration");
        CHECK_INT(d.items[1].line, 6);
        CHECK_CONTAINS(d.items[2].msg, "on_timeout 'maybe'");
        CHECK_CONTAINS(d.items[3].msg, "no identity");
    }
    CHECK_STR(err.msg, d.items[0].msg);
    workflow_diags_cleanup(&d);
}

TEST(hash_is_format_independent)
{
    const char *y = "name: h\nsteps:\n  - {id: a, succeed: true}\n";
    const char *y2 = "# a comment\nsteps:\n- id: a\n  succeed: true\nname: 'h'\n";
    const char *j = "{\"steps\": [{\"succeed\": true, \"id\": \"a\"}], \"name\": \"h\"}";
    const char *other = "name: h2\nsteps:\n  - {id: a, succeed: true}\n";
    struct keel_err err;
    struct workflow *w1 = load(y, &err), *w2 = load(y2, &err), *w4 = load(other, &err), *w3 = NULL;
    REQUIRE(workflow_load(j, strlen(j), "h.json", &w3, NULL, &err) == 0);
    REQUIRE(w1 && w2 && w4);
    CHECK_STR(w1->hash, w2->hash);
    CHECK_STR(w1->hash, w3->hash);
    CHECK(strcmp(w1->hash, w4->hash) != 0);
    workflow_free(w1);
    workflow_free(w2);
    workflow_free(w3);
    workflow_free(w4);
}

TEST(explicit_next_and_fallthrough)
{
    const char *text = "name: flow\nstate: {n: add}\nsteps:\n"
                       "  - {id: a, set: {n: 1}, next: c}\n"
                       "  - {id: b, fail: oops}\n"
                       "  - {id: c, set: {n: 2}}\n";
    struct keel_err err;
    struct workflow *wf = load(text, &err);
    REQUIRE(wf);
    CHECK_INT(wf->steps[0].next, 2);
    CHECK_INT(wf->steps[2].next, WORKFLOW_END);
    CHECK_INT(wf->steps[1].kind, WORKFLOW_STEP_FAIL);
    CHECK(wf->steps[1].end.message != NULL);
    workflow_free(wf);
}

/* ---- reducers ------------------------------------------------------------- */

static char *reduce(enum workflow_reducer r, const char *old, const char *val, int *rc)
{
    struct arena a;
    arena_init(&a);
    struct json_value *o = NULL, *v = NULL, *out = NULL;
    if (old) json_parse(&a, old, strlen(old), NULL, &o, NULL);
    json_parse(&a, val, strlen(val), NULL, &v, NULL);
    struct keel_err err;
    *rc = workflow_reduce(r, o, v, &a, &out, &err);
    char *s = *rc ? NULL : to_json(out);
    arena_cleanup(&a);
    return s;
}

TEST(reducers)
{
    static const struct {
        enum workflow_reducer r;
        const char *old, *val, *out;
    } cases[] = {
        {WORKFLOW_REDUCER_REPLACE, "1", "{\"a\":2}", "{\"a\":2}"},
        {WORKFLOW_REDUCER_APPEND, NULL, "\"x\"", "[\"x\"]"},
        {WORKFLOW_REDUCER_APPEND, "[1]", "[2,3]", "[1,2,3]"},
        {WORKFLOW_REDUCER_MERGE, "{\"a\":1,\"b\":2}", "{\"b\":3,\"c\":4}", "{\"a\":1,\"b\":3,\"c\":4}"},
        {WORKFLOW_REDUCER_MERGE, NULL, "{\"a\":1}", "{\"a\":1}"},
        {WORKFLOW_REDUCER_ADD, NULL, "5", "5"},
        {WORKFLOW_REDUCER_ADD, "9007199254740993", "1", "9007199254740994"},
        {WORKFLOW_REDUCER_ADD, "1.5", "2", "3.5"},
        {WORKFLOW_REDUCER_ADD, "9223372036854775807", "1", "9223372036854775808"},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        int rc;
        char *s = reduce(cases[i].r, cases[i].old, cases[i].val, &rc);
        CHECK_INT(rc, 0);
        if (strcmp(cases[i].out, "9223372036854775808") == 0) {
            CHECK(s && atof(s) > 9.2e18); /* beyond int64: a double */
        } else {
            CHECK_STR(s, cases[i].out);
        }
        free(s);
    }
    int rc;
    CHECK(reduce(WORKFLOW_REDUCER_MERGE, "[1]", "{}", &rc) == NULL);
    CHECK_INT(rc, KEEL_EINVAL);
    CHECK(reduce(WORKFLOW_REDUCER_ADD, "1", "\"x\"", &rc) == NULL);
    CHECK(reduce(WORKFLOW_REDUCER_APPEND, "{}", "1", &rc) == NULL);
    enum workflow_reducer r;
    struct keel_err err;
    CHECK_INT(workflow_reducer_parse("sum", &r, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "replace, append, merge or add");
}

/* ---- data-driven cases ------------------------------------------------------ */

static int for_each_file(const char *dir, void (*fn)(const char *path))
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        fn(path);
        n++;
    }
    closedir(d);
    return n;
}

static void good_file(const char *path)
{
    struct workflow *wf = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    int rc = workflow_load_file(path, &wf, NULL, &err);
    if (rc) {
        char msg[2048];
        TEST_FAIL_AT(__FILE__, __LINE__, "%s", keel_err_format(&err, msg, sizeof msg));
    }
    workflow_free(wf);
}

static void bad_file(const char *path)
{
    struct buf b;
    buf_init(&b);
    REQUIRE(keel_read_file(path, 1 << 20, &b, NULL) == 0);
    int line = 0, col = 0, off = 0;
    char msg[512] = "";
    if (sscanf(b.data, "# expect: %d:%d: %n", &line, &col, &off) != 2 || !off) {
        TEST_FAIL_AT(__FILE__, __LINE__, "%s: no '# expect: L:C: message' first line", path);
        buf_cleanup(&b);
        return;
    }
    const char *m = b.data + off;
    size_t n = strcspn(m, "\n");
    snprintf(msg, sizeof msg, "%.*s", (int)n, m);
    buf_cleanup(&b);
    struct workflow *wf = NULL;
    struct workflow_diags d;
    workflow_diags_init(&d);
    struct keel_err err;
    keel_err_clear(&err);
    int rc = workflow_load_file(path, &wf, &d, &err);
    if (rc == 0) {
        TEST_FAIL_AT(__FILE__, __LINE__, "%s: loaded, expected \"%s\"", path, msg);
        workflow_free(wf);
    } else if (err.line != line || err.column != col || !strstr(err.msg, msg) ||
               strcmp(err.file, path) != 0) {
        char got[2048];
        TEST_FAIL_AT(__FILE__, __LINE__, "%s: expected %d:%d: %s\n  got %s", path, line, col, msg,
                     keel_err_format(&err, got, sizeof got));
    }
    CHECK(d.len >= 1);
    workflow_diags_cleanup(&d);
}

TEST(data_good_workflows)
{
    CHECK(for_each_file(test_source("tests/data/workflows/good"), good_file) >= 4);
    CHECK(for_each_file(test_source("examples/workflows"), good_file) >= 1);
}

TEST(data_bad_workflows)
{
    CHECK(for_each_file(test_source("tests/data/workflows/bad"), bad_file) >= 15);
}

/* ---- keel.yaml ---------------------------------------------------------------- */

TEST(config_example)
{
    struct keel_config *cfg = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    int rc = keel_config_load(test_source("examples/keel.yaml"), &cfg, NULL, &err);
    if (rc) fprintf(stderr, "%s:%d:%d: %s\n", err.file, err.line, err.column, err.msg);
    REQUIRE(rc == 0);
    CHECK_STR(cfg->dir, test_source("examples"));
    CHECK_STR(cfg->listen, "127.0.0.1:7400");
    const struct keel_config_tool_server *h = keel_config_tool_server(cfg, "helpdesk");
    REQUIRE(h);
    CHECK_CONTAINS(h->command, "tool_helpdesk");
    CHECK(keel_config_agent(cfg, "support/triage") != NULL);
    CHECK(keel_config_group_exists(cfg, "support-leads"));
    CHECK(!keel_config_group_exists(cfg, "nobody"));

    struct workflow *wf = NULL;
    REQUIRE(workflow_load_file(test_source("examples/workflows/support-triage.yaml"), &wf, NULL,
                               &err) == 0);
    struct workflow_diags d;
    workflow_diags_init(&d);
    rc = workflow_check_config(wf, cfg, &d, &err);
    if (rc) fprintf(stderr, "%s:%d:%d: %s\n", err.file, err.line, err.column, err.msg);
    CHECK_INT(rc, 0);
    workflow_diags_cleanup(&d);
    workflow_free(wf);
    keel_config_free(cfg);
}

TEST(config_paths_and_defaults)
{
    const char *text = "data_dir: var/keel\n"
                       "store: sqlite:db/keel.db\n"
                       "tools:\n"
                       "  local: {command: ./bin/tool, args: [--x], env: {A: b}, cwd: work,\n"
                       "          idempotent: {get: true, '*': false}}\n"
                       "  path: {command: mytool, idempotent: true}\n"
                       "  remote: {url: 'https://example.com/mcp'}\n"
                       "agents:\n"
                       "  ops/bot: {tools: [local/get]}\n"
                       "humans:\n"
                       "  ann: {groups: [leads], token_env: ANN_TOKEN}\n"
                       "models: {default: {provider: openai}}\n";
    struct keel_config *cfg = NULL;
    struct keel_err err;
    REQUIRE(keel_config_parse(text, strlen(text), "/etc/keel/keel.yaml", &cfg, NULL, &err) == 0);
    CHECK_STR(cfg->dir, "/etc/keel");
    CHECK_STR(cfg->data_dir, "/etc/keel/var/keel");
    CHECK_STR(cfg->store_url, "sqlite:/etc/keel/db/keel.db");
    CHECK_STR(cfg->policies_dir, "/etc/keel/policies");
    const struct keel_config_tool_server *t = keel_config_tool_server(cfg, "local");
    REQUIRE(t);
    CHECK_STR(t->command, "/etc/keel/bin/tool");
    CHECK_STR(t->cwd, "/etc/keel/work");
    CHECK_INT(t->nargs, 1);
    CHECK_STR(t->env[0].value, "b");
    CHECK_STR(keel_config_tool_server(cfg, "path")->command, "mytool");
    CHECK(keel_config_tool_idempotent(cfg, "local", "get"));
    CHECK(!keel_config_tool_idempotent(cfg, "local", "put"));
    CHECK(keel_config_tool_idempotent(cfg, "path", "anything"));
    CHECK(!keel_config_tool_idempotent(cfg, "remote", "x"));
    CHECK(!keel_config_tool_idempotent(cfg, "unknown", "x"));
    CHECK_INT(keel_config_tool_idempotence(cfg, "local", "get"), 1);
    CHECK_INT(keel_config_tool_idempotence(cfg, "local", "put"), 0);   /* via "*" */
    CHECK_INT(keel_config_tool_idempotence(cfg, "path", "anything"), 1);
    CHECK_INT(keel_config_tool_idempotence(cfg, "remote", "x"), -1);   /* annotations decide */
    CHECK_INT(keel_config_tool_idempotence(cfg, "unknown", "x"), -1);
    CHECK_INT(keel_config_agent(cfg, "ops/bot")->ntools, 1);
    CHECK_STR(keel_config_human(cfg, "ann")->token_env, "ANN_TOKEN");
    CHECK(json_is(cfg->models, JSON_OBJECT));
    keel_config_free(cfg);

    REQUIRE(keel_config_parse("{}", 2, "/srv/k.json", &cfg, NULL, &err) == 0);
    CHECK_STR(cfg->data_dir, "/srv/.keel");
    CHECK_STR(cfg->store_url, "sqlite:/srv/.keel/keel.db");
    keel_config_free(cfg);
}

TEST(config_errors)
{
    static const struct {
        const char *text, *msg, *path;
        int line;
    } cases[] = {
        {"tools:\n  h: {args: [x]}\n", "exactly one of command", "/tools/h", 2},
        {"agents:\n  triage: {}\n", "must be written team/name", "/agents/triage", 2},
        {"humans:\n  bob: {groups: [a], token_sha256: abc}\n", "64 lowercase hex",
         "/humans/bob/token_sha256", 2},
        {"humans:\n  bob: {groups: [a]}\n", "needs token_sha256", "/humans/bob", 2},
        {"listen: 7400\n", "non-empty string", "/listen", 1},
        {"store: mysql://x\n", "sqlite:<path> or postgres://", "/store", 1},
        {"tool:\n  x: 1\n", "unknown field 'tool'", "/tool", 2},
        {"tools:\n  h: {command: x, env: {A: 1}}\n", "env values must be strings", "/tools/h/env/A",
         2},
        {"tools: [a]\n", "tools must be a mapping", "/tools", 1},
        {"tools:\n  'a/b': {command: x}\n", "tool server name 'a/b'", "/tools/a/b", 2},
        {"tools:\n  h: x\n", "tool server 'h' must be a mapping", "/tools/h", 2},
        {"tools:\n  h: {url: 'ftp://x'}\n", "url must start with http", "/tools/h/url", 2},
        {"tools:\n  h: {command: x, env: [A]}\n", "env must be a mapping", "/tools/h/env", 2},
        {"tools:\n  h: {command: x, env: {'A=B': c}}\n", "environment variable name 'A=B'",
         "/tools/h/env/A=B", 2},
        {"tools:\n  h: {command: x, idempotent: {get: 1}}\n", "idempotent.get must be true or false",
         "/tools/h/idempotent", 2},
        {"tools:\n  h: {command: x, idempotent: yes}\n", "idempotent must be true, false, or a mapping",
         "/tools/h/idempotent", 2},
        {"tools:\n  h: {command: x, args: x}\n", "must be a list of strings", "/tools/h/args", 2},
        {"agents: [a]\n", "agents must be a mapping", "/agents", 1},
        {"agents:\n  a/b: 3\n", "agent 'a/b' must be a mapping", "/agents/a~1b", 2},
        {"humans: [a]\n", "humans must be a mapping", "/humans", 1},
        {"humans:\n  'a b': {token_env: X}\n", "human name 'a b'", "/humans/a b", 2},
        {"humans:\n  bob: 3\n", "human 'bob' must be a mapping", "/humans/bob", 2},
        {"humans:\n  bob: {token_env: X}\napprovers:\n  ann: {token_env: Y}\n",
         "use humans: or approvers:", "/approvers", 4},
        {"listen: localhost\n", "listen must be host:port", "/listen", 1},
        {"- a\n", "keel.yaml must be a mapping", "", 1},
        {"a: [\n", "YAML syntax error", "", 2},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct keel_config *cfg = NULL;
        struct keel_err err;
        keel_err_clear(&err);
        CHECK_INT(keel_config_parse(cases[i].text, strlen(cases[i].text), "k.yaml", &cfg, NULL,
                                    &err),
                  KEEL_EINVAL);
        CHECK(cfg == NULL);
        CHECK_CONTAINS(err.msg, cases[i].msg);
        CHECK_STR(err.path, cases[i].path);
        CHECK_INT(err.line, cases[i].line);
        CHECK_STR(err.file, "k.yaml");
    }
}

TEST(check_config_reports_undeclared)
{
    const char *cfg_text = "tools: {helpdesk: {command: x}}\nagents: {a/b: {}}\n"
                           "humans: {ann: {groups: [leads], token_env: T}}\n";
    const char *wf_text = "name: x\nidentity: c/d\nsteps:\n"
                          "  - {id: s1, tool: crm/lookup}\n"
                          "  - {id: s2, approval: {group: other}}\n";
    struct keel_config *cfg = NULL;
    struct keel_err err;
    REQUIRE(keel_config_parse(cfg_text, strlen(cfg_text), "k.yaml", &cfg, NULL, &err) == 0);
    struct workflow *wf = load(wf_text, &err);
    REQUIRE(wf);
    struct workflow_diags d;
    workflow_diags_init(&d);
    CHECK_INT(workflow_check_config(wf, cfg, &d, &err), KEEL_EINVAL);
    CHECK_INT(d.len, 3);
    if (d.len == 3) {
        CHECK_CONTAINS(d.items[0].msg, "identity 'c/d' is not declared");
        CHECK_CONTAINS(d.items[1].msg, "tool server 'crm'");
        CHECK_INT(d.items[1].line, 4);
        CHECK_CONTAINS(d.items[2].msg, "group 'other'");
    }
    workflow_diags_cleanup(&d);
    workflow_free(wf);
    keel_config_free(cfg);
}

/* ---- conditions ---------------------------------------------------------------- */

static int switch_next(const struct workflow *wf, const char *step, const char *vars_json,
                       int *next, struct keel_err *err)
{
    struct arena a;
    arena_init(&a);
    struct json_value *vars = NULL;
    int rc = json_parse(&a, vars_json, strlen(vars_json), NULL, &vars, err);
    if (!rc) rc = workflow_switch_next(workflow_step_find(wf, step), vars, &a, next, err);
    arena_cleanup(&a);
    return rc;
}

TEST(switch_conditions_evaluate)
{
    struct workflow *wf = NULL;
    struct keel_err err;
    REQUIRE(workflow_load_file(test_source("tests/data/workflows/good/triage.yaml"), &wf, NULL,
                               &err) == 0);
    int next = -5;
    CHECK_INT(switch_next(wf, "route", "{\"state\":{\"ticket\":{\"priority\":\"high\"}}}", &next,
                          &err),
              0);
    CHECK_INT(next, 2);
    CHECK_INT(switch_next(wf, "route", "{\"state\":{\"ticket\":{\"priority\":\"low\"}}}", &next,
                          &err),
              0);
    CHECK_INT(next, 4);
    /* A missing attribute is an evaluation error, not a silent false. */
    keel_err_clear(&err);
    CHECK(switch_next(wf, "route", "{\"state\":{\"ticket\":{}}}", &next, &err) != 0);
    CHECK_CONTAINS(err.msg, "route");
    workflow_free(wf);

    const char *text = "name: c\nstate: {n: add}\nsteps:\n"
                       "  - id: s\n    switch:\n      - {if: 'state.n + 1', goto: t}\n"
                       "  - {id: t, succeed: true}\n";
    wf = load(text, &err);
    REQUIRE(wf);
    keel_err_clear(&err);
    CHECK_INT(switch_next(wf, "s", "{\"state\":{\"n\":1}}", &next, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "not true or false");
    CHECK_INT(err.line, 6);
    workflow_free(wf);
}

/* ---- JSON Schema ------------------------------------------------------------------ */

#include "workflow/internal.h"

TEST(input_schema_compiled_and_enforced)
{
    struct workflow *wf = NULL;
    struct keel_err err;
    REQUIRE(workflow_load_file(test_source("examples/workflows/support-triage.yaml"), &wf, NULL,
                               &err) == 0);
    REQUIRE(wf->input != NULL);
    struct arena a;
    arena_init(&a);
    struct json_value *in = NULL;
    REQUIRE(json_parse(&a, "{\"ticket_id\":\"T-1\"}", 19, NULL, &in, &err) == 0);
    CHECK_INT(workflow_validate_input(wf, in, &err), 0);
    REQUIRE(json_parse(&a, "{\"ticket_id\":7}", 15, NULL, &in, &err) == 0);
    keel_err_clear(&err);
    CHECK_INT(workflow_validate_input(wf, in, &err), KEEL_ESCHEMA);
    CHECK_STR(err.path, "/ticket_id");
    CHECK_CONTAINS(err.msg, "support-triage");
    arena_cleanup(&a);
    workflow_free(wf);
}

TEST(bad_input_schema_is_positioned)
{
    const char *text = "name: s\ninput:\n  type: object\n  properties:\n    n: {type: 12}\n"
                       "steps: [{id: a, succeed: true}]\n";
    struct keel_err err;
    CHECK(load(text, &err) == NULL);
    CHECK_CONTAINS(err.msg, "not a valid JSON Schema");
    CHECK_INT(err.line, 5);
    CHECK_STR(err.path, "/input/properties/n/type");
}

TEST(workflow_schema_maps_errors_to_positions)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    /* A document the schema rejects: an unknown step field, a bad state key. */
    struct json_value *doc =
        yaml(&a, "name: x\nsteps:\n  - id: a\n    succeed: true\nstate:\n  k: {reducer: sum}\n",
             &err);
    REQUIRE(doc);
    struct workflow_diags d;
    workflow_diags_init(&d);
    keel_err_clear(&err);
    CHECK_INT(workflow_schema_check(doc, "s.yaml", &d, &err), KEEL_ESCHEMA);
    CHECK(d.len >= 1);
    bool found = false;
    for (size_t i = 0; i < d.len; i++)
        if (!strcmp(d.items[i].path, "/state/k") || !strcmp(d.items[i].path, "/state/k/reducer")) {
            found = true;
            CHECK_INT(d.items[i].line, 6);
            CHECK_STR(d.items[i].file, "s.yaml");
        }
    CHECK(found);
    workflow_diags_cleanup(&d);
    /* Every good file passes the schema on its own too. */
    struct json_value *good = NULL;
    REQUIRE(workflow_doc_load(&a, test_source("tests/data/workflows/good/triage.yaml"), &good,
                              &err) == 0);
    CHECK_INT(workflow_schema_check(good, "triage.yaml", NULL, &err), 0);
    arena_cleanup(&a);
}

TEST(conditions_use_cedar_operators)
{
    /* The operators docs/workflows.md promises, over input, state, result. */
    static const struct {
        const char *cond;
        int want; /* 1 true, 0 false */
    } cases[] = {
        {"state.t has priority && state.t.priority == \"high\"", 1},
        {"state.t has missing", 0},
        {"input.id like \"T-*\"", 1},
        {"state.t.tags.contains(\"vip\")", 1},
        {"if input.n > 2 then true else false", 1},
        {"!(input.n > 3) || result.ok", 1},
        {"!(input.n <= 3) || result.ok", 0},
        {"input.n >= 4", 0},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        char text[512];
        snprintf(text, sizeof text,
                 "name: c\nidentity: a/b\nstate: {t: replace}\nsteps:\n"
                 "  - {id: a, tool: x/y}\n"
                 "  - id: s\n    switch:\n      - if: '%s'\n        goto: yes\n"
                 "  - {id: no, succeed: true}\n  - {id: yes, succeed: true}\n",
                 cases[i].cond);
        struct keel_err err;
        struct workflow *wf = load(text, &err);
        if (!wf) fprintf(stderr, "case %zu: %d:%d: %s\n", i, err.line, err.column, err.msg);
        REQUIRE(wf);
        int next = -5;
        int rc = switch_next(wf, "s",
                             "{\"input\":{\"id\":\"T-7\",\"n\":3},\"result\":{\"ok\":false},"
                             "\"state\":{\"t\":{\"priority\":\"high\",\"tags\":[\"vip\"]}}}",
                             &next, &err);
        if (rc) fprintf(stderr, "case %zu: %s\n", i, err.msg);
        CHECK_INT(rc, 0);
        if (next != (cases[i].want ? 3 : 2)) fprintf(stderr, "case %zu: wrong branch\n", i);
        CHECK_INT(next, cases[i].want ? 3 : 2);
        workflow_free(wf);
    }
}

TEST(template_errors_name_the_nested_path)
{
    const char *text = "name: p\nidentity: a/b\nsteps:\n"
                       "  - id: x\n    tool: a/b\n"
                       "    args: {list: [1, {deep: \"${nope.y}\"}], a/b: \"${input}\"}\n";
    struct keel_err err;
    CHECK(load(text, &err) == NULL);
    CHECK_STR(err.path, "/steps/0/args/list/1/deep");
    CHECK_INT(err.line, 6);
    CHECK_INT(err.column, 29);
}

TEST(check_config_identity_tool_list)
{
    const char *cfg_text = "tools: {h: {command: x}, t: {command: y}}\n"
                           "agents: {a/b: {tools: [h/get]}, c/d: {}}\n";
    const char *wf_text = "name: x\nidentity: a/b\nsteps:\n"
                          "  - {id: s1, tool: h/get}\n"
                          "  - {id: s2, tool: h/put}\n"
                          "  - {id: s3, agent: c/d, prompt: hi, tools: [t/x, z/y]}\n";
    struct keel_config *cfg = NULL;
    struct keel_err err;
    REQUIRE(keel_config_parse(cfg_text, strlen(cfg_text), "k.yaml", &cfg, NULL, &err) == 0);
    struct workflow *wf = load(wf_text, &err);
    REQUIRE(wf);
    struct workflow_diags d;
    workflow_diags_init(&d);
    CHECK_INT(workflow_check_config(wf, cfg, &d, &err), KEEL_EINVAL);
    CHECK_INT(d.len, 2);
    if (d.len == 2) {
        CHECK_CONTAINS(d.items[0].msg, "tool 'h/put' is not in the tools: list of identity 'a/b'");
        CHECK_STR(d.items[0].path, "/steps/1/tool");
        CHECK_CONTAINS(d.items[1].msg, "tool server 'z'");
        CHECK_STR(d.items[1].path, "/steps/2/tools/1");
    }
    workflow_diags_cleanup(&d);
    workflow_free(wf);
    keel_config_free(cfg);
}

TEST(json_workflow_errors_are_positioned)
{
    const char *text = "{\n  \"name\": \"j\",\n  \"steps\": [\n"
                       "    {\"id\": \"a\", \"switch\": [{\"if\": \"true\", \"goto\": \"zz\"}]}\n"
                       "  ]\n}\n";
    struct workflow *wf = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    CHECK_INT(workflow_load(text, strlen(text), "w.json", &wf, NULL, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "goto target 'zz' is not a step");
    CHECK_STR(err.file, "w.json");
    CHECK_INT(err.line, 4);
    CHECK_INT(err.column, 51);
    CHECK_STR(err.path, "/steps/0/switch/0/goto");
    /* Duplicate keys in JSON are refused too, at the second key. */
    text = "{\"name\": \"a\", \"steps\": [], \"name\": \"b\"}";
    keel_err_clear(&err);
    CHECK(workflow_load(text, strlen(text), "d.json", &wf, NULL, &err) != 0);
    CHECK_INT(err.line, 1);
    CHECK(err.column > 20);
}

/* ---- one problem each: message and JSON Pointer --------------------------------- */

TEST(compile_problem_table)
{
#define WF(body) "name: t\nidentity: a/b\nstate: {k: replace}\nsteps:\n" body
    static const struct {
        const char *text, *msg, *path;
    } cases[] = {
        {"steps: [{id: a, succeed: true}]\n", "needs a name", ""},
        {"name: 'a b'\nsteps: [{id: a, succeed: true}]\n", "must be 1-128 letters", "/name"},
        {"name: t\nidentity: nobody\nsteps: [{id: a, succeed: true}]\n",
         "must be an agent identity written team/name", "/identity"},
        {"name: t\ninput: [1]\nsteps: [{id: a, succeed: true}]\n", "input must be a JSON Schema",
         "/input"},
        {"name: t\nstate: [k]\nsteps: [{id: a, succeed: true}]\n", "state must be a mapping",
         "/state"},
        {"name: t\nstate: {'a.b': replace}\nsteps: [{id: a, succeed: true}]\n",
         "state key 'a.b' must be", "/state/a.b"},
        {"name: t\nstate: {k: {initial: 1}}\nsteps: [{id: a, succeed: true}]\n", "needs a reducer",
         "/state/k/reducer"},
        {"name: t\nstate: {k: 3}\nsteps: [{id: a, succeed: true}]\n",
         "reducer must be replace, append, merge or add", "/state/k"},
        {"name: t\n", "needs steps:", "/steps"},
        {"name: t\nsteps: []\n", "non-empty list of steps", "/steps"},
        {"name: t\nsteps: [3]\n", "a step must be a mapping", "/steps/0"},
        {"name: t\nsteps: [{succeed: true}]\n", "step 1 has no id", "/steps/0"},
        {"name: t\nsteps: [{id: 'a b', succeed: true}]\n", "step id 'a b' must be", "/steps/0/id"},
        {"name: t\nsteps: [{id: 7, succeed: true}]\n", "id must be a string, not integer",
         "/steps/0/id"},
        {"name: t\nsteps: [{id: a, next: b}]\n", "step 'a' has no kind", "/steps/0"},
        {WF("  - {id: a, tool: x/y, args: [1]}\n"), "args must be a mapping", "/steps/0/args"},
        {WF("  - {id: a, tool: x/y, compensate: x/z}\n"), "compensate must be a mapping",
         "/steps/0/compensate"},
        {WF("  - {id: a, tool: x/y, compensate: {args: {}}}\n"), "compensate needs a tool",
         "/steps/0/compensate"},
        {WF("  - {id: a, tool: x/y, compensate: {tool: x/z, args: 1}}\n"), "args must be a mapping",
         "/steps/0/compensate/args"},
        {WF("  - {id: a, approval: leads}\n"), "approval must be a mapping", "/steps/0/approval"},
        {WF("  - {id: a, approval: {message: hi}}\n"), "approval needs a group",
         "/steps/0/approval"},
        {WF("  - {id: a, approval: {group: 'a b'}}\n"), "group 'a b' must be",
         "/steps/0/approval/group"},
        {WF("  - {id: a, approval: {group: g, message: [1]}}\n"), "message must be a string",
         "/steps/0/approval/message"},
        {WF("  - {id: a, approval: {group: g, timeout: 30}}\n"), "duration must be a string",
         "/steps/0/approval/timeout"},
        {WF("  - {id: a, approval: {group: g, timeout: 400d}}\n"), "longer than a year",
         "/steps/0/approval/timeout"},
        {WF("  - {id: a, switch: yes}\n"), "switch must be a non-empty list", "/steps/0/switch"},
        {WF("  - {id: a, switch: [x]}\n"), "switch case must be a mapping", "/steps/0/switch/0"},
        {WF("  - {id: a, switch: [{if: 'true'}]}\n"), "switch case needs goto",
         "/steps/0/switch/0"},
        {WF("  - {id: a, switch: [{goto: a}]}\n"), "switch case needs if", "/steps/0/switch/0"},
        {WF("  - {id: a, switch: [{if: '', goto: a}]}\n"), "empty condition",
         "/steps/0/switch/0/if"},
        {WF("  - {id: a, switch: [{if: state.nope, goto: a}]}\n"), "reads state key 'nope'",
         "/steps/0/switch/0/if"},
        {WF("  - {id: a, switch: [{if: 'true', goto: a}], default: zz}\n"),
         "goto target 'zz'", "/steps/0/default"},
        {WF("  - {id: a, set: {}}\n"), "set must be a non-empty mapping", "/steps/0/set"},
        {WF("  - {id: a, succeed: 3}\n"), "succeed must be true, a message string",
         "/steps/0/succeed"},
        {WF("  - {id: a, fail: {message: [1]}}\n"), "message must be a string",
         "/steps/0/fail/message"},
        {WF("  - {id: a, agent: triage, prompt: p}\n"), "must be an identity written team/name",
         "/steps/0/agent"},
        {WF("  - {id: a, agent: a/b}\n"), "agent step needs a prompt", "/steps/0"},
        {WF("  - {id: a, agent: a/b, prompt: [p]}\n"), "prompt must be a string",
         "/steps/0/prompt"},
        {WF("  - {id: a, agent: a/b, prompt: p, tools: crm}\n"), "must be a list of strings",
         "/steps/0/tools"},
        {WF("  - {id: a, agent: a/b, prompt: p, tools: [crm]}\n"), "must be written server/tool",
         "/steps/0/tools/0"},
        {WF("  - {id: a, agent: a/b, prompt: p, output: 3}\n"), "output must be a JSON Schema",
         "/steps/0/output"},
        {WF("  - {id: a, agent: a/b, prompt: p, output: {type: nope}}\n"),
         "not a valid JSON Schema", "/steps/0/output/type"},
        {WF("  - {id: a, agent: a/b, prompt: p, max_turns: 0}\n"), "max_turns must be an integer",
         "/steps/0/max_turns"},
        {WF("  - {id: a, tool: x/y, retry: 0}\n"), "retry attempts must be an integer",
         "/steps/0/retry"},
        {WF("  - {id: a, tool: x/y, retry: {attempts: 101}}\n"), "retry attempts must be",
         "/steps/0/retry/attempts"},
        {WF("  - {id: a, tool: x/y, retry: {backoff: 1s}}\n"), "backoff must be a mapping",
         "/steps/0/retry/backoff"},
        {WF("  - {id: a, tool: x/y, retry: {backoff: {multiplier: 20}}}\n"),
         "multiplier must be a number from 1 to 10", "/steps/0/retry/backoff/multiplier"},
        {WF("  - {id: a, tool: x/y, retry: {backoff: {initial: 1m, max: 1s}}}\n"),
         "backoff max is shorter than initial", "/steps/0/retry/backoff"},
        {WF("  - {id: a, tool: x/y, retry: {tries: 2}}\n"), "unknown field 'tries' in retry",
         "/steps/0/retry/tries"},
        {WF("  - {id: a, tool: x/y, next: b, goto: b}\n  - {id: b, succeed: true}\n"),
         "use next: or goto:, not both", "/steps/0/goto"},
        {WF("  - {id: a, set: {k: 1}, next: nope}\n"), "goto target 'nope'", "/steps/0/next"},
        {WF("  - {id: a, tool: x/y, save: 3}\n"), "save must be a string", "/steps/0/save"},
        {WF("  - {id: a, tool: x/y, timeout: -5s}\n"), "bad duration", "/steps/0/timeout"},
        {"[1, 2]\n", "must be a mapping", ""},
        {"name: t\nstate: {n: {reducer: add, initial: '0'}}\nsteps: [{id: a, succeed: true}]\n",
         "initial value of 'n' is a string, but its reducer add needs a number", "/state/n/initial"},
        {"name: t\nstate: {n: {reducer: append, initial: {}}}\nsteps: [{id: a, succeed: true}]\n",
         "reducer append needs an array", "/state/n/initial"},
        {"name: t\nstate: {n: add}\nsteps: [{id: a, set: {n: 'one'}}]\n",
         "set writes a string to 'n', but its reducer add needs a number", "/steps/0/set/n"},
        {"name: t\nstate: {m: merge}\nsteps: [{id: a, set: {m: [1]}}]\n",
         "reducer merge needs an object", "/steps/0/set/m"},
    };
#undef WF
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct keel_err err;
        struct workflow *wf = load(cases[i].text, &err);
        CHECK(wf == NULL);
        workflow_free(wf);
        if (!strstr(err.msg, cases[i].msg) || strcmp(err.path, cases[i].path) != 0)
            TEST_FAIL_AT(__FILE__, __LINE__, "case %zu: expected \"%s\" at \"%s\", got \"%s\" at \"%s\"",
                         i, cases[i].msg, cases[i].path, err.msg, err.path);
        CHECK(err.line > 0);
        CHECK_STR(err.file, "t.yaml");
    }
}

TEST(diags_are_capped)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "name: many\nsteps:\n");
    for (int i = 0; i < WORKFLOW_MAX_DIAGS + 20; i++) buf_printf(&b, "  - {id: s%d, bogus: 1}\n", i);
    struct workflow_diags d;
    workflow_diags_init(&d);
    struct workflow *wf = NULL;
    CHECK(workflow_load(b.data, b.len, "m.yaml", &wf, &d, NULL) != 0);
    CHECK_INT(d.len, WORKFLOW_MAX_DIAGS);
    CHECK(d.truncated);
    workflow_diags_cleanup(&d);
    buf_cleanup(&b);
}

TEST(yaml_large_mapping_duplicates)
{
    struct buf b;
    buf_init(&b);
    for (int i = 0; i < 40; i++) buf_printf(&b, "k%d: %d\n", i, i);
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v = yaml(&a, b.data, &err);
    REQUIRE(v);
    CHECK_INT(v->len, 40);
    CHECK_INT(json_get_int(v, "k39", -1), 39);
    buf_puts(&b, "k35: again\n");
    CHECK(yaml(&a, b.data, &err) == NULL);
    CHECK_CONTAINS(err.msg, "duplicate key 'k35'");
    CHECK_INT(err.line, 41);
    buf_cleanup(&b);
    arena_cleanup(&a);
}

TEST(yaml_core_tags)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v = yaml(&a,
                                "a: !!str 12\nb: !!int \"12\"\nc: !!bool true\nd: !!null ~\n"
                                "e: !!float 1.5\nf: !!map {x: 1}\ng: !!seq [1]\nh: ! 12\n",
                                &err);
    if (!v) fprintf(stderr, "%d:%d: %s\n", err.line, err.column, err.msg);
    REQUIRE(v);
    char *s = to_json(v);
    CHECK_STR(s, "{\"a\":\"12\",\"b\":12,\"c\":true,\"d\":null,\"e\":1.5,\"f\":{\"x\":1},"
                 "\"g\":[1],\"h\":\"12\"}");
    free(s);
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"a: !!int abc\n", "'abc' is not a valid !!int"},
        {"a: !!bool 1\n", "'1' is not a valid !!bool"},
        {"a: !!binary aGk=\n", "YAML tag '!!binary' is not supported"},
        {"a: !!map [1]\n", "is not supported here"},
        {"a: !local {x: 1}\n", "is not supported here"},
        {"&k a: 1\n", "anchors on mapping keys"},
        {"a: 123456789012345678901234567890123456789012345678901234567890123456789012345678901"
         "23456789012345678901234567890123456789012345678901234567890\n",
         "number is longer than"},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(bad); i++) {
        keel_err_clear(&err);
        CHECK(yaml(&a, bad[i].text, &err) == NULL);
        CHECK_CONTAINS(err.msg, bad[i].msg);
        CHECK_INT(err.line, 1);
    }
    arena_cleanup(&a);
}

TEST(doc_parse_sniffs_without_extension)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v = NULL;
    const char *j = "  \n{\"a\": 1}";
    REQUIRE(workflow_doc_parse(&a, j, strlen(j), NULL, &v, &err) == 0);
    CHECK_INT(json_get_int(v, "a", 0), 1);
    /* Sniffed as JSON: YAML-only syntax is then an error. */
    const char *y = "{a: 1}";
    CHECK(workflow_doc_parse(&a, y, strlen(y), "noext", &v, &err) != 0);
    const char *y2 = "a: 1\n";
    REQUIRE(workflow_doc_parse(&a, y2, strlen(y2), NULL, &v, &err) == 0);
    CHECK_INT(json_get_int(v, "a", 0), 1);
    CHECK_INT(workflow_doc_load(&a, "/nonexistent/w.yaml", &v, &err), KEEL_ENOENT);
    CHECK_STR(err.file, "/nonexistent/w.yaml");
    arena_cleanup(&a);
}

TEST(state_key_schemas)
{
    struct keel_err err;
    /* The initial value must match the key's schema, positioned at it. */
    const char *bad_initial = "name: s\nstate:\n  n: {reducer: add, initial: 50,\n"
                              "      schema: {maximum: 10}}\nsteps: [{id: a, succeed: true}]\n";
    CHECK(load(bad_initial, &err) == NULL);
    CHECK_CONTAINS(err.msg, "state.n would not match its schema");
    CHECK_STR(err.path, "/state/n/initial");
    CHECK_INT(err.line, 3);
    const char *bad_schema = "name: s\nstate:\n  n: {reducer: add, schema: {type: 12}}\n"
                             "steps: [{id: a, succeed: true}]\n";
    CHECK(load(bad_schema, &err) == NULL);
    CHECK_CONTAINS(err.path, "/state/n/schema");
    const char *good = "name: s\nstate:\n  n: {reducer: add, initial: 1, schema: {maximum: 10}}\n"
                       "steps: [{id: a, succeed: true}]\n";
    struct workflow *wf = load(good, &err);
    REQUIRE(wf);
    const struct workflow_state_key *k = workflow_state_find(wf, "n");
    REQUIRE(k && k->schema);
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    REQUIRE(json_parse(&a, "11", 2, NULL, &v, &err) == 0);
    CHECK_INT(workflow_state_check(k, v, &err), KEEL_ESCHEMA);
    CHECK_CONTAINS(err.msg, "state.n");
    REQUIRE(json_parse(&a, "10", 2, NULL, &v, &err) == 0);
    CHECK_INT(workflow_state_check(k, v, &err), 0);
    arena_cleanup(&a);
    workflow_free(wf);
}
