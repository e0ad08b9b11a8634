/*
 * engine.c — the run engine: start/stop, workflow versions, policies,
 * tools, reload, and the operations the API calls.  The runnable queue, the
 * kept run contexts, the worker pool and the timer thread are in worker.c.
 *
 * Run lifecycle (statuses as stored; every arrow is journaled first):
 *
 *                 engine_run_start
 *                        │ run.started
 *                        ▼
 *     ┌──────────── running ◄───────────────┐
 *     │  step.* / tool.call.* / state.*     │ run.resumed
 *     │                 │                   │ (check_wait: decision, timer due)
 *     │                 ├── run.waiting ──► waiting
 *     │                 │  (approval requested, retry backoff)
 *     │                 ├── run.needs_reconcile ──► needs_reconcile
 *     │                 │  (open call to a non-idempotent tool on resume)
 *     ▼                 ▼
 *  succeeded          failed                  cancelled ◄── any non-final
 *
 *  transition                      function (file)
 *  ----------------------------    -------------------------------------
 *  (new) -> running                engine_run_start (engine.c)
 *  running -> running (one step)   engine_step -> step_table[kind] (step.c)
 *  running -> waiting (approval)   exec_approval, policy_gate (@approval)
 *                                  -> park_for_approval (step.c)
 *  running -> waiting (backoff)    step_failed -> park_timer (step.c)
 *  waiting -> running              check_wait -> resume (step.c)
 *  running -> succeeded            exec_succeed / end of steps -> engine_finish
 *  running -> failed               fail_run -> engine_finish (step.c), also
 *                                  for a policy denial (policy_gate)
 *  running -> needs_reconcile      exec_tool (open call, non-idempotent)
 *  running|waiting -> cancelled    engine_run_cancel (request) ->
 *                                  engine_step (journals run.cancelled)
 *  needs_reconcile -> cancelled    engine_run_cancel (journals directly: no
 *                                  worker drives a parked-for-human run)
 *
 * Threads and invariants:
 *   - A run is driven by at most one worker at a time (the `busy` map);
 *     only that worker appends to its journal, so the run's journal_writer
 *     (kept with its context between transitions, worker.c) never races.
 *     Requests from outside (cancel, approval decisions, timers) only record
 *     their fact in the store and enqueue the run; the worker journals it.
 *   - A worker performs one transition (one step) and puts the run back at
 *     the end of the queue once the transition's events are durable, so
 *     many runs share the pool fairly and a step never starts from events
 *     that could still be lost.
 *   - A waiting run is a row, not a thread: it leaves the queue and is
 *     enqueued again by a decision, a cancel, or the timer thread.
 *   - The timer thread sleeps on a condition variable until the earliest
 *     due timer (pthread_cond_timedwait on the monotonic clock) or until
 *     someone sets a new timer and signals it.  No polling.
 *   - After a crash every unfinished run is enqueued at start; the fold of
 *     its journal (fold.c) decides what to do, so nothing finished is done
 *     again.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char *const status_names[] = {
    [RUN_RUNNING] = "running",     [RUN_WAITING] = "waiting",
    [RUN_SUCCEEDED] = "succeeded", [RUN_FAILED] = "failed",
    [RUN_CANCELLED] = "cancelled", [RUN_NEEDS_RECONCILE] = "needs_reconcile",
};

const char *engine_status_name(enum engine_run_status s)
{
    if ((unsigned)s >= KEEL_ARRAY_LEN(status_names)) return "unknown";
    return status_names[s];
}

/* ---- workflows --------------------------------------------------------- */

static int compile_input_schema(struct engine_workflow *ew, struct keel_err *err)
{
    if (!ew->wf->input_schema) return 0;
    int rc = schema_compile(NULL, ew->wf->input_schema, NULL, NULL, &ew->input_schema, err);
    if (rc) keel_err_prefix(err, "workflow '%s' input schema", ew->wf->name);
    return rc;
}

static void workflows_free(struct engine_workflow *w)
{
    while (w) {
        struct engine_workflow *next = w->next;
        schema_free(w->input_schema);
        workflow_free(w->wf);
        free(w);
        w = next;
    }
}

static int store_version(struct engine *e, const struct workflow *wf, struct keel_err *err)
{
    struct buf b;
    buf_init(&b);
    json_write(&b, wf->doc, JSON_WRITE_CANONICAL, NULL);
    int rc = store_workflow_put(e->store, wf->name, wf->hash, b.data, 0, err);
    buf_cleanup(&b);
    return rc;
}

