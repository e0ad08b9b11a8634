/*
 * config.c — the "models:" section of keel.yaml -> struct model_gateway.
 * Reference: docs/models.md.
 *
 *   models:
 *     providers: {NAME: {kind, base_url, api_key, timeout, retries,
 *                        max_retry_wait, deadline, max_tokens_field, headers}}
 *     models:    {NAME: {provider, model, context, max_output,
 *                        max_tokens_field, price}}
 *     routes:    {NAME: {rules: [{tag|agent|min_prompt_tokens|min_tools...,
 *                                 model}], model, fallback: [NAME...],
 *                        deadline}}
 *
 * The value arrives as JSON with the source line/column of every value (the
 * YAML loader keeps them), so each problem is reported at file:line:column
 * with the JSON Pointer of the offending value (err->path), and the first
 * problem stops the load.
 *
 * Secrets: api_key is a reference, {env: NAME} or {file: PATH}; an inline
 * string is refused.  The key is read here, once, into memory locked with
 * sodium_mlock, and wiped (sodium_munlock zeroes it) when the gateway is
 * freed.  No message written here ever contains key bytes: messages name
 * the reference (the variable or the file), never what it holds.
 *
 * Invariants of a returned gateway: every model names a declared provider,
 * every rule, route and fallback names a declared model, no route shares a
 * model's name, every provider and model has a max_tokens_field its kind
 * accepts (a row of kind->limit_fields), and all strings live in g->a (keys
 * excepted).
 */
#include "internal.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cfg {
    struct model_gateway *g;
    const char *file;
    const char *dir;
    struct keel_err *err;
};

/* Records a positioned problem and returns KEEL_EINVAL. */
static int bad(struct cfg *c, const struct json_value *v, const char *path, const char *fmt, ...)
    KEEL_PRINTF(4, 5);
static int bad(struct cfg *c, const struct json_value *v, const char *path, const char *fmt, ...)
{
    if (!c->err) return KEEL_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    keel_vfail(c->err, KEEL_EINVAL, fmt, ap);
    va_end(ap);
    snprintf(c->err->file, sizeof c->err->file, "%s", c->file ? c->file : "");
    c->err->line = v ? v->line : 0;
    c->err->column = v ? v->column : 0;
    snprintf(c->err->path, sizeof c->err->path, "%s", path);
    return KEEL_EINVAL;
}

/* out = base + "/" + token (escaped as JSON Pointer). */
static void join(char out[KEEL_ERR_PATH_MAX], const char *base, const char *token)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, base);
    json_pointer_append(&b, token, strlen(token));
    snprintf(out, KEEL_ERR_PATH_MAX, "%s", b.data);
    buf_cleanup(&b);
}

static void joini(char out[KEEL_ERR_PATH_MAX], const char *base, size_t i)
{
    snprintf(out, KEEL_ERR_PATH_MAX, "%s/%zu", base, i);
}

