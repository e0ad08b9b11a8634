/*
 * format.c — the `format` checks (used when format assertion is on):
 * dates and times (RFC 3339), durations (RFC 3339 appendix A), email and
 * idn-email (RFC 5321/6531, without comments), hostname and idn-hostname
 * (RFC 1123, with punycode A-labels decoded and checked as U-labels),
 * ipv4/ipv6 (RFC 2673/4291), uri/uri-reference/iri/iri-reference
 * (RFC 3986/3987 grammar), uuid (RFC 4122), uri-template (RFC 6570
 * level 4), json-pointer / relative-json-pointer, and regex (ECMA-262).
 *
 * Invariants: every checker reads exactly len bytes (strings may contain
 * NUL); digits mean ASCII digits only; unknown formats pass (-1).
 */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>


static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads exactly n ASCII digits at s[*i]. */
static bool num(const char *s, size_t len, size_t *i, int n, int *out)
{
    int v = 0;
    for (int k = 0; k < n; k++) {
        if (*i >= len || !digit(s[*i])) return false;
        v = v * 10 + (s[(*i)++] - '0');
    }
    *out = v;
    return true;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool date_at(const char *s, size_t len, size_t *i)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, d;
    if (!num(s, len, i, 4, &y) || *i >= len || s[(*i)++] != '-') return false;
    if (!num(s, len, i, 2, &m) || *i >= len || s[(*i)++] != '-') return false;
    if (!num(s, len, i, 2, &d)) return false;
    if (m < 1 || m > 12 || d < 1) return false;
    int max = mdays[m - 1] + (m == 2 && is_leap(y));
    return d <= max;
}

static bool time_at(const char *s, size_t len, size_t *i)
{
    int h, m, sec, oh = 0, om = 0, sign = 0;
    if (!num(s, len, i, 2, &h) || *i >= len || s[(*i)++] != ':') return false;
    if (!num(s, len, i, 2, &m) || *i >= len || s[(*i)++] != ':') return false;
    if (!num(s, len, i, 2, &sec)) return false;
    if (*i < len && s[*i] == '.') {
        (*i)++;
        size_t st = *i;
        while (*i < len && digit(s[*i])) (*i)++;
        if (*i == st) return false;
    }
    if (*i >= len) return false;
    char z = s[(*i)++];
    if (z == 'Z' || z == 'z') {
    } else if (z == '+' || z == '-') {
        sign = z == '+' ? 1 : -1;
        if (!num(s, len, i, 2, &oh) || *i >= len || s[(*i)++] != ':') return false;
        if (!num(s, len, i, 2, &om)) return false;
        if (oh > 23 || om > 59) return false;
    } else {
        return false;
    }
    if (h > 23 || m > 59 || sec > 60) return false;
    if (sec == 60) {
        /* A leap second is 23:59:60 in UTC. */
        int utc = ((h * 60 + m) - sign * (oh * 60 + om)) % 1440;
        if (utc < 0) utc += 1440;
        if (utc != 23 * 60 + 59) return false;
    }
    return true;
}

static bool f_date(const char *s, size_t len)
{
    size_t i = 0;
    return date_at(s, len, &i) && i == len;
}

static bool f_time(const char *s, size_t len)
{
    size_t i = 0;
    return time_at(s, len, &i) && i == len;
}

static bool f_date_time(const char *s, size_t len)
{
    size_t i = 0;
    if (!date_at(s, len, &i) || i >= len || (s[i] != 'T' && s[i] != 't')) return false;
    i++;
    return time_at(s, len, &i) && i == len;
}

/* duration = "P" (dur-date / dur-time / dur-week); units in order, each once. */
static bool f_duration(const char *s, size_t len)
{
    if (len < 2 || s[0] != 'P') return false;
    static const char date_units[] = "YMD", time_units[] = "HMS";
    size_t i = 1;
    bool in_time = false, any = false, any_time = false, week = false;
    int next = 0; /* index of the next allowed unit */
    while (i < len) {
        if (s[i] == 'T') {
            if (in_time) return false;
            in_time = true;
            next = 0;
            i++;
            continue;
        }
        size_t st = i;
        while (i < len && digit(s[i])) i++;
        if (i == st || i >= len) return false;
        char u = s[i++];
        if (u == 'W') {
            if (any || in_time) return false;
            week = true;
            any = true;
            continue;
        }
        if (week) return false;
        const char *units = in_time ? time_units : date_units;
        const char *p = strchr(units, u);
        /* dur-year = n"Y" [dur-month]; dur-month = n"M" [dur-day]: after the
         * first unit, each must be the very next one (likewise H, M, S). */
        if (!p || u == 0 || (next > 0 && (int)(p - units) != next)) return false;
        next = (int)(p - units) + 1;
        any = true;
        if (in_time) any_time = true;
    }
    if (!any) return false;
    if (in_time && !any_time) return false;
    return true;
}

