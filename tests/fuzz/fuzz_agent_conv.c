/*
 * fuzz_agent_conv.c — agent_conv_build and agent_answer_value on arbitrary
 * journals.  Input: one event per line, "<kind> <payload JSON>"; the last
 * line is also tried as a model's final answer.  A journal is Keel's own
 * writing, but a damaged or hand-edited one must never crash the engine:
 * the conversation is rebuilt or KEEL_ECORRUPT is returned.
 */
#include "agent/agent.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    struct arena a;
    arena_init(&a);
    struct agent_event ev[256];
    size_t n = 0;
    const char *p = (const char *)data, *end = p + size;
    const char *last = NULL;
    size_t last_len = 0;
    while (p < end && n < 256) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *sp = memchr(p, ' ', (size_t)(le - p));
        if (sp) {
            struct json_value *v = NULL;
            struct keel_err err;
            if (json_parse(&a, sp + 1, (size_t)(le - sp - 1), NULL, &v, &err) == 0) {
                ev[n].seq = (int64_t)n + 1;
                ev[n].kind = arena_strndup(&a, p, (size_t)(sp - p));
                ev[n].actor = "agent:x/y";
                ev[n].payload = v;
                n++;
            }
            last = sp + 1;
            last_len = (size_t)(le - sp - 1);
        }
        p = nl ? nl + 1 : end;
    }
    struct agent_conv c;
    struct keel_err err;
    if (agent_conv_build(ev, n, "x/y", "s/0", &a, &c, &err) == 0 && c.last_message) {
        struct json_value *out;
        agent_answer_value(c.last_message, true, &a, &out, &err);
        agent_answer_value(c.last_message, false, &a, &out, &err);
    }
    if (last) {
        struct json_value *m = json_object(&a);
        json_object_setc(&a, m, "content", json_string(&a, last, last_len));
        struct json_value *out;
        agent_answer_value(m, true, &a, &out, &err);
    }
    arena_cleanup(&a);
    return 0;
}
