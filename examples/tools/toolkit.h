/*
 * toolkit.h — a tiny framework for MCP tool servers over stdio, used by the
 * example servers (helpdesk, crm, tracker) that Keel's tests and demo run.
 *
 * A server is a table: its tools (name, description, JSON Schemas,
 * annotations, handler), the SQL that creates its tables, and a seed
 * function for the demo data.  toolkit_main() does the rest: the database
 * (path from `--db PATH` or $KEEL_TOOL_DB), the MCP lifecycle (initialize,
 * ping, tools/list with pagination, tools/call), and idempotency.
 *
 * Idempotency: a tools/call whose params._meta carries
 * "io.keel/idempotency-key" is recorded in the table
 *   calls(key TEXT PRIMARY KEY, tool TEXT, count INTEGER, first_result TEXT)
 * in the same transaction as the tool's effect.  A repeated key returns
 * first_result without running the handler again and increments count, so
 * tests can see how many times a key was asked.
 *
 * Test switches (environment):
 *   KEEL_TOOL_CRASH_ON=tool[:point]  crash once in a call of `tool`;
 *        point is "after" (default: after the effect is committed, before
 *        the reply), "before" (before the effect) or "kill" (SIGKILL itself
 *        before the effect).  Recorded in table crashes(tool) so each tool
 *        crashes only once per database.  Exit status 99 for before/after.
 *   KEEL_TOOL_DELAY_MS=tool:ms       wait ms before answering calls of tool.
 *   KEEL_TOOL_PAGE_SIZE=n            tools/list returns n tools per page.
 *   KEEL_TOOL_GARBAGE_ON=tool        answer calls of tool with a line that
 *        is not JSON (for the client's malformed-output tests).
 *
 * Only keel_json and SQLite are used, as CMake links example tools with
 * exactly those.
 */
#ifndef KEEL_TOOLKIT_H
#define KEEL_TOOLKIT_H

#include <sqlite3.h>

#include "json/json.h"

/* What a handler gets. */
struct toolkit_call {
    sqlite3 *db;                 /* open, inside a transaction */
    struct arena *a;             /* per-call arena for results */
    const char *tool;
    const char *idempotency_key; /* or NULL */
};

/* What a handler returns.  With `structured` set, the text content is its
 * JSON unless `text` is also set. */
struct toolkit_result {
    struct json_value *structured; /* object, or NULL */
    const char *text;              /* or NULL */
    bool is_error;
};

struct toolkit_tool {
    const char *name;
    const char *title;
    const char *description;
    const char *input_schema;  /* JSON text (an object schema) */
    const char *output_schema; /* JSON text, or NULL */
    bool read_only, destructive, idempotent, open_world;
    /* Returns 0 when *out is filled (including tool errors via
     * toolkit_error); non-zero only on a database failure, which rolls the
     * transaction back and answers with a JSON-RPC internal error. */
    int (*handler)(struct toolkit_call *call, const struct json_value *args,
                   struct toolkit_result *out);
};

struct toolkit_server {
    const char *name;
    const char *version;
    const char *instructions;
    const struct toolkit_tool *tools;
    size_t ntools;
    const char *schema_sql; /* CREATE TABLE IF NOT EXISTS ... */
    /* Inserts the demo data; called once, when the database is new. */
    int (*seed)(sqlite3 *db);
};

/* Runs the server until stdin closes.  Returns the process exit status. */
int toolkit_main(const struct toolkit_server *s, int argc, char **argv);

/* Marks *out as a tool error with a message (isError: true). */
int toolkit_error(struct toolkit_call *call, struct toolkit_result *out, const char *fmt, ...)
    KEEL_PRINTF(3, 4);

/* sqlite3_exec with a formatted statement; returns the SQLite code. */
int toolkit_exec(sqlite3 *db, const char *sql);

/* Reads column i of a stepped statement as a JSON value (text, integer,
 * real or null) in arena a. */
struct json_value *toolkit_column(struct arena *a, sqlite3_stmt *st, int i);

/* Builds an object from the current row: one member per column. */
struct json_value *toolkit_row(struct arena *a, sqlite3_stmt *st);

/* A string argument, or NULL if missing / not a string. */
const char *toolkit_arg_str(const struct json_value *args, const char *key);

#endif