/* ---- IP addresses ---- */

static bool ipv4_at(const char *s, size_t len)
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part) {
            if (i >= len || s[i++] != '.') return false;
        }
        size_t st = i;
        int v = 0;
        while (i < len && digit(s[i]) && i - st < 4) v = v * 10 + (s[i++] - '0');
        size_t n = i - st;
        if (n == 0 || n > 3 || v > 255 || (n > 1 && s[st] == '0')) return false;
    }
    return i == len;
}

static bool f_ipv4(const char *s, size_t len)
{
    return ipv4_at(s, len);
}

static bool f_ipv6(const char *s, size_t len)
{
    if (len < 2 || len > 45) return false;
    int groups = 0;
    bool dcolon = false;
    size_t i = 0;
    if (s[0] == ':') {
        if (s[1] != ':') return false;
        dcolon = true;
        i = 2;
        if (i == len) return true;
    }
    while (i < len) {
        size_t st = i;
        while (i < len && isxdigit((unsigned char)s[i])) i++;
        size_t n = i - st;
        if (i < len && s[i] == '.') {
            /* trailing dotted IPv4 */
            if (!ipv4_at(s + st, len - st)) return false;
            groups += 2;
            i = len;
            break;
        }
        if (n == 0 || n > 4) return false;
        groups++;
        if (i == len) break;
        if (s[i] != ':') return false;
        i++;
        if (i < len && s[i] == ':') {
            if (dcolon) return false;
            dcolon = true;
            i++;
            if (i == len) break;
        } else if (i == len) {
            return false;
        }
    }
    return dcolon ? groups < 8 : groups == 8;
}

/* ---- hostnames ---- */

static uint32_t puny_adapt(uint32_t delta, uint32_t numpoints, bool first)
{
    delta = first ? delta / 700 : delta / 2;
    delta += delta / numpoints;
    uint32_t k = 0;
    while (delta > ((36 - 1) * 26) / 2) {
        delta /= 36 - 1;
        k += 36;
    }
    return k + (36 * delta) / (delta + 38);
}

/* Decodes a punycode label (RFC 3492) into code points; false if invalid. */
static bool punycode_decode(const char *in, size_t len, uint32_t *out, size_t *olen, size_t cap)
{
    size_t b = 0, n_out = 0;
    bool has_delim = false;
    for (size_t j = 0; j < len; j++)
        if (in[j] == '-') b = j, has_delim = true;
    size_t start = 0;
    if (has_delim) {
        for (size_t j = 0; j < b; j++) {
            if ((unsigned char)in[j] >= 0x80 || n_out >= cap) return false;
            out[n_out++] = (unsigned char)in[j];
        }
        start = b + 1;
    }
    uint32_t n = 128, bias = 72, i = 0;
    bool first = true;
    for (size_t in_i = start; in_i < len;) {
        uint32_t oldi = i, w = 1;
        for (uint32_t k = 36;; k += 36) {
            if (in_i >= len) return false;
            int c = (unsigned char)in[in_i++];
            uint32_t digitv;
            if (c >= '0' && c <= '9') digitv = (uint32_t)(c - '0' + 26);
            else if (c >= 'a' && c <= 'z') digitv = (uint32_t)(c - 'a');
            else if (c >= 'A' && c <= 'Z') digitv = (uint32_t)(c - 'A');
            else return false;
            if (digitv > (0x7fffffffu - i) / w) return false;
            i += digitv * w;
            uint32_t t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
            if (digitv < t) break;
            if (w > 0x7fffffffu / (36 - t)) return false;
            w *= 36 - t;
        }
        bias = puny_adapt(i - oldi, (uint32_t)n_out + 1, first);
        first = false;
        if (i / (n_out + 1) > 0x10FFFF - n) return false;
        n += i / (uint32_t)(n_out + 1);
        i %= (uint32_t)(n_out + 1);
        if (n_out >= cap || n > 0x10FFFF || (n >= 0xD800 && n <= 0xDFFF)) return false;
        memmove(out + i + 1, out + i, (n_out - i) * sizeof *out);
        out[i++] = n;
        n_out++;
    }
    *olen = n_out;
    return true;
}

