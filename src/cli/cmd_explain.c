/*
 * cmd_explain.c — `keel explain RUN [--from N] [--limit N | --all] [--json]
 * [--no-color]`: the explain
 * report of a run (docs/explain.md, docs/cli/explain.md).  It GETs
 * /v1/runs/{id}/explain and renders it with obs_explain_text: a summary of
 * at most a screen (24 rows of the terminal's width, wrapped lines
 * counted), then the timeline, a page of it (--from, --limit; --all fetches
 * every page and joins them).  --json prints the report as the API returns
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

/* One page of the report: GET /v1/runs/{id}/explain?from=F[&limit=L]. */
static int fetch(struct cli_client *c, const char *id, const char *from, const char *limit,
                 struct arena *a, struct json_value **out, struct keel_err *err)
{
    struct buf path;
    buf_init(&path);
    buf_puts(&path, "/v1/runs/");
    cli_path_escape(&path, id);
    buf_puts(&path, "/explain?from=");
    cli_path_escape(&path, from);
    if (limit) {
        buf_puts(&path, "&limit=");
        cli_path_escape(&path, limit);
    }
    int rc = cli_client_request(c, "GET", path.data, NULL, a, out, err);
    buf_cleanup(&path);
    return rc;
}

/* Appends more's visits and switches to report's, and takes over its
 * paging fields (the rest of a page repeats the first one's). */
static void join_page(struct arena *a, struct json_value *report, const struct json_value *more)
{
    static const char *const lists[] = {"timeline", "switches"};
    for (size_t k = 0; k < 2; k++) {
        struct json_value *to = json_get(report, lists[k]);
        const struct json_value *from = json_get(more, lists[k]);
        for (uint32_t i = 0; json_is(to, JSON_ARRAY) && json_is(from, JSON_ARRAY) && i < from->len;
             i++)
            json_array_push(a, to, from->u.items[i]);
    }
    json_object_del(report, "timeline_next", strlen("timeline_next"));
    const struct json_value *next = json_get(more, "timeline_next");
    if (next) json_object_setc(a, report, "timeline_next", (struct json_value *)next);
    /* Joined from the start: one whole timeline. */
    if (!next && json_get_int(report, "timeline_from", 0) == 0) {
        json_object_del(report, "timeline_from", strlen("timeline_from"));
        json_object_del(report, "timeline_total", strlen("timeline_total"));
    }
}

static int run(int argc, char **argv)
{
    struct cli_client c;
    memset(&c, 0, sizeof c);
    const char *id = NULL, *from = NULL, *limit = NULL;
    bool no_color = false, all = false;
    for (int i = 1; i < argc; i++) {
        int r = cli_client_flag(&cmd_explain, &c, argc, argv, &i);
        if (r < 0) return -r;
        if (r) continue;
        if (!strcmp(argv[i], "--no-color")) {
            no_color = true;
            continue;
        }
        if (!strcmp(argv[i], "--all")) {
            all = true;
            continue;
        }
        if (!strcmp(argv[i], "--from") || !strcmp(argv[i], "--limit")) {
            if (i + 1 >= argc) return cli_usage_error(&cmd_explain, "%s needs a number", argv[i]);
            *(argv[i][2] == 'f' ? &from : &limit) = argv[i + 1];
            i++;
            continue;
        }
        if (argv[i][0] == '-' || id)
            return cli_usage_error(&cmd_explain, "unexpected argument '%s'", argv[i]);
        id = argv[i];
    }
    if (!id) return cli_usage_error(&cmd_explain, "missing RUN id");
    if (all && from) return cli_usage_error(&cmd_explain, "--all and --from do not go together");

    struct arena a;
    arena_init(&a);
    struct keel_err err;
    keel_err_clear(&err);
    struct json_value *report = NULL;
    /* --all: page after page (each response stays small), the timelines
     * joined into the first page's report. */
    int rc = fetch(&c, id, from ? from : "0", limit, &a, &report, &err);
    while (!rc && all && json_get(report, "timeline_next")) {
        char at[32];
        snprintf(at, sizeof at, "%lld", (long long)json_get_int(report, "timeline_next", 0));
        struct json_value *more;
        rc = fetch(&c, id, at, limit, &a, &more, &err);
        if (rc) break;
        join_page(&a, report, more);
    }
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
    .usage = "usage: keel explain RUN [--from N] [--limit N | --all] [--json] [--no-color]\n"
             "                    [--server URL] [--token T] [--data DIR]\n"
             "\n"
             "Prints the explain report of a run, built from its journal: first a summary\n"
             "(outcome; steps, tool calls allowed/denied/needing approval, refusals,\n"
             "retries, model calls, tokens and cost; each acting identity; approvals; and\n"
             "what to look at first: failures, denials, refusals, rejected outputs and every\n"
             "branch with the tool result or model answer that caused it), then the\n"
             "timeline: one block per step visit with the state it read and wrote, its\n"
             "calls with their policy decisions and approvals, and its model calls.\n"
             "\n"
             "  --from N    the timeline from its visit N on (0 is the first; the summary is\n"
             "              always of the whole run)\n"
             "  --limit N   at most N visits (default 1000, at most 100000)\n"
             "  --all       every visit, fetched page by page\n"
             "  --json      print the report (docs/explain.md)\n"
             "  --no-color  no ANSI colours (also when $NO_COLOR is set or stdout is not a\n"
             "              terminal)\n"
             "\n"
             "Exit codes: 0 ok, 2 usage, 4 no such run, 5 token refused, 6 daemon not\n"
             "reachable.\n",
    .run = run,
};
