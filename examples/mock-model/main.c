/*
 * main.c — keel-mock-model: the command line and the HTTP layer of the mock
 * model server (libmicrohttpd).  Everything the server answers is decided in
 * script.c (mock_handle); this file reads request bodies (capped at
 * MOCK_MAX_BODY), waits a reply's delay_ms, sends the reply, and runs until
 * SIGTERM or SIGINT.
 *
 *   keel-mock-model --script FILE [--listen HOST:PORT] [--log FILE]
 *
 * Invariants:
 *   - Exactly one line goes to stdout, "listening on http://HOST:PORT", once
 *     the socket is bound, then stdout is flushed: tests read that line
 *     instead of polling.
 *   - One thread per connection (MHD_USE_THREAD_PER_CONNECTION, with poll()
 *     rather than select(), so no descriptor-number limit), so a
 *     scripted delay holds only its own connection; delays wait on a
 *     condition variable that shutdown broadcasts, so SIGTERM never waits
 *     out a delay.
 *   - Exit codes: 0 after a signal, 2 for bad flags or a bad script, 1 when
 *     the address cannot be bound or the log cannot be opened.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mock.h"

static const char usage[] =
    "usage: keel-mock-model --script FILE [--listen HOST:PORT] [--log FILE]\n"
    "\n"
    "An OpenAI Chat Completions and Anthropic Messages server that plays a\n"
    "scripted sequence of replies and records every request.\n"
    "\n"
    "  --script FILE       the script: {\"responses\": [entry, ...]} (see\n"
    "                      examples/mock-model/README.md)\n"
    "  --listen HOST:PORT  address to listen on (default 127.0.0.1:0, a free port)\n"
    "  --log FILE          append one JSON line per request received\n"
    "\n"
    "Prints \"listening on http://HOST:PORT\" once ready; runs until SIGTERM/SIGINT.\n";

struct server {
    struct mock *mock;
    pthread_mutex_t lock; /* guards stopping, for the delay waits */
    pthread_cond_t wake;
    bool stopping;
};

/* Per-connection state: the body as it arrives. */
struct pending {
    struct buf body;
    bool too_large;
};

/* Waits ms milliseconds, or less if the server is stopping. */
static void wait_delay(struct server *s, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->stopping && pthread_cond_timedwait(&s->wake, &s->lock, &until) != ETIMEDOUT) {
    }
    pthread_mutex_unlock(&s->lock);
}

static enum MHD_Result answer(struct server *s, struct MHD_Connection *conn, const char *url,
                              const char *method, struct pending *p)
{
    struct mock_http_request rq = {
        .method = method,
        .path = url,
        .authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
        .x_api_key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key"),
        .anthropic_version =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "anthropic-version"),
        .body = p->body.data,
        .body_len = p->body.len,
        .too_large = p->too_large,
    };
    struct mock_http_reply reply;
    mock_reply_init(&reply);
    mock_handle(s->mock, &rq, &reply);
    if (reply.delay_ms > 0) wait_delay(s, reply.delay_ms);
    struct MHD_Response *r = MHD_create_response_from_buffer(
        reply.body.len, reply.body.len ? reply.body.data : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!r) {
        mock_reply_cleanup(&reply);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (reply.retry_after >= 0) {
        char v[24];
        snprintf(v, sizeof v, "%lld", (long long)reply.retry_after);
        MHD_add_response_header(r, "Retry-After", v);
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)reply.status, r);
    MHD_destroy_response(r);
    mock_reply_cleanup(&reply);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct server *s = cls;
    struct pending *p = *con_cls;
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p) return MHD_NO;
        buf_init(&p->body);
        *con_cls = p;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > MOCK_MAX_BODY) {
            /* Answer before reading the body; MHD then closes the
             * connection instead of draining a huge upload. */
            p->too_large = true;
            return answer(s, conn, url, method, p);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!p->too_large && p->body.len + *upload_data_size > MOCK_MAX_BODY) {
            p->too_large = true;
            buf_cleanup(&p->body);
        }
        if (!p->too_large) buf_append(&p->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    return answer(s, conn, url, method, p);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct pending *p = *con_cls;
    if (!p) return;
    buf_cleanup(&p->body);
    free(p);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    fputs("keel-mock-model: http: ", stderr);
    vfprintf(stderr, fmt, ap);
}

