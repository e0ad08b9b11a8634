/*
 * bench.c — authorization latency of Keel's Cedar engine next to the
 * reference implementation (cedar-wasm with pre-parsed policies:
 * preparsePolicySet + statefulIsAuthorized) on the same inputs, in the
 * same run.
 *
 * Workload (realistic for agents calling tools): N policies (10, 100,
 * 1,000, 10,000) over agents in teams in departments in orgs (hierarchy
 * depth 3) and tools in servers in categories; most policies name one
 * tool, some name a team, an org or an agent, a few forbid; conditions
 * look at the agent's attributes and the call's context.  Each request is
 * one agent calling one tool, so it matches few of the N policies.
 *
 * Keel authorizes against an entity store built once (as the daemon does);
 * cedar-wasm gets, per request, only the entities that request touches (the
 * principal and resource with their ancestors) — its best case, since its
 * stateful API re-reads entities on every call.  Both sides time each call
 * individually; the table shows median and p99 per authorization and the
 * ratio.  Decisions are compared (allow counts must agree).
 *
 * Four workloads.  "scaled" (the original one): 500 agents at every size, so
 * the policies naming one agent grow with N (0.04 per agent at 100, 4 at
 * 10,000) and so do the policies a request has to evaluate.  "fixed": N/5
 * agents, so every agent is named by the same number of policies at every
 * size and a request has the same number of applicable policies whatever N
 * is (the store grows with N: more policies come with more agents and
 * tools).  "hot": the fixed workload's sets and stores, but the requests
 * only name 20 agents and 100 tools at every size, so the data a request
 * touches for its own agent and tool is equally warm at every size: what
 * remains between sizes is what the total policy count costs by itself.
 * "store": the fixed workload's policies at each size, but one store at
 * every size (the fixed store of 10,000 policies: 2,000 agents, 10,000
 * tools) and requests drawn from all of it, so the data a request reads is
 * equally cold at every size and the only variable is the policy count
 * (the policies at size N name the first N/5 agents and N tools, so a
 * request's applicable policies grow with N: see eval/req).
 * The table shows, per request, how many policies Keel evaluated
 * (candidates left after its index and scope filter), and the median over
 * the requests that evaluated exactly one (the global forbid: the same
 * work at every size, so what remains between sizes is the cost of the
 * set's size and of cold data).
 *
 * Before each timed call the request itself is read once (the daemon
 * authorizes a request it has just built, so its uids and context are in
 * the cache); --cold-request skips that (the figures before 2026-11-26 02:30).
 *
 * usage: bench_policy [--no-peer] [--cold-request] [--rounds R] [--size N] [--workload
 * scaled|fixed|hot|store|all]  (--size: that one set size only, e.g. for `valgrind
 * --tool=callgrind --toggle-collect=policy_authorize`; default: all
 * workloads)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json/json.h"
#include "policy/policy.h"

#define NREQ 1000
#define AGENTS 500 /* the scaled workload; the fixed one has N / 5 */
#define TEAMS 50
#define DEPTS 10
#define ORGS 3
#define SERVERS 40
#define CATEGORIES 5
#define STORE_AGENTS 2000 /* the store workload's store at every size: the fixed */
#define STORE_TOOLS 10000 /* workload's store at 10,000 policies */

static int agents = AGENTS;   /* of the workload being generated: what the policies name */
static int store_agents = 0, store_tools = 0; /* the store's (0: agents, and N tools) */
static int req_agents = 0, req_tools = 0; /* requests name only these (0: all) */

static uint32_t rng = 12345;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng % n;
}

static void gen_policies(struct buf *b, int n)
{
    /* two global policies every request evaluates */
    buf_puts(b, "@id(\"suspended\")\nforbid(principal, action, resource) when { principal has "
                "suspended && principal.suspended };\n");
    buf_puts(b, "@id(\"read-all\")\npermit(principal in Org::\"o0\", action == Action::\"read\", "
                "resource);\n");
    for (int i = 2; i < n; i++) {
        int k = i % 10;
        if (k < 6)
            buf_printf(b,
                       "@id(\"p%d\")\npermit(principal in Team::\"t%d\", action == Action::\"call\", "
                       "resource == Tool::\"tool%d\") when { context.args.size < 1000 && "
                       "principal.level >= 2 };\n",
                       i, i % TEAMS, i);
        else if (k < 8)
            buf_printf(b,
                       "@id(\"p%d\")\npermit(principal == Agent::\"a%d\", action in "
                       "[Action::\"read\", Action::\"call\"], resource in Server::\"s%d\") when { "
                       "context.time < 2000 };\n",
                       i, i % agents, i % SERVERS);
        else if (k < 9)
            buf_printf(b,
                       "@id(\"p%d\")\nforbid(principal, action == Action::\"call\", resource == "
                       "Tool::\"tool%d\") when { context.args has dangerous && "
                       "context.args.dangerous };\n",
                       i, i);
        else
            buf_printf(b,
                       "@id(\"p%d\") @approval(\"leads\")\npermit(principal in Org::\"o%d\", action "
                       "== Action::\"call\", resource == Tool::\"tool%d\") unless { "
                       "principal.level < 1 };\n",
                       i, i % ORGS, i);
    }
}

