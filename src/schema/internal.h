/*
 * internal.h — what the files of src/schema/ share and nothing outside may
 * include: the compiled node graph, the registry's innards, URI helpers, the
 * regex translation and the keyword table.
 *
 * The compiled form: a schema is a graph of struct snode.  A node is either a
 * boolean schema or an array of struct sop ("schema operations"), one per
 * keyword that does something at validation time, in evaluation order (the
 * unevaluated* keywords last).  Every `$ref` points at its target node; a
 * `$dynamicRef` keeps its static target plus the anchor name, and the
 * validator picks the outermost matching resource in the dynamic scope.
 * Validation never looks at the schema's JSON again, except for the values
 * of `const` / `enum` and numeric limits, which are compared as JSON.
 */
#ifndef KEEL_SCHEMA_INTERNAL_H
#define KEEL_SCHEMA_INTERNAL_H

#include "schema.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* Vocabularies (bits of a mask: keywords of a disabled vocabulary are
 * ignored, as $vocabulary in a custom metaschema asks). */
enum {
    VOC_CORE = 1u << 0,
    VOC_APPLICATOR = 1u << 1,
    VOC_UNEVALUATED = 1u << 2,
    VOC_VALIDATION = 1u << 3,
    VOC_METADATA = 1u << 4,
    VOC_FORMAT_ANNOTATION = 1u << 5,
    VOC_CONTENT = 1u << 6,
    VOC_FORMAT_ASSERTION = 1u << 7,
    VOC_ALL_STANDARD = (1u << 7) - 1,
};

/* Type bits for the `type` keyword. */
enum {
    T_NULL = 1u << 0,
    T_BOOLEAN = 1u << 1,
    T_OBJECT = 1u << 2,
    T_ARRAY = 1u << 3,
    T_NUMBER = 1u << 4,
    T_STRING = 1u << 5,
    T_INTEGER = 1u << 6,
};

struct vctx;
struct snode;
struct eset;

/* A schema resource (a document root or a subschema with $id): what
 * $dynamicRef needs to search the dynamic scope. */
struct sresource {
    const char *uri;
    uint32_t ndyn;
    const char **dyn_names;        /* $dynamicAnchor names in this resource */
    struct snode **dyn_nodes;      /* ... and the nodes that carry them     */
};

struct sop;
typedef bool (*sop_fn)(const struct sop *op, const struct json_value *inst, struct vctx *c,
                       struct eset *ev);

struct sop {
    sop_fn fn;
    const char *kw;                  /* keyword, for keywordLocation           */
    uint32_t kw_len;
    const char *abs_kw;              /* absoluteKeywordLocation, precomputed   */
    const char *tok;                 /* "/<kw>": keywordLocation token          */
    const char **sub_toks;           /* "/<kw>/<name, pattern or index>", JSON  */
    uint32_t *sub_tok_lens;          /* Pointer-escaped, per subschema in subs  */
    const char *msg;                 /* the failure message after its subject,  */
    const char **msgs;               /* precomputed (required: one per name)    */
    const struct snode *owner;       /* the node this op belongs to            */
    struct snode *sub, *sub2, *sub3; /* single subschemas (if/then/else ...)   */
    struct snode **subs;             /* arrays and maps of subschemas          */
    uint32_t nsubs;
    const char **names;              /* property names (properties, required)  */
    uint32_t *name_lens;
    const char ***name_lists;        /* dependentRequired: names[i] -> list    */
    uint32_t *list_lens;
    uint32_t *slots;                 /* open-addressing table over names: 1-based */
    uint32_t slot_mask;              /* positions, 0 = empty; size mask + 1 slots */
    pcre2_code **res;                /* compiled patterns                       */
    const char **sources;            /* their source text, for messages         */
    const struct json_value *val;    /* const, enum, numeric limit              */
    const struct sop *props, *pats;  /* additionalProperties' siblings          */
    const char *str;                 /* format name, $dynamicRef anchor         */
    bool (*format)(const char *s, size_t len); /* the format's checker        */
    uint32_t types;                  /* `type` mask                             */
    int64_t n, n2;                   /* counts (minItems, minContains, ...)     */
    bool flag;                       /* contains: minContains given, ...        */
};

enum snode_kind { SN_TRUE, SN_FALSE, SN_OBJECT };

struct snode {
    uint8_t kind;
    bool uneval;                 /* has unevaluatedProperties/Items: track annotations */
    uint32_t nops;
    struct sop *ops;
    const struct sresource *res; /* resource this node belongs to                       */
    const char *abs;             /* absolute location "uri#/pointer"                    */
    const char *abs_shown;       /* abs as errors show it ("#/..." for anonymous)     */
    const char *dyn_anchor;      /* $dynamicAnchor on this node, or NULL                */
};

struct schema {
    struct arena arena;
    struct snode *root;
    struct schema_opts opts;
    struct schema_registry *owned_reg;
    pcre2_code **codes; /* every compiled pattern, freed with the schema */
    size_t ncodes, codes_cap;
    pcre2_match_context *mctx;
    bool dynamic; /* some $dynamicRef is dynamic: track the dynamic scope */
};

/* The base URI of a schema compiled without one; errors show "#/..." for it. */
#define SCHEMA_SENTINEL_BASE "https://keel.invalid/schema.json"

