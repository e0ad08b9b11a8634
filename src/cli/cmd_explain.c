/*
 * cmd_explain.c — `keel explain RUN [--json] [--no-color]`: the explain
 * report of a run (docs/explain.md, docs/cli/explain.md).  It GETs
 * /v1/runs/{id}/explain and renders it with obs_explain_text: a summary of
 * at most a screen (24 rows of the terminal's width, wrapped lines
 * counted), then the timeline.  --json prints the report as the API returns
 * it.  Colour is used only when standard output is a terminal and neither
 * --no-color nor $NO_COLOR is given.
 */
#include "client.h"
#include "obs/obs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

extern const struct cli_command cmd_explain;

static int run(int argc, char **argv)
{
    struct cli_client c;
    memset(&c, 0, sizeof c);
    const char *id = NULL;
    bool no_color = false;
    for (int i = 1; i < argc; i++) {
        int r = cli_client_flag(&cmd_explain, &c, argc, argv, &i);
        if (r < 0) return -r;
        if (r) continue;
        if (!strcmp(argv[i], "--no-color")) {
            no_color = true;
            continue;
        }
        if (argv[i][0] == '-' || id)
            return cli_usage_error(&cmd_explain, "unexpected argument '%s'", argv[i]);
        id = argv[i];
    }
    if (!id) return cli_usage_error(&cmd_explain, "missing RUN id");

    struct buf path;
    buf_init(&path);
    buf_puts(&path, "/v1/runs/");
    cli_path_escape(&path, id);
    buf_puts(&path, "/explain");
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    keel_err_clear(&err);
    struct json_value *report;
    int rc = cli_client_request(&c, "GET", path.data, NULL, &a, &report, &err);
    buf_cleanup(&path);
    if (rc) {
        arena_cleanup(&a);
        return cli_error("explain", &err);
    }
    if (c.json) {
        cli_print_json(report);
    } else {
        const char *nc = getenv("NO_COLOR");
        bool tty = isatty(STDOUT_FILENO);
        bool color = !no_color && !(nc && *nc) && tty;
        /* On a terminal the summary is fitted to its rows of this width. */
        struct winsize ws;
        int width = tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 0;
        struct buf out;
        buf_init(&out);
        obs_explain_text_width(report, &out, color, width);
        fwrite(out.data ? out.data : "", 1, out.len, stdout);
        buf_cleanup(&out);
    }
    fflush(stdout);
    arena_cleanup(&a);
    return CLI_OK;
}

const struct cli_command cmd_explain = {
    .name = "explain",
    .summary = "explain a run: who acted, what state moved, why it branched",
    .usage = "usage: keel explain RUN [--json] [--no-color] [--server URL] [--token T] [--data DIR]\n"
             "\n"
             "Prints the explain report of a run, built from its journal: first a summary\n"
             "(outcome; steps, tool calls allowed/denied/needing approval, refusals,\n"
             "retries, model calls, tokens and cost; each acting identity; approvals; and\n"
             "what to look at first: failures, denials, refusals, rejected outputs and every\n"
             "branch with the tool result or model answer that caused it), then the\n"
             "timeline: one block per step visit with the state it read and wrote, its\n"
             "calls with their policy decisions and approvals, and its model calls.\n"
             "\n"
             "  --json      print the complete report (docs/explain.md)\n"
             "  --no-color  no ANSI colours (also when $NO_COLOR is set or stdout is not a\n"
             "              terminal)\n"
             "\n"
             "Exit codes: 0 ok, 2 usage, 4 no such run, 5 token refused, 6 daemon not\n"
             "reachable.\n",
    .run = run,
};
