/*
 * internal.h — what the files of src/json/ share and nothing else includes:
 * the decimal view of a number text (number.c), the ECMAScript double
 * formatter (number.c), UTF-8 decoding (write.c), the block scanner of string
 * bytes (SSE2 or 64-bit words), and the inline arena bump used by the parser
 * and the builders.
 */
#ifndef KEEL_JSON_INTERNAL_H
#define KEEL_JSON_INTERNAL_H

#include "json.h"

#include <string.h>

/* Exponents in number texts are saturated to +-JSON_EXP_SAT while decoding,
 * so exponent arithmetic never overflows.  Numbers whose exponents exceed
 * this differ only in comparisons between two such absurd numbers. */
#define JSON_EXP_SAT 1000000000000000LL

/* A number text seen as sign * 0.D * 10^point, where D are the significant
 * digits (no leading or trailing zeros).  D is the concatenation of two
 * ranges of the text (integer part, fraction part) from index lo on. */
struct json_dec {
    bool neg;
    bool zero;
    const char *ip; /* integer digits */
    size_t nip;
    const char *fp; /* fraction digits */
    size_t nfp;
    size_t lo;      /* index of the first significant digit in ip ++ fp */
    size_t ndig;    /* number of significant digits (0 for zero) */
    int64_t point;  /* decimal point position */
};

static inline char json_dec_digit(const struct json_dec *d, size_t i)
{
    size_t k = d->lo + i;
    return k < d->nip ? d->ip[k] : d->fp[k - d->nip];
}

/* Decodes a valid JSON number text (not checked here; callers pass texts
 * the parser or json_number_text validated). */
void json_dec_init(struct json_dec *d, const char *text);

/* Sets nflags and i of a number value from its text (general path). */
void json_num_classify(struct json_value *v);

/* Nearest double of a valid number text of len bytes (NUL-terminated). */
double json_num_to_double(const char *text, size_t len);

/* 10^0 .. 10^22, the powers of ten that are exact doubles. */
extern const double json_pow10[23];

/* Length of the longest prefix of s[0..len) that is a JSON number; 0 if
 * none. */
size_t json_num_scan(const char *s, size_t len);

/* Writes d (finite) in ECMAScript Number.prototype.toString form into out
 * (at least 32 bytes), NUL-terminated; returns the length. */
size_t json_format_double(double d, char *out);

/* Decodes one UTF-8 sequence at s (n bytes available).  Returns its length
 * (1..4) and the code point in *cp, or 0 if the bytes are not valid UTF-8
 * (overlong, surrogate, beyond U+10FFFF, truncated). */
int json_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* ---- scanning string bytes a block at a time -------------------------------
 *
 * Each function looks at the JSON_BLOCK bytes at q (the caller guarantees
 * they are readable) and returns a mask that is nonzero iff one of them is
 * of the kind it looks for; json_block_first(mask) is then the index of
 * the first such byte.  Kinds:
 *   json_block_special     '"', '\\', a control (< 0x20), non-ASCII (>= 0x80)
 *   json_block_quote_bs    '"' and '\\'
 *   json_block_ctrl_high   controls and non-ASCII
 * and json_block_copy_bs, the mask of backslashes, also copies the block to
 * o (which must have room for JSON_BLOCK bytes).
 *
 * With SSE2 (every x86-64) a block is 32 bytes, two 16-byte vectors: one
 * signed compare against 0x20 catches both the control and the non-ASCII
 * bytes.  32 rather than 16 because in text where something needs
 * attention every dozen bytes or so (non-ASCII words, escapes) the branch
 * "is there anything in this block" is then mostly taken, which the
 * processor predicts; 64 predicts better still but costs small documents
 * more (the last block's worth of input is scanned byte by byte).
 * Elsewhere a block is one 64-bit word (loaded first byte lowest) tested
 * with the "has a zero byte" trick; its borrows only ever flag bytes above
 * a real hit, so the lowest flagged byte is exact.  -DJSON_NO_SSE2 forces
 * the word form (to test it on x86-64). */
/* Loads 8 bytes with q[0] in the low byte, so the first byte is the lowest. */
static inline uint64_t json_load8(const unsigned char *q)
{
    uint64_t x;
    memcpy(&x, q, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return x;
}

/* Loads 4 bytes the same way. */
static inline uint32_t json_load4(const unsigned char *q)
{
    uint32_t x;
    memcpy(&x, q, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap32(x);
#endif
    return x;
}

#define JSON_ONES 0x0101010101010101ULL
#define JSON_HIGH 0x8080808080808080ULL

/* The word form of json_block_special, for the 8 bytes of x (first byte
 * lowest); json_block_first's word form is ctz / 8. */
static inline uint64_t json_word_special(uint64_t x)
{
    uint64_t q = x ^ (JSON_ONES * '"'), b = x ^ (JSON_ONES * '\\');
    return (((q - JSON_ONES) & ~q) | ((b - JSON_ONES) & ~b) | (x - JSON_ONES * 0x20) | x) &
           JSON_HIGH;
}

#if defined(__SSE2__) && !defined(JSON_NO_SSE2)
#include <emmintrin.h>

#define JSON_BLOCK 32

static inline __m128i json_lo(const unsigned char *q)
{
    return _mm_loadu_si128((const __m128i *)(const void *)q);
}

static inline __m128i json_hi(const unsigned char *q)
{
    return _mm_loadu_si128((const __m128i *)(const void *)(q + 16));
}

static inline void json_store(unsigned char *o, __m128i lo, __m128i hi)
{
    _mm_storeu_si128((__m128i *)(void *)o, lo);
    _mm_storeu_si128((__m128i *)(void *)(o + 16), hi);
}

static inline unsigned json_vec_special(__m128i x)
{
    __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                            _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
                               _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)));
    return (unsigned)_mm_movemask_epi8(hit);
}

