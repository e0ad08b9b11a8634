/*
 * validate_errors.c — the errors of a validation: recorded as facts while
 * the walk runs, made into text after it (or, for a lazy result, when
 * first read), and written out (schema_result_error, _write_json,
 * _write_text).  Also the parts of messages that depend only on the schema,
 * made once at compile time (schema_op_messages).
 *
 * Invariants: recording formats nothing and allocates only while the
 * result's buffers grow (facts, path segments), so a validation that fails
 * in a subschema whose failure is not an error costs no text; rendering is
 * byte for byte what formatting at the time of the failure would produce,
 * eager or lazy; messages are cut at the first NUL a shown value carries,
 * and a shown value at about 60 bytes on a UTF-8 boundary.
 */
#include "validate_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- recording errors ------------------------------------------------------------ */

/*
 * An error is recorded as facts, not text: the failing keyword (its sop,
 * or the node for a node-level error), the instance value, both paths
 * copied out of the stack frames as arrays of segments (into r->segs),
 * and the message as a template with its arguments (pointers into the
 * schema or the instance, and integers).  Nothing is formatted while the
 * walk runs.  schema_render_errors() turns the facts into the strings of struct
 * schema_error — at the end of schema_validate(), or, when the caller set
 * r->lazy, on the first schema_result_error() — so a caller that only
 * wants the verdict, or only some errors, pays for no text it does not
 * read.  The rendered text is byte for byte what formatting at the time
 * of the failure produced.
 *
 * Invariant: facts[0 .. kept) are complete; segs[0 .. segs_used) hold
 * their paths, each leaf first.
 */

union earg {
    const char *s;
    unsigned long long u;
    long long i;
};

/* How the part of a message after its subject is made. */
enum emsg { M_FORMAT, M_TEXT, M_TYPE };

struct efact {
    const struct sop *op;          /* failing keyword; NULL: the node itself       */
    const struct snode *owner;     /* node of op (or the failing node)             */
    struct json_value inst;        /* the instance value, a shallow copy (it may be
                                      a key wrapped on the stack by propertyNames)  */
    const char *fmt;               /* M_FORMAT: template (%s %u %.*s %lld %zu %%)  */
    union earg args[4];            /* its arguments, in order                      */
    uint32_t iseg, niseg;          /* instance path: segs[iseg .. iseg + niseg)    */
    uint32_t kseg, nkseg;          /* keyword path (then op->kw, if op)            */
    size_t at[3];                  /* offsets of the rendered strings in msgbuf    */
    uint8_t msg;                   /* enum emsg                                    */
    bool subject;                  /* starts with the subject ("`title`", ...)     */
    bool got;                      /* ends with "; got `<instance>`"               */
};

struct seg {
    const char *key; /* NULL for array indices */
    uint32_t len;
    uint32_t idx;
};

/* Copies the path ending at p into r->segs, leaf first (one pass up the
 * stack frames; rendering reads it backwards). */
static bool copy_path(struct schema_result *r, const struct pathseg *p, uint32_t *at, uint32_t *n)
{
    size_t start = r->segs_used, used = start;
    struct seg *s = r->segs;
    for (; p; p = p->up) {
        if (used == r->segs_cap) {
            size_t cap = r->segs_cap ? r->segs_cap * 2 : 64;
            s = realloc(r->segs, cap * sizeof *s);
            if (!s) return false;
            r->segs = s;
            r->segs_cap = cap;
        }
        s[used++] = (struct seg){p->key, p->len, p->idx};
    }
    *at = (uint32_t)start;
    *n = (uint32_t)(used - start);
    r->segs_used = used;
    return true;
}

/* Counts an error and returns its fact to fill in, or NULL when it is not
 * kept (enough kept already, or out of memory). */
