/*
 * yaml.c — YAML (and JSON) documents into Keel's JSON values, with the
 * source line and column on every value, so that every later problem in a
 * workflow or config file can be reported at file:line:column.
 *
 * We use libyaml's event parser and build the tree ourselves, because the
 * tree must be JSON: YAML features with no JSON meaning are refused with a
 * message rather than guessed at.
 *
 * Rules (YAML 1.2 core schema for plain scalars):
 *   - plain scalars: null, Null, NULL, ~ and empty are null; true/false (also
 *     True/TRUE, False/FALSE) are booleans; [-+]?[0-9]+, 0o[0-7]+ and
 *     0x[0-9a-fA-F]+ are integers; decimal floats are numbers; .inf and .nan
 *     are errors (JSON has no such numbers); everything else is a string.
 *     Quoted and block scalars are always strings.
 *   - explicit tags: only !!str, !!int, !!float, !!bool, !!null, !!map and
 *     !!seq (the core ones) are accepted; custom tags are errors.
 *   - mapping keys must be strings (a plain 1 or true key is an error: quote
 *     it), and a key may not appear twice in one mapping.  "<<" merge keys are
 *     not part of YAML 1.2 and are refused.
 *   - exactly one document per file.
 *   - anchors and aliases are expanded by sharing the anchored subtree; the
 *     expanded size (every value counted as many times as it is reachable) is
 *     capped at WORKFLOW_MAX_NODES, which defeats "billion laughs" inputs
 *     before anything walks the tree.  Nesting is capped at WORKFLOW_MAX_DEPTH.
 *
 * Invariants: on failure nothing is returned and err holds the first
 * problem; values live in the caller's arena (partial trees are garbage
 * freed with the arena).
 */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define TAG_PREFIX "tag:yaml.org,2002:"

struct anchor {
    struct json_value *value;
    size_t nodes; /* expanded size of value */
};

struct yp {
    yaml_parser_t parser;
    const char *text;
    size_t len;
    struct arena *a;
    const char *file;
    struct keel_err *err;
    size_t nodes; /* values produced so far, aliases expanded */
    struct strmap anchors; /* name -> struct anchor* (heap) */
};

static int fail_mark(struct yp *p, int code, yaml_mark_t m, const char *fmt, ...)
    KEEL_PRINTF(4, 5);

