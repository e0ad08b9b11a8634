/*
 * validate.c — tool arguments and results checked against the tool's own
 * JSON Schemas, as ARCHITECTURE.md's "path of one action" requires: the
 * arguments before policy and execution, structuredContent after.
 *
 * A validator holds a private copy of the schemas it was compiled from, so
 * it never depends on the tool list that produced it; the pool keeps one
 * per "server/tool" and recompiles when a server's schemas change (after a
 * restart or tools/list_changed).  Validators that were handed out are
 * retired, not freed, until the pool is freed, because another thread may
 * still be validating with one.
 */
#include "internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../schema/schema.h"

struct mcp_validator {
    struct arena a;
    const char *label;            /* "server/tool" for messages */
    struct json_value *input_doc; /* copies of the schemas compiled */
    struct json_value *output_doc;
    struct schema *input;
    struct schema *output; /* NULL when the tool has no outputSchema */
};

void mcp_validator_free(struct mcp_validator *v)
{
    if (!v) return;
    schema_free(v->input);
    schema_free(v->output);
    arena_cleanup(&v->a);
    free(v);
}

int mcp_tool_compile(const struct mcp_tool *t, struct mcp_validator **out, struct keel_err *err)
{
    struct mcp_validator *v = calloc(1, sizeof *v);
    if (!v) return keel_fail(err, KEEL_ENOMEM, "out of memory");
    arena_init(&v->a);
    v->label = arena_printf(&v->a, "%s/%s", t->server ? t->server : "?", t->name);
    v->input_doc = json_clone(&v->a, t->input_schema);
    v->output_doc = t->output_schema ? json_clone(&v->a, t->output_schema) : NULL;
    int rc = schema_compile(NULL, v->input_doc, NULL, NULL, &v->input, err);
    if (rc) {
        keel_err_prefix(err, "inputSchema of tool %s is not a valid JSON Schema", v->label);
        if (err) err->code = KEEL_ESCHEMA;
        mcp_validator_free(v);
        return KEEL_ESCHEMA;
    }
    if (v->output_doc) {
        rc = schema_compile(NULL, v->output_doc, NULL, NULL, &v->output, err);
        if (rc) {
            keel_err_prefix(err, "outputSchema of tool %s is not a valid JSON Schema", v->label);
            if (err) err->code = KEEL_ESCHEMA;
            mcp_validator_free(v);
            return KEEL_ESCHEMA;
        }
    }
    *out = v;
    return 0;
}

/* Formats the validation errors of r into err (first error's location in
 * err->path). */
static int report(const struct schema_result *r, const char *what, const char *label,
                  struct keel_err *err)
{
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < r->kept && i < 3; i++) {
        const struct schema_error *e = &r->errors[i];
        buf_printf(&b, "%s%s%s%s", i ? "; " : "", e->message,
                   e->instance_location[0] ? " at " : "", e->instance_location);
    }
    if (r->error_count > 3) buf_printf(&b, "; and %zu more", r->error_count - 3);
    int rc = keel_fail(err, KEEL_ESCHEMA, "%s of tool %s do not match its schema: %s", what, label,
                       b.data ? b.data : "invalid");
    if (err && r->kept)
        snprintf(err->path, sizeof err->path, "%s", r->errors[0].instance_location);
    buf_cleanup(&b);
    return rc;
}

int mcp_tool_validate_args(const struct mcp_validator *v, const struct json_value *args,
                           struct keel_err *err)
{
    struct arena a;
    arena_init(&a);
    const struct json_value *inst = args ? args : json_object(&a);
    struct schema_result r;
    schema_result_init(&r);
    int rc = 0;
    if (!schema_validate(v->input, inst, &r)) rc = report(&r, "arguments", v->label, err);
    schema_result_cleanup(&r);
    arena_cleanup(&a);
    return rc;
}

int mcp_tool_validate_result(const struct mcp_validator *v, const struct mcp_call_result *res,
                             struct keel_err *err)
{
    if (!v->output || res->is_error) return 0;
    if (!res->structured)
        return keel_fail(err, KEEL_ESCHEMA,
                         "tool %s declares an outputSchema but returned no structuredContent; "
                         "fix the tool server",
                         v->label);
    struct schema_result r;
    schema_result_init(&r);
    int rc = 0;
    if (!schema_validate(v->output, res->structured, &r))
        rc = report(&r, "results (structuredContent)", v->label, err);
    schema_result_cleanup(&r);
    return rc;
}

/* ---- the pool's cache -------------------------------------------------- */

int mcp_validator_cache_get(struct mcp_validator_cache *cache, const char *qualified,
                            const struct mcp_tool *t, const struct mcp_validator **out,
                            struct keel_err *err)
{
    pthread_mutex_lock(&cache->mu);
    size_t klen = strlen(qualified);
    struct mcp_validator *v = strmap_get(&cache->by_name, qualified, klen);
    bool same = v && json_equal(v->input_doc, t->input_schema) &&
                (v->output_doc ? t->output_schema && json_equal(v->output_doc, t->output_schema)
                               : !t->output_schema);
    int rc = 0;
    if (!same) {
        struct mcp_validator *nv;
        rc = mcp_tool_compile(t, &nv, err);
        if (!rc) {
            if (v) {
                if (cache->nretired == cache->cap) {
                    cache->cap = cache->cap ? cache->cap * 2 : 8;
                    cache->retired = realloc(cache->retired, cache->cap * sizeof *cache->retired);
                    if (!cache->retired) abort();
                }
                cache->retired[cache->nretired++] = v;
            }
            strmap_put(&cache->by_name, qualified, klen, nv);
            v = nv;
        }
    }
    pthread_mutex_unlock(&cache->mu);
    if (!rc) *out = v;
    return rc;
}

void mcp_validator_cache_cleanup(struct mcp_validator_cache *cache)
{
    for (size_t i = 0; i < cache->by_name.cap; i++)
        if (cache->by_name.slots[i].key) mcp_validator_free(cache->by_name.slots[i].value);
    strmap_cleanup(&cache->by_name);
    for (size_t i = 0; i < cache->nretired; i++) mcp_validator_free(cache->retired[i]);
    free(cache->retired);
    pthread_mutex_destroy(&cache->mu);
}
