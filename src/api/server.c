/*
 * server.c — the HTTP server: libmicrohttpd in thread-pool mode, request
 * body collection with a hard size cap, bearer-token auth, dispatch through
 * the route table (routes.c), and JSON errors.
 *
 * A request goes through MHD's access handler several times:
 *   1st call   allocate a struct pending (arena, body buffer); if the
 *              declared Content-Length already exceeds the cap, answer 413
 *              at once without reading the body.
 *   middle     append upload data; past the cap, stop keeping it and mark
 *              the request too large (the rest is drained and dropped).
 *   last call  (upload size 0) authenticate, match the route, run the
 *              handler, send its JSON or the error.
 * The pending request is freed in the completion callback.
 *
 * Errors always have the shape {"error":{"code":"ENOENT","message":"..."}}
 * with the stable names of keel_strerror and the status of api_status_for.
 *
 * Invariants: a handler never sees a body larger than max_body; a route
 * other than API_PUBLIC never runs without an authenticated identity; token
 * comparison is constant time (identity_authenticate).
 */
#include "internal.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct api_server {
    struct MHD_Daemon *daemon;
    struct engine *engine;
    size_t max_body;
    int port;
    unsigned max_waiters;
    _Atomic int waiters;
};

struct pending {
    struct arena arena;
    struct buf body;
    bool too_large;
};

/* Status per error code: a table, so a new code is one row. */
static const struct {
    int code;
    int status;
} status_table[] = {
    {KEEL_EINVAL, 400},   {KEEL_ESCHEMA, 400}, {KEEL_EAUTH, 401},    {KEEL_EDENIED, 403},
    {KEEL_ENOENT, 404},   {KEEL_EEXIST, 409},  {KEEL_ESTATE, 409},   {KEEL_EBUSY, 409},
    {KEEL_ELIMIT, 413},   {KEEL_ETIMEOUT, 504}, {KEEL_EPROTO, 502},  {KEEL_EIO, 500},
    {KEEL_ECORRUPT, 500}, {KEEL_ENOMEM, 500},  {KEEL_EINTERNAL, 500},
};

int api_status_for(int code)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(status_table); i++)
        if (status_table[i].code == code) return status_table[i].status;
    return 500;
}

int api_parse_listen(const char *s, char *host, size_t cap, int *port, struct keel_err *err)
{
    const char *colon = strrchr(s, ':');
    const char *p = colon ? colon + 1 : s;
    size_t hl = colon ? (size_t)(colon - s) : 0;
    if (hl >= cap) return keel_fail(err, KEEL_EINVAL, "listen address '%s' is too long", s);
    char *end;
    long v = strtol(p, &end, 10);
    if (!*p || *end || v < 0 || v > 65535)
        return keel_fail(err, KEEL_EINVAL,
                         "listen address '%s' needs a port 0-65535, as in 127.0.0.1:7400", s);
    if (hl) {
        memcpy(host, s, hl);
        host[hl] = '\0';
    } else {
        snprintf(host, cap, "%s", API_DEFAULT_HOST);
    }
    struct in_addr ia;
    if (inet_pton(AF_INET, host, &ia) != 1)
        return keel_fail(err, KEEL_EINVAL,
                         "listen host '%s' is not a numeric IPv4 address; use e.g. 127.0.0.1",
                         host);
    *port = (int)v;
    return 0;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, int status, struct buf *body)
{
    buf_putc(body, '\n');
    struct MHD_Response *r =
        MHD_create_response_from_buffer(body->len, body->data, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"keel\"");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, int status, int code,
                                  const char *msg)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{\"error\":{\"code\":");
    json_write_string(&b, keel_strerror(code), strlen(keel_strerror(code)));
    buf_puts(&b, ",\"message\":");
    json_write_string(&b, msg, strlen(msg));
    buf_puts(&b, "}}");
    enum MHD_Result ret = send_json(conn, status, &b);
    buf_cleanup(&b);
    return ret;
}

static enum MHD_Result send_err(struct MHD_Connection *conn, const struct keel_err *err)
{
    char msg[2 * KEEL_ERR_MSG_MAX];
    keel_err_format(err, msg, sizeof msg);
    return send_error(conn, api_status_for(err->code), err->code, msg);
}

const char *api_query(struct api_request *rq, const char *key)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
}

int api_body_object(struct api_request *rq, struct json_value **out, struct keel_err *err)
{
    if (rq->body_len == 0) {
        *out = json_object(rq->arena);
        return 0;
    }
    struct json_parse_opts o = {.max_depth = 128, .file = "request body"};
    struct json_value *v;
    int rc = json_parse(rq->arena, rq->body, rq->body_len, &o, &v, err);
    if (rc) return rc;
    if (!json_is(v, JSON_OBJECT))
        return keel_fail(err, KEEL_EINVAL, "request body must be a JSON object, not %s",
                         json_type_name(v));
    *out = v;
    return 0;
}

