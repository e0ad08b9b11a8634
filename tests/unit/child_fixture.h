/*
 * child_fixture.h — for the runners whose tests start programs built next
 * to them as child processes (test_mcp: the example tool servers;
 * test_model_http: the mock model server): where those programs are, the
 * check that one was built (and, from json_fixture.h, JSON from a test's
 * literal text).
 *
 * A runner is one .c file (CMakeLists.txt links nothing else into it), so
 * everything here is static inline.
 */
#ifndef KEEL_TEST_CHILD_FIXTURE_H
#define KEEL_TEST_CHILD_FIXTURE_H

#include "json_fixture.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The folder of the running test binary: the build directory, where the
 * example tool servers and keel-mock-model are built too.  A static
 * string; "." when /proc/self/exe cannot be read. */
static inline const char *test_build_dir(void)
{
    static char dir[4096];
    if (!dir[0]) {
        ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
        if (n <= 0) return ".";
        dir[n] = '\0';
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
    }
    return dir;
}

/* Writes "<build dir>/<name>" to path (cap bytes) and returns whether that
 * program is there to run; if not, says on stderr which target to build. */
static inline bool test_built_program(const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", test_build_dir(), name);
    if (access(path, X_OK) == 0) return true;
    fprintf(stderr, "%s: %s is missing; build it first (ninja %s)\n", program_invocation_short_name,
            path, name);
    return false;
}

#endif
