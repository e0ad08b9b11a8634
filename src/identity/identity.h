/*
 * identity.h — who acts in Keel (first layer): agents and tool servers
 * declared in keel.yaml, human approvers who authenticate with their own API
 * tokens, the administrator (token created at first start in the data dir),
 * and the system itself (the engine acting on its own: timers, resume).
 *
 * Every journal event records an actor string made by identity_actor():
 * "system", "admin", "human:alice", "agent:support/triage".
 *
 * Tokens are never stored in clear: an identity holds the SHA-256 of its
 * token, and identity_authenticate hashes the presented token and compares
 * it with every stored hash in constant time.
 */
#ifndef KEEL_IDENTITY_H
#define KEEL_IDENTITY_H

#include "../util/util.h"

enum identity_kind {
    IDENTITY_SYSTEM = 0,
    IDENTITY_ADMIN,
    IDENTITY_HUMAN,
    IDENTITY_AGENT,
    IDENTITY_TOOL_SERVER,
};

#define IDENTITY_NAME_MAX 128
#define IDENTITY_GROUP_MAX 64
#define IDENTITY_GROUPS_MAX 16
#define IDENTITY_MAX 4096 /* identities in one set */

struct identity {
    enum identity_kind kind;
    char name[IDENTITY_NAME_MAX]; /* "alice", "support/triage", "helpdesk" */
    char groups[IDENTITY_GROUPS_MAX][IDENTITY_GROUP_MAX];
    int ngroups;
    bool has_token;
    uint8_t token_hash[32]; /* SHA-256 of the token, when has_token */
};

struct identity_set;

/* Returns a new, empty set holding only the system identity; free with
 * identity_set_free(). */
struct identity_set *identity_set_new(void);
void identity_set_free(struct identity_set *s);

/* Copies id into the set.  Fails with KEEL_EEXIST if an identity of the same
 * kind and name is there, KEEL_EINVAL for an empty or oversized name,
 * KEEL_ELIMIT past IDENTITY_MAX. */
int identity_add(struct identity_set *s, const struct identity *id, struct keel_err *err);

/* Declares a human approver.  token_hash is "sha256:<64 hex>" (what
 * keel.yaml stores) or NULL for none; groups is an array of ngroups names. */
int identity_add_human(struct identity_set *s, const char *name, const char *token_hash,
                       const char *const *groups, int ngroups, struct keel_err *err);
/* Declares an agent ("team/name") or a tool server ("helpdesk"). */
int identity_add_agent(struct identity_set *s, const char *name, struct keel_err *err);
int identity_add_tool_server(struct identity_set *s, const char *name, struct keel_err *err);

/* Makes sure DATA/admin.token exists (creating it with 32 random bytes as hex,
 * mode 0600, at first start), and registers the admin identity with its
 * hash.  A token file readable by group or others is refused (KEEL_EDENIED)
 * with a message saying to chmod 600 it. */
int identity_admin_token_init(struct identity_set *s, const char *data_dir,
                              struct keel_err *err);

/* Reads DATA/admin.token into out (cap >= 128), without the newline. */
int identity_admin_token_read(const char *data_dir, char *out, size_t cap,
                              struct keel_err *err);

/* Returns the identity whose token is token (len bytes), or NULL.  Takes the
 * same time whichever identity matches.  Borrowed: valid while s lives. */
const struct identity *identity_authenticate(const struct identity_set *s, const char *token,
                                             size_t len);

/* Returns the identity of that kind and name, or NULL (borrowed). */
const struct identity *identity_find(const struct identity_set *s, enum identity_kind kind,
                                     const char *name);
/* The system identity of the set (borrowed). */
const struct identity *identity_system(const struct identity_set *s);

bool identity_in_group(const struct identity *id, const char *group);

/* "system", "admin", "human", "agent", "tool_server". */
const char *identity_kind_name(enum identity_kind kind);

/* Writes the actor string of id ("human:alice", "system", ...) into out. */
void identity_actor(const struct identity *id, char *out, size_t cap);

/* Parses "sha256:<64 lowercase or uppercase hex>" into out. */
int identity_parse_token_hash(const char *s, uint8_t out[32], struct keel_err *err);

#endif