static bool is_workflow_file(const char *name)
{
    size_t n = strlen(name);
    static const char *const exts[] = {".yaml", ".yml", ".json"};
    if (name[0] == '.') return false;
    for (size_t i = 0; i < KEEL_ARRAY_LEN(exts); i++) {
        size_t k = strlen(exts[i]);
        if (n > k && !strcmp(name + n - k, exts[i])) return true;
    }
    return false;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Loads every workflow file of dir into a new list (all or nothing). */
static int load_workflows(struct engine *e, const struct keel_config *cfg, const char *dir,
                          struct engine_workflow **out, struct keel_err *err)
{
    *out = NULL;
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) return 0; /* no workflows folder: no workflows */
    char *names[1024];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < KEEL_ARRAY_LEN(names))
        if (is_workflow_file(de->d_name)) names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    struct engine_workflow *list = NULL;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct workflow *wf;
        rc = workflow_load_file(path, &wf, NULL, err);
        if (rc) break;
        if (cfg && (rc = workflow_check_config(wf, cfg, NULL, err))) {
            workflow_free(wf);
            break;
        }
        for (struct engine_workflow *x = list; x; x = x->next)
            if (!strcmp(x->wf->name, wf->name)) {
                rc = keel_fail(err, KEEL_EEXIST,
                               "%s: workflow name '%s' is also used by %s; names must be unique",
                               path, wf->name, x->wf->file);
                break;
            }
        if (rc) {
            workflow_free(wf);
            break;
        }
        struct engine_workflow *ew = calloc(1, sizeof *ew);
        ew->wf = wf;
        ew->current = true;
        ew->next = list;
        list = ew;
        if ((rc = compile_input_schema(ew, err))) break;
        if (e->store && (rc = store_version(e, wf, err))) break;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    if (rc) {
        workflows_free(list);
        return rc;
    }
    *out = list;
    return 0;
}

struct engine_workflow *engine_workflow_current(struct engine *e, const char *name)
{
    pthread_mutex_lock(&e->lock);
    struct engine_workflow *found = NULL;
    for (struct engine_workflow *w = e->workflows; w; w = w->next)
        if (w->current && !strcmp(w->wf->name, name)) found = w;
    pthread_mutex_unlock(&e->lock);
    return found;
}

int engine_workflow_get(struct engine *e, const char *name, const char *hash,
                        struct engine_workflow **out, struct keel_err *err)
{
    pthread_mutex_lock(&e->lock);
    for (struct engine_workflow *w = e->workflows; w; w = w->next)
        if (!strcmp(w->wf->name, name) && !strcmp(w->wf->hash, hash)) {
            *out = w;
            pthread_mutex_unlock(&e->lock);
            return 0;
        }
    pthread_mutex_unlock(&e->lock);
    /* A run pinned to a version no longer in the folder: the store keeps
     * every version it ever ran. */
    struct arena a;
    arena_init(&a);
    const char *body;
    int rc = store_workflow_get(e->store, name, hash, &a, &body, NULL, err);
    struct workflow *wf = NULL;
    if (!rc) rc = workflow_load(body, strlen(body), name, &wf, NULL, err);
    arena_cleanup(&a);
    if (rc) return rc;
    struct engine_workflow *ew = calloc(1, sizeof *ew);
    ew->wf = wf;
    compile_input_schema(ew, NULL);
    pthread_mutex_lock(&e->lock);
    ew->next = e->workflows;
    e->workflows = ew;
    pthread_mutex_unlock(&e->lock);
    *out = ew;
    return 0;
}

/* ---- policies ---------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && !strcmp(s + n - m, suffix);
}

/* Strict validation of set against the folder's schema (one file named
 * *.cedarschema or *.cedarschema.json), when there is one.  A set with any
 * problem is refused, naming the first and counting the rest. */
static int validate_policies(const char *dir, const char *schema_name, const struct policy_set *set,
                             struct keel_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, schema_name);
    struct policy_schema *schema;
    int rc = policy_schema_load(path, &schema, err);
    if (rc) return rc;
    struct policy_diag_list diags;
    policy_diag_list_init(&diags);
    int problems = policy_validate(schema, set, &diags);
    if (problems > 0) {
        for (size_t i = 0; i < diags.len; i++) {
            const struct policy_diag *d = &diags.items[i];
            if (d->warning) continue;
            rc = keel_fail_at(err, KEEL_EINVAL, d->file, d->line, d->column,
                              "policy %s does not validate against %s: %s%s", d->policy_id, path,
                              d->message,
                              problems > 1 ? " (and more problems; run keel policy check)" : "");
            break;
        }
        if (!rc) rc = keel_fail(err, KEEL_EINVAL, "policies do not validate against %s", path);
    } else if (problems < 0) {
        rc = keel_fail(err, problems, "cannot validate policies against %s", path);
    }
    policy_diag_list_cleanup(&diags);
    policy_schema_free(schema);
    return rc;
}

/* Loads every *.cedar file of dir (sorted) into a new set and validates it
 * against the folder's schema if it has one; no folder means an empty set,
 * which denies every call (deny by default). */
static int load_policies(const char *dir, struct policy_set **out, struct keel_err *err)
{
    struct policy_set *set = policy_set_new(POLICY_PARSE_ID_ANNOTATIONS);
    if (!set) return keel_fail(err, KEEL_ENOMEM, "out of memory loading policies");
    DIR *d = dir ? opendir(dir) : NULL;
    char *names[1024];
    size_t n = 0;
    char *schema_name = NULL;
    int rc = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) && n < KEEL_ARRAY_LEN(names)) {
        if (de->d_name[0] == '.') continue;
        if (ends_with(de->d_name, ".cedar")) {
            names[n++] = strdup(de->d_name);
        } else if (ends_with(de->d_name, ".cedarschema") ||
                   ends_with(de->d_name, ".cedarschema.json")) {
            if (schema_name && !rc)
                rc = keel_fail(err, KEEL_EINVAL, "%s has two Cedar schemas (%s and %s); keep one",
                               dir, schema_name, de->d_name);
            if (!schema_name) schema_name = strdup(de->d_name);
        }
    }
    if (d) closedir(d);
    qsort(names, n, sizeof names[0], cmp_str);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        struct buf text;
        buf_init(&text);
        if (!rc) rc = keel_read_file(path, POLICY_MAX_TEXT, &text, err);
        if (!rc) rc = policy_set_add_text(set, text.data ? text.data : "", text.len, path, err);
        buf_cleanup(&text);
        free(names[i]);
    }
    if (!rc && schema_name) rc = validate_policies(dir, schema_name, set, err);
    free(schema_name);
    /* @approval_timeout("72h") on an @approval permit: how long the human
     * has (docs/engine.md); a bad duration refuses the set. */
    for (size_t i = 0; !rc && i < policy_set_count(set); i++) {
        const struct policy *p = policy_set_at(set, i);
        const char *t = policy_annotation(p, "approval_timeout");
        int64_t ms;
        if (t && (keel_parse_duration(t, &ms, err) || ms <= 0)) {
            rc = keel_fail(err, KEEL_EINVAL,
                           "policy %s: @approval_timeout(\"%s\") must be a positive duration "
                           "like \"30m\", \"72h\" or \"7d\"",
                           p->id, t);
        }
    }
    if (rc) {
        policy_set_free(set);
        return rc;
    }
    *out = set;
    return 0;
}

