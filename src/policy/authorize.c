/*
 * authorize.c — policy sets (load, ids, template links, content hash), the
 * scope index, and the authorizer.
 *
 * Decision semantics (Cedar's): a policy is satisfied when its scope
 * matches and every `when` is true and every `unless` false; a policy
 * whose evaluation errors is skipped and reported; any satisfied forbid
 * denies (the reasons are the satisfied forbids); otherwise any satisfied
 * permit allows (the reasons are the satisfied permits); otherwise deny
 * with no reasons.
 *
 * The index: each policy has one home — the most selective uid in its scope
 * (principal or resource `==` first, then `in`, then the action) — and is
 * listed under that uid's hash in one of six tables: per dimension, one for
 * `==` homes (only the request's own uid can match) and one for `in`,
 * `is .. in` and `in [...]` homes (the request's uid and its ancestors are
 * probed); policies whose scope names no uid at all are in one unindexed
 * list.  So a request visits only policies whose home constraint it
 * satisfies, however large the set (each candidate is still checked fully,
 * so the index only has to over-approximate).  Before evaluating, each
 * candidate's 16-byte scope filter (stored in the index) is compared with
 * the request's uids and ancestors, which drops most candidates without
 * touching the policy or the entity store.  Each policy is a record of
 * cache lines (the struct, then a packed copy of everything evaluating it
 * reads: conditions, nodes, scope uids, annotations) in segments that
 * never move, and the index names it by the record's line number, so a
 * candidate's record is found and prefetched without reading a pointer
 * array; a cold request's loads are issued in waves of independent ones
 * (see policy_authorize).  Scratch space lives in the response, so a warm
 * response authorizes without malloc.
 *
 * Invariants: records are appended in load order, so line numbers grow
 * with it (items[i] is the i-th policy; no record moves); ids are unique;
 * templates are never evaluated nor packed; a policy's scope hashes are
 * set, and its block packed, before it is indexed; nothing points into
 * the parsed AST of a packed policy (it stays in the arena, unused).
 */
#include "internal.h"
#include "../json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per listed policy, what its scope names in each dimension, in 16 bytes
 * (four to a cache line), stored inline in the index so that scanning a
 * candidate list reads only the list's own memory.  h[d] is 0 when the
 * scope names no uid in dimension d; otherwise the 32-bit fold of the one
 * uid's hash, or, when the dimension's FILTER_BLOOM flag is set in idx (a
 * list of several uids: `action in [...]`), a 32-bit mask with one bit
 * per uid.  Checked against the request's uid and ancestors before
 * evaluating, so most candidates are dropped without touching the policy
 * or the entity store; a pass (including a mere fold collision) still gets
 * the full evaluation, so the filter only has to over-approximate. */
struct scope_filter {
    uint32_t idx; /* the policy, set->items[idx & FILTER_IDX], plus flags */
    uint32_t h[3];
};

#define FILTER_IDX 0x1fffffffu            /* > POLICY_MAX_POLICIES */
#define FILTER_BLOOM(d) (0x20000000u << (d))

_Static_assert(POLICY_MAX_POLICIES < FILTER_IDX, "policy index must fit the filter");

/* The 32-bit fold of a uid hash as the filter keeps it (never 0). */
static uint32_t fold32(uint64_t h)
{
    uint32_t x = (uint32_t)(h ^ (h >> 32));
    return x ? x : 1;
}

/* The bloom bit of a uid hash (top bits: independent of the table index). */
static uint32_t bloom_bit(uint64_t h)
{
    return 1u << (fold32(h) >> 27);
}

struct id_list {
    struct scope_filter *items;
    uint32_t len, cap;
};

/* One dimension of the index: an open-addressing table keyed by the 64-bit
 * uid hash (policy_euid_hash, which the entity store precomputes for every
 * entity and its ancestors), so a request probes it without building or
 * hashing key strings.  A slot is 32 bytes (two to a cache line) and holds
 * the first policy listed under its key inline, so a key naming one policy
 * (the common case: one tool, one agent) costs one cache line; further
 * policies are a contiguous run in the set's filter pool.  Two uids with
 * the same hash share a list; that only adds candidates, which the filter
 * and the full evaluation reject, so the index stays an over-approximation. */
struct hslot {
    uint64_t hash;  /* 0: empty (a uid hashing to 0 is stored as 1) */
    uint32_t len;   /* policies listed under this key */
    uint32_t off;   /* the 2nd and later: pool[off .. off + len - 2] */
    struct scope_filter first;
};

_Static_assert(sizeof(struct hslot) == 32, "index slots are 32 bytes");

struct dim_index {
    struct hslot *slots;
    uint32_t cap, count; /* cap: power of two, or 0 */
};

struct policy_set {
    struct arena arena;
    unsigned flags;
    struct policy **items; /* items[i]: the i-th policy loaded */
    size_t len, cap;
    /* The policies themselves, each a record of cache lines in a segment
     * that never moves: the struct, then its packed block (what evaluation
     * reads besides the struct).  A record is named by its line number
     * (segment << SEG_SHIFT | line), which grows with load order, so the
     * index lists line numbers and the authorizer finds a policy and its
     * block without reading items[] and prefetches both in one go. */
    char **segs;
    uint32_t nsegs;
    uint32_t seg_used, seg_cap; /* lines of the last segment */
    struct strmap ids; /* id -> struct policy* */
    size_t next_auto;  /* N of the next policyN */
    struct buf sources; /* what the hash covers */
    char hash[65];
    bool hash_valid;
    /* per dimension d: dims[2d] lists policies homed by `==` (only the
     * request's own uid can match them), dims[2d + 1] those homed by `in`,
     * `is .. in` or `in [...]` (the request's uid and its ancestors are
     * probed), so ancestors are never probed in the often large table of
     * `==` homes, whose slots for them would be cold */
    struct dim_index dims[6];
    struct id_list wild; /* policies with no uid in any scope */
    struct id_list pool; /* the index lists' 2nd and later entries, in runs */
};

