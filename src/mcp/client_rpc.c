/*
 * client_rpc.c — the MCP client's JSON-RPC over the server's stdio: the
 * writing side (mcp_send_line, and mcp_roundtrip, which registers a waiter,
 * writes the request and sleeps until the reader hands it the response),
 * and the reader thread of each process incarnation (mcp_reader_main).
 *
 * Framing (MCP "Transports", stdio): one JSON-RPC message per line, UTF-8,
 * no embedded newlines; blank lines and trailing CR/space are tolerated.
 * The reader matches a response to its waiter by (id, generation) and
 * hands over the raw line; the caller decodes it into its own arena.  It
 * answers the server's own requests (ping; anything else is "method not
 * found") through a non-blocking outbox, marks the tool list stale on
 * notifications/tools/list_changed, and logs notifications/message and
 * stderr lines.
 *
 * Invariants: a malformed line or one longer than MCP_MAX_MESSAGE resets
 * the connection (the process is killed and its waiters failed with why);
 * a request is written only to the process of its waiter's generation
 * (checked under wmu); the reader never blocks writing; a timed-out call
 * is cancelled (notifications/cancelled) and its late answer dropped; only
 * the reader reaps its child, after setting `reaped` under mu.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define READ_CHUNK 65536
#define STDERR_LINE_MAX 4096

/* ---- waiters and writes ---------------------------------------------- */

static void list_unlink(struct waiter *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->prev = w->next = w;
}

/* Completes a waiter with a failure; called with mu held. */
static void waiter_fail(struct waiter *w, int code, const char *msg)
{
    list_unlink(w);
    w->done = true;
    w->rc = code;
    snprintf(w->msg, sizeof w->msg, "%s", msg);
    pthread_cond_signal(&w->cv);
}

/* Fails every pending waiter of generation gen (all if gen == 0); called
 * with mu held. */
void mcp_fail_pending(struct mcp_client *c, uint64_t gen, int code, const char *msg)
{
    struct waiter *w = c->pending.next;
    while (w != &c->pending) {
        struct waiter *next = w->next;
        if (gen == 0 || w->gen == gen) waiter_fail(w, code, msg);
        w = next;
    }
}

/* Writes all of data to fd; returns 0 or an errno value. */
static int write_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes one message line to the process of generation gen.  Returns 0, or
 * an errno value (EPIPE also when that process is already gone). */
int mcp_send_line(struct mcp_client *c, uint64_t gen, struct buf *msg)
{
    buf_putc(msg, '\n');
    pthread_mutex_lock(&c->wmu);
    int rc = EPIPE;
    if (c->in_fd >= 0 && c->in_gen == gen) rc = write_all(c->in_fd, msg->data, msg->len);
    pthread_mutex_unlock(&c->wmu);
    msg->len--;
    msg->data[msg->len] = '\0';
    return rc;
}

/* ---- the reader thread ------------------------------------------------- */

/* Answers a request the server sent (ping; anything else is "method not
 * found").  The reply goes to the outbox: the reader must never block on
 * the server's stdin, or a server that writes while not reading would
 * deadlock with it. */
static void reply_to_server(struct reader_ctx *r, const struct mcp_rpc_msg *m, struct arena *a)
{
    struct buf out;
    buf_init(&out);
    if (!strcmp(m->method, "ping")) {
        mcp_rpc_write_result(&out, m->id, json_object(a));
    } else {
        char msg[256];
        snprintf(msg, sizeof msg, "Keel's MCP client does not support '%.100s'", m->method);
        mcp_rpc_write_error(&out, m->id, MCP_RPC_METHOD_NOT_FOUND, msg, NULL);
    }
    /* One line up to PIPE_BUF is written atomically or not at all, so a
     * reply never interleaves with a caller's request. */
    if (out.len + 1 > PIPE_BUF || r->outbox.len > 64 * PIPE_BUF)
        keel_log(KEEL_LOG_WARN, "mcp %s: dropped the reply to a '%.100s' request", r->c->cfg.name,
                 m->method);
    else {
        buf_append(&r->outbox, out.data, out.len);
        buf_putc(&r->outbox, '\n');
    }
    buf_cleanup(&out);
}

