"""api_longpoll.py — long-polls hold only their own connection.

Twelve clients long-poll a run that stays running (its first tool call takes
seconds); while all of them are still waiting, other requests — health, the
run list, a usage query — are answered.  The test checks the order of
events, not durations: every other request must complete before any poll
returns."""
import os
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from keelenv import Checks, Home, Server  # noqa: E402

POLLS = 12

c = Checks()
home = Home(extra_tool_env={"helpdesk": {"KEEL_TOOL_DELAY_MS": "get_ticket:8000"}})
srv = Server(home)
try:
    st, body = srv.api("POST", "/v1/runs", {"workflow": "gated", "input": {"ticket": "T-1001"}})
    rid = body["id"]
    done = []
    lock = threading.Lock()
    started = threading.Barrier(POLLS + 1)

    def poll():
        req = urllib.request.Request(srv.url + "/v1/runs/%s?wait=30" % rid)
        req.add_header("Authorization", "Bearer " + srv.token)
        started.wait()
        with urllib.request.urlopen(req, timeout=60) as r:
            r.read()
        with lock:
            done.append("poll")

    threads = [threading.Thread(target=poll) for _ in range(POLLS)]
    for t in threads:
        t.start()
    started.wait()
    answered = []
    for path in ("/v1/health", "/v1/runs", "/v1/usage", "/v1/workflows", "/v1/runs/" + rid):
        st, _ = srv.api("GET", path)
        with lock:
            answered.append((path, st, len(done)))
    for t in threads:
        t.join()
    c.check(all(st == 200 for _, st, _ in answered), "other requests answered: %s" % answered)
    c.check(all(n == 0 for _, _, n in answered),
            "answered while all %d long-polls were still waiting: %s" % (POLLS, answered))
    c.check(len(done) == POLLS, "every poll returned once the run stopped running")
    st, run = srv.api("GET", "/v1/runs/" + rid)
    c.check(run["status"] == "waiting", "the run reached its approval: %s" % run["status"])
finally:
    c.check(srv.stop() == 0, "daemon stops cleanly")
home.cleanup()
sys.exit(c.done())