/* Parses "HOST:PORT" (numeric IPv4 or "localhost") into sa. */
static int parse_listen(const char *text, struct sockaddr_in *sa)
{
    const char *colon = strrchr(text, ':');
    if (!colon || colon == text || colon - text >= 64) return -1;
    char host[64];
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port > 65535) return -1;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "keel-mock-model: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage);
    return 2;
}

int main(int argc, char **argv)
{
    const char *script = NULL, *listen = "127.0.0.1:0", *log_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        }
        const char **dst = !strcmp(a, "--script")   ? &script
                           : !strcmp(a, "--listen") ? &listen
                           : !strcmp(a, "--log")    ? &log_path
                                                    : NULL;
        if (!dst) return usage_error("unknown argument '%s'", a);
        if (i + 1 >= argc) return usage_error("%s needs a value", a);
        *dst = argv[++i];
    }
    if (!script) return usage_error("%s", "--script FILE is required");
    struct sockaddr_in sa;
    if (parse_listen(listen, &sa) != 0)
        return usage_error("--listen '%s' is not HOST:PORT with a numeric IPv4 host "
                           "(e.g. 127.0.0.1:8080; port 0 picks a free one)",
                           listen);

    struct keel_err err;
    keel_err_clear(&err);
    struct buf text;
    buf_init(&text);
    struct mock *mock = mock_new();
    if (keel_read_file(script, MOCK_MAX_SCRIPT, &text, &err) != 0 ||
        mock_load(mock, text.data ? text.data : "", text.len, script, &err) != 0) {
        char msg[KEEL_ERR_MSG_MAX + 2 * KEEL_ERR_PATH_MAX + 64];
        fprintf(stderr, "keel-mock-model: %s\n", keel_err_format(&err, msg, sizeof msg));
        if (err.code == KEEL_EINVAL)
            fprintf(stderr, "keel-mock-model: fix the script (format: "
                            "examples/mock-model/README.md) and start again\n");
        buf_cleanup(&text);
        mock_free(mock);
        return 2;
    }
    buf_cleanup(&text);

    FILE *log = NULL;
    if (log_path) {
        log = fopen(log_path, "a");
        if (!log) {
            fprintf(stderr, "keel-mock-model: cannot open the log '%s' for appending: %s\n",
                    log_path, strerror(errno));
            mock_free(mock);
            return 1;
        }
        mock_set_log(mock, log);
    }

    /* Block the stop signals before MHD starts its threads (they inherit
     * the mask), so only sigwait below sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct server srv = {.mock = mock, .stopping = false};
    pthread_mutex_init(&srv.lock, NULL);
    pthread_cond_init(&srv.wake, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        ntohs(sa.sin_port), NULL, NULL, on_request, &srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
        &srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, &srv, MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_CONNECTION_LIMIT, 256u,
        MHD_OPTION_END);
    if (!d) {
        fprintf(stderr,
                "keel-mock-model: cannot listen on %s (in use, or not an address of this "
                "machine); pick another with --listen HOST:PORT\n",
                listen);
        if (log) fclose(log);
        mock_free(mock);
        return 1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa.sin_addr, host, sizeof host);
    printf("listening on http://%s:%u\n", host, info ? (unsigned)info->port : ntohs(sa.sin_port));
    fflush(stdout);

    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    pthread_mutex_lock(&srv.lock);
    srv.stopping = true;
    pthread_cond_broadcast(&srv.wake);
    pthread_mutex_unlock(&srv.lock);
    MHD_stop_daemon(d);
    pthread_cond_destroy(&srv.wake);
    pthread_mutex_destroy(&srv.lock);
    mock_free(mock);
    if (log) fclose(log);
    return 0;
}
