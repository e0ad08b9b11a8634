/*
 * cmd_usage.c — `keel usage [--since T] [--until T] [--workflow W]
 * [--agent A] [--json]`: model usage and cost summed across runs, per
 * workflow, agent and model (docs/cli/usage.md).  It GETs /v1/usage and
 * prints the totals, then one table per breakdown (rows by cost,
 * descending, as the API orders them); --json prints the API's object.
 *
 * Time bounds are checked here with engine_usage_time, so a typo is a
 * usage error (exit 2) before any request; the text is then passed on
 * unchanged, so relative bounds ("7d") are taken against the daemon's
 * clock, like every other time the daemon reports.
 */
#include "client.h"
#include "engine/engine.h"

#include <stdio.h>
#include <string.h>

extern const struct cli_command cmd_usage;

/* The command's own flags, each taking one value. */
struct usage_args {
    const char *since, *until, *workflow, *agent;
};

static const struct {
    const char *flag;
    const char *param; /* the query parameter it becomes */
    size_t offset;
} value_flags[] = {
    {"--since", "since", offsetof(struct usage_args, since)},
    {"--until", "until", offsetof(struct usage_args, until)},
    {"--workflow", "workflow", offsetof(struct usage_args, workflow)},
    {"--agent", "agent", offsetof(struct usage_args, agent)},
};

/* Consumes argv[*i] (and its value) if it is one of value_flags: 1, 0 if
 * it is not one, or -CLI_USAGE after printing the error. */
static int value_flag(struct usage_args *u, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    for (size_t k = 0; k < KEEL_ARRAY_LEN(value_flags); k++) {
        size_t n = strlen(value_flags[k].flag);
        const char *val;
        if (!strcmp(a, value_flags[k].flag)) {
            if (*i + 1 >= argc) return -cli_usage_error(&cmd_usage, "%s needs a value", a);
            val = argv[++*i];
        } else if (!strncmp(a, value_flags[k].flag, n) && a[n] == '=') {
            val = a + n + 1;
        } else {
            continue;
        }
        if (!*val)
            return -cli_usage_error(&cmd_usage, "%s needs a non-empty value", value_flags[k].flag);
        *(const char **)((char *)u + value_flags[k].offset) = val;
        return 1;
    }
    return 0;
}

static int64_t num_i(const struct json_value *o, const char *k)
{
    return json_get_int(o, k, 0);
}

static double num_d(const struct json_value *o, const char *k)
{
    const struct json_value *v = json_get(o, k);
    return json_is(v, JSON_NUMBER) ? v->u.n.d : 0;
}

/* One breakdown table: a header naming the key column, then its rows. */
static void print_table(const struct json_value *rows, const char *key, const char *title)
{
    int w = (int)strlen(title);
    for (uint32_t i = 0; json_is(rows, JSON_ARRAY) && i < rows->len; i++) {
        int n = (int)strlen(json_get_str(rows->u.items[i], key, ""));
        if (n > w) w = n;
    }
    if (w > 48) w = 48;
    printf("\n%-*s %6s %8s %14s %14s %14s\n", w, title, "RUNS", "CALLS", "INPUT TOKENS",
           "OUTPUT TOKENS", "COST USD");
    for (uint32_t i = 0; json_is(rows, JSON_ARRAY) && i < rows->len; i++) {
        const struct json_value *r = rows->u.items[i];
        printf("%-*s %6lld %8lld %14lld %14lld %14.6f\n", w, json_get_str(r, key, ""),
               (long long)num_i(r, "runs"), (long long)num_i(r, "model_calls"),
               (long long)num_i(r, "input_tokens"), (long long)num_i(r, "output_tokens"),
               num_d(r, "cost_usd"));
    }
}