/* Encodes code points as punycode into out (no "xn--"); returns the length
 * or 0 if it does not fit in cap. */
static size_t punycode_encode(const uint32_t *in, size_t len, char *out, size_t cap)
{
    size_t o = 0, b = 0;
    for (size_t j = 0; j < len; j++)
        if (in[j] < 0x80) {
            if (o + 1 >= cap) return 0;
            out[o++] = (char)in[j];
            b++;
        }
    size_t h = b;
    if (b > 0) {
        if (o + 1 >= cap) return 0;
        out[o++] = '-';
    }
    uint32_t n = 128, bias = 72, delta = 0;
    while (h < len) {
        uint32_t m = 0x10FFFF + 1;
        for (size_t j = 0; j < len; j++)
            if (in[j] >= n && in[j] < m) m = in[j];
        delta += (m - n) * (uint32_t)(h + 1);
        n = m;
        for (size_t j = 0; j < len; j++) {
            if (in[j] < n) delta++;
            if (in[j] == n) {
                uint32_t q = delta;
                for (uint32_t k = 36;; k += 36) {
                    uint32_t t = k <= bias ? 1 : k >= bias + 26 ? 26 : k - bias;
                    if (q < t) break;
                    uint32_t d = t + (q - t) % (36 - t);
                    if (o + 1 >= cap) return 0;
                    out[o++] = (char)(d < 26 ? 'a' + d : '0' + d - 26);
                    q = (q - t) / (36 - t);
                }
                if (o + 1 >= cap) return 0;
                out[o++] = (char)(q < 26 ? 'a' + q : '0' + q - 26);
                bias = puny_adapt(delta, (uint32_t)h + 1, h == b);
                delta = 0;
                h++;
            }
        }
        delta++;
        n++;
    }
    return o;
}

static size_t utf8_next(const char *s, size_t len, size_t i, uint32_t *cp)
{
    unsigned char c = (unsigned char)s[i];
    size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (i + n > len) {
        *cp = 0xFFFD;
        return len - i;
    }
    uint32_t v = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < n; k++) v = v << 6 | ((unsigned char)s[i + k] & 0x3F);
    *cp = v;
    return n;
}

/* Ranges of code points IDNA2008 (RFC 5892) marks DISALLOWED that matter
 * in practice, plus the CONTEXTJ/CONTEXTO rules checked below. */
static bool idn_disallowed(uint32_t c)
{
    static const uint32_t bad[][2] = {
        {0x0000, 0x002C}, {0x002E, 0x002F}, {0x003A, 0x0060}, {0x007B, 0x00B6},
        {0x00B8, 0x00DE}, {0x00F7, 0x00F7}, {0x02B0, 0x02FF}, {0x0340, 0x0341},
        {0x0343, 0x0345}, {0x037A, 0x037A}, {0x037E, 0x037E}, {0x0384, 0x038A},
        {0x0640, 0x0640}, {0x07FA, 0x07FA}, {0x2000, 0x200B}, {0x200E, 0x2BFF},
        {0x3002, 0x3002}, {0x302E, 0x302F}, {0x3031, 0x3035}, {0x303B, 0x303B},
        {0xFF0E, 0xFF0E}, {0xFFF9, 0xFFFF}, {0xD800, 0xDFFF},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(bad); i++)
        if (c >= bad[i][0] && c <= bad[i][1]) return true;
    return false;
}

static bool is_virama(uint32_t c)
{
    static const uint32_t v[] = {0x094D, 0x09CD, 0x0A4D, 0x0ACD, 0x0B4D, 0x0BCD, 0x0C4D,
                                 0x0CCD, 0x0D4D, 0x0DCA, 0x0E3A, 0x1039, 0x17D2};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(v); i++)
        if (c == v[i]) return true;
    return false;
}

