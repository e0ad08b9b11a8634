/*
 * client.c — the MCP stdio client: one struct mcp_client per tool server.
 *
 * Transport (MCP "Transports", stdio): the server is a child process; each
 * message is one line of JSON on its stdin/stdout, UTF-8, no embedded
 * newlines; stderr is free-form log text.  Keel spawns the child in its own
 * process group with only the three standard descriptors open, so a kill of
 * the group reaches whatever the server started.
 *
 * Threads: any number of callers, plus one reader thread per process
 * incarnation.  A caller registers a waiter {id, generation} under `mu`,
 * writes its request under `wmu`, and sleeps on the waiter's condition
 * variable; the reader reads lines, and for each response finds the waiter
 * by id, hands it the raw line and signals it.  The caller then decodes the
 * line into its own arena (arenas are single-threaded, so the reader never
 * builds values for callers).
 *
 * Session state machine (fields under `mu`):
 *
 *     IDLE ──call──► STARTING ──initialize+list ok──► RUNNING
 *                       │  ▲                             │
 *              fail     │  │ next call                   │ EOF / exit /
 *                       ▼  │                             │ malformed line
 *                       DEAD ◄────────────────────────────┘
 *     any state ──mcp_client_free──► CLOSING
 *
 *   transition                 function
 *   IDLE/DEAD → STARTING       ensure_running (the caller that finds it so)
 *   STARTING → RUNNING/DEAD    ensure_running after start_process returns
 *   RUNNING → DEAD             reader_main when its process is gone
 *   * → CLOSING                mcp_client_free
 *
 * Invariants:
 *   - Generations: each spawned process gets gen = ++c->gen.  A waiter
 *     belongs to one generation and is failed when that process dies; a
 *     request is only written if the stdin it is about to use belongs to the
 *     waiter's generation (checked under `wmu`), so a request meant for a
 *     dead process is never delivered to its successor.
 *   - Ids are never reused over the client's life, so a late response from
 *     a cancelled or timed-out call matches nothing and is dropped.
 *   - Only the reader thread reaps its child.  Signals to the group are sent
 *     under `mu` while `reaped` is false, so they never reach a recycled pid.
 *   - The reader never blocks writing to the server: its replies to the
 *     server's own requests (ping) go through a non-blocking outbox.
 *   - Every size the server controls is capped: a line at MCP_MAX_MESSAGE,
 *     tools/list at MCP_MAX_LIST_PAGES pages and MCP_MAX_TOOLS tools.
 */
#include "mcp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define KEEL_CLIENT_VERSION "0.1.0"
#define DEFAULT_START_TIMEOUT_MS 30000
#define DEFAULT_CALL_TIMEOUT_MS 60000
#define DEFAULT_SHUTDOWN_TIMEOUT_MS 2000
#define READ_CHUNK 65536
#define STDERR_LINE_MAX 4096

/* Protocol revisions this client can speak.  The first is what it asks for;
 * a server may answer with an older one it prefers (lifecycle, version
 * negotiation).  All of them carry tools/call the same way. */
static const char *const supported_versions[] = {MCP_PROTOCOL_VERSION, "2025-06-18",
                                                 "2025-03-26"};

/* Environment passed to servers unless inherit_env is set. */
static const char *const env_allowlist[] = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"};

enum state { ST_IDLE, ST_STARTING, ST_RUNNING, ST_DEAD, ST_CLOSING };

struct waiter {
    struct waiter *prev, *next;
    int64_t id;
    uint64_t gen;
    bool done;
    int rc;         /* 0: line holds the response; else a KEEL_E* code */
    char *line;     /* malloc'd response line (rc == 0) */
    size_t len;
    char msg[KEEL_ERR_MSG_MAX];
    pthread_cond_t cv;
};

/* What the reader thread of one incarnation owns. */
struct reader_ctx {
    struct mcp_client *c;
    uint64_t gen;
    pid_t pid;
    int pidfd, out_fd, err_fd;
    struct buf outbox; /* replies to the server's requests, not yet sent */
};

struct mcp_client {
    /* The copied config; strings live in cfg_arena. */
    struct mcp_server_config cfg;
    struct arena cfg_arena;

    pthread_mutex_t mu; /* everything below except in_fd/in_gen */
    pthread_cond_t cv;  /* state changes, reader exit */
    enum state state;
    uint64_t gen;          /* generation of the newest process */
    int64_t next_id;
    struct waiter pending; /* list head (sentinel) */
    pid_t pid;             /* newest process, 0 if none */
    bool reaped;           /* pid has been reaped (or there is none) */
    bool reader_live;      /* a reader thread exists that nobody joined */
    bool reader_done;      /* ... and it has finished its work */
    pthread_t reader;
    char death[KEEL_ERR_MSG_MAX]; /* why the last process ended */
    int death_code;

