"""usage.py — model usage and cost summed across runs (GET /v1/usage and
`keel usage`), end to end: the real `keel serve`, agent runs of two
workflows with two agents on two models against the mock model server,
each reply with scripted usage figures.

The expected sums are computed here from the script and the price table
(cost = (input * price_in + output * price_out) / 1e6), never read back
from Keel: per workflow, per agent, per model, with the window bounds
(since inclusive, until exclusive) placed on real event times, the
filters, an empty window, bad parameters and the CLI (text and --json)."""
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from keelenv import (ALICE_TOKEN, Checks, Home, MockModel, Server)  # noqa: E402

os.environ["KEEL_TEST_MODEL_KEY"] = "sk-usage-test-key"

PRICES = {"small": (1.0, 2.0), "big": (3.0, 15.0)}

AGENTS = """\
agents:
  support/triage: {description: classifies tickets}
  support/drafter: {description: drafts replies}
"""

# Two agents, two models in one workflow; one agent in the other.
TRIAGE = """\
name: triage
input: {type: object, required: [ticket], properties: {ticket: {type: string}}}
steps:
  - id: classify
    agent: support/triage
    model: small
    prompt: "Classify ticket ${input.ticket}"
  - id: draft
    agent: support/drafter
    model: big
    prompt: "Draft the reply to ticket ${input.ticket}"
"""

REPLY = """\
name: reply
input: {type: object}
steps:
  - id: write
    agent: support/drafter
    model: small
    prompt: "Write a short reply"
"""

# An agent whose tool call needs a lead's approval (the default policies:
# tracker/create_issue with "urgent" in the title): the run parks.
FILER = """\
name: filer
input: {type: object}
steps:
  - id: file
    agent: support/triage
    model: small
    prompt: "File an issue for the export bug"
    tools: [tracker/create_issue]
"""


def models_yaml(url):
    return """\
models:
  providers:
    mock: {kind: openai, base_url: %s/v1, api_key: {env: KEEL_TEST_MODEL_KEY}, retries: 0}
  models:
    small: {provider: mock, model: mock-small, context: 100000, price: {input: 1.0, output: 2.0}}
    big: {provider: mock, model: mock-big, context: 100000, price: {input: 3.0, output: 15.0}}
  routes:
    default: {model: small}
""" % url


c = Checks()
mock = MockModel()
home = Home(workflows={"triage.yaml": TRIAGE, "reply.yaml": REPLY, "filer.yaml": FILER},
            agents=AGENTS,
            extra_yaml=models_yaml(mock.url))
srv = Server(home)

# Every model call made, in order: dicts with workflow, run, agent, model,
# input, output, cost, time (ms, from the journal) and batch.
CALLS = []


def reply(text, tin, tout):
    return {"content": text, "usage": {"input_tokens": tin, "output_tokens": tout}}


def run_one(workflow, inp, script, batch, expect="succeeded"):
    """Plays script for one run; records its calls with their journal times.
    script: [(agent, model, input, output, reply-entry)]."""
    mock.script([s[4] for s in script])
    st, r = srv.api("POST", "/v1/runs", {"workflow": workflow, "input": inp})
    if st != 201:
        raise AssertionError("start %s: %s %s" % (workflow, st, r))
    run = srv.wait_status(r["id"], ["succeeded", "failed"])
    c.check(run["status"] == expect, "%s run %s: %s (%s)" % (workflow, r["id"], run["status"],
                                                            run.get("error")))
    st, evs = srv.api("GET", "/v1/runs/%s/events" % r["id"])
    resp = [e for e in evs["events"] if e["kind"] == "model.response"]
    c.check(len(resp) == len(script), "%s: %d model responses journaled (want %d)"
            % (workflow, len(resp), len(script)))
    for ev, (agent, model, tin, tout, _) in zip(resp, script):
        pin, pout = PRICES[model]
        cost = (tin * pin + tout * pout) / 1e6
        p = ev["payload"]
        # The journal is what the query sums; check it holds what was scripted.
        c.check(p.get("agent") == agent and p.get("model") == model and
                p.get("usage", {"input_tokens": 0, "output_tokens": 0}) ==
                {"input_tokens": tin, "output_tokens": tout} and
                abs(p.get("cost_usd", 0) - cost) < 1e-12,
                "journaled call matches the script and the price table: %s" % p)
        CALLS.append({"workflow": workflow, "run": r["id"], "agent": agent, "model": model,
                      "input_tokens": tin, "output_tokens": tout, "cost_usd": cost,
                      "time": ev["time"], "batch": batch})
    return r["id"]