static const struct identity *authenticate(struct api_server *s, struct MHD_Connection *conn,
                                           struct keel_err *err)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (!h) {
        keel_fail(err, KEEL_EAUTH,
                  "missing API token: send 'Authorization: Bearer TOKEN' (the admin token is in "
                  "DATA/admin.token)");
        return NULL;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        keel_fail(err, KEEL_EAUTH, "the Authorization header must be 'Bearer TOKEN'");
        return NULL;
    }
    const char *tok = h + 7;
    while (*tok == ' ') tok++;
    const struct identity *id =
        identity_authenticate(engine_identities(s->engine), tok, strlen(tok));
    if (!id) keel_fail(err, KEEL_EAUTH, "wrong API token; check --token, KEEL_TOKEN or DATA/admin.token");
    return id;
}

static enum MHD_Result dispatch(struct api_server *s, struct MHD_Connection *conn,
                                const char *method, const char *url, struct pending *p)
{
    struct keel_err err;
    keel_err_clear(&err);
    struct api_request rq = {.method = method,
                             .path = url,
                             .body = p->body.data ? p->body.data : "",
                             .body_len = p->body.len,
                             .engine = s->engine,
                             .arena = &p->arena,
                             .conn = conn,
                             .status = 200,
                             .waiters = &s->waiters,
                             .max_waiters = (int)s->max_waiters};
    bool path_known = false;
    const struct api_route *r = api_route_match(method, url, &rq, &path_known);
    if (!r) {
        if (path_known)
            return send_error(conn, 405, KEEL_EINVAL, "method not allowed on this path");
        char msg[600];
        snprintf(msg, sizeof msg, "no route %.16s %.500s; see docs/api.md for the routes", method,
                 url);
        return send_error(conn, 404, KEEL_ENOENT, msg);
    }
    if (r->access != API_PUBLIC) {
        rq.actor = authenticate(s, conn, &err);
        if (!rq.actor) return send_err(conn, &err);
        if (r->access == API_ADMIN && rq.actor->kind != IDENTITY_ADMIN)
            return send_error(conn, 403, KEEL_EDENIED,
                              "this route needs the admin token; approver tokens may only read "
                              "and decide approvals");
    }
    struct json_value *out = NULL;
    int rc = r->handler(&rq, &out, &err);
    if (rc) {
        if (!err.code) keel_fail(&err, rc, "request failed");
        return send_err(conn, &err);
    }
    struct buf b;
    buf_init(&b);
    if (out) json_write(&b, out, 0, NULL);
    else buf_puts(&b, "{}");
    enum MHD_Result ret = send_json(conn, rq.status, &b);
    buf_cleanup(&b);
    return ret;
}

static enum MHD_Result send_too_large(struct api_server *s, struct MHD_Connection *conn)
{
    char msg[160];
    snprintf(msg, sizeof msg, "request body is larger than the limit of %zu bytes", s->max_body);
    return send_error(conn, 413, KEEL_ELIMIT, msg);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct api_server *s = cls;
    struct pending *p = *con_cls;
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p) return MHD_NO;
        arena_init(&p->arena);
        buf_init(&p->body);
        *con_cls = p;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->max_body) {
            /* Answer before reading the body; MHD then closes the
             * connection instead of draining a huge upload. */
            p->too_large = true;
            return send_too_large(s, conn);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!p->too_large && p->body.len + *upload_data_size > s->max_body) {
            p->too_large = true;
            buf_cleanup(&p->body);
        }
        if (!p->too_large) buf_append(&p->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (p->too_large) return send_too_large(s, conn);
    return dispatch(s, conn, method, url, p);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct pending *p = *con_cls;
    if (!p) return;
    arena_cleanup(&p->arena);
    buf_cleanup(&p->body);
    free(p);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') line[--n] = '\0';
    keel_log(KEEL_LOG_WARN, "http: %s", line);
}

int api_server_start(const struct api_config *cfg, struct engine *engine, struct api_server **srv,
                     struct keel_err *err)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg->port);
    const char *host = cfg->host ? cfg->host : API_DEFAULT_HOST;
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return keel_fail(err, KEEL_EINVAL, "listen host '%s' is not a numeric IPv4 address",
                         host);
    struct api_server *s = calloc(1, sizeof *s);
    if (!s) return keel_fail(err, KEEL_ENOMEM, "out of memory starting the HTTP server");
    s->engine = engine;
    s->max_body = cfg->max_body ? cfg->max_body : API_DEFAULT_MAX_BODY;
    s->max_waiters = cfg->max_waiters ? cfg->max_waiters : 64;
    /* A thread per connection: a long-poll (a run wait, a usage scan) holds
     * only its own connection's thread, never one that other clients'
     * connections share, as a fixed pool would. */
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        (uint16_t)cfg->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
        s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_CONNECTION_LIMIT, 256u,
        MHD_OPTION_END);
    if (!s->daemon) {
        free(s);
        return keel_fail(err, KEEL_EIO,
                         "cannot listen on %s:%d (in use, or not an address of this machine); "
                         "pick another with --listen HOST:PORT",
                         host, cfg->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? (int)info->port : cfg->port;
    *srv = s;
    return 0;
}

int api_server_port(const struct api_server *srv)
{
    return srv->port;
}

void api_server_stop(struct api_server *srv)
{
    if (!srv) return;
    MHD_stop_daemon(srv->daemon);
    free(srv);
}
