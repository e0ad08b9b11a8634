/*
 * fuzz_journal_fold.c — the journal's readers of untrusted text: the fold of
 * state.updated payloads (any JSON, any reducer name, type clashes), the
 * JSONL form of an event whose stored payload may be anything (a damaged or
 * tampered row), and the hash of arbitrary fields.
 *
 * Input: lines; each line is the payload of one event.  A line starting
 * with '!' is an event of another kind (ignored by the fold).  Invariants
 * checked: the fold never crashes and either fails with an error message or
 * yields an object; every JSONL line is valid JSON; hashing is
 * deterministic.
 */
#include "journal/journal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    struct arena a;
    arena_init(&a);
    static const struct journal_state_key keys[] = {
        {"r", JOURNAL_REDUCE_REPLACE, NULL},
        {"l", JOURNAL_REDUCE_APPEND, NULL},
        {"m", JOURNAL_REDUCE_MERGE, NULL},
        {"n", JOURNAL_REDUCE_ADD, NULL},
    };
    struct journal_reducers r = {keys, 4, JOURNAL_REDUCE_REPLACE};
    struct json_value *state = journal_state_initial(&r, &a);
    const char *p = (const char *)data, *end = p + size;
    int64_t seq = 0;
    char prev[JOURNAL_HASH_HEX + 1];
    memcpy(prev, journal_zero_hash, sizeof prev);
    struct buf line;
    buf_init(&line);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        bool other = len > 0 && p[0] == '!';
        seq++;
        struct journal_event ev = {.run_id = "run_fuzz", .seq = seq, .time_ms = seq,
                                   .kind = other ? "step.started" : "state.updated",
                                   .actor = "system", .payload = other ? p + 1 : p,
                                   .payload_len = other ? len - 1 : len};
        memcpy(ev.prev_hash, prev, sizeof prev);
        struct keel_err err;
        keel_err_clear(&err);
        int rc = journal_fold_event(&r, &a, state, &ev, &err);
        if (rc != 0 && err.msg[0] == '\0') abort(); /* a failure must say why */
        if (!json_is(state, JSON_OBJECT)) abort();

        char h1[JOURNAL_HASH_HEX + 1], h2[JOURNAL_HASH_HEX + 1];
        if (journal_event_hash(&ev, h1, NULL) != 0) abort();
        if (journal_event_hash(&ev, h2, NULL) != 0 || strcmp(h1, h2) != 0) abort();
        memcpy(ev.hash, h1, sizeof h1);
        buf_reset(&line);
        journal_event_to_json(&ev, &line);
        struct arena la;
        arena_init(&la);
        struct json_value *v;
        if (json_parse(&la, line.data, line.len, NULL, &v, NULL) != 0) abort();
        arena_cleanup(&la);
        memcpy(prev, h1, sizeof prev);
        p += len + (nl ? 1 : 0);
    }
    struct buf out;
    buf_init(&out);
    json_write(&out, state, JSON_WRITE_CANONICAL, NULL);
    buf_cleanup(&out);
    buf_cleanup(&line);
    arena_cleanup(&a);
    return 0;
}
