/*
 * identity.c — the identity set: a flat array of identities (agents, tool
 * servers, human approvers, the admin, the system) with token hashes.
 *
 * Invariants:
 *   - Entry 0 is always the system identity; it never has a token.
 *   - (kind, name) is unique within a set.
 *   - No clear-text token is kept in memory longer than one call: the admin
 *     token is read, hashed and wiped.
 *   - A set is built once (at start or reload) and then only read, so
 *     concurrent readers need no lock; a reload builds a new set.
 */
#include "identity.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct identity_set {
    struct identity *items;
    size_t len, cap;
};

static const char *const kind_names[] = {
    [IDENTITY_SYSTEM] = "system", [IDENTITY_ADMIN] = "admin", [IDENTITY_HUMAN] = "human",
    [IDENTITY_AGENT] = "agent",   [IDENTITY_TOOL_SERVER] = "tool_server",
};

const char *identity_kind_name(enum identity_kind kind)
{
    if ((unsigned)kind >= KEEL_ARRAY_LEN(kind_names)) return "unknown";
    return kind_names[kind];
}

struct identity_set *identity_set_new(void)
{
    struct identity_set *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    struct identity sys = {.kind = IDENTITY_SYSTEM};
    snprintf(sys.name, sizeof sys.name, "system");
    if (identity_add(s, &sys, NULL) != 0) {
        identity_set_free(s);
        return NULL;
    }
    return s;
}

void identity_set_free(struct identity_set *s)
{
    if (!s) return;
    free(s->items);
    free(s);
}

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= IDENTITY_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= ' ' || c == ':' || c == '"' || c == '\\' || c >= 0x7f) return false;
    }
    return true;
}

int identity_add(struct identity_set *s, const struct identity *id, struct keel_err *err)
{
    if (!valid_name(id->name))
        return keel_fail(err, KEEL_EINVAL,
                         "identity name '%.64s' is empty, too long or holds spaces, quotes or "
                         "':'; use letters, digits, '-', '_', '/' and '.'",
                         id->name);
    if (identity_find(s, id->kind, id->name))
        return keel_fail(err, KEEL_EEXIST, "%s '%s' is declared twice; remove one declaration",
                         identity_kind_name(id->kind), id->name);
    if (s->len >= IDENTITY_MAX)
        return keel_fail(err, KEEL_ELIMIT, "more than %d identities declared", IDENTITY_MAX);
    if (s->len == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        struct identity *items = realloc(s->items, cap * sizeof *items);
        if (!items) return keel_fail(err, KEEL_ENOMEM, "out of memory adding an identity");
        s->items = items;
        s->cap = cap;
    }
    s->items[s->len++] = *id;
    return 0;
}

