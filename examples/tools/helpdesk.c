/*
 * helpdesk.c — example MCP tool server: support tickets and their notes.
 *
 * Tools: get_ticket, list_tickets (read-only), add_note (appends; not
 * idempotent by nature, made safe by the idempotency key), set_status
 * (idempotent: setting the same status twice changes nothing).
 *
 * Seed data (docs/tools.md): T-1001 is a bug report that needs engineering
 * (a 500 error on CSV export, tracked as ENG-1 in the tracker demo), T-1002
 * is a how-to question that does not, T-1003 comes from the account whose
 * CRM record is stale, T-1004 is already solved.
 */
#include <string.h>

#include "toolkit.h"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS tickets(id TEXT PRIMARY KEY, subject TEXT NOT NULL,"
    " body TEXT NOT NULL, customer_id TEXT NOT NULL, requester TEXT NOT NULL,"
    " status TEXT NOT NULL, priority TEXT NOT NULL, created_at TEXT NOT NULL,"
    " updated_at TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, ticket_id TEXT NOT NULL,"
    " author TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL);";

static int seed(sqlite3 *db)
{
    return toolkit_exec(
        db,
        "INSERT INTO tickets VALUES"
        "('T-1001', 'CSV export fails with error 500',"
        " 'Since this morning every export of our account report to CSV fails with \"500 "
        "Internal Server Error\". Accounts with more than 10,000 rows are affected; small "
        "ones work.', 'A-100', 'dana@initech.example', 'open', 'high',"
        " '2026-11-20T09:14:00Z', '2026-11-20T09:14:00Z'),"
        "('T-1002', 'How do I reset my password?',"
        " 'I forgot my password and the login page does not show a reset link. How can I "
        "reset it?', 'A-200', 'sam@umbrella.example', 'open', 'low',"
        " '2026-11-21T15:02:00Z', '2026-11-21T15:02:00Z'),"
        "('T-1003', 'Need SSO enabled for our team',"
        " 'We are on the Enterprise plan and want SAML single sign-on enabled for 40 users.',"
        " 'A-300', 'it@globex.example', 'open', 'normal',"
        " '2026-11-22T11:30:00Z', '2026-11-22T11:30:00Z'),"
        "('T-1004', 'Invoice address change', 'Please update our billing address.',"
        " 'A-200', 'ap@umbrella.example', 'solved', 'low',"
        " '2026-11-10T08:00:00Z', '2026-11-11T10:00:00Z');"
        "INSERT INTO notes(ticket_id, author, body, created_at) VALUES"
        "('T-1004', 'agent:lee', 'Address updated in billing system.', "
        "'2026-11-11T10:00:00Z');");
}

static const char *const statuses[] = {"open", "pending", "solved", "closed"};

static struct json_value *load_ticket(struct toolkit_call *call, const char *id, bool with_notes)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(call->db,
                       "SELECT id, subject, body, customer_id, requester, status, priority,"
                       " created_at, updated_at FROM tickets WHERE id = ?",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    struct json_value *t = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) t = toolkit_row(call->a, st);
    sqlite3_finalize(st);
    if (!t || !with_notes) return t;
    struct json_value *notes = json_array(call->a);
    sqlite3_prepare_v2(call->db,
                       "SELECT id, author, body, created_at FROM notes WHERE ticket_id = ?"
                       " ORDER BY id",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    while (sqlite3_step(st) == SQLITE_ROW) json_array_push(call->a, notes, toolkit_row(call->a, st));
    sqlite3_finalize(st);
    json_object_setc(call->a, t, "notes", notes);
    return t;
}

static int get_ticket(struct toolkit_call *call, const struct json_value *args,
                      struct toolkit_result *out)
{
    const char *id = toolkit_arg_str(args, "id");
    if (!id) return toolkit_error(call, out, "get_ticket needs a string 'id', e.g. \"T-1001\"");
    struct json_value *t = load_ticket(call, id, true);
    if (!t) return toolkit_error(call, out, "no ticket '%s'", id);
    out->structured = t;
    return 0;
}

