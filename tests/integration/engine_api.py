"""engine_api.py — drives the real `keel serve` and CLI over the example
tool servers: a 10-step run, approvals by named approver tokens, denial,
cancel, events and verify, and every bad-input case of the brief (each with
a clear message, a nonzero exit and nothing written)."""
import json
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from keelenv import (ALICE_TOKEN, BOB_TOKEN, GATED, KEEL, TEN_STEPS, Checks, Home,  # noqa: E402
                     Server, sha)

INTERN = """\
name: intern
identity: support/intern
steps:
  - id: note
    tool: helpdesk/add_note
    args: {id: T-1001, body: intern was here}
"""

URGENT = """\
name: urgent
input: {type: object, required: [title], properties: {title: {type: string}}}
identity: support/triage
state:
  issue: {reducer: replace}
steps:
  - id: file
    tool: tracker/create_issue
    args: {title: "${input.title}"}
    save: issue
"""

c = Checks()


def test_runs(srv, home):
    # A 10-step run over the three example tool servers.
    code, out, err = srv.cli("run", "start", "ten", "--input", '{"ticket":"T-1001","tag":"tagA"}')
    c.check(code == 0, "run start exit %d %s" % (code, err))
    rid = out.strip()
    run = srv.wait_status(rid, ("succeeded", "failed", "needs_reconcile"))
    c.check(run["status"] == "succeeded", "ten-step run succeeded: %s" % run)
    c.check(run["state"]["issue"]["key"].startswith("ENG-"), "state carries the issue")
    c.check(len(run["state"]["notes"]) == 2, "append reducer kept two notes")
    # The tools saw each effect once.
    notes = home.db("helpdesk").execute(
        "SELECT count(*) FROM notes WHERE body LIKE 'tagA %'").fetchone()[0]
    c.check(notes == 2, "two notes written, got %d" % notes)
    # Events: every transition, acting identities recorded.
    code, out, err = srv.cli("events", rid, "--json")
    c.check(code == 0, "events exit 0")
    # --json is the raw journal as JSONL: one event per line, with hashes.
    lines = out.splitlines()
    evs = [json.loads(line) for line in lines]
    c.check(all(len(e["hash"]) == 64 for e in evs), "every JSONL event carries its hash")
    c.check(all(evs[i]["prev_hash"] == evs[i - 1]["hash"] for i in range(1, len(evs))),
            "JSONL events chain: each prev_hash is the previous hash")
    c.check([e["seq"] for e in evs] == list(range(1, len(evs) + 1)), "seqs 1..N without gaps")
    kinds = [e["kind"] for e in evs]
    c.check(kinds[0] == "run.started" and kinds[-1] == "run.succeeded", "events bracket the run")
    c.check(kinds.count("tool.call.started") == 10, "ten tool calls journaled")
    c.check(kinds.count("tool.call.completed") == 10, "ten tool results journaled")
    calls = [e for e in evs if e["kind"] == "tool.call.started"]
    c.check(all(e["actor"] == "agent:support/triage" for e in calls), "tool calls act as the agent")
    c.check(evs[0]["actor"] == "admin", "run.started records the admin")
    keys = [e["payload"]["idempotency_key"] for e in calls]
    c.check(len(set(keys)) == 10, "one idempotency key per call")
    code, out, err = srv.cli("verify", rid)
    c.check(code == 0 and out.startswith("ok"), "verify ok: %s %s" % (out, err))
    code, out, err = srv.cli("run", "list")
    c.check(code == 0 and rid in out, "run list shows the run")
    code, out, err = srv.cli("run", "start", "ten", "--wait", "--input",
                             '{"ticket":"T-1002","tag":"tagW"}')
    c.check(code == 0 and out.strip().endswith(" succeeded"), "start --wait: %d %s %s" % (code, out, err))
    code, out, err = srv.cli("run", "show", rid)
    c.check(code == 0 and "succeeded" in out, "run show")


