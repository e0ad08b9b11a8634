/*
 * call.c — model_call: one HTTP POST per attempt over libcurl, retries with
 * jittered exponential backoff that honours Retry-After, then the route's
 * fallbacks.  Reference: docs/models.md, "Retries and fallbacks".
 *
 *   for each model in [chosen, fallbacks...]:
 *       for attempt in 0..retries:
 *           POST -> 2xx ------------------------> parse -> answer (done)
 *                                                       \-> EPROTO: next model
 *                -> 429/500/502/503/504/529,
 *                   transport error, timeout --> wait, next attempt
 *                                                (Retry-After > max_retry_wait,
 *                                                 or no attempts left: next model)
 *                -> anything else (400, 401, 403, 404, 422, ...): next model
 *
 * The wait before a retry is the server's Retry-After (seconds or an HTTP
 * date, or OpenAI's retry-after-ms) when it sent one, else full jitter:
 * uniform in [0, min(8 s, 500 ms * 2^attempt)].
 *
 * The deadline.  The whole call (every attempt, wait and fallback) has one
 * deadline on the monotonic clock (struct clock), chosen by model_route.
 * Invariants: no attempt starts with less than MODEL_MIN_ATTEMPT_MS left;
 * each attempt's HTTP timeout is the provider's timeout or what is left,
 * whichever is smaller; a wait never ends less than MODEL_MIN_ATTEMPT_MS
 * before the deadline (a jittered backoff is shortened to fit, a
 * Retry-After is not: that model's attempts end there, as for one over
 * max_retry_wait).  When the deadline is what ended the call, it fails
 * with KEEL_ETIMEOUT and a message listing what was tried and naming the
 * setting to change.
 *
 * Secrets: the key is copied only into the auth header line (built in
 * locked memory and wiped) and into curl's copy of the header list (wiped
 * before it is freed).  Every message built here from remote text passes
 * through model_scrub, so a server echoing the key cannot put it into an
 * error, the trail or a log line.
 *
 * Thread safety: the gateway is read-only here; each call has its own curl
 * easy handle (reused across that call's attempts, for its connection
 * cache); curl_global_init runs once (pthread_once).
 */
#include "internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 8000

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_started = CURLE_FAILED_INIT;