static int list_tickets(struct toolkit_call *call, const struct json_value *args,
                        struct toolkit_result *out)
{
    const char *status = toolkit_arg_str(args, "status");
    int64_t limit = json_get_int(args, "limit", 50);
    if (limit < 1 || limit > 500) return toolkit_error(call, out, "limit must be 1..500");
    sqlite3_stmt *st;
    sqlite3_prepare_v2(call->db,
                       "SELECT id, subject, status, priority, customer_id FROM tickets"
                       " WHERE ?1 IS NULL OR status = ?1 ORDER BY id LIMIT ?2",
                       -1, &st, NULL);
    if (status) sqlite3_bind_text(st, 1, status, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, limit);
    struct json_value *list = json_array(call->a);
    while (sqlite3_step(st) == SQLITE_ROW) json_array_push(call->a, list, toolkit_row(call->a, st));
    sqlite3_finalize(st);
    out->structured = json_object(call->a);
    json_object_setc(call->a, out->structured, "tickets", list);
    return 0;
}

static int add_note(struct toolkit_call *call, const struct json_value *args,
                    struct toolkit_result *out)
{
    const char *id = toolkit_arg_str(args, "id");
    const char *body = toolkit_arg_str(args, "body");
    const char *author = toolkit_arg_str(args, "author");
    if (!id || !body || !*body)
        return toolkit_error(call, out, "add_note needs string 'id' and non-empty 'body'");
    if (!load_ticket(call, id, false)) return toolkit_error(call, out, "no ticket '%s'", id);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(call->db,
                       "INSERT INTO notes(ticket_id, author, body, created_at)"
                       " VALUES(?, ?, ?, strftime('%Y-%m-%dT%H:%M:%SZ','now'))",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, author ? author : "keel", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, body, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return -1;
    int64_t note_id = sqlite3_last_insert_rowid(call->db);
    sqlite3_prepare_v2(call->db, "SELECT count(*) FROM notes WHERE ticket_id = ?", -1, &st, NULL);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_step(st);
    int64_t count = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    out->structured = json_object(call->a);
    json_object_setc(call->a, out->structured, "ticket_id", json_cstr(call->a, id));
    json_object_setc(call->a, out->structured, "note_id", json_int(call->a, note_id));
    json_object_setc(call->a, out->structured, "notes_count", json_int(call->a, count));
    return 0;
}

static int set_status(struct toolkit_call *call, const struct json_value *args,
                      struct toolkit_result *out)
{
    const char *id = toolkit_arg_str(args, "id");
    const char *status = toolkit_arg_str(args, "status");
    if (!id || !status) return toolkit_error(call, out, "set_status needs 'id' and 'status'");
    bool known = false;
    for (size_t i = 0; i < KEEL_ARRAY_LEN(statuses); i++) known |= !strcmp(status, statuses[i]);
    if (!known)
        return toolkit_error(call, out, "status '%s' is not one of open, pending, solved, closed",
                             status);
    struct json_value *t = load_ticket(call, id, false);
    if (!t) return toolkit_error(call, out, "no ticket '%s'", id);
    const char *previous = json_get_str(t, "status", "");
    sqlite3_stmt *st;
    sqlite3_prepare_v2(call->db,
                       "UPDATE tickets SET status = ?, updated_at ="
                       " strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE id = ? AND status <> ?",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, status, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, status, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return -1;
    out->structured = json_object(call->a);
    json_object_setc(call->a, out->structured, "id", json_cstr(call->a, id));
    json_object_setc(call->a, out->structured, "status", json_cstr(call->a, status));
    json_object_setc(call->a, out->structured, "previous", json_cstr(call->a, previous));
    return 0;
}

#define TICKET_PROPS                                                                               \
    "\"id\":{\"type\":\"string\"},\"subject\":{\"type\":\"string\"},"                              \
    "\"status\":{\"enum\":[\"open\",\"pending\",\"solved\",\"closed\"]},"                          \
    "\"priority\":{\"enum\":[\"low\",\"normal\",\"high\",\"urgent\"]},"                            \
    "\"customer_id\":{\"type\":\"string\"}"

static const struct toolkit_tool tools[] = {
    {
        .name = "get_ticket",
        .title = "Get ticket",
        .description = "Fetch one support ticket with its notes.",
        .input_schema = "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\","
                        "\"pattern\":\"^T-[0-9]+$\"}},\"required\":[\"id\"],"
                        "\"additionalProperties\":false}",
        .output_schema = "{\"type\":\"object\",\"properties\":{" TICKET_PROPS
                         ",\"body\":{\"type\":\"string\"},\"requester\":{\"type\":\"string\"},"
                         "\"created_at\":{\"type\":\"string\"},\"updated_at\":{\"type\":"
                         "\"string\"},\"notes\":{\"type\":\"array\",\"items\":{\"type\":"
                         "\"object\"}}},\"required\":[\"id\",\"subject\",\"body\",\"status\","
                         "\"customer_id\",\"notes\"]}",
        .read_only = true,
        .idempotent = true,
        .handler = get_ticket,
    },
    {
        .name = "list_tickets",
        .title = "List tickets",
        .description = "List tickets, optionally only those with a given status.",
        .input_schema = "{\"type\":\"object\",\"properties\":{\"status\":{\"enum\":[\"open\","
                        "\"pending\",\"solved\",\"closed\"]},\"limit\":{\"type\":\"integer\","
                        "\"minimum\":1,\"maximum\":500}},\"additionalProperties\":false}",
        .output_schema = "{\"type\":\"object\",\"properties\":{\"tickets\":{\"type\":\"array\","
                         "\"items\":{\"type\":\"object\",\"properties\":{" TICKET_PROPS
                         "},\"required\":[\"id\",\"subject\",\"status\"]}}},"
                         "\"required\":[\"tickets\"]}",
        .read_only = true,
        .idempotent = true,
        .handler = list_tickets,
    },
    {
        .name = "add_note",
        .title = "Add note",
        .description = "Append an internal note to a ticket.",
        .input_schema = "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},"
                        "\"body\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":10000},"
                        "\"author\":{\"type\":\"string\"}},\"required\":[\"id\",\"body\"],"
                        "\"additionalProperties\":false}",
        .output_schema = "{\"type\":\"object\",\"properties\":{\"ticket_id\":{\"type\":"
                         "\"string\"},\"note_id\":{\"type\":\"integer\"},\"notes_count\":"
                         "{\"type\":\"integer\"}},\"required\":[\"ticket_id\",\"note_id\","
                         "\"notes_count\"]}",
        .destructive = false,
        .idempotent = false,
        .handler = add_note,
    },
    {
        .name = "set_status",
        .title = "Set ticket status",
        .description = "Set a ticket's status (open, pending, solved, closed).",
        .input_schema = "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},"
                        "\"status\":{\"enum\":[\"open\",\"pending\",\"solved\",\"closed\"]}},"
                        "\"required\":[\"id\",\"status\"],\"additionalProperties\":false}",
        .output_schema = "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},"
                         "\"status\":{\"type\":\"string\"},\"previous\":{\"type\":\"string\"}},"
                         "\"required\":[\"id\",\"status\",\"previous\"]}",
        .destructive = true,
        .idempotent = true,
        .handler = set_status,
    },
};

static const struct toolkit_server server = {
    .name = "helpdesk",
    .version = "1.0.0",
    .instructions = "Support tickets (T-1001...) and their internal notes.",
    .tools = tools,
    .ntools = KEEL_ARRAY_LEN(tools),
    .schema_sql = schema_sql,
    .seed = seed,
};

int main(int argc, char **argv)
{
    return toolkit_main(&server, argc, argv);
}
