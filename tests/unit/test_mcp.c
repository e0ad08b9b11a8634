/*
 * test_mcp.c — the MCP layer against real servers: the example tool servers
 * built next to this binary (tool_helpdesk, tool_crm, tool_tracker), a
 * deliberately broken server (tests/data/mcp/bad_server.sh), and the MCP
 * reference server @modelcontextprotocol/server-everything from tests/peers.
 *
 * Each test gets a fresh temporary folder for the tool's SQLite file; the
 * idempotency table is read back with the sqlite3 command-line tool.
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "child_fixture.h"
#include "mcp/mcp.h"
#include "test.h"

/* ---- fixtures ---------------------------------------------------------- */

struct fixture {
    char dir[256];
    char db[512];
    char cmd[4400];
    char log[512];
    char envbuf[8][600];
    const char *env[8];
    const char *args[4];
    struct mcp_server_config cfg;
};

static void fx_env(struct fixture *f, const char *kv)
{
    size_t i = f->cfg.nenv;
    snprintf(f->envbuf[i], sizeof f->envbuf[i], "%s", kv);
    f->env[i] = f->envbuf[i];
    f->cfg.nenv = i + 1;
}

/* A config for build-dir/tool_<tool> on a new database. */
static void fx_init(struct fixture *f, const char *tool)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/keel-test-mcp-XXXXXX");
    if (!mkdtemp(f->dir)) abort();
    snprintf(f->db, sizeof f->db, "%s/%s.db", f->dir, tool);
    snprintf(f->log, sizeof f->log, "%s/stderr.log", f->dir);
    char program[64];
    snprintf(program, sizeof program, "tool_%s", tool);
    (void)test_built_program(program, f->cmd, sizeof f->cmd); /* if missing, start fails */
    f->cfg.name = tool;
    f->cfg.command = f->cmd;
    f->cfg.env = f->env;
    f->cfg.args = f->args;
    f->cfg.shutdown_timeout_ms = 500;
    f->cfg.call_timeout_ms = 20000;
    char kv[600];
    snprintf(kv, sizeof kv, "KEEL_TOOL_DB=%s", f->db);
    fx_env(f, kv);
}

static void fx_cleanup(struct fixture *f)
{
    DIR *d = opendir(f->dir);
    if (!d) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(f->dir);
}

/* Runs one SQL query with the sqlite3 CLI and returns the integer result
 * (-1 on failure). */
static long long sql_int(const char *db, const char *sql)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"%s\"", db, sql);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    long long v = -1;
    if (fscanf(p, "%lld", &v) != 1) v = -1;
    pclose(p);
    return v;
}

/* ---- JSON-RPC codec ---------------------------------------------------- */

TEST(rpc_decode_kinds)
{
    struct arena a;
    arena_init(&a);
    struct mcp_rpc_msg m;
    struct keel_err err;
    const char *req = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\",\"params\":{}}";
    REQUIRE(mcp_rpc_decode(&a, req, strlen(req), &m, &err) == 0);
    CHECK_INT(m.kind, MCP_RPC_REQUEST);
    CHECK_STR(m.method, "tools/list");
    CHECK_INT(m.id->u.n.i, 7);

    const char *note = " {\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\r\n";
    REQUIRE(mcp_rpc_decode(&a, note, strlen(note), &m, &err) == 0);
    CHECK_INT(m.kind, MCP_RPC_NOTIFICATION);
    CHECK(m.id == NULL && m.params == NULL);

    const char *res = "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"result\":{\"x\":1}}";
    REQUIRE(mcp_rpc_decode(&a, res, strlen(res), &m, &err) == 0);
    CHECK_INT(m.kind, MCP_RPC_RESULT);
    CHECK_STR(m.id->u.s.str, "abc");
    CHECK_INT(json_get_int(m.result, "x", 0), 1);

    const char *e = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":"
                    "\"Parse error\",\"data\":[1]}}";
    REQUIRE(mcp_rpc_decode(&a, e, strlen(e), &m, &err) == 0);
    CHECK_INT(m.kind, MCP_RPC_ERROR);
    CHECK_INT(m.error_code, MCP_RPC_PARSE_ERROR);
    CHECK_STR(m.error_message, "Parse error");
    CHECK(json_is(m.error_data, JSON_ARRAY));
    arena_cleanup(&a);
}

TEST(rpc_decode_rejects)
{
    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        {"[]", "batch"},
        {"42", "expected an object"},
        {"{\"id\":1,\"method\":\"x\"}", "\"jsonrpc\": \"2.0\""},
        {"{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"x\"}", "\"jsonrpc\": \"2.0\""},
        {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"x\"}", "id must be"},
        {"{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"x\"}", "id must be"},
        {"{\"jsonrpc\":\"2.0\",\"id\":{},\"result\":1}", "id must be"},
        {"{\"jsonrpc\":\"2.0\",\"method\":\"\"}", "non-empty"},
        {"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":3}", "object or array"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":1,\"error\":{}}", "both"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1}", "neither"},
        {"{\"jsonrpc\":\"2.0\",\"result\":1}", "no \"id\""},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"x\",\"message\":\"m\"}}", "code"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1}}", "message"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"result\":1}", "both"},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"result\":1}", "not valid JSON"},
        {"{\"jsonrpc\":\"2.0\",", "not valid JSON"},
    };
    struct arena a;
    arena_init(&a);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct mcp_rpc_msg m = {.kind = 99};
        struct keel_err err;
        keel_err_clear(&err);
        int rc = mcp_rpc_decode(&a, cases[i].text, strlen(cases[i].text), &m, &err);
        if (rc == 0) TEST_FAIL_AT(__FILE__, __LINE__, "case %zu decoded: %s", i, cases[i].text);
        CHECK_CONTAINS(err.msg, cases[i].msg);
        CHECK_INT(m.kind, 99); /* untouched on failure */
    }
    arena_cleanup(&a);
}

