/*
 * jsonrpc.c — JSON-RPC 2.0 messages as MCP uses them: decode one message
 * into a struct mcp_rpc_msg, and write requests, notifications, results and
 * errors.  Transport-neutral: the stdio client (client.c) uses it today, and
 * the gateway and Streamable HTTP transport can reuse it.
 *
 * Classification (JSON-RPC 2.0 section 4/5, MCP "Base Protocol"):
 *
 *   has "method"  has "id"   has "result"/"error"   kind
 *   yes           yes        no                     request
 *   yes           no         no                     notification
 *   no            yes        result                 result
 *   no            yes/null   error                  error
 *   anything else                                    invalid (KEEL_EINVAL)
 *
 * Invariants: "jsonrpc" must be exactly "2.0"; an id is a string or an
 * integer (MCP forbids null ids on requests; only an error may carry null,
 * when the server could not read the request's id); a message never has
 * both "result" and "error".  Duplicate keys are a parse error, so a
 * message cannot mean two things to two readers.  Decoding never trusts
 * sizes from the input: the text is capped at MCP_MAX_MESSAGE and the JSON
 * parser caps nesting.
 */
#include "mcp.h"

#include <string.h>

/* Nesting deeper than this in one message is not a tool result anyone needs
 * and would cost stack in every consumer. */
#define RPC_MAX_DEPTH 128

static bool valid_id(const struct json_value *id)
{
    return json_is(id, JSON_STRING) || json_is_integer(id);
}

int mcp_rpc_decode(struct arena *a, const char *text, size_t len, struct mcp_rpc_msg *out,
                   struct keel_err *err)
{
    if (len > MCP_MAX_MESSAGE)
        return keel_fail(err, KEEL_ELIMIT,
                         "JSON-RPC message of %zu bytes exceeds the %u-byte limit", len,
                         MCP_MAX_MESSAGE);
    struct json_parse_opts opts = {.max_depth = RPC_MAX_DEPTH, .max_size = MCP_MAX_MESSAGE};
    struct json_value *root = NULL;
    int rc = json_parse(a, text, len, &opts, &root, err);
    if (rc) {
        keel_err_prefix(err, "JSON-RPC message is not valid JSON");
        return rc;
    }
    if (json_is(root, JSON_ARRAY))
        return keel_fail(err, KEEL_EINVAL,
                         "JSON-RPC batch (array) received; MCP messages are single objects");
    if (!json_is(root, JSON_OBJECT))
        return keel_fail(err, KEEL_EINVAL, "JSON-RPC message is a %s, expected an object",
                         json_type_name(root));
    struct json_value *ver = json_get(root, "jsonrpc");
    if (!json_is(ver, JSON_STRING) || strcmp(ver->u.s.str, "2.0") != 0)
        return keel_fail(err, KEEL_EINVAL, "JSON-RPC message lacks \"jsonrpc\": \"2.0\"");

    struct mcp_rpc_msg m = {.root = root};
    struct json_value *method = json_get(root, "method");
    struct json_value *id = json_get(root, "id");
    struct json_value *result = json_get(root, "result");
    struct json_value *error = json_get(root, "error");
    struct json_value *params = json_get(root, "params");

