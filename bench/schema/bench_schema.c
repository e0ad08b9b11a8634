/*
 * bench_schema.c — JSON Schema validation throughput, Keel next to ajv 8
 * (compiled validators, Node 22) on the same data in the same run.
 *
 * Workloads:
 *   suite        every required draft 2020-12 test of the official suite
 *                (groups without remote refs), valid and invalid instances
 *   mcp-valid    realistic MCP tool input schemas (bench/schema/mcp_tools.json)
 *                with valid arguments
 *   mcp-invalid  the same schemas with invalid arguments (Keel collects
 *                every error with locations and messages; ajv stops at the
 *                first, allErrors: false)
 * Two measurements each: validations per second on already-parsed documents,
 * and end to end from JSON text (Keel: json_parse + schema_validate; ajv:
 * JSON.parse + validate).  Only items both sides compile are measured.
 *
 * Rates are validations per CPU-second (thread CPU time here, process CPU
 * time in Node), so a busy machine skews them less than wall time would.
 *
 * With --repeat N, the peer and Keel are each measured N times, alternating,
 * and the best figure of each side is kept (interference from other work
 * on the machine only ever slows a run down).
 *
 * usage: bench_schema [--seconds S] [--repeat N] [--no-peer] [--only WORKLOAD]
 *        bench_schema --passes N [--only WORKLOAD] [--max-errors K] [--lazy]
 * --passes runs exactly N passes over the parsed documents of each workload
 * with no peer and no clock, for instruction counts under valgrind:
 *   valgrind --tool=callgrind --toggle-collect=pass_parsed \
 *       build-release/bench_schema --passes 2000 --only mcp-invalid
 * (Keel is measured collecting every error and with max_errors = 1, each
 * with the error text made at the end of schema_validate (the default, what
 * every caller in Keel uses) and with lazy = true, where validation records
 * each error's facts and the text is made only when read — not read here.)
 * Run from anywhere; paths are resolved from KEEL_SOURCE_DIR.  Format
 * assertion is on for both sides (ajv-formats).
 */
#include "json/json.h"
#include "schema/schema.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct item {
    struct json_value *schema;
    struct schema *compiled;
    size_t n;
    char **texts;
    size_t *lens;
    struct json_value **docs;
};

struct set {
    const char *name;
    struct item *items;
    size_t n, cap;
    bool *peer_ok;
    double keel_parsed, keel_e2e, ajv_parsed, ajv_e2e, ajv_all;
    size_t instances;
    bool have_peer;
};

static struct arena A;

static void add_item(struct set *s, struct json_value *schema, struct json_value **insts, size_t n)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->items = realloc(s->items, s->cap * sizeof *s->items);
    }
    struct item *it = &s->items[s->n++];
    memset(it, 0, sizeof *it);
    it->schema = schema;
    it->n = n;
    it->texts = arena_alloc(&A, (n + 1) * sizeof *it->texts);
    it->lens = arena_alloc(&A, (n + 1) * sizeof *it->lens);
    it->docs = arena_alloc(&A, (n + 1) * sizeof *it->docs);
    for (size_t i = 0; i < n; i++) {
        struct buf b;
        buf_init(&b);
        json_write(&b, insts[i], 0, NULL);
        it->texts[i] = arena_strndup(&A, b.data, b.len);
        it->lens[i] = b.len;
        it->docs[i] = insts[i];
        buf_cleanup(&b);
    }
}

static struct json_value *read_json(const char *path)
{
    struct buf b;
    buf_init(&b);
    struct keel_err err;
    struct json_value *v = NULL;
    if (keel_read_file(path, 64u << 20, &b, &err) < 0 ||
        json_parse(&A, b.data, b.len, NULL, &v, &err) < 0)
        fprintf(stderr, "bench_schema: %s: %s\n", path, err.msg);
    buf_cleanup(&b);
    return v;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void load_suite(struct set *s)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/../shared/data/json-schema-test-suite/tests/draft2020-12",
             KEEL_SOURCE_DIR);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "bench_schema: no suite at %s\n", dir);
        return;
    }
    char *names[256];
    size_t nn = 0;
    struct dirent *e;
    while ((e = readdir(d)) && nn < 256) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".json")) names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, nn, sizeof *names, cmp_str);
    for (size_t f = 0; f < nn; f++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        free(names[f]);
        struct json_value *doc = read_json(path);
        for (uint32_t g = 0; doc && g < doc->len; g++) {
            struct json_value *grp = doc->u.items[g];
            struct json_value *schema = json_get(grp, "schema");
            struct buf b;
            buf_init(&b);
            json_write(&b, schema, 0, NULL);
            bool remote = strstr(b.data, "localhost:1234") != NULL;
            buf_cleanup(&b);
            if (remote) continue;
            struct json_value *tests = json_get(grp, "tests");
            struct json_value *insts[256];
            size_t n = 0;
            for (uint32_t i = 0; tests && i < tests->len && n < 256; i++)
                insts[n++] = json_get(tests->u.items[i], "data");
            add_item(s, schema, insts, n);
        }
    }
}

