/*
 * test_engine.c — the engine in-process, without tool servers: control
 * steps (set, switch, succeed, fail) and state reducers, approvals by
 * humans of the right group, approval timeouts through the timer thread,
 * cancel, resume after a restart on the same data folder, input schema
 * refusal, and the idempotency key.  Waiting uses engine_run_wait (a
 * condition variable), never sleeps.
 */
#include "engine/engine.h"
#include "test.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ALICE "tok-alice-0123456789"
#define BOB "tok-bob-0123456789"

static const char *flow_yaml =
    "name: flow\n"
    "input: {type: object, required: [n], properties: {n: {type: integer}}}\n"
    "state:\n"
    "  total: {reducer: add, initial: 0}\n"
    "  log: {reducer: append}\n"
    "steps:\n"
    "  - id: first\n"
    "    set: {total: \"${input.n}\", log: first}\n"
    "  - id: again\n"
    "    set: {total: 10, log: again}\n"
    "  - id: branch\n"
    "    switch:\n"
    "      - if: 'state.total > 100'\n"
    "        goto: big\n"
    "    default: small\n"
    "  - id: big\n"
    "    fail: {message: too big}\n"
    "  - id: small\n"
    "    succeed: {output: {total: \"${state.total}\"}}\n";

static const char *gate_yaml =
    "name: gate\n"
    "steps:\n"
    "  - id: ask\n"
    "    approval: {group: leads, message: please}\n"
    "  - id: done\n"
    "    succeed: {output: {by: \"${result.by}\"}}\n";

static const char *expire_yaml =
    "name: expire\n"
    "steps:\n"
    "  - id: ask\n"
    "    approval: {group: leads, timeout: 50ms, on_timeout: approve}\n"
    "  - id: done\n"
    "    succeed: true\n";

static const char *loop_yaml =
    "name: loop\n"
    "state:\n"
    "  n: {reducer: add, initial: 0}\n"
    "steps:\n"
    "  - id: ask\n"
    "    approval: {group: leads}\n"
    "  - id: count\n"
    "    set: {n: 1}\n"
    "  - id: again\n"
    "    switch:\n"
    "      - if: 'state.n < 2'\n"
    "        goto: ask\n"
    "    default: done\n"
    "  - id: done\n"
    "    succeed: true\n";

/* Loops until cancelled; each lap's `seen` reads the `n` its first entry
 * just added (set entries apply in order). */
static const char *spin_yaml =
    "name: spin\n"
    "state:\n"
    "  n: {reducer: add, initial: 0}\n"
    "  seen: {reducer: replace}\n"
    "steps:\n"
    "  - id: count\n"
    "    set: {n: 1, seen: \"${state.n}\"}\n"
    "  - id: again\n"
    "    switch:\n"
    "      - if: 'state.n > 0'\n"
    "        goto: count\n"
    "    default: done\n"
    "  - id: done\n"
    "    succeed: true\n";
/* input.laps laps of two steps; each lap leaves a few hundred bytes of
 * scratch in the run's kept context. */
static const char *long_yaml =
    "name: long\n"
    "input: {type: object, required: [laps], properties: {laps: {type: integer}}}\n"
    "state:\n"
    "  n: {reducer: add, initial: 0}\n"
    "  last: {reducer: replace}\n"
    "steps:\n"
    "  - id: count\n"
    "    set: {n: 1, last: {lap: \"${state.n}\", pad: "
    "\"0123456789012345678901234567890123456789012345678901234567890123\"}}\n"
    "  - id: again\n"
    "    switch:\n"
    "      - if: 'state.n < input.laps'\n"
    "        goto: count\n"
    "    default: done\n"
    "  - id: done\n"
    "    succeed: {output: {n: \"${state.n}\"}}\n";

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* A temporary home: keel.yaml with two humans, the workflows above. */
/* State keys with schemas: the value after each reducer must match. */
static const char *guard_yaml =
    "name: guard\n"
    "input: {type: object}\n"
    "state:\n"
    "  total: {reducer: add, initial: 0, schema: {type: integer, maximum: 10}}\n"
    "  tags: {reducer: append, schema: {type: array, maxItems: 2, items: {type: string}}}\n"
    "steps:\n"
    "  - id: one\n"
    "    set: {total: 6, tags: a}\n"
    "  - id: two\n"
    "    set: {tags: b}\n"
    "  - id: three\n"
    "    set: {total: 6}\n";

