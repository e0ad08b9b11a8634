/*
 * cmd_events.c — `keel events RUN`: a run's journal, one event per line.
 */
#include "client.h"

#include <stdio.h>
#include <string.h>

extern const struct cli_command cmd_events;

static int run(int argc, char **argv)
{
    struct cli_client c;
    memset(&c, 0, sizeof c);
    const char *id = NULL;
    for (int i = 1; i < argc; i++) {
        int r = cli_client_flag(&cmd_events, &c, argc, argv, &i);
        if (r < 0) return -r;
        if (r) continue;
        if (argv[i][0] == '-' || id)
            return cli_usage_error(&cmd_events, "unexpected argument '%s'", argv[i]);
        id = argv[i];
    }
    if (!id) return cli_usage_error(&cmd_events, "missing RUN id");
    struct buf path;
    buf_init(&path);
    buf_puts(&path, "/v1/runs/");
    cli_path_escape(&path, id);
    buf_puts(&path, "/events");
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
    if (c.json) {
        cli_print_json(out);
    } else {
        struct json_value *evs = json_get(out, "events");
        for (uint32_t i = 0; json_is(evs, JSON_ARRAY) && i < evs->len; i++) {
            struct json_value *ev = evs->u.items[i];
            struct buf p;
            buf_init(&p);
            json_write(&p, json_get(ev, "payload"), 0, NULL);
            printf("%4lld %s %-20s %-24s %s\n", (long long)json_get_int(ev, "seq", 0),
                   json_get_str(ev, "time", ""), json_get_str(ev, "kind", ""),
                   json_get_str(ev, "actor", ""), p.data ? p.data : "");
            buf_cleanup(&p);
        }
    }
    arena_cleanup(&a);
    return CLI_OK;
}

const struct cli_command cmd_events = {
    .name = "events",
    .summary = "print a run's journal",
    .usage = "usage: keel events RUN [--json] [--server URL] [--token T] [--data DIR]\n"
             "\n"
             "Prints the run's events in order: seq, time, kind, actor, payload.  --json\n"
             "prints them with their hashes.  Exit codes: 0 ok, 4 no such run, 5 token\n"
             "refused, 6 daemon not reachable.\n",
    .run = run,
};