int identity_parse_token_hash(const char *s, uint8_t out[32], struct keel_err *err)
{
    static const char prefix[] = "sha256:";
    if (!s || strncmp(s, prefix, sizeof prefix - 1) != 0 || strlen(s) != sizeof prefix - 1 + 64)
        return keel_fail(err, KEEL_EINVAL,
                         "token hash must be \"sha256:\" followed by 64 hex digits (make one with "
                         "`printf %%s TOKEN | sha256sum`)");
    const char *h = s + sizeof prefix - 1;
    for (int i = 0; i < 32; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = h[2 * i + k];
            int d;
            if (c >= '0' && c <= '9') d = c - '0';
            else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
            else
                return keel_fail(err, KEEL_EINVAL, "token hash holds '%c', which is not a hex digit",
                                 c);
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

int identity_add_human(struct identity_set *s, const char *name, const char *token_hash,
                       const char *const *groups, int ngroups, struct keel_err *err)
{
    struct identity id = {.kind = IDENTITY_HUMAN};
    if (strlen(name) >= sizeof id.name)
        return keel_fail(err, KEEL_EINVAL, "approver name '%.64s...' is too long", name);
    snprintf(id.name, sizeof id.name, "%s", name);
    if (ngroups > IDENTITY_GROUPS_MAX)
        return keel_fail(err, KEEL_ELIMIT, "approver '%s' is in %d groups; the limit is %d", name,
                         ngroups, IDENTITY_GROUPS_MAX);
    for (int i = 0; i < ngroups; i++) {
        if (!groups[i][0] || strlen(groups[i]) >= IDENTITY_GROUP_MAX)
            return keel_fail(err, KEEL_EINVAL, "approver '%s' has an empty or too long group name",
                             name);
        snprintf(id.groups[i], sizeof id.groups[i], "%s", groups[i]);
    }
    id.ngroups = ngroups;
    if (token_hash) {
        int rc = identity_parse_token_hash(token_hash, id.token_hash, err);
        if (rc) {
            keel_err_prefix(err, "approver '%s'", name);
            return rc;
        }
        id.has_token = true;
    }
    return identity_add(s, &id, err);
}

static int add_named(struct identity_set *s, enum identity_kind kind, const char *name,
                     struct keel_err *err)
{
    struct identity id = {.kind = kind};
    if (strlen(name) >= sizeof id.name)
        return keel_fail(err, KEEL_EINVAL, "%s name '%.64s...' is too long",
                         identity_kind_name(kind), name);
    snprintf(id.name, sizeof id.name, "%s", name);
    return identity_add(s, &id, err);
}

int identity_add_agent(struct identity_set *s, const char *name, struct keel_err *err)
{
    return add_named(s, IDENTITY_AGENT, name, err);
}

int identity_add_tool_server(struct identity_set *s, const char *name, struct keel_err *err)
{
    return add_named(s, IDENTITY_TOOL_SERVER, name, err);
}

int identity_admin_token_read(const char *data_dir, char *out, size_t cap, struct keel_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/admin.token", data_dir);
    struct buf b;
    buf_init(&b);
    int rc = keel_read_file(path, 4096, &b, err);
    if (rc) {
        buf_cleanup(&b);
        return rc;
    }
    size_t n = b.len;
    while (n && (b.data[n - 1] == '\n' || b.data[n - 1] == '\r' || b.data[n - 1] == ' ')) n--;
    if (n == 0 || n >= cap) {
        buf_cleanup(&b);
        return keel_fail(err, KEEL_ECORRUPT,
                         "%s is empty or too long; delete it and restart `keel serve` to make a "
                         "new one",
                         path);
    }
    memcpy(out, b.data, n);
    out[n] = '\0';
    memset(b.data, 0, b.len);
    buf_cleanup(&b);
    return 0;
}

int identity_admin_token_init(struct identity_set *s, const char *data_dir, struct keel_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/admin.token", data_dir);
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT)
            return keel_fail(err, KEEL_EIO, "cannot stat %s: %s", path, strerror(errno));
        uint8_t raw[32];
        char hex[65 + 1];
        keel_random(raw, sizeof raw);
        keel_hex(raw, sizeof raw, hex);
        hex[64] = '\n';
        int rc = keel_write_file_atomic(path, hex, 65, 0600, err);
        memset(raw, 0, sizeof raw);
        memset(hex, 0, sizeof hex);
        if (rc) return rc;
        keel_log(KEEL_LOG_INFO, "created the admin token in %s", path);
    } else if (st.st_mode & 077) {
        return keel_fail(err, KEEL_EDENIED,
                         "%s is readable by other users (mode %03o); run `chmod 600 %s`", path,
                         (unsigned)(st.st_mode & 0777), path);
    }
    char token[128];
    int rc = identity_admin_token_read(data_dir, token, sizeof token, err);
    if (rc) return rc;
    struct identity id = {.kind = IDENTITY_ADMIN, .has_token = true};
    snprintf(id.name, sizeof id.name, "admin");
    keel_sha256(token, strlen(token), id.token_hash);
    memset(token, 0, sizeof token);
    return identity_add(s, &id, err);
}

const struct identity *identity_authenticate(const struct identity_set *s, const char *token,
                                             size_t len)
{
    if (!s || !token || len == 0 || len > 4096) return NULL;
    uint8_t h[32];
    keel_sha256(token, len, h);
    /* Visit every entry whatever matches, so the time taken says nothing
     * about which identity (if any) holds the token. */
    const struct identity *found = NULL;
    for (size_t i = 0; i < s->len; i++) {
        bool eq = keel_secure_equal(h, s->items[i].token_hash, 32);
        if (eq && s->items[i].has_token && !found) found = &s->items[i];
    }
    return found;
}

const struct identity *identity_find(const struct identity_set *s, enum identity_kind kind,
                                     const char *name)
{
    for (size_t i = 0; s && i < s->len; i++)
        if (s->items[i].kind == kind && !strcmp(s->items[i].name, name)) return &s->items[i];
    return NULL;
}

const struct identity *identity_system(const struct identity_set *s)
{
    return s && s->len ? &s->items[0] : NULL;
}

bool identity_in_group(const struct identity *id, const char *group)
{
    if (!id || !group) return false;
    for (int i = 0; i < id->ngroups; i++)
        if (!strcmp(id->groups[i], group)) return true;
    return false;
}

void identity_actor(const struct identity *id, char *out, size_t cap)
{
    if (!id) {
        snprintf(out, cap, "system");
        return;
    }
    switch (id->kind) {
    case IDENTITY_SYSTEM: snprintf(out, cap, "system"); break;
    case IDENTITY_ADMIN: snprintf(out, cap, "admin"); break;
    default: snprintf(out, cap, "%s:%s", identity_kind_name(id->kind), id->name); break;
    }
}