#define SEG_SHIFT 15 /* a segment holds at most 32,768 lines (2 MiB: one huge page) */
#define SEG_FIRST 64 /* lines of the first segment; each next one doubles up to the max */
#define POLICY_LINES ((sizeof(struct policy) + 63) / 64)
#define POLICY_HEAD ((sizeof(struct policy) + 7) & ~(size_t)7) /* where the block starts */

static uint64_t hkey(uint64_t h)
{
    return h ? h : 1;
}

static struct hslot *hslot_find(const struct dim_index *d, uint64_t h)
{
    uint32_t mask = d->cap - 1;
    for (uint32_t i = (uint32_t)(h ^ (h >> 32)) & mask;; i = (i + 1) & mask)
        if (d->slots[i].hash == h || !d->slots[i].hash) return &d->slots[i];
}

static void dim_grow(struct dim_index *d)
{
    struct dim_index n = {.cap = d->cap ? d->cap * 2 : 16, .count = d->count};
    n.slots = calloc(n.cap, sizeof *n.slots);
    if (!n.slots) abort();
    for (uint32_t i = 0; i < d->cap; i++)
        if (d->slots[i].hash) *hslot_find(&n, d->slots[i].hash) = d->slots[i];
    free(d->slots);
    *d = n;
}

static void list_push(struct id_list *l, const struct scope_filter *x)
{
    if (l->len == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->items = realloc(l->items, l->cap * sizeof *l->items);
        if (!l->items) abort();
    }
    l->items[l->len++] = *x;
}

/* Reserves n filters at the end of the pool; returns their offset. */
static uint32_t pool_alloc(struct id_list *pool, uint32_t n)
{
    size_t need = (size_t)pool->len + n;
    if (need > UINT32_MAX / 2) abort(); /* 2^31 entries: 32 GiB, out of memory anyway */
    if (need > pool->cap) {
        uint32_t cap = pool->cap ? pool->cap : 64;
        while (cap < need) cap *= 2;
        pool->items = realloc(pool->items, (size_t)cap * sizeof *pool->items);
        if (!pool->items) abort();
        pool->cap = cap;
    }
    uint32_t off = pool->len;
    pool->len += n;
    return off;
}

/* Lists f under uid hash `hash` in d.  A key's run in the pool has room for
 * a power of two of entries; a full run moves to the end of the pool with
 * twice the room (amortized O(1); the abandoned runs at most double the
 * pool). */
static void index_uid(struct policy_set *set, struct dim_index *d, uint64_t hash,
                      const struct scope_filter *f)
{
    uint64_t h = hkey(hash);
    if ((d->count + 1) * 2 > d->cap) dim_grow(d); /* load <= 1/2: short probes */
    struct hslot *s = hslot_find(d, h);
    if (!s->hash) {
        s->hash = h;
        s->len = 1;
        s->first = *f;
        d->count++;
        return;
    }
    uint32_t rest = s->len - 1;
    const struct scope_filter *last = rest ? &set->pool.items[s->off + rest - 1] : &s->first;
    if ((last->idx & FILTER_IDX) == (f->idx & FILTER_IDX)) return; /* listed already */
    if (!rest || !(rest & (rest - 1))) {                         /* run full (or none) */
        uint32_t off = pool_alloc(&set->pool, rest ? rest * 2 : 1);
        if (rest)
            memcpy(&set->pool.items[off], &set->pool.items[s->off], rest * sizeof *f);
        s->off = off;
    }
    set->pool.items[s->off + rest] = *f;
    s->len++;
}

/* How selective a scope is as a policy's home in the index: == beats in,
 * principal and resource beat action (actions are few and widely shared),
 * 0 means it names no uid. */
static int home_score(const struct policy_scope *s, int d)
{
    static const int by_op[] = {
        [POLICY_SCOPE_ANY] = 0, [POLICY_SCOPE_EQ] = 30, [POLICY_SCOPE_IN] = 20,
        [POLICY_SCOPE_IS] = 0,  [POLICY_SCOPE_IS_IN] = 20, [POLICY_SCOPE_IN_SET] = 8,
    };
    if (!s->euids || s->op >= KEEL_ARRAY_LEN(by_op) || !by_op[s->op]) return 0;
    return by_op[s->op] + (d == 2 ? 1 : 0) - (d == 1 ? 12 : 0);
}

/* Hashes p's scope uids once, for the index and the evaluator. */
static void hash_scopes(struct policy_set *set, struct policy *p)
{
    struct policy_scope *scopes[3] = {&p->principal, &p->action, &p->resource};
    for (int d = 0; d < 3; d++) {
        struct policy_scope *s = scopes[d];
        s->hashed = false;
        s->hashes = NULL;
        if (s->euids && s->neuids) {
            uint64_t *hs = s->neuids > 1 ? arena_alloc(&set->arena, s->neuids * sizeof *hs) : NULL;
            s->hash0 = policy_euid_hash(&s->euids[0]);
            for (uint32_t i = 0; hs && i < s->neuids; i++) hs[i] = policy_euid_hash(&s->euids[i]);
            s->hashes = hs;
            s->hashed = true;
        }
    }
}

