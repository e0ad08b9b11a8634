/*
 * crm.c — example MCP tool server: customer accounts and their entitlements.
 *
 * Tools: lookup_account (by id or by name), get_entitlements; both are
 * read-only and idempotent.
 *
 * Seed data (docs/tools.md): A-100 Initech (enterprise, current), A-200
 * Umbrella (starter, current), and A-300 Globex, whose record is stale on
 * purpose for the explain demo: updated_at is 2019-03-01 and its tier says
 * "enterprise" while its only entitlement is the starter support plan
 * without SSO.
 */
#include <string.h>

#include "toolkit.h"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS accounts(id TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " tier TEXT NOT NULL, owner TEXT NOT NULL, seats INTEGER NOT NULL,"
    " updated_at TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS entitlements(account_id TEXT NOT NULL, product TEXT NOT NULL,"
    " plan TEXT NOT NULL, sso INTEGER NOT NULL, support_sla_hours INTEGER NOT NULL,"
    " expires_at TEXT NOT NULL, PRIMARY KEY(account_id, product));";

static int seed(sqlite3 *db)
{
    return toolkit_exec(
        db,
        "INSERT INTO accounts VALUES"
        "('A-100', 'Initech', 'enterprise', 'pat@keel.example', 250, '2026-11-01T12:00:00Z'),"
        "('A-200', 'Umbrella', 'starter', 'lee@keel.example', 12, '2026-10-15T08:30:00Z'),"
        "('A-300', 'Globex', 'enterprise', 'kim@keel.example', 40, '2019-03-01T00:00:00Z');"
        "INSERT INTO entitlements VALUES"
        "('A-100', 'platform', 'enterprise', 1, 4, '2027-06-30'),"
        "('A-100', 'exports', 'large', 0, 4, '2027-06-30'),"
        "('A-200', 'platform', 'starter', 0, 48, '2027-01-31'),"
        "('A-300', 'platform', 'starter', 0, 48, '2027-03-31');");
}

static int lookup_account(struct toolkit_call *call, const struct json_value *args,
                          struct toolkit_result *out)
{
    const char *id = toolkit_arg_str(args, "id");
    const char *name = toolkit_arg_str(args, "name");
    if (!id && !name)
        return toolkit_error(call, out, "lookup_account needs 'id' (e.g. \"A-100\") or 'name'");
    sqlite3_stmt *st;
    sqlite3_prepare_v2(call->db,
                       "SELECT id, name, tier, owner, seats, updated_at FROM accounts"
                       " WHERE id = ?1 OR (?1 IS NULL AND lower(name) = lower(?2))",
                       -1, &st, NULL);
    if (id) sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    if (name) sqlite3_bind_text(st, 2, name, -1, SQLITE_TRANSIENT);
    struct json_value *acct = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) acct = toolkit_row(call->a, st);
    sqlite3_finalize(st);
    if (!acct) return toolkit_error(call, out, "no account '%s'", id ? id : name);
    out->structured = acct;
    return 0;
}

static int get_entitlements(struct toolkit_call *call, const struct json_value *args,
                            struct toolkit_result *out)
{
    const char *id = toolkit_arg_str(args, "account_id");
    if (!id) return toolkit_error(call, out, "get_entitlements needs 'account_id'");
    sqlite3_stmt *st;
    sqlite3_prepare_v2(call->db, "SELECT 1 FROM accounts WHERE id = ?", -1, &st, NULL);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    bool exists = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!exists) return toolkit_error(call, out, "no account '%s'", id);
    sqlite3_prepare_v2(call->db,
                       "SELECT product, plan, sso = 1 AS sso, support_sla_hours, expires_at"
                       " FROM entitlements WHERE account_id = ? ORDER BY product",
                       -1, &st, NULL);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    struct json_value *list = json_array(call->a);
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct json_value *row = toolkit_row(call->a, st);
        json_object_setc(call->a, row, "sso", json_bool(call->a, sqlite3_column_int(st, 2) != 0));
        json_array_push(call->a, list, row);
    }
    sqlite3_finalize(st);
    out->structured = json_object(call->a);
    json_object_setc(call->a, out->structured, "account_id", json_cstr(call->a, id));
    json_object_setc(call->a, out->structured, "entitlements", list);
    return 0;
}

static const struct toolkit_tool tools[] = {
    {
        .name = "lookup_account",
        .title = "Look up account",
        .description = "Fetch a customer account by id (A-100) or by exact name.",
        .input_schema = "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},"
                        "\"name\":{\"type\":\"string\"}},\"minProperties\":1,"
                        "\"additionalProperties\":false}",
        .output_schema = "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},"
                         "\"name\":{\"type\":\"string\"},\"tier\":{\"enum\":[\"starter\","
                         "\"business\",\"enterprise\"]},\"owner\":{\"type\":\"string\"},"
                         "\"seats\":{\"type\":\"integer\"},\"updated_at\":{\"type\":\"string\"}},"
                         "\"required\":[\"id\",\"name\",\"tier\",\"updated_at\"]}",
        .read_only = true,
        .idempotent = true,
        .handler = lookup_account,
    },
    {
        .name = "get_entitlements",
        .title = "Get entitlements",
        .description = "List what an account is entitled to: plans, SSO, support SLA.",
        .input_schema = "{\"type\":\"object\",\"properties\":{\"account_id\":{\"type\":"
                        "\"string\"}},\"required\":[\"account_id\"],"
                        "\"additionalProperties\":false}",
        .output_schema = "{\"type\":\"object\",\"properties\":{\"account_id\":{\"type\":"
                         "\"string\"},\"entitlements\":{\"type\":\"array\",\"items\":{\"type\":"
                         "\"object\",\"properties\":{\"product\":{\"type\":\"string\"},\"plan\":"
                         "{\"type\":\"string\"},\"sso\":{\"type\":\"boolean\"},"
                         "\"support_sla_hours\":{\"type\":\"integer\"},\"expires_at\":{\"type\":"
                         "\"string\"}},\"required\":[\"product\",\"plan\",\"sso\"]}}},"
                         "\"required\":[\"account_id\",\"entitlements\"]}",
        .read_only = true,
        .idempotent = true,
        .handler = get_entitlements,
    },
};

static const struct toolkit_server server = {
    .name = "crm",
    .version = "1.0.0",
    .instructions = "Customer accounts (A-100...) and entitlements.",
    .tools = tools,
    .ntools = KEEL_ARRAY_LEN(tools),
    .schema_sql = schema_sql,
    .seed = seed,
};

int main(int argc, char **argv)
{
    return toolkit_main(&server, argc, argv);
}
