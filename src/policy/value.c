/*
 * value.c — Cedar values: equality, sets and records, the extension types'
 * literal formats (decimal, ipaddr, datetime, duration), conversion from
 * and to Cedar's JSON encoding, and printing in Cedar syntax.
 *
 * Invariants: sets hold distinct elements; records hold fields sorted by
 * key (bytewise, shorter first on a common prefix) with distinct keys;
 * decimals are scaled by 10^4; datetimes and durations are milliseconds.
 * All values built here live in the caller's arena.
 */
#include "internal.h"
#include "../json/json.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {
    [POLICY_BOOL] = "bool",          [POLICY_LONG] = "long",       [POLICY_STRING] = "string",
    [POLICY_ENTITY] = "entity",      [POLICY_SET] = "set",         [POLICY_RECORD] = "record",
    [POLICY_DECIMAL] = "decimal",    [POLICY_IPADDR] = "ipaddr",   [POLICY_DATETIME] = "datetime",
    [POLICY_DURATION] = "duration",
};

const char *policy_type_name(int type)
{
    if (type < 0 || (size_t)type >= KEEL_ARRAY_LEN(type_names)) return "?";
    return type_names[type];
}

bool policy_euid_equal(const struct policy_euid *a, const struct policy_euid *b)
{
    return a->id_len == b->id_len && a->type_len == b->type_len &&
           !memcmp(a->id, b->id, a->id_len) && !memcmp(a->type, b->type, a->type_len);
}

/* Reads 8, 4 or 1 bytes at s as an integer (memcpy: any alignment). */
static uint64_t rd64(const char *s)
{
    uint64_t x;
    memcpy(&x, s, 8);
    return x;
}

static uint64_t rd32(const char *s)
{
    uint32_t x;
    memcpy(&x, s, 4);
    return x;
}

/* Folds n bytes at s into h, a word at a time: full 8-byte words, then the
 * tail as two overlapping 4-byte reads (4..7 bytes) or its first, middle
 * and last byte (1..3), so short ids cost a handful of multiplies. */
static uint64_t hash_bytes(uint64_t h, const char *s, uint32_t n)
{
    const uint64_t k = 0x9e3779b97f4a7c15ull;
    h = (h ^ n) * k;
    for (; n >= 8; s += 8, n -= 8) {
        h = (h ^ rd64(s)) * k;
        h ^= h >> 29;
    }
    uint64_t t = 0;
    if (n >= 4) t = rd32(s) | rd32(s + n - 4) << 32;
    else if (n) t = (uint64_t)(uint8_t)s[0] | (uint64_t)(uint8_t)s[n / 2] << 8 |
                    (uint64_t)(uint8_t)s[n - 1] << 16;
    h = (h ^ t ^ ((uint64_t)n << 56)) * k;
    return h ^ (h >> 31);
}

uint64_t policy_euid_hash(const struct policy_euid *u)
{
    /* type and id with their lengths (no key buffer needed), then a full
     * avalanche so that the low bits (table index) and the high bits (the
     * index filter's bloom bit) are both usable */
    uint64_t h = hash_bytes(hash_bytes(0x243f6a8885a308d3ull, u->type, u->type_len), u->id,
                            u->id_len);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

static int key_cmp(const char *a, uint32_t al, const char *b, uint32_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c) return c;
    return al < bl ? -1 : al > bl;
}