struct policy_set *engine_policies(struct engine *e, char hash[65])
{
    pthread_mutex_lock(&e->lock);
    struct policy_set *p = e->policies;
    if (hash) memcpy(hash, e->policy_hash, 65);
    pthread_mutex_unlock(&e->lock);
    return p;
}

struct model_gateway *engine_models(struct engine *e)
{
    pthread_mutex_lock(&e->lock);
    struct model_gateway *g = e->models;
    pthread_mutex_unlock(&e->lock);
    return g;
}

/* Builds the model gateway from keel.yaml and checks that every agent step
 * of every loaded workflow names a declared model or route. */
static int load_models(const struct keel_config *cfg, struct engine_workflow *wfs,
                       struct model_gateway **out, struct keel_err *err)
{
    struct model_gateway *g = NULL;
    int rc = model_gateway_new(cfg ? cfg->models : NULL, cfg ? cfg->file : NULL,
                               cfg ? cfg->dir : NULL, &g, err);
    if (rc) return rc;
    for (struct engine_workflow *w = wfs; w; w = w->next) {
        const struct workflow *wf = w->wf;
        for (size_t i = 0; i < wf->nsteps; i++) {
            const struct workflow_step *s = &wf->steps[i];
            if (s->kind != WORKFLOW_STEP_AGENT) continue;
            const struct keel_config_agent *ag =
                cfg && s->agent.agent ? keel_config_agent(cfg, s->agent.agent) : NULL;
            const char *m = s->agent.model ? s->agent.model : ag ? ag->model : NULL;
            if (!m || model_gateway_has(g, m)) continue;
            model_gateway_free(g);
            keel_fail(err, KEEL_EINVAL,
                      "agent step '%s' uses model '%s', which is neither a model nor a route "
                      "under models: in %s; declare it or fix the name",
                      s->id, m, cfg && cfg->file ? cfg->file : "keel.yaml");
            snprintf(err->file, sizeof err->file, "%s", wf->file ? wf->file : "");
            err->line = s->line;
            err->column = s->column;
            snprintf(err->path, sizeof err->path, "/steps/%zu/model", i);
            return KEEL_EINVAL;
        }
    }
    *out = g;
    return 0;
}

/* ---- tools ------------------------------------------------------------- */

int engine_tool_info(struct engine *e, const char *qualified, struct engine_tool_schemas **out,
                     struct keel_err *err)
{
    size_t n = strlen(qualified);
    pthread_mutex_lock(&e->lock);
    struct engine_tool_schemas *ts = strmap_get(&e->tools, qualified, n);
    pthread_mutex_unlock(&e->lock);
    if (ts) {
        *out = ts;
        return 0;
    }
    struct arena a;
    arena_init(&a);
    struct mcp_tool t;
    int rc = mcp_pool_tool(e->pool, qualified, &a, &t, err);
    if (rc) {
        arena_cleanup(&a);
        return rc;
    }
    ts = calloc(1, sizeof *ts);
    rc = schema_compile(NULL, t.input_schema, NULL, NULL, &ts->input, err);
    if (!rc && t.output_schema)
        rc = schema_compile(NULL, t.output_schema, NULL, NULL, &ts->output, err);
    pthread_mutex_lock(&e->lock);
    const struct keel_config *cfg = e->cfg;
    pthread_mutex_unlock(&e->lock);
    /* keel.yaml's declaration wins; without one the tool's annotation. */
    int declared = cfg ? keel_config_tool_idempotence(cfg, t.server, t.name) : -1;
    ts->idempotent = declared >= 0 ? declared == 1 : t.idempotent_hint;
    arena_cleanup(&a);
    if (rc) {
        keel_err_prefix(err, "tool %s", qualified);
        schema_free(ts->input);
        schema_free(ts->output);
        free(ts);
        return rc;
    }
    pthread_mutex_lock(&e->lock);
    struct engine_tool_schemas *old = strmap_get(&e->tools, qualified, n);
    if (old) {
        schema_free(ts->input);
        schema_free(ts->output);
        free(ts);
        ts = old;
    } else {
        strmap_put(&e->tools, qualified, n, ts);
    }
    pthread_mutex_unlock(&e->lock);
    *out = ts;
    return 0;
}

/* ---- start / stop ------------------------------------------------------ */

