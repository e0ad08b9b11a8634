"""crash.py — the crash test: runs of a 10-step workflow over the example
tool servers while `keel serve` is killed with SIGKILL at random instants and
restarted.  At the end every run has succeeded, no effect happened twice
(counted in the tools' own databases, by each run's tag), and every journal
verifies.

KEEL_CRASH_RUNS (default 20) runs; KEEL_CRASH_SEED fixes the random
instants.  bench/crash/run.sh runs the long mode (200 runs)."""
import os
import re
import random
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from keelenv import GATED, TEN_STEPS, Checks, Home, Server  # noqa: E402

RUNS = int(os.environ.get("KEEL_CRASH_RUNS", "20"))
SEED = int(os.environ.get("KEEL_CRASH_SEED", str(int(time.time()))))
BATCH = int(os.environ.get("KEEL_CRASH_BATCH", "2"))

# A tool server that crashes once, after committing its effect and before
# answering, exercises the retry-with-the-same-key path as well.  Its crash
# also fails the calls other runs had in flight on that server, so every
# step declares retries (as a workflow over flaky tools would).
RETRYING = re.sub(r"(  - id: s\d+\n)",
                  r"\1    retry: {attempts: 5, backoff: {initial: 10ms, max: 50ms}}\n", TEN_STEPS)

c = Checks()


def unfinished(srv):
    """Runs not yet ended right after a restart (approximate: the resumed
    runs are already moving)."""
    st, body = srv.api("GET", "/v1/runs?limit=1000")
    return sum(1 for r in body["runs"] if r["status"] in ("running", "waiting", "pending"))


def main():
    rnd = random.Random(SEED)
    print("crash test: %d runs, seed %d" % (RUNS, SEED), flush=True)
    home = Home(workflows={"ten.yaml": RETRYING, "gated.yaml": GATED},
                extra_tool_env={"helpdesk": {"KEEL_TOOL_CRASH_ON": "add_note:after"}})
    runs = {}  # run id -> tag
    kills = 0
    started = 0
    t0 = time.monotonic()
    interrupted = 0
    while started < RUNS:
        # Every other daemon runs without the suite's view self-check: the
        # check waits for each transition's events to be durable, which
        # turns off the pipelining of a run's next transition with its
        # last one's commit (docs/engine.md); both paths must survive
        # SIGKILL.
        srv = Server(home, env=None if kills % 2 else {"KEEL_CHECK_VIEW": None})
        interrupted += unfinished(srv)
        n = min(BATCH, RUNS - started)
        for _ in range(n):
            tag = "crash%05d" % started
            ticket = "T-%d" % (1001 + started % 4)
            st, body = srv.api("POST", "/v1/runs",
                               {"workflow": "ten", "input": {"ticket": ticket, "tag": tag}})
            c.check(st == 201, "start run: %s %s" % (st, body))
            runs[body["id"]] = tag
            started += 1
        # The random instant: anywhere in the next 0-400 ms of work.
        time.sleep(rnd.uniform(0, 0.25))
        srv.kill9()
        kills += 1
    # Final restart: resume everything and let it finish (pipelined).
    srv = Server(home, env={"KEEL_CHECK_VIEW": None})
    interrupted += unfinished(srv)
    try:
        deadline = time.monotonic() + 300
        pending = set(runs)
        while pending and time.monotonic() < deadline:
            for rid in list(pending):
                st, run = srv.api("GET", "/v1/runs/%s?wait=5" % rid)
                if run["status"] in ("succeeded", "failed", "cancelled", "needs_reconcile"):
                    pending.discard(rid)
                    c.check(run["status"] == "succeeded",
                            "run %s ended %s: %s" % (rid, run["status"], run.get("error")))
        c.check(not pending, "runs never finished: %s" % sorted(pending)[:5])
        hd = home.db("helpdesk")
        tr = home.db("tracker")
        dup = 0
        for rid, tag in runs.items():
            n4 = hd.execute("SELECT count(*) FROM notes WHERE body = ?", (tag + " s4",)).fetchone()[0]
            n8 = hd.execute("SELECT count(*) FROM notes WHERE body LIKE ?", (tag + " s8 %",)).fetchone()[0]
            ni = tr.execute("SELECT count(*) FROM issues WHERE title = ?", (tag + " issue",)).fetchone()[0]
            if (n4, n8, ni) != (1, 1, 1):
                dup += 1
                print("effects of %s (%s): notes s4=%d s8=%d issues=%d" % (rid, tag, n4, n8, ni))
        c.check(dup == 0, "%d runs with a missing or doubled effect" % dup)
        # The tools' calls tables: one row per idempotency key, and exactly one
        # effect per key (count > 1 only means the key was asked again).
        note_keys = hd.execute("SELECT count(*) FROM calls WHERE tool = 'add_note'").fetchone()[0]
        notes = hd.execute("SELECT count(*) FROM notes WHERE body LIKE 'crash%'").fetchone()[0]
        c.check(note_keys == notes == 2 * len(runs),
                "add_note: %d keys, %d notes, %d expected" % (note_keys, notes, 2 * len(runs)))
        issue_keys = tr.execute("SELECT count(*) FROM calls WHERE tool = 'create_issue'").fetchone()[0]
        issues = tr.execute("SELECT count(*) FROM issues WHERE title LIKE 'crash%'").fetchone()[0]
        c.check(issue_keys == issues == len(runs),
                "create_issue: %d keys, %d issues, %d expected" % (issue_keys, issues, len(runs)))
        asked_again = sum(r[0] for r in hd.execute("SELECT count(*) FROM calls WHERE count > 1"))
        bad = 0
        for rid in runs:
            st, v = srv.api("GET", "/v1/runs/%s/verify" % rid)
            if not (st == 200 and v["ok"]):
                bad += 1
        c.check(bad == 0, "%d journals failed verification" % bad)
        code, out, err = srv.cli("verify", next(iter(runs)))
        c.check(code == 0, "keel verify exits 0")
    finally:
        c.check(srv.stop() == 0, "daemon stops cleanly")
    print("crash test: %d runs, %d kills, %d unfinished runs resumed (summed over restarts), "
          "%d keys asked more than once, %.1f s"
          % (len(runs), kills, interrupted, asked_again, time.monotonic() - t0))
    test_reconcile()
    home.cleanup()
    return c.done()


