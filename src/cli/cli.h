/*
 * cli.h — the command table and the helpers every command shares.
 *
 * Each command lives in its own file, cmd_<name>.c, and exports one
 * descriptor `const struct cli_command cmd_<name>`; commands.def lists them
 * (one KEEL_COMMAND line each), and main.c dispatches from that table.
 *
 * Exit codes (documented in docs/cli/README.md; never change one):
 *   0  success
 *   1  the command ran and the answer is "no" (invalid instance, deny,
 *      failed verification, a run that failed)
 *   2  usage error (unknown flag, missing argument)
 *   3  bad input (a file or document that does not parse or validate)
 *   4  not found (run, workflow, approval, file)
 *   5  authentication or permission refused
 *   6  I/O or connection failure (daemon not reachable, disk error)
 *   7  conflict with the current state (e.g. deciding a decided approval)
 *  70  internal error (a bug in Keel)
 */
#ifndef KEEL_CLI_H
#define KEEL_CLI_H

#include "../util/util.h"

enum cli_exit {
    CLI_OK = 0,
    CLI_NO = 1,
    CLI_USAGE = 2,
    CLI_BADINPUT = 3,
    CLI_NOTFOUND = 4,
    CLI_AUTH = 5,
    CLI_IO = 6,
    CLI_CONFLICT = 7,
    CLI_INTERNAL = 70,
};

struct cli_command {
    const char *name;    /* the word after `keel` */
    const char *summary; /* one line for `keel help` */
    const char *usage;   /* full help text printed by --help */
    /* argv[0] is the command name.  Returns an exit code (enum cli_exit). */
    int (*run)(int argc, char **argv);
};

#define KEEL_COMMAND(name) extern const struct cli_command cmd_##name;
#include "commands.def"
#undef KEEL_COMMAND

/* Prints "keel <cmd>: <formatted err>" to stderr and returns the exit code
 * that matches err->code. */
int cli_error(const char *cmd, const struct keel_err *err);
/* Maps a KEEL_E* code to an exit code. */
int cli_exit_for(int keel_code);
/* Prints "keel <cmd>: <message>" and the usage hint; returns CLI_USAGE. */
int cli_usage_error(const struct cli_command *c, const char *fmt, ...) KEEL_PRINTF(2, 3);
/* True if argv holds --help or -h (then the caller prints c->usage). */
bool cli_wants_help(int argc, char **argv);

#endif
