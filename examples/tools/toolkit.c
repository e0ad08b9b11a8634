/*
 * toolkit.c — the MCP stdio server loop shared by the example tool servers
 * (see toolkit.h for the contract, docs/tools.md for what the servers do).
 *
 * One thread: read a line from stdin, answer it on stdout, repeat until
 * EOF.  Lines are capped at 16 MiB; a line that is not a JSON-RPC message
 * gets a -32700/-32600 error with a null id, as JSON-RPC prescribes.
 * Methods are dispatched from one table; notifications are accepted and
 * ignored (the server has nothing to cancel: it answers one call at a time).
 *
 * Invariant: a tools/call's effect and its idempotency record commit in one
 * SQLite transaction, so a key is either unseen (effect not applied) or
 * recorded with the first result (effect applied exactly once).  Nothing but
 * protocol messages is ever written to stdout; diagnostics go to stderr.
 */
#include "toolkit.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINE (16u * 1024u * 1024u)
#define META_KEY "io.keel/idempotency-key"
#define CRASH_STATUS 99

static const char *const versions[] = {"2025-11-25", "2025-06-18", "2025-03-26"};

struct server {
    const struct toolkit_server *def;
    sqlite3 *db;
    struct arena schemas;              /* parsed schemas, for the server's life */
    struct json_value **input_schemas; /* per tool */
    struct json_value **output_schemas;
    size_t page_size;
};

/* ---- output ------------------------------------------------------------ */

static void send_buf(struct buf *b)
{
    buf_putc(b, '\n');
    fwrite(b->data, 1, b->len, stdout);
    fflush(stdout);
}

static void put_id(struct buf *b, const struct json_value *id)
{
    if (id) (void)json_write(b, id, 0, NULL);
    else buf_puts(b, "null");
}

static void send_result(const struct json_value *id, const struct json_value *result)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{\"jsonrpc\":\"2.0\",\"id\":");
    put_id(&b, id);
    buf_puts(&b, ",\"result\":");
    (void)json_write(&b, result, 0, NULL);
    buf_putc(&b, '}');
    send_buf(&b);
    buf_cleanup(&b);
}

static void send_raw_result(const struct json_value *id, const char *result_json)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{\"jsonrpc\":\"2.0\",\"id\":");
    put_id(&b, id);
    buf_printf(&b, ",\"result\":%s}", result_json);
    send_buf(&b);
    buf_cleanup(&b);
}

static void send_error(const struct json_value *id, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{\"jsonrpc\":\"2.0\",\"id\":");
    put_id(&b, id);
    buf_printf(&b, ",\"error\":{\"code\":%d,\"message\":", code);
    json_write_string(&b, msg, strlen(msg));
    buf_puts(&b, "}}");
    send_buf(&b);
    buf_cleanup(&b);
}

/* ---- helpers for servers ----------------------------------------------- */

int toolkit_error(struct toolkit_call *call, struct toolkit_result *out, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    out->is_error = true;
    out->structured = NULL;
    out->text = arena_strdup(call->a, msg);
    return 0;
}

int toolkit_exec(sqlite3 *db, const char *sql)
{
    char *emsg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &emsg);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "toolkit: SQL failed: %s\n  in: %.200s\n", emsg ? emsg : "?", sql);
        sqlite3_free(emsg);
    }
    return rc;
}

struct json_value *toolkit_column(struct arena *a, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        return json_int(a, sqlite3_column_int64(st, i));
    case SQLITE_FLOAT:
        return json_double(a, sqlite3_column_double(st, i));
    case SQLITE_NULL:
        return json_null(a);
    default:
        return json_string(a, (const char *)sqlite3_column_text(st, i),
                           (size_t)sqlite3_column_bytes(st, i));
    }
}

struct json_value *toolkit_row(struct arena *a, sqlite3_stmt *st)
{
    struct json_value *o = json_object(a);
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; i++)
        json_object_setc(a, o, sqlite3_column_name(st, i), toolkit_column(a, st, i));
    return o;
}

const char *toolkit_arg_str(const struct json_value *args, const char *key)
{
    struct json_value *v = json_get(args, key);
    return json_is(v, JSON_STRING) ? v->u.s.str : NULL;
}

