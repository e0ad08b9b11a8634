/*
 * parse.c — the strict RFC 8259 parser.
 *
 * One pass over the input, no recursion: an explicit stack of open
 * containers (frames) replaces the call stack, so nesting is limited only
 * by max_depth, never by the thread's stack.  Array items and object
 * members of all open containers are collected on two scratch stacks and
 * copied once into the arena when their container closes, so every array
 * and object gets exactly the memory it needs (cap == len).
 *
 * What the grammar accepts (RFC 8259 section 2 ff.): one value with
 * optional whitespace (space, tab, LF, CR) around it; no BOM, no comments,
 * no trailing commas, no leading zeros, no NaN/Infinity.  Strings must be
 * valid UTF-8 (no overlongs, no surrogates, nothing beyond U+10FFFF) and
 * their \u escapes must form valid UTF-16 (a lone surrogate escape is an
 * error: the DOM holds UTF-8, which cannot represent it).
 *
 * Positions: lines count LF characters; columns count bytes from the start
 * of the line, both 1-based.  A value's position is that of its first
 * byte; an error's is that of the byte where the input stopped making
 * sense.
 *
 * Speed: string bodies are scanned 8 bytes at a time for the bytes that
 * need attention ('"', '\\', < 0x20, >= 0x80); common 2- and 3-byte UTF-8
 * forms are validated inline; after an escape, the runs between escapes are
 * copied whole; short integers are converted
 * while they are scanned; arena allocation is inlined (json_alloc).
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_DEFAULT_DEPTH 512
#define JSON_DEFAULT_SIZE ((size_t)64 << 20)
/* The DOM stores lengths in 32 bits; no input may be larger than this. */
#define JSON_HARD_SIZE ((size_t)UINT32_MAX - 1)

struct pmember {
    struct json_member m;
    const unsigned char *key_at; /* the key's opening quote, for errors */
};

struct frame {
    struct json_value *v;
    size_t start; /* first index in items or members */
};

struct parser {
    const unsigned char *start, *end;
    const unsigned char *line_start;
    int line;
    struct arena *a;
    size_t max_depth;
    enum json_dup_policy dup;
    const char *file;
    struct keel_err *err;

    struct json_value **items;
    size_t nitems, capitems;
    struct pmember *members;
    size_t nmembers, capmembers;
    struct frame *frames;
    size_t nframes, capframes;
    uint32_t *table; /* duplicate detection for large objects */
    size_t captable;
};

/* ---- errors -------------------------------------------------------------- */

static void describe(const unsigned char *at, const unsigned char *end, char *out, size_t cap)
{
    if (at >= end) snprintf(out, cap, "end of input");
    else if (*at >= 0x21 && *at < 0x7F) snprintf(out, cap, "'%c'", *at);
    else if (*at == ' ') snprintf(out, cap, "a space");
    else snprintf(out, cap, "byte 0x%02X", *at);
}

/* Records an error at byte `at`.  The line and column are recounted from
 * the start: errors are rare and this keeps the hot path free of it. */
