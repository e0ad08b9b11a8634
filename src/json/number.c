/*
 * number.c — exact JSON numbers.  A number value keeps its source text; this
 * file derives everything else from that text: the integer flags
 * (JSON_NUM_INT, JSON_NUM_I64), the nearest double, exact comparison, exact
 * multipleOf, and the ECMAScript (RFC 8785) text of a double.
 *
 * The decimal view (struct json_dec) reads a text as sign * 0.D * 10^point
 * with D the significant digits, without copying: comparisons and the
 * integer test work on digit positions, so 1e400, 1.0 and
 * 123456789012345678901234567890 are all handled exactly.
 *
 * Invariant: functions here are only given texts that passed json_num_scan
 * (the parser's grammar), so they do not re-validate.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* number = [ minus ] int [ frac ] [ exp ] ; RFC 8259 section 6 */
size_t json_num_scan(const char *s, size_t len)
{
    size_t i = 0;
    if (i < len && s[i] == '-') i++;
    if (i >= len) return 0;
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < len && s[i] >= '0' && s[i] <= '9') i++;
    } else {
        return 0;
    }
    if (i < len && s[i] == '.') {
        size_t j = i + 1;
        if (j >= len || s[j] < '0' || s[j] > '9') return 0;
        while (j < len && s[j] >= '0' && s[j] <= '9') j++;
        i = j;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < len && (s[j] == '+' || s[j] == '-')) j++;
        if (j >= len || s[j] < '0' || s[j] > '9') return 0;
        while (j < len && s[j] >= '0' && s[j] <= '9') j++;
        i = j;
    }
    return i;
}

void json_dec_init(struct json_dec *d, const char *t)
{
    memset(d, 0, sizeof *d);
    if (*t == '-') d->neg = true, t++;
    d->ip = t;
    while (*t >= '0' && *t <= '9') t++;
    d->nip = (size_t)(t - d->ip);
    d->fp = t;
    if (*t == '.') {
        d->fp = ++t;
        while (*t >= '0' && *t <= '9') t++;
        d->nfp = (size_t)(t - d->fp);
    }
    int64_t exp = 0;
    if (*t == 'e' || *t == 'E') {
        t++;
        bool eneg = false;
        if (*t == '+' || *t == '-') eneg = *t++ == '-';
        while (*t >= '0' && *t <= '9') {
            if (exp < JSON_EXP_SAT) exp = exp * 10 + (*t - '0');
            t++;
        }
        if (exp > JSON_EXP_SAT) exp = JSON_EXP_SAT;
        if (eneg) exp = -exp;
    }
    size_t n = d->nip + d->nfp, lo = 0, hi = n;
    while (lo < n && (lo < d->nip ? d->ip[lo] : d->fp[lo - d->nip]) == '0') lo++;
    if (lo == n) {
        d->zero = true;
        d->neg = false; /* -0 == 0 by value */
        return;
    }
    while (hi > lo && ((hi - 1) < d->nip ? d->ip[hi - 1] : d->fp[hi - 1 - d->nip]) == '0') hi--;
    d->lo = lo;
    d->ndig = hi - lo;
    d->point = (int64_t)d->nip - (int64_t)lo + exp;
}

/* Sets JSON_NUM_INT when the value has no fractional part, and JSON_NUM_I64
 * (with .i) when it also fits in int64_t. */
void json_num_classify(struct json_value *v)
{
    struct json_dec d;
    json_dec_init(&d, v->u.n.text);
    v->nflags = 0;
    v->u.n.i = 0;
    if (d.zero) {
        v->nflags = JSON_NUM_INT | JSON_NUM_I64;
        return;
    }
    if (d.point < (int64_t)d.ndig) return; /* digits after the point */
    v->nflags = JSON_NUM_INT;
    if (d.point > 19) return;
    /* Accumulate negatively so INT64_MIN fits. */
    int64_t acc = 0;
    for (int64_t k = 0; k < d.point; k++) {
        int dig = (size_t)k < d.ndig ? json_dec_digit(&d, (size_t)k) - '0' : 0;
        if (__builtin_mul_overflow(acc, 10, &acc) || __builtin_sub_overflow(acc, dig, &acc))
            return;
    }
    if (!d.neg) {
        if (acc == INT64_MIN) return;
        acc = -acc;
    }
    v->nflags |= JSON_NUM_I64;
    v->u.n.i = acc;
}

const double json_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

double json_num_to_double(const char *text, size_t len)
{
    /* Clinger's fast path: a mantissa below 2^53 and a power of ten that is
     * itself exact give a correctly rounded result with one operation. */
    struct json_dec d;
    json_dec_init(&d, text);
    if (d.zero) return d.neg || text[0] == '-' ? -0.0 : 0.0;
    if (d.ndig <= 15) {
        uint64_t m = 0;
        for (size_t k = 0; k < d.ndig; k++) m = m * 10 + (uint64_t)(json_dec_digit(&d, k) - '0');
        int64_t e = d.point - (int64_t)d.ndig;
        double r;
        if (e >= 0 && e <= 22) r = (double)m * json_pow10[e];
        else if (e < 0 && e >= -22) r = (double)m / json_pow10[-e];
        else goto slow;
        return d.neg ? -r : r;
    }
slow:
    (void)len;
    return strtod(text, NULL);
}

