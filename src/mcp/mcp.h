/*
 * mcp.h — Keel as a client of MCP tool servers (Model Context Protocol,
 * revision 2025-11-25): JSON-RPC 2.0 messages, the stdio transport, one
 * client per tool server, and a pool that names tools "server/tool".
 *
 * This is the only header other parts include from mcp/.  docs/mcp.md
 * describes the design; the short version:
 *
 *   - A client spawns its server (own process group, pipes for stdin/stdout,
 *     stderr to a log), performs the initialize handshake, and then many
 *     threads may call tools on it at once: each request gets an id and a
 *     waiter, and one reader thread hands responses to waiters by id.
 *   - A server that dies (EOF, exit, broken pipe) fails every pending call
 *     with KEEL_EIO ("server 'x' exited with status N"); the next call
 *     restarts it.  Whether to call again is the engine's retry policy.
 *   - A malformed message from the server fails the pending calls with
 *     KEEL_EPROTO and resets the connection (the server is killed and
 *     restarted on the next call).
 *   - Idempotency: every tools/call may carry a key, sent to the server in
 *     params._meta["io.keel/idempotency-key"] (MCP_META_IDEMPOTENCY_KEY).
 *     A tool that honours it performs the effect once per key.
 *
 * Ownership: configs are copied by the functions that take them; results
 * and tool descriptions are copied into the caller's arena, so they stay
 * valid after the server restarts or the client is freed.
 */
#ifndef KEEL_MCP_H
#define KEEL_MCP_H

#include "../json/json.h"
#include "../util/util.h"

/* The protocol revision Keel asks for in initialize. */
#define MCP_PROTOCOL_VERSION "2025-11-25"
/* The _meta key that carries the idempotency key of a tools/call.  A valid
 * _meta name under MCP's rules (reverse-DNS prefix "io.keel/"). */
#define MCP_META_IDEMPOTENCY_KEY "io.keel/idempotency-key"
/* Largest JSON-RPC message accepted from or sent to a server (one line). */
#define MCP_MAX_MESSAGE (16u * 1024u * 1024u)
/* Caps on what tools/list may return (pages followed, tools kept). */
#define MCP_MAX_LIST_PAGES 256
#define MCP_MAX_TOOLS 4096
/* Caps on a config (argv and env entries, per-tool overrides). */
#define MCP_MAX_ARGS 256
#define MCP_MAX_ENV 256

/* ---- JSON-RPC 2.0 (jsonrpc.c) ------------------------------------------ */

/* Standard JSON-RPC error codes. */
#define MCP_RPC_PARSE_ERROR (-32700)
#define MCP_RPC_INVALID_REQUEST (-32600)
#define MCP_RPC_METHOD_NOT_FOUND (-32601)
#define MCP_RPC_INVALID_PARAMS (-32602)
#define MCP_RPC_INTERNAL_ERROR (-32603)

enum mcp_rpc_kind {
    MCP_RPC_REQUEST = 1,  /* method + id (+ params)        */
    MCP_RPC_NOTIFICATION, /* method, no id (+ params)      */
    MCP_RPC_RESULT,       /* id + result                   */
    MCP_RPC_ERROR,        /* id (maybe null) + error       */
};

/* One decoded message.  All pointers point into the arena given to
 * mcp_rpc_decode. */
struct mcp_rpc_msg {
    enum mcp_rpc_kind kind;
    struct json_value *id;     /* string or integer; JSON null for an error
                                  answering an unreadable request; NULL for
                                  notifications */
    const char *method;        /* requests and notifications, else NULL */
    struct json_value *params; /* object or array, or NULL when absent */
    struct json_value *result; /* results: any value (never NULL) */
    int64_t error_code;        /* errors */
    const char *error_message; /* errors (never NULL; may be "") */
    struct json_value *error_data; /* errors: optional data, or NULL */
    struct json_value *root;   /* the whole message */
};

/* Decodes one message (one line of the stdio transport; surrounding
 * whitespace allowed).  Batches (arrays) are rejected, as MCP 2025-06-18+
 * dropped them.  Fails with KEEL_EINVAL naming what is wrong (err->line and
 * column are set for JSON syntax errors) or KEEL_ELIMIT above
 * MCP_MAX_MESSAGE.  On failure *out is untouched. */