KEEL_PRINTF(4, 5)
static int fail(struct parser *ps, const unsigned char *at, int code, const char *fmt, ...)
{
    int line = 1;
    const unsigned char *ls = ps->start;
    if (at > ps->end) at = ps->end;
    for (const unsigned char *q = ps->start; q < at; q++)
        if (*q == '\n') line++, ls = q + 1;
    if (ps->err) {
        snprintf(ps->err->file, sizeof ps->err->file, "%s", ps->file ? ps->file : "");
        ps->err->line = line;
        ps->err->column = (int)(at - ls) + 1;
        ps->err->path[0] = '\0';
        va_list ap;
        va_start(ap, fmt);
        keel_vfail(ps->err, code, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int fail_unexpected(struct parser *ps, const unsigned char *at, const char *expected)
{
    char what[32];
    describe(at, ps->end, what, sizeof what);
    return fail(ps, at, KEEL_EINVAL, "unexpected %s; expected %s", what, expected);
}

/* ---- scratch stacks ------------------------------------------------------ */

static void *grow_scratch(void *p, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 64;
    void *q = realloc(p, ncap * elem);
    if (!q) abort(); /* bounded by the input size cap */
    *cap = ncap;
    return q;
}

static inline void push_item(struct parser *ps, struct json_value *v)
{
    if (KEEL_UNLIKELY(ps->nitems == ps->capitems))
        ps->items = grow_scratch(ps->items, &ps->capitems, sizeof *ps->items);
    ps->items[ps->nitems++] = v;
}

static inline struct pmember *push_member(struct parser *ps)
{
    if (KEEL_UNLIKELY(ps->nmembers == ps->capmembers))
        ps->members = grow_scratch(ps->members, &ps->capmembers, sizeof *ps->members);
    return &ps->members[ps->nmembers++];
}

/* ---- whitespace ---------------------------------------------------------- */

/* ws = *( %x20 / %x09 / %x0A / %x0D ) */
static inline const unsigned char *skip_ws(struct parser *ps, const unsigned char *p)
{
    const unsigned char *end = ps->end;
    while (p < end && *p <= ' ') {
        if (*p == '\n') {
            ps->line++;
            ps->line_start = p + 1;
        } else if (*p != ' ' && *p != '\t' && *p != '\r') {
            break;
        }
        p++;
    }
    return p;
}

/* ---- strings ------------------------------------------------------------- */

#define ONES 0x0101010101010101ULL
#define HIGH 0x8080808080808080ULL

/* Nonzero if any of the 8 bytes in x is '"', '\\', < 0x20 or >= 0x80. */
static inline uint64_t special8(uint64_t x)
{
    uint64_t q = x ^ (ONES * '"'), b = x ^ (ONES * '\\');
    return (((q - ONES) & ~q) | ((b - ONES) & ~b) | (x - ONES * 0x20) | x) & HIGH;
}

/* Skips bytes that need no attention; returns the first one that does
 * (or end). */
static inline const unsigned char *scan_plain(const unsigned char *q, const unsigned char *end)
{
    while (end - q >= 8) {
        uint64_t x;
        memcpy(&x, q, 8);
        if (special8(x)) break;
        q += 8;
    }
    while (q < end && *q != '"' && *q != '\\' && *q >= 0x20 && *q < 0x80) q++;
    return q;
}

static inline int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Reads 4 hex digits at q (bounds checked by the caller); -1 if invalid. */
static inline int32_t hex4(const unsigned char *q)
{
    int a = hexval(q[0]), b = hexval(q[1]), c = hexval(q[2]), d = hexval(q[3]);
    if ((a | b | c | d) < 0) return -1;
    return (a << 12) | (b << 8) | (c << 4) | d;
}

/* Checks a non-ASCII sequence or control byte at q inside a string. */
static int bad_string_byte(struct parser *ps, const unsigned char *q)
{
    if (*q < 0x20)
        return fail(ps, q, KEEL_EINVAL,
                    "raw control character U+%04X inside a string; write it escaped as \\u%04X",
                    *q, *q);
    return fail(ps, q, KEEL_EINVAL,
                "invalid UTF-8 byte 0x%02X inside a string; the text must be UTF-8 encoded", *q);
}

/* Validates one escape at q (q[0] == '\\'); returns its length in the
 * source, and adds its decoded length to *outlen.  0 after an error. */
static size_t check_escape(struct parser *ps, const unsigned char *q, size_t *outlen)
{
    const unsigned char *end = ps->end;
    if (q + 1 >= end) {
        fail(ps, q, KEEL_EINVAL, "unterminated string: the input ends inside an escape");
        return 0;
    }
    unsigned char c = q[1];
    if (c != 'u') {
        if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
            c == 't') {
            *outlen += 1;
            return 2;
        }
        char what[32];
        describe(q + 1, end, what, sizeof what);
        fail(ps, q, KEEL_EINVAL,
             "invalid escape '\\' followed by %s; valid escapes are \\\" \\\\ \\/ \\b \\f \\n "
             "\\r \\t \\uXXXX",
             what);
        return 0;
    }
    int32_t u = end - q >= 6 ? hex4(q + 2) : -1;
    if (u < 0) {
        fail(ps, q, KEEL_EINVAL, "invalid \\u escape: expected 4 hex digits after \\u");
        return 0;
    }
    if (u >= 0xDC00 && u <= 0xDFFF) {
        fail(ps, q, KEEL_EINVAL,
             "lone low surrogate \\u%04X; a low surrogate must follow a high one (\\uD800-\\uDBFF)",
             (unsigned)u);
        return 0;
    }
    if (u >= 0xD800 && u <= 0xDBFF) {
        int32_t l = end - q >= 12 && q[6] == '\\' && q[7] == 'u' ? hex4(q + 8) : -1;
        if (l < 0xDC00 || l > 0xDFFF) {
            fail(ps, q, KEEL_EINVAL,
                 "lone high surrogate \\u%04X; it must be followed by a low surrogate "
                 "\\uDC00-\\uDFFF",
                 (unsigned)u);
            return 0;
        }
        *outlen += 4;
        return 12;
    }
    *outlen += u < 0x80 ? 1 : u < 0x800 ? 2 : 3;
    return 6;
}

static const unsigned char simple_escape[256] = {
    ['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b',
    ['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t',
};

static char *put_utf8(char *o, uint32_t u)
{
    if (u < 0x80) {
        *o++ = (char)u;
    } else if (u < 0x800) {
        *o++ = (char)(0xC0 | (u >> 6));
        *o++ = (char)(0x80 | (u & 0x3F));
    } else if (u < 0x10000) {
        *o++ = (char)(0xE0 | (u >> 12));
        *o++ = (char)(0x80 | ((u >> 6) & 0x3F));
        *o++ = (char)(0x80 | (u & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (u >> 18));
        *o++ = (char)(0x80 | ((u >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((u >> 6) & 0x3F));
        *o++ = (char)(0x80 | (u & 0x3F));
    }
    return o;
}

/* Length of the valid UTF-8 sequence at q (q[0] >= 0x80), 0 if invalid.
 * Common 2-, 3- and 4-byte forms are checked inline; the rest (E0, ED and
 * every error) go through json_utf8_decode. */
static inline int utf8_seq(const unsigned char *q, const unsigned char *end)
{
    unsigned char c = q[0];
    if (c >= 0xC2 && c <= 0xDF && end - q >= 2 && (q[1] & 0xC0) == 0x80) return 2;
    if (((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) && end - q >= 3 &&
        (q[1] & 0xC0) == 0x80 && (q[2] & 0xC0) == 0x80)
        return 3;
    if (c >= 0xF0 && c <= 0xF4 && end - q >= 4 && (q[1] & 0xC0) == 0x80 &&
        (q[2] & 0xC0) == 0x80 && (q[3] & 0xC0) == 0x80 && (c != 0xF0 || q[1] >= 0x90) &&
        (c != 0xF4 || q[1] < 0x90))
        return 4;
    uint32_t cp;
    return json_utf8_decode(q, (size_t)(end - q), &cp);
}

/* string = quotation-mark *char quotation-mark
 * p points at the opening quote.  Sets *str and *len to an arena copy and
 * returns the byte after the closing quote, or NULL after an error. */
static const unsigned char *parse_string(struct parser *ps, const unsigned char *p,
                                         const char **str, uint32_t *len)
{
    const unsigned char *s = p + 1, *q = s, *end = ps->end;
    for (;;) {
        q = scan_plain(q, end);
        if (KEEL_UNLIKELY(q >= end)) {
            fail(ps, p, KEEL_EINVAL, "unterminated string: no closing '\"' before the end");
            return NULL;
        }
        if (*q == '"') {
            size_t n = (size_t)(q - s);
            char *d = json_alloc(ps->a, n + 1);
            memcpy(d, s, n);
            d[n] = '\0';
            *str = d;
            *len = (uint32_t)n;
            return q + 1;
        }
        if (*q == '\\') break;
        int k = *q >= 0x80 ? utf8_seq(q, end) : 0;
        if (!k) {
            bad_string_byte(ps, q);
            return NULL;
        }
        q += k;
    }
    /* Escapes: a validating pass to find the end and the decoded length,
     * then a decoding pass straight into the arena. */
    const unsigned char *first_escape = q;
    size_t outlen = (size_t)(q - s);
    for (;;) {
        const unsigned char *r = scan_plain(q, end);
        outlen += (size_t)(r - q);
        q = r;
        if (q >= end) {
            fail(ps, p, KEEL_EINVAL, "unterminated string: no closing '\"' before the end");
            return NULL;
        }
        if (*q == '"') break;
        if (*q == '\\') {
            size_t k = check_escape(ps, q, &outlen);
            if (!k) return NULL;
            q += k;
            continue;
        }
        int k = *q >= 0x80 ? utf8_seq(q, end) : 0;
        if (!k) {
            bad_string_byte(ps, q);
            return NULL;
        }
        q += k;
        outlen += (size_t)k;
    }
    const unsigned char *close = q;
    char *d = json_alloc(ps->a, outlen + 1), *o = d;
    size_t n0 = (size_t)(first_escape - s);
    memcpy(o, s, n0);
    o += n0;
    for (q = first_escape; q < close;) {
        if (*q != '\\') {
            /* a validated run up to the next escape: copy it whole */
            const unsigned char *r = memchr(q, '\\', (size_t)(close - q));
            size_t run = (size_t)((r ? r : close) - q);
            memcpy(o, q, run);
            o += run;
            q += run;
            continue;
        }
        if (q[1] != 'u') {
            *o++ = (char)simple_escape[q[1]];
            q += 2;
            continue;
        }
        uint32_t u = (uint32_t)hex4(q + 2);
        q += 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
            uint32_t l = (uint32_t)hex4(q + 2);
            u = 0x10000 + ((u - 0xD800) << 10) + (l - 0xDC00);
            q += 6;
        }
        o = put_utf8(o, u);
    }
    *o = '\0';
    *str = d;
    *len = (uint32_t)(o - d);
    return close + 1;
}

/* ---- numbers ------------------------------------------------------------- */

/* number = [ minus ] int [ frac ] [ exp ] */
static const unsigned char *parse_number(struct parser *ps, const unsigned char *p,
                                         struct json_value *v)
{
    const unsigned char *s = p, *end = ps->end;
    bool neg = false;
    if (*p == '-') neg = true, p++;
    if (p >= end || *p < '0' || *p > '9') {
        if (p < end && (*p == 'I' || *p == 'i'))
            fail(ps, s, KEEL_EINVAL, "Infinity is not a JSON number; use a finite number or null");
        else
            fail_unexpected(ps, p, "a digit after '-'");
        return NULL;
    }
    uint64_t m = 0;
    size_t ndig = 0;
    if (*p == '0') {
        p++;
        ndig = 1;
        if (p < end && *p >= '0' && *p <= '9') {
            fail(ps, s, KEEL_EINVAL,
                 "leading zero in a number; JSON numbers do not start with 0 unless they are 0 "
                 "or 0.x");
            return NULL;
        }
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            m = m * 10 + (uint64_t)(*p - '0');
            p++;
            ndig++;
        }
    }
    bool simple = true;
    if (p < end && *p == '.') {
        simple = false;
        p++;
        if (p >= end || *p < '0' || *p > '9') {
            fail_unexpected(ps, p, "a digit after the decimal point");
            return NULL;
        }
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        simple = false;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') {
            fail_unexpected(ps, p, "a digit in the exponent");
            return NULL;
        }
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    size_t n = (size_t)(p - s);
    char *t = json_alloc(ps->a, n + 1);
    memcpy(t, s, n);
    t[n] = '\0';
    v->type = JSON_NUMBER;
    v->u.n.text = t;
    if (simple && ndig <= 18) {
        int64_t i = neg ? -(int64_t)m : (int64_t)m;
        v->u.n.i = i;
        v->u.n.d = neg ? -(double)m : (double)m;
        v->nflags = JSON_NUM_INT | JSON_NUM_I64;
    } else {
        v->u.n.d = json_num_to_double(t, n);
        json_num_classify(v);
    }
    return p;
}

/* ---- containers ---------------------------------------------------------- */

static inline uint64_t key_hash(const char *k, uint32_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (uint32_t i = 0; i < n; i++) h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
    return h;
}

static inline bool same_key(const struct json_member *a, const struct json_member *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* Handles a duplicate: member j repeats member i (i < j).  Returns 0 to go
 * on (JSON_DUP_LAST: i takes j's value, j is dropped) or an error. */
static int duplicate(struct parser *ps, struct pmember *mi, struct pmember *mj)
{
    if (ps->dup == JSON_DUP_LAST) {
        mi->m.value = mj->m.value;
        mj->m.key = NULL;
        return 0;
    }
    int line = 1;
    const unsigned char *ls = ps->start;
    for (const unsigned char *q = ps->start; q < mi->key_at; q++)
        if (*q == '\n') line++, ls = q + 1;
    return fail(ps, mj->key_at, KEEL_EINVAL,
                "duplicate key \"%.*s\" in object (first at line %d, column %d); keys must be "
                "unique, remove or rename one",
                (int)(mj->m.key_len > 64 ? 64 : mj->m.key_len), mj->m.key, line,
                (int)(mi->key_at - ls) + 1);
}

/* Finds duplicate keys among members[start..nmembers). */
static int check_duplicates(struct parser *ps, size_t start)
{
    struct pmember *m = ps->members + start;
    size_t n = ps->nmembers - start;
    if (n <= 16) {
        for (size_t j = 1; j < n; j++)
            for (size_t i = 0; i < j; i++)
                if (m[i].m.key && same_key(&m[i].m, &m[j].m)) {
                    int rc = duplicate(ps, &m[i], &m[j]);
                    if (rc) return rc;
                    break;
                }
        return 0;
    }
    size_t cap = 64;
    while (cap < n * 2) cap *= 2;
    if (cap > ps->captable) {
        free(ps->table);
        ps->table = malloc(cap * sizeof *ps->table);
        if (!ps->table) abort();
        ps->captable = cap;
    }
    memset(ps->table, 0xFF, cap * sizeof *ps->table);
    for (size_t j = 0; j < n; j++) {
        size_t h = (size_t)key_hash(m[j].m.key, m[j].m.key_len) & (cap - 1);
        for (;;) {
            uint32_t i = ps->table[h];
            if (i == UINT32_MAX) {
                ps->table[h] = (uint32_t)j;
                break;
            }
            if (same_key(&m[i].m, &m[j].m)) {
                int rc = duplicate(ps, &m[i], &m[j]);
                if (rc) return rc;
                break;
            }
            h = (h + 1) & (cap - 1);
        }
    }
    return 0;
}

/* Copies the members of the innermost open object into the arena. */
static int close_object(struct parser *ps, struct frame *f)
{
    size_t n = ps->nmembers - f->start;
    if (n > 1) {
        int rc = check_duplicates(ps, f->start);
        if (rc) return rc;
    }
    struct json_member *out = json_alloc(ps->a, n * sizeof *out);
    size_t k = 0;
    for (size_t i = f->start; i < ps->nmembers; i++)
        if (ps->members[i].m.key) out[k++] = ps->members[i].m;
    f->v->u.members = out;
    f->v->len = f->v->cap = (uint32_t)k;
    ps->nmembers = f->start;
    return 0;
}

static void close_array(struct parser *ps, struct frame *f)
{
    size_t n = ps->nitems - f->start;
    struct json_value **out = json_alloc(ps->a, n * sizeof *out);
    memcpy(out, ps->items + f->start, n * sizeof *out);
    f->v->u.items = out;
    f->v->len = f->v->cap = (uint32_t)n;
    ps->nitems = f->start;
}

static int push_frame(struct parser *ps, struct json_value *v, const unsigned char *at)
{
    if (ps->nframes >= ps->max_depth)
        return fail(ps, at, KEEL_ELIMIT,
                    "nesting deeper than %zu levels; flatten the document or raise max_depth",
                    ps->max_depth);
    if (ps->nframes == ps->capframes)
        ps->frames = grow_scratch(ps->frames, &ps->capframes, sizeof *ps->frames);
    struct frame *f = &ps->frames[ps->nframes++];
    f->v = v;
    f->start = v->type == JSON_ARRAY ? ps->nitems : ps->nmembers;
    return 0;
}

/* member = string name-separator value ; p at the opening quote */
static const unsigned char *parse_key(struct parser *ps, const unsigned char *p)
{
    struct pmember *m = push_member(ps);
    m->key_at = p;
    m->m.value = NULL;
    p = parse_string(ps, p, &m->m.key, &m->m.key_len);
    if (!p) return NULL;
    p = skip_ws(ps, p);
    if (p >= ps->end || *p != ':') {
        fail_unexpected(ps, p, "':' after the object key");
        return NULL;
    }
    return p + 1;
}

/* ---- the document -------------------------------------------------------- */

/* JSON-text = ws value ws
 * value = false / null / true / object / array / number / string */
static int parse_document(struct parser *ps, struct json_value **out)
{
    const unsigned char *p = ps->start, *end = ps->end;
    struct json_value *v;
    int rc;
    if (end - p >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF)
        return fail(ps, p, KEEL_EINVAL,
                    "byte order mark (BOM) at the start; save the file as UTF-8 without BOM");
    for (;;) {
        p = skip_ws(ps, p);
        if (KEEL_UNLIKELY(p >= end)) return fail_unexpected(ps, p, "a JSON value");
        v = json_alloc(ps->a, sizeof *v);
        v->nflags = 0;
        v->len = v->cap = 0;
        v->line = ps->line;
        v->column = (int)(p - ps->line_start) + 1;
        switch (*p) {
        case '"':
            v->type = JSON_STRING;
            p = parse_string(ps, p, &v->u.s.str, &v->len);
            if (!p) return KEEL_EINVAL;
            break;
        case '-': case '0': case '1': case '2': case '3': case '4':
        case '5': case '6': case '7': case '8': case '9':
            p = parse_number(ps, p, v);
            if (!p) return KEEL_EINVAL;
            break;
        case '{':
            v->type = JSON_OBJECT;
            v->u.members = NULL;
            if ((rc = push_frame(ps, v, p))) return rc;
            p = skip_ws(ps, p + 1);
            if (p < end && *p == '}') {
                ps->nframes--;
                p++;
                break;
            }
            if (p >= end || *p != '"')
                return fail_unexpected(ps, p, "a string key or '}' to close the object");
            if (!(p = parse_key(ps, p))) return KEEL_EINVAL;
            continue;
        case '[':
            v->type = JSON_ARRAY;
            v->u.items = NULL;
            if ((rc = push_frame(ps, v, p))) return rc;
            p = skip_ws(ps, p + 1);
            if (p < end && *p == ']') {
                ps->nframes--;
                p++;
                break;
            }
            continue;
        case 't':
            if (end - p < 4 || memcmp(p, "true", 4) != 0) goto bad_literal;
            v->type = JSON_TRUE;
            p += 4;
            break;
        case 'f':
            if (end - p < 5 || memcmp(p, "false", 5) != 0) goto bad_literal;
            v->type = JSON_FALSE;
            p += 5;
            break;
        case 'n':
            if (end - p < 4 || memcmp(p, "null", 4) != 0) goto bad_literal;
            v->type = JSON_NULL;
            p += 4;
            break;
        case 'N':
        case 'I':
            return fail(ps, p, KEEL_EINVAL,
                        "NaN and Infinity are not JSON numbers; use a finite number or null");
        case ']':
            if (ps->nframes && ps->frames[ps->nframes - 1].v->type == JSON_ARRAY)
                return fail(ps, p, KEEL_EINVAL,
                            "trailing comma before ']'; remove the comma after the last item");
            return fail_unexpected(ps, p, "a JSON value");
        case '\'':
            return fail(ps, p, KEEL_EINVAL,
                        "single quotes are not JSON; use double quotes for strings");
        default:
            return fail_unexpected(ps, p, "a JSON value (object, array, string, number, true, "
                                          "false or null)");
        bad_literal:
            return fail(ps, p, KEEL_EINVAL,
                        "unknown word; the only JSON literals are true, false and null "
                        "(lower case)");
        }

        /* A value is complete: attach it, then close containers. */
        for (;;) {
            if (ps->nframes == 0) {
                p = skip_ws(ps, p);
                if (p != end)
                    return fail_unexpected(ps, p,
                                           "the end of input after the JSON value (only one "
                                           "value is allowed)");
                *out = v;
                return 0;
            }
            struct frame *f = &ps->frames[ps->nframes - 1];
            bool is_array = f->v->type == JSON_ARRAY;
            if (is_array) push_item(ps, v);
            else ps->members[ps->nmembers - 1].m.value = v;
            p = skip_ws(ps, p);
            if (p < end && *p == ',') {
                p = skip_ws(ps, p + 1);
                if (is_array) break;
                if (p < end && *p == '"') {
                    if (!(p = parse_key(ps, p))) return KEEL_EINVAL;
                    break;
                }
                if (p < end && *p == '}')
                    return fail(ps, p, KEEL_EINVAL,
                                "trailing comma before '}'; remove the comma after the last "
                                "member");
                return fail_unexpected(ps, p, "a string key after ','");
            }
            if (is_array && p < end && *p == ']') {
                close_array(ps, f);
            } else if (!is_array && p < end && *p == '}') {
                if ((rc = close_object(ps, f))) return rc;
            } else {
                return fail_unexpected(ps, p, is_array ? "',' or ']' after an array item"
                                                       : "',' or '}' after an object member");
            }
            p++;
            v = f->v;
            ps->nframes--;
        }
    }
}

int json_parse(struct arena *a, const char *text, size_t len, const struct json_parse_opts *opts,
               struct json_value **out, struct keel_err *err)
{
    struct parser ps;
    memset(&ps, 0, sizeof ps);
    ps.a = a;
    ps.err = err;
    ps.max_depth = opts && opts->max_depth ? opts->max_depth : JSON_DEFAULT_DEPTH;
    size_t max_size = opts && opts->max_size ? opts->max_size : JSON_DEFAULT_SIZE;
    if (max_size > JSON_HARD_SIZE) max_size = JSON_HARD_SIZE;
    ps.dup = opts ? opts->dup : JSON_DUP_ERROR;
    ps.file = opts ? opts->file : NULL;
    ps.start = (const unsigned char *)(text ? text : "");
    ps.end = ps.start + (text ? len : 0);
    ps.line = 1;
    ps.line_start = ps.start;
    if (len > max_size)
        return fail(&ps, ps.start, KEEL_ELIMIT,
                    "document of %zu bytes exceeds the limit of %zu bytes; split it or raise "
                    "max_size",
                    len, max_size);
    struct json_value *v = NULL;
    int rc = parse_document(&ps, &v);
    free(ps.items);
    free(ps.members);
    free(ps.frames);
    free(ps.table);
    if (rc == 0) *out = v;
    return rc;
}