static void curl_start(void)
{
    curl_started = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- one HTTP exchange ----------------------------------------------------- */

struct http {
    long status;             /* 0 when no response came                        */
    int64_t timeout_ms;      /* the limit this exchange had                   */
    struct buf body;
    bool too_big;
    int64_t retry_after_ms;  /* -1: the server said nothing                    */
    bool retry_after_precise; /* it came from retry-after-ms                    */
    CURLcode rc;
    char curl_msg[CURL_ERROR_SIZE];
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct http *h = ud;
    size_t len = size * n;
    if (len > MODEL_MAX_BODY || h->body.len + len > MODEL_MAX_BODY) {
        h->too_big = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    buf_append(&h->body, p, len);
    return len;
}

/* See internal.h.  Nothing allocated. */
int64_t model_retry_after_ms(const char *v, size_t len, bool is_ms, int64_t now_ms)
{
    char s[64];
    if (!v || len == 0 || len >= sizeof s) return -1;
    memcpy(s, v, len);
    s[len] = '\0';
    if (s[0] >= '0' && s[0] <= '9') {
        char *end;
        errno = 0;
        double n = strtod(s, &end);
        if (errno || *end || !isfinite(n) || n < 0) return -1;
        double ms = is_ms ? n : n * 1000.0;
        return ms > 1e10 ? (int64_t)1e10 : (int64_t)ceil(ms);
    }
    if (is_ms) return -1;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end) return -1;
    int64_t when = (int64_t)timegm(&tm) * 1000;
    if (when <= now_ms) return 0;
    return when - now_ms > (int64_t)1e10 ? (int64_t)1e10 : when - now_ms;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct http *h = ud;
    size_t len = size * n;
    if (len >= 5 && !strncmp(p, "HTTP/", 5)) { /* a new response (after a 100, say) */
        h->retry_after_ms = -1;
        h->retry_after_precise = false;
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon) return len;
    size_t name_len = (size_t)(colon - p);
    const char *v = colon + 1, *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
    /* OpenAI's retry-after-ms is more precise than Retry-After: it wins,
     * whichever comes first. */
    if (name_len == 14 && !strncasecmp(p, "retry-after-ms", 14)) {
        int64_t ms = model_retry_after_ms(v, (size_t)(end - v), true, keel_wall_ms());
        if (ms >= 0) {
            h->retry_after_ms = ms;
            h->retry_after_precise = true;
        }
    } else if (name_len == 11 && !strncasecmp(p, "retry-after", 11) && !h->retry_after_precise) {
        h->retry_after_ms = model_retry_after_ms(v, (size_t)(end - v), false, keel_wall_ms());
    }
    return len;
}

/* Appends line (which may hold the key) to the list; the list's copy is
 * wiped in wipe_headers. */
static struct curl_slist *add_header(struct curl_slist *l, const char *line, bool *ok)
{
    struct curl_slist *n = curl_slist_append(l, line);
    if (!n) {
        *ok = false;
        return l;
    }
    return n;
}

static void wipe_headers(struct curl_slist *l)
{
    for (struct curl_slist *s = l; s; s = s->next) sodium_memzero(s->data, strlen(s->data));
    curl_slist_free_all(l);
}

static bool provider_sets(const struct model_provider *p, const char *fixed)
{
    const char *colon = strchr(fixed, ':');
    size_t n = colon ? (size_t)(colon - fixed) : strlen(fixed);
    for (size_t i = 0; i < p->nheaders; i++)
        if (!strncasecmp(p->headers[i], fixed, n) && p->headers[i][n] == ':') return true;
    return false;
}

/* POSTs body to p's endpoint over c (the call's handle: reset here, so
 * only its connection cache carries over between attempts) with at most
 * timeout_ms (> 0) for the whole exchange; the outcome is in *h (init'd
 * here). */
static void post(CURL *c, const struct model_provider *p, const char *body, size_t len,
                 int64_t timeout_ms, struct http *h)
{
    memset(h, 0, sizeof *h);
    buf_init(&h->body);
    h->retry_after_ms = -1;
    h->timeout_ms = timeout_ms;
    curl_easy_reset(c);
    bool ok = true;
    struct curl_slist *hdrs = NULL;
    hdrs = add_header(hdrs, "Content-Type: application/json", &ok);
    hdrs = add_header(hdrs, "Expect:", &ok);
    for (size_t i = 0; p->kind->fixed[i]; i++)
        if (!provider_sets(p, p->kind->fixed[i])) hdrs = add_header(hdrs, p->kind->fixed[i], &ok);
    for (size_t i = 0; i < p->nheaders; i++) hdrs = add_header(hdrs, p->headers[i], &ok);
    if (p->key) {
        size_t n = strlen(p->kind->auth) + p->key_len + 1;
        char *line = malloc(n);
        if (!line) abort();
        (void)sodium_mlock(line, n);
        memcpy(line, p->kind->auth, strlen(p->kind->auth));
        memcpy(line + strlen(p->kind->auth), p->key, p->key_len + 1);
        hdrs = add_header(hdrs, line, &ok);
        sodium_memzero(line, n);
        (void)sodium_munlock(line, n);
        free(line);
    }
    if (!ok) {
        h->rc = CURLE_OUT_OF_MEMORY;
        snprintf(h->curl_msg, sizeof h->curl_msg, "out of memory building headers");
        wipe_headers(hdrs);
        return;
    }
    curl_easy_setopt(c, CURLOPT_URL, p->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "keel");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(p->connect_timeout_ms < timeout_ms ? p->connect_timeout_ms
                                                               : timeout_ms));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->curl_msg);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    h->rc = curl_easy_perform(c);
    if (h->rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status);
    else if (!h->curl_msg[0])
        snprintf(h->curl_msg, sizeof h->curl_msg, "%s", curl_easy_strerror(h->rc));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    wipe_headers(hdrs);
}

/* ---- classifying an attempt ------------------------------------------------ */

/* Statuses with a meaning of their own; any other non-2xx is a plain
 * KEEL_EIO without retry. */
static const struct {
    long status;
    bool retry;
    int code;
} statuses[] = {
    {429, true, KEEL_EBUSY},   {500, true, KEEL_EIO},     {502, true, KEEL_EIO},
    {503, true, KEEL_EIO},     {504, true, KEEL_EIO},     {529, true, KEEL_EIO},
    {401, false, KEEL_EDENIED}, {403, false, KEEL_EDENIED},
};

