/*
 * schema.h — JSON Schema draft 2020-12: a registry of schema documents,
 * a compiler that turns a schema into a graph of nodes with every `$ref`
 * resolved, and a validator that walks that graph over an instance.
 *
 * Typical use (compile once, validate many):
 *
 *     struct schema_registry *reg = schema_registry_new();
 *     struct schema *s;
 *     if (schema_compile(reg, doc, NULL, NULL, &s, &err) < 0) ...;
 *     struct schema_result r;
 *     schema_result_init(&r);
 *     for (each instance)
 *         if (!schema_validate(s, instance, &r)) ... r.errors[i] ...;
 *     schema_result_cleanup(&r);
 *     schema_free(s);
 *     schema_registry_free(reg);
 *
 * Thread safety: a compiled schema is read-only during validation, so many
 * threads may validate with one schema at once, each with its own
 * schema_result.  The registry is mutated by compilation (documents under an
 * add_dir prefix are loaded on first reference); do not compile with one
 * registry from two threads at once.
 *
 * Nothing here touches the network: remote references resolve only to
 * documents added to the registry (or files under an add_dir prefix), plus
 * the built-in draft 2020-12 metaschemas.
 */
#ifndef KEEL_SCHEMA_H
#define KEEL_SCHEMA_H

#include "../json/json.h"
#include "../util/util.h"

/* Limits (inputs are capped before anything is allocated for them). */
#define SCHEMA_MAX_DEPTH 1024    /* schema nesting at compile time                          */
#define SCHEMA_MAX_EVAL_DEPTH 2048 /* nested evaluations (instance depth x $ref chain): a
                                      recursive schema over a 512-deep document fits     */
#define SCHEMA_MAX_ERRORS 100    /* errors kept per validation; more are counted, not kept  */
#define SCHEMA_MAX_NODES 200000  /* compiled schema nodes per schema                       */
#define SCHEMA_MAX_DOC_SIZE (16u << 20) /* a schema file loaded through add_dir            */
#define SCHEMA_REGEX_MATCH_LIMIT 1000000 /* PCRE2 match limit per pattern test              */

/* ---- registry ---------------------------------------------------------- */

struct schema_registry;

/* Returns a new registry holding the built-in draft 2020-12 metaschema and
 * its vocabulary metaschemas; free with schema_registry_free(). */
struct schema_registry *schema_registry_new(void);
void schema_registry_free(struct schema_registry *reg);

/* Adds the document doc under the absolute URI uri (no fragment).  doc is
 * copied; the caller keeps its own.  Embedded resources ($id inside) are
 * found when the document is first used.  Fails with KEEL_EEXIST if uri is
 * already present, KEEL_EINVAL if uri is not absolute. */
int schema_registry_add(struct schema_registry *reg, const char *uri, const struct json_value *doc,
                        struct keel_err *err);
/* Parses text (len bytes) and adds it as above. */
int schema_registry_add_text(struct schema_registry *reg, const char *uri, const char *text,
                             size_t len, struct keel_err *err);
/* Resolves every URI that starts with uri_prefix to the file dir/<rest of
 * the URI>, read (and parsed) the first time a schema refers to it.  The
 * strings are copied.  Paths containing ".." segments are refused. */
int schema_registry_add_dir(struct schema_registry *reg, const char *uri_prefix, const char *dir,
                            struct keel_err *err);

/* ---- compiling --------------------------------------------------------- */

struct schema_opts {
    bool format_assert;   /* make `format` an assertion (default: annotation only)  */
    bool content_assert;  /* make contentEncoding/contentMediaType assertions        */
    bool no_meta_check;   /* skip validating the schema against its metaschema      */
};

struct schema;

/* Compiles the schema doc (borrowed; copied into the schema) with base URI
 * base_uri (may be NULL: an internal placeholder is used, and relative
 * references must then resolve inside the document).  reg may be NULL (a
 * private registry with the metaschemas is used); otherwise it must outlive
 * the schema.  opts may be NULL (defaults).  On success *out is a new schema;
 * free with schema_free().  On failure err names the schema location
 * (err->path is a JSON Pointer into doc) and what to fix. */
