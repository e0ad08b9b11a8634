/*
 * common.c — helpers shared by the commands: error printing and exit codes.
 */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cli_exit_for(int code)
{
    switch (code) {
    case 0: return CLI_OK;
    case KEEL_EINVAL:
    case KEEL_ELIMIT:
    case KEEL_ESCHEMA: return CLI_BADINPUT;
    case KEEL_ENOENT: return CLI_NOTFOUND;
    case KEEL_EAUTH:
    case KEEL_EDENIED: return CLI_AUTH;
    case KEEL_EIO:
    case KEEL_EPROTO:
    case KEEL_ETIMEOUT: return CLI_IO;
    case KEEL_ESTATE:
    case KEEL_EEXIST:
    case KEEL_EBUSY: return CLI_CONFLICT;
    default: return CLI_INTERNAL;
    }
}

int cli_error(const char *cmd, const struct keel_err *err)
{
    char msg[2 * KEEL_ERR_MSG_MAX];
    keel_err_format(err, msg, sizeof msg);
    fprintf(stderr, "keel %s: %s\n", cmd, msg);
    return cli_exit_for(err->code);
}

int cli_usage_error(const struct cli_command *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "keel %s: ", c->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun `keel %s --help` for usage.\n", c->name);
    return CLI_USAGE;
}

bool cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
    }
    return false;
}