def test_approvals(srv, home):
    code, out, err = srv.cli("run", "start", "gated", "--input", '{"ticket":"T-1002"}')
    rid = out.strip()
    run = srv.wait_status(rid, ("waiting",))
    aid = run.get("approval")
    c.check(bool(aid), "waiting run names its approval")
    # Approvers see it with their own token.
    code, out, err = srv.cli("approvals", "--json", token=ALICE_TOKEN)
    c.check(code == 0 and aid in out, "alice lists the approval")
    code, out, err = srv.cli("approvals", "--json", token=BOB_TOKEN)
    c.check(code == 0 and aid not in out, "bob (finance) does not see support-leads approvals")
    # bob is not in support-leads.
    code, out, err = srv.cli("approve", aid, token=BOB_TOKEN)
    c.check(code == 5 and "not in group" in err, "bob refused: %d %s" % (code, err))
    # an approver cannot start runs
    code, out, err = srv.cli("run", "start", "gated", "--input", '{"ticket":"T-1"}',
                             token=ALICE_TOKEN)
    c.check(code == 5, "approver token cannot start runs: %d" % code)
    code, out, err = srv.cli("approve", aid, "--comment", "looks fine", token=ALICE_TOKEN)
    c.check(code == 0, "alice approves: %d %s" % (code, err))
    run = srv.wait_status(rid, ("succeeded", "failed"))
    c.check(run["status"] == "succeeded", "approved run succeeded")
    code, out, err = srv.cli("approve", aid, token=ALICE_TOKEN)
    c.check(code == 7 and "already approved" in err, "second decision conflicts: %d %s" % (code, err))
    st, evs = srv.api("GET", "/v1/runs/%s/events" % rid)
    dec = [e for e in evs["events"] if e["kind"] == "approval.decided"]
    c.check(len(dec) == 1 and dec[0]["actor"] == "human:alice", "decision journaled as alice")
    c.check(dec[0]["payload"].get("comment") == "looks fine", "comment journaled")
    status = home.db("helpdesk").execute("SELECT status FROM tickets WHERE id='T-1002'").fetchone()[0]
    c.check(status == "solved", "step after the approval ran")

    # Denial fails the run with the reason.
    code, out, err = srv.cli("run", "start", "gated", "--input", '{"ticket":"T-1003"}')
    rid = out.strip()
    aid = srv.wait_status(rid, ("waiting",))["approval"]
    code, out, err = srv.cli("deny", aid, token=ALICE_TOKEN)
    c.check(code == 2, "deny without --reason is a usage error")
    code, out, err = srv.cli("deny", aid, "--reason", "not now", token=ALICE_TOKEN)
    c.check(code == 0, "alice denies")
    run = srv.wait_status(rid, ("succeeded", "failed"))
    c.check(run["status"] == "failed" and "not now" in run.get("error", ""), "denied run failed")
    code, out, err = srv.cli("run", "show", rid)
    c.check(code == 1, "run show of a failed run exits 1")


def test_cancel(srv, home):
    code, out, err = srv.cli("run", "start", "gated", "--input", '{"ticket":"T-1004"}')
    rid = out.strip()
    aid = srv.wait_status(rid, ("waiting",))["approval"]
    code, out, err = srv.cli("run", "cancel", rid)
    c.check(code == 0 and "cancelled" in out, "cancel: %d %s %s" % (code, out, err))
    run = srv.wait_status(rid, ("cancelled",))
    c.check(run["status"] == "cancelled", "run cancelled")
    code, out, err = srv.cli("run", "cancel", rid)
    c.check(code == 7, "cancel of an ended run conflicts: %d" % code)
    code, out, err = srv.cli("approve", aid, token=ALICE_TOKEN)
    c.check(code == 7, "approval of a cancelled run cannot be decided: %d %s" % (code, err))
    st, evs = srv.api("GET", "/v1/runs/%s/events" % rid)
    c.check(evs["events"][-1]["kind"] == "run.cancelled" and evs["events"][-1]["actor"] == "admin",
            "run.cancelled journaled with the actor")


