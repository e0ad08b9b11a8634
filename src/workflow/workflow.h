/*
 * workflow.h — Keel's workflow files and keel.yaml: loading YAML/JSON with a
 * source position on every value, validating against Keel's workflow format,
 * compiling to a step graph, templates (${input.x}, ${state.y}, ${result.z}),
 * state reducers, and the keel.yaml configuration.
 *
 * The file format is documented in docs/workflows.md and docs/config.md and
 * described for machines by src/workflow/workflow.schema.json.
 *
 * Lifecycle of a workflow:
 *
 *     file bytes --workflow_doc_parse--> json_value tree (line/column on every value)
 *                --workflow_compile----> struct workflow (step table, templates,
 *                                        compiled conditions, hash)
 *
 * workflow_load_file does all of it.  A struct workflow is immutable once
 * compiled; its version is workflow->hash (sha256 of the canonical JSON of the
 * loaded document), and the engine pins each run to (name, hash).
 *
 * Problems are reported as struct keel_err values with file, line, column, a
 * JSON Pointer into the document (err->path) and a message.  Loading keeps
 * going after a problem where it can, so every problem in a file is reported
 * at once; pass a struct workflow_diags to receive them all (the first is
 * also copied to the struct keel_err *err argument).
 */
#ifndef KEEL_WORKFLOW_H
#define KEEL_WORKFLOW_H

#include "../json/json.h"
#include "../util/util.h"

/* ---- limits ------------------------------------------------------------ */

#define WORKFLOW_MAX_FILE (4u << 20)    /* bytes in one workflow or config file     */
#define WORKFLOW_MAX_DEPTH 64           /* nesting of YAML/JSON collections          */
#define WORKFLOW_MAX_NODES 200000       /* values in one document, aliases expanded  */
#define WORKFLOW_MAX_STEPS 1000         /* steps in one workflow                     */
#define WORKFLOW_MAX_TEMPLATE_PARTS 256 /* ${...} pieces in one template string      */
#define WORKFLOW_MAX_DIAGS 100          /* problems collected before giving up       */

/* ---- diagnostics ------------------------------------------------------- */

/* Every problem found while loading one file (or several).  Zero-initialise
 * or call workflow_diags_init; free with workflow_diags_cleanup. */
struct workflow_diags {
    struct keel_err *items;
    size_t len, cap;
    bool truncated; /* more than WORKFLOW_MAX_DIAGS problems; the rest were dropped */
};

void workflow_diags_init(struct workflow_diags *d);
void workflow_diags_cleanup(struct workflow_diags *d);
/* Appends a copy of e (ignored once WORKFLOW_MAX_DIAGS are held). */
void workflow_diags_add(struct workflow_diags *d, const struct keel_err *e);

/* ---- documents: YAML and JSON with positions --------------------------- */

/* Parses YAML text (one document, YAML 1.2 core schema for plain scalars,
 * string keys only, no duplicate keys, aliases expanded under
 * WORKFLOW_MAX_NODES, depth under WORKFLOW_MAX_DEPTH) into a JSON value in
 * arena a, with line/column set on every value.  file is used in error
 * positions (may be NULL).  On failure returns KEEL_EINVAL or KEEL_ELIMIT
 * with err positioned; *out is untouched. */
int workflow_yaml_parse(struct arena *a, const char *text, size_t len, const char *file,
                        struct json_value **out, struct keel_err *err);

/* Parses a workflow or config document: a file ending in ".json" is JSON
 * (json_parse, duplicate keys refused), one ending in ".yaml"/".yml" is YAML;
 * otherwise (or with file NULL) JSON if the first non-blank byte is '{' or
 * '[', else YAML.  Same contract as workflow_yaml_parse. */
int workflow_doc_parse(struct arena *a, const char *text, size_t len, const char *file,
                       struct json_value **out, struct keel_err *err);

/* Reads path (at most WORKFLOW_MAX_FILE bytes) and parses it as above. */
int workflow_doc_load(struct arena *a, const char *path, struct json_value **out,
                      struct keel_err *err);

/* ---- templates --------------------------------------------------------- */

