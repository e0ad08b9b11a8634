/*
 * types.c — MCP's tool-related objects (schema revision 2025-11-25):
 * decoding a Tool from tools/list and a CallToolResult from tools/call,
 * and reading the text of a result.  Shared by the stdio client and, later,
 * the gateway and HTTP transport.
 *
 * Tool:            {name, title?, description?, inputSchema (object),
 *                   outputSchema? (object), annotations? {title?,
 *                   readOnlyHint?, destructiveHint?, idempotentHint?,
 *                   openWorldHint?}, icons?, _meta?}
 * CallToolResult:  {content: ContentBlock[], structuredContent? (object),
 *                   isError? (boolean), _meta? (object)}
 *
 * Invariants: decoders never copy; the outputs point into the value they
 * were given.  A decoder that fails leaves its output untouched.  Hints
 * that are absent or not booleans take MCP's defaults (readOnly false,
 * destructive true, idempotent false, openWorld true), since hints are
 * advisory and a malformed one must not make a tool look safer.
 */
#include "mcp.h"

#include <string.h>

static bool hint(const struct json_value *ann, const char *key, bool dflt)
{
    struct json_value *v = json_get(ann, key);
    return json_is_bool(v) ? v->type == JSON_TRUE : dflt;
}

/* A string without embedded NULs, so C string functions see all of it. */
static bool plain_string(const struct json_value *v)
{
    return json_is(v, JSON_STRING) && strlen(v->u.s.str) == v->len;
}

int mcp_tool_decode(struct json_value *raw, const char *server, struct mcp_tool *out,
                    struct keel_err *err)
{
    if (!json_is(raw, JSON_OBJECT))
        return keel_fail(err, KEEL_EPROTO, "a tool must be an object, not %s", json_type_name(raw));
    struct json_value *name = json_get(raw, "name");
    if (!plain_string(name) || name->len == 0)
        return keel_fail(err, KEEL_EPROTO, "a tool has no name (a non-empty string)");
    struct json_value *in = json_get(raw, "inputSchema");
    struct json_value *outs = json_get(raw, "outputSchema");
    if (!json_is(in, JSON_OBJECT))
        return keel_fail(err, KEEL_EPROTO, "tool '%s' has no inputSchema object (MCP requires one)",
                         name->u.s.str);
    if (outs && !json_is(outs, JSON_OBJECT))
        return keel_fail(err, KEEL_EPROTO, "tool '%s' has an outputSchema that is not an object",
                         name->u.s.str);
    struct json_value *ann = json_get(raw, "annotations");
    if (!json_is(ann, JSON_OBJECT)) ann = NULL;
    struct json_value *title = json_get(raw, "title");
    if (!plain_string(title)) title = json_get(ann, "title");
    struct json_value *desc = json_get(raw, "description");

    struct mcp_tool t = {
        .server = server,
        .name = name->u.s.str,
        .title = plain_string(title) ? title->u.s.str : NULL,
        .description = plain_string(desc) ? desc->u.s.str : NULL,
        .input_schema = in,
        .output_schema = outs,
        .annotations = ann,
        .read_only_hint = hint(ann, "readOnlyHint", false),
        .destructive_hint = hint(ann, "destructiveHint", true),
        .idempotent_hint = hint(ann, "idempotentHint", false),
        .open_world_hint = hint(ann, "openWorldHint", true),
        .raw = raw,
    };
    t.idempotent = t.idempotent_hint;
    *out = t;
    return 0;
}

int mcp_call_result_decode(struct json_value *result, struct mcp_call_result *out,
                           struct keel_err *err)
{
    if (!json_is(result, JSON_OBJECT))
        return keel_fail(err, KEEL_EPROTO, "result must be an object, not %s",
                         json_type_name(result));
    struct json_value *content = json_get(result, "content");
    if (!json_is(content, JSON_ARRAY))
        return keel_fail(err, KEEL_EPROTO, "result has no content array");
    for (uint32_t i = 0; i < content->len; i++) {
        struct json_value *blk = content->u.items[i];
        if (!json_is(blk, JSON_OBJECT) || !plain_string(json_get(blk, "type")))
            return keel_fail(err, KEEL_EPROTO, "content[%u] is not a content block with a type", i);
    }
    struct json_value *structured = json_get(result, "structuredContent");
    if (structured && !json_is(structured, JSON_OBJECT))
        return keel_fail(err, KEEL_EPROTO, "structuredContent must be an object, not %s",
                         json_type_name(structured));
    struct json_value *is_error = json_get(result, "isError");
    if (is_error && !json_is_bool(is_error))
        return keel_fail(err, KEEL_EPROTO, "isError must be a boolean, not %s",
                         json_type_name(is_error));
    struct json_value *meta = json_get(result, "_meta");
    if (meta && !json_is(meta, JSON_OBJECT))
        return keel_fail(err, KEEL_EPROTO, "_meta must be an object, not %s", json_type_name(meta));
    *out = (struct mcp_call_result){
        .content = content,
        .structured = structured,
        .is_error = is_error && is_error->type == JSON_TRUE,
        .meta = meta,
        .raw = result,
    };
    return 0;
}

const char *mcp_result_text(struct arena *a, const struct mcp_call_result *r)
{
    struct buf b;
    buf_init(&b);
    bool first = true;
    for (uint32_t i = 0; r && r->content && i < r->content->len; i++) {
        struct json_value *blk = r->content->u.items[i];
        const char *type = json_get_str(blk, "type", "");
        struct json_value *text = json_get(blk, "text");
        if (strcmp(type, "text") != 0 || !json_is(text, JSON_STRING)) continue;
        if (!first) buf_putc(&b, '\n');
        /* A NUL in the text (JSON "\u0000") would cut the C string short
         * and hide what follows: it becomes U+FFFD. */
        const char *t = text->u.s.str, *end = t + text->len;
        for (const char *z; t < end && (z = memchr(t, '\0', (size_t)(end - t))) != NULL;
             t = z + 1) {
            buf_append(&b, t, (size_t)(z - t));
            buf_puts(&b, "\xEF\xBF\xBD");
        }
        buf_append(&b, t, (size_t)(end - t));
        first = false;
    }
    const char *s = arena_strndup(a, b.data ? b.data : "", b.len);
    buf_cleanup(&b);
    return s;
}
