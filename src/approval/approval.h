/*
 * approval.h — human approvals: the rules of a request's life (who may
 * decide, until when, what it is bound to) over the store's approvals table.
 * The engine creates requests when a workflow's approval step or a policy's
 * @approval("group") asks for one, and journals the decisions; this part
 * owns the checks and the shapes, so the API, the engine and the tests agree.
 *
 *   pending ──approval_decide (human of the group, or admin)──► approved
 *      │                                                    └─► denied
 *      └──expiry (engine timer) / run ended──► expired
 *
 * A decision is final; deciding again is KEEL_ESTATE naming who decided.
 */
#ifndef KEEL_APPROVAL_H
#define KEEL_APPROVAL_H

#include "../identity/identity.h"
#include "../json/json.h"
#include "../store/store.h"

#define APPROVAL_COMMENT_MAX 4096
#define APPROVAL_ID_MAX 40

/* The id of the approval asked at (run, step, visit, attempt): "apr_" + 26
 * hex chars of sha256("<run>/<step>/<visit>/<attempt>").  Deterministic, so
 * a request re-made after a crash finds the row made before it; a step
 * visited again (a switch loop) asks anew. */
void approval_id_for(const char *run, const char *step, int visit, int attempt,
                     char out[APPROVAL_ID_MAX]);

/* May actor decide ap at now_ms?  0, or KEEL_ESTATE (decided, expired),
 * KEEL_EDENIED (not a human of the group, nor the admin) with a message
 * saying why. */
int approval_check_decider(const struct store_approval *ap, const struct identity *actor,
                           int64_t now_ms, struct keel_err *err);

/* Decides approval id as actor (checks as above, then an atomic
 * pending -> approved|denied in the store).  comment may be NULL (a denial
 * needs one: KEEL_EINVAL).  The decided approval's run id is copied to
 * run_id (cap bytes) so the caller can wake the run. */
int approval_decide(struct store *s, const char *id, const struct identity *actor, bool approve,
                    const char *comment, char *run_id, size_t cap, struct keel_err *err);

/* ap as the API shows it: {id, run, step, group, status, created, expires?,
 * request, decided_by?, comment?}, in arena a. */
struct json_value *approval_to_json(struct arena *a, const struct store_approval *ap);

#endif