/* The variables a template may reference (bit set). */
#define WORKFLOW_VAR_INPUT 1u
#define WORKFLOW_VAR_STATE 2u
#define WORKFLOW_VAR_RESULT 4u

/* A compiled template: a JSON value in which strings may contain ${path}
 * references.  A string that is exactly one ${path} renders as the value it
 * names (any JSON type); other strings interpolate (non-strings as compact
 * JSON); "$${" is a literal "${".  Paths are dotted names with optional
 * [index] parts: ${state.ticket.subject}, ${input.items[0].id}.
 * Opaque; lives in the arena it was compiled into. */
struct workflow_template;

/* Compiles v (borrowed; must outlive the template) into arena a.  allowed is
 * a set of WORKFLOW_VAR_* roots; a reference to another root, or a malformed
 * ${...}, fails with KEEL_EINVAL positioned at the string (file, v's
 * line/column, and path, a JSON Pointer naming v, may be NULL). */
int workflow_template_compile(struct arena *a, const struct json_value *v, unsigned allowed,
                              const char *file, const char *path,
                              struct workflow_template **out, struct keel_err *err);

/* Renders t against vars, an object {"input":..., "state":..., "result":...}
 * (missing members count as missing values).  The result is a new value in
 * arena a (it may share unchanged subtrees of vars).  A reference to a path
 * that does not exist fails with KEEL_ENOENT naming the path. */
int workflow_render(const struct workflow_template *t, const struct json_value *vars,
                    struct arena *a, struct json_value **out, struct keel_err *err);

/* The source value the template was compiled from (borrowed). */
const struct json_value *workflow_template_source(const struct workflow_template *t);
/* Which WORKFLOW_VAR_* roots the template references. */
unsigned workflow_template_vars(const struct workflow_template *t);

/* ---- state reducers ---------------------------------------------------- */

enum workflow_reducer {
    WORKFLOW_REDUCER_REPLACE = 0, /* new value replaces the old                      */
    WORKFLOW_REDUCER_APPEND,      /* old is an array (or absent): push the new value;
                                     an array value appends each of its items      */
    WORKFLOW_REDUCER_MERGE,       /* both objects: shallow merge, new keys win      */
    WORKFLOW_REDUCER_ADD,         /* both numbers: sum (old absent counts as 0)     */
};

/* "replace", "append", "merge", "add". */
const char *workflow_reducer_name(enum workflow_reducer r);
/* Parses a reducer name; KEEL_EINVAL listing the valid names otherwise. */
int workflow_reducer_parse(const char *name, enum workflow_reducer *out, struct keel_err *err);

/* Applies reducer r: *out = r(old, value).  old may be NULL (key never set).
 * The result lives in arena a (and may share old/value).  Type mismatches
 * (merge of a non-object, add of a non-number) fail with KEEL_EINVAL. */
int workflow_reduce(enum workflow_reducer r, const struct json_value *old,
                    const struct json_value *value, struct arena *a, struct json_value **out,
                    struct keel_err *err);

/* ---- the compiled workflow --------------------------------------------- */

/* Step kinds.  Each has one row in the step-kind table in compile.c (its
 * name, allowed fields and compile function), so adding a kind is adding a
 * row there and a value here. */
enum workflow_step_kind {
    WORKFLOW_STEP_TOOL = 0, /* one MCP tool call                          */
    WORKFLOW_STEP_APPROVAL, /* a human gate                               */
    WORKFLOW_STEP_SWITCH,   /* branch on Cedar conditions                 */
    WORKFLOW_STEP_SET,      /* pure state update                          */
    WORKFLOW_STEP_SUCCEED,  /* end the run successfully                   */
    WORKFLOW_STEP_FAIL,     /* end the run as failed                      */
    WORKFLOW_STEP_AGENT,    /* an agent loop (parsed; executed later)     */
    WORKFLOW_STEP_KIND_COUNT
};

/* "tool", "approval", ... */
const char *workflow_step_kind_name(enum workflow_step_kind k);

/* A step index meaning "the run ends here successfully" (falling off the
 * end of the step list). */
#define WORKFLOW_END (-1)

