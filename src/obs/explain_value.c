/*
 * explain_value.c — how a value enters the explain report: copies capped at
 * OBS_VALUE_MAX bytes of compact JSON (larger ones become {truncated,
 * larger_than, preview}) and previews cut at OBS_PREVIEW_MAX bytes.
 *
 * Invariants: measuring a value costs O(limit), not O(its size), since an
 * append-reduced state key of a long run can be huge and is measured at
 * every state.updated; a cut never splits a UTF-8 sequence.
 */
#include "internal.h"

#include <string.h>

/* Cuts s to at most max bytes without splitting a UTF-8 sequence, adding
 * "…" when something was cut.  Returns a string in arena a (freed with it). */
const char *obs_cut(struct arena *a, const char *s, size_t len, size_t max)
{
    if (len <= max) return arena_strndup(a, s, len);
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    char *out = arena_alloc(a, n + 4);
    memcpy(out, s, n);
    memcpy(out + n, "\xE2\x80\xA6", 4);
    return out;
}

/* Writes the compact JSON of v to b, stopping once b holds more than
 * limit bytes, so a huge value (an append-reduced list of a long run) costs
 * O(limit) here, not O(its size).  Returns false if it stopped early. */
static bool bounded_write(struct buf *b, const struct json_value *v, size_t limit, int depth)
{
    if (b->len > limit) return false;
    if (!v) {
        buf_puts(b, "null");
        return true;
    }
    if (depth > 64) {
        buf_puts(b, "\"…\"");
        return true;
    }
    if (json_is(v, JSON_STRING)) {
        size_t room = limit - b->len + 1, n = v->len;
        if (n > room) {
            n = room;
            while (n > 0 && ((unsigned char)v->u.s.str[n] & 0xC0) == 0x80) n--;
        }
        json_write_string(b, v->u.s.str, n);
        return n == v->len;
    }
    if (json_is(v, JSON_ARRAY)) {
        buf_putc(b, '[');
        for (uint32_t i = 0; i < v->len; i++) {
            if (i) buf_putc(b, ',');
            if (!bounded_write(b, v->u.items[i], limit, depth + 1)) return false;
        }
        buf_putc(b, ']');
        return b->len <= limit;
    }
    if (json_is(v, JSON_OBJECT)) {
        buf_putc(b, '{');
        for (uint32_t i = 0; i < v->len; i++) {
            if (i) buf_putc(b, ',');
            json_write_string(b, v->u.members[i].key, v->u.members[i].key_len);
            buf_putc(b, ':');
            if (!bounded_write(b, v->u.members[i].value, limit, depth + 1)) return false;
        }
        buf_putc(b, '}');
        return b->len <= limit;
    }
    json_write(b, v, 0, NULL);
    return b->len <= limit;
}

/* Compact JSON of v, cut to max bytes; a string in arena a (freed with it). */
const char *obs_preview(struct arena *a, const struct json_value *v, size_t max)
{
    if (!v) return "null";
    struct buf b;
    buf_init(&b);
    bounded_write(&b, v, max + 1, 0);
    const char *s = obs_cut(a, b.data ? b.data : "", b.len, max);
    buf_cleanup(&b);
    return s;
}

/* A copy of v for the report, or {truncated, larger_than, preview} when its
 * compact JSON is larger than OBS_VALUE_MAX.  NULL stays NULL.  The copy is
 * in c->a (freed with it), so later folds never change it. */
struct json_value *obs_clip(struct ctx *c, const struct json_value *v)
{
    if (!v) return NULL;
    struct buf b;
    buf_init(&b);
    struct json_value *out;
    if (bounded_write(&b, v, OBS_VALUE_MAX, 0)) {
        out = json_clone(c->a, v);
    } else {
        out = obj(c);
        json_object_setc(c->a, out, "truncated", json_bool(c->a, true));
        set_i(c, out, "larger_than", OBS_VALUE_MAX);
        set_s(c, out, "preview", obs_cut(c->a, b.data, b.len, OBS_PREVIEW_MAX));
    }
    buf_cleanup(&b);
    return out;
}