/* Refuses members of obj not in allowed (NULL-ended). */
static int fields(struct cfg *c, const struct json_value *obj, const char *path,
                  const char *const *allowed, const char *what)
{
    for (uint32_t i = 0; i < obj->len; i++) {
        bool ok = false;
        for (size_t j = 0; allowed[j] && !ok; j++) ok = !strcmp(allowed[j], obj->u.members[i].key);
        if (ok) continue;
        char list[300] = "";
        size_t n = 0;
        for (size_t j = 0; allowed[j] && n < sizeof list; j++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", j ? ", " : "", allowed[j]);
        char p[KEEL_ERR_PATH_MAX];
        join(p, path, obj->u.members[i].key);
        return bad(c, obj->u.members[i].value, p, "unknown field '%s' in %s; expected one of: %s",
                   obj->u.members[i].key, what, list);
    }
    return 0;
}

static bool plain_name(const char *s, size_t len)
{
    if (len == 0 || len > 128 || strlen(s) != len) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

/* A non-empty string without NULs or control characters, or NULL after
 * reporting the problem. */
static const char *text(struct cfg *c, const struct json_value *v, const char *path,
                        const char *what)
{
    if (!json_is(v, JSON_STRING) || v->len == 0 || strlen(v->u.s.str) != v->len) {
        bad(c, v, path, "%s must be a non-empty string", what);
        return NULL;
    }
    for (uint32_t i = 0; i < v->len; i++) {
        unsigned char ch = (unsigned char)v->u.s.str[i];
        if (ch < 0x20 || ch == 0x7f) {
            bad(c, v, path, "%s must not contain control characters or line breaks", what);
            return NULL;
        }
    }
    return v->u.s.str;
}

static int integer(struct cfg *c, const struct json_value *v, const char *path, const char *what,
                   int64_t lo, int64_t hi, int64_t *out)
{
    if (!json_is_integer(v) || !(v->nflags & JSON_NUM_I64) || v->u.n.i < lo || v->u.n.i > hi)
        return bad(c, v, path, "%s must be an integer from %lld to %lld", what, (long long)lo,
                   (long long)hi);
    *out = v->u.n.i;
    return 0;
}

static int duration(struct cfg *c, const struct json_value *v, const char *path, const char *what,
                    int64_t hi_ms, int64_t *out)
{
    struct keel_err e;
    keel_err_clear(&e);
    int64_t ms = 0;
    if (!json_is(v, JSON_STRING) || keel_parse_duration(v->u.s.str, &ms, &e) != 0 || ms < 0 ||
        ms > hi_ms)
        return bad(c, v, path, "%s must be a duration like 500ms, 30s or 2m (at most %lld s)", what,
                   (long long)(hi_ms / 1000));
    *out = ms;
    return 0;
}

/* deadline: a duration from MODEL_MIN_ATTEMPT_MS to MODEL_MAX_DEADLINE_MS. */
static int deadline(struct cfg *c, const struct json_value *v, const char *path, int64_t *out)
{
    int rc = duration(c, v, path, "deadline", MODEL_MAX_DEADLINE_MS, out);
    if (rc) return rc;
    if (*out < MODEL_MIN_ATTEMPT_MS)
        return bad(c, v, path,
                   "deadline must be at least %d ms (Keel starts no attempt with less time "
                   "left); it bounds a whole model call, retries and fallbacks included, e.g. "
                   "deadline: 2m",
                   MODEL_MIN_ATTEMPT_MS);
    return 0;
}

/* max_tokens_field: one of the provider kind's limit fields. */
static int limit_field(struct cfg *c, const struct model_provider *p, const struct json_value *v,
                       const char *path, const char **out)
{
    char names[96];
    model_limit_field_names(p->kind, names, sizeof names);
    const char *f = json_is(v, JSON_STRING) ? model_limit_field(p->kind, v->u.s.str) : NULL;
    if (!f && p->kind->limit_fields[1])
        return bad(c, v, path,
                   "max_tokens_field must be %s: OpenAI's own API wants max_completion_tokens "
                   "(its o-series and gpt-4.1+/gpt-5 models refuse max_tokens), while vLLM, "
                   "llama.cpp, Ollama and LiteLLM read max_tokens",
                   names);
    if (!f)
        return bad(c, v, path,
                   "max_tokens_field must be %s for provider %s (kind: %s takes no other); "
                   "remove the setting",
                   names, p->name, p->kind->name);
    *out = f;
    return 0;
}

/* Is the host of url (scheme://[user@]host[:port][/...]) host, ignoring
 * case? */
static bool url_host_is(const char *url, const char *host)
{
    const char *h = strstr(url, "://");
    if (!h) return false;
    h += 3;
    size_t n = strcspn(h, "/?#");
    const char *at = memchr(h, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - h);
        h = at + 1;
    }
    const char *colon = memchr(h, ':', n);
    if (colon) n = (size_t)(colon - h);
    return n == strlen(host) && !strncasecmp(h, host, n);
}

/* ---- api keys ------------------------------------------------------------ */

/* Copies len key bytes into locked memory owned by p. */
static void keep_key(struct model_provider *p, const char *key, size_t len)
{
    p->key = malloc(len + 1);
    if (!p->key) abort();
    (void)sodium_mlock(p->key, len + 1); /* best effort: may fail under RLIMIT_MEMLOCK */
    memcpy(p->key, key, len);
    p->key[len] = '\0';
    p->key_len = len;
}

static int check_key_bytes(struct cfg *c, const struct json_value *v, const char *path,
                           const char *key, size_t len, const char *where)
{
    if (len == 0)
        return bad(c, v, path, "the API key in %s is empty; put the key there", where);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)key[i];
        if (ch < 0x20 || ch == 0x7f)
            return bad(c, v, path,
                       "the API key in %s contains a line break or control character (only "
                       "trailing newlines are removed); store the key alone on one line",
                       where);
    }
    return 0;
}