int mcp_rpc_decode(struct arena *a, const char *text, size_t len, struct mcp_rpc_msg *out,
                   struct keel_err *err);

/* Writers: append one compact message (no newline; the transport adds it).
 * id is a string or integer value; params/result/data may be NULL (params
 * and data are then omitted; a NULL result is written as {}). */
void mcp_rpc_write_request(struct buf *out, int64_t id, const char *method,
                           const struct json_value *params);
void mcp_rpc_write_notification(struct buf *out, const char *method,
                                const struct json_value *params);
void mcp_rpc_write_result(struct buf *out, const struct json_value *id,
                          const struct json_value *result);
void mcp_rpc_write_error(struct buf *out, const struct json_value *id, int64_t code,
                         const char *message, const struct json_value *data);

/* ---- tool descriptions ------------------------------------------------- */

/* One tool as tools/list describes it.  Hints follow the MCP defaults when
 * the server does not annotate: read_only false, destructive true,
 * idempotent false, open_world true.  `idempotent` is the effective flag:
 * the config's override for this tool or server if any, else the hint. */
struct mcp_tool {
    const char *server;               /* server name from the config */
    const char *name;                 /* the tool's name on its server */
    const char *title;                /* or NULL */
    const char *description;          /* or NULL */
    struct json_value *input_schema;  /* JSON Schema object (never NULL) */
    struct json_value *output_schema; /* JSON Schema object, or NULL */
    struct json_value *annotations;   /* raw annotations object, or NULL */
    bool read_only_hint;
    bool destructive_hint;
    bool idempotent_hint;
    bool open_world_hint;
    bool idempotent; /* effective: override, else idempotent_hint */
    struct json_value *raw; /* the whole tool object from the server */
};

/* ---- server configuration ---------------------------------------------- */

/* Tri-state for overrides: leave to the server's annotations, or force. */
enum mcp_override { MCP_FROM_ANNOTATIONS = 0, MCP_FORCE_YES = 1, MCP_FORCE_NO = 2 };

struct mcp_tool_config {
    const char *tool;              /* tool name on this server */
    enum mcp_override idempotent;  /* overrides annotations for this tool */
    int64_t timeout_ms;            /* per-call timeout for this tool; 0 = server's */
};

/* One tool server, as keel.yaml declares it.  Strings and arrays are
 * borrowed by the caller; functions that keep a config copy it. */
struct mcp_server_config {
    const char *name;              /* required; [A-Za-z0-9_.-]{1,64} */
    const char *command;           /* required; searched in PATH if no '/' */
    const char *const *args;       /* arguments after the command */
    size_t nargs;                  /* <= MCP_MAX_ARGS */
    const char *const *env;        /* "KEY=VALUE" entries added to the child */
    size_t nenv;                   /* <= MCP_MAX_ENV */
    bool inherit_env;              /* child starts from Keel's environment;
                                      otherwise only PATH, HOME, LANG, LC_ALL,
                                      TZ, TMPDIR are passed, plus env above */
    const char *cwd;               /* working directory, or NULL = Keel's */
    const char *stderr_log;        /* file the child's stderr is appended to;
                                      NULL = Keel's log, lines prefixed
                                      "mcp <name>: " at info level */
    enum mcp_override idempotent;  /* server-wide override of idempotentHint */
    const struct mcp_tool_config *tools; /* per-tool overrides */
    size_t ntools;                 /* <= MCP_MAX_TOOLS */
    int64_t start_timeout_ms;      /* spawn + initialize + tools/list; 0 = 30000 */
    int64_t call_timeout_ms;       /* default per call; 0 = 60000 */
    int64_t shutdown_timeout_ms;   /* grace after closing stdin, then after
                                      SIGTERM, before SIGKILL; 0 = 2000 */
};

/* ---- one client per server --------------------------------------------- */

struct mcp_client; /* opaque */

/* Statistics, for tests and `keel` status output. */
struct mcp_client_stats {
    int64_t starts;       /* processes spawned that completed initialize */
    int64_t exits;        /* processes that exited or were killed */
    int64_t calls;        /* tools/call requests sent */
    int64_t timeouts;     /* calls that timed out (and were cancelled) */
    int pid;              /* current child pid, or 0 when not running */
    const char *protocol_version; /* negotiated; static string or "" */
};

