/*
 * regex.c — ECMA-262 regular expressions (as JSON Schema's `pattern`,
 * `patternProperties` and format "regex" use them) on top of PCRE2.
 *
 * The dialect decisions (docs/schema.md has the table):
 *   - Unicode semantics always (PCRE2_UTF): `.` and classes work on code
 *     points, as ECMA-262 with the `u` flag.
 *   - \d, \w, \b stay ASCII (PCRE2 without UCP), as in ECMA-262.
 *   - \s / \S follow ECMA-262 (WhiteSpace + LineTerminator, which includes
 *     U+00A0, U+FEFF, U+2028 ...): rewritten into explicit classes.
 *   - $ matches only at the very end (PCRE2_DOLLAR_ENDONLY).
 *   - \uXXXX, surrogate pairs \uD83D\uDE00 and \u{1F600} become \x{...};
 *     long Unicode property names (\p{Letter}) map to PCRE2's short ones.
 *   - `[^]` (any character) and `[]` (nothing) are rewritten.
 * For format "regex", the pattern must additionally avoid constructs
 * ECMA-262 does not have: unknown letter escapes (\a, \Z ...), (?P...),
 * (?#...) comments and inline flags (?i).
 *
 * Invariants: the rewritten pattern is at most 16 times the source length,
 * and sources over 64 KiB are refused; matching runs under the match limit
 * set in the schema's match context.
 */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define REGEX_MAX_SOURCE (64u << 10)

#define ECMA_SPACE                                                                                 \
    "\\t\\n\\x{0b}\\f\\r \\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}"  \
    "\\x{3000}\\x{feff}"

static const struct {
    const char *ecma;
    const char *pcre;
} prop_names[] = {
    {"Letter", "L"},           {"Lowercase_Letter", "Ll"}, {"Uppercase_Letter", "Lu"},
    {"Titlecase_Letter", "Lt"}, {"Modifier_Letter", "Lm"}, {"Other_Letter", "Lo"},
    {"Mark", "M"},             {"Number", "N"},            {"Decimal_Number", "Nd"},
    {"digit", "Nd"},           {"Letter_Number", "Nl"},    {"Other_Number", "No"},
    {"Punctuation", "P"},      {"Symbol", "S"},            {"Separator", "Z"},
    {"Space_Separator", "Zs"}, {"Other", "C"},             {"Control", "Cc"},
    {"Format", "Cf"},          {"Private_Use", "Co"},      {"Unassigned", "Cn"},
    {"punct", "P"},            {"space", "Zs"},
};