/* ---- test switches ----------------------------------------------------- */

/* If $env is "tool[:rest]" for this tool, returns rest ("" if none). */
static const char *switch_for(const char *env, const char *tool)
{
    const char *v = getenv(env);
    if (!v) return NULL;
    size_t n = strlen(tool);
    if (strncmp(v, tool, n) != 0 || (v[n] != '\0' && v[n] != ':')) return NULL;
    return v[n] == ':' ? v + n + 1 : "";
}

/* Returns the crash point for this call ("before", "after", "kill") if the
 * tool should crash and has not crashed before in this database; records
 * the crash first so it happens once. */
static const char *crash_point(struct server *s, const char *tool)
{
    const char *point = switch_for("KEEL_TOOL_CRASH_ON", tool);
    if (!point) return NULL;
    if (!*point) point = "after";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO crashes(tool, at) VALUES(?, ?)", -1,
                           &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_text(st, 1, tool, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, point, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE || sqlite3_changes(s->db) == 0) return NULL;
    return point;
}

static void crash(const char *tool, const char *point)
{
    fprintf(stderr, "toolkit: crashing in %s (%s), as KEEL_TOOL_CRASH_ON asked\n", tool, point);
    if (!strcmp(point, "kill")) raise(SIGKILL);
    _exit(CRASH_STATUS);
}