/* Copies cfg, spawns the server and completes the handshake (initialize,
 * notifications/initialized, tools/list).  On success *out is a new client;
 * free it with mcp_client_free().  Fails with KEEL_EINVAL (bad config),
 * KEEL_ENOENT (command not found), KEEL_EIO (spawn failed or the server
 * exited), KEEL_EPROTO (handshake refused or malformed), KEEL_ETIMEOUT.
 * Ignores SIGPIPE in the calling process if it was at its default (writes
 * to a dead server must fail with EPIPE, not kill Keel); children get the
 * default back. */
int mcp_client_start(const struct mcp_server_config *cfg, struct mcp_client **out,
                     struct keel_err *err);

/* Like mcp_client_start but does not spawn: the first call starts the
 * server.  Never fails except for a bad config (KEEL_EINVAL).  Adjusts
 * SIGPIPE as mcp_client_start does. */
int mcp_client_new(const struct mcp_server_config *cfg, struct mcp_client **out,
                   struct keel_err *err);

/* Stops the server (close stdin, wait, SIGTERM, wait, SIGKILL to its
 * process group), fails pending calls with KEEL_ESTATE and frees the client.
 * No call may be in progress or start after this begins.  NULL is a no-op. */
void mcp_client_free(struct mcp_client *c);

/* The server name from the config (borrowed, valid until free). */
const char *mcp_client_name(const struct mcp_client *c);

/* Result of one tools/call.  All values live in the caller's arena. */
struct mcp_call_result {
    struct json_value *content;    /* array of content blocks (never NULL) */
    struct json_value *structured; /* structuredContent, or NULL */
    bool is_error;                 /* the tool reported failure (isError) */
    struct json_value *meta;       /* result _meta, or NULL */
    struct json_value *raw;        /* the whole result object */
};

/* Calls tool `tool` with `args` (an object, or NULL for none).  If
 * idempotency_key is non-NULL it is sent in params._meta (see
 * MCP_META_IDEMPOTENCY_KEY).  timeout_ms <= 0 uses the tool's or server's
 * configured timeout.  Starts (or restarts) the server if it is not running.
 * Thread-safe: any number of threads may call at once.
 *
 * Returns 0 with *out filled when the server answered with a result —
 * including results with isError true (a tool-level failure the model may
 * see).  Fails with:
 *   KEEL_EPROTO   the server answered with a JSON-RPC error (message has
 *                 the code and text) or sent something malformed
 *   KEEL_EIO      the server died before answering ("server 'x' exited with
 *                 status N"); the next call restarts it
 *   KEEL_ETIMEOUT no answer in time; notifications/cancelled was sent
 *   KEEL_ELIMIT   the request would exceed MCP_MAX_MESSAGE
 *   KEEL_ESTATE   the client is being freed
 * plus the start errors of mcp_client_start when a (re)start fails.  On
 * failure *out is untouched. */
int mcp_client_call_tool(struct mcp_client *c, const char *tool, const struct json_value *args,
                         const char *idempotency_key, int64_t timeout_ms, struct arena *a,
                         struct mcp_call_result *out, struct keel_err *err);

/* The server's tools (all pages of tools/list, fetched at start and again
 * after notifications/tools/list_changed), copied into arena a.  Starts the
 * server if needed.  *tools is an array of *count tools. */
int mcp_client_list_tools(struct mcp_client *c, struct arena *a, struct mcp_tool **tools,
                          size_t *count, struct keel_err *err);

/* One tool by name, copied into arena a.  KEEL_ENOENT if the server has no
 * such tool (the message lists what it has). */
int mcp_client_tool(struct mcp_client *c, const char *name, struct arena *a,
                    struct mcp_tool *out, struct keel_err *err);

/* Sends ping and waits for the empty result. */
int mcp_client_ping(struct mcp_client *c, int64_t timeout_ms, struct keel_err *err);

/* Fills *out (protocol_version is borrowed from the client). */
void mcp_client_stats(struct mcp_client *c, struct mcp_client_stats *out);

/* ---- pool: all servers of a config, tools named "server/tool" ----------- */

struct mcp_pool; /* opaque */

