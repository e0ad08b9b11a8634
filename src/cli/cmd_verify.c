/*
 * cmd_verify.c — `keel verify RUN`: recomputes the run's hash chain on the
 * daemon and reports whether it is intact (exit 1 if not).
 */
#include "client.h"

#include <stdio.h>
#include <string.h>

extern const struct cli_command cmd_verify;

static int run(int argc, char **argv)
{
    struct cli_client c;
    const char *id;
    int ec = cli_client_args_id(&cmd_verify, &c, argc, argv, "RUN id", &id);
    if (ec) return ec;
    struct buf path;
    buf_init(&path);
    buf_puts(&path, "/v1/runs/");
    cli_path_escape(&path, id);
    buf_puts(&path, "/verify");
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    keel_err_clear(&err);
    struct json_value *out;
    int rc = cli_client_request(&c, "GET", path.data, NULL, &a, &out, &err);
    buf_cleanup(&path);
    if (rc) {
        arena_cleanup(&a);
        return cli_error("verify", &err);
    }
    bool ok = json_get_bool(out, "ok", false);
    if (c.json) {
        cli_print_json(out);
    } else if (ok) {
        printf("ok: %lld events, head %s\n", (long long)json_get_int(out, "events", 0),
               json_get_str(out, "head", ""));
    } else {
        printf("BROKEN at seq %lld: %s\n", (long long)json_get_int(out, "first_bad_seq", 0),
               json_get_str(out, "error", ""));
    }
    arena_cleanup(&a);
    return ok ? CLI_OK : CLI_NO;
}

const struct cli_command cmd_verify = {
    .name = "verify",
    .summary = "check a run's journal hash chain",
    .usage = "usage: keel verify RUN [--json] [--server URL] [--token T] [--data DIR]\n"
             "\n"
             "Recomputes every event hash of the run's journal and checks the chain.\n"
             "Exit codes: 0 intact, 1 broken (the first bad seq is printed), 4 no such\n"
             "run, 5 token refused, 6 daemon not reachable.\n",
    .run = run,
};
