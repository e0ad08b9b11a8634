/*
 * util.h — the small pieces every part of Keel shares: error reporting,
 * growable buffers, arenas, a string-keyed hash map, time, ids, hashing and
 * file reading.  This is the only header other parts include from util/.
 *
 * Conventions (see STYLE.md):
 *   - Functions that can fail return int: 0 on success or a negative KEEL_E*
 *     code; details go into a caller-supplied struct keel_err (which may be
 *     NULL when the caller does not want them).
 *   - x_init/x_cleanup for caller-allocated structs, x_new/x_free for heap
 *     objects; x_free(NULL) and x_cleanup of a zeroed struct are no-ops.
 */
#ifndef KEEL_UTIL_H
#define KEEL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define KEEL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define KEEL_UNUSED __attribute__((unused))
#define KEEL_LIKELY(x) __builtin_expect(!!(x), 1)
#define KEEL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define KEEL_PRINTF(a, b)
#define KEEL_UNUSED
#define KEEL_LIKELY(x) (x)
#define KEEL_UNLIKELY(x) (x)
#endif

#define KEEL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- errors ------------------------------------------------------------ */

/* Stable error codes.  Their names (keel_strerror) appear in JSON errors of
 * the HTTP API and in CLI output, so never renumber or rename one. */
enum keel_errcode {
    KEEL_OK = 0,
    KEEL_EINVAL = -1,    /* bad input: syntax, type, value out of range      */
    KEEL_ENOMEM = -2,    /* allocation failed                                 */
    KEEL_EIO = -3,       /* read/write/OS failure                             */
    KEEL_ENOENT = -4,    /* no such run, file, workflow, ...                  */
    KEEL_EEXIST = -5,    /* already exists                                    */
    KEEL_ELIMIT = -6,    /* a size/depth/count limit was exceeded             */
    KEEL_EDENIED = -7,   /* authorization refused                             */
    KEEL_EAUTH = -8,     /* missing or wrong credentials                      */
    KEEL_ESTATE = -9,    /* operation not valid in the current state          */
    KEEL_ETIMEOUT = -10, /* deadline passed                                   */
    KEEL_ESCHEMA = -11,  /* JSON Schema validation failed                     */
    KEEL_EPROTO = -12,   /* peer violated a protocol (MCP, HTTP, model API)   */
    KEEL_ECORRUPT = -13, /* stored data failed an integrity check             */
    KEEL_EBUSY = -14,    /* resource held by someone else; try again          */
    KEEL_EINTERNAL = -15 /* a bug in Keel                                     */
};

#define KEEL_ERR_MSG_MAX 1024
#define KEEL_ERR_PATH_MAX 512

/* Details of a failure.  Positions are 1-based; 0 means "not known". */
struct keel_err {
    int code;
    int line;
    int column;
    char file[KEEL_ERR_PATH_MAX]; /* source file, when the error came from one  */
    char path[KEEL_ERR_PATH_MAX]; /* JSON Pointer or dotted path inside a doc   */
    char msg[KEEL_ERR_MSG_MAX];   /* what went wrong and how to fix it          */
};

/* Resets err to "no error". */
void keel_err_clear(struct keel_err *err);

/* Records a failure in err (if non-NULL) and returns code, so callers can
 * write `return keel_fail(err, KEEL_EINVAL, "unknown step kind '%s'", k);`.
 * The position fields are left as they were; set them with keel_err_at. */
int keel_fail(struct keel_err *err, int code, const char *fmt, ...) KEEL_PRINTF(3, 4);
int keel_vfail(struct keel_err *err, int code, const char *fmt, va_list ap);

/* Like keel_fail, and sets the source position (file may be NULL). */
int keel_fail_at(struct keel_err *err, int code, const char *file, int line, int column,
                 const char *fmt, ...) KEEL_PRINTF(6, 7);

/* Prefixes err->msg with "<prefix>: " (used when passing an error upward). */
void keel_err_prefix(struct keel_err *err, const char *fmt, ...) KEEL_PRINTF(2, 3);

/* Formats err as "file:line:col: path: message" (parts that are unknown are
 * left out) into out.  Returns out. */
const char *keel_err_format(const struct keel_err *err, char *out, size_t cap);

/* The stable name of a code: "EINVAL", "ENOENT", ... */
const char *keel_strerror(int code);

/* ---- buffers ----------------------------------------------------------- */

