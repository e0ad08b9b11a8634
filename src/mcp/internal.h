/*
 * internal.h — declarations shared between the files of src/mcp/ only.
 * Other parts include mcp.h.
 */
#ifndef KEEL_MCP_INTERNAL_H
#define KEEL_MCP_INTERNAL_H

#include <pthread.h>

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

#endif