    if (method) {
        if (!json_is(method, JSON_STRING) || method->len == 0 ||
            strlen(method->u.s.str) != method->len)
            return keel_fail(err, KEEL_EINVAL, "JSON-RPC \"method\" must be a non-empty string");
        if (result || error)
            return keel_fail(err, KEEL_EINVAL,
                             "JSON-RPC message has both \"method\" and \"result\"/\"error\"");
        if (params && !json_is(params, JSON_OBJECT) && !json_is(params, JSON_ARRAY))
            return keel_fail(err, KEEL_EINVAL,
                             "JSON-RPC \"params\" of '%s' must be an object or array",
                             method->u.s.str);
        m.method = method->u.s.str;
        m.params = params;
        if (id) {
            if (!valid_id(id))
                return keel_fail(err, KEEL_EINVAL,
                                 "JSON-RPC request id must be a string or an integer, not %s",
                                 json_type_name(id));
            m.kind = MCP_RPC_REQUEST;
            m.id = id;
        } else {
            m.kind = MCP_RPC_NOTIFICATION;
        }
        *out = m;
        return 0;
    }
    if (result && error)
        return keel_fail(err, KEEL_EINVAL, "JSON-RPC response has both \"result\" and \"error\"");
    if (!result && !error)
        return keel_fail(err, KEEL_EINVAL,
                         "JSON-RPC message has neither \"method\" nor \"result\"/\"error\"");
    if (!id)
        return keel_fail(err, KEEL_EINVAL, "JSON-RPC response has no \"id\"");
    if (result) {
        if (!valid_id(id))
            return keel_fail(err, KEEL_EINVAL,
                             "JSON-RPC response id must be a string or an integer, not %s",
                             json_type_name(id));
        m.kind = MCP_RPC_RESULT;
        m.id = id;
        m.result = result;
        *out = m;
        return 0;
    }
    if (!valid_id(id) && !json_is(id, JSON_NULL))
        return keel_fail(err, KEEL_EINVAL,
                         "JSON-RPC error id must be a string, an integer or null, not %s",
                         json_type_name(id));
    if (!json_is(error, JSON_OBJECT))
        return keel_fail(err, KEEL_EINVAL, "JSON-RPC \"error\" must be an object");
    struct json_value *code = json_get(error, "code");
    struct json_value *msg = json_get(error, "message");
    if (!code || !(code->nflags & JSON_NUM_I64) || !json_is_integer(code))
        return keel_fail(err, KEEL_EINVAL, "JSON-RPC error \"code\" must be an integer");
    if (!json_is(msg, JSON_STRING))
        return keel_fail(err, KEEL_EINVAL, "JSON-RPC error \"message\" must be a string");
    m.kind = MCP_RPC_ERROR;
    m.id = id;
    m.error_code = code->u.n.i;
    m.error_message = msg->u.s.str;
    m.error_data = json_get(error, "data");
    *out = m;
    return 0;
}

/* The writers build the envelope by hand around json_write, so the payload
 * is written once, straight into the output buffer.  json_write without
 * CANONICAL cannot fail. */
static void put_value(struct buf *out, const struct json_value *v)
{
    (void)json_write(out, v, 0, NULL);
}

void mcp_rpc_write_request(struct buf *out, int64_t id, const char *method,
                           const struct json_value *params)
{
    buf_printf(out, "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":", (long long)id);
    json_write_string(out, method, strlen(method));
    if (params) {
        buf_puts(out, ",\"params\":");
        put_value(out, params);
    }
    buf_putc(out, '}');
}

void mcp_rpc_write_notification(struct buf *out, const char *method,
                                const struct json_value *params)
{
    buf_puts(out, "{\"jsonrpc\":\"2.0\",\"method\":");
    json_write_string(out, method, strlen(method));
    if (params) {
        buf_puts(out, ",\"params\":");
        put_value(out, params);
    }
    buf_putc(out, '}');
}

void mcp_rpc_write_result(struct buf *out, const struct json_value *id,
                          const struct json_value *result)
{
    buf_puts(out, "{\"jsonrpc\":\"2.0\",\"id\":");
    if (id) put_value(out, id);
    else buf_puts(out, "null");
    buf_puts(out, ",\"result\":");
    if (result) put_value(out, result);
    else buf_puts(out, "{}");
    buf_putc(out, '}');
}

void mcp_rpc_write_error(struct buf *out, const struct json_value *id, int64_t code,
                         const char *message, const struct json_value *data)
{
    buf_puts(out, "{\"jsonrpc\":\"2.0\",\"id\":");
    if (id) put_value(out, id);
    else buf_puts(out, "null");
    buf_printf(out, ",\"error\":{\"code\":%lld,\"message\":", (long long)code);
    json_write_string(out, message ? message : "", message ? strlen(message) : 0);
    if (data) {
        buf_puts(out, ",\"data\":");
        put_value(out, data);
    }
    buf_puts(out, "}}");
}