/* Writes whole outbox lines without blocking: only if no caller is writing
 * and the pipe has room.  Returns true when the outbox is empty. */
static bool flush_outbox(struct reader_ctx *r)
{
    struct mcp_client *c = r->c;
    if (!r->outbox.len) return true;
    if (pthread_mutex_trylock(&c->wmu) != 0) return false;
    size_t off = 0;
    if (c->in_fd < 0 || c->in_gen != r->gen) {
        off = r->outbox.len; /* that process is gone: nobody to answer */
    } else {
        int fl = fcntl(c->in_fd, F_GETFL);
        fcntl(c->in_fd, F_SETFL, fl | O_NONBLOCK);
        while (off < r->outbox.len) {
            char *nl = memchr(r->outbox.data + off, '\n', r->outbox.len - off);
            size_t len = (size_t)(nl - (r->outbox.data + off)) + 1;
            ssize_t w = write(c->in_fd, r->outbox.data + off, len);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (w < 0) {
                off = r->outbox.len; /* EPIPE: the process is dying */
                break;
            }
            off += (size_t)w; /* w == len: lines are <= PIPE_BUF */
        }
        fcntl(c->in_fd, F_SETFL, fl);
    }
    pthread_mutex_unlock(&c->wmu);
    memmove(r->outbox.data, r->outbox.data + off, r->outbox.len - off);
    r->outbox.len -= off;
    return r->outbox.len == 0;
}

/* Handles one line from the server.  Returns 0, or fills msg and returns
 * KEEL_EPROTO when the line breaks the protocol (the connection is then
 * reset). */
static int handle_line(struct reader_ctx *r, struct arena *a, const char *line, size_t len,
                       char *msg, size_t msgcap)
{
    struct mcp_client *c = r->c;
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    if (len == 0) return 0; /* blank lines carry nothing; tolerate them */
    arena_reset(a);
    struct mcp_rpc_msg m;
    struct keel_err e;
    keel_err_clear(&e);
    if (mcp_rpc_decode(a, line, len, &m, &e) != 0) {
        char pos[48] = "";
        if (e.line) snprintf(pos, sizeof pos, " at line 1, column %d", e.column);
        snprintf(msg, msgcap, "server '%s' sent a malformed message%s: %s; connection reset",
                 c->cfg.name, pos, e.msg);
        return KEEL_EPROTO;
    }
    switch (m.kind) {
    case MCP_RPC_RESULT:
    case MCP_RPC_ERROR: {
        if (!json_is_integer(m.id) || !(m.id->nflags & JSON_NUM_I64)) {
            if (m.kind == MCP_RPC_ERROR)
                keel_log(KEEL_LOG_WARN, "mcp %s: error for an unknown request: %lld %s",
                         c->cfg.name, (long long)m.error_code, m.error_message);
            return 0; /* Keel only sends integer ids: not ours */
        }
        int64_t id = m.id->u.n.i;
        pthread_mutex_lock(&c->mu);
        for (struct waiter *w = c->pending.next; w != &c->pending; w = w->next) {
            if (w->id == id && w->gen == r->gen) {
                w->line = malloc(len + 1);
                if (!w->line) abort();
                memcpy(w->line, line, len);
                w->line[len] = '\0';
                w->len = len;
                list_unlink(w);
                w->done = true;
                w->rc = 0;
                pthread_cond_signal(&w->cv);
                break;
            }
        }
        pthread_mutex_unlock(&c->mu);
        return 0; /* unmatched: a call that timed out; dropped */
    }
    case MCP_RPC_REQUEST:
        reply_to_server(r, &m, a);
        return 0;
    case MCP_RPC_NOTIFICATION:
        if (!strcmp(m.method, "notifications/tools/list_changed")) {
            pthread_mutex_lock(&c->mu);
            if (c->gen == r->gen) c->tools_stale = true;
            pthread_mutex_unlock(&c->mu);
        } else if (!strcmp(m.method, "notifications/message")) {
            struct buf b;
            buf_init(&b);
            (void)json_write(&b, json_get(m.params, "data"), 0, NULL);
            keel_log(KEEL_LOG_INFO, "mcp %s: [%s] %.*s", c->cfg.name,
                     json_get_str(m.params, "level", "info"), (int)(b.len > 2000 ? 2000 : b.len),
                     b.data ? b.data : "");
            buf_cleanup(&b);
        }
        return 0;
    }
    return 0;
}