# ---- batch A --------------------------------------------------------------
run_one("triage", {"ticket": "T-1"},
        [("support/triage", "small", 120, 15, reply("low", 120, 15)),
         ("support/drafter", "big", 300, 40, reply("Dear customer", 300, 40))], "A")
run_one("reply", {}, [("support/drafter", "small", 80, 9, reply("Thanks!", 80, 9))], "A")
# ---- batch B --------------------------------------------------------------
run_one("triage", {"ticket": "T-2"},
        [("support/triage", "small", 200, 25, reply("high", 200, 25)),
         ("support/drafter", "big", 500, 60, reply("We are on it", 500, 60))], "B")
run_one("reply", {}, [("support/drafter", "small", 60, 7, reply("Done.", 60, 7))], "B")
# A failed call (the provider's reply is not JSON) is a call, with no usage.
run_one("reply", {}, [("support/drafter", "small", 0, 0, {"status": 200, "body": "not json {"})],
        "B", expect="failed")

KEYS = ("runs", "model_calls", "input_tokens", "output_tokens", "cost_usd")


def expected(calls):
    """The answer for these calls: totals and the three breakdowns."""
    def sums(cs):
        return {"runs": len({x["run"] for x in cs}), "model_calls": len(cs),
                "input_tokens": sum(x["input_tokens"] for x in cs),
                "output_tokens": sum(x["output_tokens"] for x in cs),
                "cost_usd": sum(x["cost_usd"] for x in cs)}
    out = sums(calls)
    for group in ("workflow", "agent", "model"):
        names = sorted({x[group] for x in calls})
        out["by_" + group] = {n: sums([x for x in calls if x[group] == n]) for n in names}
    return out


def same(a, b):
    return abs(a - b) <= 1e-12 + 1e-9 * abs(b)


def matches(got, want, what):
    """Checks got (the API's object) against want (expected())."""
    ok = got is not None
    for k in KEYS:
        if ok and not (same(got.get(k, -1), want[k]) if k == "cost_usd" else
                       got.get(k) == want[k]):
            print("  %s: %s = %s, want %s" % (what, k, got.get(k), want[k]))
            ok = False
    for group in ("workflow", "agent", "model"):
        rows = (got or {}).get("by_" + group)
        w = want["by_" + group]
        if not isinstance(rows, list) or sorted(r.get(group) for r in rows) != sorted(w):
            print("  %s: by_%s names %s, want %s" % (what, group, rows, sorted(w)))
            ok = False
            continue
        costs = [r["cost_usd"] for r in rows]
        if costs != sorted(costs, reverse=True):
            print("  %s: by_%s not by cost descending: %s" % (what, group, costs))
            ok = False
        for r in rows:
            for k in KEYS:
                if not (same(r[k], w[r[group]][k]) if k == "cost_usd" else r[k] == w[r[group]][k]):
                    print("  %s: by_%s %s: %s = %s, want %s" % (what, group, r[group], k, r[k],
                                                              w[r[group]][k]))
                    ok = False
    c.check(ok, what)


def usage(token=None, **params):
    q = urllib.parse.urlencode(params)
    return srv.api("GET", "/v1/usage" + ("?" + q if q else ""), token=token)


# ---- everything --------------------------------------------------------------
st, u = usage()
c.check(st == 200, "GET /v1/usage: 200 (%s %s)" % (st, u))
matches(u, expected(CALLS), "all time: totals and every breakdown exact")
c.check(u.get("since") is None and isinstance(u.get("until"), str),
        "all time: since null, until now: %s %s" % (u.get("since"), u.get("until")))
c.check([r["agent"] for r in u.get("by_agent", [])] == ["support/drafter", "support/triage"],
        "the drafter (big model) spent the most: %s" % u.get("by_agent"))

# ---- the window, on real event times ------------------------------------------
a_calls = [x for x in CALLS if x["batch"] == "A"]
b_calls = [x for x in CALLS if x["batch"] == "B"]
t_b = b_calls[0]["time"]  # the first call of batch B: RFC 3339 with ms
c.check(all(x["time"] < t_b for x in a_calls), "batch A's calls all precede batch B's")
st, u = usage(since=t_b)
matches(u, expected([x for x in CALLS if x["time"] >= t_b]), "since (inclusive) = first B call")
c.check(u.get("since") == t_b, "since echoed: %s" % u.get("since"))
st, u = usage(until=t_b)
matches(u, expected([x for x in CALLS if x["time"] < t_b]), "until (exclusive) = first B call")
t_a = a_calls[1]["time"]
st, u = usage(since=t_a, until=t_b)
matches(u, expected([x for x in CALLS if t_a <= x["time"] < t_b]), "since and until together")
st, u = usage(since="-1h")
matches(u, expected(CALLS), "since=-1h: everything (all ran within the hour)")
st, u = usage(since="1h", until="now")
matches(u, expected(CALLS), "since=1h until=now: the same")

