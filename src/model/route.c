/*
 * route.c — which model a request goes to, what a call costs, and how many
 * tokens a conversation is estimated to hold.  Reference: docs/models.md,
 * "Routing" and "Cost".
 *
 * Routing is deterministic: the same request against the same gateway
 * always picks the same model.  A route's rules are tried in order and the
 * first whose every condition holds wins; conditions are the step's tag,
 * the acting agent, the estimated prompt tokens (>=) and the number of
 * tools offered (>=).  A model named directly has no fallbacks.  The
 * fallbacks never repeat the chosen model or each other.  The call's
 * deadline is chosen here too: the route's, else the chosen model's
 * provider's, else MODEL_DEFAULT_DEADLINE_MS.
 */
#include "internal.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* Returns the declared model called name (borrowed from g), or NULL. */
struct model_def *model_find(const struct model_gateway *g, const char *name)
{
    if (!g || !name) return NULL;
    for (size_t i = 0; i < g->nmodels; i++)
        if (!strcmp(g->models[i].name, name)) return &g->models[i];
    return NULL;
}

/* Returns the declared route called name (borrowed from g), or NULL. */
struct model_routedef *model_route_find(const struct model_gateway *g, const char *name)
{
    if (!g || !name) return NULL;
    for (size_t i = 0; i < g->nroutes; i++)
        if (!strcmp(g->routes[i].name, name)) return &g->routes[i];
    return NULL;
}

/* See model.h.  Nothing allocated. */
bool model_gateway_has(const struct model_gateway *g, const char *name)
{
    return model_find(g, name) || model_route_find(g, name);
}

/* See model.h.  Nothing allocated. */
int64_t model_context_tokens(const struct model_gateway *g, const char *model)
{
    const struct model_def *m = model_find(g, model);
    return m ? m->context : 0;
}

/* See model.h.  Nothing allocated. */
double model_cost_usd(const struct model_gateway *g, const char *model, int64_t input_tokens,
                      int64_t output_tokens)
{
    const struct model_def *m = model_find(g, model);
    if (!m || !m->has_price) return 0;
    if (input_tokens < 0) input_tokens = 0;
    if (output_tokens < 0) output_tokens = 0;
    return ((double)input_tokens * m->price_input + (double)output_tokens * m->price_output) / 1e6;
}

/* See model.h.  The estimate is ceil(bytes / 4) of the compact JSON of
 * messages and tools.  Nothing allocated that outlives the call. */
int64_t model_estimate_tokens(const struct json_value *messages, const struct json_value *tools)
{
    struct buf b;
    buf_init(&b);
    if (messages) json_write(&b, messages, 0, NULL);
    if (tools) json_write(&b, tools, 0, NULL);
    int64_t n = (int64_t)((b.len + 3) / 4);
    buf_cleanup(&b);
    return n;
}

static bool rule_matches(const struct model_rule *rule, const struct model_request *r,
                         int64_t *prompt_tokens)
{
    if (rule->tag && (!r->tag || strcmp(rule->tag, r->tag))) return false;
    if (rule->agent && (!r->agent || strcmp(rule->agent, r->agent))) return false;
    if (rule->min_tools >= 0) {
        int64_t n = json_is(r->tools, JSON_ARRAY) ? (int64_t)r->tools->len : 0;
        if (n < rule->min_tools) return false;
    }
    if (rule->min_prompt_tokens >= 0) {
        if (*prompt_tokens < 0) *prompt_tokens = model_estimate_tokens(r->messages, r->tools);
        if (*prompt_tokens < rule->min_prompt_tokens) return false;
    }
    return true;
}

/* "a, b, c" of the declared names (routes or models) into out. */
static void list_names(const struct model_gateway *g, bool routes, char *out, size_t cap)
{
    size_t n = 0, count = routes ? g->nroutes : g->nmodels;
    out[0] = '\0';
    for (size_t i = 0; i < count && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "",
                              routes ? g->routes[i].name : g->models[i].name);
    if (!count) snprintf(out, cap, "none");
}

/* The call's deadline: the route's (rt may be NULL), else the model's
 * provider's, else the default. */