/* A growable byte buffer, always NUL-terminated once anything was added
 * (data may be NULL while len == 0).  Allocation failure aborts: buffers hold
 * output Keel produces itself, whose size is capped by the callers. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
void buf_cleanup(struct buf *b);
void buf_reset(struct buf *b); /* len = 0, keeps the memory */
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) KEEL_PRINTF(2, 3);
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Returns the data (malloc'd, NUL-terminated, never NULL); the caller frees
 * it with free().  The buffer is left empty. */
char *buf_detach(struct buf *b);

/* ---- arenas ------------------------------------------------------------ */

/* A bump allocator: many small allocations, freed together with
 * arena_cleanup (or recycled with arena_reset).  Allocation failure aborts;
 * callers cap input-controlled sizes before allocating. */
struct arena_chunk;
struct arena {
    struct arena_chunk *head;
    char *ptr;
    char *end;
    size_t total; /* bytes handed out, for limits and statistics */
    struct arena_chunk *spare; /* standard chunks kept by arena_reset for reuse */
    size_t nspare;
};

void arena_init(struct arena *a);
void arena_cleanup(struct arena *a);
/* Makes the arena empty again.  Standard-size chunks (up to 4 MiB of them)
 * are kept for the next allocations, so an arena reused for one document
 * after another does not hand its memory back to malloc (and the kernel)
 * and fault it in again each time; larger chunks are freed. */
void arena_reset(struct arena *a);
/* Returns size bytes aligned to 8, valid until the arena is reset or
 * cleaned up.  Contents are uninitialised. */
void *arena_alloc(struct arena *a, size_t size);
void *arena_zalloc(struct arena *a, size_t size);
/* Copies len bytes and appends a NUL. */
char *arena_strndup(struct arena *a, const char *s, size_t len);
char *arena_strdup(struct arena *a, const char *s);
char *arena_printf(struct arena *a, const char *fmt, ...) KEEL_PRINTF(2, 3);

/* ---- string-keyed hash map --------------------------------------------- */

/* Open-addressing map from byte-string keys to pointers.  Keys are copied
 * (owned by the map); values are borrowed. */
struct strmap_entry {
    char *key;
    size_t key_len;
    uint64_t hash;
    void *value;
};
struct strmap {
    struct strmap_entry *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
};

void strmap_init(struct strmap *m);
void strmap_cleanup(struct strmap *m);
/* Inserts or replaces.  Returns the previous value (or NULL). */
void *strmap_put(struct strmap *m, const char *key, size_t key_len, void *value);
void *strmap_get(const struct strmap *m, const char *key, size_t key_len);
/* Removes key; returns its value (or NULL). */
void *strmap_del(struct strmap *m, const char *key, size_t key_len);
/* Iteration: for (size_t i = 0; i < m.cap; i++) if (m.slots[i].key) ... */

uint64_t keel_hash(const void *data, size_t len);

/* ---- time -------------------------------------------------------------- */

int64_t keel_mono_ns(void);   /* monotonic clock, nanoseconds */
int64_t keel_wall_ms(void);   /* wall clock, ms since the Unix epoch */
/* Writes "2026-11-25T19:31:26.123Z" (24 chars + NUL) into out[32]. */
void keel_format_time(int64_t wall_ms, char out[32]);
/* Parses durations like "500ms", "30s", "5m", "72h", "7d", "1h30m" into ms. */
int keel_parse_duration(const char *s, int64_t *out_ms, struct keel_err *err);

/* ---- ids, randomness, hashing ------------------------------------------ */

/* Fills out with cryptographically secure random bytes. */
void keel_random(void *out, size_t len);
/* Writes a new time-sortable id "<prefix>_<26 base32 chars>" into out
 * (cap >= strlen(prefix) + 28).  Later ids sort after earlier ones. */
void keel_new_id(const char *prefix, char *out, size_t cap);
/* SHA-256 of data, as 32 bytes and as 64 lowercase hex chars + NUL. */
void keel_sha256(const void *data, size_t len, uint8_t out[32]);
void keel_sha256_hex(const void *data, size_t len, char out[65]);
void keel_hex(const uint8_t *data, size_t len, char *out); /* out: 2*len+1 */
/* The decimal digits of v ('-' first if negative) at out, which has room
 * for 20 bytes; no NUL.  Returns how many were written.  printf's "%lld",
 * without printf's cost (it showed in the engine's profile). */
size_t keel_i64_text(char *out, int64_t v);
/* Constant-time comparison of two equal-length secrets. */
bool keel_secure_equal(const void *a, const void *b, size_t len);

/* ---- files ------------------------------------------------------------- */

/* Reads a whole file into out (NUL-terminated).  Fails with KEEL_ELIMIT if it
 * is larger than max bytes. */
int keel_read_file(const char *path, size_t max, struct buf *out, struct keel_err *err);
/* Writes data to path atomically (temp file, fsync, rename) with mode. */
int keel_write_file_atomic(const char *path, const void *data, size_t len, int mode,
                           struct keel_err *err);
/* mkdir -p with mode. */
int keel_mkdir_p(const char *path, int mode, struct keel_err *err);

/* ---- logging ----------------------------------------------------------- */

enum keel_log_level { KEEL_LOG_DEBUG, KEEL_LOG_INFO, KEEL_LOG_WARN, KEEL_LOG_ERROR };

/* Level from $KEEL_LOG (debug|info|warn|error), default warn. */
void keel_log(enum keel_log_level level, const char *fmt, ...) KEEL_PRINTF(2, 3);
void keel_log_set_level(enum keel_log_level level);

#endif