static void load_mcp(struct set *valid, struct set *invalid)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/bench/schema/mcp_tools.json", KEEL_SOURCE_DIR);
    struct json_value *doc = read_json(path);
    for (uint32_t i = 0; doc && i < doc->len; i++) {
        struct json_value *t = doc->u.items[i];
        struct json_value *v = json_get(t, "valid"), *x = json_get(t, "invalid");
        add_item(valid, json_get(t, "schema"), v->u.items, v->len);
        add_item(invalid, json_get(t, "schema"), x->u.items, x->len);
    }
}

/* Not inlined, so that callgrind can count instructions inside it alone. */
__attribute__((noinline)) static size_t pass_parsed(struct set *s, struct schema_result *r)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct item *it = &s->items[i];
        if (!it->compiled) continue;
        for (size_t k = 0; k < it->n; k++, n++) schema_validate(it->compiled, it->docs[k], r);
    }
    return n;
}

static size_t pass_e2e(struct set *s, struct schema_result *r, struct arena *tmp)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        struct item *it = &s->items[i];
        if (!it->compiled) continue;
        for (size_t k = 0; k < it->n; k++, n++) {
            struct json_value *v;
            arena_reset(tmp);
            if (json_parse(tmp, it->texts[k], it->lens[k], NULL, &v, NULL) == 0)
                schema_validate(it->compiled, v, r);
        }
    }
    return n;
}

/* CPU time of this thread in ns: the machine may be shared with builds, and
 * CPU time is what a validation costs regardless of waiting for a core. */
static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static size_t max_errors; /* 0: every error (the default); 1: first error only */
static bool lazy;         /* schema_result.lazy: error text made only when read */


static double measure(struct set *s, double seconds, bool e2e)
{
    struct schema_result r;
    schema_result_init(&r);
    r.max_errors = max_errors;
    r.lazy = lazy;
    struct arena tmp;
    arena_init(&tmp);
    for (int i = 0; i < 20; i++) e2e ? pass_e2e(s, &r, &tmp) : pass_parsed(s, &r);
    size_t ops = 0;
    int64_t t0 = cpu_ns(), t;
    do {
        for (int k = 0; k < 8; k++) /* reading the CPU clock is a system call */
            ops += e2e ? pass_e2e(s, &r, &tmp) : pass_parsed(s, &r);
        t = cpu_ns() - t0;
    } while (t < (int64_t)(seconds * 1e9));
    arena_cleanup(&tmp);
    schema_result_cleanup(&r);
    return (double)ops / ((double)t / 1e9);
}