/* Lists p (record line idx; its scopes hashed) in the index. */
static void index_policy(struct policy_set *set, struct policy *p, uint32_t idx)
{
    struct policy_scope *scopes[3] = {&p->principal, &p->action, &p->resource};
    struct scope_filter f = {.idx = idx};
    int home = -1, best = 0;
    for (int d = 0; d < 3; d++) {
        struct policy_scope *s = scopes[d];
        int score = home_score(s, d);
        if (score > best) {
            best = score;
            home = d;
        }
        if (!score) continue;
        if (s->neuids == 1) {
            f.h[d] = fold32(s->hash0);
        } else {
            f.idx |= FILTER_BLOOM(d); /* `in []`: mask 0, not filtered; never matches */
            for (uint32_t i = 0; i < s->neuids; i++) f.h[d] |= bloom_bit(s->hashes[i]);
        }
    }
    if (home < 0) {
        list_push(&set->wild, &f);
        return;
    }
    for (uint32_t i = 0; i < scopes[home]->neuids; i++)
        index_uid(set, &set->dims[2 * home + (scopes[home]->op != POLICY_SCOPE_EQ)],
                  i ? scopes[home]->hashes[i] : scopes[home]->hash0, &f);
}

struct policy_set *policy_set_new(unsigned flags)
{
    struct policy_set *set = calloc(1, sizeof *set);
    if (!set) abort();
    arena_init(&set->arena);
    set->flags = flags;
    strmap_init(&set->ids);
    buf_init(&set->sources);
    return set;
}

void policy_set_free(struct policy_set *set)
{
    if (!set) return;
    for (int d = 0; d < 6; d++) {
        struct dim_index *m = &set->dims[d];
        free(m->slots);
    }
    free(set->wild.items);
    free(set->pool.items);
    strmap_cleanup(&set->ids);
    buf_cleanup(&set->sources);
    free(set->items);
    for (size_t i = 0; i < set->nsegs; i++) free(set->segs[i]);
    free(set->segs);
    arena_cleanup(&set->arena);
    free(set);
}

/* ---- packing: what evaluating a policy reads, in one block ------------- */

/* A bump allocator over one block; with base NULL it only measures. */
struct packer {
    char *base;
    size_t off;
    uint32_t nodes, depth; /* copied so far; current nesting */
    bool too_big;          /* past PACK_MAX_NODES or PACK_MAX_DEPTH: not packed */
};

/* Conditions larger than this are left unpacked (evaluated from the parse):
 * shared subtrees (`has a.b.c` shares each prefix) are copied once per use,
 * so a long chain would otherwise copy a quadratic number of nodes. */
#define PACK_MAX_NODES 4096
#define PACK_MAX_DEPTH 256

static void *pk_alloc(struct packer *k, size_t size, size_t align)
{
    k->off = (k->off + align - 1) & ~(align - 1);
    void *p = k->base ? k->base + k->off : NULL;
    k->off += size;
    return p;
}

