/*
 * fold.c — run state as the fold of the journal through declared reducers,
 * and snapshots that let the fold start part-way.
 *
 * State is a JSON object.  Only state.updated events change it: payload
 * {key, value, reducer?}.  The reducer is the one named in the payload (the
 * writer recorded what it applied), else the key's declared reducer, else
 * the fallback.  The semantics match workflow_reduce (workflow.h):
 *
 *   replace  state[key] = value
 *   append   state[key] is an array (absent: []); an array value appends
 *            each of its items, any other value is appended as one item
 *   merge    state[key] and value are objects (absent: {}); shallow merge,
 *            the value's keys win
 *   add      state[key] and value are numbers (absent: 0); the sum, exact
 *            for int64, else as a double
 *
 * Invariants: the fold owns the state tree it builds.  Each event's payload
 * is parsed afresh into the caller's arena, and initial values are cloned,
 * so values put into the state are never shared with an input and may be
 * modified in place by later events (append, merge).  That keeps a fold of n
 * events O(total size) instead of copying arrays on every append.
 *
 * Snapshots store the canonical JSON of the state after event seq; since the
 * fold is deterministic for a run's (immutable) reducers, folding from a
 * snapshot gives exactly the state folding from scratch gives — the tests
 * check it.
 */
#include "journal.h"

#include <string.h>

static const char *const reducer_names[JOURNAL_REDUCE_COUNT] = {
    [JOURNAL_REDUCE_REPLACE] = "replace",
    [JOURNAL_REDUCE_APPEND] = "append",
    [JOURNAL_REDUCE_MERGE] = "merge",
    [JOURNAL_REDUCE_ADD] = "add",
};

const char *journal_reducer_name(enum journal_reducer r)
{
    if ((unsigned)r >= JOURNAL_REDUCE_COUNT) return NULL;
    return reducer_names[r];
}

int journal_reducer_parse(const char *name, enum journal_reducer *out, struct keel_err *err)
{
    for (int i = 0; i < JOURNAL_REDUCE_COUNT; i++) {
        if (name && strcmp(name, reducer_names[i]) == 0) {
            *out = (enum journal_reducer)i;
            return 0;
        }
    }
    return keel_fail(err, KEEL_EINVAL,
                     "unknown reducer '%s'; use replace, append, merge or add",
                     name ? name : "(null)");
}

struct json_value *journal_state_initial(const struct journal_reducers *r, struct arena *a)
{
    struct json_value *state = json_object(a);
    for (size_t i = 0; r && i < r->n; i++)
        if (r->keys[i].initial)
            json_object_setc(a, state, r->keys[i].key, json_clone(a, r->keys[i].initial));
    return state;
}

static const struct journal_state_key *declared(const struct journal_reducers *r, const char *key,
                                                size_t len)
{
    for (size_t i = 0; r && i < r->n; i++)
        if (strlen(r->keys[i].key) == len && memcmp(r->keys[i].key, key, len) == 0)
            return &r->keys[i];
    return NULL;
}

/* ---- the reducers (a table: one function per enum journal_reducer) ----- */

/* Each returns the new value for the key (old may be NULL; value is owned by
 * the fold and may be adopted) or NULL with err set. */
typedef struct json_value *(*reduce_fn)(struct arena *a, struct json_value *old,
                                        struct json_value *value, struct keel_err *err);

static struct json_value *reduce_replace(struct arena *a, struct json_value *old,
                                         struct json_value *value, struct keel_err *err)
{
    return value;
}

static struct json_value *reduce_append(struct arena *a, struct json_value *old,
                                        struct json_value *value, struct keel_err *err)
{
    if (old && !json_is(old, JSON_ARRAY)) {
        keel_fail(err, KEEL_EINVAL, "reducer append needs an array, but the state holds a %s",
                  json_type_name(old));
        return NULL;
    }
    struct json_value *arr = old ? old : json_array(a);
    if (json_is(value, JSON_ARRAY)) {
        for (uint32_t i = 0; i < value->len; i++) json_array_push(a, arr, value->u.items[i]);
    } else {
        json_array_push(a, arr, value);
    }
    return arr;
}

static struct json_value *reduce_merge(struct arena *a, struct json_value *old,
                                       struct json_value *value, struct keel_err *err)
{
    if (!json_is(value, JSON_OBJECT) || (old && !json_is(old, JSON_OBJECT))) {
        keel_fail(err, KEEL_EINVAL, "reducer merge needs objects, got %s into %s",
                  json_type_name(value), old ? json_type_name(old) : "nothing");
        return NULL;
    }
    struct json_value *obj = old ? old : json_object(a);
    for (uint32_t i = 0; i < value->len; i++)
        json_object_set(a, obj, value->u.members[i].key, value->u.members[i].key_len,
                        value->u.members[i].value);
    return obj;
}

