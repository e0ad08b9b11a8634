/*
 * client.h — how CLI commands talk to the daemon's HTTP API (client.c).
 *
 * Where the daemon is: --server URL, else $KEEL_SERVER, else
 * http://127.0.0.1:7400.  Which token: --token T, else $KEEL_TOKEN, else
 * the admin token in DATA/admin.token where DATA is --data DIR, else
 * $KEEL_DATA, else ./.keel.  API errors come back as struct keel_err with the
 * code named in the JSON error, so cli_error() gives the documented exit code.
 */
#ifndef KEEL_CLI_CLIENT_H
#define KEEL_CLI_CLIENT_H

#include "../json/json.h"
#include "cli.h"

#define CLI_DEFAULT_SERVER "http://127.0.0.1:7400"
#define CLI_DEFAULT_DATA ".keel"
#define CLI_MAX_RESPONSE (64u << 20)

struct cli_client {
    const char *server; /* flag value or NULL */
    const char *token;  /* flag value or NULL */
    const char *data;   /* flag value or NULL */
    bool json;          /* --json: print the API's JSON */
};

/* If argv[*i] is one of the shared flags (--server, --token, --data, --json)
 * consumes it (and its value, advancing *i) into c and returns 1; returns 0
 * if it is not one, or a negative value after printing a usage error for a
 * flag without its value. */
int cli_client_flag(const struct cli_command *cmd, struct cli_client *c, int argc, char **argv,
                    int *i);

/* Parses the arguments of a command that takes one id (RUN, ID) and the
 * shared flags: fills c and *id.  Returns 0, or an exit code after printing
 * a usage error ("missing <what>"). */
int cli_client_args_id(const struct cli_command *cmd, struct cli_client *c, int argc,
                       char **argv, const char *what, const char **id);

/* Sends one request (body may be NULL) and parses the JSON answer into
 * arena a.  2xx: 0 with *out set.  API error: its code and message.  No
 * daemon: KEEL_EIO saying how to start one. */
int cli_client_request(const struct cli_client *c, const char *method, const char *path,
                       const char *body, struct arena *a, struct json_value **out,
                       struct keel_err *err);

/* Prints v as pretty JSON on stdout. */
void cli_print_json(const struct json_value *v);

/* Appends s to path, percent-encoding everything but [A-Za-z0-9_.~-]. */
void cli_path_escape(struct buf *path, const char *s);

/* The KEEL_E* code named by "ENOENT" etc.; KEEL_EINTERNAL if unknown. */
int cli_code_from_name(const char *name);

#endif
