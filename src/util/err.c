/*
 * err.c — struct keel_err helpers.  An error carries a stable code, a
 * message a user can act on, and (for parse errors) where it happened.
 */
#include "util.h"

#include <stdio.h>
#include <string.h>

void keel_err_clear(struct keel_err *err)
{
    if (!err) return;
    err->code = 0;
    err->line = err->column = 0;
    err->file[0] = err->path[0] = err->msg[0] = '\0';
}

int keel_vfail(struct keel_err *err, int code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

int keel_fail(struct keel_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    keel_vfail(err, code, fmt, ap);
    va_end(ap);
    return code;
}

int keel_fail_at(struct keel_err *err, int code, const char *file, int line, int column,
                 const char *fmt, ...)
{
    if (err) {
        snprintf(err->file, sizeof err->file, "%s", file ? file : "");
        err->line = line;
        err->column = column;
    }
    va_list ap;
    va_start(ap, fmt);
    keel_vfail(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void keel_err_prefix(struct keel_err *err, const char *fmt, ...)
{
    if (!err) return;
    char prefix[KEEL_ERR_MSG_MAX];
    char old[KEEL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
}

const char *keel_err_format(const struct keel_err *err, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
#define PUT(...)                                                                                   \
    do {                                                                                           \
        if (n < cap) {                                                                             \
            int w = snprintf(out + n, cap - n, __VA_ARGS__);                                       \
            if (w > 0) n += (size_t)w;                                                             \
        }                                                                                          \
    } while (0)
    if (err->file[0]) {
        PUT("%s:", err->file);
        if (err->line) PUT("%d:", err->line);
        if (err->line && err->column) PUT("%d:", err->column);
        PUT(" ");
    } else if (err->line) {
        PUT("line %d", err->line);
        if (err->column) PUT(", column %d", err->column);
        PUT(": ");
    }
    if (err->path[0]) PUT("at %s: ", err->path);
    PUT("%s", err->msg[0] ? err->msg : keel_strerror(err->code));
#undef PUT
    return out;
}

const char *keel_strerror(int code)
{
    static const char *const names[] = {
        "OK",     "EINVAL", "ENOMEM",  "EIO",     "ENOENT",  "EEXIST",  "ELIMIT",   "EDENIED",
        "EAUTH",  "ESTATE", "ETIMEOUT", "ESCHEMA", "EPROTO", "ECORRUPT", "EBUSY", "EINTERNAL",
    };
    int i = -code;
    if (i < 0 || (size_t)i >= KEEL_ARRAY_LEN(names)) return "EUNKNOWN";
    return names[i];
}