static int hexv(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static long hex4(const char *s, size_t len, size_t i)
{
    if (i + 4 > len) return -1;
    long v = 0;
    for (size_t k = 0; k < 4; k++) {
        int h = hexv((unsigned char)s[i + k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Letters that may follow a backslash in ECMA-262 (u mode). */
static bool ecma_escape_ok(int ch)
{
    return strchr("dDwWsSbBfnrtv0cxukpP123456789^$\\.*+?()[]{}|/-", ch) != NULL;
}

/* Rewrites src into out as described above.  Returns false (with a
 * message in err) if the pattern is malformed in a way found here, or
 * (strict) uses a construct ECMA-262 lacks. */
static bool translate(const char *src, size_t len, bool strict, struct buf *out,
                      struct keel_err *err)
{
    bool in_class = false;
    for (size_t i = 0; i < len; i++) {
        char ch = src[i];
        if (ch == '\\') {
            if (i + 1 >= len) {
                keel_fail(err, KEEL_EINVAL, "ends with a lone backslash");
                return false;
            }
            char e = src[++i];
            if (strict && isalpha((unsigned char)e) && !ecma_escape_ok(e)) {
                keel_fail(err, KEEL_EINVAL, "uses \\%c, which ECMA-262 does not define", e);
                return false;
            }
            if (e == 's' || e == 'S') {
                if (in_class) {
                    if (e == 's') buf_puts(out, ECMA_SPACE);
                    else buf_puts(out, "\\S");
                } else {
                    buf_puts(out, e == 's' ? "[" ECMA_SPACE "]" : "[^" ECMA_SPACE "]");
                }
                continue;
            }
            if (e == 'u') {
                if (i + 1 < len && src[i + 1] == '{') {
                    size_t j = i + 2;
                    while (j < len && isxdigit((unsigned char)src[j])) j++;
                    if (j >= len || src[j] != '}' || j == i + 2 || j - (i + 2) > 6) {
                        keel_fail(err, KEEL_EINVAL, "has a malformed \\u{...} escape");
                        return false;
                    }
                    buf_printf(out, "\\x{%.*s}", (int)(j - (i + 2)), src + i + 2);
                    i = j;
                    continue;
                }
                long cp = hex4(src, len, i + 1);
                if (cp < 0) {
                    keel_fail(err, KEEL_EINVAL, "has a malformed \\uXXXX escape");
                    return false;
                }
                i += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF && i + 2 < len && src[i + 1] == '\\' &&
                    src[i + 2] == 'u') {
                    long lo = hex4(src, len, i + 3);
                    if (lo >= 0xDC00 && lo <= 0xDFFF) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    }
                }
                if (cp >= 0xD800 && cp <= 0xDFFF) {
                    keel_fail(err, KEEL_EINVAL, "has a lone surrogate escape");
                    return false;
                }
                buf_printf(out, "\\x{%lx}", cp);
                continue;
            }
            if ((e == 'p' || e == 'P') && i + 1 < len && src[i + 1] == '{') {
                size_t j = i + 2;
                while (j < len && src[j] != '}') j++;
                if (j >= len) {
                    keel_fail(err, KEEL_EINVAL, "has an unterminated \\p{...}");
                    return false;
                }
                const char *name = src + i + 2;
                size_t nl = j - (i + 2);
                const char *mapped = NULL;
                for (size_t k = 0; k < KEEL_ARRAY_LEN(prop_names); k++)
                    if (strlen(prop_names[k].ecma) == nl && !memcmp(prop_names[k].ecma, name, nl))
                        mapped = prop_names[k].pcre;
                if (mapped) buf_printf(out, "\\%c{%s}", e, mapped);
                else buf_printf(out, "\\%c{%.*s}", e, (int)nl, name);
                i = j;
                continue;
            }
            buf_putc(out, '\\');
            buf_putc(out, e);
            continue;
        }
        if (in_class) {
            if (ch == ']') in_class = false;
            if (ch == '[') buf_putc(out, '\\'); /* a literal '[' in ECMA classes */
            buf_putc(out, ch);
            continue;
        }
        if (ch == '[') {
            if (i + 1 < len && src[i + 1] == ']') {
                buf_puts(out, "(?!)");
                i += 1;
                continue;
            }
            if (i + 2 < len && src[i + 1] == '^' && src[i + 2] == ']') {
                buf_puts(out, "[\\s\\S]");
                i += 2;
                continue;
            }
            in_class = true;
            buf_putc(out, ch);
            if (i + 1 < len && src[i + 1] == '^') buf_putc(out, src[++i]);
            continue;
        }
        if (strict && ch == '(' && i + 1 < len && src[i + 1] == '?') {
            char n = i + 2 < len ? src[i + 2] : 0;
            bool ok = n == ':' || n == '=' || n == '!' ||
                      (n == '<' && i + 3 < len &&
                       (src[i + 3] == '=' || src[i + 3] == '!' || isalpha((unsigned char)src[i + 3]) ||
                        src[i + 3] == '_' || src[i + 3] == '$'));
            if (!ok) {
                keel_fail(err, KEEL_EINVAL, "uses the group syntax (?%c, which ECMA-262 does not have",
                          n ? n : ' ');
                return false;
            }
        }
        buf_putc(out, ch);
    }
    return true;
}

static pcre2_code *compile(const char *src, size_t len, bool strict, struct keel_err *err)
{
    if (len > REGEX_MAX_SOURCE) {
        keel_fail(err, KEEL_ELIMIT, "is longer than %u bytes", REGEX_MAX_SOURCE);
        return NULL;
    }
    struct buf out;
    buf_init(&out);
    if (!translate(src, len, strict, &out, err)) {
        buf_cleanup(&out);
        return NULL;
    }
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(out.data ? out.data : ""), out.len,
                                   PCRE2_UTF | PCRE2_DOLLAR_ENDONLY, &ec, &off, NULL);
    buf_cleanup(&out);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        keel_fail(err, KEEL_EINVAL, "is not a valid regular expression: %s", (const char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter on failure */
    return re;
}

pcre2_code *schema_regex_compile(const char *src, size_t len, struct keel_err *err)
{
    return compile(src, len, false, err);
}

bool schema_regex_valid(const char *src, size_t len)
{
    pcre2_code *re = compile(src, len, true, NULL);
    if (!re) return false;
    pcre2_code_free(re);
    return true;
}