static char *make_home(void)
{
    char tmpl[] = "/tmp/keel-engine-XXXXXX";
    char *dir = strdup(mkdtemp(tmpl));
    char wf[4096];
    snprintf(wf, sizeof wf, "%s/workflows", dir);
    mkdir(wf, 0700);
    write_file(wf, "flow.yaml", flow_yaml);
    write_file(wf, "gate.yaml", gate_yaml);
    write_file(wf, "expire.yaml", expire_yaml);
    write_file(wf, "loop.yaml", loop_yaml);
    write_file(wf, "guard.yaml", guard_yaml);
    write_file(wf, "spin.yaml", spin_yaml);
    write_file(wf, "long.yaml", long_yaml);
    char a[65], b[65], cfg[1024];
    keel_sha256_hex(ALICE, strlen(ALICE), a);
    keel_sha256_hex(BOB, strlen(BOB), b);
    snprintf(cfg, sizeof cfg,
             "humans:\n  alice: {groups: [leads], token_sha256: %s}\n"
             "  bob: {groups: [finance], token_sha256: %s}\n"
             "workflows: workflows\ndata_dir: data\n",
             a, b);
    write_file(dir, "keel.yaml", cfg);
    return dir;
}

static void rm_home(char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
}

static struct engine *start(const char *home, struct keel_err *err)
{
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s/keel.yaml", home);
    struct engine_opts o = {.config_path = cfg, .workers = 2};
    struct engine *e = NULL;
    if (engine_start(&o, &e, err)) return NULL;
    return e;
}

/* Each test's opening: a fresh home (make_home), an engine on it started
 * by startfn, and `err` cleared. */
#define OPEN_ENGINE(startfn)                                                                       \
    char *home = make_home();                                                                      \
    struct keel_err err;                                                                           \
    keel_err_clear(&err);                                                                          \
    struct engine *e = startfn(home, &err);                                                        \
    REQUIRE(e)

static int start_run(struct engine *e, const char *wf, const char *input, char id[64],
                     struct keel_err *err)
{
    struct arena a;
    arena_init(&a);
    struct json_value *in;
    int rc = json_parse(&a, input, strlen(input), NULL, &in, err);
    if (!rc) {
        const struct identity *admin = identity_find(engine_identities(e), IDENTITY_ADMIN, "admin");
        rc = engine_run_start(e, wf, in, admin, id, 64, err);
    }
    arena_cleanup(&a);
    return rc;
}

static enum engine_run_status wait_run(struct engine *e, const char *id)
{
    enum engine_run_status st = RUN_RUNNING;
    engine_run_wait(e, id, 10000, false, &st, NULL);
    return st;
}

static enum engine_run_status wait_final(struct engine *e, const char *id)
{
    enum engine_run_status st = RUN_RUNNING;
    engine_run_wait(e, id, 10000, true, &st, NULL);
    return st;
}

/* The run's first pending approval id (static buffer). */
static const char *pending_approval(struct engine *e, const char *run)
{
    static char id[64];
    id[0] = '\0';
    struct arena a;
    arena_init(&a);
    struct json_value *list;
    if (engine_approval_list(e, true, NULL, &a, &list, NULL) == 0)
        for (uint32_t i = 0; i < list->len; i++)
            if (!strcmp(json_get_str(list->u.items[i], "run", ""), run))
                snprintf(id, sizeof id, "%s", json_get_str(list->u.items[i], "id", ""));
    arena_cleanup(&a);
    return id;
}

