/*
 * entities.c — the entity store: entities read from Cedar's entity JSON
 * (uid, attrs, parents, tags), indexed by uid, with every entity's
 * transitive ancestors computed once at load so `in` is a binary search.
 *
 * Invariants: each uid appears once (duplicates are an input error);
 * entities named only as parents exist in the store with present = false
 * (they have ancestors of their own only if declared); ancestors[] is
 * sorted and excludes the entity itself (a cycle is rejected at load).
 * The store is immutable after policy_entities_parse_json returns and all
 * of its memory is in es->arena, es->hot and es->blocks (plus the uid index and the
 * pointer array); a store of COMPACT_MIN entities or more has each entity
 * laid out again in one block of cache lines in es->blocks (see compact()).
 *
 * With a schema, attribute and context values are read as the schema
 * declares them (bare {"type","id"} objects are entity references where an
 * entity type is declared, bare strings are extension literals where an
 * extension type is declared), and actions declared in the schema are
 * added with their parents, as Cedar does.
 */
#include "internal.h"
#include "../json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* The uid index: open addressing keyed by policy_euid_hash (the value each
 * entity keeps in uid_hash), each slot 16 bytes holding the hash and the
 * entity, so a lookup probes one small slot, then reads the entity itself
 * (no index array in between) and compares the uid only on a hash match.
 * The entity pointer's low 3 bits (entities are 8-aligned) hold how many
 * cache lines past the first its block spans (compacted stores; capped at
 * 7), so the authorizer can start loading the whole block at once. */
struct uid_slot {
    uint64_t hash;
    uintptr_t e; /* the entity | SLOT_LINES; 0: empty */
};

#define SLOT_LINES ((uintptr_t)7)

_Static_assert(_Alignof(struct policy_entity) >= 8, "entity pointers have 3 free low bits");

static const struct policy_entity *slot_entity(const struct uid_slot *s)
{
    return (const struct policy_entity *)(s->e & ~SLOT_LINES);
}

struct policy_entities {
    struct arena arena;
    struct arena hot; /* type names of the entities laid out again (compact()) */
    char *blocks;     /* the entities laid out again, each in a block of cache lines */
    struct uid_slot *slots;
    uint32_t slots_cap; /* power of two, or 0 */
    struct policy_entity **items;
    size_t len, cap;
};

static uint32_t slot_start(uint64_t h, uint32_t cap)
{
    return (uint32_t)(h ^ (h >> 32)) & (cap - 1);
}

static struct policy_entity *find(const struct policy_entities *es, const struct policy_euid *uid,
                                  uint64_t h)
{
    if (!es->slots_cap) return NULL;
    uint32_t mask = es->slots_cap - 1;
    for (uint32_t i = slot_start(h, es->slots_cap);; i = (i + 1) & mask) {
        const struct uid_slot *s = &es->slots[i];
        if (!s->e) return NULL;
        if (s->hash == h && policy_euid_equal(&slot_entity(s)->uid, uid))
            return (struct policy_entity *)slot_entity(s); /* the store's own: not const
                                                             while loading */
    }
}

/* Adds e, whose block spans `lines` cache lines past its first. */
static void slot_put(struct uid_slot *slots, uint32_t cap, const struct policy_entity *e,
                     uintptr_t lines)
{
    uint32_t i = slot_start(e->uid_hash, cap);
    while (slots[i].e) i = (i + 1) & (cap - 1);
    slots[i].hash = e->uid_hash;
    slots[i].e = (uintptr_t)e | (lines < SLOT_LINES ? lines : SLOT_LINES);
}

/* Adds es->items[len - 1] to the uid index, growing it to keep load <= 1/2. */
static void index_last(struct policy_entities *es)
{
    if (es->len * 2 > es->slots_cap) {
        uint32_t cap = es->slots_cap ? es->slots_cap * 2 : 64;
        struct uid_slot *n = calloc(cap, sizeof *n);
        if (!n) abort();
        for (size_t i = 0; i + 1 < es->len; i++) slot_put(n, cap, es->items[i], 0);
        free(es->slots);
        es->slots = n;
        es->slots_cap = cap;
    }
    slot_put(es->slots, es->slots_cap, es->items[es->len - 1], 0);
}