static int load_identities(struct engine *e, const struct keel_config *cfg,
                           struct identity_set **out, struct keel_err *err)
{
    struct identity_set *ids = identity_set_new();
    if (!ids) return keel_fail(err, KEEL_ENOMEM, "out of memory");
    int rc = identity_admin_token_init(ids, e->data_dir, err);
    for (size_t i = 0; !rc && cfg && i < cfg->nhumans; i++) {
        const struct keel_config_human *h = &cfg->humans[i];
        char hash[80];
        const char *hp = NULL;
        if (h->token_sha256) {
            snprintf(hash, sizeof hash, "sha256:%s", h->token_sha256);
            hp = hash;
        } else if (h->token_env && getenv(h->token_env)) {
            const char *t = getenv(h->token_env);
            char hex[65];
            keel_sha256_hex(t, strlen(t), hex);
            snprintf(hash, sizeof hash, "sha256:%s", hex);
            hp = hash;
        }
        rc = identity_add_human(ids, h->name, hp, (const char *const *)h->groups, (int)h->ngroups,
                                err);
    }
    for (size_t i = 0; !rc && cfg && i < cfg->nagents; i++)
        rc = identity_add_agent(ids, cfg->agents[i].name, err);
    for (size_t i = 0; !rc && cfg && i < cfg->ntools; i++)
        rc = identity_add_tool_server(ids, cfg->tools[i].name, err);
    if (rc) {
        identity_set_free(ids);
        return rc;
    }
    *out = ids;
    return 0;
}

static int load_pool(struct engine *e, struct keel_err *err)
{
    e->pool = mcp_pool_new();
    if (!e->pool) return keel_fail(err, KEEL_ENOMEM, "out of memory");
    for (size_t i = 0; e->cfg && i < e->cfg->ntools; i++) {
        const struct keel_config_tool_server *t = &e->cfg->tools[i];
        if (!t->command) {
            keel_log(KEEL_LOG_WARN,
                     "tool server '%s' has no command (HTTP servers are not "
                     "supported yet); its tools cannot be called",
                     t->name);
            continue;
        }
        const char *env[MCP_MAX_ENV];
        char envbuf[MCP_MAX_ENV][512];
        size_t nenv = 0;
        for (size_t k = 0; k < t->nenv && nenv < MCP_MAX_ENV; k++) {
            snprintf(envbuf[nenv], sizeof envbuf[nenv], "%s=%s", t->env[k].name, t->env[k].value);
            env[nenv] = envbuf[nenv];
            nenv++;
        }
        struct mcp_server_config sc = {
            .name = t->name,
            .command = t->command,
            .args = (const char *const *)t->args,
            .nargs = t->nargs,
            .env = env,
            .nenv = nenv,
            .cwd = t->cwd,
            .idempotent = t->idempotent ? MCP_FORCE_YES : MCP_FROM_ANNOTATIONS,
        };
        int rc = mcp_pool_add(e->pool, &sc, err);
        if (rc) return rc;
    }
    return 0;
}

static void resume_all(struct engine *e)
{
    const char *after = NULL;
    struct arena a;
    arena_init(&a);
    size_t total = 0;
    for (;;) {
        struct store_run *runs;
        size_t n = 0;
        if (store_list_unfinished_runs(e->store, after, 0, &a, &runs, &n, NULL) || n == 0) break;
        for (size_t i = 0; i < n; i++)
            engine_enqueue(e, runs[i].id);
        total += n;
        after = runs[n - 1].id;
    }
    arena_cleanup(&a);
    if (total) keel_log(KEEL_LOG_INFO, "engine: resuming %zu unfinished runs", total);
}

int engine_start(const struct engine_opts *opts, struct engine **out, struct keel_err *err)
{
    struct engine *e = calloc(1, sizeof *e);
    if (!e) return keel_fail(err, KEEL_ENOMEM, "out of memory starting the engine");
    int rc = 0;
    pthread_mutex_init(&e->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->work, &ca);
    pthread_cond_init(&e->timer, &ca);
    pthread_cond_init(&e->done, &ca);
    pthread_cond_init(&e->durable, &ca);
    pthread_condattr_destroy(&ca);
    strmap_init(&e->tools);
    strmap_init(&e->queued);
    strmap_init(&e->busy);
    strmap_init(&e->retry);
    strmap_init(&e->slots);

    /* Everything that can be wrong with the files is checked before the
     * data folder is touched, so bad input writes nothing. */
    if (opts->config_path) {
        snprintf(e->config_path, sizeof e->config_path, "%s", opts->config_path);
        rc = keel_config_load(opts->config_path, &e->cfg, NULL, err);
    }
    const char *data = opts->data_dir ? opts->data_dir : e->cfg ? e->cfg->data_dir : ".keel";
    snprintf(e->data_dir, sizeof e->data_dir, "%s", data);
    if (!rc)
        rc = load_workflows(e, e->cfg, e->cfg ? e->cfg->workflows_dir : NULL, &e->workflows, err);
    if (!rc) rc = load_policies(e->cfg ? e->cfg->policies_dir : NULL, &e->policies, err);
    if (!rc) snprintf(e->policy_hash, sizeof e->policy_hash, "%s", policy_set_hash(e->policies));
    if (!rc) rc = keel_mkdir_p(e->data_dir, 0700, err);
    if (!rc) rc = load_identities(e, e->cfg, &e->ids, err);
    if (!rc) rc = load_models(e->cfg, e->workflows, &e->models, err);
    if (!rc) {
        char uri[2200];
        if (e->cfg && e->cfg->store_url && !opts->data_dir)
            snprintf(uri, sizeof uri, "%s", e->cfg->store_url);
        else
            snprintf(uri, sizeof uri, "sqlite:%s/keel.db", e->data_dir);
        rc = store_open(uri, NULL, &e->store, err);
    }
    if (!rc) rc = load_pool(e, err);
    for (struct engine_workflow *w = e->workflows; !rc && w; w = w->next)
        rc = store_version(e, w->wf, err);
    if (rc) {
        engine_stop(e);
        return rc;
    }
    const char *cv = getenv("KEEL_CHECK_VIEW");
    e->check_view = cv && !strcmp(cv, "1");
    e->nworkers = opts->workers > 0 ? opts->workers : 4;
    if (e->nworkers > 256) e->nworkers = 256;
    e->workers = calloc((size_t)e->nworkers, sizeof *e->workers);
    for (int i = 0; i < e->nworkers; i++)
        if (pthread_create(&e->workers[i], NULL, engine_worker_main, e) != 0) {
            e->nworkers = i;
            engine_stop(e);
            return keel_fail(err, KEEL_EIO, "cannot start worker threads");
        }
    if (pthread_create(&e->timer_thread, NULL, engine_timer_main, e) == 0) e->timer_started = true;
    resume_all(e);
    *out = e;
    return 0;
}

