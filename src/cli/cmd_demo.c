/*
 * cmd_demo.c — `keel demo`: the support-triage story of ARCHITECTURE.md,
 * end to end, on this machine, with nothing to configure.
 *
 * It builds a throwaway Keel home (the example workflow and policies, which
 * are compiled into the binary from examples/), starts the mock model
 * server and the example tool servers that are built next to `keel`, and
 * drives one run in-process through the real engine and store:
 *
 *   fetch ticket ─► triage agent (model calls, CRM lookup, issue search)
 *   ─► switch ─► open an engineering issue ─► drafting agent (its attempt to
 *   file an issue is refused by policy) ─► support lead's approval
 *   ─► the engine is stopped and started again while the run is parked
 *   ─► the lead approves ─► reply posted, ticket solved ─► `keel explain`
 *
 * Nothing here is simulated but the model: the tools, the journal, Cedar,
 * the approval and the restart are the real thing.  Exit status 0 only if
 * the run succeeded.
 */
#include "../engine/engine.h"
#include "../obs/obs.h"
#include "cli.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* examples/ compiled in (CMakeLists.txt, embed.cmake). */
extern const char demo_workflow_yaml[];
extern const char demo_policies_cedar[];
extern const char demo_model_script[];

static const char usage[] =
    "usage: keel demo [--ticket ID] [--keep] [--no-color]\n"
    "\n"
    "Runs the support-triage demo: a workflow with two agents over the example\n"
    "tool servers and the mock model server (both built next to keel), with\n"
    "embedded SQLite in a temporary folder.  A triage agent classifies the\n"
    "ticket, an engineering issue is opened, a drafting agent writes the reply\n"
    "(policy refuses its attempt to file an issue), the engine is restarted\n"
    "while the run waits for a support lead, the lead approves, and `keel\n"
    "explain` tells what happened.\n"
    "\n"
    "  --ticket ID   the helpdesk ticket (default T-1001)\n"
    "  --keep        keep the temporary folder (its path is printed)\n"
    "  --no-color    plain output\n"
    "\n"
    "Exit codes: 0 the run succeeded, 1 it did not, 6 a part could not start.\n";

static bool color = true;

static void say(const char *fmt, ...) KEEL_PRINTF(1, 2);
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf(color ? "\n\033[1m== " : "\n== ");
    vprintf(fmt, ap);
    printf(color ? "\033[0m\n" : "\n");
    va_end(ap);
    fflush(stdout);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int write_file(const char *dir, const char *name, const char *text, struct keel_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return keel_fail(err, KEEL_EIO, "cannot write %s: %s", path, strerror(errno));
    fputs(text, f);
    return fclose(f) == 0 ? 0 : keel_fail(err, KEEL_EIO, "cannot write %s", path);
}