const struct policy_value *policy_record_get(const struct policy_record *rec, const char *key,
                                             size_t key_len)
{
    uint32_t lo = 0, hi = rec->len;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        const struct policy_field *f = &rec->fields[mid];
        int c = key_cmp(f->key, f->key_len, key, (uint32_t)key_len);
        if (c == 0) return &f->value;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static bool set_has(const struct policy_vset *s, const struct policy_value *v)
{
    for (uint32_t i = 0; i < s->len; i++)
        if (policy_value_equal(&s->items[i], v)) return true;
    return false;
}

bool policy_value_equal(const struct policy_value *a, const struct policy_value *b)
{
    if (a->type != b->type) return false;
    switch (a->type) {
    case POLICY_BOOL: return a->u.b == b->u.b;
    case POLICY_LONG:
    case POLICY_DECIMAL:
    case POLICY_DATETIME:
    case POLICY_DURATION: return a->u.l == b->u.l;
    case POLICY_STRING:
        return a->u.str.len == b->u.str.len && !memcmp(a->u.str.s, b->u.str.s, a->u.str.len);
    case POLICY_ENTITY: return policy_euid_equal(a->u.entity, b->u.entity);
    case POLICY_SET:
        if (a->u.set->len != b->u.set->len) return false;
        for (uint32_t i = 0; i < a->u.set->len; i++)
            if (!set_has(b->u.set, &a->u.set->items[i])) return false;
        return true;
    case POLICY_RECORD:
        if (a->u.rec->len != b->u.rec->len) return false;
        for (uint32_t i = 0; i < a->u.rec->len; i++) {
            const struct policy_field *x = &a->u.rec->fields[i], *y = &b->u.rec->fields[i];
            if (x->key_len != y->key_len || memcmp(x->key, y->key, x->key_len) ||
                !policy_value_equal(&x->value, &y->value))
                return false;
        }
        return true;
    case POLICY_IPADDR:
        return a->u.ip->v6 == b->u.ip->v6 && a->u.ip->prefix == b->u.ip->prefix &&
               !memcmp(a->u.ip->addr, b->u.ip->addr, 16);
    }
    return false;
}

const struct policy_vset *policy_vset_make(struct arena *a, const struct policy_value *items,
                                           uint32_t n)
{
    struct policy_vset *s = arena_alloc(a, sizeof *s);
    struct policy_value *out = arena_alloc(a, (n ? n : 1) * sizeof *out);
    s->items = out;
    s->len = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!set_has(s, &items[i])) out[s->len++] = items[i];
    }
    return s;
}

static int field_cmp(const void *x, const void *y)
{
    const struct policy_field *a = x, *b = y;
    return key_cmp(a->key, a->key_len, b->key, b->key_len);
}

int policy_record_sort(struct policy_field *fields, uint32_t n, uint32_t *dup)
{
    if (n > 1) qsort(fields, n, sizeof *fields, field_cmp);
    for (uint32_t i = 1; i < n; i++) {
        if (!field_cmp(&fields[i - 1], &fields[i])) {
            if (dup) *dup = i;
            return -1;
        }
    }
    return 0;
}

/* ---- extension literal formats ---------------------------------------- */

/* decimal: -?[0-9]+\.[0-9]{1,4}, within i64 / 10^4. */
int policy_parse_decimal(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    size_t int_start = i;
    int64_t v = 0; /* accumulated negatively so INT64_MIN is reachable */
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_sub_overflow(v, s[i] - '0', &v))
            return -1;
        i++;
    }
    if (i == int_start || i >= len || s[i] != '.') return -1;
    i++;
    size_t frac_start = i;
    int digits = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_sub_overflow(v, s[i] - '0', &v))
            return -1;
        digits++;
        i++;
    }
    if (i != len || i == frac_start || digits > 4) return -1;
    for (; digits < 4; digits++)
        if (__builtin_mul_overflow(v, 10, &v)) return -1;
    if (!neg) {
        if (v == INT64_MIN) return -1;
        v = -v;
    }
    *out = v;
    return 0;
}

int policy_parse_ip(const char *s, size_t len, struct policy_ip *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf || memchr(s, '\0', len)) return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    int prefix = -1;
    if (slash) {
        *slash = '\0';
        const char *q = slash + 1;
        size_t n = strlen(q);
        if (n == 0 || n > 3 || (n > 1 && q[0] == '0')) return -1; /* no leading zeros */
        prefix = 0;
        for (size_t i = 0; i < n; i++) {
            if (q[i] < '0' || q[i] > '9') return -1;
            prefix = prefix * 10 + (q[i] - '0');
        }
    }
    struct policy_ip ip;
    memset(&ip, 0, sizeof ip);
    if (strchr(buf, ':')) {
        if (strchr(buf, '.')) return -1; /* Cedar rejects IPv4 embedded in IPv6 */
        ip.v6 = true;
        if (inet_pton(AF_INET6, buf, ip.addr) != 1) return -1;
        if (prefix > 128) return -1;
        ip.prefix = (uint8_t)(prefix < 0 ? 128 : prefix);
    } else {
        if (inet_pton(AF_INET, buf, ip.addr) != 1) return -1;
        if (prefix > 32) return -1;
        ip.prefix = (uint8_t)(prefix < 0 ? 32 : prefix);
    }
    *out = ip;
    return 0;
}