struct outcome {
    int code;       /* 0: answered                                       */
    bool retry;
    bool deadline;  /* the call's deadline ended this model's attempts   */
    long status;
    int64_t retry_after_ms;
    char msg[KEEL_ERR_MSG_MAX];
};

/* The call's deadline on the monotonic clock. */
struct clock {
    int64_t end_ms;      /* keel_mono_ns() / 1e6 at which the call must end */
    int64_t deadline_ms; /* the setting's value                             */
    const char *setting; /* where to change it: "models.routes.x.deadline"  */
    bool is_default;     /* the setting is absent: the built-in default     */
};

static int64_t mono_ms(void)
{
    return keel_mono_ns() / 1000000;
}

static int64_t left_ms(const struct clock *k)
{
    return k->end_ms - mono_ms();
}

/* "2000 ms, models.routes.x.deadline" or "300000 ms, the default; set
 * models.routes.x.deadline to change it", for messages. */
static void clock_describe(const struct clock *k, char *out, size_t cap)
{
    if (k->is_default)
        snprintf(out, cap, "%lld ms, the default; set %s to change it",
                 (long long)k->deadline_ms, k->setting);
    else
        snprintf(out, cap, "%lld ms, %s", (long long)k->deadline_ms, k->setting);
}

/* Appends to o->msg (NUL-terminated, cut at its size). */
static void msg_append(struct outcome *o, const char *fmt, ...) KEEL_PRINTF(2, 3);
static void msg_append(struct outcome *o, const char *fmt, ...)
{
    size_t n = strlen(o->msg);
    if (n + 1 >= sizeof o->msg) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->msg + n, sizeof o->msg - n, fmt, ap);
    va_end(ap);
}

/* A 400 about the output-limit field (OpenAI: "Unsupported parameter:
 * 'max_tokens' is not supported with this model. Use 'max_completion_tokens'
 * instead."; a server that predates it: "Unrecognized request argument
 * supplied: max_completion_tokens") is most likely keel.yaml's
 * max_tokens_field: say which field Keel sent and how to switch.  text is
 * the quoted reply. */
static void limit_hint(const struct model_def *m, const char *text, struct outcome *o)
{
    static const char *const refusals[] = {"unsupported",   "not supported", "unrecognized",
                                           "unknown",       "not permitted", "not allowed",
                                           "instead"};
    const char *const *f = m->provider->kind->limit_fields;
    const char *sent = m->max_tokens_field, *other = NULL;
    for (size_t i = 0; f[i] && !other; i++)
        if (f[i] != sent) other = f[i];
    if (!other) return; /* the kind has one field: nothing to switch to */
    bool refused = false;
    for (size_t i = 0; i < KEEL_ARRAY_LEN(refusals) && !refused; i++)
        refused = strcasestr(text, refusals[i]) != NULL;
    /* Only a refusal that names a limit field: "max_tokens is too large"
     * is about the value, not the field. */
    if (!refused || (!strstr(text, other) && !strstr(text, sent))) return;
    msg_append(o,
               "; Keel sent the output limit as %s: if model %s takes %s, set "
               "max_tokens_field: %s on models.models.%s (or on its provider) in keel.yaml",
               sent, m->name, other, other, m->name);
}

/* An excerpt of an error reply: its error.message when it is JSON with
 * one, else the first bytes of the body. */
static void excerpt(struct buf *out, const struct http *h)
{
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    struct json_parse_opts o = {.max_depth = 64, .dup = JSON_DUP_LAST};
    const char *m = NULL;
    if (h->body.len && json_parse(&a, h->body.data, h->body.len, &o, &v, NULL) == 0) {
        const struct json_value *e = json_get(v, "error");
        m = json_is(e, JSON_STRING) ? e->u.s.str : json_get_str(e, "message", NULL);
        if (!m) m = json_get_str(v, "message", NULL);
    }
    if (m) model_quote(out, m, strlen(m), MODEL_QUOTE_MAX);
    else if (h->body.len) model_quote(out, h->body.data, h->body.len, MODEL_QUOTE_MAX);
    else buf_puts(out, "(empty body)");
    arena_cleanup(&a);
}