/* api_key: {env: NAME} | {file: PATH}. */
static int api_key(struct cfg *c, struct model_provider *p, const struct json_value *v,
                   const char *path)
{
    if (json_is(v, JSON_STRING))
        return bad(c, v, path,
                   "an API key must not be written into keel.yaml; use api_key: {env: NAME} "
                   "(an environment variable) or api_key: {file: PATH} (a file holding the key)");
    static const char *const allowed[] = {"env", "file", NULL};
    if (!json_is(v, JSON_OBJECT) || v->len != 1)
        return bad(c, v, path, "api_key must be {env: NAME} or {file: PATH}");
    int rc = fields(c, v, path, allowed, "api_key");
    if (rc) return rc;
    char sub[KEEL_ERR_PATH_MAX];
    const struct json_value *env = json_get(v, "env"), *file = json_get(v, "file");
    if (env) {
        join(sub, path, "env");
        const char *name = text(c, env, sub, "api_key.env");
        if (!name) return KEEL_EINVAL;
        const char *val = getenv(name);
        if (!val || !*val)
            return bad(c, env, sub,
                       "environment variable %s (the API key of provider %s) is not set or "
                       "empty; export it before starting Keel",
                       name, p->name);
        size_t len = strlen(val);
        char where[300];
        snprintf(where, sizeof where, "environment variable %s", name);
        if (len > MODEL_MAX_KEY)
            return bad(c, env, sub, "the API key in %s is longer than %d bytes", where,
                       MODEL_MAX_KEY);
        rc = check_key_bytes(c, env, sub, val, len, where);
        if (rc) return rc;
        keep_key(p, val, len);
        return 0;
    }
    join(sub, path, "file");
    const char *name = text(c, file, sub, "api_key.file");
    if (!name) return KEEL_EINVAL;
    struct buf full, data;
    buf_init(&full);
    buf_init(&data);
    if (name[0] == '/' || !c->dir || !*c->dir) buf_puts(&full, name);
    else buf_printf(&full, "%s/%s", c->dir, name);
    struct keel_err e;
    keel_err_clear(&e);
    rc = keel_read_file(full.data, MODEL_MAX_KEY + 2, &data, &e);
    if (rc) {
        rc = bad(c, file, sub, "cannot read the API key file %s of provider %s (%s); create it with "
                          "the key on one line, readable by Keel",
            full.data, p->name, rc == KEEL_ELIMIT ? "too large" : keel_strerror(rc));
    } else {
        size_t len = data.len;
        while (len > 0 && (data.data[len - 1] == '\n' || data.data[len - 1] == '\r')) len--;
        char where[600];
        snprintf(where, sizeof where, "file %s", full.data);
        rc = check_key_bytes(c, file, sub, data.data ? data.data : "", len, where);
        if (!rc) keep_key(p, data.data, len);
    }
    if (data.data) sodium_memzero(data.data, data.cap);
    buf_cleanup(&data);
    buf_cleanup(&full);
    return rc;
}

/* ---- providers ----------------------------------------------------------- */

