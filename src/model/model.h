/*
 * model.h — the model gateway: calls language models over their HTTP APIs
 * (OpenAI-compatible Chat Completions, Anthropic Messages) through libcurl,
 * picks a model per call from declared routing rules, retries and falls back,
 * and prices every call.  docs/models.md documents the keel.yaml section and
 * the behaviour; this header is the only thing other parts include.
 *
 * The conversation format.  Callers speak ONE neutral shape, whatever the
 * provider; the providers translate it to and from their wire formats.
 *
 *   message  = {"role": "system"|"user"|"assistant"|"tool",
 *               "content": "text",                       (may be "" for an
 *                                                          assistant message
 *                                                          with tool calls)
 *               "tool_calls": [call, ...],               (assistant only)
 *               "tool_call_id": "id"}                    (tool only: which call
 *                                                          this is the result of)
 *   call     = {"id": "call_1", "name": "crm__lookup_account",
 *               "arguments": {...}}                      (arguments is a JSON
 *                                                          value, normally an
 *                                                          object; a provider
 *                                                          reply whose arguments
 *                                                          are not valid JSON
 *                                                          gives the raw text as
 *                                                          a string plus
 *                                                          "arguments_invalid":
 *                                                          true)
 *   tool     = {"name": "crm__lookup_account", "description": "...",
 *               "input_schema": {...JSON Schema...}}
 *
 * Tool names must match ^[A-Za-z0-9_-]{1,64}$ (the providers' rule); the
 * agent part maps "server/tool" to "server__tool".
 *
 * Secrets.  API keys are named in keel.yaml by reference (an environment
 * variable or a file), read when the gateway is built, held only in the
 * gateway, sent only in the provider's auth header, and never written into a
 * response, an error message, a log line or anything else this part returns.
 */
#ifndef KEEL_MODEL_H
#define KEEL_MODEL_H

#include "../json/json.h"
#include "../util/util.h"

struct model_gateway;

/* Builds a gateway from the "models:" value of keel.yaml (may be NULL: a
 * gateway with no models, on which every call fails with KEEL_ENOENT).
 * file names keel.yaml for error positions; dir is its folder (relative
 * key files resolve against it).  Every problem is reported with
 * file:line:column and the JSON Pointer of the offending value (err->path,
 * e.g. "/models/providers/local/api_key"); a key reference that cannot be
 * resolved (unset variable, unreadable file) is an error here, at load
 * time, not at the first call.  Returns a new gateway in *out; free with
 * model_gateway_free().  Thread-safe once built: model_call may run on many
 * threads at once. */
int model_gateway_new(const struct json_value *models, const char *file, const char *dir,
                      struct model_gateway **out, struct keel_err *err);
void model_gateway_free(struct model_gateway *g);

/* Is name a declared model or route?  */
bool model_gateway_has(const struct model_gateway *g, const char *name);

/* The context budget (tokens) of a declared model; 0 if unknown. */
int64_t model_context_tokens(const struct model_gateway *g, const char *model);

/* Cost in USD of a call to model with these token counts, from the price
 * table; 0 if the model has no price. */
double model_cost_usd(const struct model_gateway *g, const char *model, int64_t input_tokens,
                      int64_t output_tokens);

/* A rough, deterministic token estimate of messages + tools (about 4 bytes
 * of JSON per token), used for routing and for the context budget before
 * the provider reports real usage. */
int64_t model_estimate_tokens(const struct json_value *messages, const struct json_value *tools);

/* What a call asks for. */
struct model_request {
    const char *route;     /* a route or model name; NULL: the "default" route      */
    const char *tag;       /* the step's tag, for routing rules (may be NULL)       */
    const char *agent;     /* acting agent "team/name", for routing (may be NULL)   */
    const struct json_value *messages; /* neutral messages (array), required        */
    const struct json_value *tools;    /* neutral tools (array), or NULL            */
    const struct json_value *output_schema; /* JSON Schema the final answer must
                                               follow (structured output), or NULL */
    int64_t max_output_tokens;         /* 0: the model's default                    */
};