static int digits(const char *s, size_t len, size_t at, int n, int *out)
{
    if (at + (size_t)n > len) return -1;
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = s[at + (size_t)i];
        if (c < '0' || c > '9') return -1;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dm[m - 1];
}

/* datetime: YYYY-MM-DD, or that followed by Thh:mm:ss[.SSS](Z|(+|-)hhmm). */
int policy_parse_datetime(const char *s, size_t len, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, se = 0, ms = 0;
    if (digits(s, len, 0, 4, &y) || len < 10 || s[4] != '-' || digits(s, len, 5, 2, &mo) ||
        s[7] != '-' || digits(s, len, 8, 2, &d))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return -1;
    int64_t offset_ms = 0;
    if (len > 10) {
        if (s[10] != 'T' || len < 20 || digits(s, len, 11, 2, &h) || s[13] != ':' ||
            digits(s, len, 14, 2, &mi) || s[16] != ':' || digits(s, len, 17, 2, &se))
            return -1;
        if (h > 23 || mi > 59 || se > 59) return -1;
        size_t i = 19;
        if (s[i] == '.') {
            if (digits(s, len, i + 1, 3, &ms)) return -1;
            i += 4;
        }
        if (i >= len) return -1;
        if (s[i] == 'Z') {
            if (i + 1 != len) return -1;
        } else if (s[i] == '+' || s[i] == '-') {
            int oh, om;
            if (i + 5 != len || digits(s, len, i + 1, 2, &oh) || digits(s, len, i + 3, 2, &om))
                return -1;
            if (oh > 23 || om > 59) return -1;
            offset_ms = ((int64_t)oh * 3600 + om * 60) * 1000;
            if (s[i] == '-') offset_ms = -offset_ms;
        } else {
            return -1;
        }
    }
    int64_t days = days_from_civil(y, mo, d);
    *out = ((days * 86400 + h * 3600 + mi * 60 + se) * 1000 + ms) - offset_ms;
    return 0;
}

/* duration: -?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?, at least one part. */
int policy_parse_duration(const char *s, size_t len, int64_t *out)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    size_t i = 0;
    bool neg = false;
    if (i < len && s[i] == '-') {
        neg = true;
        i++;
    }
    int64_t total = 0;
    size_t next_unit = 0;
    int parts = 0;
    while (i < len) {
        int64_t n = 0;
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (__builtin_mul_overflow(n, 10, &n) || __builtin_add_overflow(n, s[i] - '0', &n))
                return -1;
            i++;
        }
        if (i == start || i >= len) return -1;
        size_t ul = (i + 1 < len && s[i] == 'm' && s[i + 1] == 's') ? 2 : 1;
        size_t u;
        for (u = next_unit; u < KEEL_ARRAY_LEN(units); u++)
            if (strlen(units[u].unit) == ul && !memcmp(units[u].unit, s + i, ul)) break;
        if (u == KEEL_ARRAY_LEN(units)) return -1;
        int64_t part;
        if (__builtin_mul_overflow(n, units[u].ms, &part)) return -1;
        if (neg) {
            if (__builtin_sub_overflow(total, part, &total)) return -1;
        } else if (__builtin_add_overflow(total, part, &total)) {
            return -1;
        }
        next_unit = u + 1;
        i += ul;
        parts++;
    }
    if (!parts) return -1;
    *out = total;
    return 0;
}

/* ---- JSON ------------------------------------------------------------- */

static int json_fail(struct keel_err *err, const struct json_value *j, const char *fmt, ...)
    KEEL_PRINTF(3, 4);