static bool token_name(const char *s)
{
    if (!*s || strlen(s) > 64) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

/* Headers that carry credentials (so belong in api_key) or that Keel sets. */
static const struct {
    const char *name;
    const char *why;
} reserved_headers[] = {
    {"authorization", "it carries a credential; put the key in api_key: {env: NAME}"},
    {"proxy-authorization", "it carries a credential"},
    {"x-api-key", "it carries a credential; put the key in api_key: {env: NAME}"},
    {"api-key", "it carries a credential; put the key in api_key: {env: NAME}"},
    {"cookie", "it may carry a credential"},
    {"content-type", "Keel sets it"},
    {"content-length", "Keel sets it"},
    {"host", "Keel sets it from base_url"},
    {"expect", "Keel sets it"},
    {"transfer-encoding", "Keel sets it"},
};

static int headers(struct cfg *c, struct model_provider *p, const struct json_value *v,
                   const char *path)
{
    if (!json_is(v, JSON_OBJECT))
        return bad(c, v, path, "headers must be a mapping of header names to values");
    if (v->len > MODEL_MAX_HEADERS)
        return bad(c, v, path, "at most %d headers per provider", MODEL_MAX_HEADERS);
    p->headers = arena_zalloc(&c->g->a, (v->len + 1) * sizeof *p->headers);
    for (uint32_t i = 0; i < v->len; i++) {
        const struct json_member *m = &v->u.members[i];
        char sub[KEEL_ERR_PATH_MAX];
        join(sub, path, m->key);
        if (!token_name(m->key))
            return bad(c, m->value, sub, "'%s' is not a valid HTTP header name", m->key);
        for (size_t j = 0; j < KEEL_ARRAY_LEN(reserved_headers); j++)
            if (!strcasecmp(m->key, reserved_headers[j].name))
                return bad(c, m->value, sub, "header %s may not be set here: %s", m->key,
                           reserved_headers[j].why);
        const char *val = text(c, m->value, sub, "a header value");
        if (!val) return KEEL_EINVAL;
        if (m->value->len > 1024) return bad(c, m->value, sub, "header value is over 1024 bytes");
        p->headers[p->nheaders++] = arena_printf(&c->g->a, "%s: %s", m->key, val);
    }
    return 0;
}

static int provider(struct cfg *c, struct model_provider *p, const struct json_value *v,
                    const char *path)
{
    static const char *const allowed[] = {"kind",     "base_url",         "api_key",
                                          "timeout",  "retries",          "max_retry_wait",
                                          "deadline", "max_tokens_field", "headers",
                                          NULL};
    if (!json_is(v, JSON_OBJECT))
        return bad(c, v, path, "provider %s must be a mapping {kind, base_url, api_key, ...}",
                   p->name);
    int rc = fields(c, v, path, allowed, "a provider");
    if (rc) return rc;
    char sub[KEEL_ERR_PATH_MAX];
    p->key_ref = arena_printf(&c->g->a, "models.providers.%s.api_key", p->name);
    p->timeout_ms = 60000;
    p->retries = 2;
    p->max_retry_wait_ms = 30000;

    const struct json_value *kind = json_get(v, "kind");
    join(sub, path, "kind");
    if (!kind) return bad(c, v, path, "provider %s needs kind: (%s)", p->name, model_kind_names());
    const char *k = text(c, kind, sub, "kind");
    if (!k) return KEEL_EINVAL;
    p->kind = model_kind_find(k);
    if (!p->kind)
        return bad(c, kind, sub, "unknown provider kind '%s'; expected one of: %s", k,
                   model_kind_names());

    const struct json_value *base = json_get(v, "base_url");
    join(sub, path, "base_url");
    if (!base)
        return bad(c, v, path, "provider %s needs base_url: (e.g. https://api.openai.com/v1)",
                   p->name);
    const char *url = text(c, base, sub, "base_url");
    if (!url) return KEEL_EINVAL;
    if ((strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) || strchr(url, ' ') ||
        base->len > 2000)
        return bad(c, base, sub, "base_url must be an http:// or https:// URL, e.g. "
                                 "https://api.openai.com/v1");
    size_t ulen = base->len;
    while (ulen > 0 && url[ulen - 1] == '/') ulen--;
    p->url = arena_printf(&c->g->a, "%.*s%s", (int)ulen, url, p->kind->path);
    p->max_tokens_field = p->kind->limit_fields[0];
    if (p->kind->native_host && url_host_is(url, p->kind->native_host))
        p->max_tokens_field = p->kind->native_limit_field;
    p->deadline_ref = arena_printf(&c->g->a, "models.providers.%s.deadline", p->name);

    const struct json_value *x;
    if ((x = json_get(v, "timeout"))) {
        join(sub, path, "timeout");
        if ((rc = duration(c, x, sub, "timeout", 3600000, &p->timeout_ms))) return rc;
        if (p->timeout_ms == 0) return bad(c, x, sub, "timeout must be more than 0");
    }
    p->connect_timeout_ms = p->timeout_ms < 10000 ? p->timeout_ms : 10000;
    if ((x = json_get(v, "retries"))) {
        int64_t n = 0;
        join(sub, path, "retries");
        if ((rc = integer(c, x, sub, "retries", 0, MODEL_MAX_RETRIES, &n))) return rc;
        p->retries = (int)n;
    }
    if ((x = json_get(v, "max_retry_wait"))) {
        join(sub, path, "max_retry_wait");
        if ((rc = duration(c, x, sub, "max_retry_wait", 3600000, &p->max_retry_wait_ms)))
            return rc;
    }
    if ((x = json_get(v, "deadline"))) {
        join(sub, path, "deadline");
        if ((rc = deadline(c, x, sub, &p->deadline_ms))) return rc;
    }
    if ((x = json_get(v, "max_tokens_field"))) {
        join(sub, path, "max_tokens_field");
        if ((rc = limit_field(c, p, x, sub, &p->max_tokens_field))) return rc;
    }
    if ((x = json_get(v, "headers"))) {
        join(sub, path, "headers");
        if ((rc = headers(c, p, x, sub))) return rc;
    }
    if ((x = json_get(v, "api_key"))) {
        join(sub, path, "api_key");
        if ((rc = api_key(c, p, x, sub))) return rc;
    }
    return 0;
}

/* ---- models -------------------------------------------------------------- */

static struct model_provider *provider_find(const struct model_gateway *g, const char *name)
{
    for (size_t i = 0; i < g->nproviders; i++)
        if (!strcmp(g->providers[i].name, name)) return &g->providers[i];
    return NULL;
}

static int price(struct cfg *c, struct model_def *m, const struct json_value *v, const char *path)
{
    static const char *const allowed[] = {"input", "output", NULL};
    if (!json_is(v, JSON_OBJECT))
        return bad(c, v, path, "price must be {input: USD, output: USD} per million tokens");
    int rc = fields(c, v, path, allowed, "price");
    if (rc) return rc;
    double *dst[2] = {&m->price_input, &m->price_output};
    for (size_t i = 0; i < 2; i++) {
        const struct json_value *x = json_get(v, allowed[i]);
        char sub[KEEL_ERR_PATH_MAX];
        join(sub, path, allowed[i]);
        if (!x)
            return bad(c, v, path, "price needs %s: (USD per million %s tokens)", allowed[i],
                       allowed[i]);
        if (!json_is(x, JSON_NUMBER) || !isfinite(x->u.n.d) || x->u.n.d < 0 || x->u.n.d > 1e6)
            return bad(c, x, sub, "price %s must be a number of USD per million tokens (0 to "
                                  "1000000)",
                       allowed[i]);
        *dst[i] = x->u.n.d;
    }
    m->has_price = true;
    return 0;
}

static int model(struct cfg *c, struct model_def *m, const struct json_value *v, const char *path)
{
    static const char *const allowed[] = {"provider",         "model", "context", "max_output",
                                          "max_tokens_field", "price", NULL};
    if (!json_is(v, JSON_OBJECT))
        return bad(c, v, path, "model %s must be a mapping {provider, model, ...}", m->name);
    int rc = fields(c, v, path, allowed, "a model");
    if (rc) return rc;
    char sub[KEEL_ERR_PATH_MAX];
    const struct json_value *x = json_get(v, "provider");
    join(sub, path, "provider");
    if (!x) return bad(c, v, path, "model %s needs provider: (a name under models.providers)",
                       m->name);
    const char *pn = text(c, x, sub, "provider");
    if (!pn) return KEEL_EINVAL;
    m->provider = provider_find(c->g, pn);
    if (!m->provider)
        return bad(c, x, sub, "model %s names provider '%s', which is not declared under "
                              "models.providers",
                   m->name, pn);
    x = json_get(v, "model");
    join(sub, path, "model");
    if (!x) return bad(c, v, path, "model %s needs model: (the provider's model id)", m->name);
    if (!(m->provider_model = text(c, x, sub, "model"))) return KEEL_EINVAL;
    m->context = MODEL_DEFAULT_CONTEXT;
    if ((x = json_get(v, "context"))) {
        join(sub, path, "context");
        if ((rc = integer(c, x, sub, "context", 1, 100000000, &m->context))) return rc;
    }
    if ((x = json_get(v, "max_output"))) {
        join(sub, path, "max_output");
        if ((rc = integer(c, x, sub, "max_output", 1, 10000000, &m->max_output))) return rc;
    }
    m->max_tokens_field = m->provider->max_tokens_field;
    if ((x = json_get(v, "max_tokens_field"))) {
        join(sub, path, "max_tokens_field");
        if ((rc = limit_field(c, m->provider, x, sub, &m->max_tokens_field))) return rc;
    }
    if ((x = json_get(v, "price"))) {
        join(sub, path, "price");
        if ((rc = price(c, m, x, sub))) return rc;
    }
    return 0;
}

/* ---- routes -------------------------------------------------------------- */

/* A name under models.models, or NULL after reporting. */
static struct model_def *model_ref(struct cfg *c, const struct json_value *v, const char *path,
                                   const char *what)
{
    const char *n = text(c, v, path, what);
    if (!n) return NULL;
    struct model_def *m = model_find(c->g, n);
    if (!m) {
        char list[400] = "";
        size_t k = 0;
        for (size_t i = 0; i < c->g->nmodels && k < sizeof list; i++)
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "",
                                  c->g->models[i].name);
        bad(c, v, path, "%s '%s' is not a model declared under models.models (declared: %s)",
            what, n, c->g->nmodels ? list : "none");
    }
    return m;
}