static struct efact *new_fact(struct vctx *c, const struct sop *op, const struct snode *owner,
                              const struct json_value *inst, uint8_t msg, bool subject, bool got)
{
    struct schema_result *r = c->r;
    r->error_count++;
    if (r->kept >= c->limit) return NULL;
    if (r->kept == r->facts_cap) {
        size_t cap = r->facts_cap ? r->facts_cap * 2 : 8;
        struct efact *f = realloc(r->facts, cap * sizeof *f);
        if (!f) return NULL;
        r->facts = f;
        r->facts_cap = cap;
    }
    struct efact *f = (struct efact *)r->facts + r->kept;
    if (!copy_path(r, c->ipath, &f->iseg, &f->niseg) ||
        !copy_path(r, c->kpath, &f->kseg, &f->nkseg))
        return NULL;
    r->kept++;
    f->op = op;
    f->owner = owner;
    if (inst) f->inst = *inst;
    f->fmt = NULL;
    f->msg = msg;
    f->subject = subject;
    f->got = got;
    return f;
}

/* Takes the arguments fmt asks for off ap (at most four slots). */
static void capture(struct efact *f, const char *fmt, va_list ap)
{
    unsigned n = 0;
    f->fmt = fmt;
    for (const char *p = fmt; (p = strchr(p, '%')) != NULL && n < 4;) {
        p++;
        if (*p == 's') f->args[n++].s = va_arg(ap, const char *);
        else if (*p == 'u') f->args[n++].u = va_arg(ap, unsigned);
        else if (*p == 'l') f->args[n++].i = va_arg(ap, long long), p += 2;
        else if (*p == 'z') f->args[n++].u = va_arg(ap, size_t), p += 1;
        else if (*p == '.' && n < 3) { /* %.*s */
            f->args[n++].i = va_arg(ap, int);
            f->args[n++].s = va_arg(ap, const char *);
            p += 2;
        }
        if (*p) p++;
    }
}

/* Records an error for keyword op whose message is made from fmt and the
 * arguments in ap; got: the instance value inst is appended. */
static void report_format(struct vctx *c, const struct sop *op, const struct json_value *inst,
                          bool got, const char *fmt, va_list ap)
{
    struct efact *f = new_fact(c, op, op->owner, inst, M_FORMAT, true, got);
    if (f) capture(f, fmt, ap);
}

/* Records an error at the current location for keyword op; the message
 * is the subject, a space and fmt with its arguments (all of which must
 * outlive the result: literals, schema or instance strings). */
void schema_report(struct vctx *c, const struct sop *op, const char *fmt, ...)
{
    if (!c->collect) return;
    va_list ap;
    va_start(ap, fmt);
    report_format(c, op, NULL, false, fmt, ap);
    va_end(ap);
}

/* Like schema_report, with the instance value appended as "; got `...`". */
void schema_report_got(struct vctx *c, const struct sop *op, const struct json_value *inst,
                       const char *fmt, ...)
{
    if (!c->collect) return;
    va_list ap;
    va_start(ap, fmt);
    report_format(c, op, inst, true, fmt, ap);
    va_end(ap);
}

/* Records an error whose message is the subject, a space and text (which
 * must outlive the result: a literal or op->msg), then "; got `...`" when
 * inst is given. */
void schema_report_text(struct vctx *c, const struct sop *op, const struct json_value *inst,
                        const char *text)
{
    if (!c->collect) return;
    struct efact *f = new_fact(c, op, op->owner, inst, M_TEXT, true, inst != NULL);
    if (f) f->fmt = text;
}

/* Records a node-level error (op NULL) with a fixed text. */
void schema_report_node(struct vctx *c, const struct snode *n, const char *text, bool subject)
{
    struct efact *f = new_fact(c, NULL, n, NULL, M_TEXT, subject, false);
    if (f) f->fmt = text;
}

/* Records a `type` failure; its text is made from op->msg and the
 * instance's type when rendered (body_type). */
void schema_report_type(struct vctx *c, const struct sop *op, const struct json_value *inst)
{
    new_fact(c, op, op->owner, inst, M_TYPE, true, true);
}

/* ---- rendering ------------------------------------------------------------------ */

/* Appends n bytes; the buffer stays NUL-terminated (as util's buf
 * promises) with one reservation instead of one call per byte. */
static inline void put_bytes(struct buf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) buf_reserve(b, n + 1);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

static inline void put_str(struct buf *b, const char *s)
{
    put_bytes(b, s, strlen(s));
}