static struct json_value *reduce_add(struct arena *a, struct json_value *old,
                                     struct json_value *value, struct keel_err *err)
{
    if (!json_is(value, JSON_NUMBER) || (old && !json_is(old, JSON_NUMBER))) {
        keel_fail(err, KEEL_EINVAL, "reducer add needs numbers, got %s to %s",
                  json_type_name(value), old ? json_type_name(old) : "nothing");
        return NULL;
    }
    if (!old) return value;
    int64_t sum;
    if ((old->nflags & JSON_NUM_I64) && (value->nflags & JSON_NUM_I64) &&
        !__builtin_add_overflow(old->u.n.i, value->u.n.i, &sum))
        return json_int(a, sum);
    double d = old->u.n.d + value->u.n.d;
    if (d != d || d - d != 0) {
        keel_fail(err, KEEL_EINVAL, "reducer add overflowed the range of a double");
        return NULL;
    }
    return json_double(a, d);
}

static const reduce_fn reducers[JOURNAL_REDUCE_COUNT] = {
    [JOURNAL_REDUCE_REPLACE] = reduce_replace,
    [JOURNAL_REDUCE_APPEND] = reduce_append,
    [JOURNAL_REDUCE_MERGE] = reduce_merge,
    [JOURNAL_REDUCE_ADD] = reduce_add,
};

/* ---- the fold ---------------------------------------------------------- */

int journal_fold_event(const struct journal_reducers *r, struct arena *a,
                       struct json_value *state, const struct journal_event *ev,
                       struct keel_err *err)
{
    if (strcmp(ev->kind, "state.updated") != 0) return 0;
    if (!json_is(state, JSON_OBJECT))
        return keel_fail(err, KEEL_EINVAL, "journal fold: the state is not an object");
    struct json_value *p = NULL;
    struct json_parse_opts po = {.max_size = STORE_TEXT_MAX};
    int rc = json_parse(a, ev->payload, ev->payload_len, &po, &p, err);
    if (rc) {
        keel_err_prefix(err, "run %s event %lld (state.updated): payload", ev->run_id,
                        (long long)ev->seq);
        return KEEL_ECORRUPT;
    }
    struct json_value *key = json_get(p, "key");
    struct json_value *value = json_get(p, "value");
    if (!json_is(key, JSON_STRING) || !value)
        return keel_fail(err, KEEL_EINVAL,
                         "run %s event %lld: a state.updated payload needs a string \"key\" "
                         "and a \"value\"",
                         ev->run_id, (long long)ev->seq);
    enum journal_reducer red = r ? r->fallback : JOURNAL_REDUCE_REPLACE;
    const struct journal_state_key *decl = declared(r, key->u.s.str, key->len);
    if (decl) red = decl->reducer;
    struct json_value *named = json_get(p, "reducer");
    if (named) {
        if (!json_is(named, JSON_STRING) || journal_reducer_parse(named->u.s.str, &red, err) != 0)
            return keel_fail(err, KEEL_EINVAL,
                             "run %s event %lld: \"reducer\" must be one of replace, append, "
                             "merge, add",
                             ev->run_id, (long long)ev->seq);
    }
    if ((unsigned)red >= JOURNAL_REDUCE_COUNT)
        return keel_fail(err, KEEL_EINVAL, "reducer %d is out of range", (int)red);
    struct json_value *old = json_getn(state, key->u.s.str, key->len);
    struct json_value *next = reducers[red](a, old, value, err);
    if (!next) {
        keel_err_prefix(err, "run %s event %lld, state key \"%s\"", ev->run_id,
                        (long long)ev->seq, key->u.s.str);
        return KEEL_EINVAL;
    }
    json_object_set(a, state, key->u.s.str, key->len, next);
    return 0;
}

int journal_fold(const struct journal_reducers *r, const struct journal_event *events, size_t n,
                 const struct json_value *initial, struct arena *a, struct json_value **state,
                 struct keel_err *err)
{
    struct json_value *st = initial ? json_clone(a, initial) : journal_state_initial(r, a);
    for (size_t i = 0; i < n; i++) {
        int rc = journal_fold_event(r, a, st, &events[i], err);
        if (rc) return rc;
    }
    *state = st;
    return 0;
}

/* ---- state from the store, with snapshots ------------------------------ */