static int rule(struct cfg *c, struct model_rule *r, const struct json_value *v, const char *path)
{
    static const char *const allowed[] = {"tag",       "agent", "min_prompt_tokens",
                                          "min_tools", "model", NULL};
    if (!json_is(v, JSON_OBJECT))
        return bad(c, v, path, "a rule must be a mapping like {tag: triage, model: small}");
    int rc = fields(c, v, path, allowed, "a rule");
    if (rc) return rc;
    char sub[KEEL_ERR_PATH_MAX];
    struct buf why;
    buf_init(&why);
    r->min_prompt_tokens = -1;
    r->min_tools = -1;
    const struct json_value *x;
    if ((x = json_get(v, "tag"))) {
        join(sub, path, "tag");
        if (!(r->tag = text(c, x, sub, "tag"))) goto fail;
        buf_printf(&why, "tag=%s", r->tag);
    }
    if ((x = json_get(v, "agent"))) {
        join(sub, path, "agent");
        if (!(r->agent = text(c, x, sub, "agent"))) goto fail;
        buf_printf(&why, "%sagent=%s", why.len ? "," : "", r->agent);
    }
    if ((x = json_get(v, "min_prompt_tokens"))) {
        join(sub, path, "min_prompt_tokens");
        if (integer(c, x, sub, "min_prompt_tokens", 0, INT64_C(1) << 40, &r->min_prompt_tokens))
            goto fail;
        buf_printf(&why, "%sprompt_tokens>=%lld", why.len ? "," : "",
                   (long long)r->min_prompt_tokens);
    }
    if ((x = json_get(v, "min_tools"))) {
        join(sub, path, "min_tools");
        if (integer(c, x, sub, "min_tools", 0, 1000000, &r->min_tools)) goto fail;
        buf_printf(&why, "%stools>=%lld", why.len ? "," : "", (long long)r->min_tools);
    }
    if (!why.len) {
        bad(c, v, path, "a rule needs at least one condition: tag, agent, min_prompt_tokens or "
                        "min_tools (the route's model: applies when no rule matches)");
        goto fail;
    }
    x = json_get(v, "model");
    join(sub, path, "model");
    if (!x) {
        bad(c, v, path, "a rule needs model: (the model it picks)");
        goto fail;
    }
    if (!(r->model = model_ref(c, x, sub, "model"))) goto fail;
    r->why = arena_strdup(&c->g->a, why.data);
    buf_cleanup(&why);
    return 0;
fail:
    buf_cleanup(&why);
    return KEEL_EINVAL;
}