static void put_u64(struct buf *b, unsigned long long v)
{
    char tmp[24];
    int n = 24;
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put_bytes(b, tmp + n, (size_t)(24 - n));
}

/* Appends "/" and the JSON Pointer escape of key (~ -> ~0, / -> ~1). */
static void put_token(struct buf *b, const char *key, size_t len)
{
    if (b->len + 2 * len + 2 > b->cap) buf_reserve(b, 2 * len + 2);
    char *o = b->data + b->len;
    *o++ = '/';
    for (size_t i = 0; i < len; i++) {
        char ch = key[i];
        if (ch == '~') *o++ = '~', *o++ = '0';
        else if (ch == '/') *o++ = '~', *o++ = '1';
        else *o++ = ch;
    }
    *o = 0;
    b->len = (size_t)(o - b->data);
}

/* Appends the instance path of the n segments s (leaf first). */
static void put_path(struct buf *b, const struct seg *s, uint32_t n)
{
    for (uint32_t i = n; i-- > 0;) {
        if (s[i].key) {
            put_token(b, s[i].key, s[i].len);
        } else {
            put_bytes(b, "/", 1);
            put_u64(b, s[i].idx);
        }
    }
}

static void put_name(struct buf *b, const char *key, uint32_t len)
{
    put_bytes(b, "`", 1);
    put_bytes(b, key, len > 60 ? 60 : len);
    put_bytes(b, "`", 1);
}

/* A short description of where the instance is, for messages, from the
 * n path segments s (leaf first). */
static void subject(struct buf *b, const struct seg *s, uint32_t n)
{
    if (!n) {
        put_bytes(b, "the value", 9);
        return;
    }
    if (s[0].key) {
        put_name(b, s[0].key, s[0].len);
        return;
    }
    put_bytes(b, "item ", 5);
    put_u64(b, s[0].idx);
    if (n > 1 && s[1].key) {
        put_bytes(b, " of ", 4);
        put_name(b, s[1].key, s[1].len);
    }
}

/* Appends a short rendering of v: strings bare, others as JSON, cut to
 * about 60 bytes (on a UTF-8 character boundary). */
static void show(struct buf *b, const struct json_value *v)
{
    size_t start = b->len;
    static const char *const literal[] = {[JSON_NULL] = "null", [JSON_FALSE] = "false",
                                          [JSON_TRUE] = "true"};
    if (v->type == JSON_STRING) put_bytes(b, v->u.s.str, v->len > 256 ? 256 : v->len);
    else if (v->type == JSON_NUMBER) put_str(b, v->u.n.text); /* as json_write has it */
    else if (v->type <= JSON_TRUE && literal[v->type]) put_str(b, literal[v->type]);
    else json_write(b, v, 0, NULL);
    if (b->len - start > 64) {
        size_t cut = start + 60;
        while (cut > start && ((unsigned char)b->data[cut] & 0xC0) == 0x80) cut--;
        b->len = cut;
        put_bytes(b, "...", 3);
    }
}

/* Drops what follows a NUL at or after start: text that used to pass
 * through a "%s" ends there, and messages must not change. */
static void cut_at_nul(struct buf *b, size_t start)
{
    const char *z = memchr(b->data + start, 0, b->len - start);
    if (z) {
        b->len = (size_t)(z - b->data);
        b->data[b->len] = 0;
    }
}

/* M_FORMAT: the template with its captured arguments. */
static void body_format(struct buf *b, const struct efact *f)
{
    const char *s = f->fmt;
    unsigned n = 0;
    for (;;) {
        const char *p = strchr(s, '%');
        if (!p) {
            put_str(b, s);
            return;
        }
        put_bytes(b, s, (size_t)(p - s));
        s = p + 1;
        if (*s == '%') {
            put_bytes(b, "%", 1);
            s += 1;
            continue;
        }
        if (n >= 4) return; /* capture() took no more */
        if (*s == 's') {
            put_str(b, f->args[n++].s);
            s += 1;
        } else if (*s == 'u' || *s == 'z') {
            put_u64(b, f->args[n++].u);
            s += *s == 'z' ? 2 : 1;
        } else if (*s == 'l') { /* %lld */
            long long v = f->args[n++].i;
            if (v < 0) put_bytes(b, "-", 1);
            put_u64(b, v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v);
            s += 3;
        } else if (*s == '.') { /* %.*s */
            long long len = f->args[n].i;
            const char *str = f->args[n + 1].s;
            n += 2;
            put_bytes(b, str, len > 0 ? strnlen(str, (size_t)len) : 0);
            s += 3;
        } else {
            return; /* not a conversion the messages use */
        }
    }
}

