/*
 * script.c — the mock model server without its HTTP layer: the script
 * (parsing with positioned errors, matching, consumption), the provider wire
 * formats (request validation, replies and error bodies for OpenAI Chat
 * Completions and Anthropic Messages), the routes and the request records.
 *
 * It has no main() and does not use libmicrohttpd, so the fuzz target
 * includes this file whole and drives both the script parser and the
 * request-to-reply path (tests/fuzz/fuzz_mockmodel_script.c).
 *
 * Invariants:
 *   - Every request to a route gets exactly one reply; every request that is
 *     not a /_mock/ control call gets exactly one record, numbered n = 1, 2,
 *     ... since the last script load or reset, in the order the mutex was
 *     taken (the reply's ids use the same n).
 *   - The script state (entries, their use counts), the records and the log
 *     file are touched only with m->lock held; a reply is built under the
 *     lock because it borrows strings from the script's arena, which a
 *     concurrent POST /_mock/script may free.
 *   - Nothing a client sends can crash this code: bodies are capped
 *     (MOCK_MAX_BODY) before they get here, parsed by the strict JSON layer,
 *     and validated field by field before anything reads them as a shape.
 *   - The two wire formats differ only through the format table (formats[]);
 *     adding a provider is adding a row and its functions.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mock.h"

/* ---- small helpers ------------------------------------------------------ */

struct span {
    const char *p; /* NULL: not given */
    size_t n;
};

static bool span_has(struct span s)
{
    return s.p != NULL;
}

/* Is needle a substring of hay (byte-wise, NULs allowed)? */
static bool contains(const struct buf *hay, struct span needle)
{
    if (needle.n == 0) return true;
    if (hay->len < needle.n || !hay->data) return false;
    return memmem(hay->data, hay->len, needle.p, needle.n) != NULL;
}

static bool str_is(const struct json_value *v, const char *s)
{
    return json_is(v, JSON_STRING) && strlen(s) == v->len && memcmp(v->u.s.str, s, v->len) == 0;
}