TEST(control_steps_and_reducers)
{
    OPEN_ENGINE(start);
    char id[64];
    REQUIRE(start_run(e, "flow", "{\"n\": 5}", id, &err) == 0);
    CHECK_INT(wait_run(e, id), RUN_SUCCEEDED);
    struct arena a;
    arena_init(&a);
    struct json_value *run;
    REQUIRE(engine_run_show(e, id, &a, &run, &err) == 0);
    struct json_value *state = json_get(run, "state");
    CHECK_INT(json_get_int(state, "total", -1), 15);
    struct json_value *log = json_get(state, "log");
    CHECK(json_is(log, JSON_ARRAY) && log->len == 2);
    struct json_value *evs;
    REQUIRE(engine_run_events(e, id, 1, 0, &a, &evs, &err) == 0);
    CHECK_STR(json_get_str(evs->u.items[0], "kind", ""), "run.started");
    CHECK_STR(json_get_str(evs->u.items[evs->len - 1], "kind", ""), "run.succeeded");
    struct json_value *page;
    REQUIRE(engine_run_events(e, id, 3, 2, &a, &page, &err) == 0);
    REQUIRE(page->len == 2);
    CHECK_INT(json_get_int(page->u.items[0], "seq", 0), 3);
    CHECK_INT(json_get_int(page->u.items[1], "seq", 0), 4);
    struct json_value *v;
    REQUIRE(engine_run_verify(e, id, &a, &v, &err) == 0);
    CHECK(json_get_bool(v, "ok", false));
    CHECK_INT(json_get_int(v, "events", 0), (int64_t)evs->len);
    /* The switch takes the other branch for a big total. */
    REQUIRE(start_run(e, "flow", "{\"n\": 500}", id, &err) == 0);
    CHECK_INT(wait_run(e, id), RUN_FAILED);
    REQUIRE(engine_run_show(e, id, &a, &run, &err) == 0);
    CHECK_STR(json_get_str(run, "error", ""), "too big");
    arena_cleanup(&a);
    engine_stop(e);
    rm_home(home);
}

/* An engine without the suite's view self-check (KEEL_CHECK_VIEW), which
 * refolds after every transition by design and waits for each transition's
 * events to be durable first, which turns off the pipelining of a run's
 * next transition with its last one's commit. */
static struct engine *start_unchecked(const char *home, struct keel_err *err)
{
    const char *cv = getenv("KEEL_CHECK_VIEW");
    char *saved = cv ? strdup(cv) : NULL;
    unsetenv("KEEL_CHECK_VIEW");
    struct engine *e = start(home, err);
    if (saved) setenv("KEEL_CHECK_VIEW", saved, 1);
    free(saved);
    return e;
}

/* The run ended well: every lap counted, the value the last lap read from
 * the kept view (set entries apply in order: `last` sees the new `n`), and
 * the journal verifies with exactly the events the laps make. */
static void check_long_run(struct engine *e, const char *id, int laps)
{
    struct keel_err err;
    keel_err_clear(&err);
    enum engine_run_status st = RUN_RUNNING;
    engine_run_wait(e, id, 120000, true, &st, NULL);
    CHECK_INT(st, RUN_SUCCEEDED);
    struct arena a;
    arena_init(&a);
    struct json_value *run;
    REQUIRE(engine_run_show(e, id, &a, &run, &err) == 0);
    struct json_value *state = json_get(run, "state");
    CHECK_INT(json_get_int(state, "n", -1), laps);
    CHECK_INT(json_get_int(json_get(state, "last"), "lap", -1), laps);
    struct json_value *v;
    REQUIRE(engine_run_verify(e, id, &a, &v, &err) == 0);
    CHECK(json_get_bool(v, "ok", false));
    /* run.started; 4 events a lap (n, last, and the two completions);
     * step.started and run.succeeded of the `done` step */
    CHECK_INT(json_get_int(v, "events", 0), 3 + 4 * laps);
    arena_cleanup(&a);
}

/* A long run keeps its context from start to end: it is never refolded
 * from its journal (that made each transition O(journal) once the kept
 * arena passed a fixed size), and its arena is compacted instead. */
