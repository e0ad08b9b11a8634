/*
 * schema_build.h — internal to src/policy: the declarations both schema
 * parsers (schema_human.c, schema_json.c) produce, as written, before names
 * are resolved.  schema_build_finish() in schema.c resolves them into a
 * struct policy_schema.  Not included outside src/policy.
 */
#ifndef KEEL_POLICY_SCHEMA_BUILD_H
#define KEEL_POLICY_SCHEMA_BUILD_H

#include "policy_schema.h"

/* A type as written. */
enum raw_kind {
    RAW_NAME,   /* a name to resolve: common type, entity type, or builtin   */
    RAW_ENTITY, /* JSON {"type":"Entity","name":...}: an entity type only     */
    RAW_EXT,    /* JSON {"type":"Extension","name":...}                       */
    RAW_COMMON, /* JSON {"type":"X"}: a common type (or builtin) only         */
    RAW_BOOL,
    RAW_LONG,
    RAW_STRING,
    RAW_SET,
    RAW_RECORD,
};

struct raw_attr;

struct raw_type {
    int kind;
    const char *name;           /* RAW_NAME/ENTITY/EXT/COMMON, as written */
    struct raw_type *elem;      /* RAW_SET */
    struct raw_attr *attrs;     /* RAW_RECORD */
    size_t nattrs;
    int line, column;
};

struct raw_attr {
    const char *name;
    size_t name_len;
    struct raw_type *type;
    bool required;
    int line, column;
};

struct raw_name {
    const char *name;
    size_t len;
    int line, column;
};

struct raw_entity {
    const char *ns; /* "" for the empty namespace */
    const char *name;
    struct raw_name *parents;
    size_t nparents;
    struct raw_type *shape; /* NULL: empty record */
    struct raw_type *tags;  /* NULL: no tags */
    const char **enum_ids;  /* non-NULL: enumerated entity type */
    size_t *enum_id_lens;
    size_t nenum;
    int line, column;
};

struct raw_action_ref {
    const char *type; /* as written, NULL = the action type of this namespace */
    const char *id;
    size_t id_len;
    int line, column;
};

struct raw_action {
    const char *ns;
    const char *id;
    size_t id_len;
    struct raw_action_ref *parents;
    size_t nparents;
    bool applies;
    struct raw_name *principals;
    size_t nprincipals;
    struct raw_name *resources;
    size_t nresources;
    struct raw_type *context; /* NULL: empty record */
    int line, column;
};

struct raw_common {
    const char *ns;
    const char *name;
    struct raw_type *type;
    int line, column;
};

/* Growable arrays of the three declaration kinds; memory from the arena of
 * the schema under construction. */
struct schema_builder {
    struct policy_schema *schema; /* arena and, at the end, the result */
    const char *file;
    struct raw_entity *entities;
    size_t nentities, capentities;
    struct raw_action *actions;
    size_t nactions, capactions;
    struct raw_common *commons;
    size_t ncommons, capcommons;
    size_t decls; /* total, capped at POLICY_SCHEMA_MAX_DECLS */
};

/* Starts a builder with a new, empty schema. */
void schema_builder_init(struct schema_builder *b, const char *file);
/* Frees the builder and the schema under construction (after a failure). */
void schema_builder_abandon(struct schema_builder *b);
/* New zeroed declarations appended to the builder (NULL if the declaration
 * cap is reached; the caller reports KEEL_ELIMIT). */
struct raw_entity *schema_builder_entity(struct schema_builder *b);
struct raw_action *schema_builder_action(struct schema_builder *b);
struct raw_common *schema_builder_common(struct schema_builder *b);
/* Resolves every name and builds the schema.  On success *out receives the
 * schema (the builder is spent); on failure the builder is abandoned and
 * err holds the first problem with its position. */
int schema_build_finish(struct schema_builder *b, struct policy_schema **out,
                        struct keel_err *err);

#endif