static bool is_greek(uint32_t c)
{
    return (c >= 0x0370 && c <= 0x03FF && c != 0x037E && c != 0x0387) || (c >= 0x1F00 && c <= 0x1FFF);
}
static bool is_hebrew(uint32_t c)
{
    return c >= 0x0591 && c <= 0x05F4;
}
static bool is_kana_han(uint32_t c)
{
    return (c >= 0x3040 && c <= 0x309F) || (c >= 0x30A0 && c <= 0x30FF && c != 0x30FB) ||
           (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF);
}
static bool is_combining(uint32_t c)
{
    return (c >= 0x0300 && c <= 0x036F) || (c >= 0x0483 && c <= 0x0489) ||
           (c >= 0x0591 && c <= 0x05BD) || (c >= 0x0610 && c <= 0x061A) ||
           (c >= 0x064B && c <= 0x065F) || (c >= 0x0900 && c <= 0x0903) ||
           (c >= 0x093A && c <= 0x094F) || (c >= 0x1AB0 && c <= 0x1AFF) ||
           (c >= 0x20D0 && c <= 0x20FF);
}

/* Checks one U-label (code points) against the IDNA2008 rules we know. */
static bool ulabel_ok(const uint32_t *cp, size_t n)
{
    if (n == 0) return false;
    if (cp[0] == '-' || cp[n - 1] == '-') return false;
    if (n >= 4 && cp[2] == '-' && cp[3] == '-') return false;
    if (is_combining(cp[0])) return false;
    bool arabic_indic = false, ext_arabic_indic = false, has_katakana_dot = false, kana = false;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cp[i];
        if (c >= 'A' && c <= 'Z') return false; /* A-labels decode to lower case */
        if (idn_disallowed(c) && c != 0x200C && c != 0x200D) return false;
        if (c >= 0x0660 && c <= 0x0669) arabic_indic = true;
        if (c >= 0x06F0 && c <= 0x06F9) ext_arabic_indic = true;
        if (c == 0x30FB) has_katakana_dot = true;
        else if (is_kana_han(c)) kana = true;
        if (c == 0x00B7) { /* MIDDLE DOT: only between two 'l' */
            if (i == 0 || i + 1 >= n || cp[i - 1] != 'l' || cp[i + 1] != 'l') return false;
        }
        if (c == 0x0375) { /* Greek keraia: followed by Greek */
            if (i + 1 >= n || !is_greek(cp[i + 1])) return false;
        }
        if (c == 0x05F3 || c == 0x05F4) { /* Hebrew geresh: after Hebrew */
            if (i == 0 || !is_hebrew(cp[i - 1])) return false;
        }
        if (c == 0x200D || c == 0x200C) { /* ZWJ/ZWNJ: after a virama */
            if (i == 0 || !is_virama(cp[i - 1])) {
                if (c == 0x200D) return false;
                /* ZWNJ is also allowed in joining contexts (Arabic); accept
                 * when surrounded by Arabic letters. */
                if (!(i > 0 && i + 1 < n && cp[i - 1] >= 0x0620 && cp[i - 1] <= 0x06FF &&
                      cp[i + 1] >= 0x0620 && cp[i + 1] <= 0x06FF))
                    return false;
            }
        }
    }
    if (arabic_indic && ext_arabic_indic) return false;
    if (has_katakana_dot && !kana) return false;
    return true;
}

static bool is_rtl(uint32_t c)
{
    return (c >= 0x0590 && c <= 0x08FF && !(c >= 0x0660 && c <= 0x0669) &&
            !(c >= 0x06F0 && c <= 0x06F9)) ||
           (c >= 0xFB1D && c <= 0xFDFF) || (c >= 0xFE70 && c <= 0xFEFF);
}

/* What the Bidi rule (RFC 5893) needs to know about one label. */
struct label_info {
    bool rtl;         /* contains a right-to-left character       */
    bool digit_first; /* starts with a digit                      */
    bool bad;         /* violates the rule on its own             */
};

static void bidi_scan(const uint32_t *cp, size_t n, struct label_info *li)
{
    bool en = false, an = false;
    for (size_t i = 0; i < n; i++) {
        if (is_rtl(cp[i])) li->rtl = true;
        if ((cp[i] >= '0' && cp[i] <= '9') || (cp[i] >= 0x06F0 && cp[i] <= 0x06F9)) en = true;
        if (cp[i] >= 0x0660 && cp[i] <= 0x0669) an = true;
    }
    li->digit_first = n && ((cp[0] >= '0' && cp[0] <= '9') || (cp[0] >= 0x0660 && cp[0] <= 0x0669) ||
                            (cp[0] >= 0x06F0 && cp[0] <= 0x06F9));
    if (li->rtl) {
        if (!is_rtl(cp[0])) li->bad = true; /* an RTL label starts with R or AL */
        if (en && an) li->bad = true;       /* no mixing of digit kinds         */
    }
}