static void classify(const struct model_provider *p, const struct model_def *m,
                     const struct http *h, const struct clock *k, bool limit_sent,
                     struct outcome *o)
{
    memset(o, 0, sizeof *o);
    o->retry_after_ms = h->retry_after_ms;
    o->status = h->status;
    if (h->rc != CURLE_OK) {
        if (h->too_big) {
            o->code = KEEL_ELIMIT;
            snprintf(o->msg, sizeof o->msg,
                     "provider %s sent a reply over %u MiB for model %s; Keel refuses it",
                     p->name, MODEL_MAX_BODY >> 20, m->name);
        } else if (h->rc == CURLE_OPERATION_TIMEDOUT && h->timeout_ms < p->timeout_ms) {
            char d[300];
            clock_describe(k, d, sizeof d);
            o->code = KEEL_ETIMEOUT;
            o->retry = true;
            o->deadline = true;
            snprintf(o->msg, sizeof o->msg,
                     "provider %s did not answer within %lld ms for model %s (%s): that was "
                     "what was left of the call's deadline (%s), less than the provider's "
                     "timeout of %lld ms",
                     p->name, (long long)h->timeout_ms, m->name, h->curl_msg, d,
                     (long long)p->timeout_ms);
        } else if (h->rc == CURLE_OPERATION_TIMEDOUT) {
            o->code = KEEL_ETIMEOUT;
            o->retry = true;
            snprintf(o->msg, sizeof o->msg,
                     "provider %s did not answer within %lld ms for model %s (%s); raise "
                     "models.providers.%s.timeout or check the server",
                     p->name, (long long)h->timeout_ms, m->name, h->curl_msg, p->name);
        } else {
            o->code = KEEL_EIO;
            o->retry = true;
            snprintf(o->msg, sizeof o->msg, "cannot reach provider %s at %s for model %s: %s",
                     p->name, p->url, m->name, h->curl_msg);
        }
        return;
    }
    if (h->status >= 200 && h->status < 300) return;
    o->code = KEEL_EIO;
    for (size_t i = 0; i < KEEL_ARRAY_LEN(statuses); i++)
        if (statuses[i].status == h->status) {
            o->code = statuses[i].code;
            o->retry = statuses[i].retry;
        }
    if (o->code == KEEL_EDENIED) {
        /* The body is not quoted: providers echo parts of a wrong key. */
        if (p->key)
            snprintf(o->msg, sizeof o->msg,
                     "provider %s rejected the API key (HTTP %ld); check the key named by %s",
                     p->name, h->status, p->key_ref);
        else
            snprintf(o->msg, sizeof o->msg,
                     "provider %s refused the request (HTTP %ld) and keel.yaml gives it no key; "
                     "add %s: {env: NAME}",
                     p->name, h->status, p->key_ref);
        return;
    }
    struct buf q;
    buf_init(&q);
    excerpt(&q, h);
    if (o->code == KEEL_EBUSY)
        snprintf(o->msg, sizeof o->msg, "provider %s rate-limited model %s (HTTP 429): %s",
                 p->name, m->name, q.data);
    else
        snprintf(o->msg, sizeof o->msg, "provider %s answered HTTP %ld for model %s: %s",
                 p->name, h->status, m->name, q.data);
    if (h->status == 400 && limit_sent) limit_hint(m, q.data, o);
    buf_cleanup(&q);
}

/* ---- waiting ----------------------------------------------------------------- */

static void sleep_ms(int64_t ms)
{
    struct timespec t = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {
    }
}

/* Full jitter: uniform in [0, min(cap, base * 2^attempt)]. */
static int64_t backoff_ms(int attempt)
{
    int64_t ceiling = BACKOFF_BASE_MS;
    for (int i = 0; i < attempt && ceiling < BACKOFF_CAP_MS; i++) ceiling *= 2;
    if (ceiling > BACKOFF_CAP_MS) ceiling = BACKOFF_CAP_MS;
    uint32_t r;
    keel_random(&r, sizeof r);
    return (int64_t)(r % (uint32_t)(ceiling + 1));
}

/* ---- the call ------------------------------------------------------------------ */