static int route(struct cfg *c, struct model_routedef *rt, const struct json_value *v,
                 const char *path)
{
    static const char *const allowed[] = {"rules", "model", "fallback", "deadline", NULL};
    if (!json_is(v, JSON_OBJECT))
        return bad(c, v, path, "route %s must be a mapping {rules, model, fallback}", rt->name);
    int rc = fields(c, v, path, allowed, "a route");
    if (rc) return rc;
    char sub[KEEL_ERR_PATH_MAX];
    const struct json_value *x;
    if (model_find(c->g, rt->name))
        return bad(c, v, path, "route %s has the name of a declared model; rename one of them",
                   rt->name);
    rt->deadline_ref = arena_printf(&c->g->a, "models.routes.%s.deadline", rt->name);
    if ((x = json_get(v, "deadline"))) {
        join(sub, path, "deadline");
        if ((rc = deadline(c, x, sub, &rt->deadline_ms))) return rc;
    }
    if ((x = json_get(v, "rules"))) {
        join(sub, path, "rules");
        if (!json_is(x, JSON_ARRAY)) return bad(c, x, sub, "rules must be a list of rules");
        if (x->len > MODEL_MAX_RULES)
            return bad(c, x, sub, "at most %d rules per route", MODEL_MAX_RULES);
        rt->rules = arena_zalloc(&c->g->a, (x->len + 1) * sizeof *rt->rules);
        rt->nrules = x->len;
        for (uint32_t i = 0; i < x->len; i++) {
            char rp[KEEL_ERR_PATH_MAX];
            joini(rp, sub, i);
            if ((rc = rule(c, &rt->rules[i], x->u.items[i], rp))) return rc;
        }
    }
    x = json_get(v, "model");
    join(sub, path, "model");
    if (!x) return bad(c, v, path, "route %s needs model: (used when no rule matches)", rt->name);
    if (!(rt->model = model_ref(c, x, sub, "model"))) return KEEL_EINVAL;
    if ((x = json_get(v, "fallback"))) {
        join(sub, path, "fallback");
        if (json_is(x, JSON_STRING)) {
            if (!(rt->fallbacks[0] = model_ref(c, x, sub, "fallback"))) return KEEL_EINVAL;
            return 0;
        }
        if (!json_is(x, JSON_ARRAY)) return bad(c, x, sub, "fallback must be a list of models");
        if (x->len > MODEL_MAX_FALLBACKS)
            return bad(c, x, sub, "at most %d fallbacks per route", MODEL_MAX_FALLBACKS);
        for (uint32_t i = 0; i < x->len; i++) {
            char fp[KEEL_ERR_PATH_MAX];
            joini(fp, sub, i);
            if (!(rt->fallbacks[i] = model_ref(c, x->u.items[i], fp, "fallback")))
                return KEEL_EINVAL;
        }
    }
    return 0;
}

