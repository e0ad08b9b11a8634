/*
 * policy_schema.h — Cedar schemas and strict policy validation.
 *
 * A schema declares entity types (attributes, parents, tags, enumerated ids)
 * and actions (parents, and which principal/resource types and which context
 * each applies to).  It is read from the human `.cedarschema` format or the
 * JSON format (policy_schema_parse detects which) into one resolved model:
 * every type reference names a declared entity type, a primitive, an
 * extension type, or is inlined from a common type.
 *
 * policy_validate typechecks a policy set against a schema the way Cedar's
 * strict validator does; policy_validate_request / policy_validate_entities
 * check requests and entity data against the schema.
 *
 * policy.h includes this header at its end; other parts include policy.h.
 */
#ifndef KEEL_POLICY_SCHEMA_H
#define KEEL_POLICY_SCHEMA_H

#include "../util/util.h"

struct json_value;

/* ---- the type model -------------------------------------------------- */

/* Kinds of Cedar types.  Schemas use BOOL..EXT; the typechecker also uses
 * the others (singleton booleans, the empty set, "some entity"). */
enum policy_type_kind {
    POLICY_T_NEVER = 0, /* no value (e.g. the element type of [])           */
    POLICY_T_BOOL,
    POLICY_T_TRUE,
    POLICY_T_FALSE,
    POLICY_T_LONG,
    POLICY_T_STRING,
    POLICY_T_SET,
    POLICY_T_RECORD,
    POLICY_T_ENTITY,     /* one entity type, `name`                          */
    POLICY_T_ANY_ENTITY, /* an entity of a type not known (unspecified)      */
    POLICY_T_EXT,        /* extension type `name`: ipaddr, decimal, ...      */
};

struct policy_attr;

struct policy_type {
    int kind;                      /* enum policy_type_kind                    */
    bool open;                     /* RECORD: may hold attributes not listed   */
    const char *name;              /* ENTITY: qualified type; EXT: extension   */
    const struct policy_type *elem; /* SET: element type                       */
    const struct policy_attr *attrs; /* RECORD: sorted by (bytes, length)      */
    size_t nattrs;
};

struct policy_attr {
    const char *name; /* may hold NUL bytes (Cedar strings can): use name_len */
    size_t name_len;
    const struct policy_type *type;
    bool required;
};

/* ---- the schema ------------------------------------------------------ */

struct policy_entity_type {
    const char *name;               /* fully qualified: "NS::User" or "User" */
    const struct policy_type *shape; /* a RECORD (empty when none declared)    */
    const struct policy_type *tags;  /* type of tag values, NULL = no tags     */
    const char **parents;           /* memberOfTypes, qualified              */
    size_t nparents;
    bool is_enum;                   /* enumerated: only ids in enum_ids exist */
    const char **enum_ids;          /* may hold NUL bytes: see enum_id_lens */
    const size_t *enum_id_lens;
    size_t nenum;
    int line, column;               /* where it is declared                   */
};

struct policy_action_ref {
    const char *type; /* "Action" or "NS::Action" */
    const char *id;   /* may hold NUL bytes (Cedar strings can): use id_len */
    size_t id_len;
};

struct policy_action {
    struct policy_action_ref uid;
    const struct policy_action_ref *parents; /* memberOf */
    size_t nparents;
    bool applies;             /* false: applies to no request at all (no
                                 appliesTo, or an empty type list) */
    const char **principals;  /* principalTypes, qualified */
    size_t nprincipals;
    const char **resources;   /* resourceTypes, qualified */
    size_t nresources;
    const struct policy_type *context; /* a RECORD */
    int line, column;
};

struct policy_schema {
    struct arena arena;                   /* owns everything below           */
    struct policy_entity_type *entities;  /* sorted by name                  */
    size_t nentities;
    struct policy_action *actions;        /* in declaration order            */
    size_t nactions;
    struct strmap entity_index;           /* name -> struct policy_entity_type* */
    struct strmap action_index;           /* "type\x1fid" -> struct policy_action* */
    struct strmap action_types;           /* "NS::Action" names that exist   */
    /* descendant matrix: anc[i * nentities + j] is true when an entity of
     * type entities[i] may be a (transitive) member of type entities[j]. */
    bool *entity_anc;
    /* same for actions: action_anc[i * nactions + j], i in j transitively */
    bool *action_anc;
};

/* Caps on input-controlled sizes. */
#define POLICY_SCHEMA_MAX_BYTES (16u << 20)
#define POLICY_SCHEMA_MAX_DEPTH 64    /* nesting of types                    */
#define POLICY_SCHEMA_MAX_DECLS 100000 /* entity types + actions + common types */

/* Parses a schema in either format: text starting (after whitespace) with
 * '{' is JSON, anything else the human `.cedarschema` format.  file names
 * the source in error positions (may be NULL).  On success *out is a new
 * schema; free with policy_schema_free().  On failure returns KEEL_EINVAL
 * (or KEEL_ELIMIT) with err->file/line/column and a message, *out untouched. */
int policy_schema_parse(const char *text, size_t len, const char *file,
                        struct policy_schema **out, struct keel_err *err);