    struct arena tools_arena; /* holds tools[] */
    struct mcp_tool *tools;
    size_t ntools;
    bool tools_stale;
    const char *protocol_version;
    struct mcp_client_stats stats;

    pthread_mutex_t wmu; /* serializes writes to the server's stdin */
    int in_fd;           /* -1 when there is no live process */
    uint64_t in_gen;
};

/* ---- small helpers ----------------------------------------------------- */

static void monotonic_deadline(struct timespec *ts, int64_t timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(timeout_ms / 1000);
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

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

/* Fails every pending waiter of generation gen (all if gen == 0). */
static void fail_pending(struct mcp_client *c, uint64_t gen, int code, const char *msg)
{
    struct waiter *w = c->pending.next;
    while (w != &c->pending) {
        struct waiter *next = w->next;
        if (gen == 0 || w->gen == gen) waiter_fail(w, code, msg);
        w = next;
    }
}

/* Sends sig to the server's process group if it has not been reaped.
 * Called with mu held (see the invariant in the header comment). */
static void signal_group_locked(struct mcp_client *c, int sig)
{
    if (c->pid > 0 && !c->reaped) {
        if (killpg(c->pid, sig) != 0) kill(c->pid, sig);
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
static int send_line(struct mcp_client *c, uint64_t gen, struct buf *msg)
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

/* ---- config ------------------------------------------------------------ */

static bool valid_server_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        if (!ok) return false;
    }
    return true;
}

static const char **copy_strv(struct arena *a, const char *const *v, size_t n)
{
    const char **out = arena_alloc(a, (n + 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) out[i] = arena_strdup(a, v[i]);
    out[n] = NULL;
    return out;
}

static int config_copy(struct arena *a, const struct mcp_server_config *in,
                       struct mcp_server_config *out, struct keel_err *err)
{
    if (!in) return keel_fail(err, KEEL_EINVAL, "tool server config missing");
    if (!valid_server_name(in->name))
        return keel_fail(err, KEEL_EINVAL,
                         "tool server name '%s' is invalid; use 1-64 letters, digits, '_', "
                         "'.' or '-'",
                         in->name ? in->name : "");
    if (!in->command || !*in->command)
        return keel_fail(err, KEEL_EINVAL,
                         "tool server '%s' has no command; set `command` in keel.yaml", in->name);
    if (in->nargs > MCP_MAX_ARGS || (in->nargs && !in->args))
        return keel_fail(err, KEEL_EINVAL, "tool server '%s': at most %d args are allowed",
                         in->name, MCP_MAX_ARGS);
    if (in->nenv > MCP_MAX_ENV || (in->nenv && !in->env))
        return keel_fail(err, KEEL_EINVAL, "tool server '%s': at most %d env entries are allowed",
                         in->name, MCP_MAX_ENV);
    if (in->ntools > MCP_MAX_TOOLS || (in->ntools && !in->tools))
        return keel_fail(err, KEEL_EINVAL,
                         "tool server '%s': at most %d per-tool settings are allowed", in->name,
                         MCP_MAX_TOOLS);
    for (size_t i = 0; i < in->nargs; i++)
        if (!in->args[i])
            return keel_fail(err, KEEL_EINVAL, "tool server '%s': args[%zu] is null", in->name,
                             i);
    for (size_t i = 0; i < in->nenv; i++) {
        const char *e = in->env[i];
        const char *eq = e ? strchr(e, '=') : NULL;
        /* The entry itself is not quoted: it may hold a secret. */
        if (!eq || eq == e)
            return keel_fail(err, KEEL_EINVAL,
                             "tool server '%s': env[%zu] is not KEY=VALUE (no '=' or no key)",
                             in->name, i);
    }
    for (size_t i = 0; i < in->ntools; i++)
        if (!in->tools[i].tool || !*in->tools[i].tool || in->tools[i].timeout_ms < 0)
            return keel_fail(err, KEEL_EINVAL,
                             "tool server '%s': tool setting %zu needs a name and a timeout >= 0",
                             in->name, i);
    if (in->start_timeout_ms < 0 || in->call_timeout_ms < 0 || in->shutdown_timeout_ms < 0)
        return keel_fail(err, KEEL_EINVAL, "tool server '%s': timeouts must be >= 0", in->name);

    *out = *in;
    out->name = arena_strdup(a, in->name);
    out->command = arena_strdup(a, in->command);
    out->args = copy_strv(a, in->args, in->nargs);
    out->env = copy_strv(a, in->env, in->nenv);
    out->cwd = in->cwd ? arena_strdup(a, in->cwd) : NULL;
    out->stderr_log = in->stderr_log ? arena_strdup(a, in->stderr_log) : NULL;
    struct mcp_tool_config *tools = arena_zalloc(a, (in->ntools + 1) * sizeof *tools);
    for (size_t i = 0; i < in->ntools; i++) {
        tools[i] = in->tools[i];
        tools[i].tool = arena_strdup(a, in->tools[i].tool);
    }
    out->tools = tools;
    if (!out->start_timeout_ms) out->start_timeout_ms = DEFAULT_START_TIMEOUT_MS;
    if (!out->call_timeout_ms) out->call_timeout_ms = DEFAULT_CALL_TIMEOUT_MS;
    if (!out->shutdown_timeout_ms) out->shutdown_timeout_ms = DEFAULT_SHUTDOWN_TIMEOUT_MS;
    return 0;
}

static const struct mcp_tool_config *tool_config(const struct mcp_client *c, const char *tool)
{
    for (size_t i = 0; i < c->cfg.ntools; i++)
        if (!strcmp(c->cfg.tools[i].tool, tool)) return &c->cfg.tools[i];
    return NULL;
}

/* ---- spawning ---------------------------------------------------------- */

/* Finds command in PATH (as execvp would) before fork, so the child only
 * calls async-signal-safe functions. */
static int resolve_command(struct arena *a, const char *name, const char *cmd, const char **out,
                           struct keel_err *err)
{
    if (strchr(cmd, '/')) {
        if (access(cmd, X_OK) != 0)
            return keel_fail(err, errno == ENOENT ? KEEL_ENOENT : KEEL_EIO,
                             "tool server '%s': cannot execute '%s': %s; check `command` in "
                             "keel.yaml",
                             name, cmd, strerror(errno));
        *out = cmd;
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    const char *p = path;
    while (*p) {
        const char *colon = strchr(p, ':');
        size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
        char *full = arena_printf(a, "%.*s/%s", (int)dlen, dlen ? p : ".", cmd);
        struct stat st;
        if (access(full, X_OK) == 0 && stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            *out = full;
            return 0;
        }
        if (!colon) break;
        p = colon + 1;
    }
    return keel_fail(err, KEEL_ENOENT,
                     "tool server '%s': command '%s' not found in PATH; install it or give an "
                     "absolute path in keel.yaml",
                     name, cmd);
}

static bool env_key_eq(const char *a, const char *b)
{
    /* Compares the KEY parts of two "KEY=VALUE" strings. */
    while (*a && *a != '=' && *a == *b) a++, b++;
    return (*a == '=' || !*a) && (*b == '=' || !*b);
}

static char **build_env(struct arena *a, const struct mcp_server_config *cfg)
{
    size_t nbase = 0;
    if (cfg->inherit_env)
        while (environ && environ[nbase]) nbase++;
    size_t cap = nbase + KEEL_ARRAY_LEN(env_allowlist) + cfg->nenv + 1;
    char **env = arena_alloc(a, cap * sizeof *env);
    size_t n = 0;
    if (cfg->inherit_env) {
        for (size_t i = 0; i < nbase; i++) env[n++] = environ[i];
    } else {
        for (size_t i = 0; i < KEEL_ARRAY_LEN(env_allowlist); i++) {
            const char *v = getenv(env_allowlist[i]);
            if (v) env[n++] = arena_printf(a, "%s=%s", env_allowlist[i], v);
        }
    }
    for (size_t i = 0; i < cfg->nenv; i++) {
        size_t j = 0;
        while (j < n && !env_key_eq(env[j], cfg->env[i])) j++;
        env[j] = (char *)cfg->env[i];
        if (j == n) n++;
    }
    env[n] = NULL;
    return env;
}

/* What the child reports through the exec-error pipe before _exit. */
struct child_failure {
    int stage; /* 1 chdir, 2 dup2, 3 exec */
    int error;
};

/* Moves fd above 2 (so that dup2 onto 0..2 never clobbers a source). */
static int lift_fd(int fd)
{
    return fd > 2 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

struct spawned {
    pid_t pid;
    int pidfd, in_fd, out_fd, err_fd;
};

static void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

static int spawn(struct mcp_client *c, struct spawned *sp, struct keel_err *err)
{
    const struct mcp_server_config *cfg = &c->cfg;
    struct arena a;
    arena_init(&a);
    const char *path = NULL;
    int rc = resolve_command(&a, cfg->name, cfg->command, &path, err);
    if (rc) {
        arena_cleanup(&a);
        return rc;
    }
    /* The child changes to cfg->cwd before exec: a relative path must be
     * made absolute here, where it was found. */
    if (path[0] != '/') {
        char here[4096];
        if (!getcwd(here, sizeof here)) {
            arena_cleanup(&a);
            return keel_fail(err, KEEL_EIO, "tool server '%s': getcwd: %s", cfg->name,
                             strerror(errno));
        }
        path = arena_printf(&a, "%s/%s", here, path);
    }
    char **argv = arena_alloc(&a, (cfg->nargs + 2) * sizeof *argv);
    argv[0] = (char *)cfg->command;
    for (size_t i = 0; i < cfg->nargs; i++) argv[i + 1] = (char *)cfg->args[i];
    argv[cfg->nargs + 1] = NULL;
    char **envp = build_env(&a, cfg);

    int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1}, ex[2] = {-1, -1};
    int logfd = -1;
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(ex, O_CLOEXEC)) {
        rc = keel_fail(err, KEEL_EIO, "tool server '%s': pipe: %s", cfg->name, strerror(errno));
        goto fail;
    }
    if (cfg->stderr_log) {
        logfd = open(cfg->stderr_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (logfd < 0) {
            rc = keel_fail(err, KEEL_EIO, "tool server '%s': cannot open stderr log '%s': %s",
                           cfg->name, cfg->stderr_log, strerror(errno));
            goto fail;
        }
    } else if (pipe2(errp, O_CLOEXEC)) {
        rc = keel_fail(err, KEEL_EIO, "tool server '%s': pipe: %s", cfg->name, strerror(errno));
        goto fail;
    }
    int child_err = logfd >= 0 ? logfd : errp[1];

    pid_t pid = fork();
    if (pid < 0) {
        rc = keel_fail(err, KEEL_EIO, "tool server '%s': fork: %s", cfg->name, strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        /* Child: async-signal-safe calls only. */
        struct child_failure f = {0, 0};
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int s = 1; s < NSIG; s++) sigaction(s, &dfl, NULL);
        int fin = lift_fd(in[0]), fout = lift_fd(out[1]), ferr = lift_fd(child_err);
        if (fin < 0 || fout < 0 || ferr < 0 || dup2(fin, 0) < 0 || dup2(fout, 1) < 0 ||
            dup2(ferr, 2) < 0) {
            f = (struct child_failure){2, errno};
            goto child_fail;
        }
        /* Everything else closes at exec (the exec-error pipe too).  The
         * fallback covers kernels before 5.11. */
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
            for (int fd = 3; fd < 65536; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
        if (cfg->cwd && chdir(cfg->cwd) != 0) {
            f = (struct child_failure){1, errno};
            goto child_fail;
        }
        execve(path, argv, envp);
        f = (struct child_failure){3, errno};
    child_fail:;
        ssize_t w = write(ex[1], &f, sizeof f);
        (void)w;
        _exit(127);
    }
    close_fd(&in[0]);
    close_fd(&out[1]);
    close_fd(&errp[1]);
    close_fd(&logfd);
    close_fd(&ex[1]);
    struct child_failure f;
    ssize_t n;
    do n = read(ex[0], &f, sizeof f);
    while (n < 0 && errno == EINTR);
    close_fd(&ex[0]);
    if (n == (ssize_t)sizeof f) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        static const char *const stages[] = {"", "chdir to the cwd", "set up stdio", "execute"};
        rc = keel_fail(err, f.error == ENOENT ? KEEL_ENOENT : KEEL_EIO,
                       "tool server '%s': cannot %s for '%s': %s", cfg->name,
                       stages[f.stage >= 1 && f.stage <= 3 ? f.stage : 0],
                       f.stage == 1 ? cfg->cwd : cfg->command, strerror(f.error));
        goto fail;
    }
    int pidfd = pidfd_open(pid, 0);
    if (pidfd < 0) {
        rc = keel_fail(err, KEEL_EIO, "tool server '%s': pidfd_open: %s", cfg->name,
                       strerror(errno));
        kill(pid, SIGKILL);
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        goto fail;
    }
    *sp = (struct spawned){pid, pidfd, in[1], out[0], errp[0]};
    arena_cleanup(&a);
    return 0;

fail:
    for (int i = 0; i < 2; i++) {
        close_fd(&in[i]);
        close_fd(&out[i]);
        close_fd(&errp[i]);
        close_fd(&ex[i]);
    }
    close_fd(&logfd);
    arena_cleanup(&a);
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

static void *reader_main(void *arg)
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
                    fail_pending(c, r->gen, proto_rc, proto_msg);
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
    fail_pending(c, r->gen, proto_rc ? proto_rc : KEEL_EIO, proto_rc ? proto_msg : msg);
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
static int roundtrip_ex(struct mcp_client *c, uint64_t gen, const char *method,
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
    (void)send_line(c, gen, &msg);

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
        (void)send_line(c, gen, &msg);
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

static int roundtrip(struct mcp_client *c, uint64_t gen, const char *method,
                     const struct json_value *params, int64_t timeout_ms, struct arena *a,
                     struct mcp_rpc_msg *resp, const char *what, struct keel_err *err)
{
    return roundtrip_ex(c, gen, method, params, timeout_ms, a, resp, what, NULL, err);
}

/* ---- tools ------------------------------------------------------------- */

/* Decodes one tools/list entry of this client's server. */
static int tool_from_json(struct mcp_client *c, struct json_value *raw, struct mcp_tool *t,
                          struct keel_err *err)
{
    int rc = mcp_tool_decode(raw, c->cfg.name, t, err);
    if (rc) keel_err_prefix(err, "server '%s': tools/list", c->cfg.name);
    return rc;
}

/* Runs tools/list over all pages for generation gen and installs the result
 * as the client's tool cache. */
static int fetch_tools(struct mcp_client *c, uint64_t gen, int64_t timeout_ms,
                       struct keel_err *err)
{
    struct arena work, keep;
    arena_init(&work);
    arena_init(&keep);
    struct mcp_tool *tools = NULL;
    size_t n = 0, cap = 0;
    const char *cursor = NULL;
    int rc = 0;
    for (int page = 0;; page++) {
        if (page >= MCP_MAX_LIST_PAGES) {
            rc = keel_fail(err, KEEL_ELIMIT, "server '%s': tools/list has more than %d pages",
                           c->cfg.name, MCP_MAX_LIST_PAGES);
            goto out;
        }
        struct json_value *params = NULL;
        if (cursor) {
            params = json_object(&work);
            json_object_setc(&work, params, "cursor", json_cstr(&work, cursor));
        }
        struct mcp_rpc_msg m;
        rc = roundtrip(c, gen, "tools/list", params, timeout_ms, &work, &m, "tools/list", err);
        if (rc) goto out;
        struct json_value *list = json_get(m.result, "tools");
        if (!json_is(list, JSON_ARRAY)) {
            rc = keel_fail(err, KEEL_EPROTO, "server '%s': tools/list result has no tools array",
                           c->cfg.name);
            goto out;
        }
        for (uint32_t i = 0; i < list->len; i++) {
            if (n >= MCP_MAX_TOOLS) {
                rc = keel_fail(err, KEEL_ELIMIT, "server '%s' lists more than %d tools",
                               c->cfg.name, MCP_MAX_TOOLS);
                goto out;
            }
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                struct mcp_tool *nt = arena_alloc(&keep, ncap * sizeof *nt);
                if (n) memcpy(nt, tools, n * sizeof *nt);
                tools = nt;
                cap = ncap;
            }
            struct json_value *raw = json_clone(&keep, list->u.items[i]);
            rc = tool_from_json(c, raw, &tools[n], err);
            if (rc) goto out;
            for (size_t j = 0; j < n; j++)
                if (!strcmp(tools[j].name, tools[n].name)) {
                    rc = keel_fail(err, KEEL_EPROTO, "server '%s' lists tool '%s' twice",
                                   c->cfg.name, tools[n].name);
                    goto out;
                }
            n++;
        }
        struct json_value *next = json_get(m.result, "nextCursor");
        if (!json_is(next, JSON_STRING) || next->len == 0) break;
        if (cursor && !strcmp(cursor, next->u.s.str)) {
            rc = keel_fail(err, KEEL_EPROTO, "server '%s': tools/list returned the same cursor "
                           "twice", c->cfg.name);
            goto out;
        }
        cursor = arena_strdup(&work, next->u.s.str);
    }
    pthread_mutex_lock(&c->mu);
    if (c->gen == gen) {
        struct arena old = c->tools_arena;
        c->tools_arena = keep;
        c->tools = tools;
        c->ntools = n;
        c->tools_stale = false;
        keep = old; /* freed below */
    }
    pthread_mutex_unlock(&c->mu);
out:
    arena_cleanup(&work);
    arena_cleanup(&keep);
    return rc;
}

/* Copies tool t into arena a, resolving the effective idempotency. */
static void tool_copy(struct mcp_client *c, struct arena *a, const struct mcp_tool *t,
                      struct mcp_tool *out)
{
    struct json_value *raw = json_clone(a, t->raw);
    struct keel_err ignored;
    (void)tool_from_json(c, raw, out, &ignored); /* validated when listed */
    out->server = arena_strdup(a, c->cfg.name);
    enum mcp_override o = c->cfg.idempotent;
    const struct mcp_tool_config *tc = tool_config(c, t->name);
    if (tc && tc->idempotent != MCP_FROM_ANNOTATIONS) o = tc->idempotent;
    out->idempotent = o == MCP_FORCE_YES   ? true
                      : o == MCP_FORCE_NO ? false
                                          : out->idempotent_hint;
}

/* ---- lifecycle --------------------------------------------------------- */

static bool version_supported(const char *v, const char **canon)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(supported_versions); i++)
        if (!strcmp(v, supported_versions[i])) {
            *canon = supported_versions[i];
            return true;
        }
    return false;
}

/* Joins the previous reader thread, if any (its process is gone or being
 * killed).  Called without mu. */
static void join_reader(struct mcp_client *c)
{
    pthread_mutex_lock(&c->mu);
    bool live = c->reader_live;
    pthread_t t = c->reader;
    c->reader_live = false;
    pthread_mutex_unlock(&c->mu);
    if (live) pthread_join(t, NULL);
}

/* Spawns a process and runs the handshake.  Called with state STARTING and
 * mu not held; leaves the process running on success, killed on failure. */
static int start_process(struct mcp_client *c, struct keel_err *err)
{
    join_reader(c);
    struct spawned sp = {0, -1, -1, -1, -1};
    int rc = spawn(c, &sp, err);
    if (rc) return rc;

    struct reader_ctx *r = malloc(sizeof *r);
    if (!r) abort();
    pthread_mutex_lock(&c->mu);
    uint64_t gen = ++c->gen;
    c->pid = sp.pid;
    c->reaped = false;
    c->reader_done = false;
    c->death[0] = '\0';
    c->death_code = 0;
    c->stats.pid = sp.pid;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_lock(&c->wmu);
    c->in_fd = sp.in_fd;
    c->in_gen = gen;
    pthread_mutex_unlock(&c->wmu);
    *r = (struct reader_ctx){c, gen, sp.pid, sp.pidfd, sp.out_fd, sp.err_fd, {0}};
    buf_init(&r->outbox);
    pthread_t t;
    int prc = pthread_create(&t, NULL, reader_main, r);
    if (prc) abort(); /* out of threads: nothing sensible to do */
    pthread_mutex_lock(&c->mu);
    c->reader = t;
    c->reader_live = true;
    pthread_mutex_unlock(&c->mu);

    /* Handshake within the start timeout. */
    int64_t deadline = keel_mono_ns() + c->cfg.start_timeout_ms * 1000000;
    struct arena a;
    arena_init(&a);
    struct json_value *params = json_object(&a);
    json_object_setc(&a, params, "protocolVersion", json_cstr(&a, MCP_PROTOCOL_VERSION));
    json_object_setc(&a, params, "capabilities", json_object(&a));
    struct json_value *info = json_object(&a);
    json_object_setc(&a, info, "name", json_cstr(&a, "keel"));
    json_object_setc(&a, info, "version", json_cstr(&a, KEEL_CLIENT_VERSION));
    json_object_setc(&a, params, "clientInfo", info);
    struct mcp_rpc_msg m;
    rc = roundtrip(c, gen, "initialize", params, c->cfg.start_timeout_ms, &a, &m, "initialize",
                   err);
    const char *version = NULL;
    if (!rc) {
        const char *v = json_get_str(m.result, "protocolVersion", NULL);
        if (!v)
            rc = keel_fail(err, KEEL_EPROTO, "server '%s': initialize result has no "
                           "protocolVersion", c->cfg.name);
        else if (!version_supported(v, &version))
            rc = keel_fail(err, KEEL_EPROTO,
                           "server '%s' speaks MCP %.40s; Keel supports %s, %s and %s; upgrade "
                           "the server",
                           c->cfg.name, v, supported_versions[0], supported_versions[1],
                           supported_versions[2]);
        else if (!json_is(json_get(json_get(m.result, "capabilities"), "tools"), JSON_OBJECT))
            rc = keel_fail(err, KEEL_EPROTO,
                           "server '%s' does not offer tools (no capabilities.tools in its "
                           "initialize result)",
                           c->cfg.name);
    }
    if (!rc) {
        struct buf note;
        buf_init(&note);
        mcp_rpc_write_notification(&note, "notifications/initialized", NULL);
        (void)send_line(c, gen, &note);
        buf_cleanup(&note);
        int64_t left = (deadline - keel_mono_ns()) / 1000000;
        rc = fetch_tools(c, gen, left > 0 ? left : 1, err);
    }
    arena_cleanup(&a);
    pthread_mutex_lock(&c->mu);
    if (rc) {
        if (c->gen == gen) signal_group_locked(c, SIGKILL);
    } else {
        c->protocol_version = version;
        c->stats.starts++;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc && err) keel_err_prefix(err, "starting tool server '%s'", c->cfg.name);
    return rc;
}

/* Makes sure a process is running; returns its generation in *gen. */
static int ensure_running(struct mcp_client *c, uint64_t *gen, struct keel_err *err)
{
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (c->state == ST_RUNNING) {
            *gen = c->gen;
            pthread_mutex_unlock(&c->mu);
            return 0;
        }
        if (c->state == ST_CLOSING) {
            pthread_mutex_unlock(&c->mu);
            return keel_fail(err, KEEL_ESTATE, "server '%s' is shutting down", c->cfg.name);
        }
        if (c->state == ST_STARTING) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        /* IDLE or DEAD: this caller starts it. */
        c->state = ST_STARTING;
        pthread_mutex_unlock(&c->mu);
        int rc = start_process(c, err);
        pthread_mutex_lock(&c->mu);
        if (c->state == ST_STARTING) {
            /* The process may have died between the handshake and here. */
            if (!rc && c->reaped) {
                rc = keel_fail(err, c->death_code ? c->death_code : KEEL_EIO, "%s", c->death);
            }
            c->state = rc ? ST_DEAD : ST_RUNNING;
        }
        pthread_cond_broadcast(&c->cv);
        if (rc) {
            pthread_mutex_unlock(&c->mu);
            return rc;
        }
    }
}

static int client_alloc(const struct mcp_server_config *cfg, struct mcp_client **out,
                        struct keel_err *err)
{
    struct mcp_client *c = calloc(1, sizeof *c);
    if (!c) return keel_fail(err, KEEL_ENOMEM, "out of memory");
    arena_init(&c->cfg_arena);
    int rc = config_copy(&c->cfg_arena, cfg, &c->cfg, err);
    if (rc) {
        arena_cleanup(&c->cfg_arena);
        free(c);
        return rc;
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->wmu, NULL);
    cond_init_monotonic(&c->cv);
    c->pending.prev = c->pending.next = &c->pending;
    c->state = ST_IDLE;
    c->reaped = true;
    c->in_fd = -1;
    c->protocol_version = "";
    arena_init(&c->tools_arena);

    /* A write to a server that just died must return EPIPE, not kill Keel.
     * Only replace the default disposition: respect a host's own handler. */
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO)) {
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &ign, NULL);
    }
    *out = c;
    return 0;
}

