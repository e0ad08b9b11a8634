/*
 * obs.h — observability: the explain report of a run (docs/explain.md).
 *
 * `keel explain RUN` and GET /v1/runs/{id}/explain answer, from a run's
 * journal alone (plus its run row and pinned workflow version), the four
 * questions of ARCHITECTURE.md: which identity (and credential) made each
 * call, what state each step read and wrote, which tool result caused a
 * branch, and what every policy decision, approval, token and dollar was.
 *
 * obs_explain builds the report as one JSON value (summary first, then the
 * timeline and the provenance of every state key); obs_explain_text renders
 * it for a terminal.  Nothing here reads the environment or configuration:
 * the report holds only what the journal holds, and journal payloads are
 * secret-free by construction.
 */
#ifndef KEEL_OBS_H
#define KEEL_OBS_H

#include "../json/json.h"
#include "../util/util.h"

struct workflow;

/* Limits of the report (the journal itself is not limited here). */
#define OBS_VALUE_MAX 8192     /* bytes of compact JSON kept per value; larger
                                  values become {truncated, bytes, preview}   */
#define OBS_PREVIEW_MAX 160    /* bytes of a value or text preview            */
#define OBS_CHAIN_MAX 6        /* provenance levels embedded under a switch   */
#define OBS_ATTENTION_MAX 200  /* attention items kept (the rest are counted) */
#define OBS_SUMMARY_LINES 24   /* lines of the text summary, at most          */

/* Builds the explain report of one run.
 *   run    the engine_run_show object ({id, workflow, status, input, ...};
 *          workflow_hash, if present, is used; else run.started's);
 *   events the journal as engine_run_events returns it:
 *          [{seq, time, kind, actor, payload, prev_hash, hash}], in order;
 *   wf     the run's pinned workflow version, or NULL when unavailable (then
 *          step kinds are inferred, templates and conditions are not read,
 *          and switches report the recorded next step only).
 * All three are borrowed.  *out is a new object in arena a; events may be
 * malformed (missing fields, unknown kinds): they are reported, never fatal.
 * Fails only with KEEL_EINVAL when events is not an array. */
int obs_explain(const struct json_value *run, const struct json_value *events,
                const struct workflow *wf, struct arena *a, struct json_value **out,
                struct keel_err *err);

/* Pages of the timeline.  A run that loops for weeks has tens of thousands
 * of step visits; the report of all of them outgrows a response.  This
 * keeps, in report (an obs_explain value, changed in place), the visits
 * [from, from + limit) of the timeline and the switches evaluated within
 * them, and records timeline_total, timeline_from and, when visits remain,
 * timeline_next (the from of the next page).  The summary, state and
 * provenance stay whole: they are bounded by the run, not its length. */
#define OBS_PAGE_DEFAULT 1000  /* visits in a page when none is asked for   */
#define OBS_PAGE_MAX 100000    /* visits in a page, at most                 */
void obs_explain_page(struct json_value *report, uint32_t from, uint32_t limit,
                      struct arena *a);

/* Appends the terminal rendering of report (an obs_explain value) to out:
 * the summary first, at most OBS_SUMMARY_LINES lines, then the timeline, one
 * block per step visit.  color adds ANSI colours.  Tolerates any JSON value
 * (missing fields are skipped). */
void obs_explain_text(const struct json_value *report, struct buf *out, bool color);

/* The same for a terminal of `width` columns (0: unknown): the summary then
 * fits OBS_SUMMARY_LINES rows of it, counting wrapped lines (each summary
 * line wraps to at most two rows and is cut after that). */
void obs_explain_text_width(const struct json_value *report, struct buf *out, bool color,
                            int width);

/* The input/state/result paths a Cedar condition reads ("state.a.b",
 * "input.x", "result.y[0]"), outside string literals, each once, in order of
 * appearance, as an array of strings in arena a.  Exposed for tests. */
struct json_value *obs_condition_paths(const char *condition, struct arena *a);

#endif