/* A copy of the len bytes at s, NUL-terminated (Cedar strings may hold NUL). */
static const char *pk_str(struct packer *k, const char *s, size_t len)
{
    char *d = pk_alloc(k, len + 1, 1);
    if (!d) return s;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static void pk_euid(struct packer *k, struct policy_euid *dst, const struct policy_euid *u)
{
    const char *type = pk_str(k, u->type, u->type_len), *id = pk_str(k, u->id, u->id_len);
    if (!dst) return;
    *dst = *u;
    dst->type = type;
    dst->id = id;
}

/* Which member of a node's union points at data to copy. */
enum pk_payload { PK_NONE, PK_STR, PK_EUID, PK_PAT, PK_REC };

static const uint8_t pk_payload_of[PN__COUNT] = {
    [PN_STRING] = PK_STR, [PN_VAR] = PK_STR,  [PN_HAS] = PK_STR,    [PN_GETATTR] = PK_STR,
    [PN_IS] = PK_STR,     [PN_ENTITY] = PK_EUID, [PN_LIKE] = PK_PAT, [PN_RECORD] = PK_REC,
};

/* A copy of the tree at n in preorder (each node, then its kids array and
 * the data it points at, then its kids), so a condition is read front to
 * back.  Shared subtrees (`has a.b`) are copied once per use. */
static struct policy_node *pk_node(struct packer *k, const struct policy_node *n)
{
    if (++k->nodes > PACK_MAX_NODES || k->depth >= PACK_MAX_DEPTH) {
        k->too_big = true; /* measuring: stop here (bounded work), nothing is written */
        return NULL;
    }
    struct policy_node *c = pk_alloc(k, sizeof *c, _Alignof(struct policy_node));
    struct policy_node **kids = n->nkids ? pk_alloc(k, n->nkids * sizeof *kids, 8) : NULL;
    if (c) *c = *n;
    switch (n->kind < PN__COUNT ? pk_payload_of[n->kind] : PK_NONE) {
    case PK_STR: {
        const char *str = n->u.str.s ? pk_str(k, n->u.str.s, n->u.str.len) : NULL;
        if (c) c->u.str.s = str;
        break;
    }
    case PK_EUID: pk_euid(k, c ? &c->u.euid : NULL, &n->u.euid); break;
    case PK_PAT: {
        int16_t *items = pk_alloc(k, (n->u.pat.len ? n->u.pat.len : 1) * sizeof *items, 2);
        if (items) memcpy(items, n->u.pat.items, n->u.pat.len * sizeof *items);
        if (c) c->u.pat.items = items;
        break;
    }
    case PK_REC: {
        const char **keys = pk_alloc(k, (n->nkids ? n->nkids : 1) * sizeof *keys, 8);
        uint32_t *lens = pk_alloc(k, (n->nkids ? n->nkids : 1) * sizeof *lens, 4);
        for (uint32_t i = 0; i < n->nkids; i++) {
            const char *key = pk_str(k, n->u.rec.keys[i], n->u.rec.key_lens[i]);
            if (keys) keys[i] = key;
            if (lens) lens[i] = n->u.rec.key_lens[i];
        }
        if (c) {
            c->u.rec.keys = keys;
            c->u.rec.key_lens = lens;
        }
        break;
    }
    default: break;
    }
    k->depth++;
    for (uint32_t i = 0; i < n->nkids && !k->too_big; i++) {
        struct policy_node *kc = n->kids[i] ? pk_node(k, n->kids[i]) : NULL;
        if (kids) kids[i] = kc;
    }
    k->depth--;
    if (c) c->kids = kids;
    return c;
}

/* Lays out p's conditions array, the scope uids (with their strings and
 * hashes), every condition's nodes and the annotations, in that order, in
 * one block at k. */
static struct policy_condition *pk_policy(struct packer *k, struct policy *p)
{
    struct policy_condition *conds =
        pk_alloc(k, (p->nconds ? p->nconds : 1) * sizeof *conds, _Alignof(struct policy_condition));
    struct policy_scope *scopes[3] = {&p->principal, &p->action, &p->resource};
    for (int d = 0; d < 3; d++) {
        struct policy_scope *sc = scopes[d];
        if (sc->euids && sc->neuids) {
            struct policy_euid *eu = pk_alloc(k, sc->neuids * sizeof *eu, 8);
            uint64_t *hs = sc->hashes ? pk_alloc(k, sc->neuids * sizeof *hs, 8) : NULL;
            for (uint32_t i = 0; i < sc->neuids; i++) pk_euid(k, eu ? &eu[i] : NULL, &sc->euids[i]);
            if (hs) memcpy(hs, sc->hashes, sc->neuids * sizeof *hs);
            if (k->base) {
                sc->euids = eu;
                if (sc->hashes) sc->hashes = hs;
            }
        }
        if (sc->is_type) {
            const char *t = pk_str(k, sc->is_type, sc->is_type_len);
            if (k->base) sc->is_type = t;
        }
    }
    for (uint32_t i = 0; i < p->nconds && !k->too_big; i++) {
        struct policy_node *e = pk_node(k, p->conds[i].expr);
        if (conds) {
            conds[i] = p->conds[i];
            conds[i].expr = e;
        }
    }
    /* last: the annotations (read for the reasons of an allow: @approval) */
    if (p->nannotations) {
        struct policy_annotation *an = pk_alloc(k, p->nannotations * sizeof *an, 8);
        for (uint32_t i = 0; i < p->nannotations; i++) {
            const struct policy_annotation *o = &p->annotations[i];
            const char *key = pk_str(k, o->key, strlen(o->key));
            const char *value = pk_str(k, o->value, o->value_len);
            if (an) {
                an[i] = *o;
                an[i].key = key;
                an[i].value = value;
            }
        }
        if (an) p->annotations = an;
    }
    return conds;
}

/* Reserves a record of n cache lines (n <= 1 << SEG_SHIFT) at the end of
 * the last segment, or in a new one; returns its line number. */
static uint32_t record_alloc(struct policy_set *set, uint32_t n)
{
    if (!set->nsegs || set->seg_used + n > set->seg_cap) {
        uint32_t cap = set->nsegs ? set->seg_cap * 2 : SEG_FIRST;
        if (cap > 1u << SEG_SHIFT) cap = 1u << SEG_SHIFT;
        while (cap < n) cap *= 2;
        if ((size_t)set->nsegs + 1 > (FILTER_IDX >> SEG_SHIFT)) abort(); /* 32 GiB of policies */
        set->segs = realloc(set->segs, (set->nsegs + 1) * sizeof *set->segs);
        if (!set->segs) abort();
        set->segs[set->nsegs] = policy_big_alloc((size_t)cap * 64);
        set->nsegs++;
        set->seg_used = 0;
        set->seg_cap = cap;
    }
    uint32_t line = (set->nsegs - 1) << SEG_SHIFT | set->seg_used;
    set->seg_used += n;
    return line;
}

/* The policy whose record starts at line x. */
static struct policy *record_at(const struct policy_set *set, uint32_t x)
{
    return (struct policy *)(set->segs[x >> SEG_SHIFT] + (size_t)(x & ((1u << SEG_SHIFT) - 1)) * 64);
}

/* Adds a copy of *src (its arena data is shared) as the next policy: its
 * record holds the struct and, right after it, the packed block of what
 * evaluating it reads besides the struct (conditions, nodes, scope uids),
 * so a cold policy is a few adjacent lines the authorizer can prefetch at
 * once instead of a chain of pointers into the whole parse.  The parsed
 * copies stay valid in the set's arena (nothing points at them once the
 * record is written).  A block too large for a segment stays apart. */
static void add_policy(struct policy_set *set, const struct policy *src)
{
    struct policy tmp = *src;
    tmp.hot_lines = 0;
    struct packer k = {0};
    if (!tmp.is_template) {
        hash_scopes(set, &tmp);
        pk_policy(&k, &tmp); /* measures */
    }
    bool packed = !tmp.is_template && !k.too_big;
    size_t block = packed ? k.off : 0, lines = (POLICY_HEAD + block + 63) / 64;
    bool inline_block = lines <= 1u << SEG_SHIFT;
    uint32_t idx = record_alloc(set, (uint32_t)(inline_block ? lines : POLICY_LINES));
    struct policy *p = record_at(set, idx);
    *p = tmp;
    if (packed) {
        if (inline_block) {
            k.base = (char *)p + POLICY_HEAD;
        } else {
            uintptr_t raw = (uintptr_t)arena_alloc(&set->arena, block + 64); /* 8-aligned */
            k.base = (char *)((raw + 63) & ~(uintptr_t)63);
        }
        k = (struct packer){.base = k.base};
        p->conds = pk_policy(&k, p);
        size_t bl = (block + 63) / 64 + 1; /* lines it touches at most */
        p->hot_lines = (uint16_t)(bl < UINT16_MAX ? bl : UINT16_MAX);
    }
    if (set->len == set->cap) {
        set->cap = set->cap ? set->cap * 2 : 16;
        set->items = realloc(set->items, set->cap * sizeof *set->items);
        if (!set->items) abort();
    }
    set->items[set->len++] = p;
    strmap_put(&set->ids, p->id, strlen(p->id), p);
    if (!p->is_template) index_policy(set, p, idx);
    set->hash_valid = false;
}

const char *policy_annotation(const struct policy *p, const char *key)
{
    for (uint32_t i = 0; i < p->nannotations; i++)
        if (!strcmp(p->annotations[i].key, key)) return p->annotations[i].value;
    return NULL;
}

int policy_set_add_text(struct policy_set *set, const char *text, size_t len, const char *file,
                        struct keel_err *err)
{
    struct policy **ps;
    size_t n;
    if (set->len >= POLICY_MAX_POLICIES)
        return keel_fail_at(err, KEEL_ELIMIT, file, 0, 0, "too many policies (limit %u)",
                            POLICY_MAX_POLICIES);
    const char *fname = file ? arena_strdup(&set->arena, file) : "";
    if (policy_parse_policies(&set->arena, text, len, fname[0] ? fname : NULL, &ps, &n, err) < 0)
        return KEEL_EINVAL;
    if (set->len + n > POLICY_MAX_POLICIES)
        return keel_fail_at(err, KEEL_ELIMIT, fname, 0, 0,
                            "too many policies: %zu more would exceed the limit of %u per set; "
                            "split the set", n, POLICY_MAX_POLICIES);
    /* Assign ids, checking them all before adding any. */
    size_t next = set->next_auto;
    struct strmap batch; /* ids of this text so far: duplicates within it */
    strmap_init(&batch);
    for (size_t i = 0; i < n; i++) {
        ps[i]->file = fname;
        const char *id = (set->flags & POLICY_PARSE_ID_ANNOTATIONS) ? policy_annotation(ps[i], "id")
                                                                     : NULL;
        if (id && id[0]) ps[i]->id = id;
        else ps[i]->id = arena_printf(&set->arena, "policy%zu", next);
        next++;
        size_t idlen = strlen(ps[i]->id);
        bool dup = strmap_get(&set->ids, ps[i]->id, idlen) || strmap_get(&batch, ps[i]->id, idlen);
        if (!dup) strmap_put(&batch, ps[i]->id, idlen, ps[i]);
        if (dup) {
            strmap_cleanup(&batch);
            return keel_fail_at(err, KEEL_EINVAL, fname, ps[i]->line, ps[i]->column,
                                "duplicate policy id \"%s\"; give each policy its own @id",
                                ps[i]->id);
        }
    }
    strmap_cleanup(&batch);
    set->next_auto = next;
    for (size_t i = 0; i < n; i++) add_policy(set, ps[i]);
    buf_printf(&set->sources, "%zu:", len);
    buf_append(&set->sources, text, len);
    return 0;
}

int policy_set_parse(const char *text, size_t len, const char *file, unsigned flags,
                     struct policy_set **out, struct keel_err *err)
{
    struct policy_set *set = policy_set_new(flags);
    int rc = policy_set_add_text(set, text, len, file, err);
    if (rc < 0) {
        policy_set_free(set);
        return rc;
    }
    *out = set;
    return 0;
}

static struct policy_euid *copy_euid(struct arena *a, const struct policy_euid *u)
{
    struct policy_euid *c = arena_alloc(a, sizeof *c);
    c->type = arena_strndup(a, u->type, u->type_len);
    c->type_len = u->type_len;
    c->id = arena_strndup(a, u->id, u->id_len);
    c->id_len = u->id_len;
    return c;
}

int policy_set_link(struct policy_set *set, const char *template_id, const char *new_id,
                    const struct policy_euid *principal, const struct policy_euid *resource,
                    struct keel_err *err)
{
    const struct policy *t = policy_set_find(set, template_id);
    if (!t || !t->is_template)
        return keel_fail(err, KEEL_ENOENT, "no template with id \"%s\" to link", template_id);
    if (strmap_get(&set->ids, new_id, strlen(new_id)))
        return keel_fail(err, KEEL_EEXIST, "policy id \"%s\" is already taken", new_id);
    if (set->len >= POLICY_MAX_POLICIES)
        return keel_fail(err, KEEL_ELIMIT, "cannot link \"%s\": the set already has the limit "
                         "of %u policies", new_id, POLICY_MAX_POLICIES);
    if ((t->principal.slot && !principal) || (t->resource.slot && !resource))
        return keel_fail(err, KEEL_EINVAL, "template \"%s\" needs a value for %s", template_id,
                         t->principal.slot && !principal ? "?principal" : "?resource");
    if ((!t->principal.slot && principal) || (!t->resource.slot && resource))
        return keel_fail(err, KEEL_EINVAL, "template \"%s\" has no slot %s", template_id,
                         !t->principal.slot && principal ? "?principal" : "?resource");
    struct policy *p = arena_alloc(&set->arena, sizeof *p);
    *p = *t;
    p->id = arena_strdup(&set->arena, new_id);
    p->is_template = false;
    p->template_of = t;
    if (t->principal.slot) {
        p->principal.euids = copy_euid(&set->arena, principal);
        p->principal.neuids = 1;
    }
    if (t->resource.slot) {
        p->resource.euids = copy_euid(&set->arena, resource);
        p->resource.neuids = 1;
    }
    add_policy(set, p);
    buf_printf(&set->sources, "link:%s:%s", template_id, new_id);
    if (principal) buf_printf(&set->sources, ":%s::%s", p->principal.euids->type, p->principal.euids->id);
    if (resource) buf_printf(&set->sources, ":%s::%s", p->resource.euids->type, p->resource.euids->id);
    return 0;
}

int policy_set_link_json(struct policy_set *set, const struct json_value *links,
                         struct keel_err *err)
{
    if (!json_is(links, JSON_ARRAY)) return keel_fail(err, KEEL_EINVAL, "links must be an array");
    for (uint32_t i = 0; i < links->len; i++) {
        const struct json_value *l = links->u.items[i];
        const char *tid = json_get_str(l, "templateId", NULL);
        const char *nid = json_get_str(l, "newId", NULL);
        const struct json_value *vals = json_get(l, "values");
        if (!tid || !nid)
            return keel_fail_at(err, KEEL_EINVAL, NULL, l->line, l->column,
                                "a link needs \"templateId\", \"newId\" and \"values\"");
        struct policy_euid pu, ru;
        bool hp = false, hr = false;
        for (int k = 0; k < 2; k++) {
            const struct json_value *v = json_get(vals, k ? "?resource" : "?principal");
            if (!v) continue;
            if (json_get(v, "__entity")) v = json_get(v, "__entity");
            const char *type = json_get_str(v, "type", NULL), *id = json_get_str(v, "id", NULL);
            if (!type || !id)
                return keel_fail_at(err, KEEL_EINVAL, NULL, v->line, v->column,
                                    "slot value must be {\"type\": ..., \"id\": ...}");
            struct policy_euid *u = k ? &ru : &pu;
            u->type = type;
            u->type_len = (uint32_t)strlen(type);
            u->id = id;
            u->id_len = (uint32_t)strlen(id);
            if (k) hr = true;
            else hp = true;
        }
        if (policy_set_link(set, tid, nid, hp ? &pu : NULL, hr ? &ru : NULL, err) < 0)
            return KEEL_EINVAL;
    }
    return 0;
}

size_t policy_set_count(const struct policy_set *set)
{
    return set->len;
}

const struct policy *policy_set_at(const struct policy_set *set, size_t i)
{
    return i < set->len ? set->items[i] : NULL;
}

const struct policy *policy_set_find(const struct policy_set *set, const char *id)
{
    return strmap_get(&set->ids, id, strlen(id));
}

const char *policy_set_hash(struct policy_set *set)
{
    if (!set->hash_valid) {
        keel_sha256_hex(set->sources.data ? set->sources.data : "", set->sources.len, set->hash);
        set->hash_valid = true;
    }
    return set->hash;
}

/* ---- responses and authorization -------------------------------------- */

void policy_response_init(struct policy_response *r)
{
    memset(r, 0, sizeof *r);
    arena_init(&r->arena);
}

void policy_response_cleanup(struct policy_response *r)
{
    free(r->reasons);
    free(r->errors);
    free(r->approvals);
    free(r->cand);
    free(r->satisfied);
    arena_cleanup(&r->arena);
    memset(r, 0, sizeof *r);
}

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    p = realloc(p, c * size);
    if (!p) abort();
    *cap = c;
    return p;
}