/* ---- the section --------------------------------------------------------- */

/* Checks that v is a mapping of plain names with at most MODEL_MAX_DECLARED
 * members. */
static int names(struct cfg *c, const struct json_value *v, const char *path, const char *what)
{
    if (!json_is(v, JSON_OBJECT))
        return bad(c, v, path, "%s must be a mapping of names to declarations", what);
    if (v->len > MODEL_MAX_DECLARED)
        return bad(c, v, path, "at most %d %s", MODEL_MAX_DECLARED, what);
    for (uint32_t i = 0; i < v->len; i++) {
        const struct json_member *m = &v->u.members[i];
        if (!plain_name(m->key, m->key_len)) {
            char sub[KEEL_ERR_PATH_MAX];
            join(sub, path, m->key);
            return bad(c, m->value, sub,
                       "name '%s' must be 1 to 128 letters, digits, '.', '_' or '-'", m->key);
        }
    }
    return 0;
}

static int load(struct cfg *c, const struct json_value *v)
{
    static const char *const allowed[] = {"providers", "models", "routes", NULL};
    struct model_gateway *g = c->g;
    if (!json_is(v, JSON_OBJECT))
        return bad(c, v, "/models", "models must be a mapping {providers, models, routes}");
    int rc = fields(c, v, "/models", allowed, "models");
    if (rc) return rc;
    const struct json_value *ps = json_get(v, "providers"), *ms = json_get(v, "models"),
                            *rs = json_get(v, "routes");
    if (ps) {
        if ((rc = names(c, ps, "/models/providers", "providers"))) return rc;
        g->providers = arena_zalloc(&g->a, (ps->len + 1) * sizeof *g->providers);
        for (uint32_t i = 0; i < ps->len; i++) {
            char p[KEEL_ERR_PATH_MAX];
            join(p, "/models/providers", ps->u.members[i].key);
            g->providers[i].name = arena_strdup(&g->a, ps->u.members[i].key);
            g->nproviders = i + 1; /* counted before parsing so a key read is freed */
            if ((rc = provider(c, &g->providers[i], ps->u.members[i].value, p))) return rc;
        }
    }
    if (ms) {
        if ((rc = names(c, ms, "/models/models", "models"))) return rc;
        g->models = arena_zalloc(&g->a, (ms->len + 1) * sizeof *g->models);
        for (uint32_t i = 0; i < ms->len; i++) {
            char p[KEEL_ERR_PATH_MAX];
            join(p, "/models/models", ms->u.members[i].key);
            g->models[i].name = arena_strdup(&g->a, ms->u.members[i].key);
            if ((rc = model(c, &g->models[i], ms->u.members[i].value, p))) return rc;
            g->nmodels = i + 1;
        }
    }
    if (rs) {
        if ((rc = names(c, rs, "/models/routes", "routes"))) return rc;
        g->routes = arena_zalloc(&g->a, (rs->len + 1) * sizeof *g->routes);
        for (uint32_t i = 0; i < rs->len; i++) {
            char p[KEEL_ERR_PATH_MAX];
            join(p, "/models/routes", rs->u.members[i].key);
            g->routes[i].name = arena_strdup(&g->a, rs->u.members[i].key);
            if ((rc = route(c, &g->routes[i], rs->u.members[i].value, p))) return rc;
            g->nroutes = i + 1;
        }
    }
    return 0;
}

