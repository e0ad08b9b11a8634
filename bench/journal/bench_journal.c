/*
 * bench_journal.c — what a durable step costs in Keel, next to what the disk
 * itself costs, measured in the same run on the same directory.
 *
 *   1. raw fdatasync: write 4 KiB into a preallocated file, then fdatasync;
 *      p50/p99 over many rounds (the floor any power-loss-safe commit pays).
 *   2. one run: durable journal appends of one run through
 *      journal_writer_append (the engine's path), each preceded by one raw
 *      round so that both see the same disk; p50/p99 of each and the ratio;
 *      then the same appends back to back.
 *   3. throughput with 1, 16 and 64 concurrent runs: one thread per run, each
 *      appending durably, for a fixed time; steps/s over all runs, how many
 *      appends each group commit carried, and the CPU spent per step.
 *   4. 64 runs on a small worker pool instead of a thread each (a run's next
 *      step is queued when its previous one is durable); then the same with
 *      each run's next step built while its last one is in flight and queued
 *      by the last one's completion callback (as the engine does).
 *
 * What a "step" is here: ONE durable journal event, step.completed with a
 * small result payload (~120 bytes canonical), appended and acknowledged only
 * once it is on stable storage.  That is what a step that produces a result
 * must make durable before its effects are visible.  The benchmark also reports
 * the stricter two-event form (step.started, then step.completed, each
 * durable before the next) at 64 runs.
 *
 * Every figure is in power-loss-safe mode (synchronous=FULL: one fsync of
 * the WAL per commit), except the lines marked "diagnosis only".  Peers' figures are the published ones quoted in the
 * task; the peers are not installed here, so they are printed, not run.
 *
 * Usage: bench_journal [DATA_DIR] [--seconds N] [--samples N] [--rounds N]
 *        (--rounds N: each 64-run pass N times, printing the median round
 *        and the range; the disk's latency drifts, so one pass is one sample)
 *        (diagnosis: --one-only runs just the one-run latency, interleaved
 *        and back to back; --ceiling-only just the non-durable 64-run pass;
 *        --pass threads|pool|prepared|ceiling just one 64-run pass (durable, except
 *        ceiling), for profiling, with --steps N for a fixed amount of work
 *        instead of a time (threads and ceiling); --appends N makes N
 *        appends of one run without fsync and prints nothing else, for
 *        counting instructions per append under callgrind)
 * DATA_DIR defaults to bench-journal-data next to the binary (the build
 * folder), because /tmp may be a tmpfs where fsync costs nothing.
 */
#include "journal/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/magic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct(int64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_i64);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1e6; /* ns -> ms */
}