static void trail_add(struct arena *a, struct json_value *trail, const struct model_def *m,
                      const struct outcome *o, int64_t wait_ms)
{
    struct json_value *t = json_object(a);
    json_object_setc(a, t, "model", json_cstr(a, m->name));
    json_object_setc(a, t, "status", json_int(a, o->status));
    json_object_setc(a, t, "code", json_cstr(a, keel_strerror(o->code)));
    json_object_setc(a, t, "error", json_cstr(a, o->msg));
    json_object_setc(a, t, "retry_after_ms",
                     o->retry_after_ms >= 0 ? json_int(a, o->retry_after_ms) : json_null(a));
    json_object_setc(a, t, "wait_ms", json_int(a, wait_ms));
    json_array_push(a, trail, t);
}

/* The wait before the next attempt of a model after the failure in *last
 * (attempt counts from 0), or -1 when there is none: no retry wanted, no
 * retries left, a Retry-After over max_retry_wait, or no room before the
 * deadline (last->msg then says which, and last->deadline is set for the
 * deadline). */
static int64_t retry_wait(const struct model_provider *p, int attempt, const struct clock *k,
                          struct outcome *last)
{
    if (!last->retry || attempt >= p->retries) return -1;
    int64_t room = left_ms(k) - MODEL_MIN_ATTEMPT_MS; /* the longest wait that fits */
    char d[300];
    clock_describe(k, d, sizeof d);
    bool asked = last->retry_after_ms >= 0; /* the server sent a Retry-After */
    if (asked && last->retry_after_ms > p->max_retry_wait_ms) {
        msg_append(last,
                   "; it asked to retry after %lld ms, more than max_retry_wait (%lld ms), "
                   "so Keel moved on",
                   (long long)last->retry_after_ms, (long long)p->max_retry_wait_ms);
        return -1;
    }
    if (asked && last->retry_after_ms > room) {
        last->deadline = true;
        msg_append(last,
                   "; it asked to retry after %lld ms, which would end past the call's deadline "
                   "(%lld ms left of %s), so Keel did not wait",
                   (long long)last->retry_after_ms, (long long)(room + MODEL_MIN_ATTEMPT_MS), d);
        return -1;
    }
    if (asked) return last->retry_after_ms;
    if (room < 0) {
        if (!last->deadline) /* else its message already says so (a cut timeout) */
            msg_append(last, "; no time was left for a retry before the call's deadline (%s)",
                       d);
        last->deadline = true;
        return -1;
    }
    int64_t wait = backoff_ms(attempt);
    return wait < room ? wait : room; /* jitter shortened to fit the deadline */
}

/* What one model did: 0 with *resp filled, 1 with the last outcome in
 * *last, 2 when it was not tried at all because less than
 * MODEL_MIN_ATTEMPT_MS of the deadline was left (never for the first model
 * of the chain: a call always makes one request), or a negative code. */
static int call_model(CURL *c, struct model_gateway *g, const struct model_def *m,
                      const struct model_request *r, const struct clock *k, bool first,
                      struct arena *a, struct json_value *trail, int *attempts,
                      struct model_response *resp, struct outcome *last, struct keel_err *err)
{
    const struct model_provider *p = m->provider;
    if (!first && left_ms(k) < MODEL_MIN_ATTEMPT_MS) return 2;
    struct model_request rq = *r;
    if (rq.max_output_tokens <= 0) rq.max_output_tokens = m->max_output;
    struct arena scratch;
    arena_init(&scratch);
    struct json_value *body = NULL;
    int rc = model_wire_request(p->kind->name, m->provider_model, m->max_tokens_field, &rq,
                                &scratch, &body, err);
    if (rc) { /* the caller's messages are wrong: no model can help */
        arena_cleanup(&scratch);
        return rc;
    }
    struct buf text;
    buf_init(&text);
    json_write(&text, body, 0, NULL);
    arena_cleanup(&scratch);

