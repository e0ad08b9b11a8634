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
 * Speed: string bodies are scanned a block at a time (16 bytes with SSE2,
 * else one 64-bit word; internal.h) for the bytes that need attention ('"',
 * '\\', < 0x20, >= 0x80), and the position of the first one comes straight
 * from the block's mask.  Runs of non-ASCII text are validated sequence
 * after sequence without going back to the scan, each sequence checked as
 * one 32-bit word.  A string without escapes is then copied whole; one
 * with escapes has its closing quote found first (a scan for '"' and '\\'
 * only), so its copy can be sized from the source and decoded in a single
 * validating pass that moves plain bytes a block at a time.  Numbers get
 * their value while they are scanned (8 digits at a time) unless they need
 * the general code of number.c.  Arena allocation is inlined (json_alloc),
 * short texts are copied as one or two words, and duplicate keys in small
 * objects are looked for only among keys with the same cheap signature.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
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

    /* The scratch stacks start here, on the caller's stack, so a small
     * document (a tool call, an MCP message) parses without malloc. */
    struct json_value *items0[32];
    struct pmember members0[32];
    struct frame frames0[16];
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

/* Doubles a scratch stack; the first growth moves it off the inline
 * buffer first0 into the heap. */
static void *grow_scratch(void *p, const void *first0, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 64;
    void *q;
    if (p == first0) {
        q = malloc(ncap * elem);
        if (q && *cap) memcpy(q, p, *cap * elem);
    } else {
        q = realloc(p, ncap * elem);
    }
    if (!q) abort(); /* bounded by the input size cap */
    *cap = ncap;
    return q;
}

static inline void push_item(struct parser *ps, struct json_value *v)
{
    if (KEEL_UNLIKELY(ps->nitems == ps->capitems))
        ps->items = grow_scratch(ps->items, ps->items0, &ps->capitems, sizeof *ps->items);
    ps->items[ps->nitems++] = v;
}