/* A hint to start loading the cache line at p (no effect on results). */
static void prefetch(const void *p)
{
#if defined(__GNUC__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
}

#define PREFETCH_POLICIES 16 /* candidates whose policies are prefetched up front */
#define PREFETCH_RECORD_LINES 12 /* of a policy's record, before its size is known
                                    (prefetch_policy() writes them out) */
#define PREFETCH_BLOCK_LINES 32  /* at most, of a record once its size is known */

/* Starts loading the first lines of p's record (the struct, the start of
 * its packed block): most records of agent policies fit. */
static void prefetch_policy(const struct policy *p)
{
    const char *at = (const char *)p; /* written out: a dozen instructions, no loop */
    prefetch(at);
    prefetch(at + 64);
    prefetch(at + 128);
    prefetch(at + 192);
    prefetch(at + 256);
    prefetch(at + 320);
    prefetch(at + 384);
    prefetch(at + 448);
    prefetch(at + 512);
    prefetch(at + 576);
    prefetch(at + 640);
    prefetch(at + 704);
}

/* Starts loading the rest of p's packed block (waits for p's first line). */
static void prefetch_block(const struct policy *p)
{
    uintptr_t at = (uintptr_t)p->conds, from = (uintptr_t)p;
    uintptr_t end = at + 64 * (uintptr_t)(p->hot_lines < PREFETCH_BLOCK_LINES ? p->hot_lines
                                                                              : PREFETCH_BLOCK_LINES);
    if (at >= from && at < from + 64 * PREFETCH_RECORD_LINES) /* in the record: */
        at = from + 64 * PREFETCH_RECORD_LINES;              /* after prefetch_policy's lines */
    for (; at < end; at += 64) prefetch((const void *)at);
}