/* Which model a request goes to first, and the fallbacks after it. */
struct model_route_choice {
    const char *model;         /* declared model name (borrowed from the gateway) */
    const char *rule;          /* why: "tag=triage", "prompt_tokens>=4000",
                                  "default", "model" (request named a model)    */
    const char *fallbacks[8];  /* declared model names tried next, NULL-ended   */
    int64_t deadline_ms;       /* the whole call's time limit: the route's
                                  deadline, else the chosen model's provider's,
                                  else 5 minutes                                */
    const char *deadline_ref;  /* the keel.yaml setting it came from, e.g.
                                  "models.routes.default.deadline"; NULL for
                                  the built-in default                          */
};

/* Picks the model for r by the route's rules, first match wins (tag,
 * agent, min_prompt_tokens, min_tools).  Deterministic.  KEEL_ENOENT if
 * r->route names neither a route nor a model. */
int model_route(const struct model_gateway *g, const struct model_request *r,
                struct model_route_choice *out, struct keel_err *err);

/* What a call returned. */
struct model_response {
    struct json_value *message;  /* neutral assistant message (content, tool_calls) */
    const char *stop_reason;     /* "end" | "tool_calls" | "length" | "other"       */
    const char *model;           /* declared model name that answered               */
    const char *provider;        /* declared provider name                          */
    const char *provider_model;  /* the provider's model id ("gpt-4o-mini")         */
    int64_t input_tokens;        /* as the provider reported (estimated if not)     */
    int64_t output_tokens;
    double cost_usd;
    int attempts;                /* HTTP requests made, over all models tried       */
    struct json_value *trail;    /* [{model, status, error, retry_after_ms}] of the
                                    failed attempts before the answer (or []);
                                    also "code" (keel_strerror name) and "wait_ms"
                                    (time waited before the next attempt); status
                                    is 0 when no HTTP response came, retry_after_ms
                                    null when the server sent no Retry-After      */
};

/* Calls the model chosen by model_route, retrying on 429/5xx/timeouts with
 * jittered exponential backoff that honours Retry-After (seconds or an HTTP
 * date; a wait longer than the provider's max_retry_wait fails the attempt
 * instead of sleeping), then the route's fallbacks in order, all within the
 * choice's deadline_ms: no attempt starts with less than 100 ms of it left,
 * a Retry-After that would end past it fails that attempt at once, and each
 * HTTP timeout is cut to what is left.  Everything in *out is allocated in
 * a.  Errors: KEEL_ENOENT (unknown route/model), KEEL_EBUSY (rate limited
 * after the retries; err->msg says when to retry), KEEL_ETIMEOUT (an HTTP
 * timeout, or the deadline: err->msg then lists what was tried and names the
 * setting), KEEL_EIO (HTTP/transport), KEEL_EPROTO (a reply that is not
 * the provider's JSON format; the message quotes at most 200 bytes of it),
 * KEEL_EDENIED (401/403: check the key — the key itself is never quoted).
 * On failure *out is untouched except out->trail (if non-NULL on entry it is
 * not touched at all; pass a zeroed struct). */
int model_call(struct model_gateway *g, const struct model_request *r, struct arena *a,
               struct model_response *out, struct keel_err *err);

/* ---- provider wire formats (exposed for tests and fuzzing) -------------- */

/* Builds the provider's HTTP request body for r sent to provider_model.
 * kind is "openai" or "anthropic".  limit_field names the member that
 * carries r->max_output_tokens: for openai "max_tokens" or
 * "max_completion_tokens" (keel.yaml's max_tokens_field), for anthropic
 * "max_tokens"; NULL means "max_tokens".  Returns a new JSON value in a. */
int model_wire_request(const char *kind, const char *provider_model, const char *limit_field,
                       const struct model_request *r, struct arena *a, struct json_value **out,
                       struct keel_err *err);

/* Parses a provider's HTTP response body (text, len bytes) into *out
 * (message, stop_reason, input_tokens, output_tokens; other fields left as
 * they were; a token count the reply does not give is -1).  Any input may
 * come here (it is what a remote server sent): a body that is not the
 * format fails with KEEL_EPROTO, never crashes. */
int model_wire_response(const char *kind, const char *text, size_t len, struct arena *a,
                        struct model_response *out, struct keel_err *err);

#endif