int schema_compile(struct schema_registry *reg, const struct json_value *doc, const char *base_uri,
                   const struct schema_opts *opts, struct schema **out, struct keel_err *err);
void schema_free(struct schema *s);

/* ---- validating -------------------------------------------------------- */

/* One failed assertion, in the spirit of the spec's "basic" output unit.
 * Strings are valid until the schema_result's next use and while the
 * schema lives (absolute_keyword_location points into the schema). */
struct schema_error {
    const char *instance_location;          /* JSON Pointer into the instance, "" = root */
    const char *keyword_location;           /* evaluation path through the schema, with $ref */
    const char *absolute_keyword_location;  /* "uri#/pointer" of the failing keyword          */
    const char *message;                    /* plain sentence, e.g. "`priority` must be ..."   */
};

/* The outcome of schema_validate, reusable across calls: after the first few
 * validations it owns enough scratch space that validating allocates
 * nothing, valid instance or not. */
struct schema_result {
    size_t max_errors;       /* set by the caller: errors to collect, 0 = up to
                                SCHEMA_MAX_ERRORS; 1 stops at the first error
                                (then error_count is not the total)            */
    bool lazy;               /* set by the caller: do not fill errors[]; read
                                errors through schema_result_error() (or the
                                write functions), which make their text on first
                                use.  The instance must then stay alive and
                                unchanged until the errors have been read.     */
    bool valid;
    size_t error_count;      /* errors found (may exceed what was kept)          */
    size_t kept;             /* errors kept (<= SCHEMA_MAX_ERRORS)               */
    struct schema_error *errors; /* kept entries; with lazy, only after
                                    schema_result_error() has been called      */
    /* private */
    size_t errors_cap;
    void *facts;             /* what each kept error is made from
                                (validate_errors.c)                             */
    size_t facts_cap;
    void *segs;              /* their instance and keyword paths               */
    size_t segs_used, segs_cap;
    bool rendered;           /* errors[] holds the text of every kept error     */
    void *scratch;           /* evaluation scratch (bitsets, hashes)            */
    size_t scratch_cap;
    size_t scratch_used;
    void *match_data;        /* PCRE2 match data, created on first pattern test */
    struct buf msgbuf;       /* the text of errors[]                            */
};

void schema_result_init(struct schema_result *r);
void schema_result_cleanup(struct schema_result *r);

/* Validates instance (borrowed) against s.  Returns true if valid.  r is
 * filled in: r->valid, and on failure the errors (all of them, up to
 * SCHEMA_MAX_ERRORS, or r->max_errors).  During the walk an error is
 * recorded as a few pointers (keyword, instance value, path segments); its
 * text (message, JSON Pointers) is made at the end of the call, or with
 * r->lazy only when read.  A valid instance records nothing. */
bool schema_validate(const struct schema *s, const struct json_value *instance,
                     struct schema_result *r);

/* Error i (0 <= i < r->kept) of the last validation, its text made on the
 * first call after a lazy validation; NULL if i is out of range.  Borrowed,
 * valid until r's next use.  Works with or without r->lazy. */
const struct schema_error *schema_result_error(struct schema_result *r, size_t i);

/* Appends r as the spec's basic output format:
 * {"valid":false,"errors":[{"keywordLocation":..,"absoluteKeywordLocation":..,
 *  "instanceLocation":..,"error":..}]} (or {"valid":true}). */
void schema_result_write_json(const struct schema_result *r, struct buf *out);

/* Appends r as plain text for a person or a model: "valid", or one line
 * per error, "<instance location or (root)>: <message>", and a last line
 * "... and N more errors" when some were not kept. */
void schema_result_write_text(const struct schema_result *r, struct buf *out);

/* ---- formats ----------------------------------------------------------- */

/* Checks s (len bytes) against the named format.  Returns 1 if valid, 0 if
 * not, -1 if the format is unknown (unknown formats always pass). */
int schema_format_check(const char *format, const char *s, size_t len);

#endif
