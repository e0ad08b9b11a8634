/*
 * store_impl.h — what store.c needs from the implementations (internal to
 * src/store/; other parts include store.h only).  Each backend exports one
 * open function, listed in store.c's backend table.
 */
#ifndef KEEL_STORE_IMPL_H
#define KEEL_STORE_IMPL_H

#include "store.h"

/* Returned by store_ops.append when the implementation wants store.c to
 * queue the request (append_async) and wait for it instead.  Positive, so it
 * can never be mistaken for a KEEL_E* code. */
#define STORE_APPEND_QUEUE 1

/* location: the database path after "sqlite:" (":memory:" for tests).
 * Arguments are validated by store_open. */
int store_sqlite_open(const char *location, const struct store_opts *opts, struct store **out,
                      struct keel_err *err);

#endif