TEST(long_run_is_never_refolded)
{
    OPEN_ENGINE(start_unchecked);
    char id[64];
    REQUIRE(start_run(e, "long", "{\"laps\": 1500}", id, &err) == 0);
    check_long_run(e, id, 1500);
    struct engine_stats stats;
    engine_get_stats(e, &stats);
    CHECK_INT(stats.folds, 0);
    CHECK(stats.compactions >= 1);
    engine_stop(e);
    rm_home(home);
}

/* Many runs at once with their transitions pipelined: each run's next
 * transition is computed while its last one's events are in flight, and
 * queued by their completion.  Every run counts every lap. */
TEST(concurrent_pipelined_runs)
{
    OPEN_ENGINE(start_unchecked);
    enum { RUNS = 24, LAPS = 150 };
    char ids[RUNS][64];
    for (int i = 0; i < RUNS; i++)
        REQUIRE(start_run(e, "long", "{\"laps\": 150}", ids[i], &err) == 0);
    for (int i = 0; i < RUNS; i++) check_long_run(e, ids[i], LAPS);
    struct engine_stats stats;
    engine_get_stats(e, &stats);
    CHECK_INT(stats.folds, 0);
    CHECK(stats.parked > 0); /* the pipelined path was taken */
    engine_stop(e);
    rm_home(home);
}

/* ---- a store that fails: a VFS over the default one that fails the next
 * write to a WAL file when armed (registered as the default VFS, so the
 * engine's store uses it), and tells the test when it did. */

static sqlite3_vfs *real_vfs;
static sqlite3_vfs faulty_vfs;
static sqlite3_io_methods faulty_io;
static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fault_cv = PTHREAD_COND_INITIALIZER;
static bool fault_armed;
static int fault_fired;

struct faulty_file {
    sqlite3_file base;
    bool wal;
    sqlite3_file *real; /* right after this struct */
};

#define REAL(f) (((struct faulty_file *)(f))->real)
static int ff_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int ff_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int ff_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    if (((struct faulty_file *)f)->wal) {
        pthread_mutex_lock(&fault_mu);
        bool fail = fault_armed;
        if (fail) {
            fault_armed = false;
            fault_fired++;
            pthread_cond_broadcast(&fault_cv);
        }
        pthread_mutex_unlock(&fault_mu);
        if (fail) return SQLITE_IOERR_WRITE;
    }
    return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 n)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), n);
}
static int ff_sync(sqlite3_file *f, int flags)
{
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int ff_size(sqlite3_file *f, sqlite3_int64 *n)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), n);
}
static int ff_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int ff_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int ff_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int ff_fcntl(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int ff_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int ff_devchar(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int ff_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **out)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, out);
}
static int ff_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void ff_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int ff_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int ff_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **out)
{
    return REAL(f)->pMethods->xFetch(REAL(f), o, n, out);
}
static int ff_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), o, p);
}
#undef REAL

static int ff_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    struct faulty_file *ff = (struct faulty_file *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    ff->wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out_flags);
    f->pMethods = rc == SQLITE_OK ? &faulty_io : NULL;
    return rc;
}

static void faulty_vfs_install(void)
{
    if (real_vfs) return;
    real_vfs = sqlite3_vfs_find(NULL);
    faulty_vfs = *real_vfs;
    faulty_vfs.zName = "keel-test-faulty";
    faulty_vfs.szOsFile = (int)sizeof(struct faulty_file) + real_vfs->szOsFile;
    faulty_vfs.xOpen = ff_open;
    faulty_io = (sqlite3_io_methods){
        .iVersion = 3, /* the unix VFS's files: every method below exists */
        .xClose = ff_close,
        .xRead = ff_read,
        .xWrite = ff_write,
        .xTruncate = ff_truncate,
        .xSync = ff_sync,
        .xFileSize = ff_size,
        .xLock = ff_lock,
        .xUnlock = ff_unlock,
        .xCheckReservedLock = ff_reserved,
        .xFileControl = ff_fcntl,
        .xSectorSize = ff_sector,
        .xDeviceCharacteristics = ff_devchar,
        .xShmMap = ff_shm_map,
        .xShmLock = ff_shm_lock,
        .xShmBarrier = ff_shm_barrier,
        .xShmUnmap = ff_shm_unmap,
        .xFetch = ff_fetch,
        .xUnfetch = ff_unfetch,
    };
    sqlite3_vfs_register(&faulty_vfs, 1);
}

