/*
 * api.h — Keel's HTTP API (libmicrohttpd, thread-pool mode): the routes of
 * docs/api.md over the engine, token auth, JSON errors with stable codes,
 * and request size limits.
 */
#ifndef KEEL_API_H
#define KEEL_API_H

#include "../engine/engine.h"
#include "../identity/identity.h"
#include "../util/util.h"

#define API_DEFAULT_HOST "127.0.0.1"
#define API_DEFAULT_PORT 7400
#define API_DEFAULT_MAX_BODY (1u << 20) /* 1 MiB; larger bodies get 413 */

struct api_config {
    const char *host;  /* numeric IPv4 address; NULL means 127.0.0.1          */
    int port;          /* 0 picks a free port (see api_server_port)           */
    size_t max_body;   /* 0 means API_DEFAULT_MAX_BODY                        */
    unsigned max_waiters; /* long-polls (GET /v1/runs/{id}?wait=S, usage queries)
                             held at once; 0 means 64.  Each connection has
                             its own thread, so a held poll delays nobody
                             else; past the cap a poll answers at once. */
};

struct api_server;

/* Starts listening.  engine is borrowed and must outlive the server; the
 * identities used for auth are read from engine_identities(engine).
 * Returns a new server in *srv; stop and free it with api_server_stop(). */
int api_server_start(const struct api_config *cfg, struct engine *engine, struct api_server **srv,
                     struct keel_err *err);

/* The port actually bound (useful with port 0). */
int api_server_port(const struct api_server *srv);

/* Stops accepting, waits for requests in flight, frees srv (NULL is a no-op). */
void api_server_stop(struct api_server *srv);

/* The HTTP status of an error code (400, 401, 403, 404, 409, 413, 500...). */
int api_status_for(int keel_code);

/* Splits "HOST:PORT" (or ":PORT", or "PORT") into host (cap bytes) and port. */
int api_parse_listen(const char *s, char *host, size_t cap, int *port, struct keel_err *err);

#endif
