/*
 * internal.h — declarations shared between the files of src/model/ only.
 * Other parts include model.h.
 *
 *   config.c  the keel.yaml "models:" section -> struct model_gateway
 *   route.c   routing rules, the price table, token estimates
 *   wire.c    neutral conversation <-> OpenAI / Anthropic wire formats
 *   call.c    HTTP over libcurl, retries with backoff, fallbacks
 */
#ifndef KEEL_MODEL_INTERNAL_H
#define KEEL_MODEL_INTERNAL_H

#include "model.h"

/* Limits on what keel.yaml may declare (each a positioned error when
 * exceeded) and on what a provider may send back. */
#define MODEL_MAX_DECLARED 256        /* providers, models, routes, each     */
#define MODEL_MAX_RULES 256           /* rules per route                     */
#define MODEL_MAX_FALLBACKS 7         /* fallbacks[8] is NULL-ended          */
#define MODEL_MAX_HEADERS 32          /* extra headers per provider          */
#define MODEL_MAX_RETRIES 10          /* retries per model                   */
#define MODEL_MAX_KEY 16384           /* bytes in an API key (file or env)   */
#define MODEL_MAX_BODY (16u << 20)    /* bytes in a provider's reply         */
#define MODEL_QUOTE_MAX 200           /* bytes of a bad reply quoted in errors */
#define MODEL_DEFAULT_MAX_OUTPUT 1024 /* anthropic needs max_tokens          */
#define MODEL_DEFAULT_CONTEXT 8192
#define MODEL_DEFAULT_DEADLINE_MS 300000 /* a whole model_call: 5 min          */
#define MODEL_MAX_DEADLINE_MS 86400000   /* deadline: at most 24 h            */
#define MODEL_MIN_ATTEMPT_MS 100 /* an attempt is not started with less left:
                                    no server answers a request that soon, and
                                    one abandoned that fast may still be billed */

/* One provider wire format: the kind's name, the path appended to
 * base_url, how the key is sent, and the functions that speak it (wire.c).
 * A provider's own header of the same name replaces a fixed header. */
struct model_kind {
    const char *name;
    const char *path;
    const char *auth;          /* header line prefix the key follows           */
    const char *const *fixed;  /* headers every request carries, NULL-ended    */
    const char *const *limit_fields; /* names the output limit may be sent
                                        under, NULL-ended; the first is the
                                        default ...                         */
    const char *native_host;        /* ... except at this host (the vendor's
                                        own API; NULL: none), which gets    */
    const char *native_limit_field; /* this one                            */
    int (*request)(const char *provider_model, const char *limit_field,
                   const struct model_request *r, struct arena *a, struct json_value **out,
                   struct keel_err *err);
    int (*response)(const struct json_value *reply, struct arena *a,
                    struct model_response *out, struct keel_err *err);
};

/* The kind called name, or NULL (wire.c's table). */
const struct model_kind *model_kind_find(const char *name);
/* "openai, anthropic" for messages (static). */
const char *model_kind_names(void);
/* The row of k->limit_fields equal to name (static), or NULL. */
const char *model_limit_field(const struct model_kind *k, const char *name);
/* "max_tokens or max_completion_tokens": k's limit fields, for messages. */
void model_limit_field_names(const struct model_kind *k, char *out, size_t cap);

struct model_provider {
    const char *name;
    const struct model_kind *kind;
    const char *url;       /* base_url + kind->path                              */
    const char *key_ref;   /* "models.providers.<name>.api_key", for messages      */
    char *key;             /* the API key (sodium-locked, zeroed on free), or NULL */
    size_t key_len;
    int64_t timeout_ms;
    int64_t connect_timeout_ms;
    int retries;
    int64_t max_retry_wait_ms;
    int64_t deadline_ms;   /* 0: not declared                                   */
    const char *deadline_ref; /* "models.providers.<name>.deadline"            */
    const char *max_tokens_field; /* where the output limit goes (a row of
                                     kind->limit_fields)                       */
    const char **headers;  /* "Name: value" lines                               */
    size_t nheaders;
};

struct model_def {
    const char *name;
    struct model_provider *provider;
    const char *provider_model;
    int64_t context;
    int64_t max_output;    /* 0 when not declared (openai then sends none)       */
    const char *max_tokens_field; /* the model's own, else its provider's      */
    bool has_price;
    double price_input;    /* USD per million tokens */
    double price_output;
};

struct model_rule {
    const char *tag;       /* NULL: any                                          */
    const char *agent;
    int64_t min_prompt_tokens; /* -1: not a condition                          */
    int64_t min_tools;
    const char *why;       /* "tag=triage", "prompt_tokens>=4000", ...            */
    struct model_def *model;
};

struct model_routedef {
    const char *name;
    struct model_rule *rules;
    size_t nrules;
    struct model_def *model; /* when no rule matches */
    struct model_def *fallbacks[MODEL_MAX_FALLBACKS + 1];
    int64_t deadline_ms;      /* 0: not declared                                */
    const char *deadline_ref; /* "models.routes.<name>.deadline"               */
};

struct model_gateway {
    struct arena a; /* every name, url and table above (keys excepted) */
    struct model_provider *providers;
    size_t nproviders;
    struct model_def *models;
    size_t nmodels;
    struct model_routedef *routes;
    size_t nroutes;
};

/* Lookups by name (NULL if absent). */
struct model_def *model_find(const struct model_gateway *g, const char *name);
struct model_routedef *model_route_find(const struct model_gateway *g, const char *name);

/* Replaces every occurrence of each provider's key in s (in place, NUL-
 * terminated, at most cap bytes) by "[redacted]".  Defence in depth: the
 * key is never put into text on purpose, but a remote body quoted in an
 * error could echo it. */
void model_scrub(const struct model_gateway *g, char *s, size_t cap);

/* Parses a Retry-After header value (delay-seconds, or an HTTP date
 * compared with now_ms, the wall clock) or, when is_ms, OpenAI's
 * retry-after-ms (milliseconds).  Returns the wait in ms (0 for a date in
 * the past, capped at 1e10), or -1 when the value is not one of those. */
int64_t model_retry_after_ms(const char *value, size_t len, bool is_ms, int64_t now_ms);

/* Appends at most max bytes of s (len bytes) to out as a quoted, escaped
 * excerpt, with "..." when cut. */
void model_quote(struct buf *out, const char *s, size_t len, size_t max);

#endif