/* Checks one label; *alen gets the length of its ASCII (A-label) form. */
static bool label_ok(const char *s, size_t len, bool idn, size_t *alen, struct label_info *li)
{
    if (len == 0) return false;
    bool ascii = true;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] >= 0x80) ascii = false;
    uint32_t cp[256];
    size_t n = 0;
    if (ascii) {
        if (len > 63 || s[0] == '-' || s[len - 1] == '-') return false;
        for (size_t i = 0; i < len; i++)
            if (!isalnum((unsigned char)s[i]) && s[i] != '-') return false;
        *alen = len;
        if (len >= 4 && s[2] == '-' && s[3] == '-') {
            if (!((s[0] == 'x' || s[0] == 'X') && (s[1] == 'n' || s[1] == 'N'))) return false;
            if (!punycode_decode(s + 4, len - 4, cp, &n, 64) || n == 0) return false;
            char re[80];
            size_t rl = punycode_encode(cp, n, re, sizeof re);
            if (rl != len - 4 || strncasecmp(re, s + 4, rl) != 0) return false; /* not canonical */
            if (!ulabel_ok(cp, n)) return false;
            bidi_scan(cp, n, li);
            return true;
        }
        li->digit_first = digit(s[0]); /* plain ASCII: no right-to-left characters */
        return true;
    }
    if (!idn) return false;
    for (size_t i = 0; i < len;) {
        if (n >= 256) return false;
        uint32_t c;
        i += utf8_next(s, len, i, &c);
        cp[n++] = c;
    }
    for (size_t i = 0; i < n; i++)
        if (cp[i] >= 'A' && cp[i] <= 'Z') cp[i] += 32; /* case is not an issue for U-labels */
    if (!ulabel_ok(cp, n)) return false;
    char enc[80];
    size_t el = punycode_encode(cp, n, enc, sizeof enc);
    if (el == 0 || el + 4 > 63) return false;
    *alen = el + 4;
    bidi_scan(cp, n, li);
    return true;
}

/* Length in bytes of a label separator at s[i] (".", and for IDNs U+3002,
 * U+FF0E, U+FF61), or 0. */
static size_t separator(const char *s, size_t len, size_t i, bool idn)
{
    if (s[i] == '.') return 1;
    if (!idn || i + 2 >= len + 0 || i + 3 > len) return 0;
    const unsigned char *u = (const unsigned char *)s + i;
    if (u[0] == 0xE3 && u[1] == 0x80 && u[2] == 0x82) return 3;
    if (u[0] == 0xEF && u[1] == 0xBC && u[2] == 0x8E) return 3;
    if (u[0] == 0xEF && u[1] == 0xBD && u[2] == 0xA1) return 3;
    return 0;
}

static bool hostname(const char *s, size_t len, bool idn)
{
    if (len == 0 || len > 1024) return false;
    size_t st = 0, total = 0;
    bool any_rtl = false, any_digit_first = false;
    for (size_t i = 0; i <= len;) {
        size_t sep = i < len ? separator(s, len, i, idn) : 0;
        if (i == len || sep) {
            size_t alen = 0;
            struct label_info li = {0};
            if (!label_ok(s + st, i - st, idn, &alen, &li) || li.bad) return false;
            any_rtl |= li.rtl;
            any_digit_first |= li.digit_first;
            total += alen + (i < len);
            if (i == len) break;
            i += sep;
            st = i;
            continue;
        }
        i++;
    }
    if (total > 253) return false;
    if (idn && any_rtl && any_digit_first) return false;
    return true;
}

static bool f_hostname(const char *s, size_t len)
{
    return hostname(s, len, false);
}

static bool f_idn_hostname(const char *s, size_t len)
{
    return hostname(s, len, true);
}

/* ---- email ---- */

