/*
 * bench_engine.c — durable steps per second through the whole engine, not
 * just the journal: 1, 16 and 64 concurrent runs of a workflow of `set`
 * steps (no tool processes, so what is measured is Keel: fold, step
 * selection, templates, reducers, journal appends with fsync, status rows,
 * the worker pool), power-loss safe (synchronous=FULL).
 *
 * A "step" is one completed workflow step: state.updated and step.completed
 * (two journal events, one request: a set step journals no step.started).
 * A step's request is queued only once the run's previous step is durable,
 * so every step has a group commit of its own; the step itself is computed
 * while the previous one is in flight (docs/engine.md, "Pipelined
 * transitions").  bench/journal measures one durable append per step
 * through the journal alone.
 *
 * Peers are printed from the published figures quoted in issue #4 (they are
 * not installed here): Restate 1.7.12 4,457, DBOS 5.3 1,253, LangGraph JS
 * 1,833 steps/s with 64 runs.
 *
 * Usage: bench_engine [DATA_DIR] [--steps N] [--workers N] [--runs N] [--rounds N]
 * (--steps: steps per run, default 1000, so that starting and ending runs
 * weigh little; --runs N: only a pass of N concurrent runs, e.g. for
 * callgrind; --rounds: repeat each pass and print the median and range)
 * DATA_DIR defaults to bench-engine-data next to the binary (not /tmp,
 * which may be a tmpfs where fsync costs nothing).
 */
#include "engine/engine.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what, const struct keel_err *err)
{
    fprintf(stderr, "bench_engine: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    if (!f) die(p, NULL);
    fputs(text, f);
    fclose(f);
}

static double cpu_s(void)
{
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + (double)u.ru_stime.tv_sec +
           ((double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_usec) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs `runs` concurrent runs of the workflow to the end; returns steps/s. */
static double pass(struct engine *e, int runs, int steps, double *cpu_us_per_step)
{
    const struct identity *admin = identity_find(engine_identities(e), IDENTITY_ADMIN, "admin");
    char (*ids)[64] = calloc((size_t)runs, sizeof *ids);
    struct arena a;
    arena_init(&a);
    struct json_value *in = json_object(&a);
    struct keel_err err;
    double c0 = cpu_s();
    int64_t t0 = keel_mono_ns();
    for (int i = 0; i < runs; i++)
        if (engine_run_start(e, "steps", in, admin, ids[i], 64, &err)) die("run start", &err);
    for (int i = 0; i < runs; i++) {
        enum engine_run_status st = RUN_RUNNING;
        while (st == RUN_RUNNING || st == RUN_WAITING)
            if (engine_run_wait(e, ids[i], 60000, true, &st, &err)) die("wait", &err);
        if (st != RUN_SUCCEEDED) die("a run did not succeed", NULL);
    }
    double secs = (double)(keel_mono_ns() - t0) / 1e9;
    *cpu_us_per_step = (cpu_s() - c0) * 1e6 / ((double)runs * steps);
    arena_cleanup(&a);
    free(ids);
    return (double)runs * steps / secs;
}

int main(int argc, char **argv)
{
    int steps = 1000, workers = 4, only = 0, rounds = 1;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--workers") && i + 1 < argc) workers = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) only = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (argv[i][0] != '-') dir = argv[i];
        else {
            fprintf(stderr, "usage: bench_engine [DATA_DIR] [--steps N] [--workers N] "
                            "[--runs N] [--rounds N]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 100) rounds = 1;
    if (steps < 1 || steps > 10000) steps = 1000;
    char self[4096], home[4200];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) die("readlink", NULL);
    self[n] = '\0';
    snprintf(home, sizeof home, "%s/bench-engine-data", dir ? dir : dirname(self));
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    if (system(cmd) != 0) die("clean the data folder", NULL);
    mkdir(home, 0700);
    char wfdir[4300];
    snprintf(wfdir, sizeof wfdir, "%s/workflows", home);
    mkdir(wfdir, 0700);
    struct buf wf;
    buf_init(&wf);
    buf_puts(&wf, "name: steps\ninput: {type: object}\nstate:\n  n: {reducer: add, initial: 0}\n"
                  "steps:\n");
    for (int i = 0; i < steps; i++) buf_printf(&wf, "  - id: s%d\n    set: {n: 1}\n", i);
    write_file(wfdir, "steps.yaml", wf.data);
    buf_cleanup(&wf);
    write_file(home, "keel.yaml", "workflows: workflows\ndata_dir: data\n");

    char cfg[4300];
    snprintf(cfg, sizeof cfg, "%s/keel.yaml", home);
    struct engine_opts o = {.config_path = cfg, .workers = workers};
    struct engine *e = NULL;
    struct keel_err err;
    if (engine_start(&o, &e, &err)) die("engine start", &err);
    printf("engine throughput: runs of %d set steps, %d workers, synchronous=FULL, data in %s\n",
           steps, workers, home);
    printf("a step = state.updated + step.completed (one request), queued once the run's "
           "previous step is durable (one group commit per step)\n");
    static const int conc[] = {1, 16, 64};
    double cpu;
    pass(e, 4, steps, &cpu); /* warm-up */
    for (size_t i = 0; i < sizeof conc / sizeof conc[0]; i++) {
        int runs = only ? only : conc[i];
        double best = 0, worst = 0, sum_cpu = 0, r[100];
        struct store_stats s0, s1;
        struct engine_stats e0, e1;
        engine_store_stats(e, &s0);
        engine_get_stats(e, &e0);
        for (int k = 0; k < rounds; k++) {
            r[k] = pass(e, runs, steps, &cpu);
            sum_cpu += cpu;
        }
        qsort(r, (size_t)rounds, sizeof r[0], cmp_double);
        best = r[rounds - 1];
        worst = r[0];
        printf("  %2d concurrent runs: %8.0f steps/s median", runs, r[rounds / 2]);
        if (rounds > 1) printf(" (%0.f..%0.f over %d rounds)", worst, best, rounds);
        printf("   (CPU %.1f us/step)\n", sum_cpu / rounds);
        engine_store_stats(e, &s1);
        uint64_t g = s1.group_commits - s0.group_commits;
        if (g)
            printf("      %.1f requests and %.1f events per commit, commit %.3f ms (COMMIT "
                   "%.3f ms)\n",
                   (double)(s1.appends - s0.appends) / (double)g,
                   (double)(s1.events - s0.events) / (double)g,
                   (double)(s1.commit_ns - s0.commit_ns) / 1e6 / (double)g,
                   (double)(s1.sync_ns - s0.sync_ns) / 1e6 / (double)g);
        engine_get_stats(e, &e1);
        printf("      %.0f%% of the requests computed while the run's previous one was in flight "
               "(parked)\n",
               s1.appends > s0.appends ? 100.0 * (double)(e1.parked - e0.parked) /
                                             (double)(s1.appends - s0.appends)
                                       : 0.0);
        if (only) break;
    }
    engine_stop(e);
    printf("\npeers (published figures for this kind of machine; not installed here, not run):\n"
           "  64 runs: Restate 1.7.12 4457, DBOS 5.3 on PostgreSQL 1253, LangGraph JS + SQLite "
           "1833 steps/s\n");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    if (system(cmd) != 0) fprintf(stderr, "bench_engine: could not remove %s\n", home);
    return 0;
}
