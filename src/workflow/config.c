/*
 * config.c — keel.yaml: where Keel keeps its data, where it listens, and
 * what it knows about: tool servers, agent identities, human approvers,
 * policy and workflow folders, and model settings (kept raw for now).
 * Reference: docs/config.md.
 *
 * The file is read with the same loader as workflows (yaml.c), so every
 * problem is reported at file:line:column with a JSON Pointer.  Relative
 * paths (data_dir, policies, workflows, a tool server's cwd, and a command
 * containing '/') are resolved against the folder holding the config file,
 * so `keel -c some/dir/keel.yaml` behaves the same from any working folder.
 *
 * Invariants: a returned config is complete (defaults filled in) and owns
 * every string in its arena; nothing is returned if any problem was found.
 */
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct kc {
    struct keel_config *cfg;
    struct arena *a;
    const char *file;
    struct workflow_diags *diags;
    struct keel_err first;
    int nerr;
};

static void problem(struct kc *c, const struct json_value *v, const char *path,
                    const char *fmt, ...) KEEL_PRINTF(4, 5);
static void problem(struct kc *c, const struct json_value *v, const char *path, const char *fmt,
                    ...)
{
    struct keel_err e;
    keel_err_clear(&e);
    e.code = KEEL_EINVAL;
    snprintf(e.file, sizeof e.file, "%s", c->file ? c->file : "");
    e.line = v ? v->line : 0;
    e.column = v ? v->column : 0;
    snprintf(e.path, sizeof e.path, "%s", path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    if (c->nerr++ == 0) c->first = e;
    workflow_diags_add(c->diags, &e);
}

static const char *str(struct kc *c, const struct json_value *v, const char *path,
                       const char *what)
{
    if (!v) return NULL;
    if (!json_is(v, JSON_STRING) || strlen(v->u.s.str) != v->len || v->len == 0) {
        problem(c, v, path, "%s must be a non-empty string", what);
        return NULL;
    }
    return v->u.s.str;
}

/* Resolves p against the config folder unless it is absolute. */
static const char *resolve(struct kc *c, const char *p)
{
    if (!p || p[0] == '/') return p;
    if (!strcmp(p, ".")) return c->cfg->dir;
    if (p[0] == '.' && p[1] == '/') p += 2;
    return arena_printf(c->a, "%s/%s", c->cfg->dir, p);
}

static void fields(struct kc *c, const struct json_value *obj, const char *path,
                   const char *const *allowed, const char *what)
{
    for (uint32_t i = 0; i < obj->len; i++) {
        bool ok = false;
        for (size_t j = 0; allowed[j]; j++)
            if (!strcmp(allowed[j], obj->u.members[i].key)) ok = true;
        if (ok) continue;
        char list[400] = "";
        size_t n = 0;
        for (size_t j = 0; allowed[j] && n < sizeof list; j++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", j ? ", " : "", allowed[j]);
        char p[KEEL_ERR_PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", path, obj->u.members[i].key);
        problem(c, obj->u.members[i].value, p, "unknown field '%s' in %s; expected one of: %s",
                obj->u.members[i].key, what, list);
    }
}

static void strings(struct kc *c, const struct json_value *v, const char *path,
                    const char ***out, size_t *n)
{
    if (!json_is(v, JSON_ARRAY)) {
        problem(c, v, path, "must be a list of strings");
        return;
    }
    *out = arena_zalloc(c->a, (v->len ? v->len : 1) * sizeof **out);
    *n = v->len;
    for (uint32_t i = 0; i < v->len; i++) {
        char p[KEEL_ERR_PATH_MAX];
        snprintf(p, sizeof p, "%s/%u", path, i);
        (*out)[i] = str(c, v->u.items[i], p, "item");
    }
}

static bool plain_name(const char *s, bool slash)
{
    if (!*s || strlen(s) > 128) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.' || (slash && *s == '/')))
            return false;
    return true;
}

static void tool_servers(struct kc *c, const struct json_value *v)
{
    static const char *const allowed[] = {"command", "url", "args", "env", "cwd", "idempotent",
                                          "description", NULL};
    struct keel_config *cfg = c->cfg;
    if (!json_is(v, JSON_OBJECT)) {
        problem(c, v, "/tools", "tools must be a mapping of server names to {command, args, ...}");
        return;
    }
    cfg->ntools = v->len;
    cfg->tools = arena_zalloc(c->a, (v->len ? v->len : 1) * sizeof *cfg->tools);
    for (uint32_t i = 0; i < v->len; i++) {
        const struct json_member *m = &v->u.members[i];
        struct keel_config_tool_server *t = &cfg->tools[i];
        char sp[KEEL_ERR_PATH_MAX], p[KEEL_ERR_PATH_MAX];
        snprintf(sp, sizeof sp, "/tools/%s", m->key);
        t->name = m->key;
        t->line = m->value->line;
        t->column = m->value->column;
        if (!plain_name(m->key, false) || strchr(m->key, '/'))
            problem(c, m->value, sp, "tool server name '%s' must be letters, digits, '.', '_', '-'",
                    m->key);
        if (!json_is(m->value, JSON_OBJECT)) {
            problem(c, m->value, sp, "tool server '%s' must be a mapping {command, args, env, cwd}",
                    m->key);
            continue;
        }
        const struct json_value *o = m->value;
        fields(c, o, sp, allowed, "a tool server");
        snprintf(p, sizeof p, "%s/command", sp);
        t->command = str(c, json_get(o, "command"), p, "command");
        if (t->command && strchr(t->command, '/')) t->command = resolve(c, t->command);
        snprintf(p, sizeof p, "%s/url", sp);
        t->url = str(c, json_get(o, "url"), p, "url");
        if (t->url && strncmp(t->url, "http://", 7) && strncmp(t->url, "https://", 8))
            problem(c, json_get(o, "url"), p, "url must start with http:// or https://");
        if (!json_get(o, "command") == !json_get(o, "url"))
            problem(c, o, sp,
                    "tool server '%s' needs exactly one of command: (a program speaking MCP over "
                    "stdio) or url: (a Streamable HTTP endpoint)",
                    m->key);
        const struct json_value *args = json_get(o, "args");
        if (args) {
            snprintf(p, sizeof p, "%s/args", sp);
            strings(c, args, p, &t->args, &t->nargs);
        }
        const struct json_value *env = json_get(o, "env");
        if (env) {
            snprintf(p, sizeof p, "%s/env", sp);
            if (!json_is(env, JSON_OBJECT)) {
                problem(c, env, p, "env must be a mapping of variable names to strings");
            } else {
                t->nenv = env->len;
                t->env = arena_zalloc(c->a, (env->len ? env->len : 1) * sizeof *t->env);
                for (uint32_t k = 0; k < env->len; k++) {
                    const struct json_member *e = &env->u.members[k];
                    snprintf(p, sizeof p, "%s/env/%s", sp, e->key);
                    t->env[k].name = e->key;
                    if (!*e->key || strchr(e->key, '='))
                        problem(c, e->value, p, "environment variable name '%s' is not valid",
                                e->key);
                    if (!json_is(e->value, JSON_STRING))
                        problem(c, e->value, p, "env values must be strings; quote it");
                    else
                        t->env[k].value = e->value->u.s.str;
                }
            }
        }
        snprintf(p, sizeof p, "%s/cwd", sp);
        t->cwd = resolve(c, str(c, json_get(o, "cwd"), p, "cwd"));
        const struct json_value *idem = json_get(o, "idempotent");
        snprintf(p, sizeof p, "%s/idempotent", sp);
        if (json_is_bool(idem)) {
            t->idempotent = idem->type == JSON_TRUE;
            t->idempotent_set = true;
        } else if (json_is(idem, JSON_OBJECT)) {
            for (uint32_t k = 0; k < idem->len; k++)
                if (!json_is_bool(idem->u.members[k].value))
                    problem(c, idem->u.members[k].value, p,
                            "idempotent.%s must be true or false", idem->u.members[k].key);
            t->idempotent_tools = idem;
        } else if (idem) {
            problem(c, idem, p, "idempotent must be true, false, or a mapping {tool: true|false}");
        }
    }
}

static void agents(struct kc *c, const struct json_value *v)
{
    static const char *const allowed[] = {"description", "tools", "instructions", "model",
                                          "budget", NULL};
    struct keel_config *cfg = c->cfg;
    if (!json_is(v, JSON_OBJECT)) {
        problem(c, v, "/agents", "agents must be a mapping of identities (team/name) to settings");
        return;
    }
    cfg->nagents = v->len;
    cfg->agents = arena_zalloc(c->a, (v->len ? v->len : 1) * sizeof *cfg->agents);
    for (uint32_t i = 0; i < v->len; i++) {
        const struct json_member *m = &v->u.members[i];
        struct keel_config_agent *ag = &cfg->agents[i];
        char sp[KEEL_ERR_PATH_MAX], p[KEEL_ERR_PATH_MAX];
        struct buf b;
        buf_init(&b);
        buf_puts(&b, "/agents");
        json_pointer_append(&b, m->key, m->key_len);
        snprintf(sp, sizeof sp, "%s", b.data);
        buf_cleanup(&b);
        ag->name = m->key;
        ag->line = m->value->line;
        ag->column = m->value->column;
        const char *slash = strchr(m->key, '/');
        if (!slash || slash == m->key || !slash[1] || strchr(slash + 1, '/') ||
            !plain_name(m->key, true))
            problem(c, m->value, sp, "agent identity '%s' must be written team/name", m->key);
        if (json_is(m->value, JSON_NULL)) continue;
        if (!json_is(m->value, JSON_OBJECT)) {
            problem(c, m->value, sp, "agent '%s' must be a mapping {description, tools}", m->key);
            continue;
        }
        fields(c, m->value, sp, allowed, "an agent");
        snprintf(p, sizeof p, "%s/description", sp);
        ag->description = str(c, json_get(m->value, "description"), p, "description");
        const struct json_value *tools = json_get(m->value, "tools");
        if (tools) {
            snprintf(p, sizeof p, "%s/tools", sp);
            strings(c, tools, p, &ag->tools, &ag->ntools);
        }
        snprintf(p, sizeof p, "%s/instructions", sp);
        ag->instructions = str(c, json_get(m->value, "instructions"), p, "instructions");
        snprintf(p, sizeof p, "%s/model", sp);
        ag->model = str(c, json_get(m->value, "model"), p, "model");
        const struct json_value *bu = json_get(m->value, "budget");
        if (bu) {
            struct keel_err e;
            keel_err_clear(&e);
            snprintf(p, sizeof p, "%s/budget", sp);
            if (workflow_budget_parse(bu, c->file, p, &ag->budget, &e)) {
                if (c->nerr++ == 0) c->first = e;
                workflow_diags_add(c->diags, &e);
            }
        }
    }
}

static void humans(struct kc *c, const struct json_value *v)
{
    static const char *const allowed[] = {"groups", "token_sha256", "token_env", NULL};
    struct keel_config *cfg = c->cfg;
    if (!json_is(v, JSON_OBJECT)) {
        problem(c, v, "/humans", "humans must be a mapping of names to {groups, token_sha256}");
        return;
    }
    cfg->nhumans = v->len;
    cfg->humans = arena_zalloc(c->a, (v->len ? v->len : 1) * sizeof *cfg->humans);
    for (uint32_t i = 0; i < v->len; i++) {
        const struct json_member *m = &v->u.members[i];
        struct keel_config_human *h = &cfg->humans[i];
        char sp[KEEL_ERR_PATH_MAX], p[KEEL_ERR_PATH_MAX];
        snprintf(sp, sizeof sp, "/humans/%s", m->key);
        h->name = m->key;
        h->line = m->value->line;
        h->column = m->value->column;
        if (!plain_name(m->key, false))
            problem(c, m->value, sp, "human name '%s' must be letters, digits, '.', '_', '-'",
                    m->key);
        if (!json_is(m->value, JSON_OBJECT)) {
            problem(c, m->value, sp, "human '%s' must be a mapping {groups, token_sha256}", m->key);
            continue;
        }
        fields(c, m->value, sp, allowed, "a human");
        const struct json_value *g = json_get(m->value, "groups");
        snprintf(p, sizeof p, "%s/groups", sp);
        if (g) strings(c, g, p, &h->groups, &h->ngroups);
        snprintf(p, sizeof p, "%s/token_sha256", sp);
        const struct json_value *th = json_get(m->value, "token_sha256");
        if ((h->token_sha256 = str(c, th, p, "token_sha256"))) {
            bool hex = strlen(h->token_sha256) == 64;
            for (const char *s = h->token_sha256; hex && *s; s++)
                hex = (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f');
            if (!hex)
                problem(c, th, p,
                        "token_sha256 must be 64 lowercase hex digits (sha256 of the token, e.g. "
                        "from `printf %%s TOKEN | sha256sum`)");
        }
        snprintf(p, sizeof p, "%s/token_env", sp);
        h->token_env = str(c, json_get(m->value, "token_env"), p, "token_env");
        if (!h->token_sha256 && !h->token_env)
            problem(c, m->value, sp,
                    "human '%s' needs token_sha256: or token_env: so Keel can check their token",
                    m->key);
    }
}

static void top(struct kc *c, const struct json_value *doc)
{
    static const char *const allowed[] = {"data_dir", "listen", "store", "tools", "agents",
                                          "humans", "approvers", "policies", "workflows",
                                          "models", NULL};
    struct keel_config *cfg = c->cfg;
    fields(c, doc, "", allowed, "keel.yaml");
    const struct json_value *v;
    cfg->data_dir = resolve(c, str(c, json_get(doc, "data_dir"), "/data_dir", "data_dir"));
    if (!cfg->data_dir) cfg->data_dir = arena_printf(c->a, "%s/.keel", cfg->dir);
    cfg->listen = str(c, json_get(doc, "listen"), "/listen", "listen");
    if (cfg->listen && !strrchr(cfg->listen, ':'))
        problem(c, json_get(doc, "listen"), "/listen",
                "listen must be host:port, e.g. 127.0.0.1:7400");
    if (!cfg->listen) cfg->listen = "127.0.0.1:7400";
    cfg->store_url = str(c, json_get(doc, "store"), "/store", "store");
    if (cfg->store_url && strncmp(cfg->store_url, "sqlite:", 7) &&
        strncmp(cfg->store_url, "postgres://", 11) && strncmp(cfg->store_url, "postgresql://", 13))
        problem(c, json_get(doc, "store"), "/store",
                "store must be sqlite:<path> or postgres://user@host/db");
    if (cfg->store_url && !strncmp(cfg->store_url, "sqlite:", 7) && cfg->store_url[7] &&
        cfg->store_url[7] != '/' && strcmp(cfg->store_url + 7, ":memory:"))
        cfg->store_url = arena_printf(c->a, "sqlite:%s", resolve(c, cfg->store_url + 7));
    if (!cfg->store_url) cfg->store_url = arena_printf(c->a, "sqlite:%s/keel.db", cfg->data_dir);
    cfg->policies_dir = resolve(c, str(c, json_get(doc, "policies"), "/policies", "policies"));
    if (!cfg->policies_dir) cfg->policies_dir = arena_printf(c->a, "%s/policies", cfg->dir);
    cfg->workflows_dir = resolve(c, str(c, json_get(doc, "workflows"), "/workflows", "workflows"));
    if (!cfg->workflows_dir) cfg->workflows_dir = arena_printf(c->a, "%s/workflows", cfg->dir);
    if ((v = json_get(doc, "tools"))) tool_servers(c, v);
    if ((v = json_get(doc, "agents"))) agents(c, v);
    const struct json_value *h = json_get(doc, "humans"), *ap = json_get(doc, "approvers");
    if (h && ap) problem(c, ap, "/approvers", "use humans: or approvers: (the same thing), not both");
    if (h || ap) humans(c, h ? h : ap);
    cfg->models = json_get(doc, "models");
}

/* Returns a new config; free with keel_config_free (see workflow.h). */
int keel_config_parse(const char *text, size_t len, const char *file, struct keel_config **out,
                      struct workflow_diags *diags, struct keel_err *err)
{
    struct keel_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return keel_fail(err, KEEL_ENOMEM, "out of memory");
    arena_init(&cfg->arena);
    struct kc c = {.cfg = cfg, .a = &cfg->arena, .diags = diags};
    keel_err_clear(&c.first);
    cfg->file = c.file = arena_strdup(&cfg->arena, file ? file : "keel.yaml");
    /* The folder of the file, made absolute. */
    char cwd[PATH_MAX];
    const char *slash = strrchr(cfg->file, '/');
    const char *dir = slash ? arena_strndup(&cfg->arena, cfg->file, (size_t)(slash - cfg->file))
                            : ".";
    if (slash == cfg->file) dir = "/";
    if (dir[0] != '/') {
        if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
        dir = strcmp(dir, ".") ? arena_printf(&cfg->arena, "%s/%s", cwd, dir)
                               : arena_strdup(&cfg->arena, cwd);
    }
    cfg->dir = dir;
    struct json_value *doc = NULL;
    struct keel_err e;
    keel_err_clear(&e);
    if (workflow_doc_parse(&cfg->arena, text, len, cfg->file, &doc, &e)) {
        c.first = e;
        c.nerr = 1;
        workflow_diags_add(diags, &e);
    } else if (!json_is(doc, JSON_OBJECT)) {
        problem(&c, doc, "", "keel.yaml must be a mapping (tools:, agents:, humans:, ...)");
    } else {
        cfg->doc = doc;
        top(&c, doc);
    }
    if (c.nerr) {
        if (err) *err = c.first;
        int code = c.first.code ? c.first.code : KEEL_EINVAL;
        keel_config_free(cfg);
        return code;
    }
    *out = cfg;
    return 0;
}

/* Returns a new config (see workflow.h). */
int keel_config_load(const char *path, struct keel_config **out, struct workflow_diags *diags,
                     struct keel_err *err)
{
    struct buf b;
    buf_init(&b);
    struct keel_err e;
    keel_err_clear(&e);
    int rc = keel_read_file(path, WORKFLOW_MAX_FILE, &b, &e);
    if (rc) {
        if (!e.file[0]) snprintf(e.file, sizeof e.file, "%s", path);
        workflow_diags_add(diags, &e);
        if (err) *err = e;
    } else {
        rc = keel_config_parse(b.data ? b.data : "", b.len, path, out, diags, err);
    }
    buf_cleanup(&b);
    return rc;
}

/* Frees cfg and its arena; NULL is a no-op. */
void keel_config_free(struct keel_config *cfg)
{
    if (!cfg) return;
    arena_cleanup(&cfg->arena);
    free(cfg);
}

/* Borrowed from cfg. */
const struct keel_config_tool_server *keel_config_tool_server(const struct keel_config *cfg,
                                                              const char *name)
{
    for (size_t i = 0; i < cfg->ntools; i++)
        if (!strcmp(cfg->tools[i].name, name)) return &cfg->tools[i];
    return NULL;
}

/* Borrowed from cfg. */
const struct keel_config_agent *keel_config_agent(const struct keel_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nagents; i++)
        if (!strcmp(cfg->agents[i].name, name)) return &cfg->agents[i];
    return NULL;
}

/* Borrowed from cfg. */
const struct keel_config_human *keel_config_human(const struct keel_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nhumans; i++)
        if (!strcmp(cfg->humans[i].name, name)) return &cfg->humans[i];
    return NULL;
}

/* Pure lookup; nothing allocated. */
bool keel_config_tool_idempotent(const struct keel_config *cfg, const char *server,
                                 const char *tool)
{
    const struct keel_config_tool_server *t = keel_config_tool_server(cfg, server);
    if (!t) return false;
    const struct json_value *v = t->idempotent_tools ? json_get(t->idempotent_tools, tool) : NULL;
    if (json_is_bool(v)) return v->type == JSON_TRUE;
    if (t->idempotent_tools) {
        const struct json_value *d = json_get(t->idempotent_tools, "*");
        if (json_is_bool(d)) return d->type == JSON_TRUE;
    }
    return t->idempotent;
}

/* Pure lookup; nothing allocated. */
int keel_config_tool_idempotence(const struct keel_config *cfg, const char *server,
                                 const char *tool)
{
    const struct keel_config_tool_server *t = keel_config_tool_server(cfg, server);
    if (!t) return -1;
    if (t->idempotent_tools) {
        const struct json_value *v = json_get(t->idempotent_tools, tool);
        if (!json_is_bool(v)) v = json_get(t->idempotent_tools, "*");
        if (json_is_bool(v)) return v->type == JSON_TRUE;
        return -1;
    }
    return t->idempotent_set ? (int)t->idempotent : -1;
}

/* Pure lookup; nothing allocated. */
bool keel_config_group_exists(const struct keel_config *cfg, const char *group)
{
    for (size_t i = 0; i < cfg->nhumans; i++)
        for (size_t g = 0; g < cfg->humans[i].ngroups; g++)
            if (cfg->humans[i].groups[g] && !strcmp(cfg->humans[i].groups[g], group)) return true;
    return false;
}

/* ---- workflow against config ------------------------------------------------------ */

static void xproblem(const struct workflow *wf, struct workflow_diags *diags,
                     struct keel_err *first, int *n, const struct json_value *v, const char *path,
                     const char *fmt, ...) KEEL_PRINTF(7, 8);
static void xproblem(const struct workflow *wf, struct workflow_diags *diags,
                     struct keel_err *first, int *n, const struct json_value *v, const char *path,
                     const char *fmt, ...)
{
    struct keel_err e;
    keel_err_clear(&e);
    e.code = KEEL_EINVAL;
    snprintf(e.file, sizeof e.file, "%s", wf->file ? wf->file : "");
    e.line = v ? v->line : 0;
    e.column = v ? v->column : 0;
    snprintf(e.path, sizeof e.path, "%s", path);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    if ((*n)++ == 0 && first) *first = e;
    workflow_diags_add(diags, &e);
}

/* Does the agent's tools: list hold server/tool? */
static bool agent_allows(const struct keel_config_agent *ag, const char *server, const char *tool)
{
    size_t sl = strlen(server);
    for (size_t i = 0; i < ag->ntools; i++) {
        const char *t = ag->tools[i];
        if (t && !strncmp(t, server, sl) && t[sl] == '/' && !strcmp(t + sl + 1, tool)) return true;
    }
    return false;
}

/* Problems go to diags/err (see workflow.h). */
int workflow_check_config(const struct workflow *wf, const struct keel_config *cfg,
                          struct workflow_diags *diags, struct keel_err *err)
{
    int n = 0;
    const struct json_value *steps = json_get(wf->doc, "steps");
    if (wf->identity && !keel_config_agent(cfg, wf->identity))
        xproblem(wf, diags, err, &n, json_get(wf->doc, "identity"), "/identity",
                 "identity '%s' is not declared under agents: in %s", wf->identity, cfg->file);
    for (size_t i = 0; i < wf->nsteps; i++) {
        const struct workflow_step *s = &wf->steps[i];
        const struct json_value *o = steps ? steps->u.items[i] : NULL;
        char p[KEEL_ERR_PATH_MAX];
        const struct workflow_call *calls[2] = {s->kind == WORKFLOW_STEP_TOOL ? &s->call : NULL,
                                                s->compensate};
        for (size_t k = 0; k < 2; k++) {
            if (!calls[k] || !calls[k]->server) continue;
            const struct json_value *where =
                k ? json_get(json_get(o, "compensate"), "tool") : json_get(o, "tool");
            snprintf(p, sizeof p, "/steps/%zu/%s", i, k ? "compensate/tool" : "tool");
            if (!keel_config_tool_server(cfg, calls[k]->server)) {
                xproblem(wf, diags, err, &n, where, p,
                         "tool server '%s' is not declared under tools: in %s", calls[k]->server,
                         cfg->file);
                continue;
            }
            const struct keel_config_agent *id =
                wf->identity ? keel_config_agent(cfg, wf->identity) : NULL;
            if (id && id->tools && !agent_allows(id, calls[k]->server, calls[k]->tool))
                xproblem(wf, diags, err, &n, where, p,
                         "tool '%s/%s' is not in the tools: list of identity '%s' in %s; add it "
                         "there or remove the list",
                         calls[k]->server, calls[k]->tool, id->name, cfg->file);
        }
        if (s->kind == WORKFLOW_STEP_APPROVAL && s->approval.group &&
            !keel_config_group_exists(cfg, s->approval.group)) {
            snprintf(p, sizeof p, "/steps/%zu/approval/group", i);
            xproblem(wf, diags, err, &n, json_get(json_get(o, "approval"), "group"), p,
                     "no human in %s belongs to group '%s', so nobody could decide this approval",
                     cfg->file, s->approval.group);
        }
        if (s->kind == WORKFLOW_STEP_AGENT && s->agent.agent &&
            !keel_config_agent(cfg, s->agent.agent)) {
            snprintf(p, sizeof p, "/steps/%zu/agent", i);
            xproblem(wf, diags, err, &n, json_get(o, "agent"), p,
                     "agent '%s' is not declared under agents: in %s", s->agent.agent, cfg->file);
        }
        for (size_t t = 0; s->kind == WORKFLOW_STEP_AGENT && t < s->agent.ntools; t++) {
            const char *name = s->agent.tools[t];
            const char *slash = name ? strchr(name, '/') : NULL;
            if (!slash) continue;
            char server[256];
            snprintf(server, sizeof server, "%.*s", (int)(slash - name), name);
            if (!keel_config_tool_server(cfg, server)) {
                snprintf(p, sizeof p, "/steps/%zu/tools/%zu", i, t);
                xproblem(wf, diags, err, &n, json_get(o, "tools")->u.items[t], p,
                         "tool server '%s' is not declared under tools: in %s", server,
                         cfg->file);
                continue;
            }
            const struct keel_config_agent *ag =
                s->agent.agent ? keel_config_agent(cfg, s->agent.agent) : NULL;
            if (ag && ag->tools && !agent_allows(ag, server, slash + 1)) {
                snprintf(p, sizeof p, "/steps/%zu/tools/%zu", i, t);
                xproblem(wf, diags, err, &n, json_get(o, "tools")->u.items[t], p,
                         "tool '%s' is not in the tools: list of agent '%s' in %s; add it there "
                         "or do not offer it",
                         name, ag->name, cfg->file);
            }
        }
        if (s->kind == WORKFLOW_STEP_AGENT && s->agent.model &&
            !json_get(json_get(cfg->models, "models"), s->agent.model) &&
            !json_get(json_get(cfg->models, "routes"), s->agent.model)) {
            snprintf(p, sizeof p, "/steps/%zu/model", i);
            xproblem(wf, diags, err, &n, json_get(o, "model"), p,
                     "model '%s' is neither a model nor a route under models: in %s",
                     s->agent.model, cfg->file);
        }
        for (size_t h = 0; s->kind == WORKFLOW_STEP_AGENT && h < s->agent.nhandoff; h++) {
            const char *to = s->agent.handoff[h];
            if (to && !keel_config_agent(cfg, to)) {
                snprintf(p, sizeof p, "/steps/%zu/handoff/%zu", i, h);
                xproblem(wf, diags, err, &n, json_get(o, "handoff")->u.items[h], p,
                         "handoff target '%s' is not declared under agents: in %s", to,
                         cfg->file);
            }
        }
    }
    if (wf->budget.approvers && !keel_config_group_exists(cfg, wf->budget.approvers))
        xproblem(wf, diags, err, &n, json_get(json_get(wf->doc, "budget"), "approvers"),
                 "/budget/approvers",
                 "no human in %s belongs to group '%s', so nobody could extend the budget",
                 cfg->file, wf->budget.approvers);
    return n ? KEEL_EINVAL : 0;
}