int mcp_client_new(const struct mcp_server_config *cfg, struct mcp_client **out,
                   struct keel_err *err)
{
    return client_alloc(cfg, out, err);
}

int mcp_client_start(const struct mcp_server_config *cfg, struct mcp_client **out,
                     struct keel_err *err)
{
    struct mcp_client *c;
    int rc = client_alloc(cfg, &c, err);
    if (rc) return rc;
    uint64_t gen;
    rc = ensure_running(c, &gen, err);
    if (rc) {
        mcp_client_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* Waits until the current reader has finished or the deadline passes.
 * Called with mu held. */
static bool wait_reader_done(struct mcp_client *c, int64_t ms)
{
    struct timespec deadline;
    monotonic_deadline(&deadline, ms);
    while (c->reader_live && !c->reader_done) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT) break;
    }
    return !c->reader_live || c->reader_done;
}

void mcp_client_free(struct mcp_client *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->state = ST_CLOSING;
    char msg[KEEL_ERR_MSG_MAX];
    snprintf(msg, sizeof msg, "server '%s' is shutting down", c->cfg.name);
    fail_pending(c, 0, KEEL_ESTATE, msg);
    pthread_mutex_unlock(&c->mu);

    /* MCP shutdown over stdio: close the server's stdin and let it exit;
     * then SIGTERM; then SIGKILL, each after the grace period. */
    pthread_mutex_lock(&c->wmu);
    close_fd(&c->in_fd);
    pthread_mutex_unlock(&c->wmu);
    pthread_mutex_lock(&c->mu);
    if (!wait_reader_done(c, c->cfg.shutdown_timeout_ms)) {
        signal_group_locked(c, SIGTERM);
        if (!wait_reader_done(c, c->cfg.shutdown_timeout_ms)) signal_group_locked(c, SIGKILL);
    }
    pthread_mutex_unlock(&c->mu);
    join_reader(c);

    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->wmu);
    arena_cleanup(&c->tools_arena);
    arena_cleanup(&c->cfg_arena);
    free(c);
}