static int fail_mark(struct yp *p, int code, yaml_mark_t m, const char *fmt, ...)
{
    if (p->err) {
        keel_fail_at(p->err, code, p->file, (int)m.line + 1, (int)m.column + 1, "%s", "");
        p->err->path[0] = '\0';
        va_list ap;
        va_start(ap, fmt);
        keel_vfail(p->err, code, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int next_event(struct yp *p, yaml_event_t *ev)
{
    if (yaml_parser_parse(&p->parser, ev)) return 0;
    yaml_mark_t m = p->parser.problem_mark;
    if (p->parser.error == YAML_MEMORY_ERROR)
        return fail_mark(p, KEEL_ENOMEM, m, "out of memory while parsing YAML");
    const char *problem = p->parser.problem ? p->parser.problem : "malformed YAML";
    if (p->parser.error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark: count lines. */
        size_t off = p->parser.problem_offset < p->len ? p->parser.problem_offset : p->len;
        yaml_mark_t r = {0, 0, 0};
        for (size_t i = 0; i < off; i++) {
            if (p->text[i] == '\n') {
                r.line++;
                r.column = 0;
            } else if (((unsigned char)p->text[i] & 0xC0) != 0x80) {
                r.column++;
            }
        }
        return fail_mark(p, KEEL_EINVAL, r, "%s (the file must be UTF-8 text)", problem);
    }
    if (m.index < p->len && p->text[m.index] == '\t')
        return fail_mark(p, KEEL_EINVAL, m,
                         "YAML syntax error: a tab here; YAML indents with spaces only");
    if (p->parser.context && p->parser.context_mark.line != m.line)
        return fail_mark(p, KEEL_EINVAL, m, "YAML syntax error: %s %s (which started at line %d)",
                         problem, p->parser.context, (int)p->parser.context_mark.line + 1);
    if (p->parser.context)
        return fail_mark(p, KEEL_EINVAL, m, "YAML syntax error: %s %s", problem,
                         p->parser.context);
    return fail_mark(p, KEEL_EINVAL, m, "YAML syntax error: %s", problem);
}

static struct json_value *new_value(struct yp *p, enum json_type t, yaml_mark_t m)
{
    struct json_value *v = arena_zalloc(p->a, sizeof *v);
    v->type = (uint8_t)t;
    v->line = (int)m.line + 1;
    v->column = (int)m.column + 1;
    return v;
}

static int count_node(struct yp *p, size_t n, yaml_mark_t m)
{
    if (n > WORKFLOW_MAX_NODES || p->nodes > WORKFLOW_MAX_NODES - n)
        return fail_mark(p, KEEL_ELIMIT, m,
                         "document too large: more than %u values once aliases are expanded "
                         "(remove alias-heavy repetition or split the file)",
                         WORKFLOW_MAX_NODES);
    p->nodes += n;
    return 0;
}

/* ---- scalars ------------------------------------------------------------ */

static bool all_in(const char *s, size_t len, const char *set)
{
    if (len == 0) return false;
    for (size_t i = 0; i < len; i++)
        if (!strchr(set, s[i])) return false;
    return true;
}

static bool one_of(const char *s, const char *const *words)
{
    for (size_t i = 0; words[i]; i++)
        if (!strcmp(s, words[i])) return true;
    return false;
}

static const char *const null_words[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const true_words[] = {"true", "True", "TRUE", NULL};
static const char *const false_words[] = {"false", "False", "FALSE", NULL};
static const char *const inf_words[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf", "+.INF",
                                        "-.inf", "-.Inf", "-.INF", ".nan",  ".NaN",  ".NAN",
                                        NULL};

/* Is s a YAML 1.2 core float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
 * If so, writes its JSON form into out (cap bytes). */
static bool core_float(const char *s, char *out, size_t cap)
{
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-') neg = *p++ == '-';
    const char *ip = p;
    while (isdigit((unsigned char)*p)) p++;
    size_t ilen = (size_t)(p - ip);
    const char *fp = NULL;
    size_t flen = 0;
    if (*p == '.') {
        fp = ++p;
        while (isdigit((unsigned char)*p)) p++;
        flen = (size_t)(p - fp);
    }
    if (ilen == 0 && flen == 0) return false;
    const char *ep = NULL;
    if (*p == 'e' || *p == 'E') {
        ep = ++p;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return false;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p) return false;
    /* JSON: no '+', no leading zeros, digits on both sides of '.'. */
    while (ilen > 1 && *ip == '0') ip++, ilen--;
    if (ilen == 0) ip = "0", ilen = 1;
    int n = snprintf(out, cap, "%s%.*s%s%.*s%s%s", neg ? "-" : "", (int)ilen, ip,
                     flen ? "." : "", (int)flen, flen ? fp : "", ep ? "e" : "", ep ? ep : "");
    return n > 0 && (size_t)n < cap;
}

/* Resolves a plain scalar by the core schema. */
static int plain_scalar(struct yp *p, const char *s, size_t len, yaml_mark_t m,
                        struct json_value **out)
{
    if (strlen(s) != len) goto string; /* embedded NUL: cannot be anything else */
    /* Most plain scalars are names and words: skip the checks that cannot
     * match by their first byte. */
    if (len && !strchr("~nNtTfF.+-0123456789", s[0])) goto string;
    if (one_of(s, null_words)) {
        *out = new_value(p, JSON_NULL, m);
        return 0;
    }
    if (one_of(s, true_words) || one_of(s, false_words)) {
        *out = new_value(p, one_of(s, true_words) ? JSON_TRUE : JSON_FALSE, m);
        return 0;
    }
    if (one_of(s, inf_words))
        return fail_mark(p, KEEL_EINVAL, m,
                         "'%s' is not a number JSON can hold; quote it to make it a string", s);
    char num[128];
    const char *digits = s;
    if (*digits == '+' || *digits == '-') digits++;
    bool is_int = all_in(digits, strlen(digits), "0123456789");
    if (len >= 3 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        bool hex = s[1] == 'x';
        if (all_in(s + 2, len - 2, hex ? "0123456789abcdefABCDEF" : "01234567")) {
            errno = 0;
            unsigned long long u = strtoull(s + 2, NULL, hex ? 16 : 8);
            if (errno || u > (unsigned long long)INT64_MAX)
                return fail_mark(p, KEEL_EINVAL, m, "integer '%s' is too large", s);
            snprintf(num, sizeof num, "%llu", u);
            goto number;
        }
        goto string;
    }
    if (is_int) {
        if (len >= sizeof num - 2) goto number_too_long;
        /* Strip '+' and leading zeros: YAML's 007 is JSON's 7. */
        bool neg = s[0] == '-';
        while (digits[0] == '0' && digits[1]) digits++;
        snprintf(num, sizeof num, "%s%s", neg ? "-" : "", digits);
        goto number;
    }
    if (len < sizeof num - 8 && core_float(s, num, sizeof num)) goto number;
    if (len >= sizeof num - 8 && strspn(s, "0123456789+-.eE") == len &&
        isdigit((unsigned char)s[len - 1]))
        goto number_too_long; /* looks numeric but too long to carry exactly */
string:
    *out = new_value(p, JSON_STRING, m);
    (*out)->u.s.str = arena_strndup(p->a, s, len);
    (*out)->len = (uint32_t)len;
    return 0;
number: {
    struct json_value *v = json_number_text(p->a, num, strlen(num));
    if (!v) return fail_mark(p, KEEL_EINVAL, m, "cannot read number '%s'", s);
    v->line = (int)m.line + 1;
    v->column = (int)m.column + 1;
    *out = v;
    return 0;
}
number_too_long:
    return fail_mark(p, KEEL_ELIMIT, m, "number is longer than %d digits; quote it to keep it as a string",
                     (int)sizeof num - 8);
}

static int scalar(struct yp *p, yaml_event_t *ev, struct json_value **out)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    yaml_mark_t m = ev->start_mark;
    const char *tag = (const char *)ev->data.scalar.tag;
    if (len > UINT32_MAX) return fail_mark(p, KEEL_ELIMIT, m, "string too long");
    if (tag && strcmp(tag, "!") != 0) {
        if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) != 0)
            return fail_mark(p, KEEL_EINVAL, m,
                             "custom YAML tag '%s' is not supported; remove it", tag);
        const char *t = tag + strlen(TAG_PREFIX);
        if (!strcmp(t, "str")) goto as_string;
        if (strcmp(t, "int") && strcmp(t, "float") && strcmp(t, "bool") && strcmp(t, "null"))
            return fail_mark(p, KEEL_EINVAL, m, "YAML tag '!!%s' is not supported here", t);
        int rc = plain_scalar(p, s, len, m, out);
        if (rc) return rc;
        const char *want = !strcmp(t, "null")   ? "null"
                           : !strcmp(t, "bool") ? "boolean"
                                                : "number";
        const char *got = json_type_name(*out);
        bool ok = !strcmp(want, got) || (!strcmp(want, "number") && !strcmp(got, "integer"));
        if (!strcmp(t, "int") && strcmp(got, "integer") != 0) ok = false;
        if (!ok) return fail_mark(p, KEEL_EINVAL, m, "'%s' is not a valid !!%s", s, t);
        return 0;
    }
    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag)
        return plain_scalar(p, s, len, m, out);
as_string:
    *out = new_value(p, JSON_STRING, m);
    (*out)->u.s.str = arena_strndup(p->a, s, len);
    (*out)->len = (uint32_t)len;
    /* Remember quoting so positions inside the text can be computed (see
     * WORKFLOW_STR_QUOTED in internal.h). */
    if (ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
        ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)
        (*out)->nflags = WORKFLOW_STR_QUOTED;
    return 0;
}

