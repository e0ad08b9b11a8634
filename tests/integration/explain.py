"""explain.py — `keel explain RUN` and GET /v1/runs/{id}/explain against a
real `keel serve` over the example tool servers (helpdesk, crm, tracker).

The "bad run": ticket T-1003 belongs to Globex (A-300), whose CRM record is
stale on purpose (tier "enterprise", updated 2019, entitled only to the
starter plan).  The workflow branches on the looked-up tier, so the run opens
an urgent engineering issue it should not have; opening it needs a support
lead's approval (POLICIES in keelenv.py), which alice gives.  The report must
name the tool call (tool and seq) that wrote the value the switch read.  A
second run acts as an identity without a permit and is denied.  Also: the
text summary fits a screen, --json equals the API's answer, unknown runs are
404 / exit 4, a missing token is 401, and no token or configured secret
appears in any output."""
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from keelenv import ALICE_TOKEN, KEEL, Checks, Home, Server  # noqa: E402

STALE = """\
name: stale
input: {type: object, required: [ticket], properties: {ticket: {type: string}}}
identity: support/triage
state:
  ticket: {reducer: replace}
  account: {reducer: replace}
  issue: {reducer: replace}
steps:
  - id: fetch
    tool: helpdesk/get_ticket
    args: {id: "${input.ticket}"}
    save: ticket
  - id: lookup
    tool: crm/lookup_account
    args: {id: "${state.ticket.customer_id}"}
    save: account
  - id: route
    switch:
      - if: 'state.ticket.priority == "high"'
        goto: escalate
      - if: 'state.account.tier == "enterprise"'
        goto: escalate
    default: reply
  - id: escalate
    tool: tracker/create_issue
    args: {title: "urgent: ${state.ticket.subject}", body: "${state.account.name}"}
    save: issue
  - id: reply
    tool: helpdesk/add_note
    args: {id: "${input.ticket}", body: "We are on it"}
"""

INTERN = """\
name: intern
identity: support/intern
steps:
  - id: note
    tool: helpdesk/add_note
    args: {id: T-1001, body: intern was here}
"""

# A value configured for a tool server's environment: it must never reach
# the journal or the report.
CANARY = "sk-canary-7f3e9a1c5b2d4e6f"

c = Checks()


def summary_lines(text):
    """The summary: the lines before the first blank line."""
    return text.split("\n\n", 1)[0].splitlines()


