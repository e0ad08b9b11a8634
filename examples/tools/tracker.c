/*
 * tracker.c — example MCP tool server: an engineering issue tracker.
 *
 * Tools: create_issue (not idempotent: every call files a new issue unless
 * an idempotency key repeats), search_issues (read-only), close_issue
 * (idempotent; destructive).  Keys are ENG-<n>, numbered from the highest
 * existing one.
 *
 * Seed data (docs/tools.md): ENG-1 (open) is the CSV-export bug behind
 * helpdesk ticket T-1001; ENG-2 is a closed performance issue.
 */
#include <stdio.h>
#include <string.h>

#include "toolkit.h"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS issues(num INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL,"
    " title TEXT NOT NULL, body TEXT NOT NULL, labels TEXT NOT NULL, status TEXT NOT NULL,"
    " close_reason TEXT, created_at TEXT NOT NULL, closed_at TEXT);";

static int seed(sqlite3 *db)
{
    return toolkit_exec(
        db, "INSERT INTO issues VALUES"
            "(1, 'ENG-1', 'CSV export returns 500 for accounts over 10k rows',"
            " 'Export job runs out of memory building the whole file. Seen by Initech (T-1001).',"
            " 'bug,exports', 'open', NULL, '2026-11-20T10:02:00Z', NULL),"
            "(2, 'ENG-2', 'Dashboard slow to load', 'Fixed by caching the summary query.',"
            " 'performance', 'closed', 'fixed', '2026-10-01T09:00:00Z', "
            "'2026-10-03T16:45:00Z');");
}

static struct json_value *issue_row(struct toolkit_call *call, sqlite3_stmt *st)
{
    struct json_value *o = toolkit_row(call->a, st);
    /* labels are stored comma-separated and returned as an array */
    const char *labels = json_get_str(o, "labels", "");
    struct json_value *arr = json_array(call->a);
    while (*labels) {
        const char *comma = strchr(labels, ',');
        size_t n = comma ? (size_t)(comma - labels) : strlen(labels);
        if (n) json_array_push(call->a, arr, json_string(call->a, labels, n));
        labels += n + (comma ? 1 : 0);
    }
    json_object_setc(call->a, o, "labels", arr);
    return o;
}

#define ISSUE_COLUMNS "key, title, body, labels, status, close_reason, created_at, closed_at"

static struct json_value *load_issue(struct toolkit_call *call, const char *key)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(call->db, "SELECT " ISSUE_COLUMNS " FROM issues WHERE key = ?", -1, &st,
                       NULL);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    struct json_value *o = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) o = issue_row(call, st);
    sqlite3_finalize(st);
    return o;
}

