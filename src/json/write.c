/*
 * write.c — JSON text from values: compact, pretty (two-space indent), and
 * RFC 8785 canonical (JCS), plus the canonical digest.
 *
 * Output is always valid UTF-8 JSON: a string holding bytes that are not
 * valid UTF-8 (possible only for values built with json_string) gets
 * U+FFFD for each bad byte, so a writer never emits text the parser would
 * refuse.
 *
 * Escaping (all modes): '"' and '\\', the controls with short forms (\b \t
 * \n \f \r), other controls below 0x20 as \u00xx (lowercase hex, as RFC
 * 8785 section 3.2.2.2 and JSON.stringify do).  Everything else is written
 * as is, unless JSON_WRITE_ASCII asks for \uXXXX (surrogate pairs beyond the
 * BMP).  JSON_WRITE_CANONICAL ignores JSON_WRITE_ASCII and JSON_WRITE_PRETTY:
 * the canonical form is exactly one text.
 *
 * Numbers: compact and pretty output re-emit the number's text; canonical
 * output writes its nearest double in ECMAScript form (json_format_double),
 * and fails for numbers whose double overflows (1e400).
 *
 * Plain runs of strings are found a block at a time (internal.h) and
 * copied whole.
 *
 * Invariant of the hot path: text is written through a raw pointer into
 * reserved buffer space; b->len and the buffer's NUL are brought up to
 * date before any call that may reallocate and at the end.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* How each ASCII byte is written inside a string: 0 as is, 'u' as \u00xx,
 * anything else as a backslash and that character. */
static const char escape_of[128] = {
    ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r',
    [0x00] = 'u', [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u', [0x05] = 'u',
    [0x06] = 'u', [0x07] = 'u', [0x0B] = 'u', [0x0E] = 'u', [0x0F] = 'u', [0x10] = 'u',
    [0x11] = 'u', [0x12] = 'u', [0x13] = 'u', [0x14] = 'u', [0x15] = 'u', [0x16] = 'u',
    [0x17] = 'u', [0x18] = 'u', [0x19] = 'u', [0x1A] = 'u', [0x1B] = 'u', [0x1C] = 'u',
    [0x1D] = 'u', [0x1E] = 'u', [0x1F] = 'u', ['"'] = '"', ['\\'] = '\\',
};

static const char hexdig[] = "0123456789abcdef";

static char *put_u(char *o, uint32_t u)
{
    o[0] = '\\';
    o[1] = 'u';
    o[2] = hexdig[(u >> 12) & 15];
    o[3] = hexdig[(u >> 8) & 15];
    o[4] = hexdig[(u >> 4) & 15];
    o[5] = hexdig[u & 15];
    return o + 6;
}

/* Appends the string literal of s; ascii: escape all non-ASCII. */
static void write_str(struct buf *b, const char *str, size_t len, bool ascii)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    buf_reserve(b, len + 2);
    char *o = b->data + b->len;
    *o++ = '"';
    for (;;) {
        /* Copy the plain run. */
        const unsigned char *r = json_find_special(s, end);
        memcpy(o, s, (size_t)(r - s));
        o += r - s;
        s = r;
        if (s >= end) break;
        /* One byte or sequence that needs attention: make room for its
         * escaped form (at most 12 bytes) plus what remains unescaped. */
        b->len = (size_t)(o - b->data);
        buf_reserve(b, 12 + (size_t)(end - s) + 1);
        o = b->data + b->len;
        if (*s < 0x80) {
            char e = escape_of[*s];
            if (e == 'u') {
                o = put_u(o, *s);
            } else {
                *o++ = '\\';
                *o++ = e;
            }
            s++;
            continue;
        }
        uint32_t cp;
        int k = json_utf8_decode(s, (size_t)(end - s), &cp);
        if (!k) {
            /* Not UTF-8 (only possible in built values): U+FFFD. */
            cp = 0xFFFD;
            if (!ascii) {
                memcpy(o, "\xEF\xBF\xBD", 3);
                o += 3;
                s++;
                continue;
            }
            k = 1;
        }
        if (ascii) {
            if (cp >= 0x10000) {
                o = put_u(o, 0xD800 + ((cp - 0x10000) >> 10));
                o = put_u(o, 0xDC00 + ((cp - 0x10000) & 0x3FF));
            } else {
                o = put_u(o, cp);
            }
        } else {
            memcpy(o, s, (size_t)k);
            o += k;
        }
        s += k;
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

void json_write_string(struct buf *out, const char *s, size_t len)
{
    write_str(out, s ? s : "", s ? len : 0, false);
}

/* ---- canonical member order ---------------------------------------------- */

/* Compares two keys by their UTF-16 code units (RFC 8785 section 3.2.3).
 * UTF-8 byte order equals code point order, which differs from UTF-16
 * order only between U+E000..U+FFFF and supplementary characters. */
static int utf16_cmp(const char *a, size_t na, const char *b, size_t nb)
{
    size_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i]) i++;
    if (i == n) return na < nb ? -1 : na > nb;
    while (i > 0 && ((unsigned char)a[i] & 0xC0) == 0x80) i--;
    uint32_t x, y;
    if (!json_utf8_decode((const unsigned char *)a + i, na - i, &x)) x = (unsigned char)a[i];
    if (!json_utf8_decode((const unsigned char *)b + i, nb - i, &y)) y = (unsigned char)b[i];
    uint32_t ux = x >= 0x10000 ? 0xD800 + ((x - 0x10000) >> 10) : x;
    uint32_t uy = y >= 0x10000 ? 0xD800 + ((y - 0x10000) >> 10) : y;
    if (ux != uy) return ux < uy ? -1 : 1;
    return x < y ? -1 : x > y;
}

