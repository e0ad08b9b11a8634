"""agent_crash.py — agent runs while `keel serve` is killed with SIGKILL at
random instants and restarted.  Each run's agent step takes two model turns
(a tool call with an effect, then the answer) from the mock model server.

At the end: every run succeeded; every effect happened exactly once (the
helpdesk's notes, by each run's tag); each journal holds exactly one
model.response per turn; the model was asked at most once more than the
turns it answered per kill (a kill can only cut the one request in flight);
every journal verifies.

KEEL_AGENT_CRASH_RUNS (default 12) runs; KEEL_CRASH_SEED fixes the instants."""
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from keelenv import Checks, Home, MockModel, Server  # noqa: E402

RUNS = int(os.environ.get("KEEL_AGENT_CRASH_RUNS", "12"))
SEED = int(os.environ.get("KEEL_CRASH_SEED", str(int(time.time()))))

WORKFLOW = """\
name: noter
input: {type: object, required: [tag], properties: {tag: {type: string}}}
steps:
  - id: work
    agent: support/triage
    prompt: "Add the note ${input.tag} to T-1001, then say done."
    tools: [helpdesk/add_note]
    retry: {attempts: 5, backoff: {initial: 10ms, max: 50ms}}
"""

POLICY = """\
@id("notes")
permit(principal == Agent::"support/triage", action == Action::"call_tool",
       resource == Tool::"helpdesk/add_note");
"""


def script(tags):
    entries = [{"when": {"last_message_contains": "notes_count"}, "sticky": True,
                "content": "done", "delay_ms": 20}]
    for t in tags:
        entries.append({"when": {"last_message_contains": t}, "repeat": 20, "delay_ms": 20,
                        "tool_calls": [{"name": "helpdesk__add_note",
                                        "arguments": {"id": "T-1001", "body": t}}]})
    return entries


def main():
    c = Checks()
    rnd = random.Random(SEED)
    print("agent crash test: %d runs, seed %d" % (RUNS, SEED), flush=True)
    tags = ["agentcrash%04d" % i for i in range(RUNS)]
    mock = MockModel({"responses": script(tags)})
    home = Home(workflows={"noter.yaml": WORKFLOW}, policies=POLICY,
                agents="agents:\n  support/triage: {description: takes notes}\n",
                extra_yaml="""\
models:
  providers:
    mock: {kind: openai, base_url: %s/v1, api_key: {env: KEEL_TEST_MODEL_KEY}, retries: 0}
  models:
    small: {provider: mock, model: mock-small, context: 100000}
  routes:
    default: {model: small}
""" % mock.url)
    os.environ["KEEL_TEST_MODEL_KEY"] = "crash-test-key"
    runs = {}
    kills = 0
    i = 0
    while i < RUNS:
        # Every other daemon, and the last, without the suite's view
        # self-check, which turns the pipelining of transitions off (as in
        # crash.py).
        srv = Server(home, env=None if kills % 2 else {"KEEL_CHECK_VIEW": None})
        for _ in range(min(2, RUNS - i)):
            st, body = srv.api("POST", "/v1/runs", {"workflow": "noter", "input": {"tag": tags[i]}})
            c.check(st == 201, "start: %s %s" % (st, body))
            runs[body["id"]] = tags[i]
            i += 1
        time.sleep(rnd.uniform(0, 0.12))  # the random instant of the kill
        srv.kill9()
        kills += 1
    srv = Server(home, env={"KEEL_CHECK_VIEW": None})
    try:
        for rid in runs:
            run = srv.wait_status(rid, ("succeeded", "failed", "cancelled", "needs_reconcile"),
                                  timeout=120)
            c.check(run["status"] == "succeeded",
                    "run %s ended %s: %s" % (rid, run["status"], run.get("error")))
        hd = home.db("helpdesk")
        doubled = [t for t in runs.values()
                   if hd.execute("SELECT count(*) FROM notes WHERE body = ?", (t,)).fetchone()[0] != 1]
        c.check(not doubled, "effects missing or doubled: %s" % doubled[:5])
        responses = 0
        for rid in runs:
            st, evs = srv.api("GET", "/v1/runs/%s/events" % rid)
            turns = [e["payload"].get("turn") for e in evs["events"]
                     if e["kind"] == "model.response" and not e["payload"].get("error")]
            responses += len(turns)
            c.check(sorted(turns) == [1, 2], "run %s: one response per turn: %s" % (rid, turns))
            st, v = srv.api("GET", "/v1/runs/%s/verify" % rid)
            c.check(st == 200 and v["ok"], "journal of %s verifies" % rid)
        # A kill cuts at most one request per run in flight, and at most
        # `workers` (4, keel serve's default) runs are in flight at once.
        asked = len(mock.requests())
        c.check(responses <= asked <= responses + kills * 4,
                "model asked %d times for %d answers with %d kills" % (asked, responses, kills))
        print("agent crash test: %d runs, %d kills, %d model requests for %d answers"
              % (len(runs), kills, asked, responses))
    finally:
        c.check(srv.stop() == 0, "daemon stops cleanly")
        mock.stop()
    home.cleanup()
    return c.done()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
