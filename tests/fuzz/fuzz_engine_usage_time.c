/*
 * fuzz_engine_usage_time.c — libFuzzer target for engine_usage_time, the
 * parser of the time bounds of usage queries (?since=, ?until=, keel usage
 * --since/--until): RFC 3339 times and dates, "now", durations ago.
 *
 * Properties, for any input D (copied into a heap block of exactly
 * strlen(D)+1 bytes, so ASan catches a read past the terminator):
 *   - the answer is 0 or KEEL_EINVAL; a failure leaves the output alone
 *     and says something;
 *   - a success is a time at or after the epoch and never after now for a
 *     relative form;
 *   - a success before the year 10000 survives a round trip through
 *     keel_format_time (the form Keel prints times in) to the same ms.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define NOW 1764115200123LL /* 2025-11-26T00:00:00.123Z */
#define YEAR_10000 253402300800000LL

static void check(int cond)
{
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    /* Stop at an embedded NUL: the parser sees a C string. */
    size_t n = strlen(s);
    char *t = malloc(n + 1);
    memcpy(t, s, n + 1);
    free(s);

    struct keel_err err;
    keel_err_clear(&err);
    int64_t ms = -42;
    int rc = engine_usage_time(t, NOW, &ms, &err);
    check(rc == 0 || rc == KEEL_EINVAL);
    if (rc) {
        check(ms == -42);
        check(err.msg[0] != '\0');
    } else {
        check(ms >= 0);
        bool absolute = n >= 10 && t[4] == '-';
        if (!absolute) check(ms <= NOW);
        if (ms < YEAR_10000) {
            char text[32];
            keel_format_time(ms, text);
            int64_t back = -1;
            check(engine_usage_time(text, NOW, &back, NULL) == 0);
            check(back == ms);
        }
    }
    free(t);
    return 0;
}