static int member_cmp(const void *pa, const void *pb)
{
    const struct json_member *a = *(const struct json_member *const *)pa;
    const struct json_member *b = *(const struct json_member *const *)pb;
    return utf16_cmp(a->key, a->key_len, b->key, b->key_len);
}

/* ---- values -------------------------------------------------------------- */

struct writer {
    struct buf *b;
    unsigned flags;
    bool ascii;
    struct keel_err *err;
};

static void newline(struct buf *b, int depth)
{
    buf_reserve(b, 1 + 2 * (size_t)depth);
    char *o = b->data + b->len;
    *o++ = '\n';
    memset(o, ' ', 2 * (size_t)depth);
    b->len += 1 + 2 * (size_t)depth;
    b->data[b->len] = '\0';
}

static int write_value(struct writer *w, const struct json_value *v, int depth);

static int write_number(struct writer *w, const struct json_value *v)
{
    if (!(w->flags & JSON_WRITE_CANONICAL)) {
        buf_puts(w->b, v->u.n.text);
        return 0;
    }
    if (!isfinite(v->u.n.d))
        return keel_fail(w->err, KEEL_EINVAL,
                         "number %.40s%s is beyond the range of IEEE doubles, so it has no "
                         "canonical (RFC 8785) form; use a smaller number or a string",
                         v->u.n.text, strlen(v->u.n.text) > 40 ? "..." : "");
    char tmp[40];
    size_t n = json_format_double(v->u.n.d, tmp);
    buf_append(w->b, tmp, n);
    return 0;
}

static int write_array(struct writer *w, const struct json_value *v, int depth)
{
    bool pretty = w->flags & JSON_WRITE_PRETTY;
    if (v->len == 0) {
        buf_append(w->b, "[]", 2);
        return 0;
    }
    buf_putc(w->b, '[');
    for (uint32_t i = 0; i < v->len; i++) {
        if (i) buf_putc(w->b, ',');
        if (pretty) newline(w->b, depth + 1);
        int rc = write_value(w, v->u.items[i], depth + 1);
        if (rc) return rc;
    }
    if (pretty) newline(w->b, depth);
    buf_putc(w->b, ']');
    return 0;
}

static int write_member(struct writer *w, const struct json_member *m, int depth, bool first)
{
    if (!first) buf_putc(w->b, ',');
    if (w->flags & JSON_WRITE_PRETTY) newline(w->b, depth + 1);
    write_str(w->b, m->key, m->key_len, w->ascii);
    if (w->flags & JSON_WRITE_PRETTY) buf_append(w->b, ": ", 2);
    else buf_putc(w->b, ':');
    return write_value(w, m->value, depth + 1);
}

static int write_object(struct writer *w, const struct json_value *v, int depth)
{
    if (v->len == 0) {
        buf_append(w->b, "{}", 2);
        return 0;
    }
    buf_putc(w->b, '{');
    int rc = 0;
    if (w->flags & JSON_WRITE_CANONICAL) {
        const struct json_member *small[32];
        const struct json_member **order = small;
        if (v->len > KEEL_ARRAY_LEN(small)) {
            order = malloc(v->len * sizeof *order);
            if (!order) abort();
        }
        for (uint32_t i = 0; i < v->len; i++) order[i] = &v->u.members[i];
        qsort(order, v->len, sizeof *order, member_cmp);
        for (uint32_t i = 0; i < v->len && !rc; i++) rc = write_member(w, order[i], depth, i == 0);
        if (order != small) free(order);
    } else {
        for (uint32_t i = 0; i < v->len && !rc; i++)
            rc = write_member(w, &v->u.members[i], depth, i == 0);
    }
    if (rc) return rc;
    if (w->flags & JSON_WRITE_PRETTY) newline(w->b, depth);
    buf_putc(w->b, '}');
    return 0;
}

static int write_value(struct writer *w, const struct json_value *v, int depth)
{
    if (!v) {
        buf_append(w->b, "null", 4); /* a hole left by a caller; keep the text valid */
        return 0;
    }
    switch (v->type) {
    case JSON_NULL:
        buf_append(w->b, "null", 4);
        return 0;
    case JSON_FALSE:
        buf_append(w->b, "false", 5);
        return 0;
    case JSON_TRUE:
        buf_append(w->b, "true", 4);
        return 0;
    case JSON_NUMBER:
        return write_number(w, v);
    case JSON_STRING:
        write_str(w->b, v->u.s.str, v->len, w->ascii);
        return 0;
    case JSON_ARRAY:
        return write_array(w, v, depth);
    case JSON_OBJECT:
        return write_object(w, v, depth);
    default:
        return keel_fail(w->err, KEEL_EINTERNAL, "value of unknown type %d", v->type);
    }
}

int json_write(struct buf *out, const struct json_value *v, unsigned flags,
               struct keel_err *err)
{
    struct writer w = {out, flags, false, err};
    if (flags & JSON_WRITE_CANONICAL) w.flags = JSON_WRITE_CANONICAL;
    w.ascii = (w.flags & JSON_WRITE_ASCII) != 0;
    size_t before = out->len;
    int rc = write_value(&w, v, 0);
    if (rc) {
        out->len = before;
        if (out->data) out->data[before] = '\0';
    }
    return rc;
}

int json_digest(const struct json_value *v, char out[65], struct keel_err *err)
{
    struct buf b;
    buf_init(&b);
    int rc = json_write(&b, v, JSON_WRITE_CANONICAL, err);
    if (rc == 0) keel_sha256_hex(b.data ? b.data : "", b.len, out);
    buf_cleanup(&b);
    return rc;
}
