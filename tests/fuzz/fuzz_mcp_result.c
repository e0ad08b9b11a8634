/*
 * fuzz_mcp_result.c — libFuzzer target for the decoders of what a tool
 * server returns (src/mcp/types.c): a tools/list result (each Tool) and a
 * tools/call result (CallToolResult), plus mcp_result_text.
 *
 * Properties beyond "no crash, no leak, no UB": a decoded tool has a
 * non-empty name and object input schema, hints default as MCP says, and a
 * decoded result has an array of content blocks whose text is found.
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
    struct json_value *v = NULL;
    struct keel_err err;
    struct json_parse_opts opts = {.max_depth = 128};
    if (json_parse(&a, (const char *)data, size, &opts, &v, &err) != 0) {
        arena_cleanup(&a);
        return 0;
    }
    struct json_value *tools = json_get(v, "tools");
    for (uint32_t i = 0; json_is(tools, JSON_ARRAY) && i < tools->len; i++) {
        struct mcp_tool t;
        memset(&t, 0xAB, sizeof t);
        struct mcp_tool before = t;
        if (mcp_tool_decode(tools->u.items[i], "fuzz", &t, &err) != 0) {
            check(memcmp(&t, &before, sizeof t) == 0); /* untouched */
            continue;
        }
        check(t.name && t.name[0] && !strcmp(t.server, "fuzz"));
        check(json_is(t.input_schema, JSON_OBJECT));
        check(!t.output_schema || json_is(t.output_schema, JSON_OBJECT));
        check(t.idempotent == t.idempotent_hint);
        if (!t.annotations) check(!t.read_only_hint && t.destructive_hint && t.open_world_hint);
    }
    struct mcp_call_result r;
    if (mcp_call_result_decode(v, &r, &err) == 0) {
        check(json_is(r.content, JSON_ARRAY));
        check(!r.structured || json_is(r.structured, JSON_OBJECT));
        const char *text = mcp_result_text(&a, &r);
        check(text != NULL);
        for (uint32_t i = 0; i < r.content->len; i++) {
            struct json_value *t = json_get(r.content->u.items[i], "text");
            if (!strcmp(json_get_str(r.content->u.items[i], "type", ""), "text") &&
                json_is(t, JSON_STRING) && t->len && strlen(t->u.s.str) == t->len)
                check(strstr(text, t->u.s.str) != NULL);
        }
    }
    arena_cleanup(&a);
    return 0;
}