static bool email(const char *s, size_t len, bool idn)
{
    const char *at = NULL;
    size_t i = 0;
    if (len && s[0] == '"') {
        for (i = 1; i < len && s[i] != '"'; i++)
            if (s[i] == '\\') i++;
        if (i >= len) return false;
        i++;
        if (i >= len || s[i] != '@') return false;
        at = s + i;
    } else {
        for (i = 0; i < len; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c == '@') break;
            if (c >= 0x80 && idn) continue;
            if (!(isalnum(c) || strchr("!#$%&'*+-/=?^_`{|}~.", c)) || c == 0) return false;
        }
        if (i == 0 || i >= len) return false;
        if (s[0] == '.' || s[i - 1] == '.') return false;
        for (size_t k = 1; k < i; k++)
            if (s[k] == '.' && s[k - 1] == '.') return false;
        at = s + i;
    }
    const char *d = at + 1;
    size_t dl = len - (size_t)(d - s);
    if (dl == 0) return false;
    if (d[0] == '[') {
        if (d[dl - 1] != ']') return false;
        if (dl > 6 && !strncmp(d + 1, "IPv6:", 5)) return f_ipv6(d + 6, dl - 7);
        return ipv4_at(d + 1, dl - 2);
    }
    return hostname(d, dl, idn);
}

static bool f_email(const char *s, size_t len)
{
    return email(s, len, false);
}

static bool f_idn_email(const char *s, size_t len)
{
    return email(s, len, true);
}

/* ---- URIs ---- */

static bool unreserved_or_sub(unsigned char c)
{
    return isalnum(c) || strchr("-._~!$&'()*+,;=", c);
}

/* Checks chars of a URI component: allowed set plus %HH (and non-ASCII for
 * IRIs). */
static bool comp_ok(const char *s, size_t len, const char *extra, bool iri)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return false;
            i += 2;
        } else if (c >= 0x80) {
            if (!iri) return false;
        } else if (!unreserved_or_sub(c) && !strchr(extra, c)) {
            return false;
        }
    }
    return true;
}

static bool uri(const char *s, size_t len, bool need_scheme, bool iri)
{
    size_t i = 0;
    for (size_t k = 0; k < len; k++)
        if (s[k] == 0) return false;
    /* scheme */
    size_t colon = 0;
    bool has_scheme = false;
    if (len && isalpha((unsigned char)s[0])) {
        size_t k = 1;
        while (k < len && (isalnum((unsigned char)s[k]) || s[k] == '+' || s[k] == '-' || s[k] == '.'))
            k++;
        if (k < len && s[k] == ':') has_scheme = true, colon = k;
    }
    if (need_scheme && !has_scheme) return false;
    if (has_scheme) i = colon + 1;
    /* fragment */
    const char *hash = memchr(s + i, '#', len - i);
    size_t end = hash ? (size_t)(hash - s) : len;
    if (hash && !comp_ok(hash + 1, len - end - 1, ":@/?", iri)) return false;
    const char *q = memchr(s + i, '?', end - i);
    size_t pend = q ? (size_t)(q - s) : end;
    if (q && !comp_ok(q + 1, end - pend - 1, ":@/?", iri)) return false;
    /* hier-part */
    if (pend - i >= 2 && s[i] == '/' && s[i + 1] == '/') {
        i += 2;
        size_t a = i;
        while (i < pend && s[i] != '/') i++;
        const char *auth = s + a;
        size_t al = i - a;
        const char *atp = memchr(auth, '@', al);
        if (atp) {
            if (!comp_ok(auth, (size_t)(atp - auth), ":", iri)) return false;
            al -= (size_t)(atp - auth) + 1;
            auth = atp + 1;
        }
        if (al && auth[0] == '[') {
            const char *rb = memchr(auth, ']', al);
            if (!rb) return false;
            if (auth[1] == 'v' || auth[1] == 'V') {
                /* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
                const char *p = auth + 2;
                if (!isxdigit((unsigned char)*p)) return false;
                while (p < rb && isxdigit((unsigned char)*p)) p++;
                if (p >= rb || *p != '.' || p + 1 >= rb) return false;
                if (!comp_ok(p + 1, (size_t)(rb - p - 1), ":", false)) return false;
            } else if (!f_ipv6(auth + 1, (size_t)(rb - auth - 1))) {
                return false;
            }
            size_t rest = al - (size_t)(rb - auth) - 1;
            if (rest) {
                if (rb[1] != ':') return false;
                for (size_t k = 2; k <= rest; k++)
                    if (!digit(rb[k])) return false;
            }
        } else {
            const char *pc = NULL;
            for (size_t k = 0; k < al; k++)
                if (auth[k] == ':') pc = auth + k;
            size_t hl = pc ? (size_t)(pc - auth) : al;
            if (!comp_ok(auth, hl, "", iri)) return false;
            if (pc)
                for (const char *p = pc + 1; p < auth + al; p++)
                    if (!digit(*p)) return false;
        }
    } else if (!has_scheme) {
        /* relative-ref: first segment may not contain ':' */
        for (size_t k = i; k < pend && s[k] != '/'; k++)
            if (s[k] == ':') return false;
    }
    return comp_ok(s + i, pend - i, ":@/", iri);
}

static bool f_uri(const char *s, size_t len)
{
    return uri(s, len, true, false);
}
static bool f_uri_reference(const char *s, size_t len)
{
    return uri(s, len, false, false);
}
static bool f_iri(const char *s, size_t len)
{
    return uri(s, len, true, true);
}
static bool f_iri_reference(const char *s, size_t len)
{
    return uri(s, len, false, true);
}

static bool f_uuid(const char *s, size_t len)
{
    if (len != 36) return false;
    for (size_t i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i])) return false;
    }
    return true;
}