/* Runs the Node peer on the workload; fills peer_ok and the ajv figures. */
static bool run_peer(struct set **sets, size_t nsets, double seconds)
{
    char wpath[] = "/tmp/keel-bench-schema-XXXXXX";
    int fd = mkstemp(wpath);
    if (fd < 0) return false;
    FILE *w = fdopen(fd, "w");
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{\"sets\":[");
    for (size_t k = 0; k < nsets; k++) {
        struct set *s = sets[k];
        buf_printf(&b, "%s{\"name\":\"%s\",\"items\":[", k ? "," : "", s->name);
        for (size_t i = 0; i < s->n; i++) {
            struct item *it = &s->items[i];
            buf_puts(&b, i ? ",{\"schema\":" : "{\"schema\":");
            json_write(&b, it->schema, 0, NULL);
            buf_puts(&b, ",\"instances\":[");
            for (size_t j = 0; j < it->n; j++) {
                if (j) buf_putc(&b, ',');
                json_write_string(&b, it->texts[j], it->lens[j]);
            }
            buf_puts(&b, "]}");
        }
        buf_puts(&b, "]}");
    }
    buf_puts(&b, "]}");
    fwrite(b.data, 1, b.len, w);
    fclose(w);
    buf_cleanup(&b);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/tests/peers/node %s/bench/schema/ajv_peer.cjs %s %.3f",
             KEEL_SOURCE_DIR, KEEL_SOURCE_DIR, wpath, seconds);
    FILE *p = popen(cmd, "r");
    struct buf out;
    buf_init(&out);
    char chunk[65536];
    size_t n;
    while (p && (n = fread(chunk, 1, sizeof chunk, p)) > 0) buf_append(&out, chunk, n);
    if (p) pclose(p);
    unlink(wpath);
    struct json_value *res;
    bool ok = out.len && json_parse(&A, out.data, out.len, NULL, &res, NULL) == 0;
    const struct json_value *rs = ok ? json_get(res, "sets") : NULL;
    for (size_t k = 0; rs && k < nsets && k < rs->len; k++) {
        const struct json_value *r = rs->u.items[k];
        const struct json_value *comp = json_get(r, "compiled");
        struct set *s = sets[k];
        if (!s->peer_ok) s->peer_ok = calloc(s->n + 1, sizeof *s->peer_ok);
        for (size_t i = 0; comp && i < s->n && i < comp->len; i++)
            s->peer_ok[i] = comp->u.items[i]->type == JSON_TRUE;
        const struct json_value *pp = json_get(r, "parsed_per_s"), *pe = json_get(r, "e2e_per_s");
#define KEEP_MAX(field, v) s->field = (v) > s->field ? (v) : s->field
        KEEP_MAX(ajv_parsed, pp ? pp->u.n.d : 0);
        KEEP_MAX(ajv_e2e, pe ? pe->u.n.d : 0);
        const struct json_value *pa = json_get(r, "all_errors_parsed_per_s");
        KEEP_MAX(ajv_all, pa ? pa->u.n.d : 0);
        s->have_peer = true;
    }
    buf_cleanup(&out);
    return ok;
}