    rc = 1; /* 1: failed, see *last */
    for (int attempt = 0; attempt <= p->retries; attempt++) {
        /* retry_wait left MODEL_MIN_ATTEMPT_MS; a sleep that overran it
         * (a loaded machine) ends the model here rather than send a
         * request with no time to answer. */
        int64_t left = left_ms(k);
        if (attempt > 0 && left < MODEL_MIN_ATTEMPT_MS) {
            char d[300];
            clock_describe(k, d, sizeof d);
            last->deadline = true;
            msg_append(last, "; the wait ended too close to the call's deadline (%s) to retry",
                       d);
            break;
        }
        if (left < 1) left = 1; /* 0 would mean no limit to curl */
        struct http h;
        post(c, p, text.data, text.len, left < p->timeout_ms ? left : p->timeout_ms, &h);
        (*attempts)++;
        classify(p, m, &h, k, rq.max_output_tokens > 0, last);
        if (last->code == 0) {
            struct keel_err e;
            keel_err_clear(&e);
            int prc = model_wire_response(p->kind->name, h.body.data ? h.body.data : "",
                                          h.body.len, a, resp, &e);
            buf_cleanup(&h.body);
            if (prc == 0) {
                rc = 0;
                break;
            }
            last->code = prc;
            snprintf(last->msg, sizeof last->msg, "provider %s, model %s: %s", p->name, m->name,
                     e.msg);
            model_scrub(g, last->msg, sizeof last->msg);
            trail_add(a, trail, m, last, 0);
            break; /* a malformed reply is not retried: the next model may do better */
        }
        buf_cleanup(&h.body);
        model_scrub(g, last->msg, sizeof last->msg);
        int64_t wait = retry_wait(p, attempt, k, last);
        trail_add(a, trail, m, last, wait > 0 ? wait : 0);
        if (wait < 0) break;
        keel_log(KEEL_LOG_INFO, "model %s: attempt %d failed (%s); retrying in %lld ms", m->name,
                 attempt + 1, last->msg, (long long)wait);
        sleep_ms(wait);
    }
    buf_cleanup(&text);
    return rc;
}

/* A summary of the trail for the deadline message: "a (HTTP 503), a
 * (ETIMEOUT), b (HTTP 429)", cut after cap bytes with the count left out. */
static void trail_summary(const struct json_value *trail, struct buf *out, size_t cap)
{
    for (uint32_t i = 0; i < trail->len; i++) {
        const struct json_value *t = trail->u.items[i];
        if (out->len > cap) {
            buf_printf(out, " and %u more", trail->len - i);
            return;
        }
        int64_t status = json_get_int(t, "status", 0);
        buf_printf(out, "%s%s (", i ? ", " : "", json_get_str(t, "model", "?"));
        if (status > 0) buf_printf(out, "HTTP %lld)", (long long)status);
        else buf_printf(out, "%s)", json_get_str(t, "code", "?"));
    }
}

/* Fails the call because its deadline ended it: says what was tried and
 * which setting to change.  Returns KEEL_ETIMEOUT. */
static int deadline_fail(struct model_gateway *g, const struct clock *k, int64_t start_ms,
                         const struct json_value *trail, int attempts, const char *skipped,
                         const struct outcome *last, struct keel_err *err)
{
    struct buf b;
    buf_init(&b);
    char d[300];
    clock_describe(k, d, sizeof d);
    /* The fix comes before the lists, so a long trail cannot cut it off
     * (err->msg holds KEEL_ERR_MSG_MAX bytes). */
    buf_printf(&b,
               "the model call ran out of time: its deadline (%s) ended it after %d HTTP "
               "request%s in %lld ms; %s %s in keel.yaml to allow more time. Tried: ",
               d, attempts, attempts == 1 ? "" : "s", (long long)(mono_ms() - start_ms),
               k->is_default ? "set" : "raise", k->setting);
    trail_summary(trail, &b, 300);
    if (skipped && *skipped) buf_printf(&b, "; not tried: %.300s", skipped);
    buf_printf(&b, ". Last error: %s", last->msg);
    keel_fail(err, KEEL_ETIMEOUT, "%s", b.data);
    if (err) model_scrub(g, err->msg, sizeof err->msg);
    buf_cleanup(&b);
    return KEEL_ETIMEOUT;
}

/* See model.h.  On success every string and value in *out is in a. */
int model_call(struct model_gateway *g, const struct model_request *r, struct arena *a,
               struct model_response *out, struct keel_err *err)
{
    int64_t start_ms = mono_ms();
    struct model_route_choice choice;
    int rc = model_route(g, r, &choice, err);
    if (rc) return rc;
    pthread_once(&curl_once, curl_start);
    if (curl_started != CURLE_OK)
        return keel_fail(err, KEEL_EINTERNAL, "libcurl failed to start (%s)",
                         curl_easy_strerror(curl_started));