/* A hint to start loading the slot of uid hash h in d. */
static void prefetch_slot(const struct dim_index *d, uint64_t h)
{
    if (d->count) prefetch(&d->slots[(uint32_t)(hkey(h) ^ (hkey(h) >> 32)) & (d->cap - 1)]);
}

/* A stretch of index entries to scan: a slot's inline first entry, the
 * rest of its list in the pool, or the unindexed list. */
struct run {
    const struct scope_filter *f;
    uint32_t n;
};

/* Appends the list of uid hash h in d to runs; returns its length. */
static size_t gather(const struct policy_set *set, const struct dim_index *d, uint64_t h,
                     struct run *runs, size_t *nruns)
{
    if (!d->count) return 0;
    const struct hslot *s = hslot_find(d, hkey(h));
    if (!s->hash) return 0;
    runs[(*nruns)++] = (struct run){&s->first, 1};
    if (s->len > 1) {
        prefetch(&set->pool.items[s->off]); /* scanned after all the probes */
        runs[(*nruns)++] = (struct run){&set->pool.items[s->off], s->len - 1};
    }
    return s->len;
}

#define FILTER_MAX 64

/* What the filter compares a dimension with: the folds of the request
 * uid's hash and its ancestors' (n = 0 disables the filter there: too many
 * ancestors to scan cheaply), and the OR of their bloom bits. */