const char *mcp_client_name(const struct mcp_client *c)
{
    return c->cfg.name;
}

void mcp_client_stats(struct mcp_client *c, struct mcp_client_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    out->protocol_version = c->protocol_version;
    pthread_mutex_unlock(&c->mu);
}

int mcp_client_ping(struct mcp_client *c, int64_t timeout_ms, struct keel_err *err)
{
    struct arena a;
    arena_init(&a);
    int rc;
    for (int attempt = 0;; attempt++) {
        uint64_t gen;
        rc = ensure_running(c, &gen, err);
        if (rc) break;
        struct mcp_rpc_msg m;
        bool unsent = false;
        rc = roundtrip_ex(c, gen, "ping", NULL,
                          timeout_ms > 0 ? timeout_ms : c->cfg.call_timeout_ms, &a, &m, "ping",
                          &unsent, err);
        if (!rc || !unsent || attempt == 2) break;
    }
    arena_cleanup(&a);
    return rc;
}

/* Refreshes the tool cache when the server said it changed. */
static int ensure_tools(struct mcp_client *c, struct keel_err *err)
{
    uint64_t gen;
    int rc = ensure_running(c, &gen, err);
    if (rc) return rc;
    pthread_mutex_lock(&c->mu);
    bool stale = c->tools_stale;
    pthread_mutex_unlock(&c->mu);
    return stale ? fetch_tools(c, gen, c->cfg.call_timeout_ms, err) : 0;
}