TEST(rpc_write_roundtrip)
{
    struct arena a;
    arena_init(&a);
    struct buf b;
    buf_init(&b);
    struct json_value *params = test_parse(&a, "{\"name\":\"t\\n\",\"arguments\":{\"x\":[1,2]}}");
    mcp_rpc_write_request(&b, 12, "tools/call", params);
    CHECK(strchr(b.data, '\n') == NULL); /* stdio framing: no raw newline */
    struct mcp_rpc_msg m;
    struct keel_err err;
    REQUIRE(mcp_rpc_decode(&a, b.data, b.len, &m, &err) == 0);
    CHECK_INT(m.kind, MCP_RPC_REQUEST);
    CHECK_INT(m.id->u.n.i, 12);
    CHECK(json_equal(m.params, params));

    buf_reset(&b);
    mcp_rpc_write_notification(&b, "notifications/cancelled", NULL);
    REQUIRE(mcp_rpc_decode(&a, b.data, b.len, &m, &err) == 0);
    CHECK_INT(m.kind, MCP_RPC_NOTIFICATION);

    buf_reset(&b);
    mcp_rpc_write_result(&b, json_cstr(&a, "r1"), NULL);
    REQUIRE(mcp_rpc_decode(&a, b.data, b.len, &m, &err) == 0);
    CHECK_INT(m.kind, MCP_RPC_RESULT);
    CHECK(json_is(m.result, JSON_OBJECT) && m.result->len == 0);

    buf_reset(&b);
    mcp_rpc_write_error(&b, NULL, MCP_RPC_METHOD_NOT_FOUND, "no \"such\" method", NULL);
    REQUIRE(mcp_rpc_decode(&a, b.data, b.len, &m, &err) == 0);
    CHECK_INT(m.kind, MCP_RPC_ERROR);
    CHECK(json_is(m.id, JSON_NULL));
    CHECK_STR(m.error_message, "no \"such\" method");
    buf_cleanup(&b);
    arena_cleanup(&a);
}

/* ---- the example servers ----------------------------------------------- */

TEST(start_and_list_tools)
{
    struct fixture f;
    fx_init(&f, "helpdesk");
    struct mcp_client *c = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct mcp_client_stats st;
    mcp_client_stats(c, &st);
    CHECK_STR(st.protocol_version, MCP_PROTOCOL_VERSION);
    CHECK_INT(st.starts, 1);
    CHECK(st.pid > 0);

    struct arena a;
    arena_init(&a);
    struct mcp_tool *tools = NULL;
    size_t n = 0;
    REQUIRE(mcp_client_list_tools(c, &a, &tools, &n, &err) == 0);
    CHECK_INT(n, 4);
    const char *names[] = {"get_ticket", "list_tickets", "add_note", "set_status"};
    for (size_t i = 0; i < n && i < 4; i++) {
        CHECK_STR(tools[i].name, names[i]);
        CHECK_STR(tools[i].server, "helpdesk");
        CHECK(json_is(tools[i].input_schema, JSON_OBJECT));
        CHECK(json_is(tools[i].output_schema, JSON_OBJECT));
    }
    struct mcp_tool t;
    REQUIRE(mcp_client_tool(c, "get_ticket", &a, &t, &err) == 0);
    CHECK(t.read_only_hint && t.idempotent_hint && t.idempotent && !t.destructive_hint);
    CHECK_STR(t.title, "Get ticket");
    CHECK_STR(json_get_str(json_get(t.input_schema, "properties"), "x", "none"), "none");
    REQUIRE(mcp_client_tool(c, "add_note", &a, &t, &err) == 0);
    CHECK(!t.idempotent && !t.idempotent_hint && !t.read_only_hint && !t.destructive_hint);
    REQUIRE(mcp_client_tool(c, "set_status", &a, &t, &err) == 0);
    CHECK(t.idempotent && t.destructive_hint);
    CHECK_INT(mcp_client_tool(c, "nope", &a, &t, &err), KEEL_ENOENT);
    CHECK_CONTAINS(err.msg, "has no tool 'nope' (it has: get_ticket, list_tickets");
    CHECK_INT(mcp_client_ping(c, 5000, &err), 0);
    mcp_client_free(c);
    arena_cleanup(&a);
    fx_cleanup(&f);
}

TEST(list_tools_follows_cursor)
{
    struct fixture f;
    fx_init(&f, "helpdesk");
    fx_env(&f, "KEEL_TOOL_PAGE_SIZE=1"); /* four pages of one tool */
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct mcp_tool *tools;
    size_t n = 0;
    REQUIRE(mcp_client_list_tools(c, &a, &tools, &n, &err) == 0);
    CHECK_INT(n, 4);
    if (n == 4) CHECK_STR(tools[3].name, "set_status");
    mcp_client_free(c);
    arena_cleanup(&a);
    fx_cleanup(&f);
}

TEST(call_structured_and_is_error)
{
    struct fixture f;
    fx_init(&f, "helpdesk");
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct mcp_call_result r;
    REQUIRE(mcp_client_call_tool(c, "get_ticket", test_parse(&a, "{\"id\":\"T-1001\"}"), NULL, 0,
                                 &a, &r, &err) == 0);
    CHECK(!r.is_error);
    REQUIRE(r.structured != NULL);
    CHECK_STR(json_get_str(r.structured, "id", ""), "T-1001");
    CHECK_STR(json_get_str(r.structured, "status", ""), "open");
    CHECK_STR(json_get_str(r.structured, "customer_id", ""), "A-100");
    CHECK_CONTAINS(mcp_result_text(&a, &r), "CSV export fails");
    CHECK(json_is(r.raw, JSON_OBJECT));

    /* A tool-level failure is a result, not an error. */
    REQUIRE(mcp_client_call_tool(c, "get_ticket", test_parse(&a, "{\"id\":\"T-9\"}"), NULL, 0, &a,
                                 &r, &err) == 0);
    CHECK(r.is_error);
    CHECK(r.structured == NULL);
    CHECK_STR(mcp_result_text(&a, &r), "no ticket 'T-9'");

    /* An unknown tool is a JSON-RPC error: KEEL_EPROTO with the message. */
    keel_err_clear(&err);
    CHECK_INT(mcp_client_call_tool(c, "no_such_tool", NULL, NULL, 0, &a, &r, &err), KEEL_EPROTO);
    CHECK_CONTAINS(err.msg, "JSON-RPC error -32602");
    CHECK_CONTAINS(err.msg, "Unknown tool: no_such_tool");

    /* Arguments must be an object. */
    CHECK_INT(mcp_client_call_tool(c, "get_ticket", test_parse(&a, "[1]"), NULL, 0, &a, &r, &err),
              KEEL_EINVAL);
    mcp_client_free(c);
    arena_cleanup(&a);
    fx_cleanup(&f);
}

