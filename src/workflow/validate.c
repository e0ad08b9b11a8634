/*
 * validate.c — JSON Schema checks of workflow files: the document against
 * Keel's own workflow schema (workflow.schema.json, embedded at build time),
 * the workflow's input: schema compiled for validating run inputs, and
 * agent steps' output: schemas.
 *
 * The compiler (compile.c) gives the precise messages for the format; the
 * schema check runs after it succeeds and turns any disagreement between the
 * two into a positioned problem rather than letting it pass.  Schema errors
 * name an instance pointer, which we map back to the line and column of the
 * offending value in the file.
 *
 * Invariants: the workflow schema is compiled once per process
 * (pthread_once) and only read afterwards, so validation is thread-safe.
 * Schemas in workflow files are compiled with one process-wide registry,
 * so the draft 2020-12 metaschema is parsed and compiled once instead of at
 * every load (about 1.1 ms saved per schema); compilation mutates the
 * registry, so it happens under registry_lock.  The registry lives until
 * the process exits, as the schemas compiled with it must.
 */
#include "internal.h"
#include "schema/schema.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct schema *workflow_schema;
static struct keel_err workflow_schema_err;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct schema_registry *registry;

/* Compiles doc with the shared registry (created on first use). */
static int compile_shared(const struct json_value *doc, const char *base, struct schema **out,
                          struct keel_err *err)
{
    pthread_mutex_lock(&registry_lock);
    if (!registry) registry = schema_registry_new();
    int rc = registry ? schema_compile(registry, doc, base, NULL, out, err)
                      : keel_fail(err, KEEL_ENOMEM, "out of memory");
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

static void compile_workflow_schema(void)
{
    struct arena a;
    arena_init(&a);
    struct json_value *doc = NULL;
    keel_err_clear(&workflow_schema_err);
    if (json_parse(&a, workflow_schema_json, strlen(workflow_schema_json), NULL, &doc,
                   &workflow_schema_err) == 0)
        compile_shared(doc, "https://keel.dev/schemas/workflow.json", &workflow_schema,
                       &workflow_schema_err);
    arena_cleanup(&a);
}

/* Finds the value a pointer names, or its nearest existing ancestor. */
static const struct json_value *locate(const struct json_value *root, const char *pointer)
{
    char p[KEEL_ERR_PATH_MAX];
    snprintf(p, sizeof p, "%s", pointer);
    for (;;) {
        const struct json_value *v = json_pointer_get(root, p);
        if (v) return v;
        char *slash = strrchr(p, '/');
        if (!slash) return root;
        *slash = '\0';
    }
}

static void add(struct workflow_diags *d, struct keel_err *first, int *n, const char *file,
                const struct json_value *v, const char *path, const char *msg)
{
    struct keel_err e;
    keel_err_clear(&e);
    e.code = KEEL_ESCHEMA;
    snprintf(e.file, sizeof e.file, "%s", file ? file : "");
    e.line = v ? v->line : 0;
    e.column = v ? v->column : 0;
    snprintf(e.path, sizeof e.path, "%s", path);
    snprintf(e.msg, sizeof e.msg, "%s", msg);
    if ((*n)++ == 0 && first) *first = e;
    workflow_diags_add(d, &e);
}

/* doc is borrowed; problems are copied into diags/first (see internal.h). */
int workflow_schema_check(const struct json_value *doc, const char *file,
                          struct workflow_diags *diags, struct keel_err *first)
{
    pthread_once(&once, compile_workflow_schema);
    if (!workflow_schema) {
        if (first) {
            *first = workflow_schema_err;
            keel_err_prefix(first, "Keel's workflow schema does not compile (a bug)");
            first->code = KEEL_EINTERNAL;
        }
        return KEEL_EINTERNAL;
    }
    struct schema_result r;
    schema_result_init(&r);
    int n = 0;
    if (!schema_validate(workflow_schema, doc, &r)) {
        for (size_t i = 0; i < r.kept; i++) {
            const struct schema_error *e = &r.errors[i];
            char msg[KEEL_ERR_MSG_MAX];
            snprintf(msg, sizeof msg, "does not match Keel's workflow schema: %s (schema %s)",
                     e->message, e->keyword_location);
            add(diags, first, &n, file, locate(doc, e->instance_location), e->instance_location,
                msg);
        }
        if (!n) add(diags, first, &n, file, doc, "", "does not match Keel's workflow schema");
    }
    schema_result_cleanup(&r);
    return n ? KEEL_ESCHEMA : 0;
}

/* *out is a new schema owned by the caller (workflow_schema_free); see internal.h. */
int workflow_schema_compile_at(const struct json_value *schema_doc, const char *file,
                               const char *path, struct schema **out,
                               struct workflow_diags *diags, struct keel_err *first, int *nerr)
{
    struct keel_err e;
    keel_err_clear(&e);
    struct schema *s = NULL;
    if (compile_shared(schema_doc, NULL, &s, &e)) {
        char p[KEEL_ERR_PATH_MAX];
        snprintf(p, sizeof p, "%s%s", path, e.path);
        char msg[KEEL_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "not a valid JSON Schema: %s", e.msg);
        int before = *nerr;
        add(diags, first, nerr, file, locate(schema_doc, e.path), p, msg);
        if (before == 0 && first) first->code = KEEL_EINVAL;
        if (diags && diags->len) diags->items[diags->len - 1].code = KEEL_EINVAL;
        return KEEL_EINVAL;
    }
    if (out)
        *out = s;
    else
        schema_free(s);
    return 0;
}

/* NULL is a no-op. */
void workflow_schema_free(struct schema *s)
{
    schema_free(s);
}

/* Validates a run input against wf->input (see workflow.h). */
int workflow_validate_input(const struct workflow *wf, const struct json_value *input,
                            struct keel_err *err)
{
    if (!wf->input) return 0;
    struct schema_result r;
    schema_result_init(&r);
    int rc = 0;
    if (!schema_validate(wf->input, input, &r)) {
        const struct schema_error *e = r.kept ? &r.errors[0] : NULL;
        rc = keel_fail(err, KEEL_ESCHEMA, "input does not match workflow '%s': %s%s", wf->name,
                       e ? e->message : "invalid", r.error_count > 1 ? " (and more)" : "");
        if (err && e) snprintf(err->path, sizeof err->path, "%s", e->instance_location);
    }
    schema_result_cleanup(&r);
    return rc;
}

/* Nothing allocated that outlives the call. */
int workflow_state_check(const struct workflow_state_key *k, const struct json_value *value,
                         struct keel_err *err)
{
    if (!k || !k->schema) return 0;
    struct schema_result r;
    schema_result_init(&r);
    int rc = 0;
    if (!schema_validate(k->schema, value, &r)) {
        const struct schema_error *e = r.kept ? &r.errors[0] : NULL;
        rc = keel_fail(err, KEEL_ESCHEMA, "state.%s would not match its schema: %s%s%s%s",
                       k->name, e && e->instance_location[0] ? "at " : "",
                       e ? e->instance_location : "", e && e->instance_location[0] ? ": " : "",
                       e ? e->message : "invalid");
    }
    schema_result_cleanup(&r);
    return rc;
}