struct req_filter {
    uint32_t fold[3][FILTER_MAX];
    uint32_t n[3];
    uint32_t bloom[3];
};

static void req_filter_dim(struct req_filter *r, int d, uint64_t h, const struct policy_entity *e)
{
    r->n[d] = 0;
    r->bloom[d] = 0;
    if (e && e->nancestors >= FILTER_MAX) return;
    r->fold[d][r->n[d]++] = fold32(h);
    r->bloom[d] = bloom_bit(h);
    for (uint32_t i = 0; e && i < e->nancestors; i++) {
        r->fold[d][r->n[d]++] = fold32(e->ancestor_hashes[i]);
        r->bloom[d] |= bloom_bit(e->ancestor_hashes[i]);
    }
}

/* Can policy f's scope match?  False only when it certainly cannot. */
static bool filter_pass(const struct scope_filter *f, const struct req_filter *r)
{
    for (int d = 0; d < 3; d++) {
        uint32_t x = f->h[d];
        if (!x || !r->n[d]) continue;
        if (f->idx & FILTER_BLOOM(d)) {
            if (!(x & r->bloom[d])) return false;
            continue;
        }
        uint32_t k = 0;
        while (k < r->n[d] && r->fold[d][k] != x) k++;
        if (k == r->n[d]) return false;
    }
    return true;
}