static void entity(struct buf *b, bool *first, const char *type, int id, const char *attrs,
                   const char *ptype, int pid)
{
    buf_printf(b, "%s{\"uid\":{\"type\":\"%s\",\"id\":\"%s%d\"},\"attrs\":{%s},\"parents\":[",
               *first ? "" : ",", type,
               !strcmp(type, "Agent") ? "a" : !strcmp(type, "Team") ? "t"
               : !strcmp(type, "Dept")  ? "d" : !strcmp(type, "Org") ? "o"
               : !strcmp(type, "Tool")  ? "tool" : !strcmp(type, "Server") ? "s" : "c",
               id, attrs);
    if (ptype)
        buf_printf(b, "{\"type\":\"%s\",\"id\":\"%s%d\"}", ptype,
                   !strcmp(ptype, "Team") ? "t" : !strcmp(ptype, "Dept") ? "d"
                   : !strcmp(ptype, "Org") ? "o" : !strcmp(ptype, "Server") ? "s" : "c",
                   pid);
    buf_puts(b, "]}");
    *first = false;
}

/* The whole store (for Keel) or one request's slice (for cedar-wasm). */
static void gen_entities(struct buf *b, int ntools, int agent, int tool)
{
    bool first = true;
    char attrs[128];
    buf_putc(b, '[');
    int nagents = store_agents ? store_agents : agents;
    if (store_tools) ntools = store_tools;
    for (int a = 0; a < nagents; a++) {
        if (agent >= 0 && a != agent) continue;
        snprintf(attrs, sizeof attrs, "\"level\":%d%s", a % 4,
                 a % 97 == 0 ? ",\"suspended\":true" : "");
        entity(b, &first, "Agent", a, attrs, "Team", a % TEAMS);
    }
    for (int t = 0; t < TEAMS; t++) {
        if (agent >= 0 && t != agent % TEAMS) continue;
        entity(b, &first, "Team", t, "", "Dept", t % DEPTS);
    }
    for (int d = 0; d < DEPTS; d++) {
        if (agent >= 0 && d != (agent % TEAMS) % DEPTS) continue;
        entity(b, &first, "Dept", d, "", "Org", d % ORGS);
    }
    for (int o = 0; o < ORGS; o++) {
        if (agent >= 0 && o != ((agent % TEAMS) % DEPTS) % ORGS) continue;
        entity(b, &first, "Org", o, "", NULL, 0);
    }
    for (int t = 0; t < ntools; t++) {
        if (tool >= 0 && t != tool) continue;
        entity(b, &first, "Tool", t, "", "Server", t % SERVERS);
    }
    for (int s = 0; s < SERVERS; s++) {
        if (tool >= 0 && s != tool % SERVERS) continue;
        entity(b, &first, "Server", s, "", "Category", s % CATEGORIES);
    }
    for (int c = 0; c < CATEGORIES; c++) {
        if (tool >= 0 && c != (tool % SERVERS) % CATEGORIES) continue;
        entity(b, &first, "Category", c, "", NULL, 0);
    }
    buf_putc(b, ']');
}

struct req {
    int agent, tool, size, time, dangerous;
};

static void gen_requests(struct req *r, int ntools)
{
    int nagents = store_agents ? store_agents : agents;
    if (store_tools) ntools = store_tools;
    if (req_agents && req_agents < nagents) nagents = req_agents;
    if (req_tools && req_tools < ntools) ntools = req_tools;
    for (int i = 0; i < NREQ; i++) {
        r[i].agent = (int)rnd((uint32_t)nagents);
        /* mostly tools the agent's team may call, so many requests allow */
        r[i].tool = (int)rnd(10) < 6 ? (int)((rnd((uint32_t)(ntools / TEAMS + 1)) * TEAMS +
                                             (uint32_t)(r[i].agent % TEAMS)) % (uint32_t)ntools)
                                   : (int)rnd((uint32_t)ntools);
        r[i].size = (int)rnd(1500);
        r[i].time = (int)rnd(2500);
        r[i].dangerous = rnd(20) == 0;
    }
}