static int json_fail(struct keel_err *err, const struct json_value *j, const char *fmt, ...)
{
    char msg[KEEL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return keel_fail_at(err, KEEL_EINVAL, err && err->file[0] ? err->file : NULL,
                        j ? j->line : 0, j ? j->column : 0, "%s", msg);
}

static int euid_from_json(struct arena *a, const struct json_value *j, struct policy_euid *out,
                          struct keel_err *err)
{
    const struct json_value *t = json_get(j, "type"), *id = json_get(j, "id");
    if (!json_is(j, JSON_OBJECT) || !json_is(t, JSON_STRING) || !json_is(id, JSON_STRING))
        return json_fail(err, j, "expected an entity uid {\"type\": ..., \"id\": ...}");
    out->type = arena_strndup(a, t->u.s.str, t->len);
    out->type_len = t->len;
    out->id = arena_strndup(a, id->u.s.str, id->len);
    out->id_len = id->len;
    return 0;
}

/* With nulls, JSON null members and items are left out (expression
 * variables); otherwise null is an error (Cedar's entity and request JSON). */
static int from_json(struct arena *a, const struct json_value *j, bool implicit, bool nulls,
                     int depth, struct policy_value *out, struct keel_err *err)
{
    if (depth > POLICY_MAX_DEPTH) return json_fail(err, j, "value nested too deeply");
    switch (j->type) {
    case JSON_TRUE:
    case JSON_FALSE:
        out->type = POLICY_BOOL;
        out->u.b = j->type == JSON_TRUE;
        return 0;
    case JSON_NUMBER:
        if (!(j->nflags & JSON_NUM_I64) || strpbrk(j->u.n.text, ".eE"))
            return json_fail(err, j, "number %s is not a 64-bit integer (Cedar has only Long; "
                                     "use decimal(\"...\") for fractions)", j->u.n.text);
        out->type = POLICY_LONG;
        out->u.l = j->u.n.i;
        return 0;
    case JSON_STRING:
        out->type = POLICY_STRING;
        out->u.str.s = arena_strndup(a, j->u.s.str, j->len);
        out->u.str.len = j->len;
        return 0;
    case JSON_ARRAY: {
        struct policy_value *items = arena_alloc(a, (j->len ? j->len : 1) * sizeof *items);
        uint32_t n = 0;
        for (uint32_t i = 0; i < j->len; i++) {
            if (nulls && json_is(j->u.items[i], JSON_NULL)) continue;
            if (from_json(a, j->u.items[i], implicit, nulls, depth + 1, &items[n++], err) < 0)
                return KEEL_EINVAL;
        }
        out->type = POLICY_SET;
        out->u.set = policy_vset_make(a, items, n);
        return 0;
    }
    case JSON_OBJECT: {
        if (j->len == 1 && !strcmp(j->u.members[0].key, "__entity")) {
            struct policy_euid *e = arena_alloc(a, sizeof *e);
            if (euid_from_json(a, j->u.members[0].value, e, err) < 0) return KEEL_EINVAL;
            out->type = POLICY_ENTITY;
            out->u.entity = e;
            return 0;
        }
        if (j->len == 1 && !strcmp(j->u.members[0].key, "__extn")) {
            const struct json_value *x = j->u.members[0].value;
            const char *fn = json_get_str(x, "fn", NULL);
            const struct json_value *arg = json_get(x, "arg");
            const struct json_value *args = json_get(x, "args");
            if (fn && !arg && json_is(args, JSON_ARRAY)) {
                /* {"fn": "offset", "args": [...]}: a call on argument values */
                int fi = policy_fn_lookup(fn, NULL);
                if (fi < 0) return json_fail(err, j, "unknown extension function \"%s\"", fn);
                if (args->len > 8) return json_fail(err, j, "too many arguments to \"%s\"", fn);
                struct policy_value av[8];
                for (uint32_t i = 0; i < args->len; i++)
                    if (from_json(a, args->u.items[i], implicit, false, depth + 1, &av[i],
                                  err) < 0)
                        return KEEL_EINVAL;
                char msg[256];
                if (policy_call_fn(a, fi, av, args->len, out, msg, sizeof msg) < 0)
                    return json_fail(err, j, "%s", msg);
                return 0;
            }
            if (fn && json_is(arg, JSON_OBJECT) && json_get(arg, "__extn")) {
                /* {"fn": "toDate", "arg": {"__extn": ...}}: a one-argument call */
                int fi = policy_fn_lookup(fn, NULL);
                if (fi < 0) return json_fail(err, j, "unknown extension function \"%s\"", fn);
                struct policy_value av;
                if (from_json(a, arg, implicit, false, depth + 1, &av, err) < 0)
                    return KEEL_EINVAL;
                char msg[256];
                if (policy_call_fn(a, fi, &av, 1, out, msg, sizeof msg) < 0)
                    return json_fail(err, j, "%s", msg);
                return 0;
            }
            if (!fn || !json_is(arg, JSON_STRING))
                return json_fail(err, j, "expected {\"__extn\": {\"fn\": ..., \"arg\": \"...\"}}");
            const char *s = arg->u.s.str;
            size_t n = arg->len;
            if (!strcmp(fn, "decimal")) {
                out->type = POLICY_DECIMAL;
                if (policy_parse_decimal(s, n, &out->u.l) < 0)
                    return json_fail(err, arg, "invalid decimal \"%s\"", s);
            } else if (!strcmp(fn, "ip") || !strcmp(fn, "ipaddr")) {
                struct policy_ip *ip = arena_alloc(a, sizeof *ip);
                if (policy_parse_ip(s, n, ip) < 0)
                    return json_fail(err, arg, "invalid ip address \"%s\"", s);
                out->type = POLICY_IPADDR;
                out->u.ip = ip;
            } else if (!strcmp(fn, "datetime")) {
                out->type = POLICY_DATETIME;
                if (policy_parse_datetime(s, n, &out->u.l) < 0)
                    return json_fail(err, arg, "invalid datetime \"%s\"", s);
            } else if (!strcmp(fn, "duration")) {
                out->type = POLICY_DURATION;
                if (policy_parse_duration(s, n, &out->u.l) < 0)
                    return json_fail(err, arg, "invalid duration \"%s\"", s);
            } else {
                return json_fail(err, j, "unknown extension function \"%s\"", fn);
            }
            return 0;
        }
        if (implicit && j->len == 2 && json_is(json_get(j, "type"), JSON_STRING) &&
            json_is(json_get(j, "id"), JSON_STRING)) {
            struct policy_euid *e = arena_alloc(a, sizeof *e);
            if (euid_from_json(a, j, e, err) < 0) return KEEL_EINVAL;
            out->type = POLICY_ENTITY;
            out->u.entity = e;
            return 0;
        }
        struct policy_record *r = arena_alloc(a, sizeof *r);
        r->len = 0;
        r->fields = arena_alloc(a, (j->len ? j->len : 1) * sizeof *r->fields);
        for (uint32_t i = 0; i < j->len; i++) {
            if (nulls && json_is(j->u.members[i].value, JSON_NULL)) continue;
            struct policy_field *f = &r->fields[r->len++];
            f->key = arena_strndup(a, j->u.members[i].key, j->u.members[i].key_len);
            f->key_len = j->u.members[i].key_len;
            if (from_json(a, j->u.members[i].value, implicit, nulls, depth + 1, &f->value, err) <
                0)
                return KEEL_EINVAL;
        }
        uint32_t dup;
        if (policy_record_sort(r->fields, r->len, &dup) < 0)
            return json_fail(err, j, "duplicate key \"%s\"", r->fields[dup].key);
        out->type = POLICY_RECORD;
        out->u.rec = r;
        return 0;
    }
    default: return json_fail(err, j, "null has no Cedar value; leave the attribute out instead");
    }
}

int policy_value_from_json(struct arena *a, const struct json_value *j, bool implicit_entity,
                           struct policy_value *out, struct keel_err *err)
{
    return from_json(a, j, implicit_entity, false, 0, out, err);
}

int policy_value_from_json_vars(struct arena *a, const struct json_value *j,
                                struct policy_value *out, struct keel_err *err)
{
    return from_json(a, j, false, true, 0, out, err);
}

static void format_decimal(char *o, size_t cap, int64_t v)
{
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    snprintf(o, cap, "%s%" PRIu64 ".%04" PRIu64, v < 0 ? "-" : "", m / 10000, m % 10000);
}

static void format_ip(char *o, size_t cap, const struct policy_ip *ip)
{
    char a[INET6_ADDRSTRLEN];
    inet_ntop(ip->v6 ? AF_INET6 : AF_INET, ip->addr, a, sizeof a);
    snprintf(o, cap, "%s/%u", a, ip->prefix);
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static void format_datetime(char *o, size_t cap, int64_t ms)
{
    int64_t days = ms / 86400000, rem = ms % 86400000;
    if (rem < 0) {
        rem += 86400000;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(o, cap, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d,
             (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
             (int)(rem % 1000));
}

static void format_duration(char *o, size_t cap, int64_t ms)
{
    snprintf(o, cap, "%" PRId64 "ms", ms);
}

static const char *ext_arg(const struct policy_value *v, char *o, size_t cap)
{
    switch (v->type) {
    case POLICY_DECIMAL: format_decimal(o, cap, v->u.l); return "decimal";
    case POLICY_IPADDR: format_ip(o, cap, v->u.ip); return "ip";
    case POLICY_DATETIME: format_datetime(o, cap, v->u.l); return "datetime";
    case POLICY_DURATION: format_duration(o, cap, v->u.l); return "duration";
    }
    return NULL;
}

struct json_value *policy_value_to_json(struct arena *a, const struct policy_value *v)
{
    char tmp[96];
    switch (v->type) {
    case POLICY_BOOL: return json_bool(a, v->u.b);
    case POLICY_LONG: return json_int(a, v->u.l);
    case POLICY_STRING: return json_string(a, v->u.str.s, v->u.str.len);
    case POLICY_ENTITY: {
        struct json_value *o = json_object(a), *e = json_object(a);
        json_object_setc(a, e, "type", json_string(a, v->u.entity->type, v->u.entity->type_len));
        json_object_setc(a, e, "id", json_string(a, v->u.entity->id, v->u.entity->id_len));
        json_object_setc(a, o, "__entity", e);
        return o;
    }
    case POLICY_SET: {
        struct json_value *arr = json_array(a);
        for (uint32_t i = 0; i < v->u.set->len; i++)
            json_array_push(a, arr, policy_value_to_json(a, &v->u.set->items[i]));
        return arr;
    }
    case POLICY_RECORD: {
        struct json_value *o = json_object(a);
        for (uint32_t i = 0; i < v->u.rec->len; i++) {
            const struct policy_field *f = &v->u.rec->fields[i];
            json_object_set(a, o, f->key, f->key_len, policy_value_to_json(a, &f->value));
        }
        return o;
    }
    default: {
        const char *fn = ext_arg(v, tmp, sizeof tmp);
        struct json_value *o = json_object(a), *x = json_object(a);
        json_object_setc(a, x, "fn", json_cstr(a, fn ? fn : "?"));
        json_object_setc(a, x, "arg", json_cstr(a, tmp));
        json_object_setc(a, o, "__extn", x);
        return o;
    }
    }
}

static void put_str(struct buf *out, const char *s, size_t len)
{
    buf_putc(out, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            buf_putc(out, '\\');
            buf_putc(out, (char)c);
        } else if (c == '\n') {
            buf_puts(out, "\\n");
        } else if (c < 0x20 || c == 0x7f) {
            buf_printf(out, "\\u{%x}", c);
        } else {
            buf_putc(out, (char)c);
        }
    }
    buf_putc(out, '"');
}

void policy_value_format(struct buf *out, const struct policy_value *v)
{
    char tmp[96];
    switch (v->type) {
    case POLICY_BOOL: buf_puts(out, v->u.b ? "true" : "false"); return;
    case POLICY_LONG: buf_printf(out, "%" PRId64, v->u.l); return;
    case POLICY_STRING: put_str(out, v->u.str.s, v->u.str.len); return;
    case POLICY_ENTITY:
        buf_append(out, v->u.entity->type, v->u.entity->type_len);
        buf_puts(out, "::");
        put_str(out, v->u.entity->id, v->u.entity->id_len);
        return;
    case POLICY_SET:
        buf_putc(out, '[');
        for (uint32_t i = 0; i < v->u.set->len; i++) {
            if (i) buf_puts(out, ", ");
            policy_value_format(out, &v->u.set->items[i]);
        }
        buf_putc(out, ']');
        return;
    case POLICY_RECORD:
        buf_putc(out, '{');
        for (uint32_t i = 0; i < v->u.rec->len; i++) {
            if (i) buf_puts(out, ", ");
            put_str(out, v->u.rec->fields[i].key, v->u.rec->fields[i].key_len);
            buf_puts(out, ": ");
            policy_value_format(out, &v->u.rec->fields[i].value);
        }
        buf_putc(out, '}');
        return;
    default: {
        const char *fn = ext_arg(v, tmp, sizeof tmp);
        buf_printf(out, "%s(\"%s\")", fn ? fn : "?", tmp);
        return;
    }
    }
}