TEST(idempotency_key_dedupes)
{
    struct fixture f;
    fx_init(&f, "helpdesk");
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct json_value *args = test_parse(&a, "{\"id\":\"T-1002\",\"body\":\"checked the logs\"}");
    struct mcp_call_result r1, r2, r3;
    REQUIRE(mcp_client_call_tool(c, "add_note", args, "run1/step2/0", 0, &a, &r1, &err) == 0);
    REQUIRE(mcp_client_call_tool(c, "add_note", args, "run1/step2/0", 0, &a, &r2, &err) == 0);
    CHECK(json_equal(r1.raw, r2.raw));
    CHECK_INT(json_get_int(r1.structured, "notes_count", 0), 1);
    CHECK_INT(sql_int(f.db, "SELECT count FROM calls WHERE key = 'run1/step2/0'"), 2);
    CHECK_INT(sql_int(f.db, "SELECT count(*) FROM notes WHERE ticket_id = 'T-1002'"), 1);
    /* Another key, and no key, each perform the effect. */
    REQUIRE(mcp_client_call_tool(c, "add_note", args, "run1/step2/1", 0, &a, &r3, &err) == 0);
    CHECK_INT(json_get_int(r3.structured, "notes_count", 0), 2);
    REQUIRE(mcp_client_call_tool(c, "add_note", args, NULL, 0, &a, &r3, &err) == 0);
    CHECK_INT(json_get_int(r3.structured, "notes_count", 0), 3);
    CHECK_INT(sql_int(f.db, "SELECT count(*) FROM calls"), 2);
    mcp_client_free(c);
    arena_cleanup(&a);
    fx_cleanup(&f);
}

struct worker {
    struct mcp_client *c;
    int index;
    int ok;
    int mismatched;
    char err[KEEL_ERR_MSG_MAX];
};

#define THREADS 8
#define CALLS_PER_THREAD 25

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct arena a;
    arena_init(&a);
    static const char *const ids[] = {"T-1001", "T-1002", "T-1003", "T-1004"};
    for (int i = 0; i < CALLS_PER_THREAD; i++) {
        arena_reset(&a);
        struct keel_err err;
        keel_err_clear(&err);
        struct mcp_call_result r;
        const char *id = ids[(w->index + i) % 4];
        int rc;
        if (i % 2 == 0) {
            struct json_value *args = json_object(&a);
            json_object_setc(&a, args, "id", json_cstr(&a, id));
            rc = mcp_client_call_tool(w->c, "get_ticket", args, NULL, 0, &a, &r, &err);
            if (!rc && strcmp(json_get_str(r.structured, "id", ""), id) != 0) w->mismatched++;
        } else {
            struct json_value *args = json_object(&a);
            json_object_setc(&a, args, "id", json_cstr(&a, id));
            char *body = arena_printf(&a, "note %d/%d", w->index, i);
            json_object_setc(&a, args, "body", json_cstr(&a, body));
            char *key = arena_printf(&a, "k-%d-%d", w->index, i);
            rc = mcp_client_call_tool(w->c, "add_note", args, key, 0, &a, &r, &err);
            if (!rc && strcmp(json_get_str(r.structured, "ticket_id", ""), id) != 0)
                w->mismatched++;
        }
        if (rc == 0 && !r.is_error) w->ok++;
        else snprintf(w->err, sizeof w->err, "%s", err.msg);
    }
    arena_cleanup(&a);
    return NULL;
}

TEST(concurrent_calls_from_8_threads)
{
    struct fixture f;
    fx_init(&f, "helpdesk");
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.c = c, .index = i};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    int ok = 0, mismatched = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += w[i].ok;
        mismatched += w[i].mismatched;
        if (w[i].err[0]) fprintf(stderr, "worker %d: %s\n", i, w[i].err);
    }
    CHECK_INT(ok, THREADS * CALLS_PER_THREAD);
    CHECK_INT(mismatched, 0);
    /* Every add_note had its own key: one effect each, none repeated. */
    long long notes = THREADS * (CALLS_PER_THREAD / 2);
    CHECK_INT(sql_int(f.db, "SELECT count(*) FROM calls WHERE count = 1"), notes);
    CHECK_INT(sql_int(f.db, "SELECT count(*) FROM notes WHERE body LIKE 'note %'"), notes);
    struct mcp_client_stats st;
    mcp_client_stats(c, &st);
    CHECK_INT(st.calls, THREADS * CALLS_PER_THREAD);
    CHECK_INT(st.starts, 1);
    mcp_client_free(c);
    fx_cleanup(&f);
}

TEST(crash_after_effect_then_retry_same_key)
{
    struct fixture f;
    fx_init(&f, "tracker");
    fx_env(&f, "KEEL_TOOL_CRASH_ON=create_issue"); /* after the commit, before the reply */
    f.cfg.stderr_log = f.log;
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct json_value *args = test_parse(&a, "{\"title\":\"Export OOM\",\"labels\":[\"bug\"]}");
    struct mcp_call_result r;
    keel_err_clear(&err);
    CHECK_INT(mcp_client_call_tool(c, "create_issue", args, "run7/open_issue/0", 0, &a, &r, &err),
              KEEL_EIO);
    CHECK_CONTAINS(err.msg, "server 'tracker' exited with status 99");
    /* The engine retries with the same key: the server restarts, and the
     * effect is not repeated. */
    REQUIRE(mcp_client_call_tool(c, "create_issue", args, "run7/open_issue/0", 0, &a, &r,
                                 &err) == 0);
    CHECK_STR(json_get_str(r.structured, "key", ""), "ENG-3");
    CHECK_INT(sql_int(f.db, "SELECT count FROM calls WHERE key = 'run7/open_issue/0'"), 2);
    CHECK_INT(sql_int(f.db, "SELECT count(*) FROM issues WHERE title = 'Export OOM'"), 1);
    struct mcp_client_stats st;
    mcp_client_stats(c, &st);
    CHECK_INT(st.starts, 2);
    CHECK(st.exits >= 1);
    mcp_client_free(c);
    /* The child's stderr went to the log file. */
    struct buf log;
    buf_init(&log);
    CHECK_INT(keel_read_file(f.log, 1 << 20, &log, &err), 0);
    CHECK_CONTAINS(log.data, "crashing in create_issue");
    buf_cleanup(&log);
    arena_cleanup(&a);
    fx_cleanup(&f);
}

TEST(killed_mid_call_then_restart)
{
    struct fixture f;
    fx_init(&f, "helpdesk");
    fx_env(&f, "KEEL_TOOL_CRASH_ON=get_ticket:kill");
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct json_value *args = test_parse(&a, "{\"id\":\"T-1001\"}");
    struct mcp_call_result r;
    keel_err_clear(&err);
    CHECK_INT(mcp_client_call_tool(c, "get_ticket", args, NULL, 0, &a, &r, &err), KEEL_EIO);
    CHECK_CONTAINS(err.msg, "killed by signal 9");
    REQUIRE(mcp_client_call_tool(c, "get_ticket", args, NULL, 0, &a, &r, &err) == 0);
    CHECK_STR(json_get_str(r.structured, "id", ""), "T-1001");
    mcp_client_free(c);
    arena_cleanup(&a);
    fx_cleanup(&f);
}