/* Consumes complete lines at the front of in.  Returns 0 or KEEL_EPROTO. */
static int consume_lines(struct reader_ctx *r, struct arena *a, struct buf *in, size_t *scanned,
                         char *msg, size_t msgcap)
{
    size_t start = 0;
    int rc = 0;
    for (;;) {
        char *nl = in->len > *scanned ? memchr(in->data + *scanned, '\n', in->len - *scanned)
                                      : NULL;
        if (!nl) {
            *scanned = in->len;
            break;
        }
        size_t end = (size_t)(nl - in->data);
        rc = handle_line(r, a, in->data + start, end - start, msg, msgcap);
        /* Send any reply at once, so it precedes what later lines cause. */
        (void)flush_outbox(r);
        start = end + 1;
        *scanned = start;
        if (rc) break;
    }
    if (start) {
        memmove(in->data, in->data + start, in->len - start);
        in->len -= start;
        *scanned -= start;
    }
    if (!rc && in->len > MCP_MAX_MESSAGE) {
        snprintf(msg, msgcap,
                 "server '%s' sent a message longer than %u bytes; connection reset",
                 r->c->cfg.name, MCP_MAX_MESSAGE);
        rc = KEEL_EPROTO;
    }
    return rc;
}

static void log_stderr(struct reader_ctx *r, struct buf *eb, bool flush)
{
    if (!eb->len) return;
    size_t start = 0;
    for (;;) {
        char *nl = eb->len > start ? memchr(eb->data + start, '\n', eb->len - start) : NULL;
        size_t end;
        if (nl) end = (size_t)(nl - eb->data);
        else if (flush || eb->len - start >= STDERR_LINE_MAX) end = eb->len;
        else break;
        if (end > start)
            keel_log(KEEL_LOG_INFO, "mcp %s: %.*s", r->c->cfg.name,
                     (int)(end - start > STDERR_LINE_MAX ? STDERR_LINE_MAX : end - start),
                     eb->data + start);
        start = nl ? end + 1 : end;
        if (start >= eb->len) break;
    }
    if (start) {
        memmove(eb->data, eb->data + start, eb->len - start);
        eb->len -= start;
    }
}