/* Non-zero returns of fold_one that stop the read. */
#define FOLD_STOP_UPTO 1
#define FOLD_STOP_ERROR 2

struct fold_ctx {
    const struct journal_reducers *r;
    int64_t upto; /* 0: no limit */
    struct arena *a;
    struct json_value *state;
    int64_t last_seq;
    int64_t folded;
    struct keel_err *err;
    int rc;
};

static int fold_one(void *ctx, const struct journal_event *ev)
{
    struct fold_ctx *f = ctx;
    if (f->upto > 0 && ev->seq > f->upto) return FOLD_STOP_UPTO;
    if (ev->seq != f->last_seq + 1) {
        f->rc = keel_fail(f->err, KEEL_ECORRUPT,
                          "run %s: event %lld follows %lld; the journal has a gap (run keel "
                          "verify)",
                          ev->run_id, (long long)ev->seq, (long long)f->last_seq);
        return FOLD_STOP_ERROR;
    }
    f->rc = journal_fold_event(f->r, f->a, f->state, ev, f->err);
    if (f->rc) return FOLD_STOP_ERROR;
    f->last_seq = ev->seq;
    f->folded++;
    return 0;
}

static int put_snapshot(struct store *s, const char *run_id, int64_t seq,
                        const struct json_value *state, struct keel_err *err)
{
    struct buf text;
    buf_init(&text);
    int rc = json_write(&text, state, JSON_WRITE_CANONICAL, err);
    if (!rc) rc = store_snapshot_put(s, run_id, seq, text.data, err);
    buf_cleanup(&text);
    return rc;
}

int journal_state(struct store *s, const char *run_id, const struct journal_reducers *r,
                  const struct journal_state_opts *opts, struct arena *a,
                  struct json_value **state, int64_t *at_seq, struct keel_err *err)
{
    static const struct journal_state_opts defaults;
    if (!opts) opts = &defaults;
    struct fold_ctx f = {.r = r, .a = a, .err = err};
    int rc;
    if (!opts->no_snapshots) {
        int64_t snap_seq = 0;
        const char *text = NULL;
        struct keel_err serr;
        rc = store_snapshot_get(s, run_id, opts->upto_seq, a, &snap_seq, &text, &serr);
        if (rc == 0) {
            struct json_parse_opts po = {.max_size = STORE_TEXT_MAX};
            rc = json_parse(a, text, strlen(text), &po, &f.state, err);
            if (rc || !json_is(f.state, JSON_OBJECT)) {
                if (!rc) keel_fail(err, KEEL_ECORRUPT, "snapshot is not an object");
                keel_err_prefix(err, "run %s snapshot at event %lld", run_id,
                                (long long)snap_seq);
                return KEEL_ECORRUPT;
            }
            f.last_seq = snap_seq;
        } else if (rc != KEEL_ENOENT) {
            if (err) *err = serr;
            return rc;
        }
    }
    if (!f.state) f.state = journal_state_initial(r, a);
    if (opts->upto_seq <= 0 || f.last_seq < opts->upto_seq) {
        f.upto = opts->upto_seq;
        rc = journal_read(s, run_id, f.last_seq + 1, fold_one, &f, err);
        if (rc == FOLD_STOP_UPTO) rc = 0;
        else if (rc == FOLD_STOP_ERROR) rc = f.rc;
        if (rc) return rc;
    }
    int64_t every = opts->snapshot_every == 0 ? 100 : opts->snapshot_every;
    if (every > 0 && f.folded >= every) {
        /* A snapshot only speeds up later folds; failing to write one (a
         * read-only store, say) does not fail the read. */
        struct keel_err serr;
        if (put_snapshot(s, run_id, f.last_seq, f.state, &serr) != 0)
            keel_log(KEEL_LOG_DEBUG, "run %s: snapshot not written: %s", run_id, serr.msg);
    }
    *state = f.state;
    if (at_seq) *at_seq = f.last_seq;
    return 0;
}

int journal_snapshot(struct store *s, const char *run_id, const struct journal_reducers *r,
                     struct keel_err *err)
{
    struct arena a;
    arena_init(&a);
    struct journal_state_opts opts = {.snapshot_every = -1};
    struct json_value *state = NULL;
    int64_t seq = 0;
    int rc = journal_state(s, run_id, r, &opts, &a, &state, &seq, err);
    if (!rc && seq == 0) rc = keel_fail(err, KEEL_ENOENT, "run '%s' has no events", run_id);
    if (!rc) rc = put_snapshot(s, run_id, seq, state, err);
    arena_cleanup(&a);
    return rc;
}