/* ---- comparison ---------------------------------------------------------- */

static int dec_cmp_abs(const struct json_dec *a, const struct json_dec *b)
{
    if (a->point != b->point) return a->point < b->point ? -1 : 1;
    size_t n = a->ndig < b->ndig ? a->ndig : b->ndig;
    for (size_t k = 0; k < n; k++) {
        char x = json_dec_digit(a, k), y = json_dec_digit(b, k);
        if (x != y) return x < y ? -1 : 1;
    }
    if (a->ndig == b->ndig) return 0;
    return a->ndig < b->ndig ? -1 : 1;
}

int json_number_cmp(const struct json_value *a, const struct json_value *b)
{
    if ((a->nflags & JSON_NUM_I64) && (b->nflags & JSON_NUM_I64))
        return a->u.n.i < b->u.n.i ? -1 : a->u.n.i > b->u.n.i;
    struct json_dec x, y;
    json_dec_init(&x, a->u.n.text);
    json_dec_init(&y, b->u.n.text);
    int sx = x.zero ? 0 : x.neg ? -1 : 1;
    int sy = y.zero ? 0 : y.neg ? -1 : 1;
    if (sx != sy) return sx < sy ? -1 : 1;
    if (sx == 0) return 0;
    int c = dec_cmp_abs(&x, &y);
    return sx < 0 ? -c : c;
}

/* ---- multipleOf ---------------------------------------------------------- */

/* Work caps for json_number_is_multiple: the scaled dividend and divisor
 * may have at most this many decimal digits. */
#define MULT_MAX_DIGITS 1200
#define MULT_MAX_DIVISOR 400

/* Is A * 10^za divisible by B (B given as digits, nb of them)?  Long
 * division keeping the remainder as a decimal digit string. */
static bool big_divisible(const struct json_dec *a, int64_t za, const char *b, size_t nb)
{
    if (nb <= 18) {
        uint64_t m = 0;
        for (size_t k = 0; k < nb; k++) m = m * 10 + (uint64_t)(b[k] - '0');
        uint64_t r = 0;
        for (size_t k = 0; k < a->ndig; k++)
            r = (r * 10 + (uint64_t)(json_dec_digit(a, k) - '0')) % m;
        for (int64_t k = 0; k < za && r; k++) r = (r * 10) % m;
        return r == 0;
    }
    /* r has at most nb + 1 digits, kept right-aligned in rem[0..nb]. */
    char rem[MULT_MAX_DIVISOR + 2];
    memset(rem, 0, sizeof rem);
    size_t total = a->ndig + (size_t)za;
    for (size_t k = 0; k < total; k++) {
        int dig = k < a->ndig ? json_dec_digit(a, k) - '0' : 0;
        memmove(rem, rem + 1, nb); /* r = r * 10 + dig */
        rem[nb] = (char)dig;
        for (;;) {
            /* compare rem (nb + 1 digits) with b (nb digits, leading 0) */
            int c = rem[0] ? 1 : 0;
            for (size_t i = 0; !c && i < nb; i++)
                if (rem[i + 1] != b[i] - '0') c = rem[i + 1] > b[i] - '0' ? 1 : -1;
            if (c < 0) break;
            int borrow = 0;
            for (size_t i = nb + 1; i-- > 0;) {
                int s = rem[i] - (i ? b[i - 1] - '0' : 0) - borrow;
                borrow = s < 0;
                rem[i] = (char)(s < 0 ? s + 10 : s);
            }
        }
    }
    for (size_t i = 0; i <= nb; i++)
        if (rem[i]) return false;
    return true;
}

bool json_number_is_multiple(const struct json_value *a, const struct json_value *b, bool *ok)
{
    bool dummy;
    if (!ok) ok = &dummy;
    *ok = true;
    if (!json_is(a, JSON_NUMBER) || !json_is(b, JSON_NUMBER)) return *ok = false;
    if ((a->nflags & JSON_NUM_I64) && (b->nflags & JSON_NUM_I64) && b->u.n.i > 0) {
        int64_t x = a->u.n.i;
        return x % b->u.n.i == 0; /* INT64_MIN % m is fine for m > 0 */
    }
    struct json_dec x, y;
    json_dec_init(&x, a->u.n.text);
    json_dec_init(&y, b->u.n.text);
    if (y.zero || y.neg) return *ok = false; /* the divisor must be positive */
    if (x.zero) return true;
    /* a = X * 10^ea, b = Y * 10^eb with X, Y the digit strings. */
    int64_t ea = x.point - (int64_t)x.ndig, eb = y.point - (int64_t)y.ndig;
    if (ea < eb) {
        /* X * 10^ea / (Y * 10^eb) = X / (Y * 10^(eb-ea)): an integer only if
         * X ends in at least eb-ea zeros, but X has no trailing zeros. */
        return false;
    }
    int64_t za = ea - eb;
    if (y.ndig > MULT_MAX_DIVISOR || za > MULT_MAX_DIGITS ||
        (int64_t)x.ndig + za > MULT_MAX_DIGITS) {
        *ok = false;
        return false;
    }
    char yd[MULT_MAX_DIVISOR];
    for (size_t k = 0; k < y.ndig; k++) yd[k] = json_dec_digit(&y, k);
    return big_divisible(&x, za, yd, y.ndig);
}