static void die(const char *what, const struct keel_err *err)
{
    fprintf(stderr, "bench_journal: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(1);
}

/* ---- 1. raw fdatasync -------------------------------------------------- */

/* The probe: 4 KiB written into a preallocated file, then fdatasync.  The
 * file is preallocated and synced once, so each round is a data sync of an
 * already-allocated block (no file-size metadata to write). */
struct probe {
    int fd;
    int round;
    char path[1200];
    char block[4096];
};

enum { PROBE_BLOCKS = 256 };

static void probe_open(struct probe *p, const char *dir)
{
    snprintf(p->path, sizeof p->path, "%s/fdatasync.probe", dir);
    p->fd = open(p->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (p->fd < 0) die(p->path, NULL);
    memset(p->block, 'k', sizeof p->block);
    p->round = 0;
    for (int i = 0; i < PROBE_BLOCKS; i++)
        if (pwrite(p->fd, p->block, sizeof p->block, (off_t)i * 4096) != 4096) die("pwrite", NULL);
    if (fsync(p->fd) != 0) die("fsync", NULL);
}

static int64_t probe_once(struct probe *p)
{
    p->block[0] = (char)p->round;
    int64_t t0 = keel_mono_ns();
    if (pwrite(p->fd, p->block, sizeof p->block, (off_t)(p->round++ % PROBE_BLOCKS) * 4096) !=
        4096)
        die("pwrite", NULL);
    if (fdatasync(p->fd) != 0) die("fdatasync", NULL);
    return keel_mono_ns() - t0;
}

static void probe_close(struct probe *p)
{
    close(p->fd);
    unlink(p->path);
}

static void raw_fdatasync(const char *dir, int samples, double *p50, double *p99)
{
    struct probe pr;
    probe_open(&pr, dir);
    int64_t *t = malloc((size_t)samples * sizeof *t);
    for (int i = 0; i < samples; i++) t[i] = probe_once(&pr);
    *p50 = pct(t, (size_t)samples, 0.50);
    *p99 = pct(t, (size_t)samples, 0.99);
    free(t);
    probe_close(&pr);
}

/* ---- helpers ----------------------------------------------------------- */

static struct json_value *step_payload(struct arena *a, const char *step, int64_t attempt)
{
    struct json_value *p = json_object(a);
    json_object_setc(a, p, "step", json_cstr(a, step));
    json_object_setc(a, p, "attempt", json_int(a, attempt));
    struct json_value *res = json_object(a);
    json_object_setc(a, res, "ticket_id", json_cstr(a, "T-4711"));
    json_object_setc(a, res, "severity", json_cstr(a, "high"));
    json_object_setc(a, res, "needs_engineering", json_bool(a, true));
    json_object_setc(a, res, "tokens", json_int(a, 812));
    json_object_setc(a, p, "result", res);
    return p;
}

static bool g_normal; /* --cpu-ceiling: synchronous=NORMAL, for diagnosis only */
static int64_t g_steps; /* --steps N: each run makes N/runs steps instead of running for a time */

static void remove_db(const char *dir, const char *name)
{
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[1300];
        snprintf(p, sizeof p, "%s/%s%s", dir, name, sfx[i]);
        unlink(p);
    }
}

static struct store *open_store(const char *dir, const char *name)
{
    char uri[1200];
    snprintf(uri, sizeof uri, "sqlite:%s/%s", dir, name);
    remove_db(dir, name);
    struct store *s;
    struct keel_err err;
    struct store_opts opts = {.durability = g_normal ? STORE_DURABILITY_NORMAL
                                                     : STORE_DURABILITY_FULL};
    if (store_open(uri, &opts, &s, &err) != 0) die("store_open", &err);
    struct store_stats st;
    store_get_stats(s, &st);
    if (!st.durable_commits && !g_normal) {
        fprintf(stderr, "bench_journal: store is not in power-loss-safe mode\n");
        exit(1);
    }
    return s;
}

/* ---- 2. one run -------------------------------------------------------- */

/* Durable appends of one run, back to back.  With interleave, each append
 * is preceded by one probe round, so the two see the same disk: on a shared
 * machine the disk's latency changes from one second to the next, and
 * measuring them one after the other would compare different disks. */
struct one_result {
    double p50, p99, mean;
    double raw_p50, raw_p99; /* interleaved probe rounds, if asked */
};

static struct one_result one_run(const char *dir, int samples, bool interleave)
{
    struct store *s = open_store(dir, "one.db");
    struct journal_writer *w;
    struct keel_err err;
    if (journal_writer_open(s, "run_one", &w, &err)) die("writer", &err);
    struct arena a;
    arena_init(&a);
    struct probe pr;
    if (interleave) probe_open(&pr, dir);
    int64_t *t = malloc((size_t)samples * sizeof *t);
    int64_t *raw = malloc((size_t)samples * sizeof *raw);
    int warm = samples / 10;
    int64_t sum = 0;
    for (int i = 0; i < samples + warm; i++) {
        int64_t r = interleave ? probe_once(&pr) : 0;
        arena_reset(&a);
        struct json_value *p = step_payload(&a, "triage", i);
        int64_t t0 = keel_mono_ns();
        if (journal_writer_append(w, "step.completed", "agent:support/triage", p, 0, NULL, &err))
            die("append", &err);
        int64_t dt = keel_mono_ns() - t0;
        if (i >= warm) {
            t[i - warm] = dt;
            raw[i - warm] = r;
            sum += dt;
        }
    }
    struct one_result out = {.mean = (double)sum / samples / 1e6};
    out.p50 = pct(t, (size_t)samples, 0.50);
    out.p99 = pct(t, (size_t)samples, 0.99);
    if (interleave) {
        out.raw_p50 = pct(raw, (size_t)samples, 0.50);
        out.raw_p99 = pct(raw, (size_t)samples, 0.99);
        probe_close(&pr);
    }
    free(t);
    free(raw);
    arena_cleanup(&a);
    journal_writer_free(w);
    struct journal_verify_report rep;
    if (journal_verify(s, "run_one", &rep, &err) || !rep.ok) die("verify", &err);
    store_close(s);
    remove_db(dir, "one.db");
    return out;
}

/* ---- 3. concurrent runs ------------------------------------------------ */

struct runner {
    struct store *s;
    int index;
    int events_per_step; /* 1: step.completed; 2: step.started + step.completed */
    volatile int *stop;
    int64_t budget; /* 0: until stop */
    int64_t steps;
    int failed;
};

static void *runner_main(void *arg)
{
    struct runner *r = arg;
    char id[32];
    snprintf(id, sizeof id, "run_%03d", r->index);
    struct journal_writer *w;
    struct keel_err err;
    if (journal_writer_open(r->s, id, &w, &err)) {
        r->failed = 1;
        return NULL;
    }
    struct arena a;
    arena_init(&a);
    while (!__atomic_load_n(r->stop, __ATOMIC_RELAXED) && (!r->budget || r->steps < r->budget)) {
        arena_reset(&a);
        if (r->events_per_step == 2) {
            struct json_value *sp = json_object(&a);
            json_object_setc(&a, sp, "step", json_cstr(&a, "triage"));
            json_object_setc(&a, sp, "attempt", json_int(&a, r->steps));
            if (journal_writer_append(w, "step.started", "agent:support/triage", sp, 0, NULL,
                                      &err)) {
                r->failed = 1;
                break;
            }
        }
        struct json_value *p = step_payload(&a, "triage", r->steps);
        if (journal_writer_append(w, "step.completed", "agent:support/triage", p, 0, NULL, &err)) {
            r->failed = 1;
            break;
        }
        r->steps++;
    }
    arena_cleanup(&a);
    journal_writer_free(w);
    return NULL;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

struct tput {
    double cpu_us_per_step; /* user+sys CPU of the whole process per step */
    double steps_per_s;
    double events_per_commit;
    double commit_ms; /* mean time of one group commit */
    double sync_ms;   /* ... of which COMMIT (WAL write + fsync) */
    int rounds;       /* rounds measured (median_of); 0 or 1: one */
    double lo, hi;    /* the lowest and highest steps/s of those rounds */
};

static int g_rounds = 1; /* --rounds N: each 64-run pass N times, the median printed */

/* The end of a pass: spot-checks that what was written is a valid chain,
 * closes and removes the store, and turns the counts into figures. */
static struct tput pass_result(struct store *s, const char *dir, const char *name, int64_t steps,
                               double elapsed, double cpu)
{
    struct store_stats st;
    store_get_stats(s, &st);
    struct keel_err err;
    struct journal_verify_report rep;
    if (journal_verify(s, "run_000", &rep, &err) || !rep.ok) die("verify", &err);
    store_close(s);
    remove_db(dir, name);
    struct tput out = {
        .cpu_us_per_step = steps ? cpu * 1e6 / (double)steps : 0,
        .steps_per_s = (double)steps / elapsed,
        .events_per_commit = st.group_commits ? (double)st.events / (double)st.group_commits : 0,
        .commit_ms = st.group_commits ? (double)st.commit_ns / (double)st.group_commits / 1e6 : 0,
        .sync_ms = st.group_commits ? (double)st.sync_ns / (double)st.group_commits / 1e6 : 0,
    };
    return out;
}

static struct tput throughput(const char *dir, int runs, int events_per_step, double seconds)
{
    char name[64];
    snprintf(name, sizeof name, "tput-%d-%d.db", runs, events_per_step);
    struct store *s = open_store(dir, name);
    volatile int stop = 0;
    struct runner *rs = calloc((size_t)runs, sizeof *rs);
    pthread_t *th = calloc((size_t)runs, sizeof *th);
    double cpu0 = cpu_seconds();
    int64_t t0 = keel_mono_ns();
    for (int i = 0; i < runs; i++) {
        rs[i] = (struct runner){.s = s, .index = i, .events_per_step = events_per_step,
                                .stop = &stop, .budget = g_steps ? (g_steps + runs - 1) / runs : 0};
        pthread_create(&th[i], NULL, runner_main, &rs[i]);
    }
    if (!g_steps) {
        struct timespec ts = {(time_t)seconds,
                              (long)((seconds - (double)(time_t)seconds) * 1e9)};
        nanosleep(&ts, NULL); /* the measurement window, not synchronisation */
        __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    }
    int64_t steps = 0;
    for (int i = 0; i < runs; i++) {
        pthread_join(th[i], NULL);
        if (rs[i].failed) {
            fprintf(stderr, "bench_journal: run %d failed\n", i);
            exit(1);
        }
        steps += rs[i].steps;
    }
    double elapsed = (double)(keel_mono_ns() - t0) / 1e9;
    double cpu = cpu_seconds() - cpu0;
    free(rs);
    free(th);
    return pass_result(s, dir, name, steps, elapsed, cpu);
}

/* ---- 4. many runs, no thread per run ----------------------------------- */

/* The same durable step, driven the way an engine with a small worker pool
 * would: a few worker threads (one per CPU beyond the store's committer, at
 * least one; measured best here, 1 to 4 differ little) serve all runs; when a run's step is durable its
 * completion callback puts the run back on the ready queue, and a worker
 * builds and queues its next step (journal_writer_append_async).  So 64 runs
 * need no 64 threads and no 64 context switches per commit.  Each run still
 * has exactly one step in flight and never starts a step before the
 * previous one is durable. */

static int workers_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN) - 1;
    return n < 1 ? 1 : n > 64 ? 64 : (int)n;
}

