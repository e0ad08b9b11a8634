/*
 * json_fixture.h — JSON from a test's literal text, for every runner that
 * needs it (a runner is one .c file, so this is static inline).
 */
#ifndef KEEL_TEST_JSON_FIXTURE_H
#define KEEL_TEST_JSON_FIXTURE_H

#include "json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses a test's literal JSON text into a; aborts (saying why) when the
 * text itself is broken, which is a bug in the test. */
static inline struct json_value *test_parse(struct arena *a, const char *text)
{
    struct json_value *v = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    if (json_parse(a, text, strlen(text), NULL, &v, &err) != 0) {
        fprintf(stderr, "bad test JSON: %s\n  %s\n", err.msg, text);
        abort();
    }
    return v;
}

#endif
