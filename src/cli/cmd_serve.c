/*
 * cmd_serve.c — `keel serve`: the daemon.  Starts the engine (store, tool
 * servers, workflows, resume of unfinished runs) and the HTTP API, prints
 * "keel: listening on http://HOST:PORT" on stdout once it accepts requests
 * (tests and scripts wait for that line), and runs until SIGINT/SIGTERM.
 * SIGHUP reloads policies and workflows without dropping runs.
 *
 * Signals are blocked in every thread and taken synchronously here with
 * sigwait, so no handler runs inside library code.
 */
#include "../api/api.h"
#include "cli.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: keel serve [--data DIR] [--listen HOST:PORT] [--config FILE] [--workers N]\n"
    "                  [--json]\n"
    "\n"
    "Runs the Keel daemon: the run engine and the HTTP API.\n"
    "\n"
    "  --data DIR          data folder (store, admin token); default: the config's\n"
    "                      data_dir, else ./.keel\n"
    "  --listen HOST:PORT  where the API listens; default 127.0.0.1:7400 (port 0 picks\n"
    "                      a free port; the line printed at start names it)\n"
    "  --config FILE       keel.yaml (agents, tool servers, approvers, workflows);\n"
    "                      default ./keel.yaml if it exists\n"
    "  --workers N         worker threads running steps (default 4)\n"
    "\n"
    "At first start the admin token is written to DATA/admin.token (mode 0600).\n"
    "Prints 'keel: listening on http://HOST:PORT' when ready (with --json:\n"
    "{\"listening\":\"http://HOST:PORT\"}).  SIGHUP reloads\n"
    "workflows and policies; SIGINT/SIGTERM stop (unfinished runs resume at the next\n"
    "start).  Exit codes: 0 stopped cleanly, 2 usage, 3 bad config, 5 permissions,\n"
    "6 cannot listen or open the store.\n";

static int run(int argc, char **argv)
{
    extern const struct cli_command cmd_serve;
    const char *data = NULL, *listen = NULL, *config = NULL;
    int workers = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        const char **slot = !strcmp(a, "--data")     ? &data
                            : !strcmp(a, "--listen") ? &listen
                            : !strcmp(a, "--config") ? &config
                                                     : NULL;
        if (slot) {
            if (i + 1 >= argc) return cli_usage_error(&cmd_serve, "%s needs a value", a);
            *slot = argv[++i];
        } else if (!strcmp(a, "--workers")) {
            if (i + 1 >= argc) return cli_usage_error(&cmd_serve, "--workers needs a value");
            workers = atoi(argv[++i]);
            if (workers < 1 || workers > 256)
                return cli_usage_error(&cmd_serve, "--workers must be 1-256");
        } else {
            return cli_usage_error(&cmd_serve, "unknown argument '%s'", a);
        }
    }
    if (!config && access("keel.yaml", R_OK) == 0) config = "keel.yaml";
    struct keel_err err;
    keel_err_clear(&err);
    char host[256];
    int port = API_DEFAULT_PORT;
    snprintf(host, sizeof host, "%s", API_DEFAULT_HOST);
    if (listen && api_parse_listen(listen, host, sizeof host, &port, &err))
        return cli_error("serve", &err);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct engine_opts eo = {.data_dir = data, .config_path = config, .workers = workers};
    struct engine *e;
    if (engine_start(&eo, &e, &err)) return cli_error("serve", &err);
    struct api_config ac = {.host = host, .port = port};
    struct api_server *srv;
    if (api_server_start(&ac, e, &srv, &err)) {
        engine_stop(e);
        return cli_error("serve", &err);
    }
    if (json) printf("{\"listening\":\"http://%s:%d\"}\n", host, api_server_port(srv));
    else printf("keel: listening on http://%s:%d\n", host, api_server_port(srv));
    fflush(stdout);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0) continue;
        if (sig == SIGHUP) {
            keel_err_clear(&err);
            if (engine_reload(e, &err)) {
                char msg[2 * KEEL_ERR_MSG_MAX];
                keel_log(KEEL_LOG_ERROR, "%s", keel_err_format(&err, msg, sizeof msg));
            }
            continue;
        }
        break;
    }
    api_server_stop(srv);
    engine_stop(e);
    return CLI_OK;
}

const struct cli_command cmd_serve = {
    .name = "serve",
    .summary = "run the daemon (engine and HTTP API)",
    .usage = usage,
    .run = run,
};