/* The folder of the running binary, where the build puts the tools. */
static int exe_dir(char *out, size_t cap)
{
    char p[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", p, sizeof p - 1);
    if (n <= 0) return -1;
    p[n] = '\0';
    snprintf(out, cap, "%s", dirname(p));
    return 0;
}

/* Starts keel-mock-model and reads its "listening on URL" line. */
static pid_t start_mock(const char *bin, const char *home, char *url, size_t cap)
{
    int fd[2];
    if (pipe(fd) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        char script[PATH_MAX], log[PATH_MAX];
        snprintf(script, sizeof script, "%s/mock-model.json", home);
        snprintf(log, sizeof log, "%s/model-requests.jsonl", home);
        execl(bin, bin, "--script", script, "--log", log, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    char line[512] = "";
    bool ok = f && fgets(line, sizeof line, f) && strstr(line, "listening on ");
    if (f) fclose(f);
    if (!ok) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        return -1;
    }
    snprintf(url, cap, "%s", strstr(line, "listening on ") + 13);
    url[strcspn(url, "\r\n")] = '\0';
    return pid;
}

static void hex(char *out, size_t bytes)
{
    unsigned char b[32];
    keel_random(b, bytes);
    for (size_t i = 0; i < bytes; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static int write_config(const char *home, const char *bin, const char *mock_url,
                        struct keel_err *err)
{
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "# Written by `keel demo`.\nworkflows: workflows\npolicies: policies\n"
                   "tools:\n");
    static const char *const servers[] = {"helpdesk", "crm", "tracker"};
    for (size_t i = 0; i < 3; i++)
        buf_printf(&b, "  %s: {command: %s/tool_%s, args: [--db, %s/%s.db], idempotent: true}\n",
                   servers[i], bin, servers[i], home, servers[i]);
    buf_printf(&b,
               "agents:\n"
               "  support/triage:\n"
               "    description: Reads tickets, looks up customers, files issues.\n"
               "    instructions: You are the triage agent of a software company's support "
               "team. Classify tickets by severity and decide whether engineering must look at "
               "them.\n"
               "  support/drafter:\n"
               "    description: Drafts customer replies; may not file issues.\n"
               "    instructions: You are the drafting agent of a software company's support "
               "team. Write short, friendly, accurate replies to customers.\n"
               "humans:\n"
               "  lead: {groups: [support-leads], token_env: KEEL_DEMO_LEAD_TOKEN}\n"
               "models:\n"
               "  providers:\n"
               "    mock: {kind: openai, base_url: %s/v1, api_key: {env: KEEL_DEMO_MODEL_KEY}}\n"
               "  models:\n"
               "    small: {provider: mock, model: small-1, context: 32000,\n"
               "            price: {input: 0.15, output: 0.60}}\n"
               "    large: {provider: mock, model: large-1, context: 128000,\n"
               "            price: {input: 2.50, output: 10.00}}\n"
               "  routes:\n"
               "    default:\n"
               "      rules: [{tag: triage, model: small}]\n"
               "      model: large\n"
               "      fallback: [small]\n",
               mock_url);
    int rc = write_file(home, "keel.yaml", b.data, err);
    buf_cleanup(&b);
    return rc;
}

static void print_explain(struct engine *e, const char *run)
{
    struct arena a;
    arena_init(&a);
    struct json_value *rep = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    if (engine_run_explain(e, run, 0, 0, &a, &rep, &err) == 0) {
        struct buf b;
        buf_init(&b);
        obs_explain_text(rep, &b, color);
        fwrite(b.data ? b.data : "", 1, b.len, stdout);
        buf_cleanup(&b);
    } else {
        printf("(explain failed: %s)\n", err.msg);
    }
    arena_cleanup(&a);
}

static enum engine_run_status wait_run(struct engine *e, const char *run, bool final)
{
    enum engine_run_status st = RUN_RUNNING;
    struct keel_err err;
    for (int i = 0; i < 120; i++) {
        if (engine_run_wait(e, run, 1000, final, &st, &err)) return RUN_FAILED;
        if (st != RUN_RUNNING && (!final || st != RUN_WAITING)) break;
    }
    return st;
}

static void show_approvals(struct engine *e, const struct identity *lead, char *id, size_t cap)
{
    struct arena a;
    arena_init(&a);
    struct json_value *list = NULL;
    struct keel_err err;
    id[0] = '\0';
    if (engine_approval_list(e, true, lead, &a, &list, &err) == 0 && json_is(list, JSON_ARRAY)) {
        for (uint32_t i = 0; i < list->len; i++) {
            const struct json_value *ap = list->u.items[i];
            const struct json_value *rq = json_get(ap, "request");
            printf("  %s  group %s  step %s\n  %s\n", json_get_str(ap, "id", ""),
                   json_get_str(ap, "group", ""), json_get_str(ap, "step", ""),
                   json_get_str(rq, "message", json_get_str(ap, "message", "")));
            snprintf(id, cap, "%s", json_get_str(ap, "id", ""));
        }
    }
    arena_cleanup(&a);
}

static int run(int argc, char **argv)
{
    extern const struct cli_command cmd_demo;
    const char *ticket = "T-1001";
    bool keep = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--keep")) {
            keep = true;
        } else if (!strcmp(argv[i], "--no-color")) {
            color = false;
        } else if (!strcmp(argv[i], "--ticket") && i + 1 < argc) {
            ticket = argv[++i];
        } else {
            return cli_usage_error(&cmd_demo, "unknown argument '%s'", argv[i]);
        }
    }
    if (!isatty(1)) color = false;
    if (strlen(ticket) > 32 || strspn(ticket, "T-0123456789") != strlen(ticket))
        return cli_usage_error(&cmd_demo, "--ticket must look like T-1001");

    char bin[PATH_MAX], mockbin[PATH_MAX + 32];
    if (exe_dir(bin, sizeof bin) != 0) {
        fprintf(stderr, "keel demo: cannot find the folder of the keel binary\n");
        return CLI_IO;
    }
    static const char *const needed[] = {"tool_helpdesk", "tool_crm", "tool_tracker",
                                         "keel-mock-model"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(needed); i++) {
        char p[PATH_MAX + 64];
        snprintf(p, sizeof p, "%s/%s", bin, needed[i]);
        if (access(p, X_OK) != 0) {
            fprintf(stderr,
                    "keel demo: %s is missing; the demo needs the example tool servers and the "
                    "mock model server built next to keel (scripts/build does that)\n",
                    p);
            return CLI_IO;
        }
    }
    snprintf(mockbin, sizeof mockbin, "%s/keel-mock-model", bin);

    /* A fresh folder under $TMPDIR (else /tmp), removed at the end unless
     * --keep. */
    const char *tmp = getenv("TMPDIR");
    char home[PATH_MAX];
    snprintf(home, sizeof home, "%s/keel-demo.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(home)) {
        fprintf(stderr, "keel demo: cannot create a temporary folder: %s\n", strerror(errno));
        return CLI_IO;
    }
    struct keel_err err;
    keel_err_clear(&err);
    char dir[PATH_MAX];
    int rc = 0;
    snprintf(dir, sizeof dir, "%s/workflows", home);
    if (mkdir(dir, 0700) != 0) rc = keel_fail(&err, KEEL_EIO, "cannot create %s", dir);
    if (!rc) rc = write_file(dir, "support-triage.yaml", demo_workflow_yaml, &err);
    snprintf(dir, sizeof dir, "%s/policies", home);
    if (!rc && mkdir(dir, 0700) != 0) rc = keel_fail(&err, KEEL_EIO, "cannot create %s", dir);
    if (!rc) rc = write_file(dir, "support.cedar", demo_policies_cedar, &err);
    if (!rc) rc = write_file(home, "mock-model.json", demo_model_script, &err);

    char mock_url[256] = "", lead_token[65], model_key[65];
    pid_t mock = -1;
    if (!rc) {
        mock = start_mock(mockbin, home, mock_url, sizeof mock_url);
        if (mock < 0) rc = keel_fail(&err, KEEL_EIO, "the mock model server did not start");
    }
    hex(lead_token, 32);
    hex(model_key, 16);
    setenv("KEEL_DEMO_LEAD_TOKEN", lead_token, 1);
    setenv("KEEL_DEMO_MODEL_KEY", model_key, 1);
    if (!rc) rc = write_config(home, bin, mock_url, &err);

    char config[PATH_MAX], data[PATH_MAX];
    snprintf(config, sizeof config, "%s/keel.yaml", home);
    snprintf(data, sizeof data, "%s/data", home);
    struct engine_opts opts = {.data_dir = data, .config_path = config, .workers = 2};
    struct engine *e = NULL;
    char run_id[64] = "";
    enum engine_run_status st = RUN_FAILED;
    if (!rc) {
        say("Keel home %s: the support-triage workflow, two agents, Cedar policies", home);
        printf("  model: mock OpenAI-compatible server at %s (triage -> small, the rest -> "
               "large)\n",
               mock_url);
        rc = engine_start(&opts, &e, &err);
    }
    if (!rc) {
        struct arena a;
        arena_init(&a);
        struct json_value *input = json_object(&a);
        json_object_setc(&a, input, "ticket_id", json_cstr(&a, ticket));
        const struct identity *admin =
            identity_find(engine_identities(e), IDENTITY_ADMIN, "admin");
        say("Starting a run for ticket %s", ticket);
        rc = engine_run_start(e, "support-triage", input, admin, run_id, sizeof run_id, &err);
        arena_cleanup(&a);
    }
    if (!rc) {
        printf("  run %s\n", run_id);
        st = wait_run(e, run_id, false);
        printf("  status: %s\n", engine_status_name(st));
        say("The run waits for a support lead (no thread is held); the pending approval:");
        const struct identity *lead =
            identity_find(engine_identities(e), IDENTITY_HUMAN, "lead");
        char aid[64];
        show_approvals(e, lead, aid, sizeof aid);

        say("Stopping the engine while the run waits, and starting it again");
        engine_stop(e);
        e = NULL;
        rc = engine_start(&opts, &e, &err);
        if (!rc) {
            printf("  resumed from the journal; status: %s\n",
                   engine_status_name(wait_run(e, run_id, false)));
            lead = identity_find(engine_identities(e), IDENTITY_HUMAN, "lead");
            say("The support lead approves %s", aid);
            rc = engine_approval_decide(e, aid, lead, true, "Reply looks right", &err);
        }
        if (!rc) {
            st = wait_run(e, run_id, true);
            say("Run %s %s; `keel explain %s`:", run_id, engine_status_name(st), run_id);
            print_explain(e, run_id);
        }
    }
    if (rc) fprintf(stderr, "keel demo: %s\n", err.msg);
    engine_stop(e);
    if (mock > 0) {
        kill(mock, SIGTERM);
        waitpid(mock, NULL, 0);
    }
    if (keep) {
        printf("\nKept %s (data/keel.db holds the journal; model-requests.jsonl what the model "
               "was asked).\n",
               home);
    } else {
        if (nftw(home, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            fprintf(stderr, "keel demo: could not remove %s\n", home);
    }
    if (rc) return cli_exit_for(rc);
    return st == RUN_SUCCEEDED ? CLI_OK : CLI_NO;
}

const struct cli_command cmd_demo = {
    .name = "demo",
    .summary = "run the support-triage demo (agents, policy, approval, restart, explain)",
    .usage = usage,
    .run = run,
};