static void faulty_vfs_remove(void)
{
    if (!real_vfs) return;
    sqlite3_vfs_register(real_vfs, 1);
    sqlite3_vfs_unregister(&faulty_vfs);
    real_vfs = NULL;
}

/* Arms the fault and waits (a condition variable, not a sleep) until a
 * WAL write failed. */
static void fail_next_wal_write(void)
{
    pthread_mutex_lock(&fault_mu);
    int before = fault_fired;
    fault_armed = true;
    while (fault_fired == before)
        pthread_cond_wait(&fault_cv, &fault_mu);
    pthread_mutex_unlock(&fault_mu);
}

/* A group commit fails while runs are pipelined: the failed requests'
 * runs drop what was parked behind them (it chains onto events the journal
 * lacks), are reloaded from their journals, and finish with every lap
 * counted once.  The write that fails may be the index pass's (then no
 * request fails), so the fault is armed again until a request failed. */
TEST(store_failure_while_pipelined)
{
    faulty_vfs_install();
    OPEN_ENGINE(start_unchecked);
    enum { RUNS = 8, LAPS = 400 };
    char ids[RUNS][64];
    for (int i = 0; i < RUNS; i++)
        REQUIRE(start_run(e, "long", "{\"laps\": 400}", ids[i], &err) == 0);
    struct engine_stats stats = {0};
    for (int tries = 0; tries < 10 && stats.append_failures == 0; tries++) {
        fail_next_wal_write();
        engine_get_stats(e, &stats);
    }
    CHECK(stats.append_failures > 0);
    for (int i = 0; i < RUNS; i++) check_long_run(e, ids[i], LAPS);
    engine_get_stats(e, &stats);
    CHECK(stats.folds > 0); /* the failed runs were reloaded */
    engine_stop(e);
    faulty_vfs_remove();
    rm_home(home);
}

/* The same, with a store that cannot take timer rows either (its timers
 * table is gone): a run whose transition failed is tried again (from
 * memory, needing no timer row), not forgotten until the next restart.  A run's last transition ends it, which waits for its
 * events to be durable; when the group commit holding the request before
 * it fails, that transition fails.  So runs of one lap are started in
 * rounds, with a fault in each, until a run took that path. */