enum workflow_on_timeout {
    WORKFLOW_ON_TIMEOUT_DENY = 0, /* treat as a denial (default) */
    WORKFLOW_ON_TIMEOUT_APPROVE,
    WORKFLOW_ON_TIMEOUT_FAIL, /* fail the run */
};

/* Retry policy.  attempts counts all tries (1 = no retry).  The wait before
 * try n+1 is min(initial_ms * multiplier^(n-1), max_ms). */
struct workflow_retry {
    int attempts;       /* default 1 */
    int64_t initial_ms; /* default 1000 */
    int64_t max_ms;     /* default 60000 */
    double multiplier;  /* default 2.0 */
};

struct policy_expr;
struct schema;

/* A "server/tool" name with its argument template. */
struct workflow_call {
    const char *server;                /* "helpdesk"   */
    const char *tool;                  /* "get_ticket" */
    struct workflow_template *args;    /* NULL: no arguments ({}) */
};

struct workflow_switch_case {
    const char *condition; /* Cedar expression text, as written */
    int line, column;      /* where the expression text starts in the file */
    struct policy_expr *expr; /* parsed by the policy part; evaluate with
                                 workflow_condition_eval */
    const char *target_id; /* goto */
    int target;            /* step index */
};

struct workflow_set_entry {
    const char *key;                 /* declared state key */
    struct workflow_template *value; /* rendered, then applied with key's reducer */
};

struct workflow_step {
    const char *id;
    enum workflow_step_kind kind;
    int index;
    int line, column;    /* position of the step's mapping */
    int next;            /* step index to run after this one, or WORKFLOW_END;
                            unused for switch, succeed and fail */
    const char *save;    /* state key the step's result is reduced into, or NULL */
    int64_t timeout_ms;  /* 0: no timeout (approval: see approval.timeout_ms) */
    struct workflow_retry retry;
    bool result_available; /* ${result} may be used here: every step that can run
                              just before this one is a tool, approval or agent
                              step, whose output the engine passes as "result" */
    const char *description;

    /* kind == TOOL: the call.  compensate (any step that has one) is the
     * call that undoes it; ${result} there is this step's own result. */
    struct workflow_call call;
    struct workflow_call *compensate;

    /* kind == APPROVAL */
    struct {
        const char *group;
        struct workflow_template *message; /* NULL: none */
        int64_t timeout_ms;                /* 0: waits forever */
        enum workflow_on_timeout on_timeout;
    } approval;

    /* kind == SWITCH */
    struct {
        struct workflow_switch_case *cases;
        size_t ncases;
        const char *default_id; /* NULL: falls through to the next step */
        int default_target;     /* step index or WORKFLOW_END */
    } sw;

    /* kind == SET */
    struct {
        struct workflow_set_entry *entries;
        size_t nentries;
    } set;

    /* kind == SUCCEED (output) and FAIL (message, output) */
    struct {
        struct workflow_template *message; /* NULL: none */
        struct workflow_template *output;  /* NULL: none */
    } end;

    /* kind == AGENT (docs/agents.md) */
    struct {
        const char *agent;                /* identity "team/name" */
        struct workflow_template *prompt;
        const char *instructions;         /* system prompt; NULL: the agent's own from
                                             keel.yaml */
        const char *model;                /* route or model name; NULL: the agent's, else
                                             the "default" route */
        const char *tag;                  /* routing tag; NULL: the step id */
        const char **tools;               /* "server/tool" names */
        size_t ntools;
        const char **handoff;             /* agents it may hand the task to */
        size_t nhandoff;
        const struct json_value *output;  /* JSON Schema of the reply, or NULL */
        struct schema *output_schema;     /* output compiled, or NULL */
        int max_turns;                    /* default 10 */
        int output_retries;               /* re-asks after an invalid answer; default 2 */
    } agent;
};

/* A spending limit on model calls: tokens (input + output) and/or USD.
 * Zero means no limit of that kind.  When the next model call would pass
 * it, the run parks for an approval of `approvers` to extend it. */
struct workflow_budget {
    int64_t tokens;
    double usd;
    const char *approvers; /* group; NULL: only the admin can extend */
};