static void request_json(struct buf *b, const struct req *r)
{
    buf_printf(b,
               "{\"principal\":{\"type\":\"Agent\",\"id\":\"a%d\"},\"action\":{\"type\":\"Action\","
               "\"id\":\"call\"},\"resource\":{\"type\":\"Tool\",\"id\":\"tool%d\"},\"context\":{"
               "\"args\":{\"size\":%d%s},\"time\":%d}}",
               r->agent, r->tool, r->size, r->dangerous ? ",\"dangerous\":true" : "", r->time);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int write_file(const char *path, const struct buf *b)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fwrite(b->data, 1, b->len, f);
    fclose(f);
    return 0;
}

struct result {
    double median_us, p99_us;
    double req_p99_us; /* p99 over the requests of each one's median over the rounds */
    long allows;
    double evaluated; /* policies evaluated per request (Keel) */
    double ev1_median_us; /* median over the calls of requests that evaluated one policy */
    double ev1_share;     /* the share of such requests */
};

static volatile unsigned sink;

static unsigned touch_bytes(const char *s, uint32_t n)
{
    unsigned x = 0;
    for (uint32_t i = 0; i < n; i++) x += (unsigned char)s[i];
    return x;
}

static unsigned touch_record(const struct policy_record *r)
{
    unsigned x = r->len;
    for (uint32_t i = 0; i < r->len; i++) {
        x += touch_bytes(r->fields[i].key, r->fields[i].key_len) + r->fields[i].value.type;
        if (r->fields[i].value.type == POLICY_RECORD) x += touch_record(r->fields[i].value.u.rec);
    }
    return x;
}

/* Reads the whole request (uids and context) before it is timed: the
 * daemon authorizes a request it has just built from JSON, so the request
 * itself is in the cache; what is cold is the set and the store. */
static bool touch = true; /* --cold-request: false */

static void touch_request(const struct policy_request *r)
{
    if (!touch) return;
    const struct policy_euid *u[3] = {&r->principal, &r->action, &r->resource};
    unsigned x = touch_record(&r->context);
    for (int d = 0; d < 3; d++)
        x += touch_bytes(u[d]->type, u[d]->type_len) + touch_bytes(u[d]->id, u[d]->id_len);
    sink += x;
}

