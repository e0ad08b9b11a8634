/*
 * cmd_events.c — `keel events RUN`: a run's journal, one event per line.
 */
#include "client.h"

#include <stdio.h>
#include <string.h>

extern const struct cli_command cmd_events;

/* Page size: the API's maximum, so long runs take few requests. */
#define PAGE 10000

static void print_event(const struct json_value *ev, bool json)
{
    struct buf line;
    buf_init(&line);
    if (json) {
        json_write(&line, ev, 0, NULL);
        puts(line.data);
    } else {
        json_write(&line, json_get(ev, "payload"), 0, NULL);
        printf("%4lld %s %-20s %-24s %s\n", (long long)json_get_int(ev, "seq", 0),
               json_get_str(ev, "time", ""), json_get_str(ev, "kind", ""),
               json_get_str(ev, "actor", ""), line.data ? line.data : "");
    }
    buf_cleanup(&line);
}

static int run(int argc, char **argv)
{
    struct cli_client c;
    const char *id;
    int ec = cli_client_args_id(&cmd_events, &c, argc, argv, "RUN id", &id);
    if (ec) return ec;
    /* The API pages the journal; a run of weeks may hold more than a page. */
    for (long long from = 1;;) {
        struct buf path;
        buf_init(&path);
        buf_puts(&path, "/v1/runs/");
        cli_path_escape(&path, id);
        buf_printf(&path, "/events?from=%lld&limit=%d", from, PAGE);
        struct arena a;
        arena_init(&a);
        struct keel_err err;
        keel_err_clear(&err);
        struct json_value *out;
        int rc = cli_client_request(&c, "GET", path.data, NULL, &a, &out, &err);
        buf_cleanup(&path);
        if (rc) {
            arena_cleanup(&a);
            return cli_error("events", &err);
        }
        struct json_value *evs = json_get(out, "events");
        uint32_t n = json_is(evs, JSON_ARRAY) ? evs->len : 0;
        for (uint32_t i = 0; i < n; i++) print_event(evs->u.items[i], c.json);
        long long last = n ? (long long)json_get_int(evs->u.items[n - 1], "seq", 0) : 0;
        arena_cleanup(&a);
        if (n < PAGE || last < from) break;
        from = last + 1;
    }
    fflush(stdout);
    return CLI_OK;
}

const struct cli_command cmd_events = {
    .name = "events",
    .summary = "print a run's journal",
    .usage = "usage: keel events RUN [--json] [--server URL] [--token T] [--data DIR]\n"
             "\n"
             "Prints the run's events in order: seq, time, kind, actor, payload.  --json\n"
             "prints the raw journal as JSONL: one event per line with its prev_hash and\n"
             "hash.  Exit codes: 0 ok, 4 no such run, 5 token\n"
             "refused, 6 daemon not reachable.\n",
    .run = run,
};
