/*
 * mock.h — the mock model server's core, apart from HTTP: the script format
 * (parse, match, consume), the two provider wire formats (OpenAI Chat
 * Completions, Anthropic Messages: request validation, replies, errors) and
 * the record of every request.  script.c implements it with no main() and
 * no libmicrohttpd, so the fuzz target (tests/fuzz/fuzz_mockmodel_script.c)
 * can include it whole; main.c puts it behind libmicrohttpd.
 *
 * README.md next to this file documents the command line, the endpoints and
 * the script format.
 */
#ifndef KEEL_MOCK_H
#define KEEL_MOCK_H

#include <stdio.h>

#include "json/json.h"

#define MOCK_MAX_BODY ((size_t)8 << 20)           /* request body cap (413 above)        */
#define MOCK_MAX_SCRIPT ((size_t)16 << 20)        /* script file, POST /_mock/script     */
#define MOCK_MAX_ENTRIES 100000                   /* entries in one script               */
#define MOCK_MAX_DELAY_MS 60000                   /* delay_ms cap                        */
#define MOCK_MAX_MODEL_IDS 1000                   /* max_completion_tokens_only entries  */
#define MOCK_MAX_RECORD_BYTES ((size_t)512 << 20) /* kept records with bodies, JSON bytes */

/* One HTTP request as main.c hands it over.  Everything is borrowed for the
 * duration of mock_handle; header values are NULL when absent. */
struct mock_http_request {
    const char *method;
    const char *path;              /* without the query string */
    const char *authorization;     /* Authorization header     */
    const char *x_api_key;         /* x-api-key header         */
    const char *anthropic_version; /* anthropic-version header */
    const char *body;
    size_t body_len;
    bool too_large; /* over MOCK_MAX_BODY (not read) */
};

/* What to send back.  Initialise with mock_reply_init, free with
 * mock_reply_cleanup. */
struct mock_http_reply {
    int status;
    struct buf body;     /* always JSON, except for a script entry's "body" */
    int64_t retry_after; /* seconds for the Retry-After header; -1: none    */
    int64_t delay_ms;    /* how long to wait before answering (0: at once)   */
};

void mock_reply_init(struct mock_http_reply *r);
void mock_reply_cleanup(struct mock_http_reply *r);

struct mock;

/* Returns a new mock with an empty script (every model request then gets
 * the "no script entry matches" 500).  Free with mock_free(). */
struct mock *mock_new(void);
void mock_free(struct mock *m);

/* Parses a script (text, len bytes; file names it in error positions, may
 * be NULL) and, if it is valid, makes it the current script and clears the
 * records and consumption counts.  On failure the current script stays and
 * err has the file, line:column and JSON Pointer of the offending value and
 * says how to fix it.  The text is copied; the caller keeps it. */
int mock_load(struct mock *m, const char *text, size_t len, const char *file, struct keel_err *err);

/* Every record is also appended to log (one JSON line each, flushed), if
 * non-NULL.  log is borrowed: the caller closes it after mock_free. */
void mock_set_log(struct mock *m, FILE *log);

/* Answers one request (any route).  Thread-safe: the script state, the
 * records and the log are behind one mutex.  out must have been initialised
 * with mock_reply_init; its previous contents are replaced. */
void mock_handle(struct mock *m, const struct mock_http_request *rq, struct mock_http_reply *out);

#endif