static int run_keel(int n, const struct req *reqs, int rounds, struct result *out)
{
    struct buf pol, ents;
    buf_init(&pol);
    buf_init(&ents);
    gen_policies(&pol, n);
    gen_entities(&ents, n, -1, -1);
    struct keel_err err;
    struct policy_set *set;
    if (policy_set_parse(pol.data, pol.len, "bench.cedar", POLICY_PARSE_ID_ANNOTATIONS, &set,
                         &err) < 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    struct arena a;
    arena_init(&a);
    struct json_value *ej;
    struct policy_entities *es;
    if (json_parse(&a, ents.data, ents.len, NULL, &ej, &err) < 0 ||
        policy_entities_parse_json(ej, NULL, &es, &err) < 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    struct policy_request *rq = calloc(NREQ, sizeof *rq);
    for (int i = 0; i < NREQ; i++) {
        struct buf b;
        buf_init(&b);
        request_json(&b, &reqs[i]);
        struct json_value *j;
        if (json_parse(&a, b.data, b.len, NULL, &j, &err) < 0 ||
            policy_request_from_json(&a, j, NULL, &rq[i], &err) < 0) {
            fprintf(stderr, "bench: %s\n", err.msg);
            return -1;
        }
        buf_cleanup(&b);
    }
    struct policy_response resp;
    policy_response_init(&resp);
    for (int i = 0; i < NREQ; i++) { /* warm-up */
        touch_request(&rq[i]);
        policy_authorize(set, es, &rq[i], &resp);
    }
    size_t ns = (size_t)NREQ * (size_t)rounds;
    int64_t *t = malloc(ns * sizeof *t);
    long allows = 0, evaluated = 0;
    size_t k = 0;
    unsigned char *ev1 = calloc(NREQ, 1); /* request i evaluated exactly one policy */
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < NREQ; i++) {
            struct timespec t0, t1;
            touch_request(&rq[i]);
            clock_gettime(CLOCK_MONOTONIC, &t0);
            policy_authorize(set, es, &rq[i], &resp);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            t[k++] = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
            if (r == 0 && resp.decision == POLICY_ALLOW) allows++;
            if (r == 0) evaluated += (long)resp.nevaluated;
            if (r == 0) ev1[i] = resp.nevaluated == 1;
        }
    }
    /* the calls of requests doing the least work (the global forbid only):
     * the same work at every size, whatever the set makes applicable */
    int64_t *t1 = malloc(ns * sizeof *t1);
    size_t n1 = 0;
    for (size_t x = 0; x < ns; x++)
        if (ev1[x % NREQ]) t1[n1++] = t[x];
    qsort(t1, n1, sizeof *t1, cmp_i64);
    out->ev1_median_us = n1 ? (double)t1[n1 / 2] / 1000.0 : 0;
    out->ev1_share = (double)n1 / (double)ns;
    free(t1);
    free(ev1);
    /* each request's median over the rounds, then their p99: the slow
     * requests themselves, without the machine's one-off stalls */
    int64_t *m = malloc(NREQ * sizeof *m), *one = malloc((size_t)rounds * sizeof *one);
    for (int i = 0; i < NREQ; i++) {
        for (int r = 0; r < rounds; r++) one[r] = t[(size_t)r * NREQ + (size_t)i];
        qsort(one, (size_t)rounds, sizeof *one, cmp_i64);
        m[i] = one[rounds / 2];
    }
    qsort(m, NREQ, sizeof *m, cmp_i64);
    out->req_p99_us = (double)m[NREQ * 99 / 100] / 1000.0;
    free(m);
    free(one);
    qsort(t, ns, sizeof *t, cmp_i64);
    out->median_us = (double)t[ns / 2] / 1000.0;
    out->p99_us = (double)t[ns * 99 / 100] / 1000.0;
    out->allows = allows;
    out->evaluated = (double)evaluated / NREQ;
    free(t);
    free(rq);
    policy_response_cleanup(&resp);
    policy_entities_free(es);
    policy_set_free(set);
    arena_cleanup(&a);
    buf_cleanup(&pol);
    buf_cleanup(&ents);
    return 0;
}

/* Writes the inputs for the peer and runs it; it prints one JSON line. */
static int run_peer(const char *dir, int n, const struct req *reqs, int rounds,
                    struct result *out)
{
    struct buf pol, b;
    buf_init(&pol);
    buf_init(&b);
    gen_policies(&pol, n);
    char path[1024];
    snprintf(path, sizeof path, "%s/policies.cedar", dir);
    if (write_file(path, &pol) < 0) return -1;
    buf_putc(&b, '[');
    for (int i = 0; i < NREQ; i++) {
        if (i) buf_putc(&b, ',');
        buf_puts(&b, "{\"request\":");
        request_json(&b, &reqs[i]);
        buf_puts(&b, ",\"entities\":");
        gen_entities(&b, n, reqs[i].agent, reqs[i].tool);
        buf_putc(&b, '}');
    }
    buf_putc(&b, ']');
    snprintf(path, sizeof path, "%s/requests.json", dir);
    if (write_file(path, &b) < 0) return -1;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s/tests/peers/node %s/bench/policy/peer.mjs %s %d",
             KEEL_SOURCE_DIR, KEEL_SOURCE_DIR, dir, rounds);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[512] = "";
    if (!fgets(line, sizeof line, p)) line[0] = '\0';
    int rc = pclose(p);
    buf_cleanup(&pol);
    buf_cleanup(&b);
    if (rc != 0 || sscanf(line, "{\"median_us\":%lf,\"p99_us\":%lf,\"allows\":%ld", &out->median_us,
                          &out->p99_us, &out->allows) != 3) {
        fprintf(stderr, "bench: peer failed (%s): %s\n", cmd, line);
        return -1;
    }
    return 0;
}

/* Runs one workload at every size (or only `only`); returns 0, or 1 when
 * the peer failed or disagreed. */
