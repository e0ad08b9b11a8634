/*
 * explain.c — engine_run_explain: gathers what the explain report is built
 * from (the run row, the run's pinned workflow version, every event of its
 * journal) and hands it to src/obs/ (obs_explain).  The report's format is
 * documented in docs/explain.md.
 *
 * The workflow version is looked up by the (name, hash) the run is pinned
 * to; when it cannot be loaded (a store that lost the version) the report is
 * still built, without switch re-evaluation, and says so in
 * run.workflow_version_available.
 */
#include "internal.h"

#include "../obs/obs.h"

int engine_run_explain(struct engine *e, const char *run_id, uint32_t from, uint32_t limit,
                       struct arena *a, struct json_value **out, struct keel_err *err)
{
    struct json_value *run;
    int rc = engine_run_show(e, run_id, a, &run, err); /* KEEL_ENOENT for an unknown run */
    if (rc) return rc;
    struct store_run row;
    rc = store_run_get(e->store, run_id, a, &row, err);
    if (rc) return rc;
    json_object_setc(a, run, "workflow_hash", json_cstr(a, row.workflow_hash));
    struct json_value *events;
    rc = engine_run_events(e, run_id, 1, 0, a, &events, err);
    if (rc) return rc;
    struct engine_workflow *ew = NULL;
    struct keel_err werr;
    keel_err_clear(&werr);
    if (engine_workflow_get(e, row.workflow, row.workflow_hash, &ew, &werr) != 0) {
        keel_log(KEEL_LOG_WARN, "explain: run %s: workflow %s version %.12s not available: %s",
                 run_id, row.workflow, row.workflow_hash, werr.msg);
        ew = NULL;
    }
    rc = obs_explain(run, events, ew ? ew->wf : NULL, a, out, err);
    if (!rc) obs_explain_page(*out, from, limit, a);
    return rc;
}