/* The providers' tool name rule: ^[A-Za-z0-9_-]{1,64}$. */
static bool valid_tool_name(const struct json_value *v)
{
    if (!json_is(v, JSON_STRING) || v->len < 1 || v->len > 64) return false;
    for (uint32_t i = 0; i < v->len; i++) {
        char c = v->u.s.str[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

static bool positive_int(const struct json_value *v)
{
    return json_is_integer(v) && (v->nflags & JSON_NUM_I64) && v->u.n.i > 0;
}

static void join(struct buf *b, const char *s, size_t n)
{
    if (b->len) buf_putc(b, '\n');
    buf_append(b, s, n);
}

static void join_value(struct buf *b, const struct json_value *v)
{
    if (json_is(v, JSON_STRING)) {
        join(b, v->u.s.str, v->len);
        return;
    }
    if (b->len) buf_putc(b, '\n');
    json_write(b, v, 0, NULL);
}

/* ---- the script --------------------------------------------------------- */

enum format_id { FMT_OPENAI, FMT_ANTHROPIC, FMT_COUNT };

/* One call in a scripted reply: arguments (any JSON, normally an object)
 * or arguments_text (raw text sent as is, possibly not JSON). */
struct mock_call {
    struct span name;
    const struct json_value *arguments;
    struct span arguments_text;
};

struct entry {
    /* when: every given condition must hold */
    struct span model, system_contains, last_user_contains, last_message_contains, tool_offered;
    int path_format; /* enum format_id, or -1: any */
    /* the reply */
    struct span content;
    const struct json_value *json;
    struct mock_call *calls;
    size_t ncalls;
    int64_t status; /* 0: not given */
    struct span body;
    int64_t retry_after; /* -1: none */
    struct span error;
    int64_t usage_in, usage_out; /* -1: estimate */
    int64_t delay_ms;
    bool stop_length;
    int64_t allowed; /* uses; -1: sticky (forever) */
    /* consumption */
    int64_t used;
};

struct script {
    struct arena arena; /* the parsed script and every string entries point to */
    struct entry *entries;
    size_t count;
    /* Model ids that, like OpenAI's o-series and gpt-5, refuse max_tokens
     * (they take max_completion_tokens): "max_completion_tokens_only". */
    struct span *completion_only;
    size_t ncompletion_only;
};

static void script_free(struct script *s)
{
    if (!s) return;
    arena_cleanup(&s->arena);
    free(s);
}

static bool entry_available(const struct entry *e)
{
    return e->allowed < 0 || e->used < e->allowed;
}

/* Parsing context: errors carry the file, the value's line:column and the
 * JSON Pointer of the value (ptr is built by the caller). */
struct sctx {
    const char *file;
    struct keel_err *err;
    char ptr[160]; /* pointer of the entry being parsed: "/responses/3" */
};

static int bad(struct sctx *c, const struct json_value *v, const char *field, const char *fmt, ...)
    KEEL_PRINTF(4, 5);
static int bad(struct sctx *c, const struct json_value *v, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    keel_vfail(c->err, KEEL_EINVAL, fmt, ap);
    va_end(ap);
    if (c->err) {
        snprintf(c->err->file, sizeof c->err->file, "%s", c->file ? c->file : "");
        c->err->line = v ? v->line : 0;
        c->err->column = v ? v->column : 0;
        snprintf(c->err->path, sizeof c->err->path, "%s%s%s", c->ptr, field ? "/" : "",
                 field ? field : "");
    }
    return KEEL_EINVAL;
}

static int get_span(struct sctx *c, const struct json_value *v, const char *field, struct span *out)
{
    if (!json_is(v, JSON_STRING))
        return bad(c, v, field, "'%s' must be a string, not %s", field, json_type_name(v));
    out->p = v->u.s.str;
    out->n = v->len;
    return 0;
}

static int get_int(struct sctx *c, const struct json_value *v, const char *field, int64_t min,
                   int64_t max, int64_t *out)
{
    if (!json_is_integer(v) || !(v->nflags & JSON_NUM_I64) || v->u.n.i < min || v->u.n.i > max)
        return bad(c, v, field, "'%s' must be an integer from %lld to %lld", field, (long long)min,
                   (long long)max);
    *out = v->u.n.i;
    return 0;
}

/* Writes "prefix/<key>" into out, with key escaped as a JSON Pointer token
 * (~ -> ~0, / -> ~1), for the error path of an unknown key. */
static const char *key_field(char *out, size_t cap, const char *prefix,
                             const struct json_member *mb)
{
    struct buf b;
    buf_init(&b);
    if (prefix) buf_puts(&b, prefix);
    json_pointer_append(&b, mb->key, mb->key_len > 80 ? 80 : mb->key_len);
    /* bad() adds the '/' between the entry's pointer and the field. */
    snprintf(out, cap, "%s", b.data + (prefix ? 0 : 1));
    buf_cleanup(&b);
    return out;
}

/* ---- the "when" object: one row per condition ---- */

static const char *const format_names[FMT_COUNT] = {"openai", "anthropic"};

struct when_field {
    const char *name;
    size_t offset; /* of the struct span in struct entry; SIZE_MAX: the path */
};

static const struct when_field when_fields[] = {
    {"model", offsetof(struct entry, model)},
    {"system_contains", offsetof(struct entry, system_contains)},
    {"last_user_contains", offsetof(struct entry, last_user_contains)},
    {"last_message_contains", offsetof(struct entry, last_message_contains)},
    {"tool_offered", offsetof(struct entry, tool_offered)},
    {"path", SIZE_MAX},
};

static int parse_when(struct sctx *c, struct entry *e, const struct json_value *v)
{
    if (!json_is(v, JSON_OBJECT))
        return bad(c, v, "when",
                   "'when' must be an object of conditions, e.g. "
                   "{\"last_user_contains\": \"refund\"}");
    for (uint32_t i = 0; i < v->len; i++) {
        const struct json_member *mb = &v->u.members[i];
        const struct when_field *f = NULL;
        for (size_t k = 0; k < KEEL_ARRAY_LEN(when_fields); k++)
            if (strlen(when_fields[k].name) == mb->key_len &&
                memcmp(when_fields[k].name, mb->key, mb->key_len) == 0)
                f = &when_fields[k];
        char field[600];
        key_field(field, sizeof field, "when", mb);
        if (!f)
            return bad(c, mb->value, field,
                       "unknown condition '%.80s' in 'when'; known conditions: model, "
                       "system_contains, last_user_contains, last_message_contains, "
                       "tool_offered, path",
                       mb->key);
        if (f->offset != SIZE_MAX) {
            int rc = get_span(c, mb->value, field, (struct span *)((char *)e + f->offset));
            if (rc) return rc;
            continue;
        }
        e->path_format = -1;
        for (int k = 0; k < FMT_COUNT; k++)
            if (str_is(mb->value, format_names[k])) e->path_format = k;
        if (e->path_format < 0)
            return bad(c, mb->value, field, "'when.path' must be \"openai\" or \"anthropic\"");
    }
    return 0;
}

/* ---- entry fields: one row per field ---- */

static int parse_content(struct sctx *c, struct entry *e, const struct json_value *v)
{
    return get_span(c, v, "content", &e->content);
}

static int parse_json(struct sctx *c, struct entry *e, const struct json_value *v)
{
    e->json = v;
    return 0;
}

static int parse_tool_calls(struct sctx *c, struct entry *e, const struct json_value *v,
                            struct arena *a)
{
    if (!json_is(v, JSON_ARRAY) || v->len == 0 || v->len > 128)
        return bad(c, v, "tool_calls",
                   "'tool_calls' must be an array of 1 to 128 calls like "
                   "{\"name\": \"crm__lookup_account\", \"arguments\": {\"id\": \"A-1\"}}");
    e->calls = arena_zalloc(a, v->len * sizeof *e->calls);
    e->ncalls = v->len;
    for (uint32_t i = 0; i < v->len; i++) {
        const struct json_value *call = v->u.items[i];
        struct mock_call *mc = &e->calls[i];
        char field[64];
        snprintf(field, sizeof field, "tool_calls/%u", (unsigned)i);
        if (!json_is(call, JSON_OBJECT))
            return bad(c, call, field,
                       "a tool call must be an object with \"name\" and "
                       "\"arguments\" (or \"arguments_text\")");
        for (uint32_t k = 0; k < call->len; k++) {
            const char *key = call->u.members[k].key;
            if (strcmp(key, "name") && strcmp(key, "arguments") && strcmp(key, "arguments_text"))
                return bad(c, call->u.members[k].value, field,
                           "unknown field '%.80s' in a tool call; known fields: name, "
                           "arguments, arguments_text",
                           key);
        }
        const struct json_value *name = json_get(call, "name");
        if (!json_is(name, JSON_STRING) || name->len == 0 || name->len > 256)
            return bad(c, name ? name : call, field,
                       "a tool call needs \"name\": a string of 1 to 256 bytes");
        mc->name = (struct span){name->u.s.str, name->len};
        const struct json_value *args = json_get(call, "arguments");
        const struct json_value *text = json_get(call, "arguments_text");
        if (args && text)
            return bad(c, text, field,
                       "give either \"arguments\" (a JSON value) or \"arguments_text\" (raw "
                       "text), not both");
        if (text) {
            if (!json_is(text, JSON_STRING))
                return bad(c, text, field, "\"arguments_text\" must be a string");
            mc->arguments_text = (struct span){text->u.s.str, text->len};
        } else {
            mc->arguments = args ? args : json_object(a);
        }
    }
    return 0;
}

static int parse_status(struct sctx *c, struct entry *e, const struct json_value *v)
{
    return get_int(c, v, "status", 200, 599, &e->status);
}

static int parse_retry_after(struct sctx *c, struct entry *e, const struct json_value *v)
{
    return get_int(c, v, "retry_after", 0, 86400, &e->retry_after);
}

static int parse_error(struct sctx *c, struct entry *e, const struct json_value *v)
{
    return get_span(c, v, "error", &e->error);
}

static int parse_body(struct sctx *c, struct entry *e, const struct json_value *v)
{
    return get_span(c, v, "body", &e->body);
}

static int parse_usage(struct sctx *c, struct entry *e, const struct json_value *v)
{
    if (!json_is(v, JSON_OBJECT))
        return bad(c, v, "usage",
                   "'usage' must be an object like {\"input_tokens\": 12, "
                   "\"output_tokens\": 3}");
    for (uint32_t i = 0; i < v->len; i++) {
        const struct json_member *mb = &v->u.members[i];
        int64_t *dst = !strcmp(mb->key, "input_tokens")    ? &e->usage_in
                       : !strcmp(mb->key, "output_tokens") ? &e->usage_out
                                                           : NULL;
        if (!dst)
            return bad(c, mb->value, "usage",
                       "unknown field '%.80s' in 'usage'; known fields: input_tokens, "
                       "output_tokens",
                       mb->key);
        int rc = get_int(c, mb->value, "usage", 0, INT64_C(1) << 40, dst);
        if (rc) return rc;
    }
    return 0;
}

static int parse_delay(struct sctx *c, struct entry *e, const struct json_value *v)
{
    return get_int(c, v, "delay_ms", 0, MOCK_MAX_DELAY_MS, &e->delay_ms);
}

static int parse_stop(struct sctx *c, struct entry *e, const struct json_value *v)
{
    if (!str_is(v, "length"))
        return bad(c, v, "stop",
                   "'stop' can only be \"length\" (a reply cut at max tokens); "
                   "leave it out for a normal finish");
    e->stop_length = true;
    return 0;
}

static int parse_repeat(struct sctx *c, struct entry *e, const struct json_value *v)
{
    return get_int(c, v, "repeat", 1, INT64_C(1) << 40, &e->allowed);
}

static int parse_sticky(struct sctx *c, struct entry *e, const struct json_value *v)
{
    if (!json_is_bool(v)) return bad(c, v, "sticky", "'sticky' must be true or false");
    if (v->type == JSON_TRUE) e->allowed = -1;
    return 0;
}

static int parse_comment(struct sctx *c, struct entry *e, const struct json_value *v)
{
    return 0;
}

struct entry_field {
    const char *name;
    int (*parse)(struct sctx *c, struct entry *e, const struct json_value *v);
};

/* clang-format off */
static const struct entry_field entry_fields[] = {
    {"when", parse_when},
    {"content", parse_content},
    {"json", parse_json},
    {"tool_calls", NULL}, /* needs the arena: parse_tool_calls */
    {"status", parse_status},
    {"retry_after", parse_retry_after},
    {"error", parse_error},
    {"body", parse_body},
    {"usage", parse_usage},
    {"delay_ms", parse_delay},
    {"stop", parse_stop},
    {"repeat", parse_repeat},
    {"sticky", parse_sticky},
    {"comment", parse_comment},
};
/* clang-format on */

/* Checks how the reply fields combine: one reply kind per entry. */
static int check_entry(struct sctx *c, const struct entry *e, const struct json_value *v)
{
    bool text = span_has(e->content), json = e->json != NULL, calls = e->ncalls > 0;
    bool body = span_has(e->body), status = e->status != 0;
    if (json_get(v, "repeat") && json_get_bool(v, "sticky", false))
        return bad(c, json_get(v, "sticky"), "sticky",
                   "give either \"repeat\": N or \"sticky\": true, not both");
    if (body && (text || json || calls || span_has(e->error)))
        return bad(c, json_get(v, "body"), "body",
                   "\"body\" sends raw text as the whole reply; it cannot be combined with "
                   "content, json, tool_calls or error");
    if (!body && status && e->status < 400)
        return bad(c, json_get(v, "status"), "status",
                   "\"status\" without \"body\" is an error reply and must be 400..599; for a "
                   "normal answer give \"content\", \"json\" or \"tool_calls\"");
    if (!body && status && (text || json || calls))
        return bad(c, json_get(v, "status"), "status",
                   "an error reply (\"status\") cannot also carry content, json or tool_calls");
    if (json && (text || calls))
        return bad(c, json_get(v, "json"), "json",
                   "\"json\" is the whole assistant text; it cannot be combined with content "
                   "or tool_calls");
    if (!(text || json || calls || body || status))
        return bad(c, v, NULL,
                   "this entry has no reply: give \"content\", \"json\", \"tool_calls\", "
                   "\"status\" (an error) or \"body\" (raw text)");
    if (e->retry_after >= 0 && !status && !body)
        return bad(c, json_get(v, "retry_after"), "retry_after",
                   "\"retry_after\" goes with an error \"status\" (e.g. 429)");
    if (span_has(e->error) && !status)
        return bad(c, json_get(v, "error"), "error",
                   "\"error\" is the message of an error reply; give \"status\" too (e.g. 429)");
    return 0;
}

static int parse_entry(struct sctx *c, struct arena *a, struct entry *e, const struct json_value *v)
{
    memset(e, 0, sizeof *e);
    e->path_format = -1;
    e->retry_after = -1;
    e->usage_in = e->usage_out = -1;
    e->allowed = 1;
    if (!json_is(v, JSON_OBJECT))
        return bad(c, v, NULL, "a script entry must be an object like {\"content\": \"Hello\"}");
    for (uint32_t i = 0; i < v->len; i++) {
        const struct json_member *mb = &v->u.members[i];
        const struct entry_field *f = NULL;
        for (size_t k = 0; k < KEEL_ARRAY_LEN(entry_fields); k++)
            if (strlen(entry_fields[k].name) == mb->key_len &&
                memcmp(entry_fields[k].name, mb->key, mb->key_len) == 0)
                f = &entry_fields[k];
        char field[600];
        if (!f)
            return bad(c, mb->value, key_field(field, sizeof field, NULL, mb),
                       "unknown field '%.80s' in a script entry; known fields: when, content, "
                       "json, tool_calls, status, retry_after, error, body, usage, delay_ms, "
                       "stop, repeat, sticky, comment",
                       mb->key);
        int rc = f->parse ? f->parse(c, e, mb->value) : parse_tool_calls(c, e, mb->value, a);
        if (rc) return rc;
    }
    return check_entry(c, e, v);
}

/* "max_completion_tokens_only": [model id, ...] at the top of the script. */
static int parse_completion_only(struct sctx *c, struct script *s, const struct json_value *v)
{
    snprintf(c->ptr, sizeof c->ptr, "/max_completion_tokens_only");
    if (!json_is(v, JSON_ARRAY) || v->len > MOCK_MAX_MODEL_IDS)
        return bad(c, v, NULL,
                   "'max_completion_tokens_only' must be a list of at most %d model ids, e.g. "
                   "[\"o3-mini\", \"gpt-5\"]",
                   MOCK_MAX_MODEL_IDS);
    s->completion_only = arena_zalloc(&s->arena, (v->len + 1) * sizeof *s->completion_only);
    for (uint32_t i = 0; i < v->len; i++) {
        const struct json_value *id = v->u.items[i];
        if (!json_is(id, JSON_STRING) || id->len == 0) {
            snprintf(c->ptr, sizeof c->ptr, "/max_completion_tokens_only/%u", (unsigned)i);
            return bad(c, id, NULL,
                       "item %u of 'max_completion_tokens_only' must be a model id (a non-empty "
                       "string), not %s",
                       (unsigned)i, json_is(id, JSON_STRING) ? "an empty string"
                                                              : json_type_name(id));
        }
        s->completion_only[i] = (struct span){id->u.s.str, id->len};
    }
    s->ncompletion_only = v->len;
    c->ptr[0] = '\0';
    return 0;
}

/* Does the script list model (NULL: none) as refusing max_tokens? */
static bool completion_only(const struct script *s, const char *model)
{
    size_t n = model ? strlen(model) : 0;
    for (size_t i = 0; model && i < s->ncompletion_only; i++)
        if (s->completion_only[i].n == n && !memcmp(s->completion_only[i].p, model, n))
            return true;
    return false;
}

/* Parses a script document into a new struct script (free with
 * script_free). */
static int script_parse(const char *text, size_t len, const char *file, struct script **out,
                        struct keel_err *err)
{
    struct sctx c = {.file = file, .err = err};
    if (len > MOCK_MAX_SCRIPT)
        return keel_fail_at(err, KEEL_ELIMIT, file, 0, 0,
                            "the script is %zu bytes, over the limit of %zu; split it or "
                            "shorten the replies",
                            len, MOCK_MAX_SCRIPT);
    struct script *s = calloc(1, sizeof *s);
    if (!s) return keel_fail(err, KEEL_ENOMEM, "out of memory loading the script");
    arena_init(&s->arena);
    struct json_parse_opts opts = {.max_depth = 256, .max_size = MOCK_MAX_SCRIPT, .file = file};
    struct json_value *root;
    int rc = json_parse(&s->arena, text, len, &opts, &root, err);
    if (rc) {
        keel_err_prefix(err, "the script is not valid JSON");
        script_free(s);
        return rc;
    }
    const struct json_value *list = root;
    if (json_is(root, JSON_OBJECT)) {
        for (uint32_t i = 0; i < root->len; i++) {
            const char *key = root->u.members[i].key;
            if (strcmp(key, "responses") && strcmp(key, "comment") &&
                strcmp(key, "max_completion_tokens_only")) {
                char field[600];
                rc = bad(&c, root->u.members[i].value,
                         key_field(field, sizeof field, NULL, &root->u.members[i]),
                         "unknown field '%.80s' at the top of the script; known fields: "
                         "responses, comment, max_completion_tokens_only",
                         key);
                script_free(s);
                return rc;
            }
        }
        const struct json_value *only = json_get(root, "max_completion_tokens_only");
        if (only && (rc = parse_completion_only(&c, s, only))) {
            script_free(s);
            return rc;
        }
        list = json_get(root, "responses");
        snprintf(c.ptr, sizeof c.ptr, "/responses");
        if (!list) {
            rc = bad(&c, root, NULL, "the script needs \"responses\": [entry, ...]");
            c.ptr[0] = '\0';
            if (err) err->path[0] = '\0';
            script_free(s);
            return rc;
        }
    }
    if (!json_is(list, JSON_ARRAY)) {
        rc = bad(&c, list, NULL,
                 "the script must be {\"responses\": [entry, ...]} or a bare array of "
                 "entries, not %s",
                 json_type_name(list));
        script_free(s);
        return rc;
    }
    if (list->len > MOCK_MAX_ENTRIES) {
        rc = bad(&c, list, NULL, "the script has %u entries, over the limit of %d",
                 (unsigned)list->len, MOCK_MAX_ENTRIES);
        script_free(s);
        return rc;
    }
    char base[16];
    snprintf(base, sizeof base, "%s", c.ptr);
    s->count = list->len;
    s->entries = arena_zalloc(&s->arena, (s->count ? s->count : 1) * sizeof *s->entries);
    for (size_t i = 0; i < s->count; i++) {
        snprintf(c.ptr, sizeof c.ptr, "%s/%zu", base, i);
        rc = parse_entry(&c, &s->arena, &s->entries[i], list->u.items[i]);
        if (rc) {
            keel_err_prefix(err, "script entry %zu", i);
            script_free(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

/* ---- what a request says, in one neutral shape -------------------------- */

struct view {
    int format;
    const char *model;
    struct buf system;       /* the system prompt text             */
    struct buf last_user;    /* text of the last message the user wrote */
    struct buf last_message; /* text of the last message, any role */
    const struct json_value *tools;
};

static void view_cleanup(struct view *v)
{
    buf_cleanup(&v->system);
    buf_cleanup(&v->last_user);
    buf_cleanup(&v->last_message);
}

/* ---- the formats -------------------------------------------------------- */

enum stop_kind { STOP_END, STOP_TOOLS, STOP_LENGTH };

/* A reply, planned once and rendered by the request's format. */
struct planned_call {
    char id[48];
    struct span name;
    struct span args_text;                /* the arguments as the text OpenAI sends */
    const struct json_value *args_object; /* object for Anthropic's input, or NULL */
};

struct planned {
    int64_t n;
    const char *model;
    struct span text; /* p NULL: no assistant text */
    struct planned_call *calls;
    size_t ncalls;
    enum stop_kind stop;
    int64_t input_tokens, output_tokens;
};

/* Validation of a request: the message says what is wrong where; param is
 * the offending field (OpenAI's "param"). */
struct verr {
    char msg[512];
    char param[128];
};

static int vbad(struct verr *ve, const char *param, const char *fmt, ...) KEEL_PRINTF(3, 4);
static int vbad(struct verr *ve, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ve->msg, sizeof ve->msg, fmt, ap);
    va_end(ap);
    snprintf(ve->param, sizeof ve->param, "%s", param ? param : "");
    return -1;
}

struct format {
    const char *name;
    const char *stop_names[3]; /* by enum stop_kind */
    /* 0 if the auth headers are there, else -1 with a message. */
    int (*check_auth)(const struct mock_http_request *rq, struct verr *ve);
    int (*validate)(struct arena *a, const struct json_value *body, struct verr *ve);
    /* What the script says about the request's model (lock held), after
     * validate: NULL when it may be answered, else the error reply (in a)
     * and its status in *status.  May be NULL: no such rules. */
    struct json_value *(*model_rules)(struct arena *a, const struct script *s,
                                      const struct json_value *body, int *status);
    void (*view)(const struct json_value *body, struct view *v);
    const char *(*tool_name)(const struct json_value *tool, size_t *len);
    struct json_value *(*reply)(struct arena *a, const struct planned *p);
    struct json_value *(*error)(struct arena *a, int status, const char *msg, const char *param);
};

/* Error types by HTTP status, as the providers name them. */
struct status_row {
    int status;
    const char *openai_type;
    const char *openai_code;
    const char *anthropic_type;
    const char *message; /* default message */
};

static const struct status_row status_rows[] = {
    {400, "invalid_request_error", NULL, "invalid_request_error", "mock: invalid request"},
    {401, "invalid_request_error", "invalid_api_key", "authentication_error",
     "mock: invalid API key"},
    {403, "invalid_request_error", "permission_denied", "permission_error",
     "mock: permission denied"},
    {404, "invalid_request_error", "model_not_found", "not_found_error", "mock: not found"},
    {413, "invalid_request_error", "request_too_large", "request_too_large",
     "mock: request too large"},
    {429, "requests", "rate_limit_exceeded", "rate_limit_error", "mock: rate limit reached"},
    {500, "server_error", NULL, "api_error", "mock: internal server error"},
    {502, "server_error", NULL, "api_error", "mock: bad gateway"},
    {503, "server_error", NULL, "api_error", "mock: service unavailable"},
    {529, "server_error", NULL, "overloaded_error", "mock: overloaded"},
};

static const struct status_row *status_row(int status)
{
    static const struct status_row client = {0, "invalid_request_error", NULL,
                                             "invalid_request_error", "mock: request error"};
    static const struct status_row server = {0, "server_error", NULL, "api_error",
                                             "mock: server error"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(status_rows); i++)
        if (status_rows[i].status == status) return &status_rows[i];
    return status >= 500 ? &server : &client;
}

/* ---- OpenAI Chat Completions ---- */

static int openai_auth(const struct mock_http_request *rq, struct verr *ve)
{
    const char *h = rq->authorization;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0 || h[7 + strspn(h + 7, " ")] == '\0')
        return vbad(ve, NULL,
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer "
                    "YOUR_KEY).");
    return 0;
}

/* content: a string or an array of parts {"type": ..., ...}; null allowed
 * where null_ok (an assistant message with tool calls). */
static int openai_content(const struct json_value *c, const char *param, bool null_ok,
                          struct verr *ve)
{
    if (json_is(c, JSON_STRING)) return 0;
    if ((!c || json_is(c, JSON_NULL)) && null_ok) return 0;
    if (!json_is(c, JSON_ARRAY))
        return vbad(ve, param, "%s: must be a string or an array of content parts", param);
    for (uint32_t i = 0; i < c->len; i++) {
        const struct json_value *part = c->u.items[i];
        const struct json_value *type = json_get(part, "type");
        if (!json_is(type, JSON_STRING))
            return vbad(ve, param, "%s[%u]: a content part needs a string \"type\"", param,
                        (unsigned)i);
        if ((str_is(type, "text") && !json_is(json_get(part, "text"), JSON_STRING)) ||
            (str_is(type, "refusal") && !json_is(json_get(part, "refusal"), JSON_STRING)) ||
            (str_is(type, "image_url") && !json_is(json_get(part, "image_url"), JSON_OBJECT)))
            return vbad(ve, param, "%s[%u]: a '%s' part needs its \"%s\" field", param, (unsigned)i,
                        type->u.s.str, type->u.s.str);
    }
    return 0;
}

/* Tool calls an assistant message made that still await tool messages. */
struct open_calls {
    const struct json_value *calls; /* the assistant's tool_calls, or NULL */
    bool *answered;
    struct strmap ids; /* call id -> index + 1 (hashed: a body may hold many) */
    uint32_t assistant_index;
};

static int openai_close_calls(struct open_calls *oc, struct verr *ve)
{
    if (!oc->calls) return 0;
    char missing[256] = "";
    size_t n = 0;
    for (uint32_t i = 0; i < oc->calls->len; i++) {
        if (oc->answered[i]) continue;
        const char *id = json_get_str(oc->calls->u.items[i], "id", "");
        n += (size_t)snprintf(missing + n, n < sizeof missing ? sizeof missing - n : 0, "%s%s",
                              n ? ", " : "", id);
        if (n >= sizeof missing) break;
    }
    oc->calls = NULL;
    if (missing[0])
        return vbad(ve, "messages",
                    "An assistant message with 'tool_calls' must be followed by tool messages "
                    "responding to each 'tool_call_id'. The following tool_call_ids did not "
                    "have response messages: %.200s",
                    missing);
    return 0;
}

static int openai_message(struct arena *a, const struct json_value *m, uint32_t i,
                          struct open_calls *oc, struct verr *ve)
{
    static const char *const roles[] = {"system",    "developer", "user",
                                        "assistant", "tool",      "function"};
    char param[64];
    snprintf(param, sizeof param, "messages[%u]", (unsigned)i);
    if (!json_is(m, JSON_OBJECT)) return vbad(ve, param, "%s: must be an object", param);
    const struct json_value *role = json_get(m, "role");
    bool known = false;
    for (size_t k = 0; k < KEEL_ARRAY_LEN(roles); k++)
        known |= str_is(role, roles[k]);
    snprintf(param, sizeof param, "messages[%u].role", (unsigned)i);
    if (!known)
        return vbad(ve, param,
                    "%s: must be one of 'system', 'developer', 'user', 'assistant', 'tool', "
                    "'function'",
                    param);
    bool is_tool = str_is(role, "tool"), is_assistant = str_is(role, "assistant");
    if (!is_tool && openai_close_calls(oc, ve)) return -1;
    const struct json_value *calls = json_get(m, "tool_calls");
    snprintf(param, sizeof param, "messages[%u].content", (unsigned)i);
    if (is_assistant && calls) {
        char cp[64];
        snprintf(cp, sizeof cp, "messages[%u].tool_calls", (unsigned)i);
        if (!json_is(calls, JSON_ARRAY) || calls->len == 0)
            return vbad(ve, cp, "%s: must be a non-empty array", cp);
        for (uint32_t k = 0; k < calls->len; k++) {
            const struct json_value *tc = calls->u.items[k];
            const struct json_value *fn = json_get(tc, "function");
            if (!json_is(json_get(tc, "id"), JSON_STRING) ||
                !str_is(json_get(tc, "type"), "function") || !json_is(fn, JSON_OBJECT) ||
                !json_is(json_get(fn, "name"), JSON_STRING) ||
                !json_is(json_get(fn, "arguments"), JSON_STRING))
                return vbad(ve, cp,
                            "%s[%u]: a tool call must be {\"id\": string, \"type\": "
                            "\"function\", \"function\": {\"name\": string, \"arguments\": "
                            "string}}",
                            cp, (unsigned)k);
        }
        oc->calls = calls;
        oc->answered = arena_zalloc(a, calls->len * sizeof(bool));
        oc->assistant_index = i;
        strmap_cleanup(&oc->ids);
        strmap_init(&oc->ids);
        for (uint32_t k = 0; k < calls->len; k++) {
            const struct json_value *id = json_get(calls->u.items[k], "id");
            strmap_put(&oc->ids, id->u.s.str, id->len, (void *)(uintptr_t)(k + 1));
        }
        return openai_content(json_get(m, "content"), param, true, ve);
    }
    if (is_assistant && !json_get(m, "content"))
        return vbad(ve, param,
                    "%s: an assistant message needs content unless it has "
                    "tool_calls",
                    param);
    if (is_tool) {
        const struct json_value *id = json_get(m, "tool_call_id");
        char ip[64];
        snprintf(ip, sizeof ip, "messages[%u].tool_call_id", (unsigned)i);
        if (!json_is(id, JSON_STRING))
            return vbad(ve, ip, "%s: a 'tool' message needs a string tool_call_id", ip);
        if (!oc->calls)
            return vbad(ve, ip,
                        "Invalid parameter: messages with role 'tool' must be a response to a "
                        "preceding message with 'tool_calls'.");
        uintptr_t k = (uintptr_t)strmap_get(&oc->ids, id->u.s.str, id->len);
        if (k) oc->answered[k - 1] = true;
        if (!k)
            return vbad(ve, ip,
                        "%s: '%.80s' is not the id of a tool call in messages[%u]; tool "
                        "messages answer the preceding assistant message's tool_calls",
                        ip, id->u.s.str, (unsigned)oc->assistant_index);
    }
    if (str_is(role, "function") && !json_is(json_get(m, "name"), JSON_STRING))
        return vbad(ve, param, "messages[%u].name: a 'function' message needs a name", (unsigned)i);
    return openai_content(json_get(m, "content"), param, is_assistant, ve);
}

/* A tool's parameters: a JSON Schema object whose type, if given, is
 * "object" (both providers refuse other roots). */
static int schema_root(const struct json_value *s, const char *param, bool type_required,
                       struct verr *ve)
{
    if (!json_is(s, JSON_OBJECT)) return vbad(ve, param, "%s: must be a JSON Schema object", param);
    const struct json_value *t = json_get(s, "type");
    if ((t || type_required) && !str_is(t, "object"))
        return vbad(ve, param, "%s: the schema must have \"type\": \"object\"", param);
    return 0;
}

static int unique_tool_name(struct strmap *seen, const struct json_value *name, const char *param,
                            struct verr *ve)
{
    if (strmap_put(seen, name->u.s.str, name->len, (void *)name))
        return vbad(ve, param, "%s: tool names must be unique ('%.64s' is given twice)", param,
                    name->u.s.str);
    return 0;
}

static int openai_tools(const struct json_value *tools, struct verr *ve)
{
    if (!json_is(tools, JSON_ARRAY))
        return vbad(ve, "tools",
                    "tools: must be an array of {\"type\": \"function\", "
                    "\"function\": {...}}");
    if (tools->len == 0)
        return vbad(ve, "tools",
                    "Invalid 'tools': empty array. Expected an array with minimum "
                    "length 1, but got an empty array instead.");
    if (tools->len > 128)
        return vbad(ve, "tools", "tools: at most 128 tools (got %u)", (unsigned)tools->len);
    struct strmap seen;
    strmap_init(&seen);
    int rc = 0;
    for (uint32_t i = 0; i < tools->len && !rc; i++) {
        const struct json_value *t = tools->u.items[i], *fn = json_get(t, "function");
        char param[64];
        snprintf(param, sizeof param, "tools[%u]", (unsigned)i);
        if (!str_is(json_get(t, "type"), "function") || !json_is(fn, JSON_OBJECT)) {
            rc = vbad(ve, param,
                      "%s: must be {\"type\": \"function\", \"function\": {\"name\", "
                      "\"parameters\"}}",
                      param);
            break;
        }
        snprintf(param, sizeof param, "tools[%u].function.name", (unsigned)i);
        const struct json_value *name = json_get(fn, "name");
        if (!valid_tool_name(name)) {
            rc = vbad(ve, param, "%s: must match ^[a-zA-Z0-9_-]{1,64}$", param);
            break;
        }
        rc = unique_tool_name(&seen, name, param, ve);
        snprintf(param, sizeof param, "tools[%u].function.parameters", (unsigned)i);
        if (!rc && json_get(fn, "parameters"))
            rc = schema_root(json_get(fn, "parameters"), param, false, ve);
        const struct json_value *d = json_get(fn, "description");
        if (!rc && d && !json_is(d, JSON_STRING))
            rc = vbad(ve, param, "tools[%u].function.description: must be a string", (unsigned)i);
    }
    strmap_cleanup(&seen);
    return rc;
}

static int openai_validate(struct arena *a, const struct json_value *b, struct verr *ve)
{
    if (!json_is(b, JSON_OBJECT))
        return vbad(ve, NULL,
                    "We could not parse the JSON body of your request. The body "
                    "must be a JSON object.");
    if (!json_is(json_get(b, "model"), JSON_STRING))
        return vbad(ve, "model", "model: you must provide a model parameter (a string)");
    if (json_get_bool(b, "stream", false))
        return vbad(ve, "stream",
                    "stream: the mock does not stream; leave \"stream\" out or "
                    "set it to false");
    static const char *const counts[] = {"max_tokens", "max_completion_tokens", "n"};
    for (size_t k = 0; k < KEEL_ARRAY_LEN(counts); k++) {
        const struct json_value *v = json_get(b, counts[k]);
        if (v && !json_is(v, JSON_NULL) && !positive_int(v))
            return vbad(ve, counts[k], "%s: must be a positive integer", counts[k]);
    }
    const struct json_value *msgs = json_get(b, "messages");
    if (!json_is(msgs, JSON_ARRAY) || msgs->len == 0)
        return vbad(ve, "messages", "messages: required, a non-empty array of messages");
    struct open_calls oc = {0};
    strmap_init(&oc.ids);
    int rc = 0;
    for (uint32_t i = 0; i < msgs->len && !rc; i++)
        rc = openai_message(a, msgs->u.items[i], i, &oc, ve);
    if (!rc) rc = openai_close_calls(&oc, ve);
    strmap_cleanup(&oc.ids);
    if (rc) return -1;
    const struct json_value *tools = json_get(b, "tools");
    if (tools && openai_tools(tools, ve)) return -1;
    const struct json_value *rf = json_get(b, "response_format");
    if (rf) {
        const struct json_value *t = json_get(rf, "type");
        if (!(str_is(t, "text") || str_is(t, "json_object") || str_is(t, "json_schema")))
            return vbad(ve, "response_format.type",
                        "response_format.type: must be 'text', 'json_object' or 'json_schema'");
        const struct json_value *js = json_get(rf, "json_schema");
        if (str_is(t, "json_schema") && (!valid_tool_name(json_get(js, "name")) ||
                                         !json_is(json_get(js, "schema"), JSON_OBJECT)))
            return vbad(ve, "response_format.json_schema",
                        "response_format.json_schema: needs \"name\" (matching "
                        "^[a-zA-Z0-9_-]{1,64}$) and \"schema\" (object)");
    }
    return 0;
}

static void openai_text(const struct json_value *content, struct buf *out)
{
    if (json_is(content, JSON_STRING)) {
        join(out, content->u.s.str, content->len);
        return;
    }
    if (!json_is(content, JSON_ARRAY)) return;
    for (uint32_t i = 0; i < content->len; i++) {
        const struct json_value *t = json_get(content->u.items[i], "text");
        if (json_is(t, JSON_STRING)) join(out, t->u.s.str, t->len);
    }
}

static void openai_view(const struct json_value *b, struct view *v)
{
    const struct json_value *msgs = json_get(b, "messages");
    v->model = json_get_str(b, "model", NULL);
    v->tools = json_get(b, "tools");
    const struct json_value *last_user = NULL;
    for (uint32_t i = 0; i < msgs->len; i++) {
        const struct json_value *m = msgs->u.items[i], *role = json_get(m, "role");
        if (str_is(role, "system") || str_is(role, "developer"))
            openai_text(json_get(m, "content"), &v->system);
        if (str_is(role, "user")) last_user = m;
    }
    if (last_user) openai_text(json_get(last_user, "content"), &v->last_user);
    const struct json_value *last = msgs->u.items[msgs->len - 1];
    openai_text(json_get(last, "content"), &v->last_message);
    const struct json_value *calls = json_get(last, "tool_calls");
    for (uint32_t i = 0; json_is(calls, JSON_ARRAY) && i < calls->len; i++) {
        const struct json_value *fn = json_get(calls->u.items[i], "function");
        join_value(&v->last_message, json_get(fn, "name"));
        join_value(&v->last_message, json_get(fn, "arguments"));
    }
}

static const char *openai_tool_name(const struct json_value *tool, size_t *len)
{
    const struct json_value *n = json_get(json_get(tool, "function"), "name");
    *len = n ? n->len : 0;
    return n ? n->u.s.str : NULL;
}

static struct json_value *usage_value(struct arena *a, const char *in, const char *out,
                                      const char *total, const struct planned *p)
{
    struct json_value *u = json_object(a);
    json_object_setc(a, u, in, json_int(a, p->input_tokens));
    json_object_setc(a, u, out, json_int(a, p->output_tokens));
    if (total) json_object_setc(a, u, total, json_int(a, p->input_tokens + p->output_tokens));
    return u;
}

static const struct format formats[FMT_COUNT];

static struct json_value *openai_reply(struct arena *a, const struct planned *p)
{
    struct json_value *r = json_object(a), *msg = json_object(a), *choice = json_object(a);
    json_object_setc(a, r, "id",
                     json_cstr(a, arena_printf(a, "chatcmpl-mock-%lld", (long long)p->n)));
    json_object_setc(a, r, "object", json_cstr(a, "chat.completion"));
    json_object_setc(a, r, "created", json_int(a, keel_wall_ms() / 1000));
    json_object_setc(a, r, "model", json_cstr(a, p->model));
    json_object_setc(a, msg, "role", json_cstr(a, "assistant"));
    json_object_setc(a, msg, "content",
                     p->text.p ? json_string(a, p->text.p, p->text.n) : json_null(a));
    if (p->ncalls) {
        struct json_value *calls = json_array(a);
        for (size_t i = 0; i < p->ncalls; i++) {
            const struct planned_call *pc = &p->calls[i];
            struct json_value *c = json_object(a), *fn = json_object(a);
            json_object_setc(a, c, "id", json_cstr(a, pc->id));
            json_object_setc(a, c, "type", json_cstr(a, "function"));
            json_object_setc(a, fn, "name", json_string(a, pc->name.p, pc->name.n));
            json_object_setc(a, fn, "arguments", json_string(a, pc->args_text.p, pc->args_text.n));
            json_object_setc(a, c, "function", fn);
            json_array_push(a, calls, c);
        }
        json_object_setc(a, msg, "tool_calls", calls);
    }
    json_object_setc(a, choice, "index", json_int(a, 0));
    json_object_setc(a, choice, "message", msg);
    json_object_setc(a, choice, "finish_reason",
                     json_cstr(a, formats[FMT_OPENAI].stop_names[p->stop]));
    struct json_value *choices = json_array(a);
    json_array_push(a, choices, choice);
    json_object_setc(a, r, "choices", choices);
    json_object_setc(a, r, "usage",
                     usage_value(a, "prompt_tokens", "completion_tokens", "total_tokens", p));
    return r;
}

static struct json_value *openai_error(struct arena *a, int status, const char *msg,
                                       const char *param)
{
    const struct status_row *row = status_row(status);
    struct json_value *r = json_object(a), *e = json_object(a);
    json_object_setc(a, e, "message", json_cstr(a, msg ? msg : row->message));
    json_object_setc(a, e, "type", json_cstr(a, row->openai_type));
    json_object_setc(a, e, "param", param && param[0] ? json_cstr(a, param) : json_null(a));
    json_object_setc(a, e, "code",
                     row->openai_code ? json_cstr(a, row->openai_code) : json_null(a));
    json_object_setc(a, r, "error", e);
    return r;
}

/* A model the script lists in max_completion_tokens_only gets max_tokens
 * refused as OpenAI refuses it for its o-series and gpt-5 models: the same
 * status, message, param and code. */
static struct json_value *openai_model_rules(struct arena *a, const struct script *s,
                                             const struct json_value *b, int *status)
{
    const struct json_value *mt = json_get(b, "max_tokens");
    if (!mt || json_is(mt, JSON_NULL) || !completion_only(s, json_get_str(b, "model", NULL)))
        return NULL;
    *status = 400;
    struct json_value *r = openai_error(a, 400,
                                        "Unsupported parameter: 'max_tokens' is not supported "
                                        "with this model. Use 'max_completion_tokens' instead.",
                                        "max_tokens");
    json_object_setc(a, json_get(r, "error"), "code", json_cstr(a, "unsupported_parameter"));
    return r;
}

/* ---- Anthropic Messages ---- */

static int anthropic_auth(const struct mock_http_request *rq, struct verr *ve)
{
    if (!rq->x_api_key || !rq->x_api_key[0]) return vbad(ve, NULL, "x-api-key header is required");
    if (!rq->anthropic_version || !rq->anthropic_version[0])
        return vbad(ve, NULL,
                    "anthropic-version header is required (e.g. anthropic-version: "
                    "2023-06-01)");
    return 0;
}

/* Content block types: which roles may send them and the field each needs. */
struct block_type {
    const char *type;
    bool user, assistant;
    const char *field; /* required field */
    enum json_type field_type;
};

static const struct block_type block_types[] = {
    {"text", true, true, "text", JSON_STRING},
    {"image", true, false, "source", JSON_OBJECT},
    {"document", true, false, "source", JSON_OBJECT},
    {"tool_use", false, true, "input", JSON_OBJECT},
    {"tool_result", true, false, "tool_use_id", JSON_STRING},
    {"thinking", false, true, "thinking", JSON_STRING},
    {"redacted_thinking", false, true, "data", JSON_STRING},
};

static int anthropic_block(const struct json_value *blk, const char *param, bool user,
                           struct verr *ve)
{
    const struct json_value *type = json_get(blk, "type");
    const struct block_type *bt = NULL;
    for (size_t k = 0; k < KEEL_ARRAY_LEN(block_types); k++)
        if (str_is(type, block_types[k].type)) bt = &block_types[k];
    if (!bt)
        return vbad(ve, param,
                    "%s.type: Input tag '%.40s' found using 'type' does not match "
                    "any of the expected tags: 'text', 'image', 'document', "
                    "'tool_use', 'tool_result', 'thinking', 'redacted_thinking'",
                    param, json_is(type, JSON_STRING) ? type->u.s.str : "");
    if (user ? !bt->user : !bt->assistant)
        return vbad(ve, param, "%s: a '%s' block cannot be sent by the %s", param, bt->type,
                    user ? "user" : "assistant");
    if (!json_is(json_get(blk, bt->field), bt->field_type))
        return vbad(ve, param, "%s.%s: Field required (%s)", param, bt->field,
                    bt->field_type == JSON_OBJECT ? "an object" : "a string");
    if (str_is(type, "text") && json_get(blk, "text")->len == 0)
        return vbad(ve, param, "%s: text content blocks must be non-empty", param);
    if (str_is(type, "tool_use") && (!json_is(json_get(blk, "id"), JSON_STRING) ||
                                     !json_is(json_get(blk, "name"), JSON_STRING)))
        return vbad(ve, param, "%s: a tool_use block needs \"id\" and \"name\" strings", param);
    if (str_is(type, "tool_result")) {
        const struct json_value *c = json_get(blk, "content");
        if (c && !json_is(c, JSON_STRING) && !json_is(c, JSON_ARRAY))
            return vbad(ve, param, "%s.content: must be a string or an array of blocks", param);
        for (uint32_t i = 0; json_is(c, JSON_ARRAY) && i < c->len; i++)
            if (!json_is(json_get(c->u.items[i], "type"), JSON_STRING))
                return vbad(ve, param, "%s.content.%u: a block needs a \"type\"", param,
                            (unsigned)i);
    }
    return 0;
}

/* The ids of a neighbouring message's blocks of one type (the tool_use ids
 * of the previous message, the tool_use_ids of the next one), hashed once
 * per message so pairing stays linear however many blocks a body holds. */
struct block_ids {
    bool built;
    struct strmap ids;
};

static bool has_block(struct block_ids *b, const struct json_value *m, const char *type,
                      const char *key, const struct json_value *id)
{
    if (!b->built) {
        b->built = true;
        const struct json_value *c = json_get(m, "content");
        for (uint32_t i = 0; json_is(c, JSON_ARRAY) && i < c->len; i++) {
            const struct json_value *v = json_get(c->u.items[i], key);
            if (str_is(json_get(c->u.items[i], "type"), type) && json_is(v, JSON_STRING))
                strmap_put(&b->ids, v->u.s.str, v->len, (void *)v);
        }
    }
    return json_is(id, JSON_STRING) && strmap_get(&b->ids, id->u.s.str, id->len) != NULL;
}

static int anthropic_blocks(const struct json_value *msgs, uint32_t i, bool user,
                            struct block_ids *next, struct block_ids *prev, struct verr *ve);

static int anthropic_message(const struct json_value *msgs, uint32_t i, struct verr *ve)
{
    const struct json_value *m = msgs->u.items[i];
    char param[64];
    snprintf(param, sizeof param, "messages.%u", (unsigned)i);
    if (!json_is(m, JSON_OBJECT)) return vbad(ve, param, "%s: must be an object", param);
    const struct json_value *role = json_get(m, "role");
    if (str_is(role, "system"))
        return vbad(ve, param,
                    "messages: Unexpected role \"system\". The Messages API accepts "
                    "a top-level `system` parameter, not \"system\" as an input "
                    "message role.");
    if (!str_is(role, "user") && !str_is(role, "assistant"))
        return vbad(ve, param, "%s.role: must be \"user\" or \"assistant\"", param);
    bool user = str_is(role, "user"), last = i + 1 == msgs->len;
    const struct json_value *c = json_get(m, "content");
    if (json_is(c, JSON_STRING)) {
        if (c->len == 0 && !(last && !user))
            return vbad(ve, param,
                        "messages: all messages must have non-empty content except "
                        "for the optional final assistant message");
        return 0;
    }
    if (!json_is(c, JSON_ARRAY))
        return vbad(ve, param, "%s.content: must be a string or an array of content blocks", param);
    if (c->len == 0 && !(last && !user))
        return vbad(ve, param,
                    "messages: all messages must have non-empty content except for "
                    "the optional final assistant message");
    struct block_ids next = {0}, prev = {0};
    strmap_init(&next.ids);
    strmap_init(&prev.ids);
    int rc = anthropic_blocks(msgs, i, user, &next, &prev, ve);
    strmap_cleanup(&next.ids);
    strmap_cleanup(&prev.ids);
    return rc;
}

/* The content blocks of message i (an array). */
static int anthropic_blocks(const struct json_value *msgs, uint32_t i, bool user,
                            struct block_ids *next, struct block_ids *prev, struct verr *ve)
{
    const struct json_value *c = json_get(msgs->u.items[i], "content");
    bool last = i + 1 == msgs->len;
    char param[64];
    snprintf(param, sizeof param, "messages.%u", (unsigned)i);
    for (uint32_t k = 0; k < c->len; k++) {
        char bp[80];
        snprintf(bp, sizeof bp, "messages.%u.content.%u", (unsigned)i, (unsigned)k);
        const struct json_value *blk = c->u.items[k];
        if (!json_is(blk, JSON_OBJECT)) return vbad(ve, bp, "%s: must be an object", bp);
        if (anthropic_block(blk, bp, user, ve)) return -1;
        /* tool_use must be answered in the next message, and a tool_result
         * must answer a tool_use of the previous one. */
        if (str_is(json_get(blk, "type"), "tool_use") &&
            (last || !has_block(next, msgs->u.items[i + 1], "tool_result", "tool_use_id",
                                json_get(blk, "id"))))
            return vbad(ve, param,
                        "messages.%u: `tool_use` ids were found without `tool_result` blocks "
                        "immediately after: %.80s. Each `tool_use` block must have a "
                        "corresponding `tool_result` block in the next message.",
                        (unsigned)(i + 1), json_get(blk, "id")->u.s.str);
        if (str_is(json_get(blk, "type"), "tool_result") &&
            (i == 0 || !has_block(prev, msgs->u.items[i - 1], "tool_use", "id",
                                  json_get(blk, "tool_use_id"))))
            return vbad(ve, param,
                        "messages.%u.content.%u: unexpected `tool_use_id` found in "
                        "`tool_result` blocks: %.80s. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message.",
                        (unsigned)i, (unsigned)k, json_get(blk, "tool_use_id")->u.s.str);
    }
    return 0;
}

static int anthropic_tools(const struct json_value *tools, struct verr *ve)
{
    if (!json_is(tools, JSON_ARRAY))
        return vbad(ve, "tools", "tools: must be an array of {\"name\", \"input_schema\"}");
    struct strmap seen;
    strmap_init(&seen);
    int rc = 0;
    for (uint32_t i = 0; i < tools->len && !rc; i++) {
        const struct json_value *t = tools->u.items[i], *type = json_get(t, "type");
        char param[64];
        snprintf(param, sizeof param, "tools.%u", (unsigned)i);
        if (!json_is(t, JSON_OBJECT)) {
            rc = vbad(ve, param, "%s: must be an object", param);
            break;
        }
        if (type && !json_is(type, JSON_STRING)) {
            rc = vbad(ve, param, "%s.type: must be a string", param);
            break;
        }
        if (type && !str_is(type, "custom")) continue; /* a server tool (web search, ...) */
        const struct json_value *name = json_get(t, "name");
        if (!valid_tool_name(name)) {
            rc = vbad(ve, param, "%s.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'",
                      param);
            break;
        }
        rc = unique_tool_name(&seen, name, param, ve);
        char sp[80];
        snprintf(sp, sizeof sp, "tools.%u.input_schema", (unsigned)i);
        if (!rc) rc = schema_root(json_get(t, "input_schema"), sp, true, ve);
    }
    strmap_cleanup(&seen);
    return rc;
}

static int anthropic_validate(struct arena *a, const struct json_value *b, struct verr *ve)
{
    if (!json_is(b, JSON_OBJECT))
        return vbad(ve, NULL, "The request body is not valid JSON: it must be an object");
    if (!json_is(json_get(b, "model"), JSON_STRING))
        return vbad(ve, "model", "model: Field required (a string)");
    if (!positive_int(json_get(b, "max_tokens")))
        return vbad(ve, "max_tokens", "max_tokens: Field required (a positive integer)");
    if (json_get_bool(b, "stream", false))
        return vbad(ve, "stream",
                    "stream: the mock does not stream; leave \"stream\" out or "
                    "set it to false");
    const struct json_value *sys = json_get(b, "system");
    if (sys && !json_is(sys, JSON_STRING)) {
        if (!json_is(sys, JSON_ARRAY))
            return vbad(ve, "system", "system: must be a string or an array of text blocks");
        for (uint32_t i = 0; i < sys->len; i++)
            if (!str_is(json_get(sys->u.items[i], "type"), "text") ||
                !json_is(json_get(sys->u.items[i], "text"), JSON_STRING))
                return vbad(ve, "system",
                            "system.%u: must be {\"type\": \"text\", \"text\": "
                            "string}",
                            (unsigned)i);
    }
    const struct json_value *msgs = json_get(b, "messages");
    if (!json_is(msgs, JSON_ARRAY))
        return vbad(ve, "messages", "messages: Field required (an array of messages)");
    if (msgs->len == 0) return vbad(ve, "messages", "messages: at least one message is required");
    for (uint32_t i = 0; i < msgs->len; i++)
        if (anthropic_message(msgs, i, ve)) return -1;
    const struct json_value *tools = json_get(b, "tools");
    if (tools && anthropic_tools(tools, ve)) return -1;
    return 0;
}

/* Text of an Anthropic content value; with_tools adds tool results and
 * tool_use calls (name and input). */
static void anthropic_text(const struct json_value *c, struct buf *out, bool with_tools)
{
    if (json_is(c, JSON_STRING)) {
        join(out, c->u.s.str, c->len);
        return;
    }
    for (uint32_t i = 0; json_is(c, JSON_ARRAY) && i < c->len; i++) {
        const struct json_value *blk = c->u.items[i], *type = json_get(blk, "type");
        if (str_is(type, "text")) join_value(out, json_get(blk, "text"));
        if (!with_tools) continue;
        if (str_is(type, "tool_result")) anthropic_text(json_get(blk, "content"), out, false);
        if (str_is(type, "tool_use")) {
            join_value(out, json_get(blk, "name"));
            join_value(out, json_get(blk, "input"));
        }
    }
}

static void anthropic_view(const struct json_value *b, struct view *v)
{
    const struct json_value *msgs = json_get(b, "messages");
    v->model = json_get_str(b, "model", NULL);
    v->tools = json_get(b, "tools");
    anthropic_text(json_get(b, "system"), &v->system, false);
    /* The last message the user wrote: user messages that carry only tool
     * results are the client's, not the user's, so they are skipped (this
     * keeps last_user_contains meaning the same in both formats). */
    for (uint32_t i = msgs->len; i-- > 0;) {
        const struct json_value *m = msgs->u.items[i];
        if (!str_is(json_get(m, "role"), "user")) continue;
        anthropic_text(json_get(m, "content"), &v->last_user, false);
        if (v->last_user.len) break;
    }
    anthropic_text(json_get(msgs->u.items[msgs->len - 1], "content"), &v->last_message, true);
}

static const char *anthropic_tool_name(const struct json_value *tool, size_t *len)
{
    const struct json_value *n = json_get(tool, "name");
    *len = n ? n->len : 0;
    return n ? n->u.s.str : NULL;
}

static struct json_value *anthropic_reply(struct arena *a, const struct planned *p)
{
    struct json_value *r = json_object(a), *content = json_array(a);
    json_object_setc(a, r, "id", json_cstr(a, arena_printf(a, "msg_mock_%lld", (long long)p->n)));
    json_object_setc(a, r, "type", json_cstr(a, "message"));
    json_object_setc(a, r, "role", json_cstr(a, "assistant"));
    json_object_setc(a, r, "model", json_cstr(a, p->model));
    if (p->text.p) {
        struct json_value *t = json_object(a);
        json_object_setc(a, t, "type", json_cstr(a, "text"));
        json_object_setc(a, t, "text", json_string(a, p->text.p, p->text.n));
        json_array_push(a, content, t);
    }
    for (size_t i = 0; i < p->ncalls; i++) {
        const struct planned_call *pc = &p->calls[i];
        struct json_value *t = json_object(a), *input = (struct json_value *)pc->args_object;
        if (!input) {
            input = json_object(a);
            json_object_setc(a, input, "_raw", json_string(a, pc->args_text.p, pc->args_text.n));
        }
        json_object_setc(a, t, "type", json_cstr(a, "tool_use"));
        json_object_setc(a, t, "id", json_cstr(a, pc->id));
        json_object_setc(a, t, "name", json_string(a, pc->name.p, pc->name.n));
        json_object_setc(a, t, "input", input);
        json_array_push(a, content, t);
    }
    json_object_setc(a, r, "content", content);
    json_object_setc(a, r, "stop_reason", json_cstr(a, formats[FMT_ANTHROPIC].stop_names[p->stop]));
    json_object_setc(a, r, "stop_sequence", json_null(a));
    json_object_setc(a, r, "usage", usage_value(a, "input_tokens", "output_tokens", NULL, p));
    return r;
}

static struct json_value *anthropic_error(struct arena *a, int status, const char *msg,
                                          const char *param)
{
    const struct status_row *row = status_row(status);
    struct json_value *r = json_object(a), *e = json_object(a);
    json_object_setc(a, r, "type", json_cstr(a, "error"));
    json_object_setc(a, e, "type", json_cstr(a, row->anthropic_type));
    json_object_setc(a, e, "message", json_cstr(a, msg ? msg : row->message));
    json_object_setc(a, r, "error", e);
    return r;
}

static const struct format formats[FMT_COUNT] = {
    [FMT_OPENAI] = {"openai",
                    {"stop", "tool_calls", "length"},
                    openai_auth,
                    openai_validate,
                    openai_model_rules,
                    openai_view,
                    openai_tool_name,
                    openai_reply,
                    openai_error},
    [FMT_ANTHROPIC] = {"anthropic",
                       {"end_turn", "tool_use", "max_tokens"},
                       anthropic_auth,
                       anthropic_validate,
                       NULL,
                       anthropic_view,
                       anthropic_tool_name,
                       anthropic_reply,
                       anthropic_error},
};

/* ---- matching ----------------------------------------------------------- */

static bool tool_offered(const struct view *v, struct span name)
{
    for (uint32_t i = 0; json_is(v->tools, JSON_ARRAY) && i < v->tools->len; i++) {
        size_t n;
        const char *s = formats[v->format].tool_name(v->tools->u.items[i], &n);
        if (s && n == name.n && memcmp(s, name.p, n) == 0) return true;
    }
    return false;
}

static bool entry_matches(const struct entry *e, const struct view *v)
{
    if (e->path_format >= 0 && e->path_format != v->format) return false;
    if (span_has(e->model) &&
        !(v->model && strlen(v->model) == e->model.n && !memcmp(v->model, e->model.p, e->model.n)))
        return false;
    if (span_has(e->system_contains) && !contains(&v->system, e->system_contains)) return false;
    if (span_has(e->last_user_contains) && !contains(&v->last_user, e->last_user_contains))
        return false;
    if (span_has(e->last_message_contains) && !contains(&v->last_message, e->last_message_contains))
        return false;
    if (span_has(e->tool_offered) && !tool_offered(v, e->tool_offered)) return false;
    return true;
}

/* ---- the mock ----------------------------------------------------------- */

struct mock {
    pthread_mutex_t lock;
    struct script *script;
    struct buf records; /* the kept records, compact JSON joined by commas */
    int64_t calls;      /* records since the last load or reset (n of the last) */
    FILE *log;
};

void mock_reply_init(struct mock_http_reply *r)
{
    r->status = 200;
    buf_init(&r->body);
    r->retry_after = -1;
    r->delay_ms = 0;
}

void mock_reply_cleanup(struct mock_http_reply *r)
{
    buf_cleanup(&r->body);
}

struct mock *mock_new(void)
{
    struct mock *m = calloc(1, sizeof *m);
    if (!m) abort();
    pthread_mutex_init(&m->lock, NULL);
    buf_init(&m->records);
    m->script = calloc(1, sizeof *m->script);
    if (!m->script) abort();
    arena_init(&m->script->arena);
    return m;
}

void mock_free(struct mock *m)
{
    if (!m) return;
    script_free(m->script);
    buf_cleanup(&m->records);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void mock_set_log(struct mock *m, FILE *log)
{
    pthread_mutex_lock(&m->lock);
    m->log = log;
    pthread_mutex_unlock(&m->lock);
}

/* Forgets the records and the consumption; lock held. */
static void clear_state(struct mock *m)
{
    buf_cleanup(&m->records);
    m->calls = 0;
    for (size_t i = 0; i < m->script->count; i++)
        m->script->entries[i].used = 0;
}

int mock_load(struct mock *m, const char *text, size_t len, const char *file, struct keel_err *err)
{
    struct script *s;
    int rc = script_parse(text, len, file, &s, err);
    if (rc) return rc;
    pthread_mutex_lock(&m->lock);
    struct script *old = m->script;
    m->script = s;
    clear_state(m);
    pthread_mutex_unlock(&m->lock);
    script_free(old);
    return 0;
}

/* One request being answered: what every route handler gets. */
struct call {
    struct arena *a; /* per request; freed when the reply is built */
    const struct mock_http_request *rq;
    int format;              /* enum format_id of a model endpoint, else -1 */
    struct json_value *body; /* the parsed body, or NULL: not JSON or not read */
    struct keel_err perr;    /* why body is NULL */
    int64_t time_ms;         /* when it arrived (wall clock) */
};

/* Records kept in full up to MOCK_MAX_RECORD_BYTES; past that their bodies
 * are replaced by a note, and past RECORD_HARD_CAP they are not kept (the
 * log still gets every one). */
#define RECORD_HARD_CAP (MOCK_MAX_RECORD_BYTES + ((size_t)64 << 20))

/* Appends the record of c; lock held.  The body is c->body, or the raw text
 * as a string when it is not JSON, or null when it was not read. */
static void record(struct mock *m, const struct call *c, int64_t n, const char *format,
                   int64_t entry, int status)
{
    struct arena *a = c->a;
    const struct mock_http_request *rq = c->rq;
    const struct json_value *body = c->body;
    struct json_value *r = json_object(a);
    json_object_setc(a, r, "n", json_int(a, n));
    json_object_setc(a, r, "time_ms", json_int(a, c->time_ms));
    json_object_setc(a, r, "path", json_cstr(a, rq->path));
    json_object_setc(a, r, "format", json_cstr(a, format));
    json_object_setc(a, r, "authorization",
                     rq->authorization ? json_cstr(a, rq->authorization) : json_null(a));
    json_object_setc(a, r, "x_api_key", rq->x_api_key ? json_cstr(a, rq->x_api_key) : json_null(a));
    if (!body)
        body =
            rq->too_large ? json_null(a) : json_string(a, rq->body ? rq->body : "", rq->body_len);
    json_object_setc(a, r, "body", (struct json_value *)body);
    json_object_setc(a, r, "entry", json_int(a, entry));
    json_object_setc(a, r, "status", json_int(a, status));
    struct buf line;
    buf_init(&line);
    json_write(&line, r, 0, NULL);
    if (m->log) {
        fwrite(line.data, 1, line.len, m->log);
        fputc('\n', m->log);
        fflush(m->log);
    }
    if (m->records.len + line.len + 1 > MOCK_MAX_RECORD_BYTES) {
        json_object_setc(a, r, "body",
                         json_cstr(a, "mock: record store full; POST /_mock/reset to clear it"));
        buf_reset(&line);
        json_write(&line, r, 0, NULL);
    }
    if (m->records.len + line.len + 1 > RECORD_HARD_CAP) {
        buf_cleanup(&line);
        return;
    }
    if (m->records.len) buf_putc(&m->records, ',');
    buf_append(&m->records, line.data, line.len);
    buf_cleanup(&line);
}

static void send_value(struct mock_http_reply *out, int status, const struct json_value *v)
{
    out->status = status;
    buf_reset(&out->body);
    json_write(&out->body, v, 0, NULL);
}

/* Plans the reply of entry e to request n (lock held: borrows the script). */
static void plan(struct arena *a, const struct entry *e, int64_t n, const struct view *v,
                 size_t body_len, struct planned *p)
{
    memset(p, 0, sizeof *p);
    p->n = n;
    p->model = v->model ? v->model : "";
    size_t out_bytes = 0;
    if (span_has(e->content)) p->text = e->content;
    if (e->json) {
        struct buf b;
        buf_init(&b);
        json_write(&b, e->json, 0, NULL);
        p->text = (struct span){arena_strndup(a, b.data ? b.data : "", b.len), b.len};
        buf_cleanup(&b);
    }
    out_bytes += p->text.n;
    p->ncalls = e->ncalls;
    p->calls = arena_zalloc(a, (e->ncalls ? e->ncalls : 1) * sizeof *p->calls);
    for (size_t i = 0; i < e->ncalls; i++) {
        const struct mock_call *mc = &e->calls[i];
        struct planned_call *pc = &p->calls[i];
        snprintf(pc->id, sizeof pc->id, "call_%lld_%zu", (long long)n, i + 1);
        pc->name = mc->name;
        if (mc->arguments) {
            struct buf b;
            buf_init(&b);
            json_write(&b, mc->arguments, 0, NULL);
            pc->args_text = (struct span){arena_strndup(a, b.data ? b.data : "", b.len), b.len};
            buf_cleanup(&b);
            if (json_is(mc->arguments, JSON_OBJECT)) pc->args_object = mc->arguments;
        } else {
            pc->args_text = mc->arguments_text;
        }
        out_bytes += pc->name.n + pc->args_text.n;
    }
    p->stop = e->stop_length ? STOP_LENGTH : e->ncalls ? STOP_TOOLS : STOP_END;
    p->input_tokens = e->usage_in >= 0 ? e->usage_in : (int64_t)(body_len / 4);
    p->output_tokens = e->usage_out >= 0 ? e->usage_out : (int64_t)(out_bytes / 4);
    if (e->usage_in < 0 && p->input_tokens < 1) p->input_tokens = 1;
    if (e->usage_out < 0 && p->output_tokens < 1) p->output_tokens = 1;
}

/* Records the request and sends v with status (lock held). */
static void model_answer(struct mock *m, struct call *c, int64_t n, int status,
                         const struct json_value *v, int64_t entry, struct mock_http_reply *out)
{
    if (v) send_value(out, status, v);
    record(m, c, n, formats[c->format].name, entry, out->status);
}

/* Picks the entry for view v, consumes it and builds its reply (lock
 * held: the entry's strings live in the script's arena). */
static void play(struct mock *m, struct call *c, const struct view *v, struct mock_http_reply *out)
{
    const struct format *f = &formats[c->format];
    struct arena *a = c->a;
    int64_t n = ++m->calls;
    struct script *s = m->script;
    int status = 0;
    struct json_value *refused = f->model_rules ? f->model_rules(a, s, c->body, &status) : NULL;
    if (refused) {
        model_answer(m, c, n, status, refused, -1, out);
        return;
    }
    struct entry *e = NULL;
    size_t used_up = 0;
    for (size_t i = 0; i < s->count; i++) {
        if (!entry_available(&s->entries[i])) {
            used_up++;
            continue;
        }
        if (!e && entry_matches(&s->entries[i], v)) e = &s->entries[i];
    }
    if (!e) {
        char msg[128];
        snprintf(msg, sizeof msg, "mock: no script entry matches (%zu entries, %zu used up)",
                 s->count, used_up);
        model_answer(m, c, n, 500, f->error(a, 500, msg, NULL), -1, out);
        return;
    }
    e->used++;
    int64_t index = e - s->entries;
    out->delay_ms = e->delay_ms;
    out->retry_after = e->retry_after;
    if (span_has(e->body)) {
        out->status = e->status ? (int)e->status : 200;
        buf_reset(&out->body);
        buf_append(&out->body, e->body.p, e->body.n);
        model_answer(m, c, n, out->status, NULL, index, out);
    } else if (e->status) {
        char *msg = span_has(e->error) ? arena_strndup(a, e->error.p, e->error.n) : NULL;
        model_answer(m, c, n, (int)e->status, f->error(a, (int)e->status, msg, NULL), index, out);
    } else {
        struct planned p;
        plan(a, e, n, v, c->rq->body_len, &p);
        model_answer(m, c, n, 200, f->reply(a, &p), index, out);
    }
}

/* POST to a model endpoint.  Everything that reads only the request (auth,
 * validation, the view for matching) runs before the lock is taken. */
static void handle_model(struct mock *m, struct call *c, struct mock_http_reply *out)
{
    const struct format *f = &formats[c->format];
    struct arena *a = c->a;
    struct verr ve = {{0}, {0}};
    int status = 0;
    struct json_value *err = NULL;
    if (c->rq->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body is larger than the mock's limit of %zu bytes",
                 MOCK_MAX_BODY);
        status = 413;
        err = f->error(a, 413, msg, NULL);
    } else if (f->check_auth(c->rq, &ve)) {
        status = 401;
        err = f->error(a, 401, ve.msg, NULL);
    } else if (!c->body) {
        char msg[KEEL_ERR_MSG_MAX + 64];
        snprintf(msg, sizeof msg, "the request body is not valid JSON: line %d, column %d: %s",
                 c->perr.line, c->perr.column, c->perr.msg);
        status = 400;
        err = f->error(a, 400, msg, NULL);
    } else if (f->validate(a, c->body, &ve)) {
        status = 400;
        err = f->error(a, 400, ve.msg, ve.param);
    }
    if (err) {
        pthread_mutex_lock(&m->lock);
        model_answer(m, c, ++m->calls, status, err, -1, out);
        pthread_mutex_unlock(&m->lock);
        return;
    }
    struct view v = {.format = c->format};
    buf_init(&v.system);
    buf_init(&v.last_user);
    buf_init(&v.last_message);
    f->view(c->body, &v);
    pthread_mutex_lock(&m->lock);
    play(m, c, &v, out);
    pthread_mutex_unlock(&m->lock);
    view_cleanup(&v);
}

static void send_ok(struct arena *a, struct mock_http_reply *out, struct json_value *extra)
{
    struct json_value *r = extra ? extra : json_object(a);
    json_object_setc(a, r, "ok", json_bool(a, true));
    send_value(out, 200, r);
}

static void handle_requests(struct mock *m, struct call *c, struct mock_http_reply *out)
{
    out->status = 200;
    buf_reset(&out->body);
    buf_putc(&out->body, '[');
    pthread_mutex_lock(&m->lock);
    if (m->records.len) buf_append(&out->body, m->records.data, m->records.len);
    pthread_mutex_unlock(&m->lock);
    buf_putc(&out->body, ']');
}

static void handle_stats(struct mock *m, struct call *c, struct mock_http_reply *out)
{
    struct arena *a = c->a;
    struct json_value *r = json_object(a), *served = json_object(a);
    int64_t remaining = 0;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->script->count; i++) {
        const struct entry *e = &m->script->entries[i];
        char key[24];
        int kn = snprintf(key, sizeof key, "%zu", i);
        json_object_set(a, served, key, (size_t)kn, json_int(a, e->used));
        remaining += entry_available(e);
    }
    json_object_setc(a, r, "calls", json_int(a, m->calls));
    pthread_mutex_unlock(&m->lock);
    json_object_setc(a, r, "served", served);
    json_object_setc(a, r, "remaining", json_int(a, remaining));
    send_value(out, 200, r);
}

static void control_error(struct arena *a, struct mock_http_reply *out, int status,
                          const char *type, const char *msg)
{
    struct json_value *r = json_object(a), *e = json_object(a);
    json_object_setc(a, e, "message", json_cstr(a, msg));
    json_object_setc(a, e, "type", json_cstr(a, type));
    json_object_setc(a, r, "error", e);
    send_value(out, status, r);
}

/* POST /_mock/script: parsed without the lock, then swapped in. */
static void handle_script(struct mock *m, struct call *c, struct mock_http_reply *out)
{
    const struct mock_http_request *rq = c->rq;
    if (rq->too_large) {
        control_error(c->a, out, 413, "too_large", "the script is larger than the 8 MiB limit");
        return;
    }
    struct script *s;
    struct keel_err err;
    keel_err_clear(&err);
    if (script_parse(rq->body ? rq->body : "", rq->body_len, "<POST /_mock/script body>", &s,
                     &err) != 0) {
        char msg[KEEL_ERR_MSG_MAX + KEEL_ERR_PATH_MAX * 2 + 64];
        control_error(c->a, out, 400, "invalid_script", keel_err_format(&err, msg, sizeof msg));
        return;
    }
    /* Read before the swap: once unlocked, another POST may free s. */
    int64_t count = (int64_t)s->count;
    pthread_mutex_lock(&m->lock);
    struct script *old = m->script;
    m->script = s;
    clear_state(m);
    pthread_mutex_unlock(&m->lock);
    script_free(old);
    struct json_value *r = json_object(c->a);
    json_object_setc(c->a, r, "entries", json_int(c->a, count));
    send_ok(c->a, out, r);
}

static void handle_reset(struct mock *m, struct call *c, struct mock_http_reply *out)
{
    pthread_mutex_lock(&m->lock);
    clear_state(m);
    pthread_mutex_unlock(&m->lock);
    send_ok(c->a, out, NULL);
}

/* Anything else: 404, recorded (format "other"). */
static void handle_not_found(struct mock *m, struct call *c, struct mock_http_reply *out)
{
    char msg[512];
    snprintf(msg, sizeof msg,
             "mock: no endpoint %.16s %.200s; the mock serves POST /v1/chat/completions, "
             "POST /v1/messages (also without /v1), GET /_mock/requests, GET /_mock/stats, "
             "POST /_mock/script and POST /_mock/reset",
             c->rq->method ? c->rq->method : "", c->rq->path ? c->rq->path : "");
    control_error(c->a, out, 404, "not_found", msg);
    pthread_mutex_lock(&m->lock);
    record(m, c, ++m->calls, "other", -1, 404);
    pthread_mutex_unlock(&m->lock);
}

/* The routes.  parse: the handler wants the body parsed (c->body). */
struct route {
    const char *method;
    const char *path;
    int format; /* enum format_id for model endpoints, -1 for the others */
    bool parse;
    void (*handle)(struct mock *m, struct call *c, struct mock_http_reply *out);
};

static const struct route routes[] = {
    {"POST", "/v1/chat/completions", FMT_OPENAI, true, handle_model},
    {"POST", "/chat/completions", FMT_OPENAI, true, handle_model},
    {"POST", "/v1/messages", FMT_ANTHROPIC, true, handle_model},
    {"POST", "/messages", FMT_ANTHROPIC, true, handle_model},
    {"GET", "/_mock/requests", -1, false, handle_requests},
    {"GET", "/_mock/stats", -1, false, handle_stats},
    {"POST", "/_mock/script", -1, false, handle_script},
    {"POST", "/_mock/reset", -1, false, handle_reset},
};

static const struct route not_found = {NULL, NULL, -1, true, handle_not_found};

void mock_handle(struct mock *m, const struct mock_http_request *rq, struct mock_http_reply *out)
{
    struct arena a;
    arena_init(&a);
    out->status = 200;
    out->retry_after = -1;
    out->delay_ms = 0;
    buf_reset(&out->body);
    const char *method = rq->method ? rq->method : "", *path = rq->path ? rq->path : "";
    const struct route *r = &not_found;
    for (size_t i = 0; i < KEEL_ARRAY_LEN(routes); i++)
        if (!strcmp(routes[i].method, method) && !strcmp(routes[i].path, path)) r = &routes[i];
    struct call c = {.a = &a, .rq = rq, .format = r->format, .time_ms = keel_wall_ms()};
    keel_err_clear(&c.perr);
    if (r->parse && !rq->too_large) {
        /* Duplicate keys: the last wins, as in the providers' parsers. */
        struct json_parse_opts opts = {.max_size = MOCK_MAX_BODY, .dup = JSON_DUP_LAST};
        if (json_parse(&a, rq->body ? rq->body : "", rq->body_len, &opts, &c.body, &c.perr))
            c.body = NULL;
    }
    r->handle(m, &c, out);
    arena_cleanup(&a);
}