# ---- filters ------------------------------------------------------------------
st, u = usage(workflow="reply")
matches(u, expected([x for x in CALLS if x["workflow"] == "reply"]), "workflow=reply")
c.check(u.get("workflow") == "reply", "workflow filter echoed")
st, u = usage(agent="support/drafter")
matches(u, expected([x for x in CALLS if x["agent"] == "support/drafter"]),
        "agent=support/drafter across both workflows")
st, u = usage(agent="support/triage", workflow="triage", since=t_b)
matches(u, expected([x for x in CALLS if x["agent"] == "support/triage" and
                     x["workflow"] == "triage" and x["time"] >= t_b]),
        "agent + workflow + since combined")
st, u = usage(agent="support/triage", workflow="reply")
matches(u, expected([]), "a combination with no calls: zeros")

# ---- an empty window -----------------------------------------------------------
st, u = usage(since="2000-01-01", until="2000-01-02T00:00:00Z")
c.check(st == 200, "empty window: 200")
matches(u, expected([]), "empty window: zeros and empty lists")
c.check(u.get("since") == "2000-01-01T00:00:00.000Z" and u.get("until") ==
        "2000-01-02T00:00:00.000Z", "empty window: bounds echoed: %s %s"
        % (u.get("since"), u.get("until")))
st, u = usage(since="2000-01-01T01:00:00+01:00", until="2000-01-01T00:00:00.001Z")
c.check(st == 200 and u.get("since") == "2000-01-01T00:00:00.000Z",
        "a time with an offset is converted to UTC: %s" % u)
# The same with the '+' not percent-encoded (a query string decodes it as
# a space).
st, u = srv.api("GET", "/v1/usage?since=2000-01-01T01:00:00+01:00&until=2000-01-01T00:00:01Z")
c.check(st == 200 and u.get("since") == "2000-01-01T00:00:00.000Z",
        "an unencoded + in an offset is read as +: %s %s" % (st, u))

# ---- bad parameters ---------------------------------------------------------------
BAD = [
    ({"since": "yesterday"}, ["since", "RFC 3339", "-7d"]),
    ({"until": "2026-02-30"}, ["until", "RFC 3339"]),
    ({"since": t_b, "until": t_a}, ["not before until"]),
    ({"agent": "triage"}, ["agent", "team/name"]),
    ({"workflow": ""}, ["workflow", "empty"]),
    ({"since": "9" * 80}, ["too long"]),
]
for params, words in BAD:
    st, u = usage(**params)
    err = (u or {}).get("error", {})
    c.check(st == 400 and err.get("code") == "EINVAL" and
            all(w in err.get("message", "") for w in words),
            "bad %s: 400 EINVAL naming %s: %s %s" % (params, words, st, u))

# ---- access -----------------------------------------------------------------------
st, u = usage(token="no-such-token")
c.check(st == 401, "wrong token: 401 (%s)" % st)
st, u = usage(token=ALICE_TOKEN, workflow="triage")
matches(u if st == 200 else None, expected([x for x in CALLS if x["workflow"] == "triage"]),
        "an approver (read access) may ask")

# ---- a run parked for an approval: its calls count while it waits ---------
mock.script([dict(reply("", 410, 33), tool_calls=[{"name": "tracker__create_issue",
                                                    "arguments": {"title": "urgent: export"}}]),
             reply("Filed.", 520, 12)])
st, r = srv.api("POST", "/v1/runs", {"workflow": "filer", "input": {}})
filer = r.get("id")
run = srv.wait_status(filer, ["waiting", "succeeded", "failed"])
c.check(run["status"] == "waiting", "filer: parks for the approval (%s)" % run["status"])
st, evs = srv.api("GET", "/v1/runs/%s/events" % filer)
t_c = [e["time"] for e in evs["events"] if e["kind"] == "model.response"][0]
first = {"workflow": "filer", "run": filer, "agent": "support/triage", "model": "small",
         "input_tokens": 410, "output_tokens": 33, "cost_usd": (410 + 2 * 33) / 1e6,
         "time": t_c, "batch": "C"}