TEST(timeout_cancels)
{
    struct fixture f;
    fx_init(&f, "crm");
    fx_env(&f, "KEEL_TOOL_DELAY_MS=lookup_account:3000");
    f.cfg.shutdown_timeout_ms = 200;
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct mcp_call_result r;
    int64_t t0 = keel_mono_ns();
    keel_err_clear(&err);
    CHECK_INT(mcp_client_call_tool(c, "lookup_account", test_parse(&a, "{\"id\":\"A-100\"}"), NULL,
                                   200, &a, &r, &err),
              KEEL_ETIMEOUT);
    int64_t ms = (keel_mono_ns() - t0) / 1000000;
    CHECK(ms >= 200 && ms < 2500);
    CHECK_CONTAINS(err.msg, "did not answer within 200 ms");
    struct mcp_client_stats st;
    mcp_client_stats(c, &st);
    CHECK_INT(st.timeouts, 1);
    mcp_client_free(c); /* server is still sleeping: SIGTERM after the grace */
    arena_cleanup(&a);
    fx_cleanup(&f);
}

TEST(garbage_from_example_server_resets)
{
    struct fixture f;
    fx_init(&f, "crm");
    fx_env(&f, "KEEL_TOOL_GARBAGE_ON=get_entitlements");
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct mcp_call_result r;
    keel_err_clear(&err);
    CHECK_INT(mcp_client_call_tool(c, "get_entitlements",
                                   test_parse(&a, "{\"account_id\":\"A-1\"}"), NULL, 0, &a, &r,
                                   &err),
              KEEL_EPROTO);
    CHECK_CONTAINS(err.msg, "malformed message");
    /* Connection reset: the next call runs on a new process. */
    REQUIRE(mcp_client_call_tool(c, "lookup_account", test_parse(&a, "{\"id\":\"A-300\"}"), NULL, 0,
                                 &a, &r, &err) == 0);
    CHECK_STR(json_get_str(r.structured, "updated_at", ""), "2019-03-01T00:00:00Z");
    struct mcp_client_stats st;
    mcp_client_stats(c, &st);
    CHECK_INT(st.starts, 2);
    mcp_client_free(c);
    arena_cleanup(&a);
    fx_cleanup(&f);
}

/* ---- the broken server ------------------------------------------------- */

static void bad_config(struct fixture *f, const char *mode)
{
    memset(f, 0, sizeof *f);
    f->dir[0] = '\0';
    f->args[0] = test_source("tests/data/mcp/bad_server.sh");
    f->args[1] = mode;
    f->cfg.name = "bad";
    f->cfg.command = "sh";
    f->cfg.args = f->args;
    f->cfg.nargs = 2;
    f->cfg.start_timeout_ms = 10000;
    f->cfg.call_timeout_ms = 10000;
    f->cfg.shutdown_timeout_ms = 300;
}

/* Gives a bad_config fixture a folder and sends the server's stderr to a
 * log file in it (the script logs what it received there). */
static bool fx_log(struct fixture *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/keel-test-mcp-XXXXXX");
    if (!mkdtemp(f->dir)) return false;
    snprintf(f->log, sizeof f->log, "%s/stderr.log", f->dir);
    f->cfg.stderr_log = f->log;
    return true;
}

TEST(bad_server_start_failures)
{
    static const struct {
        const char *mode;
        int code;
        const char *msg;
    } cases[] = {
        {"exit-now", KEEL_EIO, "exited with status 3"},
        {"garbage-init", KEEL_EPROTO, "malformed message"},
        {"old-version", KEEL_EPROTO, "speaks MCP 1999-01-01"},
        {"no-tools", KEEL_EPROTO, "does not offer tools"},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct fixture f;
        bad_config(&f, cases[i].mode);
        struct mcp_client *c = NULL;
        struct keel_err err;
        keel_err_clear(&err);
        int rc = mcp_client_start(&f.cfg, &c, &err);
        CHECK_INT(rc, cases[i].code);
        CHECK_CONTAINS(err.msg, cases[i].msg);
        CHECK_CONTAINS(err.msg, "starting tool server 'bad'");
        CHECK(c == NULL);
    }
}

TEST(bad_server_call_failures)
{
    static const struct {
        const char *mode;
        int code;
        const char *msg;
    } cases[] = {
        {"garbage-call", KEEL_EPROTO, "malformed message"},
        {"huge", KEEL_EPROTO, "longer than 16777216 bytes"},
        {"wrong-shape", KEEL_EPROTO, "no content array"},
        {"batch", KEEL_EPROTO, "batch"},
        {"exit-call", KEEL_EIO, "exited with status 4"},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct fixture f;
        bad_config(&f, cases[i].mode);
        struct mcp_client *c = NULL;
        struct keel_err err;
        REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
        struct arena a;
        arena_init(&a);
        struct mcp_call_result r;
        keel_err_clear(&err);
        CHECK_INT(mcp_client_call_tool(c, "t", NULL, NULL, 0, &a, &r, &err), cases[i].code);
        CHECK_CONTAINS(err.msg, cases[i].msg);
        /* The client recovers: a new process answers ping. */
        CHECK_INT(mcp_client_ping(c, 5000, &err), 0);
        mcp_client_free(c);
        arena_cleanup(&a);
    }
}

TEST(server_requests_and_stray_responses)
{
    struct fixture f;
    bad_config(&f, "stray");
    REQUIRE(fx_log(&f));
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct mcp_call_result r;
    REQUIRE(mcp_client_call_tool(c, "t", NULL, NULL, 0, &a, &r, &err) == 0);
    CHECK_STR(mcp_result_text(&a, &r), "ok");
    struct mcp_client_stats st;
    mcp_client_stats(c, &st);
    CHECK_INT(st.starts, 1); /* a stray id and server requests are not errors */
    mcp_client_free(c);
    /* Keel answered the server's ping and refused its sampling request. */
    struct buf log;
    buf_init(&log);
    REQUIRE(keel_read_file(f.log, 1 << 20, &log, &err) == 0);
    CHECK_CONTAINS(log.data, "got ping reply: {\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"result\":{}}");
    CHECK_CONTAINS(log.data, "\"id\":\"s2\",\"error\":{\"code\":-32601");
    buf_cleanup(&log);
    fx_cleanup(&f);
    arena_cleanup(&a);
}