struct policy_entities *policy_entities_new(void)
{
    struct policy_entities *es = calloc(1, sizeof *es);
    if (!es) abort();
    arena_init(&es->arena);
    arena_init(&es->hot);
    return es;
}

void policy_entities_free(struct policy_entities *es)
{
    if (!es) return;
    free(es->slots);
    free(es->items);
    arena_cleanup(&es->arena);
    arena_cleanup(&es->hot);
    free(es->blocks);
    free(es);
}

const struct policy_entity *policy_entities_get(const struct policy_entities *es,
                                                const struct policy_euid *uid)
{
    if (!es || !es->len) return NULL;
    return find(es, uid, policy_euid_hash(uid));
}

void policy_entities_prefetch(const struct policy_entities *es, uint64_t h)
{
#if defined(__GNUC__)
    if (es && es->slots_cap) __builtin_prefetch(&es->slots[slot_start(h, es->slots_cap)]);
#else
    (void)es;
    (void)h;
#endif
}

void policy_entities_prefetch_entity(const struct policy_entities *es, uint64_t h)
{
#if defined(__GNUC__)
    if (!es || !es->slots_cap) return;
    const struct uid_slot *s = &es->slots[slot_start(h, es->slots_cap)]; /* its home slot */
    if (s->hash != h) return; /* elsewhere (a probe away) or absent: loaded when found */
    const char *at = (const char *)slot_entity(s);
    for (uintptr_t l = 0; l <= (s->e & SLOT_LINES); l++) __builtin_prefetch(at + 64 * l);
#else
    (void)es;
    (void)h;
#endif
}

const struct policy_entity *policy_entities_find_hashed(const struct policy_entities *es,
                                                        const struct policy_euid *uid, uint64_t h)
{
    if (!es || !es->len) return NULL;
    return find(es, uid, h);
}

size_t policy_entities_count(const struct policy_entities *es)
{
    return es ? es->len : 0;
}

const struct policy_entity *policy_entities_at(const struct policy_entities *es, size_t i)
{
    return es && i < es->len ? es->items[i] : NULL;
}