def test_policy(srv, home):
    # Deny by default: the intern agent has no permit.
    code, out, err = srv.cli("run", "start", "intern")
    rid = out.strip()
    run = srv.wait_status(rid, ("succeeded", "failed"))
    c.check(run["status"] == "failed" and "policy denied" in run.get("error", ""),
            "no permit -> denied: %s" % run)
    st, evs = srv.api("GET", "/v1/runs/%s/events" % rid)
    dec = [e for e in evs["events"] if e["kind"] == "policy.decision"]
    c.check(len(dec) == 1 and dec[0]["payload"]["decision"] == "deny", "deny journaled")
    c.check(len(dec[0]["payload"]["policy_hash"]) == 64, "decision names the policy set hash")
    c.check(not any(e["kind"] == "tool.call.started" for e in evs["events"]), "denied call never started")
    n = home.db("helpdesk").execute("SELECT count(*) FROM notes WHERE body='intern was here'").fetchone()[0]
    c.check(n == 0, "denied call had no effect")
    # A plain permit: decision journaled with the deciding policy id.
    code, out, err = srv.cli("run", "start", "urgent", "--input", '{"title":"routine"}')
    rid = out.strip()
    run = srv.wait_status(rid, ("succeeded", "failed", "waiting"))
    c.check(run["status"] == "succeeded", "permitted call ran: %s" % run)
    st, evs = srv.api("GET", "/v1/runs/%s/events" % rid)
    dec = [e for e in evs["events"] if e["kind"] == "policy.decision"]
    c.check(dec and dec[0]["payload"]["policies"] == ["triage-tools"], "deciding policy id journaled")
    # @approval: allowed only after a lead approves, bound to the args digest.
    code, out, err = srv.cli("run", "start", "urgent", "--input", '{"title":"urgent: db down"}')
    rid = out.strip()
    run = srv.wait_status(rid, ("waiting", "succeeded", "failed"))
    c.check(run["status"] == "waiting", "@approval parks the run: %s" % run)
    st, aps = srv.api("GET", "/v1/approvals", token=ALICE_TOKEN)
    ap = [a for a in aps["approvals"] if a["run"] == rid]
    c.check(len(ap) == 1 and ap[0]["group"] == "support-leads", "approval for the lead group")
    req = ap[0]["request"] if ap else {}
    c.check(req.get("tool") == "tracker/create_issue" and len(req.get("args_digest", "")) == 64
            and len(req.get("policy", "")) == 64 and req.get("agent") == "support/triage",
            "approval bound to agent, tool, args digest, policy version: %s" % req)
    issues = home.db("tracker").execute("SELECT count(*) FROM issues WHERE title='urgent: db down'").fetchone()[0]
    c.check(issues == 0, "no effect before the approval")
    st, body = srv.api("POST", "/v1/approvals/%s/decide" % ap[0]["id"], {"decision": "approve"},
                       token=ALICE_TOKEN)
    c.check(st == 200, "lead approves over HTTP: %s %s" % (st, body))
    run = srv.wait_status(rid, ("succeeded", "failed"))
    c.check(run["status"] == "succeeded", "approved call ran: %s" % run)
    issues = home.db("tracker").execute("SELECT count(*) FROM issues WHERE title='urgent: db down'").fetchone()[0]
    c.check(issues == 1, "one effect after the approval")
    # Arguments that fail the tool's inputSchema: refused before policy and call.
    code, out, err = srv.cli("run", "start", "urgent", "--wait", "--input",
                             json.dumps({"title": "x" * 300}))
    rid = out.split()[0] if out else ""
    c.check(code == 1, "schema-invalid arguments fail the run: %d %s" % (code, err))
    st, run = srv.api("GET", "/v1/runs/" + rid)
    c.check("inputSchema" not in run.get("error", "x") and "fail its schema" in run.get("error", ""),
            "error names the schema failure: %s" % run.get("error"))
    st, evs = srv.api("GET", "/v1/runs/%s/events" % rid)
    kinds = [e["kind"] for e in evs["events"]]
    c.check("tool.call.started" not in kinds and "policy.decision" not in kinds,
            "no policy decision or call for invalid arguments: %s" % kinds)
    # A policy set that fails to load is refused; the old one stays.
    path = os.path.join(home.policies, "broken.cedar")
    with open(path, "w") as f:
        f.write("permit(principal, action,")
    st, body = srv.api("POST", "/v1/policy/reload")
    c.check(st == 400 and "broken.cedar" in body["error"]["message"], "broken set refused: %s" % body)
    code, out, err = srv.cli("policy", "reload")
    c.check(code == 3 and "broken.cedar" in err, "keel policy reload refuses it too: %d %s" % (code, err))
    # The same through SIGHUP: refused and logged, the daemon keeps serving.
    srv.proc.send_signal(signal.SIGHUP)
    st, body = srv.api("GET", "/v1/workflows")
    c.check(st == 200 and len(body["workflows"]) == 4, "daemon serves after a refused SIGHUP reload")
    os.remove(path)
    code, out, err = srv.cli("run", "start", "urgent", "--input", '{"title":"after reload"}')
    run = srv.wait_status(out.strip(), ("succeeded", "failed", "waiting"))
    c.check(run["status"] == "succeeded", "old set still in force")
    st, body = srv.api("POST", "/v1/policy/reload")
    c.check(st == 200, "good set reloads")
    code, out, err = srv.cli("policy", "reload")
    c.check(code == 0 and out.strip() == "reloaded", "keel policy reload: %d %s %s" % (code, out, err))
    # With a Cedar schema in the folder the set is validated strictly; one
    # that does not validate is refused and the old set stays.
    schema = os.path.join(home.policies, "keel.cedarschema")
    with open(schema, "w") as f:
        f.write("entity Agent;\nentity Tool;\n"
                "action call_tool appliesTo { principal: [Agent], resource: [Tool] };\n")
    code, out, err = srv.cli("policy", "reload")
    c.check(code == 3 and "tools.cedar:2:" in err and "unknown entity type 'Team'" in err,
            "set failing schema validation refused with its position: %d %s" % (code, err))
    code, out, err = srv.cli("run", "start", "urgent", "--input", '{"title":"still old set"}')
    run = srv.wait_status(out.strip(), ("succeeded", "failed", "waiting"))
    c.check(run["status"] == "succeeded", "old set in force after a refused validation")
    with open(schema, "w") as f:
        f.write("entity Team;\nentity Agent in [Team];\nentity ToolServer;\n"
                "entity Tool in [ToolServer];\naction call_tool appliesTo {\n"
                "  principal: [Agent], resource: [Tool], context: { args: { title: String } } };\n")
    code, out, err = srv.cli("policy", "reload")
    c.check(code == 0, "set that validates against its schema loads: %d %s" % (code, err))
    os.remove(schema)