static void print_text(const struct json_value *u)
{
    const struct json_value *since = json_get(u, "since");
    printf("Model usage from %s to %s",
           json_is(since, JSON_STRING) ? since->u.s.str : "the beginning",
           json_get_str(u, "until", "now"));
    const char *wf = json_get_str(u, "workflow", NULL), *ag = json_get_str(u, "agent", NULL);
    if (wf || ag)
        printf(" (%s%s%s%s%s)", wf ? "workflow " : "", wf ? wf : "", wf && ag ? ", " : "",
               ag ? "agent " : "", ag ? ag : "");
    printf("\n%lld runs, %lld model calls, %lld input + %lld output tokens, $%.6f\n",
           (long long)num_i(u, "runs"), (long long)num_i(u, "model_calls"),
           (long long)num_i(u, "input_tokens"), (long long)num_i(u, "output_tokens"),
           num_d(u, "cost_usd"));
    if (num_i(u, "model_calls") == 0) {
        printf("No model calls in this window.\n");
        return;
    }
    print_table(json_get(u, "by_workflow"), "workflow", "WORKFLOW");
    print_table(json_get(u, "by_agent"), "agent", "AGENT");
    print_table(json_get(u, "by_model"), "model", "MODEL");
}

static int run(int argc, char **argv)
{
    struct cli_client c;
    memset(&c, 0, sizeof c);
    struct usage_args u;
    memset(&u, 0, sizeof u);
    for (int i = 1; i < argc; i++) {
        int r = cli_client_flag(&cmd_usage, &c, argc, argv, &i);
        if (r < 0) return -r;
        if (r) continue;
        r = value_flag(&u, argc, argv, &i);
        if (r < 0) return -r;
        if (r) continue;
        return cli_usage_error(&cmd_usage, "unexpected argument '%s'", argv[i]);
    }
    struct keel_err err;
    keel_err_clear(&err);
    int64_t now = keel_wall_ms(), ms;
    if (u.since && engine_usage_time(u.since, now, &ms, &err))
        return cli_usage_error(&cmd_usage, "--since: %s", err.msg);
    if (u.until && engine_usage_time(u.until, now, &ms, &err))
        return cli_usage_error(&cmd_usage, "--until: %s", err.msg);

    struct buf path;
    buf_init(&path);
    buf_puts(&path, "/v1/usage");
    char sep = '?';
    for (size_t k = 0; k < KEEL_ARRAY_LEN(value_flags); k++) {
        const char *v = *(const char **)((char *)&u + value_flags[k].offset);
        if (!v) continue;
        buf_printf(&path, "%c%s=", sep, value_flags[k].param);
        cli_path_escape(&path, v);
        sep = '&';
    }
    struct arena a;
    arena_init(&a);
    struct json_value *out;
    int rc = cli_client_request(&c, "GET", path.data, NULL, &a, &out, &err);
    buf_cleanup(&path);
    if (rc) {
        arena_cleanup(&a);
        return cli_error("usage", &err);
    }
    if (c.json)
        cli_print_json(out);
    else
        print_text(out);
    fflush(stdout);
    arena_cleanup(&a);
    return CLI_OK;
}

const struct cli_command cmd_usage = {
    .name = "usage",
    .summary = "model tokens and cost summed per workflow, agent and model",
    .usage = "usage: keel usage [--since T] [--until T] [--workflow W] [--agent TEAM/NAME]\n"
             "                  [--json] [--server URL] [--token T] [--data DIR]\n"
             "\n"
             "Sums the model calls journaled by every run (input and output tokens, cost\n"
             "from the price table at the time of the call) over a time window: the\n"
             "totals, then by workflow, by agent and by model, most expensive first.\n"
             "\n"
             "  --since T     count calls at or after T (default: the beginning)\n"
             "  --until T     count calls before T (default: now)\n"
             "  --workflow W  only runs of workflow W\n"
             "  --agent A     only calls made by agent A (team/name)\n"
             "  --json        print the answer of GET /v1/usage\n"
             "\n"
             "T is an RFC 3339 time (2026-11-20T08:00:00Z), a date (2026-11-20, midnight\n"
             "UTC), now, or how long ago (7d, -36h, 1h30m).\n"
             "\n"
             "Exit codes: 0 ok, 2 usage (a bad flag or time), 3 a filter the daemon\n"
             "refused, 5 token refused, 6 daemon not reachable, 7 daemon busy with other\n"
             "long requests (retry).\n",
    .run = run,
};
