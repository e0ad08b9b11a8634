/*
 * reconcile.c — a human closes the question a needs_reconcile run asks.
 *
 * A run parks as needs_reconcile when a call to a tool that is not declared
 * idempotent started and no result was recorded (a crash in between): Keel
 * cannot know whether the effect happened, so it will not call again.  A
 * person checks the tool's side and answers:
 *
 *   done      the effect happened; its result (if given) is recorded as the
 *             call's result and the run goes on from there;
 *   not_done  it did not happen; the call is recorded as failed, so the step's
 *             retry policy decides (a retry calls the tool again), or, in an
 *             agent step, the model is told the call failed.
 *
 * Either way the answer is journaled by the human who gave it — run.resumed
 * {reason: "reconcile", decision, by, comment} then tool.call.completed for
 * the open call with `reconciled_by` — before the run is made runnable, so
 * the fold (fold.c: run.resumed clears the needs_reconcile end) and resume
 * see it like any other completed call.  Cancelling stays possible too.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

struct open_call {
    struct arena *a;
    const char *step, *call_id, *tool;
};

/* The last run.needs_reconcile names the open call. */
static int find_open(void *ctx, const struct journal_event *ev)
{
    struct open_call *oc = ctx;
    if (strcmp(ev->kind, "run.needs_reconcile") != 0) return 0;
    struct json_value *p = NULL;
    if (json_parse(oc->a, ev->payload, ev->payload_len, NULL, &p, NULL) != 0) return 0;
    oc->step = json_get_str(p, "step", NULL);
    oc->call_id = json_get_str(p, "call_id", NULL);
    oc->tool = json_get_str(p, "tool", NULL);
    return 0;
}

int engine_run_reconcile(struct engine *e, const char *run_id, const struct identity *actor,
                         bool done, const struct json_value *result, const char *comment,
                         struct keel_err *err)
{
    struct arena a;
    arena_init(&a);
    struct store_run r;
    int rc = store_run_get(e->store, run_id, &a, &r, err);
    if (rc == KEEL_ENOENT) keel_fail(err, KEEL_ENOENT, "no run '%s'; `keel run list` shows the runs", run_id);
    if (!rc && r.status != STORE_RUN_NEEDS_RECONCILE)
        rc = keel_fail(err, KEEL_ESTATE,
                       "run %s is %s; only a run that needs reconciliation can be reconciled",
                       run_id, store_run_status_name(r.status));
    struct open_call oc = {.a = &a};
    if (!rc) rc = journal_read(e->store, run_id, 1, find_open, &oc, err);
    if (!rc && (!oc.step || !oc.call_id))
        rc = keel_fail(err, KEEL_ECORRUPT, "run %s: the journal names no open call to reconcile",
                       run_id);
    if (!rc && !done && result)
        rc = keel_fail(err, KEEL_EINVAL,
                       "a result goes with decision \"done\" only (the effect happened)");
    char who[IDENTITY_NAME_MAX + 16];
    identity_actor(actor, who, sizeof who);
    if (!rc) {
        struct json_value *p = json_object(&a);
        json_object_setc(&a, p, "reason", json_cstr(&a, "reconcile"));
        json_object_setc(&a, p, "decision", json_cstr(&a, done ? "done" : "not_done"));
        json_object_setc(&a, p, "by", json_cstr(&a, who));
        json_object_setc(&a, p, "call_id", json_cstr(&a, oc.call_id));
        if (comment && *comment) json_object_setc(&a, p, "comment", json_cstr(&a, comment));
        rc = journal_append(e->store, run_id, "run.resumed", who, p, NULL, err);
    }
    if (!rc) {
        struct json_value *p = json_object(&a);
        json_object_setc(&a, p, "step", json_cstr(&a, oc.step));
        json_object_setc(&a, p, "call_id", json_cstr(&a, oc.call_id));
        if (oc.tool) json_object_setc(&a, p, "tool", json_cstr(&a, oc.tool));
        json_object_setc(&a, p, "reconciled_by", json_cstr(&a, who));
        if (done) {
            json_object_setc(&a, p, "result",
                             result ? (struct json_value *)result : json_object(&a));
        } else {
            struct json_value *er = json_object(&a);
            json_object_setc(&a, er, "code", json_cstr(&a, keel_strerror(KEEL_EIO)));
            json_object_setc(&a, er, "message",
                             json_cstr(&a, arena_printf(&a,
                                                        "%s reconciled the call as not done%s%s",
                                                        who, comment && *comment ? ": " : "",
                                                        comment && *comment ? comment : "")));
            json_object_setc(&a, er, "tool_error", json_bool(&a, true));
            json_object_setc(&a, p, "error", er);
        }
        rc = journal_append(e->store, run_id, "tool.call.completed", who, p, NULL, err);
    }
    if (!rc)
        rc = store_run_set_status(e->store, run_id, STORE_RUN_MASK(STORE_RUN_NEEDS_RECONCILE),
                                  STORE_RUN_RUNNING, "reconciled", 0, err);
    arena_cleanup(&a);
    if (!rc) engine_enqueue(e, run_id);
    return rc;
}
