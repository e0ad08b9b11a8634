/*
 * approval.c — the checks and shapes of approval requests (see approval.h
 * for the state diagram).  The store makes each decision atomic; this file
 * decides whether a given identity may make it.
 *
 * Invariants: only a human whose groups include the request's group, or the
 * admin, decides; nothing is decided after its expiry; a denial carries a
 * reason; decided_by is the actor string journaled with approval.decided.
 */
#include "approval.h"

#include <stdio.h>
#include <string.h>

void approval_id_for(const char *run, const char *step, int visit, int attempt,
                     char out[APPROVAL_ID_MAX])
{
    char seed[3 * STORE_ID_MAX], hex[65];
    int n = snprintf(seed, sizeof seed, "%s/%s/%d/%d", run, step, visit, attempt);
    keel_sha256_hex(seed, (size_t)n, hex);
    snprintf(out, APPROVAL_ID_MAX, "apr_%.26s", hex);
}

/* identity.h's helpers live in keel_identity, which static link order puts
 * before this part; these two checks read the struct directly instead. */
static bool in_group(const struct identity *id, const char *group)
{
    for (int i = 0; i < id->ngroups; i++)
        if (!strcmp(id->groups[i], group)) return true;
    return false;
}

static void actor_string(const struct identity *id, char *out, size_t cap)
{
    if (id->kind == IDENTITY_ADMIN) snprintf(out, cap, "admin");
    else if (id->kind == IDENTITY_HUMAN) snprintf(out, cap, "human:%s", id->name);
    else if (id->kind == IDENTITY_AGENT) snprintf(out, cap, "agent:%s", id->name);
    else snprintf(out, cap, "system");
}

int approval_check_decider(const struct store_approval *ap, const struct identity *actor,
                           int64_t now_ms, struct keel_err *err)
{
    char who[IDENTITY_NAME_MAX + 16];
    actor_string(actor, who, sizeof who);
    if (ap->status != STORE_APPROVAL_PENDING)
        return keel_fail(err, KEEL_ESTATE, "approval %s was already %s by %s", ap->id,
                         store_approval_status_name(ap->status),
                         ap->decided_by ? ap->decided_by : "system");
    if (actor->kind != IDENTITY_ADMIN &&
        !(actor->kind == IDENTITY_HUMAN && in_group(actor, ap->group)))
        return keel_fail(err, KEEL_EDENIED, "%s is not in group '%s', which decides approval %s",
                         who, ap->group, ap->id);
    if (ap->expires_ms && now_ms >= ap->expires_ms)
        return keel_fail(err, KEEL_ESTATE, "approval %s expired; it can no longer be decided",
                         ap->id);
    return 0;
}

int approval_decide(struct store *s, const char *id, const struct identity *actor, bool approve,
                    const char *comment, char *run_id, size_t cap, struct keel_err *err)
{
    if (!approve && (!comment || !*comment))
        return keel_fail(err, KEEL_EINVAL, "a denial needs a reason");
    if (comment && strlen(comment) > APPROVAL_COMMENT_MAX)
        return keel_fail(err, KEEL_ELIMIT, "comment is longer than %d bytes", APPROVAL_COMMENT_MAX);
    size_t n = strlen(id);
    if (n == 0 || n >= STORE_ID_MAX)
        return keel_fail(err, KEEL_ENOENT, "no approval '%.64s'; `keel approvals` lists them", id);
    struct arena a;
    arena_init(&a);
    struct store_approval ap;
    int rc = store_approval_get(s, id, &a, &ap, err);
    if (rc == KEEL_ENOENT)
        rc = keel_fail(err, KEEL_ENOENT, "no approval '%s'; `keel approvals` lists them", id);
    if (!rc) rc = approval_check_decider(&ap, actor, keel_wall_ms(), err);
    if (!rc) {
        char who[IDENTITY_NAME_MAX + 16];
        actor_string(actor, who, sizeof who);
        rc = store_approval_decide(s, id, approve ? STORE_APPROVAL_APPROVED : STORE_APPROVAL_DENIED,
                                   who, comment && *comment ? comment : NULL, 0, err);
    }
    if (!rc) snprintf(run_id, cap, "%s", ap.run_id);
    arena_cleanup(&a);
    return rc;
}

struct json_value *approval_to_json(struct arena *a, const struct store_approval *ap)
{
    struct json_value *o = json_object(a);
    char t[32];
    json_object_setc(a, o, "id", json_cstr(a, ap->id));
    json_object_setc(a, o, "run", json_cstr(a, ap->run_id));
    json_object_setc(a, o, "step", json_cstr(a, ap->step_id));
    json_object_setc(a, o, "group", json_cstr(a, ap->group));
    json_object_setc(a, o, "status", json_cstr(a, store_approval_status_name(ap->status)));
    keel_format_time(ap->created_ms, t);
    json_object_setc(a, o, "created", json_cstr(a, t));
    if (ap->expires_ms) {
        keel_format_time(ap->expires_ms, t);
        json_object_setc(a, o, "expires", json_cstr(a, t));
    }
    struct json_value *req = NULL;
    if (ap->request && json_parse(a, ap->request, strlen(ap->request), NULL, &req, NULL) == 0)
        json_object_setc(a, o, "request", req);
    if (ap->decided_by) json_object_setc(a, o, "decided_by", json_cstr(a, ap->decided_by));
    if (ap->comment) json_object_setc(a, o, "comment", json_cstr(a, ap->comment));
    return o;
}
