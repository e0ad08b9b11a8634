/*
 * internal.h — declarations shared between the files of src/mcp/ only.
 * Other parts include mcp.h.
 *
 * The client (one struct mcp_client per tool server) is three files:
 * client.c (the session's lifecycle and the public calls), client_rpc.c
 * (requests over the child's stdio and the reader thread that answers
 * them) and client_spawn.c (the copied configuration and the child
 * process).  client.c's opening comment has the threads, the session state
 * machine and the invariants they all keep.
 */
#ifndef KEEL_MCP_INTERNAL_H
#define KEEL_MCP_INTERNAL_H

#include <pthread.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "mcp.h"

/* The pool's validators by "server/tool" (validate.c).  Zero-initialise,
 * then pthread_mutex_init(&mu) and strmap_init(&by_name). */
struct mcp_validator_cache {
    pthread_mutex_t mu;
    struct strmap by_name;          /* "server/tool" -> struct mcp_validator * */
    struct mcp_validator **retired; /* replaced but maybe still in use */
    size_t nretired, cap;
};

/* Returns (borrowed) the validator for t, compiling it when the cache has
 * none or t's schemas differ from those it was compiled from. */
int mcp_validator_cache_get(struct mcp_validator_cache *cache, const char *qualified,
                            const struct mcp_tool *t, const struct mcp_validator **out,
                            struct keel_err *err);
/* Frees every validator, current and retired, and the mutex. */
void mcp_validator_cache_cleanup(struct mcp_validator_cache *cache);

/* ---- the client (client.c, client_rpc.c, client_spawn.c) ---- */

/* The session states (the diagram at the top of client.c). */
enum state { ST_IDLE, ST_STARTING, ST_RUNNING, ST_DEAD, ST_CLOSING };

/* A caller waiting for the response to its request: on the caller's stack,
 * linked in c->pending under c->mu until answered, failed or timed out. */
struct waiter {
    struct waiter *prev, *next;
    int64_t id;
    uint64_t gen;
    bool done;
    int rc;         /* 0: line holds the response; else a KEEL_E* code */
    char *line;     /* malloc'd response line (rc == 0) */
    size_t len;
    char msg[KEEL_ERR_MSG_MAX];
    pthread_cond_t cv;
};

/* What the reader thread of one incarnation owns. */
struct reader_ctx {
    struct mcp_client *c;
    uint64_t gen;
    pid_t pid;
    int pidfd, out_fd, err_fd;
    struct buf outbox; /* replies to the server's requests, not yet sent */
};

/* One tool server's client (mcp.h); locking as the comments say. */
struct mcp_client {
    /* The copied config; strings live in cfg_arena. */
    struct mcp_server_config cfg;
    struct arena cfg_arena;

    pthread_mutex_t mu; /* everything below except in_fd/in_gen */
    pthread_cond_t cv;  /* state changes, reader exit */
    enum state state;
    uint64_t gen;          /* generation of the newest process */
    int64_t next_id;
    struct waiter pending; /* list head (sentinel) */
    pid_t pid;             /* newest process, 0 if none */
    bool reaped;           /* pid has been reaped (or there is none) */
    bool reader_live;      /* a reader thread exists that nobody joined */
    bool reader_done;      /* ... and it has finished its work */
    pthread_t reader;
    char death[KEEL_ERR_MSG_MAX]; /* why the last process ended */
    int death_code;

    struct arena tools_arena; /* holds tools[] */
    struct mcp_tool *tools;
    size_t ntools;
    bool tools_stale;
    const char *protocol_version;
    struct mcp_client_stats stats;

    pthread_mutex_t wmu; /* serializes writes to the server's stdin */
    int in_fd;           /* -1 when there is no live process */
    uint64_t in_gen;
};

/* The descriptors of a freshly spawned server process. */
struct spawned {
    pid_t pid;
    int pidfd, in_fd, out_fd, err_fd;
};

/* A CLOCK_MONOTONIC deadline timeout_ms from now, for timed waits. */
static inline void monotonic_deadline(struct timespec *ts, int64_t timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(timeout_ms / 1000);
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Initialises cv to time its waits on CLOCK_MONOTONIC (monotonic_deadline);
 * destroy with pthread_cond_destroy(). */
static inline void cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &attr);
    pthread_condattr_destroy(&attr);
}

/* Closes *fd if open and marks it closed (-1). */
static inline void close_fd(int *fd)
{
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/* Validates the server config `in` and copies it, strings included, into
 * arena a (client_spawn.c); defaults fill the timeouts left at 0.  On
 * failure *out is untouched. */
int mcp_config_copy(struct arena *a, const struct mcp_server_config *in,
                    struct mcp_server_config *out, struct keel_err *err);
/* Starts c's server process in its own process group (client_spawn.c).
 * On success *sp holds its pid, a pidfd and the parent's ends of its
 * stdin/stdout/stderr pipes (err_fd -1 when stderr goes to a log file),
 * all owned by the caller; on failure nothing is left open or running. */
int mcp_spawn(struct mcp_client *c, struct spawned *sp, struct keel_err *err);

/* Fails every pending waiter of generation gen (all if gen == 0) with code
 * and msg.  Called with c->mu held (client_rpc.c). */
void mcp_fail_pending(struct mcp_client *c, uint64_t gen, int code, const char *msg);
/* Writes one message line (msg plus a newline, removed again before
 * returning) to the process of generation gen.  Returns 0, or an errno
 * value (EPIPE also when that process is already gone). */
int mcp_send_line(struct mcp_client *c, uint64_t gen, struct buf *msg);
/* Sends method(params) to the process of generation gen and waits up to
 * timeout_ms for the answer, decoded into arena a (*resp points into it).
 * A JSON-RPC error answer becomes KEEL_EPROTO; `what` names the request in
 * messages.  *unsent (may be NULL) is set when nothing was sent because
 * that process had already died, so the caller may restart and retry. */
int mcp_roundtrip(struct mcp_client *c, uint64_t gen, const char *method,
                  const struct json_value *params, int64_t timeout_ms, struct arena *a,
                  struct mcp_rpc_msg *resp, const char *what, bool *unsent,
                  struct keel_err *err);
/* The reader thread of one process (arg: a malloc'd struct reader_ctx,
 * freed by the thread): reads its stdout and stderr until it exits, hands
 * responses to their waiters, then reaps it and records why it ended. */
void *mcp_reader_main(void *arg);

#endif