def on_terminal(srv, args, cols, env=None):
    """Runs `keel ARGS` with stdout on a pseudo-terminal of cols x 24;
    returns (exit code, output with \r\n turned into \n)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
    e = dict(os.environ, KEEL_SERVER=srv.url, KEEL_DATA=srv.home.data)
    e.pop("NO_COLOR", None)
    e.update(env or {})
    p = subprocess.Popen([KEEL] + args, stdout=slave, stderr=subprocess.DEVNULL, env=e)
    os.close(slave)
    out = b""
    while True:
        try:
            d = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not d:
            break
        out += d
    os.close(master)
    return p.wait(timeout=60), out.decode("utf-8", "replace").replace("\r\n", "\n")


def screen_rows(summary, cols):
    """Rows the summary lines take on a terminal cols wide (ANSI escapes
    take no room)."""
    rows = 0
    for line in summary:
        n = len(re.sub(r"\x1b\[[0-9;]*m", "", line))
        rows += max(1, -(-n // cols))
    return rows


def events_of(srv, rid):
    st, body = srv.api("GET", "/v1/runs/%s/events" % rid)
    return body["events"]


def no_secrets(srv, what, *texts):
    for t in texts:
        for secret in (srv.token, ALICE_TOKEN, CANARY):
            c.check(secret not in t, "%s: no secret in the output" % what)


def test_bad_branch(srv):
    code, out, err = srv.cli("run", "start", "stale", "--input", '{"ticket":"T-1003"}')
    c.check(code == 0, "start stale: %d %s" % (code, err))
    rid = out.strip()
    run = srv.wait_status(rid, ("waiting", "failed", "succeeded"))
    c.check(run["status"] == "waiting", "the urgent issue waits for a lead: %s" % run["status"])

    # While parked, the report says what it waits for.
    code, out, err = srv.cli("explain", rid)
    c.check(code == 0, "explain of a waiting run: %d %s" % (code, err))
    c.check("Outcome: Waiting since" in out and "group support-leads" in out,
            "the outcome names the approval it waits for: %s" % out[:400])

    aid = run.get("approval")
    if not aid:
        c.check(False, "the waiting run names its approval: %s" % run)
        return
    code, out, err = srv.cli("approve", aid, "--comment", "enterprise customer", token=ALICE_TOKEN)
    c.check(code == 0, "alice approves: %d %s" % (code, err))
    run = srv.wait_status(rid, ("succeeded", "failed"))
    c.check(run["status"] == "succeeded", "the bad run still succeeds: %s" % run["status"])

    evs = events_of(srv, rid)
    lookup = [e for e in evs if e["kind"] == "tool.call.completed"
              and e["payload"]["step"] == "lookup"]
    c.check(len(lookup) == 1, "one lookup result journaled")
    lookup_seq = lookup[0]["seq"]

    # Text: summary first, at most 24 lines, naming the tool result.
    code, text, err = srv.cli("explain", rid)
    c.check(code == 0, "explain exit 0: %d %s" % (code, err))
    summary = summary_lines(text)
    c.check(len(summary) <= 24, "summary fits a screen: %d lines" % len(summary))
    c.check(summary[0].startswith("Run %s" % rid), "the summary opens with the run: %s" % summary[0])
    c.check(any(l.startswith("Outcome: Succeeded") for l in summary), "outcome line")
    cause = [l for l in summary if "route → escalate:" in l]
    c.check(len(cause) == 1, "the summary shows the branch: %s" % summary)
    want = "tool crm/lookup_account #%d" % lookup_seq
    c.check(cause and want in cause[0],
            "the branch names the tool result that caused it (%s): %s" % (want, cause))
    c.check(cause and 'state.account.tier="enterprise"' in cause[0],
            "and shows the value it read: %s" % cause)
    c.check('"updated_at":"2019-03-01T00:00:00Z"' in text,
            "the timeline shows the stale record the lookup returned")
    c.check(any("approved by human:alice" in l for l in summary), "the approval: who")
    c.check("\x1b[" not in text, "no colours when stdout is not a terminal")
    c.check("#%d" % lookup_seq in text.split("\n\n", 1)[1], "the timeline follows the summary")
    code, text2, err = srv.cli("explain", rid, "--no-color")
    c.check(code == 0 and text2 == text, "--no-color gives the same text")

    # On a terminal: colours, and the summary fits 24 rows of its width.
    for cols in (80, 132):
        code, tty = on_terminal(srv, ["explain", rid], cols)
        summary = summary_lines(tty)
        c.check(code == 0 and "\x1b[" in tty, "colours on a terminal (%d columns)" % cols)
        c.check(screen_rows(summary, cols) <= 24,
                "summary within 24 rows of %d columns: %d" % (cols, screen_rows(summary, cols)))
        c.check(any("route → escalate:" in l and "crm/lookup_account #%d" % lookup_seq in l
                    for l in summary), "the cause survives %d columns: %s" % (cols, summary))
    code, tty = on_terminal(srv, ["explain", rid], 80, {"NO_COLOR": "1"})
    c.check(code == 0 and "\x1b[" not in tty, "NO_COLOR turns colours off")
    code, tty = on_terminal(srv, ["explain", rid, "--no-color"], 80)
    c.check(code == 0 and "\x1b[" not in tty, "--no-color turns colours off")

    # JSON: the structured cause.
    code, out, err = srv.cli("explain", rid, "--json")
    c.check(code == 0, "explain --json exit 0: %d %s" % (code, err))
    rep = json.loads(out)
    c.check(rep["run"]["id"] == rid and rep["run"]["status"] == "succeeded", "run section")
    c.check(len(rep["run"]["workflow_hash"]) == 64, "the pinned workflow version")
    c.check(rep["run"]["workflow_version_available"] is True, "workflow version found")
    sw = rep["switches"]
    c.check(len(sw) == 1 and sw[0]["step"] == "route" and sw[0]["next"] == "escalate",
            "one switch: route → escalate")
    sw = sw[0]
    c.check(sw["evaluated_next"] == "escalate" and sw.get("matched_case") == 2,
            "re-evaluated: the second case held: %s" % sw.get("cases"))
    c.check(sw["condition"] == 'state.account.tier == "enterprise"', "the condition that held")
    reads = {r["path"]: r for r in sw["reads"]}
    tier = reads.get("state.account.tier", {})
    c.check(tier.get("value") == "enterprise", "the value read: %s" % tier)
    src = tier.get("written_by", {}).get("source", {})
    c.check(src.get("kind") == "tool" and src["tool"]["tool"] == "crm/lookup_account"
            and src["tool"]["seq"] == lookup_seq and src["tool"]["call_id"] == "lookup/0",
            "the cause is the crm/lookup_account result #%d: %s" % (lookup_seq, src))
    prio = reads.get("state.ticket.priority", {})
    c.check(prio.get("value") == "normal" and
            prio["written_by"]["source"]["tool"]["tool"] == "helpdesk/get_ticket",
            "the first case's read traced to the ticket: %s" % prio)
    counts = rep["summary"]["counts"]
    c.check(counts["steps"] == 5 and counts["tool_calls"] == 4, "counts: %s" % counts)
    c.check(counts["allowed"] == 3 and counts["needed_approval"] == 1 and counts["denied"] == 0,
            "allowed / approval / denied: %s" % counts)
    ag = rep["summary"]["agents"]
    c.check(ag[0]["identity"] == "support/triage" and ag[0]["tool_calls"] == 4
            and ag[0]["credential"] == "none brokered", "acting identity: %s" % ag)
    ap = rep["summary"]["approvals"]
    c.check(len(ap) == 1 and ap[0]["id"] == aid and ap[0]["by"] == "human:alice"
            and ap[0]["decision"] == "approved" and ap[0]["comment"] == "enterprise customer"
            and ap[0]["decided_at"], "approval: who, when, comment: %s" % ap)
    tl = rep["timeline"]
    c.check([t["step"] for t in tl] == ["fetch", "lookup", "route", "escalate", "reply"],
            "timeline: %s" % [t["step"] for t in tl])
    esc = tl[3]
    call = esc["calls"][0]
    c.check(call["tool"] == "tracker/create_issue" and call["policy"]["decision"] == "approval"
            and "urgent-issues-need-a-lead" in call["policy"]["policies"]
            and len(call["policy"]["policy_hash"]) == 64, "policy decision: %s" % call["policy"])
    c.check(call["approval"]["by"] == "human:alice", "the call's approval")
    c.check(call["identity"] == "support/triage" and esc["actor"]["credential"] == "none brokered",
            "identity and credential of the call")
    c.check(call["result"]["key"].startswith("ENG-"), "the call's result")
    c.check(esc["state_written"][0]["key"] == "issue", "the state it wrote")
    look = tl[1]
    c.check(look["state_read"][0]["path"] == "state.ticket.customer_id"
            and look["state_read"][0]["value"] == "A-300", "the state lookup read")
    c.check(look["state_written"][0]["after"]["updated_at"].startswith("2019"),
            "the stale record written to state")
    c.check(rep["provenance"]["account"]["source"]["tool"]["seq"] == lookup_seq,
            "provenance of state.account")

    # The API answers the same report.
    st, api_rep = srv.api("GET", "/v1/runs/%s/explain" % rid)
    c.check(st == 200 and api_rep == rep, "GET /v1/runs/{id}/explain equals --json")
    st, api_rep = srv.api("GET", "/v1/runs/%s/explain" % rid, token=ALICE_TOKEN)
    c.check(st == 200 and api_rep["run"]["id"] == rid, "an approver may read the report")

    # Pages of the timeline: the summary stays whole, the switches follow
    # the visits of the page.
    c.check(rep["timeline_total"] == 5 and rep["timeline_from"] == 0 and
            "timeline_next" not in rep, "one page holds a short run")
    st, pg = srv.api("GET", "/v1/runs/%s/explain?from=1&limit=2" % rid)
    c.check(st == 200 and [t["step"] for t in pg["timeline"]] == ["lookup", "route"]
            and pg["timeline_total"] == 5 and pg["timeline_from"] == 1
            and pg["timeline_next"] == 3, "page 1+2: %s" % {k: pg.get(k) for k in
                                                          ("timeline_total", "timeline_from",
                                                           "timeline_next")})
    c.check([w["step"] for w in pg["switches"]] == ["route"] and pg["summary"] == rep["summary"],
            "the page's switch, the whole summary")
    st, pg = srv.api("GET", "/v1/runs/%s/explain?from=3&limit=2" % rid)
    c.check(st == 200 and [t["step"] for t in pg["timeline"]] == ["escalate", "reply"]
            and "timeline_next" not in pg and pg["switches"] == [], "the last page")
    st, pg = srv.api("GET", "/v1/runs/%s/explain?from=9" % rid)
    c.check(st == 200 and pg["timeline"] == [] and pg["timeline_total"] == 5, "past the end")
    for q in ("limit=0", "limit=100001", "from=-1", "from=x", "limit="):
        st, body = srv.api("GET", "/v1/runs/%s/explain?%s" % (rid, q))
        c.check(st == 400 and body["error"]["code"] == "EINVAL", "bad %s: %s %s" % (q, st, body))
    code, ptext, err = srv.cli("explain", rid, "--limit", "2", "--no-color")
    c.check(code == 0 and "step visits 1 to 2 of 5" in ptext
            and "3 more step visits: keel explain %s --from 2" % rid in ptext,
            "the text says what is left: %s" % ptext[-300:])
    code, out, err = srv.cli("explain", rid, "--all", "--limit", "2", "--json")
    allrep = json.loads(out) if code == 0 else {}
    c.check(code == 0 and allrep.get("timeline") == rep["timeline"]
            and allrep.get("switches") == rep["switches"] and "timeline_next" not in allrep,
            "--all joins every page: %d %s" % (code, err))
    code, out, err = srv.cli("explain", rid, "--from")
    c.check(code == 2 and "--from needs a number" in err, "--from alone: %d %s" % (code, err))
    code, out, err = srv.cli("explain", rid, "--all", "--from", "1")
    c.check(code == 2, "--all with --from: usage error: %d" % code)
    no_secrets(srv, "bad run", text, out, json.dumps(evs))


def test_denied(srv):
    code, out, err = srv.cli("run", "start", "intern", "--input", "{}")
    rid = out.strip()
    run = srv.wait_status(rid, ("failed", "succeeded"))
    c.check(run["status"] == "failed", "the intern's call is denied: %s" % run["status"])
    code, out, err = srv.cli("explain", rid, "--json")
    c.check(code == 0, "explain of a failed run exits 0: %d %s" % (code, err))
    rep = json.loads(out)
    n = rep["summary"]["counts"]
    c.check(n["denied"] == 1 and n["tool_calls"] == 0 and n["allowed"] == 0, "denial counted: %s" % n)
    kinds = [a["kind"] for a in rep["summary"]["attention"]]
    c.check("denied" in kinds and "run_failed" in kinds, "attention: %s" % kinds)
    call = rep["timeline"][0]["calls"][0]
    c.check(call["status"] == "denied" and call["identity"] == "support/intern",
            "the denied call and who tried: %s" % call)
    c.check(rep["summary"]["outcome"].startswith("Failed at step note"), rep["summary"]["outcome"])
    code, text, err = srv.cli("explain", rid)
    summary = summary_lines(text)
    c.check(len(summary) <= 24 and any("denied: policy denied support/intern" in l for l in summary),
            "the text summary names the denial: %s" % summary)
    no_secrets(srv, "denied run", text, out)


def test_errors(srv):
    code, out, err = srv.cli("explain", "run_nope")
    c.check(code == 4 and "no run" in err, "unknown run: exit 4: %d %s" % (code, err))
    st, body = srv.api("GET", "/v1/runs/run_nope/explain")
    c.check(st == 404 and body["error"]["code"] == "ENOENT", "unknown run: 404 ENOENT: %s" % body)
    st, body = srv.api("GET", "/v1/runs/run_nope/explain", token=False)
    c.check(st == 401 and body["error"]["code"] == "EAUTH", "no token: 401: %s %s" % (st, body))
    code, out, err = srv.cli("explain", "run_nope", token="wrong-token")
    c.check(code == 5, "wrong token: exit 5: %d %s" % (code, err))
    code, out, err = srv.cli("explain")
    c.check(code == 2 and "missing RUN" in err, "no run id: usage error: %d %s" % (code, err))
    code, out, err = srv.cli("explain", "a", "b")
    c.check(code == 2, "two ids: usage error: %d" % code)
    code, out, err = srv.cli("explain", "--help")
    c.check(code == 0 and "--no-color" in out, "help")


def main():
    home = Home(workflows={"stale.yaml": STALE, "intern.yaml": INTERN},
                extra_tool_env={"crm": {"CRM_API_KEY": CANARY}})
    srv = Server(home)
    try:
        test_bad_branch(srv)
        test_denied(srv)
        test_errors(srv)
    finally:
        rc = srv.stop()
        c.check(rc == 0, "keel serve exits cleanly (%d)" % rc)
        with open(srv.log_path) as f:
            log = f.read()
        c.check(CANARY not in log and srv.token not in log, "no secret in the daemon's log")
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
