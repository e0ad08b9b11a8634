/*
 * registry.c — the schema registry: documents by URI, the resources
 * ($id) and anchors ($anchor, $dynamicAnchor) found inside them, and
 * folders that back a URI prefix (`--remote PREFIX=DIR`).
 *
 * Invariants:
 *   - Every document is a copy in the registry's arena; values handed out
 *     (resource roots, anchors) stay valid until schema_registry_free.
 *   - A document is scanned once, on first use: the scan walks only the
 *     places where the spec puts subschemas, so an "$id" inside `enum` or
 *     `const` data is not mistaken for an identifier.
 *   - Nothing is fetched from the network; a URI resolves only to an added
 *     document, a file under an add_dir prefix, or a built-in metaschema.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

struct schema_registry *schema_registry_new(void)
{
    struct schema_registry *reg = calloc(1, sizeof *reg);
    if (!reg) return NULL;
    arena_init(&reg->arena);
    strmap_init(&reg->docs);
    rmaps_init(&reg->maps, &reg->arena);
    for (const struct meta_doc *m = schema_meta_docs; m->uri; m++) {
        struct keel_err err;
        if (schema_registry_add_text(reg, m->uri, m->text, strlen(m->text), &err) < 0) {
            /* The texts are ours; failing to parse one is a bug. */
            keel_log(KEEL_LOG_ERROR, "schema: built-in metaschema %s: %s", m->uri, err.msg);
            schema_registry_free(reg);
            return NULL;
        }
    }
    return reg;
}

void schema_registry_free(struct schema_registry *reg)
{
    if (!reg) return;
    schema_free(reg->meta);
    strmap_cleanup(&reg->docs);
    rmaps_cleanup(&reg->maps);
    free(reg->dirs);
    arena_cleanup(&reg->arena);
    free(reg);
}

static int add_owned(struct schema_registry *reg, const char *uri, struct json_value *root,
                     struct keel_err *err)
{
    if (!uri_is_absolute(uri))
        return keel_fail(err, KEEL_EINVAL,
                         "schema URI '%s' is not absolute; give a full URI such as "
                         "https://example.com/schema.json",
                         uri);
    char *u = uri_strip_fragment(&reg->arena, uri);
    if (strmap_get(&reg->docs, u, strlen(u)))
        return keel_fail(err, KEEL_EEXIST, "a schema is already registered as '%s'", u);
    struct rdoc *d = arena_zalloc(&reg->arena, sizeof *d);
    d->uri = u;
    d->root = root;
    strmap_put(&reg->docs, u, strlen(u), d);
    return 0;
}

int schema_registry_add(struct schema_registry *reg, const char *uri, const struct json_value *doc,
                        struct keel_err *err)
{
    if (!reg || !uri || !doc) return keel_fail(err, KEEL_EINVAL, "schema_registry_add: NULL argument");
    return add_owned(reg, uri, json_clone(&reg->arena, doc), err);
}

int schema_registry_add_text(struct schema_registry *reg, const char *uri, const char *text,
                             size_t len, struct keel_err *err)
{
    struct json_value *v;
    struct json_parse_opts po = {.file = uri};
    int rc = json_parse(&reg->arena, text, len, &po, &v, err);
    if (rc < 0) return rc;
    return add_owned(reg, uri, v, err);
}

int schema_registry_add_dir(struct schema_registry *reg, const char *uri_prefix, const char *dir,
                            struct keel_err *err)
{
    if (!reg || !uri_prefix || !dir)
        return keel_fail(err, KEEL_EINVAL, "schema_registry_add_dir: NULL argument");
    if (!uri_is_absolute(uri_prefix))
        return keel_fail(err, KEEL_EINVAL,
                         "remote prefix '%s' is not an absolute URI; use e.g. "
                         "http://localhost:1234/=DIR",
                         uri_prefix);
    struct rdir *nd = realloc(reg->dirs, (reg->ndirs + 1) * sizeof *nd);
    if (!nd) return keel_fail(err, KEEL_ENOMEM, "out of memory");
    reg->dirs = nd;
    nd[reg->ndirs].prefix = arena_strdup(&reg->arena, uri_prefix);
    nd[reg->ndirs].dir = arena_strdup(&reg->arena, dir);
    reg->ndirs++;
    return 0;
}

