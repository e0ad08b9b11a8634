/*
 * fuzz_model_config.c — libFuzzer target for model_gateway_new, the parser
 * of keel.yaml's "models:" section (src/model/config.c).  The input is the
 * section as JSON (what the YAML loader hands over, with positions).
 *
 * Key references: {env: NAME} reads the environment (harmless); {file:
 * PATH} would read any file the fuzzer names, so inputs whose file
 * references are not plain names are skipped, and plain names resolve in
 * a scratch folder holding one key file, "model.key".
 *
 * Properties beyond "no crash, no leak, no UB": a refused section gives
 * KEEL_EINVAL with a JSON Pointer under /models and no gateway; an accepted
 * one routes a request to a declared model with declared fallbacks and a
 * deadline in range, and its lookups answer consistently.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model.h"

static void check(int cond)
{
    if (!cond) abort();
}

static char scratch_dir[64];

static void scratch_remove(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/model.key", scratch_dir);
    unlink(path);
    rmdir(scratch_dir);
}

static const char *scratch(void)
{
    if (!scratch_dir[0]) {
        snprintf(scratch_dir, sizeof scratch_dir, "/tmp/keel-fuzz-model-XXXXXX");
        if (!mkdtemp(scratch_dir)) abort();
        char path[128];
        snprintf(path, sizeof path, "%s/model.key", scratch_dir);
        FILE *f = fopen(path, "w");
        if (!f) abort();
        fputs("sk-fuzz-key\n", f);
        fclose(f);
        setenv("KEEL_FUZZ_MODEL_KEY", "sk-fuzz-env", 1);
        atexit(scratch_remove);
    }
    return scratch_dir;
}

/* Is every api_key.file value a plain name (no '/', not "." or "..")? */
static bool safe_files(const struct json_value *models)
{
    const struct json_value *ps = json_get(models, "providers");
    for (uint32_t i = 0; json_is(ps, JSON_OBJECT) && i < ps->len; i++) {
        const struct json_value *f = json_get(json_get(ps->u.members[i].value, "api_key"), "file");
        if (!f) continue;
        if (!json_is(f, JSON_STRING)) continue; /* refused before any read */
        if (memchr(f->u.s.str, '/', f->len) || f->u.s.str[0] == '.' || f->len == 0) return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = scratch();
    struct arena a;
    arena_init(&a);
    struct json_value *v = NULL;
    struct keel_err err;
    struct json_parse_opts opts = {.max_depth = 64};
    if (json_parse(&a, (const char *)data, size, &opts, &v, &err) != 0 || !safe_files(v)) {
        arena_cleanup(&a);
        return 0;
    }
    struct model_gateway *g = NULL;
    keel_err_clear(&err);
    int rc = model_gateway_new(v, "keel.yaml", dir, &g, &err);
    if (rc != 0) {
        check(rc == KEEL_EINVAL);
        check(g == NULL);
        check(!strncmp(err.path, "/models", 7));
        check(!strcmp(err.file, "keel.yaml"));
        check(err.msg[0] != '\0');
        arena_cleanup(&a);
        return 0;
    }
    struct json_value *msgs = json_array(&a);
    struct model_request r = {.messages = msgs, .tag = "triage", .agent = "support/drafter"};
    struct model_route_choice c;
    if (model_route(g, &r, &c, &err) == 0) {
        check(c.model && model_gateway_has(g, c.model));
        check(model_context_tokens(g, c.model) > 0);
        check(model_cost_usd(g, c.model, 1000, 1000) >= 0);
        /* a deadline from keel.yaml is 100 ms to 24 h, named by its setting;
         * the built-in one is 5 minutes */
        check(c.deadline_ms >= 100 && c.deadline_ms <= 86400000);
        check(c.deadline_ref ? !strncmp(c.deadline_ref, "models.", 7) &&
                                   strstr(c.deadline_ref, ".deadline")
                             : c.deadline_ms == 300000);
        for (size_t i = 0; i < 8 && c.fallbacks[i]; i++) {
            check(model_gateway_has(g, c.fallbacks[i]));
            check(strcmp(c.fallbacks[i], c.model) != 0);
        }
    } else {
        check(err.code == KEEL_ENOENT);
    }
    model_gateway_free(g);
    arena_cleanup(&a);
    return 0;
}
