/*
 * fuzz_workflow_load.c — libFuzzer target for the workflow loader: YAML or
 * JSON bytes through parse, compile, template rendering, and the keel.yaml
 * reader.  Any crash, leak, or sanitizer report is a bug; errors are fine.
 */
#include "workflow/workflow.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) return 0;
    const char *text = (const char *)data;
    struct workflow *wf = NULL;
    struct workflow_diags d;
    workflow_diags_init(&d);
    struct keel_err err;
    /* No file name: YAML or JSON is chosen by the first byte. */
    if (workflow_load(text, size, NULL, &wf, &d, &err) == 0) {
        struct arena a;
        arena_init(&a);
        struct json_value *vars = json_object(&a);
        json_object_setc(&a, vars, "input", json_get(wf->doc, "input") ? json_get(wf->doc, "input")
                                                                       : json_object(&a));
        json_object_setc(&a, vars, "state", json_object(&a));
        for (size_t i = 0; i < wf->nsteps; i++) {
            const struct workflow_step *s = &wf->steps[i];
            struct json_value *out;
            if (s->call.args) workflow_render(s->call.args, vars, &a, &out, NULL);
            if (s->kind == WORKFLOW_STEP_SWITCH) {
                int next;
                workflow_switch_next(s, vars, &a, &next, NULL);
            }
        }
        arena_cleanup(&a);
        workflow_free(wf);
    }
    workflow_diags_cleanup(&d);
    struct keel_config *cfg = NULL;
    if (keel_config_parse(text, size, "/fuzz/keel.yaml", &cfg, NULL, NULL) == 0)
        keel_config_free(cfg);
    return 0;
}