def test_token_rotation(srv, home):
    """An approver's token rotated in keel.yaml takes effect on reload."""
    cfg = os.path.join(home.dir, "keel.yaml")
    text = open(cfg).read()
    new_token = "alice-rotated-token-42"
    open(cfg, "w").write(text.replace(sha(ALICE_TOKEN), sha(new_token)))
    st, body = srv.api("POST", "/v1/policy/reload")
    c.check(st == 200, "reload with a rotated token: %s %s" % (st, body))
    st, body = srv.api("GET", "/v1/approvals", token=ALICE_TOKEN)
    c.check(st == 401, "old token refused after rotation: %s" % st)
    st, body = srv.api("GET", "/v1/approvals", token=new_token)
    c.check(st == 200, "new token accepted: %s" % st)
    # A keel.yaml that does not load is refused; the running identities stay.
    open(cfg, "w").write("humans: [not, a, mapping]\n")
    st, body = srv.api("POST", "/v1/policy/reload")
    c.check(st == 400 and "keel.yaml" in body["error"]["message"], "broken keel.yaml refused: %s" % body)
    st, body = srv.api("GET", "/v1/approvals", token=new_token)
    c.check(st == 200, "identities kept after a refused reload")
    open(cfg, "w").write(text)
    st, body = srv.api("POST", "/v1/policy/reload")
    c.check(st == 200, "original keel.yaml back")