/* Tries the add_dir folders for uri; adds the document on success. */
static struct rdoc *load_from_dirs(struct schema_registry *reg, const char *uri,
                                   struct keel_err *err)
{
    for (size_t i = 0; i < reg->ndirs; i++) {
        const struct rdir *d = &reg->dirs[i];
        size_t pl = strlen(d->prefix);
        if (strncmp(uri, d->prefix, pl) != 0) continue;
        const char *rest = uri + pl;
        if (strstr(rest, "..") || strchr(rest, '?')) {
            keel_fail(err, KEEL_EINVAL, "refusing to map '%s' to a file: '..' or '?' in path", uri);
            return NULL;
        }
        char path[4096];
        size_t dl = strlen(d->dir);
        snprintf(path, sizeof path, "%s%s%s", d->dir,
                 (dl && d->dir[dl - 1] != '/' && *rest != '/') ? "/" : "", rest);
        struct buf b;
        buf_init(&b);
        struct keel_err e2;
        if (keel_read_file(path, SCHEMA_MAX_DOC_SIZE, &b, &e2) < 0) {
            buf_cleanup(&b);
            keel_fail(err, KEEL_ENOENT, "cannot load '%s' from %s: %s", uri, path, e2.msg);
            return NULL;
        }
        int rc = schema_registry_add_text(reg, uri, b.data ? b.data : "", b.len, err);
        buf_cleanup(&b);
        if (rc < 0) {
            keel_err_prefix(err, "remote schema %s (file %s)", uri, path);
            return NULL;
        }
        return strmap_get(&reg->docs, uri, strlen(uri));
    }
    return NULL;
}

/* ---- scanning for $id / $anchor ----------------------------------------- */

/* Keywords whose value is a schema, an array of schemas, or an object whose
 * member values are schemas.  Only these are walked. */
static const char *const kw_single[] = {"additionalProperties", "items", "contains", "not",
                                        "if", "then", "else", "propertyNames",
                                        "unevaluatedItems", "unevaluatedProperties",
                                        "contentSchema", "additionalItems"};
static const char *const kw_array[] = {"allOf", "anyOf", "oneOf", "prefixItems", "items"};
static const char *const kw_map[] = {"$defs", "definitions", "properties", "patternProperties",
                                     "dependentSchemas"};

static void put_info(struct rmaps *reg, const struct json_value *v, const char *base,
                     const char *abs, const struct json_value *resroot)
{
    struct vinfo *vi = arena_alloc(reg->arena, sizeof *vi);
    vi->base = base;
    vi->abs = abs;
    vi->resroot = resroot;
    strmap_put(&reg->info, (const char *)&v, sizeof v, vi);
}

const struct vinfo *reg_info(struct schema_registry *reg, struct rmaps *local,
                             const struct json_value *v)
{
    const struct vinfo *vi = local ? strmap_get(&local->info, (const char *)&v, sizeof v) : NULL;
    return vi ? vi : strmap_get(&reg->maps.info, (const char *)&v, sizeof v);
}