/* RFC 6570: literals and {operator varspec,...} expressions. */
static bool f_uri_template(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '}') return false;
        if (c == '{') {
            size_t j = i + 1;
            if (j < len && strchr("+#./;?&=,!@|", s[j])) {
                if (strchr("=,!@|", s[j])) return false; /* reserved operators */
                j++;
            }
            for (;;) {
                size_t st = j;
                while (j < len) {
                    unsigned char v = (unsigned char)s[j];
                    if (isalnum(v) || v == '_') j++;
                    else if (v == '%' && j + 2 < len && isxdigit((unsigned char)s[j + 1]) &&
                             isxdigit((unsigned char)s[j + 2]))
                        j += 3;
                    else if (v == '.' && j > st && j + 1 < len && s[j + 1] != '.' && s[j + 1] != '}' &&
                             s[j + 1] != ',')
                        j++;
                    else break;
                }
                if (j == st || j >= len) return false;
                if (s[j] == ':') {
                    j++;
                    size_t d = j;
                    while (j < len && digit(s[j])) j++;
                    if (j == d || j - d > 4 || s[d] == '0') return false;
                } else if (s[j] == '*') {
                    j++;
                }
                if (j >= len) return false;
                if (s[j] == ',') {
                    j++;
                    continue;
                }
                if (s[j] == '}') break;
                return false;
            }
            i = j;
            continue;
        }
        if (c <= 0x20 || c == 0x7f || strchr("\"'<>\\^`|", c)) {
            if (c != '\'') return false;
        }
        if (c == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2]))
                return false;
        }
    }
    return true;
}

static bool pointer_ok(const char *s, size_t len)
{
    if (len && s[0] != '/') return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '~' && (i + 1 >= len || (s[i + 1] != '0' && s[i + 1] != '1'))) return false;
    return true;
}

static bool f_json_pointer(const char *s, size_t len)
{
    return pointer_ok(s, len);
}

static bool f_relative_json_pointer(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && digit(s[i])) i++;
    if (i == 0 || (i > 1 && s[0] == '0')) return false;
    if (i < len && (s[i] == '+' || s[i] == '-')) { /* index manipulation */
        size_t st = ++i;
        while (i < len && digit(s[i])) i++;
        if (i == st || (i - st > 1 && s[st] == '0')) return false;
    }
    if (i == len) return true;
    if (s[i] == '#') return i + 1 == len;
    return pointer_ok(s + i, len - i);
}

static bool f_regex(const char *s, size_t len)
{
    return schema_regex_valid(s, len);
}

static const struct {
    const char *name;
    schema_format_fn fn;
} formats[] = {
    {"date-time", f_date_time},
    {"date", f_date},
    {"time", f_time},
    {"duration", f_duration},
    {"email", f_email},
    {"idn-email", f_idn_email},
    {"hostname", f_hostname},
    {"idn-hostname", f_idn_hostname},
    {"ipv4", f_ipv4},
    {"ipv6", f_ipv6},
    {"uri", f_uri},
    {"uri-reference", f_uri_reference},
    {"iri", f_iri},
    {"iri-reference", f_iri_reference},
    {"uuid", f_uuid},
    {"uri-template", f_uri_template},
    {"json-pointer", f_json_pointer},
    {"relative-json-pointer", f_relative_json_pointer},
    {"regex", f_regex},
};

schema_format_fn schema_format_find(const char *name)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(formats); i++)
        if (!strcmp(name, formats[i].name)) return formats[i].fn;
    return NULL;
}

int schema_format_check(const char *format, const char *s, size_t len)
{
    schema_format_fn fn = schema_format_find(format);
    return fn ? fn(s, len) : -1;
}