int main(int argc, char **argv)
{
    double seconds = 1.0;
    bool peer = true;
    const char *only = NULL;
    int repeat = 1;
    long passes = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--no-peer")) peer = false;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--passes") && i + 1 < argc) passes = atol(argv[++i]);
        else if (!strcmp(argv[i], "--lazy")) lazy = true;
        else if (!strcmp(argv[i], "--max-errors") && i + 1 < argc)
            max_errors = (size_t)atol(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_schema [--seconds S] [--repeat N] [--no-peer] "
                            "[--only WORKLOAD]\n"
                            "       bench_schema --passes N [--only WORKLOAD] [--max-errors K] [--lazy]\n");
            return 2;
        }
    }
    arena_init(&A);
    struct set suite = {.name = "suite"}, mv = {.name = "mcp-valid"}, mi = {.name = "mcp-invalid"};
    load_suite(&suite);
    load_mcp(&mv, &mi);
    struct set *sets[] = {&suite, &mv, &mi};
    size_t nsets = KEEL_ARRAY_LEN(sets);
    if (passes > 0) peer = false;
    if (peer && !run_peer(sets, nsets, seconds))
        fprintf(stderr, "bench_schema: the ajv peer did not run (tests/peers missing?); "
                        "Keel figures only\n");
    struct schema_registry *reg = schema_registry_new();
    struct schema_opts o = {.format_assert = true};
    for (size_t k = 0; k < nsets; k++) {
        struct set *s = sets[k];
        for (size_t i = 0; i < s->n; i++) {
            struct item *it = &s->items[i];
            if (s->have_peer && !s->peer_ok[i]) continue;
            if (schema_compile(reg, it->schema, NULL, &o, &it->compiled, NULL) < 0) {
                it->compiled = NULL;
                continue;
            }
            s->instances += it->n;
        }
    }
    if (passes > 0) {
        for (size_t k = 0; k < nsets; k++) {
            struct set *s = sets[k];
            if (only && strcmp(only, s->name)) continue;
            struct schema_result r;
            schema_result_init(&r);
            r.max_errors = max_errors;
            r.lazy = lazy;
            size_t n = 0, invalid = 0, errors = 0;
            for (long p = 0; p < passes; p++) n += pass_parsed(s, &r);
            for (size_t i = 0; i < s->n; i++) /* what one pass finds */
                for (size_t j = 0; s->items[i].compiled && j < s->items[i].n; j++)
                    if (!schema_validate(s->items[i].compiled, s->items[i].docs[j], &r))
                        invalid++, errors += r.kept;
            printf("%s: %zu validations in %ld passes (max_errors %zu); per pass %zu invalid, "
                   "%zu errors kept\n",
                   s->name, n, passes, max_errors, invalid, errors);
            schema_result_cleanup(&r);
        }
        goto done;
    }
    /* Keel's figures: rounds alternate with the peer's; the best is kept. */
    /* The table compares like with like: Keel as the engine runs it (first
     * error, its text written only when read) against ajv's default (first
     * error); the lines after it compare every-error modes with ajv's
     * allErrors. */
    double first[8] = {0}, eager_all[8] = {0}, eager_all_e2e[8] = {0}, lazy_all[8] = {0};
    for (int rep = 0; rep < repeat; rep++) {
        if (rep > 0 && peer) run_peer(sets, nsets, seconds);
        for (size_t k = 0; k < nsets; k++) {
            struct set *s = sets[k];
            if (only && strcmp(only, s->name)) continue;
            max_errors = 1;
            lazy = true;
            double p = measure(s, seconds, false), e = measure(s, seconds, true);
            KEEP_MAX(keel_parsed, p);
            KEEP_MAX(keel_e2e, e);
            lazy = false;
            double f = measure(s, seconds, false);
            first[k] = f > first[k] ? f : first[k];
            max_errors = 0;
            f = measure(s, seconds, false);
            eager_all[k] = f > eager_all[k] ? f : eager_all[k];
            f = measure(s, seconds, true);
            eager_all_e2e[k] = f > eager_all_e2e[k] ? f : eager_all_e2e[k];
            lazy = true;
            f = measure(s, seconds, false);
            lazy_all[k] = f > lazy_all[k] ? f : lazy_all[k];
            lazy = false;
        }
    }
    printf("JSON Schema validation throughput (validations/s), %.1f s per figure, best of %d\n",
           seconds, repeat);
    printf("%-12s %9s | %14s %14s %7s | %14s %14s %7s\n", "workload", "instances", "keel parsed",
           "ajv parsed", "ratio", "keel e2e", "ajv e2e", "ratio");
    for (size_t k = 0; k < nsets; k++) {
        struct set *s = sets[k];
        if (only && strcmp(only, s->name)) continue;
        if (s->have_peer)
            printf("%-12s %9zu | %14.0f %14.0f %6.2fx | %14.0f %14.0f %6.2fx\n", s->name,
                   s->instances, s->keel_parsed, s->ajv_parsed, s->keel_parsed / s->ajv_parsed,
                   s->keel_e2e, s->ajv_e2e, s->keel_e2e / s->ajv_e2e);
        else
            printf("%-12s %9zu | %14.0f %14s %7s | %14.0f %14s %7s\n", s->name, s->instances,
                   s->keel_parsed, "-", "-", s->keel_e2e, "-", "-");
    }
    printf("ratio = keel / ajv (above 1 means Keel is faster); e2e = parse JSON text + validate;\n"
           "both stop at the first error (ajv's default; Keel: max_errors = 1, lazy = true, as\n"
           "the engine validates tool arguments); rates are per CPU-second (thread CPU time for\n"
           "Keel, process CPU time for Node).\n");
    for (size_t k = 0; k < nsets; k++) {
        struct set *s = sets[k];
        if (only && strcmp(only, s->name)) continue;
        if (s->have_peer)
            printf("%-12s first error, text made during the call (lazy = false): %.0f/s parsed, "
                   "keel/ajv %.2fx\n",
                   s->name, first[k], first[k] / s->ajv_parsed);
        else
            printf("%-12s first error, lazy = false: %.0f/s parsed\n", s->name, first[k]);
    }
    for (size_t k = 0; k < nsets; k++) {
        struct set *s = sets[k];
        if (only && strcmp(only, s->name)) continue;
        if (s->have_peer)
            printf("%-12s every error vs ajv allErrors (%.0f/s): Keel lazy %.0f/s %.2fx, Keel "
                   "eager (keel schema check) %.0f/s %.2fx; e2e eager %.0f/s\n",
                   s->name, s->ajv_all, lazy_all[k], lazy_all[k] / s->ajv_all, eager_all[k],
                   eager_all[k] / s->ajv_all, eager_all_e2e[k]);
        else
            printf("%-12s every error: lazy %.0f/s, eager %.0f/s\n", s->name, lazy_all[k],
                   eager_all[k]);
    }
done:
    for (size_t k = 0; k < nsets; k++) {
        for (size_t i = 0; i < sets[k]->n; i++) schema_free(sets[k]->items[i].compiled);
        free(sets[k]->items);
        free(sets[k]->peer_ok);
    }
    schema_registry_free(reg);
    arena_cleanup(&A);
    return 0;
}