def test_reconcile():
    """A call to a tool declared non-idempotent that started before a crash
    and has no result parks the run as needs_reconcile; a human answers:
    done (with the result), not done (the step fails), or cancels."""
    wf = ("name: slow\nidentity: support/triage\nsteps:\n  - id: note\n"
          "    tool: helpdesk/add_note\n    args: {id: T-1001, body: slow}\n")
    home = Home(workflows={"slow.yaml": wf},
                extra_tool_env={"helpdesk": {"KEEL_TOOL_DELAY_MS": "add_note:5000"}})
    cfg = os.path.join(home.dir, "keel.yaml")
    text = open(cfg).read().replace("    idempotent: true\n", "    idempotent: false\n")
    open(cfg, "w").write(text)

    def parked():
        """Starts a run, kills the daemon while its call is open, restarts."""
        srv = Server(home)
        st, body = srv.api("POST", "/v1/runs", {"workflow": "slow", "input": {}})
        rid = body["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st, evs = srv.api("GET", "/v1/runs/%s/events" % rid)
            if any(e["kind"] == "tool.call.started" for e in evs["events"]):
                break
            time.sleep(0.02)
        srv.kill9()
        srv = Server(home)
        run = srv.wait_status(rid, ("needs_reconcile", "succeeded", "failed"))
        c.check(run["status"] == "needs_reconcile", "open non-idempotent call parks the run: %s"
                % run["status"])
        st, evs = srv.api("GET", "/v1/runs/%s/events" % rid)
        c.check(evs["events"][-1]["kind"] == "run.needs_reconcile", "needs_reconcile journaled")
        return srv, rid

    def events(srv, rid):
        return srv.api("GET", "/v1/runs/%s/events" % rid)[1]["events"]

    # 1. The effect happened: the human's result becomes the call's result.
    srv, rid = parked()
    try:
        code, out, err = srv.cli("run", "reconcile", rid)
        c.check(code == 2, "reconcile needs --done or --not-done: %d" % code)
        code, out, err = srv.cli("run", "reconcile", rid, "--done", "--result",
                                 '{"note_id": 77, "checked": true}', "--comment", "saw the note")
        c.check(code == 0, "reconcile --done: %d %s" % (code, err))
        run = srv.wait_status(rid, ("succeeded", "failed"))
        c.check(run["status"] == "succeeded", "reconciled as done: the run succeeds: %s"
                % run.get("error"))
        evs = events(srv, rid)
        done = [e for e in evs if e["kind"] == "tool.call.completed"]
        c.check(len(done) == 1 and done[0]["actor"] == "admin" and
                done[0]["payload"].get("result") == {"note_id": 77, "checked": True},
                "the human's answer is journaled as the call's result, by them: %s" % done)
        c.check(sum(e["kind"] == "tool.call.started" for e in evs) == 1,
                "the tool was not called again")
        code, out, err = srv.cli("run", "reconcile", rid, "--not-done")
        c.check(code == 7, "reconciling a run that does not need it is a conflict: %d" % code)
        st, v = srv.api("GET", "/v1/runs/%s/verify" % rid)
        c.check(v["ok"], "journal verifies after the reconcile")
    finally:
        srv.kill9()
    # 2. It did not happen: the call is recorded as failed, the step fails.
    srv, rid = parked()
    try:
        st, r = srv.api("POST", "/v1/runs/%s/reconcile" % rid, {"decision": "maybe"})
        c.check(st == 400 and "not_done" in r["error"]["message"], "bad decision: %s %s" % (st, r))
        st, r = srv.api("POST", "/v1/runs/%s/reconcile" % rid,
                        {"decision": "not_done", "comment": "no note on T-1001"})
        c.check(st == 200, "reconcile not_done over the API: %s %s" % (st, r))
        run = srv.wait_status(rid, ("succeeded", "failed"))
        c.check(run["status"] == "failed" and "reconciled the call as not done" in
                (run.get("error") or ""), "not done: the step fails, saying who decided: %s"
                % run.get("error"))
    finally:
        srv.kill9()
    # 3. Or the human closes it by cancelling.
    srv, rid = parked()
    try:
        code, out, err = srv.cli("run", "cancel", rid)
        c.check(code == 0, "a human closes it by cancelling: %d %s" % (code, err))
        run = srv.wait_status(rid, ("cancelled",))
        c.check(run["status"] == "cancelled", "reconciled run cancelled")
        st, v = srv.api("GET", "/v1/runs/%s/verify" % rid)
        c.check(v["ok"], "journal verifies after the cancel")
    finally:
        srv.stop()
    home.cleanup()


if __name__ == "__main__":
    # SIGTERM (e.g. a ctest timeout) exits through atexit, which removes
    # the temporary homes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