/* ---- ECMAScript number form ---------------------------------------------- */

/* Digits and exponent of d (finite, > 0) written with p significant digits,
 * correctly rounded.  Returns the digit count after trimming trailing zeros;
 * *n is the ECMAScript n (value = 0.digits * 10^n). */
static int digits_at(double d, int p, char *dig, int *n)
{
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
    int k = 0;
    const char *s = tmp;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') dig[k++] = *s;
    *n = atoi(s + 1) + 1;
    while (k > 1 && dig[k - 1] == '0') k--;
    dig[k] = '\0';
    return k;
}

static bool digits_roundtrip(const char *dig, int k, int n, double d)
{
    char tmp[48];
    snprintf(tmp, sizeof tmp, "0.%.*se%d", k, dig, n);
    return strtod(tmp, NULL) == d;
}

/* When d is a power of two its rounding interval is narrower below than
 * above, so the nearest p-digit decimal may miss while the next one above
 * still rounds to d.  Returns the digit count of that candidate or 0. */
static int digits_up(double d, int p, char *dig, int *n)
{
    int k = digits_at(d, p, dig, n);
    char tmp[48];
    snprintf(tmp, sizeof tmp, "0.%se%d", dig, *n);
    if (strtod(tmp, NULL) >= d) return 0;
    /* Add one unit in the p-th digit. */
    char full[24];
    memset(full, '0', sizeof full);
    memcpy(full, dig, (size_t)k);
    int i = p - 1;
    while (i >= 0 && full[i] == '9') full[i--] = '0';
    if (i < 0) {
        memmove(full + 1, full, (size_t)p);
        full[0] = '1';
        (*n)++;
    } else {
        full[i]++;
    }
    k = p;
    while (k > 1 && full[k - 1] == '0') k--;
    memcpy(dig, full, (size_t)k);
    dig[k] = '\0';
    return digits_roundtrip(dig, k, *n, d) ? k : 0;
}

size_t json_format_double(double d, char *out)
{
    char *o = out;
    if (d == 0 || !isfinite(d)) {
        /* -0 is "0" (ECMAScript); callers never pass non-finite values. */
        strcpy(out, "0");
        return 1;
    }
    if (d < 0) {
        *o++ = '-';
        d = -d;
    }
    /* Integers below 2^53 (counts, ids, sizes: most numbers Keel writes)
     * print as their digits, which is the ECMAScript form; no search. */
    if (d < 9007199254740992.0 && d == (double)(int64_t)d) {
        char rev[20];
        int k = 0;
        for (uint64_t u = (uint64_t)d; u; u /= 10) rev[k++] = (char)('0' + u % 10);
        while (k) *o++ = rev[--k];
        *o = '\0';
        return (size_t)(o - out);
    }
    /* The round-trip property is monotonic in the digit count (p-digit
     * decimals are a subset of (p+1)-digit ones), so binary search the
     * smallest count whose correctly rounded form reads back as d. */
    int lo = 1, hi = 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2, n;
        char dig[24];
        int k = digits_at(d, mid, dig, &n);
        if (digits_roundtrip(dig, k, n, d)) hi = mid;
        else lo = mid + 1;
    }
    char dig[24];
    int n, k = digits_at(d, lo, dig, &n);
    int m;
    if (frexp(d, &m) == 0.5) {
        /* power of two: a shorter candidate above d may exist */
        for (int p = lo - 1; p >= 1; p--) {
            char dig2[24];
            int n2, k2 = digits_up(d, p, dig2, &n2);
            if (!k2) break;
            memcpy(dig, dig2, sizeof dig);
            k = k2;
            n = n2;
        }
    }
    /* Number::toString(x), ECMA-262 section 6.1.6.1.20, steps for k, n. */
    if (k <= n && n <= 21) {
        memcpy(o, dig, (size_t)k);
        o += k;
        for (int i = k; i < n; i++) *o++ = '0';
    } else if (0 < n && n <= 21) {
        memcpy(o, dig, (size_t)n);
        o += n;
        *o++ = '.';
        memcpy(o, dig + n, (size_t)(k - n));
        o += k - n;
    } else if (-6 < n && n <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -n; i++) *o++ = '0';
        memcpy(o, dig, (size_t)k);
        o += k;
    } else {
        *o++ = dig[0];
        if (k > 1) {
            *o++ = '.';
            memcpy(o, dig + 1, (size_t)(k - 1));
            o += k - 1;
        }
        o += sprintf(o, "e%c%d", n - 1 >= 0 ? '+' : '-', n - 1 >= 0 ? n - 1 : 1 - n);
    }
    *o = '\0';
    return (size_t)(o - out);
}
