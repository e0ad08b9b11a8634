/*
 * time.c — clocks, timestamps and duration parsing.
 */
#include "util.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t keel_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t keel_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void keel_format_time(int64_t wall_ms, char out[32])
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(wall_ms % 1000));
}

int keel_parse_duration(const char *s, int64_t *out_ms, struct keel_err *err)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    const char *p = s;
    int64_t total = 0;
    if (!*p) return keel_fail(err, KEEL_EINVAL, "empty duration; write e.g. \"30s\", \"5m\", \"72h\"");
    while (*p) {
        if (*p < '0' || *p > '9')
            return keel_fail(err, KEEL_EINVAL,
                             "bad duration \"%s\": expected a number at \"%s\" (e.g. \"90s\", \"1h30m\")",
                             s, p);
        int64_t n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n > (INT64_MAX - 9) / 10)
                return keel_fail(err, KEEL_EINVAL, "duration \"%s\" is too large", s);
            n = n * 10 + (*p++ - '0');
        }
        size_t best = KEEL_ARRAY_LEN(units);
        for (size_t i = 0; i < KEEL_ARRAY_LEN(units); i++) {
            size_t ul = strlen(units[i].unit);
            if (strncmp(p, units[i].unit, ul) == 0 &&
                (best == KEEL_ARRAY_LEN(units) || ul > strlen(units[best].unit)))
                best = i;
        }
        if (best == KEEL_ARRAY_LEN(units))
            return keel_fail(err, KEEL_EINVAL,
                             "bad duration \"%s\": unit must be one of ms, s, m, h, d", s);
        if (n > INT64_MAX / units[best].ms || total > INT64_MAX - n * units[best].ms)
            return keel_fail(err, KEEL_EINVAL, "duration \"%s\" is too large", s);
        total += n * units[best].ms;
        p += strlen(units[best].unit);
    }
    *out_ms = total;
    return 0;
}
