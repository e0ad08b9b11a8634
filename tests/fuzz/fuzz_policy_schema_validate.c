/*
 * fuzz_policy_schema_validate.c — libFuzzer target for strict validation: the
 * input is a schema and a policy text separated by a line "%%".  Both are
 * parsed; if both parse, the policies are validated (every diagnostic must
 * have a position) and a request/entity JSON check runs on an empty
 * document.  Nothing may crash, hang or leak whatever the types in play.
 */
#include "json/json.h"
#include "policy/policy.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 16)) return 0;
    const char *text = (const char *)data;
    const char *sep = NULL;
    for (size_t i = 0; i + 3 <= size; i++)
        if (text[i] == '%' && text[i + 1] == '%' && (i == 0 || text[i - 1] == '\n')) {
            sep = text + i;
            break;
        }
    if (!sep) return 0;
    size_t slen = (size_t)(sep - text);
    const char *ptext = sep + 2;
    size_t plen = size - slen - 2;
    struct policy_schema *s = NULL;
    struct keel_err err;
    if (policy_schema_parse(text, slen, "schema", &s, &err) != 0) return 0;
    struct policy_set *set = NULL;
    if (policy_set_parse(ptext, plen, "policies", 0, &set, &err) == 0) {
        struct policy_diag_list d;
        policy_diag_list_init(&d);
        int n = policy_validate(s, set, &d);
        size_t errors = 0;
        for (size_t i = 0; i < d.len; i++) {
            if (d.items[i].line <= 0 || d.items[i].column <= 0 || !d.items[i].message[0])
                abort();
            if (!d.items[i].warning) errors++;
        }
        if (n < 0 || (size_t)n != errors) abort();
        policy_diag_list_cleanup(&d);
        policy_set_free(set);
    }
    struct arena a;
    arena_init(&a);
    struct json_value *empty;
    if (json_parse(&a, "[]", 2, NULL, &empty, &err) == 0)
        policy_validate_entities_json(s, empty, &err);
    arena_cleanup(&a);
    policy_schema_free(s);
    return 0;
}