static const char *const type_word[] = {"null", "a boolean", "an object", "an array",
                                        "a number", "a string", "an integer"};

/* M_TEXT: the text as it is. */
static void body_text(struct buf *b, const struct efact *f)
{
    put_str(b, f->fmt);
}

/* M_TYPE: "must be a string or null, not a number" (op->msg is all but
 * the last word). */
static void body_type(struct buf *b, const struct efact *f)
{
    put_str(b, f->op->msg);
    uint32_t t = type_bit(f->inst.type);
    put_str(b, f->inst.type == JSON_NUMBER ? "a number" : type_word[__builtin_ctz(t)]);
}

/* ---- messages made at compile time ----------------------------------------------- */

/* Appends fmt with its arguments, as body_format renders them. */
static void put_format(struct buf *b, const char *fmt, ...)
{
    struct efact f;
    va_list ap;
    va_start(ap, fmt);
    capture(&f, fmt, ap);
    va_end(ap);
    body_format(b, &f);
}

/* type: "must be a string or null, not " (the instance's type follows). */
static void msg_type(struct buf *b, const struct sop *op)
{
    put_bytes(b, "must be ", 8);
    for (int i = 0, k = 0; i < 7; i++) {
        if (!(op->types & (1u << i))) continue;
        if (k++) put_bytes(b, " or ", 4);
        put_str(b, type_word[i]);
    }
    put_bytes(b, ", not ", 6);
}

/* const: "must be `<const>`". */
static void msg_const(struct buf *b, const struct sop *op)
{
    put_bytes(b, "must be `", 9);
    size_t start = b->len;
    show(b, op->val);
    cut_at_nul(b, start);
    put_bytes(b, "`", 1);
}

/* enum: "must be one of a, b, c" (the first 12). */
static void msg_enum(struct buf *b, const struct sop *op)
{
    const struct json_value *e = op->val;
    put_bytes(b, "must be one of ", 15);
    if (!e->len) put_str(b, "(nothing: enum is empty)");
    size_t start = b->len;
    for (uint32_t i = 0; i < e->len && i < 12; i++) {
        if (i) put_bytes(b, ", ", 2);
        show(b, e->u.items[i]);
    }
    if (e->len > 12) {
        put_str(b, ", ... (");
        put_u64(b, e->len);
        put_str(b, " in all)");
    }
    cut_at_nul(b, start);
}

/* additionalProperties: false, with the allowed names. */
static void msg_not_allowed(struct buf *b, const struct sop *op)
{
    const struct sop *props = op->props;
    put_str(b, "is not an allowed property");
    if (!props || !props->nsubs) return;
    size_t start = b->len;
    put_str(b, "; allowed properties are ");
    for (uint32_t i = 0; i < props->nsubs && i < 20; i++) {
        if (i) put_bytes(b, ", ", 2);
        put_bytes(b, props->names[i], props->name_lens[i] > 60 ? 60 : props->name_lens[i]);
    }
    if (props->nsubs > 20) put_str(b, ", ...");
    cut_at_nul(b, start);
}