static inline struct pmember *push_member(struct parser *ps)
{
    if (KEEL_UNLIKELY(ps->nmembers == ps->capmembers))
        ps->members =
            grow_scratch(ps->members, ps->members0, &ps->capmembers, sizeof *ps->members);
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

/* Copies n bytes from s (input, end bounds it) to a fresh NUL-terminated
 * arena string.  Short texts (keys, numbers) are copied as one or two 8-byte
 * words: the arena rounds every allocation up to 8 bytes, and the input has
 * the bytes to read. */
static inline char *copy_text(struct parser *ps, const unsigned char *s, size_t n)
{
    char *d = json_alloc(ps->a, n + 1);
    if (n < 16 && ps->end - s >= 16) {
        memcpy(d, s, 8);
        if (n >= 8) memcpy(d + 8, s + 8, 8);
    } else {
        memcpy(d, s, n);
    }
    d[n] = '\0';
    return d;
}

/* Skips bytes that need no attention; returns the first one that does
 * (or end). */
static inline const unsigned char *scan_plain(const unsigned char *q, const unsigned char *end)
{
    return json_find_special(q, end);
}

/* Hex digit values plus one (0: not a hex digit). */
static const uint8_t hex1[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,
    ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14,
    ['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15,
    ['F'] = 16,
};

/* Reads 4 hex digits at q (bounds checked by the caller); -1 if invalid. */
static inline int32_t hex4(const unsigned char *q)
{
    int a = hex1[q[0]], b = hex1[q[1]], c = hex1[q[2]], d = hex1[q[3]];
    if (!a || !b || !c || !d) return -1;
    return ((a - 1) << 12) | ((b - 1) << 8) | ((c - 1) << 4) | (d - 1);
}

/* Reports a control byte or a byte that starts no valid UTF-8 sequence. */
static int bad_string_byte(struct parser *ps, const unsigned char *q)
{
    if (*q < 0x20)
        return fail(ps, q, KEEL_EINVAL,
                    "raw control character U+%04X inside a string; write it escaped as \\u%04X",
                    *q, *q);
    return fail(ps, q, KEEL_EINVAL,
                "invalid UTF-8 byte 0x%02X inside a string; the text must be UTF-8 encoded", *q);
}

/* The byte each one-character escape stands for; 0: not an escape. */
static const unsigned char simple_escape[256] = {
    ['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b',
    ['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t',
};

static inline unsigned char *put_utf8(unsigned char *o, uint32_t u)
{
    if (u < 0x80) {
        *o++ = (unsigned char)u;
    } else if (u < 0x800) {
        *o++ = (unsigned char)(0xC0 | (u >> 6));
        *o++ = (unsigned char)(0x80 | (u & 0x3F));
    } else if (u < 0x10000) {
        *o++ = (unsigned char)(0xE0 | (u >> 12));
        *o++ = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (u & 0x3F));
    } else {
        *o++ = (unsigned char)(0xF0 | (u >> 18));
        *o++ = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
        *o++ = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
        *o++ = (unsigned char)(0x80 | (u & 0x3F));
    }
    return o;
}

/* Decodes the escape at q (q[0] == '\\', lim bounds the bytes it may use)
 * into *o, advancing *o by its UTF-8 length (at most 4, never more than the
 * escape's source length).  Returns the escape's source length, or 0 after
 * an error positioned at q. */
static size_t decode_escape(struct parser *ps, const unsigned char *q, const unsigned char *lim,
                            unsigned char **o)
{
    if (lim - q < 2) {
        fail(ps, q, KEEL_EINVAL, "unterminated string: the input ends inside an escape");
        return 0;
    }
    unsigned char c = q[1];
    if (c != 'u') {
        unsigned char e = simple_escape[c];
        if (KEEL_LIKELY(e)) {
            *(*o)++ = e;
            return 2;
        }
        char what[32];
        describe(q + 1, ps->end, what, sizeof what);
        fail(ps, q, KEEL_EINVAL,
             "invalid escape '\\' followed by %s; valid escapes are \\\" \\\\ \\/ \\b \\f \\n "
             "\\r \\t \\uXXXX",
             what);
        return 0;
    }
    int32_t u = lim - q >= 6 ? hex4(q + 2) : -1;
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
        int32_t l = lim - q >= 12 && q[6] == '\\' && q[7] == 'u' ? hex4(q + 8) : -1;
        if (l < 0xDC00 || l > 0xDFFF) {
            fail(ps, q, KEEL_EINVAL,
                 "lone high surrogate \\u%04X; it must be followed by a low surrogate "
                 "\\uDC00-\\uDFFF",
                 (unsigned)u);
            return 0;
        }
        *o = put_utf8(*o, 0x10000 + (((uint32_t)u - 0xD800) << 10) + ((uint32_t)l - 0xDC00));
        return 12;
    }
    *o = put_utf8(*o, (uint32_t)u);
    return 6;
}

/* Length of the valid UTF-8 sequence at q (q[0] >= 0x80; lim bounds the
 * bytes that may be read), 0 if there is none (RFC 3629 section 4: no
 * overlongs, no surrogates, nothing beyond U+10FFFF, no truncation).
 * With 4 bytes readable the sequence is checked as one 32-bit word (first
 * byte lowest): the lead and continuation bits against a pattern per
 * length, then the few values those patterns let through:
 *   2 bytes: C0 and C1 (overlong) have lead bits 1-4 all zero;
 *   3 bytes: E0 followed by 80-9F (overlong) has lead nibble 0 and bit 5 of
 *            the second byte 0; ED followed by A0-BF (surrogates) has
 *            nibble D and that bit 1;
 *   4 bytes: the plane (lead bits 0-2, second byte bits 4-5) must be 1-16.
 * Near the end of the input json_utf8_decode does the same. */
static inline int utf8_seq(const unsigned char *q, const unsigned char *lim)
{
    if (KEEL_LIKELY(lim - q >= 4)) {
        uint32_t w = json_load4(q);
        if ((w & 0xC0E0u) == 0x80C0u) return (w & 0x1Eu) ? 2 : 0;
        if ((w & 0xC0C0F0u) == 0x8080E0u) {
            uint32_t t = w & 0x200Fu;
            return t && t != 0x200Du ? 3 : 0;
        }
        if ((w & 0xC0C0C0F8u) == 0x808080F0u) {
            uint32_t plane = ((w & 7u) << 2) | ((w >> 12) & 3u);
            return plane - 1 < 16 ? 4 : 0;
        }
        return 0;
    }
    uint32_t cp;
    return json_utf8_decode(q, (size_t)(lim - q), &cp);
}

/* Validates the run of non-ASCII sequences at q (q[0] >= 0x80) and returns
 * the first byte after it, or NULL after an error.  Non-ASCII text comes in
 * runs (words of CJK, emoji), so the loop stays here instead of going back
 * to the block scan after every character. */
static inline const unsigned char *skip_utf8(struct parser *ps, const unsigned char *q,
                                             const unsigned char *lim)
{
    do {
        int k = utf8_seq(q, lim);
        if (KEEL_UNLIKELY(!k)) {
            bad_string_byte(ps, q);
            return NULL;
        }
        q += k;
    } while (q < lim && *q >= 0x80);
    return q;
}

/* The closing quote of a string whose escapes start at or after q: the
 * first '"' not taken by a backslash (whatever the escape is; the decoder
 * checks it).  NULL if the input ends first. */
static const unsigned char *find_close(const unsigned char *q, const unsigned char *end)
{
    for (;;) {
        while (end - q >= JSON_BLOCK) {
            uint64_t m = json_block_quote_bs(q);
            if (m) {
                q += json_block_first(m);
                goto hit;
            }
            q += JSON_BLOCK;
        }
        while (q < end && *q != '"' && *q != '\\') q++;
        if (q >= end) return NULL;
    hit:
        if (*q == '"') return q;
        if (end - q <= 2) return NULL;
        q += 2;
    }
}

/* A string that does not end: reports the first error in it from q on
 * (a bad escape or byte, else the missing quote).  Returns NULL. */
static const unsigned char *unterminated(struct parser *ps, const unsigned char *p,
                                         const unsigned char *q)
{
    const unsigned char *end = ps->end;
    unsigned char tmp[4];
    for (;;) {
        q = scan_plain(q, end);
        if (q >= end) break;
        if (*q == '\\') {
            unsigned char *o = tmp;
            size_t k = decode_escape(ps, q, end, &o);
            if (!k) return NULL;
            q += k;
        } else if (*q >= 0x80) {
            if (!(q = skip_utf8(ps, q, end))) return NULL;
        } else if (*q < 0x20) {
            bad_string_byte(ps, q);
            return NULL;
        } else {
            break; /* a quote: cannot happen, find_close found none */
        }
    }
    fail(ps, p, KEEL_EINVAL, "unterminated string: no closing '\"' before the end");
    return NULL;
}

/* The first byte in [q, close) that is a raw control character or starts
 * no valid UTF-8 sequence, or NULL.  Reads stay below end (blocks may look
 * past close; what they find there is ignored). */
static const unsigned char *first_bad_byte(const unsigned char *q, const unsigned char *close,
                                           const unsigned char *end)
{
    for (;;) {
        if (end - q >= JSON_BLOCK) {
            uint64_t m = json_block_ctrl_high(q);
            if (!m) {
                q += JSON_BLOCK;
                if (q >= close) return NULL;
                continue;
            }
            q += json_block_first(m);
            if (q >= close) return NULL;
        } else {
            while (q < close && *q >= 0x20 && *q < 0x80) q++;
            if (q >= close) return NULL;
        }
        if (*q < 0x20) return q;
        do {
            int k = utf8_seq(q, end);
            if (KEEL_UNLIKELY(!k)) return q;
            q += k;
        } while (q < close && *q >= 0x80);
        if (q >= close) return NULL;
    }
}

/* The rest of a string from its first escape at q.  Three scans of the
 * rest, each with one kind of stop, which branch predictors handle better
 * than one scan that sorts every stop into escape, UTF-8 or error: find
 * the closing quote (so the copy can be sized from the source: the decoded
 * text is never longer), find the first bad byte if any, then copy plain
 * bytes a block at a time and decode the escapes.  Errors come out in
 * source order: a bad escape before the first bad byte wins, else the bad
 * byte.  Arguments and result as parse_string. */
static const unsigned char *parse_escaped(struct parser *ps, const unsigned char *p,
                                          const unsigned char *q, const char **str,
                                          uint32_t *len)
{
    const unsigned char *s = p + 1, *end = ps->end, *close = find_close(q, end);
    if (!close) return unterminated(ps, p, q);
    const unsigned char *bad = first_bad_byte(q, close, end);
    /* JSON_BLOCK spare bytes let blocks be stored whole near the end; the
     * copy shrinks to the decoded length below. */
    size_t cap = (size_t)(close - s) + JSON_BLOCK;
    unsigned char *d = json_alloc(ps->a, cap), *o = d + (q - s);
    memcpy(d, s, (size_t)(q - s));
    /* Invariant: o - d <= q - s < close - s, so a block stored at o stays
     * inside the cap bytes. */
    for (;;) {
        if (end - q >= JSON_BLOCK) {
            uint64_t m = json_block_copy_bs(o, q);
            size_t i = m ? json_block_first(m) : JSON_BLOCK;
            if (q + i >= close) {
                o += close - q;
                break;
            }
            q += i;
            o += i;
            if (!m) continue;
        } else {
            while (q < close && *q != '\\') *o++ = *q++;
            if (q >= close) break;
        }
        if (KEEL_UNLIKELY(bad && bad < q)) break;
        unsigned char e = simple_escape[q[1]]; /* q[1] < close: see find_close */
        if (KEEL_LIKELY(e)) {
            *o++ = e;
            q += 2;
            continue;
        }
        size_t k = decode_escape(ps, q, close, &o);
        if (!k) return NULL;
        q += k;
    }
    if (bad) {
        bad_string_byte(ps, bad);
        return NULL;
    }
    *o = '\0';
    size_t n = (size_t)(o - d);
    /* Give back the bytes the escapes saved and the spare block when this
     * is the arena's last allocation (it is, unless the string got a chunk
     * of its own). */
    size_t have = (cap + 7) & ~(size_t)7, need = (n + 1 + 7) & ~(size_t)7;
    if ((char *)d + have == ps->a->ptr) {
        ps->a->ptr -= have - need;
        ps->a->total -= have - need;
    }
    *str = (const char *)d;
    *len = (uint32_t)n;
    return close + 1;
}

/* string = quotation-mark *char quotation-mark
 * p points at the opening quote.  Sets *str and *len to an arena copy and
 * returns the byte after the closing quote, or NULL after an error.
 * Strings without escapes (the common case) are validated in one scan and
 * copied whole. */
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
        unsigned char c = *q;
        if (c == '"') {
            *str = copy_text(ps, s, (size_t)(q - s));
            *len = (uint32_t)(q - s);
            return q + 1;
        }
        if (c == '\\') return parse_escaped(ps, p, q, str, len);
        if (KEEL_UNLIKELY(c < 0x80)) {
            bad_string_byte(ps, q);
            return NULL;
        }
        if (!(q = skip_utf8(ps, q, end))) return NULL;
    }
}

