"""keelenv.py — shared helpers for the engine/API integration tests: a
temporary Keel home (keel.yaml, workflows over the example tool servers,
approver tokens), starting `keel serve` on a free port and waiting for its
"listening on" line, calling the HTTP API and the CLI.

Python stdlib only.  KEEL_BIN and KEEL_BUILD_DIR come from ctest."""
import atexit
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

KEEL = os.environ.get("KEEL_BIN") or "build/keel"
BUILD = os.environ.get("KEEL_BUILD_DIR") or os.path.dirname(os.path.abspath(KEEL))

ALICE_TOKEN = "alice-secret-token-0123456789"
BOB_TOKEN = "bob-secret-token-9876543210"

# Ten tool steps over the three example servers.  Every effect carries the
# run's tag, so a test can count effects per run in the tools' databases.
TEN_STEPS = """\
name: ten
input:
  type: object
  required: [ticket, tag]
  properties:
    ticket: {type: string, pattern: "^T-[0-9]+$"}
    tag: {type: string}
identity: support/triage
state:
  ticket: {reducer: replace}
  account: {reducer: replace}
  ent: {reducer: replace}
  issue: {reducer: replace}
  notes: {reducer: append}
steps:
  - id: s1
    tool: helpdesk/get_ticket
    args: {id: "${input.ticket}"}
    save: ticket
  - id: s2
    tool: crm/lookup_account
    args: {id: "${state.ticket.customer_id}"}
    save: account
  - id: s3
    tool: crm/get_entitlements
    args: {account_id: "${state.account.id}"}
    save: ent
  - id: s4
    tool: helpdesk/add_note
    args: {id: "${input.ticket}", body: "${input.tag} s4"}
    save: notes
  - id: s5
    tool: tracker/search_issues
    args: {query: "${input.tag}"}
  - id: s6
    tool: tracker/create_issue
    args: {title: "${input.tag} issue"}
    save: issue
  - id: s7
    tool: helpdesk/set_status
    args: {id: "${input.ticket}", status: pending}
  - id: s8
    tool: helpdesk/add_note
    args: {id: "${input.ticket}", body: "${input.tag} s8 ${state.issue.key}"}
    save: notes
  - id: s9
    tool: tracker/close_issue
    args: {key: "${state.issue.key}", reason: "${input.tag} done"}
  - id: s10
    tool: helpdesk/list_tickets
    args: {status: pending}
"""

GATED = """\
name: gated
input:
  type: object
  required: [ticket]
  properties:
    ticket: {type: string}
identity: support/triage
state:
  ticket: {reducer: replace}
steps:
  - id: fetch
    tool: helpdesk/get_ticket
    args: {id: "${input.ticket}"}
    save: ticket
  - id: ok
    approval:
      group: support-leads
      message: "Close ${state.ticket.subject}?"
  - id: close
    tool: helpdesk/set_status
    args: {id: "${input.ticket}", status: solved}
"""


POLICIES = """\
@id("triage-tools")
permit(principal in Team::"support", action == Action::"call_tool", resource)
unless { principal == Agent::"support/intern" };

@id("urgent-issues-need-a-lead")
@approval("support-leads")
permit(principal in Team::"support", action == Action::"call_tool",
       resource == Tool::"tracker/create_issue")
when { context.args.title like "*urgent*" };
"""


def sha(t):
    return hashlib.sha256(t.encode()).hexdigest()


class Home:
    """A temporary folder with keel.yaml, workflows/ and tool databases."""

    def __init__(self, workflows=None, extra_tool_env=None, policies=None, agents=None,
                 extra_yaml=""):
        self.dir = tempfile.mkdtemp(prefix="keel-it-")
        # Removed at exit too, so an interrupted test leaves nothing behind.
        atexit.register(self.cleanup)
        self.data = os.path.join(self.dir, "data")
        self.policies = os.path.join(self.dir, "policies")
        os.mkdir(self.policies)
        with open(os.path.join(self.policies, "tools.cedar"), "w") as f:
            f.write(POLICIES if policies is None else policies)
        wfdir = os.path.join(self.dir, "workflows")
        os.mkdir(wfdir)
        for name, text in (workflows or {"ten.yaml": TEN_STEPS, "gated.yaml": GATED}).items():
            with open(os.path.join(wfdir, name), "w") as f:
                f.write(text)
        env = extra_tool_env or {}
        tools = []
        for srv in ("helpdesk", "crm", "tracker"):
            db = os.path.join(self.dir, srv + ".db")
            lines = ["  %s:" % srv,
                     "    command: %s" % os.path.join(BUILD, "tool_" + srv),
                     "    args: [--db, %s]" % db,
                     # The example servers honour idempotency keys for
                     # every tool (toolkit.c), so declare them idempotent.
                     "    idempotent: true"]
            if env.get(srv):
                lines.append("    env: {%s}" % ", ".join("%s: %s" % kv for kv in env[srv].items()))
            tools.append("\n".join(lines))
        with open(os.path.join(self.dir, "keel.yaml"), "w") as f:
            f.write("tools:\n%s\n" % "\n".join(tools))
            f.write(agents or ("agents:\n  support/triage: {description: test agent}\n"
                               "  support/intern: {description: no permit}\n"))
            f.write("humans:\n")
            f.write("  alice: {groups: [support-leads], token_sha256: %s}\n" % sha(ALICE_TOKEN))
            f.write("  bob: {groups: [finance], token_sha256: %s}\n" % sha(BOB_TOKEN))
            f.write("workflows: %s\n" % wfdir)
            f.write("policies: %s\n" % self.policies)
            f.write(extra_yaml)

    def db(self, srv):
        return sqlite3.connect(os.path.join(self.dir, srv + ".db"))

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def _env_with(changes):
    """os.environ with changes applied (None deletes), or None for as is."""
    if not changes:
        return None
    e = dict(os.environ)
    for k, v in changes.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