/* FNV-1a over a property name: the hash of the names tables. */
static inline uint32_t schema_name_hash(const char *s, uint32_t len)
{
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* ---- registry internals ---- */

/* A document known to the registry. */
struct rdoc {
    char *uri;
    struct json_value *root;
    bool scanned;
};

/* Where a scanned subschema sits: its base URI (after $id), its resource's
 * URI, and the JSON Pointer from that resource's root. */
struct vinfo {
    const char *base;
    const char *abs; /* "resource-uri#pointer" */
    const struct json_value *resroot;
};

struct rdir {
    char *prefix;
    char *dir;
};

/* What a scan finds.  The registry has one set for its documents; each
 * compilation has its own for the schema being compiled, looked at first,
 * so a freed schema never leaves entries behind in the registry. */
struct rmaps {
    struct strmap resources; /* uri (no fragment) -> json_value (resource root) */
    struct strmap anchors;   /* "uri#name" -> json_value                    */
    struct strmap info;      /* (json_value*) bytes -> struct vinfo          */
    struct strmap dynanchors; /* "uri#name" -> json_value, $dynamicAnchor only */
    struct arena *arena;     /* where strings and vinfo live                */
};
void rmaps_init(struct rmaps *m, struct arena *a);
void rmaps_cleanup(struct rmaps *m);

struct schema_registry {
    struct arena arena;
    struct strmap docs;      /* uri -> struct rdoc                          */
    struct rmaps maps;
    struct rdir *dirs;
    size_t ndirs;
    struct schema *meta;     /* the compiled 2020-12 metaschema, on first use */
    bool compiling_meta;
};

/* Finds (loading from an add_dir folder if needed) the resource uri;
 * scans documents for $id/$anchor on first use. */
const struct json_value *reg_resource(struct schema_registry *reg, struct rmaps *local,
                                      const char *uri, struct keel_err *err);
const struct json_value *reg_anchor(struct schema_registry *reg, struct rmaps *local,
                                    const char *uri, const char *name, bool dynamic);
const struct vinfo *reg_info(struct schema_registry *reg, struct rmaps *local,
                             const struct json_value *v);
int reg_scan_root(struct rmaps *m, const struct json_value *root, const char *uri,
                  struct keel_err *err);

/* The built-in metaschema texts: {uri, json} pairs, NULL-terminated. */
struct meta_doc {
    const char *uri;
    const char *text;
};
extern const struct meta_doc schema_meta_docs[];
#define SCHEMA_META_URI "https://json-schema.org/draft/2020-12/schema"

/* ---- URIs ---- */

/* Resolves ref against base (RFC 3986 section 5.2); result in arena a. */
char *uri_resolve(struct arena *a, const char *base, const char *ref);
/* Copies uri without its fragment ("#..."). */
char *uri_strip_fragment(struct arena *a, const char *uri);
bool uri_is_absolute(const char *uri);
/* Decodes %XX escapes into out (len <= strlen(s)); returns false if malformed. */
bool uri_percent_decode(const char *s, size_t len, char *out, size_t *out_len);

/* ---- regex ---- */

/* Compiles an ECMA-262 pattern (as JSON Schema's `pattern`) with PCRE2.
 * Returns NULL and fills err when the pattern is invalid. */
pcre2_code *schema_regex_compile(const char *src, size_t len, struct keel_err *err);
/* True if src is a valid ECMA-262 regular expression (format "regex"). */
bool schema_regex_valid(const char *src, size_t len);

/* ---- formats ---- */

/* The checker of a named format, or NULL if Keel does not know it. */
typedef bool (*schema_format_fn)(const char *s, size_t len);
schema_format_fn schema_format_find(const char *name);

/* ---- validation ---- */

/* Precomputes op->msg / op->msgs, the parts of op's error messages that
 * depend only on the schema (validate_errors.c); called once per compiled op. */
void schema_op_messages(struct arena *a, struct sop *op);

/* Validates inst against node n (used for the metaschema check). */
bool schema_validate_node(const struct schema *s, const struct snode *n,
                          const struct json_value *inst, struct schema_result *r);

/* The keyword table lives in compile.c; validators in validate_assert.c and
 * validate_apply.c. */
bool op_type(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_const(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_enum(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_multiple_of(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_maximum(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_exclusive_maximum(const struct sop *, const struct json_value *, struct vctx *,
                          struct eset *);
bool op_minimum(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_exclusive_minimum(const struct sop *, const struct json_value *, struct vctx *,
                          struct eset *);
bool op_max_length(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_min_length(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_pattern(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_format(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_content(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_max_items(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_min_items(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_unique_items(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_max_properties(const struct sop *, const struct json_value *, struct vctx *,
                       struct eset *);
bool op_min_properties(const struct sop *, const struct json_value *, struct vctx *,
                       struct eset *);
bool op_required(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_dependent_required(const struct sop *, const struct json_value *, struct vctx *,
                           struct eset *);
bool op_ref(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_dynamic_ref(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_all_of(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_any_of(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_one_of(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_not(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_if(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_dependent_schemas(const struct sop *, const struct json_value *, struct vctx *,
                          struct eset *);
bool op_dependencies(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_properties(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_pattern_properties(const struct sop *, const struct json_value *, struct vctx *,
                           struct eset *);
bool op_additional_properties(const struct sop *, const struct json_value *, struct vctx *,
                              struct eset *);
bool op_property_names(const struct sop *, const struct json_value *, struct vctx *,
                       struct eset *);
bool op_prefix_items(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_items(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_contains(const struct sop *, const struct json_value *, struct vctx *, struct eset *);
bool op_unevaluated_items(const struct sop *, const struct json_value *, struct vctx *,
                          struct eset *);
bool op_unevaluated_properties(const struct sop *, const struct json_value *, struct vctx *,
                               struct eset *);

#endif