static void describe_status(char *out, size_t cap, const char *name, int status, bool known)
{
    if (!known) snprintf(out, cap, "server '%s' exited", name);
    else if (WIFEXITED(status))
        snprintf(out, cap, "server '%s' exited with status %d", name, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "server '%s' was killed by signal %d (%s)", name, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else snprintf(out, cap, "server '%s' exited", name);
}

/* Marks generation gen as unusable as soon as the reader knows it is, so
 * that the next call restarts the server instead of joining the dying one.
 * Called with mu held. */
static void mark_dead_locked(struct mcp_client *c, uint64_t gen, int code, const char *why)
{
    if (c->gen != gen || c->state != ST_RUNNING) return;
    c->state = ST_DEAD;
    c->death_code = code;
    snprintf(c->death, sizeof c->death, "%s", why);
}

/* The reader thread (see internal.h); it frees arg. */
void *mcp_reader_main(void *arg)
{
    struct reader_ctx *r = arg;
    struct mcp_client *c = r->c;
    struct arena a;
    arena_init(&a);
    struct buf in, eb;
    buf_init(&in);
    buf_init(&eb);
    size_t scanned = 0;
    char proto_msg[KEEL_ERR_MSG_MAX] = "";
    int proto_rc = 0;
    bool killed = false, exited = false;
    int64_t eof_deadline_ns = 0;

    while (!exited) {
        struct pollfd fds[3];
        int n = 0, iout = -1, ierr = -1;
        if (r->out_fd >= 0) {
            iout = n;
            fds[n++] = (struct pollfd){r->out_fd, POLLIN, 0};
        }
        if (r->err_fd >= 0) {
            ierr = n;
            fds[n++] = (struct pollfd){r->err_fd, POLLIN, 0};
        }
        int ipid = n;
        fds[n++] = (struct pollfd){r->pidfd, POLLIN, 0};
        int timeout = -1;
        if (r->out_fd < 0 && !killed) {
            /* stdout closed but the process lives on: give it the shutdown
             * grace, then kill it. */
            int64_t left = (eof_deadline_ns - keel_mono_ns()) / 1000000;
            timeout = left < 0 ? 0 : (int)(left > 600000 ? 600000 : left);
        }
        /* Replies that could not be written yet are retried shortly; the
         * poll below does not wait on stdin, so this is the retry tick. */
        if (!flush_outbox(r) && (timeout < 0 || timeout > 10)) timeout = 10;
        bool outbox_tick = r->outbox.len > 0;
        int pr = poll(fds, (nfds_t)n, timeout);
        if (pr < 0) {
            if (errno == EINTR) continue;
            /* Cannot watch the server any more: end it, so that the
             * blocking reap below returns. */
            keel_log(KEEL_LOG_ERROR, "mcp %s: poll: %s", c->cfg.name, strerror(errno));
            killpg(r->pid, SIGKILL);
            break;
        }
        if (pr == 0 && outbox_tick && !(r->out_fd < 0 && !killed &&
                                         keel_mono_ns() >= eof_deadline_ns))
            continue;
        if (pr == 0) {
            /* This thread is the one that reaps r->pid, so it may signal
             * the group without holding mu. */
            killpg(r->pid, SIGKILL);
            killed = true;
            continue;
        }
        if (iout >= 0 && fds[iout].revents) {
            buf_reserve(&in, READ_CHUNK);
            ssize_t got = read(r->out_fd, in.data + in.len, READ_CHUNK);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                close_fd(&r->out_fd);
                eof_deadline_ns = keel_mono_ns() + c->cfg.shutdown_timeout_ms * 1000000;
                /* Nothing more can be answered: new calls must restart the
                 * server rather than queue behind this one. */
                pthread_mutex_lock(&c->mu);
                char why[KEEL_ERR_MSG_MAX];
                snprintf(why, sizeof why, "server '%s' closed its stdout", c->cfg.name);
                mark_dead_locked(c, r->gen, KEEL_EIO, why);
                pthread_mutex_unlock(&c->mu);
            } else {
                in.len += (size_t)got;
                int rc = consume_lines(r, &a, &in, &scanned, proto_msg, sizeof proto_msg);
                if (rc) {
                    proto_rc = rc;
                    keel_log(KEEL_LOG_WARN, "mcp: %s", proto_msg);
                    pthread_mutex_lock(&c->mu);
                    mcp_fail_pending(c, r->gen, proto_rc, proto_msg);
                    mark_dead_locked(c, r->gen, proto_rc, proto_msg);
                    pthread_mutex_unlock(&c->mu);
                    killpg(r->pid, SIGKILL);
                    killed = true;
                    close_fd(&r->out_fd);
                }
            }
        }
        if (ierr >= 0 && fds[ierr].revents) {
            char chunk[4096];
            ssize_t got = read(r->err_fd, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                log_stderr(r, &eb, true);
                close_fd(&r->err_fd);
            } else {
                buf_append(&eb, chunk, (size_t)got);
                log_stderr(r, &eb, false);
            }
        }
        if (fds[ipid].revents) exited = true;
    }

    /* The process is gone (a zombie until reaped below, so its pid, which
     * is also its group id, cannot be reused yet).  End what it left in its
     * group, so nothing keeps writing to the pipes.  Responses it wrote
     * before exiting are still in the pipe: deliver them first. */
    killpg(r->pid, SIGKILL);
    if (r->out_fd >= 0 && !proto_rc) {
        fcntl(r->out_fd, F_SETFL, fcntl(r->out_fd, F_GETFL) | O_NONBLOCK);
        for (;;) {
            buf_reserve(&in, READ_CHUNK);
            ssize_t got = read(r->out_fd, in.data + in.len, READ_CHUNK);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) break;
            in.len += (size_t)got;
            int rc = consume_lines(r, &a, &in, &scanned, proto_msg, sizeof proto_msg);
            if (rc) {
                proto_rc = rc;
                break;
            }
        }
    }
    if (r->err_fd >= 0) {
        fcntl(r->err_fd, F_SETFL, fcntl(r->err_fd, F_GETFL) | O_NONBLOCK);
        char chunk[4096];
        ssize_t got;
        while ((got = read(r->err_fd, chunk, sizeof chunk)) > 0) buf_append(&eb, chunk, (size_t)got);
        log_stderr(r, &eb, true);
    }

    /* Reap it.  `reaped` is set first, under mu, so no other thread
     * signals a recycled pid. */
    pthread_mutex_lock(&c->mu);
    if (c->gen == r->gen) c->reaped = true;
    pthread_mutex_unlock(&c->mu);
    int status = 0;
    bool known = true;
    while (waitpid(r->pid, &status, 0) < 0) {
        if (errno == EINTR) continue;
        known = false; /* SIGCHLD ignored by the embedding program */
        break;
    }
    close_fd(&r->out_fd);
    close_fd(&r->err_fd);
    close(r->pidfd);

    pthread_mutex_lock(&c->wmu);
    if (c->in_gen == r->gen && c->in_fd >= 0) close_fd(&c->in_fd);
    pthread_mutex_unlock(&c->wmu);

    char msg[KEEL_ERR_MSG_MAX];
    describe_status(msg, sizeof msg, c->cfg.name, status, known);
    if (!proto_rc) keel_log(KEEL_LOG_INFO, "mcp: %s", msg);
    pthread_mutex_lock(&c->mu);
    mcp_fail_pending(c, r->gen, proto_rc ? proto_rc : KEEL_EIO, proto_rc ? proto_msg : msg);
    if (c->gen == r->gen) {
        c->pid = 0;
        c->stats.pid = 0;
        c->death_code = proto_rc ? proto_rc : KEEL_EIO;
        snprintf(c->death, sizeof c->death, "%s", proto_rc ? proto_msg : msg);
        if (c->state == ST_RUNNING) c->state = ST_DEAD;
    }
    c->stats.exits++;
    c->reader_done = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);

    buf_cleanup(&in);
    buf_cleanup(&eb);
    buf_cleanup(&r->outbox);
    arena_cleanup(&a);
    free(r);
    return NULL;
}

