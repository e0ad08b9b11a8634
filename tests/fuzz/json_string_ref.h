/*
 * json_string_ref.h — a byte-at-a-time reference for a JSON document that
 * is one string, used to check the parser's block-scanning string code
 * (src/json/parse.c) against something obviously right: by
 * tests/unit/test_json_scan.c on generated strings and by
 * tests/fuzz/fuzz_json_string.c on whatever libFuzzer finds.
 *
 * It follows RFC 8259 and RFC 3629 directly (the UTF-8 table below is the
 * RFC's, not the parser's code) plus the parser's documented choices: an
 * error is reported at the first byte where the input stops making sense,
 * in source order; a string that never closes is reported at its opening
 * quote unless an earlier error comes first; a bad escape or a lone
 * surrogate escape is reported at its backslash.
 */
#ifndef KEEL_JSON_STRING_REF_H
#define KEEL_JSON_STRING_REF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum ref_kind {
    REF_OK = 0,
    REF_UNTERMINATED, /* the input ends inside the string (or an escape)    */
    REF_CONTROL,      /* a raw byte < 0x20                                    */
    REF_UTF8,         /* a byte that starts no valid UTF-8 sequence          */
    REF_ESCAPE,       /* a bad escape, bad \u digits or a lone surrogate     */
    REF_TRAILING,     /* something other than whitespace after the string    */
};

struct ref_result {
    enum ref_kind kind;
    size_t at;  /* error: offset of the byte the error is reported at */
    size_t len; /* success: decoded length written to out */
};

/* Length of the valid UTF-8 sequence at s (avail bytes), 0 if none
 * (RFC 3629 section 4). */
static size_t ref_utf8(const unsigned char *s, size_t avail)
{
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    size_t k;
    if (c >= 0xC2 && c <= 0xDF) k = 2;
    else if (c == 0xE0) k = 3, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) k = 3;
    else if (c == 0xED) k = 3, hi = 0x9F;
    else if (c == 0xF0) k = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) k = 4;
    else if (c == 0xF4) k = 4, hi = 0x8F;
    else return 0;
    if (avail < k || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < k; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return k;
}

static int ref_hex4(const unsigned char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i];
        int d = c >= '0' && c <= '9' ? (int)c - '0'
              : c >= 'a' && c <= 'f' ? (int)c - 'a' + 10
              : c >= 'A' && c <= 'F' ? (int)c - 'A' + 10
                                     : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t ref_put_utf8(unsigned char *o, uint32_t u)
{
    if (u < 0x80) {
        o[0] = (unsigned char)u;
        return 1;
    }
    if (u < 0x800) {
        o[0] = (unsigned char)(0xC0 | (u >> 6));
        o[1] = (unsigned char)(0x80 | (u & 0x3F));
        return 2;
    }
    if (u < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (u >> 12));
        o[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (u & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (u >> 18));
    o[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (u & 0x3F));
    return 4;
}

/* Checks and decodes doc[0..n), which starts with optional whitespace and
 * then a '"' (the caller makes sure), as a whole JSON text.  out needs n
 * bytes. */
static struct ref_result ref_string_doc(const unsigned char *doc, size_t n, unsigned char *out)
{
    struct ref_result r = {REF_OK, 0, 0};
    size_t i = 0, o = 0;
    while (i < n && doc[i] == ' ') i++;
    size_t open = i++;
    for (;;) {
        if (i >= n) return (struct ref_result){REF_UNTERMINATED, open, 0};
        unsigned c = doc[i];
        if (c == '"') break;
        if (c < 0x20) return (struct ref_result){REF_CONTROL, i, 0};
        if (c >= 0x80) {
            size_t k = ref_utf8(doc + i, n - i);
            if (!k) return (struct ref_result){REF_UTF8, i, 0};
            for (size_t j = 0; j < k; j++) out[o++] = doc[i + j];
            i += k;
            continue;
        }
        if (c != '\\') {
            out[o++] = (unsigned char)c;
            i++;
            continue;
        }
        if (i + 1 >= n) return (struct ref_result){REF_UNTERMINATED, i, 0};
        unsigned e = doc[i + 1];
        const char *simple = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        size_t s = 0;
        while (simple[s] && (unsigned char)simple[s] != e) s++;
        if (simple[s]) {
            out[o++] = (unsigned char)to[s];
            i += 2;
            continue;
        }
        if (e != 'u') return (struct ref_result){REF_ESCAPE, i, 0};
        int u = i + 6 <= n ? ref_hex4(doc + i + 2) : -1;
        if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF)) return (struct ref_result){REF_ESCAPE, i, 0};
        if (u >= 0xD800 && u <= 0xDBFF) {
            int l = i + 12 <= n && doc[i + 6] == '\\' && doc[i + 7] == 'u' ? ref_hex4(doc + i + 8)
                                                                           : -1;
            if (l < 0xDC00 || l > 0xDFFF) return (struct ref_result){REF_ESCAPE, i, 0};
            o += ref_put_utf8(out + o,
                              0x10000 + (((uint32_t)u - 0xD800) << 10) + ((uint32_t)l - 0xDC00));
            i += 12;
            continue;
        }
        o += ref_put_utf8(out + o, (uint32_t)u);
        i += 6;
    }
    for (i++; i < n; i++)
        if (doc[i] != ' ' && doc[i] != '\t' && doc[i] != '\n' && doc[i] != '\r')
            return (struct ref_result){REF_TRAILING, i, 0};
    r.len = o;
    return r;
}

/* Does the parser's message msg name the error kind k? */
static int ref_kind_matches(enum ref_kind k, const char *msg)
{
    switch (k) {
    case REF_OK: return 1;
    case REF_UNTERMINATED: return strstr(msg, "unterminated string") != NULL;
    case REF_CONTROL: return strstr(msg, "raw control character") != NULL;
    case REF_UTF8: return strstr(msg, "invalid UTF-8 byte") != NULL;
    case REF_ESCAPE: return strstr(msg, "escape") != NULL || strstr(msg, "surrogate") != NULL;
    case REF_TRAILING: return strstr(msg, "the end of input") != NULL;
    }
    return 0;
}

/* Line and column (1-based, columns count bytes) of offset at, as the
 * parser counts them. */
static void ref_position(const unsigned char *doc, size_t at, int *line, int *column)
{
    size_t ls = 0;
    *line = 1;
    for (size_t i = 0; i < at; i++)
        if (doc[i] == '\n') ++*line, ls = i + 1;
    *column = (int)(at - ls) + 1;
}

#endif