TEST(config_and_spawn_errors)
{
    struct mcp_client *c = NULL;
    struct keel_err err;
    struct mcp_server_config cfg = {.name = "x y", .command = "true"};
    CHECK_INT(mcp_client_start(&cfg, &c, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "name 'x y' is invalid");
    cfg.name = "x";
    cfg.command = "";
    CHECK_INT(mcp_client_start(&cfg, &c, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "has no command");
    const char *env[] = {"NOEQUALS"};
    cfg.command = "true";
    cfg.env = env;
    cfg.nenv = 1;
    CHECK_INT(mcp_client_start(&cfg, &c, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "not KEY=VALUE");
    cfg.nenv = 0;
    cfg.command = "keel-no-such-tool-server";
    CHECK_INT(mcp_client_start(&cfg, &c, &err), KEEL_ENOENT);
    CHECK_CONTAINS(err.msg, "not found in PATH");
    cfg.command = "/nonexistent/tool";
    CHECK_INT(mcp_client_start(&cfg, &c, &err), KEEL_ENOENT);
    cfg.command = "true";
    cfg.cwd = "/nonexistent-dir";
    CHECK_INT(mcp_client_start(&cfg, &c, &err), KEEL_ENOENT);
    CHECK_CONTAINS(err.msg, "cannot chdir to the cwd for '/nonexistent-dir'");
    cfg.cwd = NULL;
    CHECK_INT(mcp_client_start(&cfg, &c, &err), KEEL_EIO); /* `true` exits at once */
    CHECK_CONTAINS(err.msg, "exited with status 0");
    CHECK(c == NULL);
}

TEST(env_is_minimal_unless_inherited)
{
    /* A shell server that reports one variable through stderr would need
     * more plumbing; instead check the effect: without inherit_env, a
     * variable of ours is not visible, so the tool falls back to its
     * default database name in its cwd. */
    struct fixture f;
    fx_init(&f, "crm");
    f.cfg.nenv = 0; /* no KEEL_TOOL_DB */
    f.cfg.cwd = f.dir;
    setenv("KEEL_TOOL_DB", "/nonexistent-dir/should-not-be-used.db", 1);
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    mcp_client_free(c);
    char path[600];
    snprintf(path, sizeof path, "%s/crm.db", f.dir);
    CHECK(access(path, F_OK) == 0);
    /* With inherit_env the variable reaches the child, whose database open
     * then fails: it exits during startup. */
    f.cfg.inherit_env = true;
    c = NULL;
    keel_err_clear(&err);
    CHECK_INT(mcp_client_start(&f.cfg, &c, &err), KEEL_EIO);
    CHECK_CONTAINS(err.msg, "exited with status 1");
    unsetenv("KEEL_TOOL_DB");
    fx_cleanup(&f);
}

/* ---- the pool ---------------------------------------------------------- */

TEST(pool_routes_server_slash_tool)
{
    struct fixture fh, fc, ft;
    fx_init(&fh, "helpdesk");
    fx_init(&fc, "crm");
    fx_init(&ft, "tracker");
    struct mcp_tool_config overrides[] = {{.tool = "create_issue", .idempotent = MCP_FORCE_YES}};
    ft.cfg.tools = overrides;
    ft.cfg.ntools = 1;
    struct mcp_pool *p = mcp_pool_new();
    struct keel_err err;
    REQUIRE(mcp_pool_add(p, &fh.cfg, &err) == 0);
    REQUIRE(mcp_pool_add(p, &fc.cfg, &err) == 0);
    REQUIRE(mcp_pool_add(p, &ft.cfg, &err) == 0);
    CHECK_INT(mcp_pool_add(p, &fc.cfg, &err), KEEL_EEXIST);
    struct mcp_client *c;
    REQUIRE(mcp_pool_client(p, "crm", &c, &err) == 0);
    struct mcp_client_stats st;
    mcp_client_stats(c, &st);
    CHECK_INT(st.starts, 0); /* lazy */

    struct arena a;
    arena_init(&a);
    struct mcp_call_result r;
    REQUIRE(mcp_pool_call(p, "crm/get_entitlements", test_parse(&a, "{\"account_id\":\"A-300\"}"),
                          NULL, 0, &a, &r, &err) == 0);
    struct json_value *ents = json_get(r.structured, "entitlements");
    REQUIRE(json_is(ents, JSON_ARRAY) && ents->len == 1);
    CHECK_STR(json_get_str(ents->u.items[0], "plan", ""), "starter");
    CHECK(!json_get_bool(ents->u.items[0], "sso", true));
    mcp_client_stats(c, &st);
    CHECK_INT(st.starts, 1);

    struct mcp_tool t;
    REQUIRE(mcp_pool_tool(p, "tracker/create_issue", &a, &t, &err) == 0);
    CHECK(!t.idempotent_hint);
    CHECK(t.idempotent); /* forced by the config */
    CHECK_STR(t.server, "tracker");
    REQUIRE(mcp_pool_tool(p, "helpdesk/add_note", &a, &t, &err) == 0);
    CHECK(!t.idempotent);
    REQUIRE(mcp_pool_call(p, "tracker/search_issues", test_parse(&a, "{\"query\":\"CSV\"}"), NULL,
                          0, &a, &r, &err) == 0);
    struct json_value *issues = json_get(r.structured, "issues");
    REQUIRE(json_is(issues, JSON_ARRAY) && issues->len == 1);
    CHECK_STR(json_get_str(issues->u.items[0], "key", ""), "ENG-1");

    CHECK_INT(mcp_pool_call(p, "jira/create_issue", NULL, NULL, 0, &a, &r, &err), KEEL_ENOENT);
    CHECK_CONTAINS(err.msg, "no tool server named 'jira'");
    CHECK_INT(mcp_pool_call(p, "create_issue", NULL, NULL, 0, &a, &r, &err), KEEL_EINVAL);
    CHECK_INT(mcp_pool_tool(p, "tracker/", &a, &t, &err), KEEL_EINVAL);
    const char *server, *tool;
    REQUIRE(mcp_split_name(&a, "helpdesk/get/ticket", &server, &tool, &err) == 0);
    CHECK_STR(server, "helpdesk");
    CHECK_STR(tool, "get/ticket");
    mcp_pool_free(p);
    arena_cleanup(&a);
    fx_cleanup(&fh);
    fx_cleanup(&fc);
    fx_cleanup(&ft);
}

/* ---- interop with the MCP reference server ----------------------------- */

TEST(interop_server_everything)
{
    const char *node = test_source("tests/peers/node");
    const char *js = "tests/peers/node_modules/@modelcontextprotocol/server-everything/dist/"
                     "index.js";
    char node_path[4096], js_path[4096];
    snprintf(node_path, sizeof node_path, "%s", node);
    snprintf(js_path, sizeof js_path, "%s", test_source(js));
    if (access(node_path, X_OK) != 0 || access(js_path, R_OK) != 0) {
        printf("SKIP interop_server_everything: tests/peers not installed (run scripts/peers)\n");
        return;
    }
    const char *args[] = {js_path, "stdio"};
    struct mcp_server_config cfg = {
        .name = "everything",
        .command = node_path,
        .args = args,
        .nargs = 2,
        .shutdown_timeout_ms = 2000,
    };
    struct mcp_client *c = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    REQUIRE(mcp_client_start(&cfg, &c, &err) == 0);
    struct mcp_client_stats st;
    mcp_client_stats(c, &st);
    CHECK_STR(st.protocol_version, MCP_PROTOCOL_VERSION);
    struct arena a;
    arena_init(&a);
    struct mcp_tool *tools;
    size_t n = 0;
    REQUIRE(mcp_client_list_tools(c, &a, &tools, &n, &err) == 0);
    CHECK(n >= 5);
    struct mcp_tool t;
    REQUIRE(mcp_client_tool(c, "echo", &a, &t, &err) == 0);
    CHECK(t.read_only_hint && t.idempotent && !t.destructive_hint);
    CHECK(json_is(t.input_schema, JSON_OBJECT));

    struct mcp_call_result r;
    REQUIRE(mcp_client_call_tool(c, "echo", test_parse(&a, "{\"message\":\"hello keel\"}"), "k1", 0,
                                 &a, &r, &err) == 0);
    CHECK(!r.is_error);
    CHECK_STR(mcp_result_text(&a, &r), "Echo: hello keel");
    REQUIRE(mcp_client_call_tool(c, "get-sum", test_parse(&a, "{\"a\":2,\"b\":40}"), NULL, 0, &a,
                                 &r, &err) == 0);
    CHECK_CONTAINS(mcp_result_text(&a, &r), "42");
    REQUIRE(mcp_client_tool(c, "get-structured-content", &a, &t, &err) == 0);
    CHECK(json_is(t.output_schema, JSON_OBJECT));
    REQUIRE(mcp_client_call_tool(c, "get-structured-content",
                                 test_parse(&a, "{\"location\":\"Chicago\"}"), NULL, 0, &a, &r,
                                 &err) == 0);
    CHECK(json_is(r.structured, JSON_OBJECT));
    CHECK(json_get(r.structured, "temperature") != NULL);
    /* Bad arguments: the reference server reports them one way or the
     * other (tool error result or JSON-RPC error); either is handled. */
    keel_err_clear(&err);
    int rc =
        mcp_client_call_tool(c, "get-sum", test_parse(&a, "{\"a\":\"x\"}"), NULL, 0, &a, &r, &err);
    CHECK(rc == KEEL_EPROTO || (rc == 0 && r.is_error));
    CHECK_INT(mcp_client_ping(c, 5000, &err), 0);
    mcp_client_free(c);
    arena_cleanup(&a);
}

/* ---- schema validation ------------------------------------------------- */

TEST(validate_args_and_results)
{
    struct fixture f;
    fx_init(&f, "helpdesk");
    struct mcp_pool *p = mcp_pool_new();
    struct keel_err err;
    REQUIRE(mcp_pool_add(p, &f.cfg, &err) == 0);
    const struct mcp_validator *v = NULL, *v2 = NULL;
    REQUIRE(mcp_pool_validator(p, "helpdesk/get_ticket", &v, &err) == 0);
    REQUIRE(mcp_pool_validator(p, "helpdesk/get_ticket", &v2, &err) == 0);
    CHECK(v == v2); /* cached */
    struct arena a;
    arena_init(&a);
    CHECK_INT(mcp_tool_validate_args(v, test_parse(&a, "{\"id\":\"T-1001\"}"), &err), 0);
    keel_err_clear(&err);
    CHECK_INT(mcp_tool_validate_args(v, test_parse(&a, "{\"id\":\"X-1\"}"), &err), KEEL_ESCHEMA);
    CHECK_STR(err.path, "/id");
    CHECK_CONTAINS(err.msg, "arguments of tool helpdesk/get_ticket do not match its schema");
    CHECK_INT(mcp_tool_validate_args(v, NULL, &err), KEEL_ESCHEMA); /* id is required */
    CHECK_INT(mcp_tool_validate_args(v, test_parse(&a, "{\"id\":\"T-1\",\"x\":1}"), &err),
              KEEL_ESCHEMA);

    struct mcp_call_result r;
    REQUIRE(mcp_pool_call(p, "helpdesk/get_ticket", test_parse(&a, "{\"id\":\"T-1003\"}"), NULL, 0,
                          &a, &r, &err) == 0);
    CHECK_INT(mcp_tool_validate_result(v, &r, &err), 0);
    json_object_setc(&a, r.structured, "status", json_cstr(&a, "exploded"));
    keel_err_clear(&err);
    CHECK_INT(mcp_tool_validate_result(v, &r, &err), KEEL_ESCHEMA);
    CHECK_STR(err.path, "/status");
    r.is_error = true; /* tool errors are not held to the schema */
    CHECK_INT(mcp_tool_validate_result(v, &r, &err), 0);
    r.is_error = false;
    r.structured = NULL;
    CHECK_INT(mcp_tool_validate_result(v, &r, &err), KEEL_ESCHEMA);
    CHECK_CONTAINS(err.msg, "returned no structuredContent");

    /* A tool whose own schema is broken cannot be compiled. */
    struct mcp_tool bad = {
        .server = "s", .name = "t", .input_schema = test_parse(&a, "{\"type\":5}")};
    struct mcp_validator *bv = NULL;
    CHECK_INT(mcp_tool_compile(&bad, &bv, &err), KEEL_ESCHEMA);
    CHECK_CONTAINS(err.msg, "inputSchema of tool s/t is not a valid JSON Schema");
    CHECK(bv == NULL);
    CHECK_INT(mcp_pool_validator(p, "helpdesk/nope", &v, &err), KEEL_ENOENT);
    mcp_pool_free(p);
    arena_cleanup(&a);
    fx_cleanup(&f);
}

TEST(timeout_sends_cancelled)
{
    struct fixture f;
    bad_config(&f, "slow");
    REQUIRE(fx_log(&f));
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct mcp_call_result r;
    CHECK_INT(mcp_client_call_tool(c, "t", NULL, NULL, 100, &a, &r, &err), KEEL_ETIMEOUT);
    /* The session survives a timeout. */
    CHECK_INT(mcp_client_ping(c, 5000, &err), 0);
    mcp_client_free(c); /* closes stdin: the script has read everything */
    struct buf log;
    buf_init(&log);
    REQUIRE(keel_read_file(f.log, 1 << 20, &log, &err) == 0);
    /* initialize is id 1, tools/list id 2, the call id 3. */
    CHECK_CONTAINS(log.data, "\"method\":\"notifications/cancelled\",\"params\":"
                             "{\"requestId\":3,\"reason\":\"timed out after 100 ms\"}");
    buf_cleanup(&log);
    arena_cleanup(&a);
    fx_cleanup(&f);
}

TEST(tools_list_changed_refetches)
{
    struct fixture f;
    bad_config(&f, "list-changed");
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct mcp_tool t;
    CHECK_INT(mcp_client_tool(c, "t2", &a, &t, &err), KEEL_ENOENT);
    struct mcp_call_result r;
    /* The notification precedes the result on the same pipe, so it has
     * been handled when the call returns. */
    REQUIRE(mcp_client_call_tool(c, "t", NULL, NULL, 0, &a, &r, &err) == 0);
    REQUIRE(mcp_client_tool(c, "t2", &a, &t, &err) == 0);
    CHECK(t.idempotent);
    mcp_client_free(c);
    arena_cleanup(&a);
}

TEST(closed_stdout_is_a_dead_server)
{
    struct fixture f;
    bad_config(&f, "close-stdout");
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct mcp_call_result r;
    int64_t t0 = keel_mono_ns();
    keel_err_clear(&err);
    CHECK_INT(mcp_client_call_tool(c, "t", NULL, NULL, 0, &a, &r, &err), KEEL_EIO);
    CHECK_CONTAINS(err.msg, "killed by signal 9"); /* after the 300 ms grace */
    CHECK((keel_mono_ns() - t0) / 1000000 < 5000);
    CHECK_INT(mcp_client_ping(c, 5000, &err), 0); /* restarted */
    mcp_client_free(c);
    arena_cleanup(&a);
}

TEST(relative_command_with_cwd)
{
    /* "bin/tool_crm" is found relative to Keel's folder even though the
     * server runs in another one. */
    struct fixture f;
    fx_init(&f, "crm");
    char old[4096], parent[4096];
    REQUIRE(getcwd(old, sizeof old) != NULL);
    snprintf(parent, sizeof parent, "%s", test_build_dir());
    char *slash = strrchr(parent, '/');
    REQUIRE(slash != NULL);
    *slash = '\0';
    char rel[4400];
    snprintf(rel, sizeof rel, "%s/tool_crm", slash + 1);
    REQUIRE(chdir(parent) == 0);
    f.cfg.command = rel;
    f.cfg.cwd = f.dir;
    struct mcp_client *c = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    int rc = mcp_client_start(&f.cfg, &c, &err);
    CHECK(chdir(old) == 0);
    CHECK_INT(rc, 0);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    mcp_client_free(c);
    fx_cleanup(&f);
}

TEST(oversized_request_is_refused)
{
    struct fixture f;
    fx_init(&f, "helpdesk");
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct arena a;
    arena_init(&a);
    size_t n = MCP_MAX_MESSAGE + 10;
    char *big = malloc(n);
    REQUIRE(big != NULL);
    memset(big, 'x', n);
    struct json_value *args = json_object(&a);
    json_object_setc(&a, args, "id", json_cstr(&a, "T-1001"));
    json_object_setc(&a, args, "body", json_string(&a, big, n));
    free(big);
    struct mcp_call_result r;
    keel_err_clear(&err);
    CHECK_INT(mcp_client_call_tool(c, "add_note", args, "k", 0, &a, &r, &err), KEEL_ELIMIT);
    CHECK_CONTAINS(err.msg, "exceeds the 16777216-byte message limit");
    /* Nothing was sent; the session is intact. */
    REQUIRE(mcp_client_call_tool(c, "get_ticket", test_parse(&a, "{\"id\":\"T-1001\"}"), NULL, 0,
                                 &a, &r, &err) == 0);
    CHECK_INT(json_get(r.structured, "notes")->len, 0);
    struct mcp_client_stats st;
    mcp_client_stats(c, &st);
    CHECK_INT(st.starts, 1);
    mcp_client_free(c);
    arena_cleanup(&a);
    fx_cleanup(&f);
}

TEST(killed_while_idle)
{
    struct fixture f;
    fx_init(&f, "helpdesk");
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct mcp_client_stats st;
    mcp_client_stats(c, &st);
    REQUIRE(st.pid > 0);
    REQUIRE(kill(st.pid, SIGKILL) == 0);
    struct arena a;
    arena_init(&a);
    struct mcp_call_result r;
    /* Whether the client noticed before this call decides between a
     * transparent restart and an EIO for a request that may have been
     * written; both are correct, and the one after always succeeds. */
    keel_err_clear(&err);
    int rc = mcp_client_call_tool(c, "get_ticket", test_parse(&a, "{\"id\":\"T-1002\"}"), NULL, 0,
                                  &a, &r, &err);
    if (rc) {
        CHECK_INT(rc, KEEL_EIO);
        CHECK_CONTAINS(err.msg, "killed by signal 9");
    }
    REQUIRE(mcp_client_call_tool(c, "get_ticket", test_parse(&a, "{\"id\":\"T-1002\"}"), NULL, 0,
                                 &a, &r, &err) == 0);
    CHECK_STR(json_get_str(r.structured, "id", ""), "T-1002");
    mcp_client_stats(c, &st);
    CHECK_INT(st.starts, 2);
    mcp_client_free(c);
    arena_cleanup(&a);
    fx_cleanup(&f);
}

struct crash_worker {
    struct mcp_client *c;
    int index;
    int ok, eio, other;
};

static void *crash_worker_main(void *arg)
{
    struct crash_worker *w = arg;
    struct arena a;
    arena_init(&a);
    for (int i = 0; i < 10; i++) {
        arena_reset(&a);
        struct json_value *args = json_object(&a);
        json_object_setc(&a, args, "title", json_cstr(&a, arena_printf(&a, "w%d-%d", w->index, i)));
        struct keel_err err;
        struct mcp_call_result r;
        int rc = mcp_client_call_tool(w->c, "create_issue", args,
                                      arena_printf(&a, "key-%d-%d", w->index, i), 0, &a, &r, &err);
        if (rc == 0) w->ok++;
        else if (rc == KEEL_EIO) w->eio++;
        else w->other++;
    }
    arena_cleanup(&a);
    return NULL;
}

TEST(crash_under_concurrency_restarts_once)
{
    struct fixture f;
    fx_init(&f, "tracker");
    fx_env(&f, "KEEL_TOOL_CRASH_ON=create_issue:before");
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    pthread_t th[THREADS];
    struct crash_worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct crash_worker){.c = c, .index = i};
        pthread_create(&th[i], NULL, crash_worker_main, &w[i]);
    }
    int ok = 0, eio = 0, other = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += w[i].ok;
        eio += w[i].eio;
        other += w[i].other;
    }
    CHECK(eio >= 1);        /* at least the call that crashed the server */
    CHECK_INT(other, 0);    /* every failure is "server exited" */
    CHECK_INT(ok + eio, THREADS * 10);
    /* Only the calls that succeeded had an effect (the crash came before
     * the effect, and failed calls in flight never reached the tool or were
     * rolled back with the process). */
    CHECK_INT(sql_int(f.db, "SELECT count(*) FROM issues WHERE title LIKE 'w%'"), ok);
    struct mcp_client_stats st;
    mcp_client_stats(c, &st);
    CHECK_INT(st.starts, 2); /* eight callers, one restart */
    mcp_client_free(c);
    fx_cleanup(&f);
}