static void delay_if_asked(const char *tool)
{
    const char *ms = switch_for("KEEL_TOOL_DELAY_MS", tool);
    if (!ms || !*ms) return;
    long v = strtol(ms, NULL, 10);
    if (v <= 0) return;
    struct timespec ts = {v / 1000, (v % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* ---- methods ----------------------------------------------------------- */

static void m_initialize(struct server *s, struct arena *a, const struct json_value *id,
                         const struct json_value *params)
{
    const char *asked = json_get_str(params, "protocolVersion", "");
    const char *version = versions[0];
    for (size_t i = 0; i < KEEL_ARRAY_LEN(versions); i++)
        if (!strcmp(asked, versions[i])) version = versions[i];
    struct json_value *r = json_object(a);
    json_object_setc(a, r, "protocolVersion", json_cstr(a, version));
    struct json_value *caps = json_object(a), *tools = json_object(a);
    json_object_setc(a, tools, "listChanged", json_bool(a, false));
    json_object_setc(a, caps, "tools", tools);
    json_object_setc(a, r, "capabilities", caps);
    struct json_value *info = json_object(a);
    json_object_setc(a, info, "name", json_cstr(a, s->def->name));
    json_object_setc(a, info, "version", json_cstr(a, s->def->version));
    json_object_setc(a, r, "serverInfo", info);
    if (s->def->instructions)
        json_object_setc(a, r, "instructions", json_cstr(a, s->def->instructions));
    send_result(id, r);
}

static void m_ping(struct server *s, struct arena *a, const struct json_value *id,
                   const struct json_value *params)
{
    send_result(id, json_object(a));
}

static struct json_value *tool_json(struct server *s, struct arena *a, size_t i)
{
    const struct toolkit_tool *t = &s->def->tools[i];
    struct json_value *o = json_object(a);
    json_object_setc(a, o, "name", json_cstr(a, t->name));
    if (t->title) json_object_setc(a, o, "title", json_cstr(a, t->title));
    json_object_setc(a, o, "description", json_cstr(a, t->description));
    json_object_setc(a, o, "inputSchema", s->input_schemas[i]);
    if (s->output_schemas[i]) json_object_setc(a, o, "outputSchema", s->output_schemas[i]);
    struct json_value *ann = json_object(a);
    if (t->title) json_object_setc(a, ann, "title", json_cstr(a, t->title));
    json_object_setc(a, ann, "readOnlyHint", json_bool(a, t->read_only));
    json_object_setc(a, ann, "destructiveHint", json_bool(a, t->destructive));
    json_object_setc(a, ann, "idempotentHint", json_bool(a, t->idempotent));
    json_object_setc(a, ann, "openWorldHint", json_bool(a, t->open_world));
    json_object_setc(a, o, "annotations", ann);
    return o;
}

static void m_tools_list(struct server *s, struct arena *a, const struct json_value *id,
                         const struct json_value *params)
{
    size_t start = 0, n = s->def->ntools;
    const char *cursor = json_get_str(params, "cursor", NULL);
    if (cursor) {
        char *end;
        unsigned long v = strtoul(cursor, &end, 10);
        if (*end || end == cursor || v > n) {
            send_error(id, -32602, "invalid cursor '%.100s'", cursor);
            return;
        }
        start = v;
    }
    size_t stop = s->page_size && start + s->page_size < n ? start + s->page_size : n;
    struct json_value *r = json_object(a), *list = json_array(a);
    for (size_t i = start; i < stop; i++) json_array_push(a, list, tool_json(s, a, i));
    json_object_setc(a, r, "tools", list);
    if (stop < n) json_object_setc(a, r, "nextCursor", json_cstr(a, arena_printf(a, "%zu", stop)));
    send_result(id, r);
}

/* The CallToolResult object for a handler's result. */
static struct json_value *call_result(struct arena *a, const struct toolkit_result *res)
{
    struct json_value *r = json_object(a), *content = json_array(a);
    const char *text = res->text;
    if (!text && res->structured) {
        struct buf b;
        buf_init(&b);
        (void)json_write(&b, res->structured, 0, NULL);
        text = arena_strndup(a, b.data, b.len);
        buf_cleanup(&b);
    }
    struct json_value *blk = json_object(a);
    json_object_setc(a, blk, "type", json_cstr(a, "text"));
    json_object_setc(a, blk, "text", json_cstr(a, text ? text : ""));
    json_array_push(a, content, blk);
    json_object_setc(a, r, "content", content);
    if (res->structured) json_object_setc(a, r, "structuredContent", res->structured);
    if (res->is_error) json_object_setc(a, r, "isError", json_bool(a, true));
    return r;
}

static void m_tools_call(struct server *s, struct arena *a, const struct json_value *id,
                         const struct json_value *params)
{
    const char *name = json_get_str(params, "name", NULL);
    if (!name) {
        send_error(id, -32602, "tools/call needs params.name");
        return;
    }
    size_t ti = 0;
    while (ti < s->def->ntools && strcmp(s->def->tools[ti].name, name) != 0) ti++;
    if (ti == s->def->ntools) {
        send_error(id, -32602, "Unknown tool: %.200s", name);
        return;
    }
    const struct toolkit_tool *t = &s->def->tools[ti];
    struct json_value *args = json_get(params, "arguments");
    if (args && !json_is(args, JSON_OBJECT)) {
        send_error(id, -32602, "arguments of %s must be an object", name);
        return;
    }
    if (!args) args = json_object(a);
    struct json_value *meta = json_get(params, "_meta");
    const char *key = json_get_str(meta, META_KEY, NULL);

    if (switch_for("KEEL_TOOL_GARBAGE_ON", name)) {
        fputs("this is not JSON {\n", stdout);
        fflush(stdout);
        return;
    }
    delay_if_asked(name);
    const char *point = crash_point(s, name);
    if (point && strcmp(point, "after") != 0) crash(name, point);

    /* A read-only call without a key writes nothing: a deferred
     * transaction lets it run beside writers. */
    bool writes = key || !t->read_only;
    if (toolkit_exec(s->db, writes ? "BEGIN IMMEDIATE" : "BEGIN") != SQLITE_OK) {
        send_error(id, -32603, "database busy");
        return;
    }
    sqlite3_stmt *st = NULL;
    if (key) {
        sqlite3_prepare_v2(s->db, "SELECT tool, first_result FROM calls WHERE key = ?", -1, &st,
                           NULL);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *first_tool = (const char *)sqlite3_column_text(st, 0);
            char *first = arena_strdup(a, (const char *)sqlite3_column_text(st, 1));
            bool same = !strcmp(first_tool, name);
            sqlite3_finalize(st);
            sqlite3_prepare_v2(s->db, "UPDATE calls SET count = count + 1 WHERE key = ?", -1, &st,
                               NULL);
            sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
            sqlite3_step(st);
            sqlite3_finalize(st);
            toolkit_exec(s->db, "COMMIT");
            if (same) {
                send_raw_result(id, first);
            } else {
                struct toolkit_call call = {s->db, a, name, key};
                struct toolkit_result res = {0};
                toolkit_error(&call, &res,
                              "idempotency key '%.100s' was first used for another tool", key);
                send_result(id, call_result(a, &res));
            }
            return;
        }
        sqlite3_finalize(st);
    }
    struct toolkit_call call = {s->db, a, name, key};
    struct toolkit_result res = {0};
    if (t->handler(&call, args, &res) != 0) {
        toolkit_exec(s->db, "ROLLBACK");
        send_error(id, -32603, "%s failed: %s", name, sqlite3_errmsg(s->db));
        return;
    }
    struct json_value *result = call_result(a, &res);
    if (key) {
        struct buf b;
        buf_init(&b);
        (void)json_write(&b, result, 0, NULL);
        sqlite3_prepare_v2(s->db,
                           "INSERT INTO calls(key, tool, count, first_result) VALUES(?, ?, 1, ?)",
                           -1, &st, NULL);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, b.data, (int)b.len, SQLITE_TRANSIENT);
        sqlite3_step(st);
        sqlite3_finalize(st);
        buf_cleanup(&b);
    }
    if (toolkit_exec(s->db, "COMMIT") != SQLITE_OK) {
        toolkit_exec(s->db, "ROLLBACK");
        send_error(id, -32603, "%s: commit failed", name);
        return;
    }
    if (point) crash(name, point); /* "after": effect committed, no reply */
    send_result(id, result);
}

struct method {
    const char *name;
    void (*fn)(struct server *s, struct arena *a, const struct json_value *id,
               const struct json_value *params);
};

static const struct method methods[] = {
    {"initialize", m_initialize},
    {"ping", m_ping},
    {"tools/list", m_tools_list},
    {"tools/call", m_tools_call},
};

static void handle(struct server *s, struct arena *a, const char *line, size_t len)
{
    struct json_value *msg;
    struct keel_err err;
    keel_err_clear(&err);
    struct json_parse_opts opts = {.max_size = MAX_LINE};
    if (json_parse(a, line, len, &opts, &msg, &err) != 0) {
        send_error(NULL, -32700, "Parse error: %s", err.msg);
        return;
    }
    const char *method = json_get_str(msg, "method", NULL);
    struct json_value *id = json_get(msg, "id");
    if (!json_is(msg, JSON_OBJECT) || strcmp(json_get_str(msg, "jsonrpc", ""), "2.0") != 0) {
        send_error(NULL, -32600, "Invalid Request");
        return;
    }
    if (!method) return; /* a response to a request this server never sends */
    if (!id) return;     /* notifications: initialized, cancelled, ... */
    if (!json_is(id, JSON_STRING) && !json_is_integer(id)) {
        send_error(NULL, -32600, "Invalid Request: id must be a string or integer");
        return;
    }
    struct json_value *params = json_get(msg, "params");
    for (size_t i = 0; i < KEEL_ARRAY_LEN(methods); i++) {
        if (!strcmp(methods[i].name, method)) {
            methods[i].fn(s, a, id, params);
            return;
        }
    }
    send_error(id, -32601, "Method not found: %.200s", method);
}

/* ---- setup ------------------------------------------------------------- */

static const char toolkit_sql[] =
    "CREATE TABLE IF NOT EXISTS calls(key TEXT PRIMARY KEY, tool TEXT NOT NULL,"
    " count INTEGER NOT NULL, first_result TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS crashes(tool TEXT PRIMARY KEY, at TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS toolkit_meta(key TEXT PRIMARY KEY, value TEXT);";

static int open_db(struct server *s, const char *path)
{
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        fprintf(stderr, "%s: cannot open database '%s': %s\n", s->def->name, path,
                sqlite3_errmsg(s->db));
        return -1;
    }
    sqlite3_busy_timeout(s->db, 10000);
    /* WAL with synchronous=NORMAL: a commit survives the process being
     * killed (what the crash tests do), only not a power cut, which is
     * enough for example servers. */
    if (toolkit_exec(s->db, "PRAGMA journal_mode=WAL") != SQLITE_OK ||
        toolkit_exec(s->db, "PRAGMA synchronous=NORMAL") != SQLITE_OK ||
        toolkit_exec(s->db, toolkit_sql) != SQLITE_OK ||
        toolkit_exec(s->db, s->def->schema_sql) != SQLITE_OK)
        return -1;
    /* Seed once, atomically: two servers starting on a new file race here. */
    if (toolkit_exec(s->db, "BEGIN IMMEDIATE") != SQLITE_OK) return -1;
    sqlite3_stmt *st;
    sqlite3_prepare_v2(s->db, "SELECT 1 FROM toolkit_meta WHERE key = 'seeded'", -1, &st, NULL);
    bool seeded = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!seeded) {
        if ((s->def->seed && s->def->seed(s->db) != 0) ||
            toolkit_exec(s->db, "INSERT INTO toolkit_meta VALUES('seeded', '1')") != SQLITE_OK) {
            toolkit_exec(s->db, "ROLLBACK");
            return -1;
        }
    }
    return toolkit_exec(s->db, "COMMIT") == SQLITE_OK ? 0 : -1;
}