static void msg_multiple_of(struct buf *b, const struct sop *op)
{
    put_format(b, "must be a multiple of %s", op->val->u.n.text);
}
static void msg_maximum(struct buf *b, const struct sop *op)
{
    put_format(b, "must be at most %s", op->val->u.n.text);
}
static void msg_exclusive_maximum(struct buf *b, const struct sop *op)
{
    put_format(b, "must be less than %s", op->val->u.n.text);
}
static void msg_minimum(struct buf *b, const struct sop *op)
{
    put_format(b, "must be at least %s", op->val->u.n.text);
}
static void msg_exclusive_minimum(struct buf *b, const struct sop *op)
{
    put_format(b, "must be greater than %s", op->val->u.n.text);
}
static void msg_pattern(struct buf *b, const struct sop *op)
{
    put_format(b, "must match the pattern %s", op->sources[0]);
}
static void msg_format(struct buf *b, const struct sop *op)
{
    put_format(b, "must be a valid %s", op->str);
}
static void msg_any_of(struct buf *b, const struct sop *op)
{
    put_format(b, "must match at least one of the %u schemas in `anyOf`; it matches none (see "
                  "the errors for each)",
               op->nsubs);
}
static void msg_one_of(struct buf *b, const struct sop *op)
{
    put_format(b, "must match exactly one of the %u schemas in `oneOf`; it matches none",
               op->nsubs);
}
static void msg_not(struct buf *b, const struct sop *op)
{
    put_str(b, "must not match the schema in `not`");
}

/* The keywords whose (main) failure message depends on the schema only. */
static const struct {
    sop_fn fn;
    void (*make)(struct buf *b, const struct sop *op);
} op_msgs[] = {
    {op_type, msg_type},
    {op_const, msg_const},
    {op_enum, msg_enum},
    {op_multiple_of, msg_multiple_of},
    {op_maximum, msg_maximum},
    {op_exclusive_maximum, msg_exclusive_maximum},
    {op_minimum, msg_minimum},
    {op_exclusive_minimum, msg_exclusive_minimum},
    {op_pattern, msg_pattern},
    {op_format, msg_format},
    {op_additional_properties, msg_not_allowed},
    {op_any_of, msg_any_of},
    {op_one_of, msg_one_of},
    {op_not, msg_not},
};

void schema_op_messages(struct arena *a, struct sop *op)
{
    struct buf b;
    buf_init(&b);
    for (size_t k = 0; k < KEEL_ARRAY_LEN(op_msgs); k++) {
        if (op_msgs[k].fn != op->fn) continue;
        op_msgs[k].make(&b, op);
        op->msg = arena_strndup(a, b.data ? b.data : "", b.len);
    }
    if (op->fn == op_required) {
        op->msgs = arena_alloc(a, (op->nsubs + 1) * sizeof *op->msgs);
        for (uint32_t i = 0; i < op->nsubs; i++) {
            buf_reset(&b);
            put_format(&b, "is missing the required property `%.*s`", (int)op->name_lens[i],
                       op->names[i]);
            op->msgs[i] = arena_strndup(a, b.data, b.len);
        }
    }
    buf_cleanup(&b);
}

static void (*const bodies[])(struct buf *, const struct efact *) = {
    [M_FORMAT] = body_format,
    [M_TEXT] = body_text,
    [M_TYPE] = body_type,
};

/* The n segments at `at` (segs is NULL until a path has been copied). */
static inline const struct seg *segs_at(const struct seg *segs, uint32_t at, uint32_t n)
{
    return n ? segs + at : NULL;
}

/* Appends the message of f.  A message is read as a C string, so it ends
 * at the first NUL a shown value may carry (as it always has). */
static void put_message(struct buf *b, const struct efact *f, const struct seg *segs)
{
    if (f->subject) {
        subject(b, segs_at(segs, f->iseg, f->niseg), f->niseg);
        put_bytes(b, " ", 1);
    }
    bodies[f->msg](b, f);
    if (f->got) {
        put_bytes(b, "; got `", 7);
        show(b, &f->inst);
        put_bytes(b, "`", 1);
    }
}

/* Appends the instance location, keyword location and message of f, each
 * NUL-terminated, and notes their offsets in f->at. */
static void render_one(struct buf *b, struct efact *f, const struct seg *segs)
{
    f->at[0] = b->len;
    put_path(b, segs_at(segs, f->iseg, f->niseg), f->niseg);
    put_bytes(b, "", 1);
    f->at[1] = b->len;
    for (uint32_t i = f->nkseg; i-- > 0;)
        put_bytes(b, segs[f->kseg + i].key, segs[f->kseg + i].len);
    if (f->op) put_bytes(b, f->op->tok, f->op->kw_len + 1);
    put_bytes(b, "", 1);
    f->at[2] = b->len;
    put_message(b, f, segs);
    put_bytes(b, "", 1);
}