TEST(child_stderr_goes_to_keel_log)
{
    struct fixture f;
    fx_init(&f, "helpdesk");
    fx_env(&f, "KEEL_TOOL_CRASH_ON=set_status:before");
    char capture[600];
    snprintf(capture, sizeof capture, "%s/keel.log", f.dir);
    /* Catch Keel's own log (stderr) in a file for the length of the call. */
    fflush(stderr);
    int saved = dup(2);
    int fd = open(capture, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    keel_log_set_level(KEEL_LOG_INFO);
    struct mcp_client *c = NULL;
    struct keel_err err;
    int started = mcp_client_start(&f.cfg, &c, &err);
    struct arena a;
    arena_init(&a);
    struct mcp_call_result r;
    int rc =
        started ? started
                : mcp_client_call_tool(c, "set_status",
                                       test_parse(&a, "{\"id\":\"T-1001\",\"status\":\"pending\"}"),
                                       NULL, 0, &a, &r, &err);
    keel_log_set_level(KEEL_LOG_WARN);
    dup2(saved, 2);
    close(saved);
    CHECK_INT(started, 0);
    CHECK_INT(rc, KEEL_EIO);
    /* The child's stderr was drained before the call failed. */
    struct buf log;
    buf_init(&log);
    REQUIRE(keel_read_file(capture, 1 << 20, &log, &err) == 0);
    CHECK_CONTAINS(log.data, "keel info: mcp helpdesk: toolkit: crashing in set_status (before)");
    CHECK_CONTAINS(log.data, "mcp: server 'helpdesk' exited with status 99");
    buf_cleanup(&log);
    mcp_client_free(c);
    arena_cleanup(&a);
    fx_cleanup(&f);
}

TEST(decode_tools_and_results)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct mcp_tool t;
    REQUIRE(mcp_tool_decode(test_parse(&a, "{\"name\":\"n\",\"inputSchema\":{},\"annotations\":"
                                      "{\"title\":\"T\",\"destructiveHint\":false,"
                                      "\"readOnlyHint\":\"yes\"}}"),
                            "s", &t, &err) == 0);
    CHECK_STR(t.title, "T"); /* from annotations when there is no top-level title */
    CHECK(!t.destructive_hint && !t.read_only_hint && !t.idempotent && t.open_world_hint);
    static const struct {
        const char *json;
        const char *msg;
    } bad_tools[] = {
        {"[]", "must be an object, not array"},
        {"{\"inputSchema\":{}}", "no name"},
        {"{\"name\":\"a\\u0000b\",\"inputSchema\":{}}", "no name"},
        {"{\"name\":\"n\"}", "no inputSchema"},
        {"{\"name\":\"n\",\"inputSchema\":{},\"outputSchema\":true}", "outputSchema"},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(bad_tools); i++) {
        keel_err_clear(&err);
        CHECK_INT(mcp_tool_decode(test_parse(&a, bad_tools[i].json), "s", &t, &err), KEEL_EPROTO);
        CHECK_CONTAINS(err.msg, bad_tools[i].msg);
    }
    struct mcp_call_result r;
    REQUIRE(
        mcp_call_result_decode(test_parse(&a, "{\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                                              "{\"type\":\"image\",\"data\":\"\"},{\"type\":"
                                              "\"text\",\"text\":\"b\"}]}"),
                               &r, &err) == 0);
    CHECK_STR(mcp_result_text(&a, &r), "a\nb");
    CHECK(!r.is_error && !r.structured && !r.meta);
    /* A NUL inside a text does not hide the rest (found by fuzz_mcp_result). */
    REQUIRE(mcp_call_result_decode(
                test_parse(&a, "{\"content\":[{\"type\":\"text\",\"text\":\"a\\u0000b\"},"
                               "{\"type\":\"text\",\"text\":\"c\"}]}"),
                &r, &err) == 0);
    CHECK_STR(mcp_result_text(&a, &r), "a\xEF\xBF\xBD" "b\nc");
    static const struct {
        const char *json;
        const char *msg;
    } bad_results[] = {
        {"[]", "result must be an object, not array"},
        {"{}", "no content array"},
        {"{\"content\":[3]}", "content[0] is not a content block"},
        {"{\"content\":[],\"structuredContent\":[]}",
         "structuredContent must be an object, not array"},
        {"{\"content\":[],\"isError\":1}", "isError must be a boolean, not integer"},
        {"{\"content\":[],\"_meta\":1}", "_meta must be an object, not integer"},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(bad_results); i++) {
        keel_err_clear(&err);
        CHECK_INT(mcp_call_result_decode(test_parse(&a, bad_results[i].json), &r, &err),
                  KEEL_EPROTO);
        CHECK_CONTAINS(err.msg, bad_results[i].msg);
    }
    arena_cleanup(&a);
}

TEST(older_protocol_version_accepted)
{
    struct fixture f;
    bad_config(&f, "older");
    struct mcp_client *c = NULL;
    struct keel_err err;
    REQUIRE(mcp_client_start(&f.cfg, &c, &err) == 0);
    struct mcp_client_stats st;
    mcp_client_stats(c, &st);
    CHECK_STR(st.protocol_version, "2025-06-18");
    struct arena a;
    arena_init(&a);
    struct mcp_call_result r;
    CHECK_INT(mcp_client_call_tool(c, "t", NULL, NULL, 0, &a, &r, &err), 0);
    CHECK_INT(r.content->len, 0);
    mcp_client_free(c);
    arena_cleanup(&a);
}