/* ---- collections --------------------------------------------------------- */

static int node(struct yp *p, yaml_event_t *ev, int depth, struct json_value **out);

/* Records the anchor of the value that just finished (name may be NULL). */
static int remember_anchor(struct yp *p, const char *name, struct json_value *v, size_t nodes)
{
    if (!name) return 0;
    struct anchor *an = arena_alloc(p->a, sizeof *an);
    an->value = v;
    an->nodes = nodes;
    strmap_put(&p->anchors, name, strlen(name), an); /* a redefinition replaces, as YAML says */
    return 0;
}

static int check_tag(struct yp *p, const char *tag, const char *want, yaml_mark_t m)
{
    if (!tag || !strcmp(tag, "!")) return 0;
    if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) == 0 && !strcmp(tag + strlen(TAG_PREFIX), want))
        return 0;
    return fail_mark(p, KEEL_EINVAL, m, "YAML tag '%s' is not supported here; remove it", tag);
}

static void grow(struct arena *a, void **items, uint32_t *cap, uint32_t len, size_t size)
{
    if (len < *cap) return;
    uint32_t ncap = *cap ? *cap * 2 : 8;
    void *n = arena_alloc(a, (size_t)ncap * size);
    if (len) memcpy(n, *items, (size_t)len * size);
    *items = n;
    *cap = ncap;
}

static int sequence(struct yp *p, yaml_event_t *start, int depth, struct json_value **out)
{
    struct json_value *arr = new_value(p, JSON_ARRAY, start->start_mark);
    int rc;
    for (;;) {
        yaml_event_t ev;
        if ((rc = next_event(p, &ev))) return rc;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        struct json_value *item = NULL;
        rc = node(p, &ev, depth + 1, &item);
        yaml_event_delete(&ev);
        if (rc) return rc;
        void *items = arr->u.items;
        grow(p->a, &items, &arr->cap, arr->len, sizeof(struct json_value *));
        arr->u.items = items;
        arr->u.items[arr->len++] = item;
    }
    *out = arr;
    return 0;
}