/* The two formats explicitly; same contract as policy_schema_parse. */
int policy_schema_parse_human(const char *text, size_t len, const char *file,
                              struct policy_schema **out, struct keel_err *err);
int policy_schema_parse_json(const char *text, size_t len, const char *file,
                             struct policy_schema **out, struct keel_err *err);
/* Reads and parses a schema file (either format). */
int policy_schema_load(const char *path, struct policy_schema **out, struct keel_err *err);
void policy_schema_free(struct policy_schema *s);

/* Lookups; results borrowed from s.  NULL when not declared. */
const struct policy_entity_type *policy_schema_entity(const struct policy_schema *s,
                                                     const char *name);
const struct policy_action *policy_schema_action(const struct policy_schema *s,
                                                 const char *type, const char *id);
/* The same with an id of id_len bytes (ids may hold NUL). */
const struct policy_action *policy_schema_action_n(const struct policy_schema *s,
                                                   const char *type, const char *id,
                                                   size_t id_len);
/* Is id (len bytes) one of the ids of enumerated entity type et? */
bool policy_schema_enum_has(const struct policy_entity_type *et, const char *id, size_t len);
/* True if name is the type of some declared action ("Action", "NS::Action"). */
bool policy_schema_is_action_type(const struct policy_schema *s, const char *name);
/* May an entity of type child be (transitively) in an entity of type
 * ancestor?  True when they are the same type. Unknown types: false. */
bool policy_schema_entity_descends(const struct policy_schema *s, const char *child,
                                   const char *ancestor);
/* Is action a (transitively) in action b (or the same action)? */
bool policy_schema_action_descends(const struct policy_schema *s, const struct policy_action *a,
                                   const struct policy_action *b);

/* Orders attribute names: bytewise, a prefix first. */
int policy_attr_name_cmp(const char *a, size_t alen, const char *b, size_t blen);
/* The attribute name (len bytes) of record type rec, or NULL. */
const struct policy_attr *policy_type_attr(const struct policy_type *rec, const char *name,
                                           size_t len);

/* Writes a type as Cedar schema syntax ("Set<Long>", "{ a: String }")
 * into out. */
void policy_type_format(struct buf *out, const struct policy_type *t);

/* ---- validation diagnostics ----------------------------------------- */

struct policy_diag {
    char *policy_id; /* the policy's id ("policy0" or its @id) */
    char *file;      /* source file of the policy, or "" */
    int line, column;
    char *message;
    bool warning;    /* a warning (impossible policy): listed, not counted */
};

/* A growable list of diagnostics; owns its strings. */
struct policy_diag_list {
    struct policy_diag *items;
    size_t len, cap;
};

void policy_diag_list_init(struct policy_diag_list *l);
void policy_diag_list_cleanup(struct policy_diag_list *l);
/* Appends one diagnostic (strings copied). */
void policy_diag_add(struct policy_diag_list *l, const char *policy_id, const char *file,
                     int line, int column, const char *fmt, ...) KEEL_PRINTF(6, 7);

/* ---- validation ------------------------------------------------------ */

struct policy_set;
struct policy_request;
struct policy_entities;

/* Strict validation of every policy (and template) in set against schema,
 * for every (principal type, action, resource type) the policy's scope
 * allows.  Problems are appended to out (which may be NULL), and so are
 * warnings (diag.warning: a policy false for every request, as Cedar warns),
 * which do not count.  Returns the number of problems found (0 = valid) or a
 * negative KEEL_E* code on an internal failure.  Both inputs are borrowed. */
int policy_validate(const struct policy_schema *schema, const struct policy_set *set,
                    struct policy_diag_list *out);

/* Checks a request against schema: the action is declared, the principal
 * and resource types are ones it applies to, enum ids exist, and the
 * context matches the action's context type.  Returns 0 or KEEL_EINVAL
 * with a message (and the dotted path in err->path) in err.  Both inputs
 * are borrowed; nothing is allocated that outlives the call. */
int policy_validate_request(const struct policy_schema *schema,
                            const struct policy_request *request, struct keel_err *err);

/* Checks entity data against schema: each entity's type is declared (or an
 * action declared in the schema), its attributes match the shape (required
 * ones present, no undeclared ones, values of the declared types), parents
 * are of allowed types, tags match the tag type, enum ids exist.  Returns 0
 * or KEEL_EINVAL with the first problem in err.  Both inputs are borrowed. */
int policy_validate_entities(const struct policy_schema *schema,
                             const struct policy_entities *entities, struct keel_err *err);

/* The same checks on Cedar's JSON forms (parsed here with the schema's
 * help and freed before returning; the inputs are borrowed): a request object {"principal":..., "action":..., "resource":
 * ..., "context": {...}} and an entities array [{"uid":..., "attrs":...,
 * "parents":[...], "tags":...}].  Values use Cedar's JSON encoding
 * ({"__entity": ...}, {"__extn": ...}, bare uid objects). */
int policy_validate_request_json(const struct policy_schema *schema,
                                 const struct json_value *request, struct keel_err *err);
int policy_validate_entities_json(const struct policy_schema *schema,
                                  const struct json_value *entities, struct keel_err *err);

#endif