static int parse_schemas(struct server *s)
{
    size_t n = s->def->ntools;
    s->input_schemas = arena_zalloc(&s->schemas, (n + 1) * sizeof *s->input_schemas);
    s->output_schemas = arena_zalloc(&s->schemas, (n + 1) * sizeof *s->output_schemas);
    for (size_t i = 0; i < n; i++) {
        const struct toolkit_tool *t = &s->def->tools[i];
        struct keel_err err;
        keel_err_clear(&err);
        if (json_parse(&s->schemas, t->input_schema, strlen(t->input_schema), NULL,
                       &s->input_schemas[i], &err) != 0 ||
            (t->output_schema &&
             json_parse(&s->schemas, t->output_schema, strlen(t->output_schema), NULL,
                        &s->output_schemas[i], &err) != 0)) {
            fprintf(stderr, "%s: schema of tool %s does not parse: %s\n", s->def->name, t->name,
                    err.msg);
            return -1;
        }
    }
    return 0;
}

int toolkit_main(const struct toolkit_server *def, int argc, char **argv)
{
    const char *db = getenv("KEEL_TOOL_DB");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--db") && i + 1 < argc) {
            db = argv[++i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: tool_%s [--db PATH]\n"
                   "An MCP tool server over stdio (newline-delimited JSON-RPC).\n"
                   "State lives in the SQLite file PATH (or $KEEL_TOOL_DB, default "
                   "./%s.db).\n",
                   def->name, def->name);
            return 0;
        } else {
            fprintf(stderr, "tool_%s: unknown argument '%s'; try --help\n", def->name, argv[i]);
            return 2;
        }
    }
    char dflt[256];
    if (!db) {
        snprintf(dflt, sizeof dflt, "%s.db", def->name);
        db = dflt;
    }
    struct server s = {.def = def};
    arena_init(&s.schemas);
    const char *ps = getenv("KEEL_TOOL_PAGE_SIZE");
    if (ps) s.page_size = (size_t)strtoul(ps, NULL, 10);
    int status = 1;
    if (parse_schemas(&s) != 0 || open_db(&s, db) != 0) goto out;

    struct arena a;
    arena_init(&a);
    struct buf in;
    buf_init(&in);
    char chunk[65536];
    bool skipping = false; /* inside an over-long line */
    for (;;) {
        /* read(2), not fread: a request must be answered as soon as its
         * line is complete, without waiting for a full buffer. */
        ssize_t r = read(STDIN_FILENO, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        size_t got = (size_t)r;
        size_t start = 0;
        for (size_t i = 0; i < got; i++) {
            if (chunk[i] != '\n') continue;
            if (!skipping) {
                buf_append(&in, chunk + start, i - start);
                if (in.len) {
                    arena_reset(&a);
                    handle(&s, &a, in.data, in.len);
                }
            }
            buf_reset(&in);
            skipping = false;
            start = i + 1;
        }
        if (!skipping) buf_append(&in, chunk + start, got - start);
        if (in.len > MAX_LINE) {
            send_error(NULL, -32700, "Parse error: message longer than %u bytes", MAX_LINE);
            buf_reset(&in);
            skipping = true;
        }
    }
    buf_cleanup(&in);
    arena_cleanup(&a);
    status = 0;
out:
    if (s.db) sqlite3_close(s.db);
    arena_cleanup(&s.schemas);
    return status;
}
