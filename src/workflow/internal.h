/*
 * internal.h — declarations shared by the files of src/workflow/ only.
 * Other parts include workflow.h.
 */
#ifndef KEEL_WORKFLOW_INTERNAL_H
#define KEEL_WORKFLOW_INTERNAL_H

#include "workflow.h"

/* Set in json_value.nflags of strings that were quoted in YAML (nflags is
 * otherwise unused for strings), so a position inside the text is column+1. */
#define WORKFLOW_STR_QUOTED 1u

/* One ${...} reference in a template, for compile-time checks. */
struct workflow_ref {
    unsigned root;        /* WORKFLOW_VAR_* */
    const char *text;     /* the path as written, e.g. "state.ticket.subject" */
    const char *first;    /* first name after the root ("ticket"), or NULL */
    size_t first_len;
    const struct json_value *where; /* the string that holds it */
};

/* Calls fn for every reference in t (depth-first, source order); stops and
 * returns fn's value when it is nonzero. */
int workflow_template_each_ref(const struct workflow_template *t,
                               int (*fn)(const struct workflow_ref *ref, void *ctx), void *ctx);

/* condition.c: parse a case's condition into c->expr (positions point into
 * file); free it. */
int workflow_condition_compile(struct workflow_switch_case *c, const char *file,
                               struct keel_err *err);
void workflow_condition_free(struct workflow_switch_case *c);

/* validate.c: checks doc against Keel's workflow schema; problems (code
 * KEEL_ESCHEMA, positioned by instance pointer) go to diags and the first to
 * *first.  Returns 0 or KEEL_ESCHEMA. */
int workflow_schema_check(const struct json_value *doc, const char *file,
                          struct workflow_diags *diags, struct keel_err *first);
/* Compiles schema_doc (found at JSON Pointer path in file) as a JSON Schema;
 * on failure adds a positioned problem (counting it in *nerr, copying the
 * first to *first) and returns KEEL_EINVAL.  *out (if out is non-NULL) gets
 * the compiled schema; free with workflow_schema_free. */
struct schema;
int workflow_schema_compile_at(const struct json_value *schema_doc, const char *file,
                               const char *path, struct schema **out,
                               struct workflow_diags *diags, struct keel_err *first, int *nerr);
void workflow_schema_free(struct schema *s);

/* Parses a budget mapping {tokens, usd, approvers} found at path in file.
 * Fails with KEEL_EINVAL, err positioned at the offending value. */
int workflow_budget_parse(const struct json_value *v, const char *file, const char *path,
                          struct workflow_budget *out, struct keel_err *err);

#endif
