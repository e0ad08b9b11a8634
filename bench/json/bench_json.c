/*
 * bench_json.c — JSON parse and write throughput, Keel next to Node 22's
 * JSON.parse / JSON.stringify on the same data in the same run.
 *
 * Documents:
 *   tool-call   an OpenAI chat completion with one tool call (~350 bytes)
 *   transcript  a deterministically generated model transcript (~1 MB):
 *               messages with text, non-ASCII (Latin-1, CJK, emoji), escapes,
 *               integers, decimals, nested tool calls
 * Both are written to temp files, which bench/json/peer.js reads.
 *
 * Figures are MB/s (10^6 bytes per second of wall time): parse counts input
 * bytes, write counts the bytes of compact output.  Each figure is the best
 * of --repeat rounds (default 5) of at least --seconds each (default 0.3):
 * interference from other work on the machine only ever slows a round down.
 * Keel's parse includes UTF-8 validation of bytes and arena reset; Node's
 * parse starts from an already-decoded JS string.
 *
 * The arena is reset between parses.  arena_reset hands its chunks back to
 * malloc, and in a fresh process glibc then returns the top of the heap to
 * the kernel (its trim threshold starts at 128 KiB), so every parse
 * page-faults the 2.6 MB its DOM needs back in: on the shared VM that costs
 * about as much as the parse itself.  A long-running process usually has
 * larger thresholds (glibc raises them when a big block is freed) or a heap
 * whose top is not free.  --keep-heap measures that case: it sets
 * M_TRIM_THRESHOLD to 256 MiB first.  The default is the cold process.
 *
 * --cpu-time times rounds in CPU seconds of each process (user + system;
 * for Node all its threads, so garbage collection counts) instead of wall
 * seconds: on a loaded machine the time the scheduler gives to others then
 * drops out, although caches and memory bandwidth are still shared.
 *
 * usage: bench_json [--seconds S] [--repeat N] [--no-peer] [--doc NAME] [--op parse|write]
 *                   [--iterations N] [--keep-heap] [--cpu-time]
 * --doc and --op restrict the run to one document / operation (the peer
 * still measures both).  --iterations N runs exactly N calls per figure
 * instead of timed rounds and skips the peer: a fixed amount of work, for
 * instruction counts (valgrind --tool=callgrind --toggle-collect=json_parse).
 * Run from anywhere; the peer is found through KEEL_SOURCE_DIR.
 */
#include "json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

struct doc {
    const char *name;
    struct buf text;
    char path[64];
    double keel_parse, keel_write, node_parse, node_write;
    bool have_node;
};

static const char TOOL_CALL[] =
    "{\"id\":\"chatcmpl-9x7QmR2vLk3J\",\"object\":\"chat.completion\",\"created\":1732550400,"
    "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":null,\"tool_calls\":[{\"id\":\"call_Qf3vTz8Jm1Kp\",\"type\":\"function\","
    "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},"
    "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":82,"
    "\"completion_tokens\":17}}";

/* Deterministic pseudo-random numbers (xorshift64). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static const char *const WORDS[] = {
    "the",     "model",  "returns", "a",        "tool",      "call",     "with",   "arguments",
    "agent",   "plan",   "step",    "résumé",   "naïve",     "café",     "データ",  "模型",
    "🙂",      "🚀",     "€100",    "größe",    "workflow",  "approval", "policy", "journal",
    "\\n",     "\\t",    "\\\"quoted\\\"", "C:\\\\tmp\\\\x", "\\u00e9", "\\ud83d\\ude00",
    "context", "tokens", "retry",   "deadline",
};
#define NWORDS (sizeof WORDS / sizeof WORDS[0])

static void gen_text(struct buf *b, uint32_t nwords)
{
    buf_putc(b, '"');
    for (uint32_t i = 0; i < nwords; i++) {
        if (i) buf_putc(b, ' ');
        buf_puts(b, WORDS[rnd(NWORDS)]);
    }
    buf_putc(b, '"');
}

/* Builds the ~1 MB transcript text in b. */
static void gen_transcript(struct buf *b)
{
    static const char *const roles[] = {"user", "assistant", "tool"};
    buf_puts(b, "{\"model\":\"keel-bench\",\"temperature\":0.7,\"top_p\":0.95,\"messages\":[");
    for (uint32_t m = 0; b->len < 1000000; m++) {
        if (m) buf_putc(b, ',');
        const char *role = roles[m % 3];
        buf_printf(b, "{\"index\":%u,\"role\":\"%s\",\"content\":", m, role);
        gen_text(b, 20 + rnd(120));
        buf_printf(b, ",\"tokens\":%u,\"latency_ms\":%u.%03u,\"score\":-%u.%uE-%u", 10 + rnd(5000),
                   rnd(3000), rnd(1000), rnd(10), rnd(100000), 1 + rnd(9));
        if (role[0] == 'a') {
            buf_printf(b, ",\"tool_calls\":[{\"id\":\"call_%08x\",\"type\":\"function\","
                          "\"function\":{\"name\":\"search\",\"arguments\":",
                       rnd(0xffffffffu));
            gen_text(b, 5 + rnd(10));
            buf_printf(b, "}}],\"usage\":{\"prompt\":%u,\"completion\":%u,\"cost\":%u.%06u}",
                       rnd(100000), rnd(4000), rnd(3), rnd(1000000));
        }
        buf_printf(b, ",\"flags\":[%s,%s,null],\"ids\":[%u,%u,%u,12345678901234567890]}",
                   rnd(2) ? "true" : "false", rnd(2) ? "true" : "false", rnd(1000), rnd(1000000),
                   rnd(0xffffffffu));
    }
    buf_puts(b, "]}");
}