static int scan(struct rmaps *reg, const struct json_value *v, const char *base,
                const char *resuri, struct buf *ptr, const struct json_value *resroot, int depth,
                struct keel_err *err)
{
    if (depth > SCHEMA_MAX_DEPTH)
        return keel_fail(err, KEEL_ELIMIT, "schema nesting deeper than %d levels at %s",
                         SCHEMA_MAX_DEPTH, ptr->data ? ptr->data : "");
    if (!json_is(v, JSON_OBJECT)) {
        if (v->type == JSON_TRUE || v->type == JSON_FALSE) {
            char *abs = arena_printf(reg->arena, "%s#%s", resuri, ptr->data ? ptr->data : "");
            put_info(reg, v, base, abs, resroot);
        }
        return 0;
    }
    const struct json_value *id = json_get(v, "$id");
    if (json_is(id, JSON_STRING)) {
        char *full = uri_resolve(reg->arena, base, id->u.s.str);
        base = uri_strip_fragment(reg->arena, full);
        resuri = base;
        resroot = v;
        buf_reset(ptr);
        if (!strmap_get(&reg->resources, base, strlen(base)))
            strmap_put(&reg->resources, base, strlen(base), (void *)v);
    }
    const char *p = ptr->data && ptr->len ? ptr->data : "";
    char *abs = arena_printf(reg->arena, "%s#%.*s", resuri, (int)ptr->len, p);
    put_info(reg, v, base, abs, resroot);
    static const char *const anchor_kw[] = {"$anchor", "$dynamicAnchor"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(anchor_kw); i++) {
        const struct json_value *a = json_get(v, anchor_kw[i]);
        if (!json_is(a, JSON_STRING)) continue;
        char *key = arena_printf(reg->arena, "%s#%s", base, a->u.s.str);
        if (!strmap_get(&reg->anchors, key, strlen(key)))
            strmap_put(&reg->anchors, key, strlen(key), (void *)v);
        if (i == 1 && !strmap_get(&reg->dynanchors, key, strlen(key)))
            strmap_put(&reg->dynanchors, key, strlen(key), (void *)v);
    }
    for (uint32_t i = 0; i < v->len; i++) {
        const struct json_member *m = &v->u.members[i];
        int kind = 0;
        for (size_t k = 0; k < KEEL_ARRAY_LEN(kw_single); k++)
            if (!strcmp(m->key, kw_single[k])) kind = 1;
        for (size_t k = 0; k < KEEL_ARRAY_LEN(kw_map); k++)
            if (!strcmp(m->key, kw_map[k])) kind = 3;
        if (m->value->type == JSON_ARRAY)
            for (size_t k = 0; k < KEEL_ARRAY_LEN(kw_array); k++)
                if (!strcmp(m->key, kw_array[k])) kind = 2;
        if (!kind) continue;
        size_t m2 = ptr->len;
        json_pointer_append(ptr, m->key, m->key_len);
        int rc = 0;
        if (kind == 1) {
            rc = scan(reg, m->value, base, resuri, ptr, resroot, depth + 1, err);
        } else if (kind == 2) {
            for (uint32_t j = 0; j < m->value->len && rc == 0; j++) {
                size_t m3 = ptr->len;
                buf_printf(ptr, "/%u", j);
                rc = scan(reg, m->value->u.items[j], base, resuri, ptr, resroot, depth + 1, err);
                ptr->len = m3;
                if (ptr->data) ptr->data[m3] = 0;
            }
        } else if (m->value->type == JSON_OBJECT) {
            for (uint32_t j = 0; j < m->value->len && rc == 0; j++) {
                const struct json_member *mm = &m->value->u.members[j];
                size_t m3 = ptr->len;
                json_pointer_append(ptr, mm->key, mm->key_len);
                rc = scan(reg, mm->value, base, resuri, ptr, resroot, depth + 1, err);
                ptr->len = m3;
                if (ptr->data) ptr->data[m3] = 0;
            }
        }
        ptr->len = m2;
        if (ptr->data) ptr->data[m2] = 0;
        if (rc < 0) return rc;
    }
    return 0;
}

int reg_scan_root(struct rmaps *m, const struct json_value *root, const char *uri,
                  struct keel_err *err)
{
    struct buf ptr;
    buf_init(&ptr);
    if (!strmap_get(&m->resources, uri, strlen(uri)))
        strmap_put(&m->resources, uri, strlen(uri), (void *)root);
    int rc = scan(m, root, uri, uri, &ptr, root, 0, err);
    buf_cleanup(&ptr);
    return rc;
}

void rmaps_init(struct rmaps *m, struct arena *a)
{
    strmap_init(&m->resources);
    strmap_init(&m->anchors);
    strmap_init(&m->info);
    strmap_init(&m->dynanchors);
    m->arena = a;
}

void rmaps_cleanup(struct rmaps *m)
{
    strmap_cleanup(&m->resources);
    strmap_cleanup(&m->anchors);
    strmap_cleanup(&m->info);
    strmap_cleanup(&m->dynanchors);
}

const struct json_value *reg_resource(struct schema_registry *reg, struct rmaps *local,
                                      const char *uri, struct keel_err *err)
{
    const struct json_value *v = local ? strmap_get(&local->resources, uri, strlen(uri)) : NULL;
    if (v) return v;
    v = strmap_get(&reg->maps.resources, uri, strlen(uri));
    if (v) return v;
    struct rdoc *d = strmap_get(&reg->docs, uri, strlen(uri));
    if (!d) d = load_from_dirs(reg, uri, err);
    if (!d) return NULL;
    if (!d->scanned) {
        d->scanned = true;
        if (reg_scan_root(&reg->maps, d->root, d->uri, err) < 0) return NULL;
    }
    return strmap_get(&reg->maps.resources, uri, strlen(uri));
}

const struct json_value *reg_anchor(struct schema_registry *reg, struct rmaps *local,
                                    const char *uri, const char *name, bool dynamic)
{
    char key[2048];
    int n = snprintf(key, sizeof key, "%s#%s", uri, name);
    if (n < 0 || (size_t)n >= sizeof key) return NULL;
    const struct strmap *lm = dynamic ? &local->dynanchors : &local->anchors;
    const struct strmap *rm = dynamic ? &reg->maps.dynanchors : &reg->maps.anchors;
    const struct json_value *v = local ? strmap_get(lm, key, (size_t)n) : NULL;
    return v ? v : strmap_get(rm, key, (size_t)n);
}