static int create_issue(struct toolkit_call *call, const struct json_value *args,
                        struct toolkit_result *out)
{
    const char *title = toolkit_arg_str(args, "title");
    const char *body = toolkit_arg_str(args, "body");
    if (!title || !*title) return toolkit_error(call, out, "create_issue needs a non-empty 'title'");
    struct buf labels;
    buf_init(&labels);
    struct json_value *arr = json_get(args, "labels");
    for (uint32_t i = 0; json_is(arr, JSON_ARRAY) && i < arr->len; i++) {
        struct json_value *l = arr->u.items[i];
        if (!json_is(l, JSON_STRING) || strchr(l->u.s.str, ',')) {
            buf_cleanup(&labels);
            return toolkit_error(call, out, "labels must be strings without commas");
        }
        buf_printf(&labels, "%s%s", labels.len ? "," : "", l->u.s.str);
    }
    sqlite3_stmt *st;
    sqlite3_prepare_v2(call->db,
                       "INSERT INTO issues(num, key, title, body, labels, status, created_at)"
                       " SELECT n, 'ENG-' || n, ?, ?, ?, 'open',"
                       " strftime('%Y-%m-%dT%H:%M:%SZ','now')"
                       " FROM (SELECT coalesce(max(num), 0) + 1 AS n FROM issues)",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, title, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, body ? body : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, labels.data ? labels.data : "", -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    buf_cleanup(&labels);
    if (rc != SQLITE_DONE) return -1;
    char key[32];
    snprintf(key, sizeof key, "ENG-%lld", (long long)sqlite3_last_insert_rowid(call->db));
    out->structured = load_issue(call, key);
    return out->structured ? 0 : -1;
}

static int search_issues(struct toolkit_call *call, const struct json_value *args,
                         struct toolkit_result *out)
{
    const char *query = toolkit_arg_str(args, "query");
    const char *status = toolkit_arg_str(args, "status");
    if (!query) return toolkit_error(call, out, "search_issues needs a 'query' string");
    sqlite3_stmt *st;
    sqlite3_prepare_v2(call->db,
                       "SELECT " ISSUE_COLUMNS " FROM issues"
                       " WHERE (title LIKE '%' || ?1 || '%' OR body LIKE '%' || ?1 || '%'"
                       " OR labels LIKE '%' || ?1 || '%')"
                       " AND (?2 IS NULL OR status = ?2) ORDER BY num LIMIT 100",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, query, -1, SQLITE_TRANSIENT);
    if (status) sqlite3_bind_text(st, 2, status, -1, SQLITE_TRANSIENT);
    struct json_value *list = json_array(call->a);
    while (sqlite3_step(st) == SQLITE_ROW) json_array_push(call->a, list, issue_row(call, st));
    sqlite3_finalize(st);
    out->structured = json_object(call->a);
    json_object_setc(call->a, out->structured, "issues", list);
    return 0;
}

static int close_issue(struct toolkit_call *call, const struct json_value *args,
                       struct toolkit_result *out)
{
    const char *key = toolkit_arg_str(args, "key");
    const char *reason = toolkit_arg_str(args, "reason");
    if (!key) return toolkit_error(call, out, "close_issue needs a 'key' such as \"ENG-1\"");
    if (!load_issue(call, key)) return toolkit_error(call, out, "no issue '%s'", key);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(call->db,
                       "UPDATE issues SET status = 'closed', close_reason = ?,"
                       " closed_at = strftime('%Y-%m-%dT%H:%M:%SZ','now')"
                       " WHERE key = ? AND status <> 'closed'",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, reason ? reason : "closed", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return -1;
    out->structured = load_issue(call, key);
    return 0;
}

#define ISSUE_SCHEMA                                                                               \
    "{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\",\"pattern\":"               \
    "\"^ENG-[0-9]+$\"},\"title\":{\"type\":\"string\"},\"body\":{\"type\":\"string\"},"            \
    "\"labels\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"status\":{\"enum\":"        \
    "[\"open\",\"closed\"]},\"close_reason\":{\"type\":[\"string\",\"null\"]},\"created_at\":"     \
    "{\"type\":\"string\"},\"closed_at\":{\"type\":[\"string\",\"null\"]}},"                       \
    "\"required\":[\"key\",\"title\",\"status\"]}"

static const struct toolkit_tool tools[] = {
    {
        .name = "create_issue",
        .title = "Create issue",
        .description = "File a new engineering issue; returns its key (ENG-n).",
        .input_schema = "{\"type\":\"object\",\"properties\":{\"title\":{\"type\":\"string\","
                        "\"minLength\":1,\"maxLength\":200},\"body\":{\"type\":\"string\"},"
                        "\"labels\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},"
                        "\"required\":[\"title\"],\"additionalProperties\":false}",
        .output_schema = ISSUE_SCHEMA,
        .destructive = false,
        .idempotent = false,
        .handler = create_issue,
    },
    {
        .name = "search_issues",
        .title = "Search issues",
        .description = "Find issues whose title, body or labels contain the query.",
        .input_schema = "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"},"
                        "\"status\":{\"enum\":[\"open\",\"closed\"]}},\"required\":[\"query\"],"
                        "\"additionalProperties\":false}",
        .output_schema = "{\"type\":\"object\",\"properties\":{\"issues\":{\"type\":\"array\","
                         "\"items\":" ISSUE_SCHEMA "}},\"required\":[\"issues\"]}",
        .read_only = true,
        .idempotent = true,
        .handler = search_issues,
    },
    {
        .name = "close_issue",
        .title = "Close issue",
        .description = "Close an issue with an optional reason (closing twice is a no-op).",
        .input_schema = "{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\"},"
                        "\"reason\":{\"type\":\"string\"}},\"required\":[\"key\"],"
                        "\"additionalProperties\":false}",
        .output_schema = ISSUE_SCHEMA,
        .destructive = true,
        .idempotent = true,
        .handler = close_issue,
    },
};

static const struct toolkit_server server = {
    .name = "tracker",
    .version = "1.0.0",
    .instructions = "Engineering issues (ENG-1...): create, search, close.",
    .tools = tools,
    .ntools = KEEL_ARRAY_LEN(tools),
    .schema_sql = schema_sql,
    .seed = seed,
};

int main(int argc, char **argv)
{
    return toolkit_main(&server, argc, argv);
}