st, u = usage(since=t_c)
matches(u, expected([first]), "a waiting run's call counts while it waits")
st, aps = srv.api("GET", "/v1/approvals", token=ALICE_TOKEN)
ap = [a for a in aps.get("approvals", []) if a.get("run") == filer]
st, _ = srv.api("POST", "/v1/approvals/%s/decide" % (ap[0]["id"] if ap else "none"),
                {"decision": "approve", "comment": "ok"}, token=ALICE_TOKEN)
run = srv.wait_status(filer, ["succeeded", "failed"])
c.check(run["status"] == "succeeded", "filer: succeeds after the approval (%s)" % run.get("error"))
st, evs = srv.api("GET", "/v1/runs/%s/events" % filer)
t_d = [e["time"] for e in evs["events"] if e["kind"] == "model.response"][1]
second = dict(first, input_tokens=520, output_tokens=12, cost_usd=(520 + 2 * 12) / 1e6, time=t_d)
st, u = usage(since=t_c)
matches(u, expected([first, second]), "after the approval: both calls, one run")
st, u = usage(since=t_d)
matches(u, expected([second]), "a window after the park: only the second call of the run")
CALLS += [first, second]

# ---- the CLI -------------------------------------------------------------------
until = "2099-01-01T00:00:00Z"
code, out, err = srv.cli("usage", "--json", "--until", until)
st, api = usage(until=until)
c.check(code == 0 and json.loads(out) == api, "keel usage --json prints the API's object (%d %s)"
        % (code, err))
code, out, err = srv.cli("usage")
want = expected(CALLS)
lines = out.splitlines()
c.check(code == 0 and lines and lines[0].startswith("Model usage from the beginning to "),
        "keel usage: first line names the window: %r" % out[:200])
c.check(len(lines) > 1 and lines[1] == "%d runs, %d model calls, %d input + %d output tokens, $%.6f"
        % (want["runs"], want["model_calls"], want["input_tokens"], want["output_tokens"],
           want["cost_usd"]), "keel usage: totals line: %r" % (lines[1:2],))


def table(title):
    """The rows of one table of the text output: {name: [numbers...]}."""
    rows, inside = {}, False
    for line in lines:
        if line.startswith(title + " "):
            inside = True
            continue
        if inside:
            if not line.strip():
                break
            parts = line.split()
            rows[parts[0]] = parts[1:]
    return rows


for title, group in (("WORKFLOW", "workflow"), ("AGENT", "agent"), ("MODEL", "model")):
    rows = table(title)
    w = want["by_" + group]
    c.check(sorted(rows) == sorted(w) and all(
        rows[n] == [str(w[n]["runs"]), str(w[n]["model_calls"]), str(w[n]["input_tokens"]),
                    str(w[n]["output_tokens"]), "%.6f" % w[n]["cost_usd"]] for n in w),
        "keel usage: the %s table: %s" % (title, rows))
code, out, err = srv.cli("usage", "--workflow", "reply", "--agent", "support/drafter",
                         "--since", "2000-01-01", "--until", "2000-01-02")
c.check(code == 0 and "(workflow reply, agent support/drafter)" in out and
        "No model calls in this window." in out and "WORKFLOW" not in out,
        "keel usage: an empty window says so: %r" % out)
code, out, err = srv.cli("usage", "--since", "bogus")
c.check(code == 2 and "--since" in err and "RFC 3339" in err,
        "keel usage --since bogus: exit 2 with the forms: %d %r" % (code, err))
code, out, err = srv.cli("usage", "--until")
c.check(code == 2 and "needs a value" in err, "keel usage --until without a value: exit 2")
code, out, err = srv.cli("usage", "--agent", "triage")
c.check(code == 3 and "team/name" in err, "keel usage --agent triage: exit 3, the API's message: "
        "%d %r" % (code, err))
code, out, err = srv.cli("usage", "extra")
c.check(code == 2, "keel usage with an extra argument: exit 2")
code, out, err = srv.cli("usage", "--help")
c.check(code == 0 and "--since" in out, "keel usage --help")
code, out, err = srv.cli("usage", env={"KEEL_SERVER": "http://127.0.0.1:1"})
c.check(code == 6, "keel usage without a daemon: exit 6 (%d)" % code)

c.check(srv.stop() == 0, "the daemon stops cleanly (no sanitizer report)")
mock.stop()
sys.exit(c.done())