def test_bad_input(srv, home):
    st, before = srv.api("GET", "/v1/runs?limit=1000")
    n_before = len(before["runs"])
    # Unknown run id.
    code, out, err = srv.cli("run", "show", "run_nope")
    c.check(code == 4 and "no run" in err, "unknown run: %d %s" % (code, err))
    code, out, err = srv.cli("events", "run_nope")
    c.check(code == 4, "events of unknown run: %d" % code)
    # Input failing the input schema.
    code, out, err = srv.cli("run", "start", "ten", "--input", '{"ticket":"bad","tag":"x"}')
    c.check(code == 3 and "input schema" in err, "schema-invalid input: %d %s" % (code, err))
    code, out, err = srv.cli("run", "start", "ten", "--input", '{"ticket":')
    c.check(code == 3, "input that is not JSON: %d %s" % (code, err))
    code, out, err = srv.cli("run", "start", "nosuch")
    c.check(code == 4 and "no workflow" in err, "unknown workflow: %d %s" % (code, err))
    # Oversized body.
    st, body = srv.post_oversized("/v1/runs", 2 << 20)
    c.check(st == 413 and body["error"]["code"] == "ELIMIT", "oversized body 413: %s" % st)
    # Missing and wrong tokens.
    st, body = srv.api("GET", "/v1/runs", token=False)
    c.check(st == 401 and body["error"]["code"] == "EAUTH", "missing token 401")
    st, body = srv.api("GET", "/v1/runs", token="wrong")
    c.check(st == 401 and "wrong API token" in body["error"]["message"], "wrong token 401")
    code, out, err = srv.cli("run", "list", "--token", "wrong")
    c.check(code == 5 and "wrong API token" in err, "CLI wrong token exits 5: %d" % code)
    st, body = srv.api("GET", "/v1/nowhere")
    c.check(st == 404 and body["error"]["code"] == "ENOENT", "unknown route 404")
    st, body = srv.api("DELETE", "/v1/runs")
    c.check(st == 405, "wrong method 405")
    st, body = srv.api("GET", "/v1/health", token=False)
    c.check(st == 200 and body["ok"] is True, "health needs no token")
    # Nothing was written by any of the above.
    st, after = srv.api("GET", "/v1/runs?limit=1000")
    c.check(len(after["runs"]) == n_before, "no run created by bad input")
    # Daemon not reachable.
    code, out, err = srv.cli("run", "list", env={"KEEL_SERVER": "http://127.0.0.1:1"})
    c.check(code == 6 and "cannot reach" in err, "unreachable daemon exits 6: %d" % code)


BAD_WORKFLOWS = {
    "malformed YAML": ("name: x\nsteps: [\n", "3:"),
    "unknown step kind": ("name: x\nidentity: support/triage\nsteps:\n  - id: a\n"
                          "    tol: helpdesk/get_ticket\n", "unknown step kind"),
    "goto to a missing step": ("name: x\nsteps:\n  - id: a\n    switch:\n      - if: 'true'\n"
                               "        goto: nowhere\n  - id: b\n    succeed: true\n", "nowhere"),
    "unknown template variable": ("name: x\nidentity: support/triage\nsteps:\n  - id: a\n"
                                  "    tool: helpdesk/get_ticket\n    args: {id: \"${nope.x}\"}\n",
                                  "nope"),
}


def test_bad_workflows():
    for what, (text, needle) in BAD_WORKFLOWS.items():
        home = Home(workflows={"bad.yaml": text})
        p = subprocess.run([KEEL, "serve", "--data", home.data, "--listen", "127.0.0.1:0",
                            "--config", os.path.join(home.dir, "keel.yaml")],
                           capture_output=True, text=True, timeout=60)
        c.check(p.returncode == 3, "%s: serve exits 3, got %d" % (what, p.returncode))
        c.check("bad.yaml" in p.stderr and needle in p.stderr,
                "%s: message names file and problem: %s" % (what, p.stderr.strip()))
        c.check(not os.path.exists(home.data), "%s: nothing written" % what)
        home.cleanup()


def main():
    if not shutil.which(KEEL) and not os.path.exists(KEEL):
        print("no keel binary at %s" % KEEL)
        return 1
    home = Home(workflows={"ten.yaml": TEN_STEPS, "gated.yaml": GATED, "intern.yaml": INTERN,
                           "urgent.yaml": URGENT})
    srv = Server(home)
    try:
        mode = os.stat(os.path.join(home.data, "admin.token")).st_mode & 0o777
        c.check(mode == 0o600, "admin token mode 0600, got %o" % mode)
        test_runs(srv, home)
        test_approvals(srv, home)
        test_cancel(srv, home)
        test_policy(srv, home)
        test_token_rotation(srv, home)
        test_bad_input(srv, home)
    finally:
        c.check(srv.stop() == 0, "daemon stops cleanly")
    # Restart on the same data: the admin token stays.
    old = srv.token
    srv = Server(home)
    c.check(srv.token == old, "admin token kept across restarts")
    c.check(srv.stop() == 0, "daemon stops cleanly")
    home.cleanup()
    test_bad_workflows()
    return c.done()


if __name__ == "__main__":
    # SIGTERM (e.g. a ctest timeout) exits through atexit, which removes
    # the temporary homes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