/* ---- numbers ------------------------------------------------------------- */

/* Are all 8 bytes of x (first byte lowest) ASCII digits?  A byte is a
 * digit iff its high nibble is 3 and adding 6 leaves it 3 (0x30-0x39). */
static inline bool eight_digits(uint64_t x)
{
    return ((x & 0xF0F0F0F0F0F0F0F0ULL) |
            (((x + 0x0606060606060606ULL) & 0xF0F0F0F0F0F0F0F0ULL) >> 4)) ==
           0x3333333333333333ULL;
}

/* The value of 8 ASCII digits (first byte lowest, most significant), by
 * combining neighbours: pairs (10a + b), then quads, then the 8 digits. */
static inline uint64_t eight_digits_value(uint64_t x)
{
    x -= 0x3030303030303030ULL;
    x = (x * 10 + (x >> 8)) & 0x00FF00FF00FF00FFULL;    /* 4 values 0..99 in 16-bit lanes */
    x = (x * 100 + (x >> 16)) & 0x0000FFFF0000FFFFULL;  /* 2 values 0..9999 in 32-bit lanes */
    return (x * 10000 + (x >> 32)) & 0xFFFFFFFFULL;      /* 0..99999999 */
}

/* number = [ minus ] int [ frac ] [ exp ]
 *
 * The value is worked out while the text is scanned when the digits fit in
 * 64 bits: integers of up to 20 digits get d (one correctly rounded
 * conversion) and i; decimals with at most 19 digits and a power of ten
 * within 10^+-22 get d by Clinger's fast path (an exact mantissa <= 2^53
 * divided by an exact power of ten, one rounding) when their last
 * significant digit is after the point, so they are not integers.  The rest
 * (integers spelled with a point or an exponent, long or huge numbers)
 * goes through the general code of number.c, which gives the same results
 * (both are correctly rounded and exact). */
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
    uint64_t m = 0;       /* the digits read so far, while ndig <= 19 */
    size_t ndig = 0;      /* digits in the integer and fraction parts  */
    bool wide = false;    /* an integer of 20 digits that overflowed m  */
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
        const unsigned char *d0 = p;
        if (end - p >= 8 && eight_digits(json_load8(p))) {
            m = eight_digits_value(json_load8(p));
            p += 8;
            if (end - p >= 8 && eight_digits(json_load8(p))) {
                m = m * 100000000 + eight_digits_value(json_load8(p));
                p += 8;
            }
        }
        const unsigned char *lim = end - p > 19 - (p - d0) ? d0 + 19 : end;
        while (p < lim && (unsigned char)(*p - '0') < 10) m = m * 10 + (uint64_t)(*p++ - '0');
        if (p < end && *p >= '0' && *p <= '9') {
            /* a 20th digit fits unless it overflows */
            if (__builtin_mul_overflow(m, 10, &m) || __builtin_add_overflow(m, (uint64_t)(*p - '0'), &m))
                wide = true;
            p++;
            while (p < end && *p >= '0' && *p <= '9') p++, wide = true;
        }
        ndig = (size_t)(p - d0);
    }
    bool frac = false, expo = false;
    int64_t e10 = 0; /* value = m * 10^e10 while ndig <= 19 */
    if (p < end && *p == '.') {
        frac = true;
        p++;
        if (p >= end || *p < '0' || *p > '9') {
            fail_unexpected(ps, p, "a digit after the decimal point");
            return NULL;
        }
        const unsigned char *f0 = p;
        while (p < end && *p >= '0' && *p <= '9') {
            if (ndig < 19) m = m * 10 + (uint64_t)(*p - '0');
            ndig++;
            p++;
        }
        e10 = -(int64_t)(p - f0);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        expo = true;
        p++;
        bool eneg = false;
        if (p < end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
        if (p >= end || *p < '0' || *p > '9') {
            fail_unexpected(ps, p, "a digit in the exponent");
            return NULL;
        }
        int64_t x = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (x < 1000000) x = x * 10 + (*p - '0'); /* saturated: only |e10| <= 22 is used */
            p++;
        }
        e10 += eneg ? -x : x;
    }
    size_t n = (size_t)(p - s);
    char *t = copy_text(ps, s, n);
    v->type = JSON_NUMBER;
    v->u.n.text = t;
    if (!frac && !expo && !wide) {
        /* an integer below 2^64 */
        v->u.n.d = neg ? -(double)m : (double)m;
        v->u.n.i = 0;
        v->nflags = JSON_NUM_INT;
        if (m <= (uint64_t)INT64_MAX) {
            v->u.n.i = neg ? -(int64_t)m : (int64_t)m;
            v->nflags |= JSON_NUM_I64;
        } else if (neg && m == (uint64_t)INT64_MAX + 1) {
            v->u.n.i = INT64_MIN;
            v->nflags |= JSON_NUM_I64;
        }
        return p;
    }
    if (ndig <= 19 && !wide) {
        if (m == 0) {
            v->u.n.d = neg ? -0.0 : 0.0;
            v->u.n.i = 0;
            v->nflags = JSON_NUM_INT | JSON_NUM_I64;
            return p;
        }
        while (m % 10 == 0) m /= 10, e10++;
        if (e10 < 0 && e10 >= -22 && m <= (uint64_t)1 << 53) {
            /* not an integer: the last significant digit is after the point */
            double r = (double)m / json_pow10[-e10];
            v->u.n.d = neg ? -r : r;
            v->u.n.i = 0;
            v->nflags = 0;
            return p;
        }
    }
    v->u.n.d = json_num_to_double(t, n);
    json_num_classify(v);
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
    /* keys are NUL-terminated, so key[0] is readable even when empty */
    return a->key_len == b->key_len && a->key[0] == b->key[0] &&
           memcmp(a->key, b->key, a->key_len) == 0;
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
        /* A 64-bit set of cheap key signatures: a key whose signature is
         * new cannot repeat an earlier key, so only the rest are compared
         * with the keys before them. */
        uint64_t seen = 0;
        for (size_t j = 0; j < n; j++) {
            const struct json_member *k = &m[j].m;
            unsigned sig = (k->key_len * 7u + (unsigned char)k->key[0] +
                            (unsigned char)k->key[k->key_len ? k->key_len - 1 : 0] * 3u) & 63u;
            uint64_t bit = (uint64_t)1 << sig;
            if (seen & bit) {
                for (size_t i = 0; i < j; i++)
                    if (m[i].m.key && same_key(&m[i].m, k)) {
                        int rc = duplicate(ps, &m[i], &m[j]);
                        if (rc) return rc;
                        break;
                    }
            }
            seen |= bit;
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
        ps->frames = grow_scratch(ps->frames, ps->frames0, &ps->capframes, sizeof *ps->frames);
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
    memset(&ps, 0, offsetof(struct parser, items0));
    ps.items = ps.items0;
    ps.capitems = KEEL_ARRAY_LEN(ps.items0);
    ps.members = ps.members0;
    ps.capmembers = KEEL_ARRAY_LEN(ps.members0);
    ps.frames = ps.frames0;
    ps.capframes = KEEL_ARRAY_LEN(ps.frames0);
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
    if (ps.items != ps.items0) free(ps.items);
    if (ps.members != ps.members0) free(ps.members);
    if (ps.frames != ps.frames0) free(ps.frames);
    free(ps.table);
    if (rc == 0) *out = v;
    return rc;
}