bool policy_entities_in(const struct policy_entities *es, const struct policy_euid *a,
                        const struct policy_euid *b)
{
    if (policy_euid_equal(a, b)) return true;
    const struct policy_entity *ea = policy_entities_get(es, a);
    if (!ea || !ea->nancestors) return false;
    const struct policy_entity *eb = policy_entities_get(es, b);
    if (!eb) return false;
    uint32_t lo = 0, hi = ea->nancestors, x = eb->index;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (ea->ancestors[mid] == x) return true;
        if (ea->ancestors[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return false;
}

/* Finds or creates the entry for uid (copying the strings). */
static struct policy_entity *intern(struct policy_entities *es, const struct policy_euid *uid)
{
    uint64_t h = policy_euid_hash(uid);
    struct policy_entity *e = find(es, uid, h);
    if (!e) {
        e = arena_zalloc(&es->arena, sizeof *e);
        e->uid.type = arena_strndup(&es->arena, uid->type, uid->type_len);
        e->uid.type_len = uid->type_len;
        e->uid.id = arena_strndup(&es->arena, uid->id, uid->id_len);
        e->uid.id_len = uid->id_len;
        e->index = (uint32_t)es->len;
        e->uid_hash = h;
        if (es->len == es->cap) {
            es->cap = es->cap ? es->cap * 2 : 64;
            es->items = realloc(es->items, es->cap * sizeof *es->items);
            if (!es->items) abort();
        }
        es->items[es->len++] = e;
        index_last(es);
    }
    return e;
}

static int uid_from_json(const struct json_value *j, struct policy_euid *u, struct keel_err *err)
{
    if (json_is(j, JSON_OBJECT) && j->len == 1 && json_get(j, "__entity"))
        j = json_get(j, "__entity");
    const struct json_value *t = json_get(j, "type"), *id = json_get(j, "id");
    if (!json_is(t, JSON_STRING) || !json_is(id, JSON_STRING))
        return keel_fail_at(err, KEEL_EINVAL, NULL, j ? j->line : 0, j ? j->column : 0,
                            "expected an entity uid {\"type\": \"...\", \"id\": \"...\"}");
    u->type = t->u.s.str;
    u->type_len = t->len;
    u->id = id->u.s.str;
    u->id_len = id->len;
    return 0;
}

/* ---- schema-directed values --------------------------------------------- */

static int typed_value(struct arena *a, const struct json_value *j, const struct policy_type *t,
                       int depth, struct policy_value *out, struct keel_err *err);

/* The declared type of attribute key (key_len bytes: keys may hold NULs,
 * so the comparison uses lengths, never strcmp alone). */
static const struct policy_type *attr_type(const struct policy_type *rec, const char *key,
                                           size_t key_len)
{
    if (!rec || rec->kind != POLICY_T_RECORD) return NULL;
    for (size_t i = 0; i < rec->nattrs; i++)
        if (strlen(rec->attrs[i].name) == key_len && !memcmp(rec->attrs[i].name, key, key_len))
            return rec->attrs[i].type;
    return NULL;
}

static int typed_record(struct arena *a, const struct json_value *j, const struct policy_type *t,
                        int depth, struct policy_value *out, struct keel_err *err)
{
    struct policy_record *r = arena_alloc(a, sizeof *r);
    r->len = j->len;
    r->fields = arena_alloc(a, (j->len ? j->len : 1) * sizeof *r->fields);
    for (uint32_t i = 0; i < j->len; i++) {
        struct policy_field *f = &r->fields[i];
        f->key = arena_strndup(a, j->u.members[i].key, j->u.members[i].key_len);
        f->key_len = j->u.members[i].key_len;
        if (typed_value(a, j->u.members[i].value, attr_type(t, f->key, f->key_len), depth + 1, &f->value,
                        err) < 0)
            return KEEL_EINVAL;
    }
    uint32_t dup;
    if (policy_record_sort(r->fields, r->len, &dup) < 0)
        return keel_fail_at(err, KEEL_EINVAL, NULL, j->line, j->column, "duplicate key \"%s\"",
                            r->fields[dup].key);
    out->type = POLICY_RECORD;
    out->u.rec = r;
    return 0;
}

/* Converts j as type t says (t may be NULL: plain Cedar JSON). */
static int typed_value(struct arena *a, const struct json_value *j, const struct policy_type *t,
                       int depth, struct policy_value *out, struct keel_err *err)
{
    if (depth > POLICY_MAX_DEPTH)
        return keel_fail_at(err, KEEL_EINVAL, NULL, j->line, j->column, "value nested too deeply");
    if (!t) return policy_value_from_json(a, j, false, out, err);
    if (t->kind == POLICY_T_EXT && json_is(j, JSON_STRING) && t->name) {
        /* a bare string where the schema declares an extension type is its
         * constructor's argument, as in Cedar */
        struct json_value *w = json_object(a), *x = json_object(a);
        json_object_setc(a, x, "fn", json_cstr(a, !strcmp(t->name, "ipaddr") ? "ip" : t->name));
        json_object_setc(a, x, "arg", (struct json_value *)j);
        json_object_setc(a, w, "__extn", x);
        return policy_value_from_json(a, w, false, out, err);
    }
    if ((t->kind == POLICY_T_ENTITY || t->kind == POLICY_T_ANY_ENTITY) && json_is(j, JSON_OBJECT))
        return policy_value_from_json(a, j, true, out, err);
    if (t->kind == POLICY_T_SET && json_is(j, JSON_ARRAY)) {
        struct policy_value *items = arena_alloc(a, (j->len ? j->len : 1) * sizeof *items);
        for (uint32_t i = 0; i < j->len; i++)
            if (typed_value(a, j->u.items[i], t->elem, depth + 1, &items[i], err) < 0)
                return KEEL_EINVAL;
        out->type = POLICY_SET;
        out->u.set = policy_vset_make(a, items, j->len);
        return 0;
    }
    if (t->kind == POLICY_T_RECORD && json_is(j, JSON_OBJECT) && !json_get(j, "__extn") &&
        !json_get(j, "__entity"))
        return typed_record(a, j, t, depth, out, err);
    return policy_value_from_json(a, j, false, out, err);
}

static const struct policy_type *entity_shape(const struct policy_schema *s, const char *type,
                                              size_t len, const struct policy_type **tags)
{
    *tags = NULL;
    if (!s) return NULL;
    const struct policy_entity_type *et = strmap_get(&s->entity_index, type, len);
    if (!et) return NULL;
    *tags = et->tags;
    return et->shape;
}

static int add_schema_actions(struct policy_entities *es, const struct policy_schema *s)
{
    for (size_t i = 0; i < s->nactions; i++) {
        const struct policy_action *act = &s->actions[i];
        struct policy_euid u = {act->uid.type, act->uid.id, (uint32_t)strlen(act->uid.type),
                                (uint32_t)strlen(act->uid.id)};
        struct policy_entity *e = intern(es, &u);
        if (e->present) continue;
        e->present = true;
        e->nparents = (uint32_t)act->nparents;
        e->parents = arena_alloc(&es->arena, (act->nparents + 1) * sizeof *e->parents);
        for (size_t k = 0; k < act->nparents; k++) {
            struct policy_euid pu = {act->parents[k].type, act->parents[k].id,
                                     (uint32_t)strlen(act->parents[k].type),
                                     (uint32_t)strlen(act->parents[k].id)};
            e->parents[k] = intern(es, &pu)->index;
        }
    }
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Transitive closure: a walk from each entity over parent edges.  A cycle
 * is an input error, as in Cedar. */
static int compute_ancestors(struct policy_entities *es, struct keel_err *err)
{
    int rc = 0;
    size_t n = es->len;
    uint32_t *seen = calloc(n ? n : 1, sizeof *seen);
    uint32_t *stack = malloc((n ? n : 1) * sizeof *stack);
    uint32_t *acc = malloc((n ? n : 1) * sizeof *acc);
    if (!seen || !stack || !acc) abort();
    for (size_t i = 0; i < n; i++) {
        struct policy_entity *e = es->items[i];
        if (!e->nparents) continue;
        uint32_t mark = (uint32_t)i + 1, sp = 0, na = 0;
        for (uint32_t k = 0; k < e->nparents; k++) {
            if (seen[e->parents[k]] != mark) {
                seen[e->parents[k]] = mark;
                stack[sp++] = e->parents[k];
            }
        }
        while (sp) {
            uint32_t x = stack[--sp];
            if (x == i && rc == 0)
                rc = keel_fail(err, KEEL_EINVAL,
                               "the entity hierarchy has a cycle through %s::\"%s\"; an entity "
                               "cannot be its own ancestor",
                               e->uid.type, e->uid.id);
            acc[na++] = x;
            const struct policy_entity *p = es->items[x];
            for (uint32_t k = 0; k < p->nparents; k++) {
                if (seen[p->parents[k]] != mark) {
                    seen[p->parents[k]] = mark;
                    stack[sp++] = p->parents[k];
                }
            }
        }
        qsort(acc, na, sizeof *acc, cmp_u32);
        e->ancestors = arena_alloc(&es->arena, na * sizeof *e->ancestors);
        memcpy(e->ancestors, acc, na * sizeof *acc);
        e->nancestors = na;
        e->ancestor_hashes = arena_alloc(&es->arena, na * sizeof *e->ancestor_hashes);
        for (uint32_t k = 0; k < na; k++) e->ancestor_hashes[k] = es->items[acc[k]]->uid_hash;
    }
    free(seen);
    free(stack);
    free(acc);
    return rc;
}

/* Stores this small fit in L1 whichever way they are laid out, and some
 * callers build one per request (the engine: an agent and a tool with
 * their parents), so they are not laid out again. */
#define COMPACT_MIN 64

#define HUGE_PAGE ((size_t)2 << 20)

void *policy_big_alloc(size_t size)
{
    size_t align = size >= HUGE_PAGE ? HUGE_PAGE : 64;
    size = (size + align - 1) & ~(align - 1);
    void *p = aligned_alloc(align, size ? size : align);
    if (!p) abort();
#if defined(MADV_HUGEPAGE)
    /* a hint: fewer TLB misses when requests touch lines all over it */
    if (align == HUGE_PAGE) (void)madvise(p, size, MADV_HUGEPAGE);
#endif
    return p;
}

/* The bytes of e's block once laid out again (compact()). */
static size_t block_size(const struct policy_entity *o)
{
    uint32_t na = o->nancestors, np = o->nparents, nf = o->attrs.len, nt = o->tags.len;
    size_t idsize = (o->uid.id_len + 8) & ~(size_t)7, chars = 0;
    for (uint32_t k = 0; k < nf; k++) chars += o->attrs.fields[k].key_len + 1;
    for (uint32_t k = 0; k < nt; k++) chars += o->tags.fields[k].key_len + 1;
    return sizeof *o + idsize + na * sizeof(uint64_t) + (nf + nt) * sizeof(struct policy_field) +
           (na + np) * sizeof(uint32_t) + chars;
}

/* Copies n fields to *at (advancing it) with their keys at *chars. */
static struct policy_field *copy_fields(char **at, char **chars, const struct policy_field *f,
                                        uint32_t n)
{
    struct policy_field *out = (struct policy_field *)*at;
    *at += n * sizeof *out;
    for (uint32_t i = 0; i < n; i++) {
        out[i] = f[i];
        memcpy(*chars, f[i].key, f[i].key_len);
        (*chars)[f[i].key_len] = '\0';
        out[i].key = *chars;
        *chars += f[i].key_len + 1;
    }
    return out;
}

/* Lays every entity out again, each in one block of its own starting at a
 * cache line: the struct, its id, its ancestors' hashes, its top-level
 * attribute and tag fields, its ancestors and parents, then the field keys
 * (type names are shared: one copy per type).  A request reads an
 * entity's uid, ancestors and attributes, so it now touches a few adjacent
 * lines instead of allocations scattered over the whole load.  Nested
 * values stay in es->arena.  Rebuilds the uid index for the new addresses. */
static void compact(struct policy_entities *es)
{
    struct strmap types; /* type name -> its copy in es->hot */
    strmap_init(&types);
    uint8_t *lines = malloc(es->len); /* cache lines of each block past its first */
    if (!lines) abort();
    size_t total = 0;
    for (size_t i = 0; i < es->len; i++) total += (block_size(es->items[i]) + 63) & ~(size_t)63;
    es->blocks = policy_big_alloc(total);
    char *next = es->blocks;
    for (size_t i = 0; i < es->len; i++) {
        const struct policy_entity *o = es->items[i];
        uint32_t na = o->nancestors, np = o->nparents, nf = o->attrs.len, nt = o->tags.len;
        size_t idsize = (o->uid.id_len + 8) & ~(size_t)7, size = block_size(o);
        char *at = next;
        next += (size + 63) & ~(size_t)63;
        lines[i] = (uint8_t)((size - 1) / 64 < SLOT_LINES ? (size - 1) / 64 : SLOT_LINES);
        struct policy_entity *e = (struct policy_entity *)at;
        *e = *o;
        at += sizeof *e;
        memcpy(at, o->uid.id, o->uid.id_len);
        at[o->uid.id_len] = '\0';
        e->uid.id = at;
        at += idsize;
        if (na) {
            e->ancestor_hashes = memcpy(at, o->ancestor_hashes, na * sizeof(uint64_t));
            at += na * sizeof(uint64_t);
        }
        char *str = at + (nf + nt) * sizeof(struct policy_field) + (na + np) * sizeof(uint32_t);
        if (nf) e->attrs.fields = copy_fields(&at, &str, o->attrs.fields, nf);
        if (nt) e->tags.fields = copy_fields(&at, &str, o->tags.fields, nt);
        if (na) {
            e->ancestors = memcpy(at, o->ancestors, na * sizeof(uint32_t));
            at += na * sizeof(uint32_t);
        }
        if (np) e->parents = memcpy(at, o->parents, np * sizeof(uint32_t));
        char *type = strmap_get(&types, o->uid.type, o->uid.type_len);
        if (!type) {
            type = arena_strndup(&es->hot, o->uid.type, o->uid.type_len);
            strmap_put(&types, type, o->uid.type_len, type);
        }
        e->uid.type = type;
        es->items[i] = e;
    }
    strmap_cleanup(&types);
    if (es->slots_cap) memset(es->slots, 0, es->slots_cap * sizeof *es->slots);
    for (size_t i = 0; i < es->len; i++) slot_put(es->slots, es->slots_cap, es->items[i], lines[i]);
    free(lines);
}

static int parse_entity(struct policy_entities *es, const struct json_value *j,
                        const struct policy_schema *schema, struct keel_err *err)
{
    if (!json_is(j, JSON_OBJECT))
        return keel_fail_at(err, KEEL_EINVAL, NULL, j->line, j->column,
                            "each entity must be an object with \"uid\", \"attrs\", \"parents\"");
    struct policy_euid u;
    if (uid_from_json(json_get(j, "uid"), &u, err) < 0) {
        if (!json_get(j, "uid"))
            return keel_fail_at(err, KEEL_EINVAL, NULL, j->line, j->column,
                                "entity has no \"uid\"; add {\"type\": ..., \"id\": ...}");
        return KEEL_EINVAL;
    }
    struct policy_entity *e = intern(es, &u);
    if (e->present)
        return keel_fail_at(err, KEEL_EINVAL, NULL, j->line, j->column,
                            "entity %s::\"%s\" appears twice; merge the two entries", e->uid.type,
                            e->uid.id);
    e->present = true;
    const struct policy_type *tags_t, *shape =
        entity_shape(schema, e->uid.type, e->uid.type_len, &tags_t);
    const struct json_value *attrs = json_get(j, "attrs");
    if (attrs && !json_is(attrs, JSON_OBJECT))
        return keel_fail_at(err, KEEL_EINVAL, NULL, attrs->line, attrs->column,
                            "\"attrs\" must be an object");
    if (attrs) {
        struct policy_value v;
        if (typed_record(&es->arena, attrs, shape, 0, &v, err) < 0) return KEEL_EINVAL;
        e->attrs = *v.u.rec;
    }
    const struct json_value *tags = json_get(j, "tags");
    if (tags && !json_is(tags, JSON_OBJECT) && !json_is(tags, JSON_NULL))
        return keel_fail_at(err, KEEL_EINVAL, NULL, tags->line, tags->column,
                            "\"tags\" must be an object");
    if (json_is(tags, JSON_OBJECT)) {
        struct policy_record *r = arena_alloc(&es->arena, sizeof *r);
        r->len = tags->len;
        r->fields = arena_alloc(&es->arena, (tags->len ? tags->len : 1) * sizeof *r->fields);
        for (uint32_t i = 0; i < tags->len; i++) {
            struct policy_field *f = &r->fields[i];
            f->key = arena_strndup(&es->arena, tags->u.members[i].key, tags->u.members[i].key_len);
            f->key_len = tags->u.members[i].key_len;
            if (typed_value(&es->arena, tags->u.members[i].value, tags_t, 1, &f->value, err) < 0)
                return KEEL_EINVAL;
        }
        policy_record_sort(r->fields, r->len, NULL);
        e->tags = *r;
    }
    const struct json_value *parents = json_get(j, "parents");
    if (parents && !json_is(parents, JSON_ARRAY))
        return keel_fail_at(err, KEEL_EINVAL, NULL, parents->line, parents->column,
                            "\"parents\" must be an array of entity uids");
    uint32_t np = parents ? parents->len : 0;
    e->parents = arena_alloc(&es->arena, (np + 1) * sizeof *e->parents);
    e->nparents = 0;
    for (uint32_t i = 0; i < np; i++) {
        struct policy_euid pu;
        if (uid_from_json(parents->u.items[i], &pu, err) < 0) return KEEL_EINVAL;
        e->parents[e->nparents++] = intern(es, &pu)->index; /* e is stable: in the arena */
    }
    return 0;
}

int policy_entities_parse_json(const struct json_value *json, const struct policy_schema *schema,
                               struct policy_entities **out, struct keel_err *err)
{
    if (!json_is(json, JSON_ARRAY))
        return keel_fail_at(err, KEEL_EINVAL, NULL, json ? json->line : 0,
                            json ? json->column : 0, "entities must be a JSON array");
    struct policy_entities *es = policy_entities_new();
    for (uint32_t i = 0; i < json->len; i++) {
        if (parse_entity(es, json->u.items[i], schema, err) < 0) {
            char path[32];
            snprintf(path, sizeof path, "/%u", i);
            if (err) snprintf(err->path, sizeof err->path, "%s", path);
            policy_entities_free(es);
            return KEEL_EINVAL;
        }
    }
    if (schema) add_schema_actions(es, schema);
    if (compute_ancestors(es, err) < 0) {
        policy_entities_free(es);
        return KEEL_EINVAL;
    }
    if (es->len >= COMPACT_MIN) compact(es);
    *out = es;
    return 0;
}

int policy_request_from_json(struct arena *a, const struct json_value *json,
                             const struct policy_schema *schema, struct policy_request *r,
                             struct keel_err *err)
{
    static const char *const names[] = {"principal", "action", "resource"};
    struct policy_euid *uids[] = {&r->principal, &r->action, &r->resource};
    for (int i = 0; i < 3; i++) {
        const struct json_value *u = json_get(json, names[i]);
        if (!u)
            return keel_fail_at(err, KEEL_EINVAL, NULL, json ? json->line : 0,
                                json ? json->column : 0, "request has no \"%s\"", names[i]);
        if (uid_from_json(u, uids[i], err) < 0) return KEEL_EINVAL;
        uids[i]->type = arena_strndup(a, uids[i]->type, uids[i]->type_len);
        uids[i]->id = arena_strndup(a, uids[i]->id, uids[i]->id_len);
    }
    const struct json_value *ctx = json_get(json, "context");
    memset(&r->context, 0, sizeof r->context);
    if (!ctx || json_is(ctx, JSON_NULL)) return 0;
    if (!json_is(ctx, JSON_OBJECT))
        return keel_fail_at(err, KEEL_EINVAL, NULL, ctx->line, ctx->column,
                            "\"context\" must be an object (a record)");
    const struct policy_type *ct = NULL;
    if (schema) {
        char key[1024];
        snprintf(key, sizeof key, "%s%c%s", r->action.type, 0x1f, r->action.id);
        const struct policy_action *act = strmap_get(&schema->action_index, key, strlen(key));
        if (act) ct = act->context;
    }
    struct policy_value v;
    if (typed_record(a, ctx, ct, 0, &v, err) < 0) return KEEL_EINVAL;
    r->context = *v.u.rec;
    return 0;
}
