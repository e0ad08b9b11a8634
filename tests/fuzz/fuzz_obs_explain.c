/*
 * fuzz_obs_explain.c — libFuzzer target for the explain report: a journal
 * (a JSON array of events, as GET /v1/runs/{id}/events returns it) through
 * obs_explain and obs_explain_text, with and without a workflow version
 * (one with every step kind, a switch, a set and templates), and arbitrary
 * text through the condition path extractor.  A journal comes from Keel's
 * own store, but a damaged or foreign one must never crash the report:
 * any crash, leak or sanitizer report is a bug; errors are fine.
 *
 * Input: the first byte picks the mode (even: a journal and the workflow,
 * odd: a journal without it; 'c': the rest is a condition text).
 */
#include "obs/obs.h"
#include "workflow/workflow.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char wf_text[] =
    "name: fz\n"
    "identity: support/triage\n"
    "state:\n"
    "  a: {reducer: replace}\n"
    "  n: {reducer: append, initial: []}\n"
    "  m: {reducer: merge}\n"
    "  c: {reducer: add}\n"
    "steps:\n"
    "  - id: t\n"
    "    tool: s/x\n"
    "    args: {q: \"${input.q}\", b: \"${state.a.b[0]}\"}\n"
    "    save: a\n"
    "  - id: g\n"
    "    agent: team/ag\n"
    "    prompt: \"do ${state.a}\"\n"
    "    save: m\n"
    "  - id: w\n"
    "    switch:\n"
    "      - if: 'state.a.b == \"x\" && result.k has y'\n"
    "        goto: t\n"
    "      - if: 'state.n.contains(\"z\")'\n"
    "        goto: e\n"
    "    default: p\n"
    "  - id: p\n"
    "    set: {n: \"${state.a.b}\", c: 1}\n"
    "  - id: h\n"
    "    approval: {group: leads, message: \"ok ${input.q}?\"}\n"
    "  - id: e\n"
    "    succeed: {output: \"${state.m}\"}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct workflow *wf;
    if (!wf && workflow_load(wf_text, sizeof wf_text - 1, "fz.yaml", &wf, NULL, NULL) != 0) abort();
    if (size < 1 || size > (1u << 20)) return 0;
    struct arena a;
    arena_init(&a);
    if (data[0] == 'c') {
        char *text = arena_strndup(&a, (const char *)data + 1, size - 1);
        obs_condition_paths(text, &a);
        arena_cleanup(&a);
        return 0;
    }
    struct json_parse_opts o = {.dup = JSON_DUP_LAST, .max_depth = 64};
    struct json_value *events = NULL;
    if (json_parse(&a, (const char *)data + 1, size - 1, &o, &events, NULL) == 0) {
        struct json_value *report = NULL;
        if (obs_explain(NULL, events, data[0] % 2 ? NULL : wf, &a, &report, NULL) == 0) {
            struct buf out;
            buf_init(&out);
            obs_explain_text(report, &out, data[0] & 2);
            struct buf js;
            buf_init(&js);
            json_write(&js, report, 0, NULL);
            buf_cleanup(&js);
            buf_cleanup(&out);
        }
    }
    arena_cleanup(&a);
    return 0;
}