void engine_stop(struct engine *e)
{
    if (!e) return;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_broadcast(&e->work);
    pthread_cond_broadcast(&e->timer);
    pthread_mutex_unlock(&e->lock);
    for (int i = 0; i < e->nworkers; i++)
        pthread_join(e->workers[i], NULL);
    if (e->timer_started) pthread_join(e->timer_thread, NULL);
    free(e->workers);
    mcp_pool_free(e->pool);
    store_close(e->store); /* runs the callbacks of appends still queued */
    engine_slots_free(e);
    for (size_t i = 0; i < e->tools.cap; i++)
        if (e->tools.slots[i].key) {
            struct engine_tool_schemas *ts = e->tools.slots[i].value;
            schema_free(ts->input);
            schema_free(ts->output);
            free(ts);
        }
    strmap_cleanup(&e->tools);
    strmap_cleanup(&e->queued);
    strmap_cleanup(&e->busy);
    for (size_t i = 0; i < e->retry.cap; i++)
        if (e->retry.slots[i].key) free(e->retry.slots[i].value);
    strmap_cleanup(&e->retry);
    free(e->queue);
    workflows_free(e->workflows);
    policy_set_free(e->policies);
    for (size_t i = 0; i < e->nretired; i++)
        policy_set_free(e->retired[i]);
    free(e->retired);
    identity_set_free(e->ids);
    keel_config_free(e->cfg);
    for (size_t i = 0; i < e->nold_ids; i++)
        identity_set_free(e->old_ids[i]);
    for (size_t i = 0; i < e->nold_cfgs; i++)
        keel_config_free(e->old_cfgs[i]);
    model_gateway_free(e->models);
    for (size_t i = 0; i < e->nold_models; i++)
        model_gateway_free(e->old_models[i]);
    free(e->old_models);
    free(e->old_ids);
    free(e->old_cfgs);
    pthread_cond_destroy(&e->work);
    pthread_cond_destroy(&e->timer);
    pthread_cond_destroy(&e->done);
    pthread_cond_destroy(&e->durable);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

const struct identity_set *engine_identities(struct engine *e)
{
    pthread_mutex_lock(&e->lock);
    const struct identity_set *ids = e->ids;
    pthread_mutex_unlock(&e->lock);
    return ids;
}

/* Appends p to a retire list (kept until engine_stop).  Returns false if
 * out of memory; the caller then keeps p in use. */
static bool retire(void ***list, size_t *n, void *p)
{
    void **grown = realloc(*list, (*n + 1) * sizeof *grown);
    if (!grown) return false;
    grown[(*n)++] = p;
    *list = grown;
    return true;
}

int engine_reload(struct engine *e, struct keel_err *err)
{
    /* Everything is loaded first; only a complete, valid set replaces the
     * running one.  Tool servers stay as started (their changes need a
     * restart); agents, approvers (token rotation), workflows and policies
     * take effect at once. */
    struct keel_config *cfg = NULL;
    struct identity_set *ids = NULL;
    struct policy_set *ps = NULL;
    struct engine_workflow *fresh = NULL;
    struct model_gateway *models = NULL;
    int rc = 0;
    if (e->config_path[0]) rc = keel_config_load(e->config_path, &cfg, NULL, err);
    pthread_mutex_lock(&e->lock);
    const struct keel_config *use = cfg ? cfg : e->cfg;
    pthread_mutex_unlock(&e->lock);
    if (!rc) rc = load_policies(use ? use->policies_dir : NULL, &ps, err);
    if (!rc) rc = load_workflows(e, use, use ? use->workflows_dir : NULL, &fresh, err);
    if (!rc) rc = load_identities(e, use, &ids, err);
    if (!rc) rc = load_models(use, fresh, &models, err);
    if (rc) {
        model_gateway_free(models);
        workflows_free(fresh);
        policy_set_free(ps);
        identity_set_free(ids);
        keel_config_free(cfg);
        keel_err_prefix(err, "reload refused, the running set stays");
        return rc;
    }
    char hash[65];
    snprintf(hash, sizeof hash, "%s", policy_set_hash(ps));
    pthread_mutex_lock(&e->lock);
    if (retire(&e->retired, &e->nretired, e->policies)) {
        e->policies = ps;
        memcpy(e->policy_hash, hash, sizeof hash);
    } else {
        policy_set_free(ps);
    }
    if (retire(&e->old_ids, &e->nold_ids, e->ids))
        e->ids = ids;
    else
        identity_set_free(ids);
    if (!e->models || retire(&e->old_models, &e->nold_models, e->models))
        e->models = models;
    else
        model_gateway_free(models);
    if (cfg) {
        if (!e->cfg || retire(&e->old_cfgs, &e->nold_cfgs, e->cfg))
            e->cfg = cfg;
        else
            keel_config_free(cfg);
    }
    /* Old workflow versions stay loaded (runs may be pinned to them),
     * marked not current; the fresh list goes in front. */
    for (struct engine_workflow *w = e->workflows; w; w = w->next)
        w->current = false;
    struct engine_workflow *tail = fresh;
    while (tail && tail->next)
        tail = tail->next;
    if (tail) {
        tail->next = e->workflows;
        e->workflows = fresh;
    }
    pthread_mutex_unlock(&e->lock);
    keel_log(KEEL_LOG_INFO,
             "engine: reloaded keel.yaml identities, workflows and policies (set %s)", hash);
    return 0;
}

/* ---- operations for the API ------------------------------------------- */

static bool valid_id(const char *id)
{
    size_t n = strlen(id);
    return n > 0 && n < ENGINE_ID_MAX;
}

int engine_run_start(struct engine *e, const char *workflow, const struct json_value *input,
                     const struct identity *actor, char *run_id, size_t cap, struct keel_err *err)
{
    struct engine_workflow *ew = engine_workflow_current(e, workflow);
    if (!ew)
        return keel_fail(err, KEEL_ENOENT,
                         "no workflow named '%s'; GET /v1/workflows lists the loaded ones (the "
                         "files of the config's workflows: folder)",
                         workflow);
    if (ew->input_schema) {
        struct schema_result r;
        schema_result_init(&r);
        bool ok = schema_validate(ew->input_schema, input, &r);
        if (!ok) {
            keel_fail(err, KEEL_ESCHEMA, "run input does not match the input schema of '%s': %s",
                      workflow, r.kept ? r.errors[0].message : "invalid");
            snprintf(err->path, sizeof err->path, "%s",
                     r.kept ? r.errors[0].instance_location : "");
        }
        schema_result_cleanup(&r);
        if (!ok) return KEEL_ESCHEMA;
    }
    struct buf in;
    buf_init(&in);
    int rc = json_write(&in, input, JSON_WRITE_CANONICAL, err);
    if (rc) {
        buf_cleanup(&in);
        return rc;
    }
    char id[64], who[IDENTITY_NAME_MAX + 16];
    keel_new_id("run", id, sizeof id);
    identity_actor(actor, who, sizeof who);
    struct store_run run = {.id = id,
                            .workflow = ew->wf->name,
                            .workflow_hash = ew->wf->hash,
                            .status = STORE_RUN_RUNNING,
                            .input = in.data,
                            .identity = who};
    rc = store_run_create(e->store, &run, err);
    if (!rc) rc = engine_slot_start(e, ew, &run, input, who, err);
    buf_cleanup(&in);
    if (rc) return rc;
    snprintf(run_id, cap, "%s", id);
    return 0;
}

static struct json_value *run_summary(struct arena *a, const struct store_run *r)
{
    char t[32];
    struct json_value *o = json_object(a);
    json_object_setc(a, o, "id", json_cstr(a, r->id));
    json_object_setc(a, o, "workflow", json_cstr(a, r->workflow));
    json_object_setc(a, o, "status", json_cstr(a, store_run_status_name(r->status)));
    keel_format_time(r->created_ms, t);
    json_object_setc(a, o, "created", json_cstr(a, t));
    keel_format_time(r->updated_ms, t);
    json_object_setc(a, o, "updated", json_cstr(a, t));
    if (r->identity) json_object_setc(a, o, "started_by", json_cstr(a, r->identity));
    if (r->reason) json_object_setc(a, o, "reason", json_cstr(a, r->reason));
    return o;
}

int engine_run_list(struct engine *e, int limit, struct arena *a, struct json_value **out,
                    struct keel_err *err)
{
    struct store_run_filter f = {.newest_first = true,
                                 .limit = (size_t)(limit > 0 && limit <= 1000 ? limit : 100)};
    struct store_run *runs;
    size_t n = 0;
    int rc = store_run_list(e->store, &f, a, &runs, &n, err);
    if (rc) return rc;
    struct json_value *arr = json_array(a);
    for (size_t i = 0; i < n; i++)
        json_array_push(a, arr, run_summary(a, &runs[i]));
    *out = arr;
    return 0;
}

static int run_get(struct engine *e, const char *id, struct arena *a, struct store_run *r,
                   struct keel_err *err)
{
    if (!valid_id(id)) return keel_fail(err, KEEL_ENOENT, "no run '%.64s'", id);
    int rc = store_run_get(e->store, id, a, r, err);
    if (rc == KEEL_ENOENT)
        return keel_fail(err, KEEL_ENOENT, "no run '%s'; `keel run list` shows the runs", id);
    return rc;
}

int engine_run_show(struct engine *e, const char *run_id, struct arena *a, struct json_value **out,
                    struct keel_err *err)
{
    struct store_run r;
    int rc = run_get(e, run_id, a, &r, err);
    if (rc) return rc;
    struct json_value *o = run_summary(a, &r);
    struct json_value *input = NULL;
    if (r.input && json_parse(a, r.input, strlen(r.input), NULL, &input, NULL) == 0)
        json_object_setc(a, o, "input", input);
    struct engine_workflow *ew = NULL;
    struct run_view v;
    if (engine_workflow_get(e, r.workflow, r.workflow_hash, &ew, NULL) == 0 &&
        engine_fold(e, run_id, ew->wf, a, &v, NULL) == 0) {
        json_object_setc(a, o, "state", v.state);
        if (v.step) json_object_setc(a, o, "step", json_cstr(a, v.step));
        json_object_setc(a, o, "events", json_int(a, v.events));
        if (v.error_message) json_object_setc(a, o, "error", json_cstr(a, v.error_message));
        if (v.wait == WAIT_APPROVAL && v.wait_id)
            json_object_setc(a, o, "approval", json_cstr(a, v.wait_id));
    }
    *out = o;
    return 0;
}

static const enum engine_run_status from_store[STORE_RUN_STATUS_COUNT] = {
    [STORE_RUN_PENDING] = RUN_RUNNING,
    [STORE_RUN_RUNNING] = RUN_RUNNING,
    [STORE_RUN_WAITING] = RUN_WAITING,
    [STORE_RUN_SUCCEEDED] = RUN_SUCCEEDED,
    [STORE_RUN_FAILED] = RUN_FAILED,
    [STORE_RUN_CANCELLED] = RUN_CANCELLED,
    [STORE_RUN_NEEDS_RECONCILE] = RUN_NEEDS_RECONCILE,
};

int engine_run_wait(struct engine *e, const char *run_id, int64_t timeout_ms, bool final_only,
                    enum engine_run_status *status, struct keel_err *err)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    int rc = 0;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        struct arena a;
        arena_init(&a);
        struct store_run r;
        rc = run_get(e, run_id, &a, &r, err);
        arena_cleanup(&a);
        if (rc) break;
        if (status) *status = from_store[r.status];
        /* A run still queued or held by a worker is about to move on. */
        size_t n = strlen(run_id);
        bool moving = strmap_get(&e->queued, run_id, n) || strmap_get(&e->busy, run_id, n);
        bool settled =
            final_only
                ? (store_run_status_is_final(r.status) || r.status == STORE_RUN_NEEDS_RECONCILE)
                : (r.status != STORE_RUN_RUNNING && r.status != STORE_RUN_PENDING);
        if (!moving && settled) break;
        if (pthread_cond_timedwait(&e->done, &e->lock, &until) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

int engine_run_cancel(struct engine *e, const char *run_id, const struct identity *actor,
                      struct keel_err *err)
{
    struct arena a;
    arena_init(&a);
    struct store_run r;
    int rc = run_get(e, run_id, &a, &r, err);
    if (!rc && store_run_status_is_final(r.status))
        rc = keel_fail(err, KEEL_ESTATE, "run %s already ended (%s); nothing to cancel", run_id,
                       store_run_status_name(r.status));
    if (!rc && r.status == STORE_RUN_NEEDS_RECONCILE) {
        /* No worker drives a run parked for reconciliation, so the
         * human's decision is journaled here: the effect was checked by
         * hand and the run is closed. */
        char who[IDENTITY_NAME_MAX + 16];
        identity_actor(actor, who, sizeof who);
        struct json_value *p = json_object(&a);
        json_object_setc(&a, p, "by", json_cstr(&a, who));
        json_object_setc(&a, p, "reason", json_cstr(&a, "cancelled while needing reconciliation"));
        rc = journal_append(e->store, run_id, "run.cancelled", who, p, NULL, err);
        if (!rc)
            rc = store_run_set_status(e->store, run_id, STORE_RUN_MASK(STORE_RUN_NEEDS_RECONCILE),
                                      STORE_RUN_CANCELLED, "cancelled", 0, err);
        arena_cleanup(&a);
        return rc;
    }
    if (!rc) {
        char who[IDENTITY_NAME_MAX + 16], key[ENGINE_ID_MAX + 16];
        identity_actor(actor, who, sizeof who);
        snprintf(key, sizeof key, "cancel/%s", run_id);
        rc = store_kv_put(e->store, key, who, err);
    }
    arena_cleanup(&a);
    if (rc) return rc;
    /* A kept run context looks for cancel/<run> again once this moved. */
    __atomic_add_fetch(&e->cancel_gen, 1, __ATOMIC_SEQ_CST);
    engine_enqueue(e, run_id);
    /* Wait (bounded) until a worker has journaled the cancellation, so the
     * caller sees the final status. */
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        struct arena b;
        arena_init(&b);
        struct store_run now;
        bool final = store_run_get(e->store, run_id, &b, &now, NULL) == 0 &&
                     store_run_status_is_final(now.status);
        arena_cleanup(&b);
        if (final) break;
        if (pthread_cond_timedwait(&e->done, &e->lock, &until) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&e->lock);
    return 0;
}

struct events_ctx {
    struct arena *a;
    struct json_value *arr;
    int64_t left; /* events still wanted; -1: no limit */
};

static int on_event_json(void *ctx, const struct journal_event *ev)
{
    struct events_ctx *x = ctx;
    struct arena *a = x->a;
    if (x->left == 0) return 1;
    if (x->left > 0) x->left--;
    struct json_value *o = json_object(a);
    char t[32];
    keel_format_time(ev->time_ms, t);
    json_object_setc(a, o, "seq", json_int(a, ev->seq));
    json_object_setc(a, o, "time", json_cstr(a, t));
    json_object_setc(a, o, "kind", json_cstr(a, ev->kind));
    json_object_setc(a, o, "actor", json_cstr(a, ev->actor));
    struct json_value *p = NULL;
    if (json_parse(a, ev->payload, ev->payload_len, NULL, &p, NULL) != 0)
        p = json_string(a, ev->payload, ev->payload_len);
    json_object_setc(a, o, "payload", p);
    json_object_setc(a, o, "prev_hash", json_cstr(a, ev->prev_hash));
    json_object_setc(a, o, "hash", json_cstr(a, ev->hash));
    json_array_push(a, x->arr, o);
    return 0;
}

int engine_run_events(struct engine *e, const char *run_id, int64_t from_seq, int64_t limit,
                      struct arena *a, struct json_value **out, struct keel_err *err)
{
    struct store_run r;
    int rc = run_get(e, run_id, a, &r, err);
    if (rc) return rc;
    struct events_ctx x = {.a = a, .arr = json_array(a), .left = limit > 0 ? limit : -1};
    rc = journal_read(e->store, run_id, from_seq > 0 ? from_seq : 1, on_event_json, &x, err);
    if (rc == 1) rc = 0; /* stopped at the limit */
    if (rc) return rc;
    *out = x.arr;
    return 0;
}

int engine_run_verify(struct engine *e, const char *run_id, struct arena *a,
                      struct json_value **out, struct keel_err *err)
{
    struct store_run r;
    int rc = run_get(e, run_id, a, &r, err);
    if (rc) return rc;
    struct journal_verify_report rep;
    memset(&rep, 0, sizeof rep);
    rc = journal_verify(e->store, run_id, &rep, err);
    if (rc) return rc;
    struct json_value *o = json_object(a);
    json_object_setc(a, o, "run", json_cstr(a, run_id));
    json_object_setc(a, o, "ok", json_bool(a, rep.ok));
    json_object_setc(a, o, "events", json_int(a, rep.events));
    json_object_setc(a, o, "head", json_cstr(a, rep.last_hash));
    if (!rep.ok) {
        json_object_setc(a, o, "first_bad_seq", json_int(a, rep.first_bad_seq));
        json_object_setc(a, o, "error", json_cstr(a, rep.reason));
    }
    *out = o;
    return 0;
}

int engine_approval_list(struct engine *e, bool pending_only, const struct identity *viewer,
                         struct arena *a, struct json_value **out, struct keel_err *err)
{
    struct store_approval_filter f = {.status_mask =
                                          pending_only ? 1u << STORE_APPROVAL_PENDING : 0};
    struct store_approval *aps;
    size_t n = 0;
    int rc = store_approval_list(e->store, &f, a, &aps, &n, err);
    if (rc) return rc;
    struct json_value *arr = json_array(a);
    for (size_t i = 0; i < n; i++)
        if (!viewer || viewer->kind != IDENTITY_HUMAN || identity_in_group(viewer, aps[i].group))
            json_array_push(a, arr, approval_to_json(a, &aps[i]));
    *out = arr;
    return 0;
}

int engine_approval_decide(struct engine *e, const char *approval_id, const struct identity *actor,
                           bool approve, const char *comment, struct keel_err *err)
{
    char run[STORE_ID_MAX];
    int rc = approval_decide(e->store, approval_id, actor, approve, comment, run, sizeof run, err);
    if (!rc) engine_enqueue(e, run);
    return rc;
}

int engine_workflow_list(struct engine *e, struct arena *a, struct json_value **out,
                         struct keel_err *err)
{
    struct json_value *arr = json_array(a);
    pthread_mutex_lock(&e->lock);
    for (struct engine_workflow *w = e->workflows; w; w = w->next) {
        if (!w->current) continue;
        struct json_value *o = json_object(a);
        json_object_setc(a, o, "name", json_cstr(a, w->wf->name));
        json_object_setc(a, o, "hash", json_cstr(a, w->wf->hash));
        json_object_setc(a, o, "steps", json_int(a, (int64_t)w->wf->nsteps));
        json_object_setc(a, o, "file", json_cstr(a, w->wf->file ? w->wf->file : ""));
        json_array_push(a, arr, o);
    }
    pthread_mutex_unlock(&e->lock);
    *out = arr;
    return 0;
}

void engine_get_stats(struct engine *e, struct engine_stats *out)
{
    out->folds = __atomic_load_n(&e->folds, __ATOMIC_RELAXED);
    out->compactions = __atomic_load_n(&e->compactions, __ATOMIC_RELAXED);
    out->parked = __atomic_load_n(&e->parked, __ATOMIC_RELAXED);
    out->append_failures = __atomic_load_n(&e->append_failures, __ATOMIC_RELAXED);
    out->memory_retries = __atomic_load_n(&e->memory_retries, __ATOMIC_RELAXED);
}

void engine_store_stats(struct engine *e, struct store_stats *out)
{
    store_get_stats(e->store, out);
}