static int mapping(struct yp *p, yaml_event_t *start, int depth, struct json_value **out)
{
    struct json_value *obj = new_value(p, JSON_OBJECT, start->start_mark);
    struct strmap seen; /* only for large mappings; small ones scan */
    strmap_init(&seen);
    int rc = 0;
    for (;;) {
        yaml_event_t ev;
        if ((rc = next_event(p, &ev))) break;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        yaml_mark_t km = ev.start_mark;
        if (ev.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&ev);
            rc = fail_mark(p, KEEL_EINVAL, km,
                           "mapping keys must be strings, not %s",
                           ev.type == YAML_ALIAS_EVENT ? "aliases" : "collections");
            break;
        }
        struct json_value *key = NULL;
        rc = scalar(p, &ev, &key);
        if (!rc && ev.data.scalar.anchor)
            rc = fail_mark(p, KEEL_EINVAL, km, "anchors on mapping keys are not supported");
        yaml_event_delete(&ev);
        if (rc) break;
        if (key->type != JSON_STRING) {
            const char *t = json_type_name(key);
            char text[64];
            if (key->type == JSON_NUMBER)
                snprintf(text, sizeof text, "%s", key->u.n.text);
            else
                snprintf(text, sizeof text, "%s", key->type == JSON_NULL ? "null"
                                                  : key->type == JSON_TRUE ? "true" : "false");
            rc = fail_mark(p, KEEL_EINVAL, km,
                           "mapping keys must be strings; %s is read as %s %s; quote it", text,
                           t[0] == 'i' ? "an" : "a", t);
            break;
        }
        if (!strcmp(key->u.s.str, "<<")) {
            rc = fail_mark(p, KEEL_EINVAL, km,
                           "YAML merge keys (<<) are not supported; write the keys out");
            break;
        }
        bool dup = false;
        if (obj->len < 32) {
            for (uint32_t i = 0; i < obj->len; i++)
                if (obj->u.members[i].key_len == key->len &&
                    !memcmp(obj->u.members[i].key, key->u.s.str, key->len))
                    dup = true;
        } else {
            if (seen.count == 0)
                for (uint32_t i = 0; i < obj->len; i++)
                    strmap_put(&seen, obj->u.members[i].key, obj->u.members[i].key_len, obj);
            dup = strmap_get(&seen, key->u.s.str, key->len) != NULL;
            strmap_put(&seen, key->u.s.str, key->len, obj);
        }
        if (dup) {
            rc = fail_mark(p, KEEL_EINVAL, km, "duplicate key '%s' in this mapping; keep one",
                           key->u.s.str);
            break;
        }
        if ((rc = next_event(p, &ev))) break;
        struct json_value *value = NULL;
        rc = node(p, &ev, depth + 1, &value);
        yaml_event_delete(&ev);
        if (rc) break;
        void *members = obj->u.members;
        grow(p->a, &members, &obj->cap, obj->len, sizeof(struct json_member));
        obj->u.members = members;
        obj->u.members[obj->len++] =
            (struct json_member){.key = key->u.s.str, .key_len = key->len, .value = value};
    }
    strmap_cleanup(&seen);
    if (!rc) *out = obj;
    return rc;
}

/* node := scalar | sequence | mapping | alias, starting at ev. */
static int node(struct yp *p, yaml_event_t *ev, int depth, struct json_value **out)
{
    yaml_mark_t m = ev->start_mark;
    int rc;
    size_t before = p->nodes;
    const char *anchor = NULL;
    switch (ev->type) {
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        struct anchor *an = strmap_get(&p->anchors, name, strlen(name));
        if (!an) return fail_mark(p, KEEL_EINVAL, m, "unknown alias '*%s'", name);
        if ((rc = count_node(p, an->nodes, m))) return rc;
        *out = an->value;
        return 0;
    }
    case YAML_SCALAR_EVENT:
        if ((rc = count_node(p, 1, m))) return rc;
        if ((rc = scalar(p, ev, out))) return rc;
        anchor = (const char *)ev->data.scalar.anchor;
        break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
        if (depth >= WORKFLOW_MAX_DEPTH)
            return fail_mark(p, KEEL_ELIMIT, m, "nesting deeper than %d levels",
                             WORKFLOW_MAX_DEPTH);
        if ((rc = count_node(p, 1, m))) return rc;
        const char *tag = (const char *)(seq ? ev->data.sequence_start.tag
                                             : ev->data.mapping_start.tag);
        if ((rc = check_tag(p, tag, seq ? "seq" : "map", m))) return rc;
        anchor = (const char *)(seq ? ev->data.sequence_start.anchor
                                    : ev->data.mapping_start.anchor);
        /* The anchor name must outlive the event: copy it. */
        char *name = anchor ? arena_strdup(p->a, anchor) : NULL;
        rc = seq ? sequence(p, ev, depth, out) : mapping(p, ev, depth, out);
        if (rc) return rc;
        return remember_anchor(p, name, *out, p->nodes - before);
    }
    default:
        return fail_mark(p, KEEL_EINVAL, m, "unexpected YAML event");
    }
    return remember_anchor(p, anchor, *out, p->nodes - before);
}

