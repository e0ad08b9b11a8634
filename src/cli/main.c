/*
 * main.c — `keel`: dispatches argv[1] to a command from the table in
 * commands.def.  The binary is the daemon (`keel serve`), the CLI, and the
 * MCP gateway; every mode is a command.
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

static const struct cli_command *const commands[] = {
#define KEEL_COMMAND(name) &cmd_##name,
#include "commands.def"
#undef KEEL_COMMAND
};

static void print_help(FILE *out)
{
    fprintf(out, "usage: keel <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < KEEL_ARRAY_LEN(commands); i++)
        fprintf(out, "  %-12s %s\n", commands[i]->name, commands[i]->summary);
    fprintf(out, "\nRun `keel <command> --help` for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        if (argc > 2) {
            for (size_t i = 0; i < KEEL_ARRAY_LEN(commands); i++)
                if (!strcmp(commands[i]->name, argv[2])) {
                    fputs(commands[i]->usage, stdout);
                    return CLI_OK;
                }
        }
        print_help(stdout);
        return CLI_OK;
    }
    if (!strcmp(name, "--version")) name = "version";
    for (size_t i = 0; i < KEEL_ARRAY_LEN(commands); i++) {
        if (strcmp(commands[i]->name, name) != 0) continue;
        if (cli_wants_help(argc - 1, argv + 1)) {
            fputs(commands[i]->usage, stdout);
            return CLI_OK;
        }
        return commands[i]->run(argc - 1, argv + 1);
    }
    fprintf(stderr, "keel: unknown command '%s'; run `keel help` for the list\n", name);
    return CLI_USAGE;
}