/* --cpu-time: rounds are timed in CPU seconds of this process (user +
 * system) instead of wall seconds, so time the scheduler gives to other
 * work on a loaded machine does not count; the peer does the same. */
static bool cpu_time;

static double now_s(void)
{
    if (cpu_time) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    }
    return (double)keel_mono_ns() / 1e9;
}

/* Exact call count per figure when > 0 (--iterations). */
static long iterations;

/* Best MB/s over `repeat` rounds of at least `seconds` each (or one round
 * of exactly `iterations` calls). */
static double measure_parse(const struct doc *d, double seconds, int repeat)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    double best = 0;
    for (int r = 0; r < repeat; r++) {
        double t0 = now_s(), t;
        size_t bytes = 0;
        do {
            for (int k = 0; k < (iterations > 0 ? iterations : 16); k++) {
                struct json_value *v;
                arena_reset(&a);
                if (json_parse(&a, d->text.data, d->text.len, NULL, &v, &err) < 0) {
                    fprintf(stderr, "bench_json: %s: %s\n", d->name, err.msg);
                    exit(1);
                }
                bytes += d->text.len;
            }
            t = now_s() - t0;
        } while (iterations <= 0 && t < seconds);
        double mbps = (double)bytes / t / 1e6;
        if (mbps > best) best = mbps;
    }
    arena_cleanup(&a);
    return best;
}

static double measure_write(const struct doc *d, double seconds, int repeat)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v;
    if (json_parse(&a, d->text.data, d->text.len, NULL, &v, &err) < 0) {
        fprintf(stderr, "bench_json: %s: %s\n", d->name, err.msg);
        exit(1);
    }
    struct buf out;
    buf_init(&out);
    double best = 0;
    for (int r = 0; r < repeat; r++) {
        double t0 = now_s(), t;
        size_t bytes = 0;
        do {
            for (int k = 0; k < (iterations > 0 ? iterations : 16); k++) {
                buf_reset(&out);
                json_write(&out, v, 0, &err);
                bytes += out.len;
            }
            t = now_s() - t0;
        } while (iterations <= 0 && t < seconds);
        double mbps = (double)bytes / t / 1e6;
        if (mbps > best) best = mbps;
    }
    buf_cleanup(&out);
    arena_cleanup(&a);
    return best;
}

/* Runs the Node peer on both files and fills the node_* figures. */
static void run_peer(struct doc *docs, size_t n, double seconds, int repeat)
{
    struct buf cmd, outp;
    buf_init(&cmd);
    buf_init(&outp);
    buf_printf(&cmd, "'%s/tests/peers/node' '%s/bench/json/peer.js' --seconds %g --repeat %d%s",
               KEEL_SOURCE_DIR, KEEL_SOURCE_DIR, seconds, repeat, cpu_time ? " --cpu-time" : "");
    for (size_t i = 0; i < n; i++) buf_printf(&cmd, " '%s'", docs[i].path);
    FILE *p = popen(cmd.data, "r");
    if (!p) {
        fprintf(stderr, "bench_json: cannot run the Node peer\n");
        goto out;
    }
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, p)) > 0) buf_append(&outp, chunk, got);
    int st = pclose(p);
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct json_value *v = NULL;
    if (st != 0 || json_parse(&a, outp.data ? outp.data : "", outp.len, NULL, &v, &err) < 0) {
        fprintf(stderr, "bench_json: the Node peer failed (status %d); output: %.200s\n", st,
                outp.data ? outp.data : "");
        arena_cleanup(&a);
        goto out;
    }
    const struct json_value *res = json_get(v, "results");
    for (size_t i = 0; i < n && json_is(res, JSON_ARRAY) && i < res->len; i++) {
        const struct json_value *r = res->u.items[i];
        const struct json_value *pp = json_get(r, "parse_mbps"), *ww = json_get(r, "write_mbps");
        if (!json_is(pp, JSON_NUMBER) || !json_is(ww, JSON_NUMBER)) continue;
        docs[i].node_parse = pp->u.n.d;
        docs[i].node_write = ww->u.n.d;
        docs[i].have_node = true;
    }
    arena_cleanup(&a);
