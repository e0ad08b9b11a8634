"""agents.py — the agent step end to end: the real `keel serve`, the real
example tool servers, and the mock model server over real HTTP playing
scripted replies while recording exactly what the model was sent.

Each scenario replaces the mock's script, starts a run, waits for it to end
or park, and checks the journal, the tools' databases and the mock's
records.  A canary API key is used throughout; at the end the data folder,
the daemon's log, `keel events` and `keel explain` are searched for it."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
from keelenv import (ALICE_TOKEN, Checks, Home, MockModel, Server)  # noqa: E402

CANARY = "sk-keel-canary-7d1f0b6a9c2e44c1b35a"
os.environ["KEEL_TEST_MODEL_KEY"] = CANARY

POLICIES = """\
@id("support-reads")
permit(principal in Team::"support", action == Action::"call_tool", resource)
when { resource in ToolServer::"helpdesk" || resource in ToolServer::"crm" ||
       resource == Tool::"tracker/search_issues" };

@id("triage-files-issues-with-a-lead")
@approval("support-leads")
@approval_timeout("2h")
permit(principal == Agent::"support/triage", action == Action::"call_tool",
       resource == Tool::"tracker/create_issue");

@id("drafter-never-files-issues")
forbid(principal == Agent::"support/drafter", action == Action::"call_tool",
       resource == Tool::"tracker/create_issue");
"""

AGENTS = """\
agents:
  support/triage:
    description: classifies tickets
    instructions: "You are the triage agent. Classify support tickets."
  support/drafter:
    description: drafts customer replies
    instructions: "You are the drafting agent. Write the customer reply."
  support/frugal:
    description: an agent on a budget
    budget: {tokens: 1000, approvers: support-leads}
"""

OUTPUT = """{type: object, required: [severity, needs_engineering],
             properties: {severity: {enum: [low, medium, high]},
                          needs_engineering: {type: boolean}}}"""

TRIAGE = """\
name: triage
input: {type: object, required: [ticket_id], properties: {ticket_id: {type: string}}}
identity: support/triage
state:
  ticket: {reducer: replace}
  triage: {reducer: replace}
steps:
  - id: fetch
    tool: helpdesk/get_ticket
    args: {id: "${input.ticket_id}"}
    save: ticket
  - id: triage
    agent: support/triage
    prompt: "Classify ticket ${state.ticket.id}: ${state.ticket.subject}"
    tools: [crm/lookup_account, tracker/search_issues, tracker/create_issue]
    handoff: [support/drafter]
    output: %s
    save: triage
  - id: route
    switch:
      - if: 'state.triage.needs_engineering'
        goto: escalate
    default: normal
  - id: escalate
    succeed: {output: escalated}
  - id: normal
    succeed: {output: normal}
""" % OUTPUT

DRAFT = """\
name: draft
input: {type: object}
identity: support/drafter
steps:
  - id: draft
    agent: support/drafter
    prompt: "Draft a reply to ticket T-1001"
    tools: [tracker/create_issue, helpdesk/get_ticket]
"""

FRUGAL = """\
name: frugal
input: {type: object}
steps:
  - id: think
    agent: support/frugal
    prompt: "Think about T-1002"
    tools: [helpdesk/get_ticket]
"""

SMALLCTX = """\
name: smallctx
input: {type: object}
steps:
  - id: dig
    agent: support/triage
    model: tiny
    prompt: "Investigate T-1001 and A-100"
    tools: [helpdesk/get_ticket, crm/lookup_account]
"""

CLAUDE = """\
name: claude
input: {type: object}
steps:
  - id: ask
    agent: support/triage
    model: claude
    prompt: "Look up account A-100"
    tools: [crm/lookup_account]
    output: {type: object, required: [tier]}
"""

HANDOFF = """\
name: handoff
input: {type: object}
steps:
  - id: triage
    agent: support/triage
    prompt: "Handle ticket T-1001"
    tools: [crm/lookup_account]
    handoff: [support/drafter]
"""

UNKNOWN_MODEL = """\
name: unknown-model
input: {type: object}
steps:
  - id: ask
    agent: support/triage
    model: gpt-nonexistent
    prompt: "hello"