    const char *chain[MODEL_MAX_FALLBACKS + 2] = {choice.model};
    size_t nchain = 1;
    for (size_t i = 0; i < MODEL_MAX_FALLBACKS && choice.fallbacks[i]; i++)
        chain[nchain++] = choice.fallbacks[i];

    /* Where the deadline is set, or would be: the route the call went
     * through, else the chosen model's provider. */
    struct clock k = {.end_ms = start_ms + choice.deadline_ms,
                      .deadline_ms = choice.deadline_ms,
                      .setting = choice.deadline_ref,
                      .is_default = choice.deadline_ref == NULL};
    if (!k.setting) {
        const struct model_routedef *rt =
            model_route_find(g, r->route ? r->route : "default");
        k.setting = rt ? rt->deadline_ref : model_find(g, choice.model)->provider->deadline_ref;
    }

    /* One easy handle per call: its connection cache lets a retry reuse
     * the connection when the server kept it open. */
    CURL *c = curl_easy_init();
    if (!c) return keel_fail(err, KEEL_ENOMEM, "libcurl could not make a handle");
    struct json_value *trail = json_array(a);
    int attempts = 0;
    struct outcome last;
    memset(&last, 0, sizeof last);
    struct buf tried, skipped;
    buf_init(&tried);
    buf_init(&skipped);
    for (size_t i = 0; i < nchain; i++) {
        const struct model_def *m = model_find(g, chain[i]);
        struct model_response resp = {0};
        rc = call_model(c, g, m, r, &k, i == 0, a, trail, &attempts, &resp, &last, err);
        if (rc < 0) {
            buf_cleanup(&tried);
            buf_cleanup(&skipped);
            curl_easy_cleanup(c);
            return rc;
        }
        if (rc == 2) { /* the deadline is (all but) reached: no fallback starts */
            for (size_t j = i; j < nchain; j++)
                buf_printf(&skipped, "%s%s", j > i ? ", " : "", chain[j]);
            keel_log(KEEL_LOG_WARN, "model call: deadline reached; not trying %s", skipped.data);
            break;
        }
        buf_printf(&tried, "%s%s", i ? ", " : "", m->name);
        if (rc > 0) {
            if (i + 1 < nchain)
                keel_log(KEEL_LOG_WARN, "model %s failed (%s); falling back to %s", m->name,
                         last.msg, chain[i + 1]);
            continue;
        }
        if (resp.input_tokens < 0) resp.input_tokens = model_estimate_tokens(r->messages, r->tools);
        if (resp.output_tokens < 0) {
            struct json_value *one = json_array(a);
            json_array_push(a, one, resp.message);
            resp.output_tokens = model_estimate_tokens(one, NULL);
        }
        out->message = resp.message;
        out->stop_reason = resp.stop_reason;
        out->model = arena_strdup(a, m->name);
        out->provider = arena_strdup(a, m->provider->name);
        out->provider_model = arena_strdup(a, m->provider_model);
        out->input_tokens = resp.input_tokens;
        out->output_tokens = resp.output_tokens;
        out->cost_usd = model_cost_usd(g, m->name, resp.input_tokens, resp.output_tokens);
        out->attempts = attempts;
        out->trail = trail;
        buf_cleanup(&tried);
        buf_cleanup(&skipped);
        curl_easy_cleanup(c);
        return 0;
    }
    curl_easy_cleanup(c);
    if (!out->trail) out->trail = trail;
    if (last.deadline || skipped.len) {
        rc = deadline_fail(g, &k, start_ms, trail, attempts, skipped.data, &last, err);
        buf_cleanup(&tried);
        buf_cleanup(&skipped);
        return rc;
    }
    buf_cleanup(&skipped);
    char when[96] = "";
    if (last.code == KEEL_EBUSY)
        snprintf(when, sizeof when, "; retry %s",
                 last.retry_after_ms >= 0
                     ? arena_printf(a, "after %lld ms", (long long)last.retry_after_ms)
                     : "later");
    keel_fail(err, last.code, "%s%s (models tried: %s; %d HTTP request%s)", last.msg, when,
              tried.data, attempts, attempts == 1 ? "" : "s");
    if (err) model_scrub(g, err->msg, sizeof err->msg);
    buf_cleanup(&tried);
    return last.code;
}