TEST(failed_run_retried_when_its_timer_cannot_be_stored)
{
    faulty_vfs_install();
    OPEN_ENGINE(start_unchecked);
    char db[4200];
    snprintf(db, sizeof db, "%s/data/keel.db", home);
    sqlite3 *raw = NULL;
    REQUIRE(sqlite3_open(db, &raw) == SQLITE_OK);
    sqlite3_busy_timeout(raw, 10000);
    CHECK_INT(sqlite3_exec(raw, "DROP TABLE timers", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    enum { RUNS = 16, ROUNDS = 200 };
    char ids[RUNS][64];
    struct engine_stats stats = {0};
    int rounds = 0;
    for (; rounds < ROUNDS && stats.memory_retries == 0; rounds++) {
        for (int i = 0; i < RUNS; i++)
            REQUIRE(start_run(e, "long", "{\"laps\": 1}", ids[i], &err) == 0);
        fail_next_wal_write();
        for (int i = 0; i < RUNS; i++) check_long_run(e, ids[i], 1);
        engine_get_stats(e, &stats);
    }
    fprintf(stderr, "rounds until a run was retried from memory: %d\n", rounds);
    CHECK(stats.memory_retries > 0);
    engine_stop(e);
    faulty_vfs_remove();
    rm_home(home);
}

TEST(input_schema_refused_and_nothing_written)
{
    OPEN_ENGINE(start);
    char id[64];
    CHECK_INT(start_run(e, "flow", "{\"n\": \"five\"}", id, &err), KEEL_ESCHEMA);
    CHECK_CONTAINS(err.msg, "input schema");
    CHECK_STR(err.path, "/n");
    CHECK_INT(start_run(e, "nope", "{}", id, &err), KEEL_ENOENT);
    struct arena a;
    arena_init(&a);
    struct json_value *list;
    REQUIRE(engine_run_list(e, 100, &a, &list, &err) == 0);
    CHECK_INT(list->len, 0);
    CHECK_INT(engine_run_show(e, "run_missing", &a, &list, &err), KEEL_ENOENT);
    arena_cleanup(&a);
    engine_stop(e);
    rm_home(home);
}

TEST(approval_by_group_member_and_resume_after_restart)
{
    OPEN_ENGINE(start);
    char id[64];
    REQUIRE(start_run(e, "gate", "{}", id, &err) == 0);
    CHECK_INT(wait_run(e, id), RUN_WAITING);
    char aid[64];
    snprintf(aid, sizeof aid, "%s", pending_approval(e, id));
    REQUIRE(aid[0]);
    /* Restart on the same data: the parked run is still parked. */
    engine_stop(e);
    e = start(home, &err);
    REQUIRE(e);
    CHECK_INT(wait_run(e, id), RUN_WAITING);
    CHECK_STR(pending_approval(e, id), aid);
    const struct identity_set *ids = engine_identities(e);
    const struct identity *bob = identity_authenticate(ids, BOB, strlen(BOB));
    const struct identity *alice = identity_authenticate(ids, ALICE, strlen(ALICE));
    REQUIRE(bob && alice);
    CHECK_INT(engine_approval_decide(e, aid, bob, true, "", &err), KEEL_EDENIED);
    CHECK_CONTAINS(err.msg, "not in group 'leads'");
    CHECK_INT(engine_approval_decide(e, aid, alice, true, "ok", &err), 0);
    CHECK_INT(wait_run(e, id), RUN_SUCCEEDED);
    CHECK_INT(engine_approval_decide(e, aid, alice, true, "", &err), KEEL_ESTATE);
    CHECK_CONTAINS(err.msg, "already approved by human:alice");
    CHECK_INT(engine_approval_decide(e, "apr_nope", alice, true, "", &err), KEEL_ENOENT);
    /* The decision event records the human as its actor. */
    struct arena a;
    arena_init(&a);
    struct json_value *evs;
    REQUIRE(engine_run_events(e, id, 1, 0, &a, &evs, &err) == 0);
    bool found = false;
    for (uint32_t i = 0; i < evs->len; i++)
        if (!strcmp(json_get_str(evs->u.items[i], "kind", ""), "approval.decided")) {
            CHECK_STR(json_get_str(evs->u.items[i], "actor", ""), "human:alice");
            found = true;
        }
    CHECK(found);
    /* `result` in the step after the approval is the approval's outcome,
     * rebuilt from the journal after the restart. */
    struct json_value *last = evs->u.items[evs->len - 1];
    CHECK_STR(json_get_str(last, "kind", ""), "run.succeeded");
    CHECK_STR(json_get_str(json_get(json_get(last, "payload"), "output"), "by", ""), "human:alice");
    arena_cleanup(&a);
    engine_stop(e);
    rm_home(home);
}

TEST(loop_visits_ask_anew)
{
    OPEN_ENGINE(start);
    const struct identity_set *ids = engine_identities(e);
    const struct identity *alice = identity_authenticate(ids, ALICE, strlen(ALICE));
    char id[64], first[64];
    REQUIRE(start_run(e, "loop", "{}", id, &err) == 0);
    CHECK_INT(wait_run(e, id), RUN_WAITING);
    snprintf(first, sizeof first, "%s", pending_approval(e, id));
    REQUIRE(first[0]);
    CHECK_INT(engine_approval_decide(e, first, alice, true, "", &err), 0);
    /* The switch loops back: the second visit asks again, with a new id. */
    CHECK_INT(wait_run(e, id), RUN_WAITING);
    const char *second = pending_approval(e, id);
    CHECK(second[0] && strcmp(second, first) != 0);
    CHECK_INT(engine_approval_decide(e, second, alice, true, "", &err), 0);
    CHECK_INT(wait_final(e, id), RUN_SUCCEEDED);
    struct arena a;
    arena_init(&a);
    struct json_value *run;
    REQUIRE(engine_run_show(e, id, &a, &run, &err) == 0);
    CHECK_INT(json_get_int(json_get(run, "state"), "n", -1), 2);
    arena_cleanup(&a);
    engine_stop(e);
    rm_home(home);
}

static int thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Threads:", 8)) n = atoi(line + 8);
    if (f) fclose(f);
    return n;
}

TEST(parked_runs_hold_no_thread)
{
    OPEN_ENGINE(start);
    int before = thread_count();
    enum { N = 200 };
    static char ids[N][64];
    for (int i = 0; i < N; i++) REQUIRE(start_run(e, "gate", "{}", ids[i], &err) == 0);
    int waiting = 0;
    for (int i = 0; i < N; i++) waiting += wait_run(e, ids[i]) == RUN_WAITING;
    CHECK_INT(waiting, N);
    /* Two workers parked 200 runs: no thread per waiting run. */
    CHECK_INT(thread_count(), before);
    struct arena a;
    arena_init(&a);
    struct json_value *list;
    REQUIRE(engine_approval_list(e, true, NULL, &a, &list, &err) == 0);
    CHECK_INT(list->len, N);
    arena_cleanup(&a);
    engine_stop(e);
    rm_home(home);
}

TEST(approval_timeout_fires_through_timer_thread)
{
    OPEN_ENGINE(start);
    char id[64];
    REQUIRE(start_run(e, "expire", "{}", id, &err) == 0);
    /* Parks, then the timer thread wakes it at the deadline: on_timeout
     * approve lets it finish. */
    CHECK_INT(wait_final(e, id), RUN_SUCCEEDED);
    struct arena a;
    arena_init(&a);
    struct json_value *list;
    REQUIRE(engine_approval_list(e, false, NULL, &a, &list, &err) == 0);
    REQUIRE(list->len == 1);
    CHECK_STR(json_get_str(list->u.items[0], "status", ""), "expired");
    arena_cleanup(&a);
    engine_stop(e);
    rm_home(home);
}

TEST(cancel_waiting_run)
{
    OPEN_ENGINE(start);
    char id[64];
    REQUIRE(start_run(e, "gate", "{}", id, &err) == 0);
    CHECK_INT(wait_run(e, id), RUN_WAITING);
    const struct identity *admin = identity_find(engine_identities(e), IDENTITY_ADMIN, "admin");
    CHECK_INT(engine_run_cancel(e, id, admin, &err), 0);
    CHECK_INT(wait_run(e, id), RUN_CANCELLED);
    CHECK_INT(engine_run_cancel(e, id, admin, &err), KEEL_ESTATE);
    /* Its approval can no longer be decided. */
    struct arena a;
    arena_init(&a);
    struct json_value *list;
    REQUIRE(engine_approval_list(e, true, NULL, &a, &list, &err) == 0);
    CHECK_INT(list->len, 0);
    arena_cleanup(&a);
    engine_stop(e);
    rm_home(home);
}

/* A running run's context is kept between transitions (docs/engine.md);
 * a cancel request must still reach it, and every set entry sees the one
 * before it. */
TEST(cancel_running_run)
{
    OPEN_ENGINE(start);
    char id[64];
    REQUIRE(start_run(e, "spin", "{}", id, &err) == 0);
    const struct identity *admin = identity_find(engine_identities(e), IDENTITY_ADMIN, "admin");
    CHECK_INT(engine_run_cancel(e, id, admin, &err), 0);
    CHECK_INT(wait_final(e, id), RUN_CANCELLED);
    struct arena a;
    arena_init(&a);
    struct json_value *show;
    REQUIRE(engine_run_show(e, id, &a, &show, &err) == 0);
    const struct json_value *state = json_get(show, "state");
    int64_t n = json_get_int(state, "n", -1);
    CHECK(n >= 0);
    if (n > 0) CHECK_INT(json_get_int(state, "seen", -1), n);
    /* set and switch steps journal no step.started; each state.updated
     * names its step. */
    struct json_value *evs;
    REQUIRE(engine_run_events(e, id, 1, 0, &a, &evs, &err) == 0);
    int started = 0, updated_named = 0, updated = 0;
    for (uint32_t i = 0; i < evs->len; i++) {
        const char *k = json_get_str(evs->u.items[i], "kind", "");
        const struct json_value *p = json_get(evs->u.items[i], "payload");
        if (!strcmp(k, "step.started")) started++;
        if (!strcmp(k, "state.updated")) {
            updated++;
            if (!strcmp(json_get_str(p, "step", ""), "count")) updated_named++;
        }
    }
    CHECK_INT(started, 0);
    CHECK_INT(updated_named, updated);
    CHECK(updated >= 2 * n);
    arena_cleanup(&a);
    engine_stop(e);
    rm_home(home);
}

TEST(admin_token_created_private)
{
    OPEN_ENGINE(start);
    char path[4096];
    snprintf(path, sizeof path, "%s/data/admin.token", home);
    struct stat st;
    REQUIRE(stat(path, &st) == 0);
    CHECK_INT(st.st_mode & 0777, 0600);
    char tok[128];
    snprintf(path, sizeof path, "%s/data", home);
    REQUIRE(identity_admin_token_read(path, tok, sizeof tok, &err) == 0);
    const struct identity *id = identity_authenticate(engine_identities(e), tok, strlen(tok));
    REQUIRE(id);
    CHECK_INT(id->kind, IDENTITY_ADMIN);
    CHECK(!identity_authenticate(engine_identities(e), "nope", 4));
    engine_stop(e);
    /* A token file others can read is refused. */
    snprintf(path, sizeof path, "%s/data/admin.token", home);
    chmod(path, 0644);
    CHECK(start(home, &err) == NULL);
    CHECK_INT(err.code, KEEL_EDENIED);
    CHECK_CONTAINS(err.msg, "chmod 600");
    rm_home(home);
}

TEST(bad_workflow_refuses_start_and_writes_nothing)
{
    char *home = make_home();
    char wf[4096];
    snprintf(wf, sizeof wf, "%s/workflows", home);
    write_file(wf, "zbad.yaml", "name: bad\nsteps:\n  - id: a\n    tol: x/y\n");
    struct keel_err err;
    keel_err_clear(&err);
    CHECK(start(home, &err) == NULL);
    CHECK_CONTAINS(err.file, "zbad.yaml");
    CHECK_CONTAINS(err.msg, "unknown step kind");
    char data[4096];
    snprintf(data, sizeof data, "%s/data", home);
    CHECK(access(data, F_OK) != 0);
    rm_home(home);
}

TEST(idempotency_key_is_stable_per_call)
{
    char a[65], b[65], c[65];
    engine_idempotency_key("run_1", "fetch", 0, a);
    engine_idempotency_key("run_1", "fetch", 0, b);
    engine_idempotency_key("run_1", "fetch2", 0, c);
    CHECK_STR(a, b);
    CHECK(strcmp(a, c) != 0);
    CHECK_INT(strlen(a), 64);
}

TEST(state_schema_checked_after_each_reducer)
{
    OPEN_ENGINE(start);
    char id[64];
    REQUIRE(start_run(e, "guard", "{}", id, &err) == 0);
    CHECK_INT(wait_run(e, id), RUN_FAILED);
    struct arena a;
    arena_init(&a);
    struct json_value *run;
    REQUIRE(engine_run_show(e, id, &a, &run, &err) == 0);
    /* 6 + 6 = 12 > maximum 10: step three fails, and its update is not
     * journaled; the earlier updates (total 6, tags [a, b]) stand. */
    CHECK_CONTAINS(json_get_str(run, "error", ""), "state.total would not match its schema");
    CHECK_CONTAINS(json_get_str(run, "error", ""), "10");
    struct json_value *state = json_get(run, "state");
    CHECK_INT(json_get_int(state, "total", -1), 6);
    CHECK(json_is(json_get(state, "tags"), JSON_ARRAY) && json_get(state, "tags")->len == 2);
    arena_cleanup(&a);
    engine_stop(e);
    rm_home(home);
}
