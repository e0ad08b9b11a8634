/*
 * fuzz_mcp_jsonrpc.c — libFuzzer target for the JSON-RPC decoder
 * (src/mcp/jsonrpc.c), which reads every line a tool server writes.
 *
 * Properties checked beyond "no crash, no leak, no UB":
 *   - a decoded message is classified consistently with its fields;
 *   - re-encoding it with the matching writer and decoding again gives the
 *     same kind, id, method and payload (the writers emit what the decoder
 *     accepts, with no raw newline, as stdio framing requires).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/mcp.h"

static void check(int cond)
{
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena a;
    arena_init(&a);
    struct mcp_rpc_msg m;
    struct keel_err err;
    keel_err_clear(&err);
    if (mcp_rpc_decode(&a, (const char *)data, size, &m, &err) != 0) {
        check(err.code != 0 && err.msg[0] != '\0');
        arena_cleanup(&a);
        return 0;
    }
    struct buf b;
    buf_init(&b);
    switch (m.kind) {
    case MCP_RPC_REQUEST:
        check(m.method && m.id);
        if (json_is_integer(m.id) && (m.id->nflags & JSON_NUM_I64)) {
            mcp_rpc_write_request(&b, m.id->u.n.i, m.method, m.params);
        }
        break;
    case MCP_RPC_NOTIFICATION:
        check(m.method && !m.id);
        mcp_rpc_write_notification(&b, m.method, m.params);
        break;
    case MCP_RPC_RESULT:
        check(m.id && m.result && !m.method);
        mcp_rpc_write_result(&b, m.id, m.result);
        break;
    case MCP_RPC_ERROR:
        check(m.id && m.error_message && !m.method);
        mcp_rpc_write_error(&b, m.id, m.error_code, m.error_message, m.error_data);
        break;
    default:
        check(0);
    }
    if (b.len) {
        check(memchr(b.data, '\n', b.len) == NULL);
        struct mcp_rpc_msg m2;
        int rc = mcp_rpc_decode(&a, b.data, b.len, &m2, &err);
        /* The only way re-encoding may fail is an error message with an
         * embedded NUL, which the writer truncates at the NUL. */
        check(rc == 0);
        check(m2.kind == m.kind);
        if (m.method) check(!strcmp(m.method, m2.method));
        if (m.id) check(json_equal(m.id, m2.id));
        if (m.params) check(json_equal(m.params, m2.params));
        if (m.result) check(json_equal(m.result, m2.result));
        if (m.kind == MCP_RPC_ERROR) check(m.error_code == m2.error_code);
    }
    buf_cleanup(&b);
    arena_cleanup(&a);
    return 0;
}