struct workflow_state_key {
    const char *name;
    enum workflow_reducer reducer;
    const struct json_value *initial; /* "initial:" value, or NULL */
    const struct json_value *schema_doc; /* "schema:", or NULL */
    struct schema *schema;            /* compiled: the key's value after every
                                         reducer must validate, or NULL */
};

struct workflow {
    struct arena arena; /* owns everything below */
    const char *file;   /* as given to the loader */
    const char *name;
    const char *description;   /* or NULL */
    char hash[65];             /* version: sha256 of the canonical document */
    const struct json_value *doc;          /* the loaded document */
    const struct json_value *input_schema; /* "input:" (a JSON Schema), or NULL */
    struct schema *input;                  /* input_schema compiled, or NULL */
    const char *identity;                  /* "identity:", or NULL (no tool steps) */
    struct workflow_budget budget;         /* "budget:" of each run (zero: none) */
    struct workflow_state_key *state;
    size_t nstate;
    struct workflow_step *steps;
    size_t nsteps;
    const struct workflow_step **steps_by_id; /* steps sorted by id (find) */
};

/* Compiles a loaded document: checks it (docs/workflows.md, "Checks at load
 * time"), then validates it against Keel's workflow schema.  file names the
 * source for error positions.  On success *out is a new workflow (free with
 * workflow_free) holding a deep copy of doc.  On failure returns KEEL_EINVAL
 * (KEEL_ELIMIT, KEEL_ESCHEMA), every problem is added to diags (may be
 * NULL) and the first is copied to err.  Thread-safe. */
int workflow_compile(const struct json_value *doc, const char *file, struct workflow **out,
                     struct workflow_diags *diags, struct keel_err *err);

/* Parses text (YAML or JSON, see workflow_doc_parse) and compiles it. */
int workflow_load(const char *text, size_t len, const char *file, struct workflow **out,
                  struct workflow_diags *diags, struct keel_err *err);

/* Reads and compiles a workflow file. */
int workflow_load_file(const char *path, struct workflow **out, struct workflow_diags *diags,
                       struct keel_err *err);

void workflow_free(struct workflow *wf);

/* Validates a run's input against the workflow's input schema (no schema:
 * anything goes).  Fails with KEEL_ESCHEMA, err->path naming the offending
 * value as a JSON Pointer into input. */
int workflow_validate_input(const struct workflow *wf, const struct json_value *input,
                            struct keel_err *err);

/* Checks value, the state key's value after a reducer, against the key's
 * schema (none: always valid).  Fails with KEEL_ESCHEMA naming the key, the
 * location in the value and the problem. */
int workflow_state_check(const struct workflow_state_key *k, const struct json_value *value,
                         struct keel_err *err);

/* Lookups; return NULL when absent.  Borrowed from wf. */
const struct workflow_step *workflow_step_find(const struct workflow *wf, const char *id);
const struct workflow_state_key *workflow_state_find(const struct workflow *wf, const char *name);

/* Evaluates switch case c against vars ({input, state, result}) with the
 * policy part's expression evaluator.  *out is the boolean outcome; a
 * non-boolean result or an evaluation error fails (KEEL_EINVAL) naming the
 * step and the condition's position. */
int workflow_condition_eval(const struct workflow_switch_case *c, const struct json_value *vars,
                            struct arena *a, bool *out, struct keel_err *err);

/* Picks the step after switch step s for vars: the first case whose
 * condition holds, else the default.  *next is a step index or WORKFLOW_END. */
int workflow_switch_next(const struct workflow_step *s, const struct json_value *vars,
                         struct arena *a, int *next, struct keel_err *err);

/* Wait in ms before attempt number `attempt` (2 = first retry) under r. */
int64_t workflow_retry_delay_ms(const struct workflow_retry *r, int attempt);

/* Keel's workflow schema (JSON Schema 2020-12), NUL-terminated, static. */
extern const char workflow_schema_json[];

/* ---- keel.yaml --------------------------------------------------------- */

struct keel_config_env {
    const char *name;
    const char *value;
};