struct pool;
/* A run of the pool passes (the prepared pass uses the fields after
 * `failed` too). */
struct pool_run {
    struct journal_writer *w;
    struct arena a;
    int64_t steps; /* durable */
    struct pool *pool;
    int failed;
    int64_t built;
    struct journal_batch *parked; /* built, waiting for the step in flight */
    bool inflight;                /* a step of this run is with the store */
    bool held;                    /* a worker is building its next step   */
    bool finished;
};

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* workers: a run is ready, or stop */
    pthread_cond_t idle_cv; /* main: active dropped to 0 */
    struct pool_run **ready;
    size_t cap, head, count;
    int active; /* runs not yet finished */
    int stop;
};

static void run_finished(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->active--;
    pthread_cond_broadcast(&p->idle_cv);
    pthread_mutex_unlock(&p->mu);
}

static void async_done(void *ctx, int rc, const struct journal_appended *app,
                       const struct keel_err *err)
{
    struct pool_run *r = ctx;
    struct pool *p = r->pool;
    if (rc) r->failed = 1;
    else r->steps++;
    pthread_mutex_lock(&p->mu);
    if (rc || p->stop) {
        p->active--;
        pthread_cond_broadcast(&p->idle_cv);
    } else {
        p->ready[(p->head + p->count++) % p->cap] = r; /* at most once per run */
        pthread_cond_signal(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

static void *worker_main(void *arg)
{
    struct pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->count && !(p->stop && p->active == 0)) pthread_cond_wait(&p->cv, &p->mu);
        if (!p->count) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        struct pool_run *r = p->ready[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop) {
            run_finished(p);
            continue;
        }
        arena_reset(&r->a);
        struct json_value *pl = step_payload(&r->a, "triage", r->steps);
        struct keel_err err;
        if (journal_writer_append_async(r->w, "step.completed", "agent:support/triage", pl, 0,
                                        async_done, r, &err) != 0) {
            r->failed = 1;
            run_finished(p);
        }
    }
}

/* ---- 5. the pool, each run's next step prepared while the last is in flight -- */

/* The same rule as the pool above (a run's next step is handed to the store
 * only once its previous step is durable, so each step has its own group
 * commit), with the work moved off the path between two commits.  A worker
 * builds a run's next event (payload, canonical form, hash chained on the
 * previous event) while the previous one is in flight and parks it; the
 * previous one's completion callback, on the committer thread, queues it.
 * So when a commit ends, the next group is queued by the callbacks
 * themselves, and no worker has to wake up and build before the next
 * commit can start; the workers build the step after that during it. */

/* mu held.  A run finishes once, when stopping and nothing of it is in
 * flight or being built. */
static void prep_finish_locked(struct pool *p, struct pool_run *r)
{
    if (r->finished || r->inflight || r->held) return;
    if (r->parked) {
        journal_batch_discard(r->parked);
        r->parked = NULL;
    }
    r->finished = true;
    p->active--;
    pthread_cond_broadcast(&p->idle_cv);
}

static void prep_push_locked(struct pool *p, struct pool_run *r)
{
    r->held = true;
    p->ready[(p->head + p->count++) % p->cap] = r; /* at most once per run */
    pthread_cond_signal(&p->cv);
}

static void prep_done(void *ctx, int rc, const struct journal_appended *app,
                      const struct keel_err *err)
{
    (void)app;
    (void)err;
    struct pool_run *r = ctx;
    struct pool *p = r->pool;
    pthread_mutex_lock(&p->mu);
    r->inflight = false;
    if (rc) {
        r->failed = 1;
        p->stop = 1;
    } else {
        r->steps++;
    }
    struct journal_batch *next = NULL;
    if (p->stop) {
        prep_finish_locked(p, r);
    } else if (r->parked) {
        /* Its next step was built meanwhile: queue it now, and have the
         * one after it built while it is in flight. */
        next = r->parked;
        r->parked = NULL;
        r->inflight = true;
        prep_push_locked(p, r);
    }
    /* else a worker is building it and queues it itself */
    pthread_mutex_unlock(&p->mu);
    struct keel_err e;
    if (next && journal_batch_submit(next, prep_done, r, &e) != 0) {
        pthread_mutex_lock(&p->mu);
        r->inflight = false;
        r->failed = 1;
        p->stop = 1;
        prep_finish_locked(p, r);
        pthread_mutex_unlock(&p->mu);
    }
}

static void *prep_worker_main(void *arg)
{
    struct pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->count && p->active > 0) pthread_cond_wait(&p->cv, &p->mu);
        if (!p->count) break;
        struct pool_run *r = p->ready[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        for (;;) {
            if (p->stop) {
                r->held = false;
                prep_finish_locked(p, r);
                break;
            }
            pthread_mutex_unlock(&p->mu);
            arena_reset(&r->a);
            struct json_value *pl = step_payload(&r->a, "triage", r->built++);
            struct journal_batch *b = NULL;
            struct keel_err err;
            int rc = journal_batch_add(r->w, &b, "step.completed", "agent:support/triage", pl, 0,
                                       NULL, NULL, &err);
            pthread_mutex_lock(&p->mu);
            if (rc) {
                journal_batch_discard(b);
                r->failed = 1;
                p->stop = 1;
                continue;
            }
            if (r->inflight || p->stop) {
                r->parked = b; /* queued by the completion of the one in flight */
                r->held = false;
                if (p->stop) prep_finish_locked(p, r);
                break;
            }
            /* Nothing in flight (the first step, or the last one completed
             * while this was built): queue it, then build the next. */
            r->inflight = true;
            pthread_mutex_unlock(&p->mu);
            rc = journal_batch_submit(b, prep_done, r, &err);
            pthread_mutex_lock(&p->mu);
            if (rc) {
                r->inflight = false;
                r->failed = 1;
                p->stop = 1;
            }
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Runs `runs` runs on a pool of workers_count() threads running `worker`
 * for `seconds`, then stops them (prepared: each run finishes once nothing
 * of it is in flight or being built) and measures. */
static struct tput pool_pass(const char *dir, const char *name, int runs, double seconds,
                             void *(*worker)(void *), bool prepared)
{
    struct store *s = open_store(dir, name);
    struct pool p = {.cap = (size_t)runs, .active = runs};
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    pthread_cond_init(&p.idle_cv, NULL);
    p.ready = calloc((size_t)runs, sizeof *p.ready);
    struct pool_run *rs = calloc((size_t)runs, sizeof *rs);
    struct keel_err err;
    for (int i = 0; i < runs; i++) {
        char id[32];
        snprintf(id, sizeof id, "run_%03d", i);
        if (journal_writer_open(s, id, &rs[i].w, &err)) die("writer", &err);
        arena_init(&rs[i].a);
        rs[i].pool = &p;
        rs[i].held = true;
        p.ready[p.count++] = &rs[i];
    }
    pthread_t th[64];
    int workers = workers_count();
    double cpu0 = cpu_seconds();
    int64_t t0 = keel_mono_ns();
    for (int i = 0; i < workers; i++) pthread_create(&th[i], NULL, worker, &p);
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL); /* the measurement window, not synchronisation */
    pthread_mutex_lock(&p.mu);
    p.stop = 1;
    if (prepared)
        for (int i = 0; i < runs; i++) prep_finish_locked(&p, &rs[i]);
    else
        pthread_cond_broadcast(&p.cv);
    while (p.active > 0) pthread_cond_wait(&p.idle_cv, &p.mu);
    pthread_cond_broadcast(&p.cv); /* let the workers see active == 0 */
    pthread_mutex_unlock(&p.mu);
    for (int i = 0; i < workers; i++) pthread_join(th[i], NULL);
    double elapsed = (double)(keel_mono_ns() - t0) / 1e9;
    double cpu = cpu_seconds() - cpu0;
    int64_t steps = 0;
    for (int i = 0; i < runs; i++) {
        if (rs[i].failed) {
            fprintf(stderr, "bench_journal: %s run %d failed\n", name, i);
            exit(1);
        }
        steps += rs[i].steps;
        journal_writer_free(rs[i].w);
        arena_cleanup(&rs[i].a);
    }
    free(rs);
    free(p.ready);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv);
    pthread_cond_destroy(&p.idle_cv);
    return pass_result(s, dir, name, steps, elapsed, cpu);
}

static struct tput throughput_async(const char *dir, int runs, double seconds)
{
    return pool_pass(dir, "tput-async.db", runs, seconds, worker_main, false);
}

static struct tput throughput_prepared(const char *dir, int runs, double seconds)
{
    return pool_pass(dir, "tput-prep.db", runs, seconds, prep_worker_main, true);
}

/* ---- rounds ------------------------------------------------------------ */

enum pass_kind { PASS_THREADS, PASS_POOL, PASS_PREPARED };

static struct tput run_pass(enum pass_kind k, const char *dir, double seconds)
{
    return k == PASS_POOL       ? throughput_async(dir, 64, seconds)
           : k == PASS_PREPARED ? throughput_prepared(dir, 64, seconds)
                                : throughput(dir, 64, 1, seconds);
}

static int cmp_tput(const void *a, const void *b)
{
    double x = ((const struct tput *)a)->steps_per_s, y = ((const struct tput *)b)->steps_per_s;
    return (x > y) - (x < y);
}

/* A 64-run pass g_rounds times: the round with the median throughput, and
 * the range.  The disk's commit latency drifts over seconds, so one pass is
 * one sample of it. */
static struct tput median_of(enum pass_kind k, const char *dir, double seconds)
{
    struct tput r[64];
    int n = g_rounds < 1 ? 1 : g_rounds > 64 ? 64 : g_rounds;
    for (int i = 0; i < n; i++) r[i] = run_pass(k, dir, seconds);
    qsort(r, (size_t)n, sizeof r[0], cmp_tput);
    struct tput out = r[n / 2];
    out.rounds = n;
    out.lo = r[0].steps_per_s;
    out.hi = r[n - 1].steps_per_s;
    return out;
}

/* " (median of N rounds: lo..hi)" when more than one round was measured. */
static const char *range_text(const struct tput *t, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (t->rounds > 1)
        snprintf(buf, cap, " (median of %d rounds: %.0f..%.0f)", t->rounds, t->lo, t->hi);
    return buf;
}

/* ---- main -------------------------------------------------------------- */

static const char *fs_kind(const char *dir)
{
    struct statfs sf;
    if (statfs(dir, &sf) != 0) return "unknown";
    if (sf.f_type == TMPFS_MAGIC) return "tmpfs (fsync is free here: figures are meaningless)";
    if (sf.f_type == EXT4_SUPER_MAGIC) return "ext4";
    if (sf.f_type == XFS_SUPER_MAGIC) return "xfs";
    if (sf.f_type == BTRFS_SUPER_MAGIC) return "btrfs";
    if (sf.f_type == OVERLAYFS_SUPER_MAGIC) return "overlayfs";
    return "other";
}

int main(int argc, char **argv)
{
    char dir[1024] = "";
    double seconds = 3.0;
    int samples = 2000;
    bool ceiling_only = false; /* profiling aid: only the non-durable 64-run pass */
    bool one_only = false;     /* diagnosis: one run, with and without interleaving */
    const char *pass = NULL;   /* profiling aid: one 64-run pass */
    int appends = 0;           /* profiling aid: N non-durable appends of one run */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--samples") == 0 && i + 1 < argc) samples = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ceiling-only") == 0) ceiling_only = true;
        else if (strcmp(argv[i], "--one-only") == 0) one_only = true;
        else if (strcmp(argv[i], "--pass") == 0 && i + 1 < argc) pass = argv[++i];
        else if (strcmp(argv[i], "--appends") == 0 && i + 1 < argc) appends = atoi(argv[++i]);
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) g_steps = atoll(argv[++i]);
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) g_rounds = atoi(argv[++i]);
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_journal [DATA_DIR] [--seconds N] [--samples N] [--rounds N] "
                            "[--one-only | --ceiling-only | --pass threads|pool|prepared|ceiling "
                            "[--steps N] | --appends N]\n");
            return 2;
        } else snprintf(dir, sizeof dir, "%s", argv[i]);
    }
    if (seconds <= 0 || samples < 10) {
        fprintf(stderr, "bench_journal: --seconds must be > 0 and --samples >= 10\n");
        return 2;
    }
    if (!dir[0]) {
        char exe[1024];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0) die("readlink /proc/self/exe", NULL);
        exe[n] = '\0';
        snprintf(dir, sizeof dir, "%s/bench-journal-data", dirname(exe));
    }
    struct keel_err err;
    if (keel_mkdir_p(dir, 0700, &err)) die("mkdir", &err);

    if (one_only) {
        struct one_result a = one_run(dir, samples, true), b = one_run(dir, samples, false);
        printf("interleaved: raw p50 %.3f, append p50 %.3f; alone: append p50 %.3f mean %.3f\n",
               a.raw_p50, a.p50, b.p50, b.mean);
        return 0;
    }
    if (appends > 0) {
        g_normal = true;
        struct one_result r = one_run(dir, appends < 10 ? 10 : appends, false);
        printf("%d appends without fsync: p50 %.3f ms\n", appends, r.p50);
        return 0;
    }
    if (pass && strcmp(pass, "ceiling") == 0) ceiling_only = true;
    else if (pass && (strcmp(pass, "threads") == 0 || strcmp(pass, "pool") == 0 ||
                      strcmp(pass, "prepared") == 0)) {
        bool pool = strcmp(pass, "pool") == 0, prep = strcmp(pass, "prepared") == 0;
        struct tput t = pool   ? throughput_async(dir, 64, seconds)
                        : prep ? throughput_prepared(dir, 64, seconds)
                               : throughput(dir, 64, 1, seconds);
        printf("durable, 64 runs (%s): %.0f steps/s, %.1f per commit, commit %.3f ms (COMMIT "
               "%.3f ms), CPU %.1f us/step\n",
               pool ? "worker pool" : prep ? "worker pool, next step prepared" : "thread per run",
               t.steps_per_s, t.events_per_commit,
               t.commit_ms, t.sync_ms, t.cpu_us_per_step);
        return 0;
    } else if (pass) {
        fprintf(stderr, "bench_journal: --pass takes threads, pool, prepared or ceiling\n");
        return 2;
    }
    if (ceiling_only) {
        g_normal = true;
        struct tput c = throughput(dir, 64, 1, seconds);
        printf("NOT durable (synchronous=NORMAL), 64 runs: %.0f steps/s, %.1f per commit\n",
               c.steps_per_s, c.events_per_commit);
        return 0;
    }
    printf("Keel journal benchmark: durable step cost (power-loss safe: SQLite WAL, "
           "synchronous=FULL)\n");
    printf("data dir: %s (%s)\n", dir, fs_kind(dir));
    char load[128] = "?";
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (!fgets(load, sizeof load, lf)) snprintf(load, sizeof load, "?\n");
        fclose(lf);
    }
    printf("machine: %ld CPUs, load average at start %s", sysconf(_SC_NPROCESSORS_ONLN), load);
    printf("a step = one durable journal event (step.completed with a ~120-byte result)\n\n");

    double f50, f99;
    raw_fdatasync(dir, samples, &f50, &f99);
    printf("raw fdatasync (4 KiB write + fdatasync), %d rounds alone:  p50 %.3f ms  p99 %.3f ms\n",
           samples, f50, f99);
    struct one_result one = one_run(dir, samples, true);
    printf("one run, %d durable appends, each after one raw round (same disk moment):\n",
           samples);
    printf("  raw fdatasync:    p50 %.3f ms  p99 %.3f ms\n", one.raw_p50, one.raw_p99);
    printf("  durable append:   p50 %.3f ms  p99 %.3f ms  mean %.3f ms\n", one.p50, one.p99,
           one.mean);
    printf("  ratio (p50/p50): %.2fx   (goal <= 1.5x)\n", one.p50 / one.raw_p50);
    struct one_result alone = one_run(dir, samples, false);
    printf("  the same appends back to back, without raw rounds between them: p50 %.3f ms  "
           "p99 %.3f ms  mean %.3f ms\n",
           alone.p50, alone.p99, alone.mean);
    g_normal = true;
    struct one_result nofsync = one_run(dir, samples, false);
    g_normal = false;
    printf("  diagnosis only, same without fsync (synchronous=NORMAL): p50 %.3f ms — Keel's own "
           "cost per append\n\n",
           nofsync.p50);
    double o50 = one.p50;
    f50 = one.raw_p50;

    const int conc[] = {1, 16, 64};
    struct tput tp[3];
    printf("throughput, %.1f s each, one thread per run:\n", seconds);
    char rng[96];
    for (int i = 0; i < 3; i++) {
        tp[i] = conc[i] == 64 ? median_of(PASS_THREADS, dir, seconds)
                              : throughput(dir, conc[i], 1, seconds);
        printf("  %2d concurrent runs: %9.0f steps/s%s   (%.1f appends per group commit; a commit "
               "takes %.3f ms, %.3f ms of it in COMMIT; CPU %.1f us/step)\n",
               conc[i], tp[i].steps_per_s, range_text(&tp[i], rng, sizeof rng),
               tp[i].events_per_commit, tp[i].commit_ms, tp[i].sync_ms, tp[i].cpu_us_per_step);
    }
    struct tput two = throughput(dir, 64, 2, seconds);
    printf("  64 runs, step = step.started + step.completed (2 durable appends): %.0f steps/s "
           "(%.0f events/s)\n",
           two.steps_per_s, two.steps_per_s * 2);
    struct tput as = median_of(PASS_POOL, dir, seconds);
    printf("  64 runs on %d worker threads (a run's next step is queued when the previous one is "
           "durable): %.0f steps/s%s (%.1f per group commit; a commit takes %.3f ms; CPU %.1f "
           "us/step)\n",
           workers_count(), as.steps_per_s, range_text(&as, rng, sizeof rng),
           as.events_per_commit, as.commit_ms, as.cpu_us_per_step);
    struct tput pp = median_of(PASS_PREPARED, dir, seconds);
    printf("  64 runs on %d worker threads, each run's next step built while its last is in "
           "flight and queued by the last one's completion (still queued only once the previous "
           "is durable; the engine's shape): %.0f steps/s%s (%.1f per group commit; a commit "
           "takes %.3f ms; CPU %.1f us/step)\n",
           workers_count(), pp.steps_per_s, range_text(&pp, rng, sizeof rng),
           pp.events_per_commit, pp.commit_ms, pp.cpu_us_per_step);
    printf("  goal: 64 runs >= 50,000 steps/s\n");
    g_normal = true;
    struct tput cpu = throughput(dir, 64, 1, seconds);
    g_normal = false;
    printf("  diagnosis only, NOT power-loss safe (synchronous=NORMAL, no fsync per commit):\n"
           "  64 runs: %.0f steps/s (%.1f appends per group commit; CPU %.1f us/step)\n"
           "  CPU per step bounds throughput on an idle machine: %ld cores / %.1f us = %.0f "
           "steps/s (thread per run), %.0f steps/s (worker pool)\n\n",
           cpu.steps_per_s, cpu.events_per_commit, cpu.cpu_us_per_step,
           sysconf(_SC_NPROCESSORS_ONLN), tp[2].cpu_us_per_step,
           (double)sysconf(_SC_NPROCESSORS_ONLN) * 1e6 / tp[2].cpu_us_per_step,
           (double)sysconf(_SC_NPROCESSORS_ONLN) * 1e6 / as.cpu_us_per_step);

    printf("peers (published figures for this kind of machine; not installed here, not run):\n");
    printf("  %-44s %14s %18s\n", "", "one run, ms/step", "64 runs, steps/s");
    printf("  %-44s %14.2f %18d\n", "Restate 1.7.12", 1.84, 4457);
    printf("  %-44s %14.2f %18d\n", "DBOS 5.3 on PostgreSQL", 1.56, 1253);
    printf("  %-44s %14.2f %18d\n", "LangGraph JS + SQLite checkpointer", 0.79, 1833);
    printf("  %-44s %14.2f %18s\n", "LangGraph JS + SQLite, power-loss safe", 1.28, "-");
    printf("  %-44s %14.2f %18s\n", "one fdatasync (quoted)", 0.22, "-");
    printf("  %-44s %14.3f %18.0f\n", "Keel (this run; p50; thread per run)", o50,
           tp[2].steps_per_s);
    printf("  %-44s %14s %18.0f\n", "Keel (this run; 64 runs on a worker pool)", "",
           as.steps_per_s);
    printf("  %-44s %14s %18.0f\n", "Keel (this run; pool, next step prepared)", "",
           pp.steps_per_s);
    printf("  %-44s %14.3f %18s\n", "Keel p50 scaled to the quoted 0.22 ms fsync", o50 / f50 * 0.22,
           "-");
    printf("(this disk's fdatasync p50 was %.3f ms in this run; the peers' figures assume "
           "0.22 ms)\n",
           f50);
    return 0;
}