/* ---- requests ---------------------------------------------------------- */

/* Sends method(params) to the process of generation gen and waits up to
 * timeout_ms for the answer, decoded into arena a.  A JSON-RPC error answer
 * becomes KEEL_EPROTO; what names the request in messages. */
int mcp_roundtrip(struct mcp_client *c, uint64_t gen, const char *method,
                  const struct json_value *params, int64_t timeout_ms, struct arena *a,
                  struct mcp_rpc_msg *resp, const char *what, bool *unsent,
                  struct keel_err *err)
{
    struct waiter w;
    memset(&w, 0, sizeof w);
    w.prev = w.next = &w;
    cond_init_monotonic(&w.cv);
    struct buf msg;
    buf_init(&msg);
    int rc = 0;

    pthread_mutex_lock(&c->mu);
    if (c->state == ST_CLOSING) {
        pthread_mutex_unlock(&c->mu);
        rc = keel_fail(err, KEEL_ESTATE, "server '%s' is shutting down", c->cfg.name);
        goto out;
    }
    if (c->gen != gen || (c->state != ST_RUNNING && c->state != ST_STARTING) || c->reaped) {
        /* The process died between ensure_running and here; nothing was
         * sent, so the caller may safely start a new one and try again. */
        if (unsent) *unsent = true;
        rc = keel_fail(err, c->death_code ? c->death_code : KEEL_EIO, "%s",
                       c->death[0] ? c->death : "server is not running");
        pthread_mutex_unlock(&c->mu);
        goto out;
    }
    w.id = ++c->next_id;
    w.gen = gen;
    w.prev = c->pending.prev;
    w.next = &c->pending;
    c->pending.prev->next = &w;
    c->pending.prev = &w;
    pthread_mutex_unlock(&c->mu);