static int document(struct yp *p, struct json_value **out)
{
    yaml_event_t ev;
    int rc;
    if ((rc = next_event(p, &ev))) return rc; /* STREAM-START */
    yaml_event_delete(&ev);
    if ((rc = next_event(p, &ev))) return rc;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_mark_t m = ev.start_mark;
        yaml_event_delete(&ev);
        return fail_mark(p, KEEL_EINVAL, m, "the file is empty; expected a YAML mapping");
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */
    if ((rc = next_event(p, &ev))) return rc;
    struct json_value *root = NULL;
    rc = node(p, &ev, 0, &root);
    yaml_event_delete(&ev);
    if (rc) return rc;
    if ((rc = next_event(p, &ev))) return rc; /* DOCUMENT-END */
    yaml_event_delete(&ev);
    if ((rc = next_event(p, &ev))) return rc;
    if (ev.type != YAML_STREAM_END_EVENT) {
        yaml_mark_t m = ev.start_mark;
        yaml_event_delete(&ev);
        return fail_mark(p, KEEL_EINVAL, m,
                         "a second YAML document ('---') is not allowed; one workflow per file");
    }
    yaml_event_delete(&ev);
    *out = root;
    return 0;
}

/* Returns a new value tree in a (see workflow.h). */
int workflow_yaml_parse(struct arena *a, const char *text, size_t len, const char *file,
                        struct json_value **out, struct keel_err *err)
{
    if (len > WORKFLOW_MAX_FILE)
        return keel_fail_at(err, KEEL_ELIMIT, file, 0, 0,
                            "file is %zu bytes; the limit is %u", len, WORKFLOW_MAX_FILE);
    struct yp p = {.a = a, .file = file, .err = err, .text = text, .len = len};
    if (!yaml_parser_initialize(&p.parser))
        return keel_fail(err, KEEL_ENOMEM, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&p.parser, (const unsigned char *)text, len);
    yaml_parser_set_encoding(&p.parser, YAML_UTF8_ENCODING);
    strmap_init(&p.anchors);
    struct json_value *root = NULL;
    int rc = document(&p, &root);
    strmap_cleanup(&p.anchors);
    yaml_parser_delete(&p.parser);
    if (rc) return rc;
    *out = root;
    return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Returns a new value tree in a (see workflow.h). */
int workflow_doc_parse(struct arena *a, const char *text, size_t len, const char *file,
                       struct json_value **out, struct keel_err *err)
{
    bool json;
    if (file && ends_with(file, ".json")) {
        json = true;
    } else if (file && (ends_with(file, ".yaml") || ends_with(file, ".yml"))) {
        json = false;
    } else {
        size_t i = 0;
        while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
            i++;
        json = i < len && (text[i] == '{' || text[i] == '[');
    }
    if (!json) return workflow_yaml_parse(a, text, len, file, out, err);
    struct json_parse_opts opts = {.max_depth = WORKFLOW_MAX_DEPTH,
                                   .max_size = WORKFLOW_MAX_FILE,
                                   .dup = JSON_DUP_ERROR,
                                   .file = file};
    return json_parse(a, text, len, &opts, out, err);
}

/* Returns a new value tree in a (see workflow.h). */
int workflow_doc_load(struct arena *a, const char *path, struct json_value **out,
                      struct keel_err *err)
{
    struct buf b;
    buf_init(&b);
    int rc = keel_read_file(path, WORKFLOW_MAX_FILE, &b, err);
    if (rc) {
        if (err) {
            snprintf(err->file, sizeof err->file, "%s", path);
            err->line = err->column = 0;
            err->path[0] = '\0';
        }
        buf_cleanup(&b);
        return rc;
    }
    rc = workflow_doc_parse(a, b.data ? b.data : "", b.len, path, out, err);
    buf_cleanup(&b);
    return rc;
}