class Server:
    """`keel serve` on a free port; ready once it printed its address."""

    def __init__(self, home, extra=(), env=None):
        """env: variables to set (a value of None removes one) for this
        daemon only."""
        self.home = home
        # stderr goes to a file: a pipe nobody reads could fill and block
        # the daemon.
        self.log_path = os.path.join(home.dir, "serve-%d.log" % time.monotonic_ns())
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(
            [KEEL, "serve", "--data", home.data, "--listen", "127.0.0.1:0",
             "--config", os.path.join(home.dir, "keel.yaml")] + list(extra),
            stdout=subprocess.PIPE, stderr=self.log, text=True,
            start_new_session=True, env=_env_with(env))
        atexit.register(self._reap)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.wait()
            err = open(self.log_path).read()
            raise RuntimeError("keel serve did not start: %r %s" % (line, err))
        self.url = line.split("listening on", 1)[1].strip()
        with open(os.path.join(home.data, "admin.token")) as f:
            self.token = f.read().strip()

    def _reap(self):
        """At exit: a daemon still running (an interrupted test) is killed."""
        if self.proc.poll() is None:
            self.kill9()

    def kill9(self):
        # The tool servers run in their own process groups and exit when
        # their stdin (a pipe from keel) closes.
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        """Stops the daemon with SIGTERM; returns its exit status (sanitizer
        reports, e.g. leaks, make it nonzero and are printed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.proc.stdout.close()
        self.log.close()
        err = open(self.log_path).read()
        if self.proc.returncode != 0:
            print("keel serve exited %d:\n%s" % (self.proc.returncode, err[-4000:]), flush=True)
        return self.proc.returncode

    def api(self, method, path, body=None, token=None, raw=None):
        """Returns (status, parsed JSON)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if token is not False:
            req.add_header("Authorization", "Bearer " + (token or self.token))
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def post_oversized(self, path, size):
        """Sends a body of size bytes over a raw socket and returns (status,
        parsed JSON): the server answers 413 before reading it all and may
        close the connection while we are still sending."""
        import socket
        host, port = self.url.split("//", 1)[1].rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=30)
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                   % (path, self.token, size)).encode())
        try:
            chunk = b" " * 65536
            for _ in range(size // len(chunk)):
                s.sendall(chunk)
        except OSError:
            pass
        data = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
                if b"\r\n\r\n" in data:
                    head, body = data.split(b"\r\n\r\n", 1)
                    length = [int(x.split(b":")[1]) for x in head.split(b"\r\n")
                              if x.lower().startswith(b"content-length:")]
                    if length and len(body) >= length[0]:
                        break
        except OSError:
            pass
        s.close()
        head, body = data.split(b"\r\n\r\n", 1)
        return int(head.split()[1]), json.loads(body)

    def cli(self, *args, token=None, env=None):
        """Runs `keel ARGS` against this server; returns (exit, stdout, stderr)."""
        e = dict(os.environ)
        e["KEEL_SERVER"] = self.url
        e["KEEL_DATA"] = self.home.data
        e.pop("KEEL_TOKEN", None)
        if token:
            e["KEEL_TOKEN"] = token
        e.update(env or {})
        p = subprocess.run([KEEL] + list(args), capture_output=True, text=True, env=e, timeout=120)
        return p.returncode, p.stdout, p.stderr

    def wait_status(self, run_id, statuses, timeout=60):
        """Long-polls the run (GET /v1/runs/ID?wait=S returns once the run
        stops running) until its status is one of statuses; returns the run."""
        deadline = time.monotonic() + timeout
        while True:
            st, run = self.api("GET", "/v1/runs/%s?wait=5" % run_id)
            if st == 200 and run["status"] in statuses:
                return run
            if time.monotonic() > deadline:
                raise AssertionError("run %s stuck in %s" % (run_id, run))


class MockModel:
    """examples/mock-model: an OpenAI/Anthropic-compatible server playing a
    script and recording every request (examples/mock-model/README.md)."""

    def __init__(self, script=None):
        self.dir = tempfile.mkdtemp(prefix="keel-mock-")
        atexit.register(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        path = os.path.join(self.dir, "script.json")
        with open(path, "w") as f:
            json.dump(script or {"responses": []}, f)
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "keel-mock-model"), "--script", path,
             "--log", os.path.join(self.dir, "requests.jsonl")],
            stdout=subprocess.PIPE, text=True, start_new_session=True)
        atexit.register(self.stop)
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError("keel-mock-model did not start: %r" % line)
        self.url = line.split("listening on", 1)[1].strip()

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def script(self, responses):
        """Replaces the script (and clears the records)."""
        return self._call("POST", "/_mock/script", {"responses": responses})

    def requests(self):
        return self._call("GET", "/_mock/requests")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL:", what, flush=True)

    def done(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        return 1 if self.failed else 0