static inline unsigned json_vec_quote_bs(__m128i x)
{
    __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                               _mm_cmpeq_epi8(x, _mm_set1_epi8('\\')));
    return (unsigned)_mm_movemask_epi8(hit);
}

static inline unsigned json_vec_ctrl_high(__m128i x)
{
    return (unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)));
}

static inline unsigned json_vec_bs(__m128i x)
{
    return (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('\\')));
}

static inline unsigned json_block_special(const unsigned char *q)
{
    return json_vec_special(json_lo(q)) | (json_vec_special(json_hi(q)) << 16);
}

static inline unsigned json_block_quote_bs(const unsigned char *q)
{
    return json_vec_quote_bs(json_lo(q)) | (json_vec_quote_bs(json_hi(q)) << 16);
}

static inline unsigned json_block_ctrl_high(const unsigned char *q)
{
    return json_vec_ctrl_high(json_lo(q)) | (json_vec_ctrl_high(json_hi(q)) << 16);
}

static inline unsigned json_block_copy_bs(unsigned char *o, const unsigned char *q)
{
    __m128i lo = json_lo(q), hi = json_hi(q);
    json_store(o, lo, hi);
    return json_vec_bs(lo) | (json_vec_bs(hi) << 16);
}

static inline size_t json_block_first(unsigned mask)
{
    return (size_t)__builtin_ctz(mask);
}

#else /* portable: one 64-bit word */

#define JSON_BLOCK 8

static inline uint64_t json_block_special(const unsigned char *q)
{
    return json_word_special(json_load8(q));
}

static inline uint64_t json_block_ctrl_high(const unsigned char *q)
{
    uint64_t x = json_load8(q);
    return ((x - JSON_ONES * 0x20) | x) & JSON_HIGH;
}

static inline uint64_t json_block_copy_bs(unsigned char *o, const unsigned char *q)
{
    memcpy(o, q, 8);
    uint64_t x = json_load8(q) ^ (JSON_ONES * '\\');
    return (x - JSON_ONES) & ~x & JSON_HIGH;
}

static inline uint64_t json_block_quote_bs(const unsigned char *q)
{
    uint64_t x = json_load8(q);
    uint64_t qx = x ^ (JSON_ONES * '"'), bx = x ^ (JSON_ONES * '\\');
    return (((qx - JSON_ONES) & ~qx) | ((bx - JSON_ONES) & ~bx)) & JSON_HIGH;
}

static inline size_t json_block_first(uint64_t mask)
{
    return (size_t)__builtin_ctzll(mask) >> 3;
}
#endif

/* The byte-at-a-time form of json_block_special. */
static inline bool json_byte_special(unsigned char c)
{
    return c < 0x20 || c >= 0x80 || c == '"' || c == '\\';
}

/* The first byte in [q, end) that json_block_special flags, or end: block
 * by block, then the last few bytes word by word and byte by byte (short
 * strings are mostly such tails). */
static inline const unsigned char *json_find_special(const unsigned char *q,
                                                     const unsigned char *end)
{
    while (end - q >= JSON_BLOCK) {
        uint64_t m = json_block_special(q);
        if (m) return q + json_block_first(m);
        q += JSON_BLOCK;
    }
    while (end - q >= 8) {
        uint64_t m = json_word_special(json_load8(q));
        if (m) return q + ((size_t)__builtin_ctzll(m) >> 3);
        q += 8;
    }
    while (q < end && !json_byte_special(*q)) q++;
    return q;
}

/* Arena bump without a call in the common case (same contract as
 * arena_alloc). */
static inline void *json_alloc(struct arena *a, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    if (KEEL_LIKELY(a->ptr && (size_t)(a->end - a->ptr) >= size && size)) {
        void *p = a->ptr;
        a->ptr += size;
        a->total += size;
        return p;
    }
    return arena_alloc(a, size);
}

#endif