int mcp_client_list_tools(struct mcp_client *c, struct arena *a, struct mcp_tool **tools,
                          size_t *count, struct keel_err *err)
{
    int rc = ensure_tools(c, err);
    if (rc) return rc;
    pthread_mutex_lock(&c->mu);
    struct mcp_tool *out = arena_zalloc(a, (c->ntools + 1) * sizeof *out);
    for (size_t i = 0; i < c->ntools; i++) tool_copy(c, a, &c->tools[i], &out[i]);
    *count = c->ntools;
    pthread_mutex_unlock(&c->mu);
    *tools = out;
    return 0;
}

int mcp_client_tool(struct mcp_client *c, const char *name, struct arena *a,
                    struct mcp_tool *out, struct keel_err *err)
{
    int rc = ensure_tools(c, err);
    if (rc) return rc;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->ntools; i++) {
        if (!strcmp(c->tools[i].name, name)) {
            tool_copy(c, a, &c->tools[i], out);
            pthread_mutex_unlock(&c->mu);
            return 0;
        }
    }
    struct buf names;
    buf_init(&names);
    for (size_t i = 0; i < c->ntools && i < 20; i++)
        buf_printf(&names, "%s%s", i ? ", " : "", c->tools[i].name);
    if (c->ntools > 20) buf_puts(&names, ", ...");
    rc = keel_fail(err, KEEL_ENOENT, "server '%s' has no tool '%s' (it has: %s)", c->cfg.name,
                   name, names.data ? names.data : "none");
    buf_cleanup(&names);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int mcp_client_call_tool(struct mcp_client *c, const char *tool, const struct json_value *args,
                         const char *idempotency_key, int64_t timeout_ms, struct arena *a,
                         struct mcp_call_result *out, struct keel_err *err)
{
    if (!tool || !*tool) return keel_fail(err, KEEL_EINVAL, "tool name is empty");
    if (args && !json_is(args, JSON_OBJECT))
        return keel_fail(err, KEEL_EINVAL, "arguments of tool '%s' must be an object, not %s",
                         tool, json_type_name(args));
    if (timeout_ms <= 0) {
        const struct mcp_tool_config *tc = tool_config(c, tool);
        timeout_ms = tc && tc->timeout_ms > 0 ? tc->timeout_ms : c->cfg.call_timeout_ms;
    }
    /* params: {name, arguments, _meta: {io.keel/idempotency-key}}; args are
     * referenced, not copied (the writer only reads them). */
    struct arena pa;
    arena_init(&pa);
    struct json_value *params = json_object(&pa);
    json_object_setc(&pa, params, "name", json_cstr(&pa, tool));
    json_object_setc(&pa, params, "arguments",
                     args ? (struct json_value *)args : json_object(&pa));
    if (idempotency_key) {
        struct json_value *meta = json_object(&pa);
        json_object_setc(&pa, meta, MCP_META_IDEMPOTENCY_KEY, json_cstr(&pa, idempotency_key));
        json_object_setc(&pa, params, "_meta", meta);
    }
    pthread_mutex_lock(&c->mu);
    c->stats.calls++;
    pthread_mutex_unlock(&c->mu);
    char what[200];
    snprintf(what, sizeof what, "tool '%.120s'", tool);
    struct mcp_rpc_msg m;
    int rc;
    for (int attempt = 0;; attempt++) {
        uint64_t gen;
        rc = ensure_running(c, &gen, err);
        if (rc) break;
        bool unsent = false;
        rc = roundtrip_ex(c, gen, "tools/call", params, timeout_ms, a, &m, what, &unsent, err);
        if (!rc || !unsent || attempt == 2) break;
    }
    arena_cleanup(&pa);
    if (rc) return rc;

    rc = mcp_call_result_decode(m.result, out, err);
    if (rc) keel_err_prefix(err, "tool '%s' on server '%s'", tool, c->cfg.name);
    return rc;
}