static int run_workload(const char *dir, int workload, int only, int rounds, bool *peer)
{
    static const int sizes[] = {10, 100, 1000, 10000};
    static const char *const about[] = {
        "scaled: 500 agents at every size (policies naming an agent grow with N)",
        "fixed: N/5 agents, each named by the same number of policies at every size",
        "hot: as fixed, but requests name only 20 agents and 100 tools at every size",
        ("store: the fixed policies, but one store (2,000 agents, 10,000 tools) at every size "
         "and requests drawn from all of it"),
    };
    bool fixed = workload > 0;
    int status = 0;
    printf("workload %s\n", about[workload]);
    printf("%8s | %12s %10s %10s | %14s %12s | %7s %7s | %8s | %15s | %s\n", "policies",
           "keel median", "keel p99", "req p99", "wasm median", "wasm p99", "x med", "x p99",
           "eval/req", "med eval=1", "allows keel/wasm");
    for (size_t s = 0; s < KEEL_ARRAY_LEN(sizes); s++) {
        int n = sizes[s];
        if (only && n != only) continue;
        agents = fixed ? (n / 5 > 0 ? n / 5 : 1) : AGENTS;
        req_agents = workload == 2 ? 20 : 0;
        req_tools = workload == 2 ? 100 : 0;
        store_agents = workload == 3 ? STORE_AGENTS : 0;
        store_tools = workload == 3 ? STORE_TOOLS : 0;
        struct req *reqs = malloc(NREQ * sizeof *reqs);
        rng = 12345u + (uint32_t)(workload == 3 ? 10000 : n); /* store: the same requests */
        gen_requests(reqs, n);
        struct result k, w = {0, 0, 0, -1, 0, 0, 0};
        if (run_keel(n, reqs, rounds, &k) < 0) exit(1);
        /* cedar-wasm evaluates every policy on every call: fewer rounds for big sets */
        int peer_rounds = n >= 1000 ? 1 : rounds > 5 ? 5 : rounds;
        if (*peer && run_peer(dir, n, reqs, peer_rounds, &w) < 0) {
            *peer = false;
            status = 1;
        }
        if (*peer) {
            printf("%8d | %9.3f us %7.3f us %7.3f us | %11.2f us %9.2f us | %6.0fx %6.0fx | "
                   "%8.2f | %5.3f us (%3.0f%%) | %ld/%ld%s\n",
                   n, k.median_us, k.p99_us, k.req_p99_us, w.median_us, w.p99_us,
                   w.median_us / k.median_us,
                   w.p99_us / k.p99_us, k.evaluated, k.ev1_median_us, 100 * k.ev1_share,
                   k.allows, w.allows,
                   k.allows == w.allows ? "" : "  DECISIONS DIFFER");
            if (k.allows != w.allows) status = 1;
        } else {
            printf("%8d | %9.3f us %7.3f us %7.3f us | %14s %12s | %7s %7s | %8.2f | %5.3f us "
                   "(%3.0f%%) | %ld\n",
                   n, k.median_us, k.p99_us, k.req_p99_us, "-", "-", "-", "-", k.evaluated,
                   k.ev1_median_us, 100 * k.ev1_share, k.allows);
        }
        free(reqs);
    }
    return status;
}

int main(int argc, char **argv)
{
    bool peer = true, run[4] = {true, true, true, true};
    int rounds = 20, only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-peer")) {
            peer = false;
        } else if (!strcmp(argv[i], "--cold-request")) {
            touch = false;
        } else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
            only = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--workload") && i + 1 < argc) {
            const char *w = argv[++i];
            bool all = !strcmp(w, "all");
            run[0] = all || !strcmp(w, "scaled");
            run[1] = all || !strcmp(w, "fixed");
            run[2] = all || !strcmp(w, "hot");
            run[3] = all || !strcmp(w, "store");
            if (!run[0] && !run[1] && !run[2] && !run[3]) {
                fprintf(stderr, "bench_policy: --workload takes scaled, fixed, hot, store or all, "
                                "not \"%s\"\n", w);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: bench_policy [--no-peer] [--cold-request] [--rounds R] [--size N] "
                            "[--workload scaled|fixed|hot|store|all]\n");
            return 2;
        }
    }
    if (rounds < 1) rounds = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    char dir[] = "/tmp/keel-bench-policy-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    printf("Cedar authorization latency per request (%d requests x %d rounds, hierarchy depth 3)\n",
           NREQ, rounds);
    int status = 0;
    for (int w = 0; w < 4; w++)
        if (run[w]) status |= run_workload(dir, w, only, rounds, &peer);
    char rm[256];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    if (system(rm) != 0) status = 1;
    return status;
}
