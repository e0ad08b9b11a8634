/*
 * client_spawn.c — what the MCP client needs before a server runs: its
 * copied and validated configuration, and the child process itself.
 *
 * The child is forked into its own process group with only stdin, stdout
 * and stderr open (stderr to a pipe the reader logs, or to stderr_log), in
 * the configured cwd, with an environment built from an allowlist (or the
 * whole environment with inherit_env) plus the configured entries.  The
 * command is resolved in PATH before fork, and a failed chdir, dup2 or
 * exec is reported back through a close-on-exec pipe, so a bad command is
 * an error of mcp_spawn, not a server that exits at once.
 *
 * Invariants: the child calls only async-signal-safe functions between fork
 * and exec; every signal disposition and the mask are reset in the child;
 * nothing the parent opened leaks into the child (close_range, or
 * FD_CLOEXEC on every descriptor on kernels before 5.11); config entries
 * are capped (MCP_MAX_ARGS, MCP_MAX_ENV, MCP_MAX_TOOLS) and an env entry is
 * never quoted in a message, as it may hold a secret.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

#define DEFAULT_START_TIMEOUT_MS 30000
#define DEFAULT_CALL_TIMEOUT_MS 60000
#define DEFAULT_SHUTDOWN_TIMEOUT_MS 2000

/* Environment passed to servers unless inherit_env is set. */
static const char *const env_allowlist[] = {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"};

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

/* Validates in and copies it into a (see internal.h); *out is untouched on
 * failure. */
int mcp_config_copy(struct arena *a, const struct mcp_server_config *in,
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

/* Starts c's server (see internal.h); the descriptors in *sp belong to the
 * caller. */
int mcp_spawn(struct mcp_client *c, struct spawned *sp, struct keel_err *err)
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