out:
    buf_cleanup(&cmd);
    buf_cleanup(&outp);
}

static void write_temp(struct doc *d)
{
    snprintf(d->path, sizeof d->path, "/tmp/keel-bench-json-XXXXXX");
    int fd = mkstemp(d->path);
    if (fd < 0 || write(fd, d->text.data, d->text.len) != (ssize_t)d->text.len) {
        fprintf(stderr, "bench_json: cannot write %s\n", d->path);
        exit(1);
    }
    close(fd);
}

int main(int argc, char **argv)
{
    double seconds = 0.3;
    int repeat = 5;
    bool peer = true;
    const char *only_doc = NULL, *only_op = NULL;
    bool keep_heap = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-peer")) peer = false;
        else if (!strcmp(argv[i], "--doc") && i + 1 < argc) only_doc = argv[++i];
        else if (!strcmp(argv[i], "--op") && i + 1 < argc) only_op = argv[++i];
        else if (!strcmp(argv[i], "--iterations") && i + 1 < argc) iterations = atol(argv[++i]);
        else if (!strcmp(argv[i], "--keep-heap")) keep_heap = true;
        else if (!strcmp(argv[i], "--cpu-time")) cpu_time = true;
        else {
            fprintf(stderr, "usage: bench_json [--seconds S] [--repeat N] [--no-peer] "
                            "[--doc tool-call|transcript] [--op parse|write] "
                            "[--iterations N] [--keep-heap] [--cpu-time]\n");
            return 2;
        }
    }
    if (seconds <= 0) seconds = 0.3;
    if (repeat < 1) repeat = 1;
    if (keep_heap) {
#ifdef __GLIBC__
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
#else
        fprintf(stderr, "bench_json: --keep-heap needs glibc; ignored\n");
#endif
    }
    if (iterations > 1000000) iterations = 1000000;
    if (iterations > 0) repeat = 1, peer = false;
    if (only_doc && strcmp(only_doc, "tool-call") && strcmp(only_doc, "transcript")) {
        fprintf(stderr, "bench_json: unknown --doc %s; use tool-call or transcript\n", only_doc);
        return 2;
    }
    if (only_op && strcmp(only_op, "parse") && strcmp(only_op, "write")) {
        fprintf(stderr, "bench_json: unknown --op %s; use parse or write\n", only_op);
        return 2;
    }

    struct doc docs[2];
    memset(docs, 0, sizeof docs);
    docs[0].name = "tool-call";
    buf_init(&docs[0].text);
    buf_append(&docs[0].text, TOOL_CALL, sizeof TOOL_CALL - 1);
    docs[1].name = "transcript";
    buf_init(&docs[1].text);
    gen_transcript(&docs[1].text);
    for (int i = 0; i < 2; i++) write_temp(&docs[i]);

    bool want[2][2]; /* [doc][op] */
    for (int i = 0; i < 2; i++) {
        bool d = !only_doc || !strcmp(only_doc, docs[i].name);
        want[i][0] = d && (!only_op || !strcmp(only_op, "parse"));
        want[i][1] = d && (!only_op || !strcmp(only_op, "write"));
        if (want[i][0]) docs[i].keel_parse = measure_parse(&docs[i], seconds, repeat);
        if (want[i][1]) docs[i].keel_write = measure_write(&docs[i], seconds, repeat);
    }
    if (peer) run_peer(docs, 2, seconds, repeat);

    printf("%-11s %9s  %-6s %10s %10s %8s\n", "document", "bytes", "op", "Keel MB/s",
           "Node MB/s", "Keel/Node");
    for (int i = 0; i < 2; i++) {
        const struct doc *d = &docs[i];
        const char *ops[2] = {"parse", "write"};
        double k[2] = {d->keel_parse, d->keel_write}, nd[2] = {d->node_parse, d->node_write};
        for (int o = 0; o < 2; o++) {
            if (!want[i][o]) continue;
            if (d->have_node)
                printf("%-11s %9zu  %-6s %10.1f %10.1f %8.2fx\n", d->name, d->text.len, ops[o],
                       k[o], nd[o], nd[o] > 0 ? k[o] / nd[o] : 0.0);
            else
                printf("%-11s %9zu  %-6s %10.1f %10s %9s\n", d->name, d->text.len, ops[o], k[o],
                       "-", "-");
        }
    }
    for (int i = 0; i < 2; i++) {
        unlink(docs[i].path);
        buf_cleanup(&docs[i].text);
    }
    return 0;
}