/* The policy of record line i (the segment table is small and hot). */
static const struct policy *policy_at(const struct policy_set *set, uint32_t i)
{
    return record_at(set, i);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int policy_authorize(const struct policy_set *set, const struct policy_entities *entities,
                     const struct policy_request *request, struct policy_response *resp)
{
    arena_reset(&resp->arena);
    resp->decision = POLICY_DENY;
    resp->nreasons = resp->nerrors = resp->napprovals = 0;
    resp->nevaluated = 0;
    if (!set || !set->len) return 0;

    /* The request's uids are hashed once; the entity lookups, the index
     * probes, the filter and the scope checks all reuse the hashes. */
    const struct policy_euid *uids[3] = {&request->principal, &request->action,
                                         &request->resource};
    const struct policy_entity *ents[3];
    uint64_t uh[3];
    struct req_filter rf;
    size_t maxruns = 7; /* the unindexed list and two runs per `==` table */
    /* Candidates: the unindexed policies, and in each dimension the policies
     * homed under the request's uid or one of its ancestors. */
    struct run stack_runs[64];
    struct run *runs = stack_runs;
    size_t nruns = 1, total = set->wild.len;
    runs[0] = (struct run){set->wild.items, set->wild.len};
    /* The cold loads are started in waves of independent ones, so their
     * misses overlap instead of queueing behind each other: the uid index
     * slots of the store and of the policy index; then the request's
     * entity blocks and the records of the first policies homed under the
     * request's own uids (likely candidates, started before the filter can
     * say).  (The probes of the entities' ancestors below are independent
     * loads close together, which the CPU overlaps by itself.) */
    for (int d = 0; d < 3; d++) {
        uh[d] = policy_euid_hash(uids[d]);
        policy_entities_prefetch(entities, uh[d]);
        prefetch_slot(&set->dims[2 * d], uh[d]);
        prefetch_slot(&set->dims[2 * d + 1], uh[d]);
    }
    uint32_t early[3];
    size_t nearly = 0;
    for (int d = 0; d < 3; d++) {
        policy_entities_prefetch_entity(entities, uh[d]);
        size_t first = nruns;
        total += gather(set, &set->dims[2 * d], uh[d], runs, &nruns);
        if (nruns > first) {
            early[nearly] = runs[first].f->idx & FILTER_IDX;
            prefetch_policy(policy_at(set, early[nearly++]));
        }
    }
    for (int d = 0; d < 3; d++) {
        ents[d] = entities ? policy_entities_find_hashed(entities, uids[d], uh[d]) : NULL;
        req_filter_dim(&rf, d, uh[d], ents[d]);
        maxruns += 2 * (1 + (size_t)(ents[d] ? ents[d]->nancestors : 0));
    }
    if (maxruns > KEEL_ARRAY_LEN(stack_runs)) {
        runs = arena_alloc(&resp->arena, maxruns * sizeof *runs);
        memcpy(runs, stack_runs, nruns * sizeof *runs);
    }
    for (int d = 0; d < 3; d++) {
        const struct dim_index *in = &set->dims[2 * d + 1];
        if (!in->count) continue;
        total += gather(set, in, uh[d], runs, &nruns);
        for (uint32_t i = 0; ents[d] && i < ents[d]->nancestors; i++)
            total += gather(set, in, ents[d]->ancestor_hashes[i], runs, &nruns);
    }

    /* A policy listed under several uids of the request's chain (action in
     * [...]) shows up more than once here; sorting makes the copies adjacent
     * and they are dropped below. */
    resp->cand = grow(resp->cand, &resp->cand_cap, total + 1, sizeof *resp->cand);
    size_t ncand = 0;
    for (size_t i = 0; i < nruns; i++) {
        const struct scope_filter *f = runs[i].f;
        for (uint32_t k = 0; k < runs[i].n; k++)
            if (filter_pass(&f[k], &rf)) resp->cand[ncand++] = f[k].idx & FILTER_IDX;
    }
    /* load order, so reasons and errors come out in file order */
    if (ncand > 32) {
        qsort(resp->cand, ncand, sizeof *resp->cand, cmp_u32);
    } else {
        for (size_t i = 1; i < ncand; i++) {
            uint32_t x = resp->cand[i];
            size_t k = i;
            for (; k > 0 && resp->cand[k - 1] > x; k--) resp->cand[k] = resp->cand[k - 1];
            resp->cand[k] = x;
        }
    }
    size_t nuniq = 0;
    for (size_t i = 0; i < ncand; i++)
        if (!nuniq || resp->cand[nuniq - 1] != resp->cand[i]) resp->cand[nuniq++] = resp->cand[i];
    ncand = nuniq;
    resp->nevaluated = ncand;
    /* the candidates' policies are independent loads: start them together
     * (their first three lines hold what evaluation reads first), then,
     * as their first lines arrive, their packed blocks (conditions and
     * scope uids) */
    for (size_t i = 0; i < ncand && i < PREFETCH_POLICIES; i++) {
        size_t k = 0;
        while (k < nearly && early[k] != resp->cand[i]) k++;
        if (k == nearly) prefetch_policy(policy_at(set, resp->cand[i]));
    }
    for (size_t i = 0; i < ncand && i < PREFETCH_POLICIES; i++)
        prefetch_block(policy_at(set, resp->cand[i]));

    char msg[256];
    struct eval_ctx c = {.entities = entities, .req = request, .arena = &resp->arena,
                         .msg = msg, .msg_cap = sizeof msg, .req_ents = {ents[0], ents[1], ents[2]},
                         .req_hash = {uh[0], uh[1], uh[2]}, .req_ents_known = true};
    resp->satisfied = grow(resp->satisfied, &resp->satisfied_cap, ncand + 1,
                           sizeof *resp->satisfied);
    size_t nsat = 0;
    bool forbid = false;
    for (size_t i = 0; i < ncand; i++) {
        const struct policy *p = policy_at(set, resp->cand[i]);
        /* long lists: keep the loads ahead of the evaluation */
        if (i + PREFETCH_POLICIES < ncand)
            prefetch_policy(policy_at(set, resp->cand[i + PREFETCH_POLICIES]));
        if (i + PREFETCH_POLICIES / 2 < ncand && i + PREFETCH_POLICIES / 2 >= PREFETCH_POLICIES)
            prefetch_block(policy_at(set, resp->cand[i + PREFETCH_POLICIES / 2]));
        c.file = p->file;
        msg[0] = '\0';
        int r = policy_eval_policy(&c, p);
        if (r < 0) {
            resp->errors = grow(resp->errors, &resp->errors_cap, resp->nerrors + 1,
                                sizeof *resp->errors);
            struct policy_error *pe = &resp->errors[resp->nerrors++];
            pe->policy = p;
            snprintf(pe->message, sizeof pe->message, "%s", msg);
        } else if (r > 0) {
            resp->satisfied[nsat++] = resp->cand[i];
            if (p->effect == POLICY_FORBID) forbid = true;
        }
    }
    int want = forbid ? POLICY_FORBID : POLICY_PERMIT;
    resp->reasons = grow(resp->reasons, &resp->reasons_cap, nsat + 1, sizeof *resp->reasons);
    for (size_t i = 0; i < nsat; i++) {
        const struct policy *p = policy_at(set, resp->satisfied[i]);
        if (p->effect != want) continue;
        resp->reasons[resp->nreasons++] = p;
    }
    resp->decision = !forbid && resp->nreasons ? POLICY_ALLOW : POLICY_DENY;
    if (resp->decision == POLICY_ALLOW) {
        for (size_t i = 0; i < resp->nreasons; i++) {
            const char *g = policy_annotation(resp->reasons[i], "approval");
            if (!g) continue;
            resp->approvals = grow(resp->approvals, &resp->approvals_cap, resp->napprovals + 1,
                                   sizeof *resp->approvals);
            resp->approvals[resp->napprovals++] = g;
        }
    }
    return 0;
}
