/*
 * fuzz_api_request.c — the API's input parsers: the route matcher (method
 * and path as a client sends them, placeholders captured with their size
 * cap), the --listen address parser, and the request-body parser used by
 * every POST route.  Input: "METHOD PATH\nBODY".
 */
#include "api/internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    char *nl = memchr(s, '\n', size);
    const char *body = "";
    size_t body_len = 0;
    if (nl) {
        *nl = '\0';
        body = nl + 1;
        body_len = size - (size_t)(nl + 1 - s);
    }
    char *sp = strchr(s, ' ');
    const char *method = s, *path = "";
    if (sp) {
        *sp = '\0';
        path = sp + 1;
    }
    struct api_request rq;
    memset(&rq, 0, sizeof rq);
    bool known;
    const struct api_route *r = api_route_match(method, path, &rq, &known);
    if (r)
        for (int i = 0; i < rq.nparams; i++)
            if (strlen(rq.params[i]) >= API_PARAM_MAX) abort();
    char host[64];
    int port;
    if (api_parse_listen(path, host, sizeof host, &port, NULL) == 0 && (port < 0 || port > 65535))
        abort();
    struct arena a;
    arena_init(&a);
    rq.arena = &a;
    rq.body = body;
    rq.body_len = body_len;
    struct json_value *v;
    if (api_body_object(&rq, &v, NULL) == 0 && !json_is(v, JSON_OBJECT)) abort();
    arena_cleanup(&a);
    free(s);
    return 0;
}