static void set_strings(struct schema_error *e, const struct efact *f, const char *base)
{
    e->instance_location = base + f->at[0];
    e->keyword_location = base + f->at[1];
    e->message = base + f->at[2];
    /* Schema-owned: valid while the schema lives. */
    e->absolute_keyword_location = f->op ? f->op->abs_kw : f->owner->abs_shown;
}

/* Fills r->errors[0 .. kept) from the facts; the strings live in msgbuf. */
void schema_render_errors(struct schema_result *r)
{
    r->rendered = true;
    if (!r->kept) return;
    if (r->errors_cap < r->kept) {
        size_t cap = r->errors_cap ? r->errors_cap : 8;
        while (cap < r->kept) cap *= 2;
        struct schema_error *e = realloc(r->errors, cap * sizeof *e);
        if (!e) {
            r->kept = 0; /* no room to show them; error_count still tells */
            return;
        }
        r->errors = e;
        r->errors_cap = cap;
    }
    struct buf *b = &r->msgbuf;
    buf_reset(b);
    struct efact *facts = r->facts;
    for (size_t i = 0; i < r->kept; i++) render_one(b, &facts[i], r->segs);
    for (size_t i = 0; i < r->kept; i++) set_strings(&r->errors[i], &facts[i], b->data);
}

const struct schema_error *schema_result_error(struct schema_result *r, size_t i)
{
    if (i >= r->kept) return NULL;
    if (!r->rendered) schema_render_errors(r);
    return i < r->kept ? &r->errors[i] : NULL;
}

/* The strings of error i: the rendered ones, or (a lazy result not yet
 * rendered) rendered now into tmp, which must be empty. */
static struct schema_error error_at(const struct schema_result *r, size_t i, struct buf *tmp)
{
    if (r->rendered) return r->errors[i];
    struct efact f = ((const struct efact *)r->facts)[i];
    struct schema_error e;
    buf_reset(tmp);
    render_one(tmp, &f, r->segs);
    set_strings(&e, &f, tmp->data);
    return e;
}

void schema_result_write_json(const struct schema_result *r, struct buf *out)
{
    if (r->valid) {
        buf_puts(out, "{\"valid\":true}");
        return;
    }
    struct buf tmp;
    buf_init(&tmp);
    buf_puts(out, "{\"valid\":false,\"errors\":[");
    for (size_t i = 0; i < r->kept; i++) {
        struct schema_error e = error_at(r, i, &tmp);
        if (i) buf_putc(out, ',');
        buf_puts(out, "{\"keywordLocation\":");
        json_write_string(out, e.keyword_location, strlen(e.keyword_location));
        buf_puts(out, ",\"absoluteKeywordLocation\":");
        json_write_string(out, e.absolute_keyword_location, strlen(e.absolute_keyword_location));
        buf_puts(out, ",\"instanceLocation\":");
        json_write_string(out, e.instance_location, strlen(e.instance_location));
        buf_puts(out, ",\"error\":");
        json_write_string(out, e.message, strlen(e.message));
        buf_putc(out, '}');
    }
    buf_cleanup(&tmp);
    buf_putc(out, ']');
    if (r->error_count > r->kept) buf_printf(out, ",\"omitted\":%zu", r->error_count - r->kept);
    buf_putc(out, '}');
}

void schema_result_write_text(const struct schema_result *r, struct buf *out)
{
    if (r->valid) {
        buf_puts(out, "valid");
        return;
    }
    struct buf tmp;
    buf_init(&tmp);
    for (size_t i = 0; i < r->kept; i++) {
        struct schema_error e = error_at(r, i, &tmp);
        if (i) buf_putc(out, '\n');
        buf_puts(out, *e.instance_location ? e.instance_location : "(root)");
        buf_puts(out, ": ");
        buf_puts(out, e.message);
    }
    buf_cleanup(&tmp);
    if (r->error_count > r->kept)
        buf_printf(out, "\n... and %zu more errors", r->error_count - r->kept);
}