static void deadline_of(const struct model_routedef *rt, const struct model_def *m,
                        struct model_route_choice *c)
{
    c->deadline_ms = MODEL_DEFAULT_DEADLINE_MS;
    c->deadline_ref = NULL;
    if (rt && rt->deadline_ms > 0) {
        c->deadline_ms = rt->deadline_ms;
        c->deadline_ref = rt->deadline_ref;
    } else if (m->provider->deadline_ms > 0) {
        c->deadline_ms = m->provider->deadline_ms;
        c->deadline_ref = m->provider->deadline_ref;
    }
}

/* See model.h.  out's strings are borrowed from g. */
int model_route(const struct model_gateway *g, const struct model_request *r,
                struct model_route_choice *out, struct keel_err *err)
{
    struct model_route_choice c;
    memset(&c, 0, sizeof c);
    char routes[400], models[400];
    if (!g || g->nmodels == 0)
        return keel_fail(err, KEEL_ENOENT,
                         "no models are declared; add a models: section to keel.yaml "
                         "(see docs/models.md)");
    list_names(g, true, routes, sizeof routes);
    list_names(g, false, models, sizeof models);
    const struct model_routedef *rt = NULL;
    if (!r->route) {
        rt = model_route_find(g, "default");
        if (!rt) {
            if (g->nmodels != 1)
                return keel_fail(err, KEEL_ENOENT,
                                 "no route was named and keel.yaml declares no route 'default'; "
                                 "declare models.routes.default or name a route (declared: "
                                 "%s) or a model (%s)",
                                 routes, models);
            c.model = g->models[0].name;
            c.rule = "only model";
            deadline_of(NULL, &g->models[0], &c);
            *out = c;
            return 0;
        }
    } else if (!(rt = model_route_find(g, r->route))) {
        const struct model_def *m = model_find(g, r->route);
        if (!m)
            return keel_fail(err, KEEL_ENOENT,
                             "'%s' is neither a route nor a model declared in keel.yaml "
                             "(routes: %s; models: %s)",
                             r->route, routes, models);
        c.model = m->name;
        c.rule = "model";
        deadline_of(NULL, m, &c);
        *out = c;
        return 0;
    }
    int64_t prompt_tokens = -1;
    const struct model_def *chosen = rt->model;
    c.rule = "default";
    for (size_t i = 0; i < rt->nrules; i++) {
        if (rule_matches(&rt->rules[i], r, &prompt_tokens)) {
            chosen = rt->rules[i].model;
            c.rule = rt->rules[i].why;
            break;
        }
    }
    c.model = chosen->name;
    deadline_of(rt, chosen, &c);
    size_t n = 0;
    for (size_t i = 0; i < MODEL_MAX_FALLBACKS && rt->fallbacks[i]; i++) {
        const char *f = rt->fallbacks[i]->name;
        bool seen = !strcmp(f, c.model);
        for (size_t j = 0; j < n && !seen; j++) seen = !strcmp(c.fallbacks[j], f);
        if (!seen) c.fallbacks[n++] = f;
    }
    *out = c;
    return 0;
}

/* See internal.h. */
void model_scrub(const struct model_gateway *g, char *s, size_t cap)
{
    if (!g || !s || cap == 0) return;
    for (size_t i = 0; i < g->nproviders; i++) {
        const struct model_provider *p = &g->providers[i];
        if (!p->key || p->key_len < 4) continue; /* a shorter "key" would redact common text */
        if (!strstr(s, p->key)) continue;
        struct buf b;
        buf_init(&b);
        const char *at = s, *hit;
        while ((hit = strstr(at, p->key))) {
            buf_append(&b, at, (size_t)(hit - at));
            buf_puts(&b, "[redacted]");
            at = hit + p->key_len;
        }
        buf_puts(&b, at);
        snprintf(s, cap, "%s", b.data);
        sodium_memzero(b.data, b.len);
        buf_cleanup(&b);
    }
}

/* See internal.h. */
void model_quote(struct buf *out, const char *s, size_t len, size_t max)
{
    size_t n = len < max ? len : max;
    /* Do not cut a UTF-8 sequence in half. */
    while (n < len && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    buf_putc(out, '\'');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n') buf_puts(out, "\\n");
        else if (ch == '\r') buf_puts(out, "\\r");
        else if (ch == '\t') buf_puts(out, "\\t");
        else if (ch < 0x20 || ch == 0x7f) buf_printf(out, "\\x%02x", ch);
        else buf_putc(out, (char)ch);
    }
    buf_putc(out, '\'');
    if (n < len) buf_puts(out, "...");
}