"""

OFFERS_MISSING = """\
name: missing-tool
input: {type: object}
steps:
  - id: ask
    agent: support/triage
    prompt: "hello"
    tools: [crm/no_such_tool]
"""


def models_yaml(mock_url):
    return """\
models:
  providers:
    mock:
      kind: openai
      base_url: %(u)s/v1
      api_key: {env: KEEL_TEST_MODEL_KEY}
      timeout: 20s
      retries: 2
      max_retry_wait: 5s
    mock-anthropic:
      kind: anthropic
      base_url: %(u)s/v1
      api_key: {env: KEEL_TEST_MODEL_KEY}
  models:
    small: {provider: mock, model: mock-small, context: 100000, price: {input: 1.0, output: 2.0}}
    tiny: {provider: mock, model: mock-tiny, context: 400, price: {input: 1.0, output: 2.0}}
    claude: {provider: mock-anthropic, model: mock-claude, context: 100000, max_output: 512,
             price: {input: 3.0, output: 15.0}}
  routes:
    default: {model: small}
""" % {"u": mock_url}


def call(name, args, content=None):
    e = {"tool_calls": [{"name": name, "arguments": args}]}
    if content:
        e["content"] = content
    return e


def answer(value):
    return {"json": value, "usage": {"input_tokens": 100, "output_tokens": 10}}


c = Checks()
mock = MockModel()
home = Home(workflows={"triage.yaml": TRIAGE, "draft.yaml": DRAFT, "frugal.yaml": FRUGAL,
                       "smallctx.yaml": SMALLCTX, "claude.yaml": CLAUDE,
                       "handoff.yaml": HANDOFF, "missing.yaml": OFFERS_MISSING},
            policies=POLICIES, agents=AGENTS, extra_yaml=models_yaml(mock.url))
srv = Server(home)


def events(run_id):
    st, evs = srv.api("GET", "/v1/runs/%s/events" % run_id)
    return evs["events"]


def kinds(evs, kind):
    return [e for e in evs if e["kind"] == kind]


def start(workflow, inp):
    st, r = srv.api("POST", "/v1/runs", {"workflow": workflow, "input": inp})
    if st not in (200, 201):
        raise AssertionError("start %s: %s %s" % (workflow, st, r))
    return r["id"]


def tool_effects(srv_name, tool):
    db = home.db(srv_name)
    try:
        return db.execute("SELECT COALESCE(SUM(count), 0) FROM calls WHERE tool = ?",
                          (tool,)).fetchone()[0]
    finally:
        db.close()


def approve_pending(run_id, comment="ok"):
    st, aps = srv.api("GET", "/v1/approvals", token=ALICE_TOKEN)
    aps = aps.get("approvals", [])
    mine = [a for a in aps if a.get("run") == run_id and a.get("status") == "pending"]
    if not mine:
        raise AssertionError("no pending approval for %s: %s" % (run_id, aps))
    st, _ = srv.api("POST", "/v1/approvals/%s/decide" % mine[0]["id"],
                    {"decision": "approve", "comment": comment}, token=ALICE_TOKEN)
    if st != 200:
        raise AssertionError("approve: %s %s" % (st, _))
    return mine[0]


def last_messages(rec):
    return rec["body"].get("messages", [])


# ---- 1. a denied tool call never reaches the tool; the model sees why ----
mock.script([call("tracker__create_issue", {"title": "draft follow-up"}),
             {"content": "Dear customer, we are on it."}])
run = start("draft", {})
r = srv.wait_status(run, ["succeeded", "failed"])
evs = events(run)
c.check(r["status"] == "succeeded", "deny: run succeeded (%s)" % r.get("error"))
refused = kinds(evs, "tool.call.refused")
c.check(len(refused) == 1 and refused[0]["payload"]["reason"] == "denied",
        "deny: one tool.call.refused with reason denied: %s" % refused)
c.check(any(d["payload"].get("decision") == "deny" and
            "drafter-never-files-issues" in d["payload"].get("policies", [])
            for d in kinds(evs, "policy.decision")),
        "deny: the policy decision names the forbid policy")
c.check(not kinds(evs, "tool.call.started"), "deny: no tool call started")
c.check(tool_effects("tracker", "create_issue") == 0, "deny: the tracker saw no create_issue")
reqs = mock.requests()
c.check(len(reqs) == 2, "deny: two model requests (got %d)" % len(reqs))
if len(reqs) == 2:
    tool_msgs = [m for m in last_messages(reqs[1]) if m.get("role") == "tool"]
    c.check(len(tool_msgs) == 1 and "denied" in tool_msgs[0].get("content", "") and
            "drafter-never-files-issues" in tool_msgs[0].get("content", ""),
            "deny: the model received the structured refusal: %s" % tool_msgs)
    c.check(reqs[1]["body"]["messages"][0]["content"].startswith("You are the drafting agent"),
            "deny: the system prompt is the agent's instructions")
    c.check(reqs[0].get("authorization") == "Bearer " + CANARY,
            "the API key reached the provider in its auth header")
c.check(r.get("state") is not None, "deny: run shows state")

# ---- 2. an approval-gated call executes only after approval, exactly ----
title = "urgent: CSV export fails (T-1001)"
mock.script([call("tracker__create_issue", {"title": title, "labels": ["support"]}),
             answer({"severity": "high", "needs_engineering": True})])
run = start("triage", {"ticket_id": "T-1001"})
r = srv.wait_status(run, ["waiting", "succeeded", "failed"])
c.check(r["status"] == "waiting", "approval: run parks (%s)" % r["status"])
c.check(tool_effects("tracker", "create_issue") == 0, "approval: nothing executed before approval")
c.check(len(mock.requests()) == 1, "approval: one model request while parked")
# A crash while parked between two turns: the finished turn is not re-asked.
srv.kill9()
srv = Server(home)
import datetime  # noqa: E402


def ts(t):
    return datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()


st, aps = srv.api("GET", "/v1/approvals", token=ALICE_TOKEN)
mine = [x for x in aps["approvals"] if x["run"] == run]
c.check(len(mine) == 1 and mine[0].get("expires") and
        abs(ts(mine[0]["expires"]) - ts(mine[0]["created"]) - 7200) < 60,
        "approval: @approval_timeout(\"2h\") sets the deadline: %s" % mine)
ap = approve_pending(run, "file it")
c.check(ap["request"].get("args") == {"title": title, "labels": ["support"]} and
        ap["request"].get("tool") == "tracker/create_issue" and
        ap["request"].get("agent") == "support/triage",
        "approval: the approver sees the agent, the tool and the exact arguments: %s"
        % ap.get("request"))
r = srv.wait_status(run, ["succeeded", "failed"])
evs = events(run)
c.check(r["status"] == "succeeded", "approval: run succeeded after approval (%s)" % r.get("error"))
started = [e for e in kinds(evs, "tool.call.started") if e["payload"]["step"] == "triage"]
c.check(len(started) == 1 and started[0]["payload"]["args"] == {"title": title,
                                                                  "labels": ["support"]},
        "approval: executed with exactly the approved arguments: %s" % started)
req_ev = kinds(evs, "approval.requested")
c.check(len(req_ev) == 1 and req_ev[0]["payload"].get("tool") == "tracker/create_issue" and
        len(req_ev[0]["payload"].get("args_digest", "")) == 64,
        "approval: bound to the tool and the arguments' digest")
c.check(tool_effects("tracker", "create_issue") == 1, "approval: exactly one effect")
c.check(len(mock.requests()) == 2,
        "crash between turns: 2 model requests in all, none repeated (got %d)"
        % len(mock.requests()))
c.check(r.get("state", {}).get("triage") == {"severity": "high", "needs_engineering": True},
        "approval: the agent's answer saved to state.triage")
resp = kinds(evs, "model.response")
c.check(all(e["payload"].get("usage", {}).get("input_tokens", 0) > 0 for e in resp) and
        abs(sum(e["payload"].get("cost_usd", 0) for e in resp) -
            sum((e["payload"]["usage"]["input_tokens"] * 1.0 +
                 e["payload"]["usage"]["output_tokens"] * 2.0) / 1e6 for e in resp)) < 1e-9,
        "usage and cost journaled per model call from the price table")

# A bad @approval_timeout refuses the policy set; the old one stays.
bad_policy = os.path.join(home.policies, "bad.cedar")
with open(bad_policy, "w") as f:
    f.write('@id("x")\n@approval("support-leads")\n@approval_timeout("soon")\n'
            'permit(principal, action, resource);\n')
st, r = srv.api("POST", "/v1/policy/reload", {})
c.check(st == 400 and "approval_timeout" in json.dumps(r), "bad @approval_timeout refused: %s %s"
        % (st, r))
os.unlink(bad_policy)

# ---- 3. a structured output that fails its schema: retried, then fails ----
mock.script([{"content": "I think this is a low severity ticket."},
             answer({"severity": "urgent", "needs_engineering": False}),
             answer({"severity": "catastrophic"})])
run = start("triage", {"ticket_id": "T-1002"})
r = srv.wait_status(run, ["succeeded", "failed"])
evs = events(run)
c.check(r["status"] == "failed", "schema: run failed (%s)" % r["status"])
c.check(len(kinds(evs, "agent.output.rejected")) == 2, "schema: two rejections journaled")
c.check("3 times" in (r.get("error") or ""), "schema: clear failure: %s" % r.get("error"))
reqs = mock.requests()
c.check(len(reqs) == 3, "schema: three model requests (got %d)" % len(reqs))
if len(reqs) == 3:
    fb = last_messages(reqs[1])[-1]
    c.check(fb.get("role") == "user" and "not valid JSON" in fb.get("content", ""),
            "schema: the model was told why: %s" % fb)
    c.check(reqs[0]["body"].get("response_format", {}).get("type") == "json_schema",
            "schema: structured output requested from the provider")

# ---- 4. budget exhaustion parks the run; approval extends it -------------
mock.script([dict(call("helpdesk__get_ticket", {"id": "T-1002"}),
                  usage={"input_tokens": 900, "output_tokens": 100}),
             {"content": "done thinking", "usage": {"input_tokens": 50, "output_tokens": 5}}])
run = start("frugal", {})
r = srv.wait_status(run, ["waiting", "succeeded", "failed"])
evs = events(run)
c.check(r["status"] == "waiting", "budget: run parks (%s %s)" % (r["status"], r.get("error")))
ex = kinds(evs, "budget.exceeded")
c.check(len(ex) == 1 and ex[0]["payload"]["scope"] == "agent" and
        ex[0]["payload"]["used"]["tokens"] == 1000,
        "budget: budget.exceeded journaled with what was used: %s" % ex)
c.check(len(mock.requests()) == 1, "budget: no model call past the budget")
mt = mock.requests()[0]["body"].get("max_tokens") or \
    mock.requests()[0]["body"].get("max_completion_tokens")
c.check(isinstance(mt, int) and 16 <= mt < 1000,
        "budget: the call's output is capped to what the budget leaves: %s" % mt)
req0 = kinds(evs, "model.request")
c.check(req0 and req0[0]["payload"].get("max_output_tokens") == mt,
        "budget: the cap is journaled with the request (a re-sent request keeps it)")
approve_pending(run, "extend")
r = srv.wait_status(run, ["succeeded", "failed"])
evs = events(run)
c.check(r["status"] == "succeeded", "budget: run succeeded after the extension (%s)" % r.get("error"))
c.check(len(kinds(evs, "budget.extended")) == 1, "budget: budget.extended journaled")
c.check(len(mock.requests()) == 2, "budget: the second call made after approval")

# ---- 5. a 429 with Retry-After is honoured --------------------------------
mock.script([{"status": 429, "retry_after": 1, "error": "slow down"},
             {"content": "ok after waiting"}])
run = start("draft", {})
r = srv.wait_status(run, ["succeeded", "failed"])
reqs = mock.requests()
c.check(r["status"] == "succeeded", "429: run succeeded (%s)" % r.get("error"))
c.check(len(reqs) == 2 and reqs[1]["time_ms"] - reqs[0]["time_ms"] >= 1000,
        "429: the retry waited Retry-After (%s)" % [q["time_ms"] for q in reqs])
resp = kinds(events(run), "model.response")
c.check(resp and resp[0]["payload"].get("attempts") == 2 and
        resp[0]["payload"].get("trail", [{}])[0].get("status") == 429,
        "429: the response records 2 attempts and the 429 in its trail")

# ---- 6. bad input from the model -----------------------------------------
mock.script([call("delete_everything", {}),
             call("tracker__close_issue", {"key": "ENG-1"}),
             {"tool_calls": [{"name": "helpdesk__get_ticket", "arguments_text": "{not json"}]},
             call("helpdesk__get_ticket", {"ticket": 7}),
             {"content": "giving up politely"}])
run = start("draft", {})
r = srv.wait_status(run, ["succeeded", "failed"])
evs = events(run)
reasons = [e["payload"]["reason"] for e in kinds(evs, "tool.call.refused")]
c.check(r["status"] == "succeeded", "bad calls: the run carries on (%s)" % r.get("error"))
c.check(reasons == ["unknown_tool", "not_offered", "invalid_arguments", "invalid_arguments"],
        "bad calls: nonexistent / not offered / not JSON / schema-invalid refused: %s" % reasons)
c.check(not kinds(evs, "tool.call.started"), "bad calls: none reached a tool")

mock.script([{"status": 200, "body": "this is not json {"}])
run = start("draft", {})
r = srv.wait_status(run, ["succeeded", "failed"])
evs = events(run)
c.check(r["status"] == "failed" and "model call" in (r.get("error") or ""),
        "invalid reply: the step fails cleanly: %s" % r.get("error"))
c.check(any(e["payload"].get("error") for e in kinds(evs, "model.response")),
        "invalid reply: the failed call is journaled")

# ---- 7. handoff to another identity (over the Anthropic API) -------------
mock.script([call("handoff__support__drafter",
                  {"note": "Enterprise customer, export bug, issue filed as ENG-7"}),
             {"content": "Dear Dana, engineering is on it (ENG-7)."}])
run = start("handoff", {})
r = srv.wait_status(run, ["succeeded", "failed"])
evs = events(run)
c.check(r["status"] == "succeeded", "handoff: run succeeded (%s)" % r.get("error"))
ho = kinds(evs, "agent.handoff")
c.check(len(ho) == 1 and ho[0]["payload"]["from"] == "support/triage" and
        ho[0]["payload"]["to"] == "support/drafter", "handoff: journaled from/to: %s" % ho)
reqs = mock.requests()
if len(reqs) >= 2:
    sysmsg = reqs[1]["body"]["messages"][0]["content"]
    users = [m["content"] for m in reqs[1]["body"]["messages"] if m["role"] == "user"]
    c.check(sysmsg.startswith("You are the drafting agent") and
            any("ENG-7" in u for u in users),
            "handoff: the next agent starts fresh with the note")
    c.check(not any(m.get("role") == "tool" for m in reqs[1]["body"]["messages"]),
            "handoff: the first agent's conversation is not passed on")
resp = kinds(evs, "model.response")
c.check(resp and resp[-1]["actor"] == "agent:support/drafter",
        "handoff: the second agent acts under its own identity")

mock.script([call("crm__lookup_account", {"id": "A-100"}), answer({"tier": "enterprise"})])
run = start("claude", {})
r = srv.wait_status(run, ["succeeded", "failed"])
reqs = mock.requests()
c.check(r["status"] == "succeeded", "anthropic: run succeeded (%s)" % r.get("error"))
c.check(len(reqs) == 2 and reqs[0]["format"] == "anthropic" and
        reqs[0].get("x_api_key") == CANARY and
        any(b.get("type") == "tool_result"
            for m in reqs[1]["body"]["messages"] if isinstance(m.get("content"), list)
            for b in m["content"]),
        "anthropic: Messages API with tool_use / tool_result")

# ---- 8. context summarization ---------------------------------------------
mock.script([{"when": {"system_contains": "You compress"}, "sticky": True,
              "content": "SUMMARY: T-1001 is an export bug; A-100 is enterprise."},
             call("helpdesk__get_ticket", {"id": "T-1001"}),
             call("crm__lookup_account", {"id": "A-100"}),
             call("helpdesk__get_ticket", {"id": "T-1002"}),
             {"content": "Investigation done."}])
run = start("smallctx", {})
r = srv.wait_status(run, ["succeeded", "failed"])
evs = events(run)
summ = kinds(evs, "context.summarized")
c.check(r["status"] == "succeeded", "summary: run succeeded (%s)" % r.get("error"))
c.check(len(summ) >= 1 and "SUMMARY" in summ[0]["payload"]["summary"],
        "summary: older turns summarized and journaled (%d)" % len(summ))
reqs = [q for q in mock.requests() if "You compress" not in json.dumps(q["body"])[:400]]
if summ and reqs:
    last = json.dumps(reqs[-1]["body"]["messages"])
    c.check("SUMMARY: T-1001" in last, "summary: the summary is carried forward")

# ---- 10. explain names the tool result behind a bad branch ---------------
# T-1003: the CRM's record of Globex is years stale (a starter plan
# updated in 2019); the triage agent believes it and calls the ticket low,
# so the run takes the "normal" branch instead of escalating.
mock.script([call("crm__lookup_account", {"id": "A-300"}),
             answer({"severity": "low", "needs_engineering": False})])
run = start("triage", {"ticket_id": "T-1003"})
r = srv.wait_status(run, ["succeeded", "failed"])
evs = events(run)
stale = [e for e in kinds(evs, "tool.call.completed") if e["payload"].get("tool") ==
         "crm/lookup_account"]
c.check(r["status"] == "succeeded" and r.get("output") in ("normal", None) and len(stale) == 1,
        "bad run: took the normal branch after one CRM lookup (%s)" % r.get("status"))
st, rep = srv.api("GET", "/v1/runs/%s/explain" % run)
c.check(st == 200, "explain: GET /v1/runs/{id}/explain answers 200 (%s)" % st)
causes = [e["switch"]["cause"] for e in (rep or {}).get("timeline", []) if e.get("switch")]
want = "crm/lookup_account (#%d)" % stale[0]["seq"] if stale else "?"
c.check(len(causes) == 1 and "route → normal" in causes[0] and want in causes[0] and
        "A-300" in causes[0],
        "explain: the switch's cause names the stale tool result %s: %s" % (want, causes))
code, out, err = srv.cli("explain", run)
c.check(code == 0 and want in out and len(out.split("Timeline")[0].splitlines()) <= 24,
        "keel explain: text names %s, summary within a screen" % want)
c.check(CANARY not in json.dumps(rep) + out, "canary absent from explain")

# ---- 9. unknown tool, unknown model ---------------------------------------
mock.script([])
run = start("missing-tool", {})
r = srv.wait_status(run, ["succeeded", "failed"])
c.check(r["status"] == "failed" and "no_such_tool" in (r.get("error") or ""),
        "unknown tool offered: the step fails naming it: %s" % r.get("error"))
c.check(len(mock.requests()) == 0, "unknown tool: the model was never called")
bad = Home(workflows={"unknown.yaml": UNKNOWN_MODEL}, policies=POLICIES, agents=AGENTS,
           extra_yaml=models_yaml(mock.url))
p = subprocess.run([os.environ.get("KEEL_BIN", "build/keel"), "serve", "--data", bad.data,
                    "--listen", "127.0.0.1:0", "--config", os.path.join(bad.dir, "keel.yaml")],
                   capture_output=True, text=True, timeout=60)
c.check(p.returncode != 0 and "gpt-nonexistent" in p.stderr and "unknown.yaml" in p.stderr,
        "unknown model: keel serve refuses to start, naming it: %s" % p.stderr[-300:])
c.check(not os.path.exists(os.path.join(bad.data, "keel.db")), "unknown model: nothing written")

# ---- secrets never leave the gateway --------------------------------------
for rid in [run]:
    code, out, err = srv.cli("events", rid)
    c.check(CANARY not in out + err, "canary absent from keel events")
c.check(srv.stop() == 0, "the daemon stops cleanly (no sanitizer report)")
leaks = []
for root, _, files in os.walk(home.dir):
    for f in files:
        path = os.path.join(root, f)
        try:
            with open(path, "rb") as fh:
                if CANARY.encode() in fh.read():
                    leaks.append(path)
        except OSError:
            pass
c.check(not leaks, "canary key found in: %s" % leaks)
mock.stop()
sys.exit(c.done())