/* A tool server under "tools:". Either command (stdio) or url (HTTP). */
struct keel_config_tool_server {
    const char *name;
    const char *command; /* absolute or resolved against the config folder if it
                            contains a '/'; else looked up in PATH */
    const char *url;     /* Streamable HTTP endpoint, or NULL */
    const char **args;
    size_t nargs;
    struct keel_config_env *env;
    size_t nenv;
    const char *cwd;            /* resolved; NULL: the config folder */
    bool idempotent;            /* default for the server's tools (default false) */
    bool idempotent_set;        /* `idempotent: true|false` was written */
    const struct json_value *idempotent_tools; /* {tool: bool} overrides, or NULL */
    int line, column;
};

/* An agent identity under "agents:" ("team/name"). */
struct keel_config_agent {
    const char *name;
    const char *description;
    const char *instructions; /* its system prompt, or NULL */
    const char *model;        /* route or model name, or NULL */
    const char **tools; /* "server/tool" allowed, or NULL when not restricted */
    size_t ntools;
    struct workflow_budget budget; /* per run of this agent (zero: none) */
    int line, column;
};

/* A human approver under "humans:". */
struct keel_config_human {
    const char *name;
    const char **groups;
    size_t ngroups;
    const char *token_sha256; /* 64 lowercase hex, or NULL */
    const char *token_env;    /* environment variable holding the token, or NULL */
    int line, column;
};

struct keel_config {
    struct arena arena; /* owns everything below */
    const char *file;
    const char *dir;          /* folder of the config file (absolute) */
    const char *data_dir;     /* default "<dir>/.keel" */
    const char *listen;       /* default "127.0.0.1:7400" */
    const char *store_url;    /* default "sqlite:<data_dir>/keel.db" */
    const char *policies_dir; /* default "<dir>/policies" */
    const char *workflows_dir;/* default "<dir>/workflows" */
    struct keel_config_tool_server *tools;
    size_t ntools;
    struct keel_config_agent *agents;
    size_t nagents;
    struct keel_config_human *humans;
    size_t nhumans;
    const struct json_value *models; /* raw "models:" value, or NULL */
    const struct json_value *doc;
};

/* Loads keel.yaml (or .json).  Relative paths are resolved against the
 * config file's folder.  Same error contract as workflow_compile.  Free the
 * result with keel_config_free. */
int keel_config_load(const char *path, struct keel_config **out, struct workflow_diags *diags,
                     struct keel_err *err);
/* Same from text; file is the path it came from (its folder resolves
 * relative paths). */
int keel_config_parse(const char *text, size_t len, const char *file, struct keel_config **out,
                      struct workflow_diags *diags, struct keel_err *err);
void keel_config_free(struct keel_config *cfg);

const struct keel_config_tool_server *keel_config_tool_server(const struct keel_config *cfg,
                                                              const char *name);
const struct keel_config_agent *keel_config_agent(const struct keel_config *cfg,
                                                  const char *name);
const struct keel_config_human *keel_config_human(const struct keel_config *cfg,
                                                  const char *name);
/* Is server/tool declared idempotent (per-tool override, else the server's
 * default)?  False for unknown servers. */
bool keel_config_tool_idempotent(const struct keel_config *cfg, const char *server,
                                 const char *tool);
/* What keel.yaml declares for server/tool: 1 idempotent, 0 not, -1 nothing
 * written (then the tool's own idempotentHint annotation decides).  An
 * explicit declaration always wins over the tool's annotations. */
int keel_config_tool_idempotence(const struct keel_config *cfg, const char *server,
                                 const char *tool);
/* Does any human belong to group? */
bool keel_config_group_exists(const struct keel_config *cfg, const char *group);

/* Cross-checks a workflow against a config: tool servers of tool steps and
 * compensations are declared, the identity and agent steps' agents are
 * declared, approval groups have at least one member.  Problems go to diags
 * and the first to err; returns KEEL_EINVAL if there were any. */
int workflow_check_config(const struct workflow *wf, const struct keel_config *cfg,
                          struct workflow_diags *diags, struct keel_err *err);

#endif
