/*
 * internal.h — what the files of src/json/ share and nothing else includes:
 * the decimal view of a number text (number.c), the ECMAScript double
 * formatter (number.c), UTF-8 decoding (write.c), and the inline arena bump
 * used by the parser and the builders.
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