/* Returns a new empty pool; free with mcp_pool_free(). */
struct mcp_pool *mcp_pool_new(void);
/* Stops every server and frees the pool.  NULL is a no-op. */
void mcp_pool_free(struct mcp_pool *p);

/* Adds a server (config copied; not started until first use).  KEEL_EEXIST
 * if the name is taken, KEEL_EINVAL for a bad config. */
int mcp_pool_add(struct mcp_pool *p, const struct mcp_server_config *cfg, struct keel_err *err);

/* The client for a server name, starting nothing (borrowed, valid until
 * mcp_pool_free).  KEEL_ENOENT if unknown. */
int mcp_pool_client(struct mcp_pool *p, const char *server, struct mcp_client **out,
                    struct keel_err *err);

/* Splits "server/tool" at the first '/'.  Fails with KEEL_EINVAL if either
 * half is empty or there is no '/'.  server and tool point into a (copies). */
int mcp_split_name(struct arena *a, const char *qualified, const char **server,
                   const char **tool, struct keel_err *err);

/* mcp_client_call_tool on the server named by "server/tool". */
int mcp_pool_call(struct mcp_pool *p, const char *qualified, const struct json_value *args,
                  const char *idempotency_key, int64_t timeout_ms, struct arena *a,
                  struct mcp_call_result *out, struct keel_err *err);

/* The description of "server/tool" (starts the server if needed),
 * copied into arena a: schemas for validation, hints, effective
 * idempotency.  KEEL_ENOENT for an unknown server or tool. */
int mcp_pool_tool(struct mcp_pool *p, const char *qualified, struct arena *a,
                  struct mcp_tool *out, struct keel_err *err);

/* ---- validation against the tool's JSON Schemas (validate.c) ------------ */

/* A tool's compiled inputSchema and outputSchema (JSON Schema 2020-12, as
 * MCP 2025-11-25 specifies; a schema without $schema is read as 2020-12).
 * Read-only once compiled: many threads may validate with one at once. */
struct mcp_validator; /* opaque */

/* Compiles t's schemas.  On success *out is new; free with
 * mcp_validator_free().  Fails with KEEL_ESCHEMA when a schema is itself
 * invalid (the message names the tool and the schema location). */
int mcp_tool_compile(const struct mcp_tool *t, struct mcp_validator **out, struct keel_err *err);
void mcp_validator_free(struct mcp_validator *v);

/* Checks arguments (NULL means {}) against the inputSchema.  Fails with
 * KEEL_ESCHEMA: err->path is the JSON Pointer of the first bad value in the
 * arguments and err->msg lists up to three problems. */
int mcp_tool_validate_args(const struct mcp_validator *v, const struct json_value *args,
                           struct keel_err *err);

/* Checks a result against the outputSchema, if the tool has one: then a
 * successful result must carry structuredContent that conforms.  Results
 * with isError true are not checked (errors need not match the schema).
 * Fails with KEEL_ESCHEMA as above. */
int mcp_tool_validate_result(const struct mcp_validator *v, const struct mcp_call_result *r,
                             struct keel_err *err);

/* The validator of "server/tool", compiled on first use and cached in the
 * pool (borrowed; valid until mcp_pool_free).  Starts the server if needed. */
int mcp_pool_validator(struct mcp_pool *p, const char *qualified,
                       const struct mcp_validator **out, struct keel_err *err);

/* ---- MCP objects (types.c) ---------------------------------------------- */

/* Decodes one Tool object (an entry of tools/list) into *out, pointing into
 * raw (nothing is copied; server is stored as given).  out->idempotent is
 * the hint; the client applies config overrides.  KEEL_EPROTO names what is
 * wrong; on failure *out is untouched. */
int mcp_tool_decode(struct json_value *raw, const char *server, struct mcp_tool *out,
                    struct keel_err *err);

/* Decodes a CallToolResult object into *out, pointing into result.
 * KEEL_EPROTO names what is wrong; on failure *out is untouched. */
int mcp_call_result_decode(struct json_value *result, struct mcp_call_result *out,
                           struct keel_err *err);

/* The text of every "text" content block of a result, joined with "\n",
 * in arena a ("" if none).  A NUL character in a text becomes U+FFFD, so
 * the C string holds all of it. */
const char *mcp_result_text(struct arena *a, const struct mcp_call_result *r);

#endif
