/*
 * uri.c — the little URI work JSON Schema needs: resolving a reference
 * against a base (RFC 3986 section 5.2, with dot-segment removal), dropping
 * fragments, and percent-decoding JSON Pointer fragments.
 *
 * Invariants: results live in the caller's arena; inputs are never
 * modified.  URNs ("urn:uuid:...") have no authority and no "/" in their
 * path, so a fragment-only reference resolves against them unchanged and
 * any other relative reference replaces the path — as RFC 3986 says.
 */
#include "internal.h"

#include <ctype.h>
#include <string.h>

struct uparts {
    const char *scheme, *auth, *path, *query, *frag;
    size_t scheme_len, auth_len, path_len, query_len, frag_len;
    bool has_scheme, has_auth, has_query, has_frag;
};

static void split(const char *s, struct uparts *p)
{
    memset(p, 0, sizeof *p);
    const char *c = s;
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
    if (isalpha((unsigned char)*c)) {
        const char *q = c + 1;
        while (isalnum((unsigned char)*q) || *q == '+' || *q == '-' || *q == '.') q++;
        if (*q == ':') {
            p->has_scheme = true;
            p->scheme = c;
            p->scheme_len = (size_t)(q - c);
            c = q + 1;
        }
    }
    if (c[0] == '/' && c[1] == '/') {
        c += 2;
        const char *q = c;
        while (*q && *q != '/' && *q != '?' && *q != '#') q++;
        p->has_auth = true;
        p->auth = c;
        p->auth_len = (size_t)(q - c);
        c = q;
    }
    const char *q = c;
    while (*q && *q != '?' && *q != '#') q++;
    p->path = c;
    p->path_len = (size_t)(q - c);
    c = q;
    if (*c == '?') {
        q = ++c;
        while (*q && *q != '#') q++;
        p->has_query = true;
        p->query = c;
        p->query_len = (size_t)(q - c);
        c = q;
    }
    if (*c == '#') {
        p->has_frag = true;
        p->frag = c + 1;
        p->frag_len = strlen(c + 1);
    }
}

/* RFC 3986 5.2.4: removes "." and ".." segments from path (in place in a
 * buffer); returns the new length. */
static size_t remove_dots(char *in, size_t len)
{
    char *out = in; /* output never outruns input */
    size_t o = 0, i = 0;
    while (i < len) {
        if (!strncmp(in + i, "../", 3) && i + 3 <= len) {
            i += 3;
        } else if (!strncmp(in + i, "./", 2) && i + 2 <= len) {
            i += 2;
        } else if (i + 3 <= len && !strncmp(in + i, "/./", 3)) {
            i += 2;
        } else if (i + 2 == len && !strncmp(in + i, "/.", 2)) {
            in[i + 1] = '/';
            i += 1;
        } else if (i + 4 <= len && !strncmp(in + i, "/../", 4)) {
            i += 3;
            while (o > 0 && out[o - 1] != '/') o--;
            if (o > 0) o--;
        } else if (i + 3 == len && !strncmp(in + i, "/..", 3)) {
            i += 2;
            in[i] = '/';
            while (o > 0 && out[o - 1] != '/') o--;
            if (o > 0) o--;
        } else if ((i + 1 == len && in[i] == '.') || (i + 2 == len && !strncmp(in + i, "..", 2))) {
            i = len;
        } else {
            size_t j = i;
            if (in[j] == '/') j++;
            while (j < len && in[j] != '/') j++;
            memmove(out + o, in + i, j - i);
            o += j - i;
            i = j;
        }
    }
    return o;
}

static void put(struct buf *b, const char *s, size_t n)
{
    buf_append(b, s, n);
}

char *uri_resolve(struct arena *a, const char *base, const char *ref)
{
    struct uparts r, b;
    split(ref, &r);
    split(base ? base : "", &b);
    struct buf out, path;
    buf_init(&out);
    buf_init(&path);
    const struct uparts *sch, *au, *qu;
    if (r.has_scheme) {
        sch = &r, au = &r, qu = &r;
        put(&path, r.path, r.path_len);
    } else if (r.has_auth) {
        sch = &b, au = &r, qu = &r;
        put(&path, r.path, r.path_len);
    } else {
        sch = &b, au = &b;
        if (r.path_len == 0) {
            put(&path, b.path, b.path_len);
            qu = r.has_query ? &r : &b;
        } else {
            qu = &r;
            if (r.path[0] == '/') {
                put(&path, r.path, r.path_len);
            } else {
                /* merge */
                if (b.has_auth && b.path_len == 0) {
                    buf_putc(&path, '/');
                } else {
                    size_t k = b.path_len;
                    while (k > 0 && b.path[k - 1] != '/') k--;
                    put(&path, b.path, k);
                }
                put(&path, r.path, r.path_len);
            }
        }
    }
    if (sch->has_scheme) {
        put(&out, sch->scheme, sch->scheme_len);
        buf_putc(&out, ':');
    }
    if (au->has_auth) {
        buf_puts(&out, "//");
        put(&out, au->auth, au->auth_len);
    }
    if (path.len) {
        size_t n = remove_dots(path.data, path.len);
        put(&out, path.data, n);
    }
    if (qu->has_query) {
        buf_putc(&out, '?');
        put(&out, qu->query, qu->query_len);
    }
    if (r.has_frag) {
        buf_putc(&out, '#');
        put(&out, r.frag, r.frag_len);
    }
    char *res = arena_strndup(a, out.data ? out.data : "", out.len);
    buf_cleanup(&out);
    buf_cleanup(&path);
    return res;
}

char *uri_strip_fragment(struct arena *a, const char *uri)
{
    const char *h = strchr(uri, '#');
    return arena_strndup(a, uri, h ? (size_t)(h - uri) : strlen(uri));
}

bool uri_is_absolute(const char *uri)
{
    struct uparts p;
    split(uri, &p);
    return p.has_scheme;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

bool uri_percent_decode(const char *s, size_t len, char *out, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%') {
            if (i + 2 >= len) return false;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0) return false;
            out[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    *out_len = o;
    return true;
}