    mcp_rpc_write_request(&msg, w.id, method, params);
    if (msg.len >= MCP_MAX_MESSAGE) {
        pthread_mutex_lock(&c->mu);
        if (!w.done) list_unlink(&w);
        pthread_mutex_unlock(&c->mu);
        rc = keel_fail(err, KEEL_ELIMIT, "%s on server '%s': request of %zu bytes exceeds the "
                       "%u-byte message limit", what, c->cfg.name, msg.len, MCP_MAX_MESSAGE);
        goto out;
    }
    /* A failed write means the process is dying; the reader will fail the
     * waiter with the exit status, which is the better message. */
    (void)mcp_send_line(c, gen, &msg);

    struct timespec deadline;
    monotonic_deadline(&deadline, timeout_ms);
    pthread_mutex_lock(&c->mu);
    while (!w.done) {
        int t = pthread_cond_timedwait(&w.cv, &c->mu, &deadline);
        if (t == ETIMEDOUT && !w.done) break;
    }
    bool timed_out = !w.done;
    if (timed_out) {
        list_unlink(&w);
        c->stats.timeouts++;
    }
    pthread_mutex_unlock(&c->mu);

    if (timed_out) {
        /* MCP cancellation: tell the server to stop; a late answer matches no
         * waiter and is dropped. */
        struct arena ta;
        arena_init(&ta);
        struct json_value *p = json_object(&ta);
        json_object_setc(&ta, p, "requestId", json_int(&ta, w.id));
        json_object_setc(&ta, p, "reason",
                         json_cstr(&ta, arena_printf(&ta, "timed out after %lld ms",
                                                     (long long)timeout_ms)));
        buf_reset(&msg);
        mcp_rpc_write_notification(&msg, "notifications/cancelled", p);
        (void)mcp_send_line(c, gen, &msg);
        arena_cleanup(&ta);
        rc = keel_fail(err, KEEL_ETIMEOUT,
                       "%s on server '%s' did not answer within %lld ms (request cancelled); "
                       "raise the timeout in keel.yaml if the tool is slow",
                       what, c->cfg.name, (long long)timeout_ms);
        goto out;
    }
    if (w.rc) {
        rc = keel_fail(err, w.rc, "%s: %s", what, w.msg);
        goto out;
    }
    struct mcp_rpc_msg m;
    struct keel_err derr;
    keel_err_clear(&derr);
    if (mcp_rpc_decode(a, w.line, w.len, &m, &derr) != 0) {
        rc = keel_fail(err, KEEL_EPROTO, "%s on server '%s': bad response: %s", what,
                       c->cfg.name, derr.msg);
        goto out;
    }
    if (m.kind == MCP_RPC_ERROR) {
        rc = keel_fail(err, KEEL_EPROTO, "%s on server '%s' failed: JSON-RPC error %lld: %s",
                       what, c->cfg.name, (long long)m.error_code, m.error_message);
        goto out;
    }
    *resp = m;
out:
    free(w.line);
    pthread_cond_destroy(&w.cv);
    buf_cleanup(&msg);
    return rc;
}