/* Returns a new gateway in *out; free with model_gateway_free().  The
 * strings of models are copied (nothing is borrowed from it). */
int model_gateway_new(const struct json_value *models, const char *file, const char *dir,
                      struct model_gateway **out, struct keel_err *err)
{
    if (sodium_init() < 0) return keel_fail(err, KEEL_EINTERNAL, "libsodium failed to start");
    struct model_gateway *g = calloc(1, sizeof *g);
    if (!g) return keel_fail(err, KEEL_ENOMEM, "out of memory building the model gateway");
    arena_init(&g->a);
    struct json_value *copy = models ? json_clone(&g->a, models) : NULL;
    struct cfg c = {.g = g, .file = file, .dir = dir, .err = err};
    int rc = copy ? load(&c, copy) : 0;
    if (rc) {
        model_gateway_free(g);
        return rc;
    }
    *out = g;
    return 0;
}

/* Frees g, wiping the API keys first.  NULL is a no-op. */
void model_gateway_free(struct model_gateway *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->nproviders; i++) {
        struct model_provider *p = &g->providers[i];
        if (!p->key) continue;
        sodium_memzero(p->key, p->key_len + 1);
        (void)sodium_munlock(p->key, p->key_len + 1);
        free(p->key);
        p->key = NULL;
    }
    arena_cleanup(&g->a);
    free(g);
}
